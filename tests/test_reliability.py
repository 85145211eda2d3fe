"""Faults, interruptions and bad input lose nothing (docs/reliability.md lists the guarantees).

Every case really does the fault: a grid process killed with SIGKILL, two grid processes on one
results directory, truncated files, a full tmpfs, a NaN loss, a Ray worker killing itself. The runs
use the tiny test network of conftest.py under the smoke protocol (2 epochs, ~0.5 s a run).
The bad-input fuzzing (hypothesis) is in test_reliability_fuzz.py.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import run
from conftest import wait_for
from experiments import grids
from experiments.config import RunConfig, Runtime, Seeds, get_protocol
from experiments.executors import run_grid
from experiments.runner import execute
from experiments.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
RUNTIME = Runtime(device="cpu", threads=1, wandb="off", plugins=("conftest",))
FAST = ["--threads", "1", "--wandb", "off", "--device", "cpu", "--import", "conftest"]
TIMING = {"epoch_seconds", "images_per_second", "eval_seconds", "train_seconds"}

# Grids of the tiny network, injected into experiments.grids.GRIDS (in-process by a fixture, in the
# subprocesses by DRIVER). Run order of `ablate rel --seeds 2`: (a, 0), (b, 0), (a, 1), (b, 1).
REL = grids.Grid("rel", "Two tiny networks (reliability tests).", "a",
                 {"a": grids.Variant("engine_test_net"), "b": grids.Variant("engine_test_net", {"width": 4})},
                 protocol="smoke")
REL_NAN = grids.Grid("rel-nan", "A tiny network whose loss becomes NaN at step 3.", "a",
                     {"a": grids.Variant("engine_test_net"), "b": grids.Variant("engine_test_net", {"width": 4}),
                      "nan": grids.Variant("engine_test_net", {"nan_at_step": 3})}, protocol="smoke")
TEST_GRIDS = {g.name: g for g in (REL, REL_NAN)}

# A grid process as the user starts it (`run.py ablate ...`), plus two test hooks installed by
# environment variables: REL_TRACE appends "pid run_id epoch" for every epoch trained (to prove no
# epoch is trained twice), REL_PAUSE_AFTER=N makes the process wait to be killed right after the
# epoch-1 checkpoint of the first run started once N runs are finished (marker file REL_MARKER).
DRIVER = """
import os, sys, time
sys.path[:0] = [{root!r}, {tests!r}]
from experiments import grids
from experiments.store import RunStore
import test_reliability
grids.GRIDS.update(test_reliability.TEST_GRIDS)
trace, pause_after, marker = os.environ.get("REL_TRACE"), os.environ.get("REL_PAUSE_AFTER"), os.environ.get("REL_MARKER")
append_metrics, save_checkpoint = RunStore.append_metrics, RunStore.save_checkpoint
def traced(self, metrics):
    append_metrics(self, metrics)
    if trace:
        with open(trace, "a") as f:
            f.write(f"{{os.getpid()}} {{self.dir.name}} {{metrics['epoch']}}\\n")
def paused(self, state):
    save_checkpoint(self, state)
    finished = len(list(self.dir.parent.glob("*/result.json")))
    if pause_after and state["epoch"] == 1 and finished >= int(pause_after) and not os.path.exists(marker):
        open(marker + ".tmp", "w").write(self.dir.name)
        os.replace(marker + ".tmp", marker)
        time.sleep(600)  # SIGKILLed here, between epoch 1 and epoch 2 of this run
