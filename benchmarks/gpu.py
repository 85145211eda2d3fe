"""``run.py bench gpu``: the GPU protocol's training speed of the networks of questions (c) and (d).

Per network (``study.grids``: ``HEADLINE``, then DyClotNet-0.5 and ``BASELINE_MODELS``) and per
number of runs trained at once (spawned processes sharing the device, as ``run.py gpu-next
--workers K`` trains them, taking turns or under CUDA MPS; or, measured only, stacked in one process,
``measure_stacked``):

* images/s in all and per run: the engine's own training epoch (``experiments.trainer``:
  ``prepare``, one untimed epoch, then one timed epoch; the runtime of ``experiments.gpu``), at the
  ``gpu`` protocol's batch on a GPU. The runs at once start their timed epochs together (a file
  barrier); in all is their images over the wall time from the first start to the last end, per
  run is that divided by the runs;
* bytes per image: ``costing.profiling.count_bytes_moved`` (forward and backward, bf16, op by op);
* the fraction of the device's memory bandwidth that is (images/s in all x bytes per image /
  the device's peak bandwidth, ``PEAK_BANDWIDTH``; "unknown" for other devices, the CPU included);
* runs of the ``gpu`` protocol that fit in 10 minutes: ``K x 600 s / (RUN_OVERHEAD_S + epochs x
  training images / images/s per run)``, rounded down (evaluation not counted: its forward passes
  are under 3% of a run's images).

On a GPU it adds to ``benchmarks/records/gpu.json`` (``write_record``): one entry per network and runs at once,
``{device, network, batch, runs_at_once, sharing, step, img_per_s (in all), bytes_per_image, bandwidth_fraction,
img_per_s_per_run, runs_in_10_min}``, each written as its measure ends; a measure that fails, or is stopped before
it ends, stays with ``img_per_s`` null and its ``error`` (tried: a batch does not try it again). On the CPU it
writes nothing (the speeds there say nothing about a GPU) and uses a small batch and few steps by default.
"""
from __future__ import annotations

import json
import math
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RECORD = Path(__file__).resolve().parent / "records" / "gpu.json"
# Peak memory bandwidth, bytes/s, from NVIDIA's data sheets, by a part of torch.cuda.get_device_name();
# the first match wins (so the H100's PCIe and NVL parts come before the SXM part, "NVIDIA H100 80GB HBM3")
PEAK_BANDWIDTH = (("H200", 4.8e12), ("H100 NVL", 3.9e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12))
TEN_MINUTES_S = 600.0
BARRIER_TIMEOUT_S = 300.0


def networks() -> tuple[str, ...]:
    """The networks of (c), the headline pair and its 4x4 row, and of (d), DyClotNet-0.5 and the baselines."""
    from study.grids import BASELINE_MODELS, HEADLINE

    return tuple(dict.fromkeys([*(v.model for v in HEADLINE.values()), "dyclotnet_050", *BASELINE_MODELS]))


def peak_bandwidth(device_name: str) -> float | None:
    """The device's peak memory bandwidth in bytes/s, or None where the table does not know it."""
    return next((bandwidth for part, bandwidth in PEAK_BANDWIDTH if part in device_name), None)


def runs_in_ten_minutes(per_run_img_s: float, runs_at_once: int, epochs: int, train_images: int,
                        overhead_s: float) -> int:
    """Whole runs of ``epochs`` x ``train_images`` that ``runs_at_once`` runs, each at ``per_run_img_s``, finish
    in 10 minutes, each paying ``overhead_s`` besides its epochs."""
    return math.floor(runs_at_once * TEN_MINUTES_S / (overhead_s + epochs * train_images / per_run_img_s))


# how the runs at once share the GPU in the bench: the engine's ways (experiments.config.DEVICE_SHARING), and stacked
# in one process (measured only: the engine does not train runs that way)
BENCH_SHARING = ("processes", "mps", "stacked")
RECORD_KEY = ("device", "network", "batch", "runs_at_once", "sharing", "step")
# what an entry without these fields measured (the record's entries from before they were recorded)
RECORD_DEFAULTS = {"sharing": "processes", "step": "eager"}


def _key(entry: dict) -> tuple:
    return tuple(entry.get(k, RECORD_DEFAULTS.get(k)) for k in RECORD_KEY)


