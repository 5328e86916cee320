/* Sparse matrices (include/nnlab/sparse.h): COO -> CSR construction and its checks, nl_spmm against a dense
 * product (constant values, per-entry values, several heads), nl_csr_softmax against a direct per-row softmax,
 * finite-difference gradients of both (f64 and f32), thread-count independence, and the error paths. */
#include "nltest.h"
#include "nltest_nn.h"

/* a 5 x 4 matrix with an empty row (3) and an empty column (2); COO given out of order */
static const int64_t R0[] = {4, 0, 1, 0, 4, 2, 1, 4};
static const int64_t C0[] = {3, 1, 0, 3, 0, 1, 3, 1};
static const double V0[] = {0.5, -1, 2, 3, 1.5, -0.25, 4, 2};
#define NNZ0 8

static void test_csr_build(void) {
    nl_csr A;
    NLT_OK(nl_csr_from_coo(&A, 5, 4, NNZ0, R0, C0, V0));
    NLT_CHECK(A.rows == 5 && A.cols == 4 && A.nnz == NNZ0, "sizes");
    const int64_t rp[6] = {0, 2, 4, 5, 5, 8};
    for (int r = 0; r <= 5; r++) NLT_CHECK(A.row_ptr[r] == rp[r], "row_ptr[%d] = %lld", r, (long long)A.row_ptr[r]);
    const int32_t ci[NNZ0] = {1, 3, 0, 3, 1, 0, 1, 3};
    const double vv[NNZ0] = {-1, 3, 2, 4, -0.25, 1.5, 2, 0.5};
    for (int k = 0; k < NNZ0; k++) {
        NLT_CHECK(A.col_idx[k] == ci[k], "col_idx[%d] = %d", k, A.col_idx[k]);
        NLT_NEAR(A.values[k], vv[k], 0);
    }
    /* transpose index: column j's entries in ascending row order */
    NLT_CHECK(A.t_ptr[2] == A.t_ptr[3], "column 2 is empty");
    for (int j = 0; j < 4; j++)
        for (int64_t q = A.t_ptr[j]; q < A.t_ptr[j + 1]; q++) {
            NLT_CHECK(A.col_idx[A.t_perm[q]] == j, "t_perm column");
            if (q > A.t_ptr[j]) NLT_CHECK(A.row_idx[A.t_perm[q]] > A.row_idx[A.t_perm[q - 1]], "ascending rows");
        }
    double d[20];
    nl_csr_to_dense(&A, d);
    NLT_NEAR(d[0 * 4 + 3], 3, 0);
    NLT_NEAR(d[4 * 4 + 0], 1.5, 0);
    NLT_NEAR(d[3 * 4 + 1], 0, 0);
    nl_csr B;
    NLT_OK(nl_csr_copy(&B, &A));
    NLT_CHECK(B.nnz == A.nnz && !memcmp(B.t_perm, A.t_perm, (size_t)A.nnz * sizeof *A.t_perm), "copy");
    nl_csr_free(&B);
    nl_csr_free(&A);
    /* no values -> ones; an empty matrix */
    NLT_OK(nl_csr_from_coo(&A, 5, 4, NNZ0, R0, C0, NULL));
    for (int k = 0; k < NNZ0; k++) NLT_NEAR(A.values[k], 1, 0);
    nl_csr_free(&A);
    NLT_OK(nl_csr_from_coo(&A, 3, 3, 0, NULL, NULL, NULL));
    NLT_CHECK(A.nnz == 0 && A.row_ptr[3] == 0, "empty");
    nl_csr_free(&A);
}

