#!/usr/bin/env bash
# A time-boxed batch of the study's next runs on an offline GPU machine (docs/study.md, section 5).
#   before:        make gpu-carry       (the data and the wheels the GPU image lacks, into the git-ignored .carry/)
#   on the GPU:    a copy of this checkout with .carry/ and, where an earlier batch brought back stopped runs, their
#                  grid folders; OUT=<folder to copy back> `bash experiments/gpu_session.sh [GRID[@PROTOCOL]:MINUTES ...]`
#   after:         tar xzf OUT/runs.tar.gz -C results, cp OUT/gpu.json benchmarks/records/, then commit as
#                  docs/study.md says
# With no arguments the batch trains what `run.py gpu-order` names, in its order, for TOTAL_MINUTES (default 9): the
# GPU's budget pilots until they are finished, then the GPU's questions not yet decided under the budget `run.py plan`
# recommends. The order is asked again after each grid, so a pilot that finishes lets the questions start in the same
# call. Per grid: `run.py gpu-next GRID [--protocol PROTOCOL] --until-decided` (a question's learning-rate search
# first, then seeds in looks) within MINUTES; the folders it names, every grid's, come back in one file,
# $OUT/runs.tar.gz (checkpoints only of runs not finished), and its output as $OUT/<grid>[_<protocol>].log. WORKERS
# (default 8) runs share the GPU. A run starts while its next epoch fits (--finish-later): what the deadline stops
# comes back with its checkpoint and resumes in the next call. TOTAL_MINUTES (default with grids named: the sum of their minutes plus
# one) caps the whole call, its last minute kept for stopping and packing: a grid decided early leaves its time to
# the next; one that would get under a minute is not started.
set -uo pipefail
out=${OUT:?OUT is not set: name the folder whose files are copied back}
BENCH_MODELS=${BENCH_MODELS:-dyclotnet_050}
for job in "$@"; do  # GRID[@PROTOCOL]:MINUTES, checked before anything starts
  awk -v m="${job##*:}" 'BEGIN { exit !(m + 0 > 0) }' && [ "$job" != "${job%:*}" ] \
    || { echo "$0: '$job' is not GRID[@PROTOCOL]:MINUTES (MINUTES a number > 0)" >&2; exit 2; }
done
STEP=${STEP:-fastest}
case "$STEP" in eager|compiled|cuda-graphs|fastest) ;;
  *) echo "$0: STEP=$STEP is not eager, compiled, cuda-graphs or fastest" >&2; exit 2 ;; esac
total=1
for job in "$@"; do total=$(awk -v a="$total" -v b="${job##*:}" 'BEGIN { print a + b }'); done
[ $# -gt 0 ] || total=9
end=$(awk -v m="${TOTAL_MINUTES:-$total}" 'BEGIN { printf "%d", 60 * m }')  # seconds from the start of this call
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .carry/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >"$out/nvidia-smi.csv" 2>&1
# A short bench, where the record lacks this card's measure (its time comes out of the grids'): BENCH_MODELS (default
# DyClotNet-0.5) WORKERS at once (BENCH_ALONE=1: also alone), 20 timed steps each after 20 untimed, added to
# benchmarks/records/gpu.json, which comes back as $out/gpu.json (commit it as benchmarks/records/gpu.json). A card
# the record already measured (first of BENCH_MODELS, WORKERS at once, the eager step) is not measured again, so that its
# windows' minutes go to runs (BENCH_AGAIN=1 measures it again). BENCH_SECONDS (default 120) bounds it, 0 skips it
# (and the measures below); a bench that fails or overruns stops nothing.
# STEP names the step the runs take (experiments.config.STEPS): eager, compiled (torch.compile), cuda-graphs (compiled,
# replayed as CUDA graphs, with the fused SGD), or fastest (the default): the step the record measured fastest on this
# card, shared as the runs share it (eager until another is measured; see below). The compiler's cache is kept in
# .carry/compile-cache: where this call compiled anything, it comes back as $OUT/compile-cache.tar.gz; unpacked into
# .carry/ it spares the next batch the compiling. A question whose GPU folders hold finished or started runs keeps the
# step they took (experiments.gpu.held_step): runs of another step would never pair with them.
mkdir -p .carry/compile-cache && export TORCHINDUCTOR_CACHE_DIR=$PWD/.carry/compile-cache
since=$(mktemp)  # the cache comes back only where this call compiled something (a file newer than this)
bench() {  # bench SECONDS SHARING STEP RUNS_AT_ONCE...
  timeout -k 10 "$1" python3 -c 'import sys; from benchmarks.gpu import run
run(models=tuple(sys.argv[1].split(",")), runs_at_once=tuple(map(int, sys.argv[4:])), quick=True, sharing=sys.argv[2],
    step=sys.argv[3])' "$BENCH_MODELS" "$2" "$3" "${@:4}" >>"$out/bench.log" 2>&1 \
      || echo "bench ($2, $3): exit $? (see bench.log)"
  cp benchmarks/records/gpu.json "$out/gpu.json" 2>/dev/null
  benched=1
}
mps_off() { echo quit | timeout 30 nvidia-cuda-mps-control >>"$out/mps.log" 2>&1; }
mps_off  # a daemon an earlier call left would skew the measures and the runs
# What the record holds for this card (the first of BENCH_MODELS, WORKERS at once, the eager step): the ways of sharing
# it measured (or tried and failed: not tried again), and the faster of the engine's two, in one line
# ("processes stacked faster=unknown"). BENCH_AGAIN=1 measures every way, and every step, again.
status() { timeout 90 python3 -c 'import sys, torch; from benchmarks.gpu import RECORD, sharing_status
print(sharing_status(RECORD, torch.cuda.get_device_name(0), sys.argv[1], int(sys.argv[2]), sys.argv[3]))' \
    "${BENCH_MODELS%%,*}" "${WORKERS:-8}" eager 2>/dev/null || echo "faster=unknown"; }
known() { [ "${BENCH_AGAIN:-0}" != 1 ] && case " $record " in *" $1 "*) true ;; *) false ;; esac; }
benching=$([ "${BENCH_SECONDS:-120}" -gt 0 ] && echo 1 || echo 0) benched=0
record=$(status)
[ "$benching" = 1 ] && ! known processes \
  && bench "${BENCH_SECONDS:-120}" processes eager "${WORKERS:-8}" $([ "${BENCH_ALONE:-0}" = 1 ] && echo 1)
