/* Tests of methods/bpv: config checks, retrieval metrics, Hamming search = brute force, training separates two
 * synthetic topics (the untrained model does not), every model kind trains, the baselines, the CLI (train, encode,
 * search, model file round trip) and its bad input: empty corpus, no in-vocabulary word, code length 0 / > 1024,
 * non-UTF-8 bytes (skipped and counted). */
#include "bpv/io.h"
#include "nltest.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_config(void) {
    nl_bpv_config c = nl_bpv_defaults();
    NLT_OK(nl_bpv_config_check(&c));
    c.bits = 0;
    NLT_CHECK(nl_bpv_config_check(&c) == NL_EINVAL && strstr(nl_last_error(), "code length"), "bits 0");
    c.bits = 1025;
    NLT_CHECK(nl_bpv_config_check(&c) == NL_EINVAL, "bits 1025");
    c.bits = 1024;
    NLT_OK(nl_bpv_config_check(&c));
}

static void test_metrics_and_search(void) {
    /* database codes 0b00, 0b01, 0b11, 0b10 with labels 0, 0, 1, 1; query 0b00 label 0: ranking by distance */
    uint64_t db[4] = {0, 1, 3, 2}, q[1] = {0};
    int32_t dl[4] = {0, 0, 1, 1}, ql[1] = {0};
    nl_bpv_eval ev;
    NLT_OK(nl_bpv_evaluate(q, ql, 1, db, dl, 4, 2, NULL, NULL, 0, 0, &ev));
    /* doc 0 (d 0) first; then docs 1 and 3 at d 1 in a fixed order; doc 2 (d 2) last */
    NLT_CHECK(ev.map > 0.8 && ev.map <= 1.0 && ev.queries == 1, "map %g", ev.map);
    NLT_NEAR(ev.p100, 0.5, 1e-12);
    /* re-ranking by real vectors that put both relevant documents first gives AP 1 */
    float qr[2] = {1, 0}, dr[8] = {1, 0, 0.9f, 0.1f, 0, 1, 0.1f, 0.9f};
    NLT_OK(nl_bpv_evaluate(q, ql, 1, db, dl, 4, 2, qr, dr, 2, 4, &ev));
    NLT_NEAR(ev.map, 1.0, 1e-12);
    /* search = brute force over 300 random 100-bit codes */
    nl_rng r;
    nl_rng_init(&r, 3, 0);
    uint64_t big[600], qq[2];
    for (int i = 0; i < 600; i++) big[i] = ((uint64_t)nl_rng_u32(&r) << 32 | nl_rng_u32(&r)) & (i % 2 ? 0xfffffffffull : ~0ull);
    qq[0] = big[10] ^ 5, qq[1] = big[11];
    int64_t idx[20];
    int dist[20];
    nl_bpv_search(qq, big, 300, 100, 20, idx, dist);
    NLT_CHECK(idx[0] == 5 && dist[0] == 2, "nearest %lld at %d", (long long)idx[0], dist[0]);
    for (int j = 1; j < 20; j++) {
        NLT_CHECK(dist[j] >= dist[j - 1], "ascending");
        int bf = __builtin_popcountll(qq[0] ^ big[2 * idx[j]]) + __builtin_popcountll(qq[1] ^ big[2 * idx[j] + 1]);
        NLT_CHECK(bf == dist[j], "distance %d vs brute force %d", dist[j], bf);
    }
    int worse = 0; /* nothing outside the top 20 is closer than the 20th */
    for (int i = 0; i < 300; i++) {
        int bf = __builtin_popcountll(qq[0] ^ big[2 * i]) + __builtin_popcountll(qq[1] ^ big[2 * i + 1]);
        worse += bf < dist[19];
    }
    NLT_CHECK(worse <= 19, "brute force finds %d closer", worse);
}

/* Two topics with disjoint vocabularies + shared function words; labels = topic. */
static void make_topics(nl_text_corpus *c, int n, uint64_t seed) {
    static const char *t0[] = {"whale", "shark", "fin", "gill", "reef", "tide", "salt", "coral"};
    static const char *t1[] = {"engine", "piston", "gear", "valve", "fuel", "torque", "shaft", "bolt"};
    static const char *fw[] = {"the", "of", "a", "and"};
    nl_rng r;
    nl_rng_init(&r, seed, 0);
    int32_t l0, l1;
    nl_text_corpus_label(c, "sea", &l0);
    nl_text_corpus_label(c, "machine", &l1);
    for (int i = 0; i < n; i++) {
        char buf[512] = {0};
        for (int w = 0; w < 12; w++) {
            strcat(buf, nl_rng_uniform(&r) < 0.4 ? fw[nl_rng_below(&r, 4)] : (i % 2 ? t1 : t0)[nl_rng_below(&r, 8)]);
            strcat(buf, " ");
        }
        nl_text_corpus_add(c, buf, strlen(buf), i % 2 ? l1 : l0, NL_TEXT_UTF8_SKIP, NULL);
    }
}

