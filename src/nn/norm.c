/* Normalisations: LayerNorm and RMSNorm over the last dimension, BatchNorm over channel axis 1 (f32 and f64).
 *
 * Statistics are accumulated in double, mean/variance in one pass over shifted data (sums of x - K and
 * (x - K)^2 with K the first element of the row/channel, which avoids the cancellation of sum/sum-of-squares).
 * Exact backward:
 *   layer/batch norm: dx = rstd * (dxh - mean(dxh) - xhat * mean(dxh * xhat)),  dxh = g * gamma
 *   rmsnorm:          dx = rstd * (dxh - xhat * mean(dxh * xhat))
 *   dgamma = sum g * xhat, dbeta = sum g (over rows / over batch and space).
 * Sums over rows go through partials of fixed chunks combined in a fixed order, so results do not depend on
 * the number of threads. */
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define NORM_PAR_MIN 32768  /* elements below which loops stay serial */
#define NORM_MAX_CHUNKS 32  /* row chunks for parameter-gradient partials (fixed: thread-count independent) */

static int same_vec(const nl_var *v, int64_t n, nl_dtype dt) {
    return v->val.ndim == 1 && v->val.shape[0] == n && v->val.dtype == dt;
}

/* ================= LayerNorm / RMSNorm ================= */
typedef struct {
    nl_tensor X;          /* contiguous input viewed as [R, D] */
    const void *gamma;    /* (D) contiguous or NULL */
    double *mean, *rstd;  /* (R) */
    int64_t R, D;
    int rms;
} ln_saved;

