/* nnlab/longctx.h — PowerNorm (Shen et al. 2020) and LM-Infinite attention (Han et al. 2023).
 *
 * Both are engine ops (autograd nodes, include/nnlab/extend.h) plus the state they carry between steps:
 *   - PowerNorm keeps a running quadratic mean psi and a backward running statistic Gamma per channel, which can
 *     live in a parameter store as non-trainable buffers (so checkpoints carry them), and has an APPROXIMATE
 *     backward (docs/powernorm.md derives it and says where it differs from the paper and the official code);
 *   - LM-Infinite is a Lambda-shaped attention mask with a distance limit on RoPE attention: a brute-force O(n^2)
 *     reference, an O(n) blockwise op (forward and backward) for prefill/training, a ring-buffer KV cache of
 *     n_global + n_local entries for decoding, and a passkey-retrieval task generator and scorer
 *     (docs/lm-infinite.md).
 * The RoPE convention is HF's rotate_half pairing: dimension j is paired with j + D/2, angle = pos * theta[j],
 *   (x_j, x_{j+D/2}) -> (x_j cos - x_{j+D/2} sin, x_{j+D/2} cos + x_j sin),  j = 0 .. D/2-1. */
#ifndef NNLAB_LONGCTX_H
#define NNLAB_LONGCTX_H
#include "nnlab/autograd.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================= PowerNorm ======================================= *
 * x [..., C] (channels last, any leading dims; each row of C values is one token). Training step t (1-based,
 * counted by the op):
 *   (1) group scaling per token (groups > 0): u = x / sqrt(mean_{c in group}(x^2) + gs_eps), C/groups channels
 *       per group (groups = attention heads in the paper; 1 = one RMS over all C; 0 = off, u = x);
 *   (2) s2_B[c] = mean over non-pad tokens of u[c]^2;
 *   (3) z = u / sqrt(s2_B + eps) if t <= warmup, else z = u / sqrt(psi + eps) with psi from before this step;
 *   (4) y = gamma z + beta (gamma/beta [C] or NULL);
 *   (5) psi <- psi (t-1)/t + s2_B/t if t < warmup (cumulative average; strict '<' as the official code), then
 *       always psi <- alpha_f psi + (1 - alpha_f) s2_B.
 * Eval (train = 0): y = gamma u / sqrt(psi + eps) + beta; nothing changes; exact backward.
 * Approximate backward (training): g = gamma dL/dy; g_hat = g - (1-alpha_b) Gamma z (Gamma from before);
 *   Gamma <- Gamma + mean over non-pad tokens of g_hat z; dL/du = g_hat / sqrt(s2_B + eps) (the batch statistic,
 *   also after warmup); dL/dgamma = sum dL/dy z; dL/dbeta = sum dL/dy (over all tokens). Group scaling (1) is
 *   differentiated exactly (as autograd does in the official code): dx = r (du - u mean_group(du u)), r =
 *   1/sqrt(mean_group(x^2) + gs_eps).
 * The state update of step (5) happens in the forward (also in no-grad mode, like BatchNorm); the Gamma update
 * happens when the backward of that node runs (once per backward call). */
typedef struct nl_powernorm_state {
    int64_t C;        /* channels */
    int groups;       /* group scaling groups (C % groups == 0), 0 = no group scaling */
    int64_t warmup;   /* steps t <= warmup normalise with the batch statistic */
    double alpha_f;   /* forward running-average rate (0.9) */
    double alpha_b;   /* backward running-average rate (0.9) */
    double eps;       /* added to s2_B / psi (1e-5) */
    double gs_eps;    /* added in group scaling (1e-5) */
    int64_t step;     /* training forwards done (mirrored in `iters` when present) */
    nl_var *psi;      /* (C) running quadratic mean, init 1 (buffer) */
    nl_var *Gamma;    /* (C) backward running statistic, init 0 (buffer) */
    nl_var *iters;    /* (1) step counter as a buffer (exact below 2^24 in f32), or NULL */
    void *own;        /* internal: storage when no parameter store is used */
} nl_powernorm_state;

