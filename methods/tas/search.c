/* methods/tas/search.c — the TAS supernet (searchable widths and depths over lib/compress's ResNet), its expected
 * FLOPs, and the alternating weight / architecture search (tas.h). */
#include "tas/tas.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/optim.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tas_conv {
    nl_var *w;                                  /* (cout, cin, k, k) at the maximal widths */
    int k, stride, cin, cout;
    int nch, ch[NL_TAS_MAX_CHOICES];            /* width choices of the output */
    nl_var *g[NL_TAS_MAX_CHOICES];              /* (ch[j]) BN gamma of choice j */
    nl_var *b[NL_TAS_MAX_CHOICES];              /* (ch[j]) BN beta of choice j */
    double hw;                                  /* output positions per image */
} tas_conv;

typedef struct tas_net {
    nl_resnet_config cfg;                       /* the unpruned shape */
    int n_convs;
    nl_params ps;                               /* weights */
    nl_params arch;                             /* alpha.<l> (nch of conv l), beta.<s> (nd[s]) */
    tas_conv conv[NL_RESNET_MAX_CONVS];         /* stem, then a, b per block (as nl_resnet_config.ch) */
    tas_conv proj[3 * NL_RESNET_MAX_BLOCKS];    /* projection shortcut of block j (w NULL: identity / padded add) */
    nl_var *alpha[NL_RESNET_MAX_CONVS];         /* (nch) width logits */
    nl_var *beta[3];                            /* (nd[s]) depth logits, NULL when the stage has one choice */
    int nd[3], dch[3][NL_RESNET_MAX_BLOCKS];    /* depth choices per stage */
    nl_var *fc_w, *fc_b;                        /* (classes, C_last), (classes) */
} tas_net;

static nl_status conv_add(tas_net *m, tas_conv *cv, const char *name, int cin, int cout, int k, int stride, double hw) {
    char nm[96];
    cv->cin = cin, cv->cout = cout, cv->k = k, cv->stride = stride, cv->hw = hw;
    snprintf(nm, sizeof nm, "%s.weight", name);
    if (!(cv->w = nl_params_add(&m->ps, nm, 4, (int64_t[]){cout, cin, k, k}))) return nl_last_status();
    cv->nch = nl_tas_width_choices(cout, cv->ch);
    for (int j = 0; j < cv->nch; j++) {
        snprintf(nm, sizeof nm, "%s.bn%d.weight", name, j);
        if (!(cv->g[j] = nl_params_add(&m->ps, nm, 1, (int64_t[]){cv->ch[j]}))) return nl_last_status();
        snprintf(nm, sizeof nm, "%s.bn%d.bias", name, j);
        if (!(cv->b[j] = nl_params_add(&m->ps, nm, 1, (int64_t[]){cv->ch[j]}))) return nl_last_status();
    }
    return NL_OK;
}

static void net_free(tas_net *m) {
    nl_params_free(&m->ps);
    nl_params_free(&m->arch);
}

