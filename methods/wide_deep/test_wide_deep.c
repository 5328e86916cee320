/* Tests of the wide-and-deep method (include/wide_deep/wide_deep.h): dual activations, the depth recursion (direct vs
 * scaled, large depth), the taxonomy exponents, kernel matrices, the classifier and its singular-matrix report,
 * the baselines on hand cases, the data, and a small end-to-end run of the taxonomy with a fixed seed. */
#include "nltest.h"
#include "wide_deep/wide_deep.h"
#include "wd_internal.h"
#include <string.h>

static const char *const ALL[] = {"relu",      "erf",       "sine_1",    "sine_2.676", "sine_13.8258", "hermite_1", "hermite_2",
                                  "hermite_3", "hermite_5", "2d_opt",    "3d_opt",     "5d_opt",       "9d_opt"};
#define N_ALL ((int)(sizeof ALL / sizeof ALL[0]))

static nl_wide_deep_dual dual(const char *name) {
    nl_wide_deep_dual d;
    nl_status s = nl_wide_deep_dual_parse(name, &d);
    NLT_CHECK(s == NL_OK, "parse %s: %s", name, nl_last_error());
    return d;
}

static void test_parse(void) {
    nl_wide_deep_dual d;
    NLT_OK(nl_wide_deep_dual_parse("sine_2.676", &d));
    NLT_CHECK(d.kind == NL_WIDE_DEEP_SINE && d.a == 2.676 && !strcmp(d.name, "sine_2.676"), "sine parse");
    NLT_OK(nl_wide_deep_dual_parse("hermite_4", &d));
    NLT_CHECK(d.kind == NL_WIDE_DEEP_HERMITE && d.a == 4, "hermite parse");
    const char *bad[] = {"", "tanh", "sine_", "sine_0", "sine_-1", "sine_x", "hermite_2.5", "hermite_0", "hermite_65", "2d_opt2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        NLT_CHECK(nl_wide_deep_dual_parse(bad[i], &d) == NL_EINVAL, "'%s' accepted", bad[i]);
        NLT_CHECK(strstr(nl_last_error(), "valid:") != NULL, "message lists the valid names: %s", nl_last_error());
    }
}

/* phi(1) = 1 (normalised activations), exactly. */
static void test_phi_one(void) {
    for (int i = 0; i < N_ALL; i++) {
        nl_wide_deep_dual d = dual(ALL[i]);
        NLT_CHECK(fabs(nl_wide_deep_phi(&d, 1.0) - 1.0) <= 1e-15, "%s: phi(1) = %.17g", ALL[i], nl_wide_deep_phi(&d, 1.0));
    }
}

/* Values at a few points against numbers computed by hand (python math module). */
static void test_dual_values(void) {
    nl_wide_deep_dual d = dual("relu");
    NLT_NEAR(nl_wide_deep_phi(&d, 0.0), 1.0 / M_PI, 1e-15);
    NLT_NEAR(nl_wide_deep_phi(&d, 0.5), 0.6089977810442293, 1e-14);
    NLT_NEAR(nl_wide_deep_phi(&d, -1.0), 0.0, 1e-15);
    NLT_NEAR(nl_wide_deep_dphi(&d, 0.5), 2.0 / 3.0, 1e-15);
    NLT_NEAR(nl_wide_deep_dphi(&d, 1.0), 1.0, 1e-15);
    d = dual("erf");
    NLT_NEAR(nl_wide_deep_phi(&d, 0.5), 0.4657037547559015, 1e-14);
    NLT_NEAR(nl_wide_deep_dphi(&d, 0.5), 0.9690009350099469, 1e-14);
    d = dual("sine_1");
    NLT_NEAR(nl_wide_deep_phi(&d, 0.5), 0.443409441985037, 1e-14);
    NLT_NEAR(nl_wide_deep_dphi(&d, 0.5), 0.9595173756674719, 1e-14);
    d = dual("hermite_3");
    NLT_NEAR(nl_wide_deep_phi(&d, 0.5), 0.125, 0);
    NLT_NEAR(nl_wide_deep_dphi(&d, 0.5), 0.75, 0);
    d = dual("2d_opt");
    NLT_NEAR(nl_wide_deep_phi(&d, 0.5), 0.25390625, 0);
    NLT_NEAR(nl_wide_deep_dphi(&d, 0.5), 0.5546875, 0);
    d = dual("3d_opt");
    NLT_NEAR(nl_wide_deep_phi(&d, 0.5), 0.3125, 0);
    d = dual("5d_opt");
    NLT_NEAR(nl_wide_deep_phi(&d, 0.5), 0.28125, 0);
    d = dual("9d_opt");
    NLT_NEAR(nl_wide_deep_phi(&d, 0.5), 0.2578125, 0);
    /* two layers of the recursion by hand: xi1 = phi(xi0), K1 = xi1 + xi0 phi'(xi0), ... */
    double x, k;
    d = dual("2d_opt");
    nl_wide_deep_entry_direct(&d, 0.5, 1, &x, &k);
    NLT_NEAR(x, 0.25390625, 0);
    NLT_NEAR(k, 0.53125, 0);
    nl_wide_deep_entry_direct(&d, 0.5, 2, &x, &k);
    NLT_NEAR(x, 0.12698714103922581, 1e-16);
    NLT_NEAR(k, 0.393110345182964, 1e-15);
    d = dual("erf");
    nl_wide_deep_entry_direct(&d, -0.3, 2, &x, &k);
    NLT_NEAR(x, -0.2535340284330513, 1e-15);
    NLT_NEAR(k, -0.7699911905798943, 1e-15);
    d = dual("relu");
    nl_wide_deep_entry_direct(&d, 0.5, 1, &x, &k);
    NLT_NEAR(k, 0.9423311143775626, 1e-14);
    nl_wide_deep_num sx, sk;
    nl_wide_deep_entry_scaled(&d, 0.5, 1, &sx, &sk); /* ReLU runs in delta = 1 - xi: the same numbers */
    NLT_NEAR(nl_wide_deep_num_value(sx), 0.6089977810442293, 1e-14);
    NLT_NEAR(nl_wide_deep_num_value(sk), 0.9423311143775626, 1e-14);
}

