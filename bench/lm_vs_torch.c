/* bench/lm_vs_torch.c — training throughput (tokens/s) of the transformer LM, nnlab vs PyTorch, same run.
 *
 * Model: include/transformer/transformer.h defaults — bytes (vocab 256), 2 pre-LayerNorm blocks, d_model 128, 4 heads
 * (head dim 32), MLP 512 (exact GELU), RoPE (plain), tied embedding; batch 16 x context 128 tokens per step;
 * AdamW (lr 3e-3, betas 0.9/0.99, wd 0.01 on matrices), clip 1. Data: random windows of the KJV + fortunes train
 * split (nl_lm_corpus_load "default"; a temp file of those bytes is handed to the PyTorch side). One step is the
 * library's real path: nl_ctx_reset, nl_lm_loss (embedding, layernorm, linear, heads split, nl_rope, nl_attention,
 * gelu, cross-entropy), nl_backward, nl_optim_step. PyTorch does the same work in bench/lm_vs_torch.py
 * (/usr/bin/python3 -> Debian python3-torch), run right after the nnlab measurement at the same thread count.
 *
 * Timing: `warmup` untimed steps, then the median step time of `steps` timed steps, per side and thread count;
 * also the median process CPU time (user + sys) per step, the fairer figure on a shared machine at 1 thread.
 * Usage: bench_lm_vs_torch [--steps N] [--warmup N] [--context T] [--batch B] [--d-model D] [--layers L]
 *                          [--no-torch] [--eval-x X]
 * --eval-x X also times the no-grad forward (evaluation) of batch x context tokens as batch windows of the
 * training context and as sequences of X times that context (giraffe evaluates at up to 16x).
 * Env: NLB_THREADS (default "1,2"), NL_SOURCE_DIR (to find bench/lm_vs_torch.py). */
#include "bench_util.h"
#include "transformer/transformer.h"
#include <math.h>

typedef struct { double median_s, cpu_s, tps, loss; int ok; } torch_result;

