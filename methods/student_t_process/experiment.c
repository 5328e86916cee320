/* The syn-t experiment (Scale mixtures of NNGPs, Lee et al. 2022): a GP(RBF) sample on x = linspace(-150, 150)
 * plus Cauchy (t_1) noise; Student-t process vs GP over the same NNGP kernel family, both fitted by type-II
 * maximum likelihood with Adam; mean test NLL per point. Ledger entry `student-t-process`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nnlab/ledger.h"
#include "nnlab/linalg.h"
#include "nnlab/rng.h"
#include "student_t_process/student_t_process.h"

void nl_student_t_process_synt_config_quick(nl_student_t_process_synt_config *c) {
    memset(c, 0, sizeof *c);
    c->n = 300;
    c->test_frac = 0.2;
    c->lengthscale = 1.0;
    c->noise_scale = 0.8;
    c->x_scale = 150.0;
    c->n_splits = 3;
    c->seed = 1;
    nl_student_t_process_fit_cfg_default(&c->fit);
    c->fit.steps = 150;
    c->fit.lr = 0.05;
}

void nl_student_t_process_synt_config_full(nl_student_t_process_synt_config *c) {
    nl_student_t_process_synt_config_quick(c);
    c->n_splits = 10;
    c->fit.steps = 500;
    c->fit.lr = 0.02;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* x (n), y (n): latent f ~ GP(0, exp(-(x - x')^2 / (2 l^2))) plus noise_scale * Cauchy */
static nl_status synt_data(const nl_student_t_process_synt_config *c, uint64_t seed, double *x, double *y) {
    int64_t n = c->n;
    double *K = malloc((size_t)(n * n) * sizeof *K);
    if (!K) return nl_set_error(NL_ENOMEM, "syn-t: out of memory");
    for (int64_t i = 0; i < n; i++) x[i] = -150.0 + 300.0 * (double)i / (double)(n - 1);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double r = (x[i] - x[j]) / c->lengthscale;
            K[i * n + j] = exp(-0.5 * r * r) + (i == j ? 1e-6 : 0.0);
        }
    nl_status st = nl_cholesky_inplace(K, n);
    if (st) { free(K); return st; }
    nl_rng r;
    nl_rng_init(&r, seed, 0);
    double *z = malloc((size_t)n * sizeof *z);
    if (!z) { free(K); return nl_set_error(NL_ENOMEM, "syn-t: out of memory"); }
    for (int64_t i = 0; i < n; i++) z[i] = nl_rng_normal(&r);
    for (int64_t i = 0; i < n; i++) {
        double f = 0;
        for (int64_t j = 0; j <= i; j++) f += K[i * n + j] * z[j];
        double u = nl_rng_uniform(&r);
        y[i] = f + c->noise_scale * tan(M_PI * (u - 0.5));
    }
    free(z);
    free(K);
    return NL_OK;
}

