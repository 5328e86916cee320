/* Error state (thread-local), progress sink (thread-local), threads, clock. */
#include "nnlab/base.h"
#include <cblas.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void openblas_set_num_threads(int);

static _Thread_local char g_msg[2048];
static _Thread_local nl_status g_status;

static const char *const g_names[NL_STATUS_COUNT] = {
    "NL_OK", "NL_EINVAL", "NL_ESHAPE", "NL_EDTYPE", "NL_ENOMEM", "NL_EIO",
    "NL_EFORMAT", "NL_ENOTFOUND", "NL_ENONFINITE", "NL_ELINALG", "NL_ESTATE"};
_Static_assert(sizeof(g_names) / sizeof(g_names[0]) == NL_STATUS_COUNT, "status names out of sync");

const char *nl_status_name(nl_status s) {
    return (s >= 0 && s < NL_STATUS_COUNT) ? g_names[s] : "NL_E?";
}
const char *nl_last_error(void) { return g_msg; }
nl_status nl_last_status(void) { return g_status; }
void nl_clear_error(void) { g_msg[0] = 0; g_status = NL_OK; }

nl_status nl_set_error(nl_status s, const char *fmt, ...) {
    char buf[sizeof g_msg]; /* format aside: the arguments may include nl_last_error() itself */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(g_msg, buf, sizeof g_msg);
    g_status = s;
    return s;
}

static _Thread_local nl_progress_fn g_progress_fn;
static _Thread_local void *g_progress_ud;

void nl_set_progress(nl_progress_fn fn, void *ud) {
    g_progress_fn = fn;
    g_progress_ud = fn ? ud : NULL;
}

nl_progress_fn nl_get_progress(void **ud) {
    if (ud) *ud = g_progress_ud;
    return g_progress_fn;
}

void nl_progress(const char *fmt, ...) {
    char small[1024], *buf = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof small) { /* long line: format again into a buffer of the right size */
        char *big = malloc((size_t)n + 1);
        if (big) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            buf = big;
        } else {
            n = (int)sizeof small - 1; /* out of memory: hand over the truncated line */
        }
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    if (g_progress_fn) {
        g_progress_fn(g_progress_ud, buf);
    } else {
        fputs(buf, stderr);
        fputc('\n', stderr);
        fflush(stderr);
    }
    if (buf != small) free(buf);
}

static int g_threads = 0;

void nl_set_num_threads(int n) {
    if (n < 1) n = 1;
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int nl_get_num_threads(void) {
    if (!g_threads) nl_threads_init();
    return g_threads;
}

int nl_blas_serial_begin(void) {
    int saved = nl_get_num_threads();
    openblas_set_num_threads(1);
    return saved;
}

void nl_blas_serial_end(int saved) { openblas_set_num_threads(saved > 0 ? saved : 1); }

void nl_threads_init(void) {
    const char *e = getenv("NL_NUM_THREADS");
    int n = e ? atoi(e) : 0;
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    nl_set_num_threads(n);
}

double nl_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
