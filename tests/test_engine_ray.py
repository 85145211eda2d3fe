"""The smoke grid through a local Ray instance gives the same results as the local executor."""
from __future__ import annotations

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
