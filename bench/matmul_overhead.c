/* bench/matmul_overhead.c — cost of the engine's matmul path over the raw GEMMs it performs.
 *
 * Shapes: the three layers of a 784-256-256-10 MLP at batch B = 128 (W stored [out, in] as in nl_linear).
 * Per layer the raw work is
 *   forward  Y[B,out]  = X[B,in] . W[out,in]^T           cblas_sgemm(N, T)
 *   backward dX[B,in]  = G[B,out] . W[out,in]            cblas_sgemm(N, N)   (not for layer 1: the input
 *                                                                             needs no gradient)
 *            dW[out,in] += G[B,out]^T . X[B,in]          cblas_sgemm(T, N, beta = 1)
 * and the engine path is, per iteration: nl_ctx_reset, nl_leaf(X), nl_linear(x, W, NULL) (or
 * nl_matmul_t(x, W, 0, 1)), and for fwd+bwd nl_backward_seed(y, G) through the tape (W is an nl_params entry,
 * so dW accumulates into the flat gradient array exactly like the raw beta = 1 GEMM).
 * "chain" runs the three layers back to back (no activation) as one graph: 3 forward GEMMs, 5 backward.
 *
 * Printed per thread count (NLB_THREADS, default 1,2): time per call (median of samples, each sample ~20 ms
 * of repeated calls after warmup), the overhead ratio engine/raw, GFLOP/s and the fraction of the measured
 * sgemm peak (nlb_peak_gflops: $NLB_SGEMM_PEAK_T<T> or measured now). */
#include "bench_util.h"

#define B 128
#define NLAYER 3
static const int IN[NLAYER] = {784, 256, 256}, OUT[NLAYER] = {256, 256, 10};
static const int NEED_DX[NLAYER] = {0, 1, 1};

typedef struct {
    int layer;         /* 0..2, or -1 = chain of all three */
    int use_matmul;    /* engine: nl_matmul_t instead of nl_linear */
    int backward;      /* include backward */
    int which_gemm;    /* raw single GEMM: 0 fwd, 1 dX, 2 dW */
} job;

static float *X[NLAYER], *G[NLAYER], *Y[NLAYER], *DX[NLAYER];
static nl_params ps;
static nl_var *W[NLAYER];
static nl_ctx *ctx;

static void raw_gemm(int l, int which) {
    const int in = IN[l], out = OUT[l];
    const float *Wd = W[l]->val.data;
    float *dW = W[l]->grad.data;
    if (which == 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, X[l], in, Wd, in, 0.0f, Y[l], out);
    else if (which == 1)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, G[l], out, Wd, in, 0.0f, DX[l], in);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, G[l], out, X[l], in, 1.0f, dW, in);
}

static double gemm_flops(int l, int which) {
    (void)which;
    return 2.0 * B * IN[l] * OUT[l]; /* all three GEMMs of a layer have the same m*n*k */
}

static void run_raw_single(void *a) { job *j = a; raw_gemm(j->layer, j->which_gemm); }

static void run_raw(void *a) {
    job *j = a;
    int l0 = j->layer < 0 ? 0 : j->layer, l1 = j->layer < 0 ? NLAYER - 1 : j->layer;
    for (int l = l0; l <= l1; l++) raw_gemm(l, 0);
    if (!j->backward) return;
    for (int l = l1; l >= l0; l--) {
        /* in the chain every layer but the first needs dX; a lone layer as in the MLP */
        int need_dx = j->layer < 0 ? l > 0 : NEED_DX[l];
        if (need_dx) raw_gemm(l, 1);
        raw_gemm(l, 2);
    }
}

static void run_engine(void *a) {
    job *j = a;
    int l0 = j->layer < 0 ? 0 : j->layer, l1 = j->layer < 0 ? NLAYER - 1 : j->layer;
    nl_ctx_reset(ctx);
    int64_t xs[2] = {B, IN[l0]};
    nl_var *h = nl_leaf(ctx, nl_tensor_wrap(X[l0], NL_F32, 2, xs), j->layer < 0 ? 0 : NEED_DX[l0]);
    for (int l = l0; l <= l1; l++)
        h = j->use_matmul ? nl_matmul_t(ctx, h, W[l], 0, 1) : nl_linear(ctx, h, W[l], NULL);
    NLB_CHECK(h);
    if (!j->backward) return;
    int64_t gs[2] = {B, OUT[l1]};
    nl_tensor seed = nl_tensor_wrap(G[l1], NL_F32, 2, gs);
    NLB_CHECK(nl_backward_seed(ctx, h, &seed) == NL_OK);
}