RunStore.append_metrics, RunStore.save_checkpoint = traced, paused
import run
sys.exit(run.main(sys.argv[1:]))
"""


@pytest.fixture(autouse=True)
def test_grids(monkeypatch):
    for name, grid in TEST_GRIDS.items():
        monkeypatch.setitem(grids.GRIDS, name, grid)


def untimed(rows):
    if isinstance(rows, dict):
        return {k: v for k, v in rows.items() if k not in TIMING}
    return [untimed(r) for r in rows]


def grid_configs(grid: grids.Grid, seeds: int) -> list[RunConfig]:
    return grids.resolve(grid, seeds=seeds, plugins=("conftest",))[0]


def grid_process(results: Path, *args: str, **env: str) -> subprocess.Popen:
    """`run.py ablate rel --seeds 2 --results RESULTS ...` in a real subprocess (the DRIVER)."""
    code = DRIVER.format(root=str(ROOT), tests=str(TESTS))
    argv = ["ablate", "rel", "--seeds", "2", "--results", str(results), *FAST, *args]
    return subprocess.Popen([sys.executable, "-c", code, *argv], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def trace_rows(path: Path) -> list[tuple[int, str, int]]:
    return [(int(p), r, int(e)) for p, r, e in (line.split() for line in path.read_text().splitlines())]


def snapshot(results: Path) -> dict[Path, tuple[int, bytes]]:
    """mtime and content of every result.json."""
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in results.glob("*/*/result.json")}


def epochs_of(store: RunStore) -> list[int]:
    return [m["epoch"] for m in store.load_metrics()]


def no_temp_files(results: Path) -> bool:
    return not [p for p in results.rglob(".*.tmp")]


def test_waiting_on_a_child_that_exits_first_fails_with_its_exit_code_and_stderr():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit('no epoch today')"], stderr=subprocess.PIPE,
                             text=True)
    with pytest.raises(AssertionError, match=r"the marker: the child exited first \(exit code 1\): no epoch today"):
        wait_for(lambda: False, child, "the marker")
    wait_for(lambda: True, child, "a point already reached")  # ready: no failure, whatever the child did


# --- kill -9 of a grid process ------------------------------------------------------------------

def test_sigkilled_grid_resumes_without_losing_or_repeating_runs(tmp_path, capsys):
    results, trace, marker = tmp_path / "results", tmp_path / "trace", tmp_path / "paused"
    child = grid_process(results, REL_TRACE=str(trace), REL_PAUSE_AFTER="2", REL_MARKER=str(marker))
    wait_for(marker.exists, child, "the grid reaching its third run")
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL

    configs = grid_configs(REL, seeds=2)
    stores = {c.run_id: RunStore.of(results, c) for c in configs}
    interrupted = marker.read_text()
    assert interrupted == configs[2].run_id  # (a, seed 1): the third run
    finished = snapshot(results)
    assert len(finished) == 2 and {p.parent.name for p in finished} == {configs[0].run_id, configs[1].run_id}
    assert epochs_of(stores[interrupted]) == [1] and not stores[interrupted].result.exists()
    assert run.main(["status", "rel", "--seeds", "2", "--results", str(results), "--import", "conftest"]) == 0
    assert "ok 2, running 0, failed 0, partial 1, to do 1" in capsys.readouterr().out  # the lock died with it

    code, out, err = finish(grid_process(results, REL_TRACE=str(trace)))
    assert code == 0, err
    assert "1 trained now, 1 resumed from a checkpoint" in " ".join(out.split())
    assert all(snapshot(results)[p] == v for p, v in finished.items())  # finished runs untouched (mtime, bytes)
    rows = trace_rows(trace)
    trained = [(r, e) for _, r, e in rows]
    assert sorted(trained) == sorted({(c.run_id, e) for c in configs for e in (1, 2)})  # every epoch exactly once
    first_pid = rows[0][0]
    assert [(p == first_pid, e) for p, r, e in rows if r == interrupted] == [(True, 1), (False, 2)]  # resumed
    for store in stores.values():
        assert store.read_result()["status"] == "ok" and epochs_of(store) == [1, 2]

    straight = execute(configs[2], RUNTIME, tmp_path / "straight")  # the same run, never interrupted
    resumed = stores[interrupted].read_result()
    assert untimed(resumed["metrics"]) == untimed(straight["metrics"])
    assert untimed(stores[interrupted].load_metrics()) == untimed(RunStore.of(tmp_path / "straight", configs[2]).load_metrics())


# --- two grid processes on one results directory ------------------------------------------------

def test_two_grid_processes_share_a_results_dir_without_running_a_run_twice(tmp_path):
    results, trace = tmp_path / "results", tmp_path / "trace"
    first, second = grid_process(results, REL_TRACE=str(trace)), grid_process(results, REL_TRACE=str(trace))
    outcomes = [finish(first), finish(second)]
    assert [code for code, _, _ in outcomes] == [0, 0], [err for _, _, err in outcomes]
    executed = [int(" ".join(out.split()).split(" trained now")[0].rsplit(" ", 1)[1]) for _, out, _ in outcomes]
    assert sum(executed) == 4  # each of the 4 runs executed by exactly one of the processes
    rows = trace_rows(trace)
    configs = grid_configs(REL, seeds=2)
    assert sorted((r, e) for _, r, e in rows) == sorted((c.run_id, e) for c in configs for e in (1, 2))
    for run_id in {r for _, r, _ in rows}:
        assert len({p for p, r, _ in rows if r == run_id}) == 1  # one process per run
    for cfg in configs:
        store = RunStore.of(results, cfg)
        assert store.read_result()["status"] == "ok" and epochs_of(store) == [1, 2]
        assert json.loads(store.config.read_text())["run_id"] == cfg.run_id
        assert len(list(store.dir.glob("result*"))) == 1
    assert json.loads((results / "rel" / "grid.json").read_text())["grid"] == "rel"
    assert no_temp_files(results)


# --- truncated or empty files -------------------------------------------------------------------

def interrupted_after_epoch_1(cfg: RunConfig, results: Path) -> RunStore:
    """Run ``cfg`` and stop it (KeyboardInterrupt) after its first epoch, as a kill would."""
    def stop(metrics: dict) -> None:
        if metrics["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(cfg, RUNTIME, results, on_epoch=stop)
    return RunStore.of(results, cfg)


def write_grid_json(results: Path, grid: grids.Grid, configs: list[RunConfig]) -> None:
    (results / grid.name).mkdir(parents=True, exist_ok=True)
    (results / grid.name / "grid.json").write_text(json.dumps(grids.grid_json(grid, configs, {})))


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    cfg = grid_configs(REL, seeds=1)[0]
    results = tmp_path_factory.mktemp("straight")
    result = execute(cfg, RUNTIME, results)
    return cfg, result, RunStore.of(results, cfg).load_metrics()


DAMAGE = {"empty": lambda b: b"", "truncated": lambda b: b[: len(b) // 2]}


@pytest.mark.parametrize("damage", ["empty", "truncated"])
@pytest.mark.parametrize("file", ["result.json", "checkpoint.pt", "metrics.jsonl", "all"])
def test_truncated_or_empty_files_are_detected_and_the_run_recovers(tmp_path, caplog, straight_run, file, damage):
    from evidence.load import load_curves, load_results

    cfg, straight, straight_metrics = straight_run
    results = tmp_path / "results"
    write_grid_json(results, REL, [cfg])
    if file == "result.json":  # a finished run whose result.json was cut
        execute(cfg, RUNTIME, results)
        store = RunStore.of(results, cfg)
    else:  # an interrupted run (epoch 1 of 2 done) whose checkpoint / metrics were cut
        store = interrupted_after_epoch_1(cfg, results)
        if file == "all":
            store.result.write_text(json.dumps(straight)[:40])
    for path in ([store.result, store.checkpoint, store.metrics] if file == "all" else [store.dir / file]):
        path.write_bytes(DAMAGE[damage](path.read_bytes()))

    frame = load_results(results)  # analysis: a cut result.json is "corrupt", a missing one "unfinished"
    assert list(frame["status"]) == ["corrupt" if file in ("result.json", "all") else "unfinished"]
    assert frame["reason"][0] and load_curves(results).empty  # nothing of this run is read as a result
    assert store.status() == "partial"  # resumable, not done

    caplog.set_level(logging.WARNING)
    again = execute(cfg, RUNTIME, results)
    warned = caplog.text
    if file in ("result.json", "all"):
        assert "result.json is empty, truncated or not a result" in warned
    if file in ("checkpoint.pt", "all"):
        assert "checkpoint.pt is unreadable" in warned and "restarting the run" in warned
    assert again["status"] == "ok" and not again.get("skipped")
    assert untimed(again["metrics"]) == untimed(straight["metrics"])
    assert epochs_of(store) == [1, 2] and untimed(store.load_metrics()) == untimed(straight_metrics)
    assert list(load_results(results)["status"]) == ["ok"] and no_temp_files(results)


@pytest.mark.parametrize("content", ["[]", "null", "{}", '{"status": "ok"', '"ok"', '{"status": "done"}'])
def test_a_result_json_that_is_not_a_result_never_crashes_the_grid(tmp_path, content):
    cfg = grid_configs(REL, seeds=1)[0]
    store = RunStore.of(tmp_path, cfg)
    store.dir.mkdir(parents=True)
    store.result.write_text(content)
    assert store.status() == "todo"
    (result,) = run_grid([cfg], RUNTIME, tmp_path)
    assert result["status"] == "ok" and store.read_result()["status"] == "ok"


# --- a full or unwritable results directory -----------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and mount permission; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip() or made.returncode}); "
                    "test_full_disk_in_the_middle_of_a_run_simulated covers the same path")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a filler file until the file system says ENOSPC."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        chunk = 1 << 20
        while chunk:
            try:
                os.write(fd, b"x" * chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC
                chunk //= 2
    finally:
        os.close(fd)
    return filler


def assert_clean_one_line_error(code: int, err: str, *phrases: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    for phrase in phrases:
        assert phrase in err, err


def test_full_disk_in_the_middle_of_a_run(tiny_disk, tmp_path, capsys, monkeypatch):
    results = tiny_disk / "results"
    args = ["ablate", "rel", "--seeds", "1", "--results", str(results), *FAST]
    assert run.main(args) == 0  # (a, 0) and (b, 0) finish
    finished = snapshot(results)
    configs = grid_configs(REL, seeds=2)
    victim = RunStore.of(results, configs[2])  # (a, 1): the disk fills up during its second epoch

    append_metrics = RunStore.append_metrics

    def fill_before_epoch_2(self, metrics):
        if metrics["epoch"] == 2 and not (tiny_disk / "filler").exists():
            fill(tiny_disk)
        append_metrics(self, metrics)

    monkeypatch.setattr(RunStore, "append_metrics", fill_before_epoch_2)
    capsys.readouterr()
    code = run.main(["ablate", "rel", "--seeds", "2", "--results", str(results), *FAST])
    assert_clean_one_line_error(code, capsys.readouterr().err, "cannot write", "the disk is full", "finished runs are intact")
    assert all(snapshot(results)[p] == v for p, v in finished.items()) and len(snapshot(results)) == 2
    assert not victim.result.exists() and victim.load_checkpoint()["epoch"] == 1  # the last good state survives
    assert no_temp_files(results)

    # still full when the next grid starts: refused before any work
    code = run.main(["ablate", "rel", "--seeds", "2", "--results", str(results), *FAST])
    assert_clean_one_line_error(code, capsys.readouterr().err, "not writable", "No space left on device")

    monkeypatch.setattr(RunStore, "append_metrics", append_metrics)
    (tiny_disk / "filler").unlink()  # space again: the grid resumes and finishes
    assert run.main(["ablate", "rel", "--seeds", "2", "--results", str(results), *FAST]) == 0
    assert all(snapshot(results)[p] == v for p, v in finished.items()) and len(snapshot(results)) == 4
    straight = execute(configs[2], RUNTIME, tmp_path / "straight")
    assert untimed(victim.read_result()["metrics"]) == untimed(straight["metrics"]) and epochs_of(victim) == [1, 2]


def test_full_disk_in_the_middle_of_a_run_simulated(tmp_path, capsys, monkeypatch):
    """The same path without a tmpfs: the checkpoint write of epoch 2 fails with ENOSPC."""
    import experiments.store as store_module

    results = tmp_path / "results"
    configs = grid_configs(REL, seeds=1)
    first = RunStore.of(results, configs[0])
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else ""
        if ".checkpoint.pt" in name and configs[1].run_id in name:
            calls.append(name)
            if len(calls) == 2:  # the epoch-2 checkpoint of the second run
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(store_module.os, "fsync", fsync)
    code = run.main(["ablate", "rel", "--seeds", "1", "--results", str(results), *FAST])
    assert_clean_one_line_error(code, capsys.readouterr().err, "cannot write", "checkpoint.pt", "the disk is full")
    victim = RunStore.of(results, configs[1])
    assert first.read_result()["status"] == "ok" and not victim.result.exists()
    assert victim.load_checkpoint()["epoch"] == 1 and no_temp_files(results)
    monkeypatch.setattr(store_module.os, "fsync", real_fsync)
    assert run.main(["ablate", "rel", "--seeds", "1", "--results", str(results), *FAST]) == 0
    assert "0 trained now, 1 resumed from a checkpoint" in " ".join(capsys.readouterr().out.split())


def test_unwritable_results_dir_is_a_clean_error_before_any_run(tmp_path, capsys):
    """Read-only results (a file where a directory should be; chmod does not stop root)."""
    (tmp_path / "file").write_text("")
    code = run.main(["ablate", "rel", "--seeds", "1", "--results", str(tmp_path / "file" / "results"), *FAST])
    assert_clean_one_line_error(code, capsys.readouterr().err, "is not writable")
    assert (tmp_path / "file").read_text() == ""


# --- a run that diverges ------------------------------------------------------------------------

def test_a_diverging_run_is_failed_the_grid_goes_on_and_analysis_excludes_it(tmp_path, capsys):
    results = tmp_path / "results"
    code = run.main(["ablate", "rel-nan", "--seeds", "2", "--results", str(results), *FAST])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1 and "6 trained now" in out and "2 failed" in out
    configs = grid_configs(REL_NAN, seeds=2)
    for cfg in configs:  # the runs after the first divergence ran too
        result = RunStore.of(results, cfg).read_result()
        if cfg.variant == "nan":
            assert result["status"] == "failed" and result["reason"] == "Diverged: loss is nan at epoch 1 step 3"
        else:
            assert result["status"] == "ok"

    assert run.main(["analyze", "--results", str(results)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    # the 4 healthy runs are used, or flagged where a tiny network did not learn in the test's 2 epochs
    used = re.search(r"runs: (\d) used, 2 failed(?:, (\d) flagged)? \(excluded runs are not averaged\)", out)
    assert used and int(used[1]) + int(used[2] or 0) == 4
    assert run.main(["analyze", "--results", str(results), "--format", "json"]) == 0
    excluded = [e for e in json.loads(capsys.readouterr().out)["excluded"] if e["status"] == "failed"]
    assert len(excluded) == 2 and {e["reason"] for e in excluded} == {"Diverged: loss is nan at epoch 1 step 3"}
    assert {e["variant"] for e in excluded} == {"nan"}

    out_md = tmp_path / "REPORT.md"
    assert run.main(["report", "--results", str(results), "--out", str(out_md)]) == 0
    report = out_md.read_text() + (tmp_path / "REPORT-appendix.md").read_text()  # the run accounting: the appendix
    assert "2 failed" in report and "Diverged: loss is nan at epoch 1 step 3" in report


# --- Ray: a worker killed in the middle of a task -----------------------------------------------

def test_ray_worker_killed_mid_task_is_retried_and_the_grid_finishes(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from experiments import executors

    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    protocol = get_protocol("smoke")

    def cfg(variant: str, **kwargs) -> RunConfig:
        return RunConfig(grid="rel-ray", variant=variant, model="reliability_kill_net",
                         model_kwargs={"marker_dir": str(marker_dir), "tag": variant, **kwargs}, dataset="synthetic",
                         protocol=protocol, seed=0, seeds=Seeds.derive(0))

    once, always, healthy = cfg("killed-once", kill="once"), cfg("killed-always", kill="always"), cfg("healthy")
    runtime = RUNTIME.model_copy(update={"plugins": ("conftest", "test_reliability_plugin")})
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        outcome = {r["variant"]: r for r in run_grid([once, always, healthy], runtime, tmp_path / "ray", executor="ray")}
    finally:
        ray.shutdown()
    kills = sorted(p.name for p in marker_dir.iterdir())
    assert kills == ["killed-always-kill-1", "killed-always-kill-2", "killed-always-kill-3", "killed-once-kill-1"]
    assert outcome["killed-once"]["status"] == "ok" and outcome["healthy"]["status"] == "ok"
    assert outcome["killed-always"]["status"] == "failed"
    assert outcome["killed-always"]["reason"].startswith(f"worker died ({executors.RAY_RETRIES} retries)")
    stored = RunStore.of(tmp_path / "ray", always).read_result()
    assert stored["status"] == "failed" and stored["reason"] == outcome["killed-always"]["reason"]
    resumed = RunStore.of(tmp_path / "ray", once)
    assert epochs_of(resumed) == [1, 2] and resumed.read_result()["status"] == "ok"
    # the retry resumed from the epoch-1 checkpoint and equals an uninterrupted run
    straight = execute(once, runtime, tmp_path / "straight")
    assert untimed(resumed.read_result()["metrics"]) == untimed(straight["metrics"])


def test_a_report_whose_folder_cannot_be_made_fails_before_it_is_computed(tmp_path, capsys, monkeypatch):
    import analysis.report

    def never(*args, **kwargs):
        raise AssertionError("the report was computed before its folder was checked")

    monkeypatch.setattr(analysis.report, "build_report", never)
    (tmp_path / "file").write_text("")
    code = run.main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "file" / "REPORT.md")])
    assert_clean_one_line_error(code, capsys.readouterr().err, f"--out '{tmp_path / 'file' / 'REPORT.md'}'",
                                "cannot be made", "is not a folder")

    def failing(*args, **kwargs):
        raise ValueError("results directory holds no runs")

    monkeypatch.setattr(analysis.report, "build_report", failing)
    code = run.main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "new" / "R.md")])
    assert code == 2 and not (tmp_path / "new").exists()  # a report that fails for another reason leaves no folder


def test_a_file_that_is_not_a_run_says_no_word_of_runs_when_it_cannot_be_written(tmp_path):
    from evidence.files import ResultsWriteError, atomic_write

    (tmp_path / "file").write_text("")
    with pytest.raises(ResultsWriteError) as raised:
        atomic_write(tmp_path / "file" / "costs.json", "{}", then=None)
    assert raised.value.strerror == f"cannot write {tmp_path / 'file' / 'costs.json'}: Not a directory"
    with pytest.raises(ResultsWriteError, match="finished runs are intact"):  # a run's file: what happens to the runs
        atomic_write(tmp_path / "file" / "result.json", "{}")
