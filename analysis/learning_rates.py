"""The report's learning-rate searches (``run.py tune``, docs/study.md section 2): the records.

A search for grid G is the grid ``G-lr`` (variants ``<network>@lr<value>``) plus the choice the engine wrote to
``RESULTS/G-lr/chosen.json``: per network, the candidate with the best mean final validation top-1. ``searches``
reads those files (or, for a search still without a choice, its finished runs' validation scores) and the search
runs' validation curves; ``analysis.render.render_learning_rates`` and ``analysis.plots.search_figure`` write and
draw them. A search's runs are tuning runs: the report shows their validation scores here and never compares them
on the test set (``is_search``: the report's analysis leaves them out).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from evidence.status import RunStatus, scored_as_searched
from study.grids import LR_CANDIDATES, LR_SEARCH_SUFFIX, LR_SEPARATOR, TUNING_SEEDS, searched_grid

from .compare import grid_key, natural_key


@dataclass(frozen=True)
class LearningRateChoice:
    network: str  # a variant of the searched grid
    lr: float | None  # the chosen peak learning rate; None while the search goes on
    val_top1: dict[str, float]  # candidate -> mean final validation top-1 over the search's seeds
    runs: dict[str, int]  # candidate -> runs behind the mean
    diverged: dict[str, int] = field(default_factory=dict)  # candidate -> those of its runs that diverged (scored 0)


@dataclass(frozen=True)
class LearningRateSearch:
    grid: str  # the searched grid (its runs then train at the chosen rates)
    protocol: str
    choices: tuple[LearningRateChoice, ...] = ()
    problem: str | None = None  # why chosen.json could not be read
    runs_done: int | None = None  # a search without a choice yet: how many of its runs finished
    runs_planned: int | None = None  # and how many it plans (widened candidates too)
    runs_copied: int = 0  # of those finished, how many copied a twin run of another grid (experiments.reuse)
    candidates: tuple[str, ...] = ()  # a search without a choice yet: every rate its grid.json plans (widened too)
    # a search widened after its choice was written (docs/study.md, section 2): the rates added, their finished
    # runs' mean final validation top-1 per network (lr None), and how many of their runs finished of how many
    widened: tuple[str, ...] = ()
    widened_top1: tuple[LearningRateChoice, ...] = ()
    widened_runs: tuple[int, int] | None = None
    first_candidates: tuple[float, ...] = ()  # the rates the search started from, where chosen.json records them
    diverged_runs: int = 0  # of the runs it counts (its planned finished runs, as read here), those that diverged
    curves: pd.DataFrame | None = field(default=None, metadata={"json": None})  # network, lr, epoch, val_top1


def _search_rows(rows: pd.DataFrame, search_grid: str) -> pd.DataFrame:
    """The rows of ``search_grid``'s runs, with their variant ``<network>@lr<rate>`` split into ``network`` and
    ``lr`` (the rate as named)."""
    rows = rows[(rows["grid"] == search_grid) & rows["variant"].astype(str).str.contains(LR_SEPARATOR, regex=False)]
    if rows.empty:
        return rows.assign(network=[], lr=[])
    split = rows["variant"].astype(str).str.rsplit(LR_SEPARATOR, n=1, expand=True)
    return rows.assign(network=split[0], lr=split[1])


def _curves(curves: pd.DataFrame, search_grid: str, runs: pd.DataFrame | None) -> pd.DataFrame | None:
    """Mean validation top-1 per (network, candidate, epoch) of the search grid's runs: of its finished planned
    ``runs`` (``planned_search_runs``) where given, as its choice and its table count them, less those without a
    curve in ``curves`` (the report passes the ok and flagged runs' curves; a diverged run has none)."""
    if curves is None or curves.empty or "val_top1" not in curves:
        return None
    rows = _search_rows(curves, search_grid).dropna(subset=["val_top1"])
    if runs is not None:
        rows = rows[rows["run_id"].isin(runs["run_id"])]
    if rows.empty:
        return None
    return rows.assign(lr=rows["lr"].astype(float)).groupby(["network", "lr", "epoch"], as_index=False)["val_top1"].mean()


def is_search(grid: str, meta: dict | None) -> bool:
    """Whether ``grid`` (with its grid.json ``meta``) is a learning-rate search: named ``<grid>-lr``, every variant
    ``<network>@lr<rate>`` (the first pass's ``paper-claim-lr`` compares networks, and is not one)."""
    variants = (meta or {}).get("variants") or {}
    return grid.endswith(LR_SEARCH_SUFFIX) and bool(variants) and all(LR_SEPARATOR in str(v) for v in variants)


def search_grids(frame: pd.DataFrame, metas: dict[str, dict]) -> list[str]:
    """The learning-rate searches among the grids of ``frame`` and of their grid.json ``metas`` (``is_search``;
    a grid without grid.json, e.g. from a table, is judged by its variants in ``frame``)."""
    names = sorted(set(frame["grid"].astype(str)) | set(metas), key=grid_key)
    return [g for g in names if is_search(g, metas.get(g) or {
        "variants": dict.fromkeys(frame.loc[frame["grid"].astype(str) == g, "variant"].astype(str))})]


def planned_runs(meta: dict) -> int:
    """A search's runs as its grid.json ``meta`` plans them: its variants (networks x candidates, widened ones
    too) x its seeds (``TUNING_SEEDS`` where grid.json does not list them)."""
    seeds = meta.get("seeds") if isinstance(meta.get("seeds"), list) else None
    return len(meta.get("variants") or {}) * (len(seeds) if seeds else TUNING_SEEDS)


SEARCH_RUNS_PER_NETWORK = len(LR_CANDIDATES) * TUNING_SEEDS  # a search before any widening: every candidate x seed


def search_progress(frame: pd.DataFrame, search_grid: str, meta: dict | None,
                    networks: list[str]) -> dict[str, tuple[int, int]]:
    """Per network, ``(runs planned, runs finished)`` of ``search_grid``: planned for each network its grid.json
    ``meta`` lists, at its rates (widened ones too) x its seeds (``planned_runs``); without one, for each of
    ``networks`` at every candidate rate and tuning seed. Finished as the search counts them (``planned_search_runs``).
    """
    listed = meta.get("variants") if isinstance(meta, dict) else None
    variants = [str(v) for v in listed] if isinstance(listed, (list, dict)) else []
    rates = pd.Series([v.rsplit(LR_SEPARATOR, 1)[0] for v in variants] or list(networks), dtype=object).value_counts()
    per_rate = planned_runs(meta) // len(variants) if variants else SEARCH_RUNS_PER_NETWORK
    done = planned_search_runs(frame, search_grid, meta if variants else None)["network"].value_counts()
    return {str(n): (int(k) * per_rate, int(done.get(n, 0))) for n, k in rates.items()}


def finished_search_runs(frame: pd.DataFrame, search_grid: str) -> pd.DataFrame:
    """The finished runs of ``search_grid`` as the search counts them (``_search_rows``): ok, flagged, and those whose
    training diverged (failed, ``Diverged``), these scored ``DIVERGED_VAL_TOP1`` with ``diverged`` True
    (docs/study.md, section 2)."""
    rows = scored_as_searched(frame)
    return _search_rows(rows[rows["status"].isin([RunStatus.OK, RunStatus.FLAGGED]) | rows["diverged"]], search_grid)


def planned_search_runs(frame: pd.DataFrame, search_grid: str, meta: dict | None) -> pd.DataFrame:
    """The finished runs of ``search_grid`` (``finished_search_runs``) that its grid.json ``meta`` plans: its variants
    (networks x candidates) and its seeds, where it lists them; a run at another rate or seed (e.g. of a ``tune
    --seeds 3`` into the same folder) is not the search's, as the choice (``experiments.tuning``) leaves it out."""
    return of_plan(finished_search_runs(frame, search_grid), meta)


def of_plan(rows: pd.DataFrame, meta: dict | None) -> pd.DataFrame:
    """The ``rows`` of the variants, seeds and protocol a search's grid.json ``meta`` plans, where it names them."""
    variants = {str(v) for v in (meta or {}).get("variants") or {}}
    seeds, protocol = (meta or {}).get("seeds"), (meta or {}).get("protocol")
    if isinstance(protocol, str) and "protocol" in rows:
        rows = rows[rows["protocol"].astype(str).eq(protocol)]
    if variants:
        rows = rows[rows["variant"].astype(str).isin(variants)]
    if isinstance(seeds, list) and seeds:
        rows = rows[pd.to_numeric(rows["seed"], errors="coerce").isin(seeds)]
    return rows


def _in_progress(search_grid: str, meta: dict, rows: pd.DataFrame, curves: pd.DataFrame | None) -> LearningRateSearch:
    """A search without ``chosen.json``: the mean final validation top-1 of its planned finished runs (``rows``:
    ``planned_search_runs``) per candidate."""
    scored = rows.dropna(subset=["val_top1"])
    plan = [str(v).rsplit(LR_SEPARATOR, 1) for v in meta.get("variants") or {} if LR_SEPARATOR in str(v)]
    networks = sorted({network for network, _ in plan} | set(scored["network"]), key=natural_key)
    per_rate = scored.groupby(["network", "lr"]).agg(mean=("val_top1", "mean"), size=("val_top1", "size"),
                                                     diverged=("diverged", "sum"))
    choices = tuple(LearningRateChoice(network, None,
                                       {str(lr): float(row["mean"]) for (n, lr), row in per_rate.iterrows() if n == network},
                                       {str(lr): int(row["size"]) for (n, lr), row in per_rate.iterrows() if n == network},
                                       {str(lr): int(row["diverged"]) for (n, lr), row in per_rate.iterrows()
                                        if n == network and row["diverged"]})
                    for network in networks)
    protocols = sorted(rows["protocol"].dropna().astype(str).unique()) if "protocol" in rows else []
    if isinstance(meta.get("protocol"), str):  # the plan names it (and ``rows`` are of it): known before any run finishes
        protocols = [meta["protocol"]]
    copied = int(rows["reused_from"].notna().sum()) if "reused_from" in rows else 0
    return LearningRateSearch(searched_grid(search_grid), ", ".join(protocols) or "?", choices,
                              curves=_curves(curves, search_grid, rows), runs_done=len(rows),
                              runs_planned=planned_runs(meta), runs_copied=copied, diverged_runs=int(rows["diverged"].sum()),
                              candidates=tuple(sorted({lr for _, lr in plan} | set(scored["lr"].astype(str)), key=float)))


def _widened_after(search_grid: str, meta: dict | None, rows: pd.DataFrame | None,
                   choices: tuple[LearningRateChoice, ...]) -> dict:
    """``LearningRateSearch``'s ``widened`` fields where the search's grid.json ``meta`` plans rates its recorded
    choice did not search ({} where it plans none); ``rows``: the runs ``meta`` plans (``planned_search_runs``)."""
    if rows is None or not meta:
        return {}
    searched = {rate for choice in choices for rate in choice.val_top1}
    progress = _in_progress(search_grid, meta, rows, None)
    added = tuple(rate for rate in progress.candidates if rate not in searched)
    if not added:
        return {}
    kept = tuple(LearningRateChoice(c.network, None, {r: v for r, v in c.val_top1.items() if r in added},
                                    {r: n for r, n in c.runs.items() if r in added},
                                    {r: n for r, n in c.diverged.items() if r in added}) for c in progress.choices)
    widened_plan = {**meta, "variants": {v: spec for v, spec in (meta.get("variants") or {}).items()
                                         if str(v).rsplit(LR_SEPARATOR, 1)[-1] in added}}
    return {"widened": added, "widened_top1": kept,
            "widened_runs": (int(rows["lr"].isin(added).sum()), planned_runs(widened_plan))}


def _chosen(path: Path, meta: dict | None, frame: pd.DataFrame | None, curves: pd.DataFrame | None) -> LearningRateSearch:
    """A search with a choice (``path``: its chosen.json): the choice, the curves of its planned runs under the
    choice's protocol and the rates its grid.json ``meta`` added since (``_widened_after``). A grid.json written
    by a later search under another protocol plans that search's runs, not this choice's."""
    search_grid = path.parent.name
    try:
        choice = json.loads(path.read_text(encoding="utf-8"))
        protocol = str(choice["protocol"])
        own = (meta or {}).get("protocol") in (None, protocol)
        plan = {**(meta or {}), "protocol": protocol} if own else {"protocol": protocol}
        choices = tuple(LearningRateChoice(str(name), float(entry["lr"]),
                                           {str(k): float(v) for k, v in entry["val_top1"].items()},
                                           {str(k): int(v) for k, v in entry.get("runs", {}).items()},
                                           {str(k): int(v) for k, v in entry.get("diverged", {}).items()})
                        for name, entry in sorted(choice["variants"].items(), key=lambda item: natural_key(item[0])))
        counted = None if frame is None else planned_search_runs(frame, search_grid, plan)
        return LearningRateSearch(str(choice["grid"]), protocol, choices, curves=_curves(curves, search_grid, counted),
                                  diverged_runs=0 if counted is None else int(counted["diverged"].sum()),
                                  first_candidates=tuple(float(c) for c in choice.get("first_candidates", ())),
                                  **_widened_after(search_grid, plan if own and meta else None, counted, choices))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return LearningRateSearch(searched_grid(search_grid), "?", problem=f"'{path}' unreadable ({error})")


def searches(results: str | Path, curves: pd.DataFrame | None, frame: pd.DataFrame | None = None,
             grids: dict | None = None) -> tuple[LearningRateSearch, ...]:
    """Every ``*-lr/chosen.json`` under ``results``, with the validation curves of its search runs; with the
    results ``frame`` and the grids' ``grid.json`` (``grids``), also every search still without a choice."""
    chosen = {path.parent.name: path for path in Path(results).glob(f"*{LR_SEARCH_SUFFIX}/chosen.json")}
    pending = {g for g, meta in (grids or {}).items() if is_search(g, meta) and g not in chosen} if frame is not None else set()
    return tuple(_in_progress(name, grids[name], planned_search_runs(frame, name, grids[name]), curves) if name in pending
                 else _chosen(chosen[name], (grids or {}).get(name), frame, curves)
                 for name in sorted(chosen.keys() | pending, key=grid_key))


def figure_name(search: LearningRateSearch) -> str:
    return f"lr_search_{search.grid}"


