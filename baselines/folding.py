"""Training-time over-parameterised convolutions that fold into one static convolution.

Paper: Luo and Zhan, "Multi-layer dynamic and asymmetric convolutions", High Technology Letters
28(3):227-236, 2022. No arXiv version or code is known to us and only the abstract is available,
so both operators are *interpretations* (docs/baselines.md lists every choice):

* :class:`MAConv2d` (multi-layer asymmetric convolution): during training a k x k convolution
  plus a stacked pair of asymmetric linear layers, k x 1 then 1 x k, with no nonlinearity,
  norm or bias anywhere; ``fuse`` folds them into one k x k convolution (exact, zero extra
  inference cost: the abstract's claim).
* :class:`MDConv2d` (multi-layer dynamic convolution): the over-parameters are spread over two
  stacked linear layers (k x k ``in -> mid``, 1 x 1 ``mid -> out``) with attention applied to the
  features between them (the abstract's "expanding form"). Its folded, "compact" form applies
  the attention to the weights: ``W(a) = W2 diag(a) W1``.
  - ``attention="example"`` (default): per-example attention in training and eval, a dynamic
    network as the paper describes it; ``fuse`` switches to the compact form (per-example weight
    ``W2 diag(a(x)) W1``, one conv), which is exact for every input but keeps the
    over-parameters. The compact form is not cheaper in general: assembling the kernel costs
    ``O*M*I*k*k`` per example, so it pays only on large maps (docs/baselines.md has the counts).
  - ``attention="batch"`` (option, our departure): the attention is computed from the batch-mean
    descriptor in training and replaced by its running average in eval, like BatchNorm
    statistics, so the eval network is a static linear map and ``fuse`` gives one static
    convolution (exact in eval): a training-time reparameterisation, not a dynamic network.

:func:`fuse_modules` replaces every foldable module of a network by its inference form; networks
expose it as ``model.fuse()``. Nothing here imports a network.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dyclot.layers import check_choice

__all__ = ["MAConv2d", "MDConv2d", "fuse_modules", "static_conv"]

MDAttention = Literal["batch", "example"]


def static_conv(in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1) -> nn.Conv2d:
    """The plain convolution every operator here replaces: ``k x k``, padding ``k//2``, no bias."""
    return nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=False)


