"""The DCT expansion against the 1x1 convolution it replaces, and against a plain copy.

Shapes: the three stages of Table 2 at alpha=1, p=2 (N = 64 at 32x32, 128 at 16x16, 256 at
8x8), batch 128. Timings are medians of ``torch.utils.benchmark.Timer.blocked_autorange``.

* DCT vs pointwise expansion (N/p -> N), forward and backward: the saving DCT buys.
* DCT forward vs a copy of a tensor of the DCT's output size: the memory-bound limit.
  Target: DCT at most 2x the copy. The copy that counts is ``out.clone()``: like the DCT it
  allocates its output (reads N, writes N). ``sink.copy_(out)`` into a preallocated buffer is
  printed too; it is the same traffic without the allocation.

The allocator is tuned first (``experiments.speed.tune_allocator``, as in the trainer); with
glibc's default every fresh output tensor of 32 MiB or more is a new mmap and its page faults
dominate both the DCT and the clone (``tune=False`` shows it).
"""
from __future__ import annotations

import torch
import torch.utils.benchmark as benchmark

from dyclot.layers import DynamicCloneTransformer, PointwiseExpansion
from experiments.speed import tune_allocator

SHAPES = ((64, 32), (128, 16), (256, 8))  # (N, spatial side) of Table 2's stages


def _median_ms(stmt, min_run_time: float) -> float:
    return benchmark.Timer(stmt="stmt()", globals={"stmt": stmt}).blocked_autorange(min_run_time=min_run_time).median * 1e3


def run(batch_size: int = 128, p: int = 2, threads: int | None = None, min_run_time: float = 0.5,
        channels_last: bool = False, tune: bool = True, shapes: tuple = SHAPES, echo=print) -> dict:
    """Measure every shape; return the per-shape rows and the worst ratios."""
    tuned = tune and tune_allocator()
    if threads:
        torch.set_num_threads(threads)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    rows = []
    for n, side in shapes:
        x = torch.randn(batch_size, n // p, side, side).contiguous(memory_format=memory_format).requires_grad_()
        dct, conv = DynamicCloneTransformer(n // p, p=p, r=4), PointwiseExpansion(n // p, p=p)
        conv = conv.to(memory_format=memory_format)
        out_like = torch.randn(batch_size, n, side, side).contiguous(memory_format=memory_format)
        sink = torch.empty_like(out_like)

        # The closures below are timed at once, inside this iteration (noqa: B023): the loop variables are this shape's.
        def fwd_bwd(module):  # a dense output gradient, as in training (``.sum()`` would give a stride-0 one)
            return lambda: module(x).backward(out_like)  # noqa: B023

        with torch.no_grad():
            dct_fwd = _median_ms(lambda: dct(x), min_run_time)  # noqa: B023
            copy = _median_ms(lambda: out_like.clone(), min_run_time)  # noqa: B023
            copy_into = _median_ms(lambda: sink.copy_(out_like), min_run_time)  # noqa: B023
        row = {"N": n, "side": side, "dct_fwd_ms": dct_fwd, "copy_ms": copy, "copy_into_ms": copy_into,
               "dct_fwd_bwd_ms": _median_ms(fwd_bwd(dct), min_run_time),
               "conv_fwd_bwd_ms": _median_ms(fwd_bwd(conv), min_run_time)}
        row["conv_over_dct"] = row["conv_fwd_bwd_ms"] / row["dct_fwd_bwd_ms"]
        row["dct_over_copy"] = dct_fwd / copy
        rows.append(row)
        echo(f"N={n:4d} {side:2d}x{side:<2d} batch {batch_size}: DCT fwd {dct_fwd:6.2f} ms | clone {copy:6.2f} ms | "
             f"copy_ {copy_into:6.2f} ms | "
             f"DCT fwd+bwd {row['dct_fwd_bwd_ms']:7.2f} ms | 1x1 conv fwd+bwd {row['conv_fwd_bwd_ms']:7.2f} ms")
    summary = {"rows": rows, "ratio": max(r["dct_over_copy"] for r in rows), "threads": torch.get_num_threads(),
               "min_conv_over_dct": min(r["conv_over_dct"] for r in rows),
               "max_dct_over_copy": max(r["dct_over_copy"] for r in rows)}
    echo(f"threads {summary['threads']}; memory format {'channels_last' if channels_last else 'contiguous'}; "
         f"allocator tuned: {tuned}; medians of torch.utils.benchmark blocked_autorange")
    echo(f"ratio: 1x1 conv / DCT (fwd+bwd) >= {summary['min_conv_over_dct']:.2f}x; "
         f"DCT fwd / clone <= {summary['max_dct_over_copy']:.2f}x (target <= 2x)")
    return summary
