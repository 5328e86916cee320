/* methods/tas: channel-wise interpolation on hand examples (3 -> 4 channels gives [c0, (c0+c1)/2, (c1+c2)/2, c2]; 4 -> 2
 * averages pairs; identity) and its finite-difference gradient; the padded residual addition; the FLOP loss's sign
 * above the target, below the band and zero inside it, with its gradient; the width and depth choices of the
 * reference; the uniform and random shapes at a FLOP budget; a short search on synthetic data whose FLOP loss drives
 * a candidate shape into the band (the reference's choice: the best in the band); and the CLI's bad input (exit status 2). */
#include "nltest.h"
#include "tas/tas.h"
#include "nnlab/gradcheck.h"
#include "nnlab/ops.h"

static void test_cwi_hand(void) {
    /* x [1, 3, 1, 2]: channel k holds (k+1, 10(k+1)) */
    double x[6] = {1, 10, 2, 20, 3, 30};
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    nl_var *v = nl_input(c, nl_tensor_wrap(x, NL_F64, 4, (int64_t[]){1, 3, 1, 2}));
    nl_var *y = nl_tas_cwi(c, v, 4);
    const double want[8] = {1, 10, 1.5, 15, 2.5, 25, 3, 30};
    NLT_CHECK(y && y->val.shape[1] == 4, "shape");
    for (int i = 0; y && i < 8; i++) NLT_NEAR(((double *)y->val.data)[i], want[i], 1e-12);
    double x4[4] = {1, 3, 5, 9};
    nl_var *v4 = nl_input(c, nl_tensor_wrap(x4, NL_F64, 4, (int64_t[]){1, 4, 1, 1}));
    nl_var *y2 = nl_tas_cwi(c, v4, 2);
    NLT_CHECK(y2 && ((double *)y2->val.data)[0] == 2 && ((double *)y2->val.data)[1] == 7, "4 -> 2: pair means");
    NLT_CHECK(nl_tas_cwi(c, v, 3) == v, "same width is the identity");
    NLT_CHECK(!nl_tas_cwi(c, v, 0), "Co = 0 accepted");
    /* padded addition: [1, 1, 1, 2] + [1, 3, 1, 2] adds into the first channel */
    double a[2] = {100, 200};
    nl_var *va = nl_input(c, nl_tensor_wrap(a, NL_F64, 4, (int64_t[]){1, 1, 1, 2}));
    nl_var *s = nl_tas_add_pad(c, va, v);
    const double ws[6] = {101, 210, 2, 20, 3, 30};
    NLT_CHECK(s && s->val.shape[1] == 3, "padded add shape");
    for (int i = 0; s && i < 6; i++) NLT_NEAR(nl_tensor_get(&s->val, i), ws[i], 1e-12);
    nl_ctx_free(c);
}

static nl_var *cwi_fn(nl_ctx *c, nl_var **in, void *ud) { return nl_tas_cwi(c, in[0], *(int64_t *)ud); }
static nl_var *pad_fn(nl_ctx *c, nl_var **in, void *ud) {
    (void)ud;
    return nl_tas_add_pad(c, in[0], in[1]);
}

static nl_var *scale_fn(nl_ctx *c, nl_var **in, void *ud) {
    (void)ud;
    return nl_tas_scale(c, in[0], in[1]);
}

static void test_cwi_grad(void) {
    float xf[24], pf = 0.7f;
    for (int i = 0; i < 24; i++) xf[i] = (float)sin(1.3 * i);
    nl_tensor ins[2] = {nl_tensor_wrap(xf, NL_F32, 4, (int64_t[]){2, 3, 2, 2}), nl_tensor_wrap(&pf, NL_F32, 1, (int64_t[]){1})};
    nl_gc_result rs;
    NLT_OK(nl_gradcheck(scale_fn, NULL, 2, ins, NULL, 1e-3, 1e-3, 1e-2, &rs));
    double x[2 * 5 * 3 * 2], y[2 * 3 * 3 * 2];
    for (int i = 0; i < 60; i++) x[i] = sin(0.7 * i) + 0.1 * i;
    for (int i = 0; i < 36; i++) y[i] = cos(0.3 * i);
    const int64_t outs[] = {3, 7, 2, 1, 8};
    for (int k = 0; k < 5; k++) {
        nl_tensor in = nl_tensor_wrap(x, NL_F64, 4, (int64_t[]){2, 5, 3, 2});
        nl_gc_result r;
        NLT_OK(nl_gradcheck(cwi_fn, (void *)&outs[k], 1, &in, NULL, 1e-6, 1e-9, 1e-7, &r));
    }
    nl_tensor in2[2] = {nl_tensor_wrap(x, NL_F64, 4, (int64_t[]){2, 5, 3, 2}), nl_tensor_wrap(y, NL_F64, 4, (int64_t[]){2, 3, 3, 2})};
    nl_gc_result r;
    NLT_OK(nl_gradcheck(pad_fn, NULL, 2, in2, NULL, 1e-6, 1e-9, 1e-7, &r));
}

