/* batchformer: test-time logits independent of the batch, the two training halves through the one classifier (values
 * and gradients), the identity control's per-sample layer, the training-mode layer (dropout draws included) against the
 * attention written out with separate ops (exact for the identity control), the Balanced Softmax loss against hand values, the
 * long-tailed profile and its bad input (imbalance ratio < 1, API and CLI), a short training run, the judge, the CLI. */
#include "nltest.h"
#include "batchformer/batchformer.h"
#include "nnlab/cli.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"

enum { D_IN = 12, K = 10, N = 6 };

static nl_bf_config small_cfg(void) {
    nl_bf_config cfg = nl_bf_defaults();
    cfg.hidden = 16;
    cfg.dim = 8;
    return cfg;
}

static void fill_x(float *x, int64_t n, uint64_t seed) {
    nl_rng r;
    nl_rng_init(&r, seed, 7);
    for (int64_t i = 0; i < n * D_IN; i++) x[i] = (float)nl_rng_normal(&r);
}

static void test_test_time_batch_independent(void) {
    nl_bf_config cfg = small_cfg();
    nl_bf_net m;
    NLT_OK(nl_bf_net_init(&m, NL_BF_ATTN, &cfg, D_IN, K, 3));
    float x[N * D_IN], y[N * D_IN];
    fill_x(x, N, 1);
    fill_x(y, N, 2);
    memcpy(y + 2 * D_IN, x + 4 * D_IN, D_IN * sizeof *x); /* row 4 of x at row 2 of another batch */
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_set_grad_enabled(c, 0);
    nl_var *full = nl_bf_test_logits(c, &m, nl_input(c, nl_tensor_wrap(x, NL_F32, 2, (int64_t[]){N, D_IN})));
    nl_var *one = nl_bf_test_logits(c, &m, nl_input(c, nl_tensor_wrap(x + 4 * D_IN, NL_F32, 2, (int64_t[]){1, D_IN})));
    nl_var *other = nl_bf_test_logits(c, &m, nl_input(c, nl_tensor_wrap(y, NL_F32, 2, (int64_t[]){N, D_IN})));
    const float *a = full->val.data, *b = one->val.data, *o = other->val.data;
    double dmax = 0;
    for (int k = 0; k < K; k++) {
        dmax = fmax(dmax, fabs(a[4 * K + k] - b[k]));
        dmax = fmax(dmax, fabs(a[4 * K + k] - o[2 * K + k]));
    }
    NLT_CHECK(dmax < 1e-5, "test logits of one image depend on the batch (max diff %g)", dmax);
    /* the BatchFormer layer itself does mix the batch (without dropout): the same row differs in another batch */
    nl_var *f = nl_bf_features(c, &m, nl_input(c, nl_tensor_wrap(x, NL_F32, 2, (int64_t[]){N, D_IN})));
    nl_var *g = nl_bf_features(c, &m, nl_input(c, nl_tensor_wrap(y, NL_F32, 2, (int64_t[]){N, D_IN})));
    nl_var *bf = nl_bf_layer(c, &m, f, 0), *bg = nl_bf_layer(c, &m, g, 0);
    NLT_CHECK(bf && bg, "layer: %s", nl_last_error());
    double mix = 0;
    for (int j = 0; j < cfg.dim; j++) mix = fmax(mix, fabs(((float *)bf->val.data)[4 * cfg.dim + j] - ((float *)bg->val.data)[2 * cfg.dim + j]));
    NLT_CHECK(mix > 1e-4, "the BatchFormer layer does not depend on the batch (%g)", mix);
    nl_ctx_free(c);
    nl_bf_net_free(&m);
}

