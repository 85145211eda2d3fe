"""Seeds added until the question is decided: a group-sequential rule for paired per-seed differences.

Training adds paired seeds in rounds (looks, ``plan_looks``); after each look ``sequential_decision``
says, per comparison, ``better`` / ``worse`` / ``equivalent`` (within ±margin) / ``continue`` /
``inconclusive at max seeds (N)``. Re-testing at p < 0.05 after every look inflates false positives
(29% when testing after every seed from 3 to 40), so the rule spends alpha over the looks:

- Boundaries: Lan-DeMets alpha spending with the O'Brien-Fleming-type function
  ``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))`` (``"pocock"``: ``alpha log(1 + (e - 1) t)``), information
  fraction ``t = n / max_seeds``. Each look's z boundary solves "probability of first crossing at this
  look = alpha spent at this look" under the canonical joint normal law of the z statistics
  (correlation sqrt(n_j / n_k)), computed by the recursive numerical integration of Armitage, McPherson
  & Rowe (1969) on the grid of Jennison & Turnbull (2000, chapter 19): the density of the not yet
  stopped z statistic is carried from look to look by convolution with the normal increment density
  over the continuation region (Simpson's rule on their grid, ``GRID_R`` points per sd); deterministic,
  and within a few 1e-6 in z of an 8 times finer grid, even for looks only 1% of the seeds apart.
- Small samples: each boundary is used as a *nominal p-value level* (``2 (1 - Phi(c_k))``) for the paired
  t-test at that look (scipy ``ttest_1samp``), not as a threshold for the t statistic itself; with 3-8
  pairs the t statistic's heavy tails make z thresholds anticonservative (docs/analysis.md shows both).
- Better/worse: the two-sided test of "no difference" at the look's nominal level; its repeated
  confidence interval (the t interval at that level) excludes 0 exactly then and covers the true
  difference at every look simultaneously with at least 1 - alpha.
- Equivalent: both one-sided TOST tests at the nominal level of a one-sided spending design of level
  alpha (the TOST convention), i.e. the repeated (1 - 2 x nominal) interval lies inside ±margin.

A family of m comparisons decided together passes ``n_comparisons=m`` (Bonferroni: alpha / m each).
Everything here is a pure function of its arguments; simulations take an explicit seed.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats
from scipy.integrate import simpson
from scipy.optimize import brentq

from .stats import seeds_for_power as fixed_seeds

OPEN = "continue"  # the label of a comparison that the rule leaves open for another look
DECIDED_LABELS = ("better", "worse", "equivalent")
AT_CAP = "inconclusive at max seeds"  # the label's start where the last look of the schedule ended it undecided
SPENDING = ("obf", "pocock", "none")
STATISTICS = ("t", "z")
DEFAULT_MARGIN = 0.5
DEFAULT_MAX_SEEDS = 40
GRID_R = 32  # Jennison & Turnbull's grid parameter r: 6r - 1 points, 3 / (2r) sd apart within 3 sd of the mean


def has_ended(label: str) -> bool:
    """Whether ``label`` ends a comparison: decided (``DECIDED_LABELS``) or inconclusive at the schedule's cap."""
    return label in DECIDED_LABELS or label.startswith(AT_CAP)


