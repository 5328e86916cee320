/* Hamming retrieval, MAP / precision@100, re-ranking, and the two baselines (methods/bpv/bpv.h). */
#include "bpv/bpv.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline int hamming(const uint64_t *a, const uint64_t *b, int nw) {
    int d = 0;
    for (int w = 0; w < nw; w++) d += __builtin_popcountll(a[w] ^ b[w]);
    return d;
}

void nl_bpv_search(const uint64_t *q, const uint64_t *db, int64_t ndb, int bits, int64_t k, int64_t *idx, int *dist) {
    const int nw = (bits + 63) / 64;
    int64_t n = 0;
    for (int dd = 0; dd <= bits && n < k; dd++) /* bucket by distance, index order inside a bucket */
        for (int64_t i = 0; i < ndb && n < k; i++)
            if (hamming(q, db + i * nw, nw) == dd) idx[n] = i, dist[n] = dd, n++;
}

typedef struct scored {
    float s;
    int64_t i;
} scored;
static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return 0; /* qsort is not stable: ties keep no order (equal cosines are rare) */
}

nl_status nl_bpv_evaluate(const uint64_t *qcodes, const int32_t *qlab, int64_t nq, const uint64_t *dbcodes,
                          const int32_t *dblab, int64_t ndb, int bits, const float *qreal, const float *dbreal,
                          int rdim, int64_t shortlist, nl_bpv_eval *ev) {
    memset(ev, 0, sizeof *ev);
    if (nq < 1 || ndb < 1) return nl_set_error(NL_EINVAL, "bpv: evaluation needs queries and a database");
    const int nw = (bits + 63) / 64;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)ndb); /* [ndb] fixed tie order */
    int64_t *rank = malloc(sizeof(int64_t) * (size_t)ndb);  /* [ndb] ranking of one query */
    int64_t *cnt = malloc(sizeof(int64_t) * (size_t)(bits + 2));
    int *dist = malloc(sizeof(int) * (size_t)ndb);
    scored *sc = malloc(sizeof(scored) * (size_t)(shortlist > 0 ? shortlist : 1));
    if (!order || !rank || !cnt || !dist || !sc) {
        free(order), free(rank), free(cnt), free(dist), free(sc);
        return nl_set_error(NL_ENOMEM, "bpv: out of memory");
    }
    nl_rng r;
    nl_rng_init(&r, 12345, 0);
    nl_rng_permutation(&r, order, ndb);
    double map = 0, p100 = 0;
    int64_t used = 0;
    for (int64_t qi = 0; qi < nq; qi++) {
        const uint64_t *q = qcodes + qi * nw;
        memset(cnt, 0, sizeof(int64_t) * (size_t)(bits + 2));
        int64_t nrel = 0;
        for (int64_t j = 0; j < ndb; j++) {
            dist[j] = hamming(q, dbcodes + j * nw, nw);
            cnt[dist[j] + 1]++;
            nrel += dblab[j] == qlab[qi];
        }
        if (nrel == 0) continue; /* AP undefined */
        for (int b = 1; b <= bits + 1; b++) cnt[b] += cnt[b - 1];
        for (int64_t jj = 0; jj < ndb; jj++) {
            int64_t j = order[jj];
            rank[cnt[dist[j]]++] = j;
        }
        if (qreal && dbreal && shortlist > 1) { /* re-rank the shortlist by cosine of the real vectors */
            int64_t K = shortlist < ndb ? shortlist : ndb;
            const float *a = qreal + qi * rdim;
            double na = 0;
            for (int t = 0; t < rdim; t++) na += (double)a[t] * a[t];
            for (int64_t k = 0; k < K; k++) {
                const float *b = dbreal + rank[k] * rdim;
                double dot = 0, nb = 0;
                for (int t = 0; t < rdim; t++) dot += (double)a[t] * b[t], nb += (double)b[t] * b[t];
                sc[k].s = (float)(dot / (sqrt(na * nb) + 1e-12)), sc[k].i = rank[k];
            }
            qsort(sc, (size_t)K, sizeof(scored), cmp_scored);
            for (int64_t k = 0; k < K; k++) rank[k] = sc[k].i;
        }
        double ap = 0;
        int64_t hit = 0, hit100 = 0;
        for (int64_t k = 0; k < ndb; k++)
            if (dblab[rank[k]] == qlab[qi]) {
                hit++;
                ap += (double)hit / (double)(k + 1);
                if (k < 100) hit100++;
            }
        map += ap / (double)nrel;
        p100 += (double)hit100 / (double)(ndb < 100 ? ndb : 100);
        used++;
    }
    free(order), free(rank), free(cnt), free(dist), free(sc);
    if (!used) return nl_set_error(NL_EINVAL, "bpv: no query has a relevant document in the database");
    ev->map = map / (double)used, ev->p100 = p100 / (double)used, ev->queries = used;
    return NL_OK;
}

