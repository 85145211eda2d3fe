"""Run a list of RunConfigs: in this process, in a pool of worker processes that train run after run (CPU cores
split among them, or several runs sharing one GPU), or on Ray; optionally within a deadline (a time-boxed GPU
batch)."""
from __future__ import annotations

import logging
import multiprocessing
import queue
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Literal

from filelock import Timeout
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from evidence.files import atomic_write
from evidence.status import FINISHED, RunStatus

from .config import RunConfig, Runtime, choose, default_threads, threads_per_run
from .runner import execute_until, make_result, one_line, run_row
from .store import RunStore, check_writable, on_device

log = logging.getLogger(__name__)
Executor = Literal["local", "ray"]
RUN_FILES = ("config.json", "env.json", "metrics.jsonl", "result.json")
RAY_RETRIES = 2  # re-runs of a Ray task whose worker died
JOIN_TIMEOUT_S = 60.0  # a pool worker still busy this long after the deadline is stopped (its run resumes later)


def execute_task(cfg: RunConfig, runtime: Runtime, results: Path, stop_at: float | None = None) -> dict:
    """One run in a Ray task: the result and the run's small files (the task's disk may not be ours)."""
    result = execute_until(cfg, runtime, results, stop_at)
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


def _local(order: StartOrder, runtime: Runtime, results: Path, progress: Progress | None, stop_at: float | None,
           clock: Callable[[], float], epoch_done: Callable[[RunConfig, int], None]) -> Iterator[tuple[RunConfig, dict]]:
    while (started := order.next(False)) is not None:
        cfg = started[0]
        epoch_task = progress.add_task(f"  {cfg.variant} seed {cfg.seed}", total=cfg.protocol.epochs) if progress else None

        def on_step(step: int, steps: int, cfg=cfg, task=epoch_task) -> None:
            progress.update(task, description=f"  {cfg.variant} seed {cfg.seed} step {step}/{steps}")

        def on_epoch(metrics: dict, cfg=cfg, task=epoch_task) -> None:
            if progress:
                progress.update(task, completed=metrics["epoch"])
            epoch_done(cfg, metrics["epoch"])

        yield cfg, execute_until(cfg, runtime, results, stop_at, clock, on_step if progress else None, on_epoch)
        if progress:
            progress.remove_task(epoch_task)


class StartOrder:
    """The order in which a pool starts runs.

    The grid's ``configs`` first, in order; then a ``spare`` run, only while a run of ``configs`` still trains (the
    next look's seeds of ``ablate --until-decided``, rather than an idle worker). ``may_start(cfg) -> (ok, why)``
    (a time box: ``--minutes``) passes over a run of ``configs`` that may not start, never to try it again in this
    call (time only runs out), and the order goes on: a later run that fits, such as one that copies its twin, still
    starts. ``not_started`` says why for each run passed over (run id -> row of status ``todo``). Once one is passed
    over no spare starts (this look cannot end in this call), and a spare that may not start ends the spares (they
    have no row: a later call trains them).
    """

    def __init__(self, configs: list[RunConfig], spare: list[RunConfig] = (),
                 may_start: Callable[[RunConfig], tuple[bool, str]] | None = None) -> None:
        self.configs, self.spare, self.may_start = list(configs), list(spare), may_start
        self.not_started: dict[str, dict] = {}

    def again(self, cfg: RunConfig, spare: bool) -> None:
        """Start ``cfg`` again, first (a run that ran out of device memory beside others)."""
        (self.spare if spare else self.configs).insert(0, cfg)
        self.not_started = {k: v for k, v in self.not_started.items() if k != cfg.run_id}

    def next(self, grid_run_training: bool) -> tuple[RunConfig, bool] | None:
        """The next run to start and whether it is a spare, or None (nothing to start now)."""
        while self.configs:
            cfg = self.configs.pop(0)
            ok, why = self.may_start(cfg) if self.may_start else (True, "")
            if ok:
                return cfg, False
            self.not_started[cfg.run_id] = run_row(cfg, RunStatus.TODO, f"not started: would not finish in time ({why})")
            self.spare = []
        if not (self.spare and grid_run_training):
            return None
        if self.may_start and not self.may_start(self.spare[0])[0]:
            self.spare = []
            return None
        return self.spare.pop(0), True


