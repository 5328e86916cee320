/* Reductions (sum, mean, max over one axis or all) and views (reshape, permute, slice, contiguous). */
#include "nnlab/extend.h"
#include "nnlab/ops.h"
#include <math.h>
#include <string.h>

typedef enum { R_SUM, R_MEAN, R_MAX } red_op;
static const char *const red_names[] = {"sum", "mean", "max"};

typedef struct {
    int64_t outer, n, inner;  /* input viewed as [outer, n, inner] */
    int64_t *argmax;          /* (outer*inner) for max */
} red_saved;

static void reduce_backward(nl_ctx *c, nl_node *n) {
    red_saved *s = n->saved;
    nl_tensor *gx = nl_grad(c, n->in[0]);
    if (!gx) return;
    const nl_tensor *g = nl_node_grad_out(n);
    red_op op = (red_op)n->i[0];
    int64_t O = s->outer, N = s->n, I = s->inner;
    double scale = op == R_MEAN ? 1.0 / (double)N : 1.0;
    if (g->dtype == NL_F32) {
        const float *gp = g->data; float *xp = gx->data;
        if (op == R_MAX) {
            for (int64_t o = 0; o < O; o++) for (int64_t i = 0; i < I; i++) xp[(o * N + s->argmax[o * I + i]) * I + i] += gp[o * I + i];
        } else {
            #pragma omp parallel for if (O * N * I > 32768) schedule(static)
            for (int64_t o = 0; o < O; o++) for (int64_t k = 0; k < N; k++) for (int64_t i = 0; i < I; i++) xp[(o * N + k) * I + i] += (float)scale * gp[o * I + i];
        }
    } else {
        const double *gp = g->data; double *xp = gx->data;
        if (op == R_MAX) {
            for (int64_t o = 0; o < O; o++) for (int64_t i = 0; i < I; i++) xp[(o * N + s->argmax[o * I + i]) * I + i] += gp[o * I + i];
        } else {
            #pragma omp parallel for if (O * N * I > 32768) schedule(static)
            for (int64_t o = 0; o < O; o++) for (int64_t k = 0; k < N; k++) for (int64_t i = 0; i < I; i++) xp[(o * N + k) * I + i] += scale * gp[o * I + i];
        }
    }
}