#define DEF_LN(T)                                                                                       \
    static void ln_fwd_##T(const T *x, T *y, const T *gm, const T *bt, int64_t R, int64_t D, double eps, \
                           int rms, double *mean, double *rstd) {                                       \
        const int par = R * D > NORM_PAR_MIN;                                                           \
        _Pragma("omp parallel for if (par) schedule(static)")                                           \
        for (int64_t r = 0; r < R; r++) {                                                               \
            const T *xr = x + r * D;                                                                    \
            T *yr = y + r * D;                                                                          \
            double mu = 0, var;                                                                         \
            if (rms) {                                                                                  \
                double s2 = 0;                                                                          \
                _Pragma("omp simd reduction(+:s2)")                                                     \
                for (int64_t k = 0; k < D; k++) s2 += (double)xr[k] * xr[k];                            \
                var = s2 / (double)D;                                                                   \
            } else {                                                                                    \
                const double K = xr[0];                                                                 \
                double s1 = 0, s2 = 0;                                                                  \
                _Pragma("omp simd reduction(+:s1, s2)")                                                 \
                for (int64_t k = 0; k < D; k++) {                                                       \
                    double d = (double)xr[k] - K;                                                       \
                    s1 += d;                                                                            \
                    s2 += d * d;                                                                        \
                }                                                                                       \
                mu = K + s1 / (double)D;                                                                \
                var = (s2 - s1 * s1 / (double)D) / (double)D;                                           \
                if (var < 0) var = 0;                                                                   \
            }                                                                                           \
            const double rs = 1.0 / sqrt(var + eps);                                                    \
            mean[r] = mu;                                                                               \
            rstd[r] = rs;                                                                               \
            const T m = (T)mu, s = (T)rs;                                                               \
            if (gm && bt) {                                                                             \
                _Pragma("omp simd")                                                                     \
                for (int64_t k = 0; k < D; k++) yr[k] = (xr[k] - m) * s * gm[k] + bt[k];                \
            } else if (gm) {                                                                            \
                _Pragma("omp simd")                                                                     \
                for (int64_t k = 0; k < D; k++) yr[k] = (xr[k] - m) * s * gm[k];                        \
            } else if (bt) {                                                                            \
                _Pragma("omp simd")                                                                     \
                for (int64_t k = 0; k < D; k++) yr[k] = (xr[k] - m) * s + bt[k];                        \
            } else {                                                                                    \
                _Pragma("omp simd")                                                                     \
                for (int64_t k = 0; k < D; k++) yr[k] = (xr[k] - m) * s;                                \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
    /* dx (may be NULL) += (= when store: a fresh gradient, every row is written); partial sums of g*xhat \
     * (pg) and g (pb) per chunk of rows (may be NULL). */                                              \
    static void ln_bwd_##T(const ln_saved *sv, const T *g, T *dx, double *pg, double *pb, int64_t nch,  \
                           int store) {                                                                 \
        const int64_t R = sv->R, D = sv->D, per = (R + nch - 1) / nch;                                  \
        const T *x = sv->X.data, *gm = sv->gamma;                                                       \
        const int rms = sv->rms;                                                                        \
        const int par = R * D > NORM_PAR_MIN && nch > 1;                                                \
        _Pragma("omp parallel for if (par) schedule(static)")                                           \
        for (int64_t ch = 0; ch < nch; ch++) {                                                          \
            double *pgc = pg ? pg + ch * D : NULL, *pbc = pb ? pb + ch * D : NULL;                      \
            if (pgc) memset(pgc, 0, (size_t)D * sizeof *pgc);                                           \
            if (pbc) memset(pbc, 0, (size_t)D * sizeof *pbc);                                           \
            const int64_t r1 = (ch + 1) * per < R ? (ch + 1) * per : R;                                 \
            for (int64_t r = ch * per; r < r1; r++) {                                                   \
                const T *xr = x + r * D, *gr = g + r * D;                                               \
                const T m = (T)sv->mean[r], s = (T)sv->rstd[r];                                         \
                if (pgc) {                                                                              \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t k = 0; k < D; k++) pgc[k] += (double)(gr[k] * ((xr[k] - m) * s));      \
                }                                                                                       \
                if (pbc) {                                                                              \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t k = 0; k < D; k++) pbc[k] += gr[k];                                    \
                }                                                                                       \
                if (!dx) continue;                                                                      \
                double sa = 0, sb = 0; /* sum dxh, sum dxh*xhat */                                      \
                if (gm) {                                                                               \
                    _Pragma("omp simd reduction(+:sa, sb)")                                             \
                    for (int64_t k = 0; k < D; k++) {                                                   \
                        T dh = gr[k] * gm[k];                                                           \
                        sa += dh;                                                                       \
                        sb += (double)(dh * ((xr[k] - m) * s));                                         \
                    }                                                                                   \
                } else {                                                                                \
                    _Pragma("omp simd reduction(+:sa, sb)")                                             \
                    for (int64_t k = 0; k < D; k++) {                                                   \
                        sa += gr[k];                                                                    \
                        sb += (double)(gr[k] * ((xr[k] - m) * s));                                      \
                    }                                                                                   \
                }                                                                                       \
                const T a = rms ? (T)0 : (T)(sa / (double)D), b = (T)(sb / (double)D);                  \
                T *dr = dx + r * D;                                                                     \
                if (gm && store) {                                                                      \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t k = 0; k < D; k++) dr[k] = s * (gr[k] * gm[k] - a - (xr[k] - m) * s * b); \
                } else if (gm) {                                                                        \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t k = 0; k < D; k++) dr[k] += s * (gr[k] * gm[k] - a - (xr[k] - m) * s * b); \
                } else if (store) {                                                                     \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t k = 0; k < D; k++) dr[k] = s * (gr[k] - a - (xr[k] - m) * s * b);      \
                } else {                                                                                \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t k = 0; k < D; k++) dr[k] += s * (gr[k] - a - (xr[k] - m) * s * b);     \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
    }
DEF_LN(float)
DEF_LN(double)

