/* Ledger entry `lm-infinite` (Han et al. 2023). Two byte-level RoPE transformer LMs (include/transformer/transformer.h,
 * same architecture) are trained at context L = 128 with vanilla causal attention:
 *   A: on text (KJV + fortunes train split);
 *   B: on passkey prompts of at most L bytes (a byte-level variant of the task's text; loss on the answer only),
 *      so that it learns the retrieval in-length;
 * then evaluated, without any parameter change, with
 *   vanilla attention (RoPE extrapolation: positions beyond L were never seen) and
 *   LM-Infinite (Lambda mask: n_global = 4 starting tokens + a local window of n_local = L tokens, distance limit L)
 * at lengths L .. 32 L:
 *   - A: perplexity of held-out text (test split, the same eval_tokens predictions at every length: windows of
 *     T + 1 tokens, every prediction scored, so most predictions of a long window sit far beyond L);
 *   - B: passkey accuracy (longctx.h nl_lm_infinite_passkey_eval: needle at a uniform depth, as the paper) and with the needle
 *     near the end (two fillers before the question, i.e. inside the local window at every length).
 * Pass rule: LM-Infinite's perplexity stays within 10% of its in-length value at every length up to 32 L; vanilla
 * perplexity at 32 L is at least 1.5x its in-length value (explodes); beyond L, LM-Infinite's mean passkey
 * accuracy with the needle near the end is >= 0.5 and >= vanilla's + 0.3, and at uniform depth it is not below
 * vanilla's. At uniform depth LM-Infinite cannot see a needle outside the window (n_global + n_local tokens;
 * a 2-layer model relays little beyond it), so its accuracy is bounded by the chance that the needle falls in the
 * last n_local tokens (about 128/T): reported, not required to be large. */
#include "nnlab/ledger.h"
#include "lm_infinite/lm_infinite.h"
#include "transformer/transformer.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LMI_MAX_LENS 8

typedef struct lminf_cfg {
    int context;                 /* training length L */
    int d_model, n_layers, n_heads;
    int64_t lm_steps, lm_batch;  /* model A (text) */
    double lm_lr;
    int64_t pk_steps, pk_batch;  /* model B (passkey prompts) */
    double pk_lr;
    int n_lens;
    int64_t lens[LMI_MAX_LENS];  /* evaluation lengths (lens[0] = L) */
    int64_t eval_tokens;         /* predictions per perplexity point */
    int passkey_n;               /* passkey prompts per length and depth */
    int64_t key_max;             /* keys uniform in [1, key_max) (the task's 1e7 is 7 digits) */
    int n_global;                /* LM-Infinite starting tokens */
    uint64_t seed;
} lminf_cfg;

/* byte-level variant of the task text (the repository's full text does not fit a 128-byte training window):
 * "The sky glows. The pass key is: 1234567. The sky glows. ... The pass key is:" -> " 1234567."
 * (": " occurs only before the key, so the byte before the answer identifies the needle's position) */
static const nl_lm_infinite_passkey_text lmi_text = {
    "",
    "The sky glows.",
    "The pass key is: {K}.",
    "The pass key is:",
};

typedef struct {
    nl_rng rng;
    int64_t key_max;
} lmi_batch_ud;

/* passkey rows: a prompt of 60..L-10 bytes followed by " K." and padding, targets only on the answer " K." (the
 * filler is a fixed sentence, memorised rather than copied, and would otherwise dominate the loss) */
static nl_status lmi_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *tg) {
    lmi_batch_ud *u = ud;
    for (int64_t b = 0; b < B; b++) {
        int32_t *id = ids + b * T, *t = tg + b * T;
        const int64_t lo = 60 < T - 10 ? 60 : T - 10, plen = lo + nl_rng_below(&u->rng, T - 10 - lo + 1);
        nl_lm_infinite_passkey_sample s;
        const int64_t key = 1 + nl_rng_below(&u->rng, u->key_max - 1);
        nl_status st = nl_lm_infinite_passkey_make(&lmi_text, plen, NULL, NULL, -1, key, &u->rng, &s);
        if (st) return st;
        char seq[512];
        const int np = (int)strlen(s.prompt);
        int n = snprintf(seq, sizeof seq, "%s %lld.", s.prompt, (long long)s.key);
        nl_lm_infinite_passkey_sample_free(&s);
        if (n > T + 1) n = (int)T + 1;
        for (int64_t i = 0; i < T; i++) {
            id[i] = i < n ? (uint8_t)seq[i] : '\n';
            t[i] = i + 1 < n && i + 1 >= np ? (uint8_t)seq[i + 1] : -1;
        }
    }
    (void)step;
    return NL_OK;
}

