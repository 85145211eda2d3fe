"""The paper's claims judged on the best evidence held: the table that opens REPORT.md.

One record per claim of the paper (its words: /work/shared/papers, ``study.claims``), with the published figure, what
was measured and the verdict under one rule (docs/analysis.md, "The claims table"):

* an accuracy claim is judged only by a decided comparison of the second edition (``sequential.json``, the
  repeated confidence interval at the stopping look, as "The questions at a glance" reads it); until its question is
  decided it is *not tested yet*, and says what it waits for;
* a cost claim is counted from the models, no run needed (``RESULTS/claim_costs.json`` from ``run.py
  claim-costs``, ``RESULTS/dct_bound.json`` from ``run.py dct-bound``);
* a claim on data this machine does not hold is *not testable here*.

``claims_table`` returns records of numbers and enums; ``analysis.render.render_paper_claims`` writes them as words.
Nothing here builds a model or reads a run: the files above are read by ``read_cost_files``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from evidence.sequential import has_ended
from study.claims import (
    PUBLISHED_ACCURACY_GAIN,
    PUBLISHED_ACCURACY_GAIN_CIFAR100,
    PUBLISHED_MACS_RATIO,
    PUBLISHED_PARAMS_RATIO,
)
from study.grids import GRIDS
from study.questions import CORE_QUESTIONS

CLAIM_TOLERANCE = 0.05  # a counted cost within 5% of the published figure (rounded to one decimal) supports it
MARGIN = 0.5  # the smallest effect of interest and non-inferiority margin of the second edition (docs/study.md)
EQ8_BOUND = 5 / 16  # eq. (8): C1 <= 5/16 C0 for M = N, p >= 2
HEADLINE = next(q for q in CORE_QUESTIONS if q.grid == "paper-claim")


class Verdict(str, Enum):
    """A claim's verdict: in the claims table (here) and in the first pass's (``analysis.claims``)."""
    SUPPORTED = "supported"
    NOT_SUPPORTED = "not supported"
    INCONCLUSIVE = "inconclusive"  # decided, yet the interval does not settle the claim's own figure
    NOT_TESTED = "not tested yet"
    NOT_TESTABLE = "not testable here"
    NO_CLAIM = "no claim"  # a first-pass cost measured for information (analysis.claims)
    NO_RESULTS = "no results"  # a first-pass claim whose grid or variants are missing (analysis.claims)

    def __str__(self) -> str:
        return self.value


class Kind(str, Enum):
    GAIN = "gain"  # X is g points more accurate than Y
    HELPS = "helps"  # X is more accurate than Y (no figure)
    NONINFERIOR = "noninferior"  # X is as good as Y (within the margin)
    RATIO = "ratio"  # Y costs g times what X costs
    BOUND = "bound"  # a cost ratio at most g

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Decision:
    """A decided (or open) comparison of the second edition, turned the claim's way round: ``estimate`` and ``ci``
    are *claimed - other* (the sequential record's variant - reference times ``sign``)."""
    question: str  # its key, "a" to "g"
    grid: str
    claimed: str  # the network the claim favours
    other: str
    label: str  # the sequential rule's label, of the record's own variant
    estimate: float | None
    ci: tuple[float, float] | None
    level: float | None
    look: int | None
    seeds: int | None
    within_margin: bool | None = None  # the interval also lies within ±margin: significant, smaller than the effect

    @property
    def ended(self) -> bool:
        """The rule ended the comparison (``evidence.sequential.has_ended``): decided, or inconclusive at the cap of
        its schedule. Its interval then judges the claim."""
        return has_ended(self.label) and self.ci is not None


@dataclass(frozen=True)
class CostCount:
    """Counted costs behind a cost claim: ``value`` (a ratio, or the bound's largest value over the layers), with
    the range over layers (``low``, ``high``) and the counts it comes from."""
    file: str  # the file under the results directory it is read from
    value: float
    low: float | None = None
    high: float | None = None
    numerator: int | None = None  # e.g. MobileNetV2's MACs
    denominator: int | None = None  # e.g. DyClotNet's MACs
    reading: str | None = None  # the reading of the paper and of the baseline the count uses
    approx_high: float | None = None  # eq. (8): the largest value with the depthwise term dropped
    share_low: float | None = None  # eq. (8): the DCT module's share of the bottleneck's MACs
    share_high: float | None = None


@dataclass(frozen=True)
class PaperClaim:
    """One claim of the paper: its words, where they are, the published figure, the evidence and the verdict."""
    key: str
    words: str  # the paper's words
    where: str  # where the paper says it
    kind: Kind
    published: float | None  # points, a ratio or a bound; for "replaces" our margin (the paper gives no figure)
    verdict: Verdict
    decision: Decision | None = None
    cost: CostCount | None = None
    waits_for: str | None = None  # the question key it waits for (not tested yet), or None
    dataset: str | None = None  # data absent here (not testable)
    also: tuple[Decision, ...] = ()  # the question's other decided rows (another device or budget): not the verdict's


# (key, the paper's words, where, kind, published figure, question or cost source)
CLAIMS = (
    ("headline-cifar10", f"DyClotNet 2.0x is {PUBLISHED_ACCURACY_GAIN} points more accurate than MobileNetV2 1.0x "
     "on CIFAR-10", "ICCAI 2022 version, abstract", Kind.GAIN, PUBLISHED_ACCURACY_GAIN),
    ("headline-cifar100", f"... and {PUBLISHED_ACCURACY_GAIN_CIFAR100} points on CIFAR-100",
     "ICCAI 2022 version, abstract", Kind.GAIN, PUBLISHED_ACCURACY_GAIN_CIFAR100),
    ("macs", f"with {PUBLISHED_MACS_RATIO}x less computation", "ICCAI 2022 version, abstract", Kind.RATIO,
     PUBLISHED_MACS_RATIO),
    ("params", f"and {PUBLISHED_PARAMS_RATIO}x fewer parameters", "ICCAI 2022 version, abstract", Kind.RATIO,
     PUBLISHED_PARAMS_RATIO),
    ("replaces-pointwise", "DCT is a potential unit to replace computationally expensive pointwise convolution as an "
     "expansion layer in the bottleneck structure", "abstract; Section 5", Kind.NONINFERIOR, MARGIN),
    ("recalibrator", "the recalibrator serves as a complementary component to ensure sufficient capacity for the "
     "whole building block", "Section 3.3", Kind.HELPS, None),
    ("eq8", "As the computation complexity of DCT module is negligible ... C1 <= 5/16 C0 (M = N, p >= 2)",
     "Section 4.2, eq. (8)", Kind.BOUND, EQ8_BOUND),
)
# the second edition's question answering each accuracy claim: (question key, the network the claim favours)
EVIDENCE = {"headline-cifar10": (HEADLINE.key, "dyclotnet-2.0"), "replaces-pointwise": ("b", "dct"),
            "recalibrator": ("a", "dct")}
CIFAR100 = "cifar100"


def read_cost_files(results: Path) -> tuple[list[dict] | None, list[dict] | None]:
    """``(claim_costs.json rows, dct_bound.json rows)``; None for a file that is absent. A file that is present
    but unreadable is an error naming the command that rewrites it."""
    out = []
    for name, command in (("claim_costs.json", "claim-costs"), ("dct_bound.json", "dct-bound")):
        path = Path(results) / name
        try:
            rows = json.loads(path.read_text())
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ValueError("not a list of rows")
        except FileNotFoundError:
            rows = None
        except ValueError as error:
            raise ValueError(f"'{path}' is not a {command} file ({error}); rewrite it with "
                             f"run.py {command} --out {path}") from None
        out.append(rows)
    return out[0], out[1]


def _decisions(glance, question: str, claimed: str) -> tuple[Decision, ...]:
    """Every row of ``question`` in "The questions at a glance" with a recorded comparison, turned the claim's way:
    the CPU's first, then its GPU folders' (each budget its own row, never pooled with another)."""
    out = []
    for row in sorted((r for r in glance if r.key == question and r.variant is not None), key=lambda r: r.gpu):
        sign = 1.0 if row.variant == claimed else -1.0
        other = row.reference if row.variant == claimed else row.variant
        ci = None if row.ci is None else tuple(sorted((sign * row.ci[0], sign * row.ci[1])))
        out.append(Decision(question, row.folder, claimed, other, row.label or "", None if row.estimate is None
                            else sign * row.estimate, ci, row.level, row.look, row.seeds, row.within_margin))
    return tuple(out)


def _decision(decisions: tuple[Decision, ...]) -> Decision | None:
    """The decision that judges a claim: the first decided of ``decisions`` (the CPU's before a GPU budget's: a
    question decided on the CPU keeps that verdict, one decided on a GPU only, as the headline is, gets its GPU
    verdict), else the first, still open."""
    return next((d for d in decisions if d.ended), decisions[0] if decisions else None)


def judge_decision(kind: Kind, published: float | None, d: Decision | None) -> Verdict:
    """The claims rule for an accuracy claim (docs/analysis.md): only a comparison the rule ended tests it (decided,
    or inconclusive at its cap)."""
    if d is None or not d.ended:
        return Verdict.NOT_TESTED
    low, high = d.ci
    if kind is Kind.NONINFERIOR:  # claimed - other within -margin or better
        return (Verdict.SUPPORTED if low > -published else Verdict.NOT_SUPPORTED if high < -published
                else Verdict.INCONCLUSIVE)
    if low > 0:  # decided: the claimed network is more accurate
        return Verdict.SUPPORTED if kind is Kind.HELPS or high >= published else Verdict.NOT_SUPPORTED
    return Verdict.NOT_SUPPORTED if high < (published or 0) or d.label == "equivalent" else Verdict.INCONCLUSIVE


def judge_count(kind: Kind, published: float, value: float) -> Verdict:
    """The claims rule for a cost claim: the count supports it within ``CLAIM_TOLERANCE`` of the published figure
    (a ratio), or when it stays below the bound by that tolerance at most (a bound)."""
    if kind is Kind.BOUND:
        return Verdict.SUPPORTED if value <= published * (1 + CLAIM_TOLERANCE) else Verdict.NOT_SUPPORTED
    return Verdict.SUPPORTED if abs(value / published - 1) <= CLAIM_TOLERANCE else Verdict.NOT_SUPPORTED


def _headline_costs(rows: list[dict] | None) -> dict[str, CostCount]:
    """The counted ratios of DyClotNet-2.0 as built by default against the MobileNetV2-1.0 the headline question
    compares with (``study.questions.CORE_QUESTIONS``), from claim_costs.json."""
    if not rows:
        return {}
    reference = GRIDS[HEADLINE.grid].variants[HEADLINE.variant]
    row = next((r for r in rows if r.get("dyclot_kwargs") == {} and r.get("mobilenet_model") == reference.model
                and r.get("mobilenet_kwargs", {}) == dict(reference.model_kwargs)), None)
    if row is None:
        return {}
    reading = f"{row['dyclotnet_200 reading']} vs {row['mobilenetv2_100 reading']}"
    matching = sum(bool(r.get("params_match")) and bool(r.get("macs_match")) for r in rows)
    if row.get("params_match") and row.get("macs_match"):  # not independent evidence: say why this reading
        alone = "it alone" if matching == 1 else f"it is one of {matching}"
        reading += (f"; the adaptation the headline compares with because {alone} of the {len(rows)} readings counted "
                    "reproduces both published ratios (the appendix: which reading reproduces which published cost)")
    return {key: CostCount("claim_costs.json", float(row[f"{key}_ratio"]), numerator=int(row[f"mobilenet_{key}"]),
                           denominator=int(row[f"dyclot_{key}"]), reading=reading) for key in ("macs", "params")}


def _bound_count(rows: list[dict] | None) -> CostCount | None:
    if not rows:
        return None
    values = [float(r["c1_over_c0"]) for r in rows]
    shares = [float(r["dct_share"]) for r in rows]
    return CostCount("dct_bound.json", max(values), min(values), max(values),
                     approx_high=max(float(r["c1_approx_over_c0"]) for r in rows), share_low=min(shares),
                     share_high=max(shares))


def claims_table(glance, claim_costs: list[dict] | None, dct_bound: list[dict] | None) -> tuple[PaperClaim, ...]:
    """Every claim of the paper with its verdict: accuracy claims from the second edition's decisions (``glance``,
    "The questions at a glance" rows), cost claims from the counts, CIFAR-100 not testable here."""
    costs = {**_headline_costs(claim_costs)}
    bound = _bound_count(dct_bound)
    out = []
    for key, words, where, kind, published in CLAIMS:
        if key == "headline-cifar100":
            out.append(PaperClaim(key, words, where, kind, published, Verdict.NOT_TESTABLE, dataset=CIFAR100))
        elif key in EVIDENCE:
            question, claimed = EVIDENCE[key]
            decisions = _decisions(glance, question, claimed)
            decision = _decision(decisions)
            verdict = judge_decision(kind, published, decision)
            out.append(PaperClaim(key, words, where, kind, published, verdict, decision,
                                  waits_for=question if verdict is Verdict.NOT_TESTED else None,
                                  also=tuple(d for d in decisions if d.ended and d is not decision)))
        else:
            count = bound if kind is Kind.BOUND else costs.get(key)
            verdict = Verdict.NOT_TESTED if count is None else judge_count(kind, published, count.value)
            out.append(PaperClaim(key, words, where, kind, published, verdict, cost=count))
    return tuple(out)


__all__ = ["CLAIMS", "CLAIM_TOLERANCE", "CostCount", "Decision", "Kind", "PaperClaim", "Verdict", "claims_table",
           "judge_count", "judge_decision", "read_cost_files"]
