/* Pieces of the `lm-infinite` ledger entry (ledger_eval.h): attention variants, BOS-started text windows and their
 * perplexity, passkey training rows and the batched teacher-forced passkey scorer. */
#include "lm_infinite/ledger_eval.h"
#include "nnlab/autograd.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const nl_lm_infinite_exp_variant_name[NL_LM_INFINITE_EXP_NV] = {"lm-infinite", "vanilla", "no-global-tokens", "no-distance-limit"};
const char *const nl_lm_infinite_exp_variant_kind[NL_LM_INFINITE_EXP_NV] = {"main", "baseline", "generic", "broken"};
const char *const nl_lm_infinite_exp_variant_what[NL_LM_INFINITE_EXP_NV] = {
    "Lambda mask (n_global starting tokens + n_local = L window) with distance limit L",
    "full causal RoPE attention (the baseline the paper beats: positions beyond L were never seen)",
    "sliding window of L tokens only (Lambda mask without its global tokens: a generic substitute)",
    "Lambda mask with the global tokens at their true, unclipped distance (no distance limit)",
};

/* a byte-level variant of the passkey text (the repository's text does not fit a 128-byte training window):
 * "The sky glows. The pass key is: 1234567. The sky glows. ... The pass key is:" -> " 1234567." */
static const nl_lm_infinite_passkey_text lmi_text = {"", "The sky glows.", "The pass key is: {K}.", "The pass key is:"};

void nl_lm_infinite_exp_set_variant(nl_lm *m, int v, int n_global, int L, nl_lm_infinite_cfg *ud) {
    m->cfg.attn_fn = NULL;
    m->cfg.attn_ud = NULL;
    m->cfg.lminf_global = n_global;
    m->cfg.lminf_local = L;
    switch (v) {
    case NL_LM_INFINITE_EXP_VANILLA: m->cfg.attn = NL_LM_ATTN_VANILLA; break;
    case NL_LM_INFINITE_EXP_NOGLOBAL: m->cfg.attn = NL_LM_ATTN_LMINF; m->cfg.lminf_global = 0; break;
    case NL_LM_INFINITE_EXP_NOLIMIT:
        ud->n_global = n_global;
        ud->n_local = L;
        ud->limit = NL_LM_INFINITE_NO_LIMIT;
        m->cfg.attn = NL_LM_ATTN_CUSTOM;
        m->cfg.attn_fn = nl_lm_infinite_attn_custom;
        m->cfg.attn_ud = ud;
        break;
    default: m->cfg.attn = NL_LM_ATTN_LMINF; break;
    }
}

nl_status nl_lm_infinite_exp_text_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *tg) {
    nl_lm_infinite_exp_text_ud *u = ud;
    (void)step;
    if (u->n < T + 1) return nl_set_error(NL_EINVAL, "lm-infinite: %lld training bytes, fewer than a window", (long long)u->n);
    for (int64_t b = 0; b < B; b++) {
        const int64_t s = nl_rng_below(&u->rng, (uint64_t)(u->n - T));
        ids[b * T] = NL_LM_INFINITE_EXP_BOS;
        for (int64_t i = 1; i < T; i++) ids[b * T + i] = u->tok[s + i - 1];
        for (int64_t i = 0; i < T; i++) tg[b * T + i] = u->tok[s + i];
    }
    return NL_OK;
}

nl_status nl_lm_infinite_exp_perplexity(nl_ctx *ctx, nl_lm *m, const int32_t *tok, int64_t n, int64_t T, int64_t n_pred, double *ppl) {
    int64_t nw = n_pred / T;
    if (nw < 1) nw = 1;
    if (nw * T > n) return nl_set_error(NL_EINVAL, "lm-infinite: %lld test bytes, fewer than %lld windows of %lld", (long long)n, (long long)nw, (long long)T);
    const int64_t batch = 4096 / T > 1 ? 4096 / T : 1;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(batch * T)); /* [batch, T] */
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)(batch * T));  /* [batch, T] */
    nl_ctx *c = ctx ? ctx : nl_ctx_new(0, 0); /* a caller's context keeps its grown arena (no page faults per call) */
    nl_status st = NL_OK;
    if (!ids || !tg || !c) { st = nl_set_error(NL_ENOMEM, "lm-infinite: out of memory (perplexity)"); goto done; }
    const int grad = nl_set_grad_enabled(c, 0);
    double sum = 0;
    for (int64_t w0 = 0; w0 < nw; w0 += batch) {
        const int64_t bs = nw - w0 < batch ? nw - w0 : batch;
        for (int64_t b = 0; b < bs; b++) {
            const int32_t *src = tok + (w0 + b) * T;
            ids[b * T] = NL_LM_INFINITE_EXP_BOS;
            memcpy(ids + b * T + 1, src, sizeof(int32_t) * (size_t)(T - 1));
            memcpy(tg + b * T, src, sizeof(int32_t) * (size_t)T);
        }
        nl_ctx_reset(c);
        nl_var *l = nl_lm_loss(m, c, ids, tg, bs, T, 0);
        if (!l) { st = nl_last_status(); goto done; }
        sum += nl_item(l) * (double)(bs * T);
    }
    *ppl = exp(sum / (double)(nw * T));
    nl_set_grad_enabled(c, grad);
