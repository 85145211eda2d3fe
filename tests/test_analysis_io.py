"""Reading the results layout, the CLI commands and the generated report of ``analysis``.

Results directories are written by hand here, following docs/results-format.md; the engine is
never imported.
"""
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import run
from analysis.compare import analyze
from evidence.load import load_curves, load_results, load_table, of_architecture_revisions

COSTS = {"mobilenetv2_100": {"params": 2.24e6, "macs": 6.1e6, "latency_ms": 5.0},
         "dyclotnet_200": {"params": 1.6e6, "macs": 2.1e6, "latency_ms": 4.2}}


def write_grid(root: Path, grid: str, reference: str, means: dict, seeds=3, dataset="cifar10-jpeg",
               kwargs=None, sd=0.3, rng_seed=0) -> None:
    """A grid folder with one finished run per (variant, seed), as the engine writes it."""
    rng = np.random.default_rng(rng_seed)
    kwargs = kwargs or {}
    folder = root / grid
    folder.mkdir(parents=True)
    (folder / "grid.json").write_text(json.dumps({
        "grid": grid, "description": f"Grid {grid} for the tests.", "reference": reference, "paired": True,
        "variants": {v: {"model": v, "model_kwargs": kwargs.get(v, {})} for v in means}}))
    for variant, mean in means.items():
        for seed in range(seeds):
            run_dir = folder / hashlib.sha256(f"{grid}/{variant}/{seed}".encode()).hexdigest()[:16]
            run_dir.mkdir()
            (run_dir / "config.json").write_text(json.dumps({"variant": variant, "seed": seed, "dataset": dataset,
                                                             "protocol": {"name": "cpu", "epochs": 2}}))
            (run_dir / "env.json").write_text(json.dumps({"git_commit": "0123abc", "cpu": "Test CPU x2",
                                                          "threads": 2, "packages": {"torch": "2.14.1"}}))
            acc = mean + rng.normal(0, sd)
            (run_dir / "metrics.jsonl").write_text("".join(
                json.dumps({"epoch": e, "train_loss": 1 / e, "test_top1": acc - 4 * (2 - e), "val_top1": None}) + "\n"
                for e in (1, 2)))
            write_result(run_dir, {
                "run_id": run_dir.name, "grid": grid, "variant": variant, "seed": seed,
                "seeds": {"init": 100 + seed, "data": 200 + seed, "aug": 300 + seed},
                "model": variant, "model_kwargs": kwargs.get(variant, {}), "dataset": dataset, "protocol": "cpu",
                "status": "ok", "reason": None,
                "metrics": {"test_top1": acc, "test_loss": 0.9, "val_top1": None, "train_loss": 0.8,
                            "train_top1": 72.0, "epochs": 2, "train_seconds": 12.5, "images_per_second": 300.0},
                "cost": COSTS.get(variant, {"params": 4e5, "macs": 2.7e7, "latency_ms": 4.1})})


def write_result(run_dir: Path, obj) -> None:
    (run_dir / "result.json").write_text(obj if isinstance(obj, str) else json.dumps(obj))


def add_run(root: Path, grid: str, name: str, result=None) -> Path:
    run_dir = root / grid / name
    run_dir.mkdir()
    if result is not None:
        write_result(run_dir, result)
    return run_dir


@pytest.fixture()
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    write_grid(root, "paper-claim", "mobilenetv2_100", {"mobilenetv2_100": 70.0, "dyclotnet_200": 71.0})
    write_grid(root, "p-sweep", "p4", {"p2": 69.5, "p4": 70.0, "p8": 70.3},
               kwargs={"p2": {"p": 2}, "p4": {"p": 4}, "p8": {"p": 8}}, rng_seed=1)
    write_grid(root, "smoke", "dct", {"dct": 80.0, "pointwise": 80.1}, seeds=2, dataset="fashion-mnist",
               rng_seed=2)
    return root