/* torch's post-norm TransformerEncoderLayer (eval: no dropout) on one sequence of n tokens, written as plain loops */
static void naive_layer(const nl_bf_net *m, const float *f, int n, float *out) {
    int C = (int)m->dim, H = m->heads, Dh = C / H;
    const float *Wqkv = m->Wqkv->val.data, *bqkv = m->bqkv->val.data, *Wo = m->Wo->val.data, *bo = m->bo->val.data;
    const float *F1 = m->F1->val.data, *f1 = m->f1->val.data, *F2 = m->F2->val.data, *f2 = m->f2->val.data;
    const float *ln[4] = {m->g1->val.data, m->e1->val.data, m->g2->val.data, m->e2->val.data};
    double qkv[8][48], att[8][16], g[8][16];
    for (int i = 0; i < n; i++)
        for (int r = 0; r < 3 * C; r++) {
            qkv[i][r] = bqkv[r];
            for (int j = 0; j < C; j++) qkv[i][r] += (double)Wqkv[r * C + j] * f[i * C + j];
        }
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            double sc[8], mx = -1e300, z = 0;
            for (int j = 0; j < n; j++) {
                sc[j] = 0;
                for (int d = 0; d < Dh; d++) sc[j] += qkv[i][h * Dh + d] * qkv[j][C + h * Dh + d];
                sc[j] /= sqrt((double)Dh);
                mx = fmax(mx, sc[j]);
            }
            for (int j = 0; j < n; j++) z += (sc[j] = exp(sc[j] - mx));
            for (int d = 0; d < Dh; d++) {
                att[i][h * Dh + d] = 0;
                for (int j = 0; j < n; j++) att[i][h * Dh + d] += sc[j] / z * qkv[j][2 * C + h * Dh + d];
            }
        }
    for (int i = 0; i < n; i++) {
        double x[16], y[16], hid[16];
        for (int r = 0; r < C; r++) {
            x[r] = bo[r] + f[i * C + r];
            for (int j = 0; j < C; j++) x[r] += (double)Wo[r * C + j] * att[i][j];
        }
        for (int pass = 0; pass < 2; pass++) {
            double mu = 0, var = 0;
            for (int r = 0; r < C; r++) mu += x[r] / C;
            for (int r = 0; r < C; r++) var += (x[r] - mu) * (x[r] - mu) / C;
            for (int r = 0; r < C; r++) y[r] = (x[r] - mu) / sqrt(var + 1e-5) * ln[2 * pass][r] + ln[2 * pass + 1][r];
            if (pass == 1) break;
            for (int r = 0; r < C; r++) {
                g[i][r] = y[r];
                hid[r] = f1[r];
                for (int j = 0; j < C; j++) hid[r] += (double)F1[r * C + j] * y[j];
                hid[r] = fmax(hid[r], 0);
            }
            for (int r = 0; r < C; r++) {
                x[r] = g[i][r] + f2[r];
                for (int j = 0; j < C; j++) x[r] += (double)F2[r * C + j] * hid[j];
            }
        }
        for (int r = 0; r < C; r++) out[i * C + r] = (float)y[r];
    }
}

static void test_layer_against_loops(void) {
    nl_bf_config cfg = small_cfg();
    nl_bf_net m;
    NLT_OK(nl_bf_net_init(&m, NL_BF_ATTN, &cfg, D_IN, K, 4));
    nl_rng r;
    nl_rng_init(&r, 99, 1);
    /* non-trivial biases and LayerNorm affine (they start at 0 / 1) so that their placement is checked too */
    nl_var *vs[6] = {m.bqkv, m.bo, m.g1, m.e1, m.g2, m.e2};
    for (int i = 0; i < 6; i++) nl_rng_fill_uniform(&r, &vs[i]->val, -0.8, 0.8);
    enum { n = 5 };
    float f[n * 8], want[n * 8];
    for (int i = 0; i < n * 8; i++) f[i] = (float)(2 * nl_rng_normal(&r));
    naive_layer(&m, f, n, want);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_set_grad_enabled(c, 0);
    nl_var *got = nl_bf_layer(c, &m, nl_input(c, nl_tensor_wrap(f, NL_F32, 2, (int64_t[]){n, 8})), 0);
    NLT_CHECK(got != NULL, "%s", nl_last_error());
    double d = 0;
    for (int i = 0; got && i < n * 8; i++) d = fmax(d, fabs(((float *)got->val.data)[i] - want[i]));
    NLT_CHECK(d < 2e-5, "layer vs loops: max diff %g", d);
    nl_ctx_free(c);
    nl_bf_net_free(&m);
}

/* The layer in training mode written out with separate ops (softmax, nl_dropout on the [H, N, N] weights, matmul, or
 * the identity matrix for the control), with m's parameters and dropout stream: the method's attention before it used
 * the engine's nl_attention_ex. */
