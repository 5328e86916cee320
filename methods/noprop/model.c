/* NoProp: the noise schedule, the KL term, the blocks and the model (parameter stores). The formulas are in
 * noprop.h; training and inference are in train.c. */
#include "noprop/noprop.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- schedule ---- */
double nl_noprop_abar(int t, int T) {
    if (t <= 0 || T <= 0) return 0.0; /* z_0 ~ N(0, I): abar_0 = 0 exactly (cos^2(pi/2) would be 3.7e-33) */
    if (t > T) t = T;
    const double s = NL_NOPROP_COSINE_S;
    double ph = 0.5 * M_PI * (1.0 - (double)t / T + s) / (1.0 + s), co = cos(ph);
    return co * co;
}

double nl_noprop_snr(double abar) { return abar / (1.0 - abar); }

double nl_noprop_weight(int t, int T, double eta) {
    return 0.5 * T * eta * (nl_noprop_snr(nl_noprop_abar(t, T)) - nl_noprop_snr(nl_noprop_abar(t - 1, T)));
}

void nl_noprop_coeffs(int t, int T, double *a, double *b, double *c) {
    double ab = nl_noprop_abar(t, T), ap = nl_noprop_abar(t - 1, T); /* abar_t, abar_{t-1} */
    double al = ap / ab;                                               /* alpha_{t-1} := abar_{t-1} / abar_t */
    *a = sqrt(ab) * (1.0 - al) / (1.0 - ap);
    *b = sqrt(al) * (1.0 - ab) / (1.0 - ap);
    *c = (1.0 - ab) * (1.0 - al) / (1.0 - ap);
}

double nl_noprop_abar_ct(double t) {
    if (t <= 0) return 0.0;
    if (t > 1) t = 1;
    const double s = NL_NOPROP_COSINE_S;
    double co = cos(0.5 * M_PI * (1.0 - t + s) / (1.0 + s));
    return co * co;
}

double nl_noprop_dsnr_ct(double t) {
    /* SNR = cot^2(phi), phi = pi/2 (1 - t + s)/(1 + s), dphi/dt = -pi/2/(1 + s): dSNR/dt = 2 cot(phi) csc^2(phi) pi/2/(1 + s) */
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    const double s = NL_NOPROP_COSINE_S;
    double ph = 0.5 * M_PI * (1.0 - t + s) / (1.0 + s), sn = sin(ph);
    return 2.0 * (cos(ph) / sn) / (sn * sn) * 0.5 * M_PI / (1.0 + s);
}

double nl_noprop_ct_weight(double t, double eta, int snr_weight) {
    if (snr_weight) return 0.5 * eta * nl_noprop_dsnr_ct(t);
    return 0.5 * eta * (nl_noprop_snr(nl_noprop_abar_ct(1.0)) - nl_noprop_snr(nl_noprop_abar_ct(0.0)));
}

nl_var *nl_noprop_kl(nl_ctx *c, nl_var *u, double abar) {
    if (!u) return NULL;
    if (u->val.ndim != 2 || !(abar >= 0 && abar < 1)) {
        nl_set_error(NL_EINVAL, "noprop kl: u must be [B, d] and abar in [0, 1) (abar %g)", abar);
        return NULL;
    }
    double B = (double)u->val.shape[0], d = (double)u->val.shape[1];
    nl_var *s = nl_sum(c, nl_square(c, u), NL_AXIS_ALL, 0);
    return nl_add_scalar(c, nl_mul_scalar(c, s, 0.5 * abar / B), 0.5 * (d * (1 - abar) - d - d * log1p(-abar)));
}

/* ---- blocks ---- */
static nl_status fc_add(nl_params *ps, nl_noprop_fc *f, const char *name, int64_t in, int64_t out, int bn) {
    char n[96];
    memset(f, 0, sizeof *f);
    snprintf(n, sizeof n, "%s.W", name);
    if (!(f->W = nl_params_add(ps, n, 2, (int64_t[]){out, in}))) return nl_last_status();
    snprintf(n, sizeof n, "%s.b", name);
    if (!(f->b = nl_params_add(ps, n, 1, &out))) return nl_last_status();
    if (!bn) return NL_OK;
    snprintf(n, sizeof n, "%s.bn.g", name);
    if (!(f->g = nl_params_add(ps, n, 1, &out))) return nl_last_status();
    snprintf(n, sizeof n, "%s.bn.b", name);
    if (!(f->be = nl_params_add(ps, n, 1, &out))) return nl_last_status();
    snprintf(n, sizeof n, "buf.%s.rm", name);
    if (!(f->rm = nl_params_add(ps, n, 1, &out))) return nl_last_status();
    snprintf(n, sizeof n, "buf.%s.rv", name);
    if (!(f->rv = nl_params_add(ps, n, 1, &out))) return nl_last_status();
    return NL_OK;
}

