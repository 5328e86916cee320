/* Ledger entry `powernorm` (schema v2, docs/repro.md; Shen et al. 2020, "PowerNorm: Rethinking Batch Normalization
 * in Transformers"). The same byte-level transformer LM (include/transformer/transformer.h, pre-norm decoder) is
 * trained with each normalisation on the same data, budget and seeds (seed s: the same initialisation stream and the
 * same sequence of training windows for every norm), and evaluated on the same test windows in evaluation mode
 * (BatchNorm: running mean/var; PowerNorm: running quadratic mean psi). The judged quantity is the test NLL in nats
 * per byte, compared PAIRED over the seeds (the difference is taken per seed, then mean +- SE over seeds).
 *
 * Variants (one LM each per seed):
 *   powernorm   PN: running quadratic mean in the training forward after pn_warmup steps, approximate backward,
 *               group scaling over the heads (the engine op nl_powernorm) — the main result;
 *   layernorm   the norm PN claims to beat (control, baseline);
 *   batchnorm   the norm PN claims to fix (control, baseline);
 *   rmsnorm     a generic per-token substitute without batch statistics (control, generic);
 *   pn-batch-stats  PN whose warmup never ends: the batch quadratic mean in every training forward (the running psi
 *               only at evaluation, as BatchNorm) — PN without its running statistics (control, broken).
 *
 * The claim as parts, each a one-sided paired test over the seeds with a margin (PN_MARGIN nats/byte):
 *   beats-layernorm   mean(NLL_LN - NLL_X) - t95(n-1) SE > margin;
 *   beats-batchnorm   mean(NLL_BN - NLL_X) - t95(n-1) SE > margin.
 * The same judge runs on every control with X = that control (LN against itself has difference 0 and fails). */
#include "nnlab/ledger.h"
#include "powernorm/powernorm.h"
#include "transformer/transformer.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PN_MAX_SEEDS 8
/* Margin of both parts, in nats per byte (0.5% in per-byte perplexity). Set before any run of this entry from the
 * paper's effect size: PTB 5.6 and WikiText-103 3.0 word perplexity (~10% and ~15%, i.e. ~0.1-0.14 nats per word,
 * ~0.018-0.025 nats per byte at ~5.6 bytes per word); the margin asks for about a quarter of that at a one-sided
 * 95% bound. Same in every mode. */
#define PN_MARGIN 0.005

typedef struct pn_exp_cfg {
    int d, layers, heads, context;   /* LM: width, blocks, heads (group scaling groups), training window */
    int64_t steps, batch, pn_warmup; /* optimizer steps, windows per step, PN warmup (batch statistics before) */
    int64_t eval_tokens;             /* test predictions: the first eval_tokens / context windows of the test split */
    double lr;                       /* peak AdamW learning rate (warmup 10%, cosine to 0.1 lr) */
    int n_seeds;                     /* seeds 1..n_seeds */
} pn_exp_cfg;

enum { V_PN, V_LN, V_BN, V_RMS, V_PNB, V_COUNT };
static const char *const pn_vname[V_COUNT] = {"powernorm", "layernorm", "batchnorm", "rmsnorm", "pn-batch-stats"};
static const char *const pn_vkind[V_COUNT] = {"", "baseline", "baseline", "generic", "broken"};
static const char *const pn_vwhat[V_COUNT] = {
    "",
    "LayerNorm in the same transformer (the norm the paper claims PN beats)",
    "BatchNorm over the B*T tokens of a batch, running mean/var at evaluation (the norm PN claims to fix)",
    "RMSNorm: per-token scaling without batch statistics (a generic substitute)",
    "PowerNorm whose warmup never ends: batch quadratic mean in every training forward, running psi only at "
    "evaluation (PN without its running statistics)",
};

/* Train one LM with variant v and seed; test NLL (nats/byte) and the final training loss. */
static nl_status pn_lm_run(int v, const pn_exp_cfg *cfg, uint64_t seed, const int32_t *tr, int64_t ntr, const int32_t *te,
                           int64_t nte, int verbose, double *nll, double *train_loss) {
    nl_lm_config mc = nl_lm_config_default();
    mc.context = cfg->context;
    mc.d_model = cfg->d;
    mc.n_layers = cfg->layers;
    mc.n_heads = cfg->heads;
    mc.d_ff = 4 * cfg->d;
    mc.norm = v == V_LN ? NL_LM_NORM_LAYER : v == V_BN ? NL_LM_NORM_BATCH : v == V_RMS ? NL_LM_NORM_RMS : NL_LM_NORM_POWER;
    mc.pn_warmup = v == V_PNB ? cfg->steps + 1 : cfg->pn_warmup; /* + 1: every training step is a warmup step */
    nl_lm m;
    nl_status st = nl_lm_init(&m, &mc, seed);
    if (st) return st;
    nl_lm_train_config tc = nl_lm_train_defaults();
    tc.steps = cfg->steps;
    tc.batch = cfg->batch;
    tc.lr = cfg->lr;
    tc.warmup = cfg->steps / 10;
    tc.seed = seed;
    tc.tokens = tr;
    tc.n_tokens = ntr;
    tc.verbose = verbose > 1;
    tc.log_every = 100;
    nl_lm_train_result r;
    if (!(st = nl_lm_train(&m, &tc, &r))) {
        int64_t cnt;
        st = nl_lm_eval_nll(&m, te, nte, cfg->context, 16, cfg->eval_tokens / cfg->context, 0, nll, &cnt);
        *train_loss = r.final_loss;
    }
    nl_lm_free(&m);
    return st;
}

