/* bnn/bnn_gemm.c — kernel-path dispatch, packing, and the XNOR-popcount GEMM: portable C, AVX2 (nibble-LUT popcount
 * with vpshufb) and AVX-512 VPOPCNTDQ, each compiled with __attribute__((target)) and chosen at run time. */
#include "bnn/bnn.h"
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

/* ======================================= paths ======================================= */
static int g_forced; /* 0: automatic, else the forced nl_bnn_path */

int nl_bnn_path_supported(nl_bnn_path p) {
#if defined(__x86_64__) || defined(__i386__)
    switch (p) {
    case NL_BNN_AUTO: case NL_BNN_PORTABLE: return 1;
    case NL_BNN_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    case NL_BNN_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq") &&
               __builtin_cpu_supports("popcnt");
    }
    return 0;
#else
    return p == NL_BNN_AUTO || p == NL_BNN_PORTABLE;
#endif
}

const char *nl_bnn_path_name(nl_bnn_path p) {
    switch (p) {
    case NL_BNN_AUTO: return "auto";
    case NL_BNN_PORTABLE: return "portable";
    case NL_BNN_AVX2: return "avx2";
    case NL_BNN_AVX512: return "avx512-vpopcntdq";
    }
    return "unknown";
}

nl_status nl_bnn_set_path(nl_bnn_path p) {
    if ((int)p < NL_BNN_AUTO || (int)p > NL_BNN_AVX512) return nl_set_error(NL_EINVAL, "bnn: unknown kernel path %d", (int)p);
    if (!nl_bnn_path_supported(p))
        return nl_set_error(NL_EINVAL, "bnn: kernel path %s is not supported by this CPU", nl_bnn_path_name(p));
    g_forced = (int)p;
    return NL_OK;
}

nl_bnn_path nl_bnn_get_path(void) {
    if (g_forced) return (nl_bnn_path)g_forced;
    if (nl_bnn_path_supported(NL_BNN_AVX512)) return NL_BNN_AVX512;
    if (nl_bnn_path_supported(NL_BNN_AVX2)) return NL_BNN_AVX2;
    return NL_BNN_PORTABLE;
}

/* ======================================= packing ======================================= */
static nl_status bad_size(const char *who, int64_t a, int64_t b) {
    return nl_set_error(NL_EINVAL, "bnn %s: bad size (%lld, %lld)", who, (long long)a, (long long)b);
}

nl_status nl_bnn_pack_rows(const float *x, int64_t rows, int64_t k, uint64_t *bits) {
    if (rows < 0 || k < 0) return bad_size("pack_rows", rows, k);
    if (rows && k && (!x || !bits)) return nl_set_error(NL_EINVAL, "bnn pack_rows: NULL buffer");
    const int64_t kw = nl_bnn_words(k);
#pragma omp parallel for schedule(static) if (rows * k > (1 << 18))
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * k;
        uint64_t *br = bits + r * kw;
        for (int64_t w = 0; w < kw; w++) {
            const int64_t j0 = w * 64, n = k - j0 < 64 ? k - j0 : 64;
            uint64_t v = 0;
            for (int64_t j = 0; j < n; j++) v |= (uint64_t)(xr[j0 + j] >= 0.0f) << j;
            br[w] = v;
        }
    }
    return NL_OK;
}

nl_status nl_bnn_unpack_rows(const uint64_t *bits, int64_t rows, int64_t k, float *x) {
    if (rows < 0 || k < 0) return bad_size("unpack_rows", rows, k);
    if (rows && k && (!x || !bits)) return nl_set_error(NL_EINVAL, "bnn unpack_rows: NULL buffer");
    const int64_t kw = nl_bnn_words(k);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < k; j++) x[r * k + j] = (bits[r * kw + j / 64] >> (j % 64)) & 1 ? 1.0f : -1.0f;
    return NL_OK;
}

nl_status nl_bnn_pack_nchw(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, uint64_t *bits) {
    if (n < 0 || c < 0 || h < 0 || w < 0) return bad_size("pack_nchw", n, c);
    if (n && c && h && w && (!x || !bits)) return nl_set_error(NL_EINVAL, "bnn pack_nchw: NULL buffer");
    const int64_t cw = nl_bnn_words(c), hw = h * w;
#pragma omp parallel for schedule(static) if (n * c * hw > (1 << 18))
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < hw; p++) {
            uint64_t *b = bits + (i * hw + p) * cw;
            for (int64_t q = 0; q < cw; q++) b[q] = 0;
            for (int64_t ch = 0; ch < c; ch++)
                b[ch / 64] |= (uint64_t)(x[(i * c + ch) * hw + p] >= 0.0f) << (ch % 64);
        }
    return NL_OK;
}

