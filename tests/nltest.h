/* tests/nltest.h — minimal test harness: checks count, failures print file:line and a message, and the
 * program ends with the plain closing line "N passed, N failed" and exits non-zero on any failure. */
#ifndef NLTEST_H
#define NLTEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nnlab/nnlab.h"

static int nlt_pass, nlt_fail;
static const char *nlt_current = "";

#define NLT_CHECK(cond, ...)                                                          \
    do {                                                                              \
        if (cond) nlt_pass++;                                                         \
        else {                                                                        \
            nlt_fail++;                                                               \
            fprintf(stderr, "FAIL %s:%d [%s] %s: ", __FILE__, __LINE__, nlt_current, #cond); \
            fprintf(stderr, __VA_ARGS__);                                             \
            fprintf(stderr, "\n");                                                    \
        }                                                                             \
    } while (0)

#define NLT_NEAR(a, b, tol)                                                           \
    do {                                                                              \
        double nlt_a = (double)(a), nlt_b = (double)(b);                              \
        NLT_CHECK(fabs(nlt_a - nlt_b) <= (tol), "%s = %.10g, %s = %.10g (tol %g)", #a, nlt_a, #b, nlt_b, (double)(tol)); \
    } while (0)

/* Status must be NL_OK; prints the library message otherwise. */
#define NLT_OK(expr)                                                                  \
    do {                                                                              \
        nl_status nlt_s = (expr);                                                     \
        NLT_CHECK(nlt_s == NL_OK, "%s -> %s: %s", #expr, nl_status_name(nlt_s), nl_last_error()); \
    } while (0)

#define NLT_RUN(fn)                                                                   \
    do {                                                                              \
        nlt_current = #fn;                                                            \
        int nlt_f0 = nlt_fail;                                                        \
        double nlt_t0 = nl_time();                                                    \
        fn();                                                                         \
        printf("%-40s %s (%.2fs)\n", #fn, nlt_fail == nlt_f0 ? "ok" : "FAILED", nl_time() - nlt_t0); \
        fflush(stdout);                                                               \
    } while (0)

static inline int nlt_finish(void) {
    printf("%d passed, %d failed\n", nlt_pass, nlt_fail);
    return nlt_fail ? 1 : 0;
}

/* Skip the rest of a test program (e.g. a dataset package missing), counted as a pass of zero checks. */
#define NLT_SKIP_ALL(why)                                                             \
    do {                                                                              \
        printf("SKIP: %s\n0 passed, 0 failed, 1 skipped\n", why);                     \
        return 0;                                                                     \
    } while (0)
/* Test inputs shared by the op tests: t filled uniform in [lo, hi) from Philox (seed, stream 11). */
static inline void nlt_fill_uniform(nl_tensor *t, uint64_t seed, double lo, double hi) {
    nl_rng r;
    nl_rng_init(&r, seed, 11);
    nl_rng_fill_uniform(&r, t, lo, hi);
}
/* A zeroed contiguous tensor of shape s (nd dims) over calloc'd storage the caller frees (t.data). */
static inline nl_tensor nlt_tensor_calloc(nl_dtype dt, int nd, const int64_t *s) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= s[i];
    return nl_tensor_wrap(calloc((size_t)(n ? n : 1), nl_dtype_size(dt)), dt, nd, s);
}

/* n doubles drawn N(0, scale^2) from Philox (seed, stream 7), malloc'd (the caller frees). */
static inline double *nlt_randn_f64(uint64_t seed, int64_t n, double scale) {
    double *a = malloc(sizeof(double) * (size_t)n);
    nl_tensor t = nl_tensor_wrap(a, NL_F64, 1, &n);
    nl_rng r;
    nl_rng_init(&r, seed, 7);
    nl_rng_fill_normal(&r, &t, 0.0, scale);
    return a;
}

/* The whole file at path, malloc'd and NUL-terminated (the caller frees); its size in *n when n is not NULL; NULL when
 * it cannot be opened. */
static inline char *nlt_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)(sz > 0 ? sz : 0) + 1);
    size_t got = b ? fread(b, 1, (size_t)(sz > 0 ? sz : 0), f) : 0;
    if (b) b[got] = 0;
    fclose(f);
    if (n) *n = got;
    return b;
}

#endif
