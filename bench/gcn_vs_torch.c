/* bench/gcn_vs_torch.c — one full-graph GCN training epoch on the WordNet noun graph, nnlab vs PyTorch
 * (torch.sparse), and the sparse-dense product A X alone, at 1 and 2 threads, in the same run.
 *
 * Graph and model (lib/graph): nl_graph_wordnet (82,115 synsets, 84,427 undirected hypernym/hyponym edges, 26
 * classes, features = binary row-normalised bag of words of the gloss over the 2000 most frequent gloss words,
 * sparse), split nl_graph_split(seed 1, 64%). 2-layer GCN, hidden 64: logits = Â relu(Â (X W1) + b1)' W2 + b2 with
 * Â = D^-1/2 (A + I) D^-1/2 (nl_graph_norm_adj) and dropout 0.5 on the hidden layer's input to layer 2 ('), Glorot
 * weights. One epoch = the library's real training step (as nl_graph_train): forward with dropout, mean cross-entropy
 * over the training nodes, backward, Adam (lr 0.01, L2 5e-4 on the weights, not the biases). The evaluation pass of
 * nl_graph_train is not part of the epoch.
 *
 * Same data on both sides: this program writes Â (CSR, f64 values), the feature matrix (CSR, f64 values), labels,
 * the training mask, the initial parameters, the SpMM input X and its own no-dropout forward logits to a temporary
 * file that bench/gcn_vs_torch.py reads. The Python side rebuilds the model from those exact arrays and checks its
 * forward logits (no dropout, initial parameters) against nnlab's: max |diff| <= 1e-4 or it reports FAIL. It also
 * compares the logits after one Adam step without dropout (informational: Adam's first step moves every weight by
 * about lr * sign(g), so a gradient near 0 whose sign the two sides round differently moves a weight by up to 2 lr).
 *
 * SpMM alone: Y = Â X with X [82115, 64] f32 (nl_spmm with the matrix's constant values), forward, and forward +
 * backward (dX = Â^T dY through the transposed index; dY = 1 from a sum), median of calibrated samples. Reported
 * as GFLOP/s (2 nnz D flop per product) and effective bandwidth over the compulsory bytes of a CSR product with
 * int32 indices and f32 values: X read once + Y written once + nnz (4 + 4) + 4 (n + 1) bytes. A sparse product
 * does 2 flop per 4-byte element of X it gathers, so it is bound by memory (and by the gather's latency), not by
 * the FMA units that the sgemm peak measures; the reference printed beside it is a measured stream copy bandwidth
 * (omp parallel memcpy-style loop over 2 x 64 MiB) at the same thread count.
 *
 * Timing: `warmup` untimed epochs, then the median of `epochs` timed epochs, per side and thread count.
 * Usage: bench_gcn_vs_torch [--epochs N] [--warmup N] [--no-torch] [--keep FILE] [--path data.noun]
 * Env: NLB_THREADS (default "1,2"), NL_SOURCE_DIR (to find bench/gcn_vs_torch.py). */
#include "bench_util.h"
#include "graph/graph.h"
#include <math.h>

#define HID 64
#define VOCAB 2000
#define SPMM_D 64

typedef struct {
    nl_graph g;
    nl_graph_model m;
    nl_optim opt;
    nl_ctx *c;
    nl_rng rng;
    int32_t *tgt; /* (n) label on training nodes, C (ignored) elsewhere */
} gcn;

static void gcn_init(gcn *s, double dropout) {
    nl_graph_config cfg = nl_graph_defaults(NL_GRAPH_GCN);
    cfg.layers = 2;
    cfg.hidden = HID;
    cfg.dropout = dropout;
    cfg.seed = 1;
    NLB_CHECK(nl_graph_model_init(&s->m, &s->g, &cfg) == NL_OK);
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
    oc.lr = cfg.lr;
    oc.weight_decay = cfg.weight_decay;
    NLB_CHECK(nl_optim_init(&s->opt, &s->m.ps, &oc) == NL_OK);
    nl_rng_init(&s->rng, cfg.seed, 0xd70);
}

static void gcn_free_model(gcn *s) {
    nl_optim_free(&s->opt);
    nl_graph_model_free(&s->m);
}

/* One training epoch (forward with dropout, loss, backward, Adam); returns the loss. */
static double gcn_epoch(gcn *s) {
    nl_ctx_reset(s->c);
    nl_var *logits = nl_graph_model_forward(s->c, &s->m, &s->g, 1, &s->rng);
    nl_var *loss = nl_cross_entropy(s->c, logits, s->tgt, 0.0, s->g.num_classes);
    NLB_CHECK(loss);
    nl_params_zero_grad(&s->m.ps);
    NLB_CHECK(nl_backward(s->c, loss) == NL_OK);
    NLB_CHECK(nl_optim_step(&s->opt) == NL_OK);
    return nl_item(loss);
}

