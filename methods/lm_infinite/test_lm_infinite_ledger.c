/* The ledger entry's pieces: the "no distance limit" op variant (blockwise == reference, values and gradients; with
 * every key global it is causal RoPE attention; finite differences; decoding cache == prefill), the attention
 * variants inside the LM (all equal vanilla within the training window), the passkey scorer (needle placed outside
 * the window), and the judge on hand-made results: LM-Infinite's numbers pass, each control's numbers fail. */
#include "nltest.h"
#include "lm_infinite/test_util.h"
#include "lm_infinite/ledger_eval.h"

/* no limit: blockwise == reference (values, gradients); n_global >= n: every key at its true distance == causal
 * RoPE attention (the op with an unbounded window); and it differs from the limited op once global keys are used */
static void test_nolimit_op(void) {
    const int64_t B = 1, H = 2, D = 8, Dv = 4;
    double th[4];
    mk_theta(th, D, 100);
    const struct { int64_t n, ng, nl; } cs[3] = {{150, 4, 16}, {130, 1, 64}, {70, 70, 8}};
    int64_t pos[150];
    for (int i = 0; i < 150; i++) pos[i] = i;
    for (int ci = 0; ci < 3; ci++) {
        const int64_t n = cs[ci].n;
        nl_tensor q = rnd(NL_F64, B, H, n, D, 1 + ci), k = rnd(NL_F64, B, H, n, D, 11 + ci), v = rnd(NL_F64, B, H, n, Dv, 21 + ci), go = rnd(NL_F64, B, H, n, Dv, 31 + ci);
        const nl_lm_infinite_cfg cfg = {cs[ci].ng, cs[ci].nl, NL_LM_INFINITE_NO_LIMIT};
        nl_ctx *c[2] = {nl_ctx_new(0, 0), nl_ctx_new(0, 0)};
        nl_var *in[2][3], *y[2];
        for (int m = 0; m < 2; m++) {
            for (int j = 0; j < 3; j++) in[m][j] = nl_leaf(c[m], j == 0 ? q : j == 1 ? k : v, 1);
            y[m] = m ? nl_lm_infinite_attention(c[m], in[m][0], in[m][1], in[m][2], pos, pos, th, cfg)
                     : nl_lm_infinite_attention_ref(c[m], in[m][0], in[m][1], in[m][2], pos, pos, th, cfg);
            NLT_CHECK(y[m] != NULL, "case %d: %s", ci, nl_last_error());
            if (y[m]) NLT_OK(nl_backward_seed(c[m], y[m], &go));
        }
        if (y[0] && y[1]) {
            NLT_CHECK(maxdiff(&y[0]->val, &y[1]->val) < 1e-10, "case %d: blockwise == reference (%g)", ci, maxdiff(&y[0]->val, &y[1]->val));
            for (int j = 0; j < 3; j++)
                NLT_CHECK(maxdiff(&in[0][j]->grad, &in[1][j]->grad) < 1e-10, "case %d grad %d: %g", ci, j, maxdiff(&in[0][j]->grad, &in[1][j]->grad));
        }
        const nl_lm_infinite_cfg full = {0, 1 << 20, 1 << 20}, lim = {cs[ci].ng, cs[ci].nl, cs[ci].nl};
        nl_var *yf = nl_lm_infinite_attention(c[0], nl_input(c[0], q), nl_input(c[0], k), nl_input(c[0], v), pos, pos, th, full);
        nl_var *yl = nl_lm_infinite_attention(c[0], nl_input(c[0], q), nl_input(c[0], k), nl_input(c[0], v), pos, pos, th, lim);
        NLT_CHECK(yf && yl && y[1], "%s", nl_last_error());
        if (yf && yl && y[1] && cs[ci].ng >= n)
            NLT_CHECK(maxdiff(&yf->val, &y[1]->val) < 1e-12, "every key global, no limit == causal RoPE attention (%g)", maxdiff(&yf->val, &y[1]->val));
        if (yf && yl && y[1])
            NLT_CHECK(maxdiff(&yl->val, &y[1]->val) > 1e-3, "case %d: the limit changes the output (%g)", ci, maxdiff(&yl->val, &y[1]->val));
        /* decoding cache == prefill */
        nl_lm_infinite_cache kc;
        NLT_OK(nl_lm_infinite_cache_init(&kc, B, H, D, Dv, th, cfg));
        double md = 0;
        for (int64_t t = 0; t < n && y[1]; t++) {
            nl_tensor qt, kt, vt, o = nl_arena_tensor(c[0]->arena, NL_F64, 3, (int64_t[]){B, H, Dv});
            nl_tensor_slice(&q, 2, t, t + 1, 1, &qt);
            nl_tensor_slice(&k, 2, t, t + 1, 1, &kt);
            nl_tensor_slice(&v, 2, t, t + 1, 1, &vt);
            NLT_OK(nl_lm_infinite_cache_append(&kc, &kt, &vt, t));
            NLT_OK(nl_lm_infinite_cache_attend(&kc, &qt, t, &o));
            for (int64_t bh = 0; bh < B * H; bh++)
                for (int64_t j = 0; j < Dv; j++) md = fmax(md, fabs(nl_tensor_get(&o, bh * Dv + j) - nl_tensor_get(&y[1]->val, (bh * n + t) * Dv + j)));
        }
        NLT_CHECK(md < 1e-12, "case %d: no-limit decoding == prefill (%g)", ci, md);
        nl_lm_infinite_cache_free(&kc);
        nl_ctx_free(c[0]);
        nl_ctx_free(c[1]);
        free(q.data); free(k.data); free(v.data); free(go.data);
    }
}

