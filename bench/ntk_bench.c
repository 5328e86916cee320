/* bench/ntk_bench.c — infinite-width NTK matrix of N Fashion-MNIST test images (depth-3 ReLU network, NTK
 * parametrisation, sw = 1, sb = 0), against the input-Gram dgemm alone and against NumPy, at 1 and 2 threads.
 *
 * Measured at each thread count T (OpenMP + OpenBLAS pinned to T here, OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = T
 * for the Python child):
 *   gemm     cblas_dgemm of the full N x N input Gram X X^T / d (the lower bound any implementation pays)
 *   ntk      nl_kernel_matrix(x1 = x2 = X) writing the full N x N f64 NTK: the general (rectangular) path
 *   ntk-sym  nl_kernel_matrix(x2 = NULL): the symmetric path (upper tiles only, mirrored)
 *   numpy    bench/ntk_numpy.py, the same recursion in NumPy (row blocks of 1000), same data, same threads;
 *            its first rows are compared with the C result (max relative difference printed)
 * Ratios are times divided by the gemm time; GFLOP/s counts the Gram's 2 N^2 d flop for every variant.
 * Timing: median of --repeat runs (default 3) after one warmup for the C sides; NumPy once. Output buffers are
 * touched before timing (no page faults in the numbers).
 *
 * Usage: bench_ntk_bench [--n N] [--depth L] [--repeat K] [--no-numpy] [--tile ROWS COLS]
 *   --tile  nl_kernel_cfg tile_rows / tile_cols (default 0 0: the library's 256 x 1024)
 * Env: NLB_THREADS (default "1,2"), NL_SOURCE_DIR (to find bench/ntk_numpy.py), NL_DATA_DIR (dataset). */
#include "bench_util.h"
#include "nnlab/data.h"
#include "kernels/kernels.h"
#include <math.h>

typedef struct {
    const double *X;
    int64_t n, d;
    int sym;
    nl_kernel_cfg cfg;
    double *out;
} job;

static void run_gemm(void *a) {
    job *j = a;
    nl_gemm(NL_F64, 0, 1, j->n, j->n, j->d, 1.0 / (double)j->d, j->X, j->d, j->X, j->d, 0.0, j->out, j->n);
}

static void run_ntk(void *a) {
    job *j = a;
    NLB_CHECK(nl_kernel_matrix(&j->cfg, j->X, j->n, j->sym ? NULL : j->X, j->n, j->d, NL_KERNEL_NTK, NL_F64, NULL,
                               j->out, 0) == NL_OK);
}

