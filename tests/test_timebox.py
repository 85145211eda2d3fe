"""The time box (``--minutes``, ``experiments.timebox``) of the CPU commands, shared with ``gpu-next``."""
from __future__ import annotations

import json

import pytest

import run
from experiments import grids, timebox
from experiments.executors import StartOrder

TINY = grids.Grid("tiny", "Two tiny test networks.", "a",
                  {"a": grids.Variant("engine_test_net"), "b": grids.Variant("engine_test_net", {"width": 4})},
                  protocol="smoke")
FAST = ["--threads", "1", "--wandb", "off", "--device", "cpu", "--import", "conftest"]


@pytest.fixture(autouse=True)
def tiny_grid(monkeypatch):
    monkeypatch.setitem(grids.GRIDS, "tiny", TINY)


def measured(results, name: str, seconds: float, processor: str | None = None, threads: int = 1,
             kwargs: dict | None = None, protocol: str = "smoke") -> None:
    """A run folder of engine_test_net (``kwargs``) under ``protocol`` with one epoch of ``seconds``, trained on
    ``processor`` with ``threads`` (no env.json without ``processor``)."""
    folder = results / "earlier" / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "engine_test_net", "model_kwargs": kwargs or {},
                                                    "protocol": {"name": protocol}}))
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "epoch_seconds": seconds, "eval_seconds": 0.0}) + "\n")
    if processor is not None:
        (folder / "env.json").write_text(json.dumps({"cpu": processor, "gpu": None, "runtime": {
            "device": "cpu", "threads": threads, "runs_sharing_device": 1}}))


def test_estimates_come_from_the_runs_trained_most_like_this_call_first(tmp_path):
    measured(tmp_path, "slow", 100.0, "Old CPU")
    measured(tmp_path, "fast", 10.0, "New CPU", threads=1)
    measured(tmp_path, "two-threads", 20.0, "New CPU", threads=2)
    measured(tmp_path, "unrecorded", 40.0)
    measured(tmp_path, "wide-elsewhere", 300.0, "Old CPU", kwargs={"width": 4})
    a, b = grids.resolve(TINY, "smoke", 1, plugins=("conftest",))[0]

    def per_epoch(cfg, here):
        tiers = timebox.measured_epoch_seconds(tmp_path, "smoke", here)
        return timebox.estimate_seconds(cfg, cfg.protocol.epochs - 1, tiers) - timebox.RUN_OVERHEAD_S

    assert per_epoch(a, ("New CPU", 1, 1)) == 10.0  # trained as here: that alone
    assert per_epoch(a, ("New CPU", 4, 1)) == 15.0  # this processor, other threads
    assert per_epoch(a, ("Another CPU", 1, 1)) == 30.0  # anywhere: median of 100, 10, 20, 40
    assert per_epoch(a, None) == 30.0
    assert per_epoch(b, ("New CPU", 1, 1)) == 10.0  # its model here beats its own network measured elsewhere
    assert per_epoch(b, ("Another CPU", 1, 1)) == 300.0  # nothing here: its own network first
    assert timebox.measured_epoch_seconds(tmp_path, "cpu", ("New CPU", 1, 1)) == [{}, {}, {}]


