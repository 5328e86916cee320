/* methods/tas/ops.c — channel-wise interpolation, padded addition, the FLOP loss, width and depth choices (tas.h). */
#include "tas/tas.h"
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <math.h>
#include <string.h>

int nl_tas_width_choices(int C, int out[NL_TAS_MAX_CHOICES]) {
    int n = 0;
    for (int k = 3; k <= 10; k++) {
        int v = (int)floor((double)C * k / 10.0 + 1e-9);
        if (v < 1 || (n > 0 && out[n - 1] == v)) continue;
        out[n++] = v;
    }
    return n;
}

int nl_tas_depth_choices(int nb, int out[NL_RESNET_MAX_BLOCKS]) {
    int n = 0;
    if (nb <= 3) {
        for (int d = 1; d <= nb; d++) out[n++] = d;
        return n;
    }
    for (int d = 1; d <= nb; d += 2) out[n++] = d;
    if (out[n - 1] < nb) out[n++] = nb;
    return n;
}

/* ---- CWI: [N, C, H, W] -> [N, Co, H, W] ---- */
static void cwi_range(int64_t t, int64_t C, int64_t Co, int64_t *s, int64_t *e) {
    *s = (t * C) / Co;                  /* floor */
    *e = ((t + 1) * C + Co - 1) / Co;   /* ceil */
}

#define CWI_LOOP(T)                                                                                                    \
    do {                                                                                                               \
        const T *X = xs;                                                                                               \
        T *Y = ys;                                                                                                     \
        for (int64_t n = 0; n < N; n++)                                                                                \
            for (int64_t t = 0; t < Co; t++) {                                                                         \
                int64_t s, e;                                                                                          \
                cwi_range(t, C, Co, &s, &e);                                                                           \
                T *y = Y + (n * Co + t) * S;                                                                           \
                const double inv = 1.0 / (double)(e - s);                                                              \
                for (int64_t k = 0; k < S; k++) y[k] = 0;                                                              \
                for (int64_t i = s; i < e; i++) {                                                                      \
                    const T *x = X + (n * C + i) * S;                                                                  \
                    for (int64_t k = 0; k < S; k++) y[k] += x[k];                                                      \
                }                                                                                                      \
                for (int64_t k = 0; k < S; k++) y[k] = (T)(y[k] * inv);                                                \
            }                                                                                                          \
    } while (0)

#define CWI_BACK(T)                                                                                                    \
    do {                                                                                                               \
        const T *GY = gys;                                                                                             \
        T *GX = gxs;                                                                                                   \
        for (int64_t n = 0; n < N; n++)                                                                                \
            for (int64_t t = 0; t < Co; t++) {                                                                         \
                int64_t s, e;                                                                                          \
                cwi_range(t, C, Co, &s, &e);                                                                           \
                const T *gy = GY + (n * Co + t) * S;                                                                   \
                const T inv = (T)(1.0 / (double)(e - s));                                                              \
                for (int64_t i = s; i < e; i++) {                                                                      \
                    T *gx = GX + (n * C + i) * S;                                                                      \
                    for (int64_t k = 0; k < S; k++) gx[k] += gy[k] * inv;                                              \
                }                                                                                                      \
            }                                                                                                          \
    } while (0)

static void cwi_backward(nl_ctx *c, nl_node *nd) {
    nl_tensor *gx = nl_grad(c, nd->in[0]);
    if (!gx) return;
    const nl_tensor *gy = nl_node_grad_out(nd);
    const int64_t N = nd->i[0], C = nd->i[1], Co = nd->i[2], S = nd->i[3];
    const void *gys = gy->data;
    void *gxs = gx->data;
    if (gy->dtype == NL_F64) CWI_BACK(double);
    else CWI_BACK(float);
}

