/* lib/bnn: the binary GEMM bit-exact against cblas_sgemm over +-1 values for K in {1, 63, 64, 65, 127, 128, 200, 511,
 * 1000} (and 385, 545, 600) and odd M, N, on every kernel path the CPU supports (the others are skipped with a note);
 * the convolution against a float convolution over +-1 values written here (padding 0 / 1 / 2, strides 1 / 2, odd
 * sizes, channels that are multiples of 64 (whole-word taps) and not (taps' bits concatenated)); threshold folding
 * against the float callback at every s (negative factor, constant channels, a non-monotone f refused); the fused
 * threshold op; max-pooling on bits against sign(max-pool of the floats); the model file round trip and each bad file
 * (magic, float checkpoint, version, truncated, extended, checksum, shape via model_expect, bit tails). */
#include "nltest.h"
#include "bnn/bnn.h"
#include "nnlab/safetensors.h"
#include <cblas.h>
#include <limits.h>
#include <unistd.h>
#include <zlib.h>

static uint32_t g_seed = 12345u;
static float rnd(void) { /* uniform in [-1, 1) */
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)((g_seed >> 8) * (1.0 / 8388608.0)) - 1.0f;
}
static float *rnd_vec(int64_t n) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = rnd();
    /* exact zeros pack to +1: put a few in */
    for (int64_t i = 0; i < n; i += 17) p[i] = 0.0f;
    return p;
}
static float sgnf(float x) { return x >= 0.0f ? 1.0f : -1.0f; }

static const nl_bnn_path PATHS[] = {NL_BNN_PORTABLE, NL_BNN_AVX2, NL_BNN_AVX512};

/* ---------------- GEMM ---------------- */
static void test_gemm(void) {
    /* the lengths, plus 385 / 545 / 600 (7 / 9 / 10 words: the AVX2 kernel's padded 3-word, scalar 1-word and
     * padded 2-word tails; it takes rows of 6 words and more) */
    static const int64_t Ks[] = {1, 63, 64, 65, 127, 128, 200, 511, 1000, 385, 545, 600};
    static const int64_t MN[][2] = {{1, 1}, {3, 5}, {17, 13}, {33, 7}, {5, 37}};
    for (int p = 0; p < 3; p++) {
        if (!nl_bnn_path_supported(PATHS[p])) {
            printf("  note: path %s not supported by this CPU: skipped\n", nl_bnn_path_name(PATHS[p]));
            continue;
        }
        NLT_OK(nl_bnn_set_path(PATHS[p]));
        NLT_CHECK(nl_bnn_get_path() == PATHS[p], "forced path");
        int checked = 0;
        for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
            for (size_t s = 0; s < sizeof MN / sizeof *MN; s++) {
                const int64_t K = Ks[ki], M = MN[s][0], N = MN[s][1];
                float *a = rnd_vec(M * K), *b = rnd_vec(N * K), *cf = malloc((size_t)(M * N) * 4);
                for (int64_t i = 0; i < M * K; i++) a[i] = sgnf(a[i]);
                for (int64_t i = 0; i < N * K; i++) b[i] = sgnf(b[i]);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, a, (int)K, b, (int)K, 0.0f, cf, (int)N);
                nl_bnn_mat A, B;
                NLT_OK(nl_bnn_mat_pack(&A, a, M, K));
                NLT_OK(nl_bnn_mat_pack(&B, b, N, K));
                int32_t *c = malloc((size_t)(M * N) * 4);
                NLT_OK(nl_bnn_gemm_mat(&A, &B, c));
                int bad = 0;
                for (int64_t i = 0; i < M * N; i++) bad += c[i] != (int32_t)cf[i];
                NLT_CHECK(!bad, "%s K %lld M %lld N %lld: %d of %lld differ (c0 %d vs %g)", nl_bnn_path_name(PATHS[p]), (long long)K,
                          (long long)M, (long long)N, bad, (long long)(M * N), c[0], cf[0]);
                NLT_CHECK(nl_bnn_dot(A.bits, B.bits, K) == (int32_t)cf[0], "dot K %lld", (long long)K);
                checked++;
                nl_bnn_mat_free(&A), nl_bnn_mat_free(&B);
                free(a), free(b), free(cf), free(c);
            }
        NLT_CHECK(checked == 60, "cases %d", checked);
    }
    NLT_OK(nl_bnn_set_path(NL_BNN_AUTO));
    printf("  auto path: %s\n", nl_bnn_path_name(nl_bnn_get_path()));
}