@dataclass(frozen=True)
class Decision:
    """What the rule says after a look.

    ``label``: ``better``/``worse``/``equivalent``/``continue``/``inconclusive at max seeds (N)``;
    ``look``: 1-based look index; ``n``: pairs used; ``boundary``: the look's nominal two-sided p level
    (better/worse when ``p`` is below it); ``z_boundary``: the underlying z boundary; ``estimate``: mean
    difference; ``ci``: the repeated confidence interval at level ``1 - boundary``; ``p``: the paired
    t-test's two-sided p-value.

    The equivalence test at the same look (docs/study.md, "A verdict that is significant and also inside the
    margin"), recorded whatever the label: ``tost_p``: the one-sided paired t-tests' p-values against
    ``-margin`` and ``+margin``; ``tost_level``: the look's one-sided nominal level (the level ``equivalent``
    uses); ``tost_ci``: the repeated interval at ``1 - 2 tost_level``; ``within_margin``: both ``tost_p`` below
    ``tost_level`` (the interval lies inside ``+-margin``), so a ``better``/``worse`` label with it is smaller
    than the effect of interest."""
    label: str
    look: int
    n: int
    boundary: float
    z_boundary: float
    estimate: float
    ci: tuple[float, float]
    p: float
    margin: float = DEFAULT_MARGIN
    tost_p: tuple[float, float] = (math.nan, math.nan)
    tost_level: float = math.nan
    tost_ci: tuple[float, float] = (math.nan, math.nan)
    within_margin: bool = False


@dataclass(frozen=True)
class SeedsPlan:
    """``seeds_for_power``'s answer: the look schedule reaching ``power`` for the planned effect, its
    maximum seeds, the expected seeds per variant when the effect is true and when there is no difference,
    and the simulated power (all by simulating the rule itself)."""
    schedule: tuple[int, ...]
    max_seeds: int
    expected_seeds: float
    expected_seeds_null: float
    power: float
    effect: float
    sd: float


def plan_looks(max_seeds: int = DEFAULT_MAX_SEEDS, first: int = 3, growth: float = 1.5) -> tuple[int, ...]:
    """Look schedule: ``first`` pairs, then about ``growth`` times more each look (at least 2 more), ending
    exactly at ``max_seeds``: ``plan_looks(40) == (3, 5, 8, 12, 18, 27, 40)``. A last step of fewer than
    2 seeds is merged into the final look."""
    if max_seeds < first or first < 3:
        raise ValueError(f"max_seeds ({max_seeds}) must be at least first ({first}), and first at least 3")
    looks = [first]
    while looks[-1] < max_seeds:
        looks.append(min(max_seeds, max(looks[-1] + 2, round(looks[-1] * growth))))
    if len(looks) > 2 and looks[-1] - looks[-2] < 2:
        looks.pop(-2)
    return tuple(looks)


def spent(t: np.ndarray, alpha: float, spending: str = "obf") -> np.ndarray:
    """Cumulative alpha spent at information fractions ``t`` (shape ``(k,)``, in (0, 1])."""
    t = np.asarray(t, float)
    if spending == "obf":
        return 2 * stats.norm.sf(stats.norm.isf(alpha / 2) / np.sqrt(t))  # sf, not 1 - cdf: no rounding to 0 early
    if spending == "pocock":
        return alpha * np.log(1 + (math.e - 1) * t)
    raise ValueError(f"unknown spending '{spending}'; allowed: obf, pocock")


def _grid(a: float, b: float, r: int = GRID_R) -> np.ndarray:
    """Jennison & Turnbull's (2000, chapter 19) integration points for a standard normal z restricted to
    ``[a, b]``: spacing 3 / (2r) within 3 sd of 0, widening logarithmically out to 3 + 4 log r sd, the ends
    ``a`` and ``b`` added, and every interval's midpoint inserted, so that Simpson's rule applies to each
    interval (odd count)."""
    i = np.arange(1, r)
    x = np.concatenate([-3 - 4 * np.log(r / i), -3 + 3 * np.arange(4 * r + 1) / (2 * r), 3 + 4 * np.log(r / i[::-1])])
    x = np.concatenate([[a] if a > x[0] else [], x[(x > a) & (x < b)], [b] if b < x[-1] else []])
    z = np.empty(2 * len(x) - 1)
    z[0::2], z[1::2] = x, (x[1:] + x[:-1]) / 2
    return z


