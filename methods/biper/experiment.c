/* Ledger entry `biper` (schema v2, docs/repro.md): the 4-conv binary CNN of biper.h on Fashion-MNIST, seeds 1..n
 * (seed i: initialisation and batch order; the same seed pairs every variant). Rules fixed before any run:
 *  - qe: the QE of BiPer networks trained at omega = 5, 10, 20, 40 falls at each step: for every consecutive pair
 *    the paired difference QE(omega_k) - QE(omega_k+1) over n >= 3 seeds has mean - t95(n-1) SE > 0;
 *  - accuracy: BiPer (omega 20) is not worse than sign+STE: the paired difference of test accuracies has
 *    mean - t95(n-1) SE >= -1 point (one-sided 95% non-inferiority with a 1-point margin) over n >= 3 seeds;
 *  - bit-exact: the packed network exported from every trained network of the accuracy part (BiPer and STE, every
 *    seed) predicts the same class as the float network on every test image (deterministic: 0 mismatches).
 * Control the rule must reject: omega -> 0 (omega = 1e-3, where sin(omega W) = omega W to 1e-7 relative: a linear
 * weight map), the same seeds, compared with the main result's STE runs (its QE grid is the main result's). */
#include "biper/biper.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BE_MAX_SEEDS 8
#define BE_MARGIN 0.01
static const double g_omegas[4] = {5, 10, 20, 40};

typedef struct be_cfg {
    int64_t limit, test_limit, epochs1, epochs2, batch;
    double lr1, lr2;
    int c1, c, seeds;
    double omega, omega_ctl;
} be_cfg;

/* One training run; te NULL: no test pass (QE only). Otherwise the float network's predictions on te give the accuracy
 * on its first n_acc images, and the exported packed network's predictions are compared with them on all of te. */
static nl_status run_one(const be_cfg *ec, nl_biper_wmode method, double omega, uint64_t seed, const nl_dataset *tr,
                         const nl_dataset *te, int64_t n_acc, int packed, const nl_exp_options *opt, double *acc, double *qe,
                         double *mism) {
    nl_biper_config cfg = nl_biper_defaults();
    cfg.method = method, cfg.omega = omega, cfg.c1 = ec->c1, cfg.c = ec->c;
    cfg.epochs1 = ec->epochs1, cfg.epochs2 = ec->epochs2, cfg.batch = ec->batch, cfg.lr1 = ec->lr1, cfg.lr2 = ec->lr2;
    cfg.seed = seed, cfg.verbose = opt->verbose > 1;
    nl_biper_net m;
    nl_biper_result r;
    char msg[32];
    nl_status s = nl_biper_net_init(&m, cfg.c1, cfg.c, seed);
    if (s) return s;
    if (!(s = nl_biper_train(&m, &cfg, tr, NULL, &r))) *qe = r.qe;
    if (!s && te) {
        int32_t *pf = malloc((size_t)te->n * 2 * sizeof *pf), *pp = pf + te->n; /* (2, n) float, packed */
        nl_biper_packed *p = NULL;
        if (!pf) s = nl_set_error(NL_ENOMEM, "biper: out of memory");
        if (!s) s = nl_biper_predict(&m, &cfg, te->x, te->n, pf);
        if (!s && packed) s = nl_biper_export(&m, &cfg, &p);
        if (!s && packed) s = nl_biper_packed_predict(p, te->x, te->n, pp);
        int64_t ok = 0, mm = 0;
        for (int64_t i = 0; !s && i < te->n; i++) ok += i < n_acc && pf[i] == te->y[i], mm += packed && pf[i] != pp[i];
        *acc = (double)ok / (double)n_acc, *mism = (double)mm;
        nl_biper_packed_free(p);
        free(pf);
    }
    if (!s && opt->verbose)
        nl_progress("biper %s omega %g seed %d: accuracy %s, QE %.4f", method == NL_BIPER_STE ? "ste" : "biper", omega, (int)seed,
                    te ? (snprintf(msg, sizeof msg, "%.2f%%", 100 * *acc), msg) : "(not measured)", *qe);
    nl_biper_net_free(&m);
    return s;
}

