"""The study's questions, each answered from the grid comparisons with its cost trade-off.

Every row is one comparison ``variant - reference`` of one grid: the difference in the primary
metric with its CI and corrected p-value (from :func:`analysis.compare.analyze`), and the cost of
the variant relative to the reference (median MACs, parameters and CPU latency, ratio > 1 means
the variant costs more). Questions whose grids have no results say so instead of guessing.
``question_findings`` computes the answers as records, ``analysis.render.render_questions`` writes them as
Markdown.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evidence import stats
from study.questions import QUESTIONS, Question

from .claims import ClaimRow

COSTS = {"macs": "MACs", "params": "params", "latency_ms": "latency"}
PARETO_COSTS = {"macs": "MACs", "latency_ms": "CPU latency (batch 1)"}
PARETO_GRID = "baselines"  # the grid whose reference is placed against the Pareto front


@dataclass(frozen=True)
class QuestionRow:
    """One comparison ``variant - reference``; ``cost_ratios``: cost label -> variant / reference median."""
    grid: str
    data: str
    variant: str
    reference: str
    n: int
    n_ref: int
    diff: float
    ci_low: float
    ci_high: float
    p_adj: float
    verdict: str
    cost_ratios: dict[str, float | None]


@dataclass(frozen=True)
class Repeat:
    """A comparison left out because the row of ``shown_in`` used the same (copied) runs."""
    grid: str
    variant: str
    reference: str
    shown_in: str


@dataclass(frozen=True)
class FlaggedVariant:
    grid: str
    variant: str
    flagged: int
    runs: int


@dataclass(frozen=True)
class ParetoCheck:
    """Whether ``reference`` lies on the mean-accuracy-against-``cost`` Pareto front of ``grid``."""
    grid: str
    cost: str
    reference: str
    on_front: bool
    front: tuple[str, ...]


@dataclass(frozen=True)
class QuestionFindings:
    number: int
    title: str
    reading: str
    rows: tuple[QuestionRow, ...]
    repeats: tuple[Repeat, ...]
    flagged: tuple[FlaggedVariant, ...]
    silent: tuple[str, ...]  # grids with results but no row
    pareto: tuple[ParetoCheck, ...] | None  # None: the question does not ask about the Pareto front
    claims: tuple[ClaimRow, ...]
    absent: tuple[str, ...]  # grids without results


@dataclass(frozen=True)
class UnsettledRow:
    """An inconclusive comparison and the seeds per variant that would settle it (80% power)."""
    grid: str
    variant: str
    reference: str
    n: int
    n_ref: int
    diff: float
    effect_of_interest: float | None
    margin: float | None
    seeds_needed: int | None
    seeds_needed_noninf: int | None


@dataclass(frozen=True)
class QuestionsFindings:
    questions: tuple[QuestionFindings, ...]
    unsettled: tuple[UnsettledRow, ...]


def run_origins(usable: pd.DataFrame) -> dict[tuple[str, str], frozenset]:
    """(grid, variant) -> the runs that actually trained its results (a copied run names its twin)."""
    origin = usable["reused_from"].where(usable["reused_from"].notna(), usable["grid"] + "/" + usable["run_id"].astype(str))
    return {key: frozenset(group) for key, group in origin.groupby([usable["grid"], usable["variant"]])}


def cost_medians(usable: pd.DataFrame) -> pd.DataFrame:
    """Median cost per (grid, variant)."""
    present = [c for c in COSTS if c in usable]
    return usable.groupby(["grid", "variant"])[present].median()


def _ratio(costs: pd.DataFrame, grid: str, variant: str, reference: str, column: str) -> float | None:
    try:
        value, ref = costs.loc[(grid, variant), column], costs.loc[(grid, reference), column]
    except KeyError:
        return None
    return float(value / ref) if np.isfinite(value) and np.isfinite(ref) and ref > 0 else None


def dataset_label(usable: pd.DataFrame, grid: str) -> str:
    """The grid's dataset(s), with the JPEG caveat spelled out for the CIFAR-10 re-encoding."""
    names = sorted(usable.loc[usable["grid"] == grid, "dataset"].dropna().astype(str).unique())
    return ", ".join("CIFAR-10 (JPEG re-encoding)" if n == "cifar10-jpeg" else n for n in names) or "–"


def _optional_int(value) -> int | None:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else int(value)


