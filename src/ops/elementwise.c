/* Broadcasting binary ops, scalar ops and unary ops (f32 and f64). */
#include "nnlab/extend.h"
#include "nnlab/ops.h"
#include "internal/gelu.h"
#include <math.h>
#include <string.h>

/* ---------- broadcasting ---------- */
typedef enum { B_ADD, B_SUB, B_MUL, B_DIV } bin_op;
static const char *const bin_names[] = {"add", "sub", "mul", "div"};

/* 4-D view of t right-aligned into out shape `os` (ndim 4) with stride 0 on broadcast dims. */
static nl_tensor bcast4(const nl_tensor *t, const int64_t *os) {
    nl_tensor r = *t;
    int k = NL_MAXDIM - t->ndim;
    for (int i = 0; i < NL_MAXDIM; i++) {
        if (i < k) { r.shape[i] = os[i]; r.stride[i] = 0; }
        else {
            r.shape[i] = os[i];
            r.stride[i] = t->shape[i - k] == 1 && os[i] != 1 ? 0 : t->stride[i - k];
        }
    }
    r.ndim = NL_MAXDIM;
    return r;
}

static int bcast_shape(const nl_tensor *a, const nl_tensor *b, int *ndim, int64_t *shape) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = a->ndim - n + i, ib = b->ndim - n + i;
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) return 0;
        shape[i] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return 1;
}

#define BIN_EXPR(OP, x, y) ((OP) == B_ADD ? (x) + (y) : (OP) == B_SUB ? (x) - (y) : (OP) == B_MUL ? (x) * (y) : (x) / (y))


static void pad_out4(const nl_tensor *o, int64_t *os) {
    int k = NL_MAXDIM - o->ndim;
    for (int i = 0; i < NL_MAXDIM; i++) os[i] = i < k ? 1 : o->shape[i - k];
}

#define DEF_BIN(T)                                                                                  \
    static void bin_##T(bin_op op, const nl_tensor *A, const nl_tensor *B, nl_tensor *O) {          \
        int64_t n = nl_tensor_numel(O);                                                             \
        T *o = O->data;                                                                             \
        const T *a = A->data, *b = B->data;                                                         \
        if (nl_tensor_is_contiguous(A) && nl_tensor_is_contiguous(B) && nl_shape_equal(A, O) &&     \
            nl_shape_equal(B, O)) {                                                                 \
            _Pragma("omp parallel for simd if (parallel: n > 32768) schedule(static)")              \
            for (int64_t i = 0; i < n; i++) o[i] = BIN_EXPR(op, a[i], b[i]);                        \
            return;                                                                                 \
        }                                                                                           \
        int64_t os[NL_MAXDIM];                                                                      \
        pad_out4(O, os);                                                                            \
        nl_tensor a4 = bcast4(A, os), b4 = bcast4(B, os);                                           \
        int64_t n3 = os[3];                                                                         \
        int64_t rows = os[0] * os[1] * os[2];                                                       \
        _Pragma("omp parallel for if (n > 32768) schedule(static)")                                 \
        for (int64_t r = 0; r < rows; r++) {                                                        \
            int64_t i2 = r % os[2], i1 = (r / os[2]) % os[1], i0 = r / (os[2] * os[1]);             \
            const T *ar = a + i0 * a4.stride[0] + i1 * a4.stride[1] + i2 * a4.stride[2];            \
            const T *br = b + i0 * b4.stride[0] + i1 * b4.stride[1] + i2 * b4.stride[2];            \
            T *orow = o + r * n3;                                                                   \
            int64_t sa = a4.stride[3], sb = b4.stride[3];                                           \
            for (int64_t j = 0; j < n3; j++) orow[j] = BIN_EXPR(op, ar[j * sa], br[j * sb]);        \
        }                                                                                           \
    }
DEF_BIN(float)
DEF_BIN(double)

/* Accumulate g (contiguous, full out shape) into target gradient t (shape broadcast to out), multiplying by
 * factor f (contiguous, full out shape, or NULL), optionally negated. Sums over broadcast dims. */
