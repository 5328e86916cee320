/* student_t_process/student_t_process.h — Student-t process regression over NNGP kernels (scale mixtures of NNGPs, Lee et al., ICLR 2022,
 * methods/student_t_process/README.md), with a GP baseline of the same kernel family.
 *
 * Model: the last-layer variance s2 ~ InvGamma(alpha, beta) scales the whole covariance A = K + noise I, so
 * y | s2 ~ N(0, s2 A) and, integrated, y ~ MVT_{2 alpha}(0, (beta/alpha) A):
 *   -log p(y) = -[lgamma(alpha + n/2) - lgamma(alpha)] + n/2 log(2 pi beta) + 1/2 log det A
 *               + (alpha + n/2) log(1 + q / (2 beta)),          q = y^T A^{-1} y.
 * alpha -> inf with beta/alpha = c fixed gives -log N(y; 0, c A).
 * Predictive at x* (noise inside the mixture, so it applies to noisy observations y*): Student-t with
 *   nu' = 2 alpha + n, mean m* = k*^T A^{-1} y, scale^2 = (2 beta + q)/(2 alpha + n) (k** + noise - k*^T A^{-1} k*). */
#ifndef NNLAB_STP_H
#define NNLAB_STP_H
#include "nnlab/ledger.h"
#include "nnlab/autograd.h"
#include "gp/gp.h"
#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- scalar helpers ---- */
double nl_student_t_process_digamma(double x);  /* psi(x), x > 0 */
/* log density of the univariate Student-t with nu degrees of freedom, location mu, squared scale s2. */
double nl_student_t_process_student_t_logpdf(double y, double nu, double mu, double s2);
double nl_student_t_process_normal_logpdf(double y, double mu, double var);

/* ---- differentiable pieces (f64) ----
 * lgamma(a + k) - lgamma(a) elementwise for a > 0 (any shape); gradient digamma(a + k) - digamma(a). */
nl_var *nl_student_t_process_lgamma_diff(nl_ctx *c, nl_var *a, double k);
/* -log MVT_{2 alpha}(y; 0, (beta/alpha) A) given L = chol(A) [n, n], y [n] or [n, 1], alpha, beta 1-element
 * (0-d or [1]) positive vars. Returns a 0-d var. Gradients to L, y, alpha, beta. */
nl_var *nl_student_t_process_mvt_nll(nl_ctx *c, nl_var *L, nl_var *y, nl_var *alpha, nl_var *beta);
/* -log N(y; 0, A) given L = chol(A); 0-d. */
nl_var *nl_student_t_process_gauss_nll(nl_ctx *c, nl_var *L, nl_var *y);

/* ---- hyperparameters and fitting ---- */
typedef struct nl_student_t_process_hyp {
    double sw2, sb2;       /* NNGP weight / bias variances of every Dense layer (readout included) */
    double noise;          /* diagonal added to K */
    double alpha, beta;    /* inverse-gamma prior of the scale (unused by the GP) */
} nl_student_t_process_hyp;

/* Negative log marginal likelihood graph from the log-parameters: logp [5] = (log sw2, log sb2, log noise,
 * log alpha, log beta) (entries 3, 4 unused when student = 0), K0 [n, n] = X X^T / d, y [n]. 0-d output. */
nl_var *nl_student_t_process_nll_graph(nl_ctx *c, const nl_kernel_cfg *kcfg, int student, nl_var *K0, nl_var *y, nl_var *logp);

typedef struct nl_student_t_process_fit_cfg {
    nl_kernel_cfg kcfg;    /* kernel family (depth, activation); sw/sb ignored (fitted) */
    int student;           /* 1: Student-t process, 0: GP */
    int64_t steps;         /* Adam steps */
    double lr;             /* Adam learning rate */
    nl_student_t_process_hyp init;       /* starting values */
} nl_student_t_process_fit_cfg;

void nl_student_t_process_fit_cfg_default(nl_student_t_process_fit_cfg *cfg);  /* depth 2 ReLU, 300 steps, lr 0.05, sw2 1 sb2 0.1 noise 0.1 a=b=2 */
/* Type-II maximum likelihood by Adam on the log-parameters. X (n, d), y (n). curve (steps + 1) or NULL: the
 * training NLL per point before each step and after the last. */
nl_status nl_student_t_process_fit(const nl_student_t_process_fit_cfg *cfg, const double *X, int64_t n, int64_t d, const double *y, nl_student_t_process_hyp *out,
                     double *curve);
/* Predictive at test inputs Xs (t, d): mean (t), scale2 (t) (observation: noise included), *nu = 2 alpha + n
 * for the Student-t (INFINITY for the GP, student = 0, whose scale2 is the Gaussian variance). */
nl_status nl_student_t_process_predict(const nl_kernel_cfg *kcfg, int student, const nl_student_t_process_hyp *h, const double *X, int64_t n,
                         int64_t d, const double *y, const double *Xs, int64_t t, double *mean, double *scale2, double *nu);
/* Mean negative predictive log density per test point (t-density for finite nu, Gaussian for nu = INFINITY). */
double nl_student_t_process_test_nll(const double *ys, const double *mean, const double *scale2, double nu, int64_t t);

