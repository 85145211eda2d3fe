"""The DCT operator, the DCT bottleneck (Table 1), DyClotNet (Table 2) and the cost model (eq. 7-8)."""
from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import timm
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import dyclot
from conftest import registered_models
from costing.profiling import count_flops, count_macs, count_params
from dyclot import DCTBottleneck, DynamicCloneTransformer, stage_widths
from dyclot.layers import CLONE_ORDERS, RECALIBRATORS


def test_models_are_registered_with_timm():
    """The four widths of Table 2; every registered model's forward/backward is in test_models.py."""
    assert {"dyclotnet_025", "dyclotnet_050", "dyclotnet_100", "dyclotnet_200"} <= set(registered_models("dyclot"))
    model = timm.create_model("dyclotnet_100", num_classes=10, p=2, r=4)
    assert isinstance(model, dyclot.DyClotNet)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


VARIANT_OPTIONS = (
    [{"expansion": "pointwise"}]
    + [{"recalibrator": name} for name in RECALIBRATORS]
    + [{"clone_order": order} for order in CLONE_ORDERS]
    + [{"recalibrator_width_base": "out"}, {"residual": False}, {"dw_act": False}, {"pw_act": False},
       {"expansion_norm": "after", "head_norm": False}, {"expansion_norm": "none"}, {"head_norm": False},
       {"channel_divisor": None}, {"act_layer": "relu6"}, {"act_layer": "hard_swish"},
       {"p": 1}, {"p": 4}, {"p": 8, "channel_divisor": None}, {"r": 1}, {"r": 16}, {"drop_rate": 0.2}]
)


@pytest.mark.parametrize("options", VARIANT_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("in_chans", [1, 3])
def test_every_variant_option_builds_and_trains(options, in_chans):
    torch.manual_seed(0)
    model = timm.create_model("dyclotnet_025", num_classes=10, in_chans=in_chans, **options)
    out = model(torch.randn(2, in_chans, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_options_change_the_network():
    base = count_params(timm.create_model("dyclotnet_050"))
    assert count_params(timm.create_model("dyclotnet_050", recalibrator="none")) < base
    assert count_params(timm.create_model("dyclotnet_050", expansion="pointwise")) > base
    assert count_params(timm.create_model("dyclotnet_050", recalibrator_width_base="in")) < base


# --- the DCT operator (eq. 5-6) --------------------------------------------------------------


def reference_dct(module: DynamicCloneTransformer, x: torch.Tensor) -> torch.Tensor:
    """eq. (5) written the slow, obvious way: materialise the clones, then merge."""
    p = module.p
    clones = x.repeat(1, p, 1, 1) if module.clone_order == "tile" else x.repeat_interleave(p, dim=1)
    if module.recalibrator == "none":
        return clones
    psi = module.recalibration(x)
    psi = psi[:, :, None, None]
    return {"sigmoid_add": clones + torch.sigmoid(psi), "tanh_add": clones + torch.tanh(psi),
            "sigmoid_mul": clones * torch.sigmoid(psi)}[module.recalibrator]


@pytest.mark.parametrize("recalibrator", RECALIBRATORS)
@pytest.mark.parametrize("clone_order", CLONE_ORDERS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_dct_matches_explicit_replication(recalibrator, clone_order, channels_last):
    torch.manual_seed(0)
    module = DynamicCloneTransformer(6, p=3, r=2, recalibrator=recalibrator, clone_order=clone_order)
    x, weights = torch.randn(2, 6, 5, 4, requires_grad=True), torch.randn(2, 18, 5, 4)
    expected = reference_dct(module, x)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), x)
    x = x.detach().contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    y = module(x.requires_grad_())
    assert y.shape == (2, 18, 5, 4)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-6)
    (grad,) = torch.autograd.grad((y * weights).sum(), x)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-5)
    if channels_last:  # a channels-first gradient sends the batch norm before the DCT down its slow path
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert grad.is_contiguous(memory_format=torch.channels_last)


