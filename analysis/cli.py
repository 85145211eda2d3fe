"""Commands ``analyze``, ``compare``, ``report``, ``calibrate`` and ``plan`` (registered on run.py's Typer app).

Bad input raises ``ValueError``/``FileNotFoundError`` naming the value and what is allowed;
run.py turns those into one-line ``error: ...`` messages with exit code 2.
"""
import os
from pathlib import Path
from typing import Annotated

import typer

from evidence.terminal import keep_names_whole
from study.grids import PLAN_REPS, SCRATCH_RESULTS

# The commands import the analysis modules inside their bodies: run.py imports this module at
# start-up, and `run.py --help` should not load pandas, scipy and matplotlib.
RESULTS_HELP = "results directory in the engine's layout (docs/results-format.md); the committed study: results"
FORMAT_HELP = "table | md | latex | csv | json"
DETECT_HELP = "smallest effect of interest behind the seeds needed (default 0.5 for top-1)"

# The options analyze, compare, report and plan share (the defaults are the parameters' defaults).
ResultsOption = Annotated[Path, typer.Option("--results", help=RESULTS_HELP)]
CsvOption = Annotated[Path | None, typer.Option("--csv", help="tidy CSV/Parquet instead of --results")]
MetricOption = Annotated[str, typer.Option("--metric", help="metric column")]
FormatOption = Annotated[str, typer.Option("--format", help=FORMAT_HELP)]
PairingOption = Annotated[str, typer.Option("--pairing", help="auto | paired | unpaired")]
CorrectionOption = Annotated[str, typer.Option("--correction", help="holm | fdr_bh | none")]
AlphaOption = Annotated[float, typer.Option("--alpha", help="significance level")]
MarginOption = Annotated[float | None, typer.Option(
    "--margin", help="non-inferiority margin in metric units (default 0.5 for top-1)")]
SeedOption = Annotated[int, typer.Option("--seed", help="bootstrap seed")]
DetectOption = Annotated[float | None, typer.Option("--detect", help=DETECT_HELP)]


def _frame(results: Path, csv: Path | None, reference: str | None):
    from evidence.load import load_results, load_table

    if csv is not None:
        return load_table(csv, reference=reference)
    _check_results(results)
    from evidence.load import without

    from .second_edition import main_runs

    frame = load_results(results)
    main = main_runs(frame)
    if main.any():  # as in the report: the sequential rule judges them, never a fixed-sample test
        typer.echo(f"left out the second edition's main runs ({', '.join(sorted(set(frame.loc[main, 'grid'])))}): the "
                   "sequential rule judges them (their grid's sequential.json; REPORT.md, Findings at a glance)", err=True)
    return without(frame, main)


def _check_results(results: Path) -> None:
    """The scratch folder before anything trained into it: say where runs come from and where the study is."""
    if results == SCRATCH_RESULTS and not results.exists():
        raise FileNotFoundError(f"results directory '{results}' does not exist yet: train into it first (e.g. "
                                "`run.py ablate smoke`), or read the committed study with --results results")


def _check_margin(margin: float | None, option: str = "--margin") -> None:
    """A margin (or effect of interest) is a positive, finite distance in metric units."""
    import math

    if margin is not None and not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"{option} must be a positive finite number of metric units, got {margin}")


def _check_options(fmt: str, margin: float | None, detect: float | None) -> None:
    """The checks ``analyze`` and ``compare`` share: the output format, the margin and the effect of interest."""
    from . import tables

    tables.check_format(fmt)
    _check_margin(margin)
    _check_margin(detect, "--detect")


