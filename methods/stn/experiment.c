/* Ledger entry `stn` (schema v2, docs/repro.md): a Self-Tuning Network tuning input dropout, two hidden dropout rates
 * and an L2 coefficient online reaches a test loss no worse than the best of a 5-point grid of fixed hidden dropout
 * rates {0, 0.2, 0.4, 0.6, 0.8} (plain MLP, no input dropout, no L2), +0.01. Every run reports the test loss at its
 * epoch of lowest validation loss; the grid's best point is the one with the lowest validation loss (the grid search's
 * own choice), per seed. Part (fixed before any run):
 *   stn-vs-grid: d_i = STN test loss_i - grid-best test loss_i, paired by seed (same data split and test images),
 *                n >= 3 seeds: mean(d) + t95(n-1) SE(d) <= 0.01 (a one-sided non-inferiority bound).
 * The compute of both (CPU seconds: the STN's one run, the grid's five) is reported. Control (broken): the STN with
 * hyperparameter updates off (t and q frozen at the start values, dropout 0.05, L2 1e-5), its test loss in the STN's
 * place; the rule must reject it. */
#include "stn/stn.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define STN_MAX_SEEDS 8
#define STN_GRID 5

static const double g_grid[STN_GRID] = {0.0, 0.2, 0.4, 0.6, 0.8};
static const double g_margin = 0.01;

typedef struct stn_entry_cfg {
    int64_t n_total, n_test, hidden, epochs, warmup;
    int seeds;
} stn_entry_cfg;

