/* wide_deep/wide_deep.h — infinitely wide AND infinitely deep networks as kernel classifiers
 * (Radhakrishnan, Belkin, Uhler, "Wide and Deep Neural Networks Achieve Optimality for Classification", 2022;
 * official code uhlerlab/inf_depth_ntks). methods/wide_deep/README.md has the formulas, the experiment and the numbers.
 *
 * Inputs lie on the unit sphere. A network's activation is normalised so that its dual
 * phi(xi) = sum_i a_i^2 xi^i (xi = cosine of the angle between two inputs) has phi(1) = 1. With xi_0 = x.z and
 * K_0 = xi_0, each layer does
 *
 *     xi_{l+1} = phi(xi_l)                       (clamped into [-1, 1])
 *     K_{l+1}  = phi(xi_l) + K_l * phi'(xi_l)    (phi' at the OLD xi)
 *
 * After L layers, xi_L is the NNGP and K_L the NTK. The classifier is sign(y^T K_train^{-1} k(x)) with no ridge;
 * for the NNGP the training diagonal is forced to 1 (as the official code does).
 *
 * Large depth: the iterates of fast-contracting duals (hermite_k: xi^(k^L)) underflow and the NTK diagonal of
 * expanding duals (phi'(1) = 4 for 2d_opt: K ~ 4^L) overflows. Every value is therefore carried as a scaled
 * number m * 2^e (m a double, e an integer-valued double), renormalised when |m| leaves [2^-600, 2^600].
 * Where |xi| < 2^-600 the dual is replaced by its leading term (a_1^2 xi when a_0 = 0; exact for xi^k), which is
 * exact to double precision there. Kernel matrices come back scaled: one power of two for the whole training
 * matrix and one per test column, which leaves sign(y^T K^{-1} k) unchanged. */
#ifndef NNLAB_WIDEDEEP_H
#define NNLAB_WIDEDEEP_H
#include "nnlab/ledger.h"
#include <stdint.h>
#include "nnlab/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dual activations ---- */
typedef enum nl_wide_deep_dual_kind {
    NL_WIDE_DEEP_RELU = 0, /* (xi (pi - arccos xi) + sqrt(1 - xi^2)) / pi            */
    NL_WIDE_DEEP_ERF,      /* arcsin(2 xi / 3) / arcsin(2 / 3)                        */
    NL_WIDE_DEEP_SINE,     /* sinh(a xi) / sinh(a)                         ("sine_a") */
    NL_WIDE_DEEP_HERMITE,  /* xi^k, k integer in [1, 64]                  ("hermite_k") */
    NL_WIDE_DEEP_OPT2D,    /* xi^7 / 2 + xi / 2                                       */
    NL_WIDE_DEEP_OPT3D,    /* xi^3 / 2 + xi / 2                                       */
    NL_WIDE_DEEP_OPT5D,    /* xi^3 / 4 + xi^2 / 2 + xi / 4                           */
    NL_WIDE_DEEP_OPT9D,    /* xi^3 / 16 + 7 xi^2 / 8 + xi / 16                        */
    NL_WIDE_DEEP_DUAL_COUNT
} nl_wide_deep_dual_kind;

typedef struct nl_wide_deep_dual {
    nl_wide_deep_dual_kind kind;
    double a;      /* sine: a > 0; hermite: the degree k; otherwise 0 */
    char name[32]; /* canonical name: "relu", "erf", "sine_2.676", "hermite_3", "2d_opt", ... */
} nl_wide_deep_dual;

/* Parse "relu", "erf", "sine_<a>", "hermite_<k>", "2d_opt", "3d_opt", "5d_opt", "9d_opt".
 * Unknown names / bad parameters: NL_EINVAL with a message listing the valid names. */
nl_status nl_wide_deep_dual_parse(const char *name, nl_wide_deep_dual *d);
/* phi(xi) and phi'(xi) for xi in [-1, 1] (plain doubles; no scaling). */
double nl_wide_deep_phi(const nl_wide_deep_dual *d, double xi);
double nl_wide_deep_dphi(const nl_wide_deep_dual *d, double xi);

