"""Baselines of the DCT study: MobileNetV2, GhostNet, dynamic convolutions, FTM, MDConv/MAConv.

Importing the package registers every baseline network with timm (:data:`BASELINE_MODELS`) and
the ``"ghost"`` and ``"ftm"`` expansion operators with :func:`dyclot.layers.register_expansion`,
so that ``timm.create_model("resnet20_cifar_ftm", num_classes=10)`` and
``timm.create_model("dyclotnet_050", expansion="ghost")`` work. docs/baselines.md describes each
baseline and every interpretation choice.
"""
import timm

from . import ghostnet_cifar, mobilenetv2_cifar, resnet_cifar  # noqa: F401  (importing them registers their networks)
from .dynamic_conv import (
    CondConv,
    DynamicConv2d,
    DynamicConvDecomposition,
    dcd_latent_dim,
    default_anneal_epochs,
    set_epoch_temperature,
    temperature_at,
)
from .folding import MAConv2d, MDConv2d, fuse_modules
from .ftm import FeatureTransformModule, FTMExpansion, GhostExpansion, NeighbourChannelGate
from .layers import CONV_OPERATORS, create_conv
from .mobilenetv2_cifar import MobileNetV2Cifar
from .resnet_cifar import ResNetCifar

# Every registered baseline network, derived from the registry so new registrations are covered.
BASELINE_MODELS: tuple[str, ...] = tuple(
    name for module in ("mobilenetv2_cifar", "ghostnet_cifar", "resnet_cifar") for name in timm.list_models(module=module)
)

__all__ = [
    "BASELINE_MODELS",
    "CONV_OPERATORS",
    "CondConv",
    "DynamicConv2d",
    "DynamicConvDecomposition",
    "FTMExpansion",
    "FeatureTransformModule",
    "GhostExpansion",
    "MAConv2d",
    "MDConv2d",
    "MobileNetV2Cifar",
    "NeighbourChannelGate",
    "ResNetCifar",
    "create_conv",
    "dcd_latent_dim",
    "default_anneal_epochs",
    "fuse_modules",
    "set_epoch_temperature",
    "temperature_at",
]
