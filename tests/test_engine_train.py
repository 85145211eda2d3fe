"""Trainer and results store: determinism, resume after SIGKILL, corrupt state, failures, locking, executors, wandb."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from conftest import HANG_GUARD_S, wait_for
from experiments import executors
from experiments.config import RunConfig, Runtime, Seeds, get_protocol
from experiments.executors import run_grid
from experiments.runner import execute
from experiments.store import RunStore

RUNTIME = Runtime(device="cpu", threads=1, wandb="off", plugins=("conftest",))
TIMING = {"epoch_seconds", "images_per_second", "eval_seconds", "train_seconds"}


def config(variant: str = "a", seed: int = 0, epochs: int = 2, vary: str = "all", **model_kwargs) -> RunConfig:
    return RunConfig(grid="tiny", variant=variant, model="engine_test_net", model_kwargs=model_kwargs,
                     dataset="synthetic", protocol=get_protocol("smoke", epochs=epochs), seed=seed, vary=vary,
                     seeds=Seeds.derive(seed, vary))


def untimed(rows: list[dict] | dict) -> list[dict] | dict:
    if isinstance(rows, dict):
        return {k: v for k, v in rows.items() if k not in TIMING}
    return [untimed(r) for r in rows]


def test_same_config_and_seed_give_bit_identical_metrics(tmp_path):
    first, second = execute(config(), RUNTIME, tmp_path / "1"), execute(config(), RUNTIME, tmp_path / "2")
    assert first["status"] == second["status"] == "ok"
    metrics = [RunStore.of(tmp_path / d, config()).load_metrics() for d in ("1", "2")]
    assert len(metrics[0]) == 2 and untimed(metrics[0]) == untimed(metrics[1])
    assert untimed(first["metrics"]) == untimed(second["metrics"])
    other = execute(config(seed=1), RUNTIME, tmp_path / "1")
    assert other["metrics"]["train_loss"] != first["metrics"]["train_loss"]
    assert first["cost"]["params"] > 0 and first["cost"]["macs"] > 0 and first["cost"]["latency_ms"] > 0


def test_seeds_split_by_source():
    all_, init = Seeds.derive(1), Seeds.derive(1, "init")
    assert len({all_.init, all_.data, all_.aug}) == 3
    assert init.init == all_.init and (init.data, init.aug) == (Seeds.derive(0).data, Seeds.derive(0).aug)
    assert config(seed=1, vary="init").run_id != config(seed=1).run_id


def test_run_directory_follows_the_results_format(tmp_path):
    result = execute(config(), RUNTIME, tmp_path)
    store = RunStore.of(tmp_path, config())
    assert store.dir == tmp_path / "tiny" / config().run_id and len(config().run_id) == 16
    saved = json.loads(store.config.read_text())
    assert saved["run_id"] == config().run_id
    assert RunConfig.model_validate({k: v for k, v in saved.items() if k != "run_id"}) == config()
    env = json.loads(store.env.read_text())
    assert {"git", "packages", "cpu", "torch_threads"} <= env.keys() and env["torch_threads"] == 1
    assert set(json.loads(store.metrics.read_text().splitlines()[0])) >= {
        "epoch", "train_loss", "train_top1", "val_loss", "val_top1", "test_loss", "test_top1", "lr", "epoch_seconds",
        "images_per_second"}
    assert json.loads(store.result.read_text()) == {k: v for k, v in result.items()}
    assert store.checkpoint.exists() and store.status() == "ok"
    assert set(result["metrics"]) == {"test_top1", "test_loss", "val_top1", "train_loss", "train_top1", "epochs",
                                      "train_seconds", "images_per_second"}


def test_set_epoch_hook_is_called_each_epoch(tmp_path):
    from experiments.data import load_dataset
    from experiments.runner import import_models
    from experiments.trainer import fit

    import_models(("conftest",))
    cfg = config(epochs=3)
    model, history = fit(cfg, load_dataset("synthetic"), RUNTIME, RunStore(tmp_path))
    assert model.epochs_seen == [(0, 3), (1, 3), (2, 3)] and [m["epoch"] for m in history] == [1, 2, 3]
    assert history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine reaches 0 at the end


CHILD = """
import os, sys, time
sys.path[:0] = [{root!r}, {tests!r}]
from test_engine_train import RUNTIME, config
from experiments.runner import execute
def on_step(step, steps):
    if os.path.exists({marker!r}) is False and step == 3 and len(open({metrics!r}).read().splitlines()) == 2:
        open({marker!r}, "w").close()
        time.sleep(600)  # killed here, in the middle of epoch 3
