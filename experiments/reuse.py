"""Twin runs: a finished run in another grid that trained the same network on the same data with the same seeds.

Grids overlap (the DCT reference of DyClotNet-0.5 is in ``replicator-vs-recalibrator``,
``expansion-op``, ``p-sweep``, ``r-sweep``, ``norm-placement`` and ``baselines``). A run with a twin copies the
twin's metrics, cost and environment instead of training again, and its result.json says so
(``reused_from``, naming the run that trained).

Two runs are twins when (1) everything in the run hash except the grid and variant names is
equal, (2) the networks they build have equal resolved constructor arguments (``arch_args``,
which :class:`dyclot.DyClotNet` records), so ``{"p": 2}`` and ``{}`` match while models without
``arch_args`` are never assumed equal, and (3) the twin ran under the settings that decide the
numerics (``SAME_ENVIRONMENT``: deterministic mode, device, compile, memory format, torch
threads, the versions of torch, torchvision, timm, numpy and Pillow, the data file's sha256).
Under deterministic training that is the run
this one would be, up to what the environment record does not capture (e.g. the CPU model):
``tests/test_reuse.py`` trains a twin with reuse off and gets the same numbers. Copies put the same
runs in several grids; agreement between such grids is not an independent replication (the
report says so).
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path

from baselines.registry import architecture, create_model
from evidence.files import write_error
from evidence.status import RunStatus

from .config import RunConfig, Runtime
from .store import RunStore, environment, read_json

log = logging.getLogger(__name__)


@cache
def _network_identity(model: str, kwargs_json: str) -> str | None:
    """The built network's class and resolved constructor arguments, or None if unknown."""
    try:
        net = create_model(model, num_classes=10, **json.loads(kwargs_json))
    except Exception:  # noqa: BLE001 -- a config that cannot build has no twin
        return None
    return architecture(net)


def computation_key(cfg: RunConfig) -> str | None:
    """What the run computes from, without its grid and variant names; None if it cannot be established."""
    identity = _network_identity(cfg.model, json.dumps(cfg.model_kwargs, sort_keys=True))
    if identity is None:
        return None
    rest = cfg.model_dump(mode="json", exclude={"grid", "variant", "model", "model_kwargs"})
    return json.dumps([identity, rest], sort_keys=True)


SAME_ENVIRONMENT = ("runtime.deterministic", "runtime.device", "runtime.compile", "runtime.channels_last",
                    "torch_threads", "data_sha256",  # and the packages that build, initialise, decode and draw:
                    *(f"packages.{name}" for name in ("torch", "torchvision", "timm", "numpy", "pillow")))


def _get(env: dict, dotted: str):
    for key in dotted.split("."):
        env = env.get(key) if isinstance(env, dict) else None
    return env


def find_twin(cfg: RunConfig, results: Path, env: dict) -> tuple[RunStore, dict] | None:
    """The first finished (status ok) twin of ``cfg`` under ``results`` run in ``env``'s settings, or None."""
    key = computation_key(cfg)
    if key is None:
        return None
    for config_path in sorted(Path(results).glob("*/*/config.json")):
        if config_path.parent.name == cfg.run_id:
            continue
        raw = read_json(config_path)
        try:
            other = RunConfig.model_validate({k: v for k, v in raw.items() if k != "run_id"})
        except Exception:  # noqa: BLE001 -- unreadable or foreign config: not a twin
            continue
        if other.run_id != config_path.parent.name or (other.dataset, other.protocol, other.seeds, other.engine_version) != (
                cfg.dataset, cfg.protocol, cfg.seeds, cfg.engine_version) or computation_key(other) != key:
            continue  # (a config that no longer hashes to its folder was written by another engine)
        store = RunStore(config_path.parent)
        result, twin_env = store.read_result(), read_json(store.env)
        if (result is None or result["status"] != RunStatus.OK or not isinstance(twin_env, dict)
                or any(_get(twin_env, k) != _get(env, k) for k in SAME_ENVIRONMENT)):
            continue
        if all(isinstance(result.get(k), dict) for k in ("metrics", "cost")) and isinstance(result.get("run_id"), str):
            return store, result
    return None


def copies_twin(results: Path, runtime: Runtime, threads: int) -> Callable[[RunConfig], bool]:
    """``copied(cfg)``: whether a run of ``runtime`` on a worker with ``threads`` torch threads would copy a finished
    twin under ``results`` (:func:`find_twin`, as the run itself looks for one) rather than train; False with
    ``runtime.reuse`` off, or where the data cannot be found. The time box (``experiments.timebox``) prices such a
    run at its start-up alone. The environment is established once per dataset (the data's sha256), nothing decoded
    (``store.environment`` resolves device ``auto`` as the run does)."""
    from .data import data_identity

    envs: dict[str, dict | None] = {}

    def env_for(dataset: str) -> dict | None:
        if dataset not in envs:
            try:
                source, sha = data_identity(dataset, runtime.data_root, runtime.cache_dir)
            except (OSError, ValueError):  # the run itself will say what is missing
                envs[dataset] = None
            else:
                envs[dataset] = {**environment(runtime, source, sha), "torch_threads": threads}
        return envs[dataset]

    def copied(cfg: RunConfig) -> bool:
        env = env_for(cfg.dataset) if runtime.reuse else None
        return env is not None and find_twin(cfg, results, env) is not None
    return copied


def copy_twin(cfg: RunConfig, store: RunStore, twin: RunStore, twin_result: dict, make_result) -> dict:
    """Fill ``store`` (already started, locked) from ``twin``; returns the result for the caller to write last."""
    for leftover in (store.checkpoint, store.error_log):  # of an earlier attempt at this run
        leftover.unlink(missing_ok=True)
    for name in ("metrics", "env"):
        source, target = getattr(twin, name), getattr(store, name)
        try:
            shutil.copyfile(source, target)
        except OSError as error:
            raise write_error(target, error) from None
    origin = twin_result.get("reused_from") or f"{twin.dir.parent.name}/{twin_result['run_id']}"
    result = {**make_result(cfg, RunStatus.OK, None, [], twin_result["cost"]), "metrics": twin_result["metrics"],
              "reused_from": origin}
    log.info("run %s (%s seed %d) reuses its twin %s", cfg.run_id, cfg.variant, cfg.seed, origin)
    return result
