/* Learning-rate transfer across widths under SP and muP (mup examples/MLP, TP5 Figure 1 style) and the ledger
 * entry `mup`. */
#include "nnlab/ledger.h"
#include "mup/mup.h"
#include "nnlab/train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tail_loss {
    int64_t from;      /* first step (1-based) counted */
    double sum;
    int64_t n;
} tail_loss;

static int on_step(void *ud, nl_model *m, const nl_train_progress *p) {
    (void)m;
    tail_loss *t = ud;
    if (p->step >= t->from) {
        t->sum += p->loss;
        t->n++;
    }
    return 0;
}

static const char *const g_pnames[3] = {"sp", "mup", "broken"};

static nl_status check_cfg(const nl_mup_transfer_config *c, const nl_dataset *train) {
    if (c->n_widths < 2 || c->n_widths > NL_MUP_TRANSFER_MAX_WIDTHS)
        return nl_set_error(NL_EINVAL, "lr transfer: %d widths (need 2 .. %d)", c->n_widths, NL_MUP_TRANSFER_MAX_WIDTHS);
    for (int i = 0; i < c->n_widths; i++)
        if (c->widths[i] < 1 || c->widths[i] > (1 << 16) || (i && c->widths[i] <= c->widths[i - 1]))
            return nl_set_error(NL_EINVAL, "lr transfer: widths must be increasing and in [1, 65536]");
    if (c->n_lr < 3 || c->n_lr > NL_MUP_TRANSFER_MAX_LR) return nl_set_error(NL_EINVAL, "lr transfer: %d learning rates (need 3 .. %d)", c->n_lr, NL_MUP_TRANSFER_MAX_LR);
    if (!(c->log2_lr_step > 0) || !isfinite(c->log2_lr_lo)) return nl_set_error(NL_EINVAL, "lr transfer: bad LR grid");
    if (c->steps < 1 || c->batch < 1 || c->avg_last < 1 || c->avg_last > c->steps)
        return nl_set_error(NL_EINVAL, "lr transfer: need steps >= 1, batch >= 1, 1 <= avg_last <= steps");
    if (!(c->base_width > 0)) return nl_set_error(NL_EINVAL, "lr transfer: base_width must be > 0");
    if (c->optim != NL_OPT_SGD && c->optim != NL_OPT_ADAM) return nl_set_error(NL_EINVAL, "lr transfer: optimizer must be sgd or adam");
    if (!train || train->n < c->batch) return nl_set_error(NL_EINVAL, "lr transfer: training set smaller than a batch");
    return NL_OK;
}

void nl_mup_transfer_summary(const nl_mup_transfer_result *r, int pi, int *shift, int *widest_best) {
    int lo = INT32_MAX, hi = -1, missing = 0;
    for (int w = 0; w < r->n_widths; w++) {
        int b = r->best[pi][w];
        if (b < 0) { missing = 1; continue; }
        if (b < lo) lo = b;
        if (b > hi) hi = b;
    }
    *shift = missing || hi < 0 ? r->n_lr : hi - lo;
    *widest_best = 0;
    int W = r->n_widths - 1, k = r->best[pi][W];
    if (k >= 0) {
        double lw = r->loss[pi][W][k];
        int ok = isfinite(lw);
        for (int w = 0; w < W; w++)
            if (isfinite(r->loss[pi][w][k]) && r->loss[pi][w][k] <= lw) ok = 0;
        *widest_best = ok;
    }
}

