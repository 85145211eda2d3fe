"""`run.py list | show | ablate | status | train` through ``run.main``, and every bad-input path."""
from __future__ import annotations

import json

import pytest

import run
from experiments import grids

TINY = grids.Grid("tiny", "Two tiny test networks.", "a",
                  {"a": grids.Variant("engine_test_net"), "b": grids.Variant("engine_test_net", {"width": 4}),
                   "future": grids.Variant("engine_test_net_v2", optional=True)}, protocol="smoke")
FAST = ["--threads", "1", "--wandb", "off", "--device", "cpu", "--import", "conftest"]


@pytest.fixture(autouse=True)
def tiny_grid(monkeypatch):
    monkeypatch.setitem(grids.GRIDS, "tiny", TINY)


def test_list_and_show(capsys):
    assert run.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("replicator-vs-recalibrator", "p-sweep", "r-sweep", "expansion-op", "expansion-alternatives",
                 "core-fashion-mnist", "baselines", "paper-claim", "lr-check", "paper-claim-lr", "smoke"):
        assert name in out
    assert run.main(["show", "tiny", "--seeds", "2", "--import", "conftest"]) == 0
    out = capsys.readouterr().out
    assert "4 runs (2 variants x 2 seeds)" in out and "left out" in out and "engine_test_net_v2" in out


def test_named_grids_resolve():
    assert [v.model_kwargs["p"] for v in grids.GRIDS["p-sweep"].variants.values()] == [1, 2, 4, 8]
    assert [v.model_kwargs["r"] for v in grids.GRIDS["r-sweep"].variants.values()] == [1, 2, 4, 8, 16]
    for grid in grids.GRIDS.values():
        assert grid.reference in grid.variants
    configs, _ = grids.resolve(grids.GRIDS["smoke"], seeds=2)
    assert {c.dataset for c in configs} == {"fashion-mnist"} and len(configs) == 4
    configs, _ = grids.resolve(grids.GRIDS["smoke"], protocol="smoke", seeds=2)
    assert {c.dataset for c in configs} == {"synthetic"} and len(configs) == 4


def test_the_smoke_grid_falls_back_to_synthetic_data_in_one_line_where_fashion_mnist_is_absent(tmp_path, monkeypatch,
                                                                                                capsys):
    import dataclasses

    from experiments import data
    from experiments.cli import grid_protocol
    from experiments.config import Runtime

    spec = dataclasses.replace(data.DATASETS["fashion-mnist"], defaults=(tmp_path / "none",))
    monkeypatch.setitem(data.DATASETS, "fashion-mnist", spec)
    monkeypatch.delenv("DYCLOT_DATA", raising=False)
    monkeypatch.setenv("DYCLOT_CACHE", str(tmp_path / "cache"))
    assert grid_protocol(grids.GRIDS["smoke"], Runtime(wandb="off")) == "smoke"
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "fashion-mnist is not installed" in said[0] and "synthetic" in said[0]
    assert grid_protocol(grids.GRIDS["p-sweep"], Runtime(wandb="off")) == "cpu"  # no fallback: the data check decides
    from experiments import runs  # status and show read the grid as ablate trains it: under its fallback
    runs.show_grid("smoke", None, 3, None, ())
    assert "protocol: smoke; dataset: synthetic" in capsys.readouterr().out
    runs.grid_status("smoke", protocol=None, seeds=3, dataset=None, results=tmp_path, vary="all", plugins=())
    shown = capsys.readouterr().out
    fallback_runs = grids.resolve(grids.GRIDS["smoke"], protocol="smoke", seeds=3)[0]
    assert all(c.run_id in shown for c in fallback_runs) and "to do 6" in shown
    # with the --data-root ablate was given, they read the grid's own protocol, as ablate trains it there
    (tmp_path / "fashion-mnist").mkdir()  # a --data-root that does not exist is refused, as by ablate
    runs.grid_status("smoke", protocol=None, seeds=3, dataset=None, results=tmp_path, vary="all", plugins=(),
                     data_root=tmp_path / "fashion-mnist")
    shown = capsys.readouterr().out
    own_runs = grids.resolve(grids.GRIDS["smoke"], protocol=grids.GRIDS["smoke"].protocol, seeds=3, check=False)[0]
    assert all(c.run_id in shown for c in own_runs) and not any(c.run_id in shown for c in fallback_runs)
    runs.show_grid("smoke", None, 3, None, (), tmp_path / "fashion-mnist")
    assert f"protocol: {grids.GRIDS['smoke'].protocol}; dataset: fashion-mnist" in capsys.readouterr().out
    assert grid_protocol(grids.GRIDS["smoke"], Runtime(wandb="off"), "cpu", None) == "cpu"  # a named protocol wins
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("protocol", ["cpu", "paper"])
def test_lr_check_halves_the_protocols_learning_rate_and_an_explicit_lr_wins(protocol):
    full = grids.resolve(grids.GRIDS["baselines"], protocol=protocol, check=False)[0][0].protocol.lr
    halved = grids.resolve(grids.GRIDS["lr-check"], protocol=protocol, check=False)[0]
    assert {c.protocol.lr for c in halved} == {full / 2}
    assert {c.protocol.lr for c in grids.resolve(grids.GRIDS["paper-claim-lr"], protocol=protocol, check=False)[0]} == {full / 2}
    from experiments.reuse import computation_key
    at_full_rate = {computation_key(c) for c in grids.resolve(grids.GRIDS["baselines"], protocol=protocol)[0]}
    assert not ({computation_key(c) for c in halved} - {None}) & at_full_rate  # never copied from a full-rate twin
    explicit = grids.resolve(grids.GRIDS["lr-check"], protocol=protocol, check=False, lr=0.01)[0]
    assert {c.protocol.lr for c in explicit} == {0.01}


