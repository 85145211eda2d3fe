"""The study's budget, chosen by measurement: the pilot's runs -> seeds and CPU-hours per decided question.

docs/study.md has the design. For each pilot budget (a grid ``pilot-<protocol>`` holding the core
variants paired by seed) and each core question (a variant against the reference ``dct``):

* the reference's mean test top-1;
* the paired SD of the difference and its upper confidence bound (``stats.sd_upper_bound``);
* CPU-seconds per run: training seconds x torch threads (``env.json``), the runs' median (runs trained
  while the machine was shared take longer; the median keeps the typical run);
* the sequential rule's maximum and expected seeds per variant that decide a pre-specified smallest
  effect of interest with the given power (``sequential.seeds_for_power``, planned with the SD's
  upper bound, never the observed effect), and the CPU-hours that costs (2 variants x expected seeds).

The recommendation: among budgets whose reference reaches ``min_accuracy``, the fewest CPU-hours per
decided question. A GPU's pilot budgets (``pilot-gpu-15``, ``pilot-gpu``) are costed in device-seconds and
recommended among themselves; at the GPU's budget, the GPU's questions are planned in device-hours, networks not
measured yet scaled from the pilot's DyClotNet-0.5 by bytes moved per image (``question_plans``). Only files are
read.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd

from evidence import sequential, stats
from evidence.decisions import PairingError, decide, paired_differences
from evidence.load import engine_at_least, load_grids, load_results
from evidence.sequential import OPEN
from evidence.status import RunStatus
from study.grids import (
    CPU_SEED_CAP,
    GPU_PILOT_BUDGETS,
    GPU_SEED_CAP,
    GRIDS,
    PLAN_REPS,
    gpu_folder,
    gpu_folders,
    search_name,
)
from study.questions import GPU_QUESTIONS, SECOND_EDITION_QUESTIONS, CoreQuestion, trained_networks

from .learning_rates import SEARCH_RUNS_PER_NETWORK, search_progress

PILOT_PREFIX = "pilot-"
# the reference's test top-1 a budget must reach to be recommended: the CPU's (docs/study.md section 1) and the GPU's,
# on which (c) and (d) are decided (section 5)
CPU_MIN_ACCURACY, GPU_MIN_ACCURACY = 70.0, 80.0
SECOND_EDITION_ENGINE = 2  # the engine version of the second edition's runs (docs/study.md)
QUESTIONS = {"replicator": "recalibrator vs replicator-only", "pointwise": "DCT vs pointwise expansion"}
REFERENCE = "dct"


@dataclass(frozen=True)
class BudgetRow:
    """One (budget, question) line of the plan."""
    budget: str
    question: str
    pairs: int
    reference_top1: float
    diff: float
    sd: float
    sd_upper: float
    seconds_per_run: float  # the runs' median cost: CPU-seconds on the CPU, device-seconds on a GPU (``cost_seconds``)
    max_seeds: int | None
    expected_seeds: float | None
    hours: float | None  # both variants' expected seeds, in the unit of ``seconds_per_run``
    seeds_cap: int
    device: str = "cpu"  # "gpu" for the GPU's candidates (study.grids.GPU_PILOT_BUDGETS)


def cost_factor(run_dir: Path) -> float:
    """What a run's training seconds are multiplied by to give its cost (its env.json), NaN when unknown: on the CPU
    its torch threads (CPU-seconds); on a GPU one over the runs that shared the device with it (device-seconds,
    ``runtime.runs_sharing_device``; docs/study.md section 5)."""
    try:
        env = json.loads((run_dir / "env.json").read_text())
        runtime = env.get("runtime") or {}
        if str(runtime.get("device", "")).startswith("cuda"):
            sharing = runtime.get("runs_sharing_device")
            return 1 / sharing if isinstance(sharing, int) and sharing >= 1 else math.nan
        threads = env.get("torch_threads", env.get("threads"))
    except (OSError, ValueError, AttributeError):
        return math.nan
    return float(threads) if isinstance(threads, (int, float)) and threads > 0 else math.nan


def cost_seconds(results: Path, rows: pd.DataFrame) -> np.ndarray:
    """Each run's cost: training seconds x ``cost_factor`` (CPU-seconds on the CPU, device-seconds on a GPU), NaN
    where either is unknown."""
    factors = np.array([cost_factor(results / str(g) / str(r)) for g, r in zip(rows["grid"], rows["run_id"], strict=True)])
    return pd.to_numeric(rows["train_seconds"], errors="coerce").to_numpy(float) * factors


def pilot_rows(results: str | Path, effect: float = 0.5, power: float = 0.8, reps: int = PLAN_REPS,
               max_seeds_cap: int = 400) -> list[BudgetRow]:
    """The plan's rows for every pilot grid under ``results`` that has at least 2 paired seeds."""
    results = Path(results)
    frame = load_results(results)
    frame = frame[(frame["status"] == RunStatus.OK) & frame["grid"].astype(str).str.startswith(PILOT_PREFIX)]
    rows = []
    for grid, runs in sorted(frame.groupby("grid"), key=lambda item: item[0]):
        seconds = cost_seconds(results, runs)
        per_run = float(np.nanmedian(seconds)) if np.isfinite(seconds).any() else math.nan
        reference = runs[runs["variant"] == REFERENCE].set_index("seed")["test_top1"]
        for variant, question in QUESTIONS.items():
            other = runs[runs["variant"] == variant].set_index("seed")["test_top1"]
            seeds = sorted(set(reference.index) & set(other.index))
            if len(seeds) < 2:
                continue
            diffs = other.loc[seeds].to_numpy(float) - reference.loc[seeds].to_numpy(float)
            sd, df = float(np.std(diffs, ddof=1)), len(seeds) - 1
            sd_up = stats.sd_upper_bound(sd, df)
            plan = (sequential.seeds_for_power(sd_up, effect, power, reps=reps, max_cap=max_seeds_cap)
                    if math.isfinite(sd_up) and sd_up > 0 else None)
            expected = plan.expected_seeds if plan else None
            budget = grid[len(PILOT_PREFIX):]
            rows.append(BudgetRow(
                budget=budget, question=question, pairs=len(seeds),
                reference_top1=float(reference.mean()), diff=float(diffs.mean()), sd=sd, sd_upper=sd_up,
                seconds_per_run=per_run, max_seeds=plan.max_seeds if plan else None, expected_seeds=expected,
                hours=2 * expected * per_run / 3600 if expected is not None and math.isfinite(per_run) else None,
                seeds_cap=max_seeds_cap, device="gpu" if budget in GPU_PILOT_BUDGETS else "cpu"))
    return rows