def _worker(inbox, outbox, runtime: Runtime, results: Path, stop_at: float | None) -> None:
    """A spawned pool worker: it trains the runs it is handed, one after another, until it gets None. Each comes with
    the runs at once it starts among (``runtime.runs_sharing_device`` as its env.json records it; fewer once a
    worker has retired)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    while (handed := inbox.get()) is not None:
        cfg, at_once = handed
        try:
            outbox.put(execute_until(cfg, runtime.model_copy(update={"runs_sharing_device": at_once}), results,
                                     stop_at))
        except Exception as error:  # noqa: BLE001 -- e.g. the disk: reported, the run resumes next time
            outbox.put(run_row(cfg, RunStatus.LOST, one_line(error)))


def _pool(order: StartOrder, runtime: Runtime, results: Path, workers: int, stop_at: float | None,
          clock: Callable[[], float]) -> Iterator[tuple[RunConfig, dict]]:
    """Up to ``workers`` spawned processes (CPU cores split among them, or sharing one GPU), each started when a run
    is there for it and training run after run; each takes the next run of ``order`` when it is free. Yields
    ``(config, row)`` as each run ends. A worker that dies (out of memory, killed) loses its run (status ``lost``:
    it resumes next time) and the others go on; a run out of device memory retires its worker (one run fewer at
    once) and starts again on another, unless it was the last worker; with ``stop_at``, runs still busy
    ``JOIN_TIMEOUT_S`` after it are stopped (status ``partial``). Once every run of ``order``'s list has ended, the
    spare runs still training are stopped (killed: they resume from their last checkpoint in a later call), so that
    no worker idles waiting for them and the caller goes on at once."""
    context = multiprocessing.get_context("spawn")  # fresh interpreters: CUDA cannot be forked, no inherited threads
    outbox, pool = context.Queue(), []
    shared = on_device(runtime).device.startswith("cuda") or runtime.runs_sharing_device > 1

    def sharing_now() -> int:
        """The runs at once a run starting now shares its device with, as its env.json records it: on a GPU (or where
        the runtime says runs share one) the pool's workers less those retired or dead (never replaced); else 1."""
        gone = sum(w["retired"] or not w["process"].is_alive() for w in pool)
        return max(1, workers - gone) if shared else 1

    def free_worker() -> dict | None:
        idle = next((w for w in pool if w["run"] is None and not w["retired"] and w["process"].is_alive()), None)
        if idle is None and len(pool) < workers:  # a retired or dead worker keeps its place: never replaced
            inbox = context.Queue()
            process = context.Process(target=_worker, args=(inbox, outbox, runtime, results, stop_at), daemon=True)
            process.start()
            pool.append(idle := {"inbox": inbox, "process": process, "run": None, "retired": False})
        return idle

    try:
        while True:
            while (idle := free_worker()) is not None:
                if (started := order.next(any(w["run"] and not w["run"][1] for w in pool))) is None:
                    break
                idle["run"] = started
                idle["inbox"].put((started[0], sharing_now()))
            if not (busy := [w for w in pool if w["run"] is not None]):
                return
            if not order.configs and all(w["run"][1] for w in busy):  # only spares train: the grid's runs are done
                for worker in busy:  # stopped now, not awaited beside idle workers; each resumes from its checkpoint
                    worker["process"].kill()
                return
            try:
                row = outbox.get(timeout=1.0)
            except queue.Empty:
                for worker in busy:
                    cfg = worker["run"][0]
                    if not worker["process"].is_alive():
                        worker["run"] = None
                        yield cfg, run_row(cfg, RunStatus.LOST, f"worker died (exit code {worker['process'].exitcode})")
                    elif stop_at is not None and clock() > stop_at + JOIN_TIMEOUT_S:
                        worker["run"] = None
                        worker["process"].kill()  # its run's lock goes with it
                        yield cfg, run_row(cfg, RunStatus.PARTIAL, "still busy long after the deadline: stopped; resumes "
                                                                "from its last checkpoint next time")
                continue
            worker = next((w for w in busy if w["run"][0].run_id == row["run_id"]), None)
            if worker is None:  # a run already given up on above
                continue
            (cfg, spare), worker["run"] = worker["run"], None
            others = sum(w["process"].is_alive() and not w["retired"] for w in pool) - 1
            if row.get("out_of_memory") and others > 0:  # one run fewer at once from now on; this one starts again
                worker["retired"] = True
                worker["inbox"].put(None)
                log.warning("run %s ran out of device memory: %d runs at once from now on", cfg.run_id, others)
                order.again(cfg, spare)
            else:
                yield cfg, row
    finally:
        for worker in pool:
            if worker["process"].is_alive():
                worker["inbox"].put(None)
        ends = time.monotonic() + 10
        for worker in pool:
            worker["process"].join(timeout=max(0.0, ends - time.monotonic()))
            if worker["process"].is_alive():
                worker["process"].kill()
                worker["process"].join(timeout=10)


