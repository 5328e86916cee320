/* conv2d's special paths (src/nn/conv.c) against a direct-loop reference, f32 and f64, values and all three
 * gradients: one GEMM per image (P >= 64) vs the staged multi-image GEMM (P < 64), the 1x1 stride-1 pad-0 path
 * without im2col, dX as a transposed convolution (stride 1, square kernel, pad <= k-1) vs dcol + col2im (stride 2,
 * non-square kernel, 1x1 with pad 1), pad 0/1/2, odd sizes, partial chunks, 1-3 threads; gradients added into an
 * existing (non-fresh) input gradient; only dW or only dX wanted; bit-identical repeats at a fixed thread count;
 * finite differences; stride 2 (dcol + col2im) with pad 0-2, kernels 1x1 to 5x5 (even, non-square), parallel chunks. */
#include "nltest.h"
#include "nnlab/extend.h"
#include "nnlab/gradcheck.h"

typedef struct { int64_t N, C, H, W, O, KH, KW; int stride, pad, bias; } cfg;

static void fill(nl_tensor *t, uint64_t seed) {
    nl_rng r;
    nl_rng_init(&r, seed, 11);
    nl_rng_fill_uniform(&r, t, -1, 1);
}

static nl_tensor mk(nl_dtype dt, int nd, const int64_t *s) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= s[i];
    return nl_tensor_wrap(calloc((size_t)(n ? n : 1), nl_dtype_size(dt)), dt, nd, s);
}

static int64_t odim(int64_t n, int64_t k, int s, int p) { return (n + 2 * p - k) / s + 1; }

/* direct loops in double: y = conv(x, w) + b; dx, dw, db += the gradients for the output gradient gy */
static void ref(const cfg *g, const double *x, const double *w, const double *b, const double *gy, double *y, double *dx,
                double *dw, double *db) {
    const int64_t OH = odim(g->H, g->KH, g->stride, g->pad), OW = odim(g->W, g->KW, g->stride, g->pad);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t o = 0; o < g->O; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    const int64_t yi = ((n * g->O + o) * OH + oh) * OW + ow;
                    double acc = g->bias ? b[o] : 0;
                    for (int64_t c = 0; c < g->C; c++)
                        for (int64_t kh = 0; kh < g->KH; kh++)
                            for (int64_t kw = 0; kw < g->KW; kw++) {
                                const int64_t ih = oh * g->stride - g->pad + kh, iw = ow * g->stride - g->pad + kw;
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                                const int64_t xi = ((n * g->C + c) * g->H + ih) * g->W + iw, wi = ((o * g->C + c) * g->KH + kh) * g->KW + kw;
                                acc += x[xi] * w[wi];
                                dx[xi] += gy[yi] * w[wi];
                                dw[wi] += gy[yi] * x[xi];
                            }
                    y[yi] = acc;
                    db[o] += gy[yi];
                }
}

static double *todbl(const nl_tensor *t) {
    int64_t n = nl_tensor_numel(t);
    double *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = nl_tensor_get(t, i);
    return d;
}

static double maxdiff(const nl_tensor *t, const double *r, double k) {
    double e = 0;
    for (int64_t i = 0; i < nl_tensor_numel(t); i++) e = fmax(e, fabs(nl_tensor_get(t, i) - k * r[i]));
    return e;
}

/* One check. twice: y = conv(x) + conv(x) (same weights), so the second backward adds into x's existing gradient
 * (expected: twice the reference). Returns a copy of all outputs (y, dx, dw, db) for the determinism check. */