/* Forward without dropout into out [n, C] (f32); returns the loss over the training nodes. */
static double gcn_eval(gcn *s, float *out) {
    nl_ctx_reset(s->c);
    int prev = nl_set_grad_enabled(s->c, 0);
    nl_var *logits = nl_graph_model_forward(s->c, &s->m, &s->g, 0, NULL);
    nl_var *loss = logits ? nl_cross_entropy(s->c, logits, s->tgt, 0.0, s->g.num_classes) : NULL;
    nl_set_grad_enabled(s->c, prev);
    NLB_CHECK(loss);
    const int64_t k = s->g.n * s->g.num_classes;
    for (int64_t i = 0; i < k; i++) out[i] = (float)nl_tensor_get(&logits->val, i);
    return nl_item(loss);
}

/* ---------------- export for the PyTorch side ---------------- */
static void put(FILE *f, const void *p, size_t sz, size_t n) {
    if (n && fwrite(p, sz, n, f) != n) { perror("gcn_vs_torch: write"); exit(1); }
}
static void put_i64(FILE *f, int64_t v) { put(f, &v, sizeof v, 1); }
static void put_csr(FILE *f, const nl_csr *A) {
    put_i64(f, A->rows);
    put_i64(f, A->cols);
    put_i64(f, A->nnz);
    put(f, A->row_ptr, sizeof *A->row_ptr, (size_t)A->rows + 1);
    put(f, A->col_idx, sizeof *A->col_idx, (size_t)A->nnz);
    put(f, A->values, sizeof *A->values, (size_t)A->nnz);
}
static void put_var(FILE *f, const nl_var *v) { /* f32, contiguous parameter */
    put(f, v->val.data, sizeof(float), (size_t)nl_tensor_numel(&v->val));
}

/* File layout (little-endian): "NLGCN001", int64 n, F, C, hidden, D; Â csr; feature csr (each: rows, cols, nnz,
 * int64 row_ptr[rows+1], int32 col_idx[nnz], f64 values[nnz]); int32 y[n]; uint8 train[n]; f32 W1[F*hidden],
 * b1[hidden], W2[hidden*C], b2[C]; f64 loss0; f32 logits0[n*C] (no dropout, initial parameters); f64 loss1;
 * f32 logits1[n*C] (after one Adam step without dropout); f32 X[n*D] (SpMM input); f64 sum(Â X), sum|Â X|. */
static void export_file(const char *path, gcn *s, const float *X, double ysum, double yabs) {
    const nl_graph *g = &s->g;
    const int64_t n = g->n, C = g->num_classes;
    float *lg = malloc((size_t)(n * C) * sizeof *lg); /* (n, C) */
    NLB_CHECK(lg);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    put(f, "NLGCN001", 1, 8);
    put_i64(f, n);
    put_i64(f, g->n_feat);
    put_i64(f, C);
    put_i64(f, HID);
    put_i64(f, SPMM_D);
    put_csr(f, &s->m.ahat);
    put_csr(f, &g->feat);
    put(f, g->y, sizeof *g->y, (size_t)n);
    put(f, g->train, 1, (size_t)n);
    put_var(f, s->m.W[0]);
    put_var(f, s->m.b[0]);
    put_var(f, s->m.W[1]);
    put_var(f, s->m.b[1]);
    double l0 = gcn_eval(s, lg);
    put(f, &l0, sizeof l0, 1);
    put(f, lg, sizeof *lg, (size_t)(n * C));
    /* one Adam step without dropout on a copy of the model with the same initial parameters */
    gcn t = *s;
    gcn_init(&t, 0.0);
    gcn_epoch(&t);
    double l1 = gcn_eval(&t, lg);
    gcn_free_model(&t);
    put(f, &l1, sizeof l1, 1);
    put(f, lg, sizeof *lg, (size_t)(n * C));
    put(f, X, sizeof *X, (size_t)(n * SPMM_D));
    put(f, &ysum, sizeof ysum, 1);
    put(f, &yabs, sizeof yabs, 1);
    if (fclose(f)) { perror(path); exit(1); }
    printf("nnlab forward check values: loss0 %.6f (initial parameters, no dropout), loss1 %.6f (after one Adam step)\n", l0, l1);
    free(lg);
}

