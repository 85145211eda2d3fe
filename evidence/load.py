"""Read the engine's results layout (docs/results-format.md) or a tidy CSV/Parquet into DataFrames.

Only files are read: this module never imports the engine, the models or torch, and it sits below
both its readers: ``analysis`` and the engine (``experiments.tuning`` picks a learning rate from the
table, ``experiments.until_decided`` stops on it). A run is a row of
the tidy table whatever happened to it; ``status`` says whether it may be analysed:

* ``ok``: finished, ``result.json`` valid;
* ``failed``: finished with an error (the engine's ``reason`` is kept);
* ``corrupt``: ``result.json`` exists but is empty, truncated, not JSON or misses required fields;
* ``unfinished``: the run folder has no ``result.json`` (still running, killed, or never started);
* ``superseded``: a finished run of an older ``engine_version`` than the newest finished run of its
  grid (the networks or the recipe changed; docs/engine.md), or of an older ``architecture_revision``
  of its model than the newest finished run of that model in any grid (that network changed; absent
  in config.json = 1): never paired or pooled with newer runs;
* ``duplicate``: a second finished ``ok`` run of the same (grid, variant, seed) under the same settings; only one
  is kept (the smallest run id);
* ``conflict``: finished ``ok`` runs of the same (grid, variant, seed) under different settings (a rerun at
  another learning rate, epochs, device...: ``setting_differences``): none is used, the reason names what differs.

Each run's settings come from its config.json and env.json: ``lr`` (the protocol's peak learning rate) and
``settings``, everything else two runs of a pair must share (``pair_settings``). Two runs pair only where their
``settings`` are equal; one network's runs across seeds also share ``lr``, ``model`` and ``model_kwargs``
(``evidence.decisions.paired_differences``).

Only ``ok`` rows enter the statistics; every other row is counted and reported.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .health import flag_reason, training_health
from .status import ANALYSIS_STATUSES, FINISHED, RunStatus

METRIC_KEYS = ("test_top1", "test_loss", "val_top1", "train_loss", "train_top1", "epochs",
               "train_seconds", "images_per_second")
COST_KEYS = ("params", "macs", "latency_ms")
TIDY_COLUMNS = ("grid", "variant", "reference", "seed", "init_seed", "data_seed", "aug_seed",
                "model", "dataset", "protocol", "status", "reason", *METRIC_KEYS, *COST_KEYS,
                "run_id", "paired", "model_kwargs", "engine_version", "architecture_revision", "reused_from",
                "num_classes", "lr", "settings")
STATUSES = tuple(s.value for s in ANALYSIS_STATUSES)


def _read_json(path: Path) -> tuple[Any, str | None]:
    """Return ``(object, None)`` or ``(None, reason)`` for an unreadable / non-JSON file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return None, f"{path.name} unreadable: {error.__class__.__name__}"
    if not text.strip():
        return None, f"{path.name} is empty"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as error:
        return None, f"{path.name} is not valid JSON ({error.msg}: line {error.lineno} column {error.colno})"


