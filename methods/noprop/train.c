/* NoProp: the losses of the four variants (DT per block, CT, FM, the backprop chain), their inference, and the
 * training loop (one AdamW per block plus one for the shared embedding and classifier). Formulas in noprop.h. */
#include "noprop/noprop.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NP_STREAM_NOISE ((uint64_t)0x6E6F7072ULL << 24)
#define NP_STREAM_TEST ((uint64_t)0x6E6F7074ULL << 24)
#define NP_STREAM_LABELS ((uint64_t)0x6E6F706CULL << 24)

static nl_var *noise(nl_ctx *c, nl_rng *r, int64_t B, int64_t d) {
    nl_var *e = nl_new(c, NL_F32, 2, (int64_t[]){B, d}); /* [B, d] N(0, 1) */
    if (e) nl_rng_fill_normal(r, &e->val, 0.0, 1.0);
    return e;
}

/* A column [B, 1] of per-row values (arena). */
static nl_var *column(nl_ctx *c, const double *v, int64_t B) {
    nl_var *col = nl_new(c, NL_F32, 2, (int64_t[]){B, 1});
    if (!col) return NULL;
    float *p = col->val.data;
    for (int64_t i = 0; i < B; i++) p[i] = (float)v[i];
    return col;
}

/* sqrt(abar) u + sqrt(1 - abar) eps: a draw of q(z | y) */
static nl_var *q_sample(nl_ctx *c, nl_var *u, nl_var *eps, double abar) {
    return nl_add(c, nl_mul_scalar(c, u, sqrt(abar)), nl_mul_scalar(c, eps, sqrt(1.0 - abar)));
}

static nl_var *class_ce(nl_ctx *c, nl_noprop_model *m, nl_var *z, const int32_t *y) {
    return nl_cross_entropy(c, nl_linear(c, z, m->cls_W, m->cls_b), y, 0.0, -1);
}

/* u_hat = softmax(logits) W_Embed  [B, d] */
static nl_var *embed_mix(nl_ctx *c, nl_noprop_model *m, nl_var *logits) {
    return nl_matmul(c, nl_softmax(c, logits, -1), m->embed);
}

