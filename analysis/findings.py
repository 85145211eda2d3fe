"""The report's findings: everything REPORT.md states, computed once from a results directory.

``compute_findings`` is the only step that reads files (the runs, grid.json, study.json, claim_costs.json,
the pilot's and the sequential rule's files, docs/interpretation.md); it returns ``ReportFindings``, a tree
of plain dataclasses (pandas tables where a section is a table). ``analysis.render`` writes it as Markdown,
``analysis.report_figures`` draws its figures and ``findings_json`` serialises it (``run.py report --format
json``; the per-grid comparisons are ``analyze --format json``'s object).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evidence.health import training_health
from evidence.load import STATUSES, load_curves, load_grids, load_results, load_run_files, load_study, without
from evidence.status import RunStatus
from study.grids import GPU_PILOT_BUDGETS, GRIDS

from . import learning_rates, looks, second_edition, tables
from .claims import ClaimsFindings, claim_findings
from .compare import analyze, grid_key, grid_reference
from .paper_claims import PaperClaim, claims_table, read_cost_files
from .questions import QuestionsFindings, question_findings

REPO_ROOT = Path(__file__).resolve().parents[1]
INTERPRETATION = REPO_ROOT / "docs" / "interpretation.md"
COSTS = ("params", "macs", "latency_ms")
FIGURE_DATA = {"json": None}  # field metadata: data behind a figure, left out of the JSON


def flatten(obj, prefix: str = "") -> dict[str, str]:
    """Dotted keys -> short text values of a nested JSON object."""
    out = {}
    for key, value in sorted(obj.items()) if isinstance(obj, dict) else []:
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            out[name] = text if len(text) <= 70 else text[:67] + "..."
    return out


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "grid"


# ------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class GridRuns:
    """A grid's run folders by status (``STATUSES`` order) and the engine versions that trained them."""
    grid: str
    reference: str | None
    counts: dict[str, int]
    engine_versions: tuple[int, ...]


@dataclass(frozen=True)
class PlanRow:
    """One grid of the study plan (results/study.json) against the runs present."""
    grid: str
    protocol: str | None
    seeds: int
    variants: int
    ok: int
    state: str


@dataclass(frozen=True)
class RunsFindings:
    grids: tuple[GridRuns, ...]
    ok: int
    trained: int  # ok runs trained here, not copied from a twin
    train_seconds: float  # theirs on the CPU (the GPU's apart: a GPU's wall seconds are shared by the runs on it)
    plan: tuple[PlanRow, ...]
    plan_problem: str | None
    gpu_trained: int = 0  # of ``trained``, under a GPU budget (``study.grids.GPU_PILOT_BUDGETS``)
    gpu_train_seconds: float = 0.0  # their wall seconds, each run's whole (the GPU was shared)


@dataclass(frozen=True)
class SetupFindings:
    """What the runs recorded: env.json and config.json values (dotted keys -> sorted distinct values)."""
    env_runs: int
    env_values: dict[str, tuple[str, ...]]
    config_runs: int
    config_values: dict[str, tuple[str, ...]]  # "(absent)" where a run's config lacks the key
    protocols: tuple[str, ...]
    datasets: tuple[str, ...]
    jpeg: bool  # CIFAR-10 decoded from the JPEG re-encoding


@dataclass(frozen=True)
class CostReading:
    """One row of claim_costs.json: a reading of the paper and the cost ratios it gives."""
    dyclot_reading: str
    mobile_reading: str
    params_ratio: float
    params_match: bool
    macs_ratio: float
    macs_match: bool


@dataclass(frozen=True, kw_only=True)
class GridFindings:
    """A grid's section; ``skipped`` says why a grid could not be analysed (then nothing else is set)."""
    grid: str
    skipped: str | None = None
    description: str | None = None
    order: tuple[str, ...] = ()  # variants, the reference first
    paired: bool = False
    datasets: tuple[str, ...] = ()
    left_out: dict[str, str] = field(default_factory=dict)
    cost_columns: tuple[str, ...] = ()
    costs: dict[str, dict[str, float]] = field(default_factory=dict)  # variant -> cost -> median over runs
    sweep_key: str | None = None  # the swept model_kwargs entry, when the sweep has a figure
    curve_metric: str | None = None
    curve_order: tuple[str, ...] = ()
    seeds_data: pd.DataFrame | None = field(default=None, metadata=FIGURE_DATA)
    sweep_data: pd.DataFrame | None = field(default=None, metadata=FIGURE_DATA)
    curves_data: pd.DataFrame | None = field(default=None, metadata=FIGURE_DATA)

    def figure(self, kind: str) -> str:
        """Name of the grid's figure of ``kind`` (seeds, sweep, curves)."""
        return f"{slug(self.grid)}_{kind}"


