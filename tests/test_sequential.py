"""The group-sequential rule of evidence/sequential.py: boundaries, decisions, calibration, planning."""
import math

import numpy as np
import pytest
from scipy import stats as st

from evidence import sequential as sq

SCHEDULE = sq.plan_looks(40)


def test_look_schedule():
    assert SCHEDULE == (3, 5, 8, 12, 18, 27, 40)
    assert sq.plan_looks(10) == (3, 5, 8, 10) and sq.plan_looks(3) == (3,) and sq.plan_looks(9) == (3, 5, 9)
    with pytest.raises(ValueError):
        sq.plan_looks(2)


def test_boundaries_spend_alpha_as_planned():
    z = np.asarray(sq.z_boundaries(SCHEDULE))
    assert np.all(np.diff(z) < 0) and 1.96 < z[-1] < 2.1  # O'Brien-Fleming: steep early, near 1.96 at the end
    assert z[0] == pytest.approx(st.norm.isf(sq.spent([3 / 40], 0.05)[0] / 2))
    # by simulation of the canonical z process: the total crossing probability is alpha
    rng = np.random.default_rng(0)
    increments = rng.normal(0, 1, (200_000, len(SCHEDULE))) * np.sqrt(np.diff((0,) + SCHEDULE))
    zs = np.cumsum(increments, axis=1) / np.sqrt(SCHEDULE)
    assert np.mean((np.abs(zs) >= z).any(axis=1)) == pytest.approx(0.05, abs=0.003)
    assert sq.spent([1.0], 0.05, "pocock")[0] == pytest.approx(0.05)


def test_boundaries_match_published_lan_demets_values():
    # O'Brien-Fleming-type spending 2 - 2 Phi(z_{1-a/2} / sqrt(t)), 5 and 3 equally spaced looks, one-sided a = 0.025:
    # gsDesign (sfLDOF) / ldbounds print these as the "two-sided 0.05" design, whose sides each spend this one-sided
    # function (crossing one side and later the other is negligibly likely, so the boundaries agree to 1e-3)
    assert sq.z_boundaries((1, 2, 3, 4, 5), 0.025, "obf", 1) == pytest.approx((4.877, 3.357, 2.680, 2.290, 2.031), abs=1e-3)
    assert sq.z_boundaries((1, 2, 3), 0.025, "obf", 1) == pytest.approx((3.710, 2.511, 1.993), abs=1e-3)
    # this module's two-sided design spends 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)) in total (Lan & DeMets 1983), so its
    # first boundary is z_{1-alpha/2} / sqrt(t_1) exactly; Pocock-type spending is linear in alpha, so both
    # conventions coincide there (values checked against scipy's multivariate normal integration)
    assert sq.z_boundaries((1, 2, 3, 4, 5))[0] == pytest.approx(st.norm.isf(0.025) / math.sqrt(0.2), abs=1e-9)
    assert sq.z_boundaries((1, 2, 3, 4, 5), 0.05, "pocock") == pytest.approx((2.438, 2.427, 2.410, 2.397, 2.386), abs=1e-3)


@pytest.mark.parametrize("schedule, alpha, spending, sides", [
    ((3, 5, 8, 12, 18, 27, 40), 0.05, "obf", 1), ((3, 5, 8, 12, 18, 27, 40), 0.025, "pocock", 2),
    (sq.plan_looks(237), 0.05, "pocock", 2), ((100, 101, 102, 103), 0.05, "obf", 2)])
def test_null_crossing_probability_over_all_looks_is_alpha(schedule, alpha, spending, sides):
    z = np.asarray(sq.z_boundaries(schedule, alpha, spending, sides))
    rng = np.random.default_rng(7)
    n = np.asarray(schedule, float)
    scores = np.cumsum(rng.normal(0, 1, (400_000, len(n))) * np.sqrt(np.diff(np.concatenate([[0.0], n]))), axis=1)
    crossed = (((np.abs(scores) if sides == 2 else scores) / np.sqrt(n)) >= z).any(axis=1).mean()
    assert crossed == pytest.approx(alpha, abs=4 * math.sqrt(alpha * (1 - alpha) / 400_000))


@pytest.mark.parametrize("spending", ["obf", "pocock"])
@pytest.mark.parametrize("sides", [1, 2])
def test_two_look_crossing_probability_is_alpha_by_quadrature(spending, sides):
    from scipy.integrate import quad

    c1, c2 = sq.z_boundaries((3, 5), 0.05, spending, sides)

    def second(z):  # density of Z_1 times P(cross at look 2 | Z_1 = z)
        shift = z * math.sqrt(3)
        p = st.norm.sf((c2 * math.sqrt(5) - shift) / math.sqrt(2))
        return st.norm.pdf(z) * (p + (st.norm.cdf((-c2 * math.sqrt(5) - shift) / math.sqrt(2)) if sides == 2 else 0))

    total = sides * st.norm.sf(c1) + quad(second, -c1 if sides == 2 else -np.inf, c1, epsabs=1e-13, epsrel=1e-11)[0]
    assert total == pytest.approx(0.05, abs=1e-8)


