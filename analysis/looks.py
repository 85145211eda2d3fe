"""The report's "Decisions, look by look": every look the sequential rule made, recomputed from the run files.

For each second-edition question whose main runs have a recorded design (``RESULTS/<grid>/sequential.json``,
written by ``ablate --until-decided``), ``decision_records`` recomputes the looks with
``evidence.decisions.look_history`` under that design, so that a reader can check the stopping look, and
compares the outcome with the recorded one; ``looks_lines`` renders them (Markdown) and ``analysis.plots.looks_figure``
draws the per-seed differences and each look's repeated confidence interval. Only files are read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from evidence.decisions import PairingError, look_history, paired_differences
from evidence.load import of_engine_version
from evidence.sequential import stagewise_p
from evidence.status import RunStatus
from study.grids import GPU_PROTOCOL
from study.questions import SECOND_EDITION_QUESTIONS

from .tables import markdown_table, percent

COST_COLUMNS = {"params": "params", "macs": "MACs", "latency_ms": "latency"}


@dataclass(frozen=True)
class ComparisonLooks:
    """One compared variant: its looks (``look_history`` states), the recorded state, the per-seed paired
    differences of its last look's seeds, each network's mean test top-1 over those seeds, the
    variant / reference ratio of each cost's median over the grid's main runs, and how many of the variant's
    ok runs lie beyond the last look's seeds (trained ahead by workers that would otherwise idle)."""
    variant: str
    looks: tuple[dict, ...]
    recorded: dict
    diffs: tuple[float, ...]
    top1: tuple[float, float] | None  # (variant, reference)
    cost_ratios: tuple[tuple[str, float], ...]
    ahead: int = 0


@dataclass(frozen=True)
class QuestionLooks:
    """A question's main runs in ``folder`` under the design ``sequential.json`` records."""
    question: str
    folder: str
    protocol: str
    reference: str
    schedule: tuple[int, ...]
    margin: float
    alpha: float
    rule: str
    comparisons: tuple[ComparisonLooks, ...]
    refused: str = ""  # why the looks' runs do not pair (``decisions.PairingError``): no look is shown

    @property
    def figure(self) -> str:
        return f"looks_{self.folder}"


def _cost_ratios(rows: pd.DataFrame, variant: str, reference: str) -> tuple[tuple[str, float], ...]:
    out = []
    for column, name in COST_COLUMNS.items():
        medians = [pd.to_numeric(rows.loc[rows["variant"] == v, column], errors="coerce").median()
                   for v in (variant, reference)]
        if all(np.isfinite(m) for m in medians) and medians[1] > 0:
            out.append((name, float(medians[0] / medians[1])))
    return tuple(out)


def _comparison(frame: pd.DataFrame, folder: str, design: dict, variant: str, looks: list[dict],
                engine_version: int) -> ComparisonLooks:
    reference, protocol = design["reference"], design["protocol"]
    n = looks[-1]["n"] if looks else 0
    diffs = paired_differences(frame, folder, protocol, variant, reference, n, engine_version) if n else None
    frame = of_engine_version(frame, engine_version)
    rows = frame[frame["grid"].eq(folder) & frame["status"].eq(RunStatus.OK) & frame["protocol"].eq(protocol)]
    top1 = None
    seeds = pd.to_numeric(rows["seed"], errors="coerce")
    if n:
        used = rows[seeds < n]
        top1 = tuple(float(used.loc[used["variant"] == v, "test_top1"].mean()) for v in (variant, reference))
    return ComparisonLooks(variant, tuple(looks), design["variants"][variant],
                           tuple(float(d) for d in diffs) if diffs is not None else (), top1,
                           _cost_ratios(rows, variant, reference), int(((seeds >= n) & rows["variant"].eq(variant)).sum()))


def decision_records(results: Path, frame: pd.DataFrame, engine_version: int) -> tuple[QuestionLooks, ...]:
    """Per second-edition question (and its ``-gpu`` folder) with a readable ``sequential.json``: the looks
    recomputed from the run files under the recorded design. An unreadable record is skipped here (the questions
    at a glance read the same file). Computed once per report: ``second_edition.glance_rows`` reads these records
    too."""
    out = []
    for q in SECOND_EDITION_QUESTIONS:
        for folder in (q.grid, f"{q.grid}-{GPU_PROTOCOL}"):
            try:
                design = json.loads((Path(results) / folder / "sequential.json").read_text())
                variants = sorted(design["variants"])
                schedule = tuple(int(n) for n in design["schedule"])
                margin, reference, protocol = float(design["margin"]), design["reference"], design["protocol"]
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
            try:
                history = look_history(frame, folder, protocol, reference, variants, schedule, margin, engine_version)
                comparisons = tuple(_comparison(frame, folder, design, v, history[v], engine_version) for v in variants)
                refused = ""
            except PairingError as error:
                comparisons, refused = (), str(error)
            out.append(QuestionLooks(f"({q.key}) {q.text}", folder, protocol, reference, schedule, margin,
                                     float(design.get("alpha", 0.05)), str(design.get("rule", "")), comparisons,
                                     refused))
    return tuple(out)