nl_status nl_student_t_process_synt_run(const nl_student_t_process_synt_config *c, nl_student_t_process_synt_result *r) {
    memset(r, 0, sizeof *r);
    if (!c || c->n < 10 || !(c->test_frac > 0 && c->test_frac < 1) || c->n_splits < 1 || !(c->x_scale > 0) ||
        !(c->lengthscale > 0) || !(c->noise_scale >= 0) || c->fit.steps < 0)
        return nl_set_error(NL_EINVAL, "syn-t: bad configuration");
    double t0 = now_s();
    int64_t n = c->n, nte = (int64_t)llround(c->test_frac * (double)n), ntr = n - nte;
    if (nte < 1 || ntr < 2) return nl_set_error(NL_EINVAL, "syn-t: split leaves no test or training points");
    r->n_train = ntr, r->n_test = nte, r->steps = c->fit.steps;
    double *buf = malloc((size_t)(7 * n) * sizeof *buf);
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    r->stp_curve = malloc((size_t)(c->fit.steps + 1) * sizeof(double));
    r->gp_curve = malloc((size_t)(c->fit.steps + 1) * sizeof(double));
    nl_status st = NL_OK;
    if (!buf || !perm || !r->stp_curve || !r->gp_curve) { st = nl_set_error(NL_ENOMEM, "syn-t: out of memory"); goto done; }
    double *x = buf, *y = x + n, *Xtr = y + n, *ytr = Xtr + n, *Xte = ytr + n, *yte = Xte + n, *mean = yte + n;
    double *s2 = malloc((size_t)n * sizeof *s2);
    if (!s2) { st = nl_set_error(NL_ENOMEM, "syn-t: out of memory"); goto done; }
    for (int sp = 0; sp < c->n_splits; sp++) {
        uint64_t seed = c->seed + (uint64_t)sp;
        if ((st = synt_data(c, seed, x, y))) break;
        nl_rng rg;
        nl_rng_init(&rg, seed, 1);
        nl_rng_permutation(&rg, perm, n);
        for (int64_t i = 0; i < ntr; i++) Xtr[i] = x[perm[i]] / c->x_scale, ytr[i] = y[perm[i]];
        for (int64_t i = 0; i < nte; i++) Xte[i] = x[perm[ntr + i]] / c->x_scale, yte[i] = y[perm[ntr + i]];
        /* standardise the targets by the training mean and standard deviation (both models see the same data;
         * the test NLL is reported on the original scale: + log sd) */
        double mu = 0, sd = 0;
        for (int64_t i = 0; i < ntr; i++) mu += ytr[i] / (double)ntr;
        for (int64_t i = 0; i < ntr; i++) sd += (ytr[i] - mu) * (ytr[i] - mu) / (double)(ntr - 1);
        sd = sqrt(sd) > 0 ? sqrt(sd) : 1.0;
        for (int64_t i = 0; i < ntr; i++) ytr[i] = (ytr[i] - mu) / sd;
        for (int64_t i = 0; i < nte; i++) yte[i] = (yte[i] - mu) / sd;
        double nll[2], rmse[2];
        for (int m = 0; m < 2; m++) {
            nl_student_t_process_fit_cfg f = c->fit;
            f.student = m == 0;
            nl_student_t_process_hyp h;
            if ((st = nl_student_t_process_fit(&f, Xtr, ntr, 1, ytr, &h, sp == 0 ? (m == 0 ? r->stp_curve : r->gp_curve) : NULL))) goto splitdone;
            double nu;
            if ((st = nl_student_t_process_predict(&f.kcfg, f.student, &h, Xtr, ntr, 1, ytr, Xte, nte, mean, s2, &nu))) goto splitdone;
            nll[m] = nl_student_t_process_test_nll(yte, mean, s2, nu, nte) + log(sd);
            double se = 0;
            for (int64_t i = 0; i < nte; i++) se += (yte[i] - mean[i]) * (yte[i] - mean[i]);
            rmse[m] = sd * sqrt(se / (double)nte);
            if (sp == 0) *(m == 0 ? &r->stp_hyp : &r->gp_hyp) = h;
            if (c->verbose)
                nl_progress("syn-t split %d %s: test NLL %.4f rmse %.3f (sw2 %.3g sb2 %.3g noise %.3g alpha %.3g beta %.3g)", sp,
                        m == 0 ? "STP" : "GP ", nll[m], rmse[m], h.sw2, h.sb2, h.noise, h.alpha, h.beta);
        }
        r->stp_nll += nll[0] / c->n_splits, r->gp_nll += nll[1] / c->n_splits;
        r->stp_rmse += rmse[0] / c->n_splits, r->gp_rmse += rmse[1] / c->n_splits;
        r->stp_wins += nll[0] < nll[1];
    }
splitdone:
    free(s2);
done:
    free(buf);
    free(perm);
    r->seconds = now_s() - t0;
    if (st) nl_student_t_process_synt_result_free(r);
    return st;
}

void nl_student_t_process_synt_result_free(nl_student_t_process_synt_result *r) {
    free(r->stp_curve);
    free(r->gp_curve);
    r->stp_curve = r->gp_curve = NULL;
}

