/* Vectorised fast paths of the scaled recursion (dual.c). A chunk of at most WD_CHUNK entries is copied into plain
 * arrays (structure of arrays) and advanced layer by layer with loops the compiler vectorises. Every operation is
 * the one of the scalar path in the same order (no contraction under -std=c11), so the numbers are bit-identical;
 * each layer is computed into scratch arrays and committed only when no entry leaves the range where the scalar
 * path would take another branch (a renormalisation, an exponent shift beyond 2^+-1000, a zero, a NaN). At the
 * first such layer the fast path stops and the scalar path (dual.c) does the remaining layers.
 *
 * polynomial duals (2d/3d/5d/9d_opt): every exponent 0 (values in [2^-600, 2^600] or 0), plain doubles;
 * hermite_2 / hermite_3: the log-domain step of advance_hermite with frexp and ldexp done on the bits;
 * ReLU: asin (and sin / cos for t >= 0.25) called per entry from libm, the rest vectorised. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "wd_internal.h"

typedef struct wd_soa {
    double xm[WD_CHUNK], xe[WD_CHUNK], km[WD_CHUNK], ke[WD_CHUNK];
} wd_soa;

static void wd_soa_load(wd_soa *a, const wd_state *s, int64_t cnt) {
    for (int64_t i = 0; i < cnt; i++) a->xm[i] = s[i].xm, a->xe[i] = s[i].xe, a->km[i] = s[i].km, a->ke[i] = s[i].ke;
}
static void wd_soa_store(const wd_soa *a, wd_state *s, int64_t cnt) {
    for (int64_t i = 0; i < cnt; i++) s[i].xm = a->xm[i], s[i].xe = a->xe[i], s[i].km = a->km[i], s[i].ke = a->ke[i];
}

static inline int wd_out_of_range(double v) {
    const double a = fabs(v);
    return (a != 0) & ((a < WD_TINY) | (a > WD_HUGE));
}

/* c ? a : b through the bits (all operands computed: GCC does not if-convert possibly trapping FP operations it
 * sank into branches, and the loop would stay scalar). */
static inline double wd_sel(int c, double a, double b) {
    const uint64_t m = (uint64_t)0 - (uint64_t)(c != 0);
    return wd_from_bits((wd_bits(a) & m) | (wd_bits(b) & ~m));
}

/* ---- polynomial duals: x <- clamp(phi(x)), K <- phi(x) + K phi'(x), all exponents 0 ---- */
#define WD_FAST_POLY(NAME, PHI, DPHI)                                                                    \
    static int64_t fast_##NAME(wd_state *s, int64_t cnt, int64_t steps) {                             \
        double bx[2][WD_CHUNK], bk[2][WD_CHUNK]; /* (2, cnt): this layer and the next */                 \
        double *x = bx[0], *k = bk[0], *nx = bx[1], *nk = bk[1];                                         \
        for (int64_t i = 0; i < cnt; i++) {                                                              \
            if (s[i].xe != 0 || s[i].ke != 0) return 0;                                                  \
            x[i] = s[i].xm, k[i] = s[i].km;                                                              \
        }                                                                                                \
        int64_t t = 0;                                                                                   \
        for (; t < steps; t++) {                                                                         \
            int bad = 0;                                                                                 \
            for (int64_t i = 0; i < cnt; i++) {                                                          \
                const double xx = x[i];                                                                  \
                const double ph = PHI(xx), dp = DPHI(xx);                                                \
                const double p = wd_sel(ph > 1.0, 1.0, wd_sel(ph < -1.0, -1.0, ph)); /* wd_clamp1 */         \
                const double kk = p + k[i] * dp;                                                         \
                nx[i] = p, nk[i] = kk;                                                                   \
                bad |= wd_out_of_range(kk) | ((p != 0) & (fabs(p) < WD_TINY));                           \
            }                                                                                            \
            if (bad) break;                                                                              \
            double *tx = x, *tk = k;                                                                     \
            x = nx, k = nk, nx = tx, nk = tk;                                                            \
        }                                                                                                \
        for (int64_t i = 0; i < cnt; i++) s[i].xm = x[i], s[i].km = k[i];                                \
        return t;                                                                                        \
    }

WD_FAST_POLY(opt2d, WD_OPT2D_PHI, WD_OPT2D_DPHI)
WD_FAST_POLY(opt3d, WD_OPT3D_PHI, WD_OPT3D_DPHI)
WD_FAST_POLY(opt5d, WD_OPT5D_PHI, WD_OPT5D_DPHI)
WD_FAST_POLY(opt9d, WD_OPT9D_PHI, WD_OPT9D_DPHI)

/* ---- hermite_k, k = 2 or 3 (advance_hermite in dual.c, step for step) ----
 * m, ex = frexp(xm); E = xe + ex; mk1 = m^(k-1); (pm, pe) = (mk1 m, k E); K <- (pm, pe) + K * (k mk1, (k-1) E)
 * added at the larger exponent, the other term scaled by 2^(difference); K renormalised when out of range. */
static inline double wd_int_to_double(uint64_t f) { return wd_from_bits(f | 0x4330000000000000u) - 0x1p52; } /* f < 2^52 */

