/* Binary PV-DBOW, Binary PV-DM and Real-Binary PV-DBOW: training, inference, codes (methods/bpv/bpv.h). */
#include "bpv/bpv.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_bpv_config nl_bpv_defaults(void) {
    nl_bpv_config c = {NL_BPV_DBOW, 32, 100, 50, 5, 20, 20, 5, 0.05f, 0.f, 1e-3, 1};
    return c;
}

nl_status nl_bpv_config_check(const nl_bpv_config *c) {
    if (c->bits < 1 || c->bits > NL_BPV_MAX_BITS)
        return nl_set_error(NL_EINVAL, "bpv: code length %d out of range (1..%d)", c->bits, NL_BPV_MAX_BITS);
    if (c->kind < NL_BPV_DBOW || c->kind > NL_BPV_REAL_BINARY) return nl_set_error(NL_EINVAL, "bpv: unknown model");
    if (c->kind == NL_BPV_REAL_BINARY && (c->real_dim < 1 || c->real_dim > 4096))
        return nl_set_error(NL_EINVAL, "bpv: real dimension %d out of range (1..4096)", c->real_dim);
    if (c->kind == NL_BPV_DM && (c->word_dim < 1 || c->word_dim > 1000 || c->window < 1 || c->window > 50))
        return nl_set_error(NL_EINVAL, "bpv: PV-DM word dimension %d / window %d out of range", c->word_dim, c->window);
    if (c->epochs < 0 || c->infer_epochs < 0 || c->negatives < 1 || c->negatives > 100 || !(c->lr > 0) ||
        !(c->noise >= 0) || !(c->subsample >= 0))
        return nl_set_error(NL_EINVAL, "bpv: epochs, negatives (1..100), lr > 0, noise >= 0 or subsample invalid");
    return NL_OK;
}

void nl_bpv_free(nl_bpv_model *m) {
    if (!m) return;
    nl_text_emb_free(&m->out), nl_text_emb_free(&m->out_real), nl_text_emb_free(&m->out_dm);
    nl_text_emb_free(&m->word);
    free(m->proj), free(m->keep);
    nl_text_unigram_free(&m->uni);
    memset(m, 0, sizeof *m);
}

static inline float sigm(float x) { return 1.f / (1.f + expf(-x)); }

nl_status nl_bpv_init(nl_bpv_model *m, const nl_bpv_config *c, const nl_text_vocab *counts, int64_t n_docs,
                      nl_bpv_docvec *dv) {
    memset(m, 0, sizeof *m);
    memset(dv, 0, sizeof *dv);
    nl_status st = nl_bpv_config_check(c);
    if (st) return st;
    if (n_docs < 1) return nl_set_error(NL_EINVAL, "bpv: empty corpus (no document with an in-vocabulary word)");
    if (counts->n < 2 || counts->total < 1) return nl_set_error(NL_EINVAL, "bpv: empty vocabulary");
    m->cfg = *c, m->V = counts->n;
    nl_rng r;
    nl_rng_init(&r, c->seed, 7);
    const int B = c->bits, R = c->real_dim;
    if ((st = nl_text_unigram_build(&m->uni, counts, 0.75, 1 << 20))) return nl_bpv_free(m), st;
    m->keep = malloc(sizeof(float) * (size_t)m->V); /* [V] */
    if (!m->keep) return nl_bpv_free(m), nl_set_error(NL_ENOMEM, "bpv: out of memory");
    nl_text_vocab_keep_prob(counts, c->subsample, m->keep);
    /* output vectors start at zero (word2vec); document vectors uniform(+-0.5 / dim) */
    if (c->kind == NL_BPV_DM) {
        st = nl_text_emb_init(&m->out_dm, m->V, B + c->word_dim + 1, 0, &r);
        if (!st) st = nl_text_emb_init(&m->word, m->V, c->word_dim, 0.5f / (float)c->word_dim, &r);
    } else st = nl_text_emb_init(&m->out, m->V, B + 1, 0, &r);
    if (!st && c->kind == NL_BPV_REAL_BINARY) {
        st = nl_text_emb_init(&m->out_real, m->V, R + 1, 0, &r);
        m->proj = st ? NULL : malloc(sizeof(float) * (size_t)B * (size_t)R); /* [B, R] */
        if (!st && !m->proj) st = nl_set_error(NL_ENOMEM, "bpv: out of memory");
        for (int64_t i = 0; !st && i < (int64_t)B * R; i++) m->proj[i] = (float)(nl_rng_normal(&r) / sqrt((double)R));
    }
    int dim = c->kind == NL_BPV_REAL_BINARY ? R : B;
    if (!st) st = nl_text_emb_init(dv, n_docs, dim, 0.5f / (float)dim, &r);
    if (st) nl_bpv_free(m);
    return st;
}

