/* NN ops, softmax family and losses: softmax / log-softmax, cross-entropy, MSE. Value tests against hand-computed
 * numbers, finite-difference gradient checks (f64, and f32 with looser tolerances), error paths, and thread-count
 * independence. (Normalisations, embedding, concat, dropout: test_nn_ops.c.) */
#include "nltest.h"
#include "nltest_nn.h"

/* error message mentions all given fragments */
static int msg_has(const char *a, const char *b, const char *c) {
    const char *m = nl_last_error();
    return strstr(m, a) && (!b || strstr(m, b)) && (!c || strstr(m, c));
}


/* ================= softmax / log-softmax ================= */
typedef struct { int axis, logm; } sm_args;
static nl_var *f_softmax(nl_ctx *c, nl_var **in, void *ud) {
    sm_args *a = ud;
    return a->logm ? nl_log_softmax(c, in[0], a->axis) : nl_softmax(c, in[0], a->axis);
}
/* softmax of a transposed (strided) view, to exercise the non-contiguous path */
static nl_var *f_softmax_t(nl_ctx *c, nl_var **in, void *ud) {
    sm_args *a = ud;
    nl_var *t = nl_transpose(c, in[0], 0, 1);
    return a->logm ? nl_log_softmax(c, t, a->axis) : nl_softmax(c, t, a->axis);
}

static void test_softmax_values(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    /* softmax([1,2,3]) = e^k / (e + e^2 + e^3) = [0.0900306, 0.2447285, 0.6652410];
     * log-softmax = x - lse, lse = 3 + log(1 + e^-1 + e^-2) = 3.4076060 -> [-2.4076060, -1.4076060, -0.4076060] */
    const double sm[3] = {0.09003057317038046, 0.24472847105479767, 0.6652409557748219};
    const double lsm[3] = {-2.40760596444438, -1.40760596444438, -0.40760596444438};
    double xv[3] = {1, 2, 3}, big[3] = {1001, 1002, 1003};
    float xf[3] = {1, 2, 3};
    int64_t s3[1] = {3};
    nl_var *x = nl_input(c, nl_tensor_wrap(xv, NL_F64, 1, s3));
    nl_var *y = nl_softmax(c, x, 0), *ly = nl_log_softmax(c, x, -1);
    for (int i = 0; i < 3; i++) {
        NLT_NEAR(nl_tensor_get(&y->val, i), sm[i], 1e-15);
        NLT_NEAR(nl_tensor_get(&ly->val, i), lsm[i], 1e-14);
    }
    NLT_NEAR(nl_tensor_get(&y->val, 0), 0.0900306, 5e-8);
    NLT_NEAR(nl_tensor_get(&y->val, 2), 0.6652410, 5e-8);
    /* stability: shifting by 1000 changes nothing (no overflow) */
    nl_var *xb = nl_input(c, nl_tensor_wrap(big, NL_F64, 1, s3));
    y = nl_softmax(c, xb, 0);
    ly = nl_log_softmax(c, xb, 0);
    for (int i = 0; i < 3; i++) {
        NLT_NEAR(nl_tensor_get(&y->val, i), sm[i], 1e-15);
        NLT_NEAR(nl_tensor_get(&ly->val, i), lsm[i], 1e-12);
    }
    /* f32 */
    nl_var *xf32 = nl_input(c, nl_tensor_wrap(xf, NL_F32, 1, s3));
    y = nl_softmax(c, xf32, 0);
    ly = nl_log_softmax(c, xf32, 0);
    NLT_CHECK(y->val.dtype == NL_F32, "dtype kept");
    for (int i = 0; i < 3; i++) {
        NLT_NEAR(nl_tensor_get(&y->val, i), sm[i], 1e-7);
        NLT_NEAR(nl_tensor_get(&ly->val, i), lsm[i], 1e-6);
    }
    /* axis 0 of [3,2] = columns [1,2,3] and [5,5,5] -> first column as above, second uniform 1/3 */
    double m[6] = {1, 5, 2, 5, 3, 5};
    int64_t s32[2] = {3, 2};
    nl_var *xm = nl_input(c, nl_tensor_wrap(m, NL_F64, 2, s32));
    y = nl_softmax(c, xm, 0);
    ly = nl_log_softmax(c, xm, 0);
    for (int i = 0; i < 3; i++) {
        NLT_NEAR(nl_tensor_get(&y->val, 2 * i), sm[i], 1e-15);
        NLT_NEAR(nl_tensor_get(&y->val, 2 * i + 1), 1.0 / 3, 1e-15);
        NLT_NEAR(nl_tensor_get(&ly->val, 2 * i), lsm[i], 1e-14);
        NLT_NEAR(nl_tensor_get(&ly->val, 2 * i + 1), -log(3.0), 1e-15);
    }
    /* backward by hand: L = sum(w * softmax(x)) with w = [1,0,0]: dx = y0 * (e0 - y) */
    nl_var *xl = nl_leaf(c, nl_tensor_wrap(xv, NL_F64, 1, s3), 1);
    y = nl_softmax(c, xl, 0);
    NLT_OK(nl_backward(c, nl_sum(c, nl_slice(c, y, 0, 0, 1, 1), NL_AXIS_ALL, 0)));
    NLT_NEAR(nl_tensor_get(&xl->grad, 0), sm[0] * (1 - sm[0]), 1e-15);
    NLT_NEAR(nl_tensor_get(&xl->grad, 1), -sm[0] * sm[1], 1e-15);
    NLT_NEAR(nl_tensor_get(&xl->grad, 2), -sm[0] * sm[2], 1e-15);
    /* log-softmax: L = sum(log_softmax(x)) -> dx = 1 - 3 * softmax */
    nl_var *xl2 = nl_leaf(c, nl_tensor_wrap(xv, NL_F64, 1, s3), 1);
    NLT_OK(nl_backward(c, nl_sum(c, nl_log_softmax(c, xl2, 0), NL_AXIS_ALL, 0)));
    for (int i = 0; i < 3; i++) NLT_NEAR(nl_tensor_get(&xl2->grad, i), 1 - 3 * sm[i], 1e-15);
    /* errors: bad axis names op and shape; NULL propagates */
    nl_clear_error();
    NLT_CHECK(nl_softmax(c, xm, 2) == NULL && nl_last_status() == NL_ESHAPE, "bad axis");
    NLT_CHECK(msg_has("softmax", "[3,2]", NULL), "message: %s", nl_last_error());
    NLT_CHECK(nl_log_softmax(c, xm, -3) == NULL && msg_has("log_softmax", "[3,2]", NULL), "message: %s", nl_last_error());
    NLT_CHECK(nl_softmax(c, NULL, 0) == NULL, "NULL propagates");
    nl_ctx_free(c);
}

