/* transformer/transformer.h — decoder-only transformer language model with RoPE (and the Giraffe variants), a
 * selectable normalisation, a pluggable attention, a KV cache for sampling, safetensors checkpoints, a byte-level
 * corpus from Debian text packages, and the synthetic LongChat-Lines retrieval task.
 *
 * Architecture (pre-norm; x [B, T, d], d = d_model, H heads of size Dh = d / H):
 *   x = tok_emb[ids]
 *   per layer l:  h = norm1(x);  q, k, v = split(h Wqkv^T)             (Wqkv [3d, d], no bias)
 *                 a = attention(q, k, v)                              (RoPE on q, k; causal; see attn kinds)
 *                 x = x + a Wo^T                                      (Wo [d, d], no bias)
 *                 x = x + fc2(gelu(fc1(norm2(x))))                    (fc1 [d_ff, d] + bias, fc2 [d, d_ff] + bias)
 *   logits = norm_f(x) W_head^T                                       (W_head = tok_emb when tied)
 * Parameter names (nl_params store, PyTorch-like): "tok_emb.weight" [V, d], "layers.<l>.norm1.weight" /
 * ".bias" [d], "layers.<l>.attn.qkv.weight" [3d, d], "layers.<l>.attn.out.weight" [d, d],
 * "layers.<l>.norm2.*", "layers.<l>.mlp.fc1.weight" [d_ff, d], ".fc1.bias", ".fc2.weight" [d, d_ff], ".fc2.bias",
 * "norm_f.*", "lm_head.weight" [V, d] (absent when tied). LayerNorm has weight+bias, RMSNorm weight only,
 * BatchNorm weight+bias and the buffers ".running_mean"/".running_var" (non-trainable), PowerNorm weight+bias and
 * the op's buffers ".running_phi", ".ema_gz", ".iters" (non-trainable; longctx.h nl_powernorm_init, group
 * scaling over n_heads groups, warmup pn_warmup, alpha_f = alpha_b = pn_alpha). Init: Linear/embedding weights N(0, 0.02), fc2 and attn.out scaled
 * by 1/sqrt(2 n_layers) (GPT-2), biases 0, norm weights 1; drawn from nl_rng(seed, NL_STREAM_INIT) in store order.
 *
 * Norm kinds: layernorm | rmsnorm | batchnorm (over the B*T tokens of a batch, per channel; note that batch
 * statistics let a token see its batch's future tokens in training — the PowerNorm paper's motivation) |
 * powernorm (the engine op nl_powernorm of include/lm_infinite/lm_infinite.h, approximate backward, running quadratic mean;
 * no pad mask: every token of a batch counts).
 *
 * Attention kinds:
 *   vanilla  fused causal nl_attention on RoPE-rotated q, k (rope.h: the variant's frequencies at the training
 *            scale in training, at the evaluation scale otherwise; xPos adds its decay factors; randomised
 *            positions in training when rope.randomized).
 *   lminf    LM-Infinite Lambda-shaped attention (longctx.h op taking UNROTATED q, k, the frequency table and the
 *            positions; n_global starting tokens + a local window of n_local tokens, distance limit = n_local).
 *   custom   a user function (cfg.attn_fn) receiving unrotated q, k, v (nl_lm_attn_args) — the plug-in point.
 *
 * Sequence lengths: training windows are at most cfg.context tokens. Evaluation and generation may go further
 * (RoPE extrapolation / interpolation) only when explicitly allowed (nl_lm_eval options, CLI --extrapolate) or
 * with the lminf attention; otherwise a longer input is an NL_EINVAL error naming both lengths. */
#ifndef NNLAB_TRANSFORMER_H
#define NNLAB_TRANSFORMER_H
#include "nnlab/autograd.h"
#include "nnlab/optim.h"
#include "nnlab/rng.h"
#include "transformer/rope.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_LM_MAX_LAYERS 16
/* Upper bounds checked by nl_lm_config_check (so sizes read from a checkpoint cannot overflow: 4 * d_model,
 * 3 * d_model * d_model, vocab * d_model all fit in int64 and d_ff defaults fit in int). */
