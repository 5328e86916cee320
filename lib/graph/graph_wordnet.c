/* The WordNet 3.0 noun-synset graph from Debian's wordnet-base (lib/graph/graph.h, nl_graph_wordnet; the
 * preparation and its numbers are in lib/graph/README.md).
 *
 * data.noun line format (wndb(5)): the licence header lines start with two spaces; a synset line is
 *   offset(8 digits) lex_filenum(2 digits) ss_type w_cnt(2 hex) [word lex_id(1 hex)] x w_cnt p_cnt(3 digits)
 *   [pointer_symbol offset(8) pos source/target(4 hex)] x p_cnt | gloss
 * where offset is the byte offset of the line in the file (checked: a shifted or truncated file fails). */
#include "graph/graph.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *path;
    int64_t line;
} wn_pos;

static nl_status wn_err(const wn_pos *p, const char *what, const char *tok, int len) {
    if (tok) return nl_set_error(NL_EFORMAT, "%s:%lld: %s ('%.*s')", p->path, (long long)p->line, what, len > 40 ? 40 : len, tok);
    return nl_set_error(NL_EFORMAT, "%s:%lld: %s", p->path, (long long)p->line, what);
}

/* next space-separated token of [*s, end): start and length; 0 at the end of the line */
static int wn_tok(const char **s, const char *end, const char **t) {
    const char *p = *s;
    while (p < end && *p == ' ') p++;
    *t = p;
    while (p < end && *p != ' ') p++;
    *s = p;
    return (int)(p - *t);
}

/* the whole token as a number of the given base with exactly `digits` digits (0: any count) */
static int wn_num(const char *t, int len, int base, int digits, int64_t *out) {
    if (len < 1 || len > 16 || (digits && len != digits)) return 0;
    int64_t v = 0;
    for (int i = 0; i < len; i++) {
        int d = isdigit((unsigned char)t[i]) ? t[i] - '0' : (base == 16 && isxdigit((unsigned char)t[i])) ? tolower((unsigned char)t[i]) - 'a' + 10 : -1;
        if (d < 0 || d >= base) return 0;
        v = v * base + d;
    }
    *out = v;
    return 1;
}

/* ---------------- vocabulary: open-addressing hash of gloss words ---------------- */
typedef struct {
    char *key;      /* NUL-terminated word (in pool) */
    int64_t count;  /* occurrences in all glosses */
    int32_t id;     /* vocabulary id, -1 when not in the vocabulary */
} wn_word;

typedef struct {
    wn_word *t;     /* (cap) slots, key NULL when empty */
    int64_t cap, n;
} wn_hash;

static uint64_t wn_fnv(const char *s, int len) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* slot of word s[0..len) (inserted when absent and insert != 0); NULL when absent or out of memory */
static wn_word *wn_find(wn_hash *h, const char *s, int len, int insert) {
    if (insert && 2 * (h->n + 1) > h->cap) {
        wn_hash g = {calloc((size_t)(h->cap ? 2 * h->cap : 1 << 16), sizeof(wn_word)), h->cap ? 2 * h->cap : 1 << 16, 0};
        if (!g.t) return NULL;
        for (int64_t i = 0; i < h->cap; i++)
            if (h->t[i].key) {
                uint64_t k = wn_fnv(h->t[i].key, (int)strlen(h->t[i].key)) & (uint64_t)(g.cap - 1);
                while (g.t[k].key) k = (k + 1) & (uint64_t)(g.cap - 1);
                g.t[k] = h->t[i];
                g.n++;
            }
        free(h->t);
        *h = g;
    }
    if (!h->cap) return NULL;
    uint64_t k = wn_fnv(s, len) & (uint64_t)(h->cap - 1);
    while (h->t[k].key) {
        if ((int)strlen(h->t[k].key) == len && !memcmp(h->t[k].key, s, (size_t)len)) return &h->t[k];
        k = (k + 1) & (uint64_t)(h->cap - 1);
    }
    if (!insert) return NULL;
    char *key = malloc((size_t)len + 1);
    if (!key) return NULL;
    memcpy(key, s, (size_t)len);
    key[len] = 0;
    h->t[k] = (wn_word){key, 0, -1};
    h->n++;
    return &h->t[k];
}

static void wn_hash_free(wn_hash *h) {
    for (int64_t i = 0; i < h->cap; i++) free(h->t[i].key);
    free(h->t);
}

