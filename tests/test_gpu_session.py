"""experiments/gpu_session.sh, the time-boxed GPU batch, with stand-ins for the GPU machine's tools and Python.

What the shell decides is checked here: how the runs share the GPU (CUDA MPS or processes), what
``gpu-next`` is asked, and which files are packed. The stand-ins record every call in ``calls.txt``.
"""
from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "experiments" / "gpu_session.sh"

PYTHON = r"""#!/bin/bash
echo "python3 $*" | tr '\n' ' ' >>"$STATE/calls.txt" && echo >>"$STATE/calls.txt"  # one line a call
case "$*" in
  "-m pip"*) [ -n "${CPU_STUDY:-}" ] && mkdir -p results/cpu-study && touch results/cpu-study/result.json; exit 0 ;;
  *sharing_status*)  # what the record holds for the card at STEP ($5; stacked at eager), and the faster way
    echo "$(cat "$STATE/measured-$5" 2>/dev/null) $(grep -ow stacked "$STATE/measured-eager" 2>/dev/null)" \
      "faster=$(cat "$STATE/faster" 2>/dev/null || echo unknown)" ;;
  *step_status*)  # the steps the record holds for the card shared as $5, and the fastest
    set -- $(cat "$STATE/steps-$5" 2>/dev/null) "fastest=$(cat "$STATE/fastest" 2>/dev/null || echo eager)"
    echo "$*" ;;
  *held_step*) cat "$STATE/held-$3" 2>/dev/null ;;  # the step grid $3's finished runs took
  *torch.ones*) exit "${CUDA_CHECK:-0}" ;;
  *"benchmarks.gpu import run"*)  # $4 sharing, $5 step
    mkdir -p benchmarks/records && echo '[]' >benchmarks/records/gpu.json
    [ "$4" = mps ] && [ "$5" = eager ] && echo "$MPS_VERDICT" >"$STATE/faster"
    [ "$5" = eager ] || echo "$5" >>"$STATE/steps-$4"
    [ "$5" != eager ] && [ -n "${STEP_VERDICT:-}" ] && echo "$STEP_VERDICT" >"$STATE/fastest"
    exit 0 ;;
  "run.py gpu-order"*) cat "$STATE/order" 2>/dev/null; echo "why it chose them" >&2; exit "${ORDER_FAILS:-0}" ;;
  "run.py gpu-next"*)
    [ "$3" = "${FAILS_EARLY:-}" ] && { echo "error: refused"; exit 2; }  # e.g. a folder of runs that would not pair
    folder=$3
    [ "$4" = --protocol ] && folder=$3-$5
    mkdir -p "results/$folder/done" "results/$folder/stopped" && echo '{}' >"results/$folder/grid.json"
    touch "results/$folder/done/result.json" "results/$folder/done/checkpoint.pt" "results/$folder/stopped/checkpoint.pt"
    case "$*" in *"--step eager "*) ;; *) echo kernel >"$TORCHINDUCTOR_CACHE_DIR/kernel.bin" ;; esac  # what compiling leaves
    [ -n "${PILOTS_DONE:-}" ] && echo "$PILOTS_DONE" | tr ' ' '\n' >"$STATE/order"  # the order once a pilot finished
    echo "folders: $folder" ;;
esac
"""
MPS_CONTROL = r"""#!/bin/bash
echo "mps $* $(cat 2>/dev/null </dev/stdin | tr -d '\n')" >>"$STATE/calls.txt"
[ "$1" = -d ] && exit "${MPS_START:-0}"
exit 0
"""