#define DEF_RED(T)                                                                                 \
    static void red_##T(red_op op, const T *x, T *y, int64_t *am, int64_t O, int64_t N, int64_t I) { \
        _Pragma("omp parallel for if (O * N * I > 32768) schedule(static)")                         \
        for (int64_t o = 0; o < O; o++) {                                                          \
            for (int64_t i = 0; i < I; i++) {                                                      \
                const T *p = x + o * N * I + i;                                                    \
                if (op == R_MAX) {                                                                 \
                    T best = p[0]; int64_t bk = 0;                                                 \
                    for (int64_t k = 1; k < N; k++) if (p[k * I] > best || (isnan(p[k * I]) && !isnan(best))) { best = p[k * I]; bk = k; } \
                    y[o * I + i] = best;                                                           \
                    if (am) am[o * I + i] = bk;                                                    \
                } else {                                                                           \
                    double acc = 0;                                                                \
                    for (int64_t k = 0; k < N; k++) acc += p[k * I];                               \
                    y[o * I + i] = (T)(op == R_MEAN ? acc / (double)N : acc);                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
DEF_RED(float)
DEF_RED(double)

static nl_var *reduce(nl_ctx *c, nl_var *x, int axis, int keepdim, red_op op) {
    NL_REQUIRE(x);
    const char *name = red_names[op];
    nl_tensor X = nl_contig(c, &x->val);
    if (!X.data) return NULL;
    int nd = X.ndim;
    int64_t O, N, I;
    int64_t oshape[NL_MAXDIM];
    int ond;
    if (axis == NL_AXIS_ALL) {
        O = 1; I = 1; N = nl_tensor_numel(&X);
        ond = keepdim ? nd : 0;
        for (int i = 0; i < ond; i++) oshape[i] = 1;
    } else {
        if (axis < 0) axis += nd;
        if (axis < 0 || axis >= nd) return nl_op_fail(NL_ESHAPE, name, "axis out of range", x, NULL);
        O = 1; I = 1; N = X.shape[axis];
        for (int i = 0; i < axis; i++) O *= X.shape[i];
        for (int i = axis + 1; i < nd; i++) I *= X.shape[i];
        ond = 0;
        for (int i = 0; i < nd; i++) {
            if (i == axis) { if (keepdim) oshape[ond++] = 1; }
            else oshape[ond++] = X.shape[i];
        }
    }
    if (N == 0) return nl_op_fail(NL_ESHAPE, name, "reducing an empty axis", x, NULL);
    nl_var *out = nl_op_out(c, X.dtype, ond, oshape);
    if (!out) return NULL;
    int64_t *am = NULL;
    if (op == R_MAX && c->grad_enabled && x->requires_grad) {
        am = nl_scratch(c, (size_t)(O * I) * sizeof *am);
        if (!am) return NULL;
    }
    if (X.dtype == NL_F32) red_float(op, X.data, out->val.data, am, O, N, I);
    else red_double(op, X.data, out->val.data, am, O, N, I);
    nl_var *in[1] = {x};
    nl_node *n = nl_op_record(c, name, out, reduce_backward, 1, in);
    if (n) {
        red_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->outer = O; s->n = N; s->inner = I; s->argmax = am;
        n->saved = s;
        n->i[0] = op;
    }
    return out;
}

nl_var *nl_sum(nl_ctx *c, nl_var *x, int axis, int keepdim) { return reduce(c, x, axis, keepdim, R_SUM); }
nl_var *nl_mean(nl_ctx *c, nl_var *x, int axis, int keepdim) { return reduce(c, x, axis, keepdim, R_MEAN); }
nl_var *nl_max(nl_ctx *c, nl_var *x, int axis, int keepdim) { return reduce(c, x, axis, keepdim, R_MAX); }

/* ---------------- views ----------------
 * A view's value shares storage with its input. Backward applies the same view to the input's (contiguous)
 * gradient and accumulates through it. */
enum { V_RESHAPE, V_PERMUTE, V_SLICE };

static void view_backward(nl_ctx *c, nl_node *n) {
    int fresh = 0;
    /* reshape and permute cover every element of x: a fresh gradient is stored, not added to zeros */
    nl_tensor *gx = n->i[0] == V_SLICE ? nl_grad(c, n->in[0]) : nl_grad_w(c, n->in[0], &fresh);
    if (!gx) return;
    if (fresh && n->i[0] == V_RESHAPE) {
        memcpy(gx->data, nl_node_grad_out(n)->data, (size_t)nl_tensor_numel(gx) * nl_dtype_size(gx->dtype));
        return;
    }
    nl_tensor gv;
    nl_status s = NL_OK;
    switch (n->i[0]) {
    case V_RESHAPE: s = nl_tensor_reshape(gx, n->out->val.ndim, n->out->val.shape, &gv); break;
    case V_PERMUTE: { int perm[NL_MAXDIM]; for (int k = 0; k < NL_MAXDIM; k++) perm[k] = (int)n->i[1 + k]; s = nl_tensor_permute(gx, perm, &gv); break; }
    case V_SLICE: s = nl_tensor_slice(gx, (int)n->i[1], n->i[2], n->i[3], n->i[4], &gv); break;
    }
    if (s != NL_OK && fresh) memset(gx->data, 0, (size_t)nl_tensor_numel(gx) * nl_dtype_size(gx->dtype));
    if (s == NL_OK) {
        if (fresh) nl_tensor_copy(&gv, nl_node_grad_out(n));
        else nl_tensor_add_into(&gv, nl_node_grad_out(n));
    }
}

static nl_var *record_view(nl_ctx *c, nl_var *x, nl_tensor t, const char *name, int kind, nl_node **np) {
    *np = NULL;
    nl_var *out = nl_op_view(c, t);
    if (!out) return NULL;
    nl_var *in[1] = {x};
    nl_node *n = nl_op_record(c, name, out, view_backward, 1, in);
    if (n) n->i[0] = kind;
    *np = n;
    return out;
}

static void copy_backward(nl_ctx *c, nl_node *n) {
    int fresh;
    nl_tensor *gx = nl_grad_w(c, n->in[0], &fresh);
    if (!gx) return;
    if (fresh) memcpy(gx->data, nl_node_grad_out(n)->data, (size_t)nl_tensor_numel(gx) * nl_dtype_size(gx->dtype));
    else nl_tensor_add_into(gx, nl_node_grad_out(n));
}

nl_var *nl_contiguous(nl_ctx *c, nl_var *x) {
    NL_REQUIRE(x);
    nl_var *out = nl_op_out(c, x->val.dtype, x->val.ndim, x->val.shape);
    if (!out) return NULL;
    nl_tensor_copy(&out->val, &x->val);
    nl_var *in[1] = {x};
    nl_op_record(c, "contiguous", out, copy_backward, 1, in);
    return out;
}

nl_var *nl_reshape(nl_ctx *c, nl_var *x, int ndim, const int64_t *shape) {
    NL_REQUIRE(x);
    if (!nl_tensor_is_contiguous(&x->val)) { x = nl_contiguous(c, x); if (!x) return NULL; }
    nl_tensor t;
    if (nl_tensor_reshape(&x->val, ndim, shape, &t)) return NULL;
    nl_node *n;
    return record_view(c, x, t, "reshape", V_RESHAPE, &n);
}

nl_var *nl_permute(nl_ctx *c, nl_var *x, const int *perm) {
    NL_REQUIRE(x);
    nl_tensor t;
    if (nl_tensor_permute(&x->val, perm, &t)) return NULL;
    nl_node *n;
    nl_var *out = record_view(c, x, t, "permute", V_PERMUTE, &n);
    if (n) for (int k = 0; k < NL_MAXDIM; k++) n->i[1 + k] = k < x->val.ndim ? perm[k] : k;
    return out;
}

nl_var *nl_transpose(nl_ctx *c, nl_var *x, int d0, int d1) {
    NL_REQUIRE(x);
    int nd = x->val.ndim;
    if (d0 < 0) d0 += nd;
    if (d1 < 0) d1 += nd;
    if (d0 < 0 || d1 < 0 || d0 >= nd || d1 >= nd) return nl_op_fail(NL_ESHAPE, "transpose", "dims out of range", x, NULL);
    int perm[NL_MAXDIM];
    for (int k = 0; k < nd; k++) perm[k] = k;
    perm[d0] = d1;
    perm[d1] = d0;
    return nl_permute(c, x, perm);
}

nl_var *nl_slice(nl_ctx *c, nl_var *x, int dim, int64_t start, int64_t stop, int64_t step) {
    NL_REQUIRE(x);
    nl_tensor t;
    if (dim < 0) dim += x->val.ndim;
    int64_t n0 = dim >= 0 && dim < x->val.ndim ? x->val.shape[dim] : 0;
    if (start < 0) start += n0;
    if (stop < 0) stop += n0;
    if (nl_tensor_slice(&x->val, dim, start, stop, step, &t)) return NULL;
    nl_node *n;
    nl_var *out = record_view(c, x, t, "slice", V_SLICE, &n);
    if (n) { n->i[1] = dim; n->i[2] = start; n->i[3] = stop; n->i[4] = step; }
    return out;
}
