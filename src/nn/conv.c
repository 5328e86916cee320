/* 2-D convolution by im2col + GEMM (f32 and f64).
 *
 * The batch is cut into chunks of m images (K = C*KH*KW, P = OH*OW):
 *   forward:  P >= NL_CONV_IMG_P (or m = 1): image by image, col [K, P] = im2col(x_i) (still in cache) and one
 *             GEMM straight into out_i [O, P] (bias preloaded, beta = 1: no staging, no scatter, no BLAS zero
 *             pass). Smaller images: col [K, m*P] for the chunk, one GEMM into staging Y [O, m*P], then
 *             out chunk [m, O, P] = Y + bias. A 1x1 stride-1 pad-0 conv has no im2col (the GEMM reads x).
 *   backward: db = sum of dY over images and pixels. Without the transposed pass below (or when dX is not
 *             wanted): dW += dY col^T (col recomputed from the saved input; per image reading dY in place, or
 *             over the chunk with dY gathered into [O, m*P] for small images).
 *             dX, stride 1 and square kernel with pad <= KH-1: the transposed convolution dX = conv(dY, W',
 *             pad KH-1-pad), W' [C, O, KH, KW] the flipped, transposed weight, run as a second forward pass
 *             that writes a fresh gradient (nl_grad_w: no zero fill) or adds to it (beta = 1). Its GEMM has
 *             inner dimension O*KH*KW (dcol = W^T dY has only O) and writes C*P values instead of K*P.
 *             dW then comes from the same pass: G [O*KK, C] += col(dY_i) x_i^T per image (G per thread and
 *             summed in thread order, like dW), dW [o, c, k] += G [o*KK + KK-1-k, c]; no im2col of x at all.
 *             Otherwise dcol [K, m*P] = W^T dY; dX (+)= col2im(dcol).
 * im2col / col2im go through a zero-padded stack copy of each (image, channel) plane when it has at most
 * NL_CONV_PADBUF elements: rows are then branch-free copies, with fixed-width loops for OW = 4, 8, 14, 16, 28, 32
 * (stride 1) and 4, 8, 16 (stride 2); larger planes take the generic row loops with edge handling.
 * Measured at 1 thread (docs/performance.md, "conv2d"): the UNet training step of bench_diffusion_vs_torch
 * 1.7x less CPU than the staging / gather / col2im version; per-image GEMMs beat the staged GEMM at P = 64
 * and lose at P = 16; the transposed-conv dX beat dcol + col2im on every stride-1 bench case.
 * A chunk holds about 1024 GEMM columns (ceil(1024 / P) images), fewer when that leaves threads idle, and
 * its col buffer never exceeds NL_CONV_COL_BYTES unless one image needs more.
 *
 * Parallelism: with at least as many chunks as threads (or small chunks) and >= 1e6 flops in all, chunks run
 * in an OpenMP loop, each thread with its own col / staging buffers and single-threaded OpenBLAS (its thread
 * count is set to 1 for the region and restored after, so at most T threads run); dW is accumulated per
 * thread and summed in thread order afterwards (static schedule: deterministic for a given thread count).
 * Otherwise (one chunk, or few large ones) chunks run one after another with multithreaded BLAS and im2col /
 * col2im parallel over (image, channel) planes. Alternating OpenMP loops and multithreaded BLAS chunk after
 * chunk was measured 1.5-3x slower on a busy 2-core machine (one pool's threads spin while the other needs
 * the cores). Scratch comes from the context arena. */
#ifndef NL_CONV_TPL
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

/* Upper bound for the im2col buffer of one chunk (bytes), and for all threads' buffers together in the
 * parallel path. */
#define NL_CONV_COL_BYTES ((size_t)32 << 20)
#define NL_CONV_SCRATCH_BYTES ((size_t)64 << 20)
/* Planes of at most this many padded elements are im2col'ed through a stack copy (32 KB f32, 64 KB f64). */
#define NL_CONV_PADBUF 8192
/* Keep short row copies / zero fills inline: GCC would otherwise turn each into a memcpy / memset call, which
 * costs more than the copy for rows of 4-16 elements. */
#if defined(__GNUC__) && !defined(__clang__)
#define NL_CONV_INLINE_COPIES __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NL_CONV_INLINE_COPIES
#endif
/* Target GEMM columns per chunk. */
#define NL_CONV_COLS 1024
/* Images of at least this many output pixels get one GEMM each, written / read in place (no staging). */
#define NL_CONV_IMG_P 64

typedef struct {
    int64_t N, C, H, W, O, KH, KW, OH, OW, stride, pad;
} conv_geom;

