"""Shared pieces of the benchmarks: alternating medians, fresh processes, data, one trainer epoch.

Everything compared is measured in the same run, alternating A, B, A, B... so that load from
other processes on the shared 2-core machine hits every side alike; the figures are medians.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from baselines.registry import create_model  # importing the registry registers dyclot's and the baselines' models
from costing.profiling import alternate, median_seconds  # noqa: F401 -- alternate: the benchmarks' import
from experiments.config import RunConfig, Runtime, Seeds, get_protocol
from experiments.data import load_dataset
from experiments.runner import torch_settings
from experiments.speed import to_memory_format, tune_allocator
from experiments.store import RunStore
from experiments.trainer import fit

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("dyclotnet_050", "mobilenetv2_cifar_100")  # the two models of targets 1, 2 and 4


def seconds(fn: Callable[[], object], repeats: int = 1) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (no warm-up)."""
    return median_seconds(fn, repeats, warmup=0)


def fresh(function: str, env: dict[str, str] | None = None, isolate: bool = True, timeout: float | None = None,
          **kwargs) -> dict:
    """``module:function(**kwargs)`` in a fresh interpreter (its own allocator and thread pools); its JSON result.

    ``isolate=False`` calls it in this process instead (cheap, for tests; ``env`` is then ignored).
    A TimeoutError after ``timeout`` seconds.
    """
    module, name = function.split(":")
    if not isolate:
        import importlib

        return getattr(importlib.import_module(module), name)(**kwargs)
    code = (f"import json, sys; from {module} import {name}; "
            f"print('RESULT ' + json.dumps({name}(**json.loads(sys.argv[1]))))")
    try:
        done = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, **(env or {})}, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"{function} took more than {timeout} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{function} failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(lines[-1][len("RESULT "):])


def set_threads(threads: int | None) -> int:
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def load_data(quick: bool = False):
    """CIFAR-10 (JPEG re-encoding) through the decode cache if the archive is present, else the synthetic set."""
    if not quick:
        try:
            return load_dataset("cifar10-jpeg")
        except FileNotFoundError:
            pass
    return load_dataset("synthetic")


def protocol_for(steps: int, batch_size: int, num_classes: int, epochs: int = 2):
    """The ``cpu`` recipe cut to ``steps`` training steps per epoch and a token test set."""
    return get_protocol("cpu", epochs=epochs, batch_size=batch_size, train_per_class=math.ceil(steps * batch_size / num_classes),
                        val_per_class=0, test_per_class=1)


def trainer_epoch(model: str = "dyclotnet_050", steps: int = 20, batch_size: int = 64, threads: int | None = None,
                  quick: bool = False, channels_last: bool = True, epochs: int = 2) -> dict:
    """Images/s of the last of ``epochs`` epochs of our trainer (``experiments.trainer.fit``), as ``run.py train`` runs it."""
    data = load_data(quick)
    protocol = protocol_for(steps, batch_size, len(data.classes), epochs)
    cfg = RunConfig(grid="bench", variant=model, model=model, dataset=data.name, protocol=protocol, seed=0,
                    seeds=Seeds.derive(0))
    runtime = Runtime(threads=threads or torch.get_num_threads(), channels_last=channels_last, device="cpu")
    with tempfile.TemporaryDirectory() as tmp, torch_settings(runtime):
        _, history = fit(cfg, data, runtime, RunStore(Path(tmp)))
    return {"images_per_second": history[-1]["images_per_second"], "threads": runtime.threads,
            "allocator_tuned": tune_allocator(), "dataset": data.name}


def sgd_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
             bf16: bool = False) -> None:
    """The model's own forward, cross-entropy (both under CPU bf16 autocast if ``bf16``), backward and optimiser step."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = nn.functional.cross_entropy(model(x).float(), y)
    loss.backward()
    optimizer.step()


def build(model: str, num_classes: int = 10, channels_last: bool = False) -> nn.Module:
    torch.manual_seed(0)
    net = create_model(model, num_classes=num_classes)
    return to_memory_format(net, torch.channels_last) if channels_last else net


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)