nl_status nl_bnn_pack_conv_weights(const float *w, int64_t oc, int64_t c, int64_t kh, int64_t kw, uint64_t *bits) {
    if (oc < 0 || c < 0 || kh < 0 || kw < 0) return bad_size("pack_conv_weights", oc, c);
    if (oc && c && kh && kw && (!w || !bits)) return nl_set_error(NL_EINVAL, "bnn pack_conv_weights: NULL buffer");
    const int64_t cw = nl_bnn_words(c), taps = kh * kw;
    for (int64_t o = 0; o < oc; o++)
        for (int64_t t = 0; t < taps; t++) {
            uint64_t *b = bits + (o * taps + t) * cw;
            for (int64_t q = 0; q < cw; q++) b[q] = 0;
            for (int64_t ch = 0; ch < c; ch++) b[ch / 64] |= (uint64_t)(w[(o * c + ch) * taps + t] >= 0.0f) << (ch % 64);
        }
    return NL_OK;
}

nl_status nl_bnn_mat_init(nl_bnn_mat *m, int64_t rows, int64_t k) {
    memset(m, 0, sizeof *m);
    if (rows < 0 || k < 0) return bad_size("mat_init", rows, k);
    const int64_t kw = nl_bnn_words(k);
    size_t bytes = (size_t)(rows * kw * 8 + 63) / 64 * 64;
    m->bits = aligned_alloc(64, bytes ? bytes : 64);
    if (!m->bits) return nl_set_error(NL_ENOMEM, "bnn mat_init: %lld x %lld bits: out of memory", (long long)rows, (long long)k);
    memset(m->bits, 0, bytes ? bytes : 64);
    m->rows = rows, m->k = k, m->kw = kw;
    return NL_OK;
}

nl_status nl_bnn_mat_pack(nl_bnn_mat *m, const float *x, int64_t rows, int64_t k) {
    nl_status s = nl_bnn_mat_init(m, rows, k);
    if (s == NL_OK) s = nl_bnn_pack_rows(x, rows, k, m->bits);
    if (s != NL_OK) nl_bnn_mat_free(m);
    return s;
}

void nl_bnn_mat_free(nl_bnn_mat *m) {
    free(m->bits);
    memset(m, 0, sizeof *m);
}

/* ======================================= portable kernels ======================================= */
static int64_t popc_xor(const uint64_t *a, const uint64_t *b, int64_t words) {
    int64_t p = 0;
    for (int64_t w = 0; w < words; w++) p += __builtin_popcountll(a[w] ^ b[w]);
    return p;
}

int32_t nl_bnn_dot(const uint64_t *a, const uint64_t *b, int64_t K) {
    return (int32_t)(K - 2 * popc_xor(a, b, nl_bnn_words(K)));
}

/* C[i][j] (i < m, j < n) for one block: 2 x 4 register tiles, single rows / columns at the edges */
static void block_portable(const uint64_t *A, int64_t lda, const uint64_t *B, int64_t ldb, int64_t m, int64_t n,
                           int64_t words, int64_t K, int32_t *C, int64_t ldc) {
    int64_t i = 0;
    for (; i + 2 <= m; i += 2) {
        const uint64_t *a0 = A + i * lda, *a1 = a0 + lda;
        int64_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const uint64_t *b0 = B + j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
            int64_t p00 = 0, p01 = 0, p02 = 0, p03 = 0, p10 = 0, p11 = 0, p12 = 0, p13 = 0;
            for (int64_t w = 0; w < words; w++) {
                const uint64_t x0 = a0[w], x1 = a1[w], y0 = b0[w], y1 = b1[w], y2 = b2[w], y3 = b3[w];
                p00 += __builtin_popcountll(x0 ^ y0), p01 += __builtin_popcountll(x0 ^ y1);
                p02 += __builtin_popcountll(x0 ^ y2), p03 += __builtin_popcountll(x0 ^ y3);
                p10 += __builtin_popcountll(x1 ^ y0), p11 += __builtin_popcountll(x1 ^ y1);
                p12 += __builtin_popcountll(x1 ^ y2), p13 += __builtin_popcountll(x1 ^ y3);
            }
            int32_t *c0 = C + i * ldc + j, *c1 = c0 + ldc;
            c0[0] = (int32_t)(K - 2 * p00), c0[1] = (int32_t)(K - 2 * p01), c0[2] = (int32_t)(K - 2 * p02), c0[3] = (int32_t)(K - 2 * p03);
            c1[0] = (int32_t)(K - 2 * p10), c1[1] = (int32_t)(K - 2 * p11), c1[2] = (int32_t)(K - 2 * p12), c1[3] = (int32_t)(K - 2 * p13);
        }
        for (; j < n; j++) {
            C[i * ldc + j] = (int32_t)(K - 2 * popc_xor(a0, B + j * ldb, words));
            C[(i + 1) * ldc + j] = (int32_t)(K - 2 * popc_xor(a1, B + j * ldb, words));
        }
    }
    for (; i < m; i++)
        for (int64_t j = 0; j < n; j++) C[i * ldc + j] = (int32_t)(K - 2 * popc_xor(A + i * lda, B + j * ldb, words));
}

