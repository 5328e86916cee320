/* Tests of lib/text: tokeniser (UTF-8 policies), vocabulary, unigram table, corpora, losses (value and
 * finite-difference gradients of the graph ops; the fused kernels against the ops), TF-IDF. */
#include "nnlab/gradcheck.h"
#include "nnlab/nnlab.h"
#include "nltest.h"
#include "text/text.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct toks {
    int n;
    char t[32][NL_TEXT_MAX_TOKEN + 1];
} toks;
static nl_status collect(const char *tok, int len, void *ud) {
    toks *t = ud;
    if (t->n < 32) memcpy(t->t[t->n], tok, (size_t)len), t->t[t->n][len] = 0, t->n++;
    return NL_OK;
}

static void test_tokenize(void) {
    toks t = {0};
    int64_t bad = -1;
    const char *s = "Don't PANIC: the Caf\xc3\xa9 costs 42 -- 'quoted'";
    NLT_OK(nl_text_tokenize(s, strlen(s), NL_TEXT_UTF8_STRICT, collect, &t, &bad));
    NLT_CHECK(t.n == 7 && bad == 0, "%d tokens, %lld bad", t.n, (long long)bad);
    NLT_CHECK(!strcmp(t.t[0], "don't") && !strcmp(t.t[1], "panic") && !strcmp(t.t[3], "caf\xc3\xa9") &&
                  !strcmp(t.t[6], "quoted"),
              "tokens %s %s %s %s", t.t[0], t.t[1], t.t[3], t.t[6]);
    /* invalid bytes: a stray continuation, an overlong '/', a surrogate, a truncated sequence at the end */
    const char *b = "ab\x80" "cd \xc0\xaf x\xed\xa0\x80y z\xe2\x82";
    memset(&t, 0, sizeof t);
    NLT_OK(nl_text_tokenize(b, strlen(b), NL_TEXT_UTF8_SKIP, collect, &t, &bad));
    NLT_CHECK(t.n == 5 && bad == 8, "skip: %d tokens, %lld bad", t.n, (long long)bad);
    NLT_CHECK(!strcmp(t.t[0], "ab") && !strcmp(t.t[1], "cd") && !strcmp(t.t[4], "z"), "skip: %s %s %s", t.t[0],
              t.t[1], t.t[4]);
    memset(&t, 0, sizeof t);
    NLT_OK(nl_text_tokenize(b, strlen(b), NL_TEXT_UTF8_REPLACE, collect, &t, &bad));
    NLT_CHECK(t.n == 5 && bad == 8, "replace: %d tokens", t.n);
    NLT_CHECK(nl_text_tokenize(b, strlen(b), NL_TEXT_UTF8_STRICT, collect, &t, &bad) == NL_EFORMAT,
              "strict must fail");
    NLT_CHECK(strstr(nl_last_error(), "offset 2") != NULL, "message: %s", nl_last_error());
    /* long runs are cut at a code-point boundary */
    char lng[200];
    for (int i = 0; i < 100; i++) lng[2 * i] = (char)0xc3, lng[2 * i + 1] = (char)0xa9;
    memset(&t, 0, sizeof t);
    NLT_OK(nl_text_tokenize(lng, 200, NL_TEXT_UTF8_STRICT, collect, &t, &bad));
    NLT_CHECK(t.n == 1 && strlen(t.t[0]) == NL_TEXT_MAX_TOKEN, "long token %zu", strlen(t.t[0]));
}

static void test_vocab_and_table(void) {
    nl_text_vocab v, p;
    NLT_OK(nl_text_vocab_init(&v));
    char w[16];
    for (int k = 1; k < 30; k++) /* word wk appears k times */
        for (int j = 0; j < k; j++) {
            snprintf(w, sizeof w, "w%d", k);
            NLT_OK(nl_text_vocab_add(&v, w, (int)strlen(w), 1, NULL));
        }
    for (int i = 0; i < 2565; i++) { /* singletons; grow the hash table */
        snprintf(w, sizeof w, "s%d", i);
        NLT_OK(nl_text_vocab_add(&v, w, (int)strlen(w), 1, NULL));
    }
    NLT_CHECK(v.total == 3000, "total %lld", (long long)v.total);
    int32_t id = nl_text_vocab_find(&v, "w29", 3);
    NLT_CHECK(id >= 0 && v.count[id] == 29, "w29 count");
    int32_t *map = malloc(sizeof(int32_t) * (size_t)v.n);
    NLT_OK(nl_text_vocab_prune(&v, 2, 10, &p, map));
    NLT_CHECK(p.n == 10 && !strcmp(p.word[0], v.word[id]) && map[id] == 0, "prune: %d words, first %s", p.n,
              p.word[0]);
    for (int i = 1; i < p.n; i++) NLT_CHECK(p.count[i] <= p.count[i - 1], "sorted");
    float keep[10];
    nl_text_vocab_keep_prob(&p, 1e-3, keep);
    NLT_CHECK(keep[0] <= 1 && keep[0] > 0, "keep %g", keep[0]);
    nl_text_vocab_keep_prob(&p, 0, keep);
    NLT_CHECK(keep[9] == 1, "t=0 keeps all");
    nl_text_unigram u;
    NLT_OK(nl_text_unigram_build(&u, &p, 0.75, 100000));
    float q[10];
    nl_text_unigram_probs(&u, p.n, q);
    double z = 0;
    for (int i = 0; i < 10; i++) z += pow((double)p.count[i], 0.75);
    for (int i = 0; i < 10; i++) NLT_NEAR(q[i], pow((double)p.count[i], 0.75) / z, 2e-4);
    nl_text_unigram_free(&u);
    free(map);
    nl_text_vocab_free(&p), nl_text_vocab_free(&v);
}

