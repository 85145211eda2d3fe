"""The allocator tuning (``experiments.speed.tune_allocator``) on and off, in the trainer.

The same trainer epochs (``experiments.trainer.fit``, the last of two epochs timed) in two fresh
processes, one with ``DYCLOT_TUNE_ALLOCATOR=0``; the two alternate, medians over rounds.
"""
from __future__ import annotations

from benchmarks.common import MODELS, alternate, fresh, set_threads
from experiments.speed import ENV_SWITCH


def run(models: tuple[str, ...] = MODELS, steps: int = 10, batch_size: int = 64, rounds: int = 2,
        threads: int | None = None, quick: bool = False, isolate: bool = True, echo=print) -> dict:
    """``isolate=False`` (tests only) runs both sides in this process, where the switch cannot act."""
    threads = threads or set_threads(None)
    rows = {}
    for model in models:
        def trainer(switch: str, m=model):
            return lambda: fresh("benchmarks.common:trainer_epoch", env={ENV_SWITCH: switch}, model=m, steps=steps,
                                 batch_size=batch_size, threads=threads, quick=quick, isolate=isolate)["images_per_second"]

        rate = alternate({"tuned": trainer("1"), "glibc default": trainer("0")}, rounds)
        rows[model] = {**rate, "ratio": rate["tuned"] / rate["glibc default"]}
        echo(f"{model:22s} tuned {rate['tuned']:6.1f} img/s | glibc default {rate['glibc default']:6.1f} img/s | "
             f"{rows[model]['ratio']:.2f}x")
    echo(f"trainer epochs of {steps} steps of batch {batch_size}, {threads} torch threads, fresh processes, "
         f"medians of {rounds} alternating rounds")
    ratio = min(r["ratio"] for r in rows.values())
    echo(f"ratio: trainer images/s, allocator tuned / glibc default >= {ratio:.2f}x")
    return {"rows": rows, "ratio": ratio}