static double *check(const cfg *g, nl_dtype dt, uint64_t seed, int twice, double tol) {
    const int64_t OH = odim(g->H, g->KH, g->stride, g->pad), OW = odim(g->W, g->KW, g->stride, g->pad);
    int64_t xs[4] = {g->N, g->C, g->H, g->W}, ws[4] = {g->O, g->C, g->KH, g->KW}, bs[1] = {g->O}, ys[4] = {g->N, g->O, OH, OW};
    nl_tensor xt = mk(dt, 4, xs), wt = mk(dt, 4, ws), bt = mk(dt, 1, bs), st = mk(dt, 4, ys);
    fill(&xt, seed); fill(&wt, seed + 1); fill(&bt, seed + 2); fill(&st, seed + 3);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *x = nl_leaf(c, xt, 1), *w = nl_leaf(c, wt, 1), *b = g->bias ? nl_leaf(c, bt, 1) : NULL;
    nl_var *y = nl_conv2d(c, x, w, b, g->stride, g->pad);
    if (y && twice) y = nl_add(c, y, nl_conv2d(c, x, w, b, g->stride, g->pad));
    NLT_CHECK(y != NULL, "conv failed: %s", nl_last_error());
    const int64_t ny = nl_tensor_numel(&st), nx = nl_tensor_numel(&xt), nw = nl_tensor_numel(&wt);
    double *out = calloc((size_t)(ny + nx + nw + g->O), sizeof *out);
    if (!y) goto done;
    NLT_OK(nl_backward_seed(c, y, &st));
    double *xd = todbl(&xt), *wd = todbl(&wt), *bd = todbl(&bt), *gy = todbl(&st);
    double *yr = calloc((size_t)ny, 8), *dx = calloc((size_t)nx, 8), *dw = calloc((size_t)nw, 8), *db = calloc((size_t)g->O, 8);
    ref(g, xd, wd, bd, gy, yr, dx, dw, db);
    const double k = twice ? 2 : 1, sc = 1 + sqrt((double)(g->N * OH * OW));
    double ey = maxdiff(&y->val, yr, k), ex = maxdiff(&x->grad, dx, k), ew = maxdiff(&w->grad, dw, k);
    double eb = g->bias ? maxdiff(&b->grad, db, k) : 0;
    NLT_CHECK(ey <= tol * 4 && ex <= tol * sc && ew <= tol * sc && eb <= tol * sc,
              "%s N%lld C%lld %lldx%lld O%lld k%lldx%lld s%d p%d twice %d: y %.3g dx %.3g dw %.3g db %.3g", dt == NL_F32 ? "f32" : "f64",
              (long long)g->N, (long long)g->C, (long long)g->H, (long long)g->W, (long long)g->O, (long long)g->KH,
              (long long)g->KW, g->stride, g->pad, twice, ey, ex, ew, eb);
    for (int64_t i = 0; i < ny; i++) out[i] = nl_tensor_get(&y->val, i);
    for (int64_t i = 0; i < nx; i++) out[ny + i] = nl_tensor_get(&x->grad, i);
    for (int64_t i = 0; i < nw; i++) out[ny + nx + i] = nl_tensor_get(&w->grad, i);
    for (int64_t i = 0; g->bias && i < g->O; i++) out[ny + nx + nw + i] = nl_tensor_get(&b->grad, i);
    free(xd); free(wd); free(bd); free(gy); free(yr); free(dx); free(dw); free(db);
done:
    nl_ctx_free(c);
    free(xt.data); free(wt.data); free(bt.data); free(st.data);
    return out;
}

static const cfg cfgs[] = {
    {5, 4, 16, 16, 6, 3, 3, 1, 1, 1},  /* 3x3 s1 p1, P = 256: per-image GEMMs, transposed-conv dX */
    {21, 3, 8, 8, 5, 3, 3, 1, 1, 1},   /* P = 64 (per image), 16 + 5 images at 1 thread */
    {19, 5, 4, 4, 4, 3, 3, 1, 1, 0},   /* P = 16: staged GEMM and scatter */
    {3, 4, 7, 9, 3, 3, 3, 1, 0, 1},    /* pad 0, odd sizes */
    {3, 3, 9, 7, 4, 3, 3, 1, 2, 1},    /* pad 2 = k-1: transposed conv with pad 0 */
    {2, 2, 5, 6, 3, 3, 3, 1, 3, 1},    /* pad 3 > k-1: dcol + col2im */
    {4, 6, 9, 11, 5, 1, 1, 1, 0, 1},   /* 1x1 s1 p0: no im2col */
    {4, 6, 5, 5, 5, 1, 1, 1, 0, 0},    /* 1x1, P = 25 */
    {3, 3, 6, 5, 2, 1, 1, 1, 1, 1},    /* 1x1 pad 1: im2col path, dcol + col2im */
    {6, 4, 16, 15, 5, 3, 3, 2, 1, 1},  /* stride 2, odd width */
    {3, 3, 9, 9, 4, 1, 1, 2, 0, 1},    /* 1x1 stride 2 */
    {2, 3, 10, 9, 4, 3, 2, 1, 1, 1},   /* non-square kernel, stride 1 */
    {3, 2, 12, 12, 3, 5, 5, 1, 2, 1},  /* 5x5 pad 2 */
    {2, 1, 8, 8, 3, 3, 3, 1, 1, 1},    /* C = 1 */
    /* stride 2 (dX by dcol + col2im; a polyphase direct path was measured slower: docs/performance.md) */
    {3, 3, 9, 11, 4, 3, 3, 2, 0, 1},   /* pad 0, odd sizes */
    {2, 3, 10, 10, 3, 3, 3, 2, 2, 0},  /* pad 2 */
    {3, 4, 8, 8, 5, 2, 2, 2, 0, 1},    /* 2x2 kernel: one tap per phase */
    {2, 3, 12, 11, 4, 4, 4, 2, 1, 1},  /* 4x4 pad 1 */
    {2, 2, 11, 12, 3, 5, 5, 2, 2, 1},  /* 5x5 pad 2 */
    {3, 3, 9, 10, 4, 3, 2, 2, 1, 1},   /* non-square kernel */
    {3, 3, 7, 8, 4, 1, 1, 2, 1, 1},    /* 1x1 pad 1: input pixels no tap reaches (dX 0 there) */
    {16, 8, 16, 16, 8, 3, 3, 2, 1, 1}, /* several chunks, parallel */
};
#define NCFG ((int)(sizeof cfgs / sizeof cfgs[0]))

