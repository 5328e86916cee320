/* conv2d, maxpool2d, avgpool2d: hand-computed values, a direct-loop reference (values and gradients, incl. the
 * chunked im2col path), finite-difference gradient checks (f64 and f32) and error messages. */
#include "nltest.h"
#include "nnlab/extend.h"

static void fill(nl_tensor *t, uint64_t seed, double lo, double hi) {
    nl_rng r;
    nl_rng_init(&r, seed, 7);
    nl_rng_fill_uniform(&r, t, lo, hi);
}

/* distinct values spaced 0.05 apart in random order (no ties, far from kinks for eps ~1e-6..1e-3) */
static void fill_distinct(nl_tensor *t, uint64_t seed) {
    int64_t n = nl_tensor_numel(t);
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    nl_rng r;
    nl_rng_init(&r, seed, 3);
    nl_rng_permutation(&r, perm, n);
    for (int64_t i = 0; i < n; i++) nl_tensor_set(t, i, 0.05 * (double)(perm[i] - n / 2));
    free(perm);
}

static nl_tensor mk(nl_dtype dt, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t s[4] = {a, b, c, d};
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= s[i];
    return nl_tensor_wrap(calloc((size_t)(n ? n : 1), nl_dtype_size(dt)), dt, nd, s);
}

/* ---------------- direct reference (double accumulation) ---------------- */
typedef struct { int64_t N, C, H, W, O, KH, KW; int stride, pad, bias; } conv_cfg;

static int64_t odim(int64_t n, int64_t k, int s, int p) { return (n + 2 * p - k) / s + 1; }

static double at4(const nl_tensor *t, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t i = ((a * t->shape[1] + b) * t->shape[2] + c) * t->shape[3] + d;
    return nl_tensor_get(t, i);
}

/* y [N,O,OH,OW] (double); given gy, also dx, dw, db (double, zeroed by the caller) */
static void conv_ref(const conv_cfg *g, const nl_tensor *x, const nl_tensor *w, const nl_tensor *b, double *y,
                     const double *gy, double *dx, double *dw, double *db) {
    int64_t OH = odim(g->H, g->KH, g->stride, g->pad), OW = odim(g->W, g->KW, g->stride, g->pad);
    int64_t nx = nl_tensor_numel(x), nw = nl_tensor_numel(w);
    double *xd = malloc((size_t)nx * 8), *wd = malloc((size_t)nw * 8);
    for (int64_t i = 0; i < nx; i++) xd[i] = nl_tensor_get(x, i);
    for (int64_t i = 0; i < nw; i++) wd[i] = nl_tensor_get(w, i);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t o = 0; o < g->O; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    int64_t yi = ((n * g->O + o) * OH + oh) * OW + ow;
                    double acc = b ? nl_tensor_get(b, o) : 0;
                    double gv = gy ? gy[yi] : 0;
                    for (int64_t c = 0; c < g->C; c++)
                        for (int64_t kh = 0; kh < g->KH; kh++)
                            for (int64_t kw = 0; kw < g->KW; kw++) {
                                int64_t ih = oh * g->stride - g->pad + kh, iw = ow * g->stride - g->pad + kw;
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                                double xv = xd[((n * g->C + c) * g->H + ih) * g->W + iw];
                                double wv = wd[((o * g->C + c) * g->KH + kh) * g->KW + kw];
                                acc += xv * wv;
                                if (gy) {
                                    dx[((n * g->C + c) * g->H + ih) * g->W + iw] += gv * wv;
                                    dw[((o * g->C + c) * g->KH + kh) * g->KW + kw] += gv * xv;
                                }
                            }
                    if (y) y[yi] = acc;
                    if (gy && db) db[o] += gv;
                }
    free(xd);
    free(wd);
}

