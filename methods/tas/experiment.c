/* Ledger entry `tas` (schema v2, docs/repro.md): TAS on a ResNet-20-style CNN on Fashion-MNIST at a 50% FLOP target.
 * Per seed i = 1..n (each seed draws its own training subset, initialisations, Gumbel noise and batch order):
 *   teacher: the unpruned ResNet trained with cross-entropy on the subset;
 *   TAS: search on the subset (two halves: weights / architecture), then the argmax shape trained from scratch with KD
 *        (alpha 0.9, T 4) from the teacher's logits;
 *   uniform: every width scaled by one factor r, r chosen so that its FLOPs are closest to the TAS shape's, + KD;
 *   random (the control): a random shape of the search space within 2% of the TAS shape's FLOPs, + KD.
 * Parts (fixed before the first run):
 *   flops:         every seed's searched shape has |F / F_full - 0.5| <= 0.05 (the tolerance unit of TAS: 5% of the
 *                  unpruned FLOPs);
 *   matched-flops: every seed's uniform shape is within 5% of the TAS shape's FLOPs (the comparison is at equal cost);
 *   beats-uniform: acc(TAS + KD) - acc(uniform + KD) paired over n >= 3 seeds: mean - t95(n-1) * SE >= 0 (the
 *                  issue asks for "mean >= 0"; the lead tightened it to the house's paired bound before the
 *                  runs now in the README, because an equal method passes "mean >= 0" half the time).
 * Control the rule must reject: the random shape with the same FLOPs + KD standing in for TAS. */
#include "tas/tas.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAS_MAX_SEEDS 8

typedef struct tas_entry_cfg {
    int blocks, width, pool;   /* the unpruned ResNet: blocks per stage, stage-1 width, input pooling */
    int64_t n_train, n_test;   /* training subset per seed, test images (the test split's first n_test) */
    int64_t teacher_epochs, search_epochs, kd_epochs, batch;
    int64_t record_every;      /* search: a candidate shape every this many steps */
    int seeds;
} tas_entry_cfg;

typedef struct seed_out {
    double acc_teacher, acc_tas, acc_uni, acc_rand;
    double r_tas, r_uni, r_rand; /* FLOPs / full FLOPs */
    double search_s;
    double cand, cand_in;      /* candidate shapes recorded, of which in the FLOP band */
    char shape[256];
} seed_out;

