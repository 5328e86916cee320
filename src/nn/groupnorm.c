/* GroupNorm (Wu & He 2018) over x [N, C, ...] (any trailing spatial dims): the C channels are cut into G groups of
 * C/G channels; each (sample, group) is normalised over its C/G * S values (S = product of the trailing dims) with
 * the biased variance, then y = xhat * gamma[c] + beta[c]. Statistics in double, one pass over shifted data (the
 * first value of the group), as in norm.c. Exact backward per (n, g) group of M values:
 *   dxh = g * gamma;  dx = rstd * (dxh - mean(dxh) - xhat * mean(dxh * xhat));
 *   dgamma[c] += sum g * xhat;  dbeta[c] += sum g   (summed over n and the spatial positions, in n order).
 * f32 and f64. Forward saves mean and rstd per group (N*G doubles), xhat is recomputed in backward. */
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    int64_t N, C, G, S;   /* batch, channels, groups, spatial size */
    double *mean, *rstd;  /* (N*G) */
    nl_tensor x;          /* contiguous input */
} gn_saved;

#define GN_TPL(T, SFX)                                                                                               \
    static void gn_fwd_##SFX(const gn_saved *s, const T *x, const T *ga, const T *be, T *y, double eps) {          \
        const int64_t cg = s->C / s->G, M = cg * s->S;                                                             \
        for (int64_t ng = 0; ng < s->N * s->G; ng++) {                                                             \
            const int64_t n = ng / s->G, g = ng % s->G;                                                            \
            const T *xp = x + (n * s->C + g * cg) * s->S;                                                          \
            T *yp = y + (n * s->C + g * cg) * s->S;                                                                \
            const double K = (double)xp[0];                                                                        \
            double s1 = 0, s2 = 0;                                                                                 \
            for (int64_t i = 0; i < M; i++) {                                                                      \
                const double d = (double)xp[i] - K;                                                                \
                s1 += d;                                                                                           \
                s2 += d * d;                                                                                       \
            }                                                                                                      \
            const double mu = s1 / (double)M, var = s2 / (double)M - mu * mu;                                      \
            const double rstd = 1.0 / sqrt((var > 0 ? var : 0) + eps);                                             \
            s->mean[ng] = K + mu;                                                                                  \
            s->rstd[ng] = rstd;                                                                                    \
            for (int64_t cc = 0; cc < cg; cc++) {                                                                  \
                const int64_t ch = g * cg + cc;                                                                    \
                const T a = (T)(rstd * (ga ? (double)ga[ch] : 1.0));                                              \
                const T b = (T)((be ? (double)be[ch] : 0.0) - (K + mu) * rstd * (ga ? (double)ga[ch] : 1.0));     \
                const T *xr = xp + cc * s->S;                                                                      \
                T *yr = yp + cc * s->S;                                                                            \
                for (int64_t i = 0; i < s->S; i++) yr[i] = xr[i] * a + b;                                          \
            }                                                                                                      \
        }                                                                                                          \
    }                                                                                                              \
    static void gn_bwd_##SFX(const gn_saved *s, const T *x, const T *ga, const T *gy, T *gx, int store, T *gga, T *gbe) {     \
        const int64_t cg = s->C / s->G;                                                                            \
        const double M = (double)(cg * s->S);                                                                      \
        for (int64_t ng = 0; ng < s->N * s->G; ng++) {                                                             \
            const int64_t n = ng / s->G, g = ng % s->G;                                                            \
            const double mu = s->mean[ng], rstd = s->rstd[ng];                                                    \
            const int64_t off = (n * s->C + g * cg) * s->S;                                                        \
            double sd = 0, sdx = 0; /* sum dxh, sum dxh * xhat */                                                  \
            for (int64_t cc = 0; cc < cg; cc++) {                                                                  \
                const int64_t ch = g * cg + cc;                                                                    \
                const T *xr = x + off + cc * s->S, *gr = gy + off + cc * s->S;                                     \
                double a1 = 0, a2 = 0;                                                                             \
                for (int64_t i = 0; i < s->S; i++) {                                                               \
                    const double xh = ((double)xr[i] - mu) * rstd;                                                 \
                    a1 += (double)gr[i];                                                                           \
                    a2 += (double)gr[i] * xh;                                                                      \
                }                                                                                                  \
                if (gga) gga[ch] += (T)a2;                                                                         \
                if (gbe) gbe[ch] += (T)a1;                                                                         \
                const double gm = ga ? (double)ga[ch] : 1.0;                                                       \
                sd += a1 * gm;                                                                                     \
                sdx += a2 * gm;                                                                                    \
            }                                                                                                      \
            if (!gx) continue;                                                                                     \
            const double md = sd / M, mdx = sdx / M;                                                               \
            for (int64_t cc = 0; cc < cg; cc++) {                                                                  \
                const int64_t ch = g * cg + cc;                                                                    \
                const double gm = ga ? (double)ga[ch] : 1.0;                                                       \
                const T *xr = x + off + cc * s->S, *gr = gy + off + cc * s->S;                                     \
                T *dr = gx + off + cc * s->S;                                                                      \
                /* dx = rstd (g gm - md - xhat mdx) = A g + B x + Cc with xhat = (x - mu) rstd */                 \
                const T A = (T)(rstd * gm), B = (T)(-rstd * rstd * mdx), Cc = (T)(rstd * (-md + mu * rstd * mdx)); \
                if (store)                                                                                             \
                    for (int64_t i = 0; i < s->S; i++) dr[i] = A * gr[i] + B * xr[i] + Cc;                         \
                else                                                                                                   \
                    for (int64_t i = 0; i < s->S; i++) dr[i] += A * gr[i] + B * xr[i] + Cc;                        \
            }                                                                                                      \
        }                                                                                                          \
    }
