"""Learning rates chosen on validation, with the same budget for every network (docs/study.md).

For a grid, every variant (network) is trained at each candidate peak learning rate with the same
seeds under the same protocol: the runs form an ordinary grid, ``<grid>-lr``, whose variants are
``<variant>@lr<value>``. A variant's learning rate is the candidate with the best mean final
*validation* top-1 (the choice never reads the test set, which a search run records like every run);
ties go to the smaller rate. The choice,
with every candidate's validation mean and the runs it came from, is written to
``RESULTS/<grid>-lr/chosen.json``; ``ablate`` then trains the grid's main runs at those rates
(recorded in every run's ``config.json`` as ``protocol.lr``).

Where a network's best rate is an edge of the candidates, the grid does not bracket it: the search is widened
by one candidate beyond that edge for every network alike (``widen``; at most ``LR_EXTENSIONS`` times a side of
the first candidates), and the choice is made among all of them.

The search's seeds (``TUNING_FIRST_SEED`` on) are disjoint from the main runs' seeds 0, 1, ..., so a
main run is never the run its learning rate was selected on.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from evidence.load import load_results, of_architecture_revisions, of_engine_version
from evidence.status import RunStatus, is_diverged, scored_as_searched
from study import grids as study_grids
from study.grids import LR_CANDIDATES, LR_SEPARATOR, TUNING_SEEDS, search_name

from .config import ENGINE_VERSION, RunConfig
from .grids import Grid, Variant, architecture_revisions, choice_path, read_choice, resolve
from .store import write_json

TUNING_FIRST_SEED = 1000


def tuning_grid(grid: Grid, candidates: tuple[float, ...] = LR_CANDIDATES) -> Grid:
    """The search as a grid: every variant of ``grid`` at every candidate learning rate.

    A candidate is named by ``f"{lr:g}"`` (``dct@lr0.05``), so it must be that number exactly; the search's
    name must not be a named grid's (its runs would land in that grid's folder)."""
    if not candidates or any(not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0) for c in candidates):
        raise ValueError(f"learning-rate candidates must be positive finite numbers, got {list(candidates)}")
    if len(set(candidates)) < len(candidates):
        raise ValueError(f"learning-rate candidates {list(candidates)} repeat a rate: give each rate once")
    inexact = [c for c in candidates if float(f"{c:g}") != c]
    if inexact:
        raise ValueError(f"learning-rate candidates {inexact} are named by 6 significant digits ({[f'{c:g}' for c in inexact]}) "
                         "and would train at one rate but be recorded at another: give them with at most 6 digits")
    search = search_name(grid.name)
    variants = {f"{name}{LR_SEPARATOR}{lr:g}": Variant(v.model, dict(v.model_kwargs), v.optional, float(lr))
                for name, v in grid.variants.items() for lr in sorted(candidates)}
    reference = f"{grid.reference}{LR_SEPARATOR}{sorted(candidates)[len(candidates) // 2]:g}"
    return Grid(search, f"Learning-rate search for grid {grid.name} on validation (docs/study.md).",
                reference, variants, protocol=grid.protocol, dataset=grid.dataset, paired=grid.paired)


def search_runs(grid: Grid, protocol: str | None, candidates: tuple[float, ...], seeds: int,
                plugins: tuple[str, ...] = ()) -> tuple[Grid, list[RunConfig], dict[str, str]]:
    """The search of ``grid`` under ``protocol``: its grid, its runs (seeds from ``TUNING_FIRST_SEED``) and the
    variants left out; ValueError for a protocol without a validation split."""
    search = tuning_grid(grid, candidates)
    configs, missing = resolve(search, protocol, seeds, plugins=plugins, first_seed=TUNING_FIRST_SEED)
    if configs[0].protocol.val_per_class == 0:  # the search chooses on validation, never on the test set
        raise ValueError(f"protocol {configs[0].protocol.name} has no validation split (val_per_class 0): a "
                         "learning-rate search chooses on validation, never on the test set; use a protocol with one")
    return search, configs, missing


def choose_learning_rates(results: Path, grid: Grid, candidates: tuple[float, ...] = LR_CANDIDATES,
                          seeds: int = TUNING_SEEDS, protocol: str | None = None) -> dict[str, dict]:
    """``{variant: {"lr", "val_top1": {lr: mean}, "runs": {lr: n}[, "diverged": {lr: n}]}}`` from the finished search
    runs under ``protocol`` (any, if None) at ``candidates``; a variant is left out until every candidate has
    ``seeds`` runs and all of them finished (ok, flagged, or failed because they diverged: those score
    ``DIVERGED_VAL_TOP1`` and are counted under ``diverged``). Runs at other rates, under other protocols, of another engine
    version or architecture revision than this one's (whose main runs the choice is for; ``superseded`` marks them
    only once a run of the newer version has finished) and second copies (``duplicate``) are not the search's."""
    search = search_name(grid.name)
    frame = of_engine_version(load_results(results), ENGINE_VERSION)
    frame = of_architecture_revisions(frame, architecture_revisions(tuple(frame["model"].dropna().unique())))
    frame = frame[(frame["grid"] == search) & ~frame["status"].isin([RunStatus.SUPERSEDED, RunStatus.DUPLICATE])]
    if protocol is not None:
        frame = frame[frame["protocol"] == protocol]
    # the search's own seeds only: a run of another seed in the folder (e.g. of ``tune --seeds 3``) is not averaged in
    frame = frame[pd.to_numeric(frame["seed"], errors="coerce").isin(range(TUNING_FIRST_SEED, TUNING_FIRST_SEED + seeds))]
    wanted = [f"{lr:g}" for lr in sorted(candidates)]
    chosen = {}
    for name in grid.variants:
        rows = frame[frame["variant"].astype(str).str.startswith(f"{name}{LR_SEPARATOR}")]
        rates = rows["variant"].astype(str).str.slice(len(name) + len(LR_SEPARATOR))
        rows, rates = rows[rates.isin(wanted)], rates[rates.isin(wanted)]
        # a candidate that diverged (``flagged``) still competes with its validation score; it just loses. A run whose
        # loss became non-finite (failed, ``Diverged``) is finished too, scoring DIVERGED_VAL_TOP1 (docs/study.md)
        rows = scored_as_searched(rows)
        if rows.empty or (~(rows["status"].isin([RunStatus.OK, RunStatus.FLAGGED]) | rows["diverged"])).any():
            continue
        # rounded: validation top-1 comes in steps (0.1 points on 1,000 images), so two rates whose runs tie have
        # equal means, which the float sums (80.0 + 80.4 and 80.1 + 80.3) would not always give
        means = rows.groupby(rates)["val_top1"].mean().round(6)
        counts = rows.groupby(rates).size()
        if means.isna().any() or any(counts.get(rate, 0) < seeds for rate in wanted):
            continue  # a candidate not (fully) trained yet: no choice among the others
        best = min((rate for rate in wanted if means[rate] == means.max()), key=float)  # ties to the smaller rate
        chosen[name] = {"lr": float(best), "val_top1": {rate: round(float(means[rate]), 4) for rate in wanted},
                        "runs": {rate: int(counts[rate]) for rate in wanted}}
        if (lost := rows["diverged"]).any():  # which candidates' runs diverged, and how many
            chosen[name]["diverged"] = {rate: int(n) for rate, n in rates[lost].value_counts().sort_index().items()}
    return chosen


