/* Ledger entry `mdbm` (schema v2, docs/repro.md): a monotone DBM (one dense tier: 784 binary pixel groups, hidden
 * groups, a 10-way class group) on binarised Fashion-MNIST with a random 40% of each test image's pixels observed
 * and clamped. Parts, over seeds 1..n (n >= 3; each seed its own initialisation, training masks and test masks):
 *   converge-all:   every test input of every seed converges (relative residual < 1e-3 within 4 rounds of 50
 *                   Anderson iterations, alpha 0.125 halved per round): the minimum over seeds of the fraction is 1;
 *   classification: mean test accuracy >= 0.80;
 *   completion:     accuracy on the unobserved pixels minus the per-pixel marginal (majority) baseline's on the same
 *                   pixels, mean over seeds >= 0.05.
 * Control the rule must reject: the same trained weights without the monotone scaling (s_g = 1), run the same way on
 * the first n_ctrl test images. Rules and margins fixed before the first run (the issue's). */
#include "mdbm/mdbm.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MD_MAX_SEEDS 8

typedef struct md_entry_cfg {
    int64_t n_train, n_test, n_ctrl;
    int hidden_groups, hidden_k;
    int64_t rank;
    int epochs, batch;
    double lr;
    int seeds;
} md_entry_cfg;

static nl_status md_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const md_entry_cfg *ec = config;
    const int n = ec->seeds < MD_MAX_SEEDS ? ec->seeds : MD_MAX_SEEDS;
    nl_dataset tr, te;
    nl_status s = nl_dataset_load(&tr, "fashion-mnist", "train", NULL);
    if (s) return s;
    if ((s = nl_dataset_load(&te, "fashion-mnist", "test", NULL))) {
        nl_dataset_free(&tr);
        return s;
    }
    nl_exp_result *cu = nl_exp_control_add(out, "unprojected", "broken",
                                           "the same trained W without the monotone scaling (s_g = 1): I - A >= mI no "
                                           "longer guaranteed, run the same way on the first n_ctrl test images");
    if (!cu) s = nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
    double acc[MD_MAX_SEEDS], comp[MD_MAX_SEEDS], marg[MD_MAX_SEEDS], conv[MD_MAX_SEEDS], cacc[MD_MAX_SEEDS],
        ccomp[MD_MAX_SEEDS], cconv[MD_MAX_SEEDS], its[MD_MAX_SEEDS], cits[MD_MAX_SEEDS], smin[MD_MAX_SEEDS], tconv[MD_MAX_SEEDS];
    double secs = 0;
    for (int i = 0; i < n && !s; i++) {
        nl_mdbm_config c = nl_mdbm_defaults();
        c.n_train = ec->n_train, c.n_test = ec->n_test, c.n_ctrl = ec->n_ctrl;
        c.hidden_groups = ec->hidden_groups, c.hidden_k = ec->hidden_k, c.rank = ec->rank;
        c.epochs = ec->epochs, c.batch = ec->batch, c.lr = ec->lr, c.seed = (uint64_t)(i + 1), c.verbose = opt->verbose > 1;
        nl_mdbm_result r;
        if ((s = nl_mdbm_run(&c, &tr, &te, &r))) break;
        acc[i] = r.acc, comp[i] = r.completion, marg[i] = r.marginal, conv[i] = r.converged, its[i] = r.mean_iters;
        cacc[i] = r.ctrl_acc, ccomp[i] = r.ctrl_completion, cconv[i] = r.ctrl_converged, cits[i] = r.ctrl_mean_iters;
        smin[i] = r.min_s, tconv[i] = r.train_conv;
        secs += r.train_seconds + r.eval_seconds;
        nl_exp_set_seed(out, "acc", i + 1, acc[i]), nl_exp_set_seed(out, "comp", i + 1, comp[i]), nl_exp_set_seed(out, "marg", i + 1, marg[i]);
        nl_exp_set_seed(out, "conv", i + 1, conv[i]);
        nl_exp_set_seed(cu, "acc", i + 1, cacc[i]), nl_exp_set_seed(cu, "comp", i + 1, ccomp[i]), nl_exp_set_seed(cu, "marg", i + 1, marg[i]);
        nl_exp_set_seed(cu, "conv", i + 1, cconv[i]);
        if (opt->verbose)
            nl_progress("mdbm seed %d: converged %.4f, accuracy %.4f, completion %.4f vs marginal %.4f; unprojected: converged "
                        "%.4f, accuracy %.4f; min s_g %.3g (%.1f s)", i + 1, conv[i], acc[i], comp[i], marg[i], cconv[i],
                        cacc[i], smin[i], secs);
    }
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    if (s) return s;
    nl_exp_set_mean_se(out, "acc", acc, n), nl_exp_set_mean_se(out, "comp", comp, n), nl_exp_set_mean_se(out, "marg", marg, n);
    nl_exp_set_mean_se(out, "conv", conv, n), nl_exp_set_mean_se(out, "iters", its, n);
    nl_exp_set_mean_se(out, "min_s", smin, n), nl_exp_set_mean_se(out, "train_conv", tconv, n);
    nl_exp_set_mean_se(cu, "acc", cacc, n), nl_exp_set_mean_se(cu, "comp", ccomp, n), nl_exp_set_mean_se(cu, "marg", marg, n);
    nl_exp_set_mean_se(cu, "conv", cconv, n), nl_exp_set_mean_se(cu, "iters", cits, n);
    nl_exp_result *rs[2] = {out, cu};
    for (int k = 0; k < 2; k++) nl_exp_set(rs[k], "seeds", n), rs[k]->seeds = n;
    nl_exp_set(out, "seconds", secs);
    nl_exp_set(out, "n_train", (double)ec->n_train), nl_exp_set(out, "n_test", (double)ec->n_test);
    nl_exp_set(out, "n_ctrl", (double)ec->n_ctrl);
    snprintf(out->note, sizeof out->note,
             "%s: %lld train / %lld test images (control on %lld), %d hidden groups of %d, rank %lld, %d epochs, batch %d, "
             "Adam %.0e, %d seeds, %d threads", e->name, (long long)ec->n_train, (long long)ec->n_test, (long long)ec->n_ctrl,
             ec->hidden_groups, ec->hidden_k, (long long)ec->rank, ec->epochs, ec->batch, ec->lr, n, opt->threads);
    return NL_OK;
}

