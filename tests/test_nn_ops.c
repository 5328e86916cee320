/* NN ops: normalisations (LayerNorm / RMSNorm, BatchNorm), embedding, concat, dropout, and a composite block.
 * Value tests against hand-computed numbers, finite-difference gradient checks (f64, and f32 with looser
 * tolerances), error paths, and thread-count independence. (Softmax family and losses: test_nn_losses.c.) */
#include "nltest.h"
#include "nltest_nn.h"


/* error message mentions all given fragments */
static int msg_has(const char *a, const char *b, const char *c) {
    const char *m = nl_last_error();
    return strstr(m, a) && (!b || strstr(m, b)) && (!c || strstr(m, c));
}


/* ================= LayerNorm / RMSNorm ================= */
typedef struct { int gamma, beta, rms, strided; double eps; } ln_args;
static nl_var *f_ln(nl_ctx *c, nl_var **in, void *ud) {
    ln_args *a = ud;
    nl_var *x = a->strided ? nl_transpose(c, in[0], 0, 1) : in[0];
    int k = 1;
    nl_var *g = a->gamma ? in[k++] : NULL;
    nl_var *b = a->beta ? in[k++] : NULL;
    return a->rms ? nl_rmsnorm(c, x, g, a->eps) : nl_layernorm(c, x, g, b, a->eps);
}

static void test_layernorm_values(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    /* [1,2,3,4]: mean 2.5, var 1.25, eps 1e-5 -> (x - 2.5) / sqrt(1.25001)
     * = [-1.3416354, -0.4472118, 0.4472118, 1.3416354] (task brief: [-1.3416355, -0.4472118, ...] to 7 digits) */
    double xv[8] = {1, 2, 3, 4, 10, 10, 10, 10};
    int64_t s[2] = {2, 4};
    const double r = 1 / sqrt(1.25001);
    nl_var *x = nl_input(c, nl_tensor_wrap(xv, NL_F64, 2, s));
    nl_var *y = nl_layernorm(c, x, NULL, NULL, 1e-5);
    for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&y->val, i), (xv[i] - 2.5) * r, 1e-14);
    NLT_NEAR(nl_tensor_get(&y->val, 0), -1.3416355, 2e-7);
    NLT_NEAR(nl_tensor_get(&y->val, 1), -0.4472118, 1e-7);
    NLT_NEAR(nl_tensor_get(&y->val, 3), 1.3416355, 2e-7);
    /* constant row -> zeros (variance 0, no NaN) */
    for (int i = 4; i < 8; i++) NLT_NEAR(nl_tensor_get(&y->val, i), 0, 0);
    /* gamma [1,2,1,2], beta [0,0,1,1] */
    double gv[4] = {1, 2, 1, 2}, bv[4] = {0, 0, 1, 1};
    int64_t s4[1] = {4};
    nl_var *g = nl_input(c, nl_tensor_wrap(gv, NL_F64, 1, s4)), *b = nl_input(c, nl_tensor_wrap(bv, NL_F64, 1, s4));
    y = nl_layernorm(c, x, g, b, 1e-5);
    for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&y->val, i), (xv[i] - 2.5) * r * gv[i] + bv[i], 1e-14);
    for (int i = 4; i < 8; i++) NLT_NEAR(nl_tensor_get(&y->val, i), bv[i - 4], 0);
    /* f32 and a large offset (shifted statistics: no cancellation): [1e4+1, .., 1e4+4] */
    float xf[4] = {10001, 10002, 10003, 10004};
    int64_t s14[2] = {1, 4};
    y = nl_layernorm(c, nl_input(c, nl_tensor_wrap(xf, NL_F32, 2, s14)), NULL, NULL, 1e-5);
    for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&y->val, i), (xv[i] - 2.5) * r, 2e-6);
    /* RMSNorm [1,2,3,4], eps 0: mean square 7.5 -> x / sqrt(7.5) = [0.3651484, 0.7302967, 1.0954451, 1.4605935] */
    y = nl_rmsnorm(c, x, NULL, 0);
    const double rr[4] = {0.3651483716701107, 0.7302967433402214, 1.0954451150103321, 1.4605934866804429};
    for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&y->val, i), rr[i], 1e-15);
    for (int i = 4; i < 8; i++) NLT_NEAR(nl_tensor_get(&y->val, i), 1, 1e-15);
    y = nl_rmsnorm(c, x, g, 0);
    for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&y->val, i), rr[i] * gv[i], 1e-15);
    /* backward by hand: L = sum(layernorm(x) * w), w = [1,0,0,0]: dx_k = r (w_k - 1/4 - xhat_k * xhat_0 / 4) */
    nl_var *xl = nl_leaf(c, nl_tensor_wrap(xv, NL_F64, 2, s), 1);
    y = nl_layernorm(c, xl, NULL, NULL, 1e-5);
    nl_tensor seed = nl_arena_tensor0(c->arena, NL_F64, 2, s);
    nl_tensor_set(&seed, 0, 1);
    NLT_OK(nl_backward_seed(c, y, &seed));
    for (int k = 0; k < 4; k++) {
        double xh0 = (1 - 2.5) * r, xhk = (xv[k] - 2.5) * r;
        NLT_NEAR(nl_tensor_get(&xl->grad, k), r * ((k == 0) - 0.25 - xhk * xh0 / 4), 1e-14);
    }
    /* errors: gamma of the wrong size / dtype name the op and both shapes */
    int64_t s3[1] = {3};
    nl_var *g3 = nl_input(c, nl_tensor_wrap(gv, NL_F64, 1, s3));
    nl_clear_error();
    NLT_CHECK(nl_layernorm(c, x, g3, NULL, 1e-5) == NULL && nl_last_status() == NL_ESHAPE && msg_has("layernorm", "[2,4]", "[3]"), "message: %s", nl_last_error());
    NLT_CHECK(nl_layernorm(c, x, NULL, g3, 1e-5) == NULL && msg_has("layernorm", "beta", "[3]"), "message: %s", nl_last_error());
    NLT_CHECK(nl_rmsnorm(c, x, g3, 1e-5) == NULL && msg_has("rmsnorm", "[2,4]", "[3]"), "message: %s", nl_last_error());
    float gf[4] = {1, 1, 1, 1};
    NLT_CHECK(nl_rmsnorm(c, x, nl_input(c, nl_tensor_wrap(gf, NL_F32, 1, s4)), 1e-5) == NULL && nl_last_status() == NL_EDTYPE, "mixed dtype: %s", nl_last_error());
    NLT_CHECK(nl_layernorm(c, x, NULL, NULL, -1) == NULL && nl_last_status() == NL_EINVAL, "negative eps");
    NLT_CHECK(nl_layernorm(c, NULL, g, b, 1e-5) == NULL, "NULL propagates");
    nl_ctx_free(c);
}

