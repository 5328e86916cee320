/* kernels/kernels.h — infinite-width NNGP and NTK kernels of fully connected networks (float64), kernel ridge
 * regression / GP posterior, and a differentiable kernel op for hyperparameter fitting.
 *
 * Conventions follow google/neural-tangents (stax.serial of Dense / activation layers; methods/nngp_ntk/README.md has the
 * formulas). The network of depth L is
 *
 *     Dense -> act -> Dense -> act -> ... -> Dense -> act -> Dense        (L hidden layers, L+1 Dense layers)
 *
 * so depth 1 is "Dense-ReLU-Dense" and depth 0 is a single Dense layer (a linear kernel). The input kernel is
 * K0(x, x') = x.x'/d. Each Dense layer maps (Sigma, Theta):
 *   NTK parametrisation (z = sw/sqrt(fan_in) W x + sb b, W, b ~ N(0, 1), all trained):
 *       Sigma <- sw^2 Sigma + sb^2,   Theta <- Sigma_new + sw^2 Theta
 *   standard parametrisation (SP: z = W x + b, W ~ N(0, sw^2/fan_in), b ~ N(0, sb^2), all trained; the NNGP is
 *   the same as under NTK, the NTK depends on the finite widths):
 *       Theta <- fan_in * Sigma_old + sw^2 Theta + [sb > 0],   Sigma <- sw^2 Sigma + sb^2
 *   where fan_in = d for the first Dense layer and cfg.sp_width for every later one, and the "+1" is the bias
 *   gradient's contribution, present exactly when sb > 0 (biases exist; neural-tangents b_std=None otherwise).
 * Each activation phi maps Sigma(x, x') <- E[phi(u) phi(v)], Theta <- Theta * E[phi'(u) phi'(v)] with (u, v)
 * zero-mean Gaussian with covariance [[Sigma(x,x), Sigma(x,x')], [Sigma(x,x'), Sigma(x',x')]]. Theta starts at 0.
 *
 * ReLU / leaky ReLU / abs / identity use the ABReLU closed form, erf the arcsine closed form, anything else
 * (tanh, gelu, sin, a user function) 2-D quadrature (NL_KQUAD_*, default degree 25), which costs O(deg^2)
 * activation evaluations per kernel entry and layer.
 *
 * Matrices are computed in tiles (GEMM for the input Gram, then the elementwise recursion in parallel), using
 * only the diagonal variances of each point through the layers, so an N x M block needs O(tile) extra memory.
 */
#ifndef NNLAB_KERNELS_H
#define NNLAB_KERNELS_H
#include "nnlab/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nl_kernel_act {
    NL_KACT_RELU = 0,   /* max(x, 0)                                     closed form (ABReLU a=0, b=1) */
    NL_KACT_LEAKY_RELU, /* max(x, 0) + act_param * min(x, 0)             closed form (ABReLU a=param, b=1) */
    NL_KACT_ABS,        /* |x|                                           closed form (ABReLU a=-1, b=1) */
    NL_KACT_IDENTITY,   /* x (a deep linear network)                     closed form (ABReLU a=b=1) */
    NL_KACT_ERF,        /* erf_a * erf(erf_b * x) + erf_c                closed form */
    NL_KACT_TANH,       /* tanh(x)                                       quadrature */
    NL_KACT_GELU,       /* x * Phi(x) (exact erf form)                   quadrature */
    NL_KACT_SIN,        /* sin(x)                                        quadrature */
    NL_KACT_USER,       /* cfg.user.f                                    quadrature */
    NL_KACT_COUNT
} nl_kernel_act;

typedef enum nl_kernel_param { NL_KPARAM_NTK = 0, NL_KPARAM_SP = 1 } nl_kernel_param;

/* Quadrature of E[f(u) g(v)] over the bivariate Gaussian, deg = cfg.quad_deg:
 * NL_KQUAD_POLAR (default): polar coordinates; the angle split where u = 0 or v = 0 (Gauss-Legendre, about
 *   deg/3 nodes per piece), the radius by Gauss-Laguerre in t = r^2/2 (deg nodes) on the even part; exact for
 *   ReLU-type activations (kinks at 0), and more accurate than the grid for smooth ones (about 2 deg^2 points);
 * NL_KQUAD_GRID: neural-tangents' ElementwiseNumerical, Gauss-Hermite on a deg x deg grid (same numbers as
 *   neural-tangents; slow convergence at kinks: several % for ReLU at deg 25). */
#define NL_KQUAD_POLAR 0
#define NL_KQUAD_GRID 1

/* Which kernel (bit flags for nl_kernel_matrix, single value for the op). */
#define NL_KERNEL_NNGP 1
#define NL_KERNEL_NTK 2