/* What a chunk computes: forward (x -> out) or backward (gy -> gx, gw). */
typedef struct {
    const conv_geom *g;
    const void *x, *w, *b;  /* contiguous input, weight, bias (or NULL) */
    void *out;              /* forward output */
    const void *gy;         /* backward: output gradient */
    void *gx, *gw;          /* backward: gradients to accumulate into (NULL = not wanted) */
    int64_t nb;             /* images per chunk */
    int inner_par;          /* im2col / col2im may open their own parallel loops */
    int accum;              /* forward: out += conv (no bias) instead of out = conv */
    const void *xw;         /* forward of the transposed conv: the original input [N, O, P] (O, P of this pass) */
    void *gwt;              /* ... and G [K, O] += col x^T (the original dW, flipped), or NULL */
    int gx_fresh;           /* backward: gx is uninitialised (nl_grad_w), so written, not added to */
} conv_args;

#define NL_CONV_TPL 1
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
#undef NL_CONV_TPL

typedef struct {
    nl_tensor x, w;   /* contiguous input [N,C,H,W] and weight [O,C,KH,KW] as used in forward */
    conv_geom g;
} conv_saved;

/* Run all chunks of a forward (bwd = 0) or backward (bwd = 1) pass; NL_ENOMEM (error set) if scratch fails. */
static nl_status conv_run(nl_ctx *c, conv_args *a, nl_dtype dt, int bwd) {
    const conv_geom *g = a->g;
    const int64_t K = g->C * g->KH * g->KW, P = g->OH * g->OW, O = g->O, N = g->N;
    const size_t es = nl_dtype_size(dt);
    if (N == 0 || P == 0) return NL_OK;
    const int nth = nl_get_num_threads();
    /* images per chunk: ~NL_CONV_COLS GEMM columns, capped by the col byte bound; for the parallel path also
     * at most ceil(N / threads) so that every thread gets a chunk when N allows */
    const size_t col_img = (size_t)(K * P) * es;
    int64_t nb = (NL_CONV_COLS + P - 1) / P;
    if ((size_t)nb * col_img > NL_CONV_COL_BYTES) nb = (int64_t)(NL_CONV_COL_BYTES / col_img);
    if (nb < 1) nb = 1;
    if (nb > N) nb = N;
    int64_t nbp = nb;
    if (nth > 1 && (N + nth - 1) / nth < nbp) nbp = (N + nth - 1) / nth;
    void *const dwt = bwd ? a->gw : a->gwt; /* dW (backward) or G (transposed forward) accumulator */
    const int priv_dw = dwt != NULL;
    /* per-thread scratch (elements): col, staging (multi-image chunks), private dW (parallel backward) */
    const int64_t nchp = (N + nbp - 1) / nbp;
    const size_t perp = (size_t)(K * nbp * P) + (nbp > 1 ? (size_t)(O * nbp * P) : 0) + (priv_dw ? (size_t)(O * K) : 0);
    const double chunk_flops = 2.0 * (double)(O * K) * (double)(nbp * P);
    const int par = nth > 1 && nchp > 1 && (double)nchp * chunk_flops >= 1e6 && (nchp >= nth || chunk_flops < 4e7) &&
                    (size_t)nth * perp * es <= NL_CONV_SCRATCH_BYTES;
    if (par) nb = nbp;
    a->nb = nb;
    const int64_t nchunks = (N + nb - 1) / nb;
    const size_t per = par ? perp : (size_t)(K * nb * P) + (nb > 1 ? (size_t)(O * nb * P) : 0);
    char *scr = nl_scratch(c, (size_t)(par ? nth : 1) * per * es);
    if (!scr) return NL_ENOMEM;
    const int f32 = dt == NL_F32;
    if (!par) {
        a->inner_par = 1;
        for (int64_t ci = 0; ci < nchunks; ci++) {
            if (!bwd) { if (f32) conv_fwd_chunk_f32(a, ci, scr, dwt); else conv_fwd_chunk_f64(a, ci, scr, dwt); }
            else { if (f32) conv_bwd_chunk_f32(a, ci, scr, a->gw); else conv_bwd_chunk_f64(a, ci, scr, a->gw); }
        }
        return NL_OK;
    }
    a->inner_par = 0;
    const size_t dw_off = (size_t)(K * nb * P) + (nb > 1 ? (size_t)(O * nb * P) : 0);
    const int blas_saved = nl_blas_serial_begin();
#pragma omp parallel num_threads(nth)
    {
        char *my = scr + (size_t)omp_get_thread_num() * per * es;
        void *dwp = priv_dw ? my + dw_off * es : NULL;
        if (dwp) memset(dwp, 0, (size_t)(O * K) * es);
#pragma omp for schedule(static)
        for (int64_t ci = 0; ci < nchunks; ci++) {
            if (!bwd) { if (f32) conv_fwd_chunk_f32(a, ci, my, dwp); else conv_fwd_chunk_f64(a, ci, my, dwp); }
            else { if (f32) conv_bwd_chunk_f32(a, ci, my, dwp); else conv_bwd_chunk_f64(a, ci, my, dwp); }
        }
    }
    nl_blas_serial_end(blas_saved);
    if (priv_dw) { /* gw += sum over threads, in thread order */
        if (f32) dw_reduce_f32(dwt, scr, nth, per, dw_off, O * K);
        else dw_reduce_f64(dwt, scr, nth, per, dw_off, O * K);
    }
    return NL_OK;
}

