/* peft: LoRA on a linear and a conv weight — bad input (rank above min(out, in), unknown name, 1-d target), the
 * identity at attachment (B = 0), the merged weight W0 + s B A, the adapter gradients against central differences
 * of the loss through the engine's linear and conv ops, and detaching restores W0. */
#include "nltest.h"
#include "peft/lora.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/rng.h"

/* a store with lin.weight (6, 5), conv.weight (4, 3, 3, 3), conv.bias (4) filled with N(0, 0.3) */
static void make_store(nl_params *ps) {
    nl_params_init(ps, NL_F32);
    nl_params_add(ps, "lin.weight", 2, (int64_t[]){6, 5});
    nl_params_add(ps, "conv.weight", 4, (int64_t[]){4, 3, 3, 3});
    nl_params_add(ps, "conv.bias", 1, (int64_t[]){4});
    nl_rng r;
    nl_rng_init(&r, 7, 1);
    for (int i = 0; i < ps->n; i++) nl_rng_fill_normal(&r, &ps->p[i]->var.val, 0, 0.3);
}

static float g_x[3 * 5], g_xc[2 * 3 * 5 * 5], g_r1[3 * 6], g_r2[2 * 4 * 5 * 5]; /* inputs and loss weights */

/* L = sum(R1 * x W^T) + sum(R2 * conv(xc, w, b, pad 1)); with backward when grad is set */
static double loss(nl_params *ps, int grad) {
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    nl_var *x = nl_input(c, nl_tensor_wrap(g_x, NL_F32, 2, (int64_t[]){3, 5}));
    nl_var *xc = nl_input(c, nl_tensor_wrap(g_xc, NL_F32, 4, (int64_t[]){2, 3, 5, 5}));
    nl_var *r1 = nl_input(c, nl_tensor_wrap(g_r1, NL_F32, 2, (int64_t[]){3, 6}));
    nl_var *r2 = nl_input(c, nl_tensor_wrap(g_r2, NL_F32, 4, (int64_t[]){2, 4, 5, 5}));
    nl_var *y1 = nl_linear(c, x, &nl_params_find(ps, "lin.weight")->var, NULL);
    nl_var *y2 = nl_conv2d(c, xc, &nl_params_find(ps, "conv.weight")->var, &nl_params_find(ps, "conv.bias")->var, 1, 1);
    nl_var *L = nl_add(c, nl_sum(c, nl_mul(c, y1, r1), NL_AXIS_ALL, 0), nl_sum(c, nl_mul(c, y2, r2), NL_AXIS_ALL, 0));
    double v = L ? nl_item(L) : NAN;
    if (grad && L) NLT_OK(nl_backward(c, L));
    nl_ctx_free(c);
    return v;
}

static void test_bad_input(void) {
    nl_params ps;
    make_store(&ps);
    nl_lora l;
    NLT_CHECK(nl_lora_init(&l, &ps, NULL, 0, 5, 1, 1) == NL_EINVAL && strstr(nl_last_error(), "rank 5 exceeds min(out, in) = 4"),
              "conv (4, 27) with rank 5: %s", nl_last_error());
    NLT_CHECK(nl_lora_count_for(&ps, NULL, 0, 5) == -1, "count_for rejects rank 5");
    const char *lin[] = {"lin.weight"};
    NLT_CHECK(nl_lora_init(&l, &ps, lin, 1, 6, 1, 1) == NL_EINVAL && strstr(nl_last_error(), "'lin.weight' (6, 5)"), "linear rank 6: %s",
              nl_last_error());
    const char *bias[] = {"conv.bias"}, *none[] = {"nope"};
    NLT_CHECK(nl_lora_init(&l, &ps, bias, 1, 1, 1, 1) == NL_EINVAL, "1-d target rejected");
    NLT_CHECK(nl_lora_init(&l, &ps, none, 1, 1, 1, 1) == NL_EINVAL && strstr(nl_last_error(), "nope"), "unknown name");
    NLT_CHECK(nl_lora_init(&l, &ps, NULL, 0, 0, 1, 1) == NL_EINVAL, "rank 0 rejected");
    NLT_CHECK(nl_lora_init(&l, &ps, lin, 1, 5, 1, 1) == NL_OK, "rank 5 = min(6, 5) is allowed");
    nl_lora_free(&l);
    nl_params_free(&ps);
}

