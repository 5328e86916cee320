/* Engine ops of the diffusion UNet: GroupNorm, SiLU, nearest upsampling — values against direct formulas and
 * gradients against central finite differences (f64), plus the f32 paths and the argument errors. */
#include "nltest.h"
#include "nltest_nn.h"

/* ---- GroupNorm ---- */
typedef struct { int groups, affine; } gn_ud;
static nl_var *f_gn(nl_ctx *c, nl_var **in, void *ud) {
    const gn_ud *g = ud;
    return nl_groupnorm(c, in[0], g->groups, g->affine ? in[1] : NULL, g->affine ? in[2] : NULL, 1e-5);
}

static void gn_ref(const nl_tensor *x, int G, const nl_tensor *ga, const nl_tensor *be, double *y) {
    const int64_t N = x->shape[0], C = x->shape[1], S = nl_tensor_numel(x) / (N * C), cg = C / G;
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            double m = 0, v = 0;
            const int64_t o = (n * C + g * cg) * S, M = cg * S;
            for (int64_t i = 0; i < M; i++) m += nl_tensor_get(x, o + i);
            m /= M;
            for (int64_t i = 0; i < M; i++) v += (nl_tensor_get(x, o + i) - m) * (nl_tensor_get(x, o + i) - m);
            v /= M;
            for (int64_t i = 0; i < M; i++) {
                const int64_t ch = g * cg + i / S;
                y[o + i] = (nl_tensor_get(x, o + i) - m) / sqrt(v + 1e-5) * (ga ? nl_tensor_get(ga, ch) : 1) +
                           (be ? nl_tensor_get(be, ch) : 0);
            }
        }
}

static void test_groupnorm_value(void) {
    for (int f64 = 0; f64 < 2; f64++) {
        nl_dtype dt = f64 ? NL_F64 : NL_F32;
        nl_tensor x = mk(dt, 4, 3, 6, 4, 5), ga = mk(dt, 1, 6, 1, 1, 1), be = mk(dt, 1, 6, 1, 1, 1);
        fill(&x, 1, -2, 3);
        fill(&ga, 2, 0.5, 1.5);
        fill(&be, 3, -1, 1);
        for (int G = 1; G <= 6; G++) {
            if (6 % G) continue;
            nl_ctx *c = nl_ctx_new(1 << 20, 0);
            nl_var *y = nl_groupnorm(c, nl_input(c, x), G, nl_input(c, ga), nl_input(c, be), 1e-5);
            NLT_CHECK(y != NULL, "%s", nl_last_error());
            double *ref = malloc(360 * sizeof(double));
            gn_ref(&x, G, &ga, &be, ref);
            double err = 0;
            for (int64_t i = 0; y && i < 360; i++) err = fmax(err, fabs(nl_tensor_get(&y->val, i) - ref[i]));
            NLT_CHECK(err < (f64 ? 1e-12 : 2e-5), "G=%d f64=%d err %g", G, f64, err);
            free(ref);
            nl_ctx_free(c);
        }
        free(x.data), free(ga.data), free(be.data);
    }
    /* 3-D input [N, C, L] and no affine */
    nl_tensor x = mk(NL_F64, 3, 2, 4, 7, 1);
    fill(&x, 4, -1, 1);
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    nl_var *y = nl_groupnorm(c, nl_input(c, x), 2, NULL, NULL, 1e-5);
    double ref[56];
    gn_ref(&x, 2, NULL, NULL, ref);
    double err = 0;
    for (int i = 0; y && i < 56; i++) err = fmax(err, fabs(nl_tensor_get(&y->val, i) - ref[i]));
    NLT_CHECK(y && err < 1e-12, "3-D err %g", err);
    /* errors */
    NLT_CHECK(!nl_groupnorm(c, nl_input(c, x), 3, NULL, NULL, 1e-5) && nl_last_status() == NL_EINVAL, "groups 3 of 4");
    NLT_CHECK(strstr(nl_last_error(), "groupnorm") != NULL, "%s", nl_last_error());
    nl_tensor bad = mk(NL_F64, 1, 3, 1, 1, 1);
    NLT_CHECK(!nl_groupnorm(c, nl_input(c, x), 2, nl_input(c, bad), NULL, 1e-5), "gamma of 3 for 4 channels");
    nl_ctx_free(c);
    free(x.data), free(bad.data);
}

/* x used twice: the GroupNorm backward then adds to an existing input gradient instead of storing a fresh one */
static nl_var *f_gn_twice(nl_ctx *c, nl_var **in, void *ud) {
    return nl_mul(c, nl_groupnorm(c, in[0], 2, in[1], in[2], 1e-5), in[0]);
}

static void test_groupnorm_grad(void) {
    nl_tensor in[3] = {mk(NL_F64, 4, 2, 6, 3, 3), mk(NL_F64, 1, 6, 1, 1, 1), mk(NL_F64, 1, 6, 1, 1, 1)};
    fill(&in[0], 5, -2, 2);
    fill(&in[1], 6, 0.5, 1.5);
    fill(&in[2], 7, -1, 1);
    gn_ud u1 = {3, 1}, u2 = {1, 1}, u3 = {6, 0};
    gc("groupnorm G=3 affine", f_gn, &u1, 3, in, 1);
    gc("groupnorm G=1 affine", f_gn, &u2, 3, in, 1);
    gc("groupnorm G=C plain", f_gn, &u3, 1, in, 1);
    gc("groupnorm(x) * x", f_gn_twice, NULL, 3, in, 1);
    for (int k = 0; k < 3; k++) free(in[k].data);
}

