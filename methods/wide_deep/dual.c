/* Normalised dual activations and the infinite-width, depth-L NNGP/NTK recursion of one kernel entry, in plain
 * doubles (reference) and in scaled numbers m * 2^e (any depth). See include/wide_deep/wide_deep.h. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "wd_internal.h"



#define WD_VALID_NAMES "relu, erf, sine_<a> (0 < a <= 300), hermite_<k> (integer 1..64), 2d_opt, 3d_opt, 5d_opt, 9d_opt"

static double wd_ipow(double x, int k) {
    double r = 1.0;
    while (k > 0) {
        if (k & 1) r *= x;
        x *= x;
        k >>= 1;
    }
    return r;
}

nl_status nl_wide_deep_dual_parse(const char *name, nl_wide_deep_dual *d) {
    if (!name || !d) return nl_set_error(NL_EINVAL, "wide-deep: dual name is NULL");
    memset(d, 0, sizeof *d);
    static const struct {
        const char *n;
        nl_wide_deep_dual_kind k;
    } fixed[] = {{"relu", NL_WIDE_DEEP_RELU},     {"erf", NL_WIDE_DEEP_ERF},       {"2d_opt", NL_WIDE_DEEP_OPT2D},
                 {"3d_opt", NL_WIDE_DEEP_OPT3D}, {"5d_opt", NL_WIDE_DEEP_OPT5D}, {"9d_opt", NL_WIDE_DEEP_OPT9D}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(name, fixed[i].n)) {
            d->kind = fixed[i].k;
            snprintf(d->name, sizeof d->name, "%s", fixed[i].n);
            return NL_OK;
        }
    const char *arg = NULL;
    if (!strncmp(name, "sine_", 5)) arg = name + 5, d->kind = NL_WIDE_DEEP_SINE;
    else if (!strncmp(name, "hermite_", 8)) arg = name + 8, d->kind = NL_WIDE_DEEP_HERMITE;
    if (arg && *arg) {
        char *end;
        errno = 0;
        double v = strtod(arg, &end);
        if (!*end && !errno && isfinite(v)) {
            if (d->kind == NL_WIDE_DEEP_SINE && v > 0 && v <= 300) {
                d->a = v;
                snprintf(d->name, sizeof d->name, "sine_%s", arg);
                return NL_OK;
            }
            if (d->kind == NL_WIDE_DEEP_HERMITE && v == floor(v) && v >= 1 && v <= 64) {
                d->a = v;
                snprintf(d->name, sizeof d->name, "hermite_%d", (int)v);
                return NL_OK;
            }
        }
    }
    return nl_set_error(NL_EINVAL, "wide-deep: unknown dual activation '%s' (valid: " WD_VALID_NAMES ")", name);
}

double nl_wide_deep_phi(const nl_wide_deep_dual *d, double x) {
    switch (d->kind) {
    case NL_WIDE_DEEP_RELU: return (x * (M_PI - acos(x)) + sqrt(fmax(0.0, 1.0 - x * x))) / M_PI;
    case NL_WIDE_DEEP_ERF: return asin(2.0 * x / 3.0) / asin(2.0 / 3.0);
    case NL_WIDE_DEEP_SINE: return sinh(d->a * x) / sinh(d->a);
    case NL_WIDE_DEEP_HERMITE: return wd_ipow(x, (int)d->a);
    case NL_WIDE_DEEP_OPT2D: return 0.5 * wd_ipow(x, 7) + 0.5 * x;
    case NL_WIDE_DEEP_OPT3D: return 0.5 * x * x * x + 0.5 * x;
    case NL_WIDE_DEEP_OPT5D: return 0.25 * x * x * x + 0.5 * x * x + 0.25 * x;
    case NL_WIDE_DEEP_OPT9D: return x * x * x / 16.0 + 0.875 * x * x + x / 16.0;
    default: return NAN;
    }
}

double nl_wide_deep_dphi(const nl_wide_deep_dual *d, double x) {
    switch (d->kind) {
    case NL_WIDE_DEEP_RELU: return (M_PI - acos(x)) / M_PI;
    case NL_WIDE_DEEP_ERF: return (2.0 / 3.0) / sqrt(1.0 - 4.0 * x * x / 9.0) / asin(2.0 / 3.0);
    case NL_WIDE_DEEP_SINE: return d->a * cosh(d->a * x) / sinh(d->a);
    case NL_WIDE_DEEP_HERMITE: return d->a * wd_ipow(x, (int)d->a - 1);
    case NL_WIDE_DEEP_OPT2D: return 3.5 * wd_ipow(x, 6) + 0.5;
    case NL_WIDE_DEEP_OPT3D: return 1.5 * x * x + 0.5;
    case NL_WIDE_DEEP_OPT5D: return 0.75 * x * x + x + 0.25;
    case NL_WIDE_DEEP_OPT9D: return 3.0 * x * x / 16.0 + 1.75 * x + 1.0 / 16.0;
    default: return NAN;
    }
}

nl_wide_deep_class nl_wide_deep_dual_class(const nl_wide_deep_dual *d, double *r) {
    double a0 = nl_wide_deep_phi(d, 0.0), c0 = nl_wide_deep_dphi(d, 0.0), c1 = nl_wide_deep_dphi(d, 1.0);
    if (r) *r = NAN;
    if (a0 > 0 && c1 <= 1.0) return NL_WIDE_DEEP_CLASS_MAJORITY;
    if (a0 == 0 && c0 == 0 && c1 > 1.0) return NL_WIDE_DEEP_CLASS_1NN;
    if (a0 == 0 && c0 > 0 && c0 < 1.0 && c1 > 1.0) {
        if (r) *r = log(1.0 / c0) / log(c1);
        return NL_WIDE_DEEP_CLASS_SINGULAR;
    }
    return NL_WIDE_DEEP_CLASS_OTHER;
}

const char *nl_wide_deep_class_name(nl_wide_deep_class c) {
    switch (c) {
    case NL_WIDE_DEEP_CLASS_MAJORITY: return "majority-vote";
    case NL_WIDE_DEEP_CLASS_1NN: return "1-nn";
    case NL_WIDE_DEEP_CLASS_SINGULAR: return "singular-kernel";
    default: return "other";
    }
}

double nl_wide_deep_num_value(nl_wide_deep_num v) { return wd_scaled(v.m, v.e, 0.0); }
double nl_wide_deep_num_log2(nl_wide_deep_num v) { return v.m == 0 ? -INFINITY : v.e + log2(fabs(v.m)); }

nl_status nl_wide_deep_check_depth(const nl_wide_deep_dual *d, int64_t depth) {
    if (depth < 0) return nl_set_error(NL_EINVAL, "wide-deep: depth %lld < 0", (long long)depth);
    if (d->kind == NL_WIDE_DEEP_HERMITE && d->a > 1 && (double)depth * log2(d->a) > 1000.0)
        return nl_set_error(NL_EINVAL,
                            "wide-deep: %s at depth %lld: the iterate xi^(k^L) has log2-exponent k^L log2(xi) beyond the "
                            "double range (need depth * log2(k) <= 1000, i.e. depth <= %lld); the classifier is 1-NN long before",
                            d->name, (long long)depth, (long long)floor(1000.0 / log2(d->a)));
    return NL_OK;
}

void nl_wide_deep_entry_direct(const nl_wide_deep_dual *d, double xi0, int64_t depth, double *nngp, double *ntk) {
    double x = fmin(1.0, fmax(-1.0, xi0)), k = x;
    for (int64_t l = 0; l < depth; l++) {
        double p = fmin(1.0, fmax(-1.0, nl_wide_deep_phi(d, x)));
        k = p + k * nl_wide_deep_dphi(d, x);
        x = p;
    }
    if (nngp) *nngp = x;
    if (ntk) *ntk = k;
}

/* ---- the scaled recursion ---- */
static inline void wd_renorm(double *m, double *e) {
    double a = fabs(*m);
    if (a != 0 && (a < WD_TINY || a > WD_HUGE)) {
        int ex;
        *m = frexp(*m, &ex);
        *e += ex;
    }
}

