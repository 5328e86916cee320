/* The giraffe study: per seed, a base LM pretrained with plain RoPE at length L on the Lines haystack task, a copy
 * of it fine-tuned at ft_mult * L with each scheme (same fine-tuning data for every scheme of a seed), and the
 * greedy retrieval accuracy of each at every evaluation length, at the scheme's own eval scale and, past s x L, at
 * twice it. methods/giraffe/README.md. */
#include "giraffe/giraffe.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const g_names[NL_GIRAFFE_N_SCHEMES] = {"linear", "power", "truncated", "xpos", "plain",
                                                         "linear-inverted", "linear-noeval"};

const char *nl_giraffe_scheme_name(nl_giraffe_scheme s) {
    return s >= 0 && s < NL_GIRAFFE_N_SCHEMES ? g_names[s] : "?";
}

nl_rope_config nl_giraffe_rope(const nl_giraffe_config *g, nl_giraffe_scheme s) {
    nl_rope_config r = nl_rope_config_default();
    r.power = g->power;
    r.truncate = g->ft_mult * g->L;   /* wavelengths longer than the fine-tuning length are truncated */
    r.xpos_gamma = g->xpos_gamma;
    switch (s) {
    case NL_GIRAFFE_LINEAR: r.variant = NL_ROPE_LINEAR; r.scale_train = r.scale_eval = g->scale; break;
    case NL_GIRAFFE_POWER: r.variant = NL_ROPE_POWER; break;
    case NL_GIRAFFE_TRUNCATED: r.variant = NL_ROPE_TRUNCATED; break;
    case NL_GIRAFFE_XPOS: r.variant = NL_ROPE_XPOS; break;
    case NL_GIRAFFE_INVERTED: r.variant = NL_ROPE_LINEAR; r.scale_train = r.scale_eval = 1.0 / g->scale; break;
    case NL_GIRAFFE_NOEVAL: r.variant = NL_ROPE_LINEAR; r.scale_train = g->scale; r.scale_eval = 1.0; break;
    default: break;   /* plain */
    }
    return r;
}

nl_status nl_giraffe_lines_accuracy(nl_lm *m, nl_ctx *ctx, int64_t P, int n, int batch, uint64_t seed, double *acc) {
    *acc = NAN;
    const int64_t A = NL_LINES_ANSWER_TOKENS, T = P + A - 2;   /* rows P-1 .. P+A-3 predict "<" d d d d d ">" */
    if (P < 1 || n < 1 || batch < 1) return nl_set_error(NL_EINVAL, "giraffe eval: P, n and batch must be >= 1");
    if (batch > n) batch = n;
    const int64_t V = m->cfg.vocab;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(batch * (P + A)));   /* (batch, P + A) samples */
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(batch * T));          /* (batch, T) inputs */
    nl_ctx *c = ctx ? ctx : nl_ctx_new(0, 0);
    nl_status st = NL_OK;
    int grad_was = 1;
    if (!toks || !ids || !c) { st = nl_set_error(NL_ENOMEM, "giraffe eval: out of memory"); goto done; }
    grad_was = nl_set_grad_enabled(c, 0);
    nl_rng r;
    nl_rng_init(&r, seed, NL_GIRAFFE_EVAL_STREAM);
    int correct = 0;
    for (int s0 = 0; s0 < n; s0 += batch) {
        const int bs = n - s0 < batch ? n - s0 : batch;
        for (int b = 0; b < bs; b++) {
            int64_t pl;
            int val;
            int32_t *t = toks + (int64_t)b * (P + A);
            if (nl_lines_haystack_sample(&r, 1, P, t, P + A, &pl, &val) != P + A || pl != P) {
                st = nl_set_error(NL_EINVAL, "giraffe eval: no haystack prompt of %lld tokens", (long long)P);
                goto done;
            }
            memcpy(ids + (int64_t)b * T, t, sizeof(int32_t) * (size_t)T);
        }
        nl_ctx_reset(c);
        nl_var *lg = nl_lm_forward(m, c, ids, bs, T, 0);   /* (bs * T, V) logits */
        if (!lg) { st = nl_last_status(); goto done; }
        const nl_tensor L = lg->val;
        for (int b = 0; b < bs; b++) {
            const int32_t *t = toks + (int64_t)b * (P + A);
            int ok = 1;
            for (int64_t row = P - 1; ok && row < T; row++) {
                const int64_t base = ((int64_t)b * T + row) * V;
                int64_t best = 0;
                double bv = nl_tensor_get(&L, base);
                for (int64_t v = 1; v < V; v++) {
                    const double x = nl_tensor_get(&L, base + v);
                    if (x > bv) { bv = x; best = v; }
                }
                if (!isfinite(bv)) {
                    st = nl_set_error(NL_ENONFINITE, "giraffe eval: non-finite logits at %lld tokens", (long long)P);
                    goto done;
                }
                ok = best == t[row + 1];
            }
            correct += ok;
        }
    }
    *acc = (double)correct / n;
