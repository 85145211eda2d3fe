"""Tests of the baselines: every registered network, the operators, the folds and the temperature hook.

Small inputs only (batch 2, 32x32): the whole file runs in well under a minute on 2 CPU cores.
"""
from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import baselines
from baselines import (
    BASELINE_MODELS,
    CondConv,
    DynamicConv2d,
    DynamicConvDecomposition,
    FeatureTransformModule,
    FTMExpansion,
    GhostExpansion,
    MAConv2d,
    MDConv2d,
    NeighbourChannelGate,
    dcd_latent_dim,
    default_anneal_epochs,
    temperature_at,
)
from baselines.dynamic_conv import DynamicLinearDecomposition, dcd_hsigmoid
from conftest import registered_models
from costing.profiling import count_macs, count_params, profile_model
from dyclot.layers import create_expansion, list_expansions

CIFAR = (3, 32, 32)  # input shape of the MAC counts
FOLDABLE = {  # foldable network -> the static network it must become after fuse(), and the options that make it foldable
    "resnet20_cifar_mdconv": ("resnet20_cifar", {"conv_kwargs": {"attention": "batch"}}),
    "resnet20_cifar_maconv": ("resnet20_cifar", {}),
    "mobilenetv2_cifar_mdconv_100": ("mobilenetv2_cifar_100", {"pointwise_kwargs": {"attention": "batch"}}),
    "mobilenetv2_cifar_maconv_100": ("mobilenetv2_cifar_100", {}),
}
# Parameter counts of the authors' own models, built from their code (10 / 1000 classes):
# DCD MobileNetV2x1.0 as their README's command builds it (--fc-squeeze 16), github.com/liyunsheng13/dcd;
# FTM ResNet-20/56, github.com/li-ju-bazhong/Efficient-feature-transform-module (ResNet-56: their
# released checkpoint, 91.68% on CIFAR-10).
DCD_MOBILENETV2_100_PARAMS = {10: 4_388_478, 1000: 5_720_028}
DCD_MOBILENETV2_050_PARAMS_10 = 1_332_750
FTM_RESNET_PARAMS = {"resnet20_cifar_ftm": 20_684, "resnet56_cifar_ftm": 62_384}
REQUIRED_NAMES = {
    "mobilenetv2_cifar_050", "mobilenetv2_cifar_100", "ghostnet_cifar_050", "ghostnet_cifar_100",
    "mobilenetv2_cifar_dynconv_100", "mobilenetv2_cifar_condconv_100", "mobilenetv2_cifar_dcd_100",
    "mobilenetv2_cifar_mdconv_100", "mobilenetv2_cifar_maconv_100", "resnet20_cifar", "resnet56_cifar",
    "resnet20_cifar_ftm", "resnet56_cifar_ftm", "resnet20_cifar_mdconv", "resnet20_cifar_maconv",
}


pytestmark = pytest.mark.usefixtures("one_thread", "seeded")


def calibrate(model: nn.Module, batches: int = 3) -> None:
    """Train-mode forwards with cumulative BatchNorm statistics, so eval outputs are well scaled."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(4, 3, 32, 32, dtype=next(model.parameters()).dtype))
    model.eval()


# --- every registered network ----------------------------------------------------------------

def test_registry_holds_the_contracted_names() -> None:
    """Every registered network's forward/backward and pretrained refusal are in test_models.py."""
    assert set(BASELINE_MODELS) == set(registered_models("baselines"))
    assert REQUIRED_NAMES <= set(BASELINE_MODELS)
    assert set(FOLDABLE) <= set(BASELINE_MODELS)


# --- MobileNetV2 / GhostNet adapted from timm ----------------------------------------------------

def test_mobilenetv2_cifar_matches_papers_readme() -> None:
    """Papers README: stride-1 stem and first stage, 10 classes -> 2.24M parameters, ~90M MACs."""
    model = timm.create_model("mobilenetv2_cifar_100", num_classes=10)
    assert count_params(model) == 2_236_682  # == timm's mobilenetv2_100 at 10 classes: strides cost nothing
    macs = count_macs(model, CIFAR)
    assert macs == 92_779_018
    # The README's "~90M": this counter also counts one operation per element of every BN and fused
    # activation (docs/profiling.md), 3.1 % above it; convolutions and the classifier alone are 88.0M.
    assert macs == pytest.approx(90e6, rel=0.035)


