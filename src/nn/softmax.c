/* Softmax and log-softmax along any axis (f32 and f64).
 *
 * The input is viewed as [O, N, I] with N the softmax axis. Rows are stabilised by subtracting their maximum;
 * the sums are accumulated in double for f32. Last-axis case (I == 1): one task per row. Other axes: one task
 * per (o, block of up to SM_BLK columns of I), reading contiguous runs of the block, statistics on the stack.
 * Backward: softmax dx = y * (g - sum(g*y)); log-softmax dx = g - exp(y) * sum(g). */
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/vmath.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define SM_PAR_MIN 32768 /* elements below which loops stay serial */
#define SM_BLK 64         /* columns per task when the axis is not the last one */


#define SM_EXP_float nl_vexpf
#define SM_EXP_double exp

#define DEF_SM(T)                                                                                       \
    static void sm_fwd_##T(const T *x, T *y, int64_t O, int64_t N, int64_t I, int logm) {               \
        const int par = O * N * I > SM_PAR_MIN;                                                         \
        if (I == 1) {                                                                                   \
            _Pragma("omp parallel for if (par) schedule(static)")                                       \
            for (int64_t o = 0; o < O; o++) {                                                           \
                const T *xr = x + o * N;                                                                \
                T *yr = y + o * N;                                                                      \
                T m = xr[0];                                                                            \
                _Pragma("omp simd reduction(max:m)")                                                    \
                for (int64_t k = 1; k < N; k++) m = xr[k] > m ? xr[k] : m;                              \
                double s = 0;                                                                           \
                if (logm) {                                                                             \
                    _Pragma("omp simd reduction(+:s)")                                                  \
                    for (int64_t k = 0; k < N; k++) s += SM_EXP_##T(xr[k] - m);                         \
                    const T lse = (T)((double)m + log(s));                                              \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t k = 0; k < N; k++) yr[k] = xr[k] - lse;                                \
                } else {                                                                                \
                    _Pragma("omp simd reduction(+:s)")                                                  \
                    for (int64_t k = 0; k < N; k++) {                                                   \
                        T e = SM_EXP_##T(xr[k] - m);                                                    \
                        yr[k] = e;                                                                      \
                        s += e;                                                                         \
                    }                                                                                   \
                    const T inv = (T)(1.0 / s);                                                         \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t k = 0; k < N; k++) yr[k] *= inv;                                       \
                }                                                                                       \
            }                                                                                           \
            return;                                                                                     \
        }                                                                                               \
        const int64_t nb = (I + SM_BLK - 1) / SM_BLK, tasks = O * nb;                                   \
        _Pragma("omp parallel for if (par) schedule(static)")                                           \
        for (int64_t t = 0; t < tasks; t++) {                                                           \
            const int64_t o = t / nb, i0 = (t % nb) * SM_BLK;                                           \
            const int64_t w = I - i0 < SM_BLK ? I - i0 : SM_BLK;                                        \
            const T *xb = x + o * N * I + i0;                                                           \
            T *yb = y + o * N * I + i0;                                                                 \
            T m[SM_BLK];                                                                                \
            double s[SM_BLK];                                                                           \
            for (int64_t i = 0; i < w; i++) { m[i] = xb[i]; s[i] = 0; }                                 \
            for (int64_t k = 1; k < N; k++) {                                                           \
                const T *xk = xb + k * I;                                                               \
                _Pragma("omp simd")                                                                     \
                for (int64_t i = 0; i < w; i++) m[i] = xk[i] > m[i] ? xk[i] : m[i];                     \
            }                                                                                           \
            for (int64_t k = 0; k < N; k++) {                                                           \
                const T *xk = xb + k * I;                                                               \
                T *yk = yb + k * I;                                                                     \
                if (logm) {                                                                             \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t i = 0; i < w; i++) s[i] += SM_EXP_##T(xk[i] - m[i]);                   \
                } else {                                                                                \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t i = 0; i < w; i++) {                                                   \
                        T e = SM_EXP_##T(xk[i] - m[i]);                                                 \
                        yk[i] = e;                                                                      \
                        s[i] += e;                                                                      \
                    }                                                                                   \
                }                                                                                       \
            }                                                                                           \
            if (logm) for (int64_t i = 0; i < w; i++) m[i] = (T)((double)m[i] + log(s[i])); /* lse */  \
            else for (int64_t i = 0; i < w; i++) m[i] = (T)(1.0 / s[i]);                    /* 1/sum */ \
            for (int64_t k = 0; k < N; k++) {                                                           \
                const T *xk = xb + k * I;                                                               \
                T *yk = yb + k * I;                                                                     \
                if (logm) {                                                                             \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t i = 0; i < w; i++) yk[i] = xk[i] - m[i];                               \
                } else {                                                                                \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t i = 0; i < w; i++) yk[i] *= m[i];                                      \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
    /* dx += softmax: y*(g - sum(g*y)); log-softmax: g - exp(y)*sum(g). */                              \
    static void sm_bwd_##T(const T *y, const T *g, T *dx, int64_t O, int64_t N, int64_t I, int logm) {  \
        const int par = O * N * I > SM_PAR_MIN;                                                         \
        if (I == 1) {                                                                                   \
            _Pragma("omp parallel for if (par) schedule(static)")                                       \
            for (int64_t o = 0; o < O; o++) {                                                           \
                const T *yr = y + o * N, *gr = g + o * N;                                               \
                T *dr = dx + o * N;                                                                     \
                double s = 0;                                                                           \
                if (logm) {                                                                             \
                    _Pragma("omp simd reduction(+:s)")                                                  \
                    for (int64_t k = 0; k < N; k++) s += gr[k];                                         \
                    const T st = (T)s;                                                                  \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t k = 0; k < N; k++) dr[k] += gr[k] - SM_EXP_##T(yr[k]) * st;            \
                } else {                                                                                \
                    _Pragma("omp simd reduction(+:s)")                                                  \
                    for (int64_t k = 0; k < N; k++) s += (double)gr[k] * yr[k];                         \
                    const T st = (T)s;                                                                  \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t k = 0; k < N; k++) dr[k] += yr[k] * (gr[k] - st);                      \
                }                                                                                       \
            }                                                                                           \
            return;                                                                                     \
        }                                                                                               \
        const int64_t nb = (I + SM_BLK - 1) / SM_BLK, tasks = O * nb;                                   \
        _Pragma("omp parallel for if (par) schedule(static)")                                           \
        for (int64_t t = 0; t < tasks; t++) {                                                           \
            const int64_t o = t / nb, i0 = (t % nb) * SM_BLK;                                           \
            const int64_t w = I - i0 < SM_BLK ? I - i0 : SM_BLK;                                        \
            const int64_t base = o * N * I + i0;                                                        \
            double s[SM_BLK];                                                                           \
            T st[SM_BLK];                                                                               \
            for (int64_t i = 0; i < w; i++) s[i] = 0;                                                   \
            for (int64_t k = 0; k < N; k++) {                                                           \
                const T *gk = g + base + k * I, *yk = y + base + k * I;                                 \
                if (logm) {                                                                             \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t i = 0; i < w; i++) s[i] += gk[i];                                      \
                } else {                                                                                \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t i = 0; i < w; i++) s[i] += (double)gk[i] * yk[i];                      \
                }                                                                                       \
            }                                                                                           \
            for (int64_t i = 0; i < w; i++) st[i] = (T)s[i];                                            \
            for (int64_t k = 0; k < N; k++) {                                                           \
                const T *gk = g + base + k * I, *yk = y + base + k * I;                                 \
                T *dk = dx + base + k * I;                                                              \
                if (logm) {                                                                             \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t i = 0; i < w; i++) dk[i] += gk[i] - SM_EXP_##T(yk[i]) * st[i];         \
                } else {                                                                                \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t i = 0; i < w; i++) dk[i] += yk[i] * (gk[i] - st[i]);                   \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
    }
