/* Orthogonal parametrisation by the matrix exponential of a skew matrix, as PyTorch's
 * torch.nn.utils.parametrizations.orthogonal does for a square weight (orthogonal_map "matrix_exp"): the free
 * parameter X [n, n] gives A = tril(X, -1) - tril(X, -1)^T and Q = exp(A), orthogonal for every X.
 *
 * exp is computed in float64 by scaling and squaring with a diagonal Pade approximant r_m (m = 3, 5, 7, 9 or 13
 * chosen from ||A||_1; Higham 2005, "The scaling and squaring method for the matrix exponential revisited"), products
 * through CBLAS and the final solve (V - U) R = V + U through LAPACKE_dgetrf/dgetrs. For a skew A every r_m(A) is
 * exactly orthogonal, so Q^T Q = I holds to rounding whatever the degree. The backward pass needs the adjoint of the
 * Frechet derivative, dL/dA = L_exp(A^T, G), which is the (1, 2) block of exp([[A^T, G], [0, A^T]]); the same
 * algorithm runs on such block upper-triangular "pairs" (X, E) with products (X1, E1)(X2, E2) = (X1 X2, X1 E2 + E1 X2)
 * and solves (P, Q) \ (R, S) = (P^-1 R, P^-1 (S - Q P^-1 R)), three n x n products per 2n x 2n one (Al-Mohy &
 * Higham 2009 evaluate the Frechet derivative the same way). */
#include "nnlab/extend.h"
#include "nnlab/linalg.h"
#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double k_theta[5] = {1.495585217958292e-2, 2.539398330063230e-1, 9.504178996162932e-1,
                                  2.097847961257068e0, 5.371920351148152e0};
static const int k_degree[5] = {3, 5, 7, 9, 13};
static const double k_b3[4] = {120., 60., 12., 1.};
static const double k_b5[6] = {30240., 15120., 3360., 420., 30., 1.};
static const double k_b7[8] = {17297280., 8648640., 1995840., 277200., 25200., 1512., 56., 1.};
static const double k_b9[10] = {17643225600., 8821612800., 2075673600., 302702400., 30270240.,
                                2162160., 110880., 3960., 90., 1.};
static const double k_b13[14] = {64764752532480000., 32382376266240000., 7771770303897600., 1187353796428800.,
                                 129060195264000., 10559470521600., 670442572800., 33522128640., 1323241920.,
                                 40840800., 960960., 16380., 182., 1.};

/* c = a b + beta c, all (n, n) row-major */
static void mm(int64_t n, const double *a, const double *b, double beta, double *c) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, a, (int)n, b, (int)n, beta, c, (int)n);
}

/* A pair (x, e): the block matrix [[x, e], [0, x]]; e == NULL for a plain matrix. */
typedef struct pair {
    double *x, *e;
} pair;

/* c = a b (c distinct from a and b) */
static void pmul(int64_t n, pair a, pair b, pair c) {
    mm(n, a.x, b.x, 0.0, c.x);
    if (c.e) {
        mm(n, a.x, b.e, 0.0, c.e);
        mm(n, a.e, b.x, 1.0, c.e);
    }
}

/* out = sum_k w[k] P[k] (+ w_id I on x), P[k] pairs; k < np */
static void pcomb(int64_t n, int np, const pair *P, const double *w, double w_id, pair out) {
    int64_t nn = n * n;
    for (int part = 0; part < (out.e ? 2 : 1); part++) {
        double *o = part ? out.e : out.x;
        memset(o, 0, (size_t)nn * sizeof *o);
        for (int k = 0; k < np; k++) {
            const double *p = part ? P[k].e : P[k].x;
            cblas_daxpy((int)nn, w[k], p, 1, o, 1);
        }
        if (!part)
            for (int64_t i = 0; i < n; i++) o[i * n + i] += w_id;
    }
}

static double norm1(const double *a, int64_t n) {
    double best = 0;
    for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += fabs(a[i * n + j]);
        if (s > best) best = s;
    }
    return best;
}

/* E = exp(A) and, when G and L are given, L = L_exp(A, G) (the Frechet derivative of exp at A in direction G).
 * A, G, E, L (n, n) row-major; E and L must not alias A or G. */
