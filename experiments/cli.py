"""``run.py list | show | ablate | study | gpu-next | tune | status | recount | train``: the experiment engine's commands.

Every option is declared once, below, and shared by the commands that take it. By default runs are
written to and read from ``runs/`` (``study.grids.SCRATCH_RESULTS``, git-ignored); the committed
study's ``results/`` only when named (``--results results``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from study.grids import (
    CPU_SEED_CAP,
    GPU_PROTOCOL,
    GPU_SEED_CAP,
    GRIDS,
    LR_CANDIDATES,
    LR_SEPARATOR,
    SCRATCH_RESULTS,
    TUNING_SEEDS,
)

from . import runs
from .config import PROTOCOLS, compile_setting
from .runs import RunOptions, check_data, grid_protocol, parse_kwargs

# Each command parses its options, calls one function of experiments.runs (which imports the engine
# inside, so that `run.py --help` and `run.py list` stay quick) and turns a failure into exit code 1.

Protocol_ = Annotated[str | None, typer.Option("--protocol", "-p",
                                               help=f"Budget: {', '.join(PROTOCOLS)} (default: the grid's).")]
Seeds_ = Annotated[int, typer.Option("--seeds", "-n", min=1, max=1000, help="Seeds 0..N-1 per variant.")]
Dataset_ = Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset (default: the protocol's).")]
Vary_ = Annotated[str, typer.Option("--vary", help="Seed source varied with the seed: all, init, data or aug (others fixed).")]
Results_ = Annotated[Path, typer.Option("--results", "-r", help="Results directory (the committed study: results).")]
DataRoot_ = Annotated[Path | None, typer.Option("--data-root",
                                                help="Dataset file or folder (else $DYCLOT_DATA, then defaults).")]
Import_ = Annotated[list[str] | None, typer.Option("--import", help="Extra module registering models (repeatable).")]


Executor_ = Annotated[str, typer.Option(help="local or ray.")]
LOCAL_WORKERS = "Runs trained at once (local processes; the cores are split among them)"
LocalWorkers_ = Annotated[int, typer.Option(min=1, max=256, help=f"{LOCAL_WORKERS}.")]
Workers_ = Annotated[int, typer.Option(min=1, max=256, help=f"{LOCAL_WORKERS}; on Ray, runs sharing each GPU of the "
                                                            "cluster.")]
Step_ = Annotated[str, typer.Option("--step", help="The training step: eager (the model's own), compiled "
                                    "(torch.compile, forward and backward) or cuda-graphs (compiled, replayed as CUDA "
                                    "graphs, with the fused SGD; CUDA only). A compiled step that fails falls back to the "
                                    "next of those; env.json and metrics.jsonl record which ran.")]
Address_ = Annotated[str | None, typer.Option(help="Ray cluster address (e.g. auto); default: start Ray here.")]
LOCAL_THREADS = "torch threads per run (default: the idle cores / workers, at least 1"
LocalThreads_ = Annotated[int | None, typer.Option(min=1, max=1024, help=f"{LOCAL_THREADS}).")]
Threads_ = Annotated[int | None, typer.Option(min=1, max=1024, help=f"{LOCAL_THREADS}; 1 a task with --executor ray).")]
Device_ = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
Wandb_ = Annotated[str, typer.Option(help="off, offline or online.")]
Download_ = Annotated[bool, typer.Option("--download", help="Download CIFAR if missing.")]
RetryFailed_ = Annotated[bool, typer.Option("--retry-failed", help=(
    "Run failed runs again, except those whose training diverged (they stand; delete a run's folder to retrain it)."))]
Reuse_ = Annotated[bool, typer.Option(help="Copy a finished twin run of another grid instead of training it again.")]
UntilDecided_ = Annotated[bool, typer.Option(
    "--until-decided", help="Add seeds in looks until each comparison with the reference is decided (docs/study.md); "
    "--seeds is then ignored.")]
MaxSeeds_ = Annotated[int, typer.Option("--max-seeds", min=3, max=1000, help="With --until-decided: the last look's "
                                        "seeds (fixed once the first look is recorded).")]
Margin_ = Annotated[float, typer.Option("--margin", min=0.01, help="With --until-decided: equivalence margin, points.")]
Minutes_ = Annotated[float | None, typer.Option(
    "--minutes", help="A time box: no run starts that is not expected to end within these minutes, measured from "
    "earlier epochs of its network on this processor (experiments/timebox.py); a run still training at the end "
    "stops and resumes from its checkpoint next time.")]
FinishLater_ = Annotated[bool, typer.Option("--finish-later", help="With a time box: start a run while one more epoch "
                                            "of it fits (not the whole run); it stops at the deadline and resumes next "
                                            "time from its checkpoint, which must be there next time.")]


def time_box(minutes: float | None) -> float | None:
    """The deadline of ``--minutes`` (``timebox.deadline_after``), or None without a time box."""
    from .timebox import deadline_after

    return None if minutes is None else deadline_after(minutes)


def list_grids() -> None:
    """List the named ablation grids."""
    runs.list_grids()


def show(grid: str, protocol: Protocol_ = None, seeds: Seeds_ = 3, dataset: Dataset_ = None,
         plugins: Import_ = None, data_root: DataRoot_ = None) -> None:
    """Show a grid's variants, which of them can be built now, and its runs (under the protocol ablate would train
    with the same --data-root)."""
    runs.show_grid(grid, protocol, seeds, dataset, tuple(plugins or ()), data_root)


def ablate(
    grid: str,
    protocol: Protocol_ = None,
    seeds: Seeds_ = 3,
    dataset: Dataset_ = None,
    data_root: DataRoot_ = None,
    results: Results_ = SCRATCH_RESULTS,
    executor: Executor_ = "local",
    workers: Workers_ = 1,
    address: Address_ = None,
    threads: Threads_ = None,
    device: Device_ = "auto",
    vary: Vary_ = "all",
    wandb: Wandb_ = "offline",
    step: Step_ = "eager",
    download: Download_ = False,
    retry_failed: RetryFailed_ = False,
    reuse: Reuse_ = True,
    plugins: Import_ = None,
    until_decided: UntilDecided_ = False,
    max_seeds: MaxSeeds_ = CPU_SEED_CAP,
    margin: Margin_ = 0.5,
    compare: Annotated[list[str] | None, typer.Option(
        "--compare", help="With --until-decided: a variant to compare with the reference (repeatable; default every "
        "other variant). Alpha is split over these only; the grid's other variants get no main runs.")] = None,
    minutes: Minutes_ = None,
    finish_later: FinishLater_ = False,
    only_variants: Annotated[list[str] | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run a grid: every variant x seed not finished yet (interrupted runs resume).

    Where ``run.py tune GRID`` chose learning rates on validation under the same protocol, every
    variant trains at its chosen rate.
    """
    options = RunOptions(data_root=data_root, download=download, device=device, threads=threads, compile=compile_setting(step),
                         wandb=wandb, plugins=tuple(plugins or ()), retry_failed=retry_failed, reuse=reuse,
                         executor=executor, workers=workers, address=address, deadline=time_box(minutes),
                         finish_later=finish_later)
    if compare and not until_decided:
        raise ValueError(f"--compare {' '.join(compare)} needs --until-decided (it names the comparisons the sequential "
                         "rule decides)")
    if not runs.ablate(grid, protocol=protocol, seeds=seeds, dataset=dataset, vary=vary, results=results,
                       options=options, until_decided=until_decided, max_seeds=max_seeds, margin=margin,
                       only_variants=only_variants, compared=compare):
        raise typer.Exit(1)


