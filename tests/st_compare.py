#!/usr/bin/env python3
"""Compare the weight tensors of two safetensors files (tests/test_mpi.sh): st_compare.py A B TOL [abs].
Tensors named train.* (optimizer state) are skipped. TOL 0: bitwise equal bytes; else max |a - b| / max |a| <= TOL
for every tensor (F32 or F64), or with `abs` max |a - b| <= TOL. Prints the worst difference; exit 1 on a failure
or different tensor sets."""
import json, struct, sys


def read(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        head = json.loads(f.read(n))
        body = f.read()
    head.pop('__metadata__', None)
    out = {}
    for name, t in head.items():
        if name.startswith('train.'):
            continue
        a, b = t['data_offsets']
        out[name] = (t['dtype'], body[a:b])
    return out


def main():
    a, b, tol = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3])
    absolute = len(sys.argv) > 4 and sys.argv[4] == 'abs'
    if sorted(a) != sorted(b):
        print('tensor sets differ'); return 1
    worst, bad = 0.0, 0
    for name in sorted(a):
        (da, xa), (db, xb) = a[name], b[name]
        if da != db or len(xa) != len(xb):
            print('%s: dtype/size differ' % name); bad = 1; continue
        if tol == 0:
            if xa != xb:
                print('%s differs bitwise' % name); bad = 1
            continue
        fmt = {'F32': 'f', 'F64': 'd'}[da]
        k = len(xa) // struct.calcsize(fmt)
        va, vb = struct.unpack('<%d%s' % (k, fmt), xa), struct.unpack('<%d%s' % (k, fmt), xb)
        mx = 1.0 if absolute else (max(abs(v) for v in va) or 1.0)
        rel = max(abs(u - v) for u, v in zip(va, vb)) / mx
        worst = max(worst, rel)
        if not rel <= tol:
            print('%s: %s difference %.3g > %g' % (name, 'absolute' if absolute else 'relative', rel, tol)); bad = 1
    print('%s vs %s: %d tensors, %s' % (sys.argv[1], sys.argv[2], len(a),
                                       'bitwise compared' if tol == 0 else 'worst %s difference %.3g (tol %g)' % ('absolute' if absolute else 'relative', worst, tol)))
    return bad


if __name__ == '__main__':
    sys.exit(main())
