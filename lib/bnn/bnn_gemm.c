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
/* Popcount by nibble lookup: a byte's count is lut[low nibble] + lut[high nibble] (vpshufb). The nibbles of a xor b
 * are (a_lo xor b_lo, a_hi xor b_hi), so both operands are split once per call into nibble planes (lo = x & 0x0f,
 * hi = (x >> 4) & 0x0f, one 256-bit vector each per 4 words); the inner loop is then 2 xor, 2 vpshufb and 2 byte adds
 * per pair of 256-bit vectors (8 without the split). Byte counters (at most 8 added per vector) are summed into
 * 64-bit lanes with vpsadbw every 31 vectors. A remainder of words % 4 = 2 or 3 words is a zero-padded last vector
 * (zero in both operands: counts nothing), a single word runs through scalar popcnt on the integer units. */
#if defined(__x86_64__)
#define NL_AVX2 __attribute__((target("avx2,popcnt")))
#define AVX2_CHUNK 31 /* vectors per byte-counter run: 31 * 8 = 248 <= 255 */

/* row r of src [rows, ld] words -> its planes dst [nv, 2] vectors (lo, hi) of the first `words` words (a partial last
 * vector is zero-padded) */
NL_AVX2 static void avx2_split_row(const uint64_t *src, int64_t words, int64_t nv, __m256i *dst) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const int64_t tail = words - 4 * (nv - 1); /* words in the last vector (1..4 when padded, else 4) */
    const __m256i tmask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(tail), _mm256_setr_epi64x(0, 1, 2, 3));
    for (int64_t v = 0; v < nv; v++) {
        const __m256i x = v < nv - 1 || tail >= 4 ? _mm256_loadu_si256((const __m256i *)(src + 4 * v))
                                                  : _mm256_maskload_epi64((const long long *)(src + 4 * v), tmask);
        _mm256_store_si256(dst + v * 2, _mm256_and_si256(x, m4));
        _mm256_store_si256(dst + v * 2 + 1, _mm256_and_si256(_mm256_srli_epi16(x, 4), m4));
    }
}

NL_AVX2 static inline int64_t avx2_hsum(__m256i v) {
    const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}
/* the 4 lane sums of s0..s3 as one vector [sum s0, sum s1, sum s2, sum s3] */
NL_AVX2 static inline __m256i avx2_sum4(__m256i s0, __m256i s1, __m256i s2, __m256i s3) {
    const __m256i t0 = _mm256_add_epi64(_mm256_unpacklo_epi64(s0, s1), _mm256_unpackhi_epi64(s0, s1));
    const __m256i t1 = _mm256_add_epi64(_mm256_unpacklo_epi64(s2, s3), _mm256_unpackhi_epi64(s2, s3));
    return _mm256_add_epi64(_mm256_permute2x128_si256(t0, t1, 0x20), _mm256_permute2x128_si256(t0, t1, 0x31));
}
/* C[0..4) = K - 2 (p + r): p from avx2_sum4, r scalar remainder counts */
NL_AVX2 static inline void avx2_store4(int32_t *c, __m256i p, const int64_t *r, int64_t K) {
    p = _mm256_add_epi64(p, _mm256_set_epi64x(r[3], r[2], r[1], r[0])); /* not a load of r: store-forwarding stall */
    const __m256i v = _mm256_sub_epi64(_mm256_set1_epi64x(K), _mm256_add_epi64(p, p));
    const __m256i lo = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
    _mm_storeu_si128((__m128i *)c, _mm256_castsi256_si128(lo));
}
typedef struct gemm_args {
    const uint64_t *A, *B;
    int64_t lda, ldb, words, K, nv, wsplit;
    const void *As, *Bs; /* AVX2: nibble planes [M, nv, 2] and [N, nv, 2] of __m256i (of the first wsplit words) */
} gemm_args;

/* One MR x NR tile of C at (i, j) (C points at the tile). MR, NR are constants at every call (always inlined), so
 * the arrays below live in registers. */
NL_AVX2 static inline __attribute__((always_inline)) void avx2_tile(const gemm_args *g, int64_t i, int64_t j, int32_t *C, int64_t ldc,
                                                                  const int MR, const int NR, __m256i lut) {
    const __m256i zero = _mm256_setzero_si256();
    const int64_t nv = g->nv, wv = 4 * nv, rw = g->words > wv ? g->words - wv : 0;
    const __m256i *pa[8], *pb[4];
    const uint64_t *a[8], *b[4];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) pa[r] = (const __m256i *)g->As + (i + r) * nv * 2, a[r] = g->A + (i + r) * g->lda + wv;
