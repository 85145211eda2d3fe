"""The smoke grid through a local Ray instance gives the same results as the local executor."""
from __future__ import annotations

import json

import pytest

from experiments.config import Runtime
from experiments.executors import run_grid
from experiments.grids import GRIDS, resolve
from experiments.store import RunStore

ray = pytest.importorskip("ray")


def test_ray_executor_matches_local(tmp_path):
    configs, _ = resolve(GRIDS["smoke"], protocol="smoke", seeds=1)
    runtime = Runtime(device="cpu", threads=1, wandb="off")
    assert not ray.is_initialized()
    on_ray = run_grid(configs, runtime, tmp_path / "ray", executor="ray")  # starts a local Ray, shuts it down after
    assert not ray.is_initialized()
    local = run_grid(configs, runtime, tmp_path / "local")
    untimed = lambda r: {k: v for k, v in r["metrics"].items() if k not in ("train_seconds", "images_per_second")}  # noqa: E731
    assert [r["status"] for r in on_ray] == ["ok"] * len(configs)
    assert [untimed(r) for r in on_ray] == [untimed(r) for r in local]
    assert all(RunStore.of(tmp_path / "ray", c).status() == "ok" for c in configs)


def test_ray_places_runs_on_a_share_of_a_gpu_and_records_how_many_share_it(tmp_path):
    from experiments.executors import ray_placement

    runtime = Runtime(device="auto", threads=1, wandb="off")
    assert ray_placement(runtime, 0, 4) == (runtime, {"num_cpus": 1, "num_gpus": 0})  # no GPU in the cluster
    assert ray_placement(runtime.model_copy(update={"device": "cpu"}), 2, 4)[1]["num_gpus"] == 0  # a CPU run takes none
    shared, placement = ray_placement(runtime, 2, 4)
    assert placement == {"num_cpus": 1, "num_gpus": 0.25} and shared.runs_sharing_device == 4
    # a local Ray with one (declared) GPU: two runs at half a GPU each; on a machine without CUDA they train on the CPU
    configs, _ = resolve(GRIDS["smoke"], protocol="smoke", seeds=1)
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_grid(configs[:2], runtime, tmp_path, executor="ray", workers=2)
    finally:
        ray.shutdown()
    assert [r["status"] for r in on_ray] == ["ok", "ok"]
    envs = [json.loads(RunStore.of(tmp_path, c).env.read_text()) for c in configs[:2]]
    assert all(env["runtime"]["runs_sharing_device"] == 2 for env in envs), envs[0]
