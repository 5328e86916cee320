/* Tests of the snnk method: unbiasedness of every kernel estimate at m = 1e6 against the closed-form kernel (and the
 * bias of uniform projections, the broken control), the GEMM feature maps against direct sums, the bundled ridge
 * solution against its normal equations, finite differences of the two-layer network's gradient (ReLU and linear),
 * and m = 0 refused with a clear error (library and CLI). */
#include "snnk/snnk.h"
#include "nnlab/cli.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_fail = 0;
#define CHECK(c, ...) do { if (!(c)) { g_fail = 1; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

enum { D = 8 };

/* unit x and w with x.w = rho, drawn from r */
static void pair(nl_rng *r, double rho, double *x, double *w) {
    double nx = 0, nz = 0, xz = 0;
    for (int i = 0; i < D; i++) x[i] = nl_rng_normal(r), w[i] = nl_rng_normal(r), nx += x[i] * x[i];
    for (int i = 0; i < D; i++) x[i] /= sqrt(nx), xz += x[i] * w[i];
    for (int i = 0; i < D; i++) w[i] -= xz * x[i], nz += w[i] * w[i];
    for (int i = 0; i < D; i++) w[i] = rho * x[i] + sqrt(1 - rho * rho) * w[i] / sqrt(nz);
}

static void test_unbiased(void) {
    static const double rhos[3] = {-0.6, 0.3, 0.9};
    nl_rng r;
    nl_rng_init(&r, 11, 0);
    for (int k = 0; k < NL_SNNK_NKINDS; k++)
        for (int p = 0; p < 3; p++) {
            double x[D], w[D], est, se;
            pair(&r, rhos[p], x, w);
            double K = nl_snnk_kernel((nl_snnk_kind)k, x, w, D);
            CHECK(!nl_snnk_estimate((nl_snnk_kind)k, NL_SNNK_GAUSS, x, w, D, 1000000, 100 + 10 * k + p, &est, &se), "estimate");
            CHECK(fabs(est - K) <= 5 * se, "%s rho %.1f: estimate %.6f, kernel %.6f, SE %.2g", nl_snnk_kind_name(k), rhos[p], est, K, se);
            CHECK(se < 0.01 * (fabs(K) + 0.1), "%s: SE %.3g against kernel %.3g at m = 1e6 (the test must have teeth)", nl_snnk_kind_name(k), se, K);
        }
    /* the control: uniform projections give a biased estimate */
    for (int k = 0; k < NL_SNNK_NKINDS; k++) {
        double x[D], w[D], est, se;
        pair(&r, 0.3, x, w);
        double K = nl_snnk_kernel((nl_snnk_kind)k, x, w, D);
        CHECK(!nl_snnk_estimate((nl_snnk_kind)k, NL_SNNK_UNIFORM, x, w, D, 1000000, 7, &est, &se), "estimate");
        CHECK(fabs(est - K) > 5 * se, "%s uniform: estimate %.6f, kernel %.6f, SE %.2g (should be biased)", nl_snnk_kind_name(k), est, K, se);
    }
    /* closed forms at known points */
    double e1[D] = {1}, e2[D] = {0, 1};
    CHECK(fabs(nl_snnk_kernel(NL_SNNK_RELU, e1, e1, D) - 0.5) < 1e-12, "relu K(x, x) = |x|^2 / 2");
    CHECK(fabs(nl_snnk_kernel(NL_SNNK_RELU, e1, e2, D) - 1 / (2 * M_PI)) < 1e-12, "relu orthogonal");
    CHECK(fabs(nl_snnk_kernel(NL_SNNK_ARCCOS0, e1, e2, D) - 0.25) < 1e-12, "arccos0 orthogonal");
}

