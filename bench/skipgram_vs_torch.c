/* bench/skipgram_vs_torch.c — skip-gram training words/s, nnlab vs PyTorch, in the same run.
 *
 * Model (methods/dsg, nl_dsg_sg_train): skip-gram with sampled softmax, d 100, 64 samples per pair from the
 * unigram^0.75 table with the -log q correction, window 5, SGD 0.1 with linear decay, one epoch. Data: the King James
 * Bible (bible-kjv-text; one document per verse), vocabulary of the words seen 5 times or more, subsampled once here
 * (t = 1e-4, seed 1) so that both sides train on the very same token stream (the trainers' own subsampling is off).
 * nnlab: fused per-pair SGD, one thread (the trainer is sequential at every thread count). PyTorch
 * (bench/skipgram_vs_torch.py): the idiomatic form, minibatches of 1024 pairs, sparse embeddings, gather + bmm,
 * optim.SGD; same pairs, same sampling distribution. words/s = tokens of the stream / training seconds.
 *
 * Timing: median of `repeats` runs per side (fresh model each), after one untimed nnlab warmup epoch on the first
 * 2000 verses; wall and process CPU seconds.
 * Usage: bench_skipgram_vs_torch [--repeats N] [--dim D] [--samples K] [--no-torch]
 * Env: NLB_THREADS (default "1,2"; the torch side's threads), NL_SOURCE_DIR (to find the .py). */
#include "bench_util.h"
#include "dsg/dsg.h"
#include <time.h>

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double nnlab_run(const nl_text_docs *d, const nl_text_vocab *v, int32_t dim, int k, double *cpu) {
    nl_dsg_config c = nl_dsg_defaults();
    c.senses = 1, c.dim = dim, c.samples = k, c.window = 5, c.lr = 0.1, c.pre_epochs = 0, c.epochs = 1, c.subsample = 0;
    nl_dsg_model m;
    nl_dsg_stats st;
    NLB_CHECK(nl_dsg_model_init(&m, v->n, dim, 1, 1) == NL_OK);
    double c0 = cpu_now();
    NLB_CHECK(nl_dsg_sg_train(&m, &c, d, v, &st) == NL_OK);
    if (cpu) *cpu = cpu_now() - c0;
    nl_dsg_model_free(&m);
    return st.seconds;
}