static void test_forward(void) {
    nl_params ps;
    make_store(&ps);
    float W0[6 * 5];
    memcpy(W0, nl_params_find(&ps, "lin.weight")->var.val.data, sizeof W0);
    nl_lora l;
    NLT_OK(nl_lora_init(&l, &ps, NULL, 0, 2, 4, 3));
    NLT_CHECK(l.n == 2 && nl_lora_count(&l) == 2 * (6 + 5) + 2 * (4 + 27), "count %lld", (long long)nl_lora_count(&l));
    NLT_CHECK(nl_lora_count_for(&ps, NULL, 0, 2) == nl_lora_count(&l), "count_for agrees");
    NLT_CHECK(nl_params_find(&ps, "conv.bias")->var.requires_grad == 0, "non-targets frozen");
    nl_lora_merge(&l);
    NLT_CHECK(!memcmp(W0, nl_params_find(&ps, "lin.weight")->var.val.data, sizeof W0), "B = 0: merged weight bit-identical to W0");
    nl_rng r;
    nl_rng_init(&r, 11, 2);
    for (int k = 0; k < l.n; k++) nl_rng_fill_normal(&r, &l.t[k].B->val, 0, 0.5);
    nl_lora_merge(&l);
    const float *W = nl_params_find(&ps, "lin.weight")->var.val.data, *A = l.t[0].A->val.data, *B = l.t[0].B->val.data;
    double err = 0;
    for (int o = 0; o < 6; o++)
        for (int i = 0; i < 5; i++) {
            double d = W0[o * 5 + i];
            for (int k = 0; k < 2; k++) d += 2.0 * B[o * 2 + k] * A[k * 5 + i]; /* s = alpha / r = 2 */
            err = fmax(err, fabs(d - W[o * 5 + i]));
        }
    NLT_CHECK(err < 1e-6, "merged weight W0 + s B A, max err %g", err);
    nl_lora_free(&l);
    NLT_CHECK(!memcmp(W0, nl_params_find(&ps, "lin.weight")->var.val.data, sizeof W0), "free restores W0");
    nl_params_free(&ps);
}

static void test_grad(void) {
    nl_params ps;
    make_store(&ps);
    nl_rng r;
    nl_rng_init(&r, 5, 3);
    nl_tensor t;
    t = nl_tensor_wrap(g_x, NL_F32, 1, (int64_t[]){15}), nl_rng_fill_normal(&r, &t, 0, 1);
    t = nl_tensor_wrap(g_xc, NL_F32, 1, (int64_t[]){150}), nl_rng_fill_normal(&r, &t, 0, 1);
    t = nl_tensor_wrap(g_r1, NL_F32, 1, (int64_t[]){18}), nl_rng_fill_normal(&r, &t, 0, 1);
    t = nl_tensor_wrap(g_r2, NL_F32, 1, (int64_t[]){200}), nl_rng_fill_normal(&r, &t, 0, 1);
    nl_lora l;
    NLT_OK(nl_lora_init(&l, &ps, NULL, 0, 2, 3, 9));
    for (int k = 0; k < l.n; k++) nl_rng_fill_normal(&r, &l.t[k].B->val, 0, 0.5); /* B != 0 so that dA != 0 */
    nl_lora_merge(&l);
    nl_params_zero_grad(&ps);
    nl_params_zero_grad(&l.ad);
    loss(&ps, 1);
    nl_lora_grad(&l);
    double worst = 0;
    int64_t checked = 0, bad = 0;
    for (int k = 0; k < l.n; k++)
        for (int w = 0; w < 2; w++) {
            nl_var *v = w ? l.t[k].B : l.t[k].A;
            float *val = v->val.data, *g = v->grad.data;
            int64_t n = nl_tensor_numel(&v->val);
            for (int64_t j = 0; j < n; j++) {
                float keep = val[j];
                const double h = 1e-2;
                val[j] = keep + (float)h, nl_lora_merge(&l);
                double lp = loss(&ps, 0);
                val[j] = keep - (float)h, nl_lora_merge(&l);
                double lm = loss(&ps, 0);
                val[j] = keep;
                double num = (lp - lm) / (2 * h), e = fabs(num - g[j]) / fmax(1, fabs(num));
                worst = fmax(worst, e);
                bad += e > 2e-3;
                checked++;
            }
        }
    nl_lora_merge(&l);
    NLT_CHECK(bad == 0 && checked == nl_lora_count(&l), "%lld of %lld adapter gradients off (worst rel err %g)", (long long)bad,
              (long long)checked, worst);
    nl_lora_free(&l);
    nl_params_free(&ps);
}

int main(void) {
    NLT_RUN(test_bad_input);
    NLT_RUN(test_forward);
    NLT_RUN(test_grad);
    return nlt_finish();
}