def study(
    protocol: Protocol_ = None,
    results: Results_ = SCRATCH_RESULTS,
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only this grid of the plan (repeatable).")] = None,
    data_root: DataRoot_ = None,
    executor: Executor_ = "local",
    workers: Workers_ = 1,
    address: Address_ = None,
    threads: Threads_ = None,
    device: Device_ = "auto",
    wandb: Wandb_ = "offline",
    download: Download_ = False,
    retry_failed: RetryFailed_ = False,
    reuse: Reuse_ = True,
    plugins: Import_ = None,
    until_decided: UntilDecided_ = False,
    max_seeds: MaxSeeds_ = CPU_SEED_CAP,
    margin: Margin_ = 0.5,
    minutes: Minutes_ = None,
    finish_later: FinishLater_ = False,
) -> None:
    """Run the whole study: every grid of the plan (experiments.grids.STUDY) with its seeds, in order.

    Resumable like ``ablate``: finished runs are skipped, twins are copied. Writes RESULTS/study.json
    (the whole plan, also with --only) for the report. A grid that fails (failed runs, missing data)
    does not stop the others; the exit code is then 1. The plan's grids that are questions of the second
    edition are refused there until their search has chosen rates (``run.py tune``). With ``--until-decided``, the second edition
    instead (needs ``--protocol``): ``run.py tune`` then ``run.py ablate --until-decided`` per grid of
    ``study.questions.SECOND_EDITION`` (the core grids, then the p and r sweeps and norm-placement), at most
    ``--max-seeds`` seeds (the CPU cap by default).
    """
    options = RunOptions(data_root=data_root, download=download, device=device, threads=threads, compile=False,
                         wandb=wandb, plugins=tuple(plugins or ()), retry_failed=retry_failed, reuse=reuse,
                         executor=executor, workers=workers, address=address, deadline=time_box(minutes),
                         finish_later=finish_later)
    failed = (runs.run_second_edition(protocol=protocol, results=results, only=only, options=options,
                                      max_seeds=max_seeds, margin=margin) if until_decided
              else runs.run_plan(protocol=protocol, results=results, only=only, options=options))
    if failed:
        runs.console.print(f"grids with failed runs: {', '.join(failed)}")
        raise typer.Exit(1)


