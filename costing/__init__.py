"""Model cost: parameters, MACs, FLOPs, latency and throughput (``profiling``), the published cost claim
under each reading of the paper (``claims``), and their commands ``run.py profile`` and ``claim-costs``.

Builds models through the engine's registry (``experiments.registry``); the engine records each trained
model's cost with ``costing.profiling``.
"""