def test_ablate_twice_trains_once_then_status(tmp_path, capsys):
    args = ["ablate", "tiny", "--seeds", "2", "--results", str(tmp_path), *FAST]
    assert run.main(args) == 0
    assert "4 trained now" in capsys.readouterr().out
    grid = json.loads((tmp_path / "tiny" / "grid.json").read_text())
    assert grid["reference"] == "a" and set(grid["variants"]) == {"a", "b"} and "future" in grid["left_out"]
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("tiny/*/result.json")}
    assert len(stamps) == 4
    assert run.main(args) == 0
    assert "0 trained now" in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.glob("tiny/*/result.json")}
    assert run.main(["status", "tiny", "--seeds", "3", "--results", str(tmp_path)]) == 0
    assert "ok 4, running 0, failed 0, partial 0, to do 2" in capsys.readouterr().out


def test_ablate_refuses_to_train_runs_that_would_never_pair_with_a_folders_finished_ones(tmp_path, capsys):
    """Runs whose numerics (evidence.load.PAIR_ENVIRONMENT: device, torch, compile, ...) differ from a folder's
    finished runs never pair with them: refused before anything trains, whatever the seeds asked."""
    args = ["ablate", "tiny", "--seeds", "1", "--results", str(tmp_path), *FAST]
    assert run.main(args) == 0
    first = sorted(tmp_path.glob("tiny/*/env.json"))[0]
    env = json.loads(first.read_text())
    env["packages"]["torch"] = "2.0.0"  # as if trained under another torch
    first.write_text(json.dumps(env))
    assert run.main([*args[:3], "2", *args[4:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert f'packages.torch "2.0.0" in 1 run(s) (e.g. {first.parent.name})' in err and "never pair" in err
    assert len(list(tmp_path.glob("tiny/*/config.json"))) == 2  # the second seed did not start


def test_ablate_refuses_to_mix_runs_of_another_protocol_into_a_grid_and_deletes_nothing(tmp_path, capsys, monkeypatch):
    args = ["ablate", "tiny", "--seeds", "1", "--results", str(tmp_path), *FAST]
    assert run.main(args) == 0
    finished = sorted(tmp_path.glob("tiny/*/result.json"))
    monkeypatch.setitem(grids.GRIDS, "tiny", grids.Grid(**{**TINY.__dict__, "lr_scale": 0.5}))  # as after tuning
    assert run.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "already holds finished runs" in err and "(a, seed 0): lr 0.05 (now 0.025)" in err
    assert sorted(tmp_path.glob("tiny/*/result.json")) == finished and len(finished) == 2
    assert run.main([*args[:2], "--seeds", "1", "--results", str(tmp_path / "other"), *FAST]) == 0


def test_train_single_run(tmp_path, capsys):
    args = ["train", "engine_test_net", "--kw", "width=4", "--protocol", "smoke", "--epochs", "1", "--seed", "3",
            "--results", str(tmp_path), *FAST]
    assert run.main(args) == 0
    (result,) = [json.loads(p.read_text()) for p in tmp_path.glob("train/*/result.json")]
    assert result["seed"] == 3 and result["model_kwargs"] == {"width": 4} and result["metrics"]["epochs"] == 1
    assert "engine_test_net,width=4" in json.loads((tmp_path / "train" / "grid.json").read_text())["variants"]


@pytest.mark.parametrize("args, message", [
    (["ablate", "smok"], "unknown grid 'smok'; did you mean 'smoke'"),
    (["show", "p-swep"], "did you mean 'p-sweep'"),
    (["status", "nope"], "unknown grid 'nope'"),
    (["ablate", "tiny", "--protocol", "smoek"], "unknown protocol 'smoek'; did you mean 'smoke'"),
    (["ablate", "tiny", "--dataset", "cifar-10"], "unknown dataset 'cifar-10'; did you mean"),
    (["ablate", "tiny", "--executor", "slurm"], "unknown executor 'slurm'"),
    (["ablate", "tiny", "--wandb", "maybe"], "unknown wandb mode 'maybe'"),
    (["ablate", "tiny", "--vary", "augment"], "unknown seed source 'augment'; did you mean 'aug'"),
    (["ablate", "tiny", "--device", "tpu"], "unknown device 'tpu'"),
    (["ablate", "tiny", "--step", "graphs"], "unknown --step 'graphs'"),
    (["ablate", "tiny", "--step", "cuda-graphs", "--device", "cpu"], "--step cuda-graphs replays the step as CUDA graphs"),
    (["train", "engine_test_net", "--step", "cuda-graphs", "--device", "cpu"], "--device cpu is not one here"),
    (["ablate", "tiny", "--address", "auto"], "--address 'auto' needs --executor ray"),
    (["ablate", "tiny", "--data-root", "/no/such/place"], "--data-root /no/such/place does not exist"),
    (["status", "smoke", "--data-root", "/no/such/place"], "--data-root /no/such/place does not exist"),
    (["show", "smoke", "--data-root", "/no/such/place"], "--data-root /no/such/place does not exist"),
    (["ablate", "tiny", "--dataset", "fashion-mnist", "--data-root", "{tmp}"], "fashion-mnist data not found; looked in"),
    (["ablate", "tiny", "--results", "{tmp}/file/results"], "is not writable"),
    (["train", "engine_test_nett"], "model 'engine_test_nett' is not registered; close matches: engine_test_net"),
    (["train", "engine_test_net", "--kw", "width"], "--kw 'width' is not KEY=VALUE"),
    (["train", "engine_test_net", "--kw", "width=wide"], "variant 'engine_test_net,width=wide' cannot be built"),
])
def test_bad_input_is_a_one_line_error(tmp_path, capsys, args, message):
    (tmp_path / "file").write_text("")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    extra = ["--import", "conftest"] if args[0] != "status" else []
    if args[0] in ("ablate", "train") and "--results" not in args:
        extra += ["--results", str(tmp_path / "results")]
    assert run.main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_only_the_cuda_graphs_step_probes_for_a_cuda_device(monkeypatch):
    """Commands that read results (``status``, ``show``) and CPU runs never touch CUDA to check the step."""
    import torch

    from experiments.config import check_step

    def no_probe():
        raise AssertionError("CUDA probed")

    monkeypatch.setattr(torch.cuda, "is_available", no_probe)
    for step in ("eager", "compiled", False):
        check_step(step, "auto")
    with pytest.raises(AssertionError, match="CUDA probed"):
        check_step("cuda-graphs", "auto")


@pytest.mark.parametrize("option", ["--seeds", "--workers", "--threads"])
@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_numbers_are_validated(capsys, option, value):
    assert run.main(["ablate", "tiny", option, value]) == 2
    assert option in capsys.readouterr().err


def test_study_runs_its_plan_writes_it_and_goes_past_a_grid_that_fails(tmp_path, capsys, monkeypatch):
    unbuildable = grids.Grid("unbuildable", "A required variant that cannot be built.", "a",
                             {"a": grids.Variant("no_such_model_anywhere")}, protocol="smoke")
    monkeypatch.setitem(grids.GRIDS, "unbuildable", unbuildable)
    monkeypatch.setattr(grids, "STUDY", {"unbuildable": 1, "tiny": 2})
    args = ["study", "--results", str(tmp_path), *FAST]
    assert run.main(args) == 1  # the first grid failed, the second still ran
    out = " ".join(capsys.readouterr().out.split())
    assert "error in grid unbuildable" in out and "4 trained now" in out and "grids with failed runs: unbuildable" in out
    assert len(list(tmp_path.glob("tiny/*/result.json"))) == 4
    plan = json.loads((tmp_path / "study.json").read_text())
    assert plan == {"grids": [{"grid": "unbuildable", "seeds": 1, "protocol": "smoke"},
                              {"grid": "tiny", "seeds": 2, "protocol": "smoke"}]}
    assert run.main(args + ["--only", "tiny"]) == 0 and "0 trained now" in capsys.readouterr().out
    before = (tmp_path / "study.json").read_text()
    assert run.main(args + ["--protocol", "nope"]) == 2 and (tmp_path / "study.json").read_text() == before
    assert run.main(args + ["--only", "nope"]) == 2


def test_study_until_decided_tunes_then_adds_seeds_per_grid_in_the_second_editions_order(tmp_path, capsys, monkeypatch):
    from study import grids as study_grids
    from study import questions

    unbuildable = grids.Grid("unbuildable", "A grid whose network is not registered.", "a",
                             {"a": grids.Variant("no_such_model_anywhere")}, protocol="smoke")
    monkeypatch.setitem(grids.GRIDS, "unbuildable", unbuildable)
    monkeypatch.setattr(questions, "SECOND_EDITION", ("unbuildable", "tiny"))
    monkeypatch.setattr(study_grids, "LR_CANDIDATES", (0.02, 0.05))
    monkeypatch.setattr(study_grids, "LR_EXTENSIONS", 0)  # 2 candidates: every best rate is an edge
    args = ["study", "--until-decided", "--results", str(tmp_path), *FAST]
    assert run.main(args) == 2 and "needs --protocol" in capsys.readouterr().err
    assert run.main([*args, "--protocol", "smoke", "--max-seeds", "3"]) == 1  # the first grid failed, the second ran
    out = " ".join(capsys.readouterr().out.split())
    assert "error in grid unbuildable" in out and "grids with failed runs: unbuildable" in out
    chosen = json.loads((tmp_path / "tiny-lr" / "chosen.json").read_text())
    assert chosen["protocol"] == "smoke" and set(chosen["variants"]) == {"a", "b"}
    assert len(list(tmp_path.glob("tiny-lr/*/result.json"))) == 2 * 2 * 2  # candidates x seeds x variants
    decisions = json.loads((tmp_path / "tiny" / "sequential.json").read_text())
    assert decisions["schedule"] == [3] and len(list(tmp_path.glob("tiny/*/result.json"))) == 2 * 3
    lrs = {json.loads(p.read_text())["protocol"]["lr"] for p in tmp_path.glob("tiny/*/config.json")}
    assert lrs <= {0.02, 0.05}  # the main runs train at the rates chosen on validation
    assert not (tmp_path / "study.json").exists()  # that is the first edition's fixed plan



def test_until_decided_compares_only_the_named_variants_and_trains_no_other(tmp_path, capsys, monkeypatch):
    """A question that names its comparison (`--compare`, as `study --until-decided` passes a question's own
    variant) splits alpha over it alone, and the grid's other variants get no main runs."""
    three = grids.Grid("three", "Three tiny test networks.", "a", {
        "a": grids.Variant("engine_test_net"), "b": grids.Variant("engine_test_net", {"width": 4}),
        "c": grids.Variant("engine_test_net", {"width": 2})}, protocol="smoke")
    monkeypatch.setitem(grids.GRIDS, "three", three)
    args = ["ablate", "three", "--results", str(tmp_path), *FAST]
    assert run.main([*args, "--compare", "b"]) == 2 and "--compare b needs --until-decided" in capsys.readouterr().err
    assert run.main([*args, "--until-decided", "--compare", "nope"]) == 2
    assert "unknown variant of grid three to compare with a 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "three").exists()  # refused before anything trained
    assert run.main([*args, "--until-decided", "--max-seeds", "3", "--compare", "b"]) == 0
    decisions = json.loads((tmp_path / "three" / "sequential.json").read_text())
    assert set(decisions["variants"]) == {"b"}
    assert run.main([*args, "--until-decided", "--max-seeds", "3"]) == 2  # every variant: another design, refused
    assert "--compare b (the recorded design)" in capsys.readouterr().err
    trained = {json.loads(p.read_text())["variant"] for p in tmp_path.glob("three/*/result.json")}
    assert trained == {"a", "b"} and len(list(tmp_path.glob("three/*/result.json"))) == 2 * 3


def test_a_questions_search_tunes_only_the_networks_it_compares(tmp_path, capsys, monkeypatch):
    """`tune --compare` (and `study --until-decided`, with each question's own comparison) searches the reference
    and the compared variants only: the same budget for each network compared, none for a network never trained."""
    from study import grids as study_grids
    from study import questions

    three = grids.Grid("three", "Three tiny test networks.", "a", {
        "a": grids.Variant("engine_test_net"), "b": grids.Variant("engine_test_net", {"width": 4}),
        "c": grids.Variant("engine_test_net", {"width": 2})}, protocol="smoke")
    monkeypatch.setitem(grids.GRIDS, "three", three)
    tune = ["tune", "three", "--protocol", "smoke", "--candidates", "0.02,0.05", "--seeds", "1", *FAST]
    assert run.main([*tune, "--results", str(tmp_path / "nope"), "--compare", "d"]) == 2
    assert "unknown variant of grid three to compare with a 'd'" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()
    assert run.main([*tune, "--results", str(tmp_path / "tune"), "--compare", "c"]) == 0
    searched = {json.loads(p.read_text())["variant"].partition("@")[0] for p in tmp_path.glob("tune/three-lr/*/config.json")}
    assert searched == {"a", "c"}
    assert set(json.loads((tmp_path / "tune" / "three-lr" / "chosen.json").read_text())["variants"]) == {"a", "c"}
    assert {v.partition("@")[0] for v in json.loads((tmp_path / "tune" / "three-lr" / "grid.json").read_text())[
        "variants"]} == {"a", "c"}
    # b has no rate chosen on validation: a plain ablate of the grid is refused before anything trains, and a
    # search of other networks would silently replace the recorded choice: refused too
    assert run.main(["ablate", "three", "--protocol", "smoke", "--seeds", "1", "--results", str(tmp_path / "tune"),
                     *FAST]) == 2
    assert "b would train at a rate not chosen on validation" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "tune" / "three").exists()
    assert run.main([*tune, "--results", str(tmp_path / "tune")]) == 2
    assert "chosen by a search of a, c; this search is of a, b, c" in " ".join(capsys.readouterr().err.split())
    assert run.main(["ablate", "three", "--protocol", "smoke", "--until-decided", "--max-seeds", "3", "--compare", "c",
                     "--results", str(tmp_path / "tune"), *FAST]) == 0
    assert set(json.loads((tmp_path / "tune" / "three" / "grid.json").read_text())["variants"]) == {"a", "c"}

    monkeypatch.setattr(questions, "SECOND_EDITION_QUESTIONS", (questions.CoreQuestion("x", "?", "three", "b"),))
    monkeypatch.setattr(questions, "SECOND_EDITION", ("three",))
    monkeypatch.setattr(study_grids, "LR_CANDIDATES", (0.02, 0.05))
    monkeypatch.setattr(study_grids, "LR_EXTENSIONS", 0)
    monkeypatch.setattr(study_grids, "TUNING_SEEDS", 1)
    assert run.main(["study", "--until-decided", "--protocol", "smoke", "--max-seeds", "3",
                     "--results", str(tmp_path / "study"), *FAST]) == 0
    trained = {json.loads(p.read_text())["variant"].partition("@")[0] for p in (tmp_path / "study").glob("*/*/config.json")}
    assert trained == {"a", "b"}  # c: neither searched nor trained
    assert set(json.loads((tmp_path / "study" / "three-lr" / "chosen.json").read_text())["variants"]) == {"a", "b"}


def test_a_search_with_a_run_still_running_elsewhere_chooses_nothing_and_the_study_waits(tmp_path, capsys, monkeypatch):
    from experiments.store import RunStore
    from experiments.tuning import TUNING_FIRST_SEED, tuning_grid
    from study import grids as study_grids
    from study import questions

    monkeypatch.setattr(study_grids, "LR_CANDIDATES", (0.02, 0.05))
    monkeypatch.setattr(study_grids, "TUNING_SEEDS", 1)
    monkeypatch.setattr(study_grids, "LR_EXTENSIONS", 0)  # 2 candidates: every best rate is an edge
    monkeypatch.setattr(questions, "SECOND_EDITION", ("tiny",))
    search, _ = grids.resolve(tuning_grid(TINY, (0.02, 0.05)), "smoke", 1, plugins=("conftest",),
                              first_seed=TUNING_FIRST_SEED)
    held = RunStore.of(tmp_path, next(c for c in search if c.variant == "a@lr0.05"))
    held.dir.mkdir(parents=True)
    with held.lock.acquire():  # another process trains this search run
        assert run.main(["tune", "tiny", "--protocol", "smoke", "--candidates", "0.02,0.05", "--seeds", "1",
                         "--results", str(tmp_path), *FAST]) == 1
        out = " ".join(capsys.readouterr().out.split())
        assert "no learning rate chosen for a: a search run is training in another process" in out and "b: lr " in out
        assert not (tmp_path / "tiny-lr" / "chosen.json").exists()  # a partial choice is never written
        assert run.main(["study", "--until-decided", "--protocol", "smoke", "--max-seeds", "3",
                         "--results", str(tmp_path), *FAST]) == 1
        assert not (tmp_path / "tiny").exists()  # no main run trained at a rate that was not chosen
    assert run.main(["study", "--until-decided", "--protocol", "smoke", "--max-seeds", "3",
                     "--results", str(tmp_path), *FAST]) == 0
    assert set(json.loads((tmp_path / "tiny-lr" / "chosen.json").read_text())["variants"]) == {"a", "b"}


def test_recount_fixes_the_macs_of_an_older_counter_and_nothing_else(tmp_path, capsys, monkeypatch):
    assert run.main(["ablate", "tiny", "--seeds", "1", "--results", str(tmp_path), *FAST]) == 0
    paths = sorted(tmp_path.glob("tiny/*/result.json"))
    first = [json.loads(p.read_text()) for p in paths]
    assert len(first) == 2 and all(r["cost"]["macs_counter"] == 2 and r["cost"]["macs"] > 0 for r in first)
    old = {**first[0], "cost": {"params": first[0]["cost"]["params"], "macs": 1, "latency_ms": 0.5}}  # counter 1
    alien = {**first[1], "cost": {**first[1]["cost"], "params": first[1]["cost"]["params"] + 1}}
    del alien["cost"]["macs_counter"]
    paths[0].write_text(json.dumps(old))
    paths[1].write_text(json.dumps(alien))
    capsys.readouterr()
    assert run.main(["recount", "--results", str(tmp_path)]) == 1  # one run could not be recounted
    out = capsys.readouterr().out
    assert "1 run(s) recounted, 1 left unchanged" in out and "params differ" in out
    assert json.loads(paths[0].read_text()) == {**old, "cost": {**old["cost"], "macs": first[0]["cost"]["macs"],
                                                                 "macs_counter": 2}}
    assert json.loads(paths[1].read_text()) == alien
    assert run.main(["recount", "--results", str(tmp_path / "missing")]) != 0
    paths[0].write_text(json.dumps(old))  # a full disk: the run's result.json stays as it was, the next call goes on

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("evidence.files.os.replace", full)
    capsys.readouterr()
    assert run.main(["recount", "--results", str(tmp_path)]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "the disk is full" in err and "`run.py recount` goes on from this run" in err and "resume" not in err
    assert json.loads(paths[0].read_text()) == old


def test_tune_widens_the_search_for_every_network_where_a_best_rate_is_an_edge(tmp_path, capsys):
    # 2 candidates: every best rate is an edge, so the search is widened once (LR_EXTENSIONS) on each side a
    # best rate lies, for both networks alike, and the choice is made among all the rates searched
    assert run.main(["tune", "tiny", "--protocol", "smoke", "--candidates", "0.02,0.05", "--seeds", "1",
                     "--results", str(tmp_path), *FAST]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "a best rate is an edge of 0.02, 0.05: every network is also searched at" in out
    chosen = json.loads((tmp_path / "tiny-lr" / "chosen.json").read_text())
    rates = {network: sorted(entry["val_top1"], key=float) for network, entry in chosen["variants"].items()}
    assert rates["a"] == rates["b"] and len(rates["a"]) in (3, 4) and {"0.02", "0.05"} < set(rates["a"])
    assert set(rates["a"]) <= {"0.008", "0.02", "0.05", "0.125"}  # one step of the grid's ratio beyond each edge
    variants = json.loads((tmp_path / "tiny-lr" / "grid.json").read_text())["variants"]
    assert len(variants) == 2 * len(rates["a"])
    assert len(list(tmp_path.glob("tiny-lr/*/result.json"))) == 2 * len(rates["a"])


def test_a_grids_search_starts_where_the_design_says_under_its_protocol_unless_candidates_are_given(tmp_path, monkeypatch):
    from study import grids as study_grids

    # the written design (docs/study.md, section 2): (e) and (f) start at 0.1-0.8 under cpu-full, all else at 0.025-0.2
    assert study_grids.search_candidates("p-sweep", "cpu-full") == study_grids.search_candidates(
        "r-sweep", "cpu-full") == (0.1, 0.2, 0.4, 0.8)
    assert study_grids.search_candidates("p-sweep", "gpu") == study_grids.search_candidates(
        "norm-placement", "cpu-full") == study_grids.LR_CANDIDATES == (0.025, 0.05, 0.1, 0.2)
    monkeypatch.setitem(study_grids.LR_SEARCH_STARTS, ("tiny", "smoke"), (0.03, 0.06))
    monkeypatch.setattr(study_grids, "LR_EXTENSIONS", 0)

    def searched(results, *options):
        assert run.main(["tune", "tiny", "--seeds", "1", "--results", str(results), *options, *FAST]) == 0
        variants = json.loads((results / "tiny-lr" / "grid.json").read_text())["variants"]
        return sorted({v.partition("@lr")[2] for v in variants}, key=float)

    assert searched(tmp_path / "start") == searched(tmp_path / "named", "--protocol", "smoke") == ["0.03", "0.06"]
    assert searched(tmp_path / "given", "--candidates", "0.02,0.05") == ["0.02", "0.05"]


def test_until_decided_offers_the_next_looks_seeds_to_idle_workers_and_none_after_the_last_look(tmp_path, monkeypatch):
    from experiments import executors

    pair = grids.Grid("pair", "Two tiny test networks.", "a", {
        "a": grids.Variant("engine_test_net"), "b": grids.Variant("engine_test_net", {"width": 4})}, protocol="smoke")
    monkeypatch.setitem(grids.GRIDS, "pair", pair)
    offered, real = [], executors.run_grid

    def recording(configs, *args, spare=(), **kwargs):
        offered.append(({(c.variant, c.seed) for c in configs}, {(c.variant, c.seed) for c in spare}))
        return real(configs, *args, spare=spare, **kwargs)

    monkeypatch.setattr(executors, "run_grid", recording)
    assert run.main(["ablate", "pair", "--until-decided", "--max-seeds", "5", "--results", str(tmp_path), *FAST]) == 0
    assert offered[0] == ({(v, s) for v in "ab" for s in range(3)}, {(v, s) for v in "ab" for s in (3, 4)})
    if len(offered) > 1:  # look 1 did not decide: look 2 is the last, with no next look to train ahead
        assert offered[1] == ({(v, s) for v in "ab" for s in range(5)}, set())


def test_the_next_looks_seeds_are_offered_variant_by_variant_in_the_looks_order(tmp_path, monkeypatch):
    """``ablate --until-decided`` names a look's open comparisons furthest from stopping first
    (``until_decided.looks``); the seeds trained ahead follow that order, each variant's seeds in turn."""
    from experiments import executors, runs

    trio = grids.Grid("trio", "Three tiny test networks.", "a", {
        "a": grids.Variant("engine_test_net"), "b": grids.Variant("engine_test_net", {"width": 4}),
        "c": grids.Variant("engine_test_net", {"width": 6})}, protocol="smoke")
    offered = []

    def recording(configs, *args, spare=(), **kwargs):
        offered.append([(c.variant, c.seed) for c in spare])
        return []

    monkeypatch.setattr(executors, "run_grid", recording)
    options = runs.RunOptions(device="cpu", threads=1, wandb="off", plugins=("conftest",))
    runs.run_grid_command(trio, protocol=None, seeds=1, dataset=None, vary="all", results=tmp_path,
                          runtime=options.runtime(), options=options, only_variants=["a", "c", "b"], spare_seeds=2)
    assert offered == [[("a", 1), ("a", 2), ("c", 1), ("c", 2), ("b", 1), ("b", 2)]]


def test_every_committed_run_keeps_its_id():
    """Runs of models never revised hash without ``architecture_revision``: every committed config.json (none records
    one) still resolves to its run folder's name, so no finished run is orphaned or trained again."""
    from conftest import ROOT
    from experiments.config import RunConfig

    configs = sorted((ROOT / "results").glob("*/*/config.json"))
    assert configs
    for path in configs:
        raw = json.loads(path.read_text())
        cfg = RunConfig.model_validate({k: v for k, v in raw.items() if k != "run_id"})
        assert cfg.architecture_revision == 1 and cfg.run_id == path.parent.name, path


def test_grids_record_each_models_architecture_revision():
    """The CIFAR ResNets are at revision 2 (option-A zero channels on both sides of the identity); the other
    networks of the baselines grid are at 1; a revised run has an id of its own."""
    configs, _ = grids.resolve(grids.GRIDS["baselines"], seeds=1)
    revisions = {c.model: c.architecture_revision for c in configs}
    assert {m: r for m, r in revisions.items() if r != 1} == {m: 2 for m in revisions if m.startswith("resnet")}
    assert any(m.startswith("resnet") for m in revisions) and 1 in revisions.values()
    resnet = next(c for c in configs if c.model.startswith("resnet"))
    assert resnet.run_id != resnet.model_copy(update={"architecture_revision": 1}).run_id


def test_ablate_after_a_revision_trains_the_new_networks_and_supersedes_the_old_runs(tmp_path, capsys, monkeypatch):
    """Raising a model module's ``ARCHITECTURE_REVISION``: ablate trains that model's runs again under new ids
    (old finished runs of the same variant and seed are no clash), and the analysis marks the old ones superseded."""
    import importlib

    import timm

    from evidence.load import load_results

    args = ["ablate", "tiny", "--seeds", "1", "--results", str(tmp_path), *FAST]
    assert run.main(args) == 0
    old = {p.parent.name for p in tmp_path.glob("tiny/*/result.json")}
    module = importlib.import_module(timm.models.model_entrypoint("engine_test_net").__module__)
    monkeypatch.setattr(module, "ARCHITECTURE_REVISION", 2, raising=False)
    from experiments.until_decided import _runs
    assert _runs(tmp_path, "tiny").empty  # a sequential look never reads the old revision's runs, even before new ones
    assert run.main(args) == 0
    assert "2 trained now" in capsys.readouterr().out
    new = {p.parent.name for p in tmp_path.glob("tiny/*/result.json")} - old
    assert len(old) == len(new) == 2
    assert {json.loads((tmp_path / "tiny" / n / "config.json").read_text())["architecture_revision"] for n in new} == {2}
    frame = load_results(tmp_path).set_index("run_id")
    assert (frame.loc[sorted(new), "status"] == "ok").all()
    assert (frame.loc[sorted(old), "status"] == "superseded").all()
    assert frame.loc[sorted(old), "reason"].eq("engine_test_net of architecture revision 1; runs of revision 2 exist").all()


def test_ablate_refuses_a_second_edition_grid_whose_rates_were_never_chosen(tmp_path, capsys):
    """A question's main runs train only at rates its search chose on validation (docs/study.md, section 2): without a
    choice, ablate names the search to run first and trains nothing (its runs would be main runs at the protocol's
    rate)."""
    for extra in ([], ["--until-decided"]):
        assert run.main(["ablate", "p-sweep", "--protocol", "smoke", "--results", str(tmp_path), *extra, *FAST]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "no choice under smoke" in err and "run.py tune p-sweep --protocol smoke" in err
        assert not list(tmp_path.glob("p-sweep/*/config.json"))
    assert run.main(["ablate", "expansion-op", "--protocol", "smoke", "--results", str(tmp_path), *FAST]) == 2
    assert "run.py tune expansion-op --protocol smoke --compare pointwise" in " ".join(capsys.readouterr().err.split())
    # rates chosen on one dataset never train main runs on another
    assert run.main(["ablate", "p-sweep", "--protocol", "smoke", "--dataset", "fashion-mnist", "--results",
                     str(tmp_path), *FAST]) == 2
    assert "--dataset fashion-mnist: grid p-sweep is a question" in " ".join(capsys.readouterr().err.split())