static void test_softmax_large_and_threads(void) {
    /* sizes above the parallel threshold, every axis; rows sum to 1; 1 vs 2 threads bit-identical */
    nl_tensor x = mk(NL_F32, 3, 16, 64, 48, 0);
    fill(&x, 5, -8, 8);
    for (int axis = 0; axis < 3; axis++)
        for (int logm = 0; logm < 2; logm++) {
            nl_tensor out[2];
            nl_tensor grad[2];
            for (int th = 0; th < 2; th++) {
                nl_set_num_threads(th + 1);
                nl_ctx *c = nl_ctx_new(0, 0);
                nl_var *v = nl_leaf(c, x, 1);
                nl_var *y = logm ? nl_log_softmax(c, v, axis) : nl_softmax(c, v, axis);
                nl_tensor seed = nl_arena_tensor(c->arena, NL_F32, 3, x.shape);
                fill(&seed, 9, -1, 1);
                NLT_OK(nl_backward_seed(c, y, &seed));
                out[th] = mk(NL_F32, 3, 16, 64, 48, 0);
                grad[th] = mk(NL_F32, 3, 16, 64, 48, 0);
                nl_tensor_copy(&out[th], &y->val);
                nl_tensor_copy(&grad[th], &v->grad);
                nl_ctx_free(c);
            }
            nl_set_num_threads(2);
            NLT_CHECK(bits_equal(&out[0], &out[1]) && bits_equal(&grad[0], &grad[1]), "axis %d log %d: thread count changed the result", axis, logm);
            /* normalisation along the axis: sum of softmax (or of exp(log-softmax)) == 1 */
            int64_t O = 1, N = x.shape[axis], I = 1;
            for (int i = 0; i < axis; i++) O *= x.shape[i];
            for (int i = axis + 1; i < 3; i++) I *= x.shape[i];
            double worst = 0;
            const float *y = out[0].data;
            for (int64_t o = 0; o < O; o++)
                for (int64_t i = 0; i < I; i++) {
                    double s = 0;
                    for (int64_t k = 0; k < N; k++) s += logm ? exp(y[(o * N + k) * I + i]) : y[(o * N + k) * I + i];
                    worst = fmax(worst, fabs(s - 1));
                }
            NLT_NEAR(worst, 0, 1e-5);
            for (int k = 0; k < 2; k++) { free(out[k].data); free(grad[k].data); }
        }
    free(x.data);
}

