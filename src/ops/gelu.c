/* The f32 path of nl_gelu (ops.h): y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 (the exact-erf GELU, as
 * torch.nn.functional.gelu). nl_unary(NL_U_GELU) keeps the libm reference (erff through double) for tests.
 *
 * f32 uses a vectorisable erf (Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7 — the formula PyTorch's vectorised
 * CPU erf uses) with a polynomial exp (range reduction to [-ln2/2, ln2/2], degree-6 Taylor, relative error
 * ~2e-7), written with GCC vector extensions (8 floats) so they vectorise without fast-math. When a gradient will be
 * needed, forward saves the derivative dy/dx = Phi(x) + x phi(x), whose exp(-x^2/2) is the one erf already computed,
 * so backward is one multiply per element (no exp); without one it saves nothing. f64 uses libm erf/exp (exact; the
 * gradient checks run in f64). */
#include "nnlab/extend.h"
#include "nnlab/ops.h"
#include "internal/gelu.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float exp_poly(float x) {
    /* exp(x) for x in [-87, 88]: x = n ln2 + r */
    const float x0 = x;
    x = x >= -87.0f ? (x <= 88.0f ? x : 88.0f) : -87.0f; /* NaN -> -87: the float -> int conversion below stays defined */
    const float log2e = 1.44269504088896341f, ln2hi = 0.693359375f, ln2lo = -2.12194440e-4f;
    float n = floorf(x * log2e + 0.5f);
    float r = x - n * ln2hi - n * ln2lo;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    union { int32_t i; float f; } u;   /* 2^n through the exponent bits (a union vectorises, memcpy does not) */
    u.i = (int32_t)((uint32_t)((int32_t)n + 127) << 23);
    return x0 == x0 ? p * u.f : x0;
}

/* Phi(x) = (1 + erf(x / sqrt2)) / 2; *g = exp(-x^2 / 2) */
static inline float phi_cdf_g(float x, float *g) {
    const float z = x * 0.70710678118654752f;
    const float az = fabsf(z);
    const float t = 1.0f / (1.0f + 0.3275911f * az);
    const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    *g = exp_poly(-az * az);
    const float e = 1.0f - poly * *g;
    return 0.5f * (1.0f + (z < 0 ? -e : e));
}

static inline float phi_cdf(float x) {
    float g;
    return phi_cdf_g(x, &g);
}

/* 8-wide versions with GCC vector extensions (plain C: the compiler picks AVX2/AVX-512/SSE halves). */
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));

static inline vf8 vsel(vi8 m, vf8 a, vf8 b) { return (vf8)(((vi8)a & m) | ((vi8)b & ~m)); }

static inline vf8 vexp(vf8 x) {
    const vf8 lo = {-87, -87, -87, -87, -87, -87, -87, -87}, hi = {88, 88, 88, 88, 88, 88, 88, 88};
    const vf8 x0 = x;
    x = vsel(x >= lo, x, lo); /* NaN -> lo, so the float -> int conversion below is defined */
    x = vsel(x > hi, hi, x);
    vf8 y = x * 1.44269504088896341f + 0.5f;
    vi8 ni = __builtin_convertvector(y, vi8);        /* truncation; fix to floor below */
    vf8 nf = __builtin_convertvector(ni, vf8);
    ni += (vi8)(nf > y);                             /* mask is -1 where truncation went up */
    nf = __builtin_convertvector(ni, vf8);
    vf8 r = x - nf * 0.693359375f - nf * -2.12194440e-4f;
    vf8 p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    typedef uint32_t vu8 __attribute__((vector_size(32)));
    const vf8 e = p * (vf8)((vu8)(ni + 127) << 23); /* unsigned shift: never a shift of a negative value */
    return vsel(x0 == x0, e, x0);                   /* NaN in, NaN out */
}

/* Phi(x); *g = exp(-z^2) = exp(-x^2 / 2), the Gaussian factor of phi(x) (computed once for both) */
static inline vf8 vphi_cdf_g(vf8 x, vf8 *g) {
    const vi8 sign = {INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN};
    vf8 z = x * 0.70710678118654752f;
    vf8 az = (vf8)((vi8)z & ~sign);
    vf8 t = 1.0f / (1.0f + 0.3275911f * az);
    vf8 poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    *g = vexp(-az * az);
    vf8 e = 1.0f - poly * *g;
    e = (vf8)((vi8)e | ((vi8)z & sign));            /* copysign(e, z) */
    return 0.5f * (1.0f + e);
}

static inline vf8 vphi_cdf(vf8 x) {
    vf8 g;
    return vphi_cdf_g(x, &g);
}