@pytest.mark.parametrize("name", ["mobilenetv2_cifar_100", "ghostnet_cifar_100"])
@pytest.mark.parametrize("first_stage_stride1, side", [(True, 4), (False, 2)])
def test_cifar_strides(name: str, first_stage_stride1: bool, side: int) -> None:
    model = timm.create_model(name, first_stage_stride1=first_stage_stride1)
    assert model.conv_stem.stride == (1, 1)
    assert model.forward_features(torch.randn(1, 3, 32, 32)).shape[-2:] == (side, side)


def test_mobilenetv2_ending_at_8x8_reproduces_both_published_cost_ratios() -> None:
    """The published headline (ICCAI 2022): DyClotNet-2.0 has 1.4x fewer parameters and 2.9x fewer MACs
    than MobileNetV2-1.0 on CIFAR. With the stem, the 24- and the 32-channel stages at stride 1,
    MobileNetV2-1.0 keeps its 2,236,682 parameters (10 classes) and costs 308,949,514 MACs."""
    cifar8 = timm.create_model("mobilenetv2_cifar8_100", num_classes=10)
    assert cifar8.forward_features(torch.randn(1, 3, 32, 32)).shape[-2:] == (8, 8)
    assert count_params(cifar8) == 2_236_682 and count_macs(cifar8, CIFAR) == 308_949_514
    dyclot = timm.create_model("dyclotnet_200", num_classes=10)
    params_ratio = count_params(cifar8) / count_params(dyclot)
    macs_ratio = count_macs(cifar8, CIFAR) / count_macs(dyclot, CIFAR)
    assert abs(params_ratio / 1.4 - 1) <= 0.05 and abs(macs_ratio / 2.9 - 1) <= 0.05, (params_ratio, macs_ratio)
    with pytest.raises(ValueError, match="stride1_stages=3 is not allowed"):
        timm.create_model("mobilenetv2_cifar_100", stride1_stages=3)


def test_pointwise_replacement_covers_every_1x1_conv() -> None:
    static = timm.create_model("mobilenetv2_cifar_100")
    dynamic = timm.create_model("mobilenetv2_cifar_dynconv_100")
    n_1x1 = sum(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in static.modules())
    assert sum(isinstance(m, DynamicConv2d) for m in dynamic.modules()) == n_1x1 == 34  # first block 1, 16 blocks * 2, head 1
    no_head = timm.create_model("mobilenetv2_cifar_dynconv_100", replace_head=False)
    assert isinstance(no_head.conv_head, nn.Conv2d)


# --- closed-form parameter counts ----------------------------------------------------------------

def test_dynamic_conv_params_closed_form() -> None:
    # K=4 kernels 32x16 + K biases 32; attention FC 16->4 (16//4, floor K=4) + bias, FC 4->4 + bias.
    assert count_params(DynamicConv2d(16, 32, 1, num_kernels=4)) == 4 * (32 * 16 + 32) + (16 * 4 + 4) + (4 * 4 + 4)
    # 3x3, groups 2, 64 -> 64: hidden 64//4 = 16.
    assert count_params(DynamicConv2d(64, 64, 3, groups=2)) == 4 * (64 * 32 * 9 + 64) + (64 * 16 + 16) + (16 * 4 + 4)


def test_condconv_params_closed_form() -> None:
    # 4 experts of 32x16, no bias; routing FC 16->4 with bias.
    assert count_params(CondConv(16, 32, 1, num_experts=4)) == 4 * 32 * 16 + (16 * 4 + 4)
    assert count_params(CondConv(24, 8, 3, bias=True, num_experts=3)) == 3 * (8 * 24 * 9 + 8) + (24 * 3 + 3)