/* phi' against central differences, away from the kinks of arccos/arcsin at +-1. */
static void test_dphi_fd(void) {
    const double xs[] = {-0.9, -0.3, 0.0, 0.1, 0.6, 0.95};
    for (int i = 0; i < N_ALL; i++) {
        nl_wide_deep_dual d = dual(ALL[i]);
        for (size_t j = 0; j < sizeof xs / sizeof xs[0]; j++) {
            double h = 1e-6, x = xs[j];
            double fd = (nl_wide_deep_phi(&d, x + h) - nl_wide_deep_phi(&d, x - h)) / (2 * h), an = nl_wide_deep_dphi(&d, x);
            NLT_CHECK(fabs(fd - an) <= 1e-7 * (1 + fabs(an)), "%s at %g: phi' %.12g, finite difference %.12g", ALL[i], x, an, fd);
        }
    }
}

/* K^(L)(x, x) for ReLU = L + 1: xi stays 1 and phi'(1) = 1, so K <- 1 + K. For a dual with phi'(1) = c > 1:
 * K_L = (c^(L+1) - 1) / (c - 1) (2d_opt: c = 4, 4^1000 overflows the direct recursion but not the scaled one). */
static void test_diagonal(void) {
    nl_wide_deep_dual d = dual("relu");
    const int64_t Ls[] = {0, 1, 5, 100, 10000};
    for (size_t i = 0; i < sizeof Ls / sizeof Ls[0]; i++) {
        double x, k;
        nl_wide_deep_num sx, sk;
        nl_wide_deep_entry_direct(&d, 1.0, Ls[i], &x, &k);
        nl_wide_deep_entry_scaled(&d, 1.0, Ls[i], &sx, &sk);
        NLT_NEAR(k, (double)Ls[i] + 1, 0);
        NLT_NEAR(nl_wide_deep_num_value(sk), (double)Ls[i] + 1, 0);
        NLT_NEAR(x, 1.0, 0);
        NLT_NEAR(nl_wide_deep_num_value(sx), 1.0, 0);
    }
    d = dual("2d_opt");
    nl_wide_deep_num sx, sk;
    nl_wide_deep_entry_scaled(&d, 1.0, 1000, &sx, &sk);
    NLT_NEAR(nl_wide_deep_num_log2(sk), 2.0 * 1001 - log2(3.0), 1e-9); /* (4^1001 - 1) / 3 */
    double x, k;
    nl_wide_deep_entry_direct(&d, 1.0, 1000, &x, &k);
    NLT_CHECK(isinf(k), "the direct recursion should overflow here (got %g): the scaled one is needed", k);
    d = dual("hermite_2");
    nl_wide_deep_entry_scaled(&d, 1.0, 1000, &sx, &sk);
    NLT_NEAR(nl_wide_deep_num_log2(sk), 1001.0, 1e-9); /* 2^1001 - 1 */
}

/* The scaled recursion equals the direct one wherever the direct one neither underflows nor overflows, and
 * stays finite at depth 1000 (hermite_k up to its documented limit). */
