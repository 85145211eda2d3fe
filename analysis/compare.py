"""Grid-level analysis: per-variant summaries and every variant against the grid's reference.

``analyze`` takes the tidy table (see ``evidence.load``) and returns a dict of DataFrames; the
numbers of one grid depend only on that grid's rows (every interval is a t interval; nothing is
random), so ``analyze --grid G`` and the report agree to the last digit.
"""
from __future__ import annotations

import difflib
import math
import re
from enum import Enum

import numpy as np
import pandas as pd

from evidence import stats
from evidence.load import COST_KEYS, METRIC_KEYS, metric_columns
from evidence.status import RunStatus
from study.grids import LR_SEARCH_SUFFIX, searched_grid

HIGHER_IS_BETTER = {"top1": True, "top5": True, "acc": True, "accuracy": True, "images_per_second": True,
                    "loss": False, "latency_ms": False, "params": False, "macs": False,
                    "train_seconds": False}
DEFAULT_MARGIN = 0.5  # points of top-1 accuracy (metrics in percent)
DEFAULT_EFFECT = 0.5  # smallest effect of interest for planning seeds, points of top-1 accuracy
PAIRING = ("auto", "paired", "unpaired")


def higher_is_better(metric: str) -> bool | None:
    """Direction of a metric from its name (``None`` when unknown: verdicts say higher/lower)."""
    for suffix, higher in HIGHER_IS_BETTER.items():
        if metric == suffix or metric.endswith("_" + suffix):
            return higher
    return None


def default_margin(metric: str) -> float | None:
    """0.5 points for percent accuracies; no margin (no non-inferiority test) otherwise."""
    return DEFAULT_MARGIN if re.search(r"(top\d|acc|accuracy)$", metric) else None


