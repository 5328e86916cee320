/* Models: shapes, parameter names and counts, init statistics, determinism, the parametrisation hook, dropout
 * and BatchNorm modes, full-model gradient checks (f64) of an MLP and a tiny CNN, checkpoints. */
#include "nltest.h"
#include "nnlab/model.h"
#include "nnlab/safetensors.h"
#include "nnlab/train.h"
#include <unistd.h>

static float *rand_input(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)n * sizeof *x);
    nl_rng r;
    nl_rng_init(&r, seed, 5);
    for (int64_t i = 0; i < n; i++) x[i] = (float)nl_rng_uniform(&r);
    return x;
}

static nl_model_config mlp_cfg(void) {
    int64_t s[4] = {784, 256, 256, 10};
    return nl_mlp_config(4, s, NL_ACT_RELU, 0.0);
}

static nl_model_config cnn_cfg(void) {
    int ch[2] = {16, 32};
    return nl_cnn_config(1, 28, 28, 2, ch, 128, 10);
}

static void test_mlp_shapes_and_counts(void) {
    nl_model m;
    nl_model_config cfg = mlp_cfg();
    NLT_OK(nl_model_init(&m, &cfg, 1));
    NLT_CHECK(m.ps.n == 6, "tensors %d", m.ps.n);
    NLT_CHECK(nl_model_num_params(&m, 0) == 269322, "params %lld", (long long)nl_model_num_params(&m, 0));
    NLT_CHECK(nl_model_num_params(&m, 1) == 269322, "trainable %lld", (long long)nl_model_num_params(&m, 1));
    const char *names[6] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"};
    for (int i = 0; i < 6; i++) NLT_CHECK(!strcmp(m.ps.p[i]->name, names[i]), "tensor %d is %s", i, m.ps.p[i]->name);
    nl_param *w = nl_params_find(&m.ps, "fc1.weight");
    NLT_CHECK(w && w->var.val.shape[0] == 256 && w->var.val.shape[1] == 784, "fc1.weight shape");
    NLT_CHECK(nl_model_param_info(&m, "fc1.weight")->role == NL_ROLE_WEIGHT_IN, "fc1 role");
    NLT_CHECK(nl_model_param_info(&m, "fc2.weight")->role == NL_ROLE_WEIGHT_HIDDEN, "fc2 role");
    NLT_CHECK(nl_model_param_info(&m, "fc3.weight")->role == NL_ROLE_WEIGHT_OUT, "fc3 role");
    NLT_CHECK(nl_model_param_info(&m, "fc3.bias")->role == NL_ROLE_BIAS, "bias role");
    NLT_CHECK(nl_model_param_info(&m, "fc2.weight")->fan_in == 256 && nl_model_param_info(&m, "fc2.weight")->fan_out == 256, "fans");
    nl_ctx *c = nl_ctx_new(0, 0);
    float *x = rand_input(5 * 784, 3);
    nl_var *y = nl_model_forward(&m, c, nl_model_input(&m, c, x, 5), 1);
    NLT_CHECK(y && y->val.ndim == 2 && y->val.shape[0] == 5 && y->val.shape[1] == 10, "logits shape");
    /* wrong input width is an error naming the expected shape */
    int64_t bad[2] = {5, 783};
    nl_var *yb = nl_model_forward(&m, c, nl_input(c, nl_tensor_wrap(x, NL_F32, 2, bad)), 0);
    NLT_CHECK(!yb && strstr(nl_last_error(), "[N, 784]"), "bad input: %s", nl_last_error());
    free(x);
    nl_ctx_free(c);
    nl_model_free(&m);
}