/* The judged metrics of variant v (same names in the main result and every control). */
static void pn_fill(nl_exp_result *o, int v, int n, double nll[V_COUNT][PN_MAX_SEEDS], double tl[V_COUNT][PN_MAX_SEEDS]) {
    double ppl[PN_MAX_SEEDS], ref_ln[PN_MAX_SEEDS], ref_bn[PN_MAX_SEEDS], md, se;
    for (int s = 0; s < n; s++) ppl[s] = exp(nll[v][s]), ref_ln[s] = exp(nll[V_LN][s]), ref_bn[s] = exp(nll[V_BN][s]);
    o->seeds = n;
    nl_exp_set(o, "n_seeds", n);
    nl_exp_set_mean_se(o, "test_ppl", ppl, n);
    nl_exp_set_mean_se(o, "test_nll", nll[v], n);
    nl_exp_set_mean_se(o, "train_loss", tl[v], n);
    nl_exp_set_mean_se(o, "layernorm_ppl", ref_ln, n);
    nl_exp_set_mean_se(o, "batchnorm_ppl", ref_bn, n);
    nl_stats_paired_t(nll[V_LN], nll[v], n, &md, &se); /* NLL_LN - NLL_v per seed */
    nl_exp_set(o, "gain_vs_ln_mean", md);
    nl_exp_set(o, "gain_vs_ln_se", se);
    nl_stats_paired_t(nll[V_BN], nll[v], n, &md, &se);
    nl_exp_set(o, "gain_vs_bn_mean", md);
    nl_exp_set(o, "gain_vs_bn_se", se);
    nl_exp_set(o, "margin", PN_MARGIN);
}

static nl_status pn_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    (void)e;
    const pn_exp_cfg *cfg = config;
    const int n = cfg->n_seeds;
    if (n < 1 || n > PN_MAX_SEEDS) return nl_set_error(NL_EINVAL, "powernorm: n_seeds %d not in 1..%d", n, PN_MAX_SEEDS);
    uint8_t *buf = NULL;
    int64_t nb = 0, ntr, nva, nte;
    int32_t *tr = NULL, *va = NULL, *te = NULL;
    nl_status st = nl_lm_corpus_load("default", &buf, &nb);
    if (st) return st;
    st = nl_lm_corpus_split(buf, nb, 0, &tr, &ntr, &va, &nva, &te, &nte);
    free(buf);
    if (st) return st;
    double nll[V_COUNT][PN_MAX_SEEDS], tl[V_COUNT][PN_MAX_SEEDS];  /* [variant][seed] nats/byte */
    for (int s = 0; s < n && !st; s++)
        for (int v = 0; v < V_COUNT && !st; v++) {
            st = pn_lm_run(v, cfg, (uint64_t)(s + 1), tr, ntr, te, nte, opt->verbose, &nll[v][s], &tl[v][s]);
            if (!st && opt->verbose)
                nl_progress("  powernorm: seed %d %-15s test perplexity %.4f (NLL %.4f nats/byte), train loss %.4f", s + 1,
                            pn_vname[v], exp(nll[v][s]), nll[v][s], tl[v][s]);
        }
    free(tr);
    free(va);
    free(te);
    if (st) return st;
    pn_fill(out, V_PN, n, nll, tl);
    for (int v = 1; v < V_COUNT; v++) {
        nl_exp_result *c = nl_exp_control_add(out, pn_vname[v], pn_vkind[v], pn_vwhat[v]);
        if (!c) return nl_set_error(NL_ENOMEM, "powernorm: control allocation");
        pn_fill(c, v, n, nll, tl);
    }
    for (int v = 0; v < V_COUNT; v++) {
        nl_curve *k = nl_exp_curve(out, "Test perplexity per seed (bytes)", pn_vname[v], "seed", "test perplexity");
        for (int s = 0; k && s < n; s++) nl_curve_add(k, s + 1, exp(nll[v][s]));
    }
    snprintf(out->note, sizeof out->note,
             "byte LM %dx%d, %d heads, %lld steps x %lld windows of %d, lr %g, PN warmup %lld; %lld test bytes; seeds 1..%d, "
             "the same init and data order for every norm; judged on the paired test NLL",
             cfg->layers, cfg->d, cfg->heads, (long long)cfg->steps, (long long)cfg->batch, cfg->context, cfg->lr,
             (long long)cfg->pn_warmup, (long long)(cfg->eval_tokens / cfg->context * cfg->context), n);
    return NL_OK;
}

