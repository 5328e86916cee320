/* Tests of the biper method: the binarisers' values and surrogate gradients (finite differences away from the
 * kinks), the QE against closed forms, the network's shapes, and export + packed inference against the float
 * network (bit-exact predictions), plus the packed loader's refusals. */
#include "biper/biper.h"
#include "bnn/bnn.h"
#include "nnlab/safetensors.h"
#include "nnlab/extend.h"
#include "nnlab/ops.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_fail = 0, g_pass = 0;
#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (cond) g_pass++;                                           \
        else {                                                        \
            g_fail++;                                                 \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);               \
            printf(__VA_ARGS__);                                      \
            printf("\n");                                             \
        }                                                             \
    } while (0)

/* initialisation as the official models: every conv (float first and binary) kaiming_normal_ N(0, 2 / fan_in),
 * checked by the sample std (within 3%, about 7 SE at 36864 values) and the kurtosis (3 for a normal, 1.8 for the
 * uniform PyTorch default) */
static void moments(const float *x, int64_t n, double *sd, double *kurt) {
    double m2 = 0, m4 = 0;
    for (int64_t i = 0; i < n; i++) m2 += (double)x[i] * x[i], m4 += (double)x[i] * x[i] * x[i] * x[i];
    m2 /= (double)n, m4 /= (double)n;
    *sd = sqrt(m2), *kurt = m4 / (m2 * m2);
}

static void test_init(void) {
    nl_biper_net m;
    CHECK(!nl_biper_net_init(&m, 64, 64, 3), "net init: %s", nl_last_error());
    double sd, ku;
    moments(m.w1->val.data, nl_tensor_numel(&m.w1->val), &sd, &ku);
    CHECK(fabs(sd / sqrt(2.0 / 9.0) - 1) < 0.15, "conv1 weight std %g, expected sqrt(2/9) = %g (576 values)", sd, sqrt(2.0 / 9.0));
    for (int l = 0; l < NL_BIPER_NBIN; l++) {
        moments(m.wb[l]->val.data, nl_tensor_numel(&m.wb[l]->val), &sd, &ku);
        CHECK(fabs(sd / sqrt(2.0 / (9.0 * 64)) - 1) < 0.03 && fabs(ku - 3) < 0.3, "binary conv %d weight std %g (expected %g), kurtosis %g "
              "(expected 3)", l + 2, sd, sqrt(2.0 / (9.0 * 64)), ku);
    }
    nl_biper_net_free(&m);
}

/* the notes' values: omega 20, w = 0.1 -> +1, w = 0.2 -> -1, gradient at 0.1 = 20 cos 2 = -8.3229 (stage 2) */
static void test_weight_values(void) {
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    float wv[3] = {0.1f, 0.2f, 0.0f};
    nl_var *w = nl_leaf(c, nl_tensor_wrap(wv, NL_F32, 1, (int64_t[]){3}), 1);
    nl_var *y = nl_biper_weight(c, w, 20, NL_BIPER_SIGN_SIN);
    const float *yp = y->val.data;
    CHECK(yp[0] == 1 && yp[1] == -1 && yp[2] == 1, "sign(sin(20 w)) = %g %g %g, expected 1 -1 1 (sign(0) = +1)", yp[0], yp[1], yp[2]);
    nl_backward(c, nl_sum(c, y, NL_AXIS_ALL, 0));
    const float *g = w->grad.data;
    CHECK(fabs(g[0] - 20 * cos(2.0)) < 1e-4 && fabs(g[0] + 8.3229) < 1e-3, "stage-2 gradient at 0.1 = %g, expected 20 cos 2 = -8.3229", g[0]);
    CHECK(fabs(g[1] - 20 * cos(4.0)) < 1e-4, "stage-2 gradient at 0.2 = %g, expected %g", g[1], 20 * cos(4.0));
    nl_ctx_reset(c);
    w = nl_leaf(c, nl_tensor_wrap(wv, NL_F32, 1, (int64_t[]){3}), 1);
    y = nl_biper_weight(c, w, 20, NL_BIPER_STE);
    yp = y->val.data;
    CHECK(yp[0] == 1 && yp[1] == 1 && yp[2] == 1, "STE sign(w) = %g %g %g, expected 1 1 1", yp[0], yp[1], yp[2]);
    nl_backward(c, nl_sum(c, y, NL_AXIS_ALL, 0));
    g = w->grad.data;
    CHECK(g[0] == 1 && g[1] == 1 && g[2] == 1, "STE gradient %g %g %g, expected 1 (identity)", g[0], g[1], g[2]);
    nl_ctx_free(c);
}

