"""Every ``run.py bench`` benchmark runs in a tiny setting and ends with a finite ratio (behaviour, never timing)."""
from __future__ import annotations

import importlib
import json
import math
import platform

import pytest

from benchmarks.cli import BENCHMARKS
from benchmarks.common import alternate, fresh, spearman
from experiments.speed import ENV_SWITCH

TINY = ("dyclotnet_025",)
QUICK = {
    "dct": dict(batch_size=4, shapes=((8, 8),), min_run_time=0.01),
    "pipeline": dict(models=TINY, steps=2, batch_size=16, rounds=1, quick=True, workers=(0,), isolate=False),
    "overhead": dict(models=TINY, steps=2, batch_size=16, rounds=1, quick=True),
    "formats": dict(models=TINY, thread_counts=(1,), batch_size=8, steps=1, rounds=1, compile=False),
    "latency": dict(models=("dyclotnet_025", "dyclotnet_050", "mobilenetv2_cifar_100"), rounds=1, latency_repeats=1,
                    batch_size=4),
    "executor": dict(seeds=1, rounds=1, threads=1, epochs=1, quick=True),
    "allocator": dict(models=TINY, steps=2, batch_size=16, rounds=1, quick=True, isolate=False),
    "gpu": dict(models=TINY, steps=2, batch=8, quick=True, isolate=False),
}


def test_every_benchmark_has_a_quick_setting():
    assert set(QUICK) == set(BENCHMARKS)


@pytest.mark.parametrize("name", sorted(QUICK))
def test_benchmark_prints_a_finite_ratio_last(name):
    lines: list[str] = []
    summary = importlib.import_module(BENCHMARKS[name][0]).run(echo=lines.append, **QUICK[name])
    assert lines[-1].startswith("ratio: "), lines
    assert math.isfinite(summary["ratio"])
    if name != "latency":  # a rank correlation may be negative
        assert summary["ratio"] > 0


def test_alternate_interleaves_cases_and_takes_medians():
    calls: list[str] = []
    values = {"a": iter([9.0, 1.0, 2.0, 3.0]), "b": iter([9.0, 5.0, 7.0, 6.0])}
    cases = {k: (lambda k=k: calls.append(k) or next(values[k])) for k in values}
    assert alternate(cases, rounds=3, warmup_rounds=1) == {"a": 2.0, "b": 6.0}
    assert calls == ["a", "b"] * 4


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)


def test_allocator_switch_reaches_a_fresh_process():
    glibc = platform.libc_ver()[0] == "glibc"
    assert fresh("experiments.speed:tune_allocator", env={ENV_SWITCH: "0"}) is False
    assert fresh("experiments.speed:tune_allocator", env={ENV_SWITCH: "1"}) is glibc


def test_gpu_bench_on_the_cpu_prints_every_column_and_writes_no_record(tmp_path):
    from baselines.registry import create_model
    from benchmarks import gpu
    from costing.profiling import count_bytes_moved
    from experiments.runner import import_models

    lines: list[str] = []
    record = tmp_path / "gpu.json"
    summary = gpu.run(echo=lines.append, models=TINY, steps=2, batch=8, quick=True, isolate=False, record=record)
    (entry,) = summary["entries"]
    import_models()
    assert entry["bytes_per_image"] == count_bytes_moved(create_model(TINY[0], num_classes=10), (3, 32, 32), 8)
    assert entry["device"] == "cpu" and entry["bandwidth_fraction"] is None and entry["runs_at_once"] == 1
    assert entry["img_per_s"] == pytest.approx(entry["img_per_s_per_run"]) and entry["img_per_s"] > 0
    assert entry["runs_in_10_min"] >= 0
    assert "bandwidth unknown" in lines[0] and "MB/image" in lines[0] and not record.exists()


def test_stacked_runs_are_measured_in_one_process_and_never_chosen_as_the_engines_way(tmp_path):
    from benchmarks import gpu

    lines: list[str] = []
    summary = gpu.run(echo=lines.append, models=TINY, runs_at_once=(2,), steps=2, batch=8, quick=True, isolate=False,
                      record=None, sharing="stacked")
    (entry,) = summary["entries"]
    assert entry["sharing"] == "stacked" and entry["runs_at_once"] == 2 and entry["step"] == "eager"
    assert entry["img_per_s"] > 0 and "(stacked, eager)" in lines[0] and "stacked in one process" in lines[1]
    with pytest.raises(ValueError, match="unknown sharing 'vmap'.*stacked"):
        gpu.run(echo=lines.append, models=TINY, quick=True, isolate=False, record=None, sharing="vmap")
    h100, record = "NVIDIA H100 80GB HBM3", tmp_path / "gpu.json"
    gpu.write_record(record, [{"device": h100, "network": "a", "batch": 512, "runs_at_once": 8, "img_per_s": speed,
                               "sharing": sharing} for sharing, speed in (("processes", 50.0), ("mps", 60.0),
                                                                          ("stacked", 90.0))])
    assert gpu.faster_sharing(record, h100, "a", 8) == "mps"  # the fastest way the engine trains
    assert gpu.sharing_status(record, h100, "a", 8) == "processes mps stacked faster=mps"
    assert gpu.sharing_status(record, h100, "a", 8, "compiled") == "stacked faster=unknown"  # stacked: eager only
    # a measure tried and failed counts as tried (never retried by the batch) and is never chosen
    gpu.write_record(record, [{"device": h100, "network": "a", "batch": 512, "runs_at_once": 8, "img_per_s": None,
                               "sharing": "mps", "error": "MPS: out of memory"}])
    assert gpu.faster_sharing(record, h100, "a", 8) == "processes"
    assert gpu.sharing_status(record, h100, "a", 8) == "processes mps stacked faster=processes"
    assert gpu.recorded_speeds(record, h100, "a", 8, batch=256) == {}  # another batch is another measure


