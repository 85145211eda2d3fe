"""Execute one run end to end: lock, resume, train, measure cost, record the result (ok or failed)."""
from __future__ import annotations

import importlib
import json
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from filelock import Timeout

from costing import profiling
from evidence.files import ResultsWriteError, write_error
from evidence.status import RunStatus

from .config import RunConfig, Runtime
from .data import load_dataset
from .reuse import copy_twin, find_twin
from .speed import to_memory_format
from .store import RunStore, environment, on_device, read_json, write_json
from .tracking import Tracker
from .trainer import build_model, fit, is_device_oom

log = logging.getLogger(__name__)
METRIC_KEYS = ("test_top1", "test_loss", "val_top1", "train_loss", "train_top1")


@contextmanager
def torch_settings(runtime: Runtime) -> Iterator[None]:
    """Threads and determinism for one run; torch keeps both process-wide, so they are restored after.

    Deterministic mode also fills every new tensor with NaN (``fill_uninitialized_memory``), a full
    write per allocation that no correct op needs; it is turned off (the NaN loss check remains).
    """
    threads, deterministic, benchmark = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                                         torch.backends.cudnn.benchmark)
    fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        torch.utils.deterministic.fill_uninitialized_memory = False
        if runtime.threads:
            torch.set_num_threads(runtime.threads)
        torch.use_deterministic_algorithms(runtime.deterministic and not runtime.device.startswith("cuda"))
        torch.backends.cudnn.benchmark = not runtime.deterministic
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = benchmark
        torch.utils.deterministic.fill_uninitialized_memory = fill


def import_models(plugins: tuple[str, ...] = ()) -> None:
    """Register every model: dyclot, baselines and any plugin modules."""
    for module in ("dyclot", "baselines", *plugins):
        importlib.import_module(module)


def summarise(history: list[dict]) -> dict:
    last = history[-1] if history else {}
    seconds = sum(m["epoch_seconds"] for m in history)
    images = sum(m["epoch_seconds"] * m["images_per_second"] for m in history)
    return {**{k: last.get(k) for k in METRIC_KEYS}, "epochs": len(history), "train_seconds": seconds,
            "images_per_second": images / seconds if seconds else None}


def measure_cost(model: torch.nn.Module, input_shape: tuple[int, int, int], repeats: int) -> dict:
    """Parameters, MACs and CPU batch-1 latency (1 thread, median); nulls where profiling fails."""

    model = to_memory_format(model.to("cpu"), torch.contiguous_format).eval()
    cost: dict = {}
    for key, measure in (("params", lambda: profiling.count_params(model)),
                         ("macs", lambda: profiling.count_macs(model, input_shape)),
                         ("latency_ms", lambda: profiling.measure_latency_ms(model, input_shape, repeats=repeats, threads=1))):
        try:
            cost[key] = measure()
        except Exception as error:  # noqa: BLE001 -- a cost that cannot be measured is a warning, never a failed run
            log.warning("could not measure %s: %s", key, error)
            cost[key] = None
    if cost["macs"] is not None:
        cost["macs_counter"] = profiling.MACS_COUNTER_VERSION
    return cost


RECOUNT_RESUMES = ("this run's result.json and those recounted before it are intact; `run.py recount` goes on from "
                   "this run once there is space/permission again")


def recount_macs(results: Path, data_root: Path | None = None, cache_dir: Path | None = None) -> list[dict]:
    """Recount ``cost.macs`` of finished runs counted by an older MAC counter; one row per run looked at.

    A run qualifies when its result.json is ``ok`` and its ``cost.macs_counter`` is missing or older
    than ``profiling.MACS_COUNTER_VERSION``. Its network is rebuilt from config.json (same model,
    options, classes and input shape); when the rebuilt network's parameter count differs from the
    recorded one the run is left unchanged and reported ("params differ"). Only ``cost.macs`` and
    ``cost.macs_counter`` change: metrics, latency and every other file stay as they are.
    """

    datasets, rows = {}, []
    for path in sorted(Path(results).glob("*/*/result.json")):
        result = read_json(path)
        cost = result.get("cost") if isinstance(result, dict) else None
        if not isinstance(cost, dict) or result.get("status") != RunStatus.OK or \
                cost.get("macs_counter", 1) >= profiling.MACS_COUNTER_VERSION:
            continue
        raw = read_json(path.parent / "config.json")
        row = {"run": f"{path.parent.parent.name}/{path.parent.name}", "old": cost.get("macs"), "new": None}
        try:
            cfg = RunConfig.model_validate({k: v for k, v in raw.items() if k != "run_id"})
            if cfg.dataset not in datasets:
                datasets[cfg.dataset] = load_dataset(cfg.dataset, data_root, cache_dir)
            data = datasets[cfg.dataset]
            model = build_model(cfg, data).eval()
            params = profiling.count_params(model)
            if params != cost.get("params"):
                rows.append({**row, "note": f"params differ ({params} rebuilt, {cost.get('params')} recorded): "
                                            "left unchanged"})
                continue
            row["new"] = profiling.count_macs(model, data.input_shape)
        except Exception as error:  # noqa: BLE001 -- one bad run must not stop the others
            rows.append({**row, "note": f"left unchanged: {one_line(error)}"})
            continue
        write_json(path, {**result, "cost": {**cost, "macs": row["new"], "macs_counter": profiling.MACS_COUNTER_VERSION}},
                   then=RECOUNT_RESUMES)
        rows.append({**row, "note": "recounted"})
    return rows