class RecommendReason(str, Enum):
    """Why ``recommend`` chose a budget or none; ``analysis.render.recommendation_text`` writes it out with the
    record's numbers."""
    NO_PILOT = "no pilot runs yet"
    TOO_INACCURATE = "no budget's reference reaches the accuracy"  # best
    UNANSWERED = "an accurate budget's pilot lacks a question"  # missing
    COST_UNKNOWN = "the cost of every accurate budget is unknown"
    CHEAPEST = "the fewest CPU- or GPU-hours per decided question"  # hours


@dataclass(frozen=True)
class Recommendation:
    """``recommend``'s budget (None: none yet), the reason and the numbers behind it: ``best`` the most accurate
    budget and its reference's test top-1, ``missing`` per accurate budget the questions its pilot lacks,
    ``hours`` the chosen budget's CPU-hours (``device`` cpu) or GPU-hours (gpu) per decided question."""
    budget: str | None
    reason: RecommendReason
    min_accuracy: float
    best: tuple[str, float] | None = None
    missing: dict[str, list[str]] = field(default_factory=dict)
    hours: float | None = None
    device: str = "cpu"


def recommend(rows: list[BudgetRow], min_accuracy: float = CPU_MIN_ACCURACY, device: str = "cpu") -> Recommendation:
    """The fewest hours per decided question among the ``device``'s budgets (the CPU's, or the GPU's: a budget is
    chosen for the device its runs train on) whose reference reaches ``min_accuracy`` test top-1 and whose pilot
    answers every question (2 paired seeds or more of each pair)."""
    rows = [r for r in rows if r.device == device]
    if not rows:
        return Recommendation(None, RecommendReason.NO_PILOT, min_accuracy, device=device)
    table = pd.DataFrame([asdict(r) for r in rows])
    accurate = table[table["reference_top1"] >= min_accuracy]
    if accurate.empty:
        best = table.groupby("budget")["reference_top1"].mean().sort_values().index[-1]
        return Recommendation(None, RecommendReason.TOO_INACCURATE, min_accuracy, best=(
            str(best), float(table.loc[table["budget"] == best, "reference_top1"].iloc[0])), device=device)
    answered = accurate.groupby("budget")["question"].transform("nunique") == len(QUESTIONS)
    if not answered.any():  # a budget is chosen on every question's cost, never on one pair alone
        missing = {str(b): sorted(set(QUESTIONS.values()) - set(q)) for b, q in accurate.groupby("budget")["question"]}
        return Recommendation(None, RecommendReason.UNANSWERED, min_accuracy, missing=missing, device=device)
    accurate = accurate[answered]
    per_budget = accurate.groupby("budget")["hours"].apply(lambda h: h.mean() if h.notna().all() else math.inf)
    budget = str(per_budget.idxmin())
    if not math.isfinite(per_budget[budget]):
        return Recommendation(None, RecommendReason.COST_UNKNOWN, min_accuracy, device=device)
    return Recommendation(budget, RecommendReason.CHEAPEST, min_accuracy, hours=float(per_budget[budget]), device=device)