static void test_layernorm_grads(void) {
    for (int dt = 0; dt < 2; dt++)
        for (int rms = 0; rms < 2; rms++)
            for (int aff = 0; aff < 4; aff++) {
                if (rms && (aff & 2)) continue; /* rmsnorm has no beta */
                if (!dt && aff != 3 && aff != 1) continue;
                ln_args a = {aff & 1, (aff >> 1) & 1, rms, 0, 1e-5};
                nl_dtype t = dt ? NL_F64 : NL_F32;
                nl_tensor in[3] = {mk(t, 3, 2, 3, 5, 0), mk(t, 1, 5, 0, 0, 0), mk(t, 1, 5, 0, 0, 0)};
                fill(&in[0], 70 + aff, -2, 2);
                fill(&in[1], 71, 0.5, 1.5);
                fill(&in[2], 72, -1, 1);
                int n = 1;
                nl_tensor use[3];
                use[0] = in[0];
                if (a.gamma) use[n++] = in[1];
                if (a.beta) use[n++] = in[2];
                char what[64];
                snprintf(what, sizeof what, "%s gamma %d beta %d %s", rms ? "rmsnorm" : "layernorm", a.gamma, a.beta, dt ? "f64" : "f32");
                gc(what, f_ln, &a, n, use, dt);
                for (int k = 0; k < 3; k++) free(in[k].data);
            }
    /* strided input */
    ln_args a = {1, 1, 0, 1, 1e-5};
    nl_tensor in[3] = {mk(NL_F64, 2, 6, 4, 0, 0), mk(NL_F64, 1, 6, 0, 0, 0), mk(NL_F64, 1, 6, 0, 0, 0)};
    for (int k = 0; k < 3; k++) fill(&in[k], 80 + k, -1, 1);
    gc("layernorm strided", f_ln, &a, 3, in, 1);
    a.rms = 1;
    a.beta = 0;
    gc("rmsnorm strided", f_ln, &a, 2, in, 1);
    for (int k = 0; k < 3; k++) free(in[k].data);
}

static void test_layernorm_threads(void) {
    /* [400, 96] (above the parallel threshold): outputs and all gradients bit-identical for 1 and 2 threads */
    for (int rms = 0; rms < 2; rms++) {
        nl_tensor x = mk(NL_F32, 2, 400, 96, 0, 0), g = mk(NL_F32, 1, 96, 0, 0, 0), b = mk(NL_F32, 1, 96, 0, 0, 0);
        fill(&x, 90, -3, 3);
        fill(&g, 91, 0.5, 1.5);
        fill(&b, 92, -1, 1);
        nl_tensor r[2][4];
        for (int th = 0; th < 2; th++) {
            nl_set_num_threads(th + 1);
            nl_ctx *c = nl_ctx_new(0, 0);
            nl_var *xv = nl_leaf(c, x, 1), *gv = nl_leaf(c, g, 1), *bv = nl_leaf(c, b, 1);
            nl_var *y = rms ? nl_rmsnorm(c, xv, gv, 1e-5) : nl_layernorm(c, xv, gv, bv, 1e-5);
            nl_tensor seed = nl_arena_tensor(c->arena, NL_F32, 2, x.shape);
            fill(&seed, 93, -1, 1);
            NLT_OK(nl_backward_seed(c, y, &seed));
            nl_tensor *src[4] = {&y->val, &xv->grad, &gv->grad, rms ? &gv->grad : &bv->grad};
            for (int k = 0; k < 4; k++) {
                r[th][k] = mk(NL_F32, src[k]->ndim, src[k]->shape[0], src[k]->shape[1], 0, 0);
                nl_tensor_copy(&r[th][k], src[k]);
            }
            nl_ctx_free(c);
        }
        nl_set_num_threads(2);
        for (int k = 0; k < 4; k++) {
            NLT_CHECK(bits_equal(&r[0][k], &r[1][k]), "%s result %d differs between 1 and 2 threads", rms ? "rmsnorm" : "layernorm", k);
            free(r[0][k].data);
            free(r[1][k].data);
        }
        free(x.data); free(g.data); free(b.data);
    }
}

/* ================= BatchNorm ================= */
typedef struct { int gamma, beta, train, running; double momentum; nl_tensor rm, rv; } bn_args;
static nl_var *f_bn(nl_ctx *c, nl_var **in, void *ud) {
    bn_args *a = ud;
    int k = 1;
    nl_var *g = a->gamma ? in[k++] : NULL;
    nl_var *b = a->beta ? in[k++] : NULL;
    nl_var *rm = a->running ? nl_input(c, a->rm) : NULL, *rv = a->running ? nl_input(c, a->rv) : NULL;
    return nl_batchnorm(c, in[0], g, b, rm, rv, a->momentum, 1e-5, a->train);
}