def write_record(record: Path, entries: list[dict]) -> None:
    """Add ``entries`` to the record at ``record``: an entry measured again (same device, network, batch, runs at
    once and sharing) replaces the older one; the others stay, so that benches of a few networks each build up one
    record."""
    key = _key
    new = {key(e) for e in entries}
    old = json.loads(record.read_text()) if record.exists() else []
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps([e for e in old if key(e) not in new] + entries, indent=1) + "\n")


def recorded_speeds(record: Path, device: str, network: str, runs_at_once: int, step: str = "eager",
                    batch: int | None = None) -> dict[str, float | None]:
    """Images/s in all that the record holds for ``runs_at_once`` runs of ``network`` on ``device`` at ``batch``
    (default: the ``gpu`` protocol's) with ``step`` (``experiments.config.STEPS``), by how they shared it
    (``BENCH_SHARING``); None for a measure that was tried and failed (its entry's ``error``)."""
    from experiments.config import get_protocol

    batch = batch or get_protocol("gpu").batch_size
    entries = json.loads(Path(record).read_text()) if Path(record).exists() else []
    return {e.get("sharing", RECORD_DEFAULTS["sharing"]): e["img_per_s"] for e in entries
            if (e["device"], e["network"], e["runs_at_once"], e.get("batch"), e.get("step", RECORD_DEFAULTS["step"]))
            == (device, network, runs_at_once, batch, step)}


def faster_sharing(record: Path, device: str, network: str, runs_at_once: int, step: str = "eager") -> str | None:
    """How ``runs_at_once`` runs of ``network`` share ``device`` faster (images/s in all, with ``step``) in the record,
    among the ways the engine trains (``experiments.config.DEVICE_SHARING``):
    ``processes`` (taking turns) or ``mps`` (CUDA MPS); a way whose measure failed is not chosen (``processes``
    where both failed); None where the record lacks either measure. Stacked runs are measured only, never chosen."""
    return _faster(recorded_speeds(record, device, network, runs_at_once, step))


def _faster(speeds: dict[str, float | None]) -> str | None:
    """:func:`faster_sharing`'s choice among ``speeds`` (``recorded_speeds`` at one step)."""
    from experiments.config import DEVICE_SHARING

    known = {k: v for k, v in speeds.items() if k in DEVICE_SHARING}
    if not set(DEVICE_SHARING) <= set(known):
        return None
    measured = {k: v for k, v in known.items() if v is not None}
    return max(measured, key=measured.get) if measured else "processes"


def sharing_status(record: Path, device: str, network: str, runs_at_once: int, step: str = "eager") -> str:
    """One line for experiments/gpu_session.sh: the ways of sharing the record has tried for this card (the engine's
    at ``step``, ``stacked`` eager), and ``faster=`` :func:`faster_sharing`'s choice (``unknown``: none yet);
    e.g. ``processes stacked faster=unknown``."""
    from experiments.config import DEVICE_SHARING

    at_step = recorded_speeds(record, device, network, runs_at_once, step)
    eager = at_step if step == "eager" else recorded_speeds(record, device, network, runs_at_once)
    tried = [k for k in DEVICE_SHARING if k in at_step] + ["stacked"] * ("stacked" in eager)
    return " ".join([*tried, f"faster={_faster(at_step) or 'unknown'}"])


def step_status(record: Path, device: str, network: str, runs_at_once: int, sharing: str) -> str:
    """One line for experiments/gpu_session.sh: the steps (``experiments.config.STEPS``) the record has tried for
    ``runs_at_once`` runs of ``network`` on ``device`` shared as ``sharing``, and ``fastest=`` the one with the most
    images/s in all among those measured (``eager`` where none was); e.g. ``eager compiled fastest=compiled``."""
    from experiments.config import STEPS

    speeds = {step: at_step[sharing] for step in STEPS.values()
              if sharing in (at_step := recorded_speeds(record, device, network, runs_at_once, step))}
    measured = {step: speed for step, speed in speeds.items() if speed is not None}
    return " ".join([*speeds, f"fastest={max(measured, key=measured.get) if measured else 'eager'}"])