static nl_status net_init(tas_net *m, const nl_resnet_config *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    nl_status s = nl_resnet_check(cfg);
    if (s) return s;
    m->cfg = *cfg;
    m->n_convs = nl_resnet_num_convs(cfg);
    nl_params_init(&m->ps, NL_F32);
    nl_params_init(&m->arch, NL_F32);
    int hw[4];
    nl_resnet_sizes(cfg, hw);
    char nm[64];
    s = conv_add(m, &m->conv[0], "stem", cfg->in_ch, cfg->ch[0], 3, 1, (double)hw[0] * hw[0]);
    int win = cfg->ch[0], j = 0;
    for (int st = 0; st < 3 && !s; st++) {
        const double pos = (double)hw[st + 1] * hw[st + 1];
        for (int b = 0; b < cfg->blocks[st] && !s; b++, j++) {
            int stride = (st > 0 && b == 0) ? 2 : 1, a = cfg->ch[1 + 2 * j], o = cfg->ch[2 + 2 * j];
            snprintf(nm, sizeof nm, "s%d.b%d.a", st + 1, b);
            if ((s = conv_add(m, &m->conv[1 + 2 * j], nm, win, a, 3, stride, pos))) break;
            snprintf(nm, sizeof nm, "s%d.b%d.b", st + 1, b);
            if ((s = conv_add(m, &m->conv[2 + 2 * j], nm, a, o, 3, 1, pos))) break;
            if (stride != 1 || win != o) {
                snprintf(nm, sizeof nm, "s%d.b%d.proj", st + 1, b);
                s = conv_add(m, &m->proj[j], nm, win, o, 1, stride, pos);
            }
            win = o;
        }
    }
    if (!s) {
        m->fc_w = nl_params_add(&m->ps, "fc.weight", 2, (int64_t[]){cfg->n_classes, win});
        m->fc_b = nl_params_add(&m->ps, "fc.bias", 1, (int64_t[]){cfg->n_classes});
        if (!m->fc_w || !m->fc_b) s = nl_last_status();
    }
    for (int l = 0; l < m->n_convs && !s; l++) {
        snprintf(nm, sizeof nm, "alpha.%d", l);
        if (!(m->alpha[l] = nl_params_add(&m->arch, nm, 1, (int64_t[]){m->conv[l].nch}))) s = nl_last_status();
    }
    for (int st = 0; st < 3 && !s; st++) {
        m->nd[st] = nl_tas_depth_choices(cfg->blocks[st], m->dch[st]);
        snprintf(nm, sizeof nm, "beta.%d", st);
        if (m->nd[st] > 1 && !(m->beta[st] = nl_params_add(&m->arch, nm, 1, (int64_t[]){m->nd[st]}))) s = nl_last_status();
    }
    if (s) {
        net_free(m);
        return s;
    }
    /* init: Kaiming normal (fan_out) convs, BN 1/0, linear U(+-1/sqrt(in)), logits N(0, 0.01) (the reference's) */
    nl_rng r;
    nl_rng_init(&r, seed, 0x7A5ULL << 40);
    const int nblk = (m->n_convs - 1) / 2;
    for (int l = 0; l < m->n_convs + nblk; l++) {
        tas_conv *cv = l < m->n_convs ? &m->conv[l] : &m->proj[l - m->n_convs];
        if (!cv->w) continue;
        nl_rng_fill_normal(&r, &cv->w->val, 0.0, sqrt(2.0 / ((double)cv->cout * cv->k * cv->k)));
        for (int k = 0; k < cv->nch; k++) nl_tensor_fill(&cv->g[k]->val, 1.0);
    }
    const double bound = 1.0 / sqrt((double)win);
    nl_rng_fill_uniform(&r, &m->fc_w->val, -bound, bound);
    nl_rng_fill_uniform(&r, &m->fc_b->val, -bound, bound);
    for (int i = 0; i < m->arch.n; i++) nl_rng_fill_normal(&r, &m->arch.p[i]->var.val, 0.0, 0.01);
    return NL_OK;
}

/* ---- Gumbel sampling ---- */
typedef struct wsel {
    int n;          /* 1 or 2 choices used */
    int idx[2];     /* choice indices */
    nl_var *p[2];   /* [1] mixing weights (renormalised Gumbel-softmax over the two) */
} wsel;

/* new logits (log_softmax(a) + g) / tau as a var [n], and their softmax's values in prob (n) */
static nl_var *gumbel_logits(nl_ctx *c, nl_var *a, double tau, nl_rng *r, double *prob) {
    const int64_t n = a->val.shape[0];
    nl_var *g = nl_new(c, NL_F32, 1, (int64_t[]){n});
    if (!g) return NULL;
    float *gd = g->val.data;
    for (int64_t j = 0; j < n; j++) gd[j] = (float)nl_rng_gumbel(r);
    nl_var *z = nl_mul_scalar(c, nl_add(c, nl_log_softmax(c, a, 0), g), 1.0 / tau);
    if (!z) return NULL;
    const float *zd = z->val.data;
    double mx = -INFINITY, tot = 0;
    for (int64_t j = 0; j < n; j++) mx = fmax(mx, zd[j]);
    for (int64_t j = 0; j < n; j++) tot += prob[j] = exp(zd[j] - mx);
    for (int64_t j = 0; j < n; j++) prob[j] = prob[j] / tot + 1e-7;
    return z;
}

