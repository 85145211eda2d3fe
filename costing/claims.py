"""The published cost claim under each reading of the paper's open points.

Published (ICCAI 2022): DyClotNet-2.0x has 2.9x fewer MACs and 1.4x fewer parameters than
MobileNetV2-1.0x on CIFAR. Neither the recalibrator width nor the MobileNetV2 adaptation is
stated, so the ratios are computed for each combination (docs/interpretation.md).
"""
from __future__ import annotations

import itertools
import json

import torch

from baselines.registry import architecture, create_model
from study.claims import MATCH_TOLERANCE, PUBLISHED_MACS_RATIO, PUBLISHED_PARAMS_RATIO
from study.grids import GRIDS
from study.questions import SECOND_EDITION

from .profiling import count_bytes_moved, count_macs, count_params, cpu_model, measure_latencies_side_by_side

GPU_BATCH = 512  # the gpu protocol's batch (experiments.config; a test keeps them equal): bytes per image are counted at it

DYCLOT_READINGS: dict[str, dict] = {
    "default (p=2, r=4, hidden=N/r)": {},
    "hidden=(N/p)/r": {"recalibrator_width_base": "in"},
    "p=4": {"p": 4},
    "p=4, hidden=(N/p)/r": {"p": 4, "recalibrator_width_base": "in"},
    "r=16": {"r": 16},
    "replicator only": {"recalibrator": "none"},
}

# name -> (model, model kwargs, input shape, num_classes)
MOBILENET_READINGS: dict[str, tuple[str, dict, tuple[int, int, int], int]] = {
    "CIFAR: stem, 24- and 32-ch stages stride 1 (ends at 8x8)": ("mobilenetv2_cifar8_100", {}, (3, 32, 32), 10),
    "CIFAR: stem and 24-ch stage stride 1": ("mobilenetv2_cifar_100", {}, (3, 32, 32), 10),
    "CIFAR: stem stride 1 only": ("mobilenetv2_cifar_100", {"first_stage_stride1": False}, (3, 32, 32), 10),
    "ImageNet 224x224, 1000 classes": ("mobilenetv2_100", {}, (3, 224, 224), 1000),
}


def claim_cost_rows() -> list[dict]:
    """One row per (DyClotNet reading, MobileNetV2 reading): both costs and both ratios."""
    def cost(name: str, kwargs: dict, shape: tuple[int, int, int], classes: int) -> tuple[int, int]:
        model = create_model(name, num_classes=classes, in_chans=shape[0], **kwargs)
        return count_params(model), count_macs(model, shape)

    dyclot = {label: cost("dyclotnet_200", kwargs, (3, 32, 32), 10) for label, kwargs in DYCLOT_READINGS.items()}
    mobilenet = {label: cost(*spec) for label, spec in MOBILENET_READINGS.items()}
    rows = []
    for (d_label, (d_params, d_macs)), (m_label, (m_params, m_macs)) in itertools.product(dyclot.items(), mobilenet.items()):
        params_ratio, macs_ratio = m_params / d_params, m_macs / d_macs
        rows.append({
            "dyclotnet_200 reading": d_label, "mobilenetv2_100 reading": m_label,
            "dyclot_kwargs": DYCLOT_READINGS[d_label], "mobilenet_model": MOBILENET_READINGS[m_label][0],
            "mobilenet_kwargs": MOBILENET_READINGS[m_label][1],
            "dyclot_params": d_params, "dyclot_macs": d_macs, "mobilenet_params": m_params, "mobilenet_macs": m_macs,
            "params_ratio": round(params_ratio, 3), "macs_ratio": round(macs_ratio, 3),
            "params_match": abs(params_ratio / PUBLISHED_PARAMS_RATIO - 1) <= MATCH_TOLERANCE,
            "macs_match": abs(macs_ratio / PUBLISHED_MACS_RATIO - 1) <= MATCH_TOLERANCE,
        })
    return rows


