/* lm_infinite/lm_infinite.h — LM-Infinite (Han et al. 2023): a Lambda-shaped attention mask with a distance limit
 * on RoPE attention, as an engine-style op (autograd node, include/nnlab/extend.h): a brute-force O(n^2) reference,
 * an O(n) blockwise op (forward and backward) for prefill/training, a ring-buffer KV cache of n_global + n_local
 * entries for decoding, the "lminf" attention kind plugged into the transformer library, and a passkey-retrieval
 * task generator and scorer (methods/lm_infinite/README.md).
 * The RoPE convention is HF's rotate_half pairing: dimension j is paired with j + D/2, angle = pos * theta[j],
 *   (x_j, x_{j+D/2}) -> (x_j cos - x_{j+D/2} sin, x_{j+D/2} cos + x_j sin),  j = 0 .. D/2-1. */
#ifndef NNLAB_LM_INFINITE_H
#define NNLAB_LM_INFINITE_H
#include "nnlab/ledger.h"
#include "nnlab/autograd.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==================================== LM-Infinite attention ==================================== *
 * Per batch and head, query at position i, key at position j (absolute positions; keys after the query are
 * never seen):
 *   i - j < n_local              : s = (R_i q) . (R_j k) / sqrt(D)      (normal RoPE score)
 *   else j < n_global            : s = (R_L q) . k / sqrt(D)            (distance clamped to L = limit)
 *   else                         : excluded
 * then softmax over the visible keys and out = sum p v. A query with no visible key gets zeros. With
 * n_local >= every i - j this is plain causal RoPE attention (the "vanilla" baseline). Note: the official code
 * clamps with min(L, kv_len - 1); we use L as the formula says (the two agree whenever the global branch is used
 * with L <= n_local). */
typedef struct nl_lm_infinite_cfg {
    int64_t n_global;  /* keys at positions [0, n_global) stay visible beyond the local window */
    int64_t n_local;   /* local window (the pretraining length in the paper) */
    int64_t limit;     /* L, the distance given to global keys beyond the window (usually n_local); or
                        * NL_LM_INFINITE_NO_LIMIT: global keys at their true distance (the "no distance limit" control) */
} nl_lm_infinite_cfg;
#define NL_LM_INFINITE_NO_LIMIT ((int64_t)-1)

/* Brute-force masked reference, O(T*S) scores; differentiable (q, k, v). q [B,H,T,D] (UNROTATED), k [B,H,S,D]
 * (UNROTATED), v [B,H,S,Dv]; qpos (T) and kpos (S) absolute positions shared by all batches and heads; theta
 * (D/2) RoPE frequencies (angle = pos * theta[j]). Returns [B,H,T,Dv]. f32 and f64 (computed in double). */
nl_var *nl_lm_infinite_attention_ref(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, const int64_t *qpos,
                                const int64_t *kpos, const double *theta, nl_lm_infinite_cfg cfg);
/* O(n) blockwise op, same inputs and result, forward and backward. Positions must be consecutive:
 * kpos[s] = kpos[0] + s, qpos[t] = qpos[0] + t (prefill: qpos == kpos; a chunk after cached keys: queries at
 * the end). Query tiles attend to the keys of [tile start - n_local + 1, tile end] (a band) plus the global keys
 * (positions < n_global, a prefix of the keys): cost O(T (n_local + tile + n_global) D), scratch per tile. */
nl_var *nl_lm_infinite_attention(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, const int64_t *qpos, const int64_t *kpos,
                            const double *theta, nl_lm_infinite_cfg cfg);

/* Ring-buffer KV cache for decoding with LM-Infinite: keeps the keys/values of positions [0, n_global) and the
 * last n_local positions, n_global + n_local slots per (batch, head) whatever the generated length. Stores the
 * UNROTATED keys with their absolute positions (needed by the global branch) and, derived from them once at
 * append time, the rotated keys R_j k (so a step does no trigonometry per key). Values in double. */
typedef struct nl_lm_infinite_cache {
    int64_t B, H, D, Dv;
    nl_lm_infinite_cfg cfg;
    double *theta;       /* (D/2) copy */
    int64_t n_seen;      /* tokens appended */
    int64_t next_pos;    /* position expected by the next append (positions must be consecutive) */
    int64_t n_slots;     /* n_global + n_local */
    double *k;           /* (B, H, n_slots, D) unrotated keys */
    double *kr;          /* (B, H, n_slots, D) rotated keys */
    double *v;           /* (B, H, n_slots, Dv) */
    int64_t *pos;        /* (n_slots) position held by each slot, -1 = empty */
    double *scratch;     /* (n_slots + 5 D + Dv + 4) per-step work */
} nl_lm_infinite_cache;

nl_status nl_lm_infinite_cache_init(nl_lm_infinite_cache *kc, int64_t B, int64_t H, int64_t D, int64_t Dv, const double *theta,
                               nl_lm_infinite_cfg cfg);
void nl_lm_infinite_cache_free(nl_lm_infinite_cache *kc);
/* Forget everything (keeps the memory). */
void nl_lm_infinite_cache_clear(nl_lm_infinite_cache *kc);
/* Append the key/value of one token at position pos (must equal kc->next_pos, which starts at 0):
 * k [B,H,D], v [B,H,Dv] (tensors of any layout, f32 or f64; a [B,H,1,D] view is accepted too). */
