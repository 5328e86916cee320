/* lib/compress: the KD loss against a direct double-precision formula (several T and alpha), its finite-difference
 * gradient with respect to the student's logits (f64), no gradient into the teacher, the argument checks, and the
 * training loop: a linear student distilled from a linear teacher learns its decisions, and precomputed teacher
 * logits give the same run as a per-batch teacher forward. */
#include "nltest.h"
#include "compress/kd.h"
#include "nnlab/gradcheck.h"

static uint32_t g_s = 777u;
static double rnd(void) {
    g_s = g_s * 1664525u + 1013904223u;
    return (double)(g_s >> 8) / 8388608.0 * 2.0 - 1.0;
}

/* direct formula: (1-a) CE + a T^2 mean_i sum_j p_t log(p_t / p_s) */
static double kd_ref(const double *s, const double *t, const int32_t *y, int N, int C, double T, double a) {
    double tot_kl = 0, tot_ce = 0;
    for (int i = 0; i < N; i++) {
        double ms = -1e300, mt = -1e300, m1 = -1e300, zs = 0, zt = 0, z1 = 0;
        for (int j = 0; j < C; j++) {
            ms = fmax(ms, s[i * C + j] / T);
            mt = fmax(mt, t[i * C + j] / T);
            m1 = fmax(m1, s[i * C + j]);
        }
        for (int j = 0; j < C; j++) {
            zs += exp(s[i * C + j] / T - ms);
            zt += exp(t[i * C + j] / T - mt);
            z1 += exp(s[i * C + j] - m1);
        }
        for (int j = 0; j < C; j++) {
            double lps = s[i * C + j] / T - ms - log(zs), lpt = t[i * C + j] / T - mt - log(zt);
            tot_kl += exp(lpt) * (lpt - lps);
        }
        tot_ce += -(s[i * C + y[i]] - m1 - log(z1));
    }
    return (1 - a) * tot_ce / N + a * T * T * tot_kl / N;
}

static void test_kd_value(void) {
    enum { N = 5, C = 7 };
    double s[N * C], t[N * C];
    int32_t y[N] = {0, 3, 6, 2, 2};
    for (int i = 0; i < N * C; i++) s[i] = 3 * rnd(), t[i] = 3 * rnd();
    const double Ts[] = {1, 4, 0.5}, As[] = {0, 0.9, 1, 0.3};
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    for (int a = 0; a < 4; a++)
        for (int k = 0; k < 3; k++) {
            nl_ctx_reset(c);
            nl_var *vs = nl_input(c, nl_tensor_wrap(s, NL_F64, 2, (int64_t[]){N, C}));
            nl_var *vt = nl_input(c, nl_tensor_wrap(t, NL_F64, 2, (int64_t[]){N, C}));
            nl_var *l = nl_kd_loss(c, vs, vt, y, Ts[k], As[a]);
            NLT_CHECK(l != NULL, "%s", nl_last_error());
            if (l) NLT_NEAR(nl_item(l), kd_ref(s, t, y, N, C, Ts[k], As[a]), 1e-10);
        }
    /* identical logits: the soft term is 0 */
    nl_ctx_reset(c);
    nl_var *vs = nl_input(c, nl_tensor_wrap(s, NL_F64, 2, (int64_t[]){N, C}));
    nl_var *l = nl_kd_loss(c, vs, vs, NULL, 4, 1);
    NLT_CHECK(l && fabs(nl_item(l)) < 1e-12, "KD(z, z) = %g", l ? nl_item(l) : NAN);
    nl_ctx_free(c);
}

static const int32_t g_y[4] = {1, 0, 2, 1};
static nl_var *kd_fn(nl_ctx *c, nl_var **in, void *ud) {
    const double *Ta = ud;
    return nl_kd_loss(c, in[0], in[1], g_y, Ta[0], Ta[1]);
}

static void test_kd_grad(void) {
    double s[12], t[12];
    for (int i = 0; i < 12; i++) s[i] = 2 * rnd(), t[i] = 2 * rnd();
    const double cases[][2] = {{4, 0.9}, {1, 0.5}, {2, 1.0}, {3, 0.0}};
    for (int k = 0; k < 4; k++) {
        nl_tensor in[2] = {nl_tensor_wrap(s, NL_F64, 2, (int64_t[]){4, 3}), nl_tensor_wrap(t, NL_F64, 2, (int64_t[]){4, 3})};
        nl_gc_result r;
        NLT_OK(nl_gradcheck(kd_fn, (void *)cases[k], 2, in, (int[]){1, 0}, 1e-6, 1e-8, 1e-6, &r));
    }
    /* the teacher receives no gradient */
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    nl_var *vs = nl_leaf(c, nl_tensor_wrap(s, NL_F64, 2, (int64_t[]){4, 3}), 1);
    nl_var *vt = nl_leaf(c, nl_tensor_wrap(t, NL_F64, 2, (int64_t[]){4, 3}), 1);
    nl_var *l = nl_kd_loss(c, vs, vt, g_y, 4, 0.9);
    NLT_OK(nl_backward(c, l));
    NLT_CHECK(vt->grad.data == NULL, "teacher logits got a gradient");
    NLT_CHECK(vs->grad.data != NULL, "student logits got no gradient");
    nl_ctx_free(c);
}