typedef struct { const int64_t *pos; const double *th; nl_lm_infinite_cfg cfg; } gc_nl;
static nl_var *f_nl(nl_ctx *c, nl_var **in, void *ud) {
    gc_nl *a = ud;
    return nl_lm_infinite_attention(c, in[0], in[1], in[2], a->pos, a->pos, a->th, a->cfg);
}

static void test_nolimit_gradcheck(void) {
    double th[2];
    mk_theta(th, 4, 100);
    int64_t pos[20];
    for (int i = 0; i < 20; i++) pos[i] = i;
    gc_nl a = {pos, th, {2, 5, NL_LM_INFINITE_NO_LIMIT}};
    nl_tensor in[3] = {rnd(NL_F64, 1, 2, 20, 4, 71), rnd(NL_F64, 1, 2, 20, 4, 72), rnd(NL_F64, 1, 2, 20, 3, 73)};
    nl_gc_result res;
    NLT_CHECK(nl_gradcheck(f_nl, &a, 3, in, NULL, 1e-6, 1e-8, 1e-6, &res) == NL_OK, "%s (max abs err %g)", res.first_failure, res.max_abs_err);
    for (int j = 0; j < 3; j++) free(in[j].data);
}

/* inside the training window every variant is vanilla attention; beyond it they differ */
static void test_variants_in_lm(void) {
    nl_lm_infinite_register();
    nl_lm_config c = nl_lm_config_default();
    c.vocab = 20; c.context = 8; c.n_layers = 2; c.d_model = 16; c.n_heads = 2; c.d_ff = 16;
    nl_lm m;
    NLT_OK(nl_lm_init(&m, &c, 3));
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 7 + 3) % 20;
    nl_ctx *cx = nl_ctx_new(0, 0);
    nl_lm_infinite_cfg ud;
    nl_var *y[NL_LM_INFINITE_EXP_NV], *yl[NL_LM_INFINITE_EXP_NV];
    for (int v = 0; v < NL_LM_INFINITE_EXP_NV; v++) {
        nl_lm_infinite_exp_set_variant(&m, v, 2, 8, &ud);
        y[v] = nl_lm_forward(&m, cx, ids, 1, 8, 0);
        yl[v] = nl_lm_forward(&m, cx, ids, 1, 40, 0);
        NLT_CHECK(y[v] && yl[v], "variant %s: %s", nl_lm_infinite_exp_variant_name[v], nl_last_error());
    }
    for (int v = 1; v < NL_LM_INFINITE_EXP_NV; v++)
        if (y[v] && y[0] && yl[v] && yl[0]) {
            NLT_CHECK(maxdiff(&y[v]->val, &y[0]->val) < 1e-5, "%s == lm-infinite within the window", nl_lm_infinite_exp_variant_name[v]);
            NLT_CHECK(maxdiff(&yl[v]->val, &yl[0]->val) > 1e-4, "%s != lm-infinite at 5x the window", nl_lm_infinite_exp_variant_name[v]);
        }
    nl_ctx_free(cx);
    nl_lm_free(&m);
}

/* the scorer on a random model: accuracy in [0, 1]; the needle is placed outside the window as asked */
static void test_passkey_scorer(void) {
    nl_lm_config c = nl_lm_config_default();
    c.context = 64; c.n_layers = 1; c.d_model = 16; c.n_heads = 2; c.d_ff = 32;
    nl_lm m;
    NLT_OK(nl_lm_init(&m, &c, 5));
    double acc = -1, md = 0;
    NLT_OK(nl_lm_infinite_exp_passkey_acc(&m, 256, 6, 1, 1, 100, 64, 10000000, &acc, &md));
    NLT_CHECK(acc >= 0 && acc <= 1, "accuracy %g", acc);
    NLT_CHECK(md >= 64 && fabs(md - 100) <= 8, "key distance %g: outside the 64 window, near 100", md);
    NLT_CHECK(nl_lm_infinite_exp_passkey_acc(&m, 256, 2, 1, 1, 400, 64, 100, &acc, &md) != NL_OK, "a distance beyond the prompt is refused");
    nl_lm_free(&m);
}

