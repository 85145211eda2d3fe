"""`run.py gpu-next`: the GPU protocol, the time-budget planning, and the run folders it writes, all
without a GPU (``--device cpu``, the ``gpu`` protocol shrunk to the synthetic set, a tiny network)."""
from __future__ import annotations

import itertools
import json

import pytest

import run
from analysis.compare import analyze
from evidence.load import load_results
from evidence.status import RunStatus
from experiments import config, gpu, grids, timebox
from experiments.runner import run_row
from experiments.store import RunStore, mixed_environment

TINY = grids.Grid("tiny", "Two tiny test networks.", "a",
                  {"a": grids.Variant("engine_test_net"), "b": grids.Variant("engine_test_net", {"width": 4})},
                  protocol="smoke")
# the gpu protocol at the smoke protocol's size: the synthetic set, 2 epochs
SMALL_GPU = config.Protocol.model_validate({**config.PROTOCOLS["smoke"].model_dump(), "name": "gpu"})
CPU = ["--device", "cpu", "--threads", "1", "--import", "conftest"]


@pytest.fixture(autouse=True)
def tiny(monkeypatch, tmp_path):
    from study import grids as study_grids

    monkeypatch.setitem(grids.GRIDS, "tiny", TINY)
    monkeypatch.setitem(config.PROTOCOLS, "gpu", SMALL_GPU)
    monkeypatch.setattr(study_grids, "LR_CANDIDATES", (0.1,))  # the search shrunk to one rate (the protocol's) x 1 seed
    monkeypatch.setattr(study_grids, "TUNING_SEEDS", 1)
    monkeypatch.setenv("DYCLOT_CACHE", str(tmp_path / "cache"))


def configs(seeds: int = 1) -> list:
    return grids.resolve(gpu.device_grid(TINY, "gpu"), "gpu", seeds, plugins=("conftest",))[0]


def runtime():
    return gpu.make_runtime("cpu", threads=1, plugins=("conftest",))


def test_the_gpu_protocol_is_whole_cifar10_and_its_runs_are_its_own(monkeypatch):
    monkeypatch.undo()
    protocol = config.PROTOCOLS["gpu"]
    assert protocol.dataset == "cifar10-jpeg" and protocol.train_per_class is None and protocol.test_per_class is None
    assert protocol.val_per_class == 100 and protocol.epochs >= 30 and protocol.label_smoothing == 0.1
    assert protocol.warmup_epochs > 0 and protocol.batch_size >= 256
    assert protocol != config.PROTOCOLS["cpu-full"]
    grid = grids.GRIDS["expansion-op"]
    on_gpu, _ = grids.resolve(gpu.device_grid(grid, "gpu"), "gpu", 2, check=False)
    on_cpu, _ = grids.resolve(grid, "cpu-full", 2, check=False)
    assert {c.grid for c in on_gpu} == {"expansion-op-gpu"} and {c.protocol.name for c in on_gpu} == {"gpu"}
    assert not {c.run_id for c in on_gpu} & {c.run_id for c in on_cpu}
    assert gpu.device_grid(grids.GRIDS["lr-check"], "gpu").lr_scale == 0.5  # the grid's own settings stay
    # the learning-rate search: the CPU's candidates around 0.1 (batch 128) scaled to the gpu protocol's 0.2
    from study.grids import LR_CANDIDATES, lr_candidates
    assert LR_CANDIDATES == (0.025, 0.05, 0.1, 0.2) and lr_candidates(protocol.lr) == (0.05, 0.1, 0.2, 0.4)
    assert lr_candidates(config.PROTOCOLS["cpu-full"].lr) == LR_CANDIDATES