def unknown(kind: str, value: str, allowed) -> ValueError:
    """A ``ValueError`` naming the bad value, close matches and what is allowed."""
    allowed = [str(a) for a in allowed]
    close = difflib.get_close_matches(str(value), allowed, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return ValueError(f"unknown {kind} '{value}'{hint}; allowed: {', '.join(allowed) or 'none'}")


def natural_key(text: str) -> list:
    """Sort key so that ``p2 < p4 < p16``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


def grid_key(grid: str) -> tuple:
    """Sort key for grid folders: ``natural_key`` order, each learning-rate search right after the grid it searches
    for (``study.grids.searched_grid``), so that a GPU budget's search (``<grid>-gpu-lr``) follows the CPU's
    (``<grid>-lr``) as its grid follows the CPU's."""
    grid = str(grid)
    searched = searched_grid(grid) if grid.endswith(LR_SEARCH_SUFFIX) else grid
    return natural_key(searched), searched != grid


def _values(rows: pd.DataFrame, metric: str) -> np.ndarray:
    return rows[metric].to_numpy(dtype=float)


def _auto_paired(x_rows: pd.DataFrame, y_rows: pd.DataFrame) -> bool:
    """Paired when the grid says so; otherwise when every common seed has equal init/data seeds."""
    flags = pd.concat([x_rows, y_rows]).get("paired", pd.Series(dtype=object)).dropna()
    if len(flags):
        return bool(flags.astype(bool).all())
    if not {"init_seed", "data_seed"} <= set(x_rows.columns):
        return False
    merged = x_rows.merge(y_rows, on="seed", suffixes=("_x", "_y"))
    if merged.empty:
        return False
    same = [(merged[f"{c}_x"] == merged[f"{c}_y"]) & merged[f"{c}_x"].notna() for c in ("init_seed", "data_seed")]
    return bool((same[0] & same[1]).all())


def _align(x_rows, y_rows, metric: str, pairing: str):
    """Decide pairing and return ``(paired, x, y, note)``; paired samples are matched by seed."""
    paired = pairing == "paired" or (pairing == "auto" and _auto_paired(x_rows, y_rows))
    if paired:
        merged = x_rows[["seed", metric]].merge(y_rows[["seed", metric]], on="seed", suffixes=("_x", "_y"))
        merged = merged.sort_values("seed")
        if len(merged) >= 2:
            dropped = len(x_rows) + len(y_rows) - 2 * len(merged)
            note = f"{dropped} run(s) without a same-seed partner left out of the paired test" if dropped else ""
            return True, merged[f"{metric}_x"].to_numpy(float), merged[f"{metric}_y"].to_numpy(float), note
        note = "paired by design but fewer than 2 common seeds: unpaired tests used"
        return False, _values(x_rows, metric), _values(y_rows, metric), note
    return False, _values(x_rows, metric), _values(y_rows, metric), ""


def default_effect(metric: str) -> float | None:
    """The smallest effect of interest for planning seeds: 0.5 points for percent accuracies, else none."""
    return DEFAULT_EFFECT if re.search(r"(top\d|acc|accuracy)$", metric) else None


def family_confidence(confidence: float, family_size: int, correction: str) -> float:
    """Level of each difference interval in a family of ``family_size`` comparisons.

    With a correction the intervals are Bonferroni's, ``1 - (1 - confidence) / m``: together they cover all
    m differences with at least ``confidence``, and one excludes 0 only when its raw p is below alpha / m,
    where Holm and Benjamini-Hochberg reject too. Without a correction (``"none"``): ``confidence``.
    """
    if correction == "none" or family_size <= 1:
        return confidence
    return 1 - (1 - confidence) / family_size


def compare_arrays(x: np.ndarray, y: np.ndarray, paired: bool, metric: str, margin: float | None = None,
                   confidence: float = 0.95, effect: float | None = None, alpha: float = 0.05,
                   family_size: int = 1, correction: str = "none") -> dict:
    """All unadjusted statistics of variant values ``x`` against reference values ``y`` (1-D; matched by
    position when ``paired``), for a comparison in a family of ``family_size``.

    ``confidence``: level of the difference interval (the caller passes the family's, ``family_confidence``).
    ``effect``: smallest effect of interest (metric units; ``None``: the metric's default) for the seeds per
    variant that would detect it with 80% power at alpha / family_size, planning with the 80% upper
    confidence bound of the SD (``stats.sd_upper_bound``). The rank test is omitted (p NaN, ``rank_note``
    says why) when its smallest possible p, times the family size under a correction, is not below alpha.
    """
    higher = higher_is_better(metric)
    effect = default_effect(metric) if effect is None else effect
    t = stats.t_test(x, y, paired, confidence)
    sd, df = stats.difference_sd(x, y, paired)
    sd_up = stats.sd_upper_bound(sd, df)
    plan_alpha = alpha / max(1, family_size)
    factor = family_size if correction != "none" else 1
    p_min = stats.rank_test_min_p(x.size, y.size, paired)
    if p_min * factor < alpha:
        rank, rank_note = stats.rank_test(x, y, paired), ""
    else:
        rank = {"test": "Wilcoxon signed-rank" if paired else "Mann-Whitney U", "p": math.nan}
        times = f" x {factor} comparisons" if factor > 1 else ""
        rank_note = f"omitted: its smallest possible p ({p_min:.3g}{times}) is not below {alpha:g}"
    feasible = math.isfinite(sd_up) and sd_up > 0
    out = {"paired": paired, "n": int(x.size), "n_ref": int(y.size),
           "mean": float(np.mean(x)) if x.size else math.nan,
           "mean_ref": float(np.mean(y)) if y.size else math.nan,
           "diff": float(t["diff"]) if x.size and y.size else math.nan,
           "ci_low": float(t["ci_low"]), "ci_high": float(t["ci_high"]), "ci_level": confidence,
           "test": t["test"], "statistic": float(t["statistic"]), "df": float(t["df"]),
           "p_raw": float(t["p"]), "rank_test": rank["test"], "p_rank": float(rank["p"]), "rank_note": rank_note,
           "effect_size": float(stats.hedges_g(x, y)) if min(x.size, y.size) > 1 else math.nan,
           "cliffs_delta": float(stats.cliffs_delta(x, y)) if min(x.size, y.size) else math.nan,
           "margin": margin, "p_noninf": math.nan, "p_equiv": math.nan, "family_size": int(family_size),
           "effect_of_interest": effect, "sd_upper": sd_up,
           "seeds_needed": stats.seeds_for_power(effect / sd_up, paired, alpha=plan_alpha)
           if effect and feasible else None,
           "seeds_needed_noninf": None}
    if margin is not None:
        tests = stats.margin_tests(x, y, margin, paired, higher_is_better=higher is not False)
        out.update({k: float(v) for k, v in tests.items()})
        if feasible:
            out["seeds_needed_noninf"] = stats.seeds_for_power(margin / sd_up, paired, alpha=plan_alpha,
                                                               alternative="larger")
    return out


def compare_samples(x_rows: pd.DataFrame, y_rows: pd.DataFrame, metric: str, pairing: str = "auto",
                    margin: float | None = None, confidence: float = 0.95, detect: float | None = None,
                    alpha: float = 0.05, family_size: int = 1, correction: str = "none") -> dict:
    """``compare_arrays`` on the rows of a variant and its reference, paired by seed as ``pairing`` says;
    ``detect`` is the smallest effect of interest. Adds ``note`` (pairing fallbacks)."""
    paired, x, y, note = _align(x_rows, y_rows, metric, pairing)
    return {**compare_arrays(x, y, paired, metric, margin, confidence, detect, alpha, family_size, correction),
            "note": note}


def _direction(diff: float, higher: bool | None) -> str:
    if higher is None:
        return "higher" if diff > 0 else "lower"
    return "better" if (diff > 0) == higher else "worse"


CORRECTION_NAMES = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}


