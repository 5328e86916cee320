/* bnn/bnn.h — bit-packed binary inference: +-1 values packed 64 to a word, the XNOR-popcount GEMM (portable C,
 * AVX2, AVX-512 VPOPCNTDQ; chosen at run time), binary 2-D convolution with exact zero padding, BatchNorm and
 * scales folded into per-channel integer thresholds, max-pooling on bits, and a versioned packed-model file.
 * lib/bnn/README.md has the design notes and the measured speed (also docs/performance.md, "Binary GEMM").
 *
 * Conventions (every function here follows them):
 * - Sign: a float x packs to bit 1 (value +1) when x >= 0 and to bit 0 (value -1) otherwise, so sign(0) = +1
 *   (NaN packs to 0 since NaN >= 0 is false).
 * - A packed row of k values is kw = nl_bnn_words(k) = ceil(k / 64) uint64_t words: value j is bit (j % 64) of word
 *   j / 64; the tail bits (positions k .. 64 kw - 1 of the last word) are ZERO. Every kernel relies on zero tails in
 *   both operands (xor of two zero tails is zero, so they never count) and every packer writes them.
 * - The +-1 dot product of two packed rows of length K is K - 2 popcount(a xor b) (equal bits: +1, different: -1).
 * - Images are channels-last and packed along the channels: [n, h, w, c] values -> bits [n, h, w, cw], cw =
 *   ceil(c / 64). Convolution weights are packed [oc, kh, kw, cw] (from nl_conv2d's float layout [oc, c, kh, kw]).
 * - Buffers are caller-owned unless a type says otherwise; nothing here keeps a pointer after returning. */
#ifndef NL_BNN_H
#define NL_BNN_H
#include "nnlab/nnlab.h"
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* words per packed row of k values */
static inline int64_t nl_bnn_words(int64_t k) { return (k + 63) / 64; }

/* ======================================= kernel paths ======================================= */
/* NL_BNN_AUTO picks the fastest path the CPU supports (VPOPCNTDQ > AVX2 > portable). The SIMD paths are compiled
 * with __attribute__((target)) so a build without -march flags still contains them; they run only when
 * __builtin_cpu_supports says the CPU (and OS) has the instructions. Every path gives the same integers. */
typedef enum nl_bnn_path {
    NL_BNN_AUTO = 0,
    NL_BNN_PORTABLE = 1, /* C with __builtin_popcountll (one popcnt per word when the CPU has it) */
    NL_BNN_AVX2 = 2,     /* 256-bit xor + nibble-LUT popcount (vpshufb), byte counters summed with vpsadbw */
    NL_BNN_AVX512 = 3,   /* 512-bit xor + vpopcntq (AVX-512F + AVX-512 VPOPCNTDQ) */
} nl_bnn_path;
const char *nl_bnn_path_name(nl_bnn_path p);      /* "auto", "portable", "avx2", "avx512-vpopcntdq" */
int nl_bnn_path_supported(nl_bnn_path p);         /* 1 when p can run on this CPU (AUTO and PORTABLE always) */
/* Force the path every later call uses (process-wide; for tests and benchmarks). NL_EINVAL naming the path when the
 * CPU lacks it. NL_BNN_AUTO restores the automatic choice. */
nl_status nl_bnn_set_path(nl_bnn_path p);
nl_bnn_path nl_bnn_get_path(void);                /* the path calls use now (never AUTO: the resolved one) */

/* ======================================= packing ======================================= */
/* x [rows, k] row-major floats -> bits [rows, kw] (sign convention above; tails zeroed). NL_EINVAL for a negative
 * size or a NULL buffer with a non-zero size. */
nl_status nl_bnn_pack_rows(const float *x, int64_t rows, int64_t k, uint64_t *bits);
/* bits [rows, kw] -> x [rows, k] with values +1.0f / -1.0f. */
nl_status nl_bnn_unpack_rows(const uint64_t *bits, int64_t rows, int64_t k, float *x);
/* NCHW floats x [n, c, h, w] (nnlab's image layout) -> channels-last bits [n, h, w, cw]. */
nl_status nl_bnn_pack_nchw(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, uint64_t *bits);
/* Convolution weights w [oc, c, kh, kw] (nl_conv2d's layout) -> bits [oc, kh, kw, cw]. */
nl_status nl_bnn_pack_conv_weights(const float *w, int64_t oc, int64_t c, int64_t kh, int64_t kw, uint64_t *bits);

