#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job — every implemented method's
# reproduction in quick mode — writing out/ledger.json and out/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
./build/nnlab repro --quick --out out "$@"
echo "quickstart: ledger in out/ledger.json, report in out/report.html"