def _emit(result: dict, fmt: str) -> None:
    from . import tables

    if tables.check_format(fmt) != "table":
        typer.echo(tables.render(result, fmt), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for grid in tables.grids_of(result):
        frame = tables.display_table(result, grid)
        table = Table(title=f"{grid} — {result['metric']}", title_justify="left")
        for column in frame.columns:
            table.add_column(str(column))
        for row in frame.itertuples(index=False):
            table.add_row(*map(str, row))
        console.print(keep_names_whole(table))
        console.print(tables.interval_note(result, grid))
        console.print(tables.exclusion_line(result, grid))


def analyze(
    results: ResultsOption = SCRATCH_RESULTS,
    csv: CsvOption = None,
    grid: Annotated[list[str] | None, typer.Option("--grid", help="grid(s) to analyse (default: all)")] = None,
    metric: MetricOption = "test_top1",
    fmt: FormatOption = "table",
    reference: Annotated[str | None, typer.Option("--reference", help="reference variant (overrides grid.json)")] = None,
    pairing: PairingOption = "auto",
    correction: CorrectionOption = "holm",
    alpha: AlphaOption = 0.05,
    margin: MarginOption = None,
    seed: SeedOption = 0,
    detect: DetectOption = None,
) -> None:
    """Each variant of a grid against the grid's reference, with corrected p-values and verdicts."""
    from .compare import analyze as run_analysis

    _check_options(fmt, margin, detect)
    frame = _frame(results, csv, reference)
    if not grid:  # a learning-rate search's runs are tuning runs: not compared on test unless named
        from evidence.load import load_grids

        from .learning_rates import search_grids

        searches = search_grids(frame, load_grids(results) if csv is None else {})  # a table: its variants tell
        names = [g for g in frame["grid"].astype(str).unique() if g not in searches]
        if searches and not names:
            raise ValueError(f"the results hold only learning-rate searches ({', '.join(searches)}): tuning runs, "
                             "judged on validation; name one with --grid to compare its runs on the test set anyway")
        if searches:
            typer.echo(f"left out the learning-rate searches {', '.join(searches)} (tuning runs, shown on validation "
                       "in the report); name one with --grid to analyse it", err=True)
            grid = names
    result = run_analysis(frame, metric, grids=grid or None, reference=reference, pairing=pairing,
                          alpha=alpha, correction=correction, margin=margin, seed=seed, detect=detect)
    _emit(result, fmt)


def compare(
    a: Annotated[str, typer.Argument(help="variant, or GRID/VARIANT when the name is in several grids")],
    b: Annotated[str, typer.Argument(help="the variant to compare against")],
    results: ResultsOption = SCRATCH_RESULTS,
    csv: CsvOption = None,
    metric: MetricOption = "test_top1",
    fmt: FormatOption = "table",
    pairing: PairingOption = "auto",
    alpha: AlphaOption = 0.05,
    margin: MarginOption = None,
    seed: SeedOption = 0,
    detect: DetectOption = None,
) -> None:
    """Any two variants: A against B (uncorrected single comparison)."""
    from .compare import compare as run_compare

    _check_options(fmt, margin, detect)
    result = run_compare(_frame(results, csv, None), a, b, metric, pairing=pairing, alpha=alpha,
                         margin=margin, seed=seed, detect=detect)
    _emit(result, fmt)


def report(
    results: ResultsOption = SCRATCH_RESULTS,
    out: Annotated[Path, typer.Option("--out", help="report file; figures go to <stem>_figures/ beside it (the committed "
                                                    "study's: REPORT.md)")] = SCRATCH_RESULTS / "REPORT.md",
    metric: MetricOption = "test_top1",
    correction: CorrectionOption = "holm",
    alpha: AlphaOption = 0.05,
    margin: MarginOption = None,
    seed: SeedOption = 0,
    fmt: Annotated[str, typer.Option("--format", help="md: write --out and its figures; json: print the report's "
                                                       "findings as JSON to stdout and write nothing")] = "md",
) -> None:
    """Write the reproduction report (setup, claims, one section per grid, figures), or print its findings as JSON."""
    _check_margin(margin)
    if fmt not in ("md", "json"):
        raise ValueError(f"--format {fmt!r} is not allowed; choose md or json")
    _check_results(results)
    if fmt == "json":
        from .findings import compute_findings, findings_json

        findings = compute_findings(results, metric, alpha, correction, margin, seed)
        typer.echo(findings_json(findings), nl=False)
        return
    from .report import figure_folder, write_report

    if out.suffix.lower() != ".md":
        raise ValueError(f"--out '{out}' must be a Markdown file ending in .md")
    _check_out_folder(out)
    path = write_report(results, out, metric=metric, correction=correction, alpha=alpha, margin=margin,
                        seed=seed)
    typer.echo(f"wrote {path} and {path.parent / figure_folder(path)}/")


def _check_out_folder(out: Path) -> None:
    """Fail before the report is computed, naming ``out``, where its folder could not be made or written: its nearest
    existing folder must be a writable folder (``write_report`` makes the rest)."""
    existing = next(p for p in (out.parent.absolute(), *out.parent.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--out '{out}': its folder cannot be made ('{existing}' is not a folder)")
    if not os.access(existing, os.W_OK):
        raise ValueError(f"--out '{out}': '{existing}' is not writable")


def calibrate(
    reps: int = typer.Option(1000, "--reps", min=100, max=100_000, help="simulated grids per row"),
    seed: int = typer.Option(0, "--seed", min=0, help="simulation seed"),
) -> None:
    """Print the calibration table of docs/analysis.md (simulated null and at-margin grids)."""
    from .calibration import calibration_markdown

    typer.echo(calibration_markdown(reps, seed), nl=False)


def plan(
    results: ResultsOption = SCRATCH_RESULTS,
    effect: float = typer.Option(0.5, "--effect",
                                 help="smallest effect of interest, metric points (planned, never observed)"),
    power: float = typer.Option(0.8, "--power", min=0.5, max=0.99, help="power to detect --effect"),
    min_accuracy: float = typer.Option(70.0, "--min-accuracy", help="reference test top-1 a CPU budget must reach "
                                       "(a GPU budget: at least 80, docs/study.md section 5)"),
    reps: int = typer.Option(PLAN_REPS, "--reps", min=200, max=100_000,
                              help="simulated comparisons per power estimate (the report's number)"),
    fmt: str = typer.Option("md", "--format", help="md or json"),
) -> None:
    """The study's budget from the pilot's runs: seeds and CPU-hours per decided question, and GPU-minutes per GPU
    question not decided yet (docs/study.md)."""
    from .plan import GPU_MIN_ACCURACY, pilot_rows, question_plans, recommend
    from .render import plan_output
    from .second_edition import gpu_plans

    _check_margin(effect, "--effect")
    if fmt not in ("md", "json"):
        raise ValueError(f"--format {fmt!r} is not allowed; choose md or json")
    _check_results(results)
    rows = pilot_rows(results, effect, power, reps)
    recommendation = recommend(rows, min_accuracy)
    questions = question_plans(results, rows, recommendation.budget, effect, reps, power)
    gpu_recommendation = recommend(rows, max(min_accuracy, GPU_MIN_ACCURACY), "gpu")
    gpu_questions = gpu_plans(results, rows, gpu_recommendation.budget, effect, reps, power)
    for text in plan_output(rows, recommendation, gpu_recommendation, questions, effect, power, fmt, gpu_questions):
        typer.echo(text)


def gpu_order(results: ResultsOption = SCRATCH_RESULTS) -> None:
    """What a GPU batch trains next, one GRID@PROTOCOL a line: the GPU's budget pilots, then the open questions."""
    from .second_edition import gpu_order as order

    _check_results(results)
    if not Path(results).is_dir():
        raise FileNotFoundError(f"results directory '{results}' does not exist")
    chosen = order(results)
    for grid, protocol in chosen.jobs:
        typer.echo(f"{grid}@{protocol}")
    typer.echo(chosen.why, err=True)


def register(app: typer.Typer) -> None:
    for command in (analyze, compare, report, calibrate, plan, gpu_order):
        app.command()(command)