def batch(tmp_path: Path, jobs: tuple[str, ...] = ("pilot-x:5",), rc: int = 0, cached: bool = False,
          **env: str) -> tuple[str, list[str], Path]:
    """Run the batch on ``jobs`` in an empty folder (with ``cached``: but for a compiler's cache an earlier batch
    brought back), expecting exit code ``rc``; (its output, the calls made, OUT)."""
    stubs, work, out = tmp_path / "bin", tmp_path / "work", tmp_path / "out"
    for folder in (stubs, work, out):
        folder.mkdir()
    if cached:
        (work / ".carry" / "compile-cache").mkdir(parents=True)
        (work / ".carry" / "compile-cache" / "earlier.bin").write_text("kernel")
        os.utime(work / ".carry" / "compile-cache" / "earlier.bin", (1e9, 1e9))  # as tar keeps it: its own time
    for name, text in (("python3", PYTHON), ("nvidia-cuda-mps-control", MPS_CONTROL), ("nvidia-smi", "#!/bin/bash\n")):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    done = subprocess.run(["bash", str(SCRIPT), *jobs], cwd=work, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "STATE": str(tmp_path),
                               "OUT": str(out), "BENCH_SECONDS": "5", **env})
    assert done.returncode == rc, done.stderr
    return done.stdout, (tmp_path / "calls.txt").read_text().splitlines(), out


def gpu_next_call(calls: list[str]) -> str:
    (call,) = [c for c in calls if c.startswith("python3 run.py gpu-next")]
    return call


@pytest.mark.parametrize("verdict, sharing", [("mps", "mps"), ("processes", "processes")])
def test_mps_is_measured_where_the_record_lacks_it_and_kept_only_where_faster(tmp_path, verdict, sharing):
    said, calls, out = batch(tmp_path, MPS_VERDICT=verdict)
    assert "mps -d " in calls  # started for its measure
    assert f"--sharing {sharing} " in gpu_next_call(calls)
    assert (out / "sharing.txt").read_text() == f"the runs share the GPU as: {sharing} (record: {verdict})\n"
    first, *quits = [i for i, c in enumerate(calls) if c == "mps  quit"]
    assert first < calls.index("mps -d ")  # a daemon an earlier call left is shut down first
    if sharing == "mps":  # on for the runs, shut down once they are packed
        assert quits == [len(calls) - 1]
    else:  # shut down before the runs
        assert len(quits) == 1 and quits[0] < calls.index(gpu_next_call(calls))


def test_mps_that_does_not_start_leaves_the_runs_sharing_the_gpu_as_processes(tmp_path):
    said, calls, out = batch(tmp_path, MPS_START="1")
    assert "MPS did not start" in said and "--sharing processes " in gpu_next_call(calls)
    assert not any("benchmarks.gpu import run" in c and " mps " in c for c in calls)  # nothing measured under it
    (tmp_path / "check").mkdir()
    said, calls, out = batch(tmp_path / "check", CUDA_CHECK="1")
    assert "MPS did not start" in said and "--sharing processes " in gpu_next_call(calls)
    assert calls.count("mps  quit") == 2  # at the start, and the daemon up but failing the first CUDA call


def benches(tmp_path: Path, name: str, steps: str = "compiled cuda-graphs", **env: str) -> tuple[list[list[str]], list[str]]:
    """A batch on a card whose record holds every way of sharing (MPS the faster) and ``steps`` under MPS: (sharing,
    step, runs at once...) of each bench, and the calls."""
    (tmp_path / name).mkdir()
    (tmp_path / name / "faster").write_text("mps\n")
    (tmp_path / name / "measured-eager").write_text("processes mps stacked\n")  # the record, for this card
    (tmp_path / name / "steps-mps").write_text(steps)
    said, calls, out = batch(tmp_path / name, MPS_VERDICT="mps", **env)
    assert "--sharing mps " in gpu_next_call(calls) and calls.count("mps -d ") == 1
    return [c.split(" dyclotnet_050 ")[1].split() for c in calls if "benchmarks.gpu import run" in c], calls


def test_a_card_the_record_measured_is_not_benched_again_and_its_choice_is_used(tmp_path):
    assert benches(tmp_path, "known")[0] == []  # the window's minutes go to runs
    assert benches(tmp_path, "without-bench", BENCH_SECONDS="0")[0] == []  # the recorded choice holds without a bench
    assert benches(tmp_path, "again", BENCH_AGAIN="1", TOTAL_MINUTES="20")[0] == [  # every way, every step under the faster
        ["processes", "eager", "8"], ["stacked", "eager", "8"], ["mps", "eager", "8"], ["mps", "compiled", "1", "8"],
        ["mps", "cuda-graphs", "1", "8"]]


