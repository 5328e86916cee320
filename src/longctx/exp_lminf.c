/* Ledger entry `lm-infinite` (Han et al. 2023): a byte-level RoPE transformer LM (include/nnlab/transformer.h)
 * trained at context L = 128 with vanilla causal attention, then evaluated, without any parameter change, with
 *   vanilla attention (RoPE extrapolation: positions beyond L were never seen) and
 *   LM-Infinite (Lambda mask: n_global = 4 starting tokens + a local window of n_local = L tokens, distance limit L)
 * at lengths L .. 32 L:
 *   - perplexity of held-out text (test split of the KJV + fortunes corpus, the same 16384 predictions at every
 *     length: windows of T + 1 tokens, every prediction scored, so most predictions of a long window sit far
 *     beyond L);
 *   - passkey retrieval (longctx.h nl_passkey_eval with a short byte-level variant of the task's text; the LM is
 *     trained on a mix of text windows and passkey prompts of at most L bytes, so it learns the task in-length).
 * Pass rule: LM-Infinite's perplexity stays within 10% of its in-length value at every length up to 32 L, vanilla
 * perplexity at 32 L is at least 1.5x its in-length value (explodes), and LM-Infinite's mean passkey accuracy
 * beyond L exceeds vanilla's by at least 0.2. */
#include "nnlab/ledger.h"
#include "nnlab/longctx.h"
#include "nnlab/transformer.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LMI_MAX_LENS 8

typedef struct lminf_cfg {
    int context;                 /* training length L */
    int d_model, n_layers, n_heads;
    int64_t steps, batch;
    double lr;
    double passkey_frac;         /* fraction of training rows that are passkey prompts */
    int n_lens;
    int64_t lens[LMI_MAX_LENS];  /* evaluation lengths (lens[0] = L) */
    int64_t eval_tokens;         /* predictions per perplexity point */
    int passkey_n;               /* passkey samples per length */
    int n_global;                /* LM-Infinite starting tokens */
    uint64_t seed;
} lminf_cfg;

/* byte-level variant of the task text (the repository's full text does not fit a 128-byte training window):
 * "The sky is blue. The pass key is 1234567. The sky is blue. ... The pass key is" -> " 1234567." */
static const nl_passkey_text lmi_text = {
    "",
    "The sky is blue.",
    "The pass key is {K}.",
    "The pass key is",
};

typedef struct {
    const lminf_cfg *cfg;
    const int32_t *tokens;
    int64_t n_tokens;
    nl_rng rng;
} lmi_batch_ud;

/* rows: a random text window, or (passkey_frac) a passkey prompt of 60..L-10 bytes followed by " K." and
 * ignored padding */
static nl_status lmi_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *tg) {
    lmi_batch_ud *u = ud;
    for (int64_t b = 0; b < B; b++) {
        int32_t *id = ids + b * T, *t = tg + b * T;
        if (nl_rng_uniform(&u->rng) < u->cfg->passkey_frac) {
            const int64_t lo = 60 < T - 10 ? 60 : T - 10, plen = lo + nl_rng_below(&u->rng, T - 10 - lo + 1);
            nl_passkey_sample s;
            nl_status st = nl_passkey_make(&lmi_text, plen, NULL, NULL, -1, 0, &u->rng, &s);
            if (st) return st;
            char seq[512];
            int n = snprintf(seq, sizeof seq, "%s %lld.", s.prompt, (long long)s.key);
            nl_passkey_sample_free(&s);
            if (n > T + 1) n = (int)T + 1;
            for (int64_t i = 0; i < T; i++) {
                id[i] = i < n ? (uint8_t)seq[i] : '\n';
                t[i] = i + 1 < n ? (uint8_t)seq[i + 1] : -1;
            }
        } else {
            const int64_t s = nl_rng_below(&u->rng, u->n_tokens - T - 1);
            memcpy(id, u->tokens + s, sizeof(int32_t) * (size_t)T);
            memcpy(t, u->tokens + s + 1, sizeof(int32_t) * (size_t)T);
        }
    }
    (void)step;
    return NL_OK;
}

/* generate callback for nl_passkey_eval: greedy continuation of the byte prompt */
static nl_status lmi_generate(void *ud, const char *prompt, char *out, size_t cap) {
    nl_lm *m = ud;
    const int64_t n = (int64_t)strlen(prompt);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1)), gen[16];
    if (!ids) return nl_set_error(NL_ENOMEM, "passkey generate: out of memory");
    for (int64_t i = 0; i < n; i++) ids[i] = (uint8_t)prompt[i];
    nl_lm_sample_opts o = {0.0, 0, -1, 1};
    int64_t ng = 0;
    nl_status st = nl_lm_generate(m, ids, n, 10, &o, NULL, gen, &ng);
    free(ids);
    if (st) return st;
    size_t k = 0;
    for (int64_t i = 0; i < ng && k + 1 < cap; i++) out[k++] = (char)(gen[i] ? gen[i] : ' ');
    out[k] = 0;
    return NL_OK;
}

