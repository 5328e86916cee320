/* lib/graph: graphs from edge lists and their checks, splits, the normalised adjacencies against their dense
 * formulas, finite-difference gradients of the GCN / SAGE / GAT layers (sparse and dense inputs, one and several
 * heads), training on the karate club, the WordNet parser (a synthetic file, corrupt and truncated copies, the
 * missing-package error, and the real file when wordnet-base is installed), and the command's bad input. */
#include "nltest.h"
#include "graph/graph.h"
#include <unistd.h>

static void fill_t(nl_tensor *t, uint64_t seed, double lo, double hi) {
    nl_rng r;
    nl_rng_init(&r, seed, 77);
    nl_rng_fill_uniform(&r, t, lo, hi);
}
static nl_tensor mk2(nl_dtype dt, int64_t a, int64_t b) {
    int64_t s[2] = {a, b};
    const int64_t n = b ? a * b : a; /* b == 0: a vector [a] */
    return nl_tensor_wrap(calloc((size_t)(n ? n : 1), nl_dtype_size(dt)), dt, b ? 2 : 1, s);
}

/* ---------------- graphs ---------------- */
static void test_karate(void) {
    nl_graph g;
    NLT_OK(nl_graph_karate(&g));
    NLT_CHECK(g.n == 34 && g.n_edges == 78 && g.adj.nnz == 156 && g.num_classes == 2 && g.n_feat == 34, "karate sizes %lld %lld",
              (long long)g.n, (long long)g.n_edges);
    nl_graph_stats s;
    nl_graph_get_stats(&g, &s);
    NLT_CHECK(s.class_size[0] == 17 && s.class_size[1] == 17, "factions 17/17: %lld/%lld", (long long)s.class_size[0], (long long)s.class_size[1]);
    /* degrees: member 0 (Mr. Hi) 16, member 33 (the officer) 17 */
    NLT_CHECK(g.adj.row_ptr[1] - g.adj.row_ptr[0] == 16 && g.adj.row_ptr[34] - g.adj.row_ptr[33] == 17, "degrees");
    /* 11 of the 78 friendships cross the factions (counted from the matrix in networkx's social.py) */
    NLT_NEAR(s.homophily, 67.0 / 78.0, 1e-12);
    NLT_OK(nl_graph_split(&g, 3, 64));
    nl_graph_get_stats(&g, &s);
    NLT_CHECK(s.n_train == 21 && s.n_val == 6 && s.n_test == 7, "split 21/6/7: %lld/%lld/%lld", (long long)s.n_train, (long long)s.n_val,
              (long long)s.n_test);
    uint8_t tr64[34], va64[34], te64[34];
    memcpy(tr64, g.train, 34), memcpy(va64, g.val, 34), memcpy(te64, g.test, 34);
    NLT_OK(nl_graph_split(&g, 3, 5));
    int sub = 1, ntr = 0;
    for (int i = 0; i < 34; i++) {
        sub &= !g.train[i] || tr64[i];
        ntr += g.train[i];
        NLT_CHECK(g.val[i] == va64[i] && g.test[i] == te64[i], "the 5%% split keeps val and test");
        NLT_CHECK(g.train[i] + g.val[i] + g.test[i] <= 1, "disjoint");
    }
    NLT_CHECK(sub && ntr == 1, "5%% train is a subset of the 64%% train (%d nodes)", ntr);
    NLT_CHECK(nl_graph_split(&g, 3, 65) == NL_EINVAL && nl_graph_split(&g, 3, 0) == NL_EINVAL, "split range");
    nl_graph_free(&g);
}

