#!/usr/bin/python3
"""PyTorch side of bench/noprop_vs_torch.c: NoProp-DT and backprop of the same T-block network.

Reads the file the C bench writes (layout in noprop_vs_torch.c: standardised images, labels, the schedule, every
block's initial parameters, two check values), builds the same blocks (nn.Linear + BatchNorm1d(eps 1e-5,
momentum 0.1) + ReLU as in methods/noprop/model.c), checks block 1's train-mode logits and the backprop chain's CE
against nnlab's (max |diff| <= 1e-4), then times one epoch (batch 128, fresh order, last partial batch dropped) of
  bp: the chain z_0 ~ N(0, I), z_t = a_t softmax(f_t) E + b_t z_{t-1} + sqrt(c_t) eps, CE on block T's logits, one
      AdamW (lr 1e-3, wd 1e-3) per block plus one for the classifier, all stepped once per batch;
  dt: per batch, for t = 1..T: L_t = CE(W z_T + b, y) + KL(abar_0 = 0) + w_t d mse(softmax(f_t(x, z_{t-1})) E, u_y)
      with z_s ~ q(z_s | y) drawn directly, backward, step block t's AdamW and the classifier's.
Prints TORCH_CHECK ... and one TORCH_NOPROP variant=... line per variant.
Usage: /usr/bin/python3 bench/noprop_vs_torch.py --threads T --file F [--epochs 3] [--warmup 1]
"""
import argparse
import copy
import math
import os
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--file", required=True)
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    raw = open(a.file, "rb").read()
    if raw[:8] != b"NLNPB001":
        raise SystemExit(f"{a.file}: not a noprop bench file")
    pos = 8

    def take(dtype, count):
        nonlocal pos
        arr = np.frombuffer(raw, dtype=dtype, count=count, offset=pos)
        pos += arr.nbytes
        return arr

    n, d_img, C, d, H, T, B = (int(v) for v in take("<i8", 7))
    X = torch.from_numpy(take("<f4", n * d_img).reshape(n, d_img).copy())
    Y = torch.from_numpy(take("<i4", n).astype(np.int64))
    abar, w, ca, cb, cc = (take("<f8", T + 1).tolist() for _ in range(5))

    def fc():
        o, i, bn = (int(v) for v in take("<i8", 3))
        lin = nn.Linear(i, o)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(take("<f4", o * i).reshape(o, i).copy()))
            lin.bias.copy_(torch.from_numpy(take("<f4", o).copy()))
        if not bn:
            return nn.Sequential(lin)
        norm = nn.BatchNorm1d(o, eps=1e-5, momentum=0.1)
        with torch.no_grad():
            for p in (norm.weight, norm.bias, norm.running_mean, norm.running_var):
                p.copy_(torch.from_numpy(take("<f4", o).copy()))
        return nn.Sequential(lin, norm)

    class Block(nn.Module):  # image FC-BN-ReLU, z FC-BN-ReLU, concat, FC-BN-ReLU, FC-BN-ReLU, FC
        def __init__(self):
            super().__init__()
            self.img, self.zb, self.f1, self.f2, self.out = fc(), fc(), fc(), fc(), fc()

        def forward(self, x, z):
            h = torch.cat((F.relu(self.img(x)), F.relu(self.zb(z))), 1)
            return self.out(F.relu(self.f2(F.relu(self.f1(h)))))

    init = [Block() for _ in range(T)]
    E = torch.from_numpy(take("<f4", C * d).reshape(C, d).copy())  # one-hot embedding, frozen
    cls_w0, cls_b0 = take("<f4", C * d).reshape(C, d).copy(), take("<f4", C).copy()
    z_chk = torch.from_numpy(take("<f4", B * d).reshape(B, d).copy())
    lg_nl = torch.from_numpy(take("<f4", B * C).reshape(B, C).copy())
    noise_chk = torch.from_numpy(take("<f4", T * B * d).reshape(T, B, d).copy())
    ce_nl = float(take("<f8", 1)[0])

    def fresh():  # blocks, classifier and optimizers from the exported initial state
        blocks = [copy.deepcopy(b).train() for b in init]
        cls = nn.Linear(d, C)
        with torch.no_grad():
            cls.weight.copy_(torch.from_numpy(cls_w0))
            cls.bias.copy_(torch.from_numpy(cls_b0))
        opts = [torch.optim.AdamW(b.parameters(), lr=1e-3, weight_decay=1e-3) for b in blocks]
        return blocks, cls, opts, torch.optim.AdamW(cls.parameters(), lr=1e-3, weight_decay=1e-3)

    def chain_ce(blocks, x, y, noises):
        z = noises[0]
        for t in range(1, T + 1):
            lg = blocks[t - 1](x, z)
            if t == T:
                return F.cross_entropy(lg, y)
            z = ca[t] * (F.softmax(lg, 1) @ E) + cb[t] * z + math.sqrt(cc[t]) * noises[t]

    blocks, cls, _, _ = fresh()
    with torch.no_grad():
        d_lg = (blocks[0](X[:B], z_chk) - lg_nl).abs().max().item()
        ce_t = chain_ce(blocks, X[:B], Y[:B], noise_chk).item()
        d_ce = abs(ce_t - ce_nl)
    ok = int(d_lg <= 1e-4 and d_ce <= 1e-4)
    print(f"TORCH_CHECK threads={a.threads} hidden={H} logits_diff={d_lg:.3g} ce_diff={d_ce:.3g} ok={ok} "
          f"(chain CE torch {ce_t:.7f}, nnlab {ce_nl:.7f})", flush=True)

    def kl0(u):  # KL(N(sqrt(abar_0) u, (1 - abar_0) I) || N(0, I)) averaged over rows; abar_0 = 0
        s = abar[0]
        return 0.5 * s * (u * u).sum() / u.shape[0] + 0.5 * (d * (1 - s) - d - d * math.log1p(-s))

    def epoch(variant, blocks, cls, opts, copt):
        perm = torch.randperm(n)
        tot, cnt = 0.0, 0
        for i in range(0, n - B + 1, B):
            idx = perm[i:i + B]
            x, y = X.index_select(0, idx), Y.index_select(0, idx)
            u = E.index_select(0, y)  # [B, d] u_y
            if variant == "bp":
                for o in opts:
                    o.zero_grad(set_to_none=True)
                copt.zero_grad(set_to_none=True)
                loss = chain_ce(blocks, x, y, torch.randn(T, B, d))
                loss.backward()
                for o in opts:
                    o.step()
                copt.step()
                tot, cnt = tot + loss.item(), cnt + 1
                continue
            for t in range(1, T + 1):
                opts[t - 1].zero_grad(set_to_none=True)
                copt.zero_grad(set_to_none=True)
                z = math.sqrt(abar[t - 1]) * u + math.sqrt(1 - abar[t - 1]) * torch.randn(B, d)
                uh = F.softmax(blocks[t - 1](x, z), 1) @ E
                zT = math.sqrt(abar[T]) * u + math.sqrt(1 - abar[T]) * torch.randn(B, d)
                loss = F.cross_entropy(cls(zT), y) + kl0(u) + w[t] * d * F.mse_loss(uh, u)
                loss.backward()
                opts[t - 1].step()
                copt.step()
                tot, cnt = tot + loss.item(), cnt + 1
        return tot / cnt

    for variant in ("dt", "bp"):
        state = fresh()
        times, cpus, loss = [], [], float("nan")
        for e in range(a.warmup + a.epochs):
            t0, c0 = time.perf_counter(), time.process_time()
            loss = epoch(variant, *state)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            tag = "warmup" if e < a.warmup else "timed"
            print(f"  torch {variant:8s} T={a.threads} epoch {e} ({tag}): {dt:.3f} s  cpu {dc:.3f} s  mean loss {loss:.4f}", flush=True)
            if e >= a.warmup:
                times.append(dt)
                cpus.append(dc)
        print(f"TORCH_NOPROP variant={variant} hidden={H} threads={a.threads} torch_threads={torch.get_num_threads()} "
              f"median_s={statistics.median(times):.6f} cpu_median_s={statistics.median(cpus):.6f} loss={loss:.6f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