static nl_status one_seed(const tas_entry_cfg *ec, const nl_dataset *full_train, const nl_dataset *test, int seed, int verbose,
                          seed_out *o) {
    nl_status s;
    nl_dataset sub, wa, wb;
    memset(&sub, 0, sizeof sub);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)full_train->n); /* (n) the seed's draw of training rows */
    if (!perm) return nl_set_error(NL_ENOMEM, "tas: out of memory");
    nl_rng pr;
    nl_rng_init(&pr, (uint64_t)seed, 0x7A5D47AULL << 20);
    nl_rng_permutation(&pr, perm, full_train->n);
    s = nl_dataset_subset(full_train, perm, ec->n_train < full_train->n ? ec->n_train : full_train->n, &sub);
    free(perm);
    if (s) return s;
    if ((s = nl_dataset_split(&sub, sub.n / 2, (uint64_t)seed * 104729u, &wb, &wa))) {
        nl_dataset_free(&sub);
        return s;
    }
    nl_resnet_config full = nl_resnet_default_config(ec->blocks, ec->width, ec->pool);
    nl_kd_config kt = nl_kd_defaults();
    kt.batch = ec->batch, kt.seed = (uint64_t)seed;
    nl_resnet teacher;
    float *logits = NULL;
    memset(&teacher, 0, sizeof teacher);
    if (!(s = nl_resnet_init(&teacher, &full, (uint64_t)seed))) {
        kt.epochs = ec->teacher_epochs;
        s = nl_resnet_fit(&teacher, &sub, &kt, NULL);
    }
    if (!s) s = nl_resnet_accuracy(&teacher, test, &o->acc_teacher);
    if (!s && !(logits = malloc(sizeof(float) * (size_t)(sub.n * sub.n_classes)))) s = nl_set_error(NL_ENOMEM, "tas: out of memory");
    if (!s) s = nl_kd_logits(nl_resnet_forward, &teacher, &sub, 256, logits);
    nl_tas_result tr;
    if (!s) {
        nl_tas_config tc = nl_tas_defaults();
        tc.net = full, tc.epochs = ec->search_epochs, tc.batch = ec->batch, tc.seed = (uint64_t)seed, tc.verbose = verbose > 1;
        tc.record_every = ec->record_every;
        s = nl_tas_search(&tc, &wa, &wb, &tr);
    }
    const double ff = nl_resnet_flops(&full);
    nl_resnet_config shapes[3];
    if (!s) {
        shapes[0] = tr.shape;
        shapes[1] = nl_tas_uniform_shape(&full, tr.flops);
        s = nl_tas_random_shape(&full, tr.flops, 0.02, (uint64_t)seed, &shapes[2]);
        o->search_s = tr.seconds;
        o->cand = (double)tr.candidates, o->cand_in = (double)tr.candidates_in_band;
        nl_resnet_describe(&tr.shape, o->shape, sizeof o->shape);
    }
    double *acc[3] = {&o->acc_tas, &o->acc_uni, &o->acc_rand}, *rat[3] = {&o->r_tas, &o->r_uni, &o->r_rand};
    nl_kd_teacher t = {logits, NULL, NULL};
    for (int k = 0; k < 3 && !s; k++) {
        nl_resnet st;
        if ((s = nl_resnet_init(&st, &shapes[k], (uint64_t)seed * 31u + (uint64_t)k))) break;
        nl_kd_config kd = kt;
        kd.epochs = ec->kd_epochs, kd.alpha = 0.9, kd.T = 4.0;
        if (!(s = nl_resnet_distil(&st, &sub, &t, &kd, NULL))) s = nl_resnet_accuracy(&st, test, acc[k]);
        *rat[k] = nl_resnet_flops(&shapes[k]) / ff;
        nl_resnet_free(&st);
    }
    free(logits);
    nl_resnet_free(&teacher);
    nl_dataset_free(&sub);
    nl_dataset_free(&wa);
    nl_dataset_free(&wb);
    return s;
}