static void test_cnn_shapes_and_counts(void) {
    nl_model m;
    nl_model_config cfg = cnn_cfg();
    NLT_OK(nl_model_init(&m, &cfg, 1));
    /* conv1 144, bn1 4x16, conv2 4608, bn2 4x32, fc1 1568*128+128, fc2 128*10+10 */
    int64_t all = 144 + 64 + 4608 + 128 + 1568 * 128 + 128 + 1290, buffers = 2 * 16 + 2 * 32;
    NLT_CHECK(nl_model_num_params(&m, 0) == all, "params %lld vs %lld", (long long)nl_model_num_params(&m, 0), (long long)all);
    NLT_CHECK(nl_model_num_params(&m, 1) == all - buffers, "trainable %lld", (long long)nl_model_num_params(&m, 1));
    const char *names[] = {"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "conv2.weight",
                           "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var", "fc1.weight", "fc1.bias",
                           "fc2.weight", "fc2.bias"};
    NLT_CHECK(m.ps.n == 14, "tensors %d", m.ps.n);
    for (int i = 0; i < 14 && i < m.ps.n; i++) NLT_CHECK(!strcmp(m.ps.p[i]->name, names[i]), "tensor %d is %s", i, m.ps.p[i]->name);
    NLT_CHECK(!nl_params_find(&m.ps, "conv1.bias"), "no conv bias before BatchNorm");
    nl_param *rm = nl_params_find(&m.ps, "bn1.running_mean"), *rv = nl_params_find(&m.ps, "bn2.running_var");
    NLT_CHECK(rm && !rm->var.requires_grad && rv && !rv->var.requires_grad, "running stats are not trainable");
    NLT_CHECK(nl_model_param_info(&m, "bn1.running_mean")->role == NL_ROLE_BUFFER, "buffer role");
    NLT_CHECK(nl_model_param_info(&m, "conv1.weight")->fan_in == 9 && nl_model_param_info(&m, "conv2.weight")->fan_in == 144, "conv fans");
    for (int64_t k = 0; k < 32; k++) {
        NLT_CHECK(nl_tensor_get(&rv->var.val, k) == 1.0, "running_var init 1");
        NLT_CHECK(nl_tensor_get(&nl_params_find(&m.ps, "bn2.weight")->var.val, k) == 1.0, "bn weight 1");
        NLT_CHECK(nl_tensor_get(&nl_params_find(&m.ps, "bn2.bias")->var.val, k) == 0.0, "bn bias 0");
    }
    nl_ctx *c = nl_ctx_new(0, 0);
    float *x = rand_input(4 * 784, 4);
    nl_var *y = nl_model_forward(&m, c, nl_model_input(&m, c, x, 4), 1);
    NLT_CHECK(y && y->val.shape[0] == 4 && y->val.shape[1] == 10, "logits shape: %s", nl_last_error());
    /* train mode updated the running mean away from 0 */
    double s = 0;
    for (int64_t k = 0; k < 16; k++) s += fabs(nl_tensor_get(&rm->var.val, k));
    NLT_CHECK(s > 0, "running mean updated in train mode");
    /* [N, C, H, W] input is accepted too and gives the same logits in eval mode */
    int64_t s4[4] = {4, 1, 28, 28};
    nl_var *a = nl_model_forward(&m, c, nl_model_input(&m, c, x, 4), 0);
    nl_var *b = nl_model_forward(&m, c, nl_input(c, nl_tensor_wrap(x, NL_F32, 4, s4)), 0);
    double d = 0;
    for (int64_t i = 0; a && b && i < 40; i++) d = fmax(d, fabs(nl_tensor_get(&a->val, i) - nl_tensor_get(&b->val, i)));
    NLT_CHECK(a && b && d == 0, "4-d input differs by %g", d);
    free(x);
    nl_ctx_free(c);
    nl_model_free(&m);
}

static void test_config_errors(void) {
    nl_model m;
    int64_t s1[1] = {784};
    nl_model_config c = nl_mlp_config(1, s1, NL_ACT_RELU, 0);
    NLT_CHECK(nl_model_init(&m, &c, 0) == NL_EINVAL && strstr(nl_last_error(), "sizes given"), "%s", nl_last_error());
    int64_t s2[3] = {784, 0, 10};
    c = nl_mlp_config(3, s2, NL_ACT_RELU, 0);
    NLT_CHECK(nl_model_init(&m, &c, 0) == NL_EINVAL, "zero width");
    int64_t s3[2] = {784, 10};
    c = nl_mlp_config(2, s3, NL_ACT_RELU, 1.0);
    NLT_CHECK(nl_model_init(&m, &c, 0) == NL_EINVAL && strstr(nl_last_error(), "dropout"), "%s", nl_last_error());
    int ch[4] = {8, 8, 8, 8};
    c = nl_cnn_config(1, 8, 8, 4, ch, 0, 10);
    NLT_CHECK(nl_model_init(&m, &c, 0) == NL_EINVAL && strstr(nl_last_error(), "shrinks"), "%s", nl_last_error());
}

