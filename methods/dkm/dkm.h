/* dkm/dkm.h — deep kernel machines (Yang, Robeyns, Milsom, Anson, Schoots & Aitchison, "A theory of
 * representation learning gives a deep generalisation of kernel methods", ICML 2023; official code
 * edwardmilsom/skr_cdkm). float64 throughout. methods/dkm/README.md has the protocol, deviations and numbers.
 *
 * ---- kernel of a Gram matrix ----
 * K(G)_ij = sqrt(G_ii G_jj)/pi (sin t + (pi - t) cos t), t = arccos(G_ij / sqrt(G_ii G_jj)): the ReLU arc-cosine
 * kernel scaled to keep the diagonal (K(G)_ii = G_ii), through lib/kernels' differentiable nl_kernel_fc (one
 * Dense(sw^2 = 1) -> ReLU -> Dense(sw^2 = 2), no biases). G_0 = X X^T / d.
 *
 * ---- full DKM (dense N x N Gram matrices; the exact objective, used by the tests) ----
 *   L(G_1..G_L) = log N(Y; 0, a K(G_L) + s2 I) - nu sum_l KL(N(0, G_l) || N(0, K(G_{l-1}))),
 *   KL(N(0,G)||N(0,K)) = 1/2 [tr(K^-1 G) - N - log|K^-1 G|].  With `linear_readout` the output covariance is
 *   G_L + s2 I instead (the setting of the paper's stationarity condition). nu -> inf gives G_l = K(G_{l-1}), the NNGP.
 *
 * ---- sparse DKM (P inducing points Z, learned; cost O(N P^2) per evaluation) ----
 * Per layer l = 1..L, from the layer below's (G_ii, G_ti, g_t) (layer 0: Z Z^T/d, X Z^T/d, |x|^2/d):
 *   K_ii = K(G_ii) + jitter I, K_ti = K(G_ti; g_t, diag G_ii), k_t = g_t (diagonal kept by K)
 *   G^l_ii = V_l V_l^T / P (V_l P x P, initialised at chol(K_ii) sqrt(P): exactly the NNGP),
 *   G^l_ti = K_ti K_ii^-1 G^l_ii,
 *   g^l_t  = k_t - diag(K_ti K_ii^-1 K_it) + diag(K_ti K_ii^-1 G^l_ii K_ii^-1 K_it),
 *   KL only on the inducing block: KL(N(0, G^l_ii) || N(0, K_ii)).
 * Output: Titsias' collapsed bound of a sparse GP with covariance a K(.) of the top layer and noise s2:
 *   log N(y; 0, Q + s2 I) - tr(K_tt - Q)/(2 s2),  Q = K_ti K_ii^-1 K_it;  objective = [that - nu sum_l KL_l] / N.
 * Prediction: test points go through the same layer maps (G_ti, g_t of the test rows from the learned G_ii);
 * the SGPR predictive mean and variance, plus s2 for y. The NNGP (`nngp` = 1, the control "G fixed at the NNGP")
 * sets G^l_ii = K_ii in every layer (no V, no KL) and trains the rest (Z, a, s2) the same way. */
#ifndef NNLAB_DKM_H
#define NNLAB_DKM_H
#include "nnlab/base.h"
#include "nnlab/autograd.h"
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

/* K(G) of a Gram matrix (symmetric: d1 = d2 = NULL) or a cross block G_ti [T, P] with the diagonals d1 [T], d2 [P]. */
nl_var *nl_dkm_kmap(nl_ctx *c, nl_var *G, nl_var *d1, nl_var *d2);

/* Full DKM objective (a scalar var, to maximise) for X [n, d] (nl_input), Y [n, m] (m output channels),
 * G[0..L) the layer Gram matrices [n, n] (vars; symmetric), nu > 0, log_a, log_s2 scalars. */
nl_var *nl_dkm_full_objective(nl_ctx *c, nl_var *X, nl_var *Y, nl_var *const *G, int L, double nu, int linear_readout,
                              nl_var *log_a, nl_var *log_s2);

typedef struct nl_dkm_config {
    int layers;         /* L >= 1 (default 2) */
    int64_t inducing;   /* P (default 100); must be <= the number of training points */
    double nu;          /* > 0 (default 1) */
    int nngp;           /* 1: G fixed at the NNGP (no V, no KL) */
    int64_t steps;      /* Adam steps (default 300) */
    double lr;          /* Adam learning rate (default 1e-2) */
    double jitter;      /* added to every K_ii (default 1e-6) */
    uint64_t seed;      /* inducing points = a seeded subset of the training rows */
    int verbose;
} nl_dkm_config;
nl_dkm_config nl_dkm_defaults(void);
nl_status nl_dkm_config_check(const nl_dkm_config *cfg, int64_t n_train);

typedef struct nl_dkm_model {
    nl_dkm_config cfg;
    int64_t d;
    nl_params ps;       /* "Z" [P, d], "V<l>" [P, P] (not for nngp), "log_a", "log_s2" */
    double *xtr, *ytr;  /* (n, d), (n) copies of the training data (prediction needs them) */
    int64_t n;
    double objective;   /* final objective per point */
    double seconds;     /* CPU seconds of the fit */
    nl_ctx *ctx;        /* graph arena reused by nl_dkm_eval (reset per call, so its memory is touched once) */
} nl_dkm_model;

/* Fit by Adam on the objective (full batch). x (n, d), y (n). */
nl_status nl_dkm_fit(const nl_dkm_config *cfg, const double *x, const double *y, int64_t n, int64_t d, nl_dkm_model *m);
/* Objective per point (no fit); grad = 1 also leaves its gradient in m->ps (for tests and timing). */
nl_status nl_dkm_eval(nl_dkm_model *m, int grad, double *obj);
/* Set up a model (parameters at the NNGP initialisation) without fitting. */
nl_status nl_dkm_init(const nl_dkm_config *cfg, const double *x, const double *y, int64_t n, int64_t d, nl_dkm_model *m);
/* Predictive mean and variance of y (noise included) at xt (t, d): mean (t), var (t). */
nl_status nl_dkm_predict(nl_dkm_model *m, const double *xt, int64_t t, double *mean, double *var);
void nl_dkm_free(nl_dkm_model *m);

/* Mean Gaussian log-likelihood of y (t) under N(mean, var). */
double nl_dkm_loglik(const double *y, const double *mean, const double *var, int64_t t);

/* Part (a): MALA samples of a one-hidden-layer deep GP of width w (= output channels, nu = 1) on n synthetic points
 * (m0 base output channels), for each width: relative Frobenius distance of the posterior mean Gram from the DKM
 * optimum (err_dkm) and from the NNGP value K(G_0) (err_nngp), both relative to |G_dkm|_F, and the acceptance rate;
 * arrays (nw, seeds).
 * methods/dkm/limit.c has the model. */
nl_status nl_dkm_limit_run(int64_t n, int64_t m0, const int64_t *widths, int nw, int seeds, int64_t burn, int64_t samples,
                           double *err_dkm, double *err_nngp, double *accept);

int nl_dkm_cli(int argc, char **argv);
extern const nl_experiment nl_exp_dkm;

#ifdef __cplusplus
}
#endif
#endif