#define NL_LM_MAX_VOCAB (1 << 24)
#define NL_LM_MAX_CONTEXT (1 << 20)
#define NL_LM_MAX_D_MODEL (1 << 16)
#define NL_LM_MAX_D_FF (1 << 18)

typedef enum nl_lm_norm_kind {
    NL_LM_NORM_LAYER = 0,   /* "layernorm" */
    NL_LM_NORM_RMS,         /* "rmsnorm" */
    NL_LM_NORM_BATCH,       /* "batchnorm" */
    NL_LM_NORM_POWER,       /* "powernorm" */
    NL_LM_NORM_KIND_COUNT
} nl_lm_norm_kind;

typedef enum nl_lm_attn_kind {
    NL_LM_ATTN_VANILLA = 0, /* "vanilla" */
    NL_LM_ATTN_LMINF,       /* "lminf" */
    NL_LM_ATTN_CUSTOM,      /* "custom" (cfg.attn_fn) */
    NL_LM_ATTN_KIND_COUNT
} nl_lm_attn_kind;

const char *nl_lm_norm_name(nl_lm_norm_kind k);
nl_status nl_lm_norm_parse(const char *s, nl_lm_norm_kind *out);
const char *nl_lm_attn_name(nl_lm_attn_kind k);
nl_status nl_lm_attn_parse(const char *s, nl_lm_attn_kind *out);

typedef struct nl_lm nl_lm;
typedef struct nl_lm_cache nl_lm_cache;

/* What an attention implementation receives (one layer, one forward call). */
typedef struct nl_lm_attn_args {
    const nl_lm *model;
    int layer;
    int train;
    nl_var *q, *k, *v;       /* [B, H, T, Dh]; q and k NOT rotated (strided views allowed) */
    const double *pos;       /* (T) positions of these T tokens (0.. in training/eval; cache->len + t in decoding) */
    const double *theta;     /* (Dh/2) RoPE frequencies in use (training or evaluation scale) */
    nl_lm_cache *cache;      /* NULL unless decoding incrementally; then the implementation keeps its own per-layer
                              * state in cache->ext[layer] (freed with cache->ext_free) */
} nl_lm_attn_args;
/* Returns [B, H, T, Dh] (NULL + error on failure). */
typedef nl_var *(*nl_lm_attn_fn)(nl_ctx *c, const nl_lm_attn_args *a, void *ud);

typedef struct nl_lm_config {
    int vocab;               /* 256 for bytes */
    int context;             /* training window length T (tokens) */
    int n_layers;            /* 1 .. NL_LM_MAX_LAYERS */
    int d_model;
    int n_heads;             /* d_model % n_heads == 0, head dim even */
    int d_ff;                /* MLP width (0 -> 4 d_model) */
    nl_lm_norm_kind norm;
    double norm_eps;         /* 1e-5 */
    double bn_momentum;      /* batchnorm running-stat momentum (0.1) */
    double pn_alpha;         /* powernorm alpha_f = alpha_b (0.9) */
    int64_t pn_warmup;       /* powernorm warmup steps (batch statistics before) (0 -> 100) */
    int tie_weights;         /* 1: logits use tok_emb (no lm_head) */
    nl_rope_config rope;     /* position encoding (rope.h); not part of the parameters, may change at fine-tuning */
    nl_lm_attn_kind attn;
    int lminf_global;        /* lminf: starting tokens always visible (n_global, e.g. 4) */
    int lminf_local;         /* lminf: local window and distance limit (0 -> context) */
    nl_lm_attn_fn attn_fn;   /* custom attention (not stored in checkpoints) */
    void *attn_ud;
    nl_dtype dtype;          /* NL_F32 (default) or NL_F64 (gradient checks) */
} nl_lm_config;

/* vocab 256, context 128, 2 layers, d_model 128, 4 heads (head dim 32), d_ff 512, layernorm, tied weights,
 * plain RoPE (base 1e4), vanilla attention, f32. */