static void set_attention(nl_lm *m, int lminf, const lminf_cfg *cfg) {
    m->cfg.attn = lminf ? NL_LM_ATTN_LMINF : NL_LM_ATTN_VANILLA;
    m->cfg.lminf_global = cfg->n_global;
    m->cfg.lminf_local = cfg->context;
}

static nl_status lminf_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const lminf_cfg *cfg = config;
    uint8_t *buf = NULL;
    int64_t n = 0, ntr, nva, nte;
    int32_t *tr = NULL, *va = NULL, *te = NULL;
    nl_status st = nl_lm_corpus_load("default", &buf, &n);
    if (st) return st;
    st = nl_lm_corpus_split(buf, n, 0, &tr, &ntr, &va, &nva, &te, &nte);
    free(buf);
    if (st) return st;
    nl_lm m;
    nl_lm_config mc = nl_lm_config_default();
    mc.context = cfg->context;
    mc.d_model = cfg->d_model;
    mc.n_layers = cfg->n_layers;
    mc.n_heads = cfg->n_heads;
    mc.d_ff = 4 * cfg->d_model;
    if ((st = nl_lm_init(&m, &mc, cfg->seed))) goto done_data;
    lmi_batch_ud bu = {cfg, tr, ntr, {0, 0, 0}};
    nl_rng_init(&bu.rng, cfg->seed, 0x1A1F);
    nl_lm_train_config tc = nl_lm_train_defaults();
    tc.steps = cfg->steps;
    tc.batch = cfg->batch;
    tc.lr = cfg->lr;
    tc.seed = cfg->seed;
    tc.verbose = opt->verbose;
    tc.log_every = 100;
    tc.batch_fn = lmi_batch;
    tc.batch_ud = &bu;
    nl_lm_train_result trr;
    if ((st = nl_lm_train(&m, &tc, &trr))) goto done;
    nl_exp_set(out, "train_final_loss", trr.final_loss);
    nl_exp_set(out, "train_seconds", trr.seconds);
    nl_exp_set(out, "params", (double)nl_lm_num_params(&m));
    nl_exp_set(out, "context", cfg->context);
    const char *an[2] = {"vanilla", "lminf"};
    nl_curve *pc[2], *kc[2];
    for (int a = 0; a < 2; a++) {
        pc[a] = nl_exp_curve(out, "Perplexity vs evaluation length (trained at 128)", a ? "LM-Infinite" : "vanilla RoPE",
                             "length (tokens)", "perplexity (bytes)");
        kc[a] = nl_exp_curve(out, "Passkey accuracy vs prompt length", a ? "LM-Infinite" : "vanilla RoPE", "length (bytes)",
                             "accuracy");
    }
    for (int a = 0; a < 2; a++) {
        set_attention(&m, a, cfg);
        for (int i = 0; i < cfg->n_lens; i++) {
            const int64_t T = cfg->lens[i];
            double nll;
            int64_t cnt;
            int64_t batch = 2048 / T > 1 ? 2048 / T : 1;
            if ((st = nl_lm_eval_nll(&m, te, nte, T, batch, cfg->eval_tokens / T > 0 ? cfg->eval_tokens / T : 1, 1, &nll, &cnt)))
                goto done;
            char name[64];
            snprintf(name, sizeof name, "ppl_%s_%lld", an[a], (long long)T);
            nl_exp_set(out, name, exp(nll));
            nl_curve_add(pc[a], (double)T, exp(nll));
            double acc;
            if ((st = nl_passkey_eval(&lmi_text, T - 10, cfg->passkey_n, cfg->seed + (uint64_t)T, NULL, NULL, lmi_generate, &m, &acc)))
                goto done;
            snprintf(name, sizeof name, "passkey_%s_%lld", an[a], (long long)T);
            nl_exp_set(out, name, acc);
            nl_curve_add(kc[a], (double)T, acc);
            if (opt->verbose)
                fprintf(stderr, "  lm-infinite: %s length %lld: perplexity %.3f, passkey %.2f\n", an[a], (long long)T, exp(nll), acc);
        }
    }
    nl_exp_set(out, "n_lens", cfg->n_lens);
    snprintf(out->note, sizeof out->note,
             "byte-level LM, %d layers, d_model %d, %d heads, %lld parameters, trained %lld steps x %lld windows of %d bytes "
             "(%.0f%% passkey prompts); LM-Infinite n_global %d, n_local = limit = %d; %d passkey samples per length",
             cfg->n_layers, cfg->d_model, cfg->n_heads, (long long)nl_lm_num_params(&m), (long long)cfg->steps,
             (long long)cfg->batch, cfg->context, 100 * cfg->passkey_frac, cfg->n_global, cfg->context, cfg->passkey_n);