NOT_FINISHED = "search runs not finished yet"
RUNNING_ELSEWHERE = "a search run is training in another process"


def why_unchosen(rows: list[dict], chosen: dict[str, dict]) -> dict[str, str]:
    """Per network of the search ``rows`` (one per search run: ``variant``, ``status``) left without a rate, why."""
    statuses: dict[str, set] = {}
    for row in rows:  # a run that diverged is finished (it scores 0; docs/study.md), not a failure to rerun
        statuses.setdefault(str(row["variant"]).partition(LR_SEPARATOR)[0], set()).add(
            RunStatus.OK.value if is_diverged(row) else str(row["status"]))
    reasons = {}
    for network, seen in statuses.items():
        if network in chosen:
            continue
        if seen & {RunStatus.FAILED.value, RunStatus.LOST.value}:
            reasons[network] = "a search run failed (rerun with --retry-failed)"
        elif RunStatus.RUNNING.value in seen:
            reasons[network] = RUNNING_ELSEWHERE
        elif seen - {RunStatus.OK.value}:
            reasons[network] = NOT_FINISHED
        else:
            reasons[network] = "its search runs have no validation top-1"
    return reasons


def widen(candidates: tuple[float, ...], chosen: dict[str, dict], first: tuple[float, ...]) -> tuple[float, ...] | None:
    """``candidates`` with one more beyond each edge that some network's best rate in ``chosen`` lies on (the
    step between that edge and its neighbour again), for every network alike; a side is widened at most
    ``LR_EXTENSIONS`` times beyond the ``first`` candidates. None when nothing is widened."""
    rates, now, base = {float(entry["lr"]) for entry in chosen.values()}, sorted(set(candidates)), sorted(set(first))
    extensions = study_grids.LR_EXTENSIONS
    if len(now) < 2:
        return None
    above, below = float(f"{now[-1] * now[-1] / now[-2]:.6g}"), float(f"{now[0] * now[0] / now[1]:.6g}")
    wider = list(now)
    if now[-1] in rates and sum(c > base[-1] for c in now) < extensions and above > now[-1]:
        wider.append(above)
    if now[0] in rates and sum(c < base[0] for c in now) < extensions and below < now[0]:
        wider.insert(0, below)  # (a step lost to rounding adds nothing: no rate is searched twice)
    return tuple(wider) if len(wider) > len(now) else None


