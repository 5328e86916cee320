/* Kernel matrices of the infinitely wide and deep networks and the classifier sign(y^T K_train^{-1} k(x)) at
 * several depths in one pass (include/wide_deep/wide_deep.h). */
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "wd_internal.h"

static nl_status wd_check_rows(const char *what, const double *X, int64_t n, int64_t dim) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t k = 0; k < dim; k++) s += X[i * dim + k] * X[i * dim + k];
        if (!(fabs(s - 1.0) <= 1e-6))
            return nl_set_error(NL_EINVAL,
                                "wide-deep: %s row %lld has squared norm %.17g; inputs must lie on the unit sphere "
                                "(normalise the rows)",
                                what, (long long)i, s);
    }
    return NL_OK;
}

static inline double wd_dot(const double *a, const double *b, int64_t dim) {
    double s = 0;
    for (int64_t k = 0; k < dim; k++) s += a[k] * b[k];
    return s;
}

nl_status nl_wide_deep_kernel_matrix(const nl_wide_deep_dual *d, int kernel, int64_t depth, const double *A, int64_t n, const double *B,
                              int64_t m, int64_t dim, int same_points, double *K, double *col_log2) {
    if (!d || !A || !B || !K || n < 0 || m < 0 || dim < 1)
        return nl_set_error(NL_EINVAL, "wide-deep kernel_matrix: NULL argument or negative size (n %lld, m %lld, dim %lld)",
                            (long long)n, (long long)m, (long long)dim);
    if (kernel != NL_WIDE_DEEP_NNGP && kernel != NL_WIDE_DEEP_NTK)
        return nl_set_error(NL_EINVAL, "wide-deep kernel_matrix: kernel must be NL_WIDE_DEEP_NNGP or NL_WIDE_DEEP_NTK (got %d)", kernel);
    if (same_points && n != m)
        return nl_set_error(NL_EINVAL, "wide-deep kernel_matrix: same_points needs n == m (got %lld, %lld)", (long long)n,
                            (long long)m);
    nl_status st = nl_wide_deep_check_depth(d, depth);
    if (st) return st;
    if ((st = wd_check_rows("A", A, n, dim)) || (st = wd_check_rows("B", B, m, dim))) return st;
    if (n == 0 || m == 0) return NL_OK;
    wd_state *S = malloc((size_t)n * (size_t)m * sizeof *S);
    if (!S)
        return nl_set_error(NL_ENOMEM, "wide-deep kernel_matrix: cannot allocate the state of %lld x %lld entries", (long long)n,
                            (long long)m);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; i++) {
        wd_state *row = S + i * m;
        for (int64_t j = 0; j < m; j++)
            wd_state_init(d, &row[j], (same_points && i == j) ? 1.0 : wd_dot(A + i * dim, B + j * dim, dim));
        wd_advance(d, row, m, depth);
    }
    for (int64_t j = 0; j < m; j++) {
        double s = 0;
        if (col_log2) {
            s = -INFINITY;
            for (int64_t i = 0; i < n; i++) {
                const wd_state *q = &S[i * m + j];
                double xm, xe;
                wd_nngp(d, q, &xm, &xe);
                double l = kernel == NL_WIDE_DEEP_NNGP ? wd_ilog2(xm, xe) : wd_ilog2(q->km, q->ke);
                if (same_points && kernel == NL_WIDE_DEEP_NNGP && i == j) l = 0;
                if (l > s) s = l;
            }
            if (!isfinite(s)) s = 0;
            col_log2[j] = s;
        }
        for (int64_t i = 0; i < n; i++) {
            const wd_state *q = &S[i * m + j];
            double xm, xe;
            wd_nngp(d, q, &xm, &xe);
            double v = kernel == NL_WIDE_DEEP_NNGP ? wd_scaled(xm, xe, s) : wd_scaled(q->km, q->ke, s);
            if (same_points && kernel == NL_WIDE_DEEP_NNGP && i == j) v = wd_scaled(1.0, 0.0, s);
            K[i * m + j] = v;
        }
    }
    free(S);
    return NL_OK;
}

