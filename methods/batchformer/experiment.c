/* Ledger entry `batchformer` (schema v2, docs/repro.md): long-tailed Fashion-MNIST (imbalance 100), for each base loss
 * (cross-entropy, Balanced Softmax) a plain model and the same model trained with BatchFormer, the same seed (same
 * initialisation of the shared parts and the same batch order), n >= 3 seeds. Parts, each on the paired per-seed
 * differences d_i = BatchFormer - plain by their one-sided 95% lower bound lo = mean - t95(n-1) SE:
 *   ce-few        few-class test accuracy, cross-entropy:       lo > 0
 *   bs-few        few-class test accuracy, Balanced Softmax:     lo > 0
 *   ce-overall    overall test accuracy, cross-entropy:          lo >= -0.5 points
 *   bs-overall    overall test accuracy, Balanced Softmax:       lo >= -0.5 points
 * The margins were fixed before any run. Control (broken): the BatchFormer with its attention matrix replaced by the
 * identity (no sample relationships), same seeds, its numbers in place of BatchFormer's; the rule must reject it. */
#include "batchformer/batchformer.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define BF_MAX_SEEDS 8

typedef struct bf_entry_cfg {
    int64_t hidden, dim, epochs, n_max, test_limit;
    int seeds;
} bf_entry_cfg;

static const char *const g_loss[2] = {"ce", "bs"};
static const char *const g_kind[3] = {"plain", "bf", "identity"};
static const char *const g_q[4] = {"overall", "many", "medium", "few"};

static double q_of(const nl_bf_eval *e, int q) { return q == 0 ? e->overall : q == 1 ? e->many : q == 2 ? e->medium : e->few; }

/* the four accuracies of one model under "<loss>_<as>_<q>" */
static void put_model(nl_exp_result *r, const nl_bf_eval *e, int loss, const char *as, int seed) {
    char key[64];
    for (int q = 0; q < 4; q++) {
        snprintf(key, sizeof key, "%s_%s_%s", g_loss[loss], as, g_q[q]);
        nl_exp_set_seed(r, key, seed, q_of(e, q));
    }
}

static nl_status model_stats(nl_exp_result *r, int loss, const char *as, int n) {
    char key[64];
    nl_status s = NL_OK;
    for (int q = 0; q < 4 && !s; q++) {
        snprintf(key, sizeof key, "%s_%s_%s", g_loss[loss], as, g_q[q]);
        s = nl_exp_set_seed_mean_se(r, key, n);
    }
    return s;
}

static nl_status bf_entry_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const bf_entry_cfg *ec = config;
    int n = ec->seeds < BF_MAX_SEEDS ? ec->seeds : BF_MAX_SEEDS;
    nl_bf_config cfg = nl_bf_defaults();
    cfg.hidden = ec->hidden;
    cfg.dim = ec->dim;
    cfg.epochs = ec->epochs;
    cfg.n_max = ec->n_max;
    cfg.test_limit = ec->test_limit;
    cfg.verbose = opt->verbose > 1;
    nl_dataset tr, te;
    int64_t counts[10];
    nl_status s = nl_bf_load(&cfg, &tr, &te, counts);
    if (s) return s;
    nl_exp_result *ctl = nl_exp_control_add(out, "identity-attention", "broken",
                                            "BatchFormer with the attention matrix replaced by the identity (each sample attends only to "
                                            "itself): same layer, dropout, doubled batch, losses, seeds and data; plain models from the main result");
    if (!ctl) s = nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
    double secs = 0;
    for (int i = 0; i < n && !s; i++) {
        cfg.seed = (uint64_t)(i + 1);
        for (int l = 0; l < 2 && !s; l++) {
            nl_bf_eval ev[3];
            for (int k = 0; k < 3 && !s; k++) {
                double t = 0;
                s = nl_bf_run(&cfg, (nl_bf_kind)k, (nl_bf_loss)l, &tr, &te, counts, &ev[k], &t);
                secs += t;
            }
            if (s) break;
            for (int k = 0; k < 3; k++) put_model(out, &ev[k], l, g_kind[k], i + 1);
            put_model(ctl, &ev[0], l, "plain", i + 1);
            put_model(ctl, &ev[2], l, "bf", i + 1);
            if (opt->verbose)
                nl_progress("batchformer seed %d %s: overall / few plain %.2f / %.2f%%, bf %.2f / %.2f%%, identity %.2f / %.2f%%", i + 1,
                            nl_bf_loss_name((nl_bf_loss)l), 100 * ev[0].overall, 100 * ev[0].few, 100 * ev[1].overall, 100 * ev[1].few,
                            100 * ev[2].overall, 100 * ev[2].few);
        }
    }
    nl_exp_set(out, "n_train", (double)tr.n);
    nl_exp_set(out, "n_test", (double)te.n);
    nl_exp_set(out, "n_max", (double)counts[0]);
    nl_exp_set(out, "n_min", (double)counts[9]);
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    if (s) return s;
    for (int l = 0; l < 2 && !s; l++) {
        for (int k = 0; k < 3 && !s; k++) s = model_stats(out, l, g_kind[k], n);
        if (!s) s = model_stats(ctl, l, "plain", n);
        if (!s) s = model_stats(ctl, l, "bf", n);
    }
    if (s) return s;
    nl_exp_set(out, "seeds", (double)n);
    nl_exp_set(ctl, "seeds", (double)n);
    nl_exp_set(out, "train_seconds", secs);
    out->seeds = ctl->seeds = n;
    snprintf(out->note, sizeof out->note,
             "%s: MLP 784-%lld-%lld, long-tailed Fashion-MNIST (%lld..%lld per class, %lld images), %lld test images, %lld epoch(s), "
             "%d seeds, %d thread(s)",
             e->name, (long long)ec->hidden, (long long)ec->dim, (long long)nl_exp_get(out, "n_max", NULL),
             (long long)nl_exp_get(out, "n_min", NULL), (long long)nl_exp_get(out, "n_train", NULL), (long long)nl_exp_get(out, "n_test", NULL),
             (long long)ec->epochs, n, opt->threads);
    return NL_OK;
}

