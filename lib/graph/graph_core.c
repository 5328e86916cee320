/* Graphs: construction from edge lists, labels, seeded splits, statistics, the normalised adjacencies and the
 * karate club data (lib/graph/graph.h). */
#include "graph/graph.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nl_graph_free(nl_graph *g) {
    if (!g) return;
    nl_csr_free(&g->adj);
    nl_csr_free(&g->feat);
    free(g->y);
    free(g->train);
    free(g->val);
    free(g->test);
    memset(g, 0, sizeof *g);
}

static int cmp_i64_pair(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

nl_status nl_graph_from_edges(nl_graph *g, const char *name, int64_t n, int64_t m, const int64_t *e) {
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name ? name : "graph");
    if (n < 1 || n > INT32_MAX || m < 0) return nl_set_error(NL_EINVAL, "graph: bad size: %lld nodes, %lld edges", (long long)n, (long long)m);
    if (m > 0 && !e) return nl_set_error(NL_EINVAL, "graph: NULL edge list");
    for (int64_t k = 0; k < m; k++)
        for (int s = 0; s < 2; s++)
            if (e[2 * k + s] < 0 || e[2 * k + s] >= n)
                return nl_set_error(NL_EINVAL, "graph %s: edge %lld (%lld, %lld) has node id %lld outside [0, %lld)", g->name,
                                    (long long)k, (long long)e[2 * k], (long long)e[2 * k + 1], (long long)e[2 * k + s], (long long)n);
    /* both directions, sorted, unique, no self loops */
    int64_t *p = malloc((size_t)(2 * m + 1) * 2 * sizeof *p);
    if (!p) return nl_set_error(NL_ENOMEM, "graph: out of memory for %lld edges", (long long)m);
    int64_t q = 0;
    for (int64_t k = 0; k < m; k++) {
        if (e[2 * k] == e[2 * k + 1]) continue;
        p[2 * q] = e[2 * k], p[2 * q + 1] = e[2 * k + 1], q++;
        p[2 * q] = e[2 * k + 1], p[2 * q + 1] = e[2 * k], q++;
    }
    qsort(p, (size_t)q, 2 * sizeof *p, cmp_i64_pair);
    int64_t u = 0;
    for (int64_t k = 0; k < q; k++)
        if (u == 0 || p[2 * k] != p[2 * (u - 1)] || p[2 * k + 1] != p[2 * (u - 1) + 1]) p[2 * u] = p[2 * k], p[2 * u + 1] = p[2 * k + 1], u++;
    int64_t *r = malloc((size_t)(u + 1) * sizeof *r), *cidx = malloc((size_t)(u + 1) * sizeof *cidx);
    nl_status s = NL_ENOMEM;
    if (r && cidx) {
        for (int64_t k = 0; k < u; k++) r[k] = p[2 * k], cidx[k] = p[2 * k + 1];
        s = nl_csr_from_coo(&g->adj, n, n, u, r, cidx, NULL);
        if (!s) s = nl_csr_from_coo(&g->feat, n, 0, 0, NULL, NULL, NULL);
    } else nl_set_error(NL_ENOMEM, "graph: out of memory for %lld edges", (long long)m);
    free(p), free(r), free(cidx);
    if (s) {
        nl_graph_free(g);
        return s;
    }
    g->n = n;
    g->n_edges = u / 2;
    return NL_OK;
}

nl_status nl_graph_set_labels(nl_graph *g, const int32_t *y, int num_classes) {
    if (num_classes < 1 || !y) return nl_set_error(NL_EINVAL, "graph %s: need labels and at least one class", g->name);
    int64_t *cnt = calloc((size_t)num_classes, sizeof *cnt);
    if (!cnt) return nl_set_error(NL_ENOMEM, "graph: out of memory");
    for (int64_t i = 0; i < g->n; i++) {
        if (y[i] < 0 || y[i] >= num_classes) {
            free(cnt);
            return nl_set_error(NL_EINVAL, "graph %s: node %lld has label %d outside [0, %d)", g->name, (long long)i, (int)y[i], num_classes);
        }
        cnt[y[i]]++;
    }
    for (int k = 0; k < num_classes; k++)
        if (!cnt[k]) {
            free(cnt);
            return nl_set_error(NL_EINVAL, "graph %s: class %d of %d is empty (no node has that label)", g->name, k, num_classes);
        }
    free(cnt);
    free(g->y);
    g->y = malloc((size_t)g->n * sizeof *g->y);
    if (!g->y) return nl_set_error(NL_ENOMEM, "graph: out of memory");
    memcpy(g->y, y, (size_t)g->n * sizeof *g->y);
    g->num_classes = num_classes;
    return NL_OK;
}

nl_status nl_graph_split(nl_graph *g, uint64_t seed, int train_pct) {
    if (train_pct < 1 || train_pct > 64) return nl_set_error(NL_EINVAL, "graph split: train percentage %d outside [1, 64]", train_pct);
    const int64_t n = g->n;
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    free(g->train), free(g->val), free(g->test);
    g->train = calloc((size_t)n, 1), g->val = calloc((size_t)n, 1), g->test = calloc((size_t)n, 1);
    if (!perm || !g->train || !g->val || !g->test) {
        free(perm);
        return nl_set_error(NL_ENOMEM, "graph split: out of memory");
    }
    nl_rng r;
    nl_rng_init(&r, seed, 0x5b1);
    nl_rng_permutation(&r, perm, n);
    const int64_t n_tr = n * train_pct / 100, n64 = n * 64 / 100, n80 = n * 80 / 100;
    for (int64_t k = 0; k < n; k++) {
        if (k < n_tr) g->train[perm[k]] = 1;
        else if (k >= n64 && k < n80) g->val[perm[k]] = 1;
        else if (k >= n80) g->test[perm[k]] = 1;
    }
    free(perm);
    return NL_OK;
}

