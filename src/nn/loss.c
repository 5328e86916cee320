/* Losses: fused log-softmax + NLL cross-entropy (label smoothing, ignore index) and mean squared error.
 * f32 and f64; row statistics and sums are accumulated in double. Sums over many rows/elements go through
 * per-row or per-chunk partials added in a fixed order, so results do not depend on the thread count. */
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/vmath.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define LOSS_PAR_MIN 32768 /* elements below which loops stay serial */
#define MSE_CHUNK 4096     /* elements per partial sum (fixed: thread-count independent) */

/* ---------------- cross-entropy ---------------- */
typedef struct {
    nl_tensor X;        /* contiguous logits [N, C] */
    int32_t *tgt;       /* (N) copy of the targets */
    double *mx, *rs;    /* (N) row maximum and 1 / sum(exp(x - max)): softmax = exp(x - mx) * rs */
    int64_t count;      /* rows not ignored */
    double eps;         /* label smoothing */
    int32_t ignore;     /* ignore_index (< 0: none) */
} ce_saved;


#define CE_EXP_float nl_vexpf
#define CE_EXP_double exp

#define DEF_CE(T)                                                                                       \
    /* rl[r] = lse - (1-eps) x_t - eps mean(x) for kept rows (0 for ignored); max and 1/sum saved. */   \
    static void ce_fwd_##T(const T *x, const int32_t *tg, int64_t N, int64_t C, double eps, int32_t ign, \
                           double *rl, double *mx, double *rs) {                                        \
        const int par = N * C > LOSS_PAR_MIN;                                                           \
        _Pragma("omp parallel for if (par) schedule(static)")                                           \
        for (int64_t r = 0; r < N; r++) {                                                               \
            const T *xr = x + r * C;                                                                    \
            T m = xr[0];                                                                                \
            double sx = 0, s = 0;                                                                       \
            _Pragma("omp simd reduction(max:m) reduction(+:sx)")                                        \
            for (int64_t k = 0; k < C; k++) { m = xr[k] > m ? xr[k] : m; sx += xr[k]; }                 \
            _Pragma("omp simd reduction(+:s)")                                                          \
            for (int64_t k = 0; k < C; k++) s += CE_EXP_##T(xr[k] - m);                                 \
            const double l = (double)m + log(s);                                                        \
            mx[r] = m;                                                                                  \
            rs[r] = 1.0 / s;                                                                            \
            if (ign >= 0 && tg[r] == ign) { rl[r] = 0; continue; }                                      \
            rl[r] = l - (1.0 - eps) * (double)xr[tg[r]] - eps * sx / (double)C;                         \
        }                                                                                               \
    }                                                                                                   \
    /* dx += gs * (softmax - (1-eps) onehot - eps/C) on kept rows; fresh: dx is stored (ignored rows 0). */  \
    static void ce_bwd_##T(const ce_saved *s, double gs, T *dx, int fresh) {                            \
        const int64_t N = s->X.shape[0], C = s->X.shape[1];                                             \
        const T *x = s->X.data;                                                                         \
        const int par = N * C > LOSS_PAR_MIN;                                                           \
        const T uni = (T)(gs * s->eps / (double)C), hot = (T)(gs * (1.0 - s->eps));        \
        _Pragma("omp parallel for if (par) schedule(static)")                                           \
        for (int64_t r = 0; r < N; r++) {                                                               \
            const int32_t t = s->tgt[r];                                                                \
            if (s->ignore >= 0 && t == s->ignore) {                                                     \
                if (fresh) memset(dx + r * C, 0, sizeof(T) * (size_t)C);                                \
                continue;                                                                               \
            }                                                                                           \
            const T *xr = x + r * C;                                                                    \
            T *dr = dx + r * C;                                                                         \
            const T m = (T)s->mx[r], gr = (T)(gs * s->rs[r]);                                           \
            if (fresh) {                                                                                \
                _Pragma("omp simd")                                                                     \
                for (int64_t k = 0; k < C; k++) dr[k] = gr * CE_EXP_##T(xr[k] - m) - uni;               \
            } else {                                                                                    \
                _Pragma("omp simd")                                                                     \
                for (int64_t k = 0; k < C; k++) dr[k] += gr * CE_EXP_##T(xr[k] - m) - uni;              \
            }                                                                                           \
            dr[t] -= hot;                                                                               \
        }                                                                                               \
    }