static int sample_width(nl_ctx *c, nl_var *a, double tau, nl_rng *r, wsel *s) {
    const int n = (int)a->val.shape[0];
    double prob[NL_TAS_MAX_CHOICES];
    nl_var *z = gumbel_logits(c, a, tau, r, prob);
    if (!z) return -1;
    if (n == 1) {
        s->n = 1, s->idx[0] = 0, s->p[0] = nl_scalar(c, NL_F32, 1.0);
        return s->p[0] ? 0 : -1;
    }
    s->n = 2;
    s->idx[0] = (int)nl_rng_categorical(r, prob, n);
    prob[s->idx[0]] = 0; /* without replacement */
    s->idx[1] = (int)nl_rng_categorical(r, prob, n);
    nl_var *two[2] = {nl_slice(c, z, 0, s->idx[0], s->idx[0] + 1, 1), nl_slice(c, z, 0, s->idx[1], s->idx[1] + 1, 1)};
    nl_var *sm = nl_softmax(c, nl_concat(c, 2, two, 0), 0);
    s->p[0] = nl_slice(c, sm, 0, 0, 1, 1);
    s->p[1] = nl_slice(c, sm, 0, 1, 2, 1);
    return s->p[1] ? 0 : -1;
}

/* conv at the larger selected width over the input's channels, one BN per choice, CWI to the larger width, mix */
static nl_var *search_conv(nl_ctx *c, const tas_conv *cv, const wsel *s, nl_var *x, int relu) {
    if (!x) return NULL;
    int cm = cv->ch[s->idx[0]];
    if (s->n == 2 && cv->ch[s->idx[1]] > cm) cm = cv->ch[s->idx[1]];
    nl_var *w = nl_slice(c, nl_slice(c, cv->w, 0, 0, cm, 1), 1, 0, x->val.shape[1], 1);
    nl_var *h = nl_conv2d(c, x, w, NULL, cv->stride, cv->k / 2), *out = NULL;
    for (int k = 0; k < s->n; k++) {
        const int j = s->idx[k];
        nl_var *hk = cv->ch[j] == cm ? h : nl_contiguous(c, nl_slice(c, h, 1, 0, cv->ch[j], 1));
        hk = nl_batchnorm(c, hk, cv->g[j], cv->b[j], NULL, NULL, 0.1, 1e-5, 1);
        hk = s->n == 1 ? nl_tas_cwi(c, hk, cm) : nl_tas_scale(c, nl_tas_cwi(c, hk, cm), s->p[k]);
        out = out ? nl_add(c, out, hk) : hk;
    }
    return relu ? nl_relu(c, out) : out;
}

