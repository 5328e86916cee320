/* Differentiable float64 linear algebra (Cholesky, triangular and general solves, log-determinant, trace,
 * diagonals) and plain-buffer LAPACK helpers (eigh, thin SVD, in-place Cholesky).
 *
 * All factorizations go through LAPACKE (dpotrf, dgetrf/dgetrs, dsyevd, dgesdd) and all triangular products and
 * solves through CBLAS (dtrmm, dtrsm, dgemm). Matrices are row-major. */
#include "nnlab/extend.h"
#include "nnlab/linalg.h"
#include "nnlab/ops.h"
#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* ---------------- shared checks ---------------- */

/* f64 check for every op: f32 (or anything else) -> NL_EDTYPE naming the op. */
static int need_f64(const char *op, const nl_var *a) {
    if (a->val.dtype != NL_F64) {
        nl_op_fail(NL_EDTYPE, op, "linear algebra ops need f64 inputs", a, NULL);
        return 0;
    }
    return 1;
}

/* a must be a square f64 matrix small enough for LAPACK's 32-bit integers; n = its order. */
static int need_square(const char *op, const nl_var *a, int64_t *n) {
    if (!need_f64(op, a)) return 0;
    if (a->val.ndim != 2 || a->val.shape[0] != a->val.shape[1]) {
        nl_op_fail(NL_ESHAPE, op, "expected a square matrix [n,n]", a, NULL);
        return 0;
    }
    if (a->val.shape[0] > INT_MAX / 2) {
        nl_op_fail(NL_ESHAPE, op, "matrix too large for LAPACK", a, NULL);
        return 0;
    }
    *n = a->val.shape[0];
    return 1;
}

/* Element (i, j) of a strided 2-D f64 tensor. */
static inline double at2(const nl_tensor *t, int64_t i, int64_t j) {
    return ((const double *)t->data)[i * t->stride[0] + j * t->stride[1]];
}

static inline int ld_of(int64_t k) { return k > 0 ? (int)k : 1; }

/* First non-finite entry of a (n rows, m cols, leading dimension lda), or -1. */
static int64_t first_nonfinite(const double *a, int64_t n, int64_t m, int64_t lda) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++)
            if (!isfinite(a[i * lda + j])) return i * m + j;
    return -1;
}

/* First non-finite entry of the lower triangle (diagonal included) of a (n, n), or -1. */
static int64_t first_nonfinite_lower(const double *a, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++)
            if (!isfinite(a[i * n + j])) return i * n + j;
    return -1;
}

/* dpotrf (lower, row-major) on a contiguous (n, n) buffer; zeroes the strict upper triangle. Only the lower
 * triangle is read (and checked): callers may leave the strict upper triangle unset. `op` names the caller in
 * messages. */
static nl_status potrf_lower(const char *op, double *a, int64_t n) {
    if (n == 0) return NL_OK;
    int64_t bad = first_nonfinite_lower(a, n);
    if (bad >= 0)
        return nl_set_error(NL_ENONFINITE, "%s: matrix [%lld,%lld] contains a non-finite value (%g at [%lld,%lld])", op,
                            (long long)n, (long long)n, a[bad], (long long)(bad / n), (long long)(bad % n));
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, a, ld_of(n));
    if (info > 0)
        return nl_set_error(NL_ELINALG,
                            "%s: matrix [%lld,%lld] is not positive definite (leading minor %d); add jitter / a diagonal "
                            "regulariser",
                            op, (long long)n, (long long)n, (int)info);
    if (info < 0) return nl_set_error(NL_EINVAL, "%s: LAPACKE_dpotrf rejected argument %d", op, (int)-info);
    for (int64_t i = 0; i < n; i++) memset(a + i * n + i + 1, 0, (size_t)(n - 1 - i) * sizeof(double));
    return NL_OK;
}

/* dst (n, m) += src (n, m), both contiguous, restricted to the lower/upper triangle (incl. diagonal) when
 * tri = 1 / 2, everything when tri = 0. */
static void add_masked(double *dst, const double *src, int64_t n, int64_t m, int tri, double alpha) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            if ((tri == 1 && j > i) || (tri == 2 && j < i)) continue;
            dst[i * m + j] += alpha * src[i * m + j];
        }
}

/* ---------------- Cholesky ---------------- */

/* Backward (Murray 2016; the form used by PyTorch): with gL masked to its lower triangle,
 *   P = Phi(L^T gL)  (lower triangle, diagonal halved),  gA = L^{-T} P L^{-1},  then symmetrised.
 * The symmetrised gradient treats A as a symmetric matrix (both triangles share the gradient). */