void nl_graph_get_stats(const nl_graph *g, nl_graph_stats *s) {
    memset(s, 0, sizeof *s);
    for (int64_t i = 0; i < g->n; i++) {
        if (g->y && g->y[i] < 64) s->class_size[g->y[i]]++;
        if (g->train) s->n_train += g->train[i], s->n_val += g->val[i], s->n_test += g->test[i];
        if (g->adj.row_ptr[i + 1] == g->adj.row_ptr[i]) s->isolated++;
    }
    int64_t same = 0;
    for (int64_t k = 0; g->y && k < g->adj.nnz; k++) same += g->y[g->adj.row_idx[k]] == g->y[g->adj.col_idx[k]];
    s->homophily = g->adj.nnz ? (double)same / (double)g->adj.nnz : 0; /* each edge twice: same fraction */
    s->mean_degree = (double)g->adj.nnz / (double)g->n;
    s->feat_nnz_mean = (double)g->feat.nnz / (double)g->n;
}

/* ---------------- normalised adjacencies ---------------- */
/* out = A with values v(i, j); with_loops adds the diagonal */
static nl_status build_scaled(const nl_csr *A, nl_csr *out, int with_loops, int sym) {
    const int64_t n = A->rows, m = A->nnz + (with_loops ? n : 0);
    int64_t *r = malloc((size_t)(m + 1) * sizeof *r), *c = malloc((size_t)(m + 1) * sizeof *c);
    double *v = malloc((size_t)(m + 1) * sizeof *v), *deg = malloc((size_t)(n + 1) * sizeof *deg);
    if (!r || !c || !v || !deg) {
        free(r), free(c), free(v), free(deg);
        return nl_set_error(NL_ENOMEM, "graph: out of memory normalising a %lld-node adjacency", (long long)n);
    }
    for (int64_t i = 0; i < n; i++) {
        deg[i] = with_loops ? 1 : 0;
        for (int64_t k = A->row_ptr[i]; k < A->row_ptr[i + 1]; k++) deg[i] += A->values[k];
    }
    int64_t q = 0;
    for (int64_t i = 0; i < n; i++) {
        if (with_loops) r[q] = i, c[q] = i, v[q++] = 1;
        for (int64_t k = A->row_ptr[i]; k < A->row_ptr[i + 1]; k++) r[q] = i, c[q] = A->col_idx[k], v[q++] = A->values[k];
    }
    for (int64_t k = 0; k < q; k++) {
        if (sym == 1) v[k] /= sqrt(deg[r[k]] * deg[c[k]]);
        else if (sym == 0) v[k] /= deg[r[k]];
    }
    nl_status s = nl_csr_from_coo(out, n, A->cols, q, r, c, v);
    free(r), free(c), free(v), free(deg);
    return s;
}
nl_status nl_graph_norm_adj(const nl_csr *adj, nl_csr *out) { return build_scaled(adj, out, 1, 1); }
nl_status nl_graph_mean_adj(const nl_csr *adj, nl_csr *out) { return build_scaled(adj, out, 0, 0); }
nl_status nl_graph_self_loops(const nl_csr *adj, nl_csr *out) { return build_scaled(adj, out, 1, 2); }

/* ---------------- Zachary's karate club ---------------- */
/* The 78 friendships (Zachary 1977, as networkx's karate_club_graph), 0-based, i < j. */
static const int64_t KARATE_EDGES[78][2] = {
    {0, 1},   {0, 2},   {0, 3},   {0, 4},   {0, 5},   {0, 6},   {0, 7},   {0, 8},   {0, 10},  {0, 11},  {0, 12},  {0, 13},
    {0, 17},  {0, 19},  {0, 21},  {0, 31},  {1, 2},   {1, 3},   {1, 7},   {1, 13},  {1, 17},  {1, 19},  {1, 21},  {1, 30},
    {2, 3},   {2, 7},   {2, 8},   {2, 9},   {2, 13},  {2, 27},  {2, 28},  {2, 32},  {3, 7},   {3, 12},  {3, 13},  {4, 6},
    {4, 10},  {5, 6},   {5, 10},  {5, 16},  {6, 16},  {8, 30},  {8, 32},  {8, 33},  {9, 33},  {13, 33}, {14, 32}, {14, 33},
    {15, 32}, {15, 33}, {18, 32}, {18, 33}, {19, 33}, {20, 32}, {20, 33}, {22, 32}, {22, 33}, {23, 25}, {23, 27}, {23, 29},
    {23, 32}, {23, 33}, {24, 25}, {24, 27}, {24, 31}, {25, 31}, {26, 29}, {26, 33}, {27, 33}, {28, 31}, {28, 33}, {29, 32},
    {29, 33}, {30, 32}, {30, 33}, {31, 32}, {31, 33}, {32, 33}};
/* faction: 0 Mr. Hi, 1 Officer */
static const int32_t KARATE_CLUB[34] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0,
                                        0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

nl_status nl_graph_karate(nl_graph *g) {
    nl_status s = nl_graph_from_edges(g, "karate", 34, 78, &KARATE_EDGES[0][0]);
    if (s) return s;
    if ((s = nl_graph_set_labels(g, KARATE_CLUB, 2))) goto fail;
    int64_t id[34];
    for (int i = 0; i < 34; i++) id[i] = i;
    nl_csr_free(&g->feat);
    if ((s = nl_csr_from_coo(&g->feat, 34, 34, 34, id, id, NULL))) goto fail;
    g->n_feat = 34;
    return NL_OK;
fail:
    nl_graph_free(g);
    return s;
}
