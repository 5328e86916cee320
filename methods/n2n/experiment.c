/* Ledger entry `n2n` (schema v2, docs/repro.md): N2N on Fashion-MNIST (14x14) over n >= 3 seeds (seed i: teacher,
 * policies, students). Parts (rules fixed before the first run):
 *   compression    every seed's best child has >= 5x fewer parameters than the teacher, and its test accuracy minus
 *                  the teacher's, paired over the seeds, has the one-sided 95% lower bound mean - t95(n-1) SE >= -2 points
 *   reward-rises   per seed and stage (removal, shrinkage; stages of >= 3 epochs), the mean reward of the last third of
 *                  the policy epochs minus that of the first third, averaged over the stages; over the seeds lo > 0
 *   beats-random   test accuracy of the best child minus that of a random-removal child with the same parameter count
 *                  (each removable layer dropped with probability 1/2, every width scaled by one factor to match),
 *                  both distilled alike; paired over the seeds lo > 0
 * Control (broken): the same search with the policies never updated (frozen at their random initialisation), same
 * seeds; its numbers in place of the learned ones; the rule must reject it. */
#include "n2n/n2n.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define N2N_MAX_SEEDS 8

typedef struct n2n_entry_cfg {
    int removal_epochs, shrink_epochs, rollouts;
    int64_t n_train, n_distil, n_val, n_test, teacher_epochs, final_epochs;
    int seeds;
} n2n_entry_cfg;

/* mean reward of epochs [lo, hi) */
static double span_mean(const double *m, int lo, int hi) {
    double s = 0;
    for (int e = lo; e < hi; e++) s += m[e];
    return hi > lo ? s / (hi - lo) : NAN;
}

/* the per-stage rise (last third - first third), averaged over stages of >= 3 epochs */
static double reward_rise(const nl_n2n_result *r, int re, int se) {
    double sum = 0;
    int k = 0, len[2] = {re, se}, off[2] = {0, re};
    for (int st = 0; st < 2; st++) {
        int n = len[st], t = n / 3;
        if (n < 3) continue;
        sum += span_mean(r->mean_reward + off[st], n - t, n) - span_mean(r->mean_reward + off[st], 0, t);
        k++;
    }
    return k ? sum / k : NAN;
}

static void put(nl_exp_result *r, const nl_n2n_result *p, int seed, int re, int se) {
    nl_exp_set_seed(r, "teacher_acc", seed, p->teacher_acc);
    nl_exp_set_seed(r, "best_acc", seed, p->best_acc);
    nl_exp_set_seed(r, "random_acc", seed, p->random_acc);
    nl_exp_set_seed(r, "compression", seed, (double)p->teacher_params / (double)p->best_params);
    nl_exp_set_seed(r, "random_compression", seed, (double)p->teacher_params / (double)p->random_params);
    nl_exp_set_seed(r, "best_reward", seed, p->best_reward);
    nl_exp_set_seed(r, "reward_rise", seed, reward_rise(p, re, se));
    nl_exp_set_seed(r, "zero", seed, 0.0);
}

static const char *const g_keys[7] = {"teacher_acc", "best_acc", "random_acc", "compression", "random_compression", "best_reward", "reward_rise"};

