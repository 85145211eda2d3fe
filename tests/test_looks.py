"""The report's "Decisions, look by look": the looks recomputed from the run files agree with what
`ablate --until-decided` recorded, and say so where they do not."""
from __future__ import annotations

import json
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from analysis.looks import decision_records
from analysis.plots import looks_figure
from analysis.render import render_looks
from analysis.second_edition import glance_rows
from evidence.load import load_results
from tests.test_sequential import DIFFS_A
from tests.test_until_decided import decide_and_train

GRID, PROTOCOL, REFERENCE = "replicator-vs-recalibrator", "cpu-full", "dct"  # question (a)'s grid
PARAMS = {"dct": 100, "replicator": 50}
LATENCY_MS = {"dct": 4.0, "replicator": 2.0}  # as each run measured its own


def top1(variant: str, seed: int, effect: float) -> float:
    return 80.0 + (effect if variant != REFERENCE else 0.0) + np.random.default_rng(
        [seed, zlib.crc32(variant.encode())]).normal(0, 0.3)


def write_run(root: Path, variant: str, seed: int, value: float) -> None:
    run_dir = root / GRID / f"{variant}-{seed:04d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (root / GRID / "grid.json").write_text(json.dumps({"grid": GRID, "reference": REFERENCE, "paired": True}))
    (run_dir / "config.json").write_text(json.dumps({"variant": variant, "seed": seed, "engine_version": 2}))
    (run_dir / "result.json").write_text(json.dumps({
        "run_id": run_dir.name, "grid": GRID, "variant": variant, "seed": seed, "model": "m", "dataset": "d",
        "protocol": PROTOCOL, "status": "ok", "reason": None, "metrics": {"test_top1": value},
        "cost": {"params": PARAMS[variant], "macs": 10, "latency_ms": LATENCY_MS[variant]}}))


def train(root: Path, effect: float):
    def run(n: int, variants: list[str]) -> None:
        for seed in range(n):
            for variant in (REFERENCE, *variants):
                write_run(root, variant, seed, top1(variant, seed, effect))
    return run


def test_every_look_is_recomputed_from_the_runs_and_ends_where_the_rule_stopped(tmp_path):
    recorded = decide_and_train(GRID, REFERENCE, ["replicator"], PROTOCOL, tmp_path, 12, 0.5, train(tmp_path, -3.0))
    assert recorded["replicator"]["label"] == "worse"
    (record,) = decision_records(tmp_path, load_results(tmp_path), 2)
    (comparison,) = record.comparisons
    looks = comparison.looks
    assert [s["label"] for s in looks[:-1]] == ["continue"] * (len(looks) - 1)  # stopped at its first decision
    assert looks[-1] == recorded["replicator"]
    diffs = [top1("replicator", s, -3.0) - top1(REFERENCE, s, -3.0) for s in range(looks[-1]["n"])]
    assert comparison.diffs == pytest.approx(diffs)
    for state in looks:  # each look's mean is that of its own seeds 0..n-1 only
        assert state["estimate"] == pytest.approx(np.mean(diffs[:state["n"]]))
    assert dict(comparison.cost_ratios)["params"] == pytest.approx(0.5)

    text = "\n".join(render_looks((record,), "figs"))
    low, high = sorted(abs(x) for x in looks[-1]["ci"])
    assert (f"Decided at look {looks[-1]['look']} ({looks[-1]['n']} seeds a variant): `replicator` is worse than "
            f"`dct` by {abs(looks[-1]['estimate']):.2f} points (repeated CI {low:.2f} to {high:.2f})") in text
    assert text.count("| `replicator` - `dct` |") == len(looks) and "params 0.50x" in text
    assert "the run files now give" not in text  # the record agrees with the run files: no note
    assert "| 0.0000 |" not in text and "| 8.9e-05 | continue |" in text  # look 1's level, never a bare 0.0000
    assert f"(figs/{record.figure}.png)" in text
    fig, axes = looks_figure(record)
    assert len(axes[0][0].lines) >= 2  # zero line and the per-seed differences
    long_names = replace(record, reference="mobilenetv2_cifar8_100", comparisons=tuple(
        replace(c, variant="dyclotnet_200_with_a_long_name") for c in record.comparisons))
    fig, axes = looks_figure(long_names)
    fig.canvas.draw()
    for ax in axes[0]:  # every label and title inside the figure, however long the networks' names
        for text in (ax.yaxis.label, ax.title):
            box = text.get_window_extent()
            assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
    assert axes[0][0].get_title() == "dyclotnet_200_with_a_long_name - mobilenetv2_cifar8_100"


