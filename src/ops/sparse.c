/* CSR sparse matrices (COO -> CSR with checks, transposed index) and the differentiable ops nl_spmm (Y = A X with
 * constant or per-entry values) and nl_csr_softmax (softmax over each row's entries). include/nnlab/sparse.h. */
#include "nnlab/sparse.h"
#include "nnlab/extend.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define SP_PAR_MIN 32768 /* work (entries x columns) below which loops stay serial */

/* ---------------- construction ---------------- */
void nl_csr_free(nl_csr *A) {
    if (!A) return;
    free(A->row_ptr);
    free(A->col_idx);
    free(A->row_idx);
    free(A->values);
    free(A->t_ptr);
    free(A->t_perm);
    memset(A, 0, sizeof *A);
}

static nl_status csr_alloc(nl_csr *A, int64_t rows, int64_t cols, int64_t nnz) {
    memset(A, 0, sizeof *A);
    A->rows = rows;
    A->cols = cols;
    A->nnz = nnz;
    size_t n1 = (size_t)nnz ? (size_t)nnz : 1;
    A->row_ptr = calloc((size_t)rows + 1, sizeof *A->row_ptr);
    A->col_idx = malloc(n1 * sizeof *A->col_idx);
    A->row_idx = malloc(n1 * sizeof *A->row_idx);
    A->values = malloc(n1 * sizeof *A->values);
    A->t_ptr = calloc((size_t)cols + 1, sizeof *A->t_ptr);
    A->t_perm = malloc(n1 * sizeof *A->t_perm);
    if (!A->row_ptr || !A->col_idx || !A->row_idx || !A->values || !A->t_ptr || !A->t_perm) {
        nl_csr_free(A);
        return nl_set_error(NL_ENOMEM, "csr: out of memory for a %lld x %lld matrix with %lld entries", (long long)rows,
                            (long long)cols, (long long)nnz);
    }
    return NL_OK;
}

/* The transposed index: entries by column, ascending row within a column (stable counting sort of CSR order). */
static void csr_build_transpose(nl_csr *A) {
    memset(A->t_ptr, 0, (size_t)(A->cols + 1) * sizeof *A->t_ptr);
    for (int64_t k = 0; k < A->nnz; k++) A->t_ptr[A->col_idx[k] + 1]++;
    for (int64_t j = 0; j < A->cols; j++) A->t_ptr[j + 1] += A->t_ptr[j];
    int64_t *next = malloc((size_t)(A->cols ? A->cols : 1) * sizeof *next);
    if (next) {
        memcpy(next, A->t_ptr, (size_t)A->cols * sizeof *next);
        for (int64_t k = 0; k < A->nnz; k++) A->t_perm[next[A->col_idx[k]]++] = k;
        free(next);
        return;
    }
    /* no scratch: place entries column by column (slower, same result) */
    int64_t q = 0;
    for (int64_t j = 0; j < A->cols; j++)
        for (int64_t k = 0; k < A->nnz; k++)
            if (A->col_idx[k] == j) A->t_perm[q++] = k;
}