#pragma GCC unroll 4
    for (int q = 0; q < NR; q++) pb[q] = (const __m256i *)g->Bs + (j + q) * nv * 2, b[q] = g->B + (j + q) * g->ldb + wv;
    __m256i s[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int q = 0; q < NR; q++) s[r][q] = zero;
    for (int64_t v0 = 0; v0 < nv; v0 += AVX2_CHUNK) {
        const int64_t v1 = v0 + AVX2_CHUNK < nv ? v0 + AVX2_CHUNK : nv;
        __m256i c[8][4];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int q = 0; q < NR; q++) c[r][q] = zero;
#pragma GCC unroll 2
        for (int64_t v = v0; v < v1; v++) {
            /* one column's planes at a time (2 registers), the MR rows' planes from L1 */
#pragma GCC unroll 4
            for (int q = 0; q < NR; q++) {
                const __m256i bl = _mm256_load_si256(pb[q] + 2 * v), bh = _mm256_load_si256(pb[q] + 2 * v + 1);
#pragma GCC unroll 8
                for (int r = 0; r < MR; r++)
                    c[r][q] = _mm256_add_epi8(c[r][q], _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_xor_si256(pa[r][2 * v], bl)),
                                                                       _mm256_shuffle_epi8(lut, _mm256_xor_si256(pa[r][2 * v + 1], bh))));
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int q = 0; q < NR; q++) s[r][q] = _mm256_add_epi64(s[r][q], _mm256_sad_epu8(c[r][q], zero));
    }
    int64_t rr[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int q = 0; q < NR; q++) rr[r][q] = 0;
    for (int64_t w = 0; w < rw; w++)
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int q = 0; q < NR; q++) rr[r][q] += _mm_popcnt_u64(a[r][w] ^ b[q][w]);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        if (NR == 4) avx2_store4(C + r * ldc, avx2_sum4(s[r][0], s[r][1], s[r][2], s[r][3]), rr[r], g->K);
        else if (NR == 2) {
            const __m256i t = _mm256_add_epi64(_mm256_unpacklo_epi64(s[r][0], s[r][1]), _mm256_unpackhi_epi64(s[r][0], s[r][1]));
            __m128i p = _mm_add_epi64(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
            p = _mm_add_epi64(p, _mm_set_epi64x(rr[r][1], rr[r][0])); /* not a 16-byte load of rr: that would stall store forwarding */
            p = _mm_sub_epi64(_mm_set1_epi64x(g->K), _mm_add_epi64(p, p));
            _mm_storel_epi64((__m128i *)(C + r * ldc), _mm_shuffle_epi32(p, 0x08)); /* dwords 0, 2 */
        } else
#pragma GCC unroll 4
            for (int q = 0; q < NR; q++) C[r * ldc + q] = (int32_t)(g->K - 2 * (avx2_hsum(s[r][q]) + rr[r][q]));
    }
}

#ifndef NL_BNN_MR
/* 4 x 1 measured fastest (K = 4096: 6.4 word pairs / ns against 5.6 for 2 x 4, 3 x 2, 4 x 2): one column's planes in
 * two registers, the rows' planes as memory operands, 4 byte counters: nothing spills. Tiles with 8 counters
 * spilled some to the stack, whose store-forwarding latency then bounded the loop. */
#define NL_BNN_MR 4
#define NL_BNN_NR 1
#endif
/* rows i0 .. i0+m, columns j0 .. j0+n of C (C points at (i0, j0)): MR x NR tiles, then 1 x NR and MR x 1 / 1 x 1 edges */
NL_AVX2 static void block_avx2(const gemm_args *g, int64_t i0, int64_t m, int64_t j0, int64_t n, int32_t *C, int64_t ldc) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    int64_t i = 0;
    for (; i + NL_BNN_MR <= m; i += NL_BNN_MR) {
        int64_t j = 0;
        for (; j + NL_BNN_NR <= n; j += NL_BNN_NR) avx2_tile(g, i0 + i, j0 + j, C + i * ldc + j, ldc, NL_BNN_MR, NL_BNN_NR, lut);
        for (; j < n; j++) avx2_tile(g, i0 + i, j0 + j, C + i * ldc + j, ldc, NL_BNN_MR, 1, lut);
    }
    for (; i < m; i++) {
        int64_t j = 0;
        for (; j + NL_BNN_NR <= n; j += NL_BNN_NR) avx2_tile(g, i0 + i, j0 + j, C + i * ldc + j, ldc, 1, NL_BNN_NR, lut);
        for (; j < n; j++) avx2_tile(g, i0 + i, j0 + j, C + i * ldc + j, ldc, 1, 1, lut);
    }
}
#else
typedef struct gemm_args {
    const uint64_t *A, *B;
    int64_t lda, ldb, words, K, nv, wsplit;
    const void *As, *Bs;
} gemm_args;
#endif

