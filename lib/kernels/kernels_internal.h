/* kernels/kernels_internal.h — private to lib/kernels/ (not part of the library's API): the plan, the per-point
 * diagonal chains and the functions shared by the files of the NNGP / NTK implementation:
 *   kernel_config.c      configuration (defaults, checks, parsing) and the plan
 *   kernel_quadrature.c  Gauss-Hermite / Gauss-Legendre / Gauss-Laguerre rules
 *   kernel_recursion.c   activations, activation maps, diagonal chains, row kernels (the recursion)
 *   kernel_matrix.c      tiled kernel matrices and the per-pair reference
 *   kernel_op.c          the differentiable op nl_kernel_fc and nl_kernel_add_diag
 * Formulas: methods/nngp_ntk/README.md (neural-tangents conventions). */
#ifndef NNLAB_KERNELS_INTERNAL_H
#define NNLAB_KERNELS_INTERNAL_H
#include "kernels/kernels.h"
#include "nnlab/vmath.h"
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#define PI_2 1.57079632679489661923

/* ---- plan: the per-layer coefficients and the activation, resolved once per call ---- */
enum { K_ABRELU = 0, K_ERF = 1, K_QUAD = 2 };

typedef struct kplan {
    int L;              /* hidden layers */
    int kind;           /* K_ABRELU / K_ERF / K_QUAD */
    int sp;             /* standard parametrisation */
    int act;            /* nl_kernel_act */
    double param;       /* leaky slope */
    double h, beta;     /* ABReLU: (a^2+b^2)/2, (a-b)^2/(2 pi) */
    double ea2, eb2, ec2, ea, eb, ec; /* erf */
    nl_kernel_user_act user;
    int deg, scheme, ng;
    const double *qt, *qw; /* (deg) Gauss-Hermite nodes / weights for N(0,1): sum w = 1 */
    const double *lr, *lw; /* (deg) polar: radii sqrt(2 t) of the Gauss-Laguerre nodes t, weights (sum 1) */
    const double *gx, *gw; /* (ng) polar: Gauss-Legendre nodes / weights on [-1, 1] (sum 2) */
    double *sw2, *sb2, *A, *B; /* (L+1) per Dense layer: Sigma <- sw2 Sigma + sb2; Theta <- A Sigma_old + sw2 Theta + B */
} kplan;

/* Bytes of the arrays a plan needs (to allocate from an arena or with malloc). */
size_t nl_kplan_bytes(const nl_kernel_cfg *cfg);
/* Fill p from cfg. hyp (2 or 4 variances) overrides cfg's sw/sb when non-NULL. in_dim: d (fan_in of the first
 * Dense layer under SP). mem: nl_kplan_bytes(cfg) bytes. */
nl_status nl_kplan_init(kplan *p, const nl_kernel_cfg *cfg, const double *hyp, int nhyp, int64_t in_dim, void *mem);

/* Gauss-Legendre on [-1, 1] (weights sum to 2) and Gauss-Laguerre for e^{-t} on [0, inf) (weights sum to 1):
 * nodes x (n) ascending, weights w (n); n <= 256. */
nl_status nl_kquad_legendre(int n, double *x, double *w);
nl_status nl_kquad_laguerre(int n, double *x, double *w);

/* ---- per-point diagonal chains: for hidden layer l (0..L-1), P[l] = variance entering Dense l (P[0] = x.x/d),
 * Q[l] = sw2[l] P[l] + sb2[l] (pre-activation variance), R[l] = auxiliary per-point factor of the vector
 * loops (erf: 1/sqrt(1 + 2 b^2 Q); unused otherwise). Arrays are (L, n) row-major by layer. ---- */
typedef struct kdiag {
    int64_t n;
    double *P, *Q, *R; /* (L, n) */
} kdiag;

/* Rough cost of one entry-layer in units of a closed-form update, to decide when a loop is worth threads
 * (parallel regions on tiny work only make the idle threads spin against BLAS's). */
static inline int64_t elem_cost(const kplan *p) {
    return p->kind == K_QUAD ? 4 * (int64_t)p->deg * (int64_t)p->deg : 1;
}
#define PAR_WORK 65536

/* One Dense layer's coefficients. */
typedef struct {
    double sw2, sb2, A, B;
} klay;

static inline klay lay_of(const kplan *p, int l) {
    klay y = {p->sw2[l], p->sb2[l], p->A[l], p->B[l]};
    return y;
}

/* ---- the recursion (kernel_recursion.c) ----
 * Scalar activation maps: o[0] = F = E[phi(u) phi(v)], o[1] = G = E[phi'(u) phi'(v)], and with `grad`:
 * o[2] = dF/dk11, o[3] = dF/dk12 (= G), o[4] = dF/dk22, o[5] = dG/dk11, o[6] = dG/dk12, o[7] = dG/dk22,
 * for (u, v) ~ N(0, [[k11, k12], [k12, k22]]). coinc: the two points coincide (x = x'). o (8). */
void nl_kabrelu_map(const kplan *p, double k12, double k11, double k22, int coinc, int grad, double *o);
void nl_kact_map(const kplan *p, double k12, double k11, double k22, int coinc, int want_g, int grad, double *o);
/* Diagonal map V(q) = E[phi(u)^2], u ~ N(0, q), and V'(q) (if dv). */
double nl_kact_diag(const kplan *p, double q, double *dv);
/* Fill the chains of dg (dg->n points) from the input variances q0 (stride q0_stride). */
void nl_kdiag_fill(const kplan *p, kdiag *dg, const double *q0, int64_t q0_stride);
/* One entry through all layers with the scalar maps. q1[l], q2[l]: pre-activation variances of the two points at
 * hidden layer l (stride qs1 / qs2). */
void nl_kelem_forward(const kplan *p, double k0, const double *q1, int64_t qs1, const double *q2, int64_t qs2,
                      int coinc, int wantT, double *S_out, double *T_out);
/* Row kernel: S (n) holds K0(i, j0 .. j0+n) on entry and the NNGP on exit; T (n) receives the NTK (NULL: not
 * wanted). d1 / i: the row point's chains; d2 / j0: the column points'. jd: index in [0, n) of a column that
 * coincides with the row point (symmetric case, i == j), or -1. */
void nl_krow_kernel(const kplan *p, double *S, double *T, int64_t n, const kdiag *d1, int64_t i, const kdiag *d2,
                    int64_t j0, int64_t jd);

#endif
