"""Shared checks of the baselines' ``@register_model`` functions."""
from __future__ import annotations

from dyclot.dyclotnet import model_kwargs  # noqa: F401  (one rule for every registration)


def cifar_input_cfg(model, in_chans: int) -> None:
    """Point a timm model's ``pretrained_cfg`` at 32x32 input (it still describes ImageNet)."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg.update(input_size=(in_chans, 32, 32), pool_size=None, url="", hf_hub_id=None)
    model.pretrained_cfg = model.default_cfg = cfg