static void cholesky_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *gA = nl_grad(c, n->in[0]);
    if (!gA) return;
    const nl_tensor *L = &n->out->val; /* contiguous (n, n), upper zero */
    const double *g = nl_node_grad_out(n)->data;
    int64_t N = L->shape[0];
    if (N == 0) return;
    double *P = nl_scratch(c, (size_t)(N * N) * sizeof(double));
    if (!P) return;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) P[i * N + j] = j <= i ? g[i * N + j] : 0.0;
    /* P = L^T tril(gL) */
    cblas_dtrmm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, (int)N, (int)N, 1.0, L->data, (int)N,
                P, (int)N);
    for (int64_t i = 0; i < N; i++) {
        for (int64_t j = i + 1; j < N; j++) P[i * N + j] = 0.0;
        P[i * N + i] *= 0.5;
    }
    /* P = P L^{-1}, then P = L^{-T} P */
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)N, (int)N, 1.0, L->data,
                (int)N, P, (int)N);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, (int)N, (int)N, 1.0, L->data, (int)N,
                P, (int)N);
    double *ga = gA->data;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) ga[i * N + j] += 0.5 * (P[i * N + j] + P[j * N + i]);
}

nl_var *nl_cholesky(nl_ctx *c, nl_var *A) {
    NL_REQUIRE(A);
    int64_t n;
    if (!need_square("cholesky", A, &n)) return NULL;
    int64_t shape[2] = {n, n};
    nl_var *out = nl_op_out(c, NL_F64, 2, shape);
    if (!out) return NULL;
    nl_tensor_copy(&out->val, &A->val);
    if (potrf_lower("cholesky", out->val.data, n) != NL_OK) return NULL;
    nl_var *in[1] = {A};
    nl_op_record(c, "cholesky", out, cholesky_backward, 1, in);
    return out;
}

nl_status nl_cholesky_inplace(double *A, int64_t n) {
    if (!A && n > 0) return nl_set_error(NL_EINVAL, "cholesky_inplace: A is NULL");
    if (n < 0 || n > INT_MAX / 2) return nl_set_error(NL_EINVAL, "cholesky_inplace: bad order n = %lld", (long long)n);
    return potrf_lower("cholesky_inplace", A, n);
}

/* ---------------- triangular solve ---------------- */

typedef struct {
    nl_tensor L; /* contiguous (n, n) as used in forward */
    int lower, trans;
} tri_saved;

/* X = op(L)^{-1} B (X is the output). With Y = op(L)^{-T} gX:
 *   gB += Y;   g op(L) = -Y X^T, so gL += -Y X^T (not trans) or -X Y^T (trans), on L's triangle only. */
static void trisolve_backward(nl_ctx *c, nl_node *n) {
    tri_saved *s = n->saved;
    nl_tensor *gL = nl_grad(c, n->in[0]), *gB = nl_grad(c, n->in[1]);
    if (!gL && !gB) return;
    const nl_tensor *X = &n->out->val;
    int64_t N = s->L.shape[0], M = X->ndim == 2 ? X->shape[1] : 1;
    if (N == 0 || M == 0) return;
    double *Y = nl_scratch(c, (size_t)(N * M) * sizeof(double));
    if (!Y) return;
    memcpy(Y, nl_node_grad_out(n)->data, (size_t)(N * M) * sizeof(double));
    cblas_dtrsm(CblasRowMajor, CblasLeft, s->lower ? CblasLower : CblasUpper, s->trans ? CblasNoTrans : CblasTrans,
                CblasNonUnit, (int)N, (int)M, 1.0, s->L.data, (int)N, Y, (int)M);
    if (gB) add_masked(gB->data, Y, N, M, 0, 1.0);
    if (gL) {
        double *G = nl_scratch(c, (size_t)(N * N) * sizeof(double));
        if (!G) return;
        if (!s->trans) nl_gemm(NL_F64, 0, 1, N, N, M, 1.0, Y, M, X->data, M, 0.0, G, N);  /* Y X^T */
        else nl_gemm(NL_F64, 0, 1, N, N, M, 1.0, X->data, M, Y, M, 0.0, G, N);           /* X Y^T */
        add_masked(gL->data, G, N, N, s->lower ? 1 : 2, -1.0);
    }
}