def test_gpu_next_writes_run_folders_that_analysis_never_pairs_with_cpu_runs(tmp_path, capsys):
    out = tmp_path / "results"
    assert run.main(["gpu-next", "tiny", "--out", str(out), "--seeds", "2", "--minutes", "5", *CPU]) == 0
    said = capsys.readouterr().out
    assert "tiny-gpu and its learning-rate search: 6 planned runs: 6 finished now, 0 finished before" in said
    results = [json.loads(p.read_text()) for p in out.glob("tiny-gpu/*/result.json")]
    assert len(results) == 4 and {(r["status"], r["protocol"], r["grid"]) for r in results} == {("ok", "gpu", "tiny-gpu")}
    assert json.loads((out / "tiny-gpu" / "grid.json").read_text())["protocol"] == "gpu"

    assert run.main(["gpu-next", "tiny", "--out", str(out), "--seeds", "2", "--minutes", "5", *CPU]) == 0
    assert "0 finished now, 6 finished before" in capsys.readouterr().out

    # the same grid on the CPU, in the same results folder: separate grids, nothing duplicate or pooled
    assert run.main(["ablate", "tiny", "--protocol", "smoke", "--seeds", "2", "--results", str(out), "--wandb", "off",
                     *CPU]) == 0
    frame = load_results(out)
    assert set(frame["grid"]) == {"tiny", "tiny-gpu", "tiny-gpu-lr"}  # the GPU search's runs in a folder of their own
    frame = frame[frame["grid"] != "tiny-gpu-lr"]
    # nothing duplicate or superseded; a tiny network that did not learn in 2 epochs is flagged, never compared
    assert set(frame["status"]) <= {RunStatus.OK, RunStatus.FLAGGED} and len(frame) == 8
    assert frame.groupby("grid")["protocol"].nunique().to_dict() == {"tiny": 1, "tiny-gpu": 1}
    assert set(frame.loc[frame["grid"] == "tiny-gpu", "protocol"]) == {"gpu"}
    summaries = analyze(frame)["summaries"].set_index(["grid", "variant"])["n"]
    ok = frame[frame["status"] == RunStatus.OK].groupby(["grid", "variant"]).size()
    assert summaries.to_dict() == ok.to_dict() and set(ok.index.get_level_values("grid")) == {"tiny", "tiny-gpu"}


def test_until_decided_trains_the_looks_and_records_them_in_the_gpu_grid(tmp_path, capsys):
    out = tmp_path / "results"
    args = ["gpu-next", "tiny", "--out", str(out), "--until-decided", "--max-seeds", "3", "--minutes", "5", *CPU]
    assert run.main(args) == 0
    said = capsys.readouterr().out
    assert "tiny-gpu and its learning-rate search: 8 planned runs: 8 finished now" in said and "b: " in said
    record = json.loads((out / "tiny-gpu" / "sequential.json").read_text())
    assert record["protocol"] == "gpu" and record["schedule"] == [3] and set(record["variants"]) == {"b"}


def test_a_gpu_look_offers_the_next_looks_seeds_to_idle_workers_and_none_at_the_last_look(tmp_path):
    """As on the CPU (``ablate --until-decided``): the reference's seeds, then each open comparison's, in the look's
    order (``until_decided.in_look_order``)."""
    from experiments.until_decided import SequentialDesign

    g = gpu.device_grid(TINY, "gpu")
    offered = []

    def train(now, planned, spare=()):
        offered.append(([(c.variant, c.seed) for c in now], [(c.variant, c.seed) for c in spare]))
        return []

    for max_seeds, spares in ((5, [("a", 3), ("a", 4), ("b", 3), ("b", 4)]), (3, [])):
        offered.clear()
        design = SequentialDesign(grid=g.name, reference="a", variants=("b",), protocol="gpu", margin=0.5,
                                  max_seeds=max_seeds)
        gpu._train_looks(design, g, tmp_path / str(max_seeds), train, lambda: True, ("conftest",))
        assert offered == [([(v, s) for s in range(3) for v in "ab"], spares)]


def test_a_question_that_names_its_comparison_searches_and_trains_only_its_networks_on_the_gpu(tmp_path, monkeypatch):
    from study import questions

    three = grids.Grid("three", "Three tiny test networks.", "a", {**TINY.variants,
                       "c": grids.Variant("engine_test_net", {"width": 2})}, protocol="smoke")
    monkeypatch.setitem(grids.GRIDS, "three", three)
    monkeypatch.setattr(questions, "SECOND_EDITION_QUESTIONS", (questions.CoreQuestion("x", "?", "three", "c"),))
    out = tmp_path / "results"
    outcome = gpu.gpu_next("three", out, seeds=1, minutes=5, device="cpu", threads=1, plugins=("conftest",),
                           until_decided=True, max_seeds=3)
    trained = {json.loads(p.read_text())["variant"].partition("@")[0] for p in out.glob("*/*/config.json")}
    assert trained == {"a", "c"} and set(outcome["learning_rates"]) == {"a", "c"}  # b: neither searched nor trained
    assert set(json.loads((out / "three-gpu" / "grid.json").read_text())["variants"]) == {"a", "c"}
    assert set(outcome["decisions"]) == {"c"}