DEF_SM(float)
DEF_SM(double)

static void softmax_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *gx = nl_grad(c, n->in[0]);
    if (!gx) return;
    const nl_tensor *g = nl_node_grad_out(n);
    const nl_tensor *y = &n->out->val; /* contiguous output of the forward */
    if (g->dtype == NL_F32) sm_bwd_float(y->data, g->data, gx->data, n->i[0], n->i[1], n->i[2], (int)n->i[3]);
    else sm_bwd_double(y->data, g->data, gx->data, n->i[0], n->i[1], n->i[2], (int)n->i[3]);
}

static nl_var *softmax_op(nl_ctx *c, nl_var *x, int axis, int logm) {
    NL_REQUIRE(x);
    const char *name = logm ? "log_softmax" : "softmax";
    int nd = x->val.ndim;
    if (nd == 0) return nl_op_fail(NL_ESHAPE, name, "input must have at least one dimension", x, NULL);
    if (axis < 0) axis += nd;
    if (axis < 0 || axis >= nd) {
        char m[64];
        snprintf(m, sizeof m, "axis out of range for %d dims", nd);
        return nl_op_fail(NL_ESHAPE, name, m, x, NULL);
    }
    int64_t O = 1, N = x->val.shape[axis], I = 1;
    for (int i = 0; i < axis; i++) O *= x->val.shape[i];
    for (int i = axis + 1; i < nd; i++) I *= x->val.shape[i];
    nl_var *out = nl_op_out(c, x->val.dtype, nd, x->val.shape);
    if (!out) return NULL;
    if (O * N * I > 0) {
        nl_tensor X = nl_contig(c, &x->val);
        if (!X.data) return NULL;
        if (X.dtype == NL_F32) sm_fwd_float(X.data, out->val.data, O, N, I, logm);
        else sm_fwd_double(X.data, out->val.data, O, N, I, logm);
    }
    nl_var *in[1] = {x};
    nl_node *n = nl_op_record(c, name, out, softmax_backward, 1, in);
    if (n) {
        n->i[0] = O;
        n->i[1] = N;
        n->i[2] = I;
        n->i[3] = logm;
    }
    return out;
}

nl_var *nl_softmax(nl_ctx *c, nl_var *x, int axis) { return softmax_op(c, x, axis, 0); }
nl_var *nl_log_softmax(nl_ctx *c, nl_var *x, int axis) { return softmax_op(c, x, axis, 1); }
