"""MobileNetV2 for 32x32 input, built on timm's ``mobilenetv2_*``, optionally with dynamic 1x1 convs.

Paper: Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018, arXiv:1801.04381; code (TF-slim)
https://github.com/tensorflow/models/tree/master/research/slim/nets/mobilenet. The network is
timm's (``timm.create_model("mobilenetv2_100")``); only what 32x32 input needs is changed.
Operators swapped in: dynamic convolution (Chen et al., arXiv:1912.03458), CondConv
(Yang et al., arXiv:1904.04971), DCD (Li et al., arXiv:2103.08756), MDConv/MAConv (Luo & Zhan,
HTL 2022) -- see :mod:`baselines.layers`.

Departures from the paper (all documented in docs/baselines.md):
* stem convolution stride 2 -> 1; with ``first_stage_stride1=True`` (default) also the first
  24-channel stage stride 2 -> 1 (``blocks[1][0].conv_dw``), so a 32x32 image reaches the last
  stage at 4x4 (ImageNet: 224 -> 7, a reduction of 32; here 8);
* ``mobilenetv2_cifar8_*`` (``stride1_stages=2``) also sets the 32-channel stage to stride 1, so
  the network ends at 8x8 (a reduction of 4). It is the adaptation whose costs reproduce both
  published ratios of the DCT paper's headline (1.37x the parameters and 2.78x the MACs of
  DyClotNet-2.0; docs/interpretation.md);
* ``pointwise=...`` replaces every 1x1 convolution -- each block's expansion ``conv_pw``, its
  projection ``conv_pwl`` (``conv_pw`` of the first, depthwise-separable block) and, with
  ``replace_head=True`` (default), the 1x1 head ``conv_head`` (320 -> 1280). The stem and the
  depthwise convolutions and the classifier stay static (Chen et al. make every conv but the
  first dynamic, depthwise ones included): one rule, "every 1x1 conv", for all operators;
* ``mobilenetv2_cifar_dcd_*`` instead make dynamic exactly the layers the official DCD
  MobileNetV2 makes dynamic (https://github.com/liyunsheng13/dcd,
  models/imagenet/mobilenetv2_dcd.py): both 1x1 convs of every expanding block (not the first,
  depthwise-separable block, not the head conv) and the classifier (:func:`apply_dcd_layout`);
* swapped operators use their own initialisation (timm's is kept for everything else).
"""
from __future__ import annotations

import timm
from timm.models import register_model
from timm.models.efficientnet import EfficientNet
from torch import nn

from ._builder import cifar_input_cfg, model_kwargs
from .dynamic_conv import DynamicConvDecomposition, DynamicLinearDecomposition, set_epoch_temperature
from .folding import fuse_modules
from .layers import CONV_OPERATORS, create_conv

__all__ = ["MobileNetV2Cifar", "apply_dcd_layout", "replace_pointwise_convs"]

WIDTHS = {0.5: "050", 1.0: "100"}


class MobileNetV2Cifar(EfficientNet):
    """timm's MobileNetV2 (an :class:`EfficientNet`) with the trainer hooks of the baselines.

    Instances are made by :func:`_create_mobilenetv2_cifar`, which builds the timm model and sets
    its class to this subclass: no state is added, only two methods.
    """

    anneal_epochs: int | None = None  # tau schedule length; None = default_anneal_epochs(num_epochs)

    def set_epoch(self, epoch: int, num_epochs: int) -> float | None:
        """Trainer hook: anneal dynamic convolutions' tau 30 -> 1; returns tau (None if none)."""
        return set_epoch_temperature(self, epoch, num_epochs, self.anneal_epochs)

    def fuse(self) -> MobileNetV2Cifar:
        """Fold MDConv/MAConv into static convolutions in place (call in eval mode)."""
        return fuse_modules(self)