def test_a_look_the_runs_allow_but_the_record_lacks_is_named(tmp_path):
    """A process stopped after a look's runs finished but before it recorded them: the report recomputes
    the look, shows it, and says that the record is behind."""
    decide_and_train(GRID, REFERENCE, ["replicator"], PROTOCOL, tmp_path, 12, 0.5, train(tmp_path, 0.0))
    path = tmp_path / GRID / "sequential.json"
    state = json.loads(path.read_text())
    looks_recorded = state["variants"]["replicator"]["look"]
    state["variants"]["replicator"] = {"label": "continue", "look": looks_recorded - 1, "n": 0}
    path.write_text(json.dumps(state))
    (record,) = decision_records(tmp_path, load_results(tmp_path), 2)
    (comparison,) = record.comparisons
    assert (comparison.recorded["label"], comparison.recorded["look"]) == ("continue", looks_recorded - 1)
    assert comparison.looks[-1]["look"] == looks_recorded and comparison.looks[-1]["label"] != "continue"
    assert "the run files now give" in "\n".join(render_looks((record,), "figs"))


def test_the_latency_ratio_is_the_side_by_side_one_where_study_costs_has_both_networks(tmp_path):
    """Each run measures its latency once, under the load of its moment; ``run.py study-costs`` measures the
    networks side by side. The looks take the latter wherever it has both networks of the comparison, and say
    which they took."""
    decide_and_train(GRID, REFERENCE, ["replicator"], PROTOCOL, tmp_path, 12, 0.5, train(tmp_path, -3.0))

    def latency_sentence() -> tuple[float, str]:
        (record,) = decision_records(tmp_path, load_results(tmp_path), 2)
        (comparison,) = record.comparisons
        (line,) = [x for x in render_looks((record,), "figs") if "Cost of `replicator` against `dct`" in x]
        return dict(comparison.cost_ratios)["latency"], line

    ratio, line = latency_sentence()  # no study_costs.json: the runs' medians, said to be rough
    assert ratio == pytest.approx(0.5) and "CPU latency 0.50x (medians of the main runs" in line and "rough" in line
    rows = [{"grid": GRID, "variant": "dct", "latency_ms": 3.0}, {"grid": GRID, "variant": "replicator", "latency_ms": 2.4},
            {"grid": "expansion-op", "variant": "replicator", "latency_ms": 30.0}]  # another grid's row: not read
    (tmp_path / "study_costs.json").write_text(json.dumps(rows))
    ratio, line = latency_sentence()
    assert ratio == pytest.approx(0.8) and "CPU latency 0.80x (batch 1, 1 thread, the two networks measured side by side" in line
    assert "params 0.50x, MACs 1.00x (medians of the main runs)" in line
    (tmp_path / "study_costs.json").write_text(json.dumps(rows[:1] + rows[2:]))  # the variant not measured: the runs'
    assert latency_sentence()[0] == pytest.approx(0.5)


def test_no_section_without_a_recorded_design_and_an_unreadable_one_is_skipped(tmp_path):
    write_run(tmp_path, REFERENCE, 0, 80.0)
    assert decision_records(tmp_path, load_results(tmp_path), 2) == ()
    (tmp_path / GRID / "sequential.json").write_text("{not json")
    assert decision_records(tmp_path, load_results(tmp_path), 2) == ()
    assert render_looks((), "figs") == []


def test_seeds_trained_ahead_of_a_decision_are_counted_and_leave_the_decision_as_it_was(tmp_path):
    recorded = decide_and_train(GRID, REFERENCE, ["replicator"], PROTOCOL, tmp_path, 12, 0.5, train(tmp_path, -3.0))
    n = recorded["replicator"]["n"]
    for seed in (n, n + 1):  # the next look's seeds, trained on workers that would otherwise have idled
        write_run(tmp_path, "replicator", seed, top1("replicator", seed, 3.0))
    (record,) = decision_records(tmp_path, load_results(tmp_path), 2)
    (comparison,) = record.comparisons
    assert comparison.ahead == 2 and comparison.looks[-1] == recorded["replicator"]  # the decision is unchanged
    assert len(comparison.diffs) == n