GN_TPL(float, f32)
GN_TPL(double, f64)

static void gn_backward(nl_ctx *c, nl_node *n) {
    gn_saved *s = n->saved;
    const nl_tensor *gy = nl_node_grad_out(n);
    int fresh = 0; /* a fresh input gradient is stored, not added to zeros (nl_grad_w) */
    nl_tensor *gx = nl_grad_w(c, n->in[0], &fresh);
    nl_tensor *gga = n->in[1] ? nl_grad(c, n->in[1]) : NULL, *gbe = n->in[2] ? nl_grad(c, n->in[2]) : NULL;
    const void *ga = n->in[1] ? n->in[1]->val.data : NULL;
    if (gy->dtype == NL_F32)
        gn_bwd_f32(s, s->x.data, ga, gy->data, gx ? gx->data : NULL, fresh, gga ? gga->data : NULL, gbe ? gbe->data : NULL);
    else
        gn_bwd_f64(s, s->x.data, ga, gy->data, gx ? gx->data : NULL, fresh, gga ? gga->data : NULL, gbe ? gbe->data : NULL);
}

nl_var *nl_groupnorm(nl_ctx *c, nl_var *x, int groups, nl_var *gamma, nl_var *beta, double eps) {
    NL_REQUIRE(x);
    char what[160];
    if (x->val.ndim < 2) return nl_op_fail(NL_ESHAPE, "groupnorm", "x must be [N, C, ...]", x, NULL);
    const int64_t C = x->val.shape[1];
    if (groups < 1 || C % groups) {
        snprintf(what, sizeof what, "groups %d must be >= 1 and divide the %lld channels", groups, (long long)C);
        return nl_op_fail(NL_EINVAL, "groupnorm", what, x, NULL);
    }
    if (!(eps >= 0)) return nl_op_fail(NL_EINVAL, "groupnorm", "eps must be >= 0", x, NULL);
    nl_var *aff[2] = {gamma, beta};
    for (int k = 0; k < 2; k++)
        if (aff[k] && (aff[k]->val.dtype != x->val.dtype || aff[k]->val.ndim != 1 || aff[k]->val.shape[0] != C ||
                       !nl_tensor_is_contiguous(&aff[k]->val)))
            return nl_op_fail(aff[k]->val.dtype != x->val.dtype ? NL_EDTYPE : NL_ESHAPE, "groupnorm",
                              "gamma and beta must be contiguous [C] of x's dtype", x, aff[k]);
    gn_saved *s = nl_scratch(c, sizeof *s);
    if (!s) return NULL;
    s->N = x->val.shape[0], s->C = C, s->G = groups, s->S = 1;
    for (int d = 2; d < x->val.ndim; d++) s->S *= x->val.shape[d];
    s->x = nl_contig(c, &x->val);
    s->mean = nl_scratch(c, (size_t)(s->N * groups + 1) * sizeof(double));
    s->rstd = nl_scratch(c, (size_t)(s->N * groups + 1) * sizeof(double));
    nl_var *y = nl_op_out(c, x->val.dtype, x->val.ndim, x->val.shape);
    if (!s->x.data || !s->mean || !s->rstd || !y) return NULL;
    if (x->val.dtype == NL_F32)
        gn_fwd_f32(s, s->x.data, gamma ? gamma->val.data : NULL, beta ? beta->val.data : NULL, y->val.data, eps);
    else
        gn_fwd_f64(s, s->x.data, gamma ? gamma->val.data : NULL, beta ? beta->val.data : NULL, y->val.data, eps);
    nl_var *in[3] = {x, gamma, beta};
    nl_node *nd = nl_op_record(c, "groupnorm", y, gn_backward, 3, in);
    if (nd) nd->saved = s;
    return y;
}
