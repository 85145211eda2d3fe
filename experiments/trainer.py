"""The training loop: SGD + Nesterov, warm-up + cosine, label smoothing, per-epoch checkpoints.

``fit`` trains one :class:`~experiments.config.RunConfig` and resumes from the run's checkpoint if
there is one. Randomness comes only from three generators seeded from ``cfg.seeds``:
``init`` (weights), ``data`` (batch order) and ``aug`` (crops, flips, and torch's global RNG
during training, i.e. dropout). On the CPU the same config gives bit-identical metrics,
with or without an interruption.
"""
from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import torch
from torch import nn

from baselines.registry import create_model

from .config import STEPS, Compile, RunConfig, Runtime
from .data import Batches, Dataset, make_splits
from .speed import to_memory_format, tune_allocator
from .store import RunStore

log = logging.getLogger(__name__)
T = TypeVar("T")


class Diverged(FloatingPointError):
    """The training loss became NaN or infinite."""


def is_device_oom(error: BaseException) -> bool:
    """Whether ``error`` is the device running out of memory: torch's allocator's, or a library's (cuBLAS, cuDNN)."""
    text = str(error)
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in text.lower() or "ALLOC_FAILED" in text


# calls of a kind after which a way's errors are the network's: CUDA graph trees warm up on a function's first call,
# capture its graph on the second and replay it from the third
PROVEN_AFTER_CALLS = {"cuda-graphs": 3}


def cuda_graph_options() -> dict[str, bool]:
    """torch.compile's options for the ``cuda-graphs`` step: its reduce-overhead mode (the compiled graphs replayed as
    CUDA graphs), and where this torch can say so, an error instead of running the graph uncaptured where inductor
    would skip the capture (e.g. for an input it cannot keep static), so that the step falls back and says why."""
    import torch._inductor.config as inductor

    return {"triton.cudagraphs": True} | ({"triton.cudagraph_or_error": True}
                                          if hasattr(inductor.triton, "cudagraph_or_error") else {})


class StepPath:
    """The forward pass a run's steps take, by ``Runtime.compile`` (``config.STEPS``): the model's own (``eager``),
    ``torch.compile`` of it (``compiled``), or that replayed as CUDA graphs (``cuda-graphs``: torch.compile's
    reduce-overhead mode, :func:`cuda_graph_options`; each call marks a new step, so that a replay may reuse the last
    one's outputs), each falling
    back to the next of those until one works, the failures kept.

    ``run(fn, kind)`` calls ``fn(forward)``. Where a compiled forward fails (compiling, capturing, or the compiled
    code, forward or backward) on the first call of its ``kind`` (``"train"``: a step, ``"eval"``: an evaluation;
    each compiles its own graph), or for ``cuda-graphs`` on one of its first ``PROVEN_AFTER_CALLS`` (the graphs
    are captured on the second call, after a warm-up), the next way takes over for the rest of this training call
    and ``fn`` is called again, so a failed compile never costs the run. Once a kind has run one way that often,
    its errors are the network's and are raised. Compile errors are raised before the compiled code runs; only a
    step whose graph broke into pieces (a part run, a later part failing) can have counted its batch in the
    BatchNorm statistics twice.
    """

    def __init__(self, model: nn.Module, compile: Compile = False) -> None:
        ways = {"cuda-graphs": lambda: torch.compile(model, options=cuda_graph_options()),
                "compiled": lambda: torch.compile(model), "eager": lambda: model}
        names = list(ways)[list(ways).index(STEPS[compile]):]
        self.ways, self.failures, self.calls = [(name, ways[name]) for name in names], [], Counter()
        self.name, self.forward = self.ways[0][0], None  # built on first use: a compiler that fails there falls back too

    def run(self, fn: Callable[[Callable], T], kind: str = "train") -> T:
        while True:
            if self.name == "cuda-graphs":
                torch.compiler.cudagraph_mark_step_begin()
            try:
                if self.forward is None:
                    self.forward = self.ways[0][1]()
                result = fn(self.forward)
            except Exception as error:
                if self.name == "eager" or self.calls[kind] >= PROVEN_AFTER_CALLS.get(self.name, 1) or is_device_oom(error):
                    raise  # the network's error (or the device's: out of memory), not the compiler's
                failed, reason = self.name, " ".join(f"{type(error).__name__}: {error}".split())[:300]
                self.failures.append(f"{'compile' if failed == 'compiled' else failed} failed: {reason}")
                self.ways.pop(0)
                self.name, self.forward, self.calls = self.ways[0][0], None, Counter()
                log.warning("the %s step failed (%s); the run goes on with the %s step", failed, reason, self.name)
            else:
                self.calls[kind] += 1
                return result

    @property
    def label(self) -> str:
        """What metrics.jsonl records per epoch: the step's name, and the failures before it where it fell back, e.g.
        ``eager (compile failed: <reason>)``."""
        return self.name if not self.failures else f"{self.name} ({'; '.join(self.failures)})"


