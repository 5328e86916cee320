/* Ledger entry `bt2` (schema v2, docs/repro.md): the BT^2 protocol on Fashion-MNIST (old model on classes 0-4, new
 * models on all 10) over n >= 3 seeds, retrieval top-1 on the test images (query = gallery, self excluded). Parts, each
 * on the paired per-seed differences d_i (seed i) by their one-sided 95% lower bound lo = mean - t95(n-1) SE:
 *   compatible        BT^2 new/old - old/old:               lo > 0   (BCT's compatibility criterion)
 *   bt2-over-bct      BT^2 new/old - BCT new/old:           lo > 0
 *   bct-over-indep    BCT new/old - independent new/old:    lo > 0
 *   newnew-within-1   BT^2 new/new - independent new/new:   lo >= -1 point
 *   newnew-over-bct   BT^2 new/new - BCT new/new:           lo > 0
 * The margins were fixed before any run. Control (broken): BT^2 with both orthogonal maps frozen at the identity, same
 * seeds, its numbers in place of BT^2's (old/old, independent and BCT are the main result's); the rule must reject it. */
#include "bt2/bt2.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BT2_MAX_SEEDS 8

typedef struct bt2_entry_cfg {
    int64_t hidden, epochs, limit, test_limit;
    int seeds;
} bt2_entry_cfg;

static const char *const g_models[4] = {"indep", "bct", "bt2", "frozen"};

/* the per-seed metrics of model k (0 indep, 1 bct, 2 bt2, 3 frozen) written under the name of model `as` */
static void put_model(nl_exp_result *r, const nl_bt2_protocol *p, int k, const char *as, int seed) {
    char key[48];
    snprintf(key, sizeof key, "%s_new_old_top1", as);
    nl_exp_set_seed(r, key, seed, p->new_old[k].top1);
    snprintf(key, sizeof key, "%s_new_old_map", as);
    nl_exp_set_seed(r, key, seed, p->new_old[k].map);
    snprintf(key, sizeof key, "%s_new_new_top1", as);
    nl_exp_set_seed(r, key, seed, p->new_new[k].top1);
    snprintf(key, sizeof key, "%s_new_new_map", as);
    nl_exp_set_seed(r, key, seed, p->new_new[k].map);
    snprintf(key, sizeof key, "%s_accuracy", as);
    nl_exp_set_seed(r, key, seed, p->new_acc[k]);
}

static const char *const g_quantities[5] = {"new_old_top1", "new_old_map", "new_new_top1", "new_new_map", "accuracy"};

static nl_status model_stats(nl_exp_result *r, const char *as, int n) {
    char key[48];
    nl_status s = NL_OK;
    for (int q = 0; q < 5 && !s; q++) {
        snprintf(key, sizeof key, "%s_%s", as, g_quantities[q]);
        s = nl_exp_set_seed_mean_se(r, key, n);
    }
    return s;
}