nl_var *nl_noprop_loss(nl_ctx *c, nl_noprop_model *m, int t, const float *x, const int32_t *y, int64_t B, nl_rng *rng) {
    const nl_noprop_config *cfg = &m->cfg;
    const int T = cfg->T;
    int64_t d = m->d;
    nl_var *xv = nl_input(c, nl_tensor_wrap((void *)x, NL_F32, 2, (int64_t[]){B, m->d_img})); /* [B, d_img] */
    nl_var *u = nl_embedding(c, m->embed, y, 1, &B);                                      /* [B, d] u_y */
    nl_var *eps = noise(c, rng, B, d);                                                     /* [B, d] */
    if (!xv || !u || !eps) return NULL;
    switch (cfg->variant) {
    case NL_NOPROP_DT: {
        if (t < 1 || t > T) {
            nl_set_error(NL_EINVAL, "noprop loss: block %d outside 1..%d", t, T);
            return NULL;
        }
        nl_var *z = q_sample(c, u, eps, nl_noprop_abar(t - 1, T)); /* z_{t-1} ~ q(z_{t-1} | y) */
        nl_var *uh = embed_mix(c, m, nl_noprop_block_forward(c, &m->blocks[t - 1], xv, z, 1));
        nl_var *den = nl_mul_scalar(c, nl_mse(c, uh, u), nl_noprop_weight(t, T, cfg->eta) * (double)d);
        nl_var *zT = q_sample(c, u, noise(c, rng, B, d), nl_noprop_abar(T, T));
        nl_var *loss = nl_add(c, class_ce(c, m, zT, y), nl_noprop_kl(c, u, nl_noprop_abar(0, T)));
        return nl_add(c, loss, den);
    }
    case NL_NOPROP_CT:
    case NL_NOPROP_FM: {
        double *tv = malloc((size_t)B * 4 * sizeof *tv); /* (4, B): t, coefficient of u, coefficient of eps, weight */
        if (!tv) {
            nl_set_error(NL_ENOMEM, "noprop loss: out of memory");
            return NULL;
        }
        double *cu = tv + B, *ce = tv + 2 * B, *w = tv + 3 * B;
        for (int64_t i = 0; i < B; i++) {
            tv[i] = nl_rng_uniform(rng);
            if (cfg->variant == NL_NOPROP_CT) {
                double ab = nl_noprop_abar_ct(tv[i]);
                cu[i] = sqrt(ab);
                ce[i] = sqrt(1.0 - ab);
                w[i] = nl_noprop_ct_weight(tv[i], cfg->eta, cfg->ct_snr_weight);
            } else {
                cu[i] = tv[i];       /* z_t = t u_y + (1 - t) z_0 */
                ce[i] = 1.0 - tv[i];
                w[i] = 1.0;
            }
        }
        nl_var *tcol = column(c, tv, B), *cuv = column(c, cu, B), *cev = column(c, ce, B);
        nl_var *wv = nl_reshape(c, column(c, w, B), 1, &B); /* [B] */
        free(tv);
        nl_var *z = nl_add(c, nl_mul(c, u, cuv), nl_mul(c, eps, cev));                 /* [B, d] */
        nl_var *zin = nl_concat(c, 2, (nl_var *[]){z, tcol}, 1);                     /* [B, d + 1] */
        nl_var *out = nl_noprop_block_forward(c, &m->blocks[0], xv, zin, 1);
        nl_var *target = cfg->variant == NL_NOPROP_CT ? u : nl_sub(c, u, eps);        /* u_y, or the velocity u_y - z_0 */
        nl_var *pred = cfg->variant == NL_NOPROP_CT ? embed_mix(c, m, out) : out;
        nl_var *per = nl_sum(c, nl_square(c, nl_sub(c, pred, target)), 1, 0);       /* [B] */
        nl_var *den = nl_mean(c, nl_mul(c, per, wv), NL_AXIS_ALL, 0);
        nl_var *zc = cfg->variant == NL_NOPROP_CT ? q_sample(c, u, noise(c, rng, B, d), nl_noprop_abar_ct(1.0)) : u;
        nl_var *loss = nl_add(c, class_ce(c, m, zc, y), nl_noprop_kl(c, u, 0.0));
        return nl_add(c, loss, den);
    }
    case NL_NOPROP_BACKPROP: {
        /* the chain of inference, end to end; the CE is on block T's logits (a linear classifier on the softmax
         * output z_T, trained jointly, stalls near 60% on MNIST: classes collide on the simplex's vertices) */
        nl_var *z = eps, *lg = NULL; /* z_0 ~ N(0, I) */
        for (int k = 1; k <= T; k++) {
            double a, b, cc;
            nl_noprop_coeffs(k, T, &a, &b, &cc);
            lg = nl_noprop_block_forward(c, &m->blocks[k - 1], xv, z, 1);
            if (k == T) break;
            nl_var *uh = embed_mix(c, m, lg);
            z = nl_add(c, nl_add(c, nl_mul_scalar(c, uh, a), nl_mul_scalar(c, z, b)), nl_mul_scalar(c, noise(c, rng, B, d), sqrt(cc)));
        }
        return nl_cross_entropy(c, lg, y, 0.0, -1);
    }
    }
    nl_set_error(NL_EINVAL, "noprop loss: unknown variant");
    return NULL;
}

