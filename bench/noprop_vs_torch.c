/* bench/noprop_vs_torch.c — one training epoch of NoProp-DT vs backprop of the same network (methods/noprop),
 * nnlab vs PyTorch, at 1 and 2 threads (issue 14, part 5).
 *
 * Network: T = 10 MLP blocks (methods/noprop/noprop.h: image FC H-BN-ReLU, z FC H-BN-ReLU, concatenated,
 * FC H-BN-ReLU, FC H/2-BN-ReLU, FC 10), one-hot embedding (d = 10), classifier p(y|z) = softmax(W z + b), one AdamW
 * (lr 1e-3, wd 1e-3) per block plus one for the shared store, batch 128 (last partial batch dropped), at the quick
 * width H = 48 and at the paper's H = 256. Data: the first 10,000 MNIST training images, standardised as the entry
 * does (nl_noprop_prepare, limit 10000), so one epoch = 78 batches of 128.
 *   (a) nnlab NoProp-DT: per batch, T independent block steps (nl_noprop_loss(t), nl_backward, the block's AdamW,
 *       the shared AdamW) — the loop of nl_noprop_train, without its test pass.
 *   (b) nnlab backprop: the T blocks chained as at inference, CE on block T's logits, one step of all optimizers.
 *   (c) PyTorch backprop and (d) PyTorch NoProp-DT: the same in bench/noprop_vs_torch.py (/usr/bin/python3).
 * Same data and initial parameters: this program writes the standardised images, the labels, the schedule
 * (abar_t, w_t, a_t, b_t, c_t), every block's initial parameters and two forward check values to a temporary file
 * that the Python side loads: block 1's logits on the first batch with a fixed z (train-mode BN), and the
 * backprop chain's CE on the first batch with the noise nl_noprop_loss draws (exported). Python reports max |diff|
 * against both (tolerance 1e-4). The random draws during training (batch order, noise) differ between the sides.
 *
 * FLOPs per epoch (nominal, the convention): 6 x T x (block multiply-adds per image) x images, block
 * multiply-adds = 784 H + 10 H + 2H H + H H/2 + H/2 10 (the embedding mix and the classifier, 100 each, left out).
 * DT and backprop run the same GEMMs per image (T block forwards and backwards), so one count serves both.
 * Timing: median of N epochs after warm-up ones, each side and thread count, in wall seconds and in CPU seconds of
 * the process (all its threads; on a shared machine the 1-thread CPU time is the better measure of the work);
 * ratio = torch s / nnlab s (> 1: nnlab faster); %peak divides by the measured sgemm peak ($NLB_SGEMM_PEAK_T<T>
 * from run_all.sh, else measured here). A 2-thread run is only meaningful on a quiet machine (docs/performance.md).
 *
 * Usage: bench_noprop_vs_torch [--epochs N] [--warmup N] [--limit N] [--widths 48,256] [--no-torch] [--keep FILE]
 * Env: NLB_THREADS (default "1,2"), NL_SOURCE_DIR (to find bench/noprop_vs_torch.py), NL_DATA_DIR. */
#include "bench_util.h"
#include "nnlab/data.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "noprop/noprop.h"
#include <math.h>

#define NP_T 10

/* CPU seconds of this process (all its threads): on a shared machine the honest cost of a 1-thread epoch. */
static double np_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#define NP_B 128

typedef struct {
    nl_noprop_model m;
    nl_optim opt[NL_NOPROP_MAX_T + 1]; /* blocks, then the shared store */
    nl_batcher bat;
    nl_ctx *ctx;
    nl_rng rng;
} np_run;

static nl_noprop_config np_config(int64_t H, nl_noprop_variant v, int64_t limit) {
    nl_noprop_config cfg = nl_noprop_defaults();
    cfg.variant = v;
    cfg.T = NP_T;
    cfg.cnn = 0;
    cfg.hidden = H;
    cfg.batch = NP_B;
    cfg.limit = limit;
    cfg.test_limit = 1000;
    cfg.seed = 1;
    return cfg;
}