nl_status nl_csr_from_coo(nl_csr *A, int64_t rows, int64_t cols, int64_t nnz, const int64_t *row, const int64_t *col,
                          const double *val) {
    memset(A, 0, sizeof *A);
    if (rows < 0 || cols < 0 || nnz < 0 || rows > INT32_MAX || cols > INT32_MAX)
        return nl_set_error(NL_ESHAPE, "csr: bad size %lld x %lld with %lld entries (each size in [0, %d])",
                            (long long)rows, (long long)cols, (long long)nnz, INT32_MAX);
    if (nnz > 0 && (!row || !col)) return nl_set_error(NL_EINVAL, "csr: NULL row or column list for %lld entries", (long long)nnz);
    for (int64_t k = 0; k < nnz; k++) {
        if (row[k] < 0 || row[k] >= rows)
            return nl_set_error(NL_EINVAL, "csr: entry %lld has row %lld outside [0, %lld)", (long long)k, (long long)row[k],
                                (long long)rows);
        if (col[k] < 0 || col[k] >= cols)
            return nl_set_error(NL_EINVAL, "csr: entry %lld has column %lld outside [0, %lld)", (long long)k,
                                (long long)col[k], (long long)cols);
        if (val && !isfinite(val[k]))
            return nl_set_error(NL_ENONFINITE, "csr: entry %lld (%lld, %lld) has the non-finite value %g", (long long)k,
                                (long long)row[k], (long long)col[k], val[k]);
    }
    nl_status s = csr_alloc(A, rows, cols, nnz);
    if (s) return s;
    /* stable counting sort by column, then by row: order[] holds COO positions sorted by (row, col, position) */
    int64_t *order = malloc((size_t)(nnz ? nnz : 1) * sizeof *order), *tmp = malloc((size_t)(nnz ? nnz : 1) * sizeof *tmp);
    int64_t *cnt = calloc((size_t)(rows > cols ? rows : cols) + 1, sizeof *cnt);
    if (!order || !tmp || !cnt) {
        free(order), free(tmp), free(cnt);
        nl_csr_free(A);
        return nl_set_error(NL_ENOMEM, "csr: out of memory sorting %lld entries", (long long)nnz);
    }
    for (int64_t k = 0; k < nnz; k++) cnt[col[k] + 1]++;
    for (int64_t j = 0; j < cols; j++) cnt[j + 1] += cnt[j];
    for (int64_t k = 0; k < nnz; k++) tmp[cnt[col[k]]++] = k;
    for (int64_t k = 0; k < nnz; k++) A->row_ptr[row[k] + 1]++;
    for (int64_t r = 0; r < rows; r++) A->row_ptr[r + 1] += A->row_ptr[r];
    memcpy(cnt, A->row_ptr, (size_t)rows * sizeof *cnt);
    for (int64_t q = 0; q < nnz; q++) order[cnt[row[tmp[q]]]++] = tmp[q];
    for (int64_t q = 0; q < nnz; q++) {
        const int64_t k = order[q];
        if (q > 0) {
            const int64_t p = order[q - 1];
            if (row[p] == row[k] && col[p] == col[k]) {
                nl_set_error(NL_EINVAL, "csr: duplicate entry (%lld, %lld) at COO positions %lld and %lld", (long long)row[k],
                             (long long)col[k], (long long)p, (long long)k);
                free(order), free(tmp), free(cnt);
                nl_csr_free(A);
                return NL_EINVAL;
            }
        }
        A->col_idx[q] = (int32_t)col[k];
        A->row_idx[q] = (int32_t)row[k];
        A->values[q] = val ? val[k] : 1.0;
    }
    free(order), free(tmp), free(cnt);
    csr_build_transpose(A);
    return NL_OK;
}

nl_status nl_csr_copy(nl_csr *dst, const nl_csr *src) {
    nl_status s = csr_alloc(dst, src->rows, src->cols, src->nnz);
    if (s) return s;
    memcpy(dst->row_ptr, src->row_ptr, (size_t)(src->rows + 1) * sizeof *dst->row_ptr);
    memcpy(dst->t_ptr, src->t_ptr, (size_t)(src->cols + 1) * sizeof *dst->t_ptr);
    if (src->nnz) {
        memcpy(dst->col_idx, src->col_idx, (size_t)src->nnz * sizeof *dst->col_idx);
        memcpy(dst->row_idx, src->row_idx, (size_t)src->nnz * sizeof *dst->row_idx);
        memcpy(dst->values, src->values, (size_t)src->nnz * sizeof *dst->values);
        memcpy(dst->t_perm, src->t_perm, (size_t)src->nnz * sizeof *dst->t_perm);
    }
    return NL_OK;
}

void nl_csr_to_dense(const nl_csr *A, double *out) {
    memset(out, 0, (size_t)(A->rows * A->cols) * sizeof *out);
    for (int64_t r = 0; r < A->rows; r++)
        for (int64_t k = A->row_ptr[r]; k < A->row_ptr[r + 1]; k++) out[r * A->cols + A->col_idx[k]] = A->values[k];
}

/* ---------------- Y = A X ---------------- */
typedef struct {
    const nl_csr *A;
    nl_tensor X;  /* [cols, D] contiguous value of X (for dvals) */
    nl_tensor V;  /* [nnz] or [nnz, H] contiguous values (for dX), data NULL when the constant A->values are used */
    int64_t D, H;
} spmm_saved;

/* value of entry k, head h: per-entry var values, or the constant matrix values */
#define SP_VAL(T, V, A, k, h, H) ((V) ? (V)[(k) * (H) + (h)] : (T)(A)->values[k])