def gpu_next(
    grid: str,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the run folders: <out>/<grid>-<protocol>/ and "
                                      "its search's <out>/<grid>-<protocol>-lr/; a budget pilot's <out>/<grid>/.")],
    minutes: Annotated[float, typer.Option(help="Time budget of the whole command; no run starts that would not "
                                                "end in it.")] = 10.0,
    seeds: Seeds_ = 3,
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help=f"Budget (its name also names the grid "
                                                 f"folder; default {GPU_PROTOCOL}, a budget pilot's own).")] = None,
    device: Annotated[str, typer.Option(help="cuda, cuda:N, or cpu (to try the planning without a GPU).")] = "cuda",
    workers: Annotated[int, typer.Option(min=1, max=64, help="Runs trained at once on the device (spawned "
                                                             "processes).")] = 1,
    step: Step_ = "eager",
    sharing: Annotated[str, typer.Option(help="How the runs at once share the GPU, as recorded in env.json: processes "
                                              "(taking turns) or mps (the CUDA MPS daemon runs; start it first).")]
    = "processes",
    threads: LocalThreads_ = None,
    data_root: DataRoot_ = None,
    until_decided: UntilDecided_ = False,
    max_seeds: MaxSeeds_ = GPU_SEED_CAP,
    margin: Margin_ = 0.5,
    retry_failed: RetryFailed_ = False,
    finish_later: FinishLater_ = False,
    plugins: Import_ = None,
) -> None:
    """Train a grid's next planned runs on one GPU within a time budget (own protocol, own grid folder)."""
    from evidence.status import RunStatus

    from .gpu import gpu_next as train_next
    from .gpu import trained_folders

    console = runs.console
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def splits(row: dict) -> tuple[str, ...]:  # a search run is judged on validation only: its test score is not shown
        return ("val",) if LR_SEPARATOR in str(row.get("variant")) else ("val", "test")

    def show(row: dict) -> None:
        metrics = row.get("metrics") or {}
        console.print(f"{row['variant']} seed {row['seed']}: {row['status']}"
                      + "".join(f", {split} top-1 {metrics[f'{split}_top1']:.2f}" for split in splits(row)
                                if isinstance(metrics.get(f"{split}_top1"), (int, float)))
                      + (f", {row['seconds']:.0f} s" if isinstance(row.get("seconds"), (int, float)) else "")
                      + f" ({row['note']})", soft_wrap=True)

    # first, before anything trains: the folders experiments/gpu_session.sh packs, even if this call fails
    console.print("folders: " + " ".join(trained_folders(grid, protocol)), soft_wrap=True)
    outcome = train_next(grid, out, seeds=seeds, minutes=minutes, protocol=protocol, device=device,
                         data_root=data_root, workers=workers, threads=threads, until_decided=until_decided,
                         max_seeds=max_seeds, margin=margin, retry_failed=retry_failed, finish_later=finish_later,
                         plugins=tuple(plugins or ()), sharing=sharing, compile=compile_setting(step), on_row=show)
    for name, reason in outcome["missing"].items():
        console.print(f"left out {name}: {reason}", soft_wrap=True)
    rows = outcome["rows"]
    before = [r for r in rows if r.get("note") == "finished before"]
    now = [r for r in rows if r.get("note") != "finished before"]
    count = lambda status: sum(r["status"] == status for r in now)  # noqa: E731
    searched = " and its learning-rate search" if GRIDS[grid].fixed_seeds is None else " (a budget pilot: fixed seeds)"
    console.print(f"{outcome['grid']}{searched}: {len(rows)} planned runs: "
                  f"{count(RunStatus.OK)} finished now, {len(before)} finished before, {count(RunStatus.PARTIAL)} "
                  f"stopped at the deadline (they resume next time), {count(RunStatus.TODO)} not started, "
                  f"{count(RunStatus.RUNNING)} running elsewhere, {count(RunStatus.FAILED) + count(RunStatus.LOST)} "
                  "failed or lost", soft_wrap=True)
    if outcome["learning_rates"]:
        console.print("learning rates chosen on validation: " + ", ".join(
            f"{v} {lr:g}" for v, lr in outcome["learning_rates"].items()), soft_wrap=True)
    if outcome["waiting"]:
        console.print(f"main runs not started: {outcome['waiting']}", soft_wrap=True)
    for variant, state in (outcome.get("decisions") or {}).items():
        console.print(f"{variant}: {state['label']} (look {state['look']}, {state['n']} seeds)", soft_wrap=True)
    if GRIDS[grid].fixed_seeds is not None and (until_decided or seeds != 3):
        console.print(f"{grid} is a budget pilot: it trains its {GRIDS[grid].fixed_seeds} fixed seeds at its "
                      "protocol's rate; --seeds and --until-decided do not apply to it", soft_wrap=True)
    console.print(f"run folders in {outcome['dir']}: copy the folder back (checkpoints too, so that stopped runs "
                  "resume) and commit its grid.json and the run folders holding a result.json (docs/study.md, "
                  "section 5)", soft_wrap=True)
    if any(r["status"] in (RunStatus.FAILED, RunStatus.LOST) for r in now):
        raise typer.Exit(1)