static void run_init(np_run *r, const nl_noprop_config *cfg, const nl_dataset *tr) {
    memset(r, 0, sizeof *r);
    NLB_CHECK(nl_noprop_model_init(&r->m, cfg, tr) == NL_OK);
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAMW);
    oc.lr = cfg->lr;
    oc.weight_decay = cfg->wd;
    for (int t = 0; t < r->m.n_blocks; t++) NLB_CHECK(nl_optim_init(&r->opt[t], &r->m.blocks[t].ps, &oc) == NL_OK);
    NLB_CHECK(nl_optim_init(&r->opt[r->m.n_blocks], &r->m.shared, &oc) == NL_OK);
    NLB_CHECK(nl_batcher_init(&r->bat, tr, cfg->batch, 1, cfg->seed) == NL_OK);
    nl_batcher_set_drop_last(&r->bat, 1);
    NLB_CHECK(r->ctx = nl_ctx_new((size_t)1 << 22, 0));
    nl_rng_init(&r->rng, cfg->seed, 77);
}

static void run_free(np_run *r) {
    nl_ctx_free(r->ctx);
    nl_batcher_free(&r->bat);
    for (int t = 0; t <= r->m.n_blocks; t++) nl_optim_free(&r->opt[t]);
    nl_noprop_model_free(&r->m);
}

/* One epoch of the variant's training (nl_noprop_train's step); returns the mean loss over its steps. */
static double run_epoch(np_run *r) {
    nl_noprop_model *m = &r->m;
    const int dt = m->cfg.variant == NL_NOPROP_DT;
    float *xb;
    int32_t *yb;
    int64_t B;
    double tot = 0;
    int64_t n = 0;
    while (nl_batcher_next(&r->bat, &xb, &yb, &B)) {
        for (int t = 1; t <= (dt ? m->cfg.T : 1); t++) {
            nl_ctx_reset(r->ctx);
            if (dt) nl_params_zero_grad(&m->blocks[t - 1].ps);
            else
                for (int k = 0; k < m->n_blocks; k++) nl_params_zero_grad(&m->blocks[k].ps);
            nl_params_zero_grad(&m->shared);
            nl_var *loss = nl_noprop_loss(r->ctx, m, t, xb, yb, B, &r->rng);
            NLB_CHECK(loss);
            tot += nl_item(loss);
            n++;
            NLB_CHECK(nl_backward(r->ctx, loss) == NL_OK);
            if (dt) NLB_CHECK(nl_optim_step(&r->opt[t - 1]) == NL_OK);
            else
                for (int k = 0; k < m->n_blocks; k++) NLB_CHECK(nl_optim_step(&r->opt[k]) == NL_OK);
            NLB_CHECK(nl_optim_step(&r->opt[m->n_blocks]) == NL_OK);
        }
    }
    nl_batcher_reset(&r->bat);
    return tot / (double)n;
}

/* ---------------- export for the PyTorch side ---------------- */
static void put(FILE *f, const void *p, size_t sz, size_t n) {
    if (n && fwrite(p, sz, n, f) != n) { perror("noprop_vs_torch: write"); exit(1); }
}
static void put_i64(FILE *f, int64_t v) { put(f, &v, sizeof v, 1); }
static void put_f64(FILE *f, double v) { put(f, &v, sizeof v, 1); }
static void put_var(FILE *f, const nl_var *v) { put(f, v->val.data, sizeof(float), (size_t)nl_tensor_numel(&v->val)); }
static void put_fc(FILE *f, const nl_noprop_fc *fc) {
    put_i64(f, fc->W->val.shape[0]);
    put_i64(f, fc->W->val.shape[1]);
    put_i64(f, fc->g != NULL);
    put_var(f, fc->W);
    put_var(f, fc->b);
    if (fc->g) { put_var(f, fc->g); put_var(f, fc->be); put_var(f, fc->rm); put_var(f, fc->rv); }
}

/* File layout (little-endian): "NLNPB001"; int64 n, d_img, C, d, H, T, B; f32 X[n, d_img]; int32 y[n];
 * f64 abar[T+1], w[T+1] (w[0] = 0), a[T+1], b[T+1], c[T+1] (index 0 unused for w, a, b, c); per block t = 1..T,
 * the fcs img, zb, f1, f2, out, each int64 out, in, has_bn, f32 W[out, in], b[out], (has_bn) g, be, rm, rv [out];
 * f32 embed[C, d], cls_W[C, d], cls_b[C]; check: f32 z[B, d], f32 logits1[B, C] (block 1 on X[0:B], z, train
 * mode); f32 noise[T, B, d] (z_0 and the T - 1 chain noises of nl_noprop_loss, in draw order); f64 chain CE. */
