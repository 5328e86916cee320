#!/usr/bin/env bash
# Renders report.html in headless Chromium and checks the DOM (the ledger table, inline SVG charts) and that
# Chromium reported no problem with the page. Skips (exit 0, message) when chromium is not installed.
# usage: check_report.sh NNLAB [REPORT.html]   (without REPORT, runs `nnlab repro mlp --smoke` to make one: the same
# report code as a quick run, in seconds)
set -u
NNLAB="$1"; REPORT="${2:-}"
CHROMIUM=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$CHROMIUM" ]; then
  echo "SKIP: chromium not installed (apt-get install chromium); report.html not rendered"
  exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
if [ -z "$REPORT" ]; then
  "$NNLAB" repro mlp --smoke --quiet --out "$tmp/out" >"$tmp/table" 2>"$tmp/err"; rc=$?
  if [ $rc -ne 0 ] && grep -q "not found" "$tmp/out/ledger.json" 2>/dev/null; then
    echo "SKIP: Fashion-MNIST not installed; no report to render"; exit 0
  fi
  check "nnlab repro mlp --smoke -> exit 0" "[ $rc -eq 0 ]"
  REPORT="$tmp/out/report.html"
fi
check "report exists" "[ -s '$REPORT' ]"
abs=$(cd "$(dirname "$REPORT")" && pwd)/$(basename "$REPORT")
timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$tmp/profile" --enable-logging=stderr --v=0 \
  --dump-dom "file://$abs" >"$tmp/dom.html" 2>"$tmp/chromium.log"; rc=$?
check "chromium rendered the page (exit $rc)" "[ $rc -eq 0 ] && [ -s '$tmp/dom.html' ]"
check "DOM has the ledger table with a header row" "grep -q '<table id=\"ledger\">' '$tmp/dom.html' && grep -q '<th>verdict</th>' '$tmp/dom.html'"
check "DOM has a row for mlp with its verdict" "grep -q 'href=\"#exp-mlp\"' '$tmp/dom.html' && grep -Eq 'class=\"(pass|fail)\">(pass|fail)<' '$tmp/dom.html'"
check "DOM has inline SVG charts with lines, axes and legends" \
  "[ \$(grep -o '<svg' '$tmp/dom.html' | wc -l) -ge 2 ] && grep -q '<polyline' '$tmp/dom.html' && grep -q 'class=\"axes\"' '$tmp/dom.html' && grep -q 'class=\"legend\"' '$tmp/dom.html'"
check "no script in the page" "! grep -qi '<script' '$tmp/dom.html'"
# page problems Chromium logs: console errors, failed loads, parse errors (its own D-Bus/GPU chatter is ignored)
grep -Ei 'CONSOLE|Uncaught|net::ERR|Failed to load|Refused|Not allowed to load|SyntaxError|error on line' "$tmp/chromium.log" | grep -v 'dbus' >"$tmp/page_errors"
check "chromium printed no errors about the page" "[ ! -s '$tmp/page_errors' ]"
[ -s "$tmp/page_errors" ] && cat "$tmp/page_errors"
exit $fail
