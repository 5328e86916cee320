#!/usr/bin/env python3
"""Layout checks of the source tree (docs/architecture.md):

1. the dependency rule, read from the #include lines: engine (src/, include/nnlab/) includes only the engine;
   a library (lib/<name>/) the engine and libraries; a method (methods/<folder>/) the engine, the libraries and
   its own folder, never another method; only the registry (methods/registry.c, methods.h, test_registry.c) and
   the program (src/app/) see every method; nothing outside src/ includes the engine's private src/internal/;
   engine tests (tests/) include the engine only;
2. the size budget: no .c or .h file over 800 lines;
3. every method of methods/methods.def has its folder (method.c, <folder>.h, a test, README.md) and a row in the
   README's methods table that links its README.

usage: check_layout.py SOURCE_DIR   (prints one line per problem, then "N passed, M failed"; exit 1 on a failure)
"""
import os, re, sys

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..'))
MAX_LINES = 800
problems, checks = [], 0

def check(ok, msg):
    global checks
    checks += 1
    if not ok:
        problems.append(msg)

def rel(p):
    return os.path.relpath(p, root)

libs = sorted(d for d in os.listdir(os.path.join(root, 'lib')) if os.path.isdir(os.path.join(root, 'lib', d)))
methods_def = open(os.path.join(root, 'methods', 'methods.def')).read()
methods = re.findall(r'^NL_METHOD\(([a-z0-9_]+)\)', methods_def, re.M)
method_dirs = sorted(d for d in os.listdir(os.path.join(root, 'methods')) if os.path.isdir(os.path.join(root, 'methods', d)))
REGISTRY = {'methods/registry.c', 'methods/methods.h', 'methods/test_registry.c'}

def layer_of_file(r):
    """(layer, folder) of a source file; layer in engine, engine-test, lib, method, registry, program, other."""
    parts = r.split('/')
    if r in REGISTRY:
        return 'registry', None
    if parts[0] == 'src' and len(parts) > 1 and parts[1] == 'app':
        return 'program', None
    if parts[0] in ('src', 'include'):
        return 'engine', None
    if parts[0] == 'tests':
        return 'engine-test', None
    if parts[0] == 'lib' and len(parts) > 2:
        return 'lib', parts[1]
    if parts[0] == 'methods' and len(parts) > 2:
        return 'method', parts[1]
    return 'other', None

def target_of_include(inc, src_dir):
    """(layer, folder) an #include "..." resolves to."""
    first = inc.split('/')[0]
    if inc.startswith('nnlab/'):
        return 'engine', None
    if inc.startswith('internal/'):
        return 'internal', None
    if inc in ('methods.h', 'methods.def'):
        return 'registry', None
    if '/' in inc and first in libs:
        return 'lib', first
    if '/' in inc and first in method_dirs:
        return 'method', first
    if re.fullmatch(r'nltest(_[a-z]+)?\.h', inc):  # the test harness and its helpers in tests/ (engine API only)
        return 'test-harness', None
    if os.path.exists(os.path.join(src_dir, inc)):   # same-directory include
        return layer_of_file(rel(os.path.join(src_dir, inc)))
    return 'unknown', None

ALLOWED = {
    'engine': {'engine', 'internal'},
    'engine-test': {'engine', 'test-harness'},
    'lib': {'engine', 'lib'},
    'method': {'engine', 'lib', 'method'},
    'registry': {'engine', 'lib', 'method', 'registry', 'test-harness'},
    'program': {'engine', 'lib', 'method', 'registry', 'program'},
    'other': {'engine', 'lib', 'method', 'registry', 'other'},   # bench/, examples/, fuzz/
}

for top in ('src', 'include', 'lib', 'methods', 'tests', 'bench', 'examples', 'fuzz'):
    for dp, _, fs in os.walk(os.path.join(root, top)):
        for f in sorted(fs):
            if not f.endswith(('.c', '.h', '.def')):
                continue
            p = os.path.join(dp, f)
            r = rel(p)
            lines = open(p, encoding='utf-8', errors='replace').read().split('\n')
            if f.endswith(('.c', '.h')):
                n = len(lines) - (1 if lines and lines[-1] == '' else 0)
                check(n <= MAX_LINES, f'{r}: {n} lines (budget {MAX_LINES})')
            layer, folder = layer_of_file(r)
            for ln, line in enumerate(lines, 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m:
                    continue
                tl, tf = target_of_include(m.group(1), dp)
                where = f'{r}:{ln}: #include "{m.group(1)}"'
                check(tl != 'unknown', f'{where}: does not resolve to a file of the tree')
                if tl == 'unknown':
                    continue
                allowed = ALLOWED[layer] | ({'test-harness'} if f.startswith('test_') else set())
                check(tl in allowed, f'{where}: a {layer} file may not include a {tl} header')
                if layer == 'method' and tl == 'method':
                    check(tf == folder, f'{where}: method {folder} includes method {tf} (methods never depend on each other)')

# every registered method: folder, files, README row
readme = open(os.path.join(root, 'README.md')).read()
rows = [l for l in readme.split('\n') if l.startswith('|')]
for m in methods:
    mid = m.replace('_', '-')
    d = os.path.join(root, 'methods', m)
    check(os.path.isdir(d), f'methods.def names {m} but methods/{m}/ does not exist')
    if not os.path.isdir(d):
        continue
    for need in ('method.c', f'{m}.h', 'README.md'):
        check(os.path.exists(os.path.join(d, need)), f'methods/{m}/{need} is missing')
    check(any(f.startswith('test_') and f.endswith('.c') for f in os.listdir(d)), f'methods/{m}/ has no test_*.c')
    mc = open(os.path.join(d, 'method.c')).read() if os.path.exists(os.path.join(d, 'method.c')) else ''
    check(f'const nl_method nl_method_{m} = ' in mc and f'.id = "{mid}"' in mc,
          f'methods/{m}/method.c must define nl_method_{m} with .id = "{mid}" (the folder is the id with - as _)')
    check(any(f'`{mid}`' in l and f'methods/{m}/README.md' in l for l in rows),
          f'README.md has no methods-table row for `{mid}` linking methods/{m}/README.md')
for d in method_dirs:
    check(d in methods, f'methods/{d}/ is not registered in methods/methods.def')

for p in problems:
    print('FAIL', p)
print(f'{checks - len(problems)} passed, {len(problems)} failed')
sys.exit(1 if problems else 0)
