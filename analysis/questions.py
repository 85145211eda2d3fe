"""The study's questions, each answered from the grid comparisons with its cost trade-off.

Every row is one comparison ``variant - reference`` of one grid: the difference in the primary
metric with its CI and corrected p-value (from :func:`analysis.compare.analyze`), and the cost of
the variant relative to the reference (median MACs, parameters and CPU latency, ratio > 1 means
the variant costs more). Questions whose grids have no results say so instead of guessing.
``question_findings`` computes the answers as records, ``render_questions`` writes them as Markdown.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evidence import stats
from study.questions import QUESTIONS, Question

from .claims import ClaimRow
from .tables import fmt_ci, fmt_num, fmt_p, markdown_table

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


# ------------------------------------------------------------------------------------------ render
INTRO = ("Each row compares a variant with its grid's reference: the difference in the primary metric "
         "(variant minus reference, points) with its Bonferroni-simultaneous 95% t interval (each interval at "
         "1 - 0.05/m for the grid's m comparisons, so one that excludes 0 always has a significant corrected "
         "test) and the grid's multiplicity-corrected p-value, "
         "and the variant's median cost relative to the reference (above 1x: the variant costs more). "
         "'–' means not measured. Verdict rules: `docs/analysis.md`. Runs copied between grids (twins) make "
         "some grids share runs; such a comparison is shown once, since it is not a replication.")
UNSETTLED_NOTE = (
    "Planned, not post-hoc: seeds per variant for 80% power to detect the smallest effect of interest "
    "(a true difference of 0.5 points, `--detect`), and to show non-inferiority at the margin if the true "
    "difference is 0, at the Bonferroni level alpha / m of the grid's m comparisons, with the SD taken "
    "as the 80% upper confidence bound of the observed one (the observed SD is too small half the "
    "time); paired or Welch t-test power, as in the grid's test; '–' where no feasible number would. "
    "The observed difference plays no part: power computed from it says nothing the p-value does not.")


def _comparison_table(rows: tuple[QuestionRow, ...]) -> pd.DataFrame:
    return pd.DataFrame([{
        "grid": f"`{r.grid}`", "data": r.data, "variant - reference": f"`{r.variant}` - `{r.reference}`",
        "n": f"{r.n}/{r.n_ref}",
        "diff [simultaneous 95% CI]": "–" if not math.isfinite(r.diff) else f"{r.diff:+.2f} {fmt_ci(r.ci_low, r.ci_high)}",
        "p (adj)": fmt_p(r.p_adj), "verdict": r.verdict,
        **{f"{label} ratio": "–" if ratio is None else f"{ratio:.2f}x" for label, ratio in r.cost_ratios.items()}}
        for r in rows])


def _unsettled_table(rows: tuple[UnsettledRow, ...]) -> pd.DataFrame:
    seeds = lambda n: "–" if n is None else str(n)  # noqa: E731
    return pd.DataFrame([{
        "grid": f"`{r.grid}`", "variant - reference": f"`{r.variant}` - `{r.reference}`", "n now": f"{r.n}/{r.n_ref}",
        "observed diff": f"{r.diff:+.2f}" if math.isfinite(r.diff) else "–",
        f"seeds to detect {fmt_num(r.effect_of_interest)} points": seeds(r.seeds_needed),
        f"seeds to show non-inferiority (margin {fmt_num(r.margin)})": seeds(r.seeds_needed_noninf)} for r in rows])


def render_question(q: QuestionFindings) -> list[str]:
    """One question's subsection."""
    lines = [f"### Q{q.number}. {q.title}", ""] + ([q.reading, ""] if q.reading else [])
    if q.rows:
        verdicts = Counter(r.verdict for r in q.rows)
        lines += [markdown_table(_comparison_table(q.rows)), "",
                  "Verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) + ".", ""]
    lines += [f"- `{r.grid}`: `{r.variant}` - `{r.reference}` uses the same runs as the `{r.shown_in}` row (copied "
              "twins) and is not shown twice." for r in q.repeats] + ([""] if q.repeats else [])
    if q.flagged:
        hits = ", ".join(f"`{f.grid}` `{f.variant}` ({f.flagged} of {f.runs} runs)" for f in q.flagged)
        lines += [f"- Training health: flagged runs in {hits}; their rows compare training failures under the "
                  "shared schedule as much as networks (section Training health).", ""]
    if q.silent:
        lines += ["Results present but no comparison to show (fewer than two variants with usable runs, or the "
                  "grid could not be analysed; see its section): " + ", ".join(f"`{g}`" for g in q.silent) + ".", ""]
    if q.pareto is not None:
        lines += [f"- Mean accuracy against {p.cost}: `{p.reference}` is **{'on' if p.on_front else 'not on'}** the "
                  f"Pareto front of `{p.grid}` (front: {', '.join(f'`{v}`' for v in p.front)}; from means only, so a "
                  "point near the front may swap sides within its CI)." for p in q.pareto] + [""]
    if q.claims:
        lines += ["Tested as claims (**First pass: paper claims** below):", ""]
        lines += [f"- {c.claim}: {c.measured}; **{c.verdict}** ({c.reason})." for c in q.claims] + [""]
    if q.absent:
        lines += ["Not answered yet, no results in this results directory (not run, or not finished): "
                  + ", ".join(f"`{g}`" for g in q.absent) + ".", ""]
    return lines


def render_questions(questions: QuestionsFindings) -> list[str]:
    """The "Questions and answers" section: one subsection per question, then the seeds still needed."""
    answered = [q for q in questions.questions if q.rows or q.repeats or q.silent]
    if not answered and not questions.unsettled:  # e.g. a small grid of its own: nothing of the study here
        return []
    lines = ["## Questions and answers", "", INTRO, ""]
    for question in answered:
        lines += render_question(question)
    lines += [f"### Q{len(questions.questions) + 1}. How many seeds would each unsettled question need?", ""]
    if questions.unsettled:
        return lines + [markdown_table(_unsettled_table(questions.unsettled)), "", UNSETTLED_NOTE, ""]
    return lines + ["No comparison is inconclusive.", ""]
