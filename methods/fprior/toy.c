/* fprior/toy.c — the 1-D gap toy and one Boston split, the units the ledger entry repeats over seeds / splits:
 * fit the prior, measure its marginals against the GP, sample posteriors by SGHMC under the fitted, N(0,1) and
 * unfitted priors and score them (fprior_internal.h). */
#include "fprior/fprior_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 64 inputs uniform on [-10, -4] u [4, 10] (a gap of 40% of the range), y = f + N(0, 0.1), f ~ GP(RBF l = 1.8,
 * variance 1.6); x and y standardised. x [64], y [64]. */
static nl_status toy_data(uint64_t seed, double *x, double *y) {
    nl_rng r;
    nl_rng_init(&r, seed, 5);
    enum { N = FP_TOY_N };
    for (int i = 0; i < N; i++) {
        double u = 12 * nl_rng_uniform(&r);
        x[i] = u < 6 ? -10 + u : 4 + (u - 6);
    }
    nl_fp_gp g = {1, 0, 1.8, 1.6, 0, 0, 0};
    nl_status s = nl_fp_gp_functions(&g, &r, x, N, 1, y);
    if (s) return s;
    for (int i = 0; i < N; i++) y[i] += sqrt(0.1) * nl_rng_normal(&r);
    double mx = 0, my = 0, vx = 0, vy = 0;
    for (int i = 0; i < N; i++) mx += x[i] / N, my += y[i] / N;
    for (int i = 0; i < N; i++) vx += (x[i] - mx) * (x[i] - mx) / (N - 1), vy += (y[i] - my) * (y[i] - my) / (N - 1);
    for (int i = 0; i < N; i++) x[i] = (x[i] - mx) / sqrt(vx), y[i] = (y[i] - my) / sqrt(vy);
    return NL_OK;
}

nl_status fp_toy_run(const fp_cfg *c, uint64_t seed, fp_toy_out *o, nl_exp_result *curves) {
    double x[FP_TOY_N], y[FP_TOY_N], grid[FP_TOY_GRID], lo = INFINITY, hi = -INFINITY;
    nl_status s = toy_data(seed, x, y);
    if (s) return s;
    for (int i = 0; i < FP_TOY_N; i++) lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
    for (int i = 0; i < FP_TOY_GRID; i++) grid[i] = lo + (hi - lo) * i / (FP_TOY_GRID - 1);
    nl_fp_arch a = {1, c->toy_width, c->toy_depth};
    nl_fp_gp gp = {1, 0, 0.6, 1.0, 0, 0, 0}; /* target: GP RBF l = 0.6 (standardised x), variance 1 */
    nl_fp_prior fit = nl_fp_prior_init(&a, 1.0), unfit = nl_fp_prior_init(&a, 1.0), n01 = nl_fp_prior_fixed(1.0);
    double t0 = nl_fp_cpu_seconds();
    if ((s = nl_fp_fit(&a, &fit, &gp, &c->fit, x, FP_TOY_N, &lo, &hi, seed, NULL))) return s;
    o->fit_seconds = nl_fp_cpu_seconds() - t0;
    double m[4];
    const nl_fp_prior *pr[3] = {&fit, &n01, &unfit};
    for (int k = 0; k < 3; k++) {
        if ((s = nl_fp_marginals(&a, pr[k], &gp, grid, FP_TOY_GRID, c->marg_fn, seed + 100, m))) return s;
        o->sd_err[k] = m[0], o->w1[k] = m[1], o->sd_bnn[k] = m[2], o->sd_gp = m[3];
    }
    /* the gap: the standardised images of -4 and 4 are the largest left / smallest right training inputs' bounds */
    double gl = -INFINITY, gr = INFINITY;
    for (int i = 0; i < FP_TOY_N; i++) {
        if (x[i] < 0 && x[i] > gl) gl = x[i];
        if (x[i] > 0 && x[i] < gr) gr = x[i];
    }
    nl_fp_sghmc_cfg sc = c->toy_sghmc;
    const int S = sc.chains * sc.samples;
    double *pred = malloc(sizeof(double) * (size_t)S * FP_TOY_GRID); /* [S, grid] */
    if (!pred) return nl_set_error(NL_ENOMEM, "fprior toy: out of memory");
    for (int k = 0; k < 2 && !s; k++) {
        if ((s = nl_fp_sghmc(&a, pr[k], &sc, x, y, FP_TOY_N, grid, FP_TOY_GRID, seed + 7, pred))) break;
        double in = 0, out = 0;
        int nin = 0, nout = 0;
        nl_curve *cm = NULL, *cl = NULL, *ch = NULL;
        if (curves) {
            const char *nm = k == 0 ? "fitted prior" : "N(0,1) prior";
            char b[64];
            snprintf(b, sizeof b, "%s: mean", nm), cm = nl_exp_curve(curves, k == 0 ? "toy_fitted" : "toy_n01", b, "x (standardised)", "f");
            snprintf(b, sizeof b, "%s: mean - 2 sd", nm), cl = nl_exp_curve(curves, k == 0 ? "toy_fitted" : "toy_n01", b, "x (standardised)", "f");
            snprintf(b, sizeof b, "%s: mean + 2 sd", nm), ch = nl_exp_curve(curves, k == 0 ? "toy_fitted" : "toy_n01", b, "x (standardised)", "f");
        }
        for (int q = 0; q < FP_TOY_GRID; q++) {
            double mu = 0, v = 0;
            for (int t = 0; t < S; t++) mu += pred[(int64_t)t * FP_TOY_GRID + q] / S;
            for (int t = 0; t < S; t++) v += (pred[(int64_t)t * FP_TOY_GRID + q] - mu) * (pred[(int64_t)t * FP_TOY_GRID + q] - mu) / (S - 1);
            double sd = sqrt(v);
            if (grid[q] > gl && grid[q] < gr) in += sd, nin++;
            else out += sd, nout++;
            if (cm && cl && ch) nl_curve_add(cm, grid[q], mu), nl_curve_add(cl, grid[q], mu - 2 * sd), nl_curve_add(ch, grid[q], mu + 2 * sd);
        }
        o->band_gap[k] = nin ? in / nin : NAN, o->band_out[k] = nout ? out / nout : NAN;
        o->rhat[k] = nl_fp_rhat(pred, sc.chains, sc.samples, FP_TOY_GRID, NULL);
    }
    free(pred);
    o->seconds = nl_fp_cpu_seconds() - t0;
    return s;
}
