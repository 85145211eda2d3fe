"""DyClotNet: the DCT bottleneck (Table 1) and the network (Table 2).

Paper: "Dynamic Clone Transformer for Efficient Convolutional Neural Networks", LongQing Ye,
arXiv:2106.06604 (2021); headline CIFAR result in the ICCAI 2022 version
(DOI 10.1145/3532213.3532222). No official code is public.

Departures from / readings of the paper (each a constructor option; see docs/interpretation.md):
* norm and activation placement: BN after every convolution, ReLU after the depthwise and both
  pointwise convolutions (``dw_act``, ``pw_act``), and one more BN around the expansion
  (``expansion_norm``): ``"before"`` (default) normalises the concatenation [a, b] that enters the
  expansion, so the DCT's output (clones plus the recalibrator's difference vectors Psi) reaches
  the residual stream as computed; ``"after"`` normalises the expansion's output, which in train
  mode subtracts every channel's batch mean and so cancels the batch-constant part of Psi (and
  gives each clone its own affine); ``"none"`` has neither, and then the residual stream only
  receives non-negative additions (ReLU outputs plus a sigmoid) and diverges at the usual rates;
* a BN on the last block's output before the pool (``head_norm``, default on): without a BN after
  the expansion, the sigmoid's positive difference vectors accumulate along the residual stream
  (feature mean about 3.5 at initialisation in DyClotNet-0.25) and the classifier's first SGD
  steps at lr 0.1 blow the loss up; the head BN removes that offset only at the head, so a
  batch-constant Psi still changes what the blocks after it compute;
* identity residual when a block keeps shape (``residual``);
* channel counts under the width multiplier rounded to multiples of 8 (``channel_divisor``),
  and required to split into ``2p`` equal parts;
* the recalibrator's hidden width is ``N // r``, N the DCT's output width (``recalibrator_width_base``);
* clones are tiled ``[x, x, ...]`` (``clone_order``);
* "Pool 8x8" is a global average pool, so inputs other than 32x32 (Fashion-MNIST's 28x28) work.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

import torch
from timm.layers import get_act_layer, make_divisible
from timm.models import register_model
from torch import nn

from .layers import check_choice, check_positive_int, create_expansion

__all__ = ["DCTBottleneck", "DyClotNet", "EXPANSION_NORMS", "STAGES"]

ExpansionNorm = Literal["before", "after", "none"]
EXPANSION_NORMS = ("before", "after", "none")

# Table 2: (repeats, out channels at alpha=1, stride of the first block)
STAGES: tuple[tuple[int, int, int], ...] = ((5, 64, 1), (1, 128, 2), (5, 128, 1), (1, 256, 2), (6, 256, 1))
STEM_CHANNELS = 32


def conv_norm_act(in_chs: int, out_chs: int, kernel: int, stride: int = 1, groups: int = 1,
                  act_layer: Callable[..., nn.Module] | None = nn.ReLU,
                  norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d) -> nn.Sequential:
    """Conv (no bias) -> norm -> optional activation."""
    layers = [nn.Conv2d(in_chs, out_chs, kernel, stride, kernel // 2, groups=groups, bias=False), norm_layer(out_chs)]
    if act_layer is not None:
        layers.append(act_layer(inplace=True))
    return nn.Sequential(*layers)


class DCTBottleneck(nn.Module):
    """The DCT-based bottleneck of Table 1 (Fig. 3a).

    ``M`` input channels, ``N`` output channels, expansion ratio ``p``:
    3x3 depthwise conv (M -> M, stride s); 1x1 conv M -> N/2p (``a``); 1x1 conv N/2p -> N/2p
    applied to ``a`` (``b``); concatenation [a, b] -> N/p; expansion N/p -> N in the open slot
    (the DCT module by default; ``expansion="pointwise"`` puts the 1x1 conv it replaces there);
    one more BatchNorm, placed by ``expansion_norm``: on the N/p inputs of the expansion
    (``"before"``, default), on its N outputs (``"after"``: cancels the batch-constant part of the
    DCT's Psi in train mode) or nowhere (``"none"``); identity residual when the shape is kept.

    Its cost is eq. (8): ``C1 = Df^2 Dk^2 M + Df^2 MN/2p + Df^2 N^2/4p^2`` (+ the DCT's own
    small cost, which the paper drops).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        p: int = 2,
        expansion: str = "dct",
        expansion_kwargs: dict | None = None,
        residual: bool = True,
        dw_act: bool = True,
        pw_act: bool = True,
        expansion_norm: ExpansionNorm = "before",
        act_layer: Callable[..., nn.Module] = nn.ReLU,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        check_positive_int("p", p)
        check_choice("expansion_norm", expansion_norm, EXPANSION_NORMS)
        if out_chs % (2 * p):
            raise ValueError(
                f"p={p} cannot split out_chs={out_chs}: the DCT bottleneck needs out_chs divisible by 2p={2 * p}"
            )
        squeezed = out_chs // (2 * p)
        self.dw = conv_norm_act(in_chs, in_chs, 3, stride, groups=in_chs, act_layer=act_layer if dw_act else None,
                                norm_layer=norm_layer)
        pw_act_layer = act_layer if pw_act else None
        self.pw1 = conv_norm_act(in_chs, squeezed, 1, act_layer=pw_act_layer, norm_layer=norm_layer)
        self.pw2 = conv_norm_act(squeezed, squeezed, 1, act_layer=pw_act_layer, norm_layer=norm_layer)
        self.expand = create_expansion(expansion, 2 * squeezed, p, norm_layer=norm_layer, **(expansion_kwargs or {}))
        self.in_norm = norm_layer(2 * squeezed) if expansion_norm == "before" else nn.Identity()
        self.out_norm = norm_layer(out_chs) if expansion_norm == "after" else nn.Identity()
        self.has_residual = residual and stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pw1(self.dw(x))
        y = self.out_norm(self.expand(self.in_norm(torch.cat((a, self.pw2(a)), dim=1))))
        return x + y if self.has_residual else y


def stage_widths(alpha: float, p: int, channel_divisor: int | None) -> tuple[int, list[int]]:
    """Stem and stage widths of Table 2 under width multiplier ``alpha``.

    Each width is ``alpha * width`` rounded to a multiple of ``channel_divisor`` (timm's
    ``make_divisible``: nearest multiple, never below 90% of the target); ``None`` rounds to a
    multiple of ``2p`` instead, so that any ``p`` splits the channels.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0 or alpha != alpha or alpha == float("inf"):
        raise ValueError(f"alpha={alpha!r} is not allowed; the width multiplier must be a finite number > 0")
    check_positive_int("p", p)
    if channel_divisor is not None:
        check_positive_int("channel_divisor", channel_divisor)
    divisor = channel_divisor or 2 * p
    stem = make_divisible(STEM_CHANNELS * alpha, divisor)
    widths = [make_divisible(width * alpha, divisor) for _, width, _ in STAGES]
    for width in widths:
        if width % (2 * p):
            raise ValueError(
                f"p={p} cannot split the channels under alpha={alpha}: a stage has {width} channels, "
                f"not divisible by 2p={2 * p} (choose a smaller p, another alpha, or channel_divisor=None)"
            )
    return stem, widths


class DyClotNet(nn.Module):
    """DyClotNet-alpha (Table 2): a 3x3 stem and 18 DCT bottlenecks in five stages, (BN,) pool, FC.

    Args:
        num_classes: classifier outputs.
        in_chans: input channels (3 for CIFAR, 1 for Fashion-MNIST).
        alpha: width multiplier, scales every layer's channels (Sec. 4.3).
        p: expansion ratio of every DCT (and of the bottleneck's first expansion, via N/2p).
        r: reduction ratio of the DCT recalibrator.
        expansion: operator in the expansion slot: ``"dct"``, ``"pointwise"`` or any name
            registered with :func:`dyclot.layers.register_expansion` (``baselines`` adds
            ``"ghost"`` and ``"ftm"``).
        recalibrator, recalibrator_width_base, clone_order: DCT options (:class:`DynamicCloneTransformer`).
        residual, dw_act, pw_act, expansion_norm: bottleneck options (:class:`DCTBottleneck`).
        head_norm: BatchNorm of the last block's output, before the pool (not in Table 2; keeps
            training stable when no BN follows the expansion).
        channel_divisor: rounding of widths under ``alpha`` (:func:`stage_widths`).
        act_layer: activation name known to timm (``"relu"``, ``"relu6"``, ``"hard_swish"``...).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        alpha: float = 1.0,
        p: int = 2,
        r: int = 4,
        expansion: str = "dct",
        recalibrator: str = "sigmoid_add",
        recalibrator_width_base: str = "out",
        clone_order: str = "tile",
        residual: bool = True,
        dw_act: bool = True,
        pw_act: bool = True,
        expansion_norm: ExpansionNorm = "before",
        head_norm: bool = True,
        channel_divisor: int | None = 8,
        act_layer: str = "relu",
        drop_rate: float = 0.0,
        stages: Sequence[tuple[int, int, int]] = STAGES,
    ) -> None:
        super().__init__()
        # Every resolved constructor argument: two runs with equal arch_args train the same network.
        self.arch_args = {key: value for key, value in locals().items() if key not in ("self", "__class__")}
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_chans", in_chans)
        check_positive_int("r", r)
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate={drop_rate!r} is not allowed; it must lie in [0, 1)")
        try:
            act = get_act_layer(act_layer)
        except (KeyError, ValueError, AssertionError):
            act = None
        if act is None:
            raise ValueError(f"act_layer={act_layer!r} is not an activation timm knows (e.g. 'relu', 'relu6', 'hard_swish')")
        stem_chs, widths = stage_widths(alpha, p, channel_divisor)
        self.num_classes, self.num_features = num_classes, widths[-1]
        self.stem = conv_norm_act(in_chans, stem_chs, 3, act_layer=act)
        expansion_kwargs = dict(r=r, recalibrator=recalibrator, recalibrator_width_base=recalibrator_width_base,
                                clone_order=clone_order)
        block = partial(DCTBottleneck, p=p, expansion=expansion, expansion_kwargs=expansion_kwargs, residual=residual,
                        dw_act=dw_act, pw_act=pw_act, expansion_norm=expansion_norm, act_layer=act)
        blocks, in_chs = [], stem_chs
        for (repeats, _, stride), out_chs in zip(stages, widths, strict=True):
            for i in range(repeats):
                blocks.append(block(in_chs, out_chs, stride if i == 0 else 1))
                in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        self.head_norm = nn.BatchNorm2d(self.num_features) if head_norm else nn.Identity()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_norm(self.blocks(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.global_pool(x).flatten(1))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_TIMM_ONLY_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def model_kwargs(variant: str, pretrained: bool, kwargs: dict) -> dict:
    """Refuse ``pretrained=True`` (no weights are published; no internet) and drop timm's own kwargs.

    Shared by every ``@register_model`` function of ``dyclot`` and ``baselines``.
    """
    if pretrained:
        raise ValueError(f"pretrained=True is not available for {variant}: no weights for it are published here")
    return {key: value for key, value in kwargs.items() if key not in _TIMM_ONLY_KWARGS}


def _create_dyclotnet(alpha: float, pretrained: bool = False, **kwargs) -> DyClotNet:
    return DyClotNet(alpha=alpha, **model_kwargs(f"DyClotNet-{alpha}", pretrained, kwargs))


@register_model
def dyclotnet_025(pretrained: bool = False, **kwargs) -> DyClotNet:
    """DyClotNet-0.25 (not in the paper; a tiny width for tests and smoke runs)."""
    return _create_dyclotnet(0.25, pretrained, **kwargs)


@register_model
def dyclotnet_050(pretrained: bool = False, **kwargs) -> DyClotNet:
    """DyClotNet-0.5 (Table 2, alpha = 0.5)."""
    return _create_dyclotnet(0.5, pretrained, **kwargs)


@register_model
def dyclotnet_100(pretrained: bool = False, **kwargs) -> DyClotNet:
    """DyClotNet-1.0 (Table 2, alpha = 1)."""
    return _create_dyclotnet(1.0, pretrained, **kwargs)


@register_model
def dyclotnet_200(pretrained: bool = False, **kwargs) -> DyClotNet:
    """DyClotNet-2.0 (Table 2, alpha = 2): the paper's headline network."""
    return _create_dyclotnet(2.0, pretrained, **kwargs)
