/* nnlab/nn.h — neural-network ops: softmax family and losses, normalisations, embedding, concat,
 * convolution and pooling, dropout, fused attention. All differentiable; f32 (and f64 where noted). */
#ifndef NNLAB_NN_H
#define NNLAB_NN_H
#include "nnlab/autograd.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Softmax / log-softmax along `axis` (negative counts from the end). f32 and f64; strided inputs accepted.
 * Rows are stabilised by their maximum (no overflow for large logits). */
nl_var *nl_softmax(nl_ctx *c, nl_var *x, int axis);
nl_var *nl_log_softmax(nl_ctx *c, nl_var *x, int axis);
/* Mean cross-entropy of logits [N, C] against class ids targets (N) in [0, C) or == ignore_index (skipped;
 * pass a negative number to disable). label_smoothing eps in [0, 1): target distribution
 * (1-eps)*onehot + eps/C (PyTorch semantics). Returns a scalar (mean over the rows not ignored); NaN-free when
 * every target is ignored (0, zero gradient). Any other target outside [0, C) is an error naming the row and
 * the value. f32 and f64; fused log-softmax + NLL (the [N, C] probabilities are never stored). */
nl_var *nl_cross_entropy(nl_ctx *c, nl_var *logits, const int32_t *targets, double label_smoothing, int32_t ignore_index);
/* Mean squared error over all elements (same shapes and dtype); gradient to both inputs. */
nl_var *nl_mse(nl_ctx *c, nl_var *a, nl_var *b);

/* LayerNorm over the last dimension (biased variance); gamma/beta [D] (x's dtype) or NULL. f32 and f64. */
nl_var *nl_layernorm(nl_ctx *c, nl_var *x, nl_var *gamma, nl_var *beta, double eps);
/* RMSNorm over the last dimension: x / sqrt(mean(x^2) + eps) * gamma; gamma [D] or NULL. f32 and f64. */
nl_var *nl_rmsnorm(nl_ctx *c, nl_var *x, nl_var *gamma, double eps);
/* BatchNorm over channel axis 1 of x [N, C] or [N, C, H, W]. train: batch statistics (biased variance for
 * normalising), running_mean/var [C] (buffers, f32 vars of a params store marked non-trainable; any dtype)
 * updated as r = (1-momentum) r + momentum * batch_stat with the unbiased variance (PyTorch), in every
 * train-mode call, also with gradients disabled; they may both be NULL in train mode (no update); training
 * needs more than one value per channel. eval: running statistics (required), backward is the per-channel
 * affine map. gamma/beta [C] or NULL. f32 and f64 x. */
nl_var *nl_batchnorm(nl_ctx *c, nl_var *x, nl_var *gamma, nl_var *beta, nl_var *running_mean,
                     nl_var *running_var, double momentum, double eps, int train);

/* Rows of table [V, D] at ids (ids_ndim = 0..3 dims of shape ids_shape) -> [ids_shape..., D]. Bad id -> error
 * ("embedding: id 57 at position 3 out of range [0, 50)"). Backward scatter-adds into the table gradient,
 * each row's terms in position order (deterministic, thread-count independent). */
nl_var *nl_embedding(nl_ctx *c, nl_var *table, const int32_t *ids, int ids_ndim, const int64_t *ids_shape);
/* Concatenate n >= 1 vars along axis (same dtype and ndim, same shapes elsewhere; any n, also > NL_MAXIN). */
nl_var *nl_concat(nl_ctx *c, int n, nl_var *const *xs, int axis);

/* 2-D convolution by im2col + GEMM: x [N, C, H, W], w [O, C, KH, KW], b [O] or NULL -> [N, O, OH, OW],
 * OH = (H + 2*pad - KH) / stride + 1. */
nl_var *nl_conv2d(nl_ctx *c, nl_var *x, nl_var *w, nl_var *b, int stride, int pad);
/* Pooling on [N, C, H, W] with square window k, stride, zero padding pad (max ignores padding; avg divides by
 * the full window k*k, count_include_pad as PyTorch's default). pad <= k/2 (every window holds a real cell). */
nl_var *nl_maxpool2d(nl_ctx *c, nl_var *x, int k, int stride, int pad);
nl_var *nl_avgpool2d(nl_ctx *c, nl_var *x, int k, int stride, int pad);

/* Inverted dropout: in training, zero each element with probability p and scale the rest by 1/(1-p); the
 * mask comes from rng (counter-based, thread-count independent: tile t = k/1024 of the flat elements uses the
 * Philox blocks rng->counter + 256 t + b, element k takes word (k%1024)/256 of block b = k%256 and is kept
 * when it is below round((1-p) 2^32)); the counter then advances by 256 per started tile of 1024 elements.
 * Identity (returns x itself, no copy, rng untouched) when !train or p == 0; p outside [0, 1) is an error. */
nl_var *nl_dropout(nl_ctx *c, nl_var *x, double p, int train, nl_rng *rng);

