/* MLP and CNN classifiers: construction, PyTorch-default init, parametrisation hook, forward pass. */
#include "nnlab/model.h"
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LT_LINEAR = 0, LT_CONV = 1, LT_BN = 2 };

static const char *const g_kind_names[] = {"mlp", "cnn"};
static const char *const g_act_names[NL_ACT_COUNT] = {"relu", "tanh", "gelu", "sigmoid"};

const char *nl_model_kind_name(nl_model_kind k) { return (k == NL_MODEL_MLP || k == NL_MODEL_CNN) ? g_kind_names[k] : "?"; }

nl_status nl_model_kind_parse(const char *s, nl_model_kind *out) {
    for (int i = 0; i < 2; i++)
        if (s && !strcmp(s, g_kind_names[i])) { *out = (nl_model_kind)i; return NL_OK; }
    return nl_set_error(NL_EINVAL, "unknown model '%s' (expected mlp or cnn)", s ? s : "(null)");
}

const char *nl_activation_name(nl_activation a) { return (a >= 0 && a < NL_ACT_COUNT) ? g_act_names[a] : "?"; }

nl_status nl_activation_parse(const char *s, nl_activation *out) {
    for (int i = 0; i < NL_ACT_COUNT; i++)
        if (s && !strcmp(s, g_act_names[i])) { *out = (nl_activation)i; return NL_OK; }
    return nl_set_error(NL_EINVAL, "unknown activation '%s' (expected relu, tanh, gelu or sigmoid)", s ? s : "(null)");
}

static void config_defaults(nl_model_config *c) {
    memset(c, 0, sizeof *c);
    c->dtype = NL_F32;
    c->act = NL_ACT_RELU;
    c->input_mean = 0.0;
    c->input_std = 1.0;
    c->kernel = 3;
    c->pool = 2;
    c->pool_mask = NL_MODEL_POOL_ALL;
    c->batchnorm = 1;
    c->bn_momentum = 0.1;
    c->bn_eps = 1e-5;
}

nl_model_config nl_mlp_config(int n_sizes, const int64_t *sizes, nl_activation act, double dropout) {
    nl_model_config c;
    config_defaults(&c);
    c.kind = NL_MODEL_MLP;
    c.batchnorm = 0;
    c.act = act;
    c.dropout = dropout;
    c.n_sizes = n_sizes;
    for (int i = 0; i < n_sizes && i <= NL_MODEL_MAX_LAYERS; i++) c.sizes[i] = sizes[i];
    if (n_sizes >= 2 && n_sizes <= NL_MODEL_MAX_LAYERS + 1) c.n_classes = (int)sizes[n_sizes - 1];
    return c;
}

nl_model_config nl_cnn_config(int ch, int h, int w, int n_blocks, const int *channels, int64_t hidden, int n_classes) {
    nl_model_config c;
    config_defaults(&c);
    c.kind = NL_MODEL_CNN;
    c.in_channels = ch;
    c.in_height = h;
    c.in_width = w;
    c.n_blocks = n_blocks;
    for (int i = 0; i < n_blocks && i < NL_MODEL_MAX_BLOCKS; i++) c.channels[i] = channels[i];
    c.hidden = hidden;
    c.n_classes = n_classes;
    return c;
}

int nl_model_block_pools(const nl_model_config *c, int b) {
    return c->pool > 1 && b >= 0 && b < 32 && ((c->pool_mask >> b) & 1u);
}

void nl_model_block_hw(const nl_model_config *c, int b, int *h, int *w) {
    int hh = c->in_height, ww = c->in_width;
    for (int i = 0; i <= b && i < c->n_blocks; i++)
        if (nl_model_block_pools(c, i)) {
            hh /= c->pool;
            ww /= c->pool;
        }
    *h = hh;
    *w = ww;
}

