"""The generated report: REPORT.md plus its figures (PNG and PDF) in ``<stem>_figures/`` beside it.

Two files: REPORT.md opens with the paper's claims and the study's decisions; ``REPORT-appendix.md`` beside it
holds the first pass, every grid's section, the setup and the interpretation choices.

Compute, then render: ``analysis.findings.compute_findings`` reads the results directory once into
plain dataclasses; ``render_report`` writes them as Markdown (``analysis.render`` has the sections),
``analysis.report_figures.build_figures`` draws the figures from the same findings, and
``analysis.findings.findings_json`` serialises them (``run.py report --format json``).

Deterministic by construction: sorted iteration, seeded bootstraps, no timestamps, and figure
metadata without dates, so the same results directory gives byte-identical files.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")

from .claims import accuracy_claim, cost_claim, noninferiority_claim
from .findings import ReportFindings, compute_findings, findings_json
from .paper_claims import Verdict
from .plots import close_figure
from .render import (
    fold_long_lines,
    render_budget,
    render_claims,
    render_cost_readings,
    render_glance,
    render_grid,
    render_health,
    render_holm,
    render_interpretation,
    render_learning_rates,
    render_limitations,
    render_looks,
    render_paper_claims,
    render_pareto,
    render_questions,
    render_runs,
    render_setup,
)
from .report_figures import build_figures
from .tables import command

__all__ = ["ReportPages", "accuracy_claim", "appendix_path", "build_report", "compute_findings", "cost_claim",
           "figure_folder", "findings_json",
           "noninferiority_claim", "render_report", "save_figure", "write_report"]

FIRST_PASS = ("Everything below sets the second edition's main runs aside (every run of engine version 2 or later in "
              "the study's grids: judged by the sequential rule in the main report, never by the fixed-sample tests "
              "below; the run accounting and training health count them) and analyses, in each grid, the newest "
              "engine version of the runs left. In the study's grids those are the runs of engine version 1, the "
              "first pass: one shared learning rate for every network, a budget chosen without measuring power "
              "(docs/study.md); read them as an untuned, underpowered first pass, never pooled with the second "
              "edition.")

SEARCHES_ONLY = ("No main run has finished yet: the results hold learning-rate searches only (above, on validation). "
                 "Their runs are never compared on the test set, so the comparisons, claims and Pareto fronts come "
                 "with the grids' first main runs.")


def figure_folder(out: str | Path) -> str:
    """The figure folder's name beside the report ``out``: ``REPORT.md`` -> ``report_figures``."""
    return f"{Path(out).stem.lower()}_figures"


def appendix_path(out: str | Path) -> Path:
    """The appendix beside the report ``out``: ``REPORT.md`` -> ``REPORT-appendix.md``."""
    out = Path(out)
    return out.with_name(f"{out.stem}-appendix{out.suffix}")


class ReportPages(NamedTuple):
    """The report's two files: the main report (claims, the study's decisions, limitations; a small grid's own
    result first) and the appendix (the first pass, every grid's section, setup, interpretation choices)."""
    main: str
    appendix: str


def _study_lines(findings: ReportFindings, folder: str) -> list[str]:
    """The main report of the study: its claims, the questions at a glance, the decisions look by look, the budget."""
    return [*render_paper_claims(findings.paper_claims, findings.glance, findings.source),
            *render_glance(findings.glance), *render_holm(findings.holm), *render_looks(findings.looks, folder),
            *render_budget(findings.budget, folder, findings.glance)]


