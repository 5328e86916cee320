/* Tests of the STN method: finite-difference checks of the hyper-layer (with its L2 penalty), the ridge-regression
 * best-response test (the tuned log lambda within 0.2 of the grid optimum of the exact validation loss), and that a
 * hyper step leaves the weights untouched while a weight step leaves the hyperparameters untouched. */
#include "stn/stn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_fail = 0;
#define CHECK(c, ...) do { if (!(c)) { g_fail = 1; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

enum { B = 5, IN = 4, OUT = 3, NH = 2 };

/* L = sum(y * R) + pen(lam) for the layer at its current parameters */
static double loss(nl_stn_linear *l, const float *x, const float *h, const float *R, const float *lam, float *y, float *ag, float *zc) {
    nl_stn_linear_forward(l, B, x, h, y, ag, zc);
    double L = 0;
    for (int i = 0; i < B * OUT; i++) L += (double)y[i] * R[i];
    return L + nl_stn_linear_l2(l, B, lam, zc, 0.0, NULL);
}

static void test_gradcheck(void) {
    nl_rng r;
    nl_rng_init(&r, 3, 0);
    nl_stn_linear l;
    CHECK(!nl_stn_linear_init(&l, IN, OUT, NH, &r), "init");
    for (int i = 0; i < 2 * OUT * NH; i++) l.U[i] = (float)nl_rng_normal(&r); /* larger than the init so every term matters */
    l.s = 1.3f;
    float x[B * IN], h[B * NH], R[B * OUT], lam[B], y[B * OUT], ag[B * 2 * OUT], zc[B * 2 * OUT], dz[B * 2 * OUT], sc[B * 2 * OUT];
    float dx[B * IN], dh[B * NH];
    for (int i = 0; i < B * IN; i++) x[i] = (float)nl_rng_normal(&r);
    for (int i = 0; i < B * NH; i++) h[i] = (float)nl_rng_normal(&r);
    for (int i = 0; i < B * OUT; i++) R[i] = (float)nl_rng_normal(&r);
    for (int i = 0; i < B; i++) lam[i] = (float)(0.5 + nl_rng_uniform(&r));
    nl_stn_linear_zero_grad(&l);
    loss(&l, x, h, R, lam, y, ag, zc);
    memset(dz, 0, sizeof dz);
    nl_stn_linear_l2(&l, B, lam, zc, 1.0, dz);
    nl_stn_linear_backward(&l, B, x, h, ag, zc, R, dz, dx, dh, sc);
    struct { float *p, *g; int n; const char *name; } ps[] = {
        {l.W, l.dW, 2 * OUT * IN, "W"}, {l.be, l.dbe, OUT, "be"}, {l.bh, l.dbh, OUT, "bh"}, {l.U, l.dU, 2 * OUT * NH, "U"},
        {&l.s, &l.ds, 1, "s"}, {x, dx, B * IN, "x"}, {h, dh, B * NH, "h"}};
    const double eps = 1e-2;
    double worst = 0;
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++)
        for (int i = 0; i < ps[k].n; i++) {
            float keep = ps[k].p[i];
            ps[k].p[i] = keep + (float)eps;
            double lp = loss(&l, x, h, R, lam, y, ag, zc);
            ps[k].p[i] = keep - (float)eps;
            double lm = loss(&l, x, h, R, lam, y, ag, zc);
            ps[k].p[i] = keep;
            double num = (lp - lm) / (2 * eps), ana = ps[k].g[i];
            if (ps[k].p == h) continue; /* h is checked below */
            double err = fabs(num - ana) / (1e-3 + fabs(num) + fabs(ana));
            if (err > worst) worst = err;
            CHECK(err < 2e-2, "%s[%d]: numeric %.6f analytic %.6f", ps[k].name, i, num, ana);
        }
    /* dh: the data term plus the penalty's path through z (lam held fixed) */
    for (int i = 0; i < B * NH; i++) {
        float keep = h[i];
        h[i] = keep + (float)eps;
        double lp = loss(&l, x, h, R, lam, y, ag, zc);
        h[i] = keep - (float)eps;
        double lm = loss(&l, x, h, R, lam, y, ag, zc);
        h[i] = keep;
        double num = (lp - lm) / (2 * eps), err = fabs(num - dh[i]) / (1e-3 + fabs(num) + fabs(dh[i]));
        if (err > worst) worst = err;
        CHECK(err < 2e-2, "h[%d]: numeric %.6f analytic %.6f", i, num, dh[i]);
    }
    printf("gradcheck: worst relative error %.2e\n", worst);
    nl_stn_linear_free(&l);
}

