/* Mixed text + Lines batches (nl_lm_mix_batch) and the evaluation position override (nl_lm.eval_pos). */
#include "nltest.h"
#include "transformer/transformer.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_mix_batch(void) {
    enum { N = 4000, B = 400, T = 48 };
    int32_t *text = malloc(sizeof(int32_t) * N);   /* (N) a counter mod 256: windows are checkable */
    int32_t *ids = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);   /* (B, T) each */
    for (int i = 0; i < N; i++) text[i] = i % 256;
    nl_lm_mix_batcher mb;
    memset(&mb, 0, sizeof mb);
    mb.text = text; mb.n_text = N; mb.lines_frac = 0.3; mb.lines_offset = 256;
    nl_rng_init(&mb.rng, 1, 2);
    nl_rng_init(&mb.lines.rng, 1, 3);
    NLT_OK(nl_lm_mix_batch(&mb, 0, B, T, ids, tg));
    int n_lines = 0, bad = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *r = ids + b * T, *t = tg + b * T;
        if (r[0] >= 256) {   /* a Lines row: every id shifted, targets shifted or ignored, some answer targets */
            n_lines++;
            int has = 0;
            for (int k = 0; k < T; k++) {
                bad += r[k] < 256 || r[k] >= nl_lm_mix_vocab(256) || (t[k] >= 0 && t[k] < 256);
                has += t[k] >= 0;
            }
            bad += !has;
        } else {             /* a text row: a window of the counter, targets the next byte */
            for (int k = 0; k < T; k++) bad += r[k] >= 256 || t[k] != (r[k] + 1) % 256 || (k > 0 && r[k] != (r[k - 1] + 1) % 256);
        }
    }
    NLT_CHECK(bad == 0, "row contents (%d bad)", bad);
    NLT_CHECK(n_lines > 0.3 * B - 40 && n_lines < 0.3 * B + 40, "share of Lines rows %d of %d (0.3 expected)", n_lines, B);
    NLT_CHECK(nl_lm_mix_vocab(256) == 256 + nl_lines_vocab(), "shared vocabulary");
    /* text only / Lines only */
    mb.lines_frac = 0;
    NLT_OK(nl_lm_mix_batch(&mb, 1, B, T, ids, tg));
    int any = 0;
    for (int k = 0; k < B * T; k++) any += ids[k] >= 256;
    NLT_CHECK(any == 0, "lines_frac 0: text only");
    mb.lines_frac = 1;
    mb.text = NULL;   /* no corpus needed */
    NLT_OK(nl_lm_mix_batch(&mb, 2, B, T, ids, tg));
    any = 0;
    for (int k = 0; k < B * T; k++) any += ids[k] < 256;
    NLT_CHECK(any == 0, "lines_frac 1: Lines only");
    /* errors */
    mb.lines_frac = 0.5;
    NLT_CHECK(nl_lm_mix_batch(&mb, 3, B, T, ids, tg) == NL_EINVAL, "text rows without a corpus");
    mb.text = text; mb.n_text = T;
    NLT_CHECK(nl_lm_mix_batch(&mb, 3, B, T, ids, tg) == NL_EINVAL, "corpus shorter than T + 1");
    mb.n_text = N; mb.lines_frac = 1.5;
    NLT_CHECK(nl_lm_mix_batch(&mb, 3, B, T, ids, tg) == NL_EINVAL, "lines_frac > 1");
    free(text); free(ids); free(tg);
}

/* The override with positions 0..T-1 is the default forward; a permutation changes the logits; a shorter override
 * is refused; training ignores it. */
static void test_eval_pos(void) {
    nl_lm_config c = nl_lm_config_default();
    c.vocab = 32; c.context = 16; c.d_model = 32; c.n_heads = 2; c.n_layers = 2;
    nl_lm m;
    NLT_OK(nl_lm_init(&m, &c, 9));
    enum { T = 12 };
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (t * 7 + 3) % 32;
    double id[T], perm[T];
    for (int t = 0; t < T; t++) { id[t] = t; perm[t] = (t * 5) % T; }
    nl_ctx *cx = nl_ctx_new(0, 0);
    nl_set_grad_enabled(cx, 0);
    nl_var *a = nl_lm_forward(&m, cx, ids, 1, T, 0);
    NLT_CHECK(a != NULL, "forward");
    m.eval_pos = id; m.eval_pos_n = T;
    nl_var *b = nl_lm_forward(&m, cx, ids, 1, T, 0);
    m.eval_pos = perm;
    nl_var *p = nl_lm_forward(&m, cx, ids, 1, T, 0);
    NLT_CHECK(b && p, "forward with positions");
    double dmax = 0, pmax = 0;
    for (int64_t k = 0; a && b && p && k < (int64_t)T * 32; k++) {
        const double x = nl_tensor_get(&a->val, k);
        const double db = fabs(x - nl_tensor_get(&b->val, k)), dp = fabs(x - nl_tensor_get(&p->val, k));
        if (db > dmax) dmax = db;
        if (dp > pmax) pmax = dp;
    }
    NLT_CHECK(dmax == 0, "identity positions = default (max diff %g)", dmax);
    NLT_CHECK(pmax > 1e-4, "permuted positions change the logits (max diff %g)", pmax);
    m.eval_pos_n = T - 1;
    NLT_CHECK(nl_lm_forward(&m, cx, ids, 1, T, 0) == NULL && nl_last_status() == NL_EINVAL, "too few positions");
    nl_var *tr = nl_lm_forward(&m, cx, ids, 1, T, 1);
    NLT_CHECK(tr != NULL, "training ignores the override");
    double tmax = 0;
    for (int64_t k = 0; tr && a && k < (int64_t)T * 32; k++) {
        const double d = fabs(nl_tensor_get(&tr->val, k) - nl_tensor_get(&a->val, k));
        if (d > tmax) tmax = d;
    }
    NLT_CHECK(tmax < 1e-5, "training forward uses 0..T-1 (max diff %g)", tmax);
    nl_ctx_free(cx);
    nl_lm_free(&m);
}

int main(void) {
    NLT_RUN(test_mix_batch);
    NLT_RUN(test_eval_pos);
    return nlt_finish();
}