@dataclass(frozen=True)
class ParetoPanel:
    """Accuracy against one cost on one dataset: a point per (grid, variant)."""
    name: str
    cost: str
    dataset: str
    grids: tuple[str, ...]
    points: pd.DataFrame  # label, group, cost, mean, ci_low, ci_high


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman correlation of MACs with CPU latency over the distinct networks of one dataset."""
    dataset: str
    networks: int
    rho: float
    p: float


@dataclass(frozen=True)
class ParetoFindings:
    panels: tuple[ParetoPanel, ...]
    correlations: tuple[RankCorrelation, ...]


@dataclass(frozen=True)
class ProtocolBudget:
    name: str
    epochs: str
    train_per_class: str
    test_per_class: str
    batch_sizes: tuple[str, ...]
    learning_rates: tuple[str, ...]


@dataclass(frozen=True)
class LatencySpread:
    """Slowest over fastest run of each network trained more than once: how many, median, maximum."""
    networks: int
    median: float
    max: float


@dataclass(frozen=True)
class LimitationsFindings:
    seeds_min: int
    seeds_max: int
    runs: int
    excluded_runs: int
    paired_below_6: bool
    latency_spread: LatencySpread | None
    budgets: tuple[ProtocolBudget, ...]
    env_runs: int
    gpu_runs: int
    gpus: tuple[str, ...]
    datasets: tuple[str, ...]
    # seeds a variant of the second edition's decided questions (fewest, most; the glance), judged by the sequential rule apart
    # from the fixed-sample analysis that seeds_min and seeds_max count; None without such a question
    sequential_seeds: tuple[int, int] | None = None
    # learning-rate search runs that diverged: counted in their search as finished with validation 0 (docs/study.md,
    # section 2), so not among ``excluded_runs``
    diverged_search_runs: int = 0


@dataclass(frozen=True)
class ReportFindings:
    source: str  # the results directory as given
    metric: str
    analysis: dict = field(metadata={"json": tables.to_dict})  # compare.analyze's result
    paper_claims: tuple[PaperClaim, ...] = ()  # the claims table that opens the report (the study's results only)
    glance: tuple[second_edition.GlanceRow, ...] = ()  # "The questions at a glance", one row per comparison
    looks: tuple[looks.QuestionLooks, ...] = ()  # "Decisions, look by look", per question with a recorded design
    holm: looks.HolmReading | None = None  # the study-wide Holm sensitivity reading over the decided questions
    budget: second_edition.BudgetFindings | None = None
    learning_rates: tuple[learning_rates.LearningRateSearch, ...] = ()  # run.py tune's choices
    runs: RunsFindings | None = None
    health: pd.DataFrame | None = None  # evidence.health.training_health
    setup: SetupFindings | None = None
    questions: QuestionsFindings | None = None
    claims: ClaimsFindings | None = None
    cost_readings: tuple[CostReading, ...] | None = None  # None: no claim_costs.json
    grids: tuple[GridFindings, ...] = ()
    pareto: ParetoFindings | None = None
    interpretation: str | None = None  # docs/interpretation.md
    limitations: LimitationsFindings | None = None


# ------------------------------------------------------------------------------------------ compute
def _runs(results: Path, frame: pd.DataFrame, grids: dict) -> RunsFindings:
    accounting = frame.groupby("grid")["status"].value_counts().unstack(fill_value=0)
    accounting = accounting.reindex(columns=[s for s in STATUSES if s in accounting.columns])
    versions = {g: tuple(int(x) for x in sorted(v.dropna().unique()))
                for g, v in pd.to_numeric(frame["engine_version"], errors="coerce").groupby(frame["grid"])}
    reference = lambda g: None if "reference" not in grids.get(g, {}) else str(grids[g]["reference"])  # noqa: E731
    runs = tuple(GridRuns(g, reference(g), {s: int(accounting.loc[g, s]) for s in accounting.columns}, versions.get(g, ()))
                 for g in sorted(accounting.index, key=grid_key))
    ok = frame[frame["status"] == RunStatus.OK]
    trained = ok[ok["reused_from"].isna()]
    plan, problem = load_study(results)
    rows = []
    for entry in plan:
        grid, seeds = entry["grid"], entry["seeds"]
        variants = len((grids.get(grid) or {}).get("variants") or {})
        planned = (frame["grid"] == grid) & (frame["status"] == RunStatus.OK) & (frame["seed"] < seeds)
        if entry.get("protocol"):
            planned &= frame["protocol"] == entry["protocol"]
        done = int(planned.sum())
        state = ("not started" if grid not in grids else "complete" if variants and done >= variants * seeds
                 else "partial")
        rows.append(PlanRow(grid, entry.get("protocol"), seeds, variants, done, state))
    on_gpu = trained["protocol"].isin(GPU_PILOT_BUDGETS)
    seconds = pd.to_numeric(trained["train_seconds"], errors="coerce")
    return RunsFindings(runs, len(ok), len(trained), float(seconds[~on_gpu].sum()), tuple(rows), problem,
                        int(on_gpu.sum()), float(seconds[on_gpu].sum()))


def _setup(frame: pd.DataFrame, envs: list[dict], configs: list[dict]) -> SetupFindings:
    env_values = {}
    for env in envs:
        for key, value in flatten(env).items():
            env_values.setdefault(key, set()).add(value)
    flat = [flatten(config) for config in configs]
    keys = sorted(set().union(*flat)) if flat else []
    datasets = tuple(sorted(frame["dataset"].dropna().astype(str).unique()))
    config_text = " ".join(f"{k}={v}" for f in flat for k, v in f.items()).lower()
    return SetupFindings(
        len(envs), {k: tuple(sorted(v)) for k, v in sorted(env_values.items())},
        len(configs), {k: tuple(sorted({f.get(k, "(absent)") for f in flat})) for k in keys},
        tuple(sorted(frame["protocol"].dropna().astype(str).unique())), datasets,
        any("jpeg" in d.lower() for d in datasets) or "jpeg" in config_text)


def _cost_readings(results: Path) -> tuple[CostReading, ...] | None:
    """The rows of ``claim_costs.json`` (``run.py claim-costs --out``); None when there is none."""
    path = results / "claim_costs.json"
    try:
        rows = json.loads(path.read_text())

        def ratio(value) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"ratio {value!r} is not a number")
            return float(value)

        return tuple(CostReading(str(r["dyclotnet_200 reading"]), str(r["mobilenetv2_100 reading"]),
                                 ratio(r["params_ratio"]), bool(r["params_match"]), ratio(r["macs_ratio"]),
                                 bool(r["macs_match"])) for r in rows)
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"'{path}' is not a claim-costs file ({error}); rewrite it with run.py claim-costs --out") from None


def sweep_axis(meta: dict, rows: pd.DataFrame, grid: str) -> tuple[str, dict[str, float]] | None:
    """``(key, {variant: value})`` of the numeric ``model_kwargs`` entry a grid sweeps: the one that varies,
    or, where several do, the one its definition in ``study/grids.py`` varies."""
    kwargs = {v: spec.get("model_kwargs") or {} for v, spec in (meta.get("variants") or {}).items()
              if isinstance(spec, dict)}
    for row in rows.dropna(subset=["model_kwargs"]).itertuples(index=False):
        try:
            kwargs.setdefault(str(row.variant), json.loads(row.model_kwargs))
        except (TypeError, json.JSONDecodeError):
            continue
    varying = _varying_numbers(kwargs.values())
    defined = _varying_numbers(v.model_kwargs for v in GRIDS[grid].variants.values()) if grid in GRIDS else []
    preferred = defined[0] if len(defined) == 1 else None
    key = preferred if preferred in varying else (varying[0] if len(varying) == 1 else None)
    if key is None:
        return None
    return key, {v: float(kw[key]) for v, kw in kwargs.items() if _numeric(kw.get(key))}


def _numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _varying_numbers(kwargs) -> list[str]:
    """The numeric keys whose value differs between the variants' ``model_kwargs``."""
    kwargs = list(kwargs)
    keys = sorted({k for kw in kwargs for k, v in kw.items() if _numeric(v)})
    return [k for k in keys if len({kw[k] for kw in kwargs if _numeric(kw.get(k))}) > 1]


