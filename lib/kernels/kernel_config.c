/* Kernel configuration (defaults, checks, activation names) and the plan: per-layer coefficients and the
 * activation resolved once per call. */
#include "kernels/kernels_internal.h"
#include <stdlib.h>
#include <string.h>

/* ======================================================================================================
 * Configuration
 * ====================================================================================================== */
static const char *const g_act_names[NL_KACT_COUNT] = {"relu", "leaky_relu", "abs", "identity", "erf",
                                                        "tanh", "gelu", "sin", "user"};
_Static_assert(sizeof(g_act_names) / sizeof(g_act_names[0]) == NL_KACT_COUNT, "activation names out of sync");

const char *nl_kernel_act_name(nl_kernel_act act) {
    return (act >= 0 && act < NL_KACT_COUNT) ? g_act_names[act] : "?";
}

void nl_kernel_cfg_default(nl_kernel_cfg *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->depth = 1;
    cfg->act = NL_KACT_RELU;
    cfg->erf_a = 1.0;
    cfg->erf_b = 1.0;
    cfg->erf_c = 0.0;
    cfg->sw = 1.0;
    cfg->sb = 0.0;
    cfg->sw_out = -1.0;
    cfg->sb_out = -1.0;
    cfg->param = NL_KPARAM_NTK;
    cfg->quad_deg = 25;
}

#define KMAXDEPTH 100000

nl_status nl_kernel_cfg_check(const nl_kernel_cfg *cfg) {
    if (!cfg) return nl_set_error(NL_EINVAL, "kernel: cfg is NULL");
    if (cfg->depth < 0 || cfg->depth > KMAXDEPTH)
        return nl_set_error(NL_EINVAL, "kernel: depth %d outside 0..%d", cfg->depth, KMAXDEPTH);
    if (cfg->act < 0 || cfg->act >= NL_KACT_COUNT)
        return nl_set_error(NL_EINVAL, "kernel: unknown activation id %d", (int)cfg->act);
    if (cfg->act == NL_KACT_USER && !cfg->user.f)
        return nl_set_error(NL_EINVAL, "kernel: activation 'user' needs cfg.user.f");
    if (!isfinite(cfg->act_param)) return nl_set_error(NL_EINVAL, "kernel: act_param is not finite");
    if (!isfinite(cfg->erf_a) || !isfinite(cfg->erf_b) || !isfinite(cfg->erf_c))
        return nl_set_error(NL_EINVAL, "kernel: erf_a/erf_b/erf_c must be finite");
    if (!(cfg->sw >= 0) || !isfinite(cfg->sw)) return nl_set_error(NL_EINVAL, "kernel: sw = %g must be finite and >= 0", cfg->sw);
    if (!(cfg->sb >= 0) || !isfinite(cfg->sb)) return nl_set_error(NL_EINVAL, "kernel: sb = %g must be finite and >= 0", cfg->sb);
    if (!isfinite(cfg->sw_out) || !isfinite(cfg->sb_out))
        return nl_set_error(NL_EINVAL, "kernel: sw_out/sb_out must be finite (negative = same as sw/sb)");
    if (cfg->param != NL_KPARAM_NTK && cfg->param != NL_KPARAM_SP)
        return nl_set_error(NL_EINVAL, "kernel: unknown parametrisation %d", (int)cfg->param);
    if (cfg->param == NL_KPARAM_SP && cfg->depth > 0 && cfg->sp_width < 1)
        return nl_set_error(NL_EINVAL, "kernel: the standard parametrisation needs sp_width >= 1 (the finite hidden "
                                       "width; the SP NTK grows with it)");
    if (cfg->quad_scheme != NL_KQUAD_POLAR && cfg->quad_scheme != NL_KQUAD_GRID)
        return nl_set_error(NL_EINVAL, "kernel: unknown quad_scheme %d", cfg->quad_scheme);
    if (cfg->quad_deg < 0 || cfg->quad_deg > 200)
        return nl_set_error(NL_EINVAL, "kernel: quad_deg %d outside 1..200 (0 = 25)", cfg->quad_deg);
    if (cfg->tile_rows < 0 || cfg->tile_cols < 0) return nl_set_error(NL_EINVAL, "kernel: negative tile size");
    return NL_OK;
}

