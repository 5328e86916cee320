/* gp/gp.h — stationary GP regression baselines (float64): RBF / Matern-5/2 ARD kernels, the GP prior
 * sampler used to train PFNs (Mueller et al. 2021, "Transformers Can Do Bayesian Inference"), the exact GP
 * posterior predictive, the log marginal likelihood with its gradient, type-II ML / MAP fitting, and a fully
 * Bayesian baseline that marginalises the hyperparameters by MCMC. lib/gp/README.md has the formulas.
 *
 * Kernels (r^2 = sum_i ((x_i - x'_i) / ls_i)^2, one lengthscale per input dimension, "ARD"):
 *   RBF:         k = outputscale * exp(-r^2 / 2)
 *   Matern-5/2:  k = outputscale * (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r)
 * Observation model: y = f(x) + eps, f ~ GP(0, k), eps ~ N(0, noise). Zero prior mean (no constant mean).
 *
 * Hyperprior (nl_gpr_hyperprior_botorch): BoTorch SingleTaskGP as used by the official PFN code
 * (automl/TransformersCanDoBayesianInference, priors/fast_gp_mix.py get_model): Matern nu=2.5 with ARD,
 *   lengthscale_i ~ Gamma(3.0, 6.0)  (concentration, rate; mean 0.5), independently per dimension,
 *   outputscale   ~ Gamma(2.0, 0.15) (mean 13.3),
 *   noise         ~ Gamma(1.1, 0.05) (mean 22), bounded below by 1e-4 (BoTorch MIN_INFERRED_NOISE_LEVEL).
 * The implementation notes also quote "noise ~ Gamma(0.0001, 1.0)" for the paper's Sec. 5.2 setting; the
 * official code that runs the MLE-II / NUTS baselines uses GammaPrior(noise_concentration=1.1, noise_rate=0.05)
 * with GreaterThan(1e-4) (both get_model's defaults and the fast_gp_mix.py __main__ defaults), which is also
 * BoTorch's SingleTaskGP default, so that is what we use; the 1e-4 is the noise lower bound, not a Gamma
 * parameter. The outputscale concentration is 2.0 in the __main__ script that ran the baselines (get_model's own
 * default is 0.5); we use 2.0 = BoTorch's default. All fields are plain numbers: change them for other settings.
 *
 * Numerics: A = K + noise I is factored by nl_gp_fit (below). If that fails (not positive definite), the
 * factorisation is retried once with jitter 1e-8 * outputscale added to the diagonal (the returned
 * likelihood/predictions then include that jitter); a second failure returns NL_ELINALG. The prior sampler
 * does the same with nl_cholesky_inplace.
 *
 * Errors: NL_EINVAL with a message naming the function and the bad value (dim outside 1..NL_GPR_MAX_DIM,
 * non-positive or non-finite hyperparameter, n < 0, NaN/Inf in inputs, NULL buffers); NL_ELINALG as above;
 * NL_ENOMEM. Functions are thread-safe (no shared mutable state; the prior sampler's scratch is thread-local). */
#ifndef NNLAB_GPREG_H
#define NNLAB_GPREG_H
#include "nnlab/base.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_GPR_MAX_DIM 16

typedef enum nl_gpr_kernel { NL_GPR_RBF = 0, NL_GPR_MATERN52 = 1 } nl_gpr_kernel;

/* One GP: k(x, x') = outputscale * kern(r), r^2 = sum_i ((x_i - x'_i) / ls_i)^2. */
typedef struct nl_gpr_hyper {
    nl_gpr_kernel kernel;
    int dim;                              /* input dimension d, 1..NL_GPR_MAX_DIM */
    double lengthscale[NL_GPR_MAX_DIM];   /* ARD lengthscales, entries 0..dim-1 used, > 0 */
    double outputscale;                   /* > 0 */
    double noise;                         /* observation noise variance, > 0 */
} nl_gpr_hyper;

/* Independent Gamma(concentration a, rate b) priors (BoTorch / torch parametrisation: density
 * b^a x^(a-1) e^(-b x) / Gamma(a), mean a/b); the same lengthscale prior for every dimension. */
typedef struct nl_gpr_hyperprior {
    nl_gpr_kernel kernel;
    int dim;
    double ls_a, ls_b, os_a, os_b, noise_a, noise_b;
    double noise_min;                     /* lower bound on the noise (BoTorch 1e-4); samples are clamped to it,
                                             fitting and MCMC keep noise >= noise_min */
} nl_gpr_hyperprior;

