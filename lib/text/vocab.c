/* Vocabulary, subsampling, unigram table, embedding tables, TF-IDF (lib/text/text.h). */
#include "text/text.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t fnv(const char *w, int len) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < len; i++) h = (h ^ (unsigned char)w[i]) * 16777619u;
    return h;
}

nl_status nl_text_vocab_init(nl_text_vocab *v) {
    memset(v, 0, sizeof *v);
    v->cap = 1024;
    v->hash = malloc(sizeof(int32_t) * (size_t)v->cap);
    if (!v->hash) return nl_set_error(NL_ENOMEM, "text: vocabulary: out of memory");
    memset(v->hash, 0xff, sizeof(int32_t) * (size_t)v->cap);
    return NL_OK;
}

void nl_text_vocab_free(nl_text_vocab *v) {
    if (!v) return;
    for (int32_t i = 0; i < v->n; i++) free(v->word[i]);
    free(v->word), free(v->count), free(v->hash);
    memset(v, 0, sizeof *v);
}

int32_t nl_text_vocab_find(const nl_text_vocab *v, const char *w, int len) {
    uint32_t m = (uint32_t)v->cap - 1, h = fnv(w, len) & m;
    for (;; h = (h + 1) & m) {
        int32_t id = v->hash[h];
        if (id < 0) return -1;
        if ((int)strlen(v->word[id]) == len && memcmp(v->word[id], w, (size_t)len) == 0) return id;
    }
}

static nl_status rehash(nl_text_vocab *v, int32_t cap) {
    int32_t *h = malloc(sizeof(int32_t) * (size_t)cap);
    if (!h) return nl_set_error(NL_ENOMEM, "text: vocabulary: out of memory");
    memset(h, 0xff, sizeof(int32_t) * (size_t)cap);
    for (int32_t i = 0; i < v->n; i++) {
        uint32_t k = fnv(v->word[i], (int)strlen(v->word[i])) & (uint32_t)(cap - 1);
        while (h[k] >= 0) k = (k + 1) & (uint32_t)(cap - 1);
        h[k] = i;
    }
    free(v->hash);
    v->hash = h, v->cap = cap;
    return NL_OK;
}

nl_status nl_text_vocab_add(nl_text_vocab *v, const char *w, int len, int64_t add, int32_t *id) {
    int32_t i = nl_text_vocab_find(v, w, len);
    if (i < 0) {
        if (v->n + 1 > v->alloc) {
            int32_t na = v->alloc ? v->alloc * 2 : 1024;
            char **nw = realloc(v->word, sizeof(char *) * (size_t)na);
            if (!nw) return nl_set_error(NL_ENOMEM, "text: vocabulary: out of memory");
            v->word = nw;
            int64_t *nc = realloc(v->count, sizeof(int64_t) * (size_t)na);
            if (!nc) return nl_set_error(NL_ENOMEM, "text: vocabulary: out of memory");
            v->count = nc, v->alloc = na;
        }
        char *s = malloc((size_t)len + 1);
        if (!s) return nl_set_error(NL_ENOMEM, "text: vocabulary: out of memory");
        memcpy(s, w, (size_t)len), s[len] = 0;
        i = v->n++;
        v->word[i] = s, v->count[i] = 0;
        if (2 * v->n > v->cap) {
            nl_status st = rehash(v, v->cap * 2);
            if (st) return st;
        } else {
            uint32_t m = (uint32_t)v->cap - 1, h = fnv(w, len) & m;
            while (v->hash[h] >= 0) h = (h + 1) & m;
            v->hash[h] = i;
        }
    }
    v->count[i] += add, v->total += add;
    if (id) *id = i;
    return NL_OK;
}

static const nl_text_vocab *g_sort_v;
static int cmp_count(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    int64_t cx = g_sort_v->count[x], cy = g_sort_v->count[y];
    if (cx != cy) return cx > cy ? -1 : 1;
    return strcmp(g_sort_v->word[x], g_sort_v->word[y]);
}

nl_status nl_text_vocab_prune(const nl_text_vocab *src, int64_t min_count, int32_t max_words, nl_text_vocab *dst,
                              int32_t *map) {
    int32_t *ord = malloc(sizeof(int32_t) * (size_t)(src->n + 1)), m = 0;
    if (!ord) return nl_set_error(NL_ENOMEM, "text: vocabulary: out of memory");
    for (int32_t i = 0; i < src->n; i++)
        if (src->count[i] >= min_count) ord[m++] = i;
    g_sort_v = src;
    qsort(ord, (size_t)m, sizeof(int32_t), cmp_count);
    if (max_words > 0 && m > max_words) m = max_words;
    nl_status st = nl_text_vocab_init(dst);
    if (map)
        for (int32_t i = 0; i < src->n; i++) map[i] = -1;
    for (int32_t j = 0; j < m && !st; j++) {
        const char *w = src->word[ord[j]];
        st = nl_text_vocab_add(dst, w, (int)strlen(w), src->count[ord[j]], NULL);
        if (map) map[ord[j]] = j;
    }
    free(ord);
    return st;
}

