"""Target 6: grid throughput, a process pool of several 1-thread workers against one worker with all threads.

The grid is the study's most common run: ``replicator-vs-recalibrator`` (DyClotNet-0.5 with and
without the recalibrator) under the ``cpu`` recipe cut to one epoch of 100 images per class
(about 15 s of training per run; against a real 3-4 minute ``cpu`` run the pool's process start-up
weighs less than here, so the ratio understates the pool), on CIFAR-10 (JPEG) if present,
else the synthetic set; ``quick`` uses the ``smoke`` grid instead. Each side runs the grid into a
fresh results directory through ``experiments.executors.run_grid``: ``--workers 2`` (two spawned
processes, 1 torch thread each; their start-up is part of the cost) against the sequential
executor with 2 threads, alternating. Wall seconds per grid, medians over rounds.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import alternate, load_data, seconds
from experiments.config import Runtime, default_threads
from experiments.executors import run_grid
from experiments.grids import get_grid, resolve

CUT = dict(epochs=1, train_per_class=100, val_per_class=10, test_per_class=20)


def run(seeds: int = 1, rounds: int = 2, workers: int = 2, threads: int | None = None, quick: bool = False, echo=print,
        **protocol_overrides) -> dict:
    cores = threads or default_threads()
    if quick:
        grid_name, protocol, dataset = "smoke", "smoke", "synthetic"
    else:
        grid_name, protocol, dataset = "replicator-vs-recalibrator", "cpu", load_data().name
        protocol_overrides = {**CUT, **protocol_overrides}
    configs, _ = resolve(get_grid(grid_name), protocol, seeds=seeds, dataset=dataset, **protocol_overrides)

    def grid(workers_: int, threads_: int):
        def case() -> float:
            with tempfile.TemporaryDirectory() as tmp:
                runtime = Runtime(threads=threads_, wandb="off", device="cpu")
                return seconds(lambda: run_grid(configs, runtime, Path(tmp), workers=workers_))
        return case

    pool, single = f"pool {workers} workers x {max(1, cores // workers)} thread(s)", f"1 worker x {cores} threads"
    time_ = alternate({pool: grid(workers, max(1, cores // workers)), single: grid(1, cores)}, rounds)
    for name, value in time_.items():
        echo(f"{name:28s} {value:7.1f} s for {len(configs)} runs ({len(configs) / value * 60:.1f} runs/min)")
    ratio = time_[single] / time_[pool]
    echo(f"grid: {grid_name} ({protocol} protocol{', cut: ' + str(protocol_overrides) if protocol_overrides else ''}; "
         f"{dataset}), {len(configs)} runs; medians of {rounds} alternating rounds")
    echo(f"ratio: grid throughput pool / single worker = {ratio:.2f}x")
    return {"seconds": time_, "ratio": ratio}
