"""The generated report: REPORT.md plus its figures (PNG and PDF) in ``<stem>_figures/`` beside it.

Deterministic by construction: sorted iteration, seeded bootstraps, no timestamps, and figure
metadata without dates, so the same results directory gives byte-identical files.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from study.claims import CIFAR100_CLAIM, MACS_RATIO_HEADER, PAPER_CLAIMS, PARAMS_RATIO_HEADER

from . import plots, second_edition, stats
from .compare import analyze, compare_samples, grid_reference, natural_key
from .health import LEARNED_FACTOR, SPIKE_FACTOR, training_health
from .load import STATUSES, load_curves, load_grids, load_results, load_run_files, load_study
from .questions import questions_section
from .status import RunStatus
from .tables import ci_note, display_table, exclusion_line, fmt_ci, fmt_num, fmt_p, interval_note, markdown_table

# build_report holds every figure of the report until write_report saves and closes each one.
matplotlib.rcParams["figure.max_open_warning"] = 0

REPO_ROOT = Path(__file__).resolve().parents[1]
INTERPRETATION = REPO_ROOT / "docs" / "interpretation.md"
COST_TOLERANCE = 0.10  # a cost ratio within 10% of the paper's is "supported" (counting conventions differ)
JPEG_CAVEAT = "CIFAR-10 (JPEG re-encoding)"
NONINFERIORITY_GRIDS = ("expansion-op", "core-fashion-mnist")  # grids with `dct` and `pointwise` variants


# ----------------------------------------------------------------------------------------- helpers
def _flatten(obj, prefix: str = "") -> dict[str, str]:
    """Dotted keys -> short text values of a nested JSON object."""
    out = {}
    for key, value in sorted(obj.items()) if isinstance(obj, dict) else []:
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            out[name] = text if len(text) <= 70 else text[:67] + "..."
    return out


def _values_text(values: list[str], limit: int = 3) -> str:
    shown = "; ".join(f"`{v}`" for v in values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "")


def _cmd(*parts: str) -> str:
    return "`python run.py " + " ".join(parts) + "`"


def _demote(markdown: str, levels: int = 2) -> str:
    """Shift headings down so an included document nests under a report section."""
    out, fenced = [], False
    for line in markdown.splitlines():
        fenced ^= line.lstrip().startswith("```")
        out.append("#" * levels + line if not fenced and re.match(r"#{1,4} ", line) else line)
    return "\n".join(out)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "grid"


# -------------------------------------------------------------------------------------------- setup
def setup_section(results: Path, frame: pd.DataFrame, result: dict, results_arg: str, out_arg: str) -> list[str]:
    envs = load_run_files(results, "env.json")
    configs = load_run_files(results, "config.json")
    lines = ["## Setup", ""]
    lines += ["### Hardware and software", ""]
    if envs:
        table = {}
        for _, _, env in envs:
            for key, value in _flatten(env).items():
                table.setdefault(key, set()).add(value)
        rows = [{"key": f"`{k}`", "value(s)": _values_text(sorted(v))} for k, v in sorted(table.items())]
        lines += [f"From the `env.json` of {len(envs)} run(s); several values mean runs differ.", "",
                  markdown_table(pd.DataFrame(rows[:60])), ""]
        if len(rows) > 60:
            lines += [f"({len(rows) - 60} more keys in the runs' `env.json`.)", ""]
    else:
        lines += ["No `env.json` found: hardware and software versions are unknown.", ""]
    lines += ["### Protocol", ""]
    if configs:
        flat = [_flatten(config) for _, _, config in configs]
        keys = sorted(set().union(*flat))
        values = {k: sorted({f.get(k, "(absent)") for f in flat}) for k in keys}
        constant = [k for k in keys if len(values[k]) == 1]
        varying = [k for k in keys if k not in constant]
        rows = [{"setting": f"`{k}`", "value": f"`{values[k][0]}`"} for k in constant]
        lines += [f"Settings shared by all {len(configs)} run configs (`config.json`):", "",
                  markdown_table(pd.DataFrame(rows[:60])) if rows else "(none)", ""]
        if varying:
            lines += ["Settings that differ between runs: " + ", ".join(f"`{k}`" for k in varying[:40])
                      + (" ..." if len(varying) > 40 else "") + ".", ""]
    else:
        lines += ["No `config.json` found.", ""]
    protocols = sorted(frame["protocol"].dropna().astype(str).unique())
    lines += [f"Protocol(s) named in the results: {', '.join(f'`{p}`' for p in protocols) or 'none recorded'}.", ""]
    lines += ["### Data", ""]
    datasets = sorted(frame["dataset"].dropna().astype(str).unique())
    lines += [f"Dataset(s): {', '.join(f'`{d}`' for d in datasets) or 'none recorded'}.", ""]
    config_text = " ".join(f"{k}={v}" for _, _, c in configs for k, v in _flatten(c).items()).lower()
    if any("jpeg" in d.lower() for d in datasets) or "jpeg" in config_text:
        lines += [f"> **Caveat: {JPEG_CAVEAT}.** The CIFAR-10 images were decoded from a JPEG re-encoded "
                  "archive, not the original lossless arrays. JPEG artefacts change the inputs, so absolute "
                  "accuracies are not directly comparable with published CIFAR-10 numbers; differences between "
                  "variants trained and tested on the same data remain comparable.", ""]
    margin = "none" if result["margin"] is None else f"{result['margin']:g} points"
    lines += ["### Statistical protocol", "",
              f"Primary metric `{result['metric']}`; alpha {result['alpha']:g}; multiplicity correction "
              f"`{result['correction']}` within each grid; non-inferiority margin {margin}; "
              f"{round(result['confidence'] * 100)}% intervals; bootstrap seed {result['seed']}. "
              "Tests and verdict rules: `docs/analysis.md`.", "",
              "Regenerate: " + _cmd("report", "--results", results_arg, "--out", out_arg) + " (this section is "
              "read from the run files).", ""]
    return lines


# --------------------------------------------------------------------------------------------- runs
def compute_lines(frame: pd.DataFrame) -> list[str]:
    """Training compute behind the results, and the runs copied from a twin instead of trained."""
    ok = frame[frame["status"] == RunStatus.OK]
    trained = ok[ok["reused_from"].isna()]
    seconds = float(pd.to_numeric(trained["train_seconds"], errors="coerce").sum())
    line = (f"Compute: {len(trained)} runs trained, {seconds / 3600:.2f} h of training in total (the sum of the runs' "
            "training seconds; evaluation and profiling not included).")
    if len(trained) < len(ok):
        line += (f" {len(ok) - len(trained)} further runs are copies of a twin run in another grid (the same network, "
                 "data, protocol, seeds and numerics settings; `reused_from` in their result.json) and cost nothing. "
                 "Copies put the same runs into several grids: agreement between such grids is not an independent "
                 "replication (Questions and answers shows such a comparison once).")
    return [line, ""]


def plan_lines(results: Path, frame: pd.DataFrame, grids: dict) -> list[str]:
    """The study plan (results/study.json from `run.py study`) against the runs present."""
    plan, problem = load_study(results)
    if problem:
        return [f"Study plan not shown: {problem}.", ""]
    if not plan:
        return []
    rows = []
    for entry in plan:
        grid, seeds = entry["grid"], entry["seeds"]
        variants = len((grids.get(grid) or {}).get("variants") or {})
        planned = (frame["grid"] == grid) & (frame["status"] == RunStatus.OK) & (frame["seed"] < seeds)
        if entry.get("protocol"):
            planned &= frame["protocol"] == entry["protocol"]
        ok = int(planned.sum())
        expected = variants * seeds
        state = ("not started" if grid not in grids else "complete" if variants and ok >= expected else "partial")
        rows.append({"grid": f"`{grid}`", "protocol": f"`{entry.get('protocol', '–')}`", "seeds planned": str(seeds),
                     "variants": str(variants) if variants else "–",
                     "runs ok / planned": f"{ok} / {expected}" if variants else f"{ok} / –", "state": state})
    return ["The study plan (`results/study.json`, written by `run.py study`) against the runs above:", "",
            markdown_table(pd.DataFrame(rows)), ""]


# ------------------------------------------------------------------------------------------- claims
def health_section(health: pd.DataFrame) -> list[str]:
    """Runs whose training loss rose far above chance or that never learned (analysis/health.py)."""
    trained = health[health["reused_from"].isna()]
    if not len(trained):
        return []
    flagged = trained[trained["flagged"]]
    unknown = int(trained["spike"].isna().sum())
    lines = ["## Training health", "",
             f"A network guessing uniformly over C classes has a training loss of ln C. A run is flagged when an "
             f"epoch's mean training loss exceeded {SPIKE_FACTOR:g} x ln C (*loss spike*: it diverged and spent "
             f"epochs recovering) or its final training accuracy stayed below {LEARNED_FACTOR:g} x chance "
             f"(*did not learn*). Trained runs only (copies are their twins)."
             + (f" {unknown} run(s) could not be checked (number of classes unknown)." if unknown else ""), ""]
    if not len(flagged):
        return lines + [f"None of the {len(trained)} trained runs is flagged.", ""]
    per_variant = (flagged.groupby(["grid", "variant"]).size().rename("flagged").reset_index()
                   .merge(trained.groupby(["grid", "variant"]).size().rename("runs").reset_index()))
    table = flagged.assign(
        seed=flagged["seed"].astype(int).astype(str),
        flag=[", ".join(name for name, on in (("loss spike", r.spike == True), ("did not learn", r.not_learned == True)) if on)  # noqa: E712
              for r in flagged.itertuples()],
        **{"first-epoch loss": flagged["first_loss"].map("{:.2f}".format),
           "peak loss (epoch)": [f"{r.peak_loss:.2f} ({r.peak_epoch})" for r in flagged.itertuples()],
           "chance loss": flagged["classes"].map(lambda c: f"{math.log(c):.2f}"),
           "final loss": flagged["final_loss"].map("{:.2f}".format),
           "final train top-1": flagged["final_train_top1"].map("{:.1f}".format)})
    lines += [f"{len(flagged)} of {len(trained)} trained runs are flagged, in "
              + "; ".join(f"`{r.grid}` `{r.variant}` ({r.flagged} of {r.runs} runs)" for r in per_variant.itertuples())
              + ". Comparisons that involve these variants measure how each network copes with the shared "
              "protocol's learning-rate schedule (Protocol below) as much as its architecture; read their rows in "
              "the questions with that in mind. Grids that halve the learning rate (`Grid.lr_scale`) show how much of "
              "a comparison the schedule decides; a per-network learning-rate search is the next study to make.", "",
              markdown_table(table[["grid", "variant", "seed", "flag", "first-epoch loss", "peak loss (epoch)",
                                    "chance loss", "final loss", "final train top-1"]]), ""]
    return lines


def _rows(usable: pd.DataFrame, grid: str, variant: str) -> pd.DataFrame:
    return usable[(usable["grid"] == grid) & (usable["variant"] == variant)]


def _pick(rows: pd.DataFrame, exclude: str | None, *patterns: str) -> str | None:
    """The first variant whose name or model matches a pattern (patterns tried in order)."""
    pairs = sorted({(str(v), str(m)) for v, m in rows[["variant", "model"]].itertuples(index=False)
                    if isinstance(v, str) and v != exclude}, key=lambda p: natural_key(p[0]))
    for pattern in patterns:
        hits = [v for v, m in pairs if re.search(pattern, v) or re.search(pattern, m)]
        if hits:
            return hits[0]
    return None


def _settle(x, y, paired: bool, diff: float) -> str:
    sd_up = stats.sd_upper_bound(*stats.difference_sd(x["test_top1"], y["test_top1"], paired))
    n = stats.seeds_for_power(diff / sd_up, paired) if math.isfinite(sd_up) and sd_up > 0 else None
    return (f"~{n} seeds per variant would detect {diff:+g} with 80% power (SD taken as its 80% upper confidence "
            f"bound {sd_up:.3g})" if n else "seeds needed unknown")


def accuracy_claim(x: pd.DataFrame, y: pd.DataFrame, claimed: float) -> tuple[str, str, str]:
    """Claim 'x beats y by ``claimed`` points': measured text, verdict, reason (rules in docs)."""
    if min(len(x), len(y)) < 2:
        return "–", "inconclusive", f"fewer than 2 runs per variant (n={len(x)}, {len(y)})"
    c = compare_samples(x, y, "test_top1")
    measured = f"{c['diff']:+.2f} points {fmt_ci(c['ci_low'], c['ci_high'])} ({c['test']}, n={c['n']}/{c['n_ref']})"
    if not (math.isfinite(c["ci_low"]) and math.isfinite(c["ci_high"])):
        return measured, "inconclusive", "no interval (values do not vary)"
    if c["ci_high"] < claimed:
        return measured, "not supported", f"the 95% CI excludes {claimed:+g}: the measured gain is smaller"
    if c["ci_low"] > 0:
        extra = " (gain larger than claimed)" if c["ci_low"] > claimed else ""
        return measured, "supported", f"the 95% CI excludes 0 and is consistent with {claimed:+g}{extra}"
    return measured, "inconclusive", (f"the 95% CI contains both 0 and {claimed:+g}; "
                                      + _settle(x, y, c["paired"], claimed))


def cost_claim(x: pd.DataFrame, y: pd.DataFrame, column: str, claimed: float | None) -> tuple[str, str, str]:
    """Claim 'x needs ``claimed`` times less ``column`` than y' (cost of the model, not random)."""
    cx, cy = x[column].dropna(), y[column].dropna()
    if not len(cx) or not len(cy):
        return "–", "inconclusive", f"`{column}` not recorded"
    ratio = float(np.median(cy) / np.median(cx))
    direction = f"{ratio:.2f}x fewer" if ratio >= 1 else f"{1 / ratio:.2f}x more"  # never "0.8x fewer"
    measured = f"{direction} ({fmt_num(np.median(cx))} vs {fmt_num(np.median(cy))})"
    spread = " (values differ between runs; medians used)" if cx.nunique() > 1 or cy.nunique() > 1 else ""
    if claimed is None:
        return measured, "no claim", "measured for information" + spread
    if abs(ratio / claimed - 1) <= COST_TOLERANCE:
        return measured, "supported", f"within {COST_TOLERANCE:.0%} of the claimed {claimed:g}x{spread}"
    return measured, "not supported", (f"differs from the claimed {claimed:g}x by more than {COST_TOLERANCE:.0%}{spread}; "
                                       "how the count depends on input size and readings: Interpretation choices")


def noninferiority_claim(x: pd.DataFrame, y: pd.DataFrame, margin: float) -> tuple[str, str, str]:
    """Claim 'x is non-inferior to y at ``margin`` points' with the one-sided t test (TOST half)."""
    if min(len(x), len(y)) < 2:
        return "–", "inconclusive", f"fewer than 2 runs per variant (n={len(x)}, {len(y)})"
    c = compare_samples(x, y, "test_top1", margin=margin)
    c90 = compare_samples(x, y, "test_top1", margin=margin, confidence=0.90)
    measured = (f"{c['diff']:+.2f} points {fmt_ci(c['ci_low'], c['ci_high'])}; one-sided 95% lower bound "
                f"{fmt_num(c90['ci_low'])} (n={c['n']}/{c['n_ref']})")
    if math.isfinite(c["p_noninf"]) and c["p_noninf"] < 0.05:
        return measured, "supported", f"lower bound above -{margin:g} (non-inferiority p={fmt_p(c['p_noninf'])})"
    if math.isfinite(c90["ci_high"]) and c90["ci_high"] < -margin:
        return measured, "not supported", f"one-sided 95% upper bound {fmt_num(c90['ci_high'])} below -{margin:g}"
    n = c["seeds_needed_noninf"]
    settle = (f"~{n} seeds per variant would show non-inferiority with 80% power if the true difference is 0 (SD "
              f"taken as its 80% upper confidence bound {c['sd_upper']:.3g})" if n else "seeds needed unknown")
    return measured, "inconclusive", f"non-inferiority p={fmt_p(c['p_noninf'])}; {settle}"


def claim_rows(frame: pd.DataFrame, usable: pd.DataFrame) -> tuple[pd.DataFrame, str | None, str | None]:
    """The paper-claims table, and the DyClotNet and MobileNetV2 variants of ``paper-claim`` it used."""
    rows = []
    grid, grids = "paper-claim", set(frame["grid"])
    in_grid = frame[frame["grid"] == grid]
    dyclot = _pick(in_grid, None, r"^dyclotnet_200$", r"dyclotnet\W?_?2(00|\.0)", r"dyclot")
    mobile = _pick(in_grid, dyclot, r"^mobilenetv2_cifar8_100$", r"^mobilenetv2_(cifar_)?100$", r"mobilenet\w*1(00|\.0)",
                   r"mobilenet")
    for claim, kind, claimed in PAPER_CLAIMS:
        if grid not in grids or dyclot is None or mobile is None:
            rows.append((claim, grid, "–", "no results", f"grid `{grid}` " + (
                "absent" if grid not in grids else "lacks a dyclotnet or mobilenetv2 variant")))
            continue
        x, y = _rows(usable, grid, dyclot), _rows(usable, grid, mobile)
        measured, verdict, reason = (accuracy_claim(x, y, claimed) if kind == "acc"
                                     else cost_claim(x, y, kind, claimed))
        datasets = sorted(pd.concat([x, y])["dataset"].dropna().astype(str).unique())
        if kind == "acc" and datasets and not all("cifar" in d.lower() and "10" in d for d in datasets):
            reason += f"; measured on {', '.join(datasets)}, not CIFAR-10"
        rows.append((claim, f"{grid}: `{dyclot}` vs `{mobile}`", measured, verdict, reason))
    rows.append((CIFAR100_CLAIM, "–", "–",
                 "not testable here", "no CIFAR-100 data on this machine; where it exists: "
                 + _cmd("ablate", "paper-claim", "--dataset", "cifar100", "--data-root", "CIFAR100_DIR")))
    for grid in NONINFERIORITY_GRIDS:
        claim = f"DCT is non-inferior to the pointwise expansion it replaces (margin 0.5 points), `{grid}`"
        if grid in grids and {"dct", "pointwise"} <= set(frame.loc[frame["grid"] == grid, "variant"]):
            measured, verdict, reason = noninferiority_claim(_rows(usable, grid, "dct"),
                                                             _rows(usable, grid, "pointwise"), 0.5)
            rows.append((claim, f"{grid}: `dct` vs `pointwise`", measured, verdict, reason))
        else:
            rows.append((claim, grid, "–", "no results", f"grid `{grid}` absent or without `dct` and `pointwise`"))
    table = pd.DataFrame(rows, columns=["claim", "grid: variant vs reference", "measured (95% CI)", "verdict",
                                        "reason"])
    return table, dyclot, mobile


def cost_readings_lines(results: Path, results_arg: str) -> list[str]:
    """Which reading of the open points reproduces which published cost ratio (``claim_costs.json``,
    written by ``run.py claim-costs --out``): the architectures' costs, not the runs'."""
    path = results / "claim_costs.json"
    try:
        rows = json.loads(path.read_text())
        table = pd.DataFrame([{"DyClotNet-2.0 reading": r["dyclotnet_200 reading"],
                               "MobileNetV2-1.0 reading": r["mobilenetv2_100 reading"],
                               PARAMS_RATIO_HEADER: (f"{r['params_ratio']:.2f}x"
                                                             + (" (matches)" if r["params_match"] else "")),
                               MACS_RATIO_HEADER: f"{r['macs_ratio']:.2f}x" + (" (matches)" if r["macs_match"] else "")}
                              for r in rows])
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"'{path}' is not a claim-costs file ({error}); rewrite it with run.py claim-costs --out") from None
    both = table[table[PARAMS_RATIO_HEADER].str.endswith("(matches)")
                 & table[MACS_RATIO_HEADER].str.endswith("(matches)")]
    summary = ("Both published ratios are reproduced only by: " + "; ".join(
        f"{r[0]} against {r[1]}" for r in both.itertuples(index=False)) + "." if len(both)
        else "No single reading reproduces both published ratios.")
    return ["### Which reading reproduces which published cost", "",
            "The published cost ratios under each reading of the paper's open points and each adaptation of "
            f"MobileNetV2-1.0 to 32x32 input (ratios within 5% of the claim match), from `{results_arg}/claim_costs.json` "
            f"({_cmd('claim-costs', '--out', results_arg + '/claim_costs.json')}). {summary} The accuracy comparison of "
            "the headline uses that adaptation; the others stay as extra rows.", "",
            markdown_table(table), ""]


def claims_section(claims: pd.DataFrame, dyclot: str | None, mobile: str | None, results_arg: str) -> list[str]:
    return ["## Paper claims", "",
            "Each claim is tested once on its own grid (no correction across claims). Accuracy claims use "
            "the t interval of the difference; cost claims compare medians (costs are deterministic).", "",
            markdown_table(claims), "",
            "Regenerate: " + _cmd("compare", f"paper-claim/{dyclot or 'DYCLOTNET'}",
                                  f"paper-claim/{mobile or 'MOBILENETV2'}", "--results", results_arg) + ", "
            + ", ".join(_cmd("compare", f"{g}/dct", f"{g}/pointwise", "--results", results_arg)
                        for g in NONINFERIORITY_GRIDS) + ".", ""]


# -------------------------------------------------------------------------------------------- grids
def sweep_axis(meta: dict, rows: pd.DataFrame, grid: str) -> tuple[str, dict[str, float]] | None:
    """``(key, {variant: value})`` of the one numeric ``model_kwargs`` entry that varies in a grid."""
    kwargs = {v: spec.get("model_kwargs") or {} for v, spec in (meta.get("variants") or {}).items()
              if isinstance(spec, dict)}
    for row in rows.dropna(subset=["model_kwargs"]).itertuples(index=False):
        try:
            kwargs.setdefault(str(row.variant), json.loads(row.model_kwargs))
        except (TypeError, json.JSONDecodeError):
            continue
    numeric = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    keys = sorted({k for kw in kwargs.values() for k, v in kw.items() if numeric(v)})
    varying = [k for k in keys if len({kw[k] for kw in kwargs.values() if numeric(kw.get(k))}) > 1]
    preferred = grid.split("-")[0]
    key = preferred if preferred in varying else (varying[0] if len(varying) == 1 else None)
    if key is None:
        return None
    return key, {v: float(kw[key]) for v, kw in kwargs.items() if numeric(kw.get(key))}


def grid_section(grid: str, meta: dict, frame: pd.DataFrame, usable: pd.DataFrame, curves: pd.DataFrame,
                 result: dict, results_arg: str, figures: dict) -> list[str]:
    metric = result["metric"]
    summary = result["summaries"][result["summaries"]["grid"] == grid]
    order = list(summary["variant"])
    rows_all = frame[frame["grid"] == grid]
    paired = bool(result["comparisons"].query("grid == @grid")["paired"].any()) if len(result["comparisons"]) else False
    lines = [f"## Grid `{grid}`", ""]
    if meta.get("description"):
        lines += [str(meta["description"]), ""]
    lines += [f"Reference `{order[0]}`; tests {'paired by seed' if paired else 'unpaired'}; datasets "
              + (", ".join(f"`{d}`" for d in sorted(rows_all["dataset"].dropna().astype(str).unique())) or "unknown")
              + "; " + exclusion_line(result, grid) + ".", ""]
    left_out = meta.get("left_out") if isinstance(meta.get("left_out"), dict) else {}
    if left_out:
        lines += ["Variants left out of this grid: " + "; ".join(
            f"`{v}` ({reason})" for v, reason in sorted(left_out.items())) + ".", ""]
    lines += [markdown_table(display_table(result, grid)), "", interval_note(result, grid) + ".", ""]
    if ci_note(result, grid):
        lines += [ci_note(result, grid) + ".", ""]
    comps = result["comparisons"].query("grid == @grid") if len(result["comparisons"]) else pd.DataFrame()
    if len(comps):
        lines += ["Verdicts in detail:", ""]
        lines += [f"- `{c.variant}`: **{c.verdict}** — {c.reason} (rank test {c.rank_test}: "
                  f"{c.rank_note or 'p_adj ' + fmt_p(c.p_rank_adj)}{'; ' + c.note if c.note else ''})"
                  for c in comps.itertuples()]
        lines += [""]
    excluded = result["excluded"][result["excluded"]["grid"] == grid]
    if len(excluded):
        table = excluded.assign(seed=excluded["seed"].map(lambda s: "–" if pd.isna(s) else str(int(s))),
                                reason=excluded["reason"].fillna("").astype(str))
        lines += ["Excluded runs (counted, never averaged):", "",
                  markdown_table(table[["variant", "seed", "run_id", "status", "reason"]].fillna("–")), ""]
    costs = [c for c in ("params", "macs", "latency_ms") if c in usable and usable.loc[usable["grid"] == grid, c].notna().any()]
    if costs:
        med = usable[usable["grid"] == grid].groupby("variant")[costs].median()
        table = pd.DataFrame([{"variant": v, **{c: fmt_num(med.loc[v, c]) for c in costs}} for v in order if v in med.index])
        lines += ["Cost per variant (median over runs):", "", markdown_table(table), ""]
    grid_rows = usable[usable["grid"] == grid]
    slug = _slug(grid)
    if len(grid_rows):
        figures[f"{slug}_seeds"] = plots.seeds_plot(grid_rows, metric, order)[0]
        lines += [_figure(figures, f"{slug}_seeds", f"{grid}: per-seed {metric} over box plots")]
    sweep = sweep_axis(meta, rows_all, grid)
    if sweep:
        key, values = sweep
        data = summary[summary["variant"].isin(values)].assign(x=lambda d: d["variant"].map(values))
        if len(data) >= 2:
            figures[f"{slug}_sweep"] = plots.sweep_plot(data, key, metric)[0]
            lines += [_figure(figures, f"{slug}_sweep",
                              f"{grid}: mean {metric} against {key} with the 95% t interval of the mean")]
    grid_curves = curves[curves["grid"] == grid] if len(curves) else curves
    # a curve needs more than one epoch: the test set of most protocols is evaluated after the last epoch only
    curve_metric = next((m for m in (metric, "val_top1", "test_top1") if m in grid_curves
                         and grid_curves.dropna(subset=[m])["epoch"].nunique() > 1), None)
    if curve_metric:
        figures[f"{slug}_curves"] = plots.curves_plot(grid_curves.dropna(subset=[curve_metric]), curve_metric,
                                                      [v for v in order if v in set(grid_curves["variant"])],
                                                      seed=result["seed"])[0]
        lines += [_figure(figures, f"{slug}_curves", f"{grid}: {curve_metric} per epoch (mean, 95% t band over seeds)")]
    extra = "" if metric == "test_top1" else f" --metric {metric}"
    lines += ["Regenerate: " + _cmd("analyze", "--results", results_arg, "--grid", grid + extra, "--format", "md"), ""]
    return lines


def _figure(figures: dict, name: str, caption: str) -> str:
    folder = figures["__folder__"]
    return f"![{caption}]({folder}/{name}.png)\n\n[{name}.pdf]({folder}/{name}.pdf)\n"


def pareto_section(usable: pd.DataFrame, result: dict, figures: dict, results_arg: str) -> list[str]:
    summary = result["summaries"].set_index(["grid", "variant"])
    if usable["grid"].nunique() > 1:  # the smoke grid runs on other data and a tiny budget
        usable = usable[usable["grid"] != "smoke"]
    lines = []
    # accuracies on different test sets are not comparable: one figure (and front) per dataset
    grid_data = usable.groupby("grid")["dataset"].agg(lambda d: "+".join(sorted(d.dropna().astype(str).unique())))
    for dataset in sorted(set(grid_data)):
        grids_here = sorted(grid_data.index[grid_data == dataset], key=natural_key)
        for cost in ("macs", "latency_ms"):
            if cost not in usable or usable[cost].notna().sum() == 0:
                continue
            rows = usable[usable["grid"].isin(grids_here)]
            med = rows.groupby(["grid", "variant"])[cost].median().dropna()
            points = pd.DataFrame([{"label": v, "group": g, "cost": c,
                                    **summary.loc[(g, v), ["mean", "ci_low", "ci_high"]]}
                                   for (g, v), c in sorted(med.items()) if (g, v) in summary.index])
            if len(points) < 2:
                continue
            name = f"pareto_{cost}_{_slug(dataset)}"
            figures[name] = plots.pareto_plot(points, cost, result["metric"])[0]
            lines += [_figure(figures, name, f"{result['metric']} against {cost} on {dataset} ("
                              + ", ".join(grids_here) + "), with the Pareto front")]
    if not lines:
        return []
    # one point per distinct network and dataset (equal MACs and parameters: the same network in several grids)
    if {"macs", "params", "latency_ms"} <= set(usable):
        from scipy.stats import spearmanr

        nets = usable.dropna(subset=["macs", "params", "latency_ms"]).groupby(
            ["dataset", "macs", "params"])["latency_ms"].median().reset_index()
        for dataset, group in sorted(nets.groupby("dataset"), key=lambda item: str(item[0])):
            if len(group) >= 3:
                test = spearmanr(group["macs"], group["latency_ms"])
                lines += [f"Does fewer MACs mean faster here? On `{dataset}`, over the {len(group)} distinct networks "
                          f"above, the Spearman rank correlation of MACs with measured CPU latency (batch 1, 1 thread) "
                          f"is {test.statistic:.2f} (p = {fmt_p(test.pvalue)}; 1 would mean the MAC order is the "
                          "latency order); `run.py bench latency` adds throughput at batch 128 for the baselines.", ""]
    return ["## Accuracy against cost", "",
            "Each point is one variant of one grid: mean over seeds with its 95% CI against the median cost; "
            "the dashed line is the Pareto front (no other point is cheaper and at least as accurate). One figure "
            "per dataset, since accuracies on different test sets are not comparable.", "", *lines,
            "Regenerate: " + _cmd("analyze", "--results", results_arg, "--format", "csv") + " (means, CIs) and "
            "the cost tables of the grid sections.", ""]


# ------------------------------------------------------------------------------------------- report
def interpretation_section(result: dict) -> list[str]:
    lines = ["## Interpretation choices", ""]
    if INTERPRETATION.exists():
        text = INTERPRETATION.read_text(encoding="utf-8").strip()
        text = re.sub(r"\A# [^\n]*\n+", "", text)  # its title duplicates this section's
        lines += ["From `docs/interpretation.md`:", "", _demote(text), ""]
    else:
        lines += ["The interpretation of the paper's ambiguities is recorded in `docs/interpretation.md` "
                  "(not present when this report was generated).", ""]
    lines += ["Analysis choices (see `docs/analysis.md`):", "",
              "- Primary test: Welch's t-test, or the paired t-test when a grid pairs runs by seed; the rank "
              "test (Mann-Whitney U / Wilcoxon signed-rank) is reported beside it as a check where its smallest "
              "possible p, after the correction, is below alpha, and said to be omitted elsewhere.",
              "- Intervals: t intervals throughout (the bootstrap undercovers at these seed counts); a grid's "
              "difference intervals are Bonferroni-simultaneous, so one that excludes 0 always has a significant "
              "corrected test.",
              f"- Multiplicity: `{result['correction']}` across the comparisons of each grid (Benjamini-Hochberg "
              "also in the JSON/CSV output).",
              "- 'Comparable accuracy' is only claimed from a non-inferiority / TOST test with the stated margin, "
              "never from a non-significant difference test.",
              f"- Cost claims are supported when the measured ratio is within {COST_TOLERANCE:.0%} of the paper's "
              "(MAC counting conventions differ between tools).",
              "- Failed, corrupt, unfinished and duplicate runs are excluded and counted; they are never averaged.", ""]
    return lines


def hardware_line(results: Path) -> str:
    """What the runs ran on, from their env.json (GPU or CPU only)."""
    envs = [env for _, _, env in load_run_files(results, "env.json")]
    gpus = sorted({str(env["gpu"]) for env in envs if env.get("gpu")})
    if not envs:
        return "- Hardware unknown: no run recorded an `env.json`."
    if gpus:
        return (f"- {sum(bool(env.get('gpu')) for env in envs)} of {len(envs)} runs used a GPU ({', '.join(gpus)}); "
                "the latency column is CPU batch-1 latency in every case.")
    return "- CPU only: no run here used a GPU, and every latency and speed figure is a CPU figure."


def latency_spread_lines(frame: pd.DataFrame) -> list[str]:
    """How much the latency of one network moved between its runs (each run measures it once, at its end)."""
    ok = frame[(frame["status"] == RunStatus.OK) & frame["reused_from"].isna()].dropna(subset=["latency_ms", "macs", "params"])
    spread = ok.groupby(["dataset", "macs", "params"])["latency_ms"].agg(lambda v: v.max() / v.min() if len(v) > 1 else np.nan)
    spread = spread.dropna()
    if not len(spread):
        return []
    return [f"- Each run measures its network's latency once, after training, under whatever else the machine was "
            f"doing; over the {len(spread)} networks trained more than once, the slowest of a network's runs measured "
            f"{spread.median():.2f}x its fastest (median; up to {spread.max():.2f}x). Latency ratios are medians over "
            "runs and are rougher than the accuracy figures; `run.py bench latency` measures all networks side by side "
            "in one process."]


def budget_lines(results: Path) -> list[str]:
    """One line per protocol in the runs' config.json: how short the training budget is."""
    budgets = {}
    for _, _, config in load_run_files(results, "config.json"):
        proto = config.get("protocol") if isinstance(config.get("protocol"), dict) else {}
        key = tuple(str(proto.get(k, "?")) for k in ("name", "epochs", "train_per_class", "test_per_class",
                                                      "batch_size", "lr"))
        budgets.setdefault(key[:4], set()).add(key[4:])
    lines = []
    for (name, epochs, train, test), rest in sorted(budgets.items()):
        per_class = {"None": "all", "?": "an unrecorded number of"}.get(train, train)
        rates = ", ".join(sorted({lr for _, lr in rest}))
        lines.append(f"- Short budget: the `{name}` protocol trains {epochs} epochs on {per_class} training images "
                     f"per class (batch {', '.join(sorted({b for b, _ in rest}))}, peak learning rate {rates}, "
                     "the same schedule for every network of a grid, not tuned per network) "
                     f"and tests on {test} images per class; "
                     "differences that need longer training to appear cannot appear here.")
    return lines