int main(int argc, char **argv) {
    int repeats = 1, torch = 1, k = 64;
    int32_t dim = 100;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dim") && i + 1 < argc) dim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--samples") && i + 1 < argc) k = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else { fprintf(stderr, "usage: %s [--repeats N] [--dim D] [--samples K] [--no-torch]\n", argv[0]); return 2; }
    }
    if (repeats < 1) repeats = 1;
    if (repeats > 32) repeats = 32;
    nl_text_vocab v;
    nl_text_docs full, d;
    if (nl_dsg_corpus("kjv", 0, 5, &v, &full, NULL)) {
        fprintf(stderr, "skipgram_vs_torch: %s\n", nl_last_error());
        return 1;
    }
    /* subsample once (t = 1e-4, seed 1): both sides get this stream */
    float *keep = malloc((size_t)v.n * sizeof *keep), *q = malloc((size_t)v.n * sizeof *q); /* [V], [V] */
    NLB_CHECK(keep && q);
    nl_text_vocab_keep_prob(&v, 1e-4, keep);
    memset(&d, 0, sizeof d);
    d.n_docs = full.n_docs;
    NLB_CHECK((d.off = calloc((size_t)full.n_docs + 1, sizeof *d.off)) && (d.ids = malloc((size_t)full.off[full.n_docs] * sizeof *d.ids)));
    nl_rng r;
    nl_rng_init(&r, 1, 0);
    for (int64_t doc = 0; doc < full.n_docs; doc++) {
        d.off[doc + 1] = d.off[doc];
        for (int64_t i = full.off[doc]; i < full.off[doc + 1]; i++)
            if (keep[full.ids[i]] >= 1 || nl_rng_uniform(&r) < keep[full.ids[i]]) d.ids[d.off[doc + 1]++] = full.ids[i];
    }
    nl_text_unigram tab;
    NLB_CHECK(nl_text_unigram_build(&tab, &v, 0.75, 1 << 20) == NL_OK); /* the trainer's table */
    nl_text_unigram_probs(&tab, v.n, q);
    nl_text_unigram_free(&tab);
    const int64_t words = d.off[d.n_docs];
    char path[256];
    snprintf(path, sizeof path, "%s/nl_bench_skipgram_%d.bin", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    FILE *f = fopen(path, "wb");
    NLB_CHECK(f);
    int64_t hdr[3] = {d.n_docs, words, v.n};
    NLB_CHECK(fwrite(hdr, sizeof *hdr, 3, f) == 3 && fwrite(d.off, sizeof *d.off, (size_t)d.n_docs + 1, f) == (size_t)d.n_docs + 1 &&
              fwrite(d.ids, sizeof *d.ids, (size_t)words, f) == (size_t)words && fwrite(q, sizeof *q, (size_t)v.n, f) == (size_t)v.n);
    fclose(f);
    int ts[8];
    int nt = nlb_thread_list(ts, 8);
    char title[256];
    snprintf(title, sizeof title, "skip-gram, sampled softmax %d, d %d, window 5, SGD 0.1, one epoch of KJV (%lld tokens after "
             "subsampling): words/s, nnlab vs PyTorch", k, (int)dim, (long long)words);
    nlb_header(title);
    double nl_s = 0, nl_c = 0, t_s[8] = {0}, t_c[8] = {0};
    { /* nnlab: sequential, measured once at one thread */
        nlb_set_threads(1);
        nl_text_docs warm = d;
        warm.n_docs = d.n_docs < 2000 ? d.n_docs : 2000;
        nnlab_run(&warm, &v, dim, k, NULL);
        double t[32], cs[32];
        for (int i = 0; i < repeats; i++) t[i] = nnlab_run(&d, &v, dim, k, &cs[i]);
        nl_s = nlb_median(t, repeats), nl_c = nlb_median(cs, repeats);
        printf("NNLAB_SKIPGRAM threads=1 words=%lld median_s=%.6f cpu_s=%.6f words_per_s=%.1f (load %.2f)\n", (long long)words,
               nl_s, nl_c, words / nl_s, nlb_loadavg());
        fflush(stdout);
    }
    for (int j = 0; torch && j < nt; j++) {
        char args[512];
        snprintf(args, sizeof args, "--repeats %d --data '%s' --dim %d --samples %d", repeats, path, (int)dim, k);
        FILE *p = nlb_python_open("skipgram_vs_torch.py", ts[j], args);
        char line[1024];
        while (p && fgets(line, sizeof line, p)) {
            fputs(line, stdout);
            const char *x = strstr(line, "TORCH_SKIPGRAM "), *mq = x ? strstr(x, "median_s=") : NULL, *cq = x ? strstr(x, "cpu_s=") : NULL;
            if (mq && cq) t_s[j] = atof(mq + 9), t_c[j] = atof(cq + 6);
        }
        if (p && pclose(p) != 0) fprintf(stderr, "torch side exited with an error\n");
    }
    remove(path);
    printf("\nsummary skip-gram training (median of %d runs; words/s from wall and from process CPU seconds)\n", repeats);
    printf("%-7s %-6s %12s %14s %9s %9s\n", "threads", "engine", "words/s", "words/CPU-s", "nl/torch", "nl/t CPU");
    printf("%-7d %-6s %12.0f %14.0f\n", 1, "nnlab", words / nl_s, nl_c > 0 ? words / nl_c : 0.0);
    for (int j = 0; j < nt; j++) {
        if (t_s[j] <= 0) continue;
        printf("%-7d %-6s %12.0f %14.0f %9.2f %9.2f\n", ts[j], "torch", words / t_s[j], t_c[j] > 0 ? words / t_c[j] : 0.0,
               t_s[j] / nl_s, t_c[j] > 0 && nl_c > 0 ? t_c[j] / nl_c : 0.0);
        printf("RATIO_T%d=%.3f  (nnlab words/s at 1 thread / torch words/s at %d)\n", ts[j], t_s[j] / nl_s, ts[j]);
    }
    free(keep), free(q), free(d.off), free(d.ids);
    nl_text_docs_free(&full);
    nl_text_vocab_free(&v);
    return 0;
}
