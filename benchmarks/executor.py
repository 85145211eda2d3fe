"""Target 6: grid throughput, a process pool of several 1-thread workers against one worker with all threads.

The grid is the ``smoke`` grid (DyClotNet-0.25 with and without the recalibrator, ``smoke``
protocol) with ``seeds`` seeds, executed by ``experiments.executors.run_grid`` into a fresh
results directory each time: ``--workers 2`` (two spawned processes, 1 torch thread each; their
start-up is part of the cost) against the sequential executor with 2 threads, alternating.
Wall seconds per grid, medians over rounds.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import alternate, seconds


def run(seeds: int = 1, rounds: int = 2, workers: int = 2, threads: int | None = None, echo=print,
        **protocol_overrides) -> dict:
    from experiments.config import Runtime, default_threads
    from experiments.executors import run_grid
    from experiments.grids import get_grid, resolve

    cores = threads or default_threads()
    configs, _ = resolve(get_grid("smoke"), seeds=seeds, **protocol_overrides)

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
    echo(f"grid: smoke, {len(configs)} runs; medians of {rounds} alternating rounds")
    echo(f"ratio: grid throughput pool / single worker = {ratio:.2f}x")
    return {"seconds": time_, "ratio": ratio}
