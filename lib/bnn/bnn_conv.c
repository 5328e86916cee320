/* bnn/bnn_conv.c — binary convolution (im2col on bits + the binary GEMM, exact zero padding), threshold folding and
 * the fused int32 -> bits op, max-pooling on bits. */
#include "bnn/bnn.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ======================================= convolution ======================================= */
nl_status nl_bnn_conv_out(const nl_bnn_conv_geom *g, int64_t *oh, int64_t *ow) {
    if (!g) return nl_set_error(NL_EINVAL, "bnn conv: NULL geometry");
    if (g->n < 0 || g->h < 1 || g->w < 1 || g->c < 1 || g->oc < 1 || g->kh < 1 || g->kw < 1 || g->sh < 1 || g->sw < 1 ||
        g->ph < 0 || g->pw < 0 || g->ph >= g->kh || g->pw >= g->kw)
        return nl_set_error(NL_EINVAL,
                            "bnn conv: bad geometry: input [%lld, %lld, %lld, %lld], filters [%lld, %lld, %lld], stride (%lld, %lld), "
                            "padding (%lld, %lld) (sizes >= 1, strides >= 1, 0 <= padding < kernel)",
                            (long long)g->n, (long long)g->h, (long long)g->w, (long long)g->c, (long long)g->oc, (long long)g->kh,
                            (long long)g->kw, (long long)g->sh, (long long)g->sw, (long long)g->ph, (long long)g->pw);
    if (g->h + 2 * g->ph < g->kh || g->w + 2 * g->pw < g->kw)
        return nl_set_error(NL_ESHAPE, "bnn conv: kernel %lld x %lld larger than the padded input %lld x %lld", (long long)g->kh,
                            (long long)g->kw, (long long)(g->h + 2 * g->ph), (long long)(g->w + 2 * g->pw));
    if (g->kh * g->kw * g->c > INT32_MAX) return nl_set_error(NL_EINVAL, "bnn conv: kh kw c = %lld exceeds int32", (long long)(g->kh * g->kw * g->c));
    *oh = (g->h + 2 * g->ph - g->kh) / g->sh + 1;
    *ow = (g->w + 2 * g->pw - g->kw) / g->sw + 1;
    return NL_OK;
}

/* OR the c values of src (cw words, zero tail) into dst at bit offset off (dst zeroed beforehand) */
static inline void bits_append(uint64_t *dst, int64_t off, const uint64_t *src, int64_t c) {
    for (int64_t q = 0; q * 64 < c; q++) {
        const uint64_t v = src[q];
        const int64_t p = off + 64 * q, n = c - 64 * q < 64 ? c - 64 * q : 64, sh = p % 64;
        dst[p / 64] |= v << sh;
        if (sh && sh + n > 64) dst[p / 64 + 1] |= v >> (64 - sh);
    }
}