/* large enough for the blocked, threaded driver (several column chunks, many row blocks), and gemm_ex strides */
static void gemm_large(int64_t M, int64_t N, int64_t K) {
    const int64_t kw = nl_bnn_words(K);
    float *a = rnd_vec(M * K), *b = rnd_vec(N * K);
    nl_bnn_mat A, B;
    NLT_OK(nl_bnn_mat_pack(&A, a, M, K));
    NLT_OK(nl_bnn_mat_pack(&B, b, N, K));
    int32_t *ref = malloc((size_t)(M * N) * 4), *c = malloc((size_t)(M * N) * 4);
    NLT_OK(nl_bnn_set_path(NL_BNN_PORTABLE));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) ref[i * N + j] = nl_bnn_dot(A.bits + i * kw, B.bits + j * kw, K);
    for (int p = 0; p < 3; p++) {
        if (!nl_bnn_path_supported(PATHS[p])) continue;
        NLT_OK(nl_bnn_set_path(PATHS[p]));
        memset(c, 0, (size_t)(M * N) * 4);
        NLT_OK(nl_bnn_gemm_mat(&A, &B, c));
        NLT_CHECK(!memcmp(c, ref, (size_t)(M * N) * 4), "large gemm, path %s", nl_bnn_path_name(PATHS[p]));
        /* a 20 x 30 sub-block through the strided form, C with a wider row stride */
        int32_t cs[20 * 40];
        const int64_t jo = N >= 130 ? 100 : 3; /* needs M >= 25, N >= 33 */
        NLT_OK(nl_bnn_gemm_ex(A.bits + 5 * kw, kw, B.bits + jo * kw, kw, 20, 30, kw, K, cs, 40));
        int bad = 0;
        for (int i = 0; i < 20; i++)
            for (int j = 0; j < 30; j++) bad += cs[i * 40 + j] != ref[(5 + i) * N + jo + j];
        NLT_CHECK(!bad, "gemm_ex strides, path %s: %d differ", nl_bnn_path_name(PATHS[p]), bad);
    }
    NLT_OK(nl_bnn_set_path(NL_BNN_AUTO));
    NLT_CHECK(nl_bnn_gemm(A.bits, B.bits, -1, N, K, c) == NL_EINVAL, "negative M");
    NLT_CHECK(nl_bnn_gemm_ex(A.bits, kw - 1, B.bits, kw, M, N, kw, K, c, N) == NL_EINVAL, "short lda");
    NLT_CHECK(nl_bnn_gemm_ex(A.bits, kw, B.bits, kw, M, N, kw, 64 * kw + 1, c, N) == NL_EINVAL, "K past the words");
    nl_bnn_mat C1;
    NLT_OK(nl_bnn_mat_init(&C1, 2, K + 1));
    NLT_CHECK(nl_bnn_gemm_mat(&A, &C1, c) == NL_ESHAPE, "k mismatch");
    nl_bnn_mat_free(&C1), nl_bnn_mat_free(&A), nl_bnn_mat_free(&B);
    free(a), free(b), free(ref), free(c);
}
/* every bit different (all +1 against all -1): the largest counts, so a byte counter that overflows shows */
static void gemm_extreme(void) {
    const int64_t M = 5, N = 7, K = 8200;
    float *a = malloc((size_t)(M * K) * 4), *b = malloc((size_t)(N * K) * 4);
    for (int64_t i = 0; i < M * K; i++) a[i] = 1.0f;
    for (int64_t i = 0; i < N * K; i++) b[i] = -1.0f;
    nl_bnn_mat A, B, A2;
    NLT_OK(nl_bnn_mat_pack(&A, a, M, K));
    NLT_OK(nl_bnn_mat_pack(&B, b, N, K));
    NLT_OK(nl_bnn_mat_pack(&A2, b, M, K));
    int32_t c[5 * 7];
    for (int p = 0; p < 3; p++) {
        if (!nl_bnn_path_supported(PATHS[p])) continue;
        NLT_OK(nl_bnn_set_path(PATHS[p]));
        NLT_OK(nl_bnn_gemm_mat(&A, &B, c));
        int bad = 0;
        for (int i = 0; i < M * N; i++) bad += c[i] != -K;
        NLT_OK(nl_bnn_gemm_mat(&A2, &B, c));
        for (int i = 0; i < M * N; i++) bad += c[i] != K;
        NLT_CHECK(!bad, "all-different / all-equal rows, path %s: %d wrong", nl_bnn_path_name(PATHS[p]), bad);
    }
    NLT_OK(nl_bnn_set_path(NL_BNN_AUTO));
    nl_bnn_mat_free(&A), nl_bnn_mat_free(&B), nl_bnn_mat_free(&A2);
    free(a), free(b);
}
static void test_gemm_large(void) {
    gemm_extreme();
    gemm_large(71, 3001, 1100); /* several column chunks, row blocks over threads */
    gemm_large(37, 41, 8200);   /* 129 words: the AVX2 byte counters are flushed mid-row (31 vectors), one scalar word */
}