/* All lengthscales = ls. */
nl_gpr_hyper nl_gpr_hyper_default(nl_gpr_kernel k, int dim, double ls, double os, double noise);
/* Matern-5/2; ls ~ Gamma(3, 6), os ~ Gamma(2, 0.15), noise ~ Gamma(1.1, 0.05), noise_min 1e-4 (see above). */
nl_gpr_hyperprior nl_gpr_hyperprior_botorch(int dim);
/* "rbf" | "matern52" (also "matern" and "matern-5/2"); anything else NL_EINVAL. */
nl_status nl_gpr_parse_kernel(const char *s, nl_gpr_kernel *out);
const char *nl_gpr_kernel_name(nl_gpr_kernel k);
/* Check a hyperparameter set / hyperprior (NL_EINVAL naming `who` and the bad field). */
nl_status nl_gpr_hyper_check(const nl_gpr_hyper *h, const char *who);
nl_status nl_gpr_hyperprior_check(const nl_gpr_hyperprior *p, const char *who);

/* Kernel matrix without noise: x1 [n1, d], x2 [n2, d] -> K [n1, n2]. */
nl_status nl_gpr_kernel_matrix(const nl_gpr_hyper *h, const double *x1, int64_t n1, const double *x2, int64_t n2,
                               double *K);

/* One hyperparameter draw from the hyperprior (noise clamped below at noise_min). */
nl_status nl_gpr_hyper_sample(const nl_gpr_hyperprior *p, nl_rng *rng, nl_gpr_hyper *out);
/* Log density of h's hyperparameters under p, in the natural (positive) parametrisation:
 * sum_i log Gamma(ls_i; a, b) + log Gamma(os) + log Gamma(noise) (the clamp is ignored; -inf if noise <
 * noise_min). This is what gpytorch adds to the marginal likelihood for MAP. h->dim must equal p->dim. */
double nl_gpr_hyperprior_logpdf(const nl_gpr_hyperprior *p, const nl_gpr_hyper *h);

/* ---- prior datasets (PFN training data) ----
 * One prior dataset: x ~ U[0,1]^d, y ~ N(0, K + noise I). x [n, d], y [n]. Uses a thread-local scratch
 * buffer (grown on demand, O(n^2) doubles) so repeated calls do no malloc; nl_gpr_scratch_release frees the
 * calling thread's buffer. Cost: n^2 d kernel entries + one n^3/3 Cholesky + n^2/2 for L z. */
nl_status nl_gpr_prior_sample(const nl_gpr_hyper *h, nl_rng *rng, int64_t n, double *x, double *y);
/* Same with x given (not drawn): x [n, d] in, y [n] out ~ N(0, K(x, x) + noise I). */
nl_status nl_gpr_prior_sample_at(const nl_gpr_hyper *h, nl_rng *rng, int64_t n, const double *x, double *y);
void nl_gpr_scratch_release(void);

/* ---- exact GP posterior ----
 * Posterior predictive of y at xq given (xc, yc) (n may be 0: the prior):
 *   mean = k_q^T A^{-1} yc, var = os + noise - k_q^T A^{-1} k_q (INCLUDING the noise), A = K + noise I.
 * xc [n, d], yc [n], xq [m, d] -> mean [m], var [m]; if yq [m] != NULL, nll [m] = -log N(yq | mean, var)
 * (nll may be NULL when yq is NULL). Uses nl_gp_fit / nl_gp_predict / nl_gp_variance (below). */
nl_status nl_gpr_predict(const nl_gpr_hyper *h, const double *xc, const double *yc, int64_t n, const double *xq,
                         int64_t m, double *mean, double *var, const double *yq, double *nll);

/* Log marginal likelihood log N(y | 0, K + noise I) of x [n, d], y [n] (n >= 1), and if grad != NULL its
 * gradient w.r.t. theta = (log ls_1 .. log ls_d, log outputscale, log noise), grad [d + 2]:
 *   d lml / d theta_j = 1/2 tr((alpha alpha^T - A^{-1}) dA/dtheta_j),  alpha = A^{-1} y. */
nl_status nl_gpr_lml(const nl_gpr_hyper *h, const double *x, const double *y, int64_t n, double *lml, double *grad);

/* Type-II maximum likelihood (prior == NULL) or MAP (prior != NULL: maximises lml + nl_gpr_hyperprior_logpdf,
 * which is what BoTorch's fit_gpytorch_model does for SingleTaskGP, i.e. the paper's "MLE-II").
 * Optimiser: L-BFGS (memory 7) with a backtracking Armijo line search on
 * u = (log ls_1..d, log os, log(noise - noise_min)) (so noise > noise_min without constraints), u clamped to
 * [-15, 15]; at most `iters` iterations per start, stopped earlier when the gradient max-norm < 1e-6.
 * Kernel and dim: from prior if given, else from *out on entry (out->kernel and out->dim must be set).
 * Starts: the first at the prior means (prior != NULL) or at ls = 0.5, os = 1, noise = 0.1; the other
 * restarts - 1 drawn from the prior, or without a prior from log ls ~ U[log 0.05, log 5], log os ~
 * U[log 0.1, log 10], log noise ~ U[log 1e-4, log 1]. The best objective wins. noise_min without a prior: 1e-6.
 * x [n, d], y [n], n >= 1. */