def tune(
    grid: str,
    protocol: Protocol_ = None,
    candidates: Annotated[str | None, typer.Option(
        help="Peak learning rates to try, comma-separated (default: the grid's under the protocol, "
        f"{','.join(f'{lr:g}' for lr in LR_CANDIDATES)} for most; docs/study.md, section 2).")] = None,
    seeds: Annotated[int, typer.Option("--seeds", "-n", min=1, max=100,
                                       help="Seeds per candidate (1000, 1001, ...).")] = TUNING_SEEDS,
    data_root: DataRoot_ = None,
    results: Results_ = SCRATCH_RESULTS,
    workers: LocalWorkers_ = 1,
    threads: LocalThreads_ = None,
    device: Device_ = "auto",
    wandb: Wandb_ = "offline",
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help=(
        "Train failed search runs again (not those that diverged: they are finished, scoring 0)."))] = False,
    plugins: Import_ = None,
    compare: Annotated[list[str] | None, typer.Option(
        "--compare", help="Search only the reference and this variant (repeatable; default every variant): the "
        "networks `ablate --until-decided --compare` trains.")] = None,
    minutes: Minutes_ = None,
    finish_later: FinishLater_ = False,
) -> None:
    """Choose each variant's learning rate on validation, the same search for every network (docs/study.md)."""
    try:
        values = tuple(float(c) for c in candidates.split(",")) if candidates is not None else None
    except ValueError:
        raise ValueError(f"--candidates {candidates!r} is not a comma-separated list of numbers") from None
    options = RunOptions(data_root=data_root, download=False, device=device, threads=threads, compile=False,
                         wandb=wandb, plugins=tuple(plugins or ()), retry_failed=retry_failed, workers=workers,
                         deadline=time_box(minutes), finish_later=finish_later)
    if runs.tune(grid, protocol=protocol, candidates=values, seeds=seeds, results=results, options=options,
                     compared=compare) is False:
        raise typer.Exit(1)


