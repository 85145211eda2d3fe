"""The paper's published claims and their numbers (read by the costing, the analysis and the report).

Published (ICCAI 2022): DyClotNet-2.0x is 0.9 points more accurate than MobileNetV2-1.0x on
CIFAR-10 (0.3 on CIFAR-100) with 2.9x fewer MACs and 1.4x fewer parameters.
"""
from __future__ import annotations

PUBLISHED_ACCURACY_GAIN = 0.9  # points of top-1, CIFAR-10
PUBLISHED_ACCURACY_GAIN_CIFAR100 = 0.3  # points of top-1, CIFAR-100
PUBLISHED_MACS_RATIO = 2.9
PUBLISHED_PARAMS_RATIO = 1.4
MATCH_TOLERANCE = 0.05  # relative: a ratio within 5% of the published one (rounded to one decimal) "matches"

# (claim as the report states it, what it is about, the published number; None: no paper claim)
PAPER_CLAIMS: tuple[tuple[str, str, float | None], ...] = (
    (f"DyClotNet 2.0x vs MobileNetV2 1.0x on CIFAR-10: +{PUBLISHED_ACCURACY_GAIN} points top-1", "acc",
     PUBLISHED_ACCURACY_GAIN),
    (f"DyClotNet 2.0x needs {PUBLISHED_MACS_RATIO}x fewer MACs than MobileNetV2 1.0x", "macs", PUBLISHED_MACS_RATIO),
    (f"DyClotNet 2.0x has {PUBLISHED_PARAMS_RATIO}x fewer parameters than MobileNetV2 1.0x", "params",
     PUBLISHED_PARAMS_RATIO),
    ("(no paper claim) CPU latency of DyClotNet 2.0x vs MobileNetV2 1.0x", "latency_ms", None),
)
CIFAR100_CLAIM = f"DyClotNet 2.0x vs MobileNetV2 1.0x on CIFAR-100: +{PUBLISHED_ACCURACY_GAIN_CIFAR100} points top-1"
PARAMS_RATIO_HEADER = f"params ratio (claim {PUBLISHED_PARAMS_RATIO}x)"
MACS_RATIO_HEADER = f"MACs ratio (claim {PUBLISHED_MACS_RATIO}x)"

__all__ = ["CIFAR100_CLAIM", "MACS_RATIO_HEADER", "MATCH_TOLERANCE", "PAPER_CLAIMS", "PARAMS_RATIO_HEADER",
           "PUBLISHED_ACCURACY_GAIN", "PUBLISHED_ACCURACY_GAIN_CIFAR100", "PUBLISHED_MACS_RATIO",
           "PUBLISHED_PARAMS_RATIO"]