nl_status nl_gpr_fit_mle(const nl_gpr_hyperprior *prior, const double *x, const double *y, int64_t n, int restarts,
                         int iters, nl_rng *rng, nl_gpr_hyper *out);

/* Fully Bayesian GP: hyperparameters marginalised by MCMC under the hyperprior (p required). Sampler:
 * univariate slice sampling (Neal 2003, stepping out + shrinkage, width 1.0 in u-space) sweeping over the
 * coordinates u = (log ls_1..d, log os, log(noise - noise_min)) with the Jacobian of that transform included,
 * target log p(u | x, y) = lml + log prior + log Jacobian. Starts at the prior means. n_warmup sweeps are
 * discarded, then each of n_samples sweeps gives one sample. Predictive = equal-weight mixture of the sample
 * GPs: mean [m] = mean_s mean_s, var [m] = mean_s (var_s + mean_s^2) - mean^2 (noise included), and if
 * yq != NULL, nll [m] = -log(mean_s N(yq | mean_s, var_s)) (logsumexp). x [n, d] (n >= 0; n = 0 samples the
 * prior), y [n], xq [m, d]. */
nl_status nl_gpr_mcmc_predict(const nl_gpr_hyperprior *p, const double *x, const double *y, int64_t n,
                              const double *xq, int64_t m, int n_warmup, int n_samples, nl_rng *rng, double *mean,
                              double *var, const double *yq, double *nll);
/* The same, also returning the hyperparameter samples: samples [n_samples] (may be NULL). */
nl_status nl_gpr_mcmc_predict_ex(const nl_gpr_hyperprior *p, const double *x, const double *y, int64_t n,
                                 const double *xq, int64_t m, int n_warmup, int n_samples, nl_rng *rng,
                                 double *mean, double *var, const double *yq, double *nll, nl_gpr_hyper *samples);

/* ---- kernel ridge regression / GP posterior by Cholesky ----
 * A = K + (diag_reg * trace(K) / n + noise) I (diag_reg relative as in neural-tangents, noise absolute), A = L L^T.
 * Not positive definite -> NL_ELINALG with the failing pivot and the regulariser used. */
#define NL_GP_OVERWRITE_K 1  /* factor K in place (gp->L points into the caller's K; saves n^2 doubles) */

typedef struct nl_gp {
    int64_t n, k;          /* training points, target columns */
    double *L;             /* (n, n) lower Cholesky factor of A (owned unless NL_GP_OVERWRITE_K) */
    int owns_L;
    double *alpha;         /* (n, k) A^{-1} Y, owned */
    double reg;            /* diagonal added to K */
    double logdet;         /* log det A */
    double quad;           /* sum over columns of y^T A^{-1} y */
    double nll;            /* negative log marginal likelihood summed over the k columns:
                              0.5 quad + 0.5 k logdet + 0.5 k n log(2 pi) */
} nl_gp;

/* K (n, n) symmetric training kernel (only the lower triangle is read), Y (n, k) targets. */
nl_status nl_gp_fit(nl_gp *gp, double *K, int64_t n, const double *Y, int64_t k, double diag_reg, double noise,
                    int flags);
void nl_gp_free(nl_gp *gp);
/* Posterior mean: Ks (t, n) kernel between test and training points -> mean (t, k) = Ks A^{-1} Y. */
nl_status nl_gp_predict(const nl_gp *gp, const double *Ks, int64_t t, double *mean);
/* Posterior variance of each test point: kss (t) = k(x*, x*) -> var (t) = kss - diag(Ks A^{-1} Ks^T)
 * (latent function; add the noise for the observation variance). Uses t * n extra doubles. */
nl_status nl_gp_variance(const nl_gp *gp, const double *Ks, const double *kss, int64_t t, double *var);
/* Classification: one-hot targets Y (n, C) = onehot(labels) (pos for the class, neg elsewhere); the
 * prediction is the argmax of the posterior mean. */
void nl_onehot(const int32_t *labels, int64_t n, int n_classes, double pos, double neg, double *Y);
nl_status nl_gp_classify(const nl_gp *gp, const double *Ks, int64_t t, int32_t *pred);


#ifdef __cplusplus
}
#endif
#endif
