"""``ablate --until-decided``: train a grid's seeds in looks until each comparison is decided.

docs/study.md has the design. The looks are ``evidence.sequential.plan_looks(max_seeds)``; after
each, every open variant's paired differences against the grid's reference (seeds ``0..n-1``, read
back from the run files) go through ``evidence.decisions.decide`` (the rule of ``evidence.sequential``) with alpha split
over the compared variants (``--compare``; default every variant but the reference). A decided variant gets
no more seeds. The decisions are a pure function of the run files and of the design (schedule, margin,
reference, protocol, compared variants), so a rerun after an
interruption recomputes the same looks and trains only the missing seeds: no seed and no look is counted
twice. RESULTS/<grid>/sequential.json records them, and with them the design, which is fixed at the first
look: a rerun asking for another design is refused (``check_design``) instead of re-deciding old looks.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from evidence.decisions import decide
from evidence.load import TIDY_COLUMNS, load_results, of_architecture_revisions
from evidence.sequential import OPEN, plan_looks

from .config import ENGINE_VERSION
from .grids import architecture_revisions
from .store import write_json


def _runs(results: Path, grid: str) -> pd.DataFrame:
    """The tidy run table of the models' current architecture revisions, empty while the grid has no run folder yet."""
    if not (Path(results) / grid / "grid.json").exists():
        return pd.DataFrame(columns=list(TIDY_COLUMNS))
    try:
        frame = load_results(results)
    except ValueError:  # grid folders but no run folders yet
        return pd.DataFrame(columns=list(TIDY_COLUMNS))
    return of_architecture_revisions(frame, architecture_revisions(tuple(frame["model"].dropna().unique())))


def check_design(results: Path, grid: str, protocol: str, reference: str, schedule: tuple[int, ...],
                 margin: float, variants: list[str]) -> None:
    """Refuse a design other than the one ``sequential.json`` recorded: a group-sequential rule's boundaries
    depend on the whole look schedule and on the compared variants (alpha is split over them), so changing
    ``--max-seeds`` or ``--compare`` (or the margin, reference or protocol) after a look would re-decide the looks
    already made at other levels. ValueError naming both designs."""
    path = Path(results) / grid / "sequential.json"
    if not path.exists():
        return
    recorded = json.loads(path.read_text())
    recorded = {**recorded, "compared": sorted(recorded.get("variants") or {})}
    asked = {"protocol": protocol, "reference": reference, "schedule": list(schedule), "margin": margin,
             "compared": sorted(variants)}
    differs = {k: (recorded.get(k), v) for k, v in asked.items() if recorded.get(k) != v}
    if differs:
        was = ", ".join(f"{k} {old}" for k, (old, _) in differs.items())
        now = ", ".join(f"{k} {new}" for k, (_, new) in differs.items())
        cap = (recorded.get("schedule") or [None])[-1]
        compare = "".join(f" --compare {v}" for v in recorded["compared"])
        raise ValueError(f"{path} records a sequential design with {was}; this run asks for {now}. The design is "
                         f"fixed before the first look: rerun with --max-seeds {cap} --margin {recorded.get('margin')}"
                         f"{compare} (the recorded design), or start the procedure in another --results folder")


def run_until_decided(grid: str, reference: str, variants: list[str], protocol: str, results: Path,
                      max_seeds: int, margin: float, train: Callable[[int, list[str]], None]) -> dict[str, dict]:
    """Train seeds ``0..n-1`` of the reference and the open variants look by look (``train(n, variants)``),
    deciding after each; returns the final states. ``sequential.json`` records the states before each look's
    training (``continue`` for a comparison still open: its next look is training) and the final ones."""
    schedule = plan_looks(max_seeds)
    check_design(results, grid, protocol, reference, schedule, margin, variants)

    def record(states: dict[str, dict]) -> None:
        write_json(Path(results) / grid / "sequential.json", {
            "grid": grid, "protocol": protocol, "reference": reference, "schedule": list(schedule), "margin": margin,
            "alpha": 0.05, "rule": "O'Brien-Fleming-type alpha spending, paired t at nominal levels, Bonferroni over "
            "the compared variants (docs/study.md)", "variants": states})

    for n in schedule:
        states = decide(_runs(results, grid), grid, protocol, reference, variants, schedule, margin, ENGINE_VERSION)
        open_variants = [v for v, s in states.items() if s["label"] == OPEN]
        if not open_variants:
            break
        if (Path(results) / grid).is_dir():  # before each look's training (once the grid has a run folder): a
            record(states)                   # process stopped mid-look leaves where each comparison stands
        train(n, open_variants)
    states = decide(_runs(results, grid), grid, protocol, reference, variants, schedule, margin, ENGINE_VERSION)
    for state in states.values():
        if state["label"] == OPEN:
            state["label"] = (f"stopped before look {state['look'] + 1}: a seed of it or of the reference has no ok run "
                              "(failed, flagged by the training-health check, or unfinished)")
    record(states)
    return states