static void test_graph_errors(void) {
    nl_graph g;
    const int64_t e[] = {0, 1, 1, 0, 2, 2, 1, 2, 2, 1};
    NLT_OK(nl_graph_from_edges(&g, "t", 4, 5, e));
    NLT_CHECK(g.n_edges == 2 && g.adj.nnz == 4, "duplicates and both directions merge, self loop dropped: %lld", (long long)g.n_edges);
    const int32_t y_empty[4] = {0, 0, 2, 2};
    NLT_CHECK(nl_graph_set_labels(&g, y_empty, 3) == NL_EINVAL && strstr(nl_last_error(), "class 1 of 3 is empty"), "empty class: %s",
              nl_last_error());
    const int32_t y_bad[4] = {0, 3, 1, 1};
    NLT_CHECK(nl_graph_set_labels(&g, y_bad, 3) == NL_EINVAL && strstr(nl_last_error(), "node 1 has label 3"), "label range");
    nl_graph_free(&g);
    const int64_t e2[] = {0, 1, 1, 4};
    NLT_CHECK(nl_graph_from_edges(&g, "t", 4, 2, e2) == NL_EINVAL && strstr(nl_last_error(), "edge 1 (1, 4) has node id 4 outside [0, 4)"),
              "out of range: %s", nl_last_error());
    const int64_t e3[] = {-1, 1};
    NLT_CHECK(nl_graph_from_edges(&g, "t", 4, 1, e3) == NL_EINVAL, "negative id");
    NLT_CHECK(g.adj.row_ptr == NULL, "nothing allocated on error");
    nl_graph_config cfg = nl_graph_defaults(NL_GRAPH_GCN);
    nl_graph_result r;
    NLT_OK(nl_graph_karate(&g));
    NLT_CHECK(nl_graph_train(&g, &cfg, &r) == NL_ESTATE, "no split");
    NLT_OK(nl_graph_split(&g, 1, 64));
    cfg.layers = 0;
    NLT_CHECK(nl_graph_train(&g, &cfg, &r) == NL_EINVAL && strstr(nl_last_error(), "layers 0"), "layers 0: %s", nl_last_error());
    nl_graph_kind k;
    NLT_CHECK(nl_graph_parse_kind("gin", &k) == NL_EINVAL && strstr(nl_last_error(), "unknown model 'gin'"), "unknown model");
    nl_graph_free(&g);
}

static void test_normalisations(void) {
    nl_graph g;
    NLT_OK(nl_graph_karate(&g));
    nl_csr a, m, l;
    NLT_OK(nl_graph_norm_adj(&g.adj, &a));
    NLT_OK(nl_graph_mean_adj(&g.adj, &m));
    NLT_OK(nl_graph_self_loops(&g.adj, &l));
    double *A = malloc(34 * 34 * sizeof *A), *D = malloc(34 * 34 * sizeof *D), deg[34];
    nl_csr_to_dense(&g.adj, A);
    for (int i = 0; i < 34; i++) {
        deg[i] = 1;
        for (int j = 0; j < 34; j++) deg[i] += A[i * 34 + j];
    }
    nl_csr_to_dense(&a, D);
    double err = 0;
    for (int i = 0; i < 34; i++)
        for (int j = 0; j < 34; j++) err = fmax(err, fabs(D[i * 34 + j] - ((i == j) + A[i * 34 + j]) / sqrt(deg[i] * deg[j])));
    NLT_CHECK(err < 1e-15, "D^-1/2 (A+I) D^-1/2: max error %g", err);
    nl_csr_to_dense(&m, D);
    err = 0;
    for (int i = 0; i < 34; i++)
        for (int j = 0; j < 34; j++) err = fmax(err, fabs(D[i * 34 + j] - A[i * 34 + j] / (deg[i] - 1)));
    NLT_CHECK(err < 1e-15, "D^-1 A: max error %g", err);
    nl_csr_to_dense(&l, D);
    err = 0;
    for (int i = 0; i < 34; i++)
        for (int j = 0; j < 34; j++) err = fmax(err, fabs(D[i * 34 + j] - (A[i * 34 + j] + (i == j))));
    NLT_CHECK(err == 0 && l.nnz == 156 + 34, "A + I");
    free(A), free(D);
    nl_csr_free(&a), nl_csr_free(&m), nl_csr_free(&l);
    nl_graph_free(&g);
}

