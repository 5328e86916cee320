/* Model extensions: an MLP with BatchNorm (linear without bias -> BatchNorm1d -> act per hidden layer) and CNN
 * per-block pooling (pool_mask). Names, forward values against hand computations, f64 gradient checks, checkpoint
 * round trips, and that checkpoints without the new metadata keys load as before. */
#include "nltest.h"
#include "nnlab/model.h"
#include "nnlab/safetensors.h"
#include <unistd.h>

static void set_vals(nl_model *m, const char *name, const double *v, int64_t n) {
    nl_param *p = nl_params_find(&m->ps, name);
    NLT_CHECK(p && p->numel == n, "%s: %lld values", name, p ? (long long)p->numel : -1LL);
    if (!p || p->numel != n) return;
    for (int64_t i = 0; i < n; i++) {
        if (m->ps.dtype == NL_F32) ((float *)m->ps.data)[p->offset + i] = (float)v[i];
        else ((double *)m->ps.data)[p->offset + i] = v[i];
    }
}

/* logits of the model in eval mode for n rows of x (f32 model) into out [n, n_classes] */
static int eval_logits(nl_model *m, const float *x, int64_t n, double *out) {
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *y = nl_model_forward(m, c, nl_model_input(m, c, x, n), 0);
    int ok = y != NULL;
    if (ok)
        for (int64_t i = 0; i < n * m->n_classes; i++)
            out[i] = y->val.dtype == NL_F32 ? ((float *)y->val.data)[i] : ((double *)y->val.data)[i];
    nl_ctx_free(c);
    return ok;
}

