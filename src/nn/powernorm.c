/* PowerNorm (Shen et al. 2020, "PowerNorm: Rethinking Batch Normalization in Transformers"): running quadratic
 * mean normalisation with an approximate backward. Formulas in include/lm_infinite/lm_infinite.h, derivations and the
 * differences from the paper / official code (sIncerass/powernorm, fairseq/modules/norms/mask_powernorm.py) in
 * methods/powernorm/README.md.
 *
 * Layout: x is viewed as [R, C] (R tokens, channels last). All statistics are accumulated in double over rows in
 * a fixed order (serial), so results do not depend on the thread count. Saved for backward: z [R, C] (output
 * dtype), the contiguous input (for the exact group-scaling backward), the group scales [R, groups] and the
 * per-channel 1/sqrt(s2_B + eps) (training) or 1/sqrt(psi + eps) (eval). */
#ifndef PN_TPL
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    nl_powernorm_state *pn;
    nl_tensor X;           /* contiguous input [R, C] view */
    void *z;               /* (R, C) normalised values, x's dtype */
    double *rg;            /* (R, groups) group scales 1/sqrt(mean_g x^2 + gs_eps), NULL without groups */
    double *inv;           /* (C) 1/sqrt(s2_B + eps) in training, 1/sqrt(psi + eps) in eval */
    const void *gamma;     /* (C) contiguous or NULL */
    uint8_t *pad;          /* (R) copy of the pad mask or NULL */
    int64_t R, C, M;       /* rows, channels, non-pad rows */
    int groups, train;
    double coef;           /* 1 - alpha_b (training), 0 (eval) */
} pn_saved;

#define PN_TPL 1
#define TY float
#define SFX f32
#include __FILE__
#undef TY
#undef SFX
#define TY double
#define SFX f64
#include __FILE__
#undef TY
#undef SFX
#undef PN_TPL

/* ---------------- state ---------------- */
typedef struct {
    nl_var psi, Gamma, iters;  /* vars over data[] */
    double data[];             /* psi (C), Gamma (C), iters (1) */
} pn_own;

nl_status nl_powernorm_init(nl_powernorm_state *pn, int64_t C, int groups, int64_t warmup, nl_params *ps, const char *prefix) {
    if (!pn) return nl_set_error(NL_EINVAL, "powernorm_init: pn is NULL");
    memset(pn, 0, sizeof *pn);
    if (C <= 0) return nl_set_error(NL_ESHAPE, "powernorm_init: C = %lld must be positive", (long long)C);
    if (groups < 0 || (groups > 0 && C % groups))
        return nl_set_error(NL_EINVAL, "powernorm_init: groups = %d must be 0 or divide C = %lld", groups, (long long)C);
    if (warmup < 0) return nl_set_error(NL_EINVAL, "powernorm_init: warmup %lld < 0", (long long)warmup);
    pn->C = C;
    pn->groups = groups;
    pn->warmup = warmup;
    pn->alpha_f = pn->alpha_b = 0.9;
    pn->eps = pn->gs_eps = 1e-5;
    int64_t sc[1] = {C}, s1[1] = {1};
    if (ps) {
        if (!prefix) prefix = "pn";
        char name[3][128];
        snprintf(name[0], sizeof name[0], "%s.running_phi", prefix);
        snprintf(name[1], sizeof name[1], "%s.ema_gz", prefix);
        snprintf(name[2], sizeof name[2], "%s.iters", prefix);
        nl_var *v[3];
        for (int i = 0; i < 3; i++) {
            v[i] = nl_params_add(ps, name[i], 1, i == 2 ? s1 : sc);
            if (!v[i]) return nl_last_status();
            v[i]->requires_grad = 0; /* buffer: no gradient, skipped by optimizers */
        }
        pn->psi = v[0];
        pn->Gamma = v[1];
        pn->iters = v[2];
    } else {
        pn_own *o = calloc(1, sizeof *o + (size_t)(2 * C + 1) * sizeof(double));
        if (!o) return nl_set_error(NL_ENOMEM, "powernorm_init: out of memory (C = %lld)", (long long)C);
        o->psi.val = nl_tensor_wrap(o->data, NL_F64, 1, sc);
        o->Gamma.val = nl_tensor_wrap(o->data + C, NL_F64, 1, sc);
        o->iters.val = nl_tensor_wrap(o->data + 2 * C, NL_F64, 1, s1);
        o->psi.name = "psi";
        o->Gamma.name = "Gamma";
        o->iters.name = "iters";
        pn->own = o;
        pn->psi = &o->psi;
        pn->Gamma = &o->Gamma;
        pn->iters = &o->iters;
    }
    nl_powernorm_reset(pn);
    return NL_OK;
}

