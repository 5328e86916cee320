/* Labelled document corpora and their encoding in a vocabulary (lib/text/text.h). */
#include "text/text.h"
#include <stdlib.h>
#include <string.h>

nl_status nl_text_corpus_init(nl_text_corpus *c) {
    memset(c, 0, sizeof *c);
    c->off = malloc(sizeof(int64_t));
    if (!c->off) return nl_set_error(NL_ENOMEM, "text: corpus: out of memory");
    c->off[0] = 0;
    return nl_text_vocab_init(&c->dict);
}

void nl_text_corpus_free(nl_text_corpus *c) {
    if (!c) return;
    free(c->off), free(c->ids), free(c->label), free(c->test);
    for (int32_t i = 0; i < c->n_labels; i++) free(c->label_name[i]);
    free(c->label_name);
    nl_text_vocab_free(&c->dict);
    memset(c, 0, sizeof *c);
}

nl_status nl_text_corpus_label(nl_text_corpus *c, const char *name, int32_t *index) {
    for (int32_t i = 0; i < c->n_labels; i++)
        if (strcmp(c->label_name[i], name) == 0) return *index = i, NL_OK;
    char **nl = realloc(c->label_name, sizeof(char *) * (size_t)(c->n_labels + 1));
    if (!nl) return nl_set_error(NL_ENOMEM, "text: corpus: out of memory");
    c->label_name = nl;
    nl[c->n_labels] = strdup(name);
    if (!nl[c->n_labels]) return nl_set_error(NL_ENOMEM, "text: corpus: out of memory");
    *index = c->n_labels++;
    return NL_OK;
}

static nl_status add_tok(const char *tok, int len, void *ud) {
    nl_text_corpus *c = ud;
    int32_t id;
    nl_status st = nl_text_vocab_add(&c->dict, tok, len, 1, &id);
    if (st) return st;
    int64_t n = c->off[c->n_docs + 1];
    if (n + 1 > c->alloc_ids) {
        int64_t na = c->alloc_ids ? c->alloc_ids * 2 : 1 << 16;
        int32_t *ni = realloc(c->ids, sizeof(int32_t) * (size_t)na);
        if (!ni) return nl_set_error(NL_ENOMEM, "text: corpus: out of memory");
        c->ids = ni, c->alloc_ids = na;
    }
    c->ids[n] = id;
    c->off[c->n_docs + 1]++; /* the running end of the open document */
    return NL_OK;
}

nl_status nl_text_corpus_add(nl_text_corpus *c, const char *text, size_t n, int32_t label, nl_text_utf8 policy,
                             int *added) {
    if (added) *added = 0;
    if (c->n_docs + 1 >= c->alloc_docs) {
        int64_t na = c->alloc_docs ? c->alloc_docs * 2 : 4096;
        int64_t *no = realloc(c->off, sizeof(int64_t) * (size_t)(na + 1));
        if (!no) return nl_set_error(NL_ENOMEM, "text: corpus: out of memory");
        c->off = no;
        int32_t *nl = realloc(c->label, sizeof(int32_t) * (size_t)na);
        if (!nl) return nl_set_error(NL_ENOMEM, "text: corpus: out of memory");
        c->label = nl;
        uint8_t *nt = realloc(c->test, (size_t)na);
        if (!nt) return nl_set_error(NL_ENOMEM, "text: corpus: out of memory");
        c->test = nt, c->alloc_docs = na;
    }
    int64_t start = c->off[c->n_docs], bad = 0;
    c->off[c->n_docs + 1] = start;
    nl_status st = nl_text_tokenize(text, n, policy, add_tok, c, &bad);
    c->n_bad_bytes += bad;
    if (st) return st;                                /* the open document is dropped */
    if (c->off[c->n_docs + 1] == start) return NL_OK; /* no token: skipped */
    uint32_t h = 2166136261u;                      /* FNV-1a of the text: the fixed split */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)text[i]) * 16777619u;
    c->label[c->n_docs] = label;
    c->test[c->n_docs] = (uint8_t)(h % 10 == 0);
    c->n_docs++;
    if (added) *added = 1;
    return NL_OK;
}

void nl_text_docs_free(nl_text_docs *d) {
    if (!d) return;
    free(d->off), free(d->ids), free(d->label), free(d->src);
    memset(d, 0, sizeof *d);
}

nl_status nl_text_docs_encode(const nl_text_corpus *c, const nl_text_vocab *v, int which, int label_only,
                              int64_t max_per_label, nl_text_docs *d, int64_t *n_empty) {
    memset(d, 0, sizeof *d);
    if (n_empty) *n_empty = 0;
    int32_t *map = malloc(sizeof(int32_t) * (size_t)(c->dict.n + 1));
    int64_t *per = calloc((size_t)c->n_labels + 1, sizeof(int64_t));
    d->off = malloc(sizeof(int64_t) * (size_t)(c->n_docs + 1));
    d->ids = malloc(sizeof(int32_t) * (size_t)(c->off[c->n_docs] + 1));
    d->label = malloc(sizeof(int32_t) * (size_t)(c->n_docs + 1));
    d->src = malloc(sizeof(int64_t) * (size_t)(c->n_docs + 1));
    if (!map || !per || !d->off || !d->ids || !d->label || !d->src) {
        free(map), free(per), nl_text_docs_free(d);
        return nl_set_error(NL_ENOMEM, "text: encode: out of memory");
    }
    for (int32_t i = 0; i < c->dict.n; i++)
        map[i] = v == &c->dict ? i : nl_text_vocab_find(v, c->dict.word[i], (int)strlen(c->dict.word[i]));
    int64_t n = 0, p = 0;
    d->off[0] = 0;
    for (int64_t i = 0; i < c->n_docs; i++) {
        if (which == 0 && c->test[i]) continue;
        if (which == 1 && !c->test[i]) continue;
        if (label_only && c->label[i] < 0) continue;
        if (max_per_label > 0 && c->label[i] >= 0 && per[c->label[i]] >= max_per_label) continue;
        int64_t p0 = p;
        for (int64_t k = c->off[i]; k < c->off[i + 1]; k++)
            if (map[c->ids[k]] >= 0) d->ids[p++] = map[c->ids[k]];
        if (p == p0) {
            if (n_empty) (*n_empty)++;
            continue;
        }
        if (c->label[i] >= 0) per[c->label[i]]++;
        d->label[n] = c->label[i], d->src[n] = i;
        d->off[++n] = p;
    }
    d->n_docs = n;
    free(map), free(per);
    return NL_OK;
}

nl_status nl_text_docs_vocab(const nl_text_docs *d, const nl_text_vocab *v, nl_text_vocab *out) {
    nl_status st = nl_text_vocab_init(out);
    for (int32_t i = 0; i < v->n && !st; i++) st = nl_text_vocab_add(out, v->word[i], (int)strlen(v->word[i]), 0, NULL);
    if (st) return st;
    for (int64_t k = 0; k < d->off[d->n_docs]; k++) out->count[d->ids[k]]++, out->total++;
    return NL_OK;
}
