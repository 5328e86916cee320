/* bench/mlp_vs_torch.c — one epoch of real Fashion-MNIST training, nnlab vs PyTorch, at 1 and 2 threads.
 *
 * Model: 784-256-256-10 ReLU MLP, batch 128, SGD lr 0.01 momentum 0.9, mean cross-entropy. Data: the 60,000
 * training images scaled to [0, 1] (nl_dataset_load "fashion-mnist"), a fresh shuffled order per epoch
 * (nl_batcher; the last batch has 96 rows). The loop is the library's real path: nl_params, nl_linear,
 * nl_relu, nl_cross_entropy, nl_backward, nl_optim_step (see run_epoch). PyTorch does the same work in
 * bench/mlp_vs_torch.py (/usr/bin/python3, torch.set_num_threads(T), OMP/OPENBLAS_NUM_THREADS=T), run by this
 * program right after the nnlab measurement at the same thread count.
 *
 * Timing: one warmup epoch, then the median of 5 timed epochs, for each side and each thread count.
 * Work per batch of B rows, the convention ("nominal"): forward 2*B*(784*256 + 256*256 + 256*10) flop,
 * backward twice that. The GEMMs actually executed are fewer (the input needs no gradient, so layer 1 has no
 * dX GEMM): "gemm" flop = nominal - 2*B*784*256. Rates are divided by the measured sgemm peak at the same thread
 * count ($NLB_SGEMM_PEAK_T<T> when run_all.sh exported it, else measured here).
 *
 * Usage: bench_mlp_vs_torch [--epochs N] [--warmup N] [--no-torch] [--phases] [--only-nnlab-epochs N]
 *   --phases  also time batching / forward / backward / optimizer separately (adds clock reads per step)
 *   --only-nnlab-epochs N  just run N nnlab epochs at the first thread count and exit (for perf record)
 * Env: NLB_THREADS (default "1,2"), NL_SOURCE_DIR (to find bench/mlp_vs_torch.py; else ./bench, else <exe dir>/../bench), NL_DATA_DIR (dataset directory). */
#include "bench_util.h"
#include "nnlab/data.h"
#include <math.h>

#define BATCH 128
#define NIN 784
#define NH 256
#define NOUT 10

typedef struct {
    nl_params ps;
    nl_var *W1, *b1, *W2, *b2, *W3, *b3;
    nl_optim opt;
    nl_ctx *ctx;
    nl_batcher bat;
    int phases;
    double t_batch, t_fwd, t_bwd, t_opt; /* accumulated seconds (--phases) */
} mlp;

static void mlp_init(mlp *m, const nl_dataset *ds, uint64_t seed) {
    memset(m, 0, sizeof *m);
    NLB_CHECK(nl_params_init(&m->ps, NL_F32) == NL_OK);
    int64_t s1[2] = {NH, NIN}, s2[2] = {NH, NH}, s3[2] = {NOUT, NH}, h[1] = {NH}, o[1] = {NOUT};
    NLB_CHECK(m->W1 = nl_params_add(&m->ps, "fc1.weight", 2, s1));
    NLB_CHECK(m->b1 = nl_params_add(&m->ps, "fc1.bias", 1, h));
    NLB_CHECK(m->W2 = nl_params_add(&m->ps, "fc2.weight", 2, s2));
    NLB_CHECK(m->b2 = nl_params_add(&m->ps, "fc2.bias", 1, h));
    NLB_CHECK(m->W3 = nl_params_add(&m->ps, "fc3.weight", 2, s3));
    NLB_CHECK(m->b3 = nl_params_add(&m->ps, "fc3.bias", 1, o));
    /* nn.Linear's default init: U(-1/sqrt(in), 1/sqrt(in)) for weights and biases */
    nl_rng r;
    nl_rng_init(&r, seed, 1);
    nl_var *ws[6] = {m->W1, m->b1, m->W2, m->b2, m->W3, m->b3};
    const int fan[6] = {NIN, NIN, NH, NH, NH, NH};
    for (int i = 0; i < 6; i++) {
        double bnd = 1.0 / sqrt((double)fan[i]);
        nl_rng_fill_uniform(&r, &ws[i]->val, -bnd, bnd);
    }
    nl_optim_config cfg = nl_optim_defaults(NL_OPT_SGD);
    cfg.lr = 0.01;
    cfg.momentum = 0.9;
    NLB_CHECK(nl_optim_init(&m->opt, &m->ps, &cfg) == NL_OK);
    NLB_CHECK(m->ctx = nl_ctx_new(16 << 20, 0));
    NLB_CHECK(nl_batcher_init(&m->bat, ds, BATCH, 1, seed) == NL_OK);
}