static void test_scaled_vs_direct(void) {
    const double x0s[] = {-0.7, -0.2, 0.0, 0.3, 0.9, 0.999};
    const int64_t Ls[] = {1, 5, 20, 50, 200, 1000};
    int compared = 0;
    for (int i = 0; i < N_ALL; i++) {
        nl_wide_deep_dual d = dual(ALL[i]);
        for (size_t a = 0; a < sizeof x0s / sizeof x0s[0]; a++)
            for (size_t b = 0; b < sizeof Ls / sizeof Ls[0]; b++) {
                if (nl_wide_deep_check_depth(&d, Ls[b]) != NL_OK) continue;
                double x, k;
                nl_wide_deep_num sx, sk;
                nl_wide_deep_entry_direct(&d, x0s[a], Ls[b], &x, &k);
                nl_wide_deep_entry_scaled(&d, x0s[a], Ls[b], &sx, &sk);
                NLT_CHECK(isfinite(nl_wide_deep_num_log2(sk)) || sk.m == 0, "%s xi0 %g L %lld: scaled NTK not finite", ALL[i], x0s[a],
                          (long long)Ls[b]);
                NLT_CHECK(isfinite(sx.e) && isfinite(sk.e) && isfinite(sx.m) && isfinite(sk.m), "%s: non-finite state", ALL[i]);
                /* ReLU in the delta form differs from the xi form by rounding that grows ~L (see dual.c) */
                double tol = d.kind == NL_WIDE_DEEP_RELU ? 1e-13 * (double)Ls[b] : 1e-11;
                if (fabs(x) > 1e-250 && isfinite(x)) {
                    NLT_CHECK(fabs(nl_wide_deep_num_value(sx) - x) <= tol * fabs(x), "%s xi0 %g L %lld: NNGP scaled %.17g direct %.17g",
                              ALL[i], x0s[a], (long long)Ls[b], nl_wide_deep_num_value(sx), x);
                    compared++;
                }
                if (fabs(k) > 1e-250 && isfinite(k)) {
                    NLT_CHECK(fabs(nl_wide_deep_num_value(sk) - k) <= tol * fabs(k), "%s xi0 %g L %lld: NTK scaled %.17g direct %.17g",
                              ALL[i], x0s[a], (long long)Ls[b], nl_wide_deep_num_value(sk), k);
                    compared++;
                }
            }
    }
    NLT_CHECK(compared > 300, "only %d comparisons", compared);
    /* where the direct one underflows, the scaled one still orders the entries (hermite: 1-NN needs this) */
    nl_wide_deep_dual d = dual("hermite_2");
    nl_wide_deep_num a, b, ka, kb;
    double x;
    nl_wide_deep_entry_direct(&d, 0.999, 100, &x, NULL);
    NLT_CHECK(x == 0, "direct hermite_2 at L=100 should underflow (got %g)", x);
    nl_wide_deep_entry_scaled(&d, 0.999, 100, &a, &ka);
    nl_wide_deep_entry_scaled(&d, 0.998, 100, &b, &kb);
    NLT_NEAR(nl_wide_deep_num_log2(a), ldexp(1.0, 100) * log2(0.999), 1e-6 * ldexp(1.0, 100));
    NLT_CHECK(nl_wide_deep_num_log2(a) > nl_wide_deep_num_log2(b) && nl_wide_deep_num_log2(ka) > nl_wide_deep_num_log2(kb), "hermite ordering lost");
    d = dual("hermite_3");
    NLT_CHECK(nl_wide_deep_check_depth(&d, 1000) == NL_EINVAL, "hermite_3 at depth 1000 must be refused");
    NLT_CHECK(nl_wide_deep_check_depth(&d, 600) == NL_OK, "hermite_3 at depth 600 is fine");
    /* 9d_opt: xi_L ~ 16^-L underflows the direct recursion at L = 1000 */
    d = dual("9d_opt");
    nl_wide_deep_entry_direct(&d, 0.5, 1000, &x, NULL);
    nl_wide_deep_entry_scaled(&d, 0.5, 1000, &a, &ka);
    NLT_CHECK(x == 0 && a.m != 0 && isfinite(nl_wide_deep_num_log2(a)) && isfinite(nl_wide_deep_num_log2(ka)), "9d_opt L=1000: %g / %g", x,
              nl_wide_deep_num_log2(a));
}

/* The vectorised fast path (advance.c) against the scalar recursion alone: every field of every state bit for bit,
 * over xi_0 in [-1, 1] with 0, +-1, tiny and near-1 values, depths that stay on the fast path and depths that leave
 * it (renormalisation of 9d_opt / hermite), in chunks of WD_CHUNK and a ragged tail. Also wd_ilog2 / wd_scaled
 * (exponent field and power-of-two product) against frexp / ldexp. */