/* Factor and solve the symmetric (n, n) system K sol = y in place (K is destroyed). */
static void wd_solve(double *K, int64_t n, const double *y, double *sol, lapack_int *ipiv, nl_wide_deep_solve_info *info,
                     const char *what) {
    memcpy(sol, y, (size_t)n * sizeof *sol);
    info->status = NL_OK;
    info->msg[0] = 0;
    /* K is symmetric, so column-major calls see the same matrix and LAPACKE makes no transposed copy. */
    double anorm = LAPACKE_dlange(LAPACK_COL_MAJOR, '1', (lapack_int)n, (lapack_int)n, K, (lapack_int)n);
    if (!isfinite(anorm)) {
        info->status = NL_ENONFINITE;
        info->rcond = NAN;
        snprintf(info->msg, sizeof info->msg, "%s: K_train has non-finite entries", what);
        return;
    }
    lapack_int r = LAPACKE_dgetrf(LAPACK_COL_MAJOR, (lapack_int)n, (lapack_int)n, K, (lapack_int)n, ipiv);
    if (r > 0) {
        info->status = NL_ELINALG;
        info->rcond = 0;
        snprintf(info->msg, sizeof info->msg, "%s: K_train is singular in floating point (LU pivot U(%d,%d) = 0)", what, (int)r,
                 (int)r);
        return;
    }
    double rc = 0;
    LAPACKE_dgecon(LAPACK_COL_MAJOR, '1', (lapack_int)n, K, (lapack_int)n, anorm, &rc);
    info->rcond = rc;
    if (!(rc >= DBL_EPSILON)) {
        info->status = NL_ELINALG;
        snprintf(info->msg, sizeof info->msg,
                 "%s: K_train is numerically singular (reciprocal condition number %.3g < machine epsilon)", what, rc);
        return;
    }
    LAPACKE_dgetrs(LAPACK_COL_MAJOR, 'N', (lapack_int)n, 1, K, (lapack_int)n, ipiv, sol, (lapack_int)n);
}