nl_status nl_lm_infinite_cache_append(nl_lm_infinite_cache *kc, const nl_tensor *k, const nl_tensor *v, int64_t pos);
/* Attention of one query per (batch, head) at position pos (>= every cached position) over the cache:
 * q [B,H,D] (or [B,H,1,D]) UNROTATED -> out [B,H,Dv] (same element count; f32 or f64). */
nl_status nl_lm_infinite_cache_attend(nl_lm_infinite_cache *kc, const nl_tensor *q, int64_t pos, nl_tensor *out);
/* Bytes held by the cache (constant after init). */
size_t nl_lm_infinite_cache_bytes(const nl_lm_infinite_cache *kc);

/* ==================================== passkey retrieval ==================================== *
 * Prompt = prefix + " " + distractor x a + " " + needle(K) + " " + distractor x b + " " + question, parts joined
 * by single spaces, a + b = n_distract chosen so that the prompt fits target_len (measured by len_fn), the needle
 * slot a uniform in [0, n_distract) (or given), K uniform in [1, 1e7). A generation is correct when the first
 * integer in it equals K (no integer = wrong). Texts default to the LM-Infinite repository's
 * (data/passkey_retrieval) task. */
typedef struct nl_lm_infinite_passkey_text {
    const char *prefix;      /* task description */
    const char *distractor;  /* repeated filler */
    const char *needle;      /* "{K}" is replaced by the key (every occurrence) */
    const char *question;    /* appended at the end; the model continues after it */
} nl_lm_infinite_passkey_text;
/* "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you
 * about the important information there." / "The grass is green. The sky is blue. The sun is yellow. Here we go.
 * There and back again." / "The pass key is {K}. Remember it. {K} is the pass key." / "What is the pass key? The
 * pass key is" */
extern const nl_lm_infinite_passkey_text nl_lm_infinite_passkey_default_text;

/* Length of a string in model tokens; NULL means bytes (character-level models). */
typedef int64_t (*nl_lm_infinite_token_len_fn)(void *ud, const char *s);
/* Generation callback: continue `prompt`, write a NUL-terminated continuation (a few tokens suffice) into out. */
typedef nl_status (*nl_lm_infinite_generate_fn)(void *ud, const char *prompt, char *out, size_t out_cap);

typedef struct nl_lm_infinite_passkey_sample {
    char *prompt;            /* malloc'd */
    int64_t key;             /* in [1, 1e7) */
    int64_t n_distract;      /* distractor repetitions */
    int64_t insert_at;       /* distractors before the needle */
    int64_t len;             /* prompt length by len_fn */
} nl_lm_infinite_passkey_sample;

/* One sample. txt NULL = default text. insert_at < 0: uniform in [0, n_distract); else clamped to n_distract.
 * key <= 0: drawn uniformly from [1, 1e7). NL_EINVAL if target_len cannot hold at least one distractor. */
nl_status nl_lm_infinite_passkey_make(const nl_lm_infinite_passkey_text *txt, int64_t target_len, nl_lm_infinite_token_len_fn len_fn, void *len_ud,
                          int64_t insert_at, int64_t key, nl_rng *rng, nl_lm_infinite_passkey_sample *out);
void nl_lm_infinite_passkey_sample_free(nl_lm_infinite_passkey_sample *s);
/* First maximal run of decimal digits in s as a number (*found = 0 and 0 when there is none; runs longer than
 * 18 digits saturate). */
int64_t nl_lm_infinite_passkey_first_int(const char *s, int *found);
/* 1 when the first integer of `generated` equals key. */
int nl_lm_infinite_passkey_correct(const char *generated, int64_t key);
/* Accuracy of gen over n samples of length target_len (seeded: sample i uses rng(seed, stream 0x9A55, ...)). */
nl_status nl_lm_infinite_passkey_eval(const nl_lm_infinite_passkey_text *txt, int64_t target_len, int n, uint64_t seed, nl_lm_infinite_token_len_fn len_fn,
                          void *len_ud, nl_lm_infinite_generate_fn gen, void *gen_ud, double *accuracy);


/* ---- registration (methods/lm_infinite/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_lm_infinite;
extern const nl_method nl_method_lm_infinite;
int nl_lm_infinite_cli(int argc, char **argv);   /* `nnlab ...` with the arguments after the command name */
/* Registers the "lminf" attention kind with the transformer library (transformer.h nl_lm_attn_provide), so that
 * nl_lm models, checkpoints and `nnlab lm --attn lminf` can use it; idempotent. The nnlab program calls it at
 * start (nl_methods_init); a program embedding the library calls it before building an lminf model. */
void nl_lm_infinite_register(void);
/* The same attention as a custom kind (nl_lm_config.attn = NL_LM_ATTN_CUSTOM, attn_fn = this, attn_ud = a
 * const nl_lm_infinite_cfg *): any n_global / n_local / limit, e.g. NL_LM_INFINITE_NO_LIMIT (the ledger's control). */
struct nl_lm_attn_args;
nl_var *nl_lm_infinite_attn_custom(nl_ctx *c, const struct nl_lm_attn_args *a, void *ud);

#ifdef __cplusplus
}
#endif
#endif