/* A scalar activation and its derivatives for NL_KACT_USER. f is required; missing derivatives are taken by
 * central differences of the next lower one (less accurate: supply df for the NTK and d2f, d3f for gradients
 * of the NTK with respect to the hyperparameters). The functions are called from several threads at once. */
typedef double (*nl_kernel_fn1)(double x, void *ud);
typedef struct nl_kernel_user_act {
    nl_kernel_fn1 f, df, d2f, d3f;
    void *ud;
} nl_kernel_user_act;

typedef struct nl_kernel_cfg {
    int depth;                 /* L >= 0 hidden layers (Dense-act pairs) before the readout Dense */
    nl_kernel_act act;
    double act_param;          /* leaky ReLU negative slope */
    double erf_a, erf_b, erf_c;/* erf activation a * erf(b x) + c (default 1, 1, 0) */
    nl_kernel_user_act user;   /* NL_KACT_USER */
    double sw, sb;             /* weight / bias standard deviations of the hidden Dense layers */
    double sw_out, sb_out;     /* readout Dense layer; negative = same as sw / sb */
    nl_kernel_param param;     /* NTK (default) or standard parametrisation */
    int64_t sp_width;          /* SP only: finite width of the hidden layers (fan_in of Dense layers 2..L+1) */
    int64_t sp_in_dim;         /* SP only, op only: input dimension d (fan_in of the first Dense layer) */
    int quad_deg;              /* quadrature degree for quadrature activations (0 = 25; 1..200), see quad_scheme */
    int quad_scheme;           /* NL_KQUAD_POLAR (default) or NL_KQUAD_GRID */
    int force_quad;            /* 1: use quadrature even for closed-form activations (checks; forward only) */
    int64_t tile_rows, tile_cols; /* tile of nl_kernel_matrix (0 = 256 x 2048) */
} nl_kernel_cfg;

/* Defaults: depth 1, ReLU, sw = 1, sb = 0, readout same as hidden, NTK parametrisation, deg 25. */
void nl_kernel_cfg_default(nl_kernel_cfg *cfg);
/* Check a configuration (NL_EINVAL with a message naming the field). */
nl_status nl_kernel_cfg_check(const nl_kernel_cfg *cfg);
/* Set cfg->act (and act_param / erf_*) from a name: "relu", "leaky:A" (or "leaky_relu:A"), "abs", "identity"
 * (or "linear"), "erf", "erf:A,B,C", "tanh", "gelu", "sin". Unknown names and bad numbers -> NL_EINVAL. */
nl_status nl_kernel_act_parse(nl_kernel_cfg *cfg, const char *name);
const char *nl_kernel_act_name(nl_kernel_act act);

/* ---- kernel matrices (not differentiable) ----
 * Kernels between the rows of x1 (n1, d) and the rows of x2 (n2, d). x2 == NULL means x2 = x1 and the
 * matrix is symmetric: only tiles on and above the diagonal are computed and mirrored (half the work).
 * `which` = NL_KERNEL_NNGP | NL_KERNEL_NTK selects the outputs; nngp / ntk are caller buffers (n1, ld) of
 * out_dtype (NL_F64, or NL_F32 to halve memory), required for the kernels asked for, ignored otherwise.
 * ld >= n2 is the row stride in elements (0 = n2), so a block of a larger matrix can be written in place: to
 * compute rows a..b against columns c..e of K(X, X), pass x1 = X + a*d, n1 = b-a, x2 = X + c*d, n2 = e-c and
 * nngp = K + a*ld + c. Extra memory: two tiles (2 * tile_rows * tile_cols f64) plus O((n1 + n2) * depth). */
nl_status nl_kernel_matrix(const nl_kernel_cfg *cfg, const double *x1, int64_t n1, const double *x2, int64_t n2,
                           int64_t d, int which, nl_dtype out_dtype, void *nngp, void *ntk, int64_t ld);

/* Rows [r0, r1) of the same matrix, bitwise equal to those rows of nl_kernel_matrix's result with the same cfg:
 * every tile of nl_kernel_matrix that writes into these rows is computed whole (same GEMM shapes, same threading
 * mode) and only its entries in the block are kept. nngp / ntk are (r1 - r0, ld) (ld = 0: n2), row i of the matrix
 * at row i - r0. Memory: the block, two tiles and the O((n1 + n2) depth) diagonal chains of all points.
 * Cost of a symmetric block (x2 == NULL): the tiles of the row panels that meet [r0, r1) (columns from the panel on)
 * plus, for the columns left of r0, the tiles of the panels above whose columns meet [r0, r1) (their GEMM whole,
 * the recursion on those columns only): a row block costs its full rows, so P blocks cost the whole N^2, twice the
 * symmetric nl_kernel_matrix. upper_only = 1 (symmetric only) skips the panels above: entries (i, j) with j < r0
 * are left untouched (nl_kernel_matrix_dist fills them from the ranks that computed them). */
