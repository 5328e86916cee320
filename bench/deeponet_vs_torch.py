#!/usr/bin/python3
"""PyTorch side of bench/deeponet_vs_torch.c: the same DeepONet training loop as nnlab's nl_deeponet_train.

Unstacked DeepONet: branch Linear(100,40)-ReLU-Linear(40,40), trunk Linear(1,40)-ReLU-Linear(40,40)-ReLU,
G = sum_k b_k t_k + b0; MSE loss; Adam lr 1e-3. Data: N = 10000 random triples (u [N,100], y [N,1], s [N,1]); each
iteration gathers B rows of a per-epoch random permutation with index_select (B = N: the whole set, no gather).
zero_grad(set_to_none=True). Threads: OMP/OPENBLAS/MKL_NUM_THREADS set before torch is imported, and
torch.set_num_threads(T). Prints, per batch size, a machine-readable line:
    TORCH_DEEPONET threads=T batch=B iters=K median_s=... cpu_s=... iters_per_s=...
Usage: /usr/bin/python3 bench/deeponet_vs_torch.py --threads T [--repeats 3] [--iters-small 2000] [--iters-full 100]
"""
import argparse
import os
import statistics
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iters-small", type=int, default=2000)
    ap.add_argument("--iters-full", type=int, default=100)
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    N, M, P = 10000, 100, 40
    U = torch.randn(N, M)
    Y = torch.rand(N, 1)
    S = torch.randn(N, 1) * 0.1

    class DeepONet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.b1, self.b2 = torch.nn.Linear(M, P), torch.nn.Linear(P, P)
            self.t1, self.t2 = torch.nn.Linear(1, P), torch.nn.Linear(P, P)
            self.b0 = torch.nn.Parameter(torch.zeros(1))

        def forward(self, u, y):
            b = self.b2(torch.relu(self.b1(u)))
            t = torch.relu(self.t2(torch.relu(self.t1(y))))
            return (b * t).sum(dim=1, keepdim=True) + self.b0

    for B, iters in ((256, a.iters_small), (N, a.iters_full)):
        times, cpus = [], []
        for rep in range(a.repeats + 1):  # the first is a warmup
            model = DeepONet()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            perm, pos = torch.randperm(N), 0
            t0, c0 = time.perf_counter(), time.process_time()
            for it in range(iters):
                if B < N:
                    if pos + B > N:
                        perm, pos = torch.randperm(N), 0
                    idx = perm[pos:pos + B]
                    pos += B
                    u, y, s = U.index_select(0, idx), Y.index_select(0, idx), S.index_select(0, idx)
                else:
                    u, y, s = U, Y, S
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.mse_loss(model(u, y), s)
                loss.backward()
                opt.step()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if rep:
                times.append(dt)
                cpus.append(dc)
        med = statistics.median(times)
        print(f"TORCH_DEEPONET threads={a.threads} batch={B} iters={iters} median_s={med:.6f} cpu_s={statistics.median(cpus):.6f} iters_per_s={iters / med:.1f} "
              f"loss={loss.item():.4e}", flush=True)


if __name__ == "__main__":
    main()
