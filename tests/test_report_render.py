"""The report's renderers on hand-built findings: no results directory, no file read.

Each ``render_*`` takes dataclasses of ``analysis.findings`` (and the analysis dict of
``compare.analyze`` run on an in-memory table) and returns Markdown lines; the findings also
serialise to JSON whose per-grid comparisons are ``analyze --format json``'s.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from analysis import tables
from analysis.claims import ClaimKind, ClaimOutcome, ClaimReason, ClaimRow, ClaimsFindings, headline_pair
from analysis.compare import analyze
from analysis.findings import (
    CostReading,
    GridFindings,
    GridRuns,
    LatencySpread,
    LimitationsFindings,
    ParetoFindings,
    ParetoPanel,
    PlanRow,
    ProtocolBudget,
    RankCorrelation,
    ReportFindings,
    RunsFindings,
    SetupFindings,
    findings_json,
    sweep_axis,
)
from analysis.paper_claims import Verdict
from analysis.plan import BudgetRow, Recommendation, RecommendReason
from analysis.questions import (
    FlaggedVariant,
    ParetoCheck,
    QuestionFindings,
    QuestionRow,
    QuestionsFindings,
    Repeat,
    UnsettledRow,
)
from analysis.render import (
    claim_reason,
    render_claims,
    render_cost_readings,
    render_grid,
    render_health,
    render_limitations,
    render_pareto,
    render_questions,
    render_runs,
    render_setup,
)
from analysis.render import render_budget as budget_lines
from analysis.report import render_report
from analysis.report_figures import build_figures
from analysis.second_edition import BudgetFindings


def runs_table() -> pd.DataFrame:
    """One grid in memory: reference `a` and variant `b`, 3 paired seeds each, `b` without latency."""
    rows = [{"grid": "g", "variant": v, "seed": s, "test_top1": m + d, "status": "ok", "reference": "a", "paired": True,
             "reason": None, "run_id": f"{v}{s}", "dataset": "cifar10-jpeg", "macs": 2e6 if v == "a" else 1e6,
             "latency_ms": 4.0 if v == "a" else np.nan, "reused_from": None}
            for v, m, noise in (("a", 70.0, (0.1, -0.2, 0.15)), ("b", 71.0, (0.3, -0.4, 0.0))) for s, d in enumerate(noise)]
    rows.append({**rows[0], "seed": 3, "run_id": "a3", "status": "failed", "reason": "loss is nan", "test_top1": np.nan})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def analysis():
    return analyze(runs_table(), "test_top1")


# ------------------------------------------------------------------------------------------- claims
def test_claims_name_each_verdict_and_a_claim_without_a_grid():
    claims = ClaimsFindings((
        ClaimRow("X beats Y by 0.9", ClaimKind.ACCURACY, "paper-claim", "x", "y", ClaimOutcome(
            Verdict.NOT_SUPPORTED, ClaimReason.CI_BELOW_CLAIM, 0.1, (-1.0, 0.5), "paired t-test", 3, 3), 0.9),
        ClaimRow("CIFAR-100 claim", ClaimKind.ACCURACY, None, None, None,
                 ClaimOutcome(Verdict.NOT_TESTABLE, ClaimReason.NO_DATA)),
        ClaimRow("DCT non-inferior", ClaimKind.NONINFERIORITY, "expansion-op", None, None,
                 ClaimOutcome(Verdict.NO_RESULTS, ClaimReason.NO_PAIR), 0.5)), None, None)
    text = "\n".join(render_claims(claims, "res"))
    assert ("| X beats Y by 0.9 | paper-claim: `x` vs `y` | +0.10 points [-1.00, 0.50] (paired t-test, n=3/3) | "
            "not supported | the 95% CI excludes +0.9: the measured gain is smaller |") in text
    assert "| CIFAR-100 claim | – | – | not testable here | no CIFAR-100 data on this machine;" in text
    assert "| DCT non-inferior | expansion-op | – | no results | grid `expansion-op` absent or without" in text
    assert "`python run.py compare paper-claim/DYCLOTNET paper-claim/MOBILENETV2 --results res`" in text


def test_a_claim_reason_is_written_from_its_code_and_numbers():
    def reason(kind, outcome, claimed=None, cost=None, datasets=()):
        return claim_reason(ClaimRow("c", kind, "g", "x", "y", outcome, claimed, cost, datasets))

    inconclusive = ClaimOutcome(Verdict.INCONCLUSIVE, ClaimReason.CI_HAS_ZERO_AND_CLAIM, 0.3, (-1.0, 1.6),
                                seeds_needed=12, sd_upper=1.234)
    assert reason(ClaimKind.ACCURACY, inconclusive, 0.9, datasets=("mnist",)) == (
        "the 95% CI contains both 0 and +0.9; ~12 seeds per variant would detect +0.9 with 80% power (SD taken as its "
        "80% upper confidence bound 1.23); measured on mnist, not CIFAR-10")
    above = ClaimOutcome(Verdict.SUPPORTED, ClaimReason.CI_ABOVE_ZERO, 2.0, (1.0, 3.0))
    assert reason(ClaimKind.ACCURACY, above, 0.9).endswith("+0.9 (gain larger than claimed)")
    varies = ClaimOutcome(Verdict.NO_CLAIM, ClaimReason.FOR_INFORMATION, 1.38, medians=(23.8, 17.25), varies=True)
    assert reason(ClaimKind.COST, varies, cost="latency_ms").endswith("(values differ between runs; medians used)")
    assert reason(ClaimKind.COST, ClaimOutcome(Verdict.INCONCLUSIVE, ClaimReason.NOT_RECORDED), 2.9,
                  "macs") == "`macs` not recorded"
    unknown = ClaimOutcome(Verdict.INCONCLUSIVE, ClaimReason.NONINFERIORITY_NOT_SHOWN, -2.0, (-5.0, 1.0), p=0.9)
    assert reason(ClaimKind.NONINFERIORITY, unknown, 0.5) == "non-inferiority p=0.900; seeds needed unknown"


def test_cost_readings_name_the_reading_that_matches_both_ratios():
    assert render_cost_readings(None, "res") == []
    readings = (CostReading("default", "ends at 8x8", 1.372, True, 2.806, True),
                CostReading("default", "ends at 4x4", 1.372, True, 0.84, False))
    text = "\n".join(render_cost_readings(readings, "res"))
    assert "Both published ratios are reproduced only by: default against ends at 8x8." in text
    assert "| default | ends at 4x4 | 1.37x (matches) | 0.84x |" in text
    assert "No single reading reproduces both" in "\n".join(render_cost_readings(readings[1:], "res"))


def test_the_headline_pair_comes_from_the_grid_definition():
    assert headline_pair({"dyclotnet-2.0": "dyclotnet_200", "mobilenetv2-1.0": "mobilenetv2_cifar_100",
                          "mobilenetv2-1.0-8x8": "mobilenetv2_cifar8_100"}) == ("dyclotnet-2.0", "mobilenetv2-1.0-8x8")
    assert headline_pair({"dyclotnet-2.0": "dyclotnet_200", "mobilenetv2-1.0": "mobilenetv2_cifar_100"}) == (
        "dyclotnet-2.0", "mobilenetv2-1.0")
    assert headline_pair({"big": "dyclotnet_200", "small": "mobilenetv2_100"}) == ("big", "small")  # by model
    assert headline_pair({"resnet": "resnet20_cifar", "mobile": "mobilenetv2_100"}) == (None, None)


def test_the_swept_key_is_the_one_the_grid_definition_sweeps():
    meta = {"variants": {f"p{p}": {"model_kwargs": {"p": p, "r": 8 // p}} for p in (1, 2, 4)}}
    rows = pd.DataFrame(columns=["variant", "model_kwargs"])
    assert sweep_axis(meta, rows, "p-sweep") == ("p", {"p1": 1.0, "p2": 2.0, "p4": 4.0})
    assert sweep_axis(meta, rows, "r-sweep")[0] == "r"
    assert sweep_axis(meta, rows, "my-grid") is None  # two keys vary and no definition says which


# --------------------------------------------------------------------------------------------- runs
def test_runs_table_the_copies_and_the_study_plan():
    runs = RunsFindings((GridRuns("g", None, {"ok": 6, "failed": 1}, ()), GridRuns("h", "a", {"ok": 2, "failed": 0}, (1, 2))),
                        ok=8, trained=5, train_seconds=7200.0,
                        plan=(PlanRow("g", "cpu", 3, 2, 6, "complete"), PlanRow("z", None, 3, 0, 0, "not started")),
                        plan_problem=None)
    text = "\n".join(render_runs(runs))
    assert "| `g` | `–` | 6 | 1 | – |" in text and "| `h` | `a` | 2 | 0 | 1, 2 |" in text
    assert "Compute: 5 runs trained. On the CPU: 5 runs, 2.00 h of training" in text and " 3 further runs are copies" in text
    assert "On a GPU" not in text
    with_gpu = "\n".join(render_runs(replace(runs, gpu_trained=2, gpu_train_seconds=1800.0)))
    assert "On the CPU: 3 runs, 2.00 h" in with_gpu and "On a GPU: 2 runs, 0.50 h of training wall time" in with_gpu
    assert "| `g` | `cpu` | 3 | 2 | 6 / 6 | complete |" in text and "| `z` | `–` | 3 | – | 0 / – | not started |" in text
    broken = RunsFindings(runs.grids, 5, 5, 0.0, (), "study.json is not valid JSON")
    text = "\n".join(render_runs(broken))
    assert "Study plan not shown: study.json is not valid JSON." in text and "copies" not in text


def test_training_health_lists_flagged_trained_runs_only():
    health = pd.DataFrame([
        {"grid": "g", "variant": "b", "seed": 1, "run_id": "b1", "reused_from": None, "classes": 10.0, "first_loss": 5.4,
         "peak_loss": 5.4, "peak_epoch": 1, "final_loss": 2.3, "final_train_top1": 10.5, "spike": True,
         "not_learned": True, "flagged": True},
        {"grid": "g", "variant": "a", "seed": 1, "run_id": "a1", "reused_from": None, "classes": 10.0, "first_loss": 2.2,
         "peak_loss": 2.2, "peak_epoch": 1, "final_loss": 1.7, "final_train_top1": 45.0, "spike": False,
         "not_learned": False, "flagged": False},
        {"grid": "h", "variant": "b", "seed": 1, "run_id": "c1", "reused_from": "g/b1", "classes": 10.0, "first_loss": 5.4,
         "peak_loss": 5.4, "peak_epoch": 1, "final_loss": 2.3, "final_train_top1": 10.5, "spike": True,
         "not_learned": True, "flagged": True}])
    text = "\n".join(render_health(health))
    assert "1 of 2 trained runs are flagged, in `g` `b` (1 of 1 runs)" in text
    assert "| g | b | 1 | loss spike, did not learn | 5.40 | 5.40 (1) | 2.30 | 2.30 | 10.5 |" in text
    assert "| h |" not in text  # a copy is its twin
    assert "None of the 1 trained runs is flagged." in "\n".join(render_health(health.iloc[[1]]))
    assert render_health(health.iloc[[2]]) == []


# -------------------------------------------------------------------------------------------- setup
def test_setup_shows_recorded_values_the_jpeg_caveat_and_the_protocol(analysis):
    setup = SetupFindings(0, {}, 2, {"lr": ("0.1",), "seed": ("0", "1")}, ("cpu",), ("cifar10-jpeg",), True)
    text = "\n".join(render_setup(setup, analysis, "res", "R.md"))
    assert "No `env.json` found: hardware and software versions are unknown." in text
    assert "| `lr` | `0.1` |" in text and "Settings that differ between runs: `seed`." in text
    assert "**Caveat: CIFAR-10 (JPEG re-encoding).**" in text
    assert "multiplicity correction `holm`" in text and "non-inferiority margin 0.5 points" in text
    assert "`python run.py report --results res --out R.md`" in text
    plain = SetupFindings(1, {"cpu": ("A", "B", "C", "D")}, 0, {}, (), ("fashion-mnist",), False)
    text = "\n".join(render_setup(plain, analysis, "res", "R.md"))
    assert "| `cpu` | `A`; `B`; `C` (+1 more) |" in text and "Caveat" not in text and "No `config.json` found." in text
    assert "1 of 1 keys have several values" in text
    agreeing = SetupFindings(2, {"cpu": ("A",), "torch": ("2.14.1",)}, 0, {}, (), ("fashion-mnist",), False)
    assert "several values" not in "\n".join(render_setup(agreeing, analysis, "res", "R.md"))  # none differ: not said


def test_limitations_name_gpus_budgets_and_the_latency_spread():
    lim = LimitationsFindings(2, 5, 20, 3, True, LatencySpread(4, 1.234, 2.5),
                              (ProtocolBudget("cpu", "15", "None", "100", ("128",), ("0.1", "0.2")),
                               ProtocolBudget("cpu-1k", "10", "1000", "None", ("64",), ("0.1",))), 20, 4, ("H200",),
                              ("cifar10-jpeg",))
    text = "\n".join(render_limitations(lim))
    assert "Seeds per variant range from 2 to 5" in text and "- 3 of 20 run folders were excluded" in text
    sequential = "\n".join(render_limitations(replace(lim, sequential_seeds=(5, 12))))
    assert ("- In the fixed-sample analysis (the appendix's first pass), seeds per variant range from 2 to 5;" in sequential
            and "The second edition's decided questions took 5 to 12 seeds a variant" in sequential)
    assert "measured 1.23x its fastest (median; up to 2.50x)" in text
    from analysis.findings import decided_seed_range
    from analysis.second_edition import GlanceRow, Stage
    rows = (GlanceRow("a", "q", "g", Stage.DECIDED, seeds=12), GlanceRow("b", "q", "h", Stage.DECIDED, seeds=5),
            GlanceRow("g", "q", "n", Stage.LOOK, seeds=3))  # open at look 1: it has not taken its seeds yet
    assert decided_seed_range(rows) == (5, 12) and decided_seed_range(rows[2:]) is None
    assert ("trains 15 epochs on all the training images left after validation (batch 128, peak learning rate 0.1, "
            "0.2;") in text and "tests on 100 test images per class;" in text
    assert "trains 10 epochs on 1000 training images per class" in text and "tests on the whole test set;" in text
    assert "None" not in text.replace("None of", "")
    assert "- 4 of 20 runs used a GPU (H200)" in text and "JPEG re-encoding, not the original arrays" in text
    assert "exact Wilcoxon signed-rank test cannot reach p < 0.05" in text
    cpu = LimitationsFindings(3, 3, 6, 0, False, None, (), 0, 0, (), ("fashion-mnist",))
    text = "\n".join(render_limitations(cpu))
    assert "Hardware unknown: no run recorded an `env.json`." in text and "Each run measures" not in text
    assert "Wilcoxon" not in text


# -------------------------------------------------------------------------------------------- grids
def test_a_grid_section_renders_its_tables_missing_costs_and_figure_links(analysis):
    grid = GridFindings(grid="g", description="A test grid.", order=("a", "b"), paired=True, datasets=("cifar10-jpeg",),
                        left_out={"c": "no such model"}, cost_columns=("macs", "latency_ms"),
                        costs={"a": {"macs": 2e6, "latency_ms": 4.0}, "b": {"macs": 1e6, "latency_ms": math.nan}},
                        sweep_key=None, curve_metric="val_top1", seeds_data=pd.DataFrame({"variant": ["a"]}))
    text = "\n".join(render_grid(grid, analysis, "res", "figs"))
    assert text.startswith("## Grid `g`\n\nA test grid.\n\nReference `a`; tests paired by seed; datasets `cifar10-jpeg`")
    assert "Variants left out of this grid: `c` (no such model)." in text
    assert "| a | 2,000,000 | 4.00 |" in text and "| b | 1,000,000 | – |" in text  # no latency: –
    assert "- `b`: **" in text and "| a | 3 | a3 | failed | loss is nan |" in text  # verdict and the excluded run
    assert "](figs/g_seeds.png)" in text and "[g_curves.pdf](figs/g_curves.pdf)" in text and "_sweep" not in text
    skipped = "\n".join(render_grid(GridFindings(grid="bad", skipped="grid.json is corrupt"), analysis, "res", "figs"))
    assert skipped == "## Grid `bad`\n\nNot analysed: grid.json is corrupt.\n"


def test_pareto_section_is_absent_without_figures_and_reports_the_rank_correlation():
    assert render_pareto(ParetoFindings((), ()), "test_top1", "res", "f") == []
    pareto = ParetoFindings((ParetoPanel("pareto_macs_x", "macs", "x", ("g", "h"), pd.DataFrame()),),
                            (RankCorrelation("x", 5, 0.9, 0.0004),))
    text = "\n".join(render_pareto(pareto, "test_top1", "res", "f"))
    assert "![test_top1 against macs on x (g, h), with the Pareto front](f/pareto_macs_x.png)" in text
    assert "is 0.90 (p = <0.001;" in text


# ---------------------------------------------------------------------------------------- questions
def test_questions_render_rows_repeats_flags_claims_and_missing_values():
    row = QuestionRow("g", "CIFAR-10", "b", "a", 3, 3, math.nan, math.nan, math.nan, math.nan, "inconclusive",
                      {"MACs": 0.5, "latency": None})
    q = QuestionFindings(1, "Does b help?", "Rows are b minus a.", (row,), (Repeat("h", "b", "a", "g"),),
                         (FlaggedVariant("g", "b", 2, 3),), ("k",), (ParetoCheck("g", "MACs", "a", False, ("b",)),),
                         (ClaimRow("b beats a", ClaimKind.ACCURACY, "g", "b", "a", ClaimOutcome(
                             Verdict.SUPPORTED, ClaimReason.CI_ABOVE_ZERO, 1.0, (0.5, 1.5), "t", 3, 3), 0.9),), ("z",))
    text = "\n".join(render_questions(QuestionsFindings((q,), (UnsettledRow("g", "b", "a", 3, 3, 0.4, 0.5, None, 12, None),))))
    assert "### Q1. Does b help?\n\nRows are b minus a." in text
    assert "| `g` | CIFAR-10 | `b` - `a` | 3/3 | – | – | inconclusive | 0.50x | – |" in text
    assert "Verdicts: 1 inconclusive." in text
    assert "- `h`: `b` - `a` uses the same runs as the `g` row (copied twins) and is not shown twice." in text
    assert "- Training health: flagged runs in `g` `b` (2 of 3 runs);" in text
    assert "see its section): `k`." in text and "`a` is **not on** the Pareto front of `g` (front: `b`;" in text
    assert "- b beats a: +1.00 points [0.50, 1.50] (t, n=3/3); **supported** (the 95% CI" in text
    assert "(not run, or not finished): `z`." in text
    assert "| seeds to detect 0.50 points | seeds to show non-inferiority (margin –) |" in text
    assert "| `g` | `b` - `a` | 3/3 | +0.40 | 12 | – |" in text
    assert "No comparison is inconclusive." in "\n".join(render_questions(QuestionsFindings((q,), ())))
    assert render_questions(QuestionsFindings((), ())) == []  # nothing of the study: no section


def test_choosing_the_budget_without_and_with_pilot_rows():
    empty = BudgetFindings("res", 0.5, (), Recommendation(None, RecommendReason.NO_PILOT, 70.0))
    assert "No pilot grid has 2 paired seeds yet" in "\n".join(budget_lines(empty, "f"))
    row = BudgetRow("cpu", "DCT vs pointwise expansion", 4, 71.0, 0.1, 0.5, 0.8, 25.0, 10, 6.5, 0.09, 400)
    cheapest = Recommendation("cpu", RecommendReason.CHEAPEST, 70.0, hours=0.09)
    text = "\n".join(budget_lines(BudgetFindings("res", 0.5, (row,), cheapest), "f"))
    assert ("Recommended budget: **cpu** (0.1 CPU-hours per decided question, reference >= 70% top-1)." in text
            and "](f/budget_pilot.png)" in text)


# ------------------------------------------------------------------------------------ whole report
def whole_findings(analysis) -> ReportFindings:
    grid = GridFindings(grid="g", order=("a", "b"), paired=True, datasets=("cifar10-jpeg",),
                        seeds_data=runs_table().query("status == 'ok'"))
    return ReportFindings(
        source="res", metric="test_top1", analysis=analysis, glance=(),
        budget=BudgetFindings("res", 0.5, (), Recommendation(None, RecommendReason.NO_PILOT, 70.0)),
        runs=RunsFindings((), 6, 6, 60.0, (), None),
        health=pd.DataFrame(columns=["reused_from", "flagged", "spike"]),
        setup=SetupFindings(0, {}, 0, {}, (), (), False), questions=QuestionsFindings((), ()),
        claims=ClaimsFindings((), None, None), cost_readings=None, grids=(grid,), pareto=ParetoFindings((), ()),
        interpretation="# Title\n\n# Choice\n\nText.",
        limitations=LimitationsFindings(3, 3, 7, 1, True, None, (), 0, 0, (), ("cifar10-jpeg",)))


def test_the_report_links_exactly_the_figures_built_from_the_same_findings(analysis):
    findings = whole_findings(analysis)
    pages = render_report(findings, "out/R.md", "r_figures")
    figures = build_figures(findings)
    try:
        assert set(figures) == {"g_seeds"}
        assert "](r_figures/g_seeds.png)" in pages.main and "`python run.py report --results res --out out/R.md`" in pages.main
        assert "[R-appendix.md](R-appendix.md)" in pages.main
        assert "### Choice" in pages.appendix and "# Title" not in pages.appendix  # the included headings nest
    finally:
        for fig in figures.values():
            plt.close(fig)


def test_a_small_grids_report_shows_its_result_first_and_no_study_section(analysis):
    """The README's main job: a report of one small grid opens with that grid, and has no claims, glance, budget or
    question sections (it has no runs for them); the setup and run accounting are in the appendix."""
    pages = render_report(whole_findings(analysis), "R.md", "r_figures")
    headings = [line for line in pages.main.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Grid `g`" and headings[-1] == "## Limitations"
    assert not {"## The paper's claims", "## The questions at a glance", "## Choosing the budget",
                "## Questions and answers"} & set(headings)
    assert "## Setup" in pages.appendix and "## Grid `g`" not in pages.appendix
    assert "## First pass: paper claims" not in pages.appendix  # no claim has runs here


def test_no_line_of_either_page_is_longer_than_the_limit():
    from analysis.render import LINE_LIMIT, fold_long_lines

    sentence = "word " * 30 + "end."
    folded = fold_long_lines(" ".join([sentence] * 12) + "\n| a | b |")
    assert all(len(line) <= LINE_LIMIT for line in folded.splitlines()[:-1]) and len(folded.splitlines()) > 2
    assert folded.splitlines()[-1] == "| a | b |"  # table rows are never folded (their cells must be short)
    assert " ".join(folded.splitlines()[:-1]) == " ".join([sentence] * 12)  # folding only breaks lines
    long_sentence = "; ".join(["clause " * 20 + "x"] * 8) + "."  # one sentence over the limit, among short ones
    text = " ".join([sentence, long_sentence, sentence])
    folded = fold_long_lines(text).splitlines()
    assert all(len(line) <= LINE_LIMIT for line in folded) and " ".join(folded) == text
    assert folded[0] == sentence  # broken at sentence ends first, the long sentence then at '; '


def test_the_findings_json_round_trips_with_the_analyze_comparisons(analysis):
    findings = whole_findings(analysis)
    doc = json.loads(findings_json(findings))
    analyze_doc = json.loads(tables.to_json(analysis))  # what `run.py analyze --format json` prints
    assert doc["analysis"] == analyze_doc
    assert [(c["grid"], c["variant"], c["reference"]) for c in doc["analysis"]["comparisons"]] == [("g", "b", "a")]
    assert doc["grids"][0]["grid"] == "g" and "seeds_data" not in doc["grids"][0]  # figure data left out
    assert doc["limitations"]["paired_below_6"] is True and doc["cost_readings"] is None
    nan = ReportFindings("res", "test_top1", analysis, grids=(GridFindings(grid="g", costs={"a": {"macs": math.nan}}),))
    assert json.loads(findings_json(nan))["grids"][0]["costs"] == {"a": {"macs": None}}


def test_report_format_json_prints_the_findings(tmp_path, capsys):
    from tests.test_analysis_io import cli, write_grid

    root = tmp_path / "results"
    write_grid(root, "smoke", "dct", {"dct": 80.0, "pointwise": 80.1}, seeds=2, dataset="fashion-mnist")
    code, out, err = cli(capsys, "report", "--results", str(root), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert {c["variant"] for c in doc["analysis"]["comparisons"]} == {"pointwise"}
    assert doc["source"] == str(root) and not (tmp_path / "REPORT.md").exists()


def test_an_infinite_statistic_is_null_in_the_json():
    frame = runs_table()
    frame.loc[frame["variant"] == "b", "test_top1"] = frame.loc[frame["variant"] == "a", "test_top1"].to_numpy()[:3] + 1
    result = analyze(frame, "test_top1")  # every paired difference is exactly 1: t is infinite
    assert math.isinf(result["comparisons"]["statistic"].iloc[0])
    assert json.loads(tables.to_json(result))["comparisons"][0]["statistic"] is None


def test_findings_at_a_glance_renders_verdicts_and_plans_without_files():
    from analysis.render import render_glance
    from analysis.second_edition import GlanceRow, Stage

    rows = (GlanceRow("a", "q", "g", Stage.DECIDED, variant="v", reference="dct", label="better", estimate=1.234,
                      ci=(0.5, 2.0), level=0.95, seeds=5, look=2, looks=7, cpu_hours=0.5),
            GlanceRow("b", "q", "h", Stage.SEARCH, runs_done=3, runs_planned=16),
            GlanceRow("b", "q", "h-gpu", Stage.NOT_RUN, gpu=True, gpu_runs=2, gpu_hours=0.5, cpu_hours=None))
    text = "\n".join(render_glance(rows))
    assert "| (a) q | `g`: `v` - `dct` | better | +1.23 [+0.50, +2.00] (95.0%) | 5 (2 of 7) | 0.5 CPU-h |" in text
    assert "| (b) q | `h` | learning-rate search: 3/16 runs | – | – | 0.0 CPU-h | – | – | – | – |" in text
    assert "| 30 GPU-min (2 runs) |" in text and "**How to read this.**" in text
    assert "planning SD" not in text  # no question planned

    # each planned question names where its paired SD comes from, once, however many comparisons it has
    from analysis.plan import QuestionPlan, SdSource
    def plan(key: str, source: SdSource) -> QuestionPlan:
        return QuestionPlan(key=key, budget="cpu-full", recommended=True, comparisons=1, sd_upper=source.sd_upper,
                            sd_source=source, max_seeds=8, expected_seeds=6.0, hours=10.0, measured_seconds={},
                            power_at_cap=0.8, expected_at_cap=6.0)
    own = SdSource(sd_upper=1.04, lr=0.4, pairs=3, question="e")
    planned = (GlanceRow("e", "q", "p", Stage.LOOK, variant="p1", plan=plan("e", own)),
               GlanceRow("e", "q", "p", Stage.LOOK, variant="p4", plan=plan("e", own)),
               GlanceRow("f", "q", "r", Stage.NOT_RUN, plan=plan("f", own)),
               GlanceRow("c", "q", "c", Stage.NOT_RUN, plan=plan("c", SdSource(sd_upper=0.27, lr=0.1, pairs=4,
                                                                               pilot="recalibrator vs replicator-only"))))
    text = " ".join("\n".join(render_glance(planned)).split())
    assert ("docs/study.md, \"The planning SD\"): (e) 1.04 from its own main runs (3 pairs, rate 0.4); (f) 1.04 from "
            "the nearest recipe measured, (e)'s main runs (3 pairs, rate 0.4); (c) 0.27 from the nearest recipe "
            "measured, the pilot's recalibrator vs replicator-only (4 pairs, rate 0.1).") in text


def test_results_without_the_study_grids_get_no_study_sections(tmp_path):
    from analysis.render import render_glance
    from analysis.second_edition import Stage, glance_rows
    from evidence.load import load_results
    from tests.test_analysis_io import write_grid

    root = tmp_path / "results"
    write_grid(root, "smoke", "dct", {"dct": 76.0, "replicator": 75.5}, seeds=2, dataset="fashion-mnist")
    assert glance_rows(root, load_results(root), [], ()) == () and render_glance(()) == []
    write_grid(root, "expansion-op", "dct", {"dct": 70.0, "pointwise": 70.2}, seeds=2)
    rows = glance_rows(root, load_results(root), [], ())
    assert [r.stage for r in rows] == [Stage.NOT_RUN] * 7  # a study grid present: every question of the second edition listed


def test_learning_rate_searches_are_shown_with_their_validation_curves(tmp_path):
    import json

    import matplotlib.pyplot as plt

    from analysis.learning_rates import searches
    from analysis.plots import search_figure
    from analysis.render import render_learning_rates as search_lines
    from evidence.load import load_curves, load_results
    from tests.test_analysis_io import write_grid

    root = tmp_path / "results"
    write_grid(root, "g-lr", "a@lr0.1", {"a@lr0.1": 60.0, "a@lr0.2": 61.0}, seeds=2)
    for run in (root / "g-lr").glob("*/metrics.jsonl"):
        lr = json.loads((run.parent / "result.json").read_text())["variant"].split("@lr")[1]
        run.write_text("".join(json.dumps({"epoch": e, "val_top1": 50 + 10 * e * float(lr)}) + "\n" for e in (1, 2)))
    (root / "g-lr" / "chosen.json").write_text(json.dumps({
        "grid": "g", "protocol": "cpu", "variants": {
            "a": {"lr": 0.2, "val_top1": {"0.1": 52.0, "0.2": 54.0}, "runs": {"0.1": 2, "0.2": 2}}}}))
    found = searches(root, load_curves(root, load_results(root)))
    assert [(s.grid, s.protocol, [c.lr for c in s.choices]) for s in found] == [("g", "cpu", [0.2])]
    curve = found[0].curves.set_index(["lr", "epoch"])["val_top1"]
    assert curve[(0.2, 2)] == pytest.approx(54.0) and curve[(0.1, 1)] == pytest.approx(51.0)  # mean over seeds
    text = "\n".join(search_lines(found, "f"))
    assert "| `a` | 52.00 | **54.00** | 0.2 (the highest candidate) | 2 |" in text and "](f/lr_search_g.png)" in text
    assert "Chosen at an edge of the candidates: `a`." in text
    (root / "g-lr" / "chosen.json").write_text(json.dumps({
        "grid": "g", "protocol": "cpu", "variants": {
            "a": {"lr": 0.2, "val_top1": {"0.1": 52.0, "0.2": 54.0, "0.4": 53.0}, "runs": {"0.1": 2, "0.2": 2, "0.4": 2}}}}))
    text = "\n".join(search_lines(searches(root, None), "f"))
    assert "| `a` | 52.00 | **54.00** | 53.00 | 0.2 | 2 |" in text and "Chosen at an edge" not in text  # bracketed
    capped = {"0.1": 50.0, "0.2": 51.0, "0.4": 52.0, "0.8": 53.0, "1.6": 54.0}  # widened 3 times past 0.1-0.2
    for first, says_capped in (([0.1, 0.2], True), ([0.1, 0.2, 0.4], False), (None, False)):
        (root / "g-lr" / "chosen.json").write_text(json.dumps({
            "grid": "g", "protocol": "cpu", "variants": {"a": {"lr": 1.6, "val_top1": capped, "runs": {}}},
            **({"first_candidates": first} if first else {})}))
        text = " ".join("\n".join(search_lines(searches(root, None), "f")).split())
        assert ("the cap stopped the search there: the highest rate lies 3 widenings past" in text) is says_capped
        assert ("the search widens every network alike, up to 3 rates a side" in text) is not says_capped
    assert len(search_figure(found[0]).axes) == 1
    plt.close("all")
    (root / "g-lr" / "chosen.json").write_text("[]")
    assert "Not shown: " in "\n".join(search_lines(searches(root, None), "f"))
    assert search_lines((), "f") == []


def test_a_search_without_a_choice_is_shown_on_validation_and_never_compared_on_test(tmp_path):
    import json

    from analysis.findings import compute_findings
    from analysis.render import render_learning_rates as search_lines
    from tests.test_analysis_io import write_grid

    root = tmp_path / "results"
    write_grid(root, "expansion-op", "dct", {"dct": 70.0, "pointwise": 70.2}, seeds=2)
    write_grid(root, "g-lr", "a@lr0.1", {"a@lr0.1": 60.0, "a@lr0.2": 61.0, "b@lr0.1": 59.0}, seeds=1)
    for result in (root / "g-lr").glob("*/result.json"):
        run = json.loads(result.read_text())
        run["metrics"]["val_top1"] = {"a@lr0.1": 55.0, "a@lr0.2": 57.5, "b@lr0.1": 54.0}[run["variant"]]
        result.write_text(json.dumps(run))
    findings = compute_findings(root)
    assert [g.grid for g in findings.grids] == ["expansion-op"]  # the search has no test comparison of its own
    assert "g-lr" not in set(findings.analysis["summaries"]["grid"])
    (search,) = findings.learning_rates
    assert search.grid == "g" and (search.runs_done, search.runs_planned) == (3, 6)  # 3 variants x 2 seeds
    text = "\n".join(search_lines(findings.learning_rates, "f"))
    assert "### `g` (protocol `cpu`): in progress" in text
    assert "| `a` | 55.00 (1) | 57.50 (1) |" in text and "| `b` | 54.00 (1) | – |" in text
    meta = json.loads((root / "g-lr" / "grid.json").read_text())  # widened to 0.4, and a network c still to train
    meta["variants"] = {**meta["variants"], **{f"{n}@lr{lr}": {} for n in "abc" for lr in ("0.1", "0.2", "0.4")}}
    (root / "g-lr" / "grid.json").write_text(json.dumps(meta))
    (search,) = compute_findings(root).learning_rates
    assert search.candidates == ("0.1", "0.2", "0.4") and (search.runs_done, search.runs_planned) == (3, 18)
    text = "\n".join(search_lines((search,), "f"))
    assert "| network | lr 0.1 | lr 0.2 | lr 0.4 |" in text and "| `a` | 55.00 (1) | 57.50 (1) | – |" in text
    assert "| `c` | – | – | – |" in text  # planned, nothing finished yet
    diverged = next(p for p in (root / "g-lr").glob("*/result.json") if '"b@lr0.1"' in p.read_text())
    run = json.loads(diverged.read_text())  # b's run failed: its loss became non-finite (experiments.trainer.Diverged)
    diverged.write_text(json.dumps({**run, "status": "failed", "reason": "Diverged: loss is nan at epoch 2 step 6"}))
    after = compute_findings(root)
    (search,) = after.learning_rates
    text = "\n".join(search_lines((search,), "f"))
    assert search.runs_done == 3 and "| `b` | 0.00 (1; 1 diverged) | – | – |" in text  # finished, scoring 0
    # Limitations: a finished search run, not an excluded one (a failed main run would be)
    assert (after.limitations.excluded_runs, after.limitations.diverged_search_runs) == (0, 1)
    limits = "\n".join(render_limitations(after.limitations))
    assert "None of the 7 run folders was excluded" in limits
    assert "The 1 learning-rate search run(s) whose training loss became non-finite are not excluded" in limits
    assert "A run that diverged (its training loss became non-finite, so it stopped) counts as finished" in text
    (root / "g-lr" / "chosen.json").write_text(json.dumps({"grid": "g", "protocol": "cpu", "variants": {
        "b": {"lr": 0.2, "val_top1": {"0.1": 0.0, "0.2": 57.0}, "runs": {"0.1": 2, "0.2": 2}, "diverged": {"0.1": 2}}}}))
    text = "\n".join(search_lines(compute_findings(root).learning_rates, "f"))
    assert "| `b` | 0.00 (2 diverged) | **57.00** |" in text and "counts as finished with validation top-1 0" in text


def test_a_search_planned_but_not_started_names_its_protocol_and_networks_in_natural_order(tmp_path):
    """A search whose grid.json is written but whose runs have not finished: its protocol comes from the plan
    (not `?`), its networks are in natural order (r2 before r16), and finished runs copied from a twin say so."""
    import json

    from analysis.findings import compute_findings
    from analysis.render import render_learning_rates as search_lines
    from tests.test_analysis_io import write_grid

    root = tmp_path / "results"
    write_grid(root, "expansion-op", "dct", {"dct": 70.0, "pointwise": 70.2}, seeds=2)
    (root / "g-lr").mkdir()
    (root / "g-lr" / "grid.json").write_text(json.dumps({
        "grid": "g-lr", "reference": "r4@lr0.1", "protocol": "cpu", "seeds": [1000, 1001],
        "variants": {f"r{r}@lr{lr}": {} for r in (1, 16, 2, 4) for lr in ("0.1", "0.2")}}))
    (search,) = compute_findings(root).learning_rates
    assert (search.runs_done, search.runs_planned, search.runs_copied) == (0, 16, 0)
    text = "\n".join(search_lines((search,), "f"))
    assert "### `g` (protocol `cpu`): in progress" in text and "0 of 16 runs finished; no rate" in text
    assert [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| `r")] == [
        "`r1`", "`r2`", "`r4`", "`r16`"]
    write_grid(root, "twin-lr", "r4@lr0.1", {"r4@lr0.1": 60.0}, seeds=2)  # two finished runs, moved into g-lr
    for run_dir in (root / "twin-lr").iterdir():
        if run_dir.is_dir():
            result = json.loads((run_dir / "result.json").read_text())
            result.update(grid="g-lr", seed=1000 + result["seed"], reused_from=f"expansion-op-lr/{run_dir.name}",
                          metrics={**result["metrics"], "val_top1": 58.0})
            (run_dir / "result.json").write_text(json.dumps(result))
            run_dir.rename(root / "g-lr" / run_dir.name)
    (root / "twin-lr" / "grid.json").unlink()
    (root / "twin-lr").rmdir()
    (search,) = compute_findings(root).learning_rates
    assert (search.runs_done, search.runs_copied) == (2, 2)
    text = "\n".join(search_lines((search,), "f"))
    assert "2 of 16 runs finished (2 of them copies of a twin run in another grid, not trained again" in text
    assert "| `r4` | 58.00 (2) | – |" in text


def test_results_holding_only_searches_report_them_on_validation_and_compare_nothing(tmp_path):
    import json

    from analysis.findings import compute_findings, findings_json
    from analysis.report import SEARCHES_ONLY, write_report
    from tests.test_analysis_io import write_grid

    root = tmp_path / "results"
    write_grid(root, "g-lr", "a@lr0.1", {"a@lr0.1": 60.0, "a@lr0.2": 61.0}, seeds=1)
    findings = compute_findings(root)
    assert findings.analysis["summaries"].empty and findings.analysis["comparisons"].empty
    assert [s.grid for s in findings.learning_rates] == ["g"] and findings.grids == ()
    assert json.loads(findings_json(findings))["learning_rates"][0]["grid"] == "g"
    text = write_report(root, tmp_path / "REPORT.md").read_text()
    assert "### `g` (protocol `cpu`): in progress" in text and text.rstrip().endswith(SEARCHES_ONLY)
    assert "## Grid" not in text and "p-value" not in text
    (root / "broken").mkdir()  # a main grid that cannot be analysed is still an error, never silently dropped
    (root / "broken" / "grid.json").write_text("{")
    (root / "broken" / "r0").mkdir()
    with pytest.raises(ValueError, match="no grid in .* can be analysed"):
        compute_findings(root)


def test_a_study_grids_first_pass_stays_reported_and_its_main_runs_are_left_to_the_sequential_rule(tmp_path):
    """The second edition trains its main runs in the first pass's grid folders (engine version 2 there, 1
    before): the first pass is still analysed as it was, never superseded by nor pooled with them; the main
    runs are counted in the run accounting, and the sequential rule alone judges them (no fixed-sample row)."""
    import json

    from analysis.cli import _frame
    from analysis.findings import compute_findings
    from tests.test_analysis_io import write_grid

    root = tmp_path / "results"
    grid = "replicator-vs-recalibrator"
    write_grid(root, grid, "dct", {"dct": 36.0, "replicator": 36.5}, seeds=3)
    for config in (root / grid).glob("*/config.json"):
        config.write_text(json.dumps({**json.loads(config.read_text()), "engine_version": 1}))
    for variant, top1 in (("dct", 83.0), ("replicator", 99.0)):  # a main run, seed 0: far from the first pass
        run = root / grid / f"main-{variant}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"variant": variant, "seed": 0, "engine_version": 2}))
        (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "train_loss": 1 / e, "test_top1": top1})
                                                   + "\n" for e in (1, 2)))
        old = json.loads(next(p for p in sorted((root / grid).glob("*/result.json"))
                              if json.loads(p.read_text())["variant"] == variant).read_text())
        (run / "result.json").write_text(json.dumps({**old, "run_id": run.name, "seed": 0, "protocol": "cpu-full",
                                                     "metrics": {**old["metrics"], "test_top1": top1}}))
    findings = compute_findings(root)
    summary = findings.analysis["summaries"].set_index("variant")
    assert summary.loc["dct", "n"] == 3 and summary.loc["replicator", "n"] == 3  # the first pass, as it was
    assert summary.loc["replicator", "mean"] < 40  # the 99.0 of the main run is never pooled in
    (runs,) = [r for r in findings.runs.grids if r.grid == grid]
    assert runs.counts.get("ok") == 8 and not runs.counts.get("superseded") and runs.engine_versions == (1, 2)
    assert findings.runs.trained == 8
    assert findings.limitations.runs == 8  # Limitations counts the runs of both editions, as the accounting does
    (shown,) = [g for g in findings.grids if g.grid == grid]
    assert len(shown.curves_data) == 12 and not shown.curves_data["run_id"].str.startswith("main-").any()
    frame = _frame(root, None, None)  # run.py analyze / compare read the same: the main runs left out
    assert len(frame) == 6 and (frame["status"] == "ok").all()


# ------------------------------------------------------------------------------- the claims table
def _cost_row(mobilenet_model: str, macs_ratio: float, dyclot_kwargs: dict | None = None) -> dict:
    return {"dyclotnet_200 reading": "default", "mobilenetv2_100 reading": mobilenet_model,
            "dyclot_kwargs": dyclot_kwargs or {}, "mobilenet_model": mobilenet_model, "mobilenet_kwargs": {},
            "dyclot_params": 100, "dyclot_macs": 1000, "mobilenet_params": 137, "mobilenet_macs": int(1000 * macs_ratio),
            "params_ratio": 1.37, "macs_ratio": macs_ratio, "params_match": True, "macs_match": abs(macs_ratio / 2.9 - 1) <= 0.05}


def test_the_claims_verdict_rule_on_decisions_and_counts():
    from analysis.paper_claims import Decision, Kind, Verdict, judge_count, judge_decision

    def decided(low, high, label="better"):
        return Decision("b", "g", "dct", "pointwise", label, (low + high) / 2, (low, high), 0.95, 2, 5)

    assert judge_decision(Kind.NONINFERIOR, 0.5, decided(-1.40, -0.58, "worse")) is Verdict.NOT_SUPPORTED
    assert judge_decision(Kind.NONINFERIOR, 0.5, decided(-0.3, 0.2, "equivalent")) is Verdict.SUPPORTED
    assert judge_decision(Kind.NONINFERIOR, 0.5, decided(-0.7, -0.2, "worse")) is Verdict.INCONCLUSIVE
    assert judge_decision(Kind.GAIN, 0.9, decided(0.2, 1.5)) is Verdict.SUPPORTED
    assert judge_decision(Kind.GAIN, 0.9, decided(0.1, 0.5)) is Verdict.NOT_SUPPORTED  # a smaller gain
    assert judge_decision(Kind.GAIN, 0.9, decided(-0.4, 0.4, "equivalent")) is Verdict.NOT_SUPPORTED
    assert judge_decision(Kind.HELPS, None, decided(0.13, 0.53)) is Verdict.SUPPORTED
    assert judge_decision(Kind.GAIN, 0.9, None) is Verdict.NOT_TESTED
    assert judge_decision(Kind.GAIN, 0.9, decided(-1.0, 2.0, "continue")) is Verdict.NOT_TESTED  # open: not decided
    assert judge_count(Kind.RATIO, 2.9, 2.806) is Verdict.SUPPORTED
    assert judge_count(Kind.RATIO, 2.9, 0.84) is Verdict.NOT_SUPPORTED
    assert judge_count(Kind.BOUND, 5 / 16, 0.3976) is Verdict.NOT_SUPPORTED
    assert judge_count(Kind.BOUND, 5 / 16, 0.32) is Verdict.SUPPORTED


def test_the_claims_table_reads_decisions_turned_the_claims_way_and_counts_from_files():
    from analysis.paper_claims import Verdict, claims_table
    from analysis.render import render_paper_claims
    from analysis.second_edition import GlanceRow, Stage

    glance = (GlanceRow("a", "q", "replicator-vs-recalibrator", Stage.DECIDED, variant="replicator", reference="dct",
                        label="worse", estimate=-0.33, ci=(-0.53, -0.13), level=0.956, seeds=12, look=4, looks=4,
                        within_margin=True),
              GlanceRow("b", "q", "expansion-op", Stage.DECIDED, variant="pointwise", reference="dct", label="better",
                        estimate=0.99, ci=(0.58, 1.40), level=0.998, seeds=5, look=2, looks=4),
              GlanceRow("c", "q", "paper-claim", Stage.NOT_RUN))
    costs = [_cost_row("mobilenetv2_cifar_100", 0.84), _cost_row("mobilenetv2_cifar8_100", 2.806, {"p": 4}),
             _cost_row("mobilenetv2_cifar8_100", 2.806)]
    bound = [{"c1_over_c0": 0.3976, "c1_approx_over_c0": 0.274, "dct_share": 0.0424},
             {"c1_over_c0": 0.3301, "c1_approx_over_c0": 0.3071, "dct_share": 0.0196}]
    claims = {c.key: c for c in claims_table(glance, costs, bound)}
    assert claims["headline-cifar10"].verdict is Verdict.NOT_TESTED and claims["headline-cifar10"].waits_for == "c"
    assert claims["headline-cifar100"].verdict is Verdict.NOT_TESTABLE
    replaces = claims["replaces-pointwise"]
    assert replaces.verdict is Verdict.NOT_SUPPORTED and replaces.decision.ci == (-1.40, -0.58)
    assert (replaces.decision.claimed, replaces.decision.other, replaces.decision.estimate) == ("dct", "pointwise", -0.99)
    recalibrator = claims["recalibrator"]
    assert recalibrator.verdict is Verdict.SUPPORTED and recalibrator.decision.ci == (0.13, 0.53)
    assert claims["macs"].cost.value == 2.806 and claims["macs"].cost.numerator == 2806  # the default reading's row
    assert claims["macs"].verdict is Verdict.SUPPORTED and claims["params"].verdict is Verdict.SUPPORTED
    assert (claims["eq8"].cost.low, claims["eq8"].cost.high) == (0.3301, 0.3976)
    assert claims["eq8"].verdict is Verdict.NOT_SUPPORTED
    text = "\n".join(render_paper_claims(tuple(claims.values()), glance, "res"))
    assert "**supported**, but smaller than the 0.5-point effect of interest" in text  # the within-margin hook
    assert "`res/dct_bound.json`" in text and "waits for question (c)" in text
    # a count that supports a claim through the very reading chosen to reproduce it says so
    assert "because it is one of 2 of the 3 readings counted reproduces both published ratios" in text
    alone = claims_table(glance, costs[::2], bound)[2]
    assert "because it alone of the 2 readings counted reproduces both" in alone.cost.reading
    assert "readings counted" not in claims_table(glance, [_cost_row("mobilenetv2_cifar8_100", 2.5)], bound)[2].cost.reading
    assert len(claims_table(glance, None, None)) == len(claims)  # without the count files: not tested yet
    assert claims_table(glance, None, None)[2].verdict is Verdict.NOT_TESTED


def test_a_question_decided_on_a_gpu_only_judges_its_claim_and_a_second_device_is_cited_never_pooled():
    from analysis.paper_claims import Verdict, claims_table
    from analysis.render import render_paper_claims
    from analysis.second_edition import GlanceRow, Stage

    def decided(key, folder, variant, reference, estimate, half, look, gpu=False):
        return GlanceRow(key, "q", folder, Stage.DECIDED, variant=variant, reference=reference,
                         label="better" if estimate > 0 else "worse", estimate=estimate,
                         ci=(estimate - half, estimate + half), level=0.99, seeds=5, look=look, looks=4, gpu=gpu)

    cpu_a = decided("a", "replicator-vs-recalibrator", "replicator", "dct", -0.33, 0.2, 4)
    gpu_a = decided("a", "replicator-vs-recalibrator-gpu-15", "replicator", "dct", -0.8, 0.3, 2, gpu=True)
    not_run = GlanceRow("c", "q", "paper-claim", Stage.NOT_RUN)
    searching = GlanceRow("c", "q", "paper-claim-gpu-15", Stage.SEARCH, runs_done=4, runs_planned=8, gpu=True)
    waiting = claims_table((cpu_a, not_run, searching), None, None)
    assert waiting[0].key == "headline-cifar10" and waiting[0].verdict is Verdict.NOT_TESTED
    text = "\n".join(render_paper_claims(waiting, (cpu_a, not_run, searching), "res"))
    assert ("waits for question (c) to be decided (`paper-claim`: not run; `paper-claim-gpu-15`: learning-rate "
            "search: 4/8 runs)") in text
    # the headline decided on the GPU only (mobilenet - dyclotnet = -1.2): the claim reads it turned its way round
    gpu_c = decided("c", "paper-claim-gpu-15", "mobilenetv2-1.0-8x8", "dyclotnet-2.0", -1.2, 0.3, 3, gpu=True)
    glance = (gpu_a, cpu_a, not_run, gpu_c)
    claims = {c.key: c for c in claims_table(glance, None, None)}
    headline_claim = claims["headline-cifar10"]
    assert headline_claim.verdict is Verdict.SUPPORTED and headline_claim.decision.grid == "paper-claim-gpu-15"
    assert headline_claim.decision.ci == pytest.approx((0.9, 1.5)) and headline_claim.also == ()
    recalibrator = claims["recalibrator"]  # decided on both: the CPU's verdict, the GPU's cited beside it
    assert recalibrator.decision.grid == "replicator-vs-recalibrator" and recalibrator.decision.ci == (0.13, 0.53)
    assert [d.grid for d in recalibrator.also] == ["replicator-vs-recalibrator-gpu-15"]
    text = "\n".join(render_paper_claims(tuple(claims.values()), glance, "res"))
    assert "question (c) decided at look 3 (`res/paper-claim-gpu-15/sequential.json`)" in text
    assert ("also decided in `replicator-vs-recalibrator-gpu-15` (look 2, not pooled): `dct` - `replicator` "
            "+0.80 [+0.50, +1.10] (99.0% repeated CI, 5 seeds)") in text
    # stopped at the cap undecided: the claim is judged on that interval, never left waiting for a decision to come
    at_cap = replace(gpu_c, label="inconclusive at max seeds (40)", estimate=-0.3, ci=(-0.7, 0.1), look=7)
    (claim,) = [c for c in claims_table((cpu_a, not_run, at_cap), None, None) if c.key == "headline-cifar10"]
    assert claim.verdict is Verdict.NOT_SUPPORTED and claim.waits_for is None  # +0.3 [-0.1, +0.7]: below +0.9
    text = "\n".join(render_paper_claims((claim,), (cpu_a, not_run, at_cap), "res"))
    assert "question (c) reached the cap of its schedule undecided at look 7 (`res/paper-claim-gpu-15/" in text


def test_an_unreadable_cost_file_is_a_one_line_error_naming_the_command_that_rewrites_it(tmp_path):
    from analysis.paper_claims import read_cost_files

    assert read_cost_files(tmp_path) == (None, None)  # absent: the claims wait for their counts
    (tmp_path / "dct_bound.json").write_text('{"c1_over_c0": 0.4}')
    with pytest.raises(ValueError, match=r"dct_bound.json' is not a dct-bound file .*run.py dct-bound --out"):
        read_cost_files(tmp_path)


def test_a_search_widened_after_its_choice_shows_the_new_rates_runs_and_keeps_the_choice(tmp_path):
    from analysis.learning_rates import searches
    from analysis.render import render_learning_rates
    from evidence.load import load_results
    from tests.test_analysis_io import write_grid

    root = tmp_path / "results"
    write_grid(root, "g-lr", "a@lr0.1", {"a@lr0.1": 60.0, "a@lr0.2": 61.0, "a@lr0.4": 59.0}, seeds=2)
    unfinished = [p for p in (root / "g-lr").glob("*/result.json") if '"a@lr0.4"' in p.read_text()][0]
    unfinished.unlink()  # one of the widened rate's two runs still training
    (root / "g-lr" / "chosen.json").write_text(json.dumps({
        "grid": "g", "protocol": "cpu", "variants": {
            "a": {"lr": 0.2, "val_top1": {"0.1": 52.0, "0.2": 54.0}, "runs": {"0.1": 2, "0.2": 2}}}}))
    meta = {"variants": {f"a@lr{r}": {} for r in ("0.1", "0.2", "0.4")}}
    (found,) = searches(root, None, load_results(root), {"g-lr": meta})
    assert [c.lr for c in found.choices] == [0.2]  # the recorded choice stands
    assert found.widened == ("0.4",) and found.widened_runs == (1, 2)
    text = "\n".join(render_learning_rates((found,), "f"))
    assert "Chosen at an edge" not in text and "1 of 2" in text
    (found,) = searches(root, None, load_results(root), {"g-lr": {"variants": {"a@lr0.1": {}, "a@lr0.2": {}}}})
    assert found.widened == () and found.widened_runs is None  # nothing planned beyond the choice


def test_a_search_reports_only_its_planned_seeds_and_protocol_in_its_table_count_and_curves(tmp_path):
    from analysis.findings import compute_findings
    from tests.test_analysis_io import write_grid

    root = tmp_path / "results"
    write_grid(root, "g-lr", "a@lr0.1", {"a@lr0.1": 60.0, "a@lr0.2": 61.0}, seeds=3)
    meta = json.loads((root / "g-lr" / "grid.json").read_text())
    (root / "g-lr" / "grid.json").write_text(json.dumps({**meta, "seeds": [0, 1], "protocol": "cpu"}))
    for result in (root / "g-lr").glob("*/result.json"):
        run = json.loads(result.read_text())
        score = 50.0 + 10 * run["seed"] + (1 if run["variant"] == "a@lr0.2" else 0)
        foreign = run["variant"] == "a@lr0.1" and run["seed"] == 1  # the same rate searched under another protocol
        result.write_text(json.dumps({**run, "metrics": {**run["metrics"], "val_top1": score},
                                      **({"protocol": "gpu"} if foreign else {})}))
        (result.parent / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_top1": score - 5}) + "\n"
                                                     + json.dumps({"epoch": 2, "val_top1": score}) + "\n")
    (search,) = compute_findings(root).learning_rates
    assert (search.runs_done, search.runs_planned) == (3, 4)  # seed 2 is another call's; seed 1 at 0.1 another protocol's
    (choice,) = search.choices
    assert choice.val_top1 == {"0.1": 50.0, "0.2": 56.0} and choice.runs == {"0.1": 1, "0.2": 2}
    curve = search.curves.set_index(["lr", "epoch"])["val_top1"]
    assert curve[(0.1, 2)] == pytest.approx(50.0) and curve[(0.2, 2)] == pytest.approx(56.0)
    (root / "g-lr" / "chosen.json").write_text(json.dumps({"grid": "g", "protocol": "cpu", "variants": {
        "a": {"lr": 0.2, "val_top1": {"0.1": 50.0, "0.2": 56.0}, "runs": {"0.1": 1, "0.2": 2}}}}))
    (search,) = compute_findings(root).learning_rates
    curve = search.curves.set_index(["lr", "epoch"])["val_top1"]
    assert curve[(0.1, 2)] == pytest.approx(50.0) and curve[(0.2, 1)] == pytest.approx(51.0)
    # a later search under another protocol rewrote grid.json: the choice keeps its own protocol's runs and curves
    (root / "g-lr" / "grid.json").write_text(json.dumps({**meta, "seeds": [0, 1], "protocol": "gpu"}))
    (search,) = compute_findings(root).learning_rates
    curve = search.curves.set_index(["lr", "epoch"])["val_top1"]
    assert curve[(0.1, 2)] == pytest.approx(60.0) and curve[(0.2, 2)] == pytest.approx(61.0)  # seeds 0-2 under cpu
    assert search.widened == ()
    # a diverged run of another protocol is no finished search run: Limitations counts it as excluded
    foreign = next(p for p in (root / "g-lr").glob("*/result.json") if json.loads(p.read_text())["protocol"] == "gpu")
    foreign.write_text(json.dumps({**json.loads(foreign.read_text()), "status": "failed",
                                   "reason": "Diverged: loss is nan at epoch 1 step 2"}))
    write_grid(root, "other", "x", {"x": 70.0, "y": 70.5}, seeds=2)  # a grid compared on test: Limitations exist
    limits = compute_findings(root).limitations
    assert (limits.diverged_search_runs, limits.excluded_runs) == (0, 1)
    foreign.write_text(json.dumps({**json.loads(foreign.read_text()), "protocol": "cpu"}))  # the search's own: finished
    limits = compute_findings(root).limitations
    assert (limits.diverged_search_runs, limits.excluded_runs) == (1, 0)


def test_a_flagged_search_run_is_in_its_searchs_figure_as_in_its_table(tmp_path):
    from analysis.findings import compute_findings
    from evidence.load import load_results
    from tests.test_analysis_io import write_grid

    root = tmp_path / "results"
    write_grid(root, "g-lr", "a@lr0.1", {"a@lr0.1": 60.0, "a@lr0.2": 61.0}, seeds=2)
    for result in (root / "g-lr").glob("*/result.json"):
        run = json.loads(result.read_text())
        score = 50.0 + 10 * run["seed"]
        spike = run["variant"] == "a@lr0.2" and run["seed"] == 1  # its loss went far above chance: flagged
        result.write_text(json.dumps({**run, "metrics": {**run["metrics"], "val_top1": score}}))
        config = result.parent / "config.json"  # engine version 2: health flags it (evidence.load)
        config.write_text(json.dumps({**json.loads(config.read_text()), "engine_version": 2}))
        (result.parent / "metrics.jsonl").write_text("".join(json.dumps(
            {"epoch": e, "train_loss": 5.0 if spike and e == 1 else 1 / e, "train_top1": 72.0,
             "val_top1": score - 5 * (2 - e)}) + "\n" for e in (1, 2)))
    assert list(load_results(root)["status"]).count("flagged") == 1
    (search,) = compute_findings(root).learning_rates
    (choice,) = search.choices
    assert choice.val_top1 == {"0.1": 55.0, "0.2": 55.0}  # the search counts its flagged run...
    curve = search.curves.set_index(["lr", "epoch"])["val_top1"]
    assert curve[(0.2, 2)] == pytest.approx(55.0) and curve[(0.2, 1)] == pytest.approx(50.0)  # ...and so does its figure
    health = compute_findings(root).health  # Training health judges the flagged run from its curve
    assert health["flagged"].sum() == 1 and len(health) == 4


def test_a_gpu_budgets_search_follows_the_cpus_as_its_grid_does(tmp_path):
    from analysis.compare import grid_key
    from analysis.learning_rates import searches

    folders = ["g-gpu-lr", "h-lr", "g-lr", "g-gpu", "g", "g-gpu-15-lr", "g-gpu-15"]
    assert sorted(folders, key=grid_key) == ["g", "g-lr", "g-gpu", "g-gpu-lr", "g-gpu-15", "g-gpu-15-lr", "h-lr"]
    for grid in ("g-gpu", "h", "g"):
        (tmp_path / f"{grid}-lr").mkdir()
        (tmp_path / f"{grid}-lr" / "chosen.json").write_text(json.dumps({"grid": grid, "protocol": "cpu", "variants": {
            "a": {"lr": 0.2, "val_top1": {"0.1": 52.0, "0.2": 54.0, "0.4": 53.0}, "runs": {}}}}))
    assert [search.grid for search in searches(tmp_path, None)] == ["g", "g-gpu", "h"]
