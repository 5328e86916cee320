/* compress/compensate.h — data-free compensation of pruned and quantised channels in the next layer (UDFC, Bai et
 * al. ICCV 2023; Neuron Merging, Kim et al. NeurIPS 2020, as a special case). Derivation: methods/udfc/README.md.
 *
 * For a unit (compress.h) with BatchNorm folded, channel k computes a_k = ReLU(v_k . [x; 1]) with
 * v_k = [(gamma_k / sigma_k) w_k ; beta_k - gamma_k mu_k / sigma_k]. A pruned channel c is replaced by
 * a_c ~ sum_j s_j a_j over the kept channels j, so the consumer's input columns become W'_j = W_j + s_j W_c; a
 * quantised channel k (v_k -> vq_k) gets a_k ~ (1 + s'_k) aq_k, so W'_k = (1 + s'_k) W_k. */
#ifndef NL_COMPRESS_COMPENSATE_H
#define NL_COMPRESS_COMPENSATE_H
#include "compress/compress.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nl_comp_kind {
    NL_COMP_NONE = 0, /* prune only: the consumer's columns of pruned channels are dropped */
    NL_COMP_UDFC,     /* s = (A A^T + diag(lambda_j))^-1 A v_c over the kept (quantised) channels' rows A */
    NL_COMP_NM,       /* Neuron Merging: the single most cosine-similar kept weight vector, s = ratio of slopes */
    NL_COMP_RANDOM    /* control: UDFC's coefficients replaced by a random direction of the same norm */
} nl_comp_kind;

typedef struct nl_compensate_opts {
    double ratio;          /* fraction of channels pruned in every unit (L1 selection), [0, 1) */
    int bits;              /* weight bits (per-output-channel uniform); 0 = full precision */
    int symmetric;         /* symmetric (1) or asymmetric (0) quantiser */
    nl_comp_kind prune_comp;
    int quant_comp;        /* scalar correction of quantised channels (NL_COMP_RANDOM: random sign, same size) */
    double rho;            /* ridge lambda_j = rho ||vq_j||^2 + lambda (default 1 - 2/pi, README) */
    double lambda;         /* default 0 */
    double nm_threshold;   /* Neuron Merging: merge only when the cosine is at least this (0.45) */
    uint64_t seed;         /* NL_COMP_RANDOM */
    int require_bn;        /* NL_EINVAL when the model has no BatchNorm (UDFC's assumption) */
} nl_compensate_opts;

nl_compensate_opts nl_compensate_defaults(void);

/* Ridge solution for m targets at once: S[i, :] = (A A^T + diag(lam))^-1 A t_i for A (n, d) row vectors,
 * T (m, d), lam (n) >= 0 (a tiny jitter is added when all are 0). S is (m, n). */
nl_status nl_compensate_ridge(const double *A, int64_t n, int64_t d, const double *T, int64_t m, const double *lam, double *S);

/* dst = src compressed unit by unit in forward order (prune at ratio, quantise to bits, compensate in the next
 * layer), then the readout layer quantised. An ordinary model: saves, loads and evaluates like any other. */
nl_status nl_compensate(const nl_model *src, const nl_compensate_opts *o, nl_model *dst);

#ifdef __cplusplus
}
#endif
#endif