# Stacked runs (WORKERS runs in one process, torch.func; a speed measure only, the engine does not train that way
# yet), where the record lacks them for this card (STACKED_BENCH_SECONDS, default 60; 0 skips them).
[ "$benching" = 1 ] && [ "${STACKED_BENCH_SECONDS:-60}" -gt 0 ] && ! known stacked \
  && bench "${STACKED_BENCH_SECONDS:-60}" stacked eager "${WORKERS:-8}"
# How the WORKERS runs share the GPU: under CUDA MPS (their kernels overlap) where the record says that is faster for
# the first of BENCH_MODELS on this card, else as processes taking turns. Where the record lacks the MPS measure, it
# is taken now (MPS_BENCH_SECONDS, default 60; 0 skips it). MPS that does not start, or fails a first CUDA call, is
# shut down and the runs share the GPU as processes.
mps_on() { nvidia-cuda-mps-control -d >>"$out/mps.log" 2>&1 \
    && timeout 60 python3 -c 'import torch; torch.ones(1, device="cuda").sum().item()' >>"$out/mps.log" 2>&1 \
    || { mps_off; echo "MPS did not start (see mps.log): the runs share the GPU as processes"; return 1; }; }
sharing=processes
[ "$benched" = 1 ] && record=$(status)
choice=${record##*faster=}
if [ "$benching" = 1 ] && [ "${MPS_BENCH_SECONDS:-60}" -gt 0 ] && ! known mps && mps_on; then
  bench "${MPS_BENCH_SECONDS:-60}" mps eager "${WORKERS:-8}"
  record=$(status)
  choice=${record##*faster=}
  [ "$choice" = mps ] || mps_off
elif [ "$choice" = mps ]; then
  mps_on || choice=processes
fi
[ "$choice" = mps ] && sharing=mps
echo "the runs share the GPU as: $sharing (record: $choice)" | tee "$out/sharing.txt"
# With STEP=fastest: a step this card's record lacks, shared as the runs share it, is measured (compiled, then
# cuda-graphs; one alone first, whose compiling fills the cache, then WORKERS at once; STEP_BENCH_SECONDS, default 240,
# 0 skips them): one step a call, in a call that measured no way of sharing, and only where the runs keep 3 minutes
# after it, so that no window's minutes all go to benches (BENCH_AGAIN=1: every step, whatever this call measured).
steps() { timeout 90 python3 -c 'import sys, torch; from benchmarks.gpu import RECORD, step_status
print(step_status(RECORD, torch.cuda.get_device_name(0), sys.argv[1], int(sys.argv[2]), sys.argv[3]))' \
    "${BENCH_MODELS%%,*}" "${WORKERS:-8}" "$sharing" 2>/dev/null || echo "fastest=eager"; }
step=$STEP steps_record=""
if [ "$STEP" = fastest ]; then
  steps_record=$(steps)
  if [ "$benching" = 1 ] && [ "${STEP_BENCH_SECONDS:-240}" -gt 0 ] \
      && { [ "$benched" = 0 ] || [ "${BENCH_AGAIN:-0}" = 1 ]; }; then
    for candidate in compiled cuda-graphs; do
      case " $steps_record " in *" $candidate "*) [ "${BENCH_AGAIN:-0}" = 1 ] || continue ;; esac
      [ $((end - SECONDS - 60 - ${STEP_BENCH_SECONDS:-240})) -ge 180 ] || break
      bench "${STEP_BENCH_SECONDS:-240}" "$sharing" "$candidate" $([ "${WORKERS:-8}" -gt 1 ] && echo 1) "${WORKERS:-8}"
      bench_steps=1
      [ "${BENCH_AGAIN:-0}" = 1 ] || break
    done
    [ -n "${bench_steps:-}" ] && steps_record=$(steps)
  fi
  step=${steps_record##*fastest=}
fi
echo "the runs' step, where a question has none yet: $step${steps_record:+ (record: $steps_record)}" | tee "$out/step.txt"
auto=$(( $# == 0 ))
next_job() {  # the next GRID[@PROTOCOL]:MINUTES: the next one named, or with none named, gpu-order's first not run yet
  if [ "$auto" = 0 ]; then [ "$#" -gt 0 ] && echo "$1"; return; fi
  # should gpu-order itself fail, the budget pilots train (gpu-next ends at once on a finished one): never nothing
  order=$(timeout 120 python3 run.py gpu-order --results results 2>>"$out/order.log") \
    || { order="pilot-gpu-15@gpu-15 pilot-gpu@gpu"; echo "gpu-order failed (above): the budget pilots" >>"$out/order.log"; }
  for job in $order; do
    case " $ran " in *" $job "*) ;; *) echo "$job:999"; return ;; esac
  done
}
finished=$(mktemp)
pack() {  # every folder a gpu-next of this call named (its first line "folders: ..."), those that exist, in one file
  local names="" folders=""
  for log in $logs; do names="$names $(sed -n 's/^folders: //p' "$log" | head -1)"; done
  [ -n "${names// /}" ] && folders=$(cd results && ls -d $names 2>/dev/null | sort -u)
  [ -n "$folders" ] || return 0
  # a finished run's checkpoint stays behind (it is never committed); a stopped run's travels, so that it resumes
  (cd results && find $folders -name checkpoint.pt -execdir test -e result.json \; -print) >"$finished"
  tar czf "$out/runs.tar.gz.part" -C results --exclude-from="$finished" $folders \
      && mv "$out/runs.tar.gz.part" "$out/runs.tar.gz"
}
rc=0 ran="" logs=""
trap 'pack; rm -f "$finished" "$since"; [ "$sharing" = mps ] && mps_off; exit 143' TERM INT
while job=$(next_job "$@") && [ -n "$job" ]; do
  [ "$#" -gt 0 ] && shift
  spec=${job%:*} grid=${job%%@*} grid=${grid%:*} protocol=""
  case "$spec" in *@*) protocol=${spec#*@} ;; esac
  ran="$ran $spec" name=$grid${protocol:+_$protocol}
  # gpu-next may run up to ~40 s past its --minutes (stopping workers), then the tar: the last minute is kept for that
  minutes=$(awk -v m="${job##*:}" -v left="$((end - SECONDS - 60))" 'BEGIN { l = left / 60; print (m < l ? m : l) }')
  if awk -v m="$minutes" 'BEGIN { exit !(m < 1) }'; then echo "$spec: not started, $minutes minutes left" | tee "$out/$name.log"; break; fi
  logs="$logs $out/$name.log"
  held=$(timeout 120 python3 -c 'import sys; from pathlib import Path; from experiments.gpu import held_step
print(held_step(sys.argv[1], sys.argv[2] or None, Path("results")) or "")' "$grid" "$protocol" 2>>"$out/order.log")
  # bounded: a gpu-next that overruns its minutes by 90 s is stopped (its runs resume from their checkpoints)
  timeout -k 15 "$(awk -v m="$minutes" 'BEGIN { printf "%d", 60 * m + 90 }')" \
      python3 run.py gpu-next "$grid" ${protocol:+--protocol "$protocol"} --step "${held:-$step}" \
      --out results --minutes "$minutes" --until-decided \
      --finish-later --workers "${WORKERS:-8}" --sharing "$sharing" --data-root .carry/cifar10-jpeg.tar.gz 2>&1 \
      | tee "$out/$name.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  pack || rc=1  # packed again after each grid: a call cut short keeps what the last pack holds
done
cat "$out/order.log" 2>/dev/null | tail -1
[ -n "$(find .carry/compile-cache -type f -newer "$since" | head -1)" ] \
  && { tar czf "$out/compile-cache.tar.gz" -C .carry compile-cache || rc=1; }
rm -f "$since"
[ "$sharing" = mps ] && mps_off
rm -f "$finished"
exit $rc