static void test_kd_errors(void) {
    double s[6] = {0}, t[6] = {0}, t2[8] = {0};
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    nl_var *vs = nl_input(c, nl_tensor_wrap(s, NL_F64, 2, (int64_t[]){2, 3}));
    nl_var *vt = nl_input(c, nl_tensor_wrap(t, NL_F64, 2, (int64_t[]){2, 3}));
    nl_var *vt2 = nl_input(c, nl_tensor_wrap(t2, NL_F64, 2, (int64_t[]){2, 4}));
    int32_t y[2] = {0, 1};
    NLT_CHECK(!nl_kd_loss(c, vs, vt, y, 0, 0.5) && nl_last_status() == NL_EINVAL, "T = 0 accepted");
    NLT_CHECK(!nl_kd_loss(c, vs, vt, y, -1, 0.5), "T < 0 accepted");
    NLT_CHECK(!nl_kd_loss(c, vs, vt, y, 4, 1.5) && strstr(nl_last_error(), "alpha"), "alpha 1.5 accepted");
    NLT_CHECK(!nl_kd_loss(c, vs, vt, NULL, 4, 0.5), "missing targets accepted");
    NLT_CHECK(!nl_kd_loss(c, vs, vt2, y, 4, 0.5) && nl_last_status() == NL_ESHAPE, "shape mismatch accepted");
    nl_ctx_free(c);
}

/* a linear model x [B, 4] -> [B, 3] */
typedef struct lin { nl_var *W, *b; } lin;
static nl_var *lin_fwd(nl_ctx *c, void *ud, nl_var *x, int train) {
    (void)train;
    lin *m = ud;
    return nl_linear(c, x, m->W, m->b);
}

static void test_kd_train(void) {
    enum { N = 400, D = 4, K = 3 };
    nl_dataset ds;
    NLT_OK(nl_dataset_alloc(&ds, N, D, K));
    nl_params pt, p1, p2;
    nl_params_init(&pt, NL_F32);
    nl_params_init(&p1, NL_F32);
    nl_params_init(&p2, NL_F32);
    lin t = {nl_params_add(&pt, "W", 2, (int64_t[]){K, D}), nl_params_add(&pt, "b", 1, (int64_t[]){K})};
    lin s1 = {nl_params_add(&p1, "W", 2, (int64_t[]){K, D}), nl_params_add(&p1, "b", 1, (int64_t[]){K})};
    lin s2 = {nl_params_add(&p2, "W", 2, (int64_t[]){K, D}), nl_params_add(&p2, "b", 1, (int64_t[]){K})};
    float *tw = pt.data;
    for (int i = 0; i < K * D; i++) tw[i] = (float)(2 * rnd());
    for (int i = 0; i < N * D; i++) ds.x[i] = (float)rnd();
    /* labels = the teacher's decisions */
    float *zt = malloc(sizeof(float) * N * K);
    NLT_OK(nl_kd_logits(lin_fwd, &t, &ds, 64, zt));
    for (int i = 0; i < N; i++) {
        int k = 0;
        for (int j = 1; j < K; j++)
            if (zt[i * K + j] > zt[i * K + k]) k = j;
        ds.y[i] = k;
    }
    double acc0, acc1, acc2, l1, l2;
    NLT_OK(nl_kd_accuracy(lin_fwd, &s1, &ds, 64, &acc0));
    nl_kd_config cfg = nl_kd_defaults();
    cfg.epochs = 20;
    cfg.batch = 32;
    cfg.alpha = 1.0; /* pure distillation: the labels are never read */
    nl_kd_teacher pre = {zt, NULL, NULL}, fwd = {NULL, lin_fwd, &t};
    NLT_OK(nl_kd_train(&cfg, &pre, lin_fwd, &s1, &p1, &ds, &l1));
    NLT_OK(nl_kd_train(&cfg, &fwd, lin_fwd, &s2, &p2, &ds, &l2));
    NLT_OK(nl_kd_accuracy(lin_fwd, &s1, &ds, 64, &acc1));
    NLT_OK(nl_kd_accuracy(lin_fwd, &s2, &ds, 64, &acc2));
    NLT_CHECK(acc1 >= 0.95, "distilled student accuracy %.3f (from %.3f)", acc1, acc0);
    NLT_NEAR(l1, l2, 1e-6);
    NLT_CHECK(!memcmp(p1.data, p2.data, sizeof(float) * (size_t)p1.total), "precomputed and per-batch teachers differ");
    /* alpha > 0 without a teacher is refused */
    NLT_CHECK(nl_kd_train(&cfg, NULL, lin_fwd, &s1, &p1, &ds, NULL) == NL_EINVAL, "no teacher accepted");
    free(zt);
    nl_params_free(&pt);
    nl_params_free(&p1);
    nl_params_free(&p2);
    nl_dataset_free(&ds);
}

int main(void) {
    NLT_RUN(test_kd_value);
    NLT_RUN(test_kd_grad);
    NLT_RUN(test_kd_errors);
    NLT_RUN(test_kd_train);
    return nlt_finish();
}
