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

#ifdef __cplusplus
}
#endif
#endif
