"""The report's sections as Markdown: each ``render_*`` takes findings (``analysis.findings``) and returns lines.

Pure functions: no file is read or written, nothing is computed from the runs; the same findings give
the same text. ``source`` is the results directory as the reader should type it, ``folder`` the
figure folder beside the report (figures are drawn by ``analysis.report_figures``).
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import asdict

import numpy as np
import pandas as pd

from evidence.health import LEARNED_FACTOR, SPIKE_FACTOR
from evidence.sequential import DECIDED_LABELS, plan_looks
from study.claims import MACS_RATIO_HEADER, PARAMS_RATIO_HEADER
from study.grids import CPU_SEED_CAP, GPU_SEED_CAP, LR_CANDIDATES, LR_EXTENSIONS, TUNING_SEEDS
from study.questions import SECOND_EDITION_QUESTIONS

from . import learning_rates
from .claims import COST_TOLERANCE, HEADLINE_GRID, NONINFERIORITY_GRIDS, ClaimKind, ClaimReason, ClaimRow, ClaimsFindings
from .findings import CostReading, GridFindings, LimitationsFindings, ParetoFindings, RunsFindings, SetupFindings
from .learning_rates import LearningRateSearch
from .looks import ComparisonLooks, HolmReading, QuestionLooks
from .paper_claims import CLAIM_TOLERANCE, MARGIN, Kind, PaperClaim, Verdict
from .plan import BudgetRow, QuestionPlan, Recommendation, RecommendReason, SdSource, plan_table
from .questions import QuestionFindings, QuestionRow, QuestionsFindings, UnsettledRow
from .second_edition import PILOT_RUNS, BudgetFindings, GlanceRow, Stage
from .tables import (
    ci_note,
    command,
    display_table,
    exclusion_line,
    fmt_ci,
    fmt_num,
    fmt_p,
    interval_note,
    markdown_table,
    percent,
    with_reasons,
)

JPEG_CAVEAT = "CIFAR-10 (JPEG re-encoding)"
DATASET_NAMES = {"cifar100": "CIFAR-100"}
# why the suite cannot decide the CIFAR-100 claim yet, even where the data exists (docs/study.md, section 2)
CIFAR100_PATH = ("where it exists, deciding it needs a protocol on CIFAR-100 first: the learning-rate search "
                 "(`run.py tune`) chooses on its protocol's own dataset, and no main run trains at a rate not chosen "
                 "on validation")
TABLE_ROWS = 60  # rows of the setup tables; the rest is counted


def values_text(values: tuple[str, ...] | list[str], limit: int = 3) -> str:
    shown = "; ".join(f"`{v}`" for v in values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "")


def demote(markdown: str, levels: int = 2) -> str:
    """Shift headings down so an included document nests under a report section."""
    out, fenced = [], False
    for line in markdown.splitlines():
        fenced ^= line.lstrip().startswith("```")
        out.append("#" * levels + line if not fenced and re.match(r"#{1,4} ", line) else line)
    return "\n".join(out)


def figure_link(folder: str, name: str, caption: str) -> str:
    return f"![{caption}]({folder}/{name}.png)\n\n[{name}.pdf]({folder}/{name}.pdf)\n"


# --------------------------------------------------------------------------------------------- runs
def render_runs(runs: RunsFindings) -> list[str]:
    """"Runs": run folders by status per grid, the training compute, the study plan against the runs."""
    rows = [{"grid": f"`{g.grid}`", "reference": f"`{'–' if g.reference is None else g.reference}`",
             **{s: str(n) for s, n in g.counts.items()},
             "engine": ", ".join(str(v) for v in g.engine_versions) or "–"} for g in runs.grids]
    lines = ["## Runs", "", "`engine` is the engine version the grid's runs were trained with (docs/engine.md): version 1 "
             "predates the fidelity fixes of the DCT bottleneck's normalisation and of DCD, FTM and MDConv; a grid's "
             "runs of an older version than its newest are `superseded`, never paired or pooled with newer ones.", "",
             markdown_table(pd.DataFrame(rows)), ""]
    cpu = runs.trained - runs.gpu_trained
    line = (f"Compute: {runs.trained} runs trained. On the CPU: {cpu} runs, {runs.train_seconds / 3600:.2f} h of training "
            "in total (the sum of the runs' training seconds; evaluation and profiling not included).")
    if runs.gpu_trained:
        line += (f" On a GPU: {runs.gpu_trained} runs, {runs.gpu_train_seconds / 3600:.2f} h of training wall time "
                 "summed over runs that shared the device, so not GPU time (the questions at a glance count each "
                 "run's share).")
    if runs.trained < runs.ok:
        line += (f" {runs.ok - runs.trained} further runs are copies of a twin run in another grid (the same network, "
                 "data, protocol, seeds and numerics settings; `reused_from` in their result.json) and cost nothing. "
                 "Copies put the same runs into several grids: agreement between such grids is not an independent "
                 "replication (Questions and answers shows such a comparison once).")
    lines += [line, ""]
    if runs.plan_problem:
        return lines + [f"Study plan not shown: {runs.plan_problem}.", ""]
    if not runs.plan:
        return lines
    plan = [{"grid": f"`{p.grid}`", "protocol": f"`{'–' if p.protocol is None else p.protocol}`",
             "seeds planned": str(p.seeds), "variants": str(p.variants) if p.variants else "–",
             "runs ok / planned": f"{p.ok} / {p.variants * p.seeds}" if p.variants else f"{p.ok} / –", "state": p.state}
            for p in runs.plan]
    return lines + ["The study plan (`results/study.json`, written by `run.py study`) against the runs above:", "",
                    markdown_table(pd.DataFrame(plan)), ""]


def render_health(health: pd.DataFrame) -> list[str]:
    """"Training health": runs whose training loss rose far above chance or that never learned."""
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


# -------------------------------------------------------------------------------------------- setup
def _recorded(setup: SetupFindings) -> list[str]:
    lines = ["### Hardware and software", ""]
    if setup.env_runs:
        rows = [{"key": f"`{k}`", "value(s)": values_text(v)} for k, v in setup.env_values.items()]
        differing = sum(len(v) > 1 for v in setup.env_values.values())
        lines += [f"From the `env.json` of {setup.env_runs} run(s); "
                  + (f"{differing} of {len(rows)} keys have several values: the runs differ there." if differing
                     else "every key has one value: the runs agree."), "",
                  markdown_table(pd.DataFrame(rows[:TABLE_ROWS])), ""]
        if len(rows) > TABLE_ROWS:
            lines += [f"({len(rows) - TABLE_ROWS} more keys in the runs' `env.json`.)", ""]
    else:
        lines += ["No `env.json` found: hardware and software versions are unknown.", ""]
    lines += ["### Protocol", ""]
    if setup.config_runs:
        constant = [k for k, v in setup.config_values.items() if len(v) == 1]
        varying = [k for k, v in setup.config_values.items() if len(v) > 1]
        rows = [{"setting": f"`{k}`", "value": f"`{setup.config_values[k][0]}`"} for k in constant]
        lines += [f"Settings shared by all {setup.config_runs} run configs (`config.json`):", "",
                  markdown_table(pd.DataFrame(rows[:TABLE_ROWS])) if rows else "(none)", ""]
        if varying:
            lines += ["Settings that differ between runs: " + ", ".join(f"`{k}`" for k in varying[:40])
                      + (" ..." if len(varying) > 40 else "") + ".", ""]
    else:
        lines += ["No `config.json` found.", ""]
    return lines


def render_setup(setup: SetupFindings, analysis: dict, source: str, out: str) -> list[str]:
    """"Setup": hardware and software, protocol, data and the statistical protocol (``out``: the report's
    path with the options it was written with)."""
    lines = ["## Setup", "", *_recorded(setup)]
    lines += [f"Protocol(s) named in the results: {', '.join(f'`{p}`' for p in setup.protocols) or 'none recorded'}.", ""]
    lines += ["### Data", "", f"Dataset(s): {', '.join(f'`{d}`' for d in setup.datasets) or 'none recorded'}.", ""]
    if setup.jpeg:
        lines += [f"> **Caveat: {JPEG_CAVEAT}.** The CIFAR-10 images were decoded from a JPEG re-encoded "
                  "archive, not the original lossless arrays. JPEG artefacts change the inputs, so absolute "
                  "accuracies are not directly comparable with published CIFAR-10 numbers; differences between "
                  "variants trained and tested on the same data remain comparable.", ""]
    margin = "none" if analysis["margin"] is None else f"{analysis['margin']:g} points"
    return lines + ["### Statistical protocol", "",
                    f"Primary metric `{analysis['metric']}`; alpha {analysis['alpha']:g}; multiplicity correction "
                    f"`{analysis['correction']}` within each grid; non-inferiority margin {margin}; "
                    f"{round(analysis['confidence'] * 100)}% intervals; bootstrap seed {analysis['seed']}. "
                    "Tests and verdict rules: `docs/analysis.md`.", "",
                    "Regenerate: " + command("report", "--results", source, "--out", out) + " (this section is "
                    "read from the run files).", ""]


# ------------------------------------------------------------------------------------------- claims
def comparison_text(row: ClaimRow) -> str:
    """'grid: `variant` vs `reference`', the grid alone when it has no such pair, '–' without a grid."""
    if row.grid is None:
        return "–"
    return f"{row.grid}: `{row.variant}` vs `{row.reference}`" if row.variant else row.grid


def claim_measured(row: ClaimRow) -> str:
    """What testing a first-pass claim measured, in words; '–' when nothing was."""
    o = row.outcome
    if o.estimate is None:
        return "–"
    if row.kind is ClaimKind.COST:
        direction = f"{o.estimate:.2f}x fewer" if o.estimate >= 1 else f"{1 / o.estimate:.2f}x more"  # never "0.8x fewer"
        return f"{direction} ({fmt_num(o.medians[0])} vs {fmt_num(o.medians[1])})"
    difference = f"{o.estimate:+.2f} points {fmt_ci(*o.ci)}"
    if row.kind is ClaimKind.NONINFERIORITY:
        return f"{difference}; one-sided 95% lower bound {fmt_num(o.one_sided[0])} (n={o.n}/{o.n_ref})"
    return f"{difference} ({o.test}, n={o.n}/{o.n_ref})"


def claim_reason(row: ClaimRow) -> str:
    """Why a first-pass claim got its verdict, in words (docs/analysis.md, "Paper claims, first pass")."""
    o, claimed = row.outcome, row.claimed
    spread = " (values differ between runs; medians used)" if o.varies else ""
    bound = f"(SD taken as its 80% upper confidence bound {o.sd_upper:.3g})" if o.seeds_needed else ""
    match o.reason:
        case ClaimReason.FEW_RUNS:
            text = f"fewer than 2 runs per variant (n={o.n}, {o.n_ref})"
        case ClaimReason.NO_INTERVAL:
            text = "no interval (values do not vary)"
        case ClaimReason.CI_BELOW_CLAIM:
            text = f"the 95% CI excludes {claimed:+g}: the measured gain is smaller"
        case ClaimReason.CI_ABOVE_ZERO:
            text = (f"the 95% CI excludes 0 and is consistent with {claimed:+g}"
                    + (" (gain larger than claimed)" if o.ci[0] > claimed else ""))
        case ClaimReason.CI_HAS_ZERO_AND_CLAIM:
            text = f"the 95% CI contains both 0 and {claimed:+g}; " + (
                f"~{o.seeds_needed} seeds per variant would detect {claimed:+g} with 80% power {bound}"
                if o.seeds_needed else "seeds needed unknown")
        case ClaimReason.NOT_RECORDED:
            text = f"`{row.cost}` not recorded"
        case ClaimReason.FOR_INFORMATION:
            text = "measured for information" + spread
        case ClaimReason.WITHIN_TOLERANCE:
            text = f"within {COST_TOLERANCE:.0%} of the claimed {claimed:g}x{spread}"
        case ClaimReason.OUTSIDE_TOLERANCE:
            text = (f"differs from the claimed {claimed:g}x by more than {COST_TOLERANCE:.0%}{spread}; how the count "
                    "depends on input size and readings: Interpretation choices")
        case ClaimReason.NONINFERIOR:
            text = f"lower bound above -{claimed:g} (non-inferiority p={fmt_p(o.p)})"
        case ClaimReason.BOUND_BELOW_MARGIN:
            text = f"one-sided 95% upper bound {fmt_num(o.one_sided[1])} below -{claimed:g}"
        case ClaimReason.NONINFERIORITY_NOT_SHOWN:
            text = f"non-inferiority p={fmt_p(o.p)}; " + (
                f"~{o.seeds_needed} seeds per variant would show non-inferiority with 80% power if the true "
                f"difference is 0 {bound}" if o.seeds_needed else "seeds needed unknown")
        case ClaimReason.GRID_ABSENT:
            text = f"grid `{row.grid}` absent"
        case ClaimReason.NO_PAIR if row.kind is ClaimKind.NONINFERIORITY:
            text = f"grid `{row.grid}` absent or without `dct` and `pointwise`"
        case ClaimReason.NO_PAIR:
            text = f"grid `{row.grid}` lacks a dyclotnet or mobilenetv2 variant"
        case ClaimReason.NO_DATA:
            text = f"no CIFAR-100 data on this machine; {CIFAR100_PATH}"
    return text + (f"; measured on {', '.join(row.datasets)}, not CIFAR-10" if row.datasets else "")


def render_claims(claims: ClaimsFindings, source: str) -> list[str]:
    table = pd.DataFrame([(r.claim, comparison_text(r), claim_measured(r), str(r.outcome.verdict), claim_reason(r))
                          for r in claims.rows],
                         columns=["claim", "grid: variant vs reference", "measured (95% CI)", "verdict", "reason"])
    return ["## First pass: paper claims", "",
            "The first pass's verdicts (engine version 1, fixed seeds, one shared learning rate), kept as they were; "
            "the main report's claims table judges each claim on the best evidence held instead. Each claim is "
            "tested once on its own grid (no correction across claims). Accuracy claims use the t interval of the "
            "difference; cost claims compare the runs' medians.", "",
            markdown_table(table), "",
            "Regenerate: " + command("compare", f"{HEADLINE_GRID}/{claims.dyclot or 'DYCLOTNET'}",
                                     f"{HEADLINE_GRID}/{claims.mobile or 'MOBILENETV2'}", "--results", source) + ", "
            + ", ".join(command("compare", f"{g}/dct", f"{g}/pointwise", "--results", source)
                        for g in NONINFERIORITY_GRIDS) + ".", ""]


def render_cost_readings(readings: tuple[CostReading, ...] | None, source: str) -> list[str]:
    """Which reading of the open points reproduces which published cost ratio (absent without claim_costs.json)."""
    if readings is None:
        return []
    table = pd.DataFrame([{"DyClotNet-2.0 reading": r.dyclot_reading, "MobileNetV2-1.0 reading": r.mobile_reading,
                           PARAMS_RATIO_HEADER: f"{r.params_ratio:.2f}x" + (" (matches)" if r.params_match else ""),
                           MACS_RATIO_HEADER: f"{r.macs_ratio:.2f}x" + (" (matches)" if r.macs_match else "")}
                          for r in readings])
    both = [r for r in readings if r.params_match and r.macs_match]
    summary = ("Both published ratios are reproduced only by: " + "; ".join(
        f"{r.dyclot_reading} against {r.mobile_reading}" for r in both) + "." if both
        else "No single reading reproduces both published ratios.")
    return ["### Which reading reproduces which published cost", "",
            "The published cost ratios under each reading of the paper's open points and each adaptation of "
            f"MobileNetV2-1.0 to 32x32 input (ratios within 5% of the claim match), from `{source}/claim_costs.json` "
            f"({command('claim-costs', '--out', source + '/claim_costs.json')}). {summary} The accuracy comparison of "
            "the headline uses that adaptation; the others stay as extra rows.", "",
            markdown_table(table), ""]


# -------------------------------------------------------------------------------------------- grids
def _grid_tables(grid: GridFindings, analysis: dict) -> list[str]:
    """The grid's comparison table, its verdicts in detail, excluded runs and costs."""
    name = grid.grid
    lines = [markdown_table(display_table(analysis, name)), "", interval_note(analysis, name) + ".", ""]
    if ci_note(analysis, name):
        lines += [ci_note(analysis, name) + ".", ""]
    comps = with_reasons(analysis)
    comps = comps[comps["grid"] == name] if len(comps) else pd.DataFrame()
    if len(comps):
        lines += ["Verdicts in detail:", ""]
        lines += [f"- `{c.variant}`: **{c.verdict}** — {c.reason} (rank test {c.rank_test}: "
                  f"{c.rank_note or 'p_adj ' + fmt_p(c.p_rank_adj)}{'; ' + c.note if c.note else ''})"
                  for c in comps.itertuples()]
        lines += [""]
    excluded = analysis["excluded"][analysis["excluded"]["grid"] == name]
    if len(excluded):
        table = excluded.assign(seed=excluded["seed"].map(lambda s: "–" if pd.isna(s) else str(int(s))),
                                reason=excluded["reason"].fillna("").astype(str))
        lines += ["Excluded runs (counted, never averaged):", "",
                  markdown_table(table[["variant", "seed", "run_id", "status", "reason"]].fillna("–")), ""]
    if grid.cost_columns:
        table = pd.DataFrame([{"variant": v, **{c: fmt_num(costs[c]) for c in grid.cost_columns}}
                              for v, costs in grid.costs.items()])
        lines += ["Cost per variant (median over runs):", "", markdown_table(table), ""]
    return lines