/* generate callback for nl_lm_infinite_passkey_eval: greedy continuation of the byte prompt */
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

/* passkey accuracy of n prompts of target bytes (keys uniform in [1, key_max)): needle at a uniform depth
 * (near = 0, the paper's protocol, as nl_lm_infinite_passkey_eval) or near the end (near = 1: two fillers between the needle
 * and the question, i.e. inside the local window at every length) */
static nl_status passkey_acc(nl_lm *m, int64_t target, int n, uint64_t seed, int near, int64_t key_max, double *acc) {
    nl_rng rng;
    nl_rng_init(&rng, seed, near ? 0x9EA5 : 0x9A55);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        nl_lm_infinite_passkey_sample s;
        int64_t at = -1;
        nl_status st;
        if (near) {
            if ((st = nl_lm_infinite_passkey_make(&lmi_text, target, NULL, NULL, 0, key_max - 1, NULL, &s))) return st; /* n_distract */
            at = s.n_distract >= 2 ? s.n_distract - 2 : 0;
            nl_lm_infinite_passkey_sample_free(&s);
        }
        const int64_t key = 1 + nl_rng_below(&rng, key_max - 1);
        if ((st = nl_lm_infinite_passkey_make(&lmi_text, target, NULL, NULL, at, key, &rng, &s))) return st;
        char out[64];
        if ((st = lmi_generate(m, s.prompt, out, sizeof out))) { nl_lm_infinite_passkey_sample_free(&s); return st; }
        ok += nl_lm_infinite_passkey_correct(out, s.key);
        nl_lm_infinite_passkey_sample_free(&s);
    }
    *acc = (double)ok / n;
    return NL_OK;
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
    nl_lm_config mc = nl_lm_config_default();
    mc.context = cfg->context;
    mc.d_model = cfg->d_model;
    mc.n_layers = cfg->n_layers;
    mc.n_heads = cfg->n_heads;
    mc.d_ff = 4 * cfg->d_model;
    const char *an[2] = {"vanilla", "lminf"};
    char name[64];
    nl_lm m;
    nl_lm_train_result trr;
    /* ---- A: text LM, perplexity ---- */
    if ((st = nl_lm_init(&m, &mc, cfg->seed))) goto done_data;
    nl_lm_train_config tc = nl_lm_train_defaults();
    tc.steps = cfg->lm_steps;
    tc.batch = cfg->lm_batch;
    tc.lr = cfg->lm_lr;
    tc.seed = cfg->seed;
    tc.verbose = opt->verbose;
    tc.log_every = 100;
    tc.tokens = tr;
    tc.n_tokens = ntr;
    if ((st = nl_lm_train(&m, &tc, &trr))) goto done;
    nl_exp_set(out, "lm_train_loss", trr.final_loss);
    nl_exp_set(out, "lm_train_seconds", trr.seconds);
    nl_exp_set(out, "params", (double)nl_lm_num_params(&m));
    nl_exp_set(out, "context", cfg->context);
    for (int a = 0; a < 2; a++) {
        nl_curve *pc = nl_exp_curve(out, "Perplexity vs evaluation length (trained at 128)", a ? "LM-Infinite" : "vanilla RoPE",
                                    "length (tokens)", "perplexity (bytes)");
        set_attention(&m, a, cfg);
        for (int i = 0; i < cfg->n_lens; i++) {
            const int64_t T = cfg->lens[i];
            double nll;
            int64_t cnt;
            const int64_t batch = 2048 / T > 1 ? 2048 / T : 1;
            if ((st = nl_lm_eval_nll(&m, te, nte, T, batch, cfg->eval_tokens / T > 0 ? cfg->eval_tokens / T : 1, 1, &nll, &cnt)))
                goto done;
            snprintf(name, sizeof name, "ppl_%s_%lld", an[a], (long long)T);
            nl_exp_set(out, name, exp(nll));
            nl_curve_add(pc, (double)T, exp(nll));
            if (opt->verbose) nl_progress("  lm-infinite: %s length %lld: perplexity %.3f", an[a], (long long)T, exp(nll));
        }
    }
    nl_lm_free(&m);
    /* ---- B: passkey LM ---- */
    if ((st = nl_lm_init(&m, &mc, cfg->seed + 1))) goto done_data;
    lmi_batch_ud bu;
    nl_rng_init(&bu.rng, cfg->seed, 0x1A1F);
    bu.key_max = cfg->key_max;
    tc.steps = cfg->pk_steps;
    tc.batch = cfg->pk_batch;
    tc.lr = cfg->pk_lr;
    tc.tokens = NULL;
    tc.n_tokens = 0;
    tc.batch_fn = lmi_batch;
    tc.batch_ud = &bu;
    if ((st = nl_lm_train(&m, &tc, &trr))) goto done;
    nl_exp_set(out, "pk_train_loss", trr.final_loss);
    nl_exp_set(out, "pk_train_seconds", trr.seconds);
    for (int a = 0; a < 2; a++) {
        nl_curve *kc = nl_exp_curve(out, "Passkey accuracy vs prompt length", a ? "LM-Infinite, uniform depth" : "vanilla, uniform depth",
                                    "length (bytes)", "accuracy");
        nl_curve *kn = nl_exp_curve(out, "Passkey accuracy vs prompt length", a ? "LM-Infinite, needle near the end" : "vanilla, needle near the end",
                                    "length (bytes)", "accuracy");
        set_attention(&m, a, cfg);
        for (int i = 0; i < cfg->n_lens; i++) {
            const int64_t T = cfg->lens[i];
            double acc, accn;
            if ((st = passkey_acc(&m, T - 10, cfg->passkey_n, cfg->seed + (uint64_t)T, 0, cfg->key_max, &acc))) goto done;
            if ((st = passkey_acc(&m, T - 10, cfg->passkey_n, cfg->seed + (uint64_t)T, 1, cfg->key_max, &accn))) goto done;
            snprintf(name, sizeof name, "passkey_%s_%lld", an[a], (long long)T);
            nl_exp_set(out, name, acc);
            snprintf(name, sizeof name, "passkey_near_%s_%lld", an[a], (long long)T);
            nl_exp_set(out, name, accn);
            nl_curve_add(kc, (double)T, acc);
            nl_curve_add(kn, (double)T, accn);
            if (opt->verbose)
                nl_progress("  lm-infinite: %s length %lld: passkey %.2f (needle near the end %.2f)", an[a], (long long)T, acc, accn);
        }
    }
    nl_exp_set(out, "n_lens", cfg->n_lens);
    snprintf(out->note, sizeof out->note,
             "byte-level LMs, %d layers, d_model %d, %d heads, %lld parameters, L = %d; text LM %lld steps x %lld windows, "
             "passkey LM %lld steps x %lld prompts; LM-Infinite n_global %d, n_local = limit = %d; %d passkey prompts per "
             "length and depth",
             cfg->n_layers, cfg->d_model, cfg->n_heads, (long long)nl_lm_num_params(&m), cfg->context, (long long)cfg->lm_steps,
             (long long)cfg->lm_batch, (long long)cfg->pk_steps, (long long)cfg->pk_batch, cfg->n_global, cfg->context,
             cfg->passkey_n);
