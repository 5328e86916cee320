/* BT^2: the training losses of the five models, the training loop (Adam, cosine schedule), and one seed of the whole
 * protocol (old model, independent, BCT, BT^2, the frozen control; retrieval old/old, new/old, new/new). bt2.h. */
#include "bt2/bt2.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/optim.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BT2_STREAM_ORDER ((uint64_t)0x6274326FULL << 24)

/* 1 - mean_b <a_b, b_b> for rows of unit length  [scalar] */
static nl_var *cos_loss(nl_ctx *c, nl_var *a, nl_var *b) {
    return nl_rsub_scalar(c, nl_mean(c, nl_sum(c, nl_mul(c, a, b), 1, 0), NL_AXIS_ALL, 0), 1.0);
}

static nl_var *unit(nl_ctx *c, nl_var *x) {
    return nl_div(c, x, nl_sqrt(c, nl_add_scalar(c, nl_sum(c, nl_square(c, x), 1, 1), 1e-12)));
}

/* the training loss of one batch x [B, d_in], y [B]; rows idx [B] index the teachers' arrays */
static nl_var *batch_loss(nl_ctx *c, nl_bt2_net *m, const nl_bt2_config *cfg, const nl_bt2_teach *t, nl_var *x, const int32_t *y,
                          const int64_t *idx, int64_t B, float *tbuf) {
    nl_var *logits = NULL, *feat = NULL, *bct = NULL;
    if (nl_bt2_forward(c, m, x, NULL, &logits, &feat, &bct)) return NULL;
    int64_t Do = m->d_old;
    nl_var *P = NULL;
    if (m->kind >= NL_BT2_BCT) P = nl_input(c, nl_tensor_wrap((void *)t->P, NL_F32, 2, (int64_t[]){m->n_classes, Do}));
    switch (m->kind) {
    case NL_BT2_OLD:
    case NL_BT2_INDEP: return nl_cross_entropy(c, logits, y, cfg->label_smoothing, -1);
    case NL_BT2_BCT: {
        nl_var *infl = nl_cross_entropy(c, nl_matmul_t(c, feat, P, 0, 1), y, cfg->label_smoothing, -1);
        return nl_add(c, nl_cross_entropy(c, logits, y, cfg->label_smoothing, -1), nl_mul_scalar(c, infl, cfg->bct_alpha));
    }
    case NL_BT2_BT2:
    case NL_BT2_FROZEN: {
        float *po = tbuf, *pn = tbuf + B * Do; /* (B, d_old) each: the teachers' rows of this batch */
        for (int64_t i = 0; i < B; i++) {
            memcpy(po + i * Do, t->phi_old + idx[i] * Do, (size_t)Do * sizeof *po);
            memcpy(pn + i * Do, t->phi_new + idx[i] * Do, (size_t)Do * sizeof *pn);
        }
        nl_var *phi_o = nl_input(c, nl_tensor_wrap(po, NL_F32, 2, (int64_t[]){B, Do}));
        nl_var *phi_n = nl_input(c, nl_tensor_wrap(pn, NL_F32, 2, (int64_t[]){B, Do}));
        nl_var *nb = unit(c, bct);
        nl_var *loss = nl_cross_entropy(c, logits, y, 0.0, -1);
        loss = nl_add(c, loss, nl_mul_scalar(c, cos_loss(c, phi_o, nb), cfg->w_old));
        loss = nl_add(c, loss, nl_mul_scalar(c, cos_loss(c, phi_n, feat), cfg->w_new));
        return nl_add(c, loss, nl_mul_scalar(c, nl_cross_entropy(c, nl_matmul_t(c, nb, P, 0, 1), y, 0.0, -1), cfg->w_infl));
    }
    }
    return NULL;
}

