/* Tests of the dsg method: the sense layer (probabilities sum to one; finite-difference gradients of the
 * Gumbel-softmax and of the entropy term), S = 1 reproducing plain skip-gram bit for bit, the adjusted Rand index
 * and the AUC against hand-computed values, the WordNet synonym reader, a synthetic pseudoword that two senses
 * separate, and bad input through the command (empty corpus, invalid UTF-8, bad sense counts, unknown words). */
#include "dsg/dsg.h"
#include "nltest.h"
#include "nnlab/cli.h"
#include <unistd.h>

static void test_sense_probs(void) {
    nl_rng r;
    nl_rng_init(&r, 3, 0);
    for (int S = 1; S <= NL_DSG_MAX_SENSES; S += 3)
        for (int noise = 0; noise < 2; noise++)
            for (int rep = 0; rep < 5; rep++) {
                double l[NL_DSG_MAX_SENSES], g[NL_DSG_MAX_SENSES], y[NL_DSG_MAX_SENSES];
                for (int s = 0; s < S; s++) l[s] = 10 * nl_rng_normal(&r), g[s] = nl_rng_gumbel(&r);
                const double temp = rep == 0 ? 0.05 : rep == 1 ? 0.5 : 1 + rep;
                nl_dsg_sense_probs(l, noise ? g : NULL, temp, S, y);
                double sum = 0;
                int ok = 1;
                for (int s = 0; s < S; s++) sum += y[s], ok &= y[s] >= 0 && y[s] <= 1;
                NLT_NEAR(sum, 1.0, 1e-12);
                NLT_CHECK(ok, "S %d: a probability outside [0, 1]", S);
                if (S == 1) NLT_CHECK(y[0] == 1.0, "S = 1: y = %.17g, not exactly 1", y[0]);
            }
}

/* L(logits) = sum_s c_s y_s + a H(y), y = softmax((logits + g) / temp): the backward pass against central
 * differences */
static double sense_loss(const double *l, const double *g, double temp, int S, const double *c, double a) {
    double y[NL_DSG_MAX_SENSES], L = 0;
    nl_dsg_sense_probs(l, g, temp, S, y);
    for (int s = 0; s < S; s++) L += c[s] * y[s];
    return L + a * nl_dsg_entropy(y, S, NULL);
}

static void test_sense_gradients(void) {
    nl_rng r;
    nl_rng_init(&r, 5, 0);
    double worst = 0;
    for (int S = 2; S <= 7; S++)
        for (int rep = 0; rep < 4; rep++) {
            double l[NL_DSG_MAX_SENSES], g[NL_DSG_MAX_SENSES], c[NL_DSG_MAX_SENSES], y[NL_DSG_MAX_SENSES],
                dy[NL_DSG_MAX_SENSES], dh[NL_DSG_MAX_SENSES], dl[NL_DSG_MAX_SENSES];
            for (int s = 0; s < S; s++) l[s] = nl_rng_normal(&r), g[s] = nl_rng_gumbel(&r), c[s] = nl_rng_normal(&r);
            const double temp = rep % 2 ? 0.5 : 1.0, a = rep < 2 ? 0 : -0.1;
            const double *gn = rep == 3 ? NULL : g;
            nl_dsg_sense_probs(l, gn, temp, S, y);
            nl_dsg_entropy(y, S, dh);
            for (int s = 0; s < S; s++) dy[s] = c[s] + a * dh[s];
            nl_dsg_sense_backward(y, dy, temp, S, dl);
            for (int s = 0; s < S; s++) {
                const double h = 1e-6, keep = l[s];
                l[s] = keep + h;
                const double up = sense_loss(l, gn, temp, S, c, a);
                l[s] = keep - h;
                const double dn = sense_loss(l, gn, temp, S, c, a);
                l[s] = keep;
                const double fd = (up - dn) / (2 * h), err = fabs(fd - dl[s]) / (1e-6 + fabs(fd));
                if (err > worst) worst = err;
                NLT_CHECK(err < 1e-5, "S %d rep %d sense %d: analytic %.10g, finite difference %.10g", S, rep, s, dl[s], fd);
            }
        }
    printf("  sense layer: worst relative gradient error %.2e\n", worst);
}

static const char *g_dir = "/tmp";

/* a synthetic corpus file: topic-A documents (words a0..a7) and topic-B documents (b0..b7), each also containing
 * the token px; returns the path */
