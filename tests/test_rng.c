/* Philox4x32-10 known answers, distribution moments, determinism and thread independence of fills. */
#include "nltest.h"

#define NDRAW 1000000

/* Known-answer vectors of Random123 (kat_vectors, philox4x32 10 rounds): counter c0..c3, key k0 k1.
 * nnlab maps key = seed (k0 low, k1 high), counter = (c1:c0), stream = (c3:c2). */
static void test_kat(void) {
    struct {
        uint32_t c[4], k[2], out[4];
    } v[3] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}, {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}, {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int i = 0; i < 3; i++) {
        uint64_t seed = ((uint64_t)v[i].k[1] << 32) | v[i].k[0];
        uint64_t counter = ((uint64_t)v[i].c[1] << 32) | v[i].c[0];
        uint64_t stream = ((uint64_t)v[i].c[3] << 32) | v[i].c[2];
        uint32_t out[4];
        nl_philox(seed, stream, counter, out);
        for (int j = 0; j < 4; j++) NLT_CHECK(out[j] == v[i].out[j], "KAT %d word %d: got %08x want %08x", i, j, out[j], v[i].out[j]);
    }
    /* the generator's u32 is word 0 of the block at its counter, and the counter advances by one */
    nl_rng r;
    nl_rng_init(&r, 0x299f31d0a4093822ull, 0x0370734413198a2eull);
    r.counter = 0x85a308d3243f6a88ull;
    NLT_CHECK(nl_rng_u32(&r) == 0xd16cfe09u, "u32 from KAT 3");
    NLT_CHECK(r.counter == 0x85a308d3243f6a89ull, "counter advanced by one");
}

typedef struct {
    double mean, var, skew, kurt;
} moments;

static moments moments_of(const double *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m += x[i];
    m /= (double)n;
    double m2 = 0, m3 = 0, m4 = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - m, d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    m2 /= (double)n;
    m3 /= (double)n;
    m4 /= (double)n;
    moments r = {m, m2, m3 / pow(m2, 1.5), m4 / (m2 * m2)};
    return r;
}