static void conv_backward(nl_ctx *c, nl_node *n) {
    conv_saved *s = n->saved;
    const nl_tensor *gy = nl_node_grad_out(n);
    int fresh = 0;
    nl_tensor *gx = nl_grad_w(c, n->in[0], &fresh), *gw = nl_grad(c, n->in[1]);
    nl_tensor *gb = n->n_in > 2 ? nl_grad(c, n->in[2]) : NULL;
    const conv_geom *g = &s->g;
    nl_dtype dt = gy->dtype;
    if (gb) {
        if (dt == NL_F32) bias_grad_f32(g, gy->data, gb->data);
        else bias_grad_f64(g, gy->data, gb->data);
    }
    if (!gx && !gw) return;
    /* dX as a transposed convolution (stride 1, square kernel, pad <= KH - 1); dW then comes from the same pass:
     * G [O*KK, C] = sum over images of col(dY) x^T, dW [o, c, k] = G [o*KK + KK-1-k, c] (no im2col of x) */
    const int tconv = gx && g->stride == 1 && g->KH == g->KW && g->pad <= g->KH - 1;
    const int wt = tconv && gw;
    conv_args a;
    memset(&a, 0, sizeof a);
    a.g = g; a.x = s->x.data; a.w = s->w.data; a.gy = gy->data;
    a.gx = gx && !tconv ? gx->data : NULL;
    a.gx_fresh = fresh;
    a.gw = gw && !wt ? gw->data : NULL;
    if ((a.gx || a.gw) && conv_run(c, &a, dt, 1) != NL_OK) return;
    if (!tconv) return;
    const int64_t O = g->O, C = g->C, KK = g->KH * g->KW;
    const size_t es = nl_dtype_size(dt);
    void *wf = nl_scratch(c, (size_t)(O * C * KK) * es); /* W' [C, O, KH, KW] */
    void *G = wt ? nl_scratch(c, (size_t)(O * C * KK) * es) : NULL; /* [O*KK, C] */
    if (!wf || (wt && !G)) return;
    if (G) memset(G, 0, (size_t)(O * C * KK) * es);
    if (dt == NL_F32) wflip_f32(s->w.data, O, C, KK, wf);
    else wflip_f64(s->w.data, O, C, KK, wf);
    conv_geom t = *g; /* dY [N, O, OH, OW] -> dX [N, C, H, W] */
    t.C = g->O; t.H = g->OH; t.W = g->OW; t.O = g->C; t.OH = g->H; t.OW = g->W; t.pad = g->KH - 1 - g->pad;
    memset(&a, 0, sizeof a);
    a.g = &t; a.x = gy->data; a.w = wf; a.out = gx->data; a.accum = !fresh;
    a.xw = s->x.data; a.gwt = G;
    if (conv_run(c, &a, dt, 0) != NL_OK || !G) return;
    if (dt == NL_F32) gunflip_f32(G, O, C, KK, gw->data);
    else gunflip_f64(G, O, C, KK, gw->data);
}