/* Taxonomy of the paper (L -> infinity, classification):
 *   a_0 = phi(0) > 0 and phi'(1) <= 1       -> every iterate -> 1: majority vote          (ReLU)
 *   a_0 = 0 and a_1^2 = phi'(0) = 0         -> 1-nearest neighbour                        (hermite_k, k >= 2)
 *   a_0 = 0 and 0 < phi'(0) < 1 < phi'(1)   -> singular kernel (1 - xi)^(-r),
 *                                              r = ln(1/phi'(0)) / ln phi'(1)             (erf, sine_a, *_opt)
 *   anything else                           -> NL_WIDE_DEEP_CLASS_OTHER */
typedef enum nl_wide_deep_class { NL_WIDE_DEEP_CLASS_MAJORITY = 0, NL_WIDE_DEEP_CLASS_1NN, NL_WIDE_DEEP_CLASS_SINGULAR, NL_WIDE_DEEP_CLASS_OTHER } nl_wide_deep_class;
/* Class of the dual; *r (may be NULL) gets the singular exponent (NAN for other classes). The singular kernel
 * equals the consistent Devroye/Hilbert estimate on the (d-1)-sphere in R^d when r = (d - 1) / 2. */
nl_wide_deep_class nl_wide_deep_dual_class(const nl_wide_deep_dual *d, double *r);
const char *nl_wide_deep_class_name(nl_wide_deep_class c);

/* ---- one kernel entry ---- */
/* A scaled number: value = m * 2^e. */
typedef struct nl_wide_deep_num {
    double m, e;
} nl_wide_deep_num;
double nl_wide_deep_num_value(nl_wide_deep_num v); /* m * 2^e (may underflow to 0 or overflow to inf) */
double nl_wide_deep_num_log2(nl_wide_deep_num v);  /* log2 |value| (-inf for 0) */

/* Reference recursion in plain doubles (under/overflows at large depth; for checks). nngp/ntk may be NULL. */
void nl_wide_deep_entry_direct(const nl_wide_deep_dual *d, double xi0, int64_t depth, double *nngp, double *ntk);
/* Scaled recursion (finite at any depth the dual allows, see nl_wide_deep_check_depth). nngp/ntk may be NULL. */
void nl_wide_deep_entry_scaled(const nl_wide_deep_dual *d, double xi0, int64_t depth, nl_wide_deep_num *nngp, nl_wide_deep_num *ntk);
/* NL_EINVAL when depth < 0, or for hermite_k when k^depth > 2^1000 (the exponents themselves would overflow). */
nl_status nl_wide_deep_check_depth(const nl_wide_deep_dual *d, int64_t depth);

/* ---- kernel matrices ---- */
#define NL_WIDE_DEEP_NNGP 1
#define NL_WIDE_DEEP_NTK 2

/* K (n, m) = kernel (NL_WIDE_DEEP_NNGP or NL_WIDE_DEEP_NTK) at `depth` between the rows of A (n, dim) and B (m, dim), all
 * rows unit norm (checked to 1e-6: NL_EINVAL otherwise). If col_log2 (m) is NULL, K holds plain values (which may
 * under/overflow); otherwise column j is scaled by 2^-col_log2[j], col_log2[j] = the largest log2|K[., j]|
 * rounded down. With same_points != 0 (A == B, n == m) the diagonal uses xi_0 = 1 exactly and, for the NNGP,
 * is set to 1. OpenMP over entries. */
nl_status nl_wide_deep_kernel_matrix(const nl_wide_deep_dual *d, int kernel, int64_t depth, const double *A, int64_t n, const double *B,
                              int64_t m, int64_t dim, int same_points, double *K, double *col_log2);