static void mlp_free(mlp *m) {
    nl_batcher_free(&m->bat);
    nl_ctx_free(m->ctx);
    nl_optim_free(&m->opt);
    nl_params_free(&m->ps);
}

/* One epoch; returns the mean training loss over its batches. */
static double run_epoch(mlp *m) {
    nl_ctx *c = m->ctx;
    float *xb;
    int32_t *yb;
    int64_t bs;
    double tot = 0;
    int64_t nb = 0;
    const int ph = m->phases;
    double t0 = ph ? nlb_now() : 0, t1;
    while (nl_batcher_next(&m->bat, &xb, &yb, &bs)) {
        if (ph) { t1 = nlb_now(); m->t_batch += t1 - t0; t0 = t1; }
        nl_ctx_reset(c);
        int64_t xs[2] = {bs, NIN};
        nl_var *x = nl_input(c, nl_tensor_wrap(xb, NL_F32, 2, xs));
        nl_var *h1 = nl_relu(c, nl_linear(c, x, m->W1, m->b1));
        nl_var *h2 = nl_relu(c, nl_linear(c, h1, m->W2, m->b2));
        nl_var *loss = nl_cross_entropy(c, nl_linear(c, h2, m->W3, m->b3), yb, 0.0, -1);
        NLB_CHECK(loss);
        if (ph) { t1 = nlb_now(); m->t_fwd += t1 - t0; t0 = t1; }
        nl_params_zero_grad(&m->ps);
        NLB_CHECK(nl_backward(c, loss) == NL_OK);
        if (ph) { t1 = nlb_now(); m->t_bwd += t1 - t0; t0 = t1; }
        NLB_CHECK(nl_optim_step(&m->opt) == NL_OK);
        if (ph) { t1 = nlb_now(); m->t_opt += t1 - t0; t0 = t1; }
        tot += nl_item(loss);
        nb++;
    }
    nl_batcher_reset(&m->bat);
    return tot / (double)nb;
}

typedef struct { double median_s, sps, loss; int ok; } torch_result;

static torch_result run_torch(int T, int epochs, int warmup) {
    torch_result r = {0};
    char args[128];
    snprintf(args, sizeof args, "--epochs %d --warmup %d", epochs, warmup);
    FILE *p = nlb_python_open("mlp_vs_torch.py", T, args);
    if (!p) return r;
    char line[1024];
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        fflush(stdout);
        const char *q = strstr(line, "TORCH_MLP ");
        if (q) {
            const char *a = strstr(q, "median_s="), *b = strstr(q, "samples_per_s="), *l = strstr(q, "loss=");
            if (a && b && l) {
                r.median_s = atof(a + 9);
                r.sps = atof(b + 14);
                r.loss = atof(l + 5);
                r.ok = r.median_s > 0;
            }
        }
    }
    int st = pclose(p);
    if (st != 0) fprintf(stderr, "torch side exited with status %d\n", st);
    return r;
}

