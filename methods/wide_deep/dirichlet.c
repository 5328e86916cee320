/* The Dirichlet-on-the-sphere data of the wide-and-deep experiment and its baseline classifiers: Bayes-optimal
 * (closed-form densities), 1-nearest neighbour, the Devroye / Hilbert-kernel estimate and majority vote. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nnlab/rng.h"
#include "wd_internal.h"

nl_status nl_wide_deep_alphas(int dim, double *a1, double *a2) {
    /* the class parameters of the official code's main.py (2-d active, 3/5/9-d as comments there) */
    static const double A2[2][2] = {{1, 2}, {2, 1}};
    static const double A3[2][3] = {{.5, .5, 2.5}, {2.5, .1, .5}};
    static const double A5[2][5] = {{3, 1, 2, 1, 1}, {1, 2, 2, 2, 3}};
    static const double A9[2][9] = {{1, 2, 1, 2, 1, 1, 1, 1, 1}, {1, 1, 1, 2, 3, 4, 2, 2, 1}};
    const double *p;
    switch (dim) {
    case 2: p = &A2[0][0]; break;
    case 3: p = &A3[0][0]; break;
    case 5: p = &A5[0][0]; break;
    case 9: p = &A9[0][0]; break;
    default: return nl_set_error(NL_EINVAL, "wide-deep: no class alphas for dim %d (choose 2, 3, 5 or 9)", dim);
    }
    memcpy(a1, p, (size_t)dim * sizeof *a1);
    memcpy(a2, p + dim, (size_t)dim * sizeof *a2);
    return NL_OK;
}

static void wd_dirichlet_point(nl_rng *r, const double *alpha, int dim, double *x) {
    double s = 0, q = 0;
    for (int k = 0; k < dim; k++) s += (x[k] = nl_rng_gamma(r, alpha[k]));
    for (int k = 0; k < dim; k++) x[k] /= s; /* simplex point */
    for (int k = 0; k < dim; k++) q += x[k] * x[k];
    q = sqrt(q);
    for (int k = 0; k < dim; k++) x[k] /= q; /* unit sphere */
}

nl_status nl_wide_deep_dirichlet_data(const double *alpha1, const double *alpha2, int dim, double prior1, int64_t n_train,
                               int64_t n_test, uint64_t seed, double *Xtr, double *ytr, double *Xte, double *yte) {
    if (!alpha1 || !alpha2 || dim < 2 || !(prior1 > 0 && prior1 < 1) || n_train < 1 || n_test < 0 || !Xtr || !ytr ||
        (n_test > 0 && (!Xte || !yte)))
        return nl_set_error(NL_EINVAL, "wide-deep data: bad arguments (dim %d, prior %g, n_train %lld, n_test %lld)", dim, prior1,
                            (long long)n_train, (long long)n_test);
    for (int k = 0; k < dim; k++)
        if (!(alpha1[k] > 0) || !(alpha2[k] > 0))
            return nl_set_error(NL_EINVAL, "wide-deep data: Dirichlet parameters must be > 0 (alpha[%d] = %g, %g)", k, alpha1[k],
                                alpha2[k]);
    const int64_t total = n_train + n_test, n1 = (int64_t)floor((double)total * prior1);
    double *X = malloc((size_t)total * dim * sizeof *X), *Y = malloc((size_t)total * sizeof *Y);
    int64_t *perm = malloc((size_t)total * sizeof *perm);
    if (!X || !Y || !perm) {
        free(X), free(Y), free(perm);
        return nl_set_error(NL_ENOMEM, "wide-deep data: cannot allocate %lld points", (long long)total);
    }
    nl_status st = NL_OK;
    for (int attempt = 0;; attempt++) {
        nl_rng r;
        nl_rng_init(&r, seed, 0x5744ull + (uint64_t)attempt); /* stream "WD" + attempt */
        for (int64_t i = 0; i < total; i++) {
            wd_dirichlet_point(&r, i < n1 ? alpha1 : alpha2, dim, X + i * dim);
            Y[i] = i < n1 ? 1.0 : -1.0;
        }
        nl_rng_permutation(&r, perm, total);
        for (int64_t i = 0; i < total; i++) {
            double *dst = i < n_train ? Xtr + i * dim : Xte + (i - n_train) * dim;
            memcpy(dst, X + perm[i] * dim, (size_t)dim * sizeof *dst);
            if (i < n_train) ytr[i] = Y[perm[i]];
            else yte[i - n_train] = Y[perm[i]];
        }
        /* like the official code: redraw if two training points coincide in floating point (xi_0 >= 1), which
         * would make K_train singular */
        int dup = 0;
#pragma omp parallel for schedule(dynamic, 16) reduction(| : dup)
        for (int64_t i = 0; i < n_train; i++)
            for (int64_t j = i + 1; j < n_train; j++) {
                double s = 0;
                for (int k = 0; k < dim; k++) s += Xtr[i * dim + k] * Xtr[j * dim + k];
                if (s >= 1.0) dup = 1;
            }
        if (!dup) break;
        if (attempt >= 20) {
            st = nl_set_error(NL_EINVAL, "wide-deep data: 21 draws all had duplicate training points (n_train %lld too large?)",
                              (long long)n_train);
            break;
        }
    }
    free(X), free(Y), free(perm);
    return st;
}