static nl_status be_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const be_cfg *ec = config;
    const int n = ec->seeds < BE_MAX_SEEDS ? ec->seeds : BE_MAX_SEEDS;
    nl_dataset tr, te;
    nl_status s = nl_biper_data(ec->limit, 0, &tr, &te); /* te: all 10000 test images */
    if (s) return s;
    /* accuracy: the first n_acc test images; bit-exact: seed 1 on all of them, the other seeds on the first n_acc */
    const int64_t n_acc = ec->test_limit > 0 && ec->test_limit < te.n ? ec->test_limit : te.n;
    nl_dataset te_acc = te;
    te_acc.n = n_acc;
    char what[256];
    snprintf(what, sizeof what, "BiPer with omega = %g (sin(omega W) is linear in W), same seeds, against the main result's STE runs "
             "(its QE grid and packed-export checks are the main result's)", ec->omega_ctl);
    nl_exp_result *ctl = nl_exp_control_add(out, "omega-to-zero", "broken", what);
    if (!ctl) s = nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
    const double t0 = nl_time();
    double checked = 0;
    for (int i = 0; i < n && !s; i++) {
        const uint64_t seed = (uint64_t)(i + 1);
        const nl_dataset *tp = i == 0 ? &te : &te_acc;
        double acc, qe, mm, mm_all = 0, x;
        char name[32];
        for (int k = 0; k < 4 && !s; k++) {
            const int main_w = g_omegas[k] == ec->omega;
            if ((s = run_one(ec, NL_BIPER_SIN, g_omegas[k], seed, &tr, main_w ? tp : NULL, n_acc, 1, opt, &acc, &qe, &mm))) break;
            snprintf(name, sizeof name, "qe_w%g", g_omegas[k]);
            nl_exp_set_seed(out, name, i + 1, qe), nl_exp_set_seed(ctl, name, i + 1, qe);
            if (main_w) nl_exp_set_seed(out, "acc_biper", i + 1, acc), mm_all += mm, checked += (double)tp->n;
        }
        if (!s && !(s = run_one(ec, NL_BIPER_STE, ec->omega, seed, &tr, tp, n_acc, 1, opt, &acc, &x, &mm)))
            nl_exp_set_seed(out, "acc_ste", i + 1, acc), nl_exp_set_seed(ctl, "acc_ste", i + 1, acc), mm_all += mm, checked += (double)tp->n;
        nl_exp_set_seed(out, "mismatches", i + 1, mm_all), nl_exp_set_seed(ctl, "mismatches", i + 1, mm_all);
        if (!s && !(s = run_one(ec, NL_BIPER_SIN, ec->omega_ctl, seed, &tr, &te_acc, n_acc, 0, opt, &acc, &qe, &mm)))
            nl_exp_set_seed(ctl, "acc_biper", i + 1, acc), nl_exp_set_seed(ctl, "qe_ctl", i + 1, qe);
    }
    if (!s) {
        nl_exp_result *rs[2] = {out, ctl};
        for (int j = 0; j < 2; j++) {
            double x[BE_MAX_SEEDS], mm = 0;
            nl_exp_get_seeds(rs[j], "acc_biper", n, x), nl_exp_set_mean_se(rs[j], "acc_biper", x, n);
            nl_exp_get_seeds(rs[j], "acc_ste", n, x), nl_exp_set_mean_se(rs[j], "acc_ste", x, n);
            for (int k = 0; k < 4; k++) {
                char name[32];
                snprintf(name, sizeof name, "qe_w%g", g_omegas[k]);
                nl_exp_get_seeds(rs[j], name, n, x), nl_exp_set_mean_se(rs[j], name, x, n);
            }
            nl_exp_get_seeds(rs[j], "mismatches", n, x);
            for (int i = 0; i < n; i++) mm += x[i];
            nl_exp_set(rs[j], "mismatches", mm);
            nl_exp_set(rs[j], "checked", checked);
            nl_exp_set(rs[j], "seeds", n), rs[j]->seeds = n;
        }
        nl_exp_set(out, "n_train", (double)tr.n), nl_exp_set(out, "n_test", (double)n_acc);
        nl_exp_set(out, "train_seconds", nl_time() - t0);
        snprintf(out->note, sizeof out->note, "%s: Fashion-MNIST %lld training images, accuracy on %lld test images, channels %d,%d, epochs %lld+%lld, %d seeds, "
                 "%d threads", e->name, (long long)tr.n, (long long)n_acc, ec->c1, ec->c, (long long)ec->epochs1, (long long)ec->epochs2, n,
                 opt->threads);
    }
    nl_dataset_free(&tr), nl_dataset_free(&te);
    return s;
}