def test_dcd_params_closed_form() -> None:
    # 96 -> 24 (narrowing): global pool, m = 1; L = min(96, 24) // 2 = 12 (144 <= 2*96); S = max(96, 144) // 16 = 9.
    w0, q, p = 24 * 96, 12 * 96, 24 * 12
    dynamic = 96 * 9 + 9 * 9 + 9 * 12 * 12 + 9 * 24  # squeeze, gate, Phi head, Lambda head
    norms = 2 * 12 + 2 * 12                          # BN(Q^T x), BN(Phi z)
    assert count_params(DynamicConvDecomposition(96, 24)) == w0 + q + p + dynamic + norms
    assert count_params(DynamicConvDecomposition(96, 24, latent_norm_residual=False)) == w0 + q + p + dynamic
    # 16 -> 96 (widening): 2x2 pooled descriptor, m = 4 (64 values); L = min(64, 96) // 8 = 8 (64 <= 128);
    # S = max(64, 64) // 16 = 4.
    dynamic = 64 * 4 + 4 * 4 + 4 * 8 * 8 + 4 * 96
    assert count_params(DynamicConvDecomposition(16, 96)) == 96 * 16 + 8 * 16 + 96 * 8 + dynamic + 4 * 8
    # the dynamic classifier 1280 -> 10: static FC with bias, L = S = 32
    dynamic = 1280 * 32 + 32 * 32 + 32 * 32 * 32 + 32 * 10
    assert count_params(DynamicLinearDecomposition(1280, 10)) == 10 * 1280 + 10 + 32 * 1280 + 10 * 32 + dynamic + 4 * 32


