"""The study's named ablation grids: variants of models and options, and the plan they run in.

Definitions only (no torch, no engine): ``experiments.grids`` resolves them into run configs,
``analysis`` and the report read them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Variant:
    model: str
    model_kwargs: dict = field(default_factory=dict)
    optional: bool = False  # left out (with a note) while its model or option does not exist yet
    lr: float | None = None  # peak learning rate replacing the protocol's (a learning-rate search's candidate)

    def as_json(self) -> dict:
        return {"model": self.model, "model_kwargs": dict(self.model_kwargs), **({"lr": self.lr} if self.lr else {})}


@dataclass(frozen=True)
class Grid:
    name: str
    description: str
    reference: str
    variants: dict[str, Variant]
    protocol: str = "cpu"  # default protocol
    dataset: str | None = None  # None: the protocol's dataset; --dataset overrides either
    paired: bool = True  # runs with the same seed share init and data-order seeds
    lr_scale: float = 1.0  # the protocol's learning rate times this (a sensitivity check of the schedule)
    fallback_protocol: str | None = None  # default protocol where the default one's dataset is not installed
    fixed_seeds: int | None = None  # a pilot: these seeds at the protocol's rate, no learning-rate search or looks

    def only(self, compared: list[str] | None) -> Grid:
        """This grid with only its reference and the ``compared`` variants (all when None or empty): the networks a
        question's search and main runs train (docs/study.md). Names are not checked here; ``experiments.grids.restrict``
        checks a user's."""
        if not compared:
            return self
        kept = {self.reference, *compared}
        return replace(self, variants={n: v for n, v in self.variants.items() if n in kept})


def sweep(model: str, option: str, values: tuple, **fixed) -> dict[str, Variant]:
    return {f"{option}{value}": Variant(model, {**fixed, option: value}) for value in values}


# Width 0.5 (and ResNet-20 for the seed methods that were published on ResNets): the 1.0-width set
# costs more than the cpu-protocol study can afford on 2 cores (docs/engine.md, REPORT.md).
BASELINE_MODELS = ("mobilenetv2_cifar_050", "ghostnet_cifar_050", "mobilenetv2_cifar_dynconv_050",
                   "mobilenetv2_cifar_condconv_050", "mobilenetv2_cifar_dcd_050", "resnet20_cifar",
                   "resnet20_cifar_ftm", "resnet20_cifar_mdconv", "resnet20_cifar_maconv")
CORE = {"dct": Variant("dyclotnet_050", {"expansion": "dct"}), "pointwise": Variant("dyclotnet_050", {"expansion": "pointwise"})}
# The headline pair: DyClotNet-2.0 against the MobileNetV2-1.0 adaptation whose costs reproduce both
# published ratios (ends at 8x8); the common 4x4 adaptation stays as an extra row.
HEADLINE = {"dyclotnet-2.0": Variant("dyclotnet_200"), "mobilenetv2-1.0-8x8": Variant("mobilenetv2_cifar8_100"),
            "mobilenetv2-1.0": Variant("mobilenetv2_cifar_100")}
# The bottleneck's normalisation as engine version 1 placed it: a BN after the expansion (it cancels
# the batch-constant part of the DCT's Psi in train mode) and no head BN.
NORM_AFTER = {"expansion_norm": "after", "head_norm": False}

# A learning-rate search for grid G is the grid G + LR_SEARCH_SUFFIX, its variants <network> + LR_SEPARATOR + <rate>
# (experiments/tuning.py trains it, analysis/learning_rates.py reports it; docs/study.md, section 2)
LR_SEARCH_SUFFIX, LR_SEPARATOR = "-lr", "@lr"
# ... except where G + LR_SEARCH_SUFFIX is a named grid of its own: then G + LR_SEARCH_SPARE + LR_SEARCH_SUFFIX
# (`search_name`; (c)'s CPU search is `paper-claim-search-lr`, the first pass's `paper-claim-lr` being a grid)
LR_SEARCH_SPARE = "-search"
# The search's budget, the same for every network: candidate peak rates x seeds per candidate
LR_CANDIDATES: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2)
TUNING_SEEDS = 2
# LR_CANDIDATES surround the CPU protocols' peak rate of 0.1 (cpu-full's batch is 128); `gpu-next` searches the
# same multiples of its protocol's own rate (`gpu`: 0.05 to 0.4 around its 0.2 at batch 512)
LR_CANDIDATES_AT = 0.1
# A search where some network's best rate is an edge of the candidates is widened by one more candidate beyond that
# edge (the grid's step again), for every network alike, until it is interior or LR_EXTENSIONS candidates a side have
# been added (docs/study.md, section 2): from 0.025-0.2, the widest search is 0.003125-1.6 (the cap, raised from 1 on
# 2026-12-05 because every network of (a) and (b) chose the one widening's edge, 0.4)
LR_EXTENSIONS = 3
# Where a question's search starts elsewhere than LR_CANDIDATES, by (grid, protocol): the same number of candidates,
# the same ratio, for every network of the question alike (docs/study.md, section 2, "Later questions' searches start
# at 0.1-0.8", written 2026-12-06 before any of their search runs finished): every one of the four DyClotNet-0.5
# networks searched under cpu-full ((a), (b), (g)) chose 0.4, bracketed by 0.8, and lost 6 to 14 points at 0.025
LR_SEARCH_STARTS: dict[tuple[str, str], tuple[float, ...]] = {
    (grid, "cpu-full"): (0.1, 0.2, 0.4, 0.8) for grid in ("p-sweep", "r-sweep")}