static void export_file(const char *path, const nl_dataset *tr, int64_t H, int64_t limit) {
    nl_noprop_config cfg = np_config(H, NL_NOPROP_BACKPROP, limit);
    nl_noprop_model m; /* a throwaway model: the train-mode checks update its BN running statistics */
    NLB_CHECK(nl_noprop_model_init(&m, &cfg, tr) == NL_OK);
    const int T = NP_T;
    const int64_t B = NP_B, d = m.d, C = m.C;
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    put(f, "NLNPB001", 1, 8);
    int64_t hdr[7] = {tr->n, m.d_img, C, d, H, T, B};
    put(f, hdr, sizeof(int64_t), 7);
    put(f, tr->x, sizeof(float), (size_t)(tr->n * tr->d));
    put(f, tr->y, sizeof(int32_t), (size_t)tr->n);
    for (int t = 0; t <= T; t++) put_f64(f, nl_noprop_abar(t, T));
    for (int t = 0; t <= T; t++) put_f64(f, t ? nl_noprop_weight(t, T, cfg.eta) : 0.0);
    double co[3][NP_T + 1] = {{0}};
    for (int t = 1; t <= T; t++) nl_noprop_coeffs(t, T, &co[0][t], &co[1][t], &co[2][t]);
    for (int k = 0; k < 3; k++) put(f, co[k], sizeof(double), (size_t)T + 1);
    for (int t = 0; t < T; t++) {
        nl_noprop_block *b = &m.blocks[t];
        put_fc(f, &b->img);
        put_fc(f, &b->zb);
        put_fc(f, &b->f1);
        put_fc(f, &b->f2);
        put_fc(f, &b->out);
    }
    put_var(f, m.embed);
    put_var(f, m.cls_W);
    put_var(f, m.cls_b);
    /* check 1: block 1's logits on X[0:B] and a fixed z */
    nl_ctx *c = nl_ctx_new((size_t)1 << 22, 0);
    NLB_CHECK(c);
    nl_rng r;
    nl_rng_init(&r, 12345, 1);
    nl_var *xv = nl_input(c, nl_tensor_wrap(tr->x, NL_F32, 2, (int64_t[]){B, m.d_img})); /* [B, d_img] */
    nl_var *z = nl_new(c, NL_F32, 2, (int64_t[]){B, d});                                   /* [B, d] */
    NLB_CHECK(xv && z);
    nl_rng_fill_normal(&r, &z->val, 0.0, 1.0);
    nl_var *lg = nl_noprop_block_forward(c, &m.blocks[0], xv, z, 1); /* [B, C] */
    NLB_CHECK(lg);
    put_var(f, z);
    put_var(f, lg);
    const double lg0 = ((const float *)lg->val.data)[0];
    /* check 2: the chain's CE; the noise nl_noprop_loss draws is re-drawn from a copy of the generator: [B, d] z_0,
     * then one [B, d] per chain step (nl_noprop_loss's draw order for the backprop variant) */
    nl_ctx_reset(c);
    nl_rng r2 = r;
    nl_var *nz = nl_new(c, NL_F32, 2, (int64_t[]){B, d}); /* [B, d] */
    NLB_CHECK(nz);
    for (int k = 0; k < T; k++) {
        nl_rng_fill_normal(&r2, &nz->val, 0.0, 1.0);
        put_var(f, nz);
    }
    nl_ctx_reset(c);
    nl_var *loss = nl_noprop_loss(c, &m, 1, tr->x, tr->y, B, &r);
    NLB_CHECK(loss);
    double ce = nl_item(loss);
    put_f64(f, ce);
    if (fclose(f)) { perror(path); exit(1); }
    printf("nnlab check values (H = %lld): block-1 logit[0] %.6f, chain CE %.6f\n", (long long)H, lg0, ce);
    nl_ctx_free(c);
    nl_noprop_model_free(&m);
}

typedef struct { double median_s[2], cpu_s[2], loss[2], diff_logits, diff_ce; int ok[2], check_ok; } torch_result;