def _bench_setup(model: str, device: str, steps: int, batch: int, threads: int | None, quick: bool, step: str):
    """The engine's run of ``model`` for the bench (``steps`` steps an epoch of the ``gpu`` protocol at ``batch``):
    its config and runtime."""
    from benchmarks.common import load_data
    from experiments.config import RunConfig, Seeds, compile_setting, get_protocol
    from experiments.gpu import make_runtime
    from experiments.runner import import_models

    import_models()
    data = load_data(quick)
    protocol = get_protocol("gpu", epochs=2, batch_size=batch, val_per_class=0, test_per_class=1,
                            train_per_class=math.ceil(steps * batch / len(data.classes)))
    cfg = RunConfig(grid="bench-gpu", variant=model, model=model, dataset=data.name, protocol=protocol, seed=0,
                    seeds=Seeds.derive(0))
    return data, cfg, make_runtime(device, threads=threads, compile=compile_setting(step))


def _timed(epoch, barrier: str | None, parties: int) -> dict:
    """``epoch()`` once untimed (cuDNN's choices, the allocator, the optimiser's state), then once timed, started
    once ``parties`` processes are ready in ``barrier`` (a folder) where given."""
    epoch(1)
    waited = _wait_for(Path(barrier), parties) if barrier else 0.0
    start = time.time()
    images = epoch(2)  # it ends reading its losses: the device has finished
    end = time.time()
    return {"images": images, "start": start, "end": end, "waited_s": waited, "images_per_second": images / (end - start)}


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"


def measure_run(model: str, device: str, steps: int, batch: int, threads: int | None = None, quick: bool = False,
                barrier: str | None = None, parties: int = 1, step: str = "eager") -> dict:
    """One timed training epoch of ``steps`` steps of the engine (after one untimed epoch): its images, its
    wall-clock start and end (``time.time()``) and images/s.

    With ``barrier`` (a folder), the timed epoch starts once ``parties`` processes are ready there.
    """
    from experiments.runner import torch_settings
    from experiments.trainer import StepPath, prepare, train_epoch

    data, cfg, runtime = _bench_setup(model, device, steps, batch, threads, quick, step)
    with torch_settings(runtime):
        t = prepare(cfg, data, runtime)
        path = StepPath(t.model, runtime.compile)

        def epoch(number: int) -> int:
            train_epoch(t, path, number, None)
            return len(t.batches) * batch

        timed = _timed(epoch, barrier, parties)
    return {**timed, "step": path.label, "device": _device_name(device)}


def measure_stacked(model: str, runs: int, device: str, steps: int, batch: int, threads: int | None = None,
                    quick: bool = False) -> dict:
    """``runs`` runs of ``model`` (seeds 0 to runs-1) trained stacked in this one process: their parameters and
    buffers stacked (``torch.func.stack_module_state``), each step one forward over every run's own batch
    (``torch.func.vmap`` of ``functional_call``), one backward of the runs' summed losses (each run's gradient is
    its own loss's) and one SGD step over the stacked tensors (element-wise: every run's own SGD). The batches,
    optimiser settings and mixed precision are the engine's (``trainer.prepare`` per run); the learning rate is
    held at the protocol's (the schedule costs no device time). A speed measure only: the engine does not train
    runs this way (yet). Timed as :func:`measure_run`: images of all runs over the timed epoch's wall time. What it
    measures is torch.func's lowering: convolutions with stacked weights run as grouped convolutions, and the DCT
    takes its NCHW path inside vmap, where the engine's runs are channels-last; the runs' batches are drawn one run
    after another in this one process."""
    import copy

    import torch
    from torch.func import functional_call, stack_module_state, vmap

    from experiments.config import Seeds
    from experiments.runner import torch_settings
    from experiments.trainer import param_groups, prepare

    data, cfg, runtime = _bench_setup(model, device, steps, batch, threads, quick, "eager")
    with torch_settings(runtime):
        trainings = [prepare(cfg.model_copy(update={"seed": s, "seeds": Seeds.derive(s)}), data, runtime)
                     for s in range(runs)]
        first, protocol = trainings[0], cfg.protocol
        params, buffers = stack_module_state([t.model for t in trainings])
        name_of = {id(p): n for n, p in first.model.named_parameters()}  # the engine's groups, over stacked tensors
        groups = [{**g, "params": [params[name_of[id(p)]] for p in g["params"]]}
                  for g in param_groups(first.model, protocol.weight_decay)]
        optimizer = torch.optim.SGD(groups, lr=protocol.lr, momentum=protocol.momentum, nesterov=protocol.momentum > 0)
        base = copy.deepcopy(first.model).to("meta")
        forward = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), randomness="different")

        def epoch(_: int) -> int:
            losses, correct = [], torch.zeros(runs, dtype=torch.int64, device=first.device)
            for pairs in zip(*(t.batches for t in trainings), strict=True):
                x, y = torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])
                with first.autocast:
                    logits = forward(params, buffers, x)
                    loss = first.criterion(logits.float().flatten(0, 1), y.flatten()) * runs  # the runs' losses summed
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.detach())
                correct += (logits.argmax(-1) == y).sum(-1)  # each run's running accuracy, as the engine counts it
            torch.stack(losses).tolist()
            correct.tolist()
            return runs * len(first.batches) * batch

        timed = _timed(epoch, None, 1)
    return {**timed, "step": "eager", "device": _device_name(device)}


