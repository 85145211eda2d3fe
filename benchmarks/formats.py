"""Target 4: memory format, bf16 autocast, ``torch.compile`` and torch threads, per model (training steps, batch 64).

Eager contiguous (NCHW) and eager channels-last (NHWC), each in fp32 and under CPU bf16 autocast,
at 1 and 2 threads are measured in this process, alternating, medians over rounds (images/s of
SGD steps on an in-memory batch, the allocator tuned as in the trainer). ``torch.compile``
(inductor, default mode) runs in a fresh process with a time limit, for the first model at the
first thread count only (compiling the training step takes minutes here): its compile time and its
steady-state images/s.
"""
from __future__ import annotations

import time

import torch

from benchmarks.common import MODELS, alternate, build, fresh, seconds, set_threads, sgd_step
from experiments.speed import tune_allocator


def _batch(batch_size: int, channels_last: bool):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (batch_size,), generator=generator)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x, labels


def compiled_rate(model: str, threads: int, batch_size: int = 64, steps: int = 10, channels_last: bool = True) -> dict:
    """Seconds until the first compiled training step is done, then images/s of ``steps`` more."""
    tune_allocator()
    set_threads(threads)
    net = build(model, channels_last=channels_last).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    compiled, (x, y) = torch.compile(net), _batch(batch_size, channels_last)
    start = time.perf_counter()
    sgd_step(compiled, optimizer, x, y)
    compile_seconds = time.perf_counter() - start
    sgd_step(compiled, optimizer, x, y)
    return {"compile_seconds": compile_seconds,
            "images_per_second": steps * batch_size
            / seconds(lambda: [sgd_step(compiled, optimizer, x, y) for _ in range(steps)])}


def run(models: tuple[str, ...] = MODELS, thread_counts: tuple[int, ...] = (1, 2), batch_size: int = 64, steps: int = 2,
        rounds: int = 2, compile: bool = True, bf16: bool = True, compile_timeout: float = 150, threads: int | None = None,
        echo=print) -> dict:
    tune_allocator()
    thread_counts = (threads,) if threads else thread_counts
    rows = {}
    for model in models:
        cases = {}
        for channels_last in (False, True):
            net = build(model, channels_last=channels_last).train()
            optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
            x, y = _batch(batch_size, channels_last)
            for autocast, t in ((a, t) for a in ((False, True) if bf16 else (False,)) for t in thread_counts):
                def case(net=net, optimizer=optimizer, x=x, y=y, t=t, autocast=autocast) -> float:
                    set_threads(t)
                    return steps * batch_size / seconds(
                        lambda: [sgd_step(net, optimizer, x, y, bf16=autocast) for _ in range(steps)])

                cases[f"{'channels_last' if channels_last else 'contiguous'}{' bf16' if autocast else ''} {t}t"] = case
        rate = alternate(cases, rounds, warmup_rounds=1)
        for t in thread_counts[:1] if compile and model == models[0] else ():  # minutes each: one measurement
            try:
                result = fresh("benchmarks.formats:compiled_rate", timeout=compile_timeout, model=model, threads=t,
                               batch_size=batch_size, steps=steps)
                rate[f"compile {t}t"] = result["images_per_second"]
                echo(f"{model}: torch.compile at {t} threads compiled in {result['compile_seconds']:.0f} s")
            except TimeoutError:
                echo(f"{model}: torch.compile at {t} threads did not finish within {compile_timeout:.0f} s")
        rows[model] = rate
        best = max(rate, key=rate.get)
        echo(f"{model:22s} " + " | ".join(f"{k} {v:6.1f}" for k, v in rate.items()) + f" img/s | best: {best}")
    ratios = {m: r[f"channels_last {t}t"] / r[f"contiguous {t}t"] for m, r in rows.items() for t in thread_counts[-1:]}
    if bf16:
        echo("bf16 autocast / fp32, channels_last (images/s, " + f"{thread_counts[-1]} threads): " + ", ".join(
            f"{m} {r[f'channels_last bf16 {t}t'] / r[f'channels_last {t}t']:.2f}x" for m, r in rows.items()
            for t in thread_counts[-1:]))
    echo(f"batch {batch_size}, {steps} steps per measurement, medians of {rounds} alternating rounds")
    echo("ratio: channels_last / contiguous (images/s, " + f"{thread_counts[-1]} threads): "
         + ", ".join(f"{m} {v:.2f}x" for m, v in ratios.items()))
    return {"rows": rows, "ratio": min(ratios.values())}