/* the search forward: x [B, d] -> logits [B, classes] */
static nl_var *search_forward(nl_ctx *c, tas_net *m, nl_var *x, double tau, nl_rng *r) {
    const nl_resnet_config *cfg = &m->cfg;
    const int64_t B = x->val.shape[0];
    wsel sel[NL_RESNET_MAX_CONVS];
    for (int l = 0; l < m->n_convs; l++)
        if (sample_width(c, m->alpha[l], tau, r, &sel[l])) return NULL;
    nl_var *h = nl_reshape(c, x, 4, (int64_t[]){B, cfg->in_ch, cfg->in_h, cfg->in_w});
    if (cfg->pool > 1) h = nl_avgpool2d(c, h, cfg->pool, cfg->pool, 0);
    h = search_conv(c, &m->conv[0], &sel[0], h, 1);
    int j = 0;
    for (int st = 0; st < 3; st++) {
        nl_var *feat[NL_RESNET_MAX_BLOCKS];
        for (int b = 0; b < cfg->blocks[st]; b++, j++) {
            nl_var *y = search_conv(c, &m->conv[1 + 2 * j], &sel[1 + 2 * j], h, 1);
            y = search_conv(c, &m->conv[2 + 2 * j], &sel[2 + 2 * j], y, 0);
            nl_var *sc = m->proj[j].w ? search_conv(c, &m->proj[j], &sel[2 + 2 * j], h, 0) : h;
            h = feat[b] = nl_relu(c, nl_tas_add_pad(c, y, sc));
            if (!h) return NULL;
        }
        if (m->nd[st] > 1) { /* Gumbel-weighted sum of the feature maps at each depth choice, CWI'd to the widest */
            double prob[NL_RESNET_MAX_BLOCKS];
            nl_var *pd = nl_softmax(c, gumbel_logits(c, m->beta[st], tau, r, prob), 0);
            int64_t cm = 0;
            for (int k = 0; k < m->nd[st]; k++)
                if (feat[m->dch[st][k] - 1]->val.shape[1] > cm) cm = feat[m->dch[st][k] - 1]->val.shape[1];
            nl_var *mix = NULL;
            for (int k = 0; k < m->nd[st]; k++) {
                nl_var *t = nl_tas_scale(c, nl_tas_cwi(c, feat[m->dch[st][k] - 1], cm), nl_slice(c, pd, 0, k, k + 1, 1));
                mix = mix ? nl_add(c, mix, t) : t;
            }
            h = mix;
        }
    }
    if (!h) return NULL;
    h = nl_mean(c, nl_reshape(c, h, 3, (int64_t[]){B, h->val.shape[1], -1}), 2, 0); /* [B, C] */
    nl_var *wf = nl_slice(c, m->fc_w, 1, 0, h ? h->val.shape[1] : 1, 1);
    return nl_linear(c, h, wf, m->fc_b);
}

/* E[C_out] of conv l: sum_j softmax(alpha_l)_j ch_j (a scalar var) */
static nl_var *expected_width(nl_ctx *c, const tas_net *m, int l) {
    const tas_conv *cv = &m->conv[l];
    nl_var *v = nl_new(c, NL_F32, 1, (int64_t[]){cv->nch});
    if (!v) return NULL;
    for (int j = 0; j < cv->nch; j++) ((float *)v->val.data)[j] = (float)cv->ch[j];
    return nl_sum(c, nl_mul(c, nl_softmax(c, m->alpha[l], 0), v), NL_AXIS_ALL, 0);
}

/* conv FLOPs k^2 hw E_in E_out in MFLOPs (E_in NULL: the constant cin) */
static nl_var *conv_flops(nl_ctx *c, const tas_conv *cv, nl_var *ein, nl_var *eout) {
    const double k = (double)cv->k * cv->k * cv->hw / 1e6;
    return ein ? nl_mul_scalar(c, nl_mul(c, ein, eout), k) : nl_mul_scalar(c, eout, k * cv->cin);
}

/* E[F] in MFLOPs: the reference's expected FLOPs (each block weighted by P(depth reaches it)) */
static nl_var *expected_flops(nl_ctx *c, const tas_net *m) {
    nl_var *e0 = expected_width(c, m, 0);
    nl_var *tot = conv_flops(c, &m->conv[0], NULL, e0), *ein = e0;
    int j = 0;
    for (int st = 0; st < 3; st++) {
        nl_var *pd = m->beta[st] ? nl_softmax(c, m->beta[st], 0) : NULL;
        for (int b = 0; b < m->cfg.blocks[st]; b++, j++) {
            nl_var *ea = expected_width(c, m, 1 + 2 * j), *eb = expected_width(c, m, 2 + 2 * j);
            nl_var *f = nl_add(c, conv_flops(c, &m->conv[1 + 2 * j], ein, ea), conv_flops(c, &m->conv[2 + 2 * j], ea, eb));
            if (m->proj[j].w) f = nl_add(c, f, conv_flops(c, &m->proj[j], ein, eb));
            int idx = 0; /* depth choices shorter than this block */
            while (idx < m->nd[st] && m->dch[st][idx] < b + 1) idx++;
            if (pd && idx > 0) f = nl_mul(c, f, nl_sum(c, nl_slice(c, pd, 0, idx, m->nd[st], 1), NL_AXIS_ALL, 0));
            tot = nl_add(c, tot, f);
            ein = eb;
        }
    }
    return nl_add(c, tot, nl_mul_scalar(c, ein, m->cfg.n_classes / 1e6));
}