/* stage 1 and stage 2 backward against the finite-difference derivative of L = sum_i r_i sin(omega w_i) */
static void test_weight_fd(void) {
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    enum { N = 16 };
    float wv[N], r[N];
    nl_rng g;
    nl_rng_init(&g, 7, 1);
    for (int i = 0; i < N; i++) wv[i] = (float)(0.3 * (nl_rng_uniform(&g) - 0.5)), r[i] = (float)(nl_rng_uniform(&g) - 0.5);
    for (int mode = NL_BIPER_SIN; mode <= NL_BIPER_SIGN_SIN; mode++) {
        nl_ctx_reset(c);
        nl_var *w = nl_leaf(c, nl_tensor_wrap(wv, NL_F32, 1, (int64_t[]){N}), 1);
        nl_var *rv = nl_input(c, nl_tensor_wrap(r, NL_F32, 1, (int64_t[]){N}));
        nl_backward(c, nl_sum(c, nl_mul(c, nl_biper_weight(c, w, 20, (nl_biper_wmode)mode), rv), NL_AXIS_ALL, 0));
        double err = 0;
        for (int i = 0; i < N; i++) {
            const double h = 1e-4, fd = r[i] * (sin(20 * (wv[i] + h)) - sin(20 * (wv[i] - h))) / (2 * h);
            err = fmax(err, fabs(((float *)w->grad.data)[i] - fd));
        }
        CHECK(err < 1e-3, "weight mode %d: gradient vs finite differences of sin(omega w), max error %g", mode, err);
    }
    nl_ctx_free(c);
}

/* F(x) = integral of max(0, 2 - 2|x|): 2x - x|x| on |x| <= 1, sign(x) outside; the surrogate's primitive */
static double prim(double x) { return x > 1 ? 1 : x < -1 ? -1 : 2 * x - x * fabs(x); }

/* L(a) = sum_i r_i F(a0_i), a0 = a / sqrt(Var_row(a) + 1e-5) (unbiased, per row) in double */
static double act_loss(const double *a, const double *r, int N, int D, int train) {
    double L = 0;
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0, s = 1;
        if (train) {
            for (int i = 0; i < D; i++) m += a[n * D + i];
            m /= D;
            for (int i = 0; i < D; i++) v += (a[n * D + i] - m) * (a[n * D + i] - m);
            s = sqrt(v / (D - 1) + 1e-5);
        }
        for (int i = 0; i < D; i++) L += r[n * D + i] * prim(a[n * D + i] / s);
    }
    return L;
}

static void test_act(void) {
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    /* value and the notes' eval-mode gradient at x = 0.25: 2 - 0.5 = 1.5 */
    float xv[4] = {0.25f, -0.25f, 0.0f, 1.5f};
    nl_var *x = nl_leaf(c, nl_tensor_wrap(xv, NL_F32, 2, (int64_t[]){1, 4}), 1);
    nl_var *y = nl_biper_act(c, x, 0);
    const float *yp = y->val.data;
    CHECK(yp[0] == 1 && yp[1] == -1 && yp[2] == 1 && yp[3] == 1, "sign activation %g %g %g %g, expected 1 -1 1 1", yp[0], yp[1], yp[2], yp[3]);
    nl_backward(c, nl_sum(c, y, NL_AXIS_ALL, 0));
    const float *g = x->grad.data;
    CHECK(fabs(g[0] - 1.5) < 1e-6 && fabs(g[1] - 1.5) < 1e-6 && fabs(g[2] - 2) < 1e-6 && g[3] == 0,
          "eval surrogate gradients %g %g %g %g, expected 1.5 1.5 2 0", g[0], g[1], g[2], g[3]);
    /* train mode, [3, 2, 2, 3]: backward vs finite differences of sum r F(a0), away from the kinks (|a0| near 0, 1) */
    enum { N = 3, D = 12 };
    double a[N * D], r[N * D];
    float af[N * D];
    nl_rng gr;
    nl_rng_init(&gr, 11, 2);
    for (int i = 0; i < N * D; i++) {
        double u;
        do u = 2.4 * (nl_rng_uniform(&gr) - 0.5); while (fabs(fabs(u) - 1) < 0.15 || fabs(u) < 0.1);
        a[i] = u * (1 + i / D), af[i] = (float)a[i], r[i] = nl_rng_uniform(&gr) - 0.5;
    }
    for (int train = 0; train <= 1; train++) {
        nl_ctx_reset(c);
        float rf[N * D];
        for (int i = 0; i < N * D; i++) rf[i] = (float)r[i];
        nl_var *av = nl_leaf(c, nl_tensor_wrap(af, NL_F32, 4, (int64_t[]){N, 2, 2, 3}), 1);
        nl_var *rv = nl_input(c, nl_tensor_wrap(rf, NL_F32, 4, (int64_t[]){N, 2, 2, 3}));
        nl_backward(c, nl_sum(c, nl_mul(c, nl_biper_act(c, av, train), rv), NL_AXIS_ALL, 0));
        double err = 0, scale = 0;
        for (int i = 0; i < N * D; i++) {
            double ap[N * D];
            memcpy(ap, a, sizeof ap);
            const double h = 1e-5;
            ap[i] = a[i] + h;
            double lp = act_loss(ap, r, N, D, train);
            ap[i] = a[i] - h;
            double fd = (lp - act_loss(ap, r, N, D, train)) / (2 * h);
            err = fmax(err, fabs(((float *)av->grad.data)[i] - fd)), scale = fmax(scale, fabs(fd));
        }
        CHECK(err < 1e-4 * (1 + scale), "activation surrogate (train %d): backward vs finite differences, max error %g (scale %g)", train, err, scale);
    }
    nl_ctx_free(c);
}

