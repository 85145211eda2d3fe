"""The one vocabulary of run status, shared by the engine (``experiments``) and ``analysis``: it lives
below both, so that neither imports the other for it.

A light module (no torch, no engine): the engine writes ``ok``/``failed`` into result.json and
reports ``running``/``partial``/``todo`` for runs without one; ``analysis`` adds ``corrupt``,
``unfinished``, ``superseded``, ``duplicate``, ``conflict`` and ``flagged`` when it reads a results directory. On disk and in
tables a status is its plain string value.
"""
from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    OK = "ok"  # finished, result.json valid
    FAILED = "failed"  # finished with an error (result.json keeps the reason)
    RUNNING = "running"  # another process holds the run's lock
    PARTIAL = "partial"  # interrupted, resumable from its checkpoint
    TODO = "todo"  # not started
    LOST = "lost"  # its worker process died before it was recorded (resumes on the next ablate)
    CORRUPT = "corrupt"  # result.json exists but is not a valid result
    UNFINISHED = "unfinished"  # no result.json (running, killed or never started)
    SUPERSEDED = "superseded"  # ok, but of an older engine version than its grid's newest runs, or of an older
    # architecture revision of its model than its newest runs (evidence.load)
    DUPLICATE = "duplicate"  # a second ok run of the same (grid, variant, seed) under the same settings
    CONFLICT = "conflict"  # ok runs of the same (grid, variant, seed) under different settings: none is used
    FLAGGED = "flagged"  # ok, but its training diverged or never learned (evidence.health; engine version >= 2)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


FINISHED = (RunStatus.OK, RunStatus.FAILED)  # the statuses a result.json may hold
ENGINE_STATES = (RunStatus.OK, RunStatus.RUNNING, RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.TODO)
ANALYSIS_STATUSES = (RunStatus.OK, RunStatus.FAILED, RunStatus.CORRUPT, RunStatus.UNFINISHED, RunStatus.SUPERSEDED,
                     RunStatus.DUPLICATE, RunStatus.CONFLICT, RunStatus.FLAGGED)

# A run whose training loss became non-finite fails with this reason (experiments.trainer.Diverged). In a learning-rate
# search that is an outcome of the rate, which a rerun repeats, not a failure of the machine: the search counts such a
# run as finished with this final validation top-1 (docs/study.md, section 2, "A search run that diverges").
DIVERGED_REASON = "Diverged: "
DIVERGED_VAL_TOP1 = 0.0


def is_diverged(run) -> bool:
    """Whether one run (its result.json object, or a row with ``status`` and ``reason``) failed because its training
    loss became non-finite (``experiments.trainer.Diverged``)."""
    return str(run.get("status")) == RunStatus.FAILED.value and str(run.get("reason") or "").startswith(DIVERGED_REASON)


def diverged(frame):
    """Per row of a results table (``status`` and ``reason`` columns, evidence.load): :func:`is_diverged` (a boolean
    Series; False throughout where the table has no reasons)."""
    import pandas as pd

    rows = frame[["status", "reason"]] if "reason" in frame else frame[["status"]]
    return pd.Series([is_diverged(row) for row in rows.to_dict("records")], index=frame.index, dtype=bool)


def scored_as_searched(frame):
    """``frame`` with a boolean column ``diverged`` (:func:`diverged`) and each such run's ``val_top1`` set to
    ``DIVERGED_VAL_TOP1``: what a learning-rate search counts it as (``experiments.tuning`` choosing, ``analysis``
    reporting)."""
    lost = diverged(frame)
    return frame.assign(diverged=lost, val_top1=frame["val_top1"].where(~lost, DIVERGED_VAL_TOP1))
