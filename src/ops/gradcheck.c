/* Finite-difference gradient checks (central differences against the tape's gradients). */
#include "nnlab/gradcheck.h"
#include "nnlab/ops.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* L = sum(out * R): R is a fixed pseudo-random weight per output element (deterministic hash). */
static double weight_of(int64_t i) {
    uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return 0.5 + (double)(z >> 11) / 9007199254740992.0; /* [0.5, 1.5) */
}

static double eval_loss(nl_gc_fn f, void *ud, int n, nl_tensor *inputs, nl_ctx *c, int record, nl_var **leaves) {
    nl_ctx_reset(c);
    nl_set_grad_enabled(c, record);
    for (int k = 0; k < n; k++) leaves[k] = nl_leaf(c, inputs[k], record ? 1 : 0);
    nl_var *out = f(c, leaves, ud);
    if (!out) return NAN;
    double L = 0;
    int64_t m = nl_tensor_numel(&out->val);
    for (int64_t i = 0; i < m; i++) L += nl_tensor_get(&out->val, i) * weight_of(i);
    if (record) {
        /* seed dL/dout = R */
        nl_tensor seed = nl_arena_tensor(c->arena, out->val.dtype, out->val.ndim, out->val.shape);
        for (int64_t i = 0; i < m; i++) nl_tensor_set(&seed, i, weight_of(i));
        if (!out->requires_grad) return NAN;
        if (nl_backward_seed(c, out, &seed) != NL_OK) return NAN;
    }
    return L;
}

nl_status nl_gradcheck(nl_gc_fn f, void *ud, int n, nl_tensor *inputs, const int *wrt, double eps, double atol,
                       double rtol, nl_gc_result *res) {
    memset(res, 0, sizeof *res);
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    if (!c) return NL_ENOMEM;
    nl_var **leaves = calloc((size_t)n, sizeof *leaves);
    nl_tensor *ana = calloc((size_t)n, sizeof *ana);
    double L0 = eval_loss(f, ud, n, inputs, c, 1, leaves);
    if (isnan(L0)) {
        nl_status s = nl_last_status() ? nl_last_status() : NL_EINVAL;
        char msg[512];
        snprintf(msg, sizeof msg, "gradcheck: forward/backward failed: %s", nl_last_error());
        nl_ctx_free(c); free(leaves); free(ana);
        return nl_set_error(s, "%s", msg);
    }
    /* copy analytic gradients out of the arena */
    for (int k = 0; k < n; k++) {
        int64_t m = nl_tensor_numel(&inputs[k]);
        ana[k] = nl_tensor_wrap(calloc((size_t)m, sizeof(double)), NL_F64, inputs[k].ndim, inputs[k].shape);
        if (leaves[k]->grad.data)
            for (int64_t i = 0; i < m; i++) ((double *)ana[k].data)[i] = nl_tensor_get(&leaves[k]->grad, i);
    }
    for (int k = 0; k < n; k++) {
        if (wrt && !wrt[k]) continue;
        int64_t m = nl_tensor_numel(&inputs[k]);
        for (int64_t i = 0; i < m; i++) {
            double x0 = nl_tensor_get(&inputs[k], i);
            double h = eps * (fabs(x0) > 1 ? fabs(x0) : 1.0);
            nl_tensor_set(&inputs[k], i, x0 + h);
            double xp = nl_tensor_get(&inputs[k], i);
            double Lp = eval_loss(f, ud, n, inputs, c, 0, leaves);
            nl_tensor_set(&inputs[k], i, x0 - h);
            double xm = nl_tensor_get(&inputs[k], i);
            double Lm = eval_loss(f, ud, n, inputs, c, 0, leaves);
            nl_tensor_set(&inputs[k], i, x0);
            double num = (Lp - Lm) / (xp - xm); /* actual step after rounding to the input dtype */
            double a = ((double *)ana[k].data)[i];
            double err = fabs(num - a);
            double scale = fmax(fabs(num), fabs(a));
            double rel = err / fmax(scale, 1e-12);
            res->checked++;
            if (err > res->max_abs_err) res->max_abs_err = err;
            if (scale > 1e-8 && rel > res->max_rel_err) res->max_rel_err = rel;
            if (!(err <= atol + rtol * scale)) {
                if (!res->failed)
                    snprintf(res->first_failure, sizeof res->first_failure, "input %d element %lld: numeric %.8g analytic %.8g (x=%.6g)", k, (long long)i, num, a, x0);
                res->failed++;
            }
        }
    }
    for (int k = 0; k < n; k++) free(ana[k].data);
    free(ana);
    free(leaves);
    nl_ctx_free(c);
    if (res->failed) return nl_set_error(NL_EINVAL, "gradcheck: %lld of %lld elements off: %s", (long long)res->failed, (long long)res->checked, res->first_failure);
    return NL_OK;
}
