"""The report's figures, drawn from its findings (``analysis.findings``): nothing is read from files.

``build_figures`` returns ``{name: matplotlib Figure}``; the names are those the Markdown links to
(``analysis.render``), and ``analysis.report`` saves each as PNG and PDF.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pandas as pd

from . import learning_rates, plots
from .findings import ReportFindings

# build_figures holds every figure of the report until the caller saves and closes each one.
matplotlib.rcParams["figure.max_open_warning"] = 0


def build_figures(findings: ReportFindings) -> dict:
    """Every figure of the report, by name (file stem)."""
    metric, seed = findings.metric, findings.analysis["seed"]
    figures = {}
    cpu_rows = [r.__dict__ for r in findings.budget.rows if r.device == "cpu"] if findings.budget is not None else []
    if cpu_rows:
        figures["budget_pilot"] = plots.budget_figure(pd.DataFrame(cpu_rows))[0]
    for record in findings.looks:
        if any(c.looks for c in record.comparisons):
            figures[record.figure] = plots.looks_figure(record)[0]
    for search in findings.learning_rates:
        if search.curves is not None:
            figures[learning_rates.figure_name(search)] = plots.search_figure(search)
    for grid in findings.grids:
        if grid.seeds_data is not None:
            figures[grid.figure("seeds")] = plots.seeds_plot(grid.seeds_data, metric, list(grid.order))[0]
        if grid.sweep_key:
            figures[grid.figure("sweep")] = plots.sweep_plot(grid.sweep_data, grid.sweep_key, metric)[0]
        if grid.curve_metric:
            figures[grid.figure("curves")] = plots.curves_plot(grid.curves_data, grid.curve_metric,
                                                               list(grid.curve_order), seed=seed)[0]
    for panel in findings.pareto.panels if findings.pareto is not None else ():
        figures[panel.name] = plots.pareto_plot(panel.points, panel.cost, metric)[0]
    return figures
