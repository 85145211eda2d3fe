"""Render an analysis (the dict returned by ``compare.analyze``) as Markdown, LaTeX, CSV or JSON.

All renderers are deterministic and take the same dict; the JSON schema is documented in
docs/analysis.md (``SCHEMA_VERSION`` changes when it does).
"""
from __future__ import annotations

import io
import json
import math

import pandas as pd

from .compare import VerdictReason, correction_lost, grid_key, unknown

FORMATS = ("table", "md", "latex", "csv", "json")
SCHEMA_VERSION = 2
COMPARISON_KEYS = ("grid", "metric", "variant", "reference", "paired", "n", "n_ref", "mean", "mean_ref",
                   "diff", "ci_low", "ci_high", "ci_level", "test", "statistic", "df", "p_raw", "p_adj", "correction",
                   "p_holm", "p_bh", "rank_test", "p_rank", "p_rank_adj", "rank_note", "effect_size", "effect_size_type",
                   "cliffs_delta", "margin", "p_noninf", "p_noninf_adj", "p_equiv", "p_equiv_adj",
                   "family_size", "effect_of_interest", "sd_upper", "seeds_needed", "seeds_needed_noninf",
                   "verdict", "reason", "note")
SUMMARY_KEYS = ("grid", "metric", "variant", "is_reference", "n", "mean", "std", "median",
                "ci_low", "ci_high", "ci_method", "n_excluded")
INT_KEYS = {"n", "n_ref", "seeds_needed", "seeds_needed_noninf", "family_size", "n_excluded", "seed"}


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise unknown("format", fmt, FORMATS)
    return fmt