nl_status nl_bnn_conv2d(const nl_bnn_conv_geom *g, const uint64_t *x, const uint64_t *wt, int32_t *out) {
    int64_t oh, ow;
    nl_status st = nl_bnn_conv_out(g, &oh, &ow);
    if (st != NL_OK) return st;
    if (!g->n) return NL_OK;
    if (!x || !wt || !out) return nl_set_error(NL_EINVAL, "bnn conv: NULL buffer");
    const int64_t cw = nl_bnn_words(g->c), taps = g->kh * g->kw, K = taps * g->c;
    /* Patch rows: when c is a multiple of 64 each tap is cw whole words, copied as they are; otherwise the taps' c bits
     * are concatenated (tap t at bit t c) so that no word is mostly tail: c = 16 gives 3 words per 3x3 patch, not 9.
     * The weights are then repacked the same way once per call. */
    const int dense = g->c % 64 != 0;
    const int64_t rw = dense ? nl_bnn_words(K) : taps * cw; /* words per patch row */
    const int64_t P = g->n * oh * ow;                        /* patch rows */
    uint64_t *patch = malloc((size_t)(P * rw) * 8);          /* [P, rw] */
    int32_t *wz = malloc((size_t)(g->oc * taps) * 4); /* [oc, taps]: what a zero (padded) tap adds: c - 2 popcount(w_tap) */
    uint64_t *wd = dense ? calloc((size_t)(g->oc * rw), 8) : NULL; /* [oc, rw] concatenated weights */
    if (!patch || !wz || (dense && !wd)) {
        free(patch), free(wz), free(wd);
        return nl_set_error(NL_ENOMEM, "bnn conv: %lld patch rows of %lld words: out of memory", (long long)P, (long long)rw);
    }
    for (int64_t o = 0; o < g->oc * taps; o++) {
        int64_t p = 0;
        for (int64_t q = 0; q < cw; q++) p += __builtin_popcountll(wt[o * cw + q]);
        wz[o] = (int32_t)(g->c - 2 * p);
    }
    if (dense)
        for (int64_t o = 0; o < g->oc; o++)
            for (int64_t t = 0; t < taps; t++) bits_append(wd + o * rw, t * g->c, wt + (o * taps + t) * cw, g->c);
#pragma omp parallel for schedule(static) if (P * rw > (1 << 16))
    for (int64_t r = 0; r < P; r++) {
        const int64_t i = r / (oh * ow), oy = r / ow % oh, ox = r % ow;
        uint64_t *dst = patch + r * rw;
        if (dense)
            for (int64_t q = 0; q < rw; q++) dst[q] = 0;
        for (int64_t a = 0; a < g->kh; a++) {
            const int64_t y = oy * g->sh - g->ph + a;
            for (int64_t b = 0; b < g->kw; b++) {
                const int64_t xx = ox * g->sw - g->pw + b, t = a * g->kw + b;
                const int valid = y >= 0 && y < g->h && xx >= 0 && xx < g->w;
                const uint64_t *src = valid ? x + ((i * g->h + y) * g->w + xx) * cw : NULL;
                if (dense) {
                    if (valid) bits_append(dst, t * g->c, src, g->c);
                } else {
                    uint64_t *d = dst + t * cw; /* cw is 1-4 words: no memcpy call */
                    for (int64_t q = 0; q < cw; q++) d[q] = valid ? src[q] : 0;
                }
            }
        }
    }
    st = nl_bnn_gemm_ex(patch, rw, dense ? wd : wt, rw, P, g->oc, rw, K, out, g->oc);
    if (st == NL_OK && (g->ph || g->pw)) {
        /* border outputs: remove the zero bits' contribution at each padded tap (the tap must add 0) */
#pragma omp parallel for schedule(static) if (P * g->oc > (1 << 16))
        for (int64_t r = 0; r < P; r++) {
            const int64_t oy = r / ow % oh, ox = r % ow;
            const int64_t y0 = oy * g->sh - g->ph, x0 = ox * g->sw - g->pw;
            if (y0 >= 0 && y0 + g->kh <= g->h && x0 >= 0 && x0 + g->kw <= g->w) continue;
            int32_t *o = out + r * g->oc;
            for (int64_t a = 0; a < g->kh; a++)
                for (int64_t b = 0; b < g->kw; b++) {
                    const int64_t y = y0 + a, xx = x0 + b;
                    if (y >= 0 && y < g->h && xx >= 0 && xx < g->w) continue;
                    const int64_t t = a * g->kw + b;
                    for (int64_t q = 0; q < g->oc; q++) o[q] -= wz[q * taps + t];
                }
        }
    }
    free(patch), free(wz), free(wd);
    return st;
}

/* ======================================= thresholds ======================================= */
nl_status nl_bnn_thresh_init(nl_bnn_thresh *th, int64_t c) {
    memset(th, 0, sizeof *th);
    if (c < 0) return nl_set_error(NL_EINVAL, "bnn thresh_init: %lld channels", (long long)c);
    th->t = malloc((size_t)(c ? c : 1) * sizeof *th->t);
    th->flip = calloc((size_t)(c ? c : 1), 1);
    if (!th->t || !th->flip) {
        nl_bnn_thresh_free(th);
        return nl_set_error(NL_ENOMEM, "bnn thresh_init: out of memory");
    }
    for (int64_t i = 0; i < c; i++) th->t[i] = INT32_MIN;
    th->c = c;
    return NL_OK;
}

void nl_bnn_thresh_free(nl_bnn_thresh *th) {
    free(th->t), free(th->flip);
    memset(th, 0, sizeof *th);
}

static int fbit(nl_bnn_fn f, int64_t c, int32_t s, void *ctx) { return f(c, s, ctx) >= 0.0f; }