static void test_softmax_grads(void) {
    for (int dt = 0; dt < 2; dt++)
        for (int logm = 0; logm < 2; logm++)
            for (int axis = -1; axis < 3; axis++) {
                if (!dt && axis != -1 && axis != 1) continue; /* f32: a few */
                nl_dtype t = dt ? NL_F64 : NL_F32;
                nl_tensor in = mk(t, 3, 2, 3, 4, 0);
                fill(&in, 10 + axis + 5 * logm, -2, 2);
                sm_args a = {axis, logm};
                char what[64];
                snprintf(what, sizeof what, "%s axis %d %s", logm ? "log_softmax" : "softmax", axis, dt ? "f64" : "f32");
                gc(what, f_softmax, &a, 1, &in, dt);
                free(in.data);
            }
    nl_tensor in = mk(NL_F64, 2, 4, 3, 0, 0);
    fill(&in, 3, -2, 2);
    sm_args a = {1, 0}, b = {0, 1};
    gc("softmax of strided view", f_softmax_t, &a, 1, &in, 1);
    gc("log_softmax of strided view", f_softmax_t, &b, 1, &in, 1);
    free(in.data);
}

/* ================= cross-entropy ================= */
typedef struct { const int32_t *t; double eps; int32_t ign; } ce_args;
static nl_var *f_ce(nl_ctx *c, nl_var **in, void *ud) {
    ce_args *a = ud;
    return nl_cross_entropy(c, in[0], a->t, a->eps, a->ign);
}