static void test_ridge(void) {
    enum { N = 40, NV = 200, D = 12 };
    nl_rng r;
    nl_rng_init(&r, 11, 0);
    static float X[N * D], y[N], Xv[NV * D], yv[NV];
    float w[D];
    for (int j = 0; j < D; j++) w[j] = (float)nl_rng_normal(&r);
    for (int i = 0; i < N + NV; i++) {
        float *xr = i < N ? X + i * D : Xv + (i - N) * D, t = 0;
        for (int j = 0; j < D; j++) xr[j] = (float)nl_rng_normal(&r), t += w[j] * xr[j];
        t += (float)(2.5 * nl_rng_normal(&r));
        if (i < N) y[i] = t;
        else yv[i - N] = t;
    }
    double best = INFINITY, arg = 0;
    for (double t = -8; t <= 4 + 1e-9; t += 0.01) {
        double L;
        CHECK(!nl_stn_ridge_val_loss(X, y, N, Xv, yv, NV, D, t, &L), "val loss");
        if (L < best) best = L, arg = t;
    }
    CHECK(arg > -7.9 && arg < 3.9, "grid optimum %.2f is on the grid's edge", arg);
    nl_stn_ridge_cfg c = nl_stn_ridge_defaults();
    double tl = NAN;
    CHECK(!nl_stn_ridge_tune(&c, X, y, N, Xv, yv, NV, D, &tl), "tune: %s", nl_last_error());
    double Ls;
    nl_stn_ridge_val_loss(X, y, N, Xv, yv, NV, D, tl, &Ls);
    printf("ridge: grid optimum log lambda %.3f (val loss %.4f), STN %.3f (val loss %.4f)\n", arg, best, tl, Ls);
    CHECK(fabs(tl - arg) <= 0.2, "STN log lambda %.3f vs grid optimum %.3f", tl, arg);
}

/* a hyper step (forward / backward on validation rows, Adam on t and q) must not move W; a weight step (SGD) must not
 * move t or q */
static void test_isolation(void) {
    nl_rng r;
    nl_rng_init(&r, 5, 0);
    nl_stn_linear l;
    CHECK(!nl_stn_linear_init(&l, IN, OUT, NH, &r), "init");
    nl_stn_tuner tu;
    double t0[NH] = {0.3, -1.0};
    nl_stn_tuner_init(&tu, NH, t0, 0.5, 0.01, 0.01, 1e-3);
    float x[B * IN], h[B * NH], eps[B * NH], y[B * OUT], ag[B * 2 * OUT], zc[B * 2 * OUT], sc[B * 2 * OUT], dh[B * NH], dz[B * 2 * OUT], lam[B];
    for (int i = 0; i < B * IN; i++) x[i] = (float)nl_rng_normal(&r);
    float W0[2 * OUT * IN], U0[2 * OUT * NH];
    memcpy(W0, l.W, sizeof W0), memcpy(U0, l.U, sizeof U0);
    /* hyper step */
    nl_stn_tuner_sample(&tu, B, 0, &r, h, NULL);
    nl_stn_linear_zero_grad(&l);
    nl_stn_linear_forward(&l, B, x, h, y, ag, zc);
    nl_stn_linear_backward(&l, B, x, h, ag, zc, y, NULL, NULL, dh, sc);
    nl_stn_tuner_step_t(&tu, B, dh);
    nl_stn_tuner_sample(&tu, B, 1, &r, h, eps);
    nl_stn_linear_forward(&l, B, x, h, y, ag, zc);
    nl_stn_linear_backward(&l, B, x, h, ag, zc, y, NULL, NULL, dh, sc);
    nl_stn_tuner_step_q(&tu, B, dh, eps);
    CHECK(!memcmp(W0, l.W, sizeof W0) && !memcmp(U0, l.U, sizeof U0), "hyper step moved the weights");
    CHECK(tu.t[0] != t0[0] && tu.t[1] != t0[1], "hyper step did not move t");
    /* weight step */
    double tk[NH] = {tu.t[0], tu.t[1]}, qk[NH] = {tu.q[0], tu.q[1]};
    nl_stn_tuner_sample(&tu, B, 1, &r, h, eps);
    for (int b = 0; b < B; b++) lam[b] = (float)exp(h[b * NH]);
    nl_stn_linear_zero_grad(&l);
    nl_stn_linear_forward(&l, B, x, h, y, ag, zc);
    memset(dz, 0, sizeof dz);
    nl_stn_linear_l2(&l, B, lam, zc, 1.0, dz);
    nl_stn_linear_backward(&l, B, x, h, ag, zc, y, dz, NULL, NULL, sc);
    nl_stn_linear_sgd(&l, 0.1, 0.9, 1);
    CHECK(tu.t[0] == tk[0] && tu.t[1] == tk[1] && tu.q[0] == qk[0] && tu.q[1] == qk[1], "weight step moved the hyperparameters");
    CHECK(memcmp(W0, l.W, sizeof W0) != 0, "weight step did not move W");
    nl_stn_linear_free(&l);
}

static void test_transforms(void) {
    for (int k = 0; k < 3; k++) {
        double v = k == 2 ? 3e-4 : 0.37;
        double t = nl_stn_hparam_inv((nl_stn_hkind)k, v);
        CHECK(fabs(nl_stn_hparam((nl_stn_hkind)k, t) - v) < 1e-9 * (1 + v), "transform %d round trip", k);
    }
    CHECK(nl_stn_hparam(NL_STN_HK_DROP, 50) <= 0.9 + 1e-12, "hidden dropout above 0.9");
}

int main(void) {
    test_transforms();
    test_gradcheck();
    test_isolation();
    test_ridge();
    if (g_fail) return 1;
    printf("test_stn: ok\n");
    return 0;
}