double nl_wide_deep_dirichlet_logpdf(const double *alpha, int dim, const double *s) {
    double asum = 0, lp = 0;
    for (int k = 0; k < dim; k++) {
        asum += alpha[k];
        lp -= lgamma(alpha[k]);
        if (alpha[k] != 1.0) lp += (alpha[k] - 1.0) * log(s[k]);
    }
    return lp + lgamma(asum);
}

void nl_wide_deep_bayes_predict(const double *alpha1, const double *alpha2, int dim, double prior1, const double *X, int64_t m,
                         int8_t *pred) {
    const double lp1 = log(prior1), lp2 = log(1.0 - prior1);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < m; t++) {
        double s[64], sum = 0;
        for (int k = 0; k < dim; k++) sum += X[t * dim + k];
        for (int k = 0; k < dim; k++) s[k] = X[t * dim + k] / sum; /* back to the simplex (same map for both classes) */
        double a = lp1 + nl_wide_deep_dirichlet_logpdf(alpha1, dim, s), b = lp2 + nl_wide_deep_dirichlet_logpdf(alpha2, dim, s);
        pred[t] = a > b ? 1 : -1; /* official: pdf1 > pdf2 -> +1 */
    }
}

void nl_wide_deep_1nn_predict(const double *Xtr, const double *y, int64_t n, const double *Xte, int64_t m, int64_t dim, int8_t *pred) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < m; t++) {
        double best = -INFINITY;
        int64_t bi = 0;
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t k = 0; k < dim; k++) s += Xtr[i * dim + k] * Xte[t * dim + k];
            if (s > best) best = s, bi = i;
        }
        pred[t] = y[bi] > 0 ? 1 : -1;
    }
}

void nl_wide_deep_devroye_predict(const double *Xtr, const double *y, int64_t n, const double *Xte, int64_t m, int64_t dim,
                           int8_t *pred) {
    const double h = 0.5 * (double)(dim - 1); /* ||x - z||^-(dim-1) = (||x - z||^2)^-h */
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < m; t++) {
        double out = 0, exact = 0;
        int nexact = 0;
        for (int64_t i = 0; i < n; i++) {
            double r2 = 0;
            for (int64_t k = 0; k < dim; k++) {
                double u = Xtr[i * dim + k] - Xte[t * dim + k];
                r2 += u * u;
            }
            if (r2 == 0) exact += y[i], nexact++;
            else out += y[i] * pow(r2, -h);
        }
        if (nexact) out = exact;
        pred[t] = out < 0 ? -1 : 1;
    }
}

void nl_wide_deep_majority_predict(const double *y, int64_t n, int64_t m, int8_t *pred) {
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++) pos += y[i] > 0;
    int8_t v = pos > n - pos ? 1 : -1; /* official: +1 only with strictly more +1 labels */
    for (int64_t t = 0; t < m; t++) pred[t] = v;
}

double nl_wide_deep_error(const int8_t *pred, const double *y, int64_t m) {
    if (m <= 0) return NAN;
    int64_t e = 0;
    for (int64_t t = 0; t < m; t++) {
        if (pred[t] == 0) return NAN;
        e += (pred[t] > 0) != (y[t] > 0);
    }
    return (double)e / (double)m;
}

double nl_wide_deep_agreement(const int8_t *a, const int8_t *b, int64_t m) {
    if (m <= 0) return NAN;
    int64_t s = 0;
    for (int64_t t = 0; t < m; t++) {
        if (a[t] == 0 || b[t] == 0) return NAN;
        s += a[t] == b[t];
    }
    return (double)s / (double)m;
}
