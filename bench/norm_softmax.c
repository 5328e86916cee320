/* bench/norm_softmax.c — layernorm and softmax (last axis) forward and forward+backward throughput, f32, nnlab
 * vs PyTorch at the same thread count in the same run.
 *
 * Per call (both sides): the forward builds the graph (x, and for layernorm gamma/beta, require gradients);
 * fwd+bwd also back-propagates a fixed upstream gradient g (nnlab: nl_ctx_reset + nl_backward_seed; torch:
 * grads set to None + y.backward(g)). Backward time = (fwd+bwd) - fwd.
 * Throughput: elements/s = R*D / time; GB/s counts the compulsory traffic of the op's tensors (4 bytes each):
 * forward reads x and writes y (2 arrays), backward reads g and x (or y) and writes dx (3 arrays), so fwd+bwd
 * moves 5 arrays; gamma/beta and row statistics are negligible. Timing: median of 15 samples, each a calibrated
 * ~20 ms run of calls, after warmup (bench_util.h). Ratio = torch time / nnlab time (> 1: nnlab faster).
 *
 * Env: NLB_THREADS (default "1,2"), NLB_NS_SHAPES (default "4096x256,1024x1024,8192x768"), NL_SOURCE_DIR (to find
 * bench/norm_softmax_torch.py; else ./bench, else <exe dir>/../bench). --no-torch skips torch. */
#include "bench_util.h"

#define MAXSH 8
#define NOPS 2
static const char *const OPNAME[NOPS] = {"layernorm", "softmax"};

typedef struct {
    int op, backward;
    int64_t R, D;
    float *x, *g, *gamma, *beta;
    nl_ctx *ctx;
} job;

static void run(void *a) {
    job *j = a;
    nl_ctx *c = j->ctx;
    nl_ctx_reset(c);
    int64_t s2[2] = {j->R, j->D}, s1[1] = {j->D};
    nl_var *x = nl_leaf(c, nl_tensor_wrap(j->x, NL_F32, 2, s2), 1), *y;
    if (j->op == 0) {
        nl_var *ga = nl_leaf(c, nl_tensor_wrap(j->gamma, NL_F32, 1, s1), 1);
        nl_var *be = nl_leaf(c, nl_tensor_wrap(j->beta, NL_F32, 1, s1), 1);
        y = nl_layernorm(c, x, ga, be, 1e-5);
    } else {
        y = nl_softmax(c, x, -1);
    }
    NLB_CHECK(y);
    if (!j->backward) return;
    nl_tensor seed = nl_tensor_wrap(j->g, NL_F32, 2, s2);
    NLB_CHECK(nl_backward_seed(c, y, &seed) == NL_OK);
}

static double timeit(job *j) {
    int inner = nlb_calibrate(run, j, 0.02);
    return nlb_median_time_n(run, j, 3, 15, inner);
}