def test_a_gpu_budget_pilot_trains_its_fixed_seeds_at_its_protocols_rate_in_its_own_folder(tmp_path, monkeypatch,
                                                                                           capsys):
    """docs/study.md section 5: `gpu-next pilot-gpu-15` trains the pilot's seeds under gpu-15, with no search and no
    looks, into `pilot-gpu-15/` (the folder `run.py plan` reads), and records the runs sharing the device."""
    from dataclasses import replace

    pilot = replace(grids.GRIDS["pilot-gpu-15"], variants=TINY.variants, reference="a", fixed_seeds=2)
    assert (pilot.protocol, grids.GRIDS["pilot-gpu-15"].fixed_seeds) == ("gpu-15", 4)
    monkeypatch.setitem(grids.GRIDS, "pilot-gpu-15", pilot)
    monkeypatch.setitem(config.PROTOCOLS, "gpu-15", SMALL_GPU.model_copy(update={"name": "gpu-15", "lr": 0.07}))
    out = tmp_path / "results"
    outcome = gpu.gpu_next("pilot-gpu-15", out, seeds=9, minutes=5, device="cpu", workers=2, threads=1,
                           plugins=("conftest",), until_decided=True)
    assert sorted(p.name for p in out.iterdir()) == ["pilot-gpu-15"] and "decisions" not in outcome
    runs = [json.loads(p.read_text()) for p in out.glob("pilot-gpu-15/*/config.json")]
    assert sorted((r["variant"], r["seed"]) for r in runs) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert {(r["protocol"]["name"], r["protocol"]["lr"]) for r in runs} == {("gpu-15", 0.07)}
    assert {json.loads(p.read_text())["runtime"]["runs_sharing_device"] for p in out.glob("*/*/env.json")} == {2}
    assert gpu.trained_folders("pilot-gpu-15") == ["pilot-gpu-15"] and gpu.trained_folders("tiny") == [
        "tiny-gpu-lr", "tiny-gpu"] and gpu.trained_folders("tiny", "gpu-15") == ["tiny-gpu-15-lr", "tiny-gpu-15"]
    # the command says what it ignores, and names the folders it trained into (the GPU batch packs those)
    assert run.main(["gpu-next", "pilot-gpu-15", "--out", str(out), "--until-decided", *CPU]) == 0
    said = capsys.readouterr().out
    assert "--seeds and --until-decided do not apply to it" in said and said.startswith("folders: pilot-gpu-15\n")
    with pytest.raises(ValueError, match="pilot-cpu is a CPU budget pilot"):
        gpu.gpu_next("pilot-cpu", out, device="cpu", plugins=("conftest",))
    with pytest.raises(ValueError, match="--protocol gpu would put another budget's runs"):
        gpu.gpu_next("pilot-gpu-15", out, protocol="gpu", device="cpu", plugins=("conftest",))