static void test_pack(void) {
    const float x[5] = {0.0f, -0.0f, -1e-30f, 2.0f, NAN};
    uint64_t b[1] = {~0ull};
    NLT_OK(nl_bnn_pack_rows(x, 1, 5, b));
    NLT_CHECK(b[0] == 0xBull, "sign(0) = sign(-0) = +1, negative -> 0, NaN -> 0, tail zero: %llx", (unsigned long long)b[0]);
    float u[5];
    NLT_OK(nl_bnn_unpack_rows(b, 1, 5, u));
    NLT_CHECK(u[0] == 1 && u[1] == 1 && u[2] == -1 && u[3] == 1 && u[4] == -1, "unpack");
    NLT_CHECK(nl_bnn_pack_rows(x, -1, 5, b) == NL_EINVAL, "negative rows");
}

/* ---------------- convolution ---------------- */
/* float reference: x [n, c, h, w] +-1, w [oc, c, kh, kw] +-1, zero padding -> out [n, oh, ow, oc] (channels last) */
static void conv_ref(const float *x, const float *w, const nl_bnn_conv_geom *g, int64_t oh, int64_t ow, float *out) {
    for (int64_t i = 0; i < g->n; i++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                for (int64_t o = 0; o < g->oc; o++) {
                    float s = 0;
                    for (int64_t ch = 0; ch < g->c; ch++)
                        for (int64_t a = 0; a < g->kh; a++)
                            for (int64_t b = 0; b < g->kw; b++) {
                                const int64_t y = oy * g->sh - g->ph + a, xx = ox * g->sw - g->pw + b;
                                const float v = y < 0 || y >= g->h || xx < 0 || xx >= g->w ? 0.0f : x[((i * g->c + ch) * g->h + y) * g->w + xx];
                                s += v * w[((o * g->c + ch) * g->kh + a) * g->kw + b];
                            }
                    out[((i * oh + oy) * ow + ox) * g->oc + o] = s;
                }
}

static void test_conv(void) {
    /* n, h, w, c, oc, kh, kw, sh, sw, ph, pw */
    static const int64_t cases[][11] = {
        {2, 7, 9, 3, 5, 3, 3, 1, 1, 1, 1},   {1, 9, 7, 64, 3, 3, 3, 2, 2, 1, 1},  {2, 5, 5, 65, 7, 3, 3, 1, 1, 0, 0},
        {1, 11, 6, 70, 4, 3, 3, 2, 1, 1, 0}, {1, 6, 6, 130, 9, 3, 3, 2, 2, 0, 0}, {3, 5, 7, 1, 2, 3, 3, 1, 2, 1, 1},
        {1, 7, 7, 33, 6, 1, 1, 2, 2, 0, 0},  {1, 8, 9, 20, 5, 3, 2, 1, 1, 1, 1},  {1, 9, 9, 128, 17, 5, 5, 1, 1, 2, 2},
        {2, 9, 9, 16, 8, 3, 3, 1, 1, 1, 1},  {1, 7, 7, 8, 16, 3, 3, 1, 1, 1, 1},  {1, 6, 5, 100, 3, 3, 3, 2, 1, 1, 1},
    };
    for (int p = 0; p < 3; p++) {
        if (!nl_bnn_path_supported(PATHS[p])) continue;
        NLT_OK(nl_bnn_set_path(PATHS[p]));
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            const int64_t *q = cases[k];
            nl_bnn_conv_geom g = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], q[9], q[10]};
            int64_t oh, ow;
            NLT_OK(nl_bnn_conv_out(&g, &oh, &ow));
            const int64_t cw = nl_bnn_words(g.c);
            float *x = rnd_vec(g.n * g.c * g.h * g.w), *w = rnd_vec(g.oc * g.c * g.kh * g.kw);
            for (int64_t i = 0; i < g.n * g.c * g.h * g.w; i++) x[i] = sgnf(x[i]);
            for (int64_t i = 0; i < g.oc * g.c * g.kh * g.kw; i++) w[i] = sgnf(w[i]);
            float *ref = malloc((size_t)(g.n * oh * ow * g.oc) * 4);
            int32_t *out = malloc((size_t)(g.n * oh * ow * g.oc) * 4);
            uint64_t *xb = malloc((size_t)(g.n * g.h * g.w * cw) * 8), *wb = malloc((size_t)(g.oc * g.kh * g.kw * cw) * 8);
            conv_ref(x, w, &g, oh, ow, ref);
            NLT_OK(nl_bnn_pack_nchw(x, g.n, g.c, g.h, g.w, xb));
            NLT_OK(nl_bnn_pack_conv_weights(w, g.oc, g.c, g.kh, g.kw, wb));
            NLT_OK(nl_bnn_conv2d(&g, xb, wb, out));
            int bad = 0;
            for (int64_t i = 0; i < g.n * oh * ow * g.oc; i++) bad += out[i] != (int32_t)ref[i];
            NLT_CHECK(!bad, "conv case %zu (c %lld, stride %lld/%lld, pad %lld/%lld), path %s: %d of %lld differ", k, (long long)g.c,
                      (long long)g.sh, (long long)g.sw, (long long)g.ph, (long long)g.pw, nl_bnn_path_name(PATHS[p]), bad,
                      (long long)(g.n * oh * ow * g.oc));
            free(x), free(w), free(ref), free(out), free(xb), free(wb);
        }
    }
    NLT_OK(nl_bnn_set_path(NL_BNN_AUTO));
    nl_bnn_conv_geom bad = {1, 5, 5, 3, 2, 3, 3, 1, 1, 3, 0};
    int64_t oh, ow;
    NLT_CHECK(nl_bnn_conv_out(&bad, &oh, &ow) == NL_EINVAL, "pad >= kernel");
    bad.ph = 0, bad.h = 2;
    NLT_CHECK(nl_bnn_conv_out(&bad, &oh, &ow) == NL_ESHAPE, "kernel larger than the input");
}