static void test_conv_values(void) {
    for (int dt = 0; dt < 2; dt++) {
        nl_dtype t = dt ? NL_F64 : NL_F32;
        nl_ctx *c = nl_ctx_new(0, 0);
        nl_tensor xt = mk(t, 4, 1, 1, 3, 3), wt = mk(t, 4, 1, 1, 2, 2), bt = mk(t, 1, 1, 0, 0, 0);
        for (int i = 0; i < 9; i++) nl_tensor_set(&xt, i, i + 1);     /* [[1,2,3],[4,5,6],[7,8,9]] */
        for (int i = 0; i < 4; i++) nl_tensor_set(&wt, i, i + 1);     /* [[1,2],[3,4]] */
        nl_tensor_set(&bt, 0, 0.5);
        nl_var *x = nl_input(c, xt), *w = nl_input(c, wt), *b = nl_input(c, bt);
        /* stride 1, pad 0 */
        nl_var *y = nl_conv2d(c, x, w, NULL, 1, 0);
        const double e0[4] = {37, 47, 67, 77};
        NLT_CHECK(y && y->val.shape[2] == 2 && y->val.shape[3] == 2, "shape s1p0");
        for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&y->val, i), e0[i], 0);
        /* with bias */
        y = nl_conv2d(c, x, w, b, 1, 0);
        for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&y->val, i), e0[i] + 0.5, 0);
        /* stride 1, pad 1 -> 4x4 */
        y = nl_conv2d(c, x, w, NULL, 1, 1);
        const double e1[16] = {4, 11, 18, 9, 18, 37, 47, 21, 36, 67, 77, 33, 14, 23, 26, 9};
        NLT_CHECK(y && y->val.shape[2] == 4 && y->val.shape[3] == 4, "shape s1p1");
        for (int i = 0; i < 16; i++) NLT_NEAR(nl_tensor_get(&y->val, i), e1[i], 0);
        /* stride 2, pad 1 -> 2x2 */
        y = nl_conv2d(c, x, w, b, 2, 1);
        const double e2[4] = {4, 18, 36, 77};
        NLT_CHECK(y && y->val.shape[2] == 2 && y->val.shape[3] == 2, "shape s2p1");
        for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&y->val, i), e2[i] + 0.5, 0);
        /* stride 2, pad 0 -> 1x1 */
        y = nl_conv2d(c, x, w, NULL, 2, 0);
        NLT_CHECK(y && y->val.shape[2] == 1 && y->val.shape[3] == 1, "shape s2p0");
        NLT_NEAR(nl_item(y), 37, 0);
        /* gradient by hand: L = sum(conv(x, w)) stride 1 pad 0: dL/dw[kh][kw] = sum of the 2x2 window of x at
         * (kh, kw) over the 4 positions; dL/dx = number of windows covering a cell weighted by w */
        nl_var *xl = nl_leaf(c, xt, 1), *wl = nl_leaf(c, wt, 1), *bl = nl_leaf(c, bt, 1);
        nl_var *L = nl_sum(c, nl_conv2d(c, xl, wl, bl, 1, 0), NL_AXIS_ALL, 0);
        NLT_OK(nl_backward(c, L));
        const double dw[4] = {1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 4 + 5 + 7 + 8, 5 + 6 + 8 + 9};
        for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&wl->grad, i), dw[i], 0);
        const double dx[9] = {1, 3, 2, 4, 10, 6, 3, 7, 4};
        for (int i = 0; i < 9; i++) NLT_NEAR(nl_tensor_get(&xl->grad, i), dx[i], 0);
        NLT_NEAR(nl_tensor_get(&bl->grad, 0), 4, 0);
        nl_ctx_free(c);
        free(xt.data); free(wt.data); free(bt.data);
    }
}

