/* Ledger entry `deeponet` (schema v2, docs/repro.md): an unstacked DeepONet learns the antiderivative operator of
 * GRF input functions (l = 0.2, 100 sensors) to a small test MSE, and an FNN of about the same size, fed
 * [u(sensors), y], trained the same way, is at least 3x worse; the nonlinear ODE ds/dx = -s^2 + u is reported.
 * Every run reports the reference's checkpoint: the one of every 1000 steps (and the last) with the lowest MSE on
 * the whole training set. Parts (over seeds 1..n, n >= 3; each seed draws its own functions, points and
 * initialization, shared by all runs of that seed):
 *   antiderivative-mse: mean + SE of the DeepONet's antiderivative test MSE <= the mode's bar (full 1e-5, the issue's
 *                       bar, paper 9.27e-7 after 50k iterations; quick 1e-4, the paper's order after ~5k, fixed before
 *                       any quick run);
 *   fnn-3x-worse:       d_i = ln(FNN MSE_i / DeepONet MSE_i), paired by seed: mean - t95(n-1) SE >= ln 3.
 * Controls the rule must reject: a DeepONet whose branch input is shuffled across functions (it sees another
 * function's sensors, in training and at test), and the FNN itself standing in for the DeepONet. */
#include "deeponet/deeponet.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DON_MAX_SEEDS 8

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct don_entry_cfg {
    int64_t n_train, n_test; /* triples per seed */
    int64_t iters, batch;    /* Adam steps, minibatch */
    int seeds;               /* seeds 1..seeds */
    double bar;              /* antiderivative DeepONet test MSE bar (mean + SE) */
    int fnn_ode;             /* also train the FNN on the nonlinear ODE (reported; full mode) */
} don_entry_cfg;

static const double g_factor = 3.0; /* the FNN must be at least this many times worse */

static nl_deeponet_config run_config(const don_entry_cfg *ec, nl_deeponet_arch arch, nl_deeponet_op op, uint64_t seed,
                                     int verbose) {
    nl_deeponet_config c = nl_deeponet_defaults();
    c.arch = arch;
    c.op = op;
    c.n_train = ec->n_train;
    c.n_test = ec->n_test;
    c.iters = ec->iters;
    c.batch = ec->batch;
    c.eval_every = ec->iters >= 10 ? ec->iters / 10 : 0;
    c.seed = seed;
    c.verbose = verbose > 1;
    return c;
}

static void add_curve(nl_exp_result *r, const char *name, const nl_deeponet_result *res) {
    nl_curve *k = nl_exp_curve(r, "Test MSE (seed 1)", name, "iteration", "log10 test MSE");
    for (int64_t j = 0; k && j < res->n_curve; j++) nl_curve_add(k, res->curve_step[j], log10(res->curve_test[j]));
}

