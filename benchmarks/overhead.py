"""Target 2: a training epoch of our trainer against the model's bare steps on batches already in memory.

Ours: ``experiments.trainer.fit`` (one epoch, its ``epoch_seconds``: batch shuffling, crops,
flips, normalisation, channels-last conversion, the LR schedule, label smoothing, the per-step
loss check and running accuracy). The limit: the same model, channels-last, the same optimiser,
stepping through the same number of batches that were made beforehand and kept in memory --
forward, cross-entropy, backward, step, nothing else. Same process, same threads, alternating
rounds after one warm-up round; both sides start from a freshly built model (built untimed), so
both pay the first step's one-off costs (optimiser state). overhead = ours / limit - 1.
"""
from __future__ import annotations

import torch

from benchmarks.common import MODELS, alternate, build, load_data, seconds, set_threads, sgd_step, trainer_epoch
from experiments.data import Batches
from experiments.speed import tune_allocator


def run(models: tuple[str, ...] = MODELS, steps: int = 10, batch_size: int = 64, rounds: int = 2,
        threads: int | None = None, quick: bool = False, echo=print) -> dict:
    threads, tuned = set_threads(threads), tune_allocator()  # as the trainer does
    data = load_data(quick)
    batches = Batches(data.train, batch_size, data.mean, data.std, torch.device("cpu"), train=True,
                      memory_format=torch.channels_last, order_generator=torch.Generator().manual_seed(0),
                      aug_generator=torch.Generator().manual_seed(0))
    in_memory = [b for _, b in zip(range(steps), batches, strict=False)]  # the first `steps` batches
    rows = {}
    for model in models:
        def bare(m=model) -> float:  # a fresh model each time, like each trainer epoch measured (built untimed)
            net = build(m, len(data.classes), channels_last=True).train()
            optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
            return seconds(lambda: [sgd_step(net, optimizer, x, y) for x, y in in_memory])

        def ours(m=model) -> float:
            rate = trainer_epoch(m, steps, batch_size, threads, quick, epochs=1)["images_per_second"]
            return steps * batch_size / rate

        time_ = alternate({"trainer": ours, "bare": bare}, rounds, warmup_rounds=1)
        rows[model] = {**time_, "overhead": time_["trainer"] / time_["bare"] - 1}
        echo(f"{model:22s} trainer epoch {time_['trainer']:6.2f} s | bare steps on in-memory batches "
             f"{time_['bare']:6.2f} s | overhead {100 * rows[model]['overhead']:+.1f}%")
    echo(f"{steps} steps of batch {batch_size}, {threads} torch threads, allocator tuned: {tuned}, medians of {rounds} "
         f"alternating rounds")
    worst = max(r["overhead"] for r in rows.values())
    echo(f"ratio: trainer epoch / bare steps <= {1 + worst:.3f}x (overhead {100 * worst:+.1f}%, target <= +10%)")
    return {"rows": rows, "ratio": 1 + worst}