static void test_cross_entropy_values(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    /* row 0: logits [1,2,3], target 2: lse = 3.40760596444438, loss = lse - 3 = 0.40760596444438
     * row 1: logits [0,0,0], target 0: lse = log 3 = 1.09861228866811, loss = 1.09861228866811
     * mean = 0.75310912655624 */
    double lv[6] = {1, 2, 3, 0, 0, 0};
    int64_t s[2] = {2, 3};
    int32_t t[2] = {2, 0};
    const double lse0 = 3.40760596444438, lse1 = log(3.0);
    const double sm[3] = {0.09003057317038046, 0.24472847105479767, 0.6652409557748219};
    for (int dt = 0; dt < 2; dt++) {
        float lf[6] = {1, 2, 3, 0, 0, 0};
        nl_tensor T = dt ? nl_tensor_wrap(lv, NL_F64, 2, s) : nl_tensor_wrap(lf, NL_F32, 2, s);
        double tol = dt ? 1e-14 : 1e-6;
        nl_var *x = nl_leaf(c, T, 1);
        nl_var *L = nl_cross_entropy(c, x, t, 0, -1);
        NLT_CHECK(L && L->val.ndim == 0 && L->val.dtype == T.dtype, "scalar of the logits' dtype");
        NLT_NEAR(nl_item(L), 0.75310912655624, tol);
        NLT_NEAR(nl_item(L), ((lse0 - 3) + lse1) / 2, tol);
        /* gradient: (softmax - onehot) / 2 */
        NLT_OK(nl_backward(c, L));
        NLT_NEAR(nl_tensor_get(&x->grad, 0), sm[0] / 2, tol);
        NLT_NEAR(nl_tensor_get(&x->grad, 2), (sm[2] - 1) / 2, tol);
        NLT_NEAR(nl_tensor_get(&x->grad, 3), (1.0 / 3 - 1) / 2, tol);
        NLT_NEAR(nl_tensor_get(&x->grad, 4), (1.0 / 3) / 2, tol);
        /* label smoothing eps = 0.1 (PyTorch): target distribution 0.9*onehot + 0.1/3, so
         * row loss = lse - 0.9*x_t - 0.1*mean(x): row 0: 3.40760596444438 - 2.7 - 0.2 = 0.50760596444438,
         * row 1: log 3 = 1.09861228866811; mean = 0.80310912655624 */
        nl_var *x2 = nl_leaf(c, T, 1);
        L = nl_cross_entropy(c, x2, t, 0.1, -1);
        NLT_NEAR(nl_item(L), 0.80310912655624, tol);
        NLT_OK(nl_backward(c, L));
        /* dx = (softmax - 0.9*onehot - 0.1/3) / 2 */
        NLT_NEAR(nl_tensor_get(&x2->grad, 0), (sm[0] - 0.1 / 3) / 2, tol);
        NLT_NEAR(nl_tensor_get(&x2->grad, 2), (sm[2] - 0.9 - 0.1 / 3) / 2, tol);
        NLT_NEAR(nl_tensor_get(&x2->grad, 3), (1.0 / 3 - 0.9 - 0.1 / 3) / 2, tol);
        /* ignore_index: row 1 has target 7 = ignore_index -> mean over row 0 only: 0.40760596444438;
         * the ignored row gets no gradient */
        int32_t ti[2] = {2, 7};
        nl_var *x3 = nl_leaf(c, T, 1);
        L = nl_cross_entropy(c, x3, ti, 0, 7);
        NLT_NEAR(nl_item(L), lse0 - 3, tol);
        NLT_OK(nl_backward(c, L));
        NLT_NEAR(nl_tensor_get(&x3->grad, 2), sm[2] - 1, tol);
        for (int k = 3; k < 6; k++) NLT_NEAR(nl_tensor_get(&x3->grad, k), 0, 0);
        /* ignore_index equal to a valid class (1) with smoothing: row 1 ignored, row 0 with eps 0.1 */
        int32_t tj[2] = {2, 1};
        L = nl_cross_entropy(c, nl_input(c, T), tj, 0.1, 1);
        NLT_NEAR(nl_item(L), 0.50760596444438, tol);
        /* every row ignored -> 0, zero gradient, no NaN */
        int32_t ta[2] = {7, 7};
        nl_var *x4 = nl_leaf(c, T, 1);
        L = nl_cross_entropy(c, x4, ta, 0.1, 7);
        NLT_CHECK(nl_item(L) == 0.0, "all ignored -> 0, got %g", nl_item(L));
        NLT_OK(nl_backward(c, L));
        NLT_CHECK(x4->grad.data != NULL, "gradient allocated");
        for (int k = 0; k < 6; k++) NLT_CHECK(nl_tensor_get(&x4->grad, k) == 0.0, "zero gradient");
        /* stability: huge logits */
        double hv[3] = {1000, 0, -1000};
        int64_t s13[2] = {1, 3};
        int32_t t0[1] = {1};
        L = nl_cross_entropy(c, nl_input(c, nl_tensor_wrap(hv, NL_F64, 2, s13)), t0, 0, -1);
        NLT_NEAR(nl_item(L), 1000, 1e-12);
    }
    /* errors */
    nl_var *x = nl_input(c, nl_tensor_wrap(lv, NL_F64, 2, s));
    int32_t bad[2] = {2, 3};
    nl_clear_error();
    NLT_CHECK(nl_cross_entropy(c, x, bad, 0, -1) == NULL && nl_last_status() == NL_EINVAL, "target 3 of 3 classes");
    NLT_CHECK(msg_has("cross_entropy", "target 3", "row 1"), "message: %s", nl_last_error());
    int32_t neg[2] = {-1, 0};
    NLT_CHECK(nl_cross_entropy(c, x, neg, 0, -1) == NULL && msg_has("target -1", "row 0", NULL), "negative target with ignore disabled: %s", nl_last_error());
    NLT_CHECK(nl_cross_entropy(c, x, t, 1.0, -1) == NULL && msg_has("label_smoothing", NULL, NULL), "eps = 1 refused: %s", nl_last_error());
    NLT_CHECK(nl_cross_entropy(c, x, t, -0.1, -1) == NULL, "eps < 0 refused");
    int64_t s3[3] = {1, 2, 3};
    nl_var *x3 = nl_input(c, nl_tensor_wrap(lv, NL_F64, 3, s3));
    NLT_CHECK(nl_cross_entropy(c, x3, t, 0, -1) == NULL && msg_has("cross_entropy", "[1,2,3]", NULL), "3-d logits: %s", nl_last_error());
    NLT_CHECK(nl_cross_entropy(c, NULL, t, 0, -1) == NULL, "NULL propagates");
    nl_ctx_free(c);
}

static void test_cross_entropy_grads(void) {
    int32_t t[5] = {0, 3, 1, 2, 3};
    int32_t ti[5] = {0, 9, 1, 9, 3};
    for (int dt = 0; dt < 2; dt++)
        for (int k = 0; k < 4; k++) {
            if (!dt && k % 2) continue;
            nl_tensor in = mk(dt ? NL_F64 : NL_F32, 2, 5, 4, 0, 0);
            fill(&in, 40 + k, -2, 2);
            ce_args a = {k >= 2 ? ti : t, k % 2 ? 0.2 : (k >= 2 ? 0.1 : 0), k >= 2 ? 9 : -1};
            char what[64];
            snprintf(what, sizeof what, "cross_entropy case %d %s", k, dt ? "f64" : "f32");
            gc(what, f_ce, &a, 1, &in, dt);
            free(in.data);
        }
    /* strided logits (transposed view) */
    nl_tensor in = mk(NL_F64, 2, 4, 5, 0, 0);
    fill(&in, 50, -2, 2);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *x = nl_input(c, in);
    nl_var *xt = nl_transpose(c, x, 0, 1);
    nl_var *xc = nl_contiguous(c, xt);
    NLT_NEAR(nl_item(nl_cross_entropy(c, xt, t, 0.1, -1)), nl_item(nl_cross_entropy(c, xc, t, 0.1, -1)), 1e-15);
    nl_ctx_free(c);
    free(in.data);
}