@dataclass(frozen=True, kw_only=True)
class QuestionPlan:
    """What deciding one core question would take at one pilot budget, on the budget's ``device``.

    ``max_seeds`` and ``expected_seeds`` are the free design's (the schedule the effect of interest needs).
    The main runs use the device's cap's schedule, ``plan_looks(seed_cap)``, whatever that design says;
    ``hours``, ``decidable_effect``, ``cap_hours``, ``power_at_cap`` and ``expected_at_cap`` describe
    that schedule, and ``tune_hours`` the learning-rate search before it. Hours and seconds are the device's:
    CPU-hours on the CPU, device-hours on a GPU (``cost_factor``)."""
    key: str
    budget: str
    recommended: bool
    comparisons: int
    sd_upper: float
    sd_source: SdSource  # where the planning SD comes from: a question's main runs or the pilot's pair
    max_seeds: int | None  # the free design's maximum for the effect of interest (None: beyond its search)
    expected_seeds: float | None
    # the networks the main runs train that no earlier question trains, at the capped schedule's expected seeds
    hours: float | None  # None: unknown
    measured_seconds: dict[str, float]  # network -> its finished runs' median seconds a run, where measured
    scaled: tuple[str, ...] = ()  # the other networks, costed by the pilot's median x their COST_SCALE ratio (a proxy)
    uncosted: tuple[str, ...] = ()  # networks with neither: no hours
    seed_cap: int = CPU_SEED_CAP  # the main runs' --max-seeds (docs/study.md, sections 3 and 5)
    device: str = "cpu"  # the budget's: "gpu" for the GPU's (study.grids.GPU_PILOT_BUDGETS)
    decidable_effect: float | None = None  # smallest effect decided with ``power`` at the capped schedule
    cap_hours: float | None = None  # every network it trains (twins included) at seed_cap seeds: the most it can cost
    tune_hours: float | None = None  # the learning-rate search of those networks still to come (docs/study.md, section 2)
    tune_runs_left: int | None = None  # its runs still to train (0: none, done or copies; None: the main runs started)
    power_at_cap: float | None = None  # the capped schedule's power for the effect of interest
    expected_at_cap: float | None = None  # its expected seeds per variant when the effect is true
    # seeds a variant at the question's last look read, which said continue (0: none read). Where > 0, power_at_cap,
    # expected_at_cap and hours are given that the rule went on past that look, hours and cap_hours count the seeds
    # still to come only, and tune_hours is None (the search is done)
    seeds_read: int = 0
    effect: float = 0.5
    power: float = 0.8  # the power the free design and decidable_effect plan for

    @property
    def sd_own(self) -> bool:
        """The planning SD is the question's own main runs' (else the nearest recipe's)."""
        return self.sd_source.question == self.key


@dataclass(frozen=True)
class SdSource:
    """A paired SD measured under one recipe (budget and learning rate), that a plan may use: a question's main
    runs, several questions' main runs pooled, or a pilot pair, named by ``analysis.render.sd_source_text``.
    ``sd_upper``: the 80% upper bound of ``sd``, the paired SD itself (NaN unknown); ``lr``: the geometric mean of
    the pair's learning rates (NaN unknown); ``pairs``: the seed pairs measured; ``question``: the question whose
    main runs (None: pooled or the pilot); ``pooled``: the questions whose main runs are pooled; ``pilot``: the
    pilot's pair name."""
    sd_upper: float
    lr: float
    pairs: int
    question: str | None = None
    pilot: str | None = None
    went_on: bool = False  # a question's main runs whose last look read said continue for some compared variant
    sd: float = math.nan
    pooled: tuple[str, ...] = ()