def test_mobilenetv2_dynamic_params_closed_form() -> None:
    """Network level: each replaced 1x1 conv (O x I) costs exactly its operator's closed form."""
    convs = [m for m in timm.create_model("mobilenetv2_cifar_100").modules()
             if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    static = count_params(timm.create_model("mobilenetv2_cifar_100"))

    def dynconv(i: int, o: int) -> int:
        h = max(i // 4, 4)
        return 4 * (o * i + o) + i * h + h + h * 4 + 4

    def condconv(i: int, o: int) -> int:
        return 4 * o * i + i * 4 + 4

    def dcd(i: int, o: int) -> int:
        m, r = (4, 8) if i < o else (1, 2)
        big_l = min(m * i, o) // r
        while big_l ** 2 > 2 * m * i:
            r *= 2
            big_l = min(m * i, o) // r
        big_l = max(big_l, 4)
        s = max(4, max(m * i, big_l * big_l) // 16)
        return o * i + big_l * i + o * big_l + m * i * s + s * s + s * big_l * big_l + s * o + 4 * big_l

    for name, closed_form in (("dynconv", dynconv), ("condconv", condconv), ("dcd", dcd)):
        model = timm.create_model("mobilenetv2_cifar_100", pointwise=name)
        expected = static + sum(closed_form(c.in_channels, c.out_channels) - c.in_channels * c.out_channels for c in convs)
        assert count_params(model) == expected, name
    assert count_params(timm.create_model("mobilenetv2_cifar_dynconv_100")) == count_params(
        timm.create_model("mobilenetv2_cifar_100", pointwise="dynconv"))


@pytest.mark.parametrize("num_classes", [10, 1000])
def test_dcd_mobilenetv2_matches_the_official_model(num_classes: int) -> None:
    """The official DCD MobileNetV2x1.0 (README command, --fc-squeeze 16): 4,388,478 / 5,720,028 parameters.

    Dynamic are both 1x1 convs of the 16 expanding blocks and the classifier; the first
    (depthwise-separable) block and the head conv stay static.
    """
    model = timm.create_model("mobilenetv2_cifar_dcd_100", num_classes=num_classes)
    assert count_params(model) == pytest.approx(DCD_MOBILENETV2_100_PARAMS[num_classes], rel=0.01)
    assert sum(isinstance(m, DynamicConvDecomposition) for m in model.modules()) == 32
    assert isinstance(model.classifier, DynamicLinearDecomposition)
    assert type(model.conv_head) is nn.Conv2d and type(model.blocks[0][0].conv_pw) is nn.Conv2d
    if num_classes == 10:
        half = timm.create_model("mobilenetv2_cifar_dcd_050", num_classes=10)
        assert count_params(half) == pytest.approx(DCD_MOBILENETV2_050_PARAMS_10, rel=0.01)


# The official option-A shortcut of the FTM authors' CIFAR ResNets (github.com/li-ju-bazhong/
# Efficient-feature-transform-module, models/resnet_ftm.py, BasicBlock's LambdaLayer; the same in Idelbayev's
# pytorch_resnet_cifar10): subsample by 2, then planes // 4 zero channels on EACH side of the identity.
def official_option_a(x: torch.Tensor, planes: int) -> torch.Tensor:
    return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))


@pytest.mark.parametrize("name", ["resnet20_cifar", "resnet56_cifar_ftm"])
def test_option_a_shortcut_pads_as_the_official_code(name: str) -> None:
    """Where the width doubles, the shortcut is the official formula; elsewhere it is the identity."""
    model = timm.create_model(name)
    padded = 0
    for block in (b for stage in model.stages for b in stage):
        in_chs, planes = block.bn2.num_features - block.extra_chs, block.bn2.num_features
        x = torch.randn(2, in_chs, 8, 8)
        if block.extra_chs:
            padded += 1
            torch.testing.assert_close(block.shortcut(x), official_option_a(x, planes), rtol=0, atol=0)
        else:
            assert torch.equal(block.shortcut(x), x)
    assert padded == 2  # stages 2 and 3 open with a strided, widening block


def test_every_cifar_resnet_is_at_architecture_revision_2() -> None:
    """Revision 2 (option-A zero channels on both sides) for every network sharing the basic block; the other
    baselines were never revised (docs/engine.md, "Architecture revisions")."""
    from baselines.registry import architecture_revision

    resnets = set(timm.list_models(module="resnet_cifar"))
    assert {"resnet20_cifar", "resnet56_cifar_ftm", "resnet20_cifar_mdconv", "resnet20_cifar_maconv"} <= resnets
    assert {n: architecture_revision(n) for n in BASELINE_MODELS} == {n: 2 if n in resnets else 1 for n in BASELINE_MODELS}


def official_resnet_ftm(weights: list[torch.Tensor], x: torch.Tensor, blocks_per_stage: int) -> torch.Tensor:
    """Eval-mode forward of the authors' CIFAR ResNet-(6n+2)-FTM, written from their definitions and fed with a
    state dict's tensors in order (their names are not used): stem conv + BN + ReLU; basic blocks of two FTMs
    (pointwise conv with bias, depthwise 3x3 with the stride, then ``[prime, sigmoid(w * GAP(prime)) * prime]``),
    each followed by BN, with the official option-A shortcut; global average pool; linear."""
    take = iter(weights).__next__

    def bn(y: torch.Tensor) -> torch.Tensor:
        weight, bias, mean, var, _ = (take() for _ in range(5))
        return F.batch_norm(y, mean, var, weight, bias, training=False, eps=1e-5)

    def ftm(y: torch.Tensor, stride: int) -> torch.Tensor:
        pw_weight, pw_bias, dw_weight, gate_weight = take(), take(), take(), take()
        prime = F.conv2d(F.conv2d(y, pw_weight, pw_bias), dw_weight, stride=stride, padding=1, groups=dw_weight.shape[0])
        gate = torch.sigmoid(gate_weight.flatten()[0] * prime.mean((2, 3), keepdim=True))  # the kernel-1 channel conv
        return torch.cat([prime, gate * prime], 1)

    y = F.relu(bn(F.conv2d(x, take(), padding=1)))
    for planes in (16, 32, 64):
        for i in range(blocks_per_stage):
            stride = 2 if planes > 16 and i == 0 else 1
            out = bn(ftm(F.relu(bn(ftm(y, stride))), 1))
            y = F.relu(out + (official_option_a(y, planes) if stride == 2 else y))
    return F.linear(y.mean((2, 3)), take(), take())


def test_ftm_resnet_with_copied_weights_computes_the_official_network() -> None:
    """Our ResNet-20-FTM's weights, in state-dict order, give the official network's logits (revision 1, whose
    shortcut appended all zero channels after the identity, gave other logits: with the authors' released
    ResNet-56-FTM checkpoint, 10% accuracy instead of their 81% on CIFAR-10 (JPEG re-encoding))."""
    model = timm.create_model("resnet20_cifar_ftm", num_classes=10)
    calibrate(model)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = official_resnet_ftm(list(model.state_dict().values()), x, blocks_per_stage=3)
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)


def test_resnet_params_closed_form() -> None:
    """He et al. CIFAR ResNets: option-A shortcuts carry no parameters."""
    def resnet(n: int, classes: int = 10) -> int:
        total = 3 * 16 * 9 + 2 * 16                                   # stem conv + BN
        in_chs = 16
        for width in (16, 32, 64):
            for _ in range(n):
                total += in_chs * width * 9 + width * width * 9 + 4 * width  # two convs + two BNs
                in_chs = width
        return total + 64 * classes + classes

    assert count_params(timm.create_model("resnet20_cifar")) == resnet(3) == 269_722
    assert count_params(timm.create_model("resnet56_cifar")) == resnet(9) == 853_018