/* conv against the direct loops in values and gradients; `perm` feeds x as a permuted (strided) view */
static void check_conv_ref(const conv_cfg *g, nl_dtype t, uint64_t seed, int strided, double tol) {
    nl_tensor xt = strided ? mk(t, 4, g->N, g->H, g->C, g->W) : mk(t, 4, g->N, g->C, g->H, g->W);
    nl_tensor wt = mk(t, 4, g->O, g->C, g->KH, g->KW), bt = mk(t, 1, g->O, 0, 0, 0);
    fill(&xt, seed, -1, 1); fill(&wt, seed + 1, -1, 1); fill(&bt, seed + 2, -1, 1);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *x = nl_leaf(c, xt, 1), *w = nl_leaf(c, wt, 1), *b = g->bias ? nl_leaf(c, bt, 1) : NULL;
    nl_var *xv = x;
    if (strided) { int perm[4] = {0, 2, 1, 3}; xv = nl_permute(c, x, perm); }
    nl_var *y = nl_conv2d(c, xv, w, b, g->stride, g->pad);
    NLT_CHECK(y != NULL, "conv failed: %s", nl_last_error());
    if (!y) { nl_ctx_free(c); free(xt.data); free(wt.data); free(bt.data); return; }
    int64_t OH = odim(g->H, g->KH, g->stride, g->pad), OW = odim(g->W, g->KW, g->stride, g->pad);
    NLT_CHECK(y->val.shape[0] == g->N && y->val.shape[1] == g->O && y->val.shape[2] == OH && y->val.shape[3] == OW, "output shape");
    int64_t ny = g->N * g->O * OH * OW, nx = g->N * g->C * g->H * g->W, nw = g->O * g->C * g->KH * g->KW;
    double *yr = malloc((size_t)ny * 8), *gy = malloc((size_t)ny * 8);
    double *dx = calloc((size_t)nx, 8), *dw = calloc((size_t)nw, 8), *db = calloc((size_t)g->O, 8);
    nl_tensor seed_t = nl_arena_tensor(c->arena, t, 4, y->val.shape);
    fill(&seed_t, seed + 3, -1, 1);
    for (int64_t i = 0; i < ny; i++) gy[i] = nl_tensor_get(&seed_t, i);
    /* reference on the logical [N,C,H,W] values */
    nl_tensor xlog = nl_contig(c, &xv->val);
    conv_ref(g, &xlog, &wt, g->bias ? &bt : NULL, yr, gy, dx, dw, db);
    double ey = 0, sy = 0;
    for (int64_t i = 0; i < ny; i++) { ey = fmax(ey, fabs(nl_tensor_get(&y->val, i) - yr[i])); sy = fmax(sy, fabs(yr[i])); }
    NLT_CHECK(ey <= tol * (1 + sy), "conv values N%lld C%lld %lldx%lld O%lld k%lldx%lld s%d p%d: max err %.3g", (long long)g->N,
              (long long)g->C, (long long)g->H, (long long)g->W, (long long)g->O, (long long)g->KH, (long long)g->KW, g->stride, g->pad, ey);
    NLT_OK(nl_backward_seed(c, y, &seed_t));
    /* dx in the layout of x (permuted back when strided) */
    double ex = 0, ew = 0, eb = 0;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t ch = 0; ch < g->C; ch++)
            for (int64_t h = 0; h < g->H; h++)
                for (int64_t ww = 0; ww < g->W; ww++) {
                    int64_t li = ((n * g->C + ch) * g->H + h) * g->W + ww;
                    int64_t si = strided ? ((n * g->H + h) * g->C + ch) * g->W + ww : li;
                    ex = fmax(ex, fabs(nl_tensor_get(&x->grad, si) - dx[li]));
                }
    for (int64_t i = 0; i < nw; i++) ew = fmax(ew, fabs(nl_tensor_get(&w->grad, i) - dw[i]));
    if (g->bias)
        for (int64_t i = 0; i < g->O; i++) eb = fmax(eb, fabs(nl_tensor_get(&b->grad, i) - db[i]));
    double scale = 1 + sqrt((double)(g->N * OH * OW));
    NLT_CHECK(ex <= tol * scale && ew <= tol * scale && eb <= tol * scale, "conv grads: dx %.3g dw %.3g db %.3g", ex, ew, eb);
    free(yr); free(gy); free(dx); free(dw); free(db);
    nl_ctx_free(c);
    free(xt.data); free(wt.data); free(bt.data);
}

