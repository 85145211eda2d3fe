"""Small, pure statistics on numpy arrays (rliable style).

Conventions: ``x`` is the variant, ``y`` the reference; differences are ``x - y``. Samples are
arrays of shape ``(..., n)`` (the last axis holds the seeds) where a function says it vectorises,
otherwise 1-D ``(n,)``. Randomness comes only from an explicit ``numpy.random.Generator``.
The statistics themselves are scipy's and statsmodels'; this module chooses and wraps them.
"""
from __future__ import annotations

import contextlib
import gc
import inspect
import math
import warnings

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

CORRECTIONS = ("holm", "fdr_bh", "none")
SD_UPPER_CONFIDENCE = 0.8  # one-sided confidence of the SD upper bound used for planning seeds
_BOOTSTRAP_RNG_KEY = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def describe(x: np.ndarray) -> dict:
    """n, mean, std (ddof=1), median of a 1-D sample ``x`` of shape ``(n,)`` (NaNs dropped first)."""
    x = _finite(x)
    n = x.size
    return {"n": n, "mean": float(np.mean(x)) if n else math.nan,
            "std": float(np.std(x, ddof=1)) if n > 1 else math.nan,
            "median": float(np.median(x)) if n else math.nan}


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    return x[np.isfinite(x)]


def bootstrap_mean_ci(x: np.ndarray, rng: np.random.Generator, confidence: float = 0.95,
                      n_resamples: int = 9999) -> dict:
    """Bootstrap CI of the mean of ``x`` (shape ``(n,)``) with ``scipy.stats.bootstrap``.

    BCa when it applies; the percentile method when BCa is degenerate (n < 3, all values equal,
    or BCa returns NaN), and the returned ``method`` says which and why. n < 2 gives NaN bounds.
    Returns ``{"low", "high", "method"}``.
    """
    x = _finite(x)
    if x.size < 2:
        return {"low": math.nan, "high": math.nan, "method": "none (n<2)"}
    if np.all(x == x[0]):
        return {"low": float(x[0]), "high": float(x[0]), "method": "percentile (all values equal)"}
    attempts = [("BCa", "BCa")] if x.size >= 3 else []
    attempts.append(("percentile", "percentile (n<3)" if x.size < 3 else "percentile (BCa degenerate)"))
    for method, label in attempts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap((x,), np.mean, confidence_level=confidence, method=method,
                                  n_resamples=n_resamples, **{_BOOTSTRAP_RNG_KEY: rng})
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return {"low": low, "high": high, "method": label}
    return {"low": math.nan, "high": math.nan, "method": "none (bootstrap failed)"}


def t_mean_ci(x: np.ndarray, confidence: float = 0.95) -> dict:
    """t interval of the mean of ``x`` (shape ``(n,)``; NaNs dropped) from ``scipy.stats.ttest_1samp``.

    Exact under normal seed-to-seed variation at every n (the bootstrap is not: BCa covered 72% at n=3 and
    under 93% up to n=40 in docs/analysis.md's simulation). n < 2 gives NaN bounds; equal values a point.
    Returns ``{"low", "high", "method"}``.
    """
    x = _finite(x)
    if x.size < 2:
        return {"low": math.nan, "high": math.nan, "method": "none (n<2)"}
    if np.all(x == x[0]):
        return {"low": float(x[0]), "high": float(x[0]), "method": "t (all values equal)"}
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return {"low": float(ci.low), "high": float(ci.high), "method": "t"}