static void test_batchnorm_values(void) {
    nl_params ps;
    nl_params_init(&ps, NL_F32);
    int64_t sc[1] = {2};
    nl_var *rm = nl_params_add(&ps, "bn.running_mean", 1, sc), *rv = nl_params_add(&ps, "bn.running_var", 1, sc);
    nl_params_set_trainable(&ps, "bn.running", 0);
    nl_tensor_fill(&rv->val, 1.0); /* PyTorch init: mean 0, var 1 */
    nl_ctx *c = nl_ctx_new(0, 0);
    /* x [4, 2]: channel 0 = [1,2,3,4] (mean 2.5, biased var 1.25, unbiased 5/3),
     *           channel 1 = [2,4,6,8] (mean 5, biased var 5, unbiased 20/3) */
    double xv[8] = {1, 2, 2, 4, 3, 6, 4, 8};
    int64_t s[2] = {4, 2};
    nl_var *x = nl_input(c, nl_tensor_wrap(xv, NL_F64, 2, s));
    nl_var *y = nl_batchnorm(c, x, NULL, NULL, rm, rv, 0.1, 1e-5, 1);
    NLT_CHECK(y != NULL, "train: %s", nl_last_error());
    /* train output: batch statistics, biased variance: channel 0 (x - 2.5)/sqrt(1.25001), channel 1 (x - 5)/sqrt(5.00001) */
    for (int n = 0; n < 4; n++) {
        NLT_NEAR(nl_tensor_get(&y->val, 2 * n), (xv[2 * n] - 2.5) / sqrt(1.25001), 1e-14);
        NLT_NEAR(nl_tensor_get(&y->val, 2 * n + 1), (xv[2 * n + 1] - 5) / sqrt(5.00001), 1e-14);
    }
    NLT_NEAR(nl_tensor_get(&y->val, 0), -1.3416355, 2e-7);
    /* running stats after one step, momentum 0.1: mean = 0.9*0 + 0.1*[2.5, 5] = [0.25, 0.5];
     * var = 0.9*1 + 0.1*[5/3, 20/3] = [1.0666667, 1.5666667] (unbiased) */
    NLT_NEAR(nl_tensor_get(&rm->val, 0), 0.25, 1e-7);
    NLT_NEAR(nl_tensor_get(&rm->val, 1), 0.5, 1e-7);
    NLT_NEAR(nl_tensor_get(&rv->val, 0), 1.0666666666666667, 1e-7);
    NLT_NEAR(nl_tensor_get(&rv->val, 1), 1.5666666666666667, 1e-7);
    /* eval: running statistics, stats unchanged: channel 0 (x - 0.25)/sqrt(1.0666667 + 1e-5)
     * = [0.7261810, 1.6944223, 2.6626636, 3.6309049]; channel 1 (x - 0.5)/sqrt(1.5666667 + 1e-5) = [1.1983994, ...] */
    double gv[2] = {2, 1}, bv[2] = {0, -1};
    nl_var *g = nl_leaf(c, nl_tensor_wrap(gv, NL_F64, 1, sc), 1), *b = nl_leaf(c, nl_tensor_wrap(bv, NL_F64, 1, sc), 1);
    nl_var *xl = nl_leaf(c, nl_tensor_wrap(xv, NL_F64, 2, s), 1);
    y = nl_batchnorm(c, xl, NULL, NULL, rm, rv, 0.1, 1e-5, 0);
    const double e0[4] = {0.7261809734485556, 1.694422271379963, 2.6626635693113703, 3.6309048672427777};
    const double e1[4] = {1.1983993682327103, 2.7962651925429904, 4.394131016853271, 5.991996841163552};
    for (int n = 0; n < 4; n++) {
        NLT_NEAR(nl_tensor_get(&y->val, 2 * n), e0[n], 1e-6);
        NLT_NEAR(nl_tensor_get(&y->val, 2 * n + 1), e1[n], 1e-6);
    }
    NLT_NEAR(nl_tensor_get(&rm->val, 0), 0.25, 1e-7);
    NLT_NEAR(nl_tensor_get(&rv->val, 1), 1.5666666666666667, 1e-7);
    /* eval backward is the affine map: L = sum(y) -> dx = gamma / sqrt(rv + eps), dgamma = sum xhat, dbeta = N */
    y = nl_batchnorm(c, xl, g, b, rm, rv, 0.1, 1e-5, 0);
    NLT_NEAR(nl_tensor_get(&y->val, 0), 2 * e0[0], 1e-6);
    NLT_NEAR(nl_tensor_get(&y->val, 1), e1[0] - 1, 1e-6);
    NLT_OK(nl_backward(c, nl_sum(c, y, NL_AXIS_ALL, 0)));
    const double rs0 = 1 / sqrt((double)(float)1.0666666666666667 + 1e-5), rs1 = 1 / sqrt((double)(float)1.5666666666666667 + 1e-5);
    for (int n = 0; n < 4; n++) {
        NLT_NEAR(nl_tensor_get(&xl->grad, 2 * n), 2 * rs0, 1e-12);
        NLT_NEAR(nl_tensor_get(&xl->grad, 2 * n + 1), rs1, 1e-12);
    }
    NLT_NEAR(nl_tensor_get(&g->grad, 0), e0[0] + e0[1] + e0[2] + e0[3], 1e-5);
    NLT_NEAR(nl_tensor_get(&b->grad, 1), 4, 0);
    /* train mode backward by hand: L = sum(y) -> dx = 0 (sum of a normalised channel is constant) */
    nl_var *xl2 = nl_leaf(c, nl_tensor_wrap(xv, NL_F64, 2, s), 1);
    NLT_OK(nl_backward(c, nl_sum(c, nl_batchnorm(c, xl2, g, b, NULL, NULL, 0.1, 1e-5, 1), NL_AXIS_ALL, 0)));
    nl_tensor zero = nl_arena_tensor0(c->arena, NL_F64, 2, s);
    NLT_NEAR(max_abs_diff(&xl2->grad, &zero), 0, 1e-14);
    /* running stats update in train mode also without gradients (no-grad region) */
    nl_ctx_reset(c);
    nl_set_grad_enabled(c, 0);
    x = nl_input(c, nl_tensor_wrap(xv, NL_F64, 2, s));
    NLT_CHECK(nl_batchnorm(c, x, NULL, NULL, rm, rv, 0.1, 1e-5, 1) != NULL, "no-grad train");
    NLT_NEAR(nl_tensor_get(&rm->val, 0), 0.9 * 0.25 + 0.1 * 2.5, 1e-6);
    NLT_NEAR(nl_tensor_get(&rv->val, 1), 0.9 * 1.5666666666666667 + 0.1 * 20.0 / 3, 1e-6);
    nl_set_grad_enabled(c, 1);
    /* [N, C, H, W]: statistics over N, H, W per channel */
    double x4[16];
    for (int i = 0; i < 16; i++) x4[i] = i; /* [2, 2, 2, 2]: channel 0 = {0,1,2,3, 8,9,10,11}, mean 5.5 */
    int64_t s4[4] = {2, 2, 2, 2};
    y = nl_batchnorm(c, nl_input(c, nl_tensor_wrap(x4, NL_F64, 4, s4)), NULL, NULL, NULL, NULL, 0.1, 0, 1);
    /* channel 0 values {0,1,2,3,8,9,10,11}: mean 5.5, biased var = mean(x^2) - 5.5^2 = 380/8 - 30.25 = 17.25 */
    NLT_NEAR(nl_tensor_get(&y->val, 0), -5.5 / sqrt(17.25), 1e-14);
    NLT_NEAR(nl_tensor_get(&y->val, 12), (12 - 9.5) / sqrt(17.25), 1e-14);
    /* errors */
    int64_t s3[1] = {3};
    xl = nl_input(c, nl_tensor_wrap(xv, NL_F64, 2, s));
    nl_clear_error();
    NLT_CHECK(nl_batchnorm(c, xl, nl_input(c, nl_tensor_wrap(gv, NL_F64, 1, s3)), NULL, rm, rv, 0.1, 1e-5, 1) == NULL && msg_has("batchnorm", "[4,2]", "[3]"), "gamma [3]: %s", nl_last_error());
    NLT_CHECK(nl_batchnorm(c, xl, NULL, NULL, NULL, NULL, 0.1, 1e-5, 0) == NULL && msg_has("batchnorm", "running", NULL), "eval without running stats: %s", nl_last_error());
    NLT_CHECK(nl_batchnorm(c, xl, NULL, NULL, rm, NULL, 0.1, 1e-5, 1) == NULL, "only one running buffer");
    double one[2] = {1, 2};
    int64_t s12[2] = {1, 2};
    NLT_CHECK(nl_batchnorm(c, nl_input(c, nl_tensor_wrap(one, NL_F64, 2, s12)), NULL, NULL, rm, rv, 0.1, 1e-5, 1) == NULL && msg_has("batchnorm", "[1,2]", NULL), "one value per channel: %s", nl_last_error());
    NLT_CHECK(nl_batchnorm(c, nl_input(c, nl_tensor_wrap(one, NL_F64, 1, sc)), NULL, NULL, rm, rv, 0.1, 1e-5, 1) == NULL, "1-d input refused");
    nl_ctx_free(c);
    nl_params_free(&ps);
}