static void test_conv_reference(void) {
    const conv_cfg cfgs[] = {
        {2, 3, 7, 6, 4, 3, 3, 1, 1, 1},
        {3, 2, 8, 9, 5, 3, 2, 2, 1, 0},
        {1, 4, 5, 5, 2, 5, 5, 1, 2, 1},   /* 5x5 kernel on a 5x5 input, pad 2 */
        {2, 3, 9, 7, 3, 1, 1, 1, 0, 1},   /* 1x1 */
        {2, 2, 10, 11, 3, 3, 4, 3, 2, 1}, /* stride 3, non-square kernel */
        {4, 1, 4, 4, 2, 4, 4, 1, 0, 0},   /* kernel == input */
        {2, 3, 6, 6, 2, 2, 2, 2, 0, 1},   /* stride == kernel */
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
        for (int dt = 0; dt < 2; dt++)
            check_conv_ref(&cfgs[i], dt ? NL_F64 : NL_F32, 100 + 10 * i + dt, (int)(i % 2), dt ? 1e-12 : 1e-5);
}

/* several im2col chunks. At 2 threads a chunk holds min(ceil(1024 / (OH*OW)), ceil(N / 2)) images, capped
 * at 32 MB of col, and chunks run in parallel with per-thread dW: multi-image chunks with a partial last one,
 * one-image chunks written straight into the output, and the byte cap (K = 10368). Then the same serially
 * (1 thread: chunks of up to ceil(1024 / (OH*OW)) images) and at 3 threads. */
static void test_conv_chunked(void) {
    const conv_cfg a = {21, 4, 8, 8, 3, 3, 3, 1, 1, 1};       /* P = 64: 11 + 10 images (1 thread: 16 + 5) */
    const conv_cfg b = {4, 4, 34, 33, 4, 3, 3, 1, 1, 1};      /* P = 1122: one image per chunk */
    const conv_cfg cap = {28, 1152, 8, 8, 2, 3, 3, 1, 1, 0};  /* col 2.65 MB per image: 12 + 12 + 4 images */
    for (int nt = 1; nt <= 3; nt++) {
        nl_set_num_threads(nt);
        check_conv_ref(&a, NL_F64, 701, 0, 1e-12);
        check_conv_ref(&a, NL_F32, 702, 1, 1e-5);
        check_conv_ref(&b, NL_F64, 703, 1, 1e-12);
        if (nt == 2) check_conv_ref(&cap, NL_F32, 704, 0, 2e-5);
    }
    nl_threads_init();
}

typedef struct { int stride, pad, bias; } conv_gc;
static nl_var *f_conv(nl_ctx *c, nl_var **in, void *ud) {
    conv_gc *o = ud;
    return nl_conv2d(c, in[0], in[1], o->bias ? in[2] : NULL, o->stride, o->pad);
}

static void gc(const char *what, nl_gc_fn f, void *ud, int n, nl_tensor *in, const int *wrt, double eps, double atol, double rtol) {
    nl_gc_result r;
    nl_status s = nl_gradcheck(f, ud, n, in, wrt, eps, atol, rtol, &r);
    NLT_CHECK(s == NL_OK && r.checked > 0, "%s: %s (checked %lld, max abs err %.3g)", what, nl_last_error(), (long long)r.checked, r.max_abs_err);
}

static void test_conv_gradcheck(void) {
    const conv_gc cases[] = {{1, 0, 0}, {1, 1, 1}, {2, 1, 1}, {2, 0, 0}};
    for (int i = 0; i < 4; i++) {
        nl_tensor in[3] = {mk(NL_F64, 4, 2, 3, 5, 6), mk(NL_F64, 4, 4, 3, 3, 2), mk(NL_F64, 1, 4, 0, 0, 0)};
        for (int k = 0; k < 3; k++) fill(&in[k], 200 + 3 * i + k, -1, 1);
        gc("conv2d f64", f_conv, (void *)&cases[i], cases[i].bias ? 3 : 2, in, NULL, 1e-6, 1e-8, 1e-7);
        for (int k = 0; k < 3; k++) free(in[k].data);
    }
    /* f32 */
    nl_tensor in[3] = {mk(NL_F32, 4, 2, 2, 5, 5), mk(NL_F32, 4, 3, 2, 3, 3), mk(NL_F32, 1, 3, 0, 0, 0)};
    for (int k = 0; k < 3; k++) fill(&in[k], 300 + k, -1, 1);
    conv_gc o = {2, 1, 1};
    gc("conv2d f32", f_conv, &o, 3, in, NULL, 1e-2, 5e-3, 1e-2);
    for (int k = 0; k < 3; k++) free(in[k].data);
}

static void test_conv_errors(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_tensor xt = mk(NL_F32, 4, 1, 3, 5, 5), wt = mk(NL_F32, 4, 2, 4, 3, 3), wk = mk(NL_F32, 4, 2, 3, 8, 3);
    nl_tensor w3 = mk(NL_F32, 4, 2, 3, 3, 3), bt = mk(NL_F32, 1, 3, 0, 0, 0), xd = mk(NL_F64, 4, 1, 3, 5, 5);
    nl_tensor x3 = mk(NL_F32, 3, 3, 5, 5, 0);
    nl_var *x = nl_input(c, xt), *w = nl_input(c, wt), *k = nl_input(c, wk), *w_ok = nl_input(c, w3), *b = nl_input(c, bt);
    nl_clear_error();
    NLT_CHECK(nl_conv2d(c, x, w, NULL, 1, 0) == NULL, "channel mismatch must fail");
    NLT_CHECK(nl_last_status() == NL_ESHAPE && strstr(nl_last_error(), "conv2d") && strstr(nl_last_error(), "[1,3,5,5]") &&
              strstr(nl_last_error(), "[2,4,3,3]") && strstr(nl_last_error(), "channels"), "message: %s", nl_last_error());
    NLT_CHECK(nl_conv2d(c, x, k, NULL, 1, 1) == NULL, "kernel larger than padded input must fail");
    NLT_CHECK(strstr(nl_last_error(), "conv2d") && strstr(nl_last_error(), "[2,3,8,3]") && strstr(nl_last_error(), "larger"), "message: %s", nl_last_error());
    NLT_CHECK(nl_conv2d(c, x, k, NULL, 1, 2) != NULL, "the same kernel fits with pad 2");
    NLT_CHECK(nl_conv2d(c, x, w_ok, NULL, 0, 0) == NULL && strstr(nl_last_error(), "stride") && strstr(nl_last_error(), "[1,3,5,5]"), "stride 0: %s", nl_last_error());
    NLT_CHECK(nl_conv2d(c, x, w_ok, NULL, 1, -1) == NULL && strstr(nl_last_error(), "pad"), "pad -1: %s", nl_last_error());
    NLT_CHECK(nl_conv2d(c, x, w_ok, b, 1, 0) == NULL && strstr(nl_last_error(), "bias") && strstr(nl_last_error(), "[3]"), "bias [3] for O=2: %s", nl_last_error());
    NLT_CHECK(nl_conv2d(c, nl_input(c, x3), w_ok, NULL, 1, 0) == NULL && strstr(nl_last_error(), "[3,5,5]"), "3-d x: %s", nl_last_error());
    NLT_CHECK(nl_conv2d(c, nl_input(c, xd), w_ok, NULL, 1, 0) == NULL && nl_last_status() == NL_EDTYPE, "mixed dtypes: %s", nl_last_error());
    NLT_CHECK(nl_conv2d(c, NULL, w_ok, NULL, 1, 0) == NULL, "NULL input propagates");
    nl_tensor w0 = mk(NL_F32, 4, 2, 3, 0, 3), x0 = mk(NL_F32, 4, 0, 3, 5, 5);
    NLT_CHECK(nl_conv2d(c, x, nl_input(c, w0), NULL, 1, 0) == NULL && strstr(nl_last_error(), "[2,3,0,3]"), "empty kernel: %s", nl_last_error());
    nl_var *y0 = nl_conv2d(c, nl_input(c, x0), w_ok, NULL, 1, 1);
    NLT_CHECK(y0 && y0->val.shape[0] == 0 && y0->val.shape[1] == 2 && y0->val.shape[2] == 5, "empty batch: %s", nl_last_error());
    free(w0.data); free(x0.data);
    nl_var *y = nl_conv2d(c, x, w_ok, NULL, 1, 0);
    NLT_CHECK(y && y->val.shape[1] == 2 && y->val.shape[2] == 3, "valid call after errors");
    nl_ctx_free(c);
    free(xt.data); free(wt.data); free(wk.data); free(w3.data); free(bt.data); free(xd.data); free(x3.data);
}

/* ---------------- pooling ---------------- */
static void test_pool_values(void) {
    for (int dt = 0; dt < 2; dt++) {
        nl_dtype t = dt ? NL_F64 : NL_F32;
        nl_ctx *c = nl_ctx_new(0, 0);
        nl_tensor xt = mk(t, 4, 1, 1, 4, 4);
        for (int i = 0; i < 16; i++) nl_tensor_set(&xt, i, i + 1); /* 1..16 row-major */
        nl_var *x = nl_leaf(c, xt, 1);
        nl_var *y = nl_maxpool2d(c, x, 2, 2, 0);
        const double em[4] = {6, 8, 14, 16};
        NLT_CHECK(y && y->val.shape[2] == 2 && y->val.shape[3] == 2, "maxpool shape");
        for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&y->val, i), em[i], 0);
        NLT_OK(nl_backward(c, nl_sum(c, y, NL_AXIS_ALL, 0)));
        for (int i = 0; i < 16; i++) NLT_NEAR(nl_tensor_get(&x->grad, i), (i == 5 || i == 7 || i == 13 || i == 15) ? 1 : 0, 0);
        y = nl_avgpool2d(c, x, 2, 2, 0);
        const double ea[4] = {3.5, 5.5, 11.5, 13.5};
        for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&y->val, i), ea[i], 1e-6);
        /* k3 s1 p1: max = x[min(i+1,3)][min(j+1,3)]; avg divides by 9 including padding */
        y = nl_maxpool2d(c, x, 3, 1, 1);
        NLT_CHECK(y && y->val.shape[2] == 4 && y->val.shape[3] == 4, "maxpool k3p1 shape");
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) NLT_NEAR(nl_tensor_get(&y->val, i * 4 + j), 4 * (i < 3 ? i + 1 : 3) + (j < 3 ? j + 1 : 3) + 1, 0);
        y = nl_avgpool2d(c, x, 3, 1, 1);
        NLT_NEAR(nl_tensor_get(&y->val, 0), (1 + 2 + 5 + 6) / 9.0, 1e-6);            /* corner */
        NLT_NEAR(nl_tensor_get(&y->val, 1), (1 + 2 + 3 + 5 + 6 + 7) / 9.0, 1e-6);    /* edge */
        NLT_NEAR(nl_tensor_get(&y->val, 5), (1 + 2 + 3 + 5 + 6 + 7 + 9 + 10 + 11) / 9.0, 1e-6); /* interior */
        NLT_NEAR(nl_tensor_get(&y->val, 15), (11 + 12 + 15 + 16) / 9.0, 1e-6);       /* last corner */
        /* avg backward k3 s1 p1: each cell gets (number of windows covering it) / 9 */
        nl_ctx_reset(c);
        x = nl_leaf(c, xt, 1);
        NLT_OK(nl_backward(c, nl_sum(c, nl_avgpool2d(c, x, 3, 1, 1), NL_AXIS_ALL, 0)));
        NLT_NEAR(nl_tensor_get(&x->grad, 0), 4 / 9.0, 1e-6);
        NLT_NEAR(nl_tensor_get(&x->grad, 1), 6 / 9.0, 1e-6);
        NLT_NEAR(nl_tensor_get(&x->grad, 5), 9 / 9.0, 1e-6);
        /* max with padding never picks the zero padding: all-negative input */
        nl_ctx_reset(c);
        for (int i = 0; i < 16; i++) nl_tensor_set(&xt, i, -(i + 1));
        x = nl_leaf(c, xt, 1);
        y = nl_maxpool2d(c, x, 2, 2, 1); /* 3x3 output, corner windows hold one cell */
        NLT_CHECK(y && y->val.shape[2] == 3, "maxpool k2s2p1 shape");
        NLT_NEAR(nl_tensor_get(&y->val, 0), -1, 0);
        NLT_NEAR(nl_tensor_get(&y->val, 8), -16, 0);
        NLT_NEAR(nl_tensor_get(&y->val, 4), -6, 0);
        /* ties: the gradient goes to the first maximal element of each window */
        nl_ctx_reset(c);
        for (int i = 0; i < 16; i++) nl_tensor_set(&xt, i, 1.0);
        x = nl_leaf(c, xt, 1);
        NLT_OK(nl_backward(c, nl_sum(c, nl_maxpool2d(c, x, 2, 2, 0), NL_AXIS_ALL, 0)));
        for (int i = 0; i < 16; i++) NLT_NEAR(nl_tensor_get(&x->grad, i), (i == 0 || i == 2 || i == 8 || i == 10) ? 1 : 0, 0);
        /* overlapping windows accumulate: k2 s1 on constant input -> top-left of each of the 9 windows */
        nl_ctx_reset(c);
        x = nl_leaf(c, xt, 1);
        NLT_OK(nl_backward(c, nl_sum(c, nl_maxpool2d(c, x, 2, 1, 0), NL_AXIS_ALL, 0)));
        NLT_NEAR(nl_tensor_get(&x->grad, 0), 1, 0);
        NLT_NEAR(nl_tensor_get(&x->grad, 5), 1, 0);
        NLT_NEAR(nl_tensor_get(&x->grad, 3), 0, 0);
        NLT_NEAR(nl_tensor_get(&x->grad, 15), 0, 0);
        nl_ctx_free(c);
        free(xt.data);
    }
    /* NaN propagates through max */
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_tensor xt = mk(NL_F64, 4, 1, 1, 2, 2);
    nl_tensor_set(&xt, 0, 1); nl_tensor_set(&xt, 1, NAN); nl_tensor_set(&xt, 2, 5); nl_tensor_set(&xt, 3, 2);
    nl_var *y = nl_maxpool2d(c, nl_input(c, xt), 2, 2, 0);
    NLT_CHECK(y && isnan(nl_item(y)), "NaN propagates");
    nl_ctx_free(c);
    free(xt.data);
    /* the 2x2 stride-2 fast path (f32): a NaN in one window of a 4x4 plane wins there (and takes the gradient),
     * the other windows of its row and of the other row are unaffected, ties keep the first element */
    c = nl_ctx_new(0, 0);
    xt = mk(NL_F32, 4, 1, 1, 4, 4);
    const float v[16] = {1, 3, 2, 2, 0, -1, 2, 0, 7, 5, 4, 6, 5, 7, 4, 4};
    for (int i = 0; i < 16; i++) nl_tensor_set(&xt, i, v[i]);
    nl_tensor_set(&xt, 7, NAN); /* window (0, 1): {2, 2, 2, NaN} */
    nl_var *xl = nl_leaf(c, xt, 1);
    y = nl_maxpool2d(c, xl, 2, 2, 0);
    NLT_CHECK(y && nl_tensor_get(&y->val, 0) == 3 && isnan(nl_tensor_get(&y->val, 1)) && nl_tensor_get(&y->val, 2) == 7 &&
                  nl_tensor_get(&y->val, 3) == 6, "fast path values %g %g %g %g", nl_tensor_get(&y->val, 0), nl_tensor_get(&y->val, 1),
              nl_tensor_get(&y->val, 2), nl_tensor_get(&y->val, 3));
    NLT_OK(nl_backward(c, nl_sum(c, y, NL_AXIS_ALL, 0)));
    /* gradients: 3 at index 1, the NaN at 7, the first 7 (index 8, before 13), 6 at 11 */
    for (int i = 0; i < 16; i++) NLT_NEAR(nl_tensor_get(&xl->grad, i), (i == 1 || i == 7 || i == 8 || i == 11) ? 1 : 0, 0);
    nl_ctx_free(c);
    free(xt.data);
}

