"""Target 1: our trainer against the training pipeline most users write, same model, data and threads.

The usual way: a torchvision ``VisionDataset`` over the same uint8 images (as
``torchvision.datasets.CIFAR10`` holds them) with per-sample PIL transforms (RandomCrop(32,
padding=4), RandomHorizontalFlip, ToTensor, Normalize), a shuffling ``DataLoader`` and a plain
loop (forward, cross-entropy, backward, SGD step), default memory format and allocator. It is
measured with ``num_workers=0`` and ``num_workers=2`` (one per core; workers are forked processes
that compete with the torch threads on 2 cores); the ratio is against the faster of the two.

Ours: ``experiments.trainer.fit`` as ``run.py train`` runs it (channels-last, tuned allocator,
deterministic algorithms, the ``cpu`` recipe's optimiser, schedule, label smoothing and
per-step loss check). Every measurement runs in a fresh process, the sides alternating;
images/s are medians over rounds, each after warm-up (ours: the second of two epochs).
"""
from __future__ import annotations

from benchmarks.common import MODELS, alternate, build, fresh, load_data, seconds, set_threads, sgd_step

WORKERS = (0, 2)


def usual_loop(model: str = "dyclotnet_050", steps: int = 20, batch_size: int = 64, threads: int | None = None,
               quick: bool = False, num_workers: int = 0, warmup: int = 3) -> dict:
    """Images/s of ``steps`` steps of the usual DataLoader pipeline, after ``warmup`` steps."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision import transforms
    from torchvision.datasets import VisionDataset

    threads = set_threads(threads)
    data = load_data(quick)

    class Images(VisionDataset):
        def __init__(self, x: np.ndarray, y: np.ndarray, transform) -> None:
            super().__init__(root="", transform=transform)
            self.x, self.y = x, y

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int):
            return self.transform(Image.fromarray(self.x[i])), int(self.y[i])

    x = data.train.x.permute(0, 2, 3, 1).contiguous().numpy()  # N x H x W x C uint8, like torchvision's CIFAR10
    transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(),
                                    transforms.Normalize([m / 255 for m in data.mean], [s / 255 for s in data.std])])
    loader = torch.utils.data.DataLoader(Images(x, data.train.y.numpy(), transform), batch_size=batch_size, shuffle=True,
                                         drop_last=True, num_workers=num_workers, persistent_workers=num_workers > 0)
    net = build(model, len(data.classes)).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def batches():
        while True:
            yield from loader

    stream = batches()

    def run(n: int) -> None:
        for _ in range(n):
            xb, yb = next(stream)
            sgd_step(net, optimizer, xb, yb)

    run(warmup)
    return {"images_per_second": steps * batch_size / seconds(lambda: run(steps)), "threads": threads}


def run(models: tuple[str, ...] = MODELS, steps: int = 10, batch_size: int = 64, rounds: int = 2,
        threads: int | None = None, quick: bool = False, workers: tuple[int, ...] = WORKERS, isolate: bool = True,
        echo=print) -> dict:
    threads = threads or set_threads(None)
    common = dict(steps=steps, batch_size=batch_size, threads=threads, quick=quick, isolate=isolate)
    rows = {}
    for model in models:
        cases = {"ours": lambda m=model: fresh("benchmarks.common:trainer_epoch", model=m, **common)["images_per_second"]}
        for w in workers:
            cases[f"usual, {w} workers"] = lambda m=model, w=w: fresh(
                "benchmarks.pipeline:usual_loop", model=m, num_workers=w, **common)["images_per_second"]
        rate = alternate(cases, rounds)
        best = max((k for k in rate if k != "ours"), key=rate.get)
        rows[model] = {**rate, "ratio": rate["ours"] / rate[best]}
        echo(f"{model:22s} " + " | ".join(f"{k} {v:6.1f} img/s" for k, v in rate.items())
             + f" | ours / {best}: {rows[model]['ratio']:.2f}x")
    echo(f"batch {batch_size}, {steps} timed steps, {threads} torch threads, medians of {rounds} alternating rounds, "
         f"each measurement in a fresh process; data: {'synthetic' if quick else 'cifar10-jpeg if present'}")
    summary = {"rows": rows, "ratio": min(r["ratio"] for r in rows.values())}
    echo(f"ratio: ours / usual DataLoader pipeline (images/s) >= {summary['ratio']:.2f}x (target >= 2x)")
    return summary