nl_var *nl_conv2d(nl_ctx *c, nl_var *x, nl_var *w, nl_var *b, int stride, int pad) {
    NL_REQUIRE(x, w);
    char what[256];
    if (x->val.dtype != w->val.dtype || (b && b->val.dtype != x->val.dtype))
        return nl_op_fail(NL_EDTYPE, "conv2d", "mixed dtypes", x, b && b->val.dtype != x->val.dtype ? b : w);
    if (x->val.ndim != 4 || w->val.ndim != 4)
        return nl_op_fail(NL_ESHAPE, "conv2d", "x must be [N,C,H,W] and w [O,C,KH,KW]", x, w);
    if (stride < 1 || pad < 0) {
        snprintf(what, sizeof what, "stride must be >= 1 and pad >= 0 (got stride %d, pad %d)", stride, pad);
        return nl_op_fail(NL_EINVAL, "conv2d", what, x, w);
    }
    conv_geom g;
    g.N = x->val.shape[0]; g.C = x->val.shape[1]; g.H = x->val.shape[2]; g.W = x->val.shape[3];
    g.O = w->val.shape[0]; g.KH = w->val.shape[2]; g.KW = w->val.shape[3];
    g.stride = stride; g.pad = pad;
    if (w->val.shape[1] != g.C) {
        snprintf(what, sizeof what, "channels differ (x has C=%lld, w expects %lld)", (long long)g.C, (long long)w->val.shape[1]);
        return nl_op_fail(NL_ESHAPE, "conv2d", what, x, w);
    }
    if (g.KH < 1 || g.KW < 1 || g.O < 1 || g.C < 1)
        return nl_op_fail(NL_ESHAPE, "conv2d", "kernel, channel and output-channel sizes must be positive", x, w);
    if (g.KH > g.H + 2 * g.pad || g.KW > g.W + 2 * g.pad) {
        snprintf(what, sizeof what, "kernel %lldx%lld larger than the padded input %lldx%lld (pad %d)", (long long)g.KH,
                 (long long)g.KW, (long long)(g.H + 2 * g.pad), (long long)(g.W + 2 * g.pad), pad);
        return nl_op_fail(NL_ESHAPE, "conv2d", what, x, w);
    }
    if (b && (b->val.ndim != 1 || b->val.shape[0] != g.O))
        return nl_op_fail(NL_ESHAPE, "conv2d", "bias must be [O] with O = w.shape[0]", b, w);
    g.OH = (g.H + 2 * g.pad - g.KH) / g.stride + 1;
    g.OW = (g.W + 2 * g.pad - g.KW) / g.stride + 1;

    nl_dtype dt = x->val.dtype;
    nl_tensor X = nl_contig(c, &x->val), Wt = nl_contig(c, &w->val);
    nl_tensor Bt = b ? nl_contig(c, &b->val) : X;
    if (!X.data || !Wt.data || !Bt.data) return NULL;
    int64_t oshape[4] = {g.N, g.O, g.OH, g.OW};
    nl_var *out = nl_op_out(c, dt, 4, oshape);
    if (!out) return NULL;
    conv_args a;
    memset(&a, 0, sizeof a);
    a.g = &g; a.x = X.data; a.w = Wt.data; a.b = b ? Bt.data : NULL; a.out = out->val.data;
    if (conv_run(c, &a, dt, 0) != NL_OK) return NULL;
    nl_var *in[3] = {x, w, b};
    nl_node *n = nl_op_record(c, "conv2d", out, conv_backward, b ? 3 : 2, in);
    if (n) {
        conv_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->x = X; s->w = Wt; s->g = g;
        n->saved = s;
    }
    return out;
}

#else /* ---------------- typed kernels (T = float / double) ---------------- */

#define CONV_CAT2(a, b) a##_##b
#define CONV_CAT(a, b) CONV_CAT2(a, b)
#define FN(name) CONV_CAT(name, SFX)

