/* BiPer: the two-stage training loop (SGD with momentum, cosine per stage), prediction and the data set. */
#include "biper/biper.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/optim.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nl_biper_config nl_biper_defaults(void) {
    nl_biper_config c;
    memset(&c, 0, sizeof c);
    c.method = NL_BIPER_SIN;
    c.omega = 20;
    c.c1 = 16, c.c = 32;
    c.epochs1 = 1, c.epochs2 = 1;
    c.batch = 64;
    c.lr1 = 0.021, c.lr2 = 0.0037; /* the official CIFAR-10 recipe */
    c.wd1 = 1.6e-3, c.wd2 = 1.6e-4;
    c.tau1 = 0.037, c.tau2 = 0.0468;
    c.seed = 1;
    return c;
}

nl_biper_wmode nl_biper_stage_mode(const nl_biper_config *cfg, int stage) {
    if (cfg->method == NL_BIPER_STE) return NL_BIPER_STE;
    return stage == 1 ? NL_BIPER_SIN : NL_BIPER_SIGN_SIN;
}

static nl_status check_config(const nl_biper_config *cfg) {
    if (cfg->method != NL_BIPER_SIN && cfg->method != NL_BIPER_STE) return nl_set_error(NL_EINVAL, "biper: method must be biper or ste");
    if (!(cfg->omega > 0) || cfg->batch < 2 || cfg->epochs1 < 0 || cfg->epochs2 < 0 || cfg->epochs1 + cfg->epochs2 < 1 ||
        !(cfg->lr1 > 0) || !(cfg->lr2 > 0) || !(cfg->wd1 >= 0) || !(cfg->wd2 >= 0) || !(cfg->tau1 >= 0) || !(cfg->tau2 >= 0))
        return nl_set_error(NL_EINVAL, "biper: omega %g (> 0), batch %lld (>= 2), epochs %lld+%lld (>= 1), lr %g/%g (> 0), wd %g/%g, "
                            "tau %g/%g (>= 0)", cfg->omega, (long long)cfg->batch, (long long)cfg->epochs1, (long long)cfg->epochs2,
                            cfg->lr1, cfg->lr2, cfg->wd1, cfg->wd2, cfg->tau1, cfg->tau2);
    return NL_OK;
}

/* One stage: a fresh SGD (momentum 0.9, cosine to 0 over the stage) as the official main.py / main_stage2.py. */
static nl_status run_stage(nl_biper_net *m, const nl_biper_config *cfg, int stage, const nl_dataset *tr, nl_ctx *c, int64_t *steps) {
    const int64_t epochs = stage == 1 ? cfg->epochs1 : cfg->epochs2;
    if (epochs < 1) return NL_OK;
    const nl_biper_wmode mode = nl_biper_stage_mode(cfg, stage);
    const double tau = cfg->method == NL_BIPER_STE ? 0.0 : stage == 1 ? cfg->tau1 : cfg->tau2;
    nl_batcher bt;
    const int64_t B = cfg->batch < tr->n ? cfg->batch : tr->n;
    nl_status s = nl_batcher_init(&bt, tr, B, 1, cfg->seed * 2 + (uint64_t)stage);
    if (s) return s;
    nl_batcher_set_drop_last(&bt, 1);
    nl_optim_config oc = nl_optim_defaults(NL_OPT_SGD);
    oc.lr = stage == 1 ? cfg->lr1 : cfg->lr2;
    oc.momentum = 0.9;
    oc.weight_decay = stage == 1 ? cfg->wd1 : cfg->wd2;
    oc.sched = NL_SCHED_COSINE;
    oc.total_steps = epochs * nl_batcher_num_batches(&bt);
    nl_optim opt;
    if ((s = nl_optim_init(&opt, &m->ps, &oc))) {
        nl_batcher_free(&bt);
        return s;
    }
    for (int64_t ep = 0; ep < epochs && !s; ep++) {
        if (ep) nl_batcher_reset(&bt);
        float *xb;
        int32_t *yb;
        int64_t nb;
        double lsum = 0;
        int64_t nl = 0;
        while (!s && nl_batcher_next(&bt, &xb, &yb, &nb)) {
            nl_ctx_reset(c);
            nl_params_zero_grad(&m->ps);
            nl_var *x = nl_input(c, nl_tensor_wrap(xb, NL_F32, 2, (int64_t[]){nb, 784})); /* [nb, 784] */
            nl_var *loss = nl_cross_entropy(c, nl_biper_forward(c, m, x, cfg->omega, mode, 1), yb, 0.0, -1);
            for (int l = 0; l < NL_BIPER_NBIN && tau > 0; l++) loss = nl_add(c, loss, nl_biper_reg(c, m->wb[l], cfg->omega, tau));
            if (!loss) {
                s = nl_last_status() ? nl_last_status() : NL_EINVAL;
                break;
            }
            const double lv = nl_item(loss);
            if (!isfinite(lv)) {
                s = nl_set_error(NL_ENONFINITE, "biper: non-finite loss at step %lld (stage %d)", (long long)*steps, stage);
                break;
            }
            lsum += lv, nl++;
            if (!(s = nl_backward(c, loss))) s = nl_optim_step(&opt);
            (*steps)++;
        }
        if (!s && cfg->verbose)
            nl_progress("biper %s stage %d: epoch %lld/%lld, mean loss %.4f, QE %.4f", cfg->method == NL_BIPER_STE ? "ste" : "biper", stage,
                        (long long)ep + 1, (long long)epochs, nl ? lsum / nl : NAN, nl_biper_net_qe(m, cfg->omega));
    }
    nl_optim_free(&opt);
    nl_batcher_free(&bt);
    return s;
}

