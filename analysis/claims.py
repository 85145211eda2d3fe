"""The paper's claims tested on the first pass's runs: verdicts of the appendix's "First pass: paper claims" section.

Each claim is a comparison of two variants of one grid (``study/claims.py`` has the published
numbers, ``study/grids.py`` the headline pair); the verdict rules are in docs/analysis.md. The
functions take in-memory tables and return ``ClaimRow`` records of numbers and enums, which
``analysis.render`` writes as words; nothing here reads files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd

from evidence import stats
from study.claims import CIFAR100_CLAIM, PAPER_CLAIMS
from study.grids import GRIDS
from study.questions import CORE_QUESTIONS

from .compare import compare_samples, natural_key
from .paper_claims import Verdict

COST_TOLERANCE = 0.10  # a cost ratio within 10% of the paper's is "supported" (counting conventions differ)
HEADLINE_GRID = "paper-claim"
NONINFERIORITY_GRIDS = ("expansion-op", "core-fashion-mnist")  # grids with `dct` and `pointwise` variants
NONINFERIORITY_MARGIN = 0.5


class ClaimKind(str, Enum):
    """What a first-pass claim compares."""
    ACCURACY = "accuracy"  # the variant beats the reference by the claimed points of test top-1
    COST = "cost"  # the variant needs the claimed times less of a cost
    NONINFERIORITY = "non-inferiority"  # the variant is at most the claimed margin worse


class ClaimReason(str, Enum):
    """Why a claim got its verdict (docs/analysis.md, "Paper claims, first pass"); ``analysis.render.claim_reason``
    writes it out with the row's numbers."""
    FEW_RUNS = "fewer than 2 runs per variant"  # n, n_ref
    NO_INTERVAL = "no interval"  # the values do not vary
    CI_BELOW_CLAIM = "CI below the claimed gain"
    CI_ABOVE_ZERO = "CI above 0"  # consistent with the claimed gain, or above it (``ci[0] > claimed``)
    CI_HAS_ZERO_AND_CLAIM = "CI contains 0 and the claimed gain"  # seeds_needed, sd_upper
    NOT_RECORDED = "cost not recorded"
    FOR_INFORMATION = "no claimed ratio"
    WITHIN_TOLERANCE = "within the cost tolerance"  # COST_TOLERANCE
    OUTSIDE_TOLERANCE = "outside the cost tolerance"
    NONINFERIOR = "non-inferior"  # p
    BOUND_BELOW_MARGIN = "one-sided upper bound below -margin"  # one_sided[1]
    NONINFERIORITY_NOT_SHOWN = "non-inferiority not shown"  # p, seeds_needed, sd_upper
    GRID_ABSENT = "grid absent"
    NO_PAIR = "no pair in the grid"  # the grid lacks the claim's pair of variants
    NO_DATA = "no data here"  # CIFAR-100

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ClaimOutcome:
    """What testing one claim gave: the verdict, its reason and the numbers behind both (None: not measured)."""
    verdict: Verdict
    reason: ClaimReason
    estimate: float | None = None  # variant - reference in points; for a cost, the reference's median / the variant's
    ci: tuple[float, float] | None = None  # the 95% t interval of the difference
    test: str | None = None  # the test behind ``ci`` (an accuracy claim)
    n: int | None = None
    n_ref: int | None = None
    one_sided: tuple[float, float] | None = None  # the one-sided 95% lower and upper bounds (non-inferiority)
    p: float | None = None  # the non-inferiority test's p
    seeds_needed: int | None = None  # seeds per variant that would settle it with 80% power
    sd_upper: float | None = None  # the SD's 80% upper confidence bound behind ``seeds_needed``
    medians: tuple[float, float] | None = None  # a cost's medians: variant, reference
    varies: bool = False  # a cost's values differ between runs (medians used)


@dataclass(frozen=True)
class ClaimRow:
    """One claim: which comparison tested it (``grid`` None: no grid here) and what it gave. Numbers and enums only:
    ``analysis.render`` writes them."""
    claim: str
    kind: ClaimKind
    grid: str | None
    variant: str | None
    reference: str | None
    outcome: ClaimOutcome
    claimed: float | None = None  # the claimed gain (points), cost ratio (times) or non-inferiority margin (points)
    cost: str | None = None  # the compared cost column (a cost claim)
    datasets: tuple[str, ...] = ()  # an accuracy claim measured on data other than CIFAR-10: those data


@dataclass(frozen=True)
class ClaimsFindings:
    rows: tuple[ClaimRow, ...]
    dyclot: str | None  # the headline grid's DyClotNet-2.0 variant
    mobile: str | None  # and the MobileNetV2-1.0 variant it is compared with