/* ---------------- layer gradients ---------------- */
typedef struct { const nl_csr *A, *xs; int kind, heads, concat, dense; } lay_args;
/* inputs: [0] h (dense) or unused, [1] W, [2] b, [3] W_neigh / a_src, [4] a_dst */
static nl_var *f_layer(nl_ctx *c, nl_var **in, void *ud) {
    lay_args *a = ud;
    const nl_csr *xs = a->dense ? NULL : a->xs;
    nl_var *h = a->dense ? in[0] : NULL;
    if (a->kind == NL_GRAPH_GCN) return nl_graph_gcn(c, a->A, xs, h, in[1], in[2]);
    if (a->kind == NL_GRAPH_SAGE) return nl_graph_sage(c, a->A, xs, h, in[1], in[3], in[2]);
    return nl_graph_gat(c, a->A, xs, h, in[1], in[3], in[4], in[2], a->heads, a->concat);
}

static void layer_gc(const char *what, lay_args *a, int64_t in_dim, int64_t out_w, int64_t att_f, int heads, int64_t b_w) {
    const int64_t n = a->A->rows;
    nl_tensor t[5] = {mk2(NL_F64, n, in_dim), mk2(NL_F64, in_dim, out_w), mk2(NL_F64, b_w, 0), mk2(NL_F64, a->kind == NL_GRAPH_SAGE ? in_dim : heads,
                                                                                                  a->kind == NL_GRAPH_SAGE ? out_w : att_f),
                      mk2(NL_F64, heads, att_f)};
    for (int k = 0; k < 5; k++) fill_t(&t[k], 10 + k, -1, 1);
    int wrt[5] = {a->dense, 1, 1, a->kind != NL_GRAPH_GCN, a->kind == NL_GRAPH_GAT};
    nl_gc_result r;
    nl_status s = nl_gradcheck(f_layer, a, 5, t, wrt, 1e-6, 1e-8, 1e-6, &r);
    NLT_CHECK(s == NL_OK && r.checked > 0, "%s: %s (checked %lld, max abs err %.3g)", what, nl_last_error(), (long long)r.checked, r.max_abs_err);
    for (int k = 0; k < 5; k++) free(t[k].data);
}