static void test_batchnorm_grads(void) {
    /* shapes: [6,3] (S = 1, row-chunk partials), [3,2,2,2] (S = 4), [2,3,8,8] (S = 64, per-(n,c) partials) */
    const int64_t shp[3][4] = {{6, 3, 0, 0}, {3, 2, 2, 2}, {2, 3, 8, 8}};
    const int nds[3] = {2, 4, 4};
    for (int dt = 0; dt < 2; dt++)
        for (int sh = 0; sh < 3; sh++)
            for (int mode = 0; mode < 4; mode++) { /* 0: train affine, 1: train plain, 2: eval affine, 3: train affine with running buffers */
                if (!dt && mode != 0) continue;
                if (sh == 2 && mode == 1) continue;
                nl_dtype t = dt ? NL_F64 : NL_F32;
                int64_t C = shp[sh][1];
                nl_tensor in[3] = {mk(t, nds[sh], shp[sh][0], shp[sh][1], shp[sh][2], shp[sh][3]), mk(t, 1, C, 0, 0, 0), mk(t, 1, C, 0, 0, 0)};
                fill(&in[0], 100 + sh, -2, 2);
                fill(&in[1], 101, 0.5, 1.5);
                fill(&in[2], 102, -1, 1);
                bn_args a = {mode != 1, mode != 1, mode != 2, mode >= 2, 0.1, mk(t, 1, C, 0, 0, 0), mk(t, 1, C, 0, 0, 0)};
                fill(&a.rm, 103, -0.5, 0.5);
                fill(&a.rv, 104, 0.5, 2);
                char what[64];
                snprintf(what, sizeof what, "batchnorm shape %d mode %d %s", sh, mode, dt ? "f64" : "f32");
                if (sh == 2 && dt) /* 384 outputs per channel pair: the central difference's own round-off is ~1e-7 at
                                    * step 1e-6 (the same for a reference batchnorm built from core ops), so step 1e-5 */
                    gc_full(what, f_bn, &a, mode == 1 ? 1 : 3, in, 1e-5, 3e-8, 1e-6);
                else
                    gc(what, f_bn, &a, mode == 1 ? 1 : 3, in, dt);
                for (int k = 0; k < 3; k++) free(in[k].data);
                free(a.rm.data);
                free(a.rv.data);
            }
}