/* t[k] += sum over chunks of part[ch*D + k], chunks in order. */
static void add_partials(nl_tensor *t, const double *part, int64_t nch, int64_t D) {
    const int par = nch * D > NORM_PAR_MIN;
    if (t->dtype == NL_F32) {
        float *p = t->data;
#pragma omp parallel for if (par) schedule(static)
        for (int64_t k = 0; k < D; k++) {
            double s = 0;
            for (int64_t ch = 0; ch < nch; ch++) s += part[ch * D + k];
            p[k] += (float)s;
        }
    } else {
        double *p = t->data;
#pragma omp parallel for if (par) schedule(static)
        for (int64_t k = 0; k < D; k++) {
            double s = 0;
            for (int64_t ch = 0; ch < nch; ch++) s += part[ch * D + k];
            p[k] += s;
        }
    }
}

static void ln_backward(nl_ctx *c, nl_node *n) {
    const ln_saved *s = n->saved;
    int fresh;
    nl_tensor *gx = nl_grad_w(c, n->in[0], &fresh), *gg = nl_grad(c, n->in[1]), *gb = nl_grad(c, n->in[2]);
    if (!gx && !gg && !gb) return;
    const nl_tensor *g = nl_node_grad_out(n);
    int64_t nch = s->R < NORM_MAX_CHUNKS ? s->R : NORM_MAX_CHUNKS;
    if (nch < 1) return; /* R = 0: nothing to write */
    double *pg = NULL, *pb = NULL;
    if (gg && !(pg = nl_scratch(c, (size_t)(nch * s->D) * sizeof *pg))) return;
    if (gb && !(pb = nl_scratch(c, (size_t)(nch * s->D) * sizeof *pb))) return;
    if (g->dtype == NL_F32) ln_bwd_float(s, g->data, gx ? gx->data : NULL, pg, pb, nch, fresh);
    else ln_bwd_double(s, g->data, gx ? gx->data : NULL, pg, pb, nch, fresh);
    if (gg) add_partials(gg, pg, nch, s->D);
    if (gb) add_partials(gb, pb, nch, s->D);
}

static nl_var *norm_last(nl_ctx *c, nl_var *x, nl_var *gamma, nl_var *beta, double eps, int rms) {
    const char *name = rms ? "rmsnorm" : "layernorm";
    NL_REQUIRE(x);
    if (x->val.ndim < 1) return nl_op_fail(NL_ESHAPE, name, "input must have at least one dimension", x, NULL);
    const int64_t D = x->val.shape[x->val.ndim - 1], R = nl_tensor_numel(&x->val) / (D ? D : 1);
    const nl_dtype dt = x->val.dtype;
    if (gamma && !same_vec(gamma, D, dt)) return nl_op_fail(gamma->val.dtype != dt ? NL_EDTYPE : NL_ESHAPE, name, "gamma must be [D] (last dim of x) with x's dtype", x, gamma);
    if (beta && !same_vec(beta, D, dt)) return nl_op_fail(beta->val.dtype != dt ? NL_EDTYPE : NL_ESHAPE, name, "beta must be [D] (last dim of x) with x's dtype", x, beta);
    if (!(eps >= 0)) { nl_set_error(NL_EINVAL, "%s: eps %g must be >= 0", name, eps); return NULL; }
    nl_tensor X = nl_contig(c, &x->val), G = {0}, B = {0};
    if (!X.data) return NULL;
    if (gamma) { G = nl_contig(c, &gamma->val); if (!G.data) return NULL; }
    if (beta) { B = nl_contig(c, &beta->val); if (!B.data) return NULL; }
    nl_var *out = nl_op_out(c, dt, x->val.ndim, x->val.shape);
    if (!out) return NULL;
    double *mean = nl_scratch(c, (size_t)(R ? R : 1) * sizeof *mean);
    double *rstd = nl_scratch(c, (size_t)(R ? R : 1) * sizeof *rstd);
    if (!mean || !rstd) return NULL;
    if (R * D > 0) {
        if (dt == NL_F32) ln_fwd_float(X.data, out->val.data, G.data, B.data, R, D, eps, rms, mean, rstd);
        else ln_fwd_double(X.data, out->val.data, G.data, B.data, R, D, eps, rms, mean, rstd);
    }
    nl_var *in[3] = {x, gamma, beta};
    nl_node *n = nl_op_record(c, name, out, ln_backward, rms ? 2 : 3, in);
    if (n) {
        ln_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->X = X;
        s->gamma = G.data;
        s->mean = mean;
        s->rstd = rstd;
        s->R = R;
        s->D = D;
        s->rms = rms;
        n->saved = s;
    }
    return out;
}