def _number(value: Any) -> float:
    """A finite-or-NaN float from a JSON value; raise ``TypeError`` on anything else."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r:.40}")
    return float(value)


def _kwargs_text(kwargs: Any) -> str:
    return json.dumps(kwargs if isinstance(kwargs, dict) else {}, sort_keys=True)


def _parse_result(obj: Any) -> dict:
    """Flatten a result.json object into a tidy row; raise ``ValueError``/``TypeError`` if invalid."""
    if not isinstance(obj, dict):
        raise ValueError("result.json is not a JSON object")
    missing = [key for key in ("variant", "seed", "status") if key not in obj]
    if missing:
        raise ValueError(f"result.json misses {', '.join(missing)}")
    if obj["status"] not in FINISHED:
        raise ValueError(f"result.json has unknown status {obj['status']!r:.40}")
    metrics, cost, seeds = obj.get("metrics") or {}, obj.get("cost") or {}, obj.get("seeds") or {}
    if not all(isinstance(part, dict) for part in (metrics, cost, seeds)):
        raise ValueError("result.json metrics/cost/seeds are not objects")
    row = {"variant": str(obj["variant"]), "seed": int(_number(obj["seed"])),
           "status": obj["status"], "reason": obj.get("reason"),
           "model": obj.get("model"), "dataset": obj.get("dataset"), "protocol": obj.get("protocol"),
           "run_id": obj.get("run_id"), "model_kwargs": _kwargs_text(obj.get("model_kwargs")),
           "reused_from": obj.get("reused_from") if isinstance(obj.get("reused_from"), str) else None,
           "num_classes": _number(obj.get("num_classes"))}
    for name in ("init", "data", "aug"):
        row[f"{name}_seed"] = _number(seeds.get(name))
    for key in METRIC_KEYS:
        row[key] = _number(metrics.get(key))
    for key in COST_KEYS:
        row[key] = _number(cost.get(key))
    if row["status"] == RunStatus.OK and not math.isfinite(row["test_top1"]) and all(
            not math.isfinite(row[key]) for key in METRIC_KEYS):
        raise ValueError("result.json status ok but no metric values")
    return row


def load_grids(results_dir: str | Path) -> dict[str, dict]:
    """``{grid name: grid.json object}`` for every grid folder (``{}`` when grid.json is unreadable)."""
    root = _results_root(results_dir)
    grids = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        obj, _ = _read_json(folder / "grid.json") if (folder / "grid.json").exists() else (None, None)
        if obj is None and not any(p.is_dir() for p in folder.iterdir()):
            continue  # neither a grid definition nor runs: not a grid folder
        grids[folder.name] = obj if isinstance(obj, dict) else {}
    return grids


def load_study(results_dir: str | Path) -> tuple[list[dict], str | None]:
    """The study plan ``study.json`` (``run.py study``) as ``([{grid, seeds, protocol}], problem)``.

    ``([], None)`` when there is no plan; ``([], reason)`` when the file is not a valid plan.
    """
    path = _results_root(results_dir) / "study.json"
    if not path.exists():
        return [], None
    obj, problem = _read_json(path)
    entries = obj.get("grids") if isinstance(obj, dict) else None
    if problem is None and (not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("grid"), str) and isinstance(e.get("seeds"), int) for e in entries)):
        problem = "study.json is not {\"grids\": [{\"grid\": name, \"seeds\": n, ...}, ...]}"
    return ([], problem) if problem else (entries, None)


def _results_root(results_dir: str | Path) -> Path:
    root = Path(results_dir)
    if not root.exists():
        raise FileNotFoundError(f"results directory '{root}' does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"results path '{root}' is not a directory")
    return root


def _run_dirs(root: Path, grid: str) -> list[Path]:
    return sorted(p for p in (root / grid).iterdir() if p.is_dir() and not p.name.startswith("."))


def _config_identity(run_dir: Path) -> dict:
    """Best-effort variant/seed of a run without a valid result.json (from config.json)."""
    obj, _ = _read_json(run_dir / "config.json") if (run_dir / "config.json").exists() else (None, None)
    if not isinstance(obj, dict):
        return {}
    seed, version, revision = obj.get("seed"), obj.get("engine_version"), obj.get("architecture_revision", 1)
    return {"variant": obj.get("variant") if isinstance(obj.get("variant"), str) else None,
            "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            "model": obj.get("model") if isinstance(obj.get("model"), str) else None,
            "engine_version": version if isinstance(version, (int, float)) and not isinstance(version, bool) else None,
            "architecture_revision": revision if isinstance(revision, int) and not isinstance(revision, bool) else None}


# what identifies a run or a network rather than its settings: a pair's two runs differ here by design
NOT_SETTINGS = ("run_id", "grid", "variant", "model", "model_kwargs", "architecture_revision", "seed", "seeds")
# env.json entries that decide the numerics of a pair (docs/study.md, section 4), beside the engine version and the
# architecture revision: not torch threads, which change only rounding. A twin (experiments/reuse.py) is stricter on
# purpose (torch threads and the versions of torchvision, timm, numpy and Pillow too): a copy stands in for a run
# never trained, so it must be the very run training would give, bit for bit.
PAIR_ENVIRONMENT = ("runtime.device", "runtime.deterministic", "runtime.compile", "runtime.channels_last",
                    "packages.torch", "data_sha256")
# equal across one network's seeds, free to differ within a pair
NETWORK = ("lr", "model", "model_kwargs", "architecture_revision")


def dotted(obj: Any, path: str) -> Any:
    """``obj``'s entry at a dotted ``path`` of nested dict keys (``"runtime.device"``), None where one is missing."""
    for key in path.split("."):
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def pair_settings(config: Any, env: Any) -> tuple[float, str | None]:
    """``(lr, settings)`` of a run from its config.json and env.json objects: the protocol's peak learning rate
    (NaN when unknown) and, as canonical JSON, every setting two runs of a pair must share: config.json less the
    run's identity and seeds (``NOT_SETTINGS``) and the protocol's ``lr`` (each network's rate is chosen on its own
    search), with the numerics entries of env.json (``PAIR_ENVIRONMENT``); None without a config.json object."""
    if not isinstance(config, dict):
        return math.nan, None
    protocol = config.get("protocol")
    rest = {k: v for k, v in config.items() if k not in NOT_SETTINGS}
    lr = math.nan
    if isinstance(protocol, dict):
        rest["protocol"] = {k: v for k, v in protocol.items() if k != "lr"}
        value = protocol.get("lr")
        lr = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    rest["environment"] = {key: dotted(env, key) for key in PAIR_ENVIRONMENT} if isinstance(env, dict) else None
    return lr, json.dumps(rest, sort_keys=True)


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {prefix.rstrip("."): obj}
    out = {}
    for key, value in obj.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