static nl_status n2n_run_entry(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const n2n_entry_cfg *ec = config;
    int n = ec->seeds < N2N_MAX_SEEDS ? ec->seeds : N2N_MAX_SEEDS;
    nl_n2n_config cfg = nl_n2n_defaults();
    cfg.removal_epochs = ec->removal_epochs, cfg.shrink_epochs = ec->shrink_epochs, cfg.rollouts = ec->rollouts;
    cfg.n_train = ec->n_train, cfg.n_distil = ec->n_distil, cfg.n_val = ec->n_val, cfg.n_test = ec->n_test;
    cfg.teacher_epochs = ec->teacher_epochs, cfg.final_epochs = ec->final_epochs;
    cfg.verbose = opt->verbose > 1;
    nl_n2n_data d;
    nl_status s = nl_n2n_data_load(&cfg, &d);
    if (s) return s;
    nl_exp_result *ctl = nl_exp_control_add(out, "frozen-policy", "broken",
                                            "the same search with both policies never updated (their random initialisation), same seeds, "
                                            "teacher, students and random-removal baseline");
    if (!ctl) s = nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
    nl_curve *cv = s ? NULL : nl_exp_curve(out, "reward", "learned, mean over seeds", "policy epoch", "mean reward");
    nl_curve *cf = s ? NULL : nl_exp_curve(out, "reward", "frozen policy, mean over seeds", "policy epoch", "mean reward");
    double secs = 0, mr[2][128] = {{0}};
    int ne = ec->removal_epochs + ec->shrink_epochs;
    for (int i = 0; i < n && !s; i++) {
        nl_n2n_result p[2];
        cfg.seed = (uint64_t)(i + 1);
        if ((s = nl_n2n_run(&cfg, &d, 1, p))) break;
        secs += p[0].seconds;
        for (int fz = 0; fz < 2; fz++) {
            put(fz ? ctl : out, &p[fz], i + 1, ec->removal_epochs, ec->shrink_epochs);
            for (int k = 0; k < ne; k++) mr[fz][k] += p[fz].mean_reward[k] / n;
            if (opt->verbose)
                nl_progress("n2n seed %d%s: teacher %.2f%% (%lld params); best %.2f%% at %.2fx (reward %.3f); random %.2f%% at %.2fx; "
                            "reward rise %+.3f",
                            i + 1, fz ? " (frozen policy)" : "", 100 * p[fz].teacher_acc, (long long)p[fz].teacher_params, 100 * p[fz].best_acc,
                            (double)p[fz].teacher_params / (double)p[fz].best_params, p[fz].best_reward, 100 * p[fz].random_acc,
                            (double)p[fz].teacher_params / (double)p[fz].random_params, reward_rise(&p[fz], ec->removal_epochs, ec->shrink_epochs));
        }
    }
    nl_n2n_data_free(&d);
    if (s) return s;
    for (int k = 0; k < ne; k++) {
        if (cv) nl_curve_add(cv, k + 1, mr[0][k]);
        if (cf) nl_curve_add(cf, k + 1, mr[1][k]);
    }
    for (int k = 0; k < 7 && !s; k++) {
        s = nl_exp_set_seed_mean_se(out, g_keys[k], n);
        if (!s) s = nl_exp_set_seed_mean_se(ctl, g_keys[k], n);
    }
    nl_exp_set(out, "seeds", (double)n);
    nl_exp_set(ctl, "seeds", (double)n);
    nl_exp_set(out, "search_seconds", secs);
    out->seeds = ctl->seeds = n;
    snprintf(out->note, sizeof out->note,
             "%s: 14x14 Fashion-MNIST, teacher 8 conv blocks on %lld images, %d removal + %d shrinkage policy epochs x %d rollouts, "
             "children distilled on %lld images, %d seeds (learned and frozen policy), %d thread(s)",
             e->name, (long long)ec->n_train, ec->removal_epochs, ec->shrink_epochs, ec->rollouts, (long long)ec->n_distil, n, opt->threads);
    return s;
}

