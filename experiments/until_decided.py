"""``ablate --until-decided``: train a grid's seeds in looks until each comparison is decided.

docs/study.md has the design. The looks are ``analysis.sequential.plan_looks(max_seeds)``; after
each, every open variant's paired differences against the grid's reference (seeds ``0..n-1``, read
back from the run files) go through ``analysis.sequential.sequential_decision`` with alpha split
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

import numpy as np
import pandas as pd

from analysis.load import TIDY_COLUMNS, load_results, of_engine_version
from analysis.sequential import OPEN, plan_looks, sequential_decision
from analysis.stats import sd_upper_bound, seeds_for_power
from analysis.status import RunStatus

from .config import ENGINE_VERSION
from .store import write_json


def paired_differences(frame: pd.DataFrame, grid: str, protocol: str, variant: str, reference: str,
                       n: int) -> np.ndarray | None:
    """``variant - reference`` test top-1 of seeds ``0..n-1`` (ok runs of the protocol, trained by this engine
    version), or None while a seed lacks a finished ok pair."""
    frame = of_engine_version(frame, ENGINE_VERSION)
    rows = frame[(frame["grid"] == grid) & (frame["protocol"] == protocol) & (frame["status"] == RunStatus.OK)]
    top1 = {v: rows[rows["variant"] == v].set_index("seed")["test_top1"] for v in (variant, reference)}
    seeds = range(n)
    if not all(s in top1[variant].index and s in top1[reference].index for s in seeds):
        return None
    return np.array([top1[variant][s] - top1[reference][s] for s in seeds], float)


def seeds_to_decide(diffs: np.ndarray, effect: float, comparisons: int) -> str:
    """The plan's estimate for a comparison left open at the last look: paired seeds per variant that detect
    ``effect`` with 80% power (a fixed design at alpha / comparisons), with the SD's 80% upper bound."""
    sd_up = sd_upper_bound(float(np.std(diffs, ddof=1)), len(diffs) - 1)
    seeds = seeds_for_power(effect / sd_up, paired=True, alpha=0.05 / comparisons) if sd_up > 0 else None
    need = f"about {seeds}" if seeds else "more than 10,000"
    return (f"{need} paired seeds per variant would detect {effect:g} points with 80% power (fixed design, "
            f"alpha 0.05/{comparisons}; paired SD taken as its 80% upper bound {sd_up:.2f})")


def decide(frame: pd.DataFrame, grid: str, protocol: str, reference: str, variants: list[str],
           schedule: tuple[int, ...], margin: float) -> dict[str, dict]:
    """Each variant's state after the looks its run files allow: ``{variant: {label, look, n, estimate,
    ci, p, boundary}}``; ``label`` is ``continue`` (not decided, or its next look's seeds are missing)."""
    out = {}
    for variant in variants:
        state = {"label": OPEN, "look": 0, "n": 0}
        for look, n in enumerate(schedule, 1):
            diffs = paired_differences(frame, grid, protocol, variant, reference, n)
            if diffs is None:
                break
            decision = sequential_decision(diffs, look, schedule, margin, n_comparisons=len(variants))
            state = {"label": decision.label, "look": look, "n": n, "estimate": decision.estimate,
                     "ci": list(decision.ci), "p": decision.p, "boundary": decision.boundary}
            if decision.label.startswith("inconclusive"):
                state["to_decide"] = seeds_to_decide(diffs, margin, len(variants))
            if decision.label != OPEN:
                break
        out[variant] = state
    return out


def _runs(results: Path, grid: str) -> pd.DataFrame:
    """The tidy run table, empty while the grid has no run folder yet."""
    if not (Path(results) / grid / "grid.json").exists():
        return pd.DataFrame(columns=list(TIDY_COLUMNS))
    try:
        return load_results(results)
    except ValueError:  # grid folders but no run folders yet
        return pd.DataFrame(columns=list(TIDY_COLUMNS))


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
        states = decide(_runs(results, grid), grid, protocol, reference, variants, schedule, margin)
        open_variants = [v for v, s in states.items() if s["label"] == OPEN]
        if not open_variants:
            break
        if (Path(results) / grid).is_dir():  # before each look's training (once the grid has a run folder): a
            record(states)                   # process stopped mid-look leaves where each comparison stands
        train(n, open_variants)
    states = decide(_runs(results, grid), grid, protocol, reference, variants, schedule, margin)
    for state in states.values():
        if state["label"] == OPEN:
            state["label"] = (f"stopped before look {state['look'] + 1}: a seed of it or of the reference has no ok run "
                              "(failed, flagged by the training-health check, or unfinished)")
    record(states)
    return states
