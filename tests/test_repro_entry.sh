#!/usr/bin/env bash
# Quick-mode check of one ledger entry: `nnlab repro METHOD --quick` must exit 0 and record verdict "pass"
# in ledger.json (fixed seeds; the pass rule is the entry's own comparison with the paper's claim).
set -u
nnlab="$1"; method="$2"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$nnlab" repro "$method" --quick --quiet --out "$out"
rc=$?
if [ ! -f "$out/ledger.json" ]; then echo "FAIL: no ledger.json for $method"; echo "0 passed, 1 failed"; exit 1; fi
verdict=$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["entries"]; print(e[0]["verdict"], "|", e[0].get("measured",""), "|", e[0].get("error",""))' "$out/ledger.json")
echo "$method: $verdict"
case "$verdict" in
  pass*) if [ $rc -eq 0 ]; then echo "1 passed, 0 failed"; exit 0; fi ;;
esac
echo "FAIL: $method quick reproduction (exit $rc)"; echo "0 passed, 1 failed"; exit 1