static void test_fast_path_bitwise(void) {
    enum { N = 2 * WD_CHUNK + 37 };
    static wd_state a[N], b[N]; /* (N) */
    static const char *const names[] = {"2d_opt", "3d_opt", "5d_opt", "9d_opt", "hermite_2", "hermite_3", "hermite_5", "relu", "erf", "sine_2.676"};
    const int64_t Ls[] = {1, 3, 10, 50, 200, 600};
    uint64_t z = 12345;
    int fast_full = 0, fast_partial = 0;
    for (size_t q = 0; q < sizeof names / sizeof names[0]; q++) {
        nl_wide_deep_dual d = dual(names[q]);
        for (size_t l = 0; l < sizeof Ls / sizeof Ls[0]; l++) {
            if (nl_wide_deep_check_depth(&d, Ls[l]) != NL_OK) continue;
            for (int i = 0; i < N; i++) {
                z = z * 6364136223846793005ull + 1442695040888963407ull;
                double u = (double)(z >> 11) * 0x1p-53, x0 = 2 * u - 1;
                static const double special[] = {0.0, 1.0, -1.0, 1e-300, -1e-200, 0.999999999, 1 - 0x1p-52, 0.5, 1e-5, 0x1p-1000};
                if (i % 17 == 0) x0 = special[(i / 17) % 10];
                if (i >= WD_CHUNK && i < 2 * WD_CHUNK) x0 = 0.05 + 0.9 * u; /* one chunk with no special values */
                wd_state_init(&d, &a[i], x0);
            }
            memcpy(b, a, sizeof a);
            wd_advance(&d, a, N, Ls[l]);
            wd_advance_scalar(&d, b, N, Ls[l]);
            NLT_CHECK(!memcmp(a, b, sizeof a), "%s depth %lld: fast path differs from the scalar recursion", names[q], (long long)Ls[l]);
            /* how far the fast path goes on the clean chunk */
            wd_state c[WD_CHUNK];
            for (int i = 0; i < WD_CHUNK; i++) wd_state_init(&d, &c[i], 0.05 + 0.9 * (i + 0.5) / WD_CHUNK);
            int64_t done = wd_advance_fast(&d, c, WD_CHUNK, Ls[l]);
            fast_full += done == Ls[l], fast_partial += done > 0 && done < Ls[l];
        }
    }
    NLT_CHECK(fast_full >= 20 && fast_partial >= 1, "fast path ran all layers %d times, part of them %d times", fast_full, fast_partial);
    for (int i = 0; i < 20000; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        double m = ldexp((double)(z >> 11) * 0x1p-53 + 0.25, (int)(z % 2400) - 1200) * ((z >> 7) & 1 ? -1 : 1);
        if (i % 97 == 0) m = 0x1p-1074 * (double)(1 + (z >> 40) % 1000); /* subnormal */
        double e = (double)((int64_t)(z >> 20) % 3000 - 1500), sh = (double)((int64_t)(z >> 33) % 3000 - 1500);
        int ex;
        (void)frexp(m, &ex);
        NLT_CHECK(wd_ilog2(m, e) == (m == 0 ? -INFINITY : e + (double)(ex - 1)), "wd_ilog2(%a, %g)", m, e);
        double ref = m == 0 || e - sh < -2200 ? 0.0 : e - sh > 2200 ? copysign(INFINITY, m) : ldexp(m, (int)(e - sh));
        double got = wd_scaled(m, e, sh);
        NLT_CHECK(!memcmp(&got, &ref, sizeof got), "wd_scaled(%a, %g, %g) = %a, ldexp %a", m, e, sh, got, ref);
    }
}

/* Taxonomy: classes, and the singular exponents (derived: the NNGP xi_L ~ phi'(0)^L h(xi) with
 * h ~ (1 - xi)^-r, r = ln(1/phi'(0)) / ln phi'(1); the NTK contains d/dxi of the L-fold composition, hence r + 1). */
static void test_taxonomy(void) {
    double r;
    nl_wide_deep_dual d = dual("relu");
    NLT_CHECK(nl_wide_deep_dual_class(&d, &r) == NL_WIDE_DEEP_CLASS_MAJORITY, "relu class");
    d = dual("hermite_3");
    NLT_CHECK(nl_wide_deep_dual_class(&d, &r) == NL_WIDE_DEEP_CLASS_1NN, "hermite class");
    const char *opt[] = {"2d_opt", "3d_opt", "5d_opt", "9d_opt"};
    const double want[] = {0.5, 1.0, 2.0, 4.0}; /* (d - 1) / 2: the Devroye exponent on the (d-1)-sphere */
    for (int i = 0; i < 4; i++) {
        d = dual(opt[i]);
        NLT_CHECK(nl_wide_deep_dual_class(&d, &r) == NL_WIDE_DEEP_CLASS_SINGULAR, "%s class", opt[i]);
        NLT_NEAR(r, want[i], 1e-12);
        nl_wide_deep_num a1, a2, k1, k2;
        nl_wide_deep_entry_scaled(&d, 1 - 1e-6, 150, &a1, &k1);
        nl_wide_deep_entry_scaled(&d, 1 - 1e-8, 150, &a2, &k2);
        double sN = -(nl_wide_deep_num_log2(a2) - nl_wide_deep_num_log2(a1)) / (log2(1e-8) - log2(1e-6));
        double sK = -(nl_wide_deep_num_log2(k2) - nl_wide_deep_num_log2(k1)) / (log2(1e-8) - log2(1e-6));
        NLT_NEAR(sN, r, 2e-3);
        NLT_NEAR(sK, r + 1, 5e-3);
    }
    const char *sines[] = {"sine_2.676", "sine_6.13539", "sine_13.8258"}; /* the paper's consistent sines for d = 3, 5, 9 */
    for (int i = 0; i < 3; i++) {
        d = dual(sines[i]);
        NLT_CHECK(nl_wide_deep_dual_class(&d, &r) == NL_WIDE_DEEP_CLASS_SINGULAR, "%s class", sines[i]);
        NLT_NEAR(r, want[i + 1], 2e-4);
    }
}

/* ReLU: K_L(theta) = L/4 + 3 pi / (4 theta) + (3/8) ln L + O(1) for small theta (methods/wide_deep/README.md): the
 * 1/theta term is the nearest-neighbour correction that depth has to beat. Checked at L = 1e5 where the plain
 * xi-form recursion has drifted (its per-layer change approaches the rounding of xi). */