/* pooling on multi-image, multi-channel inputs vs a direct loop, strided input */
static void test_pool_reference(void) {
    const int ks[4][3] = {{2, 2, 0}, {3, 2, 1}, {3, 1, 1}, {2, 3, 1}};
    for (int dt = 0; dt < 2; dt++)
        for (int kc = 0; kc < 4; kc++) {
            nl_dtype t = dt ? NL_F64 : NL_F32;
            int k = ks[kc][0], s = ks[kc][1], p = ks[kc][2];
            int64_t N = 3, C = 4, H = 7, W = 9;
            nl_tensor xt = mk(t, 4, N, H, C, W); /* stored [N,H,C,W], used permuted to [N,C,H,W] */
            fill_distinct(&xt, 50 + kc);
            nl_ctx *c = nl_ctx_new(0, 0);
            int perm[4] = {0, 2, 1, 3};
            nl_var *x = nl_permute(c, nl_input(c, xt), perm);
            nl_tensor xl = nl_contig(c, &x->val);
            int64_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
            nl_var *ym = nl_maxpool2d(c, x, k, s, p), *ya = nl_avgpool2d(c, x, k, s, p);
            double em = 0, ea = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t ch = 0; ch < C; ch++)
                    for (int64_t oh = 0; oh < OH; oh++)
                        for (int64_t ow = 0; ow < OW; ow++) {
                            double mx = -INFINITY, sum = 0;
                            for (int a = 0; a < k; a++)
                                for (int b = 0; b < k; b++) {
                                    int64_t ih = oh * s - p + a, iw = ow * s - p + b;
                                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                    double v = at4(&xl, n, ch, ih, iw);
                                    mx = fmax(mx, v);
                                    sum += v;
                                }
                            int64_t yi = ((n * C + ch) * OH + oh) * OW + ow;
                            em = fmax(em, fabs(nl_tensor_get(&ym->val, yi) - mx));
                            ea = fmax(ea, fabs(nl_tensor_get(&ya->val, yi) - sum / (k * k)));
                        }
            NLT_CHECK(em == 0 && ea < (dt ? 1e-14 : 1e-5), "pool k%d s%d p%d: max err %.3g avg err %.3g", k, s, p, em, ea);
            nl_ctx_free(c);
            free(xt.data);
        }
}

