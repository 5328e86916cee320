/* bench/conv_vs_torch.c — one conv2d forward + backward (dX, dW, db), nnlab vs PyTorch, on the shapes of the
 * small diffusion UNet (16x16 images, 16-32 channels) and of the CNN entries.
 *
 * Per case: x [N, C, S, S] and w [O, C, k, k] (+ bias) with gradients, y = conv2d(x, w, b, stride, pad), backward
 * from a fixed seed gradient. Flops counted: 3 * 2*N*O*C*k*k*OH*OW (forward, dX, dW; dX of a stride-2 conv is
 * counted the same). Rates are GFLOP per CPU-second and the fraction of a reference sgemm peak measured the same
 * way (peak_cpu_gflops), or $NLB_SGEMM_PEAK_T<T> from run_all.sh. Timing: process CPU time and wall, median of `repeats` blocks of a
 * calibrated number of calls (~0.2 s each) after one warmup block; PyTorch (bench/conv_vs_torch.py, same threads)
 * runs the same cases right after, same run.
 * Usage: bench_conv_vs_torch [--repeats 5] [--no-torch] [--case I]
 * Env: NLB_THREADS (default "1": the conv paths at 1 thread are what the entries use), NL_SOURCE_DIR. */
#include "bench_util.h"

typedef struct { int N, C, S, O, k, stride, pad; const char *what; } conv_case;

