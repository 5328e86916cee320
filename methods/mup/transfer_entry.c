/* Ledger entry `mup` (schema v2, docs/repro.md): muTransfer of the learning rate across 16x width (TP5 Figure 1 /
 * mup examples/MLP). For every seed, parametrisation (SP, muP, muP without its readout 1/width_mult) and width, the
 * loss-vs-log2-LR curve of nl_mup_transfer_run gives an interpolated optimum (nl_mup_transfer_optimum). Parts:
 *   mup-lr-stable     under muP the optimum of the widest model is within one grid step (one octave) of the
 *                     narrowest model's: |mean drift| + t95(S-1) SE <= 1, no optimum on the grid edge;
 *   sp-lr-shifts      under SP it moves to smaller LRs by at least two grid steps: -mean drift - t95 SE >= 2;
 *   mup-wider-better  under muP the widest model's minimum loss is below the narrowest's (paired over seeds):
 *                     mean difference + t95 SE < 0.
 * The judged "mup_*" metrics of a control are another parametrisation's: SP itself (the baseline the paper beats) and
 * the broken muP; the same judge must reject both. */
#include "mup/mup.h"
#include "nnlab/data.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TE_MAX_SEEDS 8
#define TE_STABLE_OCT 1.0  /* mup-lr-stable: |drift| bound, octaves (one grid step) */
#define TE_SHIFT_OCT 2.0   /* sp-lr-shifts: shift bound, octaves (two grid steps) */


typedef struct te_acc {  /* per parametrisation, width, seed */
    double opt[3][NL_MUP_TRANSFER_MAX_WIDTHS][TE_MAX_SEEDS];
    double minloss[3][NL_MUP_TRANSFER_MAX_WIDTHS][TE_MAX_SEEDS];
    int edge[3][NL_MUP_TRANSFER_MAX_WIDTHS][TE_MAX_SEEDS];
    double loss_mean[3][NL_MUP_TRANSFER_MAX_WIDTHS][NL_MUP_TRANSFER_MAX_LR];
} te_acc;

/* The judged metrics of parametrisation pi under the name `slot` ("mup" or "sp"). */
static void te_fill(const nl_mup_transfer_config *c, const te_acc *a, int pi, const char *slot, nl_exp_result *r) {
    const int S = c->seeds, W = c->n_widths;
    char nm[64];
    double drift[TE_MAX_SEEDS], dl[TE_MAX_SEEDS], m, se;
    int edges = 0;
    for (int w = 0; w < W; w++) {
        nl_stats_mean_se(a->opt[pi][w], S, &m, &se);
        snprintf(nm, sizeof nm, "%s_opt_log2lr_n%lld", slot, (long long)c->widths[w]);
        nl_exp_set(r, nm, m);
        snprintf(nm, sizeof nm, "%s_opt_log2lr_n%lld_se", slot, (long long)c->widths[w]);
        nl_exp_set(r, nm, se);
        nl_stats_mean_se(a->minloss[pi][w], S, &m, &se);
        snprintf(nm, sizeof nm, "%s_min_loss_n%lld", slot, (long long)c->widths[w]);
        nl_exp_set(r, nm, m);
        for (int s = 0; s < S; s++) edges += a->edge[pi][w][s];
    }
    for (int s = 0; s < S; s++) {
        drift[s] = a->opt[pi][W - 1][s] - a->opt[pi][0][s];
        dl[s] = a->minloss[pi][W - 1][s] - a->minloss[pi][0][s];
    }
    nl_stats_mean_se(drift, S, &m, &se);
    snprintf(nm, sizeof nm, "%s_drift", slot);
    nl_exp_set(r, nm, m);
    snprintf(nm, sizeof nm, "%s_drift_se", slot);
    nl_exp_set(r, nm, se);
    nl_stats_mean_se(dl, S, &m, &se);
    snprintf(nm, sizeof nm, "%s_dloss", slot);
    nl_exp_set(r, nm, m);
    snprintf(nm, sizeof nm, "%s_dloss_se", slot);
    nl_exp_set(r, nm, se);
    snprintf(nm, sizeof nm, "%s_edge", slot);
    nl_exp_set(r, nm, edges);
    nl_exp_set(r, "seeds", S);
    nl_exp_set(r, "width_ratio", (double)c->widths[W - 1] / (double)c->widths[0]);
    r->seeds = S;
}