nl_status nl_bpv_lsh(const nl_text_docs *fit, int32_t V, int bits, uint64_t seed, const nl_text_docs *const *sets,
                     uint64_t **const *codes, int n_sets) {
    if (bits < 1 || bits > NL_BPV_MAX_BITS) return nl_set_error(NL_EINVAL, "bpv: LSH code length %d", bits);
    const int nw = (bits + 63) / 64;
    float *idf = malloc(sizeof(float) * (size_t)V);              /* [V] */
    float *R = malloc(sizeof(float) * (size_t)V * (size_t)bits); /* [V, bits] hyperplanes */
    float *acc = malloc(sizeof(float) * (size_t)bits);
    if (!idf || !R || !acc) return free(idf), free(R), free(acc), nl_set_error(NL_ENOMEM, "bpv: out of memory");
    nl_status st = nl_text_idf(fit, V, idf);
    nl_rng r;
    nl_rng_init(&r, seed, 23);
    for (int64_t i = 0; i < (int64_t)V * bits; i++) R[i] = (float)nl_rng_normal(&r);
    for (int s = 0; s < n_sets && !st; s++) {
        const nl_text_docs *d = sets[s];
        int64_t maxlen = 1;
        for (int64_t i = 0; i < d->n_docs; i++)
            if (d->off[i + 1] - d->off[i] > maxlen) maxlen = d->off[i + 1] - d->off[i];
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)maxlen);
        float *w = malloc(sizeof(float) * (size_t)maxlen);
        uint64_t *cd = calloc((size_t)(d->n_docs * nw + 1), sizeof(uint64_t)); /* [n_docs, nw] */
        if (!ids || !w || !cd) {
            free(ids), free(w), free(cd);
            st = nl_set_error(NL_ENOMEM, "bpv: out of memory");
            break;
        }
        for (int64_t i = 0; i < d->n_docs; i++) {
            int m = nl_text_tfidf_doc(d, i, idf, ids, w);
            memset(acc, 0, sizeof(float) * (size_t)bits);
            for (int j = 0; j < m; j++)
                for (int b = 0; b < bits; b++) acc[b] += w[j] * R[(int64_t)ids[j] * bits + b];
            for (int b = 0; b < bits; b++)
                if (acc[b] > 0) cd[i * nw + b / 64] |= 1ull << (b % 64);
        }
        free(ids), free(w);
        *codes[s] = cd;
    }
    free(idf), free(R), free(acc);
    return st;
}

/* Encoder pre-activation a = W x + c for document i, x = the distribution of its words with id < A. */
static int ae_encode(const nl_text_docs *d, int64_t i, int A, int B, const float *W, const float *c, float *a) {
    int n = 0;
    memcpy(a, c, sizeof(float) * (size_t)B);
    for (int64_t p = d->off[i]; p < d->off[i + 1]; p++) n += d->ids[p] < A;
    if (!n) return 0;
    for (int64_t p = d->off[i]; p < d->off[i + 1]; p++)
        if (d->ids[p] < A)
            for (int b = 0; b < B; b++) a[b] += W[(int64_t)d->ids[p] * B + b] / (float)n;
    return n;
}