typedef struct { int k, s, p, is_max; } pool_gc;
static nl_var *f_pool(nl_ctx *c, nl_var **in, void *ud) {
    pool_gc *o = ud;
    return o->is_max ? nl_maxpool2d(c, in[0], o->k, o->s, o->p) : nl_avgpool2d(c, in[0], o->k, o->s, o->p);
}

static void test_pool_gradcheck(void) {
    const pool_gc cases[] = {{2, 2, 0, 1}, {3, 2, 1, 1}, {3, 1, 1, 1}, {2, 2, 0, 0}, {3, 2, 1, 0}, {3, 1, 1, 0}};
    for (int i = 0; i < 6; i++) {
        nl_tensor in = mk(NL_F64, 4, 2, 3, 6, 5);
        fill_distinct(&in, 400 + i);
        gc(cases[i].is_max ? "maxpool f64" : "avgpool f64", f_pool, (void *)&cases[i], 1, &in, NULL, 1e-6, 1e-8, 1e-7);
        free(in.data);
        nl_tensor inf = mk(NL_F32, 4, 2, 2, 5, 5);
        fill_distinct(&inf, 500 + i);
        gc(cases[i].is_max ? "maxpool f32" : "avgpool f32", f_pool, (void *)&cases[i], 1, &inf, NULL, 1e-3, 2e-3, 1e-2);
        free(inf.data);
    }
}