def test_decision_labels_and_repeated_interval():
    rng = np.random.default_rng(4)
    strong = rng.normal(3.0, 1.0, 40)
    first = sq.sequential_decision(strong, 1, SCHEDULE)
    assert first.label == "continue" and first.n == 3  # nominal level ~1e-12 at 3 seeds
    decided = next(sq.sequential_decision(strong, k, SCHEDULE) for k in range(1, 8)
                   if sq.sequential_decision(strong, k, SCHEDULE).label != "continue")
    assert decided.label == "better" and decided.p < decided.boundary and decided.ci[0] > 0
    assert sq.sequential_decision(-strong, decided.look, SCHEDULE).label == "worse"
    assert sq.sequential_decision(strong, decided.look, SCHEDULE, higher_is_better=False).label == "worse"
    flat = rng.normal(0.0, 0.3, 40)
    assert sq.sequential_decision(flat, 7, SCHEDULE).label == "equivalent"
    noisy = rng.normal(0.0, 5.0, 40)
    last = sq.sequential_decision(noisy, 7, SCHEDULE)
    assert last.label == "inconclusive at max seeds (40)" and last.ci[0] < 0 < last.ci[1]
    # the repeated CI is the t interval at the look's nominal level
    ci = st.ttest_1samp(noisy, 0).confidence_interval(1 - last.boundary)
    assert last.ci == pytest.approx((ci.low, ci.high))
    with pytest.raises(ValueError, match="needs 8"):
        sq.sequential_decision(strong[:6], 3, SCHEDULE)


def test_null_false_positives_over_all_looks_and_early_stopping():
    null = sq.simulate(SCHEDULE, 0.0, 1.4, reps=20_000, seed=1)
    assert null["better"] + null["worse"] <= 0.06
    naive = sq.simulate(SCHEDULE, 0.0, 1.4, reps=20_000, seed=1, spending="none")
    assert naive["better"] + naive["worse"] > 0.15  # testing at 0.05 after every look: the inflation avoided
    effect = sq.simulate(SCHEDULE, 2.0, 1.4, reps=4000, seed=2)
    assert effect["power"] > 0.99 and effect["expected_seeds"] < 20 and effect["stop_early"] > 0.95
    assert effect["coverage"] >= 0.93


def test_simulate_given_that_the_rule_went_on_past_a_look_splits_the_whole_rule_at_that_look():
    """Conditioning on the comparisons still open (a question part-way): every other comparison stopped at look 1,
    and only the open ones reach the last look, so the unconditional figures split exactly, draw for draw."""
    schedule, effect, sd = (3, 5, 8, 12), 0.5, 0.35
    whole, one, two = (sq.simulate(schedule, effect, sd, reps=4000, seed=5, reached=k) for k in (0, 1, 2))
    s1, s2 = one["reached_share"], two["reached_share"]
    assert whole["reached_share"] == 1.0 and s1 > s2 and 0.2 < s2 < 0.95  # (look 1, at 3 seeds, rarely stops)
    assert whole["expected_seeds"] == pytest.approx((1 - s1) * schedule[0] + s1 * one["expected_seeds"])
    assert s1 * one["expected_seeds"] == pytest.approx((s1 - s2) * schedule[1] + s2 * two["expected_seeds"])
    assert whole["inconclusive"] == pytest.approx(s2 * two["inconclusive"])
    assert two["expected_seeds"] > schedule[2] - 1e-9 and two["power"] < whole["power"]
    last = sq.simulate(schedule, effect, sd, reps=4000, seed=5, reached=3)
    assert last["expected_seeds"] == 12 and last["stop_early"] == 0.0  # only the last look is left
    with pytest.raises(ValueError, match="reached 4"):
        sq.simulate(schedule, effect, sd, reps=100, reached=4)


def test_t_statistic_needs_nominal_p_levels_not_z_boundaries():
    z_rule = sq.simulate(SCHEDULE, 0.0, 1.4, reps=20_000, seed=1, statistic="z")
    t_rule = sq.simulate(SCHEDULE, 0.0, 1.4, reps=20_000, seed=1)
    assert z_rule["better"] + z_rule["worse"] > 0.07 > t_rule["better"] + t_rule["worse"]