static nl_status mup_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const nl_mup_transfer_config *cfg = config;
    if (cfg->seeds < 1 || cfg->seeds > TE_MAX_SEEDS || !cfg->broken)
        return nl_set_error(NL_EINVAL, "mup: need 1 .. %d seeds and the broken sweep", TE_MAX_SEEDS);
    te_acc *a = calloc(1, sizeof *a);
    if (!a) return nl_set_error(NL_ENOMEM, "mup: out of memory");
    nl_dataset train;
    nl_status s = nl_dataset_load(&train, "fashion-mnist", "train", NULL);
    if (s) { free(a); return s; }
    double secs = 0;
    for (int sd = 0; sd < cfg->seeds && !s; sd++) {
        nl_mup_transfer_config c = *cfg;
        c.seed = (uint64_t)sd + 1;
        nl_mup_transfer_result r;
        if ((s = nl_mup_transfer_run(&c, &train, opt->verbose, &r))) break;
        secs += r.seconds;
        for (int pi = 0; pi < 3; pi++)
            for (int w = 0; w < c.n_widths; w++) {
                a->opt[pi][w][sd] = nl_mup_transfer_optimum(r.loss[pi][w], c.n_lr, c.log2_lr_lo, c.log2_lr_step,
                                                            &a->edge[pi][w][sd], &a->minloss[pi][w][sd]);
                for (int k = 0; k < c.n_lr; k++) a->loss_mean[pi][w][k] += r.loss[pi][w][k] / cfg->seeds;
            }
        if (opt->verbose)
            nl_progress("mup: seed %d: optimum log2 LR narrowest -> widest: SP %.2f -> %.2f, muP %.2f -> %.2f, broken %.2f -> %.2f",
                        sd + 1, a->opt[0][0][sd], a->opt[0][c.n_widths - 1][sd], a->opt[1][0][sd],
                        a->opt[1][c.n_widths - 1][sd], a->opt[2][0][sd], a->opt[2][c.n_widths - 1][sd]);
    }
    nl_dataset_free(&train);
    if (s) { free(a); return s; }
    te_fill(cfg, a, 1, "mup", out);
    te_fill(cfg, a, 0, "sp", out);
    te_fill(cfg, a, 2, "broken", out);
    nl_exp_set(out, "grid_log2_lr_lo", cfg->log2_lr_lo);
    nl_exp_set(out, "grid_log2_lr_step", cfg->log2_lr_step);
    nl_exp_set(out, "sweep_seconds", secs);
    static const char *const plots[3] = {"SP: training loss vs log2 LR (seed mean)", "muP: training loss vs log2 LR (seed mean)",
                                         "broken muP (no readout 1/width_mult): training loss vs log2 LR (seed mean)"};
    char name[64];
    for (int pi = 0; pi < 3; pi++)
        for (int w = 0; w < cfg->n_widths; w++) {
            snprintf(name, sizeof name, "width %lld", (long long)cfg->widths[w]);
            nl_curve *k = nl_exp_curve(out, plots[pi], name, "log2 learning rate", "training loss (mean of last steps)");
            if (!k) { free(a); return nl_set_error(NL_ENOMEM, "mup: out of memory"); }
            for (int i = 0; i < cfg->n_lr; i++) nl_curve_add(k, cfg->log2_lr_lo + i * cfg->log2_lr_step, a->loss_mean[pi][w][i]);
        }
    /* controls: another parametrisation's curves in the judged muP slot, SP unchanged */
    nl_exp_result *c = nl_exp_control_add(out, "sp-as-mup", "baseline",
                                          "the standard parametrisation (PyTorch init, one global LR) judged by muP's rule: "
                                          "the baseline whose optimum moves with width");
    if (!c) { free(a); return nl_set_error(NL_ENOMEM, "mup: out of memory"); }
    te_fill(cfg, a, 0, "mup", c);
    te_fill(cfg, a, 0, "sp", c);
    c = nl_exp_control_add(out, "no-readout-mult", "broken",
                           "muP without the readout multiplier 1/width_mult (MuReadout dropped; init and LR rules kept)");
    if (!c) { free(a); return nl_set_error(NL_ENOMEM, "mup: out of memory"); }
    te_fill(cfg, a, 2, "mup", c);
    te_fill(cfg, a, 0, "sp", c);
    snprintf(out->note, sizeof out->note, "%s; %d seeds x 3 parametrisations x %d widths x %d LRs, %.0f s of sweeps, %d threads",
             e->name, cfg->seeds, cfg->n_widths, cfg->n_lr, secs, opt->threads);
    free(a);
    return NL_OK;
}