/* Output columns [lo, hi) whose input column ow*stride - pad + kw lies inside [0, W). */
static inline void FN(valid_range)(int64_t W, int64_t OW, int64_t stride, int64_t pad, int64_t kw, int64_t *lo, int64_t *hi) {
    int64_t a = pad - kw; /* need ow*stride >= a */
    int64_t l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int64_t bnd = W + pad - kw; /* need ow*stride < bnd */
    int64_t h = bnd <= 0 ? 0 : (bnd + stride - 1) / stride;
    if (h > OW) h = OW;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* im2col through a zero-padded copy of each plane (small planes, Hp*Wp <= NL_CONV_PADBUF): every col row is
 * then a branch-free strided read, copied by inline loops (no memcpy / memset call per row of a small image). */
#define IM2COL_ROWS(CW) \
    for (int64_t oh = 0; oh < OH; oh++, d += (CW), sr += Wp) \
        for (int64_t ow = 0; ow < (CW); ow++) d[ow] = sr[ow]
#define IM2COL_ROWS2(CW) \
    for (int64_t oh = 0; oh < OH; oh++, d += (CW), sr += 2 * Wp) \
        for (int64_t ow = 0; ow < (CW); ow++) d[ow] = sr[2 * ow]
static NL_CONV_INLINE_COPIES void FN(im2col_padded)(const conv_geom *g, const T *x, int64_t m, T *col, int par) {
    const int64_t C = g->C, H = g->H, W = g->W, KH = g->KH, KW = g->KW, OH = g->OH, OW = g->OW;
    const int64_t s = g->stride, p = g->pad, P = OH * OW, ld = m * P, Hp = H + 2 * p, Wp = W + 2 * p;
    const int64_t planes = m * C;
#pragma omp parallel for schedule(static) if (par && planes > 1 && planes * KH * KW * P > 32768)
    for (int64_t pc = 0; pc < planes; pc++) {
        T buf[NL_CONV_PADBUF]; /* [Hp, Wp] */
        const int64_t i = pc / C, ch = pc % C;
        const T *xp = x + (i * C + ch) * H * W, *src = xp;
        if (p > 0) {
            for (int64_t r = 0; r < Hp; r++) {
                T *br = buf + r * Wp;
                const int64_t ih = r - p;
                if (ih < 0 || ih >= H) {
                    for (int64_t j = 0; j < Wp; j++) br[j] = 0;
                    continue;
                }
                const T *xr = xp + ih * W;
                for (int64_t j = 0; j < p; j++) br[j] = 0;
                for (int64_t j = 0; j < W; j++) br[p + j] = xr[j];
                for (int64_t j = p + W; j < Wp; j++) br[j] = 0;
            }
            src = buf;
        }
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                T *d = col + ((ch * KH + kh) * KW + kw) * ld + i * P;
                const T *sr = src + kh * Wp + kw;
                if (s == 1) {
                    switch (OW) { /* fixed widths compile to straight vector copies */
                    case 4: IM2COL_ROWS(4); break;
                    case 8: IM2COL_ROWS(8); break;
                    case 14: IM2COL_ROWS(14); break;
                    case 16: IM2COL_ROWS(16); break;
                    case 28: IM2COL_ROWS(28); break;
                    case 32: IM2COL_ROWS(32); break;
                    default: IM2COL_ROWS(OW); break;
                    }
                } else if (s == 2) {
                    switch (OW) {
                    case 4: IM2COL_ROWS2(4); break;
                    case 8: IM2COL_ROWS2(8); break;
                    case 16: IM2COL_ROWS2(16); break;
                    default: IM2COL_ROWS2(OW); break;
                    }
                } else {
                    for (int64_t oh = 0; oh < OH; oh++, d += OW, sr += s * Wp)
                        for (int64_t ow = 0; ow < OW; ow++) d[ow] = sr[ow * s];
                }
            }
    }
}

#undef IM2COL_ROWS
#undef IM2COL_ROWS2

/* col [K, m*P] (row (c*KH + kh)*KW + kw, column i*P + oh*OW + ow) from images x[0..m) [C,H,W]. */
static void FN(im2col)(const conv_geom *g, const T *x, int64_t m, void *colv, int par) {
    if ((g->H + 2 * g->pad) * (g->W + 2 * g->pad) <= NL_CONV_PADBUF) {
        FN(im2col_padded)(g, x, m, colv, par);
        return;
    }
    T *col = colv;
    const int64_t C = g->C, H = g->H, W = g->W, KH = g->KH, KW = g->KW, OH = g->OH, OW = g->OW;
    const int64_t s = g->stride, p = g->pad, P = OH * OW, ld = m * P;
    const int64_t planes = m * C;
#pragma omp parallel for schedule(static) if (par && planes > 1 && planes * KH * KW * P > 32768)
    for (int64_t pc = 0; pc < planes; pc++) {
        int64_t i = pc / C, ch = pc % C;
        const T *xp = x + (i * C + ch) * H * W;
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                int64_t lo, hi;
                FN(valid_range)(W, OW, s, p, kw, &lo, &hi);
                T *dst = col + ((ch * KH + kh) * KW + kw) * ld + i * P;
                for (int64_t oh = 0; oh < OH; oh++) {
                    T *d = dst + oh * OW;
                    int64_t ih = oh * s - p + kh;
                    if (ih < 0 || ih >= H) {
                        for (int64_t ow = 0; ow < OW; ow++) d[ow] = 0;
                        continue;
                    }
                    const T *xr = xp + ih * W;
                    const int64_t off = kw - p; /* input column = ow*s + off */
                    for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0;
                    if (s == 1) {
                        if (hi > lo) memcpy(d + lo, xr + lo + off, (size_t)(hi - lo) * sizeof(T));
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++) d[ow] = xr[ow * s + off];
                    }
                    for (int64_t ow = hi; ow < OW; ow++) d[ow] = 0;
                }
            }
    }
}