static nl_status don_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const don_entry_cfg *ec = config;
    const int n = ec->seeds < DON_MAX_SEEDS ? ec->seeds : DON_MAX_SEEDS;
    double anti[DON_MAX_SEEDS], fnn[DON_MAX_SEEDS], ode[DON_MAX_SEEDS], shuf[DON_MAX_SEEDS], anti_t[DON_MAX_SEEDS],
        ode_t[DON_MAX_SEEDS], fnn_ode[DON_MAX_SEEDS], anti_last[DON_MAX_SEEDS], anti_step[DON_MAX_SEEDS];
    double secs = 0, data_secs = 0;
    int64_t rejected = 0, p_don = 0, p_fnn = 0;
    nl_grf g;
    nl_status s = nl_grf_init(&g, 1000, 0.2, 1e-13);
    if (s) return s;
    nl_exp_result *cs = nl_exp_control_add(out, "shuffled-branch", "broken",
                                           "DeepONet whose branch input rows are permuted across functions (training and "
                                           "test, a seeded permutation per set): it sees another function's sensors");
    nl_exp_result *cf = nl_exp_control_add(out, "fnn-as-deeponet", "baseline",
                                           "the FNN baseline's own runs judged as if they were the DeepONet's");
    if (!cs || !cf) s = nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
    for (int i = 0; i < n && !s; i++) {
        nl_deeponet_data tr, te;
        nl_deeponet_config c = run_config(ec, NL_DON_DEEPONET, NL_DON_ANTIDERIV, (uint64_t)(i + 1), opt->verbose);
        double t0 = now_s();
        if ((s = nl_deeponet_data_make(&tr, &g, c.n_train, c.sensors, c.seed, 1, NULL))) break;
        if ((s = nl_deeponet_data_make(&te, &g, c.n_test, c.sensors, c.seed, 2, NULL))) {
            nl_deeponet_data_free(&tr);
            break;
        }
        data_secs += now_s() - t0;
        rejected += tr.rejected + te.rejected;
        nl_deeponet_result ra, rf, ro, rfo, rs;
        memset(&rfo, 0, sizeof rfo);
        rfo.test_mse = NAN;
        nl_deeponet_config cfo = run_config(ec, NL_DON_FNN, NL_DON_ODE, c.seed, opt->verbose);
        nl_deeponet_config cfa = run_config(ec, NL_DON_FNN, NL_DON_ANTIDERIV, c.seed, opt->verbose);
        nl_deeponet_config coo = run_config(ec, NL_DON_DEEPONET, NL_DON_ODE, c.seed, opt->verbose);
        if (!(s = nl_deeponet_train(&c, &tr, &te, &ra)) && !(s = nl_deeponet_train(&cfa, &tr, &te, &rf)) &&
            !(s = nl_deeponet_train(&coo, &tr, &te, &ro)) && !(s = ec->fnn_ode ? nl_deeponet_train(&cfo, &tr, &te, &rfo) : NL_OK) &&
            !(s = nl_deeponet_data_shuffle_u(&tr, c.seed)) && !(s = nl_deeponet_data_shuffle_u(&te, c.seed + 1000)))
            s = nl_deeponet_train(&c, &tr, &te, &rs);
        nl_deeponet_data_free(&tr);
        nl_deeponet_data_free(&te);
        if (s) break;
        anti[i] = ra.test_mse, fnn[i] = rf.test_mse, ode[i] = ro.test_mse, shuf[i] = rs.test_mse;
        anti_t[i] = ra.test_mse_trim, ode_t[i] = ro.test_mse_trim, fnn_ode[i] = rfo.test_mse;
        anti_last[i] = ra.test_mse_last, anti_step[i] = (double)ra.best_step;
        secs += ra.train_seconds + rf.train_seconds + ro.train_seconds + (ec->fnn_ode ? rfo.train_seconds : 0) + rs.train_seconds;
        p_don = ra.params, p_fnn = rf.params;
        nl_exp_set_seed(out, "don_anti", i + 1, anti[i]);
        nl_exp_set_seed(out, "fnn_anti", i + 1, fnn[i]);
        nl_exp_set_seed(out, "don_ode", i + 1, ode[i]);
        nl_exp_set_seed(cs, "don_anti", i + 1, shuf[i]);
        nl_exp_set_seed(cs, "fnn_anti", i + 1, fnn[i]);
        nl_exp_set_seed(cf, "don_anti", i + 1, fnn[i]);
        nl_exp_set_seed(cf, "fnn_anti", i + 1, fnn[i]);
        if (i == 0) {
            add_curve(out, "DeepONet, antiderivative", &ra);
            add_curve(out, "FNN, antiderivative", &rf);
            add_curve(out, "DeepONet, nonlinear ODE", &ro);
            if (ec->fnn_ode) add_curve(out, "FNN, nonlinear ODE", &rfo);
            add_curve(cs, "DeepONet, shuffled branch input", &rs);
        }
        if (ec->fnn_ode) nl_exp_set_seed(out, "fnn_ode", i + 1, fnn_ode[i]);
        if (opt->verbose)
            nl_progress("deeponet seed %d: antiderivative DeepONet %.3e, FNN %.3e; ODE DeepONet %.3e, FNN %.3e; shuffled "
                        "branch %.3e (%.1f s)", i + 1, anti[i], fnn[i], ode[i], fnn_ode[i], shuf[i], secs);
    }
    const double jitter = g.jitter;
    nl_grf_free(&g);
    if (s) return s;
    nl_exp_set_mean_se(out, "don_anti", anti, n);
    nl_exp_set_mean_se(out, "fnn_anti", fnn, n);
    nl_exp_set_mean_se(out, "don_ode", ode, n);
    if (ec->fnn_ode) nl_exp_set_mean_se(out, "fnn_ode", fnn_ode, n);
    nl_exp_set_mean_se(out, "don_anti_trim", anti_t, n);
    nl_exp_set_mean_se(out, "don_ode_trim", ode_t, n);
    nl_exp_set_mean_se(out, "don_anti_last", anti_last, n);
    nl_exp_set_mean_se(out, "don_anti_ckpt_step", anti_step, n);
    nl_exp_set_mean_se(cs, "don_anti", shuf, n);
    nl_exp_set_mean_se(cs, "fnn_anti", fnn, n);
    nl_exp_set_mean_se(cf, "don_anti", fnn, n);
    nl_exp_set_mean_se(cf, "fnn_anti", fnn, n);
    nl_exp_result *rs[3] = {out, cs, cf};
    for (int k = 0; k < 3; k++) {
        nl_exp_set(rs[k], "bar", ec->bar);
        nl_exp_set(rs[k], "seeds", n);
        rs[k]->seeds = n;
    }
    nl_exp_set(out, "params_deeponet", (double)p_don);
    nl_exp_set(out, "params_fnn", (double)p_fnn);
    nl_exp_set(out, "grf_jitter", jitter);
    nl_exp_set(out, "ode_redrawn", (double)rejected);
    nl_exp_set(out, "data_seconds", data_secs);
    nl_exp_set(out, "train_seconds", secs);
    nl_exp_set(out, "n_train", (double)ec->n_train);
    nl_exp_set(out, "n_test", (double)ec->n_test);
    nl_exp_set(out, "iters", (double)ec->iters);
    nl_exp_set(out, "batch", (double)ec->batch);
    snprintf(out->note, sizeof out->note,
             "%s: %lld train / %lld test triples per seed, %lld Adam iterations, batch %lld, %d seeds, %d threads; %lld "
             "functions redrawn (nonlinear ODE blow-up)",
             e->name, (long long)ec->n_train, (long long)ec->n_test, (long long)ec->iters, (long long)ec->batch, n,
             opt->threads, (long long)rejected);
    return NL_OK;
}

