"""Convolution operators of the baselines, by name: what the networks put in place of a conv.

``create_conv(name, in_chs, out_chs, kernel_size, stride, **options)`` builds one of
:data:`CONV_OPERATORS`; every operator maps (B, in_chs, H, W) to (B, out_chs, H', W') like
``nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=False)``.

Names: ``conv`` (:func:`~baselines.folding.static_conv`), ``dynconv``
(:class:`~baselines.dynamic_conv.DynamicConv2d`, Chen et al. CVPR 2020), ``condconv``
(:class:`~baselines.dynamic_conv.CondConv`, Yang et al. NeurIPS 2019), ``dcd``
(:class:`~baselines.dynamic_conv.DynamicConvDecomposition`, Li et al. ICLR 2021; 1x1 only), ``ftm``
(:class:`~baselines.ftm.FeatureTransformModule`, Li et al. MTAP 2024), ``mdconv`` and ``maconv``
(:class:`~baselines.folding.MDConv2d`, :class:`~baselines.folding.MAConv2d`, Luo & Zhan HTL 2022).

MAC counting: operators whose work ptflops' module hooks cannot see (per-example kernels via
``F.conv2d``/``einsum``, gates, products) declare their whole cost in ``count_macs(x, y)``, which
``costing.profiling`` installs as a ptflops hook: :class:`DynamicConv2d`, :class:`CondConv`,
:class:`DynamicConvDecomposition` (and the DCD classifier), :class:`MDConv2d`, :class:`MAConv2d` and
:class:`~baselines.ftm.FTMExpansion` (also inside FTM). Ghost expansion and static convs are
plain Conv/BatchNorm modules.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dyclot.layers import check_choice

from .dynamic_conv import CondConv, DynamicConv2d, DynamicConvDecomposition
from .folding import MAConv2d, MDConv2d, static_conv
from .ftm import FeatureTransformModule

__all__ = ["CONV_OPERATORS", "create_conv"]

CONV_OPERATORS: dict[str, Callable[..., nn.Module]] = {
    "conv": static_conv,
    "dynconv": DynamicConv2d,
    "condconv": CondConv,
    "dcd": DynamicConvDecomposition,
    "ftm": FeatureTransformModule,
    "mdconv": MDConv2d,
    "maconv": MAConv2d,
}


def create_conv(name: str, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, **options: object) -> nn.Module:
    """Build the operator ``name`` as a replacement for a ``kernel_size`` conv ``in_chs -> out_chs``."""
    check_choice("conv operator", name, tuple(CONV_OPERATORS))
    return CONV_OPERATORS[name](in_chs, out_chs, kernel_size=kernel_size, stride=stride, **options)