/* ======================================= AVX2 ======================================= */
#if defined(__x86_64__)
#define NL_AVX2 __attribute__((target("avx2,popcnt")))
/* per-byte popcount of a xor b, added to acc (each call adds at most 8 to a byte) */
NL_AVX2 static inline __m256i avx2_acc(__m256i acc, __m256i x, __m256i lut, __m256i m4) {
    const __m256i lo = _mm256_and_si256(x, m4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
    return _mm256_add_epi8(acc, _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi)));
}
NL_AVX2 static inline int64_t avx2_hsum(__m256i v) {
    return _mm256_extract_epi64(v, 0) + _mm256_extract_epi64(v, 1) + _mm256_extract_epi64(v, 2) + _mm256_extract_epi64(v, 3);
}
NL_AVX2 static int64_t popc_xor_avx2(const uint64_t *a, const uint64_t *b, int64_t words) {
    int64_t p = 0, w = 0;
    for (; w < words; w++) p += _mm_popcnt_u64(a[w] ^ b[w]);
    return p;
}

#define AVX2_CHUNK 31 /* vectors per byte-counter run: 31 * 8 = 248 <= 255 */
NL_AVX2 static void block_avx2(const uint64_t *A, int64_t lda, const uint64_t *B, int64_t ldb, int64_t m, int64_t n,
                               int64_t words, int64_t K, int32_t *C, int64_t ldc) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i m4 = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
    const int64_t nv = words / 4, wv = nv * 4; /* whole vectors; words wv .. words-1 scalar */
    int64_t i = 0;
    for (; i + 2 <= m; i += 2) {
        const uint64_t *a0 = A + i * lda, *a1 = a0 + lda;
        int64_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const uint64_t *b0 = B + j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
            __m256i s00 = zero, s01 = zero, s02 = zero, s03 = zero, s10 = zero, s11 = zero, s12 = zero, s13 = zero;
            for (int64_t v0 = 0; v0 < nv; v0 += AVX2_CHUNK) {
                const int64_t v1 = v0 + AVX2_CHUNK < nv ? v0 + AVX2_CHUNK : nv;
                __m256i c00 = zero, c01 = zero, c02 = zero, c03 = zero, c10 = zero, c11 = zero, c12 = zero, c13 = zero;
                for (int64_t v = v0; v < v1; v++) {
                    const __m256i x0 = _mm256_loadu_si256((const __m256i *)(a0 + 4 * v));
                    const __m256i x1 = _mm256_loadu_si256((const __m256i *)(a1 + 4 * v));
                    __m256i y = _mm256_loadu_si256((const __m256i *)(b0 + 4 * v));
                    c00 = avx2_acc(c00, _mm256_xor_si256(x0, y), lut, m4), c10 = avx2_acc(c10, _mm256_xor_si256(x1, y), lut, m4);
                    y = _mm256_loadu_si256((const __m256i *)(b1 + 4 * v));
                    c01 = avx2_acc(c01, _mm256_xor_si256(x0, y), lut, m4), c11 = avx2_acc(c11, _mm256_xor_si256(x1, y), lut, m4);
                    y = _mm256_loadu_si256((const __m256i *)(b2 + 4 * v));
                    c02 = avx2_acc(c02, _mm256_xor_si256(x0, y), lut, m4), c12 = avx2_acc(c12, _mm256_xor_si256(x1, y), lut, m4);
                    y = _mm256_loadu_si256((const __m256i *)(b3 + 4 * v));
                    c03 = avx2_acc(c03, _mm256_xor_si256(x0, y), lut, m4), c13 = avx2_acc(c13, _mm256_xor_si256(x1, y), lut, m4);
                }
                s00 = _mm256_add_epi64(s00, _mm256_sad_epu8(c00, zero)), s01 = _mm256_add_epi64(s01, _mm256_sad_epu8(c01, zero));
                s02 = _mm256_add_epi64(s02, _mm256_sad_epu8(c02, zero)), s03 = _mm256_add_epi64(s03, _mm256_sad_epu8(c03, zero));
                s10 = _mm256_add_epi64(s10, _mm256_sad_epu8(c10, zero)), s11 = _mm256_add_epi64(s11, _mm256_sad_epu8(c11, zero));
                s12 = _mm256_add_epi64(s12, _mm256_sad_epu8(c12, zero)), s13 = _mm256_add_epi64(s13, _mm256_sad_epu8(c13, zero));
            }
            const int64_t r = words - wv;
            int32_t *c0 = C + i * ldc + j, *c1 = c0 + ldc;
            c0[0] = (int32_t)(K - 2 * (avx2_hsum(s00) + popc_xor_avx2(a0 + wv, b0 + wv, r)));
            c0[1] = (int32_t)(K - 2 * (avx2_hsum(s01) + popc_xor_avx2(a0 + wv, b1 + wv, r)));
            c0[2] = (int32_t)(K - 2 * (avx2_hsum(s02) + popc_xor_avx2(a0 + wv, b2 + wv, r)));
            c0[3] = (int32_t)(K - 2 * (avx2_hsum(s03) + popc_xor_avx2(a0 + wv, b3 + wv, r)));
            c1[0] = (int32_t)(K - 2 * (avx2_hsum(s10) + popc_xor_avx2(a1 + wv, b0 + wv, r)));
            c1[1] = (int32_t)(K - 2 * (avx2_hsum(s11) + popc_xor_avx2(a1 + wv, b1 + wv, r)));
            c1[2] = (int32_t)(K - 2 * (avx2_hsum(s12) + popc_xor_avx2(a1 + wv, b2 + wv, r)));
            c1[3] = (int32_t)(K - 2 * (avx2_hsum(s13) + popc_xor_avx2(a1 + wv, b3 + wv, r)));
        }
        for (; j < n; j++) {
            C[i * ldc + j] = (int32_t)(K - 2 * popc_xor_avx2(a0, B + j * ldb, words));
            C[(i + 1) * ldc + j] = (int32_t)(K - 2 * popc_xor_avx2(a1, B + j * ldb, words));
        }
    }
    for (; i < m; i++)
        for (int64_t j = 0; j < n; j++) C[i * ldc + j] = (int32_t)(K - 2 * popc_xor_avx2(A + i * lda, B + j * ldb, words));
}