execute(config(epochs=4), RUNTIME, {results!r}, on_step=on_step)
"""


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    tests = Path(__file__).resolve().parent
    store = RunStore.of(tmp_path / "killed", config(epochs=4))
    marker = tmp_path / "mid-epoch-3"
    code = CHILD.format(root=str(tests.parent), tests=str(tests), marker=str(marker), metrics=str(store.metrics),
                        results=str(tmp_path / "killed"))
    child = subprocess.Popen([sys.executable, "-c", code], cwd=tests.parent)
    try:
        wait_for(marker.exists, child, "the child reaching epoch 3")
    finally:
        child.kill()  # it sleeps mid-epoch 3 until killed
        child.wait()
    assert store.status() == "partial" and not store.result.exists() and len(store.load_metrics()) == 2

    resumed = execute(config(epochs=4), RUNTIME, tmp_path / "killed")
    straight = execute(config(epochs=4), RUNTIME, tmp_path / "straight")
    assert resumed["status"] == straight["status"] == "ok"
    assert untimed(resumed["metrics"]) == untimed(straight["metrics"])
    assert untimed(store.load_metrics()) == untimed(RunStore.of(tmp_path / "straight", config(epochs=4)).load_metrics())


@pytest.mark.parametrize("damage", ["checkpoint", "metrics"])
def test_corrupt_state_is_detected(tmp_path, damage):
    cfg = config(epochs=3)
    straight = execute(cfg, RUNTIME, tmp_path / "straight")
    store = RunStore.of(tmp_path / "damaged", cfg)
    execute(cfg, RUNTIME, tmp_path / "damaged")
    store.result.unlink()  # pretend the run was interrupted after its last epoch...
    if damage == "checkpoint":  # ...with a truncated checkpoint: the run restarts
        store.checkpoint.write_bytes(store.checkpoint.read_bytes()[:100])
    else:  # ...with a torn metrics.jsonl: rebuilt from the checkpoint
        store.metrics.write_text(store.metrics.read_text()[:-30])
    assert store.status() == "partial"
    again = execute(cfg, RUNTIME, tmp_path / "damaged")
    assert untimed(again["metrics"]) == untimed(straight["metrics"]) and len(store.load_metrics()) == 3


def test_failures_are_recorded_and_the_grid_goes_on(tmp_path):
    configs = [config("nan", nan_at_step=3), config("crash", fail_at_step=2), config("ok")]
    results = {r["variant"]: r for r in run_grid(configs, RUNTIME, tmp_path)}
    assert results["ok"]["status"] == "ok"
    assert results["nan"]["status"] == "failed" and results["nan"]["reason"] == "Diverged: loss is nan at epoch 1 step 3"
    assert results["crash"]["status"] == "failed" and results["crash"]["reason"] == "RuntimeError: injected failure"
    stored = RunStore.of(tmp_path, configs[0]).read_result()
    assert stored["status"] == "failed" and stored["metrics"]["test_top1"] is None
    assert "injected failure" in RunStore.of(tmp_path, configs[1]).error_log.read_text()
    again = run_grid(configs, RUNTIME, tmp_path)  # finished and failed runs are not run again
    assert all(r.get("skipped") for r in again)
    retried = run_grid(configs, RUNTIME.model_copy(update={"retry_failed": True}), tmp_path)
    # a diverged run stands (an outcome of its settings): --retry-failed trains the crashed one again
    assert [r.get("skipped", False) for r in retried] == [True, False, True]
    from experiments.gpu import plan_runs  # a GPU batch plans the same way (the crashed run failed again)
    assert [c.variant for c in plan_runs(configs, tmp_path, retry_failed=True)[1]] == ["crash"]
    assert plan_runs(configs, tmp_path, retry_failed=False)[1] == []


def test_a_retried_run_that_succeeds_loses_the_error_log_of_its_failed_attempt(tmp_path):
    cfg = config("flaky")
    store = RunStore.of(tmp_path, cfg)
    store.dir.mkdir(parents=True)
    store.write_result({"run_id": cfg.run_id, "variant": "flaky", "seed": 0, "status": "failed", "reason": "OSError: x"})
    store.error_log.write_text("Traceback: the earlier attempt")
    assert run_grid([cfg], RUNTIME, tmp_path)[0].get("skipped")  # failed runs stay failed without --retry-failed
    assert run_grid([cfg], RUNTIME.model_copy(update={"retry_failed": True}), tmp_path)[0]["status"] == "ok"
    assert store.read_result()["status"] == "ok" and not store.error_log.exists()


def test_a_locked_run_is_left_to_its_owner(tmp_path):
    cfg = config()
    store = RunStore.of(tmp_path, cfg)
    store.dir.mkdir(parents=True)
    with FileLock(store.dir / "run.lock"):
        assert store.status() == "running"
        assert execute(cfg, RUNTIME, tmp_path)["status"] == "running"
    assert not store.result.exists()


def test_unwritable_results_dir_fails_before_training(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(PermissionError, match="not writable"):
        run_grid([config()], RUNTIME, tmp_path / "file" / "results")


def test_process_pool_matches_sequential(tmp_path, monkeypatch):
    from experiments import config as engine_config
    from experiments.config import default_threads

    monkeypatch.setattr(engine_config.os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # a quiet machine: every core idle
    configs, share = [config("a"), config("b", width=4)], max(1, default_threads() // 2)
    pooled = run_grid(configs, RUNTIME.model_copy(update={"threads": None}), tmp_path / "pool", workers=2)
    local = run_grid(configs, RUNTIME.model_copy(update={"threads": share}), tmp_path / "local")
    assert [untimed(r["metrics"]) for r in pooled] == [untimed(r["metrics"]) for r in local]
    env = json.loads(RunStore.of(tmp_path / "pool", configs[0]).env.read_text())
    assert env["torch_threads"] == share  # the two workers split the cores


def test_wandb_offline_does_not_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb").mkdir()
    result = execute(config(epochs=1), RUNTIME.model_copy(update={"wandb": "offline"}), tmp_path)
    assert result["status"] == "ok"


def test_wandb_errors_never_fail_a_run(tmp_path, monkeypatch):
    import wandb

    def broken(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(wandb, "init", broken)
    assert execute(config(epochs=1), RUNTIME.model_copy(update={"wandb": "online"}), tmp_path)["status"] == "ok"


def test_runs_without_the_nan_fill_of_new_tensors_equal_runs_with_it(tmp_path, monkeypatch):
    """The runner turns off deterministic mode's NaN fill (a speed change); no op may depend on it."""
    from contextlib import contextmanager

    import torch

    from experiments import runner

    cfg = RunConfig(grid="fill", variant="dct", model="dyclotnet_025", dataset="synthetic",
                    protocol=get_protocol("smoke", epochs=1), seed=0, seeds=Seeds.derive(0))
    seen = []

    @contextmanager
    def settings_with_fill(runtime):
        with original(runtime):
            torch.utils.deterministic.fill_uninitialized_memory = True
            seen.append(torch.are_deterministic_algorithms_enabled())
            yield

    without = execute(cfg, RUNTIME, tmp_path / "without")
    original = runner.torch_settings
    monkeypatch.setattr(runner, "torch_settings", settings_with_fill)
    with_fill = execute(cfg, RUNTIME, tmp_path / "with")
    assert seen == [True] and without["status"] == with_fill["status"] == "ok"
    assert untimed(without["metrics"]) == untimed(with_fill["metrics"])
    assert untimed(RunStore.of(tmp_path / "without", cfg).load_metrics()) == untimed(
        RunStore.of(tmp_path / "with", cfg).load_metrics())


