#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job — every implemented method's
# reproduction in quick mode — writing out/ledger.json and out/report.html.
#
# Exit status: 0 when every experiment ran and the ledger was written, whatever the verdicts (a claim that does
# not reproduce at this scale is a result, listed at the end and in the docs); non-zero when the build fails or
# an experiment stops with an error. `nnlab repro` itself exits 1 on any "fail" verdict (use it for strict checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
rc=0
./build/nnlab repro --quick --out out "$@" || rc=$?
if [ ! -f out/ledger.json ]; then
  echo "quickstart: nnlab repro wrote no ledger (exit $rc)" >&2
  exit 1
fi
./build/nnlab list --json > out/list.json
python3 - out/ledger.json out/list.json <<'PY'
import json, sys
entries = json.load(open(sys.argv[1]))["entries"]
# the entry's method folder (methods/<id with '-' as '_'>/README.md has its claim, rules and numbers)
folder = {e["method"]: (e.get("method_id") or e["method"]).replace("-", "_") for e in json.load(open(sys.argv[2]))["experiments"]}
errors = [e for e in entries if e.get("error")]
fails = [e for e in entries if e["verdict"] != "pass" and not e.get("error")]
print(f"quickstart: {len(entries)} experiments, {len(entries) - len(fails) - len(errors)} claims reproduced, "
      f"{len(fails)} did not, {len(errors)} stopped with an error")
for e in fails:
    print(f"  did not reproduce: {e['method']}: {e.get('measured', '')}  (see methods/{folder.get(e['method'], e['method'])}/README.md)")
for e in errors:
    print(f"  ERROR: {e['method']}: {e['error']}")
sys.exit(1 if errors else 0)
PY
echo "quickstart: ledger in out/ledger.json, report in out/report.html"
