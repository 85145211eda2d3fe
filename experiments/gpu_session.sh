#!/usr/bin/env bash
# A time-boxed batch of the second edition's next runs on an offline GPU machine (docs/study.md, section 5).
#   before:        make gpu-carry       (the data and the wheels the GPU image lacks, into the git-ignored .carry/)
#   on the GPU:    a copy of this checkout with .carry/ and, where an earlier batch brought back stopped runs, their
#                  grid folders ("results/<grid>-gpu", "results/<grid>-gpu-lr"); OUT=<folder to copy back>
#                  `bash experiments/gpu_session.sh GRID:MINUTES [GRID:MINUTES ...]`
#   after:         tar xzf OUT/<grid>-gpu.tar.gz -C results, cp OUT/gpu.json benchmarks/records/, then commit as
#                  docs/study.md says
# Per grid: `run.py gpu-next GRID --until-decided` (the learning-rate search first, then seeds in looks) within
# MINUTES; its folders come back as $OUT/<grid>-gpu.tar.gz (checkpoints only of runs not finished) and its output
# as $OUT/<grid>.log. WORKERS (default 8, as measured in docs/study.md) runs share the GPU. A run starts while its
# next epoch fits (--finish-later): what the deadline stops comes back with its checkpoint and resumes in the next
# call. TOTAL_MINUTES (default: the sum of the grids' plus one) caps the whole call, its last minute kept for stopping
# and packing: a grid decided early leaves its time to the next; one that would get under a minute is not started.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 GRID:MINUTES [GRID:MINUTES ...]" >&2; exit 2; }
out=${OUT:?OUT is not set: name the folder whose files are copied back}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .carry/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >"$out/nvidia-smi.csv" 2>&1
total=0
for job in "$@"; do total=$(awk -v a="$total" -v b="${job#*:}" 'BEGIN { print a + b }'); done
end=$(awk -v now="$SECONDS" -v m="${TOTAL_MINUTES:-$(awk -v t="$total" 'BEGIN { print t + 1 }')}" 'BEGIN { printf "%d", now + 60 * m }')
# Start-up check and a short bench (its time comes out of the grids'): BENCH_MODELS (default DyClotNet-0.5) alone and
# WORKERS at once, 20 timed steps each, added to benchmarks/records/gpu.json, which comes back as $out/gpu.json
# (commit it as benchmarks/records/gpu.json). BENCH_SECONDS=0 skips it; a bench that fails or overruns stops nothing.
if [ "${BENCH_SECONDS:-120}" -gt 0 ]; then
  timeout "${BENCH_SECONDS:-120}" python3 -c 'import sys; from benchmarks.gpu import run
run(models=tuple(sys.argv[1].split(",")), runs_at_once=tuple(sorted({1, int(sys.argv[2])})), quick=True)' \
      "${BENCH_MODELS:-dyclotnet_050}" "${WORKERS:-8}" >"$out/bench.log" 2>&1 || echo "bench: exit $? (see bench.log)"
  cp benchmarks/records/gpu.json "$out/gpu.json" 2>/dev/null
fi
rc=0
for job in "$@"; do
  grid=${job%%:*}
  # gpu-next may run up to ~40 s past its --minutes (stopping workers), then the tar: the last minute is kept for that
  minutes=$(awk -v m="${job#*:}" -v left="$((end - SECONDS - 60))" 'BEGIN { l = left / 60; print (m < l ? m : l) }')
  if awk -v m="$minutes" 'BEGIN { exit !(m < 1) }'; then echo "$grid: not started, $minutes minutes left" | tee "$out/$grid.log"; continue; fi
  python3 run.py gpu-next "$grid" --out results --minutes "$minutes" --until-decided --finish-later --workers "${WORKERS:-8}" \
      --data-root .carry/cifar10-jpeg.tar.gz 2>&1 | tee "$out/$grid.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  case "$grid" in  # a GPU budget pilot (pilot-gpu-15, pilot-gpu) is a folder of its own protocol already
    pilot-*) folders=$(cd results && ls -d "$grid" 2>/dev/null) ;;
    *) folders=$(cd results && ls -d "$grid-gpu" "$grid-gpu-lr" 2>/dev/null) ;;
  esac
  [ -n "$folders" ] || continue
  # a finished run's checkpoint stays behind (it is never committed); a stopped run's travels, so that it resumes
  (cd results && find $folders -name checkpoint.pt -execdir test -e result.json \; -print) >/tmp/finished.txt
  tar czf "$out/$grid-gpu.tar.gz" -C results --exclude-from=/tmp/finished.txt $folders || rc=1
done
exit $rc
