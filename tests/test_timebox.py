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


def measured(results, name: str, seconds: float, processor: str | None = None, model: str = "engine_test_net",
             protocol: str = "smoke") -> None:
    """A run folder of ``model`` under ``protocol`` with one epoch of ``seconds``, trained on ``processor``."""
    folder = results / "earlier" / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": model, "model_kwargs": {}, "protocol": {"name": protocol}}))
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "epoch_seconds": seconds, "eval_seconds": 0.0}) + "\n")
    if processor is not None:
        (folder / "env.json").write_text(json.dumps({"cpu": processor, "gpu": None, "runtime": {"device": "cpu"}}))


def test_epochs_measured_on_the_same_processor_count_alone_where_there_are_any(tmp_path):
    measured(tmp_path, "slow", 100.0, "Old CPU")
    measured(tmp_path, "fast", 10.0, "New CPU")
    measured(tmp_path, "unrecorded", 40.0)
    assert timebox.measured_epoch_seconds(tmp_path, "smoke", "New CPU")["engine_test_net"] == 10.0
    assert timebox.measured_epoch_seconds(tmp_path, "smoke", "Another CPU")["engine_test_net"] == 40.0  # all three
    assert timebox.measured_epoch_seconds(tmp_path, "smoke")["engine_test_net"] == 40.0
    assert timebox.measured_epoch_seconds(tmp_path, "cpu", "New CPU") == {}


def test_a_time_box_starts_no_run_that_would_not_end_in_it_and_that_is_no_failure(tmp_path, capsys, monkeypatch):
    from study import questions

    monkeypatch.setattr(questions, "SECOND_EDITION", ("tiny",))
    measured(tmp_path, "slow", 100.0)  # smoke runs of engine_test_net: 100 s an epoch, on whatever processor
    args = ["ablate", "tiny", "--seeds", "2", "--results", str(tmp_path), *FAST]
    assert run.main([*args, "--minutes", "1"]) == 0  # 40 s to train in: no run fits
    out = " ".join(capsys.readouterr().out.split())
    assert "0 trained now" in out and "4 not started (they would not end in time)" in out and "0 failed" in out
    assert out.count(" todo ") == 4 and "a seed 0: not started: would not finish in time (needs ~" in out
    assert not list(tmp_path.glob("tiny/*/result.json"))
    assert run.main(["study", "--until-decided", "--protocol", "smoke", "--only", "tiny", "--minutes", "1",
                     "--results", str(tmp_path), *FAST]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "search runs not finished yet" in out and "grids with failed runs" not in out
    assert not (tmp_path / "tiny-lr" / "chosen.json").exists() and not list(tmp_path.glob("tiny*/*/result.json"))


def test_a_time_box_with_room_trains_what_fits(tmp_path, capsys):
    args = ["ablate", "tiny", "--seeds", "1", "--results", str(tmp_path), "--minutes", "30", *FAST]
    assert run.main(args) == 0  # no epoch measured: a network starts while the overhead fits
    assert "2 trained now" in capsys.readouterr().out and len(list(tmp_path.glob("tiny/*/result.json"))) == 2


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
])
def test_bad_time_boxes_are_one_line_errors(tmp_path, capsys, args, message):
    assert run.main([*args, "--results", str(tmp_path), "--import", "conftest"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
