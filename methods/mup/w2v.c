/* Word2vec (skip-gram, negative sampling) in the muP and NTK parametrisations (TP4 Section 9 / edwardjhu/TP4
 * Word2Vec), on the KJV Bible, judged with WordNet synonym pairs: the pieces of the ledger entry `mup-features`
 * (features_entry.c). */
#include "mup/mup.h"
#include "transformer/transformer.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- corpus: words, vocabulary, token ids ---------------- */
typedef struct w2v_hash {
    int64_t cap;
    int32_t *slot;        /* (cap) index into words, -1 empty */
    char **words;         /* (n) malloc'd strings */
    int64_t *count;       /* (n) */
    int64_t n, wcap;
} w2v_hash;

static uint64_t w2v_fnv(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
    return h;
}

/* index of word (len bytes) in h, inserted with count 0 when add; -1 when absent (or out of memory) */
static int64_t w2v_find(w2v_hash *h, const char *w, size_t len, int add) {
    uint64_t k = w2v_fnv(w, len) & (uint64_t)(h->cap - 1);
    while (h->slot[k] >= 0) {
        const char *s = h->words[h->slot[k]];
        if (strlen(s) == len && !memcmp(s, w, len)) return h->slot[k];
        k = (k + 1) & (uint64_t)(h->cap - 1);
    }
    if (!add || h->n * 2 >= h->cap) return -1;
    if (h->n == h->wcap) {
        int64_t nc = h->wcap ? 2 * h->wcap : 1024;
        char **nw = realloc(h->words, (size_t)nc * sizeof *nw);
        if (!nw) return -1;
        h->words = nw;
        int64_t *ncnt = realloc(h->count, (size_t)nc * sizeof *ncnt);
        if (!ncnt) return -1;
        h->count = ncnt;
        h->wcap = nc;
    }
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, w, len);
    c[len] = 0;
    h->words[h->n] = c;
    h->count[h->n] = 0;
    h->slot[k] = (int32_t)h->n;
    return h->n++;
}

static void w2v_hash_free(w2v_hash *h) {
    for (int64_t i = 0; i < h->n; i++) free(h->words[i]);
    free(h->words);
    free(h->count);
    free(h->slot);
    memset(h, 0, sizeof *h);
}

static const w2v_hash *g_sort_h;
static int w2v_cmp(const void *a, const void *b) {
    const int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    if (g_sort_h->count[i] != g_sort_h->count[j]) return g_sort_h->count[i] > g_sort_h->count[j] ? -1 : 1;
    return strcmp(g_sort_h->words[i], g_sort_h->words[j]);
}

void nl_mup_w2v_corpus_free(nl_mup_w2v_corpus *c) {
    if (!c) return;
    for (int i = 0; i < c->V; i++) free(c->vocab[i]);
    free(c->vocab);
    free(c->count);
    free(c->tokens);
    memset(c, 0, sizeof *c);
}