static int be_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", BE_MAX_SEEDS);
    const char *pre = mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "";
    const double t = n >= 2 ? nl_stats_t95(n - 1) : NAN;
    char rule[320];
    /* qe */
    double a[BE_MAX_SEEDS], b[BE_MAX_SEEDS], lo[3], q[4];
    int qpass = n >= 3;
    for (int k = 0; k < 4; k++) {
        char name[32];
        snprintf(name, sizeof name, "qe_w%g_mean", g_omegas[k]);
        q[k] = nl_exp_get(r, name, NULL);
    }
    for (int k = 0; k < 3; k++) {
        char na[32], nb[32];
        double md = NAN, sd = NAN;
        snprintf(na, sizeof na, "qe_w%g", g_omegas[k]), snprintf(nb, sizeof nb, "qe_w%g", g_omegas[k + 1]);
        nl_exp_get_seeds(r, na, n, a), nl_exp_get_seeds(r, nb, n, b);
        if (n >= 2) nl_stats_paired_t(a, b, n, &md, &sd);
        lo[k] = md - t * sd;
        qpass = qpass && lo[k] > 0; /* NaN fails */
    }
    snprintf(rule, sizeof rule, "%sQE of BiPer networks trained at omega 5, 10, 20, 40 falls at each step: paired QE(omega_k) - "
             "QE(omega_k+1) over n >= 3 seeds, mean - t95(n-1)*SE > 0 for all three steps", pre);
    nl_exp_part_set(r, "qe", rule, qpass, "QE %.4f, %.4f, %.4f, %.4f (means, %d seeds); step bounds %.4f, %.4f, %.4f", q[0], q[1], q[2], q[3], n,
                    lo[0], lo[1], lo[2]);
    /* accuracy */
    double md = NAN, sd = NAN;
    nl_exp_get_seeds(r, "acc_biper", n, a), nl_exp_get_seeds(r, "acc_ste", n, b);
    if (n >= 2) nl_stats_paired_t(a, b, n, &md, &sd);
    const double alo = md - t * sd;
    const int apass = n >= 3 && alo >= -BE_MARGIN;
    const double ab = nl_exp_get(r, "acc_biper_mean", NULL), as = nl_exp_get(r, "acc_ste_mean", NULL);
    snprintf(rule, sizeof rule, "%sBiPer (omega 20) - sign+STE test accuracy, paired over n >= 3 seeds: mean - t95(n-1)*SE >= -%.1f points "
             "(one-sided 95%% non-inferiority)", pre, 100 * BE_MARGIN);
    nl_exp_part_set(r, "accuracy", rule, apass, "BiPer %.2f%%, STE %.2f%%, difference %+.2f +- %.2f points (%d seeds), bound %+.2f %s -%.1f",
                    100 * ab, 100 * as, 100 * md, 100 * sd, n, 100 * alo, apass ? ">=" : "<", 100 * BE_MARGIN);
    /* bit-exact */
    const double mm = nl_exp_get(r, "mismatches", NULL), ck = nl_exp_get(r, "checked", NULL);
    const int bpass = mm == 0 && ck > 0;
    snprintf(rule, sizeof rule, "%sthe exported bit-packed network predicts the float network's class on every test image, for every network "
             "of the accuracy part (0 mismatches)", pre);
    nl_exp_part_set(r, "bit-exact", rule, bpass, "%.0f mismatches in %.0f predictions", mm, ck);
    snprintf(measured, nm, "QE(omega 5, 10, 20, 40) %.3f, %.3f, %.3f, %.3f; BiPer %.2f%% vs STE %.2f%% (bound %+.2f); packed mismatches %.0f/%.0f", q[0], q[1], q[2],
             q[3], 100 * ab, 100 * as, 100 * alo, mm, ck);
    return nl_exp_parts_pass(r);
}