nl_lm_config nl_lm_config_default(void);
nl_status nl_lm_config_check(const nl_lm_config *cfg);   /* NL_EINVAL naming the bad field */
/* Plug-in attention kinds (today "lminf"): the library names the kind (configurations, checkpoints, the CLI) but a
 * method provides its implementation, so the library includes no method header. The lm-infinite method provides
 * "lminf" (methods/lm_infinite/lm_infinite.h nl_lm_infinite_register, called by the nnlab program at start).
 * fn receives unrotated q, k as for a custom attention; any_length = 1 lets evaluation go past the training
 * context without an explicit extrapolation flag (the kind bounds every attention distance itself). Building a
 * model with a kind that nobody provided is NL_EINVAL naming the method to register. Not thread-safe: provide
 * before building models. */
nl_status nl_lm_attn_provide(nl_lm_attn_kind kind, nl_lm_attn_fn fn, void *ud, int any_length);

typedef struct nl_lm_layer {
    nl_var *n1_w, *n1_b, *n1_rm, *n1_rv;   /* norm1 weight, bias, running buffers (NULL when unused) */
    nl_var *wqkv, *wo;
    nl_var *n2_w, *n2_b, *n2_rm, *n2_rv;
    nl_var *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} nl_lm_layer;

struct nl_lm {
    nl_lm_config cfg;
    nl_params ps;            /* every tensor (trainable and buffers) */
    nl_var *tok_emb;         /* [V, d] */
    nl_var *head;            /* [V, d]; == tok_emb when tied */
    nl_var *nf_w, *nf_b, *nf_rm, *nf_rv;
    nl_lm_layer layer[NL_LM_MAX_LAYERS];
    int64_t head_dim;
    nl_rng pos_rng;          /* randomised training positions (advanced per training forward) */
    void *norm_state;        /* internal: PowerNorm states (longctx.h nl_powernorm_state), 2 n_layers + 1 */
    int64_t norm_step;       /* training forward passes done (powernorm warmup counter) */
    const double *eval_pos;  /* NULL, or (eval_pos_n) positions used in place of 0 .. T-1 by an evaluation forward
                              * without a KV cache (T <= eval_pos_n, else NL_EINVAL); not owned, not stored. For
                              * controls that scramble the positions (methods/giraffe). Training ignores it. */
    int64_t eval_pos_n;
};

/* Build the parameters and initialise them from seed. On error *m is zeroed. */
nl_status nl_lm_init(nl_lm *m, const nl_lm_config *cfg, uint64_t seed);
void nl_lm_free(nl_lm *m);
int64_t nl_lm_num_params(const nl_lm *m);   /* trainable elements */

/* Logits [B*T, V] (row b*T + t) for ids [B, T] (values in [0, V)). train: training positions/scale and
 * batch statistics for batch/power norm. T > cfg.context is refused in training; in eval it is allowed (the
 * caller decides; see nl_lm_check_length). */
nl_var *nl_lm_forward(nl_lm *m, nl_ctx *c, const int32_t *ids, int64_t B, int64_t T, int train);
/* Mean cross-entropy of the next-token predictions: logits of ids [B, T] against targets [B, T] (entries < 0
 * are ignored). Returns a scalar var. */
nl_var *nl_lm_loss(nl_lm *m, nl_ctx *c, const int32_t *ids, const int32_t *targets, int64_t B, int64_t T, int train);
/* Residual linear layer y = r + x W^T (+ b) as one op (lm_fused.c): W [out, in], x [.., in], r [.., out]
 * (x's leading dims) or NULL (y = x W^T (+ b)), b [out] or NULL. Same value as nl_add(r, nl_linear(x, W, b)) up to rounding (the GEMM
 * accumulates onto r + b); gradients for r, x, W, b. Used by the blocks' output projection and second MLP layer
 * (with r), the QKV projection and the head (without). */
nl_var *nl_lm_linear_residual(nl_ctx *c, nl_var *r, nl_var *x, nl_var *W, nl_var *b);
/* NL_EINVAL "sequence of N tokens exceeds the training context L of this model ..." when T > context, unless
 * allow_extrapolation or the attention is lminf. */
nl_status nl_lm_check_length(const nl_lm *m, int64_t T, int allow_extrapolation);

