"""Run a list of RunConfigs: in this process, in a process pool (cores split among workers), or on Ray."""
from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import nullcontext
from pathlib import Path
from typing import Literal

from filelock import Timeout
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from evidence.status import FINISHED, RunStatus

from .config import RunConfig, Runtime, choose, default_threads, threads_per_run
from .runner import execute, make_result, one_line
from .store import RunStore, check_writable, write_json

log = logging.getLogger(__name__)
Executor = Literal["local", "ray"]
RUN_FILES = ("config.json", "env.json", "metrics.jsonl", "result.json")
RAY_RETRIES = 2  # re-runs of a Ray task whose worker died


def execute_task(cfg: RunConfig, runtime: Runtime, results: Path) -> dict:
    """One run in a worker (pool process or Ray task): the result and the run's small files."""
    result = execute(cfg, runtime, results)
    run_dir = RunStore.of(results, cfg).dir
    return {"result": result, "files": {n: (run_dir / n).read_text() for n in RUN_FILES if (run_dir / n).exists()}}


class EpochEta(ProgressColumn):
    """Time left on a bar counting epochs, from the epochs finished in this call (shown from the first one).

    rich's own column waits for two updates inside its 30 s window, which epochs of a minute never give.
    Epochs done before the call (``task.fields["before"]``: finished or resumed runs) are not timed.
    """

    def render(self, task: Task) -> Text:
        done_now = task.completed - task.fields.get("before", 0)
        if task.total is None or task.elapsed is None or done_now <= 0:
            return Text("ETA -:--:--", style="progress.remaining")
        left = int(task.elapsed / done_now * max(0.0, task.total - task.completed))
        return Text(f"ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}", style="progress.remaining")


def _local(configs: list[RunConfig], runtime: Runtime, results: Path, progress: Progress | None,
           epoch_done: Callable[[RunConfig, int], None] = lambda cfg, epoch: None) -> Iterator[dict]:
    for cfg in configs:
        epoch_task = progress.add_task(f"  {cfg.variant} seed {cfg.seed}", total=cfg.protocol.epochs) if progress else None

        def on_step(step: int, steps: int, cfg=cfg, task=epoch_task) -> None:
            progress.update(task, description=f"  {cfg.variant} seed {cfg.seed} step {step}/{steps}")

        def on_epoch(metrics: dict, cfg=cfg, task=epoch_task) -> None:
            progress.update(task, completed=metrics["epoch"])
            epoch_done(cfg, metrics["epoch"])

        yield execute(cfg, runtime, results, on_step if progress else None, on_epoch if progress else None)
        if progress:
            progress.remove_task(epoch_task)


def _pool(configs: list[RunConfig], runtime: Runtime, results: Path, workers: int,
          spare: list[RunConfig]) -> Iterator[dict]:
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited torch thread pools
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for cfg, future in scheduled(pool, execute_task, configs, spare, workers, runtime, results):
            yield _collected(future.result, cfg, results)


def scheduled(pool: concurrent.futures.Executor, task: Callable, configs: list[RunConfig], spare: list[RunConfig], workers: int,
              *args) -> Iterator[tuple[RunConfig, Future]]:
    """``task(cfg, *args)`` for every config on ``pool`` (at most ``workers`` at once), in order; yields each
    ``(cfg, future)`` as it finishes. A worker that would idle while a run of ``configs`` still trains takes
    the next ``spare`` config instead (the next look's seeds of ``ablate --until-decided``): once every run
    of ``configs`` has finished no spare is started, and those started are awaited."""
    queue, spare = list(configs), list(spare)
    running: dict[Future, tuple[RunConfig, bool]] = {}  # future -> (config, is spare)
    while queue or running:
        while len(running) < workers and (queue or (spare and any(not s for _, s in running.values()))):
            cfg, is_spare = (queue.pop(0), False) if queue else (spare.pop(0), True)
            running[pool.submit(task, cfg, *args)] = (cfg, is_spare)
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            yield running.pop(future)[0], future


def _ray(configs: list[RunConfig], runtime: Runtime, results: Path, address: str | None) -> Iterator[dict]:
    import ray

    started = not ray.is_initialized()
    if started:  # no address: a local Ray instance with this machine's cores
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": default_threads()}))
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        # A task whose worker process dies (killed, OOM, lost node) is run again by Ray up to RAY_RETRIES
        # times; the retry resumes from the run's last checkpoint. Exceptions are not retried (execute
        # records them as failures itself).
        task = ray.remote(execute_task).options(num_cpus=runtime.threads, num_gpus=gpus, max_retries=RAY_RETRIES)
        pending = {task.remote(cfg, runtime, results): cfg for cfg in configs}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            # _collected calls the lambda before the loop moves on: `ref` is this iteration's.
            yield _collected(lambda: ray.get(ref), pending.pop(ref), results, record_loss=True)  # noqa: B023
    finally:
        if started:
            ray.shutdown()