static void test_paths(void) {
    for (int nt = 1; nt <= 3; nt++) {
        nl_set_num_threads(nt);
        for (int i = 0; i < NCFG; i++)
            for (int d = 0; d < 2; d++)
                for (int twice = 0; twice < 2; twice++) {
                    nl_dtype dt = d ? NL_F64 : NL_F32;
                    free(check(&cfgs[i], dt, 1000 + 10 * (uint64_t)i, twice, d ? 1e-12 : 2e-5));
                }
    }
    nl_threads_init();
}

/* the same thread count gives bit-identical values and gradients */
static void test_deterministic(void) {
    const cfg g[] = {{21, 3, 8, 8, 5, 3, 3, 1, 1, 1}, {19, 5, 4, 4, 4, 3, 3, 1, 1, 1}, {6, 4, 16, 15, 5, 3, 3, 2, 1, 1}};
    for (int nt = 1; nt <= 2; nt++) {
        nl_set_num_threads(nt);
        for (int i = 0; i < 3; i++) {
            const int64_t OH = odim(g[i].H, g[i].KH, g[i].stride, g[i].pad), OW = odim(g[i].W, g[i].KW, g[i].stride, g[i].pad);
            const int64_t n = g[i].N * g[i].O * OH * OW + g[i].N * g[i].C * g[i].H * g[i].W + g[i].O * g[i].C * g[i].KH * g[i].KW + g[i].O;
            double *a = check(&g[i], NL_F32, 77, 1, 2e-5), *b = check(&g[i], NL_F32, 77, 1, 2e-5);
            NLT_CHECK(memcmp(a, b, (size_t)n * sizeof *a) == 0, "case %d at %d threads: repeat differs", i, nt);
            free(a); free(b);
        }
    }
    nl_threads_init();
}

