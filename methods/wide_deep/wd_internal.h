/* Internal pieces of the wide-and-deep method shared by its source files (not installed). */
#ifndef NL_WIDE_DEEP_INTERNAL_H
#define NL_WIDE_DEEP_INTERNAL_H
#include <math.h>
#include <stdint.h>
#include <string.h>
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

/* Advance cnt states by `steps` layers (loop over layers outside, entries inside): chunks of WD_CHUNK entries,
 * the vectorised fast path (wd_advance_fast) as far as it goes, then the scalar path (wd_advance_scalar, which
 * alone is the reference the tests compare the fast path with, bit for bit). */
void wd_advance(const nl_wide_deep_dual *d, wd_state *s, int64_t cnt, int64_t steps);
void wd_advance_scalar(const nl_wide_deep_dual *d, wd_state *s, int64_t cnt, int64_t steps);

/* The polynomial duals and their derivatives as evaluated by the recursion (dual.c and advance.c use the same
 * expressions, so both paths round identically). */
#define WD_OPT2D_PHI(x) (0.5 * ((x) * (x) * (x)) * ((x) * (x) * (x)) * (x) + 0.5 * (x))
#define WD_OPT2D_DPHI(x) (3.5 * ((x) * (x) * (x)) * ((x) * (x) * (x)) + 0.5)
#define WD_OPT3D_PHI(x) (0.5 * (x) * (x) * (x) + 0.5 * (x))
#define WD_OPT3D_DPHI(x) (1.5 * (x) * (x) + 0.5)
#define WD_OPT5D_PHI(x) (0.25 * (x) * (x) * (x) + 0.5 * (x) * (x) + 0.25 * (x))
#define WD_OPT5D_DPHI(x) (0.75 * (x) * (x) + (x) + 0.25)
#define WD_OPT9D_PHI(x) ((x) * (x) * (x) / 16.0 + 0.875 * (x) * (x) + (x) / 16.0)
#define WD_OPT9D_DPHI(x) (3.0 * (x) * (x) / 16.0 + 1.75 * (x) + 1.0 / 16.0)
#define WD_TINY 0x1p-600
#define WD_HUGE 0x1p600

/* Bit views of a double (type punning through memcpy; compiles to a register move, vectorises). */
static inline uint64_t wd_bits(double x) {
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}
static inline double wd_from_bits(uint64_t b) {
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}
/* 2^d for an integer-valued double d in [-1022, 1023] (a normal power of two), without a conversion to int:
 * d + 1.5 * 2^52 holds d in its low mantissa bits, and (those bits + 1023) << 52 is the exponent field of 2^d. */
static inline double wd_pow2(double d) { return wd_from_bits((wd_bits(d + 0x1.8p52) + 1023u) << 52); }

/* floor(log2|m * 2^e|), or -INFINITY for 0 (normal m read from its exponent field, as frexp(m) - 1). */
static inline double wd_ilog2(double m, double e) {
    if (m == 0) return -INFINITY;
    const uint64_t f = (wd_bits(m) >> 52) & 0x7ffu;
    if (f != 0 && f != 0x7ffu) return e + (double)((int)f - 1023);
    int ex;
    (void)frexp(m, &ex);
    return e + (double)(ex - 1);
}

/* m * 2^(e - s) without overflow of the int conversion; 0 when far below. Equal to ldexp(m, (int)(e - s)): for
 * exponents in [-1022, 1023] the product with the power of two is the same correctly rounded number. */
static inline double wd_scaled(double m, double e, double s) {
    double d = e - s;
    if (m == 0 || d < -2200) return 0.0;
    if (d > 2200) return copysign(INFINITY, m);
    d = (double)(int)d;
    if (d >= -1022 && d <= 1023) return m * wd_pow2(d);
    return ldexp(m, (int)d);
}

/* Advance cnt <= WD_CHUNK states through up to `steps` layers on the vectorised fast path (advance.c); returns the
 * number of layers done: it stops before the first layer where a value would need the scalar path (dual.c). */
#define WD_CHUNK 256
int64_t wd_advance_fast(const nl_wide_deep_dual *d, wd_state *s, int64_t cnt, int64_t steps);

/* The ReLU g(t) = sin t - t cos t by its series for t < 0.25 (error < 1e-17 relative). */
static inline double wd_relu_gseries(double t) {
    double t2 = t * t;
    return t * t2 *
           (1.0 / 3 + t2 * (-1.0 / 30 + t2 * (1.0 / 840 + t2 * (-1.0 / 45360 + t2 * (1.0 / 3991680 + t2 * (-1.0 / 518918400))))));
}

#endif