nl_status nl_bt2_train(nl_bt2_net *m, const nl_bt2_config *cfg, const nl_dataset *tr, const nl_bt2_teach *teach,
                       double *seconds) {
    double t0 = nl_time();
    if (m->kind >= NL_BT2_BCT && (!teach || !teach->P || (m->kind >= NL_BT2_BT2 && (!teach->phi_old || !teach->phi_new))))
        return nl_set_error(NL_EINVAL, "bt2 train: the %s model needs the old model's class means%s", nl_bt2_kind_name(m->kind),
                            m->kind >= NL_BT2_BT2 ? " and the old and independent models' features" : "");
    if (tr->d != m->d_in) return nl_set_error(NL_EINVAL, "bt2 train: data has %lld features, the model %lld", (long long)tr->d, (long long)m->d_in);
    int64_t n = 0, B = cfg->batch, d = tr->d, Do = m->d_old;
    int64_t *rows = malloc((size_t)tr->n * sizeof *rows);  /* (n) the rows this model trains on */
    int64_t *perm = malloc((size_t)tr->n * sizeof *perm);  /* (n) one epoch's order */
    float *xb = malloc((size_t)(B * d) * sizeof *xb);       /* (B, d) batch images */
    int32_t *yb = malloc((size_t)B * sizeof *yb);           /* (B) batch labels */
    int64_t *ib = malloc((size_t)B * sizeof *ib);           /* (B) batch row indices */
    float *tb = malloc((size_t)(2 * B * Do) * sizeof *tb);  /* (2, B, d_old) teacher rows */
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_optim opt;
    memset(&opt, 0, sizeof opt);
    nl_status s = NL_OK;
    if (!rows || !perm || !xb || !yb || !ib || !tb || !c) s = nl_set_error(NL_ENOMEM, "bt2 train: out of memory");
    for (int64_t i = 0; i < tr->n && !s; i++)
        if (m->kind != NL_BT2_OLD || tr->y[i] < (int32_t)m->n_classes) rows[n++] = i;
    if (!s && n < 1) s = nl_set_error(NL_EINVAL, "bt2 train: no training rows for the %s model", nl_bt2_kind_name(m->kind));
    int64_t per_epoch = (n + B - 1) / B;
    if (!s) {
        nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
        oc.lr = cfg->lr;
        oc.weight_decay = cfg->wd;
        oc.sched = NL_SCHED_COSINE;
        oc.total_steps = per_epoch * cfg->epochs;
        oc.warmup_steps = oc.total_steps / 20; /* the reference: 5 warm-up epochs of 100 */
        oc.min_ratio = 0.0;
        s = nl_optim_init(&opt, &m->ps, &oc);
    }
    nl_rng r;
    nl_rng_init(&r, cfg->seed, BT2_STREAM_ORDER + (uint64_t)m->kind);
    for (int64_t ep = 0; ep < cfg->epochs && !s; ep++) {
        nl_rng_permutation(&r, perm, n);
        double sum = 0;
        for (int64_t b0 = 0; b0 < n && !s; b0 += B) {
            int64_t bs = n - b0 < B ? n - b0 : B;
            for (int64_t i = 0; i < bs; i++) {
                int64_t row = rows[perm[b0 + i]];
                ib[i] = row;
                yb[i] = tr->y[row];
                memcpy(xb + i * d, tr->x + row * d, (size_t)d * sizeof *xb);
            }
            nl_var *x = nl_input(c, nl_tensor_wrap(xb, NL_F32, 2, (int64_t[]){bs, d}));
            nl_var *loss = batch_loss(c, m, cfg, teach, x, yb, ib, bs, tb);
            if (!loss) s = nl_last_status();
            if (!s) {
                sum += nl_item(loss) * (double)bs;
                if (!(s = nl_backward(c, loss))) s = nl_optim_step(&opt);
            }
            nl_params_zero_grad(&m->ps);
            nl_ctx_reset(c);
        }
        if (!s && cfg->verbose) nl_progress("bt2 %s: epoch %lld/%lld, loss %.4f", nl_bt2_kind_name(m->kind), (long long)(ep + 1),
                                            (long long)cfg->epochs, sum / (double)n);
    }
    nl_optim_free(&opt);
    nl_ctx_free(c);
    free(rows);
    free(perm);
    free(xb);
    free(yb);
    free(ib);
    free(tb);
    if (seconds) *seconds = nl_time() - t0;
    return s;
}

/* classification accuracy of m on the rows of te with y < m->n_classes */
static nl_status accuracy(nl_bt2_net *m, const nl_dataset *te, double *acc) {
    nl_ctx *c = nl_ctx_new(0, 0);
    if (!c) return nl_set_error(NL_ENOMEM, "bt2: out of memory");
    nl_set_grad_enabled(c, 0);
    int64_t hit = 0, tot = 0;
    nl_status s = NL_OK;
    for (int64_t i0 = 0; i0 < te->n && !s; i0 += 512) {
        int64_t B = te->n - i0 < 512 ? te->n - i0 : 512;
        nl_var *x = nl_input(c, nl_tensor_wrap(te->x + i0 * te->d, NL_F32, 2, (int64_t[]){B, te->d})), *lg = NULL;
        if (!(s = nl_bt2_forward(c, m, x, NULL, &lg, NULL, NULL))) {
            const float *l = lg->val.data; /* [B, n_classes] */
            for (int64_t i = 0; i < B; i++) {
                int32_t y = te->y[i0 + i];
                if (y >= m->n_classes) continue;
                int64_t best = 0;
                for (int64_t k = 1; k < m->n_classes; k++)
                    if (l[i * m->n_classes + k] > l[i * m->n_classes + best]) best = k;
                hit += best == y;
                tot++;
            }
        }
        nl_ctx_reset(c);
    }
    nl_ctx_free(c);
    *acc = tot ? (double)hit / (double)tot : NAN;
    return s;
}