static nl_var *ref_heads(nl_ctx *c, nl_var *qkv, int64_t lo, int64_t n, int64_t C, int H) {
    nl_var *t = nl_reshape(c, nl_slice(c, qkv, 1, lo, lo + C, 1), 3, (int64_t[]){n, H, C / H});
    return nl_contiguous(c, nl_permute(c, t, (int[]){1, 0, 2})); /* [H, n, C/H] */
}
static nl_var *ref_layer(nl_ctx *c, nl_bf_net *m, nl_var *f) {
    int64_t n = f->val.shape[0], C = m->dim;
    int H = m->heads;
    double p = m->dropout;
    nl_var *qkv = nl_linear(c, f, m->Wqkv, m->bqkv), *v = ref_heads(c, qkv, 2 * C, n, C, H), *P;
    if (m->kind == NL_BF_ATTN) {
        nl_var *q = ref_heads(c, qkv, 0, n, C, H), *k = ref_heads(c, qkv, C, n, C, H);
        P = nl_softmax(c, nl_mul_scalar(c, nl_matmul_t(c, q, k, 0, 1), 1.0 / sqrt((double)(C / H))), -1);
    } else {
        P = nl_zeros(c, NL_F32, 3, (int64_t[]){H, n, n});
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < n; i++) ((float *)P->val.data)[(h * n + i) * n + i] = 1;
    }
    nl_var *a = nl_matmul(c, nl_dropout(c, P, p, 1, &m->drop), v); /* [H, n, C/H] */
    a = nl_reshape(c, nl_contiguous(c, nl_permute(c, a, (int[]){1, 0, 2})), 2, (int64_t[]){n, C});
    a = nl_linear(c, a, m->Wo, m->bo);
    nl_var *g = nl_layernorm(c, nl_add(c, f, nl_dropout(c, a, p, 1, &m->drop)), m->g1, m->e1, 1e-5);
    nl_var *h = nl_linear(c, nl_dropout(c, nl_relu(c, nl_linear(c, g, m->F1, m->f1)), p, 1, &m->drop), m->F2, m->f2);
    return nl_layernorm(c, nl_add(c, g, nl_dropout(c, h, p, 1, &m->drop)), m->g2, m->e2, 1e-5);
}

static void test_train_mode_against_ops(void) {
    const int64_t n = 40; /* 4 heads x 40 x 40 = 6400 weights: 7 dropout tiles */
    for (int kind = NL_BF_ATTN; kind <= NL_BF_IDENTITY; kind++) {
        nl_bf_config cfg = small_cfg();
        nl_bf_net m;
        NLT_OK(nl_bf_net_init(&m, (nl_bf_kind)kind, &cfg, D_IN, K, 13));
        float f0[40 * 8], seed[40 * 8];
        nl_rng r;
        nl_rng_init(&r, 21, 3);
        for (int i = 0; i < n * 8; i++) { f0[i] = (float)fabs(nl_rng_normal(&r)); seed[i] = (float)nl_rng_normal(&r); }
        nl_rng drop0 = m.drop;
        float out[2][40 * 8], df[2][40 * 8];
        uint64_t ctr[2];
        for (int pass = 0; pass < 2; pass++) {
            nl_ctx *c = nl_ctx_new(0, 0);
            m.drop = drop0;
            nl_var *f = nl_leaf(c, nl_tensor_wrap(f0, NL_F32, 2, (int64_t[]){n, 8}), 1);
            nl_var *o = pass ? ref_layer(c, &m, f) : nl_bf_layer(c, &m, f, 1);
            NLT_CHECK(o != NULL, "%s", nl_last_error());
            if (!o) { nl_ctx_free(c); continue; }
            memcpy(out[pass], o->val.data, sizeof out[pass]);
            nl_tensor sd = nl_tensor_wrap(seed, NL_F32, 2, (int64_t[]){n, 8}); /* [n, 8] output gradient */
            NLT_OK(nl_backward_seed(c, o, &sd));
            memcpy(df[pass], f->grad.data, sizeof df[pass]);
            ctr[pass] = m.drop.counter;
            nl_params_zero_grad(&m.ps);
            nl_ctx_free(c);
        }
        double dv = 0, dg = 0, sv = 0, sg = 0;
        for (int i = 0; i < n * 8; i++) {
            dv = fmax(dv, fabs(out[0][i] - out[1][i]));
            dg = fmax(dg, fabs(df[0][i] - df[1][i]));
            sv = fmax(sv, fabs(out[1][i]));
            sg = fmax(sg, fabs(df[1][i]));
        }
        NLT_CHECK(ctr[0] == ctr[1] && ctr[0] > drop0.counter, "kind %d: dropout stream at %llu vs %llu", kind,
                  (unsigned long long)ctr[0], (unsigned long long)ctr[1]);
        /* the same masks (a different one changes outputs by O(1)); the control's weights are exactly 0 / 1, so
         * it agrees exactly; the attention only to float rounding (fused vs separate ops) */
        double tol = kind == NL_BF_IDENTITY ? 0 : 1e-5;
        NLT_CHECK(dv <= tol * (1 + sv) && dg <= tol * (1 + sg), "kind %d: layer vs separate ops: out %g (scale %g), df %g (scale %g)",
                  kind, dv, sv, dg, sg);
        nl_bf_net_free(&m);
    }
}

