/* Inverted dropout with a counter-based (Philox4x32-10) mask.
 *
 * Mask layout: the elements (flat row-major index k) are split into tiles of DROP_TILE = 1024; tile
 * t = k / 1024 uses the 256 Philox blocks at counters base + 256 t + b (b = 0..255, base = rng->counter,
 * key = rng->seed, stream = rng->stream, exactly as nl_philox), and element k takes word q = (k % 1024) / 256 of
 * block b = k % 256. It is kept when that 32-bit word is below round((1-p) * 2^32). So every element depends
 * only on (seed, stream, base, k): the mask does not depend on the number of threads or on the split of the
 * work. The rng counter then advances by 256 per (started) tile. The mask (1 byte per element) is saved for
 * backward: dx = g * mask / (1 - p). Philox is inlined here (same rounds and constants as src/core/rng.c,
 * checked against nl_philox by the tests) so that the generator loop vectorises. */
#include "internal/dropmask.h"
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include <math.h>
#include <string.h>

#define DROP_PAR_MIN 16384  /* elements below which loops stay serial */
#define DROP_BLOCKS 256     /* Philox blocks per tile */
#define DROP_TILE (4 * DROP_BLOCKS)

/* Philox4x32-10 on (counter, stream) with key seed: out words w0..w3 (as nl_philox's out[0..3]). */
static inline void drop_philox(uint64_t ctr, uint64_t stream, uint64_t seed, uint32_t *w0, uint32_t *w1,
                               uint32_t *w2, uint32_t *w3) {
    uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        if (r) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = (uint32_t)p1;
        c2 = n2;
        c3 = (uint32_t)p0;
    }
    *w0 = c0;
    *w1 = c1;
    *w2 = c2;
    *w3 = c3;
}

