"""Model cost: parameters, MACs (ptflops), FLOPs (torch's counter), CPU latency, throughput, memory.

Two counters, side by side, because they count different things (docs/profiling.md):
* ``macs`` -- ptflops' module-hook backend: one multiply-add per weight use in convolutions and
  linear layers, plus one operation per element for BatchNorm, activations and pooling. Operators
  of ours that ptflops cannot see inside (the DCT's mean, sigmoid and broadcast add; dynamic
  convolutions' per-example kernels) declare their whole cost through a ``count_macs(input,
  output) -> int`` method, which is installed as a ptflops custom hook.
* ``flops`` -- ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per multiply-add of the
  matrix-multiply-like aten ops (convolution, mm, addmm, bmm), nothing for element-wise work.

Beside them ``count_bytes_moved``: the bytes a training step moves per image, op by op, the
measure that bounds these memory-bound networks on a GPU (``run.py bench gpu``).
"""
from __future__ import annotations

import copy
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import torch
from torch import nn

from baselines.registry import create_model

InputShape = tuple[int, int, int]


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``."""
    return sum(parameter.numel() for parameter in model.parameters())


MACS_COUNTER_VERSION = 2  # 2: subclasses of layers ptflops knows are counted (result.json cost.macs_counter)


def _custom_hooks(model: nn.Module) -> dict[type, Callable]:
    """ptflops hooks for the modules it would skip.

    ptflops looks a module's type up exactly, so a subclass of a layer it knows (our
    ``PointwiseExpansion(nn.Conv2d)``, timm's ``BatchNormAct2d`` and ``Linear``) would count
    nothing; such a module gets its nearest known base class's hook, plus one operation per
    output element for a fused activation (``act``, as timm's norm-act layers hold it: ptflops
    does not visit the children of a module it counts). Modules with a ``count_macs`` method
    declare their own cost.
    """
    from ptflops.pytorch_ops import MODULES_MAPPING

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        module.__flops__ += int(module.count_macs(inputs[0], output))

    def as_base(base_hook: Callable) -> Callable:
        def subclass_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            base_hook(module, inputs, output)
            act = getattr(module, "act", None)
            if isinstance(act, nn.Module) and not isinstance(act, nn.Identity):
                module.__flops__ += int(output.numel())
        return subclass_hook

    hooks: dict[type, Callable] = {}
    for module in model.modules():
        kind = type(module)
        if callable(getattr(module, "count_macs", None)):
            hooks[kind] = hook
        elif kind not in MODULES_MAPPING:
            base = next((b for b in kind.__mro__[1:] if b in MODULES_MAPPING), None)
            if base is not None:
                hooks[kind] = as_base(MODULES_MAPPING[base])
    return hooks


def count_macs(model: nn.Module, input_shape: InputShape) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (ptflops, pytorch backend, eval mode)."""
    from ptflops import get_model_complexity_info

    was_training = model.training
    try:
        macs, _ = get_model_complexity_info(
            model, tuple(input_shape), as_strings=False, print_per_layer_stat=False, verbose=False,
            backend="pytorch", custom_modules_hooks=_custom_hooks(model),
            # ptflops' functional patching counts nn.ReLU twice (the module hook and the F.relu it
            # calls) and nn.AdaptiveAvgPool2d likewise; module hooks alone count each layer once.
            backend_specific_config={"count_functional": False},
        )
    finally:
        model.train(was_training)
    if macs is None:
        raise RuntimeError(f"ptflops could not count the MACs of {type(model).__name__}")
    return int(macs)


def count_flops(model: nn.Module, input_shape: InputShape) -> int:
    """FLOPs of one forward pass at batch 1 by ``torch.utils.flop_counter`` (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


_ALLOCATIONS = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "detach", "lift_fresh"}


def count_bytes_moved(model: nn.Module, input_shape: InputShape, batch_size: int = 512,
                      float_bytes: int = 2) -> int:
    """Bytes one training step moves to and from memory per image, forward and backward, counted op by op.

    The counting rule (issue 33's "bytes per image"; the memory-bound speed limit of these networks):
    every aten op that runs in the forward pass, the cross-entropy loss and the backward pass reads
    each tensor it is given and writes each tensor it returns, once. So activations count where an
    op reads or writes them, weights each time an op reads them, gradients where backward writes and
    reads them. Floating-point tensors count ``float_bytes`` per element (2: bf16, as under CUDA
    autocast; the fp32 parts of autocast, e.g. the loss, are counted at 2 too), others their own size.
    Views and allocations (``view``, ``expand``, ``empty``...) move nothing. Not counted: the
    optimiser step and the input batch's preparation. Fused or cached kernels move fewer bytes, so
    this is the traffic of an eager step, a bound a step can approach, not a measurement.

    Counted at ``batch_size`` on the meta device (shapes only, nothing computed; a network whose
    ops need values is counted on the CPU instead), in train mode, and divided by ``batch_size``:
    weights and their gradients are amortised over the batch as in training.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    def size(t: torch.Tensor) -> int:
        return t.numel() * (float_bytes if t.is_floating_point() else t.element_size())

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if not func.is_view and func.__name__.split(".")[0] not in _ALLOCATIONS:
                Counter.total += sum(size(t) for t in tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor))
            return out

    def count(device: str) -> int:
        net = copy.deepcopy(model).to(device).train()
        x = torch.randn(batch_size, *input_shape, device=device)
        y = torch.zeros(batch_size, dtype=torch.long, device=device)
        Counter.total = 0
        with Counter():
            nn.functional.cross_entropy(net(x), y).backward()
        return Counter.total

    try:
        total = count("meta")
    except (NotImplementedError, RuntimeError):  # an op that reads values (e.g. .item()) cannot run on meta
        total = count("cpu")
    return round(total / batch_size)


