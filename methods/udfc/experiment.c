/* Ledger entry `udfc` (schema v2, docs/repro.md): two pretrained nets on Fashion-MNIST — LeNet-300-100 with BatchNorm
 * ("mlp") and a small BatchNorm CNN ("cnn") — compressed without data and without fine-tuning, over n >= 3 seeds (a
 * seed trains its own net). Parts, per net, on per-seed test accuracies; "lo" is the paired one-sided 95% lower bound
 * mean - t95(n-1) SE of the per-seed differences:
 *   <net>-beats-prune-only   UDFC (prune + 6-bit, compensated) - prune-only (+ plain 6-bit): lo > 0 at each of the
 *                            ratios 50/60/70/80 %
 *   <net>-comp4-beats-naive4 compensated 4-bit - plain 4-bit (no pruning): lo > 0
 *   <net>-matches-nm         UDFC - Neuron Merging (pruning only, full precision): mean >= -0.5 points at >= 2 of 4
 *                            ratios
 * The rules and margins were fixed before the first run. Control (broken): compensation with random coefficients (each
 * pruned channel's UDFC coefficient vector replaced by a random direction of the same norm, each quantised channel's
 * scalar correction given a random sign); its numbers replace UDFC's, the rest are the main result's. */
#include "udfc/udfc.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define UDFC_MAX_SEEDS 8

typedef struct udfc_entry_cfg {
    int64_t limit, test_limit, epochs_mlp, epochs_cnn;
    int c1, c2, seeds;
} udfc_entry_cfg;

static const char *const g_nets[2] = {"mlp", "cnn"};

static void put(nl_exp_result *r, const char *net, const char *what, int ratio, int seed, double v) {
    char key[64];
    if (ratio) snprintf(key, sizeof key, "%s_%s_r%d", net, what, ratio);
    else snprintf(key, sizeof key, "%s_%s", net, what);
    nl_exp_set_seed(r, key, seed, v);
}

/* per-seed metrics of one net; control: UDFC's numbers replaced by the random-coefficient ones */
static void put_seed(nl_exp_result *r, const char *net, const nl_udfc_seed_result *x, int seed, int control) {
    put(r, net, "base", 0, seed, x->base);
    put(r, net, "naive4", 0, seed, x->naive4);
    put(r, net, "comp4", 0, seed, control ? x->rand4 : x->comp4);
    put(r, net, "naive6", 0, seed, x->naive6);
    if (!control) put(r, net, "comp6", 0, seed, x->comp6), put(r, net, "rand4", 0, seed, x->rand4);
    for (int i = 0; i < NL_UDFC_RATIOS; i++) {
        int q = (int)lround(100 * nl_udfc_ratios[i]);
        put(r, net, "prune_fp", q, seed, x->prune_fp[i]);
        put(r, net, "nm_fp", q, seed, x->nm_fp[i]);
        put(r, net, "udfc_fp", q, seed, control ? x->rand_fp[i] : x->udfc_fp[i]);
        put(r, net, "prune6", q, seed, x->prune6[i]);
        put(r, net, "udfc6", q, seed, control ? x->rand6[i] : x->udfc6[i]);
        if (!control) {
            put(r, net, "rand_fp", q, seed, x->rand_fp[i]);
            put(r, net, "rand6", q, seed, x->rand6[i]);
            put(r, net, "prune4", q, seed, x->prune4[i]);
            put(r, net, "udfc4", q, seed, x->udfc4[i]);
        }
    }
}

