/* abc-parametrisations of Yang & Hu (2020, TP4, Section 3): presets, the feature-learning / kernel-regime
 * classifier, and the abc form of the engine's SP / NTK / muP rule (methods/mup/mup.h). */
#include "mup/mup.h"
#include <math.h>
#include <stdio.h>
#include <string.h>


/* ---------------- abc-parametrisations ---------------- */
#define ABC_EPS 1e-9
static int feq(double x, double y) { return fabs(x - y) <= ABC_EPS; }
static int fge(double x, double y) { return x >= y - ABC_EPS; }

static nl_status abc_check(const nl_mup_abc *p) {
    if (!p) return nl_set_error(NL_EINVAL, "abc: NULL");
    if (p->L < 1 || p->L > NL_MUP_ABC_MAX_HIDDEN) return nl_set_error(NL_EINVAL, "abc: L = %d hidden layers must be in [1, %d]", p->L, NL_MUP_ABC_MAX_HIDDEN);
    for (int l = 0; l <= p->L; l++)
        if (!isfinite(p->a[l]) || !isfinite(p->b[l])) return nl_set_error(NL_EINVAL, "abc: a/b of layer %d is not finite", l + 1);
    if (!isfinite(p->c)) return nl_set_error(NL_EINVAL, "abc: c is not finite");
    return NL_OK;
}

nl_status nl_mup_abc_preset(const char *name, int L, nl_mup_abc *out) {
    if (L < 1 || L > NL_MUP_ABC_MAX_HIDDEN) return nl_set_error(NL_EINVAL, "abc preset: L = %d must be in [1, %d]", L, NL_MUP_ABC_MAX_HIDDEN);
    nl_mup_abc p;
    memset(&p, 0, sizeof p);
    p.L = L;
    if (name && (!strcmp(name, "sp") || !strcmp(name, "sp-c0"))) {
        for (int l = 1; l <= L; l++) p.b[l] = 0.5;
        p.c = !strcmp(name, "sp") ? 1.0 : 0.0;
    } else if (name && !strcmp(name, "ntp")) {
        for (int l = 1; l <= L; l++) p.a[l] = 0.5;
    } else if (name && !strcmp(name, "mf")) {
        if (L != 1) return nl_set_error(NL_EINVAL, "abc preset mf is defined for L = 1 only (got %d)", L);
        p.a[1] = 1.0;
        p.c = -1.0;
    } else if (name && !strcmp(name, "mup")) {
        p.a[0] = -0.5;
        p.a[L] = 0.5;
        for (int l = 0; l <= L; l++) p.b[l] = 0.5;
    } else {
        return nl_set_error(NL_EINVAL, "unknown abc preset '%s' (sp, sp-c0, ntp, mf, mup)", name ? name : "(null)");
    }
    *out = p;
    return NL_OK;
}

nl_status nl_mup_abc_classify(const nl_mup_abc *p, nl_mup_abc_class *o) {
    nl_status s = abc_check(p);
    if (s) return s;
    memset(o, 0, sizeof *o);
    const int L = p->L;
    const double aL1 = p->a[L], bL1 = p->b[L], c = p->c;
    double m = INFINITY;
    for (int l = 1; l <= L; l++) {
        double v = 2 * p->a[l - 1] + (l == 1 ? 1.0 : 0.0);
        if (v < m) m = v;
    }
    o->r = fmin(aL1 + bL1, 2 * aL1 + c) + c - 1 + m;
    o->init_stable = feq(p->a[0] + p->b[0], 0.0) && fge(aL1 + bL1, 0.5);
    for (int l = 2; l <= L; l++) o->init_stable &= feq(p->a[l - 1] + p->b[l - 1], 0.5);
    o->features_stable = fge(o->r, 0.0);
    o->logits_stable = fge(2 * aL1 + c, 1.0) && fge(aL1 + bL1 + o->r, 1.0);
    o->stable = o->init_stable && o->features_stable && o->logits_stable;
    o->nontrivial = o->stable && (feq(aL1 + bL1 + o->r, 1.0) || feq(2 * aL1 + c, 1.0));
    o->feature_learning = o->stable && feq(o->r, 0.0);
    o->kernel_regime = o->stable && o->nontrivial && o->r > ABC_EPS;
    double r = fabs(o->r) < ABC_EPS ? 0.0 : o->r;
    if (!o->stable) {
        char why[128] = "";
        if (!o->init_stable) strcat(why, ", init not Theta(1)");
        if (!o->features_stable) strcat(why, ", features blow up (r < 0)");
        if (!o->logits_stable) strcat(why, ", logits blow up");
        snprintf(o->summary, sizeof o->summary, "unstable (r = %g%s)", r, why);
    } else {
        snprintf(o->summary, sizeof o->summary, "stable, %s, %s (r = %g)", o->nontrivial ? "nontrivial" : "trivial",
                 o->feature_learning ? "feature learning" : o->kernel_regime ? "kernel regime" : "no feature learning", r);
    }
    return NL_OK;
}

nl_status nl_mup_param_to_abc(const nl_parametrization *p, int L, nl_mup_abc *out) {
    nl_status s = nl_param_check(p);
    if (s) return s;
    if (p->optim != NL_OPT_SGD) return nl_set_error(NL_EINVAL, "abc: the classification (TP4) covers SGD only; this parametrisation uses an Adam rule");
    if (L < 1 || L > NL_MUP_ABC_MAX_HIDDEN) return nl_set_error(NL_EINVAL, "abc: L = %d must be in [1, %d]", L, NL_MUP_ABC_MAX_HIDDEN);
    nl_parametrization q = *p;
    q.zero_readout = 0;
    q.width_mult = 0;
    const double W = 4.0, lw = log(W);
    nl_mup_abc r;
    memset(&r, 0, sizeof r);
    r.L = L;
    for (int l = 1; l <= L + 1; l++) {
        nl_param_role role = l == 1 ? NL_ROLE_WEIGHT_IN : l == L + 1 ? NL_ROLE_WEIGHT_OUT : NL_ROLE_WEIGHT_HIDDEN;
        nl_param_rule r1, r4;
        if ((s = nl_param_rule_for(&q, role, role, 1.0, &r1)) || (s = nl_param_rule_for(&q, role, role, W, &r4))) return s;
        double a = -log(r4.fwd_mult / r1.fwd_mult) / lw;
        /* raw std = default std (fan_in^-1/2; fan_in = n for l >= 2, fixed for l = 1) x init_scale */
        double b = -log(r4.init_scale / r1.init_scale) / lw + (l >= 2 ? 0.5 : 0.0);
        double cl = -log(r4.lr_mult / r1.lr_mult) / lw;
        double t = cl / 2; /* bring c_l to 0: (a + t, b - t, c_l - 2t) */
        r.a[l - 1] = a + t + 0.0; /* + 0.0: no "-0" in printouts */
        r.b[l - 1] = b - t + 0.0;
    }
    r.c = 0;
    *out = r;
    return NL_OK;
}
