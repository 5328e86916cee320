/* nnlab/linalg.h — float64 linear algebra through LAPACKE, differentiable where marked, for kernel
 * hyperparameter fitting, GP baselines and deep kernel machines. */
#ifndef NNLAB_LINALG_H
#define NNLAB_LINALG_H
#include "nnlab/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* All ops below take f64 only (other dtypes: NL_EDTYPE naming the op); shape errors name the op and shapes.
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

#ifdef __cplusplus
}
#endif
#endif