/* Inference on one chunk x [B, d_img] into pred [B]; c is reset by the caller. */
static nl_status predict_chunk(nl_ctx *c, nl_noprop_model *m, const float *x, int64_t B, nl_rng *rng, int32_t *pred) {
    const nl_noprop_config *cfg = &m->cfg;
    const int T = cfg->T;
    int64_t d = m->d;
    nl_var *xv = nl_input(c, nl_tensor_wrap((void *)x, NL_F32, 2, (int64_t[]){B, m->d_img}));
    nl_var *z = noise(c, rng, B, d); /* [B, d] z_0, updated in place */
    if (!xv || !z) return nl_last_status();
    float *zp = z->val.data;
    const double k_ph = 0.5 * M_PI / (1.0 + NL_NOPROP_COSINE_S);
    nl_var *last = NULL; /* the last block's output */
    nl_var *hi1 = m->n_blocks == 1 ? nl_noprop_block_image(c, &m->blocks[0], xv, 0) : NULL; /* [B, H], CT/FM: once */
    if (m->n_blocks == 1 && !hi1) return nl_last_status();
    for (int k = 1; k <= T; k++) {
        nl_var *zin = z, *tcol = NULL;
        double tk = (double)(k - 1) / T;
        if (cfg->variant == NL_NOPROP_CT || cfg->variant == NL_NOPROP_FM) {
            double *tv = malloc((size_t)B * sizeof *tv);
            if (!tv) return nl_set_error(NL_ENOMEM, "noprop predict: out of memory");
            for (int64_t i = 0; i < B; i++) tv[i] = tk;
            tcol = column(c, tv, B);
            free(tv);
            zin = nl_concat(c, 2, (nl_var *[]){nl_detach(c, z), tcol}, 1);
        }
        nl_noprop_block *blk = &m->blocks[m->n_blocks == 1 ? 0 : k - 1];
        nl_var *out = last = hi1 ? nl_noprop_block_head(c, blk, hi1, zin, 0) : nl_noprop_block_forward(c, blk, xv, zin, 0);
        nl_var *uh = cfg->variant == NL_NOPROP_FM ? out : embed_mix(c, m, out);
        nl_var *e = noise(c, rng, B, d);
        if (!uh || !e) return nl_last_status();
        const float *up = uh->val.data, *ep = e->val.data;
        if (cfg->variant == NL_NOPROP_DT || cfg->variant == NL_NOPROP_BACKPROP) {
            double a, b, cc;
            nl_noprop_coeffs(k, T, &a, &b, &cc);
            for (int64_t i = 0; i < B * d; i++) zp[i] = (float)(a * up[i] + b * zp[i] + sqrt(cc) * ep[i]);
        } else if (cfg->variant == NL_NOPROP_CT) {
            /* Euler step of dz/dt = (d sqrt(abar)/dt) u_hat + (d sqrt(1 - abar)/dt) eps_hat */
            double ab = nl_noprop_abar_ct(tk), sa = sqrt(ab), sb = sqrt(1.0 - ab), ph = k_ph * (1.0 - tk + NL_NOPROP_COSINE_S);
            double dsa = sin(ph) * k_ph, dsb = -cos(ph) * k_ph;
            for (int64_t i = 0; i < B * d; i++) {
                double eh = (zp[i] - sa * up[i]) / sb;
                zp[i] = (float)(zp[i] + (dsa * up[i] + dsb * eh) / T);
            }
        } else {
            for (int64_t i = 0; i < B * d; i++) zp[i] = (float)(zp[i] + up[i] / T); /* Euler z += h v */
        }
    }
    /* [B, C]: p(y | z_T), or block T's logits for the backprop chain */
    nl_var *lg = cfg->variant == NL_NOPROP_BACKPROP ? last : nl_linear(c, z, m->cls_W, m->cls_b);
    if (!lg) return nl_last_status();
    const float *lp = lg->val.data;
    for (int64_t i = 0; i < B; i++) {
        int best = 0;
        for (int k = 1; k < m->C; k++)
            if (lp[i * m->C + k] > lp[i * m->C + best]) best = k;
        pred[i] = best;
    }
    return NL_OK;
}

nl_status nl_noprop_predict(nl_noprop_model *m, const float *x, int64_t B, nl_rng *rng, int32_t *pred) {
    nl_ctx *c = nl_ctx_new((size_t)1 << 22, 0);
    if (!c) return nl_set_error(NL_ENOMEM, "noprop predict: out of memory");
    int prev = nl_set_grad_enabled(c, 0);
    nl_status s = NL_OK;
    for (int64_t i = 0; i < B && !s; i += 1000) {
        int64_t n = B - i < 1000 ? B - i : 1000;
        nl_ctx_reset(c);
        s = predict_chunk(c, m, x + i * m->d_img, n, rng, pred + i);
    }
    nl_set_grad_enabled(c, prev);
    nl_ctx_free(c);
    return s;
}

