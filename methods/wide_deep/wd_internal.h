/* Internal pieces of the wide-and-deep method shared by its source files (not installed). */
#ifndef NL_WIDE_DEEP_INTERNAL_H
#define NL_WIDE_DEEP_INTERNAL_H
#include <math.h>
#include "wide_deep/wide_deep.h"

/* State of one kernel entry: xi = xm * 2^xe (NNGP), K = km * 2^ke (NTK). ReLU keeps delta = 1 - xi in xm
 * (xe = 0): read the NNGP through wd_nngp. */
typedef struct wd_state {
    double xm, xe, km, ke;
} wd_state;

/* Initialise a state from xi_0 (clamped into [-1, 1]). */
static inline void wd_state_init(const nl_wide_deep_dual *d, wd_state *s, double xi0) {
    if (!(xi0 <= 1.0)) xi0 = isnan(xi0) ? xi0 : 1.0;
    if (xi0 < -1.0) xi0 = -1.0;
    s->xm = d->kind == NL_WIDE_DEEP_RELU ? 1.0 - xi0 : xi0;
    s->xe = 0;
    s->km = xi0;
    s->ke = 0;
}

/* The NNGP value xi = *m * 2^*e of a state. */
static inline void wd_nngp(const nl_wide_deep_dual *d, const wd_state *s, double *m, double *e) {
    if (d->kind == NL_WIDE_DEEP_RELU) *m = 1.0 - s->xm, *e = 0;
    else *m = s->xm, *e = s->xe;
}

/* Advance cnt states by `steps` layers (loop over layers outside, entries inside). */
void wd_advance(const nl_wide_deep_dual *d, wd_state *s, int64_t cnt, int64_t steps);

/* floor(log2|m * 2^e|), or -INFINITY for 0. */
static inline double wd_ilog2(double m, double e) {
    if (m == 0) return -INFINITY;
    int ex;
    (void)frexp(m, &ex);
    return e + (double)(ex - 1);
}

/* m * 2^(e - s) without overflow of the int conversion; 0 when far below. */
static inline double wd_scaled(double m, double e, double s) {
    double d = e - s;
    if (m == 0 || d < -2200) return 0.0;
    if (d > 2200) return copysign(INFINITY, m);
    return ldexp(m, (int)d);
}

#endif
