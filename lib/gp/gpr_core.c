/* Stationary GP regression baselines: kernels, hyperparameters, hyperprior, prior sampler, exact posterior
 * predictive and the log marginal likelihood with its gradient (include/gp/gp.h, lib/gp/README.md). */
#include "gpr_internal.h"
#include "nnlab/linalg.h"
#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQRT5 2.23606797749978969640917366873

/* ---------------- small helpers ---------------- */

int nl_gpr__all_finite(const double *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

static void kern_and_dls(nl_gpr_kernel kernel, double r2, double *kv, double *c) {
    if (kernel == NL_GPR_RBF) {
        double e = exp(-0.5 * r2);
        *kv = e;
        if (c) *c = e; /* d/dlog ls_i exp(-r^2/2) = exp(-r^2/2) (dx_i/ls_i)^2 */
    } else {
        double r = sqrt(r2), e = exp(-SQRT5 * r);
        *kv = (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * e;
        /* dk/dr = -(5/3) r (1 + sqrt5 r) e;  dr/dlog ls_i = -(dx_i/ls_i)^2 / r */
        if (c) *c = (5.0 / 3.0) * (1.0 + SQRT5 * r) * e;
    }
}

static double log_gamma_pdf(double x, double a, double b) {
    if (!(x > 0)) return -INFINITY;
    return a * log(b) - lgamma(a) + (a - 1.0) * log(x) - b * x;
}

const char *nl_gpr_kernel_name(nl_gpr_kernel k) {
    switch (k) {
    case NL_GPR_RBF: return "rbf";
    case NL_GPR_MATERN52: return "matern52";
    }
    return "?";
}

nl_status nl_gpr_parse_kernel(const char *s, nl_gpr_kernel *out) {
    if (!s || !out) return nl_set_error(NL_EINVAL, "gpr_parse_kernel: NULL argument");
    if (!strcmp(s, "rbf")) { *out = NL_GPR_RBF; return NL_OK; }
    if (!strcmp(s, "matern52") || !strcmp(s, "matern") || !strcmp(s, "matern-5/2")) {
        *out = NL_GPR_MATERN52;
        return NL_OK;
    }
    return nl_set_error(NL_EINVAL, "gpr_parse_kernel: unknown kernel '%s' (expected rbf or matern52)", s);
}

nl_gpr_hyper nl_gpr_hyper_default(nl_gpr_kernel k, int dim, double ls, double os, double noise) {
    nl_gpr_hyper h;
    memset(&h, 0, sizeof h);
    h.kernel = k;
    h.dim = dim;
    for (int i = 0; i < NL_GPR_MAX_DIM; i++) h.lengthscale[i] = ls;
    h.outputscale = os;
    h.noise = noise;
    return h;
}

nl_gpr_hyperprior nl_gpr_hyperprior_botorch(int dim) {
    nl_gpr_hyperprior p;
    memset(&p, 0, sizeof p);
    p.kernel = NL_GPR_MATERN52;
    p.dim = dim;
    p.ls_a = 3.0;
    p.ls_b = 6.0;
    p.os_a = 2.0;
    p.os_b = 0.15;
    p.noise_a = 1.1;
    p.noise_b = 0.05;
    p.noise_min = 1e-4;
    return p;
}

static int pos_finite(double v) { return isfinite(v) && v > 0; }

nl_status nl_gpr_hyper_check(const nl_gpr_hyper *h, const char *who) {
    if (!who) who = "gpr";
    if (!h) return nl_set_error(NL_EINVAL, "%s: hyperparameters are NULL", who);
    if (h->kernel != NL_GPR_RBF && h->kernel != NL_GPR_MATERN52)
        return nl_set_error(NL_EINVAL, "%s: unknown kernel %d", who, (int)h->kernel);
    if (h->dim < 1 || h->dim > NL_GPR_MAX_DIM)
        return nl_set_error(NL_EINVAL, "%s: dim = %d out of range 1..%d", who, h->dim, NL_GPR_MAX_DIM);
    for (int i = 0; i < h->dim; i++)
        if (!pos_finite(h->lengthscale[i]))
            return nl_set_error(NL_EINVAL, "%s: lengthscale[%d] = %g must be finite and > 0", who, i, h->lengthscale[i]);
    if (!pos_finite(h->outputscale))
        return nl_set_error(NL_EINVAL, "%s: outputscale = %g must be finite and > 0", who, h->outputscale);
    if (!pos_finite(h->noise)) return nl_set_error(NL_EINVAL, "%s: noise = %g must be finite and > 0", who, h->noise);
    return NL_OK;
}

nl_status nl_gpr_hyperprior_check(const nl_gpr_hyperprior *p, const char *who) {
    if (!who) who = "gpr";
    if (!p) return nl_set_error(NL_EINVAL, "%s: hyperprior is NULL", who);
    if (p->kernel != NL_GPR_RBF && p->kernel != NL_GPR_MATERN52)
        return nl_set_error(NL_EINVAL, "%s: unknown kernel %d in the hyperprior", who, (int)p->kernel);
    if (p->dim < 1 || p->dim > NL_GPR_MAX_DIM)
        return nl_set_error(NL_EINVAL, "%s: hyperprior dim = %d out of range 1..%d", who, p->dim, NL_GPR_MAX_DIM);
    const double v[6] = {p->ls_a, p->ls_b, p->os_a, p->os_b, p->noise_a, p->noise_b};
    const char *nm[6] = {"ls_a", "ls_b", "os_a", "os_b", "noise_a", "noise_b"};
    for (int i = 0; i < 6; i++)
        if (!pos_finite(v[i]))
            return nl_set_error(NL_EINVAL, "%s: hyperprior %s = %g must be finite and > 0", who, nm[i], v[i]);
    if (!isfinite(p->noise_min) || p->noise_min < 0)
        return nl_set_error(NL_EINVAL, "%s: hyperprior noise_min = %g must be finite and >= 0", who, p->noise_min);
    return NL_OK;
}

/* ---------------- kernel matrices ---------------- */

nl_status nl_gpr_kernel_matrix(const nl_gpr_hyper *h, const double *x1, int64_t n1, const double *x2, int64_t n2,
                               double *K) {
    nl_status s = nl_gpr_hyper_check(h, "gpr_kernel_matrix");
    if (s) return s;
    if (n1 < 0 || n2 < 0)
        return nl_set_error(NL_EINVAL, "gpr_kernel_matrix: n1 = %lld and n2 = %lld must be >= 0", (long long)n1,
                            (long long)n2);
    if (n1 == 0 || n2 == 0) return NL_OK;
    if (!x1 || !x2 || !K) return nl_set_error(NL_EINVAL, "gpr_kernel_matrix: x1, x2 and K must not be NULL");
    int d = h->dim;
    if (!nl_gpr__all_finite(x1, n1 * d) || !nl_gpr__all_finite(x2, n2 * d))
        return nl_set_error(NL_EINVAL, "gpr_kernel_matrix: NaN or Inf in the inputs");
    double il[NL_GPR_MAX_DIM];
    for (int k = 0; k < d; k++) il[k] = 1.0 / h->lengthscale[k];
    for (int64_t i = 0; i < n1; i++) {
        const double *a = x1 + i * d;
        for (int64_t j = 0; j < n2; j++) {
            const double *b = x2 + j * d;
            double r2 = 0;
            for (int k = 0; k < d; k++) {
                double t = (a[k] - b[k]) * il[k];
                r2 += t * t;
            }
            double kv;
            kern_and_dls(h->kernel, r2, &kv, NULL);
            K[i * n2 + j] = h->outputscale * kv;
        }
    }
    return NL_OK;
}

/* Lower triangle (j <= i) of the kernel of x with itself; xs (n, d) scratch for the scaled inputs. */
static void kmat_lower(const nl_gpr_hyper *h, const double *x, int64_t n, double *xs, double *K) {
    int d = h->dim;
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < d; k++) xs[i * d + k] = x[i * d + k] / h->lengthscale[k];
    double os = h->outputscale;
    for (int64_t i = 0; i < n; i++) {
        const double *a = xs + i * d;
        K[i * n + i] = os;
        for (int64_t j = 0; j < i; j++) {
            const double *b = xs + j * d;
            double r2 = 0;
            for (int k = 0; k < d; k++) {
                double t = a[k] - b[k];
                r2 += t * t;
            }
            double kv;
            kern_and_dls(h->kernel, r2, &kv, NULL);
            K[i * n + j] = os * kv;
        }
    }
}

static void kmat_sym(const nl_gpr_hyper *h, const double *x, int64_t n, double *K) {
    int d = h->dim;
    double il[NL_GPR_MAX_DIM];
    for (int k = 0; k < d; k++) il[k] = 1.0 / h->lengthscale[k];
    double os = h->outputscale;
    for (int64_t i = 0; i < n; i++) {
        K[i * n + i] = os;
        for (int64_t j = 0; j < i; j++) {
            double r2 = 0;
            for (int k = 0; k < d; k++) {
                double t = (x[i * d + k] - x[j * d + k]) * il[k];
                r2 += t * t;
            }
            double kv;
            kern_and_dls(h->kernel, r2, &kv, NULL);
            K[i * n + j] = K[j * n + i] = os * kv;
        }
    }
}

/* The error of a failed factorisation of K + noise I (after the jitter retry), prefixed with the caller. */
static nl_status factor_error(nl_status s, const nl_gpr_hyper *h, int64_t n, const char *who) {
    if (s == NL_ELINALG)
        return nl_set_error(NL_ELINALG, "%s: K + noise I is not positive definite even with jitter 1e-8 * outputscale "
                                        "(n = %lld, outputscale = %g, noise = %g)",
                            who, (long long)n, h->outputscale, h->noise);
    return nl_set_error(s, "%s: %s", who, nl_last_error());
}

static nl_status factor(const nl_gpr_hyper *h, double *K, int64_t n, const double *y, nl_gp *gp, const char *who) {
    nl_status s = nl_gp_fit(gp, K, n, y, 1, 0.0, h->noise, 0);
    if (s == NL_ELINALG) s = nl_gp_fit(gp, K, n, y, 1, 0.0, h->noise + 1e-8 * h->outputscale, 0);
    if (s) return factor_error(s, h, n, who);
    return NL_OK;
}

/* ---------------- hyperprior ---------------- */

nl_status nl_gpr_hyper_sample(const nl_gpr_hyperprior *p, nl_rng *rng, nl_gpr_hyper *out) {
    nl_status s = nl_gpr_hyperprior_check(p, "gpr_hyper_sample");
    if (s) return s;
    if (!rng || !out) return nl_set_error(NL_EINVAL, "gpr_hyper_sample: rng and out must not be NULL");
    memset(out, 0, sizeof *out);
    out->kernel = p->kernel;
    out->dim = p->dim;
    for (int i = 0; i < p->dim; i++) out->lengthscale[i] = fmax(nl_rng_gamma(rng, p->ls_a) / p->ls_b, DBL_MIN);
    out->outputscale = fmax(nl_rng_gamma(rng, p->os_a) / p->os_b, DBL_MIN);
    out->noise = fmax(nl_rng_gamma(rng, p->noise_a) / p->noise_b, fmax(p->noise_min, DBL_MIN));
    return NL_OK;
}

double nl_gpr_hyperprior_logpdf(const nl_gpr_hyperprior *p, const nl_gpr_hyper *h) {
    if (!p || !h || h->dim != p->dim) return NAN;
    if (h->noise < p->noise_min) return -INFINITY;
    double lp = 0;
    for (int i = 0; i < p->dim; i++) lp += log_gamma_pdf(h->lengthscale[i], p->ls_a, p->ls_b);
    lp += log_gamma_pdf(h->outputscale, p->os_a, p->os_b);
    lp += log_gamma_pdf(h->noise, p->noise_a, p->noise_b);
    return lp;
}

/* ---------------- prior sampler ---------------- */

static _Thread_local double *g_scratch;
static _Thread_local size_t g_scratch_cap; /* doubles */

void nl_gpr_scratch_release(void) {
    free(g_scratch);
    g_scratch = NULL;
    g_scratch_cap = 0;
}

static double *scratch(size_t nd) {
    if (nd > g_scratch_cap) {
        size_t cap = nd + nd / 4 + 64;
        double *p = realloc(g_scratch, cap * sizeof(double));
        if (!p) return NULL;
        g_scratch = p;
        g_scratch_cap = cap;
    }
    return g_scratch;
}

static nl_status prior_sample_impl(const nl_gpr_hyper *h, nl_rng *rng, int64_t n, const double *x, double *y,
                                   const char *who) {
    if (n == 0) return NL_OK;
    int d = h->dim;
    if ((uint64_t)n > (uint64_t)(INT_MAX / 2))
        return nl_set_error(NL_EINVAL, "%s: n = %lld too large", who, (long long)n);
    /* layout: L (n, n) | xs (n, d) */
    double *buf = scratch((size_t)n * (size_t)n + (size_t)n * (size_t)d);
    if (!buf) return nl_set_error(NL_ENOMEM, "%s: out of memory for the %lld x %lld covariance", who, (long long)n,
                                  (long long)n);
    double *L = buf, *xs = buf + (size_t)n * (size_t)n;
    nl_status s = NL_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        kmat_lower(h, x, n, xs, L);
        double add = h->noise + (attempt ? 1e-8 * h->outputscale : 0.0);
        for (int64_t i = 0; i < n; i++) L[i * n + i] += add;
        s = nl_cholesky_inplace(L, n);
        if (s != NL_ELINALG) break;
    }
    if (s) return factor_error(s, h, n, who);
    for (int64_t i = 0; i < n; i++) y[i] = nl_rng_normal(rng);
    cblas_dtrmv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, (int)n, L, (int)n, y, 1);
    return NL_OK;
}