static void test_batchnorm_threads(void) {
    /* both partial layouts above the parallel threshold: 1 vs 2 threads bit-identical (output, dx, dgamma, dbeta,
     * running stats) */
    const int64_t shp[2][4] = {{2048, 24, 1, 1}, {4, 8, 32, 32}};
    for (int sh = 0; sh < 2; sh++) {
        nl_tensor x = mk(NL_F32, 4, shp[sh][0], shp[sh][1], shp[sh][2], shp[sh][3]);
        int64_t C = shp[sh][1];
        fill(&x, 110, -3, 5);
        nl_tensor r[2][6];
        for (int th = 0; th < 2; th++) {
            nl_set_num_threads(th + 1);
            nl_tensor g = mk(NL_F32, 1, C, 0, 0, 0), b = mk(NL_F32, 1, C, 0, 0, 0);
            fill(&g, 111, 0.5, 1.5);
            r[th][4] = mk(NL_F32, 1, C, 0, 0, 0);
            r[th][5] = mk(NL_F32, 1, C, 0, 0, 0);
            nl_tensor_fill(&r[th][5], 1);
            nl_ctx *c = nl_ctx_new(0, 0);
            nl_var *xv = nl_leaf(c, x, 1), *gv = nl_leaf(c, g, 1), *bv = nl_leaf(c, b, 1);
            nl_var *y = nl_batchnorm(c, xv, gv, bv, nl_input(c, r[th][4]), nl_input(c, r[th][5]), 0.1, 1e-5, 1);
            nl_tensor seed = nl_arena_tensor(c->arena, NL_F32, 4, x.shape);
            fill(&seed, 112, -1, 1);
            NLT_OK(nl_backward_seed(c, y, &seed));
            nl_tensor *src[4] = {&y->val, &xv->grad, &gv->grad, &bv->grad};
            for (int k = 0; k < 4; k++) {
                r[th][k] = mk(NL_F32, src[k]->ndim, src[k]->shape[0], src[k]->shape[1], src[k]->shape[2], src[k]->shape[3]);
                nl_tensor_copy(&r[th][k], src[k]);
            }
            /* training output / gamma has zero mean and unit (biased) variance per channel (beta = 0) */
            if (th == 0) {
                int64_t N = shp[sh][0], S = shp[sh][2] * shp[sh][3];
                double worst_m = 0, worst_v = 0;
                for (int64_t ch = 0; ch < C; ch++) {
                    double s1 = 0, s2 = 0;
                    for (int64_t n = 0; n < N; n++)
                        for (int64_t q = 0; q < S; q++) {
                            double v = ((float *)y->val.data)[(n * C + ch) * S + q] / ((float *)g.data)[ch];
                            s1 += v; s2 += v * v;
                        }
                    worst_m = fmax(worst_m, fabs(s1 / (N * S)));
                    worst_v = fmax(worst_v, fabs(s2 / (N * S) - 1));
                }
                NLT_NEAR(worst_m, 0, 1e-5);
                NLT_NEAR(worst_v, 0, 1e-4);
            }
            nl_ctx_free(c);
            free(g.data); free(b.data);
        }
        nl_set_num_threads(2);
        for (int k = 0; k < 6; k++) {
            NLT_CHECK(bits_equal(&r[0][k], &r[1][k]), "batchnorm shape %d result %d differs between 1 and 2 threads", sh, k);
            free(r[0][k].data);
            free(r[1][k].data);
        }
        free(x.data);
    }
}

/* ================= embedding ================= */
typedef struct { const int32_t *ids; int nd; int64_t shape[3]; } emb_args;
static nl_var *f_emb(nl_ctx *c, nl_var **in, void *ud) {
    emb_args *a = ud;
    return nl_embedding(c, in[0], a->ids, a->nd, a->shape);
}

static void test_embedding(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    double tv[15];
    for (int i = 0; i < 15; i++) tv[i] = 10 * (i / 3) + i % 3; /* row v = [10v, 10v+1, 10v+2] */
    int64_t st[2] = {5, 3};
    nl_var *T = nl_leaf(c, nl_tensor_wrap(tv, NL_F64, 2, st), 1);
    int32_t ids[4] = {4, 0, 4, 2};
    int64_t is[2] = {2, 2};
    nl_var *y = nl_embedding(c, T, ids, 2, is);
    NLT_CHECK(y && y->val.ndim == 3 && y->val.shape[0] == 2 && y->val.shape[1] == 2 && y->val.shape[2] == 3, "shape [2,2,3]");
    for (int p = 0; p < 4; p++)
        for (int k = 0; k < 3; k++) NLT_NEAR(nl_tensor_get(&y->val, p * 3 + k), 10 * ids[p] + k, 0);
    /* scatter-add: L = sum(y * w), w[p, k] = p + 1 -> grad row 4 = 1 + 3 = 4, row 0 = 2, row 2 = 4, others 0 */
    nl_tensor seed = nl_arena_tensor(c->arena, NL_F64, 3, y->val.shape);
    for (int i = 0; i < 12; i++) nl_tensor_set(&seed, i, i / 3 + 1);
    NLT_OK(nl_backward_seed(c, y, &seed));
    const double rowg[5] = {2, 0, 4, 0, 4};
    for (int v = 0; v < 5; v++)
        for (int k = 0; k < 3; k++) NLT_NEAR(nl_tensor_get(&T->grad, v * 3 + k), rowg[v], 0);
    /* 0-d ids -> [D] */
    int32_t one = 3;
    y = nl_embedding(c, T, &one, 0, NULL);
    NLT_CHECK(y && y->val.ndim == 1 && y->val.shape[0] == 3 && nl_tensor_get(&y->val, 2) == 32, "scalar id");
    /* errors: bad id names the id, its position and the range */
    float big[200] = {0};
    int64_t sb[2] = {50, 4};
    nl_var *E = nl_input(c, nl_tensor_wrap(big, NL_F32, 2, sb));
    int32_t bad[5] = {1, 2, 3, 57, 0};
    int64_t s5[1] = {5};
    nl_clear_error();
    NLT_CHECK(nl_embedding(c, E, bad, 1, s5) == NULL && nl_last_status() == NL_EINVAL, "bad id");
    NLT_CHECK(!strcmp(nl_last_error(), "embedding: id 57 at position 3 out of range [0, 50)"), "message: %s", nl_last_error());
    bad[3] = -1;
    NLT_CHECK(nl_embedding(c, E, bad, 1, s5) == NULL && msg_has("id -1 at position 3", NULL, NULL), "negative id: %s", nl_last_error());
    int64_t s1[1] = {200};
    NLT_CHECK(nl_embedding(c, nl_input(c, nl_tensor_wrap(big, NL_F32, 1, s1)), ids, 1, s5) == NULL && msg_has("embedding", "[200]", NULL), "1-d table: %s", nl_last_error());
    NLT_CHECK(nl_embedding(c, NULL, ids, 1, s5) == NULL, "NULL propagates");
    nl_ctx_free(c);
    /* gradient check (f64 and f32), ids with repeats */
    int32_t gid[6] = {1, 3, 1, 0, 3, 3};
    emb_args a = {gid, 2, {3, 2, 0}};
    for (int dt = 0; dt < 2; dt++) {
        nl_tensor in = mk(dt ? NL_F64 : NL_F32, 2, 4, 3, 0, 0);
        fill(&in, 120, -1, 1);
        gc(dt ? "embedding f64" : "embedding f32", f_emb, &a, 1, &in, dt);
        free(in.data);
    }
}