static void test_features(void) {
    enum { M = 37, N = 5 };
    nl_rng r;
    nl_rng_init(&r, 5, 0);
    float G[M * D], X[N * D], F[N * M];
    CHECK(!nl_snnk_proj(NL_SNNK_GAUSS, M, D, &r, G), "proj");
    for (int i = 0; i < N * D; i++) X[i] = (float)(0.4 * nl_rng_normal(&r));
    for (int k = 0; k < NL_SNNK_NKINDS; k++)
        for (int wt = 0; wt < 2; wt++) {
            CHECK(!nl_snnk_features((nl_snnk_kind)k, wt, G, M, D, X, N, F), "features");
            double worst = 0;
            for (int i = 0; i < N; i++) {
                double q = 0;
                for (int t = 0; t < D; t++) q += (double)X[i * D + t] * X[i * D + t];
                for (int j = 0; j < M; j++) {
                    double p = 0, f;
                    for (int t = 0; t < D; t++) p += (double)G[j * D + t] * X[i * D + t];
                    if (k == NL_SNNK_EXP || (k == NL_SNNK_COS && !wt)) f = exp(p - q / 2);
                    else if (k == NL_SNNK_COS) f = exp(q / 2) * cos(p);
                    else if (k == NL_SNNK_RELU) f = p > 0 ? p : 0;
                    else f = p > 0 ? 1 : 0;
                    f /= sqrt((double)M);
                    if (k == NL_SNNK_ARCCOS0 && fabs(p) < 1e-5) continue; /* the step's edge */
                    double e = fabs(f - F[i * M + j]);
                    if (e > worst) worst = e;
                }
            }
            CHECK(worst < 1e-5, "%s %s features: max error %.3g", nl_snnk_kind_name(k), wt ? "psi" : "phi", worst);
        }
}

static void test_bundle(void) {
    enum { N = 300, DD = 6, M = 40, C = 3 };
    nl_rng r;
    nl_rng_init(&r, 9, 0);
    float X[N * DD], G[M * DD], Mat[(M + 1) * C], F[N * M];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = (int32_t)nl_rng_below(&r, C);
        for (int t = 0; t < DD; t++) X[i * DD + t] = (float)(nl_rng_normal(&r) + (t == y[i] ? 2.0 : 0.0));
    }
    CHECK(!nl_snnk_proj(NL_SNNK_GAUSS, M, DD, &r, G), "proj");
    const double ridge = 1e-2;
    CHECK(!nl_snnk_bundle_fit(G, M, X, y, N, DD, C, ridge, Mat), "fit");
    CHECK(!nl_snnk_features(NL_SNNK_RELU, 0, G, M, DD, X, N, F), "features");
    /* normal equations (Phi^T Phi + lambda I) M = Phi^T Y with Phi = [F, 1] */
    static double A[(M + 1) * (M + 1)];
    memset(A, 0, sizeof A);
    for (int i = 0; i < N; i++)
        for (int a = 0; a <= M; a++)
            for (int b = 0; b <= M; b++) A[a * (M + 1) + b] += (a < M ? F[i * M + a] : 1.0) * (b < M ? F[i * M + b] : 1.0);
    double tr = 0;
    for (int a = 0; a <= M; a++) tr += A[a * (M + 1) + a];
    double lam = ridge * tr / (M + 1), worst = 0, scale = 0;
    for (int a = 0; a <= M; a++)
        for (int c = 0; c < C; c++) {
            double lhs = lam * Mat[a * C + c], rhs = 0;
            for (int b = 0; b <= M; b++) lhs += A[a * (M + 1) + b] * Mat[b * C + c];
            for (int i = 0; i < N; i++) rhs += (a < M ? F[i * M + a] : 1.0) * (y[i] == c);
            if (fabs(lhs - rhs) > worst) worst = fabs(lhs - rhs);
            if (fabs(rhs) > scale) scale = fabs(rhs);
        }
    CHECK(worst < 1e-4 * scale, "normal equations residual %.3g (scale %.3g)", worst, scale);
    double acc;
    CHECK(!nl_snnk_bundle_acc(G, M, Mat, X, y, N, DD, C, &acc), "acc");
    CHECK(acc > 0.8, "bundled training accuracy %.3f on separable clusters", acc);
}

