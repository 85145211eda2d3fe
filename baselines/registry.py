"""The model registry the engine builds from: timm's, after ``dyclot`` and ``baselines`` registered theirs."""
from __future__ import annotations

import difflib
import importlib
import json

import timm
from torch import nn

import baselines  # noqa: F401  (registers the baseline networks with timm)
import dyclot  # noqa: F401  (registers DyClotNet with timm)


def list_models(pattern: str = "") -> list[str]:
    """Registered model names containing ``pattern``."""
    return sorted(name for name in timm.list_models() if pattern in name)


def check_model_name(name: str) -> None:
    """Raise a ValueError naming ``name`` and its closest registered matches if it is unknown."""
    if not timm.is_model(name):
        ours = [m for m in timm.list_models() if timm.models.model_entrypoint(m).__module__.split(".")[0]
                in ("dyclot", "baselines")]
        close = difflib.get_close_matches(name, ours, n=5, cutoff=0.5)  # our models first, then timm's own
        close += difflib.get_close_matches(name, timm.list_models(), n=5 - len(close), cutoff=0.5) if len(close) < 5 else []
        close = list(dict.fromkeys(close))
        hint = f"; close matches: {', '.join(close)}" if close else "; `run.py profile --list` lists the models"
        raise ValueError(f"model {name!r} is not registered{hint}")


def create_model(name: str, **kwargs) -> nn.Module:
    """``timm.create_model(name, **kwargs)`` with a clear error for unknown names and options."""
    check_model_name(name)
    try:
        return timm.create_model(name, **kwargs)
    except TypeError as error:  # an option the constructor does not take
        raise ValueError(f"model {name!r} rejected its options {sorted(kwargs)}: {error}") from None


def architecture_revision(name: str) -> int:
    """The architecture revision of model ``name``: the ``ARCHITECTURE_REVISION`` of the module that registered it,
    1 if it declares none (or ``name`` is not registered). A module raises it, with a comment saying what changed,
    whenever its networks compute something else for the same name and options; runs record it (``RunConfig``) and
    the analysis supersedes a model's runs of an older revision (docs/engine.md, "Architecture revisions")."""
    if not timm.is_model(name):
        return 1
    module = importlib.import_module(timm.models.model_entrypoint(name).__module__)
    revision = getattr(module, "ARCHITECTURE_REVISION", 1)
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
        raise ValueError(f"{module.__name__}.ARCHITECTURE_REVISION={revision!r} is not allowed; use a whole number >= 1")
    return revision


def architecture(net: nn.Module) -> str | None:
    """The built network's class and resolved constructor arguments (``arch_args``, which
    :class:`dyclot.DyClotNet` records), as one string; None for a model that records none. Two networks with the
    same string are the same architecture however their options were spelled (``{"p": 2}`` and ``{}``)."""
    args = getattr(net, "arch_args", None)
    if not isinstance(args, dict):
        return None
    return json.dumps([f"{type(net).__module__}.{type(net).__qualname__}", args], sort_keys=True, default=str)