static void test_flop_loss(void) {
    /* target 50, tolerance 5: above 50 -> log E (gradient 1/E > 0); below 45 -> -log E (gradient < 0); in [45, 50] 0 */
    const double cur[] = {60, 50.5, 50, 47, 45, 44.9, 10};
    const int sign[] = {1, 1, 0, 0, 0, -1, -1};
    for (int k = 0; k < 7; k++) {
        nl_ctx *c = nl_ctx_new(1 << 14, 0);
        double e = 40;
        nl_var *v = nl_leaf(c, nl_tensor_wrap(&e, NL_F64, 0, NULL), 1);
        nl_var *l = nl_tas_flop_loss(c, v, cur[k], 50, 5);
        NLT_CHECK(l != NULL, "loss NULL");
        if (!l) continue;
        double want = sign[k] * log(40.0);
        NLT_NEAR(nl_item(l), want, 1e-12);
        if (sign[k]) {
            NLT_OK(nl_backward(c, l));
            double g = v->grad.data ? ((double *)v->grad.data)[0] : 0;
            NLT_NEAR(g, sign[k] / 40.0, 1e-12);
        } else {
            NLT_CHECK(!l->requires_grad, "the zero band must carry no gradient (F_cur %g)", cur[k]);
        }
        nl_ctx_free(c);
    }
}

static void test_choices(void) {
    int w[NL_TAS_MAX_CHOICES], d[NL_RESNET_MAX_BLOCKS];
    const int want16[] = {4, 6, 8, 9, 11, 12, 14, 16};
    NLT_CHECK(nl_tas_width_choices(16, w) == 8, "C = 16: %d choices", nl_tas_width_choices(16, w));
    for (int i = 0; i < 8; i++) NLT_CHECK(w[i] == want16[i], "C = 16 choice %d: %d", i, w[i]);
    NLT_CHECK(nl_tas_width_choices(4, w) == 4 && w[0] == 1 && w[3] == 4, "C = 4: %d choices (%d .. %d)", nl_tas_width_choices(4, w), w[0], w[3]);
    NLT_CHECK(nl_tas_depth_choices(2, d) == 2 && d[1] == 2, "2 blocks");
    NLT_CHECK(nl_tas_depth_choices(9, d) == 5 && d[4] == 9 && d[1] == 3, "9 blocks: 1 3 5 7 9");
    NLT_CHECK(nl_tas_depth_choices(4, d) == 3 && d[2] == 4, "4 blocks: 1 3 4");
}

static void test_shapes(void) {
    nl_resnet_config full = nl_resnet_default_config(2, 8, 2);
    const double F = nl_resnet_flops(&full);
    nl_resnet_config u = nl_tas_uniform_shape(&full, 0.5 * F);
    NLT_CHECK(fabs(nl_resnet_flops(&u) / F - 0.5) < 0.05, "uniform at half: %.3f", nl_resnet_flops(&u) / F);
    nl_resnet_config r;
    NLT_OK(nl_tas_random_shape(&full, 0.5 * F, 0.02, 3, &r));
    NLT_CHECK(fabs(nl_resnet_flops(&r) / (0.5 * F) - 1) <= 0.02, "random shape off budget");
    NLT_OK(nl_resnet_check(&r));
    NLT_CHECK(nl_tas_random_shape(&full, 10 * F, 0.01, 3, &r) == NL_EINVAL, "an impossible budget was met");
}

static void test_search_synthetic(void) {
    /* 10 classes of noisy class-dependent blobs on 28x28, searched on a tiny net: the argmax FLOPs must end in the band */
    nl_dataset a, b;
    NLT_OK(nl_dataset_alloc(&a, 256, 784, 10));
    NLT_OK(nl_dataset_alloc(&b, 256, 784, 10));
    uint32_t g = 5;
    nl_dataset *ds[2] = {&a, &b};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 256; i++) {
            int y = i % 10;
            ds[k]->y[i] = y;
            for (int p = 0; p < 784; p++) {
                g = g * 1664525u + 1013904223u;
                ds[k]->x[i * 784 + p] = (float)(((p / 28) / 3 == y) * 1.0 + (g >> 8) / 16777216.0 * 0.5);
            }
        }
    a.height = a.width = b.height = b.width = 28, a.channels = b.channels = 1;
    nl_tas_config tc = nl_tas_defaults();
    tc.net = nl_resnet_default_config(2, 4, 2);
    tc.epochs = 12;
    tc.batch = 32;
    tc.record_every = 4;
    nl_tas_result r;
    NLT_OK(nl_tas_search(&tc, &a, &b, &r));
    double ratio = r.flops / r.flops_full;
    NLT_CHECK(fabs(ratio - 0.5) <= 0.05 + 1e-9 && r.in_band, "chosen shape at %.3f of the full FLOPs, outside 0.5 +- 0.05", ratio);
    NLT_CHECK(r.candidates >= 24, "%lld candidates", (long long)r.candidates);
    NLT_OK(nl_resnet_check(&r.shape));
    char buf[512];
    nl_resnet_describe(&r.shape, buf, sizeof buf);
    printf("  searched %s: %.3f of the full FLOPs, E[F] %.3f, %lld steps, %.2f s\n", buf, ratio, r.expected_flops / r.flops_full,
           (long long)r.steps, r.seconds);
    nl_dataset_free(&a);
    nl_dataset_free(&b);
}