static void test_corpus_tfidf(void) {
    nl_text_corpus c;
    NLT_OK(nl_text_corpus_init(&c));
    int32_t a, b;
    NLT_OK(nl_text_corpus_label(&c, "a", &a));
    NLT_OK(nl_text_corpus_label(&c, "b", &b));
    int added;
    NLT_OK(nl_text_corpus_add(&c, "cat dog cat", 11, a, NL_TEXT_UTF8_SKIP, &added));
    NLT_OK(nl_text_corpus_add(&c, " -- ", 4, a, NL_TEXT_UTF8_SKIP, &added));
    NLT_CHECK(added == 0 && c.n_docs == 1, "empty document skipped");
    NLT_OK(nl_text_corpus_add(&c, "dog fish\xff", 9, b, NL_TEXT_UTF8_SKIP, &added));
    NLT_OK(nl_text_corpus_add(&c, "zebra", 5, b, NL_TEXT_UTF8_SKIP, &added));
    NLT_CHECK(c.n_docs == 3 && c.n_bad_bytes == 1 && c.dict.n == 4, "docs %lld bad %lld", (long long)c.n_docs,
              (long long)c.n_bad_bytes);
    nl_text_vocab v;
    NLT_OK(nl_text_vocab_prune(&c.dict, 2, 0, &v, NULL)); /* cat, dog */
    nl_text_docs d;
    int64_t empty;
    NLT_OK(nl_text_docs_encode(&c, &v, 2, 1, 0, &d, &empty));
    NLT_CHECK(d.n_docs == 2 && empty == 1 && d.off[2] == 4, "encode: %lld docs, %lld empty", (long long)d.n_docs,
              (long long)empty);
    float idf[2];
    NLT_OK(nl_text_idf(&d, v.n, idf));
    int32_t ids[4];
    float w[4];
    int m = nl_text_tfidf_doc(&d, 0, idf, ids, w);
    int32_t cat = nl_text_vocab_find(&v, "cat", 3);
    NLT_NEAR(idf[cat], log(2.0), 1e-6);
    NLT_CHECK(m == 2, "tfidf pairs %d", m);
    for (int j = 0; j < m; j++) NLT_NEAR(w[j], ids[j] == cat ? 1.0 : 0.0, 1e-6); /* dog has idf 0 */
    nl_text_docs_free(&d), nl_text_vocab_free(&v), nl_text_corpus_free(&c);
}

typedef struct loss_ud {
    int kind, k;
    const int32_t *t, *s;
    const float *q;
} loss_ud;
static nl_var *f_loss(nl_ctx *c, nl_var **in, void *ud) {
    loss_ud *u = ud;
    return u->kind ? nl_text_ssm_loss(c, in[0], in[1], u->q, u->t, u->s, u->k)
                   : nl_text_ns_loss(c, in[0], in[1], u->t, u->s, u->k);
}