static nl_status expm_pair(const double *A, const double *G, int64_t n, double *E, double *L) {
    if (n <= 0) return NL_OK;
    if (n > INT_MAX / 4) return nl_set_error(NL_ESHAPE, "expm: matrix of order %lld too large for LAPACK", (long long)n);
    int64_t nn = n * n;
    for (int64_t k = 0; k < nn; k++)
        if (!isfinite(A[k]) || (G && !isfinite(G[k])))
            return nl_set_error(NL_ENONFINITE, "expm: non-finite entry %g at [%lld,%lld]", !isfinite(A[k]) ? A[k] : G[k],
                                (long long)(k / n), (long long)(k % n));
    int fr = G != NULL && L != NULL;
    int nbuf = fr ? 2 : 1;
    /* buffers (n, n) each: As, A2, A4, A6, A8, U, V, T, W  (x and, for the Frechet pair, e parts) */
    double *buf = malloc((size_t)(9 * nbuf) * (size_t)nn * sizeof *buf);
    lapack_int *ipiv = malloc((size_t)n * sizeof *ipiv);
    if (!buf || !ipiv) {
        free(buf);
        free(ipiv);
        return nl_set_error(NL_ENOMEM, "expm: out of memory (order %lld)", (long long)n);
    }
    pair M[9];
    for (int k = 0; k < 9; k++) {
        M[k].x = buf + (size_t)(k * nbuf) * (size_t)nn;
        M[k].e = fr ? M[k].x + nn : NULL;
    }
    pair As = M[0], A2 = M[1], A4 = M[2], A6 = M[3], A8 = M[4], U = M[5], V = M[6], T = M[7], W = M[8];
    double nrm = norm1(A, n);
    int deg = 13, s = 0;
    for (int k = 0; k < 4; k++)
        if (nrm <= k_theta[k]) {
            deg = k_degree[k];
            break;
        }
    if (deg == 13 && nrm > k_theta[4]) s = (int)ceil(log2(nrm / k_theta[4]));
    double sc = ldexp(1.0, -s);
    for (int64_t k = 0; k < nn; k++) {
        As.x[k] = sc * A[k];
        if (fr) As.e[k] = sc * G[k];
    }
    pmul(n, As, As, A2);
    if (deg >= 5) pmul(n, A2, A2, A4);
    if (deg >= 7) pmul(n, A4, A2, A6);
    if (deg == 9) pmul(n, A6, A2, A8);
    pair pw[5] = {{NULL, NULL}, A2, A4, A6, A8}; /* A^(2j), j >= 1 */
    if (deg < 13) {
        const double *b = deg == 3 ? k_b3 : deg == 5 ? k_b5 : deg == 7 ? k_b7 : k_b9;
        int nj = (deg - 1) / 2; /* powers A^2 .. A^(deg-1) */
        double wo[4], we[4];
        for (int j = 1; j <= nj; j++) {
            wo[j - 1] = b[2 * j + 1];
            we[j - 1] = b[2 * j];
        }
        pcomb(n, nj, pw + 1, wo, b[1], T); /* T = sum_j b_{2j+1} A^{2j} */
        pmul(n, As, T, U);                  /* U = A T */
        pcomb(n, nj, pw + 1, we, b[0], V);  /* V = sum_j b_{2j} A^{2j} */
    } else {
        const double *b = k_b13;
        pcomb(n, 3, (pair[]){A6, A4, A2}, (double[]){b[13], b[11], b[9]}, 0.0, T);
        pmul(n, A6, T, W);
        pcomb(n, 4, (pair[]){W, A6, A4, A2}, (double[]){1.0, b[7], b[5], b[3]}, b[1], T);
        pmul(n, As, T, U);
        pcomb(n, 3, (pair[]){A6, A4, A2}, (double[]){b[12], b[10], b[8]}, 0.0, T);
        pmul(n, A6, T, W);
        pcomb(n, 4, (pair[]){W, A6, A4, A2}, (double[]){1.0, b[6], b[4], b[2]}, b[0], V);
    }
    /* P = V - U (into T), Q = V + U (into W); R = P \ Q (into W) */
    pcomb(n, 2, (pair[]){V, U}, (double[]){1.0, -1.0}, 0.0, T);
    pcomb(n, 2, (pair[]){V, U}, (double[]){1.0, 1.0}, 0.0, W);
    nl_status st = NL_OK;
    lapack_int info = LAPACKE_dgetrf(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)n, T.x, (lapack_int)n, ipiv);
    if (info != 0) {
        st = nl_set_error(NL_ELINALG, "expm: the Pade denominator is singular (LAPACKE_dgetrf info %d)", (int)info);
    } else {
        LAPACKE_dgetrs(LAPACK_ROW_MAJOR, 'N', (lapack_int)n, (lapack_int)n, T.x, (lapack_int)n, ipiv, W.x, (lapack_int)n);
        if (fr) { /* R.e = P.x^-1 (Q.e - P.e R.x) */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, -1.0, T.e, (int)n, W.x, (int)n, 1.0,
                        W.e, (int)n);
            LAPACKE_dgetrs(LAPACK_ROW_MAJOR, 'N', (lapack_int)n, (lapack_int)n, T.x, (lapack_int)n, ipiv, W.e, (lapack_int)n);
        }
        /* s squarings, alternating between W and U */
        pair cur = W, nxt = U;
        for (int k = 0; k < s; k++) {
            pmul(n, cur, cur, nxt);
            pair t = cur;
            cur = nxt;
            nxt = t;
        }
        memcpy(E, cur.x, (size_t)nn * sizeof *E);
        if (fr) memcpy(L, cur.e, (size_t)nn * sizeof *L);
    }
    free(buf);
    free(ipiv);
    return st;
}

nl_status nl_expm(const double *A, int64_t n, double *E) { return expm_pair(A, NULL, n, E, NULL); }