static void test_cli(void) {
    char *bad1[] = {"search", "--ratio", "0"};
    char *bad2[] = {"search", "--ratio", "1.5"};
    char *bad3[] = {"search", "--temperature", "0"};
    char *bad4[] = {"search", "--alpha", "2"};
    char *bad5[] = {"frobnicate"};
    NLT_CHECK(nl_tas_cli(3, bad1) == 2, "--ratio 0 accepted");
    NLT_CHECK(nl_tas_cli(3, bad2) == 2, "--ratio 1.5 accepted");
    NLT_CHECK(nl_tas_cli(3, bad3) == 2, "--temperature 0 accepted");
    NLT_CHECK(nl_tas_cli(3, bad4) == 2, "--alpha 2 accepted");
    NLT_CHECK(nl_tas_cli(1, bad5) == 2, "unknown subcommand accepted");
    char *help[] = {"--help"};
    NLT_CHECK(nl_tas_cli(1, help) == 0, "--help");
}

/* the judge on hand-made results: in-band FLOPs and a paired bound >= 0 pass; a non-significant mean difference, a shape below uniform, an
 * out-of-band seed, an unmatched uniform baseline or fewer than 3 seeds fail */
static void fill(nl_exp_result *r, const double *ft, const double *fu, const double *at, const double *au, int n) {
    for (int i = 0; i < n; i++) {
        nl_exp_set_seed(r, "flops_tas", i + 1, ft[i]);
        nl_exp_set_seed(r, "flops_uniform", i + 1, fu[i]);
        nl_exp_set_seed(r, "acc_tas", i + 1, at[i]);
        nl_exp_set_seed(r, "acc_uniform", i + 1, au[i]);
    }
    nl_exp_set(r, "seeds", n);
}

static int judge(const double *ft, const double *fu, const double *at, const double *au, int n) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    fill(&r, ft, fu, at, au, n);
    char m[256];
    int v = nl_exp_tas.judge(&nl_exp_tas, &r, NL_MODE_QUICK, m, sizeof m);
    nl_exp_result_free(&r);
    return v;
}

static void test_judge(void) {
    const double ft[3] = {0.48, 0.52, 0.46}, fu[3] = {0.47, 0.53, 0.47};
    const double at[3] = {0.81, 0.815, 0.82}, au[3] = {0.79, 0.80, 0.80};
    NLT_CHECK(judge(ft, fu, at, au, 3) == 1, "a good result rejected");
    /* a mean difference >= 0 inside the noise (+1, -1, +1 points: bound < 0) is not evidence */
    const double noisy[3] = {0.80, 0.79, 0.81};
    NLT_CHECK(judge(ft, fu, noisy, au, 3) == 0, "a non-significant mean difference accepted");
    const double lo[3] = {0.77, 0.78, 0.79};
    NLT_CHECK(judge(ft, fu, lo, au, 3) == 0, "a worse shape (the random control's case) accepted");
    const double off[3] = {0.48, 0.56, 0.46}, fu_off[3] = {0.47, 0.56, 0.47};
    NLT_CHECK(judge(off, fu_off, at, au, 3) == 0, "FLOPs 0.56 accepted");
    const double unm[3] = {0.47, 0.60, 0.47};
    NLT_CHECK(judge(ft, unm, at, au, 3) == 0, "an unmatched uniform baseline accepted");
    NLT_CHECK(judge(ft, fu, at, au, 2) == 0, "2 seeds accepted");
}

int main(void) {
    NLT_RUN(test_judge);
    NLT_RUN(test_cwi_hand);
    NLT_RUN(test_cwi_grad);
    NLT_RUN(test_flop_loss);
    NLT_RUN(test_choices);
    NLT_RUN(test_shapes);
    NLT_RUN(test_search_synthetic);
    NLT_RUN(test_cli);
    return nlt_finish();
}