def _wait_for(folder: Path, parties: int) -> float:
    """Mark this process ready in ``folder`` and wait until ``parties`` are; the seconds waited."""
    import os

    start = time.perf_counter()
    (folder / f"ready-{os.getpid()}").touch()
    while len(list(folder.glob("ready-*"))) < parties:
        if time.perf_counter() - start > BARRIER_TIMEOUT_S:
            raise TimeoutError(f"only {len(list(folder.glob('ready-*')))} of {parties} runs were ready after "
                               f"{BARRIER_TIMEOUT_S:.0f} s")
        time.sleep(0.01)
    return time.perf_counter() - start


def measure_at_once(model: str, runs_at_once: int, device: str, steps: int, batch: int, threads: int | None,
                    quick: bool, isolate: bool, step: str = "eager", sharing: str = "processes") -> list[dict]:
    """:func:`measure_run` in ``runs_at_once`` fresh processes at once (in this process if one and not
    ``isolate``); one result per run. ``sharing`` ``stacked``: :func:`measure_stacked` of the ``runs_at_once`` runs
    in one fresh process (this one if not ``isolate``); its one result, for every run."""
    from benchmarks.common import fresh

    if sharing == "stacked":
        return [fresh("benchmarks.gpu:measure_stacked", isolate=isolate, model=model, runs=runs_at_once, device=device,
                      steps=steps, batch=batch, threads=threads, quick=quick)]
    if runs_at_once == 1 and not isolate:
        return [measure_run(model, device, steps, batch, threads, quick, step=step)]
    with tempfile.TemporaryDirectory() as barrier, ThreadPoolExecutor(runs_at_once) as pool:
        kwargs = dict(model=model, device=device, steps=steps, batch=batch, threads=threads, quick=quick,
                      barrier=barrier, parties=runs_at_once, step=step)
        futures = [pool.submit(fresh, "benchmarks.gpu:measure_run", **kwargs) for _ in range(runs_at_once)]
        return [f.result() for f in futures]