int main(int argc, char **argv) {
    int epochs = 5, warmup = 1, torch = 1, phases = 0, only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (!strcmp(argv[i], "--phases")) phases = 1;
        else if (!strcmp(argv[i], "--only-nnlab-epochs") && i + 1 < argc) only = atoi(argv[++i]);
        else { fprintf(stderr, "usage: %s [--epochs N] [--warmup N] [--no-torch] [--phases] [--only-nnlab-epochs N]\n", argv[0]); return 2; }
    }
    if (epochs < 1) epochs = 1;
    if (epochs > 64) epochs = 64;
    int ts[8];
    int nt = nlb_thread_list(ts, 8);

    nl_dataset ds;
    NLB_CHECK(nl_dataset_load(&ds, "fashion-mnist", "train", NULL) == NL_OK);
    float lo = ds.x[0], hi = ds.x[0];
    for (int64_t i = 0; i < ds.n * ds.d; i++) { lo = ds.x[i] < lo ? ds.x[i] : lo; hi = ds.x[i] > hi ? ds.x[i] : hi; }
    if (ds.d != NIN || lo < 0 || hi > 1) { fprintf(stderr, "unexpected data: d=%lld range [%g, %g]\n", (long long)ds.d, lo, hi); return 1; }

    if (only > 0) { /* profiling mode */
        nlb_set_threads(ts[0]);
        mlp m;
        mlp_init(&m, &ds, 1);
        for (int e = 0; e < only; e++) printf("epoch %d loss %.4f\n", e, run_epoch(&m));
        mlp_free(&m);
        nl_dataset_free(&ds);
        return 0;
    }

    const double nominal_per_sample = 3.0 * 2.0 * (NIN * NH + NH * NH + NH * NOUT);
    const double gemm_per_sample = nominal_per_sample - 2.0 * NIN * NH;
    const double nominal_epoch = nominal_per_sample * (double)ds.n, gemm_epoch = gemm_per_sample * (double)ds.n;
    nlb_header("MLP 784-256-256-10, batch 128, SGD(0.01, momentum 0.9), one Fashion-MNIST epoch (60000): nnlab vs PyTorch");
    printf("flop per epoch: nominal (fwd + 2x fwd) %.2f GFLOP, GEMMs actually run %.2f GFLOP\n", nominal_epoch * 1e-9,
           gemm_epoch * 1e-9);

    double res_nl[8] = {0}, res_t[8] = {0}, peak[8] = {0}, loss_nl[8] = {0}, loss_t[8] = {0};
    for (int k = 0; k < nt; k++) {
        int T = ts[k];
        peak[k] = nlb_peak_gflops(T); /* also sets the thread count (OpenMP + OpenBLAS + env for children) */
        printf("\n-- threads %d (sgemm peak %.1f GFLOP/s, load %.2f)\n", T, peak[k], nlb_loadavg());
        mlp m;
        mlp_init(&m, &ds, 1);
        m.phases = phases;
        double t[64];
        for (int e = 0; e < warmup + epochs; e++) {
            if (e == warmup) m.t_batch = m.t_fwd = m.t_bwd = m.t_opt = 0;
            double t0 = nlb_now();
            double l = run_epoch(&m);
            double dt = nlb_now() - t0;
            printf("  nnlab   T=%d epoch %d (%s): %.3f s  mean loss %.4f\n", T, e, e < warmup ? "warmup" : "timed", dt, l);
            fflush(stdout);
            if (e >= warmup) t[e - warmup] = dt;
            loss_nl[k] = l;
        }
        double med = nlb_median(t, epochs);
        res_nl[k] = med;
        printf("NNLAB_MLP threads=%d median_s=%.6f samples_per_s=%.1f\n", T, med, ds.n / med);
        if (phases) {
            double f = 1e3 / epochs;
            printf("  phases per epoch (mean of timed epochs): batching %.1f ms, forward %.1f ms, backward (incl. zero_grad) %.1f ms, "
                   "optimizer %.1f ms\n", m.t_batch * f, m.t_fwd * f, m.t_bwd * f, m.t_opt * f);
        }
        mlp_free(&m);
        if (torch) {
            torch_result r = run_torch(T, epochs, warmup);
            if (r.ok) { res_t[k] = r.median_s; loss_t[k] = r.loss; }
        }
    }

    printf("\nsummary (median of %d epochs after %d warmup; GFLOP/s nominal = 6*params-style count, gemm = GEMMs run)\n", epochs, warmup);
    printf("%-7s %-6s %10s %12s %9s %13s %9s %11s %9s %8s\n", "threads", "engine", "epoch s", "samples/s", "nl/torch",
           "GFLOP/s nom", "%peak", "GFLOP/s gemm", "%peak", "loss");
    for (int k = 0; k < nt; k++) {
        for (int side = 0; side < 2; side++) {
            double s = side ? res_t[k] : res_nl[k];
            if (s <= 0) continue;
            double gn = nominal_epoch / s * 1e-9, gg = gemm_epoch / s * 1e-9;
            char ratio[16] = "";
            if (!side && res_t[k] > 0) snprintf(ratio, sizeof ratio, "%.3f", res_t[k] / res_nl[k]);
            printf("%-7d %-6s %10.3f %12.0f %9s %13.1f %8.1f%% %11.1f %8.1f%% %8.4f\n", ts[k], side ? "torch" : "nnlab", s,
                   ds.n / s, ratio, gn, 100 * gn / peak[k], gg, 100 * gg / peak[k], side ? loss_t[k] : loss_nl[k]);
        }
    }
    /* the second target is relative to the 1-thread peak */
    if (nt && ts[0] == 1 && res_nl[0] > 0)
        printf("nnlab 1-thread nominal GFLOP/s as a fraction of the 1-thread sgemm peak: %.1f%% (target >= 85%%)\n",
               100 * nominal_epoch / res_nl[0] * 1e-9 / peak[0]);
    for (int k = 0; k < nt; k++)
        if (res_nl[k] > 0 && res_t[k] > 0)
            printf("RATIO_T%d=%.3f  (nnlab samples/s / torch samples/s; target >= 1.3)\n", ts[k], res_t[k] / res_nl[k]);
    nl_dataset_free(&ds);
    return 0;
}
