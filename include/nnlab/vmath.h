/* nnlab/vmath.h — inline vector math for the engine's and the libraries' hot loops (header only, no fast-math).
 *
 * The project is built with -O2 and never -ffast-math (NaN checks and exact rounding are tested), so glibc's
 * expf, sqrt (errno) and friends do not vectorise in ordinary loops. This header provides:
 *   - nl_vexpf: a branch-free f32 exp that does vectorise inside `#pragma omp simd` loops (the compiler turns the
 *     selects into blends) when the file is compiled with -fno-trapping-math: under GCC's default -ftrapping-math
 *     the selects stay branches and the loop runs scalar ("control flow in loop"), so CMakeLists.txt sets it for
 *     the softmax, cross-entropy and attention sources that use it;
 *   - f64 SIMD wrappers (nl_vd, one register of NL_VL doubles, and nl_vm, a lane mask) over AVX-512 (8 lanes),
 *     AVX2+FMA (4 lanes) or plain scalar code (1 lane), chosen at compile time from the target flags
 *     (-march=native by default), so a hot loop is written once against nl_v_* and runs on any of the three;
 *   - polynomial asin / atan / atan2 on those wrappers (accurate to ~1e-16 relative), used by the NNGP / NTK
 *     closed forms (lib/kernels).
 * Every function is static inline and exact IEEE arithmetic in a fixed order: results depend on the lane width
 * only where documented (NL_MADD: fused on the SIMD paths, a*b + c on the scalar one). */
#ifndef NNLAB_VMATH_H
#define NNLAB_VMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) in f32: Cody-Waite reduction x = n ln2 + r and the Cephes degree-6 polynomial, max relative error
 * 1.4 ulp for normal results; x < -87.34 (including -inf) gives 0, x > 88.38 saturates at 2.4e38 (callers in the
 * softmax family only pass x <= 0), NaN gives NaN. */
static inline float nl_vexpf(float x) {
    const float lo = -87.33654475f, hi = 88.37626266f;
    float xc = x >= lo ? x : lo;
    xc = xc <= hi ? xc : hi;
    float fx = xc * 1.44269504088896341f;
    fx = (fx + 12582912.0f) - 12582912.0f; /* round to nearest integer (|fx| < 2^22) */
    float r = xc - fx * 0.693359375f;
    r = r - fx * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)fx + 127) << 23; /* 2^fx, fx in [-126, 127] */
    float sc;
    memcpy(&sc, &bits, sizeof sc);
    float y = p * sc;
    y = x < lo ? 0.0f : y;
    return x == x ? y : x;
}