/* ---- ledger entry ---- */
static const int stp_quick_tag = 0, stp_full_tag = 1;

static nl_status stp_ledger_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    (void)e;
    nl_student_t_process_synt_config c;
    if (*(const int *)config) nl_student_t_process_synt_config_full(&c);
    else nl_student_t_process_synt_config_quick(&c);
    c.verbose = opt->verbose;
    nl_student_t_process_synt_result r;
    nl_status st = nl_student_t_process_synt_run(&c, &r);
    if (st) return st;
    nl_exp_set(out, "stp_test_nll", r.stp_nll);
    nl_exp_set(out, "gp_test_nll", r.gp_nll);
    nl_exp_set(out, "stp_test_rmse", r.stp_rmse);
    nl_exp_set(out, "gp_test_rmse", r.gp_rmse);
    nl_exp_set(out, "stp_wins", r.stp_wins);
    nl_exp_set(out, "splits", c.n_splits);
    nl_exp_set(out, "stp_alpha", r.stp_hyp.alpha);
    nl_exp_set(out, "stp_beta", r.stp_hyp.beta);
    nl_exp_set(out, "n_train", (double)r.n_train);
    nl_exp_set(out, "n_test", (double)r.n_test);
    const char *plot = "Training NLL per point vs Adam step (split 1)";
    nl_curve *a = nl_exp_curve(out, plot, "Student-t process", "Adam step", "NLL / point");
    nl_curve *b = nl_exp_curve(out, plot, "GP", "Adam step", "NLL / point");
    for (int64_t s = 0; s <= r.steps; s++) {
        if (a) nl_curve_add(a, (double)s, r.stp_curve[s]);
        if (b) nl_curve_add(b, (double)s, r.gp_curve[s]);
    }
    snprintf(out->note, sizeof out->note,
             "syn-t: %lld points, %lld/%lld train/test, %d data sets (seed %llu+), Cauchy scale %.2g, depth-%d ReLU NNGP on x/%.0f, "
             "%lld Adam steps lr %.3g; STP wins %d/%d",
             (long long)c.n, (long long)r.n_train, (long long)r.n_test, c.n_splits, (unsigned long long)c.seed, c.noise_scale,
             c.fit.kcfg.depth, c.x_scale, (long long)c.fit.steps, c.fit.lr, r.stp_wins, c.n_splits);
    nl_student_t_process_synt_result_free(&r);
    return NL_OK;
}

static int stp_ledger_judge(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t n) {
    (void)e, (void)full;
    double s = nl_exp_get(r, "stp_test_nll", NULL), g = nl_exp_get(r, "gp_test_nll", NULL);
    int pass = isfinite(s) && isfinite(g) && s < g;
    snprintf(measured, n, "test NLL/point STP %.3f vs GP %.3f (STP lower on %d/%d data sets)", s, g,
             (int)nl_exp_get(r, "stp_wins", NULL), (int)nl_exp_get(r, "splits", NULL));
    return pass;
}

const nl_experiment nl_exp_student_t_process = {
    .name = "student-t-process",
    .paper = "Scale Mixtures of Neural Network Gaussian Processes (Lee, Yun, Yang, Lee & Lee, ICLR 2022)",
    .claim = "With an inverse-gamma prior on the last-layer variance the NNGP becomes a Student-t process whose test NLL "
             "beats the GP's (same kernel family, type-II ML) under heavy-tailed noise (syn-t).",
    .quick_desc = "syn-t: 300 points, GP(RBF l=1) + 0.8 Cauchy, 240/60 split, 3 data sets, depth-2 ReLU NNGP, 150 Adam steps lr 0.05",
    .full_desc = "syn-t as quick with 10 data sets and 500 Adam steps lr 0.02",
    .quick = &stp_quick_tag,
    .full = &stp_full_tag,
    .metrics = "stp_test_nll,gp_test_nll,stp_test_rmse,gp_test_rmse,stp_wins,splits,stp_alpha,stp_beta,n_train,n_test",
    .run = stp_ledger_run,
    .judge = stp_ledger_judge,
};