def setting_differences(rows: pd.DataFrame, network: bool = True) -> list[str]:
    """What differs between the runs ``rows`` (tidy rows of the same grid): each setting of ``settings`` (dotted,
    e.g. ``protocol.epochs``) with more than one value, and with ``network`` also ``lr``, ``model`` and
    ``model_kwargs``, as "name (value, value)". Runs without a readable config.json (``settings`` None) are not
    compared: their settings are unknown."""
    known = rows[rows["settings"].notna()] if "settings" in rows else rows.iloc[:0]
    if len(known) < 2:
        return []
    flat = pd.DataFrame([_flat(json.loads(s)) for s in known["settings"]])
    if network:
        for column in NETWORK:
            flat[column] = known[column].to_numpy() if column in known else None
    out = []
    for column in flat.columns:
        values = sorted({json.dumps(v, sort_keys=True, default=str) for v in flat[column]})
        if len(values) > 1:
            out.append(f"{column} ({', '.join(values)})")
    return out


def load_results(results_dir: str | Path) -> pd.DataFrame:
    """The tidy table of a results directory: one row per run folder, columns ``TIDY_COLUMNS``.

    Never raises on a bad run: an unreadable result.json becomes ``status="corrupt"`` with the
    reason, a missing one ``status="unfinished"``. Raises ``FileNotFoundError`` for a missing
    directory and ``ValueError`` when it holds no grid folder.
    """
    root = _results_root(results_dir)
    grids = load_grids(root)
    if not grids:
        raise ValueError(f"results directory '{root}' holds no grid folders (expected <grid>/grid.json)")
    rows = []
    for grid, meta in grids.items():
        for run_dir in _run_dirs(root, grid):
            row = {"grid": grid, "run_id": run_dir.name}
            result_path = run_dir / "result.json"
            if not result_path.exists():
                row.update(_config_identity(run_dir), status=RunStatus.UNFINISHED.value, reason="no result.json")
            else:
                obj, problem = _read_json(result_path)
                try:
                    if problem:
                        raise ValueError(problem)
                    identity = _config_identity(run_dir)
                    row["engine_version"] = identity.get("engine_version")
                    row["architecture_revision"] = identity.get("architecture_revision")
                    row["lr"], row["settings"] = pair_settings(*(
                        _read_json(run_dir / name)[0] if (run_dir / name).exists() else None
                        for name in ("config.json", "env.json")))
                    row.update({k: v for k, v in _parse_result(obj).items() if k != "run_id"})
                except (ValueError, TypeError, OverflowError) as error:
                    row.update(_config_identity(run_dir), status=RunStatus.CORRUPT.value, reason=str(error))
            row["reference"] = meta.get("reference")
            row["paired"] = meta.get("paired") if isinstance(meta.get("paired"), bool) else None
            rows.append(row)
    if not rows:
        raise ValueError(f"results directory '{root}' holds grids ({', '.join(grids)}) but no run folders yet")
    return _mark_unhealthy(root, _mark_duplicates(pd.DataFrame(rows, columns=list(TIDY_COLUMNS))))


FLAGGED_FROM_ENGINE = 2  # the second edition never compares a run that diverged or never learned