def replace_pointwise_convs(model: EfficientNet, operator: str, include_head: bool = True, **options: object) -> int:
    """Replace the 1x1 convs of a timm MobileNetV2 (``conv_pw``, ``conv_pwl``, ``conv_head``); return how many."""
    targets = [(block, name) for stage in model.blocks for block in stage for name in ("conv_pw", "conv_pwl")]
    if include_head:
        targets.append((model, "conv_head"))
    replaced = 0
    for parent, name in targets:
        conv = getattr(parent, name, None)
        if isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.groups == 1 and conv.stride == (1, 1):
            setattr(parent, name, create_conv(operator, conv.in_channels, conv.out_channels, 1, 1, **options))
            replaced += 1
    return replaced


def apply_dcd_layout(model: EfficientNet, classifier_kwargs: dict | None = None, **options: object) -> int:
    """Make dynamic the layers the official DCD MobileNetV2 makes dynamic; return how many.

    ``conv_pw`` and ``conv_pwl`` of every inverted-residual block (the expanding blocks; the first,
    depthwise-separable block stays static) become :class:`DynamicConvDecomposition` (``options``),
    and the classifier a :class:`DynamicLinearDecomposition` (``classifier_kwargs``; kept as it is
    when ``num_classes=0``). The head conv (320 -> 1280) stays static, as in the official code.
    """
    replaced = 0
    for block in (block for stage in model.blocks for block in stage if hasattr(block, "conv_pwl")):
        for name in ("conv_pw", "conv_pwl"):
            conv = getattr(block, name)
            setattr(block, name, DynamicConvDecomposition(conv.in_channels, conv.out_channels, **options))
            replaced += 1
    if isinstance(model.classifier, nn.Linear):
        model.classifier = DynamicLinearDecomposition(model.classifier.in_features, model.classifier.out_features,
                                                      **(classifier_kwargs or {}))
        replaced += 1
    return replaced