/* calls fn on every word (letter run of length >= 2, lowercased, at most 63 letters kept) of gloss[0..len) */
#define WN_FOR_WORDS(gloss, len, buf, wl, BODY)                                               \
    for (int wn_i = 0; wn_i < (len);) {                                                       \
        while (wn_i < (len) && !isalpha((unsigned char)(gloss)[wn_i])) wn_i++;                \
        int wl = 0;                                                                           \
        while (wn_i < (len) && isalpha((unsigned char)(gloss)[wn_i])) {                       \
            if (wl < 63) buf[wl++] = (char)tolower((unsigned char)(gloss)[wn_i]);             \
            wn_i++;                                                                           \
        }                                                                                     \
        if (wl >= 2) { BODY }                                                                 \
    }

static int cmp_vocab(const void *a, const void *b) {
    const wn_word *x = *(const wn_word *const *)a, *y = *(const wn_word *const *)b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->key, y->key);
}
static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

typedef struct {
    char *buf;                 /* the file */
    int64_t n, cap;            /* synsets */
    int64_t *off;              /* (n) synset offsets, increasing */
    int32_t *label;            /* (n) lex_filenum - 3 */
    int64_t *line;             /* (n) line numbers */
    const char **gloss;        /* (n) gloss text (into buf) */
    int *gloss_len;            /* (n) */
    int64_t m, mcap;           /* pointers kept */
    int64_t *ptr;              /* (m, 2) source node, target offset */
} wn_data;

static void wn_free(wn_data *d) {
    free(d->buf), free(d->off), free(d->label), free(d->line), free(d->gloss), free(d->gloss_len), free(d->ptr);
}

static int wn_grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 1;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

/* one synset line [s, end) at byte offset `at` */
static nl_status wn_line(wn_data *d, const wn_pos *pos, const char *s, const char *end, int64_t at) {
    const char *t;
    int len;
    int64_t off, lex, wcnt, pcnt, v;
    len = wn_tok(&s, end, &t);
    if (!wn_num(t, len, 10, 8, &off)) return wn_err(pos, "bad synset offset (8 digits expected)", t, len);
    if (off != at) return nl_set_error(NL_EFORMAT, "%s:%lld: synset offset %08lld does not match the line's byte offset %lld (file shifted or corrupt)",
                                       pos->path, (long long)pos->line, (long long)off, (long long)at);
    len = wn_tok(&s, end, &t);
    if (!wn_num(t, len, 10, 2, &lex) || lex < 3 || lex > 28) return wn_err(pos, "bad lexicographer file number (03..28 for nouns)", t, len);
    len = wn_tok(&s, end, &t);
    if (len != 1 || *t != 'n') return wn_err(pos, "synset type is not 'n'", t, len);
    len = wn_tok(&s, end, &t);
    if (!wn_num(t, len, 16, 2, &wcnt) || wcnt < 1) return wn_err(pos, "bad word count (2 hex digits)", t, len);
    for (int64_t w = 0; w < wcnt; w++) {
        if (!wn_tok(&s, end, &t)) return wn_err(pos, "line ends inside the word list", NULL, 0);
        len = wn_tok(&s, end, &t);
        if (!wn_num(t, len, 16, 1, &v)) return wn_err(pos, "bad lex_id (1 hex digit)", t, len);
    }
    len = wn_tok(&s, end, &t);
    if (!wn_num(t, len, 10, 3, &pcnt)) return wn_err(pos, "bad pointer count (3 digits)", t, len);
    const int64_t node = d->n;
    for (int64_t k = 0; k < pcnt; k++) {
        const char *sym;
        int slen = wn_tok(&s, end, &sym);
        if (!slen || *sym == '|') return wn_err(pos, "line ends inside the pointer list", NULL, 0);
        int64_t target;
        len = wn_tok(&s, end, &t);
        if (!wn_num(t, len, 10, 8, &target)) return wn_err(pos, "bad pointer target offset", t, len);
        const char *pp;
        int plen = wn_tok(&s, end, &pp);
        if (plen != 1 || !strchr("nvars", *pp)) return wn_err(pos, "bad pointer part of speech", pp, plen);
        len = wn_tok(&s, end, &t);
        if (!wn_num(t, len, 16, 4, &v)) return wn_err(pos, "bad pointer source/target field (4 hex digits)", t, len);
        const int hyper = (slen == 1 && sym[0] == '@') || (slen == 2 && sym[0] == '@' && sym[1] == 'i');
        const int hypo = (slen == 1 && sym[0] == '~') || (slen == 2 && sym[0] == '~' && sym[1] == 'i');
        if ((hyper || hypo) && *pp == 'n') {
            if (!wn_grow((void **)&d->ptr, &d->mcap, d->m + 1, 2 * sizeof *d->ptr)) return nl_set_error(NL_ENOMEM, "wordnet: out of memory");
            d->ptr[2 * d->m] = node, d->ptr[2 * d->m + 1] = target, d->m++;
        }
    }
    len = wn_tok(&s, end, &t);
    if (len != 1 || *t != '|') return wn_err(pos, "no '|' before the gloss (truncated line?)", t, len);
    while (s < end && *s == ' ') s++;
    int64_t cap = d->cap;
    if (d->n + 1 > cap) {
        int64_t c1 = cap, c2 = cap, c3 = cap, c4 = cap, c5 = cap;
        if (!wn_grow((void **)&d->off, &c1, d->n + 1, sizeof *d->off) || !wn_grow((void **)&d->label, &c2, d->n + 1, sizeof *d->label) ||
            !wn_grow((void **)&d->line, &c3, d->n + 1, sizeof *d->line) || !wn_grow((void **)&d->gloss, &c4, d->n + 1, sizeof *d->gloss) ||
            !wn_grow((void **)&d->gloss_len, &c5, d->n + 1, sizeof *d->gloss_len))
            return nl_set_error(NL_ENOMEM, "wordnet: out of memory");
        d->cap = c1;
    }
    if (d->n > 0 && off <= d->off[d->n - 1]) return wn_err(pos, "synset offsets do not increase", NULL, 0);
    d->off[d->n] = off;
    d->label[d->n] = (int32_t)(lex - 3);
    d->line[d->n] = pos->line;
    d->gloss[d->n] = s;
    d->gloss_len[d->n] = (int)(end - s);
    d->n++;
    return NL_OK;
}

