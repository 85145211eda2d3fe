"""dyclot command line: profile models, run ablation grids, analyse results, write the report.

Each package contributes its commands through a ``register(app)`` function; this module only
assembles them into the help's groups (``PANELS``) and turns bad input into one-line errors with
exit code 2 instead of tracebacks or boxed usage panels: a ``ValueError``, ``FileNotFoundError``,
``KeyError`` or ``OSError`` from a command, and click's usage errors (an out-of-range number, an
unknown option, a missing argument). Ctrl-C ends with exit code 130 and says how to resume.

The command modules import torch, timm, pandas and scipy inside their commands, never at the top,
so that ``run.py --help`` stays quick (``tests/test_cli_surface.py`` checks that it loads no torch).
"""
from __future__ import annotations

import os
import signal
import sys

# Set before torch is imported (in the commands that train): an OpenMP thread that waits for work
# sleeps instead of spinning. On a machine whose cores are busy with other jobs, spinning threads of
# several runs starve one another (docs/performance.md, "Threads under load"); a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer

try:  # the exceptions typer raises: Typer vendors click since 0.26
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reproducibility and ablation suite for the Dynamic Clone Transformer (DCT).",
)

# The help's groups, in the order a user meets them; each command belongs to exactly one
# (tests/test_cli_surface.py fails on a command left out).
PANELS: dict[str, tuple[str, ...]] = {
    "Run": ("train", "ablate", "tune", "status", "show", "list", "recount"),
    "Study": ("study", "plan", "gpu-order", "gpu-next"),
    "Analyse": ("report", "analyze", "compare", "calibrate"),
    "Costs": ("profile", "claim-costs", "study-costs", "dct-bound"),
    "Benchmarks": ("bench",),
}
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def _register_commands() -> None:
    import importlib

    for module_name in ("costing.cli", "experiments.cli", "analysis.cli", "benchmarks.cli"):
        importlib.import_module(module_name).register(app)
    order = {name: i for i, name in enumerate(name for names in PANELS.values() for name in names)}
    panel = {name: title for title, names in PANELS.items() for name in names}
    for info in app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        info.rich_help_panel = panel.get(name, "Other")
    app.registered_commands.sort(key=lambda info: order.get(info.name or info.callback.__name__.replace("_", "-"),
                                                            len(order)))


@app.callback()
def _main_options() -> None:
    """Reproducibility and ablation suite for the Dynamic Clone Transformer (DCT)."""


_register_commands()

# OSError covers an unwritable or full results directory (evidence.files.ResultsWriteError says which file).
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, NotADirectoryError, PermissionError, OSError)


def _error(message: object) -> int:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _interrupted() -> int:
    print("interrupted; rerun the same command to resume", file=sys.stderr)
    return INTERRUPTED


def _usage_message(error: click_errors.UsageError) -> str:
    """Click's message, naming the value where Typer's own check (``min=``/``max=``, a type) refused it."""
    cause = error.__cause__
    if isinstance(error, click_errors.BadParameter) and error.param is not None and callable(
            getattr(cause, "errors", None)) and cause.errors():
        first = cause.errors()[0]  # pydantic's: {"input": "-3", "msg": "Input should be greater than or equal to 1"}
        name = "/".join(error.param.opts) or error.param.name
        return f"{name} {first['input']}: {first['msg'][:1].lower()}{first['msg'][1:]}"
    return error.format_message().rstrip(".")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; user errors become ``error: ...`` on stderr and code 2."""
    try:
        code = app(args=argv, prog_name="run.py", standalone_mode=False)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except click_errors.NoArgsIsHelpError as error:  # a bare `run.py` or group: its help, as before
        typer.echo(error.ctx.get_help() if error.ctx else "", err=True)
        return 2
    except click_errors.UsageError as error:  # an out-of-range number, an unknown option, a missing argument
        command = f"run.py {error.ctx.info_name} --help" if error.ctx and error.ctx.parent else "run.py --help"
        return _error(f"{_usage_message(error)} (see {command})")
    except (typer.Abort, KeyboardInterrupt):
        return _interrupted()
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        if isinstance(error, OSError) and error.strerror and not error.filename:
            message = error.strerror  # ResultsWriteError(errno, message): the message without "[Errno N]"
        return _error(message)
    if code == INTERRUPTED:  # typer turns a KeyboardInterrupt in a command into Exit(130)
        return _interrupted()
    return 0 if code is None else int(code)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, ``timeout``) ends a command as Ctrl-C does: the pool stops its workers (they would otherwise
    train on, orphaned), finished runs are kept and stopped ones resume from their last checkpoint."""
    raise KeyboardInterrupt


def cli() -> None:  # console-script entry point
    signal.signal(signal.SIGTERM, _terminated)
    sys.exit(main())


if __name__ == "__main__":
    cli()
