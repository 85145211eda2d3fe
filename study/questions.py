"""The study's questions: which grids and comparisons answer each (read by the analysis and the report)."""
from __future__ import annotations

from dataclasses import dataclass

from .grids import GRIDS


@dataclass(frozen=True)
class Question:
    title: str
    grids: tuple[str, ...]
    variants: tuple[str, ...] = ()  # only comparisons involving one of these variants (all when empty)
    reading: str = ""  # how to read the rows (which way round the difference is)
    claim_grids: tuple[str, ...] = ()  # the Paper-claims rows (by grid) that answer this question too


QUESTIONS = (
    Question("Does the recalibrator help over the replicator alone?", ("replicator-vs-recalibrator", "expansion-op"),
             ("replicator", "replicator-only"),
             "Rows are *replicator alone minus DCT*: a negative difference means the recalibrator helps; the cost "
             "ratios are what dropping the recalibrator saves."),
    Question("How do the expansion ratio p and the reduction ratio r trade accuracy for cost?", ("p-sweep", "r-sweep"),
             (), "Rows are *each p (or r) minus the default p=2 (r=4)*, with its cost relative to the default."),
    Question("Is DCT non-inferior to the pointwise expansion it replaces, and at what saving?",
             ("expansion-op", "core-fashion-mnist", "expansion-alternatives"), ("pointwise", "ghost", "ftm"),
             "Rows are *other operator minus DCT*: a positive difference means that operator is more accurate, and "
             "a cost ratio above 1x is what DCT saves. A row's verdict speaks of the row's operator against DCT "
             "(e.g. 'non-inferior' = that operator is not worse than DCT); DCT's own non-inferiority to the pointwise "
             "expansion is tested in the lines under the table.", ("expansion-op", "core-fashion-mnist")),
    Question("Where does DyClotNet sit against MobileNetV2, GhostNet and the dynamic-convolution baselines?",
             ("baselines", "lr-check"), (), "Rows are *baseline minus DyClotNet-0.5*: a positive difference means "
             "the baseline is more accurate; a cost ratio above 1x means the baseline costs more. `lr-check` repeats "
             "the MobileNetV2-0.5 comparison at half the learning rate (Training health)."),
    Question("Does the published headline hold (DyClotNet-2.0 vs MobileNetV2-1.0)?", ("paper-claim", "paper-claim-lr"),
             (), "Rows are *MobileNetV2-1.0 minus DyClotNet-2.0*: the paper's +0.9 points for DyClotNet-2.0 is -0.9 "
             "here. `paper-claim-lr` repeats the pair at half the learning rate (Training health); the claim lines "
             "below test the pre-specified `paper-claim` grid only.", ("paper-claim",)),
)


@dataclass(frozen=True)
class CoreQuestion:
    key: str
    text: str
    grid: str
    variant: str | None  # compared with the grid's reference; None: every variant


CORE_QUESTIONS = (
    CoreQuestion("a", "Does the recalibrator help over the replicator alone?", "replicator-vs-recalibrator", "replicator"),
    CoreQuestion("b", "Is DCT as good as the pointwise expansion it replaces?", "expansion-op", "pointwise"),
    CoreQuestion("c", "The headline: DyClotNet-2.0 vs the MobileNetV2-1.0 that reproduces the published costs",
                 "paper-claim", "mobilenetv2-1.0-8x8"),
    CoreQuestion("d", "DyClotNet vs GhostNet and the dynamic-convolution baselines", "baselines", None),
)

# After the core questions (docs/study.md, section 4): the p and r sweeps, then the normalisation placement
# (an interpretation choice, docs/interpretation.md row 5); every variant against the grid's reference
LATER_QUESTIONS = (
    CoreQuestion("e", "How does the expansion ratio p trade accuracy for cost (p = 1, 4, 8 vs the default 2)?",
                 "p-sweep", None),
    CoreQuestion("f", "How does the reduction ratio r trade accuracy for cost (each r vs the default 4)?", "r-sweep", None),
    CoreQuestion("g", "Does the bottleneck's normalisation placement change DCT's accuracy?", "norm-placement", None),
)
# The questions a GPU decides, in the order its batches train them (docs/study.md section 5): (c) and (d), which only a
# GPU can decide, then (a) and (b) again under the GPU's budget, as rows of their own
GPU_QUESTIONS = ("paper-claim", "baselines", "replicator-vs-recalibrator", "expansion-op")
# The second edition's questions, in the order `run.py study --until-decided` runs their grids
SECOND_EDITION_QUESTIONS = (*CORE_QUESTIONS, *LATER_QUESTIONS)
SECOND_EDITION = tuple(q.grid for q in SECOND_EDITION_QUESTIONS)


def own_comparison(grid: str) -> list[str] | None:
    """The variants ``ablate --until-decided`` compares with the reference of ``grid`` in the second edition: the
    question's own (``CoreQuestion.variant``) where it names one, else None (every variant; docs/study.md)."""
    named = next((q.variant for q in SECOND_EDITION_QUESTIONS if q.grid == grid), None)
    return [named] if named else None


def trained_networks(grid: str) -> list[str]:
    """The networks the second edition's main runs (and learning-rate search) of ``grid`` train: its reference and
    ``own_comparison``, else every variant of the grid (reference included), in the grid's order (``Grid.only``)."""
    return list(GRIDS[grid].only(own_comparison(grid)).variants)


__all__ = ["CORE_QUESTIONS", "LATER_QUESTIONS", "QUESTIONS", "SECOND_EDITION", "SECOND_EDITION_QUESTIONS",
           "CoreQuestion", "Question", "own_comparison", "trained_networks"]
