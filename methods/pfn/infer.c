/* Inference-only PFN forward (pfn.h: nl_pfn_forward_infer): the same function as nl_pfn_forward, computed without
 * the autograd layer. Profiled on the quick entry's evaluation (perf, E 32, 2 layers, 64 datasets per call),
 * nl_pfn_forward spent about a fifth of its time outside arithmetic (three separate q/k/v GEMMs, the
 * [B,T,H,Dh] <-> [B,H,T,Dh] permutes and their copies, the y-encoding concat, attention over the full [T, T] mask
 * whose -inf entries are most of it at small n). Here:
 * q, k and v come from one linear against the stacked weights; attention reads them in place over the unmasked
 * keys only; the linears are one CBLAS sgemm each on pre-transposed weights, the bias preloaded (a hand-written FMA kernel
 * measured 0.0208 ms per dataset against sgemm's 0.0192 and was removed); GELU is the engine's f32
 * kernel (nl_gelu_f32), add + LayerNorm a fused loop; and the last layer runs only for the test tokens (the decoder never
 * reads the context tokens' outputs). Pre-LN models and widths that are not multiples of 8 take nl_pfn_forward
 * with gradient recording off. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <cblas.h>
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "pfn/pfn.h"

typedef float vf8 __attribute__((vector_size(32)));  /* GCC vector extensions: 8 floats (AVX2 / AVX-512 halves) */
typedef int32_t vi8 __attribute__((vector_size(32)));
/* acc + a * b, fused where the target has FMA (the project's -std=c11 turns off GCC's contraction of a*b + c). */
#if defined(__FMA__)
#include <immintrin.h>
static inline vf8 fma8(vf8 a, vf8 b, vf8 acc) { return (vf8)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)acc); }
static inline vf8 bc8(float x) { return (vf8)_mm256_set1_ps(x); } /* one vbroadcastss ({x, x, ...} was 8 inserts) */
#else
static inline vf8 fma8(vf8 a, vf8 b, vf8 acc) { return a * b + acc; }
static inline vf8 bc8(float x) { return (vf8){x, x, x, x, x, x, x, x}; }
#endif

/* nl_vexpf (vmath.h) on 8 lanes: the same Cody-Waite reduction and polynomial, selects as bit masks (the f32
 * exp of the engine's softmax; only called with x <= 0 here). Kept beside nl_vexpf because calling nl_vexpf in an
 * `omp simd` loop instead measured 0.0221 against 0.0189 ms per dataset on the quick entry. */
static inline vf8 vexp8(vf8 x) {
    const vf8 lo = (vf8){0} - 87.33654475f;
    vi8 under = x < lo;
    vf8 xc = (vf8)(((vi8)x & ~under) | ((vi8)lo & under));
    vf8 fx = xc * 1.44269504088896341f;
    fx = (fx + 12582912.0f) - 12582912.0f; /* round to nearest integer */
    vf8 r = xc - fx * 0.693359375f;
    r = r - fx * -2.12194440e-4f;
    vf8 p = (vf8){0} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    vi8 bits = (__builtin_convertvector(fx, vi8) + 127) << 23;
    vf8 y = p * (vf8)bits;
    return (vf8)((vi8)y & ~under); /* exp(x < -87.3) = 0 (the -inf of a padded key too) */
}

/* o [B*T, E] = attention over qkv [B*T, 3E] (row: q | k | v, head h at columns h*Dh .. h*Dh+Dh-1 of each) with the
 * PFN mask: keys j < n for every query, plus the query itself when t >= n. Per (dataset, head) the scaled context
 * keys are transposed once into kt [Dh, np] (np = n rounded up to 8, zero padded); queries go 4 at a time, so
 * that their scores (8 keys per register) and their weighted sums of the values (8 of Dh per register) are 4
 * independent FMA chains. Only the queries t >= t1 are computed. Dh must be a multiple of 8. sc: scratch of
 * Dh * np + 4 * (np + 8) floats. */