def settle(results: Path, grid: Grid, rows: list[dict], candidates: tuple[float, ...], seeds: int,
           protocol: str, first: tuple[float, ...] | None = None) -> tuple[dict[str, dict], dict[str, str], tuple | None]:
    """After a search's runs (``rows``) at ``candidates`` (widened from ``first``, by default themselves): the
    rates chosen, per network without one why, and the wider candidates to search next where a best rate is
    at an edge (``widen``; else None). Only a complete choice that needs no widening is written, to
    ``chosen.json``; otherwise an older choice under ``protocol`` is removed."""
    trained = any(str(row["status"]) == RunStatus.OK.value for row in rows)
    chosen = choose_learning_rates(results, grid, candidates, seeds, protocol) if trained else {}
    unchosen = why_unchosen(rows, chosen)
    wider = None if unchosen else widen(candidates, chosen, first or candidates)
    if not unchosen and wider is None:
        write_choice(results, grid, protocol, chosen, first or candidates)
    elif read_choice(results, grid, protocol):  # an older choice must not stay behind for ``ablate`` to use
        choice_path(results, grid).unlink()
    return chosen, unchosen, wider


def write_choice(results: Path, grid: Grid, protocol: str, chosen: dict[str, dict],
                 first: tuple[float, ...] | None = None) -> Path:
    """``chosen.json``: the rule, the rates chosen and, with ``first``, the candidates the search started from
    (before any widening: the report tells from them a side the cap, ``LR_EXTENSIONS``, stopped)."""
    path = choice_path(results, grid)
    write_json(path, {"grid": grid.name, "protocol": protocol,
                      "rule": "best mean final validation top-1 over the search's seeds; ties to "
                      "the smaller rate (docs/study.md)", "variants": chosen,
                      **({"first_candidates": sorted(first)} if first else {})})
    return path


def widened_before(results: Path, grid: Grid, candidates: tuple[float, ...], seeds: int,
                   configs: list[RunConfig]) -> tuple[float, ...]:
    """The widest candidates the finished search runs under ``results`` already call for (``widen`` applied as
    far as every network's runs have finished), computed without training or writing anything; so that a
    new process neither shrinks the search's grid.json nor removes a choice made after a widening."""
    networks = {c.variant.partition(LR_SEPARATOR)[0] for c in configs}
    protocol, searched = configs[0].protocol.name, tuple(candidates)
    if not list((Path(results) / search_name(grid.name)).glob("*/result.json")):
        return searched  # no search run has finished here yet
    while True:
        chosen = choose_learning_rates(results, grid, searched, seeds, protocol)
        wider = widen(searched, chosen, candidates) if networks <= set(chosen) else None
        if wider is None:
            return searched
        searched = wider


def check_searched_networks(results: Path, grid: Grid, configs: list[RunConfig]) -> None:
    """ValueError when ``chosen.json`` records a choice under the search's protocol for other networks than the
    search ``configs`` train (``tune --compare`` against a whole-grid search, or the reverse): where a search is
    widened, and so what it chooses, depends on the networks searched, so one choice must not replace the other
    silently."""
    networks = sorted({c.variant.partition(LR_SEPARATOR)[0] for c in configs})
    recorded = sorted(read_choice(results, grid, configs[0].protocol.name))
    if recorded and recorded != networks:
        raise ValueError(f"{choice_path(results, grid)} records learning rates under {configs[0].protocol.name} "
                         f"chosen by a search of {', '.join(recorded)}; this search is of {', '.join(networks)}, and "
                         "the networks searched decide where a search is widened: search the recorded networks "
                         f"(`run.py tune {grid.name}` with `--compare` for each but the reference) or move that "
                         "chosen.json away first")


def search_bracketed(grid: Grid, protocol: str | None, candidates: tuple[float, ...], seeds: int, results: Path,
                     train: Callable[[Grid, list[RunConfig], dict[str, str]], list[dict]], plugins: tuple[str, ...] = (),
                     on_widen: Callable[[tuple, tuple], None] | None = None) -> tuple[Grid, list[dict], dict, dict]:
    """The search of ``grid`` at ``candidates``, widened (``widen``) while a best rate is an edge: each round's runs
    go to ``train(search grid, configs, variants left out)``, which returns one row per run, and are settled
    (``settle``); ``on_widen(searched, wider)`` hears of each widening, including one made before that this
    call resumes. Returns (the search grid, the last
    round's rows, the rates chosen, per network without one why)."""
    first = search_runs(grid, protocol, tuple(candidates), seeds, plugins)[1]
    check_searched_networks(Path(results), grid, first)
    wider = widened_before(Path(results), grid, tuple(candidates), seeds, first)  # a search widened before resumes there
    if wider != tuple(candidates) and on_widen is not None:
        on_widen(tuple(candidates), wider)
    while wider is not None:
        searched = wider
        search, configs, missing = search_runs(grid, protocol, searched, seeds, plugins)
        rows = train(search, configs, missing)
        chosen, unchosen, wider = settle(Path(results), grid, rows, searched, seeds, configs[0].protocol.name, candidates)
        if wider is not None and on_widen is not None:
            on_widen(searched, wider)
    return search, rows, chosen, unchosen