nl_status nl_kernel_matrix_rows(const nl_kernel_cfg *cfg, const double *x1, int64_t n1, const double *x2, int64_t n2,
                                int64_t d, int64_t r0, int64_t r1, int which, nl_dtype out_dtype, void *nngp, void *ntk,
                                int64_t ld, int upper_only);
/* This rank's row block [*r0, *r1) of an n1 x n2 matrix (sym: n2 = n1) split over P ranks: contiguous whole row
 * panels (cfg->tile_rows), in rank order, empty when P exceeds the panels. by_work = 0: about n1 / P rows each
 * (memory n1 n2 / P per rank); symmetric, the upper tiles of the first rows are the longest, so rank 0 computes up
 * to 2 - 1/P times the mean. by_work = 1: balanced by the panels' tile work (sym: rows times columns from the panel
 * on); the last of P ranks then holds about n1 / sqrt(P) rows. */
void nl_kernel_row_split(const nl_kernel_cfg *cfg, int64_t n1, int64_t n2, int sym, int by_work, int P, int rank,
                         int64_t *r0, int64_t *r1);
/* Collective over the MPI ranks (nnlab/dist.h; one process: nl_kernel_matrix_rows of all rows): each rank computes
 * its rows [r0, r1) of the matrix, holding only them, bitwise equal to nl_kernel_matrix's rows. The blocks must
 * cover [0, n1) in rank order (e.g. nl_kernel_row_split's; checked). Symmetric: the rank computes the upper tiles of
 * its panels only (so the P blocks cost the symmetric N^2 / 2 together) and receives the entries left of its block
 * from the ranks before it (rank s sends (r1_s - r0_s) x (r1 - r0) entries; chunks of at most 1M elements
 * (or one row);
 * blocking, each rank receiving from 0, 1, ... then sending). An error on any rank is returned on every rank
 * (nl_dist_agree). docs/distributed.md "Sharded kernel matrices". */
nl_status nl_kernel_matrix_dist(const nl_kernel_cfg *cfg, const double *x1, int64_t n1, const double *x2, int64_t n2,
                                int64_t d, int64_t r0, int64_t r1, int which, nl_dtype out_dtype, void *nngp, void *ntk,
                                int64_t ld);

/* Reference for one pair (naive scalar recursion with libm atan2; used by tests and small jobs):
 * out[0] = NNGP(x, y), out[1] = NTK(x, y). x, y (d). */
nl_status nl_kernel_pair(const nl_kernel_cfg *cfg, const double *x, const double *y, int64_t d, double out[2]);

/* Gauss-Hermite rule for the weight exp(-t^2): nodes t (deg), ascending, and weights w (deg), sum w = sqrt(pi).
 * Golub-Welsch start (LAPACK dstev) refined by Newton steps on the Hermite recurrence. 1 <= deg <= 200. */
nl_status nl_gauss_hermite(int deg, double *t, double *w);

/* ---- differentiable kernel op (f64) ----
 * Out [n1, n2] = the NNGP (which = NL_KERNEL_NNGP) or NTK (NL_KERNEL_NTK) of the network in cfg, computed from
 *   K0 [n1, n2]  input kernel, e.g. x.x'/d (any var: features of a network work, gradients flow into it);
 *   d1 [n1], d2 [n2]  input variances x.x/d of the two sets; pass d1 = d2 = NULL for the symmetric case, where
 *                     K0 is square and its own diagonal is used (one set of points);
 *   hyp [2] = (sw^2, sb^2) for every Dense layer, or [4] = (sw^2, sb^2, sw_out^2, sb_out^2) with a separate
 *                     readout layer (variances, not standard deviations; cfg's sw/sb fields are ignored).
 * The backward is hand-derived through the recursion (reverse mode per entry) and gives gradients for K0, d1,
 * d2 and hyp. At exactly coincident points (s = 0 in the ABReLU formula) the singular partial derivatives of
 * the arc-cosine terms are taken as 0, which is exact for the diagonal (the total derivative there is finite).
 * Quadrature activations need smooth derivatives (d2f, d3f) for the NTK gradient; force_quad is rejected.
 * SP needs cfg.sp_width and cfg.sp_in_dim. Compose with nl_kernel_add_diag, nl_cholesky, nl_cho_solve and
 * nl_logdet_chol (linalg.h) for a differentiable marginal likelihood. */
nl_var *nl_kernel_fc(nl_ctx *c, const nl_kernel_cfg *cfg, int which, nl_var *K0, nl_var *d1, nl_var *d2,
                     nl_var *hyp);
/* A + s * I for a square A [n, n] and a scalar (0-d or 1-element) s; gradients to both. */
nl_var *nl_kernel_add_diag(nl_ctx *c, nl_var *A, nl_var *s);

#ifdef __cplusplus
}
#endif
#endif