# `run.py gpu-next` trains grid G under the GPU protocol into a grid folder of its own, G + "-" + GPU_PROTOCOL
# (its search: that + LR_SEARCH_SUFFIX), never pooled with G's CPU runs (docs/study.md, section 5)
GPU_PROTOCOL = "gpu"


def search_candidates(grid: str, protocol: str) -> tuple[float, ...]:
    """The candidates ``grid``'s learning-rate search starts from under ``protocol`` (before any widening):
    LR_SEARCH_STARTS's where it names the pair, else LR_CANDIDATES."""
    return LR_SEARCH_STARTS.get((grid, protocol), LR_CANDIDATES)


def lr_candidates(protocol_lr: float) -> tuple[float, ...]:
    """The search's candidates for a protocol whose peak rate is ``protocol_lr``: LR_CANDIDATES scaled to it."""
    return tuple(round(c * protocol_lr / LR_CANDIDATES_AT, 10) for c in LR_CANDIDATES)


# The budget pilot (docs/study.md, `run.py plan`): the core pairs under each candidate budget, one grid each.
PILOT_BUDGETS = ("cpu", "cpu-1k", "cpu-full")
# The GPU's budget pilot (docs/study.md, section 5): the same pairs under the GPU protocols that differ in epochs only,
# trained by `run.py gpu-next pilot-<budget>`; the cheaper first
GPU_PILOT_BUDGETS = ("gpu-15", "gpu")
PILOT_SEEDS = 4  # paired seeds per variant and budget (docs/study.md)


def gpu_folder(grid: str, protocol: str) -> str:
    """The grid folder ``grid`` trains into under a device's own ``protocol`` (``run.py gpu-next GRID --protocol
    PROTOCOL``): ``<grid>-<protocol>``, its own rows, never pooled with another protocol's or with the CPU's."""
    return f"{grid}-{protocol}"


def gpu_folders(grid: str) -> tuple[str, ...]:
    """The grid folders a question's ``grid`` trains into on a GPU: one per GPU budget (``gpu_folder``)."""
    return tuple(gpu_folder(grid, budget) for budget in GPU_PILOT_BUDGETS)
# The most seeds per variant a second-edition grid gets on CPU (docs/study.md, section 3): every grid
# looks at sequential.plan_looks(CPU_SEED_CAP) = 3, 5, 8, 12 seeds, whatever the plan's maximum; the
# report gives that schedule's power and the smallest effect it decides
CPU_SEED_CAP = 12
GPU_SEED_CAP = 40  # gpu-next's default --max-seeds: 3, 5, 8, 12, 18, 27, 40 (docs/study.md, section 3)
# simulated comparisons per power estimate of the plan: `run.py plan` and the report use the same, so each
# reproduces the other's numbers
PLAN_REPS = 1000
PILOT_VARIANTS = {"dct": Variant("dyclotnet_050"), "replicator": Variant("dyclotnet_050", {"recalibrator": "none"}),
                  "pointwise": Variant("dyclotnet_050", {"expansion": "pointwise"})}