static void test_relu_asymptotics(void) {
    nl_wide_deep_dual d = dual("relu");
    nl_wide_deep_num x1, k1, x2, k2;
    nl_wide_deep_entry_scaled(&d, cos(0.01), 100000, &x1, &k1);
    nl_wide_deep_entry_scaled(&d, cos(0.03), 100000, &x2, &k2);
    double diff = nl_wide_deep_num_value(k1) - nl_wide_deep_num_value(k2); /* 3 pi / 4 (1/0.01 - 1/0.03) = 157.08 */
    NLT_CHECK(fabs(diff - 0.75 * M_PI * (100 - 100.0 / 3)) < 2.0, "K(0.01) - K(0.03) = %g", diff);
    double dl = 1 - nl_wide_deep_num_value(x1); /* 1 - xi_L ~ (3 pi / L)^2 / 2 */
    NLT_CHECK(fabs(dl / (0.5 * pow(3 * M_PI / 1e5, 2)) - 1) < 0.03, "1 - xi_L = %g", dl);
}

static void angles_to_points(const double *deg, int n, double *X) {
    for (int i = 0; i < n; i++) {
        X[2 * i] = cos(deg[i] * M_PI / 180);
        X[2 * i + 1] = sin(deg[i] * M_PI / 180);
    }
}

static void test_baselines_tiny(void) {
    /* Bayes for Dirichlet(1,2) vs (2,1), prior 0.4: p1(s) = 2(1-s), p2(s) = 2s on the first simplex coordinate:
     * +1 iff 0.4 * 2(1-s) > 0.6 * 2s iff s < 0.4 */
    double a1[2] = {1, 2}, a2[2] = {2, 1}, s[2] = {0.3, 0.7};
    NLT_NEAR(nl_wide_deep_dirichlet_logpdf(a1, 2, s), log(1.4), 1e-14);
    const double ss[] = {0.3, 0.39, 0.41, 0.5, 0.9};
    const int8_t want[] = {1, 1, -1, -1, -1};
    double X[10];
    for (int i = 0; i < 5; i++) {
        double r = hypot(ss[i], 1 - ss[i]);
        X[2 * i] = ss[i] / r, X[2 * i + 1] = (1 - ss[i]) / r;
    }
    int8_t p[5];
    nl_wide_deep_bayes_predict(a1, a2, 2, 0.4, X, 5, p);
    for (int i = 0; i < 5; i++) NLT_CHECK(p[i] == want[i], "Bayes at s = %g: %d", ss[i], p[i]);
    /* 1-NN and Devroye on the circle: training points at 0, 30, 90 degrees labelled +1, -1, +1 */
    double deg[3] = {0, 30, 90}, y[3] = {1, -1, 1}, tdeg[4] = {10, 20, 80, 30}, Xtr[6], Xte[8];
    angles_to_points(deg, 3, Xtr);
    angles_to_points(tdeg, 4, Xte);
    int8_t q[4];
    nl_wide_deep_1nn_predict(Xtr, y, 3, Xte, 4, 2, q);
    NLT_CHECK(q[0] == 1 && q[1] == -1 && q[2] == 1 && q[3] == -1, "1-NN %d %d %d %d", q[0], q[1], q[2], q[3]);
    /* Devroye: at 10 deg 1/(2 sin 5) - 1/(2 sin 10) + 1/(2 sin 40) > 0; at 20 deg < 0; at 30 deg the duplicate decides */
    nl_wide_deep_devroye_predict(Xtr, y, 3, Xte, 4, 2, q);
    NLT_CHECK(q[0] == 1 && q[1] == -1 && q[2] == 1 && q[3] == -1, "Devroye %d %d %d %d", q[0], q[1], q[2], q[3]);
    nl_wide_deep_majority_predict(y, 3, 4, q);
    NLT_CHECK(q[0] == 1 && q[3] == 1, "majority");
    double ytie[2] = {1, -1};
    nl_wide_deep_majority_predict(ytie, 2, 1, q);
    NLT_CHECK(q[0] == -1, "majority tie -> -1 (official code)");
    int8_t e1[4] = {1, -1, 1, 1};
    double ey[4] = {1, 1, 1, 1};
    NLT_NEAR(nl_wide_deep_error(e1, ey, 4), 0.25, 0);
    NLT_NEAR(nl_wide_deep_agreement(e1, e1, 4), 1.0, 0);
}