def render_grid(grid: GridFindings, analysis: dict, source: str, folder: str) -> list[str]:
    """A grid's section: what it compares, its tables and figures, the command that regenerates it."""
    lines = [f"## Grid `{grid.grid}`", ""]
    if grid.skipped is not None:
        return lines + [f"Not analysed: {grid.skipped}.", ""]
    metric = analysis["metric"]
    if grid.description:
        lines += [grid.description, ""]
    lines += [f"Reference `{grid.order[0]}`; tests {'paired by seed' if grid.paired else 'unpaired'}; datasets "
              + (", ".join(f"`{d}`" for d in grid.datasets) or "unknown")
              + "; " + exclusion_line(analysis, grid.grid) + ".", ""]
    if grid.left_out:
        lines += ["Variants left out of this grid: " + "; ".join(
            f"`{v}` ({reason})" for v, reason in grid.left_out.items()) + ".", ""]
    lines += _grid_tables(grid, analysis)
    if grid.seeds_data is not None:
        lines += [figure_link(folder, grid.figure("seeds"), f"{grid.grid}: per-seed {metric} over box plots")]
    if grid.sweep_key:
        lines += [figure_link(folder, grid.figure("sweep"),
                              f"{grid.grid}: mean {metric} against {grid.sweep_key} with the 95% t interval of the mean")]
    if grid.curve_metric:
        lines += [figure_link(folder, grid.figure("curves"),
                              f"{grid.grid}: {grid.curve_metric} per epoch (mean, 95% t band over seeds)")]
    extra = "" if metric == "test_top1" else f" --metric {metric}"
    return lines + ["Regenerate: " + command("analyze", "--results", source, "--grid", grid.grid + extra, "--format", "md"),
                    ""]


