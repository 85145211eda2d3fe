"""What the engine's commands do (``run.py list / show / ablate / study / tune / status / recount / train``).

Each function here is one command's work after its options were parsed (``experiments/cli.py``):
checks, the runs, and what the command prints. It returns whether every run finished.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evidence.status import ENGINE_STATES, RunStatus
from evidence.terminal import keep_names_whole
from study.grids import CPU_SEED_CAP, LR_SEPARATOR

from .config import Compile, Runtime, check_step, choose

console = Console()
# The engine (grids, executors, runner: torch and the models) is imported inside the functions,
# so that `run.py --help` and `run.py list` stay quick.


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How and where runs execute, as given on the command line (checked by :meth:`runtime`)."""
    data_root: Path | None = None
    download: bool = False
    device: str = "auto"
    threads: int | None = None
    compile: Compile = False
    wandb: str = "offline"
    plugins: tuple[str, ...] = ()
    retry_failed: bool = False
    reuse: bool = True
    executor: str = "local"
    workers: int = 1
    address: str | None = None
    deadline: float | None = None  # a time box (--minutes, experiments.timebox): the time.time() training stops at
    finish_later: bool = False  # with a deadline: a run starts while its next epoch fits, not only its whole run

    def runtime(self) -> Runtime:
        choose("wandb mode", self.wandb, ("off", "offline", "online"))
        if self.deadline is not None and self.executor != "local":
            raise ValueError(f"--minutes needs --executor local (the time box decides which runs start); "
                             f"--executor {self.executor} places every run itself")
        if self.finish_later and self.deadline is None:
            raise ValueError("--finish-later needs --minutes (it says which runs start before the deadline)")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"unknown device {self.device!r} (choose from: auto, cpu, cuda, cuda:N)")
        if self.data_root is not None and not self.data_root.exists():
            raise FileNotFoundError(f"--data-root {self.data_root} does not exist")
        check_step(self.compile, self.device)
        return Runtime(data_root=self.data_root, download=self.download, device=self.device, threads=self.threads,
                       compile=self.compile, wandb=self.wandb, plugins=tuple(self.plugins or ()),
                       retry_failed=self.retry_failed, reuse=self.reuse)

    def past_deadline(self) -> bool:
        """Whether the time box (if any) has ended: nothing more starts."""
        import time

        return self.deadline is not None and time.time() >= self.deadline

    def time_box(self, results: Path, protocol: str, runtime: Runtime) -> dict:
        """The executor's time box (``run_grid``'s ``stop_at`` and ``may_start``; ``experiments.timebox``), or none."""
        if self.deadline is None:
            return {}
        from .timebox import may_start_here

        return {"stop_at": self.deadline, "may_start": may_start_here(
            self.deadline, Path(results), protocol, runtime, self.workers, finish_later=self.finish_later,
            unmeasured_starts=False)}


def check_data(dataset: str, runtime: Runtime) -> None:
    """Fail before any training if the dataset's files cannot be found (FileNotFoundError says where we looked)."""
    from .data import DATASETS, cache_dir, resolve_source

    spec = DATASETS[dataset]
    if spec.decode is not None and not (runtime.download and spec.download):
        resolve_source(spec, runtime.data_root, cache_dir(runtime.cache_dir))


def grid_protocol(grid, runtime: Runtime, protocol: str | None = None, dataset: str | None = None) -> str | None:
    """The protocol a grid trains under, as ``ablate`` trains it: ``protocol`` where the call names one (or names a
    ``dataset``: ``grids.resolve`` picks then), else the grid's default protocol, or its fallback (said in one line)
    where the default's dataset is absent."""
    from .config import get_protocol

    if protocol is not None or dataset is not None:
        return protocol
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


