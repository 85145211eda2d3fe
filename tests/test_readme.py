"""Every command of README.md runs as written.

The commands are the lines of the README's fenced ``bash`` blocks (a trailing ``# comment`` dropped).

- ``.venv/bin/python run.py ARGS``: the fast test parses each against the CLI (every command and option
  exists, every value is allowed); the slow test runs them all, in README order, in this process as
  ``run.main(ARGS)``, from a scratch folder holding a copy of the committed ``results/``, ``REPORT.md`` and
  ``report_figures/`` (so ``--results results --out REPORT.md`` rewrites the copy, never the checkout), and
  expects exit code 0. The data path the README leaves to the reader, ``PATH/``, is an empty file there.
- Tiny settings, so that the commands that train (the main job: minutes; the study: days) take seconds:
  ``tiny_protocols`` below replaces every protocol by one of the same name at the ``smoke`` protocol's size
  (1 epoch, 8 training images per class; CIFAR-10 protocols on the generated set, which needs no download),
  and the learning-rate search by one rate and one seed. The arguments stay as written.
- ``gpu-next`` without a CUDA device must end with the one-line "no CUDA device" error and exit code 2, as the
  README says; on a CUDA machine it would train for its ``--minutes``, and is skipped there.
- Ray's workers are given this checkout on ``PYTHONPATH``.
- ``make TARGET``: ``make -n TARGET`` (a dry run: the target exists and its recipe expands; running
  ``make setup`` would reinstall the environment and ``make test`` would run this suite inside itself).
"""
from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

import run

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ".venv/bin/python run.py"


def readme_commands() -> list[str]:
    """The README's commands: each line of its ```bash blocks, without a trailing comment."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    lines = [line.split(" # ")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def cli_args(command: str) -> list[str]:
    assert command.startswith(PYTHON + " ") or command.startswith("make "), (
        f"README command {command!r} is neither `{PYTHON} ...` nor `make ...`: teach tests/test_readme.py to run it")
    return shlex.split(command.removeprefix(PYTHON))


def test_the_readme_has_commands_of_every_kind():
    commands = readme_commands()
    assert any(c.startswith("make setup") for c in commands) and any("run.py ablate smoke" in c for c in commands)
    assert all(c.startswith((PYTHON + " ", "make ")) for c in commands), commands


@pytest.mark.parametrize("command", [c for c in readme_commands() if c.startswith(PYTHON)])
def test_every_readme_command_parses(command):
    """Each command names an existing command with existing options and allowed values (nothing runs)."""
    import typer
    import typer.main

    group = typer.main.get_command(run.app)
    args = cli_args(command)
    if args == ["--help"]:
        return
    ctx = typer.Context(group, info_name="run.py")
    sub = group.get_command(ctx, args[0])
    assert sub is not None, command
    sub.make_context(args[0], args[1:], parent=ctx)  # raises click's usage error for anything not allowed


@pytest.mark.parametrize("target", sorted({c.split()[1] for c in readme_commands() if c.startswith("make ")}))
def test_every_readme_make_target_exists(target):
    done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def tiny_protocols(monkeypatch):
    """Every protocol at the smoke protocol's size under its own name; the learning-rate search at one rate."""
    from experiments import config
    from study import grids as study_grids

    smoke = config.PROTOCOLS["smoke"]
    for name, protocol in list(config.PROTOCOLS.items()):
        dataset = "synthetic" if protocol.dataset.startswith("cifar") else protocol.dataset
        monkeypatch.setitem(config.PROTOCOLS, name, config.Protocol.model_validate({
            **smoke.model_dump(), "name": name, "dataset": dataset, "lr": protocol.lr, "epochs": 1,
            "train_per_class": 8, "val_per_class": 4, "test_per_class": 4}))
    monkeypatch.setattr(study_grids, "LR_CANDIDATES", (0.1,))
    monkeypatch.setattr(study_grids, "LR_SEARCH_STARTS", {})  # every grid's search starts at that one rate
    monkeypatch.setattr(study_grids, "LR_EXTENSIONS", 0)  # and is never widened
    monkeypatch.setattr(study_grids, "TUNING_SEEDS", 1)


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path, monkeypatch, tiny_protocols):
    import torch

    for name in ("results", "report_figures"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "REPORT.md", tmp_path / "REPORT.md")
    monkeypatch.chdir(tmp_path)
    # Ray's worker processes import this checkout's packages, not those of another checkout an editable
    # install of a shared environment may point to (they inherit the environment, not sys.path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    Path("data").mkdir()  # the README's data placeholder, PATH: the tiny protocols train on the generated set
    Path("data/cifar10-jpeg.tar.gz").touch()
    for command in readme_commands():
        if command.startswith("make "):
            continue  # test_every_readme_make_target_exists
        args = [arg.replace("PATH/", "data/") for arg in cli_args(command)]
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = run.main(args)
        if args[0] == "gpu-next":
            if torch.cuda.is_available():
                continue  # it would train for its --minutes
            assert code == 2 and "no CUDA device" in err.getvalue(), (command, err.getvalue())
            continue
        assert code == 0, (command, out.getvalue()[-2000:], err.getvalue()[-2000:])
    assert len(list(Path("runs/smoke").glob("*/result.json"))) == 6  # the main job, into the scratch folder
    assert Path("runs/REPORT.md").exists() and Path("REPORT.md").exists()
    assert Path("runs/p-sweep/sequential.json").exists()  # the study: search, then seeds in looks
    assert len(list(Path("runs/ray/smoke").glob("*/result.json"))) == 6  # Ray