static const char *write_synthetic(char *path, size_t n, int docs) {
    snprintf(path, n, "%s/nl_test_dsg_%d.txt", g_dir, (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    nl_rng r;
    nl_rng_init(&r, 11, 0);
    for (int i = 0; i < docs; i++) {
        const char t = i % 2 ? 'b' : 'a';
        for (int k = 0; k < 12; k++) {
            if (k == 6) fprintf(f, "px ");
            fprintf(f, "%c%d ", t, (int)nl_rng_below(&r, 8));
        }
        fprintf(f, "\n");
    }
    fclose(f);
    return path;
}

static void test_s1_is_skipgram(void) {
    char path[256];
    if (!write_synthetic(path, sizeof path, 400)) {
        NLT_CHECK(0, "cannot write a temporary corpus");
        return;
    }
    nl_text_vocab v;
    nl_text_docs d;
    NLT_OK(nl_dsg_corpus(path, 0, 1, &v, &d, NULL));
    nl_dsg_config c = nl_dsg_defaults();
    c.senses = 1, c.dim = 12, c.window = 3, c.samples = 5, c.pre_epochs = 1, c.epochs = 2, c.subsample = 0.05, c.seed = 9;
    nl_dsg_model a, b;
    NLT_OK(nl_dsg_model_init(&a, v.n, c.dim, 1, c.seed));
    NLT_OK(nl_dsg_model_init(&b, v.n, c.dim, 1, c.seed));
    nl_dsg_stats sa, sb;
    NLT_OK(nl_dsg_sg_train(&a, &c, &d, &v, &sa));
    NLT_OK(nl_dsg_train(&b, &c, &d, &v, &sb));
    const size_t ne = (size_t)v.n * c.dim;
    NLT_CHECK(!memcmp(a.E.w, b.E.w, ne * sizeof(float)), "S = 1 DSG sense vectors differ from skip-gram's");
    NLT_CHECK(!memcmp(a.U.w, b.U.w, ne * sizeof(float)), "S = 1 DSG output vectors differ from skip-gram's");
    NLT_CHECK(!memcmp(a.b, b.b, (size_t)v.n * sizeof(float)), "S = 1 DSG output biases differ from skip-gram's");
    NLT_CHECK(sa.pairs == sb.pairs && sa.pairs > 1000 && sa.loss == sb.loss, "pairs %lld / %lld, loss %.9g / %.9g",
              (long long)sa.pairs, (long long)sb.pairs, sa.loss, sb.loss);
    double moved = 0;
    for (size_t k = 0; k < ne; k++) moved += fabs(a.U.w[k]);
    NLT_CHECK(moved > 0, "training did not move the output vectors");
    /* a different seed gives different vectors (the comparison above is not vacuous) */
    nl_dsg_model e;
    c.seed = 10;
    NLT_OK(nl_dsg_model_init(&e, v.n, c.dim, 1, c.seed));
    NLT_OK(nl_dsg_sg_train(&e, &c, &d, &v, NULL));
    NLT_CHECK(memcmp(a.E.w, e.E.w, ne * sizeof(float)), "seed 10 reproduced seed 9");
    /* skip-gram refuses more than one sense */
    c.senses = 2;
    NLT_CHECK(nl_dsg_sg_train(&e, &c, &d, &v, NULL) == NL_EINVAL, "sg_train accepted 2 senses");
    nl_dsg_model_free(&a), nl_dsg_model_free(&b), nl_dsg_model_free(&e);
    nl_text_docs_free(&d);
    nl_text_vocab_free(&v);
    remove(path);
}

/* px occurs in topic-A and topic-B documents: two senses should follow the topic */
static void test_synthetic_pseudoword(void) {
    char path[256];
    if (!write_synthetic(path, sizeof path, 2000)) {
        NLT_CHECK(0, "cannot write a temporary corpus");
        return;
    }
    nl_text_vocab v;
    nl_text_docs d;
    NLT_OK(nl_dsg_corpus(path, 0, 1, &v, &d, NULL));
    nl_dsg_config c = nl_dsg_defaults();
    c.senses = 2, c.dim = 16, c.window = 3, c.samples = 5, c.pre_epochs = 1, c.epochs = 3, c.subsample = 0, c.seed = 1;
    nl_dsg_model m;
    NLT_OK(nl_dsg_model_init(&m, v.n, c.dim, c.senses, c.seed));
    NLT_OK(nl_dsg_train(&m, &c, &d, &v, NULL));
    const int32_t px = nl_text_vocab_find(&v, "px", 2);
    int *truth = malloc((size_t)d.n_docs * sizeof *truth), *sense = malloc((size_t)d.n_docs * sizeof *sense);
    float ctx[16];
    double logits[2];
    int64_t n = 0;
    for (int64_t doc = 0; doc < d.n_docs; doc++)
        for (int64_t i = d.off[doc]; i < d.off[doc + 1]; i++)
            if (d.ids[i] == px) {
                nl_dsg_context(&m, &d, doc, i - d.off[doc], c.window, ctx);
                nl_dsg_logits(&m, px, ctx, logits);
                truth[n] = (int)(doc % 2), sense[n] = logits[1] > logits[0], n++;
            }
    const double ari = nl_dsg_ari(truth, sense, n, 2, 2);
    printf("  synthetic pseudoword: ARI %.3f over %lld occurrences\n", ari, (long long)n);
    NLT_CHECK(n == d.n_docs && ari >= 0.8, "ARI %.3f over %lld occurrences", ari, (long long)n);
    free(truth), free(sense);
    nl_dsg_model_free(&m);
    nl_text_docs_free(&d);
    nl_text_vocab_free(&v);
    remove(path);
}

static void test_ari_auc(void) {
    const int a[6] = {0, 0, 0, 1, 1, 1}, b[6] = {1, 1, 1, 0, 0, 0}, one[6] = {0}, c[4] = {0, 0, 1, 1}, e[4] = {0, 0, 1, 2};
    NLT_NEAR(nl_dsg_ari(a, b, 6, 2, 2), 1.0, 1e-12);    /* the same partition, other names */
    NLT_NEAR(nl_dsg_ari(a, one, 6, 2, 1), 0.0, 1e-12);  /* one cluster: 0 (skip-gram's value) */
    NLT_NEAR(nl_dsg_ari(c, e, 4, 2, 3), 4.0 / 7.0, 1e-12); /* sklearn adjusted_rand_score([0,0,1,1],[0,0,1,2]) */
    const int f[8] = {0, 0, 0, 1, 1, 1, 1, 1}, g[8] = {0, 0, 1, 1, 2, 2, 2, 0};
    NLT_NEAR(nl_dsg_ari(f, g, 8, 2, 3), 1.0 / 9.0, 1e-12); /* by hand: sum C(nij) 4, rows 13, columns 7, C(8, 2) 28 */
    NLT_CHECK(isnan(nl_dsg_ari(a, b, 1, 2, 2)), "n = 1 gave a number");
    const int bad[2] = {0, 5};
    NLT_CHECK(isnan(nl_dsg_ari(bad, bad, 2, 2, 2)), "a label out of range gave a number");
    const double p[3] = {0.9, 0.5, 0.5}, q[3] = {0.5, 0.1, 0.2};
    /* pairs: 0.9 beats all 3; each 0.5 beats 0.1, 0.2 and ties 0.5: 2.5 each -> (3 + 2.5 + 2.5) / 9 */
    NLT_NEAR(nl_dsg_auc(p, 3, q, 3), 8.0 / 9.0, 1e-12);
    NLT_NEAR(nl_dsg_auc(q, 3, p, 3), 1.0 / 9.0, 1e-12);
    NLT_CHECK(isnan(nl_dsg_auc(p, 0, q, 3)), "no positives gave a number");
}

static int64_t small_lookup(const char *w, void *ud) {
    (void)ud;
    static const char *const words[] = {"car", "auto", "automobile", "machine", "motorcar", "big", "large", "happy"};
    for (int i = 0; i < 8; i++)
        if (!strcmp(w, words[i])) return i;
    return -1;
}

static void test_wordnet(void) {
    int64_t *p, n;
    nl_status s = nl_dsg_wordnet_pairs(NULL, small_lookup, NULL, &p, &n);
    if (s == NL_ENOTFOUND) {
        printf("  wordnet-base not installed: %s\n", nl_last_error());
        NLT_CHECK(strstr(nl_last_error(), "wordnet-base") != NULL, "the message does not name the package");
        return;
    }
    NLT_OK(s);
    int car_auto = 0, big_large = 0, sorted = 1, happy = 0;
    for (int64_t i = 0; i < n; i++) {
        car_auto |= p[2 * i] == 0 && p[2 * i + 1] == 1;
        big_large |= p[2 * i] == 5 && p[2 * i + 1] == 6;
        happy |= p[2 * i] == 7 || p[2 * i + 1] == 7;
        sorted &= p[2 * i] < p[2 * i + 1] && (i == 0 || p[2 * i - 2] < p[2 * i] || (p[2 * i - 2] == p[2 * i] && p[2 * i - 1] < p[2 * i + 1]));
    }
    NLT_CHECK(car_auto && big_large, "car/auto %d, big/large (adjectives) %d", car_auto, big_large);
    NLT_CHECK(!happy, "happy paired with a non-synonym of the list");
    NLT_CHECK(sorted, "pairs not sorted, unique, a < b");
    free(p);
    NLT_CHECK(nl_dsg_wordnet_pairs("/nonexistent", small_lookup, NULL, &p, &n) == NL_ENOTFOUND, "missing dir accepted");
    NLT_CHECK(strstr(nl_last_error(), "wordnet-base") != NULL, "the message does not name the package: %s", nl_last_error());
}

static int run_cli(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4, const char *a5) {
    char *argv[8] = {(char *)a0, (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5, NULL, NULL};
    int argc = 0;
    while (argv[argc]) argc++;
    return nl_dsg_cli(argc, argv);
}

static void test_cli_bad_input(void) {
    char empty[256], bin[256], model[256], syn[256];
    snprintf(empty, sizeof empty, "%s/nl_test_dsg_empty_%d.txt", g_dir, (int)getpid());
    snprintf(bin, sizeof bin, "%s/nl_test_dsg_bin_%d.txt", g_dir, (int)getpid());
    snprintf(model, sizeof model, "%s/nl_test_dsg_model_%d.bin", g_dir, (int)getpid());
    FILE *f = fopen(empty, "w");
    if (f) fputs("\n  \n,,, ;\n", f), fclose(f);
    NLT_CHECK(run_cli("train", "--corpus", empty, "--quiet", NULL, NULL) == NL_CLI_FAIL, "an empty corpus did not fail");
    NLT_CHECK(strstr(nl_last_error(), "empty corpus") != NULL, "message: %s", nl_last_error());
    NLT_CHECK(run_cli("train", "--corpus", "/nonexistent/x.txt", "--quiet", NULL, NULL) == NL_CLI_FAIL, "a missing file did not fail");
    /* invalid UTF-8 bytes between words are skipped: the run trains */
    f = fopen(bin, "wb");
    for (int i = 0; f && i < 300; i++) fprintf(f, "alpha \xff\xfe beta gamma \xc3 delta alpha\x80 beta\n");
    if (f) fclose(f);
    NLT_CHECK(run_cli("train", "--corpus", bin, "--quiet", "--out", model) == NL_CLI_OK, "a corpus with invalid bytes failed: %s",
              nl_last_error());
    NLT_CHECK(run_cli("senses", "alpha", "--model", model, NULL, NULL) == NL_CLI_OK, "senses of a known word failed");
    NLT_CHECK(run_cli("senses", "zzzz", "--model", model, NULL, NULL) == NL_CLI_FAIL, "an unknown word did not fail");
    NLT_CHECK(run_cli("senses", "alpha", "--model", bin, NULL, NULL) == NL_CLI_FAIL, "a text file read as a model");
    NLT_CHECK(run_cli("senses", "alpha", NULL, NULL, NULL, NULL) == NL_CLI_USAGE, "no --model accepted");
    NLT_CHECK(run_cli("train", "--corpus", bin, "--senses", "0", "--quiet") == NL_CLI_FAIL, "0 senses accepted");
    NLT_CHECK(run_cli("train", "--corpus", bin, "--senses", "17", "--quiet") == NL_CLI_FAIL, "17 senses accepted");
    NLT_CHECK(run_cli("bogus", NULL, NULL, NULL, NULL, NULL) == NL_CLI_USAGE, "an unknown subcommand accepted");
    NLT_CHECK(run_cli("--help", NULL, NULL, NULL, NULL, NULL) == NL_CLI_OK, "--help failed");
    (void)syn;
    remove(empty), remove(bin), remove(model);
}

int main(void) {
    const char *t = getenv("TMPDIR");
    if (t && *t) g_dir = t;
    NLT_RUN(test_sense_probs);
    NLT_RUN(test_sense_gradients);
    NLT_RUN(test_ari_auc);
    NLT_RUN(test_wordnet);
    NLT_RUN(test_s1_is_skipgram);
    NLT_RUN(test_synthetic_pseudoword);
    NLT_RUN(test_cli_bad_input);
    return nlt_finish();
}
