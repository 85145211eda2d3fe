"""dyclot command line: profile models, run ablation grids, analyse results, write the report.

Each package contributes its commands through a ``register(app)`` function; this module only
assembles them and turns bad input (``ValueError``, ``FileNotFoundError``, ``KeyError``) into
one-line errors with exit code 2 instead of tracebacks.
"""
from __future__ import annotations

import sys

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reproducibility and ablation suite for the Dynamic Clone Transformer (DCT).",
)


def _register_commands() -> None:
    import importlib

    for module_name in ("costing.cli", "experiments.cli", "experiments.gpu", "analysis.cli", "benchmarks.cli"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:  # a package still without a CLI
            if error.name != module_name:
                raise
            continue
        module.register(app)


@app.callback()
def _main_options() -> None:
    """Reproducibility and ablation suite for the Dynamic Clone Transformer (DCT)."""


_register_commands()

# OSError covers an unwritable or full results directory (experiments.store.ResultsWriteError says which file).
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, NotADirectoryError, PermissionError, OSError)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; user errors become ``error: ...`` on stderr and code 2."""
    try:
        app(args=argv, prog_name="run.py")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        if isinstance(error, OSError) and error.strerror and not error.filename:
            message = error.strerror  # ResultsWriteError(errno, message): the message without "[Errno N]"
        print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2
    return 0


def cli() -> None:  # console-script entry point
    sys.exit(main())


if __name__ == "__main__":
    cli()