def print_results(results: list[dict]) -> None:
    table = Table("variant", "seed", "status", "test top-1", "val top-1", "run", "note")
    for r in sorted(results, key=lambda r: (r.get("variant", ""), r.get("seed", 0))):
        metrics = r.get("metrics") or {}
        fmt = lambda v: f"{v:.2f}" if isinstance(v, (int, float)) else "-"  # noqa: E731
        unfinished = r["status"] in (RunStatus.TODO, RunStatus.PARTIAL, RunStatus.LOST)  # its note says why
        note = r.get("reason") or (r.get("note") if unfinished else None) or ("finished before" if r.get("skipped") else "")
        search = LR_SEPARATOR in str(r.get("variant"))  # a search run is judged on validation only
        table.add_row(r.get("variant", "?"), str(r.get("seed", "?")), str(r["status"]),
                      "(search run)" if search else fmt(metrics.get("test_top1")),
                      fmt(metrics.get("val_top1")), r.get("run_id", "?"), note)
    console.print(keep_names_whole(table))
    if any(r.get("dataset") == "synthetic" for r in results):
        console.print("synthetic data (generated where the real dataset is absent, 10 classes): these runs check that "
                      "training works end to end; a top-1 near 10% is chance level, as expected of so short a run",
                      soft_wrap=True)


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


def list_grids() -> None:
    """Print the named grids."""
    from .grids import GRIDS

    rows = [("grid", "variants", "protocol", "description (all of it: run.py show GRID)")]
    rows += [(g.name, str(len(g.variants)), g.protocol, g.description.split(". ")[0].rstrip(".")) for g in GRIDS.values()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for i, row in enumerate(rows):  # one line per grid, cut at the terminal's edge
        line = "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        console.print(line, style="bold" if i == 0 else None, no_wrap=True, overflow="ellipsis", markup=False,
                      highlight=False)


def show_grid(grid: str, protocol: str | None, seeds: int, dataset: str | None, plugins: tuple[str, ...],
              data_root: Path | None = None) -> None:
    """Print a grid's variants, which of them can be built now, and its runs."""
    from .grids import check_variants, get_grid, resolve

    g = get_grid(grid)
    protocol = grid_protocol(g, RunOptions(data_root=data_root).runtime(), protocol, dataset)  # checks the path
    ready, missing = check_variants(g, plugins, strict=False)
    configs, _ = resolve(g, protocol, seeds, dataset, plugins=plugins, check=False)
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


def ablate(grid: str, *, protocol: str | None, seeds: int, dataset: str | None, vary: str, results: Path,
           options: RunOptions, until_decided: bool = False, max_seeds: int = CPU_SEED_CAP, margin: float = 0.5,
           only_variants: list[str] | None = None, compared: list[str] | None = None) -> bool:
    """Run a grid (``run.py ablate``); False if a run failed (its failure is recorded, the others ran).
    ``compared`` (with ``until_decided``, ``--compare``): the grid is its reference and these variants only."""
    from .grids import get_grid, restrict

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    choose("executor", options.executor, ("local", "ray"))
    if options.address and options.executor != "ray":
        raise ValueError(f"--address {options.address!r} needs --executor ray")
    runtime = options.runtime()
    g = get_grid(grid)
    protocol = grid_protocol(g, runtime, protocol, dataset)
    check_rates_chosen(g, protocol, dataset, results)
    if until_decided:
        ablate_until_decided(g, protocol=protocol, dataset=dataset, vary=vary, results=results, runtime=runtime,
                             options=options, max_seeds=max_seeds, margin=margin, compared=compared)
        return True
    return run_grid_command(restrict(g, compared), protocol=protocol, seeds=seeds, dataset=dataset, vary=vary,
                            results=results, runtime=runtime, options=options, only_variants=only_variants)


def check_rates_chosen(g, protocol: str | None, dataset: str | None, results: Path) -> None:
    """ValueError, before anything is trained or written, where ``g`` is a question of the second edition and its
    search chose no rates under the protocol: its runs would be main runs at a rate never chosen on validation."""
    from study.questions import SECOND_EDITION, own_comparison

    from .config import get_protocol
    from .grids import choice_path, protocol_of, read_choice

    if g.name not in SECOND_EDITION:
        return
    protocol_name = protocol_of(g, protocol, dataset)
    if dataset is not None and dataset != (g.dataset or get_protocol(protocol_name).dataset):
        raise ValueError(f"--dataset {dataset}: grid {g.name} is a question of the study's second edition, whose "
                         f"learning rates are chosen on validation of its protocol's own dataset ({protocol_name}: "
                         f"{get_protocol(protocol_name).dataset}); a question on another dataset needs a protocol of "
                         "its own (docs/study.md, section 2)")
    if not read_choice(Path(results), g, protocol_name):
        compare = "".join(f" --compare {v}" for v in own_comparison(g.name) or ())
        raise ValueError(f"grid {g.name} is a question of the study's second edition: its runs train only at the "
                         f"learning rates its search chose on validation, and {choice_path(Path(results), g)} holds "
                         f"no choice under {protocol_name}: run `run.py tune {g.name} --protocol {protocol_name}"
                         f"{compare}` first, or `run.py study --until-decided --protocol {protocol_name} --only "
                         f"{g.name}`, which does both (docs/study.md, section 2)")