def _grid(grid: str, meta: dict, frame: pd.DataFrame, usable: pd.DataFrame, curves: pd.DataFrame,
          result: dict) -> GridFindings:
    summary = result["summaries"][result["summaries"]["grid"] == grid]
    order = tuple(summary["variant"])
    rows_all = frame[frame["grid"] == grid]
    comps = result["comparisons"]
    grid_rows = usable[usable["grid"] == grid]
    cost_columns = tuple(c for c in COSTS if c in usable and grid_rows[c].notna().any())
    med = grid_rows.groupby("variant")[list(cost_columns)].median() if cost_columns else pd.DataFrame()
    sweep, sweep_data = sweep_axis(meta, rows_all, grid), None
    if sweep:
        data = summary[summary["variant"].isin(sweep[1])].assign(x=lambda d: d["variant"].map(sweep[1]))
        sweep_data = data if len(data) >= 2 else None
    grid_curves = curves[curves["grid"] == grid] if len(curves) else curves
    # a curve needs more than one epoch: the test set of most protocols is evaluated after the last epoch only
    curve_metric = next((m for m in (result["metric"], "val_top1", "test_top1") if m in grid_curves
                         and grid_curves.dropna(subset=[m])["epoch"].nunique() > 1), None)
    left_out = meta.get("left_out") if isinstance(meta.get("left_out"), dict) else {}
    return GridFindings(
        grid=grid, description=str(meta["description"]) if meta.get("description") else None, order=order,
        paired=bool(comps[comps["grid"] == grid]["paired"].any()) if len(comps) else False,
        datasets=tuple(sorted(rows_all["dataset"].dropna().astype(str).unique())),
        left_out=dict(sorted(left_out.items())), cost_columns=cost_columns,
        costs={v: {c: float(med.loc[v, c]) for c in cost_columns} for v in order if v in med.index},
        sweep_key=sweep[0] if sweep_data is not None else None, curve_metric=curve_metric,
        curve_order=tuple(v for v in order if v in set(grid_curves["variant"])) if curve_metric else (),
        seeds_data=grid_rows if len(grid_rows) else None, sweep_data=sweep_data,
        curves_data=grid_curves.dropna(subset=[curve_metric]) if curve_metric else None)


