"""Model cost: parameters, MACs, FLOPs, latency and throughput (``profiling``), the published cost claim
under each reading of the paper (``claims``), and their commands ``run.py profile`` and ``claim-costs``.

Builds models through the model registry (``baselines.registry``). The engine records each trained
model's cost with ``costing.profiling``, so no module of ``costing`` imports ``experiments``, its
command module ``cli`` included: that writes its tables with the store's atomic write, which lives
below both in ``evidence.files``.
"""
