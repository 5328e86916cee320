#!/usr/bin/python3
"""PyTorch side of bench/skipgram_vs_torch.c: skip-gram with sampled softmax, the model of nnlab's nl_dsg_sg_train.

Model: input vectors E [V, D] (uniform +-0.5/D), output vectors U [V, D] and biases b [V] (zeros); for every centre
position i of a document and every context position j with 0 < |i - j| <= window inside the document, the loss
-log softmax(z)_target over the candidates {target, s_1..s_K}, z_c = E[w_i] . U[c] + b[c] - log q[c], the K samples
drawn per pair from the unigram^0.75 distribution q, a sample equal to the target removed (masked), SGD with the
learning rate decaying linearly over the pairs. The idiomatic PyTorch form: pairs built with numpy, minibatches of
`--batch` pairs (nnlab updates after every pair), nn.Embedding(sparse=True) tables, gather + bmm for the candidate
logits, torch.optim.SGD on the sparse gradients, the loss summed over the batch (the per-pair step of nnlab).
Threads: OMP/OPENBLAS/MKL_NUM_THREADS set before torch is imported, and torch.set_num_threads(T).
Input: the token file written by the C side (--data). Prints, per repeat, and then a machine-readable line:
    TORCH_SKIPGRAM threads=T words=W pairs=P median_s=... cpu_s=... words_per_s=...
"""
import argparse
import os
import statistics
import struct
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--data", required=True)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=1024)
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import numpy as np
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.data, "rb") as f:
        n_docs, n_tok, V = struct.unpack("<qqq", f.read(24))
        off = np.frombuffer(f.read(8 * (n_docs + 1)), dtype=np.int64)
        ids = np.frombuffer(f.read(4 * n_tok), dtype=np.int32).astype(np.int64)
        q = np.frombuffer(f.read(4 * V), dtype=np.float32).astype(np.float64)
    # pairs (centre, context) in the order of nnlab: centre by centre, context left to right
    doc = np.repeat(np.arange(n_docs), np.diff(off))
    pos = np.arange(n_tok)
    cen, ctx = [], []
    for o in range(-a.window, a.window + 1):
        if o == 0:
            continue
        j = pos + o
        ok = (j >= 0) & (j < n_tok)
        ok[ok] &= doc[j[ok]] == doc[ok.nonzero()[0]]
        cen.append(pos[ok] * (2 * a.window + 1) + (o + a.window))
        ctx.append(np.stack([ids[pos[ok]], ids[j[ok]]], 1))
    order = np.argsort(np.concatenate(cen), kind="stable")
    pairs = torch.from_numpy(np.concatenate(ctx)[order])
    P = pairs.shape[0]
    qt = torch.tensor(q, dtype=torch.float32)
    logq = torch.log(qt.clamp_min(1e-30))
    D, K, B = a.dim, a.samples, a.batch
    times, cpus = [], []
    for rep in range(a.repeats):
        E = torch.nn.Embedding(V, D, sparse=True)
        U = torch.nn.Embedding(V, D, sparse=True)
        bias = torch.nn.Embedding(V, 1, sparse=True)
        with torch.no_grad():
            E.weight.uniform_(-0.5 / D, 0.5 / D)
            U.weight.zero_()
            bias.weight.zero_()
        opt = torch.optim.SGD(list(E.parameters()) + list(U.parameters()) + list(bias.parameters()), lr=a.lr)
        t0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, P, B):
            pb = pairs[start:start + B]
            n = pb.shape[0]
            for g in opt.param_groups:
                g["lr"] = max(a.lr * (1 - start / P), a.lr * 1e-4)
            samp = torch.multinomial(qt, n * K, replacement=True).view(n, K)
            cand = torch.cat([pb[:, 1:2], samp], 1)                          # [n, K + 1]
            h = E(pb[:, 0])                                                    # [n, D]
            z = torch.bmm(U(cand), h.unsqueeze(2)).squeeze(2) + bias(cand).squeeze(2) - logq[cand]
            z = z.masked_fill(torch.cat([torch.zeros(n, 1, dtype=torch.bool), samp == pb[:, 1:2]], 1), float("-inf"))
            loss = -torch.log_softmax(z, 1)[:, 0].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        print(f"torch repeat {rep + 1}: {times[-1]:.3f} s, last batch loss {loss.item() / n:.4f}", flush=True)
    med, cpu = statistics.median(times), statistics.median(cpus)
    print(f"TORCH_SKIPGRAM threads={a.threads} words={n_tok} pairs={P} median_s={med:.6f} cpu_s={cpu:.6f} "
          f"words_per_s={n_tok / med:.1f}", flush=True)


if __name__ == "__main__":
    main()