static int don_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", DON_MAX_SEEDS);
    double don[DON_MAX_SEEDS], fnn[DON_MAX_SEEDS], ld[DON_MAX_SEEDS], lf[DON_MAX_SEEDS];
    char name[64];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "don_anti_seed%d", i + 1);
        don[i] = nl_exp_get(r, name, NULL);
        snprintf(name, sizeof name, "fnn_anti_seed%d", i + 1);
        fnn[i] = nl_exp_get(r, name, NULL);
        ld[i] = log(don[i]);
        lf[i] = log(fnn[i]);
    }
    double bar = nl_exp_get(r, "bar", NULL), m = NAN, se = NAN, md = NAN, sd = NAN;
    if (n >= 1) nl_stats_mean_se(don, n, &m, &se);
    if (n >= 2) nl_stats_paired_t(lf, ld, n, &md, &sd);
    double up = m + se, lo = n >= 2 ? md - nl_stats_t95(n - 1) * sd : NAN;
    const char *pre = mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "";
    int p1 = n >= 3 && up <= bar; /* NaN fails */
    int p2 = n >= 3 && lo >= log(g_factor);
    char rule[256];
    snprintf(rule, sizeof rule, "%sDeepONet antiderivative test MSE over n >= 3 seeds: mean + SE <= %.0e", pre, bar);
    nl_exp_part_set(r, "antiderivative-mse", rule, p1, "%.3e +- %.3e (%d seeds): %.3e %s %.0e", m, se, n, up, p1 ? "<=" : ">", bar);
    snprintf(rule, sizeof rule, "%sln(FNN MSE / DeepONet MSE), paired over n >= 3 seeds: mean - t95(n-1)*SE >= ln %.0f", pre, g_factor);
    nl_exp_part_set(r, "fnn-3x-worse", rule, p2, "ratio (geometric mean) %.2fx, lower bound %.2fx %s %.0fx", exp(md), exp(lo),
                    p2 ? ">=" : "<", g_factor);
    double om = nl_exp_get(r, "don_ode_mean", NULL), os = nl_exp_get(r, "don_ode_se", NULL);
    double tm = nl_exp_get(r, "don_ode_trim_mean", NULL), ts = nl_exp_get(r, "don_ode_trim_se", NULL);
    int w = snprintf(measured, nm, "antiderivative MSE %.2e +- %.2e (bar %.0e), FNN %.1fx worse (bound %.1fx)", m, se, bar,
                     exp(md), exp(lo));
    if (isfinite(om) && w > 0 && (size_t)w < nm)
        snprintf(measured + w, nm - (size_t)w, "; nonlinear ODE MSE %.2e +- %.2e (%.2e +- %.2e without the worst 0.1%%)", om,
                 os, tm, ts);
    return nl_exp_parts_pass(r);
}

