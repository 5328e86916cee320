/* The giraffe evaluations: batched greedy retrieval on LongChat-Lines prompts (dense or haystack; optionally with
 * scrambled positions) and text bits per byte at a window length. methods/giraffe/README.md. */
#include "giraffe/giraffe.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_status nl_giraffe_lines_correct(nl_lm *m, nl_ctx *ctx, int64_t P, int32_t offset, int haystack, int n, int batch,
                                   uint64_t seed, int scrambled, int *k) {
    *k = 0;
    const int n_lines = haystack ? 1 : nl_lines_fit(P);
    if (n_lines < 1 || n < 1 || batch < 1 || P < nl_lines_prompt_len(1) + NL_LINES_ANSWER_TOKENS)
        return nl_set_error(NL_EINVAL, "giraffe eval: %lld tokens hold no Lines prompt, or n/batch < 1", (long long)P);
    const int64_t A = NL_LINES_ANSWER_TOKENS, S = haystack ? P : nl_lines_prompt_len(n_lines) + A;   /* sample length */
    const int64_t pl = S - A, T = pl + A - 2;   /* rows pl-1 .. pl+A-3 predict "<" d d d d d ">" */
    if (m->cfg.vocab < offset + nl_lines_vocab()) return nl_set_error(NL_EINVAL, "giraffe eval: model vocab %d < %d", m->cfg.vocab, offset + nl_lines_vocab());
    if (batch > n) batch = n;
    const int64_t V = m->cfg.vocab;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(batch * S));   /* (batch, S) samples */
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(batch * T));    /* (batch, T) inputs */
    double *pos = scrambled ? malloc(sizeof(double) * (size_t)T) : NULL;   /* (T) scrambled positions */
    nl_ctx *c = ctx ? ctx : nl_ctx_new(0, 0);
    nl_status st = NL_OK;
    int grad_was = 1;
    if (!toks || !ids || !c || (scrambled && !pos)) { st = nl_set_error(NL_ENOMEM, "giraffe eval: out of memory"); goto done; }
    grad_was = nl_set_grad_enabled(c, 0);
    nl_rng r;
    nl_rng_init(&r, seed, NL_GIRAFFE_EVAL_STREAM);
    int correct = 0;
    for (int s0 = 0; s0 < n; s0 += batch) {
        const int bs = n - s0 < batch ? n - s0 : batch;
        for (int b = 0; b < bs; b++) {
            int64_t p;
            int val;
            int32_t *t = toks + (int64_t)b * S;
            const int64_t got = haystack ? nl_lines_haystack_sample(&r, 1, pl, t, S, &p, &val) : nl_lines_sample(&r, n_lines, t, S, &p, &val);
            if (got != S || p != pl) {
                st = nl_set_error(NL_EINVAL, "giraffe eval: no Lines prompt of %d lines", n_lines);
                goto done;
            }
            for (int64_t i = 0; i < S; i++) t[i] += offset;
            memcpy(ids + (int64_t)b * T, t, sizeof(int32_t) * (size_t)T);
        }
        if (scrambled) {   /* a random permutation of 0..T-1 (Fisher-Yates) */
            for (int64_t i = 0; i < T; i++) pos[i] = (double)i;
            for (int64_t i = T - 1; i > 0; i--) {
                const int64_t j = (int64_t)nl_rng_below(&r, (uint64_t)i + 1);
                const double x = pos[i];
                pos[i] = pos[j];
                pos[j] = x;
            }
            m->eval_pos = pos;
            m->eval_pos_n = T;
        }
        nl_ctx_reset(c);
        nl_var *lg = nl_lm_forward(m, c, ids, bs, T, 0);   /* (bs * T, V) logits */
        m->eval_pos = NULL;
        m->eval_pos_n = 0;
        if (!lg) { st = nl_last_status(); goto done; }
        const nl_tensor L = lg->val;
        for (int b = 0; b < bs; b++) {
            const int32_t *t = toks + (int64_t)b * S;
            int ok = 1;
            for (int64_t row = pl - 1; ok && row < T; row++) {
                const int64_t base = ((int64_t)b * T + row) * V;
                int64_t best = 0;
                double bv = nl_tensor_get(&L, base);
                for (int64_t v = 1; v < V; v++) {
                    const double x = nl_tensor_get(&L, base + v);
                    if (x > bv) { bv = x; best = v; }
                }
                if (!isfinite(bv)) {
                    st = nl_set_error(NL_ENONFINITE, "giraffe eval: non-finite logits at %lld tokens", (long long)T);
                    goto done;
                }
                ok = best == t[row + 1];
            }
            correct += ok;
        }
    }
    *k = correct;
done:
    free(toks);
    free(ids);
    free(pos);
    if (c && c != ctx) nl_ctx_free(c);
    else if (c) { nl_ctx_reset(c); nl_set_grad_enabled(c, grad_was); }
    return st;
}

nl_status nl_giraffe_bpb(nl_lm *m, const int32_t *text, int64_t n_text, int64_t T, int windows, double *bpb) {
    *bpb = NAN;
    double nll;
    int64_t count;
    nl_status st = nl_lm_eval_nll(m, text, n_text, T, 1, windows, 1, &nll, &count);
    if (st) return st;
    if (count < 1) return nl_set_error(NL_EINVAL, "giraffe: held-out text shorter than one window of %lld tokens", (long long)T);
    *bpb = nll / log(2.0);
    return NL_OK;
}