static nl_status stn_run_entry(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const stn_entry_cfg *ec = config;
    const int n = ec->seeds < STN_MAX_SEEDS ? ec->seeds : STN_MAX_SEEDS;
    double stn[STN_MAX_SEEDS], ctl[STN_MAX_SEEDS], best[STN_MAX_SEEDS], oracle[STN_MAX_SEEDS], gl[STN_GRID][STN_MAX_SEEDS];
    double hp[4][STN_MAX_SEEDS], stn_acc[STN_MAX_SEEDS], best_acc[STN_MAX_SEEDS];
    double s_stn = 0, s_grid = 0, s_ctl = 0;
    int64_t ntr = 0, nva = 0, nte = 0;
    nl_status s = NL_OK;
    nl_exp_result *cr = nl_exp_control_add(out, "no-hyper-updates", "broken",
                                           "the same STN with hyperparameter (and scale) updates off: dropout 0.05, input dropout 0.05, "
                                           "L2 1e-5 frozen; same seeds, data and grid");
    if (!cr) return nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
    for (int i = 0; i < n && !s; i++) {
        nl_dataset tr, va, te;
        if ((s = nl_stn_load(ec->n_total, ec->n_test, (uint64_t)(i + 1), &tr, &va, &te))) break;
        ntr = tr.n, nva = va.n, nte = te.n;
        nl_stn_config c = nl_stn_defaults();
        c.hidden = ec->hidden, c.epochs = ec->epochs, c.warmup_epochs = ec->warmup, c.seed = (uint64_t)(i + 1);
        c.verbose = opt->verbose > 1;
        nl_stn_result r;
        if (!(s = nl_stn_run(&c, &tr, &va, &te, &r))) {
            stn[i] = r.test_loss, stn_acc[i] = r.test_acc, s_stn += r.seconds;
            for (int k = 0; k < 4; k++) hp[k][i] = r.hp[k];
        }
        if (!s) {
            c.tune = 0;
            if (!(s = nl_stn_run(&c, &tr, &va, &te, &r))) ctl[i] = r.test_loss, s_ctl += r.seconds;
            c.tune = 1;
        }
        double bv = INFINITY;
        oracle[i] = INFINITY;
        for (int g = 0; g < STN_GRID && !s; g++) {
            c.fixed = 1, c.fixed_drop = g_grid[g], c.fixed_l2 = 0;
            if ((s = nl_stn_run(&c, &tr, &va, &te, &r))) break;
            gl[g][i] = r.test_loss, s_grid += r.seconds;
            if (r.val_loss < bv) bv = r.val_loss, best[i] = r.test_loss, best_acc[i] = r.test_acc;
            if (r.test_loss < oracle[i]) oracle[i] = r.test_loss;
        }
        nl_dataset_free(&tr), nl_dataset_free(&va), nl_dataset_free(&te);
        if (!s && opt->verbose)
            nl_progress("stn seed %d: STN test loss %.4f (drop %.2f/%.2f, indrop %.2f, L2 %.2g); grid best %.4f, oracle %.4f; "
                        "no-updates %.4f", i + 1, stn[i], hp[1][i], hp[2][i], hp[0][i], hp[3][i], best[i], oracle[i], ctl[i]);
    }
    if (s) return s;
    char name[64];
    for (int i = 0; i < n; i++) {
        nl_exp_set_seed(out, "stn_test_loss", i + 1, stn[i]), nl_exp_set_seed(out, "grid_best_test_loss", i + 1, best[i]);
        nl_exp_set_seed(cr, "stn_test_loss", i + 1, ctl[i]), nl_exp_set_seed(cr, "grid_best_test_loss", i + 1, best[i]);
    }
    nl_exp_set_mean_se(out, "stn_test_loss", stn, n);
    nl_exp_set_mean_se(out, "stn_test_accuracy", stn_acc, n);
    nl_exp_set_mean_se(out, "grid_best_test_loss", best, n);
    nl_exp_set_mean_se(out, "grid_best_test_accuracy", best_acc, n);
    nl_exp_set_mean_se(out, "grid_oracle_test_loss", oracle, n);
    nl_exp_set_mean_se(out, "no_updates_test_loss", ctl, n);
    nl_exp_set_mean_se(cr, "stn_test_loss", ctl, n);
    nl_exp_set_mean_se(cr, "grid_best_test_loss", best, n);
    static const char *const hpn[4] = {"stn_input_dropout", "stn_dropout1", "stn_dropout2", "stn_l2"};
    for (int k = 0; k < 4; k++) nl_exp_set_mean_se(out, hpn[k], hp[k], n);
    for (int g = 0; g < STN_GRID; g++) {
        snprintf(name, sizeof name, "grid_drop%02d_test_loss", (int)lround(100 * g_grid[g]));
        nl_exp_set_mean_se(out, name, gl[g], n);
    }
    nl_exp_set(out, "stn_cpu_seconds", s_stn), nl_exp_set(out, "grid_cpu_seconds", s_grid), nl_exp_set(out, "no_updates_cpu_seconds", s_ctl);
    nl_exp_set(out, "n_train", (double)ntr), nl_exp_set(out, "n_valid", (double)nva), nl_exp_set(out, "n_test", (double)nte);
    nl_exp_set(out, "seeds", (double)n), nl_exp_set(cr, "seeds", (double)n);
    out->seeds = cr->seeds = n;
    snprintf(out->note, sizeof out->note,
             "%s: MLP 784-%lld-%lld-10, %lld train / %lld validation / %lld test Fashion-MNIST images, %lld epochs (%lld warm-up), "
             "%d seeds; CPU s: STN %.1f, grid (5 runs) %.1f", e->name, (long long)ec->hidden, (long long)ec->hidden, (long long)ntr,
             (long long)nva, (long long)nte, (long long)ec->epochs, (long long)ec->warmup, n, s_stn, s_grid);
    return NL_OK;
}