/* PyTorch's defaults: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases: mean 0, variance bound^2/3. */
static void test_init_statistics(void) {
    nl_model m;
    nl_model_config cfg = mlp_cfg();
    NLT_OK(nl_model_init(&m, &cfg, 7));
    const char *names[3] = {"fc1.weight", "fc2.weight", "fc1.bias"};
    const double fan[3] = {784, 256, 784};
    for (int k = 0; k < 3; k++) {
        nl_param *p = nl_params_find(&m.ps, names[k]);
        double bound = 1.0 / sqrt(fan[k]), s = 0, s2 = 0, mx = 0;
        for (int64_t i = 0; i < p->numel; i++) {
            double v = nl_tensor_get(&p->var.val, i);
            s += v;
            s2 += v * v;
            mx = fmax(mx, fabs(v));
        }
        double n = (double)p->numel, mean = s / n, var = s2 / n - mean * mean, want = bound * bound / 3;
        NLT_CHECK(mx <= bound, "%s: max |w| %g > bound %g", names[k], mx, bound);
        NLT_CHECK(mx > 0.9 * bound, "%s: max |w| %g far below bound %g", names[k], mx, bound);
        NLT_CHECK(fabs(mean) < 4 * sqrt(want / n), "%s: mean %g", names[k], mean);
        double tol = k == 2 ? 0.25 : 0.05;
        NLT_CHECK(fabs(var / want - 1) < tol, "%s: variance %g, expected %g", names[k], var, want);
    }
    /* same seed -> identical, other seed -> different, reinit reproduces init */
    nl_model a, b;
    NLT_OK(nl_model_init(&a, &cfg, 7));
    NLT_OK(nl_model_init(&b, &cfg, 8));
    NLT_CHECK(!memcmp(a.ps.data, m.ps.data, (size_t)m.ps.total * 4), "same seed differs");
    NLT_CHECK(memcmp(b.ps.data, m.ps.data, (size_t)m.ps.total * 4), "other seed equal");
    NLT_OK(nl_model_reinit(&b, 7));
    NLT_CHECK(!memcmp(a.ps.data, b.ps.data, (size_t)m.ps.total * 4), "reinit differs from init");
    nl_model_free(&a);
    nl_model_free(&b);
    nl_model_free(&m);
}

/* A parametrisation hook: multiply the readout by 2 in the forward pass, halve its learning rate. */
static nl_status hook_double_readout(nl_model *m, const nl_param_info *info, void *ud) {
    int *calls = ud;
    (*calls)++;
    if (info->role == NL_ROLE_WEIGHT_OUT) {
        info->p->fwd_mult = 2.0f;
        info->p->lr_mult = 0.5f;
    }
    return NL_OK;
}

static nl_status hook_fail(nl_model *m, const nl_param_info *info, void *ud) {
    return nl_set_error(NL_EINVAL, "hook refused %s", info->p->name);
}