def test_analysis_never_imports_the_engine_or_torch():
    import subprocess
    import sys

    code = ("import sys, analysis.cli, analysis.report, evidence.load, analysis.compare, analysis.tables\n"
            "bad = [m for m in ('torch', 'experiments', 'dyclot', 'baselines') if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_the_study_definition_imports_no_torch_and_no_engine():
    import subprocess
    import sys

    code = ("import sys, study, study.grids, study.questions, study.claims\n"
            "bad = [m for m in ('torch', 'experiments', 'analysis', 'dyclot', 'baselines') if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# ------------------------------------------------------------------------------------------ loader
def test_load_results_flattens_result_json(results):
    frame = load_results(results)
    assert len(frame) == 2 * 3 + 3 * 3 + 2 * 2 and set(frame["status"]) == {"ok"}
    row = frame[(frame["grid"] == "paper-claim") & (frame["variant"] == "dyclotnet_200")].iloc[0]
    assert row["reference"] == "mobilenetv2_100" and row["macs"] == 2.1e6 and row["init_seed"] == 100
    assert row["paired"] is True or row["paired"] == True  # noqa: E712
    assert json.loads(frame[frame["variant"] == "p8"].iloc[0]["model_kwargs"]) == {"p": 8}
    curves = load_curves(results, frame)
    assert len(curves) == 2 * len(frame) and set(curves["epoch"]) == {1, 2}


BAD_RESULTS = {
    "empty": "",
    "truncated": '{"run_id": "ab", "variant": "p4", "seed": 9, "status": "ok", "metrics": {"test_top1": 99',
    "garbage": "\x00\x01not json at all",
    "a-list": "[1, 2, 3]",
    "no-status": {"variant": "p4", "seed": 9, "metrics": {"test_top1": 99.0}},
    "odd-status": {"variant": "p4", "seed": 9, "status": "maybe", "metrics": {"test_top1": 99.0}},
    "string-metric": {"variant": "p4", "seed": 9, "status": "ok", "metrics": {"test_top1": "99"}},
    "no-metrics": {"variant": "p4", "seed": 9, "status": "ok", "metrics": {}},
}


def test_bad_result_files_are_corrupt_never_averaged(results):
    clean = analyze(load_results(results), grids=["p-sweep"])["summaries"].set_index("variant")
    for name, content in BAD_RESULTS.items():
        add_run(results, "p-sweep", f"bad-{name}", content)
    add_run(results, "p-sweep", "unfinished").joinpath("config.json").write_text(
        json.dumps({"variant": "p2", "seed": 7}))
    add_run(results, "p-sweep", "failed", {"variant": "p8", "seed": 5, "status": "failed",
                                           "reason": "loss is nan at epoch 3 step 12", "metrics": {}})
    frame = load_results(results)
    status = frame.set_index("run_id")["status"]
    assert all(status[f"bad-{name}"] == "corrupt" for name in BAD_RESULTS)
    assert status["unfinished"] == "unfinished" and status["failed"] == "failed"
    assert frame.set_index("run_id").loc["unfinished", "variant"] == "p2"  # identity from config.json
    result = analyze(frame, grids=["p-sweep"])
    summary = result["summaries"].set_index("variant")
    pd.testing.assert_series_equal(summary["mean"], clean["mean"])  # nothing bad entered a mean
    assert len(result["excluded"]) == len(BAD_RESULTS) + 2
    assert frame.set_index("run_id").loc["bad-truncated", "reason"].startswith("result.json is not valid JSON")


def test_duplicate_runs_of_one_seed_are_counted_once(results):
    source = sorted((results / "smoke").glob("*/result.json"))[0]
    copy = json.loads(source.read_text())
    copy["metrics"]["test_top1"] = 12.5
    add_run(results, "smoke", "ffffffffffffffff", copy)  # the same run again: the smallest run id is kept
    frame = load_results(results)
    assert (frame["status"] == "duplicate").sum() == 1
    assert frame.loc[frame["run_id"] == "ffffffffffffffff", "status"].item() == "duplicate"
    assert analyze(frame, grids=["smoke"])["summaries"]["n"].tolist() == [2, 2]


def test_runs_of_an_older_engine_are_superseded_never_paired(results):
    """A grid holding runs of two engine versions analyses the newest only: old networks are never
    paired or pooled with new ones, and the report counts the old runs as superseded."""
    from analysis.report import build_report

    for config in (results / "smoke").glob("*/config.json"):
        config.write_text(json.dumps({**json.loads(config.read_text()), "engine_version": 1}))
    newer = json.loads(sorted((results / "smoke").glob("*/result.json"))[0].read_text())
    newer["metrics"]["test_top1"] = 12.5
    add_run(results, "smoke", "ffffffffffffffff", newer).joinpath("config.json").write_text(
        json.dumps({"variant": newer["variant"], "seed": newer["seed"], "engine_version": 2}))
    frame = load_results(results)
    smoke = frame[frame["grid"] == "smoke"].set_index("run_id")
    assert smoke.loc["ffffffffffffffff", "status"] == "ok"
    old = smoke.drop(index="ffffffffffffffff")
    assert (old["status"] == "superseded").all() and len(old) == 4
    assert old["reason"].eq("trained by engine version 1; the grid has runs of version 2").all()
    assert (frame.loc[frame["grid"] != "smoke", "status"] == "ok").all()  # other grids keep their runs
    text = build_report(results, results.parent / "R.md")[0].appendix
    runs = text.split("## Runs", 1)[1].split("\n\n## ", 1)[0]
    assert "| grid | reference | ok | superseded | engine |" in runs and "| `smoke` | `dct` | 1 | 4 | 1, 2 |" in runs


def test_runs_of_an_older_architecture_revision_are_superseded_in_every_grid(results):
    """A model's runs whose config.json records an older ``architecture_revision`` (absent = 1) than its newest
    finished run, in any grid, are superseded; other models' runs, and all runs before a newer one finishes, stay ok."""
    assert (load_results(results)["status"] == "ok").all()  # no field anywhere: revision 1 throughout
    newer = json.loads(sorted((results / "paper-claim").glob("*/result.json"))[0].read_text())
    model = newer["model"]
    add_run(results, "smoke", "ffffffffffffffff", {**newer, "grid": "smoke"}).joinpath("config.json").write_text(
        json.dumps({"variant": newer["variant"], "seed": newer["seed"], "architecture_revision": 2}))
    frame = load_results(results).set_index("run_id")
    old = frame[(frame["model"] == model) & (frame.index != "ffffffffffffffff")]
    assert len(old) == 3 and (old["status"] == "superseded").all()
    assert old["reason"].eq(f"{model} of architecture revision 1; runs of revision 2 exist").all()
    assert frame.loc["ffffffffffffffff", "status"] == "ok"
    assert (frame.loc[frame["model"] != model, "status"] == "ok").all()
    # what the engine reads before training a look or choosing a rate: the current revisions only
    current = of_architecture_revisions(frame, {model: 2})
    assert "ffffffffffffffff" in current.index and not set(old.index) & set(current.index)
    assert len(current) == len(frame) - 3 and len(of_architecture_revisions(frame, {})) == len(frame) - 1


def test_second_edition_runs_that_diverged_are_flagged_and_never_compared(tmp_path):
    """Engine version 2 on: a run whose training loss spiked is excluded (status ``flagged``, with the reason);
    the first pass (engine version 1) keeps such runs ``ok`` and only warns."""
    for version in (1, 2):
        root = tmp_path / f"v{version}"
        write_grid(root, "g", "a", {"a": 60.0, "b": 61.0}, seeds=3)
        for config in (root / "g").glob("*/config.json"):
            config.write_text(json.dumps({**json.loads(config.read_text()), "engine_version": version}))
        spiked = sorted((root / "g").glob("*/result.json"))[0].parent
        (spiked / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "train_loss": loss, "train_top1": 50.0})
                                                      + "\n" for e, loss in ((1, 2.0), (2, 4.5), (3, 1.0))))
        frame = load_results(root).set_index("run_id")
        status = frame.loc[spiked.name, "status"]
        if version == 1:
            assert status == "ok"
        else:
            assert status == "flagged" and frame.loc[spiked.name, "reason"] == (
                "loss spike: epoch 2's training loss 4.50 > 1.2 x ln 10")
            assert (frame.drop(index=spiked.name)["status"] == "ok").all()
            assert analyze(load_results(root), grids=["g"])["summaries"]["n"].sum() == 5  # 6 runs, 1 flagged


