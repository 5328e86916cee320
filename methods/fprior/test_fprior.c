/* Tests of the fprior method: the hand-written MLP backward against finite differences, the GP sampler's marginal
 * variance, R-hat on mixed and on separated chains, the 1-D W1 marginal measure (a prior against itself ~ 0, against
 * a scaled copy ~ the scale gap), and that the Wasserstein fit moves a too-wide prior towards the GP's scale. */
#include "fprior/fprior.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_fail = 0;
#define CHECK(c, ...) do { if (!(c)) { g_fail = 1; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static void test_backward(void) {
    nl_fp_arch a = {3, 5, 2};
    int64_t P = nl_fp_nparams(&a);
    enum { N = 4 };
    double th[200], g[200], x[N * 3], df[N], f[N], work[200];
    CHECK(P <= 200 && nl_fp_work(&a, N) <= 200, "sizes");
    nl_rng r;
    nl_rng_init(&r, 1, 0);
    for (int64_t i = 0; i < P; i++) th[i] = 0.7 * nl_rng_normal(&r), g[i] = 0;
    for (int i = 0; i < N * 3; i++) x[i] = nl_rng_normal(&r);
    for (int i = 0; i < N; i++) df[i] = nl_rng_normal(&r);
    nl_fp_forward(&a, th, x, N, f, work);
    nl_fp_backward(&a, th, x, N, df, work, g);
    double worst = 0;
    for (int64_t i = 0; i < P; i++) {
        double keep = th[i], lp = 0, lm = 0;
        th[i] = keep + 1e-6, nl_fp_forward(&a, th, x, N, f, work);
        for (int k = 0; k < N; k++) lp += df[k] * f[k];
        th[i] = keep - 1e-6, nl_fp_forward(&a, th, x, N, f, work);
        for (int k = 0; k < N; k++) lm += df[k] * f[k];
        th[i] = keep;
        double e = fabs((lp - lm) / 2e-6 - g[i]);
        if (e > worst) worst = e;
    }
    CHECK(worst < 1e-6, "backward vs finite differences: worst error %.3g", worst);
}

static void test_gp_and_marginals(void) {
    enum { M = 5, K = 4000 };
    double x[M] = {-1, -0.5, 0, 0.5, 1}, *F = malloc(sizeof(double) * M * K);
    nl_fp_gp gp = {1, 0, 0.6, 2.0, 0, 0, 0};
    nl_rng r;
    nl_rng_init(&r, 2, 0);
    CHECK(!nl_fp_gp_functions(&gp, &r, x, M, K, F), "gp draw");
    double v = 0;
    for (int k = 0; k < K; k++) v += F[k * M + 2] * F[k * M + 2] / K;
    CHECK(fabs(v - 2.0) < 0.2, "GP marginal variance %.3f, want 2", v);
    free(F);
    /* a BNN prior against a GP: the measure is finite and the sd error matches the sd ratio */
    nl_fp_arch a = {1, 50, 1};
    nl_fp_prior p = nl_fp_prior_init(&a, 1.0);
    double m[4];
    CHECK(!nl_fp_marginals(&a, &p, &gp, x, M, 2000, 3, m), "marginals");
    CHECK(fabs(m[0] - fabs(m[2] / m[3] - 1)) < 0.1, "sd error %.3f vs ratio of means %.3f", m[0], m[2] / m[3]);
    CHECK(m[1] > 0 && m[1] < 1, "W1/sd %.3f", m[1]);
}

static void test_rhat(void) {
    enum { C = 4, S = 200 };
    double *p = malloc(sizeof(double) * C * S);
    nl_rng r;
    nl_rng_init(&r, 4, 0);
    for (int i = 0; i < C * S; i++) p[i] = nl_rng_normal(&r);
    double rh = nl_fp_rhat(p, C, S, 1, NULL);
    CHECK(rh < 1.02, "mixed chains R-hat %.3f", rh);
    for (int c = 0; c < C; c++)
        for (int t = 0; t < S; t++) p[c * S + t] += 3.0 * c;
    rh = nl_fp_rhat(p, C, S, 1, NULL);
    CHECK(rh > 2, "separated chains R-hat %.3f", rh);
    free(p);
}

static void test_fit_direction(void) {
    /* a 1-50-1 prior starting far too wide (softplus(3) = 3.05) against a GP of variance 1: the fit must shrink it */
    nl_fp_arch a = {1, 20, 1};
    nl_fp_gp gp = {1, 0, 0.6, 1.0, 0, 0, 0};
    nl_fp_prior p = nl_fp_prior_init(&a, 3.0);
    nl_fp_fit_cfg c = nl_fp_fit_defaults();
    c.outer = 30, c.critic_steps = 20, c.n_fn = 32, c.n_meas = 20, c.critic_hidden = 32;
    double xtr[10], lo = -1.5, hi = 1.5, x[20], m0[4], m1[4];
    for (int i = 0; i < 10; i++) xtr[i] = -1.5 + 3.0 * i / 9;
    for (int i = 0; i < 20; i++) x[i] = -1.5 + 3.0 * i / 19;
    CHECK(!nl_fp_marginals(&a, &p, &gp, x, 20, 500, 5, m0), "marginals before");
    CHECK(!nl_fp_fit(&a, &p, &gp, &c, xtr, 10, &lo, &hi, 6, NULL), "fit");
    CHECK(!nl_fp_marginals(&a, &p, &gp, x, 20, 500, 5, m1), "marginals after");
    CHECK(m1[0] < 0.5 * m0[0], "sd error before %.3f after %.3f", m0[0], m1[0]);
    /* bad input */
    c.outer = 0;
    CHECK(nl_fp_fit(&a, &p, &gp, &c, xtr, 10, &lo, &hi, 6, NULL) == NL_EINVAL, "outer 0 must be rejected");
}

static void test_penalty_grad(void) {
    enum { M = 4, H = 3, N = 3 };
    const int cP = M * H + H * H + 3 * H + 1;
    double prm[64], g[64], X[N * M], work[8 * H + 2 * M];
    nl_rng r;
    nl_rng_init(&r, 9, 0);
    for (int i = 0; i < cP; i++) prm[i] = 0.8 * nl_rng_normal(&r), g[i] = 0;
    for (int i = 0; i < N * M; i++) X[i] = nl_rng_normal(&r);
    nl_fp_critic_penalty(M, H, prm, X, N, 10, g, work);
    double worst = 0, scale = 0;
    for (int i = 0; i < cP; i++) {
        double keep = prm[i], dummy[64] = {0};
        prm[i] = keep + 1e-6;
        double lp = nl_fp_critic_penalty(M, H, prm, X, N, 10, dummy, work);
        prm[i] = keep - 1e-6;
        double lm = nl_fp_critic_penalty(M, H, prm, X, N, 10, dummy, work);
        prm[i] = keep;
        double e = fabs((lp - lm) / 2e-6 - g[i]);
        if (e > worst) worst = e;
        if (fabs(g[i]) > scale) scale = fabs(g[i]);
    }
    CHECK(worst < 1e-5 * (1 + scale), "gradient-penalty double backward vs finite differences: worst error %.3g (scale %.3g)", worst, scale);
}

int main(void) {
    test_penalty_grad();
    test_backward();
    test_gp_and_marginals();
    test_rhat();
    test_fit_direction();
    if (!g_fail) printf("test_fprior: all passed\n");
    return g_fail;
}