def _pareto(usable: pd.DataFrame, result: dict) -> ParetoFindings:
    summary = result["summaries"].set_index(["grid", "variant"])
    if usable["grid"].nunique() > 1:  # the smoke grid runs on other data and a tiny budget
        usable = usable[usable["grid"] != "smoke"]
    panels = []
    # accuracies on different test sets are not comparable: one figure (and front) per dataset
    grid_data = usable.groupby("grid")["dataset"].agg(lambda d: "+".join(sorted(d.dropna().astype(str).unique())))
    for dataset in sorted(set(grid_data)):
        grids_here = tuple(sorted(grid_data.index[grid_data == dataset], key=grid_key))
        for cost in ("macs", "latency_ms"):
            if cost not in usable or usable[cost].notna().sum() == 0:
                continue
            med = usable[usable["grid"].isin(grids_here)].groupby(["grid", "variant"])[cost].median().dropna()
            points = pd.DataFrame([{"label": v, "group": g, "cost": c, **summary.loc[(g, v), ["mean", "ci_low", "ci_high"]]}
                                   for (g, v), c in sorted(med.items()) if (g, v) in summary.index])
            if len(points) >= 2:
                panels.append(ParetoPanel(f"pareto_{cost}_{slug(dataset)}", cost, dataset, grids_here, points))
    correlations = []
    # one point per distinct network and dataset (equal MACs and parameters: the same network in several grids)
    if panels and {"macs", "params", "latency_ms"} <= set(usable):
        from scipy.stats import spearmanr

        nets = usable.dropna(subset=["macs", "params", "latency_ms"]).groupby(
            ["dataset", "macs", "params"])["latency_ms"].median().reset_index()
        for dataset, group in sorted(nets.groupby("dataset"), key=lambda item: str(item[0])):
            if len(group) >= 3:
                test = spearmanr(group["macs"], group["latency_ms"])
                correlations.append(RankCorrelation(str(dataset), len(group), float(test.statistic), float(test.pvalue)))
    return ParetoFindings(tuple(panels), tuple(correlations))


