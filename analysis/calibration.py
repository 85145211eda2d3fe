"""Calibration of the statistics by simulation: the analysis's own decision code on simulated grids.

A simulated grid has a reference and m variants, n paired seeds each: every seed adds one shared
effect to all variants (seed-to-seed variation, SD ``SEED_SD``) and every run its own noise, so that
the paired differences have SD ``DIFF_SD`` (1.4 points). ``decide_family`` computes, for many grids at
once, exactly what ``compare.analyze`` computes for one paired grid (the same ``stats`` functions,
``compare.family_confidence``, ``compare.adjust_family`` and ``compare.verdict``; a test checks that
the two agree grid by grid), so the rates below are those of the report's verdicts and intervals.
``calibration_table`` gives the table in docs/analysis.md (``run.py calibrate`` prints it).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from evidence import sequential, stats
from study.grids import CPU_SEED_CAP

from .compare import adjust_family, family_confidence
from .tables import markdown_table

DIFF_SD = 1.4  # SD of a paired difference, points
SEED_SD = 1.0  # SD of the effect a seed has on every variant, points
MEAN = 70.0
METRIC = "test_top1"
NULL_CLAIMS = ("better", "worse")  # verdicts that claim a difference (``worse, within margin`` included)
MARGIN_CLAIMS = ("better", "equivalent", "non-inferior", "worse, within margin")  # false when diff = -margin


def simulate_grids(reps: int, m: int, n: int, deltas: float | np.ndarray, rng: np.random.Generator):
    """``(x, y)``: ``x`` of shape ``(reps, m, n)`` (variants), ``y`` of shape ``(reps, n)`` (reference);
    variant j's true mean is ``MEAN + deltas[j]``, the reference's ``MEAN``."""
    deltas = np.broadcast_to(np.asarray(deltas, float), (m,))
    seed_effect = rng.normal(0, SEED_SD, (reps, 1, n))
    noise = rng.normal(0, DIFF_SD / math.sqrt(2), (reps, m + 1, n))
    runs = MEAN + seed_effect + noise
    return runs[:, 1:, :] + deltas[None, :, None], runs[:, 0, :]


def decide_family(x: np.ndarray, y: np.ndarray, margin: float | None = 0.5, alpha: float = 0.05,
                  correction: str = "holm", confidence: float = 0.95) -> dict:
    """What ``analyze`` decides for paired grids ``x`` ``(B, m, n)`` against ``y`` ``(B, n)``.

    Returns arrays of shape ``(B, m)``: ``p_raw``, ``p_noninf``, ``p_adj``, ``ci_low``, ``ci_high``, ``verdict``
    (the seeds needed are left out: they do not change a label)."""
    batch, m, n = x.shape
    ref = np.broadcast_to(y[:, None, :], x.shape)
    t = stats.t_test(x, ref, paired=True)
    m_eff = np.isfinite(t["p"]).sum(axis=1)
    out = {"p_raw": t["p"], "p_noninf": np.full(x.shape[:2], np.nan), "p_equiv": np.full(x.shape[:2], np.nan),
           "ci_low": np.empty(x.shape[:2]), "ci_high": np.empty(x.shape[:2]), "p_adj": np.empty(x.shape[:2]),
           "verdict": np.empty(x.shape[:2], dtype=object)}
    if margin is not None:
        out.update(stats.margin_tests(x, ref, margin, paired=True))
    for size in np.unique(m_eff):
        rows_here = m_eff == size
        level = family_confidence(confidence, max(1, int(size)), correction)
        ci = stats.t_test(x[rows_here], ref[rows_here], paired=True, confidence=level)
        out["ci_low"][rows_here], out["ci_high"][rows_here] = ci["ci_low"], ci["ci_high"]
    for b in range(batch):
        level = family_confidence(confidence, max(1, int(m_eff[b])), correction)
        rows = [{"n": n, "n_ref": n, "diff": float(t["diff"][b, j]), "statistic": float(t["statistic"][b, j]),
                 "p_raw": float(t["p"][b, j]), "p_rank": math.nan, "p_noninf": float(out["p_noninf"][b, j]),
                 "p_equiv": float(out["p_equiv"][b, j]), "ci_low": float(out["ci_low"][b, j]),
                 "ci_high": float(out["ci_high"][b, j]), "ci_level": level, "margin": margin,
                 "family_size": int(m_eff[b]), "effect_of_interest": None, "sd_upper": None,
                 "seeds_needed": None, "seeds_needed_noninf": None} for j in range(m)]
        adjust_family(rows, alpha, METRIC, correction)
        out["p_adj"][b] = [row["p_adj"] for row in rows]
        out["verdict"][b] = [row["verdict"] for row in rows]
    return out


def _claims(verdicts: np.ndarray, claims: tuple[str, ...]) -> np.ndarray:
    return np.vectorize(lambda v: v.startswith(claims), otypes=[bool])(verdicts)


def family_rates(n: int, m: int, reps: int = 1000, seed: int = 0, margin: float = 0.5, alpha: float = 0.05) -> dict:
    """Rates for grids of ``m`` variants + reference with ``n`` paired seeds (deterministic for ``seed``)."""
    rng = np.random.default_rng([seed, n, m])
    x, y = simulate_grids(reps, m, n, 0.0, rng)
    null = decide_family(x, y, margin, alpha)
    mean_ci = stats.stats.ttest_1samp(np.concatenate([x, y[:, None, :]], axis=1), MEAN, axis=-1).confidence_interval(0.95)
    rank_reported = stats.rank_test_min_p(n, n, True) * m < alpha
    rank_fpr = math.nan
    if rank_reported:
        rank_fpr = float(np.mean(stats.stats.wilcoxon(x, np.broadcast_to(y[:, None, :], x.shape), axis=-1).pvalue < alpha))
    xm, ym = simulate_grids(reps, m, n, -margin, rng)
    at_margin = decide_family(xm, ym, margin, alpha)
    covered = (null["ci_low"] <= 0) & (0 <= null["ci_high"])
    covered_m = (at_margin["ci_low"] <= -margin) & (-margin <= at_margin["ci_high"])
    return {
        "n": n, "m": m,
        "fpr_raw": float(np.mean(null["p_raw"] < alpha)),
        "fwer": float(np.mean(_claims(null["verdict"], NULL_CLAIMS).any(axis=1))),
        "rank_fpr": rank_fpr,
        "noninf_raw": float(np.mean(at_margin["p_noninf"] < alpha)),
        "fwer_margin": float(np.mean(_claims(at_margin["verdict"], MARGIN_CLAIMS).any(axis=1))),
        "mean_coverage": float(np.mean((mean_ci.low <= MEAN) & (MEAN <= mean_ci.high))),
        "diff_coverage": float(np.mean(np.concatenate([covered, covered_m]))),
        "diff_simultaneous": float(np.mean(np.concatenate([covered.all(axis=1), covered_m.all(axis=1)]))),
    }


def sequential_rates(reps: int = 4000, seed: int = 0, max_seeds: int = sequential.DEFAULT_MAX_SEEDS,
                     margin: float = 0.5, alpha: float = 0.05, n_comparisons: int = 1) -> dict:
    """The sequential rule on its real schedule ``plan_looks(max_seeds)`` at alpha / ``n_comparisons``: no
    difference, and a true difference at the margin (false ``equivalent``), with the repeated CI's coverage.
    ``fpr`` is per comparison; ``family_bound`` (``n_comparisons`` x ``fpr``) bounds the family-wise rate."""
    schedule = sequential.plan_looks(max_seeds)
    null = sequential.simulate(schedule, 0.0, DIFF_SD, reps, seed, margin, alpha, n_comparisons=n_comparisons)
    edge = sequential.simulate(schedule, -margin, DIFF_SD, reps, seed + 1, margin, alpha, n_comparisons=n_comparisons)
    fpr = null["better"] + null["worse"]
    return {"schedule": schedule, "m": n_comparisons, "fpr": fpr, "family_bound": n_comparisons * fpr,
            "false_equivalent": edge["equivalent"], "coverage": min(null["coverage"], edge["coverage"]),
            "expected_seeds_null": null["expected_seeds"]}


# (max_seeds, comparisons) of the sequential rows: the study's CPU cap with the second edition's family sizes
# (1: (a), (b), (c), (g); 3: (e) p-sweep; 4: (f) r-sweep; 9: (d)), and the default schedule
SEQUENTIAL_DESIGNS = tuple((CPU_SEED_CAP, m) for m in (1, 3, 4, 9)) + ((sequential.DEFAULT_MAX_SEEDS, 1),)


def _pct(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{100 * value:.1f}%"


def calibration_table(reps: int = 1000, seed: int = 0, sizes=(3, 5, 10), families=(2, 5),
                      sequential_reps: int = 20_000) -> tuple[pd.DataFrame, list[dict]]:
    """``(table, sequential rates)``: one row per (n, m) from ``family_rates``; one sequential row per
    ``SEQUENTIAL_DESIGNS``."""
    rows = [family_rates(n, m, reps, seed) for n in sizes for m in families]
    return pd.DataFrame(rows), [sequential_rates(sequential_reps, seed, cap, n_comparisons=m)
                                for cap, m in SEQUENTIAL_DESIGNS]


def calibration_markdown(reps: int = 1000, seed: int = 0, sequential_reps: int = 20_000) -> str:
    """The Markdown calibration table of docs/analysis.md."""
    table, seq = calibration_table(reps, seed, sequential_reps=sequential_reps)
    shown = pd.DataFrame({
        "seeds n": table["n"].astype(str), "variants m": table["m"].astype(str),
        "false 'significant' per comparison (raw p)": table["fpr_raw"].map(_pct),
        "family-wise false better/worse (Holm)": table["fwer"].map(_pct),
        "rank test false positives": table["rank_fpr"].map(lambda v: "omitted" if not math.isfinite(v) else _pct(v)),
        "false non-inferior per comparison at -margin (raw p)": table["noninf_raw"].map(_pct),
        "family-wise false non-inferior/equivalent/better at -margin (Holm)": table["fwer_margin"].map(_pct),
        "mean CI coverage (t)": table["mean_coverage"].map(_pct),
        "diff CI coverage, each": table["diff_coverage"].map(_pct),
        "diff CIs, all m covered": table["diff_simultaneous"].map(_pct),
    })
    sequential_rows = pd.DataFrame({
        "looks at seeds": [", ".join(map(str, r["schedule"])) for r in seq],
        "comparisons m (alpha 0.05/m each)": [str(r["m"]) for r in seq],
        "false better/worse per comparison, no difference": [_pct(r["fpr"]) for r in seq],
        "m x that (bounds the family-wise rate)": [_pct(r["family_bound"]) for r in seq],
        "false 'equivalent' at -0.5 (the margin)": [_pct(r["false_equivalent"]) for r in seq],
        "repeated-CI coverage at the stopping look": [_pct(r["coverage"]) for r in seq],
        "expected seeds, no difference": [f"{r['expected_seeds_null']:.1f}" for r in seq],
    })
    return "\n".join([
        f"Simulated paired grids ({reps} per row, paired-difference SD {DIFF_SD:g} points, seed SD {SEED_SD:g}, "
        f"alpha 0.05, margin 0.5, seed {seed}):", "", markdown_table(shown), "",
        f"Sequential rule (O'Brien-Fleming-type spending, paired t at nominal levels; {sequential_reps} simulated "
        f"comparisons a row, paired-difference SD {DIFF_SD:g}); the first rows are the study's CPU schedule with "
        "the second edition's family sizes:", "", markdown_table(sequential_rows), ""])