/* Lower-case words of letters (apostrophes dropped: "LORD's" -> "lords") */
nl_status nl_mup_w2v_corpus_from_text(const uint8_t *text, int64_t n, int V, nl_mup_w2v_corpus *out) {
    memset(out, 0, sizeof *out);
    if (V < 2) return nl_set_error(NL_EINVAL, "w2v corpus: vocabulary of %d words", V);
    w2v_hash h;
    memset(&h, 0, sizeof h);
    h.cap = 1 << 17;
    h.slot = malloc((size_t)h.cap * sizeof *h.slot);
    int32_t *ids = malloc((size_t)(n / 2 + 1) * sizeof *ids); /* (at most n/2 + 1 words) hash index per word */
    int64_t *ord = NULL, *map = NULL;
    nl_status s = NL_OK;
    if (!h.slot || !ids) { s = nl_set_error(NL_ENOMEM, "w2v corpus: out of memory"); goto done; }
    memset(h.slot, 0xff, (size_t)h.cap * sizeof *h.slot);
    int64_t nw = 0;
    char w[64];
    size_t len = 0;
    for (int64_t i = 0; i <= n; i++) {
        int c = i < n ? text[i] : ' ';
        if (isalpha(c)) {
            if (len < sizeof w - 1) w[len++] = (char)tolower(c);
            continue;
        }
        if (c == '\'' && len) continue;
        if (!len) continue;
        int64_t k = w2v_find(&h, w, len, 1);
        if (k < 0) { s = nl_set_error(NL_ENOMEM, "w2v corpus: out of memory or more than %lld distinct words", (long long)h.cap / 2); goto done; }
        h.count[k]++;
        ids[nw++] = (int32_t)k;
        len = 0;
    }
    if (V > h.n) V = (int)h.n;
    ord = malloc((size_t)h.n * sizeof *ord);
    map = malloc((size_t)h.n * sizeof *map);
    out->vocab = calloc((size_t)V, sizeof *out->vocab);
    out->count = calloc((size_t)V, sizeof *out->count);
    out->tokens = malloc((size_t)(nw ? nw : 1) * sizeof *out->tokens);
    if (!ord || !map || !out->vocab || !out->count || !out->tokens) { s = nl_set_error(NL_ENOMEM, "w2v corpus: out of memory"); goto done; }
    for (int64_t i = 0; i < h.n; i++) ord[i] = i, map[i] = -1;
    g_sort_h = &h;
    qsort(ord, (size_t)h.n, sizeof *ord, w2v_cmp);
    for (int i = 0; i < V; i++) {
        map[ord[i]] = i;
        out->vocab[i] = h.words[ord[i]];
        h.words[ord[i]] = NULL;
        out->count[i] = h.count[ord[i]];
    }
    out->V = V;
    for (int64_t i = 0; i < nw; i++)
        if (map[ids[i]] >= 0) out->tokens[out->n_tokens++] = (int32_t)map[ids[i]];
    out->n_words = nw;
done:
    w2v_hash_free(&h);
    free(ids);
    free(ord);
    free(map);
    if (s) nl_mup_w2v_corpus_free(out);
    return s;
}

nl_status nl_mup_w2v_corpus_kjv(int V, nl_mup_w2v_corpus *out) {
    uint8_t *buf = NULL;
    int64_t n = 0;
    nl_status s = nl_lm_corpus_load("kjv", &buf, &n);
    if (s) return s;
    s = nl_mup_w2v_corpus_from_text(buf, n, V, out);
    free(buf);
    return s;
}

/* ---------------- WordNet synonym pairs ---------------- */
static int w2v_vocab_index(const nl_mup_w2v_corpus *c, const char *w) {
    for (int i = 0; i < c->V; i++) /* V is a few thousand and this runs once per lemma of a synset in vocab: fine */
        if (!strcmp(c->vocab[i], w)) return i;
    return -1;
}

static int w2v_pair_cmp(const void *a, const void *b) {
    const int32_t *p = a, *q = b;
    return p[0] != q[0] ? (p[0] < q[0] ? -1 : 1) : p[1] != q[1] ? (p[1] < q[1] ? -1 : 1) : 0;
}