static torch_result run_torch(const char *file, int T, int epochs, int warmup) {
    torch_result res = {0};
    char args[1400];
    snprintf(args, sizeof args, "--epochs %d --warmup %d --file '%s'", epochs, warmup, file);
    FILE *p = nlb_python_open("noprop_vs_torch.py", T, args);
    if (!p) return res;
    char line[1024];
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        fflush(stdout);
        const char *q;
        if ((q = strstr(line, "TORCH_NOPROP "))) {
            int v = strstr(q, "variant=dt") ? 0 : 1;
            const char *a = strstr(q, " median_s="), *cp = strstr(q, "cpu_median_s="), *l = strstr(q, "loss=");
            if (a && cp && l) {
                res.median_s[v] = atof(a + 10);
                res.cpu_s[v] = atof(cp + 13);
                res.loss[v] = atof(l + 5);
                res.ok[v] = res.median_s[v] > 0;
            }
        }
        if ((q = strstr(line, "TORCH_CHECK "))) {
            const char *a = strstr(q, "logits_diff="), *b = strstr(q, "ce_diff="), *o = strstr(q, "ok=");
            if (a && b && o) { res.diff_logits = atof(a + 12); res.diff_ce = atof(b + 8); res.check_ok = atoi(o + 3) == 1; }
        }
    }
    int st = pclose(p);
    if (st != 0) fprintf(stderr, "torch side exited with status %d\n", st);
    return res;
}

