"""The report's second-edition records (docs/study.md): the questions at a glance, choosing the budget.

``glance_rows`` computes "The questions at a glance" and ``budget_findings`` the budget from the results files; both
are records of numbers and enums, written by ``analysis.render`` (``render_glance``, ``render_budget``) and drawn by
``analysis.plots.budget_figure``. Only files are read.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd

from evidence.load import engine_at_least
from evidence.sequential import OPEN, has_ended, plan_looks
from evidence.status import RunStatus, diverged
from study.grids import (
    CPU_SEED_CAP,
    GPU_PILOT_BUDGETS,
    PILOT_BUDGETS,
    PILOT_SEEDS,
    PILOT_VARIANTS,
    PLAN_REPS,
    gpu_folder,
    gpu_folders,
    search_name,
)
from study.questions import CORE_QUESTIONS, GPU_QUESTIONS, SECOND_EDITION, SECOND_EDITION_QUESTIONS, trained_networks

from .learning_rates import search_progress
from .looks import QuestionLooks
from .plan import (
    GPU_MIN_ACCURACY,
    SECOND_EDITION_ENGINE,
    BudgetRow,
    QuestionPlan,
    Recommendation,
    cost_seconds,
    ended_on_gpu,
    folder_ended,
    pilot_rows,
    question_plans,
    questions_on,
    recommend,
)

PILOT_RUNS = len(PILOT_VARIANTS) * PILOT_SEEDS  # a pilot budget is finished when this many runs finished ok


def _cpu_hours(results: Path, frame: pd.DataFrame, grid: str) -> float:
    """CPU-hours the grid's engine-2 runs and its learning-rate search trained, search runs that diverged included
    (copies of twins cost nothing)."""
    rows = frame[frame["grid"].isin([grid, search_name(grid)])
                 & (frame["status"].isin([RunStatus.OK, RunStatus.FLAGGED]) | diverged(frame))
                 & engine_at_least(frame, SECOND_EDITION_ENGINE)
                 & frame["reused_from"].isna()]
    return sum(s for s in cost_seconds(results, rows) if math.isfinite(s)) / 3600


def _before_main_runs(results: Path, frame: pd.DataFrame, grid: str, folder: str | None = None) -> dict:
    """Where a question without main runs stands, as ``GlanceRow`` fields: the rates chosen (their protocol) and the
    first look's finished runs, or its learning-rate search's finished runs (copies of twins included) out of the
    search's budget, or nothing run. ``folder``: the grid's runs under a GPU budget (``study.grids.gpu_folders``)."""
    search = search_name(folder or grid)
    try:
        protocol = json.loads((results / search / 'chosen.json').read_text())['protocol']
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no choice (yet), or one the report's learning-rate section names as unreadable
    else:  # the main runs' first look, before its state is first recorded (experiments/until_decided.py)
        seeds = plan_looks(CPU_SEED_CAP)[0]
        trained = trained_networks(grid)
        return {"stage": Stage.LOOK, "protocol": protocol, "training_look": 1, "training_seeds": seeds,
                "runs_done": _finished(frame, folder or grid, seeds, trained), "runs_planned": seeds * len(trained)}
    try:  # the search's own grid.json lists its candidates, widened ones too (experiments/tuning.py)
        meta = json.loads((results / search / "grid.json").read_text())
    except (OSError, ValueError):  # the networks the question searches, each at every candidate
        meta = None
    # as the learning-rate section counts them: diverged runs are finished (docs/study.md, section 2)
    progress = search_progress(frame[engine_at_least(frame, SECOND_EDITION_ENGINE)], search, meta, trained_networks(grid))
    planned, done = (sum(counts) for counts in zip(*progress.values(), strict=True))
    return {"stage": Stage.SEARCH, "runs_done": done, "runs_planned": planned} if done else {"stage": Stage.NOT_RUN}


def main_runs(frame: pd.DataFrame) -> pd.Series:
    """The second edition's main runs: engine-2 runs in its grids (``study.questions.SECOND_EDITION``, on the CPU or in
    their GPU folders, ``study.grids.gpu_folders``). The sequential rule judges them (the questions at a glance),
    never the first pass's fixed-sample tests; the same grid folders' engine-1 runs are the first pass, reported
    apart, never pooled."""
    grids = {*SECOND_EDITION, *(folder for g in SECOND_EDITION for folder in gpu_folders(g))}
    return frame["grid"].isin(grids) & engine_at_least(frame, SECOND_EDITION_ENGINE)


class Stage(str, Enum):
    """Where a question's runs in one folder stand."""
    NOT_RUN = "not run"
    SEARCH = "learning-rate search"  # its search is training
    LOOK = "look training"  # a look's runs are training (the first, or the next after an open one)
    DECIDED = "decided"  # the rule's last look labelled it (better, worse, equivalent, or open at the cap)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class GlanceRow:
    """One line of "The questions at a glance": a question's comparison in one folder (its grid, or one of its GPU folders),
    its sequential state, what it has cost and its plan. Numbers and enums only: ``analysis.render`` writes them."""
    key: str  # the question's key, "a" to "g"
    question: str  # its text (study.questions)
    folder: str
    stage: Stage
    variant: str | None = None  # the compared variant, where the rule recorded a comparison
    reference: str | None = None
    label: str | None = None  # the rule's label at its last look
    estimate: float | None = None
    ci: tuple[float, float] | None = None
    level: float | None = None  # the repeated CI's confidence: 1 - the look's nominal two-sided p level
    seeds: int | None = None
    look: int | None = None
    looks: int | None = None
    within_margin: bool | None = None  # the equivalence test passes at the look's level too (None: not known)
    margin: float | None = None
    pairing_problem: str = ""  # why the recorded looks' runs no longer pair (evidence.decisions.PairingError)
    training_look: int | None = None  # the look whose runs are training
    training_seeds: int | None = None
    runs_done: int | None = None  # of the training look, or of the learning-rate search
    runs_planned: int | None = None
    protocol: str | None = None  # the protocol the rates were chosen under
    cpu_hours: float | None = 0.0  # spent on the grid's engine-2 runs and its search; None on a GPU
    gpu: bool = False
    gpu_runs: int = 0  # GPU runs that record how many shared the device
    gpu_hours: float | None = None  # their device-hours: training seconds over the runs sharing the device
    gpu_runs_sharing_unknown: int = 0  # GPU runs from before that was recorded
    gpu_wall_hours_sharing_unknown: float | None = None  # their training wall time (not a share of the device)
    plan: QuestionPlan | None = None  # what deciding it takes (run.py plan); None when decided or on a GPU


