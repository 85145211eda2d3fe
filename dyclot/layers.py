"""Operators of the Dynamic Clone Transformer paper (Ye, arXiv:2106.06604), apart from networks.

* :class:`DynamicCloneTransformer` -- the DCT module, eq. (5)-(6): ``Y = D(X', p) + Psi(X')``.
* :class:`PointwiseExpansion` -- the 1x1 convolution that DCT replaces (the ablation baseline).
* An expansion-operator registry (:func:`register_expansion`, :func:`create_expansion`): the open
  slot of the DCT bottleneck. Every operator maps ``in_chs`` channels to ``p * in_chs`` channels;
  other packages (``baselines``) add Ghost-style and FTM-style operators under new names.

Nothing here imports a network; networks assemble these operators.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

CloneOrder = Literal["tile", "interleave"]
Recalibrator = Literal["sigmoid_add", "tanh_add", "sigmoid_mul", "none"]
RecalibratorWidthBase = Literal["in", "out"]

CLONE_ORDERS = ("tile", "interleave")
RECALIBRATORS = ("sigmoid_add", "tanh_add", "sigmoid_mul", "none")
RECALIBRATOR_WIDTH_BASES = ("in", "out")


def check_choice(name: str, value: object, allowed: tuple) -> None:
    """Raise a ValueError naming ``name``, its ``value`` and the ``allowed`` values."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")