static void test_mlp_bn_layout_and_values(void) {
    int64_t s[3] = {3, 2, 2};
    nl_model_config cfg = nl_mlp_config(3, s, NL_ACT_RELU, 0.0);
    NLT_CHECK(cfg.batchnorm == 0, "nl_mlp_config: no BatchNorm by default");
    cfg.batchnorm = 1;
    nl_model m;
    NLT_OK(nl_model_init(&m, &cfg, 1));
    const char *names[8] = {"fc1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "fc2.weight", "fc2.bias", NULL};
    NLT_CHECK(m.ps.n == 7, "tensors %d", m.ps.n);
    for (int i = 0; i < 7 && i < m.ps.n; i++) NLT_CHECK(!strcmp(m.ps.p[i]->name, names[i]), "tensor %d is %s", i, m.ps.p[i]->name);
    NLT_CHECK(nl_params_find(&m.ps, "fc1.bias") == NULL, "no bias before BatchNorm");
    NLT_CHECK(nl_model_num_params(&m, 1) == 6 + 4 + 6, "trainable %lld", (long long)nl_model_num_params(&m, 1));
    /* hand values: W1 [2,3], gamma, beta, mean, var, W2 [2,2], b2 */
    const double w1[6] = {1, -1, 0.5, 0.25, 2, -1}, g[2] = {2, 0.5}, be[2] = {0.1, -0.2}, mu[2] = {0.3, -0.4}, var[2] = {4, 0.25};
    const double w2[4] = {1, 2, -3, 0.5}, b2[2] = {0.05, -0.05};
    set_vals(&m, "fc1.weight", w1, 6);
    set_vals(&m, "bn1.weight", g, 2);
    set_vals(&m, "bn1.bias", be, 2);
    set_vals(&m, "bn1.running_mean", mu, 2);
    set_vals(&m, "bn1.running_var", var, 2);
    set_vals(&m, "fc2.weight", w2, 4);
    set_vals(&m, "fc2.bias", b2, 2);
    const float x[6] = {0.5f, 1.0f, -1.0f, 2.0f, 0.0f, 1.0f};
    double y[4], want[4];
    for (int r = 0; r < 2; r++) {
        double a[2];
        for (int k = 0; k < 2; k++) {
            double z = 0;
            for (int j = 0; j < 3; j++) z += w1[k * 3 + j] * x[r * 3 + j];
            double b = g[k] * (z - mu[k]) / sqrt(var[k] + cfg.bn_eps) + be[k];
            a[k] = b > 0 ? b : 0;
        }
        for (int o = 0; o < 2; o++) want[r * 2 + o] = w2[o * 2] * a[0] + w2[o * 2 + 1] * a[1] + b2[o];
    }
    NLT_CHECK(eval_logits(&m, x, 2, y), "forward: %s", nl_last_error());
    for (int i = 0; i < 4; i++) NLT_NEAR(y[i], want[i], 1e-5);
    nl_model_free(&m);
}

static double loss_of(nl_model *m, nl_ctx *c, const float *x, const int32_t *y, int64_t n, int backward) {
    nl_ctx_reset(c);
    nl_var *l = nl_cross_entropy(c, nl_model_forward(m, c, nl_model_input(m, c, x, n), 1), y, 0.0, -1);
    if (!l) return NAN;
    if (backward) {
        nl_params_zero_grad(&m->ps);
        if (nl_backward(c, l)) return NAN;
    }
    return nl_item(l);
}

/* central differences on every trainable entry (f64 model, BatchNorm in train mode) */
static void gradcheck(const char *what, nl_model *m, int64_t n) {
    nl_ctx *c = nl_ctx_new(0, 0);
    float *x = malloc((size_t)(n * m->in_dim) * sizeof *x); /* [n, in_dim] */
    int32_t *y = malloc((size_t)n * sizeof *y);                /* [n] */
    nl_rng r;
    nl_rng_init(&r, 7, 3);
    for (int64_t i = 0; i < n * m->in_dim; i++) x[i] = (float)nl_rng_uniform(&r);
    for (int64_t i = 0; i < n; i++) y[i] = (int32_t)((i * 5 + 1) % m->n_classes);
    double L = loss_of(m, c, x, y, n, 1);
    NLT_CHECK(isfinite(L), "%s: loss %g: %s", what, L, nl_last_error());
    double *ana = malloc((size_t)m->ps.total * sizeof *ana); /* [total] */
    memcpy(ana, m->ps.grad, (size_t)m->ps.total * sizeof *ana);
    double *pv = m->ps.data;
    int64_t bad = 0, checked = 0;
    for (int t = 0; t < m->ps.n; t++) {
        nl_param *p = m->ps.p[t];
        if (!p->var.requires_grad) continue;
        for (int64_t k = 0; k < p->numel && k < 60; k++) {
            int64_t i = p->offset + k;
            double v = pv[i];
            pv[i] = v + 1e-6;
            double lp = loss_of(m, c, x, y, n, 0);
            pv[i] = v - 1e-6;
            double lm = loss_of(m, c, x, y, n, 0);
            pv[i] = v;
            double num = (lp - lm) / 2e-6;
            checked++;
            if (fabs(num - ana[i]) > 1e-7 + 1e-4 * fmax(fabs(num), fabs(ana[i]))) {
                if (!bad) fprintf(stderr, "%s: %s[%lld] numeric %.10g analytic %.10g\n", what, p->name, (long long)k, num, ana[i]);
                bad++;
            }
        }
    }
    NLT_CHECK(checked > 20 && bad == 0, "%s: %lld of %lld entries off", what, (long long)bad, (long long)checked);
    free(ana);
    free(x);
    free(y);
    nl_ctx_free(c);
}

static void test_gradcheck_ext_f64(void) {
    int64_t s[4] = {6, 5, 4, 3};
    nl_model_config cfg = nl_mlp_config(4, s, NL_ACT_TANH, 0.0);
    cfg.batchnorm = 1;
    cfg.dtype = NL_F64;
    nl_model m;
    NLT_OK(nl_model_init(&m, &cfg, 3));
    gradcheck("mlp+bn f64", &m, 5);
    nl_model_free(&m);
    int ch[3] = {2, 3, 2};
    nl_model_config cc = nl_cnn_config(1, 6, 6, 3, ch, 0, 3);
    cc.pool_mask = 0x2; /* only block 2 pools */
    cc.dtype = NL_F64;
    NLT_OK(nl_model_init(&m, &cc, 4));
    nl_param *fc = nl_params_find(&m.ps, "fc1.weight");
    NLT_CHECK(fc && fc->var.val.shape[1] == 2 * 3 * 3, "flatten 2x3x3");
    gradcheck("cnn pool_mask f64", &m, 3);
    nl_model_free(&m);
}

static void test_pool_mask_values_and_config(void) {
    /* 1 x 4 x 4 input, one 1x1 conv (w 2, bias -1) -> ReLU -> [pool] -> fc(2) */
    int ch[1] = {1};
    nl_model_config cfg = nl_cnn_config(1, 4, 4, 1, ch, 0, 2);
    NLT_CHECK(cfg.pool_mask == NL_MODEL_POOL_ALL, "default mask pools every block");
    cfg.kernel = 1;
    cfg.batchnorm = 0;
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)((i * 7) % 5) * 0.25f;
    double cw = 2, cb = -1, act[16];
    for (int i = 0; i < 16; i++) act[i] = fmax(0.0, cw * x[i] + cb);
    for (int pass = 0; pass < 2; pass++) {
        cfg.pool_mask = pass ? 0x1u : 0x0u;
        int nf = pass ? 4 : 16;
        nl_model m;
        NLT_OK(nl_model_init(&m, &cfg, 2));
        double fw[32], fb[2] = {0.5, -0.5}, feat[16], y[2];
        for (int i = 0; i < 2 * nf; i++) fw[i] = 0.1 * (i % 7) - 0.2;
        set_vals(&m, "conv1.weight", &cw, 1);
        set_vals(&m, "conv1.bias", &cb, 1);
        set_vals(&m, "fc1.weight", fw, 2 * nf);
        set_vals(&m, "fc1.bias", fb, 2);
        if (pass)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    double mx = -1e30;
                    for (int a = 0; a < 2; a++)
                        for (int b = 0; b < 2; b++) mx = fmax(mx, act[(2 * i + a) * 4 + 2 * j + b]);
                    feat[i * 2 + j] = mx;
                }
        else memcpy(feat, act, sizeof act);
        NLT_CHECK(eval_logits(&m, x, 1, y), "forward: %s", nl_last_error());
        for (int o = 0; o < 2; o++) {
            double want = fb[o];
            for (int k = 0; k < nf; k++) want += fw[o * nf + k] * feat[k];
            NLT_NEAR(y[o], want, 1e-5);
        }
        nl_model_free(&m);
    }
    /* a VGG-style stack of 10 conv blocks fits 28x28 when only some blocks pool */
    int c10[10] = {8, 8, 16, 16, 16, 32, 32, 32, 32, 32};
    nl_model_config v = nl_cnn_config(1, 28, 28, 10, c10, 0, 10);
    NLT_CHECK(nl_model_config_check(&v) != NL_OK, "10 pooling blocks do not fit 28x28");
    v.pool_mask = (1u << 1) | (1u << 4) | (1u << 9);
    NLT_OK(nl_model_config_check(&v));
    int h, w;
    nl_model_block_hw(&v, 9, &h, &w);
    NLT_CHECK(h == 3 && w == 3, "28 -> 14 -> 7 -> 3: %dx%d", h, w);
    NLT_CHECK(nl_model_block_pools(&v, 1) && !nl_model_block_pools(&v, 2), "block_pools");
}