done:
    nl_lm_free(&m);
done_data:
    free(tr);
    free(va);
    free(te);
    return st;
}

static int lminf_judge(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t n) {
    const lminf_cfg *cfg = full ? e->full : e->quick;
    char name[64];
    double p[2][LMI_MAX_LENS], k[2][LMI_MAX_LENS], kn[2][LMI_MAX_LENS];
    const char *an[2] = {"vanilla", "lminf"};
    for (int a = 0; a < 2; a++)
        for (int i = 0; i < cfg->n_lens; i++) {
            snprintf(name, sizeof name, "ppl_%s_%lld", an[a], (long long)cfg->lens[i]);
            p[a][i] = nl_exp_get(r, name, NULL);
            snprintf(name, sizeof name, "passkey_%s_%lld", an[a], (long long)cfg->lens[i]);
            k[a][i] = nl_exp_get(r, name, NULL);
            snprintf(name, sizeof name, "passkey_near_%s_%lld", an[a], (long long)cfg->lens[i]);
            kn[a][i] = nl_exp_get(r, name, NULL);
        }
    const int last = cfg->n_lens - 1;
    double worst = 0, kb[2] = {0, 0}, knb[2] = {0, 0};
    for (int i = 0; i < cfg->n_lens; i++) worst = fmax(worst, fabs(p[1][i] / p[1][0] - 1));
    for (int a = 0; a < 2; a++) {
        for (int i = 1; i < cfg->n_lens; i++) { kb[a] += k[a][i]; knb[a] += kn[a][i]; }
        kb[a] /= cfg->n_lens > 1 ? cfg->n_lens - 1 : 1;
        knb[a] /= cfg->n_lens > 1 ? cfg->n_lens - 1 : 1;
    }
    const double vr = p[0][last] / p[0][0];
    const int pass = worst <= 0.10 && vr >= 1.5 && knb[1] >= 0.5 && knb[1] >= knb[0] + 0.3 && kb[1] >= kb[0];
    snprintf(measured, n,
             "ppl %lld->%lldx: LM-Inf %.2f->%.2f (max dev %.1f%%), vanilla %.2f->%.2f (x%.1f); passkey in-length %.2f; beyond: "
             "near end LM-Inf %.2f vs vanilla %.2f, uniform depth %.2f vs %.2f",
             (long long)cfg->lens[0], (long long)(cfg->lens[last] / cfg->lens[0]), p[1][0], p[1][last], 100 * worst, p[0][0],
             p[0][last], vr, k[0][0], knb[1], knb[0], kb[1], kb[0]);
    return pass;
}