nl_status nl_wide_deep_predict(const nl_wide_deep_dual *d, int kernels, const double *Xtr, const double *y, int64_t n, const double *Xte,
                        int64_t m, int64_t dim, const int64_t *depths, int nd, int8_t *pred_nngp, int8_t *pred_ntk,
                        nl_wide_deep_solve_info *info_nngp, nl_wide_deep_solve_info *info_ntk) {
    if (!d || !Xtr || !y || (!Xte && m > 0) || !depths || n < 1 || m < 0 || dim < 1 || nd < 1)
        return nl_set_error(NL_EINVAL, "wide-deep predict: NULL argument or bad size (n %lld, m %lld, dim %lld, %d depths)",
                            (long long)n, (long long)m, (long long)dim, nd);
    if (!(kernels & (NL_WIDE_DEEP_NNGP | NL_WIDE_DEEP_NTK)) || (kernels & ~(NL_WIDE_DEEP_NNGP | NL_WIDE_DEEP_NTK)))
        return nl_set_error(NL_EINVAL, "wide-deep predict: kernels must be NL_WIDE_DEEP_NNGP and/or NL_WIDE_DEEP_NTK (got %d)", kernels);
    int want[2] = {(kernels & NL_WIDE_DEEP_NNGP) != 0, (kernels & NL_WIDE_DEEP_NTK) != 0};
    int8_t *pred[2] = {pred_nngp, pred_ntk};
    nl_wide_deep_solve_info *inf[2] = {info_nngp, info_ntk};
    for (int k = 0; k < 2; k++)
        if (want[k] && (!pred[k] || !inf[k]))
            return nl_set_error(NL_EINVAL, "wide-deep predict: %s requested but its prediction/info buffer is NULL",
                                k ? "NTK" : "NNGP");
    for (int i = 0; i < nd; i++)
        if (depths[i] < 0 || (i > 0 && depths[i] <= depths[i - 1]))
            return nl_set_error(NL_EINVAL, "wide-deep predict: depths must be >= 0 and strictly increasing (depth[%d] = %lld)", i,
                                (long long)depths[i]);
    nl_status st = nl_wide_deep_check_depth(d, depths[nd - 1]);
    if (st) return st;
    if ((st = wd_check_rows("X_train", Xtr, n, dim)) || (st = wd_check_rows("X_test", Xte, m, dim))) return st;
    for (int64_t i = 0; i < n; i++)
        if (y[i] != 1.0 && y[i] != -1.0)
            return nl_set_error(NL_EINVAL, "wide-deep predict: label y[%lld] = %g is not +1 or -1", (long long)i, y[i]);

    const int64_t P = n * (n - 1) / 2;
    const int nt = omp_get_max_threads();
    wd_state *S = malloc((size_t)(P > 0 ? P : 1) * sizeof *S);
    wd_state *colbuf = malloc((size_t)nt * (size_t)n * sizeof *colbuf);
    double *K = malloc((size_t)n * (size_t)n * sizeof *K);
    double *sol = malloc((size_t)2 * nd * n * sizeof *sol);
    lapack_int *ipiv = malloc((size_t)n * sizeof *ipiv);
    if (!S || !colbuf || !K || !sol || !ipiv) {
        free(S), free(colbuf), free(K), free(sol), free(ipiv);
        return nl_set_error(NL_ENOMEM,
                            "wide-deep predict: cannot allocate %.2f GB for %lld training points (pair state 32 B/pair + "
                            "K_train 8 B/entry)",
                            ((double)P * 32 + (double)n * n * 8) / 1e9, (long long)n);
    }
    /* ---- training pairs: packed strict upper triangle, row i holds j = i+1..n-1 ---- */
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < n - 1; i++) {
        wd_state *row = S + i * (n - 1) - i * (i - 1) / 2;
        for (int64_t j = i + 1; j < n; j++) wd_state_init(d, &row[j - i - 1], wd_dot(Xtr + i * dim, Xtr + j * dim, dim));
    }
    wd_state diag;
    wd_state_init(d, &diag, 1.0);
    int64_t cur = 0;
    for (int di = 0; di < nd; di++) {
        const int64_t steps = depths[di] - cur;
        double t0 = nl_time();
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t i = 0; i < n - 1; i++) wd_advance(d, S + i * (n - 1) - i * (i - 1) / 2, n - 1 - i, steps);
        wd_advance(d, &diag, 1, steps);
        cur = depths[di];
        for (int k = 0; k < 2; k++) {
            if (!want[k]) continue;
            /* scale: NNGP diagonal forced to 1, no scaling; NTK: the largest entry (the diagonal for these duals) */
            double s = 0;
            if (k == 1) {
                double mx = wd_ilog2(diag.km, diag.ke);
#pragma omp parallel for reduction(max : mx) schedule(static)
                for (int64_t p = 0; p < P; p++) {
                    double l = wd_ilog2(S[p].km, S[p].ke);
                    if (l > mx) mx = l;
                }
                s = isfinite(mx) ? mx : 0;
            }
#pragma omp parallel for schedule(dynamic, 16)
            for (int64_t i = 0; i < n; i++) {
                K[i * n + i] = k == 0 ? 1.0 : wd_scaled(diag.km, diag.ke, s);
                const wd_state *row = S + i * (n - 1) - i * (i - 1) / 2;
                for (int64_t j = i + 1; j < n; j++) {
                    const wd_state *q = &row[j - i - 1];
                    double xm, xe;
                    wd_nngp(d, q, &xm, &xe);
                    double v = k == 0 ? wd_scaled(xm, xe, 0.0) : wd_scaled(q->km, q->ke, s);
                    K[i * n + j] = v;
                    K[j * n + i] = v;
                }
            }
            char what[80];
            snprintf(what, sizeof what, "%s %s depth %lld", d->name, k ? "NTK" : "NNGP", (long long)depths[di]);
            nl_wide_deep_solve_info *si = &inf[k][di];
            si->log2scale = s;
            wd_solve(K, n, y, sol + ((size_t)k * nd + di) * n, ipiv, si, what);
        }
        (void)t0;
    }
    free(K);
    free(S);
    free(ipiv);

    /* ---- test columns: one column per task, recursion advanced depth to depth, per-column scale ---- */
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < m; t++) {
        wd_state *c = colbuf + (size_t)omp_get_thread_num() * n;
        const double *z = Xte + t * dim;
        for (int64_t i = 0; i < n; i++) wd_state_init(d, &c[i], wd_dot(Xtr + i * dim, z, dim));
        int64_t at = 0;
        for (int di = 0; di < nd; di++) {
            wd_advance(d, c, n, depths[di] - at);
            at = depths[di];
            for (int k = 0; k < 2; k++) {
                if (!want[k]) continue;
                if (inf[k][di].status != NL_OK) {
                    pred[k][(size_t)di * m + t] = 0;
                    continue;
                }
                double s = -INFINITY, xm, xe;
                for (int64_t i = 0; i < n; i++) {
                    wd_nngp(d, &c[i], &xm, &xe);
                    double l = k == 0 ? wd_ilog2(xm, xe) : wd_ilog2(c[i].km, c[i].ke);
                    if (l > s) s = l;
                }
                if (!isfinite(s)) s = 0;
                const double *sv = sol + ((size_t)k * nd + di) * n;
                double out = 0;
                for (int64_t i = 0; i < n; i++) {
                    wd_nngp(d, &c[i], &xm, &xe);
                    out += sv[i] * (k == 0 ? wd_scaled(xm, xe, s) : wd_scaled(c[i].km, c[i].ke, s));
                }
                pred[k][(size_t)di * m + t] = out < 0 ? -1 : 1;
            }
        }
    }
    free(colbuf);
    free(sol);
    return NL_OK;
}