/* Kernel matrices: symmetric, NNGP diagonal 1, equal to the entry recursion, column scaling consistent. */
static void test_kernel_matrix(void) {
    double deg[4] = {5, 20, 40, 85}, X[8], K[16], Ks[16], cl[4];
    angles_to_points(deg, 4, X);
    nl_wide_deep_dual d = dual("2d_opt");
    NLT_OK(nl_wide_deep_kernel_matrix(&d, NL_WIDE_DEEP_NTK, 30, X, 4, X, 4, 2, 1, K, NULL));
    NLT_OK(nl_wide_deep_kernel_matrix(&d, NL_WIDE_DEEP_NTK, 30, X, 4, X, 4, 2, 1, Ks, cl));
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            NLT_NEAR(K[i * 4 + j], K[j * 4 + i], 1e-12 * fabs(K[i * 4 + j]));
            NLT_NEAR(Ks[i * 4 + j] * ldexp(1.0, (int)cl[j]), K[i * 4 + j], 1e-12 * fabs(K[i * 4 + j]));
            double ref;
            nl_wide_deep_entry_direct(&d, i == j ? 1.0 : cos((deg[i] - deg[j]) * M_PI / 180), 30, NULL, &ref);
            NLT_NEAR(K[i * 4 + j], ref, 1e-9 * fabs(ref));
        }
    for (int j = 0; j < 4; j++) NLT_CHECK(Ks[j * 4 + j] >= 1 && Ks[j * 4 + j] < 2, "column max scaled into [1, 2): %g", Ks[j * 4 + j]);
    NLT_OK(nl_wide_deep_kernel_matrix(&d, NL_WIDE_DEEP_NNGP, 30, X, 4, X, 4, 2, 1, K, NULL));
    for (int i = 0; i < 4; i++) NLT_NEAR(K[i * 5], 1.0, 0);
    double bad[2] = {1.0, 0.5};
    NLT_CHECK(nl_wide_deep_kernel_matrix(&d, NL_WIDE_DEEP_NNGP, 3, bad, 1, X, 4, 2, 0, K, NULL) == NL_EINVAL, "non-unit row accepted");
    NLT_CHECK(strstr(nl_last_error(), "unit sphere") != NULL, "message: %s", nl_last_error());
}

/* The classifier on 3 points against an explicit solve; singular K_train reported, not crashed. */
static void test_predict_small(void) {
    double deg[3] = {10, 40, 70}, y[3] = {1, -1, 1}, tdeg[3] = {15, 45, 60}, Xtr[6], Xte[6];
    angles_to_points(deg, 3, Xtr);
    angles_to_points(tdeg, 3, Xte);
    nl_wide_deep_dual d = dual("erf");
    int64_t depths[2] = {1, 3};
    int8_t pn[6], pk[6];
    nl_wide_deep_solve_info in[2], ik[2];
    NLT_OK(nl_wide_deep_predict(&d, NL_WIDE_DEEP_NNGP | NL_WIDE_DEEP_NTK, Xtr, y, 3, Xte, 3, 2, depths, 2, pn, pk, in, ik));
    for (int l = 0; l < 2; l++)
        for (int kk = 0; kk < 2; kk++) {
            /* explicit: K (3x3) and k (3) from the entry recursion, solve by Cramer's rule */
            double K[9], kv[3], sol[3];
            for (int t = 0; t < 3; t++) {
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        double a, b;
                        nl_wide_deep_entry_direct(&d, i == j ? 1.0 : cos((deg[i] - deg[j]) * M_PI / 180), depths[l], &a, &b);
                        K[i * 3 + j] = kk ? b : (i == j ? 1.0 : a);
                    }
                for (int i = 0; i < 3; i++) {
                    double a, b;
                    nl_wide_deep_entry_direct(&d, cos((deg[i] - tdeg[t]) * M_PI / 180), depths[l], &a, &b);
                    kv[i] = kk ? b : a;
                }
                double det = K[0] * (K[4] * K[8] - K[5] * K[7]) - K[1] * (K[3] * K[8] - K[5] * K[6]) + K[2] * (K[3] * K[7] - K[4] * K[6]);
                for (int c = 0; c < 3; c++) {
                    double M[9];
                    memcpy(M, K, sizeof M);
                    for (int r = 0; r < 3; r++) M[r * 3 + c] = y[r];
                    sol[c] = (M[0] * (M[4] * M[8] - M[5] * M[7]) - M[1] * (M[3] * M[8] - M[5] * M[6]) + M[2] * (M[3] * M[7] - M[4] * M[6])) / det;
                }
                double out = sol[0] * kv[0] + sol[1] * kv[1] + sol[2] * kv[2];
                int8_t want = out < 0 ? -1 : 1, got = kk ? pk[l * 3 + t] : pn[l * 3 + t];
                NLT_CHECK(got == want, "L=%lld %s test %d: got %d want %d (score %g)", (long long)depths[l], kk ? "NTK" : "NNGP", t, got,
                          want, out);
            }
            NLT_CHECK((kk ? ik : in)[l].status == NL_OK && (kk ? ik : in)[l].rcond > 0, "solve info");
        }
    /* a duplicated training point: K_train singular, reported with a message, predictions 0, call still OK */
    double deg2[3] = {10, 10, 70}, X2[6];
    angles_to_points(deg2, 3, X2);
    NLT_OK(nl_wide_deep_predict(&d, NL_WIDE_DEEP_NTK, X2, y, 3, Xte, 3, 2, depths, 2, NULL, pk, NULL, ik));
    NLT_CHECK(ik[0].status == NL_ELINALG && strstr(ik[0].msg, "singular"), "singular not reported: %s", ik[0].msg);
    NLT_CHECK(pk[0] == 0, "prediction from a singular solve");
    /* argument errors */
    int64_t bad_depths[2] = {3, 3};
    NLT_CHECK(nl_wide_deep_predict(&d, NL_WIDE_DEEP_NTK, Xtr, y, 3, Xte, 3, 2, bad_depths, 2, NULL, pk, NULL, ik) == NL_EINVAL, "depths");
    double ybad[3] = {1, 0, 1};
    NLT_CHECK(nl_wide_deep_predict(&d, NL_WIDE_DEEP_NTK, Xtr, ybad, 3, Xte, 3, 2, depths, 2, NULL, pk, NULL, ik) == NL_EINVAL, "labels");
    NLT_CHECK(nl_wide_deep_predict(&d, NL_WIDE_DEEP_NTK | NL_WIDE_DEEP_NNGP, Xtr, y, 3, Xte, 3, 2, depths, 2, NULL, pk, NULL, ik) == NL_EINVAL,
              "missing NNGP buffers");
}

