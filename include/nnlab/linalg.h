/* nnlab/linalg.h — float64 linear algebra through LAPACKE, differentiable where marked, for kernel
 * hyperparameter fitting, GP baselines and deep kernel machines. */
#ifndef NNLAB_LINALG_H
#define NNLAB_LINALG_H
#include "nnlab/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Differentiable (f64). A must be symmetric positive definite; otherwise NL_ELINALG with a message giving the
 * failing pivot (use jitter / a diagonal regulariser). Returns the lower factor L (A = L L^T). */
nl_var *nl_cholesky(nl_ctx *c, nl_var *A);
/* Solve op(L) X = B for triangular L [n, n] (lower if `lower`), op = transpose if `trans`; B [n, m] or [n]. */
nl_var *nl_trisolve(nl_ctx *c, nl_var *L, nl_var *B, int lower, int trans);
/* A^{-1} B given the Cholesky factor L of A. */
nl_var *nl_cho_solve(nl_ctx *c, nl_var *L, nl_var *B);
/* log det A = 2 sum log diag(L) given the Cholesky factor L of A (scalar). */
nl_var *nl_logdet_chol(nl_ctx *c, nl_var *L);
/* Trace of a square matrix (scalar). */
nl_var *nl_trace(nl_ctx *c, nl_var *A);
/* Main diagonal of a square matrix as a vector [n], and a diagonal matrix from a vector. */
nl_var *nl_diag(nl_ctx *c, nl_var *A);
nl_var *nl_diag_embed(nl_ctx *c, nl_var *d);

/* Non-differentiable helpers on plain f64 row-major buffers (no autograd). */
/* Symmetric eigendecomposition: A (n, n) -> w (n) ascending, V (n, n) columns eigenvectors (A overwritten). */
nl_status nl_eigh(double *A, int64_t n, double *w);
/* Thin SVD: A (m, n) -> U (m, k), S (k), Vt (k, n), k = min(m, n). A is overwritten. */
nl_status nl_svd(double *A, int64_t m, int64_t n, double *U, double *S, double *Vt);
/* In-place Cholesky of A (n, n), lower; NL_ELINALG if not positive definite. */
nl_status nl_cholesky_inplace(double *A, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
