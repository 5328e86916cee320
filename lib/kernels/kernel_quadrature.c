/* Quadrature rules of the NNGP / NTK kernels: Gauss-Hermite (public, nl_gauss_hermite), and the Gauss-Legendre
 * and Gauss-Laguerre rules of the polar scheme, all by Golub-Welsch (LAPACK dstev). */
#include "kernels/kernels_internal.h"
#include <lapacke.h>
#include <stdlib.h>

/* ======================================================================================================
 * Gauss-Hermite rule
 * ====================================================================================================== */
nl_status nl_gauss_hermite(int deg, double *t, double *w) {
    if (deg < 1 || deg > 200) return nl_set_error(NL_EINVAL, "gauss_hermite: degree %d outside 1..200", deg);
    if (!t || !w) return nl_set_error(NL_EINVAL, "gauss_hermite: NULL output");
    int n = deg;
    /* Golub-Welsch: eigenvalues of the Jacobi matrix (diagonal 0, off-diagonal sqrt(k/2)). */
    double *e = malloc(sizeof(double) * (size_t)(n > 1 ? n - 1 : 1));
    if (!e) return nl_set_error(NL_ENOMEM, "gauss_hermite: out of memory");
    for (int i = 0; i < n; i++) t[i] = 0.0;
    for (int k = 1; k < n; k++) e[k - 1] = sqrt(0.5 * k);
    if (n > 1) {
        lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'N', n, t, e, NULL, 1);
        if (info != 0) {
            free(e);
            return nl_set_error(NL_ELINALG, "gauss_hermite: dstev failed (info %d) for degree %d", (int)info, n);
        }
    }
    free(e);
    /* Newton polish on the orthonormal recurrence p_j = t sqrt(2/j) p_{j-1} - sqrt((j-1)/j) p_{j-2},
     * p_0 = pi^{-1/4}; p_n' = sqrt(2n) p_{n-1}; weight 2 / p_n'^2. */
    const double pim4 = 0.7511255444649425; /* pi^{-1/4} */
    for (int i = 0; i < n; i++) {
        double z = t[i], pp = 1.0;
        for (int it = 0; it < 4; it++) {
            double p1 = pim4, p2 = 0.0;
            for (int j = 1; j <= n; j++) {
                double p3 = p2;
                p2 = p1;
                p1 = z * sqrt(2.0 / j) * p2 - sqrt((double)(j - 1) / j) * p3;
            }
            pp = sqrt(2.0 * n) * p2;
            double dz = p1 / pp;
            z -= dz;
            if (fabs(dz) <= 1e-16 * (1.0 + fabs(z))) {
                /* recompute pp at the final z */
                p1 = pim4; p2 = 0.0;
                for (int j = 1; j <= n; j++) {
                    double p3 = p2;
                    p2 = p1;
                    p1 = z * sqrt(2.0 / j) * p2 - sqrt((double)(j - 1) / j) * p3;
                }
                pp = sqrt(2.0 * n) * p2;
                break;
            }
        }
        t[i] = z;
        w[i] = 2.0 / (pp * pp);
    }
    /* exact symmetry */
    for (int i = 0; i < n / 2; i++) {
        double a = 0.5 * (t[n - 1 - i] - t[i]), b = 0.5 * (w[i] + w[n - 1 - i]);
        t[i] = -a; t[n - 1 - i] = a; w[i] = w[n - 1 - i] = b;
    }
    if (n % 2) t[n / 2] = 0.0;
    return NL_OK;
}

/* Golub-Welsch for a Jacobi matrix (diagonal a (n), off-diagonal b (n-1)) with total mass mu0: nodes x
 * ascending, weights w = mu0 * (first eigenvector component)^2. */
static nl_status golub_welsch(int n, const double *a, const double *b, double mu0, double *x, double *w) {
    double *e = malloc(sizeof(double) * (size_t)(n > 1 ? n - 1 : 1)), *z = malloc(sizeof(double) * (size_t)n * (size_t)n);
    if (!e || !z) { free(e); free(z); return nl_set_error(NL_ENOMEM, "quadrature: out of memory"); }
    for (int i = 0; i < n; i++) x[i] = a[i];
    for (int i = 0; i + 1 < n; i++) e[i] = b[i];
    lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'V', n, x, e, z, n);
    if (info == 0)
        for (int k = 0; k < n; k++) w[k] = mu0 * z[(size_t)k * (size_t)n] * z[(size_t)k * (size_t)n];
    free(e);
    free(z);
    if (info != 0) return nl_set_error(NL_ELINALG, "quadrature: dstev failed (info %d, n %d)", (int)info, n);
    return NL_OK;
}

/* Gauss-Legendre on [-1, 1] (weights sum to 2) and Gauss-Laguerre for e^{-t} on [0, inf) (weights sum to 1). */
nl_status nl_kquad_legendre(int n, double *x, double *w) {
    double a[256] = {0}, b[256] = {0}; /* (n <= 256) zero-filled: gcc cannot see that only [0, n) is read */
    for (int k = 0; k < n; k++) { a[k] = 0; b[k] = (k + 1.0) / sqrt(4.0 * (k + 1) * (k + 1) - 1.0); }
    nl_status s = golub_welsch(n, a, b, 2.0, x, w);
    if (s) return s;
    for (int i = 0; i < n / 2; i++) { /* exact symmetry */
        double m = 0.5 * (x[n - 1 - i] - x[i]), v = 0.5 * (w[i] + w[n - 1 - i]);
        x[i] = -m; x[n - 1 - i] = m; w[i] = w[n - 1 - i] = v;
    }
    if (n % 2) x[n / 2] = 0.0;
    return NL_OK;
}

nl_status nl_kquad_laguerre(int n, double *x, double *w) {
    double a[256] = {0}, b[256] = {0}; /* (n <= 256) zero-filled: gcc cannot see that only [0, n) is read */
    for (int k = 0; k < n; k++) { a[k] = 2.0 * k + 1.0; b[k] = k + 1.0; }
    return golub_welsch(n, a, b, 1.0, x, w);
}
