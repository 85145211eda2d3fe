"""``run.py list | show | ablate | status | train``: the experiment engine's commands."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from analysis.status import ENGINE_STATES, RunStatus
from analysis.terminal import keep_names_whole

from .config import PROTOCOLS, Runtime, choose

console = Console()
# The commands import the engine (grids, executors, runner: torch and the models) inside their bodies,
# so that `run.py --help` and `run.py list` stay quick.

Protocol_ = Annotated[str | None, typer.Option("--protocol", "-p",
                                               help=f"Budget: {', '.join(PROTOCOLS)} (default: the grid's).")]
Seeds_ = Annotated[int, typer.Option("--seeds", "-n", min=1, max=1000, help="Seeds 0..N-1 per variant.")]
Dataset_ = Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset (default: the protocol's).")]
Vary_ = Annotated[str, typer.Option("--vary", help="Seed source varied with the seed: all, init, data or aug (others fixed).")]
Results_ = Annotated[Path, typer.Option("--results", "-r", help="Results directory.")]
DataRoot_ = Annotated[Path | None, typer.Option("--data-root",
                                                help="Dataset file or folder (else $DYCLOT_DATA, then defaults).")]
Import_ = Annotated[list[str] | None, typer.Option("--import", help="Extra module registering models (repeatable).")]


def _runtime(data_root: Path | None, download: bool, device: str, threads: int | None, compile: bool, wandb: str,
             plugins: list[str] | None, retry_failed: bool = False, reuse: bool = True) -> Runtime:
    choose("wandb mode", wandb, ("off", "offline", "online"))
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r} (choose from: auto, cpu, cuda, cuda:N)")
    if data_root is not None and not data_root.exists():
        raise FileNotFoundError(f"--data-root {data_root} does not exist")
    return Runtime(data_root=data_root, download=download, device=device, threads=threads, compile=compile,
                   wandb=wandb, plugins=tuple(plugins or ()), retry_failed=retry_failed, reuse=reuse)


def check_data(dataset: str, runtime: Runtime) -> None:
    """Fail before any training if the dataset's files cannot be found (FileNotFoundError says where we looked)."""
    from .data import DATASETS, cache_dir, resolve_source

    spec = DATASETS[dataset]
    if spec.decode is not None and not (runtime.download and spec.download):
        resolve_source(spec, runtime.data_root, cache_dir(runtime.cache_dir))


def grid_protocol(grid, runtime: Runtime) -> str:
    """The grid's default protocol, or its fallback (said in one line) where the default's dataset is absent."""
    from .config import get_protocol

    if grid.fallback_protocol is None or runtime.data_root is not None:
        return grid.protocol
    dataset = grid.dataset or get_protocol(grid.protocol).dataset
    try:
        check_data(dataset, runtime)
        return grid.protocol
    except FileNotFoundError:
        fallback = get_protocol(grid.fallback_protocol)
        console.print(f"{dataset} is not installed: grid {grid.name} runs on protocol {fallback.name} "
                      f"({fallback.dataset} data) instead", soft_wrap=True)
        return fallback.name


def _print_results(results: list[dict]) -> None:
    table = Table("variant", "seed", "status", "test top-1", "val top-1", "run", "note")
    for r in sorted(results, key=lambda r: (r.get("variant", ""), r.get("seed", 0))):
        metrics = r.get("metrics") or {}
        fmt = lambda v: f"{v:.2f}" if isinstance(v, (int, float)) else "-"  # noqa: E731
        note = r.get("reason") or ("finished before" if r.get("skipped") else "")
        table.add_row(r.get("variant", "?"), str(r.get("seed", "?")), str(r["status"]), fmt(metrics.get("test_top1")),
                      fmt(metrics.get("val_top1")), r.get("run_id", "?"), note)
    console.print(keep_names_whole(table))


def parse_kwargs(pairs: list[str] | None) -> dict:
    """``["p=4", "recalibrator=none"]`` -> ``{"p": 4, "recalibrator": "none"}`` (values parsed as JSON if they are)."""
    kwargs = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--kw {pair!r} is not KEY=VALUE (e.g. --kw p=4 --kw recalibrator=none)")
        try:
            kwargs[key.strip()] = json.loads(value)
        except ValueError:
            kwargs[key.strip()] = value
    return kwargs


