"""Test helpers shared by the tests: every model of ours in timm's registry, and a tiny
timm-registered network for the engine tests (no dyclot needed, fast)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests")) if p not in sys.path]  # for `import run`, plugin `conftest`


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


# Test modules whose tests train, simulate or start processes for more than a few seconds each: marked `slow`
# here, in one place, so that `make test-fast` (pytest -m "not slow") leaves them out. A single slow test in
# another module carries @pytest.mark.slow itself.
SLOW_MODULES = frozenset({"test_benchmarks", "test_engine_cli", "test_engine_ray", "test_engine_train", "test_gpu",
                          "test_reliability", "test_reliability_fuzz", "test_report_committed", "test_reuse",
                          "test_statistics_calibration"})


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.path.stem in SLOW_MODULES:
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
    """Conv-BN-ReLU, pool, linear. ``nan_at_step``/``fail_at_step`` (1-based training steps) inject faults."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 8, nan_at_step: int = 0,
                 fail_at_step: int = 0, **_: object) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1))
        self.head = nn.Linear(width, num_classes)
        self.nan_at_step, self.fail_at_step, self.steps, self.epochs_seen = nan_at_step, fail_at_step, 0, []

    def set_epoch(self, epoch: int, num_epochs: int) -> None:
        self.epochs_seen.append((epoch, num_epochs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps += self.training
        if self.training and self.steps == self.fail_at_step:
            raise RuntimeError("injected failure")
        out = self.head(self.features(x))
        return out * float("nan") if self.training and self.steps == self.nan_at_step else out


if not timm.is_model("engine_test_net"):
    @timm.models.register_model
    def engine_test_net(pretrained: bool = False, **kwargs) -> TinyNet:
        return TinyNet(**kwargs)