@dataclass(frozen=True)
class HolmReading:
    """The study-wide sensitivity reading (docs/study.md, section 3, "Several questions"): the comparisons the rule
    decided *better* or *worse*, across questions, each with its stage-wise ordered p-value
    (``sequential.stagewise_p``: comparable with 0.05, unlike the look's p against its nominal level), Holm-adjusted
    over all of them (statsmodels ``multipletests``), and the fixed-sample paired t-test p at the deciding look with
    its own Holm adjustment (a second, cruder reading: it ignores the looks before)."""
    comparisons: tuple[str, ...]  # "(a) `replicator` - `dct`"
    labels: tuple[str, ...]
    p_stagewise: tuple[float, ...]
    p_holm: tuple[float, ...]
    p_fixed: tuple[float, ...]
    p_fixed_holm: tuple[float, ...]
    alpha: float = 0.05

    @property
    def holds(self) -> tuple[bool, ...]:
        return tuple(p < self.alpha for p in self.p_holm)


def holm_reading(records: tuple[QuestionLooks, ...], alpha: float = 0.05) -> HolmReading | None:
    """Holm over the decided comparisons of every question's looks (``decision_records``); None when fewer than
    two are decided *better* or *worse* (nothing to correct across)."""
    decided = [(r, c, c.looks[-1]) for r in records for c in r.comparisons
               if c.looks and c.looks[-1]["label"] in ("better", "worse")]
    if len(decided) < 2:
        return None
    staged = [stagewise_p(s["p"], s["look"], r.schedule, r.alpha, n_comparisons=len(r.comparisons))
              for r, _, s in decided]
    fixed = [float(s["p"]) for _, _, s in decided]
    return HolmReading(tuple(f"{r.question.split(' ')[0]} `{c.variant}` - `{r.reference}`" for r, c, _ in decided),
                       tuple(s["label"] for _, _, s in decided), tuple(staged),
                       tuple(float(p) for p in multipletests(staged, alpha=alpha, method="holm")[1]), tuple(fixed),
                       tuple(float(p) for p in multipletests(fixed, alpha=alpha, method="holm")[1]), alpha)


def holm_lines(reading: HolmReading | None) -> list[str]:
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
    "Every look the rule made (`run.py ablate GRID --until-decided`), recomputed here from the run files under the "
    "design its `sequential.json` records (`evidence.decisions.look_history`): at each look, the paired differences "
    "*variant - reference* of test top-1 over seeds 0 to n-1, their mean, the repeated confidence interval at the "
    "look's level, the paired t-test's p-value and the look's nominal level. A comparison is decided *better* or "
    "*worse* at the first look whose p-value is below the nominal level, *equivalent* when the repeated interval "
    "at twice the one-sided level lies within the margin; it gets no more seeds after that.")


def _ci(state: dict) -> str:
    low, high = state["ci"]
    return f"[{low:+.2f}, {high:+.2f}] ({percent(1 - state['boundary'])})"


def _margin_detail(state: dict) -> str:
    """The equivalence test behind ``render.margin_verdict`` for one look's record
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
            f"otherwise have idled (their CPU time is counted). {use}")


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


def looks_lines(records: tuple[QuestionLooks, ...], folder: str) -> list[str]:
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
                 "difference": f"{s['estimate']:+.2f}", "repeated CI (level)": _ci(s), "p": f"{s['p']:.4f}",
                 "nominal level": f"{s['boundary']:.4f}", "outcome": s["label"]}
                for c in r.comparisons for s in c.looks]
        if not rows:
            lines += ["Look 1's seeds have not all finished yet.", ""]
            continue
        lines += [markdown_table(pd.DataFrame(rows)), ""]
        for c in r.comparisons:
            if not c.diffs:
                continue
            seeds = ", ".join(f"{d:+.2f}" for d in c.diffs)
            costs = ", ".join(f"{name} {ratio:.2f}x" for name, ratio in c.cost_ratios)
            lines += [f"- {_outcome(c, r.reference, r.margin)} Per seed (0 to {len(c.diffs) - 1}): {seeds}; paired SD "
                      f"{np.std(c.diffs, ddof=1):.2f}. Mean test top-1 over these seeds: `{c.variant}` {c.top1[0]:.2f}, "
                      f"`{r.reference}` {c.top1[1]:.2f}."
                      + (f" Cost of `{c.variant}` against `{r.reference}` (medians of the main runs): {costs}." if costs
                         else "") + _ahead(c)]
        lines.append("")
        for c in r.comparisons:
            lines += _record_note(c)
        lines += [f"![per-seed differences and each look's repeated confidence interval]({folder}/{r.figure}.png)", ""]
    return lines