def limitations_section(frame: pd.DataFrame, result: dict, results: Path) -> list[str]:
    datasets = sorted(frame["dataset"].dropna().astype(str).unique())
    summary = result["summaries"]
    n_min, n_max = (int(summary["n"].min()), int(summary["n"].max())) if len(summary) else (0, 0)
    paired_small = len(result["comparisons"]) and bool(
        (result["comparisons"]["paired"] & (result["comparisons"]["n"] < 6)).any())
    lines = ["## Limitations", "",
             f"- Seeds per variant range from {n_min} to {n_max}; with few seeds only large differences are "
             "detectable (see the seeds-needed figures in the verdicts).",
             f"- {int((frame['status'] != 'ok').sum())} of {len(frame)} run folders were excluded "
             "(failed, corrupt, unfinished or duplicate); if failures depend on the variant, the surviving runs "
             "are a biased sample.",
             "- Latency is measured on the machine that ran the experiments (CPU, batch 1, median) and does not "
             "transfer to other hardware; MACs depend on the counting tool's conventions.",
             *latency_spread_lines(frame),
             "- Results come from the suite's training protocol, not the paper's full schedule; absolute "
             "accuracies are therefore lower, and only differences between variants are compared with claims.",
             *budget_lines(results),
             hardware_line(results),
             "- Datasets: " + ", ".join(f"`{d}`" for d in datasets) + (
                 "; CIFAR-10 is the JPEG re-encoding, not the original arrays (see Data)" if "cifar10-jpeg" in datasets
                 else "") + ".",
             "- Every choice the paper leaves open was fixed by us (Interpretation choices above); the ones that can "
             "change results are grids of their own, the others are not tested here.",
             "- The `baselines` grid compares DyClotNet-0.5 with the efficient nets at width 0.5 and the seed "
             "methods on ResNet-20, not the width-1.0 set, which the CPU budget cannot afford; the paper's own "
             "comparison (DyClotNet-2.0 vs MobileNetV2-1.0) is the `paper-claim` grid.",
             "- The same study under the `paper` protocol (full CIFAR-10 from torchvision, 200 epochs) on GPUs "
             "through Ray, with the results directory on storage every node shares: "
             + _cmd("study", "--protocol", "paper", "--executor", "ray", "--address", "auto", "--device", "cuda",
                    "--download", "--results", "results-paper") + ", then "
             + _cmd("report", "--results", "results-paper", "--out", "REPORT-paper.md") + "."]
    if paired_small:
        lines.append("- With fewer than 6 pairs the exact Wilcoxon signed-rank test cannot reach p < 0.05 "
                     "(minimum two-sided p = 0.0625 for 5 pairs, 0.25 for 3), so it is omitted there; the paired "
                     "t-test is the primary test.")
    return lines + [""]