def test_a_measure_that_fails_is_said_and_the_bench_goes_on(monkeypatch):
    from benchmarks import gpu

    def fails(model, *args):
        raise RuntimeError(f"{model} does not fit")

    monkeypatch.setattr(gpu, "measure_at_once", fails)
    lines: list[str] = []
    summary = gpu.run(echo=lines.append, models=TINY, steps=2, batch=8, quick=True, isolate=False, record=None)
    assert summary["entries"] == [] and math.isnan(summary["ratio"])
    assert "not measured: dyclotnet_025 does not fit" in lines[0] and lines[-1].endswith("the first: none measured")


def test_the_fastest_step_the_record_measured_is_taken_and_a_step_that_fell_back_is_tried_never_chosen(tmp_path,
                                                                                                     monkeypatch):
    from benchmarks import gpu

    h100, record = "NVIDIA H100 80GB HBM3", tmp_path / "gpu.json"
    assert gpu.step_status(record, h100, "a", 8, "mps") == "fastest=eager"  # nothing measured: the plain step
    gpu.write_record(record, [{"device": h100, "network": "a", "batch": 512, "runs_at_once": 8, "img_per_s": speed,
                               "sharing": sharing, "step": step}
                              for sharing, step, speed in (("mps", "eager", 50.0), ("mps", "compiled", 70.0),
                                                           ("processes", "cuda-graphs", 900.0))])
    assert gpu.step_status(record, h100, "a", 8, "mps") == "eager compiled fastest=compiled"  # under its own sharing
    gpu.write_record(record, [{"device": h100, "network": "a", "batch": 512, "runs_at_once": 8, "img_per_s": None,
                               "sharing": "mps", "step": "cuda-graphs", "error": "the step fell back"}])
    assert gpu.step_status(record, h100, "a", 8, "mps") == "eager compiled cuda-graphs fastest=compiled"

    # a compiled step that falls back in any of the bench's processes measures another step: tried, with what ran
    def fell_back(*args, **kwargs):
        return [{"images": 80, "start": 0.0, "end": 1.0, "step": step} for step in
                ("compiled", "eager (compile failed: RuntimeError: no)")]

    monkeypatch.setattr(gpu, "measure_at_once", fell_back)
    lines: list[str] = []
    summary = gpu.run(echo=lines.append, models=TINY, steps=2, batch=8, quick=True, isolate=False, step="compiled")
    assert summary["entries"] == [] and "the compiled step fell back: eager (compile failed" in lines[0]
    with pytest.raises(ValueError, match="unknown step 'graphs'.*cuda-graphs"):
        gpu.run(echo=lines.append, models=TINY, quick=True, isolate=False, record=None, step="graphs")


def test_gpu_record_keeps_other_benches_and_replaces_a_measurement_taken_again(tmp_path):
    from benchmarks.gpu import write_record

    def entry(network: str, at_once: int, speed: float, device: str = "NVIDIA H100 80GB HBM3") -> dict:
        return {"device": device, "network": network, "batch": 512, "runs_at_once": at_once, "img_per_s": speed}

    record = tmp_path / "records" / "gpu.json"
    write_record(record, [entry("a", 1, 10.0), entry("a", 8, 50.0), entry("a", 8, 70.0, "NVIDIA H200")])
    write_record(record, [entry("a", 8, 60.0), entry("b", 1, 5.0)])
    assert json.loads(record.read_text()) == [entry("a", 1, 10.0), entry("a", 8, 70.0, "NVIDIA H200"),
                                              entry("a", 8, 60.0), entry("b", 1, 5.0)]