static void test_param_hook(void) {
    nl_model_config cfg = mlp_cfg();
    int calls = 0;
    nl_model_config hc = cfg;
    hc.hook = hook_double_readout;
    hc.hook_ud = &calls;
    nl_model a, b;
    NLT_OK(nl_model_init(&a, &hc, 3));
    NLT_CHECK(calls == 6, "hook called %d times", calls);
    NLT_CHECK(nl_params_find(&a.ps, "fc3.weight")->lr_mult == 0.5f, "lr_mult set");
    NLT_OK(nl_model_init(&b, &cfg, 3));
    nl_param *w = nl_params_find(&b.ps, "fc3.weight");
    for (int64_t i = 0; i < w->numel; i++) nl_tensor_set(&w->var.val, i, 2 * nl_tensor_get(&w->var.val, i));
    nl_ctx *c = nl_ctx_new(0, 0);
    float *x = rand_input(3 * 784, 9);
    nl_var *ya = nl_model_forward(&a, c, nl_model_input(&a, c, x, 3), 0);
    nl_var *yb = nl_model_forward(&b, c, nl_model_input(&b, c, x, 3), 0);
    double d = 0;
    for (int64_t i = 0; i < 30; i++) d = fmax(d, fabs(nl_tensor_get(&ya->val, i) - nl_tensor_get(&yb->val, i)));
    NLT_CHECK(d < 1e-5, "fwd_mult 2 differs from doubled weights by %g", d);
    /* gradient flows through the multiplier: dL/dW of the multiplied model = 2 x that of the doubled model */
    nl_ctx_reset(c);
    nl_var *la = nl_sum(c, nl_model_forward(&a, c, nl_model_input(&a, c, x, 3), 1), NL_AXIS_ALL, 0);
    nl_params_zero_grad(&a.ps);
    NLT_OK(nl_backward(c, la));
    nl_ctx_reset(c);
    nl_var *lb = nl_sum(c, nl_model_forward(&b, c, nl_model_input(&b, c, x, 3), 1), NL_AXIS_ALL, 0);
    nl_params_zero_grad(&b.ps);
    NLT_OK(nl_backward(c, lb));
    nl_param *ga = nl_params_find(&a.ps, "fc3.weight"), *gb = nl_params_find(&b.ps, "fc3.weight");
    d = 0;
    for (int64_t i = 0; i < ga->numel; i++) d = fmax(d, fabs(nl_tensor_get(&ga->var.grad, i) - 2 * nl_tensor_get(&gb->var.grad, i)));
    NLT_CHECK(d < 1e-4, "readout gradient with multiplier off by %g", d);
    nl_model m;
    hc.hook = hook_fail;
    NLT_CHECK(nl_model_init(&m, &hc, 0) == NL_EINVAL && strstr(nl_last_error(), "hook refused"), "%s", nl_last_error());
    free(x);
    nl_ctx_free(c);
    nl_model_free(&a);
    nl_model_free(&b);
}

static void test_dropout_modes(void) {
    int64_t s[3] = {784, 64, 10};
    nl_model_config cfg = nl_mlp_config(3, s, NL_ACT_RELU, 0.5);
    nl_model m;
    NLT_OK(nl_model_init(&m, &cfg, 2));
    nl_ctx *c = nl_ctx_new(0, 0);
    float *x = rand_input(2 * 784, 1);
    nl_var *e1 = nl_model_forward(&m, c, nl_model_input(&m, c, x, 2), 0);
    nl_var *e2 = nl_model_forward(&m, c, nl_model_input(&m, c, x, 2), 0);
    nl_var *t1 = nl_model_forward(&m, c, nl_model_input(&m, c, x, 2), 1);
    nl_var *t2 = nl_model_forward(&m, c, nl_model_input(&m, c, x, 2), 1);
    NLT_CHECK(e1 && e2 && t1 && t2, "forward: %s", nl_last_error());
    int same_eval = 1, same_train = 1, eval_train = 1;
    for (int64_t i = 0; i < 20; i++) {
        same_eval &= nl_tensor_get(&e1->val, i) == nl_tensor_get(&e2->val, i);
        same_train &= nl_tensor_get(&t1->val, i) == nl_tensor_get(&t2->val, i);
        eval_train &= nl_tensor_get(&e1->val, i) == nl_tensor_get(&t1->val, i);
    }
    NLT_CHECK(same_eval, "eval mode must be deterministic");
    NLT_CHECK(!same_train, "successive training passes should draw new dropout masks");
    NLT_CHECK(!eval_train, "dropout inactive in training mode");
    free(x);
    nl_ctx_free(c);
    nl_model_free(&m);
}

/* ---- full-model finite-difference gradient checks (f64) ---- */
static double model_loss(nl_model *m, nl_ctx *c, const float *x, const int32_t *y, int64_t n, int backward) {
    nl_ctx_reset(c);
    nl_var *lg = nl_model_forward(m, c, nl_model_input(m, c, x, n), 1);
    nl_var *l = nl_cross_entropy(c, lg, y, 0.0, -1);
    if (!l) return NAN;
    if (backward) {
        nl_params_zero_grad(&m->ps);
        if (nl_backward(c, l)) return NAN;
    }
    return nl_item(l);
}