static nl_status bt2_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const bt2_entry_cfg *ec = config;
    int n = ec->seeds < BT2_MAX_SEEDS ? ec->seeds : BT2_MAX_SEEDS;
    nl_bt2_config cfg = nl_bt2_defaults();
    cfg.hidden = ec->hidden;
    cfg.epochs = ec->epochs;
    cfg.limit = ec->limit;
    cfg.test_limit = ec->test_limit;
    cfg.verbose = opt->verbose > 1;
    nl_dataset tr, te;
    nl_status s = nl_bt2_load(&cfg, &tr, &te);
    if (s) return s;
    nl_exp_result *ctl = nl_exp_control_add(out, "frozen-identity", "broken",
                                            "BT^2 with both orthogonal maps (O_p, O_2) frozen at the identity, not trained; same "
                                            "seeds, losses and data; old/old, independent and BCT from the main result");
    if (!ctl) s = nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
    double secs = 0;
    for (int i = 0; i < n && !s; i++) {
        nl_bt2_protocol p;
        cfg.seed = (uint64_t)(i + 1);
        if ((s = nl_bt2_protocol_run(&cfg, &tr, &te, 1, &p))) break;
        secs += p.seconds;
        for (int k = 0; k < 3; k++) put_model(out, &p, k, g_models[k], i + 1);
        put_model(out, &p, 3, "frozen", i + 1);
        nl_exp_set_seed(out, "old_old_top1", i + 1, p.old_old.top1);
        nl_exp_set_seed(out, "old_old_map", i + 1, p.old_old.map);
        nl_exp_set_seed(out, "old_accuracy", i + 1, p.old_acc);
        /* the control: the same metric names, BT^2's replaced by the frozen model's */
        for (int k = 0; k < 2; k++) put_model(ctl, &p, k, g_models[k], i + 1);
        put_model(ctl, &p, 3, "bt2", i + 1);
        nl_exp_set_seed(ctl, "old_old_top1", i + 1, p.old_old.top1);
        nl_exp_set_seed(ctl, "old_old_map", i + 1, p.old_old.map);
        if (opt->verbose)
            nl_progress("bt2 seed %d: old/old %.2f%%; new/old indep %.2f%% bct %.2f%% bt2 %.2f%% frozen %.2f%%; new/new indep %.2f%% "
                        "bct %.2f%% bt2 %.2f%% frozen %.2f%% (%.1f s)",
                        i + 1, 100 * p.old_old.top1, 100 * p.new_old[0].top1, 100 * p.new_old[1].top1, 100 * p.new_old[2].top1,
                        100 * p.new_old[3].top1, 100 * p.new_new[0].top1, 100 * p.new_new[1].top1, 100 * p.new_new[2].top1,
                        100 * p.new_new[3].top1, p.seconds);
        if (i == 0) nl_exp_set(out, "n_train", (double)p.n_train), nl_exp_set(out, "n_test", (double)p.old_old.queries);
    }
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    if (s) return s;
    for (int k = 0; k < 4 && !s; k++) s = model_stats(out, g_models[k], n);
    for (int k = 0; k < 3 && !s; k++) s = model_stats(ctl, k == 2 ? "bt2" : g_models[k], n);
    if (!s) s = nl_exp_set_seed_mean_se(out, "old_old_top1", n);
    if (!s) s = nl_exp_set_seed_mean_se(out, "old_old_map", n);
    if (!s) s = nl_exp_set_seed_mean_se(out, "old_accuracy", n);
    if (!s) s = nl_exp_set_seed_mean_se(ctl, "old_old_top1", n);
    if (!s) s = nl_exp_set_seed_mean_se(ctl, "old_old_map", n);
    if (s) return s;
    /* reported, not judged: how far the learned maps move BT^2 from the frozen control (paired over the seeds) */
    static const char *const q2[2] = {"new_old_top1", "new_new_top1"};
    for (int k = 0; k < 2; k++) {
        double a[BT2_MAX_SEEDS], b[BT2_MAX_SEEDS], md = NAN, sd = NAN;
        char name[96];
        for (int i = 0; i < n; i++) {
            snprintf(name, sizeof name, "bt2_%s_seed%d", q2[k], i + 1);
            a[i] = nl_exp_get(out, name, NULL);
            snprintf(name, sizeof name, "frozen_%s_seed%d", q2[k], i + 1);
            b[i] = nl_exp_get(out, name, NULL);
        }
        if (n >= 2) nl_stats_paired_t(a, b, n, &md, &sd);
        snprintf(name, sizeof name, "bt2_minus_frozen_%s_mean", q2[k]);
        nl_exp_set(out, name, md);
        snprintf(name, sizeof name, "bt2_minus_frozen_%s_se", q2[k]);
        nl_exp_set(out, name, sd);
    }
    nl_exp_set(out, "seeds", (double)n);
    nl_exp_set(ctl, "seeds", (double)n);
    nl_exp_set(out, "train_seconds", secs);
    out->seeds = ctl->seeds = n;
    snprintf(out->note, sizeof out->note,
             "%s: MLP backbone 784-%lld, %lld training / %lld test images of Fashion-MNIST, %lld epoch(s) per model, %d seeds, %d thread(s)",
             e->name, (long long)ec->hidden, (long long)nl_exp_get(out, "n_train", NULL), (long long)nl_exp_get(out, "n_test", NULL),
             (long long)ec->epochs, n, opt->threads);
    return NL_OK;
}

