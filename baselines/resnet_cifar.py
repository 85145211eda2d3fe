"""CIFAR ResNets (ResNet-20/56, option-A shortcuts), plain or with FTM / MDConv / MAConv convolutions.

Paper: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
arXiv:1512.03385, Sec. 4.2 (the CIFAR-10 networks); code (Torch/Lua)
https://github.com/facebook/fb.resnet.torch. Operators: FTM (Li et al., MTAP 2024,
https://github.com/li-ju-bazhong/Efficient-feature-transform-module), MDConv/MAConv (Luo & Zhan,
HTL 2022) -- see :mod:`baselines.layers`.

The network of Sec. 4.2: a 3x3 conv to 16 channels, three stages of ``n`` basic blocks with
16/32/64 channels on 32x32/16x16/8x8 maps (depth ``6n+2``), global average pooling, FC.
Shortcuts are option A: identity, and where the shape changes, stride-2 subsampling with the
new channels zero ("zero-padded identity"), so shortcuts have no parameters.

Departures / choices (documented in docs/baselines.md):
* ``conv="ftm" | "mdconv" | "maconv"`` replaces the two 3x3 convolutions of every basic block;
  the stem convolution stays a plain conv (as in the official FTM ResNets, whose FTM follows the
  official code: pointwise conv with bias, kernel-1 gate; ResNet-20/56-FTM have their 20,684 and
  62,384 parameters);
* the zero channels of the option-A shortcut are split half before and half after the identity
  channels (``planes // 4`` on each side when the width doubles), as in the official FTM code
  (``models/resnet_ftm.py``, ``LambdaLayer``) and the PyTorch CIFAR ResNets it derives from
  (Idelbayev's ``resnet.py``). Architecture revision 2 of every network here; revision 1 appended
  them all after the identity, which is not equivalent for FTM (see docs/baselines.md);
* Kaiming-normal (fan_out) initialisation of convolutions, as timm's and torchvision's ResNets.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

from dyclot.layers import check_positive_int

from ._builder import model_kwargs
from .folding import fuse_modules, static_conv
from .layers import create_conv

__all__ = ["BasicBlock", "ResNetCifar"]

# Architecture revision of every network registered here (``baselines.registry.architecture_revision``; recorded in
# each run's config.json, docs/engine.md). 1: the option-A shortcut appended all its zero channels after the identity.
# 2: half before, half after it, as the official code (with FTM, revision 1 gives the authors' weights 10% accuracy).
ARCHITECTURE_REVISION = 2

STAGE_WIDTHS = (16, 32, 64)
BLOCK_CONVS = ("conv", "ftm", "mdconv", "maconv")


class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` with an option-A shortcut."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, conv_layer: Callable[..., nn.Module]) -> None:
        super().__init__()
        self.conv1 = conv_layer(in_chs, out_chs, 3, stride)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = conv_layer(out_chs, out_chs, 3, 1)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.stride, self.extra_chs = stride, out_chs - in_chs

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Option A: identity; subsample by ``stride`` and, when the width grows, zero channels on both sides of it
        (``extra // 2`` before, the rest after: ``planes // 4`` each when the width doubles, as the official code)."""
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        before = self.extra_chs // 2
        return F.pad(x, (0, 0, 0, 0, before, self.extra_chs - before)) if self.extra_chs else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))
        return self.act(y + self.shortcut(x))


class ResNetCifar(nn.Module):
    """He et al.'s CIFAR ResNet of depth ``6n+2``.

    Args:
        depth: 20, 32, 44, 56, 110... (``(depth - 2) % 6 == 0``).
        num_classes, in_chans: classifier outputs and input channels (1 or 3).
        conv: operator of the blocks' 3x3 convolutions: ``"conv"``, ``"ftm"``, ``"mdconv"``, ``"maconv"``.
        conv_kwargs: options of that operator (e.g. FTM ``ratio``, MDConv ``attention``).
        drop_rate: dropout before the classifier (0 in the paper).
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, in_chans: int = 3, conv: str = "conv",
                 conv_kwargs: dict | None = None, drop_rate: float = 0.0) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_chans", in_chans)
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth={depth!r} is not a CIFAR ResNet depth (6n+2, n >= 1)")
        if conv not in BLOCK_CONVS:
            raise ValueError(f"conv={conv!r} is not allowed; choose one of {', '.join(map(repr, BLOCK_CONVS))}")
        blocks_per_stage = (depth - 2) // 6
        conv_layer = partial(create_conv, conv, **(conv_kwargs or {}))
        self.num_classes, self.num_features = num_classes, STAGE_WIDTHS[-1]
        self.stem = nn.Sequential(static_conv(in_chans, STAGE_WIDTHS[0], 3), nn.BatchNorm2d(STAGE_WIDTHS[0]),
                                  nn.ReLU(inplace=True))
        stages, in_chs = [], STAGE_WIDTHS[0]
        for index, width in enumerate(STAGE_WIDTHS):
            blocks = []
            for i in range(blocks_per_stage):
                blocks.append(BasicBlock(in_chs, width, 2 if index > 0 and i == 0 else 1, conv_layer))
                in_chs = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def fuse(self) -> ResNetCifar:
        """Fold MDConv/MAConv into static 3x3 convolutions in place (call in eval mode)."""
        return fuse_modules(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.global_pool(x).flatten(1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create_resnet_cifar(depth: int, pretrained: bool = False, **kwargs) -> ResNetCifar:
    return ResNetCifar(depth, **model_kwargs(f"resnet{depth}_cifar", pretrained, kwargs))


@register_model
def resnet20_cifar(pretrained: bool = False, **kwargs) -> ResNetCifar:
    """ResNet-20 (He et al. 2016, Sec. 4.2, n=3)."""
    return _create_resnet_cifar(20, pretrained, **kwargs)


@register_model
def resnet56_cifar(pretrained: bool = False, **kwargs) -> ResNetCifar:
    """ResNet-56 (He et al. 2016, Sec. 4.2, n=9)."""
    return _create_resnet_cifar(56, pretrained, **kwargs)


@register_model
def resnet20_cifar_ftm(pretrained: bool = False, **kwargs) -> ResNetCifar:
    """ResNet-20 with every block convolution an FTM (S=2)."""
    return _create_resnet_cifar(20, pretrained, conv="ftm", **kwargs)


@register_model
def resnet56_cifar_ftm(pretrained: bool = False, **kwargs) -> ResNetCifar:
    """ResNet-56 with every block convolution an FTM (S=2)."""
    return _create_resnet_cifar(56, pretrained, conv="ftm", **kwargs)


@register_model
def resnet20_cifar_mdconv(pretrained: bool = False, **kwargs) -> ResNetCifar:
    """ResNet-20 with per-example MDConv block convolutions; ``fuse()`` switches them to the compact form
    (with ``conv_kwargs={"attention": "batch"}`` it folds into ``resnet20_cifar``)."""
    return _create_resnet_cifar(20, pretrained, conv="mdconv", **kwargs)


@register_model
def resnet20_cifar_maconv(pretrained: bool = False, **kwargs) -> ResNetCifar:
    """ResNet-20 with MAConv block convolutions; ``fuse()`` folds it into ``resnet20_cifar``."""
    return _create_resnet_cifar(20, pretrained, conv="maconv", **kwargs)