static void gradcheck_model(const char *what, nl_model *m, int64_t n, int per_tensor) {
    nl_ctx *c = nl_ctx_new(0, 0);
    float *x = rand_input(n * m->in_dim, 11);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++) y[i] = (int32_t)((i * 7 + 3) % m->n_classes);
    double L = model_loss(m, c, x, y, n, 1);
    NLT_CHECK(isfinite(L), "%s: loss %g: %s", what, L, nl_last_error());
    double *ana = malloc((size_t)m->ps.total * sizeof *ana);
    memcpy(ana, m->ps.grad, (size_t)m->ps.total * sizeof *ana);
    double *pv = m->ps.data;
    int64_t checked = 0, failed = 0;
    double worst = 0;
    const double eps = 1e-6;
    for (int t = 0; t < m->ps.n; t++) {
        nl_param *p = m->ps.p[t];
        if (!p->var.requires_grad) continue;
        for (int k = 0; k < per_tensor && k < p->numel; k++) {
            int64_t i = p->offset + (p->numel <= per_tensor ? k : (int64_t)((k * 2654435761u) % (uint64_t)p->numel));
            double v = pv[i];
            pv[i] = v + eps;
            double lp = model_loss(m, c, x, y, n, 0);
            pv[i] = v - eps;
            double lm = model_loss(m, c, x, y, n, 0);
            pv[i] = v;
            double num = (lp - lm) / (2 * eps), err = fabs(num - ana[i]);
            checked++;
            if (err > 1e-7 + 1e-4 * fmax(fabs(num), fabs(ana[i]))) {
                if (!failed) fprintf(stderr, "%s: %s[%lld]: numeric %.10g analytic %.10g\n", what, p->name, (long long)(i - p->offset), num, ana[i]);
                failed++;
            }
            worst = fmax(worst, err);
        }
    }
    NLT_CHECK(checked > 20 && failed == 0, "%s: %lld of %lld gradient entries off (worst abs err %.3g)", what, (long long)failed, (long long)checked, worst);
    free(ana);
    free(x);
    free(y);
    nl_ctx_free(c);
}

static void test_gradcheck_mlp_f64(void) {
    int64_t s[4] = {12, 9, 7, 5};
    nl_model_config cfg = nl_mlp_config(4, s, NL_ACT_TANH, 0.0);
    cfg.dtype = NL_F64;
    cfg.input_mean = 0.3;
    cfg.input_std = 0.7;
    nl_model m;
    NLT_OK(nl_model_init(&m, &cfg, 5));
    gradcheck_model("mlp f64", &m, 6, 1000);
    nl_model_free(&m);
    /* ReLU MLP with the readout multiplier of a hook */
    int calls = 0;
    cfg.act = NL_ACT_RELU;
    cfg.hook = hook_double_readout;
    cfg.hook_ud = &calls;
    NLT_OK(nl_model_init(&m, &cfg, 6));
    gradcheck_model("mlp relu f64 + fwd_mult", &m, 6, 1000);
    nl_model_free(&m);
}

static void test_gradcheck_cnn_f64(void) {
    int ch[2] = {3, 4};
    nl_model_config cfg = nl_cnn_config(2, 8, 8, 2, ch, 6, 4);
    cfg.dtype = NL_F64;
    nl_model m;
    NLT_OK(nl_model_init(&m, &cfg, 5));
    gradcheck_model("cnn f64 (BN train mode)", &m, 3, 40);
    nl_model_free(&m);
    cfg.batchnorm = 0;
    cfg.hidden = 0;
    NLT_OK(nl_model_init(&m, &cfg, 6));
    NLT_CHECK(nl_params_find(&m.ps, "conv1.bias") != NULL, "conv bias without BatchNorm");
    gradcheck_model("cnn f64 (no BN)", &m, 3, 40);
    nl_model_free(&m);
}