static int argmax_f(const float *v, int n) {
    int k = 0;
    for (int j = 1; j < n; j++)
        if (v[j] > v[k]) k = j;
    return k;
}

/* the argmax shape, as an nl_resnet_config (blocks beyond the chosen depth dropped) */
static nl_resnet_config genotype(const tas_net *m) {
    nl_resnet_config g = m->cfg;
    g.ch[0] = m->conv[0].ch[argmax_f(m->alpha[0]->val.data, m->conv[0].nch)];
    int j = 0, jo = 0;
    for (int st = 0; st < 3; st++) {
        const int d = m->beta[st] ? m->dch[st][argmax_f(m->beta[st]->val.data, m->nd[st])] : m->cfg.blocks[st];
        for (int b = 0; b < m->cfg.blocks[st]; b++, j++) {
            if (b >= d) continue;
            for (int q = 1; q <= 2; q++) {
                const tas_conv *cv = &m->conv[q + 2 * j];
                g.ch[q + 2 * jo] = cv->ch[argmax_f(m->alpha[q + 2 * j]->val.data, cv->nch)];
            }
            jo++;
        }
        g.blocks[st] = d;
    }
    return g;
}

nl_tas_config nl_tas_defaults(void) {
    nl_tas_config t;
    memset(&t, 0, sizeof t);
    t.net = nl_resnet_default_config(3, 16, 1);
    t.flop_ratio = 0.5, t.flop_weight = 2.0, t.flop_tol = 0.05;
    t.tau_max = 5.0, t.tau_min = 0.1;
    t.epochs = 10, t.batch = 64;
    t.lr = 0.1, t.arch_lr = 1e-3, t.arch_wd = 1e-3;
    t.record_every = 0;
    t.seed = 1;
    return t;
}

static void gather(const nl_dataset *ds, const int64_t *idx, int64_t b, float *x, int32_t *y) {
    for (int64_t i = 0; i < b; i++) {
        memcpy(x + i * ds->d, ds->x + idx[i] * ds->d, (size_t)ds->d * sizeof *x);
        y[i] = ds->y[idx[i]];
    }
}

