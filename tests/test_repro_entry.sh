#!/usr/bin/env bash
# Quick-mode check of one method (its ledger entries): `nnlab repro METHOD --quick` must exit 0 and record verdict "pass"
# in ledger.json (fixed seeds; the pass rule is the entry's own comparison with the paper's claim).
set -u
nnlab="$1"; method="$2"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$nnlab" repro "$method" --quick --quiet --out "$out"
rc=$?
if [ ! -f "$out/ledger.json" ]; then echo "FAIL: no ledger.json for $method"; echo "0 passed, 1 failed"; exit 1; fi
# every entry of the method must pass (a method id may stand for several entries: baselines = mlp cnn)
verdict=$(python3 -c 'import json,sys; es=json.load(open(sys.argv[1]))["entries"]; v="pass" if es and all(e["verdict"]=="pass" for e in es) else "fail"; print(v, "|", " ; ".join(e["method"]+": "+e.get("measured","")+" "+e.get("error","") for e in es))' "$out/ledger.json")
echo "$method: $verdict"
case "$verdict" in
  pass*) if [ $rc -eq 0 ]; then echo "1 passed, 0 failed"; exit 0; fi ;;
esac
echo "FAIL: $method quick reproduction (exit $rc)"; echo "0 passed, 1 failed"; exit 1
