"""Figures: the one module that draws (pyplot lives here only). Every function returns ``(fig, ax)`` (``search_figure``:
the figure) and never saves or shows: the caller decides.

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
from matplotlib.ticker import FuncFormatter

from evidence.stats import pareto_front, t_mean_ci

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


# ------------------------------------------------------------------------ the study's report figures
def budget_figure(table: pd.DataFrame):
    """Paired SD (and its upper bound) and CPU-hours per decided question against the CPU pilot's budgets."""
    fig, (ax_sd, ax_cost) = plt.subplots(1, 2, figsize=(9, 3.4))
    for question, rows in table.groupby("question"):
        ax_sd.errorbar(rows["budget"], rows["sd"], yerr=[[0] * len(rows), rows["sd_upper"] - rows["sd"]],
                       marker="o", capsize=3, label=question)
        ax_cost.plot(rows["budget"], rows["hours"], marker="o", label=question)
    ax_sd.set(xlabel="budget (protocol)", ylabel="paired SD, points (bar: 80% upper bound)")
    ax_cost.set(xlabel="budget (protocol)", ylabel="CPU-hours per decided question", yscale="log")
    ax_sd.legend(fontsize=7)
    fig.tight_layout()
    return fig, (ax_sd, ax_cost)


def looks_figure(record):
    """Per compared variant: the per-seed paired differences (dots at their seed's position in the order of the
    looks), each look's estimate with its repeated confidence interval at the look's seeds, zero and the margin."""
    shown = [c for c in record.comparisons if c.looks]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(4.6 * max(1, len(shown)), 3.4), squeeze=False)
    for ax, c in zip(axes[0], shown, strict=False):
        ax.axhspan(-record.margin, record.margin, color="0.9", label=f"±{record.margin:g} margin")
        ax.axhline(0, color="0.4", lw=0.8)
        ax.plot(np.arange(1, len(c.diffs) + 1), c.diffs, "o", color="0.55", ms=4, label="one seed's difference")
        n = np.array([s["n"] for s in c.looks], float)
        estimate = np.array([s["estimate"] for s in c.looks])
        low, high = np.array([s["ci"] for s in c.looks]).T
        ax.errorbar(n + 0.15, estimate, yerr=[estimate - low, high - estimate], fmt="s", color="C0", capsize=4,
                    label="look: mean, repeated CI")
        for x, s in zip(n, c.looks, strict=True):
            ax.annotate(s["label"], (x + 0.15, s["ci"][1]), textcoords="offset points", xytext=(0, 4), ha="center",
                        fontsize=7)
        # linear within twice the margin, logarithmic beyond: the first looks' wide intervals stay on the axes
        # without flattening the per-seed differences
        ax.set_yscale("symlog", linthresh=2 * record.margin, linscale=2)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        # the pair titles the panel: the axis label stays short, whatever the networks' names
        ax.set_title(f"{c.variant} - {record.reference}", fontsize=8)
        ax.set(xlabel="seeds a variant", ylabel=f"difference, test top-1 points\n(symmetric log beyond ±{2 * record.margin:g})",
               xticks=list(record.schedule), xlim=(0.3, record.schedule[-1] + 0.8))
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{record.folder}: looks of the sequential rule", fontsize=9)
    fig.tight_layout()
    return fig, axes


def search_figure(search):
    """Validation top-1 per epoch (mean over the search's seeds), one panel per network, one line per rate."""
    networks = sorted(search.curves["network"].unique())
    fig, axes = plt.subplots(1, len(networks), figsize=(3.2 * len(networks), 2.8), squeeze=False, sharey=True)
    chosen = {choice.network: choice.lr for choice in search.choices}
    for ax, network in zip(axes[0], networks, strict=True):
        for lr, rows in search.curves[search.curves["network"] == network].groupby("lr"):
            ax.plot(rows["epoch"], rows["val_top1"], marker=".", lw=2.2 if chosen.get(network) == lr else 1.0,
                    label=f"lr {lr:g}" + (" (chosen)" if chosen.get(network) == lr else ""))
        ax.set(title=network, xlabel="epoch")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("validation top-1 (%)")
    fig.tight_layout()
    return fig


def close_figure(fig) -> None:
    """Release a figure drawn here (the report closes each one once saved)."""
    plt.close(fig)