def render_report(findings: ReportFindings, out: str, folder: str) -> ReportPages:
    """The Markdown of the report written to ``out`` (as the reader should type it) and of its appendix, with
    figures in ``folder``. A study's report opens with the paper's claims; a small grid's (the README's ``smoke``)
    with that grid's result, and leaves out the sections it has no runs for."""
    source, metric, analysis = findings.source, findings.metric, findings.analysis
    options = "" if metric == "test_top1" else f" --metric {metric}"
    regenerate = command("report", "--results", source, "--out", out + options)
    appendix = appendix_path(out).name
    main = ["# DCT reproduction report", "",
            f"Generated from `{source}` by {regenerate}; every number is recomputed from the run files and rerunning "
            f"the command reproduces this file and its appendix, [{appendix}]({appendix}), byte for byte. The appendix "
            "holds the first pass, every grid's section, the setup and the interpretation choices.", ""]
    rest = ["# DCT reproduction report: appendix", "",
            f"Written with the main report by {regenerate}.", ""]
    study = bool(findings.glance)
    if study:
        main += _study_lines(findings, folder)
        rest += ["# First pass and all runs", "", FIRST_PASS, ""]
    elif findings.setup is not None:  # a small grid's report: its result first
        for grid in findings.grids:
            main += render_grid(grid, analysis, source, folder)
        main += render_pareto(findings.pareto, metric, source, folder)
    main += render_learning_rates(findings.learning_rates, folder)
    if findings.limitations is not None:
        main += render_limitations(findings.limitations)
    rest += render_runs(findings.runs) + render_health(findings.health)
    if findings.setup is None:  # only learning-rate searches so far (analysis.findings.compute_findings)
        return _pages(main + [SEARCHES_ONLY, ""], rest)
    rest += render_setup(findings.setup, analysis, source, out + options)
    rest += render_questions(findings.questions)
    if study or any(row.grid is not None and row.outcome.verdict is not Verdict.NO_RESULTS for row in findings.claims.rows):
        rest += render_claims(findings.claims, source) + render_cost_readings(findings.cost_readings, source)
    if study:
        for grid in findings.grids:
            rest += render_grid(grid, analysis, source, folder)
        rest += render_pareto(findings.pareto, metric, source, folder)
    rest += render_interpretation(findings.interpretation, analysis["correction"])
    rest += ["## Regenerating", "",
             f"- Whole report: {regenerate}",
             f"- All grid tables: {command('analyze', '--results', source + options, '--format', 'md')} "
             "(`--format json` for the machine-readable form)",
             f"- Any two variants: {command('compare', 'GRID/A', 'GRID/B', '--results', source)}", ""]
    return _pages(main, rest)


def _pages(main: list[str], appendix: list[str]) -> ReportPages:
    """Both files' text, with no prose line longer than ``analysis.render.LINE_LIMIT``."""
    return ReportPages(fold_long_lines("\n".join(main)), fold_long_lines("\n".join(appendix)))


def build_report(results_dir: str | Path, out: str | Path = "REPORT.md", metric: str = "test_top1",
                 alpha: float = 0.05, correction: str = "holm", margin: float | None = None,
                 seed: int = 0) -> tuple[ReportPages, dict]:
    """``(ReportPages(main, appendix), {figure name: matplotlib Figure})``; nothing is written."""
    findings = compute_findings(results_dir, metric, alpha, correction, margin, seed)
    return render_report(findings, str(Path(out)), figure_folder(out)), build_figures(findings)


def save_figure(fig, stem: Path) -> list[Path]:
    """PNG and PDF without dates or version stamps in their metadata (byte-reproducible)."""
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=120, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"CreationDate": None, "Creator": None, "Producer": None})
    close_figure(fig)
    return paths


def write_report(results_dir: str | Path, out: str | Path = "REPORT.md", **options) -> Path:
    """Write the report, its appendix and its figure folder; stale figures in that folder are removed."""
    pages, figures = build_report(results_dir, out, **options)
    out = Path(out)
    folder = out.parent / figure_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = {p for name, fig in sorted(figures.items()) for p in save_figure(fig, folder / name)}
    for stale in sorted(folder.glob("*")):
        if stale.suffix in (".png", ".pdf") and stale not in written:
            stale.unlink()
    out.write_text(pages.main, encoding="utf-8")
    appendix_path(out).write_text(pages.appendix, encoding="utf-8")
    return out