static void test_layer_grads(void) {
    /* a 7-node graph with an isolated node (6), and sparse 5-dim features (node 3 has none) */
    const int64_t e[] = {0, 1, 1, 2, 2, 0, 2, 3, 3, 4, 4, 5, 5, 3};
    nl_graph g;
    NLT_OK(nl_graph_from_edges(&g, "g7", 7, 7, e));
    const int64_t fr[] = {0, 0, 1, 2, 4, 4, 5, 6}, fc[] = {0, 3, 1, 4, 2, 0, 3, 1};
    const double fv[] = {0.5, 0.5, 1, 1, 0.3, 0.7, 1, 1};
    nl_csr xs, ahat, mean, loops;
    NLT_OK(nl_csr_from_coo(&xs, 7, 5, 8, fr, fc, fv));
    NLT_OK(nl_graph_norm_adj(&g.adj, &ahat));
    NLT_OK(nl_graph_mean_adj(&g.adj, &mean));
    NLT_OK(nl_graph_self_loops(&g.adj, &loops));
    for (int dense = 0; dense <= 1; dense++) {
        lay_args a = {&ahat, &xs, NL_GRAPH_GCN, 1, 1, dense};
        layer_gc(dense ? "gcn dense" : "gcn sparse", &a, 5, 3, 0, 1, 3);
        a.A = &mean, a.kind = NL_GRAPH_SAGE;
        layer_gc(dense ? "sage dense" : "sage sparse", &a, 5, 3, 0, 1, 3);
        a.A = &loops, a.kind = NL_GRAPH_GAT;
        layer_gc(dense ? "gat 1 head dense" : "gat 1 head sparse", &a, 5, 3, 3, 1, 3);
        a.heads = 3;
        layer_gc(dense ? "gat 3 heads concat dense" : "gat 3 heads concat sparse", &a, 5, 6, 2, 3, 6);
        a.concat = 0;
        layer_gc(dense ? "gat 3 heads mean dense" : "gat 3 heads mean sparse", &a, 5, 6, 2, 3, 2);
    }
    /* GAT value check: with a = 0 every neighbour (and the node itself) gets the same weight: out = mean over
     * the closed neighbourhood of x W */
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_tensor h = mk2(NL_F64, 7, 5), W = mk2(NL_F64, 5, 4), az = mk2(NL_F64, 2, 2);
    fill_t(&h, 1, -1, 1), fill_t(&W, 2, -1, 1);
    nl_var *o = nl_graph_gat(c, &loops, NULL, nl_input(c, h), nl_input(c, W), nl_input(c, az), nl_input(c, az), NULL, 2, 1);
    nl_var *z = nl_matmul(c, nl_input(c, h), nl_input(c, W));
    double err = 0;
    for (int i = 0; i < 7; i++)
        for (int f = 0; f < 4; f++) {
            double s = 0;
            for (int64_t k = loops.row_ptr[i]; k < loops.row_ptr[i + 1]; k++) s += nl_tensor_get(&z->val, loops.col_idx[k] * 4 + f);
            err = fmax(err, fabs(nl_tensor_get(&o->val, i * 4 + f) - s / (double)(loops.row_ptr[i + 1] - loops.row_ptr[i])));
        }
    NLT_CHECK(err < 1e-14, "uniform attention = neighbourhood mean (err %g)", err);
    NLT_CHECK(!nl_graph_gat(c, &loops, NULL, nl_input(c, h), nl_input(c, W), nl_input(c, az), nl_input(c, az), NULL, 3, 1) &&
                  strstr(nl_last_error(), "do not split into 3 heads"), "heads must divide");
    NLT_CHECK(!nl_graph_gcn(c, &ahat, &xs, nl_input(c, h), nl_input(c, W), NULL), "two inputs rejected");
    nl_ctx_free(c);
    free(h.data), free(W.data), free(az.data);
    nl_csr_free(&xs), nl_csr_free(&ahat), nl_csr_free(&mean), nl_csr_free(&loops);
    nl_graph_free(&g);
}

/* ---------------- training ---------------- */
static void test_train_karate(void) {
    nl_graph g;
    NLT_OK(nl_graph_karate(&g));
    NLT_OK(nl_graph_split(&g, 1, 64));
    for (int k = 0; k <= NL_GRAPH_GAT; k++) {
        nl_graph_config cfg = nl_graph_defaults((nl_graph_kind)k);
        cfg.hidden = 16, cfg.heads = 4, cfg.max_epochs = 100, cfg.patience = 100; /* all 100 epochs run */
        nl_graph_result r, r2;
        NLT_OK(nl_graph_train(&g, &cfg, &r));
        NLT_OK(nl_graph_train(&g, &cfg, &r2));
        printf("  karate %-4s: test %.3f val %.3f train %.3f (best epoch %d of %d; last train %.3f)\n", nl_graph_kind_name(k), r.test_acc,
               r.val_acc, r.train_acc, r.best_epoch, r.epochs, r.last_train_acc);
        NLT_CHECK(r.test_acc == r2.test_acc && r.best_epoch == r2.best_epoch, "%s: same seed, same result", nl_graph_kind_name(k));
        NLT_CHECK(r.epochs >= r.best_epoch && r.epochs <= cfg.max_epochs && r.best_epoch >= 1, "epochs");
        NLT_CHECK(r.epochs == 100 && r.last_train_acc >= 0.9, "%s fits its 21 training nodes in 100 epochs (train accuracy %.3f)",
                  nl_graph_kind_name(k), r.last_train_acc);
    }
    nl_graph_free(&g);
}