def test_the_learning_rate_search_comes_first_and_the_main_runs_train_at_its_choice(tmp_path, capsys, monkeypatch):
    from study import grids as study_grids

    monkeypatch.setattr(study_grids, "LR_CANDIDATES", (0.04, 0.1))  # the search shrunk: 2 rates x 1 seed,
    monkeypatch.setattr(study_grids, "TUNING_SEEDS", 1)  # scaled to the (shrunk) gpu protocol's rate of 0.05
    monkeypatch.setattr(study_grids, "LR_EXTENSIONS", 0)  # 2 candidates: every best rate is an edge (widening: test_tuning)
    out = tmp_path / "results"
    # no time for any run: the search does not start, and no main run starts before it is finished
    outcome = gpu.gpu_next("tiny", out, seeds=1, minutes=0.5, device="cpu", threads=1, plugins=("conftest",))
    assert [r["status"] for r in outcome["rows"]] == [RunStatus.TODO] * 4
    assert {r["variant"] for r in outcome["rows"]} == {"a@lr0.02", "a@lr0.05", "b@lr0.02", "b@lr0.05"}
    assert outcome["waiting"].startswith("a: search runs not finished yet; b: search runs not finished yet (")
    assert outcome["learning_rates"] == {}
    assert not (out / "tiny-gpu-lr" / "chosen.json").exists() and not list(out.glob("tiny-gpu/*/config.json"))

    assert run.main(["gpu-next", "tiny", "--out", str(out), "--seeds", "1", "--minutes", "5", *CPU]) == 0
    said = capsys.readouterr().out
    assert "tiny-gpu and its learning-rate search: 6 planned runs: 6 finished now" in said
    assert said.startswith("folders: tiny-gpu-lr tiny-gpu\n")  # first: the search's folder, then the main runs'
    choice = json.loads((out / "tiny-gpu-lr" / "chosen.json").read_text())
    rates = {v: entry["lr"] for v, entry in choice["variants"].items()}
    assert choice["protocol"] == "gpu" and set(rates) == {"a", "b"} and set(rates.values()) <= {0.02, 0.05}
    assert f"learning rates chosen on validation: a {rates['a']:g}, b {rates['b']:g}" in said
    searched = [json.loads(p.read_text()) for p in out.glob("tiny-gpu-lr/*/config.json")]
    assert len(searched) == 4 and {c["seed"] for c in searched} == {1000}  # never a main run's seed
    main = [json.loads(p.read_text()) for p in out.glob("tiny-gpu/*/config.json")]
    assert {(c["variant"], c["seed"], c["protocol"]["lr"]) for c in main} == {("a", 0, rates["a"]), ("b", 0, rates["b"])}


def test_estimates_come_from_measured_epochs_of_the_same_network_and_protocol(tmp_path):
    first, second = configs()
    folder = tmp_path / "other-gpu" / "run"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**second.model_dump(mode="json"), "grid": "other-gpu"}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "epoch_seconds": s, "eval_seconds": 1.0}) + "\n"
                                                  for e, s in ((1, 9.0), (2, 5.0), (3, 7.0))) + '{"torn')
    measured = timebox.measured_epoch_seconds(tmp_path, "gpu")
    assert measured == [{'engine_test_net {"width": 4}': 8.0, "engine_test_net": 8.0}]
    assert timebox.measured_epoch_seconds(tmp_path, "cpu") == [{}]
    epochs = second.protocol.epochs
    assert timebox.estimate_seconds(second, 0, measured) == timebox.RUN_OVERHEAD_S + 8.0 * epochs
    assert timebox.estimate_seconds(second, epochs, measured) == timebox.RUN_OVERHEAD_S  # only the overhead is left
    assert timebox.estimate_seconds(first, 0, measured) == timebox.RUN_OVERHEAD_S + 8.0 * epochs  # the model's other options
    assert timebox.estimate_seconds(first, 0, [{}]) is None


def test_no_run_starts_that_would_not_finish_and_each_says_why(tmp_path):
    plan = configs(2)
    folder = tmp_path / "earlier-gpu" / "run"  # a measured epoch of the reference's network: 100 s
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(plan[0].model_dump(mode="json")))
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "epoch_seconds": 100.0, "eval_seconds": 0.0}) + "\n")
    now = 1000.0
    rows = gpu.run_within(plan, runtime(), tmp_path, deadline=now + 150, clock=lambda: now)
    assert [r["status"] for r in rows] == [RunStatus.TODO] * 4
    assert all("would not finish in time (needs ~220 s, 150 s left)" in row["note"] for row in rows)
    assert not list(tmp_path.glob("tiny-gpu/*"))  # nothing started
    # a network never measured starts while the overhead fits, not with less time left
    (folder / "metrics.jsonl").unlink()
    rows = gpu.run_within(plan[:2], runtime(), tmp_path, deadline=now + timebox.RUN_OVERHEAD_S - 1, clock=lambda: now)
    assert [r["status"] for r in rows] == [RunStatus.TODO] * 2 and "no epoch of engine_test_net" in rows[0]["note"]


