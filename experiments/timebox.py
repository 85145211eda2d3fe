"""A time box for the commands that train (``--minutes``): no run starts that is not expected to end in time.

The expectation is measured, not guessed: the median wall time of an epoch (training plus evaluation) of runs of
the same network and protocol under the results folder, finished or still running, times the epochs left, plus
``RUN_OVERHEAD_S``, taken from the runs closest to this call's: trained as it trains (the same processor, threads
per run and runs sharing the device), else on the same processor, else anywhere; the same network first, else the
same model. The same network's epoch can take twice as long on another machine, or with another thread count. A
network without a measured epoch does not start on the CPU commands (nothing says it would end in time: train it
once without a box, or with ``finish_later``); ``gpu-next`` starts one while at least ``RUN_OVERHEAD_S`` are left.
With ``finish_later`` a run starts while its next epoch is expected to end in time (for budgets shorter than a
run: it stops at the deadline and resumes from its checkpoint next time). A run that would copy a finished twin
(``experiments.reuse``) trains nothing and is priced at ``RUN_OVERHEAD_S``. The executor (``executors.run_grid``:
``stop_at``, ``may_start``) applies the box; ``gpu-next`` (a GPU batch) and the CPU commands (``ablate``, ``tune``,
``study``) share it. A call may end up to about a minute past its box: a run stops at its next step, and a pool
worker still busy ``executors.JOIN_TIMEOUT_S`` after the deadline is stopped.
"""
from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from .config import RunConfig, Runtime, threads_per_run
from .store import RunStore, processor, read_json

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


Machine = tuple[str | None, int | None, int | None]  # (processor, threads per run, runs sharing the device)


def machine_of(env: object) -> Machine | None:
    """How a run trained, from its env.json: the processor (the GPU on a CUDA run, else the CPU), its threads and
    the runs sharing its device; None where env.json does not say."""
    if not isinstance(env, dict) or not isinstance(env.get("runtime"), dict):
        return None
    runtime = env["runtime"]
    processor = env.get("gpu") if str(runtime.get("device", "")).startswith("cuda") else env.get("cpu")
    return processor, runtime.get("threads"), runtime.get("runs_sharing_device", 1)


def machine_here(runtime: Runtime, workers: int = 1) -> Machine:
    """How runs of ``runtime`` train here, as :func:`machine_of` reads it back from their env.json: the threads
    ``executors.run_grid`` gives each of ``workers`` local runs where ``runtime`` sets none."""
    return processor(runtime), runtime.threads or threads_per_run(workers), runtime.runs_sharing_device


def measured_epoch_seconds(out: Path, protocol: str, here: Machine | None = None) -> list[dict[str, float]]:
    """Median wall seconds of one epoch (training + evaluation) of the runs under ``out`` with ``protocol``, closest
    machine first: ``[runs trained as here (processor, threads, runs at once), runs on here's processor, all runs]``
    (all runs only, without ``here``). Each tier is keyed by network (model and options) and by model alone; read from
    every run folder's metrics.jsonl, finished or not. Unreadable files are skipped.
    """
    tiers: list[dict[str, list[float]]] = [defaultdict(list) for _ in range(3 if here else 1)]
    for config_path in sorted(Path(out).glob("*/*/config.json")):
        raw = read_json(config_path)
        if not isinstance(raw, dict) or not isinstance(raw.get("protocol"), dict) \
                or raw["protocol"].get("name") != protocol or not isinstance(raw.get("model"), str):
            continue
        seconds = [m["epoch_seconds"] + (m.get("eval_seconds") or 0.0)
                   for m in RunStore(config_path.parent).load_metrics()
                   if isinstance(m, dict) and isinstance(m.get("epoch_seconds"), (int, float))
                   and isinstance(m.get("eval_seconds") or 0.0, (int, float))]
        machine = machine_of(read_json(config_path.parent / "env.json")) if here else None
        closeness = [machine == here, machine is not None and machine[0] == here[0], True] if here else [True]
        kwargs = raw.get("model_kwargs") if isinstance(raw.get("model_kwargs"), dict) else {}
        for tier, close in zip(tiers, closeness, strict=True):
            for key in (_network_key(raw["model"], kwargs), raw["model"]) if close else ():
                tier[key] += seconds
    return [{key: statistics.median(values) for key, values in tier.items() if values} for tier in tiers]


