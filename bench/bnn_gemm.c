/* bench/bnn_gemm.c — the binary (XNOR-popcount) GEMM of lib/bnn against OpenBLAS sgemm at the same shapes.
 *
 * For each shape (M, N, K) — square 1024 and 4096, and the binary convolutions of the biper network (Fashion-MNIST
 * 28x28, 3x3 convolutions, c channels, a batch of 100) as their im2col GEMMs — and each thread count of
 * $NLB_THREADS (default 1,2): median time of cblas_sgemm C [M, N] = A [M, K] B [N, K]^T, and of nl_bnn_gemm on the
 * packed operands with each kernel path the CPU supports. Rates are GFLOP/s for sgemm and GFLOP-equivalent/s for
 * the binary GEMM (the same 2 M N K: one multiply and one add per +-1 product); "x sgemm" is the time ratio, "peak"
 * the fraction of the measured sgemm peak (bench/sgemm_peak.c, $NLB_SGEMM_PEAK_T<T>). Packing is not timed (the
 * weights are packed once at export, activations come packed out of the previous layer's threshold op); it is
 * printed separately. Times are medians of wall time; "(cpu)" is the same ratio from the process CPU time per call,
 * the sturdier number at 1 thread on a loaded machine. Then the whole nl_bnn_conv2d of the biper 14x14 layers. The
 * BNN_RATIO / BNN_BEST lines are machine-readable (run_all.sh prints them in its summary).
 *
 * Usage: bench_bnn_gemm [--quick]   (--quick: skip the 4096 shape) */
#include "bench_util.h"
#include "bnn/bnn.h"

typedef struct shape { const char *name; int64_t M, N, K; } shape;
static const shape SHAPES[] = {
    {"square 1024", 1024, 1024, 1024},
    {"square 4096", 4096, 4096, 4096},
    {"biper L2/L3 c=64 (14x14, K=9*64)", 100 * 14 * 14, 64, 9 * 64},
    {"biper L4 c=64 (7x7)", 100 * 7 * 7, 64, 9 * 64},
    {"biper L2/L3 c=128 (14x14, K=9*128)", 100 * 14 * 14, 128, 9 * 128},
    {"biper L4 c=128 (7x7)", 100 * 7 * 7, 128, 9 * 128},
};

typedef struct job {
    const shape *s;
    const float *a, *b;
    float *c;
    const uint64_t *ab, *bb;
    int32_t *ci;
} job;

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
/* median wall and median process-CPU seconds per call over k samples of `inner` calls, after one warmup call. On a
 * loaded machine the CPU time of a 1-thread run is the work itself; the wall time also counts lost slices. */
static void time_both(void (*fn)(void *), void *arg, int k, int inner, double *wall, double *cpu) {
    double w[64], c[64];
    if (k > 64) k = 64;
    fn(arg);
    for (int i = 0; i < k; i++) {
        const double t0 = nlb_now(), c0 = cpu_now();
        for (int r = 0; r < inner; r++) fn(arg);
        w[i] = (nlb_now() - t0) / inner, c[i] = (cpu_now() - c0) / inner;
    }
    *wall = nlb_median(w, k), *cpu = nlb_median(c, k);
}

static void run_sgemm(void *p) {
    job *j = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->s->M, (int)j->s->N, (int)j->s->K, 1.0f, j->a, (int)j->s->K, j->b,
                (int)j->s->K, 0.0f, j->c, (int)j->s->N);
}
typedef struct conv_job {
    nl_bnn_conv_geom g;
    const uint64_t *x, *w;
    int32_t *out;
} conv_job;
static void run_conv(void *p) {
    conv_job *j = p;
    NLB_CHECK(nl_bnn_conv2d(&j->g, j->x, j->w, j->out) == NL_OK);
}
static void run_bnn(void *p) {
    job *j = p;
    NLB_CHECK(nl_bnn_gemm(j->ab, j->bb, j->s->M, j->s->N, j->s->K, j->ci) == NL_OK);
}