/* An owned packed matrix: rows x k values in bits [rows, kw], 64-byte aligned, zero-initialised. */
typedef struct nl_bnn_mat {
    int64_t rows, k, kw;   /* kw = nl_bnn_words(k) */
    uint64_t *bits;        /* [rows, kw] */
} nl_bnn_mat;
nl_status nl_bnn_mat_init(nl_bnn_mat *m, int64_t rows, int64_t k); /* all bits 0 (all values -1) */
nl_status nl_bnn_mat_pack(nl_bnn_mat *m, const float *x, int64_t rows, int64_t k); /* init + pack_rows(x [rows, k]) */
void nl_bnn_mat_free(nl_bnn_mat *m);                                /* safe on a zeroed or freed matrix */

/* ======================================= GEMM ======================================= */
/* +-1 dot product of two packed rows of K values (zero tails). */
int32_t nl_bnn_dot(const uint64_t *a, const uint64_t *b, int64_t K);
/* C [M, N] = A B^T over +-1 values: C[i][j] = K - 2 popcount(A_i xor B_j), A bits [M, kw], B bits [N, kw], kw =
 * nl_bnn_words(K), both with zero tails. Blocked for the caches, OpenMP over rows of C (nl_get_num_threads()).
 * NL_EINVAL for a negative size, NULL buffers, or K > 2^31 - 1. */
nl_status nl_bnn_gemm(const uint64_t *A, const uint64_t *B, int64_t M, int64_t N, int64_t K, int32_t *C);
/* The general form: rows of `words` words at strides lda / ldb (in words), C at row stride ldc (in int32), and
 * C[i][j] = K - 2 popcount over the `words` words. K may differ from 64 words when the rows hold padding bits that
 * are zero in both operands (a convolution's im2col rows of kh kw taps of cw words each: K = kh kw c). */
nl_status nl_bnn_gemm_ex(const uint64_t *A, int64_t lda, const uint64_t *B, int64_t ldb, int64_t M, int64_t N,
                         int64_t words, int64_t K, int32_t *C, int64_t ldc);
static inline nl_status nl_bnn_gemm_mat(const nl_bnn_mat *A, const nl_bnn_mat *B, int32_t *C /* [A->rows, B->rows] */) {
    if (A->k != B->k) return nl_set_error(NL_ESHAPE, "bnn gemm: A has k = %lld, B has k = %lld", (long long)A->k, (long long)B->k);
    return nl_bnn_gemm(A->bits, B->bits, A->rows, B->rows, A->k, C);
}

/* ======================================= convolution ======================================= */
/* Binary 2-D convolution over +-1 activations, exactly equal to a float convolution (cross-correlation, as
 * nl_conv2d) of the +-1 values with zero padding: a padded tap contributes 0, so a border output sums only its
 * valid taps: out = sum over valid taps (c - 2 popcount(x_tap xor w_tap)). Output int32 [n, oh, ow, oc] with
 * oh = (h + 2 ph - kh) / sh + 1, ow = (w + 2 pw - kw) / sw + 1. */
typedef struct nl_bnn_conv_geom {
    int64_t n, h, w, c;   /* input images [n, h, w, c] (bits [n, h, w, cw]) */
    int64_t oc, kh, kw;   /* filters [oc, kh, kw, c] (bits [oc, kh, kw, cw]) */
    int64_t sh, sw;       /* strides >= 1 */
    int64_t ph, pw;       /* zero padding, 0 <= ph < kh, 0 <= pw < kw */
} nl_bnn_conv_geom;
/* Output size; NL_EINVAL / NL_ESHAPE (with the numbers) for an impossible geometry. */
nl_status nl_bnn_conv_out(const nl_bnn_conv_geom *g, int64_t *oh, int64_t *ow);
/* x bits [n, h, w, cw], wt bits [oc, kh, kw, cw] -> out [n, oh, ow, oc]. Packs the patches (im2col on bits: whole
 * words per tap when c % 64 == 0, else the taps' c bits concatenated so that K = kh kw c takes ceil(K / 64) words;
 * padded taps as zero bits) and runs nl_bnn_gemm_ex, then removes what the zero bits contributed at each padded tap. */
