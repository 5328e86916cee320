#!/usr/bin/python3
"""NTK of a fully connected ReLU network in NumPy: the same recursion as nnlab's nl_kernel_matrix
(neural-tangents conventions, NTK parametrisation), for bench/ntk_bench.c.

Input: a raw little-endian float64 file of n x d rows. The kernel is computed in row blocks (the Gram block by
one matmul, then the elementwise recursion on the block), the way one writes it in NumPy with bounded memory.
Prints one JSON line: {"seconds": ..., "n": ..., "d": ..., "threads": ...}. With --check FILE the first
--check-rows rows of the NTK are written to FILE (float64) for the C side to compare.

Run with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set by the caller (NumPy's matmul uses OpenBLAS here).
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def relu_ntk_block(x1, x2, q1, q2, depth, sw2, sb2):
    """NTK (and NNGP) of rows x1 against rows x2; q1, q2: the diagonal variances x.x/d."""
    d = x1.shape[1]
    S = (x1 @ x2.T) / d
    T = np.zeros_like(S)
    for _ in range(depth):
        S *= sw2
        S += sb2
        q1 = sw2 * q1 + sb2
        q2 = sw2 * q2 + sb2
        T *= sw2
        T += S
        prod = np.outer(q1, q2)
        s = np.sqrt(np.maximum(prod - S * S, 0.0))
        th = np.arctan2(s, S)
        G = (np.pi - th) / (2 * np.pi)
        S = (s + (np.pi - th) * S) / (2 * np.pi)
        T *= G
        q1 = q1 / 2
        q2 = q2 / 2
    S *= sw2
    S += sb2
    T *= sw2
    T += S
    return S, T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--x", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--sw", type=float, default=1.0)
    ap.add_argument("--sb", type=float, default=0.0)
    ap.add_argument("--block", type=int, default=1000)
    ap.add_argument("--check", default=None)
    ap.add_argument("--check-rows", type=int, default=4)
    a = ap.parse_args()
    X = np.fromfile(a.x, dtype=np.float64)
    if X.size != a.n * a.d:
        sys.exit("ntk_numpy.py: %s has %d values, expected %d x %d" % (a.x, X.size, a.n, a.d))
    X = X.reshape(a.n, a.d)
    sw2, sb2 = a.sw * a.sw, a.sb * a.sb
    t0 = time.perf_counter()
    q = (X * X).sum(axis=1) / a.d
    out = np.empty((a.n, a.n))
    for i0 in range(0, a.n, a.block):
        i1 = min(a.n, i0 + a.block)
        _, T = relu_ntk_block(X[i0:i1], X, q[i0:i1], q, a.depth, sw2, sb2)
        out[i0:i1] = T
    dt = time.perf_counter() - t0
    if a.check:
        out[: a.check_rows].tofile(a.check)
    print(json.dumps({"seconds": dt, "n": a.n, "d": a.d,
                      "threads": os.environ.get("OPENBLAS_NUM_THREADS", "?"), "numpy": np.__version__}))


if __name__ == "__main__":
    main()