/* ---- the judge on hand-made results ---- */
typedef struct { double flat, flat_se, van, van_se, in, in_se, out, out_se, gain, gain_se; } hand;

static int judge_mode(hand h, int mode, int n_parts) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    nl_exp_set(&r, "n_seeds", 3);
    nl_exp_set(&r, "ppl_max_ratio_mean", h.flat);
    nl_exp_set(&r, "ppl_max_ratio_se", h.flat_se);
    nl_exp_set(&r, "ppl_ratio_32x_mean", h.flat);
    nl_exp_set(&r, "vanilla_ratio_32x_mean", h.van);
    nl_exp_set(&r, "vanilla_ratio_32x_se", h.van_se);
    nl_exp_set(&r, "pk_in_mean", h.in);
    nl_exp_set(&r, "pk_in_se", h.in_se);
    nl_exp_set(&r, "pk_out_mean", h.out);
    nl_exp_set(&r, "pk_out_se", h.out_se);
    nl_exp_set(&r, "vanilla_pk_out_mean", h.out - h.gain);
    nl_exp_set(&r, "pk_gain_mean", h.gain);
    nl_exp_set(&r, "pk_gain_se", h.gain_se);
    char m[600];
    const int pass = nl_exp_lm_infinite.judge(&nl_exp_lm_infinite, &r, mode, m, sizeof m);
    NLT_CHECK(r.n_parts == n_parts, "%d parts (%d)", n_parts, r.n_parts);
    NLT_CHECK(pass == nl_exp_parts_pass(&r), "verdict = every part passes");
    nl_exp_result_free(&r);
    return pass;
}
/* full mode: perplexity and passkey parts; quick mode (no passkey model): the two perplexity parts */
static int judge(hand h) { return judge_mode(h, NL_MODE_FULL, 4); }
static int judge_quick(hand h) { return judge_mode(h, NL_MODE_QUICK, 2); }

static void test_judge(void) {
    const hand ok = {1.01, 0.003, 3.0, 0.2, 0.95, 0.02, 0.7, 0.05, 0.7, 0.05};
    NLT_CHECK(judge(ok) == 1, "LM-Infinite as the paper describes it passes");
    hand h = ok;
    h.flat = 3.0, h.flat_se = 0.2, h.out = 0, h.gain = 0; /* vanilla: explodes and retrieves nothing beyond L */
    NLT_CHECK(judge(h) == 0, "vanilla's numbers fail");
    h = ok, h.flat = 1.6, h.flat_se = 0.1;                /* no global tokens: perplexity rises */
    NLT_CHECK(judge(h) == 0, "a sliding window whose perplexity rises 60%% fails");
    h = ok, h.flat = 1.08, h.flat_se = 0.02;              /* within the margin but not with its SE */
    NLT_CHECK(judge(h) == 0, "1.08 +- 0.02 over 3 seeds is not within 10%%");
    h = ok, h.in = 0.5;                                   /* the task was not learned */
    NLT_CHECK(judge(h) == 0, "in-length accuracy 0.5 fails");
    h = ok, h.out = 0.05, h.gain = 0.05;                  /* nothing retrieved outside the window */
    NLT_CHECK(judge(h) == 0, "no retrieval beyond the window fails");
    h = ok, h.gain = 0.1;                                 /* no better than vanilla */
    NLT_CHECK(judge(h) == 0, "no gain over vanilla fails");
    h = ok, h.van = 1.2;                                  /* the baseline does not explode */
    NLT_CHECK(judge(h) == 0, "a baseline that does not explode fails the claim");
    h = ok, h.flat = NAN;
    NLT_CHECK(judge(h) == 0, "NaN fails");
    /* quick: the passkey numbers are not judged (not measured there); the perplexity ones are */
    h = ok, h.in = 0, h.out = 0, h.gain = 0;
    NLT_CHECK(judge_quick(h) == 1, "quick: LM-Infinite's perplexity numbers pass");
    h.flat = 3.0, h.flat_se = 0.2;
    NLT_CHECK(judge_quick(h) == 0, "quick: vanilla's numbers fail");
    h = ok, h.flat = 1.6, h.flat_se = 0.1;
    NLT_CHECK(judge_quick(h) == 0, "quick: a sliding window whose perplexity rises 60%% fails");
    h = ok, h.van = 1.3, h.van_se = 0.05;
    NLT_CHECK(judge_quick(h) == 0, "quick: a baseline that does not explode fails");
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_nolimit_op);
    NLT_RUN(test_nolimit_gradcheck);
    NLT_RUN(test_variants_in_lm);
    NLT_RUN(test_passkey_scorer);
    NLT_RUN(test_judge);
    return nlt_finish();
}