def test_dcd_latent_dim_rule() -> None:
    """The official rule, worked by hand: L = min(m*I, O) // r (r = 8 widening with m = 4, else 2
    with m = 1), halved while L^2 > 2*m*I, at least 4 (values checked against the official DYModule)."""
    cases = {(16, 96): 8, (96, 24): 12, (24, 144): 12, (144, 24): 12, (960, 320): 40, (160, 960): 20,
             (320, 1280): 40, (4, 4): 4, (3, 5): 4}
    assert {pair: dcd_latent_dim(*pair) for pair in cases} == cases
    assert DynamicConvDecomposition(16, 96).descriptor_pool == 2 and DynamicConvDecomposition(96, 24).descriptor_pool == 1
    assert DynamicConvDecomposition(160, 960).dynamic["squeeze"].out_features == 4 * 160 // 16  # S = max(m*I, L^2) // 16


def test_dcd_gate_is_the_official_hsigmoid() -> None:
    """Squeeze gate and Lambda use relu6(x + 3) / 3 (the official ``Hsigmoid``), not torch's hardsigmoid."""
    z = torch.linspace(-4, 4, 17)
    torch.testing.assert_close(dcd_hsigmoid(z), F.relu6(z + 3) / 3)
    layer = DynamicConvDecomposition(8, 24)  # widening: 2x2 pooled descriptor
    for linear in layer.dynamic.values():
        nn.init.normal_(linear.weight, 0.0, 0.5)
    x = torch.randn(3, 8, 6, 6)
    d = F.adaptive_avg_pool2d(x, 2).flatten(1)
    s = d @ layer.dynamic["squeeze"].weight.T
    s = s * (F.relu6(s @ layer.dynamic["gate"].weight.T + 3) / 3)
    scale, phi = layer.dynamic_factors(x)
    torch.testing.assert_close(scale, F.relu6(s @ layer.dynamic["scale"].weight.T + 3) / 3)
    torch.testing.assert_close(phi, (s @ layer.dynamic["phi"].weight.T).view(3, layer.latent_dim, layer.latent_dim))


def test_dcd_classifier_equation() -> None:
    """``y = Lambda(x)(W0 x + b) + P (I + BN o Phi(x)) BN(Q^T x)``, here with BNs at their initial eval state."""
    layer = DynamicLinearDecomposition(12, 5, latent_dim=4, squeeze=6).eval()
    x = torch.randn(3, 12)
    scale, phi = layer.dynamic_factors(x)
    bn = 1 / math.sqrt(1 + 1e-5)
    z = bn * (x @ layer.q.weight.T)
    expected = scale * layer.static(x) + (bn * torch.einsum("blm,bm->bl", phi, z) + z) @ layer.p.weight.T
    torch.testing.assert_close(layer(x), expected)


# --- dynamic convolution -------------------------------------------------------------------------

