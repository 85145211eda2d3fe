"""Model cost: parameters, MACs, FLOPs, latency and throughput (``profiling``), the published cost claim
under each reading of the paper (``claims``), and their commands ``run.py profile`` and ``claim-costs``.

Builds models through the model registry (``baselines.registry``). The engine records each trained
model's cost with ``costing.profiling``, so ``profiling`` and ``claims`` never import ``experiments``;
only the command module ``cli`` writes through the engine's results store.
"""