static void test_csr_errors(void) {
    nl_csr A;
    const int64_t r1[] = {0, 1, 0}, c1[] = {1, 2, 1};
    NLT_CHECK(nl_csr_from_coo(&A, 3, 3, 3, r1, c1, NULL) == NL_EINVAL && strstr(nl_last_error(), "duplicate entry (0, 1)") &&
                  strstr(nl_last_error(), "positions 0 and 2"), "duplicate: %s", nl_last_error());
    NLT_CHECK(A.row_ptr == NULL, "zeroed on error");
    const int64_t r2[] = {0, 3}, c2[] = {1, 0};
    NLT_CHECK(nl_csr_from_coo(&A, 3, 3, 2, r2, c2, NULL) == NL_EINVAL && strstr(nl_last_error(), "entry 1 has row 3 outside [0, 3)"),
              "row out of range: %s", nl_last_error());
    const int64_t r3[] = {0, 1}, c3[] = {-1, 0};
    NLT_CHECK(nl_csr_from_coo(&A, 3, 3, 2, r3, c3, NULL) == NL_EINVAL && strstr(nl_last_error(), "entry 0 has column -1"),
              "negative column: %s", nl_last_error());
    const int64_t r4[] = {-2}, c4[] = {0};
    NLT_CHECK(nl_csr_from_coo(&A, 3, 3, 1, r4, c4, NULL) == NL_EINVAL && strstr(nl_last_error(), "row -2"), "negative row");
    const double bad[] = {NAN};
    NLT_CHECK(nl_csr_from_coo(&A, 3, 3, 1, r3, c3 + 1, bad) == NL_ENONFINITE, "non-finite value");
    NLT_CHECK(nl_csr_from_coo(&A, -1, 3, 0, NULL, NULL, NULL) == NL_ESHAPE, "negative size");
    NLT_CHECK(nl_csr_from_coo(&A, 3, 3, 2, NULL, c3, NULL) == NL_EINVAL, "NULL rows");
    /* op errors */
    NLT_OK(nl_csr_from_coo(&A, 5, 4, NNZ0, R0, C0, V0));
    nl_ctx *c = nl_ctx_new(0, 0);
    int64_t s34[2] = {3, 4}, s42[2] = {4, 2}, s7[1] = {7}, s83[2] = {8, 3};
    nl_var *x = nl_zeros(c, NL_F64, 2, s34);
    NLT_CHECK(!nl_spmm(c, &A, NULL, x) && nl_last_status() == NL_ESHAPE && strstr(nl_last_error(), "X must be [4, D]"), "X rows: %s",
              nl_last_error());
    x = nl_zeros(c, NL_F64, 2, s42);
    NLT_CHECK(!nl_spmm(c, &A, nl_zeros(c, NL_F64, 1, s7), x) && strstr(nl_last_error(), "vals must be [8]"), "vals size");
    NLT_CHECK(!nl_spmm(c, &A, nl_zeros(c, NL_F64, 2, s83), x) && strstr(nl_last_error(), "do not split into 3 heads"), "heads");
    int64_t s8[1] = {8};
    NLT_CHECK(!nl_spmm(c, &A, nl_zeros(c, NL_F32, 1, s8), x) && nl_last_status() == NL_EDTYPE, "mixed dtype");
    NLT_CHECK(!nl_csr_softmax(c, &A, nl_zeros(c, NL_F64, 1, s7)) && nl_last_status() == NL_ESHAPE, "softmax size");
    nl_csr Z = {0};
    NLT_CHECK(!nl_spmm(c, &Z, NULL, x) && strstr(nl_last_error(), "not initialised"), "uninitialised matrix");
    NLT_CHECK(!nl_spmm(c, &A, NULL, NULL), "NULL propagates");
    nl_ctx_free(c);
    nl_csr_free(&A);
}

/* dense reference: Y[r, h*Dh+f] = sum_k V[k,h] X[col_k, h*Dh+f] */
static void dense_ref(const nl_csr *A, const double *V, int64_t H, const double *X, int64_t D, double *Y) {
    const int64_t Dh = D / H;
    memset(Y, 0, (size_t)(A->rows * D) * sizeof *Y);
    for (int64_t h = 0; h < H; h++) {
        double *M = calloc((size_t)(A->rows * A->cols), sizeof *M);
        for (int64_t r = 0; r < A->rows; r++)
            for (int64_t k = A->row_ptr[r]; k < A->row_ptr[r + 1]; k++) M[r * A->cols + A->col_idx[k]] = V ? V[k * H + h] : A->values[k];
        for (int64_t r = 0; r < A->rows; r++)
            for (int64_t j = 0; j < A->cols; j++)
                for (int64_t f = h * Dh; f < (h + 1) * Dh; f++) Y[r * D + f] += M[r * A->cols + j] * X[j * D + f];
        free(M);
    }
}