static void test_training_separates_topics(void) {
    nl_text_corpus c;
    NLT_OK(nl_text_corpus_init(&c));
    make_topics(&c, 400, 1);
    nl_text_vocab v, counts;
    nl_text_docs tr, te;
    NLT_OK(nl_text_vocab_prune(&c.dict, 1, 0, &v, NULL));
    NLT_OK(nl_text_docs_encode(&c, &v, 0, 1, 0, &tr, NULL));
    NLT_OK(nl_text_docs_encode(&c, &v, 1, 1, 0, &te, NULL));
    NLT_OK(nl_text_docs_vocab(&tr, &v, &counts));
    NLT_CHECK(te.n_docs > 10, "test docs %lld", (long long)te.n_docs);
    for (int kind = 0; kind < 3; kind++) {
        nl_bpv_config cfg = nl_bpv_defaults();
        cfg.kind = (nl_bpv_kind)kind, cfg.bits = 16, cfg.real_dim = 16, cfg.word_dim = 8, cfg.epochs = 10;
        cfg.infer_epochs = 10, cfg.subsample = 0;
        for (int untrained = 0; untrained < 2; untrained++) {
            if (untrained && kind) continue;
            nl_bpv_model m;
            nl_bpv_docvec dtr, dte;
            uint64_t *ctr, *cte;
            double loss = 0;
            if (untrained) NLT_OK(nl_bpv_init(&m, &cfg, &counts, tr.n_docs, &dtr));
            else NLT_OK(nl_bpv_train(&m, &cfg, &counts, &tr, &dtr, &loss));
            if (untrained) m.cfg.infer_epochs = 0;
            NLT_OK(nl_bpv_infer(&m, &te, 9, &dte));
            NLT_OK(nl_bpv_codes(&m, &dtr, &ctr));
            NLT_OK(nl_bpv_codes(&m, &dte, &cte));
            nl_bpv_eval ev;
            NLT_OK(nl_bpv_evaluate(cte, te.label, te.n_docs, ctr, tr.label, tr.n_docs, 16, NULL, NULL, 0, 0, &ev));
            printf("  kind %d %s: MAP %.3f (loss %.3f)\n", kind, untrained ? "untrained" : "trained", ev.map, loss);
            if (untrained) NLT_CHECK(ev.map < 0.7, "untrained MAP %g", ev.map);
            /* two topics carry one bit of information: the other bits stay unconstrained and add Hamming noise,
             * so a trained 16-bit code ranks well but not perfectly (about 0.86-0.98 here, 0.5 at chance) */
            else NLT_CHECK(ev.map > 0.8, "trained kind %d MAP %g", kind, ev.map);
            free(ctr), free(cte);
            nl_text_emb_free(&dtr), nl_text_emb_free(&dte);
            nl_bpv_free(&m);
        }
    }
    /* baselines separate the topics too (vocabularies are disjoint) */
    uint64_t *c0 = NULL, *c1 = NULL, **out[2] = {&c0, &c1};
    const nl_text_docs *sets[2] = {&tr, &te};
    nl_bpv_eval ev;
    NLT_OK(nl_bpv_lsh(&tr, v.n, 16, 1, sets, out, 2));
    NLT_OK(nl_bpv_evaluate(c1, te.label, te.n_docs, c0, tr.label, tr.n_docs, 16, NULL, NULL, 0, 0, &ev));
    printf("  lsh MAP %.3f\n", ev.map);
    NLT_CHECK(ev.map > 0.7, "lsh MAP %g", ev.map);
    free(c0), free(c1);
    nl_bpv_config ac = nl_bpv_defaults();
    ac.bits = 16, ac.epochs = 10;
    NLT_OK(nl_bpv_ae(&tr, &counts, 100, &ac, sets, out, 2));
    NLT_OK(nl_bpv_evaluate(c1, te.label, te.n_docs, c0, tr.label, tr.n_docs, 16, NULL, NULL, 0, 0, &ev));
    printf("  ae MAP %.3f\n", ev.map);
    NLT_CHECK(ev.map > 0.7, "ae MAP %g", ev.map);
    free(c0), free(c1);
    nl_text_docs_free(&tr), nl_text_docs_free(&te), nl_text_vocab_free(&v), nl_text_vocab_free(&counts);
    nl_text_corpus_free(&c);
}

