/* Infinite-width NNGP / NTK kernels of fully connected networks (float64): configuration, activation maps
 * (ABReLU and erf closed forms, Gauss-Hermite quadrature for anything else), the tiled matrix computation,
 * a naive per-pair reference, and the differentiable kernel op with its hand-derived backward.
 * Formulas: methods/nngp_ntk/README.md (neural-tangents conventions). */
#include "kernels/kernels.h"
#include "nnlab/extend.h"
#include "nnlab/ops.h"
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int); /* OpenBLAS extension (declared in base.c too) */

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#define PI_2 1.57079632679489661923

/* ======================================================================================================
 * Vector helpers. The hot ABReLU / erf loops are written once against these wrappers: AVX-512 (8 lanes),
 * AVX2+FMA (4 lanes), or plain scalar code (1 lane). Intrinsics are used because sqrt in an ordinary loop is
 * not vectorised by gcc unless -fno-math-errno is given.
 * ====================================================================================================== */
#if defined(__AVX512F__)
#include <immintrin.h>
#define VL 8
typedef __m512d vd;
typedef __mmask8 vm;
static inline vd v_set(double x) { return _mm512_set1_pd(x); }
static inline vd v_load(const double *p) { return _mm512_loadu_pd(p); }
static inline void v_store(double *p, vd a) { _mm512_storeu_pd(p, a); }
static inline vd v_add(vd a, vd b) { return _mm512_add_pd(a, b); }
static inline vd v_sub(vd a, vd b) { return _mm512_sub_pd(a, b); }
static inline vd v_mul(vd a, vd b) { return _mm512_mul_pd(a, b); }
static inline vd v_sqrt(vd a) { return _mm512_sqrt_pd(a); }
static inline vd v_div(vd a, vd b) { return _mm512_div_pd(a, b); }
static inline vd v_fma(vd a, vd b, vd c) { return _mm512_fmadd_pd(a, b, c); }   /* a*b + c */
static inline vd v_fnma(vd a, vd b, vd c) { return _mm512_fnmadd_pd(a, b, c); } /* c - a*b */
static inline vd v_max(vd a, vd b) { return _mm512_max_pd(a, b); }
static inline vd v_min(vd a, vd b) { return _mm512_min_pd(a, b); }
static inline vd v_abs(vd a) { return _mm512_abs_pd(a); }
static inline vm v_gt(vd a, vd b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
static inline vm v_lt(vd a, vd b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
static inline vm v_le(vd a, vd b) { return _mm512_cmp_pd_mask(a, b, _CMP_LE_OQ); }
static inline vm m_and(vm a, vm b) { return (vm)(a & b); }
static inline vd v_sel(vm m, vd a, vd b) { return _mm512_mask_blend_pd(m, b, a); } /* m ? a : b */
#define MADD(a, b, c) fma((a), (b), (c))
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VL 4
typedef __m256d vd;
typedef __m256d vm;
static inline vd v_set(double x) { return _mm256_set1_pd(x); }
static inline vd v_load(const double *p) { return _mm256_loadu_pd(p); }
static inline void v_store(double *p, vd a) { _mm256_storeu_pd(p, a); }
static inline vd v_add(vd a, vd b) { return _mm256_add_pd(a, b); }
static inline vd v_sub(vd a, vd b) { return _mm256_sub_pd(a, b); }
static inline vd v_mul(vd a, vd b) { return _mm256_mul_pd(a, b); }
static inline vd v_sqrt(vd a) { return _mm256_sqrt_pd(a); }
static inline vd v_div(vd a, vd b) { return _mm256_div_pd(a, b); }
static inline vd v_fma(vd a, vd b, vd c) { return _mm256_fmadd_pd(a, b, c); }
static inline vd v_fnma(vd a, vd b, vd c) { return _mm256_fnmadd_pd(a, b, c); }
static inline vd v_max(vd a, vd b) { return _mm256_max_pd(a, b); }
static inline vd v_min(vd a, vd b) { return _mm256_min_pd(a, b); }
static inline vd v_abs(vd a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
static inline vm v_gt(vd a, vd b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
static inline vm v_lt(vd a, vd b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
static inline vm v_le(vd a, vd b) { return _mm256_cmp_pd(a, b, _CMP_LE_OQ); }
static inline vm m_and(vm a, vm b) { return _mm256_and_pd(a, b); }
static inline vd v_sel(vm m, vd a, vd b) { return _mm256_blendv_pd(b, a, m); }
#define MADD(a, b, c) fma((a), (b), (c))
#else
#define VL 1
typedef double vd;
typedef int vm;
static inline vd v_set(double x) { return x; }
static inline vd v_load(const double *p) { return *p; }
static inline void v_store(double *p, vd a) { *p = a; }
static inline vd v_add(vd a, vd b) { return a + b; }
static inline vd v_sub(vd a, vd b) { return a - b; }
static inline vd v_mul(vd a, vd b) { return a * b; }
static inline vd v_sqrt(vd a) { return sqrt(a); }
static inline vd v_div(vd a, vd b) { return a / b; }
static inline vd v_fma(vd a, vd b, vd c) { return a * b + c; }
static inline vd v_fnma(vd a, vd b, vd c) { return c - a * b; }
static inline vd v_max(vd a, vd b) { return a > b ? a : b; }
static inline vd v_min(vd a, vd b) { return a < b ? a : b; }
static inline vd v_abs(vd a) { return fabs(a); }
static inline vm v_gt(vd a, vd b) { return a > b; }
static inline vm v_lt(vd a, vd b) { return a < b; }
static inline vm v_le(vd a, vd b) { return a <= b; }
static inline vm m_and(vm a, vm b) { return a && b; }
static inline vd v_sel(vm m, vd a, vd b) { return m ? a : b; }
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* asin(u) = u + u^3 P(u^2) on [0, 0.5]: degree-12 polynomial in z = u^2 (Chebyshev interpolation of
 * (asin(sqrt z) - sqrt z) / z^1.5 on [0, 0.25], computed in 50-digit arithmetic); max relative error of the
 * resulting asin 1.2e-16 on [0, 0.5]. Larger arguments use asin(t) = pi/2 - 2 asin(sqrt((1 - t)/2)). */
static const double ASIN_P[13] = {
    0.16666666666666669,  0.074999999999984329, 0.044642857146355429, 0.030381944138531247,
    0.022372172942149889, 0.017352392720869973, 0.013971212973552933, 0.011479177415184906,
    0.010322814350185779, 0.0054575067186403581, 0.017400879442694021, -0.014851887071247204,
    0.028757851367421566};

static inline vd v_asin_small(vd u) { /* u in [0, 0.5] */
    vd z = v_mul(u, u);
    vd p = v_set(ASIN_P[12]);
    for (int k = 11; k >= 0; k--) p = v_fma(p, z, v_set(ASIN_P[k]));
    return v_fma(v_mul(u, z), p, u);
}
/* asin(w) for w in [-1, 1]. */
static inline vd v_asin(vd w) {
    vd t = v_abs(w);
    vm big = v_gt(t, v_set(0.5));
    vd u = v_sel(big, v_sqrt(v_mul(v_set(0.5), v_sub(v_set(1.0), t))), t);
    vd as = v_asin_small(u);
    vd a = v_sel(big, v_fnma(v_set(2.0), as, v_set(PI_2)), as); /* asin(|w|) */
    return v_sel(v_lt(w, v_set(0.0)), v_sub(v_set(0.0), a), a);
}

/* atan(x) = x + x^3 Q(x^2) on |x| <= tan(pi/8): degree-10 polynomial in x^2 (same construction as ASIN_P);
 * max relative error 1.1e-16. */
static const double ATAN_Q[11] = {
    -0.33333333333333331, 0.19999999999995521,  -0.14285714284666542, 0.11111111015256361,
    -0.090909045781239026, 0.076921831908260865, -0.066645114473819475, 0.0585814891280221,
    -0.050854497379402598, 0.039231658295587189, -0.01917688711906226};

/* atan(t) for t in [0, 1] (atan(t) = pi/4 + atan((t-1)/(t+1)) above tan(pi/8)). */
static inline vd v_atan01(vd t) {
    vd one = v_set(1.0);
    vm big = v_gt(t, v_set(0.41421356237309503));
    vd x = v_sel(big, v_div(v_sub(t, one), v_add(t, one)), t);
    vd z = v_mul(x, x);
    vd p = v_set(ATAN_Q[10]);
    for (int k = 9; k >= 0; k--) p = v_fma(p, z, v_set(ATAN_Q[k]));
    vd at = v_fma(v_mul(x, z), p, x);
    return v_sel(big, v_add(v_set(0.78539816339744831), at), at);
}

/* atan2(s, k) for s >= 0, computed from the ratio of the smaller to the larger magnitude so that a small angle
 * is accurate relative to s (an arccos of k / sqrt(k11 k22) loses half the digits there, and the ABReLU recursion
 * would amplify that error layer by layer). atan2(0, 0) = pi/2 as neural-tangents' fill value. */
static inline vd v_atan2_pos(vd s, vd k) {
    vd ak = v_abs(k), zero = v_set(0.0);
    vd lo = v_min(s, ak), hi = v_max(s, ak);
    vm nz = v_gt(hi, zero);
    vd t = v_div(lo, v_sel(nz, hi, v_set(1.0)));
    vd th = v_atan01(t);
    th = v_sel(v_gt(s, ak), v_sub(v_set(PI_2), th), th);
    th = v_sel(v_lt(k, zero), v_sub(v_set(M_PI), th), th);
    return v_sel(nz, th, v_set(PI_2));
}

/* ======================================================================================================
 * Gauss-Hermite rule
 * ====================================================================================================== */
nl_status nl_gauss_hermite(int deg, double *t, double *w) {
    if (deg < 1 || deg > 200) return nl_set_error(NL_EINVAL, "gauss_hermite: degree %d outside 1..200", deg);
    if (!t || !w) return nl_set_error(NL_EINVAL, "gauss_hermite: NULL output");
    int n = deg;
    /* Golub-Welsch: eigenvalues of the Jacobi matrix (diagonal 0, off-diagonal sqrt(k/2)). */
    double *e = malloc(sizeof(double) * (size_t)(n > 1 ? n - 1 : 1));
    if (!e) return nl_set_error(NL_ENOMEM, "gauss_hermite: out of memory");
    for (int i = 0; i < n; i++) t[i] = 0.0;
    for (int k = 1; k < n; k++) e[k - 1] = sqrt(0.5 * k);
    if (n > 1) {
        lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'N', n, t, e, NULL, 1);
        if (info != 0) {
            free(e);
            return nl_set_error(NL_ELINALG, "gauss_hermite: dstev failed (info %d) for degree %d", (int)info, n);
        }
    }
    free(e);
    /* Newton polish on the orthonormal recurrence p_j = t sqrt(2/j) p_{j-1} - sqrt((j-1)/j) p_{j-2},
     * p_0 = pi^{-1/4}; p_n' = sqrt(2n) p_{n-1}; weight 2 / p_n'^2. */
    const double pim4 = 0.7511255444649425; /* pi^{-1/4} */
    for (int i = 0; i < n; i++) {
        double z = t[i], pp = 1.0;
        for (int it = 0; it < 4; it++) {
            double p1 = pim4, p2 = 0.0;
            for (int j = 1; j <= n; j++) {
                double p3 = p2;
                p2 = p1;
                p1 = z * sqrt(2.0 / j) * p2 - sqrt((double)(j - 1) / j) * p3;
            }
            pp = sqrt(2.0 * n) * p2;
            double dz = p1 / pp;
            z -= dz;
            if (fabs(dz) <= 1e-16 * (1.0 + fabs(z))) {
                /* recompute pp at the final z */
                p1 = pim4; p2 = 0.0;
                for (int j = 1; j <= n; j++) {
                    double p3 = p2;
                    p2 = p1;
                    p1 = z * sqrt(2.0 / j) * p2 - sqrt((double)(j - 1) / j) * p3;
                }
                pp = sqrt(2.0 * n) * p2;
                break;
            }
        }
        t[i] = z;
        w[i] = 2.0 / (pp * pp);
    }
    /* exact symmetry */
    for (int i = 0; i < n / 2; i++) {
        double a = 0.5 * (t[n - 1 - i] - t[i]), b = 0.5 * (w[i] + w[n - 1 - i]);
        t[i] = -a; t[n - 1 - i] = a; w[i] = w[n - 1 - i] = b;
    }
    if (n % 2) t[n / 2] = 0.0;
    return NL_OK;
}

/* Golub-Welsch for a Jacobi matrix (diagonal a (n), off-diagonal b (n-1)) with total mass mu0: nodes x
 * ascending, weights w = mu0 * (first eigenvector component)^2. */
static nl_status golub_welsch(int n, const double *a, const double *b, double mu0, double *x, double *w) {
    double *e = malloc(sizeof(double) * (size_t)(n > 1 ? n - 1 : 1)), *z = malloc(sizeof(double) * (size_t)n * (size_t)n);
    if (!e || !z) { free(e); free(z); return nl_set_error(NL_ENOMEM, "quadrature: out of memory"); }
    for (int i = 0; i < n; i++) x[i] = a[i];
    for (int i = 0; i + 1 < n; i++) e[i] = b[i];
    lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'V', n, x, e, z, n);
    if (info == 0)
        for (int k = 0; k < n; k++) w[k] = mu0 * z[(size_t)k * (size_t)n] * z[(size_t)k * (size_t)n];
    free(e);
    free(z);
    if (info != 0) return nl_set_error(NL_ELINALG, "quadrature: dstev failed (info %d, n %d)", (int)info, n);
    return NL_OK;
}

/* Gauss-Legendre on [-1, 1] (weights sum to 2) and Gauss-Laguerre for e^{-t} on [0, inf) (weights sum to 1). */
static nl_status gauss_legendre(int n, double *x, double *w) {
    double a[256], b[256];
    for (int k = 0; k < n; k++) { a[k] = 0; b[k] = (k + 1.0) / sqrt(4.0 * (k + 1) * (k + 1) - 1.0); }
    nl_status s = golub_welsch(n, a, b, 2.0, x, w);
    if (s) return s;
    for (int i = 0; i < n / 2; i++) { /* exact symmetry */
        double m = 0.5 * (x[n - 1 - i] - x[i]), v = 0.5 * (w[i] + w[n - 1 - i]);
        x[i] = -m; x[n - 1 - i] = m; w[i] = w[n - 1 - i] = v;
    }
    if (n % 2) x[n / 2] = 0.0;
    return NL_OK;
}

static nl_status gauss_laguerre(int n, double *x, double *w) {
    double a[256], b[256];
    for (int k = 0; k < n; k++) { a[k] = 2.0 * k + 1.0; b[k] = k + 1.0; }
    return golub_welsch(n, a, b, 1.0, x, w);
}

/* ======================================================================================================
 * Configuration
 * ====================================================================================================== */
static const char *const g_act_names[NL_KACT_COUNT] = {"relu", "leaky_relu", "abs", "identity", "erf",
                                                        "tanh", "gelu", "sin", "user"};
_Static_assert(sizeof(g_act_names) / sizeof(g_act_names[0]) == NL_KACT_COUNT, "activation names out of sync");

const char *nl_kernel_act_name(nl_kernel_act act) {
    return (act >= 0 && act < NL_KACT_COUNT) ? g_act_names[act] : "?";
}

void nl_kernel_cfg_default(nl_kernel_cfg *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->depth = 1;
    cfg->act = NL_KACT_RELU;
    cfg->erf_a = 1.0;
    cfg->erf_b = 1.0;
    cfg->erf_c = 0.0;
    cfg->sw = 1.0;
    cfg->sb = 0.0;
    cfg->sw_out = -1.0;
    cfg->sb_out = -1.0;
    cfg->param = NL_KPARAM_NTK;
    cfg->quad_deg = 25;
}

#define KMAXDEPTH 100000

nl_status nl_kernel_cfg_check(const nl_kernel_cfg *cfg) {
    if (!cfg) return nl_set_error(NL_EINVAL, "kernel: cfg is NULL");
    if (cfg->depth < 0 || cfg->depth > KMAXDEPTH)
        return nl_set_error(NL_EINVAL, "kernel: depth %d outside 0..%d", cfg->depth, KMAXDEPTH);
    if (cfg->act < 0 || cfg->act >= NL_KACT_COUNT)
        return nl_set_error(NL_EINVAL, "kernel: unknown activation id %d", (int)cfg->act);
    if (cfg->act == NL_KACT_USER && !cfg->user.f)
        return nl_set_error(NL_EINVAL, "kernel: activation 'user' needs cfg.user.f");
    if (!isfinite(cfg->act_param)) return nl_set_error(NL_EINVAL, "kernel: act_param is not finite");
    if (!isfinite(cfg->erf_a) || !isfinite(cfg->erf_b) || !isfinite(cfg->erf_c))
        return nl_set_error(NL_EINVAL, "kernel: erf_a/erf_b/erf_c must be finite");
    if (!(cfg->sw >= 0) || !isfinite(cfg->sw)) return nl_set_error(NL_EINVAL, "kernel: sw = %g must be finite and >= 0", cfg->sw);
    if (!(cfg->sb >= 0) || !isfinite(cfg->sb)) return nl_set_error(NL_EINVAL, "kernel: sb = %g must be finite and >= 0", cfg->sb);
    if (!isfinite(cfg->sw_out) || !isfinite(cfg->sb_out))
        return nl_set_error(NL_EINVAL, "kernel: sw_out/sb_out must be finite (negative = same as sw/sb)");
    if (cfg->param != NL_KPARAM_NTK && cfg->param != NL_KPARAM_SP)
        return nl_set_error(NL_EINVAL, "kernel: unknown parametrisation %d", (int)cfg->param);
    if (cfg->param == NL_KPARAM_SP && cfg->depth > 0 && cfg->sp_width < 1)
        return nl_set_error(NL_EINVAL, "kernel: the standard parametrisation needs sp_width >= 1 (the finite hidden "
                                       "width; the SP NTK grows with it)");
    if (cfg->quad_scheme != NL_KQUAD_POLAR && cfg->quad_scheme != NL_KQUAD_GRID)
        return nl_set_error(NL_EINVAL, "kernel: unknown quad_scheme %d", cfg->quad_scheme);
    if (cfg->quad_deg < 0 || cfg->quad_deg > 200)
        return nl_set_error(NL_EINVAL, "kernel: quad_deg %d outside 1..200 (0 = 25)", cfg->quad_deg);
    if (cfg->tile_rows < 0 || cfg->tile_cols < 0) return nl_set_error(NL_EINVAL, "kernel: negative tile size");
    return NL_OK;
}

/* strict number parsing: whole token, finite */
static int parse_num(const char *s, size_t len, double *out) {
    char buf[64];
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    double v = strtod(buf, &end);
    if (end == buf || *end != 0 || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

nl_status nl_kernel_act_parse(nl_kernel_cfg *cfg, const char *name) {
    if (!cfg || !name) return nl_set_error(NL_EINVAL, "kernel: activation name is NULL");
    const char *colon = strchr(name, ':');
    size_t blen = colon ? (size_t)(colon - name) : strlen(name);
    const char *arg = colon ? colon + 1 : NULL;
#define IS(lit) (blen == strlen(lit) && strncmp(name, lit, blen) == 0)
    if (IS("relu") || IS("abs") || IS("identity") || IS("linear") || IS("tanh") || IS("gelu") || IS("sin")) {
        if (arg) return nl_set_error(NL_EINVAL, "kernel: activation '%s' takes no parameter", name);
        cfg->act = IS("relu") ? NL_KACT_RELU : IS("abs") ? NL_KACT_ABS : (IS("identity") || IS("linear")) ? NL_KACT_IDENTITY
                 : IS("tanh") ? NL_KACT_TANH : IS("gelu") ? NL_KACT_GELU : NL_KACT_SIN;
        return NL_OK;
    }
    if (IS("leaky") || IS("leaky_relu") || IS("leakyrelu")) {
        double a;
        if (!arg || !parse_num(arg, strlen(arg), &a))
            return nl_set_error(NL_EINVAL, "kernel: activation '%s': expected leaky:SLOPE with a finite number", name);
        cfg->act = NL_KACT_LEAKY_RELU;
        cfg->act_param = a;
        return NL_OK;
    }
    if (IS("erf")) {
        double v[3] = {1.0, 1.0, 0.0};
        if (arg) {
            const char *p = arg;
            for (int k = 0; k < 3; k++) {
                const char *q = strchr(p, ',');
                size_t len = q ? (size_t)(q - p) : strlen(p);
                if (!parse_num(p, len, &v[k]) || (k < 2 && !q) || (k == 2 && q))
                    return nl_set_error(NL_EINVAL, "kernel: activation '%s': expected erf or erf:A,B,C (a*erf(b*x)+c)", name);
                p = q ? q + 1 : p + len;
            }
        }
        cfg->act = NL_KACT_ERF;
        cfg->erf_a = v[0]; cfg->erf_b = v[1]; cfg->erf_c = v[2];
        return NL_OK;
    }
#undef IS
    return nl_set_error(NL_EINVAL, "kernel: unknown activation '%s' (relu, leaky:A, abs, identity, erf, erf:A,B,C, tanh, "
                                   "gelu, sin)", name);
}

/* ======================================================================================================
 * Plan: the per-layer coefficients and the activation, resolved once per call
 * ====================================================================================================== */
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
static size_t plan_bytes(const nl_kernel_cfg *cfg) {
    int deg = cfg->quad_deg ? cfg->quad_deg : 25;
    return sizeof(double) * (size_t)(4 * (cfg->depth + 1) + 6 * deg + 4);
}

/* Fill p from cfg. hyp (2 or 4 variances) overrides cfg's sw/sb when non-NULL. in_dim: d (fan_in of the first
 * Dense layer under SP). mem: plan_bytes(cfg) bytes. */
static nl_status plan_init(kplan *p, const nl_kernel_cfg *cfg, const double *hyp, int nhyp, int64_t in_dim, void *mem) {
    memset(p, 0, sizeof *p);
    int L = cfg->depth;
    p->L = L;
    p->sp = cfg->param == NL_KPARAM_SP;
    p->act = cfg->act;
    p->param = cfg->act_param;
    p->user = cfg->user;
    double *m = mem;
    p->sw2 = m; p->sb2 = m + (L + 1); p->A = m + 2 * (L + 1); p->B = m + 3 * (L + 1);
    double sw2, sb2, sw2o, sb2o;
    if (hyp) {
        sw2 = hyp[0]; sb2 = hyp[1];
        sw2o = nhyp >= 4 ? hyp[2] : sw2;
        sb2o = nhyp >= 4 ? hyp[3] : sb2;
    } else {
        sw2 = cfg->sw * cfg->sw; sb2 = cfg->sb * cfg->sb;
        sw2o = cfg->sw_out >= 0 ? cfg->sw_out * cfg->sw_out : sw2;
        sb2o = cfg->sb_out >= 0 ? cfg->sb_out * cfg->sb_out : sb2;
    }
    for (int l = 0; l <= L; l++) {
        p->sw2[l] = l < L ? sw2 : sw2o;
        p->sb2[l] = l < L ? sb2 : sb2o;
        if (p->sp) {
            p->A[l] = l == 0 ? (double)in_dim : (double)cfg->sp_width;
            p->B[l] = p->sb2[l] > 0 ? 1.0 : 0.0;
        } else {
            p->A[l] = p->sw2[l];
            p->B[l] = p->sb2[l];
        }
    }
    double a = 0, b = 1;
    p->kind = K_ABRELU;
    switch (cfg->act) {
    case NL_KACT_RELU: a = 0; b = 1; break;
    case NL_KACT_LEAKY_RELU: a = cfg->act_param; b = 1; break;
    case NL_KACT_ABS: a = -1; b = 1; break;
    case NL_KACT_IDENTITY: a = 1; b = 1; break;
    case NL_KACT_ERF: p->kind = K_ERF; break;
    default: p->kind = K_QUAD; break;
    }
    p->h = 0.5 * (a * a + b * b);
    p->beta = (a - b) * (a - b) / (2 * M_PI);
    p->ea = cfg->erf_a; p->eb = cfg->erf_b; p->ec = cfg->erf_c;
    p->ea2 = p->ea * p->ea; p->eb2 = p->eb * p->eb; p->ec2 = p->ec * p->ec;
    p->deg = cfg->quad_deg ? cfg->quad_deg : 25;
    p->scheme = cfg->quad_scheme;
    p->ng = (p->deg + 2) / 3 > 2 ? (p->deg + 2) / 3 : 2;
    if (cfg->force_quad) p->kind = K_QUAD;
    if (p->kind == K_QUAD) {
        double *t = m + 4 * (L + 1), *w = t + p->deg;
        nl_status s = nl_gauss_hermite(p->deg, t, w);
        if (s) return s;
        /* E_{z~N(0,1)}[g(z)] = sum w_k g(sqrt(2) t_k) / sqrt(pi): fold the constants */
        for (int k = 0; k < p->deg; k++) { t[k] *= sqrt(2.0); w[k] /= sqrt(M_PI); }
        p->qt = t;
        p->qw = w;
        if (p->scheme == NL_KQUAD_POLAR) {
            double *lr = w + p->deg, *lw = lr + p->deg, *gx = lw + p->deg, *gw = gx + p->ng;
            if ((s = gauss_laguerre(p->deg, lr, lw))) return s;
            for (int k = 0; k < p->deg; k++) lr[k] = sqrt(2.0 * lr[k]);
            if ((s = gauss_legendre(p->ng, gx, gw))) return s;
            p->lr = lr; p->lw = lw; p->gx = gx; p->gw = gw;
        }
    }
    return NL_OK;
}

/* ======================================================================================================
 * Activations and their derivatives (for quadrature). d[k] = phi^(k)(x), k = 0..order.
 * ====================================================================================================== */
static void user_eval(const nl_kernel_user_act *u, double x, int order, double *d) {
    double s = fabs(x) > 1 ? fabs(x) : 1.0;
    d[0] = u->f(x, u->ud);
    if (order < 1) return;
    double h1 = 6e-6 * s, h2 = 1e-4 * s, h3 = 1e-3 * s;
    d[1] = u->df ? u->df(x, u->ud) : (u->f(x + h1, u->ud) - u->f(x - h1, u->ud)) / (2 * h1);
    if (order < 2) return;
    if (u->d2f) d[2] = u->d2f(x, u->ud);
    else if (u->df) d[2] = (u->df(x + h1, u->ud) - u->df(x - h1, u->ud)) / (2 * h1);
    else d[2] = (u->f(x + h2, u->ud) - 2 * d[0] + u->f(x - h2, u->ud)) / (h2 * h2);
    if (order < 3) return;
    if (u->d3f) d[3] = u->d3f(x, u->ud);
    else if (u->d2f) d[3] = (u->d2f(x + h1, u->ud) - u->d2f(x - h1, u->ud)) / (2 * h1);
    else if (u->df) d[3] = (u->df(x + h2, u->ud) - 2 * d[1] + u->df(x - h2, u->ud)) / (h2 * h2);
    else d[3] = (u->f(x + 2 * h3, u->ud) - 2 * u->f(x + h3, u->ud) + 2 * u->f(x - h3, u->ud) - u->f(x - 2 * h3, u->ud)) /
                (2 * h3 * h3 * h3);
}

static inline void act_eval(const kplan *p, double x, int order, double *d) {
    switch (p->act) {
    case NL_KACT_RELU:
    case NL_KACT_LEAKY_RELU:
    case NL_KACT_ABS:
    case NL_KACT_IDENTITY: {
        double lo = p->act == NL_KACT_RELU ? 0.0 : p->act == NL_KACT_LEAKY_RELU ? p->param
                  : p->act == NL_KACT_ABS ? -1.0 : 1.0; /* slope for x < 0; 1 for x > 0 */
        d[0] = x > 0 ? x : lo * x;
        if (order >= 1) d[1] = x > 0 ? 1.0 : (x < 0 || p->act != NL_KACT_ABS ? lo : 0.0);
        if (order >= 1 && p->act == NL_KACT_RELU && x == 0) d[1] = 0.0;
        if (order >= 2) d[2] = 0.0;
        if (order >= 3) d[3] = 0.0;
        return;
    }
    case NL_KACT_ERF: {
        double bx = p->eb * x;
        d[0] = p->ea * erf(bx) + p->ec;
        if (order >= 1) {
            double g = p->ea * p->eb * (2.0 / sqrt(M_PI)) * exp(-bx * bx);
            d[1] = g;
            if (order >= 2) d[2] = -2 * p->eb2 * x * g;
            if (order >= 3) d[3] = (4 * p->eb2 * p->eb2 * x * x - 2 * p->eb2) * g;
        }
        return;
    }
    case NL_KACT_TANH: {
        double t = tanh(x);
        d[0] = t;
        if (order >= 1) {
            double d1 = 1 - t * t;
            d[1] = d1;
            if (order >= 2) d[2] = -2 * t * d1;
            if (order >= 3) d[3] = -2 * d1 * (1 - 3 * t * t);
        }
        return;
    }
    case NL_KACT_GELU: {
        double ph = exp(-0.5 * x * x) / sqrt(2 * M_PI), Ph = 0.5 * erfc(-x / sqrt(2.0));
        d[0] = x * Ph;
        if (order >= 1) d[1] = Ph + x * ph;
        if (order >= 2) d[2] = (2 - x * x) * ph;
        if (order >= 3) d[3] = (x * x * x - 4 * x) * ph;
        return;
    }
    case NL_KACT_SIN: {
        double s = sin(x), c = order >= 1 ? cos(x) : 0;
        d[0] = s;
        if (order >= 1) d[1] = c;
        if (order >= 2) d[2] = -s;
        if (order >= 3) d[3] = -c;
        return;
    }
    default:
        user_eval(&p->user, x, order, d);
        return;
    }
}

/* ======================================================================================================
 * Scalar activation maps with partial derivatives.
 * o[0] = F = E[phi(u) phi(v)], o[1] = G = E[phi'(u) phi'(v)], and with `grad`:
 * o[2] = dF/dk11, o[3] = dF/dk12 (= G), o[4] = dF/dk22, o[5] = dG/dk11, o[6] = dG/dk12, o[7] = dG/dk22,
 * for (u, v) ~ N(0, [[k11, k12], [k12, k22]]). coinc: the two points coincide (x = x').
 * ====================================================================================================== */
static void abrelu_map(const kplan *p, double k12, double k11, double k22, int coinc, int grad, double *o) {
    double prod = k11 * k22, s2 = prod - k12 * k12;
    double s = (!coinc && s2 > 0) ? sqrt(s2) : 0.0;
    double th = (s == 0 && k12 == 0) ? PI_2 : atan2(s, k12);
    double G = p->h - p->beta * th;
    o[0] = p->beta * s + G * k12;
    o[1] = G;
    if (!grad) return;
    o[3] = G;
    if (s > 0) {
        double b = p->beta;
        o[2] = b * s / (2 * k11);
        o[4] = b * s / (2 * k22);
        o[6] = b / s;
        o[5] = -b * k12 / (2 * s * k11);
        o[7] = -b * k12 / (2 * s * k22);
    } else {
        o[2] = o[4] = o[5] = o[6] = o[7] = 0.0; /* singular at s = 0: the total derivative along x = x' is 0 */
    }
}

static void erf_map(const kplan *p, double k12, double k11, double k22, int grad, double *o) {
    double b2 = p->eb2, a2 = p->ea2;
    double x12 = b2 * k12, x11 = b2 * k11, x22 = b2 * k22;
    double d1 = 1 + 2 * x11, d2 = 1 + 2 * x22;
    double om = d1 * d2 - 4 * x12 * x12;
    if (om < DBL_MIN) om = DBL_MIN;
    double sq = sqrt(om);
    double Ge = (4 / M_PI) / sq;
    o[0] = a2 * (2 / M_PI) * atan2(2 * x12, sq) + p->ec2;
    o[1] = a2 * b2 * Ge;
    if (!grad) return;
    double ab = a2 * b2, ab2 = a2 * b2 * b2;
    o[3] = o[1];
    o[2] = -ab * x12 * Ge / d1;
    o[4] = -ab * x12 * Ge / d2;
    o[6] = ab2 * Ge * 4 * x12 / om;
    o[5] = -ab2 * Ge * d2 / om;
    o[7] = -ab2 * Ge * d1 / om;
}

/* Gauss-Hermite grid (neural-tangents ElementwiseNumerical): u = sqrt(k11) z1, v = sqrt(k22) (c z1 + sqrt(1 - c^2) z2), c = k12 / sqrt(k11 k22); partials by
 * Price's theorem: dE[g]/dk12 = E[d2g/dudv], dE[g]/dk11 = E[d2g/du2] / 2. */
static void quad_map(const kplan *p, double k12, double k11, double k22, int want_g, int grad, double *o) {
    double c = (k11 > 0 && k22 > 0) ? k12 / sqrt(k11 * k22) : 0.0;
    if (c > 1) c = 1;
    if (c < -1) c = -1;
    double sc = sqrt(1 - c * c > 0 ? 1 - c * c : 0), r1 = sqrt(k11 > 0 ? k11 : 0), r2 = sqrt(k22 > 0 ? k22 : 0);
    int ord = grad ? 3 : (want_g ? 1 : 0);
    double F = 0, G = 0, F11 = 0, F22 = 0, G11 = 0, G12 = 0, G22 = 0;
    const double *t = p->qt, *w = p->qw;
    for (int a = 0; a < p->deg; a++) {
        double du[4], u = r1 * t[a];
        act_eval(p, u, ord, du);
        double f0 = 0, f1 = 0, f2 = 0, g1 = 0, g2 = 0, g3 = 0;
        double base = c * t[a];
        for (int b = 0; b < p->deg; b++) {
            double dv[4], v = r2 * (base + sc * t[b]);
            act_eval(p, v, ord, dv);
            double wb = w[b];
            f0 += wb * dv[0];
            if (ord >= 1) f1 += wb * dv[1];
            if (grad) { f2 += wb * dv[2]; g1 += wb * dv[1]; g2 += wb * dv[2]; g3 += wb * dv[3]; }
        }
        double wa = w[a];
        F += wa * du[0] * f0;
        if (ord >= 1) G += wa * du[1] * f1;
        if (grad) {
            F11 += wa * du[2] * f0;  /* E[phi''(u) phi(v)] */
            F22 += wa * du[0] * f2;  /* E[phi(u) phi''(v)] */
            G12 += wa * du[2] * g2;  /* E[phi''(u) phi''(v)] */
            G11 += wa * du[3] * g1;  /* E[phi'''(u) phi'(v)] */
            G22 += wa * du[1] * g3;  /* E[phi'(u) phi'''(v)] */
        }
    }
    o[0] = F;
    o[1] = G;
    if (!grad) return;
    o[3] = G;
    o[2] = 0.5 * F11; o[4] = 0.5 * F22;
    o[5] = 0.5 * G11; o[6] = G12; o[7] = 0.5 * G22;
}

/* Polar scheme: z = rho (cos a, sin a); u = sqrt(k11) rho cos a, v = sqrt(k22) rho cos(a - psi), psi = acos c.
 * E[g] = 1/(2 pi) int_0^pi da int_0^inf [g(rho) + g(-rho)] e^{-t} dt with t = rho^2 / 2; the angle range is split
 * where cos a = 0 or cos(a - psi) = 0 (the kinks of activations that are non-smooth at 0). */
static void quad_map_polar(const kplan *p, double k12, double k11, double k22, int want_g, int grad, double *o) {
    double c = (k11 > 0 && k22 > 0) ? k12 / sqrt(k11 * k22) : 0.0;
    /* snap (near-)coincident points: the integral is quadratic in the angle there, so |1 - c| < 1e-12 moves it by
     * ~1e-12 relative, while a sliver of an arc would change the rule */
    if (c > 1 - 1e-12) c = 1;
    if (c < -1 + 1e-12) c = -1;
    double psi = acos(c), r1 = sqrt(k11 > 0 ? k11 : 0), r2 = sqrt(k22 > 0 ? k22 : 0);
    double bp[4] = {0.0, PI_2, psi + PI_2 < M_PI ? psi + PI_2 : psi - PI_2, M_PI};
    if (bp[2] < bp[1]) { double tmp = bp[1]; bp[1] = bp[2]; bp[2] = tmp; }
    int ord = grad ? 3 : (want_g ? 1 : 0);
    double F = 0, G = 0, F11 = 0, F22 = 0, G11 = 0, G12 = 0, G22 = 0;
    for (int arc = 0; arc < 3; arc++) {
        double a0 = bp[arc], a1 = bp[arc + 1];
        if (!(a1 - a0 > 1e-15)) continue;
        double mid = 0.5 * (a0 + a1), half = 0.5 * (a1 - a0);
        for (int gi = 0; gi < p->ng; gi++) {
            double al = mid + half * p->gx[gi], W = p->gw[gi] * half / (2 * M_PI);
            double ca = r1 * cos(al), cb = r2 * cos(al - psi);
            for (int m = 0; m < p->deg; m++) {
                double rho = p->lr[m], wm = W * p->lw[m];
                for (int sg = -1; sg <= 1; sg += 2) {
                    double du[4], dv[4];
                    act_eval(p, sg * rho * ca, ord, du);
                    act_eval(p, sg * rho * cb, ord, dv);
                    F += wm * du[0] * dv[0];
                    if (ord >= 1) G += wm * du[1] * dv[1];
                    if (grad) {
                        F11 += wm * du[2] * dv[0];
                        F22 += wm * du[0] * dv[2];
                        G12 += wm * du[2] * dv[2];
                        G11 += wm * du[3] * dv[1];
                        G22 += wm * du[1] * dv[3];
                    }
                }
            }
        }
    }
    o[0] = F;
    o[1] = G;
    if (!grad) return;
    o[3] = G;
    o[2] = 0.5 * F11; o[4] = 0.5 * F22;
    o[5] = 0.5 * G11; o[6] = G12; o[7] = 0.5 * G22;
}

static void act_map(const kplan *p, double k12, double k11, double k22, int coinc, int want_g, int grad, double *o) {
    if (p->kind == K_ABRELU) abrelu_map(p, k12, k11, k22, coinc, grad, o);
    else if (p->kind == K_ERF) erf_map(p, k12, k11, k22, grad, o);
    else {
        /* quadrature is not exactly symmetric in (u, v): order the variances so that K(x, y) == K(y, x) */
        int sw = k11 > k22;
        double a = sw ? k22 : k11, b = sw ? k11 : k22;
        if (p->scheme == NL_KQUAD_POLAR) quad_map_polar(p, k12, a, b, want_g, grad, o);
        else quad_map(p, k12, a, b, want_g, grad, o);
        if (sw && grad) {
            double t = o[2]; o[2] = o[4]; o[4] = t;
            t = o[5]; o[5] = o[7]; o[7] = t;
        }
    }
}

/* Diagonal map V(q) = E[phi(u)^2], u ~ N(0, q), and V'(q) (if dv). */
static double act_diag(const kplan *p, double q, double *dv) {
    if (p->kind == K_ABRELU) {
        if (dv) *dv = p->h;
        return p->h * q;
    }
    if (p->kind == K_ERF) {
        double x = p->eb2 * q;
        if (dv) *dv = p->ea2 * p->eb2 * (4 / M_PI) / ((1 + 2 * x) * sqrt(1 + 4 * x));
        return p->ea2 * (2 / M_PI) * atan2(2 * x, sqrt(1 + 4 * x)) + p->ec2;
    }
    if (p->scheme == NL_KQUAD_POLAR) { /* the 2-D rule at coincident points, so that V(q) = F(q, q, q) */
        double o[8];
        quad_map_polar(p, q, q, q, 0, dv != NULL, o);
        if (dv) *dv = o[2] + o[3] + o[4]; /* dF/dk11 + dF/dk12 + dF/dk22 = E[phi'^2 + phi phi''] */
        return o[0];
    }
    double r = sqrt(q > 0 ? q : 0), V = 0, D = 0; /* grid scheme: 1-D Gauss-Hermite as neural-tangents */
    for (int a = 0; a < p->deg; a++) {
        double d[4];
        act_eval(p, r * p->qt[a], dv ? 2 : 0, d);
        V += p->qw[a] * d[0] * d[0];
        if (dv) D += p->qw[a] * (d[1] * d[1] + d[0] * d[2]); /* d/dq E[phi^2] = E[phi'^2 + phi phi''] */
    }
    if (dv) *dv = D;
    return V;
}

/* ======================================================================================================
 * Per-point diagonal chains: for hidden layer l (0..L-1), P[l] = variance entering Dense l (P[0] = x.x/d),
 * Q[l] = sw2[l] P[l] + sb2[l] (pre-activation variance), R[l] = auxiliary per-point factor of the vector
 * loops (erf: 1/sqrt(1 + 2 b^2 Q); unused otherwise). Arrays are (L, n) row-major by layer.
 * ====================================================================================================== */
typedef struct kdiag {
    int64_t n;
    double *P, *Q, *R; /* (L, n) */
} kdiag;

/* Rough cost of one entry-layer in units of a closed-form update, to decide when a loop is worth threads
 * (parallel regions on tiny work only make the idle threads spin against BLAS's). */
static int64_t elem_cost(const kplan *p) {
    return p->kind == K_QUAD ? 4 * (int64_t)p->deg * (int64_t)p->deg : 1;
}
#define PAR_WORK 65536

static void diag_fill(const kplan *p, kdiag *dg, const double *q0, int64_t q0_stride) {
    int L = p->L;
    int64_t n = dg->n;
#pragma omp parallel for schedule(static) if (n * L * elem_cost(p) > PAR_WORK)
    for (int64_t i = 0; i < n; i++) {
        double P = q0[i * q0_stride];
        for (int l = 0; l < L; l++) {
            double Q = MADD(p->sw2[l], P, p->sb2[l]);
            dg->P[l * n + i] = P;
            dg->Q[l * n + i] = Q;
            if (p->kind == K_ERF) dg->R[l * n + i] = 1.0 / sqrt(1 + 2 * p->eb2 * Q);
            else dg->R[l * n + i] = 0.0;
            P = act_diag(p, Q, NULL);
        }
    }
}

/* ======================================================================================================
 * Row kernels: S (n) holds K0(i, j0 .. j0+n) on entry and the NNGP on exit; T (n) receives the NTK (NULL:
 * not wanted). d1 / i: the row point's chains; d2 / j0: the column points'. jd: index in [0, n) of a column
 * that coincides with the row point (symmetric case, i == j), or -1.
 * ====================================================================================================== */
typedef struct {
    double sw2, sb2, A, B;
} klay;

static inline klay lay_of(const kplan *p, int l) {
    klay y = {p->sw2[l], p->sb2[l], p->A[l], p->B[l]};
    return y;
}

/* One ABReLU layer on VL lanes. */
static inline void abrelu_vec(double *Sp_, double *Tp_, const double *q2p, vd qi, vd sw2, vd sb2, vd A, vd B, vd h,
                              vd beta) {
    vd So = v_load(Sp_);
    vd S = v_fma(sw2, So, sb2);
    vd prod = v_mul(qi, v_load(q2p));
    vd s2 = v_sub(prod, v_mul(S, S));
    vd s = v_sqrt(v_max(s2, v_set(0.0)));
    vd th = v_atan2_pos(s, S);
    vd G = v_fnma(beta, th, h);
    v_store(Sp_, v_fma(beta, s, v_mul(G, S)));
    if (Tp_) {
        vd T = v_fma(A, So, v_fma(sw2, v_load(Tp_), B));
        v_store(Tp_, v_mul(T, G));
    }
}

static inline void erf_vec(double *Sp_, double *Tp_, const double *r2p, vd ri, vd sw2, vd sb2, vd A, vd B, vd eb2x2,
                           vd fa, vd ga, vd ec2) {
    vd So = v_load(Sp_);
    vd S = v_fma(sw2, So, sb2);
    vd ipp = v_mul(ri, v_load(r2p));
    vd w = v_mul(eb2x2, v_mul(S, ipp)); /* 2 b^2 k12 / sqrt((1+2b^2 k11)(1+2b^2 k22)) */
    w = v_min(v_max(w, v_set(-1.0)), v_set(1.0));
    vd om = v_max(v_fnma(w, w, v_set(1.0)), v_set(DBL_MIN));
    v_store(Sp_, v_fma(fa, v_asin(w), ec2));
    if (Tp_) {
        vd G = v_div(v_mul(ga, ipp), v_sqrt(om));
        vd T = v_fma(A, So, v_fma(sw2, v_load(Tp_), B));
        v_store(Tp_, v_mul(T, G));
    }
}

/* Run one closed-form hidden layer over n columns (vector body + padded tail). */
static void closed_layer(const kplan *p, int l, double *S, double *T, int64_t n, double qi, double ri, const double *q2,
                         const double *r2) {
    klay y = lay_of(p, l);
    vd vsw2 = v_set(y.sw2), vsb2 = v_set(y.sb2), vA = v_set(y.A), vB = v_set(y.B);
    vd vqi = v_set(qi), vri = v_set(ri);
    double bs[VL], bt[VL], bq[VL], br[VL];
    (void)bq;
    int64_t j = 0;
    if (p->kind == K_ABRELU) {
        vd h = v_set(p->h), beta = v_set(p->beta);
        for (; j + VL <= n; j += VL)
            abrelu_vec(S + j, T ? T + j : NULL, q2 + j, vqi, vsw2, vsb2, vA, vB, h, beta);
        if (j < n) {
            int64_t m = n - j;
            for (int k = 0; k < VL; k++) {
                bs[k] = k < m ? S[j + k] : 0.0; bt[k] = (T && k < m) ? T[j + k] : 0.0;
                bq[k] = k < m ? q2[j + k] : 1.0;
            }
            abrelu_vec(bs, T ? bt : NULL, bq, vqi, vsw2, vsb2, vA, vB, h, beta);
            for (int64_t k = 0; k < m; k++) { S[j + k] = bs[k]; if (T) T[j + k] = bt[k]; }
        }
    } else {
        vd eb2x2 = v_set(2 * p->eb2), fa = v_set(p->ea2 * (2 / M_PI)), ga = v_set(p->ea2 * p->eb2 * (4 / M_PI));
        vd ec2 = v_set(p->ec2);
        for (; j + VL <= n; j += VL)
            erf_vec(S + j, T ? T + j : NULL, r2 + j, vri, vsw2, vsb2, vA, vB, eb2x2, fa, ga, ec2);
        if (j < n) {
            int64_t m = n - j;
            for (int k = 0; k < VL; k++) {
                bs[k] = k < m ? S[j + k] : 0.0; bt[k] = (T && k < m) ? T[j + k] : 0.0;
                br[k] = k < m ? r2[j + k] : 1.0;
            }
            erf_vec(bs, T ? bt : NULL, br, vri, vsw2, vsb2, vA, vB, eb2x2, fa, ga, ec2);
            for (int64_t k = 0; k < m; k++) { S[j + k] = bs[k]; if (T) T[j + k] = bt[k]; }
        }
    }
}

/* Readout Dense layer over n columns. */
static void readout_layer(const kplan *p, double *S, double *T, int64_t n) {
    klay y = lay_of(p, p->L);
    for (int64_t j = 0; j < n; j++) {
        double So = S[j];
        S[j] = MADD(y.sw2, So, y.sb2);
        if (T) T[j] = MADD(y.A, So, MADD(y.sw2, T[j], y.B));
    }
}

/* One entry through all layers with the scalar maps (quadrature rows, the reference, coincident fix-ups).
 * q1[l], q2[l]: pre-activation variances of the two points at hidden layer l (stride qs1 / qs2). */
static void elem_forward(const kplan *p, double k0, const double *q1, int64_t qs1, const double *q2, int64_t qs2,
                         int coinc, int wantT, double *S_out, double *T_out) {
    double S = k0, T = 0.0, o[8];
    for (int l = 0; l < p->L; l++) {
        klay y = lay_of(p, l);
        double Sp = MADD(y.sw2, S, y.sb2);
        double Tp = MADD(y.A, S, MADD(y.sw2, T, y.B));
        act_map(p, Sp, q1[l * qs1], q2[l * qs2], coinc, wantT, 0, o);
        S = o[0];
        T = Tp * o[1];
    }
    klay y = lay_of(p, p->L);
    *S_out = MADD(y.sw2, S, y.sb2);
    *T_out = MADD(y.A, S, MADD(y.sw2, T, y.B));
}

/* The recursion for row i against columns j0 .. j0+n (see above). */
static void row_kernel(const kplan *p, double *S, double *T, int64_t n, const kdiag *d1, int64_t i, const kdiag *d2,
                       int64_t j0, int64_t jd) {
    int L = p->L;
    if (p->kind == K_QUAD) {
        for (int64_t j = 0; j < n; j++) {
            double s, t;
            elem_forward(p, S[j], d1->Q + i, d1->n, d2->Q + j0 + j, d2->n, j == jd, T != NULL, &s, &t);
            S[j] = s;
            if (T) T[j] = t;
        }
        return;
    }
    if (T) memset(T, 0, sizeof(double) * (size_t)n);
    for (int l = 0; l < L; l++) {
        double qi = d1->Q[l * d1->n + i], ri = d1->R[l * d1->n + i];
        const double *q2 = d2->Q + l * d2->n + j0, *r2 = d2->R + l * d2->n + j0;
        double sd = 0, td = 0;
        if (jd >= 0) { sd = S[jd]; td = T ? T[jd] : 0.0; }
        closed_layer(p, l, S, T, n, qi, ri, q2, r2);
        if (jd >= 0 && p->kind == K_ABRELU) { /* exact update of the coincident entry (s = 0, theta = 0) */
            klay y = lay_of(p, l);
            double o[8], Sp = MADD(y.sw2, sd, y.sb2);
            abrelu_map(p, Sp, qi, q2[jd], 1, 0, o);
            S[jd] = o[0];
            if (T) T[jd] = MADD(y.A, sd, MADD(y.sw2, td, y.B)) * o[1];
        }
    }
    readout_layer(p, S, T, n);
}

/* ======================================================================================================
 * Kernel matrices
 * ====================================================================================================== */
static inline void store_row(void *out, nl_dtype dt, int64_t off, const double *src, int64_t n) {
    if (dt == NL_F64) memcpy((double *)out + off, src, sizeof(double) * (size_t)n);
    else {
        float *o = (float *)out + off;
        for (int64_t j = 0; j < n; j++) o[j] = (float)src[j];
    }
}

static inline void store_one(void *out, nl_dtype dt, int64_t off, double v) {
    if (dt == NL_F64) ((double *)out)[off] = v;
    else ((float *)out)[off] = (float)v;
}

static nl_status diag_alloc(kdiag *dg, int L, int64_t n) {
    dg->n = n;
    size_t m = (size_t)(L > 0 ? L : 1) * (size_t)(n > 0 ? n : 1);
    dg->P = malloc(3 * m * sizeof(double));
    if (!dg->P) return nl_set_error(NL_ENOMEM, "kernel: out of memory for the diagonal chains (%d layers x %lld points)", L, (long long)n);
    dg->Q = dg->P + m;
    dg->R = dg->Q + m;
    return NL_OK;
}

static void row_norms(const double *x, int64_t n, int64_t d, double *q0) {
#pragma omp parallel for schedule(static) if (n * d > PAR_WORK)
    for (int64_t i = 0; i < n; i++) {
        const double *r = x + i * d;
        double s = 0;
        for (int64_t k = 0; k < d; k++) s += r[k] * r[k];
        q0[i] = s / (double)d;
    }
}

/* Everything one tile needs. */
typedef struct kjob {
    const kplan *p;
    const kdiag *d1, *d2;
    const double *x1, *x2, *q01;
    int64_t n1, n2, d, R, C, ld;
    int sym, want_s, want_t;
    nl_dtype dt;
    void *nngp, *ntk;
} kjob;

/* Tile (i0, j0): GEMM for the input Gram, the recursion row by row, and the writes (symmetric case: entries
 * on and above the diagonal directly, the strictly upper ones mirrored). `par`: use OpenMP inside the tile
 * (called outside any parallel region, multithreaded BLAS); otherwise the tile runs on the calling thread. */
static void kernel_tile(const kjob *jb, int64_t i0, int64_t j0, double *Sb, double *Tb, int par) {
    const kplan *p = jb->p;
    int64_t R = jb->R, C = jb->C, ld = jb->ld;
    int64_t rn = jb->n1 - i0 < R ? jb->n1 - i0 : R, cn = jb->n2 - j0 < C ? jb->n2 - j0 : C;
    int sym = jb->sym;
    nl_gemm(NL_F64, 0, 1, rn, cn, jb->d, 1.0 / (double)jb->d, jb->x1 + i0 * jb->d, jb->d, jb->x2 + j0 * jb->d, jb->d,
            0.0, Sb, C);
    if (sym)
        for (int64_t i = 0; i < rn; i++) {
            int64_t gi = i0 + i;
            if (gi >= j0 && gi < j0 + cn) Sb[i * C + gi - j0] = jb->q01[gi]; /* diagonal = the chains' start */
        }
    par = par && rn * cn * (p->L + 1) * elem_cost(p) > PAR_WORK;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < rn; i++) {
        int64_t gi = i0 + i;
        int64_t jd = (sym && gi >= j0 && gi < j0 + cn) ? gi - j0 : -1;
        double *S = Sb + i * C, *T = Tb ? Tb + i * C : NULL;
        row_kernel(p, S, T, cn, jb->d1, gi, jb->d2, j0, jd);
        int64_t js = sym ? (gi > j0 ? gi - j0 : 0) : 0;
        if (js < cn) {
            if (jb->want_s) store_row(jb->nngp, jb->dt, gi * ld + j0 + js, S + js, cn - js);
            if (jb->want_t) store_row(jb->ntk, jb->dt, gi * ld + j0 + js, T + js, cn - js);
        }
    }
    if (!sym) return;
    /* mirror the strictly upper entries of the tile, in 32 x 32 blocks */
#pragma omp parallel for schedule(static) if (par && rn * cn > PAR_WORK)
    for (int64_t jb0 = 0; jb0 < cn; jb0 += 32) {
        int64_t je = jb0 + 32 < cn ? jb0 + 32 : cn;
        for (int64_t ib = 0; ib < rn; ib += 32) {
            int64_t ie = ib + 32 < rn ? ib + 32 : rn;
            for (int64_t j = jb0; j < je; j++) {
                int64_t gj = j0 + j;
                for (int64_t i = ib; i < ie; i++) {
                    int64_t gi = i0 + i;
                    if (gj <= gi) continue;
                    if (jb->want_s) store_one(jb->nngp, jb->dt, gj * ld + gi, Sb[i * C + j]);
                    if (jb->want_t) store_one(jb->ntk, jb->dt, gj * ld + gi, Tb[i * C + j]);
                }
            }
        }
    }
}

nl_status nl_kernel_matrix(const nl_kernel_cfg *cfg, const double *x1, int64_t n1, const double *x2, int64_t n2,
                           int64_t d, int which, nl_dtype out_dtype, void *nngp, void *ntk, int64_t ld) {
    nl_status st = nl_kernel_cfg_check(cfg);
    if (st) return st;
    int sym = x2 == NULL;
    if (sym) {
        if (n2 != n1 && n2 != 0)
            return nl_set_error(NL_EINVAL, "kernel_matrix: x2 == NULL (symmetric) but n2 = %lld != n1 = %lld", (long long)n2, (long long)n1);
        x2 = x1;
        n2 = n1;
    }
    if (n1 < 0 || n2 < 0 || d < 1) return nl_set_error(NL_EINVAL, "kernel_matrix: bad sizes n1 = %lld, n2 = %lld, d = %lld", (long long)n1, (long long)n2, (long long)d);
    if (d > INT32_MAX || n1 > INT32_MAX || n2 > INT32_MAX) return nl_set_error(NL_EINVAL, "kernel_matrix: sizes exceed the BLAS int range");
    if ((which & ~(NL_KERNEL_NNGP | NL_KERNEL_NTK)) || !which)
        return nl_set_error(NL_EINVAL, "kernel_matrix: which = %d must be NL_KERNEL_NNGP, NL_KERNEL_NTK or both", which);
    if (out_dtype != NL_F64 && out_dtype != NL_F32) return nl_set_error(NL_EDTYPE, "kernel_matrix: output dtype must be f32 or f64");
    int want_s = which & NL_KERNEL_NNGP, want_t = (which & NL_KERNEL_NTK) != 0;
    if ((want_s && !nngp) || (want_t && !ntk)) return nl_set_error(NL_EINVAL, "kernel_matrix: an output buffer asked for is NULL");
    if (n1 > 0 && !x1) return nl_set_error(NL_EINVAL, "kernel_matrix: x1 is NULL");
    if (ld == 0) ld = n2;
    if (ld < n2) return nl_set_error(NL_EINVAL, "kernel_matrix: ld = %lld < n2 = %lld", (long long)ld, (long long)n2);
    if (n1 == 0 || n2 == 0) return NL_OK;

    kplan p;
    void *pmem = malloc(plan_bytes(cfg));
    if (!pmem) return nl_set_error(NL_ENOMEM, "kernel_matrix: out of memory");
    st = plan_init(&p, cfg, NULL, 0, d, pmem);
    if (st) { free(pmem); return st; }
    int L = p.L;
    kdiag d1 = {0}, d2 = {0};
    int64_t R = cfg->tile_rows ? cfg->tile_rows : 256, C = cfg->tile_cols ? cfg->tile_cols : 1024;
    if (R > n1) R = n1;
    if (C > n2) C = n2;
    /* tiles: row panels of R rows; columns from the panel's first row on in the symmetric case */
    int64_t ntiles = 0;
    for (int64_t i0 = 0; i0 < n1; i0 += R) ntiles += (n2 - (sym ? i0 : 0) + C - 1) / C;
    const int nth = nl_get_num_threads();
    /* Many tiles: one OpenMP loop over tiles, each thread with its own buffers and single-threaded BLAS (alternating
     * multithreaded BLAS and OpenMP loops tile after tile lets one pool's threads spin while the other needs the
     * cores). Few tiles: tiles in turn, multithreaded BLAS, OpenMP inside each tile. */
    int outer = nth > 1 && ntiles >= 2 * nth;
    const char *mode = getenv("NL_KERNEL_TILE_MODE"); /* "inner" / "outer": override, for benchmarks */
    if (mode && !strcmp(mode, "inner")) outer = 0;
    if (mode && !strcmp(mode, "outer")) outer = nth > 1;
    int nbuf = outer ? nth : 1;
    double *q01 = malloc(sizeof(double) * (size_t)n1), *q02 = sym ? q01 : malloc(sizeof(double) * (size_t)n2);
    double *Sb = malloc(sizeof(double) * (size_t)(R * C) * (size_t)nbuf);
    double *Tb = want_t ? malloc(sizeof(double) * (size_t)(R * C) * (size_t)nbuf) : NULL;
    int64_t *tl = malloc(sizeof(int64_t) * 2 * (size_t)ntiles);
    if (!q01 || !q02 || !Sb || (want_t && !Tb) || !tl) {
        st = nl_set_error(NL_ENOMEM, "kernel_matrix: out of memory for %d tile buffers of %lld x %lld", nbuf, (long long)R, (long long)C);
        goto done;
    }
    if ((st = diag_alloc(&d1, L, n1))) goto done;
    if (sym) d2 = d1;
    else if ((st = diag_alloc(&d2, L, n2))) goto done;
    row_norms(x1, n1, d, q01);
    if (!sym) row_norms(x2, n2, d, q02);
    diag_fill(&p, &d1, q01, 1);
    if (!sym) diag_fill(&p, &d2, q02, 1);
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < n1; i0 += R)
        for (int64_t j0 = sym ? i0 : 0; j0 < n2; j0 += C) { tl[2 * k] = i0; tl[2 * k + 1] = j0; k++; }
    kjob jb = {&p, &d1, &d2, x1, x2, q01, n1, n2, d, R, C, ld, sym, want_s, want_t, out_dtype, nngp, ntk};
    if (outer) {
        openblas_set_num_threads(1);
#pragma omp parallel num_threads(nth)
        {
            size_t off = (size_t)omp_get_thread_num() * (size_t)(R * C);
            double *S = Sb + off, *T = Tb ? Tb + off : NULL;
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < ntiles; t++) kernel_tile(&jb, tl[2 * t], tl[2 * t + 1], S, T, 0);
        }
        openblas_set_num_threads(nth);
    } else {
        for (int64_t t = 0; t < ntiles; t++) kernel_tile(&jb, tl[2 * t], tl[2 * t + 1], Sb, Tb, 1);
    }
done:
    free(Sb); free(Tb); free(q01); free(tl);
    if (!sym) { free(q02); free(d2.P); }
    free(d1.P);
    free(pmem);
    return st;
}

/* ======================================================================================================
 * Reference for one pair
 * ====================================================================================================== */
nl_status nl_kernel_pair(const nl_kernel_cfg *cfg, const double *x, const double *y, int64_t d, double out[2]) {
    nl_status st = nl_kernel_cfg_check(cfg);
    if (st) return st;
    if (!x || !y || !out || d < 1) return nl_set_error(NL_EINVAL, "kernel_pair: NULL argument or d < 1");
    kplan p;
    int L = cfg->depth;
    void *pmem = malloc(plan_bytes(cfg));
    double *q = malloc(sizeof(double) * (size_t)(2 * (L > 0 ? L : 1)));
    if (!pmem || !q) { free(pmem); free(q); return nl_set_error(NL_ENOMEM, "kernel_pair: out of memory"); }
    st = plan_init(&p, cfg, NULL, 0, d, pmem);
    if (!st) {
        double xx = 0, yy = 0, xy = 0;
        for (int64_t k = 0; k < d; k++) { xx += x[k] * x[k]; yy += y[k] * y[k]; xy += x[k] * y[k]; }
        double Px = xx / (double)d, Py = yy / (double)d;
        for (int l = 0; l < L; l++) {
            q[l] = MADD(p.sw2[l], Px, p.sb2[l]);
            q[L + l] = MADD(p.sw2[l], Py, p.sb2[l]);
            Px = act_diag(&p, q[l], NULL);
            Py = act_diag(&p, q[L + l], NULL);
        }
        int coinc = memcmp(x, y, sizeof(double) * (size_t)d) == 0;
        elem_forward(&p, xy / (double)d, q, 1, q + L, 1, coinc, 1, &out[0], &out[1]);
    }
    free(pmem);
    free(q);
    return st;
}

/* ======================================================================================================
 * Differentiable op
 * ====================================================================================================== */
typedef struct kop_saved {
    kplan p;
    int which, sym, nhyp;
    int64_t n1, n2;
    kdiag d1, d2;          /* d2 aliases d1 when sym */
    const double *K0;      /* (n1, n2) contiguous input values */
} kop_saved;

static nl_status diag_arena(nl_ctx *c, kdiag *dg, int L, int64_t n) {
    dg->n = n;
    size_t m = (size_t)(L > 0 ? L : 1) * (size_t)(n > 0 ? n : 1);
    dg->P = nl_scratch(c, 3 * m * sizeof(double));
    if (!dg->P) return NL_ENOMEM;
    dg->Q = dg->P + m;
    dg->R = dg->Q + m;
    return NL_OK;
}

/* Reverse pass through one entry. st: (L+1) x 12 stash. q1b: adjoints of the row point's Q (stride qs1),
 * q2b: of the column point's Q (stride qs2); hb: (2(L+1)) adjoints of sw2[l] then sb2[l]. Returns dOut/dK0. */
static double elem_backward(const kplan *p, int wantT, double k0, const double *q1, int64_t qs1, const double *q2,
                            int64_t qs2, int coinc, double g, double *st, double *q1b, double *q2b, double *hb) {
    int L = p->L;
    double S = k0, T = 0.0;
    for (int l = 0; l < L; l++) {
        double *e = st + 12 * l;
        klay y = lay_of(p, l);
        e[0] = S;
        e[1] = T;
        double Sp = MADD(y.sw2, S, y.sb2);
        double Tp = wantT ? MADD(y.A, S, MADD(y.sw2, T, y.B)) : 0.0;
        e[2] = Tp;
        act_map(p, Sp, q1[l * qs1], q2[l * qs2], coinc, wantT, 1, e + 4);
        S = e[4];
        T = Tp * e[5];
    }
    int ntk_par = !p->sp;
    double Spb = wantT ? 0.0 : g, Tpb = wantT ? g : 0.0;
    klay y = lay_of(p, L);
    hb[L] += S * Spb + T * Tpb + (ntk_par ? S * Tpb : 0.0);
    hb[L + 1 + L] += Spb + (ntk_par ? Tpb : 0.0);
    double Sb = y.sw2 * Spb + y.A * Tpb, Tb = y.sw2 * Tpb;
    for (int l = L - 1; l >= 0; l--) {
        const double *e = st + 12 * l, *o = e + 4;
        double Tp = e[2];
        Spb = Sb * o[3] + Tb * Tp * o[6];
        q1b[l * qs1] += Sb * o[2] + Tb * Tp * o[5];
        q2b[l * qs2] += Sb * o[4] + Tb * Tp * o[7];
        Tpb = Tb * o[1];
        y = lay_of(p, l);
        hb[l] += e[0] * Spb + e[1] * Tpb + (ntk_par ? e[0] * Tpb : 0.0);
        hb[L + 1 + l] += Spb + (ntk_par ? Tpb : 0.0);
        Sb = y.sw2 * Spb + y.A * Tpb;
        Tb = y.sw2 * Tpb;
    }
    return Sb;
}

/* Backward of the diagonal chains of one point set: qbar (L, n) adjoints of Q -> q0bar (n) and hb. */
static void diag_backward(const kplan *p, const kdiag *dg, const double *qbar, double *hb, double *q0bar) {
    int L = p->L;
    int64_t n = dg->n;
    for (int64_t i = 0; i < n; i++) {
        double Pb = 0.0;
        for (int l = L - 1; l >= 0; l--) {
            double Qb = qbar[l * n + i];
            if (l < L - 1 && Pb != 0.0) {
                double dV;
                act_diag(p, dg->Q[l * n + i], &dV);
                Qb += dV * Pb;
            }
            hb[l] += dg->P[l * n + i] * Qb;
            hb[L + 1 + l] += Qb;
            Pb = p->sw2[l] * Qb;
        }
        q0bar[i] = Pb;
    }
}

static void kop_backward(nl_ctx *c, nl_node *nd) {
    kop_saved *s = nd->saved;
    const kplan *p = &s->p;
    nl_tensor *gK = nl_grad(c, nd->in[0]), *gd1 = nl_grad(c, nd->in[1]), *gd2 = nl_grad(c, nd->in[2]);
    nl_tensor *gh = nl_grad(c, nd->in[3]);
    if (!gK && !gd1 && !gd2 && !gh) return;
    const double *g = nl_node_grad_out(nd)->data;
    int L = p->L, wantT = s->which == NL_KERNEL_NTK;
    int64_t n1 = s->n1, n2 = s->n2, Lm = L > 0 ? L : 1;
    int nth = omp_get_max_threads();
    size_t nh = (size_t)(2 * (L + 1));
    double *q1b = nl_scratch(c, sizeof(double) * (size_t)(Lm * n1));
    double *q2b = nl_scratch(c, sizeof(double) * (size_t)nth * (size_t)(Lm * n2));
    double *hb = nl_scratch(c, sizeof(double) * (size_t)nth * nh);
    double *stash = nl_scratch(c, sizeof(double) * (size_t)nth * (size_t)(12 * (L + 1)));
    double *kbar = gK ? gK->data : nl_scratch(c, sizeof(double) * (size_t)(n1 * n2));
    if (!q1b || !q2b || !hb || !stash || !kbar) return;
    memset(q1b, 0, sizeof(double) * (size_t)(Lm * n1));
    memset(q2b, 0, sizeof(double) * (size_t)nth * (size_t)(Lm * n2));
    memset(hb, 0, sizeof(double) * (size_t)nth * nh);
    const double *K0 = s->K0;
#pragma omp parallel num_threads(nth) if (n1 * n2 * (L + 1) * elem_cost(p) * 4 > PAR_WORK)
    {
        int tid = omp_get_thread_num();
        double *myq2 = q2b + (size_t)tid * (size_t)(Lm * n2), *myh = hb + (size_t)tid * nh;
        double *st = stash + (size_t)tid * (size_t)(12 * (L + 1));
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n1; i++) {
            for (int64_t j = 0; j < n2; j++) {
                double gij = g[i * n2 + j];
                if (gij == 0.0) continue;
                double kb = elem_backward(p, wantT, K0[i * n2 + j], s->d1.Q + i, n1, s->d2.Q + j, n2,
                                          s->sym && i == j, gij, st, q1b + i, myq2 + j, myh);
                kbar[i * n2 + j] += kb;
            }
        }
    }
    /* reduce the per-thread column adjoints and hyperparameter sums */
    for (int t = 1; t < nth; t++) {
        double *src = q2b + (size_t)t * (size_t)(Lm * n2);
        for (int64_t k = 0; k < Lm * n2; k++) q2b[k] += src[k];
        for (size_t k = 0; k < nh; k++) hb[k] += hb[(size_t)t * nh + k];
    }
    double *q0b1 = nl_scratch(c, sizeof(double) * (size_t)(n1 > 0 ? n1 : 1));
    double *q0b2 = nl_scratch(c, sizeof(double) * (size_t)(n2 > 0 ? n2 : 1));
    if (!q0b1 || !q0b2) return;
    if (s->sym) {
        for (int64_t k = 0; k < Lm * n1; k++) q1b[k] += q2b[k];
        diag_backward(p, &s->d1, q1b, hb, q0b1);
        for (int64_t i = 0; i < n1; i++) kbar[i * n2 + i] += q0b1[i];
    } else {
        diag_backward(p, &s->d1, q1b, hb, q0b1);
        diag_backward(p, &s->d2, q2b, hb, q0b2);
        if (gd1) for (int64_t i = 0; i < n1; i++) ((double *)gd1->data)[i] += q0b1[i];
        if (gd2) for (int64_t j = 0; j < n2; j++) ((double *)gd2->data)[j] += q0b2[j];
    }
    if (gh) {
        double *ghd = gh->data;
        for (int l = 0; l <= L; l++) {
            int out = s->nhyp == 4 && l == L;
            ghd[out ? 2 : 0] += hb[l];
            ghd[out ? 3 : 1] += hb[L + 1 + l];
        }
    }
}

static int is_f64_vec(const nl_var *v, int64_t n) {
    return v->val.dtype == NL_F64 && v->val.ndim == 1 && v->val.shape[0] == n;
}

nl_var *nl_kernel_fc(nl_ctx *c, const nl_kernel_cfg *cfg, int which, nl_var *K0, nl_var *d1, nl_var *d2, nl_var *hyp) {
    const char *op = "kernel_fc";
    NL_REQUIRE(K0, hyp);
    if (nl_kernel_cfg_check(cfg)) return NULL;
    if (which != NL_KERNEL_NNGP && which != NL_KERNEL_NTK)
        return nl_op_fail(NL_EINVAL, op, "which must be NL_KERNEL_NNGP or NL_KERNEL_NTK", K0, NULL);
    if (K0->val.dtype != NL_F64 || K0->val.ndim != 2) return nl_op_fail(NL_EDTYPE, op, "K0 must be a 2-D f64 matrix", K0, NULL);
    int64_t n1 = K0->val.shape[0], n2 = K0->val.shape[1];
    int sym = !d1 && !d2;
    if (!sym && (!d1 || !d2)) return nl_op_fail(NL_EINVAL, op, "pass both d1 and d2, or neither (symmetric case)", K0, NULL);
    if (sym && n1 != n2) return nl_op_fail(NL_ESHAPE, op, "symmetric case (d1 = d2 = NULL) needs a square K0", K0, NULL);
    if (!sym && (!is_f64_vec(d1, n1) || !is_f64_vec(d2, n2)))
        return nl_op_fail(NL_ESHAPE, op, "d1 / d2 must be f64 vectors [n1] / [n2] (K0 is [n1, n2]; d1 shown)", K0, d1);
    int64_t nh = nl_tensor_numel(&hyp->val);
    if (hyp->val.dtype != NL_F64 || (nh != 2 && nh != 4))
        return nl_op_fail(NL_ESHAPE, op, "hyp must be f64 with 2 (sw2, sb2) or 4 (sw2, sb2, sw2_out, sb2_out) elements", hyp, NULL);
    if (cfg->force_quad) return nl_op_fail(NL_EINVAL, op, "force_quad is forward-only (non-smooth activations have no NTK gradient by quadrature)", K0, NULL);
    if (cfg->param == NL_KPARAM_SP && cfg->sp_in_dim < 1)
        return nl_op_fail(NL_EINVAL, op, "the standard parametrisation needs cfg.sp_in_dim (input dimension d)", K0, NULL);
    double hv[4];
    for (int k = 0; k < nh; k++) {
        hv[k] = nl_tensor_get(&hyp->val, k);
        if (!(hv[k] >= 0) || !isfinite(hv[k])) {
            nl_set_error(NL_EINVAL, "%s: hyperparameter %d = %g must be a finite variance >= 0", op, k, hv[k]);
            return NULL;
        }
    }
    kop_saved *s = nl_scratch(c, sizeof *s);
    void *pmem = nl_scratch(c, plan_bytes(cfg));
    if (!s || !pmem) return NULL;
    memset(s, 0, sizeof *s);
    if (plan_init(&s->p, cfg, hv, (int)nh, cfg->sp_in_dim, pmem)) return NULL;
    const kplan *p = &s->p;
    int L = p->L;
    s->which = which; s->sym = sym; s->nhyp = (int)nh; s->n1 = n1; s->n2 = n2;
    nl_tensor k0 = nl_contig(c, &K0->val);
    if (!k0.data) return NULL;
    s->K0 = k0.data;
    if (diag_arena(c, &s->d1, L, n1)) return NULL;
    if (sym) {
        s->d2 = s->d1;
        diag_fill(p, &s->d1, s->K0, n1 + 1);
    } else {
        if (diag_arena(c, &s->d2, L, n2)) return NULL;
        nl_tensor a = nl_contig(c, &d1->val), b = nl_contig(c, &d2->val);
        if (!a.data || !b.data) return NULL;
        diag_fill(p, &s->d1, a.data, 1);
        diag_fill(p, &s->d2, b.data, 1);
    }
    int64_t shape[2] = {n1, n2};
    nl_var *out = nl_op_out(c, NL_F64, 2, shape);
    if (!out) return NULL;
    int nth = omp_get_max_threads();
    double *scr = nl_scratch(c, sizeof(double) * (size_t)nth * (size_t)(n2 > 0 ? n2 : 1));
    if (!scr) return NULL;
    double *o = out->val.data;
#pragma omp parallel for schedule(static) num_threads(nth) if (n1 * n2 * (L + 1) * elem_cost(p) > PAR_WORK)
    for (int64_t i = 0; i < n1; i++) {
        double *mine = scr + (size_t)omp_get_thread_num() * (size_t)n2;
        double *S = which == NL_KERNEL_NNGP ? o + i * n2 : mine, *T = which == NL_KERNEL_NTK ? o + i * n2 : NULL;
        memcpy(S, s->K0 + i * n2, sizeof(double) * (size_t)n2);
        row_kernel(p, S, T, n2, &s->d1, i, &s->d2, 0, sym ? i : -1);
    }
    nl_var *in[4] = {K0, d1, d2, hyp};
    nl_node *n = nl_op_record(c, op, out, kop_backward, 4, in);
    if (n) n->saved = s;
    return out;
}

/* ---- A + s I ---- */
static void adddiag_backward(nl_ctx *c, nl_node *nd) {
    const nl_tensor *g = nl_node_grad_out(nd);
    nl_tensor *gA = nl_grad(c, nd->in[0]), *gs = nl_grad(c, nd->in[1]);
    if (gA) nl_tensor_add_into(gA, g);
    if (gs) {
        int64_t n = g->shape[0];
        double tr = 0;
        for (int64_t i = 0; i < n; i++) tr += nl_tensor_get(g, i * n + i);
        nl_tensor_set(gs, 0, nl_tensor_get(gs, 0) + tr);
    }
}

nl_var *nl_kernel_add_diag(nl_ctx *c, nl_var *A, nl_var *s) {
    const char *op = "kernel_add_diag";
    NL_REQUIRE(A, s);
    if (A->val.ndim != 2 || A->val.shape[0] != A->val.shape[1]) return nl_op_fail(NL_ESHAPE, op, "A must be square", A, NULL);
    if (nl_tensor_numel(&s->val) != 1) return nl_op_fail(NL_ESHAPE, op, "s must have one element", s, NULL);
    if (A->val.dtype != s->val.dtype) return nl_op_fail(NL_EDTYPE, op, "A and s must have the same dtype", A, s);
    nl_var *out = nl_op_out(c, A->val.dtype, 2, A->val.shape);
    if (!out) return NULL;
    nl_tensor_copy(&out->val, &A->val);
    int64_t n = A->val.shape[0];
    double sv = nl_tensor_get(&s->val, 0);
    for (int64_t i = 0; i < n; i++) nl_tensor_set(&out->val, i * n + i, nl_tensor_get(&out->val, i * n + i) + sv);
    nl_var *in[2] = {A, s};
    nl_op_record(c, op, out, adddiag_backward, 2, in);
    return out;
}
