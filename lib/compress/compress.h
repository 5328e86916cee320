/* compress/compress.h — network compression on nl_model (include/nnlab/model.h): structured channel pruning with
 * the following layer rewired, uniform k-bit weight quantisation, BatchNorm folding, and FLOP / parameter
 * counting. Used by methods/udfc, methods/tas, methods/n2n and `nnlab compress` (docs/compress.md).
 *
 * A "unit" is a prunable layer output: a hidden layer of an MLP, a conv block of a CNN, or a CNN's hidden fc
 * layer (index n_blocks). Each unit has a producer (the linear / conv layer computing it), an optional BatchNorm,
 * and a consumer (the next linear / conv layer, whose input columns belong to the unit's channels; after the last
 * conv block each channel owns spatial = h * w consecutive columns of the flattened features).
 *
 * Every function works on f32 and f64 models; results are ordinary nl_models that save and load as checkpoints. */
#ifndef NL_COMPRESS_H
#define NL_COMPRESS_H
#include "nnlab/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_COMPRESS_MAX_UNITS (NL_MODEL_MAX_LAYERS + NL_MODEL_MAX_BLOCKS)

typedef struct nl_compress_unit {
    int prod;        /* m->layer index of the producing linear / conv layer */
    int bn;          /* m->layer index of its BatchNorm, or -1 */
    int cons;        /* m->layer index of the consuming linear / conv layer */
    int conv;        /* 1 when the producer is a conv layer */
    int64_t width;   /* channels (units) */
    int64_t fan_in;  /* producer row length: in features, or C_in * k * k */
    int64_t spatial; /* consumer columns per channel: k * k (conv consumer), h * w (flatten), or 1 */
    int64_t cons_out;/* consumer rows (outputs) */
} nl_compress_unit;

/* The units of m in forward order (*n of them, at most NL_COMPRESS_MAX_UNITS). */
nl_status nl_compress_units(const nl_model *m, nl_compress_unit *u, int *n);

/* Read / write element i of a parameter tensor as double (either dtype). */
double nl_compress_get(const nl_model *m, const nl_var *v, int64_t i);
void nl_compress_put(nl_model *m, nl_var *v, int64_t i, double x);

/* dst = an independent copy of src (same config and values). */
nl_status nl_compress_clone(const nl_model *src, nl_model *dst);

/* ---- pruning ---- */
/* Check a pruning ratio (NL_EINVAL unless 0 <= ratio < 1). */
nl_status nl_compress_check_ratio(double ratio);
/* Channels kept at `ratio` of unit u: n_keep = width - floor(ratio * width + 1e-9) (at least 1), the largest L1
 * norms of the producer's rows; keep (width) receives them in ascending order. */
nl_status nl_compress_l1_keep(const nl_model *m, int unit, double ratio, int64_t *keep, int64_t *n_keep);
/* dst = src with only the channels keep[0..n_keep) (strictly ascending) of unit `unit`: the producer's rows, its
 * bias and BatchNorm entries and the consumer's input columns are gathered; the config width is updated. */
nl_status nl_compress_prune(const nl_model *src, int unit, const int64_t *keep, int64_t n_keep, nl_model *dst);
/* L1 pruning of every unit at the same ratio (units in forward order); dst may not alias src. */
nl_status nl_compress_prune_ratio(const nl_model *src, double ratio, nl_model *dst);

/* ---- quantisation ---- */
typedef struct nl_quant_report {
    int64_t n_weights;   /* weights quantised */
    double sq_err;       /* sum of squared errors */
    double rel_err;      /* ||W - Q(W)|| / ||W|| over all quantised weights */
    double max_abs_err;
} nl_quant_report;

/* Check a bit width (NL_EINVAL unless 1 <= bits <= 32). */
nl_status nl_compress_check_bits(int bits);
/* Quantise one row x[0..n) in place to k bits, uniform grid. Symmetric: scale = max|x| / (2^(k-1) - 1), values
 * round(x / scale) * scale (k = 1: sign(x) * mean|x|). Asymmetric: scale = (max - min) / (2^k - 1), zero point
 * round(-min / scale), q = clamp(round(x / scale) + zp, 0, 2^k - 1), value (q - zp) * scale. Adds the squared
 * error to *sq (may be NULL). */
void nl_compress_quant_row(double *x, int64_t n, int bits, int symmetric, double *sq);
/* Quantise every linear / conv weight of m in place, per output channel (bias and BatchNorm stay full precision). */
nl_status nl_compress_quantise(nl_model *m, int bits, int symmetric, nl_quant_report *rep);

/* ---- BatchNorm folding ---- */
/* dst = src with every BatchNorm folded into the preceding conv / linear layer (W' = W gamma / sigma,
 * b' = beta + (b - mu) gamma / sigma, sigma = sqrt(var + eps)); dst has batchnorm = 0 and the same eval outputs. */
nl_status nl_compress_bn_fold(const nl_model *src, nl_model *dst);

/* ---- counting ---- */
typedef struct nl_compress_counts {
    int64_t params;      /* all tensor elements (trainable and BatchNorm buffers) */
    int64_t weights;     /* linear / conv weight elements */
    int64_t macs;        /* multiply-accumulates per example of the conv and linear layers */
    int64_t flops;       /* 2 * macs + BatchNorm (2 per output) + bias (1 per output) */
} nl_compress_counts;

nl_status nl_compress_count(const nl_model *m, nl_compress_counts *out);
/* Bytes of the model with weights stored at `bits` bits (per-channel scale and zero point as f32 each) and all
 * other tensors as f32. */
double nl_compress_size_bytes(const nl_model *m, int bits);

/* `nnlab compress ...` (lib/compress/cli_compress.c; argv: the arguments after "compress"). */
int nl_compress_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
