/* Matmul (CBLAS), linear layers. */
#include "nnlab/extend.h"
#include "nnlab/ops.h"
#include <cblas.h>
#include <string.h>

void nl_gemm(nl_dtype dt, int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha, const void *A, int64_t lda,
             const void *B, int64_t ldb, double beta, void *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (dt == NL_F32)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                    (int)K, (float)alpha, A, (int)lda, B, (int)ldb, (float)beta, C, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                    (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* A matrix operand: last two dims of a tensor as a BLAS operand. `t` flips the logical transpose. */
typedef struct {
    const char *p;     /* base of batch 0 */
    int trans;         /* BLAS transpose flag (storage + logical) */
    int64_t ld;
    int64_t rows, cols; /* logical op(X) rows, cols */
    int64_t bstride;   /* element stride between batch matrices (0 = broadcast) */
} mat_op;

/* Describe x (ndim >= 2) for BLAS; returns 0 if the last two dims are neither row- nor column-major. */
static int mat_describe(const nl_tensor *x, int logical_t, mat_op *m) {
    int d = x->ndim;
    int64_t r = x->shape[d - 2], cc = x->shape[d - 1];
    int64_t sr = x->stride[d - 2], sc = x->stride[d - 1];
    if ((sc == 1 || cc == 1) && (sr >= cc || r == 1)) { m->trans = 0; m->ld = r == 1 ? (cc > 0 ? cc : 1) : sr; }
    else if ((sr == 1 || r == 1) && (sc >= r || cc == 1)) { m->trans = 1; m->ld = cc == 1 ? (r > 0 ? r : 1) : sc; }
    else return 0;
    if (m->ld < 1) m->ld = 1;
    m->p = x->data;
    m->trans ^= logical_t;
    m->rows = logical_t ? cc : r;
    m->cols = logical_t ? r : cc;
    return 1;
}

/* Batch iteration: up to 2 leading dims. */
static int64_t batch_count(const nl_tensor *x) {
    int64_t b = 1;
    for (int i = 0; i < x->ndim - 2; i++) b *= x->shape[i];
    return b;
}

static int64_t batch_offset(const nl_tensor *x, int64_t bi) {
    int64_t off = 0;
    for (int i = x->ndim - 3; i >= 0; i--) {
        off += (bi % x->shape[i]) * x->stride[i];
        bi /= x->shape[i];
    }
    return off;
}

typedef struct {
    nl_tensor a, b;   /* operands as used in forward (after any contiguous copy) */
    int ta, tb;       /* logical transposes */
    int flat;         /* a batched [.., M, K] with 2-D b, computed as one GEMM of (B*M, K) */
} mm_saved;

static void gemm_ops(nl_dtype dt, const mat_op *A, const mat_op *B, double beta, char *C, int64_t ldc, int64_t M, int64_t N, int64_t K) {
    nl_gemm(dt, A->trans, B->trans, M, N, K, 1.0, A->p, A->ld, B->p, B->ld, beta, C, ldc);
}

static void matmul_backward(nl_ctx *c, nl_node *n) {
    mm_saved *s = n->saved;
    const nl_tensor *g = nl_node_grad_out(n); /* [.., M, N] contiguous */
    nl_tensor *ga = nl_grad(c, n->in[0]), *gb = nl_grad(c, n->in[1]);
    nl_dtype dt = g->dtype;
    size_t es = nl_dtype_size(dt);
    int d = g->ndim;
    int64_t M = g->shape[d - 2], N = g->shape[d - 1];
    int64_t K = s->ta ? s->a.shape[s->a.ndim - 2] : s->a.shape[s->a.ndim - 1];
    if (s->flat) { /* a [.., M, K] contiguous rows, b 2-D */
        int64_t MM = nl_tensor_numel(g) / N;
        mat_op A, B;
        mat_describe(&s->b, s->tb, &B);
        if (ga) { /* dA [MM, K] = G [MM, N] @ op(B)^T */
            nl_gemm(dt, 0, !B.trans, MM, K, N, 1.0, g->data, N, B.p, B.ld, 1.0, ga->data, K);
        }
        if (gb) {
            nl_tensor a2 = s->a;
            A.p = a2.data; A.trans = 0; A.ld = K;
            /* d op(B) [K, N] = A^T [K, MM] @ G [MM, N]; if tb, dB = G^T @ A  [N, K] */
            if (!s->tb) nl_gemm(dt, 1, 0, K, N, MM, 1.0, A.p, K, g->data, N, 1.0, gb->data, N);
            else nl_gemm(dt, 1, 0, N, K, MM, 1.0, g->data, N, A.p, K, 1.0, gb->data, K);
        }
        return;
    }
    int64_t nb = batch_count(g);
    for (int64_t bi = 0; bi < nb; bi++) {
        mat_op A, B;
        mat_describe(&s->a, s->ta, &A);
        mat_describe(&s->b, s->tb, &B);
        A.p += (size_t)batch_offset(&s->a, s->a.ndim > 2 ? bi : 0) * es;
        B.p += (size_t)batch_offset(&s->b, s->b.ndim > 2 ? bi : 0) * es;
        const char *G = (const char *)g->data + (size_t)(bi * M * N) * es;
        if (ga) {
            /* grads are contiguous in the logical shape of a: [.., r, c] */
            int64_t ar = s->a.shape[s->a.ndim - 2], ac = s->a.shape[s->a.ndim - 1];
            char *GA = (char *)ga->data + (size_t)((s->a.ndim > 2 ? bi : 0) * ar * ac) * es;
            if (!s->ta) /* dA [M,K] = G [M,N] op(B)^T */
                nl_gemm(dt, 0, !B.trans, M, K, N, 1.0, G, N, B.p, B.ld, 1.0, GA, K);
            else        /* dA [K,M] = op(B) [K,N] G^T */
                nl_gemm(dt, B.trans, 1, K, M, N, 1.0, B.p, B.ld, G, N, 1.0, GA, M);
        }
        if (gb) {
            int64_t br = s->b.shape[s->b.ndim - 2], bc = s->b.shape[s->b.ndim - 1];
            char *GB = (char *)gb->data + (size_t)((s->b.ndim > 2 ? bi : 0) * br * bc) * es;
            if (!s->tb) /* dB [K,N] = op(A)^T [K,M] G [M,N] */
                nl_gemm(dt, !A.trans, 0, K, N, M, 1.0, A.p, A.ld, G, N, 1.0, GB, N);
            else        /* dB [N,K] = G^T [N,M] op(A) [M,K] */
                nl_gemm(dt, 1, A.trans, N, K, M, 1.0, G, N, A.p, A.ld, 1.0, GB, K);
        }
    }
}

nl_var *nl_matmul_t(nl_ctx *c, nl_var *a, nl_var *b, int ta, int tb) {
    NL_REQUIRE(a, b);
    if (a->val.dtype != b->val.dtype) return nl_op_fail(NL_EDTYPE, "matmul", "mixed dtypes", a, b);
    if (a->val.ndim < 2 || b->val.ndim < 2) return nl_op_fail(NL_ESHAPE, "matmul", "operands need at least 2 dims", a, b);
    nl_tensor A = a->val, B = b->val;
    int da = A.ndim, db = B.ndim;
    int64_t M = ta ? A.shape[da - 1] : A.shape[da - 2], K = ta ? A.shape[da - 2] : A.shape[da - 1];
    int64_t K2 = tb ? B.shape[db - 1] : B.shape[db - 2], N = tb ? B.shape[db - 2] : B.shape[db - 1];
    if (K != K2) return nl_op_fail(NL_ESHAPE, "matmul", "inner dimensions differ", a, b);
    if (db > 2) {
        if (da != db) return nl_op_fail(NL_ESHAPE, "matmul", "batched operands need equal batch dims", a, b);
        for (int i = 0; i < da - 2; i++)
            if (A.shape[i] != B.shape[i]) return nl_op_fail(NL_ESHAPE, "matmul", "batch dims differ", a, b);
    }
    mat_op mA, mB;
    if (!mat_describe(&A, ta, &mA)) { A = nl_contig(c, &A); if (!A.data) return NULL; mat_describe(&A, ta, &mA); }
    if (!mat_describe(&B, tb, &mB)) { B = nl_contig(c, &B); if (!B.data) return NULL; mat_describe(&B, tb, &mB); }
    int64_t oshape[NL_MAXDIM];
    for (int i = 0; i < da - 2; i++) oshape[i] = A.shape[i];
    oshape[da - 2] = M;
    oshape[da - 1] = N;
    nl_var *out = nl_op_out(c, A.dtype, da, oshape);
    if (!out) return NULL;
    size_t es = nl_dtype_size(A.dtype);
    int flat = 0;
    if (db == 2 && da > 2 && !ta) {
        /* [.., M, K] @ [K, N]: one GEMM if a's rows are contiguous */
        if (!nl_tensor_is_contiguous(&A)) { A = nl_contig(c, &A); if (!A.data) return NULL; }
        mat_describe(&A, 0, &mA);
        int64_t MM = nl_tensor_numel(&A) / K;
        nl_gemm(A.dtype, 0, mB.trans, MM, N, K, 1.0, A.data, K, mB.p, mB.ld, 0.0, out->val.data, N);
        flat = 1;
    } else {
        int64_t nb = batch_count(&out->val);
        for (int64_t bi = 0; bi < nb; bi++) {
            mat_op x = mA, y = mB;
            x.p += (size_t)batch_offset(&A, da > 2 ? bi : 0) * es;
            y.p += (size_t)batch_offset(&B, db > 2 ? bi : 0) * es;
            gemm_ops(A.dtype, &x, &y, 0.0, (char *)out->val.data + (size_t)(bi * M * N) * es, N, M, N, K);
        }
    }
    nl_var *in[2] = {a, b};
    nl_node *n = nl_op_record(c, "matmul", out, matmul_backward, 2, in);
    if (n) {
        mm_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->a = A; s->b = B; s->ta = ta; s->tb = tb; s->flat = flat;
        n->saved = s;
    }
    return out;
}

nl_var *nl_matmul(nl_ctx *c, nl_var *a, nl_var *b) { return nl_matmul_t(c, a, b, 0, 0); }

/* ---- linear: y = x W^T + b as one fused op (GEMM + bias), x [..., in] ---- */
typedef struct { nl_tensor x; } lin_saved;

static void linear_backward(nl_ctx *c, nl_node *n) {
    lin_saved *s = n->saved;
    nl_var *W = n->in[1], *bias = n->n_in > 2 ? n->in[2] : NULL;
    const nl_tensor *g = nl_node_grad_out(n);
    int64_t O = W->val.shape[0], In = W->val.shape[1];
    int64_t R = nl_tensor_numel(g) / O;
    nl_dtype dt = g->dtype;
    nl_tensor Wc = nl_contig(c, &W->val);
    nl_tensor *gx = nl_grad(c, n->in[0]), *gw = nl_grad(c, W), *gbias = bias ? nl_grad(c, bias) : NULL;
    if (gx) nl_gemm(dt, 0, 0, R, In, O, 1.0, g->data, O, Wc.data, In, 1.0, gx->data, In);   /* dX = G W */
    if (gw) nl_gemm(dt, 1, 0, O, In, R, 1.0, g->data, O, s->x.data, In, 1.0, gw->data, In); /* dW = G^T X */
    if (gbias) {
        if (dt == NL_F32) {
            float *gb = gbias->data; const float *gp = g->data;
            for (int64_t r = 0; r < R; r++) for (int64_t o = 0; o < O; o++) gb[o] += gp[r * O + o];
        } else {
            double *gb = gbias->data; const double *gp = g->data;
            for (int64_t r = 0; r < R; r++) for (int64_t o = 0; o < O; o++) gb[o] += gp[r * O + o];
        }
    }
}

nl_var *nl_linear(nl_ctx *c, nl_var *x, nl_var *W, nl_var *b) {
    NL_REQUIRE(x, W);
    if (x->val.dtype != W->val.dtype || (b && b->val.dtype != W->val.dtype)) return nl_op_fail(NL_EDTYPE, "linear", "mixed dtypes", x, W);
    if (W->val.ndim != 2) return nl_op_fail(NL_ESHAPE, "linear", "W must be [out, in]", x, W);
    int64_t O = W->val.shape[0], In = W->val.shape[1];
    if (x->val.ndim < 1 || x->val.shape[x->val.ndim - 1] != In) return nl_op_fail(NL_ESHAPE, "linear", "last dim of x must equal W's in-dim", x, W);
    if (b && (b->val.ndim != 1 || b->val.shape[0] != O)) return nl_op_fail(NL_ESHAPE, "linear", "bias must be [out]", b, W);
    nl_tensor X = nl_contig(c, &x->val);
    nl_tensor Wc = nl_contig(c, &W->val);
    if (!X.data || !Wc.data) return NULL;
    int64_t oshape[NL_MAXDIM];
    for (int i = 0; i < X.ndim; i++) oshape[i] = X.shape[i];
    oshape[X.ndim - 1] = O;
    nl_var *out = nl_op_out(c, X.dtype, X.ndim, oshape);
    if (!out) return NULL;
    int64_t R = nl_tensor_numel(&X) / In;
    double beta = 0.0;
    if (b) { /* preload rows with the bias, then accumulate the GEMM */
        nl_tensor bc = nl_contig(c, &b->val);
        size_t es = nl_dtype_size(X.dtype);
        for (int64_t r = 0; r < R; r++) memcpy((char *)out->val.data + (size_t)(r * O) * es, bc.data, (size_t)O * es);
        beta = 1.0;
    }
    nl_gemm(X.dtype, 0, 1, R, O, In, 1.0, X.data, In, Wc.data, In, beta, out->val.data, O);
    nl_var *in[3] = {x, W, b};
    nl_node *n = nl_op_record(c, "linear", out, linear_backward, b ? 3 : 2, in);
    if (n) {
        lin_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->x = X;
        n->saved = s;
    }
    return out;
}