nl_var *nl_trisolve(nl_ctx *c, nl_var *L, nl_var *B, int lower, int trans) {
    NL_REQUIRE(L, B);
    int64_t n;
    if (!need_square("trisolve", L, &n) || !need_f64("trisolve", B)) return NULL;
    if ((B->val.ndim != 1 && B->val.ndim != 2) || B->val.shape[0] != n)
        return nl_op_fail(NL_ESHAPE, "trisolve", "B must be [n] or [n,m] with n the order of L", L, B);
    if (B->val.ndim == 2 && B->val.shape[1] > INT_MAX / 2)
        return nl_op_fail(NL_ESHAPE, "trisolve", "B too large for BLAS", L, B);
    int64_t m = B->val.ndim == 2 ? B->val.shape[1] : 1;
    for (int64_t k = 0; k < n; k++) {
        double d = at2(&L->val, k, k);
        if (d == 0.0 || !isfinite(d)) {
            char b1[64];
            nl_set_error(NL_ELINALG, "trisolve: triangular matrix %s is singular or non-finite (L[%lld,%lld] = %g)",
                         nl_shape_str(&L->val, b1, sizeof b1), (long long)k, (long long)k, d);
            return NULL;
        }
    }
    nl_tensor Lc = nl_contig(c, &L->val);
    if (!Lc.data) return NULL;
    nl_var *out = nl_op_out(c, NL_F64, B->val.ndim, B->val.shape);
    if (!out) return NULL;
    nl_tensor_copy(&out->val, &B->val);
    if (n > 0 && m > 0)
        cblas_dtrsm(CblasRowMajor, CblasLeft, lower ? CblasLower : CblasUpper, trans ? CblasTrans : CblasNoTrans,
                    CblasNonUnit, (int)n, (int)m, 1.0, Lc.data, (int)n, out->val.data, (int)m);
    nl_var *in[2] = {L, B};
    nl_node *nd = nl_op_record(c, "trisolve", out, trisolve_backward, 2, in);
    if (nd) {
        tri_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->L = Lc;
        s->lower = lower ? 1 : 0;
        s->trans = trans ? 1 : 0;
        nd->saved = s;
    }
    return out;
}

/* A^{-1} B = L^{-T} (L^{-1} B): two triangular solves (gradients flow to L's lower triangle and to B). */
nl_var *nl_cho_solve(nl_ctx *c, nl_var *L, nl_var *B) {
    NL_REQUIRE(L, B);
    int64_t n;
    if (!need_square("cho_solve", L, &n) || !need_f64("cho_solve", B)) return NULL;
    if ((B->val.ndim != 1 && B->val.ndim != 2) || B->val.shape[0] != n)
        return nl_op_fail(NL_ESHAPE, "cho_solve", "B must be [n] or [n,m] with n the order of L", L, B);
    nl_var *z = nl_trisolve(c, L, B, 1, 0);
    return nl_trisolve(c, L, z, 1, 1);
}

/* ---------------- general solve (LU) ---------------- */

typedef struct {
    double *lu;         /* (n, n) LU factors of A */
    lapack_int *ipiv;   /* (n) pivots */
} solve_saved;

/* X = A^{-1} B: Y = A^{-T} gX; gB += Y; gA += -Y X^T. */
static void solve_backward(nl_ctx *c, nl_node *n) {
    solve_saved *s = n->saved;
    nl_tensor *gA = nl_grad(c, n->in[0]), *gB = nl_grad(c, n->in[1]);
    if (!gA && !gB) return;
    const nl_tensor *X = &n->out->val;
    int64_t N = X->shape[0], M = X->ndim == 2 ? X->shape[1] : 1;
    if (N == 0 || M == 0) return;
    double *Y = nl_scratch(c, (size_t)(N * M) * sizeof(double));
    if (!Y) return;
    memcpy(Y, nl_node_grad_out(n)->data, (size_t)(N * M) * sizeof(double));
    LAPACKE_dgetrs(LAPACK_ROW_MAJOR, 'T', (lapack_int)N, (lapack_int)M, s->lu, (lapack_int)N, s->ipiv, Y, (lapack_int)M);
    if (gB) add_masked(gB->data, Y, N, M, 0, 1.0);
    if (gA) nl_gemm(NL_F64, 0, 1, N, N, M, -1.0, Y, M, X->data, M, 1.0, gA->data, N);
}

