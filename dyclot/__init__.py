"""dyclot: the Dynamic Clone Transformer (DCT) and DyClotNet (Ye, arXiv:2106.06604).

Importing the package registers ``dyclotnet_025/050/100/200`` with timm, so that
``timm.create_model("dyclotnet_100", num_classes=10, p=2, r=4)`` works.
"""
from .dyclotnet import DCTBottleneck, DyClotNet, stage_widths
from .layers import (
    DynamicCloneTransformer,
    PointwiseExpansion,
    create_expansion,
    list_expansions,
    register_expansion,
)

__all__ = [
    "DCTBottleneck",
    "DyClotNet",
    "DynamicCloneTransformer",
    "PointwiseExpansion",
    "create_expansion",
    "list_expansions",
    "register_expansion",
    "stage_widths",
]
