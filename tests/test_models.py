"""Every model that ``dyclot`` and ``baselines`` register, as timm's tests cover ``timm.list_models()``:
one test function per property, parametrised over the registry, so a newly registered model is
tested without editing a list. Small inputs only (batch 2)."""
from __future__ import annotations

import pytest
import timm
import torch

from baselines.registry import create_model
from conftest import registered_models
from experiments.speed import to_memory_format

MODELS = registered_models()


pytestmark = pytest.mark.usefixtures("one_thread", "seeded")


def test_the_registry_lists_both_packages() -> None:
    assert {"dyclotnet_025", "dyclotnet_050", "dyclotnet_100", "dyclotnet_200"} == set(registered_models("dyclot"))
    assert set(registered_models("baselines")) >= {"mobilenetv2_cifar_100", "resnet20_cifar"}
    assert sorted(MODELS) == sorted(registered_models("dyclot") + registered_models("baselines"))
    assert "engine_test_net" not in MODELS and "resnet50" not in MODELS  # the test network, timm's own


@pytest.mark.parametrize("in_chans, side", [(3, 32), (1, 32), (1, 28)])
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name: str, in_chans: int, side: int) -> None:
    """Output shape, no NaN, every parameter receives a finite gradient (colour and grey images,
    CIFAR's 32x32 and Fashion-MNIST's 28x28)."""
    model = timm.create_model(name, num_classes=7, in_chans=in_chans)
    y = model(torch.randn(2, in_chans, side, side))
    assert y.shape == (2, 7)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"parameters without a finite gradient: {missing}"


@pytest.mark.parametrize("name", MODELS)
def test_pretrained_refused_and_timm_kwargs_dropped(name: str) -> None:
    with pytest.raises(ValueError, match="pretrained"):
        timm.create_model(name, pretrained=True)
    fn = timm.models.model_entrypoint(name)
    model = fn(pretrained_cfg=None, pretrained_cfg_overlay=None, cache_dir=None, num_classes=3)
    model.eval()  # batch 1: the DCD classifier's BatchNorm1d (as in the official code) needs 2+ examples in training
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_trains_in_channels_last_with_the_same_outputs(name: str) -> None:
    """The trainer's channels_last conversion works for every model (DynamicConv's weight is 5-D)."""
    # float64: channels_last runs other kernels, and dynamic kernels (DCD) amplify float32's rounding to ~1e-3
    model = create_model(name, num_classes=10).eval().double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    expected = model(x)
    to_memory_format(model, torch.channels_last)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
    y = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(y, expected, rtol=1e-9, atol=1e-10)
    y.square().mean().backward()


def test_study_costs_list_every_variant_of_the_asked_grids() -> None:
    import pytest

    from costing.claims import study_cost_rows
    from study.grids import GRIDS

    rows = study_cost_rows(("paper-claim",))
    assert [r["variant"] for r in rows] == list(GRIDS["paper-claim"].variants)
    macs = {r["variant"]: r["macs"] for r in rows}
    # the costs behind the published 2.9x MACs ratio (docs/interpretation.md): 8x8 MobileNetV2-1.0 vs DyClotNet-2.0
    assert macs["mobilenetv2-1.0-8x8"] / macs["dyclotnet-2.0"] == pytest.approx(2.9, rel=0.05)
    with pytest.raises(ValueError, match="unknown grid"):
        study_cost_rows(("no-such-grid",))


def test_study_costs_record_one_architecture_for_the_same_network_spelled_differently() -> None:
    from costing.claims import study_cost_rows

    rows = {(r["grid"], r["variant"]): r["architecture"] for r in study_cost_rows(("replicator-vs-recalibrator",
                                                                                    "expansion-op", "p-sweep"))}
    # the DCT reference, spelled {"recalibrator": "sigmoid_add"}, {"expansion": "dct"} and {"p": 2}: one network
    dct = rows[("replicator-vs-recalibrator", "dct")]
    assert dct is not None and dct == rows[("expansion-op", "dct")] == rows[("p-sweep", "p2")]
    assert len({dct, rows[("expansion-op", "pointwise")], rows[("p-sweep", "p4")],
                rows[("replicator-vs-recalibrator", "replicator")]}) == 4