done:
    free(toks);
    free(ids);
    if (c && c != ctx) nl_ctx_free(c);
    else if (c) { nl_ctx_reset(c); nl_set_grad_enabled(c, grad_was); }
    return st;
}

static nl_status pretrain(const nl_giraffe_config *g, uint64_t seed, int verbose, nl_lm *base, double *loss, double *acc) {
    nl_lm_config c = nl_lm_config_default();
    c.vocab = nl_lines_vocab();
    c.d_model = g->d_model; c.n_layers = g->layers; c.n_heads = g->heads; c.d_ff = 4 * g->d_model;
    c.context = g->L;
    nl_status st = nl_lm_init(base, &c, seed);
    if (st) return st;
    nl_lines_batcher lb;
    memset(&lb, 0, sizeof lb);
    nl_rng_init(&lb.rng, seed, 101);
    lb.haystack = 1;
    nl_lm_train_config tc = nl_lm_train_defaults();
    tc.steps = g->pre_steps; tc.batch = g->pre_batch; tc.lr = g->pre_lr; tc.warmup = g->pre_steps / 20;
    tc.min_ratio = g->pre_min_ratio;
    tc.batch_fn = nl_lines_batch; tc.batch_ud = &lb; tc.verbose = verbose > 1; tc.log_every = 100;
    nl_lm_train_result tr;
    if ((st = nl_lm_train(base, &tc, &tr)) ||
        (st = nl_giraffe_lines_accuracy(base, NULL, g->L - NL_LINES_ANSWER_TOKENS, g->samples, g->eval_batch, seed + 7, acc))) {
        nl_lm_free(base);
        return st;
    }
    *loss = tr.final_loss;
    if (verbose) nl_progress("giraffe: base (seed %llu): %d steps at L=%d, loss %.4f, accuracy at L %.3f (%.1fs)",
                             (unsigned long long)seed, g->pre_steps, g->L, tr.final_loss, *acc, tr.seconds);
    return NL_OK;
}

/* Fine-tune a copy of base with scheme s at ft_mult * L (data stream `seed`). */
static nl_status finetune(const nl_giraffe_config *g, const nl_lm *base, nl_giraffe_scheme s, uint64_t seed, int verbose,
                          nl_lm *m, double *loss) {
    nl_lm_config c = base->cfg;
    c.rope = nl_giraffe_rope(g, s);
    c.context = g->ft_mult * g->L;
    nl_status st = nl_lm_init(m, &c, 0);
    if (st) return st;
    if ((st = nl_params_copy(&m->ps, &base->ps))) { nl_lm_free(m); return st; }
    nl_lines_batcher fb;
    memset(&fb, 0, sizeof fb);
    nl_rng_init(&fb.rng, seed, 202);   /* same fine-tuning data for every scheme of this seed */
    fb.haystack = 1;
    nl_lm_train_config ft = nl_lm_train_defaults();
    ft.steps = g->ft_steps; ft.batch = g->ft_batch; ft.lr = g->ft_lr; ft.warmup = g->ft_steps / 10;
    ft.batch_fn = nl_lines_batch; ft.batch_ud = &fb; ft.verbose = verbose > 1; ft.log_every = 100;
    nl_lm_train_result tr;
    if ((st = nl_lm_train(m, &ft, &tr))) { nl_lm_free(m); return st; }
    *loss = tr.final_loss;
    return NL_OK;
}

