/* GP regression baselines: type-II ML / MAP by L-BFGS and the fully Bayesian predictive by slice sampling over
 * the hyperparameters (include/gp/gp.h, lib/gp/README.md). */
#include "gpr_internal.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U_BOUND 15.0 /* |u_j| <= 15 for every unconstrained coordinate */
#define LBFGS_M 7

/* ---------------- shared parametrisation ----------------
 * u = (log ls_1..d, log os, log(noise - noise_min)) [d + 2]. */

typedef struct gpr_obj {
    const nl_gpr_hyperprior *prior; /* NULL: plain ML */
    nl_gpr_kernel kernel;
    int dim;
    double noise_min;
    const double *x, *y; /* x [n, d], y [n] */
    int64_t n;
} gpr_obj;

static void u_to_hyper(const gpr_obj *o, const double *u, nl_gpr_hyper *h) {
    memset(h, 0, sizeof *h);
    h->kernel = o->kernel;
    h->dim = o->dim;
    for (int i = 0; i < o->dim; i++) h->lengthscale[i] = exp(u[i]);
    h->outputscale = exp(u[o->dim]);
    h->noise = o->noise_min + exp(u[o->dim + 1]);
}

static void hyper_to_u(const gpr_obj *o, const nl_gpr_hyper *h, double *u) {
    for (int i = 0; i < o->dim; i++) u[i] = log(h->lengthscale[i]);
    u[o->dim] = log(h->outputscale);
    double e = h->noise - o->noise_min;
    u[o->dim + 1] = log(e > 1e-3 * h->noise ? e : 1e-3 * h->noise);
    for (int i = 0; i < o->dim + 2; i++) u[i] = fmin(fmax(u[i], -U_BOUND), U_BOUND);
}

/* Objective lml (+ log prior) and its gradient in u (g may be NULL). Returns 0 on success. */
static int objective(const gpr_obj *o, const double *u, double *f, double *g) {
    int d = o->dim;
    nl_gpr_hyper h;
    u_to_hyper(o, u, &h);
    double lml, gt[NL_GPR_MAX_DIM + 2];
    if (nl_gpr_lml(&h, o->x, o->y, o->n, &lml, g ? gt : NULL)) return 1;
    if (!isfinite(lml)) return 1;
    double val = lml;
    double nz = h.noise, ex = h.noise - o->noise_min;
    if (g) {
        for (int i = 0; i <= d; i++) g[i] = gt[i];
        g[d + 1] = gt[d + 1] * ex / nz;
    }
    if (o->prior) {
        const nl_gpr_hyperprior *p = o->prior;
        val += nl_gpr_hyperprior_logpdf(p, &h);
        if (g) {
            for (int i = 0; i < d; i++) g[i] += (p->ls_a - 1.0) - p->ls_b * h.lengthscale[i];
            g[d] += (p->os_a - 1.0) - p->os_b * h.outputscale;
            g[d + 1] += ((p->noise_a - 1.0) / nz - p->noise_b) * ex;
        }
    }
    if (!isfinite(val)) return 1;
    *f = val;
    return 0;
}

static nl_status check_data(const char *who, int d, const double *x, const double *y, int64_t n, int allow_empty) {
    if (n < (allow_empty ? 0 : 1))
        return nl_set_error(NL_EINVAL, "%s: n = %lld must be >= %d", who, (long long)n, allow_empty ? 0 : 1);
    if (n > 0 && (!x || !y)) return nl_set_error(NL_EINVAL, "%s: x and y must not be NULL", who);
    if (n > 0 && (!nl_gpr__all_finite(x, n * d) || !nl_gpr__all_finite(y, n)))
        return nl_set_error(NL_EINVAL, "%s: NaN or Inf in the inputs", who);
    return NL_OK;
}

/* ---------------- L-BFGS (maximises the objective) ---------------- */