nl_status nl_gpr_prior_sample(const nl_gpr_hyper *h, nl_rng *rng, int64_t n, double *x, double *y) {
    nl_status s = nl_gpr_hyper_check(h, "gpr_prior_sample");
    if (s) return s;
    if (n < 0) return nl_set_error(NL_EINVAL, "gpr_prior_sample: n = %lld must be >= 0", (long long)n);
    if (n > 0 && (!rng || !x || !y)) return nl_set_error(NL_EINVAL, "gpr_prior_sample: rng, x and y must not be NULL");
    for (int64_t i = 0; i < n * h->dim; i++) x[i] = nl_rng_uniform(rng);
    return prior_sample_impl(h, rng, n, x, y, "gpr_prior_sample");
}

nl_status nl_gpr_prior_sample_at(const nl_gpr_hyper *h, nl_rng *rng, int64_t n, const double *x, double *y) {
    nl_status s = nl_gpr_hyper_check(h, "gpr_prior_sample_at");
    if (s) return s;
    if (n < 0) return nl_set_error(NL_EINVAL, "gpr_prior_sample_at: n = %lld must be >= 0", (long long)n);
    if (n > 0 && (!rng || !x || !y))
        return nl_set_error(NL_EINVAL, "gpr_prior_sample_at: rng, x and y must not be NULL");
    if (!nl_gpr__all_finite(x, n * h->dim)) return nl_set_error(NL_EINVAL, "gpr_prior_sample_at: NaN or Inf in x");
    return prior_sample_impl(h, rng, n, x, y, "gpr_prior_sample_at");
}