def t_test(x: np.ndarray, y: np.ndarray, paired: bool, confidence: float = 0.95) -> dict:
    """Welch's t-test (``paired=False``) or the paired t-test on ``x - y``; vectorises.

    ``x``, ``y``: shape ``(..., n_x)`` and ``(..., n_y)`` (equal when paired, matched by position).
    Returns arrays of shape ``(...)``: ``statistic, p, df, diff, ci_low, ci_high`` where ``diff``
    is the difference of means and the CI is the test's own t interval for it.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = stats.ttest_rel(x, y, axis=-1) if paired else stats.ttest_ind(x, y, equal_var=False, axis=-1)
        ci = res.confidence_interval(confidence)
        diff = np.mean(x - y, axis=-1) if paired else np.mean(x, axis=-1) - np.mean(y, axis=-1)
    return {"statistic": res.statistic, "p": res.pvalue, "df": res.df, "diff": diff,
            "ci_low": ci.low, "ci_high": ci.high,
            "test": "paired t-test" if paired else "Welch t-test"}


def rank_test(x: np.ndarray, y: np.ndarray, paired: bool) -> dict:
    """Mann-Whitney U (independent) or Wilcoxon signed-rank (paired), two-sided; 1-D inputs.

    Returns ``{"statistic", "p", "test"}``; p is NaN when scipy finds the test undefined. The smallest
    p it can reach is ``rank_test_min_p`` (0.0625 with 5 pairs): callers omit it where that is not below alpha.
    """
    x, y = _finite(x), _finite(y)
    name = "Wilcoxon signed-rank" if paired else "Mann-Whitney U"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.wilcoxon(x, y) if paired else stats.mannwhitneyu(x, y, alternative="two-sided")
        return {"statistic": float(res.statistic), "p": float(res.pvalue), "test": name}
    except ValueError:
        return {"statistic": math.nan, "p": math.nan, "test": name}


def rank_test_min_p(n_x: int, n_y: int, paired: bool) -> float:
    """Smallest two-sided p-value the exact rank test can give without ties.

    Wilcoxon signed-rank with ``n_x`` pairs: ``2 / 2**n``; Mann-Whitney U with ``n_x`` and ``n_y``
    runs: ``2 / C(n_x + n_y, n_x)`` (complete separation). 1.0 when fewer than one run.
    """
    if min(n_x, n_y) < 1:
        return 1.0
    return min(1.0, 2.0 / 2.0 ** n_x if paired else 2.0 / math.comb(n_x + n_y, n_x))


def hedges_g(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hedges' g of ``x - y``: Cohen's d with the pooled SD times ``1 - 3 / (4 (n_x + n_y) - 9)``.

    ``x``: ``(..., n_x)``, ``y``: ``(..., n_y)``; returns shape ``(...)``. NaN if the pooled SD is 0.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    nx, ny = x.shape[-1], y.shape[-1]
    pooled = np.sqrt(((nx - 1) * np.var(x, axis=-1, ddof=1) + (ny - 1) * np.var(y, axis=-1, ddof=1))
                     / (nx + ny - 2))
    with np.errstate(all="ignore"):
        d = (np.mean(x, axis=-1) - np.mean(y, axis=-1)) / pooled
    return np.where(pooled > 0, d * (1 - 3 / (4 * (nx + ny) - 9)), np.nan)


def cliffs_delta(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cliff's delta: P(x > y) - P(x < y) over all pairs. ``(..., n_x)``, ``(..., n_y)`` -> ``(...)``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return np.mean(np.sign(x[..., :, None] - y[..., None, :]), axis=(-2, -1))


def standardised_effect(x: np.ndarray, y: np.ndarray, paired: bool, diff: float | None = None) -> float:
    """Effect size used for power: Cohen's d (pooled SD) or, paired, d_z (SD of the differences).

    ``diff`` replaces the observed mean difference (to ask about a given difference). 1-D inputs.
    """
    x, y = _finite(x), _finite(y)
    if paired:
        sd = np.std(x - y, ddof=1) if x.size > 1 else math.nan
        observed = float(np.mean(x - y)) if x.size else math.nan
    else:
        if x.size < 2 or y.size < 2:
            return math.nan
        sd = math.sqrt(((x.size - 1) * np.var(x, ddof=1) + (y.size - 1) * np.var(y, ddof=1))
                       / (x.size + y.size - 2))
        observed = float(np.mean(x) - np.mean(y))
    delta = observed if diff is None else diff
    return delta / sd if sd > 0 else math.nan


def difference_sd(x: np.ndarray, y: np.ndarray, paired: bool) -> tuple[float, int]:
    """``(sd, df)`` behind the t-test of ``x - y``: SD of the paired differences (df n-1) or the pooled SD
    (df n_x + n_y - 2). 1-D inputs; NaN when undefined."""
    x, y = _finite(x), _finite(y)
    if paired:
        return (float(np.std(x - y, ddof=1)), x.size - 1) if x.size > 1 else (math.nan, 0)
    if x.size < 2 or y.size < 2:
        return math.nan, 0
    df = x.size + y.size - 2
    return math.sqrt(((x.size - 1) * np.var(x, ddof=1) + (y.size - 1) * np.var(y, ddof=1)) / df), df


def sd_upper_bound(sd: float, df: int, confidence: float = SD_UPPER_CONFIDENCE) -> float:
    """One-sided upper confidence bound of an SD estimated with ``df`` degrees of freedom (chi-square):
    ``sd * sqrt(df / chi2.ppf(1 - confidence, df))``. Planning with it rather than the estimate keeps
    the planned power with probability ``confidence`` (the estimate itself is too small half the time)."""
    if not (df >= 1 and math.isfinite(sd)):
        return math.nan
    return float(sd * math.sqrt(df / stats.chi2.ppf(1 - confidence, df)))


def t_test_power(effect_size: float, n: int, paired: bool, alpha: float = 0.05, alternative: str = "two-sided") -> float:
    """Power of the paired (d_z) or two-sample (equal groups of ``n``) t-test against ``effect_size``.

    The same formula as statsmodels' ``TTestPower`` / ``TTestIndPower`` (the two agree to 1e-9 where
    statsmodels is finite, ``tests/test_analysis.py``), evaluated with ``scipy.stats.nct``: statsmodels evaluates the
    noncentral t with ``scipy.special.nctdtr``, which returns NaN for a noncentrality above ~39
    (``TTestPower().power(6.25, 40, 0.0028, alternative="larger")``), and a NaN power then passes or fails
    every comparison. ``scipy.stats.nct.cdf`` too returns NaN for some far tails (``nct.cdf(-12.7, 1, 8.84)``);
    a two-sided test's far tail counts 0 then: it is below the near tail's miss, which is small there."""
    df, noncentrality = (n - 1, effect_size * math.sqrt(n)) if paired else (2 * n - 2, effect_size * math.sqrt(n / 2))
    level = alpha / 2 if alternative == "two-sided" else alpha
    power = float(stats.nct.sf(stats.t.isf(level, df), df, noncentrality))
    if alternative == "two-sided":
        far_tail = float(stats.nct.cdf(stats.t.ppf(level, df), df, noncentrality))
        power += far_tail if math.isfinite(far_tail) else 0.0
    return power


def seeds_for_power(effect_size: float, paired: bool, alpha: float = 0.05, power: float = 0.8,
                    alternative: str = "two-sided", max_seeds: int = 10_000) -> int | None:
    """Seeds per variant for a t-test to detect ``effect_size`` with ``power``: the smallest n in
    2..``max_seeds`` whose ``t_test_power`` reaches it, by bisection (power grows with n).
    ``alternative``: ``"two-sided"`` or ``"larger"`` (one-sided, for non-inferiority).
    Returns ``None`` when no feasible number (effect 0/NaN, or more than ``max_seeds``).
    """
    if not math.isfinite(effect_size) or abs(effect_size) < 1e-9:
        return None
    effect = abs(effect_size) if alternative == "two-sided" else effect_size
    if effect <= 0:
        return None

    def reaches(n: int) -> bool:
        return t_test_power(effect, n, paired, alpha, alternative) >= power

    if not reaches(max_seeds):
        return None
    low, high = 1, max_seeds  # reaches(high); n = 1 has no degrees of freedom
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    return high


def margin_tests(x: np.ndarray, y: np.ndarray, margin: float, paired: bool,
                 higher_is_better: bool = True) -> dict:
    """Non-inferiority and TOST equivalence of ``x`` against ``y`` with ``margin`` (metric units); vectorises.

    ``x``, ``y``: shape ``(..., n_x)`` and ``(..., n_y)`` (equal and matched by position when paired).
    The one-sided t-tests of the shifted difference (``scipy.stats.ttest_rel`` / Welch ``ttest_ind``,
    the two halves of TOST as in statsmodels' ``ttost_paired`` / ``ttost_ind(usevar="unequal")``).
    Non-inferiority is the one-sided test of H0: ``x - y <= -margin`` (``>= +margin`` when lower is
    better); equivalence rejects both halves (p = the larger one-sided p).
    Returns ``{"p_noninf", "p_equiv"}`` of shape ``(...)`` (NaN when undefined, e.g. zero variance).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if min(x.shape[-1], y.shape[-1]) < 2:
        nan = np.full(np.broadcast_shapes(x.shape[:-1], y.shape[:-1]), np.nan)
        return {"p_noninf": nan, "p_equiv": nan}

    def one_sided(shift, alternative):
        if paired:
            return stats.ttest_rel(x + shift, y, alternative=alternative, axis=-1).pvalue
        return stats.ttest_ind(x + shift, y, equal_var=False, alternative=alternative, axis=-1).pvalue

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        lower, upper = one_sided(margin, "greater"), one_sided(-margin, "less")
    p_noninf = lower if higher_is_better else upper
    return {"p_noninf": p_noninf, "p_equiv": np.maximum(lower, upper)}


def adjust_pvalues(p: np.ndarray, method: str = "holm") -> np.ndarray:
    """Multiplicity-adjusted p-values of one family, shape ``(m,)`` -> ``(m,)``.

    ``method``: ``"holm"``, ``"fdr_bh"`` (statsmodels ``multipletests``) or ``"none"``.
    NaN p-values stay NaN and are left out of the family.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction '{method}'; allowed: {', '.join(CORRECTIONS)}")
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    keep = np.isfinite(p)
    if keep.any():
        with _without_forced_gc():
            out[keep] = p[keep] if method == "none" else multipletests(p[keep], method=method)[1]
    return out


@contextlib.contextmanager
def _without_forced_gc():
    """statsmodels' Holm branch calls ``gc.collect()`` on every call (a memory-saving habit for huge
    arrays) which costs ~0.1 s per call in a large process; skip it for our tiny families. The
    p-values are unaffected; ``gc.collect`` is restored on exit."""
    collect = gc.collect
    gc.collect = lambda *args, **kwargs: 0
    try:
        yield
    finally:
        gc.collect = collect


def pareto_front(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of the points not dominated by another (lower-or-equal cost, higher-or-equal score,
    one strictly); sorted by cost. ``cost``, ``score``: shape ``(k,)``."""
    cost, score = np.asarray(cost, float), np.asarray(score, float)
    order = np.lexsort((-score, cost))
    front, best = [], -np.inf
    for i in order:
        if np.isfinite(cost[i]) and np.isfinite(score[i]) and score[i] > best:
            front.append(i)
            best = score[i]
    return np.asarray(front, dtype=int)