def test_load_results_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_results(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no grid folders"):
        load_results(tmp_path)


def test_load_table_csv_and_parquet(tmp_path):
    frame = pd.DataFrame({"grid": ["g"] * 4, "variant": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1],
                          "test_top1": [70.0, 71.0, 72.0, 73.0]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        table = load_table(tmp_path / name, reference="a")
        assert set(table["status"]) == {"ok"} and set(table["reference"]) == {"a"}
        assert analyze(table)["comparisons"]["diff"].iloc[0] == pytest.approx(2.0)
    (tmp_path / "bad.csv").write_text('grid,variant,seed,test_top1\n"g,a,0,70\n')
    with pytest.raises(ValueError, match="bad.csv"):
        load_table(tmp_path / "bad.csv")
    frame.drop(columns="seed").to_csv(tmp_path / "noseed.csv", index=False)
    with pytest.raises(ValueError, match="misses column.*seed"):
        load_table(tmp_path / "noseed.csv")
    (tmp_path / "t.xlsx").write_bytes(b"PK")
    with pytest.raises(ValueError, match=r"\.csv, \.parquet"):
        load_table(tmp_path / "t.xlsx")
    with pytest.raises(FileNotFoundError):
        load_table(tmp_path / "missing.csv")


# --------------------------------------------------------------------------------------------- CLI
def claim_rows(text: str) -> list[str]:
    section = text.split("## First pass: paper claims", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith(("| DyClotNet", "| DCT"))]


def cli(capsys, *args):
    code = run.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("fmt", ["table", "md", "latex", "csv", "json"])
def test_analyze_every_format(results, capsys, fmt):
    code, out, err = cli(capsys, "analyze", "--results", str(results), "--grid", "p-sweep", "--format", fmt)
    assert code == 0, err
    assert "p8" in out and "paper-claim" not in out
    if fmt == "json":
        doc = json.loads(out)
        assert {c["variant"] for c in doc["comparisons"]} == {"p2", "p8"}
        assert all(c["test"] == "paired t-test" for c in doc["comparisons"])


def test_analyze_leaves_learning_rate_searches_out_unless_named(tmp_path, capsys):
    root = tmp_path / "results"
    write_grid(root, "expansion-op", "dct", {"dct": 70.0, "pointwise": 70.2}, seeds=3)
    write_grid(root, "g-lr", "a@lr0.1", {"a@lr0.1": 60.0, "a@lr0.2": 61.0}, seeds=3)
    code, out, err = cli(capsys, "analyze", "--results", str(root), "--format", "json")
    assert code == 0 and {c["grid"] for c in json.loads(out)["comparisons"]} == {"expansion-op"}
    assert "left out the learning-rate searches g-lr" in err
    code, out, _ = cli(capsys, "analyze", "--results", str(root), "--grid", "g-lr", "--format", "json")
    assert code == 0 and {c["grid"] for c in json.loads(out)["comparisons"]} == {"g-lr"}  # named: analysed
    load_results(root).to_csv(tmp_path / "runs.csv", index=False)  # a table without grid.json: its variants tell
    code, out, err = cli(capsys, "analyze", "--csv", str(tmp_path / "runs.csv"), "--format", "json")
    assert code == 0 and {c["grid"] for c in json.loads(out)["comparisons"]} == {"expansion-op"}
    shutil.rmtree(root / "expansion-op")
    code, out, err = cli(capsys, "analyze", "--results", str(root))
    assert code != 0 and "the results hold only learning-rate searches (g-lr)" in err


def test_analyze_csv_input(tmp_path, capsys):
    pd.DataFrame({"grid": ["g"] * 6, "variant": list("aaabbb"), "seed": [0, 1, 2] * 2,
                  "acc_top1": [70, 71, 70.5, 72, 73, 72.5]}).to_csv(tmp_path / "t.csv", index=False)
    code, out, err = cli(capsys, "analyze", "--csv", str(tmp_path / "t.csv"), "--reference", "a",
                         "--metric", "acc_top1", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["comparisons"][0]["diff"] == pytest.approx(2.0)


@pytest.mark.parametrize("args, message", [
    (["analyze", "--grid", "p-swep"], "unknown grid 'p-swep' (did you mean 'p-sweep'?)"),
    (["analyze", "--metric", "top1"], "unknown metric 'top1'"),
    (["analyze", "--format", "markdown"], "unknown format 'markdown'"),
    (["analyze", "--correction", "bonferroni"], "unknown correction 'bonferroni'"),
    (["compare", "p2", "p9"], "unknown variant 'p9'"),
    (["compare", "p2", "p2"], "two different variants"),
    (["report", "--out", "REPORT.txt"], "must be a Markdown file"),
])
def test_bad_input_is_a_one_line_error(results, capsys, args, message):
    code, out, err = cli(capsys, *args, "--results", str(results))
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_missing_results_and_malformed_csv(tmp_path, capsys):
    code, _, err = cli(capsys, "analyze", "--results", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in err
    (tmp_path / "x.csv").write_text("grid,variant\n")
    code, _, err = cli(capsys, "analyze", "--csv", str(tmp_path / "x.csv"))
    assert code == 2 and "misses column(s) seed" in err


def test_compare_two_variants(results, capsys):
    code, out, err = cli(capsys, "compare", "dyclotnet_200", "mobilenetv2_100", "--results", str(results),
                         "--format", "json")
    assert code == 0, err
    comp = json.loads(out)["comparisons"][0]
    assert (comp["variant"], comp["reference"], comp["correction"]) == ("dyclotnet_200", "mobilenetv2_100", "none")
    assert comp["p_adj"] == comp["p_raw"] and comp["n"] == 3


# ------------------------------------------------------------------------------------------ report
def test_report_is_complete_and_byte_identical(results, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "REPORT.md"
    assert cli(capsys, "report", "--results", str(results), "--out", str(out))[0] == 0
    text = out.read_text() + "\n" + (tmp_path / "out" / "REPORT-appendix.md").read_text()
    figures = tmp_path / "out" / "report_figures"
    first = {p.name: p.read_bytes() for p in figures.iterdir()}
    for section in ("## Setup", "### Hardware and software", "### Protocol", "### Data", "## First pass: paper claims",
                    "## Grid `paper-claim`", "## Grid `p-sweep`", "## Grid `smoke`", "## Interpretation choices",
                    "## Limitations", "## Regenerating"):
        assert section in text, section
    assert "CIFAR-10 (JPEG re-encoding)" in text and "`Test CPU x2`" in text
    assert "- Short budget: the `cpu` protocol trains 2 epochs on an unrecorded number of training images" in text
    assert "None of the 19 trained runs is flagged." in text  # Training health: losses 1.0 then 0.5
    assert "the slowest of a network's runs measured 1.00x its fastest" in text  # the fixture's latencies are fixed
    assert f"python run.py analyze --results {results} --grid p-sweep" in text
    assert {"p-sweep_sweep.png", "p-sweep_sweep.pdf", "smoke_seeds.png", "paper-claim_curves.pdf",
            "pareto_macs_cifar10-jpeg.png", "pareto_latency_ms_cifar10-jpeg.pdf"} <= set(first)
    for name in first:
        if name.endswith(".png"):
            assert f"(report_figures/{name})" in text
    claims = claim_rows(text)
    assert len(claims) == 6
    assert "2.90x fewer" in claims[1] and "| supported |" in claims[1]  # 6.1e6 / 2.1e6
    assert "1.40x fewer" in claims[2] and "| supported |" in claims[2]
    assert claims[3].startswith("| DyClotNet 2.0x vs MobileNetV2 1.0x on CIFAR-100: +0.3 points top-1 |")
    assert "| not testable here |" in claims[3] and "a protocol on CIFAR-100 first" in claims[3]
    assert "| no results |" in claims[4] and "| no results |" in claims[5]  # no expansion-op, core-fashion-mnist here
    # rerun: byte-identical report and figures, no stale files
    (figures / "stale.png").write_bytes(b"old")
    assert cli(capsys, "report", "--results", str(results), "--out", str(out))[0] == 0
    assert out.read_text() + "\n" + (tmp_path / "out" / "REPORT-appendix.md").read_text() == text
    assert {p.name: p.read_bytes() for p in figures.iterdir()} == first


def test_report_claims_without_paper_grid(tmp_path):
    from analysis.report import build_report

    root = tmp_path / "results"
    write_grid(root, "expansion-op", "pointwise", {"pointwise": 70.0, "dct": 70.0}, seeds=5, sd=0.1)
    write_grid(root, "r-sweep", "r4", {"r4": 70.0, "r8": 70.0}, seeds=2)
    (root / "r-sweep" / "grid.json").write_text('{"grid": "r-sweep", "refer')  # truncated: no reference
    pages, figures = build_report(root, tmp_path / "R.md")
    text = "\n".join(pages)
    assert "## Grid `r-sweep`\n\nNot analysed: grid 'r-sweep' names no single reference" in text
    claims = claim_rows(text)
    assert len(claims) == 6 and all("| no results |" in line for line in claims[:3] + claims[5:])
    assert "| not testable here |" in claims[3]
    assert "| supported |" in claims[4] and "one-sided 95% lower bound" in claims[4]
    q3 = text.split("### Q3.", 1)[1].split("### Q4.", 1)[0]
    assert "| `expansion-op` | CIFAR-10 (JPEG re-encoding) | `dct` - `pointwise` | 5/5 |" in q3
    assert "(not run, or not finished): `core-fashion-mnist`, `expansion-alternatives`." in q3
    assert "| `r-sweep`" not in text.split("### Q2.", 1)[1].split("### Q3.", 1)[0]  # not analysable: no rows
    assert "](r_figures/expansion-op_seeds.png)" in text
    assert set(figures) == {"expansion-op_seeds", "expansion-op_curves", "pareto_macs_cifar10-jpeg",
                            "pareto_latency_ms_cifar10-jpeg"}


def test_accuracy_claim_verdict_rules():
    from analysis.claims import ClaimReason
    from analysis.paper_claims import Verdict
    from analysis.report import accuracy_claim

    def rows(values):
        return pd.DataFrame({"seed": range(len(values)), "test_top1": values, "paired": False})

    base = rows([70.0, 70.2, 69.8, 70.1, 69.9])
    assert accuracy_claim(rows([70.9, 71.1, 70.8, 71.0, 70.95]), base, 0.9).verdict is Verdict.SUPPORTED
    assert accuracy_claim(rows([70.3, 70.4, 70.2, 70.35, 70.25]), base, 0.9).verdict is Verdict.NOT_SUPPORTED
    unsettled = accuracy_claim(rows([68.0, 73.0, 70.0, 72.5, 69.0]), base, 0.9)
    assert (unsettled.verdict, unsettled.reason) == (Verdict.INCONCLUSIVE, ClaimReason.CI_HAS_ZERO_AND_CLAIM)
    assert unsettled.seeds_needed > 5 and unsettled.sd_upper > 0 and unsettled.n == unsettled.n_ref == 5
    few = accuracy_claim(base.iloc[:1], base, 0.9)
    assert (few.verdict, few.reason, few.n, few.n_ref, few.estimate) == (
        Verdict.INCONCLUSIVE, ClaimReason.FEW_RUNS, 1, 5, None)


def test_cost_claim_says_more_when_the_ratio_is_below_one():
    from analysis.claims import ClaimKind, ClaimRow
    from analysis.paper_claims import Verdict
    from analysis.render import claim_measured
    from analysis.report import cost_claim

    dyclot, mobile = pd.DataFrame({"macs": [111.3e6] * 3}), pd.DataFrame({"macs": [89.5e6] * 3})
    outcome = cost_claim(dyclot, mobile, "macs", 2.9)
    assert outcome.verdict is Verdict.NOT_SUPPORTED and outcome.estimate == pytest.approx(89.5 / 111.3)
    assert outcome.medians == (111.3e6, 89.5e6) and not outcome.varies
    measured = lambda o: claim_measured(ClaimRow("c", ClaimKind.COST, "g", "x", "y", o, 2.9, "macs"))  # noqa: E731
    assert measured(outcome).startswith("1.24x more (")
    assert measured(cost_claim(mobile, dyclot, "macs", None)).startswith("1.24x fewer (")


def _set_epochs(run_dir: Path, losses: list[float], top1: list[float], num_classes: int | None = None) -> None:
    (run_dir / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "train_loss": loss, "train_top1": acc, "test_top1": None}) + "\n"
        for e, (loss, acc) in enumerate(zip(losses, top1, strict=True), start=1)))
    result = json.loads((run_dir / "result.json").read_text())
    if num_classes is not None:
        result["num_classes"] = num_classes
    write_result(run_dir, result)


def test_training_health_flags_loss_spikes_and_runs_that_did_not_learn(tmp_path):
    from analysis.report import build_report
    from evidence.health import training_health

    root = tmp_path / "results"
    write_grid(root, "baselines", "a", {"a": 40.0, "b": 30.0}, seeds=2)
    runs = {(json.loads((d / "result.json").read_text())["variant"], json.loads((d / "result.json").read_text())["seed"]): d
            for d in (root / "baselines").iterdir() if d.is_dir()}
    _set_epochs(runs["a", 0], [2.2, 1.9, 1.7], [20.0, 35.0, 45.0], num_classes=10)  # healthy
    _set_epochs(runs["a", 1], [2.25, 2.0, 1.8], [18.0, 30.0, 40.0])                 # healthy, classes by dataset
    _set_epochs(runs["b", 0], [2.2, 4.1, 2.1], [12.0, 11.0, 30.0], num_classes=10)  # spike at epoch 2
    _set_epochs(runs["b", 1], [5.4, 2.31, 2.30], [9.0, 10.0, 10.5], num_classes=10)  # spike, never learned
    frame = load_results(root)
    health = training_health(frame, load_curves(root, frame)).set_index(["variant", "seed"])
    assert not health.loc[("a", 0), "spike"] and not health.loc[("a", 1), "not_learned"]
    assert health.loc[("b", 0), "spike"] and health.loc[("b", 0), "peak_epoch"] == 2
    assert not health.loc[("b", 0), "not_learned"]
    assert health.loc[("b", 1), "spike"] and health.loc[("b", 1), "not_learned"]
    text = build_report(root, tmp_path / "R.md")[0].appendix
    section = text.split("## Training health", 1)[1].split("\n## ", 1)[0]
    assert "2 of 4 trained runs are flagged, in `baselines` `b` (2 of 2 runs)" in section
    assert "| baselines | b | 1 | loss spike, did not learn | 5.40 | 5.40 (1) | 2.30 | 2.30 | 10.5 |" in section
    assert "| a |" not in section
    q4 = text.split("### Q4.", 1)[1].split("### Q5.", 1)[0]
    assert "- Training health: flagged runs in `baselines` `b` (2 of 2 runs)" in q4
    assert "the Pareto front of `baselines`" in q4 and "Not answered yet" in q4  # lr-check absent


def test_training_health_leaves_unknown_class_counts_unflagged(tmp_path):
    from evidence.health import training_health

    root = tmp_path / "results"
    write_grid(root, "smoke", "a", {"a": 40.0}, seeds=1, dataset="my-own-data")
    _set_epochs(next(d for d in (root / "smoke").iterdir() if d.is_dir()), [9.0, 8.0], [5.0, 5.0])
    frame = load_results(root)
    health = training_health(frame, load_curves(root, frame))
    assert len(health) == 1 and pd.isna(health.loc[0, "spike"]) and pd.isna(health.loc[0, "not_learned"])


def test_accuracy_against_cost_has_one_figure_per_dataset(tmp_path):
    from analysis.report import build_report

    root = tmp_path / "results"
    write_grid(root, "expansion-op", "dct", {"dct": 36.0, "pointwise": 38.0})
    write_grid(root, "core-fashion-mnist", "dct", {"dct": 80.0, "pointwise": 81.0}, dataset="fashion-mnist")
    pages, figures = build_report(root, tmp_path / "R.md")
    text = "\n".join(pages)
    assert {f"pareto_{c}_{d}" for c in ("macs", "latency_ms") for d in ("cifar10-jpeg", "fashion-mnist")} <= set(figures)
    assert "against macs on fashion-mnist (core-fashion-mnist)" in text
    assert "against macs on cifar10-jpeg (expansion-op)" in text


def test_report_names_the_reading_that_reproduces_both_published_costs(results):
    from analysis.report import build_report

    row = {"dyclotnet_200 reading": "default", "dyclot_params": 1, "dyclot_macs": 1, "mobilenet_params": 1,
           "mobilenet_macs": 1}
    (results / "claim_costs.json").write_text(json.dumps([
        {**row, "mobilenetv2_100 reading": "ends at 8x8", "params_ratio": 1.372, "macs_ratio": 2.806,
         "params_match": True, "macs_match": True},
        {**row, "mobilenetv2_100 reading": "ends at 4x4", "params_ratio": 1.372, "macs_ratio": 0.84,
         "params_match": True, "macs_match": False}]))
    text = build_report(results, results.parent / "R.md")[0].appendix
    assert "Both published ratios are reproduced only by: default against ends at 8x8." in text
    assert "| default | ends at 4x4 | 1.37x (matches) | 0.84x |" in text
    (results / "claim_costs.json").write_text("[{}]")
    with pytest.raises(ValueError, match="claim_costs.json' is not a claim-costs file"):
        build_report(results, results.parent / "R.md")
