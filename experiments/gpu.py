"""The next planned runs of a grid on one GPU, within a time budget (``run.py gpu-next``).

docs/study.md (section 5) has the design. The runs use a protocol of their own (``gpu`` by
default: all of CIFAR-10, 30 epochs) and a grid folder of their own, ``<grid>-<protocol>`` (e.g.
``expansion-op-gpu``): ``analysis`` pairs and pools runs by grid folder, variant and seed, so a GPU
run is never paired or pooled with a CPU run of the same grid, and every run records its protocol
in result.json. The folders are ordinary run folders: copied into ``results/`` they are read by
``analysis`` and the report like any other grid.

Scheduling: the grid's runs not finished in the output folder, in plan order (interrupted runs
first, then seed by seed, every variant of a seed together), are started while the next one is
expected to finish before the deadline, measured on this processor where it can be (``experiments.timebox``,
which the CPU commands' ``--minutes`` shares). With ``--finish-later`` a run starts while its next epoch is
expected to end in time (for budgets shorter than a run). At the deadline a run still training stops at its
next step; its last epoch's checkpoint stays and the next call resumes it from there. ``workers > 1`` trains
that many runs at once in the engine's pool of worker processes sharing the device (several small networks use
a GPU better than one): the same executor, runner and trainer as every CPU run (``experiments.executors``);
this module adds the GPU's plan (its protocol and folders, search then looks) only.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from evidence.status import RunStatus
from study.grids import GPU_PROTOCOL, GPU_SEED_CAP, gpu_folder, search_name
from study.questions import own_comparison

from .config import (
    DEVICE_SHARING,
    STEPS,
    Compile,
    RunConfig,
    Runtime,
    check_step,
    choose,
    default_threads,
    get_protocol,
)
from .data import load_dataset
from .executors import run_grid
from .grids import Grid, get_grid, grid_json, resolve, restrict
from .runner import run_row
from .runs import check_data
from .store import RunStore, check_environment, check_writable, started_environments, write_json
from .timebox import Clock, deadline_after, may_start_here
from .tuning import search_bracketed, search_runs
from .until_decided import SequentialDesign, final_states, in_look_order, looks

log = logging.getLogger(__name__)

DEFAULT_PROTOCOL = GPU_PROTOCOL


def device_grid(grid: Grid, protocol: str) -> Grid:
    """The grid under ``protocol`` in a grid folder of its own, ``<grid>-<protocol>``."""
    return replace(grid, name=gpu_folder(grid.name, protocol), protocol=protocol, fallback_protocol=None,
                   description=f"{grid.description} [protocol {protocol}: its own grid, never pooled with "
                               f"runs of {grid.name}]")


def make_runtime(device: str, data_root: Path | None = None, workers: int = 1, threads: int | None = None,
                 plugins: tuple[str, ...] = (), sharing: str = "processes", compile: Compile = False) -> Runtime:
    """The runtime of GPU runs; ValueError for a device that is not there, MPS sharing or CUDA graphs off a GPU.

    ``sharing`` records how the ``workers`` runs at once share the GPU (``config.DEVICE_SHARING``): ``mps`` says
    that the CUDA MPS daemon runs (started before the workers, e.g. by experiments/gpu_session.sh).

    On CUDA, cuDNN picks its fastest kernels (``deterministic=False``: cudnn.benchmark); on the CPU
    (the command's own tests) runs stay deterministic.
    """
    import torch

    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r} (choose from: cuda, cuda:N, cpu)")
    if device.startswith("cuda"):
        index = device.partition(":")[2]
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: no CUDA device is visible here (torch.cuda.is_available() is "
                             "False); run it on a GPU machine, or use --device cpu to try the planning on the CPU")
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    choose("--sharing", sharing, DEVICE_SHARING)
    if sharing == "mps" and not device.startswith("cuda"):
        raise ValueError(f"--sharing mps shares a CUDA device among processes; --device {device} is not one")
    check_step(compile, device)
    if data_root is not None and not Path(data_root).exists():
        raise FileNotFoundError(f"--data-root {data_root} does not exist")
    return Runtime(data_root=data_root, device=device, threads=threads or max(1, default_threads() // workers),
                   deterministic=device == "cpu", wandb="off", plugins=plugins, runs_sharing_device=workers,
                   device_sharing=sharing, compile=compile)


def plan_runs(configs: list[RunConfig], out: Path, retry_failed: bool = False) -> tuple[dict[str, dict], list[RunConfig]]:
    """(rows of runs not to train now, keyed by run id; the runs to train, in order).

    Finished runs that stand (``RunStore.settled_result``: ok; failed, unless ``retry_failed``; diverged, always)
    and runs another process holds are not trained; interrupted runs come first, then the rest in the grid's order (seed by seed).
    """
    rows, partial, todo = {}, [], []
    for cfg in configs:
        store = RunStore.of(out, cfg)
        if (result := store.settled_result(retry_failed)) is not None:
            rows[cfg.run_id] = {**result, "note": "finished before"}
            continue
        state = store.status()
        if state == RunStatus.RUNNING:
            rows[cfg.run_id] = run_row(cfg, RunStatus.RUNNING, "another process holds it")
        else:
            (partial if state == RunStatus.PARTIAL else todo).append(cfg)
    return rows, partial + todo


# --------------------------------------------------------------------------- training within a deadline
def run_within(configs: list[RunConfig], runtime: Runtime, out: Path, deadline: float, workers: int = 1,
               clock: Clock = time.time, on_row: Callable[[dict], None] | None = None,
               finish_later: bool = False, spare: list[RunConfig] = ()) -> list[dict]:
    """Train the not-finished runs of ``configs`` in order while each is expected to finish by ``deadline``
    (with ``finish_later``: while one more epoch of it is expected to end by then; the rest resumes next time),
    through the engine's executor (``executors.run_grid``: ``workers`` processes sharing the device). ``spare``:
    runs a worker trains rather than idle while a run of ``configs`` still trains (a look's next seeds), under the
    same time box; they have no row.

    Returns one row per config (``status``: ok, failed, partial -- stopped at the deadline --,
    todo -- not started: it would not finish in time --, running, lost; ``note`` says why).
    ``on_row`` sees each row of a run trained now as it ends.
    """
    rows, ordered = plan_runs(configs, out, runtime.retry_failed)
    protocol = configs[0].protocol.name if configs else DEFAULT_PROTOCOL
    fits = may_start_here(deadline, out, protocol, runtime, workers, finish_later=finish_later, clock=clock)

    if ordered:
        trained = run_grid(ordered, runtime, out, workers=workers, stop_at=deadline, may_start=fits, clock=clock,
                           on_result=on_row, spare=list(spare))
        rows.update({row["run_id"]: row for row in trained})
    return [rows[c.run_id] for c in configs]


# --------------------------------------------------------------------------- the command's work
def pilot_protocol(grid: Grid, protocol: str | None) -> str:
    """The protocol a GPU budget pilot (``study.grids.GPU_PILOT_BUDGETS``) trains under: its own; ValueError for a
    CPU pilot or another ``protocol``, whose runs would land in the pilot's folder under another budget."""
    from study.grids import GPU_PILOT_BUDGETS

    gpu_pilots = ", ".join(f"pilot-{b}" for b in GPU_PILOT_BUDGETS)
    if grid.protocol not in GPU_PILOT_BUDGETS:
        raise ValueError(f"grid {grid.name} is a CPU budget pilot; gpu-next trains the GPU's: {gpu_pilots}")
    if protocol not in (None, grid.protocol):
        raise ValueError(f"grid {grid.name} is the budget pilot of protocol {grid.protocol}; --protocol {protocol} "
                         f"would put another budget's runs in its folder (the GPU's pilots: {gpu_pilots})")
    return grid.protocol


def planned_grid(grid: str, protocol: str | None) -> tuple[Grid, str]:
    """The grid ``gpu-next`` trains, and its protocol: a budget pilot as it is, under its own protocol (it is a
    folder of its own already); a question's own networks only, under ``protocol`` (default ``gpu``), in a folder of
    the protocol's. ValueError for an unknown grid or protocol."""
    chosen = get_grid(grid)
    if chosen.fixed_seeds is not None:
        return chosen, pilot_protocol(chosen, protocol)
    protocol = protocol or DEFAULT_PROTOCOL
    get_protocol(protocol)  # an unknown protocol is an error before anything else
    return device_grid(restrict(chosen, own_comparison(grid)), protocol), protocol


def trained_folders(grid: str, protocol: str | None = None) -> list[str]:
    """The grid folders ``gpu-next GRID [--protocol PROTOCOL]`` may train into, known before it trains: a budget
    pilot's own folder; a question's search folder and main folder (``<grid>-<protocol>-lr``, ``<grid>-<protocol>``)."""
    g, _ = planned_grid(grid, protocol)
    return [g.name] if g.fixed_seeds is not None else [search_name(g.name), g.name]


def held_step(grid: str, protocol: str | None, out: Path) -> str | None:
    """The step (``config.STEPS``) the finished or started runs (``store.started``) of this engine in ``gpu-next
    GRID``'s folders under ``out`` took (``trained_folders``), or None where there are none: runs trained now with
    another step would never pair with them, and a stopped one would resume under another step
    (``store.check_environment`` refuses both), so a question keeps the step it started with."""
    for folder in trained_folders(grid, protocol):
        for _, env in started_environments(Path(out) / folder):
            if isinstance(env.get("runtime"), dict):
                return STEPS.get(env["runtime"].get("compile", False), "eager")
    return None


def gpu_next(grid: str, out: Path, *, seeds: int = 3, minutes: float = 10.0, protocol: str | None = None,
             device: str = "cuda", data_root: Path | None = None, workers: int = 1, threads: int | None = None,
             until_decided: bool = False, max_seeds: int = GPU_SEED_CAP, margin: float = 0.5,
             retry_failed: bool = False, finish_later: bool = False, plugins: tuple[str, ...] = (), sharing: str = "processes",
             compile: Compile = False, clock: Clock = time.time, on_row: Callable[[dict], None] | None = None) -> dict:
    """Train the next planned runs of ``grid`` under ``protocol`` into ``out/<grid>-<protocol>/`` within ``minutes``.

    As in the study's design (docs/study.md section 2) the plan starts with the grid's learning-rate
    search on validation, ``out/<grid>-<protocol>-lr/`` (the CPU's candidates scaled to the protocol's rate,
    ``study.grids.lr_candidates``, x ``TUNING_SEEDS`` per network); once every network's search runs are
    finished, the choice is written to its ``chosen.json`` and the main runs train at those rates in the time
    left. Until then no main run starts.

    A budget pilot (``study.grids.GPU_PILOT_BUDGETS``, grid ``pilot-<protocol>``) trains its fixed seeds under its
    own protocol, at the protocol's rate, into ``out/pilot-<protocol>/``: no search, no looks (``seeds`` and
    ``until_decided`` do not apply; docs/study.md section 5). ``protocol`` None: the pilot's, else ``gpu``.

    Returns ``{"grid": folder name, "dir": path, "rows": [one row per planned run, the search's first],
    "decisions": {variant: state} with until_decided, "learning_rates": {variant: rate} chosen, "waiting": why
    the main runs did not start (or None)}``. Bad input (also a protocol without a validation split) raises
    ValueError/FileNotFoundError before anything trains.
    """
    from study import grids as study_grids

    deadline = deadline_after(minutes, clock)  # bad --minutes refused before anything else
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a whole number >= 1, got {workers!r}")
    g, protocol = planned_grid(grid, protocol)
    if pilot := g.fixed_seeds is not None:  # its fixed seeds, no looks
        seeds, until_decided = g.fixed_seeds, False
    runtime = make_runtime(device, data_root, workers, threads, plugins, sharing, compile).model_copy(
        update={"retry_failed": retry_failed})
    configs, missing = resolve(g, protocol, seeds, plugins=plugins)
    # the learning-rate search first, on validation, the same budget for every network; no main run before its choice
    candidates = study_grids.lr_candidates(get_protocol(protocol).lr)
    if not pilot:  # a protocol it cannot search: refused now
        search_runs(g, protocol, candidates, study_grids.TUNING_SEEDS, plugins)
    check_data(configs[0].dataset, runtime)
    grid_dir = check_writable(Path(out) / g.name)
    for folder in (grid_dir, Path(out) / search_name(g.name)):  # never a window spent on runs that would not pair
        check_environment(folder, runtime)
    load_dataset(configs[0].dataset, runtime.data_root, runtime.cache_dir)  # decoded once, before any worker starts
    outcome = {"grid": g.name, "dir": grid_dir, "missing": missing, "learning_rates": {}, "waiting": None}

    def train(configs_now: list[RunConfig], planned: list[RunConfig], spare: list[RunConfig] = ()) -> list[dict]:
        write_json(grid_dir / "grid.json", grid_json(g, planned, missing))  # the networks g trains, as ablate writes it
        return run_within(configs_now, runtime, Path(out), deadline, workers, clock, on_row, finish_later, spare)

    if pilot:
        return {**outcome, "rows": train(configs, configs)}

    def train_search(search_grid: Grid, search_configs: list[RunConfig], left_out: dict[str, str]) -> list[dict]:
        write_json(check_writable(Path(out) / search_grid.name) / "grid.json", grid_json(search_grid, search_configs, left_out))
        return run_within(search_configs, runtime, Path(out), deadline, workers, clock, on_row, finish_later)

    search, search_rows, chosen, unchosen = search_bracketed(g, protocol, candidates, study_grids.TUNING_SEEDS, Path(out),
                                                             train_search, plugins)
    if unchosen:  # no main run before every network's rate is chosen
        return {**outcome, "rows": search_rows, "waiting": "; ".join(
            f"{network}: {why}" for network, why in unchosen.items()) + f" ({Path(out) / search.name})"}
    outcome["learning_rates"] = {v: entry["lr"] for v, entry in chosen.items()}
    configs, _ = resolve(g, protocol, seeds, plugins=plugins, results=Path(out))
    if not until_decided:
        return {**outcome, "rows": search_rows + train(configs, configs)}

    design = SequentialDesign(grid=g.name, reference=g.reference, protocol=protocol, margin=margin, max_seeds=max_seeds,
                              variants=tuple(v for v in dict.fromkeys(c.variant for c in configs) if v != g.reference))
    rows = _train_looks(design, g, Path(out), train, lambda: clock() >= deadline, plugins)
    return {**outcome, "rows": search_rows + rows, "decisions": final_states(design, Path(out), time_boxed=True)}


def _train_looks(design: SequentialDesign, g: Grid, out: Path, train: Callable, past_deadline: Callable[[], bool],
                 plugins: tuple[str, ...]) -> list[dict]:
    """The looks of ``design`` (``until_decided.looks``), each trained by ``train(configs now, configs planned,
    spare)``, the next look's seeds spare (``until_decided.in_look_order``: workers train them rather than idle at
    the look's tail), until the deadline has passed; one row per run, its first real outcome in this call winning
    over later looks' views of it."""
    rows: dict[str, dict] = {}
    for look in looks(design, out):
        look_configs, _ = resolve(g, design.protocol, look.seeds, plugins=plugins, results=out)
        ahead = resolve(g, design.protocol, look.ahead, first_seed=look.seeds, plugins=plugins,
                        results=out)[0] if look.ahead else []
        order = (g.reference, *look.open_variants)
        for row in train([c for c in look_configs if c.variant in order], look_configs, in_look_order(ahead, order)):
            if rows.get(row["run_id"], {"status": RunStatus.TODO})["status"] == RunStatus.TODO:
                rows[row["run_id"]] = row
        if past_deadline():  # the later looks could start nothing
            break
    return list(rows.values())

__all__ = ["DEFAULT_PROTOCOL", "device_grid", "gpu_next", "held_step", "make_runtime", "plan_runs", "run_within",
           "trained_folders"]