static int mup_judge(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t n) {
    (void)e;
    (void)full;
    const int S = (int)nl_exp_get(r, "seeds", NULL);
    const double t = S >= 2 ? nl_stats_t95(S - 1) : NAN;
    const double md = nl_exp_get(r, "mup_drift", NULL), mse = nl_exp_get(r, "mup_drift_se", NULL);
    const double medge = nl_exp_get(r, "mup_edge", NULL);
    const double sd = nl_exp_get(r, "sp_drift", NULL), sse = nl_exp_get(r, "sp_drift_se", NULL);
    const double dl = nl_exp_get(r, "mup_dloss", NULL), dlse = nl_exp_get(r, "mup_dloss_se", NULL);
    const double ratio = nl_exp_get(r, "width_ratio", NULL);
    const double mbound = fabs(md) + t * mse, sbound = -sd - t * sse, dbound = dl + t * dlse;
    const int p1 = S >= 3 && mbound <= TE_STABLE_OCT && medge == 0; /* NaN fails */
    const int p2 = S >= 3 && sbound >= TE_SHIFT_OCT;
    const int p3 = S >= 3 && dbound < 0;
    char rule[256];
    snprintf(rule, sizeof rule, "muP: interpolated optimum log2 LR, widest - narrowest (%gx width), over n >= 3 seeds: "
             "|mean| + t95(n-1) SE <= %.1f octave, no optimum on the grid edge", ratio, TE_STABLE_OCT);
    nl_exp_part_set(r, "mup-lr-stable", rule, p1, "drift %+.2f +- %.2f octaves (%d seeds): bound %.2f %s %.1f; %g optima on the grid edge",
                    md, mse, S, mbound, mbound <= TE_STABLE_OCT ? "<=" : ">", TE_STABLE_OCT, medge);
    snprintf(rule, sizeof rule, "SP: the same optimum moves to smaller LRs by >= %.0f grid steps: -mean - t95(n-1) SE >= %.1f octaves",
             TE_SHIFT_OCT, TE_SHIFT_OCT);
    nl_exp_part_set(r, "sp-lr-shifts", rule, p2, "drift %+.2f +- %.2f octaves: bound %.2f %s %.1f", sd, sse, sbound,
                    sbound >= TE_SHIFT_OCT ? ">=" : "<", TE_SHIFT_OCT);
    snprintf(rule, sizeof rule, "muP: minimum training loss, widest - narrowest, paired over seeds: mean + t95(n-1) SE < 0");
    nl_exp_part_set(r, "mup-wider-better", rule, p3, "%+.4f +- %.4f: bound %+.4f %s 0", dl, dlse, dbound, dbound < 0 ? "<" : ">=");
    snprintf(measured, n, "opt. log2 LR drift over %gx width: muP %+.2f +- %.2f (bound %.2f), SP %+.2f +- %.2f (bound %.2f); "
             "muP loss widest - narrowest %+.4f +- %.4f (%d seeds)", ratio, md, mse, mbound, sd, sse, sbound, dl, dlse, S);
    return p1 && p2 && p3;
}

