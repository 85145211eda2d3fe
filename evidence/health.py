"""Training health: runs whose training loss went far above chance, or that never learned.

A network that guesses uniformly over C classes has a cross-entropy of ln C (label smoothing does
not change that value), so a healthy run's epoch-mean training loss starts near ln C and falls.
Two flags per run, read from its ``metrics.jsonl`` and its number of classes:

- *loss spike*: some epoch's mean training loss above ``SPIKE_FACTOR`` x ln C: the run diverged
  and spent epochs recovering, so its accuracy says as much about the protocol's learning rate as
  about the network;
- *did not learn*: final training accuracy below ``LEARNED_FACTOR`` x chance (100 / C percent).

C comes from result.json's ``num_classes``; runs written before that field existed fall back to
``KNOWN_CLASSES`` by dataset name, and are left unflagged ("unknown") otherwise.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .status import RunStatus

SPIKE_FACTOR = 1.2
LEARNED_FACTOR = 1.5
KNOWN_CLASSES = {"cifar10": 10, "cifar10-jpeg": 10, "fashion-mnist": 10, "cifar100": 100}
HEALTH_COLUMNS = ("grid", "variant", "seed", "run_id", "reused_from", "classes", "first_loss", "peak_loss",
                  "peak_epoch", "final_loss", "final_train_top1", "spike", "not_learned", "flagged")


def _classes(run) -> float:
    recorded = getattr(run, "num_classes", math.nan)
    if isinstance(recorded, (int, float)) and math.isfinite(recorded) and recorded >= 2:
        return float(recorded)
    return float(KNOWN_CLASSES.get(str(run.dataset), math.nan))


def training_health(frame: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """One row per ``ok`` (or already ``flagged``) run with epoch metrics: loss levels and the two flags (NaN
    when C is unknown)."""
    if not len(curves) or "train_loss" not in curves:
        return pd.DataFrame(columns=list(HEALTH_COLUMNS))
    by_run = {key: rows.sort_values("epoch") for key, rows in curves.groupby(["grid", "run_id"], sort=False)}
    rows = []
    for run in frame[frame["status"].isin([RunStatus.OK, RunStatus.FLAGGED])].itertuples(index=False):
        epochs = by_run.get((run.grid, run.run_id))
        if epochs is None or epochs["train_loss"].notna().sum() == 0:
            continue
        loss = epochs["train_loss"].astype(float)
        classes = _classes(run)
        top1 = epochs["train_top1"].dropna() if "train_top1" in epochs else pd.Series(dtype=float)
        final_top1 = float(top1.iloc[-1]) if len(top1) else math.nan
        known = math.isfinite(classes)
        peak = int(loss.idxmax())
        rows.append({"grid": run.grid, "variant": run.variant, "seed": run.seed, "run_id": run.run_id,
                     "reused_from": run.reused_from, "classes": classes,
                     "first_loss": float(loss.dropna().iloc[0]), "peak_loss": float(loss.max()),
                     "peak_epoch": int(epochs.loc[peak, "epoch"]), "final_loss": float(loss.dropna().iloc[-1]),
                     "final_train_top1": final_top1,
                     "spike": bool(loss.max() > SPIKE_FACTOR * math.log(classes)) if known else np.nan,
                     "not_learned": bool(final_top1 < LEARNED_FACTOR * 100.0 / classes)
                     if known and math.isfinite(final_top1) else np.nan})
    health = pd.DataFrame(rows, columns=list(HEALTH_COLUMNS))
    health["flagged"] = (health["spike"] == True) | (health["not_learned"] == True)  # noqa: E712 (NaN = unknown)
    return health


def flag_reason(row) -> str:
    """Why a run is flagged, in words, from one row of :func:`training_health`."""
    reasons = []
    if row.spike == True:  # noqa: E712 (NaN = unknown)
        reasons.append(f"loss spike: epoch {row.peak_epoch}'s training loss {row.peak_loss:.2f} > {SPIKE_FACTOR:g} x "
                       f"ln {row.classes:g}")
    if row.not_learned == True:  # noqa: E712
        reasons.append(f"did not learn: final training top-1 {row.final_train_top1:.1f}% < {LEARNED_FACTOR:g} x chance")
    return "; ".join(reasons)
