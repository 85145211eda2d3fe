"""The report's "Decisions, look by look": every look the sequential rule made, recomputed from the run files.

For each second-edition question whose main runs have a recorded design (``RESULTS/<grid>/sequential.json``,
written by ``ablate --until-decided``), ``decision_records`` recomputes the looks with
``evidence.decisions.look_history`` under that design, so that a reader can check the stopping look, and
compares the outcome with the recorded one; ``holm_reading`` adds the study-wide Holm sensitivity reading. These
are records of numbers: ``analysis.render`` writes them (``render_looks``, ``render_holm``) and
``analysis.plots.looks_figure`` draws the per-seed differences and each look's repeated confidence interval. Only
files are read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from evidence.decisions import PairingError, look_history, paired_differences
from evidence.load import of_engine_version
from evidence.sequential import has_ended, stagewise_p
from evidence.status import RunStatus
from study.grids import gpu_folders
from study.questions import SECOND_EDITION_QUESTIONS

from .plan import side_by_side_latency

COST_COLUMNS = {"params": "params", "macs": "MACs", "latency_ms": "latency"}


@dataclass(frozen=True)
class ComparisonLooks:
    """One compared variant: its looks (``look_history`` states), the recorded state, the per-seed paired
    differences of its last look's seeds, each network's mean test top-1 over those seeds, the
    variant / reference ratio of each cost's median over the grid's main runs (latency: of the two networks measured
    side by side, ``plan.side_by_side_latency``, where both were; each run measures its own once, under the load of
    its moment), and how many of the variant's ok runs lie beyond the last look's seeds (trained ahead by workers
    that would otherwise idle)."""
    variant: str
    looks: tuple[dict, ...]
    recorded: dict
    diffs: tuple[float, ...]
    top1: tuple[float, float] | None  # (variant, reference)
    cost_ratios: tuple[tuple[str, float], ...]
    ahead: int = 0
    latency_side_by_side: bool = False  # the latency ratio is study_costs.json's side-by-side one, not the runs'


@dataclass(frozen=True)
class QuestionLooks:
    """A question's main runs in ``folder`` under the design ``sequential.json`` records."""
    question: str
    folder: str
    protocol: str
    reference: str
    schedule: tuple[int, ...]
    margin: float
    alpha: float
    rule: str
    comparisons: tuple[ComparisonLooks, ...]
    refused: str = ""  # why the looks' runs do not pair (``decisions.PairingError``): no look is shown

    @property
    def figure(self) -> str:
        return f"looks_{self.folder}"


def _cost_ratios(rows: pd.DataFrame, variant: str, reference: str,
                 latency: tuple[float, float] | None) -> tuple[tuple[str, float], ...]:
    out = []
    for column, name in COST_COLUMNS.items():
        medians = ([pd.to_numeric(rows.loc[rows["variant"] == v, column], errors="coerce").median()
                    for v in (variant, reference)] if latency is None or column != "latency_ms" else latency)
        if all(np.isfinite(m) for m in medians) and medians[1] > 0:
            out.append((name, float(medians[0] / medians[1])))
    return tuple(out)


def _comparison(frame: pd.DataFrame, folder: str, design: dict, variant: str, looks: list[dict],
                engine_version: int, latency: dict[str, float]) -> ComparisonLooks:
    """``latency``: variant -> side-by-side latency of the question's grid (``plan.side_by_side_latency``)."""
    reference, protocol = design["reference"], design["protocol"]
    n = looks[-1]["n"] if looks else 0
    diffs = paired_differences(frame, folder, protocol, variant, reference, n, engine_version) if n else None
    frame = of_engine_version(frame, engine_version)
    rows = frame[frame["grid"].eq(folder) & frame["status"].eq(RunStatus.OK) & frame["protocol"].eq(protocol)]
    top1 = None
    seeds = pd.to_numeric(rows["seed"], errors="coerce")
    if n:
        used = rows[seeds < n]
        top1 = tuple(float(used.loc[used["variant"] == v, "test_top1"].mean()) for v in (variant, reference))
    side_by_side = (latency[variant], latency[reference]) if variant in latency and reference in latency else None
    return ComparisonLooks(variant, tuple(looks), design["variants"][variant],
                           tuple(float(d) for d in diffs) if diffs is not None else (), top1,
                           _cost_ratios(rows, variant, reference, side_by_side),
                           int(((seeds >= n) & rows["variant"].eq(variant)).sum()), side_by_side is not None)


