#!/usr/bin/env python3
"""Refresh the measured tables in the method READMEs from a ledger (docs that cannot drift; docs/repro.md).

usage: python3 tools/doc-tables.py [--nnlab build/nnlab] [--check] LEDGER.json [ENTRY ...]

For each entry of the ledger (or the ENTRYs named), the block in methods/<folder>/README.md that starts with a
heading line `#### ... `ENTRY` (MODE)...` (MODE = the ledger's quick/full/smoke) and runs to the last table row
before the next heading is replaced by `nnlab report --markdown LEDGER ENTRY` (which names the commit and machine);
prose after the tables is kept. An entry whose README has no such block is reported (paste the report there once,
under the heading level 4, and the script maintains it from then on). --check: change nothing, exit 1 if a README
differs from the ledger.
"""
import json
import re
import subprocess
import sys
from pathlib import Path


def main(argv):
    nnlab, check, rest = "build/nnlab", False, []
    while argv:
        a = argv.pop(0)
        if a == "--nnlab" and argv:
            nnlab = argv.pop(0)
        elif a == "--check":
            check = True
        elif a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        else:
            rest.append(a)
    if not rest:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ledger, want = rest[0], rest[1:]
    root = Path(__file__).resolve().parent.parent
    doc = json.load(open(ledger))
    mode = doc.get("mode", "quick")
    listing = json.loads(subprocess.run([nnlab, "list", "--json"], check=True, capture_output=True, text=True).stdout)
    folder_of = {e["method"]: (e.get("method_id") or e["method"]).replace("-", "_") for e in listing["experiments"]}
    entries = [e["method"] for e in doc.get("entries", [])]
    bad = 0
    for name in want or entries:
        if name not in entries:
            print(f"{name}: not in {ledger}")
            bad = 1
            continue
        readme = root / "methods" / folder_of.get(name, name.replace("-", "_")) / "README.md"
        if not readme.exists():
            print(f"{name}: no {readme}")
            bad = 1
            continue
        lines = readme.read_text().split("\n")
        head = re.compile(r"^#### .*`" + re.escape(name) + r"` \(" + mode + r"\)")
        starts = [i for i, l in enumerate(lines) if head.match(l)]
        if len(starts) != 1:
            print(f"{name}: {readme.relative_to(root)} has {len(starts)} blocks headed '#### `{name}` ({mode})' (need 1)")
            bad = 1
            continue
        i = starts[0]
        j = i + 1
        while j < len(lines) and not lines[j].startswith("#"):
            j += 1
        last = max([k for k in range(i, j) if lines[k].startswith("|")] or [i])
        md = subprocess.run([nnlab, "report", "--markdown", ledger, name], check=True, capture_output=True,
                            text=True).stdout.rstrip("\n").split("\n")
        new = lines[:i] + md + lines[last + 1:]
        if new == lines:
            print(f"{name}: {readme.relative_to(root)} up to date")
            continue
        if check:
            print(f"{name}: {readme.relative_to(root)} differs from {ledger}")
            bad = 1
            continue
        readme.write_text("\n".join(new))
        print(f"{name}: {readme.relative_to(root)} lines {i + 1}-{last + 1} replaced ({len(md)} lines)")
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