static void attend(const float *qkv, float *o, int64_t B, int64_t T, int64_t n, int64_t E, int64_t H, float *sc, int64_t t1) {
    const int64_t Dh = E / H, ld = 3 * E, np = (n + 7) / 8 * 8, ls = np + 8;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *kt = sc, *s = sc + Dh * np; /* kt [Dh, np]; s [4, np + 8]: scores, then weights */
    for (int64_t b = 0; b < B; b++) {
        const float *base = qkv + b * T * ld; /* [T, 3E] of dataset b */
        for (int64_t h = 0; h < H; h++) {
            for (int64_t e = 0; e < Dh; e++) {
                for (int64_t j = 0; j < n; j++) kt[e * np + j] = base[j * ld + E + h * Dh + e] * scale;
                for (int64_t j = n; j < np; j++) kt[e * np + j] = 0;
            }
            for (int64_t t0 = t1; t0 < T; t0 += 4) {
                const int64_t tq = T - t0 < 4 ? T - t0 : 4;
                const float *q[4];
                for (int i = 0; i < 4; i++) q[i] = base + (t0 + (i < tq ? i : tq - 1)) * ld + h * Dh;
                for (int64_t j0 = 0; j0 < np; j0 += 8) {
                    vf8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                    for (int64_t e = 0; e < Dh; e++) {
                        vf8 kv;
                        memcpy(&kv, kt + e * np + j0, sizeof kv);
                        a0 = fma8(bc8(q[0][e]), kv, a0), a1 = fma8(bc8(q[1][e]), kv, a1), a2 = fma8(bc8(q[2][e]), kv, a2), a3 = fma8(bc8(q[3][e]), kv, a3);
                    }
                    memcpy(s + j0, &a0, 32), memcpy(s + ls + j0, &a1, 32), memcpy(s + 2 * ls + j0, &a2, 32), memcpy(s + 3 * ls + j0, &a3, 32);
                }
                float inv[4];
                for (int i = 0; i < 4; i++) { /* softmax of each query's row (8 keys per register); weights 0 beyond its keys */
                    float *si = s + i * ls, self = 0;
                    const int64_t t = t0 + (i < tq ? i : tq - 1);
                    int64_t nk = n;
                    if (t >= n) { /* a test token also attends to itself (key index n) */
                        const float *k = base + t * ld + E + h * Dh;
                        for (int64_t e = 0; e < Dh; e++) self += q[i][e] * k[e];
                        si[nk++] = self * scale;
                    }
                    const int64_t nkp = (nk + 7) / 8 * 8;
                    for (int64_t j = nk; j < nkp; j++) si[j] = -INFINITY;
                    vf8 mv = bc8(-INFINITY), zv = {0};
                    for (int64_t j0 = 0; j0 < nkp; j0 += 8) {
                        vf8 v;
                        memcpy(&v, si + j0, sizeof v);
                        vi8 gt = v > mv;
                        mv = (vf8)(((vi8)v & gt) | ((vi8)mv & ~gt));
                    }
                    float mx = mv[0];
                    for (int l = 1; l < 8; l++) mx = mv[l] > mx ? mv[l] : mx;
                    for (int64_t j0 = 0; j0 < nkp; j0 += 8) {
                        vf8 v;
                        memcpy(&v, si + j0, sizeof v);
                        v = vexp8(v - mx);
                        zv += v;
                        memcpy(si + j0, &v, sizeof v);
                    }
                    float z = 0;
                    for (int l = 0; l < 8; l++) z += zv[l];
                    inv[i] = 1.0f / z; /* applied to the output */
                }
                for (int64_t e0 = 0; e0 < Dh; e0 += 8) { /* out = sum_j w_j v_j (context keys), then the self term */
                    vf8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                    for (int64_t j = 0; j < n; j++) {
                        vf8 v;
                        memcpy(&v, base + j * ld + 2 * E + h * Dh + e0, sizeof v);
                        a0 = fma8(bc8(s[j]), v, a0), a1 = fma8(bc8(s[ls + j]), v, a1), a2 = fma8(bc8(s[2 * ls + j]), v, a2), a3 = fma8(bc8(s[3 * ls + j]), v, a3);
                    }
                    vf8 acc[4] = {a0, a1, a2, a3};
                    for (int i = 0; i < tq; i++) {
                        const int64_t t = t0 + i;
                        if (t >= n) {
                            vf8 v;
                            memcpy(&v, base + t * ld + 2 * E + h * Dh + e0, sizeof v);
                            acc[i] = fma8(bc8(s[i * ls + n]), v, acc[i]);
                        }
                        acc[i] *= inv[i];
                        memcpy(o + (b * T + t) * E + h * Dh + e0, &acc[i], 32);
                    }
                }
            }
        }
    }
}

