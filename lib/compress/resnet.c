/* lib/compress/resnet.c — the ResNet-20-style CNN with per-conv widths (resnet.h). */
#include "compress/resnet.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

nl_resnet_config nl_resnet_default_config(int blocks, int w, int pool) {
    nl_resnet_config c;
    memset(&c, 0, sizeof c);
    c.in_ch = 1, c.in_h = 28, c.in_w = 28, c.pool = pool, c.n_classes = 10;
    int j = 0;
    c.ch[0] = w;
    for (int s = 0; s < 3; s++) {
        c.blocks[s] = blocks;
        for (int b = 0; b < blocks && j < 3 * NL_RESNET_MAX_BLOCKS; b++, j++) c.ch[1 + 2 * j] = c.ch[2 + 2 * j] = w << s;
    }
    return c;
}

int nl_resnet_num_convs(const nl_resnet_config *cfg) {
    return 1 + 2 * (cfg->blocks[0] + cfg->blocks[1] + cfg->blocks[2]);
}

nl_status nl_resnet_check(const nl_resnet_config *cfg) {
    if (!cfg) return nl_set_error(NL_EINVAL, "resnet: NULL config");
    if (cfg->in_ch < 1 || cfg->in_h < 1 || cfg->in_w < 1 || cfg->n_classes < 2)
        return nl_set_error(NL_EINVAL, "resnet: input %dx%dx%d, %d classes", cfg->in_ch, cfg->in_h, cfg->in_w, cfg->n_classes);
    if (cfg->pool < 1 || cfg->in_h / cfg->pool < 1 || cfg->in_w / cfg->pool < 1)
        return nl_set_error(NL_EINVAL, "resnet: input pooling %d for a %dx%d input", cfg->pool, cfg->in_h, cfg->in_w);
    for (int s = 0; s < 3; s++)
        if (cfg->blocks[s] < 1 || cfg->blocks[s] > NL_RESNET_MAX_BLOCKS)
            return nl_set_error(NL_EINVAL, "resnet: stage %d has %d blocks (1..%d)", s, cfg->blocks[s], NL_RESNET_MAX_BLOCKS);
    for (int i = 0; i < nl_resnet_num_convs(cfg); i++)
        if (cfg->ch[i] < 1 || cfg->ch[i] > 4096) return nl_set_error(NL_EINVAL, "resnet: conv %d has %d channels", i, cfg->ch[i]);
    return NL_OK;
}

nl_resnet_config nl_resnet_scale_width(const nl_resnet_config *cfg, double ratio) {
    nl_resnet_config c = *cfg;
    for (int i = 0; i < nl_resnet_num_convs(cfg); i++) {
        int v = (int)floor(cfg->ch[i] * ratio + 1e-9);
        c.ch[i] = v < 1 ? 1 : v;
    }
    return c;
}

static int down(int h, int stride) { return stride == 1 ? h : (h - 1) / stride + 1; }

void nl_resnet_sizes(const nl_resnet_config *cfg, int hw[4]) {
    hw[0] = cfg->in_h / cfg->pool;
    hw[1] = hw[0];
    hw[2] = down(hw[1], 2);
    hw[3] = down(hw[2], 2);
}

/* calls f(ud, in, out, k, H_out * W_out) for every conv in order (stem, then per block a, b, projection) */
static void walk(const nl_resnet_config *cfg, void (*f)(void *, int, int, int, double), void *ud) {
    int h = cfg->in_h / cfg->pool, w = cfg->in_w / cfg->pool;
    f(ud, cfg->in_ch, cfg->ch[0], 3, (double)h * w);
    int win = cfg->ch[0], j = 0;
    for (int s = 0; s < 3; s++)
        for (int b = 0; b < cfg->blocks[s]; b++, j++) {
            int st = (s > 0 && b == 0) ? 2 : 1;
            h = down(h, st), w = down(w, st);
            int a = cfg->ch[1 + 2 * j], o = cfg->ch[2 + 2 * j];
            f(ud, win, a, 3, (double)h * w);
            f(ud, a, o, 3, (double)h * w);
            if (st != 1 || win != o) f(ud, win, o, 1, (double)h * w);
            win = o;
        }
}