nl_var *nl_layernorm(nl_ctx *c, nl_var *x, nl_var *gamma, nl_var *beta, double eps) {
    return norm_last(c, x, gamma, beta, eps, 0);
}
nl_var *nl_rmsnorm(nl_ctx *c, nl_var *x, nl_var *gamma, double eps) { return norm_last(c, x, gamma, NULL, eps, 1); }

/* ================= BatchNorm ================= */
/* x viewed as [N, C, S]. Per-channel sums go through partials: when S >= BN_SPATIAL one partial per (n, c)
 * (contiguous runs of S); otherwise one partial per (chunk of rows, c), rows of a chunk in order. */
#define BN_SPATIAL 64

typedef struct {
    nl_tensor X;          /* contiguous input [N, C, S] */
    const void *gamma;    /* (C) contiguous or NULL */
    double *mean, *rstd;  /* (C) batch statistics (train) or running statistics at forward time (eval) */
    int64_t N, C, S;
    int train;
} bn_saved;

static int64_t bn_parts(int64_t N, int64_t S) { return S >= BN_SPATIAL ? N : (N < NORM_MAX_CHUNKS ? N : NORM_MAX_CHUNKS); }

/* Channel sums: mode 0: s1 = sum(x - A), s2 = sum((x - A)^2); mode 1: s1 = sum g, s2 = sum g*(x - A)*B.
 * part: (2 * parts * C) scratch. Results in s1[C], s2[C]. */