/* y [R, Out] = x [R, In] @ W^T + b for W [Out, In] given transposed as wt [In, Out]: the bias broadcast into y,
 * then one CBLAS sgemm with beta = 1. */
static void lin(const float *x, int64_t R, int64_t In, const float *wt, const float *b, int64_t Out, float *y) {
    for (int64_t r = 0; r < R; r++) memcpy(y + r * Out, b, (size_t)Out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)Out, (int)In, 1.0f, x, (int)In, wt, (int)Out,
                1.0f, y, (int)Out);
}

/* wt [In, Out] = W^T of the parameter W [Out, In]; b: its bias. Rows appended at column offset off of a wider wt
 * (ldo columns): used to stack W_q, W_k, W_v into one [E, 3E]. */
static void put_t(const nl_var *W, float *wt, int64_t ldo, int64_t off) {
    const int64_t Out = W->val.shape[0], In = W->val.shape[1];
    const float *w = W->val.data;
    for (int64_t o = 0; o < Out; o++)
        for (int64_t k = 0; k < In; k++) wt[k * ldo + off + o] = w[o * In + k];
}

/* x [R, E] = LayerNorm(x + a) (a may be NULL), eps 1e-5, biased variance (as nl_layernorm). */
static void add_ln(float *x, const float *a, int64_t R, int64_t E, const float *g, const float *be) {
    for (int64_t r = 0; r < R; r++) {
        float *xr = x + r * E, mu = 0, var = 0;
        if (a)
            for (int64_t e = 0; e < E; e++) xr[e] += a[r * E + e];
#pragma omp simd reduction(+ : mu)
        for (int64_t e = 0; e < E; e++) mu += xr[e];
        mu /= (float)E;
#pragma omp simd reduction(+ : var)
        for (int64_t e = 0; e < E; e++) var += (xr[e] - mu) * (xr[e] - mu);
        const float is = 1.0f / sqrtf(var / (float)E + 1e-5f);
        for (int64_t e = 0; e < E; e++) xr[e] = (xr[e] - mu) * is * g[e] + be[e];
    }
}

static int fast_ok(const nl_pfn *m) {
    const nl_pfn_config *cf = &m->cfg;
    return !cf->pre_norm && cf->emsize % 8 == 0 && (cf->emsize / cf->n_heads) % 8 == 0 && cf->d_ff % 8 == 0 &&
           cf->d_dec % 8 == 0 && cf->n_buckets % 8 == 0 && m->ex_w->val.dtype == NL_F32;
}