/* ---------------- exact posterior predictive ---------------- */

nl_status nl_gpr_predict(const nl_gpr_hyper *h, const double *xc, const double *yc, int64_t n, const double *xq,
                         int64_t m, double *mean, double *var, const double *yq, double *nll) {
    const char *who = "gpr_predict";
    nl_status s = nl_gpr_hyper_check(h, who);
    if (s) return s;
    if (n < 0 || m < 0)
        return nl_set_error(NL_EINVAL, "%s: n = %lld and m = %lld must be >= 0", who, (long long)n, (long long)m);
    if (m == 0) return NL_OK;
    if (!xq || !mean || !var || (n > 0 && (!xc || !yc)) || (yq && !nll))
        return nl_set_error(NL_EINVAL, "%s: NULL buffer (xc, yc needed for n > 0; xq, mean, var; nll when yq given)", who);
    int d = h->dim;
    if ((n > 0 && (!nl_gpr__all_finite(xc, n * d) || !nl_gpr__all_finite(yc, n))) || !nl_gpr__all_finite(xq, m * d) ||
        (yq && !nl_gpr__all_finite(yq, m)))
        return nl_set_error(NL_EINVAL, "%s: NaN or Inf in the inputs", who);
    if (n == 0) {
        for (int64_t i = 0; i < m; i++) {
            mean[i] = 0;
            var[i] = h->outputscale + h->noise;
        }
    } else {
        double *K = malloc(sizeof(double) * (size_t)n * (size_t)n);
        double *Ks = malloc(sizeof(double) * (size_t)m * (size_t)n);
        double *kss = malloc(sizeof(double) * (size_t)m);
        if (!K || !Ks || !kss) {
            free(K), free(Ks), free(kss);
            return nl_set_error(NL_ENOMEM, "%s: out of memory (n = %lld, m = %lld)", who, (long long)n, (long long)m);
        }
        kmat_sym(h, xc, n, K);
        nl_gpr_kernel_matrix(h, xq, m, xc, n, Ks);
        for (int64_t i = 0; i < m; i++) kss[i] = h->outputscale;
        nl_gp gp;
        s = factor(h, K, n, yc, &gp, who);
        if (!s) s = nl_gp_predict(&gp, Ks, m, mean);
        if (!s) s = nl_gp_variance(&gp, Ks, kss, m, var);
        nl_gp_free(&gp);
        free(K), free(Ks), free(kss);
        if (s) return s;
        for (int64_t i = 0; i < m; i++) var[i] = fmax(var[i], 0.0) + h->noise;
    }
    if (yq)
        for (int64_t i = 0; i < m; i++) {
            double r = yq[i] - mean[i];
            nll[i] = 0.5 * log(2 * M_PI * var[i]) + 0.5 * r * r / var[i];
        }
    return NL_OK;
}