def glance_rows(results: Path, frame: pd.DataFrame, rows: list[BudgetRow] | tuple[BudgetRow, ...],
                looks: tuple[QuestionLooks, ...]) -> tuple[GlanceRow, ...]:
    """Per question of the second edition (the core ones, then the sweeps), its sequential state
    (``sequential.json``) or where its runs stand, and what deciding it would take: the plan at the pilot's budget,
    from the pilot's ``rows``. ``looks``: the looks recomputed from the run files (``looks.decision_records``),
    which fill in what a record written before its fields grew lacks (``within_margin``) and say why runs no longer
    pair."""
    studied = {q.grid for q in CORE_QUESTIONS} | {f"pilot-{b}" for b in PILOT_BUDGETS}
    if not rows and not studied & set(frame["grid"].astype(str)):
        return ()  # results of other grids only (e.g. the README's smoke grid): the study is not theirs
    plans = question_plans(results, list(rows), recommend(list(rows)).budget)
    recomputed = {r.folder: r for r in looks}
    out = []
    for q in SECOND_EDITION_QUESTIONS:
        cpu = _question_rows(results, frame, q, q.grid, {"cpu_hours": _cpu_hours(results, frame, q.grid),
                                                         "plan": plans.get(q.key)}, recomputed.get(q.grid))
        gpu = [row for folder in gpu_folders(q.grid) if frame["grid"].isin([folder, search_name(folder)]).any()
               for row in _question_rows(results, frame, q, folder, _gpu_cost(results, frame, folder),
                                         recomputed.get(folder))]
        ended = bool(gpu) and ended_on_gpu(results, q.grid)
        out += gpu if ended and all(r.stage is Stage.NOT_RUN for r in cpu) else cpu + gpu  # ended on a GPU only
    return tuple(out)