def decision_records(results: Path, frame: pd.DataFrame, engine_version: int) -> tuple[QuestionLooks, ...]:
    """Per second-edition question (and its GPU folders, ``study.grids.gpu_folders``) with a readable
    ``sequential.json``: the looks recomputed from the run files under the recorded design. An unreadable record is
    skipped here (the questions at a glance read the same file). Computed once per report:
    ``second_edition.glance_rows`` reads these records too."""
    out, latency = [], {}
    for (grid, variant), ms in side_by_side_latency(results).items():
        latency.setdefault(grid, {})[variant] = ms
    for q in SECOND_EDITION_QUESTIONS:
        for folder in (q.grid, *gpu_folders(q.grid)):
            try:
                design = json.loads((Path(results) / folder / "sequential.json").read_text())
                variants = sorted(design["variants"])
                schedule = tuple(int(n) for n in design["schedule"])
                margin, reference, protocol = float(design["margin"]), design["reference"], design["protocol"]
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
            try:
                history = look_history(frame, folder, protocol, reference, variants, schedule, margin, engine_version)
                comparisons = tuple(_comparison(frame, folder, design, v, history[v], engine_version,
                                                latency.get(q.grid, {})) for v in variants)
                refused = ""
            except PairingError as error:
                comparisons, refused = (), str(error)
            out.append(QuestionLooks(f"({q.key}) {q.text}", folder, protocol, reference, schedule, margin,
                                     float(design.get("alpha", 0.05)), str(design.get("rule", "")), comparisons,
                                     refused))
    return tuple(out)


@dataclass(frozen=True)
class HolmReading:
    """The study-wide sensitivity reading (docs/study.md, section 3, "Several questions"): the comparisons the rule
    decided *better* or *worse*, across questions, each with its stage-wise ordered p-value
    (``sequential.stagewise_p``: comparable with 0.05, unlike the look's p against its nominal level), Holm-adjusted
    over all of them (statsmodels ``multipletests``), and the fixed-sample paired t-test p at the deciding look with
    its own Holm adjustment (a second, cruder reading: it ignores the looks before)."""
    comparisons: tuple[str, ...]  # "(a) `replicator` - `dct`"
    labels: tuple[str, ...]
    p_stagewise: tuple[float, ...]
    p_holm: tuple[float, ...]
    p_fixed: tuple[float, ...]
    p_fixed_holm: tuple[float, ...]
    alpha: float = 0.05

    @property
    def holds(self) -> tuple[bool, ...]:
        return tuple(p < self.alpha for p in self.p_holm)


def holm_reading(records: tuple[QuestionLooks, ...], alpha: float = 0.05) -> HolmReading | None:
    """Holm over the decided comparisons of every question's looks (``decision_records``); None when fewer than
    two are decided *better* or *worse* (nothing to correct across). A comparison is one hypothesis however many
    folders decided it: the first folder that ended it counts (the CPU's grid before its GPU folders, as the claims
    table reads it); a GPU folder's is named."""
    judged: dict[tuple[str, str], tuple[QuestionLooks, ComparisonLooks, dict]] = {}
    for r in records:
        for c in r.comparisons:
            if c.looks and has_ended(str(c.looks[-1]["label"])):
                judged.setdefault((r.question, c.variant), (r, c, c.looks[-1]))
    decided = [(r, c, s) for r, c, s in judged.values() if s["label"] in ("better", "worse")]
    if len(decided) < 2:
        return None
    staged = [stagewise_p(s["p"], s["look"], r.schedule, r.alpha, n_comparisons=len(r.comparisons))
              for r, _, s in decided]
    fixed = [float(s["p"]) for _, _, s in decided]
    gpu = {folder for q in SECOND_EDITION_QUESTIONS for folder in gpu_folders(q.grid)}
    return HolmReading(tuple(f"{r.question.split(' ')[0]} `{c.variant}` - `{r.reference}`"
                             + (f" (`{r.folder}`)" if r.folder in gpu else "") for r, c, _ in decided),
                       tuple(s["label"] for _, _, s in decided), tuple(staged),
                       tuple(float(p) for p in multipletests(staged, alpha=alpha, method="holm")[1]), tuple(fixed),
                       tuple(float(p) for p in multipletests(fixed, alpha=alpha, method="holm")[1]), alpha)