def run(threads: int | None = None, echo=print, models: tuple[str, ...] | None = None, device: str | None = None,
        runs_at_once: tuple[int, ...] | None = None, steps: int | None = None, batch: int | None = None,
        quick: bool = False, isolate: bool = True, record: Path | None = RECORD, sharing: str = "processes",
        step: str = "eager") -> dict:
    """Measure, print one line per network and runs at once, and write ``record`` on a GPU; the summary.

    ``sharing`` names how the runs at once share the GPU (``BENCH_SHARING``: ``processes``, ``mps`` where the caller
    started the CUDA MPS daemon first (experiments/gpu_session.sh), or ``stacked`` in one process,
    :func:`measure_stacked`, eager only); the record keeps it, and ``step`` (eager, compiled or cuda-graphs:
    ``experiments.config.STEPS``; a step that fell back is recorded as tried, with the step that ran as its
    ``error``). A network that cannot be stacked is said and skipped.

    Defaults on a GPU: every network of (c) and (d), 1 and 8 runs at once, the ``gpu`` protocol's
    batch (512), 20 timed steps. On the CPU: 1 run, batch 32, 4 steps.
    """
    import torch

    from baselines.registry import create_model
    from costing.profiling import count_bytes_moved
    from experiments.config import STEPS, choose, get_protocol
    from experiments.runner import import_models
    from experiments.timebox import RUN_OVERHEAD_S

    import_models()
    choose("sharing", sharing, BENCH_SHARING)
    choose("step", step, tuple(STEPS.values()))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.startswith("cuda")
    protocol = get_protocol("gpu")
    models = models or networks()
    runs_at_once = runs_at_once or ((1, 8) if on_gpu else (1,))
    steps, batch = steps or (20 if on_gpu else 4), batch or (protocol.batch_size if on_gpu else 32)
    train_images = 50_000 - 10 * protocol.val_per_class  # CIFAR-10's training images less the validation split
    device_name = torch.cuda.get_device_name(device) if on_gpu else "cpu"
    bandwidth = peak_bandwidth(device_name) if on_gpu else None
    entries = []
    for model in models:
        bytes_per_image = count_bytes_moved(create_model(model, num_classes=10), (3, 32, 32), batch_size=batch)
        for k in runs_at_once:
            base = {"device": device_name, "network": model, "batch": batch, "runs_at_once": k, "sharing": sharing,
                    "step": step if sharing != "stacked" else "eager", "img_per_s": None,
                    "bytes_per_image": bytes_per_image}
            keep = (lambda entry: write_record(Path(record), [entry])) if on_gpu and record is not None else None
            if keep:  # a bench stopped before it ends leaves this: the card is not measured again in every batch
                keep({**base, "error": "not finished: the bench was stopped, or its time ran out"})
            try:
                timed = measure_at_once(model, k, device, steps, batch, threads, quick, isolate, step, sharing)
            except Exception as error:  # noqa: BLE001 -- a network that fails (or cannot be stacked) stops no other
                echo(f"{model:32s} {k:2d} at once ({sharing}): not measured: {error}")
                if keep:
                    keep({**base, "error": str(error)[-500:]})
                continue
            if fell_back := next((r["step"] for r in timed if r["step"] != base["step"]), None):  # another step's speed
                echo(f"{model:32s} {k:2d} at once ({sharing}): not measured: the {step} step fell back: {fell_back}")
                if keep:  # recorded as tried, never chosen
                    keep({**base, "error": f"the step fell back: {fell_back}"[:500]})
                continue
            in_all = sum(r["images"] for r in timed) / (max(r["end"] for r in timed) - min(r["start"] for r in timed))
            fraction = in_all * bytes_per_image / bandwidth if bandwidth else None
            fits = runs_in_ten_minutes(in_all / k, k, protocol.epochs, train_images, RUN_OVERHEAD_S)
            entries.append({**base, "img_per_s": in_all, "bandwidth_fraction": fraction,
                            "img_per_s_per_run": in_all / k, "runs_in_10_min": fits})
            if keep:
                keep(entries[-1])
            echo(f"{model:32s} {k:2d} at once ({sharing}, {timed[0]['step']}): {in_all / k:9.1f} img/s per run, "
                 f"{in_all:9.1f} in all | "
                 f"{bytes_per_image / 1e6:6.1f} MB/image | "
                 + (f"{fraction:6.1%} of {bandwidth / 1e12:.2f} TB/s" if fraction is not None else "bandwidth unknown")
                 + f" | {fits} gpu-protocol runs in 10 min")
    echo(f"device {device_name}, batch {batch}, {steps} timed steps per run after one untimed epoch, runs at once "
         f"{'stacked in one process' if sharing == 'stacked' else 'in spawned processes'}; runs in 10 min: "
         f"{protocol.epochs} epochs x {train_images} images + {RUN_OVERHEAD_S:.0f} s a run, evaluation not counted")
    if on_gpu and record is not None:
        echo(f"record written, each measure as it ended: {record}")
    first = [e for e in entries if e["network"] == models[0]]
    ratio = max(e["img_per_s"] for e in first) / first[0]["img_per_s"] if first else math.nan
    echo(f"ratio: {models[0]} images/s in all, best of {', '.join(map(str, runs_at_once))} runs at once / "
         + (f"{first[0]['runs_at_once']} at once: {ratio:.2f}x" if first else "the first: none measured"))
    return {"entries": entries, "ratio": ratio}