def alternate(cases: dict, rounds: int, warmup_rounds: int = 0) -> dict[object, float]:
    """Call every case (a function of no arguments returning a number) once per round, in turn, for ``rounds``
    rounds after ``warmup_rounds``; the median of what each returned: whatever else the machine does falls on all
    cases alike."""
    values: dict = {name: [] for name in cases}
    for round_ in range(warmup_rounds + rounds):
        for name, case in cases.items():
            value = case()
            if round_ >= warmup_rounds:
                values[name].append(value)
    return {name: statistics.median(v) for name, v in values.items()}


def median_seconds(step: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_latency_ms(model: nn.Module, input_shape: InputShape, repeats: int = 30, warmup: int = 5,
                       threads: int | None = None, channels_last: bool = False) -> float:
    """Median wall time (ms) of one eval-mode forward pass at batch 1 on the CPU."""
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    was_training = model.training
    model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(1, *input_shape).contiguous(memory_format=memory_format)
    try:
        with torch.inference_mode():
            seconds = median_seconds(lambda: model(x), repeats, warmup)
    finally:
        model.train(was_training)
        torch.set_num_threads(previous_threads)
    return 1000.0 * seconds


def measure_latencies_side_by_side(models: dict, input_shape: InputShape, rounds: int = 7, repeats: int = 30,
                                   threads: int = 1) -> dict:
    """``measure_latency_ms`` of several models side by side: every round times each model in turn, so that whatever
    else the machine does falls on all of them alike; per model, the median over ``rounds``. ``models`` maps any key
    to a model; the result maps the same keys to milliseconds. What a ratio of two of these means is what a run's own
    ``latency_ms`` cannot say reliably: each run measures once, after training, under the load of its moment."""
    return alternate({key: partial(measure_latency_ms, model, input_shape, repeats=repeats, threads=threads)
                      for key, model in models.items()}, rounds)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), as env.json records it; the platform's processor name elsewhere."""
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def measure_train_throughput(model: nn.Module, input_shape: InputShape, batch_size: int = 128, repeats: int = 5,
                             warmup: int = 2, threads: int | None = None, channels_last: bool = False,
                             num_classes: int | None = None) -> float:
    """Median images/s of SGD training steps (forward, cross-entropy, backward, step) on random data.

    The model's parameters change; pass a copy if they matter.
    """
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.train()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, *input_shape, generator=generator).contiguous(memory_format=memory_format)
    num_classes = num_classes or getattr(model, "num_classes", 10)
    target = torch.randint(0, num_classes, (batch_size,), generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), target).backward()
        optimizer.step()

    try:
        seconds = median_seconds(step, repeats, warmup)
    finally:
        torch.set_num_threads(previous_threads)
    return batch_size / seconds


def peak_rss_mib() -> float:
    """High-water mark of this process's resident memory, MiB (Linux ``ru_maxrss`` is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass(frozen=True)
class ModelProfile:
    """One row of ``run.py profile``."""

    model: str
    input: str
    params: int
    macs: int
    flops: int
    latency_ms: float | None
    train_images_per_s: float | None
    train_batch_size: int
    peak_train_mib: float | None
    threads: int
    macs_fused: int | None = None  # MACs after ``model.fuse()`` (eval mode), for models that have one


def profile_model(name: str, input_shape: InputShape = (3, 32, 32), num_classes: int = 10, model_kwargs: dict | None = None,
                  timing: bool = True, batch_size: int = 128, latency_repeats: int = 30, train_repeats: int = 5,
                  threads: int | None = None) -> ModelProfile:
    """Profile the registered model ``name`` (built with ``timm.create_model``).

    ``peak_train_mib`` is the rise of the process's resident-memory high-water mark over the
    training-throughput measurement: exact when the process measured nothing bigger before,
    which :func:`profile_models` guarantees by profiling each model in a fresh process.
    """
    threads = threads or torch.get_num_threads()
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, in_chans=input_shape[0], **(model_kwargs or {}))
    params, macs, flops = count_params(model), count_macs(model, input_shape), count_flops(model, input_shape)
    macs_fused = None
    if callable(getattr(model, "fuse", None)):  # e.g. MDConv/MAConv: the inference form's cost too
        macs_fused = count_macs(copy.deepcopy(model).eval().fuse(), input_shape)
    latency = throughput = peak = None
    if timing:
        latency = measure_latency_ms(model, input_shape, repeats=latency_repeats, threads=threads)
        before = peak_rss_mib()
        throughput = measure_train_throughput(model, input_shape, batch_size, repeats=train_repeats, threads=threads)
        peak = peak_rss_mib() - before
    return ModelProfile(name, "x".join(map(str, input_shape)), params, macs, flops,
                        latency, throughput, batch_size, peak, threads, macs_fused)


def _profile_in_subprocess(kwargs: dict) -> dict:
    import subprocess

    code = ("import json, sys; from costing.profiling import profile_model; from dataclasses import asdict; "
            "print(json.dumps(asdict(profile_model(**json.loads(sys.argv[1])))))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    completed = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True, cwd=root)
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"profiling {kwargs['name']} failed: {last}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def profile_models(names: Sequence[str], isolate: bool = True, **kwargs) -> list[ModelProfile]:
    """Profile each model; with ``isolate`` (and timing) each in a fresh process so memory peaks are its own."""
    if isolate and kwargs.get("timing", True):
        return [ModelProfile(**_profile_in_subprocess(dict(name=name, **kwargs))) for name in names]
    return [profile_model(name, **kwargs) for name in names]


def profiles_as_dicts(profiles: Sequence[ModelProfile]) -> list[dict]:
    return [asdict(profile) for profile in profiles]