/* One (document, position) step. e: the document vector; frozen: shared weights not updated. Returns the loss. */
static float step(nl_bpv_model *m, float *e, const int32_t *doc, int len, int pos, int32_t *neg, float lr,
                  int frozen, int want, nl_rng *r, float *buf) {
    const nl_bpv_config *c = &m->cfg;
    const int B = c->bits, W = c->word_dim, k = c->negatives;
    float *h = buf, *gh = buf + 2048, *s = buf + 4096; /* [<= 2048] each */
    int32_t t = doc[pos];
    for (int j = 0; j < k; j++) neg[j] = nl_text_unigram_draw(&m->uni, r);
    float ulr = frozen ? 0.f : lr, loss = 0;
    const float *pre = e; /* the binary layer's pre-activation */
    for (int b = 0; b < B; b++) {
        float x = pre[b] + (c->noise > 0 && !frozen ? c->noise * (float)nl_rng_normal(r) : 0.f);
        s[b] = sigm(x);
        h[b] = c->noise > 0 && !frozen ? s[b] : (s[b] > 0.5f ? 1.f : 0.f);
    }
    int n_ctx = 0;
    if (c->kind == NL_BPV_DM) {
        float *mc = h + B;
        memset(mc, 0, sizeof(float) * (size_t)W);
        for (int o = pos - c->window; o <= pos + c->window; o++) {
            if (o < 0 || o >= len || o == pos) continue;
            const float *wv = nl_text_emb_row(&m->word, doc[o]);
            for (int q = 0; q < W; q++) mc[q] += wv[q];
            n_ctx++;
        }
        if (n_ctx)
            for (int q = 0; q < W; q++) mc[q] /= (float)n_ctx;
        h[B + W] = 1.f;
        memset(gh, 0, sizeof(float) * (size_t)(B + W + 1));
        loss = nl_text_ns_step_ex(h, &m->out_dm, t, neg, k, ulr, gh, want);
        if (n_ctx && !frozen)
            for (int o = pos - c->window; o <= pos + c->window; o++) {
                if (o < 0 || o >= len || o == pos) continue;
                nl_text_emb_update(&m->word, doc[o], -lr / (float)n_ctx, gh + B);
            }
    } else {
        h[B] = 1.f;
        memset(gh, 0, sizeof(float) * (size_t)(B + 1));
        loss = nl_text_ns_step_ex(h, &m->out, t, neg, k, ulr, gh, want);
    }
    /* straight-through: dL/dpre = dL/dh * sigmoid'(pre) */
    for (int b = 0; b < B; b++) gh[b] *= s[b] * (1 - s[b]);
    for (int b = 0; b < B; b++) e[b] -= lr * gh[b];
    return loss;
}

/* Real-Binary PV-DBOW over one document: the code is computed once from r (the document's real vector), the
 * gradients of both heads are summed over the document's (kept) words, then r and P are updated once. */
static float rb_doc(nl_bpv_model *m, float *e, const int32_t *doc, int len, int32_t *neg, float lr, int frozen,
                    int want, nl_rng *r, float *buf) {
    const nl_bpv_config *c = &m->cfg;
    const int B = c->bits, R = c->real_dim, k = c->negatives;
    float *h = buf, *gb = buf + 2048, *s = buf + 4096, *hr = buf + 8192, *gr = buf + 8192 + 4097; /* [B+1] / [R+1] */
    float ulr = frozen ? 0.f : lr, loss = 0;
    for (int b = 0; b < B; b++) {
        float v = 0;
        const float *p = m->proj + (int64_t)b * R;
        for (int q = 0; q < R; q++) v += p[q] * e[q];
        v += c->noise > 0 && !frozen ? c->noise * (float)nl_rng_normal(r) : 0.f;
        s[b] = sigm(v);
        h[b] = c->noise > 0 && !frozen ? s[b] : (s[b] > 0.5f ? 1.f : 0.f);
    }
    h[B] = 1.f;
    memcpy(hr, e, sizeof(float) * (size_t)R);
    hr[R] = 1.f;
    memset(gb, 0, sizeof(float) * (size_t)(B + 1));
    memset(gr, 0, sizeof(float) * (size_t)(R + 1));
    int used = 0;
    for (int p = 0; p < len; p++) {
        if (m->keep[doc[p]] < 1.f && nl_rng_uniform(r) > m->keep[doc[p]]) continue;
        for (int j = 0; j < k; j++) neg[j] = nl_text_unigram_draw(&m->uni, r);
        loss += nl_text_ns_step_ex(h, &m->out, doc[p], neg, k, ulr, gb, want);
        loss += nl_text_ns_step_ex(hr, &m->out_real, doc[p], neg, k, ulr, gr, want);
        used++;
    }
    if (!used) return 0;
    for (int b = 0; b < B; b++) { /* straight-through into P r */
        float g = gb[b] * s[b] * (1 - s[b]);
        float *p = m->proj + (int64_t)b * R;
        for (int q = 0; q < R; q++) gr[q] += g * p[q];
        if (!frozen)
            for (int q = 0; q < R; q++) p[q] -= lr * g * e[q];
    }
    for (int q = 0; q < R; q++) e[q] -= lr * gr[q];
    return loss;
}