def rows_as_markdown(rows: list[dict]) -> str:
    header = ["DyClotNet-2.0 reading", "MobileNetV2-1.0 reading", "DyClotNet params", "DyClotNet MACs",
              "MobileNetV2 params", "MobileNetV2 MACs", f"params ratio (claim {PUBLISHED_PARAMS_RATIO}x)",
              f"MACs ratio (claim {PUBLISHED_MACS_RATIO}x)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        mark = lambda ok: " (matches)" if ok else ""  # noqa: E731
        lines.append("| " + " | ".join([
            row["dyclotnet_200 reading"], row["mobilenetv2_100 reading"], f"{row['dyclot_params']:,}", f"{row['dyclot_macs']:,}",
            f"{row['mobilenet_params']:,}", f"{row['mobilenet_macs']:,}",
            f"{row['params_ratio']:.2f}x{mark(row['params_match'])}", f"{row['macs_ratio']:.2f}x{mark(row['macs_match'])}",
        ]) + " |")
    return "\n".join(lines)


def _network(row: dict) -> str:
    """One study-costs row's network: its architecture where the model records one (the same network spelled two
    ways is one), else its model name and arguments."""
    return row["architecture"] or json.dumps([row["model"], row["model_kwargs"]], sort_keys=True)


def study_cost_rows(grids: tuple[str, ...] | None = None, latency_rounds: int = 0, latency_repeats: int = 30) -> list[dict]:
    """Parameters, MACs and bytes moved per image by a training step (3x32x32 input, 10 classes; bytes:
    ``count_bytes_moved`` at the GPU protocol's batch of 512, bf16) of every variant of the second edition's grids
    and the pilots: what the plan scales the pilot's measured time by for networks the pilot does not train (MACs
    on the CPU, bytes on a GPU); and each one's ``architecture`` (the engine's twin test), by which the plan tells a
    network another grid already trains.

    With ``latency_rounds``, also ``latency_ms``: CPU batch-1 latency on 1 thread, measured as a run measures its own
    (``measure_latency_ms``, ``latency_repeats`` passes) but for every distinct network (``_network``) side by side
    in this one process (``measure_latencies_side_by_side``), and ``latency_setup``, how and where: the report's cost
    ratios in the looks read these rather than the runs' own measurements, which vary with the load of their moment."""
    names = grids or tuple(dict.fromkeys([*SECOND_EDITION, *(n for n in GRIDS if n.startswith("pilot-"))]))
    unknown = sorted(set(names) - set(GRIDS))
    if unknown:
        raise ValueError(f"unknown grid(s) {unknown}; known: {', '.join(sorted(GRIDS))}")
    rows, models = [], {}
    for grid in names:
        for variant, spec in GRIDS[grid].variants.items():
            model = create_model(spec.model, num_classes=10, **spec.model_kwargs)
            rows.append({"grid": grid, "variant": variant, "model": spec.model, "model_kwargs": dict(spec.model_kwargs),
                         "params": count_params(model), "macs": count_macs(model, (3, 32, 32)),
                         "bytes_per_image": count_bytes_moved(model, (3, 32, 32), batch_size=GPU_BATCH),
                         "architecture": architecture(model)})
            models.setdefault(_network(rows[-1]), model)
    if latency_rounds:
        latency = measure_latencies_side_by_side(models, (3, 32, 32), rounds=latency_rounds, repeats=latency_repeats)
        setup = {"cpu": cpu_model(), "threads": 1, "batch": 1, "rounds": latency_rounds, "repeats": latency_repeats,
                 "networks": len(models), "torch": torch.__version__}
        for row in rows:
            row.update(latency_ms=latency[_network(row)], latency_setup=setup)
    return rows


def dct_bound_rows(alphas: tuple[float, ...] = (1.0, 2.0), p: int = 2, r: int = 4, side: int = 32) -> list[dict]:
    """Eq. (8)'s bound ``C1 <= 5/16 C0`` (M = N, p >= 2) counted on DyClotNet's own layers, and the DCT module's share.

    For each width ``N`` of DyClotNet-``alpha`` whose stage keeps M = N at stride 1 (Table 2), at that stage's
    side ``Df`` for a ``side`` x ``side`` input: ``c0`` the separable convolution of eq. (7) (3x3 depthwise + 1x1,
    counted by ptflops, which is exactly eq. (7)); ``c1`` the DCT bottleneck's dense arithmetic (torch's counter: its
    three convolutions, eq. (8)'s first line with the depthwise term kept, plus the recalibrator's two small fully
    connected layers); ``c1_approx`` eq. (8)'s second line (the depthwise term dropped), for which the paper states the
    bound; and the DCT module's MACs (ptflops: clones, recalibrator, merge) as a share of the whole bottleneck's."""
    from torch import nn

    from dyclot import DCTBottleneck, stage_widths
    from dyclot.dyclotnet import STAGES

    from .profiling import count_flops

    rows = []
    for alpha in alphas:
        _, widths = stage_widths(alpha, p, 8)
        df = side
        for (_, _, stride), n in zip(STAGES, widths, strict=True):
            df //= stride
            if stride != 1 or any(row["alpha"] == alpha and row["N"] == n for row in rows):
                continue
            separable = nn.Sequential(nn.Conv2d(n, n, 3, padding=1, groups=n, bias=False), nn.Conv2d(n, n, 1, bias=False))
            block = DCTBottleneck(n, n, p=p, expansion_kwargs={"r": r})
            shape = (n, df, df)
            c0, c1 = count_macs(separable, shape), count_flops(block, shape) // 2
            dct_macs, block_macs = count_macs(block.expand, (n // p, df, df)), count_macs(block, shape)
            rows.append({"alpha": alpha, "M": n, "N": n, "Df": df, "p": p, "r": r, "c0": c0, "c1": c1,
                         "c1_over_c0": round(c1 / c0, 4),
                         "c1_approx_over_c0": round(df * df * (n * n / (2 * p) + n * n / (4 * p * p)) / c0, 4),
                         "dct_macs": dct_macs, "bottleneck_macs": block_macs,
                         "dct_share": round(dct_macs / block_macs, 4)})
    return rows