/* ---- KV cache (incremental decoding; evaluation mode) ----
 * Vanilla attention keeps rotated keys and values of every past token: memory grows linearly with the context
 * (bytes reported in .bytes); capacity doubles when full. */
struct nl_lm_cache {
    int n_layers;
    int64_t B, H, Dh;
    int64_t len, cap;        /* tokens stored / allocated per sequence */
    void *k[NL_LM_MAX_LAYERS];   /* [B, H, cap, Dh] rotated keys, model dtype */
    void *v[NL_LM_MAX_LAYERS];   /* [B, H, cap, Dh] values */
    void *ext[NL_LM_MAX_LAYERS]; /* per-layer state of lminf / custom attention */
    void (*ext_free)(void *);
    size_t bytes;            /* bytes allocated now */
};
nl_status nl_lm_cache_init(nl_lm_cache *kc, const nl_lm *m, int64_t B);
void nl_lm_cache_reset(nl_lm_cache *kc);   /* len = 0, keeps the memory */
void nl_lm_cache_free(nl_lm_cache *kc);
/* Logits [B*T, V] of T new tokens ids [B, T] continuing the cached sequence (positions kc->len ..), appending
 * them to the cache. Evaluation mode; no gradients are recorded. */
nl_var *nl_lm_forward_cached(nl_lm *m, nl_ctx *c, nl_lm_cache *kc, const int32_t *ids, int64_t B, int64_t T);

/* ---- sampling ----
 * Feeds the prompt (n_prompt >= 1 tokens) through the cache, then draws n_new tokens: temperature <= 0 is greedy
 * (argmax), otherwise softmax(logits / temperature) restricted to the top_k most likely tokens (top_k <= 0: all).
 * out receives the n_new generated ids. stop >= 0 stops after generating that token (*n_out tells how many). */
typedef struct nl_lm_sample_opts {
    double temperature;
    int top_k;
    int32_t stop;            /* -1 = none */
    int allow_extrapolation; /* permit prompt + n_new > context */
} nl_lm_sample_opts;
nl_status nl_lm_generate(nl_lm *m, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                         const nl_lm_sample_opts *o, nl_rng *rng, int32_t *out, int64_t *n_out);

/* ---- evaluation ----
 * Mean negative log-likelihood (nats per token) of tokens[0..n) cut into non-overlapping windows of T + 1
 * tokens (T predictions each, every prediction with up to T tokens of context); the last partial window is
 * dropped. batch: windows per forward. Sets *nll and *count (predictions). Perplexity = exp(nll), bits per
 * token = nll / ln 2. */
nl_status nl_lm_eval_nll(nl_lm *m, const int32_t *tokens, int64_t n, int64_t T, int64_t batch, int64_t max_windows,
                         int allow_extrapolation, double *nll, int64_t *count);

/* ---- training ----
 * AdamW, linear warmup then cosine decay to lr * min_ratio, global-norm clipping. Batches come from a callback
 * (or, with batch_fn NULL, random windows of `tokens`: start offsets uniform in [0, n - T - 1], Philox seeded). */
typedef nl_status (*nl_lm_batch_fn)(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids /*[B,T]*/,
                                    int32_t *targets /*[B,T], <0 ignored*/);