def ablate_until_decided(g, *, protocol: str | None, dataset: str | None, vary: str, results: Path, runtime: Runtime,
                         options: RunOptions, max_seeds: int, margin: float, compared: list[str] | None = None) -> None:
    """Seeds in looks until each comparison with the reference is decided (docs/study.md); prints each verdict.
    ``compared``: the variants compared with the reference (default every other variant of the grid); alpha is
    split over them, and the grid's other variants get no main runs. The options were checked once, by ``ablate``:
    each look trains through ``run_grid_command`` directly."""
    from evidence.sequential import OPEN

    from .grids import compared_variants, protocol_of, restrict
    from .until_decided import SequentialDesign, final_states, looks

    design = SequentialDesign(grid=g.name, reference=g.reference, variants=tuple(compared_variants(g, compared)),
                              protocol=protocol_of(g, protocol, dataset), margin=margin, max_seeds=max_seeds)
    for look in looks(design, Path(results)):  # failed runs were listed; their variants stay open, then stop undecided
        if options.past_deadline():  # the time box ended: this look and later ones start nothing
            break
        run_grid_command(restrict(g, compared), protocol=protocol, seeds=look.seeds, dataset=dataset, vary=vary,
                         results=results, runtime=runtime, options=options,
                         only_variants=[g.reference, *look.open_variants],
                         spare_seeds=look.ahead)  # the next look's seeds fill idle workers
    states = final_states(design, Path(results), time_boxed=options.deadline is not None)
    for variant, state in states.items():
        label = state["label"] if state["label"] != OPEN else ("open for the next call: the time box (--minutes) "
                                                               "ended first, or a run of its look did not finish")
        console.print(f"{variant} vs {g.reference}: {label} (look {state['look']}, {state['n']} seeds)")