void nl_powernorm_free(nl_powernorm_state *pn) {
    if (!pn) return;
    free(pn->own);
    memset(pn, 0, sizeof *pn);
}

void nl_powernorm_reset(nl_powernorm_state *pn) {
    if (!pn || !pn->psi || !pn->psi->val.data) return; /* no values: a layout-only store (nl_params_init_layout) */
    nl_tensor_fill(&pn->psi->val, 1.0); /* official init: running_phi = 1, ema_gz = 0, iters = 0 */
    nl_tensor_fill(&pn->Gamma->val, 0.0);
    if (pn->iters) nl_tensor_fill(&pn->iters->val, 0.0);
    pn->step = 0;
}

/* ---------------- op ---------------- */
static void pn_backward(nl_ctx *c, nl_node *n) {
    pn_saved *s = n->saved;
    const nl_tensor *gy = nl_node_grad_out(n);
    nl_tensor *gx = nl_grad(c, n->in[0]);
    nl_tensor *gg = n->in[1] ? nl_grad(c, n->in[1]) : NULL;
    nl_tensor *gb = n->in[2] ? nl_grad(c, n->in[2]) : NULL;
    const int64_t C = s->C;
    double *Gam = nl_scratch(c, (size_t)C * sizeof *Gam), *gz = nl_scratch(c, (size_t)C * sizeof *gz);
    double *dg = nl_scratch(c, (size_t)C * sizeof *dg), *db = nl_scratch(c, (size_t)C * sizeof *db);
    double *du = nl_scratch(c, (size_t)C * sizeof *du);
    if (!Gam || !gz || !dg || !db || !du) return;
    for (int64_t ch = 0; ch < C; ch++) Gam[ch] = s->train ? nl_tensor_get(&s->pn->Gamma->val, ch) : 0.0;
    if (s->X.dtype == NL_F32)
        pn_bwd_f32(s, gy->data, Gam, gx ? gx->data : NULL, gz, dg, db, du);
    else
        pn_bwd_f64(s, gy->data, Gam, gx ? gx->data : NULL, gz, dg, db, du);
    if (s->train) /* Gamma <- Gamma + mean over non-pad tokens of g_hat z */
        for (int64_t ch = 0; ch < C; ch++) nl_tensor_set(&s->pn->Gamma->val, ch, Gam[ch] + gz[ch] / (double)s->M);
    if (gg) for (int64_t ch = 0; ch < C; ch++) nl_tensor_set(gg, ch, nl_tensor_get(gg, ch) + dg[ch]);
    if (gb) for (int64_t ch = 0; ch < C; ch++) nl_tensor_set(gb, ch, nl_tensor_get(gb, ch) + db[ch]);
}