#define DEF_DROP(T)                                                                                     \
    static void drop_fwd_##T(const T *x, T *y, uint8_t *mask, int64_t n, uint32_t thr, double scale,    \
                             const nl_rng *r) {                                                         \
        const int64_t ntile = (n + DROP_TILE - 1) / DROP_TILE;                                          \
        const T sc = (T)scale;                                                                          \
        const uint64_t seed = r->seed, stream = r->stream, base = r->counter;                           \
        const int par = n > DROP_PAR_MIN;                                                               \
        _Pragma("omp parallel for if (par) schedule(static)")                                           \
        for (int64_t t = 0; t < ntile; t++) {                                                           \
            uint32_t w[4][DROP_BLOCKS];                                                                 \
            const int64_t e0 = t * DROP_TILE, rem = n - e0 < DROP_TILE ? n - e0 : DROP_TILE;            \
            const int64_t nb = rem < DROP_BLOCKS ? rem : DROP_BLOCKS;                                   \
            const uint64_t cb = base + (uint64_t)t * DROP_BLOCKS;                                       \
            _Pragma("omp simd")                                                                         \
            for (int64_t b = 0; b < nb; b++)                                                            \
                drop_philox(cb + (uint64_t)b, stream, seed, &w[0][b], &w[1][b], &w[2][b], &w[3][b]);    \
            for (int q = 0; q < 4; q++) {                                                               \
                const int64_t lo = (int64_t)q * DROP_BLOCKS;                                            \
                const int64_t cnt = rem - lo < DROP_BLOCKS ? rem - lo : DROP_BLOCKS;                    \
                const uint32_t *wq = w[q];                                                              \
                const T *xq = x + e0 + lo;                                                              \
                T *yq = y + e0 + lo;                                                                    \
                uint8_t *mq = mask + e0 + lo;                                                           \
                _Pragma("omp simd")                                                                     \
                for (int64_t b = 0; b < cnt; b++) {                                                     \
                    const int keep = wq[b] < thr;                                                       \
                    mq[b] = (uint8_t)keep;                                                              \
                    yq[b] = keep ? xq[b] * sc : (T)0;                                                   \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
    static void drop_bwd_##T(const T *g, T *gx, const uint8_t *mask, int64_t n, double scale) {         \
        const T sc = (T)scale;                                                                          \
        const int par = n > DROP_PAR_MIN;                                                               \
        _Pragma("omp parallel for simd if (parallel: par) schedule(static)")                            \
        for (int64_t i = 0; i < n; i++) gx[i] += mask[i] ? g[i] * sc : (T)0;                            \
    }
DEF_DROP(float)
DEF_DROP(double)

/* P(keep) = thr / 2^32 */
static uint32_t drop_threshold(double p) {
    const double t = nearbyint(ldexp(1.0 - p, 32));
    return t >= 4294967295.0 ? 0xFFFFFFFFu : (uint32_t)t;
}

/* The mask of drop_fwd alone (same tiles, blocks, words and threshold): mask [n]. */
void nl__dropout_mask(uint8_t *mask, int64_t n, double p, nl_rng *r) {
    const int64_t ntile = (n + DROP_TILE - 1) / DROP_TILE;
    const uint32_t thr = drop_threshold(p);
    const uint64_t seed = r->seed, stream = r->stream, base = r->counter;
    const int par = n > DROP_PAR_MIN;
#pragma omp parallel for if (par) schedule(static)
    for (int64_t t = 0; t < ntile; t++) {
        uint32_t w[4][DROP_BLOCKS];
        const int64_t e0 = t * DROP_TILE, rem = n - e0 < DROP_TILE ? n - e0 : DROP_TILE;
        const int64_t nb = rem < DROP_BLOCKS ? rem : DROP_BLOCKS;
        const uint64_t cb = base + (uint64_t)t * DROP_BLOCKS;
#pragma omp simd
        for (int64_t b = 0; b < nb; b++)
            drop_philox(cb + (uint64_t)b, stream, seed, &w[0][b], &w[1][b], &w[2][b], &w[3][b]);
        for (int q = 0; q < 4; q++) {
            const int64_t lo = (int64_t)q * DROP_BLOCKS;
            const int64_t cnt = rem - lo < DROP_BLOCKS ? rem - lo : DROP_BLOCKS;
            uint8_t *mq = mask + e0 + lo;
#pragma omp simd
            for (int64_t b = 0; b < cnt; b++) mq[b] = (uint8_t)(w[q][b] < thr);
        }
    }
    r->counter += (uint64_t)ntile * DROP_BLOCKS;
}

static void drop_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *gx = nl_grad(c, n->in[0]);
    if (!gx) return;
    const nl_tensor *g = nl_node_grad_out(n);
    int64_t N = nl_tensor_numel(g);
    if (g->dtype == NL_F32) drop_bwd_float(g->data, gx->data, n->saved, N, n->f[0]);
    else drop_bwd_double(g->data, gx->data, n->saved, N, n->f[0]);
}

nl_var *nl_dropout(nl_ctx *c, nl_var *x, double p, int train, nl_rng *rng) {
    NL_REQUIRE(x);
    if (!(p >= 0 && p < 1)) {
        nl_set_error(NL_EINVAL, "dropout: p = %g outside [0, 1)", p);
        return NULL;
    }
    if (!train || p == 0) return x; /* identity: the same var, no copy */
    if (!rng) return nl_op_fail(NL_EINVAL, "dropout", "training mode needs an rng", x, NULL);
    nl_tensor X = nl_contig(c, &x->val);
    if (!X.data) return NULL;
    const int64_t n = nl_tensor_numel(&X);
    nl_var *out = nl_op_out(c, X.dtype, X.ndim, X.shape);
    if (!out) return NULL;
    uint8_t *mask = nl_scratch(c, (size_t)(n ? n : 1));
    if (!mask) return NULL;
    const double scale = 1.0 / (1.0 - p);
    const uint32_t thr = drop_threshold(p);
    if (n > 0) {
        if (X.dtype == NL_F32) drop_fwd_float(X.data, out->val.data, mask, n, thr, scale, rng);
        else drop_fwd_double(X.data, out->val.data, mask, n, thr, scale, rng);
    }
    rng->counter += (uint64_t)((n + DROP_TILE - 1) / DROP_TILE) * DROP_BLOCKS;
    nl_var *in[1] = {x};
    nl_node *node = nl_op_record(c, "dropout", out, drop_backward, 1, in);
    if (node) {
        node->saved = mask;
        node->f[0] = scale;
        node->f[1] = p;
    }
    return out;
}
