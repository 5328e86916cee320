/* Ledger entry `wide-deep`: the Dirichlet-on-the-sphere experiment of "Wide and Deep Neural Networks Achieve
 * Optimality for Classification" and the taxonomy pass rule (methods/wide_deep/README.md). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "nnlab/ledger.h"
#include "wd_internal.h"

/* The configurations are built by nl_wide_deep_config_quick/full; the entry only carries which one. */
static const int wd_quick_tag = 0, wd_full_tag = 1;

static void wd_baseline_line(nl_exp_result *out, const char *plot, const char *name, double x0, double x1, double y) {
    nl_curve *c = nl_exp_curve(out, plot, name, "depth L", "test error (%)");
    if (!c) return;
    nl_curve_add(c, x0, 100 * y);
    nl_curve_add(c, x1, 100 * y);
}

static nl_status wd_ledger_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    (void)e;
    nl_wide_deep_config c;
    if (*(const int *)config) nl_wide_deep_config_full(&c);
    else nl_wide_deep_config_quick(&c);
    c.verbose = opt->verbose;
    nl_wide_deep_result r;
    nl_status st = nl_wide_deep_run(&c, NULL, &r);
    if (st) return st;
    nl_exp_set(out, "bayes_err", r.err_bayes);
    nl_exp_set(out, "nn1_err", r.err_1nn);
    nl_exp_set(out, "devroye_err", r.err_devroye);
    nl_exp_set(out, "majority_err", r.err_majority);
    nl_exp_set(out, "hermite_agree_1nn_min", r.hermite_agree_1nn_min);
    nl_exp_set(out, "relu_agree_majority", r.relu_agree_maj_final);
    nl_exp_set(out, "relu_depth", (double)r.relu_depth);
    nl_exp_set(out, "relu_ybar", r.relu_ybar);
    nl_exp_set(out, "relu_kappa", r.relu_kappa);
    nl_exp_set(out, "relu_err", r.relu_n_depths ? r.relu_err[r.relu_n_depths - 1] : NAN);
    nl_exp_set(out, "relu_majority_err", r.relu_maj_err);
    nl_exp_set(out, "opt_nngp_excess_absmax", r.opt_nngp_excess_absmax);
    nl_exp_set(out, "opt_ntk_excess_absmax", r.opt_ntk_excess_absmax);
    nl_exp_set(out, "opt_nngp_agree_devroye_min", r.opt_nngp_agree_dev_min);
    nl_exp_set(out, "bayes_margin", r.bayes_margin);
    nl_exp_set(out, "dim", (double)c.dim);
    nl_exp_set(out, "n_train", (double)c.n_train);
    nl_exp_set(out, "n_test", (double)c.n_test);
    nl_exp_set(out, "threads", (double)opt->threads);
    /* per dual, kernel and depth: test error and agreement with 1-NN */
    static const char *const kname[2] = {"nngp", "ntk"};
    for (int d = 0; d < r.n_duals; d++)
        for (int k = 0; k < 2; k++)
            for (int l = 0; l < c.n_depths; l++) {
                char name[64];
                snprintf(name, sizeof name, "err_%s_%s_L%lld", r.duals[d].dual, kname[k], (long long)c.depths[l]);
                nl_exp_set(out, name, r.duals[d].err[k][l]);
            }
    /* curves: test error against depth per dual (one chart per kernel), the baselines as flat lines */
    const double x0 = (double)c.depths[0], x1 = (double)c.depths[c.n_depths - 1];
    for (int k = 0; k < 2; k++) {
        char plot[64];
        snprintf(plot, sizeof plot, "Test error vs depth, %s (d=%d, n=%lld)", k ? "NTK" : "NNGP", c.dim, (long long)c.n_train);
        for (int d = 0; d < r.n_duals; d++) {
            nl_curve *cv = nl_exp_curve(out, plot, r.duals[d].dual, "depth L", "test error (%)");
            for (int l = 0; l < c.n_depths; l++) nl_curve_add(cv, (double)c.depths[l], 100 * r.duals[d].err[k][l]);
        }
        wd_baseline_line(out, plot, "Bayes-optimal", x0, x1, r.err_bayes);
        wd_baseline_line(out, plot, "1-NN", x0, x1, r.err_1nn);
        wd_baseline_line(out, plot, "Devroye (Hilbert kernel)", x0, x1, r.err_devroye);
        wd_baseline_line(out, plot, "majority vote", x0, x1, r.err_majority);
    }
    if (r.relu_ran) {
        const char *plot = "ReLU NTK: agreement with majority vote vs depth";
        nl_curve *a = nl_exp_curve(out, plot, "measured", "depth L", "agreement (%)");
        nl_curve *t = nl_exp_curve(out, plot, "theory 1 - kappa (n+3) / (L |ybar|)", "depth L", "agreement (%)");
        nl_curve *nn = nl_exp_curve(out, plot, "agreement with 1-NN", "depth L", "agreement (%)");
        for (int i = 0; i < r.relu_n_depths; i++) {
            double L = (double)r.relu_depths[i];
            nl_curve_add(a, L, 100 * r.relu_agree_maj[i]);
            nl_curve_add(nn, L, 100 * r.relu_agree_1nn[i]);
            nl_curve_add(t, L, 100 * fmax(0.0, 1 - r.relu_kappa * (double)(r.relu_n_train + 3) / (L * fabs(r.relu_ybar))));
        }
    }
    snprintf(out->note, sizeof out->note,
             "d=%d Dirichlet data, %lld/%lld points, seed %llu; Bayes %.2f%%, 1-NN %.2f%%, Devroye %.2f%%, majority %.2f%%; "
             "ReLU check: %lld training points, L*=%lld%s",
             c.dim, (long long)c.n_train, (long long)c.n_test, (unsigned long long)c.seed, 100 * r.err_bayes, 100 * r.err_1nn,
             100 * r.err_devroye, 100 * r.err_majority, (long long)r.relu_n_train, (long long)r.relu_depth,
             r.relu_capped ? " (capped)" : "");
    return NL_OK;
}