/* Quick: MLP 49-n-n-10 on 4x4-pooled images (7 x 7), widths 32, 128, 512 (16x), base width 32, first 4096 training
 * images, 200 steps of batch 32, Adam, LR 2^-12 .. 2^-5, seeds 1-3. The widths a quick run affords are small, so the
 * input is made smaller still: SP's optimum moves with width only once n >> d (README, "LR transfer"); with 2x2
 * pooling (d = 196) it moved 2.2 +- 0.2 octaves (bound 1.65 < 2: fail). Full: the same images, widths 64, 256, 1024,
 * first 20000 images, 1000 steps of batch 64, LR 2^-14 .. 2^-5 (estimated 15-20 min on one thread, not yet run).
 * Smoke: widths 8, 32, 128 on 512 images, 30 steps. Every mode searches the grid (a descent from the previous
 * width's best LR). Why Adam and the default (non-zero) readout: methods/mup/README.md ("What we measured"). */
static const nl_mup_transfer_config mup_quick = {
    .n_widths = 3, .widths = {32, 128, 512},
    .n_lr = 8, .log2_lr_lo = -12, .log2_lr_step = 1,
    .steps = 200, .batch = 32, .n_train = 4096, .avg_last = 50,
    .optim = NL_OPT_ADAM, .momentum = 0, .base_width = 32, .zero_readout = 0, .broken = 1, .seed = 1,
    .pool = 4, .share_base = 1, .search = 1, .seeds = 3,
};
static const nl_mup_transfer_config mup_full = {
    .n_widths = 3, .widths = {64, 256, 1024},
    .n_lr = 10, .log2_lr_lo = -14, .log2_lr_step = 1,
    .steps = 1000, .batch = 64, .n_train = 20000, .avg_last = 200,
    .optim = NL_OPT_ADAM, .momentum = 0, .base_width = 64, .zero_readout = 0, .broken = 1, .seed = 1,
    .pool = 4, .share_base = 1, .search = 1, .seeds = 3,
};
static const nl_mup_transfer_config mup_smoke = {
    .n_widths = 3, .widths = {8, 32, 128},
    .n_lr = 8, .log2_lr_lo = -9, .log2_lr_step = 1,
    .steps = 30, .batch = 16, .n_train = 512, .avg_last = 10,
    .optim = NL_OPT_ADAM, .momentum = 0, .base_width = 8, .zero_readout = 0, .broken = 1, .seed = 1,
    .pool = 4, .share_base = 1, .search = 1, .seeds = 3,
};

const nl_experiment nl_exp_mup = {
    .name = "mup",
    .paper = "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer (Yang et al. 2022, muTransfer)",
    .claim = "Under muP the optimal learning rate of an MLP stays within one octave as width grows 16x and the widest model "
             "trains best, while under the standard parametrisation the optimum moves down by at least two octaves; SP and muP "
             "without its readout multiplier fail muP's rule.",
    .quick_desc = "Fashion-MNIST 4x4-pooled (7 x 7), MLP 49-n-n-10 ReLU, n in {32, 128, 512}, first 4096 training images, 200 steps of "
                  "batch 32, Adam, LR 2^-12 .. 2^-5, seeds 1-3; SP vs muP (MuAdam rule, base width 32); controls: SP, muP "
                  "without the readout 1/width_mult",
    .full_desc = "Fashion-MNIST 4x4-pooled, MLP 49-n-n-10 ReLU, n in {64, 256, 1024}, first 20000 training images, 1000 steps "
                 "of batch 64, Adam, LR 2^-14 .. 2^-5, seeds 1-3; SP vs muP (base width 64); same controls",
    .smoke_desc = "widths 8, 32, 128 on the first 512 4x4-pooled images, 30 steps of batch 16, LR 2^-9 .. 2^-2, seeds 1-3",
    .quick = &mup_quick,
    .full = &mup_full,
    .smoke = &mup_smoke,
    .metrics = "{mup,sp,broken}_{drift,drift_se,dloss,dloss_se,edge},{mup,sp,broken}_opt_log2lr_n<W>[_se],"
               "{mup,sp,broken}_min_loss_n<W>,seeds,width_ratio,grid_log2_lr_lo,grid_log2_lr_step,sweep_seconds",
    .run = mup_run,
    .judge = mup_judge,
};