/* Set up a PowerNorm over C channels with alpha_f = alpha_b = 0.9, eps = gs_eps = 1e-5 (change the fields after
 * init if needed). With ps != NULL the buffers are added to ps as non-trainable entries "<prefix>.running_phi"
 * [C], "<prefix>.ema_gz" [C], "<prefix>.iters" [1] (the official code's names), in the store's dtype, so they are
 * checkpointed and the step counter restarts where a loaded checkpoint left it; pn must not be used after
 * nl_params_free(ps). With ps == NULL, pn owns f64 buffers. gamma/beta are NOT created (pass your own, as for
 * nl_batchnorm; the usual init is gamma = 1, beta = 0). */
nl_status nl_powernorm_init(nl_powernorm_state *pn, int64_t C, int groups, int64_t warmup, nl_params *ps,
                            const char *prefix);
void nl_powernorm_free(nl_powernorm_state *pn);
/* Zero the statistics: psi = 1, Gamma = 0, step = 0. */
void nl_powernorm_reset(nl_powernorm_state *pn);
/* The op. pad_mask: (numel(x)/C) bytes, nonzero = padding token (excluded from s2_B and from Gamma's mean), or
 * NULL. pn must stay alive until the backward of the returned node has run. Training with every token padded is
 * an error (NL_EINVAL). f32 and f64. */
nl_var *nl_powernorm(nl_ctx *c, nl_powernorm_state *pn, nl_var *x, nl_var *gamma, nl_var *beta, const uint8_t *pad_mask,
                     int train);

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
typedef struct nl_lambda_cfg {
    int64_t n_global;  /* keys at positions [0, n_global) stay visible beyond the local window */
    int64_t n_local;   /* local window (the pretraining length in the paper) */
    int64_t limit;     /* L, the distance given to global keys beyond the window (usually n_local) */
} nl_lambda_cfg;

/* Brute-force masked reference, O(T*S) scores; differentiable (q, k, v). q [B,H,T,D] (UNROTATED), k [B,H,S,D]
 * (UNROTATED), v [B,H,S,Dv]; qpos (T) and kpos (S) absolute positions shared by all batches and heads; theta
 * (D/2) RoPE frequencies (angle = pos * theta[j]). Returns [B,H,T,Dv]. f32 and f64 (computed in double). */
nl_var *nl_lambda_attention_ref(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, const int64_t *qpos,
                                const int64_t *kpos, const double *theta, nl_lambda_cfg cfg);
/* O(n) blockwise op, same inputs and result, forward and backward. Positions must be consecutive:
 * kpos[s] = kpos[0] + s, qpos[t] = qpos[0] + t (prefill: qpos == kpos; a chunk after cached keys: queries at
 * the end). Query tiles attend to the keys of [tile start - n_local + 1, tile end] (a band) plus the global keys
 * (positions < n_global, a prefix of the keys): cost O(T (n_local + tile + n_global) D), scratch per tile. */
nl_var *nl_lambda_attention(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, const int64_t *qpos, const int64_t *kpos,
                            const double *theta, nl_lambda_cfg cfg);

/* Ring-buffer KV cache for decoding with LM-Infinite: keeps the keys/values of positions [0, n_global) and the
 * last n_local positions, n_global + n_local slots per (batch, head) whatever the generated length. Stores the
 * UNROTATED keys with their absolute positions (needed by the global branch) and, derived from them once at
 * append time, the rotated keys R_j k (so a step does no trigonometry per key). Values in double. */
typedef struct nl_lambda_cache {
    int64_t B, H, D, Dv;
    nl_lambda_cfg cfg;
    double *theta;       /* (D/2) copy */
    int64_t n_seen;      /* tokens appended */
    int64_t next_pos;    /* position expected by the next append (positions must be consecutive) */
    int64_t n_slots;     /* n_global + n_local */
    double *k;           /* (B, H, n_slots, D) unrotated keys */
    double *kr;          /* (B, H, n_slots, D) rotated keys */
    double *v;           /* (B, H, n_slots, Dv) */
    int64_t *pos;        /* (n_slots) position held by each slot, -1 = empty */
    double *scratch;     /* (n_slots + 5 D + Dv + 4) per-step work */
} nl_lambda_cache;

nl_status nl_lambda_cache_init(nl_lambda_cache *kc, int64_t B, int64_t H, int64_t D, int64_t Dv, const double *theta,
                               nl_lambda_cfg cfg);
