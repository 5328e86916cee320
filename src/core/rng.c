/* Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy
 * as 1, 2, 3", SC 2011), and the distributions built on it.
 *
 * Layout of one Philox block: key = seed (k0 = low 32 bits, k1 = high 32 bits); counter words
 * (c0, c1) = counter (low, high), (c2, c3) = stream (low, high). Every block gives 4 32-bit words.
 *
 * Scalar draws (nl_rng_u32, uniform, normal, ...) use one block per draw and advance the counter by one per
 * block used (rejection samplers use several). Fills: element k (flat row-major logical index) of a fill of
 * n elements uses block base + k/2 and takes the first (k even: words 0,1) or second (k odd: words 2,3) half
 * of it; for normals one block gives the Box-Muller pair (z0, z1) and element k takes z_(k%2). The counter then
 * advances by ceil(n/2). So the value of every element depends only on (seed, stream, base, k), never on the
 * number of threads or on how the loop is split. */
#include "nnlab/rng.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* Fills run in parallel above this many blocks (2 elements per block). */
#define NL_RNG_PAR_BLOCKS 4096

static inline void philox_round(uint32_t c[4], const uint32_t k[2]) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c[1] ^ k[0];
    uint32_t n2 = hi0 ^ c[3] ^ k[1];
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
}

static inline void philox_block(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4]) {
    uint32_t c[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int r = 0; r < 10; r++) {
        if (r) {
            k[0] += PHILOX_W0;
            k[1] += PHILOX_W1;
        }
        philox_round(c, k);
    }
    memcpy(out, c, sizeof c);
}

void nl_philox(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4]) {
    philox_block(seed, stream, counter, out);
}

void nl_rng_init(nl_rng *r, uint64_t seed, uint64_t stream) {
    r->seed = seed;
    r->stream = stream;
    r->counter = 0;
}

/* ---- word -> number maps ---- */
static inline uint64_t w64(uint32_t lo, uint32_t hi) { return ((uint64_t)hi << 32) | lo; }
/* [0, 1) with 53 random bits. */
static inline double u53(uint64_t x) { return (double)(x >> 11) * 0x1.0p-53; }
/* (0, 1) strictly: 52 random bits, centred in their cell (never 0, never 1). */
static inline double u_open(uint64_t x) { return ((double)(x >> 12) + 0.5) * 0x1.0p-52; }
/* Box-Muller on one block: two independent N(0,1). u1 in (0, 1] so the log is finite. */
static inline void box_muller(const uint32_t w[4], double *z0, double *z1) {
    double u1 = 1.0 - u53(w64(w[0], w[1]));
    double u2 = u53(w64(w[2], w[3]));
    double rad = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586476925286766559 * u2;
    *z0 = rad * cos(th);
    *z1 = rad * sin(th);
}
static inline double gumbel_of(uint64_t x) { return -log(-log(u_open(x))); }

static inline void next_block(nl_rng *r, uint32_t w[4]) { philox_block(r->seed, r->stream, r->counter++, w); }

/* ---- scalar draws ---- */
uint32_t nl_rng_u32(nl_rng *r) {
    uint32_t w[4];
    next_block(r, w);
    return w[0];
}

double nl_rng_uniform(nl_rng *r) {
    uint32_t w[4];
    next_block(r, w);
    return u53(w64(w[0], w[1]));
}

double nl_rng_normal(nl_rng *r) {
    uint32_t w[4];
    double z0, z1;
    next_block(r, w);
    box_muller(w, &z0, &z1);
    return z0;
}

int nl_rng_bernoulli(nl_rng *r, double p) { return nl_rng_uniform(r) < p; }

double nl_rng_gumbel(nl_rng *r) {
    uint32_t w[4];
    next_block(r, w);
    return gumbel_of(w64(w[0], w[1]));
}

/* Marsaglia & Tsang (2000), "A simple method for generating gamma variables". For shape < 1 (boost):
 * Gamma(a) = Gamma(a + 1) * U^(1/a). Each trial uses two blocks: one for the normal (Box-Muller, first value)
 * and one for the acceptance uniform. Shape <= 0 or not finite gives NaN. */
double nl_rng_gamma(nl_rng *r, double shape) {
    if (!(shape > 0) || !isfinite(shape)) return NAN;
    if (shape < 1.0) {
        double g = nl_rng_gamma(r, shape + 1.0);
        uint32_t w[4];
        next_block(r, w);
        double u = u_open(w64(w[0], w[1]));
        return g * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        uint32_t w[4];
        double x, z1, v;
        next_block(r, w);
        box_muller(w, &x, &z1);
        v = 1.0 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        next_block(r, w);
        double u = u_open(w64(w[0], w[1]));
        double x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2) return d * v;
        if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v))) return d * v;
    }
}