def _collected(get: Callable[[], dict], cfg: RunConfig, results: Path, record_loss: bool = False) -> dict:
    """A worker's result; its files are written here too if the worker's disk is not ours (no shared FS).

    If the worker died (OOM kill, lost node) the run is "lost"; with ``record_loss`` (Ray, after its
    retries) it is recorded as failed with the reason, unless another process holds or finished it.
    """
    try:
        payload = get()
    except Exception as error:  # noqa: BLE001 -- the worker itself died, whatever Ray raises
        reason = one_line(error).splitlines()[0][:300]
        log.warning("run %s (%s seed %d) was lost: %s", cfg.run_id, cfg.variant, cfg.seed, reason)
        lost = {"run_id": cfg.run_id, "variant": cfg.variant, "seed": cfg.seed, "status": RunStatus.LOST, "reason": reason}
        return _record_lost(cfg, results, lost) if record_loss else lost
    run_dir = RunStore.of(results, cfg).dir
    if not (run_dir / "result.json").exists() and payload["result"]["status"] in FINISHED:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name, text in payload["files"].items():
            if name != "result.json":
                (run_dir / name).write_text(text)
        write_json(run_dir / "result.json", payload["result"])  # last: its presence means finished
    return payload["result"]


def _record_lost(cfg: RunConfig, results: Path, lost: dict) -> dict:
    """Record a run whose worker died (after the executor's retries) as failed; keep it resumable."""
    store = RunStore.of(results, cfg)
    try:
        store.dir.mkdir(parents=True, exist_ok=True)
        with store.lock.acquire():
            if store.read_result() is not None:  # a retry finished it after all
                return store.read_result()
            reason = f"worker died ({RAY_RETRIES} retries): {lost['reason']}"
            result = make_result(cfg, RunStatus.FAILED, reason, store.load_metrics(), None)
            store.start(cfg)
            store.write_result(result)
            return result
    except Timeout:  # someone else is running it
        return lost
    except OSError as error:  # cannot record it (e.g. no shared filesystem): it stays to do
        log.warning("could not record run %s as failed: %s", cfg.run_id, error)
        return lost


def run_grid(configs: list[RunConfig], runtime: Runtime, results: Path, executor: Executor = "local",
             workers: int = 1, address: str | None = None, show_progress: bool = False,
             title: str = "grid", spare: list[RunConfig] = ()) -> list[dict]:
    """Execute every run not finished yet; returns one result per config (finished ones as recorded).

    Each run uses ``runtime.threads`` torch threads; by default the idle cores (``threads_per_run``: all
    cores on a quiet machine) for the sequential executor, split evenly among ``workers`` processes for the
    pool, 1 per Ray task. Ray reserves that many CPUs per task, and a GPU if the cluster has any.

    ``spare``: runs a pool worker (``workers > 1``, local executor) takes rather than idle while a run of
    ``configs`` still trains (``scheduled``); their results are not returned. The sequential executor has no
    idle worker, and Ray places every task itself, so both leave spares to a later call.
    """
    choose("executor", executor, ("local", "ray"))
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a whole number >= 1, got {workers!r}")
    results = check_writable(results)
    default = 1 if executor == "ray" else threads_per_run(workers)  # a pool splits the idle cores
    runtime = runtime.model_copy(update={"threads": runtime.threads or default})

    by_id = {c.run_id: c for c in configs}
    done: dict[str, dict] = {}
    for cfg in configs:
        result = RunStore.of(results, cfg).read_result()
        if result is not None and (result["status"] == RunStatus.OK or not runtime.retry_failed):
            done[cfg.run_id] = {**result, "skipped": True}
    todo = [c for c in configs if c.run_id not in done]

    # The grid's bar counts epochs, so that its ETA shows from the first finished epoch (the sequential
    # executor reports each epoch; a pool or Ray reports whole runs).
    epochs_done = {c.run_id: c.protocol.epochs if c.run_id in done else len(RunStore.of(results, c).load_metrics())
                   for c in configs}
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} epochs"),
               TimeElapsedColumn(), EpochEta())
    with (Progress(*columns, transient=False) if show_progress else nullcontext()) as progress:
        before = sum(epochs_done.values())
        grid_task = (progress.add_task(f"{title} ({runtime.threads} thread{'s' * (runtime.threads != 1)} per run)",
                                       total=sum(c.protocol.epochs for c in configs), completed=before, before=before)
                     if progress else None)

        def epoch_done(cfg: RunConfig, epoch: int) -> None:
            if progress and cfg.run_id in epochs_done and epoch > epochs_done[cfg.run_id]:
                progress.advance(grid_task, epoch - epochs_done[cfg.run_id])
                epochs_done[cfg.run_id] = epoch
        if not todo:
            stream: Iterator[dict] = iter(())
        elif executor == "ray":
            stream = _ray(todo, runtime, results, address)
        elif workers > 1:
            unfinished = [c for c in spare if c.run_id not in by_id and RunStore.of(results, c).read_result() is None]
            stream = _pool(todo, runtime, results, workers, unfinished)
        else:
            stream = _local(todo, runtime, results, progress, epoch_done)
        for result in stream:
            if result["run_id"] not in by_id:  # a spare run
                continue
            done[result["run_id"]] = result
            epoch_done(by_id[result["run_id"]], by_id[result["run_id"]].protocol.epochs)  # a run ended: all its epochs
    return [done.get(run_id, {"run_id": run_id, "status": RunStatus.LOST}) for run_id in by_id]