static int bt2_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", BT2_MAX_SEEDS);
    static const struct {
        const char *part, *a, *b, *what;
        double margin; /* lo > margin (margin 0) or lo >= margin (negative margin) */
    } parts[5] = {
        {"compatible", "bt2_new_old_top1", "old_old_top1", "BT^2 new/old - old/old", 0.0},
        {"bt2-over-bct", "bt2_new_old_top1", "bct_new_old_top1", "BT^2 new/old - BCT new/old", 0.0},
        {"bct-over-indep", "bct_new_old_top1", "indep_new_old_top1", "BCT new/old - independent new/old", 0.0},
        {"newnew-within-1", "bt2_new_new_top1", "indep_new_new_top1", "BT^2 new/new - independent new/new", -0.01},
        {"newnew-over-bct", "bt2_new_new_top1", "bct_new_new_top1", "BT^2 new/new - BCT new/new", 0.0},
    };
    size_t used = 0;
    measured[0] = 0;
    for (int k = 0; k < 5; k++) {
        double md, sd, lo = nl_exp_paired_lower(r, parts[k].a, parts[k].b, n, &md, &sd);
        int pass = n >= 3 && (parts[k].margin < 0 ? lo >= parts[k].margin : lo > parts[k].margin); /* NaN fails */
        char rule[256];
        snprintf(rule, sizeof rule, "%s%s, retrieval top-1 paired over n >= 3 seeds: mean - t95(n-1)*SE %s %+.1f points",
                 mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "", parts[k].what, parts[k].margin < 0 ? ">=" : ">",
                 100 * parts[k].margin);
        nl_exp_part_set(r, parts[k].part, rule, pass, "%+.2f +- %.2f points (%d seeds), bound %+.2f", 100 * md, 100 * sd, n, 100 * lo);
        int w = snprintf(measured + used, nm - used, "%s%s %+.2f (lo %+.2f)", k ? "; " : "", parts[k].part, 100 * md, 100 * lo);
        if (w > 0 && (size_t)w < nm - used) used += (size_t)w;
    }
    return nl_exp_parts_pass(r);
}

/* Quick: MLP 784-256, first 10000 training and 2000 test images, 6 epochs per model, 3 seeds; full: all 60000 / 10000
 * images, 20 epochs, 3 seeds; smoke: 1200 / 300 images, 1 epoch, hidden 32. */
static const bt2_entry_cfg bt2_quick = {256, 6, 10000, 2000, 3};
static const bt2_entry_cfg bt2_full = {256, 20, 0, 0, 3};
static const bt2_entry_cfg bt2_smoke = {32, 1, 1200, 300, 3};

#define BT2_M(x) x "_new_old_top1_mean," x "_new_old_top1_se," x "_new_new_top1_mean," x "_new_new_top1_se," x "_new_old_map_mean," \
    x "_new_new_map_mean," x "_accuracy_mean,"
#define BT2_METRICS \
    "old_old_top1_mean,old_old_top1_se,old_old_map_mean,old_accuracy_mean," BT2_M("indep") BT2_M("bct") BT2_M("bt2") BT2_M("frozen") \
    "bt2_minus_frozen_new_old_top1_mean,bt2_minus_frozen_new_old_top1_se,bt2_minus_frozen_new_new_top1_mean," \
    "bt2_minus_frozen_new_new_top1_se,n_train,n_test,seeds,train_seconds"

const nl_experiment nl_exp_bt2 = {
    .name = "bt2",
    .paper = "Zhou, Li, Sun, Kang, Tzeng, Trevor, Sharma, BT^2: Backward-compatible Training with Basis Transformation (ICCV 2023)",
    .claim = "With 32 extra dimensions and a learned orthogonal basis transformation, a new model's embedding stays compatible with "
             "the old gallery (BT^2 new/old > old/old, > BCT new/old > independent new/old) while its new/new retrieval stays within "
             "1 point of independent training and above BCT (paper, CIFAR-100 top-1: old/old 33.6; new/old 0.8 / 25.0 / 38.7; "
             "new/new 62.7 / 60.0 / 62.4)",
    .quick_desc = "Fashion-MNIST, old model on classes 0-4 (128-d), new models on 0-9: independent and BCT 128-d, BT^2 128+32-d; MLP "
                  "784-256-(128|256) ReLU backbone, Adam 1e-3 cosine, first 10000 training images, 6 epochs per model, retrieval on the first 2000 "
                  "test images (query = gallery, self excluded), seeds 1-3; control: orthogonal maps frozen at the identity",
    .full_desc = "as quick on all 60000 training and 10000 test images, 20 epochs per model, seeds 1-3",
    .smoke_desc = "hidden 32, first 1200 training and 300 test images, 1 epoch, seeds 1-3",
    .quick = &bt2_quick,
    .full = &bt2_full,
    .smoke = &bt2_smoke,
    .metrics = BT2_METRICS,
    .run = bt2_run,
    .judge = bt2_judge,
};