def ray_placement(runtime: Runtime, cluster_gpus: float, runs_per_gpu: int) -> tuple[Runtime, dict]:
    """What one run's Ray task reserves, and the runtime it records: ``runtime.threads`` CPUs and, where the
    cluster has GPUs and the run may use one (device ``auto`` or ``cuda``), ``1 / runs_per_gpu`` of a GPU
    (``--workers K`` on Ray: K runs share each GPU; ``runs_sharing_device`` records K, so that a run's
    training seconds over K are its share of the device's time)."""
    if cluster_gpus < 1 or runtime.device == "cpu":
        return runtime, {"num_cpus": runtime.threads, "num_gpus": 0}
    return (runtime.model_copy(update={"runs_sharing_device": runs_per_gpu}),
            {"num_cpus": runtime.threads, "num_gpus": 1 / runs_per_gpu})


def _ray(configs: list[RunConfig], runtime: Runtime, results: Path, address: str | None, runs_per_gpu: int,
         stop_at: float | None) -> Iterator[tuple[RunConfig, dict]]:
    import ray

    started = not ray.is_initialized()
    if started:  # no address: a local Ray instance with this machine's cores
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": default_threads()}))
    try:
        runtime, placement = ray_placement(runtime, ray.cluster_resources().get("GPU", 0), runs_per_gpu)
        # A task whose worker process dies (killed, OOM, lost node) is run again by Ray up to RAY_RETRIES
        # times; the retry resumes from the run's last checkpoint. Exceptions are not retried (execute
        # records them as failures itself).
        task = ray.remote(execute_task).options(**placement, max_retries=RAY_RETRIES)
        pending = {task.remote(cfg, runtime, results, stop_at): cfg for cfg in configs}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            cfg = pending.pop(ref)
            yield cfg, _collected(lambda: ray.get(ref), cfg, results)  # noqa: B023 -- called before the loop moves on
    finally:
        if started:
            ray.shutdown()


def _collected(get: Callable[[], dict], cfg: RunConfig, results: Path) -> dict:
    """A Ray task's result; its files are written here too if the task's disk is not ours (no shared FS).

    If the task's worker died (OOM kill, lost node) after Ray's retries, the run is recorded as failed with the
    reason, unless another process holds or finished it.
    """
    try:
        payload = get()
    except Exception as error:  # noqa: BLE001 -- the worker itself died, whatever Ray raises
        reason = one_line(error).splitlines()[0][:300]
        log.warning("run %s (%s seed %d) was lost: %s", cfg.run_id, cfg.variant, cfg.seed, reason)
        lost = {**run_row(cfg, RunStatus.LOST, reason), "reason": reason}
        return _record_lost(cfg, results, lost)
    run_dir = RunStore.of(results, cfg).dir
    if not (run_dir / "result.json").exists() and payload["result"]["status"] in FINISHED:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name, text in payload["files"].items():
            if name != "result.json":
                (run_dir / name).write_text(text)
        atomic_write(run_dir / "result.json", payload["files"]["result.json"])  # last: its presence means finished
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
            return {**result, "note": reason}
    except Timeout:  # someone else is running it
        return lost
    except OSError as error:  # cannot record it (e.g. no shared filesystem): it stays to do
        log.warning("could not record run %s as failed: %s", cfg.run_id, error)
        return lost


