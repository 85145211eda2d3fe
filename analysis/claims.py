"""The paper's claims tested on the first pass's runs: verdicts of the appendix's "First pass: paper claims" section.

Each claim is a comparison of two variants of one grid (``study/claims.py`` has the published
numbers, ``study/grids.py`` the headline pair); the verdict rules are in docs/analysis.md. The
functions take in-memory tables and return ``ClaimRow`` records; nothing here reads files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evidence import stats
from study.claims import CIFAR100_CLAIM, PAPER_CLAIMS
from study.grids import GRIDS
from study.questions import CORE_QUESTIONS

from .compare import compare_samples, natural_key
from .tables import command, fmt_ci, fmt_num, fmt_p

COST_TOLERANCE = 0.10  # a cost ratio within 10% of the paper's is "supported" (counting conventions differ)
HEADLINE_GRID = "paper-claim"
NONINFERIORITY_GRIDS = ("expansion-op", "core-fashion-mnist")  # grids with `dct` and `pointwise` variants
NONINFERIORITY_MARGIN = 0.5


@dataclass(frozen=True)
class ClaimRow:
    """One claim: which comparison tested it (``grid`` None: no grid here), what was measured, the verdict."""
    claim: str
    grid: str | None
    variant: str | None
    reference: str | None
    measured: str
    verdict: str
    reason: str


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


def _settle(x, y, paired: bool, diff: float) -> str:
    sd_up = stats.sd_upper_bound(*stats.difference_sd(x["test_top1"], y["test_top1"], paired))
    n = stats.seeds_for_power(diff / sd_up, paired) if math.isfinite(sd_up) and sd_up > 0 else None
    return (f"~{n} seeds per variant would detect {diff:+g} with 80% power (SD taken as its 80% upper confidence "
            f"bound {sd_up:.3g})" if n else "seeds needed unknown")


def accuracy_claim(x: pd.DataFrame, y: pd.DataFrame, claimed: float) -> tuple[str, str, str]:
    """Claim 'x beats y by ``claimed`` points': measured text, verdict, reason (rules in docs)."""
    if min(len(x), len(y)) < 2:
        return "–", "inconclusive", f"fewer than 2 runs per variant (n={len(x)}, {len(y)})"
    c = compare_samples(x, y, "test_top1")
    measured = f"{c['diff']:+.2f} points {fmt_ci(c['ci_low'], c['ci_high'])} ({c['test']}, n={c['n']}/{c['n_ref']})"
    if not (math.isfinite(c["ci_low"]) and math.isfinite(c["ci_high"])):
        return measured, "inconclusive", "no interval (values do not vary)"
    if c["ci_high"] < claimed:
        return measured, "not supported", f"the 95% CI excludes {claimed:+g}: the measured gain is smaller"
    if c["ci_low"] > 0:
        extra = " (gain larger than claimed)" if c["ci_low"] > claimed else ""
        return measured, "supported", f"the 95% CI excludes 0 and is consistent with {claimed:+g}{extra}"
    return measured, "inconclusive", (f"the 95% CI contains both 0 and {claimed:+g}; "
                                      + _settle(x, y, c["paired"], claimed))


def cost_claim(x: pd.DataFrame, y: pd.DataFrame, column: str, claimed: float | None) -> tuple[str, str, str]:
    """Claim 'x needs ``claimed`` times less ``column`` than y' (cost of the model, not random)."""
    cx, cy = x[column].dropna(), y[column].dropna()
    if not len(cx) or not len(cy):
        return "–", "inconclusive", f"`{column}` not recorded"
    ratio = float(np.median(cy) / np.median(cx))
    direction = f"{ratio:.2f}x fewer" if ratio >= 1 else f"{1 / ratio:.2f}x more"  # never "0.8x fewer"
    measured = f"{direction} ({fmt_num(np.median(cx))} vs {fmt_num(np.median(cy))})"
    spread = " (values differ between runs; medians used)" if cx.nunique() > 1 or cy.nunique() > 1 else ""
    if claimed is None:
        return measured, "no claim", "measured for information" + spread
    if abs(ratio / claimed - 1) <= COST_TOLERANCE:
        return measured, "supported", f"within {COST_TOLERANCE:.0%} of the claimed {claimed:g}x{spread}"
    return measured, "not supported", (f"differs from the claimed {claimed:g}x by more than {COST_TOLERANCE:.0%}{spread}; "
                                       "how the count depends on input size and readings: Interpretation choices")


def noninferiority_claim(x: pd.DataFrame, y: pd.DataFrame, margin: float) -> tuple[str, str, str]:
    """Claim 'x is non-inferior to y at ``margin`` points' with the one-sided t test (TOST half)."""
    if min(len(x), len(y)) < 2:
        return "–", "inconclusive", f"fewer than 2 runs per variant (n={len(x)}, {len(y)})"
    c = compare_samples(x, y, "test_top1", margin=margin)
    c90 = compare_samples(x, y, "test_top1", margin=margin, confidence=0.90)
    measured = (f"{c['diff']:+.2f} points {fmt_ci(c['ci_low'], c['ci_high'])}; one-sided 95% lower bound "
                f"{fmt_num(c90['ci_low'])} (n={c['n']}/{c['n_ref']})")
    if math.isfinite(c["p_noninf"]) and c["p_noninf"] < 0.05:
        return measured, "supported", f"lower bound above -{margin:g} (non-inferiority p={fmt_p(c['p_noninf'])})"
    if math.isfinite(c90["ci_high"]) and c90["ci_high"] < -margin:
        return measured, "not supported", f"one-sided 95% upper bound {fmt_num(c90['ci_high'])} below -{margin:g}"
    n = c["seeds_needed_noninf"]
    settle = (f"~{n} seeds per variant would show non-inferiority with 80% power if the true difference is 0 (SD "
              f"taken as its 80% upper confidence bound {c['sd_upper']:.3g})" if n else "seeds needed unknown")
    return measured, "inconclusive", f"non-inferiority p={fmt_p(c['p_noninf'])}; {settle}"


def _headline_rows(frame: pd.DataFrame, usable: pd.DataFrame, dyclot: str | None, mobile: str | None) -> list[ClaimRow]:
    grid = HEADLINE_GRID
    if grid not in set(frame["grid"]) or dyclot is None or mobile is None:
        why = "absent" if grid not in set(frame["grid"]) else "lacks a dyclotnet or mobilenetv2 variant"
        return [ClaimRow(claim, grid, None, None, "–", "no results", f"grid `{grid}` {why}") for claim, _, _ in PAPER_CLAIMS]
    x, y = _rows(usable, grid, dyclot), _rows(usable, grid, mobile)
    datasets = sorted(pd.concat([x, y])["dataset"].dropna().astype(str).unique())
    rows = []
    for claim, kind, claimed in PAPER_CLAIMS:
        measured, verdict, reason = accuracy_claim(x, y, claimed) if kind == "acc" else cost_claim(x, y, kind, claimed)
        if kind == "acc" and datasets and not all("cifar" in d.lower() and "10" in d for d in datasets):
            reason += f"; measured on {', '.join(datasets)}, not CIFAR-10"
        rows.append(ClaimRow(claim, grid, dyclot, mobile, measured, verdict, reason))
    return rows


def claim_findings(frame: pd.DataFrame, usable: pd.DataFrame) -> ClaimsFindings:
    """Every claim's row: the headline's claims, CIFAR-100 (not testable here), DCT's non-inferiority."""
    in_grid = frame[frame["grid"] == HEADLINE_GRID]
    models = {str(v): str(m) for v, m in in_grid[["variant", "model"]].itertuples(index=False) if isinstance(v, str)}
    dyclot, mobile = headline_pair(models)
    rows = _headline_rows(frame, usable, dyclot, mobile)
    rows.append(ClaimRow(CIFAR100_CLAIM, None, None, None, "–", "not testable here",
                         "no CIFAR-100 data on this machine; where it exists: "
                         + command("ablate", HEADLINE_GRID, "--dataset", "cifar100", "--data-root", "CIFAR100_DIR")))
    for grid in NONINFERIORITY_GRIDS:
        claim = (f"DCT is non-inferior to the pointwise expansion it replaces (margin {NONINFERIORITY_MARGIN:g} points), "
                 f"`{grid}`")
        if grid in set(frame["grid"]) and {"dct", "pointwise"} <= set(frame.loc[frame["grid"] == grid, "variant"]):
            measured, verdict, reason = noninferiority_claim(_rows(usable, grid, "dct"), _rows(usable, grid, "pointwise"),
                                                             NONINFERIORITY_MARGIN)
            rows.append(ClaimRow(claim, grid, "dct", "pointwise", measured, verdict, reason))
        else:
            rows.append(ClaimRow(claim, grid, None, None, "–", "no results",
                                 f"grid `{grid}` absent or without `dct` and `pointwise`"))
    return ClaimsFindings(tuple(rows), dyclot, mobile)