def decided_seed_range(glance: tuple[second_edition.GlanceRow, ...]) -> tuple[int, int] | None:
    """The fewest and most seeds a variant the decided comparisons of the glance took; None before any is decided
    (a comparison still open has not taken its number of seeds yet)."""
    seeds = [row.seeds for row in glance if row.seeds is not None and row.stage is second_edition.Stage.DECIDED]
    return (min(seeds), max(seeds)) if seeds else None


def _limitations(frame: pd.DataFrame, result: dict, envs: list[dict], configs: list[dict],
                 glance: tuple[second_edition.GlanceRow, ...] = (), searched_diverged: int = 0) -> LimitationsFindings:
    """``searched_diverged``: the diverged runs the learning-rate searches count as finished (not excluded)."""
    summary, comps = result["summaries"], result["comparisons"]
    ok = frame[(frame["status"] == RunStatus.OK) & frame["reused_from"].isna()].dropna(subset=["latency_ms", "macs", "params"])
    spread = ok.groupby(["dataset", "macs", "params"])["latency_ms"].agg(lambda v: v.max() / v.min() if len(v) > 1 else np.nan)
    spread = spread.dropna()
    budgets = {}
    for config in configs:
        proto = config.get("protocol") if isinstance(config.get("protocol"), dict) else {}
        key = tuple(str(proto.get(k, "?")) for k in ("name", "epochs", "train_per_class", "test_per_class",
                                                      "batch_size", "lr"))
        budgets.setdefault(key[:4], set()).add(key[4:])
    gpus = tuple(sorted({str(env["gpu"]) for env in envs if env.get("gpu")}))
    return LimitationsFindings(
        int(summary["n"].min()) if len(summary) else 0, int(summary["n"].max()) if len(summary) else 0,
        len(frame), int((frame["status"] != "ok").sum()) - searched_diverged,
        bool(len(comps)) and bool((comps["paired"] & (comps["n"] < 6)).any()),
        LatencySpread(len(spread), float(spread.median()), float(spread.max())) if len(spread) else None,
        tuple(ProtocolBudget(*key, tuple(sorted({b for b, _ in rest})), tuple(sorted({lr for _, lr in rest})))
              for key, rest in sorted(budgets.items())),
        len(envs), sum(bool(env.get("gpu")) for env in envs), gpus,
        tuple(sorted(frame["dataset"].dropna().astype(str).unique())),
        decided_seed_range(glance), searched_diverged)


def _analysable(frame: pd.DataFrame, results: Path, searches: set[str]) -> tuple[list[str], dict[str, str]]:
    """The grids whose reference is known, and why each other grid is skipped; none while the results hold only
    learning-rate ``searches`` (a study's first hours: the report then shows them alone)."""
    skipped = {}
    for grid in sorted(frame["grid"].unique(), key=grid_key):
        try:
            grid_reference(frame, grid)
        except ValueError as error:  # e.g. a corrupt grid.json: report it, analyse the rest
            skipped[grid] = str(error)
    analysable = [g for g in sorted(frame["grid"].unique(), key=grid_key) if g not in skipped]
    if not analysable and (skipped or not searches):
        raise ValueError(f"no grid in '{results}' can be analysed: " + "; ".join(skipped.values()))
    return analysable, skipped