def test_committed_run_ids_recompute_from_their_configs():
    """A setting added to the configs must leave the ids of finished runs as they were (or bump ENGINE_VERSION)."""
    configs = sorted(Path(__file__).resolve().parent.parent.glob("results/*/*/config.json"))
    if not configs:
        pytest.skip("no committed runs in this checkout")
    for path in configs:
        saved = json.loads(path.read_text())
        assert RunConfig.model_validate({k: v for k, v in saved.items() if k != "run_id"}).run_id == saved["run_id"], path



def simulate(order: executors.StartOrder, durations: dict[str, int], workers: int) -> tuple[list, list, list]:
    """Drive ``order`` as the pool does, with runs that take ``durations[name]`` time units: (starts, ends, spares
    stopped because the list's runs had all ended)."""
    clock, running, started, ended = 0, {}, [], []  # running: name -> (end, is a spare)
    while True:
        while len(running) < workers and (chosen := order.next(any(not spare for _, spare in running.values()))):
            running[chosen[0]] = (clock + durations[chosen[0]], chosen[1])
            started.append((clock, chosen[0]))
        if not order.configs and all(spare for _, spare in running.values()):
            return started, ended, sorted(running)
        clock = min(end for end, _ in running.values())
        for name in [n for n, (end, _) in running.items() if end == clock]:
            del running[name]
            ended.append(name)


