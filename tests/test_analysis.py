"""Statistics, calibration, grid analysis and table formats of ``analysis`` (tidy DataFrames only).

Every statistic is checked against an independent computation: a textbook formula evaluated
here, a worked example done by hand, or a different scipy call than the one the code uses.
"""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from analysis import stats
from analysis.compare import analyze, compare, compare_samples, higher_is_better
from analysis.tables import COMPARISON_KEYS, SUMMARY_KEYS, render, to_dict

X = np.array([71.2, 70.8, 71.9, 70.5, 71.4])
Y = np.array([70.1, 70.6, 70.9, 69.8, 70.4])


# ----------------------------------------------------------------------------- per-variant summary
def test_describe_matches_numpy():
    d = stats.describe([1.0, 2.0, 4.0, np.nan])
    assert d == {"n": 3, "mean": pytest.approx(7 / 3), "std": pytest.approx(np.std([1, 2, 4], ddof=1)),
                 "median": 2.0}


def test_bootstrap_is_bca_and_reproducible():
    a = stats.bootstrap_mean_ci(X, np.random.default_rng(7))
    b = stats.bootstrap_mean_ci(X, np.random.default_rng(7))
    c = stats.bootstrap_mean_ci(X, np.random.default_rng(8))
    assert a == b and a["method"] == "BCa"
    assert (a["low"], a["high"]) != (c["low"], c["high"])
    ref = st.bootstrap((X,), np.mean, method="BCa", confidence_level=0.95, rng=np.random.default_rng(7))
    assert a["low"] == pytest.approx(ref.confidence_interval.low)
    assert a["high"] == pytest.approx(ref.confidence_interval.high)
    assert X.min() <= a["low"] < X.mean() < a["high"] <= X.max()


def test_bootstrap_degenerate_cases_fall_back_and_say_so():
    equal = stats.bootstrap_mean_ci([3.0, 3.0, 3.0, 3.0], np.random.default_rng(0))
    assert equal == {"low": 3.0, "high": 3.0, "method": "percentile (all values equal)"}
    two = stats.bootstrap_mean_ci([1.0, 2.0], np.random.default_rng(0))
    assert two["method"] == "percentile (n<3)" and 1.0 <= two["low"] <= two["high"] <= 2.0
    one = stats.bootstrap_mean_ci([1.0], np.random.default_rng(0))
    assert math.isnan(one["low"]) and one["method"].startswith("none")


# ------------------------------------------------------------------------------------ pairwise tests
def test_welch_against_textbook_formula():
    se = math.sqrt(X.var(ddof=1) / 5 + Y.var(ddof=1) / 5)
    df = se**4 / ((X.var(ddof=1) / 5) ** 2 / 4 + (Y.var(ddof=1) / 5) ** 2 / 4)
    t = (X.mean() - Y.mean()) / se
    res = stats.t_test(X, Y, paired=False)
    assert res["test"] == "Welch t-test"
    assert float(res["statistic"]) == pytest.approx(t)
    assert float(res["df"]) == pytest.approx(df)
    assert float(res["p"]) == pytest.approx(2 * st.t.sf(abs(t), df))
    half = st.t.ppf(0.975, df) * se
    assert (float(res["ci_low"]), float(res["ci_high"])) == pytest.approx((t * se - half, t * se + half))


def test_paired_t_against_textbook_formula():
    d = X - Y
    t = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    res = stats.t_test(X, Y, paired=True)
    assert res["test"] == "paired t-test"
    assert float(res["p"]) == pytest.approx(2 * st.t.sf(abs(t), 4))
    half = st.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert (float(res["ci_low"]), float(res["ci_high"])) == pytest.approx((d.mean() - half, d.mean() + half))


def test_rank_tests_worked_examples():
    # complete separation of 3 vs 3: U = 0, exact two-sided p = 2 / C(6, 3) = 0.1
    mw = stats.rank_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], paired=False)
    assert mw["test"] == "Mann-Whitney U" and mw["statistic"] == 0 and mw["p"] == pytest.approx(0.1)
    # five positive differences: exact two-sided p = 2 / 2**5 = 0.0625 (never below 0.05 with 5 pairs)
    wx = stats.rank_test(X, X - [1, 2, 3, 4, 5], paired=True)
    assert wx["test"] == "Wilcoxon signed-rank" and wx["p"] == pytest.approx(0.0625)
    assert not stats.rank_test(X, X, paired=True)["p"] < 0.05  # all differences zero: 1.0 or NaN, never a finding


