"""The report's second-edition sections (docs/study.md): findings at a glance, choosing the budget.

``glance_rows`` computes "Findings at a glance" from the results files and ``glance_lines`` renders it; the
budget is computed by
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

from study.grids import (
    CPU_SEED_CAP,
    GPU_PROTOCOL,
    LR_CANDIDATES,
    PILOT_BUDGETS,
    PILOT_SEEDS,
    PILOT_VARIANTS,
    PLAN_REPS,
    TUNING_SEEDS,
    search_name,
)
from study.questions import CORE_QUESTIONS, SECOND_EDITION, SECOND_EDITION_QUESTIONS, trained_networks

from .decisions import PairingError, decide
from .learning_rates import planned_runs
from .plan import SECOND_EDITION_ENGINE, BudgetRow, cpu_seconds, pilot_rows, plan_table, plan_text, question_plans, recommend
from .sequential import OPEN, plan_looks
from .status import RunStatus
from .tables import markdown_table

PILOT_RUNS = len(PILOT_VARIANTS) * PILOT_SEEDS  # a pilot budget is finished when this many runs finished ok
DECIDED = ("better", "worse", "equivalent")


def _cpu_hours(results: Path, frame: pd.DataFrame, grid: str) -> float:
    """CPU-hours the grid's engine-2 runs and its learning-rate search trained (copies of twins cost nothing)."""
    rows = frame[frame["grid"].isin([grid, search_name(grid)]) & frame["status"].isin([RunStatus.OK, RunStatus.FLAGGED])
                 & (pd.to_numeric(frame["engine_version"], errors="coerce") >= SECOND_EDITION_ENGINE)
                 & frame["reused_from"].isna()]
    return sum(s for s in cpu_seconds(results, rows) if math.isfinite(s)) / 3600