#define DEF_REDUCE_INTO(T)                                                                          \
    static void reduce_into_##T(nl_tensor *t, const nl_tensor *g, const T *f, T sign) {             \
        int64_t os[NL_MAXDIM];                                                                      \
        pad_out4(g, os);                                                                            \
        const T *gp = g->data;                                                                      \
        T *tp = t->data;                                                                            \
        int64_t n = nl_tensor_numel(g);                                                             \
        if (nl_tensor_numel(t) == n) { /* no broadcasting: same numel, contiguous */                \
            if (f) {                                                                                \
                _Pragma("omp parallel for simd if (parallel: n > 32768) schedule(static)")          \
                for (int64_t i = 0; i < n; i++) tp[i] += sign * gp[i] * f[i];                       \
            } else {                                                                                \
                _Pragma("omp parallel for simd if (parallel: n > 32768) schedule(static)")          \
                for (int64_t i = 0; i < n; i++) tp[i] += sign * gp[i];                              \
            }                                                                                       \
            return;                                                                                 \
        }                                                                                           \
        nl_tensor t4 = bcast4(t, os);                                                               \
        int64_t n3 = os[3], rows = os[0] * os[1] * os[2];                                           \
        if (t4.stride[3] == 0 || rows == 1) { /* serial: many rows reduce into the same place */    \
            for (int64_t r = 0; r < rows; r++) {                                                    \
                int64_t i2 = r % os[2], i1 = (r / os[2]) % os[1], i0 = r / (os[2] * os[1]);         \
                T *tr = tp + i0 * t4.stride[0] + i1 * t4.stride[1] + i2 * t4.stride[2];             \
                const T *gr = gp + r * n3;                                                          \
                const T *fr = f ? f + r * n3 : NULL;                                                \
                int64_t st = t4.stride[3];                                                          \
                if (fr) for (int64_t j = 0; j < n3; j++) tr[j * st] += sign * gr[j] * fr[j];        \
                else for (int64_t j = 0; j < n3; j++) tr[j * st] += sign * gr[j];                   \
            }                                                                                       \
            return;                                                                                 \
        }                                                                                           \
        /* last dim kept (stride 1 in t): parallel over columns, rows accumulate in order */        \
        _Pragma("omp parallel for if (n > 32768) schedule(static)")                                 \
        for (int64_t j = 0; j < n3; j++) {                                                          \
            for (int64_t r = 0; r < rows; r++) {                                                    \
                int64_t i2 = r % os[2], i1 = (r / os[2]) % os[1], i0 = r / (os[2] * os[1]);         \
                T *tr = tp + i0 * t4.stride[0] + i1 * t4.stride[1] + i2 * t4.stride[2];             \
                T v = gp[r * n3 + j];                                                               \
                if (f) v *= f[r * n3 + j];                                                          \
                tr[j] += sign * v;                                                                  \
            }                                                                                       \
        }                                                                                           \
    }
DEF_REDUCE_INTO(float)
DEF_REDUCE_INTO(double)

static void reduce_into(nl_tensor *t, const nl_tensor *g, const void *f, double sign) {
    if (g->dtype == NL_F32) reduce_into_float(t, g, f, (float)sign);
    else reduce_into_double(t, g, f, sign);
}

/* Materialise x broadcast to the out shape (contiguous), for backward factors. */
static nl_tensor expand(nl_ctx *c, const nl_tensor *x, const nl_tensor *like) {
    nl_tensor r = nl_arena_tensor(c->arena, like->dtype, like->ndim, like->shape);
    if (!r.data) return r;
    int64_t os[NL_MAXDIM];
    pad_out4(like, os);
    nl_tensor x4 = bcast4(x, os), r4 = r;
    for (int i = 0; i < NL_MAXDIM; i++) { r4.shape[i] = os[i]; }
    r4.ndim = NL_MAXDIM;
    int64_t s = 1;
    for (int i = NL_MAXDIM - 1; i >= 0; i--) { r4.stride[i] = s; s *= os[i]; }
    nl_tensor_copy(&r4, &x4);
    return r;
}

/* Gradient of a sum's input: a fresh full-size gradient (nl_grad_w) is stored as sign * g instead of being
 * added to zeros (the same values, no memset pass); a broadcast input is reduced as usual. */