/* ---- the classifier sign(y^T K_train^{-1} k(x)) at several depths in one pass ---- */
typedef struct nl_wide_deep_solve_info {
    nl_status status; /* NL_OK, or NL_ELINALG when K_train is singular in floating point (no predictions) */
    double rcond;     /* LAPACK dgecon reciprocal 1-norm condition number of the (scaled) K_train */
    double log2scale; /* K_train was divided by 2^log2scale before the solve */
    char msg[256];    /* for status != NL_OK: what happened */
} nl_wide_deep_solve_info;

/* Xtr (n, dim) and Xte (m, dim) unit-norm rows, y (n) labels +-1, depths (nd) strictly increasing, >= 0.
 * kernels: NL_WIDE_DEEP_NNGP | NL_WIDE_DEEP_NTK. Outputs (either may be NULL when its kernel is not requested):
 *   pred_nngp / pred_ntk (nd, m): +1 / -1 (0 where the solve failed; an exact 0 score counts as +1, like the
 *   official code), info_nngp / info_ntk (nd).
 * The recursion is advanced once from depth to depth; K_train (n, n) is stored once at a time (O(n^2) memory,
 * plus 4 doubles per training pair for the state). A singular K_train is reported in the info (status
 * NL_ELINALG, message) and is not an error of the call; bad arguments are (NL_EINVAL). */
nl_status nl_wide_deep_predict(const nl_wide_deep_dual *d, int kernels, const double *Xtr, const double *y, int64_t n, const double *Xte,
                        int64_t m, int64_t dim, const int64_t *depths, int nd, int8_t *pred_nngp, int8_t *pred_ntk,
                        nl_wide_deep_solve_info *info_nngp, nl_wide_deep_solve_info *info_ntk);

/* ---- the Dirichlet-on-the-sphere data and the baselines ---- */
/* Dirichlet(alpha) samples (Gamma draws normalised to the simplex) mapped to the unit sphere: X (n, dim). The
 * simplex point is recoverable as X / sum(X). Like the official code, class +1 (alpha1) gets exactly
 * floor(total * prior1) of total = n_train + n_test points, class -1 (alpha2) the rest; the points are shuffled
 * and split. A training set with two points at xi_0 >= 1 in floating point (duplicates) is redrawn.
 * Xtr (n_train, dim), ytr (n_train), Xte (n_test, dim), yte (n_test). */
nl_status nl_wide_deep_dirichlet_data(const double *alpha1, const double *alpha2, int dim, double prior1, int64_t n_train,
                               int64_t n_test, uint64_t seed, double *Xtr, double *ytr, double *Xte, double *yte);
/* log Dirichlet(alpha) density at the simplex point s (dim), s_i >= 0, sum 1. */
double nl_wide_deep_dirichlet_logpdf(const double *alpha, int dim, const double *s);
/* Bayes-optimal labels for points X (m, dim) on the sphere: +1 where prior1 p1(s) > (1 - prior1) p2(s). */
void nl_wide_deep_bayes_predict(const double *alpha1, const double *alpha2, int dim, double prior1, const double *X, int64_t m,
                         int8_t *pred);
/* 1-nearest neighbour (largest x.z, first index on ties). */
void nl_wide_deep_1nn_predict(const double *Xtr, const double *y, int64_t n, const double *Xte, int64_t m, int64_t dim,
                       int8_t *pred);
/* Devroye / Hilbert-kernel estimate sign(sum_i y_i ||x - x_i||^-(dim - 1)) (an exact duplicate decides alone). */
void nl_wide_deep_devroye_predict(const double *Xtr, const double *y, int64_t n, const double *Xte, int64_t m, int64_t dim,
                           int8_t *pred);
/* Majority vote of the training labels (+1 only with strictly more +1 labels, as the official code). */
void nl_wide_deep_majority_predict(const double *y, int64_t n, int64_t m, int8_t *pred);
/* Helpers: fraction of pred != y, and fraction of a == b. */
double nl_wide_deep_error(const int8_t *pred, const double *y, int64_t m);
double nl_wide_deep_agreement(const int8_t *a, const int8_t *b, int64_t m);

