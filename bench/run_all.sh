#!/usr/bin/env bash
# bench/run_all.sh — build nnlab (Release) and run every benchmark in order, then print a summary.
#
#   bench/run_all.sh                 # build in ./build-bench, run at 1 and 2 threads
#   NLB_THREADS=1 bench/run_all.sh   # only 1 thread
#
# Order: sgemm_peak first (its PEAK_T<T> values are exported as NLB_SGEMM_PEAK_T<T>, so every later bench
# divides by the same measured peak), then matmul_overhead, norm_softmax, mlp_vs_torch, gcn_vs_torch, noprop_vs_torch, then any
# other bench_* executable (e.g. bench_ntk_bench, bench_bnn_gemm) with no arguments.
# Env:
#   BUILD_DIR      build directory (default <repo>/build-bench)
#   NLB_THREADS    thread counts, comma-separated (default 1,2); each bench sets OpenMP + OpenBLAS itself and
#                  exports OPENBLAS_NUM_THREADS/OMP_NUM_THREADS to the PyTorch child processes
#   NLB_SKIP       space-separated bench names to skip (e.g. "ntk_bench norm_softmax")
#   NLB_MAX_LOAD   wait (up to NLB_WAIT_S seconds, default 600) until the 1-minute load average is at most this
#   NLB_MAX_BUSY   (default 1.5) and the machine's CPU use over 5 s is at most NLB_MAX_BUSY percent (default 10)
#                  before starting; the load is printed either way. Timings on a busy 2-core machine are not
#                  meaningful, 2-thread ones least of all (spinning BLAS/OpenMP threads then lose whole slices).
#   NLB_NO_BUILD=1 skip the configure/build step
# The full output goes to $BUILD_DIR/bench-results.txt. Benchmarks assert nothing about timings.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
export NLB_THREADS="${NLB_THREADS:-1,2}"
export NL_SOURCE_DIR="$ROOT"
SKIP=" ${NLB_SKIP:-} "
MAX_LOAD="${NLB_MAX_LOAD:-1.5}"
WAIT_S="${NLB_WAIT_S:-600}"

if [ "${NLB_NO_BUILD:-0}" != 1 ]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" -j2 >/dev/null
fi

load1() { cut -d' ' -f1 /proc/loadavg; }
# CPU use of the whole machine over 5 s, in percent of all cores (from /proc/stat); the 1-minute load average
# lags by minutes, so "quiet" needs both.
busy_pct() {
  local a b
  a=($(head -1 /proc/stat)); sleep 5; b=($(head -1 /proc/stat))
  local tot=0 idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) i
  for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
  [ "$tot" -gt 0 ] && echo $(( 100 * (tot - idle) / tot )) || echo 0
}
quiet() { awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l <= m) }' && [ "$(busy_pct)" -le "${NLB_MAX_BUSY:-10}" ]; }
t_wait=$SECONDS
until quiet; do
  waited=$((SECONDS - t_wait))
  if [ "$waited" -ge "$WAIT_S" ]; then
    echo "warning: machine still busy (load $(load1)) after ${WAIT_S}s; running anyway" >&2
    break
  fi
  [ "$waited" -eq 0 ] && echo "machine busy (load $(load1)): waiting up to ${WAIT_S}s for load <= $MAX_LOAD and CPU use <= ${NLB_MAX_BUSY:-10}%" >&2
  sleep 10
done

OUT="$BUILD_DIR/bench-results.txt"
: >"$OUT"
log() { echo "$@" | tee -a "$OUT"; }
log "nnlab benchmarks  $(date -u '+%Y-%m-%d %H:%M UTC')  commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
log "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; threads: $NLB_THREADS; load at start: $(cat /proc/loadavg)"

run() { # name [args...]
  local name="$1"; shift
  case "$SKIP" in *" $name "*) log "-- skipped $name"; return 0 ;; esac
  local exe="$BUILD_DIR/bench_$name"
  if [ ! -x "$exe" ]; then log "-- bench_$name not built"; return 0; fi
  log ""
  local t0=$SECONDS
  "$exe" "$@" 2>&1 | tee -a "$OUT"
  log "-- $name: $((SECONDS - t0)) s, load after: $(cat /proc/loadavg)"
}

run sgemm_peak
while IFS='=' read -r k v; do
  export "NLB_SGEMM_PEAK_${k#PEAK_}=$v"
done < <(grep -E '^PEAK_T[0-9]+=' "$OUT" || true)
env | grep '^NLB_SGEMM_PEAK_' | sort | tee -a "$OUT"

run matmul_overhead
run norm_softmax
run mlp_vs_torch
run gcn_vs_torch
run noprop_vs_torch
run deeponet_vs_torch
for exe in "$BUILD_DIR"/bench_*; do
  name="${exe##*/bench_}"
  case " sgemm_peak matmul_overhead norm_softmax mlp_vs_torch gcn_vs_torch noprop_vs_torch deeponet_vs_torch " in *" $name "*) continue ;; esac
  [ -x "$exe" ] && [ -f "$exe" ] && run "$name"
done

{
  echo ""
  echo "================ summary ================"
  grep -E '^PEAK_T' "$OUT" | sed 's/^/sgemm peak GFLOP\/s: /'
  echo "engine/raw ratio, whole 3-layer chain (matmul_overhead):"
  awk '/^-- threads/ { t = $3; sub(",", "", t) } /^chain / { printf "  T=%s %-8s %-8s raw %8s us  engine %8s us  ratio %s\n", t, $2, $3, $4, $5, $6 }' "$OUT"
  echo "norm/softmax fwd+bwd (nnlab GB/s, torch GB/s, torch/nnlab time):"
  awk '/^-- threads/ { t = $3 } $3 == "fwd+bwd" && ($1 == "layernorm" || $1 == "softmax") { printf "  T=%s %-9s %-10s %8s %8s %8s\n", t, $1, $2, $5, $8, $9 }' "$OUT"
  echo "MLP epoch (mlp_vs_torch):"
  awk '/^summary \(median/ { on = 1 } /^-- / { on = 0 } on { print "  " $0 }' "$OUT"
  echo "GCN epoch and SpMM on WordNet (gcn_vs_torch):"
  awk '/^summary \(GCN epoch/ { on = 1 } /^-- / { on = 0 } on { print "  " $0 }' "$OUT"
  echo "NoProp-DT vs backprop epoch, nnlab vs PyTorch (noprop_vs_torch):"
  awk '/^summary NoProp/ { on = 1 } /^-- / { on = 0 } on { print "  " $0 }' "$OUT"
  echo "binary GEMM (lib/bnn) vs cblas_sgemm, time ratio per SIMD path and shape (bnn_gemm):"
  grep -E '^BNN_(RATIO|BEST) ' "$OUT" | sed 's/^/  /' || true
  echo "DeepONet training iterations/s, nnlab vs PyTorch (deeponet_vs_torch):"
  awk '/^summary DeepONet/ { on = 1 } /^-- / { on = 0 } on { print "  " $0 }' "$OUT"
} | tee -a "$OUT"
echo "full log: $OUT"