/* ---------------- log marginal likelihood and gradient ---------------- */

nl_status nl_gpr_lml(const nl_gpr_hyper *h, const double *x, const double *y, int64_t n, double *lml, double *grad) {
    const char *who = "gpr_lml";
    nl_status s = nl_gpr_hyper_check(h, who);
    if (s) return s;
    if (n < 1) return nl_set_error(NL_EINVAL, "%s: n = %lld must be >= 1", who, (long long)n);
    if (!x || !y || !lml) return nl_set_error(NL_EINVAL, "%s: x, y and lml must not be NULL", who);
    int d = h->dim;
    if (!nl_gpr__all_finite(x, n * d) || !nl_gpr__all_finite(y, n))
        return nl_set_error(NL_EINVAL, "%s: NaN or Inf in the inputs", who);
    double *K = malloc(sizeof(double) * (size_t)n * (size_t)n);
    if (!K) return nl_set_error(NL_ENOMEM, "%s: out of memory (n = %lld)", who, (long long)n);
    kmat_sym(h, x, n, K);
    nl_gp gp;
    s = factor(h, K, n, y, &gp, who);
    if (s) { free(K); return s; }
    *lml = -gp.nll;
    if (grad) {
        /* W = alpha alpha^T - A^{-1}; A^{-1} from the Cholesky factor (lower triangle). */
        double *W = malloc(sizeof(double) * (size_t)n * (size_t)n);
        if (!W) { nl_gp_free(&gp); free(K); return nl_set_error(NL_ENOMEM, "%s: out of memory", who); }
        memcpy(W, gp.L, sizeof(double) * (size_t)n * (size_t)n);
        lapack_int info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, W, (lapack_int)n);
        if (info != 0) {
            free(W), nl_gp_free(&gp), free(K);
            return nl_set_error(NL_ELINALG, "%s: dpotri failed (info %d)", who, (int)info);
        }
        const double *al = gp.alpha;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j <= i; j++) W[i * n + j] = al[i] * al[j] - W[i * n + j];
        double il[NL_GPR_MAX_DIM], gls[NL_GPR_MAX_DIM] = {0};
        for (int k = 0; k < d; k++) il[k] = 1.0 / h->lengthscale[k];
        double gos = 0, tr = 0, os = h->outputscale;
        for (int64_t i = 0; i < n; i++) {
            tr += W[i * n + i];
            gos += W[i * n + i] * K[i * n + i];
            for (int64_t j = 0; j < i; j++) {
                double w = W[i * n + j], dx2[NL_GPR_MAX_DIM], r2 = 0;
                for (int k = 0; k < d; k++) {
                    double t = (x[i * d + k] - x[j * d + k]) * il[k];
                    dx2[k] = t * t;
                    r2 += dx2[k];
                }
                double kv, c;
                kern_and_dls(h->kernel, r2, &kv, &c);
                gos += 2 * w * os * kv;
                for (int k = 0; k < d; k++) gls[k] += 2 * w * os * c * dx2[k];
            }
        }
        for (int k = 0; k < d; k++) grad[k] = 0.5 * gls[k];
        grad[d] = 0.5 * gos;
        grad[d + 1] = 0.5 * h->noise * tr;
        free(W);
    }
    nl_gp_free(&gp);
    free(K);
    return NL_OK;
}