def test_a_time_box_starts_no_run_that_would_not_end_in_it_and_that_is_no_failure(tmp_path, capsys, monkeypatch):
    from study import questions

    measured(tmp_path, "slow", 100.0)  # smoke runs of engine_test_net: 100 s an epoch, on whatever processor
    args = ["ablate", "tiny", "--seeds", "2", "--results", str(tmp_path), *FAST]
    assert run.main([*args, "--minutes", "1"]) == 0  # 40 s to train in: no run fits
    out = " ".join(capsys.readouterr().out.split())
    assert "0 trained now" in out and "4 not started (they would not end in time)" in out and "0 failed" in out
    assert out.count(" todo ") == 4 and "a seed 0: not started: would not finish in time (needs ~" in out
    assert not list(tmp_path.glob("tiny/*/result.json"))
    monkeypatch.setattr(questions, "SECOND_EDITION", ("tiny",))  # a question: its search first
    assert run.main(["study", "--until-decided", "--protocol", "smoke", "--only", "tiny", "--minutes", "1",
                     "--results", str(tmp_path), *FAST]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "search runs not finished yet" in out and "grids with failed runs" not in out
    assert not (tmp_path / "tiny-lr" / "chosen.json").exists() and not list(tmp_path.glob("tiny*/*/result.json"))


def test_a_time_box_with_room_trains_what_fits_and_no_network_never_measured(tmp_path, capsys):
    args = ["ablate", "tiny", "--seeds", "1", "--results", str(tmp_path), "--minutes", "30", *FAST]
    assert run.main(args) == 0  # nothing measured: nothing says a run would end in time
    out = " ".join(capsys.readouterr().out.split())
    assert "0 trained now" in out and "no epoch of engine_test_net under smoke measured yet, so nothing says" in out
    assert run.main([*args, "--finish-later"]) == 0  # its checkpoint outlives the call: it starts
    assert "2 trained now" in capsys.readouterr().out and len(list(tmp_path.glob("tiny/*/result.json"))) == 2
    measured(tmp_path, "quick", 1.0)
    assert run.main([*args, "--seeds", "2"]) == 0
    assert "2 trained now" in capsys.readouterr().out and len(list(tmp_path.glob("tiny/*/result.json"))) == 4


def test_a_look_the_time_box_cut_short_stays_open_and_nothing_is_written_before_the_grid_exists(tmp_path, capsys):
    args = ["ablate", "tiny", "--until-decided", "--max-seeds", "3", "--results", str(tmp_path), *FAST]
    assert run.main([*args, "--minutes", "0.2"]) == 0  # the box has ended before the first look
    out = " ".join(capsys.readouterr().out.split())
    assert "open for the next call: the time box (--minutes) ended first" in out and not (tmp_path / "tiny").exists()
    measured(tmp_path, "slow", 100.0)
    assert run.main([*args, "--minutes", "1"]) == 0  # the first look's runs do not fit
    assert "open for the next call" in capsys.readouterr().out and not list(tmp_path.glob("tiny/*/result.json"))
    states = json.loads((tmp_path / "tiny" / "sequential.json").read_text())["variants"]
    assert {v["label"] for v in states.values()} == {"continue"}  # not "stopped": the next call goes on


def test_a_spare_that_would_not_end_in_time_ends_the_spares():
    configs, _ = grids.resolve(TINY, "smoke", 3, plugins=("conftest",))
    now, spare = [c for c in configs if c.seed == 0], [c for c in configs if c.seed > 0]
    order = StartOrder(now, spare, may_start=lambda cfg: (cfg.seed == 0, "no time"))
    assert [order.next(True)[0] for _ in now] == now
    assert order.next(True) is None and order.spare == [] and order.not_started == {}


@pytest.mark.parametrize("args, message", [
    (["ablate", "tiny", "--minutes", "0"], "--minutes must be a number of minutes > 0, got 0.0"),
    (["study", "--minutes", "-2"], "--minutes must be a number of minutes > 0, got -2.0"),
    (["ablate", "tiny", "--minutes", "5", "--executor", "ray"], "--minutes needs --executor local"),
    (["tune", "tiny", "--finish-later"], "--finish-later needs --minutes"),
    (["study", "--until-decided", "--protocol", "smoke", "--finish-later"], "--finish-later needs --minutes"),
])
def test_bad_time_boxes_are_one_line_errors(tmp_path, capsys, args, message):
    assert run.main([*args, "--results", str(tmp_path), "--import", "conftest"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_env_json_names_the_gpu_a_run_trains_on_and_the_estimate_reads_it_back(monkeypatch):
    """On a machine with two kinds of GPU, a run on cuda:1 records cuda:1's name (not device 0's), as the time box
    names the processor it trains on; a CPU run records no GPU, so it is not counted as a GPU run."""
    import torch

    from experiments.config import Runtime
    from experiments.store import environment, processor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: f"GPU kind {index}")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    on_second = Runtime(device="cuda:1", threads=1, wandb="off")
    env = environment(on_second)
    assert env["gpu"] == "GPU kind 1" == processor(on_second)
    assert timebox.machine_of(env) == timebox.machine_here(on_second)
    assert environment(Runtime(device="cuda:2", threads=1, wandb="off"))["gpu"] is None  # no such device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # e.g. a Ray driver without a GPU
    assert environment(on_second)["gpu"] is None and processor(on_second) == processor(Runtime(device="cpu"))
    on_cpu = Runtime(device="cpu", wandb="off")
    assert environment(on_cpu)["gpu"] is None and timebox.machine_of(environment(on_cpu))[0] == processor(on_cpu)