def test_hedges_g_worked_example():
    # means 3 and 4, both variances 2.5 -> d = -1 / sqrt(2.5); J = 1 - 3 / (4 * 10 - 9) = 28 / 31
    g = stats.hedges_g([1, 2, 3, 4, 5], [2, 3, 4, 5, 6])
    assert float(g) == pytest.approx(-1 / math.sqrt(2.5) * 28 / 31)
    assert float(g) == pytest.approx(-0.571250, abs=1e-6)
    assert math.isnan(float(stats.hedges_g([1, 1, 1], [1, 1, 1])))


def test_cliffs_delta_worked_example_and_relation_to_u():
    # pairs (x, y): 1<2,1<2,1<4, 2=2,2=2,2<4, 3>2,3>2,3<4 -> (2 - 5) / 9
    assert float(stats.cliffs_delta([1, 2, 3], [2, 2, 4])) == pytest.approx(-1 / 3)
    u = st.mannwhitneyu(X, Y).statistic
    assert float(stats.cliffs_delta(X, Y)) == pytest.approx(2 * u / 25 - 1)


def test_margin_tests_against_shifted_one_sided_t_tests():
    m = 0.5
    welch = stats.margin_tests(X, Y, m, paired=False)
    lower = st.ttest_ind(X + m, Y, equal_var=False, alternative="greater").pvalue
    upper = st.ttest_ind(X - m, Y, equal_var=False, alternative="less").pvalue
    assert welch["p_noninf"] == pytest.approx(lower)
    assert welch["p_equiv"] == pytest.approx(max(lower, upper))
    paired = stats.margin_tests(X, Y, m, paired=True)
    assert paired["p_noninf"] == pytest.approx(st.ttest_1samp(X - Y, -m, alternative="greater").pvalue)
    # lower is better (e.g. latency): non-inferior means x - y < +m
    lower_better = stats.margin_tests(Y, X, m, paired=False, higher_is_better=False)
    assert lower_better["p_noninf"] == pytest.approx(st.ttest_ind(Y - m, X, equal_var=False,
                                                                  alternative="less").pvalue)