def _question_rows(results: Path, frame: pd.DataFrame, q, folder: str, cost: dict,
                   recomputed: QuestionLooks | None) -> list[GlanceRow]:
    """A question's rows for its runs in ``folder`` (its grid, or the grid under the GPU protocol): one per
    comparison with a sequential state, else one saying where its runs stand. ``recomputed``: the folder's looks
    recomputed from the run files under its recorded design (None: no readable design)."""
    path = results / folder / "sequential.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    variants = state.get("variants", {})
    names = [q.variant] if q.variant else sorted(variants)
    if not any(n in variants for n in names):
        return [GlanceRow(q.key, q.text, folder, **_before_main_runs(results, frame, q.grid, folder), **cost)]
    rows = []
    last_looks = {c.variant: c.looks[-1] for c in recomputed.comparisons if c.looks} if recomputed else {}
    problem = recomputed.refused if recomputed else ""
    for name in (n for n in names if n in variants):
        s = variants[name]
        again = last_looks.get(name, {})
        same = (again.get("label"), again.get("look")) == (s["label"], s.get("look"))
        within = s.get("within_margin", again.get("within_margin") if same else None)
        training = _look_training(frame, folder, state, name) if s["label"] == OPEN else {"stage": Stage.DECIDED}
        rows.append(GlanceRow(
            q.key, q.text, folder, variant=name, reference=state["reference"], label=s["label"],
            estimate=s.get("estimate"), ci=tuple(s["ci"]) if s.get("ci") else None,
            level=1 - s["boundary"] if s.get("boundary") is not None else None, seeds=s.get("n") or None,
            look=s.get("look"), looks=len(state["schedule"]),
            within_margin=bool(within) if within is not None else None, margin=s.get("margin", state.get("margin")),
            pairing_problem=problem,
            **training, **{**cost, "plan": None if has_ended(s["label"]) else cost.get("plan")}))
    return rows


def _look_training(frame: pd.DataFrame, folder: str, state: dict, variant: str) -> dict:
    """A comparison still open (``sequential.json`` is written before each look trains): the look it waits for
    and how many of that look's runs (the variant's and the reference's seeds ``0..n-1``) have finished."""
    look = state["variants"][variant]["look"]
    seeds = state["schedule"][look]
    return {"stage": Stage.LOOK, "training_look": look + 1, "training_seeds": seeds,
            "runs_done": _finished(frame, folder, seeds, [variant, state["reference"]]), "runs_planned": 2 * seeds}


def _finished(frame: pd.DataFrame, folder: str, seeds: int | None = None, variants: list[str] | None = None) -> int:
    """Finished (ok or flagged) second-edition runs in ``folder`` (of seeds ``0..seeds-1``, of ``variants``)."""
    rows = frame[frame["grid"].eq(folder) & frame["status"].isin([RunStatus.OK, RunStatus.FLAGGED])
                 & engine_at_least(frame, SECOND_EDITION_ENGINE)]
    if seeds is not None:
        rows = rows[pd.to_numeric(rows["seed"]) < seeds]
    return len(rows if variants is None else rows[rows["variant"].isin(variants)])


def _gpu_cost(results: Path, frame: pd.DataFrame, folder: str) -> dict:
    """What a question's GPU runs cost (``GlanceRow`` fields): device-hours of the runs that record how many shared
    the device (``plan.cost_factor``), and the wall time of those that do not."""
    rows = frame[frame["grid"].isin([folder, search_name(folder)]) & frame["status"].isin(
        [RunStatus.OK, RunStatus.FLAGGED]) & frame["reused_from"].isna()]
    rows = rows[pd.to_numeric(rows["train_seconds"], errors="coerce").notna()]
    device_seconds = cost_seconds(results, rows)
    known = np.isfinite(device_seconds)
    wall = pd.to_numeric(rows["train_seconds"]).to_numpy(float)[~known]
    return {"cpu_hours": None, "gpu": True, "gpu_runs": int(known.sum()),
            "gpu_hours": float(device_seconds[known].sum() / 3600) if known.any() else None,
            "gpu_runs_sharing_unknown": len(wall), "gpu_wall_hours_sharing_unknown": float(wall.sum() / 3600)
            if len(wall) else None}