static nl_status wn_read(wn_data *d, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return nl_set_error(NL_ENOTFOUND, "wordnet: %s not found: install the Debian package wordnet-base "
                                              "(apt-get install wordnet-base; tools/setup.sh does)", path);
        return nl_set_error(NL_EIO, "wordnet: cannot open %s: %s", path, strerror(errno));
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    d->buf = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    if (!d->buf || fread(d->buf, 1, (size_t)sz, f) != (size_t)sz) {
        fclose(f);
        return nl_set_error(d->buf ? NL_EIO : NL_ENOMEM, "wordnet: cannot read %s", path);
    }
    fclose(f);
    d->buf[sz] = 0;
    if (sz == 0) return nl_set_error(NL_EFORMAT, "%s: empty file", path);
    if (d->buf[sz - 1] != '\n') {
        int64_t lines = 1;
        for (long i = 0; i < sz; i++) lines += d->buf[i] == '\n';
        return nl_set_error(NL_EFORMAT, "%s:%lld: truncated file (the last line has no newline)", path, (long long)lines);
    }
    wn_pos pos = {path, 0};
    for (const char *s = d->buf; s < d->buf + sz;) {
        const char *e = memchr(s, '\n', (size_t)(d->buf + sz - s));
        pos.line++;
        const char *end = e;
        while (end > s && (end[-1] == ' ' || end[-1] == '\r')) end--;
        if (!(s[0] == ' ' && s[1] == ' ')) {
            nl_status st = wn_line(d, &pos, s, end, (int64_t)(s - d->buf));
            if (st) return st;
        }
        s = e + 1;
    }
    if (d->n == 0) return nl_set_error(NL_EFORMAT, "%s: no synset lines", path);
    return NL_OK;
}