def register(app: typer.Typer) -> None:
    @app.command("list")
    def list_grids() -> None:
        """List the named ablation grids."""
        from .grids import GRIDS

        table = Table("grid", "variants", "protocol", "description")
        for grid in GRIDS.values():
            table.add_row(grid.name, str(len(grid.variants)), grid.protocol, grid.description)
        console.print(keep_names_whole(table))

    @app.command()
    def show(grid: str, protocol: Protocol_ = None, seeds: Seeds_ = 3, dataset: Dataset_ = None,
             plugins: Import_ = None) -> None:
        """Show a grid's variants, which of them can be built now, and its runs."""
        from .grids import check_variants, get_grid, resolve

        g = get_grid(grid)
        ready, missing = check_variants(g, tuple(plugins or ()), strict=False)
        configs, _ = resolve(g, protocol, seeds, dataset, plugins=tuple(plugins or ()), check=False)
        configs = [c for c in configs if c.variant in ready]
        console.print(f"[bold]{g.name}[/]: {g.description}\nreference: {g.reference}; protocol: "
                      f"{configs[0].protocol.name if configs else '-'}; dataset: {configs[0].dataset if configs else '-'}; "
                      f"{len(configs)} runs ({len(ready)} variants x {seeds} seeds)")
        table = Table("variant", "model", "options", "available")
        for name, variant in g.variants.items():
            note = ("yes" if name in ready else f"[yellow]left out[/]: {missing[name]}" if variant.optional
                    else f"[red]missing, ablate refuses[/]: {missing[name]}")
            table.add_row(name + (" (reference)" if name == g.reference else ""), variant.model,
                          json.dumps(variant.model_kwargs), note)
        console.print(keep_names_whole(table))

    @app.command()
    def ablate(
        grid: str,
        protocol: Protocol_ = None,
        seeds: Seeds_ = 3,
        dataset: Dataset_ = None,
        data_root: DataRoot_ = None,
        results: Results_ = Path("results"),
        executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
        workers: Annotated[int, typer.Option(min=1, max=256,
                                             help="Local process pool size (the cores are split among them).")] = 1,
        address: Annotated[str | None, typer.Option(help="Ray cluster address (e.g. auto); default: start Ray here.")] = None,
        threads: Annotated[int | None, typer.Option(
            min=1, max=1024, help="torch threads per run (default: all cores / workers; 1 per Ray task).")] = None,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
        vary: Vary_ = "all",
        wandb: Annotated[str, typer.Option(help="off, offline or online.")] = "offline",
        compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
        download: Annotated[bool, typer.Option("--download", help="Download CIFAR if missing.")] = False,
        retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run failed runs again.")] = False,
        reuse: Annotated[bool, typer.Option(
            help="Copy a finished twin run of another grid instead of training it again.")] = True,
        plugins: Import_ = None,
        until_decided: Annotated[bool, typer.Option(
            "--until-decided", help="Add seeds in looks until each comparison with the reference is decided "
            "(docs/study.md); --seeds is then ignored.")] = False,
        max_seeds: Annotated[int, typer.Option("--max-seeds", min=3, max=1000,
                                               help="With --until-decided: the last look's seeds.")] = 40,
        margin: Annotated[float, typer.Option("--margin", min=0.01,
                                              help="With --until-decided: equivalence margin, points.")] = 0.5,
        only_variants: Annotated[list[str] | None, typer.Option(hidden=True)] = None,
    ) -> None:
        """Run a grid: every variant x seed not finished yet (interrupted runs resume).

        Where ``run.py tune GRID`` chose learning rates on validation under the same protocol, every
        variant trains at its chosen rate.
        """
        from .executors import run_grid
        from .grids import get_grid, grid_json, resolve
        from .store import check_writable, write_json
        from .tuning import read_choice

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        choose("executor", executor, ("local", "ray"))
        if address and executor != "ray":
            raise ValueError(f"--address {address!r} needs --executor ray")
        runtime = _runtime(data_root, download, device, threads, compile, wandb, plugins, retry_failed, reuse)
        g = get_grid(grid)
        if protocol is None and dataset is None:
            protocol = grid_protocol(g, runtime)
        if until_decided:
            from .until_decided import run_until_decided

            def train(n: int, open_variants: list[str]) -> None:
                try:
                    look(n, open_variants)
                except typer.Exit:  # failed runs were listed; their variants stop undecided
                    pass

            def look(n: int, open_variants: list[str]) -> None:
                ablate(grid, protocol=protocol, seeds=n, dataset=dataset, data_root=data_root, results=results,
                       executor=executor, workers=workers, address=address, threads=threads, device=device, vary=vary,
                       wandb=wandb, compile=compile, download=download, retry_failed=retry_failed, reuse=reuse,
                       plugins=plugins, only_variants=[g.reference, *open_variants])

            protocol_name = resolve(g, protocol, 1, dataset, check=False)[0][0].protocol.name
            states = run_until_decided(g.name, g.reference, [v for v in g.variants if v != g.reference], protocol_name,
                                       Path(results), max_seeds, margin, train)
            for variant, state in states.items():
                console.print(f"{variant} vs {g.reference}: {state['label']} (look {state['look']}, {state['n']} seeds)")
            return
        protocol_name = resolve(g, protocol, 1, dataset, check=False)[0][0].protocol.name
        learning_rates = read_choice(Path(results), g, protocol_name)
        if learning_rates:
            console.print(f"learning rates chosen on validation ({Path(results) / (g.name + '-lr') / 'chosen.json'}): "
                          + ", ".join(f"{v} {lr:g}" for v, lr in learning_rates.items()))
        configs, missing = resolve(g, protocol, seeds, dataset, choose("seed source", vary, ("all", "init", "data", "aug")),
                                   runtime.plugins, learning_rates=learning_rates)
        check_data(configs[0].dataset, runtime)
        for name, reason in missing.items():
            console.print(f"[yellow]left out[/] {name}: {reason}")
        grid_dir = check_writable(Path(results) / g.name)
        write_json(grid_dir / "grid.json", grid_json(g, configs, missing))
        if only_variants is not None:  # a look of --until-decided: grid.json above still lists every variant
            configs = [c for c in configs if c.variant in only_variants]
        outcome = run_grid(configs, runtime, results, executor, workers, address, show_progress=True,
                           title=f"{g.name} ({configs[0].protocol.name})")
        _print_results(outcome)
        failed = [r for r in outcome if r["status"] not in (RunStatus.OK, RunStatus.RUNNING)]
        executed = [r for r in outcome if not r.get("skipped")]
        copied = sum(bool(r.get("reused_from")) for r in executed)
        console.print(f"{len(outcome)} runs: {len(executed) - copied} trained now, {copied} copied from twin runs, "
                      f"{len(outcome) - len(executed)} finished before or running elsewhere, {len(failed)} failed; "
                      f"results in {grid_dir}")
        if failed:
            raise typer.Exit(1)

    @app.command()
    def study(
        protocol: Protocol_ = None,
        results: Results_ = Path("results"),
        only: Annotated[list[str] | None, typer.Option("--only", help="Run only this grid of the plan (repeatable).")] = None,
        data_root: DataRoot_ = None,
        executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
        workers: Annotated[int, typer.Option(min=1, max=256, help="Local process pool size.")] = 1,
        address: Annotated[str | None, typer.Option(help="Ray cluster address (e.g. auto).")] = None,
        threads: Annotated[int | None, typer.Option(min=1, max=1024, help="torch threads per run.")] = None,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
        wandb: Annotated[str, typer.Option(help="off, offline or online.")] = "offline",
        download: Annotated[bool, typer.Option("--download", help="Download CIFAR if missing.")] = False,
        retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run failed runs again.")] = False,
        reuse: Annotated[bool, typer.Option(
            help="Copy a finished twin run of another grid instead of training it again.")] = True,
        plugins: Import_ = None,
    ) -> None:
        """Run the whole study: every grid of the plan (experiments.grids.STUDY) with its seeds, in order.

        Resumable like ``ablate``: finished runs are skipped, twins are copied. Writes RESULTS/study.json
        (the whole plan, also with --only) for the report. A grid that fails (failed runs, missing data)
        does not stop the others; the exit code is then 1.
        """
        from .config import get_protocol
        from .grids import STUDY, get_grid
        from .store import ResultsWriteError, check_writable, write_json

        for name in only or ():
            choose("study grid", name, STUDY)
        if protocol is not None:
            get_protocol(protocol)  # an unknown protocol is an error before anything is written
        _runtime(data_root, download, device, threads, False, wandb, plugins)  # the same checks, before writing
        plan = {g: n for g, n in STUDY.items() if not only or g in only}
        root = check_writable(Path(results))
        write_json(root / "study.json", {"grids": [
            {"grid": g, "seeds": n, "protocol": protocol or get_grid(g).protocol} for g, n in STUDY.items()]})
        failed = []
        for grid, seeds in plan.items():
            console.rule(f"{grid}: {seeds} seeds")
            try:
                ablate(grid, protocol=protocol, seeds=seeds, results=results, data_root=data_root, executor=executor,
                       workers=workers, address=address, threads=threads, device=device, wandb=wandb,
                       download=download, retry_failed=retry_failed, reuse=reuse, plugins=plugins)
            except typer.Exit:
                failed.append(grid)
            except ResultsWriteError:  # the disk: every later grid would fail the same way
                raise
            except (ValueError, KeyError, OSError) as error:  # e.g. this grid's dataset is missing here
                console.print(f"[red]error[/] in grid {grid}: {error}")
                failed.append(grid)
        if failed:
            console.print(f"grids with failed runs: {', '.join(failed)}")
            raise typer.Exit(1)

    @app.command()
    def tune(
        grid: str,
        protocol: Protocol_ = None,
        candidates: Annotated[str, typer.Option(help="Peak learning rates to try, comma-separated.")] = "0.025,0.05,0.1,0.2",
        seeds: Annotated[int, typer.Option("--seeds", "-n", min=1, max=100,
                                           help="Seeds per candidate (1000, 1001, ...).")] = 2,
        data_root: DataRoot_ = None,
        results: Results_ = Path("results"),
        workers: Annotated[int, typer.Option(min=1, max=256, help="Local process pool size.")] = 1,
        threads: Annotated[int | None, typer.Option(min=1, max=1024, help="torch threads per run.")] = None,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
        wandb: Annotated[str, typer.Option(help="off, offline or online.")] = "offline",
        plugins: Import_ = None,
    ) -> None:
        """Choose each variant's learning rate on validation, the same search for every network (docs/study.md)."""
        from .executors import run_grid
        from .grids import get_grid, grid_json, resolve
        from .store import check_writable, write_json
        from .tuning import TUNING_FIRST_SEED, choose_learning_rates, tuning_grid, write_choice

        try:
            values = tuple(float(c) for c in candidates.split(","))
        except ValueError:
            raise ValueError(f"--candidates {candidates!r} is not a comma-separated list of numbers") from None
        runtime = _runtime(data_root, False, device, threads, False, wandb, plugins)
        g = get_grid(grid)
        search = tuning_grid(g, values)
        configs, missing = resolve(search, protocol, seeds, plugins=runtime.plugins, first_seed=TUNING_FIRST_SEED)
        check_data(configs[0].dataset, runtime)
        grid_dir = check_writable(Path(results) / search.name)
        write_json(grid_dir / "grid.json", grid_json(search, configs, missing))
        outcome = run_grid(configs, runtime, results, "local", workers, None, show_progress=True,
                           title=f"{search.name} ({configs[0].protocol.name})")
        _print_results(outcome)
        chosen = choose_learning_rates(Path(results), g)
        path = write_choice(Path(results), g, configs[0].protocol.name, chosen)
        for variant, entry in chosen.items():
            console.print(f"{variant}: lr {entry['lr']:g} (mean validation top-1 by lr: "
                          + ", ".join(f"{lr} {v:.2f}" for lr, v in entry["val_top1"].items()) + ")")
        console.print(f"wrote {path}; run.py ablate {g.name} now trains at these rates")

    @app.command()
    def status(grid: str, protocol: Protocol_ = None, seeds: Seeds_ = 3, dataset: Dataset_ = None,
               results: Results_ = Path("results"), vary: Vary_ = "all", plugins: Import_ = None) -> None:
        """Count a grid's runs: ok / running / failed / partial (resumable) / to do."""
        from .grids import get_grid, resolve
        from .store import RunStore
        from .tuning import read_choice

        g = get_grid(grid)
        protocol_name = resolve(g, protocol, 1, dataset, check=False)[0][0].protocol.name
        configs, _ = resolve(g, protocol, seeds, dataset, vary, tuple(plugins or ()),
                             learning_rates=read_choice(Path(results), g, protocol_name))
        counts = dict.fromkeys(ENGINE_STATES, 0)
        table = Table("variant", "seed", "status", "run")
        for cfg in configs:
            state = RunStore.of(results, cfg).status()
            counts[state] += 1
            table.add_row(cfg.variant, str(cfg.seed), str(state), cfg.run_id)
        console.print(keep_names_whole(table))
        console.print(", ".join(f"{'to do' if k == RunStatus.TODO else k} {v}" for k, v in counts.items()))

    @app.command()
    def recount(results: Results_ = Path("results"), data_root: DataRoot_ = None) -> None:
        """Recount the MACs of finished runs measured by an older MAC counter (cost.macs only)."""
        from .runner import recount_macs

        if not Path(results).is_dir():
            raise FileNotFoundError(f"--results {results} is not a directory")
        rows = recount_macs(Path(results), data_root)
        table = Table("run", "MACs before", "MACs now", "note")
        for row in rows:
            table.add_row(row["run"], str(row["old"]), str(row["new"] if row["new"] is not None else "-"), row["note"])
        console.print(keep_names_whole(table))
        changed = sum(r["note"] == "recounted" for r in rows)
        console.print(f"{changed} run(s) recounted, {len(rows) - changed} left unchanged")
        if len(rows) != changed:
            raise typer.Exit(1)

    @app.command()
    def train(
        model: str,
        kw: Annotated[list[str] | None, typer.Option("--kw", help="Model option KEY=VALUE (repeatable).")] = None,
        protocol: Annotated[str, typer.Option("--protocol", "-p", help=f"Budget: {', '.join(PROTOCOLS)}.")] = "cpu",
        seed: Annotated[int, typer.Option(min=0, max=2**31 - 1)] = 0,
        epochs: Annotated[int | None, typer.Option(min=1, max=10000, help="Override the protocol's epochs.")] = None,
        dataset: Dataset_ = None,
        data_root: DataRoot_ = None,
        results: Results_ = Path("results"),
        threads: Annotated[int | None, typer.Option(min=1, max=1024, help="torch threads.")] = None,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
        wandb: Annotated[str, typer.Option(help="off, offline or online.")] = "offline",
        compile: Annotated[bool, typer.Option("--compile")] = False,
        download: Annotated[bool, typer.Option("--download")] = False,
        plugins: Import_ = None,
    ) -> None:
        """Train one model (results under RESULTS/train/)."""
        from filelock import FileLock

        from .executors import run_grid
        from .grids import Grid, Variant, grid_json, resolve
        from .store import check_writable, read_json, write_json

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        runtime = _runtime(data_root, download, device, threads, compile, wandb, plugins)
        kwargs = parse_kwargs(kw)
        variant = model + "".join(f",{k}={v}" for k, v in sorted(kwargs.items()))
        single = Grid("train", "Single runs from `run.py train`.", variant, {variant: Variant(model, kwargs)}, "cpu")
        configs, _ = resolve(single, protocol, 1, dataset, first_seed=seed, plugins=runtime.plugins, epochs=epochs)
        check_data(configs[0].dataset, runtime)
        grid_dir = check_writable(Path(results) / single.name)
        with FileLock(grid_dir / "grid.json.lock"):  # accumulate the variants trained so far
            previous = read_json(grid_dir / "grid.json") or {}
            write_json(grid_dir / "grid.json", {**grid_json(single, configs, {}), "reference": None, "paired": False,
                                                "variants": {**previous.get("variants", {}),
                                                             variant: Variant(model, kwargs).as_json()}})
        outcome = run_grid(configs, runtime, results, show_progress=True, title=f"train {variant}")
        _print_results(outcome)
        if outcome[0]["status"] != RunStatus.OK:
            raise typer.Exit(1)


__all__ = ["check_data", "grid_protocol", "parse_kwargs", "register"]