nl_status nl_bnn_conv2d(const nl_bnn_conv_geom *g, const uint64_t *x, const uint64_t *wt, int32_t *out);

/* ======================================= thresholds ======================================= */
/* The next layer's input bit for channel c is bit = (f_c(s) >= 0) where s is this layer's integer output and f_c
 * the float expression the trained network evaluates (e.g. BatchNorm(alpha_c * s)). f_c is monotone in s (every
 * float operation of an affine map rounds monotonically), so the bit is a step function of s: it is stored as an
 * integer threshold t_c and a flip: bit = (s >= t_c) xor flip_c. Decreasing f_c (a negative folded factor) gives
 * flip 1; a channel whose bit is the same for every s gets t = INT32_MIN (always 1, flip 0; always 0, flip 1). */
typedef float (*nl_bnn_fn)(int64_t c, int32_t s, void *ctx);
typedef struct nl_bnn_thresh {
    int64_t c;         /* channels */
    int32_t *t;        /* [c] thresholds */
    uint8_t *flip;     /* [c] 0 or 1 */
} nl_bnn_thresh;
nl_status nl_bnn_thresh_init(nl_bnn_thresh *th, int64_t c); /* t = INT32_MIN, flip = 0 (always 1) */
void nl_bnn_thresh_free(nl_bnn_thresh *th);
/* Fold: for each channel, find t and flip from f(c, s, ctx) over the integers s in [-K, K] (the range of a K-term
 * +-1 sum) by binary search, then check every s in [-K, K] against the float bit (2K + 1 calls per channel), so the
 * folded bit equals (f(c, s) >= 0) at every reachable s by construction; NL_EINVAL naming the channel and s if f
 * is not monotone there. th must be initialised with th->c channels. */
nl_status nl_bnn_fold_thresholds(nl_bnn_thresh *th, int64_t K, nl_bnn_fn f, void *ctx);
/* The folded bit of one value. */
static inline int nl_bnn_thresh_bit(const nl_bnn_thresh *th, int64_t c, int32_t s) {
    return (s >= th->t[c]) ^ th->flip[c];
}
/* Fused: s [rows, c] int32 (a GEMM / convolution output, channels last) -> bits [rows, cw] with bit (r, c) =
 * (s[r, c] >= t_c) xor flip_c (tails zero): the packed input of the next binary layer. */
nl_status nl_bnn_threshold_pack(const int32_t *s, int64_t rows, const nl_bnn_thresh *th, uint64_t *bits);

/* Max-pooling on packed bits: in bits [n, h, w, cw] (c channels) -> out bits [n, oh, ow, cw], window k x k, stride,
 * padding pad (padded cells are ignored, as nl_maxpool2d; pad <= k / 2), oh = (h + 2 pad - k) / stride + 1.
 * The output bit is the OR of the window's bits. Why that is exact: the bit is a nondecreasing function of the value
 * v it binarises (bit = v >= 0), and for a nondecreasing g, max_i g(v_i) = g(max_i v_i); max over {0, 1} is OR. So
 * OR-pooling the bits equals binarising the max-pooled float values (pool after BatchNorm, then sign). It is NOT the
 * same as pooling s before a decreasing fold (flip 1): that would be an AND; pool the float value, not s. */
nl_status nl_bnn_maxpool_bits(const uint64_t *in, int64_t n, int64_t h, int64_t w, int64_t c, int64_t k, int64_t stride,
                              int64_t pad, uint64_t *out);