def status(grid: str, protocol: Protocol_ = None, seeds: Seeds_ = 3, dataset: Dataset_ = None,
           results: Results_ = SCRATCH_RESULTS, vary: Vary_ = "all", plugins: Import_ = None,
           data_root: DataRoot_ = None) -> None:
    """Count a grid's runs: ok / running / failed / partial (resumable) / to do (under the protocol ablate would
    train with the same --data-root)."""
    runs.grid_status(grid, protocol=protocol, seeds=seeds, dataset=dataset, results=results, vary=vary,
                     plugins=tuple(plugins or ()), data_root=data_root)


def recount(results: Results_ = SCRATCH_RESULTS, data_root: DataRoot_ = None) -> None:
    """Recount the MACs of finished runs measured by an older MAC counter (cost.macs only)."""
    if not runs.recount(results, data_root):
        raise typer.Exit(1)


def train(
    model: str,
    kw: Annotated[list[str] | None, typer.Option("--kw", help="Model option KEY=VALUE (repeatable).")] = None,
    protocol: Annotated[str, typer.Option("--protocol", "-p", help=f"Budget: {', '.join(PROTOCOLS)}.")] = "cpu",
    seed: Annotated[int, typer.Option(min=0, max=2**31 - 1)] = 0,
    epochs: Annotated[int | None, typer.Option(min=1, max=10000, help="Override the protocol's epochs.")] = None,
    dataset: Dataset_ = None,
    data_root: DataRoot_ = None,
    results: Results_ = SCRATCH_RESULTS,
    threads: LocalThreads_ = None,
    device: Device_ = "auto",
    wandb: Wandb_ = "offline",
    step: Step_ = "eager",
    download: Download_ = False,
    plugins: Import_ = None,
) -> None:
    """Train one model (results under RESULTS/train/)."""
    options = RunOptions(data_root=data_root, download=download, device=device, threads=threads, compile=compile_setting(step),
                         wandb=wandb, plugins=tuple(plugins or ()))
    if not runs.train_one(model, kw=kw, protocol=protocol, seed=seed, epochs=epochs, dataset=dataset, results=results,
                          options=options):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("list")(list_grids)
    app.command("gpu-next")(gpu_next)
    for command in (show, ablate, study, tune, status, recount, train):
        app.command()(command)


__all__ = ["check_data", "grid_protocol", "parse_kwargs", "register"]
