/* bench/deeponet_vs_torch.c — DeepONet training iterations per second, nnlab vs PyTorch, at 1 and 2 threads.
 *
 * Model (methods/deeponet): unstacked DeepONet, branch [100, 40, 40] (ReLU, linear last layer), trunk [1, 40, 40]
 * (ReLU after every layer), G = sum_k b_k t_k + b0, MSE, Adam 1e-3. Data: N = 10000 triples of the same shapes as
 * the ledger entry's (u [N, 100], y [N, 1], s [N]; random values: only the speed is measured). Batches: 256 rows
 * gathered from a per-epoch permutation (the entry's setting), and the whole set (B = N, the paper's full batch).
 * nnlab's side is nl_deeponet_train itself (its optimization time, res.train_seconds; the final evaluation is
 * excluded); PyTorch does the same loop in bench/deeponet_vs_torch.py (/usr/bin/python3, torch.set_num_threads(T),
 * OMP/OPENBLAS_NUM_THREADS=T), started right after the nnlab measurement at the same thread count.
 *
 * Timing: one warmup run, then the median of `repeats` runs (fresh model each) per side, batch and thread count.
 * Work per iteration of B rows: 6 * B * (100*40 + 40*40 + 1*40 + 40*40) flop nominal (forward + 2x forward).
 *
 * Usage: bench_deeponet_vs_torch [--repeats N] [--iters-small N] [--iters-full N] [--no-torch]
 * Env: NLB_THREADS (default "1,2"), NL_SOURCE_DIR (to find bench/deeponet_vs_torch.py). */
#include "bench_util.h"
#include "deeponet/deeponet.h"
#include <time.h>

#define N_ROWS 10000
#define M_SENS 100
#define P_WIDTH 40

typedef struct { double med_s; int ok; } side_result;

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Wall seconds of the optimization (res.train_seconds); *cpu: process CPU seconds of the whole call (training plus
 * the final evaluation of two forward passes over the 10000 rows, under 1% of either setting). */
static double nnlab_run(const nl_deeponet_data *d, int64_t batch, int64_t iters, double *cpu) {
    nl_deeponet_config c = nl_deeponet_defaults();
    c.n_train = d->n;
    c.n_test = d->n;
    c.batch = batch;
    c.iters = iters;
    nl_deeponet_result r;
    double c0 = cpu_now();
    NLB_CHECK(nl_deeponet_train(&c, d, d, &r) == NL_OK);
    if (cpu) *cpu = cpu_now() - c0;
    return r.train_seconds;
}