int main(int argc, char **argv) {
    int torch = !(argc > 1 && !strcmp(argv[1], "--no-torch"));
    const char *shapes = getenv("NLB_NS_SHAPES");
    if (!shapes || !*shapes) shapes = "4096x256,1024x1024,8192x768";
    int64_t R[MAXSH], D[MAXSH];
    int ns = 0;
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", shapes);
        for (char *tok = strtok(buf, ","); tok && ns < MAXSH; tok = strtok(NULL, ",")) {
            long long r, d;
            if (sscanf(tok, "%lldx%lld", &r, &d) == 2 && r > 0 && d > 0) { R[ns] = r; D[ns] = d; ns++; }
        }
    }
    int ts[8];
    int nt = nlb_thread_list(ts, 8);
    nl_ctx *ctx;
    NLB_CHECK(ctx = nl_ctx_new(64 << 20, 0));
    nlb_header("layernorm / softmax (last axis) f32 throughput, nnlab vs PyTorch");
    printf("GB/s: fwd 2 arrays, bwd 3 arrays, fwd+bwd 5 arrays of R*D floats; ratio = torch time / nnlab time\n");

    for (int k = 0; k < nt; k++) {
        int T = ts[k];
        nlb_set_threads(T);
        /* nnlab */
        double tf[MAXSH][NOPS], tfb[MAXSH][NOPS];
        for (int s = 0; s < ns; s++) {
            int64_t n = R[s] * D[s];
            job j = {0, 0, R[s], D[s], nlb_alloc_f32(n, 1), nlb_alloc_f32(n, 2), nlb_alloc_f32(D[s], 3),
                     nlb_alloc_f32(D[s], 4), ctx};
            for (int64_t i = 0; i < D[s]; i++) { j.gamma[i] = 1.0f + 0.1f * j.gamma[i]; j.beta[i] *= 0.1f; }
            for (int op = 0; op < NOPS; op++) {
                j.op = op;
                j.backward = 0;
                tf[s][op] = timeit(&j);
                j.backward = 1;
                tfb[s][op] = timeit(&j);
            }
            free(j.x); free(j.g); free(j.gamma); free(j.beta);
        }
        /* torch */
        double pf[MAXSH][NOPS], pfb[MAXSH][NOPS];
        for (int s = 0; s < ns; s++) for (int op = 0; op < NOPS; op++) pf[s][op] = pfb[s][op] = 0;
        if (torch) {
            char args[1400];
            snprintf(args, sizeof args, "--shapes '%s'", shapes);
            FILE *p = nlb_python_open("norm_softmax_torch.py", T, args);
            if (p) {
                char line[512];
                while (fgets(line, sizeof line, p)) {
                    char opn[32];
                    long long r, d;
                    double f, fb;
                    if (sscanf(line, "TORCH_NS op=%31s R=%lld D=%lld fwd_s=%lf fb_s=%lf", opn, &r, &d, &f, &fb) == 5) {
                        for (int s = 0; s < ns; s++)
                            for (int op = 0; op < NOPS; op++)
                                if (R[s] == r && D[s] == d && !strcmp(opn, OPNAME[op])) { pf[s][op] = f; pfb[s][op] = fb; }
                    } else {
                        fprintf(stderr, "torch: %s", line);
                    }
                }
                int st = pclose(p);
                if (st) fprintf(stderr, "norm_softmax_torch.py exited with status %d\n", st);
            }
        }
        printf("\n-- threads %d (load %.2f)\n", T, nlb_loadavg());
        printf("%-10s %-11s %-8s %10s %9s %10s %10s %9s %8s\n", "op", "shape", "pass", "nnlab us", "GB/s", "Melem/s",
               "torch us", "GB/s", "ratio");
        for (int s = 0; s < ns; s++)
            for (int op = 0; op < NOPS; op++)
                for (int pass = 0; pass < 3; pass++) {
                    static const char *const pn[3] = {"fwd", "bwd", "fwd+bwd"};
                    static const double arrays[3] = {2, 3, 5};
                    double te = pass == 0 ? tf[s][op] : pass == 1 ? tfb[s][op] - tf[s][op] : tfb[s][op];
                    double tt = pass == 0 ? pf[s][op] : pass == 1 ? pfb[s][op] - pf[s][op] : pfb[s][op];
                    double n = (double)(R[s] * D[s]), bytes = arrays[pass] * n * 4;
                    char shape[32];
                    snprintf(shape, sizeof shape, "%lldx%lld", (long long)R[s], (long long)D[s]);
                    printf("%-10s %-11s %-8s %10.1f %9.1f %10.1f", OPNAME[op], shape, pn[pass], te * 1e6, bytes / te * 1e-9,
                           n / te * 1e-6);
                    if (pf[s][op] > 0) printf(" %10.1f %9.1f %8.2f\n", tt * 1e6, bytes / tt * 1e-9, tt / te);
                    else printf(" %10s %9s %8s\n", "-", "-", "-");
                }
    }
    nl_ctx_free(ctx);
    return 0;
}
