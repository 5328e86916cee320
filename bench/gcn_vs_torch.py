#!/usr/bin/python3
"""PyTorch side of bench/gcn_vs_torch.c: the same 2-layer GCN epoch on the same WordNet graph, with torch.sparse.

Everything comes from the file the C bench wrote (layout in bench/gcn_vs_torch.c, export_file): the normalised
adjacency Â = D^-1/2 (A + I) D^-1/2 and the row-normalised bag-of-words features as CSR arrays, labels, training
mask, the initial parameters W1 [2000, 64], b1, W2 [64, 26], b2, the SpMM input X [n, 64], and nnlab's forward
logits. So both sides use provably the same matrices and starting point; this script checks its own forward
logits (no dropout) against nnlab's (max |diff| <= 1e-4) before timing anything.

Model: logits = Â (dropout_0.5(relu(Â (F W1) + b1)) W2) + b2 with torch.sparse.mm for the three sparse products
(F W1, Â H twice); mean cross-entropy over the training nodes (ignore_index = C elsewhere, as nnlab);
torch.optim.Adam(lr 0.01, betas 0.9/0.999, eps 1e-8) with weight_decay 5e-4 on W1, W2 only (L2 in the gradient,
as nnlab's Adam). zero_grad(set_to_none=True). Both sparse layouts are timed: COO (coalesced; torch's default
sparse layout) and CSR (beta in torch 1.13). Timing: `warmup` untimed epochs, median of `epochs` timed ones; the
SpMM alone (Â X, forward; forward + backward via Y.sum().backward()) as a median of 9 samples calibrated to about
50 ms. Threads: OMP/OPENBLAS/MKL_NUM_THREADS set before torch is imported and torch.set_num_threads(T).
Prints machine-readable lines:
    TORCH_GCN_CHECK fwd_max_diff=... step_max_diff=... ok=0|1
    TORCH_GCN fmt=coo|csr threads=T epoch_s=... spmm_fwd_s=... spmm_fwdbwd_s=... loss=...
Usage: /usr/bin/python3 bench/gcn_vs_torch.py --threads T --data FILE [--epochs 10] [--warmup 2]
"""
import argparse
import os
import statistics
import sys
import time