def render_pareto(pareto: ParetoFindings, metric: str, source: str, folder: str) -> list[str]:
    """"Accuracy against cost": the Pareto figures and whether fewer MACs meant faster (absent without figures)."""
    if not pareto.panels:
        return []
    lines = [figure_link(folder, p.name, f"{metric} against {p.cost} on {p.dataset} (" + ", ".join(p.grids)
                         + "), with the Pareto front") for p in pareto.panels]
    for c in pareto.correlations:
        lines += [f"Does fewer MACs mean faster here? On `{c.dataset}`, over the {c.networks} distinct networks "
                  f"above, the Spearman rank correlation of MACs with measured CPU latency (batch 1, 1 thread) "
                  f"is {c.rho:.2f} (p = {fmt_p(c.p)}; 1 would mean the MAC order is the "
                  "latency order); `run.py bench latency` adds throughput at batch 128 for the baselines.", ""]
    return ["## Accuracy against cost", "",
            "Each point is one variant of one grid: mean over seeds with its 95% CI against the median cost; "
            "the dashed line is the Pareto front (no other point is cheaper and at least as accurate). One figure "
            "per dataset, since accuracies on different test sets are not comparable.", "", *lines,
            "Regenerate: " + command("analyze", "--results", source, "--format", "csv") + " (means, CIs) and "
            "the cost tables of the grid sections.", ""]


# ------------------------------------------------------------------------------- interpretation, limits
def render_interpretation(text: str | None, correction: str) -> list[str]:
    """"Interpretation choices": docs/interpretation.md (``text``) and the analysis choices."""
    lines = ["## Interpretation choices", ""]
    if text is not None:
        text = re.sub(r"\A# [^\n]*\n+", "", text)  # its title duplicates this section's
        lines += ["From `docs/interpretation.md`:", "", demote(text), ""]
    else:
        lines += ["The interpretation of the paper's ambiguities is recorded in `docs/interpretation.md` "
                  "(not present when this report was generated).", ""]
    return lines + [
        "Analysis choices (see `docs/analysis.md`):", "",
        "- Primary test: Welch's t-test, or the paired t-test when a grid pairs runs by seed; the rank "
        "test (Mann-Whitney U / Wilcoxon signed-rank) is reported beside it as a check where its smallest "
        "possible p, after the correction, is below alpha, and said to be omitted elsewhere.",
        "- Intervals: t intervals throughout (the bootstrap undercovers at these seed counts); a grid's "
        "difference intervals are Bonferroni-simultaneous, so one that excludes 0 always has a significant "
        "corrected test.",
        f"- Multiplicity: `{correction}` across the comparisons of each grid (Benjamini-Hochberg "
        "also in the JSON/CSV output).",
        "- 'Comparable accuracy' is only claimed from a non-inferiority / TOST test with the stated margin, "
        "never from a non-significant difference test.",
        f"- Cost claims are supported when the measured ratio is within {COST_TOLERANCE:.0%} of the paper's "
        "(MAC counting conventions differ between tools).",
        "- Failed, corrupt, unfinished and duplicate runs are excluded and counted; they are never averaged.", ""]


def _measurement_lines(lim: LimitationsFindings) -> list[str]:
    """Latency spread, training budgets and hardware."""
    lines = []
    if lim.latency_spread:
        s = lim.latency_spread
        lines.append(f"- Each run measures its network's latency once, after training, under whatever else the machine "
                     f"was doing; over the {s.networks} networks trained more than once, the slowest of a network's runs "
                     f"measured {s.median:.2f}x its fastest (median; up to {s.max:.2f}x). So the looks take a latency ratio "
                     "from `run.py study-costs`, which measures the study's networks side by side in one process "
                     "(`results/study_costs.json`), wherever it has both networks, and say which source they used; "
                     "other latency ratios (the appendix's) are medians over runs, rougher than the accuracy figures: "
                     "the appendix's runs are mostly engine version 1's, whose DyClotNet normalised its bottleneck "
                     "otherwise, so today's networks measured side by side would not be the networks they trained.")
    lines.append("- Results come from the suite's training protocol, not the paper's full schedule; absolute "
                 "accuracies are therefore lower, and only differences between variants are compared with claims.")
    for b in lim.budgets:
        train = {"None": "all the training images left after validation",
                 "?": "an unrecorded number of training images per class"}.get(
            b.train_per_class, f"{b.train_per_class} training images per class")
        test = {"None": "the whole test set", "?": "an unrecorded test subset"}.get(
            b.test_per_class, f"{b.test_per_class} test images per class")
        lines.append(f"- Short budget: the `{b.name}` protocol trains {b.epochs} epochs on {train} "
                     f"(batch {', '.join(b.batch_sizes)}, peak learning rate {', '.join(b.learning_rates)}; a grid's "
                     "networks share one rate unless a learning-rate search on validation chose each its own) "
                     f"and tests on {test}; differences that need longer training to appear cannot appear here.")
    if not lim.env_runs:
        lines.append("- Hardware unknown: no run recorded an `env.json`.")
    elif lim.gpus:
        lines.append(f"- {lim.gpu_runs} of {lim.env_runs} runs used a GPU ({', '.join(lim.gpus)}); "
                     "the latency column is CPU batch-1 latency in every case.")
    else:
        lines.append("- CPU only: no run here used a GPU, and every latency and speed figure is a CPU figure.")
    return lines


def render_limitations(lim: LimitationsFindings) -> list[str]:
    seeds = (f"- Seeds per variant range from {lim.seeds_min} to {lim.seeds_max}; with few seeds only large differences "
             "are detectable (see the seeds-needed figures in the verdicts).")
    if lim.sequential_seeds:  # the fixed-sample analysis is the appendix's first pass; the questions took their own
        fewest, most = lim.sequential_seeds
        seeds = (f"- In the fixed-sample analysis (the appendix's first pass), seeds per variant range from "
                 f"{lim.seeds_min} to {lim.seeds_max}; with few seeds only large differences are detectable there (see "
                 "the seeds-needed figures in its verdicts). The second edition's decided questions took "
                 + (f"{fewest}" if fewest == most else f"{fewest} to {most}")
                 + " seeds a variant, as many as the sequential rule needed (the questions at a glance).")
    lines = ["## Limitations", "", seeds,
             (f"- {lim.excluded_runs} of {lim.runs} run folders were excluded "
              "(failed, corrupt, unfinished or duplicate); if failures depend on the variant, the surviving runs "
              "are a biased sample." if lim.excluded_runs else
              f"- None of the {lim.runs} run folders was excluded (failed, corrupt, unfinished or duplicate).") + (
                 f" The {lim.diverged_search_runs} learning-rate search run(s) whose training loss became non-finite "
                 "are not excluded: they count in their search as finished with validation top-1 0 (Learning rates, "
                 "chosen on validation)." if lim.diverged_search_runs else ""),
             "- Latency is measured on the machine that ran the experiments (CPU, batch 1, median) and does not "
             "transfer to other hardware; MACs depend on the counting tool's conventions.",
             *_measurement_lines(lim),
             "- Datasets: " + ", ".join(f"`{d}`" for d in lim.datasets) + (
                 "; CIFAR-10 is the JPEG re-encoding, not the original arrays (Data, in the appendix)"
                 if "cifar10-jpeg" in lim.datasets else "") + ".",
             "- Every choice the paper leaves open was fixed by us (Interpretation choices, in the appendix); the ones that can "
             "change results are grids of their own, the others are not tested here.",
             "- The `baselines` grid compares DyClotNet-0.5 with the efficient nets at width 0.5 and the seed "
             "methods on ResNet-20, not the width-1.0 set, which the CPU budget cannot afford; the paper's own "
             "comparison (DyClotNet-2.0 vs MobileNetV2-1.0) is the `paper-claim` grid (on a GPU, its folder "
             "`paper-claim-BUDGET`).",
             "- The paper's own budget (the `paper` protocol: all of CIFAR-10, 200 epochs) is not run: it holds no "
             "validation split, on which the study chooses every network's learning rate, so the second edition "
             "cannot run under it as designed; the GPU budgets (`gpu`, `gpu-15`: all of CIFAR-10 less 1,000 "
             "validation images) stand in for it (docs/study.md, section 5)."]
    if lim.paired_below_6:
        lines.append("- With fewer than 6 pairs the exact Wilcoxon signed-rank test cannot reach p < 0.05 "
                     "(minimum two-sided p = 0.0625 for 5 pairs, 0.25 for 3), so it is omitted there; the paired "
                     "t-test is the primary test.")
    return lines + [""]