/* ---- f64 SIMD wrappers ----
 * nl_v_set broadcast, nl_v_load / nl_v_store unaligned, arithmetic, nl_v_fma(a, b, c) = a*b + c (fused),
 * nl_v_fnma(a, b, c) = c - a*b (fused), comparisons giving masks (ordered: false on NaN), nl_m_and, and
 * nl_v_sel(m, a, b) = m ? a : b per lane. NL_MADD(a, b, c) is the scalar companion of nl_v_fma: fma() where the
 * SIMD path fuses, so scalar tails and reference code round the same way as the vector body. Intrinsics are
 * used because sqrt in an ordinary loop is not vectorised by gcc unless -fno-math-errno is given. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define NL_VL 8
typedef __m512d nl_vd;
typedef __mmask8 nl_vm;
static inline nl_vd nl_v_set(double x) { return _mm512_set1_pd(x); }
static inline nl_vd nl_v_load(const double *p) { return _mm512_loadu_pd(p); }
static inline void nl_v_store(double *p, nl_vd a) { _mm512_storeu_pd(p, a); }
static inline nl_vd nl_v_add(nl_vd a, nl_vd b) { return _mm512_add_pd(a, b); }
static inline nl_vd nl_v_sub(nl_vd a, nl_vd b) { return _mm512_sub_pd(a, b); }
static inline nl_vd nl_v_mul(nl_vd a, nl_vd b) { return _mm512_mul_pd(a, b); }
static inline nl_vd nl_v_sqrt(nl_vd a) { return _mm512_sqrt_pd(a); }
static inline nl_vd nl_v_div(nl_vd a, nl_vd b) { return _mm512_div_pd(a, b); }
static inline nl_vd nl_v_fma(nl_vd a, nl_vd b, nl_vd c) { return _mm512_fmadd_pd(a, b, c); }   /* a*b + c */
static inline nl_vd nl_v_fnma(nl_vd a, nl_vd b, nl_vd c) { return _mm512_fnmadd_pd(a, b, c); } /* c - a*b */
static inline nl_vd nl_v_max(nl_vd a, nl_vd b) { return _mm512_max_pd(a, b); }
static inline nl_vd nl_v_min(nl_vd a, nl_vd b) { return _mm512_min_pd(a, b); }
static inline nl_vd nl_v_abs(nl_vd a) { return _mm512_abs_pd(a); }
static inline nl_vm nl_v_gt(nl_vd a, nl_vd b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
static inline nl_vm nl_v_lt(nl_vd a, nl_vd b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
static inline nl_vm nl_v_le(nl_vd a, nl_vd b) { return _mm512_cmp_pd_mask(a, b, _CMP_LE_OQ); }
static inline nl_vm nl_m_and(nl_vm a, nl_vm b) { return (nl_vm)(a & b); }
static inline nl_vd nl_v_sel(nl_vm m, nl_vd a, nl_vd b) { return _mm512_mask_blend_pd(m, b, a); } /* m ? a : b */
#define NL_MADD(a, b, c) fma((a), (b), (c))
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define NL_VL 4
typedef __m256d nl_vd;
typedef __m256d nl_vm;
static inline nl_vd nl_v_set(double x) { return _mm256_set1_pd(x); }
static inline nl_vd nl_v_load(const double *p) { return _mm256_loadu_pd(p); }
static inline void nl_v_store(double *p, nl_vd a) { _mm256_storeu_pd(p, a); }
static inline nl_vd nl_v_add(nl_vd a, nl_vd b) { return _mm256_add_pd(a, b); }
static inline nl_vd nl_v_sub(nl_vd a, nl_vd b) { return _mm256_sub_pd(a, b); }
static inline nl_vd nl_v_mul(nl_vd a, nl_vd b) { return _mm256_mul_pd(a, b); }
static inline nl_vd nl_v_sqrt(nl_vd a) { return _mm256_sqrt_pd(a); }
static inline nl_vd nl_v_div(nl_vd a, nl_vd b) { return _mm256_div_pd(a, b); }
static inline nl_vd nl_v_fma(nl_vd a, nl_vd b, nl_vd c) { return _mm256_fmadd_pd(a, b, c); }
static inline nl_vd nl_v_fnma(nl_vd a, nl_vd b, nl_vd c) { return _mm256_fnmadd_pd(a, b, c); }
static inline nl_vd nl_v_max(nl_vd a, nl_vd b) { return _mm256_max_pd(a, b); }
static inline nl_vd nl_v_min(nl_vd a, nl_vd b) { return _mm256_min_pd(a, b); }
static inline nl_vd nl_v_abs(nl_vd a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
static inline nl_vm nl_v_gt(nl_vd a, nl_vd b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
static inline nl_vm nl_v_lt(nl_vd a, nl_vd b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
static inline nl_vm nl_v_le(nl_vd a, nl_vd b) { return _mm256_cmp_pd(a, b, _CMP_LE_OQ); }
static inline nl_vm nl_m_and(nl_vm a, nl_vm b) { return _mm256_and_pd(a, b); }
static inline nl_vd nl_v_sel(nl_vm m, nl_vd a, nl_vd b) { return _mm256_blendv_pd(b, a, m); }
#define NL_MADD(a, b, c) fma((a), (b), (c))
#else
#define NL_VL 1
typedef double nl_vd;
typedef int nl_vm;
static inline nl_vd nl_v_set(double x) { return x; }
static inline nl_vd nl_v_load(const double *p) { return *p; }
static inline void nl_v_store(double *p, nl_vd a) { *p = a; }
static inline nl_vd nl_v_add(nl_vd a, nl_vd b) { return a + b; }
static inline nl_vd nl_v_sub(nl_vd a, nl_vd b) { return a - b; }
static inline nl_vd nl_v_mul(nl_vd a, nl_vd b) { return a * b; }
static inline nl_vd nl_v_sqrt(nl_vd a) { return sqrt(a); }
static inline nl_vd nl_v_div(nl_vd a, nl_vd b) { return a / b; }
static inline nl_vd nl_v_fma(nl_vd a, nl_vd b, nl_vd c) { return a * b + c; }
static inline nl_vd nl_v_fnma(nl_vd a, nl_vd b, nl_vd c) { return c - a * b; }
static inline nl_vd nl_v_max(nl_vd a, nl_vd b) { return a > b ? a : b; }
static inline nl_vd nl_v_min(nl_vd a, nl_vd b) { return a < b ? a : b; }
static inline nl_vd nl_v_abs(nl_vd a) { return fabs(a); }
static inline nl_vm nl_v_gt(nl_vd a, nl_vd b) { return a > b; }
static inline nl_vm nl_v_lt(nl_vd a, nl_vd b) { return a < b; }
static inline nl_vm nl_v_le(nl_vd a, nl_vd b) { return a <= b; }
static inline nl_vm nl_m_and(nl_vm a, nl_vm b) { return a && b; }
static inline nl_vd nl_v_sel(nl_vm m, nl_vd a, nl_vd b) { return m ? a : b; }
#define NL_MADD(a, b, c) ((a) * (b) + (c))
#endif

/* ---- f64 asin / atan on the wrappers ---- */
/* asin(u) = u + u^3 P(u^2) on [0, 0.5]: degree-12 polynomial in z = u^2 (Chebyshev interpolation of
 * (asin(sqrt z) - sqrt z) / z^1.5 on [0, 0.25], computed in 50-digit arithmetic); max relative error of the
 * resulting asin 1.2e-16 on [0, 0.5]. Larger arguments use asin(t) = pi/2 - 2 asin(sqrt((1 - t)/2)). */
static inline nl_vd nl_v_asin_small(nl_vd u) { /* u in [0, 0.5] */
    static const double ASIN_P[13] = {
        0.16666666666666669,  0.074999999999984329, 0.044642857146355429, 0.030381944138531247,
        0.022372172942149889, 0.017352392720869973, 0.013971212973552933, 0.011479177415184906,
        0.010322814350185779, 0.0054575067186403581, 0.017400879442694021, -0.014851887071247204,
        0.028757851367421566};
    nl_vd z = nl_v_mul(u, u);
    nl_vd p = nl_v_set(ASIN_P[12]);
    for (int k = 11; k >= 0; k--) p = nl_v_fma(p, z, nl_v_set(ASIN_P[k]));
    return nl_v_fma(nl_v_mul(u, z), p, u);
}
/* asin(w) for w in [-1, 1]. */
static inline nl_vd nl_v_asin(nl_vd w) {
    nl_vd t = nl_v_abs(w);
    nl_vm big = nl_v_gt(t, nl_v_set(0.5));
    nl_vd u = nl_v_sel(big, nl_v_sqrt(nl_v_mul(nl_v_set(0.5), nl_v_sub(nl_v_set(1.0), t))), t);
    nl_vd as = nl_v_asin_small(u);
    nl_vd a = nl_v_sel(big, nl_v_fnma(nl_v_set(2.0), as, nl_v_set(1.57079632679489661923)), as); /* asin(|w|) */
    return nl_v_sel(nl_v_lt(w, nl_v_set(0.0)), nl_v_sub(nl_v_set(0.0), a), a);
}

/* atan(x) = x + x^3 Q(x^2) on |x| <= tan(pi/8): degree-10 polynomial in x^2 (same construction as the asin table);
 * max relative error 1.1e-16. */
/* atan(t) for t in [0, 1] (atan(t) = pi/4 + atan((t-1)/(t+1)) above tan(pi/8)). */
static inline nl_vd nl_v_atan01(nl_vd t) {
    static const double ATAN_Q[11] = {
        -0.33333333333333331, 0.19999999999995521,  -0.14285714284666542, 0.11111111015256361,
        -0.090909045781239026, 0.076921831908260865, -0.066645114473819475, 0.0585814891280221,
        -0.050854497379402598, 0.039231658295587189, -0.01917688711906226};
    nl_vd one = nl_v_set(1.0);
    nl_vm big = nl_v_gt(t, nl_v_set(0.41421356237309503));
    nl_vd x = nl_v_sel(big, nl_v_div(nl_v_sub(t, one), nl_v_add(t, one)), t);
    nl_vd z = nl_v_mul(x, x);
    nl_vd p = nl_v_set(ATAN_Q[10]);
    for (int k = 9; k >= 0; k--) p = nl_v_fma(p, z, nl_v_set(ATAN_Q[k]));
    nl_vd at = nl_v_fma(nl_v_mul(x, z), p, x);
    return nl_v_sel(big, nl_v_add(nl_v_set(0.78539816339744831), at), at);
}

/* atan2(s, k) for s >= 0, computed from the ratio of the smaller to the larger magnitude so that a small angle
 * is accurate relative to s (an arccos of k / sqrt(k11 k22) loses half the digits there, and the ABReLU recursion
 * would amplify that error layer by layer). atan2(0, 0) = pi/2 as neural-tangents' fill value. */
static inline nl_vd nl_v_atan2_pos(nl_vd s, nl_vd k) {
    nl_vd ak = nl_v_abs(k), zero = nl_v_set(0.0);
    nl_vd lo = nl_v_min(s, ak), hi = nl_v_max(s, ak);
    nl_vm nz = nl_v_gt(hi, zero);
    nl_vd t = nl_v_div(lo, nl_v_sel(nz, hi, nl_v_set(1.0)));
    nl_vd th = nl_v_atan01(t);
    th = nl_v_sel(nl_v_gt(s, ak), nl_v_sub(nl_v_set(1.57079632679489661923), th), th);
    th = nl_v_sel(nl_v_lt(k, zero), nl_v_sub(nl_v_set(3.14159265358979323846), th), th);
    return nl_v_sel(nz, th, nl_v_set(1.57079632679489661923));
}

#endif