/* ======================================= AVX-512 VPOPCNTDQ ======================================= */
#if defined(__x86_64__)
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
typedef void (*block_fn)(const gemm_args *g, int64_t i0, int64_t m, int64_t j0, int64_t n, int32_t *C, int64_t ldc);
static void blk_portable(const gemm_args *g, int64_t i0, int64_t m, int64_t j0, int64_t n, int32_t *C, int64_t ldc) {
    block_portable(g->A + i0 * g->lda, g->lda, g->B + j0 * g->ldb, g->ldb, m, n, g->words, g->K, C, ldc);
}
#if defined(__x86_64__)
static void blk_avx512(const gemm_args *g, int64_t i0, int64_t m, int64_t j0, int64_t n, int32_t *C, int64_t ldc) {
    block_avx512(g->A + i0 * g->lda, g->lda, g->B + j0 * g->ldb, g->ldb, m, n, g->words, g->K, C, ldc);
}
#endif

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
    gemm_args g = {A, B, lda, ldb, words, K, 0, 0, NULL, NULL};
    block_fn fn = blk_portable;
    void *planes = NULL;
    int64_t split_bytes = 0; /* bytes of packed operand the B chunk holds per row (L2 blocking below) */
#if defined(__x86_64__)
    switch (nl_bnn_get_path()) {
    case NL_BNN_AVX512: fn = blk_avx512; break;
    case NL_BNN_AVX2:
        /* a remainder of 2-3 words goes into a zero-padded last vector, a single word to scalar popcnt (measured: for
         * 9 words the padded vector is 10% slower, for 18 words 3% faster); below 6 words per row the portable kernel
         * was faster (K = 320: 2.11 against 1.82 word pairs per ns; K = 384: 2.19 against 2.37) */
        g.nv = words < 6 ? 0 : words / 4 + (words % 4 >= 2);
        const int64_t wsplit = g.nv * 4 > words ? words : g.nv * 4;
        if (g.nv) {
            planes = aligned_alloc(32, (size_t)((M + N) * g.nv * 64));
            if (!planes) return nl_set_error(NL_ENOMEM, "bnn gemm: nibble planes for %lld + %lld rows: out of memory", (long long)M, (long long)N);
            __m256i *pa = planes, *pb = pa + M * g.nv * 2;
            g.As = pa, g.Bs = pb, g.wsplit = wsplit; /* filled inside the parallel region below */
            split_bytes = g.nv * 64 - g.nv * 32;
        }
        fn = g.nv ? block_avx2 : blk_portable;
        break;
    default: break;
    }
#endif
    /* column chunks whose B rows fit in about 256 KiB (L2), row blocks of 16 (a multiple of every tile height) */
#ifndef NL_BNN_CHUNK
#define NL_BNN_CHUNK (160 * 1024) /* B chunk bytes (with its nibble planes): 128-256 KiB measured best, 512 KiB 10% slower (L2 512 KiB) */
#endif
    int64_t nc = NL_BNN_CHUNK / (words * 8 + split_bytes + 8);
    nc = nc < 16 ? 16 : nc / 16 * 16;
    const int64_t MB = 16, nblk = (M + MB - 1) / MB;
    const int par = nblk > 1 && (double)M * N * (words + 1) > 2e5;
    /* one parallel region (a busy machine takes a scheduler slice from a thread at every extra barrier): the planes,
     * one barrier, then the column chunks without barriers (they write disjoint columns of C). Dynamic schedules, so
     * that a thread that lost its core does not hold back a static share of the work. The results do not depend on
     * the schedule (each C entry is computed by one thread in a fixed order). */
#pragma omp parallel if (par)
    {
#if defined(__x86_64__)
        if (planes) {
#pragma omp for schedule(dynamic, 64)
            for (int64_t r = 0; r < M + N; r++) {
                if (r < M) avx2_split_row(A + r * lda, g.wsplit, g.nv, (__m256i *)g.As + r * g.nv * 2);
                else avx2_split_row(B + (r - M) * ldb, g.wsplit, g.nv, (__m256i *)g.Bs + (r - M) * g.nv * 2);
            }
        }
#endif
        for (int64_t jc = 0; jc < N; jc += nc) {
            const int64_t nb = N - jc < nc ? N - jc : nc;
#pragma omp for schedule(dynamic, 1) nowait
            for (int64_t ib = 0; ib < nblk; ib++) {
                const int64_t i0 = ib * MB, mb = M - i0 < MB ? M - i0 : MB;
                fn(&g, i0, mb, jc, nb, C + i0 * ldc + jc, ldc);
            }
        }
    }
    free(planes);
    return NL_OK;
}

nl_status nl_bnn_gemm(const uint64_t *A, const uint64_t *B, int64_t M, int64_t N, int64_t K, int32_t *C) {
    if (K < 0) return nl_set_error(NL_EINVAL, "bnn gemm: K = %lld", (long long)K);
    const int64_t kw = nl_bnn_words(K);
    return nl_bnn_gemm_ex(A, kw, B, kw, M, N, kw, K, C, N);
}
