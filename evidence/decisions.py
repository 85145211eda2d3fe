"""The sequential rule applied to run files: paired differences, look-by-look decisions, what would decide.

``ablate --until-decided`` (``experiments.until_decided``) trains the seeds and calls ``decide`` after each look;
the report calls ``look_history`` on the same run files to show every look the rule made, so a reader can check
the stopping look against the recorded ``sequential.json``. Pure functions of the tidy run table
(``evidence.load.load_results``) and of the design (schedule, margin, reference, protocol, compared variants).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .load import of_engine_version, setting_differences
from .sequential import OPEN, sequential_decision
from .stats import sd_upper_bound, seeds_for_power
from .status import RunStatus


class PairingError(ValueError):
    """The runs of a look exist but do not pair: a setting differs between the two networks' runs (other than the
    learning rate, model and its arguments), or between one network's seeds (any setting). Never paired silently."""


def pairing_problem(runs: pd.DataFrame, variant: str, reference: str) -> str | None:
    """Why the ok runs ``runs`` (one per network and seed) of ``variant`` and ``reference`` do not pair, or None.

    Within one network every setting must be equal across its seeds, its learning rate included
    (``load.setting_differences``); across the pair every setting but the networks' own (``lr``, ``model``,
    ``model_kwargs``: each network's rate is chosen on its own validation search) must be equal."""
    problems = [f"`{v}`'s seeds differ in {'; '.join(d)}" for v in (variant, reference)
                if (d := setting_differences(runs[runs["variant"] == v]))]
    if not problems and (d := setting_differences(runs, network=False)):
        problems.append(f"`{variant}` and `{reference}` differ in {'; '.join(d)}")
    return "; ".join(problems) or None


def paired_differences(frame: pd.DataFrame, grid: str, protocol: str, variant: str, reference: str,
                       n: int, engine_version: int) -> np.ndarray | None:
    """``variant - reference`` test top-1 of seeds ``0..n-1`` (ok runs of the protocol trained by engine
    ``engine_version``), or None while a seed lacks a finished ok pair. Raises ``PairingError`` naming the
    settings where those runs exist but do not pair (``pairing_problem``)."""
    frame = of_engine_version(frame, engine_version)
    rows = frame[(frame["grid"] == grid) & (frame["protocol"] == protocol) & (frame["status"] == RunStatus.OK)]
    top1 = {v: rows[rows["variant"] == v].set_index("seed")["test_top1"] for v in (variant, reference)}
    seeds = range(n)
    if not all(s in top1[variant].index and s in top1[reference].index for s in seeds):
        return None
    used = rows[rows["variant"].isin([variant, reference]) & pd.to_numeric(rows["seed"]).lt(n)]
    problem = pairing_problem(used, variant, reference)
    if problem:
        raise PairingError(f"`{grid}` seeds 0-{n - 1}: {problem}; a rerun under other settings is never paired "
                           "(a new design needs its own grid folder)")
    return np.array([top1[variant][s] - top1[reference][s] for s in seeds], float)


def seeds_to_decide(diffs: np.ndarray, effect: float, comparisons: int) -> str:
    """The plan's estimate for a comparison left open at the last look: paired seeds per variant that detect
    ``effect`` with 80% power (a fixed design at alpha / comparisons), with the SD's 80% upper bound."""
    sd_up = sd_upper_bound(float(np.std(diffs, ddof=1)), len(diffs) - 1)
    seeds = seeds_for_power(effect / sd_up, paired=True, alpha=0.05 / comparisons) if sd_up > 0 else None
    need = f"about {seeds}" if seeds else "more than 10,000"
    return (f"{need} paired seeds per variant would detect {effect:g} points with 80% power (fixed design, "
            f"alpha 0.05/{comparisons}; paired SD taken as its 80% upper bound {sd_up:.2f})")


def look_history(frame: pd.DataFrame, grid: str, protocol: str, reference: str, variants: list[str],
                 schedule: tuple[int, ...], margin: float, engine_version: int) -> dict[str, list[dict]]:
    """Every look the run files allow, per variant, up to the one that decides it: ``{variant: [{label, look,
    n, estimate, ci, p, boundary, margin, tost_p, tost_level, tost_ci, within_margin}, ...]}`` (the fields of
    ``sequential.Decision``; empty while look 1's seeds are missing). Alpha is split over
    ``variants`` (the compared ones); a variant's looks stop at its first label other than ``continue``."""
    out = {}
    for variant in variants:
        looks = []
        for look, n in enumerate(schedule, 1):
            diffs = paired_differences(frame, grid, protocol, variant, reference, n, engine_version)
            if diffs is None:
                break
            decision = sequential_decision(diffs, look, schedule, margin, n_comparisons=len(variants))
            state = {"label": decision.label, "look": look, "n": n, "estimate": decision.estimate,
                     "ci": list(decision.ci), "p": decision.p, "boundary": decision.boundary,
                     "margin": decision.margin, "tost_p": list(decision.tost_p), "tost_level": decision.tost_level,
                     "tost_ci": list(decision.tost_ci), "within_margin": decision.within_margin}
            if decision.label.startswith("inconclusive"):
                state["to_decide"] = seeds_to_decide(diffs, margin, len(variants))
            looks.append(state)
            if decision.label != OPEN:
                break
        out[variant] = looks
    return out


def decide(frame: pd.DataFrame, grid: str, protocol: str, reference: str, variants: list[str],
           schedule: tuple[int, ...], margin: float, engine_version: int) -> dict[str, dict]:
    """Each variant's state after the looks its run files allow (the last of ``look_history``): ``{variant:
    {label, look, n, estimate, ci, p, boundary}}``; ``label`` is ``continue`` (not decided, or its next look's
    seeds are missing), look 0 before the first look."""
    history = look_history(frame, grid, protocol, reference, variants, schedule, margin, engine_version)
    return {v: looks[-1] if looks else {"label": OPEN, "look": 0, "n": 0} for v, looks in history.items()}