def test_study_costs_measure_latency_side_by_side_once_per_architecture(monkeypatch) -> None:
    """``run.py study-costs``: every round times each distinct network in turn (what else the machine does falls on
    all alike), one network spelled three ways is timed once, and each row records how."""
    from costing import claims, profiling

    calls: list[int] = []

    def fake_latency(model, input_shape, repeats, threads):  # the latency of a network: its parameter count
        calls.append(profiling.count_params(model))
        return float(calls[-1] + len(calls))  # later rounds slower: the median is a round's, not the first's

    monkeypatch.setattr(profiling, "measure_latency_ms", fake_latency)
    rows = claims.study_cost_rows(("replicator-vs-recalibrator", "expansion-op"), latency_rounds=3, latency_repeats=4)
    networks = {r["architecture"]: r["params"] for r in rows}
    assert len(rows) == 5 and len(networks) == 3  # dct, and the replicator alone, are one network in both grids
    assert calls == [*networks.values()] * 3  # round after round, each network once per round
    for row in rows:
        assert row["latency_ms"] == row["params"] + 4 + list(networks).index(row["architecture"])  # round 2 of 3
        assert row["latency_setup"] | {"cpu": None, "torch": None} == {
            "cpu": None, "threads": 1, "batch": 1, "rounds": 3, "repeats": 4, "networks": 3, "torch": None}
    assert all("latency_ms" not in r for r in claims.study_cost_rows(("expansion-op",)))  # off by default
    calls.clear()
    rows = claims.study_cost_rows(("paper-claim",), latency_rounds=1)  # models without a recorded architecture
    assert any(r["architecture"] is None for r in rows)
    assert len(calls) == len(rows) == len({r["latency_ms"] for r in rows})  # each timed as its own network


def test_eq8_bound_counted_on_dyclotnets_layers_matches_the_closed_form_and_the_committed_file() -> None:
    """``run.py dct-bound``: with the depthwise term kept, C1/C0 = (9 + N/4 + N/16) / (9 + N) at p = 2 (docs/profiling.md,
    plus the recalibrator's per-image FC layers), above eq. (8)'s 5/16; the approximated C1 keeps the bound. The
    committed results/dct_bound.json (the report's claims table reads it) is what the command writes now."""
    import json
    from pathlib import Path

    from costing.claims import dct_bound_rows

    rows = dct_bound_rows()
    assert {(r["alpha"], r["N"], r["Df"]) for r in rows} == {(1.0, 64, 32), (1.0, 128, 16), (1.0, 256, 8),
                                                             (2.0, 128, 32), (2.0, 256, 16), (2.0, 512, 8)}
    for r in rows:
        n, df = r["N"], r["Df"]
        assert r["c0"] == df * df * (9 * n + n * n)  # eq. (7), M = N, Dk = 3
        fc = (n // 2) * (n // 4) + (n // 4) * n  # the recalibrator's two FC layers, hidden N / r (r = 4)
        assert r["c1"] == df * df * (9 * n + n * n // 4 + n * n // 16) + fc
        assert r["c1_over_c0"] == round(r["c1"] / r["c0"], 4) > 5 / 16
        closed_form = (9 + 5 * n / 16) / (9 + n)  # the convolutions alone; the FC layers add under 1%
        assert closed_form <= r["c1_over_c0"] <= closed_form + 0.01
        assert r["c1_approx_over_c0"] <= 5 / 16 and 0 < r["dct_share"] < 0.05
    committed = Path(__file__).resolve().parent.parent / "results" / "dct_bound.json"
    if committed.exists():
        assert json.loads(committed.read_text()) == rows, "rerun `python run.py dct-bound --out results/dct_bound.json`"


def test_the_committed_claim_costs_are_what_run_py_claim_costs_writes_now() -> None:
    """The report's cost claims read results/claim_costs.json: it must be the models' count today."""
    import json
    from pathlib import Path

    from costing.claims import claim_cost_rows

    committed = Path(__file__).resolve().parent.parent / "results" / "claim_costs.json"
    if committed.exists():
        rows = json.loads(committed.read_text())
        assert rows == claim_cost_rows(), "rerun `python run.py claim-costs --out results/claim_costs.json`"
        assert {(r["mobilenet_model"], r["macs_match"]) for r in rows if r["dyclot_kwargs"] == {}} >= {
            ("mobilenetv2_cifar8_100", True)}  # the headline's reference reproduces the published 2.9x
