"""Target 5: CPU latency (batch 1) and inference throughput (batch 128) beside MACs: do fewer MACs mean faster?

Eval mode, ``torch.inference_mode``, contiguous inputs, the allocator tuned; every model is
timed once per round in turn (models alternate), medians over rounds. MACs are ptflops' count
(docs/profiling.md). The final line gives Spearman's rank correlation between MACs and each
timing over the models (1: the MAC ranking is the speed ranking).
"""
from __future__ import annotations

import torch

from benchmarks.common import alternate, build, seconds, set_threads, spearman
from costing.profiling import count_macs
from experiments.speed import tune_allocator

MODELS = ("dyclotnet_050", "dyclotnet_100", "dyclotnet_200", "mobilenetv2_cifar_100", "ghostnet_cifar_100",
          "mobilenetv2_cifar_dynconv_100", "mobilenetv2_cifar_condconv_100", "mobilenetv2_cifar_dcd_100")


def run(models: tuple[str, ...] = MODELS, rounds: int = 3, latency_repeats: int = 10, batch_size: int = 128,
        threads: int | None = None, echo=print) -> dict:
    tune_allocator()
    threads = set_threads(threads)
    nets = {m: build(m).eval() for m in models}
    macs = {m: count_macs(net, (3, 32, 32)) for m, net in nets.items()}
    one, many = torch.randn(1, 3, 32, 32), torch.randn(batch_size, 3, 32, 32)

    def timer(net, x, repeats):
        def case() -> float:
            with torch.inference_mode():
                return seconds(lambda: net(x), repeats)
        return case

    cases = {}
    for m, net in nets.items():
        cases[(m, "b1")] = timer(net, one, latency_repeats)
        cases[(m, "b128")] = timer(net, many, 1)
    time_ = alternate(cases, rounds, warmup_rounds=1)
    rows = {m: {"macs": macs[m], "latency_ms": 1e3 * time_[(m, "b1")], "images_per_second": batch_size / time_[(m, "b128")]}
            for m in models}
    echo(f"{'model':32s} {'MMACs':>8s} {'latency b1 ms':>14s} {f'img/s b{batch_size}':>12s}")
    for m, r in sorted(rows.items(), key=lambda kv: kv[1]["macs"]):
        echo(f"{m:32s} {r['macs'] / 1e6:8.1f} {r['latency_ms']:14.2f} {r['images_per_second']:12.0f}")
    macs_list = [r["macs"] for r in rows.values()]
    rho_b1 = spearman(macs_list, [r["latency_ms"] for r in rows.values()])
    rho_b128 = spearman(macs_list, [1 / r["images_per_second"] for r in rows.values()])
    echo(f"{threads} torch threads, eval mode, medians of {rounds} rounds (models alternating), "
         f"latency: median of {latency_repeats} passes per round")
    echo(f"ratio: Spearman rho(MACs, latency b1) = {rho_b1:.2f}; rho(MACs, time per image b{batch_size}) = {rho_b128:.2f}")
    return {"rows": rows, "ratio": rho_b1, "rho_b128": rho_b128}