def test_the_faster_way_to_share_the_gpu_is_chosen_only_once_both_were_measured(tmp_path):
    from benchmarks.gpu import faster_sharing, write_record

    h100 = "NVIDIA H100 80GB HBM3"
    record = tmp_path / "gpu.json"
    assert faster_sharing(record, h100, "a", 8) is None  # no record yet
    # an entry from before sharing was recorded measured processes taking turns
    write_record(record, [{"device": h100, "network": "a", "batch": 512, "runs_at_once": 8, "img_per_s": 50.0}])
    assert faster_sharing(record, h100, "a", 8) is None  # MPS not measured yet: the batch measures it
    write_record(record, [{"device": h100, "network": "a", "batch": 512, "runs_at_once": 8, "img_per_s": 80.0,
                           "sharing": "mps"}])
    assert len(json.loads(record.read_text())) == 2  # one measure of each way, neither replacing the other
    assert faster_sharing(record, h100, "a", 8) == "mps"
    assert faster_sharing(record, h100, "a", 4) is None and faster_sharing(record, "NVIDIA H200", "a", 8) is None
    write_record(record, [{"device": h100, "network": "a", "batch": 512, "runs_at_once": 8, "img_per_s": 90.0,
                           "sharing": "processes"}])  # measured again: the newer measure counts
    assert faster_sharing(record, h100, "a", 8) == "processes"
    write_record(record, [{"device": h100, "network": "a", "batch": 512, "runs_at_once": 8, "img_per_s": 200.0,
                           "sharing": "mps", "step": "compiled"}])  # another step: its own entry, not this choice's
    assert faster_sharing(record, h100, "a", 8) == "processes" and len(json.loads(record.read_text())) == 3


def test_gpu_bench_tables_by_hand():
    from benchmarks.gpu import networks, peak_bandwidth, runs_in_ten_minutes

    assert peak_bandwidth("NVIDIA H100 80GB HBM3") == 3.35e12 and peak_bandwidth("NVIDIA H100 PCIe") == 2.0e12
    assert peak_bandwidth("NVIDIA H200") == 4.8e12 and peak_bandwidth("NVIDIA A100-SXM4-80GB") is None
    # 2 runs at once, each 30 epochs x 49,000 images at 4,900 img/s = 300 s + 20 s: 600 / 320 = 1.875 -> 3 in all
    assert runs_in_ten_minutes(4900.0, 2, 30, 49_000, 20.0) == 3
    assert networks()[:2] == ("dyclotnet_200", "mobilenetv2_cifar8_100") and "resnet20_cifar" in networks()


def test_bytes_moved_by_hand():
    """Flatten + Linear(4 -> 2, no bias), batch 1, cross-entropy. Elements read + written per op:
    mm 4+8+2, log_softmax 2+2, nll_loss 2 (+1 int64 target) +2, ones_like 1+1, nll_loss_backward
    1+2+1 (+1 int64) +2, log_softmax_backward 2+2+2, mm (weight gradient) 2+4+8: 50 floats, 2 int64."""
    from torch import nn

    from costing.profiling import count_bytes_moved

    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    assert count_bytes_moved(net, (4, 1, 1), batch_size=1) == 50 * 2 + 2 * 8
    assert count_bytes_moved(net, (4, 1, 1), batch_size=1, float_bytes=4) == 50 * 4 + 2 * 8


@pytest.mark.parametrize("name", __import__("benchmarks.gpu", fromlist=["networks"]).networks())
def test_every_gpu_network_stacked_with_torch_func_gets_each_runs_own_gradients(name):
    """Runs stacked into one call (``torch.func``: stacked parameters and buffers, ``vmap`` of ``functional_call``,
    as ``benchmarks.gpu.measure_stacked`` trains them) compute each network's own outputs, gradients and running
    statistics, in float64 to rounding (at 16x16 input, for speed). DyClotNet's DCT cannot query a memory format
    inside vmap; it takes NCHW there. Dropout is off: stacked runs draw their own masks."""
    import copy

    import torch
    from torch import nn
    from torch.func import functional_call, stack_module_state, vmap

    from baselines.registry import create_model
    from experiments.runner import import_models

    import_models()
    torch.manual_seed(0)
    nets = [create_model(name, num_classes=10, **({"drop_rate": 0.0} if "ghostnet" in name else {})).double()
            for _ in range(2)]
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")
    x, y = torch.randn(2, 2, 3, 16, 16, dtype=torch.float64), torch.randint(0, 10, (2, 2))
    logits = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)))(params, buffers, x)
    (nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()) * 2).backward()
    for i, net in enumerate(nets):
        out = net(x[i])
        nn.functional.cross_entropy(out, y[i]).backward()
        assert torch.allclose(logits[i], out, atol=1e-10)
        for key, p in net.named_parameters():
            assert torch.allclose(params[key].grad[i], p.grad, atol=1e-9), key
        for key, b in net.named_buffers():  # the running statistics each updated once, by its own batch
            assert torch.allclose(buffers[key][i].double(), b.double(), atol=1e-10), key