/* K <- (p * 2^pe) + K * (dm * 2^de) */
static inline void wd_ntk_update(wd_state *q, double p, double pe, double dm, double de) {
    double bm = q->km * dm, be = q->ke + de, rm, re;
    if (pe == be) rm = p + bm, re = be;
    else if (bm == 0) rm = p, re = pe;
    else if (p == 0) rm = bm, re = be;
    else if (pe > be) rm = p + wd_scaled(bm, be, pe), re = pe;
    else rm = bm + wd_scaled(p, pe, be), re = be;
    wd_renorm(&rm, &re);
    q->km = rm;
    q->ke = re;
}

static inline double wd_clamp1(double p) { return p > 1.0 ? 1.0 : (p < -1.0 ? -1.0 : p); }

/* Duals with phi(0) = 0 and phi'(0) = c0 > 0: below 2^-600 the iterate is c0 * xi to double precision. */
#define WD_ADVANCE_A0ZERO(NAME, PHI, DPHI)                                                          \
    static void advance_##NAME(const nl_wide_deep_dual *d, wd_state *s, int64_t cnt, int64_t steps) {     \
        const double c0 = nl_wide_deep_dphi(d, 0.0);                                                       \
        const double a = d->a, inv_sinh_a = d->kind == NL_WIDE_DEEP_SINE ? 1.0 / sinh(a) : 0.0;            \
        double dsine = 0;                                                                           \
        (void)a, (void)inv_sinh_a, (void)dsine;                                                     \
        for (int64_t t = 0; t < steps; t++)                                                         \
            for (int64_t i = 0; i < cnt; i++) {                                                     \
                wd_state *q = &s[i];                                                                \
                if (q->xe == 0) {                                                                   \
                    const double x = q->xm;                                                         \
                    double p = wd_clamp1(PHI), dp = DPHI;                                           \
                    wd_ntk_update(q, p, 0.0, dp, 0.0);                                              \
                    q->xm = p;                                                                      \
                    if (p != 0 && fabs(p) < WD_TINY) wd_renorm(&q->xm, &q->xe);                     \
                } else {                                                                            \
                    double p = c0 * q->xm;                                                          \
                    wd_ntk_update(q, p, q->xe, c0, 0.0);                                            \
                    q->xm = p;                                                                      \
                    wd_renorm(&q->xm, &q->xe);                                                      \
                }                                                                                   \
            }                                                                                       \
    }