/* ---------------- thresholds ---------------- */
typedef struct bn_ctx { float alpha[6], mean[6], var[6], gamma[6], beta[6]; } bn_ctx;
/* what a trained network evaluates: y = gamma (alpha s - mean) / sqrt(var + eps) + beta, all in float */
static float bn_f(int64_t c, int32_t s, void *vctx) {
    const bn_ctx *b = vctx;
    const float a = b->alpha[c] * (float)s;
    return b->gamma[c] * ((a - b->mean[c]) / sqrtf(b->var[c] + 1e-5f)) + b->beta[c];
}
static float wiggle_f(int64_t c, int32_t s, void *ctx) { return (s == 3 || s > 10) ? 1.0f : -1.0f; }

static void test_fold(void) {
    bn_ctx b = {
        /* increasing; decreasing (negative alpha); decreasing (negative gamma); constant 1; constant 0 (alpha 0);
         * threshold between integers, tiny scale */
        .alpha = {0.37f, -0.81f, 0.5f, 1e-4f, 0.0f, 3e-3f},
        .mean = {1.3f, -2.1f, 0.0f, 0.0f, 0.0f, 0.0101f},
        .var = {0.7f, 2.0f, 1.0f, 1.0f, 1.0f, 1e-6f},
        .gamma = {1.1f, 0.9f, -0.6f, 1.0f, 1.0f, 1.0f},
        .beta = {0.2f, -0.3f, 0.05f, 5.0f, -0.5f, 0.0f},
    };
    const int64_t K = 577;
    nl_bnn_thresh th;
    NLT_OK(nl_bnn_thresh_init(&th, 6));
    NLT_OK(nl_bnn_fold_thresholds(&th, K, bn_f, &b));
    int bad = 0;
    for (int64_t c = 0; c < 6; c++)
        for (int32_t s = (int32_t)-K; s <= K; s++) bad += nl_bnn_thresh_bit(&th, c, s) != (bn_f(c, s, &b) >= 0.0f);
    NLT_CHECK(!bad, "folded bits differ from the float bits at %d (channel, s)", bad);
    NLT_CHECK(th.flip[0] == 0 && th.flip[1] == 1 && th.flip[2] == 1, "directions %d %d %d", th.flip[0], th.flip[1], th.flip[2]);
    NLT_CHECK(th.t[3] == INT32_MIN && th.flip[3] == 0 && th.t[4] == INT32_MIN && th.flip[4] == 1, "constant channels");
    /* fused op: s [rows, 6] -> bits */
    const int64_t rows = 9;
    int32_t s[9 * 6];
    for (int i = 0; i < rows * 6; i++) s[i] = (int32_t)(rnd() * (float)K);
    uint64_t bits[9];
    NLT_OK(nl_bnn_threshold_pack(s, rows, &th, bits));
    bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < 6; c++) bad += (int)((bits[r] >> c) & 1) != (bn_f(c, s[r * 6 + c], &b) >= 0.0f);
        bad += (bits[r] >> 6) != 0;
    }
    NLT_CHECK(!bad, "threshold_pack: %d wrong", bad);
    nl_bnn_thresh th1;
    NLT_OK(nl_bnn_thresh_init(&th1, 1));
    NLT_CHECK(nl_bnn_fold_thresholds(&th1, 20, wiggle_f, NULL) == NL_EINVAL, "a non-monotone f is refused");
    NLT_CHECK(strstr(nl_last_error(), "not monotone") != NULL, "message: %s", nl_last_error());
    nl_bnn_thresh_free(&th1), nl_bnn_thresh_free(&th);
}

