#!/usr/bin/env bash
# "Adding a method" (docs/architecture.md), checked end to end: in a copy of the source tree, add a test-only method
# `tiny` as the walk-through says — a folder methods/tiny/ (header, experiment, method.c, cli.c, test, README) and
# ONE line in methods/methods.def (plus its README row) — then configure and build, and check that the command,
# `nnlab list`, `nnlab repro tiny`, its ctest entries and the layout check all picked it up with no other edit.
# usage: check_add_method.sh SOURCE_DIR
set -u
src="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $1"; fi; }

(cd "$src" && git ls-files -z 2>/dev/null | xargs -0 -I{} cp --parents {} "$tmp"/ 2>/dev/null) || cp -r "$src"/. "$tmp"/
rm -rf "$tmp/build" "$tmp/build-asan"
m="$tmp/methods/tiny"
mkdir -p "$m"
cat > "$m/tiny.h" <<'H'
/* tiny/tiny.h — a test-only method (tests/check_add_method.sh). */
#ifndef NNLAB_TINY_H
#define NNLAB_TINY_H
#include "nnlab/ledger.h"
extern const nl_experiment nl_exp_tiny;
extern const nl_method nl_method_tiny;
int nl_tiny_cli(int argc, char **argv);
double nl_tiny_mean(uint64_t seed, int n);
#endif
H
cat > "$m/experiment.c" <<'C'
/* The tiny ledger entry: the mean of n Philox uniforms is within 4 standard errors of 1/2. */
#include "tiny/tiny.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdio.h>
double nl_tiny_mean(uint64_t seed, int n) {
    nl_rng r;
    nl_rng_init(&r, seed, 0);
    double s = 0;
    for (int i = 0; i < n; i++) s += nl_rng_uniform(&r);
    return s / n;
}
static const int quick_n = 1000, full_n = 100000;
static nl_status run(const nl_experiment *e, const void *cfg, const nl_exp_options *o, nl_exp_result *out) {
    int n = *(const int *)cfg;
    nl_exp_set(out, "mean", nl_tiny_mean(1, n));
    return nl_exp_set(out, "n", n);
}
static int judge(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t len) {
    double m = nl_exp_get(r, "mean", NULL), n = nl_exp_get(r, "n", NULL);
    double se = sqrt(1.0 / 12.0 / n);
    snprintf(measured, len, "mean %.4f (1/2 +- %.4f)", m, 4 * se);
    return fabs(m - 0.5) <= 4 * se;
}
const nl_experiment nl_exp_tiny = {.name = "tiny", .paper = "test-only", .claim = "uniforms average 1/2",
                                   .quick_desc = "1000 draws", .full_desc = "100000 draws", .quick = &quick_n,
                                   .full = &full_n, .metrics = "mean,n", .run = run, .judge = judge};
C
cat > "$m/cli.c" <<'C'
#include "tiny/tiny.h"
#include "nnlab/cli.h"
#include <string.h>
int nl_tiny_cli(int argc, char **argv) {
    if (argc > 0 && !strcmp(argv[0], "--help")) { printf("usage: nnlab tiny\n"); return NL_CLI_OK; }
    printf("tiny mean %.4f\n", nl_tiny_mean(1, 1000));
    return NL_CLI_OK;
}
C
cat > "$m/method.c" <<'C'
#include "tiny/tiny.h"
static const nl_experiment *const g_experiments[] = {&nl_exp_tiny, NULL};
const nl_method nl_method_tiny = {.id = "tiny", .summary = "test-only method", .cli = nl_tiny_cli,
                                  .experiments = g_experiments};
C
cat > "$m/test_tiny.c" <<'C'
#include "nltest.h"
#include "tiny/tiny.h"
static void test_mean(void) { NLT_NEAR(nl_tiny_mean(1, 100000), 0.5, 0.01); }
int main(void) { NLT_RUN(test_mean); return nlt_finish(); }
C
printf '# tiny\nA test-only method.\n' > "$m/README.md"
echo 'NL_METHOD(tiny)' >> "$tmp/methods/methods.def"
echo '| `tiny` | test-only | `nnlab tiny` | [README](methods/tiny/README.md) |' >> "$tmp/README.md"

cmake -S "$tmp" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DNL_NATIVE=OFF >"$tmp/cfg.log" 2>&1
check "configure with the new method" "[ $? -eq 0 ]"
cmake --build "$tmp/build" -j"${NL_BUILD_JOBS:-2}" --target nnlab test_tiny test_registry >"$tmp/build.log" 2>&1
rc=$?
check "build with the new method" "[ $rc -eq 0 ]"
[ $rc -eq 0 ] || tail -20 "$tmp/build.log"
nn="$tmp/build/nnlab"
check "nnlab --help lists tiny" "\"$nn\" --help | grep -q '^  tiny '"
check "nnlab tiny runs" "\"$nn\" tiny | grep -q 'tiny mean 0\\.'"
check "nnlab list shows the entry" "\"$nn\" list | grep -q '^tiny '"
"$nn" repro tiny --quick --quiet --out "$tmp/out" >"$tmp/repro.log" 2>&1
rrc=$?
check "nnlab repro tiny passes" "[ $rrc -eq 0 ] && python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))[\"entries\"]; sys.exit(0 if [x[\"method\"] for x in e]==[\"tiny\"] and e[0][\"verdict\"]==\"pass\" else 1)' \"$tmp/out/ledger.json\""
check "ctest has test_tiny" "(cd \"$tmp/build\" && ctest -N | grep -q 'test_tiny')"
check "ctest has repro_tiny" "(cd \"$tmp/build\" && ctest -N | grep -q 'repro_tiny')"
check "test_tiny passes" "\"$tmp/build/test_tiny\" >/dev/null"
check "test_registry passes with tiny" "NL_SOURCE_DIR=\"$tmp\" \"$tmp/build/test_registry\" >/dev/null"
python3 "$tmp/tests/check_layout.py" "$tmp" | grep tiny
check "layout check has no complaint about tiny" "! python3 \"$tmp/tests/check_layout.py\" \"$tmp\" | grep -q tiny"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