WD_ADVANCE_A0ZERO(erf, asin(2.0 * x / 3.0) / asin(2.0 / 3.0), (2.0 / 3.0) / sqrt(1.0 - 4.0 * x * x / 9.0) / asin(2.0 / 3.0))
/* sinh and cosh from one expm1 (accurate near 0): u = e^y - 1, sinh y = u (u + 2) / (2 (u + 1)),
 * cosh y = 1 + u^2 / (2 (u + 1)). */
static inline void wd_sinhcosh(double y, double *sh, double *ch) {
    double u = expm1(y), h = 0.5 / (u + 1.0);
    *sh = u * (u + 2.0) * h;
    *ch = 1.0 + u * u * h;
}
static inline double wd_sine_phi(double a, double inv_sinh_a, double x, double *dphi) {
    double sh, ch;
    wd_sinhcosh(a * x, &sh, &ch);
    *dphi = a * ch * inv_sinh_a;
    return sh * inv_sinh_a;
}
WD_ADVANCE_A0ZERO(sine, wd_sine_phi(a, inv_sinh_a, x, &dsine), dsine)
WD_ADVANCE_A0ZERO(opt2d, WD_OPT2D_PHI(x), WD_OPT2D_DPHI(x))
WD_ADVANCE_A0ZERO(opt3d, WD_OPT3D_PHI(x), WD_OPT3D_DPHI(x))
WD_ADVANCE_A0ZERO(opt5d, WD_OPT5D_PHI(x), WD_OPT5D_DPHI(x))
WD_ADVANCE_A0ZERO(opt9d, WD_OPT9D_PHI(x), WD_OPT9D_DPHI(x))

/* ReLU, carried as delta = 1 - xi (state xm; exact relative precision as xi -> 1, where 1 - xi ~ 1/L^2 and the
 * per-layer change of xi, (sin t - t cos t)/pi ~ t^3/(3 pi) with t = arccos xi, falls towards the rounding error
 * of xi itself: at L = 1e5 evaluating phi on xi directly loses ~0.4% of each increment, which biases K).
 *   t = arccos(1 - delta) = 2 asin(sqrt(delta / 2)),  g(t) = sin t - t cos t,
 *   1 - phi(xi) = delta - g(t) / pi,                   phi'(xi) = 1 - t / pi. */