static void add_grad_into(nl_ctx *c, nl_var *x, const nl_tensor *g, double sign) {
    int fresh;
    nl_tensor *gx = nl_grad_w(c, x, &fresh);
    if (!gx) return;
    const int64_t N = nl_tensor_numel(g);
    const size_t es = nl_dtype_size(g->dtype);
    if (fresh && nl_tensor_numel(gx) != N) { memset(gx->data, 0, (size_t)nl_tensor_numel(gx) * es); fresh = 0; }
    if (!fresh) { reduce_into(gx, g, NULL, sign); return; }
    if (sign == 1) { memcpy(gx->data, g->data, (size_t)N * es); return; }
    if (g->dtype == NL_F32) { float *d = gx->data; const float *s = g->data; for (int64_t i = 0; i < N; i++) d[i] = (float)sign * s[i]; }
    else { double *d = gx->data; const double *s = g->data; for (int64_t i = 0; i < N; i++) d[i] = sign * s[i]; }
}

static void binary_backward(nl_ctx *c, nl_node *n) {
    bin_op op = (bin_op)n->i[0];
    nl_var *a = n->in[0], *b = n->in[1];
    const nl_tensor *g = nl_node_grad_out(n);
    if (op == B_ADD || op == B_SUB) { /* a first: when b is a too, its gradient then exists and is added to */
        add_grad_into(c, a, g, 1);
        add_grad_into(c, b, g, op == B_ADD ? 1 : -1);
        return;
    }
    nl_tensor *ga = nl_grad(c, a), *gb = nl_grad(c, b);
    nl_dtype dt = g->dtype;
    int64_t N = nl_tensor_numel(g);
    switch (op) {
    case B_ADD:
    case B_SUB: break;
    case B_MUL:
        if (ga) { nl_tensor f = expand(c, &b->val, g); if (f.data) reduce_into(ga, g, f.data, 1); }
        if (gb) { nl_tensor f = expand(c, &a->val, g); if (f.data) reduce_into(gb, g, f.data, 1); }
        break;
    case B_DIV: {
        nl_tensor bb = expand(c, &b->val, g);
        if (!bb.data) return;
        if (ga) { /* d/da = 1/b */
            nl_tensor f = nl_arena_tensor(c->arena, dt, g->ndim, g->shape);
            if (!f.data) return;
            if (dt == NL_F32) { float *fp = f.data; const float *bp = bb.data; for (int64_t i = 0; i < N; i++) fp[i] = 1.0f / bp[i]; }
            else { double *fp = f.data; const double *bp = bb.data; for (int64_t i = 0; i < N; i++) fp[i] = 1.0 / bp[i]; }
            reduce_into(ga, g, f.data, 1);
        }
        if (gb) { /* d/db = -out/b */
            nl_tensor f = nl_arena_tensor(c->arena, dt, g->ndim, g->shape);
            if (!f.data) return;
            const nl_tensor *o = &n->out->val;
            if (dt == NL_F32) { float *fp = f.data; const float *bp = bb.data, *op_ = o->data; for (int64_t i = 0; i < N; i++) fp[i] = -op_[i] / bp[i]; }
            else { double *fp = f.data; const double *bp = bb.data, *op_ = o->data; for (int64_t i = 0; i < N; i++) fp[i] = -op_[i] / bp[i]; }
            reduce_into(gb, g, f.data, 1);
        }
        break;
    }
    }
}

static nl_var *binary(nl_ctx *c, nl_var *a, nl_var *b, bin_op op) {
    NL_REQUIRE(a, b);
    const char *name = bin_names[op];
    if (a->val.dtype != b->val.dtype) return nl_op_fail(NL_EDTYPE, name, "mixed dtypes", a, b);
    int nd;
    int64_t shape[NL_MAXDIM];
    if (!bcast_shape(&a->val, &b->val, &nd, shape)) return nl_op_fail(NL_ESHAPE, name, "shapes are not broadcastable", a, b);
    nl_var *out = nl_op_out(c, a->val.dtype, nd, shape);
    if (!out) return NULL;
    if (a->val.dtype == NL_F32) bin_float(op, &a->val, &b->val, &out->val);
    else bin_double(op, &a->val, &b->val, &out->val);
    nl_var *in[2] = {a, b};
    nl_node *n = nl_op_record(c, name, out, binary_backward, 2, in);
    if (n) n->i[0] = op;
    return out;
}