def _crossing(z: np.ndarray, density: np.ndarray, c: float, n_prev: float, n: float, sides: int) -> float:
    """P(not stopped before this look, ``|Z| >= c`` (``Z >= c`` one-sided) at it), from the sub-density
    ``density`` of the previous look's z statistic at grid points ``z``. The score ``Z sqrt(n)`` gains an
    independent N(0, n - n_prev) increment between looks."""
    step = math.sqrt(n - n_prev)
    p = stats.norm.sf((c * math.sqrt(n) - z * math.sqrt(n_prev)) / step)
    if sides == 2:
        p = p + stats.norm.cdf((-c * math.sqrt(n) - z * math.sqrt(n_prev)) / step)
    return float(simpson(density * p, x=z))


def _carry(z: np.ndarray, density: np.ndarray, c: float, n_prev: float, n: float,
           sides: int) -> tuple[np.ndarray, np.ndarray]:
    """The sub-density of this look's z statistic on its continuation region ``(-c, c)`` (``(-inf, c)``
    one-sided), as grid points and values: the previous one convolved with the increment density."""
    z_new = _grid(-c if sides == 2 else -math.inf, c)
    step = math.sqrt(n - n_prev)
    kernel = stats.norm.pdf((z_new[:, None] * math.sqrt(n) - z[None, :] * math.sqrt(n_prev)) / step) * math.sqrt(n) / step
    return z_new, simpson(kernel * density[None, :], x=z, axis=1)


@lru_cache(maxsize=256)
def z_boundaries(schedule: tuple[int, ...], alpha: float = 0.05, spending: str = "obf",
                 sides: int = 2) -> tuple[float, ...]:
    """z boundaries of a spending design for looks at ``schedule`` pairs (last = maximum).

    ``sides=2``: symmetric two-sided boundaries of total level ``alpha``; ``sides=1``: one-sided of level
    ``alpha``. ``spending="none"``: the fixed-level boundary at every look (the naive design, for
    comparison only). Shape ``(k,)``."""
    if spending == "none":
        return tuple([float(stats.norm.isf(alpha / sides))] * len(schedule))
    n = np.asarray(schedule, float)
    cumulative = spent(n / n[-1], alpha, spending)
    increments = np.diff(np.concatenate([[0.0], cumulative]))
    bounds: list[float] = []
    z = density = None
    for k, target in enumerate(increments):
        marginal = float(stats.norm.isf(target / sides))  # ignores the earlier looks: conservative
        if k == 0 or target < 1e-7:  # spends this small (early O'Brien-Fleming looks): earlier looks' share negligible
            c = marginal
        else:
            def excess(c, z=z, density=density, k=k, target=target):
                return _crossing(z, density, c, n[k - 1], n[k], sides) / target - 1

            low = max(0.5, marginal - 2.0)
            c = marginal if excess(low) <= 0 or excess(marginal) >= 0 else float(brentq(excess, low, marginal, xtol=1e-10))
        bounds.append(c)
        if k == 0:  # the first look's z is standard normal
            z = _grid(-c if sides == 2 else -math.inf, c)
            density = stats.norm.pdf(z)
        elif k < len(increments) - 1:
            z, density = _carry(z, density, c, n[k - 1], n[k], sides)
    return tuple(bounds)