nl_var *nl_powernorm(nl_ctx *c, nl_powernorm_state *pn, nl_var *x, nl_var *gamma, nl_var *beta, const uint8_t *pad_mask,
                     int train) {
    const char *name = "powernorm";
    NL_REQUIRE(x);
    if (!pn || !pn->psi || !pn->Gamma) return nl_op_fail(NL_EINVAL, name, "state not initialised (nl_powernorm_init)", x, NULL);
    const int64_t C = pn->C;
    if (x->val.ndim < 1 || x->val.shape[x->val.ndim - 1] != C)
        return nl_op_fail(NL_ESHAPE, name, "last dimension of x must be the channel count C of the state", x, pn->psi);
    const nl_dtype dt = x->val.dtype;
    if (gamma && (gamma->val.ndim != 1 || gamma->val.shape[0] != C || gamma->val.dtype != dt))
        return nl_op_fail(gamma->val.dtype != dt ? NL_EDTYPE : NL_ESHAPE, name, "gamma must be [C] with x's dtype", x, gamma);
    if (beta && (beta->val.ndim != 1 || beta->val.shape[0] != C || beta->val.dtype != dt))
        return nl_op_fail(beta->val.dtype != dt ? NL_EDTYPE : NL_ESHAPE, name, "beta must be [C] with x's dtype", x, beta);
    if (pn->groups < 0 || (pn->groups > 0 && C % pn->groups))
        return nl_op_fail(NL_EINVAL, name, "groups must be 0 or divide C", x, NULL);
    if (!(pn->eps >= 0) || !(pn->gs_eps >= 0) || !(pn->alpha_f >= 0 && pn->alpha_f <= 1) || !(pn->alpha_b >= 0 && pn->alpha_b <= 1)) {
        nl_set_error(NL_EINVAL, "powernorm: need eps, gs_eps >= 0 and alpha_f, alpha_b in [0, 1] (got %g, %g, %g, %g)",
                     pn->eps, pn->gs_eps, pn->alpha_f, pn->alpha_b);
        return NULL;
    }
    const int64_t numel = nl_tensor_numel(&x->val), R = numel / C;
    nl_tensor X = nl_contig(c, &x->val), G = {0}, Bt = {0};
    if (!X.data) return NULL;
    if (gamma) { G = nl_contig(c, &gamma->val); if (!G.data) return NULL; }
    if (beta) { Bt = nl_contig(c, &beta->val); if (!Bt.data) return NULL; }
    int64_t M = R;
    uint8_t *pad = NULL;
    if (pad_mask) {
        pad = nl_scratch(c, (size_t)(R ? R : 1));
        if (!pad) return NULL;
        M = 0;
        for (int64_t r = 0; r < R; r++) {
            pad[r] = pad_mask[r] ? 1 : 0;
            M += !pad[r];
        }
    }
    if (train && M == 0) return nl_op_fail(NL_EINVAL, name, "training needs at least one non-pad token", x, NULL);
    nl_var *out = nl_op_out(c, dt, x->val.ndim, x->val.shape);
    if (!out) return NULL;
    const int groups = pn->groups;
    void *z = nl_scratch(c, (size_t)(numel ? numel : 1) * nl_dtype_size(dt));
    double *rg = groups ? nl_scratch(c, (size_t)(R > 0 ? R * groups : 1) * sizeof *rg) : NULL;
    double *s2 = nl_scratch(c, (size_t)C * sizeof *s2), *inv = nl_scratch(c, (size_t)C * sizeof *inv);
    double *den = nl_scratch(c, (size_t)C * sizeof *den);
    if (!z || (groups && !rg) || !s2 || !inv || !den) return NULL;
    /* (1)-(2): group scales and s2_B */
    if (dt == NL_F32) pn_stats_f32(X.data, pad, R, C, groups, pn->gs_eps, rg, s2);
    else pn_stats_f64(X.data, pad, R, C, groups, pn->gs_eps, rg, s2);
    int64_t t = 0;
    if (train) {
        int64_t prev = pn->iters ? (int64_t)llround(nl_tensor_get(&pn->iters->val, 0)) : pn->step;
        t = prev + 1;
        for (int64_t ch = 0; ch < C; ch++) {
            inv[ch] = 1.0 / sqrt(s2[ch] / (double)M + pn->eps);          /* batch statistic (backward uses it) */
            den[ch] = t <= pn->warmup ? inv[ch] : 1.0 / sqrt(nl_tensor_get(&pn->psi->val, ch) + pn->eps);
        }
    } else {
        for (int64_t ch = 0; ch < C; ch++) inv[ch] = den[ch] = 1.0 / sqrt(nl_tensor_get(&pn->psi->val, ch) + pn->eps);
    }
    /* (3)-(4) */
    if (dt == NL_F32) pn_apply_f32(X.data, rg, R, C, groups, den, gamma ? G.data : NULL, beta ? Bt.data : NULL, z, out->val.data);
    else pn_apply_f64(X.data, rg, R, C, groups, den, gamma ? G.data : NULL, beta ? Bt.data : NULL, z, out->val.data);
    /* (5): psi update (psi from before this step was used above) */
    if (train) {
        for (int64_t ch = 0; ch < C; ch++) {
            const double sb = s2[ch] / (double)M;
            double p = nl_tensor_get(&pn->psi->val, ch);
            if (t < pn->warmup) p = p * (double)(t - 1) / (double)t + sb / (double)t;
            p = pn->alpha_f * p + (1 - pn->alpha_f) * sb;
            nl_tensor_set(&pn->psi->val, ch, p);
        }
        pn->step = t;
        if (pn->iters) nl_tensor_set(&pn->iters->val, 0, (double)t);
    }
    nl_var *in[3] = {x, gamma, beta};
    nl_node *n = nl_op_record(c, name, out, pn_backward, 3, in);
    if (n) {
        pn_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->pn = pn;
        s->X = X;
        s->z = z;
        s->rg = rg;
        s->inv = inv;
        s->gamma = gamma ? G.data : NULL;
        s->pad = pad;
        s->R = R;
        s->C = C;
        s->M = M;
        s->groups = groups;
        s->train = train ? 1 : 0;
        s->coef = train ? 1 - pn->alpha_b : 0.0;
        n->saved = s;
        n->i[0] = t;
    }
    return out;
}

#else /* ---------------- typed kernels (TY = float | double) ---------------- */
#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)