static nl_status tas_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const tas_entry_cfg *ec = config;
    const int n = ec->seeds < TAS_MAX_SEEDS ? ec->seeds : TAS_MAX_SEEDS;
    nl_dataset tr, te_full, te;
    nl_status s = nl_dataset_load(&tr, "fashion-mnist", "train", NULL);
    if (s) return s;
    if ((s = nl_dataset_load(&te_full, "fashion-mnist", "test", NULL))) {
        nl_dataset_free(&tr);
        return s;
    }
    int64_t nt = ec->n_test < te_full.n ? ec->n_test : te_full.n;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)nt);
    if (!idx) s = nl_set_error(NL_ENOMEM, "tas: out of memory");
    for (int64_t i = 0; !s && i < nt; i++) idx[i] = i;
    if (!s) s = nl_dataset_subset(&te_full, idx, nt, &te);
    free(idx);
    nl_dataset_free(&te_full);
    if (s) {
        nl_dataset_free(&tr);
        return s;
    }
    nl_exp_result *cr = nl_exp_control_add(out, "random-shape", "baseline",
                                           "a random shape of the search space (uniform width choice per conv, uniform depth per "
                                           "stage) within 2% of the TAS shape's FLOPs, trained with the same KD, standing in for TAS");
    if (!cr) s = nl_set_error(NL_ENOMEM, "tas: out of memory");
    double search_s = 0;
    for (int i = 0; i < n && !s; i++) {
        seed_out o;
        memset(&o, 0, sizeof o);
        if ((s = one_seed(ec, &tr, &te, i + 1, opt->verbose, &o))) break;
        search_s += o.search_s;
        nl_exp_set_seed(out, "acc_teacher", i + 1, o.acc_teacher);
        nl_exp_set_seed(out, "acc_tas", i + 1, o.acc_tas);
        nl_exp_set_seed(out, "acc_uniform", i + 1, o.acc_uni);
        nl_exp_set_seed(out, "acc_random", i + 1, o.acc_rand);
        nl_exp_set_seed(out, "flops_tas", i + 1, o.r_tas);
        nl_exp_set_seed(out, "flops_uniform", i + 1, o.r_uni);
        nl_exp_set_seed(out, "flops_random", i + 1, o.r_rand);
        nl_exp_set_seed(out, "candidates", i + 1, o.cand);
        nl_exp_set_seed(out, "candidates_in_band", i + 1, o.cand_in);
        /* the control: the random shape in TAS's place */
        nl_exp_set_seed(cr, "acc_tas", i + 1, o.acc_rand);
        nl_exp_set_seed(cr, "acc_uniform", i + 1, o.acc_uni);
        nl_exp_set_seed(cr, "acc_teacher", i + 1, o.acc_teacher);
        nl_exp_set_seed(cr, "flops_tas", i + 1, o.r_rand);
        nl_exp_set_seed(cr, "flops_uniform", i + 1, o.r_uni);
        if (i == 0) snprintf(out->note, sizeof out->note, "seed 1 searched shape: %.200s", o.shape);
        if (opt->verbose)
            nl_progress("tas seed %d: teacher %.4f; TAS+KD %.4f (FLOPs %.3f of full), uniform+KD %.4f (%.3f), random+KD %.4f "
                        "(%.3f); search %.1f s; shape %s", i + 1, o.acc_teacher, o.acc_tas, o.r_tas, o.acc_uni, o.r_uni,
                        o.acc_rand, o.r_rand, o.search_s, o.shape);
    }
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    if (s) return s;
    const char *keys[] = {"acc_teacher", "acc_tas", "acc_uniform", "acc_random", "flops_tas", "flops_uniform", "flops_random"};
    for (int k = 0; k < 7; k++) nl_exp_set_seed_mean_se(out, keys[k], n);
    for (int k = 0; k < 3; k++) nl_exp_set_seed_mean_se(cr, keys[k], n);
    nl_exp_set_seed_mean_se(cr, "flops_tas", n);
    nl_exp_set_seed_mean_se(cr, "flops_uniform", n);
    nl_exp_result *rs[2] = {out, cr};
    for (int k = 0; k < 2; k++) {
        nl_exp_set(rs[k], "seeds", n);
        rs[k]->seeds = n;
    }
    nl_resnet_config full = nl_resnet_default_config(ec->blocks, ec->width, ec->pool);
    nl_exp_set(out, "flops_full", nl_resnet_flops(&full));
    nl_exp_set(out, "params_full", (double)nl_resnet_param_count(&full));
    nl_exp_set(out, "search_seconds", search_s);
    (void)e;
    return NL_OK;
}