class MAConv2d(nn.Module):
    """MAConv (interpretation): ``y = W * x + W_h * (W_v * x)`` in training, one conv after fusing.

    ``W``: k x k ``in -> out`` (stride s); ``W_v``: k x 1 ``in -> mid`` (stride (s, 1), padding
    (k//2, 0)); ``W_h``: 1 x k ``mid -> out`` (stride (1, s), padding (0, k//2)). The stacked pair
    is a linear two-layer ("multi-layer") branch of asymmetric kernels; its composite is the
    k x k kernel ``K[o,i,a,b] = sum_m W_h[o,m,b] W_v[m,i,a]``, and because the two layers pad
    along different axes the composition equals a k x k convolution with padding k//2 exactly,
    borders included. For k = 1 both layers are 1 x 1 (a factorised linear branch).

    Training parameters: ``O*I*k*k + M*I*k + O*M*k`` (``M = mid_chs``, default ``min(in, out)``,
    which keeps the branch's composite kernel full-rank for k = 1);
    after :meth:`fuse`: ``O*I*k*k`` (a plain :func:`static_conv`). MACs per example
    (:meth:`count_macs`): ``H'W'*O*I*k*k + H'*W*M*I*k + H'W'*O*(M*k + 1)``.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, mid_chs: int | None = None) -> None:
        super().__init__()
        mid, pad = mid_chs or min(in_chs, out_chs), kernel_size // 2
        self.in_chs, self.out_chs, self.kernel_size, self.stride = in_chs, out_chs, kernel_size, stride
        self.conv = static_conv(in_chs, out_chs, kernel_size, stride)
        self.vertical = nn.Conv2d(in_chs, mid, (kernel_size, 1), (stride, 1), (pad, 0), bias=False)
        self.horizontal = nn.Conv2d(mid, out_chs, (1, kernel_size), (1, stride), (0, pad), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.horizontal(self.vertical(x))

    def count_macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """Training form: the three convolutions and the branch sum (ptflops conventions)."""
        b, c, h, w = x.shape
        k, mid, out_hw = self.kernel_size, self.vertical.out_channels, y.shape[-2] * y.shape[-1]
        vertical_out = y.shape[-2] * w  # k x 1 conv: rows subsampled, all columns
        return b * (out_hw * self.out_chs * c * k * k + vertical_out * mid * c * k + out_hw * self.out_chs * (mid * k + 1))

    @torch.no_grad()
    def fused_weight(self) -> torch.Tensor:
        """``W + K`` (out, in, k, k), the composite computed in float64."""
        w_v, w_h = self.vertical.weight.double()[..., 0], self.horizontal.weight.double()[:, :, 0]
        return self.conv.weight.double() + torch.einsum("omb,mia->oiab", w_h, w_v)

    def fuse(self) -> nn.Conv2d:
        conv = static_conv(self.in_chs, self.out_chs, self.kernel_size, self.stride).to(self.conv.weight)
        conv.weight.data.copy_(self.fused_weight())
        return conv


class MDConv2d(nn.Module):
    """MDConv (interpretation): ``y = W2 * (a ⊙ (W1 * x))``, attention ``a`` on the mid features.

    ``W1``: k x k ``in -> mid`` (stride s), ``W2``: 1 x 1 ``mid -> out``, no bias, no nonlinearity
    between them; ``a = sigmoid(FC2(ReLU(FC1(GAP(x)))))`` over the ``mid`` channels, from the
    block input ``x`` (so the expanding and compact forms are equal for any input):
    ``W2 (a ⊙ W1 x) = (W2 diag(a) W1) x``. ``mid = expansion * min(in, out)`` (default 2),
    FC1 width ``max(in // reduction, 4)``.

    ``attention="example"`` (default): one ``a`` per example, in training and eval; :meth:`fuse`
    turns on the compact form (dynamic kernel, one conv per example via a grouped convolution),
    keeping all parameters. ``attention="batch"``: in training ``a`` is computed once per batch
    from the batch-mean of ``GAP(x)`` and an exponential running average (``momentum``) is kept;
    eval uses the running average, so :meth:`fuse` returns one static :func:`static_conv`.

    Training parameters: ``M*I*k*k + O*M + I*h + h + h*M + M``; after a batch-mode fuse ``O*I*k*k``.
    MACs per example (:meth:`count_macs`), expanding form: ``H'W'(M*I*k*k + M + O*M)``; compact
    form: ``H'W'*O*I*k*k + O*M*(I*k*k + 1)`` (kernel assembly); plus the attention where it is
    computed per forward (``I*H*W + (I+1)*h + h + (h+1)*M + M``).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, expansion: int = 2,
                 reduction: int = 4, attention: MDAttention = "example", momentum: float = 0.1) -> None:
        super().__init__()
        check_choice("attention", attention, ("batch", "example"))
        mid = expansion * min(in_chs, out_chs)
        hidden = max(in_chs // reduction, 4)
        self.in_chs, self.out_chs, self.kernel_size, self.stride = in_chs, out_chs, kernel_size, stride
        self.attention_mode, self.momentum, self.compact = attention, momentum, False
        self.conv1 = static_conv(in_chs, mid, kernel_size, stride)
        self.conv2 = nn.Conv2d(mid, out_chs, 1, bias=False)
        self.attention = nn.Sequential(nn.Linear(in_chs, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, mid), nn.Sigmoid())
        if attention == "batch":
            self.register_buffer("running_attention", torch.full((mid,), 0.5))

    def feature_attention(self, x: torch.Tensor) -> torch.Tensor:
        """``a``: (B, mid) in example mode; (1, mid) in batch mode (running average in eval)."""
        descriptor = x.mean((2, 3))
        if self.attention_mode == "example":
            return self.attention(descriptor)
        if not self.training:
            return self.running_attention.unsqueeze(0)
        a = self.attention(descriptor.mean(0, keepdim=True))
        with torch.no_grad():
            self.running_attention.lerp_(a[0].detach(), self.momentum)
        return a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.feature_attention(x)
        if not self.compact:  # expanding form: attention on the features
            return self.conv2(self.conv1(x) * a[:, :, None, None])
        b, c, h, w = x.shape  # compact form: attention on the weights, W(x) = W2 diag(a(x)) W1
        weight = torch.einsum("om,bm,mikl->boikl", self.conv2.weight[:, :, 0, 0], a, self.conv1.weight)
        y = F.conv2d(x.reshape(1, b * c, h, w), weight.reshape(b * self.out_chs, c, self.kernel_size, self.kernel_size),
                     None, self.stride, self.kernel_size // 2, groups=b)
        return y.view(b, self.out_chs, y.shape[-2], y.shape[-1])

    @torch.no_grad()
    def fused_weight(self) -> torch.Tensor:
        """``W2 diag(running_attention) W1`` (out, in, k, k), computed in float64 (batch mode)."""
        if self.attention_mode != "batch":
            raise ValueError("only attention='batch' folds into a static weight")
        w2 = self.conv2.weight.double()[:, :, 0, 0] * self.running_attention.double()
        return torch.einsum("om,mikl->oikl", w2, self.conv1.weight.double())

    def fuse(self) -> nn.Module:
        """Batch mode: a static conv equal to the eval-mode module. Example mode: self, compact."""
        if self.attention_mode == "example":
            self.compact = True
            return self
        conv = static_conv(self.in_chs, self.out_chs, self.kernel_size, self.stride).to(self.conv1.weight)
        conv.weight.data.copy_(self.fused_weight())
        return conv

    def count_macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """Operations of the form in use (ptflops conventions); batch-mode attention in eval is a constant."""
        b, c, h, w = x.shape
        out_hw, k2, mid = y.shape[-2] * y.shape[-1], self.kernel_size ** 2, self.conv2.in_channels
        hidden = self.attention[0].out_features
        attention = 0
        if self.attention_mode == "example" or self.training:  # GAP, FC, ReLU, FC, sigmoid
            attention = c * h * w + (c + 1) * hidden + hidden + (hidden + 1) * mid + mid
        if self.compact:  # kernel assembly W2 diag(a) W1, then one conv
            return b * (out_hw * self.out_chs * c * k2 + self.out_chs * mid * (c * k2 + 1) + attention)
        return b * (out_hw * (mid * c * k2 + mid + self.out_chs * mid) + attention)

    def extra_repr(self) -> str:
        return f"attention={self.attention_mode}, compact={self.compact}"


def fuse_modules(model: nn.Module) -> nn.Module:
    """Replace, in place, every :class:`MAConv2d`/:class:`MDConv2d` by ``module.fuse()``; return ``model``.

    Call it on a model in eval mode after training: a batch-mode MDConv folds its running
    attention, so the fused model reproduces the eval-mode outputs, not the training-mode ones.
    """
    for name, child in model.named_children():
        if isinstance(child, (MAConv2d, MDConv2d)):
            setattr(model, name, child.fuse())
        else:
            fuse_modules(child)
    return model
