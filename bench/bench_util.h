/* bench/bench_util.h — shared helpers for the benchmarks (header-only; benchmarks are not tests and assert
 * nothing about timings).
 *
 *   nlb_set_threads(T)        fix the thread count: nl_set_num_threads (OpenMP + OpenBLAS in this process) and
 *                             OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / NL_NUM_THREADS for child processes
 *   nlb_median_time(fn, arg, warmup, k)
 *                             median wall time (s) of k calls after `warmup` untimed calls
 *   nlb_sgemm_gflops(n, reps) best-of-reps GFLOP/s of a square n x n x n cblas_sgemm (current thread count)
 *   nlb_peak_gflops(T)        the reference peak at T threads: $NLB_SGEMM_PEAK_T<T> if set (run_all.sh exports
 *                             the values measured by bench_sgemm_peak so every bench divides by the same number),
 *                             else measured now (best of n = 1024, 1536, 2048)
 *   nlb_loadavg()             1-minute load average (printed with the results: a loaded machine skews them)
 *
 * Everything a bench prints about rates uses decimal units: GFLOP/s = 1e9 flop/s, GB/s = 1e9 bytes/s. */
#ifndef NNLAB_BENCH_UTIL_H
#define NNLAB_BENCH_UTIL_H
#include "nnlab/nnlab.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double nlb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void nlb_set_threads(int t) {
    char buf[16];
    snprintf(buf, sizeof buf, "%d", t);
    setenv("OPENBLAS_NUM_THREADS", buf, 1);
    setenv("OMP_NUM_THREADS", buf, 1);
    setenv("NL_NUM_THREADS", buf, 1);
    setenv("MKL_NUM_THREADS", buf, 1);
    nl_set_num_threads(t);
}

static inline int nlb_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static inline double nlb_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, nlb_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static inline double nlb_min(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

typedef void (*nlb_fn)(void *arg);

#define NLB_MAXRUNS 1024
/* Median seconds of k timed calls of fn(arg) after `warmup` untimed ones. */
static inline double nlb_median_time(nlb_fn fn, void *arg, int warmup, int k) {
    double t[NLB_MAXRUNS];
    if (k > NLB_MAXRUNS) k = NLB_MAXRUNS;
    if (k < 1) k = 1;
    for (int i = 0; i < warmup; i++) fn(arg);
    for (int i = 0; i < k; i++) {
        double t0 = nlb_now();
        fn(arg);
        t[i] = nlb_now() - t0;
    }
    return nlb_median(t, k);
}

/* Median seconds per call, where each timed sample runs fn `inner` times (for sub-millisecond work). */
static inline double nlb_median_time_n(nlb_fn fn, void *arg, int warmup, int k, int inner) {
    double t[NLB_MAXRUNS];
    if (k > NLB_MAXRUNS) k = NLB_MAXRUNS;
    if (k < 1) k = 1;
    if (inner < 1) inner = 1;
    for (int i = 0; i < warmup; i++) fn(arg);
    for (int i = 0; i < k; i++) {
        double t0 = nlb_now();
        for (int j = 0; j < inner; j++) fn(arg);
        t[i] = (nlb_now() - t0) / inner;
    }
    return nlb_median(t, k);
}

/* Calls per timed sample so that one sample lasts about `target_s` seconds. */
static inline int nlb_calibrate(nlb_fn fn, void *arg, double target_s) {
    fn(arg);
    double t0 = nlb_now();
    fn(arg);
    double dt = nlb_now() - t0;
    if (dt <= 0) dt = 1e-7;
    int n = (int)(target_s / dt);
    return n < 1 ? 1 : n > 100000 ? 100000 : n;
}

static inline float *nlb_alloc_f32(int64_t n, unsigned seed) {
    float *p = aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64));
    if (!p) { fprintf(stderr, "bench: out of memory\n"); exit(1); }
    uint32_t s = seed * 2654435761u + 12345u;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((s >> 8) * (1.0 / 16777216.0)) - 0.5f;
    }
    return p;
}

