/* Internal: the dropout keep-mask of nl_dropout (src/nn/dropout.c), for ops that apply dropout inside a fused
 * kernel (nl_attention_ex's attention-weight dropout, src/nn/attention.c). Not installed. */
#ifndef NL_INTERNAL_DROPMASK_H
#define NL_INTERNAL_DROPMASK_H
#include "nnlab/rng.h"
#include <stdint.h>

/* mask [n] (1 = keep, 0 = drop): exactly the mask nl_dropout(x, p, 1, rng) draws for a tensor of n elements
 * (flat row-major index k: tile k / 1024, Philox block rng->counter + 256 (k / 1024) + k % 256, word
 * (k % 1024) / 256, kept when below round((1-p) 2^32)); rng->counter then advances as nl_dropout advances it
 * (256 per started tile). 0 < p < 1. Parallel above 16384 elements, thread-count independent. */
void nl__dropout_mask(uint8_t *mask, int64_t n, double p, nl_rng *rng);
#endif