def test_the_steps_are_measured_in_a_call_that_measured_no_way_of_sharing_and_the_fastest_is_taken(tmp_path):
    said, calls, out = batch(tmp_path, MPS_VERDICT="mps")  # a card the record lacks: the ways of sharing only
    assert not any(" compiled " in c or " cuda-graphs " in c for c in calls if "benchmarks.gpu import run" in c)
    assert "--step eager " in gpu_next_call(calls)
    assert (out / "step.txt").read_text() == "the runs' step, where a question has none yet: eager (record: fastest=eager)\n"
    # the next call: one step, alone (its compiling fills the cache) then WORKERS at once; the one after: the next
    measured, calls = benches(tmp_path, "next", steps="", STEP_VERDICT="compiled", TOTAL_MINUTES="9")
    assert measured == [["mps", "compiled", "1", "8"]] and "--step compiled " in gpu_next_call(calls)
    measured, calls = benches(tmp_path, "after", steps="compiled", STEP_VERDICT="cuda-graphs", TOTAL_MINUTES="9")
    assert measured == [["mps", "cuda-graphs", "1", "8"]] and "--step cuda-graphs " in gpu_next_call(calls)
    # none where the runs would keep under 3 minutes after it (9 minutes: 540 - 60 - 240 s leaves them 240)
    assert benches(tmp_path, "short", steps="", TOTAL_MINUTES="7")[0] == []
    assert benches(tmp_path, "skipped", steps="", STEP_BENCH_SECONDS="0", TOTAL_MINUTES="9")[0] == []
    # a step named is not chosen, so not measured
    assert benches(tmp_path, "named", steps="", STEP="compiled", TOTAL_MINUTES="9")[0] == []


def test_a_question_keeps_the_step_its_finished_runs_took(tmp_path):
    (tmp_path / "fastest").write_text("cuda-graphs\n")
    (tmp_path / "held-pilot-x").write_text("compiled\n")
    said, calls, out = batch(tmp_path, ("pilot-x:2", "other:2"), MPS_START="1")
    steps = {c.split()[3]: c.split(" --step ")[1].split()[0] for c in calls if c.startswith("python3 run.py gpu-next")}
    assert steps == {"pilot-x": "compiled", "other": "cuda-graphs"}


@pytest.mark.parametrize("step", ["graphs", "1"])
def test_a_step_that_is_not_one_is_refused_before_anything_starts(tmp_path, step):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    done = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "OUT": str(tmp_path), "STEP": step})
    assert done.returncode == 2 and f"STEP={step} is not eager, compiled, cuda-graphs or fastest" in done.stderr


def test_stacked_runs_are_measured_once_per_card_before_mps_starts_and_never_chosen(tmp_path):
    said, calls, out = batch(tmp_path, MPS_VERDICT="processes")
    (stacked,) = [i for i, c in enumerate(calls) if "benchmarks.gpu import run" in c and " stacked " in c]
    assert stacked < calls.index("mps -d ") and "--sharing processes " in gpu_next_call(calls)
    (tmp_path / "off").mkdir()
    said, calls, out = batch(tmp_path / "off", STACKED_BENCH_SECONDS="0")
    assert not any(" stacked " in c for c in calls)


def test_the_folders_gpu_next_names_are_packed_with_the_checkpoints_of_stopped_runs_only(tmp_path):
    said, calls, out = batch(tmp_path, MPS_START="1")
    with tarfile.open(out / "runs.tar.gz") as packed:
        names = sorted(packed.getnames())
    assert names == ["pilot-x", "pilot-x/done", "pilot-x/done/result.json", "pilot-x/grid.json", "pilot-x/stopped",
                     "pilot-x/stopped/checkpoint.pt"]