/* The first column j whose entries start at or after entry number q in column order (t_ptr[j] >= q): splits the
 * columns into ranges holding equal shares of the entries. */
static int64_t csr_col_at(const nl_csr *A, int64_t q) {
    int64_t a = 0, b = A->cols; /* t_ptr[b] = nnz >= q */
    while (a < b) {
        const int64_t m = a + (b - a) / 2;
        if (A->t_ptr[m] >= q) b = m;
        else a = m + 1;
    }
    return a;
}

#define DEF_SPMM(T)                                                                                                     \
    static void spmm_fwd_##T(const nl_csr *A, const T *V, int64_t H, const T *X, int64_t D, T *Y) {                     \
        const int64_t Dh = D / H;                                                                                       \
        _Pragma("omp parallel for schedule(dynamic, 64) if (A->nnz * D > SP_PAR_MIN)")                                  \
        for (int64_t r = 0; r < A->rows; r++) {                                                                         \
            T *y = Y + r * D;                                                                                           \
            for (int64_t f = 0; f < D; f++) y[f] = 0;                                                                   \
            for (int64_t k = A->row_ptr[r]; k < A->row_ptr[r + 1]; k++) {                                               \
                const T *x = X + (int64_t)A->col_idx[k] * D;                                                            \
                for (int64_t h = 0; h < H; h++) {                                                                       \
                    const T v = SP_VAL(T, V, A, k, h, H);                                                               \
                    _Pragma("omp simd")                                                                                 \
                    for (int64_t f = h * Dh; f < (h + 1) * Dh; f++) y[f] += v * x[f];                                   \
                }                                                                                                       \
            }                                                                                                           \
        }                                                                                                               \
    }                                                                                                                   \
    /* dX[j] += sum over the entries k of column j of v_k dY[row_k], in ascending row order (fixed for any thread     \
     * count). Done as a scatter over the rows: thread t owns the columns [lo, hi) that hold its share of the         \
     * entries (from t_ptr) and walks every row, so dY, col_idx and the values are read in order and only dX[j] is    \
     * random; the transposed walk (t_perm) gathered row_idx, the values and dY at random (measured: 1.4-3x slower    \
     * on the WordNet GCN, bench/gcn_vs_torch.c). Each dX[j] still receives its terms in ascending row order. */      \
    static void spmm_bwd_x_##T(const nl_csr *A, const T *V, int64_t H, const T *G, int64_t D, T *dX) {                  \
        const int64_t Dh = D / H;                                                                                       \
        _Pragma("omp parallel if (A->nnz * D > SP_PAR_MIN)")                                                            \
        {                                                                                                               \
            const int nt = omp_get_num_threads(), t = omp_get_thread_num();                                             \
            const int64_t lo = csr_col_at(A, A->nnz * t / nt);                                                          \
            const int64_t hi = t == nt - 1 ? A->cols : csr_col_at(A, A->nnz * (t + 1) / nt);                            \
            for (int64_t r = 0; r < A->rows && lo < hi; r++) {                                                          \
                const T *g = G + r * D;                                                                                 \
                for (int64_t k = A->row_ptr[r]; k < A->row_ptr[r + 1]; k++) {                                           \
                    const int64_t j = A->col_idx[k];                                                                    \
                    if (j < lo) continue;                                                                               \
                    if (j >= hi) break; /* columns ascend within a row */                                               \
                    T *dx = dX + j * D;                                                                                 \
                    for (int64_t h = 0; h < H; h++) {                                                                   \
                        const T v = SP_VAL(T, V, A, k, h, H);                                                           \
                        _Pragma("omp simd")                                                                             \
                        for (int64_t f = h * Dh; f < (h + 1) * Dh; f++) dx[f] += v * g[f];                              \
                    }                                                                                                   \
                }                                                                                                       \
            }                                                                                                           \
        }                                                                                                               \
    }                                                                                                                   \
    /* dV[k, h] += <dY[row_k, head h], X[col_k, head h]> */                                                             \
    static void spmm_bwd_v_##T(const nl_csr *A, int64_t H, const T *G, const T *X, int64_t D, T *dV) {                  \
        const int64_t Dh = D / H;                                                                                       \
        _Pragma("omp parallel for schedule(dynamic, 64) if (A->nnz * D > SP_PAR_MIN)")                                  \
        for (int64_t r = 0; r < A->rows; r++) {                                                                         \
            const T *g = G + r * D;                                                                                     \
            for (int64_t k = A->row_ptr[r]; k < A->row_ptr[r + 1]; k++) {                                               \
                const T *x = X + (int64_t)A->col_idx[k] * D;                                                            \
                for (int64_t h = 0; h < H; h++) {                                                                       \
                    T s = 0;                                                                                            \
                    for (int64_t f = h * Dh; f < (h + 1) * Dh; f++) s += g[f] * x[f];                                   \
                    dV[k * H + h] += s;                                                                                 \
                }                                                                                                       \
            }                                                                                                           \
        }                                                                                                               \
    }