nl_var *nl_add(nl_ctx *c, nl_var *a, nl_var *b) { return binary(c, a, b, B_ADD); }
nl_var *nl_sub(nl_ctx *c, nl_var *a, nl_var *b) { return binary(c, a, b, B_SUB); }
nl_var *nl_mul(nl_ctx *c, nl_var *a, nl_var *b) { return binary(c, a, b, B_MUL); }
nl_var *nl_div(nl_ctx *c, nl_var *a, nl_var *b) { return binary(c, a, b, B_DIV); }

/* ---------- unary (incl. scalar-parameterised) ---------- */
/* scalar-parameterised ops share the unary machinery; plain ints after the nl_unary_op range */
#define S_ADD ((int)NL_U_COUNT)
#define S_MUL ((int)NL_U_COUNT + 1)
#define S_POW ((int)NL_U_COUNT + 2)
#define S_RSUB ((int)NL_U_COUNT + 3)

static const char *const un_names[NL_U_COUNT] = {
    "neg", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "leaky_relu", "gelu", "erf", "sin", "cos",
    "sign", "square", "softplus"};
_Static_assert(sizeof(un_names) / sizeof(un_names[0]) == NL_U_COUNT, "unary names out of sync");

const char *nl_unary_name(nl_unary_op op) { return (op >= 0 && op < NL_U_COUNT) ? un_names[op] : "unary?"; }

static const char *op_name(int op) {
    switch (op) {
    case S_ADD: return "add_scalar";
    case S_MUL: return "mul_scalar";
    case S_POW: return "pow_scalar";
    case S_RSUB: return "rsub_scalar";
    default: return nl_unary_name((nl_unary_op)op);
    }
}

#define NL_SQRT1_2 0.70710678118654752440
#define NL_INV_SQRT_2PI 0.39894228040143267794

/* forward f(x) with parameter a */
#define UN_FWD(T, op, x, a)                                                                    \
    ((op) == NL_U_NEG ? -(x) : (op) == NL_U_EXP ? (T)exp(x) : (op) == NL_U_LOG ? (T)log(x) :    \
     (op) == NL_U_SQRT ? (T)sqrt(x) : (op) == NL_U_ABS ? (T)fabs(x) : (op) == NL_U_TANH ? (T)tanh(x) : \
     (op) == NL_U_SIGMOID ? (T)(1.0 / (1.0 + exp(-(double)(x)))) :                              \
     (op) == NL_U_RELU ? ((x) > 0 ? (x) : (T)0) : (op) == NL_U_LEAKY_RELU ? ((x) > 0 ? (x) : (T)(a) * (x)) : \
     (op) == NL_U_GELU ? (T)(0.5 * (x) * (1.0 + erf((x) * NL_SQRT1_2))) : (op) == NL_U_ERF ? (T)erf(x) : \
     (op) == NL_U_SIN ? (T)sin(x) : (op) == NL_U_COS ? (T)cos(x) :                              \
     (op) == NL_U_SIGN ? (T)(((x) > 0) - ((x) < 0)) : (op) == NL_U_SQUARE ? (x) * (x) :         \
     (op) == NL_U_SOFTPLUS ? (T)((x) > 20 ? (double)(x) : log1p(exp((double)(x)))) :            \
     (op) == S_ADD ? (x) + (T)(a) : (op) == S_MUL ? (x) * (T)(a) : (op) == S_RSUB ? (T)(a) - (x) : \
     (T)pow((double)(x), (a)))