/* ---- the experiment (the ledger entry `wide-deep` and `nnlab widedeep`) ---- */
#define NL_WIDE_DEEP_MAX_DUALS 12
#define NL_WIDE_DEEP_MAX_DEPTHS 12
typedef struct nl_wide_deep_config {
    int dim;                       /* 2, 3, 5 or 9: picks the class alphas (nl_wide_deep_alphas) */
    int64_t n_train, n_test;
    double prior1;                 /* 0.4 */
    uint64_t seed;
    int n_duals;
    char duals[NL_WIDE_DEEP_MAX_DUALS][32];
    int n_depths;
    int64_t depths[NL_WIDE_DEEP_MAX_DEPTHS]; /* strictly increasing */
    int kernels;                   /* NL_WIDE_DEEP_NNGP | NL_WIDE_DEEP_NTK */
    /* ReLU majority-vote check: the ReLU NTK on the first relu_n_train training points (as the official code
     * does), tested on the first relu_n_test test points. relu_n_train = 0 skips it. relu_depth = 0 takes the
     * closed-form depth L* = ceil(kappa (n + 3) / (relu_eps |ybar|)) at which the leading-order theory predicts a
     * disagreement rate relu_eps with majority vote (methods/wide_deep/README.md), capped at relu_depth_cap; the check also
     * runs L* / 64, L* / 16 and L* / 4 for the curve. */
    int64_t relu_n_train, relu_n_test, relu_depth, relu_depth_cap;
    /* relu_pos > 0: the check's training subset is the first relu_pos +1 and the first relu_n_train - relu_pos -1
     * training points (a fixed label imbalance, so L* does not depend on how a seed's labels happen to split);
     * 0: the first relu_n_train points (the official code). The subset is moved to the front of the training set
     * after the deep classifiers have run. */
    int64_t relu_pos;
    double relu_eps;
    double bayes_margin;           /* pass rule: |err(<dim>d_opt NNGP) - err(Bayes)| <= bayes_margin */
    int verbose;                   /* progress lines (nl_progress) */
} nl_wide_deep_config;

/* quick: d = 2, 1500 training / 5000 test points, duals relu erf hermite_2 hermite_3 2d_opt 3d_opt at depths
 * 10, 20, 50, 100, 200, ReLU check on 51 training / 300 test points, Bayes margin 0.045;
 * full: the paper's 10000/10000, relu erf hermite_2 2d_opt 3d_opt at depths 20, 50, 100, 200, ReLU check on
 * 101 / 2000 points, Bayes margin 0.035. */
void nl_wide_deep_config_quick(nl_wide_deep_config *c);
void nl_wide_deep_config_full(nl_wide_deep_config *c);
/* The class alphas of the official code's main.py for dim 2, 3, 5, 9 (NL_EINVAL otherwise). */
nl_status nl_wide_deep_alphas(int dim, double *alpha1, double *alpha2);
/* kappa of the ReLU disagreement rate kappa * n / (L |ybar|) for dim-2 Dirichlet data whose training majority is
 * class `majority` (+1 / -1): 2 pi * integral of p(s) P(minority, s) (s^2 + (1-s)^2) ds over the simplex
 * coordinate s (methods/wide_deep/README.md). NAN unless dim == 2. */
double nl_wide_deep_relu_kappa(const double *alpha1, const double *alpha2, int dim, double prior1, int majority);