/* o = x Phi(x) and dydx = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi) */
static void fwd_kernel(const float *a, float *o, float *dydx, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vf8 x, g;
        __builtin_memcpy(&x, a + i, sizeof x);
        const vf8 p = vphi_cdf_g(x, &g);
        const vf8 y = x * p, d = p + x * (0.39894228040143268f * g);
        __builtin_memcpy(dydx + i, &d, sizeof d);
        __builtin_memcpy(o + i, &y, sizeof y);
    }
    for (; i < n; i++) {
        float g;
        const float p = phi_cdf_g(a[i], &g);
        dydx[i] = p + a[i] * (0.39894228040143268f * g);
        o[i] = a[i] * p;
    }
}

void nl_gelu_f32(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vf8 v;
        __builtin_memcpy(&v, x + i, sizeof v);
        v = v * vphi_cdf(v);
        __builtin_memcpy(y + i, &v, sizeof v);
    }
    for (; i < n; i++) y[i] = x[i] * phi_cdf(x[i]);
}

/* d += g * dydx, or d = g * dydx when store (a fresh gradient, nl_grad_w: the same values as adding to 0). */
static void bwd_kernel(const float *g, const float *dydx, float *d, int64_t n, int store) {
    if (store)
        for (int64_t i = 0; i < n; i++) d[i] = g[i] * dydx[i];
    else
        for (int64_t i = 0; i < n; i++) d[i] += g[i] * dydx[i];
}

#define GELU_CHUNK 16384

typedef struct { void *dydx; } gelu_saved;   /* (numel) the derivative at each x */

static void gelu_backward(nl_ctx *c, nl_node *n) {
    int fresh = 0;
    nl_tensor *gx = n->in[0]->val.dtype == NL_F32 ? nl_grad_w(c, n->in[0], &fresh) : nl_grad(c, n->in[0]);
    if (!gx) return;
    const nl_tensor *go = nl_node_grad_out(n);
    const gelu_saved *s = n->saved;
    const int64_t N = nl_tensor_numel(go);
    if (go->dtype == NL_F32) {
        const float *g = go->data, *dydx = s->dydx;
        float *d = gx->data;
        const int64_t nch = (N + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(static) if (N > 4 * GELU_CHUNK)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t i0 = ch * GELU_CHUNK, len = N - i0 < GELU_CHUNK ? N - i0 : GELU_CHUNK;
            bwd_kernel(g + i0, dydx + i0, d + i0, len, fresh);
        }
    } else {
        const double *g = go->data, *dydx = s->dydx;
        double *d = gx->data;
        for (int64_t i = 0; i < N; i++) d[i] += g[i] * dydx[i];
    }
}

nl_var *nl__gelu_fast(nl_ctx *c, nl_var *x) {
    NL_REQUIRE(x);
    if (!nl_tensor_is_contiguous(&x->val)) x = nl_contiguous(c, x);
    NL_REQUIRE(x);
    const int64_t N = nl_tensor_numel(&x->val);
    nl_var *y = nl_op_out(c, x->val.dtype, x->val.ndim, x->val.shape);
    if (!y) return NULL;
    const int need_grad = c->grad_enabled && x->requires_grad;
    gelu_saved *s = NULL;
    if (need_grad) {
        s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->dydx = nl_scratch(c, (size_t)N * nl_dtype_size(x->val.dtype));
        if (!s->dydx) return NULL;
    }
    if (x->val.dtype == NL_F32) {
        const float *a = x->val.data;
        float *o = y->val.data, *dydx = need_grad ? s->dydx : NULL;
        const int64_t nch = (N + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(static) if (N > 4 * GELU_CHUNK)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t i0 = ch * GELU_CHUNK, len = N - i0 < GELU_CHUNK ? N - i0 : GELU_CHUNK;
            if (dydx) fwd_kernel(a + i0, o + i0, dydx + i0, len);
            else nl_gelu_f32(a + i0, o + i0, len);
        }
    } else {
        const double *a = x->val.data;
        double *o = y->val.data, *dydx = need_grad ? s->dydx : NULL;
        for (int64_t i = 0; i < N; i++) {
            const double cdf = 0.5 * (1.0 + erf(a[i] * 0.70710678118654752));
            o[i] = a[i] * cdf;
            if (dydx) dydx[i] = cdf + a[i] * (0.39894228040143268 * exp(-0.5 * a[i] * a[i]));
        }
    }
    if (!need_grad) return y;
    nl_node *nd = nl_op_record(c, "gelu", y, gelu_backward, 1, &x);
    if (nd) nd->saved = s;
    return y;
}