typedef struct cost_acc { double flops; int64_t params; } cost_acc;
static void add_cost(void *u, int in, int out, int k, double hw) {
    cost_acc *a = u;
    a->flops += (double)k * k * in * out * hw;
    a->params += (int64_t)k * k * in * out + 2 * out;
}

double nl_resnet_flops(const nl_resnet_config *cfg) {
    cost_acc a = {0, 0};
    walk(cfg, add_cost, &a);
    return a.flops + (double)cfg->ch[nl_resnet_num_convs(cfg) - 1] * cfg->n_classes;
}

int64_t nl_resnet_param_count(const nl_resnet_config *cfg) {
    cost_acc a = {0, 0};
    walk(cfg, add_cost, &a);
    int64_t last = cfg->ch[nl_resnet_num_convs(cfg) - 1];
    return a.params + last * cfg->n_classes + cfg->n_classes;
}

void nl_resnet_describe(const nl_resnet_config *cfg, char *buf, size_t n) {
    int w = snprintf(buf, n, "blocks %d/%d/%d, channels %d", cfg->blocks[0], cfg->blocks[1], cfg->blocks[2], cfg->ch[0]);
    for (int i = 1; i < nl_resnet_num_convs(cfg) && w > 0 && (size_t)w < n; i += 2)
        w += snprintf(buf + w, n - (size_t)w, " %d,%d", cfg->ch[i], cfg->ch[i + 1]);
    if (w > 0 && (size_t)w < n)
        snprintf(buf + w, n - (size_t)w, " (%.3f MFLOPs, %lld params)", nl_resnet_flops(cfg) / 1e6,
                 (long long)nl_resnet_param_count(cfg));
}

/* ---- building ---- */
static nl_status add_conv(nl_resnet *m, nl_resnet_conv *cv, const char *name, int in, int out, int k, int stride) {
    char nm[96];
    cv->in = in, cv->out = out, cv->k = k, cv->stride = stride;
    snprintf(nm, sizeof nm, "%s.weight", name);
    cv->w = nl_params_add(&m->ps, nm, 4, (int64_t[]){out, in, k, k});
    const char *sfx[4] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    nl_var **dst[4] = {&cv->bn.gamma, &cv->bn.beta, &cv->bn.rmean, &cv->bn.rvar};
    for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "%s.%s", name, sfx[i]);
        *dst[i] = nl_params_add(&m->ps, nm, 1, (int64_t[]){out});
        if (!*dst[i]) return nl_last_status();
    }
    cv->bn.rmean->requires_grad = 0;
    cv->bn.rvar->requires_grad = 0;
    return cv->w ? NL_OK : nl_last_status();
}

static void init_conv(nl_resnet_conv *cv, nl_rng *r) {
    if (!cv->w) return;
    nl_rng_fill_normal(r, &cv->w->val, 0.0, sqrt(2.0 / ((double)cv->out * cv->k * cv->k)));
    nl_tensor_fill(&cv->bn.gamma->val, 1.0);
    nl_tensor_fill(&cv->bn.beta->val, 0.0);
    nl_tensor_fill(&cv->bn.rmean->val, 0.0);
    nl_tensor_fill(&cv->bn.rvar->val, 1.0);
}