/* col2im of small planes: the taps are summed into a zero-padded stack plane [Hp, Wp] with branch-free loops,
 * whose interior is then written (fresh) or added to dx. */
static NL_CONV_INLINE_COPIES void FN(col2im_padded)(const conv_geom *g, const T *col, int64_t m, T *dx, int fresh, int par) {
    const int64_t C = g->C, H = g->H, W = g->W, KH = g->KH, KW = g->KW, OH = g->OH, OW = g->OW;
    const int64_t s = g->stride, p = g->pad, P = OH * OW, ld = m * P, Hp = H + 2 * p, Wp = W + 2 * p;
    const int64_t planes = m * C;
#pragma omp parallel for schedule(static) if (par && planes > 1 && planes * KH * KW * P > 32768)
    for (int64_t pc = 0; pc < planes; pc++) {
        T buf[NL_CONV_PADBUF]; /* [Hp, Wp] */
        const int64_t i = pc / C, ch = pc % C;
        for (int64_t j = 0; j < Hp * Wp; j++) buf[j] = 0;
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                const T *sr = col + ((ch * KH + kh) * KW + kw) * ld + i * P;
                T *b = buf + kh * Wp + kw;
                for (int64_t oh = 0; oh < OH; oh++, sr += OW, b += s * Wp)
                    for (int64_t ow = 0; ow < OW; ow++) b[ow * s] += sr[ow];
            }
        T *xp = dx + (i * C + ch) * H * W;
        for (int64_t ih = 0; ih < H; ih++) {
            const T *b = buf + (ih + p) * Wp + p;
            T *xr = xp + ih * W;
            if (fresh)
                for (int64_t iw = 0; iw < W; iw++) xr[iw] = b[iw];
            else
                for (int64_t iw = 0; iw < W; iw++) xr[iw] += b[iw];
        }
    }
}

/* dx[0..m) [C,H,W] += col2im(dcol [K, m*P]), or = when fresh (dx uninitialised). Each (image, channel) plane is
 * written by one thread. */
static void FN(col2im)(const conv_geom *g, const void *colv, int64_t m, T *dx, int fresh, int par) {
    const T *col = colv;
    if ((g->H + 2 * g->pad) * (g->W + 2 * g->pad) <= NL_CONV_PADBUF) {
        FN(col2im_padded)(g, col, m, dx, fresh, par);
        return;
    }
    if (fresh) memset(dx, 0, (size_t)(m * g->C * g->H * g->W) * sizeof(T));
    const int64_t C = g->C, H = g->H, W = g->W, KH = g->KH, KW = g->KW, OH = g->OH, OW = g->OW;
    const int64_t s = g->stride, p = g->pad, P = OH * OW, ld = m * P;
    const int64_t planes = m * C;
#pragma omp parallel for schedule(static) if (par && planes > 1 && planes * KH * KW * P > 32768)
    for (int64_t pc = 0; pc < planes; pc++) {
        int64_t i = pc / C, ch = pc % C;
        T *xp = dx + (i * C + ch) * H * W;
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                int64_t lo, hi;
                FN(valid_range)(W, OW, s, p, kw, &lo, &hi);
                const T *src = col + ((ch * KH + kh) * KW + kw) * ld + i * P;
                for (int64_t oh = 0; oh < OH; oh++) {
                    int64_t ih = oh * s - p + kh;
                    if (ih < 0 || ih >= H) continue;
                    const T *sr = src + oh * OW;
                    T *xr = xp + ih * W;
                    const int64_t off = kw - p;
                    if (s == 1)
                        for (int64_t ow = lo; ow < hi; ow++) xr[ow + off] += sr[ow];
                    else
                        for (int64_t ow = lo; ow < hi; ow++) xr[ow * s + off] += sr[ow];
                }
            }
    }
}

/* out rows (O rows of length P, leading dimension ldo, m images) preloaded with the bias. */
static void FN(bias_fill)(const conv_geom *g, const void *bv, int64_t m, int64_t P, void *outv, int64_t ldo) {
    const T *b = bv;
    T *out = outv;
    for (int64_t i = 0; i < m; i++)
        for (int64_t o = 0; o < g->O; o++) {
            T *r = out + (i * g->O + o) * ldo;
            for (int64_t k = 0; k < P; k++) r[k] = b[o];
        }
}

/* 1x1 kernel, stride 1, pad 0: im2col would copy x unchanged. */
static inline int FN(is_direct)(const conv_geom *g) { return g->KH == 1 && g->KW == 1 && g->stride == 1 && g->pad == 0; }