static void roundtrip(const char *path, nl_model *m, const float *x, int64_t n) {
    double a[64], b[64];
    NLT_CHECK(eval_logits(m, x, n, a), "forward");
    NLT_OK(nl_model_save(m, path, 0, NULL, NULL));
    nl_model l;
    NLT_OK(nl_model_load(&l, path));
    NLT_CHECK(l.cfg.batchnorm == m->cfg.batchnorm, "batchnorm %d vs %d", l.cfg.batchnorm, m->cfg.batchnorm);
    if (m->cfg.kind == NL_MODEL_CNN) {
        unsigned all = (1u << m->cfg.n_blocks) - 1u;
        NLT_CHECK((l.cfg.pool_mask & all) == (m->cfg.pool_mask & all), "pool_mask %x vs %x", l.cfg.pool_mask, m->cfg.pool_mask);
    }
    NLT_CHECK(l.ps.n == m->ps.n && l.ps.total == m->ps.total, "same tensors");
    NLT_CHECK(eval_logits(&l, x, n, b), "forward loaded");
    for (int64_t i = 0; i < n * m->n_classes; i++) NLT_CHECK(a[i] == b[i], "logit %lld: %g vs %g", (long long)i, a[i], b[i]);
    nl_model_free(&l);
}

static void test_checkpoints(void) {
    char dir[] = "/tmp/nltest_modelext_XXXXXX";
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    float x[4 * 64];
    for (int i = 0; i < 4 * 64; i++) x[i] = (float)sin(0.37 * i);
    nl_model m;
    /* MLP with BatchNorm, non-default running statistics */
    int64_t s[4] = {64, 12, 8, 5};
    nl_model_config cfg = nl_mlp_config(4, s, NL_ACT_RELU, 0.0);
    cfg.batchnorm = 1;
    cfg.bn_eps = 1e-3;
    NLT_OK(nl_model_init(&m, &cfg, 9));
    double mu[12], var[12];
    for (int i = 0; i < 12; i++) mu[i] = 0.1 * i, var[i] = 0.5 + 0.2 * i;
    set_vals(&m, "bn1.running_mean", mu, 12);
    set_vals(&m, "bn1.running_var", var, 12);
    roundtrip(path, &m, x, 4);
    nl_model_config back;
    NLT_OK(nl_model_config_from_file(path, &back));
    NLT_CHECK(back.batchnorm == 1 && back.bn_eps == 1e-3, "mlp bn metadata");
    nl_model_free(&m);
    /* plain MLP: no BatchNorm key is written (older checkpoints look the same), loads with batchnorm 0 */
    cfg.batchnorm = 0;
    NLT_OK(nl_model_init(&m, &cfg, 9));
    roundtrip(path, &m, x, 4);
    nl_st_file f;
    NLT_OK(nl_safetensors_open(path, &f));
    NLT_CHECK(nl_safetensors_get_metadata(&f, "nnlab.batchnorm") == NULL, "plain MLP: no batchnorm key");
    nl_safetensors_close(&f);
    nl_model_free(&m);
    /* CNN with a pool mask */
    int ch[3] = {4, 4, 6};
    nl_model_config cc = nl_cnn_config(1, 8, 8, 3, ch, 7, 5);
    cc.pool_mask = 0x5;
    NLT_OK(nl_model_init(&m, &cc, 4));
    roundtrip(path, &m, x, 4);
    nl_model_free(&m);
    /* default mask: no key, so the file is what an older nnlab wrote */
    cc.pool_mask = NL_MODEL_POOL_ALL;
    NLT_OK(nl_model_init(&m, &cc, 4));
    roundtrip(path, &m, x, 4);
    NLT_OK(nl_safetensors_open(path, &f));
    NLT_CHECK(nl_safetensors_get_metadata(&f, "nnlab.pool_mask") == NULL, "default mask: no key");
    nl_safetensors_close(&f);
    nl_model_free(&m);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_mlp_bn_layout_and_values);
    NLT_RUN(test_pool_mask_values_and_config);
    NLT_RUN(test_gradcheck_ext_f64);
    NLT_RUN(test_checkpoints);
    return nlt_finish();
}
