"""The report's second-edition sections (docs/study.md): findings at a glance, choosing the budget.

``findings_lines`` computes from the results files and returns Markdown lines; the budget is computed by
``budget_findings`` and written by ``budget_lines`` (Markdown) and ``budget_figure`` (a matplotlib figure for
the report to save). Only files are read.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from study.questions import CORE_QUESTIONS

from .plan import BudgetRow, pilot_rows, plan_table, recommend, run_threads
from .status import RunStatus
from .tables import markdown_table

SECOND_EDITION_ENGINE = 2


def _cpu_hours(results: Path, frame: pd.DataFrame, grid: str) -> float:
    rows = frame[(frame["grid"] == grid) & (frame["status"] == RunStatus.OK)
                 & (pd.to_numeric(frame["engine_version"], errors="coerce") >= SECOND_EDITION_ENGINE)
                 & frame["reused_from"].isna()]
    seconds = [s * run_threads(results / grid / str(r)) for s, r in zip(rows["train_seconds"], rows["run_id"], strict=True)]
    return sum(s for s in seconds if math.isfinite(s)) / 3600


def findings_lines(results: Path, frame: pd.DataFrame) -> list[str]:
    """"Findings at a glance": per core question, the second edition's sequential verdict or its status."""
    table = []
    for q in CORE_QUESTIONS:
        path = results / q.grid / "sequential.json"
        state = json.loads(path.read_text()) if path.exists() else None
        variants = (state or {}).get("variants", {})
        names = [q.variant] if q.variant else sorted(variants)
        cpu = _cpu_hours(results, frame, q.grid)
        if not variants or not any(n in variants for n in names):
            table.append({"question": f"({q.key}) {q.text}", "comparison": f"`{q.grid}`", "verdict": "not run yet",
                          "difference [CI]": "–", "seeds (looks)": "–", "CPU-h": f"{cpu:.2f}"})
            continue
        for name in names:
            s = variants.get(name)
            if s is None:
                continue
            ci = s.get("ci")
            table.append({
                "question": f"({q.key}) {q.text}", "comparison": f"`{q.grid}`: `{name}` - `{state['reference']}`",
                "verdict": s["label"],
                "difference [CI]": f"{s['estimate']:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "–",
                "seeds (looks)": f"{s['n']} ({s['look']} of {len(state['schedule'])})", "CPU-h": f"{cpu:.2f}"})
    return ["## Findings at a glance", "",
            "The second edition (engine version 2, docs/study.md): each core question is decided by adding seeds "
            "until the group-sequential rule stops (`run.py ablate GRID --until-decided`); the interval is the "
            "rule's repeated confidence interval at its stopping look. CPU-hours: training seconds x threads of "
            "the grid's engine-2 runs. The first pass (engine version 1: one shared learning rate, a budget "
            "chosen without measuring power) is reported below as it was, never pooled with the second edition.", "",
            markdown_table(pd.DataFrame(table)), ""]


def budget_figure(table: pd.DataFrame):
    """Paired SD (and its upper bound) and CPU-hours per decided question against the pilot's budgets."""
    fig, (ax_sd, ax_cost) = plt.subplots(1, 2, figsize=(9, 3.4))
    for question, rows in table.groupby("question"):
        ax_sd.errorbar(rows["budget"], rows["sd"], yerr=[[0] * len(rows), rows["sd_upper"] - rows["sd"]],
                       marker="o", capsize=3, label=question)
        ax_cost.plot(rows["budget"], rows["cpu_hours"], marker="o", label=question)
    ax_sd.set(xlabel="budget (protocol)", ylabel="paired SD, points (bar: 80% upper bound)")
    ax_cost.set(xlabel="budget (protocol)", ylabel="CPU-hours per decided question", yscale="log")
    ax_sd.legend(fontsize=7)
    fig.tight_layout()
    return fig, (ax_sd, ax_cost)


@dataclass(frozen=True)
class BudgetFindings:
    """The pilot's plan (``run.py plan``) behind "Choosing the budget": its rows and the recommended budget."""
    results: str
    effect: float
    rows: tuple[BudgetRow, ...]
    budget: str | None
    why: str


def budget_findings(results: Path, effect: float = 0.5, reps: int = 1000) -> BudgetFindings:
    """The pilot's rows for a smallest effect of interest of ``effect`` points, and the recommendation."""
    rows = pilot_rows(results, effect, reps=reps)
    return BudgetFindings(str(results), effect, tuple(rows), *recommend(rows))


def budget_lines(budget: BudgetFindings, folder: str) -> list[str]:
    """"Choosing the budget": the pilot's table, the recommendation and the figure ``budget_pilot`` in ``folder``."""
    lines = ["## Choosing the budget", "",
             f"The pilot (docs/study.md) trains the core pairs under each candidate budget (grids `pilot-<protocol>`). "
             f"Seeds and CPU-hours are planned for a smallest effect of interest of {budget.effect:g} points with 80% power "
             "under the sequential rule, with the paired SD's 80% upper confidence bound (never the observed "
             "effect); `E[seeds]` is the expected number of seeds per variant when the effect is true, CPU-h "
             "the cost of both variants' expected seeds. Regenerate: `python run.py plan --results "
             f"{budget.results}`.", ""]
    if not budget.rows:
        return lines + ["No pilot grid has 2 paired seeds yet: the pilot is running or planned.", ""]
    return lines + [markdown_table(plan_table(list(budget.rows))), "",
                    f"Recommended budget: **{budget.budget or 'none yet'}** ({budget.why}).", "",
                    f"![paired SD and CPU-hours per decided question against the budget]({folder}/budget_pilot.png)", ""]