int main(int argc, char **argv) {
    int repeats = 3, torch = 1;
    int64_t it_small = 2000, it_full = 100;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters-small") && i + 1 < argc) it_small = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--iters-full") && i + 1 < argc) it_full = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else { fprintf(stderr, "usage: %s [--repeats N] [--iters-small N] [--iters-full N] [--no-torch]\n", argv[0]); return 2; }
    }
    if (repeats < 1) repeats = 1;
    if (repeats > 32) repeats = 32;
    int ts[8];
    int nt = nlb_thread_list(ts, 8);
    /* random data of the entry's shapes */
    nl_deeponet_data d;
    memset(&d, 0, sizeof d);
    d.n = N_ROWS;
    d.m = M_SENS;
    NLB_CHECK(d.u = malloc((size_t)N_ROWS * M_SENS * sizeof *d.u));
    NLB_CHECK(d.y = malloc((size_t)N_ROWS * sizeof *d.y));
    for (int k = 0; k < NL_DON_OP_COUNT; k++) NLB_CHECK(d.s[k] = malloc((size_t)N_ROWS * sizeof *d.s[k]));
    nl_rng r;
    nl_rng_init(&r, 1, 0);
    for (int64_t i = 0; i < (int64_t)N_ROWS * M_SENS; i++) d.u[i] = (float)nl_rng_normal(&r);
    for (int64_t i = 0; i < N_ROWS; i++) {
        d.y[i] = (float)nl_rng_uniform(&r);
        d.s[0][i] = d.s[1][i] = (float)(0.1 * nl_rng_normal(&r));
    }
    const int64_t batches[2] = {256, N_ROWS}, iters[2] = {it_small, it_full};
    const double flop_row = 6.0 * (M_SENS * P_WIDTH + P_WIDTH * P_WIDTH + P_WIDTH + P_WIDTH * P_WIDTH);
    nlb_header("DeepONet [100,40,40] x [1,40,40], Adam 1e-3, MSE: training iterations/s, nnlab vs PyTorch");
    double nl_s[8][2] = {{0}}, t_s[8][2] = {{0}}, nl_c[8][2] = {{0}}, t_c[8][2] = {{0}};
    for (int k = 0; k < nt; k++) {
        int T = ts[k];
        nlb_set_threads(T);
        printf("\n-- threads %d (load %.2f)\n", T, nlb_loadavg());
        for (int b = 0; b < 2; b++) {
            double t[32], cs[32];
            nnlab_run(&d, batches[b], iters[b] / 4 + 1, NULL); /* warmup */
            for (int i = 0; i < repeats; i++) t[i] = nnlab_run(&d, batches[b], iters[b], &cs[i]);
            nl_s[k][b] = nlb_median(t, repeats);
            nl_c[k][b] = nlb_median(cs, repeats);
            printf("NNLAB_DEEPONET threads=%d batch=%lld iters=%lld median_s=%.6f cpu_s=%.6f iters_per_s=%.1f\n", T,
                   (long long)batches[b], (long long)iters[b], nl_s[k][b], nl_c[k][b], iters[b] / nl_s[k][b]);
            fflush(stdout);
        }
        if (torch) {
            char args[128];
            snprintf(args, sizeof args, "--repeats %d --iters-small %lld --iters-full %lld", repeats, (long long)it_small,
                     (long long)it_full);
            FILE *p = nlb_python_open("deeponet_vs_torch.py", T, args);
            char line[1024];
            while (p && fgets(line, sizeof line, p)) {
                fputs(line, stdout);
                const char *q = strstr(line, "TORCH_DEEPONET "), *bq = q ? strstr(q, "batch=") : NULL,
                           *mq = q ? strstr(q, "median_s=") : NULL, *cq = q ? strstr(q, "cpu_s=") : NULL;
                if (bq && mq && cq) {
                    long long bb = atoll(bq + 6);
                    for (int b = 0; b < 2; b++)
                        if (bb == batches[b]) t_s[k][b] = atof(mq + 9), t_c[k][b] = atof(cq + 6);
                }
            }
            if (p && pclose(p) != 0) fprintf(stderr, "torch side exited with an error\n");
        }
    }
    printf("\nsummary DeepONet training (median of %d runs; iters/s from wall and from process CPU seconds; GFLOP/s nominal = "
           "6 * B * weights per iteration, from wall)\n", repeats);
    printf("%-7s %-7s %-6s %12s %12s %11s %9s %9s\n", "threads", "batch", "engine", "iters/s", "iters/CPU-s", "GFLOP/s",
           "nl/torch", "nl/t CPU");
    for (int k = 0; k < nt; k++)
        for (int b = 0; b < 2; b++)
            for (int side = 0; side < 2; side++) {
                double s = side ? t_s[k][b] : nl_s[k][b], cpu = side ? t_c[k][b] : nl_c[k][b];
                if (s <= 0) continue;
                double ips = iters[b] / s;
                char ratio[16] = "", rc[16] = "";
                if (!side && t_s[k][b] > 0) snprintf(ratio, sizeof ratio, "%.3f", t_s[k][b] / nl_s[k][b]);
                if (!side && t_c[k][b] > 0 && nl_c[k][b] > 0) snprintf(rc, sizeof rc, "%.3f", t_c[k][b] / nl_c[k][b]);
                printf("%-7d %-7lld %-6s %12.1f %12.1f %11.2f %9s %9s\n", ts[k], (long long)batches[b], side ? "torch" : "nnlab",
                       ips, cpu > 0 ? iters[b] / cpu : 0.0, ips * flop_row * (double)batches[b] * 1e-9, ratio, rc);
            }
    for (int k = 0; k < nt; k++)
        for (int b = 0; b < 2; b++)
            if (nl_s[k][b] > 0 && t_s[k][b] > 0)
                printf("RATIO_T%d_B%lld=%.3f  (nnlab iters/s / torch iters/s)\n", ts[k], (long long)batches[b], t_s[k][b] / nl_s[k][b]);
    nl_deeponet_data_free(&d);
    return 0;
}