static inline __attribute__((always_inline)) int64_t fast_hermite(const int k, wd_state *s, int64_t cnt, int64_t steps) {
    wd_soa buf[2]; /* (2, 4, cnt): this layer and the next */
    wd_soa *cur = &buf[0], *nxt = &buf[1];
    wd_soa_load(cur, s, cnt);
    const double kd = (double)k, k1d = (double)(k - 1);
    int64_t t = 0;
    for (; t < steps; t++) {
        int bad = 0;
        for (int64_t i = 0; i < cnt; i++) {
            const uint64_t xb = wd_bits(cur->xm[i]), f = (xb >> 52) & 0x7ffu;
            bad |= (f == 0) | (f == 0x7ffu); /* zero, subnormal, inf or NaN: the scalar path */
            const double m = wd_from_bits((xb & 0x800fffffffffffffu) | 0x3fe0000000000000u); /* frexp mantissa */
            const double E = cur->xe[i] + (wd_int_to_double(f) - 1022.0);
            const double mk1 = k == 2 ? m : m * m; /* wd_ipow(m, k - 1) for k = 2, 3 */
            const double pm = mk1 * m, pe = kd * E;
            const double bm = cur->km[i] * (kd * mk1), be = cur->ke[i] + k1d * E;
            const double dpb = be - pe; /* exponent of the K term relative to the phi term */
            const int up = pe > be, eq = pe == be;
            const double diff = wd_sel(up, dpb, -dpb); /* <= 0 unless NaN */
            bad |= (bm == 0) | !(diff >= -1000);
            const double sc = wd_pow2(wd_sel(diff >= -1000, diff, 0.0));
            const double r_eq = pm + bm, r_up = pm + bm * sc, r_dn = bm + pm * sc; /* all three, then select */
            const double rm = wd_sel(eq, r_eq, wd_sel(up, r_up, r_dn)), re = wd_sel(up, pe, be);
            /* renormalise K (frexp on the bits; a subnormal, inf or NaN rm goes to the scalar path) */
            const uint64_t rb = wd_bits(rm), rf = (rb >> 52) & 0x7ffu;
            const int ren = wd_out_of_range(rm);
            bad |= ren & ((rf == 0) | (rf == 0x7ffu));
            const double rmn = wd_from_bits((rb & 0x800fffffffffffffu) | 0x3fe0000000000000u);
            const double ren_e = re + (wd_int_to_double(rf) - 1022.0);
            nxt->km[i] = wd_sel(ren, rmn, rm);
            nxt->ke[i] = wd_sel(ren, ren_e, re);
            nxt->xm[i] = pm; /* pm in [2^-k, 1): no renormalisation for k <= 3 */
            nxt->xe[i] = pe;
        }
        if (bad) break;
        wd_soa *tmp = cur;
        cur = nxt, nxt = tmp;
    }
    wd_soa_store(cur, s, cnt);
    return t;
}

/* ---- ReLU on delta = 1 - xi (advance_relu in dual.c): K's exponent 0, xi's always 0 ---- */
static int64_t fast_relu(wd_state *s, int64_t cnt, int64_t steps) {
    double bx[2][WD_CHUNK], bk[2][WD_CHUNK], th[WD_CHUNK]; /* (2, cnt) this layer and the next; (cnt) */
    double *x = bx[0], *k = bk[0], *g = bx[1], *nk = bk[1];
    for (int64_t i = 0; i < cnt; i++) {
        if (s[i].ke != 0 || s[i].xe != 0) return 0;
        x[i] = s[i].xm, k[i] = s[i].km;
    }
    int64_t t = 0;
    for (; t < steps; t++) {
        for (int64_t i = 0; i < cnt; i++) th[i] = 2.0 * asin(sqrt(0.5 * x[i])); /* libm, scalar */
        int need = 0;
        for (int64_t i = 0; i < cnt; i++) {
            g[i] = wd_relu_gseries(th[i]);
            need |= !(th[i] < 0.25);
        }
        if (need)
            for (int64_t i = 0; i < cnt; i++)
                if (!(th[i] < 0.25)) g[i] = sin(th[i]) - th[i] * cos(th[i]);
        int bad = 0;
        for (int64_t i = 0; i < cnt; i++) {
            double dn = x[i] - g[i] / M_PI;
            dn = wd_sel(dn < 0, 0.0, dn);
            const double kk = (1.0 - dn) + k[i] * (1.0 - th[i] / M_PI);
            nk[i] = kk, g[i] = dn;
            bad |= wd_out_of_range(kk);
        }
        if (bad) break;
        double *tx = x, *tk = k;
        x = g, k = nk, g = tx, nk = tk;
    }
    for (int64_t i = 0; i < cnt; i++) s[i].xm = x[i], s[i].km = k[i];
    return t;
}

static int64_t fast_hermite2(wd_state *s, int64_t cnt, int64_t steps) { return fast_hermite(2, s, cnt, steps); }
static int64_t fast_hermite3(wd_state *s, int64_t cnt, int64_t steps) { return fast_hermite(3, s, cnt, steps); }

int64_t wd_advance_fast(const nl_wide_deep_dual *d, wd_state *s, int64_t cnt, int64_t steps) {
    if (cnt <= 0 || cnt > WD_CHUNK || steps <= 0) return 0;
    switch (d->kind) {
    case NL_WIDE_DEEP_OPT2D: return fast_opt2d(s, cnt, steps);
    case NL_WIDE_DEEP_OPT3D: return fast_opt3d(s, cnt, steps);
    case NL_WIDE_DEEP_OPT5D: return fast_opt5d(s, cnt, steps);
    case NL_WIDE_DEEP_OPT9D: return fast_opt9d(s, cnt, steps);
    case NL_WIDE_DEEP_HERMITE: return d->a == 2 ? fast_hermite2(s, cnt, steps) : d->a == 3 ? fast_hermite3(s, cnt, steps) : 0;
    case NL_WIDE_DEEP_RELU: return fast_relu(s, cnt, steps);
    default: return 0;
    }
}