static int n2n_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", N2N_MAX_SEEDS);
    const char *pre = mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "";
    double comp[N2N_MAX_SEEDS], cmin = INFINITY;
    nl_exp_get_seeds(r, "compression", n, comp);
    for (int i = 0; i < n; i++) cmin = comp[i] < cmin ? comp[i] : cmin; /* NaN: the comparison below fails */
    double md, sd, lo = nl_exp_paired_lower(r, "best_acc", "teacher_acc", n, &md, &sd);
    int pass = n >= 3 && cmin >= 5.0 && lo >= -0.02;
    char rule[320];
    snprintf(rule, sizeof rule,
             "%severy seed's best child >= 5x fewer parameters than the teacher, and its test accuracy - the teacher's paired over n >= 3 "
             "seeds: mean - t95(n-1)*SE >= -2 points",
             pre);
    nl_exp_part_set(r, "compression", rule, pass, "min %.2fx; accuracy %+.2f +- %.2f points (%d seeds), bound %+.2f", cmin, 100 * md,
                    100 * sd, n, 100 * lo);
    size_t used = 0;
    int w = snprintf(measured, nm, "compression min %.2fx, acc %+.2f (lo %+.2f)", cmin, 100 * md, 100 * lo);
    if (w > 0 && (size_t)w < nm) used = (size_t)w;
    double mr, sr, lr = nl_exp_paired_lower(r, "reward_rise", "zero", n, &mr, &sr);
    snprintf(rule, sizeof rule,
             "%smean reward of the last third of each stage's policy epochs - the first third, averaged over the stages, over n >= 3 seeds: "
             "mean - t95(n-1)*SE > 0",
             pre);
    nl_exp_part_set(r, "reward-rises", rule, n >= 3 && lr > 0, "%+.4f +- %.4f (%d seeds), bound %+.4f", mr, sr, n, lr);
    w = snprintf(measured + used, nm - used, "; rise %+.4f (lo %+.4f)", mr, lr);
    if (w > 0 && (size_t)w < nm - used) used += (size_t)w;
    double mb, sb, lb = nl_exp_paired_lower(r, "best_acc", "random_acc", n, &mb, &sb);
    snprintf(rule, sizeof rule,
             "%stest accuracy of the best child - a random-removal child of the same parameter count, paired over n >= 3 seeds: "
             "mean - t95(n-1)*SE > 0",
             pre);
    nl_exp_part_set(r, "beats-random", rule, n >= 3 && lb > 0, "%+.2f +- %.2f points (%d seeds), bound %+.2f", 100 * mb, 100 * sb, n, 100 * lb);
    w = snprintf(measured + used, nm - used, "; vs random %+.2f (lo %+.2f)", 100 * mb, 100 * lb);
    (void)w;
    return nl_exp_parts_pass(r);
}

/* Quick: teacher on 4000 images (3 epochs), 10 removal + 5 shrinkage epochs x 5 rollouts, children distilled 1 epoch on
 * 500 images and scored on 500 held-out images, final children 3 epochs on the 4000, test on 2000, 3 seeds. Full: the paper's demo
 * policy scale (30 removal epochs x 5 rollouts) plus 20 shrinkage epochs, children distilled 1 epoch on 5000 images (the demo:
 * 10000), teacher and final children 6 epochs on 20000 images, all 10000 test images.
 * Smoke: tiny. */
static const n2n_entry_cfg n2n_quick = {10, 5, 5, 4000, 500, 500, 2000, 3, 3, 3};
static const n2n_entry_cfg n2n_full = {30, 20, 5, 20000, 5000, 2000, 10000, 6, 6, 3};
static const n2n_entry_cfg n2n_smoke = {3, 3, 2, 300, 100, 100, 100, 1, 1, 3};

#define N2N_K(x) x "_mean," x "_se,"
#define N2N_METRICS \
    N2N_K("teacher_acc") N2N_K("best_acc") N2N_K("random_acc") N2N_K("compression") N2N_K("random_compression") \
    N2N_K("best_reward") N2N_K("reward_rise") "seeds,search_seconds"

const nl_experiment nl_exp_n2n = {
    .name = "n2n",
    .paper = "Ashok, Rhinehart, Beainy, Kitani, N2N Learning: Network to Network Compression via Policy Gradient Reinforcement Learning (ICLR 2018)",
    .claim = "Policy-gradient layer removal and shrinkage with distilled students compresses a VGG-style teacher >= 5x in parameters "
             "with <= 2 points accuracy loss; the mean reward rises over policy epochs; the learned policy beats random layer removal at "
             "the same compression (paper: ResNet-34 on CIFAR-10 compressed ~10x at similar accuracy)",
    .quick_desc = "Fashion-MNIST 14x14, teacher conv 8-8-8p-16-16-16p-32-32, fc 32 (3 epochs on 4000 images); 10 removal + 5 shrinkage "
                  "policy epochs x 5 rollouts, every child distilled 1 epoch on 500 images and scored on 500 held-out images; best and "
                  "random-removal children distilled 3 epochs on the 4000; test on 2000; seeds 1-3; control: frozen policies",
    .full_desc = "as quick with 30 removal + 20 shrinkage epochs, teacher 6 epochs on 20000 images, children distilled on 5000 images and "
                 "scored on 2000, final children 6 epochs, all 10000 test images, seeds 1-3",
    .smoke_desc = "3 + 3 policy epochs x 2 rollouts, 300 training images, seeds 1-3",
    .quick = &n2n_quick,
    .full = &n2n_full,
    .smoke = &n2n_smoke,
    .metrics = N2N_METRICS,
    .run = n2n_run_entry,
    .judge = n2n_judge,
};
