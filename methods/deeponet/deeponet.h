/* methods/deeponet/deeponet.h — DeepONet (Lu, Jin & Karniadakis, "Learning nonlinear operators via DeepONet based on
 * the universal approximation theorem of operators", Nature Machine Intelligence 2021; arXiv 1910.03193), after the
 * official code lululxvi/deeponet (src/deeponet_pde.py, spaces.py, system.py) and DeepXDE's OpNN.
 *
 * Operators learned (1-D, x in [0, 1], s(0) = 0):  antiderivative ds/dx = u(x);  nonlinear ODE ds/dx = -s^2 + u(x).
 * Input functions u: a Gaussian random field, RBF kernel k(x, x') = exp(-(x - x')^2 / (2 l^2)), l = 0.2, sampled on a
 * uniform grid of N = 1000 points of [0, 1] through the Cholesky factor of K + jitter I (float64, LAPACKE), and
 * evaluated anywhere else by a not-a-knot cubic spline (scipy interp1d kind="cubic", as the reference does).
 * One triple per function (the reference's format): u at m sensors linspace(0, 1, m), a point y ~ U[0, 1], and
 * G(u)(y) from the adaptive Dormand-Prince integrator (ode.h) run from 0 to y with u given by the spline.
 *
 * Unstacked DeepONet: branch b = FNN [m, 40, 40] with ReLU between layers and a linear last layer; trunk t = FNN
 * [1, 40, 40] with ReLU after every layer, the last included (DeepXDE OpNN); G(u)(y) = sum_k b_k t_k + b0 (b0 a
 * trained scalar starting at 0). The FNN baseline maps [u(sensors), y] -> s through [m + 1, H, H, 1] (ReLU, linear
 * last layer). Weights: Glorot normal as TF1's glorot_normal (truncated at 2 sd, sd = sqrt(2 / (fan_in + fan_out))
 * / 0.8796); biases 0. Loss: MSE; Adam. Everything trains in float32; data are generated in float64. As the reference,
 * the model reported is the checkpoint (every 1000 steps) with the lowest MSE on the whole training set. */
#ifndef NNLAB_DEEPONET_H
#define NNLAB_DEEPONET_H
#include "nnlab/nnlab.h"
#include "nnlab/ledger.h"
#include "deeponet/ode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Gaussian random field on a uniform grid of [0, 1] ---- */
typedef struct nl_grf {
    int64_t n;             /* grid points x_i = i / (n - 1) */
    double length_scale;   /* RBF length scale */
    double jitter;         /* the diagonal jitter the factorization needed (starts at the requested one, x10 on failure) */
    double *L;             /* (n, n) row-major lower Cholesky factor of K + jitter I (upper triangle zero) */
} nl_grf;

/* Factorizes K + jitter I (jitter > 0; multiplied by 10 up to 1e-4 while dpotrf reports "not positive definite").
 * n >= 4, length_scale > 0. */
nl_status nl_grf_init(nl_grf *g, int64_t n, double length_scale, double jitter);
void nl_grf_free(nl_grf *g);
/* count samples into out (count, n) = Z L^T with Z (count, n) standard normal from r. */
nl_status nl_grf_sample(const nl_grf *g, nl_rng *r, int64_t count, double *out);

/* ---- not-a-knot cubic spline through (i / (n - 1), y_i), i < n (n >= 4) ----
 * nl_spline_fit writes the second derivatives m (n) at the knots; work (n) scratch. nl_spline_eval evaluates at t
 * (extrapolating the end pieces outside [0, 1]). */
void nl_spline_fit(int64_t n, const double *y, double *m, double *work);
double nl_spline_eval(int64_t n, const double *y, const double *m, double t);

/* ---- operator data ---- */
typedef enum nl_deeponet_op { NL_DON_ANTIDERIV = 0, NL_DON_ODE = 1, NL_DON_OP_COUNT } nl_deeponet_op;
const char *nl_deeponet_op_name(nl_deeponet_op op); /* "antiderivative", "ode" */
nl_status nl_deeponet_op_parse(const char *s, nl_deeponet_op *op);

/* G(u)(y) for the function u on the n-point grid (its spline's second derivatives m, nl_spline_fit): integrates
 * the operator's ODE from s(0) = 0 to y >= 0; steps (may be NULL): accepted steps. */
nl_status nl_deeponet_solve(nl_deeponet_op op, int64_t n, const double *u, const double *m, double y, const nl_ode_opts *ode,
                            double *s, int64_t *steps);

typedef struct nl_deeponet_data {
    int64_t n;             /* triples (one per input function) */
    int64_t m;             /* sensors */
    float *u;              /* (n, m) u at the sensors linspace(0, 1, m) */
    float *y;              /* (n, 1) query points, U[0, 1] */
    float *s[NL_DON_OP_COUNT]; /* (n) G(u)(y) for each operator (same functions and points) */
    int64_t ode_steps;     /* accepted integrator steps over all solves (both operators) */
    int64_t rejected;      /* functions redrawn because the nonlinear ODE blew up before y (|s| >= 1e6 or no step) */
} nl_deeponet_data;

