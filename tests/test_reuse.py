"""Twin runs (experiments.reuse): a finished run of the same network, data and seeds in another grid is copied."""
from __future__ import annotations

import json

import timm
import torch

from conftest import TinyNet
from experiments.config import RunConfig, Runtime, Seeds, get_protocol
from experiments.reuse import computation_key, copies_twin, find_twin
from experiments.runner import execute
from experiments.store import RunStore

RUNTIME = Runtime(device="cpu", threads=1, wandb="off", plugins=("conftest",))


class TwinNet(TinyNet):
    """TinyNet that records its resolved constructor arguments, as DyClotNet does."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 8, **_: object) -> None:  # timm's own kwargs
        super().__init__(num_classes, in_chans, width)
        self.arch_args = {"num_classes": num_classes, "in_chans": in_chans, "width": width}


if not timm.is_model("engine_test_twin_net"):
    @timm.models.register_model
    def engine_test_twin_net(pretrained: bool = False, **kwargs) -> TwinNet:
        return TwinNet(**kwargs)


def config(grid: str, variant: str, seed: int = 0, model: str = "engine_test_twin_net", **model_kwargs) -> RunConfig:
    return RunConfig(grid=grid, variant=variant, model=model, model_kwargs=model_kwargs, dataset="synthetic",
                     protocol=get_protocol("smoke", epochs=1), seed=seed, seeds=Seeds.derive(seed))


def test_a_twin_in_another_grid_is_copied_instead_of_trained(tmp_path):
    first = execute(config("g1", "a"), RUNTIME, tmp_path)
    twin_cfg = config("g2", "b", width=8)  # width 8 is the default: the same network, spelled differently
    second = execute(twin_cfg, RUNTIME, tmp_path)
    assert first["status"] == second["status"] == "ok" and "reused_from" not in first
    assert second["reused_from"] == f"g1/{first['run_id']}"
    assert (second["run_id"], second["grid"], second["variant"]) == (twin_cfg.run_id, "g2", "b")
    assert second["metrics"] == first["metrics"] and second["cost"] == first["cost"]
    stores = RunStore.of(tmp_path, config("g1", "a")), RunStore.of(tmp_path, twin_cfg)
    assert stores[1].metrics.read_text() == stores[0].metrics.read_text()
    assert stores[1].read_result() == second and not stores[1].checkpoint.exists()
    third = execute(config("g3", "c"), RUNTIME, tmp_path)  # a twin of a copy points at the run that trained
    assert third["reused_from"] == f"g1/{first['run_id']}"
    assert execute(twin_cfg, RUNTIME, tmp_path)["skipped"]  # finished now: not copied again


def test_only_finished_runs_of_the_same_computation_and_environment_are_twins(tmp_path):
    first = execute(config("g1", "a"), RUNTIME, tmp_path)
    store = RunStore.of(tmp_path, config("g1", "a"))
    env = json.loads(store.env.read_text())
    assert find_twin(config("g2", "a"), tmp_path, env)[1] == first
    assert find_twin(config("g2", "a", width=16), tmp_path, env) is None  # another network
    assert find_twin(config("g2", "a", seed=1), tmp_path, env) is None  # other seeds
    other_data = config("g2", "a").model_copy(update={"dataset": "fashion-mnist"})
    assert find_twin(other_data, tmp_path, env) is None
    assert computation_key(config("g2", "a", model="engine_test_net")) is None  # no arch_args: never assumed equal
    for key, value in (("torch_threads", 2), ("data_sha256", "0" * 64)):  # numerics-deciding settings differ
        assert find_twin(config("g2", "a"), tmp_path, {**env, key: value}) is None
    assert find_twin(config("g2", "a"), tmp_path, {**env, "runtime": {**env["runtime"], "compile": True}}) is None
    for package in ("torch", "torchvision", "timm", "numpy", "pillow"):  # another version may compute otherwise
        assert find_twin(config("g2", "a"), tmp_path, {**env, "packages": {**env["packages"], package: "0.0"}}) is None
    moved = store.dir.rename(store.dir.with_name("0" * 16))  # a config that does not hash to its folder
    assert find_twin(config("g2", "a"), tmp_path, env) is None
    moved.rename(store.dir)
    store.result.write_text(json.dumps({**first, "status": "failed", "reason": "x"}))  # failed runs are no twins
    assert find_twin(config("g2", "a"), tmp_path, env) is None


def test_a_stale_checkpoint_of_an_earlier_attempt_is_removed_when_a_twin_is_copied(tmp_path):
    execute(config("g1", "a"), RUNTIME, tmp_path)
    late = RunStore.of(tmp_path, config("g2", "b"))
    late.dir.mkdir(parents=True)
    late.checkpoint.write_bytes(b"partial")
    late.error_log.write_text("old failure")
    assert execute(config("g2", "b"), RUNTIME, tmp_path)["reused_from"]
    assert not late.checkpoint.exists() and not late.error_log.exists()


def test_no_reuse_trains_the_twin_and_gets_the_same_numbers(tmp_path):
    first = execute(config("g1", "a"), RUNTIME, tmp_path)
    second = execute(config("g2", "b"), RUNTIME.model_copy(update={"reuse": False}), tmp_path)
    assert "reused_from" not in second
    timing = {"epoch_seconds", "images_per_second", "eval_seconds", "train_seconds"}
    assert ({k: v for k, v in second["metrics"].items() if k not in timing}
            == {k: v for k, v in first["metrics"].items() if k not in timing})


def test_dyclotnet_spellings_of_the_same_network_share_a_key():
    def key(**kwargs):
        return computation_key(config("g", "v", model="dyclotnet_025", **kwargs))

    assert key() == key(p=2) == key(expansion="dct", recalibrator="sigmoid_add") is not None
    assert len({key(), key(recalibrator="none"), key(p=4), key(expansion="pointwise")}) == 4


def test_the_time_box_prices_a_run_that_copies_its_twin_at_its_start_up_alone(tmp_path):
    from experiments.timebox import RUN_OVERHEAD_S, starts_in_time

    execute(config("g1", "a"), RUNTIME, tmp_path)
    copy, other_seed = config("g2", "b"), config("g2", "b", seed=1)
    copied = copies_twin(tmp_path, RUNTIME, threads=1)
    assert copied(copy) and not copied(other_seed)
    # device auto (the commands' default) is resolved as the run resolves it: cpu here, like the twin
    assert copies_twin(tmp_path, RUNTIME.model_copy(update={"device": "auto"}), threads=1)(copy) \
        == (not torch.cuda.is_available())
    assert not copies_twin(tmp_path, RUNTIME, threads=2)(copy)  # torch threads decide the numerics: no twin
    assert not copies_twin(tmp_path, RUNTIME.model_copy(update={"reuse": False}), threads=1)(copy)
    slow_epochs = {"epoch": 1, "epoch_seconds": 1e6, "eval_seconds": 0.0}  # the network's measured epoch: no run fits
    RunStore.of(tmp_path, config("g1", "a")).metrics.write_text(json.dumps(slow_epochs) + "\n")
    may_start = starts_in_time(1000.0, tmp_path, "smoke", clock=lambda: 1000.0 - RUN_OVERHEAD_S - 5, copied=copied)
    assert may_start(copy) == (True, f"a copy of its finished twin needs ~{RUN_OVERHEAD_S:.0f} s, 25 s left")
    assert not may_start(other_seed)[0] and "needs ~1000020 s" in may_start(other_seed)[1]
    assert execute(copy, RUNTIME, tmp_path)["reused_from"]  # the run itself finds the twin the time box found
    assert "reused_from" not in execute(other_seed, RUNTIME, tmp_path)
