"""Calibration of the report's verdicts and intervals on simulated grids (fixed seeds, vectorised).

``analysis.calibration.decide_family`` is checked against ``analyze`` grid by grid, then used on
thousands of simulated paired grids: null (no difference) and at the margin (true difference -0.5).
"""
import numpy as np
import pandas as pd
import pytest

from analysis import calibration
from analysis.compare import analyze

REPS = 2000


def _frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Grids ``g0, g1, ...`` from arrays ``x`` (B, m, n) and ``y`` (B, n), paired by seed."""
    rows = []
    for b in range(x.shape[0]):
        for j, values in enumerate([y[b], *x[b]]):
            rows += [{"grid": f"g{b}", "variant": "ref" if j == 0 else f"v{j}", "seed": s, "status": "ok",
                      "reference": "ref", "paired": True, "test_top1": float(v)} for s, v in enumerate(values)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("delta", [0.0, -0.5, 1.5])
def test_decide_family_is_what_analyze_decides(delta):
    x, y = calibration.simulate_grids(12, 3, 5, [delta, 0.0, -delta], np.random.default_rng(1))
    fast = calibration.decide_family(x, y)
    comps = analyze(_frame(x, y))["comparisons"]
    for b in range(12):
        rows = comps[comps["grid"] == f"g{b}"].sort_values("variant")
        assert list(rows["verdict"]) == list(fast["verdict"][b])
        np.testing.assert_allclose(rows["p_adj"], fast["p_adj"][b], rtol=1e-10)
        np.testing.assert_allclose(rows["ci_low"], fast["ci_low"][b], rtol=1e-10)
        np.testing.assert_allclose(rows["ci_high"], fast["ci_high"][b], rtol=1e-10)


@pytest.fixture(scope="module")
def rates():
    return {(n, m): calibration.family_rates(n, m, REPS, seed=11) for n in (3, 5, 10) for m in (2, 5)}


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("m", [2, 5])
def test_false_positives_and_coverage(rates, n, m):
    r = rates[(n, m)]
    assert 0.03 <= r["fpr_raw"] <= 0.07, r  # per comparison, no true difference
    assert r["fwer"] <= 0.06, r  # any false better/worse in the family after Holm
    assert 0.03 <= r["noninf_raw"] <= 0.07, r  # per comparison, true difference at -margin
    assert r["fwer_margin"] <= 0.06, r  # any false non-inferior/equivalent/better after Holm
    assert r["mean_coverage"] >= 0.93 and r["diff_coverage"] >= 0.93 and r["diff_simultaneous"] >= 0.93, r
    if n < 10:  # the signed-rank test cannot reach significance after the correction: not reported
        assert np.isnan(r["rank_fpr"])
    elif m == 2:
        assert r["rank_fpr"] <= 0.07, r


def test_the_calibration_fails_without_the_correction(rates):
    """The rates above can fail: uncorrected, 5 comparisons give far more than 6% family-wise."""
    x, y = calibration.simulate_grids(REPS, 5, 5, 0.0, np.random.default_rng(3))
    raw = calibration.decide_family(x, y, correction="none")
    assert np.mean(calibration._claims(raw["verdict"], calibration.NULL_CLAIMS).any(axis=1)) > 0.15


@pytest.mark.parametrize("max_seeds, m, schedule", [(40, 1, (3, 5, 8, 12, 18, 27, 40)), (12, 1, (3, 5, 8, 12)),
                                                      (12, 4, (3, 5, 8, 12))])
def test_sequential_rule_is_calibrated_on_the_default_and_the_studys_schedule(max_seeds, m, schedule):
    seq = calibration.sequential_rates(reps=4000, seed=2, max_seeds=max_seeds, n_comparisons=m)
    assert seq["schedule"] == schedule and seq["m"] == m
    assert seq["family_bound"] <= 0.06 and seq["false_equivalent"] <= 0.06 and seq["coverage"] >= 0.93, seq