# ------------------------------------------------------------------------------ the claims table
def _signed_ci(estimate: float, ci: tuple[float, float]) -> str:
    return f"{estimate:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _claim_published(c: PaperClaim) -> str:
    if c.kind is Kind.GAIN:
        return f"+{c.published:g} points"
    if c.kind is Kind.RATIO:
        return f"{c.published:g}x"
    if c.kind is Kind.BOUND:
        return f"C1/C0 <= {c.published:.4g}"
    if c.kind is Kind.NONINFERIOR:
        return f"no figure (margin ±{c.published:g} points: ours)"
    return "no figure"


def _claim_measured(c: PaperClaim) -> str:
    d, cost = c.decision, c.cost
    if d is not None and d.ended:
        return (f"`{d.claimed}` - `{d.other}`: {_signed_ci(d.estimate, d.ci)} ({percent(d.level)} repeated CI, "
                f"{d.seeds} seeds)")
    if cost is not None and c.kind is Kind.RATIO:
        unit = "MACs" if c.key == "macs" else "parameters"
        return f"{cost.value:.2f}x ({cost.numerator:,} / {cost.denominator:,} {unit})"
    if cost is not None and c.kind is Kind.BOUND:
        return (f"C1/C0 {cost.low:.2f}-{cost.high:.2f} over DyClotNet's layers ({cost.approx_high:.2f} at most with "
                f"the depthwise term dropped); the DCT module: {cost.share_low:.1%}-{cost.share_high:.1%} of the "
                "bottleneck's MACs")
    return "–"


def _claim_verdict(c: PaperClaim, margin: float) -> str:
    text = f"**{c.verdict}**"
    if c.decision is not None and c.decision.within_margin and c.verdict is Verdict.SUPPORTED:
        # significant, yet the interval lies within ±margin: smaller than the effect the study set out to detect
        text += f", but smaller than the {margin:g}-point effect of interest"
    return text


def _claim_evidence(c: PaperClaim, glance: dict[str, list[GlanceRow]], source: str) -> str:
    d = c.decision
    if c.verdict is Verdict.NOT_TESTABLE:
        return f"no {DATASET_NAMES.get(c.dataset, c.dataset)} data on this machine; {CIFAR100_PATH}"
    if c.waits_for is not None:  # where the question's runs stand: the CPU's, and each GPU budget that has begun
        rows = [r for i, r in enumerate(glance.get(c.waits_for, [])) if i == 0 or r.stage is not Stage.NOT_RUN]
        where = " (" + "; ".join(f"`{r.folder}`: {_stage_text(r)}" for r in rows) + ")" if rows else ""
        return f"waits for question ({c.waits_for}) to be decided{where}"
    if d is not None:
        also = "".join(f"; also decided in `{o.grid}` (look {o.look}, not pooled): `{o.claimed}` - "
                       f"`{o.other}` {_signed_ci(o.estimate, o.ci)} ({percent(o.level)} repeated CI, {o.seeds} seeds)"
                       for o in c.also)
        ended = "decided" if d.label in DECIDED_LABELS else "reached the cap of its schedule undecided"
        return (f"second edition, question ({d.question}) {ended} at look {d.look} (`{source}/{d.grid}/sequential.json`)"
                + also)
    if c.cost is not None:
        command_name = "claim-costs" if c.cost.file == "claim_costs.json" else "dct-bound"
        reading = f"; {c.cost.reading}" if c.cost.reading else ""
        return f"cost count, `{source}/{c.cost.file}` ({command(command_name, '--out', f'{source}/{c.cost.file}')}){reading}"
    file = "dct_bound.json" if c.kind is Kind.BOUND else "claim_costs.json"
    return f"not counted yet: {command('dct-bound' if c.kind is Kind.BOUND else 'claim-costs', '--out', f'{source}/{file}')}"


def render_paper_claims(claims: tuple[PaperClaim, ...], glance: tuple[GlanceRow, ...], source: str) -> list[str]:
    """"The paper's claims": one row per claim in the paper's words, judged on the best evidence held."""
    by_question: dict[str, list[GlanceRow]] = {}
    for r in sorted(glance, key=lambda r: r.gpu):  # the CPU's row first, then the GPU budgets'
        if not any(seen.folder == r.folder for seen in by_question.get(r.key, [])):
            by_question.setdefault(r.key, []).append(r)
    table = pd.DataFrame([{"claim (the paper's words)": f"\"{c.words}\"", "where": c.where,
                           "published": _claim_published(c), "measured [interval]": _claim_measured(c),
                           "verdict": _claim_verdict(c, MARGIN), "evidence": _claim_evidence(c, by_question, source)}
                          for c in claims])
    return ["## The paper's claims", "",
            "One rule (docs/analysis.md, \"The claims table\"). An accuracy claim is judged only by a comparison "
            "the second edition's rule ended (decided, or inconclusive at its cap), turned the claim's way round: "
            "*supported* when its repeated interval "
            f"lies above 0 and reaches the published gain (for \"replace\": lies above -{MARGIN:g} points), *not "
            f"supported* when it lies wholly below the published gain (for \"replace\": below -{MARGIN:g}) or the "
            "comparison was decided equivalent where a gain was claimed, *inconclusive* otherwise, *not tested yet* "
            "until then. A cost claim is counted from the models: *supported* "
            f"within {CLAIM_TOLERANCE:.0%} of the published figure. First-pass verdicts: the appendix.", "",
            markdown_table(table), ""]