static double flops_of(const job *j) {
    int l0 = j->layer < 0 ? 0 : j->layer, l1 = j->layer < 0 ? NLAYER - 1 : j->layer;
    double f = 0;
    for (int l = l0; l <= l1; l++) {
        f += gemm_flops(l, 0);
        if (j->backward) {
            int need_dx = j->layer < 0 ? l > 0 : NEED_DX[l];
            f += gemm_flops(l, 2) + (need_dx ? gemm_flops(l, 1) : 0);
        }
    }
    return f;
}

static double timeit(nlb_fn fn, job *j) {
    int inner = nlb_calibrate(fn, j, 0.02);
    return nlb_median_time_n(fn, j, 3, 15, inner);
}

int main(void) {
    NLB_CHECK(nl_params_init(&ps, NL_F32) == NL_OK);
    for (int l = 0; l < NLAYER; l++) {
        char name[16];
        snprintf(name, sizeof name, "W%d", l);
        int64_t ws[2] = {OUT[l], IN[l]};
        NLB_CHECK(W[l] = nl_params_add(&ps, name, 2, ws));
    }
    for (int l = 0; l < NLAYER; l++) {
        float *r = nlb_alloc_f32((int64_t)OUT[l] * IN[l], 10 + l);
        for (int64_t i = 0; i < (int64_t)OUT[l] * IN[l]; i++) ((float *)W[l]->val.data)[i] = 0.1f * r[i];
        free(r);
        X[l] = nlb_alloc_f32((int64_t)B * IN[l], 20 + l);
        G[l] = nlb_alloc_f32((int64_t)B * OUT[l], 30 + l);
        Y[l] = nlb_alloc_f32((int64_t)B * OUT[l], 40 + l);
        DX[l] = nlb_alloc_f32((int64_t)B * IN[l], 50 + l);
    }
    NLB_CHECK(ctx = nl_ctx_new(8 << 20, 0));

    int ts[8];
    int nt = nlb_thread_list(ts, 8);
    nlb_header("matmul overhead: engine (nl_linear / nl_matmul_t through the tape) vs raw cblas_sgemm, MLP 784-256-256-10, B=128");
    for (int k = 0; k < nt; k++) {
        int T = ts[k];
        double peak = nlb_peak_gflops(T); /* also sets the thread count */
        printf("\n-- threads %d, sgemm peak %.1f GFLOP/s\n", T, peak);
        printf("raw GEMMs:\n%-8s %-34s %10s %10s %8s\n", "layer", "gemm", "us", "GFLOP/s", "%peak");
        static const char *const gname[3] = {"fwd  Y=X.W^T   [%d,%d]x[%d,%d]^T", "bwd dX=G.W     [%d,%d]x[%d,%d]",
                                             "bwd dW+=G^T.X  [%d,%d]^Tx[%d,%d]"};
        for (int l = 0; l < NLAYER; l++)
            for (int w = 0; w < 3; w++) {
                if (w == 1 && !NEED_DX[l]) continue;
                job j = {l, 0, 0, w};
                double t = timeit(run_raw_single, &j);
                char desc[64];
                if (w == 0) snprintf(desc, sizeof desc, gname[w], B, IN[l], OUT[l], IN[l]);
                else if (w == 1) snprintf(desc, sizeof desc, gname[w], B, OUT[l], OUT[l], IN[l]);
                else snprintf(desc, sizeof desc, gname[w], B, OUT[l], B, IN[l]);
                double gf = gemm_flops(l, w) / t * 1e-9;
                printf("%d->%-5d %-34s %10.1f %10.1f %7.1f%%\n", IN[l], OUT[l], desc, t * 1e6, gf, 100 * gf / peak);
            }
        printf("engine vs raw (ratio = engine time / raw time):\n");
        printf("%-10s %-10s %-8s %10s %10s %7s %10s %8s\n", "shape", "op", "pass", "raw us", "engine us", "ratio",
               "eng GF/s", "%peak");
        for (int l = -1; l < NLAYER; l++)
            for (int mm = 0; mm < 2; mm++)
                for (int bw = 0; bw < 2; bw++) {
                    job j = {l, mm, bw, 0};
                    double tr = timeit(run_raw, &j), te = timeit(run_engine, &j);
                    double gf = flops_of(&j) / te * 1e-9;
                    char shape[16];
                    if (l < 0) snprintf(shape, sizeof shape, "chain");
                    else snprintf(shape, sizeof shape, "%d->%d", IN[l], OUT[l]);
                    printf("%-10s %-10s %-8s %10.1f %10.1f %7.3f %10.1f %7.1f%%\n", shape, mm ? "matmul_t" : "linear",
                           bw ? "fwd+bwd" : "fwd", tr * 1e6, te * 1e6, te / tr, gf, 100 * gf / peak);
                    fflush(stdout);
                }
    }
    nl_ctx_free(ctx);
    nl_params_free(&ps);
    for (int l = 0; l < NLAYER; l++) { free(X[l]); free(G[l]); free(Y[l]); free(DX[l]); }
    return 0;
}