class Reader:
    def __init__(self, path):
        import numpy as np
        self.np = np
        with open(path, "rb") as f:
            self.buf = f.read()
        self.off = 0
        if self.take("u1", 8).tobytes() != b"NLGCN001":
            raise SystemExit(f"{path}: not a gcn_vs_torch export (magic)")

    def take(self, dtype, count):
        a = self.np.frombuffer(self.buf, dtype=self.np.dtype(dtype).newbyteorder("<"), count=count, offset=self.off)
        self.off += a.nbytes
        return a

    def i64(self):
        return int(self.take("i8", 1)[0])

    def csr(self):
        rows, cols, nnz = self.i64(), self.i64(), self.i64()
        return rows, cols, self.take("i8", rows + 1), self.take("i4", nnz), self.take("f8", nnz)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import warnings
    import numpy as np
    import torch
    import torch.nn.functional as F
    warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    r = Reader(a.data)
    n, nfeat, C, H, D = (r.i64() for _ in range(5))
    A_csr = r.csr()
    F_csr = r.csr()
    y = torch.from_numpy(r.take("i4", n).astype(np.int64))
    train = torch.from_numpy(r.take("u1", n).astype(bool))
    W1_0 = torch.from_numpy(r.take("f4", nfeat * H).reshape(nfeat, H).copy())
    b1_0 = torch.from_numpy(r.take("f4", H).copy())
    W2_0 = torch.from_numpy(r.take("f4", H * C).reshape(H, C).copy())
    b2_0 = torch.from_numpy(r.take("f4", C).copy())
    loss0_nl = float(r.take("f8", 1)[0])
    logits0_nl = torch.from_numpy(r.take("f4", n * C).reshape(n, C).copy())
    loss1_nl = float(r.take("f8", 1)[0])
    logits1_nl = torch.from_numpy(r.take("f4", n * C).reshape(n, C).copy())
    X = torch.from_numpy(r.take("f4", n * D).reshape(n, D).copy())
    ysum_nl, yabs_nl = (float(v) for v in r.take("f8", 2))
    tgt = torch.where(train, y, torch.full_like(y, C))

    def to_sparse(m, fmt):
        rows, cols, rp, ci, val = m
        vals = torch.from_numpy(val.astype(np.float32))
        if fmt == "csr":
            return torch.sparse_csr_tensor(torch.from_numpy(rp.astype(np.int64)), torch.from_numpy(ci.astype(np.int64)),
                                           vals, (rows, cols))
        ri = np.repeat(np.arange(rows, dtype=np.int64), np.diff(rp))
        idx = torch.from_numpy(np.stack([ri, ci.astype(np.int64)]))
        return torch.sparse_coo_tensor(idx, vals, (rows, cols)).coalesce()

    def make_params():
        ps = [t.clone().requires_grad_(True) for t in (W1_0, b1_0, W2_0, b2_0)]
        opt = torch.optim.Adam([{"params": [ps[0], ps[2]], "weight_decay": 5e-4},
                                {"params": [ps[1], ps[3]], "weight_decay": 0.0}], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
        return ps, opt

    def forward(Ah, Fx, ps, p_drop, training):
        W1, b1, W2, b2 = ps
        h = torch.relu(torch.sparse.mm(Ah, torch.sparse.mm(Fx, W1)) + b1)
        h = F.dropout(h, p_drop, training)
        return torch.sparse.mm(Ah, h @ W2) + b2

    def epoch(Ah, Fx, ps, opt, p_drop):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(Ah, Fx, ps, p_drop, True), tgt, ignore_index=C)
        loss.backward()
        opt.step()
        return loss.item()

    def timed(fn, target=0.05, k=9):
        fn()
        t0 = time.perf_counter()
        fn()
        inner = max(1, min(100000, int(target / max(time.perf_counter() - t0, 1e-7))))
        ts = []
        fn()
        for _ in range(k):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            ts.append((time.perf_counter() - t0) / inner)
        return statistics.median(ts)

    ok = True
    for fmt in ("coo", "csr"):
        Ah, Fx = to_sparse(A_csr, fmt), to_sparse(F_csr, fmt)
        # checks: forward with the initial parameters, one Adam step without dropout, the SpMM checksum
        ps, opt = make_params()
        with torch.no_grad():
            lg0 = forward(Ah, Fx, ps, 0.0, False)
            l0 = F.cross_entropy(lg0, tgt, ignore_index=C).item()
        epoch(Ah, Fx, ps, opt, 0.0)
        with torch.no_grad():
            lg1 = forward(Ah, Fx, ps, 0.0, False)
            l1 = F.cross_entropy(lg1, tgt, ignore_index=C).item()
            Y = torch.sparse.mm(Ah, X)
        d0 = (lg0 - logits0_nl).abs().max().item()
        d1 = (lg1 - logits1_nl).abs().max().item()
        ysum, yabs = Y.double().sum().item(), Y.double().abs().sum().item()
        good = d0 <= 1e-4 and abs(l0 - loss0_nl) <= 1e-4 and abs(yabs - yabs_nl) <= 1e-5 * yabs_nl
        ok = ok and good
        print(f"  torch-{fmt} T={a.threads} check: forward logits max|diff| {d0:.3g}, loss {l0:.6f} vs nnlab {loss0_nl:.6f}; "
              f"after one Adam step max|diff| {d1:.3g}, loss {l1:.6f} vs {loss1_nl:.6f}; "
              f"sum(Â X) {ysum:.6g} vs {ysum_nl:.6g}, sum|Â X| {yabs:.8g} vs {yabs_nl:.8g} -> {'ok' if good else 'FAIL'}",
              flush=True)
        if fmt == "coo":
            print(f"TORCH_GCN_CHECK fwd_max_diff={d0:.6g} step_max_diff={d1:.6g} ok={int(good)}", flush=True)

        ps, opt = make_params()
        times, loss = [], float("nan")
        for e in range(a.warmup + a.epochs):
            t0 = time.perf_counter()
            loss = epoch(Ah, Fx, ps, opt, 0.5)
            dt = time.perf_counter() - t0
            tag = "warmup" if e < a.warmup else "timed"
            print(f"  torch-{fmt} T={a.threads} epoch {e} ({tag}): {dt:.4f} s  loss {loss:.4f}", flush=True)
            if e >= a.warmup:
                times.append(dt)

        def spmm_fwd():
            with torch.no_grad():
                torch.sparse.mm(Ah, X)

        Xg = X.clone().requires_grad_(True)

        def spmm_fwdbwd():
            Xg.grad = None
            torch.sparse.mm(Ah, Xg).sum().backward()

        tf, tfb = timed(spmm_fwd), timed(spmm_fwdbwd)
        print(f"TORCH_GCN fmt={fmt} threads={a.threads} torch_threads={torch.get_num_threads()} "
              f"epoch_s={statistics.median(times):.6f} spmm_fwd_s={tf:.6f} spmm_fwdbwd_s={tfb:.6f} loss={loss:.6f}",
              flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