def build_model(cfg: RunConfig, data: Dataset) -> nn.Module:
    torch.manual_seed(cfg.seeds.init)
    return create_model(cfg.model, num_classes=len(data.classes), in_chans=data.input_shape[0], **cfg.model_kwargs)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights only, not on norms and biases (every parameter with fewer than 2 dims)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR factor: linear from 1/warmup to 1 over the warm-up, then cosine down to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(1, total_steps - warmup_steps)))


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, autocast) -> tuple[float, float]:
    """(mean cross-entropy without smoothing, top-1 in percent); the device's sums are read once, at the end."""
    model.eval()
    losses, correct = [], torch.zeros((), dtype=torch.int64, device=batches.labels.device)
    for x, y in batches:
        with autocast:
            logits = model(x)
        losses.append(nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
        correct += (logits.argmax(1) == y).sum()
    n = len(batches.labels)
    return sum(torch.stack(losses).tolist(), 0.0) / n, 100.0 * correct.item() / n


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass
class Training:
    """Everything one run's training loop works on, built by :func:`prepare` (in that order: it seeds)."""
    model: nn.Module
    batches: Batches
    eval_batches: dict[str, Batches]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    autocast: object
    order_gen: torch.Generator
    aug_gen: torch.Generator
    device: torch.device


def prepare(cfg: RunConfig, data: Dataset, runtime: Runtime) -> Training:
    """The model (seeded by ``cfg.seeds.init``), the batches, the optimiser and schedule, mixed precision."""
    protocol, device = cfg.protocol, torch.device(runtime.device)
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    train, val, test = make_splits(data, protocol)

    model = to_memory_format(build_model(cfg, data).to(device), memory_format)
    order_gen = torch.Generator().manual_seed(cfg.seeds.data)
    aug_gen = torch.Generator().manual_seed(cfg.seeds.aug)
    torch.manual_seed(cfg.seeds.aug)  # global RNG during training: dropout and the like
    batches = Batches(train, protocol.batch_size, data.mean, data.std, device, train=True, hflip=data.hflip,
                      order_generator=order_gen, aug_generator=aug_gen, memory_format=memory_format)
    eval_batches = {name: Batches(split, protocol.eval_batch_size, data.mean, data.std, device,
                                  memory_format=memory_format)
                    for name, split in (("val", val), ("test", test)) if split is not None}

    optimizer = torch.optim.SGD(param_groups(model, protocol.weight_decay), lr=protocol.lr, momentum=protocol.momentum,
                                nesterov=protocol.momentum > 0, fused=runtime.compile == "cuda-graphs" or None)
    steps_per_epoch = len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(
        step, round(protocol.warmup_epochs * steps_per_epoch), protocol.epochs * steps_per_epoch))
    criterion = nn.CrossEntropyLoss(label_smoothing=protocol.label_smoothing)
    amp_dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    autocast = torch.autocast("cuda", dtype=amp_dtype) if device.type == "cuda" else nullcontext()
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and amp_dtype == torch.float16)
    return Training(model, batches, eval_batches, optimizer, scheduler, scaler, criterion, autocast, order_gen, aug_gen,
                    device)


def resume(t: Training, state: dict | None) -> list[dict]:
    """Restore the checkpoint ``state`` (if any) into ``t``; the metrics history so far."""
    if state is None:
        return []
    t.model.load_state_dict(state["model"])
    t.optimizer.load_state_dict(state["optimizer"])
    for group in t.optimizer.param_groups:  # loading keeps the saved groups' kernel choice; the runtime's holds
        group["fused"] = t.optimizer.defaults["fused"]
    t.scheduler.load_state_dict(state["scheduler"])
    t.scaler.load_state_dict(state["scaler"])
    t.order_gen.set_state(state["rng"]["data"])
    t.aug_gen.set_state(state["rng"]["aug"])
    torch.set_rng_state(state["rng"]["torch"])
    if t.device.type == "cuda" and state["rng"]["cuda"] is not None:
        torch.cuda.set_rng_state(state["rng"]["cuda"], t.device)
    return state["history"]


def checkpoint(t: Training, epoch: int, history: list[dict]) -> dict:
    """What ``checkpoint.pt`` holds after ``epoch``: everything :func:`resume` restores."""
    return {"epoch": epoch, "history": history, "model": t.model.state_dict(), "optimizer": t.optimizer.state_dict(),
            "scheduler": t.scheduler.state_dict(), "scaler": t.scaler.state_dict(),
            "rng": {"data": t.order_gen.get_state(), "aug": t.aug_gen.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(t.device) if t.device.type == "cuda" else None}}


