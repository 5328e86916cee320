#!/usr/bin/env bash
# Fuzz smoke run (docs/security.md): build the libFuzzer targets of fuzz/ (clang, ASan + UBSan, -DNL_FUZZ=ON) and
# run each for FUZZ_SECONDS (default 30) from a copy of its seed corpus fuzz/corpus/<target>/ (the tree is never
# modified), with its dictionary fuzz/<kind>.dict. Fails on any crash, sanitizer report, leak, timeout (-timeout=10,
# seconds per input) or out-of-memory (-rss_limit_mb=2048, also the largest single allocation); the input that
# triggered it is kept under $NL_FUZZ_BUILD/fuzz-artifacts/<target>/ and its path printed.
# Without clang + libFuzzer: prints "SKIP: clang/libFuzzer not found" and exits 0.
#
# env: FUZZ_SECONDS (30), FUZZ_TARGETS (all: "safetensors idx csv model_load lm_load pfn_load bnn_load"),
#      NL_FUZZ_BUILD (build-fuzz), CC (clang), FUZZ_SEED (libFuzzer -seed; default random, printed in the log)
set -uo pipefail
cd "$(dirname "$0")/.."
SECS="${FUZZ_SECONDS:-30}"
TARGETS="${FUZZ_TARGETS:-safetensors idx csv model_load lm_load pfn_load bnn_load}"
B="${NL_FUZZ_BUILD:-build-fuzz}"
CLANG="${CC:-clang}"
case "$(basename "$CLANG")" in clang*) ;; *) CLANG=clang ;; esac

# clang with the libFuzzer runtime present?
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' > "$probe/p.c"
if ! command -v "$CLANG" >/dev/null 2>&1 ||
   ! "$CLANG" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
  echo "SKIP: clang/libFuzzer not found"
  exit 0
fi

echo "fuzz smoke: building the fuzz targets in $B ($CLANG)"
if ! CC="$CLANG" cmake -S . -B "$B" -DNL_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$probe/cmake.log" 2>&1; then
  cat "$probe/cmake.log"; echo "fuzz smoke: configure failed"; exit 1
fi
exes=()
for t in $TARGETS; do exes+=(--target "fuzz_$t"); done
if ! cmake --build "$B" "${exes[@]}" -j"$(nproc)" >"$probe/build.log" 2>&1; then
  grep -E "error|Error" "$probe/build.log" | head -40; echo "fuzz smoke: build failed"; exit 1
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export NL_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export TMPDIR="$probe"
failed=()
for t in $TARGETS; do
  corpus="$probe/corpus_$t"
  art="$B/fuzz-artifacts/$t"
  mkdir -p "$art"
  cp -r "fuzz/corpus/$t" "$corpus"
  seed=(); [ -n "${FUZZ_SEED:-}" ] && seed=(-seed="$FUZZ_SEED")
  case "$t" in csv) dict=fuzz/csv.dict ;; idx) dict=fuzz/idx.dict ;; bnn_load) dict=fuzz/bnn.dict ;; *) dict=fuzz/safetensors.dict ;; esac
  [ -f "$dict" ] && seed+=(-dict="$dict")
  log="$B/fuzz-artifacts/$t.log"
  "$B/fuzz/fuzz_$t" "${seed[@]}" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$(cd "$art" && pwd)/" "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    printf 'fuzz smoke: %-12s ok   %s s, %s executions, %s\n' "$t" "$SECS" "${execs:-?}" "${cov:-?}"
  else
    failed+=("$t")
    printf 'fuzz smoke: %-12s FAIL (exit %d) after %s executions; log %s\n' "$t" "$rc" "${execs:-?}" "$log"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written|==[0-9]+==' "$log" | head -12 | sed 's/^/    /'
  fi
  rm -rf "$corpus"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz smoke: FAILED: ${failed[*]} (inputs under $B/fuzz-artifacts/<target>/; reproduce: $B/fuzz/fuzz_<target> FILE)"
  exit 1
fi
echo "fuzz smoke: all targets clean"
