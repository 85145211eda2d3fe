"""GhostNet for 32x32 input, built on timm's ``ghostnet_*``.

Paper: Han, Wang, Tian, Guo, Xu, Xu, "GhostNet: More Features from Cheap Operations", CVPR 2020,
arXiv:1911.11907; code https://github.com/huawei-noah/Efficient-AI-Backbones. The network is
timm's (``timm.create_model("ghostnet_100")``); only what 32x32 input needs is changed.

Departures from the paper (documented in docs/baselines.md):
* stem convolution stride 2 -> 1;
* with ``first_stage_stride1=True`` (default) the first downsampling Ghost bottleneck
  (``blocks[1][0]``, 16 -> 24 channels) has stride 1: its depthwise conv and its shortcut's
  depthwise conv keep their weights but no longer subsample, so a 32x32 image reaches the last
  stage at 4x4 (as in MobileNetV2-CIFAR); with ``False`` it reaches 2x2.
"""
from __future__ import annotations

import timm
from timm.models import register_model
from timm.models.ghostnet import GhostNet

from ._builder import cifar_input_cfg, model_kwargs

__all__: list[str] = []

WIDTHS = {0.5: "050", 1.0: "100"}


def _create_ghostnet_cifar(width: float, pretrained: bool = False, first_stage_stride1: bool = True, **kwargs) -> GhostNet:
    """timm's ``ghostnet_<width>`` with a stride-1 stem and, optionally, a stride-1 first downsampling block."""
    variant = f"ghostnet_{WIDTHS.get(width, width)}"
    kwargs = model_kwargs(f"{variant} (CIFAR)", pretrained, kwargs)
    if width not in WIDTHS:
        raise ValueError(f"width={width!r} is not available; choose one of {sorted(WIDTHS)}")
    model = timm.create_model(variant, pretrained=False, **kwargs)
    model.conv_stem.stride = (1, 1)
    if first_stage_stride1:
        block = model.blocks[1][0]
        block.conv_dw.stride = (1, 1)
        block.shortcut[0].stride = (1, 1)
        block.stride = 1
    cifar_input_cfg(model, kwargs.get("in_chans", 3))
    return model


@register_model
def ghostnet_cifar_050(pretrained: bool = False, **kwargs) -> GhostNet:
    """GhostNet-0.5 for 32x32 input."""
    return _create_ghostnet_cifar(0.5, pretrained, **kwargs)


@register_model
def ghostnet_cifar_100(pretrained: bool = False, **kwargs) -> GhostNet:
    """GhostNet-1.0 for 32x32 input."""
    return _create_ghostnet_cifar(1.0, pretrained, **kwargs)