int main(int argc, char **argv) {
    const int quick = argc > 1 && !strcmp(argv[1], "--quick");
    nl_threads_init();
    int ts[8];
    const int nt = nlb_thread_list(ts, 8);
    nlb_header("binary GEMM (lib/bnn) vs cblas_sgemm");
    printf("auto path: %s; paths supported here:", nl_bnn_path_name(nl_bnn_get_path()));
    for (int p = NL_BNN_PORTABLE; p <= NL_BNN_AVX512; p++)
        printf(" %s%s", nl_bnn_path_name((nl_bnn_path)p), nl_bnn_path_supported((nl_bnn_path)p) ? "" : " (no)");
    printf("\n");
    const int ns = (int)(sizeof SHAPES / sizeof *SHAPES);
    double best_ratio[8] = {0};
    for (int t = 0; t < nt; t++) {
        const double peak = nlb_peak_gflops(ts[t]); /* sets the thread count */
        printf("-- threads %d, sgemm peak %.1f GFLOP/s\n", ts[t], peak);
        printf("%-36s %6s %5s %5s %9s %9s %8s %-17s %9s %7s %6s %6s %6s\n", "shape", "M", "N", "K", "sgemm ms", "GFLOP/s", "peak",
               "bnn path", "bnn ms", "GOP/s", "peak", "x sgemm", "(cpu)");
        for (int si = 0; si < ns; si++) {
            const shape *s = &SHAPES[si];
            if (quick && s->M == 4096) continue;
            const double flop = 2.0 * (double)s->M * (double)s->N * (double)s->K;
            job j = {s, nlb_alloc_f32(s->M * s->K, 1), nlb_alloc_f32(s->N * s->K, 2), nlb_alloc_f32(s->M * s->N, 3), NULL, NULL, NULL};
            nl_bnn_mat A, B;
            double tp = nlb_now();
            NLB_CHECK(nl_bnn_mat_pack(&A, j.a, s->M, s->K) == NL_OK);
            tp = nlb_now() - tp;
            NLB_CHECK(nl_bnn_mat_pack(&B, j.b, s->N, s->K) == NL_OK);
            j.ab = A.bits, j.bb = B.bits;
            j.ci = malloc((size_t)(s->M * s->N) * 4);
            const int reps = flop > 1e11 ? 3 : flop > 1e10 ? 5 : 9;
            double tsg, csg;
            time_both(run_sgemm, &j, reps, 1, &tsg, &csg);
            for (int p = NL_BNN_PORTABLE; p <= NL_BNN_AVX512; p++) {
                if (!nl_bnn_path_supported((nl_bnn_path)p)) continue;
                NLB_CHECK(nl_bnn_set_path((nl_bnn_path)p) == NL_OK);
                const int inner = nlb_calibrate(run_bnn, &j, 0.05);
                double tb, cb;
                time_both(run_bnn, &j, reps, inner, &tb, &cb);
                const double ratio = tsg / tb, cratio = csg / cb;
                printf("%-36s %6lld %5lld %5lld %9.3f %9.1f %7.0f%% %-17s %9.3f %7.0f %5.1fx %6.1fx %6.1fx\n", s->name, (long long)s->M,
                       (long long)s->N, (long long)s->K, 1e3 * tsg, flop / tsg * 1e-9, 100.0 * flop / tsg * 1e-9 / peak,
                       nl_bnn_path_name((nl_bnn_path)p), 1e3 * tb, flop / tb * 1e-9, flop / tb * 1e-9 / peak, ratio, cratio);
                if (p == (int)NL_BNN_AVX2 || p == (int)NL_BNN_AVX512)
                    printf("BNN_RATIO T%d %s %s: %.2f (CPU time %.2f)\n", ts[t], nl_bnn_path_name((nl_bnn_path)p), s->name, ratio, cratio);
                if (ratio > best_ratio[t] && p != NL_BNN_PORTABLE) best_ratio[t] = ratio;
                fflush(stdout);
            }
            NLB_CHECK(nl_bnn_set_path(NL_BNN_AUTO) == NL_OK);
            printf("%-36s packing A [%lld, %lld] floats -> bits: %.3f ms (not in the bnn time)\n", "", (long long)s->M, (long long)s->K, 1e3 * tp);
            nl_bnn_mat_free(&A), nl_bnn_mat_free(&B);
            free((void *)j.a), free((void *)j.b), free(j.c), free(j.ci);
        }
    }
    /* the whole binary convolution (patch packing, GEMM, padding correction) of the biper 14x14 layers, auto path */
    for (int t = 0; t < nt; t++) {
        nlb_set_threads(ts[t]);
        for (int c = 64; c <= 128; c *= 2) {
            conv_job j = {{100, 14, 14, c, c, 3, 3, 1, 1, 1, 1}, NULL, NULL, NULL};
            const int64_t cw = nl_bnn_words(c);
            uint64_t *x = calloc((size_t)(100 * 14 * 14 * cw), 8), *w = calloc((size_t)(c * 9 * cw), 8);
            float *xf = nlb_alloc_f32(100 * 14 * 14 * c, 4), *wf = nlb_alloc_f32(c * 9 * c, 5);
            NLB_CHECK(nl_bnn_pack_rows(xf, 100 * 14 * 14, c, x) == NL_OK && nl_bnn_pack_rows(wf, 9 * c, c, w) == NL_OK);
            j.x = x, j.w = w, j.out = malloc((size_t)(100 * 14 * 14 * c) * 4);
            double tc, cc;
            time_both(run_conv, &j, 9, 1, &tc, &cc);
            const double flop = 2.0 * 100 * 14 * 14 * (double)c * 9 * c;
            printf("threads %d: nl_bnn_conv2d [100, 14, 14, %d] -> %d channels, 3x3, pad 1 (%s): %.3f ms wall, %.3f ms CPU, %.0f GOP/s "
                   "equivalent (wall)\n", ts[t], c, c, nl_bnn_path_name(nl_bnn_get_path()), 1e3 * tc, 1e3 * cc, flop / tc * 1e-9);
            free(x), free(w), free(xf), free(wf), free(j.out);
        }
    }
    for (int t = 0; t < nt; t++) printf("BNN_BEST T%d %.2f\n", ts[t], best_ratio[t]);
    return 0;
}