int64_t nl_rng_below(nl_rng *r, int64_t n) {
    if (n <= 1) return 0;
    uint64_t un = (uint64_t)n;
    /* reject the lowest (2^64 mod n) values so that the remaining range is a multiple of n */
    uint64_t thresh = (0 - un) % un;
    for (;;) {
        uint32_t w[4];
        next_block(r, w);
        uint64_t x = w64(w[0], w[1]);
        if (x >= thresh) return (int64_t)(x % un);
        /* second chance from the same block (keeps the expected cost at ~1 block) */
        x = w64(w[2], w[3]);
        if (x >= thresh) return (int64_t)(x % un);
    }
}

int64_t nl_rng_categorical(nl_rng *r, const double *p, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!(p[i] >= 0) || !isfinite(p[i])) {
            nl_set_error(NL_EINVAL, "rng_categorical: p[%lld] = %g is negative or not finite", (long long)i, p[i]);
            return -1;
        }
        s += p[i];
    }
    if (!(s > 0) || !isfinite(s)) {
        nl_set_error(NL_EINVAL, "rng_categorical: probabilities sum to %g (need > 0)", s);
        return -1;
    }
    double u = nl_rng_uniform(r) * s, acc = 0;
    int64_t last = -1;
    for (int64_t i = 0; i < n; i++) {
        if (p[i] <= 0) continue;
        acc += p[i];
        last = i;
        if (u < acc) return i;
    }
    return last; /* rounding: u landed at the very top of the total */
}

void nl_rng_permutation(nl_rng *r, int64_t *perm, int64_t n) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = nl_rng_below(r, i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---- fills ---- */
typedef enum { FILL_UNIFORM, FILL_NORMAL, FILL_BERNOULLI, FILL_GUMBEL } fill_kind;

/* Memory offset (elements) of flat logical index k. */
static inline int64_t flat_offset(const nl_tensor *t, int64_t k) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t s = t->shape[d];
        off += (k % s) * t->stride[d];
        k /= s;
    }
    return off;
}

static inline void fill_pair(fill_kind kind, const uint32_t w[4], double a, double b, double out[2]) {
    switch (kind) {
    case FILL_UNIFORM:
        out[0] = a + (b - a) * u53(w64(w[0], w[1]));
        out[1] = a + (b - a) * u53(w64(w[2], w[3]));
        break;
    case FILL_NORMAL: {
        double z0, z1;
        box_muller(w, &z0, &z1);
        out[0] = a + b * z0;
        out[1] = a + b * z1;
        break;
    }
    case FILL_BERNOULLI:
        out[0] = u53(w64(w[0], w[1])) < a ? 1.0 : 0.0;
        out[1] = u53(w64(w[2], w[3])) < a ? 1.0 : 0.0;
        break;
    case FILL_GUMBEL:
        out[0] = gumbel_of(w64(w[0], w[1]));
        out[1] = gumbel_of(w64(w[2], w[3]));
        break;
    }
}

static void rng_fill(nl_rng *r, nl_tensor *t, fill_kind kind, double a, double b) {
    if (!t || !t->data) return;
    int64_t n = nl_tensor_numel(t);
    if (n <= 0) return;
    int64_t nb = (n + 1) / 2;
    const uint64_t seed = r->seed, stream = r->stream, base = r->counter;
    const int contig = nl_tensor_is_contiguous(t);
    const int f64 = t->dtype == NL_F64;
    char *data = (char *)t->data;
#pragma omp parallel for schedule(static) if (nb > NL_RNG_PAR_BLOCKS)
    for (int64_t j = 0; j < nb; j++) {
        uint32_t w[4];
        double v[2];
        philox_block(seed, stream, base + (uint64_t)j, w);
        fill_pair(kind, w, a, b, v);
        for (int h = 0; h < 2; h++) {
            int64_t k = 2 * j + h;
            if (k >= n) break;
            int64_t off = contig ? k : flat_offset(t, k);
            if (f64) {
                ((double *)data)[off] = v[h];
            } else {
                float fv = (float)v[h];
                /* rounding to f32 must not reach the excluded upper end of [lo, hi) */
                if (kind == FILL_UNIFORM && b > a && fv >= (float)b) fv = nextafterf((float)b, -INFINITY);
                ((float *)data)[off] = fv;
            }
        }
    }
    r->counter = base + (uint64_t)nb;
}

void nl_rng_fill_uniform(nl_rng *r, nl_tensor *t, double lo, double hi) { rng_fill(r, t, FILL_UNIFORM, lo, hi); }
void nl_rng_fill_normal(nl_rng *r, nl_tensor *t, double mean, double std) { rng_fill(r, t, FILL_NORMAL, mean, std); }
void nl_rng_fill_bernoulli(nl_rng *r, nl_tensor *t, double p) { rng_fill(r, t, FILL_BERNOULLI, p, 0); }
void nl_rng_fill_gumbel(nl_rng *r, nl_tensor *t) { rng_fill(r, t, FILL_GUMBEL, 0, 0); }