def stagewise_p(p_look: float, look: int, schedule: tuple[int, ...], alpha: float = 0.05, spending: str = "obf",
                n_comparisons: int = 1) -> float:
    """The stage-wise ordered two-sided p-value of a comparison the rule stopped ``better``/``worse`` at ``look``
    (1-based) of ``schedule`` with the paired t-test's p-value ``p_look`` (Jennison & Turnbull 2000, section 8.4):
    under no difference, the chance of stopping for a difference at an earlier look, plus that of reaching this
    look with a z statistic at least as extreme. ``p_look`` enters as ``z = Phi^-1(1 - p_look / 2)``, as the rule
    uses its boundaries as nominal p levels; the earlier looks' boundaries are those of the design (alpha /
    ``n_comparisons`` each). Unlike ``p_look`` (compared with the look's nominal level), it is compared with the
    design's alpha itself, so a Holm reading across questions can use it. Only meaningful for a comparison that
    stopped at ``look`` (``p_look`` at or below that look's nominal level)."""
    schedule = tuple(int(s) for s in schedule)
    if not 1 <= look <= len(schedule):
        raise ValueError(f"look must be between 1 and {len(schedule)}, got {look}")
    if look == 1:
        return float(p_look)
    n = np.asarray(schedule, float)
    c = z_boundaries(schedule, alpha / n_comparisons, spending, 2)
    z = _grid(-c[0], c[0])
    density = stats.norm.pdf(z)
    total = 2 * stats.norm.sf(c[0])
    for k in range(1, look - 1):
        total += _crossing(z, density, c[k], n[k - 1], n[k], 2)
        z, density = _carry(z, density, c[k], n[k - 1], n[k], 2)
    total += _crossing(z, density, float(stats.norm.isf(p_look / 2)), n[look - 2], n[look - 1], 2)
    return float(min(1.0, total))


