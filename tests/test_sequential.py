"""The group-sequential rule of analysis/sequential.py: boundaries, decisions, calibration, planning."""
import math

import numpy as np
import pytest
from scipy import stats as st

from analysis import sequential as sq

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