static const conv_case cases[] = {
    {64, 16, 16, 16, 3, 1, 1, "UNet level 0 ResBlock conv"},
    {64, 32, 8, 32, 3, 1, 1, "UNet level 1 conv"},
    {64, 32, 4, 32, 3, 1, 1, "UNet level 2 conv (P = 16)"},
    {64, 16, 16, 16, 3, 2, 1, "UNet downsample (stride 2)"},
    {64, 16, 16, 32, 1, 1, 0, "1x1 skip conv"},
    {64, 1, 16, 16, 3, 1, 1, "conv_in (C = 1, no dX)"},
    {16, 8, 28, 16, 5, 1, 2, "CNN 5x5 pad 2"},
    {32, 32, 16, 64, 3, 2, 1, "stride 2, channels doubled"},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

typedef struct {
    const conv_case *k;
    nl_ctx *c;
    nl_tensor x, w, b, gy;
    int need_dx;
} run_arg;

static void conv_step(void *p) {
    run_arg *a = p;
    nl_var *x = nl_leaf(a->c, a->x, a->need_dx), *w = nl_leaf(a->c, a->w, 1), *b = nl_leaf(a->c, a->b, 1);
    nl_var *y = nl_conv2d(a->c, x, w, b, a->k->stride, a->k->pad);
    NLB_CHECK(y);
    NLB_CHECK(nl_backward_seed(a->c, y, &a->gy) == NL_OK);
    nl_ctx_reset(a->c);
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* sgemm peak in GFLOP per CPU-second (square n = 1024, best of 5): the conv rates are per CPU-second too, so on a
 * loaded machine this stays comparable where a wall-clock peak would not. $NLB_SGEMM_PEAK_T<T> (run_all.sh, a
 * wall-clock peak on a quiet machine) wins when set. */
static double peak_cpu_gflops(int T) {
    char name[32];
    snprintf(name, sizeof name, "NLB_SGEMM_PEAK_T%d", T);
    const char *e = getenv(name);
    if (e && atof(e) > 0) return atof(e);
    const int n = 1024;
    float *a = nlb_alloc_f32((int64_t)n * n, 1), *b = nlb_alloc_f32((int64_t)n * n, 2), *c = nlb_alloc_f32((int64_t)n * n, 3);
    double best = 0;
    for (int r = 0; r < 6; r++) {
        const double c0 = cpu_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        const double g = 2e-9 * n * (double)n * n / (cpu_now() - c0);
        if (r > 0 && g > best) best = g;
    }
    free(a); free(b); free(c);
    return best;
}

static nl_tensor tens(int nd, const int64_t *shape, unsigned seed) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    return nl_tensor_wrap(nlb_alloc_f32(n, seed), NL_F32, nd, shape);
}

int main(int argc, char **argv) {
    int repeats = 5, torch = 1, only = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (!strcmp(argv[i], "--case") && i + 1 < argc) only = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--repeats R] [--no-torch] [--case I]\n", argv[0]);
            return 2;
        }
    }
    if (repeats < 1) repeats = 1;
    if (repeats > 32) repeats = 32;
    if (!getenv("NLB_THREADS")) setenv("NLB_THREADS", "1", 1);
    int ts[8];
    int nt = nlb_thread_list(ts, 8);
    nlb_header("conv2d forward + backward (f32): nnlab vs PyTorch");
    for (int t = 0; t < nt; t++) {
        const int T = ts[t];
        nlb_set_threads(T);
        const double peak = peak_cpu_gflops(T);
        printf("\n-- threads %d (load %.2f), reference sgemm peak %.1f GFLOP per CPU-second\n", T, nlb_loadavg(), peak);
        double nl_c[NCASES] = {0}, nl_w[NCASES] = {0}, t_c[NCASES] = {0}, t_w[NCASES] = {0}, fl[NCASES] = {0};
        for (int i = 0; i < NCASES; i++) {
            if (only >= 0 && i != only) continue;
            const conv_case *k = &cases[i];
            const int64_t OH = (k->S + 2 * k->pad - k->k) / k->stride + 1;
            int64_t xs[4] = {k->N, k->C, k->S, k->S}, ws[4] = {k->O, k->C, k->k, k->k}, bs[1] = {k->O};
            int64_t ys[4] = {k->N, k->O, OH, OH};
            run_arg a = {k, nl_ctx_new((size_t)256 << 20, 0), tens(4, xs, 1), tens(4, ws, 2), tens(1, bs, 3), tens(4, ys, 4),
                         k->C > 1};
            NLB_CHECK(a.c);
            fl[i] = (a.need_dx ? 3.0 : 2.0) * 2.0 * k->N * k->O * k->C * k->k * k->k * (double)(OH * OH);
            const int inner = nlb_calibrate(conv_step, &a, 0.2);
            double cw[32], cc[32];
            for (int r = -1; r < repeats; r++) {
                const double w0 = nlb_now(), c0 = cpu_now();
                for (int j = 0; j < inner; j++) conv_step(&a);
                if (r >= 0) cw[r] = (nlb_now() - w0) / inner, cc[r] = (cpu_now() - c0) / inner;
            }
            nl_w[i] = nlb_median(cw, repeats);
            nl_c[i] = nlb_median(cc, repeats);
            printf("NNLAB_CONV case=%d N=%d C=%d S=%d O=%d k=%d s=%d p=%d ms=%.3f cpu_ms=%.3f gflops_cpu=%.2f peak_frac=%.3f  (%s)\n",
                   i, k->N, k->C, k->S, k->O, k->k, k->stride, k->pad, 1e3 * nl_w[i], 1e3 * nl_c[i], 1e-9 * fl[i] / nl_c[i],
                   1e-9 * fl[i] / nl_c[i] / peak, k->what);
            fflush(stdout);
            nl_ctx_free(a.c);
            free(a.x.data); free(a.w.data); free(a.b.data); free(a.gy.data);
        }
        if (torch) {
            char args[64];
            snprintf(args, sizeof args, "--repeats %d --case %d", repeats, only);
            FILE *p = nlb_python_open("conv_vs_torch.py", T, args);
            char line[1024];
            while (p && fgets(line, sizeof line, p)) {
                fputs(line, stdout);
                const char *q = strstr(line, "TORCH_CONV case="), *m = q ? strstr(q, " ms=") : NULL, *cp = q ? strstr(q, "cpu_ms=") : NULL;
                int ci = q ? atoi(q + 16) : -1;
                if (m && cp && ci >= 0 && ci < NCASES) t_w[ci] = 1e-3 * atof(m + 4), t_c[ci] = 1e-3 * atof(cp + 7);
            }
            if (p && pclose(p) != 0) fprintf(stderr, "torch side exited with an error\n");
        }
        printf("\nsummary threads %d (median of %d blocks; ms per forward + backward)\n", T, repeats);
        printf("%-4s %-32s %9s %9s %9s %9s %8s %7s\n", "case", "shape", "nl cpu", "torch cpu", "nl/t CPU", "nl/t wall", "GFLOP/s",
               "of peak");
        for (int i = 0; i < NCASES; i++) {
            if (only >= 0 && i != only) continue;
            const conv_case *k = &cases[i];
            char sh[64];
            snprintf(sh, sizeof sh, "N%d C%d %dx%d O%d k%d s%d p%d", k->N, k->C, k->S, k->S, k->O, k->k, k->stride, k->pad);
            printf("%-4d %-32s %9.3f %9.3f %9.2f %9.2f %8.2f %7.3f\n", i, sh, 1e3 * nl_c[i], 1e3 * t_c[i],
                   t_c[i] > 0 ? nl_c[i] / t_c[i] : 0.0, t_w[i] > 0 ? nl_w[i] / t_w[i] : 0.0, 1e-9 * fl[i] / nl_c[i],
                   1e-9 * fl[i] / nl_c[i] / peak);
        }
        printf("(nl/t < 1: nnlab is faster; GFLOP/s and of peak from nnlab CPU time)\n");
    }
    return 0;
}
