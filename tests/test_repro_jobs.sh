#!/usr/bin/env bash
# `nnlab repro -j 2` gives the same ledger as `-j 1` on the real entries (docs/repro.md, "Running experiments
# concurrently"): every registered entry's smoke configuration, once sequentially in-process with 1 thread and once
# as two concurrent forked experiments with 1 thread each (-j 2 --threads 2). The entries must come back in the same
# order with the same verdicts, the same part and control verdicts and the same non-time metrics (bit for bit: the
# same computations on the same thread count). Time-like metrics (seconds, CPU time, throughput, speed factors, threads) and
# parts that judge a speed are the only things allowed to differ.
# usage: test_repro_jobs.sh NNLAB
set -u
nnlab="$1"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# the entries that have a smoke configuration (all of them once every method is on ledger schema v2)
entries=$("$nnlab" list --json | python3 -c '
import json, sys
print(" ".join(e["method"] for e in json.load(sys.stdin)["experiments"] if e.get("smoke") is not None))')
if [ -z "$entries" ]; then echo "FAIL: no entry has a smoke configuration"; echo "0 passed, 1 failed"; exit 1; fi
# shellcheck disable=SC2086
"$nnlab" repro $entries --smoke --quiet -j 1 --threads 1 --out "$out/j1" >"$out/j1.table" 2>"$out/j1.err"
rc1=$?
# shellcheck disable=SC2086
"$nnlab" repro $entries --smoke --quiet -j 2 --threads 2 --out "$out/j2" >"$out/j2.table" 2>"$out/j2.err"
rc2=$?
python3 - "$out/j1/ledger.json" "$out/j2/ledger.json" "$rc1" "$rc2" <<'PY'
import json, re, sys
a_path, b_path, rc1, rc2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
TIME = re.compile(r"seconds|per_sec|per_s$|speed|threads|_ms$|time|cpu")
SPEED_PART = re.compile(r"faster|speed|time")
bad = []
try:
    A = json.load(open(a_path))["entries"]
    B = json.load(open(b_path))["entries"]
except Exception as ex:  # a missing ledger is a failure, not a crash of the check
    print(f"FAIL: cannot read the ledgers ({ex})")
    print("0 passed, 1 failed")
    sys.exit(1)
if rc1 not in (0, 1) or rc2 not in (0, 1):
    bad.append(f"exit statuses {rc1} (-j 1) and {rc2} (-j 2)")
if [e["method"] for e in A] != [e["method"] for e in B]:
    bad.append(f"entry order differs: {[e['method'] for e in A]} vs {[e['method'] for e in B]}")

def speed_judged(res):
    return any(SPEED_PART.search(p["name"]) for p in res.get("parts") or [])

def compare(tag, x, y):
    for k in sorted(set(x.get("metrics", {})) | set(y.get("metrics", {}))):
        if TIME.search(k):
            continue
        u, v = x.get("metrics", {}).get(k, "missing"), y.get("metrics", {}).get(k, "missing")
        if u != v:
            bad.append(f"{tag}: metric {k}: {u} (-j 1) vs {v} (-j 2)")
    px = {p["name"]: p["verdict"] for p in x.get("parts") or []}
    py = {p["name"]: p["verdict"] for p in y.get("parts") or []}
    if set(px) != set(py):
        bad.append(f"{tag}: parts {sorted(px)} vs {sorted(py)}")
    for n in px:
        if not SPEED_PART.search(n) and px[n] != py.get(n):
            bad.append(f"{tag}: part {n}: {px[n]} vs {py.get(n)}")
    if not speed_judged(x) and x.get("verdict") != y.get("verdict"):
        bad.append(f"{tag}: verdict {x.get('verdict')} vs {y.get('verdict')}")
    if x.get("error") or y.get("error"):
        bad.append(f"{tag}: error {x.get('error')} / {y.get('error')}")

n_metrics = 0
for x, y in zip(A, B):
    compare(x["method"], x, y)
    n_metrics += sum(1 for k in x.get("metrics", {}) if not TIME.search(k))
    cx = {c["name"]: c for c in x.get("controls") or []}
    cy = {c["name"]: c for c in y.get("controls") or []}
    if list(cx) != list(cy):
        bad.append(f"{x['method']}: controls {list(cx)} vs {list(cy)}")
    for n in cx:
        if n in cy:
            compare(f"{x['method']}/{n}", cx[n], cy[n])
            n_metrics += sum(1 for k in cx[n].get("metrics", {}) if not TIME.search(k))
for b in bad:
    print("FAIL", b)
print(f"{len(A)} entries, {n_metrics} non-time metrics compared between -j 1 and -j 2")
print(f"{0 if bad else 1} passed, {1 if bad else 0} failed")
sys.exit(1 if bad else 0)
PY