nl_status nl_mup_wordnet_pairs(const char *dir, const nl_mup_w2v_corpus *c, int32_t **pairs, int64_t *n_pairs) {
    static const char *const files[3] = {"data.noun", "data.verb", "data.adj"};
    *pairs = NULL;
    *n_pairs = 0;
    int64_t n = 0, cap = 0;
    int32_t *p = NULL; /* (cap, 2) pairs (a < b) */
    char path[512], *line = NULL;
    size_t lcap = 0;
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof path, "%s/%s", dir ? dir : "/usr/share/wordnet", files[f]);
        FILE *fp = fopen(path, "r");
        if (!fp) {
            free(p);
            free(line);
            return nl_set_error(NL_ENOTFOUND, "WordNet not found (%s): install the Debian package wordnet-base", path);
        }
        ssize_t len;
        while ((len = getline(&line, &lcap, fp)) > 0) {
            if (line[0] == ' ') continue; /* license header */
            char *save = NULL, *tok = strtok_r(line, " ", &save);
            int fld = 0, wcnt = -1;
            int ids[64], nid = 0;
            while (tok) {
                if (fld == 3) wcnt = (int)strtol(tok, NULL, 16);
                else if (fld >= 4 && wcnt >= 0 && fld < 4 + 2 * wcnt && (fld - 4) % 2 == 0) {
                    char *par = strchr(tok, '(');
                    if (par) *par = 0; /* adjective markers: "able(p)" */
                    for (char *q = tok; *q; q++) *q = (char)tolower((unsigned char)*q);
                    if (!strchr(tok, '_') && !strchr(tok, '-') && nid < 64) {
                        int k = w2v_vocab_index(c, tok);
                        int dup = 0;
                        for (int j = 0; j < nid; j++) dup |= ids[j] == k;
                        if (k >= 0 && !dup) ids[nid++] = k;
                    }
                } else if (fld >= 4 + 2 * wcnt && wcnt >= 0) break;
                fld++;
                tok = strtok_r(NULL, " ", &save);
            }
            for (int i = 0; i < nid; i++)
                for (int j = i + 1; j < nid; j++) {
                    if (n == cap) {
                        int64_t nc = cap ? 2 * cap : 1024;
                        int32_t *q = realloc(p, (size_t)nc * 2 * sizeof *q);
                        if (!q) { free(p); free(line); fclose(fp); return nl_set_error(NL_ENOMEM, "wordnet: out of memory"); }
                        p = q;
                        cap = nc;
                    }
                    p[2 * n] = ids[i] < ids[j] ? ids[i] : ids[j];
                    p[2 * n + 1] = ids[i] < ids[j] ? ids[j] : ids[i];
                    n++;
                }
        }
        fclose(fp);
    }
    free(line);
    if (n) qsort(p, (size_t)n, 2 * sizeof *p, w2v_pair_cmp);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (!m || w2v_pair_cmp(p + 2 * i, p + 2 * (m - 1))) p[2 * m] = p[2 * i], p[2 * m + 1] = p[2 * i + 1], m++;
    *pairs = p;
    *n_pairs = m;
    return NL_OK;
}