static void test_qe(void) {
    /* uniform phase over whole half-periods: QE = 1 - 2/pi (midpoint rule) */
    enum { N = 20000 };
    float *w = malloc(N * sizeof *w);
    const double om = 20;
    for (int i = 0; i < N; i++) w[i] = (float)((i + 0.5) / N * 3 * M_PI / om - 1.5 * M_PI / om);
    double q = nl_biper_qe(w, N, om);
    CHECK(fabs(q - (1 - 2 / M_PI)) < 1e-5, "QE of a uniform grid over 3 half-periods %.7f, expected 1 - 2/pi = %.7f", q, 1 - 2 / M_PI);
    /* w ~ N(0, s^2): the closed form, at 5 standard errors of 200k samples, for s omega from small to large */
    nl_rng g;
    nl_rng_init(&g, 3, 4);
    const int M = 200000;
    float *z = malloc((size_t)M * sizeof *z);
    nl_tensor t = nl_tensor_wrap(z, NL_F32, 1, (int64_t[]){M});
    nl_rng_fill_normal(&g, &t, 0, 1);
    const double ss[3] = {0.005, 0.05, 0.2};
    for (int k = 0; k < 3; k++) {
        double acc = 0, acc2 = 0;
        for (int i = 0; i < M; i++) {
            float v = (float)(z[i] * ss[k]);
            double e = nl_biper_qe(&v, 1, om);
            acc += e, acc2 += e * e;
        }
        double mean = acc / M, se = sqrt((acc2 / M - mean * mean) / M), cf = nl_biper_qe_normal(om, ss[k]);
        CHECK(fabs(mean - cf) < 5 * se + 1e-6, "QE for N(0, %g^2) at omega 20: sample %.5f +- %.5f, closed form %.5f", ss[k], mean, se, cf);
    }
    /* the limits: omega s -> 0 gives QE -> 1, large omega s gives 1 - 2/pi */
    CHECK(fabs(nl_biper_qe_normal(20, 1e-6) - 1) < 1e-4 && fabs(nl_biper_qe_normal(20, 10) - (1 - 2 / M_PI)) < 1e-9, "QE closed-form limits");
    free(z), free(w);
}

/* A random network with random BN statistics (negative gammas: decreasing folded functions) and alphas: the packed
 * export predicts as the float network on random images, also after a save / load round trip; the loader refuses a
 * float checkpoint, another biper format version, a model whose declared channels do not match its layers, and a
 * file of another bnn version. */