/* ---- SiLU ---- */
static nl_var *f_silu(nl_ctx *c, nl_var **in, void *ud) { return nl_silu(c, in[0]); }

static void test_silu(void) {
    for (int f64 = 0; f64 < 2; f64++) {
        nl_tensor x = mk(f64 ? NL_F64 : NL_F32, 2, 5, 13, 1, 1);
        fill(&x, 8, -12, 12);
        nl_tensor_set(&x, 0, 0.0);
        nl_tensor_set(&x, 1, -100.0);
        nl_tensor_set(&x, 2, 100.0);
        nl_ctx *c = nl_ctx_new(1 << 20, 0);
        nl_var *xi = nl_leaf(c, x, 1);
        nl_var *y = nl_silu(c, xi);
        double err = 0;
        for (int64_t i = 0; y && i < 65; i++) {
            const double v = nl_tensor_get(&x, i);
            err = fmax(err, fabs(nl_tensor_get(&y->val, i) - v / (1 + exp(-v))));
        }
        NLT_CHECK(y && err < (f64 ? 1e-14 : 1e-5), "silu value err %g (f64 %d)", err, f64);
        /* f32 gradient against the f64 formula */
        NLT_OK(nl_backward_seed(c, y, &y->val));
        double gerr = 0;
        for (int64_t i = 0; i < 65; i++) {
            const double v = nl_tensor_get(&x, i), s = 1 / (1 + exp(-v)), yv = v * s;
            gerr = fmax(gerr, fabs(nl_tensor_get(&xi->grad, i) - yv * s * (1 + v * (1 - s))));
        }
        NLT_CHECK(gerr < (f64 ? 1e-12 : 1e-4), "silu grad err %g (f64 %d)", gerr, f64);
        nl_ctx_free(c);
        free(x.data);
    }
    nl_tensor x = mk(NL_F64, 3, 2, 3, 4, 1);
    fill(&x, 9, -4, 4);
    gc("silu", f_silu, NULL, 1, &x, 1);
    free(x.data);
}

/* ---- upsample ---- */
static nl_var *f_up(nl_ctx *c, nl_var **in, void *ud) { return nl_upsample_nearest(c, in[0], *(int *)ud); }

static void test_upsample(void) {
    nl_tensor x = mk(NL_F64, 4, 2, 3, 3, 4);
    fill(&x, 10, -1, 1);
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    for (int f = 1; f <= 3; f++) {
        nl_var *y = nl_upsample_nearest(c, nl_input(c, x), f);
        NLT_CHECK(y && y->val.shape[2] == 3 * f && y->val.shape[3] == 4 * f, "shape f=%d", f);
        int bad = 0;
        for (int64_t p = 0; y && p < 6; p++)
            for (int i = 0; i < 3 * f; i++)
                for (int j = 0; j < 4 * f; j++)
                    bad += nl_tensor_get(&y->val, (p * 3 * f + i) * 4 * f + j) != nl_tensor_get(&x, (p * 3 + i / f) * 4 + j / f);
        NLT_CHECK(bad == 0, "values f=%d: %d wrong", f, bad);
        gc("upsample", f_up, &f, 1, &x, 1);
    }
    /* a strided (permuted) input */
    const int perm[4] = {0, 1, 3, 2};
    nl_var *yt = nl_upsample_nearest(c, nl_permute(c, nl_input(c, x), perm), 2);
    NLT_CHECK(yt && yt->val.shape[2] == 8 && nl_tensor_get(&yt->val, 1 * 6 + 0) == nl_tensor_get(&x, 0 * 4 + 0) &&
                  nl_tensor_get(&yt->val, 2 * 6 + 0) == nl_tensor_get(&x, 0 * 4 + 1), "permuted input");
    NLT_CHECK(!nl_upsample_nearest(c, nl_input(c, x), 0) && nl_last_status() == NL_EINVAL, "factor 0");
    nl_tensor x3 = mk(NL_F64, 3, 2, 3, 3, 1);
    NLT_CHECK(!nl_upsample_nearest(c, nl_input(c, x3), 2) && nl_last_status() == NL_ESHAPE, "3-D input");
    nl_ctx_free(c);
    free(x.data), free(x3.data);
    /* f32 path: gradient is the block sum */
    nl_tensor xf = mk(NL_F32, 4, 1, 2, 2, 2);
    fill(&xf, 11, -1, 1);
    gc("upsample f32", f_up, &(int){2}, 1, &xf, 0);
    free(xf.data);
}

int main(void) {
    nl_set_num_threads(1);
    NLT_RUN(test_groupnorm_value);
    NLT_RUN(test_groupnorm_grad);
    NLT_RUN(test_silu);
    NLT_RUN(test_upsample);
    return nlt_finish();
}