static int stn_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", STN_MAX_SEEDS);
    double a[STN_MAX_SEEDS], b[STN_MAX_SEEDS], md = NAN, sd = NAN; /* [n] per-seed test losses */
    nl_exp_get_seeds(r, "stn_test_loss", n, a), nl_exp_get_seeds(r, "grid_best_test_loss", n, b);
    /* an upper bound (non-inferiority), where nl_exp_paired_lower gives the lower one */
    if (n >= 2) nl_stats_paired_t(a, b, n, &md, &sd);
    double hi = n >= 2 ? md + nl_stats_t95(n - 1) * sd : NAN;
    int pass = n >= 3 && hi <= g_margin; /* NaN fails */
    char rule[256];
    snprintf(rule, sizeof rule,
             "%sSTN test loss - best-by-validation grid point's test loss (5 hidden dropout rates), paired over n >= 3 seeds: "
             "mean + t95(n-1)*SE <= %.2f", mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "", g_margin);
    nl_exp_part_set(r, "stn-vs-grid", rule, pass, "%+.4f +- %.4f (%d seeds), upper bound %+.4f", md, sd, n, hi);
    snprintf(measured, nm, "STN - grid best test loss %+.4f +- %.4f (bound %+.4f <= %.2f)", md, sd, hi, g_margin);
    return nl_exp_parts_pass(r);
}

/* Quick: first 5000 training images (4000 train / 1000 validation), 2000 test images, MLP 784-128-128-10, 12 epochs
 * (2 warm-up), seeds 1-3; full: 20000 images (16000 / 4000), all 10000 test images, 784-256-256-10, 30 epochs (3
 * warm-up); smoke: 600 images, hidden 16, 2 epochs. */
static const stn_entry_cfg stn_quick = {5000, 2000, 128, 12, 2, 3};
static const stn_entry_cfg stn_full = {20000, 10000, 256, 30, 3, 3};
static const stn_entry_cfg stn_smoke = {600, 200, 16, 2, 1, 3};

const nl_experiment nl_exp_stn = {
    .name = "stn",
    .paper = "MacKay, Vicol, Lorraine, Duvenaud, Grosse, Self-Tuning Networks: Bilevel Optimization of Hyperparameters using "
             "Structured Best-Response Functions (ICLR 2019)",
    .claim = "An STN tuning its dropout rates and L2 coefficient online, in one run, reaches a test loss no worse (+0.01) than the "
             "best of a 5-point grid of fixed dropout rates (paper, PTB LSTM: test perplexity 67.68 vs 69.29 for Bayesian "
             "optimisation; CIFAR-10 AlexNet test loss 0.576 vs 0.651 for grid search)",
    .quick_desc = "Fashion-MNIST first 5000 training images split 4000 train / 1000 validation, 2000 test images; MLP 784-128-128-10 "
                  "of hyper-layers, SGD 0.01 m 0.9, 2:1 weight/hyper steps, Adam 0.03 on the hyperparameters, 12 epochs (2 warm-up); "
                  "grid: plain MLP, hidden dropout {0,0.2,0.4,0.6,0.8}; seeds 1-3; control: hyperparameter updates off",
    .full_desc = "as quick on the first 20000 training images (16000 / 4000), all 10000 test images, MLP 784-256-256-10, 30 epochs "
                 "(3 warm-up), seeds 1-3",
    .smoke_desc = "600 images (480 / 120), 200 test images, hidden 16, 2 epochs (1 warm-up), seeds 1-3",
    .quick = &stn_quick,
    .full = &stn_full,
    .smoke = &stn_smoke,
    .metrics = "stn_test_loss_mean,stn_test_loss_se,grid_best_test_loss_mean,grid_best_test_loss_se,grid_oracle_test_loss_mean,"
               "no_updates_test_loss_mean,no_updates_test_loss_se,stn_test_accuracy_mean,grid_best_test_accuracy_mean,"
               "stn_input_dropout_mean,stn_dropout1_mean,stn_dropout2_mean,stn_l2_mean,grid_drop00_test_loss_mean,"
               "grid_drop20_test_loss_mean,grid_drop40_test_loss_mean,grid_drop60_test_loss_mean,grid_drop80_test_loss_mean,"
               "stn_cpu_seconds,grid_cpu_seconds,no_updates_cpu_seconds,n_train,n_valid,n_test,seeds",
    .run = stn_run_entry,
    .judge = stn_judge,
};