nl_status nl_tas_search(const nl_tas_config *cfg, const nl_dataset *train, const nl_dataset *valid, nl_tas_result *out) {
    memset(out, 0, sizeof *out);
    if (!(cfg->flop_ratio > 0 && cfg->flop_ratio <= 1) || !(cfg->flop_tol >= 0) || !(cfg->tau_min > 0) ||
        !(cfg->tau_max >= cfg->tau_min) || cfg->batch < 2 || cfg->epochs < 0)
        return nl_set_error(NL_EINVAL, "tas search: flop ratio %g (0, 1], tolerance %g, tau %g -> %g, batch %lld",
                            cfg->flop_ratio, cfg->flop_tol, cfg->tau_max, cfg->tau_min, (long long)cfg->batch);
    if (train->n < cfg->batch || valid->n < cfg->batch)
        return nl_set_error(NL_EINVAL, "tas search: %lld / %lld rows for batch %lld", (long long)train->n,
                            (long long)valid->n, (long long)cfg->batch);
    double t0 = nl_time();
    tas_net m;
    nl_status s = net_init(&m, &cfg->net, cfg->seed);
    if (s) return s;
    const double full = nl_resnet_flops(&cfg->net), need = cfg->flop_ratio * full, tol = cfg->flop_tol * full;
    const int64_t B = cfg->batch, per = train->n / B, total = per * cfg->epochs, d = train->d;
    nl_optim ow, oa;
    nl_optim_config cw = nl_optim_defaults(NL_OPT_SGD), ca = nl_optim_defaults(NL_OPT_ADAM);
    cw.lr = cfg->lr, cw.momentum = 0.9, cw.nesterov = 1, cw.weight_decay = 5e-4, cw.sched = NL_SCHED_COSINE;
    cw.total_steps = total > 0 ? total : 1;
    ca.lr = cfg->arch_lr, ca.beta1 = 0.5, ca.beta2 = 0.999, ca.weight_decay = cfg->arch_wd;
    if ((s = nl_optim_init(&ow, &m.ps, &cw))) {
        net_free(&m);
        return s;
    }
    if ((s = nl_optim_init(&oa, &m.arch, &ca))) {
        nl_optim_free(&ow);
        net_free(&m);
        return s;
    }
    int64_t *pt = malloc((size_t)train->n * sizeof *pt), *pv = malloc((size_t)valid->n * sizeof *pv);
    float *xb = malloc((size_t)(B * d) * sizeof *xb); /* (B, d) */
    int32_t *yb = malloc((size_t)B * sizeof *yb);     /* (B) */
    nl_ctx *c = nl_ctx_new((size_t)1 << 24, 0);
    if (!pt || !pv || !xb || !yb || !c) s = nl_set_error(NL_ENOMEM, "tas search: out of memory");
    nl_rng rs, rb;
    nl_rng_init(&rs, cfg->seed, 0x7A5ULL << 41); /* Gumbel noise and width sampling */
    int64_t vpos = valid->n, vep = 0, step = 0;
    double ce_w = NAN, ce_a = NAN, fl = 0, ef = NAN, best_acc = -1;
    nl_resnet_config best = cfg->net;
    int best_in = 0;
    int64_t best_ep = -1, n_cand = 0, n_in = 0;
    for (int64_t ep = 0; ep < cfg->epochs && !s; ep++) {
        int64_t hits = 0, seen = 0;
        nl_rng_init(&rb, cfg->seed, (0x7A5ULL << 42) + (uint64_t)ep);
        nl_rng_permutation(&rb, pt, train->n);
        for (int64_t it = 0; it < per && !s; it++, step++) {
            const double tau = cfg->tau_min + (cfg->tau_max - cfg->tau_min) *
                                                  (1 + cos(M_PI * (double)step / (double)(total > 1 ? total - 1 : 1))) / 2;
            /* weights: cross-entropy of a sampled architecture on the weight half */
            gather(train, pt + it * B, B, xb, yb);
            nl_ctx_reset(c);
            nl_var *z = search_forward(c, &m, nl_input(c, nl_tensor_wrap(xb, NL_F32, 2, (int64_t[]){B, d})), tau, &rs);
            nl_var *loss = nl_cross_entropy(c, z, yb, 0.0, -1);
            if (!loss) {
                s = nl_last_status();
                break;
            }
            ce_w = nl_item(loss);
            nl_params_zero_grad(&m.ps);
            nl_params_zero_grad(&m.arch);
            if ((s = nl_backward(c, loss)) || (s = nl_optim_step(&ow))) break;
            /* architecture: cross-entropy + weight * FLOP loss on the architecture half */
            if (vpos + B > valid->n) {
                nl_rng_init(&rb, cfg->seed, (0x7A5ULL << 43) + (uint64_t)vep++);
                nl_rng_permutation(&rb, pv, valid->n);
                vpos = 0;
            }
            gather(valid, pv + vpos, B, xb, yb);
            vpos += B;
            nl_ctx_reset(c);
            z = search_forward(c, &m, nl_input(c, nl_tensor_wrap(xb, NL_F32, 2, (int64_t[]){B, d})), tau, &rs);
            nl_var *ce = nl_cross_entropy(c, z, yb, 0.0, -1);
            nl_var *e = expected_flops(c, &m);
            nl_resnet_config g = genotype(&m);
            nl_var *fls = nl_tas_flop_loss(c, e, nl_resnet_flops(&g), need, tol);
            loss = nl_add(c, ce, nl_mul_scalar(c, fls, cfg->flop_weight));
            if (!loss) {
                s = nl_last_status();
                break;
            }
            ce_a = nl_item(ce), fl = nl_item(fls), ef = nl_item(e) * 1e6;
            for (int64_t i = 0; i < B; i++) { /* the epoch's accuracy on the architecture half */
                const float *zr = (const float *)z->val.data + i * cfg->net.n_classes;
                int k = 0;
                for (int q = 1; q < cfg->net.n_classes; q++)
                    if (zr[q] > zr[k]) k = q;
                hits += k == yb[i];
            }
            seen += B;
            nl_params_zero_grad(&m.ps);
            nl_params_zero_grad(&m.arch);
            if ((s = nl_backward(c, loss)) || (s = nl_optim_step(&oa))) break;
            const int at_end = it + 1 == per;
            if (cfg->record_every > 0 ? (step + 1) % cfg->record_every == 0 || at_end : at_end) {
                /* a candidate: the argmax shape now, scored by the supernet's accuracy on the architecture half since the
                 * last candidate; the reference's choice: the best accuracy among those in the band */
                nl_resnet_config g = genotype(&m);
                const double ratio = nl_resnet_flops(&g) / full, acc = seen ? (double)hits / (double)seen : 0;
                const int in_band = fabs(ratio - cfg->flop_ratio) <= cfg->flop_tol;
                if ((in_band && (!best_in || acc > best_acc)) || (!in_band && !best_in && acc > best_acc))
                    best = g, best_acc = acc, best_in = in_band, best_ep = step;
                n_cand++;
                n_in += in_band;
                if (cfg->verbose)
                    nl_progress("tas search step %lld/%lld (epoch %lld): CE %.3f (weights) %.3f (arch), arch-half accuracy %.3f, "
                                "FLOP loss %.3f, E[F] %.3f, argmax %.3f of full%s", (long long)step + 1, (long long)total,
                                (long long)ep + 1, ce_w, ce_a, acc, fl, ef / full, ratio, in_band ? " (in band)" : "");
                hits = seen = 0;
            }
        }
    }
    if (!s) {
        out->shape = cfg->epochs > 0 ? best : genotype(&m);
        out->step = best_ep;
        out->candidates = n_cand;
        out->candidates_in_band = n_in;
        out->in_band = best_in;
        out->flops = nl_resnet_flops(&out->shape);
        out->flops_full = full;
        out->expected_flops = ef;
        out->steps = step;
        out->seconds = nl_time() - t0;
    }
    nl_ctx_free(c);
    free(pt);
    free(pv);
    free(xb);
    free(yb);
    nl_optim_free(&ow);
    nl_optim_free(&oa);
    net_free(&m);
    return s;
}

