/* stn/stn.h — Self-Tuning Networks (MacKay, Vicol, Lorraine, Duvenaud & Grosse, ICLR 2019; official code
 * asteroidhouse/self-tuning-networks). Hyperparameters are tuned online, in one training run, by a network whose
 * weights are a learned function of the hyperparameters (a structured best-response approximation).
 * methods/stn/README.md has the protocol, the two official settings, deviations and numbers.
 *
 * ---- the hyper-layer (reference cnn/hypermodels/hyperlinear.py, HyperLinear) ----
 * x [B, in], h [B, nh] (per-example unconstrained hyperparameters, the hypernet's input):
 *   a = x We^T + be,  g = x Wh^T,  z = h U^T  [B, 2 out],
 *   y = s a + z[:, :out] * g + z[:, out:] * bh            [B, out]
 * We, Wh (out, in) and be, bh uniform(+-1/sqrt(in)); U (2 out, nh) N(0, 0.01^2); s (elem_scalar) = 1.
 * The effective weight of example i is W_i = s We + diag(z_i[:out]) Wh (a rank-structured best response w(h)).
 * nh = 0 gives a plain linear layer (Wh, bh, U unused): the fixed-hyperparameter baseline.
 * L2 penalty of example i (the tuned coefficient lambda_i): lambda_i ||W_i||_F^2 (weights, not biases), exact per
 * example through the row sums ||We_r||^2, <We_r, Wh_r>, ||Wh_r||^2.
 *
 * ---- hyperparameters (reference stn_utils/hyperparameter.py, cnn/util/hyperparameter.py) ----
 * Unconstrained vector t (nh) and perturbation scale parameters q (nh): per-example t_i = t + softplus(q) eps_i,
 * eps_i ~ N(0, I). Transforms: input dropout sigmoid(t) in (0, 1); hidden dropout 0.9 sigmoid(t) in (0, 0.9) (the
 * reference's drop_max); L2 coefficient exp(t) (t = log lambda; a deviation: the reference tunes no L2 on its CNN).
 * The hypernet sees t itself (hnet_fcn = identity). Entropy of the perturbation: H = sum_k log(softplus(q_k) sqrt(2 pi e)).
 *
 * ---- training (reference cnn/hypertrain.py) ----
 * Alternate `train_steps` weight steps and `valid_steps` hyperparameter steps:
 *   weight step: training batch, per-example perturbed t_i, dropout on with the per-example rates, loss = CE (or MSE)
 *                + L2; SGD with momentum on the weights only.
 *   hyper step:  validation batch, dropout OFF and perturbation OFF (every row t_i = t), loss = validation CE (MSE);
 *                Adam on t only. Then the scale step: the same batch, dropout off, perturbed t_i, loss = L_val - tau H;
 *                Adam on q only (the reference's --tune_scales path, where the validation batch is perturbed).
 * Warm-up: the first warmup_epochs epochs are weight steps only. */
#ifndef NNLAB_STN_H
#define NNLAB_STN_H
#include "nnlab/base.h"
#include "nnlab/data.h"
#include "nnlab/ledger.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the hyper-layer ---- */
typedef struct nl_stn_linear {
    int64_t in, out, nh;
    float *W;      /* (2 out, in): rows 0..out-1 = We, rows out..2out-1 = Wh (nh = 0: (out, in), We only) */
    float *be;     /* (out) */
    float *bh;     /* (out), NULL when nh = 0 */
    float *U;      /* (2 out, nh), NULL when nh = 0 */
    float s;       /* elem_scalar */
    float *dW, *dbe, *dbh, *dU; /* gradients, same shapes */
    float ds;
    float *vW, *vbe, *vbh, *vU; /* SGD momentum buffers, same shapes */
    float vs;
} nl_stn_linear;

nl_status nl_stn_linear_init(nl_stn_linear *l, int64_t in, int64_t out, int64_t nh, nl_rng *r);
void nl_stn_linear_free(nl_stn_linear *l);
void nl_stn_linear_zero_grad(nl_stn_linear *l);
/* Forward: x [B, in], h [B, nh] (ignored when nh = 0) -> y [B, out]; cache [B, 3 out] (nh > 0: a, g; then z is
 * [B, 2 out] in zc) may be NULL when no backward follows. ag [B, 2 out] (or [B, out]) and zc [B, 2 out] are
 * caller-owned scratch kept for the backward. */
void nl_stn_linear_forward(const nl_stn_linear *l, int64_t B, const float *x, const float *h, float *y, float *ag, float *zc);
/* Backward of y given dy [B, out]: accumulates dW, dbe, dbh, dU, ds; dzadd [B, 2 out] (or NULL) is an extra gradient
 * on z (from the L2 penalty); dx [B, in] (or NULL) and dh [B, nh] (or NULL) receive the input gradients
 * (overwritten). scratch [B, 2 out]. */
void nl_stn_linear_backward(nl_stn_linear *l, int64_t B, const float *x, const float *h, const float *ag, const float *zc,
                            const float *dy, const float *dzadd, float *dx, float *dh, float *scratch);
/* SGD with momentum (v = mom v + g; p -= lr v) on W, s, U and (when bias) be, bh. */
void nl_stn_linear_sgd(nl_stn_linear *l, double lr, double mom, int bias);
/* L2 penalty (1/B) sum_i lam[i] ||W_i||^2 of the effective weights; adds its gradient (scaled by `scale`) to dW, ds
 * and to dz[:, :out] through dzadd [B, 2 out] (or NULL when nh = 0). Returns the penalty. */