def test_with_no_grid_named_it_trains_what_gpu_order_names_and_asks_again_after_each(tmp_path):
    (tmp_path / "order").write_text("pilot-gpu-15@gpu-15\npilot-gpu@gpu\n")
    said, calls, out = batch(tmp_path, (), MPS_START="1", PILOTS_DONE="paper-claim@gpu-15 baselines@gpu-15")
    trained = [c.split(" --step ")[0].removeprefix("python3 run.py gpu-next ") for c in calls if "gpu-next" in c]
    # the first pilot; its runs end the pilot, so the order names the questions under the budget chosen from it
    assert trained == ["pilot-gpu-15 --protocol gpu-15", "paper-claim --protocol gpu-15", "baselines --protocol gpu-15"]
    assert sum("run.py gpu-order" in c for c in calls) == 4  # before each grid, and once more to find nothing new
    with tarfile.open(out / "runs.tar.gz") as packed:  # every grid's folders in one file
        assert {n.split("/")[0] for n in packed.getnames()} == {"pilot-gpu-15-gpu-15", "paper-claim-gpu-15",
                                                               "baselines-gpu-15"}
    assert {"baselines_gpu-15.log", "paper-claim_gpu-15.log", "pilot-gpu-15_gpu-15.log"} <= {
        p.name for p in out.glob("*.log")} and not list(out.glob("*.part"))
    minutes = float(next(c for c in calls if "gpu-next" in c).split(" --minutes ")[1].split()[0])
    assert 7.5 < minutes <= 8  # TOTAL_MINUTES 9, less the minute kept and the seconds the call took so far


def test_grids_named_are_trained_in_order_and_nothing_else(tmp_path):
    (tmp_path / "order").write_text("paper-claim@gpu-15\n")
    said, calls, out = batch(tmp_path, ("pilot-x:2", "other@gpu-15:3"), MPS_START="1")
    trained = [c.split(" --step ")[0].removeprefix("python3 run.py gpu-next ") for c in calls if "gpu-next" in c]
    assert trained == ["pilot-x", "other --protocol gpu-15"] and not any("gpu-order" in c for c in calls)
    assert " --minutes 2 " in next(c for c in calls if "gpu-next pilot-x" in c)


def test_an_order_that_cannot_be_read_leaves_the_gpu_training_the_budget_pilots(tmp_path):
    said, calls, out = batch(tmp_path, (), MPS_START="1", ORDER_FAILS="1")
    trained = [c.split(" --step ")[0].removeprefix("python3 run.py gpu-next ") for c in calls if "gpu-next" in c]
    assert trained == ["pilot-gpu-15 --protocol gpu-15", "pilot-gpu --protocol gpu"]
    assert "gpu-order failed" in (out / "order.log").read_text()


def test_a_compiled_batch_brings_its_compiler_cache_back(tmp_path):
    said, calls, out = batch(tmp_path, MPS_START="1", STEP="compiled")
    assert " --step compiled " in gpu_next_call(calls)
    with tarfile.open(out / "compile-cache.tar.gz") as packed:
        assert "compile-cache/kernel.bin" in packed.getnames()
    (tmp_path / "plain").mkdir()  # a cache brought in, nothing compiled: it does not come back again
    said, calls, out = batch(tmp_path / "plain", MPS_START="1", STEP="eager", cached=True)
    assert " --step eager " in gpu_next_call(calls) and not (out / "compile-cache.tar.gz").exists()
    (tmp_path / "again").mkdir()  # compiled beside it: the whole cache comes back
    said, calls, out = batch(tmp_path / "again", MPS_START="1", STEP="compiled", cached=True)
    with tarfile.open(out / "compile-cache.tar.gz") as packed:
        assert {"compile-cache/kernel.bin", "compile-cache/earlier.bin"} <= set(packed.getnames())


def test_a_grid_whose_gpu_next_fails_before_naming_folders_packs_nothing_of_others(tmp_path):
    # the checkout's results hold another folder (the CPU study's); the first grid fails (exit 1) before naming any
    said, calls, out = batch(tmp_path, ("pilot-x:2", "other:2"), rc=1, MPS_START="1", FAILS_EARLY="pilot-x",
                             CPU_STUDY="1")
    with tarfile.open(out / "runs.tar.gz") as packed:
        assert {n.split("/")[0] for n in packed.getnames()} == {"other"}


@pytest.mark.parametrize("job", ["pilot-x", "pilot-x:", "pilot-x:0", "pilot-x:soon"])
def test_a_job_without_its_minutes_is_refused_before_anything_starts(tmp_path, job):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    done = subprocess.run(["bash", str(SCRIPT), job], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "OUT": str(tmp_path)})
    assert done.returncode == 2 and "is not GRID[@PROTOCOL]:MINUTES" in done.stderr
