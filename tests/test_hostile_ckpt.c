/* Engine side of hostile checkpoints: the checked size helper, parameter stores and arenas with huge shapes, and
 * nl_model_load on files whose metadata names a huge / invalid architecture, mismatched tensors or NaN / Inf
 * values (each file made here from a real checkpoint); the GELU kernel on NaN / Inf input (run under UBSan). */
#include "nltest.h"
#include "nltest_ckpt.h"
#include "nnlab/model.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdio.h>
#include <unistd.h>

static char g_dir[] = "/tmp/nl_hostile_XXXXXX";

static void test_size_helpers(void) {
    size_t r;
    NLT_CHECK(!nl_size_mul(&r, 1u << 20, 1u << 20) && r == (size_t)1 << 40, "fits");
    NLT_CHECK(nl_size_mul(&r, SIZE_MAX / 2 + 1, 2), "size_t product overflow detected");
    NLT_CHECK(nl_size_add(&r, SIZE_MAX, 1), "size_t sum overflow detected");
    int64_t n;
    size_t b;
    int64_t ok[3] = {2, 3, 4}, neg[2] = {3, -1}, big[2] = {(int64_t)1 << 40, (int64_t)1 << 40}, wide[2] = {(int64_t)1 << 31, (int64_t)1 << 31};
    NLT_OK(nl_shape_numel(3, ok, 4, "t", &n, &b));
    NLT_CHECK(n == 24 && b == 96, "numel %lld bytes %zu", (long long)n, b);
    NLT_CHECK(nl_shape_numel(2, neg, 4, "t", &n, &b) == NL_ESHAPE, "negative dim refused");
    NLT_CHECK(nl_shape_numel(2, big, 4, "t", &n, &b) == NL_ENOMEM, "int64 overflow refused");
    NLT_CHECK(nl_shape_numel(2, wide, 1u << 30, "t", &n, &b) == NL_ENOMEM, "byte count overflow refused");
    NLT_CHECK(nl_shape_numel(9, ok, 4, "t", &n, &b) == NL_ESHAPE, "too many dims refused");
}

static void test_store_and_arena(void) {
    nl_params ps;
    nl_params_init(&ps, NL_F32);
    int64_t big[2] = {(int64_t)1 << 40, (int64_t)1 << 40}, half[1] = {INT64_MAX / 2}, small[1] = {3};
    NLT_CHECK(!nl_params_add(&ps, "w", 2, big) && nl_last_status() == NL_ENOMEM, "product overflow: %s", nl_last_error());
    NLT_CHECK(nl_params_add(&ps, "s", 1, small) != NULL, "small tensor");
    NLT_CHECK(!nl_params_add(&ps, "h", 1, half) && nl_last_status() == NL_ENOMEM, "total overflow: %s", nl_last_error());
    NLT_CHECK(ps.n == 1 && ps.total == 3, "store unchanged by refused adds");
    nl_params_free(&ps);
    /* a layout-only store records without allocating: 2^40 elements cost nothing */
    nl_params_init_layout(&ps, NL_F32);
    int64_t t40[2] = {(int64_t)1 << 20, (int64_t)1 << 20};
    NLT_CHECK(nl_params_add(&ps, "w", 2, t40) != NULL && !ps.data && ps.total == (int64_t)1 << 40, "layout store");
    nl_params_free(&ps);
    nl_arena *a = nl_arena_new(0, 0);
    nl_tensor t = nl_arena_tensor(a, NL_F64, 2, big);
    NLT_CHECK(!t.data && nl_last_status() == NL_ENOMEM, "arena tensor overflow: %s", nl_last_error());
    NLT_CHECK(!nl_arena_alloc(a, SIZE_MAX - 3), "arena request near SIZE_MAX refused");
    nl_arena_free(a);
}

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