/* quick: the paper's training size (10000 triples) with 10000 test triples, 10000 minibatch iterations (5000 left the
 * DeepONet still improving: README); full: 10000 / 100000 triples and the paper's 50000 iterations, plus the FNN on
 * the ODE; smoke: tiny. Batch 256 everywhere (the paper: full batch; see the README for why and the measured costs). */
static const don_entry_cfg don_quick = {10000, 10000, 10000, 256, 3, 1e-4, 0};
static const don_entry_cfg don_full = {10000, 100000, 50000, 256, 3, 1e-5, 1};
static const don_entry_cfg don_smoke = {1000, 500, 200, 64, 3, 1e-4, 0};

#define DON_METRICS                                                                                                    \
    "don_anti_mean,don_anti_se,fnn_anti_mean,fnn_anti_se,don_ode_mean,don_ode_se,fnn_ode_mean,fnn_ode_se,"              \
    "don_anti_trim_mean,don_anti_trim_se,don_ode_trim_mean,don_ode_trim_se,don_anti_last_mean,don_anti_last_se,"           \
    "don_anti_ckpt_step_mean,bar,params_deeponet,params_fnn,grf_jitter,"  \
    "ode_redrawn,data_seconds,train_seconds,n_train,n_test,iters,batch,seeds"

const nl_experiment nl_exp_deeponet = {
    .name = "deeponet",
    .paper = "Lu, Jin, Pang, Zhang & Karniadakis, Learning nonlinear operators via DeepONet based on the universal "
             "approximation theorem of operators (Nature Machine Intelligence 2021; arXiv 1910.03193)",
    .claim = "An unstacked DeepONet (branch [100, 40, 40], trunk [1, 40, 40]) learns the antiderivative operator on GRF "
             "inputs (l = 0.2) to test MSE <= 1e-5 (paper: 9.27e-7 after 50k iterations), and an FNN of about the same "
             "size with the same budget is at least 3x worse; the nonlinear ODE ds/dx = -s^2 + u is reported.",
    .quick_desc = "GRF l = 0.2 on 1000 points (Cholesky, jitter 1e-13), cubic spline, 100 sensors, RK45 targets (rtol 1e-8, "
                  "atol 1e-10); 10000 train / 10000 test triples per seed; DeepONet [100,40,40] x [1,40,40] and FNN "
                  "[101,50,50,1], ReLU, Glorot normal, Adam 1e-3, batch 256, 10000 iterations, the best training-loss "
                  "checkpoint of every 1000 steps (the reference's), seeds 1-3; bar 1e-4; "
                  "controls: shuffled branch input, FNN as DeepONet",
    .full_desc = "as quick with 10000 train / 100000 test triples per seed (the paper's sizes) and 50000 iterations (the "
                 "paper's count), batch 256, seeds 1-3, the FNN also on the ODE; bar 1e-5",
    .smoke_desc = "1000 train / 500 test triples, 200 iterations, batch 64, seeds 1-3",
    .quick = &don_quick,
    .full = &don_full,
    .smoke = &don_smoke,
    .metrics = DON_METRICS,
    .run = don_run,
    .judge = don_judge,
};
