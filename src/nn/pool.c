/* 2-D max and average pooling on [N, C, H, W] (f32 and f64), square window k, stride, zero padding pad.
 *
 * Max pooling ignores the padding (padded cells never win) and records, per output, the plane index of the
 * first maximal element in window order (row-major); backward routes the gradient there. A NaN in a window
 * wins (propagates), as in PyTorch. Average pooling divides by k*k including padded cells (PyTorch's
 * count_include_pad=True default). As in PyTorch, pad <= k/2 is required so every window holds at least one
 * input cell. Work is parallel over (image, channel) planes, which write disjoint memory. */
#ifndef NL_POOL_TPL
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    int64_t planes, H, W, OH, OW, k, stride, pad;
} pool_geom;

#define NL_POOL_TPL 1
#define T float
#define SFX f32
#include __FILE__
#undef T
#undef SFX
#define T double
#define SFX f64
#include __FILE__
#undef T
#undef SFX
#undef NL_POOL_TPL

typedef struct {
    pool_geom g;
    int32_t *arg; /* (planes*OH*OW) plane index of the max, maxpool only */
} pool_saved;

static void maxpool_backward(nl_ctx *c, nl_node *n) {
    pool_saved *s = n->saved;
    nl_tensor *gx = nl_grad(c, n->in[0]);
    if (!gx) return;
    const nl_tensor *gy = nl_node_grad_out(n);
    if (gy->dtype == NL_F32) maxpool_bwd_f32(&s->g, s->arg, gy->data, gx->data);
    else maxpool_bwd_f64(&s->g, s->arg, gy->data, gx->data);
}

static void avgpool_backward(nl_ctx *c, nl_node *n) {
    pool_saved *s = n->saved;
    nl_tensor *gx = nl_grad(c, n->in[0]);
    if (!gx) return;
    const nl_tensor *gy = nl_node_grad_out(n);
    if (gy->dtype == NL_F32) avgpool_bwd_f32(&s->g, gy->data, gx->data);
    else avgpool_bwd_f64(&s->g, gy->data, gx->data);
}

static nl_var *pool(nl_ctx *c, nl_var *x, int k, int stride, int pad, int is_max) {
    NL_REQUIRE(x);
    const char *name = is_max ? "maxpool2d" : "avgpool2d";
    char what[256];
    if (x->val.ndim != 4) return nl_op_fail(NL_ESHAPE, name, "x must be [N,C,H,W]", x, NULL);
    if (k < 1 || stride < 1 || pad < 0 || pad > k / 2) {
        snprintf(what, sizeof what, "need k >= 1, stride >= 1, 0 <= pad <= k/2 (got k %d, stride %d, pad %d)", k, stride, pad);
        return nl_op_fail(NL_EINVAL, name, what, x, NULL);
    }
    pool_geom g;
    g.planes = x->val.shape[0] * x->val.shape[1];
    g.H = x->val.shape[2];
    g.W = x->val.shape[3];
    g.k = k; g.stride = stride; g.pad = pad;
    if (k > g.H + 2 * pad || k > g.W + 2 * pad) {
        snprintf(what, sizeof what, "window %dx%d larger than the padded input %lldx%lld (pad %d)", k, k,
                 (long long)(g.H + 2 * pad), (long long)(g.W + 2 * pad), pad);
        return nl_op_fail(NL_ESHAPE, name, what, x, NULL);
    }
    if (is_max && g.H * g.W > INT32_MAX) return nl_op_fail(NL_ESHAPE, name, "plane too large", x, NULL);
    g.OH = (g.H + 2 * pad - k) / stride + 1;
    g.OW = (g.W + 2 * pad - k) / stride + 1;
    nl_tensor X = nl_contig(c, &x->val);
    if (!X.data) return NULL;
    int64_t oshape[4] = {x->val.shape[0], x->val.shape[1], g.OH, g.OW};
    nl_var *out = nl_op_out(c, X.dtype, 4, oshape);
    if (!out) return NULL;
    int need = c->grad_enabled && x->requires_grad;
    int32_t *arg = NULL;
    if (is_max && need) {
        arg = nl_scratch(c, (size_t)(g.planes * g.OH * g.OW) * sizeof(int32_t));
        if (!arg) return NULL;
    }
    if (is_max) {
        if (X.dtype == NL_F32) maxpool_fwd_f32(&g, X.data, out->val.data, arg);
        else maxpool_fwd_f64(&g, X.data, out->val.data, arg);
    } else {
        if (X.dtype == NL_F32) avgpool_fwd_f32(&g, X.data, out->val.data);
        else avgpool_fwd_f64(&g, X.data, out->val.data);
    }
    nl_var *in[1] = {x};
    nl_node *n = nl_op_record(c, name, out, is_max ? maxpool_backward : avgpool_backward, 1, in);
    if (n) {
        pool_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->g = g;
        s->arg = arg;
        n->saved = s;
    }
    return out;
}

