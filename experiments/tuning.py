"""Learning rates chosen on validation, with the same budget for every network (docs/study.md).

For a grid, every variant (network) is trained at each candidate peak learning rate with the same
seeds under the same protocol: the runs form an ordinary grid, ``<grid>-lr``, whose variants are
``<variant>@lr<value>``. A variant's learning rate is the candidate with the best mean final
*validation* top-1 (the test set is never looked at); ties go to the smaller rate. The choice,
with every candidate's validation mean and the runs it came from, is written to
``RESULTS/<grid>-lr/chosen.json``; ``ablate`` then trains the grid's main runs at those rates
(recorded in every run's ``config.json`` as ``protocol.lr``).

The search's seeds (``TUNING_FIRST_SEED`` on) are disjoint from the main runs' seeds 0, 1, ..., so a
main run is never the run its learning rate was selected on.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from analysis.load import load_results
from analysis.status import RunStatus
from study.grids import LR_CANDIDATES, LR_SEARCH_SUFFIX, LR_SEPARATOR, TUNING_SEEDS

from .grids import Grid, Variant
from .store import write_json

TUNING_FIRST_SEED = 1000


def tuning_grid(grid: Grid, candidates: tuple[float, ...] = LR_CANDIDATES) -> Grid:
    """The search as a grid: every variant of ``grid`` at every candidate learning rate."""
    if not candidates or any(not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0) for c in candidates):
        raise ValueError(f"learning-rate candidates must be positive finite numbers, got {list(candidates)}")
    variants = {f"{name}{LR_SEPARATOR}{lr:g}": Variant(v.model, dict(v.model_kwargs), v.optional, float(lr))
                for name, v in grid.variants.items() for lr in sorted(candidates)}
    reference = f"{grid.reference}{LR_SEPARATOR}{sorted(candidates)[len(candidates) // 2]:g}"
    return Grid(f"{grid.name}{LR_SEARCH_SUFFIX}", f"Learning-rate search for grid {grid.name} on validation (docs/study.md).",
                reference, variants, protocol=grid.protocol, dataset=grid.dataset, paired=grid.paired)


def choose_learning_rates(results: Path, grid: Grid, candidates: tuple[float, ...] = LR_CANDIDATES,
                          seeds: int = TUNING_SEEDS) -> dict[str, dict]:
    """``{variant: {"lr", "val_top1": {lr: mean}, "runs": {lr: n}}}`` from the finished search runs; a variant
    is left out until every one of its ``candidates`` has ``seeds`` runs and all of them finished (ok or flagged)."""
    search = f"{grid.name}{LR_SEARCH_SUFFIX}"
    frame = load_results(results)
    frame = frame[frame["grid"] == search]
    chosen = {}
    for name in grid.variants:
        rows = frame[frame["variant"].astype(str).str.startswith(f"{name}{LR_SEPARATOR}")]
        # a candidate that diverged (``flagged``) still competes with its validation score; it just loses
        if rows.empty or (~rows["status"].isin([RunStatus.OK, RunStatus.FLAGGED])).any():
            continue
        lrs = rows["variant"].str.slice(len(name) + len(LR_SEPARATOR)).astype(float)
        means = rows.groupby(lrs)["val_top1"].mean()
        counts = rows.groupby(lrs).size()
        if means.isna().any() or any(counts.get(float(lr), 0) < seeds for lr in candidates):
            continue  # a candidate not (fully) trained yet: no choice among the others
        best = float(means[means == means.max()].index.min())
        chosen[name] = {"lr": best, "val_top1": {f"{lr:g}": round(float(m), 4) for lr, m in means.items()},
                        "runs": {f"{lr:g}": int(n) for lr, n in counts.items()}}
    return chosen


def write_choice(results: Path, grid: Grid, protocol: str, chosen: dict[str, dict]) -> Path:
    path = Path(results) / f"{grid.name}{LR_SEARCH_SUFFIX}" / "chosen.json"
    write_json(path, {"grid": grid.name, "protocol": protocol,
                      "rule": "best mean final validation top-1 over the search's seeds; ties to "
                      "the smaller rate (docs/study.md)", "variants": chosen})
    return path


def read_choice(results: Path, grid: Grid, protocol: str) -> dict[str, float]:
    """``{variant: lr}`` chosen for ``grid`` under ``protocol`` ({} when no search was made under it)."""
    path = Path(results) / f"{grid.name}{LR_SEARCH_SUFFIX}" / "chosen.json"
    if not path.exists():
        return {}
    try:
        choice = json.loads(path.read_text())
        if choice["protocol"] != protocol:
            return {}
        return {name: float(entry["lr"]) for name, entry in choice["variants"].items()}
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"'{path}' is not a learning-rate choice ({error}); rerun run.py tune {grid.name}") from None