static int bf_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", BF_MAX_SEEDS);
    static const struct {
        const char *part, *a, *b, *what;
        double margin; /* lo > margin (margin 0) or lo >= margin (negative margin) */
    } parts[4] = {
        {"ce-few", "ce_bf_few", "ce_plain_few", "few-class accuracy, cross-entropy: BatchFormer - plain", 0.0},
        {"bs-few", "bs_bf_few", "bs_plain_few", "few-class accuracy, Balanced Softmax: BatchFormer - plain", 0.0},
        {"ce-overall", "ce_bf_overall", "ce_plain_overall", "overall accuracy, cross-entropy: BatchFormer - plain", -0.005},
        {"bs-overall", "bs_bf_overall", "bs_plain_overall", "overall accuracy, Balanced Softmax: BatchFormer - plain", -0.005},
    };
    size_t used = 0;
    measured[0] = 0;
    for (int k = 0; k < 4; k++) {
        double md, sd, lo = nl_exp_paired_lower(r, parts[k].a, parts[k].b, n, &md, &sd);
        int pass = n >= 3 && (parts[k].margin < 0 ? lo >= parts[k].margin : lo > parts[k].margin); /* NaN fails */
        char rule[256];
        snprintf(rule, sizeof rule, "%s%s, paired over n >= 3 seeds: mean - t95(n-1)*SE %s %+.1f points",
                 mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "", parts[k].what, parts[k].margin < 0 ? ">=" : ">", 100 * parts[k].margin);
        nl_exp_part_set(r, parts[k].part, rule, pass, "%+.2f +- %.2f points (%d seeds), bound %+.2f", 100 * md, 100 * sd, n, 100 * lo);
        int w = snprintf(measured + used, nm - used, "%s%s %+.2f (lo %+.2f)", k ? "; " : "", parts[k].part, 100 * md, 100 * lo);
        if (w > 0 && (size_t)w < nm - used) used += (size_t)w;
    }
    return nl_exp_parts_pass(r);
}

/* Quick / full / smoke configurations: see the descriptions below. */
static const bf_entry_cfg bf_quick = {256, 64, 4, 6000, 0, 3};
static const bf_entry_cfg bf_full = {256, 64, 30, 6000, 0, 5};
static const bf_entry_cfg bf_smoke = {32, 16, 1, 300, 1000, 3};

#define BF_M(l, k) l "_" k "_overall_mean," l "_" k "_overall_se," l "_" k "_many_mean," l "_" k "_medium_mean," l "_" k "_few_mean," \
    l "_" k "_few_se,"
#define BF_METRICS \
    BF_M("ce", "plain") BF_M("ce", "bf") BF_M("ce", "identity") BF_M("bs", "plain") BF_M("bs", "bf") BF_M("bs", "identity") \
    "n_train,n_test,n_max,n_min,seeds,train_seconds"

const nl_experiment nl_exp_batchformer = {
    .name = "batchformer",
    .paper = "Hou, Yu, Tao, BatchFormer: Learning to Explore Sample Relationships for Robust Representation Learning (CVPR 2022)",
    .claim = "A transformer encoder layer across the batch during training (logits on [BF(f); f] through one classifier, removed at "
             "test) improves few-shot accuracy on long-tailed data on top of the base loss without costing overall accuracy (paper, "
             "ImageNet-LT few-shot: RIDE 33.2 -> 35.1, PaCo 39.1 -> 42.1; overall 53.6 -> 54.1, 57.0 -> 57.4)",
    .quick_desc = "long-tailed Fashion-MNIST (imbalance 100: 6000..60 images per class, 14,8xx in all), MLP 784-256-64 ReLU + linear "
                  "classifier, BatchFormer 4 heads / FFN 64 / dropout 0.5 at 0.1x LR, Adam 1e-3 cosine, L2 5e-4, batch 128, 4 epochs; "
                  "losses CE and Balanced Softmax, plain vs BatchFormer vs identity-attention control, all 10000 test images, seeds 1-3",
    .full_desc = "as quick with 30 epochs, seeds 1-5",
    .smoke_desc = "MLP 784-32-16, n_max 300, first 1000 test images, 1 epoch, seeds 1-3",
    .quick = &bf_quick,
    .full = &bf_full,
    .smoke = &bf_smoke,
    .metrics = BF_METRICS,
    .run = bf_entry_run,
    .judge = bf_judge,
};