def test_a_run_stopped_at_the_deadline_keeps_its_epochs_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(timebox, "RUN_OVERHEAD_S", 0.0)
    (cfg,) = [c for c in configs() if c.variant == "a"]
    steps = len(range(0, 360 - 32 + 1, 32))  # 360 synthetic training images, batch 32: 11 steps an epoch
    tick = itertools.count()  # one second per look at the clock: the plan, the start, then one per step
    (row,) = gpu.run_within([cfg], runtime(), tmp_path, deadline=2 + steps + 5, clock=lambda: float(next(tick)))
    assert row["status"] == RunStatus.PARTIAL and "after epoch 1/2" in row["note"]
    store = RunStore.of(tmp_path, cfg)
    assert store.status() == RunStatus.PARTIAL and len(store.load_metrics()) == 1 and store.read_result() is None
    first_epoch = store.load_metrics()[0]
    (row,) = gpu.run_within([cfg], runtime(), tmp_path, deadline=float("inf"))
    assert row["status"] == RunStatus.OK and row["metrics"]["epochs"] == 2
    assert store.load_metrics()[0] == first_epoch


def test_several_runs_at_once_in_worker_processes(tmp_path):
    rows = gpu.run_within(configs(), gpu.make_runtime("cpu", workers=2, threads=1, plugins=("conftest",)), tmp_path,
                          deadline=float("inf"), workers=2)
    assert [r["status"] for r in rows] == [RunStatus.OK, RunStatus.OK]
    assert len(list(tmp_path.glob("tiny-gpu/*/result.json"))) == 2


@pytest.mark.parametrize("args, message", [
    (["gpu-next", "tyni", "--out", "{tmp}", *CPU], "unknown grid 'tyni'; did you mean 'tiny'"),
    (["gpu-next", "tiny", "--out", "{tmp}", "--minutes", "0", *CPU], "--minutes must be a number of minutes > 0"),
    (["gpu-next", "tiny", "--out", "{tmp}", "--minutes", "-3", *CPU], "--minutes must be a number of minutes > 0"),
    (["gpu-next", "tiny", "--out", "{tmp}", "--protocol", "gpuu", *CPU], "unknown protocol 'gpuu'"),
    (["gpu-next", "tiny", "--out", "{tmp}", "--protocol", "paper", *CPU], "protocol paper has no validation split"),
    (["gpu-next", "tiny", "--out", "{tmp}", "--device", "tpu"], "unknown device 'tpu'"),
    (["gpu-next", "tiny", "--out", "{tmp}", "--device", "cuda"], "no CUDA device is visible here"),
    (["gpu-next", "tiny", "--out", "{tmp}/file/out", *CPU], "is not writable"),
    (["gpu-next", "tiny", "--out", "{tmp}", "--sharing", "mpss", *CPU], "unknown --sharing 'mpss'"),
    (["gpu-next", "tiny", "--out", "{tmp}", "--sharing", "mps", *CPU], "--sharing mps shares a CUDA device"),
])
def test_bad_input_is_a_one_line_error(tmp_path, capsys, monkeypatch, args, message):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also where the tests run on a GPU
    (tmp_path / "file").write_text("")
    assert run.main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_finish_later_starts_a_run_whose_next_epoch_fits_not_one_whose_whole_run_does(tmp_path):
    plan = configs(2)
    folder = tmp_path / "earlier-gpu" / "run"  # a measured epoch of the networks: 100 s
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(plan[0].model_dump(mode="json")))
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "epoch_seconds": 100.0, "eval_seconds": 0.0}) + "\n")
    now = 1000.0
    # 2 epochs (220 s with the overhead) do not fit in 150 s, one (120 s) does: the first run starts, and it
    # stops at the deadline, which the frozen clock has reached by its first step
    clock = itertools.chain([now, now], itertools.repeat(now + 151)).__next__
    rows = gpu.run_within(plan[:1], runtime(), tmp_path, deadline=now + 150, clock=clock, finish_later=True)
    assert [r["status"] for r in rows] == [RunStatus.PARTIAL]
    rows = gpu.run_within(plan[1:2], runtime(), tmp_path, deadline=now + 110, clock=lambda: now, finish_later=True)
    assert [r["status"] for r in rows] == [RunStatus.TODO] and "its next epoch needs ~120 s, 110 s left" in rows[0]["note"]


