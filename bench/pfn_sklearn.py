#!/usr/bin/python3
"""scikit-learn side of bench/pfn_bench.c: MLE-II with GaussianProcessRegressor on the benchmark's own tasks.

Reads the tasks written by bench_pfn_bench (CSV rows: task, n, role, x, y; role 0 = context point, 1 = query) and,
per task, fits GaussianProcessRegressor(ConstantKernel * Matern(nu=2.5) + WhiteKernel) by type-II maximum likelihood
(scikit-learn's L-BFGS-B, `--restarts` starts: the first at the kernel's initial values, the others drawn
log-uniformly within the bounds), then predicts the queries (the predictive std includes the fitted noise) and
scores each query's Gaussian NLL. The time per task covers fit + predict + NLL, as the nnlab side times it, in
CPU seconds of the process (time.process_time; the nnlab side uses CLOCK_PROCESS_CPUTIME_ID), so that a loaded
shared machine does not skew the ratio.
Threads: OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS are set by the caller before numpy is imported.
Prints one line per n and a final machine-readable line:
    SKLEARN_GP n=N tasks=K seconds_per_task=... nll=...   (one per n)
    SKLEARN_GP n=all tasks=K seconds_per_task=... nll=...
Usage: /usr/bin/python3 bench/pfn_sklearn.py --tasks FILE [--restarts R]
"""
import argparse
import math
import time
import warnings


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", required=True)
    ap.add_argument("--restarts", type=int, default=1)
    a = ap.parse_args()
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    rows = np.loadtxt(a.tasks, delimiter=",", ndmin=2)
    tasks = {}
    for t, n, role, x, y in rows:
        d = tasks.setdefault(int(t), {"n": int(n), "xc": [], "yc": [], "xq": [], "yq": []})
        if role == 0:
            d["xc"].append(x), d["yc"].append(y)
        else:
            d["xq"].append(x), d["yq"].append(y)
    by_n = {}
    for t in sorted(tasks):
        d = tasks[t]
        xc, yc = np.array(d["xc"])[:, None], np.array(d["yc"])
        xq, yq = np.array(d["xq"])[:, None], np.array(d["yq"])
        t0 = time.process_time()
        k = ConstantKernel(1.0, (1e-5, 1e5)) * Matern(0.5, (1e-3, 1e3), nu=2.5) + WhiteKernel(0.1, (1e-5, 1e5))
        gp = GaussianProcessRegressor(kernel=k, n_restarts_optimizer=a.restarts - 1, random_state=t)
        gp.fit(xc, yc)
        mu, sd = gp.predict(xq, return_std=True)
        nll = float(np.mean(0.5 * np.log(2 * math.pi * sd ** 2) + 0.5 * (yq - mu) ** 2 / sd ** 2))
        dt = time.process_time() - t0
        s = by_n.setdefault(d["n"], [0, 0.0, 0.0])
        s[0] += 1
        s[1] += dt
        s[2] += nll
    tot = [0, 0.0, 0.0]
    for n in sorted(by_n):
        c, dt, nll = by_n[n]
        print(f"SKLEARN_GP n={n} tasks={c} seconds_per_task={dt / c:.6g} nll={nll / c:.6g}")
        tot[0] += c
        tot[1] += dt
        tot[2] += nll
    print(f"SKLEARN_GP n=all tasks={tot[0]} seconds_per_task={tot[1] / tot[0]:.6g} nll={tot[2] / tot[0]:.6g}")


if __name__ == "__main__":
    main()