nl_status nl_model_config_check(const nl_model_config *c) {
    if (c->dtype != NL_F32 && c->dtype != NL_F64) return nl_set_error(NL_EINVAL, "model: dtype must be f32 or f64");
    if (c->act < 0 || c->act >= NL_ACT_COUNT) return nl_set_error(NL_EINVAL, "model: unknown activation %d", (int)c->act);
    if (!(c->dropout >= 0.0 && c->dropout < 1.0)) return nl_set_error(NL_EINVAL, "model: dropout %g must be in [0, 1)", c->dropout);
    if (!(c->input_std > 0.0) || !isfinite(c->input_std) || !isfinite(c->input_mean))
        return nl_set_error(NL_EINVAL, "model: input_std must be positive and input_mean finite");
    if (c->kind == NL_MODEL_MLP) {
        if (c->n_sizes < 2 || c->n_sizes > NL_MODEL_MAX_LAYERS + 1)
            return nl_set_error(NL_EINVAL, "mlp: %d sizes given (need 2 .. %d: input, hidden..., classes)", c->n_sizes, NL_MODEL_MAX_LAYERS + 1);
        for (int i = 0; i < c->n_sizes; i++)
            if (c->sizes[i] < 1 || c->sizes[i] > (1 << 24)) return nl_set_error(NL_EINVAL, "mlp: size %d is %lld (must be in [1, 2^24])", i, (long long)c->sizes[i]);
        if (c->sizes[c->n_sizes - 1] != c->n_classes)
            return nl_set_error(NL_EINVAL, "mlp: last size %lld differs from n_classes %d", (long long)c->sizes[c->n_sizes - 1], c->n_classes);
        if (c->batchnorm != 0 && c->batchnorm != 1) return nl_set_error(NL_EINVAL, "mlp: batchnorm must be 0 or 1");
        if (c->batchnorm && (!(c->bn_momentum >= 0 && c->bn_momentum <= 1) || !(c->bn_eps > 0)))
            return nl_set_error(NL_EINVAL, "mlp: bn_momentum must be in [0, 1] and bn_eps positive");
        return NL_OK;
    }
    if (c->n_classes < 1) return nl_set_error(NL_EINVAL, "model: n_classes must be >= 1 (got %d)", c->n_classes);
    if (c->kind != NL_MODEL_CNN) return nl_set_error(NL_EINVAL, "model: unknown kind %d", (int)c->kind);
    if (c->n_classes > NL_MODEL_MAX_DIM) return nl_set_error(NL_EINVAL, "model: n_classes %d exceeds 2^24", c->n_classes);
    if (c->in_channels < 1 || c->in_height < 1 || c->in_width < 1)
        return nl_set_error(NL_EINVAL, "cnn: input geometry %dx%dx%d must be positive", c->in_channels, c->in_height, c->in_width);
    if ((int64_t)c->in_channels * c->in_height > NL_MODEL_MAX_DIM || (int64_t)c->in_channels * c->in_height * c->in_width > NL_MODEL_MAX_DIM)
        return nl_set_error(NL_EINVAL, "cnn: input geometry %dx%dx%d has more than 2^24 values", c->in_channels, c->in_height, c->in_width);
    if (c->kernel > 99 || c->pool > 99) return nl_set_error(NL_EINVAL, "cnn: kernel %d and pool %d must be at most 99", c->kernel, c->pool);
    if (c->hidden > NL_MODEL_MAX_DIM) return nl_set_error(NL_EINVAL, "cnn: hidden %lld exceeds 2^24", (long long)c->hidden);
    if (c->n_blocks < 1 || c->n_blocks > NL_MODEL_MAX_BLOCKS)
        return nl_set_error(NL_EINVAL, "cnn: n_blocks %d must be in [1, %d]", c->n_blocks, NL_MODEL_MAX_BLOCKS);
    if (c->kernel < 1 || c->kernel % 2 == 0) return nl_set_error(NL_EINVAL, "cnn: kernel %d must be odd and positive", c->kernel);
    if (c->pool < 1) return nl_set_error(NL_EINVAL, "cnn: pool %d must be positive", c->pool);
    if (c->hidden < 0) return nl_set_error(NL_EINVAL, "cnn: hidden %lld must be >= 0", (long long)c->hidden);
    if (!(c->bn_momentum >= 0 && c->bn_momentum <= 1) || !(c->bn_eps > 0))
        return nl_set_error(NL_EINVAL, "cnn: bn_momentum must be in [0, 1] and bn_eps positive");
    int h = c->in_height, w = c->in_width;
    for (int b = 0; b < c->n_blocks; b++) {
        if (c->channels[b] < 1 || c->channels[b] > NL_MODEL_MAX_CHANNELS)
            return nl_set_error(NL_EINVAL, "cnn: channels[%d] = %d must be in [1, %d]", b, c->channels[b], NL_MODEL_MAX_CHANNELS);
        if (nl_model_block_pools(c, b)) {
            h /= c->pool;
            w /= c->pool;
        }
        if (h < 1 || w < 1) return nl_set_error(NL_EINVAL, "cnn: the image shrinks to nothing after block %d (%d pooling of %dx%d)", b + 1, c->pool, c->in_height, c->in_width);
        if ((int64_t)c->channels[b] * h * w > NL_MODEL_MAX_DIM)
            return nl_set_error(NL_EINVAL, "cnn: block %d outputs %lld values per example (more than 2^24)", b + 1, (long long)c->channels[b] * h * w);
    }
    return NL_OK;
}