def _mark_unhealthy(root: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Mark ``ok`` runs of engine version >= ``FLAGGED_FROM_ENGINE`` whose training diverged or never learned
    ``flagged`` (``evidence.health``; the first pass keeps them ``ok``, shown and warned about in the report)."""
    version = pd.to_numeric(frame["engine_version"], errors="coerce")
    candidates = frame[(frame["status"] == RunStatus.OK) & (version >= FLAGGED_FROM_ENGINE)]
    if candidates.empty:
        return frame
    health = training_health(candidates, load_curves(root, candidates))
    flagged = health[health["flagged"]]
    for row in flagged.itertuples(index=False):
        at = (frame["grid"] == row.grid) & (frame["run_id"] == row.run_id)
        frame.loc[at, ["status", "reason"]] = [RunStatus.FLAGGED.value, flag_reason(row)]
    return frame


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(frame[name] if name in frame else pd.Series(float("nan"), frame.index), errors="coerce")


def _mark_old_revisions(frame: pd.DataFrame) -> None:
    """Mark ``ok`` runs ``superseded`` whose model's ``architecture_revision`` (absent = 1) is older than the newest
    one among that model's finished ``ok`` runs in any grid (docs/engine.md, "Architecture revisions")."""
    if "model" not in frame or frame["model"].isna().all():
        return
    revision = _column(frame, "architecture_revision").fillna(1)
    ok = frame["status"] == RunStatus.OK
    newest = revision.where(ok).groupby(frame["model"]).transform("max")
    old = ok & newest.notna() & (revision < newest)
    frame.loc[old, "reason"] = [f"{m} of architecture revision {int(r)}; runs of revision {int(n)} exist"
                                for m, r, n in zip(frame["model"][old], revision[old], newest[old], strict=True)]
    frame.loc[old, "status"] = RunStatus.SUPERSEDED.value


def _mark_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Mark ``ok`` runs of a grid's older engine versions, and of a model's older architecture revisions,
    ``superseded``, then keep one ``ok`` run per (grid, variant, seed) and mark the rest ``duplicate`` (the
    smallest run_id wins), or all of them ``conflict`` where their settings differ (``setting_differences``)."""
    version = _column(frame, "engine_version")
    ok = frame["status"] == RunStatus.OK
    newest = version.where(ok).groupby(frame["grid"]).transform("max")
    old = ok & newest.notna() & (version.isna() | (version < newest))
    frame.loc[old, "reason"] = [f"trained by engine version {'?' if pd.isna(v) else int(v)}; the grid has runs of "
                                f"version {int(n)}" for v, n in zip(version[old], newest[old], strict=True)]
    frame.loc[old, "status"] = RunStatus.SUPERSEDED.value
    _mark_old_revisions(frame)
    ok = frame["status"] == RunStatus.OK
    order = frame[ok].assign(_version=version[ok])
    order = order.sort_values(["_version", "run_id"], ascending=[False, True], na_position="last")
    key = ["grid", "variant", "seed"]
    for _, group in order[order.duplicated(key, keep=False)].groupby(key, sort=False):
        differences = setting_differences(group)
        if differences:  # a rerun under other settings: neither run is chosen silently
            frame.loc[group.index, ["status", "reason"]] = [
                RunStatus.CONFLICT.value, f"{len(group)} ok runs of this grid/variant/seed differ in "
                f"{'; '.join(differences)}: none is used"]
        else:
            frame.loc[group.index[1:], ["status", "reason"]] = [RunStatus.DUPLICATE.value,
                                                                "another ok run of this grid/variant/seed"]
    return frame.sort_values(["grid", "variant", "seed", "run_id"], na_position="last",
                             key=lambda col: col.astype(str) if col.name != "seed" else col
                             ).reset_index(drop=True)


def without(frame: pd.DataFrame, drop: pd.Series) -> pd.DataFrame:
    """``frame`` without the rows ``drop`` marks, statuses derived again from what is left: a run that only a dropped
    run superseded (or duplicated, or conflicted with) is ``ok`` again, and duplicates are chosen among the rest."""
    rest = frame[~drop].copy()
    restore = rest["status"].isin([RunStatus.SUPERSEDED, RunStatus.DUPLICATE, RunStatus.CONFLICT])
    rest.loc[restore, "status"] = RunStatus.OK.value
    rest.loc[restore, "reason"] = None
    return _mark_duplicates(rest)


def of_engine_version(frame: pd.DataFrame, version: int) -> pd.DataFrame:
    """The rows of runs trained by engine ``version``. ``superseded`` marks an older version's runs only once a
    newer run has finished; a caller about to train under ``version`` must not read the older runs before then."""
    return frame[pd.to_numeric(frame["engine_version"], errors="coerce") == version]


def engine_at_least(frame: pd.DataFrame, version: int) -> pd.Series:
    """Which rows of ``frame`` were trained by engine ``version`` or later (a row without a version: False)."""
    return pd.to_numeric(frame["engine_version"], errors="coerce") >= version


def of_architecture_revisions(frame: pd.DataFrame, revisions: Mapping[str, int]) -> pd.DataFrame:
    """The rows of runs whose recorded ``architecture_revision`` (absent = 1) is ``revisions[model]`` (1 for a model
    not named). As with :func:`of_engine_version`, ``superseded`` marks an older revision's runs only once a newer
    run has finished: a caller about to train under ``revisions`` must not read the older runs before then."""
    recorded = _column(frame, "architecture_revision").fillna(1)
    current = frame["model"].map(lambda model: revisions.get(model, 1) if isinstance(model, str) else 1)
    return frame[recorded == current.astype(float)]


def load_table(path: str | Path, reference: str | None = None) -> pd.DataFrame:
    """A tidy CSV/Parquet with at least ``grid, variant, seed`` and one numeric metric column.

    ``status`` defaults to ``ok``; ``reference`` (column) may be supplied or overridden by the
    argument. Raises ``FileNotFoundError``/``ValueError`` naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table '{path}' does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise ValueError(f"table '{path}' must end in .csv, .parquet or .pq, not '{suffix or '(none)'}'")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise ValueError(f"table '{path}' is malformed: {str(error).splitlines()[0]}") from error
    except Exception as error:  # pyarrow's own errors for broken parquet files
        if error.__class__.__module__.startswith("pyarrow"):
            raise ValueError(f"table '{path}' is malformed: {error}") from error
        raise
    missing = [c for c in ("grid", "variant", "seed") if c not in frame.columns]
    if missing:
        raise ValueError(f"table '{path}' misses column(s) {', '.join(missing)}; "
                         f"it has {', '.join(map(str, frame.columns)) or 'none'}")
    frame = frame.copy()
    frame["grid"] = frame["grid"].astype(str)
    frame["variant"] = frame["variant"].astype(str)
    if "status" not in frame.columns:
        frame["status"] = RunStatus.OK.value
    frame["status"] = frame["status"].fillna(RunStatus.OK.value).astype(str)
    if reference is not None:
        frame["reference"] = reference
    for column in ("reference", "reason", "run_id", "paired", "model_kwargs", "model", "dataset", "protocol"):
        if column not in frame.columns:
            frame[column] = None
    if not metric_columns(frame):
        raise ValueError(f"table '{path}' has no numeric metric column besides grid/variant/seed")
    return _mark_duplicates(frame)


NON_METRICS = {"seed", "init_seed", "data_seed", "aug_seed", "paired", "epochs", "lr"}


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns that can be analysed (seeds and bookkeeping excluded)."""
    return sorted(c for c in frame.columns
                  if c not in NON_METRICS and pd.api.types.is_numeric_dtype(frame[c])
                  and not pd.api.types.is_bool_dtype(frame[c]) and frame[c].notna().any())


def load_curves(results_dir: str | Path, frame: pd.DataFrame | None = None,
                statuses: tuple[RunStatus, ...] = (RunStatus.OK,)) -> pd.DataFrame:
    """Per-epoch rows ``grid, variant, seed, run_id, epoch, <metrics.jsonl keys>`` of the runs of ``statuses`` (ok).

    Lines that are not JSON objects (e.g. a half-written last line) are skipped.
    """
    root = _results_root(results_dir)
    frame = load_results(root) if frame is None else frame
    rows = []
    for run in frame[frame["status"].isin(statuses)].itertuples(index=False):
        path = root / run.grid / str(run.run_id) / "metrics.jsonl"
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("epoch"), (int, float)):
                values = {k: v for k, v in obj.items() if isinstance(v, (int, float)) or v is None}
                rows.append({"grid": run.grid, "variant": run.variant, "seed": run.seed,
                             "run_id": run.run_id, **values})
    return pd.DataFrame(rows)


def load_run_files(results_dir: str | Path, name: str) -> list[tuple[str, str, dict]]:
    """``(grid, run_id, object)`` for every readable ``<grid>/<run_id>/<name>`` (env.json, config.json)."""
    root = _results_root(results_dir)
    found = []
    for grid in load_grids(root):
        for run_dir in _run_dirs(root, grid):
            if (run_dir / name).exists():
                obj, _ = _read_json(run_dir / name)
                if isinstance(obj, dict):
                    found.append((grid, run_dir.name, obj))
    return found
