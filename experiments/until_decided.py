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
import math
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True, kw_only=True)
class SequentialDesign:
    """One grid's group-sequential design (docs/study.md): the reference, the compared variants (alpha is split
    over them), the protocol, the margin and the look schedule ``evidence.sequential.plan_looks(max_seeds)``."""
    grid: str
    reference: str
    variants: tuple[str, ...]
    protocol: str
    margin: float
    max_seeds: int

    @property
    def schedule(self) -> tuple[int, ...]:
        return tuple(plan_looks(self.max_seeds))

    def states(self, results: Path) -> dict[str, dict]:
        """Where each comparison stands, decided from the run files under ``results`` alone."""
        return decide(_runs(results, self.grid), self.grid, self.protocol, self.reference, list(self.variants),
                      self.schedule, self.margin, ENGINE_VERSION)

    def record(self, results: Path, states: dict[str, dict]) -> None:
        """Write ``sequential.json``, once the grid has a folder (before its first run there is nothing to record)."""
        if not (Path(results) / self.grid).is_dir():
            return
        write_json(Path(results) / self.grid / "sequential.json", {
            "grid": self.grid, "protocol": self.protocol, "reference": self.reference, "schedule": list(self.schedule),
            "margin": self.margin, "alpha": 0.05, "rule": "O'Brien-Fleming-type alpha spending, paired t at nominal "
            "levels, Bonferroni over the compared variants (docs/study.md)", "variants": states})


@dataclass(frozen=True)
class Look:
    """What one look trains: seeds ``0..seeds-1`` of the reference and of the comparisons still open, those
    furthest from stopping first (``distance_from_stopping``); ``ahead``: the seeds the next look adds (0 at the
    last), which idle workers may train ahead."""
    seeds: int
    open_variants: tuple[str, ...]
    ahead: int = 0


def in_look_order(configs: list, variants: list[str] | tuple[str, ...]) -> list:
    """The runs of ``configs`` of ``variants``, variant by variant in that order (a look's: the reference, then the
    comparisons furthest from stopping first), each variant's seeds in turn: the order in which idle workers train
    the next look's seeds ahead."""
    order = list(variants)
    return sorted((c for c in configs if c.variant in order), key=lambda c: order.index(c.variant))


def distance_from_stopping(state: dict) -> float:
    """How far a comparison still open stood from stopping at its last look: the smaller of its p over the look's
    boundary (better or worse) and its larger TOST p over the TOST level (equivalent); infinite before its first
    look. The next look's seeds, trained ahead on idle workers, go first to the comparisons furthest from
    stopping, the likeliest to need them: which seeds a look reads is fixed by the schedule, never by this order."""
    try:
        ratios = [state["p"] / state["boundary"], max(state["tost_p"]) / state["tost_level"]]
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return math.inf
    finite = [r for r in ratios if math.isfinite(r)]
    return min(finite) if finite else math.inf


def check_design(design: SequentialDesign, results: Path) -> None:
    """Refuse a design other than the one ``sequential.json`` recorded: a group-sequential rule's boundaries
    depend on the whole look schedule and on the compared variants (alpha is split over them), so changing
    ``--max-seeds`` or ``--compare`` (or the margin, reference or protocol) after a look would re-decide the looks
    already made at other levels. ValueError naming both designs."""
    path = Path(results) / design.grid / "sequential.json"
    if not path.exists():
        return
    recorded = json.loads(path.read_text())
    recorded = {**recorded, "compared": sorted(recorded.get("variants") or {})}
    asked = {"protocol": design.protocol, "reference": design.reference, "schedule": list(design.schedule),
             "margin": design.margin, "compared": sorted(design.variants)}
    differs = {k: (recorded.get(k), v) for k, v in asked.items() if recorded.get(k) != v}
    if differs:
        was = ", ".join(f"{k} {old}" for k, (old, _) in differs.items())
        now = ", ".join(f"{k} {new}" for k, (_, new) in differs.items())
        cap = (recorded.get("schedule") or [None])[-1]
        compare = "".join(f" --compare {v}" for v in recorded["compared"])
        raise ValueError(f"{path} records a sequential design with {was}; this run asks for {now}. The design is "
                         f"fixed before the first look: rerun with --max-seeds {cap} --margin {recorded.get('margin')}"
                         f"{compare} (the recorded design), or start the procedure in another --results folder")


def looks(design: SequentialDesign, results: Path) -> Iterator[Look]:
    """The looks still to train, decided one at a time from the run files: the caller trains each look before
    asking for the next (``for look in looks(...): train(look)``), then reads :func:`final_states`.

    Refuses (ValueError) a design other than the one ``sequential.json`` recorded. Before each look's training,
    ``sequential.json`` records where every comparison stands (``continue`` for one still open), so that a process
    stopped mid-look leaves that behind. A look whose runs failed does not stop the next ones; its comparisons
    stay open until the schedule ends."""
    check_design(design, results)
    for n in design.schedule:
        states = design.states(results)
        open_variants = tuple(sorted((v for v, s in states.items() if s["label"] == OPEN),
                                     key=lambda v: -distance_from_stopping(states[v])))
        if not open_variants:
            return
        design.record(results, states)
        yield Look(n, open_variants, next((m for m in design.schedule if m > n), n) - n)


def final_states(design: SequentialDesign, results: Path, time_boxed: bool = False) -> dict[str, dict]:
    """Each comparison's state after the looks, recorded in ``sequential.json`` (once the grid has a run folder); one
    still open there (a seed of it or of the reference has no ok run) is labelled as stopped before its next look,
    unless the call was ``time_boxed`` (``--minutes``): its unfinished seeds are then the box's doing, and the
    comparison stays open (``continue``) for the next call."""
    states = design.states(results)
    for state in states.values():
        if state["label"] == OPEN and not time_boxed:
            state["label"] = (f"stopped before look {state['look'] + 1}: a seed of it or of the reference has no ok run "
                              "(failed, flagged by the training-health check, or unfinished)")
    design.record(results, states)
    return states