@pytest.mark.parametrize("durations, started, finished", [
    # a look of 3 runs on 2 workers: the worker that would idle beside c takes the next look's first seed
    ({"a": 10, "b": 10, "c": 10, "s1": 10, "s2": 10}, [(0, "a"), (0, "b"), (10, "c"), (10, "s1")], "a b c s1"),
    # a run copied from its twin (no time) frees its worker for the grid's own next run, never for a spare
    ({"a": 0, "b": 10, "c": 10, "s1": 10, "s2": 10}, [(0, "a"), (0, "b"), (0, "c")], "a b c"),
])
def test_a_pool_worker_takes_a_spare_run_only_while_a_run_of_the_grid_trains(durations, started, finished):
    starts, ends, stopped = simulate(executors.StartOrder(["a", "b", "c"], ["s1", "s2"]), durations, 2)
    assert starts == started and sorted(ends) == finished.split() and stopped == []


def test_spare_runs_train_beside_a_long_run_and_the_one_still_training_when_it_ends_is_stopped_not_awaited():
    order = executors.StartOrder(["a"], ["s1", "s2", "s3", "s4"])
    starts, ends, stopped = simulate(order, {"a": 30, "s1": 10, "s2": 10, "s3": 15, "s4": 10}, 2)
    assert starts == [(0, "a"), (0, "s1"), (10, "s2"), (20, "s3")]  # s4 would start after a: never
    assert ends == ["s1", "s2", "a"] and stopped == ["s3"]  # s3 would end at 35: the caller goes on at 30


def test_a_time_box_passes_over_a_run_that_would_not_end_starts_a_later_one_that_fits_and_says_why():
    a, b, c, d = (config(name) for name in "abcd")
    asked = []

    def may_start(cfg):
        asked.append(cfg.variant)
        return cfg in (a, c), f"{cfg.variant} needs ~9 s, 5 s left"
    order = executors.StartOrder([a, b, c, d], [config("a", seed=1)], may_start)
    assert order.next(False) == (a, False)
    assert order.next(True) == (c, False)  # b would not end in time: c (say, a copy of its twin) still starts
    assert order.next(True) is None  # and no spare once a run of the look was passed over
    assert asked == ["a", "b", "c", "d"]  # a run passed over is not asked again
    assert list(order.not_started) == [b.run_id, d.run_id]
    assert [row["note"] for row in order.not_started.values()] == [
        "not started: would not finish in time (b needs ~9 s, 5 s left)",
        "not started: would not finish in time (d needs ~9 s, 5 s left)"]