nl_var *nl_tas_cwi(nl_ctx *c, nl_var *x, int64_t Co) {
    NL_REQUIRE(x);
    if (x->val.ndim != 4 || Co < 1) return nl_op_fail(NL_ESHAPE, "tas_cwi", "x must be [N, C, H, W] and Co >= 1", x, NULL);
    const int64_t N = x->val.shape[0], C = x->val.shape[1], S = x->val.shape[2] * x->val.shape[3];
    if (C == Co) return x;
    nl_tensor X = nl_contig(c, &x->val);
    if (!X.data) return NULL;
    nl_var *out = nl_op_out(c, x->val.dtype, 4, (int64_t[]){N, Co, x->val.shape[2], x->val.shape[3]});
    if (!out) return NULL;
    const void *xs = X.data;
    void *ys = out->val.data;
    if (X.dtype == NL_F64) CWI_LOOP(double);
    else CWI_LOOP(float);
    nl_node *nd = nl_op_record(c, "tas_cwi", out, cwi_backward, 1, &x);
    if (nd) nd->i[0] = N, nd->i[1] = C, nd->i[2] = Co, nd->i[3] = S;
    return out;
}

nl_var *nl_tas_add_pad(nl_ctx *c, nl_var *a, nl_var *b) {
    NL_REQUIRE(a, b);
    if (a->val.ndim != 4 || b->val.ndim != 4) return nl_op_fail(NL_ESHAPE, "tas_add_pad", "inputs must be [N, C, H, W]", a, b);
    if (a->val.shape[1] == b->val.shape[1]) return nl_add(c, a, b);
    if (a->val.shape[1] < b->val.shape[1]) {
        nl_var *t = a;
        a = b, b = t;
    }
    int64_t sh[4] = {b->val.shape[0], a->val.shape[1] - b->val.shape[1], b->val.shape[2], b->val.shape[3]};
    nl_var *z = nl_zeros(c, b->val.dtype, 4, sh);
    nl_var *parts[2] = {b, z};
    return nl_add(c, a, nl_concat(c, 2, parts, 1));
}

nl_var *nl_tas_flop_loss(nl_ctx *c, nl_var *expected, double flop_cur, double target, double tol) {
    NL_REQUIRE(expected);
    if (flop_cur > target) return nl_log(c, expected);
    if (flop_cur < target - tol) return nl_neg(c, nl_log(c, expected));
    return nl_scalar(c, expected->val.dtype, 0.0);
}

/* ---- y = x * p with p a 1-element var (the mixing weights): one pass each way ---- */
static void scale_backward(nl_ctx *c, nl_node *nd) {
    const nl_tensor *gy = nl_node_grad_out(nd);
    nl_var *x = nd->in[0], *p = nd->in[1];
    const int64_t n = nl_tensor_numel(gy);
    const float pv = (float)nl_tensor_get(&p->val, 0);
    const float *g = gy->data, *xs = nd->saved;
    nl_tensor *gx = nl_grad(c, x), *gp = nl_grad(c, p);
    if (gx) {
        float *d = gx->data;
        for (int64_t i = 0; i < n; i++) d[i] += g[i] * pv;
    }
    if (gp) {
        double acc = 0;
        for (int64_t i = 0; i < n; i++) acc += (double)g[i] * xs[i];
        nl_tensor_set(gp, 0, nl_tensor_get(gp, 0) + acc);
    }
}

nl_var *nl_tas_scale(nl_ctx *c, nl_var *x, nl_var *p) {
    NL_REQUIRE(x, p);
    if (x->val.dtype != NL_F32 || p->val.dtype != NL_F32 || nl_tensor_numel(&p->val) != 1)
        return nl_op_fail(NL_ESHAPE, "tas_scale", "x must be f32 and p one f32 value", x, p);
    nl_tensor X = nl_contig(c, &x->val);
    if (!X.data) return NULL;
    nl_var *out = nl_op_out(c, NL_F32, x->val.ndim, x->val.shape);
    if (!out) return NULL;
    const int64_t n = nl_tensor_numel(&X);
    const float pv = (float)nl_tensor_get(&p->val, 0), *xs = X.data;
    float *y = out->val.data;
    for (int64_t i = 0; i < n; i++) y[i] = xs[i] * pv;
    nl_var *in[2] = {x, p};
    nl_node *nd = nl_op_record(c, "tas_scale", out, scale_backward, 2, in);
    if (nd) nd->saved = (void *)xs;
    return out;
}