def run_grid(configs: list[RunConfig], runtime: Runtime, results: Path, executor: Executor = "local",
             workers: int = 1, address: str | None = None, show_progress: bool = False,
             title: str = "grid", spare: list[RunConfig] = (), stop_at: float | None = None,
             may_start: Callable[[RunConfig], tuple[bool, str]] | None = None, clock: Callable[[], float] = time.time,
             on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Execute every run not finished yet, in order; returns one result per config (finished ones as recorded).

    Each run uses ``runtime.threads`` torch threads; by default the idle cores (``threads_per_run``: all
    cores on a quiet machine) for the sequential executor, split evenly among ``workers`` processes for the
    pool, 1 per Ray task. Ray reserves that many CPUs per task and, on a cluster with GPUs, ``1 / workers`` of a
    GPU (``ray_placement``: ``workers`` runs share each GPU).

    ``spare``: runs a pool worker (``workers > 1``, local executor) takes rather than idle while a run of
    ``configs`` still trains (``StartOrder``); their results are not returned. The sequential executor has no
    idle worker, and Ray places every task itself, so both leave spares to a later call.

    A time box (``--minutes``, ``experiments.timebox``): a run still training at ``stop_at`` (a ``clock()`` time)
    stops at its next step (status ``partial``: it resumes from its last checkpoint next time); ``may_start(cfg) ->
    (ok, why)`` passes over each run that may not start (status ``todo``, ``note`` says why; local
    executor only).
    ``on_result`` sees each result of a run that ended in this call, as it ends.
    """
    choose("executor", executor, ("local", "ray"))
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a whole number >= 1, got {workers!r}")
    if executor == "ray" and may_start is not None:
        raise ValueError("a time box that decides which runs start (may_start) needs the local executor; Ray "
                         "places every task itself")
    results = check_writable(results)
    default = 1 if executor == "ray" else threads_per_run(workers)  # a pool splits the idle cores
    runtime = runtime.model_copy(update={"threads": runtime.threads or default})

    by_id = {c.run_id: c for c in configs}
    done: dict[str, dict] = {}
    for cfg in configs:
        result = RunStore.of(results, cfg).settled_result(runtime.retry_failed)
        if result is not None:
            done[cfg.run_id] = {**result, "skipped": True, "note": "finished before"}
    order = StartOrder([c for c in configs if c.run_id not in done], [  # a spare (the next look's) starts only
        # where it has no result: a failed one waits for its own look, which --retry-failed retrains
        c for c in spare if c.run_id not in by_id and RunStore.of(results, c).read_result() is None], may_start)

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
        if executor == "ray":
            stream = _ray(order.configs, runtime, results, address, workers, stop_at) if order.configs else iter(())
        elif workers > 1:
            stream = _pool(order, runtime, results, workers, stop_at, clock)
        else:
            stream = _local(order, runtime, results, progress, stop_at, clock, epoch_done)
        for cfg, result in stream:
            if cfg.run_id not in by_id:  # a spare run
                continue
            done[cfg.run_id] = result
            if result["status"] in FINISHED:
                epoch_done(cfg, cfg.protocol.epochs)  # a run ended: all its epochs
            if on_result:
                on_result(result)
    done.update(order.not_started)
    return [done.get(run_id, {"run_id": run_id, "status": RunStatus.LOST}) for run_id in by_id]
