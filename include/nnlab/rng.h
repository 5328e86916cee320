/* nnlab/rng.h — seeded, counter-based random numbers (Philox4x32-10).
 *
 * A generator is (seed, stream, counter). Draw k of a fill uses counter+k, so a fill's result does not depend
 * on the thread count or on how the work is split; the counter then advances by the number of draws. Two
 * generators with the same seed and stream produce identical sequences. Use distinct streams for independent
 * purposes (init, data shuffling, dropout) so that changing one does not shift the others. */
#ifndef NNLAB_RNG_H
#define NNLAB_RNG_H
#include "nnlab/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nl_rng {
    uint64_t seed;
    uint64_t stream;
    uint64_t counter;
} nl_rng;

void nl_rng_init(nl_rng *r, uint64_t seed, uint64_t stream);
/* The 4 32-bit words of Philox4x32-10 at (seed, stream, counter) — stateless, for custom parallel kernels. */
void nl_philox(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4]);

uint32_t nl_rng_u32(nl_rng *r);
double nl_rng_uniform(nl_rng *r);                      /* [0, 1) with 53 random bits */
double nl_rng_normal(nl_rng *r);                       /* N(0, 1) */
int nl_rng_bernoulli(nl_rng *r, double p);
double nl_rng_gumbel(nl_rng *r);                       /* standard Gumbel: -log(-log U) */
double nl_rng_gamma(nl_rng *r, double shape);          /* Gamma(shape, 1), Marsaglia-Tsang */
int64_t nl_rng_below(nl_rng *r, int64_t n);            /* uniform integer in [0, n), unbiased */
/* Index drawn with probability p[i] / sum(p) (p >= 0, unnormalised). Returns -1 if sum(p) <= 0. */
int64_t nl_rng_categorical(nl_rng *r, const double *p, int64_t n);
void nl_rng_permutation(nl_rng *r, int64_t *perm, int64_t n); /* Fisher-Yates on 0..n-1 */

/* Fills of any tensor (f32 or f64, strided allowed), parallel and thread-count independent. */
void nl_rng_fill_uniform(nl_rng *r, nl_tensor *t, double lo, double hi);
void nl_rng_fill_normal(nl_rng *r, nl_tensor *t, double mean, double std);
void nl_rng_fill_bernoulli(nl_rng *r, nl_tensor *t, double p);  /* 0/1 values */
void nl_rng_fill_gumbel(nl_rng *r, nl_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
