/* bench/sgemm_peak.c — the machine's measured single-precision GEMM rate: the reference every other benchmark
 * reports a fraction of.
 *
 * For T in $NLB_THREADS (default 1,2): square cblas_sgemm (row-major, no transposes) at n = 512 .. 2048, best of
 * `reps` timed calls after a warmup call; the peak at T threads is the best over the sizes. The last lines are
 * machine-readable:  PEAK_T<T>=<GFLOP/s>  (run_all.sh exports them as NLB_SGEMM_PEAK_T<T>).
 *
 * Usage: bench_sgemm_peak [reps]   (default 7) */
#include "bench_util.h"

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    if (reps < 1) reps = 1;
    int ts[8];
    int nt = nlb_thread_list(ts, 8);
    static const int sizes[] = {512, 1024, 1536, 2048};
    const int ns = (int)(sizeof sizes / sizeof sizes[0]);
    double peak[8] = {0};
    nlb_header("sgemm peak (cblas_sgemm, square, best of reps)");
    /* the kernel OpenBLAS picked at load time (OPENBLAS_CORETYPE overrides it for the whole process) */
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("OpenBLAS %s, kernel %s%s%s\n", openblas_get_config(), openblas_get_corename(), ct ? ", OPENBLAS_CORETYPE=" : "",
           ct ? ct : "");
    printf("%-8s", "threads");
    for (int i = 0; i < ns; i++) printf("   n=%-6d", sizes[i]);
    printf("   peak GFLOP/s\n");
    for (int k = 0; k < nt; k++) {
        nlb_set_threads(ts[k]);
        printf("%-8d", ts[k]);
        for (int i = 0; i < ns; i++) {
            double g = nlb_sgemm_gflops(sizes[i], reps);
            if (g > peak[k]) peak[k] = g;
            printf("   %8.1f", g);
            fflush(stdout);
        }
        printf("   %8.1f\n", peak[k]);
    }
    if (nt > 1 && peak[0] > 0)
        for (int k = 1; k < nt; k++) printf("scaling %d->%d threads: %.2fx\n", ts[0], ts[k], peak[k] / peak[0]);
    for (int k = 0; k < nt; k++) printf("PEAK_T%d=%.1f\n", ts[k], peak[k]);
    return 0;
}
