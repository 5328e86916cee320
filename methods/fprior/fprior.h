/* fprior/fprior.h — functional priors for Bayesian neural networks (Tran, Rossi, Milios, Filippone, "All You Need is
 * a Good Functional Prior for Bayesian Deep Learning", JMLR 2022; official code tranbahien/you-need-a-good-prior).
 *
 * A tanh MLP d -> H (x depth) -> 1 with a Gaussian prior per layer: W_l = softplus(rw_l) eps / sqrt(n_in),
 * b_l = softplus(rb_l) eps (eps ~ N(0,1)); the 2 (depth+1) raw numbers rw, rb are the prior hyperparameters psi.
 * The Wasserstein-1 fit: minimise over psi W1(p_GP, p_BNN(psi)) of function values on a measurement set, in the dual
 * form max_c E_BNN[c(F)] - E_GP[c(F)] with a critic c: R^M -> R (MLP M -> Hc -> Hc -> 1, softplus), re-initialised
 * every outer step, trained by Adagrad; Lipschitz by the reference's gradient penalty lambda (||grad_x c|| - 1)^2 on
 * interpolates (the engine has no double backward, so the critic's is written out by hand: nl_fp_critic_penalty), or
 * by weight clipping at +-clip (the reference's fallback) when lambda = 0. The psi step is
 * RMSprop on the critic's estimate. Posterior: adaptive SGHMC (several chains), R-hat over chains.
 * Everything here is float64 and hand-differentiated (no engine graph). methods/fprior/README.md has the details. */
#ifndef NNLAB_FPRIOR_H
#define NNLAB_FPRIOR_H
#include "nnlab/base.h"
#include "nnlab/cli.h"
#include "nnlab/ledger.h"
#include "nnlab/rng.h"
#include <stdint.h>

#define NL_FP_MAX_LAYERS 8
#define NL_FP_MAX_DIM 16

typedef struct nl_fp_arch {
    int d_in, width, depth; /* depth hidden tanh layers of `width` units, one linear output */
} nl_fp_arch;

/* Prior over weights. kind 0: scaled Gaussian with per-layer softplus(raw) stds (above); kind 1: fixed N(0, std0^2)
 * on every raw weight and bias, no 1/sqrt(n_in) (the reference's FixedGaussianPrior(std=1)). */
typedef struct nl_fp_prior {
    int kind;
    double rw[NL_FP_MAX_LAYERS], rb[NL_FP_MAX_LAYERS]; /* kind 0: raw hyperparameters, std = softplus(raw) */
    double std0;                                        /* kind 1 */
} nl_fp_prior;

/* GP target: RBF k = var exp(-r^2/2) with ARD lengthscales; hierarchical: per function ls_i ~ LogNormal(log ls0, s_ls)
 * and var ~ LogNormal(mu_v, s_v) (the reference's UCI config: ls0 = sqrt(2d), s_ls = 1, mu_v = 0.1, s_v = 1). */
typedef struct nl_fp_gp {
    int dim, hierarchical;
    double ls0, var0;          /* plain GP (or hierarchical location: log ls0) */
    double s_ls, mu_v, s_v;    /* hierarchical hyperprior */
} nl_fp_gp;

typedef struct nl_fp_fit_cfg {
    int outer, critic_steps, n_fn, n_meas, critic_hidden;
    double lr_psi, lr_critic, clip, grad_stop; /* RMSprop, Adagrad, clip value, critic grad-norm stop */
    double frac_train;                         /* measurement set: this fraction training inputs, rest uniform in box */
    double penalty;                            /* > 0: gradient penalty lambda (||grad c|| - 1)^2 on interpolates, no
                                                  clipping (the reference's default, 10); 0: weight clipping */
} nl_fp_fit_cfg;

typedef struct nl_fp_sghmc_cfg {
    int chains, burn_in, keep_every, samples, batch;
    double lr, mdecay, noise_var; /* Gaussian likelihood variance (normalised targets) */
} nl_fp_sghmc_cfg;