def test_clone_order_tile_vs_interleave():
    x = torch.arange(3.0).view(1, 3, 1, 1)
    tile = DynamicCloneTransformer(3, p=2, recalibrator="none", clone_order="tile")(x).flatten().tolist()
    interleave = DynamicCloneTransformer(3, p=2, recalibrator="none", clone_order="interleave")(x).flatten().tolist()
    assert tile == [0, 1, 2, 0, 1, 2]
    assert interleave == [0, 0, 1, 1, 2, 2]


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[tuple[str, tuple]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.append((str(func.overloadpacket.__name__), tuple(out.shape) if isinstance(out, torch.Tensor) else ()))
        return out


def test_replication_is_one_broadcast_add_without_repeat():
    module = DynamicCloneTransformer(8, p=4, r=2)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad(), _OpRecorder() as recorder:
        module(x)
    names = [name for name, _ in recorder.ops]
    assert not {"repeat", "repeat_interleave", "cat"} & set(names), names
    full_size = [(name, shape) for name, shape in recorder.ops if math.prod(shape) == 2 * 32 * 36]
    assert [name for name, _ in full_size if name != "view"] == ["add"], recorder.ops
    assert ("add", (2, 4, 8, 6, 6)) in recorder.ops


def test_recalibrator_hidden_width_follows_r_and_base():
    assert DynamicCloneTransformer(32, p=2, r=4).h1.out_features == 16  # default: (p * 32) / r
    assert DynamicCloneTransformer(32, p=2, r=4, recalibrator_width_base="in").h1.out_features == 8
    assert DynamicCloneTransformer(4, p=2, r=16).h1.out_features == 1


# --- Table 1: the bottleneck ----------------------------------------------------------------


def test_bottleneck_parameter_count_by_hand():
    """Table 1 with M = N = 64, p = 2, r = 4 (hidden = N/r = 16), BN after each conv and before the DCT."""
    m = n = 64
    p, r = 2, 4
    s = n // (2 * p)  # 16: each pointwise output
    c = n // p  # 32: the DCT input (concatenation)
    hidden = n // r
    by_hand = (
        (9 * m + 2 * m)  # 3x3 depthwise + BN
        + (m * s + 2 * s)  # 1x1 conv M -> N/2p + BN
        + (s * s + 2 * s)  # 1x1 conv N/2p -> N/2p + BN
        + (c * hidden + hidden) + (hidden * n + n)  # recalibrator h1, h2 (with biases)
        + 2 * c  # BN of the DCT's input (expansion_norm="before")
    )
    assert by_hand == 3728
    assert count_params(DCTBottleneck(m, n, p=p, expansion_kwargs={"r": r})) == by_hand


def test_bottleneck_shapes_and_residual():
    block = DCTBottleneck(32, 64, stride=2, p=4)
    assert block(torch.randn(2, 32, 16, 16)).shape == (2, 64, 8, 8)
    assert not block.has_residual
    assert DCTBottleneck(64, 64, p=4).has_residual
    assert not DCTBottleneck(64, 64, p=4, residual=False).has_residual


# --- Section 4: the cost model (eq. 7-8) ------------------------------------------------------


@pytest.mark.parametrize("n,p,df", [(64, 2, 16), (128, 2, 8), (256, 4, 8)])
def test_cost_model_eq7_eq8(n, p, df):
    m, dk = n, 3
    separable = nn.Sequential(nn.Conv2d(m, m, dk, padding=1, groups=m, bias=False), nn.Conv2d(m, n, 1, bias=False))
    block = DCTBottleneck(m, n, p=p, expansion_kwargs={"r": 4})
    shape = (m, df, df)

    c0 = df**2 * dk**2 * m + df**2 * m * n  # eq. (7)
    c1 = df**2 * dk**2 * m + df**2 * m * n // (2 * p) + df**2 * n**2 // (4 * p**2)  # eq. (8), first line
    c1_approx = df**2 * (m * n / (2 * p) + n**2 / (4 * p**2))  # eq. (8), second line
    s, c = n // (2 * p), n // p
    hidden = n // 4

    # torch's counter sees only the convolutions and the recalibrator's two matrix products.
    assert count_flops(separable, shape) == 2 * c0
    assert count_flops(block, shape) == 2 * (c1 + c * hidden + hidden * n)

    # ptflops adds what eq. (8) drops: BN (2 per element), ReLU (1 per element) and the DCT's own cost.
    assert count_macs(separable, shape) == c0
    dropped = df**2 * (3 * m + 3 * s + 3 * s + 2 * c)  # BN + ReLU after dw, pw1, pw2; BN of the DCT's input
    dct_cost = c * df**2 + (c + 1) * hidden + hidden + (hidden + 1) * n + n + n * df**2
    assert count_macs(block, shape) == c1 + dropped + dct_cost

    # eq. (8): the approximation drops the depthwise term; with it, C1 <= 5/16 C0 holds.
    assert c1_approx <= 5 / 16 * c0
    assert count_macs(block, shape) - dropped - dct_cost - df**2 * dk**2 * m <= 5 / 16 * count_macs(separable, shape)


# --- bad arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"alpha": 0}, "alpha=0"),
        ({"alpha": -1.0}, "alpha=-1.0"),
        ({"alpha": float("nan")}, "alpha=nan"),
        ({"p": 0}, "p=0"),
        ({"p": 2.5}, "p=2.5"),
        ({"r": 0}, "r=0"),
        ({"alpha": 0.25, "p": 16}, "p=16 cannot split"),
        ({"p": 3}, "p=3 cannot split"),
        ({"recalibrator": "softmax"}, "recalibrator='softmax'"),
        ({"clone_order": "random"}, "clone_order='random'"),
        ({"recalibrator_width_base": "hidden"}, "recalibrator_width_base='hidden'"),
        ({"expansion": "conv3x3"}, "expansion='conv3x3'"),
        ({"channel_divisor": 0}, "channel_divisor=0"),
        ({"act_layer": "nope"}, "act_layer='nope'"),
        ({"drop_rate": 1.0}, "drop_rate=1.0"),
        ({"num_classes": 0}, "num_classes=0"),
    ],
)
def test_bad_arguments_name_the_argument_value_and_rule(kwargs, needle):
    kwargs = dict(kwargs)
    alpha = kwargs.pop("alpha", 0.5)
    with pytest.raises(ValueError) as info:
        dyclot.DyClotNet(alpha=alpha, **kwargs)
    assert needle in str(info.value)
    assert any(word in str(info.value) for word in ("must", "choose", "not allowed", "divisible", "not an"))