static void test_embedding_threads(void) {
    /* large backward: D = 40 (bucketed by id) and D = 256 (blocks of columns); both equal a serial in-order
     * scatter-add exactly, for 1 and 2 threads */
    const int64_t V = 97, n = 3000, Ds[2] = {40, 256};
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    nl_rng r;
    nl_rng_init(&r, 130, 1);
    for (int64_t p = 0; p < n; p++) ids[p] = (int32_t)nl_rng_below(&r, p % 5 ? V : 3); /* skewed: many 0..2 */
    for (int di = 0; di < 2; di++) {
        const int64_t D = Ds[di];
        nl_tensor tab = mk(NL_F32, 2, V, D, 0, 0), seed = mk(NL_F32, 2, n, D, 0, 0), ref = mk(NL_F32, 2, V, D, 0, 0);
        fill(&tab, 131, -1, 1);
        fill(&seed, 132, -1, 1);
        float *rf = ref.data, *sd = seed.data;
        for (int64_t p = 0; p < n; p++)
            for (int64_t k = 0; k < D; k++) rf[ids[p] * D + k] += sd[p * D + k];
        for (int th = 0; th < 2; th++) {
            nl_set_num_threads(th + 1);
            nl_ctx *c = nl_ctx_new(0, 0);
            nl_var *T = nl_leaf(c, tab, 1);
            int64_t is[1] = {n};
            nl_var *y = nl_embedding(c, T, ids, 1, is);
            NLT_CHECK(y && ((float *)y->val.data)[5 * D + 7] == ((float *)tab.data)[ids[5] * D + 7], "lookup");
            NLT_OK(nl_backward_seed(c, y, &seed));
            NLT_CHECK(bits_equal(&T->grad, &ref), "D %lld threads %d: scatter-add differs from the serial in-order sum", (long long)D, th + 1);
            nl_ctx_free(c);
        }
        nl_set_num_threads(2);
        free(tab.data); free(seed.data); free(ref.data);
    }
    free(ids);
}

/* ================= concat ================= */
typedef struct { int n, axis; } cat_args;
static nl_var *f_cat(nl_ctx *c, nl_var **in, void *ud) {
    cat_args *a = ud;
    /* multiply by a varying weight afterwards is implicit in gradcheck's random R */
    return nl_concat(c, a->n, in, a->axis);
}

static void test_concat(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    double av[4] = {1, 2, 3, 4}, bv[2] = {5, 6};
    int64_t sa[2] = {2, 2}, sb[2] = {2, 1}, sr[2] = {1, 2};
    nl_var *a = nl_leaf(c, nl_tensor_wrap(av, NL_F64, 2, sa), 1), *b = nl_leaf(c, nl_tensor_wrap(bv, NL_F64, 2, sb), 1);
    nl_var *xs[2] = {a, b};
    /* axis 1: [[1,2],[3,4]] ++ [[5],[6]] = [[1,2,5],[3,4,6]] */
    nl_var *y = nl_concat(c, 2, xs, 1);
    const double e1[6] = {1, 2, 5, 3, 4, 6};
    NLT_CHECK(y && y->val.shape[0] == 2 && y->val.shape[1] == 3, "shape [2,3]");
    for (int i = 0; i < 6; i++) NLT_NEAR(nl_tensor_get(&y->val, i), e1[i], 0);
    /* backward slices: seed = [0..5] -> da = [[0,1],[3,4]], db = [[2],[5]] */
    nl_tensor seed = nl_arena_tensor(c->arena, NL_F64, 2, y->val.shape);
    for (int i = 0; i < 6; i++) nl_tensor_set(&seed, i, i);
    NLT_OK(nl_backward_seed(c, y, &seed));
    const double ga[4] = {0, 1, 3, 4};
    for (int i = 0; i < 4; i++) NLT_NEAR(nl_tensor_get(&a->grad, i), ga[i], 0);
    NLT_NEAR(nl_tensor_get(&b->grad, 0), 2, 0);
    NLT_NEAR(nl_tensor_get(&b->grad, 1), 5, 0);
    /* axis 0 (and negative axis): [[1,2],[3,4]] ++ [[5,6]] */
    nl_var *r = nl_input(c, nl_tensor_wrap(bv, NL_F64, 2, sr));
    nl_var *xs0[2] = {a, r};
    y = nl_concat(c, 2, xs0, -2);
    NLT_CHECK(y && y->val.shape[0] == 3 && y->val.shape[1] == 2, "shape [3,2]");
    for (int i = 0; i < 6; i++) NLT_NEAR(nl_tensor_get(&y->val, i), i + 1, 0);
    /* strided input (transposed view): a^T ++ b along axis 1 = [[1,3,5],[2,4,6]] */
    nl_var *xs2[2] = {nl_transpose(c, a, 0, 1), b};
    y = nl_concat(c, 2, xs2, 1);
    const double e2[6] = {1, 3, 5, 2, 4, 6};
    for (int i = 0; i < 6; i++) NLT_NEAR(nl_tensor_get(&y->val, i), e2[i], 0);
    /* errors name the op and both shapes */
    nl_clear_error();
    NLT_CHECK(nl_concat(c, 2, xs, 0) == NULL && nl_last_status() == NL_ESHAPE && msg_has("concat", "[2,2]", "[2,1]"), "message: %s", nl_last_error());
    float fv[2] = {0, 0};
    nl_var *xsd[2] = {a, nl_input(c, nl_tensor_wrap(fv, NL_F32, 2, sb))};
    NLT_CHECK(nl_concat(c, 2, xsd, 1) == NULL && nl_last_status() == NL_EDTYPE && msg_has("concat", "f32", "f64"), "message: %s", nl_last_error());
    NLT_CHECK(nl_concat(c, 2, xs, 2) == NULL && msg_has("concat", "axis", NULL), "bad axis: %s", nl_last_error());
    NLT_CHECK(nl_concat(c, 0, xs, 0) == NULL, "n = 0 refused");
    nl_var *xsn[2] = {a, NULL};
    NLT_CHECK(nl_concat(c, 2, xsn, 0) == NULL, "NULL propagates");
    nl_ctx_free(c);
    /* large, axis 0 (one outer block) and axis 1, above the parallel threshold: backward slices exactly */
    for (int axis = 0; axis < 2; axis++) {
        nl_ctx *cl = nl_ctx_new(0, 0);
        nl_tensor A = mk(NL_F32, 2, 200, 150, 0, 0), B = mk(NL_F32, 2, 200, 150, 0, 0);
        fill(&A, 145, -1, 1);
        fill(&B, 146, -1, 1);
        nl_var *xl[2] = {nl_leaf(cl, A, 1), nl_leaf(cl, B, 1)};
        nl_var *yl = nl_concat(cl, 2, xl, axis);
        nl_tensor sd = nl_arena_tensor(cl->arena, NL_F32, 2, yl->val.shape);
        fill(&sd, 147, -1, 1);
        NLT_OK(nl_backward_seed(cl, yl, &sd));
        int64_t bad = 0;
        for (int64_t i = 0; i < 200; i++)
            for (int64_t j = 0; j < 150; j++) {
                int64_t ia = axis ? i * 300 + j : i * 150 + j, ib = axis ? i * 300 + 150 + j : (200 + i) * 150 + j;
                float *yv = yl->val.data, *s0 = sd.data;
                bad += yv[ia] != ((float *)A.data)[i * 150 + j] || yv[ib] != ((float *)B.data)[i * 150 + j];
                bad += ((float *)xl[0]->grad.data)[i * 150 + j] != s0[ia] || ((float *)xl[1]->grad.data)[i * 150 + j] != s0[ib];
            }
        NLT_CHECK(bad == 0, "axis %d: %lld mismatches", axis, (long long)bad);
        nl_ctx_free(cl);
        free(A.data);
        free(B.data);
    }
    /* gradient checks: 3 inputs on each axis of 3-d tensors; 8 inputs (more than NL_MAXIN) */
    for (int axis = 0; axis < 3; axis++) {
        nl_tensor in[3];
        for (int k = 0; k < 3; k++) {
            int64_t s[3] = {2, 3, 2};
            s[axis] = k + 1;
            in[k] = mk(NL_F64, 3, s[0], s[1], s[2], 0);
            fill(&in[k], 140 + k, -1, 1);
        }
        cat_args ca = {3, axis};
        gc("concat 3 inputs", f_cat, &ca, 3, in, 1);
        for (int k = 0; k < 3; k++) free(in[k].data);
    }
    nl_tensor in8[8];
    for (int k = 0; k < 8; k++) {
        in8[k] = mk(NL_F32, 2, 2, 1 + k % 3, 0, 0);
        fill(&in8[k], 150 + k, -1, 1);
    }
    cat_args c8 = {8, 1};
    gc("concat 8 inputs f32", f_cat, &c8, 8, in8, 0);
    for (int k = 0; k < 8; k++) free(in8[k].data);
    /* 8 inputs where only the last needs a gradient */
    nl_ctx *cc = nl_ctx_new(0, 0);
    double one[2] = {1, 1};
    int64_t s2[1] = {2};
    nl_var *v8[8];
    for (int k = 0; k < 8; k++) v8[k] = nl_leaf(cc, nl_tensor_wrap(one, NL_F64, 1, s2), k == 7);
    y = nl_concat(cc, 8, v8, 0);
    NLT_CHECK(y && y->requires_grad && y->val.shape[0] == 16, "8-way concat records");
    NLT_OK(nl_backward(cc, nl_sum(cc, y, NL_AXIS_ALL, 0)));
    NLT_NEAR(nl_tensor_get(&v8[7]->grad, 1), 1, 0);
    NLT_CHECK(v8[0]->grad.data == NULL, "no gradient for inputs that do not need one");
    nl_ctx_free(cc);
}