typedef struct nl_wide_deep_dual_result {
    char dual[32];
    nl_wide_deep_class cls;
    double r;                                 /* singular exponent of the NNGP (NAN unless singular); NTK: r + 1 */
    double err[2][NL_WIDE_DEEP_MAX_DEPTHS];          /* [0] NNGP, [1] NTK test error per depth (NAN: not run / singular) */
    double agree_1nn[2][NL_WIDE_DEEP_MAX_DEPTHS];    /* agreement of the predictions with the 1-NN predictions */
    double agree_maj[2][NL_WIDE_DEEP_MAX_DEPTHS];    /* ... with majority vote */
    double agree_dev[2][NL_WIDE_DEEP_MAX_DEPTHS];    /* ... with the Devroye estimate */
    double agree_bayes[2][NL_WIDE_DEEP_MAX_DEPTHS];  /* ... with the Bayes classifier */
    double rcond[2][NL_WIDE_DEEP_MAX_DEPTHS];
    int singular[2][NL_WIDE_DEEP_MAX_DEPTHS];        /* K_train singular in floating point at this depth */
    double seconds;
} nl_wide_deep_dual_result;

typedef struct nl_wide_deep_result {
    double err_bayes, err_1nn, err_devroye, err_majority;
    int n_duals;
    nl_wide_deep_dual_result duals[NL_WIDE_DEEP_MAX_DUALS];
    /* ReLU check */
    int relu_ran;
    int64_t relu_n_train, relu_n_test, relu_depth;  /* relu_depth: L* (or the configured depth) */
    int relu_capped;                                /* L* exceeded relu_depth_cap */
    double relu_ybar, relu_kappa, relu_maj_err;
    int relu_n_depths;
    int64_t relu_depths[4];
    double relu_err[4], relu_agree_maj[4], relu_agree_1nn[4], relu_rcond[4];
    /* summary used by the pass rule (NAN when not measured) */
    double hermite_agree_1nn_min;   /* min over hermite_k duals, NTK, depths >= 50, of agreement with 1-NN */
    double relu_agree_maj_final;    /* ReLU NTK at relu_depth vs majority vote */
    char opt_dual[16];              /* "<dim>d_opt" */
    double opt_nngp_excess_absmax;  /* max over depths in [50, 200] of |err(opt NNGP) - err(Bayes)| */
    double opt_ntk_excess_absmax;   /* the same for the NTK (reported, not judged: see docs) */
    double opt_nngp_agree_dev_min;  /* min over depths in [50, 200] of agreement(opt NNGP, Devroye) */
    double bayes_margin;
    double seconds;
} nl_wide_deep_result;

/* Run the experiment. `swap` (normally NULL): "from=to[,from=to...]" runs dual `to`'s recursion under the label
 * `from` (a deliberately wrong implementation, used to check that the pass rule can fail). */
nl_status nl_wide_deep_run(const nl_wide_deep_config *c, const char *swap, nl_wide_deep_result *res);

/* The pass rule of the ledger entry `wide-deep` (methods/wide_deep/README.md):
 *   hermite_k NTK vs 1-NN predictions: agreement >= NL_WIDE_DEEP_PASS_AGREE_1NN at every depth >= 50 (every hermite dual);
 *   ReLU NTK at the closed-form depth L* vs majority vote: agreement >= NL_WIDE_DEEP_PASS_AGREE_MAJ;
 *   <dim>d_opt NNGP at every depth in [50, 200]: |error - Bayes error| <= bayes_margin.
 * Returns 1 pass, 0 fail (also when a part was not measured); writes a one-line summary to msg (n bytes). */
#define NL_WIDE_DEEP_PASS_AGREE_1NN 0.99
#define NL_WIDE_DEEP_PASS_AGREE_MAJ 0.95
int nl_wide_deep_judge_values(double hermite_agree_1nn_min, double relu_agree_maj, double opt_excess_absmax, double bayes_margin,
                       const char *opt_dual, char *msg, size_t n);
int nl_wide_deep_judge(const nl_wide_deep_result *r, char *msg, size_t n);


/* ---- registration (methods/wide_deep/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_wide_deep;
extern const nl_method nl_method_wide_deep;
int nl_wide_deep_cli(int argc, char **argv);   /* `nnlab ...` with the arguments after the command name */

#ifdef __cplusplus
}
#endif
#endif