def test_split_rule_under_rounding():
    assert stage_widths(0.5, 8, 8)[1] == [32, 64, 64, 128, 128]
    with pytest.raises(ValueError, match="p=16 cannot split.*alpha=0.25.*2p=32"):
        stage_widths(0.25, 16, 8)
    stem, widths = stage_widths(0.25, 16, None)  # rounding to multiples of 2p always splits
    assert all(w % 32 == 0 for w in widths)


def test_pretrained_is_refused():
    with pytest.raises(ValueError, match="pretrained"):
        timm.create_model("dyclotnet_050", pretrained=True)


def test_default_network_trains_stably():
    """SGD at lr 0.1 (the protocols' rate) keeps the default network's loss bounded (cf. expansion_norm,
    head_norm: without the head BN, the placement "before" reaches a loss of 53 within 5 steps)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = timm.create_model("dyclotnet_025", num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    means = torch.randn(10, 3, 32, 32, generator=generator)
    losses = []
    for _ in range(25):
        target = torch.randint(0, 10, (32,), generator=generator)
        loss = nn.functional.cross_entropy(model(means[target] + torch.randn(32, 3, 32, 32, generator=generator)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert max(losses) < 6.0, losses


def test_mac_counter_counts_subclasses_of_layers_ptflops_knows():
    """ptflops matches layer types exactly; PointwiseExpansion (an nn.Conv2d) and timm's BatchNormAct2d
    must be counted like their base classes, or DCT's saving over the pointwise expansion vanishes."""
    from timm.layers import BatchNormAct2d

    from costing.profiling import count_macs
    from dyclot.layers import PointwiseExpansion

    shape = (16, 8, 8)
    assert count_macs(PointwiseExpansion(16, p=2), shape) == count_macs(nn.Conv2d(16, 32, 1, bias=False), shape) == 32 * 16 * 64
    bn_relu = nn.Sequential(nn.BatchNorm2d(16), nn.ReLU())
    assert count_macs(BatchNormAct2d(16, act_layer=nn.ReLU), shape) == count_macs(bn_relu, shape) > 0
    pointwise = timm.create_model("dyclotnet_050", expansion="pointwise")
    replicator = timm.create_model("dyclotnet_050", expansion="dct", recalibrator="none")
    convs = [m for m in pointwise.modules() if isinstance(m, PointwiseExpansion)]
    outputs = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: outputs.__setitem__(mod, o.shape)) for m in convs]
    pointwise.eval()(torch.zeros(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    expected = sum(m.in_chs * m.out_chs * outputs[m][-1] * outputs[m][-2] for m in convs)
    assert expected > 0 and count_macs(pointwise, (3, 32, 32)) - count_macs(replicator, (3, 32, 32)) == expected


def _train_mode_output(model: nn.Module, recalibration: Callable[[DynamicCloneTransformer], torch.Tensor]) -> torch.Tensor:
    """The train-mode output of ``model`` with every DCT's recalibration (Psi before its sigmoid)
    replaced by ``recalibration(dct)``, a (1, p*C) tensor shared by the batch."""
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    original = DynamicCloneTransformer.recalibration
    DynamicCloneTransformer.recalibration = lambda self, features: recalibration(self).expand(features.shape[0], -1)
    try:
        return model.train()(x)
    finally:
        DynamicCloneTransformer.recalibration = original


@pytest.mark.parametrize("expansion_norm, changes", [("before", True), ("none", True), ("after", False)])
def test_batch_constant_recalibration_reaches_the_output(expansion_norm: str, changes: bool):
    """Psi's difference vectors must change what the network computes: with a BN after the expansion
    (``"after"``) train-mode BN subtracts each channel's batch mean and a per-channel constant Psi
    vanishes; the default placement keeps it."""
    model = timm.create_model("dyclotnet_050", expansion_norm=expansion_norm)
    generator = torch.Generator().manual_seed(1)
    zero = _train_mode_output(model, lambda dct: torch.zeros(1, dct.out_chs))
    constant = _train_mode_output(model, lambda dct: 3 * torch.randn(1, dct.out_chs, generator=generator))
    difference = (zero - constant).abs().max().item()
    assert (difference > 1e-2) if changes else (difference < 1e-4), difference
    if expansion_norm == "before":
        assert timm.create_model("dyclotnet_050").arch_args["expansion_norm"] == "before"  # the default


def test_replicator_only_is_a_pure_replicator_by_default():
    """No per-clone affine after the replication: the clones of a replicator-only DCT bottleneck are
    equal, channel for channel, before the residual add."""
    block = DCTBottleneck(32, 64, stride=2, p=2, expansion_kwargs={"recalibrator": "none"}).eval()
    y = block(torch.randn(2, 32, 8, 8))
    assert torch.equal(y[:, :32], y[:, 32:])
    after = DCTBottleneck(32, 64, stride=2, p=2, expansion_kwargs={"recalibrator": "none"}, expansion_norm="after").eval()
    torch.nn.init.uniform_(after.out_norm.weight)
    assert not torch.equal(*after(torch.randn(2, 32, 8, 8)).split(32, dim=1))