/* ---- the syn-t experiment ---- */
typedef struct nl_student_t_process_synt_config {
    int64_t n;             /* total points, x = linspace(-150, 150, n) (default 300) */
    double test_frac;      /* fraction held out at random (default 0.2) */
    double lengthscale;    /* RBF lengthscale of the latent GP on the original x scale (default 1) */
    double noise_scale;    /* scale of the t_1 (Cauchy) noise (default 0.8) */
    double x_scale;        /* kernel input = x / x_scale (default 150: inputs in [-1, 1]) */
    int n_splits;          /* independent data sets (seed, seed+1, ...); NLLs averaged (default 1) */
    uint64_t seed;
    nl_student_t_process_fit_cfg fit;    /* Adam and kernel settings shared by STP and GP (student field set per model) */
    int verbose;                         /* one progress line per split and model (nl_progress) */
} nl_student_t_process_synt_config;

typedef struct nl_student_t_process_synt_result {
    double stp_nll, gp_nll;          /* mean test NLL per point, averaged over splits */
    double stp_rmse, gp_rmse;        /* test RMSE of the predictive means (averaged over splits) */
    int stp_wins;                    /* splits where the STP test NLL is lower */
    nl_student_t_process_hyp stp_hyp, gp_hyp;      /* fitted hyperparameters of the first split */
    int64_t n_train, n_test, steps;
    double *stp_curve, *gp_curve;    /* (steps + 1) training NLL per point of the first split, owned */
    double seconds;
} nl_student_t_process_synt_result;

void nl_student_t_process_synt_config_quick(nl_student_t_process_synt_config *c);
void nl_student_t_process_synt_config_full(nl_student_t_process_synt_config *c);
nl_status nl_student_t_process_synt_run(const nl_student_t_process_synt_config *c, nl_student_t_process_synt_result *r);
void nl_student_t_process_synt_result_free(nl_student_t_process_synt_result *r);


/* ---- the syn-t experiment under the official protocol: hyperparameters chosen on a validation grid ----
 * (the reference code's reg.sh / experiments/regression.py: fixed kernel hyperparameters, alpha, beta and the GP's
 * last-layer variance each from a grid, chosen by validation NLL; 80/10/10 train/validation/test split).
 * Per data set and per kernel setting (depth, sw2, sb2) the NNGP matrix over all points is computed once and reused
 * for every noise value; per noise value one Cholesky of the training block gives the predictive mean, latent
 * variance and q = y^T A^{-1} y of all validation and test points, after which every (alpha, beta), last-layer
 * variance and inflation factor is O(validation + test). Models (test NLL per point, original target scale):
 *   STP       Student-t predictive (nu' = 2 alpha + n, scale^2 = (2 beta + q)/(2 alpha + n) (v + noise));
 *   GP        Gaussian predictive lv (v + noise), lv in the reference grid {1, 4};
 *   GP x c    the GP with its predictive variance multiplied by c in {1, 1.25, 1.5, 2, 3, 4, 6, 8}, chosen (with the
 *             rest) on the validation points: a generic substitute for heavy tails (control);
 *   STP-gauss the STP's scale with a Gaussian density (nu' -> infinity): a broken STP without its tails (control). */
#define NL_STP_GRID_MODELS 4
enum { NL_STP_MODEL_STP = 0, NL_STP_MODEL_GP = 1, NL_STP_MODEL_GP_INFL = 2, NL_STP_MODEL_STP_GAUSS = 3 };
typedef struct nl_student_t_process_grid_config {
    int64_t n;             /* points per data set (x = linspace(-150, 150, n)) */
    double lengthscale, noise_scale, x_scale;   /* as nl_student_t_process_synt_config */
    int n_sets;            /* paired data sets (seeds seed, seed + 1, ...) */
    uint64_t seed;
    int small_grid;        /* 1: depth {2}, sw2 {1, 4}, sb2 {0.09}, noise 3 values (smoke); 0: the full grid */
    int verbose;
} nl_student_t_process_grid_config;

typedef struct nl_student_t_process_grid_result {
    int n_sets;
    int64_t n_train, n_val, n_test;
    double *nll[NL_STP_GRID_MODELS];    /* (n_sets) test NLL per point of each model, owned */
    nl_student_t_process_hyp stp_hyp;   /* chosen on the first data set (sw2, sb2, noise, alpha, beta) */
    int stp_depth;
    double gp_lv, infl_c;               /* chosen on the first data set */
    int grid_size[NL_STP_GRID_MODELS];  /* settings compared on validation per data set */
    double seconds;
} nl_student_t_process_grid_result;

void nl_student_t_process_grid_config_quick(nl_student_t_process_grid_config *c);  /* 30 sets of 300 points */
void nl_student_t_process_grid_config_full(nl_student_t_process_grid_config *c);   /* 100 sets of 300 points */
void nl_student_t_process_grid_config_smoke(nl_student_t_process_grid_config *c);  /* 4 sets of 80 points, small grid */
nl_status nl_student_t_process_grid_run(const nl_student_t_process_grid_config *c, nl_student_t_process_grid_result *r);
void nl_student_t_process_grid_result_free(nl_student_t_process_grid_result *r);


/* ---- registration (methods/student_t_process/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_student_t_process;
extern const nl_method nl_method_student_t_process;
int nl_student_t_process_cli(int argc, char **argv);   /* `nnlab ...` with the arguments after the command name */

#ifdef __cplusplus
}
#endif
#endif