_NETWORK_COSTS: dict[tuple, dict] = {}  # a process's GPU runs: one cost measurement per network


def run_cost(cfg: RunConfig, runtime: Runtime, model: torch.nn.Module, input_shape: tuple[int, int, int]) -> dict:
    """The run's cost (``measure_cost``). A GPU run's is measured once per network in its process (model, options,
    input and latency repeats; a pool worker trains run after run) and reused by the next runs of that network,
    rather than measured on the CPU beside the GPU's runs every time; a CPU run measures its own."""
    if not runtime.device.startswith("cuda"):
        return measure_cost(model, input_shape, cfg.protocol.latency_repeats)
    key = (cfg.model, json.dumps(cfg.model_kwargs, sort_keys=True), tuple(input_shape), cfg.protocol.latency_repeats)
    if key not in _NETWORK_COSTS:
        _NETWORK_COSTS[key] = measure_cost(model, input_shape, cfg.protocol.latency_repeats)
    return dict(_NETWORK_COSTS[key])


def run_row(cfg: RunConfig, status: RunStatus, note: str) -> dict:
    """A run's row where it has no result to show: its identity, status and why."""
    return {"run_id": cfg.run_id, "variant": cfg.variant, "seed": cfg.seed, "status": status, "note": note}


def make_result(cfg: RunConfig, status: RunStatus, reason: str | None, history: list[dict], cost: dict | None) -> dict:
    return {"run_id": cfg.run_id, "grid": cfg.grid, "variant": cfg.variant, "seed": cfg.seed,
            "seeds": cfg.seeds.model_dump(), "model": cfg.model, "model_kwargs": cfg.model_kwargs,
            "dataset": cfg.dataset, "protocol": cfg.protocol.name, "status": status, "reason": reason,
            "metrics": summarise(history), "cost": cost or {"params": None, "macs": None, "latency_ms": None}}


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text}"[:500]