/* Process CPU time (user + sys) in seconds: on a shared machine wall time is inflated by other jobs. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static torch_result run_torch(int T, const char *data, int steps, int warmup, int ctx, int batch, int d, int layers,
                              int heads) {
    torch_result r = {0};
    char args[1400];
    snprintf(args, sizeof args, "--data '%s' --steps %d --warmup %d --context %d --batch %d --d-model %d --layers %d --heads %d",
             data, steps, warmup, ctx, batch, d, layers, heads);
    FILE *p = nlb_python_open("lm_vs_torch.py", T, args);
    if (!p) return r;
    char line[1024];
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        fflush(stdout);
        const char *q = strstr(line, "TORCH_LM ");
        if (q) {
            const char *a = strstr(q, "median_s="), *b = strstr(q, "tokens_per_s="), *l = strstr(q, "loss=");
            if (a && b && l) {
                r.median_s = atof(a + 9);
                r.tps = atof(b + 13);
                r.loss = atof(l + 5);
                r.ok = r.median_s > 0;
            }
            const char *cp = strstr(q, "cpu_median_s=");
            if (cp) r.cpu_s = atof(cp + 13);
        }
    }
    int st = pclose(p);
    if (st != 0) fprintf(stderr, "torch side exited with status %d\n", st);
    return r;
}

int main(int argc, char **argv) {
    int steps = 20, warmup = 3, ctx = 128, batch = 16, d = 128, layers = 2, torch = 1, eval_x = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--context") && i + 1 < argc) ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--d-model") && i + 1 < argc) d = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (!strcmp(argv[i], "--eval-x") && i + 1 < argc) eval_x = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--steps N] [--warmup N] [--context T] [--batch B] [--d-model D] [--layers L] [--no-torch] [--eval-x X]\n", argv[0]);
            return 2;
        }
    }
    if (steps < 1) steps = 1;
    if (steps > 1000) steps = 1000;
    const int heads = d / 32 > 0 ? d / 32 : 1;
    int ts[8];
    int nt = nlb_thread_list(ts, 8);

    uint8_t *buf;
    int64_t n;
    if (nl_lm_corpus_load("default", &buf, &n)) { fprintf(stderr, "%s\n", nl_last_error()); return 1; }
    int32_t *tr, *va, *te;
    int64_t ntr, nva, nte;
    NLB_CHECK(nl_lm_corpus_split(buf, n, 0, &tr, &ntr, &va, &nva, &te, &nte) == NL_OK);
    char data_path[] = "/tmp/nl_bench_lm_XXXXXX";
    int fd = mkstemp(data_path);
    NLB_CHECK(fd >= 0);
    uint8_t *tb = malloc((size_t)ntr);
    for (int64_t i = 0; i < ntr; i++) tb[i] = (uint8_t)tr[i];
    NLB_CHECK(write(fd, tb, (size_t)ntr) == (ssize_t)ntr);
    close(fd);
    free(tb);
    free(buf);

    nl_lm_config c = nl_lm_config_default();
    c.context = ctx; c.d_model = d; c.n_layers = layers; c.n_heads = heads; c.d_ff = 4 * d;
    char title[256];
    snprintf(title, sizeof title, "Transformer LM training step (bytes, %d layers, d_model %d, %d heads, batch %d x %d tokens, AdamW): nnlab vs PyTorch",
             layers, d, heads, batch, ctx);
    nlb_header(title);
    double res_nl[8] = {0}, res_t[8] = {0}, loss_nl[8] = {0}, loss_t[8] = {0}, cpu_nl[8] = {0}, cpu_t[8] = {0};
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(batch * ctx)), *tg = malloc(sizeof(int32_t) * (size_t)(batch * ctx));
    for (int k = 0; k < nt; k++) {
        int T = ts[k];
        nlb_set_threads(T);
        printf("\n-- threads %d (load %.2f)\n", T, nlb_loadavg());
        nl_lm m;
        NLB_CHECK(nl_lm_init(&m, &c, 1) == NL_OK);
        nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAMW);
        oc.lr = 3e-3; oc.beta2 = 0.99; oc.weight_decay = 0.01; oc.clip_norm = 1.0;
        for (int i = 0; i < m.ps.n; i++)
            if (m.ps.p[i]->var.val.ndim < 2) m.ps.p[i]->wd_mult = 0;
        nl_optim opt;
        NLB_CHECK(nl_optim_init(&opt, &m.ps, &oc) == NL_OK);
        nl_ctx *cx = nl_ctx_new(64 << 20, 0);
        nl_rng r;
        nl_rng_init(&r, 1, 0);
        double t[1000], tc[1000];
        for (int s = 0; s < warmup + steps; s++) {
            for (int b = 0; b < batch; b++) {
                int64_t st = nl_rng_below(&r, ntr - ctx - 1);
                memcpy(ids + b * ctx, tr + st, sizeof(int32_t) * (size_t)ctx);
                memcpy(tg + b * ctx, tr + st + 1, sizeof(int32_t) * (size_t)ctx);
            }
            double t0 = nlb_now(), c0 = cpu_now();
            nl_ctx_reset(cx);
            nl_var *loss = nl_lm_loss(&m, cx, ids, tg, batch, ctx, 1);
            NLB_CHECK(loss);
            nl_params_zero_grad(&m.ps);
            NLB_CHECK(nl_backward(cx, loss) == NL_OK);
            NLB_CHECK(nl_optim_step(&opt) == NL_OK);
            double dt = nlb_now() - t0, dc = cpu_now() - c0;
            loss_nl[k] = nl_item(loss);
            if (s >= warmup) { t[s - warmup] = dt; tc[s - warmup] = dc; }
        }
        res_nl[k] = nlb_median(t, steps);
        cpu_nl[k] = nlb_median(tc, steps);
        printf("  nnlab   T=%d: %d timed steps, median %.2f ms/step (CPU %.2f ms/step), last loss %.4f\n", T, steps,
               res_nl[k] * 1e3, cpu_nl[k] * 1e3, loss_nl[k]);
        printf("NNLAB_LM threads=%d median_s=%.6f cpu_median_s=%.6f tokens_per_s=%.1f\n", T, res_nl[k], cpu_nl[k],
               batch * ctx / res_nl[k]);
        fflush(stdout);
        if (eval_x > 1) { /* no-grad forward of batch*ctx tokens: batch x ctx vs one sequence of eval_x * ctx */
            for (int e = 0; e < 2; e++) {
                const int64_t Te = e ? (int64_t)eval_x * ctx : ctx, Be = e ? (batch * ctx + Te - 1) / Te : batch;
                int32_t *ei = malloc(sizeof(int32_t) * (size_t)(Be * Te));
                for (int64_t i = 0; i < Be * Te; i++) ei[i] = tr[i % (ntr - 1)];
                double te[1000], tce[1000];
                const int reps = steps < 10 ? steps : 10;
                for (int s = 0; s < reps + 1; s++) {
                    double t0 = nlb_now(), c0 = cpu_now();
                    nl_ctx_reset(cx);
                    int gsave = nl_set_grad_enabled(cx, 0);
                    NLB_CHECK(nl_lm_forward(&m, cx, ei, Be, Te, 0) != NULL);
                    nl_set_grad_enabled(cx, gsave);
                    if (s) { te[s - 1] = nlb_now() - t0; tce[s - 1] = cpu_now() - c0; }
                }
                printf("  nnlab eval T=%d: %lld x %lld tokens, median %.2f ms (CPU %.2f ms), %.0f tokens/s by CPU time\n", T,
                       (long long)Be, (long long)Te, nlb_median(te, reps) * 1e3, nlb_median(tce, reps) * 1e3,
                       (double)(Be * Te) / nlb_median(tce, reps));
                printf("NNLAB_LM_EVAL threads=%d context=%lld batch=%lld cpu_median_s=%.6f\n", T, (long long)Te, (long long)Be,
                       nlb_median(tce, reps));
                free(ei);
            }
        }
        nl_ctx_free(cx);
        nl_optim_free(&opt);
        nl_lm_free(&m);
        if (torch) {
            torch_result tr_ = run_torch(T, data_path, steps, warmup, ctx, batch, d, layers, heads);
            if (tr_.ok) { res_t[k] = tr_.median_s; cpu_t[k] = tr_.cpu_s; loss_t[k] = tr_.loss; }
        }
    }
    printf("\nsummary (median step of %d after %d warmup)\n", steps, warmup);
    printf("%-7s %-6s %10s %12s %9s %10s\n", "threads", "engine", "ms/step", "tokens/s", "nl/torch", "last loss");
    for (int k = 0; k < nt; k++)
        for (int side = 0; side < 2; side++) {
            double s = side ? res_t[k] : res_nl[k];
            if (s <= 0) continue;
            char ratio[16] = "";
            if (!side && res_t[k] > 0) snprintf(ratio, sizeof ratio, "%.3f", res_t[k] / res_nl[k]);
            printf("%-7d %-6s %10.2f %12.0f %9s %10.4f\n", ts[k], side ? "torch" : "nnlab", s * 1e3, batch * ctx / s, ratio,
                   side ? loss_t[k] : loss_nl[k]);
        }
    for (int k = 0; k < nt; k++)
        if (res_nl[k] > 0 && res_t[k] > 0)
            printf("RATIO_T%d=%.3f  CPU_RATIO_T%d=%.3f  (nnlab tokens/s / torch tokens/s by wall and by CPU time; "
                   "target >= 1.25)\n", ts[k], res_t[k] / res_nl[k], ts[k], cpu_t[k] > 0 && cpu_nl[k] > 0 ? cpu_t[k] / cpu_nl[k] : 0.0);
    unlink(data_path);
    free(ids);
    free(tg);
    free(tr); free(va); free(te);
    return 0;
}