static int wd_ledger_judge(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t n) {
    (void)e, (void)full;
    char opt_dual[16];
    snprintf(opt_dual, sizeof opt_dual, "%dd_opt", (int)nl_exp_get(r, "dim", NULL));
    return nl_wide_deep_judge_values(nl_exp_get(r, "hermite_agree_1nn_min", NULL), nl_exp_get(r, "relu_agree_majority", NULL),
                              nl_exp_get(r, "opt_nngp_excess_absmax", NULL), nl_exp_get(r, "bayes_margin", NULL), opt_dual,
                              measured, n);
}

const nl_experiment nl_exp_wide_deep = {
    .name = "wide-deep",
    .paper = "Wide and Deep Neural Networks Achieve Optimality for Classification (Radhakrishnan, Belkin & Uhler 2022)",
    .claim = "Infinitely wide and deep networks are 1-NN (hermite_k), majority vote (ReLU) or, with the *_opt activations, "
             "a consistent singular-kernel classifier close to Bayes-optimal.",
    .quick_desc = "d=2 Dirichlet([1,2] vs [2,1]) on the circle, prior 0.4, 1500 training / 5000 test points, seed 1; NNGP+NTK of relu, erf, "
                  "hermite_2/3, 2d_opt, 3d_opt at depths 10-200; ReLU NTK on 51 points (300 test) at the closed-form depth L*",
    .full_desc = "the paper's size: 10000/10000 points, relu, erf, hermite_2, 2d_opt, 3d_opt at depths 20-200; ReLU NTK on 101 "
                 "points (2000 test) at L*",
    .quick = &wd_quick_tag,
    .full = &wd_full_tag,
    .metrics = "bayes_err,nn1_err,devroye_err,majority_err,hermite_agree_1nn_min,relu_agree_majority,relu_depth,relu_ybar,"
               "relu_kappa,relu_err,relu_majority_err,opt_nngp_excess_absmax,opt_ntk_excess_absmax,opt_nngp_agree_devroye_min,"
               "bayes_margin,dim,n_train,n_test,threads,err_<dual>_<nngp|ntk>_L<depth>",
    .run = wd_ledger_run,
    .judge = wd_ledger_judge,
};