def run_grid_command(g, *, protocol: str | None, seeds: int, dataset: str | None, vary: str, results: Path,
                     runtime: Runtime, options: RunOptions, only_variants: list[str] | None = None,
                     spare_seeds: int = 0) -> bool:
    """Resolve the grid at its chosen learning rates, write grid.json, run what is not finished, print the outcome.
    ``only_variants``: train only these (a look of ``--until-decided``); ``spare_seeds``: seeds
    ``seeds..seeds+spare_seeds-1`` (the next look's) train on pool workers that would otherwise idle
    (``executors.StartOrder``), variant by variant in the order of ``only_variants`` where given."""
    from .executors import run_grid
    from .grids import choice_path, grid_json, protocol_of, read_choice, resolve
    from .store import RunStore, check_environment, check_writable, mixed_settings, write_json
    from .until_decided import in_look_order

    protocol_name = protocol_of(g, protocol, dataset)
    learning_rates = read_choice(Path(results), g, protocol_name)
    if learning_rates:
        console.print(f"learning rates chosen on validation ({choice_path(Path(results), g)}): "
                      + ", ".join(f"{v} {lr:g}" for v, lr in learning_rates.items()))
    configs, missing = resolve(g, protocol, seeds + spare_seeds, dataset,
                               choose("seed source", vary, ("all", "init", "data", "aug")), runtime.plugins,
                               choice=learning_rates)
    untuned = sorted({c.variant for c in configs if only_variants is None or c.variant in only_variants}
                     - set(learning_rates)) if learning_rates else []
    if untuned:  # a search of some networks only (tune --compare): the others have no rate chosen on validation
        raise ValueError(f"{choice_path(Path(results), g)} chooses learning rates under {protocol_name} for "
                         f"{', '.join(sorted(learning_rates))} only; {', '.join(untuned)} would train at a rate not "
                         f"chosen on validation: run `run.py tune {g.name}` with them, or ablate the searched networks "
                         f"only (`--until-decided --compare VARIANT`)")
    check_data(configs[0].dataset, runtime)
    for name, reason in missing.items():
        console.print(f"[yellow]left out[/] {name}: {reason}")
    grid_dir = check_writable(Path(results) / g.name)
    clashes = mixed_settings(grid_dir, configs)
    if clashes:
        shown = "; ".join(clashes[:3]) + (f"; and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        raise ValueError(f"{grid_dir} already holds finished runs of these variants and seeds that trained otherwise, "
                         f"which the analysis would mix with the runs asked for (move them away or use another "
                         f"--results folder): {shown}")
    check_environment(grid_dir, runtime)
    spare = [c for c in configs if c.seed >= seeds]
    configs = [c for c in configs if c.seed < seeds]
    write_json(grid_dir / "grid.json", grid_json(g, configs, missing))
    if only_variants is not None:  # a look of --until-decided: grid.json above still lists every variant
        configs, spare = [c for c in configs if c.variant in only_variants], in_look_order(spare, only_variants)
    interrupted = {c.run_id for c in configs if RunStore.of(results, c).status() == RunStatus.PARTIAL}
    outcome = run_grid(configs, runtime, results, options.executor, options.workers, options.address,
                       show_progress=True, title=f"{g.name} ({protocol_name})", spare=spare,
                       **options.time_box(results, protocol_name, runtime))
    print_results(outcome)
    boxed = {s: sum(r["status"] == s for r in outcome) for s in (RunStatus.TODO, RunStatus.PARTIAL)}
    failed = [r for r in outcome if r["status"] not in (RunStatus.OK, RunStatus.RUNNING, *boxed)]
    executed = [r for r in outcome if not r.get("skipped") and r["status"] not in boxed]
    copied = sum(bool(r.get("reused_from")) for r in executed)
    resumed = sum(r["run_id"] in interrupted and not r.get("reused_from") for r in executed)
    console.print(f"{len(outcome)} runs: {len(executed) - copied - resumed} trained now, {resumed} resumed from a "
                  f"checkpoint, {copied} copied from twin runs, {len(outcome) - len(executed) - sum(boxed.values())} "
                  f"finished before or running elsewhere, {len(failed)} failed"
                  + (f", {boxed[RunStatus.PARTIAL]} stopped at the deadline (they resume from their checkpoints), "
                     f"{boxed[RunStatus.TODO]} not started (they would not end in time)" if options.deadline else "")
                  + f"; results in {grid_dir}")
    first_left = next((r for r in outcome if r["status"] == RunStatus.TODO), None)
    if first_left:  # the time box's reason, whole (the table wraps it)
        console.print(f"{first_left['variant']} seed {first_left['seed']}: {first_left.get('note')}", soft_wrap=True)
    ahead = sum(RunStore.of(results, c).read_result() is not None for c in spare)
    if ahead:
        console.print(f"{ahead} runs of the next look's seeds finished on workers that would otherwise have idled")
    return not failed


def run_plan(*, protocol: str | None, results: Path, only: list[str] | None, options: RunOptions) -> list[str]:
    """Every grid of the study's plan with its seeds, in order (``run.py study``); the grids that failed.

    Writes RESULTS/study.json (the whole plan, also with ``only``). A grid that fails (failed runs,
    missing data) does not stop the others; a full or unwritable disk does.
    """
    from .config import get_protocol
    from .grids import STUDY, get_grid
    from .store import check_writable, write_json

    for name in only or ():
        choose("study grid", name, STUDY)
    if protocol is not None:
        get_protocol(protocol)  # an unknown protocol is an error before anything is written
    replace(options, compile=False, retry_failed=False, reuse=True).runtime()  # the same checks, before writing
    plan = {g: n for g, n in STUDY.items() if not only or g in only}
    root = check_writable(Path(results))
    write_json(root / "study.json", {"grids": [
        {"grid": g, "seeds": n, "protocol": protocol or get_grid(g).protocol} for g, n in STUDY.items()]})
    return [grid for grid, seeds in plan.items()
            if not _grid_step(grid, f"{grid}: {seeds} seeds",
                              lambda grid=grid, seeds=seeds: ablate(grid, protocol=protocol, seeds=seeds, dataset=None,
                                                                    vary="all", results=results, options=options),
                              options)]


