/* peft/lora.h — LoRA (Hu et al. 2021) as a generic adapter over any nl_params store: rank-r updates of linear and
 * conv weights, for fine-tuning (methods/sara uses it as SaRA's baseline).
 *
 * ---- the adapter ----
 * A target is a parameter W of 2 or more dimensions, viewed as a matrix (out, in) with out = shape[0] and
 * in = numel / out (a linear weight [out, in]; a conv weight [O, C, KH, KW] -> (O, C*KH*KW), the im2col view, so the
 * update of a conv is a rank-r change of its unrolled kernel, as PEFT's Conv2d LoRA: a KxK conv down to r channels
 * followed by a 1x1 conv back up). The effective weight is
 *     W = W0 + s B A,   A (r, in), B (out, r), s = alpha / r,
 * with W0 the frozen pretrained weight, A ~ U(+-1/sqrt(in)) (PEFT's kaiming-uniform with a = sqrt(5)) and B = 0, so
 * an attached adapter leaves the model's function unchanged (bit-identical: W0 + s*0*A = W0).
 *
 * ---- how it runs without touching the model's code (merge, then chain rule) ----
 * nl_lora_merge writes W0 + s B A into the store's value of every target. The model's ordinary forward and
 * backward then give dL/dW (the store's gradient, which the engine computes anyway for the weight's own op), and
 * nl_lora_grad turns it into the adapter's gradients:  dB += s dW A^T,  dA += s B^T dW.  The caller steps any
 * optimizer over the adapter store `ad` (its tensors are "<name>.lora_A" and "<name>.lora_B") and merges again
 * before the next forward. Non-target parameters of the store are frozen (requires_grad = 0); targets get
 * requires_grad = 1 so that the engine computes their gradient (their own values are never stepped).
 * Memory: the adapter store (r (out + in) per target, values and gradients) plus the frozen copy W0 of every
 * target (out * in floats; nl_lora_bytes reports both). */
#ifndef NNLAB_PEFT_LORA_H
#define NNLAB_PEFT_LORA_H
#include "nnlab/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nl_lora_target {
    nl_param *p;       /* the adapted weight in the model's store */
    int64_t out, in;   /* its matrix view */
    nl_var *A;         /* (r, in) in the adapter store */
    nl_var *B;         /* (out, r) in the adapter store */
    float *W0;         /* (out, in) the frozen base weight */
} nl_lora_target;

typedef struct nl_lora {
    nl_params *ps;     /* the model's store (not owned) */
    nl_params ad;      /* the adapter store: A and B of every target */
    int rank;
    double alpha, scale; /* scale = alpha / rank */
    int n;
    nl_lora_target *t; /* (n) */
} nl_lora;

/* Attach rank-`rank` adapters to the parameters of ps named in names[0..n_names) (names NULL: every parameter of 2 or
 * more dimensions, i.e. all linear and conv weights). f32 stores only. Errors (NL_EINVAL, nothing attached): rank < 1,
 * a rank larger than min(out, in) of a target ("lora: rank 9 exceeds min(out, in) = 8 of 'conv1.weight' (8, 27)"), a
 * name that is not in ps, a target of fewer than 2 dimensions, alpha <= 0. */
nl_status nl_lora_init(nl_lora *l, nl_params *ps, const char *const *names, int n_names, int rank, double alpha,
                       uint64_t seed);
/* Restore W0 into the model's targets (the store is back to the pretrained weights) and free the adapter. */
void nl_lora_free(nl_lora *l);
/* W = W0 + s B A into every target's value. */
void nl_lora_merge(nl_lora *l);
/* Accumulate (+=) the adapter gradients from the targets' gradients in ps (call after nl_backward, before the
 * optimizer step on l->ad). */
void nl_lora_grad(nl_lora *l);
/* Trainable adapter entries (sum over targets of r (out + in)). */
int64_t nl_lora_count(const nl_lora *l);
/* Bytes held by the adapter: values and gradients of A, B (8 bytes per entry) and the frozen copies W0. */
int64_t nl_lora_bytes(const nl_lora *l);
/* Adapter entries that rank r would give on the parameters named (NULL: all of >= 2 dims); -1 when r exceeds some
 * target's min(out, in). Lets a caller match a trainable-parameter budget before attaching. */
int64_t nl_lora_count_for(const nl_params *ps, const char *const *names, int n_names, int rank);

#ifdef __cplusplus
}
#endif
#endif