def comparison_rows(result: dict, costs: pd.DataFrame, question: Question, usable: pd.DataFrame,
                    origins: dict) -> tuple[list[QuestionRow], list[Repeat]]:
    """The question's rows, and the comparisons left out because an earlier row used the same runs."""
    comps = result["comparisons"]
    if not len(comps):
        return [], []
    comps = comps[comps["grid"].isin(question.grids)]
    if question.variants:
        comps = comps[comps["variant"].isin(question.variants) | comps["reference"].isin(question.variants)]
    rows, seen, repeats = [], {}, []
    for c in sorted(comps.itertuples(index=False), key=lambda c: (question.grids.index(c.grid), c.variant)):
        runs = (origins.get((c.grid, c.variant)), origins.get((c.grid, c.reference)))
        if runs in seen:  # copied twins: the same comparison again, not a replication
            repeats.append(Repeat(c.grid, c.variant, c.reference, seen[runs]))
            continue
        seen[runs] = c.grid
        rows.append(QuestionRow(c.grid, dataset_label(usable, c.grid), c.variant, c.reference, int(c.n), int(c.n_ref),
                                float(c.diff), float(c.ci_low), float(c.ci_high), float(c.p_adj), c.verdict,
                                {label: _ratio(costs, c.grid, c.variant, c.reference, column)
                                 for column, label in COSTS.items() if column in costs}))
    return rows, repeats


def pareto_checks(result: dict, costs: pd.DataFrame, grid: str) -> list[ParetoCheck]:
    """Whether the grid's reference lies on the accuracy-vs-cost Pareto front of its grid."""
    summary = result["summaries"]
    summary = summary[summary["grid"] == grid].set_index("variant")
    reference = summary.index[summary["is_reference"]].tolist()
    if not reference or len(summary) < 2:
        return []
    checks = []
    for column, name in PARETO_COSTS.items():
        if column not in costs:
            continue
        variants = [v for v in summary.index if (grid, v) in costs.index and np.isfinite(costs.loc[(grid, v), column])]
        if reference[0] not in variants or len(variants) < 2:
            continue
        front = [variants[i] for i in stats.pareto_front(np.array([costs.loc[(grid, v), column] for v in variants]),
                                                         summary.loc[variants, "mean"].to_numpy())]
        checks.append(ParetoCheck(grid, name, reference[0], reference[0] in front, tuple(front)))
    return checks


def unsettled_rows(result: dict, origins: dict) -> list[UnsettledRow]:
    """Inconclusive comparisons and the seeds per variant that would settle them (80% power)."""
    comps = result["comparisons"]
    if not len(comps):
        return []
    rows, seen = [], set()
    for c in comps[comps["verdict"].str.startswith("inconclusive")].itertuples(index=False):
        runs = (origins.get((c.grid, c.variant)), origins.get((c.grid, c.reference)))
        if runs in seen:
            continue
        seen.add(runs)
        rows.append(UnsettledRow(c.grid, c.variant, c.reference, int(c.n), int(c.n_ref), float(c.diff),
                                 c.effect_of_interest, c.margin, _optional_int(c.seeds_needed),
                                 _optional_int(c.seeds_needed_noninf)))
    return rows


def flagged_variants(health: pd.DataFrame | None, comps: pd.DataFrame) -> list[FlaggedVariant]:
    """The compared variants with training-health flags (evidence/health.py)."""
    if health is None or not len(health) or not len(comps):
        return []
    counts = health.groupby(["grid", "variant"])["flagged"].agg(["sum", "size"])
    shown = {(g, v) for c in comps.itertuples(index=False) for g, v in ((c.grid, c.variant), (c.grid, c.reference))}
    return [FlaggedVariant(g, v, int(counts.loc[(g, v), "sum"]), int(counts.loc[(g, v), "size"]))
            for g, v in sorted(shown) if (g, v) in counts.index and counts.loc[(g, v), "sum"] > 0]


def question_findings(result: dict, usable: pd.DataFrame, grids: dict, claims: tuple[ClaimRow, ...] = (),
                      health: pd.DataFrame | None = None) -> QuestionsFindings:
    """Every question's answer from the comparisons, the cost medians, the claims and the training health."""
    costs, origins = cost_medians(usable), run_origins(usable)
    comps = result["comparisons"]
    answers = []
    for number, question in enumerate(QUESTIONS, 1):
        present = [g for g in question.grids if g in grids]
        rows, repeats = comparison_rows(result, costs, question, usable, origins)
        listed = {row.grid for row in rows} | {repeat.grid for repeat in repeats}
        answers.append(QuestionFindings(
            number, question.title, question.reading, tuple(rows), tuple(repeats),
            tuple(flagged_variants(health, comps[comps["grid"].isin(question.grids)] if len(comps) else comps)),
            tuple(g for g in present if g not in listed),
            tuple(pareto_checks(result, costs, PARETO_GRID)) if PARETO_GRID in present else None,
            tuple(c for c in claims if c.grid in question.claim_grids),
            tuple(g for g in question.grids if g not in grids)))
    return QuestionsFindings(tuple(answers), tuple(unsettled_rows(result, origins)))
