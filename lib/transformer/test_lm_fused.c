/* nl_lm_linear_residual: values against nl_add(r, nl_linear(x, W, b)) and, without residual, nl_linear(x, W, b)
 * (f64 and f32, with and without bias, 2-D and 3-D inputs), finite-difference gradients (f64, f32) for r, x, W,
 * b, shape / dtype errors; bitwise run-to-run determinism of an LM training step (loss and every gradient) at 1
 * and 2 threads, at a length with causal query blocks. */
#include "nltest.h"
#include "nnlab/extend.h"
#include "nnlab/gradcheck.h"
#include "transformer/transformer.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int ref, bias, nor; } lr_ud; /* nor: no residual (r = NULL) */

static nl_var *f_lr(nl_ctx *c, nl_var **in, void *ud) {
    const lr_ud *u = ud;
    nl_var *b = u->bias ? in[3] : NULL;
    if (u->nor) return u->ref ? nl_linear(c, in[1], in[2], b) : nl_lm_linear_residual(c, NULL, in[1], in[2], b);
    return u->ref ? nl_add(c, in[0], nl_linear(c, in[1], in[2], b)) : nl_lm_linear_residual(c, in[0], in[1], in[2], b);
}

static nl_tensor tnew(nl_dtype dt, int nd, const int64_t *sh) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= sh[i];
    return nl_tensor_wrap(calloc((size_t)n, nl_dtype_size(dt)), dt, nd, sh);
}

static void mk_inputs(nl_dtype dt, int nd, nl_tensor *t, uint64_t seed) {
    const int64_t B = 2, T = 5, In = 7, O = 3;
    int64_t sr[3] = {B, T, O}, sx[3] = {B, T, In}, sw[2] = {O, In}, sb[1] = {O};
    if (nd == 2) { sr[0] = B * T; sr[1] = O; sx[0] = B * T; sx[1] = In; }
    t[0] = tnew(dt, nd, sr);
    t[1] = tnew(dt, nd, sx);
    t[2] = tnew(dt, 2, sw);
    t[3] = tnew(dt, 1, sb);
    nl_rng r;
    nl_rng_init(&r, seed, 3);
    for (int i = 0; i < 4; i++) nl_rng_fill_uniform(&r, &t[i], -1, 1);
}

static void test_values_grads(void) {
    for (int f = 0; f < 2; f++)
        for (int nd = 2; nd <= 3; nd++)
            for (int bias = 0; bias < 2; bias++)
            for (int nor = 0; nor < 2; nor++) {
                const nl_dtype dt = f ? NL_F32 : NL_F64;
                const double tol = f ? 1e-5 : 1e-13;
                nl_tensor t[4];
                mk_inputs(dt, nd, t, 10 + nd + 2 * bias + 4 * f);
                double *vals[2][5] = {{0}};
                int64_t nv[5] = {0};
                for (int ref = 0; ref < 2; ref++) {
                    nl_ctx *c = nl_ctx_new(0, 0);
                    nl_var *in[4];
                    for (int i = 0; i < 4; i++) in[i] = nl_leaf(c, t[i], 1);
                    lr_ud u = {ref, bias, nor};
                    nl_var *y = f_lr(c, in, &u);
                    NLT_CHECK(y != NULL, "forward: %s", nl_last_error());
                    if (!y) { nl_ctx_free(c); continue; }
                    NLT_OK(nl_backward(c, nl_sum(c, nl_mul(c, y, y), NL_AXIS_ALL, 0)));
                    const nl_tensor *ts[5] = {&y->val, &in[0]->grad, &in[1]->grad, &in[2]->grad, &in[3]->grad};
                    for (int i = 0; i < 5; i++) {
                        nv[i] = ts[i]->data ? nl_tensor_numel(ts[i]) : 0;
                        vals[ref][i] = malloc(sizeof(double) * (size_t)(nv[i] + 1));
                        for (int64_t e = 0; e < nv[i]; e++) vals[ref][i][e] = nl_tensor_get(ts[i], e);
                    }
                    nl_ctx_free(c);
                }
                for (int i = 0; i < 5; i++) {
                    if ((i == 4 && !bias) || (i == 1 && nor)) { free(vals[0][i]); free(vals[1][i]); continue; }
                    double worst = 0;
                    for (int64_t e = 0; e < nv[i] && vals[0][i] && vals[1][i]; e++)
                        worst = fmax(worst, fabs(vals[0][i][e] - vals[1][i][e]) / (1 + fabs(vals[1][i][e])));
                    NLT_CHECK(worst <= tol && nv[i] > 0, "%s nd %d bias %d nor %d: term %d differs by %.3g",
                              nl_dtype_name(dt), nd, bias, nor, i, worst);
                    free(vals[0][i]); free(vals[1][i]);
                }
                lr_ud u = {0, bias, nor};
                int wrt[4] = {!nor, 1, 1, bias};
                nl_gc_result res;
                nl_status st = nl_gradcheck(f_lr, &u, bias ? 4 : 3, t, wrt, f ? 1e-2 : 1e-6, f ? 2e-3 : 1e-9, f ? 2e-2 : 1e-6, &res);
                NLT_CHECK(st == NL_OK && res.checked > 0, "gradcheck %s nd %d bias %d nor %d: %s", nl_dtype_name(dt), nd, bias, nor,
                          nl_last_error());
                for (int i = 0; i < 4; i++) free(t[i].data);
            }
}