nl_status nl_tas_random_shape(const nl_resnet_config *full, double flops, double rel, uint64_t seed, nl_resnet_config *out) {
    nl_rng r;
    nl_rng_init(&r, seed, 0x7A5ULL << 44);
    for (int draw = 0; draw < 100000; draw++) {
        nl_resnet_config g = *full;
        int wc[NL_TAS_MAX_CHOICES], dc[NL_RESNET_MAX_BLOCKS], j = 0, jo = 0;
        g.ch[0] = wc[nl_rng_below(&r, nl_tas_width_choices(full->ch[0], wc))];
        for (int st = 0; st < 3; st++) {
            const int dd = dc[nl_rng_below(&r, nl_tas_depth_choices(full->blocks[st], dc))];
            for (int b = 0; b < full->blocks[st]; b++, j++) {
                if (b >= dd) continue;
                for (int q = 1; q <= 2; q++) g.ch[q + 2 * jo] = wc[nl_rng_below(&r, nl_tas_width_choices(full->ch[q + 2 * j], wc))];
                jo++;
            }
            g.blocks[st] = dd;
        }
        if (fabs(nl_resnet_flops(&g) / flops - 1) <= rel) {
            *out = g;
            return NL_OK;
        }
    }
    return nl_set_error(NL_EINVAL, "tas: no random shape within %.0f%% of %.4g FLOPs in 100000 draws", 100 * rel, flops);
}

nl_resnet_config nl_tas_uniform_shape(const nl_resnet_config *full, double flops) {
    double lo = 0.01, hi = 1.0;
    for (int it = 0; it < 60; it++) {
        const double mid = 0.5 * (lo + hi);
        nl_resnet_config g = nl_resnet_scale_width(full, mid);
        if (nl_resnet_flops(&g) > flops) hi = mid;
        else lo = mid;
    }
    nl_resnet_config a = nl_resnet_scale_width(full, lo), b = nl_resnet_scale_width(full, hi);
    return fabs(nl_resnet_flops(&a) - flops) <= fabs(nl_resnet_flops(&b) - flops) ? a : b;
}