DEF_CE(float)
DEF_CE(double)

static void ce_backward(nl_ctx *c, nl_node *n) {
    int fresh;
    nl_tensor *gx = nl_grad_w(c, n->in[0], &fresh); /* allocated (zero) even when every row is ignored */
    if (!gx) return;
    const ce_saved *s = n->saved;
    if (s->count == 0) {
        if (fresh) memset(gx->data, 0, (size_t)nl_tensor_numel(gx) * nl_dtype_size(gx->dtype));
        return;
    }
    double gs = nl_tensor_get(nl_node_grad_out(n), 0) / (double)s->count;
    if (gx->dtype == NL_F32) ce_bwd_float(s, gs, gx->data, fresh);
    else ce_bwd_double(s, gs, gx->data, fresh);
}

nl_var *nl_cross_entropy(nl_ctx *c, nl_var *logits, const int32_t *targets, double label_smoothing, int32_t ignore_index) {
    NL_REQUIRE(logits);
    const char *name = "cross_entropy";
    if (logits->val.ndim != 2) return nl_op_fail(NL_ESHAPE, name, "logits must be [N, C]", logits, NULL);
    const int64_t N = logits->val.shape[0], C = logits->val.shape[1];
    if (C < 1) return nl_op_fail(NL_ESHAPE, name, "logits need at least one class", logits, NULL);
    if (!(label_smoothing >= 0 && label_smoothing < 1)) {
        nl_set_error(NL_EINVAL, "cross_entropy: label_smoothing %g outside [0, 1)", label_smoothing);
        return NULL;
    }
    if (N > 0 && !targets) return nl_op_fail(NL_EINVAL, name, "targets is NULL", logits, NULL);
    int64_t count = 0;
    for (int64_t r = 0; r < N; r++) {
        int32_t t = targets[r];
        if (ignore_index >= 0 && t == ignore_index) continue;
        if (t < 0 || t >= C) {
            nl_set_error(NL_EINVAL, "cross_entropy: target %d at row %lld out of range [0, %lld) (ignore_index %d)",
                         (int)t, (long long)r, (long long)C, (int)ignore_index);
            return NULL;
        }
        count++;
    }
    nl_tensor X = nl_contig(c, &logits->val);
    if (!X.data) return NULL;
    nl_var *out = nl_op_out(c, X.dtype, 0, NULL);
    if (!out) return NULL;
    double *rl = NULL, *mx = NULL, *rs = NULL;
    if (N > 0) {
        rl = nl_scratch(c, (size_t)N * sizeof *rl);
        mx = nl_scratch(c, (size_t)N * sizeof *mx);
        rs = nl_scratch(c, (size_t)N * sizeof *rs);
        if (!rl || !mx || !rs) return NULL;
        if (X.dtype == NL_F32) ce_fwd_float(X.data, targets, N, C, label_smoothing, ignore_index, rl, mx, rs);
        else ce_fwd_double(X.data, targets, N, C, label_smoothing, ignore_index, rl, mx, rs);
    }
    double total = 0;
    for (int64_t r = 0; r < N; r++) total += rl[r]; /* fixed order */
    nl_tensor_set(&out->val, 0, count ? total / (double)count : 0.0);
    nl_var *in[1] = {logits};
    nl_node *n = nl_op_record(c, name, out, ce_backward, 1, in);
    if (n) {
        ce_saved *s = nl_scratch(c, sizeof *s);
        int32_t *tg = N > 0 ? nl_scratch(c, (size_t)N * sizeof *tg) : NULL;
        if (!s || (N > 0 && !tg)) return NULL;
        if (N > 0) memcpy(tg, targets, (size_t)N * sizeof *tg);
        s->X = X;
        s->tgt = tg;
        s->mx = mx;
        s->rs = rs;
        s->count = count;
        s->eps = label_smoothing;
        s->ignore = ignore_index;
        n->saved = s;
    }
    return out;
}

/* ---------------- mean squared error ---------------- */
typedef struct {
    nl_tensor A, B; /* contiguous inputs */
} mse_saved;

