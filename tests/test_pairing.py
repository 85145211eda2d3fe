"""What makes two runs a pair: every setting of config.json and the numerics of env.json match, except the seed, the
run id, the derived seeds and the networks' own identity and learning rate (each chosen on its own search); one
network's seeds match in every setting, its rate included. A rerun under other settings is refused and reported."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis.compare import analyze
from analysis.looks import decision_records
from analysis.render import render_looks
from analysis.second_edition import glance_rows
from evidence.decisions import PairingError, paired_differences
from evidence.load import load_results
from tests.test_until_decided import decide_and_train

GRID, PROTOCOL, REFERENCE = "replicator-vs-recalibrator", "cpu-full", "dct"  # question (a)'s grid
LR = {"dct": 0.4, "replicator": 0.2}


def write_run(root: Path, variant: str, seed: int, top1: float, run_id: str | None = None, **changes) -> str:
    """A finished run whose config.json and env.json record its settings; ``changes``: protocol fields (``lr``,
    ``epochs``...) or ``device``."""
    protocol = {"name": PROTOCOL, "dataset": "cifar10-jpeg", "epochs": 15, "batch_size": 128, "lr": LR[variant],
                "momentum": 0.9, "weight_decay": 5e-4}
    protocol.update({k: v for k, v in changes.items() if k in protocol})
    config = {"grid": GRID, "variant": variant, "model": "dyclotnet_050", "model_kwargs": {}, "dataset": "cifar10-jpeg",
              "protocol": protocol, "seed": seed, "vary": "all", "seeds": {"init": seed, "data": seed, "aug": seed},
              "engine_version": 2}
    run_id = run_id or f"{variant}-{seed:04d}"
    config["run_id"] = run_id
    env = {"packages": {"torch": "2.14.1"}, "torch_threads": 1 + seed % 2, "data_sha256": "abc",  # threads: not a setting
           "runtime": {"device": changes.get("device", "cpu"), "deterministic": True, "compile": False,
                       "channels_last": True}}
    run_dir = root / GRID / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (root / GRID / "grid.json").write_text(json.dumps({"grid": GRID, "reference": REFERENCE, "paired": True}))
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "env.json").write_text(json.dumps(env))
    (run_dir / "result.json").write_text(json.dumps({
        "run_id": run_id, "grid": GRID, "variant": variant, "seed": seed, "model": "dyclotnet_050", "dataset": "d",
        "protocol": PROTOCOL, "status": "ok", "reason": None, "metrics": {"test_top1": top1},
        "cost": {"params": 1, "macs": 1, "latency_ms": 1.0}}))
    return run_id


def pairs(root: Path, n: int = 3, **changes) -> None:
    for seed in range(n):
        write_run(root, REFERENCE, seed, 80.0)
        write_run(root, "replicator", seed, 79.0 + 0.1 * seed, **changes)


def diffs(root: Path, n: int = 3):
    return paired_differences(load_results(root), GRID, PROTOCOL, "replicator", REFERENCE, n, 2)


def test_a_pair_may_differ_in_its_networks_rates_and_thread_counts_only(tmp_path):
    pairs(tmp_path)  # dct at 0.4, replicator at 0.2, threads 1 or 2 by seed
    assert diffs(tmp_path).tolist() == pytest.approx([-1.0, -0.9, -0.8])


@pytest.mark.parametrize(("change", "named"), [({"epochs": 10}, "protocol.epochs (10, 15)"),
                                               ({"batch_size": 64}, "protocol.batch_size (128, 64)"),
                                               ({"device": "cuda"}, "environment.runtime.device (\"cpu\", \"cuda\")")])
def test_a_pair_whose_settings_differ_is_refused_naming_the_setting(tmp_path, change, named):
    pairs(tmp_path, **change)
    with pytest.raises(PairingError, match="`replicator` and `dct` differ in") as error:
        diffs(tmp_path)
    assert named in str(error.value)


def test_one_networks_seeds_must_share_every_setting_its_rate_included(tmp_path):
    pairs(tmp_path)
    shutil.rmtree(tmp_path / GRID / "replicator-0002")  # seed 2 of replicator trained at another rate instead
    write_run(tmp_path, "replicator", 2, 79.2, lr=0.8)
    assert diffs(tmp_path, 2) is not None  # seeds 0-1 still pair
    with pytest.raises(PairingError, match=r"`replicator`'s seeds differ in lr \(0.2, 0.8\)"):
        diffs(tmp_path, 3)


def test_a_rerun_of_one_seed_under_other_settings_is_a_conflict_never_chosen_silently(tmp_path):
    pairs(tmp_path)
    again = write_run(tmp_path, "replicator", 1, 85.0, run_id="0000-rerun", lr=0.8, epochs=30)
    frame = load_results(tmp_path)
    status = frame.set_index("run_id")["status"]
    assert status[[again, "replicator-0001"]].tolist() == ["conflict", "conflict"] and (status == "ok").sum() == 5
    reason = frame.set_index("run_id").loc[again, "reason"]
    assert "protocol.epochs (15, 30)" in reason and "lr (0.2, 0.8)" in reason
    assert diffs(tmp_path, 1) is not None and diffs(tmp_path, 2) is None  # seed 1 has no usable replicator run
    excluded = analyze(frame, grids=[GRID])["excluded"].set_index("run_id")  # reported with the report's excluded runs
    assert excluded.loc[again, "status"] == "conflict" and "protocol.epochs" in excluded.loc[again, "reason"]
    # the same settings twice (a copy under another folder name): a plain duplicate, the smallest run id kept
    write_run(tmp_path, REFERENCE, 0, 80.0, run_id="zz-copy")
    assert load_results(tmp_path).set_index("run_id").loc[["dct-0000", "zz-copy"], "status"].tolist() == ["ok", "duplicate"]


def test_a_recorded_design_whose_runs_no_longer_pair_is_refused_and_reported(tmp_path):
    def train(n: int, variants: list[str]) -> None:
        for seed in range(n):
            write_run(tmp_path, REFERENCE, seed, 80.0)
            for variant in variants:
                write_run(tmp_path, variant, seed, 76.0 + 0.1 * seed)

    decide_and_train(GRID, REFERENCE, ["replicator"], PROTOCOL, tmp_path, 12, 0.5, train)
    for seed in range(5):  # the reference's runs replaced by runs at another number of epochs
        shutil.rmtree(tmp_path / GRID / f"dct-{seed:04d}")
        write_run(tmp_path, REFERENCE, seed, 80.0, epochs=30)
    frame = load_results(tmp_path)
    (record,) = decision_records(tmp_path, frame, 2)
    assert record.comparisons == () and "protocol.epochs (15, 30)" in record.refused
    assert "No look is shown" in "\n".join(render_looks((record,), "figs"))
    (row,) = [r for r in glance_rows(tmp_path, frame, (), (record,)) if r.variant == "replicator"]
    assert "protocol.epochs (15, 30)" in row.pairing_problem
    with pytest.raises(PairingError):  # ablate --until-decided stops rather than decide from them
        decide_and_train(GRID, REFERENCE, ["replicator"], PROTOCOL, tmp_path, 12, 0.5, train)