/* derivative dy/dx given x, y and a */
#define UN_DER(T, op, x, y, a)                                                                 \
    ((op) == NL_U_NEG ? (T)-1 : (op) == NL_U_EXP ? (y) : (op) == NL_U_LOG ? (T)1 / (x) :        \
     (op) == NL_U_SQRT ? (T)0.5 / (y) : (op) == NL_U_ABS ? (T)(((x) > 0) - ((x) < 0)) :         \
     (op) == NL_U_TANH ? (T)1 - (y) * (y) : (op) == NL_U_SIGMOID ? (y) * ((T)1 - (y)) :         \
     (op) == NL_U_RELU ? (T)((x) > 0) : (op) == NL_U_LEAKY_RELU ? ((x) > 0 ? (T)1 : (T)(a)) :   \
     (op) == NL_U_GELU ? (T)(0.5 * (1.0 + erf((x) * NL_SQRT1_2)) + (x) * NL_INV_SQRT_2PI * exp(-0.5 * (x) * (x))) : \
     (op) == NL_U_ERF ? (T)(1.12837916709551257390 * exp(-(double)(x) * (x))) :                \
     (op) == NL_U_SIN ? (T)cos(x) : (op) == NL_U_COS ? (T)-sin(x) : (op) == NL_U_SIGN ? (T)0 :  \
     (op) == NL_U_SQUARE ? (T)2 * (x) : (op) == NL_U_SOFTPLUS ? (T)(1.0 / (1.0 + exp(-(double)(x)))) : \
     (op) == S_ADD ? (T)1 : (op) == S_MUL ? (T)(a) : (op) == S_RSUB ? (T)-1 :                   \
     (T)((a) * pow((double)(x), (a) - 1.0)))

/* One loop per op so the compiler specialises each (the switch is outside the loop). */
#define UN_CASES(X)                                                                            \
    X(NL_U_NEG) X(NL_U_EXP) X(NL_U_LOG) X(NL_U_SQRT) X(NL_U_ABS) X(NL_U_TANH) X(NL_U_SIGMOID)   \
    X(NL_U_RELU) X(NL_U_LEAKY_RELU) X(NL_U_GELU) X(NL_U_ERF) X(NL_U_SIN) X(NL_U_COS)            \
    X(NL_U_SIGN) X(NL_U_SQUARE) X(NL_U_SOFTPLUS) X(S_ADD) X(S_MUL) X(S_POW) X(S_RSUB)
#define UN_CASES_NORELU(X)                                                                     \
    X(NL_U_NEG) X(NL_U_EXP) X(NL_U_LOG) X(NL_U_SQRT) X(NL_U_ABS) X(NL_U_TANH) X(NL_U_SIGMOID)   \
    X(NL_U_LEAKY_RELU) X(NL_U_GELU) X(NL_U_ERF) X(NL_U_SIN) X(NL_U_COS)                         \
    X(NL_U_SIGN) X(NL_U_SQUARE) X(NL_U_SOFTPLUS) X(S_ADD) X(S_MUL) X(S_POW) X(S_RSUB)

#define DEF_UN(T)                                                                              \
    static void un_fwd_##T(int op, const T *x, T *y, int64_t n, double a) {                    \
        switch (op) {                                                                          \
            UN_CASES(UN_FWD_CASE_##T)                                                          \
        }                                                                                      \
    }                                                                                          \
    static void un_bwd_##T(int op, const T *x, const T *y, const T *g, T *gx, int64_t n, double a) { \
        switch (op) {                                                                          \
            UN_BWD_RELU(T)                                                                     \
            UN_CASES_NORELU(UN_BWD_CASE_##T)                                                   \
        }                                                                                      \
    }
#define UN_FWD_CASE_float(OP) case OP: _Pragma("omp parallel for simd if (parallel: n > 16384) schedule(static)") for (int64_t i = 0; i < n; i++) y[i] = UN_FWD(float, OP, x[i], a); break;
/* ReLU backward as a select (gx += x > 0 ? g : 0, as PyTorch's threshold_backward): the product g * (x > 0) did
 * not vectorise and was a tenth of a small CNN's training time. */
#define UN_BWD_RELU(T) case NL_U_RELU: _Pragma("omp parallel for simd if (parallel: n > 16384) schedule(static)") for (int64_t i = 0; i < n; i++) gx[i] += x[i] > 0 ? g[i] : (T)0; break;
#define UN_BWD_CASE_float(OP) case OP: _Pragma("omp parallel for simd if (parallel: n > 16384) schedule(static)") for (int64_t i = 0; i < n; i++) gx[i] += g[i] * UN_DER(float, OP, x[i], y[i], a); break;
#define UN_FWD_CASE_double(OP) case OP: _Pragma("omp parallel for simd if (parallel: n > 16384) schedule(static)") for (int64_t i = 0; i < n; i++) y[i] = UN_FWD(double, OP, x[i], a); break;
#define UN_BWD_CASE_double(OP) case OP: _Pragma("omp parallel for simd if (parallel: n > 16384) schedule(static)") for (int64_t i = 0; i < n; i++) gx[i] += g[i] * UN_DER(double, OP, x[i], y[i], a); break;
DEF_UN(float)
DEF_UN(double)