/* ---------------- WordNet ---------------- */
/* a data.noun-like file: a header line, then synsets whose offsets are their byte offsets (fixed-width fields) */
static void write_synth(const char *path, int corrupt) {
    const char *body[4] = {
        "%08d 03 n 01 thing 0 002 ~ %08d n 0000 ~ %08d n 0000 | a separate and self-contained entity  \n",
        "%08d 05 n 02 dog 0 domestic_dog 0 002 @ %08d n 0000 + 01234567 v 0101 | a domesticated dog; the dog barked  \n",
        "%08d 05 n 01 cat 0 001 @i %08d n 0000 | a small domesticated feline  \n",
        "%08d 07 n 01 joy 0 000 | the emotion of great happiness  \n"};
    char lines[4][256], tmp[256];
    int64_t off[4], at = 0;
    const char *head = "  1 This is a header line\n";
    at = (int64_t)strlen(head);
    for (int k = 0; k < 4; k++) { /* offsets are fixed width: the line lengths do not depend on them */
        off[k] = at;
        snprintf(tmp, sizeof tmp, body[k], 0, 0, 0);
        at += (int64_t)strlen(tmp);
    }
    snprintf(lines[0], 256, body[0], (int)off[0], (int)off[1], (int)off[2]);
    snprintf(lines[1], 256, body[1], (int)off[1], (int)off[0]);
    snprintf(lines[2], 256, body[2], (int)off[2], corrupt == 2 ? 99999999 : (int)off[0]);
    snprintf(lines[3], 256, body[3], (int)off[3]);
    if (corrupt == 1) memcpy(strstr(lines[1], " 002 "), " 00x ", 5);
    FILE *f = fopen(path, "w");
    fputs(head, f);
    for (int k = 0; k < 4; k++) fputs(lines[k], f);
    if (corrupt == 3) fputs("00000999 03 n 01 trunc", f);
    fclose(f);
}

static void test_wordnet_synthetic(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/nl_test_graph_%d.noun", (int)getpid());
    write_synth(path, 0);
    nl_graph g;
    NLT_OK(nl_graph_wordnet(&g, path, 5));
    NLT_CHECK(g.n == 4 && g.n_edges == 2 && g.num_classes == 3 && g.n_feat == 5, "synthetic: %lld nodes %lld edges %d classes",
              (long long)g.n, (long long)g.n_edges, g.num_classes);
    if (g.n == 4) {
        NLT_CHECK(g.y[0] == 0 && g.y[1] == 1 && g.y[2] == 1 && g.y[3] == 2, "labels from lex_filenum");
        NLT_CHECK(g.adj.row_ptr[1] - g.adj.row_ptr[0] == 2 && g.adj.row_ptr[4] == g.adj.row_ptr[3], "thing-dog, thing-cat; joy isolated");
        /* vocabulary by count, ties alphabetical: dog, domesticated, the (2 each), then and, barked (1 each);
         * dog's gloss holds dog, domesticated, the, barked: 1/4 each */
        double row[5] = {0};
        for (int64_t k = g.feat.row_ptr[1]; k < g.feat.row_ptr[2]; k++) row[g.feat.col_idx[k]] = g.feat.values[k];
        NLT_CHECK(row[0] == 0.25 && row[1] == 0.25 && row[2] == 0.25 && row[3] == 0 && row[4] == 0.25, "dog's gloss: %g %g %g %g %g",
                  row[0], row[1], row[2], row[3], row[4]);
    }
    nl_graph_free(&g);
    write_synth(path, 1);
    NLT_CHECK(nl_graph_wordnet(&g, path, 5) == NL_EFORMAT && strstr(nl_last_error(), ":3: bad pointer count"), "corrupt: %s", nl_last_error());
    write_synth(path, 2);
    NLT_CHECK(nl_graph_wordnet(&g, path, 5) == NL_EFORMAT && strstr(nl_last_error(), ":4: pointer to the synset 99999999"), "dangling: %s",
              nl_last_error());
    write_synth(path, 3);
    NLT_CHECK(nl_graph_wordnet(&g, path, 5) == NL_EFORMAT && strstr(nl_last_error(), ":6: truncated"), "truncated: %s", nl_last_error());
    unlink(path);
    NLT_CHECK(nl_graph_wordnet(&g, path, 5) == NL_ENOTFOUND && strstr(nl_last_error(), "wordnet-base"), "missing: %s", nl_last_error());
}