def test_no_main_run_starts_before_a_widened_search_has_finished(tmp_path, monkeypatch):
    from study import grids as study_grids

    monkeypatch.setattr(study_grids, "LR_CANDIDATES", (0.04, 0.1))  # 0.02 and 0.05 at the shrunk gpu protocol's rate
    monkeypatch.setattr(study_grids, "LR_EXTENSIONS", 1)
    train_within = gpu.run_within

    def first_rates_only(configs, *args, **kwargs):  # time for the first candidates, none for the widened ones
        rows = train_within([c for c in configs if c.protocol.lr in (0.02, 0.05)], *args, **kwargs)
        trained = {row["run_id"] for row in rows}
        return rows + [run_row(c, RunStatus.TODO, "not started") for c in configs if c.run_id not in trained]

    monkeypatch.setattr(gpu, "run_within", first_rates_only)
    out = tmp_path / "results"
    outcome = gpu.gpu_next("tiny", out, seeds=1, minutes=5, device="cpu", threads=1, plugins=("conftest",))
    variants = json.loads((out / "tiny-gpu-lr" / "grid.json").read_text())["variants"]
    assert len(variants) in (6, 8)  # 2 candidates: every best rate is an edge, so the search was widened
    assert "search runs not finished yet" in outcome["waiting"] and outcome["learning_rates"] == {}
    assert not (out / "tiny-gpu-lr" / "chosen.json").exists() and not list(out.glob("tiny-gpu/*/config.json"))


def test_no_gpu_run_trains_beside_finished_runs_it_would_never_pair_with(tmp_path):
    out = tmp_path / "results"
    folder = out / "tiny-gpu-lr" / "earlier"  # a finished search run trained compiled
    folder.mkdir(parents=True)
    (folder / "result.json").write_text("{}")
    (folder / "config.json").write_text(json.dumps({"engine_version": config.ENGINE_VERSION}))
    (folder / "env.json").write_text(json.dumps({"runtime": {"device": "cpu", "compile": True, "deterministic": True,
                                                             "channels_last": True}, "packages": {}}))
    with pytest.raises(ValueError, match="runtime.compile true in 1 run"):
        gpu.gpu_next("tiny", out, seeds=1, minutes=5, device="cpu", threads=1, plugins=("conftest",))
    (folder / "result.json").rename(folder / "checkpoint.pt")  # stopped, not finished: it would resume so
    with pytest.raises(ValueError, match="finished or started runs"):
        gpu.gpu_next("tiny", out, seeds=1, minutes=5, device="cpu", threads=1, plugins=("conftest",))
    (folder / "config.json").write_text(json.dumps({"engine_version": config.ENGINE_VERSION - 1}))  # never paired anyway
    assert not mixed_environment(out / "tiny-gpu-lr", gpu.make_runtime("cpu", threads=1))
    assert sorted(p.name for p in (out / "tiny-gpu-lr").iterdir()) == ["earlier"]  # nothing trained


def test_a_question_s_step_is_the_one_its_finished_runs_took(tmp_path):
    assert gpu.held_step("tiny", None, tmp_path) is None  # no runs yet: the batch's choice
    for name, engine, compile, state in (("not-started", config.ENGINE_VERSION, True, None),
                                         ("older", config.ENGINE_VERSION - 1, True, "result.json"),
                                         ("stopped", config.ENGINE_VERSION, "cuda-graphs", "checkpoint.pt")):
        folder = tmp_path / "tiny-gpu-lr" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"engine_version": engine}))
        (folder / "env.json").write_text(json.dumps({"runtime": {"compile": compile}}))
        if state:
            (folder / state).write_text("{}")
    assert gpu.held_step("tiny", None, tmp_path) == "cuda-graphs"  # a stopped run resumes with its own step
    assert gpu.held_step("tiny", "gpu-15", tmp_path) is None  # another protocol's folders
    with pytest.raises(ValueError, match="unknown --step 'graphs'"):
        gpu.gpu_next("tiny", tmp_path, minutes=1, device="cpu", compile=config.compile_setting("graphs"))
    with pytest.raises(ValueError, match="--device cpu is not one here"):
        gpu.make_runtime("cpu", compile="cuda-graphs")