/* One paired part: gain = mean(NLL_ref - NLL_this) over seeds; pass when gain - t95(n-1) SE > PN_MARGIN. */
static int pn_part(nl_exp_result *r, const char *part, const char *ref, const char *key, int n, char *line, size_t ln) {
    char b[64], rule[256];
    snprintf(b, sizeof b, "%s_mean", key);
    const double g = nl_exp_get(r, b, NULL);
    snprintf(b, sizeof b, "%s_se", key);
    const double se = nl_exp_get(r, b, NULL), t = n >= 2 ? nl_stats_t95(n - 1) : NAN, lo = g - t * se;
    const int pass = n >= 3 && lo > PN_MARGIN; /* NaN anywhere fails */
    snprintf(rule, sizeof rule, "paired over n >= 3 seeds: mean(NLL_%s - NLL) - t95(n-1) SE > %.3f nats/byte", ref, PN_MARGIN);
    nl_exp_part_set(r, part, rule, pass, "gain %+.4f +- %.4f nats/byte, lower bound %+.4f (%d seeds)", g, se, lo, n);
    snprintf(line, ln, "vs %s %+.4f+-%.4f (bound %+.4f %s %.3f)", ref, g, se, lo, pass ? ">" : "<=", PN_MARGIN);
    return pass;
}

static int pn_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t n) {
    (void)e, (void)mode;
    const double k = nl_exp_get(r, "n_seeds", NULL); /* NaN or absent: 0 seeds (fails) */
    const int ns = k >= 1 && k <= 1000 ? (int)k : 0;
    char l1[160], l2[160];
    pn_part(r, "beats-layernorm", "LN", "gain_vs_ln", ns, l1, sizeof l1);
    pn_part(r, "beats-batchnorm", "BN", "gain_vs_bn", ns, l2, sizeof l2);
    snprintf(measured, n, "test ppl %.4f+-%.4f (LN %.4f, BN %.4f); NLL gain %s; %s", nl_exp_get(r, "test_ppl_mean", NULL),
             nl_exp_get(r, "test_ppl_se", NULL), nl_exp_get(r, "layernorm_ppl_mean", NULL),
             nl_exp_get(r, "batchnorm_ppl_mean", NULL), l1, l2);
    return nl_exp_parts_pass(r);
}

/* PN warmup = the LR warmup (steps / 10) in every mode, as the official code (NormSelect passes fairseq's
 * --warmup-updates as MaskPowerNorm's warmup_iters).
 * quick: 5 norms x 4 seeds x 180 steps (20 LMs of 92k training bytes each, ~47 s of one CPU thread; the LM training
 * is sgemm-bound). At 120 steps x 6 seeds (measured, README) the training loss of some runs was still on the ~3.0
 * nats/byte plateau until step ~100 (seed 5: PN left it ~50 steps after LN, test ppl 15.0 vs 11.3), so the paired
 * difference mostly measured when each run left the plateau (heavy-tailed); at 180 steps every non-BN run of the
 * seeds we logged (5-8) is below 2.75 by step 80. The 4-seed verdict is still fragile (seeds 5-8 fail; README).
 * full: 2x128, 128-byte windows, 400 steps x 16 (819k bytes per LM), 15 LMs in about 21 min of one thread. */
static const pn_exp_cfg pn_quick = {64, 2, 4, 64, 180, 8, 18, 8192, 3e-3, 4};
static const pn_exp_cfg pn_full = {128, 2, 4, 128, 400, 16, 40, 32768, 3e-3, 3};
static const pn_exp_cfg pn_smoke = {32, 1, 2, 32, 20, 4, 2, 512, 3e-3, 3};

const nl_experiment nl_exp_powernorm = {
    .name = "powernorm",
    .paper = "PowerNorm: Rethinking Batch Normalization in Transformers (Shen, Yao, Gholami, Mahoney & Keutzer 2020)",
    .claim = "In the same transformer, PowerNorm (running quadratic mean, approximate backward) beats LayerNorm and fixes "
             "BatchNorm's failure (paper: PN beats LN by 5.6/3.0 perplexity on PTB/WikiText-103): lower test NLL than LN "
             "and than BN, paired over seeds with a 0.005 nats/byte margin; RMSNorm and PN without running statistics "
             "must not pass.",
    .quick_desc = "byte LM 2x64 (4 heads) on KJV+fortunes, 180 steps x 8 windows of 64, PN warmup 18 (= LR warmup), "
                  "8192 test bytes; PN, LN, BN, RMSNorm, PN-batch-stats x seeds 1-4",
    .full_desc = "byte LM 2x128 (4 heads), 400 steps x 16 windows of 128, PN warmup 40 (= LR warmup), 32768 test bytes; "
                 "5 norms x seeds 1-3",
    .quick = &pn_quick,
    .full = &pn_full,
    .metrics = "test_ppl_{mean,se},test_nll_*,train_loss_*,{layernorm,batchnorm}_ppl_*,gain_vs_{ln,bn}_{mean,se},margin,n_seeds",
    .run = pn_run,
    .judge = pn_judge,
    .smoke_desc = "byte LM 1x32 (2 heads), 20 steps x 4 windows of 32, PN warmup 2, 512 test bytes, 5 norms x seeds 1-3 (plumbing only)",
    .smoke = &pn_smoke,
};