/* ---- checkpoints ---- */
static void test_checkpoint_roundtrip(void) {
    char dir[] = "/tmp/nltest_model_XXXXXX";
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], other[256];
    snprintf(path, sizeof path, "%s/cnn.safetensors", dir);
    snprintf(other, sizeof other, "%s/other.safetensors", dir);
    nl_model_config cfg = cnn_cfg();
    cfg.input_mean = 0.25;
    cfg.input_std = 0.5;
    cfg.dropout = 0.1;
    nl_model m, l;
    NLT_OK(nl_model_init(&m, &cfg, 21));
    nl_ctx *c = nl_ctx_new(0, 0);
    float *x = rand_input(3 * 784, 2);
    nl_model_forward(&m, c, nl_model_input(&m, c, x, 3), 1); /* move the running stats */
    const char *k[1] = {"nnlab.note"}, *v[1] = {"hello"};
    NLT_OK(nl_model_save(&m, path, 1, k, v));
    nl_st_file f;
    NLT_OK(nl_safetensors_open(path, &f));
    NLT_CHECK(f.n == m.ps.n, "tensors in file %d", f.n);
    const char *kind = nl_safetensors_get_metadata(&f, "nnlab.model"), *ch = nl_safetensors_get_metadata(&f, "nnlab.channels");
    const char *note = nl_safetensors_get_metadata(&f, "nnlab.note");
    NLT_CHECK(kind && !strcmp(kind, "cnn") && ch && !strcmp(ch, "16,32") && note && !strcmp(note, "hello"), "metadata");
    nl_safetensors_close(&f);
    NLT_OK(nl_model_load(&l, path));
    NLT_CHECK(l.cfg.kind == NL_MODEL_CNN && l.cfg.hidden == 128 && l.cfg.input_std == 0.5 && l.cfg.dropout == 0.1, "config restored");
    NLT_CHECK(l.ps.total == m.ps.total && !memcmp(l.ps.data, m.ps.data, (size_t)m.ps.total * 4), "tensors restored");
    NLT_CHECK(!nl_params_find(&l.ps, "bn1.running_mean")->var.requires_grad, "buffers stay non-trainable");
    nl_var *a = nl_model_forward(&m, c, nl_model_input(&m, c, x, 3), 0);
    nl_var *b = nl_model_forward(&l, c, nl_model_input(&l, c, x, 3), 0);
    double d = 0;
    for (int64_t i = 0; i < 30; i++) d = fmax(d, fabs(nl_tensor_get(&a->val, i) - nl_tensor_get(&b->val, i)));
    NLT_CHECK(d == 0, "loaded model differs by %g", d);
    nl_model_free(&l);

    /* a parameter file without the architecture is refused with a clear message */
    NLT_OK(nl_safetensors_save(other, &m.ps, NULL));
    NLT_CHECK(nl_model_load(&l, other) == NL_EFORMAT && strstr(nl_last_error(), "not an nnlab model checkpoint"), "%s", nl_last_error());
    /* metadata that disagrees with the tensors */
    NLT_OK(nl_safetensors_save(other, &m.ps, "{\"nnlab.model\":\"mlp\",\"nnlab.format\":\"1\",\"nnlab.sizes\":\"784,10\",\"nnlab.classes\":\"10\","
                                             "\"nnlab.dtype\":\"f32\",\"nnlab.activation\":\"relu\",\"nnlab.dropout\":\"0\","
                                             "\"nnlab.input_mean\":\"0\",\"nnlab.input_std\":\"1\"}"));
    NLT_CHECK(nl_model_load(&l, other) != NL_OK && strstr(nl_last_error(), "do not match"), "%s", nl_last_error());
    NLT_OK(nl_safetensors_save(other, &m.ps, "{\"nnlab.model\":\"transformer\"}"));
    NLT_CHECK(nl_model_load(&l, other) == NL_EFORMAT && strstr(nl_last_error(), "transformer"), "%s", nl_last_error());
    NLT_OK(nl_safetensors_save(other, &m.ps, "{\"nnlab.model\":\"mlp\",\"nnlab.format\":\"1\",\"nnlab.sizes\":\"784,abc\"}"));
    NLT_CHECK(nl_model_load(&l, other) == NL_EFORMAT && strstr(nl_last_error(), "nnlab.sizes"), "%s", nl_last_error());
    unlink(path);
    unlink(other);
    rmdir(dir);
    free(x);
    nl_ctx_free(c);
    nl_model_free(&m);
}

/* The key scheme is frozen: the writer produces exactly the metadata that earlier versions wrote, and a file
 * with that hand-written metadata (as written before the shared nl_st_meta builder) still loads. */