static void test_losses(void) {
    enum { B = 3, D = 4, V = 7, K = 3 };
    nl_rng r;
    nl_rng_init(&r, 5, 0);
    double hd[B * D], ud[V * D];
    for (int i = 0; i < B * D; i++) hd[i] = nl_rng_normal(&r);
    for (int i = 0; i < V * D; i++) ud[i] = nl_rng_normal(&r) * 0.7;
    int32_t t[B] = {1, 4, 6}, s[B * K] = {0, 2, 3, 5, 4, 1, 6, 0, 0}; /* row 1 samples its own target: skipped */
    float q[V] = {0.3f, 0.1f, 0.1f, 0.2f, 0.1f, 0.1f, 0.1f};
    for (int kind = 0; kind < 2; kind++) {
        int64_t sh[2] = {B, D}, su[2] = {V, D};
        nl_tensor in[2] = {nl_tensor_wrap(hd, NL_F64, 2, sh), nl_tensor_wrap(ud, NL_F64, 2, su)};
        loss_ud u = {kind, K, t, s, q};
        nl_gc_result res;
        nl_status st = nl_gradcheck(f_loss, &u, 2, in, NULL, 1e-6, 1e-9, 1e-6, &res);
        NLT_CHECK(st == NL_OK && res.checked == B * D + V * D, "gradcheck kind %d: %s", kind, nl_last_error());
        /* the fused kernel gives the same loss and dL/dh, and its SGD step equals U - lr * dL/dU */
        nl_ctx *c = nl_ctx_new(1 << 16, 0);
        nl_var *h = nl_leaf(c, in[0], 1), *U = nl_leaf(c, in[1], 1);
        nl_var *L = f_loss(c, (nl_var *[]){h, U}, &u);
        NLT_OK(nl_backward(c, L));
        nl_text_emb e = {V, D, malloc(sizeof(float) * V * D)};
        for (int i = 0; i < V * D; i++) e.w[i] = (float)ud[i];
        double tot = 0;
        for (int b = 0; b < B; b++) {
            float hf[D], gh[D] = {0};
            for (int d = 0; d < D; d++) hf[d] = (float)hd[b * D + d];
            tot += kind ? nl_text_ssm_step(hf, &e, NULL, q, t[b], s + b * K, K, 0, gh)
                        : nl_text_ns_step(hf, &e, t[b], s + b * K, K, 0, gh);
            for (int d = 0; d < D; d++) NLT_NEAR(gh[d] / B, ((double *)h->grad.data)[b * D + d], 1e-5);
        }
        NLT_NEAR(tot / B, *(double *)L->val.data, 1e-5);
        float hf[D], lr = 0.1f;
        for (int d = 0; d < D; d++) hf[d] = (float)hd[d];
        if (kind) nl_text_ssm_step(hf, &e, NULL, q, t[0], s, K, lr, NULL);
        else nl_text_ns_step(hf, &e, t[0], s, K, lr, NULL);
        /* rows 2 and 3 are touched only by batch row 0 */
        for (int d = 0; d < 2 * D; d++)
            NLT_NEAR(e.w[2 * D + d], ud[2 * D + d] - lr * B * ((double *)U->grad.data)[2 * D + d], 1e-5);
        free(e.w);
        nl_ctx_free(c);
    }
    int64_t sh[2] = {2, 3}, su[2] = {4, 2};
    double z[8] = {0};
    nl_ctx *c = nl_ctx_new(1 << 12, 0);
    nl_var *h = nl_leaf(c, nl_tensor_wrap(z, NL_F64, 2, sh), 1), *U = nl_leaf(c, nl_tensor_wrap(z, NL_F64, 2, su), 1);
    NLT_CHECK(nl_text_ns_loss(c, h, U, t, s, 1) == NULL, "shape mismatch rejected");
    nl_ctx_free(c);
}

static void test_missing_package(void) {
    nl_text_corpus c;
    NLT_OK(nl_text_corpus_init(&c));
    const char *dom[1] = {"Zool"};
    NLT_CHECK(nl_text_read_gcide(&c, "/nonexistent/gcide.dict.dz", dom, 1, 0) == NL_ENOTFOUND, "gcide missing");
    NLT_CHECK(strstr(nl_last_error(), "dict-gcide") != NULL, "names the package: %s", nl_last_error());
    NLT_CHECK(nl_text_read_fortunes(&c, "/nonexistent/fortunes", 1) == NL_ENOTFOUND, "fortunes missing");
    NLT_CHECK(strstr(nl_last_error(), "fortunes") != NULL, "names the package: %s", nl_last_error());
    nl_text_corpus_free(&c);
}

static void test_installed_corpora(void) {
    nl_text_corpus c;
    NLT_OK(nl_text_corpus_init(&c));
    const char *dom[6] = {"Zool", "Bot", "Chem", "Med", "Anat", "Naut"};
    nl_status st = nl_text_read_gcide(&c, NULL, dom, 6, 0);
    if (st == NL_ENOTFOUND) printf("  (dict-gcide not installed: %s)\n", nl_last_error());
    else {
        NLT_OK(st);
        int64_t per[6] = {0}, test = 0;
        for (int64_t i = 0; i < c.n_docs; i++) per[c.label[i]]++, test += c.test[i];
        printf("  gcide: %lld tagged definitions (Zool %lld, Bot %lld, Chem %lld, Med %lld, Anat %lld, Naut %lld), "
               "%lld test\n", (long long)c.n_docs, (long long)per[0], (long long)per[1], (long long)per[2],
               (long long)per[3], (long long)per[4], (long long)per[5], (long long)test);
        NLT_CHECK(c.n_docs > 15000 && per[5] > 800 && test > c.n_docs / 20 && test < c.n_docs / 6, "gcide sizes");
    }
    nl_text_corpus_free(&c);
    NLT_OK(nl_text_corpus_init(&c));
    st = nl_text_read_fortunes(&c, NULL, 50);
    if (st == NL_ENOTFOUND) printf("  (fortunes not installed)\n");
    else {
        NLT_OK(st);
        printf("  fortunes: %lld texts in %d categories\n", (long long)c.n_docs, c.n_labels);
        NLT_CHECK(c.n_docs > 5000 && c.n_labels >= 20, "fortunes sizes");
    }
    nl_text_corpus_free(&c);
}

int main(void) {
    nl_set_num_threads(1);
    NLT_RUN(test_tokenize);
    NLT_RUN(test_vocab_and_table);
    NLT_RUN(test_corpus_tfidf);
    NLT_RUN(test_losses);
    NLT_RUN(test_missing_package);
    NLT_RUN(test_installed_corpora);
    return nlt_finish();
}