static void test_data(void) {
    double a1[9], a2[9];
    NLT_OK(nl_wide_deep_alphas(2, a1, a2));
    NLT_CHECK(nl_wide_deep_alphas(4, a1, a2) == NL_EINVAL, "dim 4 has no alphas");
    const int64_t n = 300, m = 200;
    double Xtr[600], ytr[300], Xte[400], yte[200], X2[600], y2[300], X3[600], y3[300], Xt2[400], yt2[200];
    NLT_OK(nl_wide_deep_dirichlet_data(a1, a2, 2, 0.4, n, m, 7, Xtr, ytr, Xte, yte));
    NLT_OK(nl_wide_deep_dirichlet_data(a1, a2, 2, 0.4, n, m, 7, X2, y2, Xt2, yt2));
    NLT_OK(nl_wide_deep_dirichlet_data(a1, a2, 2, 0.4, n, m, 8, X3, y3, Xt2, yt2));
    NLT_CHECK(!memcmp(Xtr, X2, sizeof Xtr) && !memcmp(ytr, y2, sizeof ytr), "same seed, same data");
    NLT_CHECK(memcmp(Xtr, X3, sizeof Xtr) != 0, "different seed, same data");
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++) pos += ytr[i] > 0;
    for (int64_t i = 0; i < m; i++) pos += yte[i] > 0;
    NLT_CHECK(pos == 200, "class +1 gets floor(500 * 0.4) = 200 points (got %lld)", (long long)pos);
    for (int64_t i = 0; i < n; i++) {
        NLT_NEAR(hypot(Xtr[2 * i], Xtr[2 * i + 1]), 1.0, 1e-15);
        NLT_CHECK(Xtr[2 * i] >= 0 && Xtr[2 * i + 1] >= 0, "positive orthant");
    }
    NLT_NEAR(nl_wide_deep_relu_kappa(a1, a2, 2, 0.4, -1), 1.5414747953572052, 1e-6); /* python midpoint rule */
    NLT_CHECK(isnan(nl_wide_deep_relu_kappa(a1, a2, 3, 0.4, -1)), "kappa only for d = 2");
}

/* End to end on a small sample (fixed seed): the three taxonomy classes, and a deliberately wrong run fails. */
static void test_end_to_end(void) {
    nl_wide_deep_config c;
    nl_wide_deep_config_quick(&c);
    c.n_train = c.n_test = 400;
    c.n_duals = 2;
    strcpy(c.duals[0], "hermite_2");
    strcpy(c.duals[1], "2d_opt");
    c.n_depths = 2;
    c.depths[0] = 50, c.depths[1] = 100;
    c.relu_n_train = 21;
    c.relu_n_test = 200;
    c.bayes_margin = 0.06; /* only used to show that the swapped run fails the Bayes part by far */
    nl_wide_deep_result r;
    NLT_OK(nl_wide_deep_run(&c, NULL, &r));
    char msg[512];
    int pass = nl_wide_deep_judge(&r, msg, sizeof msg);
    printf("  n=400: Bayes %.3f 1-NN %.3f Devroye %.3f majority %.3f | hermite=1NN %.3f, 2d_opt NNGP err %.3f (=Devroye %.3f), "
           "ReLU L*=%lld =majority %.3f\n  judge: %s\n",
           r.err_bayes, r.err_1nn, r.err_devroye, r.err_majority, r.hermite_agree_1nn_min, r.duals[1].err[0][1],
           r.opt_nngp_agree_dev_min, (long long)r.relu_depth, r.relu_agree_maj_final, msg);
    NLT_CHECK(r.hermite_agree_1nn_min >= 0.99, "hermite_2 NTK vs 1-NN agreement %g", r.hermite_agree_1nn_min);
    NLT_CHECK(r.relu_agree_maj_final >= 0.95, "ReLU NTK vs majority agreement %g", r.relu_agree_maj_final);
    NLT_CHECK(r.opt_nngp_agree_dev_min >= 0.95, "2d_opt NNGP vs Devroye agreement %g", r.opt_nngp_agree_dev_min);
    NLT_CHECK(r.duals[1].err[0][1] < r.err_1nn - 0.02, "2d_opt NNGP %g not better than 1-NN %g", r.duals[1].err[0][1], r.err_1nn);
    NLT_CHECK(fabs(r.duals[1].err[0][1] - r.err_devroye) <= 0.01, "2d_opt NNGP %g vs Devroye %g", r.duals[1].err[0][1], r.err_devroye);
    (void)pass; /* the Bayes margin of the ledger is stated for n >= 1500; at n = 400 the Hilbert estimate itself is
                 * 3.0 +- 1.7 pp above Bayes, so only the taxonomy is asserted here */
    /* swapped duals: every part of the rule must fail */
    NLT_OK(nl_wide_deep_run(&c, "hermite_2=2d_opt,2d_opt=hermite_2,relu=erf", &r));
    pass = nl_wide_deep_judge(&r, msg, sizeof msg);
    printf("  swapped: %s\n", msg);
    NLT_CHECK(!pass, "swapped duals passed: %s", msg);
    NLT_CHECK(r.hermite_agree_1nn_min < NL_WIDE_DEEP_PASS_AGREE_1NN, "swap not caught by the 1-NN part (%g)", r.hermite_agree_1nn_min);
    NLT_CHECK(r.relu_agree_maj_final < NL_WIDE_DEEP_PASS_AGREE_MAJ, "swap not caught by the majority part (%g)", r.relu_agree_maj_final);
    NLT_CHECK(r.opt_nngp_excess_absmax > c.bayes_margin, "swap not caught by the Bayes part (%g)", r.opt_nngp_excess_absmax);
    /* config errors */
    c.depths[1] = 50;
    NLT_CHECK(nl_wide_deep_run(&c, NULL, &r) == NL_EINVAL, "non-increasing depths accepted");
    nl_wide_deep_config_quick(&c);
    strcpy(c.duals[0], "tanh");
    NLT_CHECK(nl_wide_deep_run(&c, NULL, &r) == NL_EINVAL, "unknown dual accepted");
}

