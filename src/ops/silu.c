/* SiLU (swish) as one fused op: y = x * sigmoid(x), dy/dx = s (1 + x (1 - s)), s = sigmoid(x). One pass forward,
 * one pass backward (s recomputed from x: no saved buffer), instead of the three ops and two temporaries of
 * nl_mul(x, nl_sigmoid(x)). f32 (nl_vexpf, vectorised) and f64 (exp); sigmoid evaluated as 1 / (1 + exp(-x)), which is exact in the
 * tails (exp(-x) -> inf gives s = 0, y = -0). */
#include "nnlab/extend.h"
#include "nnlab/ops.h"
#include "nnlab/vmath.h"
#include <math.h>

/* f32 kernels, 8 lanes with GCC vector extensions (plain C; the compiler picks AVX2 / SSE halves), because nl_vexpf in
 * an `omp simd` loop vectorises only under -fno-trapping-math. exp is nl_vexpf's algorithm (vmath.h: Cody-Waite
 * reduction, Cephes degree-6 polynomial, 1.4 ulp), written to give nl_vexpf's values; tails call nl_vexpf. */
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));

static inline vf8 vsel(vi8 m, vf8 a, vf8 b) { return (vf8)(((vi8)a & m) | ((vi8)b & ~m)); }

static inline vf8 vexpf8(vf8 x) {
    const vf8 lo = {-87.33654475f, -87.33654475f, -87.33654475f, -87.33654475f, -87.33654475f, -87.33654475f,
                    -87.33654475f, -87.33654475f};
    const vf8 hi = {88.37626266f, 88.37626266f, 88.37626266f, 88.37626266f, 88.37626266f, 88.37626266f, 88.37626266f,
                    88.37626266f};
    vf8 xc = vsel(x >= lo, x, lo);
    xc = vsel(xc <= hi, xc, hi);
    vf8 fx = xc * 1.44269504088896341f;
    fx = (fx + 12582912.0f) - 12582912.0f;
    vf8 r = xc - fx * 0.693359375f;
    r = r - fx * -2.12194440e-4f;
    vf8 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const vi8 bits = (__builtin_convertvector(fx, vi8) + 127) << 23;
    vf8 e = p * (vf8)bits;
    e = vsel(x < lo, (vf8){0}, e);
    return vsel(x == x, e, x); /* NaN in, NaN out */
}

static void silu_fwd_f32(const float *a, float *o, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vf8 x;
        __builtin_memcpy(&x, a + i, sizeof x);
        const vf8 y = x / (1.0f + vexpf8(-x));
        __builtin_memcpy(o + i, &y, sizeof y);
    }
    for (; i < n; i++) o[i] = a[i] / (1.0f + nl_vexpf(-a[i]));
}

static void silu_bwd_f32(const float *x, const float *g, float *d, int64_t n, int store) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vf8 xv, gv, dv;
        __builtin_memcpy(&xv, x + i, sizeof xv);
        __builtin_memcpy(&gv, g + i, sizeof gv);
        const vf8 s = 1.0f / (1.0f + vexpf8(-xv));
        const vf8 v = gv * s * (1.0f + xv * (1.0f - s));
        if (store) dv = v;
        else {
            __builtin_memcpy(&dv, d + i, sizeof dv);
            dv += v;
        }
        __builtin_memcpy(d + i, &dv, sizeof dv);
    }
    for (; i < n; i++) {
        const float s = 1.0f / (1.0f + nl_vexpf(-x[i]));
        const float v = g[i] * s * (1.0f + x[i] * (1.0f - s));
        d[i] = store ? v : d[i] + v;
    }
}

static void silu_backward(nl_ctx *c, nl_node *n) {
    int fresh = 0;
    nl_tensor *gx = nl_grad_w(c, n->in[0], &fresh);
    if (!gx) return;
    const nl_tensor *go = nl_node_grad_out(n);
    const int64_t N = nl_tensor_numel(go);
    if (go->dtype == NL_F32) {
        const float *x = n->in[0]->val.data, *g = go->data;
        float *d = gx->data;
        silu_bwd_f32(x, g, d, N, fresh);
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
        silu_fwd_f32(a, o, N);
    } else {
        const double *a = x->val.data;
        double *o = y->val.data;
        for (int64_t i = 0; i < N; i++) o[i] = a[i] / (1.0 + exp(-a[i]));
    }
    nl_op_record(c, "silu", y, silu_backward, 1, &x);
    return y;
}