def nominal_levels(schedule: tuple[int, ...], alpha: float = 0.05, spending: str = "obf",
                   n_comparisons: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z, p_two_sided, p_one_sided_tost)`` per look: the two-sided z boundaries, their nominal two-sided
    p levels, and the one-sided nominal levels of each TOST half (one-sided design of level alpha)."""
    a = alpha / n_comparisons
    z = np.asarray(z_boundaries(tuple(int(s) for s in schedule), a, spending, 2))
    z_one = np.asarray(z_boundaries(tuple(int(s) for s in schedule), a, spending, 1))
    return z, 2 * stats.norm.sf(z), stats.norm.sf(z_one)


def _decide(d: np.ndarray, p_two: float, p_one: float, z: float, margin: float, statistic: str) -> dict:
    """Vectorised decision at one look: ``d`` of shape ``(..., n)`` -> arrays of shape ``(...)``."""
    n = d.shape[-1]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        test = stats.ttest_1samp(d, 0.0, axis=-1)
        lower = stats.ttest_1samp(d, -margin, axis=-1, alternative="greater").pvalue
        upper = stats.ttest_1samp(d, margin, axis=-1, alternative="less").pvalue
        if statistic == "t":
            significant = test.pvalue < p_two
            equivalent = (lower < p_one) & (upper < p_one)
        else:  # z boundaries applied to the t statistics (anticonservative at small n; for comparison)
            z_one = stats.norm.isf(p_one)
            significant = np.abs(test.statistic) >= z
            se = np.std(d, axis=-1, ddof=1) / math.sqrt(n)
            mean = np.mean(d, axis=-1)
            equivalent = ((mean + margin) / se >= z_one) & ((margin - mean) / se >= z_one)
    return {"significant": np.asarray(significant), "equivalent": np.asarray(equivalent & ~significant),
            "within_margin": np.asarray(equivalent), "tost_p": (np.asarray(lower), np.asarray(upper)),
            "p": np.asarray(test.pvalue), "mean": np.asarray(np.mean(d, axis=-1)), "test": test}


def sequential_decision(diffs: np.ndarray, looks_done: int, schedule: tuple[int, ...] | None = None,
                        margin: float = DEFAULT_MARGIN, alpha: float = 0.05, *, higher_is_better: bool = True,
                        spending: str = "obf", n_comparisons: int = 1, statistic: str = "t") -> Decision:
    """The rule's decision after look ``looks_done`` (1-based) of ``schedule`` (default ``plan_looks()``).

    ``diffs``: per-seed paired differences variant - reference, shape ``(n,)`` in seed order; the first
    ``schedule[looks_done - 1]`` are used. ``higher_is_better`` orients better/worse. ``n_comparisons``:
    comparisons decided together (alpha / m each). ``statistic="z"`` applies the z boundaries to the t
    statistic (shown anticonservative; for simulations only).
    """
    schedule = plan_looks() if schedule is None else tuple(int(s) for s in schedule)
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic '{statistic}'; allowed: {', '.join(STATISTICS)}")
    if not 1 <= looks_done <= len(schedule):
        raise ValueError(f"looks_done must be between 1 and {len(schedule)}, got {looks_done}")
    n = schedule[looks_done - 1]
    d = np.asarray(diffs, float).ravel()
    if d.size < n or not np.all(np.isfinite(d[:n])):
        raise ValueError(f"look {looks_done} needs {n} finite paired differences, got {d.size}")
    d = d[:n]
    z, p_two, p_one = nominal_levels(schedule, alpha, spending, n_comparisons)
    k = looks_done - 1
    out = _decide(d, float(p_two[k]), float(p_one[k]), float(z[k]), margin, statistic)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ci = out["test"].confidence_interval(1 - float(p_two[k]))
        tost_ci = out["test"].confidence_interval(1 - 2 * float(p_one[k]))
    mean = float(out["mean"])
    if bool(out["significant"]):
        label = "better" if (mean > 0) == higher_is_better else "worse"
    elif bool(out["equivalent"]):
        label = "equivalent"
    elif looks_done == len(schedule):
        label = f"{AT_CAP} ({n})"
    else:
        label = OPEN
    return Decision(label, looks_done, n, float(p_two[k]), float(z[k]), mean, (float(ci.low), float(ci.high)),
                    float(out["p"]), margin, tuple(float(p) for p in out["tost_p"]), float(p_one[k]),
                    (float(tost_ci.low), float(tost_ci.high)), bool(out["within_margin"]))


def simulate(schedule: tuple[int, ...], effect: float, sd: float, reps: int = 4000, seed: int = 0,
             margin: float = DEFAULT_MARGIN, alpha: float = 0.05, spending: str = "obf", n_comparisons: int = 1,
             statistic: str = "t", reached: int = 0) -> dict:
    """Run the whole rule on ``reps`` simulated comparisons with normal paired differences of mean ``effect``
    and SD ``sd`` (vectorised, deterministic for a ``seed``).

    Returns rates of each outcome (``better``, ``worse``, ``equivalent``, ``inconclusive``), ``power`` (=
    ``better`` for a positive effect), ``expected_seeds`` (mean pairs at the stopping look),
    ``stop_early`` (share stopped before the last look) and ``coverage`` (share whose repeated CI at the
    stopping look contains ``effect``). ``reached`` > 0: all of these given that the rule went on past its first
    ``reached`` looks (over the comparisons still open at look ``reached`` + 1, a share ``reached_share`` of all;
    NaN where none is), e.g. a question part-way whose looks so far said continue."""
    schedule = tuple(int(s) for s in schedule)
    rng = np.random.default_rng(seed)
    d = rng.normal(effect, sd, (reps, schedule[-1]))
    z, p_two, p_one = nominal_levels(schedule, alpha, spending, n_comparisons)
    open_ = np.ones(reps, bool)
    outcome = np.full(reps, "inconclusive", dtype=object)
    stop_n = np.full(reps, schedule[-1])
    covered = np.zeros(reps, bool)
    if not 0 <= reached < len(schedule):
        raise ValueError(f"reached {reached}: the rule can have gone on past 0 to {len(schedule) - 1} of its "
                         f"{len(schedule)} looks")
    for k, n in enumerate(schedule):
        out = _decide(d[:, :n], float(p_two[k]), float(p_one[k]), float(z[k]), margin, statistic)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            ci = out["test"].confidence_interval(1 - float(p_two[k]))
        inside = (ci.low <= effect) & (effect <= ci.high)
        stop = open_ & (out["significant"] | out["equivalent"])
        outcome[stop & out["significant"] & (out["mean"] > 0)] = "better"
        outcome[stop & out["significant"] & (out["mean"] <= 0)] = "worse"
        outcome[stop & out["equivalent"]] = "equivalent"
        last = k == len(schedule) - 1
        ended = stop | (open_ & last)
        stop_n[ended] = n
        covered[ended] = inside[ended]
        open_ &= ~stop
    went_on = stop_n >= schedule[reached]  # still open at look ``reached`` + 1: none stopped before it
    mean = (lambda values: float(values[went_on].mean())) if went_on.any() else (lambda values: math.nan)
    rates = {label: mean(outcome == label) for label in ("better", "worse", "equivalent", "inconclusive")}
    return {**rates, "power": rates["better"], "expected_seeds": mean(stop_n),
            "stop_early": mean(stop_n < schedule[-1]), "coverage": mean(covered), "reached_share": float(went_on.mean())}


def seeds_for_power(sd: float, effect: float = 0.5, power: float = 0.8, alpha: float = 0.05, *,
                    margin: float = DEFAULT_MARGIN, spending: str = "obf", n_comparisons: int = 1,
                    first: int = 3, growth: float = 1.5, reps: int = 4000, seed: int = 0,
                    max_cap: int = 2000) -> SeedsPlan | None:
    """The smallest look schedule ``plan_looks(N, first, growth)`` whose rule detects a true ``effect`` with
    at least ``power`` when paired differences have SD ``sd`` (pass an upper confidence bound of the
    observed SD, e.g. ``evidence.stats.sd_upper_bound``), found by simulating the rule itself.

    Returns a ``SeedsPlan`` (maximum and expected seeds per variant under the effect and under no
    difference) or ``None`` when more than ``max_cap`` seeds would be needed.
    """
    if not (sd > 0 and effect > 0 and math.isfinite(sd)):
        raise ValueError(f"sd ({sd}) and effect ({effect}) must be positive and finite")
    fixed = fixed_seeds(effect / sd, paired=True, alpha=alpha / n_comparisons, power=power, max_seeds=max_cap)
    if fixed is None:
        return None

    def run(n_max: int) -> dict:
        return simulate(plan_looks(max(n_max, first), first, growth), effect, sd, reps, seed, margin, alpha,
                        spending, n_comparisons)

    low, high = max(first, fixed) - 1, max(first, fixed)
    while run(high)["power"] < power:  # the group-sequential maximum exceeds the fixed design's n
        low, high = high, math.ceil(high * 1.15) + 1
        if high > max_cap:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if run(middle)["power"] >= power else (middle, high)
    schedule = plan_looks(max(high, first), first, growth)
    true = run(high)
    null = simulate(schedule, 0.0, sd, reps, seed + 1, margin, alpha, spending, n_comparisons)
    return SeedsPlan(schedule, schedule[-1], true["expected_seeds"], null["expected_seeds"], true["power"],
                     effect, sd)


def decidable_effect(sd: float, max_seeds: int, power: float = 0.8, alpha: float = 0.05, *,
                     margin: float = DEFAULT_MARGIN, spending: str = "obf", n_comparisons: int = 1, first: int = 3,
                     growth: float = 1.5, reps: int = 4000, seed: int = 0, tolerance: float = 0.01) -> float:
    """The smallest true effect that the rule with looks ``plan_looks(max_seeds, first, growth)`` decides
    (``better``) with at least ``power`` when paired differences have SD ``sd``: ``seeds_for_power``
    turned around, for a seed cap fixed by cost. Found by bisection on the simulated power (the same
    draws for every effect), to within ``tolerance`` x ``sd``."""
    if not (sd > 0 and math.isfinite(sd)):
        raise ValueError(f"sd ({sd}) must be positive and finite")
    schedule = plan_looks(max_seeds, first, growth)

    def decides(effect: float) -> bool:
        return simulate(schedule, effect, sd, reps, seed, margin, alpha, spending, n_comparisons)["power"] >= power

    low, high = 0.0, sd
    while not decides(high):
        low, high = high, 2 * high
    while high - low > tolerance * sd:
        middle = (low + high) / 2
        low, high = (low, middle) if decides(middle) else (middle, high)
    return high