static int tas_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", TAS_MAX_SEEDS);
    double ft[TAS_MAX_SEEDS], fu[TAS_MAX_SEEDS];
    nl_exp_get_seeds(r, "flops_tas", n, ft);
    nl_exp_get_seeds(r, "flops_uniform", n, fu);
    double worst = 0, worst_m = 0, md, sd;
    int ok_f = n >= 3, ok_m = n >= 3;
    for (int i = 0; i < n; i++) {
        double dv = fabs(ft[i] - 0.5), dm = fabs(fu[i] / ft[i] - 1);
        if (!(dv <= 0.05)) ok_f = 0;
        if (!(dm <= 0.05)) ok_m = 0;
        if (!(dv <= worst)) worst = dv;
        if (!(dm <= worst_m)) worst_m = dm;
    }
    const double lo = nl_exp_paired_lower(r, "acc_tas", "acc_uniform", n, &md, &sd);
    const int ok_a = n >= 3 && lo >= 0; /* NaN fails */
    const char *pre = mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "";
    char rule[256];
    snprintf(rule, sizeof rule, "%severy seed (n >= 3): |FLOPs(searched) / FLOPs(full) - 0.5| <= 0.05", pre);
    nl_exp_part_set(r, "flops", rule, ok_f, "worst |ratio - 0.5| = %.3f over %d seeds (mean ratio %.3f)", worst, n,
                    nl_exp_get(r, "flops_tas_mean", NULL));
    snprintf(rule, sizeof rule, "%severy seed: |FLOPs(uniform) / FLOPs(searched) - 1| <= 0.05", pre);
    nl_exp_part_set(r, "matched-flops", rule, ok_m, "worst %.3f", worst_m);
    snprintf(rule, sizeof rule, "%sacc(searched + KD) - acc(uniform + KD) paired over n >= 3 seeds: mean - t95(n-1)*SE >= 0",
             pre);
    nl_exp_part_set(r, "beats-uniform", rule, ok_a, "%+.2f +- %.2f points (%d seeds), bound %+.2f", 100 * md, 100 * sd, n,
                    100 * lo);
    snprintf(measured, nm, "FLOPs %.3f of full; acc %.2f%% vs uniform %.2f%% (%+.2f +- %.2f points), teacher %.2f%%",
             nl_exp_get(r, "flops_tas_mean", NULL), 100 * nl_exp_get(r, "acc_tas_mean", NULL),
             100 * nl_exp_get(r, "acc_uniform_mean", NULL), 100 * md, 100 * sd, 100 * nl_exp_get(r, "acc_teacher_mean", NULL));
    return nl_exp_parts_pass(r);
}

static const tas_entry_cfg tas_quick = {3, 6, 2, 1600, 1000, 4, 4, 4, 64, 4, 3};
static const tas_entry_cfg tas_full = {3, 8, 2, 10000, 10000, 10, 8, 10, 64, 20, 3};
static const tas_entry_cfg tas_smoke = {1, 4, 2, 300, 300, 1, 1, 1, 50, 1, 3};

const nl_experiment nl_exp_tas = {
    .name = "tas",
    .paper = "Dong & Yang, Network Pruning via Transformable Architecture Search (NeurIPS 2019)",
    .claim = "Searching widths and depths with TAS (Gumbel-softmax width/depth distributions, channel-wise interpolation, "
             "FLOP loss) to 50% of a ResNet's FLOPs and distilling the searched shape from the unpruned net is at least as "
             "accurate as uniform-width pruning + KD at the same FLOPs (paper: ResNet-56 CIFAR-10 93.69% at 52.7% FLOPs pruned).",
    .quick_desc = "ResNet-20 layout (3 blocks/stage), widths 6/12/24 on 14x14 pooled Fashion-MNIST; 1600 training images per seed (800 "
                  "weights / 800 architecture for the search), 1000 test images; teacher 4 epochs, search 4 epochs, KD 4 "
                  "epochs (alpha 0.9, T 4), batch 64, a candidate shape every 4 search steps, seeds 1-3; control: a random shape at the same FLOPs + KD",
    .full_desc = "ResNet-20 layout (3 blocks/stage), widths 8/16/32 on 14x14 pooled Fashion-MNIST; 10000 training images per "
                 "seed, the 10000 test images; teacher 10, search 8, KD 10 epochs, batch 64, a candidate every 20 search steps, "
                 "seeds 1-3",
    .smoke_desc = "1 block/stage, widths 4/8/16, 300 images, 1 epoch each, seeds 1-3",
    .quick = &tas_quick,
    .full = &tas_full,
    .smoke = &tas_smoke,
    .metrics = "acc_tas_mean,acc_tas_se,acc_uniform_mean,acc_uniform_se,acc_random_mean,acc_random_se,acc_teacher_mean,"
               "flops_tas_mean,flops_uniform_mean,flops_random_mean,flops_full,params_full,search_seconds,seeds",
    .run = tas_run,
    .judge = tas_judge,
};