/* ---------------- skip-gram with negative sampling ---------------- */
static inline uint64_t w2v_next(uint64_t *s) { /* splitmix64: the sampling stream of one run */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

nl_status nl_mup_w2v_train(const nl_mup_w2v_corpus *c, const nl_mup_w2v_config *cfg, int kind, int64_t n, uint64_t seed,
                           float *E, float *E0, double *final_loss) {
    const int V = c->V;
    const double m = (double)n / cfg->base_width;
    /* per-coordinate init and effective LRs (README, "Feature learning: word2vec"): both E ~ N(0, 1), logit
     * alpha <E_w, U_o> with alpha = 1/sqrt(n); NTK: U ~ N(0, 1), LR eta for E and U; muP: U ~ N(0, 1/m), LR eta*m for
     * E (eta for U); broken muP: muP's LRs with NTK's U init */
    const double alpha = 1.0 / sqrt((double)n);
    const double u_std = kind == NL_MUP_W2V_MUP ? 1.0 / sqrt(m) : 1.0;
    const double lr_e = kind == NL_MUP_W2V_NTK ? cfg->lr : cfg->lr * m;
    const double lr_u = cfg->lr;
    float *U = malloc((size_t)V * (size_t)n * sizeof *U);     /* (V, n) output vectors */
    float *gE = malloc((size_t)n * sizeof *gE);                /* (n) gradient of the centre word's vector */
    int32_t *table = malloc((size_t)cfg->table * sizeof *table); /* (table) unigram^0.75 sampling table */
    double *keep = malloc((size_t)V * sizeof *keep);           /* (V) subsampling keep probability */
    if (!U || !gE || !table || !keep) {
        free(U); free(gE); free(table); free(keep);
        return nl_set_error(NL_ENOMEM, "w2v: out of memory");
    }
    nl_rng r;
    nl_rng_init(&r, seed, 41);
    for (int64_t i = 0; i < (int64_t)V * n; i++) E[i] = (float)nl_rng_normal(&r);
    for (int64_t i = 0; i < (int64_t)V * n; i++) U[i] = (float)(u_std * nl_rng_normal(&r));
    memcpy(E0, E, (size_t)V * (size_t)n * sizeof *E);
    double z = 0, acc = 0;
    int64_t total = 0;
    for (int i = 0; i < V; i++) z += pow((double)c->count[i], 0.75), total += c->count[i];
    for (int i = 0, j = 0; i < cfg->table; i++) {
        while (j < V - 1 && (i + 0.5) / cfg->table > (acc + pow((double)c->count[j], 0.75)) / z) acc += pow((double)c->count[j++], 0.75);
        table[i] = j;
    }
    for (int i = 0; i < V; i++) {
        double f = (double)c->count[i] / (double)total;
        keep[i] = cfg->subsample > 0 ? fmin(1.0, sqrt(cfg->subsample / f) + cfg->subsample / f) : 1.0;
    }
    uint64_t st = seed * 0x2545F4914F6CDD1DULL + 7;
    const int64_t T = cfg->tokens < c->n_tokens ? cfg->tokens : c->n_tokens;
    double loss_sum = 0;
    int64_t loss_n = 0;
    for (int64_t t = 0; t < T; t++) {
        const int32_t w = c->tokens[t];
        if (keep[w] < 1 && (double)(w2v_next(&st) >> 11) * 0x1.0p-53 >= keep[w]) continue;
        const double decay = 1.0 - (double)t / (double)T; /* linear LR decay to 0, as word2vec */
        const float le = (float)(lr_e * decay), lu = (float)(lr_u * decay), a = (float)alpha;
        float *ew = E + (int64_t)w * n;
        const int b = 1 + (int)(w2v_next(&st) % (uint64_t)cfg->window); /* word2vec's random window shrink */
        for (int64_t o = t - b; o <= t + b; o++) {
            if (o < 0 || o >= T || o == t) continue;
            for (int64_t k = 0; k < n; k++) gE[k] = 0;
            for (int d = 0; d <= cfg->negative; d++) {
                int32_t tgt = d == 0 ? c->tokens[o] : table[w2v_next(&st) % (uint64_t)cfg->table];
                if (d > 0 && tgt == c->tokens[o]) continue;
                float *ut = U + (int64_t)tgt * n;
                float dot = 0;
                for (int64_t k = 0; k < n; k++) dot += ew[k] * ut[k];
                const double logit = a * (double)dot, label = d == 0;
                const double sg = 1.0 / (1.0 + exp(-logit));
                if (t >= T - T / 10) {
                    loss_sum += label ? -log(sg + 1e-12) : -log(1 - sg + 1e-12);
                    loss_n++;
                }
                const float g = (float)(sg - label) * a; /* d loss / d dot, times alpha */
                for (int64_t k = 0; k < n; k++) {
                    gE[k] += g * ut[k];
                    ut[k] -= lu * g * ew[k];
                }
            }
            for (int64_t k = 0; k < n; k++) ew[k] -= le * gE[k];
        }
    }
    free(U); free(gE); free(table); free(keep);
    *final_loss = loss_n ? loss_sum / (double)loss_n : NAN;
    for (int64_t i = 0; i < (int64_t)V * n; i++)
        if (!isfinite(E[i])) return nl_set_error(NL_ENONFINITE, "w2v: embeddings diverged (width %lld)", (long long)n);
    return NL_OK;
}

double nl_mup_w2v_movement(const float *E, const float *E0, int V, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < (int64_t)V * n; i++) d += ((double)E[i] - E0[i]) * ((double)E[i] - E0[i]), s += (double)E0[i] * E0[i];
    return sqrt(d / s);
}

static double w2v_cos(const float *E, int64_t n, int a, int b) {
    double ab = 0, aa = 0, bb = 0;
    const float *x = E + (int64_t)a * n, *y = E + (int64_t)b * n;
    for (int64_t k = 0; k < n; k++) ab += (double)x[k] * y[k], aa += (double)x[k] * x[k], bb += (double)y[k] * y[k];
    return ab / sqrt(aa * bb + 1e-300);
}

double nl_mup_w2v_synonym_auc(const float *E, int V, int64_t n, const int32_t *pairs, int64_t n_pairs, int draws, uint64_t seed) {
    uint64_t st = seed * 0x9E3779B97F4A7C15ULL + 3;
    double wins = 0;
    int64_t cnt = 0;
    for (int64_t p = 0; p < n_pairs; p++) {
        const int a = pairs[2 * p], b = pairs[2 * p + 1];
        const double sab = w2v_cos(E, n, a, b);
        for (int d = 0; d < draws; d++) {
            int r = (int)(w2v_next(&st) % (uint64_t)V);
            if (r == a || r == b) continue;
            const double sr = w2v_cos(E, n, a, r);
            wins += sab > sr ? 1.0 : sab == sr ? 0.5 : 0.0;
            cnt++;
        }
    }
    return cnt ? wins / (double)cnt : NAN;
}