def _create_mobilenetv2_cifar_dcd(width: float, pretrained: bool = False, pointwise_kwargs: dict | None = None,
                                  classifier_kwargs: dict | None = None, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-CIFAR with the official DCD layout (:func:`apply_dcd_layout`); other kwargs as
    :func:`_create_mobilenetv2_cifar`."""
    model = _create_mobilenetv2_cifar(width, pretrained, **kwargs)
    apply_dcd_layout(model, classifier_kwargs, **(pointwise_kwargs or {}))
    return model


def _create_mobilenetv2_cifar(width: float, pretrained: bool = False, pointwise: str = "conv",
                              first_stage_stride1: bool = True, stride1_stages: int | None = None,
                              replace_head: bool = True,
                              pointwise_kwargs: dict | None = None, anneal_epochs: int | None = None,
                              **kwargs) -> MobileNetV2Cifar:
    """timm's ``mobilenetv2_<width>`` with stride-1 stem (and first stage), 1x1 convs -> ``pointwise``.

    Args:
        width: width multiplier (0.5 or 1.0).
        pointwise: operator for the 1x1 convs, a name of :data:`baselines.layers.CONV_OPERATORS`.
        first_stage_stride1: also make the first 24-channel stage stride 1 (``stride1_stages=1``).
        stride1_stages: how many downsampling stages after the stem run at stride 1 (0, 1 or 2:
            the 24- and the 32-channel stage); overrides ``first_stage_stride1`` when given.
        replace_head: also replace the 1x1 head conv (320 -> 1280).
        pointwise_kwargs: options of the operator (e.g. ``num_kernels``, ``attention``).
        anneal_epochs: epochs of the tau schedule of dynamic convolution (see ``set_epoch``).
        kwargs: passed to ``timm.create_model`` (``num_classes``, ``in_chans``, ``drop_rate``...).
    """
    variant = f"mobilenetv2_{WIDTHS.get(width, width)}"
    kwargs = model_kwargs(f"{variant} (CIFAR)", pretrained, kwargs)
    if width not in WIDTHS:
        raise ValueError(f"width={width!r} is not available; choose one of {sorted(WIDTHS)}")
    if pointwise not in CONV_OPERATORS or pointwise == "ftm":
        raise ValueError(f"pointwise={pointwise!r} is not a 1x1 operator; choose one of "
                         f"{', '.join(repr(n) for n in CONV_OPERATORS if n != 'ftm')}")
    if stride1_stages is None:
        stride1_stages = int(first_stage_stride1)
    if stride1_stages not in (0, 1, 2):
        raise ValueError(f"stride1_stages={stride1_stages!r} is not allowed; choose 0, 1 or 2 "
                         "(the 24- and 32-channel stages)")
    model = timm.create_model(variant, pretrained=False, **kwargs)
    model.conv_stem.stride = (1, 1)
    for stage in model.blocks[1:1 + stride1_stages]:
        stage[0].conv_dw.stride = (1, 1)
    if pointwise != "conv":
        replace_pointwise_convs(model, pointwise, replace_head, **(pointwise_kwargs or {}))
    model.__class__ = MobileNetV2Cifar
    model.anneal_epochs = anneal_epochs
    cifar_input_cfg(model, kwargs.get("in_chans", 3))
    return model


@register_model
def mobilenetv2_cifar_050(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-0.5 for 32x32 input."""
    return _create_mobilenetv2_cifar(0.5, pretrained, **kwargs)


@register_model
def mobilenetv2_cifar_100(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-1.0 for 32x32 input (the DCT paper's comparison network)."""
    return _create_mobilenetv2_cifar(1.0, pretrained, **kwargs)


@register_model
def mobilenetv2_cifar8_050(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-0.5 for 32x32 input ending at 8x8 (stem, 24- and 32-channel stages at stride 1)."""
    return _create_mobilenetv2_cifar(0.5, pretrained, stride1_stages=2, **kwargs)


@register_model
def mobilenetv2_cifar8_100(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-1.0 ending at 8x8: the adaptation whose costs match the DCT paper's headline ratios."""
    return _create_mobilenetv2_cifar(1.0, pretrained, stride1_stages=2, **kwargs)


@register_model
def mobilenetv2_cifar_dynconv_050(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-0.5, every 1x1 conv a dynamic convolution (K=4)."""
    return _create_mobilenetv2_cifar(0.5, pretrained, pointwise="dynconv", **kwargs)


@register_model
def mobilenetv2_cifar_condconv_050(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-0.5, every 1x1 conv a CondConv (4 experts)."""
    return _create_mobilenetv2_cifar(0.5, pretrained, pointwise="condconv", **kwargs)


@register_model
def mobilenetv2_cifar_dcd_050(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-0.5 with DCD where the official DCD MobileNetV2 has it (expanding blocks' 1x1 convs, classifier)."""
    return _create_mobilenetv2_cifar_dcd(0.5, pretrained, **kwargs)


@register_model
def mobilenetv2_cifar_dynconv_100(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-1.0, every 1x1 conv a dynamic convolution (K=4)."""
    return _create_mobilenetv2_cifar(1.0, pretrained, pointwise="dynconv", **kwargs)


@register_model
def mobilenetv2_cifar_condconv_100(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-1.0, every 1x1 conv a CondConv (4 experts)."""
    return _create_mobilenetv2_cifar(1.0, pretrained, pointwise="condconv", **kwargs)


@register_model
def mobilenetv2_cifar_dcd_100(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-1.0 with DCD where the official DCD MobileNetV2 has it (expanding blocks' 1x1 convs, classifier)."""
    return _create_mobilenetv2_cifar_dcd(1.0, pretrained, **kwargs)


@register_model
def mobilenetv2_cifar_mdconv_100(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-1.0, every 1x1 conv an MDConv (per-example attention by default: ``fuse()`` folds it into
    per-example kernels, which costs more MACs here than the unfolded form; docs/baselines.md)."""
    return _create_mobilenetv2_cifar(1.0, pretrained, pointwise="mdconv", **kwargs)


@register_model
def mobilenetv2_cifar_maconv_100(pretrained: bool = False, **kwargs) -> MobileNetV2Cifar:
    """MobileNetV2-1.0, every 1x1 conv an MAConv (folds to the static network with ``fuse()``)."""
    return _create_mobilenetv2_cifar(1.0, pretrained, pointwise="maconv", **kwargs)
