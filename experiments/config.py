"""Typed, frozen configs: protocols (training budgets), seeds, one run's config and its hash.

Everything a run computes from is in :class:`RunConfig` (hashed into the run id); how and where it
executes (device, threads, data path, tracking) is in :class:`Runtime` (not hashed).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Bump by hand whenever the engine changes what a run computes (recipe, data pipeline, metrics).
# It is part of every run hash; the git commit is not (it goes into env.json), so committing
# unrelated code never orphans finished runs.
ENGINE_VERSION = 2  # what each version changed: docs/engine.md

SEED_SOURCES = ("init", "data", "aug")
Vary = Literal["all", "init", "data", "aug"]
WandbMode = Literal["off", "offline", "online"]
DeviceSharing = Literal["processes", "mps"]
DEVICE_SHARING = ("processes", "mps")
# Runtime.compile: the step a run takes, and the name runs, records and the GPU bench give it. ``cuda-graphs``: the
# compiled step replayed as CUDA graphs (torch.compile mode reduce-overhead) and the fused SGD (experiments.trainer)
Compile = bool | Literal["cuda-graphs"]
STEPS: dict[Any, str] = {False: "eager", True: "compiled", "cuda-graphs": "cuda-graphs"}


def choose(kind: str, name: str, allowed: list[str] | tuple[str, ...] | dict) -> str:
    """Return ``name`` if allowed, else raise a ValueError listing the close matches and all choices."""
    if name in allowed:
        return name
    close = difflib.get_close_matches(name, list(allowed), n=3, cutoff=0.4)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown {kind} {name!r}{hint} (choose from: {', '.join(sorted(allowed))})")


def compile_setting(step: str) -> Compile:
    """``Runtime.compile`` for the step named ``step`` (a value of ``STEPS``: eager, compiled, cuda-graphs)."""
    return {name: setting for setting, name in STEPS.items()}[choose("--step", step, tuple(STEPS.values()))]


def check_step(compile: Compile, device: str) -> None:
    """ValueError where the step ``compile`` cannot run on ``device`` (``auto``: CUDA where there is one): CUDA
    graphs need a CUDA device (probed only for them: the other steps run anywhere)."""
    if compile != "cuda-graphs":
        return
    import torch

    if not (device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())):
        raise ValueError(f"--step cuda-graphs replays the step as CUDA graphs on a CUDA device; --device {device} is "
                         "not one here (choose --step eager or compiled)")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


class Protocol(Frozen):
    """A named training budget. Accuracies of runs under different protocols are not comparable."""

    name: str
    dataset: str = Field(description="dataset used unless the grid run names another")
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0, description="peak learning rate, reached at the end of warm-up")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(ge=0, description="not applied to norms and biases")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    warmup_epochs: float = Field(0.0, ge=0)
    train_per_class: int | None = Field(None, ge=1, description="stratified train subset; None = all left after val")
    val_per_class: int = Field(0, ge=0, description="validation split carved out of train")
    test_per_class: int | None = Field(None, ge=1, description="stratified test subset; None = the whole test set")
    split_seed: int = Field(0, ge=0, description="picks subsets and the val split; fixed so every run sees the same images")
    test_every_epoch: bool = Field(True, description="else the test set is evaluated after the last epoch only")
    eval_batch_size: int = Field(500, ge=1)
    latency_repeats: int = Field(30, ge=1, description="forward passes timed for result.json's latency_ms")


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    # seconds on 2 CPU cores: the synthetic set, two epochs; for tests and the README's smoke grid
    Protocol(name="smoke", dataset="synthetic", epochs=2, batch_size=32, lr=0.05, weight_decay=5e-4,
             label_smoothing=0.1, warmup_epochs=0.5, val_per_class=4, eval_batch_size=200, latency_repeats=3),
    # seconds a run on 2 CPU cores: a stratified Fashion-MNIST subset; the README's first run (smoke grid). 6 epochs:
    # 4 reached a mean test top-1 of 74.1% (3 seeds x 2 variants), 5 reached 74.9%, 6 reached 76.8% (75.9-77.5)
    Protocol(name="quick", dataset="fashion-mnist", epochs=6, batch_size=32, lr=0.2, weight_decay=5e-4,
             warmup_epochs=0.3, train_per_class=200, val_per_class=10, test_per_class=100, test_every_epoch=False,
             latency_repeats=3),
    # about 4 minutes for DyClotNet-0.5 on 2 CPU cores (docs/engine.md has the measurements)
    Protocol(name="cpu", dataset="cifar10-jpeg", epochs=8, batch_size=64, lr=0.1, weight_decay=5e-4,
             label_smoothing=0.1, warmup_epochs=1, train_per_class=250, val_per_class=50,
             test_per_class=500, test_every_epoch=False),
    # the pilot's larger budgets (docs/study.md): 4x the cpu protocol's images, then all of CIFAR-10;
    # the whole test set, validation every epoch
    Protocol(name="cpu-1k", dataset="cifar10-jpeg", epochs=10, batch_size=64, lr=0.1, weight_decay=5e-4,
             label_smoothing=0.1, warmup_epochs=1, train_per_class=1000, val_per_class=100,
             test_every_epoch=False),
    Protocol(name="cpu-full", dataset="cifar10-jpeg", epochs=15, batch_size=128, lr=0.1, weight_decay=5e-4,
             label_smoothing=0.1, warmup_epochs=1, val_per_class=100, test_every_epoch=False),
    # the paper's budget, for GPUs: all of CIFAR-10 train, 200 epochs
    Protocol(name="paper", dataset="cifar10", epochs=200, batch_size=128, lr=0.1, weight_decay=5e-4,
             label_smoothing=0.0, warmup_epochs=5, val_per_class=0),
    # one GPU (`run.py gpu-next`, docs/study.md section 5): all of CIFAR-10 train less 100 validation images per
    # class, the whole test set after the last epoch; lr 0.2 is cpu-full's 0.1 at batch 128 scaled by sqrt(512/128)
    Protocol(name="gpu", dataset="cifar10-jpeg", epochs=30, batch_size=512, lr=0.2, weight_decay=5e-4,
             label_smoothing=0.1, warmup_epochs=2, val_per_class=100, test_every_epoch=False, eval_batch_size=1000),
    # `gpu` in half the epochs (warm-up halved too): the cheaper candidate of the GPU budget pilot (docs/study.md,
    # section 5), chosen by `run.py plan` only if its reference reaches 80% test top-1
    Protocol(name="gpu-15", dataset="cifar10-jpeg", epochs=15, batch_size=512, lr=0.2, weight_decay=5e-4,
             label_smoothing=0.1, warmup_epochs=1, val_per_class=100, test_every_epoch=False, eval_batch_size=1000),
)}


def get_protocol(name: str, **overrides: Any) -> Protocol:
    """A named protocol, optionally with some settings replaced (validated again)."""
    protocol = PROTOCOLS[choose("protocol", name, PROTOCOLS)]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return Protocol.model_validate({**protocol.model_dump(), **overrides}) if overrides else protocol


def derive_seed(seed: int, source: str) -> int:
    """A 31-bit seed for one randomness source, derived from a run seed by hashing."""
    return int.from_bytes(hashlib.sha256(f"{source}:{seed}".encode()).digest()[:4], "little") & 0x7FFFFFFF


class Seeds(Frozen):
    """Separate seeds for weight initialisation, data order and augmentation (plus dropout noise)."""

    init: int
    data: int
    aug: int

    @classmethod
    def derive(cls, seed: int, vary: Vary = "all") -> Seeds:
        """Derive all sources from ``seed`` (``vary="all"``), or only one, the others from seed 0."""
        choose("seed source", vary, ("all", *SEED_SOURCES))
        return cls(**{src: derive_seed(seed if vary in ("all", src) else 0, src) for src in SEED_SOURCES})


class RunConfig(Frozen):
    """Everything one training run computes from; its hash names the run's directory."""

    grid: str
    variant: str
    model: str
    model_kwargs: dict[str, Any] = {}
    dataset: str
    protocol: Protocol
    seed: int = Field(ge=0)
    vary: Vary = "all"
    seeds: Seeds
    engine_version: int = ENGINE_VERSION
    architecture_revision: int = Field(1, ge=1, description=(
        "the model's revision when the run was planned (baselines.registry.architecture_revision); absent in "
        "config.json = 1; hashed only when above 1, so that runs of models never revised keep their ids"))

    @property
    def run_id(self) -> str:
        exclude = {"architecture_revision"} if self.architecture_revision == 1 else set()
        canonical = json.dumps(self.model_dump(mode="json", exclude=exclude), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_run(workers: int = 1) -> int:
    """torch threads per run when ``--threads`` is not given: the idle cores split among ``workers``, at least 1.

    Idle cores are this process's cores less the 1-minute load average (rounded). On a machine whose cores
    are busy with other jobs, a run spread over every core waits on its slowest thread and collapses (on a
    loaded 2-core machine 2 threads per run were slower than 1; docs/performance.md, "Threads under load").
    """
    try:
        busy = round(os.getloadavg()[0])
    except (AttributeError, OSError):  # no load average on this platform
        busy = 0
    return max(1, (default_threads() - busy) // max(1, workers))


class Runtime(Frozen):
    """How and where runs execute; not part of the run hash."""

    data_root: Path | None = None
    cache_dir: Path | None = None
    download: bool = False
    device: str = "auto"
    threads: int | None = Field(None, ge=1, description="torch threads per run; None = all cores of the process")
    compile: Compile = Field(False, description="the step: the model's own (False), torch.compile of it (True), or "
                             "that replayed as CUDA graphs with the fused SGD (cuda-graphs; CUDA only)")
    channels_last: bool = True
    deterministic: bool = True
    wandb: WandbMode = "offline"
    plugins: tuple[str, ...] = Field((), description="modules imported before building models (they register more)")
    retry_failed: bool = False
    reuse: bool = Field(True, description="copy a finished twin run from another grid instead of training (experiments.reuse)")
    runs_sharing_device: int = Field(1, ge=1, description="runs trained at once on this run's GPU (gpu-next --workers): "
                                     "its training seconds over this are its share of the device's time")
    device_sharing: DeviceSharing = Field("processes", description="how the runs at once share the GPU: separate "
                                          "processes taking turns (processes), or under CUDA MPS, their kernels "
                                          "overlapping (mps: the MPS daemon was started before them)")
