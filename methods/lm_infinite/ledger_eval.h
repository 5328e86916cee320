/* lm_infinite/ledger_eval.h — pieces of the `lm-infinite` ledger entry (experiment.c, ledger_eval.c): the attention
 * variants it compares, text windows that start with a BOS byte and their perplexity at any length, passkey
 * training rows, and a batched teacher-forced passkey scorer with the needle at a chosen distance from the question.
 * Internal to the method (not part of its public header). */
#ifndef NNLAB_LM_INFINITE_LEDGER_EVAL_H
#define NNLAB_LM_INFINITE_LEDGER_EVAL_H
#include "lm_infinite/lm_infinite.h"
#include "transformer/transformer.h"

#define NL_LM_INFINITE_EXP_BOS 2 /* start-of-sequence byte (STX: absent from the corpus) that begins every window */

/* The attention variants: the method, the baseline it beats, and the two controls. */
enum { NL_LM_INFINITE_EXP_LMINF, NL_LM_INFINITE_EXP_VANILLA, NL_LM_INFINITE_EXP_NOGLOBAL, NL_LM_INFINITE_EXP_NOLIMIT, NL_LM_INFINITE_EXP_NV };
extern const char *const nl_lm_infinite_exp_variant_name[NL_LM_INFINITE_EXP_NV];  /* "lm-infinite", "vanilla", "no-global-tokens", ... */
extern const char *const nl_lm_infinite_exp_variant_kind[NL_LM_INFINITE_EXP_NV];  /* "main", "baseline", "generic", "broken" */
extern const char *const nl_lm_infinite_exp_variant_what[NL_LM_INFINITE_EXP_NV];  /* one line each */
/* Switch m's attention to variant v (n_global starting tokens, n_local = limit = L); ud: storage the custom
 * "no distance limit" attention points to (must outlive the use of m). No parameter changes. */
void nl_lm_infinite_exp_set_variant(nl_lm *m, int v, int n_global, int L, nl_lm_infinite_cfg *ud);

/* nl_lm_batch_fn of text rows: BOS then T - 1 bytes from a random offset of tok (n); targets: the T next bytes. */
typedef struct nl_lm_infinite_exp_text_ud {
    const int32_t *tok;
    int64_t n;
    nl_rng rng;
} nl_lm_infinite_exp_text_ud;
nl_status nl_lm_infinite_exp_text_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *tg);

/* Perplexity of windows of T tokens (BOS + T - 1 bytes; the T bytes text[w T, (w + 1) T) are predicted, every one
 * scored) over the first n_pred bytes of tok (rounded down to whole windows, at least one): the same predicted
 * bytes at every T dividing n_pred. ctx: scratch context reused across calls (reset on return; its arena keeps its
 * grown size, so repeated calls do not fault fresh pages in), or NULL for a private one. */
nl_status nl_lm_infinite_exp_perplexity(nl_ctx *ctx, nl_lm *m, const int32_t *tok, int64_t n, int64_t T, int64_t n_pred, double *ppl);

/* nl_lm_batch_fn of passkey rows: BOS + a prompt of 60 .. T - 10 bytes (needle at a uniform slot) + " K." and
 * newline padding; targets on the answer " K." only. */
typedef struct nl_lm_infinite_exp_pk_ud {
    nl_rng rng;
    int64_t key_max;          /* keys uniform in [1, key_max) */
} nl_lm_infinite_exp_pk_ud;
nl_status nl_lm_infinite_exp_pk_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *tg);

/* Passkey accuracy of n prompts of `target` bytes (BOS first), keys uniform in [1, key_max), seeded by (seed,
 * stream). dist <= 0: the needle at a uniform slot; dist > 0: at the slot that puts the key's last digit about
 * dist bytes before the last prompt byte and at least min_dist bytes (the local window) before it — NL_EINVAL if
 * the prompt cannot place it so. Scored teacher-forced in one batched forward pass: correct when the greedy
 * prediction at every answer position reproduces " K" and the byte after the key is predicted as a non-digit
 * (exactly what greedy decoding of " K" then a non-digit gives). *mean_dist: mean key distance actually used. */
nl_status nl_lm_infinite_exp_passkey_acc(nl_lm *m, int64_t target, int n, uint64_t seed, uint64_t stream, int64_t dist, int64_t min_dist,
                             int64_t key_max, double *acc, double *mean_dist);
#endif
