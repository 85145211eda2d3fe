"""Feature Transform Module (FTM) and the Ghost/FTM expansion operators for the DCT bottleneck.

FTM: Li, Wei, Wang, Xie, "Efficient feature transform module", Multimedia Tools and Applications
(2024); code https://github.com/li-ju-bazhong/Efficient-feature-transform-module
(``models/resnet_ftm.py``: ``FeatureTransModule``, ``NeighborFusion``), which
:class:`FeatureTransformModule` follows: pointwise conv with bias, depthwise conv, a kernel-1
channel gate. Departure: for ``S > 2`` the official code applies each further gate to everything
made so far (``2^(S-1)`` times the prime channels, then cut); we make ``S-1`` gated copies of the
prime features (the same parameters; identical for the default ``S = 2``).
GhostNet's cheap operation: Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020
(arXiv:1911.11907, code https://github.com/huawei-noah/Efficient-AI-Backbones).

* :class:`NeighbourChannelGate` -- FTM's "neighbour 1-D convolution": ``sigmoid(conv1d(GAP(x)))``,
  one gate per channel computed from its ``k`` neighbouring channels (ECA-like; the official FTM
  uses ``k = 1``: each channel gated by its own pooled value and one shared weight).
* :class:`FeatureTransformModule` -- drop-in for a k x k convolution: pointwise conv to
  ``ceil(N/S)`` prime channels (with bias), depthwise k x k conv, ``S-1`` gated copies, concatenated, cut to N.
* :class:`GhostExpansion`, :class:`FTMExpansion` -- the DCT bottleneck's expansion slot
  (``in_chs -> p * in_chs``), registered as ``"ghost"`` and ``"ftm"`` with
  :func:`dyclot.layers.register_expansion` when this module is imported.

MAC counting: :class:`FTMExpansion` (also FTM's broadcast step) declares its GAP, 1-D conv,
sigmoid and gating products in ``count_macs(x, y)``, like the DCT module does, so that the
expansion operators are compared on the same terms; the convolutions and BatchNorms are counted
by ptflops' module hooks. Nothing here imports a network.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from dyclot.layers import check_positive_int, register_expansion

__all__ = ["FTMExpansion", "FeatureTransformModule", "GhostExpansion", "NeighbourChannelGate"]


class NeighbourChannelGate(nn.Module):
    """``copies`` channel gates, each ``sigmoid(conv1d_k(GAP(x)))`` over the channel axis.

    The global-average-pooled descriptor (B, C) is treated as a 1-channel sequence of length C and
    convolved with ``copies`` kernels of size ``k`` (zero padding, no bias): gate ``j`` of channel
    ``c`` depends on channels ``c-k//2 .. c+k//2`` only. Returns (B, copies, C).
    Parameters: ``copies * k``. MACs per example: ``copies * C * k``.
    """

    def __init__(self, copies: int, kernel_size: int = 3) -> None:
        super().__init__()
        check_positive_int("copies", copies)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be odd so that gates stay centred on their channel")
        self.conv = nn.Conv1d(1, copies, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x.mean((2, 3)).unsqueeze(1)))


class FTMExpansion(nn.Module):
    """FTM-style expansion ``C -> p*C``: ``[x, g_1(x)*x, ..., g_{p-1}(x)*x]`` (FTM's broadcast step).

    Each copy has its own :class:`NeighbourChannelGate` kernel over the input's channels. In the
    DCT slot it is used alone (the bottleneck's two pointwise convolutions already make the prime
    features) with the official FTM's gate kernel 1 (``gate_kernel``);
    :class:`FeatureTransformModule` applies it to its prime features with ``p = S``.
    Parameters: ``(p-1)*k``. MACs per example: ``C*H*W`` (GAP) ``+ (p-1)*C*(k+1)`` (1-D conv,
    sigmoid) ``+ (p-1)*C*H*W`` (gating products).
    """

    def __init__(self, in_chs: int, p: int = 2, gate_kernel: int = 1) -> None:
        super().__init__()
        check_positive_int("p", p, minimum=2)
        self.in_chs, self.p, self.out_chs = in_chs, p, p * in_chs
        self.gate = NeighbourChannelGate(p - 1, gate_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        copies = x.unsqueeze(1) * self.gate(x).view(b, self.p - 1, c, 1, 1)
        return torch.cat((x, copies.reshape(b, -1, h, w)), dim=1)

    def count_macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        b, c, h, w = x.shape
        copies, k = self.p - 1, self.gate.conv.kernel_size[0]
        return b * (c * h * w + copies * c * (k + 1) + copies * c * h * w)


class FeatureTransformModule(nn.Module):
    """FTM: a cheap replacement for a ``k x k`` convolution ``in_chs -> out_chs`` (N).

    As the official ``FeatureTransModule``: ``prime = DW_kxk(PW(x))`` with ``M = ceil(N/S)``
    channels (pointwise at input resolution with a bias, ``pointwise_bias=False`` drops it; the
    stride on the depthwise conv, no bias; no norm or activation between them); ``S-1`` copies
    ``g_j(prime) * prime`` (:class:`FTMExpansion` with ``p = S``) with gates of kernel
    ``gate_kernel = 1`` (the official ``NeighborFusion(kernel_size=1)``); ``[prime, copies][:, :N]``.
    For ``S > 2`` the official code gates everything made so far instead (see the module docstring).

    Parameters: ``I*M + M + M*k*k + (S-1)*k_gate``. MACs per example:
    ``H*W*(I*M + M) + H'*W'*M*k*k`` (convs, bias) + the broadcast's (:class:`FTMExpansion`, ``p = S``).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, ratio: int = 2,
                 gate_kernel: int = 1, pointwise_bias: bool = True) -> None:
        super().__init__()
        check_positive_int("ratio", ratio, minimum=2)
        self.out_chs = out_chs
        prime = math.ceil(out_chs / ratio)
        self.primary = nn.Conv2d(in_chs, prime, 1, bias=pointwise_bias)
        self.depthwise = nn.Conv2d(prime, prime, kernel_size, stride, kernel_size // 2, groups=prime, bias=False)
        self.broadcast = FTMExpansion(prime, ratio, gate_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.broadcast(self.depthwise(self.primary(x)))[:, : self.out_chs]


class GhostExpansion(nn.Module):
    """Ghost-style expansion ``C -> p*C``: ``[x, BN(DW_kxk(x))]`` (GhostNet's cheap operation).

    The input is the primary part; the ``(p-1)*C`` ghost channels come from one depthwise
    convolution with channel multiplier ``p-1`` (ghost channel ``c*(p-1)+j`` is made from input
    channel ``c``) and BatchNorm, no activation (the DCT slot's output is linear, as in GhostNet's
    second Ghost module). Parameters: ``(p-1)*C*(k*k + 2)``. MACs: ``(p-1)*C*k*k*H*W`` (+BN).
    """

    def __init__(self, in_chs: int, p: int = 2, kernel_size: int = 3,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d) -> None:
        super().__init__()
        check_positive_int("p", p, minimum=2)
        ghosts = (p - 1) * in_chs
        self.in_chs, self.p, self.out_chs = in_chs, p, p * in_chs
        self.cheap = nn.Sequential(nn.Conv2d(in_chs, ghosts, kernel_size, 1, kernel_size // 2, groups=in_chs, bias=False),
                                   norm_layer(ghosts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.cheap(x)), dim=1)


@register_expansion("ghost")
def _ghost(in_chs: int, p: int, *, ghost_kernel: int = 3, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
           **_: object) -> nn.Module:
    return GhostExpansion(in_chs, p, ghost_kernel, norm_layer)


@register_expansion("ftm")
def _ftm(in_chs: int, p: int, *, gate_kernel: int = 1, **_: object) -> nn.Module:
    return FTMExpansion(in_chs, p, gate_kernel)