typedef struct nl_lm_train_config {
    int64_t steps, batch, context;   /* context 0 -> model context */
    double lr, min_ratio, weight_decay, clip, beta2;
    int64_t warmup;
    uint64_t seed;                   /* data sampling */
    int verbose;                     /* progress lines (nl_progress) every log_every steps */
    int64_t log_every;
    double time_limit;               /* seconds, 0 = none (stops early, result.steps tells) */
    const int32_t *tokens;           /* default batches */
    int64_t n_tokens;
    nl_lm_batch_fn batch_fn;
    void *batch_ud;
    /* resumable training (nnlab/train.h "resumable training" for the shared format) */
    const char *save_path;           /* write a resumable checkpoint here at the end (and every save_every steps) */
    int64_t save_every;              /* > 0 (needs save_path): checkpoint every this many steps, atomically */
    const char *resume_path;         /* continue the run saved in this checkpoint (see nl_lm_resume_train) */
    int64_t stop_after;              /* > 0: stop after this many steps in total although the schedule spans
                                      * `steps` (an interrupted run, for resuming later) */
    double *loss_out;                /* optional (steps): loss of step s (the global batch's mean) at [s] */
    double dist_bucket_mb;           /* data-parallel (MPI, > 1 rank; see below): > 0 gradient buckets of this many
                                      * MiB reduced during backward, <= 0 one blocking all-reduce after it (default 1) */
} nl_lm_train_config;
typedef struct nl_lm_train_result {
    int64_t steps;
    double first_loss, final_loss;   /* final: mean of the last 10% of steps */
    double seconds, tokens_per_sec;
} nl_lm_train_result;
/* steps 200, batch 16, lr 3e-3, min_ratio 0.1, wd 0.01, clip 1, beta2 0.99, warmup 20. */
nl_lm_train_config nl_lm_train_defaults(void);
/* Under MPI with P = nl_dist_size() > 1 ranks (docs/distributed.md) the run is data-parallel: batch must be a
 * multiple of P (else NL_EINVAL naming both); every rank draws the same global batch (default sampler or batch_fn,
 * seeded by tc->seed alone) and computes rank r's rows [r B/P, (r+1) B/P); the loss and the gradient are averaged
 * over the ranks in the fixed order of nl_dist_allreduce (every rank holds the same bits); rank 0 alone logs and
 * writes save_path. Randomised RoPE positions are drawn per step from the model's stream, the same on every rank,
 * so the run equals one process up to summation order, except with batchnorm / powernorm (statistics of each
 * rank's rows). Every rank must call it (collective). */
nl_status nl_lm_train(nl_lm *m, const nl_lm_train_config *tc, nl_lm_train_result *res);
/* Resumable LM checkpoints: nl_lm_save's file plus the training state of nnlab/train.h ("train.optim.m/v" tensors,
 * "train.optim.*" keys) and "train.step", "train.batch", "train.context", "train.data_rng" (the random-window
 * sampler) and "train.pos_rng" (randomised RoPE positions) ("seed,stream,counter"). nl_lm_load reads it as a
 * weights-only checkpoint. nl_lm_train writes one when save_path is set; with resume_path it restores weights
 * (architecture compared as nl_lm_load_into does), optimizer state and settings (the AdamW settings and the
 * warmup + cosine schedule with its horizon are the stored ones, so the LR continues as the original run
 * planned), step and RNG states, then trains up to tc->steps in total. Batch size and context must match; a
 * batch_fn receives the global step and keeps its own state (the CLI resumes only the text task); a powernorm
 * model is refused (its running statistics are not stored). For a fixed seed and thread count, k steps then a
 * resume to n give bit-identical weights and optimizer state to n steps at once. */
nl_status nl_lm_save_train(const nl_lm *m, const char *path, const nl_optim *opt, const nl_rng *data_rng, int64_t batch,
                           int64_t context, int64_t step);
nl_status nl_lm_resume_train(nl_lm *m, const char *path, nl_optim *opt, nl_rng *data_rng, int64_t batch, int64_t context,
                             int64_t *step);

/* ---- checkpoints (safetensors) ----
 * __metadata__: "nnlab.model" = "transformer_lm", "nnlab.format" = "1", "nnlab.dtype", "nnlab.vocab",
 * "nnlab.context", "nnlab.layers", "nnlab.d_model", "nnlab.heads", "nnlab.d_ff", "nnlab.norm", "nnlab.norm_eps",
 * "nnlab.tie", "nnlab.attn", "nnlab.lminf_global", "nnlab.lminf_local", "nnlab.rope.variant", "nnlab.rope.base",
 * "nnlab.rope.scale_train", "nnlab.rope.scale_eval", "nnlab.rope.power", "nnlab.rope.truncate",
 * "nnlab.rope.xpos_gamma", "nnlab.rope.randomized", "nnlab.norm_step". */