nl_var *nl_maxpool2d(nl_ctx *c, nl_var *x, int k, int stride, int pad) { return pool(c, x, k, stride, pad, 1); }
nl_var *nl_avgpool2d(nl_ctx *c, nl_var *x, int k, int stride, int pad) { return pool(c, x, k, stride, pad, 0); }

#else /* ---------------- typed kernels (T = float / double) ---------------- */

#define POOL_CAT2(a, b) a##_##b
#define POOL_CAT(a, b) POOL_CAT2(a, b)
#define FN(name) POOL_CAT(name, SFX)

/* Window rows/cols of output position o clipped to the input: [lo, hi). */
static inline void FN(win)(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t n, int64_t *lo, int64_t *hi) {
    int64_t a = o * stride - pad, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

/* One step of the window scan: v (at idx) replaces the best so far when larger, or when it is the first NaN. */
#define POOL_TAKE(v, idx)                                            \
    do {                                                             \
        const int take_ = ((v) > best) | (((v) != (v)) & (best == best)); \
        best = take_ ? (v) : best;                                   \
        bi = take_ ? (idx) : bi;                                     \
    } while (0)

/* The common 2x2 stride-2 unpadded case, straight-line: per output row, a NaN-blind pass whose selects compile
 * to max / blend instructions (the scan order and ties as the general loop: strict > keeps the first maximum),
 * then the row is redone by the general scan when it held a NaN (which must win). */
static void FN(maxpool2_fwd)(const pool_geom *g, const T *x, T *y, int32_t *arg) {
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;
#pragma omp parallel for schedule(static) if (g->planes > 1 && g->planes * OH * OW * 4 > 32768)
    for (int64_t pl = 0; pl < g->planes; pl++) {
        const T *xp = x + pl * H * W;
        T *yp = y + pl * OH * OW;
        int32_t *ap = arg ? arg + pl * OH * OW : NULL;
        for (int64_t oh = 0; oh < OH; oh++) {
            const T *r0 = xp + 2 * oh * W, *r1 = r0 + W;
            const int32_t base = (int32_t)(2 * oh * W), w32 = (int32_t)W;
            T *yr = yp + oh * OW;
            int nan = 0;
            for (int64_t ow = 0; ow < OW; ow++) {
                const T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
                const int32_t i0 = base + (int32_t)(2 * ow);
                T best = a;
                int32_t bi = i0;
                int32_t m = -(int32_t)(b > best); /* all ones when b wins: a mask, not a branch */
                bi = (bi & ~m) | ((i0 + 1) & m);
                best = b > best ? b : best;
                m = -(int32_t)(c > best);
                bi = (bi & ~m) | ((i0 + w32) & m);
                best = c > best ? c : best;
                m = -(int32_t)(d > best);
                bi = (bi & ~m) | ((i0 + w32 + 1) & m);
                best = d > best ? d : best;
                nan |= (a != a) | (b != b) | (c != c) | (d != d);
                yr[ow] = best;
                if (ap) ap[oh * OW + ow] = bi;
            }
            if (!nan) continue;
            for (int64_t ow = 0; ow < OW; ow++) { /* the general scan: NaN propagates */
                int64_t bi = 2 * oh * W + 2 * ow;
                T best = xp[bi];
                for (int64_t ih = 2 * oh; ih < 2 * oh + 2; ih++)
                    for (int64_t iw = 2 * ow; iw < 2 * ow + 2; iw++) POOL_TAKE(xp[ih * W + iw], ih * W + iw);
                yr[ow] = best;
                if (ap) ap[oh * OW + ow] = (int32_t)bi;
            }
        }
    }
}

static void FN(maxpool_fwd)(const pool_geom *g, const void *xv, void *yv, int32_t *arg) {
    const T *x = xv;
    T *y = yv;
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    if (g->k == 2 && g->stride == 2 && g->pad == 0) {
        FN(maxpool2_fwd)(g, x, y, arg);
        return;
    }
#pragma omp parallel for schedule(static) if (g->planes > 1 && g->planes * OH * OW * g->k * g->k > 32768)
    for (int64_t pl = 0; pl < g->planes; pl++) {
        const T *xp = x + pl * H * W;
        T *yp = y + pl * OH * OW;
        int32_t *ap = arg ? arg + pl * OH * OW : NULL;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            FN(win)(oh, g->stride, g->pad, g->k, H, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, w1;
                FN(win)(ow, g->stride, g->pad, g->k, W, &w0, &w1);
                int64_t bi = h0 * W + w0;
                T best = xp[bi];
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) POOL_TAKE(xp[ih * W + iw], ih * W + iw);
                yp[oh * OW + ow] = best;
                if (ap) ap[oh * OW + ow] = (int32_t)bi;
            }
        }
    }
}