int main(int argc, char **argv) {
    int64_t n = 10000;
    int depth = 3, repeat = 3, numpy = 1;
    int64_t tile_r = 0, tile_c = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--depth") && i + 1 < argc) depth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-numpy")) numpy = 0;
        else if (!strcmp(argv[i], "--tile") && i + 2 < argc) { tile_r = atoll(argv[++i]); tile_c = atoll(argv[++i]); }
        else {
            fprintf(stderr, "usage: %s [--n N] [--depth L] [--repeat K] [--no-numpy] [--tile ROWS COLS]\n", argv[0]);
            return 2;
        }
    }
    nl_dataset ds;
    nl_status s = nl_dataset_load(&ds, "fashion-mnist", "test", getenv("NL_DATA_DIR"));
    if (s) {
        printf("ntk_bench skipped: %s\n", nl_last_error());
        return 0;
    }
    if (n > ds.n) n = ds.n;
    int64_t d = ds.d;
    double *X = malloc(sizeof(double) * (size_t)(n * d));
    double *K = malloc(sizeof(double) * (size_t)(n * n)), *T = malloc(sizeof(double) * (size_t)(n * n));
    NLB_CHECK(X && K && T);
    for (int64_t i = 0; i < n * d; i++) X[i] = ds.x[i]; /* pixels in [0, 1] */
    nl_dataset_free(&ds);
    memset(K, 0, sizeof(double) * (size_t)(n * n));
    memset(T, 0, sizeof(double) * (size_t)(n * n));

    char xpath[256], cpath[256], script[1024];
    snprintf(xpath, sizeof xpath, "/tmp/nnlab_ntk_bench_%d.f64", (int)getpid());
    snprintf(cpath, sizeof cpath, "/tmp/nnlab_ntk_bench_%d.check", (int)getpid());
    if (numpy && !nlb_find_script("ntk_numpy.py", script, sizeof script)) {
        printf("numpy side skipped: bench/ntk_numpy.py not found (set NL_SOURCE_DIR)\n");
        numpy = 0;
    }
    if (numpy) {
        FILE *f = fopen(xpath, "wb");
        NLB_CHECK(f && fwrite(X, sizeof(double), (size_t)(n * d), f) == (size_t)(n * d));
        fclose(f);
    }

    nl_kernel_cfg cfg;
    nl_kernel_cfg_default(&cfg);
    cfg.depth = depth;
    cfg.tile_rows = tile_r;
    cfg.tile_cols = tile_c;
    double gflop = 2.0 * (double)n * (double)n * (double)d * 1e-9;
    nlb_header("ntk_bench");
    printf("NTK of a depth-%d ReLU network (NTK param, sw=1, sb=0), N = %lld Fashion-MNIST test images, d = %lld, "
           "f64, full N x N output (%.2f GB)\n", depth, (long long)n, (long long)d, 8.0 * n * n * 1e-9);
    int ts[8], nt = nlb_thread_list(ts, 8);
    for (int ti = 0; ti < nt; ti++) {
        int t = ts[ti];
        nlb_set_threads(t);
        job jg = {X, n, d, 0, cfg, K}, jn = {X, n, d, 0, cfg, T}, js = {X, n, d, 1, cfg, T};
        double tg = nlb_median_time(run_gemm, &jg, 1, repeat);
        double tn = nlb_median_time(run_ntk, &jn, 1, repeat);
        double tsym = nlb_median_time(run_ntk, &js, 1, repeat);
        /* the general result for the numpy comparison */
        run_ntk(&jn);
        printf("threads %d (load %.2f)\n", t, nlb_loadavg());
        printf("  gemm     %8.3f s  %6.1f GFLOP/s\n", tg, gflop / tg);
        printf("  ntk      %8.3f s  %6.1f GFLOP/s  ratio to gemm %.2f\n", tn, gflop / tn, tn / tg);
        printf("  ntk-sym  %8.3f s  %6.1f GFLOP/s  ratio to gemm %.2f\n", tsym, gflop / tsym, tsym / tg);
        if (numpy) {
            char cmd[2048];
            snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --x '%s' --n %lld --d %lld --depth %d --check '%s' --check-rows 4",
                     script, xpath, (long long)n, (long long)d, depth, cpath);
            FILE *pp = popen(cmd, "r");
            char line[1024] = "";
            double tp = -1;
            if (pp) {
                while (fgets(line, sizeof line, pp)) {
                    char *q = strstr(line, "\"seconds\":");
                    if (q) tp = atof(q + 10);
                }
                pclose(pp);
            }
            if (tp <= 0) {
                printf("  numpy    failed (no timing from %s)\n", script);
                continue;
            }
            /* max relative difference on the first 4 rows, off the diagonal and on it (at x = x' both sides
             * compute theta from a Gram entry and norms that differ in the last bit: Sigma_dot moves by ~1e-8) */
            double woff = NAN, wdiag = NAN;
            FILE *f = fopen(cpath, "rb");
            if (f) {
                double *chk = malloc(sizeof(double) * (size_t)(4 * n));
                if (chk && fread(chk, sizeof(double), (size_t)(4 * n), f) == (size_t)(4 * n)) {
                    woff = wdiag = 0;
                    for (int64_t k = 0; k < 4 * n; k++) {
                        double e = fabs(chk[k] - T[k]) / fmax(fabs(chk[k]), 1e-300);
                        if (k / n == k % n) wdiag = fmax(wdiag, e);
                        else woff = fmax(woff, e);
                    }
                }
                free(chk);
                fclose(f);
            }
            printf("  numpy    %8.3f s  %6.1f GFLOP/s  ratio to gemm %.2f  numpy / nnlab ntk %.2f\n", tp, gflop / tp,
                   tp / tg, tp / tn);
            printf("           agreement on 4 rows: max rel diff %.1e off the diagonal, %.1e on it\n", woff, wdiag);
        }
        fflush(stdout);
    }
    if (numpy) { remove(xpath); remove(cpath); }
    free(X); free(K); free(T);
    return 0;
}
