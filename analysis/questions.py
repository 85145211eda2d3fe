"""The study's questions, each answered from the grid comparisons with its cost trade-off.

Every row is one comparison ``variant - reference`` of one grid: the difference in the primary
metric with its CI and corrected p-value (from :func:`analysis.compare.analyze`), and the cost of
the variant relative to the reference (median MACs, parameters and CPU latency, ratio > 1 means
the variant costs more). Questions whose grids have no results say so instead of guessing.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from study.questions import QUESTIONS, Question

from . import stats
from .tables import fmt_ci, fmt_num, fmt_p, markdown_table

COSTS = {"macs": "MACs", "params": "params", "latency_ms": "latency"}


def run_origins(usable: pd.DataFrame) -> dict[tuple[str, str], frozenset]:
    """(grid, variant) -> the runs that actually trained its results (a copied run names its twin)."""
    origin = usable["reused_from"].where(usable["reused_from"].notna(), usable["grid"] + "/" + usable["run_id"].astype(str))
    return {key: frozenset(group) for key, group in origin.groupby([usable["grid"], usable["variant"]])}


def cost_medians(usable: pd.DataFrame) -> pd.DataFrame:
    """Median cost per (grid, variant)."""
    present = [c for c in COSTS if c in usable]
    return usable.groupby(["grid", "variant"])[present].median()


def _ratio(costs: pd.DataFrame, grid: str, variant: str, reference: str, column: str) -> str:
    try:
        value, ref = costs.loc[(grid, variant), column], costs.loc[(grid, reference), column]
    except KeyError:
        return "–"
    return f"{value / ref:.2f}x" if np.isfinite(value) and np.isfinite(ref) and ref > 0 else "–"


def dataset_label(usable: pd.DataFrame, grid: str) -> str:
    """The grid's dataset(s), with the JPEG caveat spelled out for the CIFAR-10 re-encoding."""
    names = sorted(usable.loc[usable["grid"] == grid, "dataset"].dropna().astype(str).unique())
    return ", ".join("CIFAR-10 (JPEG re-encoding)" if n == "cifar10-jpeg" else n for n in names) or "–"


def comparison_rows(result: dict, costs: pd.DataFrame, question: Question, usable: pd.DataFrame,
                    origins: dict) -> tuple[pd.DataFrame, list[str]]:
    """The question's table, and notes on comparisons left out because an earlier row used the same runs."""
    comps = result["comparisons"]
    if not len(comps):
        return pd.DataFrame(), []
    comps = comps[comps["grid"].isin(question.grids)]
    if question.variants:
        comps = comps[comps["variant"].isin(question.variants) | comps["reference"].isin(question.variants)]
    rows, seen, repeats = [], {}, []
    for c in sorted(comps.itertuples(index=False), key=lambda c: (question.grids.index(c.grid), c.variant)):
        runs = (origins.get((c.grid, c.variant)), origins.get((c.grid, c.reference)))
        if runs in seen:  # copied twins: the same comparison again, not a replication
            repeats.append(f"`{c.grid}`: `{c.variant}` - `{c.reference}` uses the same runs as the `{seen[runs]}` row "
                           "(copied twins) and is not shown twice")
            continue
        seen[runs] = c.grid
        rows.append({"grid": f"`{c.grid}`", "data": dataset_label(usable, c.grid),
                     "variant - reference": f"`{c.variant}` - `{c.reference}`", "n": f"{c.n}/{c.n_ref}",
                     "diff [simultaneous 95% CI]": ("–" if not math.isfinite(c.diff)
                                                    else f"{c.diff:+.2f} {fmt_ci(c.ci_low, c.ci_high)}"),
                     "p (adj)": fmt_p(c.p_adj), "verdict": c.verdict,
                     **{f"{label} ratio": _ratio(costs, c.grid, c.variant, c.reference, column)
                        for column, label in COSTS.items() if column in costs}})
    return pd.DataFrame(rows), repeats


def pareto_lines(result: dict, costs: pd.DataFrame, grid: str) -> list[str]:
    """Whether the grid's reference lies on the accuracy-vs-cost Pareto front of its grid."""
    summary = result["summaries"]
    summary = summary[summary["grid"] == grid].set_index("variant")
    reference = summary.index[summary["is_reference"]].tolist()
    if not reference or len(summary) < 2:
        return []
    lines = []
    for column, name in (("macs", "MACs"), ("latency_ms", "CPU latency (batch 1)")):
        if column not in costs:
            continue
        variants = [v for v in summary.index if (grid, v) in costs.index and np.isfinite(costs.loc[(grid, v), column])]
        if reference[0] not in variants or len(variants) < 2:
            continue
        front = [variants[i] for i in stats.pareto_front(np.array([costs.loc[(grid, v), column] for v in variants]),
                                                         summary.loc[variants, "mean"].to_numpy())]
        where = "on" if reference[0] in front else "not on"
        lines.append(f"- Mean accuracy against {name}: `{reference[0]}` is **{where}** the Pareto front of "
                     f"`{grid}` (front: {', '.join(f'`{v}`' for v in front)}; from means only, so a point near the "
                     "front may swap sides within its CI).")
    return lines