def _grid_step(grid: str, title: str, step: Callable[[], bool], options: RunOptions) -> bool:
    """One grid of a study under a rule: ``step()``, or False with the error printed when the grid cannot run
    (e.g. its dataset is missing here). A full or unwritable disk stops the study: every later grid would fail.
    Once the time box (``--minutes``) has ended, the grid is not started (True: nothing failed)."""
    from evidence.files import ResultsWriteError

    console.rule(title)
    if options.past_deadline():
        console.print(f"{grid}: not started, the time box (--minutes) has ended")
        return True
    try:
        return step()
    except ResultsWriteError:
        raise
    except (ValueError, KeyError, OSError) as error:
        console.print(f"[red]error[/] in grid {grid}: {error}")
        return False


def run_second_edition(*, protocol: str | None, results: Path, only: list[str] | None, options: RunOptions,
                       max_seeds: int, margin: float) -> list[str]:
    """The second edition (``run.py study --until-decided``): per grid of ``study.questions.SECOND_EDITION``,
    in order, the learning-rate search on validation, then seeds in looks until each comparison is decided
    (docs/study.md). Resumable: finished runs are skipped. A grid that fails does not stop the others;
    returns the grids that failed. Writes no study.json (that is the first edition's fixed plan)."""
    from study import grids
    from study.questions import SECOND_EDITION, own_comparison

    from .config import get_protocol

    if protocol is None:
        raise ValueError("study --until-decided needs --protocol: the budget `run.py plan` recommends (docs/study.md)")
    get_protocol(protocol)
    for name in only or ():
        choose("second-edition grid", name, SECOND_EDITION)
    options.runtime()  # bad options are one error before any grid, not one per grid

    def tune_then_decide(grid: str) -> bool:  # no main run trains at a rate that was not chosen
        if (chosen := tune(grid, protocol=protocol, candidates=None, seeds=grids.TUNING_SEEDS,
                           results=results, options=options, compared=own_comparison(grid))) is not True:
            return chosen is None  # None: the search did not end within the time box, which is no failure
        return ablate(grid, protocol=protocol, seeds=1, dataset=None, vary="all", results=results, options=options,
                      until_decided=True, max_seeds=max_seeds, margin=margin, compared=own_comparison(grid))

    return [grid for grid in SECOND_EDITION if (not only or grid in only) and not _grid_step(
        grid, f"{grid}: learning rates on validation, then seeds until decided (at most {max_seeds})",
        lambda grid=grid: tune_then_decide(grid), options)]


def tune(grid: str, *, protocol: str | None, candidates: tuple[float, ...] | None, seeds: int, results: Path,
         options: RunOptions, compared: list[str] | None = None) -> bool | None:
    """Each variant's learning rate chosen on validation (``run.py tune``), written where ``ablate`` reads it.
    ``candidates``: the rates the search starts from (None: the grid's under the protocol,
    ``study.grids.search_candidates``). ``compared``: search only the reference and these variants (the networks
    ``ablate --until-decided --compare`` trains; default every variant of the grid).

    False (printed, with why) when a network got no rate: nothing is written then, and an older choice under the
    same protocol is removed (``tuning.settle``), so that no main run trains at a rate this search did not choose.
    None instead where the only reasons are search runs the time box (``--minutes``) left unfinished or that
    another process trains: the call ended by its box, which is no failure."""
    from study.grids import search_candidates

    from .executors import run_grid
    from .grids import get_grid, grid_json, protocol_of, restrict
    from .store import check_writable, write_json
    from .tuning import NOT_FINISHED, RUNNING_ELSEWHERE, search_bracketed

    runtime = options.runtime()
    g = restrict(get_grid(grid), compared)
    candidates = candidates if candidates is not None else search_candidates(g.name, protocol_of(g, protocol, None))

    def train(search, configs, missing):
        check_data(configs[0].dataset, runtime)
        write_json(check_writable(Path(results) / search.name) / "grid.json", grid_json(search, configs, missing))
        outcome = run_grid(configs, runtime, results, "local", options.workers, None, show_progress=True,
                           title=f"{search.name} ({configs[0].protocol.name})",
                           **options.time_box(results, configs[0].protocol.name, runtime))
        print_results(outcome)
        return outcome

    def widened(searched, wider):
        console.print(f"a best rate is an edge of {', '.join(f'{c:g}' for c in searched)}: every network is also "
                      f"searched at {', '.join(f'{c:g}' for c in wider if c not in searched)} (docs/study.md)")

    search, _, chosen, unchosen = search_bracketed(g, protocol, candidates, seeds, Path(results), train,
                                                   runtime.plugins, widened)
    grid_dir = Path(results) / search.name
    for variant, entry in chosen.items():
        console.print(f"{variant}: lr {entry['lr']:g} (mean validation top-1 by lr: "
                      + ", ".join(f"{lr} {v:.2f}" for lr, v in entry["val_top1"].items()) + ")")
    for variant, why in unchosen.items():  # nothing written: no main run trains at a rate that was not chosen
        console.print(f"[red]no learning rate chosen[/] for {variant}: {why} ({grid_dir}); no choice written")
    if not unchosen:
        console.print(f"wrote {grid_dir / 'chosen.json'}; run.py ablate {g.name} now trains at these rates"
                      + (f" (with --until-decided{''.join(f' --compare {v}' for v in compared)})" if compared else ""))
    if unchosen and options.deadline is not None and set(unchosen.values()) <= {NOT_FINISHED, RUNNING_ELSEWHERE}:
        return None
    return not unchosen


