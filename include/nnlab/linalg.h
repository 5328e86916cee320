/* nnlab/linalg.h — float64 linear algebra through LAPACKE, differentiable where marked, for kernel
 * hyperparameter fitting, GP baselines and deep kernel machines. */
#ifndef NNLAB_LINALG_H
#define NNLAB_LINALG_H
#include "nnlab/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* All ops below take f64 only (other dtypes: NL_EDTYPE naming the op; nl_orthogonal_expm also takes f32); shape
 * errors name the op and shapes.
 *
 * Differentiable (f64). A must be symmetric positive definite; otherwise NL_ELINALG with a message giving the
 * failing pivot (use jitter / a diagonal regulariser); a NaN/Inf entry gives NL_ENONFINITE. Returns the lower
 * factor L (A = L L^T, strict upper triangle zero). Only A's lower triangle is read; the gradient is the
 * symmetric one (A treated as a symmetric matrix), so to differentiate w.r.t. a free matrix X, build
 * A = (X + X^T)/2 + ... first. */
nl_var *nl_cholesky(nl_ctx *c, nl_var *A);
/* Solve op(L) X = B for triangular L [n, n] (lower if `lower`), op = transpose if `trans`; B [n, m] or [n].
 * Only L's `lower`/upper triangle is read, and only that triangle receives a gradient. A zero diagonal entry
 * gives NL_ELINALG. */
nl_var *nl_trisolve(nl_ctx *c, nl_var *L, nl_var *B, int lower, int trans);
/* A^{-1} B given the Cholesky factor L of A (two triangular solves); B [n, m] or [n]. */
nl_var *nl_cho_solve(nl_ctx *c, nl_var *L, nl_var *B);
/* A^{-1} B for a general square A [n, n] (LU, LAPACKE_dgetrf/dgetrs); B [n, m] or [n]. Singular A: NL_ELINALG.
 * Gradients to A and B. */
nl_var *nl_solve(nl_ctx *c, nl_var *A, nl_var *B);
/* log det A = 2 sum log diag(L) given the Cholesky factor L of A (scalar); diag(L) must be > 0 (else NL_ELINALG). */
nl_var *nl_logdet_chol(nl_ctx *c, nl_var *L);
/* Trace of a square matrix (scalar). */
nl_var *nl_trace(nl_ctx *c, nl_var *A);
/* Main diagonal of a square matrix as a vector [n], and a diagonal matrix from a vector. */
nl_var *nl_diag(nl_ctx *c, nl_var *A);
nl_var *nl_diag_embed(nl_ctx *c, nl_var *d);

/* Orthogonal parametrisation (src/linalg/orthogonal.c), as torch.nn.utils.parametrizations.orthogonal with the
 * "matrix_exp" map for a square weight: Q = exp(A), A = tril(X, -1) - tril(X, -1)^T, for a free X [n, n] (f32 or f64;
 * the diagonal and upper triangle of X are ignored and get zero gradient). Q^T Q = I for every X. Computed in f64
 * (Pade scaling and squaring, LAPACKE solve) and returned in X's dtype; the gradient goes through the Frechet
 * derivative of exp (nl_expm_frechet). NaN/Inf in X: NL_ENONFINITE. */
nl_var *nl_orthogonal_expm(nl_ctx *c, nl_var *X);

/* Non-differentiable helpers on plain f64 row-major buffers (no autograd). NaN/Inf input: NL_ENONFINITE;
 * no convergence: NL_ELINALG. */
/* Symmetric eigendecomposition (LAPACKE_dsyevd; lower triangle read): A (n, n) -> w (n) ascending, and A is
 * overwritten by V (n, n) whose columns are the orthonormal eigenvectors (A = V diag(w) V^T). */
nl_status nl_eigh(double *A, int64_t n, double *w);
/* Thin SVD (LAPACKE_dgesdd): A (m, n) -> U (m, k), S (k) descending, Vt (k, n), k = min(m, n). A is overwritten. */
nl_status nl_svd(double *A, int64_t m, int64_t n, double *U, double *S, double *Vt);
/* In-place Cholesky of A (n, n), lower (strict upper triangle zeroed); only the lower triangle is read, so the strict
 * upper one may be left unset; NL_ELINALG if not positive definite, NL_ENONFINITE for NaN/Inf in the lower triangle. */
nl_status nl_cholesky_inplace(double *A, int64_t n);

/* E = exp(A) for A (n, n) (Higham 2005: Pade degree 3..13 chosen from ||A||_1, scaling and squaring). */
nl_status nl_expm(const double *A, int64_t n, double *E);
/* E = exp(A) and L = L_exp(A, G) = d/dt exp(A + t G) at t = 0 (the (1,2) block of exp([[A, G], [0, A]])), (n, n) each;
 * E and L must not alias A or G. The gradient of a loss through exp(A) is L_exp(A^T, dL/dexp(A)). */
nl_status nl_expm_frechet(const double *A, const double *G, int64_t n, double *E, double *L);
/* In place: W (n, n) -> the orthogonal factor Q of W = QR with R's diagonal made positive (torch's
 * _make_orthogonal; LAPACKE_dgeqrf/dorgqr). A random W gives a random orthogonal matrix. */
nl_status nl_orthogonal_qr(double *W, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
