/* Universal random features: projections, the four feature maps, the closed-form kernels, a streaming estimate for
 * very many features, and the kernel-estimation MSE curve (snnk/snnk.h). */
#include "snnk/snnk.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_kind_names[NL_SNNK_NKINDS] = {"exp", "cos", "relu", "arccos0"};

const char *nl_snnk_kind_name(nl_snnk_kind k) { return (unsigned)k < NL_SNNK_NKINDS ? g_kind_names[k] : "?"; }

int nl_snnk_kind_parse(const char *s) {
    for (int k = 0; k < NL_SNNK_NKINDS; k++)
        if (!strcmp(s, g_kind_names[k])) return k;
    return -1;
}

nl_status nl_snnk_proj(nl_snnk_dist dist, int64_t m, int64_t d, nl_rng *r, float *G) {
    if (m < 1) return nl_set_error(NL_EINVAL, "snnk: the number of random features m must be >= 1 (got %lld)", (long long)m);
    if (d < 1) return nl_set_error(NL_EINVAL, "snnk: the input dimension must be >= 1 (got %lld)", (long long)d);
    for (int64_t i = 0; i < m * d; i++) G[i] = (float)(dist == NL_SNNK_UNIFORM ? nl_rng_uniform(r) : nl_rng_normal(r));
    return NL_OK;
}

/* the elementwise map of one projection value p = g.x, given |x|^2 = q and the scale s = m^-1/2 */
static inline double feat(nl_snnk_kind k, int weight, double p, double q, double s) {
    switch (k) {
    case NL_SNNK_EXP: return s * exp(p - 0.5 * q);
    case NL_SNNK_COS: return weight ? s * exp(0.5 * q) * cos(p) : s * exp(p - 0.5 * q);
    case NL_SNNK_RELU: return p > 0 ? s * p : 0.0;
    default: return p > 0 ? s : 0.0;
    }
}

nl_status nl_snnk_features(nl_snnk_kind k, int weight, const float *G, int64_t m, int64_t d, const float *X, int64_t n, float *F) {
    if (m < 1) return nl_set_error(NL_EINVAL, "snnk: the number of random features m must be >= 1 (got %lld)", (long long)m);
    if ((unsigned)k >= NL_SNNK_NKINDS || d < 1 || n < 0) return nl_set_error(NL_EINVAL, "snnk features: bad kind or sizes");
    if (n == 0) return NL_OK;
    nl_gemm(NL_F32, 0, 1, n, m, d, 1.0, X, d, G, d, 0.0, F, m); /* F [n, m] = X [n, d] G^T */
    const double s = 1.0 / sqrt((double)m);
    for (int64_t i = 0; i < n; i++) {
        double q = 0;
        for (int64_t j = 0; j < d; j++) q += (double)X[i * d + j] * X[i * d + j];
        float *f = F + i * m;
        for (int64_t j = 0; j < m; j++) f[j] = (float)feat(k, weight, f[j], q, s);
    }
    return NL_OK;
}

double nl_snnk_kernel(nl_snnk_kind k, const double *x, const double *w, int64_t d) {
    double xw = 0, xx = 0, ww = 0;
    for (int64_t i = 0; i < d; i++) xw += x[i] * w[i], xx += x[i] * x[i], ww += w[i] * w[i];
    if (k == NL_SNNK_EXP) return exp(xw);
    if (k == NL_SNNK_COS) return cos(xw);
    double nx = sqrt(xx), nw = sqrt(ww);
    if (!(nx > 0) || !(nw > 0)) return k == NL_SNNK_RELU ? 0.0 : 0.25; /* a zero vector: g.0 = 0, never > 0 */
    double c = xw / (nx * nw);
    c = c > 1 ? 1 : c < -1 ? -1 : c;
    double t = acos(c);
    if (k == NL_SNNK_RELU) return nx * nw * (sin(t) + (M_PI - t) * c) / (2 * M_PI);
    return (M_PI - t) / (2 * M_PI);
}

nl_status nl_snnk_estimate(nl_snnk_kind k, nl_snnk_dist dist, const double *x, const double *w, int64_t d, int64_t m,
                           uint64_t seed, double *est, double *se) {
    if (m < 1) return nl_set_error(NL_EINVAL, "snnk: the number of random features m must be >= 1 (got %lld)", (long long)m);
    if ((unsigned)k >= NL_SNNK_NKINDS || d < 1) return nl_set_error(NL_EINVAL, "snnk estimate: bad kind or dimension");
    enum { BLK = 4096 };
    int64_t bm = m < BLK ? m : BLK;
    double *G = malloc((size_t)(bm * d) * sizeof(double)); /* [bm, d] one block of projections */
    double *XW = malloc((size_t)(2 * d) * sizeof(double)); /* [2, d] rows x, w */
    double *P = malloc((size_t)(2 * bm) * sizeof(double)); /* [2, bm] projections of x and w */
    if (!G || !XW || !P) {
        free(G), free(XW), free(P);
        return nl_set_error(NL_ENOMEM, "snnk estimate: out of memory");
    }
    memcpy(XW, x, (size_t)d * sizeof(double)), memcpy(XW + d, w, (size_t)d * sizeof(double));
    double qx = 0, qw = 0;
    for (int64_t i = 0; i < d; i++) qx += x[i] * x[i], qw += w[i] * w[i];
    nl_rng r;
    nl_rng_init(&r, seed, 0x5a4e);
    double sum = 0, sum2 = 0;
    for (int64_t j0 = 0; j0 < m; j0 += bm) {
        int64_t b = m - j0 < bm ? m - j0 : bm;
        for (int64_t i = 0; i < b * d; i++) G[i] = dist == NL_SNNK_UNIFORM ? nl_rng_uniform(&r) : nl_rng_normal(&r);
        nl_gemm(NL_F64, 0, 1, 2, b, d, 1.0, XW, d, G, d, 0.0, P, b); /* P [2, b] = XW [2, d] G^T */
        for (int64_t j = 0; j < b; j++) {
            double z = feat(k, 0, P[j], qx, 1.0) * feat(k, 1, P[b + j], qw, 1.0); /* m phi_j psi_j */
            sum += z, sum2 += z * z;
        }
    }
    double mean = sum / (double)m, var = m > 1 ? (sum2 - (double)m * mean * mean) / (double)(m - 1) : 0;
    *est = mean, *se = sqrt(var > 0 ? var : 0) / sqrt((double)m);
    free(G), free(XW), free(P);
    return NL_OK;
}