static void test_spmm_values(void) {
    nl_csr A;
    NLT_OK(nl_csr_from_coo(&A, 5, 4, NNZ0, R0, C0, V0));
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_tensor X = mk(NL_F64, 2, 4, 6, 0, 0), V = mk(NL_F64, 2, NNZ0, 3, 0, 0);
    fill(&X, 1, -1, 1);
    fill(&V, 2, -1, 1);
    double Yr[30];
    dense_ref(&A, NULL, 1, X.data, 6, Yr);
    nl_var *y = nl_spmm(c, &A, NULL, nl_input(c, X));
    NLT_CHECK(y && y->val.shape[0] == 5 && y->val.shape[1] == 6, "shape");
    for (int i = 0; i < 30; i++) NLT_NEAR(nl_tensor_get(&y->val, i), Yr[i], 1e-14);
    for (int i = 18; i < 24; i++) NLT_NEAR(nl_tensor_get(&y->val, i), 0, 0); /* empty row 3 */
    /* three heads of 2 columns */
    dense_ref(&A, V.data, 3, X.data, 6, Yr);
    y = nl_spmm(c, &A, nl_input(c, V), nl_input(c, X));
    for (int i = 0; i < 30; i++) NLT_NEAR(nl_tensor_get(&y->val, i), Yr[i], 1e-14);
    /* f32, and a strided (transposed) X */
    nl_tensor Xf = mk(NL_F32, 2, 6, 4, 0, 0);
    for (int j = 0; j < 4; j++)
        for (int f = 0; f < 6; f++) nl_tensor_set(&Xf, f * 4 + j, nl_tensor_get(&X, j * 6 + f));
    dense_ref(&A, NULL, 1, X.data, 6, Yr);
    y = nl_spmm(c, &A, NULL, nl_transpose(c, nl_input(c, Xf), 0, 1));
    for (int i = 0; i < 30; i++) NLT_NEAR(nl_tensor_get(&y->val, i), Yr[i], 1e-5);
    nl_ctx_free(c);
    free(X.data), free(V.data), free(Xf.data);
    nl_csr_free(&A);
}

typedef struct { const nl_csr *A; int mode; } sp_args; /* mode 0: X only; 1: [nnz] values; 2: [nnz, H]; 3: softmax */
static nl_var *f_sp(nl_ctx *c, nl_var **in, void *ud) {
    sp_args *a = ud;
    if (a->mode == 0) return nl_spmm(c, a->A, NULL, in[0]);
    if (a->mode == 3) return nl_csr_softmax(c, a->A, in[0]);
    return nl_spmm(c, a->A, in[1], in[0]);
}
/* GAT-style composite: softmax of per-entry scores as the values of the product */
static nl_var *f_sp_att(nl_ctx *c, nl_var **in, void *ud) {
    sp_args *a = ud;
    return nl_spmm(c, a->A, nl_csr_softmax(c, a->A, in[1]), in[0]);
}

static void test_spmm_grad(void) {
    nl_csr A;
    NLT_OK(nl_csr_from_coo(&A, 5, 4, NNZ0, R0, C0, V0));
    for (int f64 = 1; f64 >= 0; f64--) {
        nl_dtype dt = f64 ? NL_F64 : NL_F32;
        nl_tensor in[2] = {mk(dt, 2, 4, 6, 0, 0), mk(dt, 1, NNZ0, 0, 0, 0)};
        fill(&in[0], 3, -1, 1);
        fill(&in[1], 4, -1, 1);
        sp_args a = {&A, 0};
        gc(f64 ? "spmm dX f64" : "spmm dX f32", f_sp, &a, 1, in, f64);
        a.mode = 1;
        gc(f64 ? "spmm dX dvals f64" : "spmm dX dvals f32", f_sp, &a, 2, in, f64);
        free(in[1].data);
        in[1] = mk(dt, 2, NNZ0, 2, 0, 0);
        fill(&in[1], 5, -1, 1);
        a.mode = 2;
        gc(f64 ? "spmm 2 heads f64" : "spmm 2 heads f32", f_sp, &a, 2, in, f64);
        a.mode = 3;
        gc(f64 ? "csr_softmax f64" : "csr_softmax f32", f_sp, &a, 1, &in[1], f64);
        gc(f64 ? "softmax-weighted spmm f64" : "softmax-weighted spmm f32", f_sp_att, &a, 2, in, f64);
        free(in[0].data), free(in[1].data);
    }
    nl_csr_free(&A);
}

