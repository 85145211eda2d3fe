"""Input-dependent convolutions: dynamic convolution, CondConv and dynamic convolution decomposition.

* :class:`DynamicConv2d` -- Chen et al., "Dynamic Convolution: Attention over Convolution Kernels",
  CVPR 2020 (arXiv:1912.03458): ``W(x) = sum_k pi_k(x) W_k``, ``b(x) = sum_k pi_k(x) b_k``,
  ``pi(x) = softmax(FC(ReLU(FC(GAP(x)))) / tau)``, tau annealed from 30 to 1.
* :class:`CondConv` -- Yang et al., "CondConv: Conditionally Parameterized Convolutions for
  Efficient Inference", NeurIPS 2019 (arXiv:1904.04971): ``W(x) = sum_e r_e(x) W_e`` with
  ``r(x) = sigmoid(FC(GAP(x)))``; the aggregation is timm's :class:`timm.layers.CondConv2d`.
* :class:`DynamicConvDecomposition` -- Li et al., "Revisiting Dynamic Convolution via Matrix
  Decomposition", ICLR 2021 (arXiv:2103.08756, code https://github.com/liyunsheng13/dcd):
  ``W(x) = Lambda(x) W0 + P Phi(x) Q^T`` for 1x1 convolutions, and
  :class:`DynamicLinearDecomposition`, the same for the classifier. Gate, latent and squeeze
  sizes, descriptor and initialisation are the official code's (``DYModule``, ``DYCls``);
  departures: only 1x1 stride-1 convolutions, and the squeeze ratio defaults to the official
  MobileNetV2 command's 16 (the code's default is 8).

Temperature schedule of dynamic convolution: :func:`temperature_at`, :func:`default_anneal_epochs`
and :func:`set_epoch_temperature` (what a network's ``set_epoch(epoch, num_epochs)`` calls).

MAC counting: ptflops' module hooks cannot see ``F.conv2d``/``torch.einsum`` inside these
operators, so each declares its whole cost in ``count_macs(x, y)`` (the batch's operations,
counted the way ptflops counts layers: a multiply-add per weight use, one per bias and per
element of activations, BatchNorm 2 per element). ``costing.profiling`` installs every
``count_macs`` method as a ptflops custom hook (ptflops then does not descend into the module).

Nothing here imports a network.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import CondConv2d
from torch import nn

__all__ = [
    "CondConv", "DynamicConv2d", "DynamicConvDecomposition", "DynamicLinearDecomposition", "TAU_END", "TAU_START",
    "dcd_descriptor_pool", "dcd_hsigmoid", "dcd_latent_dim", "default_anneal_epochs", "set_epoch_temperature",
    "temperature_at",
]

TAU_START, TAU_END = 30.0, 1.0  # Chen et al. 2020, Sec. 3.3 / 4: tau from 30 to 1


def _attention_hidden(in_chs: int, reduction: int, min_hidden: int) -> int:
    return max(in_chs // reduction, min_hidden)


class DynamicConv2d(nn.Module):
    """Dynamic convolution (Chen et al. 2020, eq. 1-3): K kernels mixed per example by attention.

    ``y = (sum_k pi_k(x) W_k) * x + sum_k pi_k(x) b_k`` with
    ``pi(x) = softmax(FC2(ReLU(FC1(GAP(x)))) / tau)``.

    The attention is the paper's squeeze-and-excitation form: FC1 reduces ``in_chs`` by
    ``reduction`` (4, as in the paper) with at least ``num_kernels`` hidden units (our floor;
    the paper states none), both FCs have biases. ``tau`` is a buffer (saved with the model) set
    by :meth:`set_temperature`; it starts at 30 and the network's ``set_epoch`` anneals it to 1.

    Per-example kernels are applied without a Python loop: a 1x1, stride-1, ungrouped conv is a
    batched matmul (``einsum('boi,bihw->bohw')``); other shapes use one grouped convolution with
    the batch folded into the groups.

    Parameters: ``K*(O*I/g*k*k + O) + I*h + h + h*K + K`` (``h`` the hidden width, ``K*O`` only
    with ``bias``). MACs per example (:meth:`count_macs`): ``(O*I/g*k*k + 1)*O'HW`` (conv and
    bias, ``O'HW = O*H'*W'``) + ``K*(O*I/g*k*k + O)`` (kernel aggregation) + attention
    ``C*H*W`` (GAP) ``+ (C+1)*h + h + (h+1)*K + 2K`` (FCs, ReLU, /tau and softmax).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 bias: bool = True, num_kernels: int = 4, reduction: int = 4, min_hidden: int | None = None,
                 temperature: float = TAU_START) -> None:
        super().__init__()
        if in_chs % groups or out_chs % groups:
            raise ValueError(f"groups={groups} must divide in_chs={in_chs} and out_chs={out_chs}")
        self.in_chs, self.out_chs, self.kernel_size, self.stride, self.groups = in_chs, out_chs, kernel_size, stride, groups
        self.num_kernels = num_kernels
        self.weight = nn.Parameter(torch.empty(num_kernels, out_chs, in_chs // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(num_kernels, out_chs)) if bias else None
        hidden = _attention_hidden(in_chs, reduction, num_kernels if min_hidden is None else min_hidden)
        self.attention = nn.Sequential(nn.Linear(in_chs, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_kernels))
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        for k in range(num_kernels):  # each kernel initialised like a static conv (kaiming, fan_out)
            nn.init.kaiming_normal_(self.weight[k], mode="fan_out", nonlinearity="relu")

    def set_temperature(self, tau: float) -> None:
        """Set the softmax temperature ``tau`` of the kernel attention (large = flat attention)."""
        if not tau > 0:
            raise ValueError(f"temperature must be > 0, got {tau!r}")
        self.temperature.fill_(float(tau))

    def kernel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """``pi(x)``, shape (B, K), rows summing to 1."""
        return (self.attention(x.mean((2, 3))) / self.temperature).softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        pi = self.kernel_attention(x)
        weight = torch.einsum("bk,kf->bf", pi, self.weight.flatten(1))
        bias = torch.einsum("bk,ko->bo", pi, self.bias) if self.bias is not None else None
        if self.kernel_size == 1 and self.stride == 1 and self.groups == 1:
            y = torch.einsum("boi,bihw->bohw", weight.view(b, self.out_chs, c), x)
            return y if bias is None else y + bias.view(b, self.out_chs, 1, 1)
        y = F.conv2d(x.reshape(1, b * c, h, w),
                     weight.view(b * self.out_chs, c // self.groups, self.kernel_size, self.kernel_size),
                     None if bias is None else bias.flatten(), self.stride, self.kernel_size // 2, groups=b * self.groups)
        return y.view(b, self.out_chs, y.shape[-2], y.shape[-1])

    def count_macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        b, c, h, w = x.shape
        per_output = (c // self.groups) * self.kernel_size ** 2
        has_bias = self.bias is not None
        hidden, k = self.attention[0].out_features, self.num_kernels
        conv = (per_output + has_bias) * y[0].numel()
        aggregation = k * (self.out_chs * per_output + self.out_chs * has_bias)
        attention = c * h * w + (c + 1) * hidden + hidden + (hidden + 1) * k + 2 * k
        return b * (conv + aggregation + attention)

    def extra_repr(self) -> str:
        return (f"{self.in_chs}, {self.out_chs}, kernel_size={self.kernel_size}, stride={self.stride}, groups={self.groups}, "
                f"K={self.num_kernels}, tau={float(self.temperature):g}")


class CondConv(nn.Module):
    """CondConv (Yang et al. 2019, eq. 1-2): ``y = sigma((sum_e r_e(x) W_e) * x)``, ``r(x) = sigmoid(R GAP(x))``.

    The routing function is the paper's: global average pool, one FC (with bias) to
    ``num_experts`` logits, sigmoid (not softmax: experts are not competing). Each CondConv
    layer has its own routing function (paper eq. 2; timm's ``CondConvResidual`` instead shares
    one per block). The per-example kernel mixing and the grouped convolution are timm's
    :class:`~timm.layers.CondConv2d`. No bias by default (a BatchNorm follows in our networks).

    Parameters: ``E*O*I/g*k*k (+E*O with bias) + I*E + E``. MACs per example
    (:meth:`count_macs`): ``(O*I/g*k*k (+1))*O*H'*W'`` + ``E*(O*I/g*k*k (+O))`` (aggregation) +
    ``C*H*W + (C+1)*E + E`` (GAP, routing FC, sigmoid).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 bias: bool = False, num_experts: int = 4) -> None:
        super().__init__()
        self.num_experts = num_experts
        self.routing = nn.Linear(in_chs, num_experts)
        self.conv = CondConv2d(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, groups=groups,
                               bias=bias, num_experts=num_experts)

    def routing_weights(self, x: torch.Tensor) -> torch.Tensor:
        """``r(x)``, shape (B, E), each in (0, 1)."""
        return torch.sigmoid(self.routing(x.mean((2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.routing_weights(x))

    def count_macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        b, c, h, w = x.shape
        kernel, has_bias = self.conv.weight.shape[1], self.conv.bias is not None
        conv = (kernel // self.conv.out_channels + has_bias) * y[0].numel()
        aggregation = self.num_experts * (kernel + self.conv.out_channels * has_bias)
        return b * (conv + aggregation + c * h * w + (c + 1) * self.num_experts + self.num_experts)


def dcd_hsigmoid(x: torch.Tensor) -> torch.Tensor:
    """The official DCD code's ``Hsigmoid``: ``relu6(x + 3) / 3``, in [0, 2] and 1 at 0 (twice torch's hardsigmoid)."""
    return F.relu6(x + 3.0) / 3.0


def dcd_descriptor_pool(in_chs: int, out_chs: int) -> int:
    """Side of DCD's pooled descriptor: 2 (a 2x2 average pool, ``m = 4`` values per channel) for a
    widening layer (``in_chs < out_chs``), else 1 (global average pooling), as in the official code."""
    return 2 if in_chs < out_chs else 1


def dcd_latent_dim(in_chs: int, out_chs: int) -> int:
    """Latent size ``L`` of a DCD 1x1 layer ``in_chs -> out_chs``, the official code's rule.

    With ``m = dcd_descriptor_pool(in_chs, out_chs) ** 2`` (4 widening, else 1) and ``r`` = 8
    (widening) or 2: ``L = floor(min(m * in_chs, out_chs) / r)``, halved (``r`` doubled) until
    ``L^2 <= 2 * m * in_chs``, at least 4. E.g. 16 -> 96: 12; 96 -> 24: 12; 960 -> 320: 40.
    """
    if in_chs < 1 or out_chs < 1:
        raise ValueError(f"channels must be >= 1, got in_chs={in_chs}, out_chs={out_chs}")
    m = dcd_descriptor_pool(in_chs, out_chs) ** 2
    latent = min(m * in_chs, out_chs) // (8 if in_chs < out_chs else 2)
    while latent * latent > 2 * m * in_chs:
        latent //= 2  # floor(floor(a / r) / 2) == floor(a / (2 r))
    return max(latent, 4)


def _dcd_squeeze_branch(in_features: int, squeeze: int, latent: int, out_chs: int) -> nn.ModuleDict:
    """``FC(in_features, S)``, its gate ``FC(S, S)``, and the heads ``FC(S, L*L)`` (Phi) and ``FC(S, O)`` (Lambda)."""
    return nn.ModuleDict(dict(squeeze=nn.Linear(in_features, squeeze, bias=False),
                              gate=nn.Linear(squeeze, squeeze, bias=False),
                              phi=nn.Linear(squeeze, latent * latent, bias=False),
                              scale=nn.Linear(squeeze, out_chs, bias=False)))


def _dcd_factors(branch: nn.ModuleDict, descriptor: torch.Tensor, latent: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Lambda, Phi)`` from a (B, F) descriptor: ``s = FC(d) * Hsig(FC(FC(d)))``, ``Phi = FC(s)``, ``Lambda = Hsig(FC(s))``."""
    s = branch["squeeze"](descriptor)
    s = s * dcd_hsigmoid(branch["gate"](s))
    return dcd_hsigmoid(branch["scale"](s)), branch["phi"](s).view(-1, latent, latent)


def _dcd_init(module: nn.Module) -> None:
    """The official code's initialisation: kernels normal(0, sqrt(2 / (k*k*out))), linear layers normal(0, 0.01), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            nn.init.zeros_(m.bias)


class DynamicConvDecomposition(nn.Module):
    """DCD for a 1x1 convolution (Li et al. 2021): ``W(x) = Lambda(x) W0 + P Phi(x) Q^T``.

    ``y = Lambda(x) (W0 x) + P Phi(x) (Q^T x)`` with ``W0`` (O x I) the static kernel, ``Lambda(x)``
    a dynamic diagonal (O) output-channel scale, ``Q`` (I x L) compressing the input to the latent
    space, ``Phi(x)`` a dynamic L x L "channel fusion" matrix and ``P`` (O x L) expanding back.
    Structure, sizes, gate and initialisation follow the official code's ``DYModule``
    (github.com/liyunsheng13/dcd, models/imagenet/mobilenetv2_dcd.py):

    * descriptor: average pool to ``p x p`` (:func:`dcd_descriptor_pool`: 2 for a widening layer,
      else 1), flattened channel-major to ``m*I`` values (``m = p*p``);
    * dynamic branch: ``s = FC(m*I, S)(d)``, gated ``s * Hsig(FC(S, S)(s))``; ``Phi = FC(S, L*L)(s)``
      (no activation), ``Lambda = Hsig(FC(S, O)(s))``, all without bias, ``Hsig(z) = relu6(z+3)/3``
      (:func:`dcd_hsigmoid`, in [0, 2], 1 at 0, so the static path starts as the plain conv);
    * ``L = dcd_latent_dim(I, O)``, ``S = max(4, max(m*I, L*L) // squeeze_ratio)`` with
      ``squeeze_ratio`` 16 (the official README's MobileNetV2 command, ``--fc-squeeze 16``; the
      code's default is 8);
    * ``latent_norm_residual=True`` (default): BatchNorm on ``Q^T x``, BatchNorm on ``Phi z`` and an
      identity, i.e. ``P (I + BN o Phi(x)) BN(Q^T x)`` as the official code computes it; ``False``
      gives the bare equation ``P Phi(x) Q^T x``.

    Parameters: ``O*I + L*I + O*L + m*I*S + S*S + S*L*L + S*O`` (+ ``4L`` BatchNorm parameters with
    ``latent_norm_residual``). MACs per example (:meth:`count_macs`): ``H*W*(O*I + L*I + L*L +
    O*L)`` (the four products) + ``2*O*H*W`` (scale, sum) + ``5*L*H*W`` with the latent norms and
    identity + the dynamic branch ``I*H*W`` (pooling) ``+ m*I*S + S*S + 2S + S*L*L + S*O + 2*O``.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1,
                 latent_dim: int | None = None, squeeze: int | None = None, squeeze_ratio: int = 16,
                 descriptor_pool: int | None = None, latent_norm_residual: bool = True) -> None:
        super().__init__()
        if kernel_size != 1 or stride != 1:
            raise ValueError("DynamicConvDecomposition is implemented for 1x1, stride-1 convolutions only")
        self.descriptor_pool = pool = descriptor_pool or dcd_descriptor_pool(in_chs, out_chs)
        self.latent_dim = latent = latent_dim or dcd_latent_dim(in_chs, out_chs)
        squeeze = squeeze or max(4, max(pool * pool * in_chs, latent * latent) // squeeze_ratio)
        self.static = nn.Conv2d(in_chs, out_chs, 1, bias=False)       # W0
        self.q = nn.Conv2d(in_chs, latent, 1, bias=False)              # Q^T
        self.p = nn.Conv2d(latent, out_chs, 1, bias=False)             # P
        self.dynamic = _dcd_squeeze_branch(pool * pool * in_chs, squeeze, latent, out_chs)
        self.latent_norm_residual = latent_norm_residual
        self.q_norm = nn.BatchNorm2d(latent) if latent_norm_residual else nn.Identity()
        self.phi_norm = nn.BatchNorm1d(latent) if latent_norm_residual else nn.Identity()
        _dcd_init(self)

    def dynamic_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Lambda(x), Phi(x))``, shapes (B, O) and (B, L, L)."""
        descriptor = F.adaptive_avg_pool2d(x, self.descriptor_pool).flatten(1)
        return _dcd_factors(self.dynamic, descriptor, self.latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        scale, phi = self.dynamic_factors(x)
        z = self.q_norm(self.q(x)).flatten(2)                          # (B, L, HW)
        fused = self.phi_norm(torch.einsum("blm,bmp->blp", phi, z))
        if self.latent_norm_residual:
            fused = fused + z
        return scale[:, :, None, None] * self.static(x) + self.p(fused.view(b, self.latent_dim, h, w))

    def count_macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        b, c, h, w = x.shape
        hw, o, latent = h * w, self.static.out_channels, self.latent_dim
        s, descriptor = self.dynamic["squeeze"].out_features, self.dynamic["squeeze"].in_features
        products = hw * (o * c + latent * c + latent * latent + o * latent)
        merges = 2 * o * hw + (5 * latent * hw if self.latent_norm_residual else 0)
        dynamic = c * hw + descriptor * s + s * s + 2 * s + s * latent * latent + s * o + 2 * o
        return b * (products + merges + dynamic)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, descriptor_pool={self.descriptor_pool}"


class DynamicLinearDecomposition(nn.Module):
    """DCD for a fully connected layer (the official code's dynamic classifier ``DYCls``).

    ``y = Lambda(x) (W0 x + b) + P (I + BN o Phi(x)) BN(Q^T x)``: the bias is scaled with the static
    product, as in the official code. The dynamic branch is :class:`DynamicConvDecomposition`'s on
    the feature vector itself (``m = 1``); ``L = 32`` and ``S = 32`` are the official code's fixed
    sizes. Initialisation as the official code (linear weights normal(0, 0.01), biases zero).

    Parameters: ``O*I + O + L*I + O*L + I*S + S*S + S*L*L + S*O + 4L``. MACs per example
    (:meth:`count_macs`): ``O*I + O + L*I + L*L + O*L`` (products, bias) ``+ 2*O + 5*L`` (scale, sum,
    latent norms, identity) ``+ I*S + S*S + 2S + S*L*L + S*O + 2*O`` (dynamic branch).
    """

    def __init__(self, in_features: int, out_features: int, latent_dim: int = 32, squeeze: int = 32) -> None:
        super().__init__()
        self.in_features, self.out_features, self.latent_dim = in_features, out_features, latent_dim
        self.static = nn.Linear(in_features, out_features)             # W0, b
        self.q = nn.Linear(in_features, latent_dim, bias=False)         # Q^T
        self.p = nn.Linear(latent_dim, out_features, bias=False)        # P
        self.dynamic = _dcd_squeeze_branch(in_features, squeeze, latent_dim, out_features)
        self.q_norm, self.phi_norm = nn.BatchNorm1d(latent_dim), nn.BatchNorm1d(latent_dim)
        _dcd_init(self)

    def dynamic_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Lambda(x), Phi(x))``, shapes (B, O) and (B, L, L)."""
        return _dcd_factors(self.dynamic, x, self.latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, phi = self.dynamic_factors(x)
        z = self.q_norm(self.q(x))
        fused = self.phi_norm(torch.einsum("blm,bm->bl", phi, z)) + z
        return scale * self.static(x) + self.p(fused)

    def count_macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        b, c = x.shape
        o, latent, s = self.out_features, self.latent_dim, self.dynamic["squeeze"].out_features
        products = o * c + o + latent * c + latent * latent + o * latent
        dynamic = c * s + s * s + 2 * s + s * latent * latent + s * o + 2 * o
        return b * (products + 2 * o + 5 * latent + dynamic)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, latent_dim={self.latent_dim}"


def default_anneal_epochs(num_epochs: int) -> int:
    """Epochs over which tau goes from 30 to 1: ``min(10, max(1, ceil(num_epochs / 30)))``.

    The paper anneals over the first 10 of its ImageNet epochs; keeping that fraction (1/30 of a
    300-epoch schedule) and the cap of 10 gives 10 for 300 epochs, 7 for 200, 1 for <= 30.
    """
    return min(10, max(1, math.ceil(num_epochs / 30)))


def temperature_at(epoch: int, anneal_epochs: int, start: float = TAU_START, end: float = TAU_END) -> float:
    """Linear schedule: ``start`` at epoch 0, ``end`` from epoch ``anneal_epochs`` on (0-based epochs)."""
    if anneal_epochs < 1:
        raise ValueError(f"anneal_epochs must be >= 1, got {anneal_epochs}")
    return start + (end - start) * min(max(epoch, 0) / anneal_epochs, 1.0)


def set_epoch_temperature(model: nn.Module, epoch: int, num_epochs: int, anneal_epochs: int | None = None) -> float | None:
    """Set the temperature of every :class:`DynamicConv2d` in ``model`` for ``epoch``; return tau.

    The trainer calls ``model.set_epoch(epoch, num_epochs)`` at the start of each epoch; networks
    with dynamic convolutions implement it with this function. Returns None if there are none.
    """
    layers = [m for m in model.modules() if isinstance(m, DynamicConv2d)]
    if not layers:
        return None
    tau = temperature_at(epoch, anneal_epochs or default_anneal_epochs(num_epochs))
    for layer in layers:
        layer.set_temperature(tau)
    return tau