nl_status nl_mup_transfer_run(const nl_mup_transfer_config *cfg, const nl_dataset *full, int verbose, nl_mup_transfer_result *res) {
    memset(res, 0, sizeof *res);
    nl_status s = check_cfg(cfg, full);
    if (s) return s;
    const double t_start = nl_time();
    res->n_param = cfg->broken ? 3 : 2;
    res->n_widths = cfg->n_widths;
    res->n_lr = cfg->n_lr;
    /* the training subset: first n_train rows, standardised on themselves */
    nl_dataset train;
    int64_t n = cfg->n_train > 0 && cfg->n_train < full->n ? cfg->n_train : full->n;
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    if (!idx) return nl_set_error(NL_ENOMEM, "lr transfer: out of memory");
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    s = nl_dataset_subset(full, idx, n, &train);
    free(idx);
    if (s) return s;
    if ((s = nl_dataset_standardize(&train, NULL, 0, 0, NULL, NULL))) {
        nl_dataset_free(&train);
        return s;
    }
    for (int pi = 0; pi < res->n_param && !s; pi++) {
        nl_parametrization p = nl_param_defaults();
        p.kind = pi == 0 ? NL_PARAM_SP : NL_PARAM_MUP;
        p.base_width = cfg->base_width;
        p.optim = cfg->optim;
        p.zero_readout = cfg->zero_readout;
        if (pi == 2) p.ablate = NL_PARAM_ABLATE_OUTPUT_MULT;
        for (int wi = 0; wi < cfg->n_widths && !s; wi++) {
            int64_t sizes[4] = {train.d, cfg->widths[wi], cfg->widths[wi], train.n_classes};
            nl_model_config mc = nl_mlp_config(4, sizes, NL_ACT_RELU, 0.0);
            nl_param_apply(&mc, &p);
            int best = -1;
            for (int k = 0; k < cfg->n_lr && !s; k++) {
                const double log2lr = cfg->log2_lr_lo + k * cfg->log2_lr_step;
                nl_model m;
                if ((s = nl_model_init(&m, &mc, cfg->seed))) break;
                nl_train_config tc = nl_train_defaults();
                tc.steps = cfg->steps;
                tc.epochs = 1;
                tc.batch = cfg->batch;
                tc.seed = cfg->seed;
                tc.verbose = 0;
                tc.eval_every = 0;
                tc.optim = nl_optim_defaults(cfg->optim);
                tc.optim.lr = exp2(log2lr);
                tc.optim.weight_decay = 0;
                if (cfg->optim == NL_OPT_SGD) tc.optim.momentum = cfg->momentum;
                tail_loss tl = {cfg->steps - cfg->avg_last + 1, 0, 0};
                nl_train_callbacks cb;
                memset(&cb, 0, sizeof cb);
                cb.ud = &tl;
                cb.on_step = on_step;
                nl_train_result tr;
                const double t0 = nl_time();
                nl_status ts = nl_train_run(&m, &train, NULL, &tc, &cb, &tr);
                double loss = NAN;
                if (ts == NL_OK && tl.n > 0) loss = tl.sum / (double)tl.n;
                else if (ts != NL_ENONFINITE) {
                    s = nl_set_error(ts, "lr transfer (%s, width %lld, lr 2^%g): %s", g_pnames[pi], (long long)cfg->widths[wi], log2lr, tr.message);
                }
                nl_train_result_free(&tr);
                nl_model_free(&m);
                if (s) break;
                res->loss[pi][wi][k] = loss;
                if (isfinite(loss) && (best < 0 || loss < res->loss[pi][wi][best])) best = k;
                if (verbose)
                    nl_progress("mup lr transfer: %-6s width %5lld  log2 lr %6.2f  loss %s%.4f  (%.1f s)", g_pnames[pi],
                                (long long)cfg->widths[wi], log2lr, isfinite(loss) ? "" : "diverged ", loss, nl_time() - t0);
            }
            res->best[pi][wi] = best;
        }
    }
    nl_dataset_free(&train);
    res->seconds = nl_time() - t_start;
    return s;
}

/* ---------------- ledger entry ---------------- */
static nl_status mup_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const nl_mup_transfer_config *cfg = config;
    nl_dataset train;
    nl_status s = nl_dataset_load(&train, "fashion-mnist", "train", NULL);
    if (s) return s;
    nl_mup_transfer_result r;
    s = nl_mup_transfer_run(cfg, &train, opt->verbose, &r);
    nl_dataset_free(&train);
    if (s) return s;
    static const char *const plots[3] = {"SP: training loss vs log2 LR", "muP: training loss vs log2 LR",
                                         "broken muP (no readout 1/width_mult): training loss vs log2 LR"};
    char name[64];
    nl_exp_set(out, "grid_log2_lr_lo", cfg->log2_lr_lo);
    nl_exp_set(out, "grid_log2_lr_step", cfg->log2_lr_step);
    for (int pi = 0; pi < r.n_param; pi++) {
        int shift, wb;
        nl_mup_transfer_summary(&r, pi, &shift, &wb);
        snprintf(name, sizeof name, "%s_shift_steps", g_pnames[pi]);
        nl_exp_set(out, name, shift);
        snprintf(name, sizeof name, "%s_widest_best", g_pnames[pi]);
        nl_exp_set(out, name, wb);
        for (int wi = 0; wi < r.n_widths; wi++) {
            int b = r.best[pi][wi];
            snprintf(name, sizeof name, "%s_best_log2lr_n%lld", g_pnames[pi], (long long)cfg->widths[wi]);
            nl_exp_set(out, name, b >= 0 ? cfg->log2_lr_lo + b * cfg->log2_lr_step : NAN);
            snprintf(name, sizeof name, "%s_min_loss_n%lld", g_pnames[pi], (long long)cfg->widths[wi]);
            nl_exp_set(out, name, b >= 0 ? r.loss[pi][wi][b] : NAN);
            snprintf(name, sizeof name, "width %lld", (long long)cfg->widths[wi]);
            nl_curve *c = nl_exp_curve(out, plots[pi], name, "log2 learning rate", "training loss (mean of last steps)");
            if (!c) return nl_set_error(NL_ENOMEM, "mup: out of memory");
            for (int k = 0; k < r.n_lr; k++) nl_curve_add(c, cfg->log2_lr_lo + k * cfg->log2_lr_step, r.loss[pi][wi][k]);
        }
    }
    nl_exp_set(out, "sweep_seconds", r.seconds);
    snprintf(out->note, sizeof out->note, "%s; %d widths x %d LRs x %d parametrisations, %.0f s, %d threads", e->name,
             r.n_widths, r.n_lr, r.n_param, r.seconds, opt->threads);
    return NL_OK;
}