nl_var *nl_solve(nl_ctx *c, nl_var *A, nl_var *B) {
    NL_REQUIRE(A, B);
    int64_t n;
    if (!need_square("solve", A, &n) || !need_f64("solve", B)) return NULL;
    if ((B->val.ndim != 1 && B->val.ndim != 2) || B->val.shape[0] != n)
        return nl_op_fail(NL_ESHAPE, "solve", "B must be [n] or [n,m] with n the order of A", A, B);
    if (B->val.ndim == 2 && B->val.shape[1] > INT_MAX / 2) return nl_op_fail(NL_ESHAPE, "solve", "B too large for LAPACK", A, B);
    int64_t m = B->val.ndim == 2 ? B->val.shape[1] : 1;
    int64_t shape[2] = {n, n};
    nl_tensor LU = nl_arena_tensor(c->arena, NL_F64, 2, shape);
    lapack_int *ipiv = nl_scratch(c, (size_t)(n > 0 ? n : 1) * sizeof *ipiv);
    if (!LU.data || !ipiv) return NULL;
    nl_tensor_copy(&LU, &A->val);
    nl_var *out = nl_op_out(c, NL_F64, B->val.ndim, B->val.shape);
    if (!out) return NULL;
    nl_tensor_copy(&out->val, &B->val);
    if (n > 0) {
        int64_t bad = first_nonfinite(LU.data, n, n, n);
        if (bad >= 0) {
            nl_set_error(NL_ENONFINITE, "solve: matrix [%lld,%lld] contains a non-finite value (%g at [%lld,%lld])",
                         (long long)n, (long long)n, ((double *)LU.data)[bad], (long long)(bad / n), (long long)(bad % n));
            return NULL;
        }
        lapack_int info = LAPACKE_dgetrf(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)n, LU.data, (lapack_int)n, ipiv);
        if (info > 0) {
            nl_set_error(NL_ELINALG, "solve: matrix [%lld,%lld] is singular (zero pivot U[%d,%d] in the LU factorization)",
                         (long long)n, (long long)n, (int)info - 1, (int)info - 1);
            return NULL;
        }
        if (info < 0) { nl_set_error(NL_EINVAL, "solve: LAPACKE_dgetrf rejected argument %d", (int)-info); return NULL; }
        if (m > 0)
            LAPACKE_dgetrs(LAPACK_ROW_MAJOR, 'N', (lapack_int)n, (lapack_int)m, LU.data, (lapack_int)n, ipiv,
                           out->val.data, (lapack_int)m);
    }
    nl_var *in[2] = {A, B};
    nl_node *nd = nl_op_record(c, "solve", out, solve_backward, 2, in);
    if (nd) {
        solve_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->lu = LU.data;
        s->ipiv = ipiv;
        nd->saved = s;
    }
    return out;
}

/* ---------------- log-determinant, trace, diagonals ---------------- */

static void logdet_chol_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *gL = nl_grad(c, n->in[0]);
    if (!gL) return;
    double g = ((const double *)nl_node_grad_out(n)->data)[0];
    const nl_tensor *L = &n->in[0]->val;
    int64_t N = L->shape[0];
    double *gl = gL->data;
    for (int64_t k = 0; k < N; k++) gl[k * N + k] += 2.0 * g / at2(L, k, k);
}

nl_var *nl_logdet_chol(nl_ctx *c, nl_var *L) {
    NL_REQUIRE(L);
    int64_t n;
    if (!need_square("logdet_chol", L, &n)) return NULL;
    double s = 0.0;
    for (int64_t k = 0; k < n; k++) {
        double d = at2(&L->val, k, k);
        if (!(d > 0.0) || !isfinite(d)) {
            char b1[64];
            nl_set_error(NL_ELINALG, "logdet_chol: the diagonal of the Cholesky factor %s must be positive and finite (L[%lld,%lld] = %g)",
                         nl_shape_str(&L->val, b1, sizeof b1), (long long)k, (long long)k, d);
            return NULL;
        }
        s += log(d);
    }
    nl_var *out = nl_op_out(c, NL_F64, 0, NULL);
    if (!out) return NULL;
    ((double *)out->val.data)[0] = 2.0 * s;
    nl_var *in[1] = {L};
    nl_op_record(c, "logdet_chol", out, logdet_chol_backward, 1, in);
    return out;
}

static void trace_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *gA = nl_grad(c, n->in[0]);
    if (!gA) return;
    double g = ((const double *)nl_node_grad_out(n)->data)[0];
    int64_t N = gA->shape[0];
    double *ga = gA->data;
    for (int64_t k = 0; k < N; k++) ga[k * N + k] += g;
}

nl_var *nl_trace(nl_ctx *c, nl_var *A) {
    NL_REQUIRE(A);
    int64_t n;
    if (!need_square("trace", A, &n)) return NULL;
    double s = 0.0;
    for (int64_t k = 0; k < n; k++) s += at2(&A->val, k, k);
    nl_var *out = nl_op_out(c, NL_F64, 0, NULL);
    if (!out) return NULL;
    ((double *)out->val.data)[0] = s;
    nl_var *in[1] = {A};
    nl_op_record(c, "trace", out, trace_backward, 1, in);
    return out;
}

