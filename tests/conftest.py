"""Test helpers shared by the tests: every model of ours in timm's registry, and a tiny
timm-registered network for the engine tests (no dyclot needed, fast)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
# How long a test waits for a child process to reach a point (an epoch, a run) before failing: a bound on a hang,
# never a speed target (benchmarks hold those). A machine busy with other work can take minutes to start torch.
HANG_GUARD_S = 600
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests")) if p not in sys.path]  # for `import run`, plugin `conftest`


def wait_for(ready: Callable[[], bool], child: subprocess.Popen, what: str) -> None:
    """Wait until ``ready()`` holds; fail, naming ``what``, the child's exit code and (where piped) its stderr, if
    ``child`` exits first or ``HANG_GUARD_S`` pass (a hung child is killed then, never left behind)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not ready() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if ready():
        return
    code = child.poll()
    if code is None:
        child.kill()
        child.wait()
        raise AssertionError(f"{what}: not after {HANG_GUARD_S} s (the child was still running: killed)")
    err = child.communicate()[1] if child.stderr else ""
    raise AssertionError(f"{what}: the child exited first (exit code {code}){f': {err}' if err else ''}")


def registered_models(package: str | None = None) -> list[str]:
    """Every model that ``dyclot`` and ``baselines`` register with timm (or only ``package``'s),
    found through the registry as timm's tests iterate ``timm.list_models()``: timm's own models
    and the test network below are not ours and are left out."""
    # Imported here, not at the top: the engine tests load this file as a model plugin
    # (`--import conftest`) for its tiny network, which needs neither package.
    import baselines  # noqa: F401  (registers the baseline networks)
    import dyclot  # noqa: F401  (registers DyClotNet)

    packages = (package,) if package else ("dyclot", "baselines")
    return [name for name in timm.list_models()
            if timm.models.model_entrypoint(name).__module__.split(".")[0] in packages]


# The tests marked `slow` (they train, simulate or start processes for more than a few seconds, measured with
# `pytest --durations=0`), listed here in one place: `make test-fast` (pytest -m "not slow") leaves them out.
# Whole modules, then single tests of other modules (by function: every parameter of it); a new slow test may
# also carry @pytest.mark.slow itself.
SLOW_MODULES = frozenset({"test_benchmarks", "test_engine_cli", "test_engine_ray", "test_engine_train", "test_gpu",
                          "test_models", "test_reliability", "test_reliability_fuzz", "test_report_committed",
                          "test_reuse", "test_statistics_calibration"})
SLOW_TESTS = frozenset({
    ("test_analysis", "test_family_intervals_never_exclude_zero_beside_no_significant_difference"),
    ("test_analysis_io", "test_analysis_never_imports_the_engine_or_torch"),
    ("test_analysis_io", "test_report_is_complete_and_byte_identical"),
    ("test_dyclot", "test_batch_constant_recalibration_reaches_the_output"),
    ("test_dyclot", "test_default_network_trains_stably"),
    ("test_dyclot", "test_every_variant_option_builds_and_trains"),
    ("test_dyclot", "test_mac_counter_counts_subclasses_of_layers_ptflops_knows"),
    ("test_engine_data", "test_batches_are_seeded_and_crops_are_windows"),
    ("test_narrow_tables", "test_profile_table"),
    ("test_narrow_tables", "test_profile_table_keeps_exact_counts_on_a_wide_terminal"),
})


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        function = getattr(item, "originalname", item.name)
        if item.path.stem in SLOW_MODULES or (item.path.stem, function) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of model tests: on the shared 2-core machine, 2 threads under load
    ran them 20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def seeded() -> None:
    torch.manual_seed(0)


class TinyNet(nn.Module):
    """Conv-BN-ReLU, pool, linear. ``nan_at_step``/``fail_at_step`` (1-based training steps) inject faults;
    ``oom_once`` (a file's path): the first training step runs out of device memory while that file exists, and
    removes it (so that the run's next start fits); ``step_seconds``: each training step waits that long (a long
    run)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 8, nan_at_step: int = 0,
                 fail_at_step: int = 0, oom_once: str = "", step_seconds: float = 0.0, **_: object) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1))
        self.head = nn.Linear(width, num_classes)
        self.nan_at_step, self.fail_at_step, self.steps, self.epochs_seen = nan_at_step, fail_at_step, 0, []
        self.oom_once, self.step_seconds = oom_once, step_seconds

    def set_epoch(self, epoch: int, num_epochs: int) -> None:
        self.epochs_seen.append((epoch, num_epochs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps += self.training
        if self.training and self.step_seconds:
            time.sleep(self.step_seconds)
        if self.training and self.steps == self.fail_at_step:
            raise RuntimeError("injected failure")
        if self.training and self.steps == 1 and self.oom_once and os.path.exists(self.oom_once):
            os.remove(self.oom_once)
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        out = self.head(self.features(x))
        return out * float("nan") if self.training and self.steps == self.nan_at_step else out


if not timm.is_model("engine_test_net"):
    @timm.models.register_model
    def engine_test_net(pretrained: bool = False, **kwargs) -> TinyNet:
        return TinyNet(**kwargs)
