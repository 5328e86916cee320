/* Helpers shared by the nn op tests (test_nn_ops.c, test_nn_losses.c): fills, tensor construction, gradient checks
 * at the standard tolerances, bitwise comparison. Header-only; include after nltest.h. */
#ifndef NLTEST_NN_H
#define NLTEST_NN_H
#include "nltest.h"
#include "nnlab/extend.h"

/* deterministic pseudo-random fill in [lo, hi) */
static inline void fill(nl_tensor *t, uint64_t seed, double lo, double hi) {
    nl_rng r;
    nl_rng_init(&r, seed, 77);
    nl_rng_fill_uniform(&r, t, lo, hi);
}

static inline nl_tensor mk(nl_dtype dt, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t s[4] = {a, b, c, d};
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= s[i];
    return nl_tensor_wrap(calloc((size_t)(n ? n : 1), nl_dtype_size(dt)), dt, nd, s);
}

static inline void gc_full(const char *what, nl_gc_fn f, void *ud, int n, nl_tensor *in, double eps, double atol, double rtol) {
    nl_gc_result r;
    nl_status s = nl_gradcheck(f, ud, n, in, NULL, eps, atol, rtol, &r);
    NLT_CHECK(s == NL_OK && r.checked > 0, "%s: %s (checked %lld, max abs err %.3g)", what, nl_last_error(), (long long)r.checked, r.max_abs_err);
}
/* f64: step 1e-6, atol 1e-8, rtol 1e-6; f32: step 1e-2, atol 2e-3, rtol 2e-2 */
static inline void gc(const char *what, nl_gc_fn f, void *ud, int n, nl_tensor *in, int f64) {
    if (f64) gc_full(what, f, ud, n, in, 1e-6, 1e-8, 1e-6);
    else gc_full(what, f, ud, n, in, 1e-2, 2e-3, 2e-2);
}

static inline double max_abs_diff(const nl_tensor *a, const nl_tensor *b) {
    double m = 0;
    for (int64_t i = 0; i < nl_tensor_numel(a); i++) m = fmax(m, fabs(nl_tensor_get(a, i) - nl_tensor_get(b, i)));
    return m;
}

static inline int bits_equal(const nl_tensor *a, const nl_tensor *b) {
    return nl_tensor_numel(a) == nl_tensor_numel(b) &&
           !memcmp(a->data, b->data, (size_t)nl_tensor_numel(a) * nl_dtype_size(a->dtype));
}

#endif