static nl_status stats(nl_exp_result *r, const char *net, int n, int control) {
    static const char *const flat[6] = {"base", "naive4", "comp4", "naive6", "comp6", "rand4"};
    static const char *const per[9] = {"prune_fp", "nm_fp", "udfc_fp", "prune6", "udfc6", "rand_fp", "rand6", "prune4", "udfc4"};
    char key[64];
    nl_status s = NL_OK;
    for (int k = 0; k < (control ? 4 : 6) && !s; k++) {
        snprintf(key, sizeof key, "%s_%s", net, flat[k]);
        s = nl_exp_set_seed_mean_se(r, key, n);
    }
    for (int k = 0; k < (control ? 5 : 9) && !s; k++)
        for (int i = 0; i < NL_UDFC_RATIOS && !s; i++) {
            snprintf(key, sizeof key, "%s_%s_r%d", net, per[k], (int)lround(100 * nl_udfc_ratios[i]));
            s = nl_exp_set_seed_mean_se(r, key, n);
        }
    return s;
}

static nl_status udfc_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const udfc_entry_cfg *ec = config;
    int n = ec->seeds < UDFC_MAX_SEEDS ? ec->seeds : UDFC_MAX_SEEDS;
    nl_udfc_config cfg = nl_udfc_defaults();
    cfg.limit = ec->limit;
    cfg.test_limit = ec->test_limit;
    cfg.epochs_mlp = ec->epochs_mlp;
    cfg.epochs_cnn = ec->epochs_cnn;
    cfg.cnn_c1 = ec->c1;
    cfg.cnn_c2 = ec->c2;
    nl_dataset tr, te;
    nl_status s = nl_udfc_load(&cfg, &tr, &te);
    if (s) return s;
    nl_exp_result *ctl = nl_exp_control_add(out, "random-coefficients", "broken",
                                            "compensation with random coefficients: each pruned channel's UDFC coefficient vector "
                                            "replaced by a random Gaussian direction of the same norm, each quantised channel's "
                                            "scalar correction given a random sign; same nets, ratios and bits");
    if (!ctl) s = nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
    double secs = 0;
    for (int i = 0; i < n && !s; i++)
        for (int k = 0; k < 2 && !s; k++) {
            nl_udfc_seed_result r;
            cfg.seed = (uint64_t)(i + 1);
            if ((s = nl_udfc_seed_run(&cfg, (nl_udfc_net)k, &tr, &te, &r))) break;
            secs += r.train_seconds;
            put_seed(out, g_nets[k], &r, i + 1, 0);
            put_seed(ctl, g_nets[k], &r, i + 1, 1);
            if (i == 0) {
                char key[64];
                snprintf(key, sizeof key, "%s_params", g_nets[k]);
                nl_exp_set(out, key, r.params);
                snprintf(key, sizeof key, "%s_macs", g_nets[k]);
                nl_exp_set(out, key, r.macs);
                snprintf(key, sizeof key, "%s_params_r80", g_nets[k]);
                nl_exp_set(out, key, r.params_r80);
                snprintf(key, sizeof key, "%s_macs_r80", g_nets[k]);
                nl_exp_set(out, key, r.macs_r80);
            }
            if (opt->verbose)
                nl_progress("udfc %s seed %d: base %.2f%%; 4-bit naive %.2f%% comp %.2f%%; 80%%+6-bit prune %.2f%% udfc %.2f%% random %.2f%%; "
                            "80%% fp prune %.2f%% NM %.2f%% udfc %.2f%%",
                            g_nets[k], i + 1, 100 * r.base, 100 * r.naive4, 100 * r.comp4, 100 * r.prune6[3], 100 * r.udfc6[3],
                            100 * r.rand6[3], 100 * r.prune_fp[3], 100 * r.nm_fp[3], 100 * r.udfc_fp[3]);
        }
    int64_t ntr = tr.n, nte = te.n;
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    for (int k = 0; k < 2 && !s; k++) {
        s = stats(out, g_nets[k], n, 0);
        if (!s) s = stats(ctl, g_nets[k], n, 1);
    }
    if (s) return s;
    nl_exp_set(out, "seeds", (double)n);
    nl_exp_set(ctl, "seeds", (double)n);
    nl_exp_set(out, "n_train", (double)ntr);
    nl_exp_set(out, "n_test", (double)nte);
    nl_exp_set(out, "train_seconds", secs);
    out->seeds = ctl->seeds = n;
    snprintf(out->note, sizeof out->note,
             "%s: %lld training / %lld test images of Fashion-MNIST, LeNet-300-100+BN %lld epoch(s), CNN %d-%d+BN %lld epoch(s), %d "
             "seeds, %d thread(s); compression uses no data and no fine-tuning",
             e->name, (long long)ntr, (long long)nte, (long long)ec->epochs_mlp, ec->c1, ec->c2, (long long)ec->epochs_cnn, n,
             opt->threads);
    return NL_OK;
}