/* ======================================= AVX-512 VPOPCNTDQ ======================================= */
#define NL_AVX512 __attribute__((target("avx512f,avx512vpopcntdq,popcnt")))
NL_AVX512 static int64_t popc_xor_avx512(const uint64_t *a, const uint64_t *b, int64_t words) {
    __m512i s = _mm512_setzero_si512();
    int64_t w = 0;
    for (; w + 8 <= words; w += 8)
        s = _mm512_add_epi64(s, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(a + w), _mm512_loadu_si512(b + w))));
    if (w < words) {
        const __mmask8 k = (__mmask8)((1u << (words - w)) - 1);
        s = _mm512_add_epi64(s, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_maskz_loadu_epi64(k, a + w),
                                                                       _mm512_maskz_loadu_epi64(k, b + w))));
    }
    return _mm512_reduce_add_epi64(s);
}

NL_AVX512 static void block_avx512(const uint64_t *A, int64_t lda, const uint64_t *B, int64_t ldb, int64_t m, int64_t n,
                                   int64_t words, int64_t K, int32_t *C, int64_t ldc) {
    const int64_t rem = words % 8, wv = words - rem;
    const __mmask8 km = (__mmask8)((1u << rem) - 1);
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
        const uint64_t *a[4] = {A + i * lda, A + (i + 1) * lda, A + (i + 2) * lda, A + (i + 3) * lda};
        int64_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const uint64_t *b[4] = {B + j * ldb, B + (j + 1) * ldb, B + (j + 2) * ldb, B + (j + 3) * ldb};
            __m512i s[4][4];
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++) s[r][q] = _mm512_setzero_si512();
            for (int64_t w = 0; w <= wv; w += 8) {
                __m512i x[4], y[4];
                if (w < wv) {
                    for (int r = 0; r < 4; r++) x[r] = _mm512_loadu_si512(a[r] + w), y[r] = _mm512_loadu_si512(b[r] + w);
                } else if (rem) {
                    for (int r = 0; r < 4; r++) x[r] = _mm512_maskz_loadu_epi64(km, a[r] + w), y[r] = _mm512_maskz_loadu_epi64(km, b[r] + w);
                } else
                    break;
                for (int r = 0; r < 4; r++)
                    for (int q = 0; q < 4; q++) s[r][q] = _mm512_add_epi64(s[r][q], _mm512_popcnt_epi64(_mm512_xor_si512(x[r], y[q])));
            }
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++) C[(i + r) * ldc + j + q] = (int32_t)(K - 2 * _mm512_reduce_add_epi64(s[r][q]));
        }
        for (; j < n; j++)
            for (int r = 0; r < 4; r++) C[(i + r) * ldc + j] = (int32_t)(K - 2 * popc_xor_avx512(a[r], B + j * ldb, words));
    }
    for (; i < m; i++)
        for (int64_t j = 0; j < n; j++) C[i * ldc + j] = (int32_t)(K - 2 * popc_xor_avx512(A + i * lda, B + j * ldb, words));
}
#endif