/* only some gradients wanted: x without gradient (dW, db by the plain backward) or w without (dX alone) */
static void test_partial_grads(void) {
    const cfg g[] = {{5, 4, 16, 16, 6, 3, 3, 1, 1, 1}, {19, 5, 4, 4, 4, 3, 3, 1, 1, 1}, {4, 6, 9, 11, 5, 1, 1, 1, 0, 1},
                     {3, 3, 7, 8, 4, 1, 1, 2, 1, 1}, {6, 4, 16, 15, 5, 3, 3, 2, 1, 1}};
    for (int i = 0; i < 5; i++)
        for (int which = 0; which < 2; which++)
            for (int d = 0; d < 2; d++) {
                const nl_dtype dt = d ? NL_F64 : NL_F32;
                const double tol = d ? 1e-12 : 2e-5;
                const int64_t OH = odim(g[i].H, g[i].KH, g[i].stride, g[i].pad), OW = odim(g[i].W, g[i].KW, g[i].stride, g[i].pad);
                int64_t xs[4] = {g[i].N, g[i].C, g[i].H, g[i].W}, ws[4] = {g[i].O, g[i].C, g[i].KH, g[i].KW}, bs[1] = {g[i].O};
                int64_t ys[4] = {g[i].N, g[i].O, OH, OW};
                nl_tensor xt = mk(dt, 4, xs), wt = mk(dt, 4, ws), bt = mk(dt, 1, bs), st = mk(dt, 4, ys);
                fill(&xt, 900 + i); fill(&wt, 910 + i); fill(&bt, 920 + i); fill(&st, 930 + i);
                nl_ctx *c = nl_ctx_new(0, 0);
                nl_var *x = nl_leaf(c, xt, which == 1), *w = nl_leaf(c, wt, which == 0), *b = nl_leaf(c, bt, 1);
                nl_var *y = nl_conv2d(c, x, w, b, g[i].stride, g[i].pad);
                NLT_CHECK(y && nl_backward_seed(c, y, &st) == NL_OK, "case %d: %s", i, nl_last_error());
                const int64_t ny = nl_tensor_numel(&st), nx = nl_tensor_numel(&xt), nw = nl_tensor_numel(&wt);
                double *xd = todbl(&xt), *wd = todbl(&wt), *bd = todbl(&bt), *gy = todbl(&st);
                double *yr = calloc((size_t)ny, 8), *dx = calloc((size_t)nx, 8), *dw = calloc((size_t)nw, 8), *db = calloc((size_t)g[i].O, 8);
                ref(&g[i], xd, wd, bd, gy, yr, dx, dw, db);
                const double sc = 1 + sqrt((double)(g[i].N * OH * OW));
                if (which == 0)
                    NLT_CHECK(!x->grad.data && maxdiff(&w->grad, dw, 1) <= tol * sc && maxdiff(&b->grad, db, 1) <= tol * sc,
                              "case %d: dW / db without dX", i);
                else
                    NLT_CHECK(!w->grad.data && maxdiff(&x->grad, dx, 1) <= tol * sc && maxdiff(&b->grad, db, 1) <= tol * sc,
                              "case %d: dX / db without dW", i);
                free(xd); free(wd); free(bd); free(gy); free(yr); free(dx); free(dw); free(db);
                nl_ctx_free(c);
                free(xt.data); free(wt.data); free(bt.data); free(st.data);
            }
}

typedef struct { int stride, pad; } gc_opt;
static nl_var *f_conv(nl_ctx *c, nl_var **in, void *ud) {
    gc_opt *o = ud;
    return nl_conv2d(c, in[0], in[1], in[2], o->stride, o->pad);
}

static void test_gradcheck(void) {
    /* shapes that take the per-image, 1x1 and transposed-conv paths; f64 then f32 */
    const struct { int64_t x[4], w[4]; gc_opt o; } cs[] = {
        {{2, 2, 8, 8}, {3, 2, 3, 3}, {1, 1}}, {{3, 3, 4, 5}, {2, 3, 1, 1}, {1, 0}}, {{2, 2, 5, 5}, {2, 2, 3, 3}, {1, 2}},
        {{2, 2, 7, 8}, {3, 2, 3, 3}, {2, 1}}, {{2, 2, 8, 7}, {2, 2, 4, 3}, {2, 0}}};
    for (int i = 0; i < 5; i++)
        for (int d = 0; d < 2; d++) {
            nl_dtype dt = d ? NL_F32 : NL_F64;
            int64_t bs[1] = {cs[i].w[0]};
            nl_tensor in[3] = {mk(dt, 4, cs[i].x), mk(dt, 4, cs[i].w), mk(dt, 1, bs)};
            for (int k = 0; k < 3; k++) fill(&in[k], 500 + 3 * (uint64_t)i + k);
            nl_gc_result r;
            nl_status s = d ? nl_gradcheck(f_conv, (void *)&cs[i].o, 3, in, NULL, 1e-2, 5e-3, 1e-2, &r)
                            : nl_gradcheck(f_conv, (void *)&cs[i].o, 3, in, NULL, 1e-4, 1e-8, 1e-7, &r); /* linear in each input: a larger step only cuts roundoff */
            NLT_CHECK(s == NL_OK && r.checked > 0, "gradcheck %d %s: %s", i, d ? "f32" : "f64", nl_last_error());
            for (int k = 0; k < 3; k++) free(in[k].data);
        }
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_paths);
    NLT_RUN(test_deterministic);
    NLT_RUN(test_partial_grads);
    NLT_RUN(test_gradcheck);
    return nlt_finish();
}
