/* nnlab/sparse.h — CSR sparse matrices and the differentiable sparse-dense product (graph learning).
 *
 * nl_csr holds a rows x cols sparse matrix in compressed sparse rows: the entries of row r are
 * k = row_ptr[r] .. row_ptr[r+1]-1, with column col_idx[k] (ascending within a row) and value values[k]. It is
 * built from a COO list (nl_csr_from_coo), which also builds the transposed index (entries by column) that the
 * backward of nl_spmm uses, so the product and its gradients are parallel over rows (or columns) with no atomics
 * and are bit-identical for any thread count.
 *
 * Y = A X (nl_spmm): A rows x cols, X [cols, D] (f32 or f64) -> Y [rows, D]. The values of A are either the
 * constant A->values (vals == NULL; no gradient) or a var `vals` of X's dtype, [nnz] or [nnz, H] (per-entry values
 * that receive a gradient: GAT attention weights). With [nnz, H] the columns of X split into H heads of D/H
 * columns, and head h uses values vals[:, h]:
 *     Y[r, h*Dh + f] = sum_{k in row r} vals[k, h] X[col_idx[k], h*Dh + f],   Dh = D / H.
 * Gradients: dX = A^T dY (per head), dvals[k, h] = sum_f dY[row_idx[k], h*Dh+f] X[col_idx[k], h*Dh+f].
 * nl_csr_softmax normalises per-entry scores over the entries of each row (each head separately): the edge
 * softmax of graph attention. The matrix must outlive the backward of every op that used it. */
#ifndef NNLAB_SPARSE_H
#define NNLAB_SPARSE_H
#include "nnlab/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nl_csr {
    int64_t rows, cols, nnz;
    int64_t *row_ptr;   /* (rows + 1) start of each row's entries; row_ptr[rows] = nnz */
    int32_t *col_idx;   /* (nnz) column of each entry, ascending within a row */
    int32_t *row_idx;   /* (nnz) row of each entry (the COO row; for per-entry gathers) */
    double *values;     /* (nnz) values (1 where the COO list gave none) */
    int64_t *t_ptr;     /* (cols + 1) start of each column's entries in t_perm */
    int64_t *t_perm;    /* (nnz) entry ids k ordered by column, ascending row within a column */
} nl_csr;

/* Build A (rows x cols) from nnz COO entries (row[k], col[k], val[k]; val == NULL: all 1) in any order.
 * Errors (A is left zeroed): NL_ESHAPE for negative sizes or sizes above INT32_MAX; NL_EINVAL naming the entry for
 * a negative or out-of-range index ("csr: entry 7 has column 12 outside [0, 10)") or a duplicate ("csr: duplicate
 * entry (3, 4) at COO positions 2 and 9"); NL_ENONFINITE for a non-finite value; NL_ENOMEM. */
nl_status nl_csr_from_coo(nl_csr *A, int64_t rows, int64_t cols, int64_t nnz, const int64_t *row, const int64_t *col,
                          const double *val);
/* Same structure and values (deep copy; dst is overwritten). */
nl_status nl_csr_copy(nl_csr *dst, const nl_csr *src);
void nl_csr_free(nl_csr *A);
/* Dense copy into out (rows * cols, row-major, zero-filled first). */
void nl_csr_to_dense(const nl_csr *A, double *out);

/* Y = A X (see the top of the file). vals: NULL, [nnz] or [nnz, H] with D % H == 0. X: 2-D [A->cols, D], any
 * strides. Errors name the op and the shapes. f32 and f64. */
nl_var *nl_spmm(nl_ctx *c, const nl_csr *A, nl_var *vals, nl_var *X);
/* Softmax of e ([nnz] or [nnz, H]) over the entries of each row of A, per column h; rows without entries give
 * nothing. Stabilised by the row maximum. f32 and f64. */
nl_var *nl_csr_softmax(nl_ctx *c, const nl_csr *A, nl_var *e);

#ifdef __cplusplus
}
#endif
#endif