/* PyTorch's default: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)); BN gamma 1, beta 0, running var 1. */
static void uniform_init(nl_rng *r, nl_var *w, nl_var *b, int64_t fan_in) {
    double bound = 1.0 / sqrt((double)fan_in);
    nl_rng_fill_uniform(r, &w->val, -bound, bound);
    if (b) nl_rng_fill_uniform(r, &b->val, -bound, bound);
}

static void fc_init(nl_rng *r, nl_noprop_fc *f) {
    uniform_init(r, f->W, f->b, f->W->val.shape[1]);
    if (f->g) {
        nl_tensor_fill(&f->g->val, 1.0);
        nl_tensor_fill(&f->rv->val, 1.0);
    }
}

nl_status nl_noprop_block_init(nl_noprop_block *b, const nl_noprop_config *cfg, int64_t d_img, int64_t z_in, int64_t n_out,
                               uint64_t seed, uint64_t stream) {
    memset(b, 0, sizeof *b);
    int64_t H = cfg->hidden, H2 = H / 2 > 0 ? H / 2 : 1;
    if (H < 1 || (cfg->cnn && (d_img != 784 || cfg->channels[0] < 1 || cfg->channels[1] < 1)))
        return nl_set_error(NL_EINVAL, "noprop block: hidden %lld, cnn %d needs 28x28 images (d %lld) and channels >= 1",
                            (long long)H, cfg->cnn, (long long)d_img);
    nl_status s = nl_params_init(&b->ps, NL_F32);
    if (s) return s;
    b->cnn = cfg->cnn;
    int64_t img_in = d_img;
    if (b->cnn) {
        int64_t c1 = cfg->channels[0], c2 = cfg->channels[1];
        if (!(b->cw1 = nl_params_add(&b->ps, "conv1.w", 4, (int64_t[]){c1, 1, 3, 3})) ||
            !(b->cb1 = nl_params_add(&b->ps, "conv1.b", 1, &c1)) ||
            !(b->cw2 = nl_params_add(&b->ps, "conv2.w", 4, (int64_t[]){c2, c1, 3, 3})) ||
            !(b->cb2 = nl_params_add(&b->ps, "conv2.b", 1, &c2)))
            goto fail;
        img_in = c2 * 7 * 7;
    }
    if ((s = fc_add(&b->ps, &b->img, "img", img_in, H, 1)) || (s = fc_add(&b->ps, &b->zb, "z", z_in, H, 1)) ||
        (s = fc_add(&b->ps, &b->f1, "f1", 2 * H, H, 1)) || (s = fc_add(&b->ps, &b->f2, "f2", H, H2, 1)) ||
        (s = fc_add(&b->ps, &b->out, "out", H2, n_out, 0)))
        goto fail;
    nl_params_set_trainable(&b->ps, "buf.", 0);
    nl_rng r;
    nl_rng_init(&r, seed, stream);
    if (b->cnn) {
        uniform_init(&r, b->cw1, b->cb1, 9);
        uniform_init(&r, b->cw2, b->cb2, 9 * cfg->channels[0]);
    }
    fc_init(&r, &b->img);
    fc_init(&r, &b->zb);
    fc_init(&r, &b->f1);
    fc_init(&r, &b->f2);
    fc_init(&r, &b->out);
    return NL_OK;
fail:
    s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
    nl_params_free(&b->ps);
    memset(b, 0, sizeof *b);
    return s;
}

void nl_noprop_block_free(nl_noprop_block *b) {
    if (b->ps.p || b->ps.data) nl_params_free(&b->ps);
    memset(b, 0, sizeof *b);
}

static nl_var *fc_fwd(nl_ctx *c, const nl_noprop_fc *f, nl_var *x, int train, int relu) {
    nl_var *h = nl_linear(c, x, f->W, f->b);
    if (f->g) h = nl_batchnorm(c, h, f->g, f->be, f->rm, f->rv, 0.1, 1e-5, train);
    return relu ? nl_relu(c, h) : h;
}