static void test_errors(void) {
    nl_tensor t[4];
    mk_inputs(NL_F64, 3, t, 5);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *r = nl_leaf(c, t[0], 1), *x = nl_leaf(c, t[1], 1), *W = nl_leaf(c, t[2], 1), *b = nl_leaf(c, t[3], 1);
    NLT_CHECK(nl_lm_linear_residual(c, x, x, W, b) == NULL, "residual of the wrong width is refused");
    NLT_CHECK(nl_lm_linear_residual(c, r, r, W, b) == NULL, "x of the wrong width is refused");
    NLT_CHECK(nl_lm_linear_residual(c, r, x, W, W) == NULL, "a 2-D bias is refused");
    nl_ctx_free(c);
    for (int i = 0; i < 4; i++) free(t[i].data);
}

/* one loss + backward of an LM long enough for causal query blocks (T = 70: blocks of 35 rows): the loss and every
 * parameter gradient are bitwise equal from run to run at a fixed thread count (1 and 2 threads) */
static void test_lm_step_determinism(void) {
    for (int f = 0; f < 2; f++)
        for (int th = 1; th <= 2; th++) {
            nl_set_num_threads(th);
            nl_lm_config cfg = nl_lm_config_default();
            cfg.vocab = 19; cfg.context = 70; cfg.n_layers = 2; cfg.d_model = 16; cfg.n_heads = 2; cfg.d_ff = 24;
            cfg.dtype = f ? NL_F32 : NL_F64;
            const int64_t B = 3, T = 70;
            int32_t ids[3 * 70], tg[3 * 70];
            for (int i = 0; i < B * T; i++) { ids[i] = (i * 7 + 3) % 19; tg[i] = (i * 5 + 1) % 19; }
            double loss[2] = {0};
            unsigned char *grads[2] = {NULL, NULL};
            size_t gbytes = 0;
            for (int run = 0; run < 2; run++) {
                nl_lm m;
                NLT_OK(nl_lm_init(&m, &cfg, 42));
                nl_ctx *c = nl_ctx_new(0, 0);
                nl_params_zero_grad(&m.ps);
                nl_var *l = nl_lm_loss(&m, c, ids, tg, B, T, 1);
                NLT_CHECK(l != NULL, "lm loss: %s", nl_last_error());
                if (l) {
                    NLT_OK(nl_backward(c, l));
                    loss[run] = nl_item(l);
                    gbytes = (size_t)m.ps.total * nl_dtype_size(cfg.dtype);
                    grads[run] = malloc(gbytes);
                    memcpy(grads[run], m.ps.grad, gbytes);
                }
                nl_ctx_free(c);
                nl_lm_free(&m);
            }
            NLT_CHECK(memcmp(&loss[0], &loss[1], sizeof(double)) == 0 && isfinite(loss[0]), "%s T=%d: loss %.17g vs %.17g",
                      nl_dtype_name(cfg.dtype), th, loss[0], loss[1]);
            NLT_CHECK(grads[0] && grads[1] && memcmp(grads[0], grads[1], gbytes) == 0, "%s T=%d: gradients differ between runs",
                      nl_dtype_name(cfg.dtype), th);
            free(grads[0]);
            free(grads[1]);
        }
    nl_threads_init();
}

int main(void) {
    NLT_RUN(test_values_grads);
    NLT_RUN(test_errors);
    NLT_RUN(test_lm_step_determinism);
    return nlt_finish();
}