/* ================= MSE ================= */
static nl_var *f_mse(nl_ctx *c, nl_var **in, void *ud) { return nl_mse(c, in[0], in[1]); }

static void test_mse(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    /* a = [1,2,3], b = [1,0,0]: ((0)^2 + 2^2 + 3^2) / 3 = 13/3; da = 2/3 (a - b) = [0, 4/3, 2], db = -da */
    double av[3] = {1, 2, 3}, bv[3] = {1, 0, 0};
    int64_t s3[1] = {3};
    nl_var *a = nl_leaf(c, nl_tensor_wrap(av, NL_F64, 1, s3), 1), *b = nl_leaf(c, nl_tensor_wrap(bv, NL_F64, 1, s3), 1);
    nl_var *L = nl_mse(c, a, b);
    NLT_NEAR(nl_item(L), 13.0 / 3, 1e-15);
    NLT_OK(nl_backward(c, L));
    const double ga[3] = {0, 4.0 / 3, 2};
    for (int i = 0; i < 3; i++) {
        NLT_NEAR(nl_tensor_get(&a->grad, i), ga[i], 1e-15);
        NLT_NEAR(nl_tensor_get(&b->grad, i), -ga[i], 1e-15);
    }
    float af[3] = {1, 2, 3}, bf[3] = {1, 0, 0};
    NLT_NEAR(nl_item(nl_mse(c, nl_input(c, nl_tensor_wrap(af, NL_F32, 1, s3)), nl_input(c, nl_tensor_wrap(bf, NL_F32, 1, s3)))), 13.0 / 3, 1e-6);
    /* errors */
    int64_t s2[1] = {2};
    nl_var *d = nl_input(c, nl_tensor_wrap(bv, NL_F64, 1, s2));
    nl_clear_error();
    NLT_CHECK(nl_mse(c, a, d) == NULL && nl_last_status() == NL_ESHAPE && msg_has("mse", "[3]", "[2]"), "message: %s", nl_last_error());
    NLT_CHECK(nl_mse(c, a, nl_input(c, nl_tensor_wrap(af, NL_F32, 1, s3))) == NULL && nl_last_status() == NL_EDTYPE && msg_has("mse", "f32", NULL), "message: %s", nl_last_error());
    nl_ctx_free(c);
    for (int dt = 0; dt < 2; dt++) {
        nl_tensor in[2] = {mk(dt ? NL_F64 : NL_F32, 2, 3, 4, 0, 0), mk(dt ? NL_F64 : NL_F32, 2, 3, 4, 0, 0)};
        fill(&in[0], 60, -1, 1);
        fill(&in[1], 61, -1, 1);
        gc(dt ? "mse f64" : "mse f32", f_mse, NULL, 2, in, dt);
        free(in[0].data);
        free(in[1].data);
    }
    /* large: thread-count independent and equal to a serial double sum */
    nl_tensor A = mk(NL_F32, 2, 300, 500, 0, 0), B = mk(NL_F32, 2, 300, 500, 0, 0);
    fill(&A, 62, -1, 1);
    fill(&B, 63, -1, 1);
    double ref = 0, v[2];
    for (int64_t i = 0; i < 150000; i++) { double d = (double)((float *)A.data)[i] - ((float *)B.data)[i]; ref += d * d; }
    for (int th = 0; th < 2; th++) {
        nl_set_num_threads(th + 1);
        nl_ctx *cc = nl_ctx_new(0, 0);
        v[th] = nl_item(nl_mse(cc, nl_input(cc, A), nl_input(cc, B)));
        nl_ctx_free(cc);
    }
    nl_set_num_threads(2);
    NLT_CHECK(v[0] == v[1], "mse: thread count changed the result (%.17g vs %.17g)", v[0], v[1]);
    NLT_NEAR(v[0], ref / 150000, 1e-6);
    free(A.data);
    free(B.data);
}


int main(void) {
    nl_threads_init();
    nl_set_num_threads(2);
    NLT_RUN(test_softmax_values);
    NLT_RUN(test_softmax_large_and_threads);
    NLT_RUN(test_softmax_grads);
    NLT_RUN(test_cross_entropy_values);
    NLT_RUN(test_cross_entropy_grads);
    NLT_RUN(test_mse);
    return nlt_finish();
}

