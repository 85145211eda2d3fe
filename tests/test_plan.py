"""`run.py plan`: the pilot's runs -> seeds and CPU-hours per decided question, and the recommended budget."""
from __future__ import annotations

import dataclasses
import json

import pytest

from analysis.plan import Recommendation, RecommendReason, pilot_rows, recommend
from tests.test_analysis_io import cli, write_grid


@pytest.fixture(scope="module")
def pilot(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan") / "results"
    write_grid(root, "pilot-cpu", "dct", {"dct": 40.0, "replicator": 39.0, "pointwise": 40.5}, seeds=4, sd=1.0)
    write_grid(root, "pilot-cpu-full", "dct", {"dct": 80.0, "replicator": 79.5, "pointwise": 80.2}, seeds=4, sd=0.5,
               rng_seed=3)
    write_grid(root, "expansion-op", "dct", {"dct": 70.0, "pointwise": 70.0}, seeds=2)  # not a pilot grid
    return root


@pytest.fixture(scope="module")
def rows(pilot):
    return pilot_rows(pilot, effect=4.0, reps=200)  # a large planned effect keeps the power simulations short


def test_plan_rows_use_the_paired_sd_bound_and_the_runs_cpu_seconds(rows):
    assert [(r.budget, r.question) for r in rows] == [
        ("cpu", "recalibrator vs replicator-only"), ("cpu", "DCT vs pointwise expansion"),
        ("cpu-full", "recalibrator vs replicator-only"), ("cpu-full", "DCT vs pointwise expansion")]
    for row in rows:
        assert row.pairs == 4 and row.sd_upper > row.sd > 0
        assert row.seconds_per_run == pytest.approx(12.5 * 2)  # train_seconds x threads (env.json)
        assert row.max_seeds >= row.expected_seeds >= 3
        assert row.hours == pytest.approx(2 * row.expected_seeds * 25 / 3600)
    assert rows[0].reference_top1 == pytest.approx(40.0, abs=1.5)


def test_plan_recommends_only_budgets_that_reach_the_accuracy(rows):
    from analysis.render import recommendation_text

    chosen = recommend(rows, min_accuracy=70.0)
    assert (chosen.budget, chosen.reason) == ("cpu-full", RecommendReason.CHEAPEST) and chosen.hours > 0
    none = recommend(rows, min_accuracy=90.0)
    assert (none.budget, none.reason, none.best[0]) == (None, RecommendReason.TOO_INACCURATE, "cpu-full")
    assert "no budget's reference reaches 90% test top-1 (best: cpu-full" in recommendation_text(none)
    assert recommend([], 70.0) == Recommendation(None, RecommendReason.NO_PILOT, 70.0)
    one_pair = [r for r in rows if r.budget != "cpu-full" or r.question == "recalibrator vs replicator-only"]
    assert recommend(one_pair, 70.0) == Recommendation(None, RecommendReason.UNANSWERED, 70.0,
                                                       missing={"cpu-full": ["DCT vs pointwise expansion"]})


def test_plan_command(pilot, capsys):
    code, out, _ = cli(capsys, "plan", "--results", str(pilot), "--effect", "4", "--reps", "200", "--format", "json")
    assert code == 0
    plan = json.loads(out)
    assert plan["recommended"] == "cpu-full" and plan["effect"] == 4.0 and len(plan["rows"]) == 4
    assert sorted(plan["questions"]) == ["a", "b", "c", "d", "e", "f", "g"] and plan["questions"]["a"]["budget"] == "cpu-full"
    code, out, _ = cli(capsys, "plan", "--results", str(pilot), "--effect", "4", "--reps", "200", "--power", "0.9")
    assert code == 0 and "| budget | question |" in out and "recommended budget: cpu-full" in out
    assert "(a) Does the recalibrator help over the replicator alone? (`replicator-vs-recalibrator`): at `cpu-full`" in out
    assert "or more better with 90% power" in out  # the power asked for, not a fixed 80%
    code, _, err = cli(capsys, "plan", "--results", str(pilot), "--effect", "-1")
    assert code == 2 and "--effect must be a positive finite number" in err


def test_report_sections_choosing_the_budget_and_findings_at_a_glance(pilot, tmp_path):
    import matplotlib.pyplot as plt
    import pandas as pd

    from analysis.plots import budget_figure
    from analysis.render import render_budget as budget_lines
    from analysis.render import render_glance
    from analysis.second_edition import Stage, budget_findings, glance_rows
    from evidence.load import load_results

    budget = budget_findings(pilot, effect=4.0, reps=200)
    lines = "\n".join(budget_lines(budget, "r_figures"))
    assert "## Choosing the budget" in lines and "| cpu-full | DCT vs pointwise expansion | 4 |" in lines
    assert "Recommended budget: **cpu-full**" in lines and "](r_figures/budget_pilot.png)" in lines
    assert budget.pending == (("cpu-1k", 0),) and "`cpu-1k` (0 of 12 runs finished ok)" in lines  # not piloted yet
    fig = budget_figure(pd.DataFrame([r.__dict__ for r in budget.rows]))[0]
    assert len(fig.axes) == 2
    plt.close(fig)

    root = tmp_path / "results"
    write_grid(root, "expansion-op", "dct", {"dct": 70.0, "pointwise": 70.2}, seeds=3)
    assert "No pilot grid has 2 paired seeds yet" in "\n".join(budget_lines(budget_findings(root), "f"))
    write_grid(root, "pilot-cpu-full", "dct", {"dct": 80.0, "replicator": 79.5, "pointwise": 80.2}, seeds=2)
    partial = budget_findings(root, effect=4.0, reps=200)
    assert partial.rows and ("cpu-full", 6) in partial.pending  # planned from 2 pairs, still running
    assert "`cpu-full` (6 of 12 runs finished ok)" in "\n".join(budget_lines(partial, "f"))
    (root / "expansion-op" / "sequential.json").write_text(json.dumps({
        "grid": "expansion-op", "reference": "dct", "schedule": [3, 5, 8],
        "variants": {"pointwise": {"label": "equivalent", "look": 2, "n": 5, "estimate": 0.12, "ci": [-0.3, 0.41]}}}))
    glance = {r.key: r for r in reversed(glance_rows(root, load_results(root), [], ()))}
    b = glance["b"]
    assert (b.folder, b.variant, b.reference, b.label, b.estimate, b.ci, b.seeds, b.look, b.looks) == (
        "expansion-op", "pointwise", "dct", "equivalent", 0.12, (-0.3, 0.41), 5, 2, 3)
    assert b.stage is Stage.DECIDED and b.plan is None and glance["a"].stage is Stage.NOT_RUN
    text = "\n".join(render_glance(tuple(glance.values())))
    assert "| `expansion-op`: `pointwise` - `dct` | equivalent | – | 5 (2 of 3) |" in text  # no level recorded: no CI
    # the budget's plan beside what the question decided at it took
    outcome = " ".join("\n".join(budget_lines(partial, "f", tuple(glance.values()))).split())
    assert (f"The pilot's {partial.recommendation.hours:.1f} CPU-hours plan one of its own pairs" in outcome
            and f"(b) 5 seeds a variant, {b.cpu_hours:.1f} CPU-h, search included." in outcome)
    assert "What the questions decided" not in "\n".join(budget_lines(partial, "f"))


def test_each_question_of_the_second_edition_is_planned_at_the_budget_with_its_grid_costs(pilot, rows, tmp_path):
    from analysis.plan import question_plans
    from analysis.render import plan_text
    from evidence.sequential import plan_looks, simulate
    from study.grids import GRIDS
    from study.questions import SECOND_EDITION

    plans = question_plans(pilot, rows, "cpu-full", effect=4.0, reps=200)
    # the core questions (a)-(d), then the sweeps and the normalisation placement: every grid `study` trains
    assert sorted(plans) == ["a", "b", "c", "d", "e", "f", "g"] and all(
        p.budget == "cpu-full" and p.recommended for p in plans.values())
    assert [GRIDS[g].name for g in SECOND_EDITION][4:] == ["p-sweep", "r-sweep", "norm-placement"]
    assert plans["f"].comparisons == len(GRIDS["r-sweep"].variants) - 1
    at_full = {r.question: r for r in rows if r.budget == "cpu-full"}
    assert plans["a"].sd_upper == at_full["recalibrator vs replicator-only"].sd_upper  # its own pilot pair
    assert plans["b"].sd_upper == at_full["DCT vs pointwise expansion"].sd_upper
    assert plans["c"].sd_upper == max(r.sd_upper for r in at_full.values())  # not piloted: the largest pair's
    assert plans["d"].comparisons == len(GRIDS["baselines"].variants) - 1
    # a question that names its comparison is decided on it alone: (b) is pointwise vs dct, not also (a)'s
    # replicator-only vs dct again on the same copied runs; (c) is the 8x8 MobileNetV2 reading only
    assert (plans["b"].comparisons, plans["c"].comparisons, plans["a"].comparisons) == (1, 1, 1)
    assert all(p.hours is None for p in plans.values())
    assert plans["a"].uncosted and "CPU-h unknown (" in plan_text(plans["a"])

    costs = [{"grid": g, "variant": v, "macs": 1000 * (i + 1)} for g in ("pilot-cpu-full", "paper-claim")
             for i, v in enumerate(GRIDS[g].variants)]
    (pilot / "study_costs.json").write_text(json.dumps(costs))
    try:
        plan = question_plans(pilot, rows, None, effect=4.0, reps=200)["c"]
    finally:
        (pilot / "study_costs.json").unlink()
    assert plan.budget == "cpu-full" and not plan.recommended  # none recommended: the most accurate budget
    # paper-claim's three variants cost 1, 2 and 3 times the pilot's DyClotNet-0.5 reference (25 CPU-s a run);
    # the main runs and the search train dyclotnet-2.0 (1x) and the question's mobilenetv2-1.0-8x8 (2x) only
    # the main runs always look at 3, 5, 8 and 12 seeds (the CPU cap), whatever the free design needs
    capped = simulate(plan_looks(12), 4.0, plan.sd_upper, 200, n_comparisons=plan.comparisons)
    assert (plan.power_at_cap, plan.expected_at_cap) == (capped["power"], capped["expected_seeds"])
    assert plan.hours == pytest.approx(plan.expected_at_cap * 3 * 25 / 3600)
    assert plan.cap_hours == pytest.approx(12 * 3 * 25 / 3600)
    assert plan.tune_hours == pytest.approx(4 * 2 * 3 * 25 / 3600)  # 4 rates x 2 seeds, the compared networks
    text = plan_text(plan)
    assert "not yet a recommended budget" in text and f"{plan.hours:.1f} CPU-h expected, at most" in text
    assert f"the main runs (looks at 3, 5, 8, 12 seeds) declare the effect better with {plan.power_at_cap:.0%} power" in text
    # the learning-rate search first: each compared network at 4 rates x 2 seeds
    assert f"the learning-rate search's 16 runs still to come: {plan.tune_hours:.1f} CPU-h (" in plan_text(plan)
    assert "before it starts, 4 rates x 2 seeds per network" in plan_text(plan)


def test_a_network_an_earlier_question_searched_is_not_costed_again_by_architecture_not_spelling():
    from analysis.plan import new_networks
    from study.grids import GRIDS

    # (a)'s dct spells {"recalibrator": "sigmoid_add"}, (b)'s {"expansion": "dct"}, the sweeps' {"p": 2} / {"r": 4}:
    # one architecture (study_costs.json records it as the engine's twin test sees it), searched once, by (a)
    dct = "DyClotNet(default options)"
    architectures = {("replicator-vs-recalibrator", "dct"): dct, ("expansion-op", "dct"): dct, ("p-sweep", "p2"): dct,
                     ("r-sweep", "r4"): dct, ("norm-placement", "dct"): dct, ("baselines", "dyclotnet"): dct}
    new = new_networks(architectures)
    assert new["a"] == ["dct", "replicator"] and new["b"] == ["pointwise"]
    assert "p2" not in new["e"] and "r4" not in new["f"] and new["g"] == ["dct-norm-after"]
    assert "dyclotnet" not in new["d"] and len(new["d"]) == len(GRIDS["baselines"].variants) - 1
    # a network without a recorded architecture (a model without arch_args, or no study_costs.json) is never
    # taken for another one, as the engine never copies a twin of it: the plan counts its search
    assert new_networks()["b"] == ["dct", "pointwise"]
    assert new_networks({**architectures, ("expansion-op", "dct"): None})["b"] == ["dct", "pointwise"]


def test_a_network_an_earlier_question_trains_counts_in_the_most_a_question_costs_not_in_what_it_is_expected_to(
        pilot, rows):
    from analysis.plan import question_plans

    # (b) trains dct and pointwise; dct is (a)'s dct (one architecture), so its search and main runs are copies of
    # (a)'s where the chosen rate agrees: expected cost and search count pointwise only, the most counts both
    (pilot / "study_costs.json").write_text(json.dumps(CORE_COSTS))
    try:
        plans = question_plans(pilot, rows, "cpu-full", effect=4.0, reps=200)
    finally:
        (pilot / "study_costs.json").unlink()
    a, b = plans["a"], plans["b"]
    at_full = {r.question: r.seconds_per_run for r in rows if r.budget == "cpu-full"}
    seconds = at_full["DCT vs pointwise expansion"]
    assert b.hours == pytest.approx(b.expected_at_cap * 3 * seconds / 3600)  # pointwise (3x) only
    assert b.cap_hours == pytest.approx(12 * (1 + 3) * seconds / 3600)  # dct's twins too, at every seed
    assert b.tune_hours == pytest.approx(4 * 2 * 3 * seconds / 3600)
    seconds = at_full["recalibrator vs replicator-only"]
    assert a.hours == pytest.approx(a.expected_at_cap * 1.9 * seconds / 3600)  # the first question: all its own


GRIDS_PILOT = ("dct", "replicator", "pointwise")
# study_costs.json of the pilot and questions (a) and (b): (a)'s and (b)'s dct are one architecture
CORE_COSTS = [*({"grid": "pilot-cpu-full", "variant": v, "macs": 1000} for v in GRIDS_PILOT),
              {"grid": "replicator-vs-recalibrator", "variant": "dct", "macs": 1000, "architecture": "DyClotNet()"},
              {"grid": "replicator-vs-recalibrator", "variant": "replicator", "macs": 900, "architecture": "rep"},
              {"grid": "expansion-op", "variant": "dct", "macs": 1000, "architecture": "DyClotNet()"},
              {"grid": "expansion-op", "variant": "pointwise", "macs": 3000, "architecture": "pw"},
              {"grid": "expansion-op", "variant": "replicator-only", "macs": 900, "architecture": "rep"}]


def test_a_question_that_needs_more_seeds_than_the_cap_is_planned_at_the_cap(pilot, rows):
    from analysis.plan import question_plans
    from analysis.render import plan_text

    plan = question_plans(pilot, rows, "cpu-full", effect=0.05, reps=200)["a"]  # a tiny effect: far beyond 12 seeds
    assert plan.max_seeds is None or plan.max_seeds > 12
    assert plan.seed_cap == 12 and plan.decidable_effect > 0.05 and plan.power_at_cap < 0.8
    assert f"and true effects of {plan.decidable_effect:.2f} points or more better with 80% power" in plan_text(plan)


def test_a_question_part_way_is_planned_given_its_looks_went_on_and_costs_only_the_seeds_still_to_come(pilot, rows):
    from analysis.plan import SdSource, question_plan
    from analysis.render import plan_text
    from study.questions import SECOND_EDITION_QUESTIONS

    g = next(q for q in SECOND_EDITION_QUESTIONS if q.key == "g")
    scale = {("pilot-cpu-full", "dct"): 1000, ("norm-placement", "dct"): 1000, ("norm-placement", "dct-norm-after"): 1000}

    def plan(went_on: bool, pairs: int = 5):
        return question_plan(g, rows, "cpu-full", True, scale, effect=0.5, reps=2000, new=["dct-norm-after"],
                             sd=SdSource(0.3, 0.4, pairs, question="g", went_on=went_on))

    fresh, part_way = plan(False), plan(True)
    assert fresh.seeds_read == 0 and part_way.seeds_read == 5 and part_way.tune_hours is None
    assert part_way.expected_at_cap > 8 - 1e-9 > fresh.expected_at_cap  # past look 2, at least look 3's 8 seeds
    run_hours = fresh.tune_hours / 8  # one run of the one new network (4 rates x 2 seeds in the search)
    assert part_way.hours == pytest.approx((part_way.expected_at_cap - 5) * run_hours)
    assert part_way.cap_hours == pytest.approx((12 - 5) * 2 * run_hours)  # dct's seeds too, at most
    assert "given that the rule went on at its look at 5 seeds" in plan_text(part_way)
    assert "the learning-rate search is done" in plan_text(part_way)
    assert plan(True, pairs=12).seeds_read == 0  # a last look decides: nothing is left to condition on


def test_a_question_part_way_through_its_search_is_planned_with_the_search_runs_still_to_come(tmp_path, rows):
    import pandas as pd

    from analysis.plan import question_plan, search_runs_left
    from analysis.render import _plan_cells, plan_text
    from study.questions import SECOND_EDITION_QUESTIONS

    search = tmp_path / "p-sweep-lr"
    search.mkdir()
    meta = {"protocol": "cpu-full", "seeds": [1000, 1001],  # p1 widened to a fifth rate: 10 runs; p4 at 4 rates: 8
            "variants": [f"{n}@lr{r}" for n in ("p1", "p4") for r in (0.1, 0.2, 0.4, 0.8)] + ["p1@lr1.6"]}
    columns = ["grid", "variant", "seed", "status", "protocol", "engine_version", "val_top1", "reason"]
    frame = pd.DataFrame([("p-sweep-lr", "p1@lr0.1", 1000, "ok", "cpu-full", 2, 80.0, None),
                          ("p-sweep-lr", "p1@lr1.6", 1000, "failed", "cpu-full", 2, None, "Diverged: loss nan"),
                          ("p-sweep-lr", "p1@lr0.2", 1000, "failed", "cpu-full", 2, None, "crashed"),  # to train again
                          ("p-sweep-lr", "p1@lr0.4", 1002, "ok", "cpu-full", 2, 80.0, None),  # a seed not planned
                          ("p-sweep-lr", "p4@lr0.1", 1000, "ok", "cpu", 2, 80.0, None),  # another protocol
                          ("p-sweep-lr", "p4@lr0.2", 1000, "ok", "cpu-full", 1, 80.0, None),  # an older engine
                          ("p-sweep-lr", "p4@lr0.4", 1001, "ok", "cpu-full", 2, 80.0, None)], columns=columns)
    left = search_runs_left(tmp_path, frame, {"p-sweep-lr": meta}, "p-sweep", "cpu-full", ["p1", "p4", "p8"])
    assert left == {"p1": 10 - 2, "p4": 8 - 1, "p8": 8}  # a diverged run is finished; p8 not in grid.json: all
    # a grid.json under another protocol plans nothing under this one: every candidate at every tuning seed, less
    # every finished run of the network under this protocol (any seed or rate: no plan says which are the search's)
    assert search_runs_left(tmp_path, frame, {"p-sweep-lr": {**meta, "protocol": "cpu"}}, "p-sweep", "cpu-full",
                            ["p1", "p4"]) == {"p1": 8 - 3, "p4": 8 - 1}

    e = next(q for q in SECOND_EDITION_QUESTIONS if q.key == "e")
    scale = {("pilot-cpu-full", "dct"): 1000, **{("p-sweep", n): 1000 for n in ("p1", "p2", "p4", "p8")}}

    def plan(search_left):
        return question_plan(e, rows, "cpu-full", True, scale, reps=200, new=["p1", "p4", "p8"],
                             search_left=search_left)
    fresh, part_way = plan(None), plan(left)
    assert fresh.tune_runs_left == 24 and part_way.tune_runs_left == 23
    assert part_way.tune_hours == pytest.approx(fresh.tune_hours * 23 / 24)  # the three networks cost alike here
    assert f"the learning-rate search's 23 runs still to come: {part_way.tune_hours:.1f} CPU-h" in plan_text(part_way)
    assert _plan_cells(part_way)["search CPU-h"] == f"{part_way.tune_hours:.1f}"
    # once chosen.json is written (under the plan's budget) the search is done, whatever grid.json plans
    (search / "chosen.json").write_text(json.dumps({"protocol": "cpu", "variants": {}}))
    assert search_runs_left(tmp_path, frame, {"p-sweep-lr": meta}, "p-sweep", "cpu-full", ["p1"]) == {"p1": 8}
    (search / "chosen.json").write_text(json.dumps({"protocol": "cpu-full", "variants": {}}))
    done = plan(search_runs_left(tmp_path, frame, {"p-sweep-lr": meta}, "p-sweep", "cpu-full", ["p1", "p4", "p8"]))
    assert done.tune_runs_left == 0 and done.tune_hours == 0
    assert plan_text(done).endswith("the learning-rate search has no runs of its own left to train")
    assert _plan_cells(done)["search CPU-h"] == "done"


def test_a_questions_cpu_hours_count_its_learning_rate_search_and_not_copies_or_old_runs(tmp_path):
    import pandas as pd

    from analysis.second_edition import _cpu_hours

    rows = [("expansion-op", "a", "ok", 2, None, 1800.0), ("expansion-op-lr", "b", "ok", 2, None, 900.0),
            ("expansion-op-lr", "c", "flagged", 2, None, 900.0),  # a diverged candidate still cost its time
            ("expansion-op", "d", "ok", 2, "pilot-cpu-full/x", 1800.0),  # a copy of a twin costs nothing
            ("expansion-op", "e", "ok", 1, None, 1800.0), ("pilot-cpu-full", "f", "ok", 2, None, 1800.0)]
    frame = pd.DataFrame(rows, columns=["grid", "run_id", "status", "engine_version", "reused_from", "train_seconds"])
    for grid, run_id, *_ in rows:
        (tmp_path / grid / run_id).mkdir(parents=True)
        (tmp_path / grid / run_id / "env.json").write_text(json.dumps({"torch_threads": 2}))
    assert _cpu_hours(tmp_path, frame, "expansion-op") == pytest.approx(2 * (1800 + 900 + 900) / 3600)


def test_a_question_without_main_runs_says_how_far_its_learning_rate_search_is(tmp_path):
    import pandas as pd

    from analysis.second_edition import Stage, _before_main_runs

    columns = ["grid", "status", "engine_version", "seed", "variant"]
    nothing = pd.DataFrame([("replicator-vs-recalibrator", "ok", 1, 0, "dct")], columns=columns).assign(val_top1=80.0)
    assert _before_main_runs(tmp_path, nothing, "replicator-vs-recalibrator") == {"stage": Stage.NOT_RUN}
    rows = [("replicator-vs-recalibrator-lr", "ok", 2, 1000, "dct@lr0.1"),
            ("replicator-vs-recalibrator-lr", "flagged", 2, 1000, "dct@lr0.2"),
            ("replicator-vs-recalibrator-lr", "failed", 2, 1001, "dct@lr0.1"),  # not finished: not counted
            ("replicator-vs-recalibrator-lr", "ok", 1, 1001, "dct@lr0.1"),  # engine version 1: not this edition's
            ("expansion-op-lr", "ok", 2, 1000, "dct@lr0.1"),  # another grid's search
            ("replicator-vs-recalibrator", "ok", 2, 0, "dct"), ("replicator-vs-recalibrator", "ok", 2, 2, "dct"),
            ("replicator-vs-recalibrator", "ok", 2, 3, "dct"), ("replicator-vs-recalibrator", "ok", 1, 1, "dct"),
            # (b)'s main runs train its own comparison only: replicator-only's (a copied twin) is not counted
            ("expansion-op", "ok", 2, 0, "dct"), ("expansion-op", "ok", 2, 0, "pointwise"),
            ("expansion-op", "ok", 2, 0, "replicator-only")]
    frame = pd.DataFrame(rows, columns=columns).assign(val_top1=80.0, reason=None)
    # 2 networks x 4 candidate rates x 2 seeds; (b) searches its own two networks too (replicator-only is not
    # searched), where no grid.json says otherwise
    search = {"stage": Stage.SEARCH, "runs_planned": 16}
    assert _before_main_runs(tmp_path, frame, "replicator-vs-recalibrator") == {**search, "runs_done": 2}
    assert _before_main_runs(tmp_path, frame, "expansion-op") == {**search, "runs_done": 1}
    # without grid.json the search is the networks the question searches: another network's run is not its
    stray = pd.DataFrame([("expansion-op-lr", "ok", 2, 1001, "replicator-only@lr0.1")], columns=columns)
    assert _before_main_runs(tmp_path, pd.concat([frame, stray.assign(val_top1=80.0, reason=None)]),
                             "expansion-op") == {**search, "runs_done": 1}
    (tmp_path / "replicator-vs-recalibrator-lr").mkdir()
    (tmp_path / "replicator-vs-recalibrator-lr" / "chosen.json").write_text("{}")  # unreadable: not a choice
    assert _before_main_runs(tmp_path, frame, "replicator-vs-recalibrator") == {**search, "runs_done": 2}
    (tmp_path / "replicator-vs-recalibrator-lr" / "chosen.json").write_text('{"protocol": "cpu-full", "variants": {}}')
    look1 = {"stage": Stage.LOOK, "protocol": "cpu-full", "training_look": 1, "training_seeds": 3, "runs_done": 2,
             "runs_planned": 6}
    assert _before_main_runs(tmp_path, frame, "replicator-vs-recalibrator") == look1
    (tmp_path / "expansion-op-lr").mkdir()
    (tmp_path / "expansion-op-lr" / "chosen.json").write_text('{"protocol": "cpu-full", "variants": {}}')
    assert _before_main_runs(tmp_path, frame, "expansion-op") == look1


def test_a_comparison_whose_look_is_training_says_which_look_and_how_many_runs_have_finished(tmp_path):
    import pandas as pd

    from analysis.render import render_glance
    from analysis.second_edition import Stage, glance_rows

    grid = "replicator-vs-recalibrator"
    columns = ["grid", "run_id", "variant", "seed", "status", "engine_version", "reused_from", "train_seconds"]
    rows = [(grid, f"{v}{s}", v, s, "ok", 2, None, 3000.0) for v in ("dct", "replicator") for s in range(3)]
    rows += [(grid, "dct3", "dct", 3, "ok", 2, None, 3000.0), (grid, "dct4", "dct", 4, "failed", 2, None, 80.0),
             (grid, "old3", "replicator", 3, "ok", 1, None, 3000.0)]  # unfinished; an older engine's: not counted
    (tmp_path / grid).mkdir()
    state = {"grid": grid, "reference": "dct", "schedule": [3, 5, 8, 12],
             "variants": {"replicator": {"label": "continue", "look": 1, "n": 3, "estimate": 0.2, "ci": [-1.5, 1.9],
                                         "boundary": 8.857543832140365e-05}}}
    (tmp_path / grid / "sequential.json").write_text(json.dumps(state))
    frame = pd.DataFrame(rows, columns=columns).assign(val_top1=80.0)
    row = next(r for r in glance_rows(tmp_path, frame, [], ()) if r.folder == grid)
    assert (row.stage, row.label, row.training_look, row.training_seeds, row.runs_done, row.runs_planned) == (
        Stage.LOOK, "continue", 2, 5, 7, 10)
    assert (row.seeds, row.look, row.ci) == (3, 1, (-1.5, 1.9))  # the repeated CI at look 1 holds at any look
    assert "| +0.20 [-1.50, +1.90] (99.991%) | 3 (1 of 4) |" in "\n".join(render_glance((row,)))
    state["variants"]["replicator"] = {"label": "continue", "look": 0, "n": 0}  # written before look 1 trains
    (tmp_path / grid / "sequential.json").write_text(json.dumps(state))
    row = next(r for r in glance_rows(tmp_path, frame, [], ()) if r.folder == grid)
    assert (row.training_look, row.runs_done, row.runs_planned) == (1, 6, 6) and row.seeds is None
    assert "look 1: 6/6 runs finished" in "\n".join(render_glance((row,)))  # its runs are in, the look not yet recorded


def test_a_question_trained_on_the_gpu_gets_its_own_row_never_pooled_with_the_cpu_one(tmp_path):
    import pandas as pd

    from analysis.render import render_glance
    from analysis.second_edition import Stage, glance_rows

    columns = ["grid", "run_id", "status", "engine_version", "reused_from", "train_seconds"]
    rows = [("replicator-vs-recalibrator-gpu-lr", f"r{i}", "ok", 2, None, 500.0) for i in range(3)]
    rows += [("replicator-vs-recalibrator-gpu-lr", "r9", "failed", 2, None, 80.0),  # not finished: not counted
             ("pilot-cpu-full", "p0", "ok", 2, None, 3000.0),
             ("expansion-op-gpu-15-lr", "e0", "ok", 2, None, 300.0)]  # under another GPU budget: a row of its own
    shared = tmp_path / "replicator-vs-recalibrator-gpu-lr" / "r0"  # records that 5 runs shared the GPU; r1, r2 do not
    shared.mkdir(parents=True)
    (shared / "env.json").write_text(json.dumps({"runtime": {"device": "cuda", "runs_sharing_device": 5}}))
    frame = pd.DataFrame(rows, columns=columns).assign(val_top1=80.0)
    glance = glance_rows(tmp_path, frame.assign(variant=frame["grid"].map(lambda g: "dct@lr0.1" if g.endswith("-lr") else "dct")),
                         [], ())
    gpu = [r for r in glance if r.folder == "replicator-vs-recalibrator-gpu"]
    assert len(gpu) == 1 and gpu[0].cpu_hours is None and gpu[0].gpu  # GPU time is not CPU-hours
    assert (gpu[0].stage, gpu[0].runs_done, gpu[0].runs_planned) == (Stage.SEARCH, 3, 16)
    assert gpu[0].gpu_runs == 1 and gpu[0].gpu_hours == pytest.approx(100 / 3600)  # its share of the device: 500 s / 5
    assert gpu[0].gpu_runs_sharing_unknown == 2 and gpu[0].gpu_wall_hours_sharing_unknown == pytest.approx(1000 / 3600)
    cpu = [r for r in glance if r.folder == "replicator-vs-recalibrator"]
    assert cpu[0].stage is Stage.NOT_RUN and cpu[0].cpu_hours == 0  # the GPU's runs are not the CPU grid's
    assert not any(r.folder == "expansion-op-gpu" for r in glance)  # no GPU runs: no GPU row
    assert [r.gpu_runs_sharing_unknown for r in glance if r.folder == "expansion-op-gpu-15"] == [1]
    assert "| 2 GPU-min (1 run); ≤ 17 GPU-min (2 runs, sharing not recorded) |" in "\n".join(
        render_glance(glance))
    # the headline ended on a GPU and never begun on the CPU: its GPU row alone, no CPU row planning it
    (tmp_path / "paper-claim-gpu-15").mkdir()
    (tmp_path / "paper-claim-gpu-15" / "sequential.json").write_text(json.dumps({
        "reference": "dyclotnet-2.0", "schedule": [3, 5, 8, 12, 18, 27, 40], "margin": 0.5, "variants": {
            "mobilenetv2-1.0-8x8": {"label": "worse", "look": 3, "n": 8, "estimate": -1.2, "ci": [-1.5, -0.9]}}}))
    headline = pd.DataFrame([("paper-claim-gpu-15", "c0", "ok", 2, None, 60.0)], columns=columns)
    glance = glance_rows(tmp_path, pd.concat([frame, headline]).assign(variant="dct", val_top1=80.0), [], ())
    assert [(r.folder, r.stage, r.label) for r in glance if r.key == "c"] == [
        ("paper-claim-gpu-15", Stage.DECIDED, "worse")]


def test_a_widened_search_counts_its_planned_runs_from_its_own_grid_json(tmp_path):
    import pandas as pd

    from analysis.second_edition import Stage, _before_main_runs

    frame = pd.DataFrame([("replicator-vs-recalibrator-lr", f"{n}@lr{lr}", seed, "ok", 2) for n in ("dct", "replicator")
                          for lr in ("0.025", "0.05", "0.1", "0.2") for seed in (1000, 1001)],
                         columns=["grid", "variant", "seed", "status", "engine_version"]).assign(val_top1=80.0)
    search = {"stage": Stage.SEARCH, "runs_done": 16}
    assert _before_main_runs(tmp_path, frame, "replicator-vs-recalibrator") == {**search, "runs_planned": 16}
    (tmp_path / "replicator-vs-recalibrator-lr").mkdir()
    variants = {f"{n}@lr{lr}": {} for n in ("dct", "replicator") for lr in ("0.025", "0.05", "0.1", "0.2", "0.4")}
    (tmp_path / "replicator-vs-recalibrator-lr" / "grid.json").write_text(json.dumps({"variants": variants}))
    assert _before_main_runs(tmp_path, frame, "replicator-vs-recalibrator") == {**search, "runs_planned": 20}
    extra = pd.DataFrame([("replicator-vs-recalibrator-lr", "dct@lr0.4", 1002, "ok", 2),  # another seed: not planned
                          ("replicator-vs-recalibrator-lr", "dct@lr0.4", 1000, "failed", 2)],
                         columns=frame.columns.drop("val_top1")).assign(val_top1=80.0)
    extra["reason"] = [None, "Diverged: loss is nan at epoch 3 step 10"]  # a diverged run is finished, as searched
    (tmp_path / "replicator-vs-recalibrator-lr" / "grid.json").write_text(json.dumps({"variants": variants,
                                                                                      "seeds": [1000, 1001]}))
    assert _before_main_runs(tmp_path, pd.concat([frame.assign(reason=None), extra]),
                             "replicator-vs-recalibrator") == {**search, "runs_done": 17, "runs_planned": 20}


def test_measured_cpu_seconds_replace_the_macs_proxy_network_by_network(pilot, rows, tmp_path):
    """Once a question's runs of a network finish under the budget (search or main runs, copies with their
    original's time), the plan costs that network at their median CPU-seconds; an older engine's
    runs, another protocol's and another question's never count; networks without runs keep the proxy."""
    import shutil

    from analysis.plan import question_plans
    from analysis.render import plan_text

    root = tmp_path / "results"
    shutil.copytree(pilot, root)

    def run(grid, variant, seconds, engine=2, protocol="cpu-full", threads=1):
        run_dir = root / grid / f"{variant}-{seconds}-{engine}-{protocol}"
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(json.dumps({"variant": variant, "seed": 1000, "engine_version": engine}))
        (run_dir / "env.json").write_text(json.dumps({"torch_threads": threads}))
        (run_dir / "result.json").write_text(json.dumps({
            "run_id": run_dir.name, "grid": grid, "variant": variant, "seed": 1000, "model": "m", "dataset": "d",
            "protocol": protocol, "status": "ok", "reason": None,
            "metrics": {"test_top1": 70.0, "val_top1": 70.0, "train_seconds": seconds},
            "cost": {"params": 1, "macs": 1, "latency_ms": 1.0}}))

    run("expansion-op-lr", "pointwise@lr0.1", 100.0)
    run("expansion-op-lr", "pointwise@lr0.2", 150.0, threads=2)  # 300 CPU-s
    run("expansion-op-lr", "pointwise@lr0.4", 200.0)
    run("expansion-op-lr", "pointwise@lr0.05", 9000.0, engine=1)  # the first pass: not this engine's cost
    run("expansion-op-lr", "pointwise@lr0.025", 9000.0, protocol="cpu")  # another budget
    run("replicator-vs-recalibrator", "pointwise", 9000.0)  # another question's grid
    (root / "study_costs.json").write_text(json.dumps(CORE_COSTS))
    b = question_plans(root, rows, "cpu-full", effect=4.0, reps=200)["b"]
    proxy = {r.question: r.seconds_per_run for r in rows if r.budget == "cpu-full"}["DCT vs pointwise expansion"]
    assert b.hours == pytest.approx(b.expected_at_cap * 200.0 / 3600)  # pointwise: median of 100, 300, 200
    assert b.cap_hours == pytest.approx(12 * (200.0 + proxy) / 3600)  # dct: no run yet, the proxy
    # the search's three finished runs of this engine and budget are not to come: 4 rates x 2 seeds less those
    assert b.tune_runs_left == 4 * 2 - 3 and b.tune_hours == pytest.approx((4 * 2 - 3) * 200.0 / 3600)
    assert (b.measured_seconds, b.scaled, b.uncosted) == ({"pointwise": 200.0}, ("dct",), ())
    assert "CPU-s/run measured: `pointwise` 200; the others the pilot's DyClotNet-0.5 median x MACs ratio" in plan_text(b)


def test_a_question_is_planned_from_its_own_main_runs_else_from_the_nearest_recipe_measured():
    """docs/study.md, section 1, "The planning SD": tiny sources with the answers worked out by hand."""
    from analysis.plan import SdSource, planning_source
    from study.questions import SECOND_EDITION_QUESTIONS

    q = {question.key: question for question in SECOND_EDITION_QUESTIONS}
    rep, pw = (SdSource(0.27, 0.1, 4, pilot="recalibrator vs replicator-only"),
               SdSource(0.08, 0.1, 4, pilot="DCT vs pointwise expansion"))
    pilot = [rep, pw]
    main = {"a": SdSource(0.39, 0.4, 12, question="a", sd=0.31), "b": SdSource(0.20, 0.4, 5, question="b", sd=0.13),
            "e": SdSource(1.38, 0.4, 3, question="e", sd=0.65)}
    assert planning_source(q["a"], pilot, main) == main["a"]  # its own main runs, once its first look exists
    assert planning_source(q["b"], pilot, main, rate=0.1) == main["b"]  # whatever the pilot's rate
    # a new question: the recipe nearest its chosen rate, else the main runs' rates; the nearest main runs pooled,
    # variances weighted by degrees of freedom: (11 x 0.31^2 + 4 x 0.13^2 + 2 x 0.65^2) / 17 = 0.1159, SD 0.3404;
    # its 80% bound with 17 df: 0.3404 x sqrt(17 / chi2.ppf(0.2, 17) = 12.002) = 0.4051. The largest bound, (e)'s
    # 1.38 from 3 pairs, would plan for an SD four times the pooled one.
    pooled = planning_source(q["c"], pilot, main)
    assert (pooled.pooled, pooled.pairs, pooled.lr, pooled.question) == (("a", "b", "e"), 20, pytest.approx(0.4), None)
    assert (pooled.sd, pooled.sd_upper) == (pytest.approx(0.3404, abs=5e-5), pytest.approx(0.4051, abs=5e-5))
    assert planning_source(q["c"], pilot, main, rate=0.1) == rep
    assert planning_source(q["c"], pilot, main, rate=0.3) == pooled  # log(0.4/0.3) < log(0.3/0.1)
    assert planning_source(q["c"], pilot, {"a": main["a"]}) == main["a"]  # one source pooled is itself
    # before any main run: the question's own pilot pair, else the largest pilot pair (the plan until now)
    assert planning_source(q["b"], pilot, {}) == pw
    assert planning_source(q["c"], pilot, {}) == rep
    assert planning_source(q["b"], pilot, {"a": main["a"]}, rate=0.1) == pw


DIFFS = [0.3, -0.2, 0.1, 0.4, -0.1, 0.2, 0.0, 0.3, 3.0, -3.0, 3.0, -3.0]


def test_a_questions_own_sd_comes_from_the_seeds_of_its_last_look_and_only_from_runs_that_pair(tmp_path):
    import numpy as np

    from analysis.plan import main_run_sources
    from evidence.load import load_results
    from evidence.stats import sd_upper_bound
    from tests import test_pairing as pairing
    from tests.test_until_decided import decide_and_train

    def train(n: int, variants: list[str]) -> None:
        for seed in range(n):
            pairing.write_run(tmp_path, "dct", seed, 80.0)
            for variant in variants:
                pairing.write_run(tmp_path, variant, seed, 80.0 + DIFFS[seed])

    state = decide_and_train(pairing.GRID, "dct", ["replicator"], "cpu-full", tmp_path, 12, 0.5, train)["replicator"]
    assert (state["label"], state["n"]) == ("equivalent", 8)
    train(12, ["replicator"])  # seeds 8-11 trained ahead of the decision: never analysed, never planned with
    (source,) = main_run_sources(tmp_path, load_results(tmp_path), "cpu-full").values()
    assert source.question == "a" and source.sd_upper == pytest.approx(sd_upper_bound(np.std(DIFFS[:8], ddof=1), 7))
    assert source.lr == pytest.approx((0.4 * 0.2) ** 0.5) and source.pairs == 8
    assert main_run_sources(tmp_path, load_results(tmp_path), "gpu") == {}  # another budget's plan
    pairing.write_run(tmp_path, "dct", 0, 80.0, run_id="dct-0000", epochs=30)  # seed 0 rerun over: no longer pairs
    assert main_run_sources(tmp_path, load_results(tmp_path), "cpu-full") == {}


def test_a_question_part_way_is_planned_with_the_sd_of_the_comparisons_it_left_open(tmp_path, monkeypatch):
    """A comparison decided at a look needs no more seeds: its SD (here the larger) no longer plans the question."""
    import numpy as np

    from analysis.plan import main_run_sources
    from evidence.load import load_results
    from experiments.until_decided import SequentialDesign, looks
    from tests import test_pairing as pairing

    monkeypatch.setitem(pairing.LR, "narrow", 0.4)
    far = [-8.0 + 0.6 * (-1) ** seed for seed in range(12)]
    design = SequentialDesign(grid=pairing.GRID, reference="dct", variants=("replicator", "narrow"),
                              protocol="cpu-full", margin=0.5, max_seeds=12)
    for look in looks(design, tmp_path):
        if look.seeds > 5:
            break
        for seed in range(look.seeds):
            pairing.write_run(tmp_path, "dct", seed, 80.0)
            pairing.write_run(tmp_path, "replicator", seed, 80.0 + DIFFS[seed])
            pairing.write_run(tmp_path, "narrow", seed, 80.0 + far[seed])
    assert look.open_variants == ("replicator",)  # "narrow" is decided worse, "replicator" goes on to 8 seeds
    (source,) = main_run_sources(tmp_path, load_results(tmp_path), "cpu-full").values()
    assert source.went_on and source.pairs == 5 and source.sd == pytest.approx(np.std(DIFFS[:5], ddof=1))


def test_the_gpu_budget_is_chosen_among_the_gpu_pilots_at_80_percent_in_device_time(pilot, tmp_path):
    """docs/study.md section 5: the GPU's pilots (grids pilot-gpu-15, pilot-gpu) are costed in device-seconds (training
    seconds over the runs sharing the GPU), recommended at 80% test top-1 among themselves only, and never become the
    CPU's budget or its plans'."""
    import shutil

    from analysis.plan import question_plans
    from analysis.render import render_budget
    from analysis.second_edition import GlanceRow, Stage, budget_findings

    root = tmp_path / "results"
    shutil.copytree(pilot, root)
    means = {"gpu-15": {"dct": 79.0, "replicator": 78.5, "pointwise": 79.2}, "gpu": {"dct": 84.0, "replicator": 83.5,
                                                                                    "pointwise": 84.2}}
    for budget, mean in means.items():
        write_grid(root, f"pilot-{budget}", "dct", mean, seeds=4, sd=0.5, rng_seed=5)
        for env in (root / f"pilot-{budget}").glob("*/env.json"):
            env.write_text(json.dumps({"torch_threads": 2, "runtime": {"device": "cuda", "runs_sharing_device": 4}}))
    rows = pilot_rows(root, effect=4.0, reps=200)
    gpu_rows = [r for r in rows if r.device == "gpu"]
    assert sorted({r.budget for r in gpu_rows}) == ["gpu", "gpu-15"]
    assert all(r.seconds_per_run == pytest.approx(12.5 / 4) for r in gpu_rows)  # cheaper than any CPU budget's 25
    assert recommend(rows).budget == "cpu-full"  # the CPU's budget: among the CPU's pilots only
    gpu = recommend(rows, 80.0, "gpu")
    assert (gpu.budget, gpu.device, gpu.reason) == ("gpu", "gpu", RecommendReason.CHEAPEST)  # gpu-15 is below 80%
    assert {p.budget for p in question_plans(root, rows, None, effect=4.0, reps=200).values()} == {"cpu-full"}
    findings = budget_findings(root, effect=4.0, reps=200)
    assert findings.gpu_recommendation == gpu and findings.gpu_pending == () and findings.recommendation.budget == "cpu-full"
    lines = render_budget(findings, "f")
    assert any(line.startswith("GPU budget, for (c) and (d) (docs/study.md section 5): **gpu**") for line in lines)
    assert any("| GPU-s/run (median) |" in line for line in lines) and any("| CPU-s/run (median) |" in line for line in lines)
    # a question decided on the GPU: what it took in device-minutes beside the GPU pilot's plan, never on the CPU's line
    decided = GlanceRow(key="b", question="?", folder="expansion-op-gpu", stage=Stage.DECIDED, seeds=5, protocol="gpu",
                        cpu_hours=None, gpu=True, gpu_runs=10, gpu_hours=0.25, gpu_runs_sharing_unknown=2)
    text = " ".join(" ".join(render_budget(findings, "f", (decided,))).split())
    assert text.count("What the questions decided at this budget took") == 1
    assert ("(b) 5 seeds a variant, 15 GPU-minutes and 2 runs whose device share was not recorded, search included. "
            f"The pilot's {60 * gpu.hours:.0f} GPU-minutes plan one of its own pairs") in text
    assert text.index("GPU budget, for (c) and (d)") < text.index("What the questions decided")
    # a question of several comparisons (one folder, one cost): one entry naming each comparison's seeds
    several = tuple(dataclasses.replace(decided, key="e", variant=v, seeds=n) for v, n in (("p1", 5), ("p4", 8), ("p8", 5)))
    text = " ".join(" ".join(render_budget(findings, "f", several)).split())
    assert "(e) 5 (`p1`), 8 (`p4`) and 5 (`p8`) seeds a variant, 15 GPU-minutes" in text
    assert text.count("seeds a variant") == 1


def test_a_gpu_batch_trains_the_gpus_pilot_first_then_the_questions_not_decided_under_its_budget(pilot, tmp_path):
    import shutil

    from analysis.second_edition import gpu_order

    assert gpu_order(pilot, reps=200).jobs == (("pilot-gpu-15", "gpu-15"), ("pilot-gpu", "gpu"))  # no GPU pilot yet
    root = tmp_path / "results"
    shutil.copytree(pilot, root)
    for budget, top1 in (("gpu-15", 78.0), ("gpu", 84.0)):  # gpu-15 below the GPU's 80%: the budget is gpu
        means = {"dct": top1, "replicator": top1 - 0.5, "pointwise": top1 + 0.2}
        write_grid(root, f"pilot-{budget}", "dct", means, seeds=4, sd=0.5, rng_seed=5)
        for env in (root / f"pilot-{budget}").glob("*/env.json"):
            env.write_text(json.dumps({"torch_threads": 2, "runtime": {"device": "cuda", "runs_sharing_device": 4}}))
    one = next((root / "pilot-gpu").glob("*/result.json"))  # a run that failed is not retried: the pilot has ended
    one.write_text(json.dumps({**json.loads(one.read_text()), "status": "failed"}))
    order = gpu_order(root, reps=200)
    assert order.jobs == tuple((grid, "gpu") for grid in ("paper-claim", "baselines", "replicator-vs-recalibrator",
                                                          "expansion-op")) and "under the GPU budget gpu" in order.why
    for folder, labels in (("paper-claim-gpu", ["worse"]), ("baselines-gpu", ["better", "continue"]),
                           ("replicator-vs-recalibrator-gpu", ["inconclusive at max seeds (40)"]),
                           # what a time box leaves (experiments.until_decided.final_states): not decided
                           ("expansion-op-gpu", ["stopped before look 2: a seed of it or of the reference has no ok run"]),
                           ("baselines-gpu-15", ["better"])):  # decided under another budget: not this one's
        (root / folder).mkdir()
        (root / folder / "sequential.json").write_text(json.dumps({"variants": {str(i): {"label": label}
                                                                                for i, label in enumerate(labels)}}))
    assert [grid for grid, _ in gpu_order(root, reps=200).jobs] == ["baselines", "expansion-op"]
    # a question a GPU ended (under any budget; inconclusive at its cap too) is planned on the CPU no more
    from analysis.plan import question_plans

    cpu_rows = [r for r in pilot_rows(root, effect=4.0, reps=200) if r.device == "cpu"]
    assert sorted(question_plans(root, cpu_rows, "cpu-full", effect=4.0, reps=200)) == ["b", "e", "f", "g"]


def test_gpu_order_prints_one_grid_at_protocol_a_line_and_refuses_a_missing_folder(tmp_path, capsys):
    import run

    assert run.main(["gpu-order", "--results", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "pilot-gpu-15@gpu-15\npilot-gpu@gpu\n" and "budget pilot first" in captured.err
    assert run.main(["gpu-order", "--results", str(tmp_path / "nowhere")]) == 2
    assert "nowhere' does not exist" in capsys.readouterr().err


def test_the_gpus_open_questions_are_planned_in_device_minutes_scaled_by_bytes_per_image(pilot, tmp_path):
    """docs/study.md section 5: at the GPU's budget, each GPU question not decided there is planned in device time,
    looks to gpu-next's 40 seeds, a network not measured yet costing the GPU pilot's DyClotNet-0.5 median device-seconds
    x its bytes moved per image over DyClotNet-0.5's (study_costs.json); a decided question drops out."""
    import shutil

    from analysis.plan import question_plans
    from analysis.render import BYTES_PROXY, gpu_plan_lines, plan_text
    from analysis.second_edition import budget_findings
    from evidence.sequential import plan_looks, simulate
    from study.grids import GRIDS

    root = tmp_path / "results"
    shutil.copytree(pilot, root)
    write_grid(root, "pilot-gpu", "dct", {"dct": 84.0, "replicator": 83.5, "pointwise": 84.2}, seeds=4, sd=0.5,
               rng_seed=5)
    for env in (root / "pilot-gpu").glob("*/env.json"):  # 12.5 training s (write_grid), 4 runs sharing: 3.125 s
        env.write_text(json.dumps({"torch_threads": 2, "runtime": {"device": "cuda", "runs_sharing_device": 4}}))
    headline = list(GRIDS["paper-claim"].variants)  # dyclotnet-2.0, the 8x8 MobileNetV2 (compared), the 4x4 one
    costs = [{"grid": "pilot-gpu", "variant": "dct", "macs": 1, "bytes_per_image": 1000},
             *({"grid": "paper-claim", "variant": v, "macs": 1, "bytes_per_image": 1000 * (i + 2)}
               for i, v in enumerate(headline))]
    (root / "study_costs.json").write_text(json.dumps(costs))
    rows = pilot_rows(root, effect=4.0, reps=200)
    plans = question_plans(root, rows, "gpu", effect=4.0, reps=200, device="gpu")
    assert list(plans) == ["c", "d", "a", "b"]  # study.questions.GPU_QUESTIONS, in a GPU batch's order
    c = plans["c"]
    assert (c.device, c.budget, c.seed_cap, c.scaled, c.measured_seconds) == ("gpu", "gpu", 40, tuple(headline[:2]), {})
    capped = simulate(plan_looks(40), 4.0, c.sd_upper, 200, n_comparisons=1)
    per_run = 3.125 * (2 + 3)  # dyclotnet-2.0 (2x the reference's bytes) and the compared 8x8 MobileNetV2 (3x)
    assert c.hours == pytest.approx(capped["expected_seeds"] * per_run / 3600)
    assert c.cap_hours == pytest.approx(40 * per_run / 3600) and c.tune_hours == pytest.approx(4 * 2 * per_run / 3600)
    text = plan_text(c)
    assert f"{60 * c.hours:.0f} GPU-min expected, at most {60 * c.cap_hours:.0f} (GPU-s/run: {BYTES_PROXY})" in text
    assert "looks at 3, 5, 8, 12, 18, 27, 40 seeds" in text and "CPU" not in text
    assert plans["d"].uncosted and "bytes per image unknown" in plan_text(plans["d"])  # no costs recorded for (d)
    assert question_plans(root, rows, None, effect=4.0, reps=200)["c"].device == "cpu"  # the CPU's plan as before

    (root / "paper-claim-gpu").mkdir()  # (c) decided under the GPU's budget: no longer planned
    (root / "paper-claim-gpu" / "sequential.json").write_text(json.dumps({"variants": {"x": {"label": "better"}}}))
    findings = budget_findings(root, effect=4.0, reps=200)
    assert findings.gpu_recommendation.budget == "gpu" and list(findings.gpu_plans) == ["d", "a", "b"]
    lines = gpu_plan_lines(findings.gpu_plans)
    assert lines[0].startswith("The GPU's questions not decided yet") and lines[2].startswith("- (d) ")
    assert "(`baselines-gpu`): at `gpu`, SD bound" in lines[2] and gpu_plan_lines({}) == []


def test_the_committed_costs_scale_every_gpu_questions_networks_by_bytes_counted_at_the_gpu_batch():
    """results/study_costs.json (`run.py study-costs`) holds bytes moved per image, counted at the GPU protocols'
    batch, for the GPU pilot's reference and every network a GPU question trains: its GPU plan is costed from the
    first GPU pilot on."""
    from pathlib import Path

    from analysis.plan import study_costs
    from costing.claims import GPU_BATCH
    from experiments.config import get_protocol
    from study.grids import GPU_PILOT_BUDGETS
    from study.questions import GPU_QUESTIONS, trained_networks

    assert {get_protocol(b).batch_size for b in GPU_PILOT_BUDGETS} == {GPU_BATCH}
    scale = study_costs(Path(__file__).resolve().parents[1] / "results", "bytes_per_image")
    needed = {(f"pilot-{b}", "dct") for b in GPU_PILOT_BUDGETS} | {(g, n) for g in GPU_QUESTIONS
                                                                   for n in trained_networks(g)}
    assert needed <= set(scale) and all(scale[k] > 0 for k in needed)


def test_study_costs_readers_skip_a_bad_row_and_keep_the_others(tmp_path):
    from analysis.plan import side_by_side_latency, study_architectures, study_costs

    good = {"grid": "g", "variant": "a", "macs": 10, "bytes_per_image": 7, "latency_ms": 2.5, "architecture": "Net(a)"}
    bad = {"grid": "g", "variant": "b", "macs": "n/a", "bytes_per_image": None, "latency_ms": float("nan"),
           "architecture": None}
    (tmp_path / "study_costs.json").write_text(json.dumps([good, bad, "not a row", {"variant": "c", "macs": 3}]))
    assert study_costs(tmp_path) == {("g", "a"): 10}
    assert study_costs(tmp_path, "bytes_per_image") == {("g", "a"): 7}
    assert side_by_side_latency(tmp_path) == {("g", "a"): 2.5}
    assert study_architectures(tmp_path) == {("g", "a"): "Net(a)"}
    (tmp_path / "study_costs.json").write_text("{torn")
    assert study_costs(tmp_path) == side_by_side_latency(tmp_path) == study_architectures(tmp_path) == {}