static void test_identity_control_per_sample(void) {
    nl_bf_config cfg = small_cfg();
    nl_bf_net m;
    NLT_OK(nl_bf_net_init(&m, NL_BF_IDENTITY, &cfg, D_IN, K, 3));
    float x[N * D_IN];
    fill_x(x, N, 1);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_set_grad_enabled(c, 0);
    nl_var *f = nl_bf_features(c, &m, nl_input(c, nl_tensor_wrap(x, NL_F32, 2, (int64_t[]){N, D_IN})));
    nl_var *f1 = nl_bf_features(c, &m, nl_input(c, nl_tensor_wrap(x + 3 * D_IN, NL_F32, 2, (int64_t[]){1, D_IN})));
    nl_var *a = nl_bf_layer(c, &m, f, 0), *b = nl_bf_layer(c, &m, f1, 0);
    double d = 0;
    for (int j = 0; j < cfg.dim; j++) d = fmax(d, fabs(((float *)a->val.data)[3 * cfg.dim + j] - ((float *)b->val.data)[j]));
    NLT_CHECK(d < 1e-5, "identity attention: a row depends on the rest of the batch (%g)", d);
    nl_ctx_free(c);
    nl_bf_net_free(&m);
    NLT_OK(nl_bf_net_init(&m, NL_BF_NONE, &cfg, D_IN, K, 3));
    c = nl_ctx_new(0, 0);
    nl_var *f0 = nl_bf_features(c, &m, nl_input(c, nl_tensor_wrap(x, NL_F32, 2, (int64_t[]){N, D_IN})));
    NLT_CHECK(nl_bf_layer(c, &m, f0, 1) == NULL && nl_last_status() == NL_EINVAL, "the plain model has no layer");
    nl_ctx_free(c);
    nl_bf_net_free(&m);
}

/* sum of |grad| over the parameters whose name starts with prefix */
static double grad_mass(const nl_params *ps, const char *prefix) {
    double s = 0;
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        if (strncmp(p->name, prefix, strlen(prefix))) continue;
        const float *g = (const float *)ps->grad + p->offset;
        for (int64_t j = 0; j < p->numel; j++) s += fabs(g[j]);
    }
    return s;
}