static void test_pool_errors(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_tensor xt = mk(NL_F32, 4, 1, 2, 3, 3), x3 = mk(NL_F32, 3, 2, 3, 3, 0);
    nl_var *x = nl_input(c, xt);
    nl_clear_error();
    NLT_CHECK(nl_maxpool2d(c, x, 4, 1, 0) == NULL && strstr(nl_last_error(), "maxpool2d") && strstr(nl_last_error(), "[1,2,3,3]"), "window too large: %s", nl_last_error());
    NLT_CHECK(nl_avgpool2d(c, x, 2, 0, 0) == NULL && strstr(nl_last_error(), "avgpool2d") && strstr(nl_last_error(), "stride"), "stride 0: %s", nl_last_error());
    NLT_CHECK(nl_maxpool2d(c, x, 2, 1, 2) == NULL && strstr(nl_last_error(), "pad"), "pad > k/2: %s", nl_last_error());
    NLT_CHECK(nl_avgpool2d(c, x, 0, 1, 0) == NULL, "k 0");
    NLT_CHECK(nl_maxpool2d(c, nl_input(c, x3), 2, 2, 0) == NULL && strstr(nl_last_error(), "[2,3,3]"), "3-d input: %s", nl_last_error());
    NLT_CHECK(nl_avgpool2d(c, NULL, 2, 2, 0) == NULL, "NULL propagates");
    NLT_CHECK(nl_maxpool2d(c, x, 4, 1, 1) != NULL, "k4 p1 fits 3x3 (padded 5x5)");
    nl_ctx_free(c);
    free(xt.data); free(x3.data);
}