void nl_lambda_cache_free(nl_lambda_cache *kc);
/* Forget everything (keeps the memory). */
void nl_lambda_cache_clear(nl_lambda_cache *kc);
/* Append the key/value of one token at position pos (must equal kc->next_pos, which starts at 0):
 * k [B,H,D], v [B,H,Dv] (tensors of any layout, f32 or f64; a [B,H,1,D] view is accepted too). */
nl_status nl_lambda_cache_append(nl_lambda_cache *kc, const nl_tensor *k, const nl_tensor *v, int64_t pos);
/* Attention of one query per (batch, head) at position pos (>= every cached position) over the cache:
 * q [B,H,D] (or [B,H,1,D]) UNROTATED -> out [B,H,Dv] (same element count; f32 or f64). */
nl_status nl_lambda_cache_attend(nl_lambda_cache *kc, const nl_tensor *q, int64_t pos, nl_tensor *out);
/* Bytes held by the cache (constant after init). */
size_t nl_lambda_cache_bytes(const nl_lambda_cache *kc);

/* ==================================== passkey retrieval ==================================== *
 * Prompt = prefix + " " + distractor x a + " " + needle(K) + " " + distractor x b + " " + question, parts joined
 * by single spaces, a + b = n_distract chosen so that the prompt fits target_len (measured by len_fn), the needle
 * slot a uniform in [0, n_distract) (or given), K uniform in [1, 1e7). A generation is correct when the first
 * integer in it equals K (no integer = wrong). Texts default to the LM-Infinite repository's
 * (data/passkey_retrieval) task. */
typedef struct nl_passkey_text {
    const char *prefix;      /* task description */
    const char *distractor;  /* repeated filler */
    const char *needle;      /* "{K}" is replaced by the key (every occurrence) */
    const char *question;    /* appended at the end; the model continues after it */
} nl_passkey_text;
/* "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you
 * about the important information there." / "The grass is green. The sky is blue. The sun is yellow. Here we go.
 * There and back again." / "The pass key is {K}. Remember it. {K} is the pass key." / "What is the pass key? The
 * pass key is" */
extern const nl_passkey_text nl_passkey_default_text;

/* Length of a string in model tokens; NULL means bytes (character-level models). */
typedef int64_t (*nl_token_len_fn)(void *ud, const char *s);
/* Generation callback: continue `prompt`, write a NUL-terminated continuation (a few tokens suffice) into out. */
typedef nl_status (*nl_generate_fn)(void *ud, const char *prompt, char *out, size_t out_cap);

typedef struct nl_passkey_sample {
    char *prompt;            /* malloc'd */
    int64_t key;             /* in [1, 1e7) */
    int64_t n_distract;      /* distractor repetitions */
    int64_t insert_at;       /* distractors before the needle */
    int64_t len;             /* prompt length by len_fn */
} nl_passkey_sample;

/* One sample. txt NULL = default text. insert_at < 0: uniform in [0, n_distract); else clamped to n_distract.
 * key <= 0: drawn uniformly from [1, 1e7). NL_EINVAL if target_len cannot hold at least one distractor. */
nl_status nl_passkey_make(const nl_passkey_text *txt, int64_t target_len, nl_token_len_fn len_fn, void *len_ud,
                          int64_t insert_at, int64_t key, nl_rng *rng, nl_passkey_sample *out);
void nl_passkey_sample_free(nl_passkey_sample *s);
/* First maximal run of decimal digits in s as a number (*found = 0 and 0 when there is none; runs longer than
 * 18 digits saturate). */
int64_t nl_passkey_first_int(const char *s, int *found);
/* 1 when the first integer of `generated` equals key. */
int nl_passkey_correct(const char *generated, int64_t key);
/* Accuracy of gen over n samples of length target_len (seeded: sample i uses rng(seed, stream 0x9A55, ...)). */
nl_status nl_passkey_eval(const nl_passkey_text *txt, int64_t target_len, int n, uint64_t seed, nl_token_len_fn len_fn,
                          void *len_ud, nl_generate_fn gen, void *gen_ud, double *accuracy);

#ifdef __cplusplus
}
#endif
#endif