nl_status nl_snnk_mse_curve(nl_snnk_kind k, nl_snnk_dist dist, int64_t d, int reps, uint64_t seed, nl_snnk_mse_result *out) {
    if (d < 1 || reps < 2) return nl_set_error(NL_EINVAL, "snnk mse: bad dimension or repetitions");
    enum { P = NL_SNNK_PAIRS };
    const int64_t mmax = 16 << (2 * (NL_SNNK_NM - 1));
    nl_rng r;
    nl_rng_init(&r, seed, 0x6b65 + (uint64_t)k);
    float *X = malloc((size_t)(2 * P * d) * sizeof(float));   /* [2P, d]: rows 0..P-1 the x's, P..2P-1 the w's */
    double *K = malloc((size_t)P * sizeof(double));           /* [P] closed-form kernels */
    float *G = malloc((size_t)(mmax * d) * sizeof(float));    /* [mmax, d] */
    float *F = malloc((size_t)(2 * P * mmax) * sizeof(float)); /* [2P, mmax]: phi(x) rows, then psi(w) rows */
    double *bias = calloc(P, sizeof(double)), *bias2 = calloc(P, sizeof(double)); /* [P] at the largest m */
    double *xd = malloc((size_t)(2 * d) * sizeof(double));   /* [2, d] */
    nl_status s = (!X || !K || !G || !F || !bias || !bias2 || !xd) ? nl_set_error(NL_ENOMEM, "snnk mse: out of memory") : NL_OK;
    for (int p = 0; p < P && !s; p++) { /* unit x; w = rho x + sqrt(1 - rho^2) z with z a unit vector orthogonal to x */
        double rho = -0.9 + 1.8 * p / (P - 1), nx = 0, nz = 0, xz = 0;
        for (int64_t i = 0; i < d; i++) xd[i] = nl_rng_normal(&r), xd[d + i] = nl_rng_normal(&r), nx += xd[i] * xd[i];
        nx = sqrt(nx);
        for (int64_t i = 0; i < d; i++) xd[i] /= nx, xz += xd[i] * xd[d + i];
        for (int64_t i = 0; i < d; i++) xd[d + i] -= xz * xd[i], nz += xd[d + i] * xd[d + i];
        nz = sqrt(nz);
        for (int64_t i = 0; i < d; i++) xd[d + i] = rho * xd[i] + sqrt(1 - rho * rho) * xd[d + i] / nz;
        for (int64_t i = 0; i < d; i++) X[p * d + i] = (float)xd[i], X[(P + p) * d + i] = (float)xd[d + i];
        K[p] = nl_snnk_kernel(k, xd, xd + d, d);
    }
    for (int mi = 0; mi < NL_SNNK_NM && !s; mi++) {
        int64_t m = 16 << (2 * mi);
        double acc = 0;
        for (int rep = 0; rep < reps && !s; rep++) {
            if ((s = nl_snnk_proj(dist, m, d, &r, G))) break;
            if ((s = nl_snnk_features(k, 0, G, m, d, X, P, F))) break;
            if ((s = nl_snnk_features(k, 1, G, m, d, X + P * d, P, F + P * m))) break;
            for (int p = 0; p < P; p++) {
                double e = 0;
                for (int64_t j = 0; j < m; j++) e += (double)F[p * m + j] * F[(P + p) * m + j];
                e -= K[p];
                acc += e * e;
                if (mi == NL_SNNK_NM - 1) bias[p] += e, bias2[p] += e * e;
            }
        }
        out->m[mi] = (double)m, out->mse[mi] = acc / (double)(reps * P);
    }
    if (!s) {
        double sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (int i = 0; i < NL_SNNK_NM; i++) {
            double a = log(out->m[i]), b = log(out->mse[i]);
            sx += a, sy += b, sxx += a * a, sxy += a * b;
        }
        out->slope = (NL_SNNK_NM * sxy - sx * sy) / (NL_SNNK_NM * sxx - sx * sx);
        out->max_z = 0;
        for (int p = 0; p < P; p++) {
            double mb = bias[p] / reps, v = (bias2[p] - reps * mb * mb) / (reps - 1), se = sqrt(v > 0 ? v : 0) / sqrt((double)reps);
            double z = se > 0 ? fabs(mb) / se : (mb == 0 ? 0 : INFINITY);
            if (!(z <= out->max_z)) out->max_z = z;
        }
    }
    free(X), free(K), free(G), free(F), free(bias), free(bias2), free(xd);
    return s;
}