/* The ledger judge (schema v2) on hand-made results: a passing one, and each control-like change flips the verdict. */
static void wd_set_ms(nl_exp_result *r, const char *name, double mean, double se) {
    char b[96];
    snprintf(b, sizeof b, "%s_mean", name);
    nl_exp_set(r, b, mean);
    snprintf(b, sizeof b, "%s_se", name);
    nl_exp_set(r, b, se);
}

/* what: 0 passing; 1 hermite not 1-NN; 2 ReLU not majority; 3 d9 excess over margin; 4 d3 not better than 1-NN;
 * 5 a singular kernel (NAN); 6 too few seeds to bound anything */
static int wd_judge_case(int what) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    nl_exp_set(&r, "n_seeds", what == 6 ? 1 : 3);
    wd_set_ms(&r, "hermite_ntk_agree_1nn", what == 1 ? 0.977 : what == 5 ? NAN : 1.0, what == 1 ? 0.003 : 0.0);
    wd_set_ms(&r, "relu_ntk_agree_majority", what == 2 ? 0.65 : 0.984, what == 2 ? 0.035 : 0.003);
    static const int dims[4] = {2, 3, 5, 9};
    static const double margin[4] = {0.045, 0.03, 0.035, 0.06}, ex[4] = {0.030, 0.018, 0.023, 0.044}, gain[4] = {0.058, 0.014, 0.037, 0.026};
    for (int j = 0; j < 4; j++) {
        char b[64];
        snprintf(b, sizeof b, "margin_d%d", dims[j]);
        nl_exp_set(&r, b, margin[j]);
        snprintf(b, sizeof b, "opt_excess_d%d", dims[j]);
        wd_set_ms(&r, b, what == 3 && j == 3 ? 0.22 : ex[j], 0.005);
        snprintf(b, sizeof b, "opt_gain_vs_1nn_d%d", dims[j]);
        wd_set_ms(&r, b, what == 4 && j == 1 ? 0.002 : gain[j], what == 4 && j == 1 ? 0.004 : 0.003);
    }
    char msg[256];
    int pass = nl_exp_wide_deep.judge(&nl_exp_wide_deep, &r, NL_MODE_QUICK, msg, sizeof msg);
    NLT_CHECK(pass == nl_exp_parts_pass(&r), "judge returns the parts' verdict");
    NLT_CHECK(r.n_parts == 6, "6 parts (hermite, relu, 4 dimensions), got %d", r.n_parts);
    NLT_CHECK(strlen(msg) > 0, "measured line");
    nl_exp_result_free(&r);
    return pass;
}

static void test_ledger_judge(void) {
    NLT_CHECK(wd_judge_case(0) == 1, "the passing hand-made result fails");
    for (int w = 1; w <= 6; w++) NLT_CHECK(wd_judge_case(w) == 0, "control-like case %d passes", w);
    NLT_CHECK(nl_exp_wide_deep.smoke && nl_exp_wide_deep.smoke_desc, "smoke configuration");
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_parse);
    NLT_RUN(test_phi_one);
    NLT_RUN(test_dual_values);
    NLT_RUN(test_dphi_fd);
    NLT_RUN(test_diagonal);
    NLT_RUN(test_scaled_vs_direct);
    NLT_RUN(test_fast_path_bitwise);
    NLT_RUN(test_taxonomy);
    NLT_RUN(test_relu_asymptotics);
    NLT_RUN(test_baselines_tiny);
    NLT_RUN(test_kernel_matrix);
    NLT_RUN(test_predict_small);
    NLT_RUN(test_data);
    NLT_RUN(test_end_to_end);
    NLT_RUN(test_ledger_judge);
    return nlt_finish();
}