/* quick: text LM 300 steps x 16 windows (lr 3e-3), passkey LM 1500 steps x 16 prompts (lr 1e-3: at 2e-3 and above
 * the retrieval often was not learned within the budget; at 1e-3 the loss drops around step 400-700), 16k
 * predictions and 10 prompts per length and depth; full: 2000 / 4000 steps x 32, 65k predictions, 50 prompts */
static const lminf_cfg lmi_quick = {128, 128, 2, 4, 300, 16, 3e-3, 1500, 16, 1e-3, 6, {128, 256, 512, 1024, 2048, 4096}, 16384, 10, 10000000, 4, 1};
static const lminf_cfg lmi_full = {128, 128, 2, 4, 2000, 32, 2e-3, 4000, 32, 1e-3, 6, {128, 256, 512, 1024, 2048, 4096}, 65536, 50, 10000000, 4, 1};

const nl_experiment nl_exp_lm_infinite = {
    .name = "lm-infinite",
    .paper = "LM-Infinite: Simple On-the-Fly Length Generalization for Large Language Models (Han et al. 2023)",
    .claim = "Without any parameter update, a Lambda-shaped attention mask with a distance limit keeps a RoPE LM's perplexity "
             "flat (within 10%) up to 32x its training length, where vanilla attention's perplexity explodes, and keeps "
             "passkey retrieval working beyond the training length where vanilla fails.",
    .quick_desc = "byte-level RoPE LMs 2x128 at L=128: text LM (KJV+fortunes, 300 steps x 16) for perplexity, passkey LM "
                  "(1500 steps x 16 prompts) for retrieval; 128..4096, vanilla vs LM-Infinite (n_global 4, n_local 128)",
    .full_desc = "same models, 2000 / 4000 steps x 32; 65k predictions and 50 passkey prompts per length and depth",
    .quick = &lmi_quick,
    .full = &lmi_full,
    .metrics = "ppl_{vanilla,lminf}_<T>,passkey_{vanilla,lminf}_<T>,passkey_near_{vanilla,lminf}_<T> for T in 128..4096,"
               "lm_train_loss,lm_train_seconds,pk_train_loss,pk_train_seconds,params,context,n_lens",
    .run = lminf_run,
    .judge = lminf_judge,
};