/* ---------------- max-pooling ---------------- */
static void test_maxpool(void) {
    const int64_t n = 2, c = 70, h = 7, w = 9, cw = nl_bnn_words(c);
    static const int64_t cfg[][3] = {{2, 2, 0}, {3, 2, 1}, {3, 1, 1}, {2, 1, 0}};
    float *x = rnd_vec(n * c * h * w);
    uint64_t *xb = malloc((size_t)(n * h * w * cw) * 8);
    NLT_OK(nl_bnn_pack_nchw(x, n, c, h, w, xb));
    for (int k = 0; k < 4; k++) {
        const int64_t ks = cfg[k][0], st = cfg[k][1], pd = cfg[k][2];
        const int64_t oh = (h + 2 * pd - ks) / st + 1, ow = (w + 2 * pd - ks) / st + 1;
        uint64_t *ob = malloc((size_t)(n * oh * ow * cw) * 8);
        NLT_OK(nl_bnn_maxpool_bits(xb, n, h, w, c, ks, st, pd, ob));
        int bad = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t ch = 0; ch < c; ch++)
                for (int64_t oy = 0; oy < oh; oy++)
                    for (int64_t ox = 0; ox < ow; ox++) {
                        float m = -INFINITY;
                        for (int64_t a = 0; a < ks; a++)
                            for (int64_t bb = 0; bb < ks; bb++) {
                                const int64_t y = oy * st - pd + a, xx = ox * st - pd + bb;
                                if (y >= 0 && y < h && xx >= 0 && xx < w && x[((i * c + ch) * h + y) * w + xx] > m) m = x[((i * c + ch) * h + y) * w + xx];
                            }
                        const int bit = (int)((ob[((i * oh + oy) * ow + ox) * cw + ch / 64] >> (ch % 64)) & 1);
                        bad += bit != (m >= 0.0f);
                    }
        for (int64_t r = 0; r < n * oh * ow; r++) bad += (ob[r * cw + cw - 1] >> (c % 64)) != 0;
        NLT_CHECK(!bad, "maxpool k %lld stride %lld pad %lld: %d wrong", (long long)ks, (long long)st, (long long)pd, bad);
        free(ob);
    }
    NLT_CHECK(nl_bnn_maxpool_bits(xb, n, h, w, c, 2, 2, 2, xb) == NL_EINVAL, "pad > k/2");
    free(x), free(xb);
}