static void test_packed(void) {
    nl_biper_net m;
    CHECK(!nl_biper_net_init(&m, 5, 70, 9), "net init: %s", nl_last_error()); /* 70 channels: two words per packed row */
    nl_rng g;
    nl_rng_init(&g, 5, 6);
    for (int l = 0; l < NL_BIPER_NBIN; l++) {
        nl_rng_fill_uniform(&g, &m.bn[l].g->val, -1.5, 1.5);
        nl_rng_fill_uniform(&g, &m.bn[l].b->val, -1, 1);
        nl_rng_fill_uniform(&g, &m.bn[l].rm->val, -3, 3);
        nl_rng_fill_uniform(&g, &m.bn[l].rv->val, 0.5, 4);
    }
    nl_rng_fill_uniform(&g, &m.bn1.rm->val, -0.3, 0.3);
    enum { N = 300 };
    float *x = malloc((size_t)N * 784 * sizeof *x);
    int32_t pf[N], pp[N], pl[N];
    nl_tensor xt = nl_tensor_wrap(x, NL_F32, 2, (int64_t[]){N, 784});
    nl_rng_fill_normal(&g, &xt, 0, 1);
    nl_biper_config cfg = nl_biper_defaults();
    for (int method = 0; method < 2; method++) {
        cfg.method = method ? NL_BIPER_STE : NL_BIPER_SIN;
        nl_biper_packed *p = NULL, *q = NULL;
        nl_status s = nl_biper_predict(&m, &cfg, x, N, pf);
        if (!s) s = nl_biper_export(&m, &cfg, &p);
        if (!s) s = nl_biper_packed_predict(p, x, N, pp);
        if (!s) s = nl_biper_packed_save(p, "test_biper_packed.bnn");
        if (!s) s = nl_biper_packed_load("test_biper_packed.bnn", &q);
        if (!s) s = nl_biper_packed_predict(q, x, N, pl);
        CHECK(!s, "export / save / load / predict (%s): %s", method ? "ste" : "biper", nl_last_error());
        int same = 0, same_l = 0, classes = 0, seen[10] = {0};
        for (int i = 0; !s && i < N; i++) same += pf[i] == pp[i], same_l += pp[i] == pl[i], seen[pf[i]] = 1;
        for (int k = 0; k < 10; k++) classes += seen[k];
        CHECK(same == N && same_l == N && classes >= 3, "%s: packed = float on %d of %d, loaded = exported on %d, %d classes predicted",
              method ? "ste" : "biper", same, N, same_l, classes);
        nl_biper_packed_free(p), nl_biper_packed_free(q);
    }
    /* refusals */
    nl_biper_packed *q = NULL;
    CHECK(!nl_safetensors_save("test_biper_float.safetensors", &m.ps, NULL), "save float: %s", nl_last_error());
    nl_status s = nl_biper_packed_load("test_biper_float.safetensors", &q);
    CHECK(s == NL_EFORMAT && !q && strstr(nl_last_error(), "safetensors"), "float checkpoint to the packed loader: status %d, '%s'", s, nl_last_error());
    /* the biper layer's version, then its channel count, changed in a valid bnn file */
    for (int k = 0; k < 2; k++) {
        nl_bnn_model bm;
        nl_bnn_model_init(&bm);
        s = nl_bnn_model_load(&bm, "test_biper_packed.bnn");
        CHECK(!s && bm.n_layers == 12, "bnn load: %s", nl_last_error());
        if (s) break;
        ((int32_t *)bm.layers[0].data)[k ? 2 : 0] += 1;
        s = nl_bnn_model_save(&bm, "test_biper_bad.bnn");
        nl_bnn_model_free(&bm);
        q = NULL;
        s = s ? s : nl_biper_packed_load("test_biper_bad.bnn", &q);
        CHECK(!q && (k ? s == NL_ESHAPE : s == NL_EFORMAT && strstr(nl_last_error(), "version")), "%s: status %d, '%s'",
              k ? "wrong shape" : "wrong biper version", s, nl_last_error());
        nl_biper_packed_free(q);
    }
    /* the bnn file version (bytes 8-11) */
    FILE *f = fopen("test_biper_packed.bnn", "r+b");
    if (f) {
        uint32_t v = 99;
        fseek(f, 8, SEEK_SET), fwrite(&v, 4, 1, f), fclose(f);
    }
    q = NULL;
    s = nl_biper_packed_load("test_biper_packed.bnn", &q);
    CHECK(f && !q && s == NL_EFORMAT && strstr(nl_last_error(), "version"), "wrong file version: status %d, '%s'", s, nl_last_error());
    remove("test_biper_packed.bnn"), remove("test_biper_bad.bnn"), remove("test_biper_float.safetensors");
    free(x);
    nl_biper_net_free(&m);
}

int main(void) {
    test_init();
    test_weight_values();
    test_weight_fd();
    test_act();
    test_qe();
    test_packed();
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