/* quick: 2000 training images, one epoch per stage, channels 8/16, accuracy on the first 3000 test images (32 s CPU,
 * one thread); full: 60000 images, 2 + 2 epochs, same network, all 10000 test images (estimated from the quick costs,
 * 0.33 ms per training image pass and 0.2 ms per float test image: 18 runs x 79 s + evaluations, about 25 min on one
 * thread; not run); smoke: 300 images, 1000 test images, channels 4/8. */
static const be_cfg be_quick = {2000, 3000, 1, 1, 64, 0.1, 0.02, 8, 16, 3, 20, 1e-3};
static const be_cfg be_full = {60000, 0, 2, 2, 64, 0.1, 0.02, 8, 16, 3, 20, 1e-3};
static const be_cfg be_smoke = {300, 1000, 1, 1, 32, 0.1, 0.02, 4, 8, 3, 20, 1e-3};

#define BE_METRICS                                                                                                  \
    "acc_biper_mean,acc_biper_se,acc_ste_mean,acc_ste_se,qe_w5_mean,qe_w10_mean,qe_w20_mean,qe_w40_mean,mismatches," \
    "checked,seeds,n_train,n_test,train_seconds"

const nl_experiment nl_exp_biper = {
    .name = "biper",
    .paper = "Vargas et al., Binary Neural Networks using a Periodic Function (BiPer, CVPR 2024)",
    .claim = "BiPer's periodic binarisation lowers the quantisation error as omega grows (QE falls from omega 5 to 40) and a BiPer binary CNN "
             "is at least as accurate as the same network with sign+STE weights (paper, CIFAR-10: ResNet-18 93.75, ResNet-20 86.98, VGG-small "
             "92.46); the bit-packed export predicts exactly as the trained network.",
    .quick_desc = "4-conv binary CNN (float conv 8 - binary convs 16, 16, 16 - linear), first 2000 Fashion-MNIST training images, 1 epoch "
                  "per stage, batch 64, SGD momentum 0.9 lr 0.1 / 0.02 cosine, wd 1.6e-3 / 1.6e-4, tau 0.037 / 0.0468; BiPer at omega 5, 10, "
                  "20, 40 and sign+STE, seeds 1-3; accuracy on the first 3000 test images; packed export checked on all 10000 test images "
                  "(seed 1) and on the first 3000 (seeds 2-3); control: omega = 1e-3",
    .full_desc = "4-conv binary CNN (float conv 8 - binary convs 16, 16, 16 - linear), all 60000 training images, 2 + 2 epochs, batch 64, "
                 "SGD momentum 0.9 lr 0.1 / 0.02 cosine, wd 1.6e-3 / 1.6e-4, tau 0.037 / 0.0468; BiPer at omega 5, 10, 20, 40 and sign+STE, "
                 "seeds 1-3, all 10000 test images; control: omega = 1e-3",
    .smoke_desc = "4-conv binary CNN with channels 4 / 8, first 300 training images, 1 epoch per stage, batch 32, accuracy on the first 1000 "
                  "test images, seeds 1-3; control: omega = 1e-3",
    .quick = &be_quick,
    .full = &be_full,
    .smoke = &be_smoke,
    .metrics = BE_METRICS,
    .run = be_run,
    .judge = be_judge,
};