/* no-grad mode records nothing and still computes */
static void test_nograd(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_tensor xt = mk(NL_F32, 4, 2, 3, 8, 8), wt = mk(NL_F32, 4, 4, 3, 3, 3);
    fill(&xt, 1, -1, 1); fill(&wt, 2, -1, 1);
    nl_set_grad_enabled(c, 0);
    nl_var *x = nl_leaf(c, xt, 1), *w = nl_leaf(c, wt, 1);
    nl_var *y = nl_maxpool2d(c, nl_conv2d(c, x, w, NULL, 1, 1), 2, 2, 0);
    y = nl_avgpool2d(c, y, 2, 2, 0);
    NLT_CHECK(y && c->n_tape == 0 && y->val.shape[2] == 2, "no-grad forward");
    nl_ctx_free(c);
    free(xt.data); free(wt.data);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_conv_values);
    NLT_RUN(test_conv_reference);
    NLT_RUN(test_conv_chunked);
    NLT_RUN(test_conv_gradcheck);
    NLT_RUN(test_conv_errors);
    NLT_RUN(test_pool_values);
    NLT_RUN(test_pool_reference);
    NLT_RUN(test_pool_gradcheck);
    NLT_RUN(test_pool_errors);
    NLT_RUN(test_nograd);
    return nlt_finish();
}
