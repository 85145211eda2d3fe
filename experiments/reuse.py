"""Twin runs: a finished run in another grid that trained the same network on the same data with the same seeds.

Grids overlap (the DCT reference of DyClotNet-0.5 is in ``replicator-vs-recalibrator``,
``expansion-op``, ``p-sweep`` and ``r-sweep``), and under deterministic training a twin's numbers
are the numbers this run would produce. A run with a twin copies the twin's metrics, cost and
environment instead of training again, and its result.json says so (``reused_from``).

Two configs are twins when everything in the run hash except the grid and variant names is equal
and the networks they build have equal resolved constructor arguments (``arch_args``, which
:class:`dyclot.DyClotNet` records), so ``{"p": 2}`` and ``{}`` match while the networks of models
without ``arch_args`` are never assumed equal.
"""
from __future__ import annotations

import json
import logging
import shutil
from functools import lru_cache
from pathlib import Path

from .config import RunConfig
from .store import RunStore, read_json, write_error

log = logging.getLogger(__name__)


@lru_cache(maxsize=None)
def _network_identity(model: str, kwargs_json: str) -> str | None:
    """The built network's class and resolved constructor arguments, or None if unknown."""
    from .registry import create_model

    try:
        net = create_model(model, num_classes=10, **json.loads(kwargs_json))
    except Exception:  # noqa: BLE001 -- a config that cannot build has no twin
        return None
    args = getattr(net, "arch_args", None)
    if not isinstance(args, dict):
        return None
    return json.dumps([f"{type(net).__module__}.{type(net).__qualname__}", args], sort_keys=True, default=str)


def computation_key(cfg: RunConfig) -> str | None:
    """What the run computes from, without its grid and variant names; None if it cannot be established."""
    identity = _network_identity(cfg.model, json.dumps(cfg.model_kwargs, sort_keys=True))
    if identity is None:
        return None
    rest = cfg.model_dump(mode="json", exclude={"grid", "variant", "model", "model_kwargs"})
    return json.dumps([identity, rest], sort_keys=True)


def find_twin(cfg: RunConfig, results: Path) -> tuple[RunStore, dict] | None:
    """The first finished (status ok) twin of ``cfg`` under ``results`` and its result, or None."""
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
        if (other.dataset, other.protocol, other.seeds, other.engine_version) != (
                cfg.dataset, cfg.protocol, cfg.seeds, cfg.engine_version) or computation_key(other) != key:
            continue
        store = RunStore(config_path.parent)
        result = store.read_result()
        if result is not None and result["status"] == "ok":
            return store, result
    return None


def copy_twin(cfg: RunConfig, store: RunStore, twin: RunStore, twin_result: dict, make_result) -> dict:
    """Fill ``store`` (already started, locked) from ``twin``; returns the new result (written last)."""
    for name in ("metrics", "env"):
        source, target = getattr(twin, name), getattr(store, name)
        if source.exists():
            try:
                shutil.copyfile(source, target)
            except OSError as error:
                raise write_error(target, error) from None
    origin = twin_result.get("reused_from") or f"{twin_result['grid']}/{twin_result['run_id']}"
    result = {**make_result(cfg, "ok", None, [], twin_result["cost"]), "metrics": twin_result["metrics"],
              "reused_from": origin}
    store.write_result(result)
    log.info("run %s (%s seed %d) reuses its twin %s", cfg.run_id, cfg.variant, cfg.seed, origin)
    return result