DEF_SPMM(float)
DEF_SPMM(double)

static void spmm_backward(nl_ctx *c, nl_node *n) {
    const spmm_saved *s = n->saved;
    const nl_tensor *g = nl_node_grad_out(n);
    const int f32 = g->dtype == NL_F32;
    nl_tensor *gx = nl_grad(c, n->in[0]);
    if (gx) {
        if (f32) spmm_bwd_x_float(s->A, s->V.data, s->H, g->data, s->D, gx->data);
        else spmm_bwd_x_double(s->A, s->V.data, s->H, g->data, s->D, gx->data);
    }
    nl_tensor *gv = n->n_in > 1 ? nl_grad(c, n->in[1]) : NULL;
    if (gv) {
        if (f32) spmm_bwd_v_float(s->A, s->H, g->data, s->X.data, s->D, gv->data);
        else spmm_bwd_v_double(s->A, s->H, g->data, s->X.data, s->D, gv->data);
    }
}

static nl_status csr_check(const nl_csr *A, const char *op) {
    if (!A || !A->row_ptr || !A->t_ptr || (A->nnz > 0 && (!A->col_idx || !A->row_idx || !A->values || !A->t_perm)))
        return nl_set_error(NL_EINVAL, "%s: the sparse matrix is NULL or not initialised (nl_csr_from_coo)", op);
    return NL_OK;
}

nl_var *nl_spmm(nl_ctx *c, const nl_csr *A, nl_var *vals, nl_var *X) {
    NL_REQUIRE(X);
    const char *name = "spmm";
    if (csr_check(A, name)) return NULL;
    char b1[64];
    if (X->val.ndim != 2 || X->val.shape[0] != A->cols) {
        nl_set_error(NL_ESHAPE, "spmm: X must be [%lld, D] for a %lld x %lld matrix, got %s", (long long)A->cols,
                     (long long)A->rows, (long long)A->cols, nl_shape_str(&X->val, b1, sizeof b1));
        return NULL;
    }
    const int64_t D = X->val.shape[1];
    int64_t H = 1;
    if (vals) {
        if (vals->val.dtype != X->val.dtype) return nl_op_fail(NL_EDTYPE, name, "vals and X must have the same dtype", vals, X);
        if ((vals->val.ndim != 1 && vals->val.ndim != 2) || vals->val.shape[0] != A->nnz) {
            nl_set_error(NL_ESHAPE, "spmm: vals must be [%lld] or [%lld, H] (one row per entry), got %s", (long long)A->nnz,
                         (long long)A->nnz, nl_shape_str(&vals->val, b1, sizeof b1));
            return NULL;
        }
        H = vals->val.ndim == 2 ? vals->val.shape[1] : 1;
        if (H < 1 || D % H != 0) {
            nl_set_error(NL_ESHAPE, "spmm: X's %lld columns do not split into %lld heads", (long long)D, (long long)H);
            return NULL;
        }
    }
    nl_tensor Xc = nl_contig(c, &X->val);
    if (!Xc.data) return NULL;
    nl_tensor Vc = {0};
    if (vals) {
        Vc = nl_contig(c, &vals->val);
        if (!Vc.data) return NULL;
    }
    int64_t shape[2] = {A->rows, D};
    nl_var *out = nl_op_out(c, X->val.dtype, 2, shape);
    if (!out) return NULL;
    if (Xc.dtype == NL_F32) spmm_fwd_float(A, Vc.data, H, Xc.data, D, out->val.data);
    else spmm_fwd_double(A, Vc.data, H, Xc.data, D, out->val.data);
    nl_var *in[2] = {X, vals};
    nl_node *node = nl_op_record(c, name, out, spmm_backward, vals ? 2 : 1, in);
    if (node) {
        spmm_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->A = A;
        s->X = Xc;
        s->V = Vc;
        s->D = D;
        s->H = H;
        node->saved = s;
    }
    return out;
}