static int udfc_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", UDFC_MAX_SEEDS);
    const char *smoke = mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "";
    size_t used = 0;
    measured[0] = 0;
    for (int k = 0; k < 2; k++) {
        const char *net = g_nets[k];
        char a[64], b[64], part[64], rule[320], got[256];
        /* 1: UDFC beats prune-only at every ratio (6-bit weights) */
        int ok = n >= 3, gl = 0;
        for (int i = 0; i < NL_UDFC_RATIOS; i++) {
            int q = (int)lround(100 * nl_udfc_ratios[i]);
            double md, sd;
            snprintf(a, sizeof a, "%s_udfc6_r%d", net, q);
            snprintf(b, sizeof b, "%s_prune6_r%d", net, q);
            double lo = nl_exp_paired_lower(r, a, b, n, &md, &sd);
            ok &= lo > 0; /* NaN fails */
            int w = snprintf(got + gl, sizeof got - (size_t)gl, "%s%d%% %+.2f+-%.2f (lo %+.2f)", i ? ", " : "", q, 100 * md, 100 * sd, 100 * lo);
            if (w > 0 && w < (int)sizeof got - gl) gl += w;
        }
        snprintf(part, sizeof part, "%s-beats-prune-only", net);
        snprintf(rule, sizeof rule, "%sUDFC (pruned + 6-bit, compensated) - prune-only (pruned + plain 6-bit), test accuracy paired over n >= 3 "
                                    "seeds: mean - t95(n-1)*SE > 0 at each of 50/60/70/80%% pruning", smoke);
        nl_exp_part_set(r, part, rule, ok, "%s points (%d seeds)", got, n);
        int w = snprintf(measured + used, nm - used, "%s%s %s", used ? "; " : "", part, ok ? "yes" : "no");
        if (w > 0 && (size_t)w < nm - used) used += (size_t)w;
        /* 2: compensated 4-bit beats naive 4-bit */
        double md, sd;
        snprintf(a, sizeof a, "%s_comp4", net);
        snprintf(b, sizeof b, "%s_naive4", net);
        double lo = nl_exp_paired_lower(r, a, b, n, &md, &sd);
        ok = n >= 3 && lo > 0;
        snprintf(part, sizeof part, "%s-comp4-beats-naive4", net);
        snprintf(rule, sizeof rule, "%scompensated 4-bit - plain 4-bit weights (no pruning), test accuracy paired over n >= 3 seeds: "
                                    "mean - t95(n-1)*SE > 0", smoke);
        nl_exp_part_set(r, part, rule, ok, "%+.2f +- %.2f points (%d seeds), bound %+.2f", 100 * md, 100 * sd, n, 100 * lo);
        w = snprintf(measured + used, nm - used, "; %s %+.2f", part, 100 * md);
        if (w > 0 && (size_t)w < nm - used) used += (size_t)w;
        /* 3: UDFC matches or beats Neuron Merging at >= 2 of 4 ratios (pruning only) */
        int hits = 0;
        gl = 0;
        for (int i = 0; i < NL_UDFC_RATIOS; i++) {
            int q = (int)lround(100 * nl_udfc_ratios[i]);
            snprintf(a, sizeof a, "%s_udfc_fp_r%d", net, q);
            snprintf(b, sizeof b, "%s_nm_fp_r%d", net, q);
            nl_exp_paired_lower(r, a, b, n, &md, &sd);
            hits += md >= -0.005;
            int w2 = snprintf(got + gl, sizeof got - (size_t)gl, "%s%d%% %+.2f+-%.2f", i ? ", " : "", q, 100 * md, 100 * sd);
            if (w2 > 0 && w2 < (int)sizeof got - gl) gl += w2;
        }
        ok = n >= 3 && hits >= 2;
        snprintf(part, sizeof part, "%s-matches-nm", net);
        snprintf(rule, sizeof rule, "%sUDFC - Neuron Merging (pruning only, full precision), mean test accuracy difference over n >= 3 "
                                    "seeds >= -0.5 points at >= 2 of the 4 ratios", smoke);
        nl_exp_part_set(r, part, rule, ok, "%s points; %d of 4 ratios (%d seeds)", got, hits, n);
        w = snprintf(measured + used, nm - used, "; %s %d/4", part, hits);
        if (w > 0 && (size_t)w < nm - used) used += (size_t)w;
    }
    return nl_exp_parts_pass(r);
}