def test_multiplicity_worked_examples():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> 0.02, 0.03, 0.06, max(0.04, 0.06)
    assert stats.adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: p * m / rank = 0.02, 0.02, 0.04, 0.04 (already monotone)
    assert stats.adjust_pvalues(p, "fdr_bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    with_nan = stats.adjust_pvalues([0.01, np.nan, 0.04], "holm")
    assert math.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx([0.02, 0.04])
    with pytest.raises(ValueError, match="holm"):
        stats.adjust_pvalues(p, "bonferoni")


def _power_by_noncentral_t(effect, n, paired):
    df, ncp = (n - 1, effect * math.sqrt(n)) if paired else (2 * n - 2, effect * math.sqrt(n / 2))
    crit = st.t.ppf(0.975, df)
    return st.nct.sf(crit, df, ncp) + st.nct.cdf(-crit, df, ncp)


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("effect", [0.5, 1.2, 2.5])
def test_seeds_for_power_is_the_smallest_n_reaching_80_percent(effect, paired):
    n = stats.seeds_for_power(effect, paired)
    assert _power_by_noncentral_t(effect, n, paired) >= 0.8
    if n > 2:
        assert _power_by_noncentral_t(effect, n - 1, paired) < 0.8
    assert stats.seeds_for_power(-effect, paired) == n  # two-sided: sign does not matter


def test_seeds_for_power_infeasible():
    assert stats.seeds_for_power(0.0, False) is None
    assert stats.seeds_for_power(float("nan"), True) is None
    assert stats.seeds_for_power(-1.0, True, alternative="larger") is None
    assert stats.seeds_for_power(0.001, False) is None  # beyond 10,000 seeds


def test_pareto_front():
    cost = [1, 2, 3, 4, 2]
    score = [70, 72, 71, 75, 69]
    assert list(stats.pareto_front(cost, score)) == [0, 1, 3]


# ----------------------------------------------------------------------------------- calibration
REPS = 2000


def test_pairwise_tests_are_calibrated_on_null_data():
    """Both variants from one distribution, 5 seeds each: rejection rate at 0.05 within 3-7%."""
    rng = np.random.default_rng(2024)
    x, y = rng.normal(70, 0.5, (2, REPS, 5))
    for paired in (False, True):
        rate = np.mean(stats.t_test(x, y, paired)["p"] < 0.05)
        assert 0.03 <= rate <= 0.07, (paired, rate)


def test_holm_controls_family_wise_error_for_five_comparisons():
    rng = np.random.default_rng(99)
    ref = rng.normal(70, 0.5, (REPS, 1, 5))
    variants = rng.normal(70, 0.5, (REPS, 5, 5))
    p = stats.t_test(variants, np.broadcast_to(ref, variants.shape), paired=False)["p"]  # (REPS, 5)
    raw_fwer = np.mean((p < 0.05).any(axis=1))
    holm_fwer = np.mean([(stats.adjust_pvalues(row, "holm") < 0.05).any() for row in p])
    assert holm_fwer <= 0.06
    assert raw_fwer > 0.10  # uncorrected, the family-wise error is far above alpha: the test can fail


# ---------------------------------------------------------------------------------- grid analysis
def tidy(means: dict, sd=0.3, seeds=5, grid="g", reference="ref", seed=0, **extra) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"grid": grid, "variant": v, "seed": s, "status": "ok", "reference": reference,
             "test_top1": mu + rng.normal(0, sd), "latency_ms": 4.0 + rng.normal(0, 0.1), **extra}
            for v, mu in means.items() for s in range(seeds)]
    return pd.DataFrame(rows)


def _by(result, variant):
    comps = result["comparisons"]
    return comps[comps["variant"] == variant].iloc[0]


def test_analyze_matches_independent_scipy_and_statsmodels():
    from statsmodels.stats.multitest import multipletests

    frame = tidy({"ref": 70.0, "a": 71.0, "b": 70.1, "c": 69.0})
    result = analyze(frame)
    values = {v: frame.loc[frame["variant"] == v, "test_top1"].to_numpy() for v in "ref a b c".split()}
    raw = [st.ttest_ind(values[v], values["ref"], equal_var=False).pvalue for v in "abc"]
    assert list(result["comparisons"]["variant"]) == ["a", "b", "c"]
    assert list(result["comparisons"]["p_raw"]) == pytest.approx(raw)
    assert list(result["comparisons"]["p_adj"]) == pytest.approx(multipletests(raw, method="holm")[1])
    assert list(result["comparisons"]["p_bh"]) == pytest.approx(multipletests(raw, method="fdr_bh")[1])
    a = _by(result, "a")
    assert not a["paired"] and a["test"] == "Welch t-test"
    assert a["diff"] == pytest.approx(values["a"].mean() - values["ref"].mean())
    assert a["p_rank"] == pytest.approx(st.mannwhitneyu(values["a"], values["ref"]).pvalue)
    summary = result["summaries"].set_index("variant")
    assert summary.loc["a", "std"] == pytest.approx(values["a"].std(ddof=1))
    assert summary.loc["ref", "is_reference"] and summary.loc["a", "ci_method"] == "BCa"


def test_pairing_comes_from_the_grid_or_matching_seeds():
    frame = tidy({"ref": 70.0, "a": 71.0})
    assert _by(analyze(frame.assign(paired=True)), "a")["test"] == "paired t-test"
    seeded = frame.assign(init_seed=frame["seed"] + 100, data_seed=frame["seed"] + 200)
    a = _by(analyze(seeded), "a")
    x, y = (seeded.loc[seeded["variant"] == v].sort_values("seed")["test_top1"].to_numpy() for v in ("a", "ref"))
    assert a["test"] == "paired t-test" and a["p_raw"] == pytest.approx(st.ttest_rel(x, y).pvalue)
    assert a["rank_test"] == "Wilcoxon signed-rank" and a["p_rank"] == pytest.approx(st.wilcoxon(x, y).pvalue)
    assert _by(analyze(seeded, pairing="unpaired"), "a")["test"] == "Welch t-test"