nl_status nl_expm_frechet(const double *A, const double *G, int64_t n, double *E, double *L) {
    if (!G || !L) return nl_set_error(NL_EINVAL, "expm_frechet: G and L must be given");
    return expm_pair(A, G, n, E, L);
}

nl_status nl_orthogonal_qr(double *W, int64_t n) {
    if (n <= 0) return NL_OK;
    if (n > INT_MAX / 4) return nl_set_error(NL_ESHAPE, "orthogonal_qr: order %lld too large for LAPACK", (long long)n);
    for (int64_t k = 0; k < n * n; k++)
        if (!isfinite(W[k])) return nl_set_error(NL_ENONFINITE, "orthogonal_qr: non-finite entry %g", W[k]);
    double *tau = malloc((size_t)n * sizeof *tau), *d = malloc((size_t)n * sizeof *d);
    if (!tau || !d) {
        free(tau);
        free(d);
        return nl_set_error(NL_ENOMEM, "orthogonal_qr: out of memory");
    }
    nl_status st = NL_OK;
    lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)n, W, (lapack_int)n, tau);
    if (!info) {
        for (int64_t i = 0; i < n; i++) d[i] = W[i * n + i] < 0 ? -1.0 : 1.0; /* sign of R's diagonal */
        info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)n, (lapack_int)n, W, (lapack_int)n, tau);
    }
    if (info) st = nl_set_error(NL_ELINALG, "orthogonal_qr: LAPACK info %d", (int)info);
    else /* Q diag(sign(diag R)): the unique QR with R's diagonal positive */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) W[i * n + j] *= d[j];
    free(tau);
    free(d);
    return st;
}

/* ---------------- the differentiable op ---------------- */

static void orth_backward(nl_ctx *c, nl_node *nd) {
    nl_tensor *gX = nl_grad(c, nd->in[0]);
    if (!gX) return;
    int64_t n = nd->i[0], nn = n * n;
    const double *A = nd->saved;            /* (n, n) the skew matrix */
    const nl_tensor *go = nl_node_grad_out(nd); /* (n, n) dL/dQ, contiguous */
    double *At = nl_scratch(c, (size_t)(4 * nn) * sizeof *At);
    if (!At) return;
    double *G = At + nn, *E = G + nn, *L = E + nn;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            At[i * n + j] = A[j * n + i];
            G[i * n + j] = go->dtype == NL_F64 ? ((const double *)go->data)[i * n + j] : ((const float *)go->data)[i * n + j];
        }
    if (expm_pair(At, G, n, E, L)) return; /* dL/dA = L_exp(A^T, dL/dQ); cannot fail once the forward succeeded */
    /* A = T - T^T with T = tril(X, -1): dL/dX[i][j] = dL/dA[i][j] - dL/dA[j][i] for i > j, 0 elsewhere */
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = 0; j < i; j++) {
            double g = L[i * n + j] - L[j * n + i];
            if (gX->dtype == NL_F64) ((double *)gX->data)[i * n + j] += g;
            else ((float *)gX->data)[i * n + j] += (float)g;
        }
}

nl_var *nl_orthogonal_expm(nl_ctx *c, nl_var *X) {
    NL_REQUIRE(X);
    if (X->val.dtype != NL_F64 && X->val.dtype != NL_F32)
        return nl_op_fail(NL_EDTYPE, "orthogonal_expm", "expected f32 or f64", X, NULL);
    if (X->val.ndim != 2 || X->val.shape[0] != X->val.shape[1])
        return nl_op_fail(NL_ESHAPE, "orthogonal_expm", "expected a square matrix [n,n]", X, NULL);
    int64_t n = X->val.shape[0], nn = n * n;
    if (n > INT_MAX / 4) return nl_op_fail(NL_ESHAPE, "orthogonal_expm", "matrix too large for LAPACK", X, NULL);
    double *A = nl_scratch(c, (size_t)(2 * (nn > 0 ? nn : 1)) * sizeof *A); /* (n, n) skew A, then (n, n) exp(A) */
    if (!A) return NULL;
    double *E = A + nn;
    const nl_tensor *t = &X->val;
    for (int64_t i = 0; i < n; i++) {
        A[i * n + i] = 0.0;
        for (int64_t j = 0; j < i; j++) {
            int64_t off = i * t->stride[0] + j * t->stride[1];
            double v = t->dtype == NL_F64 ? ((const double *)t->data)[off] : ((const float *)t->data)[off];
            A[i * n + j] = v;
            A[j * n + i] = -v;
        }
    }
    if (expm_pair(A, NULL, n, E, NULL)) return NULL;
    nl_var *out = nl_op_out(c, t->dtype, 2, t->shape);
    if (!out) return NULL;
    for (int64_t k = 0; k < nn; k++) {
        if (t->dtype == NL_F64) ((double *)out->val.data)[k] = E[k];
        else ((float *)out->val.data)[k] = (float)E[k];
    }
    nl_var *in[1] = {X};
    nl_node *nd = nl_op_record(c, "orthogonal_expm", out, orth_backward, 1, in);
    if (nd) {
        nd->saved = A;
        nd->i[0] = n;
    }
    return out;
}