def _rows(usable: pd.DataFrame, grid: str, variant: str) -> pd.DataFrame:
    return usable[(usable["grid"] == grid) & (usable["variant"] == variant)]


def headline_pair(models: dict[str, str]) -> tuple[str | None, str | None]:
    """``(DyClotNet-2.0 variant, MobileNetV2-1.0 variant)`` of the headline grid's runs (``{variant: model}``).

    A variant plays a role when it has the name or the model the headline grid defines for it
    (``study/grids.py``); the MobileNetV2 side prefers the core question's variant, then the grid's other
    variants in their defined order, then any remaining variant (natural order)."""
    spec = GRIDS[HEADLINE_GRID]
    names = sorted(models, key=natural_key)

    def match(name: str, taken: str | None = None) -> str | None:
        model = spec.variants[name].model
        return next((v for v in names if v != taken and (v == name or models[v] == model)), None)

    dyclot = match(spec.reference)
    if dyclot is None:
        return None, None
    core = next(q.variant for q in CORE_QUESTIONS if q.grid == HEADLINE_GRID)
    wanted = [core, *(name for name in spec.variants if name not in (core, spec.reference))]
    mobile = next((hit for name in wanted if (hit := match(name, dyclot))), None)
    return dyclot, mobile or next((v for v in names if v != dyclot), None)


def _seeds_to_detect(x, y, paired: bool, diff: float) -> dict:
    """Seeds per variant that would detect ``diff`` with 80% power, the SD taken as its 80% upper confidence bound."""
    sd_up = stats.sd_upper_bound(*stats.difference_sd(x["test_top1"], y["test_top1"], paired))
    n = stats.seeds_for_power(diff / sd_up, paired) if math.isfinite(sd_up) and sd_up > 0 else None
    return {"seeds_needed": n, "sd_upper": sd_up if n else None}


def accuracy_claim(x: pd.DataFrame, y: pd.DataFrame, claimed: float) -> ClaimOutcome:
    """Claim 'x beats y by ``claimed`` points' (rules in docs/analysis.md)."""
    if min(len(x), len(y)) < 2:
        return ClaimOutcome(Verdict.INCONCLUSIVE, ClaimReason.FEW_RUNS, n=len(x), n_ref=len(y))
    c = compare_samples(x, y, "test_top1")
    measured = {"estimate": c["diff"], "ci": (c["ci_low"], c["ci_high"]), "test": c["test"], "n": c["n"],
                "n_ref": c["n_ref"]}
    if not (math.isfinite(c["ci_low"]) and math.isfinite(c["ci_high"])):
        return ClaimOutcome(Verdict.INCONCLUSIVE, ClaimReason.NO_INTERVAL, **measured)
    if c["ci_high"] < claimed:
        return ClaimOutcome(Verdict.NOT_SUPPORTED, ClaimReason.CI_BELOW_CLAIM, **measured)
    if c["ci_low"] > 0:
        return ClaimOutcome(Verdict.SUPPORTED, ClaimReason.CI_ABOVE_ZERO, **measured)
    return ClaimOutcome(Verdict.INCONCLUSIVE, ClaimReason.CI_HAS_ZERO_AND_CLAIM, **measured,
                        **_seeds_to_detect(x, y, c["paired"], claimed))


def cost_claim(x: pd.DataFrame, y: pd.DataFrame, column: str, claimed: float | None) -> ClaimOutcome:
    """Claim 'x needs ``claimed`` times less ``column`` than y' (cost of the model, not random)."""
    cx, cy = x[column].dropna(), y[column].dropna()
    if not len(cx) or not len(cy):
        return ClaimOutcome(Verdict.INCONCLUSIVE, ClaimReason.NOT_RECORDED)
    ratio = float(np.median(cy) / np.median(cx))
    measured = {"estimate": ratio, "medians": (float(np.median(cx)), float(np.median(cy))),
                "varies": bool(cx.nunique() > 1 or cy.nunique() > 1)}
    if claimed is None:
        return ClaimOutcome(Verdict.NO_CLAIM, ClaimReason.FOR_INFORMATION, **measured)
    if abs(ratio / claimed - 1) <= COST_TOLERANCE:
        return ClaimOutcome(Verdict.SUPPORTED, ClaimReason.WITHIN_TOLERANCE, **measured)
    return ClaimOutcome(Verdict.NOT_SUPPORTED, ClaimReason.OUTSIDE_TOLERANCE, **measured)


