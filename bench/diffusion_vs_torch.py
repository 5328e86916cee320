#!/usr/bin/python3
"""PyTorch side of bench/diffusion_vs_torch.c: one DDPM training step of the same UNet as lib/diffusion.

UNet: conv_in 3x3 -> per level ResBlock (+ stride-2 conv down) -> mid ResBlock, one-head attention, ResBlock ->
per level 2 ResBlocks on concat(h, skip) (+ nearest 2x upsample and 3x3 conv) -> GroupNorm, SiLU, conv_out.
ResBlock: conv(SiLU(GN(x))) + Linear(SiLU(temb)), conv(SiLU(GN(h))), 1x1 skip when channels change. Sinusoidal time
embedding (dim ch) -> Linear(ch, 4ch) -> SiLU -> Linear(4ch, 4ch). Loss: MSE(eps_hat, eps) at uniform t of a linear
schedule (T = 1000); AdamW lr 1e-3. Threads: OMP/OPENBLAS/MKL_NUM_THREADS set before importing torch, and
torch.set_num_threads(T). Prints
    TORCH_DIFFUSION threads=T params=P step_ms=... cpu_ms=...
Usage: /usr/bin/python3 bench/diffusion_vs_torch.py --threads T [--size 16] [--ch 16] [--batch 64] [--steps 10] [--repeats 3]
"""
import argparse
import math
import os
import statistics
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--ch", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    ch, groups, mult = a.ch, (8 if a.ch >= 32 else 4), (1, 2, 2)
    te = 4 * ch

    class Res(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.n1, self.c1 = nn.GroupNorm(groups, i), nn.Conv2d(i, o, 3, padding=1)
            self.t = nn.Linear(te, o)
            self.n2, self.c2 = nn.GroupNorm(groups, o), nn.Conv2d(o, o, 3, padding=1)
            self.skip = nn.Conv2d(i, o, 1) if i != o else None

        def forward(self, x, ta):
            h = self.c1(F.silu(self.n1(x))) + self.t(ta)[:, :, None, None]
            h = self.c2(F.silu(self.n2(h)))
            return (self.skip(x) if self.skip is not None else x) + h

    class Attn(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.n = nn.GroupNorm(groups, c)
            self.q, self.k, self.v, self.p = (nn.Linear(c, c) for _ in range(4))

        def forward(self, x):
            N, C, H, W = x.shape
            h = self.n(x).reshape(N, C, H * W).transpose(1, 2)
            w = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) / math.sqrt(C), dim=-1)
            return x + self.p(w @ self.v(h)).transpose(1, 2).reshape(N, C, H, W)

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            L = len(mult)
            chs = [ch * m for m in mult]
            self.cin = nn.Conv2d(1, ch, 3, padding=1)
            self.f1, self.f2 = nn.Linear(ch, te), nn.Linear(te, te)
            self.down, self.downs = nn.ModuleList(), nn.ModuleList()
            prev = ch
            for l in range(L):
                self.down.append(Res(prev, chs[l]))
                prev = chs[l]
                if l < L - 1:
                    self.downs.append(nn.Conv2d(prev, prev, 3, stride=2, padding=1))
            self.m1, self.attn, self.m2 = Res(prev, prev), Attn(prev), Res(prev, prev)
            self.up, self.ups = nn.ModuleList(), nn.ModuleList()
            for l in reversed(range(L)):
                s1 = chs[l - 1] if l > 0 else ch
                self.up.append(nn.ModuleList([Res(prev + chs[l], chs[l]), Res(chs[l] + s1, chs[l])]))
                prev = chs[l]
                if l > 0:
                    self.ups.append(nn.Conv2d(prev, prev, 3, padding=1))
            self.nout, self.cout = nn.GroupNorm(groups, prev), nn.Conv2d(prev, 1, 3, padding=1)
            self.L = L

        def forward(self, x, t):
            half = ch // 2
            f = torch.exp(-math.log(10000.0) * torch.arange(half) / max(half - 1, 1))
            e = t[:, None] * f[None]
            emb = torch.cat([torch.sin(e), torch.cos(e)], 1)
            ta = F.silu(self.f2(F.silu(self.f1(emb))))
            h = self.cin(x)
            st = [h]
            for l in range(self.L):
                h = self.down[l](h, ta)
                st.append(h)
                if l < self.L - 1:
                    h = self.downs[l](h)
                    st.append(h)
            h = self.m2(self.attn(self.m1(h, ta)), ta)
            for i, l in enumerate(reversed(range(self.L))):
                for r in range(2):
                    h = self.up[i][r](torch.cat([h, st.pop()], 1), ta)
                if l > 0:
                    h = self.ups[i](F.interpolate(h, scale_factor=2, mode="nearest"))
            return self.cout(F.silu(self.nout(h)))

    model = UNet()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    beta = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - beta, 0).float()
    x0 = torch.rand(a.batch, 1, a.size, a.size) * 2 - 1

    def step():
        t = torch.randint(0, 1000, (a.batch,))
        eps = torch.randn_like(x0)
        ab = abar[t][:, None, None, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(xt, t.float()), eps)
        loss.backward()
        opt.step()
        return loss

    for _ in range(2):
        step()
    ws, cs = [], []
    for _ in range(a.repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            step()
        ws.append((time.perf_counter() - w0) / a.steps)
        cs.append((time.process_time() - c0) / a.steps)
    n = sum(p.numel() for p in model.parameters())
    print(f"TORCH_DIFFUSION threads={a.threads} params={n} step_ms={1e3 * statistics.median(ws):.2f} "
          f"cpu_ms={1e3 * statistics.median(cs):.2f}", flush=True)


if __name__ == "__main__":
    main()