def build_report(results_dir: str | Path, out: str | Path = "REPORT.md", metric: str = "test_top1",
                 alpha: float = 0.05, correction: str = "holm", margin: float | None = None,
                 seed: int = 0) -> tuple[str, dict]:
    """``(markdown, {figure name: matplotlib Figure})``; nothing is written."""
    results = Path(results_dir)
    frame = load_results(results)
    skipped = {}
    for grid in sorted(frame["grid"].unique(), key=natural_key):
        try:
            grid_reference(frame, grid)
        except ValueError as error:  # e.g. a corrupt grid.json: report it, analyse the rest
            skipped[grid] = str(error)
    analysable = [g for g in sorted(frame["grid"].unique(), key=natural_key) if g not in skipped]
    if not analysable:
        raise ValueError(f"no grid in '{results}' can be analysed: " + "; ".join(skipped.values()))
    result = analyze(frame, metric, grids=analysable, alpha=alpha, correction=correction, margin=margin, seed=seed)
    usable = frame[(frame["status"] == RunStatus.OK) & frame[metric].notna()]
    grids = load_grids(results)
    curves = load_curves(results, frame)
    out = Path(out)
    results_arg, out_arg = str(results_dir), str(out)
    figures = {"__folder__": f"{out.stem.lower()}_figures"}
    options = "" if metric == "test_top1" else f" --metric {metric}"
    lines = ["# DCT reproduction report", "",
             f"Generated from `{results_arg}` by {_cmd('report', '--results', results_arg, '--out', out_arg + options)}; "
             "every number is recomputed from the run files and rerunning the command reproduces this file "
             "byte for byte.", ""]
    pilot = second_edition.pilot_rows(results, reps=1000)
    lines += (second_edition.findings_lines(results, frame, pilot)
              + second_edition.budget_lines(results, figures, rows=pilot))
    lines += ["# First pass and all runs", "",
              "Everything below analyses every grid's newest engine version as it stands. Grids whose runs are all "
              "of engine version 1 are the first pass: one shared learning rate for every network, a budget chosen "
              "without measuring power (docs/study.md); read them as an untuned, underpowered first pass.", ""]
    accounting = frame.groupby("grid")["status"].value_counts().unstack(fill_value=0)
    accounting = accounting.reindex(columns=[s for s in STATUSES
                                             if s in accounting.columns])
    versions = pd.to_numeric(frame["engine_version"], errors="coerce").groupby(frame["grid"]).agg(
        lambda v: ", ".join(str(int(x)) for x in sorted(v.dropna().unique())) or "–")
    acc_rows = [{"grid": f"`{g}`", "reference": f"`{grids.get(g, {}).get('reference', '–')}`",
                 **{s: str(int(accounting.loc[g, s])) for s in accounting.columns}, "engine": versions.get(g, "–")}
                for g in sorted(accounting.index, key=natural_key)]
    lines += ["## Runs", "", "`engine` is the engine version the grid's runs were trained with (docs/engine.md): version 1 "
              "predates the fidelity fixes of the DCT bottleneck's normalisation and of DCD, FTM and MDConv; a grid's "
              "runs of an older version than its newest are `superseded`, never paired or pooled with newer ones.", "",
              markdown_table(pd.DataFrame(acc_rows)), ""]
    lines += compute_lines(frame) + plan_lines(results, frame, grids)
    health = training_health(frame, curves)
    lines += health_section(health)
    lines += setup_section(results, frame, result, results_arg, out_arg + options)
    claims, dyclot, mobile = claim_rows(frame, usable)
    lines += questions_section(result, usable, grids, claims, health)
    lines += claims_section(claims, dyclot, mobile, results_arg) + cost_readings_lines(results, results_arg)
    for grid in sorted(grids, key=natural_key):
        if grid in skipped:
            lines += [f"## Grid `{grid}`", "", f"Not analysed: {skipped[grid]}.", ""]
        elif grid in set(result["summaries"]["grid"]):
            lines += grid_section(grid, grids[grid], frame, usable, curves, result, results_arg, figures)
    lines += pareto_section(usable, result, figures, results_arg)
    lines += interpretation_section(result)
    lines += limitations_section(frame, result, results)
    lines += ["## Regenerating", "",
              f"- Whole report: {_cmd('report', '--results', results_arg, '--out', out_arg + options)}",
              f"- All grid tables: {_cmd('analyze', '--results', results_arg + options, '--format', 'md')} "
              "(`--format json` for the machine-readable form)",
              f"- Any two variants: {_cmd('compare', 'GRID/A', 'GRID/B', '--results', results_arg)}", ""]
    figures.pop("__folder__")
    return "\n".join(lines), figures


def save_figure(fig, stem: Path) -> list[Path]:
    """PNG and PDF without dates or version stamps in their metadata (byte-reproducible)."""
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=120, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"CreationDate": None, "Creator": None, "Producer": None})
    plt.close(fig)
    return paths


def write_report(results_dir: str | Path, out: str | Path = "REPORT.md", **options) -> Path:
    """Write the report and its figure folder; stale figures in that folder are removed."""
    text, figures = build_report(results_dir, out, **options)
    out = Path(out)
    folder = out.parent / f"{out.stem.lower()}_figures"
    folder.mkdir(parents=True, exist_ok=True)
    written = {p for name, fig in sorted(figures.items()) for p in save_figure(fig, folder / name)}
    for stale in sorted(folder.glob("*")):
        if stale.suffix in (".png", ".pdf") and stale not in written:
            stale.unlink()
    out.write_text(text, encoding="utf-8")
    return out