/* ---------------- SpMM alone ---------------- */
typedef struct {
    nl_ctx *c;
    const nl_csr *A;
    nl_params ps; /* holds X [n, D] so the backward has a gradient to write */
    nl_var *X;
    int backward;
} spmm_arg;

static void spmm_call(void *p) {
    spmm_arg *a = p;
    nl_ctx_reset(a->c);
    if (!a->backward) {
        int prev = nl_set_grad_enabled(a->c, 0);
        NLB_CHECK(nl_spmm(a->c, a->A, NULL, a->X));
        nl_set_grad_enabled(a->c, prev);
        return;
    }
    nl_var *s = nl_sum(a->c, nl_spmm(a->c, a->A, NULL, a->X), NL_AXIS_ALL, 0);
    NLB_CHECK(s);
    nl_params_zero_grad(&a->ps);
    NLB_CHECK(nl_backward(a->c, s) == NL_OK);
}

/* Best-of-5 stream copy bandwidth (GB/s, read + write bytes) over 2 x 64 MiB at the current thread count. */
static double copy_bandwidth(void) {
    const int64_t m = 16 << 20; /* floats per buffer */
    float *src = nlb_alloc_f32(m, 7), *dst = nlb_alloc_f32(m, 8);
    double best = 0;
    for (int r = 0; r < 6; r++) {
        double t0 = nlb_now();
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < m; i++) dst[i] = src[i];
        double dt = nlb_now() - t0;
        if (r > 0 && 8.0 * m / dt * 1e-9 > best) best = 8.0 * m / dt * 1e-9;
    }
    free(src);
    free(dst);
    return best;
}

/* ---------------- PyTorch side ---------------- */
typedef struct { double epoch_s[2], fwd_s[2], fb_s[2], fwd_diff, step_diff; int ok, check_ok; } torch_result;
static const char *const FMT[2] = {"coo", "csr"};

static torch_result run_torch(int T, const char *file, int epochs, int warmup) {
    torch_result r = {0};
    r.fwd_diff = r.step_diff = -1;
    char args[1400];
    snprintf(args, sizeof args, "--data '%s' --epochs %d --warmup %d", file, epochs, warmup);
    FILE *p = nlb_python_open("gcn_vs_torch.py", T, args);
    if (!p) return r;
    char line[1024];
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        fflush(stdout);
        const char *q;
        if ((q = strstr(line, "TORCH_GCN_CHECK "))) {
            const char *a = strstr(q, "fwd_max_diff="), *b = strstr(q, "step_max_diff="), *o = strstr(q, "ok=");
            if (a) r.fwd_diff = atof(a + 13);
            if (b) r.step_diff = atof(b + 14);
            r.check_ok = o && atoi(o + 3) == 1;
        }
        for (int k = 0; k < 2; k++) {
            char tag[32];
            snprintf(tag, sizeof tag, "TORCH_GCN fmt=%s ", FMT[k]);
            if ((q = strstr(line, tag))) {
                const char *a = strstr(q, "epoch_s="), *b = strstr(q, "spmm_fwd_s="), *c2 = strstr(q, "spmm_fwdbwd_s=");
                if (a) r.epoch_s[k] = atof(a + 8);
                if (b) r.fwd_s[k] = atof(b + 11);
                if (c2) r.fb_s[k] = atof(c2 + 14);
                r.ok = 1;
            }
        }
    }
    int st = pclose(p);
    if (st != 0) fprintf(stderr, "torch side exited with status %d\n", st);
    return r;
}