/* ---------------- construction ---------------- */
static nl_status add_tensor(nl_model *m, const char *name, int ndim, const int64_t *shape, nl_param_role role, int layer,
                            int64_t fan_in, int64_t fan_out, nl_param **out) {
    nl_var *v = nl_params_add(&m->ps, name, ndim, shape);
    if (!v) return nl_last_status() ? nl_last_status() : NL_ENOMEM;
    nl_param *p = nl_params_find(&m->ps, name);
    nl_param_info *ni = realloc(m->info, (size_t)m->ps.n * sizeof *ni);
    if (!ni) return nl_set_error(NL_ENOMEM, "model: out of memory");
    m->info = ni;
    nl_param_info *inf = &m->info[m->n_info++];
    inf->p = p;
    inf->role = role;
    inf->layer = layer;
    inf->fan_in = fan_in;
    inf->fan_out = fan_out;
    if (role == NL_ROLE_BUFFER) p->var.requires_grad = 0;
    *out = p;
    return NL_OK;
}

static nl_status add_linear(nl_model *m, const char *prefix, int64_t in, int64_t out, int bias, nl_param_role wrole) {
    char nm[96];
    int li = m->n_layers;
    nl_model_layer *L = &m->layer[m->n_layers++];
    memset(L, 0, sizeof *L);
    L->type = LT_LINEAR;
    nl_param *w, *b;
    int64_t ws[2] = {out, in}, bs[1] = {out};
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    nl_status s = add_tensor(m, nm, 2, ws, wrole, li, in, out, &w);
    if (s) return s;
    if (!bias) return NL_OK;
    snprintf(nm, sizeof nm, "%s.bias", prefix);
    if ((s = add_tensor(m, nm, 1, bs, NL_ROLE_BIAS, li, in, out, &b))) return s;
    return NL_OK;
}

static nl_status add_conv(nl_model *m, const char *prefix, int cin, int cout, int k, int bias, nl_param_role wrole) {
    char nm[96];
    int li = m->n_layers;
    nl_model_layer *L = &m->layer[m->n_layers++];
    memset(L, 0, sizeof *L);
    L->type = LT_CONV;
    nl_param *w, *b;
    int64_t ws[4] = {cout, cin, k, k}, bs[1] = {cout};
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    nl_status s = add_tensor(m, nm, 4, ws, wrole, li, (int64_t)cin * k * k, (int64_t)cout * k * k, &w);
    if (s) return s;
    if (bias) {
        snprintf(nm, sizeof nm, "%s.bias", prefix);
        if ((s = add_tensor(m, nm, 1, bs, NL_ROLE_BIAS, li, (int64_t)cin * k * k, (int64_t)cout * k * k, &b))) return s;
    }
    return NL_OK;
}

static nl_status add_bn(nl_model *m, const char *prefix, int ch) {
    char nm[96];
    int li = m->n_layers;
    nl_model_layer *L = &m->layer[m->n_layers++];
    memset(L, 0, sizeof *L);
    L->type = LT_BN;
    int64_t cs[1] = {ch};
    static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        nl_param *p;
        snprintf(nm, sizeof nm, "%s.%s", prefix, suffix[i]);
        nl_status s = add_tensor(m, nm, 1, cs, i < 2 ? NL_ROLE_NORM : NL_ROLE_BUFFER, li, 0, 0, &p);
        if (s) return s;
    }
    return NL_OK;
}

