"""What a new user meets first: a quick grouped help, defaults that write nothing committed, one-line errors,
Ctrl-C that says how to resume, and threads that hold on a busy machine."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

import run

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "timm", "pandas", "scipy", "matplotlib")


def invoke(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run.main(argv)
    return code, out.getvalue(), err.getvalue()


def commands() -> dict:
    import typer.main

    return typer.main.get_command(run.app).commands


def test_help_of_every_command_loads_no_torch():
    """`run.py --help` and `run.py COMMAND --help` import neither torch, timm, pandas, scipy nor matplotlib
    (each costs seconds, tens of seconds on a busy machine); checked in a fresh interpreter."""
    names = sorted(commands())
    code = ("import io, sys, contextlib, run\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    codes = [run.main(['--help'])] + [run.main([n, '--help']) for n in {names!r}]\n"
            f"print(codes, [m for m in {HEAVY!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{[0] * (len(names) + 1)} []", done.stdout


def test_every_command_is_in_one_help_group():
    grouped = [name for names in run.PANELS.values() for name in names]
    assert sorted(grouped) == sorted(commands()) and len(set(grouped)) == len(grouped)
    assert {c.rich_help_panel for c in commands().values()} == set(run.PANELS)


def test_defaults_write_into_the_git_ignored_scratch_folder_only():
    from study.grids import SCRATCH_RESULTS

    defaults = {(name, p.name): p.default for name, c in commands().items() for p in c.params
                if p.name in ("results", "out") and not p.required}
    assert defaults and all(Path(d).parts[0] == str(SCRATCH_RESULTS) for d in defaults.values() if d is not None), defaults
    assert defaults[("report", "out")] == SCRATCH_RESULTS / "REPORT.md"
    ignored = subprocess.run(["git", "check-ignore", "-q", f"{SCRATCH_RESULTS}/x/REPORT.md"], cwd=ROOT)
    assert ignored.returncode == 0, f"{SCRATCH_RESULTS}/ is not ignored by git"


def test_train_without_results_writes_only_the_scratch_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke(["train", "engine_test_net", "--protocol", "smoke", "--import", "conftest",
                             "--wandb", "off", "--threads", "1"])
    assert code == 0, err
    assert len(list((tmp_path / "runs" / "train").glob("*/result.json"))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert "chance level" in " ".join(out.split())  # the generated set: the smoke run's 10% is said to be chance


@pytest.mark.parametrize("argv, shown", [
    (["ablate", "smoke", "--seeds", "-3"], "--seeds/-n -3"),
    (["ablate", "smoke", "--threads", "0"], "--threads 0"),
    (["calibrate", "--reps", "5"], "--reps 5"),
    (["ablate", "smoke", "--bogus"], "--bogus"),
    (["ablate"], "grid"),
])
def test_bad_numbers_and_options_are_one_line_errors(argv, shown):
    code, out, err = invoke(argv)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert shown in err and f"run.py {argv[0]} --help" in err


def test_ctrl_c_says_how_to_resume(monkeypatch):
    from experiments import runs

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "list_grids", interrupted)
    code, _, err = invoke(["list"])
    assert code == 130 and err.strip() == "interrupted; rerun the same command to resume"


def test_threads_per_run_takes_the_idle_cores(monkeypatch):
    from experiments import config

    monkeypatch.setattr(config, "default_threads", lambda: 2)
    for load, workers, threads in ((0.2, 1, 2), (1.0, 1, 1), (2.6, 1, 1), (0.0, 2, 1), (7.0, 1, 1)):
        monkeypatch.setattr(config.os, "getloadavg", lambda load=load: (load, load, load))
        assert config.threads_per_run(workers) == threads, (load, workers)


def test_the_grid_bar_shows_an_eta_from_the_first_epoch():
    from rich.progress import Progress

    from experiments.executors import EpochEta

    clock = [0.0]
    progress = Progress(EpochEta(), get_time=lambda: clock[0])
    task = progress.add_task("grid", total=12, completed=2, before=2)  # 2 epochs done before this call
    assert "-:--:--" in EpochEta().render(progress.tasks[0]).plain
    clock[0] = 60.0
    progress.advance(task, 1)  # the first epoch of this call took a minute: 9 left
    assert EpochEta().render(progress.tasks[0]).plain == "ETA 0:09:00"


def test_list_is_one_line_per_grid():
    from experiments.grids import GRIDS

    code, out, _ = invoke(["list"])
    assert code == 0 and len(out.strip().splitlines()) == len(GRIDS) + 1


def test_status_counts_the_runs_it_leaves_out(tmp_path):
    run_dir = tmp_path / "smoke" / "0123456789abcdef"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"engine_version": 1, "protocol": {"name": "quick"}}))
    code, out, err = invoke(["status", "smoke", "--results", str(tmp_path)])
    assert code == 0, err
    assert "not counted: 1 other runs" in " ".join(out.split()) and "of engine version 1" in out


def test_an_unknown_model_name_suggests_ours_first():
    from baselines.registry import check_model_name

    with pytest.raises(ValueError, match=r"close matches: dyclotnet_\d+"):
        check_model_name("dyclotnet_500")


def test_every_test_listed_as_slow_exists():
    """tests/conftest.py marks tests slow by name: a renamed test would silently join `make test-fast`."""
    import ast

    from conftest import SLOW_MODULES, SLOW_TESTS

    tests = ROOT / "tests"
    assert all((tests / f"{module}.py").exists() for module in SLOW_MODULES)
    for module, function in SLOW_TESTS:
        tree = ast.parse((tests / f"{module}.py").read_text())
        assert function in {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}, (module, function)


@pytest.mark.slow
def test_ctrl_c_in_a_grid_exits_130_and_the_rerun_resumes(tmp_path):
    """A real SIGINT to `run.py ablate` after its first epoch: exit 130 with the line, then the same command
    resumes the interrupted run (counted as resumed, not as trained now)."""
    import signal

    from conftest import wait_for

    argv = [sys.executable, "run.py", "ablate", "smoke", "--protocol", "smoke", "--seeds", "1", "--results",
            str(tmp_path), "--wandb", "off", "--threads", "1"]
    child = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for(lambda: any(tmp_path.glob("smoke/*/checkpoint.pt")), child, "the first epoch's checkpoint")
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130 and err.strip().endswith("interrupted; rerun the same command to resume"), err
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 resumed from a checkpoint" in " ".join(done.stdout.split()), done.stdout


@pytest.mark.parametrize("argv", [["analyze"], ["report"], ["plan"], ["compare", "a", "b"]])
def test_reading_an_empty_scratch_folder_says_where_the_runs_are(tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke(argv)
    assert code == 2 and "run.py ablate smoke" in err and "--results results" in err, err
    assert not any(tmp_path.iterdir())  # nothing written