def compute_findings(results_dir: str | Path, metric: str = "test_top1", alpha: float = 0.05,
                     correction: str = "holm", margin: float | None = None, seed: int = 0) -> ReportFindings:
    """Read the results directory once and compute every finding of the report."""
    results = Path(results_dir)
    every = load_results(results)
    grids = load_grids(results)
    # the second edition's main runs are judged by the sequential rule (the questions at a glance): everything else is
    # compared below, their grids' first-pass runs included (not superseded by them: apart, never pooled)
    main = second_edition.main_runs(every)
    frame = without(every, main)
    # a learning-rate search's runs are tuning runs: shown on validation (learning_rates), never compared on test
    searches = set(learning_rates.search_grids(frame, grids))
    analysable, skipped = _analysable(frame[~frame["grid"].isin(searches)], results, searches)
    result = analyze(frame, metric, grids=analysable, alpha=alpha, correction=correction, margin=margin, seed=seed)
    accounted = pd.concat([frame, every[main]]).reset_index(drop=True)  # every run, each with its own edition's status
    # ok and flagged runs' curves: health judges both and a search counts both; a grid compared below reads ok runs'
    curves = load_curves(results, accounted, (RunStatus.OK, RunStatus.FLAGGED))
    health = training_health(accounted, curves)
    budget = second_edition.budget_findings(results)
    # the looks are recomputed once: the glance and "Decisions, look by look" read the same records
    records = looks.decision_records(results, every, second_edition.SECOND_EDITION_ENGINE)
    glance = second_edition.glance_rows(results, every, budget.rows, records)
    common = {"source": str(results_dir), "metric": metric, "analysis": result, "budget": budget,
              "glance": glance, "paper_claims": claims_table(glance, *read_cost_files(results)) if glance else (),
              "health": health, "looks": records, "holm": looks.holm_reading(records),
              "learning_rates": learning_rates.searches(results, curves, every, grids),
              "runs": _runs(results, accounted, grids)}
    if not analysable:  # only learning-rate searches so far: nothing is compared on the test set yet
        return ReportFindings(**common)
    usable = frame[(frame["status"] == RunStatus.OK) & frame[metric].notna() & ~frame["grid"].isin(searches)]
    envs = [env for _, _, env in load_run_files(results, "env.json")]
    run_configs = load_run_files(results, "config.json")
    configs = [config for _, _, config in run_configs]
    claims = claim_findings(frame, usable)
    analysed = set(result["summaries"]["grid"])
    compared = curves[curves["run_id"].isin(frame.loc[frame["status"].eq(RunStatus.OK), "run_id"])] \
        if len(curves) else curves
    grid_findings = tuple(GridFindings(grid=g, skipped=skipped[g]) if g in skipped
                          else _grid(g, grids[g], frame, usable, compared, result)
                          for g in sorted(grids, key=grid_key) if g in skipped or g in analysed)
    return ReportFindings(
        **common, setup=_setup(frame, envs, configs), questions=question_findings(result, usable, grids, claims.rows, health),
        claims=claims, cost_readings=_cost_readings(results), grids=grid_findings, pareto=_pareto(usable, result),
        interpretation=INTERPRETATION.read_text(encoding="utf-8").strip() if INTERPRETATION.exists() else None,
        # a search's candidate rates are not a protocol's rate: Limitations leaves its runs' configs out; it counts
        # the runs of both editions, as the run accounting and the hardware line do
        limitations=_limitations(accounted, result, envs, [c for grid, _, c in run_configs if grid not in searches],
                                 glance, sum(s.diverged_runs for s in common["learning_rates"])))


# --------------------------------------------------------------------------------------------- JSON
def to_jsonable(value):
    """Plain JSON values: dataclasses by field (figure data left out), tables as records, NaN as null."""
    if is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in fields(value):
            convert = f.metadata.get("json", to_jsonable)
            if convert is not None:
                out[f.name] = convert(getattr(value, f.name))
        return out
    if isinstance(value, pd.DataFrame):
        return [to_jsonable(row) for row in value.to_dict("records")]
    if isinstance(value, pd.Series):
        return to_jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in (sorted(value, key=str) if isinstance(value, (set, frozenset)) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return None if pd.isna(value) else str(value)


def findings_json(findings: ReportFindings) -> str:
    """The findings as one JSON document (``analysis`` is the object ``analyze --format json`` prints)."""
    return json.dumps(to_jsonable(findings), indent=2, allow_nan=False) + "\n"