static void test_uniform_moments(void) {
    double *x = malloc(NDRAW * sizeof *x);
    nl_rng r;
    nl_rng_init(&r, 42, 0);
    int64_t shape[1] = {NDRAW};
    nl_tensor t = nl_tensor_wrap(x, NL_F64, 1, shape);
    nl_rng_fill_uniform(&r, &t, 0.0, 1.0);
    NLT_CHECK(r.counter == NDRAW / 2, "fill advances the counter by ceil(n/2): %llu", (unsigned long long)r.counter);
    double lo = 1, hi = 0;
    for (int i = 0; i < NDRAW; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    NLT_CHECK(lo >= 0 && hi < 1, "range [%g, %g]", lo, hi);
    moments m = moments_of(x, NDRAW);
    /* sd of the mean = sqrt(1/12/n) = 2.9e-4 */
    NLT_NEAR(m.mean, 0.5, 0.0015);
    NLT_NEAR(m.var, 1.0 / 12.0, 0.0005);
    /* scalar draws, shifted range */
    for (int i = 0; i < NDRAW; i++) x[i] = nl_rng_uniform(&r);
    m = moments_of(x, NDRAW);
    NLT_NEAR(m.mean, 0.5, 0.0015);
    NLT_NEAR(m.var, 1.0 / 12.0, 0.0005);
    nl_rng_fill_uniform(&r, &t, -2.0, 4.0);
    m = moments_of(x, NDRAW);
    NLT_NEAR(m.mean, 1.0, 0.009);
    NLT_NEAR(m.var, 3.0, 0.02);
    /* f32 fill stays in [lo, hi) */
    float *xf = malloc(NDRAW * sizeof *xf);
    nl_tensor tf = nl_tensor_wrap(xf, NL_F32, 1, shape);
    nl_rng_fill_uniform(&r, &tf, 0.0, 1.0);
    int bad = 0;
    for (int i = 0; i < NDRAW; i++) bad += !(xf[i] >= 0.0f && xf[i] < 1.0f);
    NLT_CHECK(bad == 0, "%d f32 uniforms outside [0,1)", bad);
    free(xf);
    free(x);
}

static void test_normal_moments(void) {
    double *x = malloc(NDRAW * sizeof *x);
    nl_rng r;
    nl_rng_init(&r, 7, 3);
    int64_t shape[1] = {NDRAW};
    nl_tensor t = nl_tensor_wrap(x, NL_F64, 1, shape);
    nl_rng_fill_normal(&r, &t, 0.0, 1.0);
    moments m = moments_of(x, NDRAW);
    /* sds: mean 1e-3, var sqrt(2/n) = 1.4e-3, skew sqrt(6/n) = 2.4e-3, kurtosis sqrt(24/n) = 4.9e-3 */
    NLT_NEAR(m.mean, 0.0, 0.005);
    NLT_NEAR(m.var, 1.0, 0.007);
    NLT_NEAR(m.skew, 0.0, 0.012);
    NLT_NEAR(m.kurt, 3.0, 0.025);
    /* the two halves of each Box-Muller pair are uncorrelated */
    double cxy = 0;
    for (int i = 0; i < NDRAW; i += 2) cxy += x[i] * x[i + 1];
    NLT_NEAR(cxy / (NDRAW / 2), 0.0, 0.007);
    nl_rng_fill_normal(&r, &t, 3.0, 2.0);
    m = moments_of(x, NDRAW);
    NLT_NEAR(m.mean, 3.0, 0.01);
    NLT_NEAR(m.var, 4.0, 0.028);
    for (int i = 0; i < NDRAW; i++) x[i] = nl_rng_normal(&r);
    m = moments_of(x, NDRAW);
    NLT_NEAR(m.mean, 0.0, 0.005);
    NLT_NEAR(m.var, 1.0, 0.007);
    NLT_NEAR(m.kurt, 3.0, 0.025);
    free(x);
}

static void test_gamma_moments(void) {
    double *x = malloc(NDRAW * sizeof *x);
    nl_rng r;
    nl_rng_init(&r, 11, 0);
    /* Gamma(a, 1): mean a, variance a, skewness 2/sqrt(a) */
    const double shapes[3] = {2.5, 1.0, 0.3};
    for (int s = 0; s < 3; s++) {
        double a = shapes[s];
        int neg = 0;
        for (int i = 0; i < NDRAW; i++) {
            x[i] = nl_rng_gamma(&r, a);
            neg += !(x[i] >= 0);
        }
        NLT_CHECK(neg == 0, "shape %g: %d negative/NaN draws", a, neg);
        moments m = moments_of(x, NDRAW);
        double sd = sqrt(a / NDRAW);
        NLT_NEAR(m.mean, a, 5 * sd);
        NLT_NEAR(m.var, a, 0.02 * a);
        NLT_NEAR(m.skew, 2.0 / sqrt(a), 0.05 * 2.0 / sqrt(a));
    }
    NLT_CHECK(isnan(nl_rng_gamma(&r, 0.0)), "shape 0 -> NaN");
    NLT_CHECK(isnan(nl_rng_gamma(&r, -1.0)), "shape < 0 -> NaN");
    free(x);
}

static void test_gumbel_bernoulli(void) {
    double *x = malloc(NDRAW * sizeof *x);
    nl_rng r;
    nl_rng_init(&r, 5, 1);
    int64_t shape[1] = {NDRAW};
    nl_tensor t = nl_tensor_wrap(x, NL_F64, 1, shape);
    nl_rng_fill_gumbel(&r, &t);
    moments m = moments_of(x, NDRAW);
    /* standard Gumbel: mean = Euler-Mascheroni 0.5772157, variance pi^2/6, skewness 1.1395 */
    NLT_NEAR(m.mean, 0.5772156649, 0.0065);
    NLT_NEAR(m.var, M_PI * M_PI / 6.0, 0.02);
    NLT_NEAR(m.skew, 1.1395470995, 0.03);
    int fin = 1;
    for (int i = 0; i < NDRAW; i++) fin &= isfinite(x[i]);
    NLT_CHECK(fin, "gumbel fills are finite");
    for (int i = 0; i < NDRAW; i++) x[i] = nl_rng_gumbel(&r);
    m = moments_of(x, NDRAW);
    NLT_NEAR(m.mean, 0.5772156649, 0.0065);
    NLT_NEAR(m.var, M_PI * M_PI / 6.0, 0.02);

    nl_rng_fill_bernoulli(&r, &t, 0.3);
    int other = 0;
    double s = 0;
    for (int i = 0; i < NDRAW; i++) {
        other += x[i] != 0.0 && x[i] != 1.0;
        s += x[i];
    }
    NLT_CHECK(other == 0, "bernoulli values are 0/1");
    NLT_NEAR(s / NDRAW, 0.3, 0.0025); /* sd 4.6e-4 */
    int64_t k = 0;
    for (int i = 0; i < 100000; i++) k += nl_rng_bernoulli(&r, 0.8);
    NLT_NEAR(k / 1e5, 0.8, 0.0065); /* sd 1.3e-3 */
    k = 0;
    for (int i = 0; i < 1000; i++) k += nl_rng_bernoulli(&r, 0.0) + (1 - nl_rng_bernoulli(&r, 1.0));
    NLT_CHECK(k == 0, "p = 0 never, p = 1 always");
    free(x);
}

static void test_categorical(void) {
    nl_rng r;
    nl_rng_init(&r, 99, 0);
    const double p[6] = {1, 0, 2, 3, 0, 4}; /* sum 10 */
    int64_t cnt[6] = {0};
    const int N = 200000;
    int out = 0;
    for (int i = 0; i < N; i++) {
        int64_t k = nl_rng_categorical(&r, p, 6);
        if (k >= 0 && k < 6) cnt[k]++;
        else out++;
    }
    NLT_CHECK(out == 0, "%d indices out of range", out);
    for (int j = 0; j < 6; j++) {
        double q = p[j] / 10.0;
        NLT_NEAR((double)cnt[j] / N, q, 5 * sqrt(q * (1 - q) / N) + 1e-12);
    }
    NLT_CHECK(cnt[1] == 0 && cnt[4] == 0, "zero-probability classes never drawn");
    const double z[3] = {0, 0, 0};
    NLT_CHECK(nl_rng_categorical(&r, z, 3) == -1, "sum 0 -> -1");
    const double neg[2] = {1, -1};
    NLT_CHECK(nl_rng_categorical(&r, neg, 2) == -1, "negative p -> -1");
    const double one[1] = {0.5};
    NLT_CHECK(nl_rng_categorical(&r, one, 1) == 0, "single class");
}

static void test_below(void) {
    nl_rng r;
    nl_rng_init(&r, 1234, 2);
    const int N = 700000;
    int64_t cnt[7] = {0};
    int out = 0;
    for (int i = 0; i < N; i++) {
        int64_t k = nl_rng_below(&r, 7);
        if (k < 0 || k >= 7) out++;
        else cnt[k]++;
    }
    NLT_CHECK(out == 0, "%d out of range", out);
    double chi2 = 0;
    for (int j = 0; j < 7; j++) chi2 += (cnt[j] - N / 7.0) * (cnt[j] - N / 7.0) / (N / 7.0);
    NLT_CHECK(chi2 < 22.5, "chi2 = %g (6 dof, p = 0.001 at 22.46)", chi2);
    /* a range where a plain modulo of 64 random bits is badly biased: n = 3 * 2^61. Without rejection, every
     * k < 2^62 has 3 preimages and the others 2, so P(k < 2^61) would be 3/8 instead of 1/3. */
    int64_t n = ((int64_t)1 << 62) + ((int64_t)1 << 61);
    int low = 0;
    for (int i = 0; i < 100000; i++) {
        int64_t k = nl_rng_below(&r, n);
        if (k < 0 || k >= n) out++;
        low += k < ((int64_t)1 << 61);
    }
    NLT_CHECK(out == 0, "large n out of range");
    /* P(k < 2^61) = 1/3, sd 1.5e-3 */
    NLT_NEAR(low / 1e5, 1.0 / 3.0, 0.0075);
    NLT_CHECK(nl_rng_below(&r, 1) == 0, "below(1) = 0");
}

static void test_permutation(void) {
    nl_rng r;
    nl_rng_init(&r, 8, 0);
    int64_t perm[1000];
    char seen[1000];
    nl_rng_permutation(&r, perm, 1000);
    memset(seen, 0, sizeof seen);
    int ok = 1, fixed = 0;
    for (int i = 0; i < 1000; i++) {
        if (perm[i] < 0 || perm[i] >= 1000 || seen[perm[i]]) ok = 0;
        else seen[perm[i]] = 1;
        fixed += perm[i] == i;
    }
    NLT_CHECK(ok, "permutation of 0..999");
    NLT_CHECK(fixed < 10, "%d fixed points (expected ~1)", fixed);
    /* all 24 orders of 4 elements equally likely */
    int cnt[24] = {0};
    const int N = 240000;
    for (int it = 0; it < N; it++) {
        int64_t p[4];
        nl_rng_permutation(&r, p, 4);
        /* Lehmer code */
        int code = 0;
        for (int i = 0; i < 4; i++) {
            int smaller = 0;
            for (int j = i + 1; j < 4; j++) smaller += p[j] < p[i];
            code = code * (4 - i) + smaller;
        }
        cnt[code]++;
    }
    double chi2 = 0;
    for (int j = 0; j < 24; j++) chi2 += (cnt[j] - N / 24.0) * (cnt[j] - N / 24.0) / (N / 24.0);
    NLT_CHECK(chi2 < 49.7, "chi2 = %g (23 dof, p = 0.001 at 49.73)", chi2);
    int64_t one[1];
    nl_rng_permutation(&r, one, 1);
    NLT_CHECK(one[0] == 0, "n = 1");
    nl_rng_permutation(&r, one, 0); /* n = 0: nothing */
}

static void test_reproducible(void) {
    nl_rng a, b, c, d;
    nl_rng_init(&a, 2024, 0);
    nl_rng_init(&b, 2024, 0);
    nl_rng_init(&c, 2024, 1);
    nl_rng_init(&d, 2025, 0);
    int same = 1, diff_stream = 0, diff_seed = 0;
    for (int i = 0; i < 1000; i++) {
        double x = nl_rng_normal(&a), y = nl_rng_normal(&b), z = nl_rng_normal(&c), w = nl_rng_normal(&d);
        same &= x == y;
        diff_stream += x != z;
        diff_seed += x != w;
    }
    NLT_CHECK(same, "same seed and stream -> same sequence");
    NLT_CHECK(diff_stream == 1000, "different stream -> different sequence (%d of 1000 differ)", diff_stream);
    NLT_CHECK(diff_seed == 1000, "different seed -> different sequence (%d of 1000 differ)", diff_seed);
    /* fills: same seed -> same tensor */
    float x1[101], x2[101];
    int64_t sh[1] = {101};
    nl_tensor t1 = nl_tensor_wrap(x1, NL_F32, 1, sh), t2 = nl_tensor_wrap(x2, NL_F32, 1, sh);
    nl_rng_init(&a, 5, 5);
    nl_rng_init(&b, 5, 5);
    nl_rng_fill_normal(&a, &t1, 0, 1);
    nl_rng_fill_normal(&b, &t2, 0, 1);
    NLT_CHECK(!memcmp(x1, x2, sizeof x1), "same seed -> same fill");
    NLT_CHECK(a.counter == 51, "counter after 101 normals = 51, got %llu", (unsigned long long)a.counter);
    nl_rng_fill_normal(&a, &t2, 0, 1);
    NLT_CHECK(memcmp(x1, x2, sizeof x1), "the next fill differs");
}

/* Element k of a fill is fixed by (seed, stream, base + k/2, k%2). */
static void test_fill_mapping(void) {
    nl_rng r;
    nl_rng_init(&r, 77, 9);
    r.counter = 1000;
    double x[7];
    int64_t sh[1] = {7};
    nl_tensor t = nl_tensor_wrap(x, NL_F64, 1, sh);
    nl_rng_fill_uniform(&r, &t, 0, 1);
    NLT_CHECK(r.counter == 1004, "counter 1000 + ceil(7/2)");
    int ok = 1;
    for (int k = 0; k < 7; k++) {
        uint32_t w[4];
        nl_philox(77, 9, 1000 + k / 2, w);
        uint64_t bits = k % 2 ? ((uint64_t)w[3] << 32 | w[2]) : ((uint64_t)w[1] << 32 | w[0]);
        ok &= x[k] == (double)(bits >> 11) * 0x1.0p-53;
    }
    NLT_CHECK(ok, "uniform fill element k from block base + k/2");
    /* normal: element 0 of a fill equals the scalar draw at the same counter */
    nl_rng s = r;
    double z = nl_rng_normal(&s);
    nl_rng_fill_normal(&r, &t, 0, 1);
    NLT_CHECK(x[0] == z, "fill normal[0] %g == scalar %g", x[0], z);
}

static void test_fill_threads_strided(void) {
    const int64_t n = 300001; /* odd, above the parallel threshold */
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    double *c = malloc(n * sizeof *c);
    int64_t sh[1] = {n};
    nl_tensor ta = nl_tensor_wrap(a, NL_F32, 1, sh), tb = nl_tensor_wrap(b, NL_F32, 1, sh);
    nl_tensor tc = nl_tensor_wrap(c, NL_F64, 1, sh);
    for (int kind = 0; kind < 4; kind++) {
        nl_rng r1, r2, r3;
        nl_rng_init(&r1, 31337, kind);
        r2 = r1;
        r3 = r1;
        nl_set_num_threads(1);
        switch (kind) {
        case 0: nl_rng_fill_uniform(&r1, &ta, -1, 1); break;
        case 1: nl_rng_fill_normal(&r1, &ta, 0, 1); break;
        case 2: nl_rng_fill_bernoulli(&r1, &ta, 0.5); break;
        case 3: nl_rng_fill_gumbel(&r1, &ta); break;
        }
        nl_set_num_threads(2);
        switch (kind) {
        case 0: nl_rng_fill_uniform(&r2, &tb, -1, 1); nl_rng_fill_uniform(&r3, &tc, -1, 1); break;
        case 1: nl_rng_fill_normal(&r2, &tb, 0, 1); nl_rng_fill_normal(&r3, &tc, 0, 1); break;
        case 2: nl_rng_fill_bernoulli(&r2, &tb, 0.5); nl_rng_fill_bernoulli(&r3, &tc, 0.5); break;
        case 3: nl_rng_fill_gumbel(&r2, &tb); nl_rng_fill_gumbel(&r3, &tc); break;
        }
        NLT_CHECK(!memcmp(a, b, n * sizeof *a), "kind %d: 1 thread == 2 threads", kind);
        NLT_CHECK(r1.counter == r2.counter && r1.counter == (uint64_t)(n + 1) / 2, "kind %d counters", kind);
        int ok = 1;
        for (int64_t i = 0; i < n; i++) ok &= a[i] == (float)c[i];
        NLT_CHECK(ok, "kind %d: f32 fill == (float) f64 fill", kind);
    }
    /* strided: fill a transposed [300, 200] view of a [200, 300] buffer; logical element (i, j) of the view
     * must equal element i*200 + j of a contiguous fill of 60000 */
    nl_set_num_threads(2);
    int64_t sh2[2] = {200, 300}, shc[1] = {60000};
    double *buf = malloc(60000 * sizeof *buf), *ref = malloc(60000 * sizeof *ref);
    nl_tensor base = nl_tensor_wrap(buf, NL_F64, 2, sh2), view;
    int perm[2] = {1, 0};
    NLT_OK(nl_tensor_permute(&base, perm, &view));
    nl_tensor tref = nl_tensor_wrap(ref, NL_F64, 1, shc);
    nl_rng r1, r2;
    nl_rng_init(&r1, 3, 4);
    r2 = r1;
    nl_rng_fill_normal(&r1, &view, 1, 2);
    nl_rng_fill_normal(&r2, &tref, 1, 2);
    int ok = 1;
    for (int i = 0; i < 300; i++)
        for (int j = 0; j < 200; j++) ok &= buf[j * 300 + i] == ref[i * 200 + j];
    NLT_CHECK(ok, "strided fill follows the logical order");
    /* a strided slice: every other column of [200, 300]; untouched columns keep their value */
    for (int i = 0; i < 60000; i++) buf[i] = -7;
    nl_tensor sl;
    NLT_OK(nl_tensor_slice(&base, 1, 0, 300, 2, &sl));
    nl_rng_init(&r1, 3, 5);
    nl_rng_fill_uniform(&r1, &sl, 0, 1);
    int kept = 1, filled = 1;
    for (int i = 0; i < 200; i++)
        for (int j = 0; j < 300; j++) {
            if (j % 2) kept &= buf[i * 300 + j] == -7;
            else filled &= buf[i * 300 + j] >= 0 && buf[i * 300 + j] < 1;
        }
    NLT_CHECK(kept && filled, "slice fill touches only its elements");
    nl_threads_init();
    free(buf);
    free(ref);
    free(a);
    free(b);
    free(c);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_kat);
    NLT_RUN(test_uniform_moments);
    NLT_RUN(test_normal_moments);
    NLT_RUN(test_gamma_moments);
    NLT_RUN(test_gumbel_bernoulli);
    NLT_RUN(test_categorical);
    NLT_RUN(test_below);
    NLT_RUN(test_permutation);
    NLT_RUN(test_reproducible);
    NLT_RUN(test_fill_mapping);
    NLT_RUN(test_fill_threads_strided);
    return nlt_finish();
}