def execute(cfg: RunConfig, runtime: Runtime, results: Path,
            on_step: Callable[[int, int], None] | None = None,
            on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Run ``cfg`` unless it is finished (returns its result) or another process holds it.

    Returns the result dict; ``{"status": RunStatus.RUNNING, ...}`` if another process has the lock.
    Any exception inside the run is recorded in its result.json as a failure, never raised
    (KeyboardInterrupt is raised: the run stays resumable).
    """
    runtime = on_device(runtime)
    store = RunStore.of(results, cfg)
    result = store.settled_result(runtime.retry_failed)
    if result is not None:
        return {**result, "skipped": True}
    try:
        store.dir.mkdir(parents=True, exist_ok=True)
        store.lock.acquire()
    except Timeout:  # another process runs it
        return {"run_id": cfg.run_id, "variant": cfg.variant, "seed": cfg.seed, "status": RunStatus.RUNNING, "skipped": True}
    except OSError as error:
        raise write_error(store.lock.lock_file, error) from None
    try:
        result = store.settled_result(runtime.retry_failed)  # finished while we waited for the lock?
        if result is not None:
            return {**result, "skipped": True}
        # Only the lock holder writes in the run directory (config.json too), so no other process has
        # a temporary file here: these are half-written files of a killed process.
        for leftover in store.dir.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        store.result.unlink(missing_ok=True)
        store.start(cfg)
        with torch_settings(runtime):
            return _execute_locked(cfg, runtime, store, on_step, on_epoch)
    finally:
        store.lock.release()


class DeviceOutOfMemory(RuntimeError):
    """A run's device ran out of memory (``trainer.is_device_oom``): the device's limit with the runs beside it, not
    the run's failure; ``execute`` raises it rather than recording the run as failed."""


class DeadlineReached(BaseException):
    """Raised in a run's training loop at its deadline (``execute_until``).

    A BaseException, like KeyboardInterrupt, so ``execute`` does not record it as a failure: the lock is
    released and the run resumes from its last checkpoint on the next call.
    """


def execute_until(cfg: RunConfig, runtime: Runtime, results: Path, stop_at: float | None = None,
                  clock: Callable[[], float] = time.time, on_step: Callable[[int, int], None] | None = None,
                  on_epoch: Callable[[dict], None] | None = None) -> dict:
    """``execute``, stopping at the first step after ``stop_at`` (a ``clock()`` time; None: never).

    Returns the result with a ``note`` (trained now, resumed from a checkpoint, copied from a twin, or why it
    failed) and ``seconds`` (wall time of this call); a run stopped at the deadline returns a row with status
    ``partial``: its finished epochs' checkpoint stays, and the next call resumes it from there. A run out of
    device memory is no failure of the run (the runs beside it share the device): a row with status ``lost`` and
    ``out_of_memory``, resumable, which a pool takes as a sign to train fewer runs at once.
    """
    def step(done: int, steps: int) -> None:
        if stop_at is not None and clock() >= stop_at:
            raise DeadlineReached
        if on_step:
            on_step(done, steps)

    started, resumed = clock(), RunStore.of(results, cfg).status() == RunStatus.PARTIAL
    try:
        result = execute(cfg, runtime, results, step, on_epoch)
    except DeadlineReached:
        epochs = len(RunStore.of(results, cfg).load_metrics())
        return {**run_row(cfg, RunStatus.PARTIAL, f"stopped at the deadline after epoch {epochs}/"
                          f"{cfg.protocol.epochs}; resumes from there next time"), "seconds": clock() - started}
    except DeviceOutOfMemory as error:  # the device's limit with the runs beside it: not the run's failure
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {**run_row(cfg, RunStatus.LOST, f"out of device memory ({one_line(error)[:200]}); resumes from its "
                          "last checkpoint"), "out_of_memory": True, "seconds": clock() - started}
    note = ("copied from " + result["reused_from"] if result.get("reused_from") else result.get("reason")
            or ("another process holds it" if result["status"] == RunStatus.RUNNING
                else "finished before" if result.get("skipped")
                else "resumed from a checkpoint" if resumed else "trained now"))
    return {**result, "note": note, "seconds": clock() - started}


def _find_twin(cfg: RunConfig, store: RunStore, env: dict):
    """A finished twin of ``cfg`` in the same results root (experiments.reuse), or None; never raises."""
    try:
        return find_twin(cfg, store.dir.parent.parent, env)
    except Exception as error:  # noqa: BLE001 -- looking for a twin must never cost the run
        log.warning("run %s: looking for a twin failed (%s); training it", cfg.run_id, one_line(error))
        return None


def _execute_locked(cfg: RunConfig, runtime: Runtime, store: RunStore, on_step, on_epoch) -> dict:

    tracker = Tracker(runtime.wandb, cfg, store.dir)
    cost = None
    try:
        import_models(runtime.plugins)
        data = load_dataset(cfg.dataset, runtime.data_root, runtime.cache_dir, runtime.download)
        env = environment(runtime, data.source, data.source_sha256)
        twin = _find_twin(cfg, store, env) if runtime.reuse else None
        if twin is not None:  # copied, not trained (experiments.reuse)
            result = copy_twin(cfg, store, *twin, make_result)
        else:
            write_json(store.env, env)

            def epoch_done(metrics: dict) -> None:
                tracker.log(metrics)
                if on_epoch:
                    on_epoch(metrics)

            model, history = fit(cfg, data, runtime, store, on_step, epoch_done)
            cost = run_cost(cfg, runtime, model, data.input_shape)
            result = make_result(cfg, RunStatus.OK, None, history, cost)
        result["num_classes"] = len(data.classes)  # chance level for the report's training-health check
        store.error_log.unlink(missing_ok=True)  # of an earlier, failed attempt (--retry-failed)
    except ResultsWriteError:  # the disk, not the run: stop the grid, keep the run resumable
        raise
    except Exception as error:
        if is_device_oom(error):  # the device, not the run: keep it resumable
            raise DeviceOutOfMemory(one_line(error)) from error
        log.warning("run %s (%s seed %d) failed: %s", cfg.run_id, cfg.variant, cfg.seed, one_line(error))
        try:
            store.error_log.write_text(traceback.format_exc())
        except OSError as write_failure:
            raise write_error(store.error_log, write_failure) from None
        result = make_result(cfg, RunStatus.FAILED, one_line(error), store.load_metrics(), cost)
    store.write_result(result)
    tracker.finish(result)
    return result