nl_status nl_biper_predict(nl_biper_net *m, const nl_biper_config *cfg, const float *x, int64_t n, int32_t *pred) {
    nl_ctx *c = nl_ctx_new((size_t)1 << 24, 0);
    if (!c) return nl_set_error(NL_ENOMEM, "biper predict: out of memory");
    nl_set_grad_enabled(c, 0);
    const nl_biper_wmode mode = nl_biper_stage_mode(cfg, cfg->epochs2 > 0 ? 2 : 1);
    nl_status s = NL_OK;
    for (int64_t i = 0; i < n && !s; i += 500) {
        const int64_t b = n - i < 500 ? n - i : 500;
        nl_ctx_reset(c);
        nl_var *xv = nl_input(c, nl_tensor_wrap((void *)(x + i * 784), NL_F32, 2, (int64_t[]){b, 784})); /* [b, 784] */
        nl_var *lg = nl_biper_forward(c, m, xv, cfg->omega, mode, 0);                                  /* [b, 10] */
        if (!lg) {
            s = nl_last_status() ? nl_last_status() : NL_EINVAL;
            break;
        }
        const float *lp = lg->val.data;
        for (int64_t r = 0; r < b; r++) {
            int best = 0;
            for (int k = 1; k < 10; k++)
                if (lp[r * 10 + k] > lp[r * 10 + best]) best = k;
            pred[i + r] = best;
        }
    }
    nl_ctx_free(c);
    return s;
}

nl_status nl_biper_train(nl_biper_net *m, const nl_biper_config *cfg, const nl_dataset *tr, const nl_dataset *te, nl_biper_result *res) {
    memset(res, 0, sizeof *res);
    res->test_accuracy = res->qe = NAN;
    nl_status s = check_config(cfg);
    if (s) return s;
    if (tr->d != 784 || tr->n < 2 || (te && te->d != 784))
        return nl_set_error(NL_EINVAL, "biper: 28x28 images expected (train %lld x %lld)", (long long)tr->n, (long long)tr->d);
    nl_ctx *c = nl_ctx_new((size_t)1 << 24, 0);
    if (!c) return nl_set_error(NL_ENOMEM, "biper: out of memory");
    const double t0 = nl_time();
    for (int st = 1; st <= 2 && !s; st++) s = run_stage(m, cfg, st, tr, c, &res->steps);
    nl_ctx_free(c);
    res->train_seconds = nl_time() - t0;
    res->n_train = tr->n;
    res->qe = nl_biper_net_qe(m, cfg->omega);
    if (s || !te) return s;
    int32_t *pred = malloc((size_t)te->n * sizeof *pred);
    if (!pred) return nl_set_error(NL_ENOMEM, "biper: out of memory");
    if (!(s = nl_biper_predict(m, cfg, te->x, te->n, pred))) {
        int64_t ok = 0;
        for (int64_t i = 0; i < te->n; i++) ok += pred[i] == te->y[i];
        res->test_accuracy = (double)ok / (double)te->n;
    }
    free(pred);
    return s;
}

nl_status nl_biper_data(int64_t limit, int64_t test_limit, nl_dataset *tr, nl_dataset *te) {
    /* standardised with the mean and std of all 60000 training images, whatever the subset (so a saved network sees
     * the same inputs in `nnlab biper infer` as in training) */
    nl_dataset a, b;
    memset(tr, 0, sizeof *tr), memset(te, 0, sizeof *te);
    nl_status s = nl_dataset_load(&a, "fashion-mnist", "train", NULL);
    if (s) return s;
    if ((s = nl_dataset_load(&b, "fashion-mnist", "test", NULL))) {
        nl_dataset_free(&a);
        return s;
    }
    nl_dataset *others[1] = {&b};
    if (!(s = nl_dataset_standardize(&a, others, 1, 0, NULL, NULL)) && !(s = nl_dataset_head(&a, limit, tr))) s = nl_dataset_head(&b, test_limit, te);
    nl_dataset_free(&a), nl_dataset_free(&b);
    if (s) nl_dataset_free(tr), nl_dataset_free(te);
    return s;
}