/* out [m, O, P] = Y [O, m*P] (+ bias[o]), or out += Y (accum). */
static void FN(scatter)(const conv_geom *g, const void *yv, int64_t m, const void *bv, void *outv, int accum, int par) {
    const T *y = yv, *b = bv;
    T *out = outv;
    const int64_t O = g->O, P = g->OH * g->OW, ld = m * P;
#pragma omp parallel for schedule(static) if (par && m * O * P > 65536)
    for (int64_t io = 0; io < m * O; io++) {
        int64_t i = io / O, o = io % O;
        const T *src = y + o * ld + i * P;
        T *dst = out + io * P;
        T bo = b ? b[o] : (T)0;
        if (accum)
            for (int64_t k = 0; k < P; k++) dst[k] += src[k];
        else
            for (int64_t k = 0; k < P; k++) dst[k] = src[k] + bo;
    }
}

/* db[o] += sum over images and pixels of gy [N, O, P]. */
static void FN(bias_grad)(const conv_geom *g, const void *gyv, void *gbv) {
    const T *gy = gyv;
    T *gb = gbv;
    const int64_t N = g->N, O = g->O, P = g->OH * g->OW;
#pragma omp parallel for schedule(static) if (O > 1 && N * O * P > 65536)
    for (int64_t o = 0; o < O; o++) {
        T lane[8] = {0, 0, 0, 0, 0, 0, 0, 0}; /* 8 partial sums (vectorised), added in a fixed order */
        T acc = 0;
        for (int64_t i = 0; i < N; i++) {
            const T *r = gy + (i * O + o) * P;
            int64_t k = 0;
            for (; k + 8 <= P; k += 8)
                for (int j = 0; j < 8; j++) lane[j] += r[k + j];
            for (; k < P; k++) acc += r[k];
        }
        for (int j = 0; j < 8; j++) acc += lane[j];
        gb[o] += acc;
    }
}

/* gy chunk [m, O, P] -> dY [O, m*P] */
static void FN(gather)(const conv_geom *g, const T *gy, int64_t m, T *dy) {
    const int64_t O = g->O, P = g->OH * g->OW, ld = m * P;
    for (int64_t i = 0; i < m; i++)
        for (int64_t o = 0; o < O; o++) memcpy(dy + o * ld + i * P, gy + (i * O + o) * P, (size_t)P * sizeof(T));
}

/* Forward of chunk ci. Scratch: col [K, nb*P], staging [O, nb*P]. */
static void FN(conv_fwd_chunk)(const conv_args *a, int64_t ci, void *scr, void *gwt) {
    const conv_geom *g = a->g;
    const int64_t K = g->C * g->KH * g->KW, P = g->OH * g->OW, O = g->O, CHW = g->C * g->H * g->W;
    const int64_t n0 = ci * a->nb, m = g->N - n0 < a->nb ? g->N - n0 : a->nb, ld = m * P;
    const nl_dtype dt = sizeof(T) == 4 ? NL_F32 : NL_F64;
    T *col = scr, *y = col + K * a->nb * P;
    T *oc = (T *)a->out + n0 * O * P;
    const T *xc = (const T *)a->x + n0 * CHW, *xw = a->xw ? (const T *)a->xw + n0 * O * P : NULL;
    if (FN(is_direct)(g)) { /* 1x1, stride 1, pad 0: x [C, P] is the col of its image */
        for (int64_t i = 0; i < m; i++) {
            if (a->b) FN(bias_fill)(g, a->b, 1, P, oc + i * O * P, P);
            nl_gemm(dt, 0, 0, O, P, K, 1.0, a->w, K, xc + i * CHW, P, a->b || a->accum ? 1.0 : 0.0, oc + i * O * P, P);
            if (gwt) nl_gemm(dt, 0, 1, K, O, P, 1.0, xc + i * CHW, P, xw + i * O * P, P, 1.0, gwt, O);
        }
        return;
    }
    if (m == 1 || P >= NL_CONV_IMG_P) { /* image by image: col [K, P] (still in cache), GEMM straight into out [O, P] */
        for (int64_t i = 0; i < m; i++) {
            FN(im2col)(g, xc + i * CHW, 1, col, a->inner_par);
            if (a->b) FN(bias_fill)(g, a->b, 1, P, oc + i * O * P, P);
            nl_gemm(dt, 0, 0, O, P, K, 1.0, a->w, K, col, P, a->b || a->accum ? 1.0 : 0.0, oc + i * O * P, P);
            if (gwt) nl_gemm(dt, 0, 1, K, O, P, 1.0, col, P, xw + i * O * P, P, 1.0, gwt, O);
        }
    } else {
        FN(im2col)(g, xc, m, col, a->inner_par);
        nl_gemm(dt, 0, 0, O, ld, K, 1.0, a->w, K, col, ld, 0.0, y, ld);
        FN(scatter)(g, y, m, a->b, oc, a->accum, a->inner_par);
        for (int64_t i = 0; gwt && i < m; i++) nl_gemm(dt, 0, 1, K, O, P, 1.0, col + i * P, ld, xw + i * O * P, P, 1.0, gwt, O);
    }
}

