/* The finite networks of the `nngp-ntk` entry (methods/nngp_ntk/nngp_ntk.h): fully connected ReLU networks in the NTK
 * parametrisation of Jacot et al. 2018 exactly as lib/kernels defines the kernel (z = sw/sqrt(fan_in) W h + sb b,
 * W, b ~ N(0, 1), every tensor trained), built on the engine's autograd in float64; their empirical NTK from
 * per-example Jacobians (one backward pass per input), full-batch gradient descent on the mean squared error, and the
 * same gradient descent on the linearised model of a fixed kernel (Lee et al. 2019, eq. 8-9, discrete time). */
#include "nngp_ntk/nngp_ntk.h"
#include "nnlab/ops.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NET_STREAM 0x4E4E474BULL /* rng stream of the initial weights ("NNGK") */

nl_status nl_nngp_ntk_net_init(nl_nngp_ntk_net *m, int depth, int64_t d, int64_t width, double sw, double sb,
                               uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (depth < 0 || depth > NL_NNGP_NTK_MAX_DEPTH || d < 1 || width < 1 || !(sw > 0) || !(sb >= 0))
        return nl_set_error(NL_EINVAL, "nngp-ntk net: bad depth %d, d %lld, width %lld, sw %g or sb %g", depth,
                            (long long)d, (long long)width, sw, sb);
    m->depth = depth;
    m->d = d;
    m->width = width;
    m->sw = sw;
    m->sb = sb;
    nl_status s = nl_params_init(&m->ps, NL_F64);
    if (s) return s;
    for (int l = 0; l <= depth; l++) {
        const int64_t in = l == 0 ? d : width, out = l == depth ? 1 : width;
        char name[32];
        snprintf(name, sizeof name, "W%d", l + 1);
        m->W[l] = nl_params_add(&m->ps, name, 2, (int64_t[]){out, in});
        snprintf(name, sizeof name, "b%d", l + 1);
        m->b[l] = nl_params_add(&m->ps, name, 1, (int64_t[]){out});
        if (!m->W[l] || !m->b[l]) {
            nl_params_free(&m->ps);
            memset(m, 0, sizeof *m);
            return nl_last_status();
        }
    }
    nl_rng r;
    nl_rng_init(&r, seed, NET_STREAM);
    for (int i = 0; i < m->ps.n; i++) { /* tensor by tensor (the store pads between tensors) */
        double *v = m->ps.p[i]->var.val.data;
        for (int64_t k = 0; k < m->ps.p[i]->numel; k++) v[k] = nl_rng_normal(&r);
    }
    return NL_OK;
}

void nl_nngp_ntk_net_free(nl_nngp_ntk_net *m) {
    nl_params_free(&m->ps);
    memset(m, 0, sizeof *m);
}

nl_var *nl_nngp_ntk_net_forward(nl_nngp_ntk_net *m, nl_ctx *c, nl_var *x) {
    nl_var *h = x;
    for (int l = 0; l <= m->depth; l++) {
        const double fan = (double)(l == 0 ? m->d : m->width);
        h = nl_linear(c, nl_mul_scalar(c, h, m->sw / sqrt(fan)), m->W[l], nl_mul_scalar(c, m->b[l], m->sb));
        if (l < m->depth) h = nl_relu(c, h);
    }
    return h;
}

nl_status nl_nngp_ntk_net_predict(nl_nngp_ntk_net *m, nl_ctx *c, const double *x, int64_t n, double *f) {
    nl_ctx_reset(c);
    int was = nl_set_grad_enabled(c, 0);
    nl_var *out = nl_nngp_ntk_net_forward(m, c, nl_input(c, nl_tensor_wrap((void *)x, NL_F64, 2, (int64_t[]){n, m->d})));
    nl_set_grad_enabled(c, was);
    if (!out) return nl_last_status();
    memcpy(f, out->val.data, (size_t)n * sizeof *f);
    return NL_OK;
}

/* theta (n, n) = J J^T. The rows of J are the gradients of f(x_i) with respect to all P parameters, one backward pass
 * of the engine's autograd each; J is held in column chunks of at most mem_bytes (the passes are repeated per chunk),
 * so the widest networks need neither P x n doubles nor the per-layer structure of the gradient. */