done:
    free(ids);
    free(tg);
    if (c && c != ctx) nl_ctx_free(c);
    if (ctx) nl_ctx_reset(ctx);
    return st;
}

nl_status nl_lm_infinite_exp_pk_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *tg) {
    nl_lm_infinite_exp_pk_ud *u = ud;
    (void)step;
    for (int64_t b = 0; b < B; b++) {
        int32_t *id = ids + b * T, *t = tg + b * T;
        const int64_t lo = 60 < T - 10 ? 60 : T - 10, plen = lo + (int64_t)nl_rng_below(&u->rng, (uint64_t)(T - 10 - lo + 1));
        nl_lm_infinite_passkey_sample s;
        const int64_t key = 1 + (int64_t)nl_rng_below(&u->rng, (uint64_t)(u->key_max - 1));
        nl_status st = nl_lm_infinite_passkey_make(&lmi_text, plen - 1, NULL, NULL, -1, key, &u->rng, &s);
        if (st) return st;
        char seq[512];
        const int np = 1 + (int)strlen(s.prompt); /* with the BOS byte */
        int n = snprintf(seq, sizeof seq, "%c%s %lld.", NL_LM_INFINITE_EXP_BOS, s.prompt, (long long)s.key);
        nl_lm_infinite_passkey_sample_free(&s);
        if (n > T + 1) n = (int)T + 1;
        for (int64_t i = 0; i < T; i++) {
            id[i] = i < n ? (uint8_t)seq[i] : '\n';
            t[i] = i + 1 < n && i + 1 >= np ? (uint8_t)seq[i + 1] : -1;
        }
    }
    return NL_OK;
}

/* one passkey prompt of target bytes with the key's last digit about dist (>= min_dist) bytes before the end */
static nl_status pk_prompt(int64_t target, int64_t dist, int64_t min_dist, int64_t key, nl_rng *rng, nl_lm_infinite_passkey_sample *s,
                           int64_t *kdist) {
    nl_status st;
    int64_t at = -1;
    if (dist > 0) { /* slots: the needle after `at` fillers; each filler after it moves the key 15 bytes further */
        if ((st = nl_lm_infinite_passkey_make(&lmi_text, target, NULL, NULL, 0, key, rng, s))) return st;
        const int64_t nd = s->n_distract, step = (int64_t)strlen(lmi_text.distractor) + 1;
        const int64_t base = 2 + (int64_t)strlen(lmi_text.question); /* ". " + question after the key */
        int64_t after = (dist - base + step / 2) / step;
        if (after < 0) after = 0;
        while (base + after * step < min_dist) after++;
        nl_lm_infinite_passkey_sample_free(s);
        if (after > nd)
            return nl_set_error(NL_EINVAL, "lm-infinite passkey: a %lld-byte prompt cannot hold the needle %lld bytes before its end",
                                (long long)target, (long long)dist);
        at = nd - after;
    }
    if ((st = nl_lm_infinite_passkey_make(&lmi_text, target, NULL, NULL, at, key, rng, s))) return st;
    char ks[32];
    snprintf(ks, sizeof ks, ": %lld.", (long long)key);
    const char *p = strstr(s->prompt, ks);
    if (!p) { nl_lm_infinite_passkey_sample_free(s); return nl_set_error(NL_ESTATE, "lm-infinite passkey: key not found in the prompt"); }
    const int64_t last = (int64_t)(p - s->prompt) + (int64_t)strlen(ks) - 2; /* index of the key's last digit */
    *kdist = (int64_t)strlen(s->prompt) - 1 - last;
    if (dist > 0 && *kdist < min_dist) {
        nl_lm_infinite_passkey_sample_free(s);
        return nl_set_error(NL_ESTATE, "lm-infinite passkey: key %lld bytes before the end, inside the window", (long long)*kdist);
    }
    return NL_OK;
}