double nl_stn_linear_l2(nl_stn_linear *l, int64_t B, const float *lam, const float *zc, double scale, float *dzadd);

/* ---- hyperparameter transforms ---- */
typedef enum nl_stn_hkind { NL_STN_HK_INDROP = 0, NL_STN_HK_DROP, NL_STN_HK_LOGL2 } nl_stn_hkind;
double nl_stn_hparam(nl_stn_hkind k, double t);     /* constrained value of unconstrained t */
double nl_stn_hparam_inv(nl_stn_hkind k, double v); /* unconstrained t of a value */
double nl_stn_softplus(double x);
double nl_stn_entropy(const double *q, int nh);     /* H = sum log(softplus(q) sqrt(2 pi e)) */

/* ---- tuner state: t, q and their Adam moments ---- */
typedef struct nl_stn_tuner {
    int nh;
    double t[8], q[8];
    double mt[8], vt[8], mq[8], vq[8];
    int64_t steps_t, steps_q;
    double lr_t, lr_q, tau;
} nl_stn_tuner;
void nl_stn_tuner_init(nl_stn_tuner *tu, int nh, const double *t0, double scale0, double lr_t, double lr_q, double tau);
/* Per-example perturbed (perturb = 1) or unperturbed rows of t: h [B, nh]; eps [B, nh] the noise (or NULL when not
 * perturbing). */
void nl_stn_tuner_sample(const nl_stn_tuner *tu, int64_t B, int perturb, nl_rng *r, float *h, float *eps);
/* Adam step on t from dh [B, nh] (the rows are all t: dL/dt = sum over rows). */
void nl_stn_tuner_step_t(nl_stn_tuner *tu, int64_t B, const float *dh);
/* Adam step on q from dh [B, nh] and eps [B, nh] of a perturbed pass, minimising L - tau H. */
void nl_stn_tuner_step_q(nl_stn_tuner *tu, int64_t B, const float *dh, const float *eps);

/* ---- ridge regression (the closed-form best response test) ---- */
typedef struct nl_stn_ridge_cfg {
    int64_t steps;          /* alternation cycles */
    int train_steps, valid_steps;
    double lr_w, momentum;  /* SGD on the weights */
    double lr_t, lr_q, tau; /* Adam on log lambda and on the scale; entropy weight */
    double t0, scale0;      /* start log lambda and perturbation scale */
    uint64_t seed;
} nl_stn_ridge_cfg;
nl_stn_ridge_cfg nl_stn_ridge_defaults(void);
/* Linear model f(x) = w(h)^T x (one hyper-layer, out = 1, no bias used), training loss (1/n) sum (y - f)^2 +
 * lambda ||w||^2, full-batch steps; X (n, d), y (n); validation Xv (nv, d), yv (nv). *log_lambda the tuned value. */
nl_status nl_stn_ridge_tune(const nl_stn_ridge_cfg *cfg, const float *X, const float *y, int64_t n, const float *Xv,
                            const float *yv, int64_t nv, int64_t d, double *log_lambda);
/* Exact validation MSE of the closed-form ridge solution w = (X^T X + n lambda I)^{-1} X^T y. */
nl_status nl_stn_ridge_val_loss(const float *X, const float *y, int64_t n, const float *Xv, const float *yv, int64_t nv,
                                int64_t d, double log_lambda, double *loss);

/* ---- the MLP on Fashion-MNIST ---- */
#define NL_STN_NH 4 /* input dropout, hidden dropout 1, hidden dropout 2, log L2 */
typedef struct nl_stn_config {
    int64_t hidden;          /* 784-hidden-hidden-10 */
    int64_t epochs, warmup_epochs, batch;
    int train_steps, valid_steps; /* 2:1 (the STN paper's setting) */
    double lr_w, momentum;   /* SGD 0.01, 0.9 */
    double lr_t, lr_q, tau;  /* Adam on t and q; entropy weight */
    double start_drop, start_indrop, start_l2, scale0;
    int tune;                /* 1: STN; 0: the control (hyperparameter updates off, t and q frozen) */
    int fixed;               /* 1: plain MLP with fixed hyperparameters (the grid): fixed_drop, fixed_l2 */
    double fixed_drop, fixed_l2;
    uint64_t seed;
    int verbose;
} nl_stn_config;
nl_stn_config nl_stn_defaults(void);

typedef struct nl_stn_result {
    double test_loss, test_acc;  /* at the epoch with the lowest validation loss */
    double val_loss, best_epoch;
    double final_test_loss;
    double hp[NL_STN_NH];        /* final constrained hyperparameters (indrop, drop1, drop2, l2) */
    double seconds;              /* CPU seconds of the run */
} nl_stn_result;
/* Train on tr, tune on va (STN) or select the epoch on va (all), report on te. */
nl_status nl_stn_run(const nl_stn_config *cfg, const nl_dataset *tr, const nl_dataset *va, const nl_dataset *te,
                     nl_stn_result *out);
/* Fashion-MNIST: the first n_total training images split seeded into train / 20% validation, the first n_test test
 * images; standardised on the training part. */
nl_status nl_stn_load(int64_t n_total, int64_t n_test, uint64_t seed, nl_dataset *tr, nl_dataset *va, nl_dataset *te);

/* ---- registration ---- */
extern const nl_experiment nl_exp_stn;
extern const nl_method nl_method_stn;
int nl_stn_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