def grid_status(grid: str, *, protocol: str | None, seeds: int, dataset: str | None, results: Path, vary: str,
                plugins: tuple[str, ...], data_root: Path | None = None) -> None:
    """Print a grid's runs and their counts: ok / running / failed / partial (resumable) / to do."""
    from .grids import get_grid, protocol_of, resolve
    from .store import RunStore

    g = get_grid(grid)
    protocol = grid_protocol(g, RunOptions(data_root=data_root).runtime(), protocol, dataset)  # checks the path
    protocol_name = protocol_of(g, protocol, dataset)
    configs, _ = resolve(g, protocol, seeds, dataset, vary, plugins, results=Path(results))
    counts = dict.fromkeys(ENGINE_STATES, 0)
    table = Table("variant", "seed", "status", "run")
    for cfg in configs:
        state = RunStore.of(results, cfg).status()
        counts[state] += 1
        table.add_row(cfg.variant, str(cfg.seed), str(state), cfg.run_id)
    console.print(keep_names_whole(table))
    console.print(", ".join(f"{'to do' if k == RunStatus.TODO else k} {v}" for k, v in counts.items()))
    others = other_runs(Path(results) / g.name, {c.run_id for c in configs}, protocol_name)
    if others:
        console.print(f"not counted: {sum(others.values())} other runs in {Path(results) / g.name} ("
                      + ", ".join(f"{n} {why}" for why, n in others.items()) + "); they are never paired or pooled "
                      "with these", soft_wrap=True)


def other_runs(grid_dir: Path, run_ids: set[str], protocol: str) -> dict[str, int]:
    """Run folders of ``grid_dir`` that are not ``run_ids``, counted by why: an older engine version, another
    protocol, or other seeds or settings."""
    from .config import ENGINE_VERSION
    from .store import read_json

    counts: dict[str, int] = {}
    folders = sorted(d for d in grid_dir.iterdir() if d.is_dir() and d.name not in run_ids) if grid_dir.is_dir() else []
    for folder in folders:
        raw = read_json(folder / "config.json")
        if not isinstance(raw, dict):
            continue
        version = raw.get("engine_version", 1)
        run_protocol = raw.get("protocol", {}).get("name") if isinstance(raw.get("protocol"), dict) else None
        why = (f"of engine version {version}" if version != ENGINE_VERSION
               else f"under protocol {run_protocol}" if run_protocol != protocol else "of other seeds or settings")
        counts[why] = counts.get(why, 0) + 1
    return counts


def recount(results: Path, data_root: Path | None) -> bool:
    """Recount the MACs of runs counted by an older counter and print what changed; False if a run was left unchanged."""
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
    return len(rows) == changed


def train_one(model: str, *, kw: list[str] | None, protocol: str, seed: int, epochs: int | None, dataset: str | None,
              results: Path, options: RunOptions) -> bool:
    """Train one model under RESULTS/train/ (``run.py train``); False if the run failed."""
    from filelock import FileLock

    from .executors import run_grid
    from .grids import Grid, Variant, grid_json, resolve
    from .store import check_writable, read_json, write_json

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    runtime = options.runtime()
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
    print_results(outcome)
    return outcome[0]["status"] == RunStatus.OK


__all__ = ["RunOptions", "ablate", "check_data", "grid_protocol", "grid_status", "list_grids", "parse_kwargs",
           "print_results", "recount", "run_grid_command", "run_plan", "show_grid", "train_one", "tune"]