static void test_shared_classifier(void) {
    nl_bf_config cfg = small_cfg();
    nl_bf_net m;
    NLT_OK(nl_bf_net_init(&m, NL_BF_ATTN, &cfg, D_IN, K, 5));
    float x[N * D_IN];
    fill_x(x, N, 9);
    int32_t y[2 * N];
    for (int i = 0; i < N; i++) y[i] = y[N + i] = i % K;
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_rng saved = m.drop;
    int64_t rows = 0;
    nl_var *xin = nl_input(c, nl_tensor_wrap(x, NL_F32, 2, (int64_t[]){N, D_IN}));
    nl_var *lg = nl_bf_train_logits(c, &m, xin, &rows);
    NLT_CHECK(lg && rows == 2 * N && lg->val.shape[0] == 2 * N && lg->val.shape[1] == K, "train logits [2N, K]");
    /* recompute both halves by hand with the same dropout draws: rows 0..N-1 = classifier(BF(f)), N..2N-1 = classifier(f) */
    nl_bf_net copy = m;
    copy.drop = saved;
    nl_var *f = nl_bf_features(c, &copy, xin);
    nl_var *top = nl_bf_classify(c, &copy, nl_bf_layer(c, &copy, f, 1));
    nl_var *bot = nl_bf_classify(c, &copy, f);
    double d1 = 0, d2 = 0;
    for (int i = 0; i < N * K; i++) {
        d1 = fmax(d1, fabs(((float *)lg->val.data)[i] - ((float *)top->val.data)[i]));
        d2 = fmax(d2, fabs(((float *)lg->val.data)[N * K + i] - ((float *)bot->val.data)[i]));
    }
    NLT_CHECK(d1 < 1e-5 && d2 < 1e-5, "halves: BF half %g, plain half %g", d1, d2);
    /* the gradient reaches the one classifier from each half alone; the plain half gives the BatchFormer none */
    nl_var *la = nl_cross_entropy(c, nl_slice(c, lg, 0, 0, N, 1), y, 0, -1);
    NLT_OK(nl_backward(c, la));
    double cls_a = grad_mass(&m.ps, "cls."), bf_a = grad_mass(&m.ps, "bf.");
    nl_params_zero_grad(&m.ps);
    nl_ctx_reset(c);
    m.drop = saved;
    lg = nl_bf_train_logits(c, &m, nl_input(c, nl_tensor_wrap(x, NL_F32, 2, (int64_t[]){N, D_IN})), NULL);
    nl_var *lb = nl_cross_entropy(c, nl_slice(c, lg, 0, N, 2 * N, 1), y, 0, -1);
    NLT_OK(nl_backward(c, lb));
    double cls_b = grad_mass(&m.ps, "cls."), bf_b = grad_mass(&m.ps, "bf."), back_b = grad_mass(&m.ps, "fc");
    NLT_CHECK(cls_a > 1e-6 && cls_b > 1e-6, "classifier gradient from the BF half %g and from the plain half %g", cls_a, cls_b);
    NLT_CHECK(bf_a > 1e-6 && bf_b == 0, "BatchFormer gradient: BF half %g, plain half %g (must be 0)", bf_a, bf_b);
    NLT_CHECK(back_b > 1e-6, "backbone gradient from the plain half %g", back_b);
    nl_params_zero_grad(&m.ps);
    nl_ctx_free(c);
    nl_bf_net_free(&m);
}

static void test_balanced_softmax_hand(void) {
    /* logits (1, 2, 0) label 0 and (0.5, -1, 3) label 2, prior (0.5, 0.3, 0.2):
     * -log(0.5 e / (0.5 e + 0.3 e^2 + 0.2)) = 1.0217747543805378; -log(0.2 e^3 / (0.5 e^0.5 + 0.3 e^-1 + 0.2 e^3)) =
     * 0.20919549173485152 (worked out with a calculator); mean 0.6154851230576946 */
    float l[6] = {1, 2, 0, 0.5f, -1, 3}, prior[3] = {0.5f, 0.3f, 0.2f};
    int32_t y[2] = {0, 2};
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *lg = nl_input(c, nl_tensor_wrap(l, NL_F32, 2, (int64_t[]){2, 3}));
    nl_var *bs = nl_bf_loss_fn(c, lg, y, NL_BF_BALANCED, prior);
    NLT_CHECK(bs != NULL, "%s", nl_last_error());
    NLT_NEAR(nl_item(bs), (1.0217747543805378 + 0.20919549173485152) / 2, 2e-6);
    nl_var *ce = nl_bf_loss_fn(c, lg, y, NL_BF_CE, NULL);
    NLT_NEAR(nl_item(ce), (log(exp(1) + exp(2) + 1) - 1 + log(exp(0.5) + exp(-1) + exp(3)) - 3) / 2, 2e-6);
    float bad[3] = {0.5f, 0.5f, 0};
    NLT_CHECK(nl_bf_loss_fn(c, lg, y, NL_BF_BALANCED, bad) == NULL && nl_last_status() == NL_EINVAL, "zero prior rejected");
    nl_ctx_free(c);
}

