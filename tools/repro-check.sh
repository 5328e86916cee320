#!/usr/bin/env bash
# Before resolving a method issue: build, run the method's entries in quick mode (the main job's configuration) and
# check the ledger against schema v2 (docs/repro.md): verdict pass, claim parts, controls all rejected, seeds >= 3
# unless deterministic, machine and commit recorded, seconds within the budget (60 s, or NL_BUDGET).
# usage: tools/repro-check.sh METHOD... (ids or entry names; none = every registered method)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh >/dev/null
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
out="${NL_CHECK_OUT:-out-check}"
rc=0
./build/nnlab repro "$@" --quick --out "$out" || rc=$?
python3 - "$out/ledger.json" "${NL_BUDGET:-60}" <<'PY'
import json, sys
entries = json.load(open(sys.argv[1]))["entries"]
budget = float(sys.argv[2])
bad = 0
for e in entries:
    why = []
    if e.get("verdict") != "pass": why.append(f"verdict {e.get('verdict')}: {e.get('measured', '')}")
    if not e.get("parts"): why.append("no parts")
    ctr = e.get("controls") or []
    if not ctr: why.append("no controls")
    acc = [c["name"] for c in ctr if c.get("verdict") == "pass"]
    if acc: why.append(f"controls the rule accepts: {acc}")
    if not e.get("deterministic") and not (isinstance(e.get("seeds"), int) and e["seeds"] >= 3): why.append(f"seeds {e.get('seeds')}")
    if not e.get("machine") or not e.get("commit"): why.append("machine or commit not recorded")
    if not isinstance(e.get("seconds"), (int, float)) or e["seconds"] > budget: why.append(f"seconds {e.get('seconds')} over {budget:.0f}")
    print(f"{e['method']}: {'ok' if not why else '; '.join(why)}")
    bad |= bool(why)
sys.exit(1 if bad else 0)
PY