static void test_wordnet_real(void) {
    if (access(NL_GRAPH_WORDNET_PATH, R_OK)) {
        printf("  (skipped: %s missing; install wordnet-base)\n", NL_GRAPH_WORDNET_PATH);
        return;
    }
    nl_graph g;
    double t0 = nl_time();
    NLT_OK(nl_graph_wordnet(&g, NULL, 2000));
    printf("  wordnet loaded in %.2f s\n", nl_time() - t0);
    nl_graph_stats s;
    nl_graph_get_stats(&g, &s);
    NLT_CHECK(g.n == 82115 && g.num_classes == 26, "82,115 synsets in 26 classes: %lld, %d", (long long)g.n, g.num_classes);
    printf("  %lld nodes, %lld edges, homophily %.4f, mean degree %.2f, %lld isolated, %.2f words per gloss\n  classes:", (long long)g.n,
           (long long)g.n_edges, s.homophily, s.mean_degree, (long long)s.isolated, s.feat_nnz_mean);
    for (int k = 0; k < g.num_classes; k++) printf(" %lld", (long long)s.class_size[k]);
    printf("\n");
    NLT_CHECK(s.homophily > 0.9, "most edges join same-class synsets (%.4f)", s.homophily);
    /* a truncated copy fails with file:line */
    char path[64];
    snprintf(path, sizeof path, "/tmp/nl_test_graph_trunc_%d.noun", (int)getpid());
    FILE *in = fopen(NL_GRAPH_WORDNET_PATH, "rb"), *out = fopen(path, "wb");
    char buf[4096];
    size_t got, total = 0;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0 && total < 1000000) fwrite(buf, 1, got, out), total += got;
    fclose(in), fclose(out);
    nl_graph g2;
    NLT_CHECK(nl_graph_wordnet(&g2, path, 100) == NL_EFORMAT && strstr(nl_last_error(), path) && strstr(nl_last_error(), "truncated"),
              "truncated copy: %s", nl_last_error());
    unlink(path);
    nl_graph_free(&g);
}

static void test_cli(void) {
    char *a1[] = {"train", "--layers", "0"};
    NLT_CHECK(nl_graph_cli(3, a1) == 2, "--layers 0 is a usage error");
    char *a2[] = {"train", "--model", "gin"};
    NLT_CHECK(nl_graph_cli(3, a2) == 2, "unknown model");
    char *a3[] = {"train", "--data", "cora"};
    NLT_CHECK(nl_graph_cli(3, a3) == 2, "unknown data");
    char *a4[] = {"train", "--data", "wordnet", "--path", "/nonexistent/data.noun"};
    NLT_CHECK(nl_graph_cli(5, a4) == 1, "missing data file: exit 1");
    char *a5[] = {"train", "--data", "karate", "--model", "sage", "--epochs", "5", "--hidden", "8"};
    NLT_CHECK(nl_graph_cli(9, a5) == 0, "karate run");
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_karate);
    NLT_RUN(test_graph_errors);
    NLT_RUN(test_normalisations);
    NLT_RUN(test_layer_grads);
    NLT_RUN(test_train_karate);
    NLT_RUN(test_wordnet_synthetic);
    NLT_RUN(test_wordnet_real);
    NLT_RUN(test_cli);
    return nlt_finish();
}