static nl_status synth(nl_dataset *ds, int64_t per_class, uint64_t seed) {
    nl_status s = nl_dataset_alloc(ds, per_class * K, D_IN, K);
    if (s) return s;
    nl_rng r;
    nl_rng_init(&r, seed, 11);
    for (int64_t i = 0; i < ds->n; i++) {
        int32_t k = (int32_t)(i % K);
        ds->y[i] = k;
        for (int j = 0; j < D_IN; j++) ds->x[i * D_IN + j] = (float)(0.7 * nl_rng_normal(&r) + (j == k ? 2.0 : 0.0));
    }
    return NL_OK;
}

static void test_longtail(void) {
    nl_dataset ds, lt;
    NLT_OK(synth(&ds, 100, 1));
    int64_t counts[K];
    NLT_OK(nl_bf_longtail(&ds, 10, 100, 0, &lt, counts));
    int64_t want_total = 0;
    for (int k = 0; k < K; k++) {
        int64_t w = (int64_t)floor(100 * pow(10, -k / 9.0) + 1e-9);
        NLT_CHECK(counts[k] == w, "class %d keeps %lld (want %lld)", k, (long long)counts[k], (long long)w);
        want_total += w;
    }
    NLT_CHECK(counts[0] == 100 && counts[9] == 10, "ends %lld %lld", (long long)counts[0], (long long)counts[9]);
    NLT_CHECK(lt.n == want_total, "rows %lld", (long long)lt.n);
    int64_t seen[K] = {0};
    for (int64_t i = 0; i < lt.n; i++) seen[lt.y[i]]++;
    for (int k = 0; k < K; k++) NLT_CHECK(seen[k] == counts[k], "class %d rows", k);
    int g[K];
    NLT_OK(nl_bf_groups(counts, K, g));
    NLT_CHECK(g[0] == 0 && g[2] == 0 && g[3] == 1 && g[6] == 1 && g[7] == 2 && g[9] == 2, "groups 3/4/3");
    int64_t rev[K];
    for (int k = 0; k < K; k++) rev[k] = counts[K - 1 - k];
    NLT_OK(nl_bf_groups(rev, K, g));
    NLT_CHECK(g[0] == 2 && g[9] == 0, "groups follow the counts, not the class index");
    nl_dataset_free(&lt);
    /* bad input: ratio < 1 (and NaN), with a message that says what is wrong */
    NLT_CHECK(nl_bf_longtail(&ds, 0.5, 100, 0, &lt, NULL) == NL_EINVAL, "ratio 0.5");
    NLT_CHECK(strstr(nl_last_error(), "imbalance ratio 0.5 must be >= 1") != NULL, "message: %s", nl_last_error());
    NLT_CHECK(nl_bf_longtail(&ds, NAN, 100, 0, &lt, NULL) == NL_EINVAL, "ratio NaN");
    NLT_CHECK(nl_bf_longtail(&ds, 10, 101, 0, &lt, NULL) == NL_EINVAL, "more rows than the class has");
    nl_bf_config cfg = nl_bf_defaults();
    nl_dataset tr, te;
    cfg.imbalance = 0.99;
    NLT_CHECK(nl_bf_load(&cfg, &tr, &te, counts) == NL_EINVAL, "load with ratio 0.99");
    nl_dataset_free(&ds);
}

static void test_training(void) {
    nl_dataset tr, te;
    NLT_OK(synth(&tr, 40, 1));
    NLT_OK(synth(&te, 20, 2));
    int64_t counts[K];
    for (int k = 0; k < K; k++) counts[k] = 40;
    nl_bf_config cfg = small_cfg();
    cfg.epochs = 20;
    cfg.batch = 32;
    cfg.lr = 1e-2;
    for (int kind = 0; kind < 3; kind++)
        for (int loss = 0; loss < 2; loss++) {
            nl_bf_eval ev;
            NLT_OK(nl_bf_run(&cfg, (nl_bf_kind)kind, (nl_bf_loss)loss, &tr, &te, counts, &ev, NULL));
            NLT_CHECK(ev.overall > 0.6, "%s/%s: accuracy %.3f on an easy problem", nl_bf_kind_name((nl_bf_kind)kind),
                      nl_bf_loss_name((nl_bf_loss)loss), ev.overall);
            NLT_CHECK(isfinite(ev.few) && isfinite(ev.many) && isfinite(ev.medium), "group accuracies");
        }
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
}

