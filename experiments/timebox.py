"""A time box for any command that trains (``--minutes``): no run starts that is not expected to end in time.

The expectation is measured, not guessed: the median wall time of an epoch (training plus evaluation) of runs of
the same network and protocol under the results folder, finished or still running, times the epochs left, plus
``RUN_OVERHEAD_S``. Runs measured on the same processor (env.json's GPU on CUDA, else its CPU) count alone where there
are any: the same network's epoch can take twice as long on another machine. A network without a measured epoch
starts while at least ``RUN_OVERHEAD_S`` are left. With ``finish_later`` a run starts while its next epoch is
expected to end in time (for budgets shorter than a run: it stops at the deadline and resumes from its checkpoint
next time). The executor (``executors.run_grid``: ``stop_at``, ``may_start``) applies the box; ``gpu-next`` (a
GPU batch) and the CPU commands (``ablate``, ``tune``, ``study``) share it.
"""
from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from .config import RunConfig
from .store import RunStore, read_json

RUN_OVERHEAD_S = 20.0  # per run besides its epochs: start-up, data to the device, cost measurement (CPU)
STOP_MARGIN_S = 20.0  # training stops this long before --minutes end: interrupted runs wind down, workers exit

Clock = Callable[[], float]
MayStart = Callable[[RunConfig], tuple[bool, str]]


def deadline_after(minutes: float, clock: Clock = time.time) -> float:
    """The ``clock()`` time at which training stops for a command given ``minutes``; ValueError unless ``minutes > 0``."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
        raise ValueError(f"--minutes must be a number of minutes > 0, got {minutes!r}")
    return clock() + minutes * 60 - STOP_MARGIN_S


def _network_key(model: str, kwargs: dict) -> str:
    return f"{model} {json.dumps(kwargs, sort_keys=True)}"


def _processor(env: object) -> str | None:
    """The processor a run trained on, as its env.json names it: the GPU on a CUDA run, else the CPU."""
    if not isinstance(env, dict):
        return None
    runtime = env.get("runtime") if isinstance(env.get("runtime"), dict) else {}
    return env.get("gpu") if str(runtime.get("device", "")).startswith("cuda") else env.get("cpu")


def measured_epoch_seconds(out: Path, protocol: str, processor: str | None = None) -> dict[str, float]:
    """Median wall seconds of one epoch (training + evaluation) of the runs under ``out`` with ``protocol``.

    Keyed by network (model and options) and by model alone; read from every run folder's metrics.jsonl, finished
    or not. With ``processor`` (``store.processor``), a key measured on that processor takes those runs' epochs
    only; other processors' count where it has none. Unreadable files are skipped.
    """
    samples: dict[bool, dict[str, list[float]]] = {True: defaultdict(list), False: defaultdict(list)}
    for config_path in sorted(Path(out).glob("*/*/config.json")):
        raw = read_json(config_path)
        if not isinstance(raw, dict) or not isinstance(raw.get("protocol"), dict) \
                or raw["protocol"].get("name") != protocol or not isinstance(raw.get("model"), str):
            continue
        seconds = [m["epoch_seconds"] + (m.get("eval_seconds") or 0.0)
                   for m in RunStore(config_path.parent).load_metrics()
                   if isinstance(m, dict) and isinstance(m.get("epoch_seconds"), (int, float))
                   and isinstance(m.get("eval_seconds") or 0.0, (int, float))]
        here = processor is not None and _processor(read_json(config_path.parent / "env.json")) == processor
        kwargs = raw.get("model_kwargs") if isinstance(raw.get("model_kwargs"), dict) else {}
        for key in (_network_key(raw["model"], kwargs), raw["model"]):
            samples[here][key] += seconds
    measured = {**samples[False], **{key: values for key, values in samples[True].items() if values}}
    return {key: statistics.median(values) for key, values in measured.items() if values}


def estimate_seconds(cfg: RunConfig, epochs_done: int, per_epoch: dict[str, float], epochs: int | None = None) -> float | None:
    """Expected wall seconds to finish ``cfg`` from ``epochs_done`` (or to train ``epochs`` more of it); None if
    nothing like it was measured."""
    seconds = per_epoch.get(_network_key(cfg.model, cfg.model_kwargs), per_epoch.get(cfg.model))
    if seconds is None:
        return None
    left = max(0, cfg.protocol.epochs - epochs_done)
    return RUN_OVERHEAD_S + (left if epochs is None else min(epochs, left)) * seconds


def starts_in_time(deadline: float, out: Path, protocol: str, *, finish_later: bool = False, clock: Clock = time.time,
                   processor: str | None = None) -> MayStart:
    """``may_start(cfg) -> (ok, why)`` for ``executors.run_grid``: whether ``cfg`` (its epochs still to train, or with
    ``finish_later`` its next one) is expected to end by ``deadline``, measured under ``out`` (see the module)."""
    def may_start(cfg: RunConfig) -> tuple[bool, str]:
        left = deadline - clock()
        expected = estimate_seconds(cfg, len(RunStore.of(out, cfg).load_metrics()),
                                    measured_epoch_seconds(out, protocol, processor), 1 if finish_later else None)
        if expected is None:
            return left > RUN_OVERHEAD_S, f"no epoch of {cfg.model} measured yet and {max(0.0, left):.0f} s left"
        what = "its next epoch needs" if finish_later else "needs"
        return expected <= left, f"{what} ~{expected:.0f} s, {max(0.0, left):.0f} s left"
    return may_start


__all__ = ["RUN_OVERHEAD_S", "STOP_MARGIN_S", "deadline_after", "estimate_seconds", "measured_epoch_seconds",
           "starts_in_time"]
