"""Figures. Every function returns ``(fig, ax)`` and never saves or shows: the caller decides.

Nothing here is random except seaborn's bootstrap bands of the training curves, which take an
explicit seed; per-seed points use a swarm layout (deterministic, no jitter).
"""
from __future__ import annotations

import warnings

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .stats import pareto_front, t_mean_ci

LABELS = {"test_top1": "test top-1 (%)", "val_top1": "validation top-1 (%)", "macs": "MACs",
          "latency_ms": "latency (ms, CPU, batch 1)", "params": "parameters"}


def _axes(ax, size=(6.0, 4.0)):
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        return fig, ax
    return ax.figure, ax


def seeds_plot(rows: pd.DataFrame, metric: str, order: list[str], ax=None):
    """Per-seed values (swarm) over box plots, one column per variant.

    ``rows``: usable runs of one grid with columns ``variant`` and ``metric``.
    """
    fig, ax = _axes(ax, (max(4.0, 1.1 * len(order) + 2), 4.0))
    with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib's deprecated ``vert``
        warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
        sns.boxplot(data=rows, x="variant", y=metric, order=order, color="0.92", showfliers=False, ax=ax)
    sns.swarmplot(data=rows, x="variant", y=metric, order=order, color="C0", size=5, ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.tick_params(axis="x", labelrotation=20 if len(order) > 3 else 0)
    return fig, ax


def sweep_plot(summary: pd.DataFrame, x_name: str, metric: str, ax=None):
    """Mean with its CI band against the swept value.

    ``summary``: one row per variant with numeric ``x`` and ``mean, ci_low, ci_high``.
    """
    fig, ax = _axes(ax)
    data = summary.sort_values("x")
    ax.fill_between(data["x"], data["ci_low"], data["ci_high"], alpha=0.25, color="C0", label="95% CI of the mean")
    ax.plot(data["x"], data["mean"], marker="o", color="C0", label="mean over seeds")
    if data["x"].gt(0).all() and data["x"].max() / data["x"].min() >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(data["x"], [f"{x:g}" for x in data["x"]])
    ax.set_xlabel(x_name)
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.legend(loc="best", fontsize="small")
    return fig, ax


# (dx, dy) in points, nearest first: right then left of the point, alternating above and below
LABEL_OFFSETS = tuple((dx, dy) for dy in (3, -10, 12, -19, 21, -28, 30, -37, 39, -46) for dx in (4, -4))


def place_labels(ax, labels: list[str], x: np.ndarray, y: np.ndarray, fontsize: int = 7) -> None:
    """Annotate points without overlapping labels: each label takes the first of ``LABEL_OFFSETS`` (points)
    whose box meets no label placed before it (left-hand offsets align right); deterministic."""
    ax.autoscale_view()  # the view limits are computed lazily: fix them before measuring boxes
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for label, xi, yi in sorted(zip(labels, x, y, strict=True), key=lambda item: (item[1], -item[2], item[0])):
        for dx, dy in LABEL_OFFSETS:
            text = ax.annotate(label, (xi, yi), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                               ha="left" if dx > 0 else "right")
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed) or (dx, dy) == LABEL_OFFSETS[-1]:
                placed.append(box)
                break
            text.remove()


def pareto_plot(points: pd.DataFrame, cost: str, metric: str, ax=None):
    """Score against cost with error bars and the Pareto front (lower cost, higher score).

    ``points``: one row per model with ``label, group, cost, mean, ci_low, ci_high``.
    """
    fig, ax = _axes(ax, (6.5, 4.5))
    data = points.dropna(subset=["cost", "mean"]).reset_index(drop=True)
    for i, (group, rows) in enumerate(data.groupby("group", sort=True)):
        yerr = np.vstack([rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]])
        ax.errorbar(rows["cost"], rows["mean"], yerr=np.nan_to_num(yerr), fmt="o", color=f"C{i % 10}",
                    capsize=2, label=group)
    front = pareto_front(data["cost"].to_numpy(), data["mean"].to_numpy())
    if len(front):
        ax.step(data["cost"].iloc[front], data["mean"].iloc[front], where="post", color="0.3",
                linestyle="--", linewidth=1, label="Pareto front")
    if len(data) and data["cost"].gt(0).all() and data["cost"].max() / data["cost"].min() > 10:
        ax.set_xscale("log")
    place_labels(ax, data["label"].tolist(), data["cost"].to_numpy(float), data["mean"].to_numpy(float))
    ax.set_xlabel(LABELS.get(cost, cost))
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.legend(loc="best", fontsize="small")
    return fig, ax


def _t_band(values) -> tuple[float, float]:
    """The 95% t interval of the mean over seeds (the report's interval for a mean at every n)."""
    ci = t_mean_ci(np.asarray(values, float))
    return ci["low"], ci["high"]


def curves_plot(curves: pd.DataFrame, metric: str, order: list[str], seed: int, ax=None):
    """Per-epoch ``metric`` by variant: mean over seeds with the 95% t band of the mean (``seed`` is kept for API stability).

    ``curves``: rows ``variant, seed, epoch, <metric>`` of one grid.
    """
    fig, ax = _axes(ax)
    sns.lineplot(data=curves, x="epoch", y=metric, hue="variant", hue_order=order, errorbar=_t_band,
                 seed=seed, marker="o", markersize=3, ax=ax)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.legend(loc="best", fontsize="small", title=None)
    return fig, ax