static double dot(const double *a, const double *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Runs from u (in/out), returns the best objective in *fbest; 0 on success, 1 if the start point failed. */
static int lbfgs_run(const gpr_obj *o, double *u, int iters, double *fbest) {
    int D = o->dim + 2;
    double f, g[NL_GPR_MAX_DIM + 2];
    if (objective(o, u, &f, g)) return 1;
    /* minimise F = -f, gradient G = -g */
    double S[LBFGS_M][NL_GPR_MAX_DIM + 2], Y[LBFGS_M][NL_GPR_MAX_DIM + 2], rho[LBFGS_M];
    int mem = 0, head = 0;
    for (int it = 0; it < iters; it++) {
        double G[NL_GPR_MAX_DIM + 2], dir[NL_GPR_MAX_DIM + 2], gmax = 0;
        for (int i = 0; i < D; i++) {
            G[i] = -g[i];
            /* a coordinate held at its bound with the gradient pointing outwards does not count */
            int out = (u[i] >= U_BOUND && G[i] < 0) || (u[i] <= -U_BOUND && G[i] > 0);
            if (!out) gmax = fmax(gmax, fabs(G[i]));
        }
        if (gmax < 1e-6) break;
        /* two-loop recursion */
        double q[NL_GPR_MAX_DIM + 2], a[LBFGS_M];
        memcpy(q, G, sizeof(double) * D);
        for (int k = 0; k < mem; k++) {
            int j = (head - 1 - k + LBFGS_M) % LBFGS_M;
            a[j] = rho[j] * dot(S[j], q, D);
            for (int i = 0; i < D; i++) q[i] -= a[j] * Y[j][i];
        }
        if (mem > 0) {
            int j = (head - 1 + LBFGS_M) % LBFGS_M;
            double gam = dot(S[j], Y[j], D) / dot(Y[j], Y[j], D);
            for (int i = 0; i < D; i++) q[i] *= gam;
        }
        for (int k = mem - 1; k >= 0; k--) {
            int j = (head - 1 - k + LBFGS_M) % LBFGS_M;
            double b = rho[j] * dot(Y[j], q, D);
            for (int i = 0; i < D; i++) q[i] += S[j][i] * (a[j] - b);
        }
        for (int i = 0; i < D; i++) dir[i] = -q[i];
        if (dot(dir, G, D) >= 0) { /* not a descent direction: restart from steepest descent */
            mem = 0;
            for (int i = 0; i < D; i++) dir[i] = -G[i];
        }
        double dmax = 0;
        for (int i = 0; i < D; i++) dmax = fmax(dmax, fabs(dir[i]));
        double step = dmax > 3.0 ? 3.0 / dmax : 1.0; /* at most 3 in log space per iteration */
        if (mem == 0 && it == 0 && dmax > 0) step = fmin(step, 1.0 / dmax);
        double un[NL_GPR_MAX_DIM + 2], fn = 0, gn[NL_GPR_MAX_DIM + 2];
        int ok = 0;
        for (int ls = 0; ls < 40; ls++) {
            for (int i = 0; i < D; i++) un[i] = fmin(fmax(u[i] + step * dir[i], -U_BOUND), U_BOUND);
            double du[NL_GPR_MAX_DIM + 2];
            for (int i = 0; i < D; i++) du[i] = un[i] - u[i];
            if (!objective(o, un, &fn, gn) && -fn <= -f + 1e-4 * dot(G, du, D)) {
                ok = 1;
                break;
            }
            step *= 0.5;
        }
        if (!ok) {
            if (mem > 0) { mem = 0; continue; }
            break;
        }
        double s[NL_GPR_MAX_DIM + 2], yv[NL_GPR_MAX_DIM + 2];
        for (int i = 0; i < D; i++) {
            s[i] = un[i] - u[i];
            yv[i] = -gn[i] - G[i];
        }
        double sy = dot(s, yv, D);
        if (sy > 1e-12) {
            memcpy(S[head], s, sizeof(double) * D);
            memcpy(Y[head], yv, sizeof(double) * D);
            rho[head] = 1.0 / sy;
            head = (head + 1) % LBFGS_M;
            if (mem < LBFGS_M) mem++;
        }
        double fold = f;
        memcpy(u, un, sizeof(double) * D);
        memcpy(g, gn, sizeof(double) * D);
        f = fn;
        if (fn - fold <= 1e-12 * fmax(1.0, fabs(fold))) break;
    }
    *fbest = f;
    return 0;
}

nl_status nl_gpr_fit_mle(const nl_gpr_hyperprior *prior, const double *x, const double *y, int64_t n, int restarts,
                         int iters, nl_rng *rng, nl_gpr_hyper *out) {
    const char *who = "gpr_fit_mle";
    if (!out) return nl_set_error(NL_EINVAL, "%s: out must not be NULL", who);
    gpr_obj o;
    memset(&o, 0, sizeof o);
    if (prior) {
        nl_status s = nl_gpr_hyperprior_check(prior, who);
        if (s) return s;
        o.prior = prior;
        o.kernel = prior->kernel;
        o.dim = prior->dim;
        o.noise_min = prior->noise_min;
    } else {
        if (out->kernel != NL_GPR_RBF && out->kernel != NL_GPR_MATERN52)
            return nl_set_error(NL_EINVAL, "%s: out->kernel = %d is not a kernel (set out->kernel and out->dim when "
                                           "prior is NULL)", who, (int)out->kernel);
        if (out->dim < 1 || out->dim > NL_GPR_MAX_DIM)
            return nl_set_error(NL_EINVAL, "%s: out->dim = %d out of range 1..%d (set out->kernel and out->dim when "
                                           "prior is NULL)", who, out->dim, NL_GPR_MAX_DIM);
        o.kernel = out->kernel;
        o.dim = out->dim;
        o.noise_min = 1e-6;
    }
    if (restarts < 1 || iters < 0)
        return nl_set_error(NL_EINVAL, "%s: restarts = %d must be >= 1 and iters = %d >= 0", who, restarts, iters);
    if (restarts > 1 && !rng) return nl_set_error(NL_EINVAL, "%s: rng is NULL but restarts = %d > 1", who, restarts);
    nl_status s = check_data(who, o.dim, x, y, n, 0);
    if (s) return s;
    o.x = x;
    o.y = y;
    o.n = n;
    int D = o.dim + 2;
    double best = -INFINITY, ubest[NL_GPR_MAX_DIM + 2];
    for (int r = 0; r < restarts; r++) {
        nl_gpr_hyper h0;
        if (r == 0) {
            if (prior)
                h0 = nl_gpr_hyper_default(o.kernel, o.dim, prior->ls_a / prior->ls_b, prior->os_a / prior->os_b,
                                          fmax(prior->noise_a / prior->noise_b, 2 * prior->noise_min));
            else
                h0 = nl_gpr_hyper_default(o.kernel, o.dim, 0.5, 1.0, 0.1);
        } else if (prior) {
            nl_gpr_hyper_sample(prior, rng, &h0);
        } else {
            h0 = nl_gpr_hyper_default(o.kernel, o.dim, 1, 1, 1);
            for (int i = 0; i < o.dim; i++) h0.lengthscale[i] = exp(log(0.05) + nl_rng_uniform(rng) * log(100.0));
            h0.outputscale = exp(log(0.1) + nl_rng_uniform(rng) * log(100.0));
            h0.noise = exp(log(1e-4) + nl_rng_uniform(rng) * log(1e4));
        }
        double u[NL_GPR_MAX_DIM + 2], f;
        hyper_to_u(&o, &h0, u);
        if (lbfgs_run(&o, u, iters, &f)) continue;
        if (f > best) {
            best = f;
            memcpy(ubest, u, sizeof(double) * D);
        }
    }
    if (!(best > -INFINITY))
        return nl_set_error(NL_ELINALG, "%s: the objective could not be evaluated at any of the %d starts (last error: "
                                        "see nl_gpr_lml)", who, restarts);
    u_to_hyper(&o, ubest, out);
    nl_clear_error();
    return NL_OK;
}

/* ---------------- slice sampling over u ---------------- */

/* log p(u | data) up to a constant: lml + log prior(h(u)) + log |dh/du|. */
static double log_target(const gpr_obj *o, const double *u) {
    int D = o->dim + 2;
    for (int i = 0; i < D; i++)
        if (!(fabs(u[i]) <= U_BOUND)) return -INFINITY;
    nl_gpr_hyper h;
    u_to_hyper(o, u, &h);
    double lp = nl_gpr_hyperprior_logpdf(o->prior, &h);
    for (int i = 0; i < D; i++) lp += u[i]; /* Jacobian: d ls/du = ls, d os/du = os, d noise/du = noise - min */
    if (!isfinite(lp)) return -INFINITY;
    if (o->n > 0) {
        double lml;
        if (nl_gpr_lml(&h, o->x, o->y, o->n, &lml, NULL) || !isfinite(lml)) return -INFINITY;
        lp += lml;
    }
    return lp;
}

static double u_open01(nl_rng *rng) { return 1.0 - nl_rng_uniform(rng); } /* (0, 1] */

/* One coordinate update (Neal 2003, Fig. 3 stepping out and Fig. 5 shrinkage), width w, at most mmax steps out. */
static void slice_coord(const gpr_obj *o, double *u, int j, double *lp, nl_rng *rng) {
    const double w = 1.0;
    const int mmax = 20;
    double x0 = u[j];
    double level = *lp + log(u_open01(rng));
    double L = x0 - w * nl_rng_uniform(rng), R = L + w;
    int J = (int)floor(mmax * nl_rng_uniform(rng)), K = mmax - 1 - J;
    u[j] = L;
    while (J > 0 && log_target(o, u) > level) { L -= w; u[j] = L; J--; }
    u[j] = R;
    while (K > 0 && log_target(o, u) > level) { R += w; u[j] = R; K--; }
    for (int t = 0; t < 200; t++) {
        double x1 = L + nl_rng_uniform(rng) * (R - L);
        u[j] = x1;
        double l1 = log_target(o, u);
        if (l1 > level) { *lp = l1; return; }
        if (x1 < x0) L = x1; else R = x1;
    }
    u[j] = x0; /* shrinkage did not find a point (only with a degenerate target): stay */
}

nl_status nl_gpr_mcmc_predict_ex(const nl_gpr_hyperprior *p, const double *x, const double *y, int64_t n,
                                 const double *xq, int64_t m, int n_warmup, int n_samples, nl_rng *rng,
                                 double *mean, double *var, const double *yq, double *nll, nl_gpr_hyper *samples) {
    const char *who = "gpr_mcmc_predict";
    nl_status s = nl_gpr_hyperprior_check(p, who);
    if (s) return s;
    if (n_warmup < 0 || n_samples < 1)
        return nl_set_error(NL_EINVAL, "%s: n_warmup = %d must be >= 0 and n_samples = %d >= 1", who, n_warmup,
                            n_samples);
    if (!rng) return nl_set_error(NL_EINVAL, "%s: rng must not be NULL", who);
    if (m < 0) return nl_set_error(NL_EINVAL, "%s: m = %lld must be >= 0", who, (long long)m);
    if (m > 0 && (!xq || !mean || !var || (yq && !nll)))
        return nl_set_error(NL_EINVAL, "%s: NULL buffer (xq, mean, var; nll when yq given)", who);
    s = check_data(who, p->dim, x, y, n, 1);
    if (s) return s;
    if (m > 0 && (!nl_gpr__all_finite(xq, m * p->dim) || (yq && !nl_gpr__all_finite(yq, m))))
        return nl_set_error(NL_EINVAL, "%s: NaN or Inf in xq or yq", who);
    gpr_obj o;
    memset(&o, 0, sizeof o);
    o.prior = p;
    o.kernel = p->kernel;
    o.dim = p->dim;
    o.noise_min = p->noise_min;
    o.x = x;
    o.y = y;
    o.n = n;
    int D = o.dim + 2;
    double u[NL_GPR_MAX_DIM + 2];
    nl_gpr_hyper h0 = nl_gpr_hyper_default(o.kernel, o.dim, p->ls_a / p->ls_b, p->os_a / p->os_b,
                                           fmax(p->noise_a / p->noise_b, 2 * p->noise_min + 1e-12));
    hyper_to_u(&o, &h0, u);
    double lp = log_target(&o, u);
    if (!isfinite(lp)) {
        return nl_set_error(NL_ELINALG, "%s: the posterior cannot be evaluated at the prior means (%s)", who,
                            nl_last_error());
    }
    double *buf = NULL;
    if (m > 0) {
        buf = malloc(sizeof(double) * (size_t)m * 5);
        if (!buf) return nl_set_error(NL_ENOMEM, "%s: out of memory (m = %lld)", who, (long long)m);
    }
    double *ms = buf, *vs = buf ? buf + m : NULL, *sm = buf ? buf + 2 * m : NULL, *s2 = buf ? buf + 3 * m : NULL,
           *lse = buf ? buf + 4 * m : NULL;
    for (int64_t i = 0; i < m; i++) sm[i] = s2[i] = 0, lse[i] = -INFINITY;
    for (int it = 0; it < n_warmup + n_samples; it++) {
        for (int j = 0; j < D; j++) slice_coord(&o, u, j, &lp, rng);
        if (it < n_warmup) continue;
        nl_gpr_hyper h;
        u_to_hyper(&o, u, &h);
        if (samples) samples[it - n_warmup] = h;
        if (m == 0) continue;
        s = nl_gpr_predict(&h, x, y, n, xq, m, ms, vs, NULL, NULL);
        if (s) { free(buf); return s; }
        for (int64_t i = 0; i < m; i++) {
            sm[i] += ms[i];
            s2[i] += vs[i] + ms[i] * ms[i];
            if (yq) {
                double r = yq[i] - ms[i];
                double l = -0.5 * log(2 * M_PI * vs[i]) - 0.5 * r * r / vs[i];
                double mx = fmax(lse[i], l);
                lse[i] = mx + log(exp(lse[i] - mx) + exp(l - mx));
            }
        }
    }
    double S = (double)n_samples;
    for (int64_t i = 0; i < m; i++) {
        mean[i] = sm[i] / S;
        var[i] = fmax(s2[i] / S - mean[i] * mean[i], 0.0);
        if (yq) nll[i] = -(lse[i] - log(S));
    }
    free(buf);
    nl_clear_error();
    return NL_OK;
}

nl_status nl_gpr_mcmc_predict(const nl_gpr_hyperprior *p, const double *x, const double *y, int64_t n,
                              const double *xq, int64_t m, int n_warmup, int n_samples, nl_rng *rng, double *mean,
                              double *var, const double *yq, double *nll) {
    return nl_gpr_mcmc_predict_ex(p, x, y, n, xq, m, n_warmup, n_samples, rng, mean, var, yq, nll, NULL);
}