#define DEF_MSE(T)                                                                                      \
    static double mse_fwd_##T(const T *a, const T *b, int64_t n, double *part) {                        \
        const int64_t nc = (n + MSE_CHUNK - 1) / MSE_CHUNK;                                             \
        const int par = n > LOSS_PAR_MIN;                                                               \
        _Pragma("omp parallel for if (par) schedule(static)")                                           \
        for (int64_t k = 0; k < nc; k++) {                                                              \
            const int64_t i1 = (k + 1) * MSE_CHUNK < n ? (k + 1) * MSE_CHUNK : n;                       \
            double s = 0;                                                                               \
            _Pragma("omp simd reduction(+:s)")                                                          \
            for (int64_t i = k * MSE_CHUNK; i < i1; i++) {                                              \
                double d = (double)a[i] - (double)b[i];                                                 \
                s += d * d;                                                                             \
            }                                                                                           \
            part[k] = s;                                                                                \
        }                                                                                               \
        double s = 0;                                                                                   \
        for (int64_t k = 0; k < nc; k++) s += part[k];                                                  \
        return s / (double)n;                                                                           \
    }                                                                                                   \
    static void mse_bwd_##T(const T *a, const T *b, T *ga, T *gb, int64_t n, double scale) {            \
        const T k = (T)scale;                                                                           \
        const int par = n > LOSS_PAR_MIN;                                                               \
        if (ga && gb) {                                                                                 \
            _Pragma("omp parallel for simd if (parallel: par) schedule(static)")                        \
            for (int64_t i = 0; i < n; i++) {                                                           \
                T d = k * (a[i] - b[i]);                                                                \
                ga[i] += d;                                                                             \
                gb[i] -= d;                                                                             \
            }                                                                                           \
        } else if (ga) {                                                                                \
            _Pragma("omp parallel for simd if (parallel: par) schedule(static)")                        \
            for (int64_t i = 0; i < n; i++) ga[i] += k * (a[i] - b[i]);                                 \
        } else if (gb) {                                                                                \
            _Pragma("omp parallel for simd if (parallel: par) schedule(static)")                        \
            for (int64_t i = 0; i < n; i++) gb[i] -= k * (a[i] - b[i]);                                 \
        }                                                                                               \
    }
DEF_MSE(float)
DEF_MSE(double)

static void mse_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *ga = nl_grad(c, n->in[0]), *gb = nl_grad(c, n->in[1]);
    if (!ga && !gb) return;
    const mse_saved *s = n->saved;
    int64_t N = nl_tensor_numel(&s->A);
    double scale = 2.0 * nl_tensor_get(nl_node_grad_out(n), 0) / (double)N;
    if (s->A.dtype == NL_F32) mse_bwd_float(s->A.data, s->B.data, ga ? ga->data : NULL, gb ? gb->data : NULL, N, scale);
    else mse_bwd_double(s->A.data, s->B.data, ga ? ga->data : NULL, gb ? gb->data : NULL, N, scale);
}

nl_var *nl_mse(nl_ctx *c, nl_var *a, nl_var *b) {
    NL_REQUIRE(a, b);
    if (a->val.dtype != b->val.dtype) return nl_op_fail(NL_EDTYPE, "mse", "mixed dtypes", a, b);
    if (!nl_shape_equal(&a->val, &b->val)) return nl_op_fail(NL_ESHAPE, "mse", "shapes differ", a, b);
    int64_t n = nl_tensor_numel(&a->val);
    if (n == 0) return nl_op_fail(NL_ESHAPE, "mse", "empty input", a, b);
    nl_tensor A = nl_contig(c, &a->val);
    if (!A.data) return NULL;
    nl_tensor B = nl_contig(c, &b->val);
    if (!B.data) return NULL;
    double *part = nl_scratch(c, (size_t)((n + MSE_CHUNK - 1) / MSE_CHUNK) * sizeof *part);
    if (!part) return NULL;
    nl_var *out = nl_op_out(c, A.dtype, 0, NULL);
    if (!out) return NULL;
    double v = A.dtype == NL_F32 ? mse_fwd_float(A.data, B.data, n, part) : mse_fwd_double(A.data, B.data, n, part);
    nl_tensor_set(&out->val, 0, v);
    nl_var *in[2] = {a, b};
    nl_node *node = nl_op_record(c, "mse", out, mse_backward, 2, in);
    if (node) {
        mse_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->A = A;
        s->B = B;
        node->saved = s;
    }
    return out;
}