static void test_csr_softmax_values(void) {
    nl_csr A;
    NLT_OK(nl_csr_from_coo(&A, 5, 4, NNZ0, R0, C0, V0));
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_tensor E = mk(NL_F64, 2, NNZ0, 2, 0, 0);
    fill(&E, 6, -3, 3);
    nl_tensor_set(&E, 0, 800); /* large score: no overflow */
    nl_var *p = nl_csr_softmax(c, &A, nl_input(c, E));
    for (int r = 0; r < 5; r++)
        for (int h = 0; h < 2; h++) {
            double z = 0, s = 0;
            for (int64_t k = A.row_ptr[r]; k < A.row_ptr[r + 1]; k++) z += exp(nl_tensor_get(&E, k * 2 + h) - (r == 0 && h == 0 ? 800 : 0));
            for (int64_t k = A.row_ptr[r]; k < A.row_ptr[r + 1]; k++) {
                double want = exp(nl_tensor_get(&E, k * 2 + h) - (r == 0 && h == 0 ? 800 : 0)) / z;
                NLT_NEAR(nl_tensor_get(&p->val, k * 2 + h), want, 1e-14);
                s += nl_tensor_get(&p->val, k * 2 + h);
            }
            if (A.row_ptr[r + 1] > A.row_ptr[r]) NLT_NEAR(s, 1, 1e-14);
        }
    nl_ctx_free(c);
    free(E.data);
    nl_csr_free(&A);
}

/* a larger random matrix run on 1 and 2 threads: forward and both gradients bit-identical */
static void test_spmm_threads(void) {
    const int64_t n = 3000, m = 40000, D = 16;
    int64_t *r = malloc((size_t)m * sizeof *r), *cc = malloc((size_t)m * sizeof *cc), k = 0;
    for (int64_t i = 0; i < n && k < m; i++)
        for (int64_t t = 0; t < 14 && k < m; t++) r[k] = i, cc[k++] = (i * 7 + t * 131) % n;
    nl_csr A;
    NLT_OK(nl_csr_from_coo(&A, n, n, k, r, cc, NULL));
    nl_tensor X = mk(NL_F32, 2, n, D, 0, 0), V = mk(NL_F32, 2, k, 2, 0, 0);
    fill(&X, 7, -1, 1);
    fill(&V, 8, -1, 1);
    nl_tensor out[2][3];
    int saved = nl_get_num_threads();
    for (int th = 1; th <= 2; th++) {
        nl_set_num_threads(th);
        nl_ctx *c = nl_ctx_new(0, 0);
        nl_var *x = nl_leaf(c, X, 1), *v = nl_leaf(c, V, 1);
        nl_var *y = nl_spmm(c, &A, nl_csr_softmax(c, &A, v), x);
        nl_var *l = nl_sum(c, nl_square(c, y), NL_AXIS_ALL, 0);
        NLT_OK(nl_backward(c, l));
        out[th - 1][0] = mk(NL_F32, 2, n, D, 0, 0), out[th - 1][1] = mk(NL_F32, 2, n, D, 0, 0), out[th - 1][2] = mk(NL_F32, 2, k, 2, 0, 0);
        nl_tensor_copy(&out[th - 1][0], &y->val);
        nl_tensor_copy(&out[th - 1][1], &x->grad);
        nl_tensor_copy(&out[th - 1][2], &v->grad);
        nl_ctx_free(c);
    }
    nl_set_num_threads(saved);
    for (int i = 0; i < 3; i++) {
        NLT_CHECK(bits_equal(&out[0][i], &out[1][i]), "output %d differs between 1 and 2 threads", i);
        free(out[0][i].data), free(out[1][i].data);
    }
    free(X.data), free(V.data), free(r), free(cc);
    nl_csr_free(&A);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_csr_build);
    NLT_RUN(test_csr_errors);
    NLT_RUN(test_spmm_values);
    NLT_RUN(test_csr_softmax_values);
    NLT_RUN(test_spmm_grad);
    NLT_RUN(test_spmm_threads);
    return nlt_finish();
}