nl_status nl_lm_save(const nl_lm *m, const char *path);
/* Configuration stored in a checkpoint; NL_EFORMAT when it is not a transformer_lm checkpoint (names what it is). */
nl_status nl_lm_config_from_file(const char *path, nl_lm_config *cfg);
/* Build the model of a checkpoint and load its tensors. The header's tensor names, shapes and dtypes are compared
 * with the architecture in the metadata before any parameter is allocated; a NaN or Inf value is refused
 * (NL_EFORMAT naming the tensor). */
nl_status nl_lm_load(nl_lm *m, const char *path);
/* The same with flags NL_LOAD_ALLOW_NONFINITE (nnlab/safetensors.h) or 0. */
nl_status nl_lm_load_opt(nl_lm *m, const char *path, unsigned flags);
/* The parameter names and shapes of cfg in a layout-only store (nl_params_init_layout): no values allocated. */
nl_status nl_lm_layout(const nl_lm_config *cfg, nl_params *ps);
/* Load a checkpoint into an existing model: the architecture must match (NL_EINVAL naming the first differing
 * field, e.g. "checkpoint has 4 layers, model has 2"); the RoPE and attention settings are not compared. */
nl_status nl_lm_load_into(nl_lm *m, const char *path);

/* ---- corpus ----
 * spec: "default" (KJV Bible + fortunes), "kjv", "fortunes", or a file path (raw bytes).
 *   kjv:      the text of the Debian package bible-kjv(-text): `bible -f Gen1:1-Rev22:21` (pretty-printing off:
 *             one verse per line, "Ge1:1 In the beginning ..."), with the reference and its space removed.
 *   fortunes: every regular file of /usr/share/games/fortunes (package fortunes / fortunes-min) except *.dat and
 *             *.u8, in byte order of names, with "%" separator lines turned into empty lines and overstrike
 *             sequences (char, backspace) removed.
 *   default:  kjv then fortunes.
 * A missing package gives NL_ENOTFOUND naming it; an empty result gives NL_EFORMAT. *buf is malloc'd.
 * Limits: a file path must name a regular file (checked with stat before opening: a FIFO, /dev/zero or a
 * directory is refused with NL_EIO, never read) of at most NL_LM_CORPUS_MAX_BYTES; any corpus (also kjv,
 * fortunes, default) larger than that is refused with NL_EFORMAT naming the limit. The split turns each byte
 * into an int32 token, so the cap bounds the corpus memory at about 5 x 256 MiB. */
#define NL_LM_CORPUS_MAX_BYTES ((int64_t)1 << 28)
nl_status nl_lm_corpus_load(const char *spec, uint8_t **buf, int64_t *n);
/* Deterministic split by contiguous chunks of `chunk` bytes (0 -> min(65536, ceil(n/20)), so that a small corpus
 * still gets all three parts): chunk i goes to valid when i % 20 == 18,
 * to test when i % 20 == 19, else to train (90/5/5). Outputs are malloc'd token arrays (ids = byte values). */
nl_status nl_lm_corpus_split(const uint8_t *buf, int64_t n, int64_t chunk, int32_t **train, int64_t *n_train,
                             int32_t **valid, int64_t *n_valid, int32_t **test, int64_t *n_test);

/* ---- LongChat-Lines-style synthetic retrieval (word-level tokens) ----
 * A sample: n_lines lines "line <adj>-<noun>: REGISTER_CONTENT is <NNNNN>" (distinct keys, uniform 5-digit values),
 * then the query "? line <adj>-<noun>: REGISTER_CONTENT is" (a question mark, then the queried line's own prefix,
 * like a chat template priming the answer) and the answer "<NNNNN>" and a newline. Tokens: "line", each adjective
 * and noun, "-", ":", "REGISTER_CONTENT", "is", "<", ">", "?", each digit, newline (vocab nl_lines_vocab()). */
/* Tokens of an answer "< d d d d d >" plus the newline (what generation is given room for after a prompt). */
#define NL_LINES_ANSWER_TOKENS 8
int nl_lines_vocab(void);
const char *nl_lines_token_str(int32_t id);
/* Number of tokens of a prompt with n_lines lines (excluding the answer). */
int64_t nl_lines_prompt_len(int n_lines);
/* The largest number of lines whose prompt + answer fits in max_tokens. */
int nl_lines_fit(int64_t max_tokens);
/* Fill toks with a sample of n_lines lines; returns its length (prompt + answer). *prompt_len receives the prompt
 * length (the answer starts there), *value the queried value. cap: room in toks. */
