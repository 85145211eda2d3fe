"""Every ``run.py bench`` benchmark runs in a tiny setting and ends with a finite ratio (behaviour, never timing)."""
from __future__ import annotations

import importlib
import math
import platform

import pytest

from benchmarks.cli import BENCHMARKS
from benchmarks.common import alternate, fresh, spearman
from experiments.speed import ENV_SWITCH

TINY = ("dyclotnet_025",)
QUICK = {
    "dct": dict(batch_size=4, shapes=((8, 8),), min_run_time=0.01),
    "pipeline": dict(models=TINY, steps=2, batch_size=16, rounds=1, quick=True, workers=(0,), isolate=False),
    "overhead": dict(models=TINY, steps=2, batch_size=16, rounds=1, quick=True),
    "formats": dict(models=TINY, thread_counts=(1,), batch_size=8, steps=1, rounds=1, compile=False),
    "latency": dict(models=("dyclotnet_025", "dyclotnet_050", "mobilenetv2_cifar_100"), rounds=1, latency_repeats=1,
                    batch_size=4),
    "executor": dict(seeds=1, rounds=1, threads=1, epochs=1, quick=True),
    "allocator": dict(models=TINY, steps=2, batch_size=16, rounds=1, quick=True, isolate=False),
}


def test_every_benchmark_has_a_quick_setting():
    assert set(QUICK) == set(BENCHMARKS)


@pytest.mark.parametrize("name", sorted(QUICK))
def test_benchmark_prints_a_finite_ratio_last(name):
    lines: list[str] = []
    summary = importlib.import_module(BENCHMARKS[name][0]).run(echo=lines.append, **QUICK[name])
    assert lines[-1].startswith("ratio: "), lines
    assert math.isfinite(summary["ratio"])
    if name != "latency":  # a rank correlation may be negative
        assert summary["ratio"] > 0


def test_alternate_interleaves_cases_and_takes_medians():
    calls: list[str] = []
    values = {"a": iter([9.0, 1.0, 2.0, 3.0]), "b": iter([9.0, 5.0, 7.0, 6.0])}
    cases = {k: (lambda k=k: calls.append(k) or next(values[k])) for k in values}
    assert alternate(cases, rounds=3, warmup_rounds=1) == {"a": 2.0, "b": 6.0}
    assert calls == ["a", "b"] * 4


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)


def test_allocator_switch_reaches_a_fresh_process():
    glibc = platform.libc_ver()[0] == "glibc"
    assert fresh("experiments.speed:tune_allocator", env={ENV_SWITCH: "0"}) is False
    assert fresh("experiments.speed:tune_allocator", env={ENV_SWITCH: "1"}) is glibc