/* Best GFLOP/s of `reps` timed square sgemms C = A B (n x n x n, 2 n^3 flop) after one warmup call. */
static inline double nlb_sgemm_gflops(int n, int reps) {
    float *A = nlb_alloc_f32((int64_t)n * n, 1), *B = nlb_alloc_f32((int64_t)n * n, 2), *C = nlb_alloc_f32((int64_t)n * n, 3);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = nlb_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        double dt = nlb_now() - t0;
        double g = 2.0 * n * (double)n * n / dt * 1e-9;
        if (g > best) best = g;
    }
    free(A); free(B); free(C);
    return best;
}

/* Reference peak (GFLOP/s) at t threads; sets the thread count to t. */
static inline double nlb_peak_gflops(int t) {
    char name[32];
    snprintf(name, sizeof name, "NLB_SGEMM_PEAK_T%d", t);
    nlb_set_threads(t);
    const char *e = getenv(name);
    if (e && atof(e) > 0) return atof(e);
    static const int sizes[] = {1024, 1536, 2048};
    double best = 0;
    for (int i = 0; i < 3; i++) {
        double g = nlb_sgemm_gflops(sizes[i], 5);
        if (g > best) best = g;
    }
    return best;
}

static inline double nlb_loadavg(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static inline void nlb_header(const char *name) {
    printf("== %s  (load average %.2f)\n", name, nlb_loadavg());
}

/* Abort a benchmark with the library's message (benchmarks may exit; the library never does). */
#define NLB_CHECK(cond)                                                                              \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #cond, nl_last_error());   \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

/* Thread counts to run: $NLB_THREADS ("1,2"), default 1 and 2. Returns the count written to ts. */
static inline int nlb_thread_list(int *ts, int max) {
    const char *e = getenv("NLB_THREADS");
    if (!e || !*e) e = "1,2";
    int n = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", e);
    for (char *tok = strtok(buf, ", "); tok && n < max; tok = strtok(NULL, ", ")) {
        int t = atoi(tok);
        if (t > 0) ts[n++] = t;
    }
    if (!n) ts[n++] = 1;
    return n;
}

/* Path of bench/<name> in the source tree: $NL_SOURCE_DIR/bench/<name>, else ./bench/<name>, else
 * <directory of this executable>/../bench/<name> (build dirs live in the source tree). 0 if not found. */
static inline int nlb_find_script(const char *name, char *out, size_t n) {
    const char *e = getenv("NL_SOURCE_DIR");
    char exe[1024];
    if (e && *e) {
        snprintf(out, n, "%.700s/bench/%.200s", e, name);
        if (!access(out, R_OK)) return 1;
    }
    snprintf(out, n, "bench/%.200s", name);
    if (!access(out, R_OK)) return 1;
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, n, "%.700s/../bench/%.200s", exe, name);
            if (!access(out, R_OK)) return 1;
        }
    }
    return 0;
}

/* The Python side of a comparison: /usr/bin/python3 bench/<name> --threads T ARGS with OMP/OpenBLAS/MKL pinned to T
 * threads and stderr merged into the pipe. args: further arguments, already quoted. NULL, with a message naming the
 * script, when it is not found or popen fails. Close with pclose. */
static inline FILE *nlb_python_open(const char *name, int T, const char *args) {
    char script[1024], cmd[4096];
    if (!nlb_find_script(name, script, sizeof script)) {
        fprintf(stderr, "python side skipped: bench/%s not found (set NL_SOURCE_DIR to the source tree)\n", name);
        return NULL;
    }
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d MKL_NUM_THREADS=%d /usr/bin/python3 '%s' --threads %d %s 2>&1", T, T,
             T, script, T, args);
    FILE *p = popen(cmd, "r");
    if (!p) perror("popen");
    return p;
}

#endif