done:
    nl_lm_free(&m);
done_data:
    free(tr);
    free(va);
    free(te);
    return st;
}

static int lminf_judge(const nl_experiment *e, const nl_exp_result *r, int full, char *measured, size_t n) {
    const lminf_cfg *cfg = full ? e->full : e->quick;
    char name[64];
    double p[2][LMI_MAX_LENS], k[2][LMI_MAX_LENS];
    const char *an[2] = {"vanilla", "lminf"};
    for (int a = 0; a < 2; a++)
        for (int i = 0; i < cfg->n_lens; i++) {
            snprintf(name, sizeof name, "ppl_%s_%lld", an[a], (long long)cfg->lens[i]);
            p[a][i] = nl_exp_get(r, name, NULL);
            snprintf(name, sizeof name, "passkey_%s_%lld", an[a], (long long)cfg->lens[i]);
            k[a][i] = nl_exp_get(r, name, NULL);
        }
    const int last = cfg->n_lens - 1;
    double worst = 0, kb[2] = {0, 0};
    for (int i = 0; i < cfg->n_lens; i++) worst = fmax(worst, fabs(p[1][i] / p[1][0] - 1));
    for (int a = 0; a < 2; a++) {
        for (int i = 1; i < cfg->n_lens; i++) kb[a] += k[a][i];
        kb[a] /= cfg->n_lens > 1 ? cfg->n_lens - 1 : 1;
    }
    const double vr = p[0][last] / p[0][0];
    const int pass = worst <= 0.10 && vr >= 1.5 && kb[1] >= kb[0] + 0.2;
    snprintf(measured, n,
             "ppl at %lld -> %lldx: LM-Inf %.2f -> %.2f (max dev %.1f%%), vanilla %.2f -> %.2f (x%.1f); passkey beyond %lld: "
             "LM-Inf %.2f vs vanilla %.2f (at %lldx: %.2f vs %.2f)",
             (long long)cfg->lens[0], (long long)(cfg->lens[last] / cfg->lens[0]), p[1][0], p[1][last], 100 * worst, p[0][0],
             p[0][last], vr, (long long)cfg->lens[0], kb[1], kb[0], (long long)(cfg->lens[last] / cfg->lens[0]), k[1][last],
             k[0][last]);
    return pass;
}

/* quick: 2 layers x d128, 1000 steps of 16 x 128 bytes, 16k predictions and 10 passkey prompts per length */
static const lminf_cfg lmi_quick = {128, 128, 2, 4, 1000, 16, 3e-3, 0.5, 6, {128, 256, 512, 1024, 2048, 4096}, 16384, 10, 4, 1};
static const lminf_cfg lmi_full = {128, 128, 2, 4, 4000, 32, 2e-3, 0.5, 6, {128, 256, 512, 1024, 2048, 4096}, 65536, 50, 4, 1};

const nl_experiment nl_exp_lm_infinite = {
    .name = "lm-infinite",
    .paper = "LM-Infinite: Simple On-the-Fly Length Generalization for Large Language Models (Han et al. 2023)",
    .claim = "Without any parameter update, a Lambda-shaped attention mask with a distance limit keeps a RoPE LM's perplexity "
             "flat (within 10%) up to 32x its training length, where vanilla attention's perplexity explodes, and keeps "
             "passkey retrieval working beyond the training length where vanilla fails.",
    .quick_desc = "byte-level RoPE LM 2x128 trained 1000 steps at L=128 on KJV+fortunes (50% passkey prompts); perplexity and "
                  "passkey (10 prompts) at 128..4096, vanilla vs LM-Infinite (n_global 4, n_local 128)",
    .full_desc = "same model, 4000 steps x 32 windows; 65k predictions and 50 passkey prompts per length",
    .quick = &lmi_quick,
    .full = &lmi_full,
    .metrics = "ppl_vanilla_<T>,ppl_lminf_<T>,passkey_vanilla_<T>,passkey_lminf_<T> for T in 128..4096,train_final_loss,"
               "train_seconds,params,context,n_lens",
    .run = lminf_run,
    .judge = lminf_judge,
};
