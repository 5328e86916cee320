/* Helpers shared by the lm-infinite tests (test_lm_infinite.c, test_lm_infinite_ledger.c). */
#ifndef NL_LM_INFINITE_TEST_UTIL_H
#define NL_LM_INFINITE_TEST_UTIL_H
#include "nnlab/rng.h"
#include "nnlab/tensor.h"
#include <math.h>
#include <stdlib.h>

/* RoPE frequencies th (D/2) = base^(-2j/D). */
static inline void mk_theta(double *th, int64_t D, double base) {
    for (int64_t j = 0; j < D / 2; j++) th[j] = pow(base, -2.0 * (double)j / (double)D);
}

/* A malloc'ed [B, H, T, D] tensor of standard normals (free its data). */
static inline nl_tensor rnd(nl_dtype dt, int64_t B, int64_t H, int64_t T, int64_t D, uint64_t seed) {
    int64_t s[4] = {B, H, T, D};
    nl_tensor t = nl_tensor_wrap(malloc((size_t)(B * H * T * D + 1) * nl_dtype_size(dt)), dt, 4, s);
    nl_rng r;
    nl_rng_init(&r, seed, 0);
    nl_rng_fill_normal(&r, &t, 0, 1);
    return t;
}

/* max |a - b| over the elements. */
static inline double maxdiff(const nl_tensor *a, const nl_tensor *b) {
    double m = 0;
    const int64_t n = nl_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(nl_tensor_get(a, i) - nl_tensor_get(b, i)));
    return m;
}
#endif