def fmt_num(value) -> str:
    """Compact fixed notation: 71.34, 0.45, 0.00123, 27,100,000; '–' for missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    value = float(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 0.01 or value == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_p(p) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_ci(low, high) -> str:
    return f"[{fmt_num(low)}, {fmt_num(high)}]"


def command(*parts: str) -> str:
    """A ``run.py`` command line as inline Markdown code."""
    return "`python run.py " + " ".join(parts) + "`"


def _count(value) -> int | None:
    """A count read back from a table column (NaN where it was None)."""
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else int(value)


def _seeds_text(n, what: str) -> str:
    n = _count(n)
    return f"with 80% power, ~{n} seeds per variant would {what}" if n else f"no feasible number of seeds would {what}"


def verdict_reason(c: dict, alpha: float) -> str:
    """Why a comparison (a row of ``analyze``'s comparisons) got its verdict, in words: its ``reason_code``
    (``compare.verdict``) written out with its numbers."""
    code = c["reason_code"]
    margin = c["margin"] if c["margin"] is not None and math.isfinite(c["margin"]) else None
    if code == VerdictReason.FEW_RUNS:
        return f"fewer than 2 usable runs (n={c['n']}, reference n={c['n_ref']})"
    if code == VerdictReason.NO_VARIANCE:
        return f"values do not vary across seeds; the difference {c['diff']:.4g} is exact"
    if code == VerdictReason.UNDEFINED:
        return "the test is undefined for these values"
    if code in (VerdictReason.SIGNIFICANT, VerdictReason.WITHIN_MARGIN):
        reason = f"p_adj={c['p_adj']:.3g} < {alpha}"
        if c["ci_low"] <= 0 <= c["ci_high"]:
            reason += (f"; the {c['ci_level'] * 100:.4g}% interval (Bonferroni) still contains 0: Holm's step-down "
                       "rejects more than the simultaneous intervals show")
        if code == VerdictReason.WITHIN_MARGIN:
            return f"{reason}, but non-inferior at margin {margin:g} (p_adj={c['p_noninf_adj']:.3g})"
        return reason
    base = f"no significant difference (p_adj={c['p_adj']:.3g}" + (
        f"; unadjusted p={c['p_raw']:.3g} is below {alpha} but not after the correction"
        if correction_lost(c, alpha) else "") + ")"
    if code == VerdictReason.EQUIVALENT:
        return f"{base}; TOST equivalence within ±{margin:g} (p_adj={c['p_equiv_adj']:.3g})"
    if code == VerdictReason.NONINFERIOR:
        return f"{base}; non-inferior at margin {margin:g} (p_adj={c['p_noninf_adj']:.3g})"
    effect, sd_up = c.get("effect_of_interest"), c.get("sd_upper")
    plan = (f"alpha {alpha:g}/{c.get('family_size', 1)}, SD taken as its 80% upper confidence bound "
            f"{sd_up:.3g}" if sd_up is not None and math.isfinite(sd_up) else "")
    reason = base
    if effect and math.isfinite(effect):
        reason += "; " + _seeds_text(c["seeds_needed"], f"detect a true difference of {effect:g}") + (
            f" ({plan})" if plan else "")
    if margin is not None:
        reason += f"; non-inferiority at margin {margin:g} not shown; " + _seeds_text(
            c["seeds_needed_noninf"], "show it if the true difference is 0")
    return reason


def with_reasons(result: dict) -> pd.DataFrame:
    """``result``'s comparisons with each verdict's ``reason`` in words (``verdict_reason``)."""
    comps = result["comparisons"]
    if not len(comps):
        return comps
    return comps.assign(reason=[verdict_reason(c, result["alpha"]) for c in comps.to_dict("records")])


def grids_of(result: dict) -> list[str]:
    return sorted(result["summaries"]["grid"].unique(), key=grid_key) if len(result["summaries"]) else []


def _methods(result: dict, grid: str) -> str:
    """The per-variant interval methods of a grid, e.g. 't'."""
    methods = result["summaries"].loc[result["summaries"]["grid"] == grid, "ci_method"].dropna()
    names = sorted({m.split(" (")[0] for m in methods if not m.startswith("none")})
    return "/".join(names) or "none"


def diff_interval_label(result: dict) -> str:
    """Column title of the difference interval: simultaneous over the family under a correction."""
    level = f"{result['confidence'] * 100:g}%"
    return f"diff [{level} CI, t]" if result["correction"] == "none" else f"diff [simultaneous {level} CI, t]"


def display_table(result: dict, grid: str) -> pd.DataFrame:
    """One grid as display strings: a row per variant, the reference first; the column titles name
    each interval's method (``interval_note`` gives the levels)."""
    summaries = result["summaries"][result["summaries"]["grid"] == grid]
    comps = result["comparisons"]
    comps = comps[comps["grid"] == grid].set_index("variant") if len(comps) else pd.DataFrame()
    level = f"{result['confidence'] * 100:g}%"
    p_name = {"holm": "p (Holm)", "fdr_bh": "p (BH)", "none": "p"}[result["correction"]]
    diff_name = diff_interval_label(result)
    rows = []
    for s in summaries.itertuples(index=False):
        c = comps.loc[s.variant] if s.variant in comps.index else None
        rows.append({
            "variant": s.variant + (" (ref)" if s.is_reference else ""),
            "n": str(int(s.n)),
            f"mean [{level} CI, {_methods(result, grid)}]": f"{fmt_num(s.mean)} {fmt_ci(s.ci_low, s.ci_high)}",
            diff_name: "–" if c is None or not math.isfinite(c["diff"])
            else f"{c['diff']:+.2f} {fmt_ci(c['ci_low'], c['ci_high'])}",
            p_name: "–" if c is None else fmt_p(c["p_adj"]),
            "Hedges g": "–" if c is None else fmt_num(c["effect_size"]),
            "Cliff's delta": "–" if c is None else fmt_num(c["cliffs_delta"]),
            "verdict": "reference" if c is None else c["verdict"],
        })
    return pd.DataFrame(rows)


def interval_note(result: dict, grid: str) -> str:
    """Which level each interval of a grid's table has ('' when the grid has no comparison)."""
    comps = result["comparisons"]
    comps = comps[comps["grid"] == grid] if len(comps) else comps
    level = f"{result['confidence'] * 100:g}%"
    text = f"Intervals: mean — {level} t interval of the mean per variant"
    if not len(comps):
        return text
    m, each = int(comps["family_size"].max()), float(comps["ci_level"].max())
    if result["correction"] == "none" or m <= 1:
        return text + f"; diff — {level} t interval of the primary test (excludes 0 exactly when p < {result['alpha']:g})"
    name = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}[result["correction"]]
    return text + ("; diff — Bonferroni-simultaneous: "
                   f"each a {each * 100:.4g}% t interval (1 − {1 - result['confidence']:g}/{m}), "
                   f"together covering all {m} differences with at least {level}; an interval excludes 0 only where "
                   f"the {name}-corrected test is significant")


def exclusion_line(result: dict, grid: str) -> str:
    """'runs: 10 ok, 1 failed, 1 corrupt' for one grid."""
    n_ok = int(result["summaries"].loc[result["summaries"]["grid"] == grid, "n"].sum())
    excluded = result["excluded"]
    counts = excluded[excluded["grid"] == grid]["status"].value_counts().sort_index()
    parts = [f"{n_ok} used"] + [f"{n} {status}" for status, n in counts.items()]
    return "runs: " + ", ".join(parts) + (" (excluded runs are not averaged)" if len(counts) else "")