/* ================= dropout ================= */
typedef struct { double p; uint64_t seed; } drop_args;
static nl_var *f_drop(nl_ctx *c, nl_var **in, void *ud) {
    drop_args *a = ud;
    nl_rng r;
    nl_rng_init(&r, a->seed, 3); /* same mask on every evaluation */
    return nl_dropout(c, in[0], a->p, 1, &r);
}

static void test_dropout(void) {
    const int64_t n = 100001; /* last tile partial (673 elements) */
    const double p = 0.3, scale = 1 / 0.7;
    nl_tensor x = mk(NL_F32, 2, 1, n, 0, 0);
    fill(&x, 160, 0.5, 1.5); /* nonzero, so kept <=> output nonzero */
    nl_rng r0;
    nl_rng_init(&r0, 42, 7);
    r0.counter = 1000;
    nl_tensor outs[2];
    for (int th = 0; th < 2; th++) {
        nl_set_num_threads(th + 1);
        nl_ctx *c = nl_ctx_new(0, 0);
        nl_rng r = r0;
        nl_var *xv = nl_leaf(c, x, 1);
        nl_var *y = nl_dropout(c, xv, p, 1, &r);
        NLT_CHECK(y && y != xv, "dropout in training makes a new var");
        NLT_CHECK(r.counter == r0.counter + (uint64_t)((n + 1023) / 1024) * 256, "rng advanced by 256 per tile of 1024: %llu", (unsigned long long)r.counter);
        outs[th] = mk(NL_F32, 2, 1, n, 0, 0);
        nl_tensor_copy(&outs[th], &y->val);
        if (th == 1) {
            /* kept fraction ~ 1-p (binomial sd sqrt(p(1-p)/n) = 0.00145; 4 sd), kept values scaled exactly */
            int64_t kept = 0, badscale = 0;
            const float *xp = x.data, *yp = y->val.data;
            for (int64_t i = 0; i < n; i++) {
                if (yp[i] != 0) {
                    kept++;
                    if (yp[i] != xp[i] * (float)scale) badscale++;
                }
            }
            NLT_NEAR((double)kept / n, 0.7, 0.006);
            NLT_CHECK(badscale == 0, "%lld kept values not x/(1-p)", (long long)badscale);
            /* the mask follows the documented layout: tile t = k/1024 uses Philox blocks base + 256 t + b,
             * element k takes word (k%1024)/256 of block k%256 and is kept when word < round(0.7 * 2^32) */
            float *m = malloc((size_t)n * sizeof *m);
            const uint32_t thr = (uint32_t)nearbyint(0.7 * 4294967296.0);
            for (int64_t k = 0; k < n; k++) {
                uint32_t w[4];
                nl_philox(r0.seed, r0.stream, r0.counter + (uint64_t)(k / 1024) * 256 + (uint64_t)(k % 256), w);
                m[k] = w[(k % 1024) / 256] < thr ? 1.0f : 0.0f;
            }
            int64_t differ = 0;
            for (int64_t i = 0; i < n; i++) differ += (m[i] != 0) != (yp[i] != 0);
            NLT_CHECK(differ == 0, "mask differs from the Philox reference in %lld places", (long long)differ);
            /* gradient = mask * scale */
            NLT_OK(nl_backward(c, nl_sum(c, y, NL_AXIS_ALL, 0)));
            int64_t badg = 0;
            for (int64_t i = 0; i < n; i++) {
                float e = m[i] != 0 ? (float)scale : 0.0f;
                if (((float *)xv->grad.data)[i] != e) badg++;
            }
            NLT_CHECK(badg == 0, "%lld gradient entries not mask*scale", (long long)badg);
            free(m);
            /* same rng state -> same mask; advanced state -> a different one */
            nl_rng ra = r0;
            nl_var *y2 = nl_dropout(c, xv, p, 1, &ra);
            NLT_CHECK(bits_equal(&y2->val, &y->val), "same rng state, same mask");
            nl_var *y3 = nl_dropout(c, xv, p, 1, &ra);
            NLT_CHECK(!bits_equal(&y3->val, &y->val), "next call, different mask");
        }
        nl_ctx_free(c);
    }
    nl_set_num_threads(2);
    NLT_CHECK(bits_equal(&outs[0], &outs[1]), "mask identical with 1 and 2 threads");
    free(outs[0].data);
    free(outs[1].data);
    /* identity cases return x itself; bad p refused */
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *xv = nl_input(c, x);
    nl_rng r = r0;
    NLT_CHECK(nl_dropout(c, xv, 0.5, 0, &r) == xv && r.counter == r0.counter, "eval: identity, rng untouched");
    NLT_CHECK(nl_dropout(c, xv, 0.0, 1, &r) == xv, "p = 0: identity");
    NLT_CHECK(nl_dropout(c, xv, 0.0, 1, NULL) == xv, "p = 0 needs no rng");
    nl_clear_error();
    NLT_CHECK(nl_dropout(c, xv, 1.0, 1, &r) == NULL && nl_last_status() == NL_EINVAL && msg_has("dropout", "p", NULL), "p = 1 refused: %s", nl_last_error());
    NLT_CHECK(nl_dropout(c, xv, -0.1, 0, &r) == NULL, "p < 0 refused (even in eval)");
    NLT_CHECK(nl_dropout(c, xv, NAN, 1, &r) == NULL, "p NaN refused");
    NLT_CHECK(nl_dropout(c, xv, 0.5, 1, NULL) == NULL && msg_has("dropout", "rng", NULL), "training without rng: %s", nl_last_error());
    NLT_CHECK(nl_dropout(c, NULL, 0.5, 1, &r) == NULL, "NULL propagates");
    /* f64 small case by hand: every kept value is x * 2 for p = 0.5 */
    double dv[5] = {1, 2, 3, 4, 5};
    int64_t s5[1] = {5};
    nl_rng rr;
    nl_rng_init(&rr, 1, 1);
    nl_var *y = nl_dropout(c, nl_input(c, nl_tensor_wrap(dv, NL_F64, 1, s5)), 0.5, 1, &rr);
    for (int i = 0; i < 5; i++) {
        double v = nl_tensor_get(&y->val, i);
        NLT_CHECK(v == 0 || v == 2 * dv[i], "element %d: %g", i, v);
    }
    nl_ctx_free(c);
    free(x.data);
    /* finite differences (the rng is re-created for every evaluation, so the mask is fixed) */
    for (int dt = 0; dt < 2; dt++) {
        nl_tensor in = mk(dt ? NL_F64 : NL_F32, 2, 4, 5, 0, 0);
        fill(&in, 170, -1, 1);
        drop_args a = {0.4, 9};
        gc(dt ? "dropout f64" : "dropout f32", f_drop, &a, 1, &in, dt);
        free(in.data);
    }
}