static void test_model_hostile(void) {
    char good[256], bad[256], cnn[256];
    path_of(good, sizeof good, "mlp.safetensors");
    path_of(bad, sizeof bad, "bad.safetensors");
    path_of(cnn, sizeof cnn, "cnn.safetensors");
    nl_model m;
    nl_model_config c = nl_mlp_config(3, (int64_t[]){4, 3, 2}, NL_ACT_RELU, 0);
    NLT_OK(nl_model_init(&m, &c, 1));
    NLT_OK(nl_model_save(&m, good, 0, NULL, NULL));
    nl_model_free(&m);
    NLT_OK(nl_model_load(&m, good));
    nl_model_free(&m);

    /* a few-hundred-byte file naming 2^24 x 2^24 layers: refused before allocating (well under a second) */
    NLT_OK(nlt_ckpt_rewrite(good, bad, "nnlab.sizes", "16777216,16777216,16777216,2", NULL, 0));
    double t0 = nl_time();
    nl_status s = nl_model_load(&m, bad);
    double dt = nl_time() - t0;
    NLT_CHECK(s == NL_ESHAPE && strstr(nl_last_error(), "fc1.weight"), "huge MLP: %s %s", nl_status_name(s), nl_last_error());
    NLT_CHECK(dt < 1.0, "refused in %.3f s", dt);
    NLT_CHECK(m.ps.n == 0 && !m.ps.data, "nothing left allocated");
    /* out-of-range / negative / malformed numbers in the metadata */
    const char *badsizes[] = {"-4,3,2", "4,0,2", "4,3,99999999999999999999", "4,3,2,", "4"};
    for (int i = 0; i < 5; i++) {
        NLT_OK(nlt_ckpt_rewrite(good, bad, "nnlab.sizes", badsizes[i], NULL, 0));
        NLT_CHECK(nl_model_load(&m, bad) == NL_EFORMAT, "sizes \"%s\": %s", badsizes[i], nl_last_error());
    }
    NLT_OK(nlt_ckpt_rewrite(good, bad, "nnlab.classes", "2147483648", NULL, 0));
    NLT_CHECK(nl_model_load(&m, bad) == NL_EFORMAT, "classes beyond int: %s", nl_last_error());
    /* a shape mismatch (architecture 4,5,2 against tensors of 4,3,2) */
    NLT_OK(nlt_ckpt_rewrite(good, bad, "nnlab.sizes", "4,5,2", NULL, 0));
    NLT_CHECK(nl_model_load(&m, bad) == NL_ESHAPE && strstr(nl_last_error(), "do not match the architecture"), "%s", nl_last_error());
    /* NaN / Inf weights: refused with the tensor's name, loaded with the opt-out */
    const double poison[3] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        NLT_OK(nlt_ckpt_rewrite(good, bad, NULL, NULL, "fc2.bias", poison[i]));
        NLT_CHECK(nl_model_load(&m, bad) == NL_EFORMAT && strstr(nl_last_error(), "fc2.bias") && strstr(nl_last_error(), "non-finite"),
                  "poison %g: %s", poison[i], nl_last_error());
        NLT_OK(nl_model_load_opt(&m, bad, NL_LOAD_ALLOW_NONFINITE));
        const nl_param *bp = NULL;
        NLT_CHECK(!nl_model_params_finite(&m, &bp) && bp && !strcmp(bp->name, "fc2.bias"), "opt-out keeps the value");
        nl_model_free(&m);
    }
    /* CNN: a huge input geometry and a wrapped in_dim are refused by the config check */
    nl_model_config cc = nl_cnn_config(1, 8, 8, 1, (int[]){2}, 0, 3);
    NLT_OK(nl_model_init(&m, &cc, 1));
    NLT_OK(nl_model_save(&m, cnn, 0, NULL, NULL));
    nl_model_free(&m);
    const char *geo[] = {"16777216,16777216,16777216", "65536,65536,1", "1,16777216,16777216"};
    for (int i = 0; i < 3; i++) {
        NLT_OK(nlt_ckpt_rewrite(cnn, bad, "nnlab.input", geo[i], NULL, 0));
        t0 = nl_time();
        NLT_CHECK(nl_model_load(&m, bad) == NL_EFORMAT && strstr(nl_last_error(), "invalid"), "geometry %s: %s", geo[i], nl_last_error());
        NLT_CHECK(nl_time() - t0 < 1.0, "fast");
    }
    NLT_OK(nlt_ckpt_rewrite(cnn, bad, "nnlab.channels", "65536", NULL, 0));
    NLT_CHECK(nl_model_load(&m, bad) != NL_OK, "huge channels: %s", nl_last_error());
    NLT_OK(nlt_ckpt_rewrite(cnn, bad, "nnlab.hidden", "16777216", NULL, 0));
    NLT_CHECK(nl_model_load(&m, bad) == NL_ESHAPE || nl_last_status() == NL_EFORMAT, "huge hidden: %s", nl_last_error());
    unlink(good);
    unlink(bad);
    unlink(cnn);
}

static void test_gelu_nan(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    enum { N = 37 };
    int64_t sh[1] = {N};
    nl_var *x = nl_new(c, NL_F32, 1, sh);
    float *xv = x->val.data;
    for (int i = 0; i < N; i++) xv[i] = (float)(i - 18) * 0.5f;
    xv[0] = NAN;
    xv[9] = NAN; /* inside a vector block */
    xv[20] = INFINITY;
    xv[21] = -INFINITY;
    xv[36] = -NAN;
    nl_var *y = nl_gelu(c, x);
    NLT_CHECK(y != NULL, "%s", nl_last_error());
    const float *yv = y->val.data;
    NLT_CHECK(isnan(yv[0]) && isnan(yv[9]) && isnan(yv[36]), "NaN in, NaN out");
    NLT_CHECK(yv[20] == INFINITY, "gelu(+inf) = %g", yv[20]);
    NLT_CHECK(yv[1] <= 0 && yv[1] > -0.01f, "gelu(-8.5) = %g", yv[1]);
    nl_ctx_free(c);
}

int main(void) {
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    NLT_RUN(test_size_helpers);
    NLT_RUN(test_store_and_arena);
    NLT_RUN(test_model_hostile);
    NLT_RUN(test_gelu_nan);
    rmdir(g_dir);
    return nlt_finish();
}