def test_run_grid_trains_spares_on_the_idle_worker_returns_the_grids_runs_only_and_stops_a_spare_it_outlasts(tmp_path):
    run = config("a", step_seconds=0.5)  # about 11 s of steps; the short spare trains beside it, the long one outlasts it
    short, long = config("a", seed=1), config("a", seed=2, epochs=40, step_seconds=0.5)  # long: about 220 s of steps
    results = run_grid([run], RUNTIME.model_copy(update={"threads": None}), tmp_path, workers=2, spare=[short, long])
    assert [r["run_id"] for r in results] == [run.run_id] and results[0]["status"] == "ok"
    assert RunStore.of(tmp_path, short).read_result()["status"] == "ok"  # trained beside it, not returned
    store = RunStore.of(tmp_path, long)
    # the long spare was not awaited (awaited, it would have finished): stopped after an epoch, it resumes there
    assert store.read_result() is None and store.status() == "partial"
    with FileLock(store.dir / "run.lock", timeout=0):  # its worker is gone: nothing holds the run
        pass


def test_same_seeds_give_bit_identical_weights(tmp_path):
    """Two trainings of one config end with the same weights, bit for bit (not only the same metrics)."""
    import torch

    from experiments.data import load_dataset
    from experiments.runner import import_models, torch_settings
    from experiments.trainer import fit

    import_models(RUNTIME.plugins)
    data = load_dataset("synthetic")
    weights = []
    for name in ("1", "2"):
        (tmp_path / name).mkdir()
        with torch_settings(RUNTIME):
            model, _ = fit(config(), data, RUNTIME, RunStore(tmp_path / name))
        weights.append(model.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def host_syncs_per_epoch(steps: int) -> dict[str, int]:
    """Calls of the ops that make the host wait for the device (``nonzero``: a boolean mask's size;
    ``_local_scalar_dense``: ``.item()``), during one training epoch of ``steps`` steps of a tiny network."""
    from torch.profiler import ProfilerActivity, profile

    from experiments.data import load_dataset
    from experiments.runner import import_models, torch_settings
    from experiments.trainer import StepPath, prepare, train_epoch

    import_models(RUNTIME.plugins)
    data = load_dataset("synthetic")
    protocol = get_protocol("smoke", epochs=1, batch_size=10, train_per_class=steps, val_per_class=4)  # 10 classes
    cfg = RunConfig(grid="sync", variant="a", model="engine_test_net", dataset="synthetic", protocol=protocol, seed=0,
                    seeds=Seeds.derive(0))
    with torch_settings(RUNTIME):
        t = prepare(cfg, data, RUNTIME)
        assert len(t.batches) == steps
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train_epoch(t, StepPath(t.model), 1, None)
    counts = {e.key: e.count for e in prof.key_averages()}
    return {op: counts.get(op, 0) for op in ("aten::nonzero", "aten::_local_scalar_dense")}


def test_a_training_epoch_does_not_wait_for_the_device_at_every_step():
    """The host reads the device a fixed number of times per epoch (its loss and accuracy), however many steps."""
    few, many = host_syncs_per_epoch(4), host_syncs_per_epoch(12)
    assert few == many, (few, many)
    assert few["aten::nonzero"] == 0 and few["aten::_local_scalar_dense"] <= 2


def test_a_compiled_step_that_fails_falls_back_to_the_plain_step_and_says_so(tmp_path, monkeypatch):
    import torch

    def failing_compile(model, **_):
        def compiled(*args, **kwargs):
            raise RuntimeError("injected compile failure")
        return compiled

    plain = execute(config(), RUNTIME, tmp_path / "plain")
    monkeypatch.setattr(torch, "compile", failing_compile)
    compiled = execute(config(), RUNTIME.model_copy(update={"compile": True}), tmp_path / "compiled")
    assert plain["status"] == compiled["status"] == "ok"
    plain_epochs = RunStore.of(tmp_path / "plain", config()).load_metrics()
    compiled_epochs = RunStore.of(tmp_path / "compiled", config()).load_metrics()
    assert [m.pop("step") for m in compiled_epochs] == ["eager (compile failed: RuntimeError: injected compile failure)"] * 2
    assert "step" not in plain_epochs[0] and untimed(compiled_epochs) == untimed(plain_epochs)


def test_a_cuda_graphs_step_falls_back_to_the_compiled_step_then_the_plain_one_and_updates_with_the_fused_sgd(
        tmp_path, monkeypatch):
    import torch

    from experiments.data import load_dataset
    from experiments.trainer import StepPath, checkpoint, prepare, resume

    modes = []

    def compile_without_graphs(model, options=None, **_):  # capturing fails; compiling "works" (the model itself)
        modes.append(options)
        if options is None:
            return model
        calls = []

        def captured(*args, **kwargs):  # as CUDA graph trees: a warm-up call first, the capture on the second
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("injected capture failure")
            return model(*args, **kwargs)
        return captured

    monkeypatch.setattr(torch, "compile", compile_without_graphs)
    graphs = RUNTIME.model_copy(update={"compile": "cuda-graphs"})
    assert execute(config(), graphs, tmp_path / "graphs")["status"] == "ok"
    steps = {m["step"] for m in RunStore.of(tmp_path / "graphs", config()).load_metrics()}
    assert steps == {"compiled (cuda-graphs failed: RuntimeError: injected capture failure)"}
    # reduce-overhead's CUDA graphs, an error where inductor would skip them; one fallback, kept for the run
    assert modes == [{"triton.cudagraphs": True, "triton.cudagraph_or_error": True}, None]
    fused = prepare(config(), load_dataset("synthetic"), graphs)
    assert fused.optimizer.defaults["fused"] is True
    resume(fused, checkpoint(prepare(config(), load_dataset("synthetic"), RUNTIME), 1, []))  # a plain step's state
    assert all(group["fused"] for group in fused.optimizer.param_groups)  # the runtime's kernel, not the checkpoint's
    assert not prepare(config(), load_dataset("synthetic"), RUNTIME.model_copy(update={"compile": True})).optimizer.defaults[
        "fused"]

    def failing(model, options=None, **_):
        def compiled(*args, **kwargs):
            raise RuntimeError(f"injected {'capture' if options else 'compile'} failure")
        return compiled

    monkeypatch.setattr(torch, "compile", failing)
    path = StepPath(torch.nn.Identity(), "cuda-graphs")
    assert path.run(lambda forward: forward(3)) == 3
    assert path.label == ("eager (cuda-graphs failed: RuntimeError: injected capture failure; "
                          "compile failed: RuntimeError: injected compile failure)")

    def unsupported(model, **_):  # e.g. a Python that torch.compile does not support: it raises when called
        raise RuntimeError("injected: not supported here")

    monkeypatch.setattr(torch, "compile", unsupported)
    path = StepPath(torch.nn.Identity(), True)
    assert path.run(lambda forward: forward(3)) == 3
    assert path.label == "eager (compile failed: RuntimeError: injected: not supported here)"


def test_an_error_of_the_network_is_not_taken_for_a_compile_failure(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch, "compile", lambda model, **_: model)  # "compiles" to the model itself
    result = execute(config(fail_at_step=2), RUNTIME.model_copy(update={"compile": True}), tmp_path)
    assert result["status"] == "failed" and result["reason"] == "RuntimeError: injected failure"


def network_names() -> tuple[str, ...]:
    from benchmarks.gpu import networks

    return networks()


@pytest.mark.parametrize("name", network_names())
def test_the_study_networks_step_without_waiting_for_the_device(name):
    """Forward and backward of every network of (c) and (d) call neither ``nonzero`` nor ``.item()``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from baselines.registry import create_model

    model = create_model(name, num_classes=10).train()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.zeros(4, dtype=torch.long)).backward()
    counts = {e.key: e.count for e in prof.key_averages()}
    assert counts.get("aten::nonzero", 0) == counts.get("aten::_local_scalar_dense", 0) == 0


def test_a_gpu_runs_cost_is_measured_once_per_network_in_its_process(monkeypatch):
    from experiments import runner

    measured = []
    monkeypatch.setattr(runner, "measure_cost", lambda model, shape, repeats: measured.append(model) or {"params": len(measured)})
    monkeypatch.setattr(runner, "_NETWORK_COSTS", {})
    on_gpu, shape = RUNTIME.model_copy(update={"device": "cuda"}), (3, 8, 8)
    assert runner.run_cost(config("a"), on_gpu, "model", shape) == {"params": 1}
    assert runner.run_cost(config("a", seed=1), on_gpu, "model", shape) == {"params": 1}  # the same network: reused
    assert runner.run_cost(config("a", width=6), on_gpu, "model", shape) == {"params": 2}  # other options: measured
    assert runner.run_cost(config("a"), RUNTIME, "model", shape) == {"params": 3}  # a CPU run measures its own



def test_a_run_out_of_device_memory_is_no_failure_and_starts_again_with_one_run_fewer_at_once(tmp_path):
    from evidence.status import RunStatus
    from experiments.runner import execute_until

    marker = tmp_path / "oom-once"
    marker.write_text("")
    cfg = config("a", oom_once=str(marker))
    row = execute_until(cfg, RUNTIME, tmp_path / "alone")  # in this process: lost, resumable, never recorded failed
    assert row["status"] == RunStatus.LOST and row["out_of_memory"] and "out of device memory" in row["note"]
    assert RunStore.of(tmp_path / "alone", cfg).read_result() is None and not marker.exists()
    marker.write_text("")  # in a pool of two: its worker retires, and the run trains on the other in the same call
    configs = [config("a", oom_once=str(marker)), config("b")]
    sharing = RUNTIME.model_copy(update={"threads": None, "runs_sharing_device": 2})
    results = run_grid(configs, sharing, tmp_path / "pool", workers=2)
    assert [r["status"] for r in results] == [RunStatus.OK, RunStatus.OK] and not marker.exists()
    # the run that started again shared the device with one run fewer, and its env.json says so (its device time)
    envs = {c.variant: json.loads(RunStore.of(tmp_path / "pool", c).env.read_text()) for c in configs}
    assert envs["a"]["runtime"]["runs_sharing_device"] == 1 and envs["b"]["runtime"]["runs_sharing_device"] == 2


def test_a_terminated_command_stops_its_workers_and_leaves_their_runs_resumable(tmp_path):
    """SIGTERM to ``run.py`` (``kill``, ``timeout``) ends it as Ctrl-C does: the pool's workers stop with it instead
    of training on, orphaned, and their runs resume from their last checkpoint next time."""
    root, results = Path(__file__).resolve().parent.parent, tmp_path / "results"
    script = ("import sys\n"
              "from experiments import grids\n"
              "grids.GRIDS['slow'] = grids.Grid('slow', 'Long runs.', 'a', {v: grids.Variant('engine_test_net', "
              "{'width': w, 'step_seconds': 5}) for v, w in (('a', 4), ('b', 8))}, protocol='smoke')\n"
              "import run\n"
              f"sys.argv = ['run.py', 'ablate', 'slow', '--results', {str(results)!r}, '--seeds', '1', '--workers', '2',"
              " '--threads', '1', '--wandb', 'off', '--device', 'cpu', '--import', 'conftest']\n"
              "run.cli()\n")
    child = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")])})
    wait_for(lambda: len(list(results.glob("slow/*/env.json"))) >= 2, child, "both workers starting their runs")
    time.sleep(3)  # both workers are in their runs' steps now, each holding its run's lock
    assert child.poll() is None, child.communicate()[1]
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=HANG_GUARD_S)
    assert child.returncode == 130 and "interrupted; rerun the same command to resume" in err
    runs = sorted(p.parent for p in results.glob("slow/*/env.json"))
    assert len(runs) == 2 and not any((run / "result.json").exists() for run in runs)
    for run in runs:  # no worker trains on: each run's lock is free, and the run is there to resume
        with FileLock(run / "run.lock", timeout=0):
            assert RunStore(run).status() == "partial" or not (run / "checkpoint.pt").exists()