def estimate_seconds(cfg: RunConfig, epochs_done: int, per_epoch: list[dict[str, float]],
                     epochs: int | None = None) -> float | None:
    """Expected wall seconds to finish ``cfg`` from ``epochs_done`` (or to train ``epochs`` more of it), from the
    closest tier of ``per_epoch`` (``measured_epoch_seconds``) that measured its network, else its model; None if
    no tier measured either."""
    seconds = next((tier[key] for tier in per_epoch for key in (_network_key(cfg.model, cfg.model_kwargs), cfg.model)
                    if key in tier), None)
    if seconds is None:
        return None
    left = max(0, cfg.protocol.epochs - epochs_done)
    return RUN_OVERHEAD_S + (left if epochs is None else min(epochs, left)) * seconds


def starts_in_time(deadline: float, out: Path, protocol: str, *, finish_later: bool = False, clock: Clock = time.time,
                   here: Machine | None = None, unmeasured_starts: bool = True,
                   copied: Callable[[RunConfig], bool] | None = None) -> MayStart:
    """``may_start(cfg) -> (ok, why)`` for ``executors.run_grid``: whether ``cfg`` (its epochs still to train, or with
    ``finish_later`` its next one) is expected to end by ``deadline``, measured under ``out`` on machines like
    ``here`` first (see the module). A network never measured starts while ``RUN_OVERHEAD_S`` are left if
    ``unmeasured_starts`` or ``finish_later``; else it does not start (nothing says it would end in time). A run that
    would not start so but that ``copied(cfg)`` says copies a finished twin (``reuse.copies_twin``) trains nothing:
    it needs ``RUN_OVERHEAD_S``."""
    def may_start(cfg: RunConfig) -> tuple[bool, str]:
        left = deadline - clock()
        expected = estimate_seconds(cfg, len(RunStore.of(out, cfg).load_metrics()),
                                    measured_epoch_seconds(out, protocol, here), 1 if finish_later else None)
        if expected is None:
            unmeasured = f"no epoch of {cfg.model} under {protocol} measured yet"
            ok, why = ((left > RUN_OVERHEAD_S, f"{unmeasured} and {max(0.0, left):.0f} s left")
                       if unmeasured_starts or finish_later else
                       (False, f"{unmeasured}, so nothing says it would end in time (train it once without --minutes, "
                               "or with --finish-later)"))
        else:
            ok, why = expected <= left, f"{'its next epoch needs' if finish_later else 'needs'} ~{expected:.0f} s, " \
                                        f"{max(0.0, left):.0f} s left"
        if not ok and copied is not None and copied(cfg):  # looked for only where it matters: a scan of the results
            return left > RUN_OVERHEAD_S, f"a copy of its finished twin needs ~{RUN_OVERHEAD_S:.0f} s, " \
                                          f"{max(0.0, left):.0f} s left"
        return ok, why
    return may_start


def may_start_here(deadline: float, out: Path, protocol: str, runtime: Runtime, workers: int, *,
                   finish_later: bool = False, clock: Clock = time.time, unmeasured_starts: bool = True) -> MayStart:
    """:func:`starts_in_time` for runs of ``runtime`` trained here by ``workers`` local runs (:func:`machine_here`),
    a run that would copy its finished twin under ``out`` priced as a copy (``reuse.copies_twin``)."""
    from .reuse import copies_twin  # builds models to compare them: loaded only where a box is set

    here = machine_here(runtime, workers)
    return starts_in_time(deadline, out, protocol, finish_later=finish_later, clock=clock, here=here,
                          unmeasured_starts=unmeasured_starts, copied=copies_twin(out, runtime, here[1]))


__all__ = ["RUN_OVERHEAD_S", "STOP_MARGIN_S", "deadline_after", "estimate_seconds", "measured_epoch_seconds",
           "machine_here", "machine_of", "may_start_here", "starts_in_time"]