static void diag_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *gA = nl_grad(c, n->in[0]);
    if (!gA) return;
    const double *g = nl_node_grad_out(n)->data;
    int64_t N = gA->shape[0];
    double *ga = gA->data;
    for (int64_t k = 0; k < N; k++) ga[k * N + k] += g[k];
}

nl_var *nl_diag(nl_ctx *c, nl_var *A) {
    NL_REQUIRE(A);
    int64_t n;
    if (!need_square("diag", A, &n)) return NULL;
    nl_var *out = nl_op_out(c, NL_F64, 1, &n);
    if (!out) return NULL;
    double *o = out->val.data;
    for (int64_t k = 0; k < n; k++) o[k] = at2(&A->val, k, k);
    nl_var *in[1] = {A};
    nl_op_record(c, "diag", out, diag_backward, 1, in);
    return out;
}

static void diag_embed_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *gd = nl_grad(c, n->in[0]);
    if (!gd) return;
    const double *g = nl_node_grad_out(n)->data;
    int64_t N = gd->shape[0];
    double *o = gd->data;
    for (int64_t k = 0; k < N; k++) o[k] += g[k * N + k];
}

nl_var *nl_diag_embed(nl_ctx *c, nl_var *d) {
    NL_REQUIRE(d);
    if (!need_f64("diag_embed", d)) return NULL;
    if (d->val.ndim != 1) return nl_op_fail(NL_ESHAPE, "diag_embed", "expected a vector [n]", d, NULL);
    int64_t n = d->val.shape[0];
    int64_t shape[2] = {n, n};
    nl_var *out = nl_op_out(c, NL_F64, 2, shape);
    if (!out) return NULL;
    double *o = out->val.data;
    const double *dv = d->val.data;
    memset(o, 0, (size_t)(n * n) * sizeof(double));
    for (int64_t k = 0; k < n; k++) o[k * n + k] = dv[k * d->val.stride[0]];
    nl_var *in[1] = {d};
    nl_op_record(c, "diag_embed", out, diag_embed_backward, 1, in);
    return out;
}

/* ---------------- non-differentiable helpers ---------------- */

nl_status nl_eigh(double *A, int64_t n, double *w) {
    if (n < 0 || n > INT_MAX / 2) return nl_set_error(NL_EINVAL, "eigh: bad order n = %lld", (long long)n);
    if (n == 0) return NL_OK;
    if (!A || !w) return nl_set_error(NL_EINVAL, "eigh: NULL buffer");
    int64_t bad = first_nonfinite(A, n, n, n);
    if (bad >= 0)
        return nl_set_error(NL_ENONFINITE, "eigh: matrix [%lld,%lld] contains a non-finite value (%g at [%lld,%lld])",
                            (long long)n, (long long)n, A[bad], (long long)(bad / n), (long long)(bad % n));
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', (lapack_int)n, A, (lapack_int)n, w);
    if (info > 0)
        return nl_set_error(NL_ELINALG, "eigh: LAPACKE_dsyevd did not converge on matrix [%lld,%lld] (info %d)",
                            (long long)n, (long long)n, (int)info);
    if (info < 0) return nl_set_error(NL_EINVAL, "eigh: LAPACKE_dsyevd rejected argument %d", (int)-info);
    return NL_OK;
}

nl_status nl_svd(double *A, int64_t m, int64_t n, double *U, double *S, double *Vt) {
    if (m < 0 || n < 0 || m > INT_MAX / 2 || n > INT_MAX / 2)
        return nl_set_error(NL_EINVAL, "svd: bad shape [%lld,%lld]", (long long)m, (long long)n);
    if (m == 0 || n == 0) return NL_OK;
    if (!A || !U || !S || !Vt) return nl_set_error(NL_EINVAL, "svd: NULL buffer");
    int64_t bad = first_nonfinite(A, m, n, n);
    if (bad >= 0)
        return nl_set_error(NL_ENONFINITE, "svd: matrix [%lld,%lld] contains a non-finite value (%g at [%lld,%lld])",
                            (long long)m, (long long)n, A[bad], (long long)(bad / n), (long long)(bad % n));
    int64_t k = m < n ? m : n;
    lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)m, (lapack_int)n, A, (lapack_int)n, S, U,
                                     (lapack_int)k, Vt, (lapack_int)n);
    if (info > 0)
        return nl_set_error(NL_ELINALG, "svd: LAPACKE_dgesdd did not converge on matrix [%lld,%lld] (info %d)",
                            (long long)m, (long long)n, (int)info);
    if (info < 0) return nl_set_error(NL_EINVAL, "svd: LAPACKE_dgesdd rejected argument %d", (int)-info);
    return NL_OK;
}
