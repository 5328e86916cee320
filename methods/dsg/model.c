/* Disambiguated Skip-gram and plain skip-gram training (methods/dsg/dsg.h): fused per-pair SGD on lib/text's
 * sampled softmax, the sense layer of sense.c, no autograd graph. */
#include "dsg/dsg.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* splitmix64 seeded from a Philox stream: the hot loops draw tens of millions of numbers per epoch */
typedef struct fast_rng {
    uint64_t s;
} fast_rng;
static void fr_seed(fast_rng *r, uint64_t seed, uint64_t stream) {
    nl_rng p;
    nl_rng_init(&p, seed, stream);
    r->s = ((uint64_t)nl_rng_u32(&p) << 32) | nl_rng_u32(&p);
}
static inline uint64_t fr_next(fast_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline double fr_open01(fast_rng *r) { return ((double)(fr_next(r) >> 11) + 0.5) * 0x1p-53; } /* (0, 1) */
/* (0, 1) in float: (k + 0.5) 2^-23, k < 2^23, is exact, so never 0 or 1 */
static inline float fr_open01f(fast_rng *r) { return ((float)(fr_next(r) >> 41) + 0.5f) * 0x1p-23f; }

enum { STREAM_INIT = 0x451, STREAM_SUB = 0x452, STREAM_NEG = 0x453, STREAM_GUMBEL = 0x454 };

nl_dsg_config nl_dsg_defaults(void) {
    nl_dsg_config c;
    memset(&c, 0, sizeof c);
    c.senses = 5, c.dim = 100, c.window = 5, c.samples = 64, c.lr = 0.1, c.pre_epochs = 1, c.epochs = 3;
    c.entropy = -0.1, c.temp = 0.5, c.disamb_lr = 1, c.subsample = 1e-4, c.seed = 1;
    return c;
}

nl_status nl_dsg_check_config(const nl_dsg_config *c) {
    if (c->senses < 1 || c->senses > NL_DSG_MAX_SENSES)
        return nl_set_error(NL_EINVAL, "dsg: senses %d outside [1, %d]", c->senses, NL_DSG_MAX_SENSES);
    if (c->dim < 1 || c->dim > 4096) return nl_set_error(NL_EINVAL, "dsg: dimension %d outside [1, 4096]", (int)c->dim);
    if (c->window < 1 || c->window > 64) return nl_set_error(NL_EINVAL, "dsg: window %d outside [1, 64]", c->window);
    if (c->samples < 1 || c->samples > 4096) return nl_set_error(NL_EINVAL, "dsg: samples %d outside [1, 4096]", c->samples);
    if (!(c->lr > 0) || c->lr > 10) return nl_set_error(NL_EINVAL, "dsg: learning rate %g outside (0, 10]", c->lr);
    if (c->pre_epochs < 0 || c->epochs < 0 || c->pre_epochs + c->epochs < 1)
        return nl_set_error(NL_EINVAL, "dsg: epochs %d + %d: need at least one", c->pre_epochs, c->epochs);
    if (!(c->temp > 0)) return nl_set_error(NL_EINVAL, "dsg: temperature %g must be > 0", c->temp);
    if (!(c->disamb_lr >= 0) || c->disamb_lr > 1e6) return nl_set_error(NL_EINVAL, "dsg: disambiguation lr multiplier %g outside [0, 1e6]", c->disamb_lr);
    if (!isfinite(c->entropy)) return nl_set_error(NL_EINVAL, "dsg: entropy coefficient must be finite");
    return NL_OK;
}

void nl_dsg_model_free(nl_dsg_model *m) {
    nl_text_emb_free(&m->E);
    nl_text_emb_free(&m->U);
    free(m->b), free(m->Wd), free(m->bd), free(m->Ws), free(m->bs);
    memset(m, 0, sizeof *m);
}

nl_status nl_dsg_model_init(nl_dsg_model *m, int32_t V, int32_t d, int S, uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (V < 1 || d < 1 || S < 1 || S > NL_DSG_MAX_SENSES)
        return nl_set_error(NL_EINVAL, "dsg: model of %d words, dimension %d, %d senses", (int)V, (int)d, S);
    m->V = V, m->d = d, m->S = S;
    nl_rng r;
    nl_rng_init(&r, seed, STREAM_INIT);
    nl_status st = nl_text_emb_init(&m->E, (int64_t)V * S, d, (float)(0.5 / d / S), &r);
    if (!st) st = nl_text_emb_init(&m->U, V, d, 0.0f, &r);
    if (!st && !(m->b = calloc((size_t)V, sizeof *m->b))) st = NL_ENOMEM;
    if (!st && S > 1) {
        m->Wd = calloc((size_t)V * (size_t)d * (size_t)S, sizeof *m->Wd);
        m->bd = calloc((size_t)V * (size_t)S, sizeof *m->bd);
        m->Ws = calloc((size_t)d * (size_t)S, sizeof *m->Ws);
        m->bs = calloc((size_t)S, sizeof *m->bs);
        if (!m->Wd || !m->bd || !m->Ws || !m->bs) st = NL_ENOMEM;
    }
    if (st) {
        nl_dsg_model_free(m);
        return st == NL_ENOMEM ? nl_set_error(NL_ENOMEM, "dsg: out of memory for %d x %d x %d senses", (int)V, S, (int)d) : st;
    }
    return NL_OK;
}

static int ctx_mean(const nl_text_emb *U, const int32_t *t, int64_t n, int64_t i, int window, float *ctx) {
    const int32_t d = U->dim;
    memset(ctx, 0, (size_t)d * sizeof *ctx);
    int cnt = 0;
    for (int64_t j = i - window; j <= i + window; j++) {
        if (j < 0 || j >= n || j == i) continue;
        const float *u = nl_text_emb_row(U, t[j]);
        for (int32_t k = 0; k < d; k++) ctx[k] += u[k];
        cnt++;
    }
    if (cnt)
        for (int32_t k = 0; k < d; k++) ctx[k] /= (float)cnt;
    return cnt;
}

int nl_dsg_context(const nl_dsg_model *m, const nl_text_docs *d, int64_t doc, int64_t i, int window, float *ctx) {
    return ctx_mean(&m->U, d->ids + d->off[doc], d->off[doc + 1] - d->off[doc], i, window, ctx);
}

/* logits[s] = W[s] . ctx + bias[s], W: [S, d] (one contiguous row per sense) */
static void logits_of(const float *W, const float *bias, int32_t d, int S, const float *ctx, double *logits) {
    for (int s = 0; s < S; s++) {
        const float *ws = W + (size_t)s * d;
        float a = 0;
        for (int32_t k = 0; k < d; k++) a += ws[k] * ctx[k];
        logits[s] = (double)bias[s] + a;
    }
}

void nl_dsg_logits(const nl_dsg_model *m, int32_t w, const float *ctx, double *logits) {
    if (m->S == 1) {
        logits[0] = 0;
        return;
    }
    logits_of(m->Wd + (size_t)w * m->d * m->S, m->bd + (size_t)w * m->S, m->d, m->S, ctx, logits);
}

/* ---- the shared driver: epochs, subsampling, windows, learning-rate decay ---- */
typedef struct train_state {
    nl_dsg_model *m;
    const nl_dsg_config *cfg;
    nl_text_unigram table;
    float *q;            /* [V] sampling probabilities of the table */
    float *gh, *h, *ctx; /* [d] */
    int32_t *neg;        /* [samples] */
    fast_rng neg_rng, gum_rng;
    double loss;
    int pretrain;        /* 1 during the pre-training epochs */
} train_state;

static inline void draw_negatives(train_state *ts) {
    const int64_t size = ts->table.size;
    for (int j = 0; j < ts->cfg->samples; j++) ts->neg[j] = ts->table.table[(uint64_t)(((unsigned __int128)fr_next(&ts->neg_rng) * (uint64_t)size) >> 64)];
}

/* one centre position of plain skip-gram: E[w] predicts every context word, one SGD step per pair */
static void sg_position(train_state *ts, const int32_t *t, int64_t n, int64_t i, float lr) {
    nl_dsg_model *m = ts->m;
    const int32_t d = m->d;
    float *e = nl_text_emb_row(&m->E, t[i]);
    for (int64_t j = i - ts->cfg->window; j <= i + ts->cfg->window; j++) {
        if (j < 0 || j >= n || j == i) continue;
        draw_negatives(ts);
        memset(ts->gh, 0, (size_t)d * sizeof *ts->gh);
        ts->loss += nl_text_ssm_step(e, &m->U, m->b, ts->q, t[j], ts->neg, ts->cfg->samples, lr, ts->gh);
        for (int32_t k = 0; k < d; k++) e[k] -= lr * ts->gh[k];
    }
}

/* one centre position of DSG: the sense layer in front of the same sampled softmax */
static void dsg_position(train_state *ts, const int32_t *t, int64_t n, int64_t i, float lr) {
    nl_dsg_model *m = ts->m;
    const nl_dsg_config *cfg = ts->cfg;
    const int32_t d = m->d, w = t[i];
    const int S = m->S, shared = ts->pretrain && !cfg->random_disamb;
    const double temp = ts->pretrain ? 1.0 : cfg->temp;
    float *W = S == 1 ? NULL : shared ? m->Ws : m->Wd + (size_t)w * d * S;
    float *bw = S == 1 ? NULL : shared ? m->bs : m->bd + (size_t)w * S;
    float *E = nl_text_emb_row(&m->E, (int64_t)w * S);
    double logits[NL_DSG_MAX_SENSES], g[NL_DSG_MAX_SENSES], y[NL_DSG_MAX_SENSES], dy[NL_DSG_MAX_SENSES],
        dl[NL_DSG_MAX_SENSES], dh[NL_DSG_MAX_SENSES];
    if (S > 1) ctx_mean(&m->U, t, n, i, cfg->window, ts->ctx); /* stop-gradient: a constant of this position */
    for (int64_t j = i - cfg->window; j <= i + cfg->window; j++) {
        if (j < 0 || j >= n || j == i) continue;
        if (S > 1) logits_of(W, bw, d, S, ts->ctx, logits);
        else logits[0] = 0;
        if (!ts->pretrain && S > 1)
            for (int s = 0; s < S; s++) g[s] = -logf(-logf(fr_open01f(&ts->gum_rng)));
        nl_dsg_sense_probs(logits, ts->pretrain || S == 1 ? NULL : g, temp, S, y);
        for (int32_t k = 0; k < d; k++) ts->h[k] = (float)y[0] * E[k];
        for (int s = 1; s < S; s++)
            for (int32_t k = 0; k < d; k++) ts->h[k] += (float)y[s] * E[(size_t)s * d + k];
        draw_negatives(ts);
        memset(ts->gh, 0, (size_t)d * sizeof *ts->gh);
        ts->loss += nl_text_ssm_step(ts->h, &m->U, m->b, ts->q, t[j], ts->neg, cfg->samples, lr, ts->gh);
        for (int s = 0; s < S; s++) { /* dL/dy_s = E_s . gh, before E moves */
            const float *es = E + (size_t)s * d;
            float a = 0;
            for (int32_t k = 0; k < d; k++) a += es[k] * ts->gh[k];
            dy[s] = a;
        }
        if (ts->pretrain && cfg->entropy != 0 && S > 1) {
            ts->loss += cfg->entropy * nl_dsg_entropy(y, S, dh);
            for (int s = 0; s < S; s++) dy[s] += cfg->entropy * dh[s];
        }
        for (int s = 0; s < S; s++) {
            const float a = lr * (float)y[s];
            float *es = E + (size_t)s * d;
            for (int32_t k = 0; k < d; k++) es[k] -= a * ts->gh[k];
        }
        if (S > 1 && !cfg->random_disamb) {
            nl_dsg_sense_backward(y, dy, temp, S, dl);
            const double lw = (double)lr * cfg->disamb_lr;
            for (int s = 0; s < S; s++) {
                const float a = (float)(lw * dl[s]);
                float *ws = W + (size_t)s * d;
                for (int32_t k = 0; k < d; k++) ws[k] -= a * ts->ctx[k];
            }
            for (int s = 0; s < S; s++) bw[s] -= (float)(lw * dl[s]);
        }
    }
}

typedef void (*position_fn)(train_state *ts, const int32_t *t, int64_t n, int64_t i, float lr);

static nl_status run(nl_dsg_model *m, const nl_dsg_config *cfg, const nl_text_docs *d, const nl_text_vocab *v,
                     nl_dsg_stats *st, position_fn fn) {
    nl_status s = nl_dsg_check_config(cfg);
    if (s) return s;
    if (v->n != m->V || cfg->dim != m->d || cfg->senses != m->S)
        return nl_set_error(NL_EINVAL, "dsg: model (%d words, d %d, S %d) does not match the vocabulary / config (%d, %d, %d)",
                            (int)m->V, (int)m->d, m->S, (int)v->n, (int)cfg->dim, cfg->senses);
    if (d->n_docs < 1 || d->off[d->n_docs] < 2) return nl_set_error(NL_EINVAL, "dsg: empty corpus (no two tokens to train on)");
    train_state ts;
    memset(&ts, 0, sizeof ts);
    ts.m = m, ts.cfg = cfg;
    int64_t maxlen = 0;
    for (int64_t k = 0; k < d->n_docs; k++)
        if (d->off[k + 1] - d->off[k] > maxlen) maxlen = d->off[k + 1] - d->off[k];
    float *keep = malloc((size_t)v->n * sizeof *keep);         /* [V] keep probabilities */
    int32_t *buf = malloc((size_t)(maxlen + 1) * sizeof *buf); /* [maxlen] a subsampled document */
    ts.q = malloc((size_t)v->n * sizeof *ts.q);
    ts.gh = malloc((size_t)m->d * sizeof *ts.gh);
    ts.h = malloc((size_t)m->d * sizeof *ts.h);
    ts.ctx = malloc((size_t)m->d * sizeof *ts.ctx);
    ts.neg = malloc((size_t)cfg->samples * sizeof *ts.neg);
    if (!keep || !buf || !ts.q || !ts.gh || !ts.h || !ts.ctx || !ts.neg) s = nl_set_error(NL_ENOMEM, "dsg: out of memory");
    if (!s) s = nl_text_unigram_build(&ts.table, v, 0.75, 1 << 20) /* 4 MB: cache-friendly draws */;
    if (!s) {
        nl_text_unigram_probs(&ts.table, v->n, ts.q);
        nl_text_vocab_keep_prob(v, cfg->subsample, keep);
        fast_rng sub;
        fr_seed(&sub, cfg->seed, STREAM_SUB);
        fr_seed(&ts.neg_rng, cfg->seed, STREAM_NEG);
        fr_seed(&ts.gum_rng, cfg->seed, STREAM_GUMBEL);
        if (cfg->random_disamb && m->S > 1) {
            nl_rng r;
            nl_rng_init(&r, cfg->seed, STREAM_GUMBEL + 1);
            for (size_t k = 0; k < (size_t)m->V * m->d * m->S; k++) m->Wd[k] = (float)nl_rng_normal(&r);
            memset(m->bd, 0, (size_t)m->V * m->S * sizeof *m->bd);
        }
        const int epochs = cfg->pre_epochs + cfg->epochs;
        /* pairs expected per epoch, for the decay: each document at its expected subsampled length */
        double est = 0;
        for (int64_t doc = 0; doc < d->n_docs; doc++) {
            double kept = 0;
            for (int64_t k = d->off[doc]; k < d->off[doc + 1]; k++) kept += keep[d->ids[k]] < 1.0f ? keep[d->ids[k]] : 1.0;
            const int64_t n = (int64_t)(kept + 0.5);
            for (int64_t i = 0; i < n; i++)
                est += (double)((i + cfg->window >= n ? n - 1 : i + cfg->window) - (i - cfg->window < 0 ? 0 : i - cfg->window));
        }
        const double total = est * epochs > 1 ? est * epochs : 1;
        const double t0 = now_s(), lr_min = cfg->lr * 1e-4;
        int64_t pairs = 0, words = 0;
        for (int ep = 0; ep < epochs; ep++) {
            ts.pretrain = ep < cfg->pre_epochs;
            if (ep == cfg->pre_epochs && m->S > 1 && !cfg->random_disamb) /* training: every word starts from the shared net */
                for (int32_t w = 0; w < m->V; w++) {
                    memcpy(m->Wd + (size_t)w * m->d * m->S, m->Ws, (size_t)m->d * m->S * sizeof *m->Ws);
                    memcpy(m->bd + (size_t)w * m->S, m->bs, (size_t)m->S * sizeof *m->bs);
                }
            ts.loss = 0;
            int64_t ep_pairs = 0;
            for (int64_t doc = 0; doc < d->n_docs; doc++) {
                const int32_t *t = d->ids + d->off[doc];
                int64_t n = 0;
                for (int64_t k = 0; k < d->off[doc + 1] - d->off[doc]; k++)
                    if (keep[t[k]] >= 1.0f || fr_open01(&sub) < keep[t[k]]) buf[n++] = t[k];
                for (int64_t i = 0; i < n; i++) {
                    double lr = cfg->lr * (1 - (double)(pairs + ep_pairs) / total);
                    if (lr < lr_min) lr = lr_min;
                    fn(&ts, buf, n, i, (float)lr);
                    const int64_t lo = i - cfg->window < 0 ? 0 : i - cfg->window, hi = i + cfg->window >= n ? n - 1 : i + cfg->window;
                    ep_pairs += hi - lo;
                    words++;
                }
            }
            pairs += ep_pairs;
            if (st) st->loss = ep_pairs ? ts.loss / (double)ep_pairs : NAN;
            if (cfg->verbose)
                nl_progress("dsg epoch %d/%d (%s): %lld pairs, loss %.4f, %.1f s", ep + 1, epochs,
                            ts.pretrain ? "pre-training" : "training", (long long)ep_pairs, ep_pairs ? ts.loss / (double)ep_pairs : NAN,
                            now_s() - t0);
        }
        if (st) st->pairs = pairs, st->words = words, st->seconds = now_s() - t0;
    }
    nl_text_unigram_free(&ts.table);
    free(keep), free(buf), free(ts.q), free(ts.gh), free(ts.h), free(ts.ctx), free(ts.neg);
    return s;
}

nl_status nl_dsg_train(nl_dsg_model *m, const nl_dsg_config *cfg, const nl_text_docs *d, const nl_text_vocab *v,
                       nl_dsg_stats *st) {
    return run(m, cfg, d, v, st, dsg_position);
}

nl_status nl_dsg_sg_train(nl_dsg_model *m, const nl_dsg_config *cfg, const nl_text_docs *d, const nl_text_vocab *v,
                          nl_dsg_stats *st) {
    if (cfg->senses != 1) return nl_set_error(NL_EINVAL, "dsg: plain skip-gram has one sense (got %d)", cfg->senses);
    return run(m, cfg, d, v, st, sg_position);
}

nl_status nl_dsg_priors(const nl_dsg_model *m, const nl_text_docs *d, int window, float *prior) {
    const int S = m->S;
    double *acc = calloc((size_t)m->V * S, sizeof *acc); /* [V, S] */
    float *ctx = malloc((size_t)m->d * sizeof *ctx);      /* [d] */
    if (!acc || !ctx) {
        free(acc), free(ctx);
        return nl_set_error(NL_ENOMEM, "dsg: out of memory");
    }
    double logits[NL_DSG_MAX_SENSES], y[NL_DSG_MAX_SENSES];
    for (int64_t doc = 0; doc < d->n_docs && S > 1; doc++)
        for (int64_t i = 0; i < d->off[doc + 1] - d->off[doc]; i++) {
            const int32_t w = d->ids[d->off[doc] + i];
            nl_dsg_context(m, d, doc, i, window, ctx);
            nl_dsg_logits(m, w, ctx, logits);
            nl_dsg_sense_probs(logits, NULL, 1.0, S, y);
            for (int s = 0; s < S; s++) acc[(size_t)w * S + s] += y[s];
        }
    for (int32_t w = 0; w < m->V; w++) {
        double z = 0;
        for (int s = 0; s < S; s++) z += acc[(size_t)w * S + s];
        for (int s = 0; s < S; s++) prior[(size_t)w * S + s] = z > 0 ? (float)(acc[(size_t)w * S + s] / z) : 1.0f / (float)S;
    }
    free(acc), free(ctx);
    return NL_OK;
}

void nl_dsg_word_vectors(const nl_dsg_model *m, const float *prior, float *vec) {
    const int32_t d = m->d;
    for (int32_t w = 0; w < m->V; w++) {
        float *o = vec + (size_t)w * d;
        memset(o, 0, (size_t)d * sizeof *o);
        for (int s = 0; s < m->S; s++) {
            const float p = m->S == 1 ? 1.0f : prior[(size_t)w * m->S + s], *e = nl_text_emb_row(&m->E, (int64_t)w * m->S + s);
            for (int32_t k = 0; k < d; k++) o[k] += p * e[k];
        }
    }
}