nl_status nl_nngp_ntk_empirical_ntk(nl_nngp_ntk_net *m, nl_ctx *c, const double *x, int64_t n, double *theta,
                                    size_t mem_bytes) {
    const int64_t P = m->ps.total;
    int64_t chunk = (int64_t)(mem_bytes / ((size_t)n * sizeof(double)));
    if (chunk < 1) chunk = 1;
    if (chunk > P) chunk = P;
    double *J = malloc((size_t)(n * chunk) * sizeof *J);
    if (!J) return nl_set_error(NL_ENOMEM, "nngp-ntk: cannot allocate the %lld x %lld Jacobian chunk", (long long)n,
                                (long long)chunk);
    memset(theta, 0, (size_t)(n * n) * sizeof *theta);
    nl_status s = NL_OK;
    const double *g = m->ps.grad;
    for (int64_t p0 = 0; p0 < P && !s; p0 += chunk) {
        const int64_t len = P - p0 < chunk ? P - p0 : chunk;
        for (int64_t i = 0; i < n; i++) {
            nl_ctx_reset(c);
            nl_params_zero_grad(&m->ps);
            nl_var *xi = nl_input(c, nl_tensor_wrap((void *)(x + i * m->d), NL_F64, 2, (int64_t[]){1, m->d}));
            nl_var *out = nl_sum(c, nl_nngp_ntk_net_forward(m, c, xi), NL_AXIS_ALL, 0);
            if (!out) { s = nl_last_status(); break; }
            if ((s = nl_backward(c, out))) break;
            memcpy(J + i * len, g + p0, (size_t)len * sizeof *J);
        }
        if (s) break;
        nl_ctx_reset(c);
        int was = nl_set_grad_enabled(c, 0);
        nl_var *Jv = nl_input(c, nl_tensor_wrap(J, NL_F64, 2, (int64_t[]){n, len}));
        nl_var *G = nl_matmul_t(c, Jv, Jv, 0, 1);
        nl_set_grad_enabled(c, was);
        if (!G) { s = nl_last_status(); break; }
        const double *gv = G->val.data;
        for (int64_t k = 0; k < n * n; k++) theta[k] += gv[k];
    }
    nl_ctx_reset(c);
    nl_params_zero_grad(&m->ps);
    free(J);
    return s;
}

nl_status nl_nngp_ntk_net_train(nl_nngp_ntk_net *m, nl_ctx *c, const double *x, const double *y, int64_t n, double lr,
                                int64_t steps, double *loss0, double *loss1) {
    nl_var *xv = NULL, *yv = NULL;
    double *w = m->ps.data;
    const double *g = m->ps.grad;
    for (int64_t t = 0; t <= steps; t++) {
        nl_ctx_reset(c);
        nl_params_zero_grad(&m->ps);
        xv = nl_input(c, nl_tensor_wrap((void *)x, NL_F64, 2, (int64_t[]){n, m->d}));
        yv = nl_input(c, nl_tensor_wrap((void *)y, NL_F64, 2, (int64_t[]){n, 1}));
        /* L = 1/(2n) sum_i (f(x_i) - y_i)^2 */
        nl_var *loss = nl_mul_scalar(c, nl_mean(c, nl_square(c, nl_sub(c, nl_nngp_ntk_net_forward(m, c, xv), yv)),
                                                 NL_AXIS_ALL, 0), 0.5);
        if (!loss) return nl_last_status();
        if (t == 0 && loss0) *loss0 = nl_item(loss);
        if (t == steps) {
            if (loss1) *loss1 = nl_item(loss);
            break;
        }
        nl_status s = nl_backward(c, loss);
        if (s) return s;
        for (int64_t k = 0; k < m->ps.total; k++) w[k] -= lr * g[k];
    }
    nl_ctx_reset(c);
    nl_params_zero_grad(&m->ps);
    return NL_OK;
}

/* Gradient descent on L = 1/(2n) |f(X) - y|^2 of the model linearised around f0 with the fixed kernel K:
 *   f_{t+1}(X) = f_t(X) - lr/n K(X, X) (f_t(X) - y),   f_{t+1}(X*) = f_t(X*) - lr/n K(X*, X) (f_t(X) - y). */
nl_status nl_nngp_ntk_linear_gd(const double *Kxx, const double *Ksx, const double *f0x, const double *f0s,
                                const double *y, int64_t n, int64_t ns, double lr, int64_t steps, double *fx, double *fs) {
    double *r = malloc((size_t)n * sizeof *r);
    if (!r) return nl_set_error(NL_ENOMEM, "nngp-ntk: out of memory");
    memmove(fx, f0x, (size_t)n * sizeof *fx);
    memmove(fs, f0s, (size_t)ns * sizeof *fs);
    const double a = lr / (double)n;
    for (int64_t t = 0; t < steps; t++) {
        for (int64_t i = 0; i < n; i++) r[i] = fx[i] - y[i];
        for (int64_t i = 0; i < n; i++) {
            double acc = 0;
            for (int64_t j = 0; j < n; j++) acc += Kxx[i * n + j] * r[j];
            fx[i] -= a * acc;
        }
        for (int64_t i = 0; i < ns; i++) {
            double acc = 0;
            for (int64_t j = 0; j < n; j++) acc += Ksx[i * n + j] * r[j];
            fs[i] -= a * acc;
        }
    }
    free(r);
    return NL_OK;
}
