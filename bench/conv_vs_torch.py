#!/usr/bin/python3
"""PyTorch side of bench/conv_vs_torch.c: one conv2d forward + backward (dX, dW, db) per case, f32.

The cases are the same list as in conv_vs_torch.c (keep both in step). Threads: OMP/OPENBLAS/MKL_NUM_THREADS set before
importing torch, and torch.set_num_threads(T). Timing: median of `repeats` blocks of a calibrated number of calls
(~0.2 s) after one warmup block, wall and process CPU. Prints per case
    TORCH_CONV case=I ms=... cpu_ms=...
Usage: /usr/bin/python3 bench/conv_vs_torch.py --threads T [--repeats 5] [--case I]
"""
import argparse
import os
import statistics
import time

CASES = [  # N, C, S, O, k, stride, pad
    (64, 16, 16, 16, 3, 1, 1),
    (64, 32, 8, 32, 3, 1, 1),
    (64, 32, 4, 32, 3, 1, 1),
    (64, 16, 16, 16, 3, 2, 1),
    (64, 16, 16, 32, 1, 1, 0),
    (64, 1, 16, 16, 3, 1, 1),
    (16, 8, 28, 16, 5, 1, 2),
    (32, 32, 16, 64, 3, 2, 1),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--case", type=int, default=-1)
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for i, (n, c, s, o, k, st, p) in enumerate(CASES):
        if a.case >= 0 and i != a.case:
            continue
        x = torch.rand(n, c, s, s).requires_grad_(c > 1)
        w = torch.rand(o, c, k, k, requires_grad=True)
        b = torch.rand(o, requires_grad=True)
        oh = (s + 2 * p - k) // st + 1
        gy = torch.rand(n, o, oh, oh)

        def step():
            x.grad = w.grad = b.grad = None
            y = F.conv2d(x, w, b, stride=st, padding=p)
            y.backward(gy)

        step()
        t0 = time.perf_counter()
        step()
        inner = max(1, min(100000, int(0.2 / max(time.perf_counter() - t0, 1e-7))))
        ws, cs = [], []
        for r in range(-1, a.repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(inner):
                step()
            if r >= 0:
                ws.append((time.perf_counter() - w0) / inner)
                cs.append((time.process_time() - c0) / inner)
        print(f"TORCH_CONV case={i} ms={1e3 * statistics.median(ws):.3f} cpu_ms={1e3 * statistics.median(cs):.3f}", flush=True)


if __name__ == "__main__":
    main()