/* Fused scaled-dot-product attention. q [B, H, T, D], k [B, H, S, D], v [B, H, S, Dv] -> [B, H, T, Dv].
 * scores = scale * q k^T + mask; causal masks key s for query t when s > t + (S - T) (queries aligned to
 * the end of the keys, as with a KV cache). mask: additive, broadcastable to [B, H, T, S] (ndim <= 4, e.g.
 * [T, S]), or NULL; -INFINITY entries exclude keys; a row with no visible key gives zeros. scale <= 0 means
 * 1/sqrt(D). Only the per-row logsumexp is saved; backward recomputes the scores tile by tile. If the mask
 * requires a gradient it receives dScores summed over its broadcast dims (0 at excluded entries). */
nl_var *nl_attention(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, nl_var *mask, int causal, double scale);
/* nl_attention with the output laid out as [B, T, H, Dv] (the heads already merged for the output projection:
 * no permute copy); values and gradients equal permute(nl_attention(...), {0, 2, 1, 3}) bit for bit. */
nl_var *nl_attention_bthd(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, nl_var *mask, int causal, double scale);
/* Options of nl_attention_ex; all zero = nl_attention(q, k, v, NULL, 0, 0). */
typedef struct nl_attention_opts {
    nl_var *mask;   /* additive mask as in nl_attention, or NULL */
    int causal;     /* as in nl_attention */
    double scale;   /* <= 0: 1/sqrt(D) */
    int bthd;       /* 1: output [B, T, H, Dv] as nl_attention_bthd; 0: [B, H, T, Dv] */
    double p_drop;  /* dropout probability on the attention weights, [0, 1) */
    int train;      /* dropout only in training mode */
    nl_rng *rng;    /* the dropout mask stream (needed when train && p_drop > 0) */
} nl_attention_opts;
/* nl_attention / nl_attention_bthd with inverted dropout on the attention weights P = softmax(scores):
 * out = (P * M / (1 - p_drop)) V, M [B, H, T, S] drawn from rng exactly as nl_dropout(P, p_drop, 1, rng) would draw
 * it for a [B, H, T, S] tensor (same mask, same counter advance: 256 per started tile of 1024 scores), so it equals
 * matmul(nl_dropout(softmax(scores)), v) up to rounding. The mask is kept for backward (1 byte per score).
 * !train or p_drop == 0: exactly nl_attention / nl_attention_bthd (bit for bit, rng untouched). o NULL: defaults. */
nl_var *nl_attention_ex(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, const nl_attention_opts *o);

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


/* ========================================= LSTM ========================================= *
 * Fused LSTM cell (PyTorch nn.LSTMCell, gates in the order i, f, g, o): x [B, I], h and c [B, H], Wx [4H, I],
 * Wh [4H, H], b [4H] or NULL -> [B, 2H] = [h' | c'] (take h', c' with nl_slice on axis 1), where
 * z = x Wx^T + h Wh^T + b, c' = s(z_f) c + s(z_i) tanh(z_g), h' = s(z_o) tanh(c'). One node; exact backward to
 * every input. f32 and f64 (src/nn/lstm.c). */
nl_var *nl_lstm_cell(nl_ctx *c, nl_var *x, nl_var *h, nl_var *cs, nl_var *Wx, nl_var *Wh, nl_var *b);
/* One LSTM layer: parameters "<prefix>.weight_ih" [4H, in], "<prefix>.weight_hh" [4H, H], "<prefix>.bias" [4H]. */
typedef struct nl_lstm {
    int64_t in, hidden;
    nl_var *Wx, *Wh, *b;
} nl_lstm;
nl_status nl_lstm_init(nl_lstm *l, nl_params *ps, const char *prefix, int64_t in, int64_t hidden);
/* PyTorch's init: every tensor U(-1/sqrt(H), 1/sqrt(H)) from r. */
void nl_lstm_reset(nl_lstm *l, nl_rng *r);
/* Run over xs[0..T) (each [B, in]) from a zero state, forwards or (reverse) backwards; hs[t] = h at step t [B, H]. */
nl_status nl_lstm_run(nl_ctx *c, const nl_lstm *l, int T, nl_var *const *xs, int reverse, nl_var **hs);
/* Bidirectional layer: out[t] = [h_fw[t] | h_bw[t]] [B, 2H] (fw runs t = 0..T-1, bw runs t = T-1..0). */
nl_status nl_bilstm_run(nl_ctx *c, const nl_lstm *fw, const nl_lstm *bw, int T, nl_var *const *xs, nl_var **out);
/* ---- diffusion UNet ops (src/nn/groupnorm.c, src/nn/upsample.c) ----
 * GroupNorm over x [N, C, ...]: channels cut into `groups` groups of C/groups (groups must divide C); each (sample,
 * group) normalised over its channels and spatial positions (biased variance), y = xhat * gamma[c] + beta[c];
 * gamma/beta [C] (x's dtype) or NULL. groups = 1 is LayerNorm over (C, H, W); groups = C is InstanceNorm. f32 and
 * f64, exact backward. */
nl_var *nl_groupnorm(nl_ctx *c, nl_var *x, int groups, nl_var *gamma, nl_var *beta, double eps);
/* Nearest-neighbour upsampling of x [N, C, H, W] by an integer factor in 1..64 -> [N, C, f H, f W]; backward sums
 * each f x f block. f32 and f64. */
nl_var *nl_upsample_nearest(nl_ctx *c, nl_var *x, int factor);

#ifdef __cplusplus
}
#endif
#endif