int64_t nl_lines_sample(nl_rng *rng, int n_lines, int32_t *toks, int64_t cap, int64_t *prompt_len, int *value);
/* Haystack sample: the n_lines lines at uniform random depths inside filler sentences (the passkey task's "the grass
 * is green . the sky is blue . the sun is yellow . here we go . there and back again ." repeated, from a random
 * offset), then the query, so that the prompt has exactly prompt_tokens tokens (>= nl_lines_prompt_len(n_lines)).
 * Returns the length (prompt + answer) or -1. Length grows with filler, not with the number of keys. */
int64_t nl_lines_haystack_sample(nl_rng *rng, int n_lines, int64_t prompt_tokens, int32_t *toks, int64_t cap,
                                 int64_t *prompt_len, int *value);
/* First integer in a generated token sequence (digits joined), or -1 if none. */
long nl_lines_first_int(const int32_t *toks, int64_t n);
/* Training batches for nl_lm_train (an nl_lm_batch_fn; ud = nl_lines_batcher): each row is one sample with a
 * number of lines uniform in [min_lines, max_lines] (max_lines 0 = as many as fit in T), left-aligned and padded
 * with newline tokens; targets are the answer tokens only (loss_all = 1: every next token of the sample).
 * fill_queries = 1: the room left after the first answer is filled with further queries (random lines of the same
 * sample) and their answers, all of them targets — more retrieval signal per row, most for short prompts. */
typedef struct nl_lines_batcher {
    nl_rng rng;
    int min_lines, max_lines;
    int loss_all;
    int fill_queries;
    int haystack;   /* 1: haystack rows (min_lines..max(max_lines,1) lines, prompt length uniform from the dense
                       length to T - answer, one query per row; fill_queries is ignored) */
} nl_lines_batcher;
nl_status nl_lines_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *targets);
/* Mixed batches (lib/transformer/mix.c, an nl_lm_batch_fn; ud = nl_lm_mix_batcher): each row is, with probability
 * lines_frac, a Lines row drawn by `lines` (nl_lines_batch) with every id and target shifted by lines_offset, and
 * otherwise a window of `text` (start uniform in [0, n_text - T - 1], targets the next tokens). With text ids in
 * [0, lines_offset) (bytes: offset 256) the two share one vocabulary of nl_lm_mix_vocab(lines_offset) tokens: a
 * general LM that can also retrieve (the giraffe base). lines_frac 0: text only (text must hold T + 1 tokens). */
typedef struct nl_lm_mix_batcher {
    const int32_t *text;     /* (n_text) token ids in [0, lines_offset) */
    int64_t n_text;
    double lines_frac;       /* share of Lines rows, in [0, 1] */
    int32_t lines_offset;    /* added to every Lines token id */
    nl_lines_batcher lines;  /* how the Lines rows are drawn (its own rng) */
    nl_rng rng;              /* row kinds and text offsets */
} nl_lm_mix_batcher;
int nl_lm_mix_vocab(int32_t lines_offset);
nl_status nl_lm_mix_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *targets);
/* Accuracy of greedy generation (eval scale of the model's rope config) on n_samples fresh samples with n_lines
 * lines each; *mean_len receives the mean prompt length. */
nl_status nl_lines_eval(nl_lm *m, int n_lines, int n_samples, uint64_t seed, double *accuracy, double *mean_len);
/* The same on haystack prompts of exactly prompt_tokens tokens. */
nl_status nl_lines_eval_haystack(nl_lm *m, int n_lines, int64_t prompt_tokens, int n_samples, uint64_t seed,
                                 double *accuracy);

/* ---- command line ----
 * `nnlab lm train|eval|generate ...` (lib/transformer/cli_lm.c; argv: the arguments after "lm"). */
int nl_lm_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
