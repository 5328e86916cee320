/* Nearest-neighbour upsampling of x [N, C, H, W] by an integer factor f >= 1: y [N, C, f H, f W],
 * y[n, c, i, j] = x[n, c, i / f, j / f]. Backward: dx[n, c, h, w] += sum of dy over its f x f block. f32 and f64;
 * strided inputs are made contiguous first. */
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <stdio.h>

#define UP_TPL(T, SFX)                                                                                      \
    static void up_fwd_##SFX(const T *x, T *y, int64_t P, int64_t H, int64_t W, int64_t f) {              \
        const int64_t OW = W * f;                                                                         \
        for (int64_t p = 0; p < P; p++) {                                                                 \
            const T *xp = x + p * H * W;                                                                  \
            T *yp = y + p * H * W * f * f;                                                                \
            for (int64_t h = 0; h < H; h++) {                                                             \
                T *r0 = yp + h * f * OW;                                                                  \
                for (int64_t w = 0; w < W; w++)                                                           \
                    for (int64_t k = 0; k < f; k++) r0[w * f + k] = xp[h * W + w];                        \
                for (int64_t k = 1; k < f; k++)                                                           \
                    for (int64_t j = 0; j < OW; j++) r0[k * OW + j] = r0[j];                              \
            }                                                                                             \
        }                                                                                                 \
    }                                                                                                     \
    static void up_bwd_##SFX(const T *gy, T *gx, int64_t P, int64_t H, int64_t W, int64_t f) {            \
        const int64_t OW = W * f;                                                                         \
        for (int64_t p = 0; p < P; p++) {                                                                 \
            const T *gp = gy + p * H * W * f * f;                                                         \
            T *dp = gx + p * H * W;                                                                       \
            for (int64_t h = 0; h < H; h++)                                                               \
                for (int64_t w = 0; w < W; w++) {                                                         \
                    T acc = 0;                                                                            \
                    for (int64_t a = 0; a < f; a++)                                                       \
                        for (int64_t b = 0; b < f; b++) acc += gp[(h * f + a) * OW + w * f + b];          \
                    dp[h * W + w] += acc;                                                                 \
                }                                                                                         \
        }                                                                                                 \
    }
UP_TPL(float, f32)
UP_TPL(double, f64)

static void up_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *gx = nl_grad(c, n->in[0]);
    if (!gx) return;
    const nl_tensor *gy = nl_node_grad_out(n);
    const nl_tensor *x = &n->in[0]->val;
    const int64_t P = x->shape[0] * x->shape[1];
    if (gy->dtype == NL_F32) up_bwd_f32(gy->data, gx->data, P, x->shape[2], x->shape[3], n->i[0]);
    else up_bwd_f64(gy->data, gx->data, P, x->shape[2], x->shape[3], n->i[0]);
}

nl_var *nl_upsample_nearest(nl_ctx *c, nl_var *x, int factor) {
    NL_REQUIRE(x);
    if (x->val.ndim != 4) return nl_op_fail(NL_ESHAPE, "upsample_nearest", "x must be [N, C, H, W]", x, NULL);
    if (factor < 1 || factor > 64) {
        char what[96];
        snprintf(what, sizeof what, "factor must be in 1..64 (got %d)", factor);
        return nl_op_fail(NL_EINVAL, "upsample_nearest", what, x, NULL);
    }
    if (!nl_tensor_is_contiguous(&x->val)) x = nl_contiguous(c, x);
    NL_REQUIRE(x);
    const int64_t *s = x->val.shape;
    int64_t os[4] = {s[0], s[1], s[2] * factor, s[3] * factor};
    nl_var *y = nl_op_out(c, x->val.dtype, 4, os);
    if (!y) return NULL;
    if (x->val.dtype == NL_F32) up_fwd_f32(x->val.data, y->val.data, s[0] * s[1], s[2], s[3], factor);
    else up_fwd_f64(x->val.data, y->val.data, s[0] * s[1], s[2], s[3], factor);
    nl_node *n = nl_op_record(c, "upsample_nearest", y, up_backward, 1, &x);
    if (n) n->i[0] = factor;
    return y;
}