class VerdictReason(str, Enum):
    """Which rule of ``verdict`` gave a comparison its label (docs/analysis.md); ``tables.verdict_reason`` writes
    it out with the comparison's numbers."""
    FEW_RUNS = "few runs"  # fewer than 2 usable runs of either network
    NO_VARIANCE = "no variance"  # the values do not vary: the difference is exact
    UNDEFINED = "test undefined"
    SIGNIFICANT = "significant"  # p_adj < alpha
    WITHIN_MARGIN = "significant, within margin"  # worse, yet non-inferior at the margin
    EQUIVALENT = "equivalent"  # TOST within the margin
    NONINFERIOR = "non-inferior"
    NOT_SHOWN = "nothing shown"  # with the seeds that would detect the effect of interest (and non-inferiority)

    def __str__(self) -> str:
        return self.value


def verdict(row: dict, alpha: float, metric: str) -> tuple[str, VerdictReason]:
    """``(verdict, reason code)`` of one adjusted comparison; docs/analysis.md lists every label and its rule
    (``tables.verdict_reason`` writes the reason out).

    A label says what was shown: when a difference is significant before but not after the family's
    correction, the label says so (e.g. ``"non-inferior; better not shown after Holm correction"``).
    """
    higher = higher_is_better(metric)
    if min(row["n"], row["n_ref"]) < 2:
        return "inconclusive", VerdictReason.FEW_RUNS
    if not math.isfinite(row["p_adj"]):
        if row["ci_low"] == row["ci_high"] or not math.isfinite(row["statistic"]):
            return "no variance", VerdictReason.NO_VARIANCE
        return "inconclusive", VerdictReason.UNDEFINED
    noninf = math.isfinite(row["p_noninf_adj"]) and row["p_noninf_adj"] < alpha
    equiv = math.isfinite(row["p_equiv_adj"]) and row["p_equiv_adj"] < alpha
    word = _direction(row["diff"], higher)
    if row["p_adj"] < alpha:
        if word == "worse" and noninf:
            return "worse, within margin", VerdictReason.WITHIN_MARGIN
        return word, VerdictReason.SIGNIFICANT
    name = CORRECTION_NAMES.get(row.get("correction", "none"))
    lost = f"; {word} not shown after {name} correction" if correction_lost(row, alpha) else ""
    if equiv:
        return "equivalent" + lost, VerdictReason.EQUIVALENT
    if noninf:
        return ("non-inferior" + (lost or f"; {'better' if higher is not None else 'higher'} not shown"),
                VerdictReason.NONINFERIOR)
    return "inconclusive" + lost, VerdictReason.NOT_SHOWN


def correction_lost(row: dict, alpha: float) -> bool:
    """The comparison's unadjusted p is below ``alpha`` but its family's correction (Holm, Benjamini-Hochberg) takes
    it above."""
    return row.get("correction", "none") in CORRECTION_NAMES and row["p_raw"] < alpha


def summarize(rows: pd.DataFrame, grid: str, variant: str, metric: str, seed: int, confidence: float) -> dict:
    """n, mean, std, median and the t interval of the mean of one variant's usable rows (NaN when none).

    ``seed`` is kept for callers that derive figures' randomness from it; the interval is not random."""
    values = _values(rows, metric)
    ci = stats.t_mean_ci(values, confidence)
    return {"grid": grid, "metric": metric, "variant": variant, **stats.describe(values),
            "ci_low": ci["low"], "ci_high": ci["high"], "ci_method": ci["method"]}


def adjust_family(rows: list[dict], alpha: float, metric: str, correction: str) -> list[dict]:
    """Adjust the p-values of one family's comparisons together and add the verdicts (in place)."""
    if not rows:
        return rows
    raw = np.array([row["p_raw"] for row in rows])
    adjusted = {
        "p_adj": stats.adjust_pvalues(raw, correction),
        "p_holm": stats.adjust_pvalues(raw, "holm"),
        "p_bh": stats.adjust_pvalues(raw, "fdr_bh"),
        "p_rank_adj": stats.adjust_pvalues([row["p_rank"] for row in rows], correction),
        "p_noninf_adj": stats.adjust_pvalues([row["p_noninf"] for row in rows], correction),
        "p_equiv_adj": stats.adjust_pvalues([row["p_equiv"] for row in rows], correction),
    }
    for i, row in enumerate(rows):
        row.update({key: float(values[i]) for key, values in adjusted.items()}, correction=correction)
        row["verdict"], row["reason_code"] = verdict(row, alpha, metric)
    return rows