/* ---------------- model files ---------------- */
static void make_model(nl_bnn_model *m) {
    nl_bnn_model_init(m);
    const int64_t cs[4] = {5, 3, 3, 70}, ds[2] = {10, 130}, ts[2] = {5, 2}, fs[2] = {4, 3}, ps[1] = {0};
    float *w = rnd_vec(5 * 70 * 9), *d = rnd_vec(10 * 130), f[12];
    uint64_t *wb = calloc(5 * 9 * 2, 8), *db = calloc(10 * 3, 8);
    nl_bnn_pack_conv_weights(w, 5, 70, 3, 3, wb);
    nl_bnn_pack_rows(d, 10, 130, db);
    for (int i = 0; i < 12; i++) f[i] = rnd();
    int32_t t[10] = {3, 0, -7, 1, INT32_MIN, 0, INT32_MIN, 1, 12, 0};
    const int32_t cp[8] = {1, 1, 1, 1}, pp[8] = {2, 2, 0};
    NLT_OK(nl_bnn_model_add(m, NL_BNN_L_FLOAT, "stem", NL_BNN_F32, 2, fs, NULL, f, NULL));
    NLT_OK(nl_bnn_model_add(m, NL_BNN_L_CONV, "conv1", NL_BNN_BITS, 4, cs, cp, wb, NULL));
    NLT_OK(nl_bnn_model_add(m, NL_BNN_L_THRESH, "bn1", NL_BNN_I32, 2, ts, NULL, t, NULL));
    NLT_OK(nl_bnn_model_add(m, NL_BNN_L_POOL, "pool1", NL_BNN_I32, 1, ps, pp, NULL, NULL));
    NLT_OK(nl_bnn_model_add(m, NL_BNN_L_DENSE, "fc", NL_BNN_BITS, 2, ds, NULL, db, NULL));
    free(w), free(d), free(wb), free(db);
}

static unsigned char *slurp(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*n);
    if (fread(b, 1, (size_t)*n, f) != (size_t)*n) *n = -1;
    fclose(f);
    return b;
}
static void spit(const char *path, const unsigned char *b, long n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, (size_t)n, f);
    fclose(f);
}
/* load must fail with NL_EFORMAT and a message containing `what` */
static void expect_bad(const char *path, const char *what) {
    nl_bnn_model m;
    nl_status s = nl_bnn_model_load(&m, path);
    NLT_CHECK(s == NL_EFORMAT && strstr(nl_last_error(), what), "%s: want NL_EFORMAT with '%s', got %s: %s", path, what,
              nl_status_name(s), nl_last_error());
    NLT_CHECK(m.n_layers == 0 && m.layers == NULL, "failed load leaves the model empty");
}