/* Accuracy of m (its eval scale) at every length, and at twice the eval scale past s x L. */
static nl_status evaluate(const nl_giraffe_config *g, nl_lm *m, nl_ctx *ctx, nl_giraffe_scheme s, uint64_t seed, int verbose,
                          double *acc, double *big) {
    const nl_rope_config own = m->cfg.rope;
    nl_status st = NL_OK;
    for (int li = 0; li < g->n_len && !st; li++) {
        const int mult = g->len_mult[li];
        const int64_t P = (int64_t)mult * g->L - NL_LINES_ANSWER_TOKENS;
        const uint64_t es = seed * 1000 + (uint64_t)mult;   /* same prompts for every scheme of a seed */
        big[li] = NAN;
        if ((st = nl_giraffe_lines_accuracy(m, ctx, P, g->samples, g->eval_batch, es, &acc[li]))) break;
        if (mult > g->scale) {
            /* twice the eval scale; plain RoPE doubled is linear interpolation with s = 2 */
            if (m->cfg.rope.variant == NL_ROPE_PLAIN) m->cfg.rope.variant = NL_ROPE_LINEAR;
            m->cfg.rope.scale_eval = 2 * own.scale_eval;
            st = nl_giraffe_lines_accuracy(m, ctx, P, g->samples, g->eval_batch, es, &big[li]);
            m->cfg.rope = own;
        }
        if (verbose && isnan(big[li]))
            nl_progress("giraffe:   %-15s length %2dx (%lld-token prompts): accuracy %.3f (eval scale %g)",
                        nl_giraffe_scheme_name(s), mult, (long long)P, acc[li], own.scale_eval);
        else if (verbose)
            nl_progress("giraffe:   %-15s length %2dx (%lld-token prompts): accuracy %.3f (eval scale %g), %.3f at twice it",
                        nl_giraffe_scheme_name(s), mult, (long long)P, acc[li], own.scale_eval, big[li]);
    }
    return st;
}

nl_status nl_giraffe_study_run(const nl_giraffe_config *g, int verbose, nl_giraffe_study *out) {
    memset(out, 0, sizeof *out);
    if (g->seeds < 1 || g->seeds > NL_GIRAFFE_MAX_SEEDS || g->n_len < 1 || g->n_len > NL_GIRAFFE_MAX_LEN)
        return nl_set_error(NL_EINVAL, "giraffe: seeds must be in 1..%d and lengths in 1..%d", NL_GIRAFFE_MAX_SEEDS, NL_GIRAFFE_MAX_LEN);
    out->seeds = g->seeds;
    out->n_len = g->n_len;
    nl_lm base;
    int have_base = 0;
    nl_ctx *ctx = nl_ctx_new(0, 0);   /* one arena for every evaluation (no page faults per call) */
    if (!ctx) return nl_set_error(NL_ENOMEM, "giraffe: out of memory");
    nl_status st = NL_OK;
    for (int si = 0; si < g->seeds && !st; si++) {
        const uint64_t seed = g->seed + (uint64_t)si;
        if (!have_base || !g->shared_base) {
            if (have_base) nl_lm_free(&base);
            have_base = 0;
            const clock_t c0 = clock();
            st = pretrain(g, seed, verbose, &base, &out->base_loss[si], &out->base_acc[si]);
            out->cpu_pretrain += (double)(clock() - c0) / CLOCKS_PER_SEC;
            if (st) break;
            have_base = 1;
        } else {
            out->base_loss[si] = out->base_loss[0];
            out->base_acc[si] = out->base_acc[0];
        }
        for (int s = 0; s < NL_GIRAFFE_N_SCHEMES && !st; s++) {
            if (s == NL_GIRAFFE_NOEVAL) continue;   /* evaluated from LINEAR's weights below */
            nl_lm m;
            const clock_t c0 = clock();
            st = finetune(g, &base, (nl_giraffe_scheme)s, seed, verbose, &m, &out->ft_loss[s][si]);
            const clock_t c1 = clock();
            out->cpu_finetune += (double)(c1 - c0) / CLOCKS_PER_SEC;
            if (st) break;
            st = evaluate(g, &m, ctx, (nl_giraffe_scheme)s, seed, verbose, out->acc[s][si], out->big[s][si]);
            if (!st && s == NL_GIRAFFE_LINEAR) {
                m.cfg.rope = nl_giraffe_rope(g, NL_GIRAFFE_NOEVAL);
                out->ft_loss[NL_GIRAFFE_NOEVAL][si] = out->ft_loss[s][si];
                st = evaluate(g, &m, ctx, NL_GIRAFFE_NOEVAL, seed, verbose, out->acc[NL_GIRAFFE_NOEVAL][si], out->big[NL_GIRAFFE_NOEVAL][si]);
            }
            out->cpu_eval += (double)(clock() - c1) / CLOCKS_PER_SEC;
            nl_lm_free(&m);
        }
    }
    if (have_base) nl_lm_free(&base);
    nl_ctx_free(ctx);
    return st;
}