nl_var *nl_noprop_block_image(nl_ctx *c, nl_noprop_block *b, nl_var *x, int train) {
    if (!x) return NULL;
    int64_t B = x->val.shape[0];
    if (b->cnn) {
        nl_var *im = nl_reshape(c, x, 4, (int64_t[]){B, 1, 28, 28});
        im = nl_maxpool2d(c, nl_relu(c, nl_conv2d(c, im, b->cw1, b->cb1, 1, 1)), 2, 2, 0); /* [B, c1, 14, 14] */
        im = nl_maxpool2d(c, nl_relu(c, nl_conv2d(c, im, b->cw2, b->cb2, 1, 1)), 2, 2, 0); /* [B, c2, 7, 7] */
        im = nl_reshape(c, im, 2, (int64_t[]){B, -1});
        return fc_fwd(c, &b->img, im, train, 0); /* [B, H]: FC - BN, as the reimplementations' image path */
    }
    return fc_fwd(c, &b->img, x, train, 1); /* [B, H] */
}

nl_var *nl_noprop_block_head(nl_ctx *c, nl_noprop_block *b, nl_var *hi, nl_var *z, int train) {
    if (!hi || !z) return NULL;
    nl_var *hz = fc_fwd(c, &b->zb, z, train, 1); /* [B, H] */
    nl_var *h = nl_concat(c, 2, (nl_var *[]){hi, hz}, 1); /* [B, 2H] */
    h = fc_fwd(c, &b->f1, h, train, 1);   /* [B, H] */
    h = fc_fwd(c, &b->f2, h, train, 1);   /* [B, H/2] */
    return fc_fwd(c, &b->out, h, train, 0); /* [B, n_out] */
}

nl_var *nl_noprop_block_forward(nl_ctx *c, nl_noprop_block *b, nl_var *x, nl_var *z, int train) {
    return nl_noprop_block_head(c, b, nl_noprop_block_image(c, b, x, train), z, train);
}

/* ---- model ---- */
const char *nl_noprop_variant_name(nl_noprop_variant v) {
    switch (v) {
    case NL_NOPROP_DT: return "dt";
    case NL_NOPROP_CT: return "ct";
    case NL_NOPROP_FM: return "fm";
    case NL_NOPROP_BACKPROP: return "backprop";
    }
    return "?";
}

nl_status nl_noprop_variant_parse(const char *s, nl_noprop_variant *out) {
    for (int v = 0; v <= NL_NOPROP_BACKPROP; v++)
        if (!strcmp(s, nl_noprop_variant_name((nl_noprop_variant)v))) {
            *out = (nl_noprop_variant)v;
            return NL_OK;
        }
    return nl_set_error(NL_EINVAL, "noprop: unknown variant '%s' (dt, ct, fm or backprop)", s);
}

nl_status nl_noprop_embed_parse(const char *s, nl_noprop_embed *out) {
    static const char *names[] = {"onehot", "learned", "prototype"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (nl_noprop_embed)i;
            return NL_OK;
        }
    return nl_set_error(NL_EINVAL, "noprop: unknown embedding '%s' (onehot, learned or prototype)", s);
}

nl_noprop_config nl_noprop_defaults(void) {
    nl_noprop_config c;
    memset(&c, 0, sizeof c);
    c.variant = NL_NOPROP_DT;
    c.T = 10;
    c.cnn = 1;
    c.channels[0] = 16;
    c.channels[1] = 32;
    c.hidden = 256;
    c.embed = NL_NOPROP_EMB_ONEHOT;
    c.embed_dim = 20;
    c.eta = 0.1;
    c.lr = 1e-3;
    c.wd = 1e-3;
    c.batch = 128;
    c.epochs = 1;
    c.seed = 1;
    return c;
}

/* Prototype embedding: row c = the training image of class c closest to the class mean (among the first 10000). */
static nl_status prototype_init(nl_var *E, const nl_dataset *ds) {
    int64_t C = E->val.shape[0], d = E->val.shape[1], n = ds->n < 10000 ? ds->n : 10000;
    float *emb = E->val.data;
    double *mean = calloc((size_t)(C * d), sizeof *mean);
    int64_t *cnt = calloc((size_t)C, sizeof *cnt);
    if (!mean || !cnt) {
        free(mean);
        free(cnt);
        return nl_set_error(NL_ENOMEM, "noprop: out of memory (prototypes)");
    }
    for (int64_t i = 0; i < n; i++) {
        int y = ds->y[i];
        cnt[y]++;
        for (int64_t j = 0; j < d; j++) mean[y * d + j] += ds->x[i * d + j];
    }
    for (int64_t k = 0; k < C; k++)
        for (int64_t j = 0; j < d; j++) mean[k * d + j] /= cnt[k] ? (double)cnt[k] : 1.0;
    double *best = malloc((size_t)C * sizeof *best);
    for (int64_t k = 0; best && k < C; k++) best[k] = INFINITY;
    for (int64_t i = 0; best && i < n; i++) {
        int y = ds->y[i];
        double dist = 0;
        for (int64_t j = 0; j < d; j++) dist += (ds->x[i * d + j] - mean[y * d + j]) * (ds->x[i * d + j] - mean[y * d + j]);
        if (dist < best[y]) {
            best[y] = dist;
            memcpy(emb + y * d, ds->x + i * d, (size_t)d * sizeof *emb);
        }
    }
    nl_status s = best ? NL_OK : nl_set_error(NL_ENOMEM, "noprop: out of memory (prototypes)");
    free(best);
    free(mean);
    free(cnt);
    return s;
}

