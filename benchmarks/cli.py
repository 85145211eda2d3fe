"""``run.py bench NAME``: the side-by-side benchmarks."""
from __future__ import annotations

import importlib

import typer

BENCHMARKS = {
    "dct": ("benchmarks.dct_op", "target 3: DCT expansion vs the 1x1 conv it replaces, and vs a plain copy"),
    "pipeline": ("benchmarks.pipeline", "target 1: our trainer vs the usual DataLoader + PIL transforms pipeline"),
    "overhead": ("benchmarks.overhead", "target 2: a trainer epoch vs bare steps on batches in memory"),
    "formats": ("benchmarks.formats", "target 4: contiguous vs channels_last, fp32 vs bf16 autocast, torch.compile x threads"),
    "latency": ("benchmarks.latency", "target 5: latency b1 and throughput b128 beside MACs"),
    "executor": ("benchmarks.executor", "target 6: process pool of 1-thread workers vs one worker, on a grid"),
    "allocator": ("benchmarks.allocator", "the trainer with and without the glibc malloc tuning"),
    "gpu": ("benchmarks.gpu", "the gpu protocol's images/s per run and in all, bytes/image, share of memory "
                              "bandwidth, runs in 10 min, for (c) and (d)'s networks; on a GPU writes "
                              "benchmarks/records/gpu.json"),
}


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(
        name: str = typer.Argument("", help=f"One of: {', '.join(BENCHMARKS)}."),
        threads: int = typer.Option(0, min=0, max=1024, help="torch threads (0: torch's default)."),
        list_benchmarks: bool = typer.Option(False, "--list", help="List the benchmarks and exit."),
    ) -> None:
        """Run one benchmark; it prints its measurements and ends with its ratio."""
        if list_benchmarks or not name:
            typer.echo("\n".join(f"{key:10s} {text}" for key, (_, text) in BENCHMARKS.items()))
            return
        if name not in BENCHMARKS:
            import difflib

            close = difflib.get_close_matches(name, BENCHMARKS, n=3, cutoff=0.4)
            raise ValueError(f"benchmark {name!r} is unknown; choose one of {', '.join(BENCHMARKS)}"
                             + (f" (close: {', '.join(close)})" if close else ""))
        importlib.import_module(BENCHMARKS[name][0]).run(threads=threads or None, echo=typer.echo)