/* group scales rg [R, groups] and s2[c] = sum over non-pad rows of u^2 (u = x * rg, or x without groups) */
static void CAT(pn_stats, SFX)(const TY *x, const uint8_t *pad, int64_t R, int64_t C, int groups, double gs_eps,
                               double *rg, double *s2) {
    for (int64_t ch = 0; ch < C; ch++) s2[ch] = 0;
    const int64_t Cg = groups ? C / groups : C;
    for (int64_t r = 0; r < R; r++) {
        const TY *xr = x + r * C;
        if (groups)
            for (int g = 0; g < groups; g++) {
                double m = 0;
                for (int64_t k = 0; k < Cg; k++) m += (double)xr[g * Cg + k] * xr[g * Cg + k];
                rg[r * groups + g] = 1.0 / sqrt(m / (double)Cg + gs_eps);
            }
        if (pad && pad[r]) continue;
        if (groups)
            for (int g = 0; g < groups; g++) {
                const double s = rg[r * groups + g];
                for (int64_t k = 0; k < Cg; k++) {
                    const double u = (double)xr[g * Cg + k] * s;
                    s2[g * Cg + k] += u * u;
                }
            }
        else
            for (int64_t k = 0; k < C; k++) s2[k] += (double)xr[k] * xr[k];
    }
}

/* z = u * den[c], y = gamma z + beta */
static void CAT(pn_apply, SFX)(const TY *x, const double *rg, int64_t R, int64_t C, int groups, const double *den,
                               const TY *gm, const TY *bt, TY *z, TY *y) {
    const int64_t Cg = groups ? C / groups : C;
    if (groups && gm && bt) { /* the common case, in branch-free loops that vectorise (same arithmetic) */
        for (int64_t r = 0; r < R; r++)
            for (int g = 0; g < groups; g++) {
                const double rr = rg[r * groups + g];
                const TY *xr = x + r * C + g * Cg;
                TY *zr = z + r * C + g * Cg, *yr = y + r * C + g * Cg;
                const TY *gmg = gm + g * Cg, *btg = bt + g * Cg;
                const double *dg = den + g * Cg;
                for (int64_t k = 0; k < Cg; k++) {
                    const double zz = ((double)xr[k] * rr) * dg[k];
                    zr[k] = (TY)zz;
                    yr[k] = (TY)((double)gmg[k] * zz + (double)btg[k]);
                }
            }
        return;
    }
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < C; k++) {
            const double u = groups ? (double)x[r * C + k] * rg[r * groups + k / Cg] : (double)x[r * C + k];
            const double zz = u * den[k];
            z[r * C + k] = (TY)zz;
            y[r * C + k] = (TY)((gm ? (double)gm[k] : 1.0) * zz + (bt ? (double)bt[k] : 0.0));
        }
}

/* g = gamma gy; gh = g - coef Gamma z; gz[c] = sum over non-pad rows of gh z; du = gh * inv[c];
 * dx += group-scaling backward of du; dg[c] = sum gy z; db[c] = sum gy (all rows). */
static void CAT(pn_bwd, SFX)(const pn_saved *s, const TY *gy, const double *Gam, TY *dx, double *gz, double *dg,
                             double *db, double *du) {
    const int64_t R = s->R, C = s->C;
    const int groups = s->groups;
    const int64_t Cg = groups ? C / groups : C;
    const TY *z = s->z, *x = s->X.data, *gm = s->gamma;
    for (int64_t k = 0; k < C; k++) gz[k] = dg[k] = db[k] = 0;
    for (int64_t r = 0; r < R; r++) {
        const int real = !(s->pad && s->pad[r]);
        for (int64_t k = 0; k < C; k++) {
            const double gyk = gy[r * C + k], zk = z[r * C + k];
            const double g = (gm ? (double)gm[k] : 1.0) * gyk;
            const double gh = g - s->coef * Gam[k] * zk;
            if (real) gz[k] += gh * zk;
            dg[k] += gyk * zk;
            db[k] += gyk;
            du[k] = gh * s->inv[k];
        }
        if (!dx) continue;
        if (groups)
            for (int g = 0; g < groups; g++) {
                const double rr = s->rg[r * groups + g];
                double m = 0;
                for (int64_t k = g * Cg; k < (g + 1) * Cg; k++) m += du[k] * (double)x[r * C + k] * rr;
                m /= (double)Cg;
                for (int64_t k = g * Cg; k < (g + 1) * Cg; k++)
                    dx[r * C + k] += (TY)(rr * (du[k] - (double)x[r * C + k] * rr * m));
            }
        else
            for (int64_t k = 0; k < C; k++) dx[r * C + k] += (TY)du[k];
    }
}
#undef CAT
#undef CAT2
#endif