/* Point the layers at their store entries (after all additions: the flat arrays have moved). */
static void bind_layers(nl_model *m) {
    int k = 0;
    for (int l = 0; l < m->n_layers; l++) {
        nl_model_layer *L = &m->layer[l];
        L->w = L->b = L->rm = L->rv = NULL;
        while (k < m->n_info && m->info[k].layer == l) {
            nl_param_info *in = &m->info[k];
            nl_var *v = &in->p->var;
            const char *dot = strrchr(in->p->name, '.');
            const char *sfx = dot ? dot + 1 : "";
            if (!strcmp(sfx, "weight")) L->w = v;
            else if (!strcmp(sfx, "bias")) L->b = v;
            else if (!strcmp(sfx, "running_mean")) L->rm = v;
            else if (!strcmp(sfx, "running_var")) L->rv = v;
            k++;
        }
    }
}

static nl_status build(nl_model *m) {
    const nl_model_config *c = &m->cfg;
    char nm[32];
    nl_status s;
    if (c->kind == NL_MODEL_MLP) {
        int nl = c->n_sizes - 1;
        m->in_dim = c->sizes[0];
        for (int l = 0; l < nl; l++) {
            nl_param_role r = l == nl - 1 ? NL_ROLE_WEIGHT_OUT : l == 0 ? NL_ROLE_WEIGHT_IN : NL_ROLE_WEIGHT_HIDDEN;
            int bn = c->batchnorm && l < nl - 1;
            snprintf(nm, sizeof nm, "fc%d", l + 1);
            if ((s = add_linear(m, nm, c->sizes[l], c->sizes[l + 1], !bn, r))) return s;
            if (bn) {
                snprintf(nm, sizeof nm, "bn%d", l + 1);
                if ((s = add_bn(m, nm, (int)c->sizes[l + 1]))) return s;
            }
        }
        return NL_OK;
    }
    m->in_dim = (int64_t)c->in_channels * c->in_height * c->in_width;
    int cin = c->in_channels, h = c->in_height, w = c->in_width;
    for (int b = 0; b < c->n_blocks; b++) {
        snprintf(nm, sizeof nm, "conv%d", b + 1);
        if ((s = add_conv(m, nm, cin, c->channels[b], c->kernel, !c->batchnorm, b == 0 ? NL_ROLE_WEIGHT_IN : NL_ROLE_WEIGHT_HIDDEN))) return s;
        if (c->batchnorm) {
            snprintf(nm, sizeof nm, "bn%d", b + 1);
            if ((s = add_bn(m, nm, c->channels[b]))) return s;
        }
        cin = c->channels[b];
        if (nl_model_block_pools(c, b)) {
            h /= c->pool;
            w /= c->pool;
        }
    }
    int64_t flat = (int64_t)cin * h * w;
    int fc = 1;
    if (c->hidden > 0) {
        snprintf(nm, sizeof nm, "fc%d", fc++);
        if ((s = add_linear(m, nm, flat, c->hidden, 1, NL_ROLE_WEIGHT_HIDDEN))) return s;
        flat = c->hidden;
    }
    snprintf(nm, sizeof nm, "fc%d", fc);
    return add_linear(m, nm, flat, c->n_classes, 1, NL_ROLE_WEIGHT_OUT);
}

