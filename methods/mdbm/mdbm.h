/* methods/mdbm — Monotone deep Boltzmann machines (Feng, Winston & Kolter, TMLR 2023; README.md here).
 *
 * Units come in one-hot groups (a binary pixel is a group of 2, a hidden group of K, the class a group of 10).
 * Pairwise weights A = blkdiag(V^T V) - V^T V with V = W D, D = diag(sqrt(s_g)) per column group and
 * s_g = min(1, (1 - m) / ||W_g||_2^2): A is hollow (no coupling inside a group) and I - A >= m I (monotone).
 * Mean-field fixed point q = softmax_group(A q + b) with observed groups clamped, found by damped forward-backward
 * splitting q <- prox^alpha_f((1 - alpha) q + alpha (A q + b)), f = sum q log q - 1/2 ||q||^2, with Anderson
 * acceleration; gradients by the implicit function theorem, the adjoint solved the same way. */
#ifndef NNLAB_MDBM_H
#define NNLAB_MDBM_H
#include "nnlab/ledger.h"
#include "nnlab/data.h"
#include <stdint.h>

#define NL_MDBM_MAX_GROUP 16

typedef struct nl_mdbm {
    int64_t n;        /* total units */
    int64_t n_groups; /* groups */
    int64_t r;        /* rows of W */
    int64_t *goff;    /* (n_groups + 1) group offsets into the units */
    int *gsize;       /* (n_groups) group sizes, each <= NL_MDBM_MAX_GROUP */
    float *w;         /* (r, n) raw weights W */
    float *b;         /* (n) biases */
    double margin;    /* m: I - A >= m I */
    int project;      /* 1: the monotone scaling s_g; 0: s_g = 1 (the control) */
    /* derived by nl_mdbm_refresh: */
    float *v;         /* (r, n) V = W D */
    double *s;        /* (n_groups) s_g */
    double *lam;      /* (n_groups) ||W_g||_2^2 */
    double *evec;     /* (n, ) top eigenvector of W_g^T W_g, stored in the group's slots */
    float *bd;        /* (sum_g k_g^2) blocks V_g^T V_g, row-major, at offset bdoff[g] */
    int64_t *bdoff;   /* (n_groups) */
} nl_mdbm;

/* groups: n_groups sizes; W ~ N(0, 1/r), b = 0, from the seed. */
nl_status nl_mdbm_init(nl_mdbm *m, const int *gsizes, int64_t n_groups, int64_t r, double margin, uint64_t seed);
void nl_mdbm_free(nl_mdbm *m);
/* Recompute V, s, the blocks (after W changed or project toggled). */
nl_status nl_mdbm_refresh(nl_mdbm *m);

/* prox^alpha_f(y) on one group of k: argmin_x 1/2||x - y||^2 + alpha (sum x log x - 1/2||x||^2) over the simplex. */
void nl_mdbm_prox(const double *y, int k, double alpha, double *x);
/* the same, x in: a warm start (used for binary groups when inside (0, 1)), out: the prox */
void nl_mdbm_prox_warm(const double *y, int k, double alpha, double *x);

typedef struct nl_mdbm_solve_opts {
    double alpha;   /* initial damping (0.125), halved after each failed round */
    int halvings;   /* rounds after the first (3) */
    int max_iter;   /* iterations per round (50) */
    double tol;     /* relative residual ||T(x) - x|| / (||T(x)|| + 1e-5) (1e-3) */
    int anderson_m; /* history (5); 0: plain damped iteration */
    double lambda;  /* Anderson ridge (1e-4) */
} nl_mdbm_solve_opts;
nl_mdbm_solve_opts nl_mdbm_solve_defaults(void);

/* Forward: q (B, n) in: starting point (ignored on clamped units), out: the fixed point. clamp (B, n_groups): 1 for
 * an observed group, whose q entries must already hold its one-hot value. conv (B) out: 1 where converged; iters
 * (may be NULL) out: total iterations; alpha_used out: the damping of the last round. */
nl_status nl_mdbm_forward(const nl_mdbm *m, int64_t B, const uint8_t *clamp, float *q, const nl_mdbm_solve_opts *o,
                          uint8_t *conv, int64_t *iters, double *alpha_used);
/* Backward: given dL/dq (B, n) at the fixed point q, add dL/dW, dL/db into gw (r, n), gb (n). alpha: the forward's.
 * conv (B) out: adjoint convergence. */
nl_status nl_mdbm_backward(const nl_mdbm *m, int64_t B, const uint8_t *clamp, const float *q, const float *dq,
                           double alpha, const nl_mdbm_solve_opts *o, float *gw, float *gb, uint8_t *conv);
/* Add the direct gradient of sum_b v_b^T (dA q_b + db) into gw (r, n), gb (n); v, q (B, n). */
nl_status nl_mdbm_accum_grad(const nl_mdbm *m, int64_t B, const float *q, const float *v, float *gw, float *gb);
/* z = A q without the bias, (B, n); tmp (B, r). */
void nl_mdbm_apply_a(const nl_mdbm *m, int64_t B, const float *q, float *z, float *tmp);
/* z = A q + b, (B, n). */
void nl_mdbm_field(const nl_mdbm *m, int64_t B, const float *q, float *z);

/* ---- the experiment: binarised Fashion-MNIST, 40% of pixels observed ---- */
typedef struct nl_mdbm_config {
    int64_t n_train, n_test, n_ctrl; /* images; n_ctrl test images for the unprojected control */
    int hidden_groups, hidden_k;      /* hidden layer: groups x size */
    int64_t rank;                     /* rows of W */
    int epochs, batch;
    double lr;                        /* Adam */
    double observed;                  /* fraction of pixels observed (0.4) */
    uint64_t seed;
    int verbose;
} nl_mdbm_config;
nl_mdbm_config nl_mdbm_defaults(void);

typedef struct nl_mdbm_result {
    double acc, completion, marginal, converged, ctrl_converged, ctrl_acc, ctrl_completion;
    double mean_iters, ctrl_mean_iters, train_seconds, eval_seconds, min_s, mean_s;
    double train_conv; /* fraction of training forward solves converged */
} nl_mdbm_result;
nl_status nl_mdbm_run(const nl_mdbm_config *c, const nl_dataset *tr, const nl_dataset *te, nl_mdbm_result *r);

int nl_mdbm_cli(int argc, char **argv);
extern const nl_experiment nl_exp_mdbm;
#endif