static int64_t wn_lookup(const wn_data *d, int64_t off) {
    int64_t lo = 0, hi = d->n - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        if (d->off[mid] == off) return mid;
        if (d->off[mid] < off) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* the features: vocabulary of the `vocab` most frequent words, binary bag of words, rows summing to 1 */
static nl_status wn_features(const wn_data *d, int vocab, nl_csr *feat) {
    wn_hash h = {0};
    char buf[64];
    nl_status st = NL_OK;
    for (int64_t i = 0; i < d->n && !st; i++) {
        WN_FOR_WORDS(d->gloss[i], d->gloss_len[i], buf, wl, {
            wn_word *w = wn_find(&h, buf, wl, 1);
            if (!w) { st = nl_set_error(NL_ENOMEM, "wordnet: out of memory counting words"); break; }
            w->count++;
        })
    }
    wn_word **all = st ? NULL : malloc((size_t)(h.n ? h.n : 1) * sizeof *all);
    int64_t nw = 0;
    if (!st && !all) st = nl_set_error(NL_ENOMEM, "wordnet: out of memory");
    if (!st) {
        for (int64_t i = 0; i < h.cap; i++)
            if (h.t[i].key) all[nw++] = &h.t[i];
        qsort(all, (size_t)nw, sizeof *all, cmp_vocab);
        for (int64_t k = 0; k < nw && k < vocab; k++) all[k]->id = (int32_t)k;
    }
    free(all);
    int64_t m = 0, cap = 0;
    int64_t *r = NULL, *c = NULL;
    double *v = NULL;
    int32_t ids[512];
    for (int64_t i = 0; i < d->n && !st; i++) {
        int k = 0;
        WN_FOR_WORDS(d->gloss[i], d->gloss_len[i], buf, wl, {
            wn_word *w = wn_find(&h, buf, wl, 0);
            if (w && w->id >= 0 && k < 512) ids[k++] = w->id;
        })
        qsort(ids, (size_t)k, sizeof *ids, cmp_i32);
        int u = 0;
        for (int q = 0; q < k; q++)
            if (!u || ids[q] != ids[u - 1]) ids[u++] = ids[q];
        int64_t c1 = cap, c2 = cap, c3 = cap;
        if (!wn_grow((void **)&r, &c1, m + u, sizeof *r) || !wn_grow((void **)&c, &c2, m + u, sizeof *c) ||
            !wn_grow((void **)&v, &c3, m + u, sizeof *v)) {
            st = nl_set_error(NL_ENOMEM, "wordnet: out of memory for the features");
            break;
        }
        cap = c1;
        for (int q = 0; q < u; q++) r[m] = i, c[m] = ids[q], v[m++] = 1.0 / u;
    }
    if (!st) st = nl_csr_from_coo(feat, d->n, vocab, m, r, c, v);
    free(r), free(c), free(v);
    wn_hash_free(&h);
    return st;
}

nl_status nl_graph_wordnet(nl_graph *g, const char *path, int vocab) {
    memset(g, 0, sizeof *g);
    if (!path) path = NL_GRAPH_WORDNET_PATH;
    if (vocab < 1 || vocab > 1000000) return nl_set_error(NL_EINVAL, "wordnet: vocabulary size %d outside [1, 1000000]", vocab);
    wn_data d = {0};
    nl_status st = wn_read(&d, path);
    int64_t *e = NULL;
    if (!st) {
        e = malloc((size_t)(d.m ? d.m : 1) * 2 * sizeof *e);
        if (!e) st = nl_set_error(NL_ENOMEM, "wordnet: out of memory");
    }
    for (int64_t k = 0; !st && k < d.m; k++) {
        int64_t t = wn_lookup(&d, d.ptr[2 * k + 1]);
        if (t < 0) {
            st = nl_set_error(NL_EFORMAT, "%s:%lld: pointer to the synset %08lld, which the file does not have", path,
                              (long long)d.line[d.ptr[2 * k]], (long long)d.ptr[2 * k + 1]);
            break;
        }
        e[2 * k] = d.ptr[2 * k], e[2 * k + 1] = t;
    }
    if (!st) st = nl_graph_from_edges(g, "wordnet", d.n, d.m, e);
    free(e);
    if (!st) {
        /* labels: the classes present, renumbered densely when a file has fewer than 26 (small test files) */
        int present[26] = {0}, map[26], C = 0;
        for (int64_t i = 0; i < d.n; i++) present[d.label[i]] = 1;
        for (int k = 0; k < 26; k++) map[k] = present[k] ? C++ : -1;
        for (int64_t i = 0; i < d.n; i++) d.label[i] = map[d.label[i]];
        st = nl_graph_set_labels(g, d.label, C);
    }
    if (!st) {
        nl_csr_free(&g->feat);
        st = wn_features(&d, vocab, &g->feat);
        g->n_feat = vocab;
    }
    wn_free(&d);
    if (st) nl_graph_free(g);
    return st;
}