nl_status nl_bnn_fold_thresholds(nl_bnn_thresh *th, int64_t K, nl_bnn_fn f, void *ctx) {
    if (!th || !f || (th->c && (!th->t || !th->flip))) return nl_set_error(NL_EINVAL, "bnn fold: NULL argument");
    if (K < 0 || K > INT32_MAX / 2) return nl_set_error(NL_EINVAL, "bnn fold: K = %lld outside [0, 2^30]", (long long)K);
    const int32_t lo0 = (int32_t)-K, hi0 = (int32_t)K;
    for (int64_t c = 0; c < th->c; c++) {
        const int blo = fbit(f, c, lo0, ctx), bhi = fbit(f, c, hi0, ctx);
        if (blo == bhi) { /* constant over [-K, K] (checked below) */
            th->t[c] = INT32_MIN, th->flip[c] = (uint8_t)!blo;
        } else {
            /* the first s whose bit differs from bit(-K): bit(lo) = blo, bit(hi) != blo */
            int32_t lo = lo0, hi = hi0;
            while (hi - lo > 1) {
                const int32_t mid = lo + (hi - lo) / 2;
                if (fbit(f, c, mid, ctx) == blo) lo = mid;
                else hi = mid;
            }
            th->t[c] = hi, th->flip[c] = (uint8_t)blo; /* increasing: bit = s >= t; decreasing: bit = !(s >= t) */
        }
        for (int32_t s = lo0; s <= hi0; s++) {
            const int want = fbit(f, c, s, ctx), got = nl_bnn_thresh_bit(th, c, s);
            if (want != got)
                return nl_set_error(NL_EINVAL,
                                    "bnn fold: channel %lld: f is not monotone in s (bit %d at s = %d, but the step found at "
                                    "t = %d, flip %d gives %d)",
                                    (long long)c, want, s, th->t[c], th->flip[c], got);
        }
    }
    return NL_OK;
}

nl_status nl_bnn_threshold_pack(const int32_t *s, int64_t rows, const nl_bnn_thresh *th, uint64_t *bits) {
    if (!th || rows < 0) return nl_set_error(NL_EINVAL, "bnn threshold_pack: bad arguments");
    const int64_t c = th->c, cw = nl_bnn_words(c);
    if (rows && c && (!s || !bits)) return nl_set_error(NL_EINVAL, "bnn threshold_pack: NULL buffer");
#pragma omp parallel for schedule(static) if (rows * c > (1 << 18))
    for (int64_t r = 0; r < rows; r++) {
        const int32_t *sr = s + r * c;
        for (int64_t w = 0; w < cw; w++) {
            const int64_t j0 = w * 64, n = c - j0 < 64 ? c - j0 : 64;
            uint64_t v = 0;
            for (int64_t j = 0; j < n; j++) v |= (uint64_t)((sr[j0 + j] >= th->t[j0 + j]) ^ th->flip[j0 + j]) << j;
            bits[r * cw + w] = v;
        }
    }
    return NL_OK;
}

/* ======================================= max-pooling ======================================= */
nl_status nl_bnn_maxpool_bits(const uint64_t *in, int64_t n, int64_t h, int64_t w, int64_t c, int64_t k, int64_t stride,
                              int64_t pad, uint64_t *out) {
    if (n < 0 || h < 1 || w < 1 || c < 1 || k < 1 || stride < 1 || pad < 0 || pad > k / 2 || h + 2 * pad < k || w + 2 * pad < k)
        return nl_set_error(NL_EINVAL, "bnn maxpool: bad geometry: input [%lld, %lld, %lld, %lld], window %lld, stride %lld, pad %lld",
                            (long long)n, (long long)h, (long long)w, (long long)c, (long long)k, (long long)stride, (long long)pad);
    if (n && (!in || !out)) return nl_set_error(NL_EINVAL, "bnn maxpool: NULL buffer");
    const int64_t cw = nl_bnn_words(c), oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    const int64_t P = n * oh * ow;
#pragma omp parallel for schedule(static) if (P * k * k * cw > (1 << 18))
    for (int64_t r = 0; r < P; r++) {
        const int64_t i = r / (oh * ow), oy = r / ow % oh, ox = r % ow;
        uint64_t *d = out + r * cw;
        for (int64_t q = 0; q < cw; q++) d[q] = 0;
        for (int64_t a = 0; a < k; a++) {
            const int64_t y = oy * stride - pad + a;
            if (y < 0 || y >= h) continue;
            for (int64_t b = 0; b < k; b++) {
                const int64_t xx = ox * stride - pad + b;
                if (xx < 0 || xx >= w) continue;
                const uint64_t *src = in + ((i * h + y) * w + xx) * cw;
                for (int64_t q = 0; q < cw; q++) d[q] |= src[q];
            }
        }
    }
    return NL_OK;
}