/* Backward of chunk ci: dW accumulates into dw (the gradient itself or a per-thread buffer), dX into a->gx.
 * Scratch: col [K, nb*P] (also dcol), dY staging [O, nb*P]. */
static void FN(conv_bwd_chunk)(const conv_args *a, int64_t ci, void *scr, void *dw) {
    const conv_geom *g = a->g;
    const int64_t K = g->C * g->KH * g->KW, P = g->OH * g->OW, O = g->O, CHW = g->C * g->H * g->W;
    const int64_t n0 = ci * a->nb, m = g->N - n0 < a->nb ? g->N - n0 : a->nb, ld = m * P;
    const nl_dtype dt = sizeof(T) == 4 ? NL_F32 : NL_F64;
    T *col = scr, *dy = col + K * a->nb * P;
    const T *gyc = (const T *)a->gy + n0 * O * P, *xc = (const T *)a->x + n0 * CHW;
    const int direct = FN(is_direct)(g), per_img = m == 1 || P >= NL_CONV_IMG_P || direct;
    if (dw) { /* dW [O, K] += dY [O, P] col^T [P, K], image by image, or once over the gathered chunk */
        if (per_img) {
            for (int64_t i = 0; i < m; i++) {
                if (!direct) FN(im2col)(g, xc + i * CHW, 1, col, a->inner_par);
                nl_gemm(dt, 0, 1, O, K, P, 1.0, gyc + i * O * P, P, direct ? xc + i * CHW : col, P, 1.0, dw, K);
            }
        } else {
            FN(im2col)(g, xc, m, col, a->inner_par);
            FN(gather)(g, gyc, m, dy);
            nl_gemm(dt, 0, 1, O, K, ld, 1.0, dy, ld, col, ld, 1.0, dw, K);
        }
    }
    if (a->gx) { /* dcol [K, m*P] = W^T [K, O] dY [O, m*P] (per image, or once over the gathered chunk);
                  * dX += col2im(dcol) */
        T *dxc = (T *)a->gx + n0 * CHW;
        if (per_img) {
            for (int64_t i = 0; i < m; i++)
                nl_gemm(dt, 1, 0, K, P, O, 1.0, a->w, K, gyc + i * O * P, P, 0.0, col + i * P, ld);
        } else {
            if (!dw) FN(gather)(g, gyc, m, dy);
            nl_gemm(dt, 1, 0, K, ld, O, 1.0, a->w, K, dy, ld, 0.0, col, ld);
        }
        FN(col2im)(g, col, m, dxc, a->gx_fresh, a->inner_par);
    }
}

/* gw [O, C, KK] += G [O*KK, C] with the taps reversed: gw[o, c, k] += G[o*KK + KK-1-k, c]. */
static void FN(gunflip)(const void *Gv, int64_t O, int64_t C, int64_t KK, void *gwv) {
    const T *G = Gv;
    T *gw = gwv;
    for (int64_t o = 0; o < O; o++)
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t k = 0; k < KK; k++) gw[(o * C + ch) * KK + k] += G[(o * KK + KK - 1 - k) * C + ch];
}

/* w' [C, O, KK] = w [O, C, KK] with the KK = KH*KW taps reversed (the transposed convolution's weight). */
static void FN(wflip)(const void *wv, int64_t O, int64_t C, int64_t KK, void *wfv) {
    const T *w = wv;
    T *wf = wfv;
    for (int64_t o = 0; o < O; o++)
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t k = 0; k < KK; k++) wf[(ch * O + o) * KK + k] = w[(o * C + ch) * KK + (KK - 1 - k)];
}

/* gw [n] += sum over threads t (in order) of the private buffers at scr + (t * per + off) elements. */
static void FN(dw_reduce)(void *gwv, const void *scrv, int nth, size_t per, size_t off, int64_t n) {
    T *gw = gwv;
    const T *scr = scrv;
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) {
        T acc = gw[i];
        for (int t = 0; t < nth; t++) acc += scr[(size_t)t * per + off + (size_t)i];
        gw[i] = acc;
    }
}

#undef FN
#undef CONV_CAT
#undef CONV_CAT2
#endif