def _family(pairs: list[tuple[str, pd.DataFrame, str, pd.DataFrame]], grid: str, metric: str, *,
            pairing: str, margin: float | None, alpha: float, correction: str, confidence: float,
            detect: float | None = None) -> list[dict]:
    """Compare every (variant, reference) pair of one family and adjust its p-values together.

    The family size m counts the comparisons with a defined test; the difference intervals are at
    ``family_confidence(confidence, m, correction)``."""
    aligned = [(v, r, *_align(x, y, metric, pairing)) for v, x, r, y in pairs]
    if not aligned:
        return []
    p = [float(stats.t_test(x, y, paired)["p"]) for _, _, paired, x, y, _ in aligned]
    m = max(1, int(np.isfinite(p).sum()))
    level = family_confidence(confidence, m, correction)
    rows = [{"grid": grid, "metric": metric, "variant": v, "reference": r,
             **compare_arrays(x, y, paired, metric, margin, level, detect, alpha, m, correction), "note": note}
            for v, r, paired, x, y, note in aligned]
    return adjust_family(rows, alpha, metric, correction)


def _check_options(metric, frame, correction, pairing, confidence, alpha):
    known = set(metric_columns(frame)) | (set(frame.columns) & set(METRIC_KEYS + COST_KEYS))
    if metric not in known:  # a known metric column without any value (e.g. all runs failed) is allowed
        raise unknown("metric", metric, sorted(known))
    if correction not in stats.CORRECTIONS:
        raise unknown("correction", correction, stats.CORRECTIONS)
    if pairing not in PAIRING:
        raise unknown("pairing", pairing, PAIRING)
    if not (0 < confidence < 1 and 0 < alpha < 1):
        raise ValueError(f"confidence ({confidence}) and alpha ({alpha}) must lie strictly between 0 and 1")


def _split(frame: pd.DataFrame, metric: str):
    """``(usable ok rows, excluded rows with status)``: ok rows without the metric count as excluded."""
    frame = frame.copy()
    for column in ("status", "reason", "run_id", "reference", "paired"):
        if column not in frame.columns:
            frame[column] = RunStatus.OK.value if column == "status" else None
    values = pd.to_numeric(frame[metric], errors="coerce").astype(float)
    ok = frame["status"] == RunStatus.OK
    missing = ok & ~np.isfinite(values)
    frame["reason"] = frame["reason"].astype(object)
    frame.loc[missing, ["status", "reason"]] = ["missing metric", f"no value for {metric}"]
    return frame[ok & ~missing], frame[~(ok & ~missing)]


def grid_reference(frame: pd.DataFrame, grid: str, reference: str | None = None) -> str:
    """The grid's reference variant (argument, else the ``reference`` column); must be a variant."""
    rows = frame[frame["grid"] == grid]
    variants = sorted(rows["variant"].dropna().astype(str).unique(), key=natural_key)
    if reference is None:
        named = rows["reference"].dropna().astype(str).unique() if "reference" in rows else []
        if len(named) != 1:
            raise ValueError(f"grid '{grid}' names no single reference (found {list(named)}); "
                             f"pass --reference, one of: {', '.join(variants)}")
        reference = named[0]
    if reference not in variants:
        raise unknown(f"reference variant of grid '{grid}'", reference, variants)
    return reference


