"""The results store: one directory per run (docs/results-format.md), written atomically."""
from __future__ import annotations

import io
import json
import logging
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from costing.profiling import cpu_model
from evidence.files import RUNS_RESUME, atomic_write, writing
from evidence.status import FINISHED, RunStatus, is_diverged

from .config import ENGINE_VERSION, RunConfig, Runtime

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, obj: Any, then: str | None = RUNS_RESUME) -> None:
    """``obj`` as JSON, written atomically; a failure is one line ending with ``then`` (``evidence.files.write_error``)."""
    atomic_write(path, json.dumps(_clean(obj), indent=1, sort_keys=False, allow_nan=False) + "\n", then)


def read_json(path: Path) -> Any | None:
    """The parsed file, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_writable(directory: Path) -> Path:
    """Create ``directory`` and prove it is writable, or raise a PermissionError saying so."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"results directory {directory} is not writable ({error.strerror or error})") from None
    return directory


def mixed_settings(grid_dir: Path, configs: list[RunConfig]) -> list[str]:
    """Finished runs in ``grid_dir`` that the analysis would pair with ``configs`` but that trained otherwise.

    ``analysis`` pairs and pools a grid's runs by variant and seed within an engine version (and a
    model's architecture revision). So a finished run of the same engine version, revision, variant
    and seed under another protocol (a budget, or the learning rate before tuning), dataset or seed
    scheme must not share the folder with the planned runs. Returns one line per such run (empty when none)."""
    planned = {(c.variant, c.seed): c for c in configs}
    clashes = []
    for path in sorted(Path(grid_dir).glob("*/config.json")):
        saved = read_json(path)
        if not isinstance(saved, dict) or not (path.parent / "result.json").exists():
            continue
        plan = planned.get((saved.get("variant"), saved.get("seed")))
        if plan is None or saved.get("engine_version") != plan.engine_version or saved.get("run_id") == plan.run_id \
                or saved.get("architecture_revision", 1) != plan.architecture_revision:
            continue  # another engine version or architecture revision is superseded, never paired
        theirs, ours = saved.get("protocol") or {}, plan.protocol.model_dump(mode="json")
        differs = [f"{k} {theirs.get(k)!r} (now {ours.get(k)!r})" for k in sorted(set(theirs) | set(ours))
                   if theirs.get(k) != ours.get(k)]
        differs += [f"{k} {saved.get(k)!r} (now {getattr(plan, k)!r})" for k in ("dataset", "vary", "model", "model_kwargs")
                    if saved.get(k) != getattr(plan, k)]
        clashes.append(f"{path.parent.name} ({plan.variant}, seed {plan.seed}): " + ", ".join(differs or ["seeds"]))
    return clashes


def on_device(runtime: Runtime) -> Runtime:
    """``runtime`` with device ``auto`` resolved as a run resolves it: ``cuda`` where a GPU is visible, else ``cpu``."""
    if runtime.device != "auto":
        return runtime
    return runtime.model_copy(update={"device": "cuda" if torch.cuda.is_available() else "cpu"})