GRIDS: dict[str, Grid] = {g.name: g for g in (
    Grid("replicator-vs-recalibrator", "Does the DCT's recalibrator help over the replicator alone (DyClotNet-0.5)?",
         "dct", {"dct": Variant("dyclotnet_050", {"recalibrator": "sigmoid_add"}),
                 "replicator": Variant("dyclotnet_050", {"recalibrator": "none"})}),
    Grid("norm-placement", "Where the DCT bottleneck normalises (DyClotNet-0.5): before the expansion with a head BN "
         "(the default), or after the expansion without one (engine version 1's placement, which cancels the "
         "batch-constant part of the recalibrator's Psi in train mode).", "dct",
         {"dct": Variant("dyclotnet_050"), "dct-norm-after": Variant("dyclotnet_050", NORM_AFTER)}),
    *(Grid(f"pilot-{budget}", f"The budget pilot under protocol {budget} (docs/study.md): the core pairs -- the "
           "recalibrator against the replicator alone, DCT against the pointwise expansion it replaces "
           "(DyClotNet-0.5).", "dct", PILOT_VARIANTS, protocol=budget, fixed_seeds=PILOT_SEEDS)
      for budget in PILOT_BUDGETS + GPU_PILOT_BUDGETS),
    Grid("p-sweep", "Expansion ratio p of DyClotNet-0.5's DCTs.", "p2", sweep("dyclotnet_050", "p", (1, 2, 4, 8))),
    Grid("r-sweep", "Reduction ratio r of the DCT recalibrator (DyClotNet-0.5).", "r4",
         sweep("dyclotnet_050", "r", (1, 2, 4, 8, 16))),
    Grid("expansion-op", "The operator in the expansion slot of DyClotNet-0.5's bottleneck: DCT, the pointwise "
         "expansion it replaces, and the DCT's replicator alone.", "dct",
         {**CORE, "replicator-only": Variant("dyclotnet_050", {"expansion": "dct", "recalibrator": "none"})}),
    Grid("expansion-alternatives", "Other cheap expansion operators in DyClotNet-0.5's expansion slot: Ghost "
         "(GhostNet's cheap operation) and FTM, against DCT.", "dct",
         {"dct": CORE["dct"], "ghost": Variant("dyclotnet_050", {"expansion": "ghost"}, optional=True),
          "ftm": Variant("dyclotnet_050", {"expansion": "ftm"}, optional=True)}),
    Grid("core-fashion-mnist", "The core comparison (DCT vs the pointwise expansion it replaces, DyClotNet-0.5) on "
         "Fashion-MNIST.", "dct", CORE, dataset="fashion-mnist"),
    Grid("baselines", "DyClotNet-0.5 against the efficient-CNN baselines at width 0.5 and the seed methods on ResNet-20.",
         "dyclotnet", {"dyclotnet": Variant("dyclotnet_050"), **{m: Variant(m, optional=True) for m in BASELINE_MODELS}}),
    Grid("paper-claim", "The paper's headline: DyClotNet-2.0 against MobileNetV2-1.0 on CIFAR.", "dyclotnet-2.0",
         HEADLINE),
    Grid("lr-check", "DyClotNet-0.5 against MobileNetV2-0.5 at half the protocol's learning rate: at the full "
         "rate every MobileNetV2-family run's training loss spiked above chance (REPORT.md, Training health). Does "
         "the comparison change when the schedule is gentler?", "dyclotnet",
         {"dyclotnet": Variant("dyclotnet_050"), "mobilenetv2_cifar_050": Variant("mobilenetv2_cifar_050")},
         lr_scale=0.5),
    Grid("paper-claim-lr", "The paper's headline pair (DyClotNet-2.0 vs MobileNetV2-1.0) at half the protocol's "
         "learning rate: at the full rate every MobileNetV2-1.0 run's training loss spiked above chance. Does the "
         "headline comparison depend on that?", "dyclotnet-2.0", HEADLINE, lr_scale=0.5),
    Grid("smoke", "Two tiny variants (DyClotNet-0.25 with and without the recalibrator), for tests and the README.",
         "dct", {"dct": Variant("dyclotnet_025"), "replicator": Variant("dyclotnet_025", {"recalibrator": "none"})},
         protocol="quick", fallback_protocol="smoke"),
)}

# Where the commands write and read runs unless --results names another folder: a scratch folder that git
# ignores. The committed study lives in results/ and is written only when a command names it.
SCRATCH_RESULTS = Path("runs")

# The study (`run.py study`): each grid with its seeds per variant, in the order they run
# (the core questions first, the most expensive last), on the grid's own protocol and dataset.
STUDY: dict[str, int] = {"replicator-vs-recalibrator": 5, "expansion-op": 5, "core-fashion-mnist": 3, "p-sweep": 3,
                         "r-sweep": 3, "paper-claim": 3, "baselines": 3, "expansion-alternatives": 3,
                         "lr-check": 3, "paper-claim-lr": 3}


def search_name(grid: str) -> str:
    """The grid (folder) of ``grid``'s learning-rate search: ``grid + LR_SEARCH_SUFFIX``, or, where that is a named
    grid of its own (the first pass's ``paper-claim-lr``), ``grid + LR_SEARCH_SPARE + LR_SEARCH_SUFFIX``: a search's
    runs never land in another grid's folder."""
    name = f"{grid}{LR_SEARCH_SUFFIX}"
    return f"{grid}{LR_SEARCH_SPARE}{LR_SEARCH_SUFFIX}" if name in GRIDS else name


def searched_grid(search: str) -> str:
    """The grid a learning-rate search (named by ``search_name``) is for."""
    grid = search.removesuffix(LR_SEARCH_SUFFIX)
    spared = grid.removesuffix(LR_SEARCH_SPARE)
    return spared if spared != grid and search_name(spared) == search else grid


__all__ = ["BASELINE_MODELS", "CORE", "CPU_SEED_CAP", "GPU_PILOT_BUDGETS", "GPU_SEED_CAP", "GRIDS", "HEADLINE", "LR_CANDIDATES",
           "LR_EXTENSIONS", "LR_SEARCH_STARTS", "NORM_AFTER", "PILOT_BUDGETS", "PILOT_SEEDS", "PILOT_VARIANTS", "STUDY",
           "TUNING_SEEDS", "Grid", "Variant", "gpu_folder", "gpu_folders", "lr_candidates", "search_candidates", "search_name",
           "searched_grid", "sweep"]
