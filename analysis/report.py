"""The generated report: REPORT.md plus its figures (PNG and PDF) in ``<stem>_figures/`` beside it.

Compute, then render: ``analysis.findings.compute_findings`` reads the results directory once into
plain dataclasses; ``render_report`` writes them as Markdown (``analysis.render`` has the sections),
``analysis.report_figures.build_figures`` draws the figures from the same findings, and
``analysis.findings.findings_json`` serialises them (``run.py report --format json``).

Deterministic by construction: sorted iteration, seeded bootstraps, no timestamps, and figure
metadata without dates, so the same results directory gives byte-identical files.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from . import second_edition
from .claims import accuracy_claim, cost_claim, noninferiority_claim
from .findings import ReportFindings, compute_findings, findings_json
from .learning_rates import search_lines
from .looks import holm_lines, looks_lines
from .questions import render_questions
from .render import (
    render_claims,
    render_cost_readings,
    render_grid,
    render_health,
    render_interpretation,
    render_limitations,
    render_pareto,
    render_runs,
    render_setup,
)
from .report_figures import build_figures
from .tables import command

__all__ = ["accuracy_claim", "build_report", "compute_findings", "cost_claim", "figure_folder", "findings_json",
           "noninferiority_claim", "render_report", "save_figure", "write_report"]

FIRST_PASS = ("Everything below analyses every grid's newest engine version as it stands, except the second "
              "edition's main runs (engine version 2 in the study's grids: judged by the sequential rule in Findings at "
              "a glance, never by the fixed-sample tests below; the run accounting and training health count them). "
              "Runs of engine version 1 are the first pass, in those grids too: one shared learning rate for every "
              "network, a budget chosen without measuring power (docs/study.md); read them as an untuned, "
              "underpowered first pass, never pooled with the second edition.")

SEARCHES_ONLY = ("No main run has finished yet: the results hold learning-rate searches only (above, on validation). "
                 "Their runs are never compared on the test set, so the comparisons, claims and Pareto fronts come "
                 "with the grids' first main runs.")


def figure_folder(out: str | Path) -> str:
    """The figure folder's name beside the report ``out``: ``REPORT.md`` -> ``report_figures``."""
    return f"{Path(out).stem.lower()}_figures"


def render_report(findings: ReportFindings, out: str, folder: str) -> str:
    """The Markdown of the report written to ``out`` (as the reader should type it) with figures in ``folder``."""
    source, metric, analysis = findings.source, findings.metric, findings.analysis
    options = "" if metric == "test_top1" else f" --metric {metric}"
    lines = ["# DCT reproduction report", "",
             f"Generated from `{source}` by {command('report', '--results', source, '--out', out + options)}; "
             "every number is recomputed from the run files and rerunning the command reproduces this file "
             "byte for byte.", ""]
    if findings.glance:  # the study's sections, where the results hold its grids
        lines += [*second_edition.glance_lines(findings.glance), *holm_lines(findings.holm),
                  *looks_lines(findings.looks, folder),
                  *second_edition.budget_lines(findings.budget, folder)]
    lines += search_lines(findings.learning_rates, folder)
    if findings.glance:
        lines += ["# First pass and all runs", "", FIRST_PASS, ""]
    lines += render_runs(findings.runs) + render_health(findings.health)
    if findings.setup is None:  # only learning-rate searches so far (analysis.findings.compute_findings)
        return "\n".join(lines + [SEARCHES_ONLY, ""])
    lines += render_setup(findings.setup, analysis, source, out + options)
    lines += render_questions(findings.questions)
    lines += render_claims(findings.claims, source) + render_cost_readings(findings.cost_readings, source)
    for grid in findings.grids:
        lines += render_grid(grid, analysis, source, folder)
    lines += render_pareto(findings.pareto, metric, source, folder)
    lines += render_interpretation(findings.interpretation, analysis["correction"])
    lines += render_limitations(findings.limitations)
    lines += ["## Regenerating", "",
              f"- Whole report: {command('report', '--results', source, '--out', out + options)}",
              f"- All grid tables: {command('analyze', '--results', source + options, '--format', 'md')} "
              "(`--format json` for the machine-readable form)",
              f"- Any two variants: {command('compare', 'GRID/A', 'GRID/B', '--results', source)}", ""]
    return "\n".join(lines)


def build_report(results_dir: str | Path, out: str | Path = "REPORT.md", metric: str = "test_top1",
                 alpha: float = 0.05, correction: str = "holm", margin: float | None = None,
                 seed: int = 0) -> tuple[str, dict]:
    """``(markdown, {figure name: matplotlib Figure})``; nothing is written."""
    findings = compute_findings(results_dir, metric, alpha, correction, margin, seed)
    return render_report(findings, str(Path(out)), figure_folder(out)), build_figures(findings)


def save_figure(fig, stem: Path) -> list[Path]:
    """PNG and PDF without dates or version stamps in their metadata (byte-reproducible)."""
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=120, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"CreationDate": None, "Creator": None, "Producer": None})
    plt.close(fig)
    return paths


def write_report(results_dir: str | Path, out: str | Path = "REPORT.md", **options) -> Path:
    """Write the report and its figure folder; stale figures in that folder are removed."""
    text, figures = build_report(results_dir, out, **options)
    out = Path(out)
    folder = out.parent / figure_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = {p for name, fig in sorted(figures.items()) for p in save_figure(fig, folder / name)}
    for stale in sorted(folder.glob("*")):
        if stale.suffix in (".png", ".pdf") and stale not in written:
            stale.unlink()
    out.write_text(text, encoding="utf-8")
    return out