def check_positive_int(name: str, value: object, minimum: int = 1) -> None:
    """Raise a ValueError unless ``value`` is an int (not bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; it must be an integer >= {minimum}")


def _channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is laid out channels-last (NHWC) rather than contiguous (NCHW). Inside ``torch.func.vmap``
    (several runs stacked in one call) a tensor's memory format cannot be queried: there ``x`` is taken as NCHW,
    which computes the same values in the other memory order."""
    if torch._C._functorch.is_batchedtensor(x):
        return False
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class DynamicCloneTransformer(nn.Module):
    """The DCT module of eq. (5)-(6): replicator ``D(X', p)`` plus recalibrator ``Psi(X', theta)``.

    ``X'`` (B, C, H, W) is cloned ``p`` times to ``p*C`` channels; the recalibrator
    ``Psi = sigma(h2(h1(GAP(X'))))`` produces one value per output channel (B, p*C) -- the
    "difference vectors" that make the clones differ -- merged with the clones by summation.

    The replication is never materialised before the merge: ``X'`` is viewed as (B, 1, C, H, W)
    (tile order) or (B, C, 1, H, W) (interleave order) and added to the recalibrator output viewed
    as (B, p, C, 1, 1) or (B, C, p, 1, 1): one broadcast add writes the (B, p*C, H, W) output.

    Args:
        in_chs: channels of ``X'`` (``N/p`` in Table 1).
        p: replication (expansion) ratio; output has ``p * in_chs`` channels.
        r: reduction ratio of the recalibrator's hidden layer (``h1``).
        recalibrator: ``"sigmoid_add"`` (eq. 6, summation, the paper), ``"tanh_add"`` (signed
            differences), ``"sigmoid_mul"`` (SE-style gating of the clones) or ``"none"``
            (replicator only, ``Y = D(X', p)``).
        recalibrator_width_base: the width that ``r`` divides: ``"out"`` (``p * in_chs / r``: the
            width of the clones being recalibrated, as SE divides the width it recalibrates; the
            only reading that reproduces the published parameter ratio, docs/interpretation.md)
            or ``"in"`` (``in_chs / r``: h1 reduces its own input).
        clone_order: ``"tile"`` ([x, x, ...], output channel ``k*C + c``) or ``"interleave"``
            (each channel repeated in place, output channel ``c*p + k``).
        recalibrator_act: activation between ``h1`` and ``h2`` (eq. 6 names none; SE [20] uses ReLU).
        min_hidden: lower bound of the hidden width.
    """

    def __init__(
        self,
        in_chs: int,
        p: int = 2,
        r: int = 4,
        recalibrator: Recalibrator = "sigmoid_add",
        recalibrator_width_base: RecalibratorWidthBase = "out",
        clone_order: CloneOrder = "tile",
        recalibrator_act: Callable[[], nn.Module] = nn.ReLU,
        min_hidden: int = 1,
    ) -> None:
        super().__init__()
        check_positive_int("in_chs", in_chs)
        check_positive_int("p", p)
        check_positive_int("r", r)
        check_choice("recalibrator", recalibrator, RECALIBRATORS)
        check_choice("recalibrator_width_base", recalibrator_width_base, RECALIBRATOR_WIDTH_BASES)
        check_choice("clone_order", clone_order, CLONE_ORDERS)
        self.in_chs, self.p, self.out_chs = in_chs, p, p * in_chs
        self.recalibrator, self.clone_order = recalibrator, clone_order
        if recalibrator == "none":
            self.h1 = self.act = self.h2 = None
            return
        base = in_chs if recalibrator_width_base == "in" else self.out_chs
        hidden = max(min_hidden, base // r)
        self.h1 = nn.Linear(in_chs, hidden)
        self.act = recalibrator_act()
        self.h2 = nn.Linear(hidden, self.out_chs)

    def recalibration(self, x: torch.Tensor) -> torch.Tensor:
        """``h2(act(h1(GAP(x))))`` before its output nonlinearity, shape (B, p*C).

        GAP averages in the tensor's own memory order, so that its gradient is channels-last when
        ``x`` is: a channels-first gradient would send the preceding batch norm's backward pass
        down its slow mixed-format path (1.3x slower training steps for DyClotNet-0.5 on CPU).
        """
        gap = x.permute(0, 2, 3, 1).mean((1, 2)) if _channels_last(x) else x.mean((2, 3))
        return self.h2(self.act(self.h1(gap)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # Work in the tensor's own memory order so that channels_last stays channels_last:
        # NCHW -> clones (B, p, C, H, W); NHWC -> clones (B, H, W, p, C). Interleave swaps p and C.
        nhwc = _channels_last(x)
        frame = x.permute(0, 2, 3, 1) if nhwc else x
        channel_dim = 3 if nhwc else 1
        tile = self.clone_order == "tile"
        clones = frame.unsqueeze(channel_dim if tile else channel_dim + 1)  # a view, no copy
        pc = (self.p, c) if tile else (c, self.p)
        if self.recalibrator == "none":
            out_shape = (b, h, w, *pc) if nhwc else (b, *pc, h, w)
            y = clones.expand(out_shape)
        else:
            psi = self.recalibration(x)
            psi = psi.view(b, 1, 1, *pc) if nhwc else psi.view(b, *pc, 1, 1)
            if self.recalibrator == "sigmoid_add":
                y = clones + torch.sigmoid(psi)  # the one broadcast add of eq. (5)
            elif self.recalibrator == "tanh_add":
                y = clones + torch.tanh(psi)
            else:  # sigmoid_mul
                y = clones * torch.sigmoid(psi)
        if nhwc:
            return y.reshape(b, h, w, self.out_chs).permute(0, 3, 1, 2)
        return y.reshape(b, self.out_chs, h, w)

    def count_macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """Operations of one forward pass, counted like ptflops counts layers.

        Multiply-adds of ``h1`` and ``h2`` (with biases), one operation per element for GAP, the
        hidden activation, the output nonlinearity and the merge with the clones. The replication
        alone is a copy and counts 0 (replicator-only DCT).
        """
        b, c, h, w = x.shape
        if self.h1 is None:
            return 0
        hidden = self.h1.out_features
        per_example = c * h * w + (c + 1) * hidden + hidden + (hidden + 1) * self.out_chs + self.out_chs + self.out_chs * h * w
        return b * per_example

    def extra_repr(self) -> str:
        return f"{self.in_chs}->{self.out_chs}, p={self.p}, recalibrator={self.recalibrator}, order={self.clone_order}"


class PointwiseExpansion(nn.Conv2d):
    """The 1x1 convolution from ``in_chs`` to ``p * in_chs`` that DCT replaces (no bias).

    The ablation baseline "DCT vs pointwise expansion": the same bottleneck with a dense
    channel-mixing expansion in the DCT slot. Like every expansion operator it sits behind (or
    before) the bottleneck's ``expansion_norm``, so DCT and pointwise differ in the operator only.
    """

    def __init__(self, in_chs: int, p: int = 2, **_: object) -> None:
        check_positive_int("p", p)
        super().__init__(in_chs, p * in_chs, 1, bias=False)
        self.in_chs, self.p, self.out_chs = in_chs, p, p * in_chs


ExpansionFactory = Callable[..., nn.Module]
_EXPANSIONS: dict[str, ExpansionFactory] = {}


def register_expansion(name: str) -> Callable[[ExpansionFactory], ExpansionFactory]:
    """Register an expansion operator ``factory(in_chs, p=..., **options) -> nn.Module``.

    The module maps (B, in_chs, H, W) to (B, p * in_chs, H, W). Options it does not use
    (DCT-specific ``r``, ``recalibrator``...) are passed too and must be accepted and ignored.
    """

    def decorator(factory: ExpansionFactory) -> ExpansionFactory:
        if name in _EXPANSIONS and _EXPANSIONS[name] is not factory:
            raise ValueError(f"expansion operator {name!r} is already registered")
        _EXPANSIONS[name] = factory
        return factory

    return decorator


def list_expansions() -> list[str]:
    """Names of the registered expansion operators."""
    return sorted(_EXPANSIONS)


def create_expansion(name: str, in_chs: int, p: int, **options: object) -> nn.Module:
    """Build the expansion operator ``name`` for ``in_chs`` inputs and ratio ``p``."""
    check_choice("expansion", name, tuple(list_expansions()))
    return _EXPANSIONS[name](in_chs, p=p, **options)


@register_expansion("dct")
def _dct(in_chs: int, p: int, *, r: int = 4, recalibrator: Recalibrator = "sigmoid_add",
         recalibrator_width_base: RecalibratorWidthBase = "out", clone_order: CloneOrder = "tile",
         recalibrator_act: Callable[[], nn.Module] = nn.ReLU, **_: object) -> nn.Module:
    return DynamicCloneTransformer(in_chs, p, r, recalibrator, recalibrator_width_base, clone_order, recalibrator_act)


@register_expansion("pointwise")
def _pointwise(in_chs: int, p: int, **_: object) -> nn.Module:
    return PointwiseExpansion(in_chs, p)