def test_seeds_for_power_reaches_the_power_it_plans():
    plan = sq.seeds_for_power(1.4, effect=2.0, reps=4000)
    assert plan.max_seeds == plan.schedule[-1] and plan.power >= 0.8
    assert plan.expected_seeds <= plan.max_seeds
    smaller = sq.simulate(sq.plan_looks(plan.max_seeds - 1), 2.0, 1.4, reps=4000, seed=0)
    assert smaller["power"] < 0.8 or plan.max_seeds - 1 < 3
    assert math.isclose(sq.seeds_for_power(1.4, 2.0, reps=4000).expected_seeds, plan.expected_seeds)


def test_decidable_effect_is_the_smallest_effect_the_capped_rule_decides_with_the_power():
    sd, cap = 2.0, 12
    effect = sq.decidable_effect(sd, cap, power=0.8, n_comparisons=2, reps=1000)
    power = lambda e: sq.simulate(sq.plan_looks(cap), e, sd, reps=1000, n_comparisons=2)["power"]  # noqa: E731
    assert power(effect) >= 0.8 > power(effect - 0.05 * sd)
    assert sq.decidable_effect(sd, 20, n_comparisons=2, reps=1000) < effect  # more seeds decide smaller effects
    plan = sq.seeds_for_power(sd, effect, 0.8, n_comparisons=2, reps=1000)
    assert plan is not None and plan.max_seeds <= cap  # turned around, the plan fits under the cap


# question (a)'s per-seed differences (REPORT.md, Decisions, look by look), rounded to 2 decimals
DIFFS_A = np.array([0.12, -0.27, -0.02, -0.69, 0.13, -0.50, -0.44, -0.16, -0.22, -0.60, -0.67, -0.67])


def test_a_significant_difference_inside_the_margin_keeps_its_label_and_records_the_equivalence_test():
    """docs/study.md, "A verdict that is significant and also inside the margin": (a) is worse at look 4 and both
    TOST halves pass at the look's one-sided level; the label stays what the rule says."""
    schedule = (3, 5, 8, 12)
    d = sq.sequential_decision(DIFFS_A, 4, schedule, margin=0.5)
    assert d.label == "worse" and d.within_margin and d.margin == 0.5
    lower = st.ttest_1samp(DIFFS_A, -0.5, alternative="greater").pvalue
    upper = st.ttest_1samp(DIFFS_A, 0.5, alternative="less").pvalue
    assert d.tost_p == pytest.approx((lower, upper)) and max(d.tost_p) < d.tost_level
    assert d.tost_p[0] == pytest.approx(0.0422, abs=1e-4) and d.tost_level == pytest.approx(0.0449, abs=1e-4)
    # the repeated interval at 1 - 2 x the one-sided level, by hand: mean +- t quantile x standard error
    half = st.t.ppf(1 - d.tost_level, len(DIFFS_A) - 1) * DIFFS_A.std(ddof=1) / np.sqrt(len(DIFFS_A))
    assert d.tost_ci == pytest.approx((DIFFS_A.mean() - half, DIFFS_A.mean() + half))
    assert -0.5 < d.tost_ci[0] < d.tost_ci[1] < 0.5 and d.ci[0] < -0.5  # the decision's own interval reaches past
    # a larger difference is worse and not inside the margin; no difference at all is equivalent, and inside
    assert not sq.sequential_decision(DIFFS_A - 1.0, 4, schedule).within_margin
    flat = sq.sequential_decision(DIFFS_A - DIFFS_A.mean(), 4, schedule)
    assert flat.label == "equivalent" and flat.within_margin


def test_the_stage_wise_p_value_is_the_alpha_spent_on_the_boundary_and_the_looks_p_at_look_one():
    schedule = (3, 5, 8, 12)
    _, p_two, _ = sq.nominal_levels(schedule)
    for look, n in enumerate(schedule, 1):  # a statistic on the look's boundary: everything spent so far
        assert sq.stagewise_p(p_two[look - 1], look, schedule) == pytest.approx(
            sq.spent(np.array([n / 12]), 0.05)[0], rel=1e-6)
    assert sq.stagewise_p(0.003, 1, schedule) == 0.003  # no earlier look: the fixed-sample p itself
    # more extreme at the same look: smaller, yet never below what the earlier looks spent
    spent_before = sq.spent(np.array([8 / 12]), 0.05)[0]
    assert spent_before < sq.stagewise_p(0.001, 4, schedule) < sq.stagewise_p(0.003, 4, schedule) < 0.05
    # a family of m comparisons: the earlier looks' boundaries are those of alpha / m
    assert sq.stagewise_p(p_two[3], 4, schedule, n_comparisons=2) < sq.stagewise_p(p_two[3], 4, schedule)
    with pytest.raises(ValueError, match="look must be between 1 and 4"):
        sq.stagewise_p(0.01, 5, schedule)
