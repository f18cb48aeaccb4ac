#!/usr/bin/env bash
# The prepared GPU check: everything a lent GPU should confirm, in one call of under 10 minutes.
#
#   bash benchmarks/gpu_check.sh [OUT]          # on a CUDA machine (make gpu-check)
#   bash benchmarks/gpu_check.sh --cpu [OUT]    # the CPU-runnable parts, small (CI runs this)
#
# On the GPU it builds the CUDA extension into this checkout, runs the CUDA-marked tests,
# compute-sanitizer memcheck on benchmarks/kernel_smoke.py, compare.py --sizes 3d-gpu and 2d-seq, a
# 200-step bf16 training on the phantom and throughput.py --device cuda. Written for the device
# machine of /work/.library/device (torch, nvcc, cmake, ninja, pybind11, scikit-build-core,
# pytest; no nibabel, no internet): nothing here needs nibabel or a download.
#
# Every figure lands in OUT/gpu_check.md (default ./gpu-check), ready for benchmarks/RESULTS.md,
# with each step's log in OUT/logs/. A failing step is recorded and the others still run; the
# exit code is 1 if any failed.
set -uo pipefail

MODE=gpu
if [[ "${1:-}" == "--cpu" ]]; then MODE=cpu; shift; fi
OUT=$(mkdir -p "${1:-gpu-check}" && cd "${1:-gpu-check}" && pwd)
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
[[ $PY == */* ]] && PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")  # still valid after the cd below
LOGS=$OUT/logs
REPORT=$OUT/gpu_check.md
mkdir -p "$LOGS"
# Run from OUT, not the checkout: there `import motionext` would find the source tree, which has
# no compiled extension unless the build step put one in it (and then PYTHONPATH names it).
cd "$OUT"
export PYTHONUNBUFFERED=1
FAILED=0
STATUS=()
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-570}))  # the whole check fits one 10-minute device call

# step NAME TIMEOUT_S COMMAND...: run it, log to OUT/logs/NAME.log, record status and seconds
step() {
  local name=$1 limit=$2; shift 2
  local start=$SECONDS left=$((DEADLINE - SECONDS))
  if ((left < 5)); then
    FAILED=1; STATUS+=("| $name | skipped: the check's time was used up | 0 |"); echo "== $name: skipped (no time left)"; return
  fi
  ((limit > left)) && limit=$left
  echo "== $name: $*"
  timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  local took=$((SECONDS - start))
  if [[ $rc -eq 0 ]]; then
    STATUS+=("| $name | ok | $took |")
  else
    FAILED=1
    [[ $rc -eq 124 ]] && STATUS+=("| $name | timed out after ${limit} s | $took |") || STATUS+=("| $name | failed (exit $rc) | $took |")
  fi
  echo "   $name: exit $rc after $took s"
  tail -n 3 "$LOGS/$name.log" | sed 's/^/   | /'
}

build_cuda() {
  # Built where this checkout can import it: the repo's own motionext/ (the tests and benchmarks
  # run with PYTHONPATH=$REPO), for Hopper only, on every core.
  local target=/tmp/motionext-build
  rm -rf "$target"
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$PY" -m pip install -v --no-build-isolation --no-deps --no-index \
      --target "$target" -C cmake.define.MOTIONEXT_CUDA=ON -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 "$REPO" || return 1
  cp "$target"/motionext/_C*.so "$REPO/motionext/" || return 1
  PYTHONPATH=$REPO "$PY" -c "from motionext import ops; i = ops.build_info(); print(i); assert i['cuda'] and i['cuda_available'], 'no CUDA kernels'"
}

train_summary() {
  # the 200-step run's loss at the start and the end, and its step time
  "$PY" - "$1" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
loss = [float(r["loss"]) for r in rows]
seconds = [float(r["seconds"]) for r in rows[2:]] or [float(r["seconds"]) for r in rows]
val = [r for r in rows if r.get("val_loss")]
print(f"- steps: {len(rows)}; mean loss, first 10 steps: {statistics.mean(loss[:10]):.1f}; last 10: {statistics.mean(loss[-10:]):.1f}")
print(f"- median step time: {statistics.median(seconds) * 1e3:.1f} ms ({1 / statistics.median(seconds):.1f} steps/s)")
if val:
    last = val[-1]
    print(f"- last validation (step {last['step']}): loss {float(last['val_loss']):.1f}, KL/frame {float(last['val_kl_frame']):.2f}"
          + (f", Dice {float(last['val_dice']):.3f}" if last.get("val_dice") else ""))
EOF
}

TINY='{"latent_dim": 8, "encoder_channels": [4, 8, 8, 2], "decoder_channels": [8, 8, 8, 4], "ed_feature_channels": [4, 4, 4, 4]}'
if [[ $MODE == gpu ]]; then
  export PYTHONPATH=$REPO MOTIONEXT_REQUIRE_COMPILED=1
  export -f build_cuda; export REPO PY  # `timeout` runs programs, not shell functions
  step build 240 bash -c build_cuda
  step cuda-tests 90 "$PY" -m pytest -q -p no:cacheprovider -m cuda "$REPO"/tests/test_ops_agreement.py \
      "$REPO"/tests/test_ops_gradcheck.py "$REPO"/tests/test_ops_library.py "$REPO"/tests/test_mixed_precision.py \
      "$REPO"/tests/test_devices.py
  step memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 1 "$PY" "$REPO"/benchmarks/kernel_smoke.py --device cuda
  # peak memory (a fresh process per case, ~4 s of CUDA start each) for the large 3D size only
  step compare 120 "$PY" "$REPO"/benchmarks/compare.py --sizes 3d-gpu --device cuda --min-seconds 0.5 \
      --markdown "$OUT/compare.md" --json "$OUT/compare.json"
  step compare-2d 60 "$PY" "$REPO"/benchmarks/compare.py --sizes 2d-seq --device cuda --min-seconds 0.5 --no-memory \
      --markdown "$OUT/compare-2d.md" --json "$OUT/compare-2d.json"
  rm -rf /tmp/motionext-gpu-train /tmp/motionext-gpu-train-checked  # a warm machine keeps /tmp between calls
  step train 40 "$PY" -m motionext train --data phantom --steps 200 --amp bf16 --device cuda --val-every 100 \
      --checkpoint-every 200 --quiet --out /tmp/motionext-gpu-train
  # the same run with the per-op NaN/Inf check on (a host sync per op): what the default saves
  step train-checked 30 env MOTIONEXT_CHECK_FINITE=1 "$PY" -m motionext train --data phantom --steps 60 --amp bf16 \
      --device cuda --val-every 1000 --checkpoint-every 1000 --quiet --out /tmp/motionext-gpu-train-checked
  step throughput 90 "$PY" "$REPO"/benchmarks/throughput.py --device cuda --processes 1 --skip-loading --markdown "$OUT/throughput.md"
  TRAIN_LOG=/tmp/motionext-gpu-train/log.csv
  CHECKED_LOG=/tmp/motionext-gpu-train-checked/log.csv
else
  # The same steps where a CPU can run them, small: the script itself is what this checks.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
  step kernels 120 "$PY" "$REPO"/benchmarks/kernel_smoke.py --device cpu
  step compare 120 "$PY" "$REPO"/benchmarks/compare.py --sizes 2d-seq --ops warp --fields noise --device cpu --repeats 2 \
      --min-seconds 0 --no-memory --markdown "$OUT/compare.md" --json "$OUT/compare.json"
  step train 120 "$PY" -m motionext train --data phantom --phantom-subjects 2 --size 32 32 --steps 6 --amp bf16 \
      --device cpu --val-every 3 --checkpoint-every 6 --quiet --model "$TINY" --out "$OUT/train-run"
  step throughput 180 "$PY" "$REPO"/benchmarks/throughput.py --device cpu --processes 1 --rounds 1 --steps 4 --size 32 --frames 6 \
      --skip-loading --markdown "$OUT/throughput.md"
  step train-checked 60 env MOTIONEXT_CHECK_FINITE=1 "$PY" -m motionext train --data phantom --phantom-subjects 2 \
      --size 32 32 --steps 6 --amp bf16 --device cpu --val-every 100 --checkpoint-every 100 --quiet --model "$TINY" \
      --out "$OUT/train-checked"
  TRAIN_LOG=$OUT/train-run/log.csv
  CHECKED_LOG=$OUT/train-checked/log.csv
fi

{
  echo "# motionext GPU check ($MODE mode)"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no NVIDIA GPU')"
  echo "- $("$PY" -c 'import platform, torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}, {platform.processor() or platform.machine()}")' 2>&1)"
  echo "- command: bash benchmarks/gpu_check.sh $([[ $MODE == cpu ]] && echo '--cpu ')<out>"
  echo
  echo "| step | result | seconds |"
  echo "|---|---|---|"
  printf '%s\n' "${STATUS[@]}"
  for name in cuda-tests memcheck kernels; do
    if [[ -f $LOGS/$name.log ]]; then
      echo; echo "## $name (last lines)"; echo; echo '```'; tail -n 8 "$LOGS/$name.log"; echo '```'
    fi
  done
  for table in compare compare-2d; do
    if [[ -f $OUT/$table.md ]]; then echo; echo "## $table (benchmarks/compare.py)"; echo; cat "$OUT/$table.md"; fi
  done
  if [[ -f $TRAIN_LOG ]]; then echo; echo "## training (bf16 autocast, phantom)"; echo; train_summary "$TRAIN_LOG"; fi
  if [[ -f $CHECKED_LOG ]]; then
    echo; echo "## the same training with MOTIONEXT_CHECK_FINITE=1 (a NaN/Inf check and host sync per op)"; echo
    train_summary "$CHECKED_LOG"
  fi
  if [[ -f $OUT/throughput.md ]]; then echo; echo "## throughput.py"; echo; cat "$OUT/throughput.md"; fi
} >"$REPORT"
echo "gpu_check: wrote $REPORT"
exit $FAILED