def analyze(frame: pd.DataFrame, metric: str = "test_top1", grids: list[str] | None = None,
            reference: str | None = None, pairing: str = "auto", alpha: float = 0.05,
            correction: str = "holm", margin: float | None = None, confidence: float = 0.95,
            seed: int = 0, detect: float | None = None) -> dict:
    """Analyse grids of the tidy ``frame``: each variant against its grid's reference.

    Returns ``{"metric", "alpha", "correction", "margin", "confidence", "seed",
    "summaries": DataFrame, "comparisons": DataFrame, "excluded": DataFrame}``; ``margin=None``
    means the metric's default (0.5 points for accuracies, none otherwise); ``detect`` is the smallest
    effect of interest (default 0.5 points for accuracies) behind ``seeds_needed``.
    """
    _check_options(metric, frame, correction, pairing, confidence, alpha)
    margin = default_margin(metric) if margin is None else margin
    all_grids = sorted(frame["grid"].astype(str).unique(), key=grid_key)
    for grid in grids or []:
        if grid not in all_grids:
            raise unknown("grid", grid, all_grids)
    usable, excluded = _split(frame, metric)
    summaries, comparisons = [], []
    chosen = all_grids if grids is None else list(grids)  # [] analyses none (a results folder of searches only)
    for grid in chosen:
        ref = grid_reference(frame, grid, reference)
        variants = sorted(frame.loc[frame["grid"] == grid, "variant"].dropna().astype(str).unique(),
                          key=lambda v: (v != ref, natural_key(v)))
        by_variant = {v: usable[(usable["grid"] == grid) & (usable["variant"] == v)] for v in variants}
        grid_excluded = excluded[excluded["grid"] == grid]
        summaries += [{**summarize(by_variant[v], grid, v, metric, seed, confidence), "is_reference": v == ref,
                       "n_excluded": int((grid_excluded["variant"] == v).sum())} for v in variants]
        pairs = [(v, by_variant[v], ref, by_variant[ref]) for v in variants if v != ref]
        comparisons += _family(pairs, grid, metric, pairing=pairing, margin=margin, alpha=alpha,
                               correction=correction, confidence=confidence, detect=detect)
    excluded = excluded[excluded["grid"].isin(chosen)]
    return {"metric": metric, "alpha": alpha, "correction": correction, "margin": margin,
            "confidence": confidence, "seed": seed,
            "summaries": pd.DataFrame(summaries), "comparisons": pd.DataFrame(comparisons),
            "excluded": excluded[[c for c in ("grid", "variant", "seed", "run_id", "status", "reason")
                                  if c in excluded.columns]].reset_index(drop=True)}


def resolve_variant(frame: pd.DataFrame, name: str) -> tuple[str, str]:
    """``grid/variant`` or a variant name unique across grids -> ``(grid, variant)``."""
    pairs = sorted({(str(g), str(v)) for g, v in frame[["grid", "variant"]].dropna().itertuples(index=False)})
    qualified = [f"{g}/{v}" for g, v in pairs]
    if name in qualified:
        return pairs[qualified.index(name)]
    matches = [(g, v) for g, v in pairs if v == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(f"variant '{name}' exists in several grids; write one of: "
                         + ", ".join(f"{g}/{v}" for g, v in matches))
    raise unknown("variant", name, qualified)


def compare(frame: pd.DataFrame, a: str, b: str, metric: str = "test_top1", pairing: str = "auto",
            alpha: float = 0.05, margin: float | None = None, confidence: float = 0.95, seed: int = 0,
            detect: float | None = None) -> dict:
    """Variant ``a`` against ``b`` (names as in ``resolve_variant``); same output as ``analyze``.

    A single comparison, so no multiplicity correction; variants of different grids are unpaired.
    """
    _check_options(metric, frame, "none", pairing, confidence, alpha)
    margin = default_margin(metric) if margin is None else margin
    (grid_a, var_a), (grid_b, var_b) = resolve_variant(frame, a), resolve_variant(frame, b)
    if (grid_a, var_a) == (grid_b, var_b):
        raise ValueError(f"compare needs two different variants, got '{a}' twice")
    usable, excluded = _split(frame, metric)
    pick = lambda table, g, v: table[(table["grid"] == g) & (table["variant"] == v)]  # noqa: E731
    label_a, label_b = (var_a, var_b) if grid_a == grid_b else (f"{grid_a}/{var_a}", f"{grid_b}/{var_b}")
    grid = grid_a if grid_a == grid_b else f"{grid_a} vs {grid_b}"
    rows = _family([(label_a, pick(usable, grid_a, var_a), label_b, pick(usable, grid_b, var_b))], grid, metric,
                   pairing=pairing if grid_a == grid_b else "unpaired", margin=margin, alpha=alpha,
                   correction="none", confidence=confidence, detect=detect)
    summaries = [{**summarize(pick(usable, g, v), g, v, metric, seed, confidence), "is_reference": i == 1,
                  "n_excluded": len(pick(excluded, g, v))}
                 for i, (g, v) in enumerate([(grid_a, var_a), (grid_b, var_b)])]
    chosen = pd.concat([pick(excluded, grid_a, var_a), pick(excluded, grid_b, var_b)])
    return {"metric": metric, "alpha": alpha, "correction": "none", "margin": margin,
            "confidence": confidence, "seed": seed, "summaries": pd.DataFrame(summaries),
            "comparisons": pd.DataFrame(rows),
            "excluded": chosen[["grid", "variant", "seed", "run_id", "status", "reason"]].reset_index(drop=True)}