static void unary_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *gx = nl_grad(c, n->in[0]);
    if (!gx) return;
    const nl_tensor *xin = n->saved; /* contiguous input */
    const nl_tensor *g = nl_node_grad_out(n);
    int64_t N = nl_tensor_numel(g);
    if (g->dtype == NL_F32) un_bwd_float((int)n->i[0], xin->data, n->out->val.data, g->data, gx->data, N, n->f[0]);
    else un_bwd_double((int)n->i[0], xin->data, n->out->val.data, g->data, gx->data, N, n->f[0]);
}

static nl_var *unary(nl_ctx *c, nl_var *x, int op, double a) {
    NL_REQUIRE(x);
    nl_tensor xc = nl_contig(c, &x->val);
    if (!xc.data) return NULL;
    nl_var *out = nl_op_out(c, x->val.dtype, x->val.ndim, x->val.shape);
    if (!out) return NULL;
    int64_t N = nl_tensor_numel(&xc);
    if (xc.dtype == NL_F32) un_fwd_float(op, xc.data, out->val.data, N, a);
    else un_fwd_double(op, xc.data, out->val.data, N, a);
    nl_var *in[1] = {x};
    nl_node *n = nl_op_record(c, op_name(op), out, unary_backward, 1, in);
    if (n) {
        nl_tensor *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        *s = xc;
        n->saved = s;
        n->i[0] = op;
        n->f[0] = a;
    }
    return out;
}

nl_var *nl_unary(nl_ctx *c, nl_var *x, nl_unary_op op, double a) {
    if ((int)op < 0 || op >= NL_U_COUNT) { nl_set_error(NL_EINVAL, "unary: unknown op %d", (int)op); return NULL; }
    return unary(c, x, op, a);
}
nl_var *nl_neg(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_NEG, 0); }
nl_var *nl_exp(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_EXP, 0); }
nl_var *nl_log(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_LOG, 0); }
nl_var *nl_sqrt(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_SQRT, 0); }
nl_var *nl_abs(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_ABS, 0); }
nl_var *nl_tanh(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_TANH, 0); }
nl_var *nl_sigmoid(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_SIGMOID, 0); }
nl_var *nl_relu(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_RELU, 0); }
nl_var *nl_leaky_relu(nl_ctx *c, nl_var *x, double s) { return unary(c, x, NL_U_LEAKY_RELU, s); }
/* f32: the vectorised kernel of gelu.c (erf to 1.5e-7, as PyTorch's vectorised CPU erf); f64: libm (gradient checks). */
nl_var *nl_gelu(nl_ctx *c, nl_var *x) { return x && x->val.dtype == NL_F32 ? nl__gelu_fast(c, x) : unary(c, x, NL_U_GELU, 0); }
nl_var *nl_erf(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_ERF, 0); }
nl_var *nl_sin(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_SIN, 0); }
nl_var *nl_cos(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_COS, 0); }
nl_var *nl_sign(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_SIGN, 0); }
nl_var *nl_square(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_SQUARE, 0); }
nl_var *nl_softplus(nl_ctx *c, nl_var *x) { return unary(c, x, NL_U_SOFTPLUS, 0); }
nl_var *nl_add_scalar(nl_ctx *c, nl_var *x, double s) { return unary(c, x, S_ADD, s); }
nl_var *nl_mul_scalar(nl_ctx *c, nl_var *x, double s) { return unary(c, x, S_MUL, s); }
nl_var *nl_pow_scalar(nl_ctx *c, nl_var *x, double p) { return unary(c, x, S_POW, p); }
nl_var *nl_rsub_scalar(nl_ctx *c, nl_var *x, double s) { return unary(c, x, S_RSUB, s); }