# ------------------------------------------------------------------------------ budget, learning rates
def and_list(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def _budget_outcome(recommendation: Recommendation, glance: tuple[GlanceRow, ...]) -> list[str]:
    """What the questions decided at the ``recommendation``'s budget took on its device (CPU-hours, or a GPU's
    device-minutes), beside what its pilot planned (a plan is checked against its outcome); nothing before one is
    decided there."""
    on_gpu = recommendation.device == "gpu"
    decided = [r for r in glance if r.stage is Stage.DECIDED and r.seeds is not None and r.gpu is on_gpu
               and (r.gpu_hours if on_gpu else r.cpu_hours) is not None and r.protocol in (None, recommendation.budget)]
    if not decided or recommendation.hours is None:
        return []
    def took(r: GlanceRow) -> str:
        if not on_gpu:
            return f"{r.cpu_hours:.1f} CPU-h"
        unknown = r.gpu_runs_sharing_unknown
        return _per_device(r.gpu_hours, "gpu") + (f" and {unknown} runs whose device share was not recorded"
                                                   if unknown else "")
    questions: dict[tuple[str, str], list[GlanceRow]] = {}  # a question's comparisons share its folder and cost
    for r in decided:
        questions.setdefault((r.key, r.folder), []).append(r)
    def seeds(rows: list[GlanceRow]) -> str:
        if len(rows) == 1:
            return str(rows[0].seeds)
        return and_list([f"{r.seeds} (`{r.variant}`)" for r in rows])
    each = "; ".join(f"({rows[0].key}) {seeds(rows)} seeds a variant, {took(rows[0])}, search included"
                     for rows in questions.values())
    return [f"What the questions decided at this budget took (the questions at a glance): {each}. The pilot's "
            f"{_per_device(recommendation.hours, recommendation.device)} plan one of its own pairs at its own learning "
            "rate, without a search; the questions still open are planned from the main runs measured since "
            "(docs/study.md, \"The planning SD\").", ""]


def render_budget(budget: BudgetFindings, folder: str, glance: tuple[GlanceRow, ...] = ()) -> list[str]:
    """"Choosing the budget": the pilot's table, the recommendation beside what the decided questions took
    (``glance``) and the figure ``budget_pilot`` in ``folder``."""
    lines = ["## Choosing the budget", "",
             f"The pilot (docs/study.md) trains the core pairs under each candidate budget (grids `pilot-<protocol>`). "
             f"Seeds and CPU-hours are planned for a smallest effect of interest of {budget.effect:g} points with 80% power "
             "under the sequential rule, with the paired SD's 80% upper confidence bound (never the observed "
             "effect); `E[seeds]` is the expected number of seeds per variant when the effect is true, CPU-h "
             "the cost of both variants' expected seeds. Regenerate: `python run.py plan --results "
             f"{budget.results}`.", ""]
    pending = (["Still to pilot (running or planned in the background; runs are committed as they finish): "
                + ", ".join(f"`{b}` ({ok} of {PILOT_RUNS} runs finished ok)" for b, ok in budget.pending) + ".", ""]
               if budget.pending else [])
    cpu_rows = [r for r in budget.rows if r.device == "cpu"]
    if not cpu_rows:
        return lines + ["No pilot grid has 2 paired seeds yet: the pilot is running or planned.", "", *pending,
                        *_gpu_budget_lines(budget, glance)]
    return lines + [markdown_table(plan_table(cpu_rows)), "",
                    f"Recommended budget: **{budget.recommendation.budget or 'none yet'}** "
                    f"({recommendation_text(budget.recommendation)}).", "", *_budget_outcome(budget.recommendation, glance),
                    *pending,
                    f"![paired SD and CPU-hours per decided question against the budget]({folder}/budget_pilot.png)", "",
                    *_gpu_budget_lines(budget, glance)]


def _gpu_budget_lines(budget: BudgetFindings, glance: tuple[GlanceRow, ...]) -> list[str]:
    """The GPU's budget (docs/study.md section 5): its pilot's table once it has rows, the recommendation beside what
    the questions decided on it took (``glance``), and the GPU budgets still to pilot; nothing for results without
    the GPU's recommendation."""
    if budget.gpu_recommendation is None:
        return []
    gpu_rows = [r for r in budget.rows if r.device == "gpu"]
    pending = (" Still to pilot on a GPU: " + ", ".join(f"`{b}` ({ok} of {PILOT_RUNS} runs finished ok)"
                                                      for b, ok in budget.gpu_pending) + "."
               if budget.gpu_pending else "")
    return ([markdown_table(plan_table(gpu_rows)), ""] if gpu_rows else []) + [
        f"GPU budget, for (c) and (d) (docs/study.md section 5): **{budget.gpu_recommendation.budget or 'none yet'}** "
        f"({recommendation_text(budget.gpu_recommendation)}).{pending}", "",
        *_budget_outcome(budget.gpu_recommendation, glance), *gpu_plan_lines(budget.gpu_plans)]


def gpu_plan_lines(plans: dict[str, tuple[str, QuestionPlan]]) -> list[str]:
    """The GPU's questions not decided yet, each planned at the GPU's budget in device-minutes (a run's training
    seconds over the runs sharing the GPU with it); nothing before a GPU pilot has rows."""
    if not plans:
        return []
    texts = {q.key: q.text for q in SECOND_EDITION_QUESTIONS}
    return ["The GPU's questions not decided yet, planned at the GPU's budget (`run.py plan`; device-minutes: a "
            "run's training seconds over the runs that shared the GPU with it; a 10-minute GPU batch trains for "
            "about 9 of them):", "", *(f"- ({key}) {texts[key]} (`{folder}`): {plan_text(plan)}."
                                        for key, (folder, plan) in plans.items()), ""]


def _pending_cell(pending, rate: str) -> str:
    """A widened candidate's cell: its finished runs' mean (how many), or – before any has finished."""
    if pending is None or rate not in pending.val_top1:
        return "–"
    return f"{pending.val_top1[rate]:.2f} ({pending.runs[rate]}{_diverged_note(pending, rate, in_brackets=True)})"


def _copied_note(copied: int) -> str:
    """An in-progress search's finished runs that copied a twin of another grid (experiments.reuse): trained once."""
    return (f" ({copied} of them copies of a twin run in another grid, not trained again; `reused_from` in their "
            "result.json)") if copied else ""


def _diverged_note(choice, rate: str, in_brackets: bool = False) -> str:
    """`` (2 diverged)``, or inside brackets already open ``; 2 diverged``, where ``rate``'s runs of ``choice``
    diverged (each scored 0); else nothing."""
    n = choice.diverged.get(rate, 0)
    return "" if not n else f"; {n} diverged" if in_brackets else f" ({n} diverged)"


def render_learning_rates(found: tuple[LearningRateSearch, ...], folder: str) -> list[str]:
    """"Learning rates, chosen on validation": one table (and figure) per search; nothing when none was made."""
    if not found:
        return []
    lines = ["## Learning rates, chosen on validation", "",
             "Before its main runs, each network a question compares is trained at every candidate peak learning rate "
             "(`run.py tune GRID --compare VARIANT`; on a GPU `run.py gpu-next GRID`, which searches first; docs/study.md) "
             "with seeds 1000 on, disjoint from the main runs'. "
             "The chosen rate (bold) has the best mean final *validation* top-1, ties to the smaller rate; no choice "
             "reads the test set. Where a network's best rate is an edge, every searched network gets one more rate "
             f"beyond it, up to {LR_EXTENSIONS} a side. The main runs record the rate in `config.json` (`protocol.lr`).",
             ""]
    for search in found:
        if search.problem:
            lines += [f"### `{search.grid}`", "", f"Not shown: {search.problem}.", ""]
            continue
        candidates = sorted({c for choice in search.choices for c in choice.val_top1} | set(search.candidates)
                            | set(search.widened), key=float)
        if search.runs_done is not None:
            rows = [{"network": f"`{choice.network}`",
                     **{f"lr {c}": (f"{choice.val_top1[c]:.2f} ({choice.runs[c]}{_diverged_note(choice, c, in_brackets=True)})"
                                    if c in choice.val_top1 else "–")
                        for c in candidates}} for choice in search.choices]
            lines += [f"### `{search.grid}` (protocol `{search.protocol}`): in progress", "",
                      f"{search.runs_done} of {search.runs_planned} runs finished{_copied_note(search.runs_copied)}; "
                      "no rate is chosen before every "
                      "candidate's seeds have finished. Mean final validation top-1 of the finished "
                      "runs per candidate (runs behind each mean in brackets; – where none has finished yet):", "",
                      markdown_table(pd.DataFrame(rows)) if rows else "No search run has finished.", ""]
        else:
            chosen_among = [c for c in candidates if c not in search.widened]
            edge = ({float(chosen_among[0]): "the lowest", float(chosen_among[-1]): "the highest"}
                    if len(chosen_among) > 1 else {})
            pending = {w.network: w for w in search.widened_top1}
            rows = [{"network": f"`{choice.network}`",
                     **{f"lr {c}": _pending_cell(pending.get(choice.network), c) if c in search.widened else
                        ("–" if c not in choice.val_top1 else
                         (f"**{choice.val_top1[c]:.2f}**" if float(c) == choice.lr else f"{choice.val_top1[c]:.2f}")
                         + _diverged_note(choice, c))
                        for c in candidates},
                     "chosen": f"{choice.lr:g}" + (f" ({edge[choice.lr]} candidate)" if choice.lr in edge else ""),
                     "runs per rate": ", ".join(sorted({str(n) for n in choice.runs.values()}))}
                    for choice in search.choices]
            lines += [f"### `{search.grid}` (protocol `{search.protocol}`)", "",
                      "Mean final validation top-1 per candidate:", "",
                      markdown_table(pd.DataFrame(rows)) if rows else "No network finished its search.", ""]
            at_edge = [f"`{choice.network}`" for choice in search.choices if choice.lr in edge]
            if search.widened and search.widened_runs is not None:
                done, planned = search.widened_runs
                lines += [f"Widened after the choice to {', '.join(search.widened)} (docs/study.md, section 2; in "
                          f"brackets, the runs behind each mean): {done} of {planned} of its runs finished. The choice "
                          "above, the rate the main runs were trained at, stands until all of them have finished.", ""]
            elif at_edge:
                lines += [f"Chosen at an edge of the candidates: {', '.join(at_edge)}. Their best rate may lie beyond "
                          f"it; {_cap_text(search, edge)}", ""]
        if any(choice.diverged for choice in (*search.choices, *search.widened_top1)):
            lines += ["A run that diverged (its training loss became non-finite, so it stopped) counts as finished "
                      "with validation top-1 0: its rate loses to any whose runs trained, and still counts as searched "
                      "(docs/study.md, section 2).", ""]
        if search.curves is not None:
            name = learning_rates.figure_name(search)
            lines += [f"![validation top-1 per epoch at each candidate rate]({folder}/{name}.png)", ""]
    return lines


def _cap_text(search: LearningRateSearch, edge: dict[float, str]) -> str:
    """Why a search chosen at an edge was not widened further: the cap stopped it on that side (counted from the
    rates it started from, where chosen.json records them), else the rule."""
    first = search.first_candidates
    searched = {float(c) for choice in search.choices for c in choice.val_top1}
    beyond = {"the highest": lambda rate: rate > max(first), "the lowest": lambda rate: rate < min(first)}
    capped = [side for rate, side in edge.items() if first and any(choice.lr == rate for choice in search.choices)
              and sum(map(beyond[side], searched)) >= LR_EXTENSIONS]
    if capped:
        return (f"the cap stopped the search there: {' and '.join(capped)} rate{'s lie' if len(capped) > 1 else ' lies'} "
                f"{LR_EXTENSIONS} widenings past the candidates the search started from, as far as it goes "
                "(docs/study.md, section 2).")
    return f"the search widens every network alike, up to {LR_EXTENSIONS} rates a side."


# ------------------------------------------------------------------------------ findings at a glance
def _per_device(hours: float, device: str) -> str:
    """``hours`` in ``device``'s unit: CPU-hours, or on a GPU device-minutes."""
    return f"{60 * hours:.0f} GPU-minutes" if device == "gpu" else f"{hours:.1f} CPU-hours"


def recommendation_text(r: Recommendation) -> str:
    """Why ``plan.recommend`` chose its budget, or none, in words."""
    match r.reason:
        case RecommendReason.NO_PILOT if r.device == "gpu":
            return "no GPU pilot has 2 paired seeds yet"
        case RecommendReason.NO_PILOT:
            return "no pilot runs yet (grids pilot-<protocol> with at least 2 paired seeds)"
        case RecommendReason.TOO_INACCURATE:
            return (f"no budget's reference reaches {r.min_accuracy:g}% test top-1 (best: {r.best[0]}, "
                    f"{r.best[1]:.1f}%): a larger budget must be piloted")
        case RecommendReason.UNANSWERED:
            return "; ".join(f"{b} reaches {r.min_accuracy:g}% test top-1, but its pilot has fewer than 2 paired seeds "
                             f"of: {', '.join(m)}" for b, m in r.missing.items())
        case RecommendReason.COST_UNKNOWN:
            return "the SD or the cost of every accurate budget is unknown, or needs more seeds than the cap"
    return f"{_per_device(r.hours, r.device)} per decided question, reference >= {r.min_accuracy:g}% top-1"


def plan_output(rows: list[BudgetRow], recommendation: Recommendation, gpu_recommendation: Recommendation,
                questions: dict[str, QuestionPlan], effect: float, power: float, fmt: str,
                gpu_questions: dict[str, tuple[str, QuestionPlan]] | None = None) -> list[str]:
    """What ``run.py plan`` prints, one string per echo: the pilot's tables (md; the CPU's, then the GPU's) or JSON,
    the recommended budgets (the CPU's and the GPU's), the questions' CPU plans and the GPU's questions' plans
    (``second_edition.gpu_plans``: those not decided yet, by key, with their folders)."""
    gpu_questions = gpu_questions or {}
    budget, why = recommendation.budget, recommendation_text(recommendation)
    gpu_why = recommendation_text(gpu_recommendation)
    if fmt == "json":
        return [json.dumps({"effect": effect, "power": power, "min_accuracy": recommendation.min_accuracy,
                            "rows": [asdict(r) for r in rows], "recommended": budget, "why": why,
                            "gpu": {"min_accuracy": gpu_recommendation.min_accuracy,
                                    "recommended": gpu_recommendation.budget, "why": gpu_why},
                            "questions": {key: asdict(plan) for key, plan in questions.items()},
                            "gpu_questions": {key: {"folder": folder, **asdict(plan)}
                                              for key, (folder, plan) in gpu_questions.items()}}, indent=2)]
    texts = {q.key: f"({q.key}) {q.text} (`{q.grid}`)" for q in SECOND_EDITION_QUESTIONS}
    tables = [markdown_table(plan_table(on)) for device in ("cpu", "gpu") if (on := [r for r in rows if r.device == device])]
    return tables + [
        f"\nrecommended budget: {budget or 'none'} ({why}); effect of interest {effect:g} points, "
        f"{power:.0%} power under the sequential rule (docs/study.md)",
        f"\nrecommended GPU budget, for (c) and (d): {gpu_recommendation.budget or 'none'} ({gpu_why})"] + [
        f"\n{texts[key]}: {plan_text(plan)}" for key, plan in questions.items()] + [
        f"\n({key}) on the GPU (`{folder}`, device-minutes): {plan_text(plan)}"
        for key, (folder, plan) in gpu_questions.items()]


def sd_source_text(source: SdSource) -> str:
    """Where a planning SD was measured, in words: a question's main runs, several pooled, or a pilot pair, its pairs
    and rate."""
    if source.question is not None:
        return f"({source.question})'s main runs {_pairs_text(source)}"
    if source.pooled:
        return f"{and_list([f'({key})' for key in source.pooled])}'s main runs pooled {_pairs_text(source)}"
    return f"the pilot's {source.pilot} {_pairs_text(source)}"


def _pairs_text(source: SdSource) -> str:
    """A planning SD's seed pairs and learning rate, in brackets; no rate where it is unknown."""
    rate = f", rate {source.lr:g}" if math.isfinite(source.lr) else ""
    return f"({source.pairs} pairs{rate})"


MACS_PROXY = "the pilot's DyClotNet-0.5 median x MACs ratio (study_costs.json)"
BYTES_PROXY = "the pilot's DyClotNet-0.5 median x bytes-per-image ratio (study_costs.json)"


def _amount(plan: QuestionPlan, hours: float) -> str:
    """``hours`` in the plan's unit, without it: CPU-hours, or on a GPU device-minutes."""
    return f"{hours:.1f}" if plan.device == "cpu" else f"{60 * hours:.0f}"


def _unit(plan: QuestionPlan) -> str:
    return "CPU-h" if plan.device == "cpu" else "GPU-min"


def cost_source_text(plan: QuestionPlan) -> str:
    """Where a plan's seconds a run come from (CPU-seconds, or device-seconds on a GPU): measured medians, the
    pilot's proxy scaled by MACs (CPU) or bytes per image (GPU), or both."""
    scale, proxy = ("MACs", MACS_PROXY) if plan.device == "cpu" else ("bytes per image", BYTES_PROXY)
    if plan.uncosted:
        return f"{scale} unknown: run `run.py study-costs`"
    what = f"{plan.device.upper()}-s/run"
    if not plan.measured_seconds:
        return f"{what}: {proxy}"
    known = ", ".join(f"`{n}` {plan.measured_seconds[n]:.0f}" for n in sorted(plan.measured_seconds))
    return f"{what} measured: {known}" + (f"; the others {proxy}" if plan.scaled else "")


def plan_text(plan: QuestionPlan) -> str:
    """A question's plan in words (``run.py plan``): what the effect of interest needs, what the main runs (looks to
    the device's cap) decide and cost, then the learning-rate search's cost."""
    where = f"at `{plan.budget}`" + ("" if plan.recommended else " (not yet a recommended budget)")
    source = sd_source_text(plan.sd_source)
    if plan.power_at_cap is None:
        return f"{where}: no usable paired SD from {source} (SD bound {plan.sd_upper:.2f}): cannot be planned"
    needs = (f"at most {plan.max_seeds} seeds per variant (E {plan.expected_seeds:.1f}) for {plan.power:.0%} power"
             if plan.max_seeds is not None
             else "more seeds than the plan searches")
    origin = "its own main runs, " if plan.sd_own else "the nearest recipe measured, "
    text = (f"{where}, SD bound {plan.sd_upper:.2f} from {origin}{source}, {plan.comparisons} comparison(s): "
            f"{plan.effect:g} points needs {needs}; {cap_text(plan)}")
    if plan.seeds_read:
        return f"{text}; the learning-rate search is done"
    if plan.tune_runs_left == 0:
        return f"{text}; the learning-rate search has no runs of its own left to train"
    if plan.tune_hours is None:
        return f"{text}; {_unit(plan)} unknown ({cost_source_text(plan)})"
    runs = plan.tune_runs_left
    return (f"{text}; before them, the learning-rate search's {runs} run{'s' * (runs != 1)} still to come: "
            f"{_amount(plan, plan.tune_hours)} {_unit(plan)} (the runs its grid.json plans less those finished; "
            f"before it starts, {len(LR_CANDIDATES)} rates x {TUNING_SEEDS} seeds per network, and {TUNING_SEEDS} more "
            "per network for each rate it is widened by where a best rate is an edge of the candidates; networks an "
            "earlier question searched are not counted: their runs are twins, copied)")


def cap_text(plan: QuestionPlan) -> str:
    """What the main runs, looks to the device's cap, decide and cost, in words."""
    looks = ", ".join(str(n) for n in plan_looks(plan.seed_cap))
    still = f" still to come past {plan.seeds_read} seeds" if plan.seeds_read else ""
    cost = (f", {_amount(plan, plan.hours)} {_unit(plan)}{still} expected, at most {_amount(plan, plan.cap_hours)} "
            f"({cost_source_text(plan)})"
            if plan.hours is not None and plan.cap_hours is not None else "")
    given = f"given that the rule went on at its look at {plan.seeds_read} seeds, " if plan.seeds_read else ""
    return (f"{given}the main runs (looks at {looks} seeds) declare the effect better with {plan.power_at_cap:.0%} power "
            f"in E {plan.expected_at_cap:.1f} seeds{cost}, and true effects of {plan.decidable_effect:.2f} points or "
            f"more better with {plan.power:.0%} power (smaller ones mostly end equivalent within the margin)")


def margin_verdict(label: str, estimate: float | None, within_margin: bool | None, margin: float | None) -> str:
    """A ``better``/``worse`` label with the second fact where it holds (docs/study.md, "A verdict that is
    significant and also inside the margin"): "worse by 0.33, smaller than the 0.5-point effect of interest";
    any other label as it is."""
    if label in ("better", "worse") and within_margin and estimate is not None and margin is not None:
        return f"{label} by {abs(estimate):.2f}, smaller than the {margin:g}-point effect of interest"
    return label


def _stage_text(r: GlanceRow) -> str:
    """Where a question's runs stand, in a few words."""
    if r.stage is Stage.DECIDED:
        verdict = margin_verdict(r.label, r.estimate, r.within_margin, r.margin) if r.label else "–"
        return verdict + (f" (recorded; the run files no longer pair: {r.pairing_problem})" if r.pairing_problem else "")
    if r.stage is Stage.LOOK:
        chosen = f"rates chosen (`{r.protocol}`); " if r.protocol else ""
        if r.runs_done is not None and r.runs_planned is not None and r.runs_done >= r.runs_planned:
            return (f"{chosen}look {r.training_look}: {r.runs_done}/{r.runs_planned} runs finished, read under "
                    "Decisions, look by look (not yet recorded in `sequential.json`)")
        return f"{chosen}look {r.training_look} training: {r.runs_done}/{r.runs_planned} runs"
    if r.stage is Stage.SEARCH:
        return f"learning-rate search: {r.runs_done}/{r.runs_planned} runs"
    return "not run"


def _spent(r: GlanceRow) -> str:
    if r.gpu:
        parts = [f"{bound}{60 * hours:.0f} GPU-min ({runs} run{'s' * (runs != 1)}{what})" for hours, runs, bound, what in (
            (r.gpu_hours, r.gpu_runs, "", ""),
            (r.gpu_wall_hours_sharing_unknown, r.gpu_runs_sharing_unknown, "≤ ", ", sharing not recorded"))
            if hours is not None]
        return "; ".join(parts) or "0 GPU-min"
    return f"{r.cpu_hours:.1f} CPU-h" if r.cpu_hours is not None else "–"


def _plan_cells(plan) -> dict[str, str]:
    usable = plan is not None and plan.power_at_cap is not None
    fmt = lambda value, spec: "–" if not usable or value is None else format(value, spec)  # noqa: E731
    return {"E seeds (cap)": f"{fmt(plan.expected_at_cap, '.1f')} ({plan.seed_cap})" if usable else "–",
            "power": fmt(plan.power_at_cap, ".0%") if usable else "–",
            "CPU-h E (max)": (f"{fmt(plan.hours, '.1f')} ({fmt(plan.cap_hours, '.1f')})" if usable else "–"),
            "search CPU-h": ("done" if plan.seeds_read or plan.tune_runs_left == 0 else fmt(plan.tune_hours, ".1f"))
            if usable else "–"}


def render_glance(rows: tuple[GlanceRow, ...]) -> list[str]:
    """"The questions at a glance": numbers in short cells, the method said once above the table."""
    if not rows:
        return []
    plan = next((r.plan for r in rows if r.plan is not None), None)
    budget = (f" at budget `{plan.budget}`" + ("" if plan.recommended else " (not yet a recommended one)")
              if plan is not None else "")
    looks = ", ".join(str(n) for n in plan_looks(CPU_SEED_CAP))
    if any(r.gpu for r in rows):
        looks += f" seeds a variant on the CPU, at {', '.join(str(n) for n in plan_looks(GPU_SEED_CAP))} on a GPU,"
    else:
        looks += " seeds a variant"
    table = pd.DataFrame([{
        "question": f"({r.key}) {r.question}", "comparison": f"`{r.folder}`" + (
            f": `{r.variant}` - `{r.reference}`" if r.variant else ""),
        "state": _stage_text(r),
        "difference [CI]": (f"{_signed_ci(r.estimate, r.ci)} ({percent(r.level)})"
                            if r.ci is not None and r.estimate is not None and r.level is not None else "–"),
        "seeds (look)": f"{r.seeds} ({r.look} of {r.looks})" if r.seeds is not None else "–",
        "spent": _spent(r), **_plan_cells(r.plan)} for r in rows])
    return ["## The questions at a glance", "",
            f"**How to read this.** Each question adds seeds in looks at {looks} until the "
            "group-sequential rule decides it (docs/study.md). *Difference* is variant - reference in test top-1 "
            "points, with the rule's repeated confidence interval at the last look and its level. *Spent*: "
            "CPU-hours of the question's second-edition runs and learning-rate search, or GPU-minutes of its runs "
            "under a GPU budget, in a folder of its own (`GRID-BUDGET`, never pooled with the CPU's): a run's training "
            "seconds over the runs that "
            "shared the GPU with it, or, where its env.json does not record them, its wall time: a sum marked ≤ is an "
            "upper bound, since such runs may have shared the GPU. The last four "
            "columns are the plan "
            f"(`run.py plan`){budget} for a question not yet decided: the main runs' expected seeds a variant (the "
            "cap), their power for a 0.5-point effect, their CPU-hours expected (most), and the CPU-hours of the "
            "learning-rate search's runs still to come before them (its networks an earlier question searched are "
            "copies: not counted). For a question part-way, whose last look read said continue, the plan is given "
            "that: its power and expected seeds among the simulated comparisons that went on that far, and the "
            "CPU-hours of the seeds still to come past that look." + (
                " A GPU row's plan, in GPU-minutes, is under \"Choosing the budget\"." if any(r.gpu for r in rows)
                else ""), "",
            markdown_table(table), ""] + _planning_sd_lines(rows)


def _planning_sd_lines(rows: tuple[GlanceRow, ...]) -> list[str]:
    """Where each planned question's paired SD comes from (docs/study.md, "The planning SD"), one entry a question:
    the plan's columns move with it, so a reader sees which runs set them."""
    plans = {r.key: r.plan for r in rows if r.plan is not None and not r.gpu}
    if not plans:
        return []
    def source(plan: QuestionPlan) -> str:
        if plan.sd_own:
            return f"its own main runs {_pairs_text(plan.sd_source)}"
        return f"the nearest recipe measured, {sd_source_text(plan.sd_source)}"
    each = "; ".join(f"({key}) {plan.sd_upper:.2f} from {source(plan)}" for key, plan in plans.items())
    return [f"The plan's paired SD (its 80% upper bound; docs/study.md, \"The planning SD\"): {each}.", ""]


# ------------------------------------------------------------------------------ decisions, look by look
def render_holm(reading: HolmReading | None) -> list[str]:
    """The study-wide Holm reading as one Markdown line; nothing without one."""
    if reading is None:
        return []
    parts = "; ".join(f"{name} {label}: stage-wise p {p:.2g}, Holm {adjusted:.2g} (fixed-sample p {fixed:.2g}, Holm "
                      f"{fixed_adjusted:.2g})" for name, label, p, adjusted, fixed, fixed_adjusted in zip(
                          reading.comparisons, reading.labels, reading.p_stagewise, reading.p_holm, reading.p_fixed,
                          reading.p_fixed_holm, strict=True))
    held = sum(reading.holds)
    return [f"Sensitivity, study-wide (docs/study.md, section 3): Holm over the {len(reading.comparisons)} comparisons "
            f"decided better or worse, each question having spent its own {reading.alpha:g}: {parts}. "
            f"{held} of {len(reading.comparisons)} hold at {reading.alpha:g} family-wise.", ""]


LOOKS_INTRO = (
    "Every look the rule made (`run.py ablate GRID --until-decided` on the CPU, `run.py gpu-next GRID --until-decided` "
    "on a GPU), recomputed here from the run files under the "
    "design its `sequential.json` records (`evidence.decisions.look_history`): at each look, the paired differences "
    "*variant - reference* of test top-1 over seeds 0 to n-1, their mean, the repeated confidence interval at the "
    "look's level, the paired t-test's p-value and the look's nominal level. A comparison is decided *better* or "
    "*worse* at the first look whose p-value is below the nominal level, *equivalent* when its equivalence (TOST) "
    "interval, at 1 - 2 x the look's one-sided nominal level (docs/study.md, section 3), lies within the margin; it "
    "gets no more seeds after that.")


def _probability(p: float) -> str:
    """A p-value or nominal level: 4 decimals, or 2 significant digits below 0.0001 (a GPU schedule's early looks
    spend almost nothing), never a bare 0.0000."""
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def _ci(state: dict) -> str:
    low, high = state["ci"]
    return f"[{low:+.2f}, {high:+.2f}] ({percent(1 - state['boundary'])})"


def _margin_detail(state: dict) -> str:
    """The equivalence test behind ``margin_verdict`` for one look's record
    (``evidence.decisions.look_history``), as a sentence; "" unless the look is ``better``/``worse`` and
    ``within_margin``."""
    if state.get("label") not in ("better", "worse") or not state.get("within_margin"):
        return ""
    (p_low, p_high), level, (low, high) = state["tost_p"], state["tost_level"], state["tost_ci"]
    return (f" The difference is also smaller than the {state['margin']:g}-point effect of interest: the equivalence "
            f"test at this look's level passes too (TOST p {p_low:.2g} and {p_high:.2g}, both below the one-sided level "
            f"{level:.4f}; the {percent(1 - 2 * level)} repeated interval [{low:+.2f}, {high:+.2f}] lies within "
            f"±{state['margin']:g}). The rule's label stays *{state['label']}*.")


def _outcome(c: ComparisonLooks, reference: str, margin: float) -> str:
    """The last look's outcome in words: decided (which way, by how much), or still open."""
    s = c.looks[-1]
    where = f"at look {s['look']} ({s['n']} seeds a variant)"
    if s["label"] in ("better", "worse"):
        low, high = sorted(abs(x) for x in s["ci"])
        return (f"Decided {where}: `{c.variant}` is {s['label']} than `{reference}` by {abs(s['estimate']):.2f} points "
                f"(repeated CI {low:.2f} to {high:.2f}).{_margin_detail(s)}")
    if s["label"] == "equivalent":
        return f"Decided {where}: `{c.variant}` is equivalent to `{reference}` within ±{margin:g} points."
    return f"{s['label'][0].upper()}{s['label'][1:]} {where}."


def _ahead(c: ComparisonLooks) -> str:
    """The variant's runs past its last look's seeds, if any, and whether a look will use them."""
    if not c.ahead:
        return ""
    use = ("They enter the next look." if c.looks[-1]["label"] == "continue" else
           "They are not analysed: the design fixes each look's seeds, and no look follows a decision.")
    return (f" {c.ahead} more seed(s) of `{c.variant}` finished past these, trained ahead by workers that would "
            f"otherwise have idled (their training time is counted in the glance's *spent*). {use}")


def _record_note(c: ComparisonLooks) -> list[str]:
    """A line where the recomputed outcome differs from the recorded one (e.g. a look's runs finished after the
    process that trains them stopped: the next ``--until-decided`` run records it)."""
    last = c.looks[-1] if c.looks else {"label": "continue", "look": 0}
    recorded = c.recorded or {}
    if (recorded.get("label"), recorded.get("look")) == (last["label"], last["look"]) or (
            str(recorded.get("label", "")).startswith("stopped") and recorded.get("look") == last["look"]):
        return []
    return [f"- `{c.variant}`: `sequential.json` records *{recorded.get('label')}* after look {recorded.get('look')}; "
            f"the run files now give *{last['label']}* after look {last['look']} (the next `--until-decided` run "
            "records it).", ""]


def _cost_sentence(c: ComparisonLooks, reference: str) -> str:
    """The variant's cost against the reference: params and MACs from the main runs; CPU latency measured side by
    side where ``study_costs.json`` has both networks, else the runs' medians, said to be rough."""
    counted = ", ".join(f"{name} {ratio:.2f}x" for name, ratio in c.cost_ratios if name != "latency")
    latency = [ratio for name, ratio in c.cost_ratios if name == "latency"]
    parts = [f"{counted} (medians of the main runs)"] if counted else []
    if latency:
        parts.append(f"CPU latency {latency[0]:.2f}x (batch 1, 1 thread, the two networks measured side by side: "
                     "`run.py study-costs`)" if c.latency_side_by_side else
                     f"CPU latency {latency[0]:.2f}x (medians of the main runs, each measured once after training under "
                     "the load of its moment: rough)")
    return f" Cost of `{c.variant}` against `{reference}`: {'; '.join(parts)}." if parts else ""


def render_looks(records: tuple[QuestionLooks, ...], folder: str) -> list[str]:
    """"Decisions, look by look" as Markdown, with the figure of each question in ``folder``."""
    if not records:
        return []
    lines = ["## Decisions, look by look", "", LOOKS_INTRO, ""]
    for r in records:
        lines += [f"### {r.question} (`{r.folder}`, protocol `{r.protocol}`)", "",
                  f"Design, fixed before the first look: reference `{r.reference}`; looks at "
                  f"{', '.join(map(str, r.schedule))} seeds a variant; margin ±{r.margin:g} points; alpha {r.alpha:g} "
                  f"split over {len(r.comparisons)} comparison(s); {r.rule}.", ""]
        if r.refused:
            lines += [f"No look is shown: the runs do not pair ({r.refused}).", ""]
            continue
        rows = [{"comparison": f"`{c.variant}` - `{r.reference}`", "look": s["look"], "seeds a variant": s["n"],
                 "difference": f"{s['estimate']:+.2f}", "repeated CI (level)": _ci(s), "p": _probability(s["p"]),
                 "nominal level": _probability(s["boundary"]), "outcome": s["label"]}
                for c in r.comparisons for s in c.looks]
        if not rows:
            lines += ["Look 1's seeds have not all finished yet.", ""]
            continue
        lines += [markdown_table(pd.DataFrame(rows)), ""]
        for c in r.comparisons:
            if not c.diffs:
                continue
            seeds = ", ".join(f"{d:+.2f}" for d in c.diffs)
            lines += [f"- {_outcome(c, r.reference, r.margin)} Per seed (0 to {len(c.diffs) - 1}): {seeds}; paired SD "
                      f"{np.std(c.diffs, ddof=1):.2f}. Mean test top-1 over these seeds: `{c.variant}` {c.top1[0]:.2f}, "
                      f"`{r.reference}` {c.top1[1]:.2f}." + _cost_sentence(c, r.reference) + _ahead(c)]
        lines.append("")
        for c in r.comparisons:
            lines += _record_note(c)
        lines += [f"![per-seed differences and each look's repeated confidence interval]({folder}/{r.figure}.png)", ""]
    return lines


# ---------------------------------------------------------------------------------------- questions
QUESTIONS_INTRO = ("Each row compares a variant with its grid's reference: the difference in the primary metric "
         "(variant minus reference, points) with its Bonferroni-simultaneous 95% t interval (each interval at "
         "1 - 0.05/m for the grid's m comparisons, so one that excludes 0 always has a significant corrected "
         "test) and the grid's multiplicity-corrected p-value, "
         "and the variant's median cost relative to the reference (above 1x: the variant costs more). "
         "'–' means not measured. Verdict rules: `docs/analysis.md`. Runs copied between grids (twins) make "
         "some grids share runs; such a comparison is shown once, since it is not a replication.")
UNSETTLED_NOTE = (
    "Planned, not post-hoc: seeds per variant for 80% power to detect the smallest effect of interest "
    "(a true difference of 0.5 points, `--detect`), and to show non-inferiority at the margin if the true "
    "difference is 0, at the Bonferroni level alpha / m of the grid's m comparisons, with the SD taken "
    "as the 80% upper confidence bound of the observed one (the observed SD is too small half the "
    "time); paired or Welch t-test power, as in the grid's test; '–' where no feasible number would. "
    "The observed difference plays no part: power computed from it says nothing the p-value does not.")


def _comparison_table(rows: tuple[QuestionRow, ...]) -> pd.DataFrame:
    return pd.DataFrame([{
        "grid": f"`{r.grid}`", "data": r.data, "variant - reference": f"`{r.variant}` - `{r.reference}`",
        "n": f"{r.n}/{r.n_ref}",
        "diff [simultaneous 95% CI]": "–" if not math.isfinite(r.diff) else f"{r.diff:+.2f} {fmt_ci(r.ci_low, r.ci_high)}",
        "p (adj)": fmt_p(r.p_adj), "verdict": r.verdict,
        **{f"{label} ratio": "–" if ratio is None else f"{ratio:.2f}x" for label, ratio in r.cost_ratios.items()}}
        for r in rows])


def _unsettled_table(rows: tuple[UnsettledRow, ...]) -> pd.DataFrame:
    seeds = lambda n: "–" if n is None else str(n)  # noqa: E731
    return pd.DataFrame([{
        "grid": f"`{r.grid}`", "variant - reference": f"`{r.variant}` - `{r.reference}`", "n now": f"{r.n}/{r.n_ref}",
        "observed diff": f"{r.diff:+.2f}" if math.isfinite(r.diff) else "–",
        f"seeds to detect {fmt_num(r.effect_of_interest)} points": seeds(r.seeds_needed),
        f"seeds to show non-inferiority (margin {fmt_num(r.margin)})": seeds(r.seeds_needed_noninf)} for r in rows])


def render_question(q: QuestionFindings) -> list[str]:
    """One question's subsection."""
    lines = [f"### Q{q.number}. {q.title}", ""] + ([q.reading, ""] if q.reading else [])
    if q.rows:
        verdicts = Counter(r.verdict for r in q.rows)
        lines += [markdown_table(_comparison_table(q.rows)), "",
                  "Verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) + ".", ""]
    lines += [f"- `{r.grid}`: `{r.variant}` - `{r.reference}` uses the same runs as the `{r.shown_in}` row (copied "
              "twins) and is not shown twice." for r in q.repeats] + ([""] if q.repeats else [])
    if q.flagged:
        hits = ", ".join(f"`{f.grid}` `{f.variant}` ({f.flagged} of {f.runs} runs)" for f in q.flagged)
        lines += [f"- Training health: flagged runs in {hits}; their rows compare training failures under the "
                  "shared schedule as much as networks (section Training health).", ""]
    if q.silent:
        lines += ["Results present but no comparison to show (fewer than two variants with usable runs, or the "
                  "grid could not be analysed; see its section): " + ", ".join(f"`{g}`" for g in q.silent) + ".", ""]
    if q.pareto is not None:
        lines += [f"- Mean accuracy against {p.cost}: `{p.reference}` is **{'on' if p.on_front else 'not on'}** the "
                  f"Pareto front of `{p.grid}` (front: {', '.join(f'`{v}`' for v in p.front)}; from means only, so a "
                  "point near the front may swap sides within its CI)." for p in q.pareto] + [""]
    if q.claims:
        lines += ["Tested as claims (**First pass: paper claims** below):", ""]
        lines += [f"- {c.claim}: {claim_measured(c)}; **{c.outcome.verdict}** ({claim_reason(c)})." for c in q.claims]
        lines += [""]
    if q.absent:
        lines += ["Not answered yet, no results in this results directory (not run, or not finished): "
                  + ", ".join(f"`{g}`" for g in q.absent) + ".", ""]
    return lines


def render_questions(questions: QuestionsFindings) -> list[str]:
    """The "Questions and answers" section: one subsection per question, then the seeds still needed."""
    answered = [q for q in questions.questions if q.rows or q.repeats or q.silent]
    if not answered and not questions.unsettled:  # e.g. a small grid of its own: nothing of the study here
        return []
    lines = ["## Questions and answers", "", QUESTIONS_INTRO, ""]
    for question in answered:
        lines += render_question(question)
    lines += [f"### Q{len(questions.questions) + 1}. How many seeds would each unsettled question need?", ""]
    if questions.unsettled:
        return lines + [markdown_table(_unsettled_table(questions.unsettled)), "", UNSETTLED_NOTE, ""]
    return lines + ["No comparison is inconclusive.", ""]


LINE_LIMIT = 600  # no line of the report's files is longer (tests/test_report_committed.py)


def fold_long_lines(text: str, limit: int = LINE_LIMIT) -> str:
    """Markdown with every prose line longer than ``limit`` broken at sentence ends, a sentence still too long at
    '; ', then at ', ': a line break inside a paragraph renders as a space, so the page reads the same. Table rows
    are left as they are: their cells must be short at the source."""
    def fold(line: str, seps: tuple[str, ...] = (". ", "; ", ", ")) -> list[str]:
        if len(line) <= limit or line.startswith("|"):
            return [line]
        for i, sep in enumerate(seps):
            parts = line.split(sep)
            if len(parts) == 1:
                continue
            out, current = [], parts[0]
            for part in parts[1:]:
                if len(current) + len(sep) + len(part) <= limit:
                    current += sep + part
                else:
                    out.append(current + sep.rstrip())
                    current = part
            out.append(current)  # a piece still too long is folded at the next separator
            return [piece for part in out for piece in fold(part, seps[i + 1:])]
        return [line]

    return "\n".join(piece for line in text.split("\n") for piece in fold(line))