static inline double wd_relu_g(double t) {
    if (t < 0.25) return wd_relu_gseries(t); /* sum_k (-1)^(k+1) 2k t^(2k+1) / (2k+1)!, error < 1e-17 relative */
    return sin(t) - t * cos(t);
}

static void advance_relu(const nl_wide_deep_dual *d, wd_state *s, int64_t cnt, int64_t steps) {
    (void)d;
    for (int64_t t = 0; t < steps; t++)
        for (int64_t i = 0; i < cnt; i++) {
            wd_state *q = &s[i];
            const double dl = q->xm, th = 2.0 * asin(sqrt(0.5 * dl));
            double dn = dl - wd_relu_g(th) / M_PI;
            if (dn < 0) dn = 0;
            wd_ntk_update(q, 1.0 - dn, 0.0, 1.0 - th / M_PI, 0.0);
            q->xm = dn;
        }
}

/* xi^k: exact in the log domain. xi = m 2^E with m in [0.5, 1): xi^k = m^k 2^(kE), k xi^(k-1) = k m^(k-1) 2^((k-1)E). */
static void advance_hermite(const nl_wide_deep_dual *d, wd_state *s, int64_t cnt, int64_t steps) {
    const int k = (int)d->a;
    for (int64_t t = 0; t < steps; t++)
        for (int64_t i = 0; i < cnt; i++) {
            wd_state *q = &s[i];
            if (q->xm == 0) { /* xi = 0 stays 0; K <- 0 + K * phi'(0) */
                wd_ntk_update(q, 0.0, 0.0, k == 1 ? 1.0 : 0.0, 0.0);
                continue;
            }
            int ex;
            double m = frexp(q->xm, &ex), E = q->xe + ex;
            double mk1 = wd_ipow(m, k - 1);
            double pm = mk1 * m, pe = (double)k * E;
            wd_ntk_update(q, pm, pe, (double)k * mk1, (double)(k - 1) * E);
            q->xm = pm;
            q->xe = pe;
            wd_renorm(&q->xm, &q->xe);
        }
}

void wd_advance_scalar(const nl_wide_deep_dual *d, wd_state *s, int64_t cnt, int64_t steps) {
    switch (d->kind) {
    case NL_WIDE_DEEP_RELU: advance_relu(d, s, cnt, steps); break;
    case NL_WIDE_DEEP_ERF: advance_erf(d, s, cnt, steps); break;
    case NL_WIDE_DEEP_SINE: advance_sine(d, s, cnt, steps); break;
    case NL_WIDE_DEEP_HERMITE: advance_hermite(d, s, cnt, steps); break;
    case NL_WIDE_DEEP_OPT2D: advance_opt2d(d, s, cnt, steps); break;
    case NL_WIDE_DEEP_OPT3D: advance_opt3d(d, s, cnt, steps); break;
    case NL_WIDE_DEEP_OPT5D: advance_opt5d(d, s, cnt, steps); break;
    case NL_WIDE_DEEP_OPT9D: advance_opt9d(d, s, cnt, steps); break;
    default: break;
    }
}

/* Chunks of WD_CHUNK entries (8 KB of state) go through all the steps while they sit in L1: the vectorised fast
 * path (advance.c) as far as it goes, then this scalar code for the layers left. */
void wd_advance(const nl_wide_deep_dual *d, wd_state *s, int64_t cnt, int64_t steps) {
    if (steps <= 0 || cnt <= 0) return;
    for (int64_t c0 = 0; c0 < cnt; c0 += WD_CHUNK) {
        const int64_t len = cnt - c0 < WD_CHUNK ? cnt - c0 : WD_CHUNK;
        const int64_t done = wd_advance_fast(d, s + c0, len, steps);
        if (done < steps) wd_advance_scalar(d, s + c0, len, steps - done);
    }
}

void nl_wide_deep_entry_scaled(const nl_wide_deep_dual *d, double xi0, int64_t depth, nl_wide_deep_num *nngp, nl_wide_deep_num *ntk) {
    wd_state s;
    wd_state_init(d, &s, xi0);
    wd_advance(d, &s, 1, depth);
    if (nngp) wd_nngp(d, &s, &nngp->m, &nngp->e);
    if (ntk) ntk->m = s.km, ntk->e = s.ke;
}