static int md_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", MD_MAX_SEEDS);
    double acc[MD_MAX_SEEDS], d[MD_MAX_SEEDS], minconv = n ? 1 : NAN;
    char name[64];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "acc_seed%d", i + 1);
        acc[i] = nl_exp_get(r, name, NULL);
        snprintf(name, sizeof name, "comp_seed%d", i + 1);
        d[i] = nl_exp_get(r, name, NULL);
        snprintf(name, sizeof name, "marg_seed%d", i + 1);
        d[i] -= nl_exp_get(r, name, NULL);
        snprintf(name, sizeof name, "conv_seed%d", i + 1);
        const double cv = nl_exp_get(r, name, NULL);
        if (!(cv >= minconv)) minconv = cv;
    }
    double am = NAN, ase = NAN, dm = NAN, dse = NAN;
    if (n >= 1) nl_stats_mean_se(acc, n, &am, &ase), nl_stats_mean_se(d, n, &dm, &dse);
    const char *pre = mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "";
    const int p1 = n >= 3 && minconv >= 1.0, p2 = n >= 3 && am >= 0.80, p3 = n >= 3 && dm >= 0.05;
    char rule[256];
    snprintf(rule, sizeof rule, "%severy test input converges (residual < 1e-3), every seed of n >= 3: min fraction = 1", pre);
    nl_exp_part_set(r, "converge-all", rule, p1, "min fraction converged over %d seeds %.4f", n, minconv);
    snprintf(rule, sizeof rule, "%stest accuracy with 40%% of pixels observed, mean over n >= 3 seeds >= 0.80", pre);
    nl_exp_part_set(r, "classification", rule, p2, "%.4f +- %.4f (%d seeds)", am, ase, n);
    snprintf(rule, sizeof rule, "%sunobserved-pixel accuracy minus the per-pixel marginal's, mean over n >= 3 seeds >= 0.05", pre);
    nl_exp_part_set(r, "completion", rule, p3, "%+.4f +- %.4f (%d seeds)", dm, dse, n);
    snprintf(measured, nm, "converged min %.4f; accuracy %.4f +- %.4f; completion - marginal %+.4f +- %.4f", minconv, am, ase,
             dm, dse);
    return nl_exp_parts_pass(r);
}

/* quick: 2000 training images, 3 epochs, 16 hidden groups of 4, rank 64, 1000 test images, the control on 200;
 * full: 10000 images, 5 epochs, 32 groups of 4, rank 128, the whole test set, the control on 1000; smoke: tiny. */
static const md_entry_cfg md_quick = {2000, 1000, 200, 16, 4, 64, 3, 50, 5e-3, 3};
static const md_entry_cfg md_full = {10000, 10000, 1000, 32, 4, 128, 5, 50, 5e-3, 3};
static const md_entry_cfg md_smoke = {200, 100, 50, 4, 4, 16, 1, 50, 5e-3, 3};

#define MD_METRICS                                                                                                     \
    "acc_mean,acc_se,comp_mean,comp_se,marg_mean,marg_se,conv_mean,conv_se,iters_mean,min_s_mean,train_conv_mean,"     \
    "seconds,n_train,n_test,n_ctrl,seeds"

const nl_experiment nl_exp_mdbm = {
    .name = "mdbm",
    .paper = "Feng, Winston & Kolter, Monotone deep Boltzmann machines (TMLR 2023; arXiv 2307.07595)",
    .claim = "With the monotone parametrisation, mean-field inference has a unique fixed point that damped forward-backward "
             "splitting finds for every input; on binarised Fashion-MNIST with 40% of pixels observed one model both "
             "classifies (>= 80%) and completes the unobserved pixels (>= 5 points over the per-pixel marginal); the same "
             "weights without the projection fail to converge on some inputs.",
    .quick_desc = "one dense tier: 784 binary pixel groups + 16 hidden groups of 4 + a 10-way class group, A = blkdiag(V^T V) - "
                  "V^T V, V = W diag(sqrt s_g), W 64 x 1722; first 2000 training images, 3 epochs, batch 50, Adam 5e-3, "
                  "readout logits tau_g (A q* + b) (tau learnable, from 1), loss 0.5 unobserved-pixel CE + 0.5 class CE; 1000 test images, control on 200; seeds 1-3",
    .full_desc = "as quick with 10000 training images, 5 epochs, 32 hidden groups of 4, rank 128, the 10000 test images, "
                 "the control on 1000; seeds 1-3",
    .smoke_desc = "200 training images, 1 epoch, 4 hidden groups of 4, rank 16, 100 test images, control on 50, seeds 1-3",
    .quick = &md_quick,
    .full = &md_full,
    .smoke = &md_smoke,
    .metrics = MD_METRICS,
    .run = md_run,
    .judge = md_judge,
};