def _geometric_mean(values) -> float:
    values = np.asarray([v for v in values if isinstance(v, (int, float)) and math.isfinite(v) and v > 0], float)
    return float(np.exp(np.log(values).mean())) if values.size else math.nan


def main_run_sources(results: Path, frame: pd.DataFrame, protocol: str,
                     questions: tuple[CoreQuestion, ...] = SECOND_EDITION_QUESTIONS,
                     folders: dict[str, str] | None = None) -> dict[str, SdSource]:
    """Per question of ``questions`` whose main runs under ``protocol`` have made their first look (its folder's
    ``sequential.json`` records the design; ``folders``: grid -> folder, default the grid's own): the 80% upper
    bound of its own paired SD over the seeds of the last look the rule made (``decisions.decide``; never seeds
    trained ahead of a decision), the largest over its compared variants, or, once a look said continue, over those
    it left open (the decided ones need no more seeds). Runs that do not pair give no source."""
    out = {}
    for q in questions:
        folder = (folders or {}).get(q.grid, q.grid)
        try:
            design = json.loads((Path(results) / folder / "sequential.json").read_text())
            reference, variants = design["reference"], sorted(design["variants"])
            schedule = [int(n) for n in design["schedule"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if design.get("protocol") != protocol:
            continue
        try:
            states = decide(frame, folder, protocol, reference, variants, tuple(schedule), float(design["margin"]),
                            SECOND_EDITION_ENGINE)
        except (PairingError, KeyError, TypeError, ValueError):
            continue
        found = []  # (sd upper bound, sd, pairs, learning rates) per compared variant still to plan
        went_on = any(state["label"] == OPEN for state in states.values())
        for variant, state in states.items():
            if not state["n"] or (went_on and state["label"] != OPEN):
                continue
            diffs = paired_differences(frame, folder, protocol, variant, reference, state["n"], SECOND_EDITION_ENGINE)
            rows = frame[frame["grid"].eq(folder) & frame["variant"].isin([variant, reference])
                         & frame["status"].eq(RunStatus.OK) & pd.to_numeric(frame["seed"]).lt(len(diffs))]
            rates = rows.groupby("variant")["lr"].first() if "lr" in rows else pd.Series(dtype=float)
            sd = float(np.std(diffs, ddof=1))
            found.append((stats.sd_upper_bound(sd, len(diffs) - 1), sd, len(diffs), rates))
        if found:
            sd_up, sd, pairs, rates = max(found, key=lambda f: f[0])
            lr = _geometric_mean(rates.to_numpy(float))
            out[q.key] = SdSource(sd_up, lr, pairs, question=q.key, went_on=went_on, sd=sd)
    return out


def _chosen_rate(results: Path, grid: str, protocol: str) -> float:
    """The geometric mean of the learning rates ``grid``'s search chose under ``protocol`` (NaN: none chosen)."""
    try:
        chosen = json.loads((Path(results) / search_name(grid) / "chosen.json").read_text())
        if chosen.get("protocol") != protocol:
            return math.nan
        return _geometric_mean([v.get("lr") for v in chosen["variants"].values()])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return math.nan


def planning_source(question: CoreQuestion, pilot: list[SdSource], measured: dict[str, SdSource],
                    rate: float = math.nan) -> SdSource:
    """The SD a question is planned with (docs/study.md, section 1, "The planning SD"): its own main runs' once its
    first look exists; else the nearest recipe measured at the budget: the smallest distance in learning rate (log
    scale) to the question's chosen ``rate``, or, before its search has chosen, to the rates the main runs measured
    so far (``measured``; before any, every pilot pair is equally near); among the nearest, the pilot's pair of
    the question's own networks, else the main runs among them pooled (``pooled_source``), else the largest SD
    bound (pilot pairs alone: the cautious choice)."""
    if question.key in measured:
        return measured[question.key]
    candidates = [*measured.values(), *pilot]
    target = rate if math.isfinite(rate) else _geometric_mean([s.lr for s in measured.values()])

    def distance(source: SdSource) -> float:
        if not (math.isfinite(target) and math.isfinite(source.lr)):
            return 0.0 if not measured or source.question else math.inf
        return round(abs(math.log(source.lr / target)), 9)

    nearest = min(distance(s) for s in candidates)
    near = [s for s in candidates if distance(s) == nearest]
    own = QUESTIONS.get(question.variant or "")
    mains = [s for s in near if s.question is not None]
    return (next((s for s in near if s.pilot is not None and s.pilot == own), None)
            or (pooled_source(mains) if mains else max(near, key=lambda s: s.sd_upper)))


def pooled_source(sources: list[SdSource]) -> SdSource:
    """Questions' main runs pooled (docs/study.md, "The planning SD"): each question's paired SD as it plans itself
    with, their variances weighted by their degrees of freedom (pairs - 1), and the 80% upper bound of the pooled SD
    with the degrees of freedom summed. One source is itself. The largest of several bounds would grow with every
    small source added (its few pairs give a wide bound), whatever the SDs are."""
    if len(sources) == 1:
        return sources[0]
    df = sum(s.pairs - 1 for s in sources)
    sd = math.sqrt(sum((s.pairs - 1) * s.sd ** 2 for s in sources) / df)
    return SdSource(stats.sd_upper_bound(sd, df), _geometric_mean([s.lr for s in sources]), sum(s.pairs for s in sources),
                    sd=sd, pooled=tuple(sorted(s.question for s in sources)))


def _study_cost_rows(results: Path) -> list[dict]:
    """RESULTS/study_costs.json (``run.py study-costs``): one row per (grid, variant); [] when absent or unreadable."""
    try:
        rows = json.loads((Path(results) / "study_costs.json").read_text())
        return [r for r in rows if isinstance(r, dict) and "grid" in r and "variant" in r]
    except (OSError, ValueError, TypeError):
        return []


# what a network's run time is scaled by from the pilot's DyClotNet-0.5, per device (study_costs.json's columns):
# MACs on the CPU, where compute bounds the speed; bytes moved per image on a GPU, where memory bandwidth does
# (costing.profiling.count_bytes_moved; issue 33: MACs predict GPU speeds badly)
COST_SCALE = {"cpu": "macs", "gpu": "bytes_per_image"}


def _study_cost_column(results: Path, column: str, read) -> dict[tuple[str, str], object]:
    """(grid, variant) -> ``read(row[column])`` for each row of RESULTS/study_costs.json; a row whose value is
    missing or that ``read`` refuses (ValueError, TypeError) is skipped, never the whole file."""
    out = {}
    for r in _study_cost_rows(results):
        try:
            out[(str(r["grid"]), str(r["variant"]))] = read(r[column])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _positive_finite(value) -> float:
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{value!r} is not a positive number")
    return number


def _text(value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not text")
    return value


def study_costs(results: Path, column: str = "macs") -> dict[tuple[str, str], int]:
    """(grid, variant) -> ``column`` (MACs, or bytes_per_image) from RESULTS/study_costs.json, for the rows that
    have it; empty when the file is absent or unreadable."""
    return _study_cost_column(results, column, int)


def side_by_side_latency(results: Path) -> dict[tuple[str, str], float]:
    """(grid, variant) -> CPU batch-1 latency (ms) measured side by side with every other network of the study
    (``run.py study-costs``, ``latency_setup`` says how), from RESULTS/study_costs.json, for the rows that have it."""
    return _study_cost_column(results, "latency_ms", _positive_finite)


def study_architectures(results: Path) -> dict[tuple[str, str], str]:
    """(grid, variant) -> the built network's class and resolved arguments (the engine's twin test) from
    RESULTS/study_costs.json, for the networks that record them (``baselines.registry.architecture``)."""
    return _study_cost_column(results, "architecture", _text)


def question_plan(question: CoreQuestion, rows: list[BudgetRow], budget: str, recommended: bool,
                  scale: dict[tuple[str, str], int], effect: float = 0.5, power: float = 0.8,
                  reps: int = PLAN_REPS, cap: int = CPU_SEED_CAP, new: list[str] | None = None,
                  measured: dict[str, float] | None = None, sd: SdSource | None = None,
                  device: str = "cpu", search_left: dict[str, int] | None = None) -> QuestionPlan:
    """Seeds and hours that decide ``question`` at ``budget`` under the sequential rule: CPU-hours on the CPU, device
    hours on a GPU (``device`` "gpu": the run times and ``scale`` are then the GPU's, ``COST_SCALE``).

    The planning SD is ``sd`` (``planning_source``: the question's own main runs once its first look exists, else
    the nearest recipe measured); without one, the pilot's 80% upper bound for the question's own pair where the
    pilot trains it, else the largest of the pilot's pairs at that budget (an assumption: the other networks are
    not piloted). The rule
    splits alpha over the comparisons ``study --until-decided`` decides: the question's own (``variant``) where it
    names one, else every variant against the reference; only those networks get main runs. A run's time is the
    network's ``measured`` median seconds a run under the budget (``measured_seconds``) where it has finished
    runs, else the pilot's DyClotNet-0.5 median scaled by the network's ``scale`` (MACs on the CPU, bytes per image
    on a GPU, ``study_costs.json``): a proxy until
    the question's first runs measure it. The learning-rate search of those networks (each at every candidate rate
    and tuning seed) comes first and is costed apart, for the ``new`` ones (default all of them), counting each
    network's runs still to finish (``search_left``, ``search_runs_left``; default the whole search): a network an
    earlier question trained has twins there, copied rather than trained (``new_networks``). Its main runs are
    twins too where its chosen rate agrees (its search runs are copies, so it does unless the search is widened
    further for another network) and the earlier question trained the seed: the expected cost counts the ``new``
    networks only, the most it can cost every network at every seed.

    The main runs always look up to ``cap`` seeds (the device's cap, docs/study.md, section 3), whatever the free
    design's maximum; the plan gives that schedule's power and expected seeds for ``effect``, the smallest
    effect it decides with ``power``, and what it costs, expected and at most."""
    at_budget = [r for r in rows if r.budget == budget]
    sd = sd or planning_source(question, _pilot_sources(at_budget, math.nan), {})
    own = QUESTIONS.get(question.variant or "")  # the pilot row behind the run costs: the SD's, or the question's own
    source = (next((r for r in at_budget if r.question in (sd.pilot, own)), None)
              or max(at_budget, key=lambda r: r.sd_upper))
    sd_upper = sd.sd_upper
    trained = trained_networks(question.grid)  # as `study --until-decided` runs them
    comparisons = len(trained) - 1
    plannable = math.isfinite(sd_upper) and sd_upper > 0
    plan = (sequential.seeds_for_power(sd_upper, effect, power, n_comparisons=comparisons, reps=reps,
                                       max_cap=source.seeds_cap) if plannable else None)
    schedule = sequential.plan_looks(cap)
    # a question part-way: its own SD over its last look read, which went on (a decided question is not planned)
    read = sd.pairs if sd.question == question.key and sd.went_on and sd.pairs in schedule[:-1] else 0
    capped = (sequential.simulate(schedule, effect, sd_upper, reps, n_comparisons=comparisons,
                                  reached=schedule.index(read) + 1 if read else 0) if plannable else None)
    if capped and not math.isfinite(capped["expected_seeds"]):
        capped = None  # no simulated comparison goes on that far: nothing to plan from
    reference_scale = scale.get((f"{PILOT_PREFIX}{budget}", REFERENCE))
    seconds = {name: scale[(question.grid, name)] / reference_scale * source.seconds_per_run for name in trained
               if scale.get((question.grid, name)) is not None and reference_scale
               and math.isfinite(source.seconds_per_run)}
    measured = {name: value for name, value in (measured or {}).items() if name in trained}
    seconds.update(measured)
    uncosted = tuple(name for name in trained if name not in seconds)
    known = not uncosted
    hours = (lambda names: sum(seconds[n] for n in names) / 3600) if known else (lambda names: None)
    new = trained if new is None else new
    run_hours, new_hours = hours(trained), hours(new)
    left = {name: (search_left or {}).get(name, SEARCH_RUNS_PER_NETWORK) for name in new}
    return QuestionPlan(
        key=question.key, budget=budget, recommended=recommended, comparisons=comparisons, sd_upper=sd_upper,
        sd_source=sd, max_seeds=plan.max_seeds if plan else None,
        expected_seeds=plan.expected_seeds if plan else None,
        hours=(capped["expected_seeds"] - read) * new_hours if capped and known else None,
        measured_seconds=measured, scaled=tuple(n for n in trained if n in seconds and n not in measured),
        uncosted=uncosted,
        seed_cap=cap,
        decidable_effect=(sequential.decidable_effect(sd_upper, cap, power, n_comparisons=comparisons, reps=reps)
                          if plannable else None),
        cap_hours=(cap - read) * run_hours if known else None,
        tune_hours=sum(left[n] * seconds[n] for n in new) / 3600 if known and not read else None,
        tune_runs_left=None if read else sum(left.values()),
        power_at_cap=capped["power"] if capped else None,
        expected_at_cap=capped["expected_seeds"] if capped else None,
        effect=effect, power=power, device=device, seeds_read=read)


def folder_ended(folder: Path) -> bool:
    """Whether the sequential rule has ended every comparison in ``folder`` (its sequential.json): decided or
    inconclusive at its cap (``evidence.sequential.has_ended``). A comparison still open, or stopped before a look
    because the time box or a run ended it (``experiments.until_decided.final_states``), is not."""
    try:
        variants = json.loads((Path(folder) / "sequential.json").read_text())["variants"]
        return bool(variants) and all(sequential.has_ended(str(state["label"])) for state in variants.values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def ended_on_gpu(results: Path, grid: str) -> bool:
    """Whether a GPU budget's folder of ``grid`` (``study.grids.gpu_folders``) has ended its question: the CPU then
    plans nothing more for it (the headline and the baselines are decided on a GPU only)."""
    return any(folder_ended(Path(results) / folder) for folder in gpu_folders(grid))


def questions_on(device: str) -> tuple[CoreQuestion, ...]:
    """The questions planned on ``device``: every second-edition question on the CPU, in the order ``study`` runs
    them; on a GPU those of ``study.questions.GPU_QUESTIONS``, in the order a GPU batch trains them."""
    if device == "cpu":
        return SECOND_EDITION_QUESTIONS
    by_grid = {q.grid: q for q in SECOND_EDITION_QUESTIONS}
    return tuple(by_grid[grid] for grid in GPU_QUESTIONS)


def question_plans(results: str | Path, rows: list[BudgetRow], budget: str | None, effect: float = 0.5,
                   reps: int = PLAN_REPS, power: float = 0.8, device: str = "cpu") -> dict[str, QuestionPlan]:
    """Per question planned on ``device`` (``questions_on``), its plan at the ``device``'s recommended ``budget``,
    else at its most accurate piloted budget: on the CPU in CPU-hours, looks to ``CPU_SEED_CAP``, each question in
    its own grid folder; on a GPU in device-hours, looks to ``GPU_SEED_CAP`` (``gpu-next``'s), each in its folder
    ``<grid>-<budget>`` (``study.grids.gpu_folders``), networks costed by bytes moved per image. Only the device's
    pilot rows count; {} without any."""
    rows = [r for r in rows if r.device == device]
    if not rows:
        return {}
    results = Path(results)
    chosen = budget or max(rows, key=lambda r: r.reference_top1).budget
    questions = tuple(q for q in questions_on(device) if device != "cpu" or not ended_on_gpu(results, q.grid))
    folders = {q.grid: q.grid if device == "cpu" else gpu_folder(q.grid, chosen) for q in questions}
    scale = study_costs(results, COST_SCALE[device])
    new = new_networks(study_architectures(results), questions)
    frame = load_results(results)
    measured = measured_seconds(results, frame, chosen, folders)
    pilot = _pilot_sources([r for r in rows if r.budget == chosen],
                           _geometric_mean(frame.loc[frame["grid"].eq(f"{PILOT_PREFIX}{chosen}")
                                                     & frame["status"].eq(RunStatus.OK), "lr"]))
    own = main_run_sources(results, frame, chosen, questions, folders)
    grids = load_grids(results)
    return {q.key: question_plan(q, rows, chosen, budget is not None, scale, effect, power, reps,
                                 cap=CPU_SEED_CAP if device == "cpu" else GPU_SEED_CAP, new=new[q.key],
                                 measured={n: v for (g, n), (v, _) in measured.items() if g == q.grid},
                                 sd=planning_source(q, pilot, own, _chosen_rate(results, folders[q.grid], chosen)),
                                 device=device, search_left=search_runs_left(results, frame, grids, folders[q.grid],
                                                                              chosen, new[q.key]))
            for q in questions}


def search_runs_left(results: Path, frame: pd.DataFrame, grids: dict[str, dict], folder: str, protocol: str,
                     networks: list[str]) -> dict[str, int]:
    """Per network of ``networks``, the runs of ``folder``'s learning-rate search under ``protocol`` still to finish:
    none once its chosen.json (under ``protocol``) is written; else those its grid.json (``grids``, where under
    ``protocol`` or none named) plans, or every candidate at every tuning seed, less its finished engine-2 runs under ``protocol``
    (``learning_rates.search_progress``)."""
    search = search_name(folder)
    try:
        if json.loads((Path(results) / search / "chosen.json").read_text()).get("protocol") == protocol:
            return dict.fromkeys(networks, 0)
    except (OSError, ValueError, AttributeError):
        pass  # no choice yet (an unreadable one: the report's learning-rate section names it)
    meta = grids.get(search)
    ours = frame[frame["protocol"].eq(protocol) & engine_at_least(frame, SECOND_EDITION_ENGINE)]
    progress = search_progress(ours, search, meta if (meta or {}).get("protocol") in (None, protocol) else None, networks)
    return {n: max(0, planned - done) for n in networks
            for planned, done in [progress.get(n, (SEARCH_RUNS_PER_NETWORK, 0))]}


def _pilot_sources(rows: list[BudgetRow], lr: float) -> list[SdSource]:
    """The pilot's pairs at one budget as SD sources, trained at ``lr``."""
    return [SdSource(r.sd_upper, lr, r.pairs, pilot=r.question, sd=r.sd) for r in rows]


def measured_seconds(results: Path, frame: pd.DataFrame, protocol: str,
                     folders: dict[str, str]) -> dict[tuple[str, str], tuple[float, int]]:
    """(question's grid, network) -> (median seconds a run, runs behind it): the finished (ok or flagged)
    second-edition runs under ``protocol`` of each question's folder (``folders``: grid -> folder) and of its
    learning-rate search, their cost (``cost_seconds``:
    CPU-seconds, or device-seconds on a GPU); a search run ``NAME@lrX`` counts for ``NAME``, a copied twin with its
    original's time (the same network, trained once)."""
    grids = {g: grid for grid, folder in folders.items() for g in (folder, search_name(folder))}
    rows = frame[frame["grid"].isin(list(grids)) & frame["protocol"].eq(protocol)
                 & frame["status"].isin([RunStatus.OK, RunStatus.FLAGGED])
                 & engine_at_least(frame, SECOND_EDITION_ENGINE)]
    seconds: dict[tuple[str, str], list[float]] = {}
    for grid, variant, value in zip(rows["grid"], rows["variant"], cost_seconds(results, rows), strict=True):
        if math.isfinite(value):
            seconds.setdefault((grids[grid], str(variant).split("@")[0]), []).append(value)
    return {key: (float(np.median(values)), len(values)) for key, values in seconds.items()}


def new_networks(architectures: dict[tuple[str, str], str] | None = None,
                 questions: tuple[CoreQuestion, ...] = SECOND_EDITION_QUESTIONS) -> dict[str, list[str]]:
    """Per question of ``questions`` (the second edition's, in the order ``study`` runs them; or a GPU's, in its
    order), the networks it trains that no earlier question trains: those its main runs and search train
    (``trained_networks``) less any an earlier question already trained, whose search runs are twins, copied
    (experiments/reuse.py), and whose main runs are too where the chosen rate agrees and the earlier question
    trained the seed. A network is the same as another when its
    ``architectures`` entry (grid, variant) -> built class and resolved arguments (``study_architectures``, the
    engine's twin test) and its learning-rate settings and dataset are equal. A network without an entry is
    never taken for another, as the engine never copies a twin of a model that records no architecture."""
    architectures = architectures or {}
    seen, out = set(), {}
    for question in questions:
        grid = GRIDS[question.grid]
        identity = {name: (architectures.get((grid.name, name)) or (grid.name, name), grid.variants[name].lr,
                           grid.dataset, grid.lr_scale) for name in trained_networks(question.grid)}
        out[question.key] = [name for name, key in identity.items() if key not in seen]
        seen |= set(identity.values())
    return out


def plan_table(rows: list[BudgetRow]) -> pd.DataFrame:
    """The plan as a display table (strings): its cost per decided question in CPU-hours, on a GPU in
    device-minutes."""
    fmt = lambda v, f: "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f.format(v)  # noqa: E731
    return pd.DataFrame([{
        "budget": r.budget, "question": r.question, "pairs": str(r.pairs), "ref top-1": fmt(r.reference_top1, "{:.1f}"),
        "mean diff": fmt(r.diff, "{:+.2f}"), "paired SD (80% UB)": f"{fmt(r.sd, '{:.2f}')} ({fmt(r.sd_upper, '{:.2f}')})",
        f"{r.device.upper()}-s/run (median)": fmt(r.seconds_per_run, "{:.0f}"),
        "max seeds": fmt(r.max_seeds, "{}") if r.max_seeds or not math.isfinite(r.sd_upper) else f"> {r.seeds_cap}",
        "E[seeds]": fmt(r.expected_seeds, "{:.1f}"),
        **({"GPU-min": fmt(None if r.hours is None else 60 * r.hours, "{:.0f}")} if r.device == "gpu"
           else {"CPU-h": fmt(r.hours, "{:.1f}")})} for r in rows])