/* ---------------- softmax over each row's entries ---------------- */
typedef struct {
    const nl_csr *A;
    nl_tensor P;  /* [nnz, H] the softmax output */
    int64_t H;
} csm_saved;

#define DEF_CSM(T)                                                                                                      \
    static void csm_fwd_##T(const nl_csr *A, int64_t H, const T *E, T *P) {                                             \
        _Pragma("omp parallel for schedule(dynamic, 64) if (A->nnz * H > SP_PAR_MIN)")                                  \
        for (int64_t r = 0; r < A->rows; r++) {                                                                         \
            const int64_t k0 = A->row_ptr[r], k1 = A->row_ptr[r + 1];                                                   \
            for (int64_t h = 0; h < H; h++) {                                                                           \
                T m = -INFINITY;                                                                                        \
                for (int64_t k = k0; k < k1; k++) m = E[k * H + h] > m ? E[k * H + h] : m;                              \
                double z = 0;                                                                                           \
                for (int64_t k = k0; k < k1; k++) {                                                                     \
                    P[k * H + h] = (T)exp((double)(E[k * H + h] - m));                                                  \
                    z += P[k * H + h];                                                                                  \
                }                                                                                                       \
                for (int64_t k = k0; k < k1; k++) P[k * H + h] = (T)(P[k * H + h] / z);                                 \
            }                                                                                                           \
        }                                                                                                               \
    }                                                                                                                   \
    /* dE = P (dP - sum_row P dP) */                                                                                    \
    static void csm_bwd_##T(const nl_csr *A, int64_t H, const T *P, const T *G, T *dE) {                                \
        _Pragma("omp parallel for schedule(dynamic, 64) if (A->nnz * H > SP_PAR_MIN)")                                  \
        for (int64_t r = 0; r < A->rows; r++) {                                                                         \
            const int64_t k0 = A->row_ptr[r], k1 = A->row_ptr[r + 1];                                                   \
            for (int64_t h = 0; h < H; h++) {                                                                           \
                double s = 0;                                                                                           \
                for (int64_t k = k0; k < k1; k++) s += (double)P[k * H + h] * G[k * H + h];                             \
                for (int64_t k = k0; k < k1; k++) dE[k * H + h] += (T)(P[k * H + h] * (G[k * H + h] - s));              \
            }                                                                                                           \
        }                                                                                                               \
    }
DEF_CSM(float)
DEF_CSM(double)

static void csm_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *ge = nl_grad(c, n->in[0]);
    if (!ge) return;
    const csm_saved *s = n->saved;
    const nl_tensor *g = nl_node_grad_out(n);
    if (g->dtype == NL_F32) csm_bwd_float(s->A, s->H, s->P.data, g->data, ge->data);
    else csm_bwd_double(s->A, s->H, s->P.data, g->data, ge->data);
}

nl_var *nl_csr_softmax(nl_ctx *c, const nl_csr *A, nl_var *e) {
    NL_REQUIRE(e);
    const char *name = "csr_softmax";
    if (csr_check(A, name)) return NULL;
    if ((e->val.ndim != 1 && e->val.ndim != 2) || e->val.shape[0] != A->nnz) {
        char b1[64];
        nl_set_error(NL_ESHAPE, "csr_softmax: scores must be [%lld] or [%lld, H] (one row per entry), got %s",
                     (long long)A->nnz, (long long)A->nnz, nl_shape_str(&e->val, b1, sizeof b1));
        return NULL;
    }
    const int64_t H = e->val.ndim == 2 ? e->val.shape[1] : 1;
    nl_tensor E = nl_contig(c, &e->val);
    if (!E.data) return NULL;
    nl_var *out = nl_op_out(c, E.dtype, e->val.ndim, e->val.shape);
    if (!out) return NULL;
    if (E.dtype == NL_F32) csm_fwd_float(A, H, E.data, out->val.data);
    else csm_fwd_double(A, H, E.data, out->val.data);
    nl_var *in[1] = {e};
    nl_node *node = nl_op_record(c, name, out, csm_backward, 1, in);
    if (node) {
        csm_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->A = A;
        s->P = out->val;
        s->H = H;
        node->saved = s;
    }
    return out;
}