static void test_checkpoint_legacy_metadata(void) {
    static const char legacy[] = "{\"nnlab.model\":\"mlp\",\"nnlab.format\":\"1\",\"nnlab.dtype\":\"f32\",\"nnlab.classes\":\"10\","
                                 "\"nnlab.activation\":\"relu\",\"nnlab.dropout\":\"0.10000000000000001\","
                                 "\"nnlab.input_mean\":\"0.13070000000000001\",\"nnlab.input_std\":\"0.30809999999999998\","
                                 "\"nnlab.sizes\":\"784,32,10\",\"nnlab.note\":\"x\"}";
    int64_t s[3] = {784, 32, 10};
    nl_model_config cfg = nl_mlp_config(3, s, NL_ACT_RELU, 0.1);
    cfg.input_mean = 0.1307;
    cfg.input_std = 0.3081;
    nl_model m, l;
    NLT_OK(nl_model_init(&m, &cfg, 5));
    const char *k[1] = {"nnlab.note"}, *v[1] = {"x"};
    char *js = nl_model_metadata_json(&m, 1, k, v);
    NLT_CHECK(js && !strcmp(js, legacy), "metadata changed:\n  %s\n  %s", js ? js : "(null)", legacy);
    free(js);
    char dir[] = "/tmp/nltest_legacy_XXXXXX";
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/old.safetensors", dir);
    /* the exact legacy bytes, and a hand-written variant with short numbers and no extra key */
    const char *files[2] = {legacy, "{\"nnlab.model\":\"mlp\",\"nnlab.format\":\"1\",\"nnlab.sizes\":\"784,32,10\",\"nnlab.classes\":\"10\","
                                     "\"nnlab.dtype\":\"f32\",\"nnlab.activation\":\"relu\",\"nnlab.dropout\":\"0.1\","
                                     "\"nnlab.input_mean\":\"0.1307\",\"nnlab.input_std\":\"0.3081\"}"};
    for (int i = 0; i < 2; i++) {
        NLT_OK(nl_safetensors_save(path, &m.ps, files[i]));
        NLT_OK(nl_model_load(&l, path));
        NLT_CHECK(l.cfg.kind == NL_MODEL_MLP && l.cfg.n_sizes == 3 && l.cfg.sizes[1] == 32 && l.cfg.dropout == 0.1 &&
                      l.cfg.input_mean == 0.1307 && l.cfg.input_std == 0.3081 && l.cfg.n_classes == 10,
                  "legacy config %d restored", i);
        NLT_CHECK(l.ps.total == m.ps.total && !memcmp(l.ps.data, m.ps.data, (size_t)m.ps.total * 4), "tensors restored");
        nl_model_free(&l);
    }
    nl_model_free(&m);
    unlink(path);
    rmdir(dir);
}

static void test_predict(void) {
    int64_t s[3] = {784, 32, 10};
    nl_model_config cfg = nl_mlp_config(3, s, NL_ACT_RELU, 0);
    nl_model m;
    NLT_OK(nl_model_init(&m, &cfg, 1));
    float *x = rand_input(1500 * 784, 3);
    int32_t *p = malloc(1500 * sizeof *p);
    NLT_OK(nl_model_predict(&m, x, 1500, p));
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *lg = nl_model_forward(&m, c, nl_model_input(&m, c, x + 1200 * 784, 1), 0);
    int best = 0;
    for (int k = 1; k < 10; k++)
        if (nl_tensor_get(&lg->val, k) > nl_tensor_get(&lg->val, best)) best = k;
    NLT_CHECK(p[1200] == best, "predict %d vs argmax %d", p[1200], best);
    free(x);
    free(p);
    nl_ctx_free(c);
    nl_model_free(&m);
}

/* OpenMP's default spin-waiting fights OpenBLAS's threads on small machines (training several times slower on
 * 2 cores); the policy is read when libgomp loads, so set it and re-execute once (as the nnlab CLI does). */
static void passive_omp(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("NL_NO_REEXEC")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv("NL_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
    (void)argc;
    passive_omp(argv);
    nl_threads_init();
    NLT_RUN(test_mlp_shapes_and_counts);
    NLT_RUN(test_cnn_shapes_and_counts);
    NLT_RUN(test_config_errors);
    NLT_RUN(test_init_statistics);
    NLT_RUN(test_param_hook);
    NLT_RUN(test_dropout_modes);
    NLT_RUN(test_gradcheck_mlp_f64);
    NLT_RUN(test_gradcheck_cnn_f64);
    NLT_RUN(test_checkpoint_roundtrip);
    NLT_RUN(test_checkpoint_legacy_metadata);
    NLT_RUN(test_predict);
    return nlt_finish();
}