static void test_gradcheck(void) {
    enum { B = 6, IN = 5, HID = 4, OUT = 3 };
    nl_rng r;
    nl_rng_init(&r, 21, 0);
    float X[B * IN], H[B * HID], dH[B * HID], Z[B * OUT];
    int32_t y[B];
    for (int i = 0; i < B * IN; i++) X[i] = (float)nl_rng_normal(&r);
    for (int i = 0; i < B; i++) y[i] = (int32_t)nl_rng_below(&r, OUT);
    for (int relu = 0; relu < 2; relu++) {
        nl_snnk_net n;
        CHECK(!nl_snnk_net_init(&n, IN, HID, OUT, relu), "init");
        for (int64_t i = 0; i < n.np; i++) n.p[i] = (float)(0.7 * nl_rng_normal(&r));
        nl_snnk_net_grad(&n, B, X, y, H, dH, Z);
        float *g = malloc((size_t)n.np * sizeof(float)); /* (np) analytic gradient */
        memcpy(g, n.g, (size_t)n.np * sizeof(float));
        double worst = 0;
        for (int64_t i = 0; i < n.np; i++) {
            const float h = 1e-2f, p0 = n.p[i];
            n.p[i] = p0 + h;
            double lp = nl_snnk_net_grad(&n, B, X, y, H, dH, Z);
            n.p[i] = p0 - h;
            double lm = nl_snnk_net_grad(&n, B, X, y, H, dH, Z);
            n.p[i] = p0;
            double fd = (lp - lm) / (2.0 * h), e = fabs(fd - g[i]) / (1e-2 + fabs(fd));
            if (e > worst) worst = e;
        }
        CHECK(worst < 2e-2, "%s network: worst relative gradient error %.3g", relu ? "ReLU" : "linear", worst);
        free(g);
        nl_snnk_net_free(&n);
    }
}

static void test_bad_input(void) {
    float G[8], X[8], F[8];
    nl_rng r;
    nl_rng_init(&r, 1, 0);
    double x[D] = {1}, est, se;
    CHECK(nl_snnk_proj(NL_SNNK_GAUSS, 0, D, &r, G) == NL_EINVAL, "proj m = 0");
    CHECK(strstr(nl_last_error(), "m must be >= 1") != NULL, "message: %s", nl_last_error());
    CHECK(nl_snnk_features(NL_SNNK_EXP, 0, G, 0, 1, X, 1, F) == NL_EINVAL, "features m = 0");
    CHECK(nl_snnk_estimate(NL_SNNK_EXP, NL_SNNK_GAUSS, x, x, D, 0, 1, &est, &se) == NL_EINVAL, "estimate m = 0");
    CHECK(strstr(nl_last_error(), "m must be >= 1") != NULL, "message: %s", nl_last_error());
    nl_snnk_config c = nl_snnk_defaults();
    c.m_layer = 0;
    nl_dataset ds;
    memset(&ds, 0, sizeof ds);
    nl_snnk_result res;
    CHECK(nl_snnk_run(&c, &ds, &ds, &res) == NL_EINVAL, "run m_layer = 0");
    char *a1[] = {"kernel", "--m", "0"}, *a2[] = {"train", "--m-bundle", "0"}, *a3[] = {"--help"}, *a4[] = {"kernel", "--m", "100"};
    CHECK(nl_snnk_cli(3, a1) == NL_CLI_FAIL, "cli kernel --m 0");
    CHECK(nl_snnk_cli(3, a2) == NL_CLI_FAIL, "cli train --m-bundle 0");
    CHECK(nl_snnk_cli(1, a3) == NL_CLI_OK, "cli --help");
    CHECK(nl_snnk_cli(3, a4) == NL_CLI_OK, "cli kernel --m 100");
}

int main(void) {
    test_features();
    test_gradcheck();
    test_bundle();
    test_bad_input();
    test_unbiased();
    if (!g_fail) printf("test_snnk: all passed\n");
    return g_fail;
}