def ci_note(result: dict, grid: str) -> str:
    """Variants whose interval of the mean is not a plain t interval, and why ('' when all are)."""
    rows = result["summaries"][(result["summaries"]["grid"] == grid) & (result["summaries"]["ci_method"] != "t")]
    return ("CI of the mean not a t interval for: " + "; ".join(f"{r.variant} ({r.ci_method})" for r in rows.itertuples())
            if len(rows) else "")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub pipe table of string cells (``|`` escaped)."""
    cells = [[str(c).replace("|", "\\|") for c in frame.columns]] + [
        [str(v).replace("|", "\\|") for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in cells[0]) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--",
        "±": r"$\pm$", "<": r"$<$", ">": r"$>$"}


def _tex(text) -> str:
    """Escape LaTeX specials character by character (so escapes are never re-escaped)."""
    return "".join(_TEX.get(char, char) for char in str(text))


def latex_table(frame: pd.DataFrame, caption: str) -> str:
    """A booktabs ``table`` environment of string cells."""
    header = " & ".join(_tex(c) for c in frame.columns) + r" \\"
    body = [" & ".join(_tex(v) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    return "\n".join([r"\begin{table}[ht]", r"\centering", rf"\caption{{{_tex(caption)}}}",
                      r"\begin{tabular}{l" + "r" * (len(frame.columns) - 2) + "l}", r"\toprule", header,
                      r"\midrule", *body, r"\bottomrule", r"\end{tabular}", r"\end{table}"])


def _caption(result: dict, grid: str) -> str:
    margin = "" if result["margin"] is None else f", non-inferiority margin {result['margin']:g}"
    return (f"{grid}: {result['metric']}, each variant against the reference "
            f"(correction {result['correction']}, alpha {result['alpha']:g}{margin})")


def to_markdown(result: dict) -> str:
    parts = []
    for grid in grids_of(result):
        parts += [f"### {grid} — {result['metric']}", "", markdown_table(display_table(result, grid)), "",
                  interval_note(result, grid) + ".", "", exclusion_line(result, grid), ""]
        parts += [ci_note(result, grid), ""] if ci_note(result, grid) else []
    return "\n".join(parts)


def to_latex(result: dict) -> str:
    parts = []
    for grid in grids_of(result):
        parts += [latex_table(display_table(result, grid), _caption(result, grid) + ". " + interval_note(result, grid)),
                  "% " + exclusion_line(result, grid), ""]
    return "\n".join(parts)


def flat_table(result: dict) -> pd.DataFrame:
    """Numeric table, one row per variant (reference included): summary + its comparison."""
    summaries = result["summaries"].loc[:, list(SUMMARY_KEYS)]
    comps = with_reasons(result)
    if not len(comps):
        return summaries
    comps = comps.rename(columns={"ci_low": "diff_ci_low", "ci_high": "diff_ci_high"})
    keep = [k for k in comps.columns if k not in ("metric", "n", "mean") and k in
            {"diff_ci_low", "diff_ci_high", *COMPARISON_KEYS}]
    return summaries.merge(comps[keep], on=["grid", "variant"], how="left")


def to_csv(result: dict) -> str:
    buffer = io.StringIO()
    flat_table(result).to_csv(buffer, index=False, lineterminator="\n", float_format="%.10g")
    return buffer.getvalue()


def _clean(value, key: str = ""):
    """JSON-safe: NaN, infinities and None -> null, numpy scalars -> Python, counts -> int."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
    if key in INT_KEYS and isinstance(value, float):
        return int(value)
    return value


def _records(frame: pd.DataFrame, keys) -> list[dict]:
    return [{k: _clean(row.get(k), k) for k in keys} for row in frame.to_dict("records")]


def to_dict(result: dict) -> dict:
    """The documented JSON object (schema in docs/analysis.md)."""
    comps = with_reasons(result)
    comps = comps.assign(effect_size_type="hedges_g") if len(comps) else comps
    return {"schema_version": SCHEMA_VERSION,
            **{k: _clean(result[k], k) for k in ("metric", "alpha", "correction", "margin", "confidence", "seed")},
            "comparisons": _records(comps, COMPARISON_KEYS),
            "summaries": _records(result["summaries"], SUMMARY_KEYS),
            "excluded": _records(result["excluded"], ("grid", "variant", "seed", "run_id", "status", "reason"))}


def to_json(result: dict) -> str:
    return json.dumps(to_dict(result), indent=2, sort_keys=False, allow_nan=False) + "\n"


def render(result: dict, fmt: str) -> str:
    """Text in one of ``md``, ``latex``, ``csv``, ``json`` (``table`` is printed by the CLI with rich)."""
    renderers = {"md": to_markdown, "latex": to_latex, "csv": to_csv, "json": to_json}
    if check_format(fmt) == "table":
        raise ValueError("format 'table' is printed by the CLI; render md, latex, csv or json")
    return renderers[fmt](result)


def percent(level: float) -> str:
    """A confidence level near 100% with the digits that keep it below 100% (99.991%, 95.6%)."""
    digits = max(1, -math.floor(math.log10(100 * (1 - level)))) if level < 1 else 1
    return f"{100 * level:.{digits}f}%"