static int run_cli(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4, const char *a5,
                   const char *a6, const char *a7) {
    char *argv[9] = {(char *)a0, (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5, (char *)a6, (char *)a7, NULL};
    int argc = 0;
    while (argc < 8 && argv[argc]) argc++;
    return nl_bpv_cli(argc, argv);
}

static void test_cli(void) {
    char dir[] = "/tmp/nl_bpv_XXXXXX", corpus[300], empty[300], model[300], bad[300];
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(corpus, sizeof corpus, "%s/c.txt", dir), snprintf(empty, sizeof empty, "%s/e.txt", dir);
    snprintf(model, sizeof model, "%s/m.bpv", dir), snprintf(bad, sizeof bad, "%s/b.txt", dir);
    FILE *f = fopen(corpus, "w");
    nl_text_corpus c;
    nl_text_corpus_init(&c);
    for (int i = 0; i < 200; i++) /* the topics corpus as text, with an invalid byte on every 10th line */
        fprintf(f, "%s%s\n", i % 2 ? "engine piston gear valve fuel the of" : "whale shark fin gill reef the of",
                i % 10 ? "" : " \xff\xfe tide");
    fclose(f);
    nl_text_corpus_free(&c);
    f = fopen(empty, "w");
    fprintf(f, " -- \n\n...\n");
    fclose(f);
    f = fopen(bad, "w");
    fprintf(f, "zzz qqq\n");
    fclose(f);
    NLT_CHECK(run_cli("train", "--corpus", corpus, "--out", model, "--bits", "16", "--epochs") == NL_CLI_USAGE,
              "missing value");
    NLT_CHECK(run_cli("train", "--corpus", corpus, "--out", model, "--bits", "16", NULL) == NL_CLI_OK, "train");
    NLT_CHECK(run_cli("encode", "--model", model, "--text", "whale \xc3\x28 shark reef", NULL, NULL, NULL) == NL_CLI_OK,
              "encode with an invalid byte (skipped)");
    NLT_CHECK(run_cli("search", "--model", model, "--query", "piston valve", "--top", "3", NULL) == NL_CLI_OK, "search");
    /* bad input */
    NLT_CHECK(run_cli("train", "--corpus", empty, "--out", model, NULL, NULL, NULL) == NL_CLI_FAIL, "empty corpus");
    NLT_CHECK(strstr(nl_last_error(), "empty") != NULL, "message: %s", nl_last_error());
    NLT_CHECK(run_cli("train", "--corpus", corpus, "--out", model, "--bits", "0", NULL) == NL_CLI_FAIL, "bits 0");
    NLT_CHECK(run_cli("train", "--corpus", corpus, "--out", model, "--bits", "1025", NULL) == NL_CLI_FAIL, "bits 1025");
    NLT_CHECK(strstr(nl_last_error(), "code length") != NULL, "message: %s", nl_last_error());
    NLT_CHECK(run_cli("encode", "--model", model, "--text", "zzz qqq", NULL, NULL, NULL) == NL_CLI_FAIL, "no vocab word");
    NLT_CHECK(strstr(nl_last_error(), "vocabulary") != NULL, "message: %s", nl_last_error());
    NLT_CHECK(run_cli("encode", "--model", model, "--file", bad, NULL, NULL, NULL) == NL_CLI_FAIL, "file: no vocab word");
    NLT_CHECK(run_cli("encode", "--model", model, "--text", "\xff\xfe", NULL, NULL, NULL) == NL_CLI_FAIL, "only bad bytes");
    NLT_CHECK(run_cli("encode", "--model", corpus, "--text", "whale", NULL, NULL, NULL) == NL_CLI_FAIL, "not a model");
    NLT_CHECK(run_cli("frobnicate", NULL, NULL, NULL, NULL, NULL, NULL, NULL) == NL_CLI_USAGE, "unknown subcommand");
    /* round trip: the file's codes are what the model gives */
    nl_bpv_file b;
    NLT_OK(nl_bpv_file_load(model, &b));
    NLT_CHECK(b.n_db == 200 && b.model.cfg.bits == 16 && !strncmp(b.text[0], "whale", 5), "model file: %lld docs",
              (long long)b.n_db);
    nl_bpv_file_free(&b);
    unlink(corpus), unlink(empty), unlink(model), unlink(bad), rmdir(dir);
}

int main(void) {
    nl_set_num_threads(1);
    NLT_RUN(test_config);
    NLT_RUN(test_metrics_and_search);
    NLT_RUN(test_training_separates_topics);
    NLT_RUN(test_cli);
    return nlt_finish();
}