def _diverged(losses: list[float], epoch: int) -> Diverged | None:
    """A :class:`Diverged` naming the first non-finite loss of ``losses`` (one per step, from step 1), or None."""
    step = next((i for i, value in enumerate(losses, 1) if not math.isfinite(value)), None)
    return None if step is None else Diverged(f"loss is {losses[step - 1]} at epoch {epoch} step {step}")


def _forward_backward(t: Training, forward: Callable, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's forward, loss and backward (gradients set afresh); its logits and loss."""
    with t.autocast:
        logits = forward(x)
        loss = t.criterion(logits.float(), y)
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(loss).backward()
    return logits, loss


def train_epoch(t: Training, path: StepPath, epoch: int, on_step: Callable[[int, int], None] | None) -> dict:
    """One epoch of training steps; its training metrics (running loss and top-1 over the augmented batches).

    Nothing in a step waits for the device: each step's loss and correct count stay on it and are
    read once, after the last step, and only then is a non-finite loss found; :class:`Diverged`
    names its first step. (An error raised by a later step of that epoch is reported as the
    divergence it follows.)
    """
    t.model.train()
    start, losses, seen = time.perf_counter(), [], 0
    correct = torch.zeros((), dtype=torch.int64, device=t.device)
    try:
        for step, (x, y) in enumerate(t.batches, 1):
            logits, loss = path.run(partial(_forward_backward, t, x=x, y=y))
            t.scaler.step(t.optimizer)
            t.scaler.update()
            t.scheduler.step()
            losses.append(loss.detach())
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if on_step:
                on_step(step, len(t.batches))
    except Exception as error:
        if losses and (diverged := _diverged(torch.stack(losses).tolist(), epoch)) is not None:
            raise diverged from error
        raise
    values = torch.stack(losses).tolist()  # the epoch's one read of its losses
    if (diverged := _diverged(values, epoch)) is not None:
        raise diverged
    # summed in float64 in step order, each step's loss times its batch size, as engine version 2 always summed it
    loss_sum = sum((value * t.batches.batch_size for value in values), 0.0)
    seconds = time.perf_counter() - start
    return {"epoch": epoch, "train_loss": loss_sum / seen, "train_top1": 100.0 * correct.item() / seen,
            "val_loss": None, "val_top1": None, "test_loss": None, "test_top1": None,
            "lr": t.optimizer.param_groups[0]["lr"], "epoch_seconds": seconds, "images_per_second": seen / seconds}


def fit(cfg: RunConfig, data: Dataset, runtime: Runtime, store: RunStore,
        on_step: Callable[[int, int], None] | None = None,
        on_epoch: Callable[[dict], None] | None = None) -> tuple[nn.Module, list[dict]]:
    """Train (or finish training) one run; returns the model and one metrics dict per epoch.

    ``on_step(step, steps_per_epoch)`` and ``on_epoch(metrics)`` report progress. Raises
    :class:`Diverged` if the loss is not finite.
    """
    tune_allocator()  # keep large activations' memory in the heap: no page faults every step (experiments/speed.py)
    protocol = cfg.protocol
    t = prepare(cfg, data, runtime)
    history = resume(t, store.load_checkpoint())
    store.rewrite_metrics(history)  # metrics.jsonl always agrees with the checkpoint

    path = StepPath(t.model, runtime.compile)
    for epoch in range(len(history) + 1, protocol.epochs + 1):
        if callable(getattr(t.model, "set_epoch", None)):
            t.model.set_epoch(epoch - 1, protocol.epochs)  # 0-based epoch index
        start = time.perf_counter()
        metrics = train_epoch(t, path, epoch, on_step)
        for name, split_batches in t.eval_batches.items():
            if name == "val" or protocol.test_every_epoch or epoch == protocol.epochs:
                loss_, top1 = path.run(partial(evaluate, batches=split_batches, autocast=t.autocast), "eval")
                metrics[f"{name}_loss"], metrics[f"{name}_top1"] = _finite(loss_), top1
        if runtime.compile:  # which step ran; runs without --compile keep the metrics they always had
            metrics["step"] = path.label
        metrics["eval_seconds"] = time.perf_counter() - start - metrics["epoch_seconds"]
        history.append(metrics)
        store.append_metrics(metrics)
        store.save_checkpoint(checkpoint(t, epoch, history))
        if on_epoch:
            on_epoch(metrics)
    return t.model, history