/* strict number parsing: whole token, finite */
static int parse_num(const char *s, size_t len, double *out) {
    char buf[64];
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    double v = strtod(buf, &end);
    if (end == buf || *end != 0 || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

nl_status nl_kernel_act_parse(nl_kernel_cfg *cfg, const char *name) {
    if (!cfg || !name) return nl_set_error(NL_EINVAL, "kernel: activation name is NULL");
    const char *colon = strchr(name, ':');
    size_t blen = colon ? (size_t)(colon - name) : strlen(name);
    const char *arg = colon ? colon + 1 : NULL;
#define IS(lit) (blen == strlen(lit) && strncmp(name, lit, blen) == 0)
    if (IS("relu") || IS("abs") || IS("identity") || IS("linear") || IS("tanh") || IS("gelu") || IS("sin")) {
        if (arg) return nl_set_error(NL_EINVAL, "kernel: activation '%s' takes no parameter", name);
        cfg->act = IS("relu") ? NL_KACT_RELU : IS("abs") ? NL_KACT_ABS : (IS("identity") || IS("linear")) ? NL_KACT_IDENTITY
                 : IS("tanh") ? NL_KACT_TANH : IS("gelu") ? NL_KACT_GELU : NL_KACT_SIN;
        return NL_OK;
    }
    if (IS("leaky") || IS("leaky_relu") || IS("leakyrelu")) {
        double a;
        if (!arg || !parse_num(arg, strlen(arg), &a))
            return nl_set_error(NL_EINVAL, "kernel: activation '%s': expected leaky:SLOPE with a finite number", name);
        cfg->act = NL_KACT_LEAKY_RELU;
        cfg->act_param = a;
        return NL_OK;
    }
    if (IS("erf")) {
        double v[3] = {1.0, 1.0, 0.0};
        if (arg) {
            const char *p = arg;
            for (int k = 0; k < 3; k++) {
                const char *q = strchr(p, ',');
                size_t len = q ? (size_t)(q - p) : strlen(p);
                if (!parse_num(p, len, &v[k]) || (k < 2 && !q) || (k == 2 && q))
                    return nl_set_error(NL_EINVAL, "kernel: activation '%s': expected erf or erf:A,B,C (a*erf(b*x)+c)", name);
                p = q ? q + 1 : p + len;
            }
        }
        cfg->act = NL_KACT_ERF;
        cfg->erf_a = v[0]; cfg->erf_b = v[1]; cfg->erf_c = v[2];
        return NL_OK;
    }
#undef IS
    return nl_set_error(NL_EINVAL, "kernel: unknown activation '%s' (relu, leaky:A, abs, identity, erf, erf:A,B,C, tanh, "
                                   "gelu, sin)", name);
}

/* ======================================================================================================
 * Plan: the per-layer coefficients and the activation, resolved once per call
 * ====================================================================================================== */
/* Bytes of the arrays a plan needs (to allocate from an arena or with malloc). */
size_t nl_kplan_bytes(const nl_kernel_cfg *cfg) {
    int deg = cfg->quad_deg ? cfg->quad_deg : 25;
    return sizeof(double) * (size_t)(4 * (cfg->depth + 1) + 6 * deg + 4);
}

/* Fill p from cfg. hyp (2 or 4 variances) overrides cfg's sw/sb when non-NULL. in_dim: d (fan_in of the first
 * Dense layer under SP). mem: nl_kplan_bytes(cfg) bytes. */
nl_status nl_kplan_init(kplan *p, const nl_kernel_cfg *cfg, const double *hyp, int nhyp, int64_t in_dim, void *mem) {
    memset(p, 0, sizeof *p);
    int L = cfg->depth;
    p->L = L;
    p->sp = cfg->param == NL_KPARAM_SP;
    p->act = cfg->act;
    p->param = cfg->act_param;
    p->user = cfg->user;
    double *m = mem;
    p->sw2 = m; p->sb2 = m + (L + 1); p->A = m + 2 * (L + 1); p->B = m + 3 * (L + 1);
    double sw2, sb2, sw2o, sb2o;
    if (hyp) {
        sw2 = hyp[0]; sb2 = hyp[1];
        sw2o = nhyp >= 4 ? hyp[2] : sw2;
        sb2o = nhyp >= 4 ? hyp[3] : sb2;
    } else {
        sw2 = cfg->sw * cfg->sw; sb2 = cfg->sb * cfg->sb;
        sw2o = cfg->sw_out >= 0 ? cfg->sw_out * cfg->sw_out : sw2;
        sb2o = cfg->sb_out >= 0 ? cfg->sb_out * cfg->sb_out : sb2;
    }
    for (int l = 0; l <= L; l++) {
        p->sw2[l] = l < L ? sw2 : sw2o;
        p->sb2[l] = l < L ? sb2 : sb2o;
        if (p->sp) {
            p->A[l] = l == 0 ? (double)in_dim : (double)cfg->sp_width;
            p->B[l] = p->sb2[l] > 0 ? 1.0 : 0.0;
        } else {
            p->A[l] = p->sw2[l];
            p->B[l] = p->sb2[l];
        }
    }
    double a = 0, b = 1;
    p->kind = K_ABRELU;
    switch (cfg->act) {
    case NL_KACT_RELU: a = 0; b = 1; break;
    case NL_KACT_LEAKY_RELU: a = cfg->act_param; b = 1; break;
    case NL_KACT_ABS: a = -1; b = 1; break;
    case NL_KACT_IDENTITY: a = 1; b = 1; break;
    case NL_KACT_ERF: p->kind = K_ERF; break;
    default: p->kind = K_QUAD; break;
    }
    p->h = 0.5 * (a * a + b * b);
    p->beta = (a - b) * (a - b) / (2 * M_PI);
    p->ea = cfg->erf_a; p->eb = cfg->erf_b; p->ec = cfg->erf_c;
    p->ea2 = p->ea * p->ea; p->eb2 = p->eb * p->eb; p->ec2 = p->ec * p->ec;
    p->deg = cfg->quad_deg ? cfg->quad_deg : 25;
    p->scheme = cfg->quad_scheme;
    p->ng = (p->deg + 2) / 3 > 2 ? (p->deg + 2) / 3 : 2;
    if (cfg->force_quad) p->kind = K_QUAD;
    if (p->kind == K_QUAD) {
        double *t = m + 4 * (L + 1), *w = t + p->deg;
        nl_status s = nl_gauss_hermite(p->deg, t, w);
        if (s) return s;
        /* E_{z~N(0,1)}[g(z)] = sum w_k g(sqrt(2) t_k) / sqrt(pi): fold the constants */
        for (int k = 0; k < p->deg; k++) { t[k] *= sqrt(2.0); w[k] /= sqrt(M_PI); }
        p->qt = t;
        p->qw = w;
        if (p->scheme == NL_KQUAD_POLAR) {
            double *lr = w + p->deg, *lw = lr + p->deg, *gx = lw + p->deg, *gw = gx + p->ng;
            if ((s = nl_kquad_laguerre(p->deg, lr, lw))) return s;
            for (int k = 0; k < p->deg; k++) lr[k] = sqrt(2.0 * lr[k]);
            if ((s = nl_kquad_legendre(p->ng, gx, gw))) return s;
            p->lr = lr; p->lw = lw; p->gx = gx; p->gw = gw;
        }
    }
    return NL_OK;
}