nl_status nl_bt2_protocol_run(const nl_bt2_config *cfg, const nl_dataset *tr, const nl_dataset *te, int frozen_too,
                              nl_bt2_protocol *out) {
    memset(out, 0, sizeof *out);
    double t0 = nl_time();
    int C = tr->n_classes, Do = (int)cfg->d_old;
    if (cfg->old_classes < 2 || cfg->old_classes >= C)
        return nl_set_error(NL_EINVAL, "bt2: old classes %d must be in 2..%d", cfg->old_classes, C - 1);
    nl_bt2_net old, nets[4];
    memset(&old, 0, sizeof old);
    memset(nets, 0, sizeof nets);
    float *phi_old = malloc((size_t)(tr->n * Do) * sizeof *phi_old); /* (n_train, d_old) */
    float *phi_new = malloc((size_t)(tr->n * Do) * sizeof *phi_new); /* (n_train, d_old) */
    float *P = malloc((size_t)(C * Do) * sizeof *P);                  /* (C, d_old) */
    int64_t de = cfg->d_old + cfg->d_add;
    float *e_old = malloc((size_t)(te->n * Do) * sizeof *e_old);      /* (n_test, d_old) */
    float *e_new = malloc((size_t)(te->n * de) * sizeof *e_new);      /* (n_test, d_emb <= d_old + d_add) */
    nl_status s = NL_OK;
    if (!phi_old || !phi_new || !P || !e_old || !e_new) s = nl_set_error(NL_ENOMEM, "bt2: out of memory");
    uint64_t sd = cfg->seed;
    if (!s) s = nl_bt2_net_init(&old, NL_BT2_OLD, cfg, tr->d, cfg->old_classes, sd);
    if (!s) s = nl_bt2_train(&old, cfg, tr, NULL, NULL);
    if (!s) s = accuracy(&old, te, &out->old_acc);
    if (!s) s = nl_bt2_embed(&old, tr->x, tr->n, phi_old);
    if (!s) s = nl_bt2_class_means(phi_old, tr->y, tr->n, Do, C, P);
    if (!s) s = nl_bt2_embed(&old, te->x, te->n, e_old);
    if (!s) s = nl_bt2_retrieve(e_old, te->n, Do, te->y, e_old, te->n, Do, te->y, 1, &out->old_old);
    nl_bt2_teach teach = {phi_old, phi_new, P};
    int last = frozen_too ? NL_BT2_FROZEN : NL_BT2_BT2;
    for (int k = NL_BT2_INDEP; k <= last && !s; k++) {
        nl_bt2_net *m = &nets[k - NL_BT2_INDEP];
        if ((s = nl_bt2_net_init(m, (nl_bt2_kind)k, cfg, tr->d, C, sd))) break;
        if ((s = nl_bt2_train(m, cfg, tr, &teach, NULL))) break;
        if (k == NL_BT2_INDEP && (s = nl_bt2_embed(m, tr->x, tr->n, phi_new))) break;
        if ((s = accuracy(m, te, &out->new_acc[k - NL_BT2_INDEP]))) break;
        if ((s = nl_bt2_embed(m, te->x, te->n, e_new))) break;
        if ((s = nl_bt2_retrieve(e_new, te->n, m->d_emb, te->y, e_old, te->n, Do, te->y, 1, &out->new_old[k - NL_BT2_INDEP]))) break;
        s = nl_bt2_retrieve(e_new, te->n, m->d_emb, te->y, e_new, te->n, m->d_emb, te->y, 1, &out->new_new[k - NL_BT2_INDEP]);
        if (cfg->verbose && !s)
            nl_progress("bt2 seed %llu %s: accuracy %.2f%%, new/old top-1 %.2f%% mAP %.2f%%, new/new top-1 %.2f%% mAP %.2f%%",
                        (unsigned long long)sd, nl_bt2_kind_name(m->kind), 100 * out->new_acc[k - 1], 100 * out->new_old[k - 1].top1,
                        100 * out->new_old[k - 1].map, 100 * out->new_new[k - 1].top1, 100 * out->new_new[k - 1].map);
    }
    nl_bt2_net_free(&old);
    for (int k = 0; k < 4; k++) nl_bt2_net_free(&nets[k]);
    free(phi_old);
    free(phi_new);
    free(P);
    free(e_old);
    free(e_new);
    out->n_train = tr->n;
    out->seconds = nl_time() - t0;
    return s;
}

nl_status nl_bt2_load(const nl_bt2_config *cfg, nl_dataset *tr, nl_dataset *te) {
    nl_dataset ftr, fte;
    memset(tr, 0, sizeof *tr);
    memset(te, 0, sizeof *te);
    nl_status s = nl_dataset_load(&ftr, "fashion-mnist", "train", NULL);
    if (s) return s;
    if ((s = nl_dataset_load(&fte, "fashion-mnist", "test", NULL))) {
        nl_dataset_free(&ftr);
        return s;
    }
    if (!(s = nl_dataset_head(&ftr, cfg->limit, tr)) && !(s = nl_dataset_head(&fte, cfg->test_limit, te))) {
        nl_dataset *others[1] = {te};
        s = nl_dataset_standardize(tr, others, 1, 0, NULL, NULL);
    }
    nl_dataset_free(&ftr);
    nl_dataset_free(&fte);
    if (s) {
        nl_dataset_free(tr);
        nl_dataset_free(te);
    }
    return s;
}