def started(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` has trained: it finished (result.json) or has a checkpoint to resume from."""
    return (run_dir / "result.json").exists() or (run_dir / "checkpoint.pt").exists()


def started_environments(grid_dir: Path) -> Iterator[tuple[str, dict]]:
    """(run id, env.json) of each finished or started run (:func:`started`) of this engine version in ``grid_dir``,
    in run-id order; runs whose env.json or config.json cannot be read are passed over."""
    for path in sorted(Path(grid_dir).glob("*/env.json")):
        env, config = read_json(path), read_json(path.parent / "config.json")
        if isinstance(env, dict) and started(path.parent) and isinstance(config, dict) \
                and config.get("engine_version") == ENGINE_VERSION:  # another engine's runs never pair with ours anyway
            yield path.parent.name, env


def mixed_environment(grid_dir: Path, runtime: Runtime) -> list[str]:
    """Finished or started runs (:func:`started`) of this engine version in ``grid_dir`` whose numerics
    (``evidence.load.PAIR_ENVIRONMENT`` of their env.json, the data's hash aside) differ from those of runs trained
    now under ``runtime`` on this machine: the analysis never pairs them with the new runs, so training those would
    be wasted, and a started one would resume under other numerics. One line per differing setting (empty when
    none)."""
    from evidence.load import PAIR_ENVIRONMENT
    from evidence.load import dotted as setting

    ours = environment(runtime)
    keys = [k for k in PAIR_ENVIRONMENT if k != "data_sha256"]  # the data is checked against its source elsewhere
    seen: dict[str, dict[Any, list[str]]] = {k: {} for k in keys}
    for run_id, env in started_environments(grid_dir):
        for key in keys:
            if (theirs := setting(env, key)) != setting(ours, key):
                seen[key].setdefault(json.dumps(theirs), []).append(run_id)
    return [f"{key} {value} in {len(runs)} run(s) (e.g. {runs[0]}), {json.dumps(setting(ours, key))} now"
            for key, values in seen.items() for value, runs in values.items()]


def check_environment(grid_dir: Path, runtime: Runtime) -> None:
    """ValueError where ``grid_dir`` holds finished runs that runs trained now would never pair with
    (``mixed_environment``), before anything trains."""
    if clashes := mixed_environment(grid_dir, runtime):
        raise ValueError(f"{grid_dir} holds finished or started runs trained with other numerics than runs trained here "
                         f"now would have, so the analysis would never pair the new runs with them (and a started one would "
                         f"resume under other numerics): {'; '.join(clashes)}. Train "
                         "where those settings hold (the same device, torch and options), or into another folder")


class RunStore:
    """Files of one run: config.json, env.json, metrics.jsonl, checkpoint.pt, result.json, run.lock."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.config, self.env, self.metrics = self.dir / "config.json", self.dir / "env.json", self.dir / "metrics.jsonl"
        self.checkpoint, self.result = self.dir / "checkpoint.pt", self.dir / "result.json"
        self.error_log = self.dir / "error.log"
        self.lock = FileLock(self.dir / "run.lock", timeout=0)

    @classmethod
    def of(cls, results: Path, cfg: RunConfig) -> RunStore:
        return cls(Path(results) / cfg.grid / cfg.run_id)

    def read_result(self) -> dict | None:
        """The finished run's result, or None if there is none or it is not a valid result (reported)."""
        result = read_json(self.result)
        if isinstance(result, dict) and result.get("status") in FINISHED:
            return result
        if self.result.exists():
            log.warning("%s is empty, truncated or not a result; the run is resumed from its last checkpoint",
                        self.result)
        return None

    def settled_result(self, retry_failed: bool) -> dict | None:
        """The run's result where it stands (the run is not trained again), else None: a run that finished ok; one
        that failed, unless ``retry_failed``; one whose training diverged, always (``Diverged``: an outcome of its
        settings, not of the machine, and a finished run of a learning-rate search; training it again until it
        does not diverge would keep the seeds that train). Delete the run's folder to train it afresh."""
        result = self.read_result()
        if result is None or (retry_failed and result["status"] != RunStatus.OK and not is_diverged(result)):
            return None
        return result

    def status(self) -> RunStatus:
        """ok | failed | running | partial (interrupted, resumable) | todo."""
        result = self.read_result()
        if result is not None:
            return RunStatus(result["status"])
        if self.dir.exists():
            try:
                with FileLock(self.dir / "run.lock", timeout=0):
                    pass
            except Timeout:
                return RunStatus.RUNNING
            if self.checkpoint.exists():
                return RunStatus.PARTIAL
        return RunStatus.TODO

    def start(self, cfg: RunConfig) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.config, {"run_id": cfg.run_id, **cfg.model_dump(mode="json")})

    def append_metrics(self, metrics: dict) -> None:
        with writing(self.metrics), open(self.metrics, "a") as f:
            f.write(json.dumps(_clean(metrics), allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def rewrite_metrics(self, history: list[dict]) -> None:
        atomic_write(self.metrics, "".join(json.dumps(_clean(m), allow_nan=False) + "\n" for m in history))

    def load_metrics(self) -> list[dict]:
        """Complete epoch lines of metrics.jsonl (a torn last line is ignored)."""
        rows = []
        if self.metrics.exists():
            for line in self.metrics.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    break
        return rows

    def save_checkpoint(self, state: dict) -> None:
        buffer = io.BytesIO()  # serialised first: torch.save reports a full disk as a RuntimeError, open() as OSError
        torch.save(state, buffer)
        atomic_write(self.checkpoint, buffer.getvalue())

    def load_checkpoint(self) -> dict | None:
        """The last checkpoint, or None if there is none or it is unreadable (the run then restarts)."""
        if not self.checkpoint.exists():
            return None
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
            if not isinstance(state, dict) or len(state["history"]) != state["epoch"]:
                raise ValueError("inconsistent checkpoint")
            return state
        except Exception as error:  # noqa: BLE001 -- truncated or corrupt: restart the run from scratch
            log.warning("%s is unreadable (%s); restarting the run", self.checkpoint, error)
            self.checkpoint.unlink(missing_ok=True)
            return None

    def write_result(self, result: dict) -> None:
        write_json(self.result, result)


def _git_commit() -> dict:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def processor(runtime: Runtime) -> str:
    """The processor runs of ``runtime`` train on, named as env.json names it: the GPU's name on CUDA, else the CPU's."""
    return gpu_name(on_device(runtime)) or cpu_model()


def gpu_name(runtime: Runtime) -> str | None:
    """The name of the GPU runs of ``runtime`` (its device resolved) train on (``cuda:N``'s own, not device 0's on a
    machine with several kinds), or None on the CPU: env.json's ``gpu``."""
    if not runtime.device.startswith("cuda") or not torch.cuda.is_available():
        return None  # e.g. a Ray driver without a GPU sending runs to GPU nodes: they record their own
    index = torch.device(runtime.device).index or 0
    return torch.cuda.get_device_name(index) if index < torch.cuda.device_count() else None


def environment(runtime: Runtime, data_source: str | None = None, data_sha256: str | None = None) -> dict:
    """What env.json records: code version, packages, hardware, threads, data source; the runtime with device
    ``auto`` resolved as a run resolves it (``on_device``), so that what is compared with a run's env.json (a twin, a
    grid's numerics) reads as the run recorded it."""
    from importlib.metadata import PackageNotFoundError, version

    runtime = on_device(runtime)

    def package(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    cuda = torch.cuda.is_available()
    return {
        "git": _git_commit(), "python": sys.version.split()[0], "platform": platform.platform(),
        "hostname": platform.node(),
        "packages": {n: package(n) for n in ("torch", "torchvision", "timm", "numpy", "ptflops", "pillow", "ray", "wandb")},
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "gpu": gpu_name(runtime), "cuda": torch.version.cuda if cuda else None,
        "runtime": runtime.model_dump(mode="json"), "data_source": data_source, "data_sha256": data_sha256,
    }
