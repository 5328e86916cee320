#!/usr/bin/python3
"""PyTorch side of bench/norm_softmax.c: layernorm and softmax (last axis), forward and forward+backward, f32.

Same measurement as the C side: per call, the forward builds the graph (x, gamma, beta require grad) and the
fwd+bwd call also runs y.backward(g) (gradients set to None before each call, so nothing accumulates). Median
of 15 samples, each sample a calibrated run of about 20 ms of calls, after warmup.
Prints one machine-readable line per (op, shape):
    TORCH_NS op=<layernorm|softmax> R=<rows> D=<cols> fwd_s=<s> fb_s=<s>
Usage: /usr/bin/python3 bench/norm_softmax_torch.py --threads T --shapes 4096x256,1024x1024
"""
import argparse
import os
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shapes", default="4096x256,1024x1024")
    ap.add_argument("--samples", type=int, default=15)
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    def timeit(fn):
        fn()
        t0 = time.perf_counter()
        fn()
        dt = max(time.perf_counter() - t0, 1e-7)
        inner = max(1, min(100000, int(0.02 / dt)))
        for _ in range(3):
            fn()
        ts = []
        for _ in range(a.samples):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            ts.append((time.perf_counter() - t0) / inner)
        return statistics.median(ts)

    for spec in a.shapes.split(","):
        R, D = (int(v) for v in spec.lower().split("x"))
        x = (torch.rand(R, D) - 0.5).requires_grad_()
        g = torch.rand(R, D) - 0.5
        gamma = (1.0 + 0.1 * torch.rand(D)).requires_grad_()
        beta = (0.1 * torch.rand(D)).requires_grad_()

        def ln_f():
            F.layer_norm(x, (D,), gamma, beta, 1e-5)

        def ln_fb():
            x.grad = gamma.grad = beta.grad = None
            F.layer_norm(x, (D,), gamma, beta, 1e-5).backward(g)

        def sm_f():
            torch.softmax(x, dim=-1)

        def sm_fb():
            x.grad = None
            torch.softmax(x, dim=-1).backward(g)

        for name, f, fb in (("layernorm", ln_f, ln_fb), ("softmax", sm_f, sm_fb)):
            tf = timeit(f)
            tfb = timeit(fb)
            print(f"TORCH_NS op={name} R={R} D={D} fwd_s={tf:.9f} fb_s={tfb:.9f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