static nl_status init_values(nl_model *m, uint64_t seed) {
    nl_rng r;
    nl_rng_init(&r, seed, NL_STREAM_INIT);
    for (int i = 0; i < m->n_info; i++) {
        nl_param_info *in = &m->info[i];
        nl_tensor *t = &in->p->var.val;
        const char *sfx = strrchr(in->p->name, '.');
        switch (in->role) {
        case NL_ROLE_WEIGHT_IN:
        case NL_ROLE_WEIGHT_HIDDEN:
        case NL_ROLE_WEIGHT_OUT:
        case NL_ROLE_BIAS: {
            /* kaiming_uniform(a=sqrt(5)): gain sqrt(2/(1+5)), bound gain*sqrt(3/fan_in) = 1/sqrt(fan_in); the bias
             * bound is the same 1/sqrt(fan_in) (PyTorch's reset_parameters). */
            double bound = 1.0 / sqrt((double)in->fan_in);
            nl_rng_fill_uniform(&r, t, -bound, bound);
            break;
        }
        case NL_ROLE_NORM: nl_tensor_fill(t, sfx && !strcmp(sfx, ".weight") ? 1.0 : 0.0); break;
        case NL_ROLE_BUFFER: nl_tensor_fill(t, sfx && !strcmp(sfx, ".running_var") ? 1.0 : 0.0); break;
        }
        in->p->lr_mult = in->p->wd_mult = in->p->fwd_mult = 1.0f;
        in->p->group = 0;
    }
    if (m->cfg.hook)
        for (int i = 0; i < m->n_info; i++) {
            nl_status s = m->cfg.hook(m, &m->info[i], m->cfg.hook_ud);
            if (s) return s;
        }
    nl_rng_init(&m->dropout_rng, seed, NL_STREAM_DROPOUT);
    return NL_OK;
}

nl_status nl_model_init(nl_model *m, const nl_model_config *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    nl_status s = nl_model_config_check(cfg);
    if (s) return s;
    m->cfg = *cfg;
    m->n_classes = cfg->n_classes;
    nl_params_init(&m->ps, cfg->dtype);
    s = build(m);
    if (!s) {
        bind_layers(m);
        s = init_values(m, seed);
    }
    if (s) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", nl_last_error());
        nl_model_free(m);
        return nl_set_error(s, "%s", msg);
    }
    return NL_OK;
}

nl_status nl_model_layout(const nl_model_config *cfg, nl_params *ps) {
    memset(ps, 0, sizeof *ps);
    nl_model *m = calloc(1, sizeof *m);
    if (!m) return nl_set_error(NL_ENOMEM, "model layout: out of memory");
    nl_status s = nl_model_config_check(cfg);
    if (!s) {
        m->cfg = *cfg;
        m->n_classes = cfg->n_classes;
        nl_params_init_layout(&m->ps, cfg->dtype);
        s = build(m);
    }
    if (s) nl_params_free(&m->ps);
    else *ps = m->ps;
    free(m->info);
    free(m);
    return s;
}

nl_status nl_model_reinit(nl_model *m, uint64_t seed) { return init_values(m, seed); }

void nl_model_free(nl_model *m) {
    if (!m) return;
    nl_params_free(&m->ps);
    free(m->info);
    memset(m, 0, sizeof *m);
}

int64_t nl_model_num_params(const nl_model *m, int trainable_only) {
    int64_t n = 0;
    for (int i = 0; i < m->ps.n; i++)
        if (!trainable_only || m->ps.p[i]->var.requires_grad) n += m->ps.p[i]->numel;
    return n;
}

const nl_param_info *nl_model_param_info(const nl_model *m, const char *name) {
    for (int i = 0; i < m->n_info; i++)
        if (!strcmp(m->info[i].p->name, name)) return &m->info[i];
    return NULL;
}

int nl_model_params_finite(const nl_model *m, const nl_param **bad) {
    const nl_params *ps = &m->ps;
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        int ok = 1;
        if (ps->dtype == NL_F32) {
            const float *v = (const float *)ps->data + p->offset;
            for (int64_t k = 0; k < p->numel; k++) ok &= isfinite(v[k]) ? 1 : 0;
        } else {
            const double *v = (const double *)ps->data + p->offset;
            for (int64_t k = 0; k < p->numel; k++) ok &= isfinite(v[k]) ? 1 : 0;
        }
        if (!ok) {
            if (bad) *bad = p;
            return 0;
        }
    }
    if (bad) *bad = NULL;
    return 1;
}

/* ---------------- forward ---------------- */
/* The value a parameter contributes to the forward pass: fwd_mult * v (no op when the multiplier is 1). */
static nl_var *eff(nl_ctx *c, nl_model *m, nl_var *v) {
    if (!v) return NULL;
    const nl_param *p = (const nl_param *)((const char *)v - offsetof(nl_param, var));
    return p->fwd_mult == 1.0f ? v : nl_mul_scalar(c, v, (double)p->fwd_mult);
}