static void FN(maxpool_bwd)(const pool_geom *g, const int32_t *arg, const void *gyv, void *gxv) {
    const T *gy = gyv;
    T *gx = gxv;
    const int64_t HW = g->H * g->W, P = g->OH * g->OW;
#pragma omp parallel for schedule(static) if (g->planes > 1 && g->planes * P > 65536)
    for (int64_t pl = 0; pl < g->planes; pl++) {
        T *gp = gx + pl * HW;
        const T *yp = gy + pl * P;
        const int32_t *ap = arg + pl * P;
        for (int64_t i = 0; i < P; i++) gp[ap[i]] += yp[i];
    }
}

static void FN(avgpool_fwd)(const pool_geom *g, const void *xv, void *yv) {
    const T *x = xv;
    T *y = yv;
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    const T inv = (T)1 / (T)(g->k * g->k);
#pragma omp parallel for schedule(static) if (g->planes > 1 && g->planes * OH * OW * g->k * g->k > 32768)
    for (int64_t pl = 0; pl < g->planes; pl++) {
        const T *xp = x + pl * H * W;
        T *yp = y + pl * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            FN(win)(oh, g->stride, g->pad, g->k, H, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, w1;
                FN(win)(ow, g->stride, g->pad, g->k, W, &w0, &w1);
                T acc = 0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) acc += xp[ih * W + iw];
                yp[oh * OW + ow] = acc * inv;
            }
        }
    }
}

static void FN(avgpool_bwd)(const pool_geom *g, const void *gyv, void *gxv) {
    const T *gy = gyv;
    T *gx = gxv;
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    const T inv = (T)1 / (T)(g->k * g->k);
#pragma omp parallel for schedule(static) if (g->planes > 1 && g->planes * OH * OW * g->k * g->k > 32768)
    for (int64_t pl = 0; pl < g->planes; pl++) {
        T *xp = gx + pl * H * W;
        const T *yp = gy + pl * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            FN(win)(oh, g->stride, g->pad, g->k, H, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, w1;
                FN(win)(ow, g->stride, g->pad, g->k, W, &w0, &w1);
                T v = yp[oh * OW + ow] * inv;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) xp[ih * W + iw] += v;
            }
        }
    }
}

#undef POOL_TAKE
#undef FN
#undef POOL_CAT
#undef POOL_CAT2
#endif