static nl_status test_accuracy(nl_noprop_model *m, const nl_dataset *test, double *acc) {
    int32_t *pred = malloc((size_t)test->n * sizeof *pred);
    if (!pred) return nl_set_error(NL_ENOMEM, "noprop: out of memory");
    nl_rng r;
    nl_rng_init(&r, m->cfg.seed, NP_STREAM_TEST);
    nl_status s = nl_noprop_predict(m, test->x, test->n, &r, pred);
    int64_t ok = 0;
    for (int64_t i = 0; !s && i < test->n; i++) ok += pred[i] == test->y[i];
    free(pred);
    *acc = s ? NAN : (double)ok / (double)test->n;
    return s;
}

static nl_status check_config(const nl_noprop_config *cfg) {
    if (cfg->T < 1 || cfg->T > NL_NOPROP_MAX_T) return nl_set_error(NL_EINVAL, "noprop: T = %d outside 1..%d", cfg->T, NL_NOPROP_MAX_T);
    if (cfg->batch < 2 || cfg->epochs < 1 || !(cfg->lr > 0) || !(cfg->wd >= 0) || !(cfg->eta > 0) || cfg->hidden < 2)
        return nl_set_error(NL_EINVAL, "noprop: batch %lld (>= 2), epochs %lld (>= 1), lr %g (> 0), wd %g (>= 0), eta %g (> 0), "
                            "hidden %lld (>= 2)", (long long)cfg->batch, (long long)cfg->epochs, cfg->lr, cfg->wd, cfg->eta,
                            (long long)cfg->hidden);
    return NL_OK;
}

nl_status nl_noprop_train(const nl_noprop_config *cfg, const nl_dataset *train, const nl_dataset *test, nl_noprop_result *res) {
    memset(res, 0, sizeof *res);
    res->test_accuracy = NAN;
    nl_status s = check_config(cfg);
    if (s) return s;
    if (train->n < 2 || test->n < 1 || train->d != test->d)
        return nl_set_error(NL_EINVAL, "noprop: train (%lld x %lld) and test (%lld x %lld) sets do not fit", (long long)train->n,
                            (long long)train->d, (long long)test->n, (long long)test->d);
    nl_noprop_model m;
    if ((s = nl_noprop_model_init(&m, cfg, train))) return s;
    nl_optim opt[NL_NOPROP_MAX_T + 1]; /* one per block, then the shared store's */
    int n_opt = 0;
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAMW);
    oc.lr = cfg->lr;
    oc.weight_decay = cfg->wd;
    for (int t = 0; t < m.n_blocks && !s; t++)
        if (!(s = nl_optim_init(&opt[t], &m.blocks[t].ps, &oc))) n_opt++;
    if (!s && !(s = nl_optim_init(&opt[m.n_blocks], &m.shared, &oc))) n_opt++;
    nl_batcher bt;
    int have_bt = 0;
    if (!s && !(s = nl_batcher_init(&bt, train, cfg->batch < train->n ? cfg->batch : train->n, 1, cfg->seed))) {
        have_bt = 1;
        nl_batcher_set_drop_last(&bt, 1);
    }
    nl_ctx *c = s ? NULL : nl_ctx_new((size_t)1 << 22, 0);
    if (!s && !c) s = nl_set_error(NL_ENOMEM, "noprop: out of memory");
    nl_rng rng;
    nl_rng_init(&rng, cfg->seed, NP_STREAM_NOISE);
    double t0 = nl_time();
    int64_t steps = 0;
    for (int64_t ep = 0; ep < cfg->epochs && !s; ep++) {
        if (ep) nl_batcher_reset(&bt);
        float *xb;
        int32_t *yb;
        int64_t B;
        double loss_sum = 0;
        int64_t n_loss = 0;
        while (!s && nl_batcher_next(&bt, &xb, &yb, &B)) {
            int per_block = cfg->variant == NL_NOPROP_DT;
            for (int t = 1; t <= (per_block ? cfg->T : 1) && !s; t++) {
                nl_ctx_reset(c);
                if (per_block) nl_params_zero_grad(&m.blocks[t - 1].ps);
                else
                    for (int k = 0; k < m.n_blocks; k++) nl_params_zero_grad(&m.blocks[k].ps);
                nl_params_zero_grad(&m.shared);
                nl_var *loss = nl_noprop_loss(c, &m, t, xb, yb, B, &rng);
                if (!loss) {
                    s = nl_last_status() ? nl_last_status() : NL_EINVAL;
                    break;
                }
                double lv = nl_item(loss);
                if (!isfinite(lv)) {
                    s = nl_set_error(NL_ENONFINITE, "noprop %s: non-finite loss at step %lld (block %d)",
                                     nl_noprop_variant_name(cfg->variant), (long long)steps, t);
                    break;
                }
                loss_sum += lv;
                n_loss++;
                if ((s = nl_backward(c, loss))) break;
                if (per_block) s = nl_optim_step(&opt[t - 1]);
                else
                    for (int k = 0; k < m.n_blocks && !s; k++) s = nl_optim_step(&opt[k]);
                if (!s) s = nl_optim_step(&opt[m.n_blocks]);
            }
            steps++;
        }
        if (!s && cfg->verbose)
            nl_progress("noprop %s: epoch %lld/%lld, mean loss %.4f, %.1f s", nl_noprop_variant_name(cfg->variant),
                        (long long)ep + 1, (long long)cfg->epochs, n_loss ? loss_sum / n_loss : NAN, nl_time() - t0);
    }
    res->train_seconds = nl_time() - t0;
    res->steps = steps;
    res->n_train = train->n;
    res->params = nl_noprop_model_num_params(&m);
    if (c) res->peak_bytes = (double)nl_arena_peak(c->arena);
    if (!s) s = test_accuracy(&m, test, &res->test_accuracy);
    if (c) nl_ctx_free(c);
    if (have_bt) nl_batcher_free(&bt);
    for (int k = 0; k < n_opt; k++) nl_optim_free(&opt[k]); /* blocks 0..n_blocks-1, then the shared store's */
    nl_noprop_model_free(&m);
    return s;
}