int main(int argc, char **argv) {
    int epochs = 10, warmup = 2, torch = 1;
    const char *keep = NULL, *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (!strcmp(argv[i], "--keep") && i + 1 < argc) keep = argv[++i];
        else if (!strcmp(argv[i], "--path") && i + 1 < argc) path = argv[++i];
        else { fprintf(stderr, "usage: %s [--epochs N] [--warmup N] [--no-torch] [--keep FILE] [--path data.noun]\n", argv[0]); return 2; }
    }
    if (epochs < 1) epochs = 1;
    if (epochs > 64) epochs = 64;
    if (warmup < 0) warmup = 0;
    int ts[8];
    const int nt = nlb_thread_list(ts, 8);

    gcn s;
    memset(&s, 0, sizeof s);
    double t0 = nlb_now();
    if (nl_graph_wordnet(&s.g, path, VOCAB) != NL_OK) {
        fprintf(stderr, "gcn_vs_torch: %s\n", nl_last_error());
        return 1;
    }
    NLB_CHECK(nl_graph_split(&s.g, 1, 64) == NL_OK);
    const double t_load = nlb_now() - t0;
    const int64_t n = s.g.n, C = s.g.num_classes;
    NLB_CHECK(s.tgt = malloc((size_t)n * sizeof *s.tgt));
    int64_t n_train = 0;
    for (int64_t i = 0; i < n; i++) s.tgt[i] = s.g.train[i] ? s.g.y[i] : (int32_t)C, n_train += s.g.train[i];
    NLB_CHECK(s.c = nl_ctx_new(64 << 20, 0));
    gcn_init(&s, 0.5);
    const nl_csr *A = &s.m.ahat;
    const double nnz_a = (double)A->nnz, nnz_f = (double)s.g.feat.nnz;

    /* flop of one epoch: layer 1 X W1 (sparse, 2 nnz_f H) + Â (2 nnz_a H); layer 2 H W2 (2 n H C) + Â (2 nnz_a C);
     * backward: dW1 = X^T dZ1 (2 nnz_f H, no dX for the input), Â^T in both layers, dW2 and dH for layer 2 */
    const double fwd_flop = 2 * nnz_f * HID + 2 * nnz_a * HID + 2.0 * n * HID * C + 2 * nnz_a * C;
    const double bwd_flop = 2 * nnz_f * HID + 2 * nnz_a * HID + 4.0 * n * HID * C + 2 * nnz_a * C;
    const double epoch_flop = fwd_flop + bwd_flop;
    const double spmm_flop = 2 * nnz_a * SPMM_D;
    const double spmm_bytes = 8.0 * n * SPMM_D + 8 * nnz_a + 4.0 * (n + 1);

    nlb_header("GCN epoch on the WordNet noun graph (2 layers, hidden 64, Adam): nnlab vs PyTorch torch.sparse");
    printf("graph: %lld nodes, %lld undirected edges, Â nnz %lld (with self loops), features %lld x %lld with %lld "
           "nonzeros, %lld classes, %lld training nodes (loaded in %.2f s)\n",
           (long long)n, (long long)s.g.n_edges, (long long)A->nnz, (long long)n, (long long)s.g.n_feat,
           (long long)s.g.feat.nnz, (long long)C, (long long)n_train, t_load);
    printf("flop per epoch %.3f GFLOP (forward %.3f); SpMM Â X [%lld, %d]: %.1f MFLOP, %.1f MB compulsory traffic\n",
           epoch_flop * 1e-9, fwd_flop * 1e-9, (long long)n, SPMM_D, spmm_flop * 1e-6, spmm_bytes * 1e-6);

    /* the SpMM input and the export for the PyTorch side */
    spmm_arg sa = {.A = A};
    NLB_CHECK(sa.c = nl_ctx_new(64 << 20, 0));
    NLB_CHECK(nl_params_init(&sa.ps, NL_F32) == NL_OK);
    const int64_t xs[2] = {n, SPMM_D};
    NLB_CHECK(sa.X = nl_params_add(&sa.ps, "X", 2, xs));
    nl_rng xr;
    nl_rng_init(&xr, 3, 1);
    nl_rng_fill_uniform(&xr, &sa.X->val, -1, 1);
    double ysum = 0, yabs = 0;
    {
        nl_ctx_reset(sa.c);
        nl_var *Y = nl_spmm(sa.c, A, NULL, sa.X);
        NLB_CHECK(Y);
        const float *yp = Y->val.data;
        for (int64_t i = 0; i < n * SPMM_D; i++) ysum += yp[i], yabs += fabs(yp[i]);
    }
    char file[256];
    snprintf(file, sizeof file, "%s", keep ? keep : "/tmp/nlb_gcn_XXXXXX");
    if (!keep) {
        int fd = mkstemp(file);
        if (fd < 0) { perror("mkstemp"); return 1; }
        close(fd);
    }
    if (torch || keep) export_file(file, &s, sa.X->val.data, ysum, yabs);

    double ep_nl[8] = {0}, fwd_nl[8] = {0}, fb_nl[8] = {0}, bw[8] = {0}, loss_nl[8] = {0};
    torch_result tr[8];
    memset(tr, 0, sizeof tr);
    for (int k = 0; k < nt; k++) {
        const int T = ts[k];
        nlb_set_threads(T);
        bw[k] = copy_bandwidth();
        printf("\n-- threads %d (stream copy %.1f GB/s, load %.2f)\n", T, bw[k], nlb_loadavg());
        gcn_free_model(&s);
        gcn_init(&s, 0.5); /* same initial parameters for every thread count */
        double t[64];
        for (int e = 0; e < warmup + epochs; e++) {
            double a = nlb_now();
            double l = gcn_epoch(&s);
            double dt = nlb_now() - a;
            printf("  nnlab   T=%d epoch %d (%s): %.4f s  loss %.4f\n", T, e, e < warmup ? "warmup" : "timed", dt, l);
            fflush(stdout);
            if (e >= warmup) t[e - warmup] = dt;
            loss_nl[k] = l;
        }
        ep_nl[k] = nlb_median(t, epochs);
        sa.backward = 0;
        int inner = nlb_calibrate(spmm_call, &sa, 0.05);
        fwd_nl[k] = nlb_median_time_n(spmm_call, &sa, 1, 9, inner);
        sa.backward = 1;
        inner = nlb_calibrate(spmm_call, &sa, 0.05);
        fb_nl[k] = nlb_median_time_n(spmm_call, &sa, 1, 9, inner);
        printf("NNLAB_GCN threads=%d epoch_s=%.6f spmm_fwd_s=%.6f spmm_fwdbwd_s=%.6f\n", T, ep_nl[k], fwd_nl[k], fb_nl[k]);
        if (torch) tr[k] = run_torch(T, file, epochs, warmup);
    }
    if (!keep) remove(file);

    printf("\nsummary (GCN epoch: median of %d epochs after %d warmup; SpMM: median of 9 calibrated samples; "
           "ratio = torch time / nnlab time, > 1: nnlab faster)\n", epochs, warmup);
    printf("%-7s %-9s %10s %9s %9s | %11s %9s %8s %8s | %13s %9s\n", "threads", "engine", "epoch s", "GFLOP/s", "ratio",
           "spmm fwd ms", "GFLOP/s", "GB/s", "ratio", "spmm f+b ms", "ratio");
    for (int k = 0; k < nt; k++) {
        printf("%-7d %-9s %10.4f %9.2f %9s | %11.3f %9.2f %8.2f %8s | %13.3f %9s\n", ts[k], "nnlab", ep_nl[k],
               epoch_flop / ep_nl[k] * 1e-9, "", fwd_nl[k] * 1e3, spmm_flop / fwd_nl[k] * 1e-9,
               spmm_bytes / fwd_nl[k] * 1e-9, "", fb_nl[k] * 1e3, "");
        for (int f = 0; f < 2 && tr[k].ok; f++) {
            if (tr[k].epoch_s[f] <= 0) continue;
            char eng[16];
            snprintf(eng, sizeof eng, "torch-%s", FMT[f]);
            printf("%-7d %-9s %10.4f %9.2f %9.3f | %11.3f %9.2f %8.2f %8.3f | %13.3f %9.3f\n", ts[k], eng, tr[k].epoch_s[f],
                   epoch_flop / tr[k].epoch_s[f] * 1e-9, tr[k].epoch_s[f] / ep_nl[k], tr[k].fwd_s[f] * 1e3,
                   spmm_flop / tr[k].fwd_s[f] * 1e-9, spmm_bytes / tr[k].fwd_s[f] * 1e-9, tr[k].fwd_s[f] / fwd_nl[k],
                   tr[k].fb_s[f] * 1e3, tr[k].fb_s[f] / fb_nl[k]);
        }
        printf("        stream copy %.1f GB/s at %d thread(s): nnlab SpMM forward at %.0f%% of it; last nnlab epoch loss %.4f\n",
               bw[k], ts[k], 100 * spmm_bytes / fwd_nl[k] * 1e-9 / bw[k], loss_nl[k]);
    }
    for (int k = 0; k < nt; k++)
        if (tr[k].ok)
            printf("CHECK_T%d forward logits max|torch - nnlab| = %.3g (tolerance 1e-4: %s); after one Adam step %.3g\n", ts[k],
                   tr[k].fwd_diff, tr[k].check_ok ? "ok" : "FAIL", tr[k].step_diff);
    for (int k = 0; k < nt; k++)
        if (tr[k].ok) {
            double best = tr[k].epoch_s[0] > 0 && (tr[k].epoch_s[1] <= 0 || tr[k].epoch_s[0] < tr[k].epoch_s[1]) ? tr[k].epoch_s[0] : tr[k].epoch_s[1];
            printf("RATIO_T%d=%.3f  (GCN epoch: faster torch.sparse format time / nnlab time)\n", ts[k], best / ep_nl[k]);
        }
    nl_params_free(&sa.ps);
    nl_ctx_free(sa.c);
    gcn_free_model(&s);
    nl_ctx_free(s.c);
    free(s.tgt);
    nl_graph_free(&s.g);
    return 0;
}