static void test_file(void) {
    char dir[] = "/tmp/nl_test_bnn_XXXXXX", path[256], bad[256];
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/m.bnn", dir), snprintf(bad, sizeof bad, "%s/bad.bnn", dir);
    nl_bnn_model m, r;
    make_model(&m);
    NLT_OK(nl_bnn_model_save(&m, path));
    NLT_OK(nl_bnn_model_load(&r, path));
    NLT_CHECK(r.n_layers == m.n_layers, "layers %d", r.n_layers);
    for (int i = 0; i < r.n_layers && i < m.n_layers; i++) {
        const nl_bnn_layer *a = &m.layers[i], *b = &r.layers[i];
        NLT_CHECK(a->kind == b->kind && a->dtype == b->dtype && a->rank == b->rank && !memcmp(a->shape, b->shape, sizeof a->shape) &&
                      !memcmp(a->param, b->param, sizeof a->param) && !strcmp(a->name, b->name) &&
                      !memcmp(a->data, b->data, (size_t)nl_bnn_layer_bytes(a)),
                  "layer %d round trip", i);
    }
    const int64_t cs[4] = {5, 3, 3, 70}, cs2[4] = {5, 3, 3, 64};
    NLT_OK(nl_bnn_model_expect(&r, 1, NL_BNN_L_CONV, NL_BNN_BITS, 4, cs));
    NLT_CHECK(nl_bnn_model_expect(&r, 1, NL_BNN_L_CONV, NL_BNN_BITS, 4, cs2) == NL_ESHAPE &&
                  strstr(nl_last_error(), "shape [5, 3, 3, 70], expected [5, 3, 3, 64]"),
              "wrong shape: %s", nl_last_error());
    NLT_CHECK(nl_bnn_model_expect(&r, 2, NL_BNN_L_CONV, NL_BNN_BITS, 4, cs) == NL_ESHAPE, "wrong kind");
    NLT_CHECK(nl_bnn_model_expect(&r, 9, NL_BNN_L_CONV, NL_BNN_BITS, 4, cs) == NL_ESHAPE, "missing layer");
    nl_bnn_model_free(&r);

    long n = 0;
    unsigned char *orig = slurp(path, &n), *b = malloc((size_t)n + 64);
    NLT_CHECK(orig && n > 64 && n % 64 == 0, "file size %ld", n);
    memcpy(b, orig, (size_t)n), b[0] = 'X', spit(bad, b, n);
    expect_bad(bad, "bad magic");
    memcpy(b, orig, (size_t)n), b[8] = 2, spit(bad, b, n);
    expect_bad(bad, "version 2");
    spit(bad, orig, n - 100);
    expect_bad(bad, "truncated");
    spit(bad, orig, 30);
    expect_bad(bad, "truncated");
    memcpy(b, orig, (size_t)n), memset(b + n, 0, 64), spit(bad, b, n + 64);
    expect_bad(bad, "extended");
    memcpy(b, orig, (size_t)n), b[n - 70] ^= 1, spit(bad, b, n);
    expect_bad(bad, "checksum");
    spit(bad, orig, 0);
    expect_bad(bad, "bad magic");
    /* a float nnlab checkpoint (safetensors) given to the binary loader */
    const int64_t shp[2] = {2, 3};
    const float vals[6] = {1, 2, 3, 4, 5, 6};
    nl_st_entry e = {"w", NL_ST_F32, 2, shp, vals};
    NLT_OK(nl_safetensors_write(bad, &e, 1, "{\"nnlab.model\": \"cnn\"}"));
    expect_bad(bad, "float checkpoint (safetensors)");
    /* a missing file */
    snprintf(bad, sizeof bad, "%s/missing.bnn", dir);
    NLT_CHECK(nl_bnn_model_load(&r, bad) == NL_ENOTFOUND, "missing file");
    /* bad layers refused by model_add: non-zero tail bits, flip 2, NaN, wrong dtype for the kind */
    const int64_t ds[2] = {1, 65}, ts[2] = {1, 2}, fs[1] = {1};
    const uint64_t tail[2] = {0, 2};
    const int32_t fl[2] = {0, 2};
    const float nanv[1] = {NAN};
    NLT_CHECK(nl_bnn_model_add(&m, NL_BNN_L_DENSE, "x", NL_BNN_BITS, 2, ds, NULL, tail, NULL) == NL_EINVAL &&
                  strstr(nl_last_error(), "non-zero bits"), "tail bits: %s", nl_last_error());
    NLT_CHECK(nl_bnn_model_add(&m, NL_BNN_L_THRESH, "x", NL_BNN_I32, 2, ts, NULL, fl, NULL) == NL_EINVAL, "flip 2");
    NLT_CHECK(nl_bnn_model_add(&m, NL_BNN_L_FLOAT, "x", NL_BNN_F32, 1, fs, NULL, nanv, NULL) == NL_EINVAL, "NaN");
    NLT_CHECK(nl_bnn_model_add(&m, NL_BNN_L_CONV, "x", NL_BNN_F32, 2, ds, NULL, NULL, NULL) == NL_EINVAL, "conv of f32");
    NLT_CHECK(m.n_layers == 5, "refused layers are not added");
    /* a table entry whose shape disagrees with its byte count: patch the conv layer's c (70 -> 200: 4 words per tap) */
    memcpy(b, orig, (size_t)n);
    int64_t c200 = 200;
    memcpy(b + 64 + 128 + 16 + 24, &c200, 8);
    const uint32_t crc = (uint32_t)crc32(0L, b + 64, (uInt)(n - 64)); /* so the shape check, not the checksum, fires */
    memcpy(b + 24, &crc, 4);
    snprintf(bad, sizeof bad, "%s/bad.bnn", dir);
    spit(bad, b, n);
    expect_bad(bad, "needs");
    nl_bnn_model_free(&m);
    free(orig), free(b);
    unlink(path), unlink(bad), rmdir(dir);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_pack);
    NLT_RUN(test_gemm);
    NLT_RUN(test_gemm_large);
    NLT_RUN(test_conv);
    NLT_RUN(test_fold);
    NLT_RUN(test_maxpool);
    NLT_RUN(test_file);
    return nlt_finish();
}
