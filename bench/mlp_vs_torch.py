#!/usr/bin/python3
"""PyTorch side of bench/mlp_vs_torch.c: the same work as the nnlab loop.

784-256-256-10 ReLU MLP (nn.Linear default init), batch 128, SGD lr 0.01 momentum 0.9, cross-entropy, one epoch
= the 60,000 Fashion-MNIST training images (scaled to [0, 1]) in a fresh random order, batches gathered with
index_select (the last batch has 96 rows, as in nnlab). zero_grad(set_to_none=True), torch's fastest setting.
Threads: OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS are set before torch is imported, and
torch.set_num_threads(T). Prints one line per epoch and a final machine-readable line:
    TORCH_MLP threads=T median_s=... samples_per_s=... loss=...
Usage: /usr/bin/python3 bench/mlp_vs_torch.py --threads T [--epochs 5] [--warmup 1] [--data-dir DIR]
"""
import argparse
import gzip
import os
import statistics
import sys
import time


def read_idx(path):
    import numpy as np
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file")
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd)
    return data.reshape(dims)


def find(data_dir, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    raise SystemExit(f"mlp_vs_torch.py: {stem}[.gz] not found in {data_dir} (apt-get install dataset-fashion-mnist)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--data-dir", default=os.environ.get("NL_DATA_DIR", "/usr/share/datasets/fashion-mnist"))
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import numpy as np
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    x = read_idx(find(a.data_dir, "train-images-idx3-ubyte"))
    y = read_idx(find(a.data_dir, "train-labels-idx1-ubyte"))
    X = torch.from_numpy(x.reshape(x.shape[0], -1).astype(np.float32) / np.float32(255.0))
    Y = torch.from_numpy(y.astype(np.int64))
    n = X.shape[0]

    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def epoch():
        perm = torch.randperm(n)
        tot, nb = 0.0, 0
        for i in range(0, n, a.batch):
            idx = perm[i:i + a.batch]
            xb = X.index_select(0, idx)
            yb = Y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            tot += loss.item()
            nb += 1
        return tot / nb

    times = []
    loss = float("nan")
    for e in range(a.warmup + a.epochs):
        t0 = time.perf_counter()
        loss = epoch()
        dt = time.perf_counter() - t0
        tag = "warmup" if e < a.warmup else "timed"
        print(f"  torch   T={a.threads} epoch {e} ({tag}): {dt:.3f} s  mean loss {loss:.4f}", flush=True)
        if e >= a.warmup:
            times.append(dt)
    med = statistics.median(times)
    print(f"TORCH_MLP threads={a.threads} torch_threads={torch.get_num_threads()} median_s={med:.6f} "
          f"samples_per_s={n / med:.1f} loss={loss:.6f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