#define DEF_BNSUM(T)                                                                                    \
    static void bn_sums_##T(int mode, const T *x, const T *g, const double *A, const double *B, int64_t N, \
                            int64_t C, int64_t S, double *part, double *s1, double *s2) {               \
        const int par = N * C * S > NORM_PAR_MIN;                                                       \
        const int64_t P = bn_parts(N, S);                                                               \
        double *p1 = part, *p2 = part + P * C;                                                          \
        if (S >= BN_SPATIAL) { /* one partial per (n, c): contiguous runs of S */                       \
            _Pragma("omp parallel for if (par) schedule(static)")                                       \
            for (int64_t t = 0; t < N * C; t++) {                                                       \
                const int64_t ch = t % C;                                                               \
                const T *xr = x + t * S;                                                                \
                double a = 0, b = 0;                                                                    \
                if (mode == 0) {                                                                        \
                    const double K = A[ch];                                                             \
                    _Pragma("omp simd reduction(+:a, b)")                                               \
                    for (int64_t s = 0; s < S; s++) { double d = (double)xr[s] - K; a += d; b += d * d; } \
                } else {                                                                                \
                    const T *gr = g + t * S;                                                            \
                    const T m = (T)A[ch], r = (T)B[ch];                                                 \
                    _Pragma("omp simd reduction(+:a, b)")                                               \
                    for (int64_t s = 0; s < S; s++) { a += gr[s]; b += (double)(gr[s] * ((xr[s] - m) * r)); } \
                }                                                                                       \
                p1[t] = a; /* t = n*C + ch: partial n of channel ch */                                  \
                p2[t] = b;                                                                              \
            }                                                                                           \
        } else { /* one partial per (chunk of rows, c) */                                               \
            const int64_t per = (N + P - 1) / P;                                                        \
            _Pragma("omp parallel for if (par) schedule(static)")                                       \
            for (int64_t k = 0; k < P; k++) {                                                           \
                double *q1 = p1 + k * C, *q2 = p2 + k * C;                                              \
                memset(q1, 0, (size_t)C * sizeof *q1);                                                  \
                memset(q2, 0, (size_t)C * sizeof *q2);                                                  \
                const int64_t n1 = (k + 1) * per < N ? (k + 1) * per : N;                               \
                for (int64_t n = k * per; n < n1; n++) {                                                \
                    const T *xn = x + n * C * S, *gn = g ? g + n * C * S : NULL;                        \
                    if (S == 1) {                                                                       \
                        if (mode == 0) {                                                                \
                            _Pragma("omp simd")                                                         \
                            for (int64_t ch = 0; ch < C; ch++) {                                        \
                                double d = (double)xn[ch] - A[ch];                                      \
                                q1[ch] += d;                                                            \
                                q2[ch] += d * d;                                                        \
                            }                                                                           \
                        } else {                                                                        \
                            _Pragma("omp simd")                                                         \
                            for (int64_t ch = 0; ch < C; ch++) {                                        \
                                q1[ch] += gn[ch];                                                       \
                                q2[ch] += (double)gn[ch] * (((double)xn[ch] - A[ch]) * B[ch]);          \
                            }                                                                           \
                        }                                                                               \
                        continue;                                                                       \
                    }                                                                                   \
                    for (int64_t ch = 0; ch < C; ch++) {                                                \
                        const T *xr = xn + ch * S;                                                      \
                        double a = 0, b = 0;                                                            \
                        if (mode == 0) {                                                                \
                            const double K = A[ch];                                                     \
                            _Pragma("omp simd reduction(+:a, b)")                                       \
                            for (int64_t s = 0; s < S; s++) { double d = (double)xr[s] - K; a += d; b += d * d; } \
                        } else {                                                                        \
                            const T *gr = gn + ch * S;                                                  \
                            const T m = (T)A[ch], r = (T)B[ch];                                         \
                            _Pragma("omp simd reduction(+:a, b)")                                       \
                            for (int64_t s = 0; s < S; s++) { a += gr[s]; b += (double)(gr[s] * ((xr[s] - m) * r)); } \
                        }                                                                               \
                        q1[ch] += a;                                                                    \
                        q2[ch] += b;                                                                    \
                    }                                                                                   \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
        for (int64_t ch = 0; ch < C; ch++) {                                                            \
            double a = 0, b = 0;                                                                        \
            for (int64_t k = 0; k < P; k++) { a += p1[k * C + ch]; b += p2[k * C + ch]; }               \
            s1[ch] = a;                                                                                 \
            s2[ch] = b;                                                                                 \
        }                                                                                               \
    }                                                                                                   \
    /* y = (x - mu[c]) * sc[c] + sh[c]; per-channel coefficients in T (cf: 3*C) */                      \
    static void bn_affine_##T(const T *x, T *y, const double *mu, const double *sc, const double *sh, int64_t N, \
                              int64_t C, int64_t S, T *cf) {                                            \
        const int par = N * C * S > NORM_PAR_MIN;                                                       \
        T *cm = cf, *ca = cf + C, *cb = cf + 2 * C;                                                     \
        for (int64_t ch = 0; ch < C; ch++) { cm[ch] = (T)mu[ch]; ca[ch] = (T)sc[ch]; cb[ch] = (T)sh[ch]; } \
        if (S == 1) {                                                                                   \
            _Pragma("omp parallel for if (par) schedule(static)")                                       \
            for (int64_t n = 0; n < N; n++) {                                                           \
                const T *xr = x + n * C;                                                                \
                T *yr = y + n * C;                                                                      \
                _Pragma("omp simd")                                                                     \
                for (int64_t ch = 0; ch < C; ch++) yr[ch] = (xr[ch] - cm[ch]) * ca[ch] + cb[ch];        \
            }                                                                                           \
            return;                                                                                     \
        }                                                                                               \
        _Pragma("omp parallel for if (par) schedule(static)")                                           \
        for (int64_t t = 0; t < N * C; t++) {                                                           \
            const int64_t ch = t % C;                                                                   \
            const T m = cm[ch], a = ca[ch], b = cb[ch];                                                 \
            const T *xr = x + t * S;                                                                    \
            T *yr = y + t * S;                                                                          \
            _Pragma("omp simd")                                                                         \
            for (int64_t s = 0; s < S; s++) yr[s] = (xr[s] - m) * a + b;                                \
        }                                                                                               \
    }                                                                                                   \
    /* train: dx += k[c] * (g - sg[c]/M - xhat * sgx[c]/M), k = gamma*rstd; eval: dx += k[c] * g.       \
     * Written as dx += u[c]*g + v[c]*(x - m[c]) + w[c] with u = k, v = -k*rstd*sgx/M, w = -k*sg/M. */   \
    static void bn_dx_##T(const bn_saved *sv, const T *g, T *dx, const double *kc, const double *sg,    \
                          const double *sgx, T *cf) {                                                   \
        const int64_t N = sv->N, C = sv->C, S = sv->S;                                                  \
        const T *x = sv->X.data;                                                                        \
        const double M = (double)(N * S);                                                               \
        const int par = N * C * S > NORM_PAR_MIN;                                                       \
        T *cu = cf, *cv = cf + C, *cw = cf + 2 * C, *cm = cf + 3 * C;                                   \
        for (int64_t ch = 0; ch < C; ch++) {                                                            \
            cu[ch] = (T)kc[ch];                                                                         \
            cv[ch] = sv->train ? (T)(-kc[ch] * sv->rstd[ch] * sgx[ch] / M) : (T)0;                      \
            cw[ch] = sv->train ? (T)(-kc[ch] * sg[ch] / M) : (T)0;                                      \
            cm[ch] = (T)sv->mean[ch];                                                                   \
        }                                                                                               \
        if (S == 1) {                                                                                   \
            _Pragma("omp parallel for if (par) schedule(static)")                                       \
            for (int64_t n = 0; n < N; n++) {                                                           \
                const T *xr = x + n * C, *gr = g + n * C;                                               \
                T *dr = dx + n * C;                                                                     \
                _Pragma("omp simd")                                                                     \
                for (int64_t ch = 0; ch < C; ch++) dr[ch] += cu[ch] * gr[ch] + cv[ch] * (xr[ch] - cm[ch]) + cw[ch]; \
            }                                                                                           \
            return;                                                                                     \
        }                                                                                               \
        _Pragma("omp parallel for if (par) schedule(static)")                                           \
        for (int64_t t = 0; t < N * C; t++) {                                                           \
            const int64_t ch = t % C;                                                                   \
            const T *xr = x + t * S, *gr = g + t * S;                                                   \
            T *dr = dx + t * S;                                                                         \
            const T u = cu[ch], v = cv[ch], w = cw[ch], m = cm[ch];                                     \
            _Pragma("omp simd")                                                                         \
            for (int64_t s = 0; s < S; s++) dr[s] += u * gr[s] + v * (xr[s] - m) + w;                   \
        }                                                                                               \
    }
DEF_BNSUM(float)
DEF_BNSUM(double)

static void bn_backward(nl_ctx *c, nl_node *n) {
    const bn_saved *sv = n->saved;
    nl_tensor *gx = nl_grad(c, n->in[0]), *gg = nl_grad(c, n->in[1]), *gb = nl_grad(c, n->in[2]);
    if (!gx && !gg && !gb) return;
    const nl_tensor *g = nl_node_grad_out(n);
    const int64_t N = sv->N, C = sv->C, S = sv->S;
    const int f32 = g->dtype == NL_F32;
    double *sg = nl_scratch(c, (size_t)C * sizeof *sg), *sgx = nl_scratch(c, (size_t)C * sizeof *sgx);
    double *kc = nl_scratch(c, (size_t)C * sizeof *kc);
    double *part = nl_scratch(c, (size_t)(2 * bn_parts(N, S) * C) * sizeof *part);
    void *cf = nl_scratch(c, (size_t)(4 * C) * sizeof(double));
    if (!sg || !sgx || !kc || !part || !cf) return;
    if (sv->train || gg || gb) {
        if (f32) bn_sums_float(1, sv->X.data, g->data, sv->mean, sv->rstd, N, C, S, part, sg, sgx);
        else bn_sums_double(1, sv->X.data, g->data, sv->mean, sv->rstd, N, C, S, part, sg, sgx);
    }
    if (gx) {
        for (int64_t ch = 0; ch < C; ch++) {
            double gm = !sv->gamma ? 1.0 : f32 ? ((const float *)sv->gamma)[ch] : ((const double *)sv->gamma)[ch];
            kc[ch] = gm * sv->rstd[ch];
        }
        if (f32) bn_dx_float(sv, g->data, gx->data, kc, sg, sgx, cf);
        else bn_dx_double(sv, g->data, gx->data, kc, sg, sgx, cf);
    }
    for (int64_t ch = 0; ch < C; ch++) {
        if (gg) nl_tensor_set(gg, ch, nl_tensor_get(gg, ch) + sgx[ch]);
        if (gb) nl_tensor_set(gb, ch, nl_tensor_get(gb, ch) + sg[ch]);
    }
}

nl_var *nl_batchnorm(nl_ctx *c, nl_var *x, nl_var *gamma, nl_var *beta, nl_var *running_mean, nl_var *running_var,
                     double momentum, double eps, int train) {
    const char *name = "batchnorm";
    NL_REQUIRE(x);
    if (x->val.ndim < 2) return nl_op_fail(NL_ESHAPE, name, "input must be [N, C] or [N, C, H, W]", x, NULL);
    const nl_dtype dt = x->val.dtype;
    const int64_t N = x->val.shape[0], C = x->val.shape[1], S = nl_tensor_numel(&x->val) / (N * C != 0 ? N * C : 1);
    if (gamma && !same_vec(gamma, C, dt)) return nl_op_fail(gamma->val.dtype != dt ? NL_EDTYPE : NL_ESHAPE, name, "gamma must be [C] (axis 1 of x) with x's dtype", x, gamma);
    if (beta && !same_vec(beta, C, dt)) return nl_op_fail(beta->val.dtype != dt ? NL_EDTYPE : NL_ESHAPE, name, "beta must be [C] (axis 1 of x) with x's dtype", x, beta);
    if (!running_mean != !running_var) return nl_op_fail(NL_EINVAL, name, "give both running_mean and running_var or neither", x, NULL);
    if (running_mean && (running_mean->val.ndim != 1 || running_mean->val.shape[0] != C))
        return nl_op_fail(NL_ESHAPE, name, "running_mean must be [C] (axis 1 of x)", x, running_mean);
    if (running_var && (running_var->val.ndim != 1 || running_var->val.shape[0] != C))
        return nl_op_fail(NL_ESHAPE, name, "running_var must be [C] (axis 1 of x)", x, running_var);
    if (!train && !running_mean) return nl_op_fail(NL_EINVAL, name, "eval mode needs running_mean and running_var", x, NULL);
    if (train && N * S <= 1) return nl_op_fail(NL_ESHAPE, name, "training needs more than one value per channel", x, NULL);
    if (!(eps >= 0)) { nl_set_error(NL_EINVAL, "batchnorm: eps %g must be >= 0", eps); return NULL; }
    if (train && running_mean && !(momentum >= 0 && momentum <= 1)) {
        nl_set_error(NL_EINVAL, "batchnorm: momentum %g outside [0, 1]", momentum);
        return NULL;
    }
    if (C == 0) return nl_op_fail(NL_ESHAPE, name, "no channels", x, NULL);
    nl_tensor X = nl_contig(c, &x->val), G = {0}, B = {0};
    if (!X.data) return NULL;
    if (gamma) { G = nl_contig(c, &gamma->val); if (!G.data) return NULL; }
    if (beta) { B = nl_contig(c, &beta->val); if (!B.data) return NULL; }
    nl_var *out = nl_op_out(c, dt, x->val.ndim, x->val.shape);
    if (!out) return NULL;
    double *mean = nl_scratch(c, (size_t)C * sizeof *mean), *rstd = nl_scratch(c, (size_t)C * sizeof *rstd);
    double *sc = nl_scratch(c, (size_t)C * sizeof *sc), *sh = nl_scratch(c, (size_t)C * sizeof *sh);
    void *cf = nl_scratch(c, (size_t)(3 * C) * sizeof(double));
    if (!mean || !rstd || !sc || !sh || !cf) return NULL;
    if (train) {
        double *part = nl_scratch(c, (size_t)(2 * bn_parts(N, S) * C) * sizeof *part);
        double *s1 = nl_scratch(c, (size_t)C * sizeof *s1), *s2 = nl_scratch(c, (size_t)C * sizeof *s2);
        if (!part || !s1 || !s2) return NULL;
        for (int64_t ch = 0; ch < C; ch++) mean[ch] = nl_tensor_get(&X, ch * S); /* shift: x[0, ch, 0] */
        if (dt == NL_F32) bn_sums_float(0, X.data, NULL, mean, NULL, N, C, S, part, s1, s2);
        else bn_sums_double(0, X.data, NULL, mean, NULL, N, C, S, part, s1, s2);
        const double M = (double)(N * S);
        for (int64_t ch = 0; ch < C; ch++) {
            double var = (s2[ch] - s1[ch] * s1[ch] / M) / M;
            if (var < 0) var = 0;
            mean[ch] += s1[ch] / M;
            rstd[ch] = 1.0 / sqrt(var + eps);
            if (running_mean) { /* PyTorch: unbiased variance in the running estimate; done even without grad */
                nl_tensor_set(&running_mean->val, ch, (1 - momentum) * nl_tensor_get(&running_mean->val, ch) + momentum * mean[ch]);
                nl_tensor_set(&running_var->val, ch, (1 - momentum) * nl_tensor_get(&running_var->val, ch) + momentum * var * M / (M - 1));
            }
        }
    } else {
        for (int64_t ch = 0; ch < C; ch++) {
            mean[ch] = nl_tensor_get(&running_mean->val, ch);
            rstd[ch] = 1.0 / sqrt(nl_tensor_get(&running_var->val, ch) + eps);
        }
    }
    for (int64_t ch = 0; ch < C; ch++) {
        double gm = gamma ? nl_tensor_get(&G, ch) : 1.0, bt = beta ? nl_tensor_get(&B, ch) : 0.0;
        sc[ch] = gm * rstd[ch];
        sh[ch] = bt;
    }
    if (dt == NL_F32) bn_affine_float(X.data, out->val.data, mean, sc, sh, N, C, S, cf);
    else bn_affine_double(X.data, out->val.data, mean, sc, sh, N, C, S, cf);
    nl_var *in[3] = {x, gamma, beta};
    nl_node *n = nl_op_record(c, name, out, bn_backward, 3, in);
    if (n) {
        bn_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->X = X;
        s->gamma = G.data;
        s->mean = mean;
        s->rstd = rstd;
        s->N = N;
        s->C = C;
        s->S = S;
        s->train = train ? 1 : 0;
        n->saved = s;
    }
    return out;
}