def test_a_verdict_inside_the_margin_carries_both_facts_in_the_looks_and_the_glance(tmp_path):
    """Question (a)'s per-seed differences: decided worse at look 4, and the equivalence test passes at that look's
    level too (docs/study.md). The look records and the glance row carry it, also for a record written before the
    fields existed (the committed sequential.json of (a))."""
    def run(n: int, variants: list[str]) -> None:
        for seed in range(n):
            write_run(tmp_path, REFERENCE, seed, 80.0)
            for variant in variants:
                write_run(tmp_path, variant, seed, 80.0 + DIFFS_A[seed])

    recorded = decide_and_train(GRID, REFERENCE, ["replicator"], PROTOCOL, tmp_path, 12, 0.5, run)
    assert recorded["replicator"]["label"] == "worse" and recorded["replicator"]["within_margin"] is True
    (record,) = decision_records(tmp_path, load_results(tmp_path), 2)
    last = record.comparisons[0].looks[-1]
    assert last["look"] == 4 and last["within_margin"] and max(last["tost_p"]) < last["tost_level"]
    assert [s["within_margin"] for s in record.comparisons[0].looks[:-1]] == [False] * 3
    path = tmp_path / GRID / "sequential.json"
    state = json.loads(path.read_text())
    for key in ("within_margin", "tost_p", "tost_level", "tost_ci", "margin"):
        del state["variants"]["replicator"][key]
    path.write_text(json.dumps(state))
    (row,) = [r for r in glance_rows(tmp_path, load_results(tmp_path), (), (record,)) if r.variant == "replicator"]
    assert (row.label, row.within_margin, row.margin, row.pairing_problem) == ("worse", True, 0.5, "")


def test_holm_over_the_decided_questions_uses_stage_wise_p_values_worked_out_by_hand():
    from analysis.looks import ComparisonLooks, QuestionLooks, holm_reading
    from analysis.render import render_holm
    from evidence.sequential import stagewise_p

    def question(key: str, variant: str, label: str, look: int, p: float, folder: str = GRID) -> QuestionLooks:
        state = {"label": label, "look": look, "n": (3, 5, 8, 12)[look - 1], "p": p}
        comparison = ComparisonLooks(variant, (state,), {}, (), None, ())
        return QuestionLooks(f"({key}) question", folder, PROTOCOL, REFERENCE, (3, 5, 8, 12), 0.5, 0.05, "rule",
                             (comparison,))

    records = (question("a", "replicator", "worse", 4, 0.03), question("b", "pointwise", "better", 2, 0.0001),
               question("g", "dct-norm-after", "equivalent", 3, 0.9))  # equivalent: not a claim of a difference
    reading = holm_reading(records)
    assert reading.comparisons == ("(a) `replicator` - `dct`", "(b) `pointwise` - `dct`")
    a, b = stagewise_p(0.03, 4, (3, 5, 8, 12)), stagewise_p(0.0001, 2, (3, 5, 8, 12))
    assert reading.p_stagewise == pytest.approx((a, b)) and b < a < 0.05
    assert reading.p_holm == pytest.approx((max(a, 2 * b), 2 * b))  # Holm by hand: the smaller p times 2, then step
    assert reading.p_fixed_holm == pytest.approx((0.03, 0.0002)) and reading.holds == (True, True)
    assert holm_reading(records[:1]) is None and render_holm(None) == []
    # (a) decided again on a GPU is a replication, not another hypothesis; (c), decided on a GPU only, is named there
    replication = question("a", "replicator", "better", 2, 1e-6, folder="replicator-vs-recalibrator-gpu-15")
    assert holm_reading((*records, replication)) == reading
    headline = question("c", "mobilenetv2-1.0-8x8", "worse", 3, 0.001, folder="paper-claim-gpu-15")
    assert holm_reading((records[0], headline)).comparisons == (
        "(a) `replicator` - `dct`", "(c) `mobilenetv2-1.0-8x8` - `dct` (`paper-claim-gpu-15`)")