@dataclass(frozen=True)
class BudgetFindings:
    """The pilot's plan (``run.py plan``) behind "Choosing the budget": its rows and the recommended budget."""
    results: str
    effect: float
    rows: tuple[BudgetRow, ...]
    recommendation: Recommendation
    pending: tuple[tuple[str, int], ...] = ()  # (budget, ok runs) of the CPU's pilot budgets not finished yet
    gpu_recommendation: Recommendation | None = None  # the GPU's budget (docs/study.md section 5)
    gpu_pending: tuple[tuple[str, int], ...] = ()  # (budget, ok runs) of the GPU's pilot budgets not finished yet
    # the GPU's questions not decided under the GPU's budget, planned there in device time: (folder, plan) by key
    gpu_plans: dict[str, tuple[str, QuestionPlan]] = field(default_factory=dict)


def _ended_runs(grid_dir: Path) -> int:
    """Runs in ``grid_dir`` that ended, ok or failed (a failed run is not retried: the pilot has ended without it)."""
    return sum(1 for _ in grid_dir.glob("*/result.json"))


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

    def pending(budgets: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
        return tuple((b, n) for b in budgets if (n := _ok_runs(Path(results) / f"pilot-{b}")) < PILOT_RUNS)

    gpu = recommend(rows, GPU_MIN_ACCURACY, "gpu")
    return BudgetFindings(str(results), effect, tuple(rows), recommend(rows), pending=pending(PILOT_BUDGETS),
                          gpu_recommendation=gpu, gpu_pending=pending(GPU_PILOT_BUDGETS),
                          gpu_plans=gpu_plans(results, rows, gpu.budget, effect, reps))


def gpu_plans(results: Path, rows: list[BudgetRow], budget: str | None, effect: float = 0.5,
              reps: int = PLAN_REPS, power: float = 0.8) -> dict[str, tuple[str, QuestionPlan]]:
    """The GPU's questions (``study.questions.GPU_QUESTIONS``) not yet decided under the GPU's ``budget`` (else its
    most accurate piloted one), each with its folder ``<grid>-<budget>`` and its plan there in device time
    (``plan.question_plans``); {} before a GPU pilot has rows."""
    grids = {q.key: q.grid for q in questions_on("gpu")}
    plans = question_plans(results, rows, budget, effect, reps, power, device="gpu")
    folders = {key: gpu_folder(grids[key], plan.budget) for key, plan in plans.items()}
    return {key: (folders[key], plan) for key, plan in plans.items() if not folder_ended(Path(results) / folders[key])}




@dataclass(frozen=True)
class GpuOrder:
    """What a time-boxed GPU batch trains next (``run.py gpu-order``; experiments/gpu_session.sh): ``jobs``, the
    grids and the protocol of each, in order, and ``why``."""
    jobs: tuple[tuple[str, str], ...]
    why: str


def gpu_order(results: Path, reps: int = PLAN_REPS) -> GpuOrder:
    """The GPU's budget pilots not ended yet (a run ok or failed ends; failed runs are not retried), each under its own
    budget (docs/study.md section 5); once they have, the questions of ``study.questions.GPU_QUESTIONS`` not yet
    decided under the GPU budget ``run.py plan`` recommends (their folders ``<grid>-<budget>``); nothing where the
    pilots recommend no GPU budget."""
    pending = [b for b in GPU_PILOT_BUDGETS if _ended_runs(Path(results) / f"pilot-{b}") < PILOT_RUNS]
    if pending:
        return GpuOrder(tuple((f"pilot-{b}", b) for b in pending),
                        f"the GPU's budget pilot first: {', '.join(f'pilot-{b}' for b in pending)} not finished")
    recommendation = recommend(pilot_rows(results, reps=reps), GPU_MIN_ACCURACY, "gpu")
    budget = recommendation.budget
    if budget is None:
        return GpuOrder((), f"no GPU budget to train the questions under ({recommendation.reason.value}): read "
                            "`run.py plan --results results`")
    jobs = tuple((grid, budget) for grid in GPU_QUESTIONS if not folder_ended(Path(results) / gpu_folder(grid, budget)))
    return GpuOrder(jobs, f"the questions not decided yet under the GPU budget {budget} (`run.py plan`)" if jobs
                    else f"every GPU question is decided under {budget}")