void nl_text_vocab_keep_prob(const nl_text_vocab *v, double t, float *keep) {
    for (int32_t i = 0; i < v->n; i++) {
        double f = v->total > 0 ? (double)v->count[i] / (double)v->total : 0;
        double k = (t <= 0 || f <= 0) ? 1.0 : sqrt(t / f) + t / f;
        keep[i] = (float)(k > 1 ? 1 : k);
    }
}

nl_status nl_text_unigram_build(nl_text_unigram *u, const nl_text_vocab *v, double power, int64_t size) {
    memset(u, 0, sizeof *u);
    if (v->n <= 0) return nl_set_error(NL_EINVAL, "text: unigram table: empty vocabulary");
    if (size < v->n) size = v->n;
    double z = 0;
    for (int32_t i = 0; i < v->n; i++) z += pow((double)v->count[i], power);
    if (!(z > 0)) return nl_set_error(NL_EINVAL, "text: unigram table: all counts are zero");
    u->table = malloc(sizeof(int32_t) * (size_t)size);
    if (!u->table) return nl_set_error(NL_ENOMEM, "text: unigram table: out of memory");
    u->size = size;
    int32_t w = 0;
    double cum = pow((double)v->count[0], power) / z;
    for (int64_t a = 0; a < size; a++) {
        u->table[a] = w;
        while ((double)(a + 1) / (double)size > cum && w < v->n - 1) cum += pow((double)v->count[++w], power) / z;
    }
    return NL_OK;
}

void nl_text_unigram_free(nl_text_unigram *u) {
    if (u) free(u->table), u->table = NULL, u->size = 0;
}

void nl_text_unigram_probs(const nl_text_unigram *u, int32_t v_n, float *q) {
    for (int32_t i = 0; i < v_n; i++) q[i] = 0;
    for (int64_t a = 0; a < u->size; a++) q[u->table[a]] += 1.0f;
    for (int32_t i = 0; i < v_n; i++) q[i] = q[i] > 0 ? q[i] / (float)u->size : 0.5f / (float)u->size;
}

nl_status nl_text_emb_init(nl_text_emb *e, int64_t rows, int32_t dim, float scale, nl_rng *r) {
    memset(e, 0, sizeof *e);
    if (rows <= 0 || dim <= 0) return nl_set_error(NL_EINVAL, "text: embedding table %lld x %d", (long long)rows, dim);
    e->w = malloc(sizeof(float) * (size_t)rows * (size_t)dim); /* [rows, dim] */
    if (!e->w) return nl_set_error(NL_ENOMEM, "text: embedding table: out of memory");
    e->rows = rows, e->dim = dim;
    for (int64_t i = 0; i < rows * dim; i++) e->w[i] = scale > 0 ? (float)((2 * nl_rng_uniform(r) - 1) * scale) : 0.f;
    return NL_OK;
}

void nl_text_emb_free(nl_text_emb *e) {
    if (e) free(e->w), e->w = NULL, e->rows = 0;
}

void nl_text_emb_update(nl_text_emb *e, int64_t i, float lr, const float *g) {
    float *w = nl_text_emb_row(e, i);
    for (int32_t j = 0; j < e->dim; j++) w[j] += lr * g[j];
}

nl_status nl_text_idf(const nl_text_docs *d, int32_t v_n, float *idf) {
    int64_t *df = calloc((size_t)v_n, sizeof(int64_t));
    int64_t *last = malloc(sizeof(int64_t) * (size_t)v_n);
    if (!df || !last) return free(df), free(last), nl_set_error(NL_ENOMEM, "text: idf: out of memory");
    for (int32_t w = 0; w < v_n; w++) last[w] = -1;
    for (int64_t i = 0; i < d->n_docs; i++)
        for (int64_t p = d->off[i]; p < d->off[i + 1]; p++) {
            int32_t w = d->ids[p];
            if (w >= 0 && w < v_n && last[w] != i) last[w] = i, df[w]++;
        }
    for (int32_t w = 0; w < v_n; w++) idf[w] = df[w] ? (float)log((double)d->n_docs / (double)df[w]) : 0.f;
    free(df), free(last);
    return NL_OK;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int nl_text_tfidf_doc(const nl_text_docs *d, int64_t i, const float *idf, int32_t *ids, float *w) {
    int n = (int)(d->off[i + 1] - d->off[i]), m = 0;
    memcpy(ids, d->ids + d->off[i], sizeof(int32_t) * (size_t)n);
    qsort(ids, (size_t)n, sizeof(int32_t), cmp_i32);
    for (int p = 0; p < n;) {
        int q = p;
        while (q < n && ids[q] == ids[p]) q++;
        ids[m] = ids[p], w[m] = (float)(q - p) * idf[ids[p]], m++;
        p = q;
    }
    double s = 0;
    for (int j = 0; j < m; j++) s += (double)w[j] * w[j];
    if (s > 0)
        for (int j = 0; j < m; j++) w[j] = (float)(w[j] / sqrt(s));
    return m;
}