@pytest.mark.parametrize("kernel_size, stride, groups", [(1, 1, 1), (3, 2, 2)])
def test_dynamic_conv_with_one_kernel_is_static_conv(kernel_size: int, stride: int, groups: int) -> None:
    layer = DynamicConv2d(8, 6, kernel_size, stride, groups, num_kernels=1)
    nn.init.normal_(layer.bias)
    x = torch.randn(3, 8, 9, 9)
    expected = F.conv2d(x, layer.weight[0], layer.bias[0], stride, kernel_size // 2, groups=groups)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_dynamic_conv_is_per_example() -> None:
    """Batched output equals the per-example outputs (the batch trick mixes no examples)."""
    for layer in (DynamicConv2d(8, 6, 1), DynamicConv2d(8, 6, 3, 2), CondConv(8, 6, 3), DynamicConvDecomposition(8, 6).eval(),
                  MDConv2d(8, 6, 3, attention="example")):
        layer.eval()
        x = torch.randn(3, 8, 9, 9)
        whole = layer(x)
        torch.testing.assert_close(whole, torch.cat([layer(x[i : i + 1]) for i in range(3)]), rtol=1e-5, atol=1e-5)


def _entropy(p: torch.Tensor) -> float:
    return float(-(p * p.log()).sum(1).mean().detach())


def test_temperature_hook_changes_attention_sharpness() -> None:
    model = timm.create_model("mobilenetv2_cifar_dynconv_100", anneal_epochs=4)
    layer = next(m for m in model.modules() if isinstance(m, DynamicConv2d))
    with torch.no_grad():  # logits that differ visibly: softmax(b / tau) is flat at tau=30, peaked at tau=1
        layer.attention[2].bias.copy_(torch.tensor([4.0, 0.0, -2.0, 1.0]))
    x = torch.randn(4, layer.in_chs, 8, 8)
    assert model.set_epoch(0, 100) == 30.0
    flat = layer.kernel_attention(x)
    assert model.set_epoch(2, 100) == pytest.approx(15.5)
    assert model.set_epoch(4, 100) == 1.0 and model.set_epoch(50, 100) == 1.0
    sharp = layer.kernel_attention(x)
    assert all(float(m.temperature) == 1.0 for m in model.modules() if isinstance(m, DynamicConv2d))
    assert _entropy(sharp) < _entropy(flat) - 0.5
    assert _entropy(flat) <= math.log(4) + 1e-6
    layer.set_temperature(1e-3)  # tau -> 0 gives a one-hot attention
    assert torch.allclose(layer.kernel_attention(x).max(1).values, torch.ones(4), atol=1e-4)
    with pytest.raises(ValueError):
        layer.set_temperature(0.0)


def test_temperature_schedule() -> None:
    assert [default_anneal_epochs(n) for n in (1, 30, 31, 100, 200, 300, 1000)] == [1, 1, 2, 4, 7, 10, 10]
    assert [temperature_at(e, 10) for e in (0, 5, 10, 11)] == [30.0, 15.5, 1.0, 1.0]
    assert timm.create_model("mobilenetv2_cifar_100").set_epoch(0, 10) is None  # no dynamic conv: no-op


def test_count_macs_closed_forms() -> None:
    """Each operator's declared cost: its convolution as ptflops counts the static conv, plus the
    overhead written out (ptflops conventions: bias and activations one per element)."""
    shape, hw = (16, 32, 32), 32 * 32
    gap = 16 * hw
    static_bias = count_macs(nn.Conv2d(16, 32, 1, bias=True), shape)
    static = count_macs(nn.Conv2d(16, 32, 1, bias=False), shape)
    static3 = count_macs(nn.Conv2d(16, 32, 3, padding=1, bias=False), shape)
    assert static == 32 * 16 * hw and static_bias == static + 32 * hw
    # dynamic conv, K=4, hidden 4: aggregation 4*(32*16 + 32); attention GAP, FC 16->4, ReLU, FC 4->4, /tau, softmax
    assert count_macs(DynamicConv2d(16, 32, 1), shape) == static_bias + 4 * (32 * 16 + 32) + gap + 17 * 4 + 4 + 5 * 4 + 2 * 4
    # CondConv, 4 experts, no bias: aggregation 4*32*16; routing GAP, FC 16->4, sigmoid
    assert count_macs(CondConv(16, 32, 1), shape) == static + 4 * 32 * 16 + gap + 17 * 4 + 4
    # DCD 16 -> 32 (widening, 2x2 descriptor of 64): L = 4, S = 4: products W0, Q, Phi, P; scale+sum;
    # latent BNs+identity; dynamic branch (pooling, FC 64->4, gate, Phi and Lambda heads)
    dcd = (hw * (32 * 16 + 4 * 16 + 4 * 4 + 32 * 4) + 2 * 32 * hw + 5 * 4 * hw
           + gap + 64 * 4 + 4 * 4 + 2 * 4 + 4 * 16 + 4 * 32 + 2 * 32)
    assert count_macs(DynamicConvDecomposition(16, 32), shape) == dcd
    # DCD classifier 64 -> 10, L = 4, S = 6: products and bias; scale, sum, norms, identity; dynamic branch
    linear = 10 * 64 + 10 + 4 * 64 + 4 * 4 + 10 * 4 + 2 * 10 + 5 * 4 + 64 * 6 + 6 * 6 + 2 * 6 + 6 * 16 + 6 * 10 + 2 * 10
    layer = DynamicLinearDecomposition(64, 10, latent_dim=4, squeeze=6)
    assert layer.count_macs(torch.randn(2, 64), None) == 2 * linear
    # MDConv compact (example attention), mid 32, hidden 4: one 3x3 conv + kernel assembly + attention
    compact = MDConv2d(16, 32, 3, attention="example").fuse()
    assert count_macs(compact, shape) == static3 + 32 * 32 * (16 * 9 + 1) + gap + 17 * 4 + 4 + 5 * 32 + 32
    # MAConv training form: the three convolutions as ptflops counts them, plus the branch sum
    maconv = MAConv2d(16, 32, 3)
    vertical_shape = tuple(maconv.vertical(torch.zeros(1, *shape)).shape[1:])
    convolutions = (count_macs(maconv.conv, shape) + count_macs(maconv.vertical, shape)
                    + count_macs(maconv.horizontal, vertical_shape))
    assert count_macs(maconv, shape) == convolutions + 32 * hw
    # FTM expansion p=3, k=1 (the authors' gate): GAP, 1-D convs and sigmoids, products
    assert count_macs(FTMExpansion(16, 3), shape) == gap + 2 * 16 * 2 + 2 * 16 * hw


def test_count_macs_scales_with_batch() -> None:
    for layer in (DynamicConv2d(8, 6, 3, 2), CondConv(8, 6, 3), DynamicConvDecomposition(8, 6), MDConv2d(8, 6, 3),
                  MAConv2d(8, 6, 3, 2), FTMExpansion(8, 2)):
        layer.eval()
        one, three = torch.randn(1, 8, 9, 9), torch.randn(3, 8, 9, 9)
        assert layer.count_macs(three, layer(three)) == 3 * layer.count_macs(one, layer(one)) > 0


# --- folding: MDConv / MAConv --------------------------------------------------------------------

@pytest.mark.parametrize("layer_fn", [
    lambda: MAConv2d(6, 10, 3, 2), lambda: MAConv2d(6, 10, 1), lambda: MAConv2d(8, 8, 5, 1, mid_chs=3),
    lambda: MDConv2d(6, 10, 3, 2, attention="batch"), lambda: MDConv2d(6, 10, 1, attention="batch"),
])
def test_operator_fold_is_exact_in_float32(layer_fn) -> None:
    layer = layer_fn()
    layer.train()
    with torch.no_grad():
        layer(torch.randn(4, layer.in_chs, 11, 11))  # updates MDConv's running attention
    layer.eval()
    x = torch.randn(2, layer.in_chs, 11, 11)
    with torch.no_grad():
        expected, fused = layer(x), layer.fuse()
        assert type(fused) is nn.Conv2d and fused.bias is None
        assert (fused(x) - expected).abs().max() <= 1e-5


def test_mdconv_example_mode_compact_form_is_exact() -> None:
    layer = MDConv2d(6, 10, 3, 2, attention="example")
    x = torch.randn(3, 6, 11, 11)
    for train in (True, False):
        layer.train(train)
        layer.compact = False
        expanding = layer(x)
        assert layer.fuse() is layer and layer.compact
        assert (layer(x) - expanding).abs().max() <= 1e-5


@pytest.mark.parametrize("name", sorted(FOLDABLE))
def test_network_fold_is_exact_and_removes_extra_cost(name: str) -> None:
    """Eval outputs agree to 1e-5 after fuse(); parameters and MACs become the static network's
    (MDConv with ``attention="batch"``, the form that folds).

    Compared in float64: through a whole float32 MobileNetV2 the reassociated sums differ by
    ~1e-5..1e-4 on logits of magnitude ~10, which is float32 rounding, not a fold error (each
    operator's float32 fold is checked to 1e-5 above).
    """
    static_name, options = FOLDABLE[name]
    model = timm.create_model(name, num_classes=10, **options).double()
    calibrate(model)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
        model.fuse()
        after = model(x)
    assert (after - before).abs().max() <= 1e-5
    assert not any(isinstance(m, (MAConv2d, MDConv2d)) for m in model.modules())
    static = timm.create_model(static_name, num_classes=10)
    assert count_params(model) == count_params(static)
    assert count_macs(model.float(), CIFAR) == count_macs(static, CIFAR)
    # over-parameterised in training
    assert count_params(timm.create_model(name, num_classes=10, **options)) > count_params(static)


def test_mdconv_is_per_example_by_default() -> None:
    """The default attention is the paper's dynamic one: one attention per example, in eval too."""
    layer = MDConv2d(6, 10, 3)
    assert layer.attention_mode == "example"
    layer.eval()
    x = torch.randn(3, 6, 9, 9)
    a = layer.feature_attention(x)
    assert a.shape == (3, 12) and (a[0] - a[1]).abs().max() > 0  # mid = 2 * min(6, 10)
    model = timm.create_model("resnet20_cifar_mdconv").eval().fuse()
    assert all(m.compact for m in model.modules() if isinstance(m, MDConv2d))
    assert sum(isinstance(m, MDConv2d) for m in model.modules()) == 18  # the fold keeps the dynamic operators


def test_profile_shows_both_mdconv_forms() -> None:
    """``run.py profile`` reports MACs before and after fuse(). Per-example MDConv's compact form
    costs less than the expanding form on ResNet-20's 3x3 convs (32x32 maps) but more on
    MobileNetV2's 1x1 convs, where assembling each example's kernel dominates."""
    resnet = profile_model("resnet20_cifar_mdconv", timing=False)
    assert resnet.macs_fused == count_macs(timm.create_model("resnet20_cifar_mdconv").eval().fuse(), CIFAR)
    assert resnet.macs_fused < resnet.macs
    mobilenet = timm.create_model("mobilenetv2_cifar_mdconv_100").eval()
    unfolded = count_macs(mobilenet, CIFAR)
    assert count_macs(mobilenet.fuse(), CIFAR) > 4 * unfolded
    assert profile_model("resnet20_cifar", timing=False).macs_fused == profile_model("resnet20_cifar", timing=False).macs


# --- FTM and the expansion operators -------------------------------------------------------------

def test_ftm_shapes_and_params() -> None:
    layer = FeatureTransformModule(16, 15, 3, 2, ratio=3, gate_kernel=5)  # prime = ceil(15/3) = 5
    assert layer(torch.randn(2, 16, 8, 8)).shape == (2, 15, 4, 4)
    assert count_params(layer) == 16 * 5 + 5 + 5 * 9 + 2 * 5  # pointwise with bias, depthwise, 2 gates of kernel 5
    # the official module: pointwise bias, one kernel-1 gate for S = 2
    assert count_params(FeatureTransformModule(16, 32, 3)) == 16 * 16 + 16 + 16 * 9 + 1
    assert count_params(FeatureTransformModule(16, 32, 3, pointwise_bias=False)) == 16 * 16 + 16 * 9 + 1


@pytest.mark.parametrize("name", sorted(FTM_RESNET_PARAMS))
def test_ftm_resnets_match_the_official_models(name: str) -> None:
    model = timm.create_model(name, num_classes=10)
    assert count_params(model) == FTM_RESNET_PARAMS[name]
    gates = [m for m in model.modules() if isinstance(m, NeighbourChannelGate)]
    assert gates and all(g.conv.kernel_size == (1,) for g in gates)


def test_neighbour_gate_only_sees_neighbours() -> None:
    gate = NeighbourChannelGate(copies=2, kernel_size=3)
    x = torch.randn(1, 10, 4, 4)
    y = x.clone()
    y[:, 7] += 5.0  # channel 7 influences gates of channels 6, 7, 8 only
    changed = (gate(x) - gate(y)).abs().amax(dim=(0, 1)) > 0
    assert changed.nonzero().flatten().tolist() == [6, 7, 8]


def test_expansions_registered_with_dyclot() -> None:
    assert {"ghost", "ftm"} <= set(list_expansions())
    x = torch.randn(2, 12, 5, 5)
    for name, cls in (("ghost", GhostExpansion), ("ftm", FTMExpansion)):
        module = create_expansion(name, 12, p=3, r=4, recalibrator="sigmoid_add", clone_order="tile", norm_layer=nn.BatchNorm2d)
        assert isinstance(module, cls)
        y = module(x)
        assert y.shape == (2, 36, 5, 5)
        torch.testing.assert_close(y[:, :12], x)  # the input is kept as the primary part


@pytest.mark.parametrize("expansion", ["ghost", "ftm", "dct", "pointwise"])
def test_dyclotnet_with_each_expansion(expansion: str) -> None:
    model = timm.create_model("dyclotnet_050", expansion=expansion, num_classes=10)
    y = model(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    y.sum().backward()


def test_baselines_exports() -> None:
    assert set(baselines.CONV_OPERATORS) == {"conv", "dynconv", "condconv", "dcd", "ftm", "mdconv", "maconv"}