nl_var *nl_pfn_forward_infer(nl_pfn *m, nl_ctx *c, const double *x, const double *y, int64_t B, int64_t T, int64_t n) {
    const nl_pfn_config *cf = &m->cfg;
    const int64_t d = cf->dim, E = cf->emsize, F = cf->d_ff, D = cf->d_dec, K = cf->n_buckets, M = T - n, R = B * T;
    if (nl_pfn_forward_check(y, B, T, n)) return NULL;
    if (!fast_ok(m)) { /* pre-LN or widths not a multiple of 8: the autograd path without recording */
        const int grad = nl_set_grad_enabled(c, 0);
        nl_var *out = nl_pfn_forward(m, c, x, y, B, T, n);
        nl_set_grad_enabled(c, grad);
        return out;
    }
    const int64_t np = (n + 7) / 8 * 8, Dh = E / cf->n_heads, W3 = 3 * E * E + 3 * E;
    const int64_t F2 = F > D ? F : D;
    int64_t sho[2] = {B * M, K};
    nl_var *out = nl_new(c, NL_F32, 2, sho); /* [B*M, K] logits */
    float *h = nl_scratch(c, (size_t)(R * E) * sizeof(float));           /* [R, E] tokens */
    float *qkv = nl_scratch(c, (size_t)(R * 3 * E) * sizeof(float));    /* [R, 3E]; later the FFN hidden [R, F] */
    float *a = nl_scratch(c, (size_t)(R * E) * sizeof(float));           /* [R, E] attention / FFN output */
    float *wt = nl_scratch(c, (size_t)(W3 + E * F2 + F2 * (E > K ? E : K)) * sizeof(float)); /* transposed weights */
    float *sc = nl_scratch(c, (size_t)(Dh * np + 4 * (np + 8)) * sizeof(float));             /* attention scratch */
    float *ht = nl_scratch(c, (size_t)(B * M * (E + D)) * sizeof(float));                   /* [B*M, E], [B*M, D] */
    if (!out || !h || !qkv || !a || !wt || !sc || !ht) return NULL;
    if (R * 3 * E < R * F) { /* the FFN hidden reuses qkv */
        if (!(qkv = nl_scratch(c, (size_t)(R * F) * sizeof(float)))) return NULL;
    }
    /* h = W_x x + b_x (+ W_y y + b_y on the context tokens), in f32 as nl_pfn_forward's linears */
    const float *wx = m->ex_w->val.data, *bx = m->ex_b->val.data, *wy = m->ey_w->val.data, *by = m->ey_b->val.data;
    for (int64_t r = 0; r < R; r++) {
        const int64_t t = r % T;
        const float yv = t < n ? (float)y[r] : 0.0f;
        for (int64_t e = 0; e < E; e++) {
            float v = 0;
            for (int64_t k = 0; k < d; k++) v += (float)x[r * d + k] * wx[e * d + k];
            v += bx[e];
            if (t < n) v += yv * wy[e] + by[e];
            h[r * E + e] = v;
        }
    }
    float *wqkv = wt, *bqkv = wt + 3 * E * E, *w1 = wt + W3, *w2 = w1 + E * F2;
    for (int l = 0; l < cf->n_layers; l++) {
        const nl_pfn_layer *L = &m->layer[l];
        put_t(L->wq, wqkv, 3 * E, 0), put_t(L->wk, wqkv, 3 * E, E), put_t(L->wv, wqkv, 3 * E, 2 * E);
        memcpy(bqkv, L->bq->val.data, (size_t)E * sizeof(float));
        memcpy(bqkv + E, L->bk->val.data, (size_t)E * sizeof(float));
        memcpy(bqkv + 2 * E, L->bv->val.data, (size_t)E * sizeof(float));
        lin(h, R, E, wqkv, bqkv, 3 * E, qkv);
        /* the last layer: the context tokens' outputs are never read (the decoder sees the test tokens only), so
         * past their keys and values only the test tokens are computed (exact; a third less work at mean n) */
        const int last = l == cf->n_layers - 1 && n > 0;
        attend(qkv, a, B, T, n, E, cf->n_heads, sc, last ? n : 0);
        float *hh = h, *aa = a, *st = qkv;
        int64_t RR = R;
        if (last) { /* compact the test rows: h -> ht, attention output -> qkv (read already) */
            for (int64_t b = 0; b < B; b++) {
                memcpy(ht + b * M * E, h + (b * T + n) * E, (size_t)(M * E) * sizeof(float));
                memcpy(qkv + b * M * E, a + (b * T + n) * E, (size_t)(M * E) * sizeof(float));
            }
            hh = ht, aa = qkv, st = a, RR = B * M;
        }
        put_t(L->wo, w1, E, 0);
        lin(aa, RR, E, w1, L->bo->val.data, E, st); /* the projection */
        add_ln(hh, st, RR, E, L->n1_w->val.data, L->n1_b->val.data);
        put_t(L->fc1_w, w1, F, 0), put_t(L->fc2_w, w2, E, 0);
        lin(hh, RR, E, w1, L->fc1_b->val.data, F, qkv); /* FFN hidden [RR, F] */
        nl_gelu_f32(qkv, qkv, RR * F);
        lin(qkv, RR, F, w2, L->fc2_b->val.data, E, a);
        add_ln(hh, a, RR, E, L->n2_w->val.data, L->n2_b->val.data);
    }
    float *z = ht + B * M * E; /* [B*M, D] */
    if (n == 0) memcpy(ht, h, (size_t)(R * E) * sizeof(float)); /* all tokens are test tokens (M = T) */
    put_t(m->d1_w, w1, D, 0), put_t(m->d2_w, w2, K, 0);
    lin(ht, B * M, E, w1, m->d1_b->val.data, D, z);
    nl_gelu_f32(z, z, B * M * D);
    lin(z, B * M, D, w2, m->d2_b->val.data, K, out->val.data);
    return out;
}