int main(int argc, char **argv) {
    int epochs = 3, warmup = 1, torch = 1;
    int64_t limit = 10000;
    const char *keep = NULL, *widths = "48,256";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--limit") && i + 1 < argc) limit = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--widths") && i + 1 < argc) widths = argv[++i];
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (!strcmp(argv[i], "--keep") && i + 1 < argc) keep = argv[++i];
        else { fprintf(stderr, "usage: %s [--epochs N] [--warmup N] [--limit N] [--widths 48,256] [--no-torch] [--keep FILE]\n", argv[0]); return 2; }
    }
    if (epochs < 1) epochs = 1;
    if (epochs > 64) epochs = 64;
    int ts[8], nt = nlb_thread_list(ts, 8);
    int64_t Hs[4];
    int nh = 0;
    char wb[64];
    snprintf(wb, sizeof wb, "%s", widths);
    for (char *tok = strtok(wb, ", "); tok && nh < 4; tok = strtok(NULL, ", "))
        if (atoll(tok) >= 2) Hs[nh++] = atoll(tok);

    nl_dataset trl, tel, tr, te;
    if (nl_dataset_load(&trl, "mnist", "train", NULL) != NL_OK) { /* not an error for run_all.sh: nothing to measure */
        printf("noprop_vs_torch skipped: %s\n", nl_last_error());
        return 0;
    }
    NLB_CHECK(nl_dataset_load(&tel, "mnist", "test", NULL) == NL_OK);
    nl_noprop_config c0 = np_config(48, NL_NOPROP_DT, limit);
    NLB_CHECK(nl_noprop_prepare(&c0, &trl, &tel, &tr, &te) == NL_OK);
    nl_dataset_free(&trl);
    nl_dataset_free(&tel);
    const int64_t n_img = tr.n / NP_B * NP_B; /* images per epoch (last partial batch dropped) */
    char file[256];
    snprintf(file, sizeof file, "%s", keep ? keep : "/tmp/nl_noprop_bench_XXXXXX");
    if (!keep) { int fd = mkstemp(file); if (fd < 0) { perror("mkstemp"); return 1; } close(fd); }

    nlb_header("NoProp-DT vs backprop, T = 10 MLP blocks, batch 128, AdamW, one epoch of MNIST (first images, standardised): nnlab vs PyTorch");
    printf("images per epoch %lld (first %lld training images, last partial batch dropped); median of %d epochs after %d warm-up\n",
           (long long)n_img, (long long)tr.n, epochs, warmup);
    /* results [width][thread][engine: 0 nnlab DT, 1 nnlab BP, 2 torch DT, 3 torch BP] */
    double res[4][8][4] = {{{0}}}, cpu[4][8][4] = {{{0}}}, loss[4][8][4] = {{{0}}}, peak[8] = {0}, gflop[4] = {0}, dlog[4][8] = {{0}}, dce[4][8] = {{0}};
    int chk[4][8] = {{0}};
    for (int h = 0; h < nh; h++) {
        int64_t H = Hs[h];
        double macs = 784.0 * H + 10.0 * H + 2.0 * H * H + H * (H / 2) + (H / 2) * 10.0;
        gflop[h] = 6.0 * NP_T * macs * (double)n_img * 1e-9;
        printf("\n==== H = %lld: %.2f GFLOP per epoch (nominal, 6 x T x %.0f multiply-adds per image)\n", (long long)H, gflop[h], macs);
        if (torch || keep) export_file(file, &tr, H, limit);
        for (int k = 0; k < nt; k++) {
            int T = ts[k];
            peak[k] = nlb_peak_gflops(T);
            printf("\n-- H %lld, threads %d (sgemm peak %.1f GFLOP/s, load %.2f)\n", (long long)H, T, peak[k], nlb_loadavg());
            for (int v = 0; v < 2; v++) {
                nl_noprop_config cfg = np_config(H, v ? NL_NOPROP_BACKPROP : NL_NOPROP_DT, limit);
                np_run r;
                run_init(&r, &cfg, &tr);
                double t[64], tc[64];
                for (int e = 0; e < warmup + epochs; e++) {
                    double t0 = nlb_now(), c0 = np_cpu(), l = run_epoch(&r), dt = nlb_now() - t0, dc = np_cpu() - c0;
                    printf("  nnlab %-8s T=%d epoch %d (%s): %.3f s  cpu %.3f s  mean loss %.4f\n", v ? "backprop" : "dt", T, e,
                           e < warmup ? "warmup" : "timed", dt, dc, l);
                    fflush(stdout);
                    if (e >= warmup) { t[e - warmup] = dt; tc[e - warmup] = dc; }
                    loss[h][k][v] = l;
                }
                res[h][k][v] = nlb_median(t, epochs);
                cpu[h][k][v] = nlb_median(tc, epochs);
                printf("NNLAB_NOPROP variant=%s hidden=%lld threads=%d median_s=%.6f cpu_median_s=%.6f\n", v ? "backprop" : "dt",
                       (long long)H, T, res[h][k][v], cpu[h][k][v]);
                run_free(&r);
            }
            if (torch) {
                torch_result q = run_torch(file, T, epochs, warmup);
                for (int v = 0; v < 2; v++)
                    if (q.ok[v]) { res[h][k][2 + v] = q.median_s[v]; cpu[h][k][2 + v] = q.cpu_s[v]; loss[h][k][2 + v] = q.loss[v]; }
                dlog[h][k] = q.diff_logits;
                dce[h][k] = q.diff_ce;
                chk[h][k] = q.check_ok;
            }
        }
    }
    if (!keep) remove(file);

    printf("\nsummary NoProp (median of %d epochs after %d warm-up; %lld images per epoch; ratio = torch s / nnlab s of the same "
           "variant, dt/bp = DT s / backprop s of the same engine, each ratio as wall/cpu; cpu = CPU s of the process, the ratios and GFLOP/s of both)\n",
           epochs, warmup, (long long)n_img);
    printf("%-5s %-7s %-9s %8s %8s %6s %8s %9s %6s %8s %7s %8s\n", "H", "threads", "engine", "epoch s", "cpu s", "dt/bp", "torch/nl",
           "GFLOP/s", "%peak", "cpu GF/s", "%peak", "loss");
    static const char *names[4] = {"nnlab dt", "nnlab bp", "torch dt", "torch bp"};
    for (int h = 0; h < nh; h++)
        for (int k = 0; k < nt; k++)
            for (int e = 0; e < 4; e++) {
                double s = res[h][k][e], sc = cpu[h][k][e];
                if (s <= 0) continue;
                char dtbp[32] = "", ratio[32] = "";
                if (!(e & 1) && res[h][k][e + 1] > 0)
                    snprintf(dtbp, sizeof dtbp, "%.2f/%.2f", s / res[h][k][e + 1], sc / cpu[h][k][e + 1]);
                if (e < 2 && res[h][k][e + 2] > 0)
                    snprintf(ratio, sizeof ratio, "%.2f/%.2f", res[h][k][e + 2] / s, cpu[h][k][e + 2] / sc);
                double g = gflop[h] / s, gc = sc > 0 ? gflop[h] / sc : 0;
                printf("%-5lld %-7d %-9s %8.3f %8.3f %6s %8s %9.2f %5.1f%% %8.2f %6.1f%% %8.4f\n", (long long)Hs[h], ts[k], names[e], s, sc,
                       dtbp, ratio, g, 100 * g / peak[k], gc, 100 * gc / peak[k], loss[h][k][e]);
            }
    if (torch)
        for (int h = 0; h < nh; h++)
            for (int k = 0; k < nt; k++)
                printf("CHECK H=%lld T=%d block-1 logits max|torch - nnlab| %.3g, chain CE |diff| %.3g (tolerance 1e-4: %s)\n",
                       (long long)Hs[h], ts[k], dlog[h][k], dce[h][k], chk[h][k] ? "ok" : "FAIL");
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    return 0;
}
