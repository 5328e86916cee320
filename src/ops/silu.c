/* SiLU (swish) as one fused op: y = x * sigmoid(x), dy/dx = s (1 + x (1 - s)), s = sigmoid(x). One pass forward,
 * one pass backward (s recomputed from x: no saved buffer), instead of the three ops and two temporaries of
 * nl_mul(x, nl_sigmoid(x)). f32 (expf) and f64 (exp); sigmoid evaluated as 1 / (1 + exp(-x)), which is exact in the
 * tails (exp(-x) -> inf gives s = 0, y = -0). */
#include "nnlab/extend.h"
#include "nnlab/ops.h"
#include <math.h>

static void silu_backward(nl_ctx *c, nl_node *n) {
    int fresh = 0;
    nl_tensor *gx = nl_grad_w(c, n->in[0], &fresh);
    if (!gx) return;
    const nl_tensor *go = nl_node_grad_out(n);
    const int64_t N = nl_tensor_numel(go);
    if (go->dtype == NL_F32) {
        const float *x = n->in[0]->val.data, *g = go->data;
        float *d = gx->data;
        if (fresh)
            for (int64_t i = 0; i < N; i++) {
                const float s = 1.0f / (1.0f + expf(-x[i]));
                d[i] = g[i] * s * (1.0f + x[i] * (1.0f - s));
            }
        else
            for (int64_t i = 0; i < N; i++) {
                const float s = 1.0f / (1.0f + expf(-x[i]));
                d[i] += g[i] * s * (1.0f + x[i] * (1.0f - s));
            }
    } else {
        const double *x = n->in[0]->val.data, *g = go->data;
        double *d = gx->data;
        for (int64_t i = 0; i < N; i++) {
            const double s = 1.0 / (1.0 + exp(-x[i]));
            const double v = g[i] * s * (1.0 + x[i] * (1.0 - s));
            d[i] = fresh ? v : d[i] + v;
        }
    }
}

nl_var *nl_silu(nl_ctx *c, nl_var *x) {
    NL_REQUIRE(x);
    if (!nl_tensor_is_contiguous(&x->val)) x = nl_contiguous(c, x);
    NL_REQUIRE(x);
    const int64_t N = nl_tensor_numel(&x->val);
    nl_var *y = nl_op_out(c, x->val.dtype, x->val.ndim, x->val.shape);
    if (!y) return NULL;
    if (x->val.dtype == NL_F32) {
        const float *a = x->val.data;
        float *o = y->val.data;
        for (int64_t i = 0; i < N; i++) o[i] = a[i] / (1.0f + expf(-a[i]));
    } else {
        const double *a = x->val.data;
        double *o = y->val.data;
        for (int64_t i = 0; i < N; i++) o[i] = a[i] / (1.0 + exp(-a[i]));
    }
    nl_op_record(c, "silu", y, silu_backward, 1, &x);
    return y;
}