/* a small composite: MLP-like block through every op, checked end to end in f64 */
static nl_var *f_block(nl_ctx *c, nl_var **in, void *ud) {
    static const int32_t ids[4] = {2, 0, 1, 2};
    static const int32_t tg[4] = {1, 3, 0, 2};
    int64_t is[1] = {4};
    nl_var *e = nl_embedding(c, in[0], ids, 1, is);               /* [4,3] */
    nl_var *h = nl_layernorm(c, e, in[1], NULL, 1e-5);            /* [4,3] */
    nl_var *xs[2] = {h, nl_rmsnorm(c, e, NULL, 1e-6)};
    nl_var *cat = nl_concat(c, 2, xs, 1);                         /* [4,6] */
    nl_var *bn = nl_batchnorm(c, cat, NULL, NULL, NULL, NULL, 0.1, 1e-5, 1);
    nl_var *lg = nl_slice(c, bn, 1, 0, 4, 1);                      /* [4,4] */
    nl_var *l1 = nl_cross_entropy(c, lg, tg, 0.1, -1);
    nl_var *l2 = nl_mse(c, nl_softmax(c, lg, 0), nl_log_softmax(c, lg, 1));
    return nl_add(c, l1, l2);
}

static void test_composite(void) {
    nl_tensor in[2] = {mk(NL_F64, 2, 3, 3, 0, 0), mk(NL_F64, 1, 3, 0, 0, 0)};
    fill(&in[0], 180, -1, 1);
    fill(&in[1], 181, 0.5, 1.5);
    gc("composite block", f_block, NULL, 2, in, 1);
    free(in[0].data);
    free(in[1].data);
}

int main(void) {
    nl_threads_init();
    nl_set_num_threads(2);
    NLT_RUN(test_layernorm_values);
    NLT_RUN(test_layernorm_grads);
    NLT_RUN(test_layernorm_threads);
    NLT_RUN(test_batchnorm_values);
    NLT_RUN(test_batchnorm_grads);
    NLT_RUN(test_batchnorm_threads);
    NLT_RUN(test_embedding);
    NLT_RUN(test_embedding_threads);
    NLT_RUN(test_concat);
    NLT_RUN(test_dropout);
    NLT_RUN(test_composite);
    return nlt_finish();
}