def unsettled_rows(result: dict, origins: dict) -> pd.DataFrame:
    """Inconclusive comparisons and the seeds per variant that would settle them (80% power)."""
    comps = result["comparisons"]
    if not len(comps):
        return pd.DataFrame()
    rows, seen = [], set()
    for c in comps[comps["verdict"].str.startswith("inconclusive")].itertuples(index=False):
        runs = (origins.get((c.grid, c.variant)), origins.get((c.grid, c.reference)))
        if runs in seen:
            continue
        seen.add(runs)

        def seeds(n):
            return "–" if n is None or (isinstance(n, float) and not math.isfinite(n)) else str(int(n))

        rows.append({"grid": f"`{c.grid}`", "variant - reference": f"`{c.variant}` - `{c.reference}`",
                     "n now": f"{c.n}/{c.n_ref}", "observed diff": f"{c.diff:+.2f}" if math.isfinite(c.diff) else "–",
                     f"seeds to detect {fmt_num(c.effect_of_interest)} points": seeds(c.seeds_needed),
                     f"seeds to show non-inferiority (margin {fmt_num(c.margin)})": seeds(c.seeds_needed_noninf)})
    return pd.DataFrame(rows)


def health_notes(health: pd.DataFrame | None, comps: pd.DataFrame) -> list[str]:
    """Lines naming the question's variants with training-health flags (analysis/health.py)."""
    if health is None or not len(health) or not len(comps):
        return []
    counts = health.groupby(["grid", "variant"])["flagged"].agg(["sum", "size"])
    shown = {(g, v) for c in comps.itertuples(index=False) for g, v in ((c.grid, c.variant), (c.grid, c.reference))}
    hits = [f"`{g}` `{v}` ({int(counts.loc[(g, v), 'sum'])} of {int(counts.loc[(g, v), 'size'])} runs)"
            for g, v in sorted(shown) if (g, v) in counts.index and counts.loc[(g, v), "sum"] > 0]
    return [f"- Training health: flagged runs in {', '.join(hits)}; their rows compare training failures under the "
            "shared schedule as much as networks (section Training health)."] if hits else []


def questions_section(result: dict, usable: pd.DataFrame, grids: dict, claims: pd.DataFrame | None = None,
                      health: pd.DataFrame | None = None) -> list[str]:
    """The "Questions" section: one table per question, from the comparisons and cost medians."""
    costs, origins = cost_medians(usable), run_origins(usable)
    lines = ["## Questions and answers", "",
             "Each row compares a variant with its grid's reference: the difference in the primary metric "
             "(variant minus reference, points) with its Bonferroni-simultaneous 95% t interval (each interval at "
             "1 - 0.05/m for the grid's m comparisons, so one that excludes 0 always has a significant corrected "
             "test) and the grid's multiplicity-corrected p-value, "
             "and the variant's median cost relative to the reference (above 1x: the variant costs more). "
             "'–' means not measured. Verdict rules: `docs/analysis.md`. Runs copied between grids (twins) make "
             "some grids share runs; such a comparison is shown once, since it is not a replication.", ""]
    for number, question in enumerate(QUESTIONS, 1):
        lines += [f"### Q{number}. {question.title}", ""]
        if question.reading:
            lines += [question.reading, ""]
        present = [g for g in question.grids if g in grids]
        absent = [g for g in question.grids if g not in grids]
        table, repeats = comparison_rows(result, costs, question, usable, origins)
        if len(table):
            lines += [markdown_table(table), ""]
            verdicts = table["verdict"].value_counts()
            lines += ["Verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) + ".", ""]
        lines += [f"- {note}." for note in repeats] + ([""] if repeats else [])
        comps = result["comparisons"]
        notes = health_notes(health, comps[comps["grid"].isin(question.grids)] if len(comps) else comps)
        lines += notes + ([""] if notes else [])
        shown = {cell.strip("`") for cell in table["grid"]} if len(table) else set()
        silent = [g for g in present if g not in shown and not any(f"`{g}`:" in note for note in repeats)]
        if silent:
            lines += ["Results present but no comparison to show (fewer than two variants with usable runs, or the "
                      "grid could not be analysed; see its section): " + ", ".join(f"`{g}`" for g in silent) + ".", ""]
        if "baselines" in present and "baselines" in question.grids:
            lines += pareto_lines(result, costs, "baselines") + [""]
        if claims is not None and len(claims):
            mine = claims[claims["grid: variant vs reference"].str.split(":").str[0].isin(question.claim_grids)]
            if len(mine):
                lines += ["Tested as claims (**Paper claims** below):", ""]
                lines += [f"- {row.claim}: {row._2}; **{row.verdict}** ({row.reason})."
                          for row in mine.itertuples(index=False)] + [""]
        if absent:
            lines += ["Not answered yet, no results in this results directory (not run, or not finished): "
                      + ", ".join(f"`{g}`" for g in absent) + ".", ""]
    table = unsettled_rows(result, origins)
    lines += [f"### Q{len(QUESTIONS) + 1}. How many seeds would each unsettled question need?", ""]
    lines += ([markdown_table(table), "",
               "Planned, not post-hoc: seeds per variant for 80% power to detect the smallest effect of interest "
               "(a true difference of 0.5 points, `--detect`), and to show non-inferiority at the margin if the true "
               "difference is 0, at the Bonferroni level alpha / m of the grid's m comparisons, with the SD taken "
               "as the 80% upper confidence bound of the observed one (the observed SD is too small half the "
               "time); paired or Welch t-test power, as in the grid's test; '–' where no feasible number would. "
               "The observed difference plays no part: power computed from it says nothing the p-value does not.",
               ""]
              if len(table) else ["No comparison is inconclusive.", ""])
    return lines