/* ======================================= driver ======================================= */
typedef void (*block_fn)(const uint64_t *, int64_t, const uint64_t *, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int32_t *, int64_t);

nl_status nl_bnn_gemm_ex(const uint64_t *A, int64_t lda, const uint64_t *B, int64_t ldb, int64_t M, int64_t N,
                         int64_t words, int64_t K, int32_t *C, int64_t ldc) {
    if (M < 0 || N < 0 || words < 0 || K < 0 || K > INT32_MAX || K > words * 64)
        return nl_set_error(NL_EINVAL, "bnn gemm: bad sizes M %lld, N %lld, words %lld, K %lld", (long long)M, (long long)N,
                            (long long)words, (long long)K);
    if (M == 0 || N == 0) return NL_OK;
    if (!C || (words && (!A || !B))) return nl_set_error(NL_EINVAL, "bnn gemm: NULL buffer");
    if (lda < words || ldb < words || ldc < N)
        return nl_set_error(NL_EINVAL, "bnn gemm: strides lda %lld, ldb %lld (need >= %lld), ldc %lld (need >= %lld)",
                            (long long)lda, (long long)ldb, (long long)words, (long long)ldc, (long long)N);
    block_fn fn = block_portable;
#if defined(__x86_64__)
    switch (nl_bnn_get_path()) {
    case NL_BNN_AVX512: fn = block_avx512; break;
    case NL_BNN_AVX2: fn = block_avx2; break;
    default: break;
    }
#endif
    /* column chunks whose B rows fit in about 256 KiB (L2), row blocks of 16 (a multiple of every tile height) */
    int64_t nc = (256 * 1024) / ((words ? words : 1) * 8);
    nc = nc < 16 ? 16 : nc / 16 * 16;
    const int64_t MB = 16, nblk = (M + MB - 1) / MB;
    const int par = nblk > 1 && (double)M * N * (words + 1) > 2e5;
    for (int64_t jc = 0; jc < N; jc += nc) {
        const int64_t nb = N - jc < nc ? N - jc : nc;
#pragma omp parallel for schedule(static) if (par)
        for (int64_t ib = 0; ib < nblk; ib++) {
            const int64_t i0 = ib * MB, mb = M - i0 < MB ? M - i0 : MB;
            fn(A + i0 * lda, lda, B + jc * ldb, ldb, mb, nb, words, K, C + i0 * ldc + jc, ldc);
        }
    }
    return NL_OK;
}

nl_status nl_bnn_gemm(const uint64_t *A, const uint64_t *B, int64_t M, int64_t N, int64_t K, int32_t *C) {
    if (K < 0) return nl_set_error(NL_EINVAL, "bnn gemm: K = %lld", (long long)K);
    const int64_t kw = nl_bnn_words(K);
    return nl_bnn_gemm_ex(A, kw, B, kw, M, N, kw, K, C, N);
}