def _before_main_runs(results: Path, frame: pd.DataFrame, grid: str, folder: str | None = None) -> str:
    """Where a question without main runs stands: its learning-rate search's finished runs (copies of twins
    included) out of the search's budget, or the rates chosen and the first look's finished runs, or "not run
    yet". ``folder``: the grid's runs
    under another protocol (``<grid>-gpu``), if not the grid's own folder."""
    search = search_name(folder or grid)
    try:
        protocol = json.loads((results / search / 'chosen.json').read_text())['protocol']
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no choice (yet), or one the report's learning-rate section names as unreadable
    else:  # the main runs' first look, before its state is first recorded (experiments/until_decided.py)
        seeds = plan_looks(CPU_SEED_CAP)[0]
        trained = trained_networks(grid)
        return (f"learning rates chosen under `{protocol}`; main runs: look 1 ({seeds} seeds a variant) "
                f"{_finished(frame, folder or grid, seeds, trained)} of {seeds * len(trained)} runs finished")
    done = _finished(frame, search)
    try:  # the search's own grid.json lists its candidates, widened ones too (experiments/tuning.py)
        planned = planned_runs(json.loads((results / search / "grid.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # the networks the question searches
        planned = len(trained_networks(grid)) * len(LR_CANDIDATES) * TUNING_SEEDS
    return f"learning-rate search: {done} of {planned} runs finished" if done else "not run yet"


def main_runs(frame: pd.DataFrame) -> pd.Series:
    """The second edition's main runs: engine-2 runs in its grids (``study.questions.SECOND_EDITION``, on the CPU or
    in their ``-gpu`` folders). The sequential rule judges them (Findings at a glance), never the first pass's
    fixed-sample tests; the same grid folders' engine-1 runs are the first pass, reported apart, never pooled."""
    grids = {*SECOND_EDITION, *(f"{g}-{GPU_PROTOCOL}" for g in SECOND_EDITION)}
    return frame["grid"].isin(grids) & (pd.to_numeric(frame["engine_version"], errors="coerce") >= SECOND_EDITION_ENGINE)


@dataclass(frozen=True)
class GlanceRow:
    """One line of "Findings at a glance": a core question's comparison, its sequential state and its plan."""
    question: str
    comparison: str
    verdict: str  # the sequential rule's label, or where the question stands before its main runs
    estimate: float | None = None
    ci: tuple[float, float] | None = None
    seeds: int | None = None
    look: int | None = None
    looks: int | None = None
    cpu_hours: float | None = 0.0  # spent on the grid's engine-2 runs and its search; None on a GPU
    to_decide: str = ""  # "decided", the rule's estimate for a comparison left open, or the plan
    level: float | None = None  # the repeated CI's confidence: 1 - the look's nominal two-sided p level
    within_margin: bool | None = None  # the equivalence test passes at the look's level too (sequential.Decision)
    margin: float | None = None
    pairing_problem: str = ""  # why the recorded looks' runs no longer pair (analysis.decisions.PairingError)


def glance_rows(results: Path, frame: pd.DataFrame, rows: list[BudgetRow] | tuple[BudgetRow, ...]) -> tuple[GlanceRow, ...]:
    """Per question of the second edition (the core ones, then the sweeps), its sequential verdict
    (``sequential.json``) or its status, and what deciding it would take: the plan at the pilot's budget, from the
    pilot's ``rows``."""
    studied = {q.grid for q in CORE_QUESTIONS} | {f"pilot-{b}" for b in PILOT_BUDGETS}
    if not rows and not studied & set(frame["grid"].astype(str)):
        return ()  # results of other grids only (e.g. the README's smoke grid): the study is not theirs
    plans = question_plans(results, list(rows), recommend(list(rows))[0])
    out = []
    for q in SECOND_EDITION_QUESTIONS:
        plan = plan_text(plans[q.key]) if q.key in plans else "waits for the pilot"
        out += _question_rows(results, frame, q, q.grid, _cpu_hours(results, frame, q.grid), plan)
        gpu = f"{q.grid}-{GPU_PROTOCOL}"
        if frame["grid"].isin([gpu, search_name(gpu)]).any():
            out += _question_rows(results, frame, q, gpu, None, _gpu_text(frame, q.grid, gpu))
    return tuple(out)


def _question_rows(results: Path, frame: pd.DataFrame, q, folder: str, hours: float | None, plan: str) -> list[GlanceRow]:
    """A question's rows for its runs in ``folder`` (its grid, or the grid under the GPU protocol): one per
    comparison with a sequential state, else one saying where its learning-rate search stands."""
    path = results / folder / "sequential.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    variants = state.get("variants", {})
    names = [q.variant] if q.variant else sorted(variants)
    question = f"({q.key}) {q.text}"
    if not any(n in variants for n in names):
        return [GlanceRow(question, f"`{folder}`", _before_main_runs(results, frame, q.grid, folder), cpu_hours=hours,
                          to_decide=plan)]
    rows = []
    recomputed, problem = _recomputed(frame, folder, state)
    for name in (n for n in names if n in variants):
        s = variants[name]
        verdict = (_look_training(frame, folder, state, name) if s["label"] == OPEN else s["label"])
        again = recomputed.get(name, {})
        same = (again.get("label"), again.get("look")) == (s["label"], s.get("look"))
        rows.append(GlanceRow(question, f"`{folder}`: `{name}` - `{state['reference']}`", verdict, s.get("estimate"),
                              tuple(s["ci"]) if s.get("ci") else None, s.get("n") or None, s.get("look"),
                              len(state["schedule"]), hours,
                              "decided" if s["label"] in DECIDED else s.get("to_decide") or plan,
                              1 - s["boundary"] if s.get("boundary") is not None else None,
                              s.get("within_margin", again.get("within_margin") if same else None),
                              s.get("margin", state.get("margin")), problem))
    return rows


def _recomputed(frame: pd.DataFrame, folder: str, state: dict) -> tuple[dict[str, dict], str]:
    """The recorded design's states recomputed from the run files (``analysis.decisions.decide``: a record written
    before its fields grew, such as ``within_margin``, gets them from here), and why the runs do not pair, if so."""
    try:
        return decide(frame, folder, state["protocol"], state["reference"], sorted(state["variants"]),
                      tuple(int(n) for n in state["schedule"]), float(state["margin"]), SECOND_EDITION_ENGINE), ""
    except PairingError as error:
        return {}, str(error)
    except (KeyError, TypeError, ValueError):
        return {}, ""


def _look_training(frame: pd.DataFrame, folder: str, state: dict, variant: str) -> str:
    """A comparison still open (``sequential.json`` is written before each look trains): the look it waits for
    and how many of that look's runs (the variant's and the reference's seeds ``0..n-1``) have finished."""
    look = state["variants"][variant]["look"]
    seeds = state["schedule"][look]
    after = f"open after look {look} of {len(state['schedule'])}; " if look else ""
    return (f"{after}look {look + 1} ({seeds} seeds a variant) training: "
            f"{_finished(frame, folder, seeds, [variant, state['reference']])} of {2 * seeds} runs "
            f"(seeds 0-{seeds - 1}) finished")


def _finished(frame: pd.DataFrame, folder: str, seeds: int | None = None, variants: list[str] | None = None) -> int:
    """Finished (ok or flagged) second-edition runs in ``folder`` (of seeds ``0..seeds-1``, of ``variants``)."""
    rows = frame[frame["grid"].eq(folder) & frame["status"].isin([RunStatus.OK, RunStatus.FLAGGED])
                 & (pd.to_numeric(frame["engine_version"], errors="coerce") >= SECOND_EDITION_ENGINE)]
    if seeds is not None:
        rows = rows[pd.to_numeric(rows["seed"]) < seeds]
    return len(rows if variants is None else rows[rows["variant"].isin(variants)])


def _gpu_text(frame: pd.DataFrame, grid: str, folder: str) -> str:
    """What a question's GPU runs are and cost: their protocol, how many trained, their training wall time."""
    rows = frame[frame["grid"].isin([folder, search_name(folder)]) & frame["status"].isin(
        [RunStatus.OK, RunStatus.FLAGGED]) & frame["reused_from"].isna()]
    seconds = pd.to_numeric(rows["train_seconds"], errors="coerce").dropna()
    return (f"protocol `{GPU_PROTOCOL}` on one GPU, never pooled with the CPU runs: {len(rows)} runs trained, "
            f"{seconds.sum() / 3600:.2f} h of training wall time in all (median {seconds.median():.0f} s a run; runs "
            "share the device, so its time is less); it goes on in sessions lent a GPU "
            f"(`bash experiments/gpu_session.sh {grid}:MINUTES`, docs/study.md section 5)") if len(seconds) else (
            f"protocol `{GPU_PROTOCOL}` on one GPU, never pooled with the CPU runs: no run finished yet")


GLANCE_INTRO = (
    "The second edition (engine version 2, docs/study.md): each question, the core ones (a)-(d) first, then "
    "(e)-(g), is decided by adding seeds "
    "until the group-sequential rule stops (`run.py ablate GRID --until-decided --compare VARIANT`, as `run.py "
    "study --until-decided` runs it); the interval is the "
    "rule's repeated confidence interval at the last look made (the stopping look once decided), at that "
    "look's level (1 minus its nominal p level, shown with it: near 100% early, near 95% at the last look, "
    "higher where alpha is split over several comparisons). CPU-hours: training seconds x threads of "
    "the grid's engine-2 runs and of its learning-rate search (flagged runs included: they cost time too). "
    "*To decide*: the plan (`run.py plan`) for a smallest effect of interest of 0.5 points, with a planning "
    "paired SD (its 80% upper bound): the question's own main runs' once its first look exists, else the nearest "
    "recipe measured at the budget (the learning rate nearest its chosen one; the source is named, docs/study.md "
    "section 1) and alpha split over the comparisons the main runs decide (the question's own, or every "
    "variant of the grid against its reference where the question names none). First the seeds per variant a free "
    "sequential design needs for 80% power (maximum and expected); then what the main runs do, which always "
    f"look at {', '.join(map(str, plan_looks(CPU_SEED_CAP)))} seeds (the CPU cap; `run.py study --until-decided`, "
    "docs/study.md): their power for the 0.5-point effect and expected seeds, their CPU-hours (the networks "
    "they train, each run's time the median CPU-seconds of that network's finished runs of the question under "
    "the budget, named where there are any, else the pilot's DyClotNet-0.5 median scaled by its MACs, "
    "`results/study_costs.json`, a proxy until those runs measure it), expected and at most (the expected figure "
    "lets every variant stop with this question's comparison, a lower bound where the grid has others, and leaves "
    "out networks an earlier question trains, whose runs are twins, copied where their chosen rate agrees and "
    "that question trained the seed; the most counts every network at every seed), and the smallest true effect "
    "they declare better with 80% power; last, the learning-rate search that comes before them. The first pass (engine "
    "version 1: one shared learning rate, a budget chosen without measuring power) is reported below as "
    "it was, never pooled with the second edition. A question trained on a GPU too (`run.py gpu-next`, its own "
    "protocol and grid folder `<grid>-gpu`) has a row of its own for those runs, never pooled with the CPU's.")


def percent(level: float) -> str:
    """A confidence level near 100% with the digits that keep it below 100% (99.991%, 95.6%)."""
    digits = max(1, -math.floor(math.log10(100 * (1 - level)))) if level < 1 else 1
    return f"{100 * level:.{digits}f}%"


def margin_verdict(label: str, estimate: float | None, within_margin: bool | None, margin: float | None) -> str:
    """A ``better``/``worse`` label with the second fact where it holds (docs/study.md, "A verdict that is
    significant and also inside the margin"): "worse by 0.33, smaller than the 0.5-point effect of interest";
    any other label as it is."""
    if label in ("better", "worse") and within_margin and estimate is not None and margin is not None:
        return f"{label} by {abs(estimate):.2f}, smaller than the {margin:g}-point effect of interest"
    return label


def margin_detail(state: dict) -> str:
    """The equivalence test behind ``margin_verdict`` for one look's record (``analysis.decisions.look_history``),
    as a sentence; "" unless the look is ``better``/``worse`` and ``within_margin``."""
    if state.get("label") not in ("better", "worse") or not state.get("within_margin"):
        return ""
    (p_low, p_high), level, (low, high) = state["tost_p"], state["tost_level"], state["tost_ci"]
    return (f" The difference is also smaller than the {state['margin']:g}-point effect of interest: the equivalence "
            f"test at this look's level passes too (TOST p {p_low:.2g} and {p_high:.2g}, both below the one-sided level "
            f"{level:.4f}; the {percent(1 - 2 * level)} repeated interval [{low:+.2f}, {high:+.2f}] lies within "
            f"±{state['margin']:g}). The rule's label stays *{state['label']}*.")


def glance_lines(rows: tuple[GlanceRow, ...]) -> list[str]:
    """"Findings at a glance" as Markdown; nothing when no row (results without the study's grids)."""
    if not rows:
        return []
    table = [{"question": r.question, "comparison": r.comparison,
              "verdict": margin_verdict(r.verdict, r.estimate, r.within_margin, r.margin)
              + (f" (recorded; the run files no longer pair: {r.pairing_problem})" if r.pairing_problem else ""),
              "difference [CI]": (f"{r.estimate:+.2f} [{r.ci[0]:+.2f}, {r.ci[1]:+.2f}]"
                                  + (f" ({percent(r.level)} repeated CI, look {r.look})" if r.level is not None else "")
                                  if r.ci is not None and r.estimate is not None else "–"),
              "seeds (looks)": f"{r.seeds} ({r.look} of {r.looks})" if r.seeds is not None else "–",
              "CPU-h": f"{r.cpu_hours:.2f}" if r.cpu_hours is not None else "– (GPU)", "to decide": r.to_decide} for r in rows]
    return ["## Findings at a glance", "", GLANCE_INTRO, "", markdown_table(pd.DataFrame(table)), ""]


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
    pending: tuple[tuple[str, int], ...] = ()  # (budget, ok runs) of the pilot budgets not finished yet


def _ok_runs(grid_dir: Path) -> int:
    count = 0
    for path in grid_dir.glob("*/result.json"):
        try:
            count += json.loads(path.read_text()).get("status") == RunStatus.OK
        except (OSError, ValueError, AttributeError):
            continue
    return count


def budget_findings(results: Path, effect: float = 0.5, reps: int = PLAN_REPS) -> BudgetFindings:
    """The pilot's rows for a smallest effect of interest of ``effect`` points, and the recommendation."""
    rows = pilot_rows(results, effect, reps=reps)
    pending = tuple((b, n) for b in PILOT_BUDGETS if (n := _ok_runs(Path(results) / f"pilot-{b}")) < PILOT_RUNS)
    return BudgetFindings(str(results), effect, tuple(rows), *recommend(rows), pending=pending)


def budget_lines(budget: BudgetFindings, folder: str) -> list[str]:
    """"Choosing the budget": the pilot's table, the recommendation and the figure ``budget_pilot`` in ``folder``."""
    lines = ["## Choosing the budget", "",
             f"The pilot (docs/study.md) trains the core pairs under each candidate budget (grids `pilot-<protocol>`). "
             f"Seeds and CPU-hours are planned for a smallest effect of interest of {budget.effect:g} points with 80% power "
             "under the sequential rule, with the paired SD's 80% upper confidence bound (never the observed "
             "effect); `E[seeds]` is the expected number of seeds per variant when the effect is true, CPU-h "
             "the cost of both variants' expected seeds. Regenerate: `python run.py plan --results "
             f"{budget.results}`.", ""]
    pending = (["Still to pilot (running or planned in the background; runs are committed as they finish): "
                + ", ".join(f"`{b}` ({ok} of {PILOT_RUNS} runs finished ok)" for b, ok in budget.pending) + ".", ""]
               if budget.pending else [])
    if not budget.rows:
        return lines + ["No pilot grid has 2 paired seeds yet: the pilot is running or planned.", "", *pending]
    return lines + [markdown_table(plan_table(list(budget.rows))), "",
                    f"Recommended budget: **{budget.budget or 'none yet'}** ({budget.why}).", "", *pending,
                    f"![paired SD and CPU-hours per decided question against the budget]({folder}/budget_pilot.png)", ""]