nl_status nl_lm_infinite_exp_passkey_acc(nl_lm *m, int64_t target, int n, uint64_t seed, uint64_t stream, int64_t dist, int64_t min_dist,
                             int64_t key_max, double *acc, double *mean_dist) {
    if (n < 1 || key_max < 2) return nl_set_error(NL_EINVAL, "lm-infinite passkey: need n >= 1 and key_max >= 2");
    nl_rng rng;
    nl_rng_init(&rng, seed, stream);
    const int64_t Tmax = target + 24, V = m->cfg.vocab;
    const int64_t batch = 8192 / Tmax > 1 ? 8192 / Tmax : 1;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(batch * Tmax)); /* [batch, Tmax] BOS + prompt + " K." + padding */
    int64_t *plen = malloc(sizeof(int64_t) * (size_t)batch);          /* (batch) BOS + prompt bytes */
    int64_t *keys = malloc(sizeof(int64_t) * (size_t)batch);          /* (batch) */
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_status st = NL_OK;
    int ok = 0;
    double dsum = 0;
    if (!ids || !plen || !keys || !c) { st = nl_set_error(NL_ENOMEM, "lm-infinite passkey: out of memory"); goto done; }
    nl_set_grad_enabled(c, 0);
    for (int i0 = 0; i0 < n; i0 += (int)batch) {
        const int64_t bs = n - i0 < batch ? n - i0 : batch;
        int64_t T = 0;
        for (int64_t b = 0; b < bs; b++) {
            nl_lm_infinite_passkey_sample s;
            int64_t kd = 0;
            keys[b] = 1 + (int64_t)nl_rng_below(&rng, (uint64_t)(key_max - 1));
            if ((st = pk_prompt(target, dist, min_dist, keys[b], &rng, &s, &kd))) goto done;
            dsum += (double)kd;
            char seq[64];
            const int64_t np = (int64_t)strlen(s.prompt), na = snprintf(seq, sizeof seq, " %lld.", (long long)keys[b]);
            if (np + 1 + na > Tmax) { nl_lm_infinite_passkey_sample_free(&s); st = nl_set_error(NL_ESTATE, "lm-infinite passkey: prompt too long"); goto done; }
            ids[b * Tmax] = NL_LM_INFINITE_EXP_BOS;
            for (int64_t i = 0; i < np; i++) ids[b * Tmax + 1 + i] = (uint8_t)s.prompt[i];
            for (int64_t i = 0; i < na; i++) ids[b * Tmax + 1 + np + i] = (uint8_t)seq[i];
            for (int64_t i = 1 + np + na; i < Tmax; i++) ids[b * Tmax + i] = '\n';
            plen[b] = 1 + np;
            if (1 + np + na > T) T = 1 + np + na;
            nl_lm_infinite_passkey_sample_free(&s);
        }
        /* pack the rows to [bs, T] (causal: the padding after a row's answer never matters) */
        for (int64_t b = 1; b < bs; b++) memmove(ids + b * T, ids + b * Tmax, sizeof(int32_t) * (size_t)T);
        nl_ctx_reset(c);
        nl_var *lg = nl_lm_forward(m, c, ids, bs, T, 0); /* [bs * T, V] */
        if (!lg) { st = nl_last_status(); goto done; }
        for (int64_t b = 0; b < bs; b++) {
            /* positions plen-1 .. : predict ' ', the digits, then a non-digit */
            int good = 1;
            for (int64_t i = plen[b] - 1; good; i++) {
                const int64_t row = b * T + i;
                int64_t best = 0;
                double bv = -INFINITY;
                for (int64_t v = 0; v < V; v++) {
                    const double x = nl_tensor_get(&lg->val, row * V + v);
                    if (x > bv) { bv = x; best = v; }
                }
                const int32_t want = ids[b * T + i + 1];
                if (want == '.') { good = !isdigit((int)best); break; }
                good = best == want;
            }
            ok += good;
        }
    }
    *acc = (double)ok / n;
    if (mean_dist) *mean_dist = dsum / n;
done:
    free(ids);
    free(plen);
    free(keys);
    nl_ctx_free(c);
    return st;
}
