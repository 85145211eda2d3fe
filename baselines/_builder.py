"""Shared checks of the baselines' ``@register_model`` functions."""
from __future__ import annotations

_TIMM_ONLY_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def model_kwargs(variant: str, pretrained: bool, kwargs: dict) -> dict:
    """Refuse ``pretrained=True`` (no CIFAR weights exist; no internet) and drop timm's own kwargs."""
    if pretrained:
        raise ValueError(f"pretrained=True is not available for {variant}: no CIFAR weights are published here")
    return {key: value for key, value in kwargs.items() if key not in _TIMM_ONLY_KWARGS}


def cifar_input_cfg(model, in_chans: int) -> None:
    """Point a timm model's ``pretrained_cfg`` at 32x32 input (it still describes ImageNet)."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg.update(input_size=(in_chans, 32, 32), pool_size=None, url="", hf_hub_id=None)
    model.pretrained_cfg = model.default_cfg = cfg