nl_status nl_resnet_init(nl_resnet *m, const nl_resnet_config *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    nl_status s = nl_resnet_check(cfg);
    if (s) return s;
    m->cfg = *cfg;
    if ((s = nl_params_init(&m->ps, NL_F32))) return s;
    char nm[64];
    s = add_conv(m, &m->conv[0], "stem", cfg->in_ch, cfg->ch[0], 3, 1);
    int win = cfg->ch[0], j = 0;
    for (int st = 0; st < 3 && !s; st++)
        for (int b = 0; b < cfg->blocks[st] && !s; b++, j++) {
            int stride = (st > 0 && b == 0) ? 2 : 1, a = cfg->ch[1 + 2 * j], o = cfg->ch[2 + 2 * j];
            snprintf(nm, sizeof nm, "s%d.b%d.a", st + 1, b);
            if ((s = add_conv(m, &m->conv[1 + 2 * j], nm, win, a, 3, stride))) break;
            snprintf(nm, sizeof nm, "s%d.b%d.b", st + 1, b);
            if ((s = add_conv(m, &m->conv[2 + 2 * j], nm, a, o, 3, 1))) break;
            if (stride != 1 || win != o) {
                snprintf(nm, sizeof nm, "s%d.b%d.proj", st + 1, b);
                s = add_conv(m, &m->proj[j], nm, win, o, 1, stride);
            }
            win = o;
        }
    if (!s) {
        m->fc_w = nl_params_add(&m->ps, "fc.weight", 2, (int64_t[]){cfg->n_classes, win});
        m->fc_b = nl_params_add(&m->ps, "fc.bias", 1, (int64_t[]){cfg->n_classes});
        if (!m->fc_w || !m->fc_b) s = nl_last_status();
    }
    if (s) {
        nl_params_free(&m->ps);
        return s;
    }
    nl_rng r;
    nl_rng_init(&r, seed, 0x2E5EE7ULL << 32);
    const int nc = nl_resnet_num_convs(cfg);
    for (int i = 0; i < nc; i++) init_conv(&m->conv[i], &r);
    for (int i = 0; i < (nc - 1) / 2; i++) init_conv(&m->proj[i], &r);
    double bound = 1.0 / sqrt((double)win);
    nl_rng_fill_uniform(&r, &m->fc_w->val, -bound, bound);
    nl_rng_fill_uniform(&r, &m->fc_b->val, -bound, bound);
    return NL_OK;
}

void nl_resnet_free(nl_resnet *m) {
    if (!m) return;
    nl_params_free(&m->ps);
    memset(m, 0, sizeof *m);
}

static nl_var *conv_bn(nl_ctx *c, const nl_resnet_conv *cv, nl_var *x, int train) {
    nl_var *h = nl_conv2d(c, x, cv->w, NULL, cv->stride, cv->k / 2);
    return nl_batchnorm(c, h, cv->bn.gamma, cv->bn.beta, cv->bn.rmean, cv->bn.rvar, 0.1, 1e-5, train);
}

nl_var *nl_resnet_forward(nl_ctx *c, void *ud, nl_var *x, int train) {
    nl_resnet *m = ud;
    const nl_resnet_config *cfg = &m->cfg;
    if (!x) return NULL;
    const int64_t B = x->val.shape[0];
    nl_var *h = nl_reshape(c, x, 4, (int64_t[]){B, cfg->in_ch, cfg->in_h, cfg->in_w});
    if (cfg->pool > 1) h = nl_avgpool2d(c, h, cfg->pool, cfg->pool, 0);
    h = nl_relu(c, conv_bn(c, &m->conv[0], h, train));
    int j = 0;
    for (int s = 0; s < 3; s++)
        for (int b = 0; b < cfg->blocks[s]; b++, j++) {
            nl_var *y = nl_relu(c, conv_bn(c, &m->conv[1 + 2 * j], h, train));
            y = conv_bn(c, &m->conv[2 + 2 * j], y, train);
            nl_var *sc = m->proj[j].w ? conv_bn(c, &m->proj[j], h, train) : h;
            h = nl_relu(c, nl_add(c, y, sc));
        }
    h = nl_mean(c, nl_reshape(c, h, 3, (int64_t[]){B, h ? h->val.shape[1] : 0, -1}), 2, 0); /* [B, C] */
    return nl_linear(c, h, m->fc_w, m->fc_b);
}

nl_status nl_resnet_fit(nl_resnet *m, const nl_dataset *train, const nl_kd_config *cfg, double *last_loss) {
    nl_kd_config k = *cfg;
    k.alpha = 0.0;
    return nl_kd_train(&k, NULL, nl_resnet_forward, m, &m->ps, train, last_loss);
}

nl_status nl_resnet_distil(nl_resnet *m, const nl_dataset *train, const nl_kd_teacher *teacher, const nl_kd_config *cfg,
                           double *last_loss) {
    return nl_kd_train(cfg, teacher, nl_resnet_forward, m, &m->ps, train, last_loss);
}

nl_status nl_resnet_accuracy(nl_resnet *m, const nl_dataset *ds, double *acc) {
    return nl_kd_accuracy(nl_resnet_forward, m, ds, 256, acc);
}