/* Quick: first 10000 training and 2000 test images, 3 epochs (mlp) / 2 epochs (cnn 16-32, the full mode's net), 3 seeds;
 * full: all images, 10 / 5 epochs, 3 seeds; smoke: 1000 / 300 images, 1 epoch, cnn 4-8. */
static const udfc_entry_cfg udfc_quick = {10000, 2000, 3, 2, 16, 32, 3};
static const udfc_entry_cfg udfc_full = {0, 0, 10, 5, 16, 32, 3};
static const udfc_entry_cfg udfc_smoke = {1000, 300, 1, 1, 4, 8, 3};

#define UDFC_R(net, x) net "_" x "_r50_mean," net "_" x "_r60_mean," net "_" x "_r70_mean," net "_" x "_r80_mean,"
#define UDFC_NET(net) \
    net "_base_mean," net "_base_se," net "_naive4_mean," net "_comp4_mean," net "_rand4_mean," net "_naive6_mean," net "_comp6_mean," \
    UDFC_R(net, "prune_fp") UDFC_R(net, "nm_fp") UDFC_R(net, "udfc_fp") UDFC_R(net, "rand_fp") UDFC_R(net, "prune6") \
    UDFC_R(net, "udfc6") UDFC_R(net, "rand6") UDFC_R(net, "prune4") UDFC_R(net, "udfc4") \
    net "_params," net "_macs," net "_params_r80," net "_macs_r80,"
#define UDFC_METRICS UDFC_NET("mlp") UDFC_NET("cnn") "n_train,n_test,seeds,train_seconds"

const nl_experiment nl_exp_udfc = {
    .name = "udfc",
    .paper = "Bai, Chen, Shen, Qian, Liu, Unified Data-Free Compression: Pruning and Quantization without Fine-Tuning (ICCV 2023)",
    .claim = "Compensating pruned and quantised channels in the next layer in closed form, with no data and no fine-tuning, beats "
             "plain pruning at every ratio, beats plain low-bit quantisation, and matches or beats Neuron Merging (paper: +20.54 "
             "points over the best data-free method on ImageNet ResNet-34 at 30% pruning and 6-bit weights)",
    .quick_desc = "Fashion-MNIST, first 10000 training / 2000 test images; LeNet-300-100 with BatchNorm (3 epochs) and a CNN conv16-conv32 "
                  "with BatchNorm (2 epochs), Adam 1e-3, seeds 1-3; each net pruned 50/60/70/80% per hidden layer (L1) with "
                  "full-precision, 6-bit and 4-bit weights, no data, no fine-tuning; control: random compensation coefficients",
    .full_desc = "as quick on all 60000 / 10000 images, 10 epochs (mlp) / 5 epochs (CNN), seeds 1-3",
    .smoke_desc = "first 1000 / 300 images, 1 epoch, CNN conv4-conv8, seeds 1-3",
    .quick = &udfc_quick,
    .full = &udfc_full,
    .smoke = &udfc_smoke,
    .metrics = UDFC_METRICS,
    .run = udfc_run,
    .judge = udfc_judge,
};
