/* nnlab/base.h — status codes, error messages, threads. Every library call that can fail returns an
 * nl_status (or NULL) and leaves a readable message in nl_last_error(); the library never exits. */
#ifndef NNLAB_BASE_H
#define NNLAB_BASE_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nl_status {
    NL_OK = 0,
    NL_EINVAL,    /* bad argument or flag value */
    NL_ESHAPE,    /* shapes do not agree */
    NL_EDTYPE,    /* dtype not supported by the op / mixed dtypes */
    NL_ENOMEM,    /* allocation failed or arena cap exceeded */
    NL_EIO,       /* file could not be opened/read/written */
    NL_EFORMAT,   /* file contents are corrupt, truncated or not what was expected */
    NL_ENOTFOUND, /* a dataset or file is missing (message names the package to install) */
    NL_ENONFINITE,/* NaN or Inf met where finite numbers are required */
    NL_ELINALG,   /* factorization failed (matrix not positive definite, singular) */
    NL_ESTATE,    /* call made in the wrong state (e.g. backward with grad disabled) */
    NL_STATUS_COUNT
} nl_status;

/* Name of a status code ("NL_ESHAPE"). */
const char *nl_status_name(nl_status s);
/* Message of the last error on this thread ("" if none). */
const char *nl_last_error(void);
/* Status of the last error on this thread (NL_OK if none since nl_clear_error). */
nl_status nl_last_status(void);
void nl_clear_error(void);
/* Record an error (printf-style message) and return s; used by library code and by extensions. The arguments may
 * include nl_last_error() (to wrap the previous message: nl_set_error(s, "%s: %s", who, nl_last_error())). */
nl_status nl_set_error(nl_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- threads ----
 * nl_threads_init() reads NL_NUM_THREADS (default: number of online cores) and applies it to both OpenMP
 * loops and OpenBLAS, which are never nested, so T threads are used at any moment, never T*T. */
void nl_threads_init(void);
void nl_set_num_threads(int n);
int nl_get_num_threads(void);
/* Single-threaded BLAS inside an OpenMP loop. Debian's pthreads OpenBLAS does not detect that it is called from
 * inside an OpenMP parallel region, so a BLAS call in each of T OpenMP threads would start T more threads each
 * (T*T threads spinning against each other). Bracket such a region so that at most T threads run at a time:
 *     int saved = nl_blas_serial_begin();      // OpenBLAS -> 1 thread; returns the count to restore
 *     #pragma omp parallel ... { ... cblas / nl_gemm calls ... }
 *     nl_blas_serial_end(saved);               // OpenBLAS -> saved threads (nl_get_num_threads() at begin)
 * Call both outside any parallel region, from the same thread; not reentrant (do not nest the brackets). */
int nl_blas_serial_begin(void);
void nl_blas_serial_end(int saved);

/* ---- progress ----
 * Convention for long library calls (training loops, experiments, sweeps): the call's config has an
 * `int verbose` field (0 silent, >= 1 progress lines, higher values more detail where a call documents it), and
 * every progress line goes through nl_progress(), never straight to stderr or a FILE. Where the lines end up is
 * chosen by the caller with nl_set_progress(): the default (and fn == NULL) writes each line plus '\n' to stderr
 * and flushes. The sink is thread-local, so experiments running concurrently on different threads can each
 * collect their own lines; a thread that never calls nl_set_progress writes to stderr. Lines are handed over
 * without a trailing newline. Callbacks that can steer a computation (nl_train_callbacks.on_step, ...) are hooks,
 * not progress, and stay as they are. Errors are not progress: they go to nl_set_error. */
typedef void (*nl_progress_fn)(void *ud, const char *line);
/* Route this thread's progress lines to fn(ud, line); fn == NULL restores the default (stderr). */
void nl_set_progress(nl_progress_fn fn, void *ud);
/* This thread's sink (NULL: stderr) and, if ud is not NULL, its user data; to save and restore around a call. */
nl_progress_fn nl_get_progress(void **ud);
/* Format one progress line (printf-style; a trailing newline is dropped) and hand it to this thread's sink. */
void nl_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- checked size arithmetic ----
 * Every size computed from untrusted numbers (shapes read from files, metadata, flags) goes through these, the
 * C23 ckd_* convention: *r receives the product / sum and the return value is 1 when it overflowed (then *r is
 * unspecified and must not be used), 0 when it fits. nl_shape_numel (tensor.h) builds on them. */
static inline int nl_size_mul(size_t *r, size_t a, size_t b) { return __builtin_mul_overflow(a, b, r); }
static inline int nl_size_add(size_t *r, size_t a, size_t b) { return __builtin_add_overflow(a, b, r); }
static inline int nl_i64_mul(int64_t *r, int64_t a, int64_t b) { return __builtin_mul_overflow(a, b, r); }
static inline int nl_i64_add(int64_t *r, int64_t a, int64_t b) { return __builtin_add_overflow(a, b, r); }

/* Monotonic wall clock in seconds. */
double nl_time(void);

#ifdef __cplusplus
}
#endif
#endif