static nl_status run_epochs(nl_bpv_model *m, const nl_text_docs *d, nl_bpv_docvec *dv, int epochs, int frozen,
                            uint64_t seed, double *loss_out) {
    nl_rng r;
    nl_rng_init(&r, seed, frozen ? 11 : 13);
    float *buf = malloc(sizeof(float) * (8192 + 2 * 4097 + 16)); /* scratch: h, gh, s, a, real h / grad */
    int32_t neg[128];
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)(d->n_docs + 1)); /* [n_docs] */
    if (!buf || !perm) return free(buf), free(perm), nl_set_error(NL_ENOMEM, "bpv: out of memory");
    int64_t total = (int64_t)epochs * d->off[d->n_docs], done = 0;
    double loss = 0;
    int64_t nl = 0;
    for (int ep = 0; ep < epochs; ep++) {
        nl_rng_permutation(&r, perm, d->n_docs);
        double el = 0;
        int64_t en = 0;
        for (int64_t ii = 0; ii < d->n_docs; ii++) {
            int64_t i = perm[ii];
            const int32_t *doc = d->ids + d->off[i];
            int len = (int)(d->off[i + 1] - d->off[i]);
            float *e = nl_text_emb_row(dv, i);
            if (m->cfg.kind == NL_BPV_REAL_BINARY) {
                float lr = m->cfg.lr * (1.f - 0.999f * (float)done / (float)(total > 0 ? total : 1));
                el += rb_doc(m, e, doc, len, neg, lr, frozen, ep == epochs - 1 && loss_out, &r, buf);
                en += len, done += len;
                continue;
            }
            for (int p = 0; p < len; p++, done++) {
                if (m->keep[doc[p]] < 1.f && nl_rng_uniform(&r) > m->keep[doc[p]]) continue;
                float lr = m->cfg.lr * (1.f - 0.999f * (float)done / (float)(total > 0 ? total : 1));
                el += step(m, e, doc, len, p, neg, lr, frozen, ep == epochs - 1 && loss_out, &r, buf);
                en++;
            }
        }
        if (ep == epochs - 1) loss = el, nl = en;
    }
    free(buf), free(perm);
    if (loss_out) *loss_out = nl ? loss / (double)nl : NAN;
    return NL_OK;
}

nl_status nl_bpv_train(nl_bpv_model *m, const nl_bpv_config *c, const nl_text_vocab *counts, const nl_text_docs *d,
                       nl_bpv_docvec *dv, double *loss) {
    nl_status st = nl_bpv_init(m, c, counts, d->n_docs, dv);
    if (st) return st;
    if ((st = run_epochs(m, d, dv, c->epochs, 0, c->seed, loss))) nl_bpv_free(m), nl_text_emb_free(dv);
    return st;
}

nl_status nl_bpv_infer(const nl_bpv_model *m, const nl_text_docs *d, uint64_t seed, nl_bpv_docvec *dv) {
    memset(dv, 0, sizeof *dv);
    if (d->n_docs < 1) return nl_set_error(NL_EINVAL, "bpv: no document to encode (none has an in-vocabulary word)");
    nl_rng r;
    nl_rng_init(&r, seed, 17);
    int dim = m->cfg.kind == NL_BPV_REAL_BINARY ? m->cfg.real_dim : m->cfg.bits;
    nl_status st = nl_text_emb_init(dv, d->n_docs, dim, 0.5f / (float)dim, &r);
    if (st) return st;
    /* the model is read-only here: run_epochs with frozen = 1 never writes its weights (the cast is safe) */
    return run_epochs((nl_bpv_model *)m, d, dv, m->cfg.infer_epochs, 1, seed, NULL);
}

nl_status nl_bpv_codes(const nl_bpv_model *m, const nl_bpv_docvec *dv, uint64_t **codes) {
    const int B = m->cfg.bits, R = m->cfg.real_dim, nw = (B + 63) / 64;
    uint64_t *cd = calloc((size_t)(dv->rows * nw + 1), sizeof(uint64_t)); /* [n_docs, nw] */
    if (!cd) return nl_set_error(NL_ENOMEM, "bpv: out of memory");
    for (int64_t i = 0; i < dv->rows; i++) {
        const float *e = nl_text_emb_row(dv, i);
        for (int b = 0; b < B; b++) {
            float v = e[b < dv->dim ? b : 0];
            if (m->cfg.kind == NL_BPV_REAL_BINARY) {
                v = 0;
                for (int q = 0; q < R; q++) v += m->proj[(int64_t)b * R + q] * e[q];
            }
            if (v > 0) cd[i * nw + b / 64] |= 1ull << (b % 64);
        }
    }
    *codes = cd;
    return NL_OK;
}