nl_fp_fit_cfg nl_fp_fit_defaults(void);
nl_fp_sghmc_cfg nl_fp_sghmc_defaults(void);
nl_fp_prior nl_fp_prior_init(const nl_fp_arch *a, double raw);          /* kind 0, every raw = raw */
nl_fp_prior nl_fp_prior_fixed(double std0);                              /* kind 1 */
nl_status nl_fp_arch_check(const nl_fp_arch *a);
int64_t nl_fp_nparams(const nl_fp_arch *a);
double nl_fp_softplus(double x);
/* Standard deviation of every parameter under the prior: sd [P] (layout: per layer W [n_in, n_out] then b [n_out]). */
void nl_fp_prior_sd(const nl_fp_arch *a, const nl_fp_prior *p, double *sd);

/* Forward of one network with parameters th [P] at x [n, d] -> f [n]; work >= nl_fp_work(a, n) doubles. */
size_t nl_fp_work(const nl_fp_arch *a, int64_t n);
void nl_fp_forward(const nl_fp_arch *a, const double *th, const double *x, int64_t n, double *f, double *work);
/* Gradient of sum_i df[i] f_i w.r.t. th, added into g [P]; work as filled by nl_fp_forward on the same (th, x). */
void nl_fp_backward(const nl_fp_arch *a, const double *th, const double *x, int64_t n, const double *df, double *work,
                    double *g);

/* n_fn prior functions at x [m, d] -> F [n_fn, m]. */
nl_status nl_fp_prior_functions(const nl_fp_arch *a, const nl_fp_prior *p, nl_rng *r, const double *x, int64_t m,
                                int n_fn, double *F);
nl_status nl_fp_gp_functions(const nl_fp_gp *gp, nl_rng *r, const double *x, int64_t m, int n_fn, double *F);

/* The Wasserstein fit of p (kind 0, in place). xtr [ntr, d] training inputs, lo/hi [d] the box. hist [cfg.outer] (may
 * be NULL) receives the critic's W1 estimate per outer step. */
nl_status nl_fp_fit(const nl_fp_arch *a, nl_fp_prior *p, const nl_fp_gp *gp, const nl_fp_fit_cfg *cfg, const double *xtr,
                    int64_t ntr, const double *lo, const double *hi, uint64_t seed, double *hist);

/* The gradient penalty of the critic (params [cP] in the layout W1 [M, H], b1 [H], W2 [H, H], b2 [H], w3 [H], b3, with
 * cP = M H + H H + 3 H + 1) at rows X [n, M]: returns lambda / n sum_k (||grad_x c(X_k)|| - 1)^2 and adds its gradient
 * w.r.t. params into grad [cP] (the hand-written double backward). work >= 8 H + 2 M doubles. */
double nl_fp_critic_penalty(int M, int H, const double *params, const double *X, int n, double lambda, double *grad,
                            double *work);

/* Marginal match at x [m, d]: n_fn functions from each; per point sd ratio and the 1-D empirical W1 (sorted samples);
 * out: mean |sd_bnn/sd_gp - 1|, mean W1/sd_gp, mean sd_bnn, mean sd_gp. */
nl_status nl_fp_marginals(const nl_fp_arch *a, const nl_fp_prior *p, const nl_fp_gp *gp, const double *x, int64_t m,
                          int n_fn, uint64_t seed, double out[4]);

/* Adaptive SGHMC on x [n, d], y [n] (normalised). Predictions at xq [nq, d] of every kept sample:
 * pred [chains * samples, nq] (chain-major). */
nl_status nl_fp_sghmc(const nl_fp_arch *a, const nl_fp_prior *p, const nl_fp_sghmc_cfg *cfg, const double *x,
                      const double *y, int64_t n, const double *xq, int64_t nq, uint64_t seed, double *pred);
/* Gelman-Rubin R-hat per query point of pred [chains * samples, nq]; returns the mean over points (max in *mx). */
double nl_fp_rhat(const double *pred, int chains, int samples, int64_t nq, double *mx);

/* The reference's measurement set: n_meas points, round(frac n_meas) training rows drawn without replacement, the
 * rest uniform in [lo, hi]. xm [n_meas, d]. */
void nl_fp_measure_set(nl_rng *r, const double *xtr, int64_t ntr, int d, const double *lo, const double *hi, int n_meas,
                       double frac, double *xm);

double nl_fp_cpu_seconds(void);
int nl_fp_cli(int argc, char **argv);
extern const nl_experiment nl_exp_fprior;

#endif