def test_failed_and_missing_runs_are_excluded_and_counted():
    frame = tidy({"ref": 70.0, "a": 71.0})
    frame.loc[0, "status"], frame.loc[0, "test_top1"] = "failed", 0.0  # a failed run's number is never used
    frame.loc[6, "test_top1"] = np.nan
    result = analyze(frame)
    summary = result["summaries"].set_index("variant")
    assert summary.loc["ref", "n"] == 4 and summary.loc["a", "n"] == 4
    assert summary.loc["ref", "mean"] == pytest.approx(frame.loc[1:4, "test_top1"].mean())
    assert sorted(result["excluded"]["status"]) == ["failed", "missing metric"]


def test_verdicts():
    frame = tidy({"ref": 70.0, "better": 71.5, "same": 70.0, "worse": 68.0}, sd=0.2)
    noisy = tidy({"ref": 70.0, "noisy": 70.0}, sd=3.0, grid="n", seed=3)
    result = analyze(pd.concat([frame, noisy]))
    assert _by(result, "better")["verdict"] == "better"
    assert _by(result, "worse")["verdict"] == "worse"
    assert _by(result, "same")["verdict"] in ("equivalent", "non-inferior")
    noisy_row = _by(result, "noisy")
    # not significant is not 'comparable': with SD 3 the margin test cannot pass
    assert noisy_row["verdict"] == "inconclusive" and "seeds per variant" in noisy_row["reason"]
    latency = analyze(frame, metric="latency_ms")  # lower is better, no default margin
    assert latency["margin"] is None and higher_is_better("latency_ms") is False
    assert set(latency["comparisons"]["verdict"]) <= {"better", "worse", "inconclusive"}


def test_analysis_is_deterministic_and_independent_of_other_grids():
    frame = pd.concat([tidy({"ref": 70.0, "a": 71.0}), tidy({"ref": 60.0, "b": 61.0}, grid="h", seed=1)])
    one, again = analyze(frame, seed=5), analyze(frame, seed=5)
    pd.testing.assert_frame_equal(one["summaries"], again["summaries"])
    alone = analyze(frame, grids=["g"], seed=5)
    pd.testing.assert_frame_equal(alone["summaries"], one["summaries"][one["summaries"]["grid"] == "g"])
    other = analyze(frame, seed=6)
    assert not np.allclose(other["summaries"]["ci_low"], one["summaries"]["ci_low"])


def test_bad_names_are_reported_with_close_matches():
    frame = tidy({"ref": 70.0, "a": 71.0})
    with pytest.raises(ValueError, match=r"unknown metric 'test_top2'.*'test_top1'"):
        analyze(frame, metric="test_top2")
    with pytest.raises(ValueError, match=r"unknown grid 'gg'.*allowed: g"):
        analyze(frame, grids=["gg"])
    with pytest.raises(ValueError, match="reference variant"):
        analyze(frame, reference="rf")
    with pytest.raises(ValueError, match="no single reference"):
        analyze(frame.drop(columns="reference"))


def test_compare_any_two_variants():
    frame = pd.concat([tidy({"ref": 70.0, "a": 71.0}), tidy({"ref": 60.0, "b": 61.0}, grid="h", seed=1)])
    result = compare(frame, "a", "g/ref")
    row = result["comparisons"].iloc[0]
    assert (row["variant"], row["reference"], row["correction"]) == ("a", "ref", "none")
    assert row["p_adj"] == row["p_raw"]
    with pytest.raises(ValueError, match="several grids"):
        compare(frame, "ref", "a")
    cross = compare(frame, "h/b", "g/a")["comparisons"].iloc[0]
    assert cross["variant"] == "h/b" and not cross["paired"]


def test_compare_samples_power_uses_observed_effect():
    frame = tidy({"ref": 70.0, "a": 70.4}, sd=0.5)
    x, y = (frame[frame["variant"] == v] for v in ("a", "ref"))
    c = compare_samples(x, y, "test_top1", pairing="unpaired")
    assert c["seeds_needed"] == stats.seeds_for_power(stats.standardised_effect(
        x["test_top1"], y["test_top1"], paired=False), paired=False)
    assert _power_by_noncentral_t(abs(c["effect_size"]) * 31 / 28, c["seeds_needed"], False) >= 0.79