/* ======================================= model files ======================================= */
/* A packed binary network: an ordered list of layers, each a kind, a name, integer parameters and one data array
 * of a given dtype and logical shape. Layout of the file (little-endian, version 1):
 *   bytes 0-7    magic "NLBNNPK\n"
 *   8-11         u32 version (1)      12-15  u32 number of layers L (1 .. 4096)
 *   16-23        u64 file size in bytes (a truncated or extended file is refused)
 *   24-27        u32 CRC-32 (zlib) of everything after the header (layer table + data)
 *   28-63        zero
 *   64 ..        L table entries of 128 bytes: u32 kind, u32 dtype, u32 rank (1..4), u32 0, i64 shape[4] (unused
 *                dims 0), i32 param[8], char name[32] (NUL-terminated), u64 data offset (from the file start, a
 *                multiple of 64), u64 data bytes
 *   then the data arrays, each at its offset, 64-byte aligned, zero-filled between.
 * Data bytes follow from dtype and shape: F32 / I32: 4 prod(shape); U8: prod(shape); BITS (+-1 values packed as
 * above along the last dim): 8 prod(shape[:-1]) ceil(shape[-1] / 64), tails zero.
 * Kinds and their data (the loader checks these; param meanings are for the caller, e.g. param[0..3] = sh, sw, ph,
 * pw of a convolution): */
typedef enum nl_bnn_kind {
    NL_BNN_L_CONV = 1,    /* binary convolution: BITS [oc, kh, kw, c] */
    NL_BNN_L_DENSE = 2,   /* binary fully connected: BITS [out, in] */
    NL_BNN_L_THRESH = 3,  /* folded thresholds: I32 [c, 2] rows (t_c, flip_c), flip in {0, 1} */
    NL_BNN_L_POOL = 4,    /* max-pool on bits: I32, usually no data (shape [0]), params (k, stride, pad) */
    NL_BNN_L_FLOAT = 5,   /* float parameters of a real-valued layer (first conv, classifier, scales): F32, finite */
    NL_BNN_L_INT = 6,     /* other integer data: I32 */
} nl_bnn_kind;
typedef enum nl_bnn_dtype { NL_BNN_F32 = 1, NL_BNN_I32 = 2, NL_BNN_U8 = 3, NL_BNN_BITS = 4 } nl_bnn_dtype;
#define NL_BNN_FILE_VERSION 1
#define NL_BNN_MAX_LAYERS 4096
typedef struct nl_bnn_layer {
    int32_t kind, dtype, rank;
    int64_t shape[4];
    int32_t param[8];
    char name[32];
    void *data;           /* owned by the model; nl_bnn_layer_bytes(this) bytes, 64-byte aligned */
} nl_bnn_layer;
typedef struct nl_bnn_model {
    int n_layers, cap;
    nl_bnn_layer *layers; /* [n_layers] */
} nl_bnn_model;
int64_t nl_bnn_layer_bytes(const nl_bnn_layer *l); /* -1 for an invalid dtype / shape */
void nl_bnn_model_init(nl_bnn_model *m);
void nl_bnn_model_free(nl_bnn_model *m);
/* Append a layer (data copied; NULL data = zero-filled); returns its index in *idx (may be NULL). shape[rank..3]
 * are ignored. Checks as the loader does (kind / dtype pairing, bit tails, flips, finite floats). */
nl_status nl_bnn_model_add(nl_bnn_model *m, nl_bnn_kind kind, const char *name, nl_bnn_dtype dtype, int rank,
                           const int64_t *shape, const int32_t *param /* [8] or NULL */, const void *data, int *idx);
/* Layer i must have this kind, dtype and shape: otherwise NL_ESHAPE "file: layer 2 'conv2': shape [64, 3, 3, 32],
 * expected [64, 3, 3, 64]" (what a loader of a given architecture calls for each layer). */
nl_status nl_bnn_model_expect(const nl_bnn_model *m, int i, nl_bnn_kind kind, nl_bnn_dtype dtype, int rank,
                              const int64_t *shape);
/* Save atomically (temp file + rename, nl_atomic_open). */
nl_status nl_bnn_model_save(const nl_bnn_model *m, const char *path);
/* Load and validate everything; on error m is left empty and the status is NL_EFORMAT with a message naming the file
 * and what is wrong: bad magic (a float nnlab checkpoint, i.e. a safetensors file, is named as such), unsupported
 * version, truncated or extended file, CRC mismatch, bad table entry (kind, dtype, rank, shape, offset, byte count),
 * non-zero bit tails, flips not in {0, 1}, non-finite floats. NL_ENOTFOUND / NL_EIO for a missing / unreadable
 * file. Files over 4 GiB are refused. */
nl_status nl_bnn_model_load(nl_bnn_model *m, const char *path);

#ifdef __cplusplus
}
#endif
#endif