nl_status nl_noprop_model_init(nl_noprop_model *m, const nl_noprop_config *cfg, const nl_dataset *train) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    if (cfg->T < 1 || cfg->T > NL_NOPROP_MAX_T) return nl_set_error(NL_EINVAL, "noprop: T = %d outside 1..%d", cfg->T, NL_NOPROP_MAX_T);
    if (!train || train->n_classes < 2) return nl_set_error(NL_EINVAL, "noprop: a training set with >= 2 classes is needed");
    m->C = train->n_classes;
    m->d_img = train->d;
    m->d = cfg->embed == NL_NOPROP_EMB_ONEHOT ? m->C : cfg->embed == NL_NOPROP_EMB_PROTOTYPE ? train->d : cfg->embed_dim;
    if (m->d < 1) return nl_set_error(NL_EINVAL, "noprop: embedding dimension %lld", (long long)m->d);
    nl_status s = nl_params_init(&m->shared, NL_F32);
    if (s) return s;
    if (!(m->embed = nl_params_add(&m->shared, "embed", 2, (int64_t[]){m->C, m->d})) ||
        !(m->cls_W = nl_params_add(&m->shared, "cls.W", 2, (int64_t[]){m->C, m->d})) ||
        !(m->cls_b = nl_params_add(&m->shared, "cls.b", 1, &m->C))) {
        s = nl_last_status();
        nl_params_free(&m->shared);
        return s;
    }
    nl_rng r;
    nl_rng_init(&r, cfg->seed, 0x6E6F70ULL << 16);
    /* the classifier p(y | z) starts at zero (left zero by nl_params_add): from a random init its argmax mapping of the
     * embeddings is a random assignment that Adam at lr 1e-3 takes hundreds of steps to undo (README, deviations) */
    float *E = m->embed->val.data;
    if (cfg->embed == NL_NOPROP_EMB_ONEHOT) {
        for (int64_t k = 0; k < m->C; k++) E[k * m->d + k] = 1.0f;
        nl_params_set_trainable(&m->shared, "embed", 0);
    } else if (cfg->embed == NL_NOPROP_EMB_LEARNED) {
        nl_rng_fill_normal(&r, &m->embed->val, 0.0, 1.0);
    } else if ((s = prototype_init(m->embed, train))) {
        nl_params_free(&m->shared);
        return s;
    }
    int ct = cfg->variant == NL_NOPROP_CT || cfg->variant == NL_NOPROP_FM;
    m->n_blocks = ct ? 1 : cfg->T;
    int64_t n_out = cfg->variant == NL_NOPROP_FM ? m->d : m->C, z_in = ct ? m->d + 1 : m->d;
    for (int t = 0; t < m->n_blocks; t++)
        if ((s = nl_noprop_block_init(&m->blocks[t], cfg, m->d_img, z_in, n_out, cfg->seed, ((uint64_t)0x6E6F71 << 16) + (uint64_t)t))) {
            nl_noprop_model_free(m);
            return s;
        }
    return NL_OK;
}

void nl_noprop_model_free(nl_noprop_model *m) {
    for (int t = 0; t < NL_NOPROP_MAX_T; t++) nl_noprop_block_free(&m->blocks[t]);
    if (m->shared.p || m->shared.data) nl_params_free(&m->shared);
    memset(m, 0, sizeof *m);
}

static int64_t count_trainable(const nl_params *ps) {
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i]->var.requires_grad) n += ps->p[i]->numel;
    return n;
}

int64_t nl_noprop_model_num_params(const nl_noprop_model *m) {
    int64_t n = count_trainable(&m->shared);
    for (int t = 0; t < m->n_blocks; t++) n += count_trainable(&m->blocks[t].ps);
    return n;
}