/* A copy of the first `limit` rows (all when limit <= 0 or >= n). */
void nl_noprop_shuffle_labels(int32_t *y, int64_t n, uint64_t seed) {
    nl_rng r;
    nl_rng_init(&r, seed, NP_STREAM_LABELS);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = nl_rng_below(&r, i + 1);
        int32_t t = y[i];
        y[i] = y[j];
        y[j] = t;
    }
}

nl_status nl_noprop_prepare(const nl_noprop_config *cfg, const nl_dataset *train, const nl_dataset *test, nl_dataset *tr,
                            nl_dataset *te) {
    memset(tr, 0, sizeof *tr);
    memset(te, 0, sizeof *te);
    nl_status s = nl_dataset_head(train, cfg->limit, tr);
    if (s) return s;
    if ((s = nl_dataset_head(test, cfg->test_limit, te))) goto fail;
    nl_dataset *others[1] = {te};
    if ((s = nl_dataset_standardize(tr, others, 1, 0, NULL, NULL))) goto fail;
    if (cfg->shuffle_labels) nl_noprop_shuffle_labels(tr->y, tr->n, cfg->seed); /* nothing left to learn */
    if (cfg->zero_image) {
        memset(tr->x, 0, (size_t)(tr->n * tr->d) * sizeof *tr->x);
        memset(te->x, 0, (size_t)(te->n * te->d) * sizeof *te->x);
    }
    return NL_OK;
fail:
    nl_dataset_free(tr);
    nl_dataset_free(te);
    return s;
}

nl_status nl_noprop_run_data(const nl_noprop_config *cfg, const nl_dataset *train, const nl_dataset *test, nl_noprop_result *res) {
    memset(res, 0, sizeof *res);
    res->test_accuracy = NAN;
    nl_dataset tr, te;
    nl_status s = nl_noprop_prepare(cfg, train, test, &tr, &te);
    if (s) return s;
    s = nl_noprop_train(cfg, &tr, &te, res);
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    return s;
}

nl_status nl_noprop_run(const nl_noprop_config *cfg, const char *dataset, nl_noprop_result *res) {
    memset(res, 0, sizeof *res);
    res->test_accuracy = NAN;
    nl_dataset tr, te;
    memset(&te, 0, sizeof te);
    nl_status s = nl_dataset_load(&tr, dataset, "train", NULL);
    if (s) return s;
    if (!(s = nl_dataset_load(&te, dataset, "test", NULL))) s = nl_noprop_run_data(cfg, &tr, &te, res);
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    return s;
}
