/* Internal: vectorisable float math for the engine's hot loops (not a public header).
 *
 * glibc's expf does not vectorise without -ffast-math, and the engine is built without it; these branch-free
 * versions do, inside `#pragma omp simd` loops (the compiler turns the selects into blends). */
#ifndef NNLAB_CORE_VMATH_H
#define NNLAB_CORE_VMATH_H
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

#endif