static void best_list(const nl_exp_result *r, const char *pn, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < r->n_metrics && len + 16 < n; i++) {
        char pre[32];
        snprintf(pre, sizeof pre, "%s_best_log2lr_n", pn);
        if (strncmp(r->metrics[i].name, pre, strlen(pre))) continue;
        double v = r->metrics[i].value;
        if (len) len += (size_t)snprintf(buf + len, n - len, ",");
        if (isfinite(v)) len += (size_t)snprintf(buf + len, n - len, "%g", v);
        else len += (size_t)snprintf(buf + len, n - len, "-");
    }
}

static int mup_judge(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t n) {
    (void)e;
    (void)full;
    int fb = 0;
    double mshift = nl_exp_get(r, "mup_shift_steps", NULL), mwb = nl_exp_get(r, "mup_widest_best", NULL);
    double sshift = nl_exp_get(r, "sp_shift_steps", NULL);
    double bshift = nl_exp_get(r, "broken_shift_steps", &fb), bwb = nl_exp_get(r, "broken_widest_best", NULL);
    int mup_ok = mshift <= 1 && mwb == 1;
    int sp_shifts = sshift >= 1;
    int broken_fails = !fb || !(bshift <= 1 && bwb == 1);
    char bm[64], bs[64], bb[128] = "";
    best_list(r, "mup", bm, sizeof bm);
    best_list(r, "sp", bs, sizeof bs);
    if (fb) {
        char t[48];
        best_list(r, "broken", t, sizeof t);
        snprintf(bb, sizeof bb, "; broken muP %s (%s)", t, broken_fails ? "fails" : "PASSES");
    }
    snprintf(measured, n, "best log2 LR per width: muP %s (shift %g%s), SP %s (shift %g)%s", bm, mshift,
             mwb == 1 ? ", widest best" : ", widest NOT best", bs, sshift, bb);
    return mup_ok && sp_shifts && broken_fails;
}

/* Quick: widths 128, 512, 2048 on 4096 training images, 200 steps of batch 32, Adam, 7 LRs (2^-13 .. 2^-7), default
 * (non-zero) readout init for all three sweeps. Full: widths 128 .. 4096 on 20000 images, 1000 steps of batch 64,
 * 11 LRs. Why Adam and no zero readout: methods/mup/README.md ("LR transfer: what we measured") — with SGD the SP optimum did
 * not move measurably at these widths (d = 784 input features dominate the SP instability up to n ~ d), and with
 * a zero readout the broken muP (no 1/width_mult) is hardly broken under Adam. */
static const nl_mup_transfer_config mup_quick = {
    .n_widths = 3, .widths = {128, 512, 2048},
    .n_lr = 7, .log2_lr_lo = -13, .log2_lr_step = 1,
    .steps = 200, .batch = 32, .n_train = 4096, .avg_last = 50,
    .optim = NL_OPT_ADAM, .momentum = 0, .base_width = 128, .zero_readout = 0, .broken = 1, .seed = 1,
};
static const nl_mup_transfer_config mup_full = {
    .n_widths = 6, .widths = {128, 256, 512, 1024, 2048, 4096},
    .n_lr = 11, .log2_lr_lo = -15, .log2_lr_step = 1,
    .steps = 1000, .batch = 64, .n_train = 20000, .avg_last = 200,
    .optim = NL_OPT_ADAM, .momentum = 0, .base_width = 128, .zero_readout = 0, .broken = 1, .seed = 1,
};

const nl_experiment nl_exp_mup = {
    .name = "mup",
    .paper = "Feature Learning in Infinite-Width Neural Networks (Yang & Hu 2020); Tensor Programs V / muTransfer (Yang et al. 2022)",
    .claim = "Under muP the optimal learning rate of an MLP moves by at most one grid step (factor 2) as width grows 16x and the widest model is best there, while under the standard parametrisation the optimum shifts; muP without its readout multiplier loses the transfer.",
    .quick_desc = "Fashion-MNIST MLP 784-n-n-10 ReLU, n in {128, 512, 2048}, first 4096 training images, 200 steps of batch 32, Adam, LR 2^-13 .. 2^-7; SP vs muP (MuAdam rule, base width 128) vs muP without the readout 1/width_mult",
    .full_desc = "Fashion-MNIST MLP 784-n-n-10 ReLU, n in {128, 256, ..., 4096}, first 20000 training images, 1000 steps of batch 64, Adam, LR 2^-15 .. 2^-5; SP vs muP vs broken muP",
    .quick = &mup_quick,
    .full = &mup_full,
    .metrics = "{sp,mup,broken}_shift_steps,{sp,mup,broken}_widest_best,{sp,mup,broken}_best_log2lr_n<W>,{sp,mup,broken}_min_loss_n<W>,grid_log2_lr_lo,grid_log2_lr_step,sweep_seconds",
    .run = mup_run,
    .judge = mup_judge,
};