def test_seeds_to_detect_a_given_difference():
    frame = tidy({"ref": 70.0, "a": 70.4}, sd=0.5)
    row = _by(analyze(frame, detect=0.5), "a")
    x, y = (frame.loc[frame["variant"] == v, "test_top1"].to_numpy() for v in ("a", "ref"))
    pooled = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2)  # equal group sizes
    n = row["seeds_needed_detect"]
    assert row["detect"] == 0.5
    assert _power_by_noncentral_t(0.5 / pooled, n, False) >= 0.8 > _power_by_noncentral_t(0.5 / pooled, n - 1, False)
    assert pd.isna(_by(analyze(frame), "a")["seeds_needed_detect"])


# -------------------------------------------------------------------------------------- formats
@pytest.fixture(scope="module")
def result():
    frame = pd.concat([tidy({"ref": 70.0, "a_1": 71.0, "b": 70.2}),
                       tidy({"ref": 60.0, "c": 61.0}, grid="h", seed=1)], ignore_index=True)
    frame.loc[0, "status"] = "failed"
    return analyze(frame)


def test_markdown_format(result):
    text = render(result, "md")
    lines = text.splitlines()
    assert "### g — test_top1" in lines and "### h — test_top1" in lines
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 * 2 + 3 + 2  # header + rule per grid, one row per variant
    assert all(line.count("|") == 9 for line in table)
    assert "| a_1 | 5 |" in text and "1 failed" in text and "p (Holm)" in text
    assert "CI of the mean not BCa" not in text
    two_seeds = render(analyze(tidy({"ref": 70.0, "a": 71.0}, seeds=2)), "md")
    assert "CI of the mean not BCa for: ref (percentile (n<3)); a (percentile (n<3))" in two_seeds


def test_latex_format(result):
    text = render(result, "latex")
    assert text.count(r"\begin{table}") == 2 and text.count(r"\toprule") == 2
    assert r"\midrule" in text and r"\bottomrule" in text
    assert r"a\_1" in text and "a_1" not in text.replace(r"a\_1", "")
    body = [line for line in text.splitlines() if line.endswith(r"\\")]
    assert all(line.count("&") == 7 for line in body)


def test_csv_format_round_trips(result):
    import io

    table = pd.read_csv(io.StringIO(render(result, "csv")))
    assert len(table) == 5 and {"diff", "diff_ci_low", "p_adj", "ci_low", "verdict"} <= set(table.columns)
    a = table[table["variant"] == "a_1"].iloc[0]
    assert a["p_adj"] == pytest.approx(_by(result, "a_1")["p_adj"], rel=1e-8)
    assert a["diff_ci_low"] == pytest.approx(_by(result, "a_1")["ci_low"], rel=1e-8)


def test_json_schema(result):
    doc = json.loads(render(result, "json"))
    assert doc["schema_version"] == 1 and doc["metric"] == "test_top1" and doc["correction"] == "holm"
    assert len(doc["comparisons"]) == 3 and len(doc["summaries"]) == 5 and len(doc["excluded"]) == 1
    types = {"grid": str, "variant": str, "reference": str, "n": int, "diff": float, "ci_low": float,
             "ci_high": float, "p_raw": float, "p_adj": float, "test": str, "effect_size": float,
             "verdict": str, "paired": bool}
    for comp in doc["comparisons"]:
        assert list(comp) == list(COMPARISON_KEYS)
        for key, kind in types.items():
            assert isinstance(comp[key], kind), key
        assert comp["ci_low"] <= comp["diff"] <= comp["ci_high"]
    assert all(list(s) == list(SUMMARY_KEYS) for s in doc["summaries"])
    assert doc["excluded"][0]["status"] == "failed"
    assert to_dict(result)["comparisons"][0]["effect_size_type"] == "hedges_g"


def test_unknown_format():
    with pytest.raises(ValueError, match=r"unknown format 'markdown'.*allowed: table, md, latex, csv, json"):
        render({}, "markdown")