static nl_var *activate(nl_ctx *c, nl_var *x, nl_activation a) {
    switch (a) {
    case NL_ACT_TANH: return nl_tanh(c, x);
    case NL_ACT_GELU: return nl_gelu(c, x);
    case NL_ACT_SIGMOID: return nl_sigmoid(c, x);
    default: return nl_relu(c, x);
    }
}

nl_var *nl_model_input(nl_model *m, nl_ctx *c, const float *x, int64_t n) {
    int64_t sh[2] = {n, m->in_dim};
    if (m->cfg.dtype == NL_F32) return nl_input(c, nl_tensor_wrap((void *)x, NL_F32, 2, sh));
    nl_var *v = nl_new(c, NL_F64, 2, sh);
    if (!v) return NULL;
    double *d = v->val.data;
    for (int64_t i = 0; i < n * m->in_dim; i++) d[i] = x[i];
    return v;
}

nl_var *nl_model_forward(nl_model *m, nl_ctx *c, nl_var *x, int train) {
    if (!x) return NULL;
    const nl_model_config *cfg = &m->cfg;
    if (x->val.dtype != cfg->dtype)
        return nl_op_fail(NL_EDTYPE, "model_forward", cfg->dtype == NL_F32 ? "input must be f32" : "input must be f64", x, NULL);
    int64_t n = x->val.shape[0];
    if (x->val.ndim < 1 || nl_tensor_numel(&x->val) != n * m->in_dim || (cfg->kind == NL_MODEL_MLP && x->val.ndim != 2)) {
        char msg[96];
        snprintf(msg, sizeof msg, "input must be [N, %lld]%s", (long long)m->in_dim, cfg->kind == NL_MODEL_CNN ? " or [N, C, H, W]" : "");
        return nl_op_fail(NL_ESHAPE, "model_forward", msg, x, NULL);
    }
    nl_var *h = x;
    if (cfg->input_mean != 0.0) h = nl_add_scalar(c, h, -cfg->input_mean);
    if (cfg->input_std != 1.0) h = nl_mul_scalar(c, h, 1.0 / cfg->input_std);
    const double p = cfg->dropout;
    if (cfg->kind == NL_MODEL_MLP) {
        for (int l = 0; l < m->n_layers; l++) {
            nl_model_layer *L = &m->layer[l];
            h = nl_linear(c, h, eff(c, m, L->w), eff(c, m, L->b));
            if (l < m->n_layers - 1) {
                if (m->layer[l + 1].type == LT_BN) {
                    L = &m->layer[++l];
                    h = nl_batchnorm(c, h, eff(c, m, L->w), eff(c, m, L->b), L->rm, L->rv, cfg->bn_momentum, cfg->bn_eps, train);
                }
                h = activate(c, h, cfg->act);
                if (p > 0) h = nl_dropout(c, h, p, train, &m->dropout_rng);
            }
        }
        return h;
    }
    if (h && h->val.ndim != 4) {
        int64_t sh[4] = {n, cfg->in_channels, cfg->in_height, cfg->in_width};
        h = nl_reshape(c, h, 4, sh);
    }
    int l = 0;
    for (int b = 0; b < cfg->n_blocks; b++) {
        nl_model_layer *L = &m->layer[l++];
        h = nl_conv2d(c, h, eff(c, m, L->w), eff(c, m, L->b), 1, cfg->kernel / 2);
        if (cfg->batchnorm) {
            L = &m->layer[l++];
            h = nl_batchnorm(c, h, eff(c, m, L->w), eff(c, m, L->b), L->rm, L->rv, cfg->bn_momentum, cfg->bn_eps, train);
        }
        h = nl_relu(c, h);
        if (nl_model_block_pools(cfg, b)) h = nl_maxpool2d(c, h, cfg->pool, cfg->pool, 0);
    }
    if (!h) return NULL;
    int64_t fs[2] = {n, -1};
    h = nl_reshape(c, h, 2, fs);
    for (; l < m->n_layers; l++) {
        nl_model_layer *L = &m->layer[l];
        if (p > 0) h = nl_dropout(c, h, p, train, &m->dropout_rng);
        h = nl_linear(c, h, eff(c, m, L->w), eff(c, m, L->b));
        if (l < m->n_layers - 1) h = activate(c, h, cfg->act);
    }
    return h;
}