def noninferiority_claim(x: pd.DataFrame, y: pd.DataFrame, margin: float) -> ClaimOutcome:
    """Claim 'x is non-inferior to y at ``margin`` points' with the one-sided t test (TOST half)."""
    if min(len(x), len(y)) < 2:
        return ClaimOutcome(Verdict.INCONCLUSIVE, ClaimReason.FEW_RUNS, n=len(x), n_ref=len(y))
    c = compare_samples(x, y, "test_top1", margin=margin)
    c90 = compare_samples(x, y, "test_top1", margin=margin, confidence=0.90)
    measured = {"estimate": c["diff"], "ci": (c["ci_low"], c["ci_high"]), "n": c["n"], "n_ref": c["n_ref"],
                "one_sided": (c90["ci_low"], c90["ci_high"]), "p": c["p_noninf"]}
    if math.isfinite(c["p_noninf"]) and c["p_noninf"] < 0.05:
        return ClaimOutcome(Verdict.SUPPORTED, ClaimReason.NONINFERIOR, **measured)
    if math.isfinite(c90["ci_high"]) and c90["ci_high"] < -margin:
        return ClaimOutcome(Verdict.NOT_SUPPORTED, ClaimReason.BOUND_BELOW_MARGIN, **measured)
    n = c["seeds_needed_noninf"]
    return ClaimOutcome(Verdict.INCONCLUSIVE, ClaimReason.NONINFERIORITY_NOT_SHOWN, **measured, seeds_needed=n,
                        sd_upper=c["sd_upper"] if n else None)


def _headline_rows(frame: pd.DataFrame, usable: pd.DataFrame, dyclot: str | None, mobile: str | None) -> list[ClaimRow]:
    grid = HEADLINE_GRID
    if grid not in set(frame["grid"]) or dyclot is None or mobile is None:
        why = ClaimReason.GRID_ABSENT if grid not in set(frame["grid"]) else ClaimReason.NO_PAIR
        return [ClaimRow(claim, ClaimKind.ACCURACY if kind == "acc" else ClaimKind.COST, grid, None, None,
                         ClaimOutcome(Verdict.NO_RESULTS, why), claimed, None if kind == "acc" else kind)
                for claim, kind, claimed in PAPER_CLAIMS]
    x, y = _rows(usable, grid, dyclot), _rows(usable, grid, mobile)
    datasets = tuple(sorted(pd.concat([x, y])["dataset"].dropna().astype(str).unique()))
    elsewhere = datasets if datasets and not all("cifar" in d.lower() and "10" in d for d in datasets) else ()
    rows = []
    for claim, kind, claimed in PAPER_CLAIMS:
        if kind == "acc":
            rows.append(ClaimRow(claim, ClaimKind.ACCURACY, grid, dyclot, mobile, accuracy_claim(x, y, claimed), claimed,
                                 datasets=elsewhere))
        else:
            rows.append(ClaimRow(claim, ClaimKind.COST, grid, dyclot, mobile, cost_claim(x, y, kind, claimed), claimed, kind))
    return rows


def claim_findings(frame: pd.DataFrame, usable: pd.DataFrame) -> ClaimsFindings:
    """Every claim's row: the headline's claims, CIFAR-100 (not testable here), DCT's non-inferiority."""
    in_grid = frame[frame["grid"] == HEADLINE_GRID]
    models = {str(v): str(m) for v, m in in_grid[["variant", "model"]].itertuples(index=False) if isinstance(v, str)}
    dyclot, mobile = headline_pair(models)
    rows = _headline_rows(frame, usable, dyclot, mobile)
    rows.append(ClaimRow(CIFAR100_CLAIM, ClaimKind.ACCURACY, None, None, None,
                         ClaimOutcome(Verdict.NOT_TESTABLE, ClaimReason.NO_DATA)))
    for grid in NONINFERIORITY_GRIDS:
        claim = (f"DCT is non-inferior to the pointwise expansion it replaces (margin {NONINFERIORITY_MARGIN:g} points), "
                 f"`{grid}`")
        if grid in set(frame["grid"]) and {"dct", "pointwise"} <= set(frame.loc[frame["grid"] == grid, "variant"]):
            outcome = noninferiority_claim(_rows(usable, grid, "dct"), _rows(usable, grid, "pointwise"),
                                           NONINFERIORITY_MARGIN)
            rows.append(ClaimRow(claim, ClaimKind.NONINFERIORITY, grid, "dct", "pointwise", outcome, NONINFERIORITY_MARGIN))
        else:
            rows.append(ClaimRow(claim, ClaimKind.NONINFERIORITY, grid, None, None,
                                 ClaimOutcome(Verdict.NO_RESULTS, ClaimReason.NO_PAIR), NONINFERIORITY_MARGIN))
    return ClaimsFindings(tuple(rows), dyclot, mobile)
