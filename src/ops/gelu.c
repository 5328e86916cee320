/* The f32 path of nl_gelu (ops.h): y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 (the exact-erf GELU, as
 * torch.nn.functional.gelu). nl_unary(NL_U_GELU) keeps the libm reference (erff through double) for tests.
 *
 * f32 uses a vectorisable erf (Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7 — the formula PyTorch's vectorised
 * CPU erf uses) with a polynomial exp (range reduction to [-ln2/2, ln2/2], degree-6 Taylor, relative error
 * ~2e-7), written with GCC vector extensions (8 floats) so they vectorise without fast-math. Forward saves
 * Phi(x) so that backward, dy/dx = Phi(x) + x phi(x), needs one exp per element. f64 uses libm erf/exp (exact; the
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

/* Phi(x) = (1 + erf(x / sqrt2)) / 2 */
static inline float phi_cdf(float x) {
    const float z = x * 0.70710678118654752f;
    const float az = fabsf(z);
    const float t = 1.0f / (1.0f + 0.3275911f * az);
    const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    const float e = 1.0f - poly * exp_poly(-az * az);
    return 0.5f * (1.0f + (z < 0 ? -e : e));
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

static inline vf8 vphi_cdf(vf8 x) {
    const vi8 sign = {INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN};
    vf8 z = x * 0.70710678118654752f;
    vf8 az = (vf8)((vi8)z & ~sign);
    vf8 t = 1.0f / (1.0f + 0.3275911f * az);
    vf8 poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    vf8 e = 1.0f - poly * vexp(-az * az);
    e = (vf8)((vi8)e | ((vi8)z & sign));            /* copysign(e, z) */
    return 0.5f * (1.0f + e);
}

static void fwd_kernel(const float *a, float *o, float *cdf, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vf8 x, p;
        __builtin_memcpy(&x, a + i, sizeof x);
        p = vphi_cdf(x);
        vf8 y = x * p;
        __builtin_memcpy(cdf + i, &p, sizeof p);
        __builtin_memcpy(o + i, &y, sizeof y);
    }
    for (; i < n; i++) {
        const float p = phi_cdf(a[i]);
        cdf[i] = p;
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

/* d += g * dy/dx, or d = g * dy/dx when store (a fresh gradient, nl_grad_w: the same values as adding to 0). */
static void bwd_kernel(const float *x, const float *g, const float *cdf, float *d, int64_t n, int store) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vf8 xv, gv, cv, dv;
        __builtin_memcpy(&xv, x + i, sizeof xv);
        __builtin_memcpy(&gv, g + i, sizeof gv);
        __builtin_memcpy(&cv, cdf + i, sizeof cv);
        vf8 pdf = 0.39894228040143268f * vexp(-0.5f * xv * xv);
        if (store) dv = gv * (cv + xv * pdf);
        else {
            __builtin_memcpy(&dv, d + i, sizeof dv);
            dv += gv * (cv + xv * pdf);
        }
        __builtin_memcpy(d + i, &dv, sizeof dv);
    }
    for (; i < n; i++) {
        const float pdf = 0.39894228040143268f * exp_poly(-0.5f * x[i] * x[i]);
        if (store) d[i] = g[i] * (cdf[i] + x[i] * pdf);
        else d[i] += g[i] * (cdf[i] + x[i] * pdf);
    }
}

#define GELU_CHUNK 16384

typedef struct { void *cdf; } gelu_saved;

static void gelu_backward(nl_ctx *c, nl_node *n) {
    int fresh = 0;
    nl_tensor *gx = n->in[0]->val.dtype == NL_F32 ? nl_grad_w(c, n->in[0], &fresh) : nl_grad(c, n->in[0]);
    if (!gx) return;
    const nl_tensor *go = nl_node_grad_out(n);
    const gelu_saved *s = n->saved;
    const int64_t N = nl_tensor_numel(go);
    const nl_tensor X = n->in[0]->val; /* contiguous (checked in forward) */
    if (go->dtype == NL_F32) {
        const float *x = X.data, *g = go->data, *cdf = s->cdf;
        float *d = gx->data;
        const int64_t nch = (N + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(static) if (N > 4 * GELU_CHUNK)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t i0 = ch * GELU_CHUNK, len = N - i0 < GELU_CHUNK ? N - i0 : GELU_CHUNK;
            bwd_kernel(x + i0, g + i0, cdf + i0, d + i0, len, fresh);
        }
    } else {
        const double *x = X.data, *g = go->data, *cdf = s->cdf;
        double *d = gx->data;
        for (int64_t i = 0; i < N; i++) {
            const double pdf = 0.39894228040143268 * exp(-0.5 * x[i] * x[i]);
            d[i] += g[i] * (cdf[i] + x[i] * pdf);
        }
    }
}

nl_var *nl__gelu_fast(nl_ctx *c, nl_var *x) {
    NL_REQUIRE(x);
    if (!nl_tensor_is_contiguous(&x->val)) x = nl_contiguous(c, x);
    NL_REQUIRE(x);
    const int64_t N = nl_tensor_numel(&x->val);
    nl_var *y = nl_op_out(c, x->val.dtype, x->val.ndim, x->val.shape);
    gelu_saved *s = nl_scratch(c, sizeof *s);
    if (!y || !s) return NULL;
    s->cdf = nl_scratch(c, (size_t)N * nl_dtype_size(x->val.dtype));
    if (!s->cdf) return NULL;
    if (x->val.dtype == NL_F32) {
        const float *a = x->val.data;
        float *o = y->val.data, *cdf = s->cdf;
        const int64_t nch = (N + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(static) if (N > 4 * GELU_CHUNK)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t i0 = ch * GELU_CHUNK, len = N - i0 < GELU_CHUNK ? N - i0 : GELU_CHUNK;
            fwd_kernel(a + i0, o + i0, cdf + i0, len);
        }
    } else {
        const double *a = x->val.data;
        double *o = y->val.data, *cdf = s->cdf;
        for (int64_t i = 0; i < N; i++) {
            cdf[i] = 0.5 * (1.0 + erf(a[i] * 0.70710678118654752));
            o[i] = a[i] * cdf[i];
        }
    }
    nl_node *nd = nl_op_record(c, "gelu", y, gelu_backward, 1, &x);
    if (nd) nd->saved = s;
    return y;
}