/* n triples from g with the counter-based stream (seed, stream); ode: integrator options (NULL: nl_ode_defaults). */
nl_status nl_deeponet_data_make(nl_deeponet_data *d, const nl_grf *g, int64_t n, int64_t m, uint64_t seed,
                                uint64_t stream, const nl_ode_opts *ode);
void nl_deeponet_data_free(nl_deeponet_data *d);
/* Control: permutes the rows of d->u by a seeded permutation (the branch sees another function's sensors). */
nl_status nl_deeponet_data_shuffle_u(nl_deeponet_data *d, uint64_t seed);

/* ---- models ---- */
typedef enum nl_deeponet_arch { NL_DON_DEEPONET = 0, NL_DON_FNN = 1 } nl_deeponet_arch;
#define NL_DON_MAX_LAYERS 8

typedef struct nl_deeponet_model {
    nl_deeponet_arch arch;
    nl_params ps;
    int nb, nt;                      /* layers of the branch (FNN: all layers) and of the trunk (0 for the FNN) */
    nl_var *bw[NL_DON_MAX_LAYERS];   /* branch / FNN weights [out, in] */
    nl_var *bb[NL_DON_MAX_LAYERS];   /* their biases [out] */
    nl_var *tw[NL_DON_MAX_LAYERS];   /* trunk weights [out, in] */
    nl_var *tb[NL_DON_MAX_LAYERS];   /* trunk biases [out] */
    nl_var *b0;                      /* [1] DeepONet output bias */
} nl_deeponet_model;

/* DeepONet: branch [m, width x depth], trunk [1, width x depth]; FNN: [m + 1, hidden x depth, 1]. depth >= 1 hidden
 * sizes (the paper: width 40, depth 2 -> [m, 40, 40]); dt NL_F32 or NL_F64 (gradient checks). */
nl_status nl_deeponet_model_init(nl_deeponet_model *md, nl_deeponet_arch arch, int64_t m, int64_t width, int depth,
                                 nl_dtype dt, uint64_t seed);
void nl_deeponet_model_free(nl_deeponet_model *md);
/* G(u)(y): u [B, m], y [B, 1] -> [B, 1] (NULL with the error set on a shape mismatch). */
nl_var *nl_deeponet_forward(nl_ctx *c, const nl_deeponet_model *md, nl_var *u, nl_var *y);

/* ---- training ---- */
typedef struct nl_deeponet_config {
    nl_deeponet_arch arch;
    nl_deeponet_op op;
    int64_t sensors;       /* m, 100 */
    int64_t width;         /* DeepONet width 40 */
    int64_t fnn_width;     /* FNN hidden width (50: 7701 parameters vs the DeepONet's 7401) */
    int depth;             /* hidden layers per net, 2 */
    int64_t grid;          /* GRF grid points, 1000 */
    double length_scale;   /* 0.2 */
    int64_t n_train, n_test; /* triples */
    int64_t iters;         /* Adam steps */
    int64_t batch;         /* minibatch, 256 (0: full batch, the reference) */
    double lr;             /* 1e-3 */
    int shuffle_branch;    /* control: u rows permuted across functions in training and test */
    int64_t eval_every;    /* test MSE curve every this many steps (0: only at the end) */
    int64_t ckpt_every;    /* 1000: the reference's checkpoints: every this many steps and at the last, the MSE on the
                            * whole training set; the best checkpoint is restored at the end (0: keep the last iterate) */
    uint64_t seed;         /* data (stream 1 train, 2 test) and initialization */
    int verbose;
} nl_deeponet_config;

typedef struct nl_deeponet_result {
    double train_mse, test_mse;  /* final, on the whole sets */
    double test_mse_trim;        /* test MSE without the worst 0.1% (the reference's mean_squared_error_outlier) */
    double test_mse_last;        /* test MSE of the last iterate (before the best checkpoint is restored) */
    int64_t best_step;           /* the restored checkpoint's step (iters when checkpoints are off) */
    double train_seconds;        /* optimization only */
    double data_seconds;         /* GRF + integration */
    int64_t params;
    int64_t n_curve;
    double curve_step[64], curve_test[64]; /* test MSE during training (eval_every) */
} nl_deeponet_result;

nl_deeponet_config nl_deeponet_defaults(void);
nl_status nl_deeponet_check_config(const nl_deeponet_config *cfg);
/* Trains cfg's model on given data (shapes must match cfg) and measures it. */
nl_status nl_deeponet_train(const nl_deeponet_config *cfg, const nl_deeponet_data *train, const nl_deeponet_data *test,
                            nl_deeponet_result *res);
/* Generates the data (a GRF of cfg->grid points) and trains. */
nl_status nl_deeponet_run(const nl_deeponet_config *cfg, nl_deeponet_result *res);

int nl_deeponet_cli(int argc, char **argv);
extern const nl_experiment nl_exp_deeponet;

#ifdef __cplusplus
}
#endif
#endif