nl_status nl_bpv_ae(const nl_text_docs *train, const nl_text_vocab *counts, int ae_vocab, const nl_bpv_config *cfg,
                    const nl_text_docs *const *sets, uint64_t **const *codes, int n_sets) {
    nl_status st = nl_bpv_config_check(cfg);
    if (st) return st;
    const int B = cfg->bits, A = ae_vocab < counts->n ? ae_vocab : counts->n, k = cfg->negatives, nw = (B + 63) / 64;
    nl_text_vocab top; /* the A most frequent words (ids 0..A-1 of a frequency-sorted vocabulary) */
    if ((st = nl_text_vocab_init(&top))) return st;
    for (int32_t i = 0; i < A && !st; i++)
        st = nl_text_vocab_add(&top, counts->word[i], (int)strlen(counts->word[i]), counts->count[i] + 1, NULL);
    nl_text_unigram uni = {0};
    if (!st) st = nl_text_unigram_build(&uni, &top, 0.75, 1 << 20);
    nl_text_vocab_free(&top);
    if (st) return st;
    nl_rng r;
    nl_rng_init(&r, cfg->seed, 29);
    nl_text_emb out;
    float *W = malloc(sizeof(float) * (size_t)A * (size_t)B); /* [A, B] encoder */
    float *c = calloc((size_t)B, sizeof(float));               /* [B] */
    float *a = malloc(sizeof(float) * (size_t)B), *s = malloc(sizeof(float) * (size_t)B);
    float *h = malloc(sizeof(float) * (size_t)(B + 1)), *gh = malloc(sizeof(float) * (size_t)(B + 1));
    float *ga = malloc(sizeof(float) * (size_t)B);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)(train->n_docs + 1));
    int32_t neg[128];
    st = nl_text_emb_init(&out, A, B + 1, 0, &r);
    if (!st && (!W || !c || !a || !s || !h || !gh || !ga || !perm)) st = nl_set_error(NL_ENOMEM, "bpv: out of memory");
    for (int64_t i = 0; !st && i < (int64_t)A * B; i++) W[i] = (float)(nl_rng_normal(&r) * 0.1);
    int64_t total = (int64_t)cfg->epochs * train->n_docs, done = 0;
    for (int ep = 0; ep < cfg->epochs && !st; ep++) {
        nl_rng_permutation(&r, perm, train->n_docs);
        for (int64_t ii = 0; ii < train->n_docs; ii++, done++) {
            int64_t i = perm[ii];
            int n = ae_encode(train, i, A, B, W, c, a);
            if (!n) continue;
            float lr = cfg->lr * (1.f - 0.999f * (float)done / (float)total);
            for (int b = 0; b < B; b++) {
                float x = a[b] + (cfg->noise > 0 ? cfg->noise * (float)nl_rng_normal(&r) : 0.f);
                s[b] = 1.f / (1.f + expf(-x));
                h[b] = cfg->noise > 0 ? s[b] : (s[b] > 0.5f ? 1.f : 0.f);
            }
            h[B] = 1.f;
            memset(ga, 0, sizeof(float) * (size_t)B);
            for (int64_t p = train->off[i]; p < train->off[i + 1]; p++) { /* reconstruct every (kept) word */
                int32_t t = train->ids[p];
                if (t >= A) continue;
                for (int j = 0; j < k; j++) neg[j] = nl_text_unigram_draw(&uni, &r);
                memset(gh, 0, sizeof(float) * (size_t)(B + 1));
                nl_text_ns_step_ex(h, &out, t, neg, k, lr, gh, 0);
                for (int b = 0; b < B; b++) ga[b] += gh[b] * s[b] * (1 - s[b]);
            }
            for (int b = 0; b < B; b++) c[b] -= lr * ga[b];
            for (int64_t p = train->off[i]; p < train->off[i + 1]; p++)
                if (train->ids[p] < A)
                    for (int b = 0; b < B; b++) W[(int64_t)train->ids[p] * B + b] -= lr * ga[b] / (float)n;
        }
    }
    for (int q = 0; q < n_sets && !st; q++) {
        const nl_text_docs *d = sets[q];
        uint64_t *cd = calloc((size_t)(d->n_docs * nw + 1), sizeof(uint64_t)); /* [n_docs, nw] */
        if (!cd) { st = nl_set_error(NL_ENOMEM, "bpv: out of memory"); break; }
        for (int64_t i = 0; i < d->n_docs; i++) {
            ae_encode(d, i, A, B, W, c, a);
            for (int b = 0; b < B; b++)
                if (a[b] > 0) cd[i * nw + b / 64] |= 1ull << (b % 64);
        }
        *codes[q] = cd;
    }
    nl_text_emb_free(&out), nl_text_unigram_free(&uni);
    free(W), free(c), free(a), free(s), free(h), free(gh), free(ga), free(perm);
    return st;
}