static void put3(nl_exp_result *r, const char *key, double a, double b, double c) {
    char name[96];
    double v[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s_seed%d", key, i + 1);
        nl_exp_set(r, name, v[i]);
    }
}

static void test_judge(void) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    nl_exp_set(&r, "seeds", 3);
    put3(&r, "ce_plain_few", 0.30, 0.32, 0.31);
    put3(&r, "ce_bf_few", 0.35, 0.36, 0.36);
    put3(&r, "bs_plain_few", 0.50, 0.52, 0.51);
    put3(&r, "bs_bf_few", 0.53, 0.55, 0.545);
    put3(&r, "ce_plain_overall", 0.70, 0.71, 0.72);
    put3(&r, "ce_bf_overall", 0.70, 0.71, 0.72);
    put3(&r, "bs_plain_overall", 0.75, 0.76, 0.77);
    put3(&r, "bs_bf_overall", 0.749, 0.761, 0.768); /* -0.07 +- 0.1 points */
    char msg[600];
    NLT_CHECK(nl_exp_batchformer.judge(&nl_exp_batchformer, &r, NL_MODE_QUICK, msg, sizeof msg) == 1, "all pass: %s", msg);
    NLT_CHECK(r.n_parts == 4, "4 parts (%d)", r.n_parts);
    put3(&r, "bs_bf_overall", 0.74, 0.75, 0.76); /* a one-point drop */
    NLT_CHECK(nl_exp_batchformer.judge(&nl_exp_batchformer, &r, NL_MODE_QUICK, msg, sizeof msg) == 0, "1 point drop fails");
    put3(&r, "bs_bf_overall", 0.75, 0.76, 0.77);
    put3(&r, "ce_bf_few", 0.30, 0.33, 0.30); /* no consistent gain */
    NLT_CHECK(nl_exp_batchformer.judge(&nl_exp_batchformer, &r, NL_MODE_QUICK, msg, sizeof msg) == 0, "no few-class gain fails");
    put3(&r, "ce_bf_few", 0.35, 0.36, 0.36);
    nl_exp_set(&r, "seeds", 2);
    NLT_CHECK(nl_exp_batchformer.judge(&nl_exp_batchformer, &r, NL_MODE_QUICK, msg, sizeof msg) == 0, "2 seeds fail");
    nl_exp_result_free(&r);
}

static void test_cli(void) {
    char *help[] = {"train", "--help"};
    NLT_CHECK(nl_bf_cli(2, help) == NL_CLI_OK, "--help");
    char *bad_ratio[] = {"train", "--imbalance", "0.5", "--quiet"};
    int rc = nl_bf_cli(4, bad_ratio);
    NLT_CHECK(rc != NL_CLI_OK, "--imbalance 0.5 exits non-zero (%d)", rc);
    NLT_CHECK(strstr(nl_last_error(), "imbalance ratio 0.5 must be >= 1") != NULL, "message: %s", nl_last_error());
    char *bad_loss[] = {"train", "--loss", "focal"};
    NLT_CHECK(nl_bf_cli(3, bad_loss) == NL_CLI_USAGE, "unknown loss");
    char *unk[] = {"fit"};
    NLT_CHECK(nl_bf_cli(1, unk) == NL_CLI_USAGE, "unknown subcommand");
}

int main(void) {
    NLT_RUN(test_test_time_batch_independent);
    NLT_RUN(test_layer_against_loops);
    NLT_RUN(test_identity_control_per_sample);
    NLT_RUN(test_train_mode_against_ops);
    NLT_RUN(test_shared_classifier);
    NLT_RUN(test_balanced_softmax_hand);
    NLT_RUN(test_longtail);
    NLT_RUN(test_training);
    NLT_RUN(test_judge);
    NLT_RUN(test_cli);
    return nlt_finish();
}
