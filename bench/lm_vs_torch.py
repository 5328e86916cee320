#!/usr/bin/python3
"""PyTorch side of bench/lm_vs_torch.c: the same decoder-only transformer LM training step as nnlab's.

Model (include/transformer/transformer.h): byte vocabulary 256, token embedding tied to the output matrix, L pre-norm
blocks of [LayerNorm -> fused qkv Linear (no bias) -> RoPE (rotate_half pairing, base 1e4) on q, k -> causal
softmax attention -> output Linear (no bias) -> residual] and [LayerNorm -> Linear(d, 4d) -> exact GELU ->
Linear(4d, d) -> residual], final LayerNorm, logits = x E^T, mean cross-entropy. AdamW (lr 3e-3, betas 0.9/0.99,
wd 0.01 on matrices only), global-norm clipping at 1. torch 1.13 (Debian python3-torch) has no fused
scaled_dot_product_attention, so attention is q k^T * scale + causal mask, softmax, @ v — what the library's
`torch.nn.functional` offers in this version.

Data: random windows of the same byte stream (the file given with --data, uint8), the same B x T shape as nnlab.
Threads: OMP/OPENBLAS/MKL_NUM_THREADS set before torch is imported and torch.set_num_threads(T).
Prints a final machine-readable line:
    TORCH_LM threads=T median_s=... tokens_per_s=... loss=... cpu_median_s=... (process CPU time per step)
Usage: /usr/bin/python3 bench/lm_vs_torch.py --threads T --data FILE [--layers 2 --d-model 128 --heads 4
       --context 128 --batch 16 --steps 20 --warmup 3]
"""
import argparse
import os
import statistics
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", required=True)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import math
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    data = torch.from_numpy(np.fromfile(a.data, dtype=np.uint8).astype(np.int64))
    d, H, T, B = a.d_model, a.heads, a.context, a.batch
    Dh = d // H

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d, bias=False)
            self.out = nn.Linear(d, d, bias=False)
            self.norm2 = nn.LayerNorm(d)
            self.fc1 = nn.Linear(d, 4 * d)
            self.fc2 = nn.Linear(4 * d, d)

        def forward(self, x, cos, sin, mask):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, H, Dh).permute(2, 0, 3, 1, 4)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(Dh)) + mask
            o = torch.softmax(s, dim=-1) @ v
            x = x + self.out(o.transpose(1, 2).reshape(b, t, d))
            return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))

    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(256, d)
            nn.init.normal_(self.emb.weight, std=0.02)
            self.blocks = nn.ModuleList([Block() for _ in range(a.layers)])
            self.norm_f = nn.LayerNorm(d)

        def forward(self, ids, cos, sin, mask):
            x = self.emb(ids)
            for blk in self.blocks:
                x = blk(x, cos, sin, mask)
            return self.norm_f(x) @ self.emb.weight.t()

    model = LM()
    theta = 1.0 / (10000.0 ** (torch.arange(0, Dh, 2, dtype=torch.float64) / Dh))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * theta[None, :]
    ang = torch.cat((ang, ang), dim=-1)
    cos, sin = ang.cos().float(), ang.sin().float()
    mask = torch.full((T, T), float("-inf")).triu(1)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-3, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(1)

    def step():
        start = torch.randint(0, data.numel() - T - 1, (B,), generator=g)
        idx = start[:, None] + torch.arange(T + 1)[None, :]
        w = data[idx]
        x, y = w[:, :-1], w[:, 1:]
        opt.zero_grad(set_to_none=True)
        logits = model(x, cos, sin, mask)
        loss = F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    times, cpus, loss = [], [], float("nan")
    for i in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if i >= a.warmup:
            times.append(dt)
            cpus.append(dc)
    med, cmed = statistics.median(times), statistics.median(cpus)
    print(f"  torch   T={a.threads}: {a.steps} timed steps, median {med * 1e3:.2f} ms/step, last loss {loss:.4f}")
    print(f"TORCH_LM threads={a.threads} median_s={med:.6f} tokens_per_s={B * T / med:.1f} loss={loss:.4f} "
          f"cpu_median_s={cmed:.6f}", flush=True)


if __name__ == "__main__":
    main()
