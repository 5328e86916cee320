/* Kernel ridge regression / GP posterior by Cholesky (float64): mean, variance, negative log marginal
 * likelihood, one-hot classification. The regulariser follows neural-tangents (diag_reg * trace(K) / n). */
#include "gp/gp.h"
#include "nnlab/linalg.h"
#include "nnlab/ops.h"
#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void nl_gp_free(nl_gp *gp) {
    if (!gp) return;
    if (gp->owns_L) free(gp->L);
    free(gp->alpha);
    memset(gp, 0, sizeof *gp);
}

nl_status nl_gp_fit(nl_gp *gp, double *K, int64_t n, const double *Y, int64_t k, double diag_reg, double noise,
                    int flags) {
    if (!gp) return nl_set_error(NL_EINVAL, "gp_fit: gp is NULL");
    memset(gp, 0, sizeof *gp);
    if (n < 1 || k < 1 || !K || !Y)
        return nl_set_error(NL_EINVAL, "gp_fit: need n >= 1 points, k >= 1 target columns, K and Y (n = %lld, k = %lld)",
                            (long long)n, (long long)k);
    if (n > INT_MAX / 2 || k > INT_MAX) return nl_set_error(NL_EINVAL, "gp_fit: n = %lld too large for LAPACK", (long long)n);
    if (!isfinite(diag_reg) || diag_reg < 0 || !isfinite(noise) || noise < 0)
        return nl_set_error(NL_EINVAL, "gp_fit: diag_reg = %g and noise = %g must be finite and >= 0", diag_reg, noise);
    double tr = 0;
    for (int64_t i = 0; i < n; i++) tr += K[i * n + i];
    double reg = diag_reg * tr / (double)n + noise;
    double *L = K;
    if (!(flags & NL_GP_OVERWRITE_K)) {
        L = malloc(sizeof(double) * (size_t)n * (size_t)n);
        if (!L) return nl_set_error(NL_ENOMEM, "gp_fit: out of memory for the %lld x %lld factor", (long long)n, (long long)n);
        memcpy(L, K, sizeof(double) * (size_t)n * (size_t)n);
        gp->owns_L = 1;
    }
    for (int64_t i = 0; i < n; i++) L[i * n + i] += reg;
    nl_status s = nl_cholesky_inplace(L, n);
    if (s) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", nl_last_error());
        if (gp->owns_L) free(L);
        memset(gp, 0, sizeof *gp);
        if (s == NL_ELINALG)
            return nl_set_error(NL_ELINALG, "gp_fit: K + %g I is not positive definite (%s); increase diag_reg (%g, "
                                            "relative to trace(K)/n = %g) or noise (%g)", reg, msg, diag_reg, tr / (double)n, noise);
        return nl_set_error(s, "gp_fit: %s", msg);
    }
    gp->L = L;
    gp->n = n;
    gp->k = k;
    gp->reg = reg;
    gp->alpha = malloc(sizeof(double) * (size_t)n * (size_t)k);
    if (!gp->alpha) { nl_gp_free(gp); return nl_set_error(NL_ENOMEM, "gp_fit: out of memory"); }
    memcpy(gp->alpha, Y, sizeof(double) * (size_t)n * (size_t)k);
    lapack_int info = LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, (lapack_int)k, L, (lapack_int)n, gp->alpha,
                                     (lapack_int)k);
    if (info != 0) { nl_gp_free(gp); return nl_set_error(NL_ELINALG, "gp_fit: dpotrs failed (info %d)", (int)info); }
    double ld = 0, q = 0;
    for (int64_t i = 0; i < n; i++) ld += log(L[i * n + i]);
    for (int64_t i = 0; i < n * k; i++) q += Y[i] * gp->alpha[i];
    gp->logdet = 2 * ld;
    gp->quad = q;
    gp->nll = 0.5 * q + 0.5 * (double)k * gp->logdet + 0.5 * (double)k * (double)n * log(2 * M_PI);
    return NL_OK;
}

nl_status nl_gp_predict(const nl_gp *gp, const double *Ks, int64_t t, double *mean) {
    if (!gp || !gp->L || !gp->alpha) return nl_set_error(NL_ESTATE, "gp_predict: the GP is not fitted");
    if (t < 0 || (t > 0 && (!Ks || !mean))) return nl_set_error(NL_EINVAL, "gp_predict: bad arguments");
    if (t == 0) return NL_OK;
    nl_gemm(NL_F64, 0, 0, t, gp->k, gp->n, 1.0, Ks, gp->n, gp->alpha, gp->k, 0.0, mean, gp->k);
    return NL_OK;
}

nl_status nl_gp_variance(const nl_gp *gp, const double *Ks, const double *kss, int64_t t, double *var) {
    if (!gp || !gp->L) return nl_set_error(NL_ESTATE, "gp_variance: the GP is not fitted");
    if (t < 0 || (t > 0 && (!Ks || !kss || !var))) return nl_set_error(NL_EINVAL, "gp_variance: bad arguments");
    if (t == 0) return NL_OK;
    int64_t n = gp->n;
    double *X = malloc(sizeof(double) * (size_t)t * (size_t)n);
    if (!X) return nl_set_error(NL_ENOMEM, "gp_variance: out of memory (%lld x %lld)", (long long)t, (long long)n);
    memcpy(X, Ks, sizeof(double) * (size_t)t * (size_t)n);
    /* X L^T = Ks  ->  X = Ks L^{-T}; row i of X is L^{-1} k_i */
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)t, (int)n, 1.0, gp->L, (int)n, X,
                (int)n);
    for (int64_t i = 0; i < t; i++) {
        double s = 0;
        for (int64_t j = 0; j < n; j++) s += X[i * n + j] * X[i * n + j];
        var[i] = kss[i] - s;
    }
    free(X);
    return NL_OK;
}

void nl_onehot(const int32_t *labels, int64_t n, int n_classes, double pos, double neg, double *Y) {
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < n_classes; c++) Y[i * n_classes + c] = labels[i] == c ? pos : neg;
}

nl_status nl_gp_classify(const nl_gp *gp, const double *Ks, int64_t t, int32_t *pred) {
    if (!gp || !gp->alpha) return nl_set_error(NL_ESTATE, "gp_classify: the GP is not fitted");
    if (t <= 0) return t == 0 ? NL_OK : nl_set_error(NL_EINVAL, "gp_classify: t < 0");
    int64_t k = gp->k;
    double *m = malloc(sizeof(double) * (size_t)t * (size_t)k);
    if (!m) return nl_set_error(NL_ENOMEM, "gp_classify: out of memory");
    nl_status s = nl_gp_predict(gp, Ks, t, m);
    if (!s)
        for (int64_t i = 0; i < t; i++) {
            int64_t best = 0;
            for (int64_t c = 1; c < k; c++)
                if (m[i * k + c] > m[i * k + best]) best = c;
            pred[i] = (int32_t)best;
        }
    free(m);
    return s;
}
