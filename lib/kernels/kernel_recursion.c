/* The NNGP / NTK recursions: activations and their derivatives, the scalar activation maps (ABReLU and erf closed
 * forms, Gauss-Hermite grid and polar quadrature), the per-point diagonal chains, and the row kernels (vector
 * closed-form layers on nnlab/vmath.h, scalar per-entry recursion). Formulas: methods/nngp_ntk/README.md. */
#include "kernels/kernels_internal.h"
#include <float.h>
#include <string.h>

/* ======================================================================================================
 * Activations and their derivatives (for quadrature). d[k] = phi^(k)(x), k = 0..order.
 * ====================================================================================================== */
static void user_eval(const nl_kernel_user_act *u, double x, int order, double *d) {
    double s = fabs(x) > 1 ? fabs(x) : 1.0;
    d[0] = u->f(x, u->ud);
    if (order < 1) return;
    double h1 = 6e-6 * s, h2 = 1e-4 * s, h3 = 1e-3 * s;
    d[1] = u->df ? u->df(x, u->ud) : (u->f(x + h1, u->ud) - u->f(x - h1, u->ud)) / (2 * h1);
    if (order < 2) return;
    if (u->d2f) d[2] = u->d2f(x, u->ud);
    else if (u->df) d[2] = (u->df(x + h1, u->ud) - u->df(x - h1, u->ud)) / (2 * h1);
    else d[2] = (u->f(x + h2, u->ud) - 2 * d[0] + u->f(x - h2, u->ud)) / (h2 * h2);
    if (order < 3) return;
    if (u->d3f) d[3] = u->d3f(x, u->ud);
    else if (u->d2f) d[3] = (u->d2f(x + h1, u->ud) - u->d2f(x - h1, u->ud)) / (2 * h1);
    else if (u->df) d[3] = (u->df(x + h2, u->ud) - 2 * d[1] + u->df(x - h2, u->ud)) / (h2 * h2);
    else d[3] = (u->f(x + 2 * h3, u->ud) - 2 * u->f(x + h3, u->ud) + 2 * u->f(x - h3, u->ud) - u->f(x - 2 * h3, u->ud)) /
                (2 * h3 * h3 * h3);
}

static inline void act_eval(const kplan *p, double x, int order, double *d) {
    switch (p->act) {
    case NL_KACT_RELU:
    case NL_KACT_LEAKY_RELU:
    case NL_KACT_ABS:
    case NL_KACT_IDENTITY: {
        double lo = p->act == NL_KACT_RELU ? 0.0 : p->act == NL_KACT_LEAKY_RELU ? p->param
                  : p->act == NL_KACT_ABS ? -1.0 : 1.0; /* slope for x < 0; 1 for x > 0 */
        d[0] = x > 0 ? x : lo * x;
        if (order >= 1) d[1] = x > 0 ? 1.0 : (x < 0 || p->act != NL_KACT_ABS ? lo : 0.0);
        if (order >= 1 && p->act == NL_KACT_RELU && x == 0) d[1] = 0.0;
        if (order >= 2) d[2] = 0.0;
        if (order >= 3) d[3] = 0.0;
        return;
    }
    case NL_KACT_ERF: {
        double bx = p->eb * x;
        d[0] = p->ea * erf(bx) + p->ec;
        if (order >= 1) {
            double g = p->ea * p->eb * (2.0 / sqrt(M_PI)) * exp(-bx * bx);
            d[1] = g;
            if (order >= 2) d[2] = -2 * p->eb2 * x * g;
            if (order >= 3) d[3] = (4 * p->eb2 * p->eb2 * x * x - 2 * p->eb2) * g;
        }
        return;
    }
    case NL_KACT_TANH: {
        double t = tanh(x);
        d[0] = t;
        if (order >= 1) {
            double d1 = 1 - t * t;
            d[1] = d1;
            if (order >= 2) d[2] = -2 * t * d1;
            if (order >= 3) d[3] = -2 * d1 * (1 - 3 * t * t);
        }
        return;
    }
    case NL_KACT_GELU: {
        double ph = exp(-0.5 * x * x) / sqrt(2 * M_PI), Ph = 0.5 * erfc(-x / sqrt(2.0));
        d[0] = x * Ph;
        if (order >= 1) d[1] = Ph + x * ph;
        if (order >= 2) d[2] = (2 - x * x) * ph;
        if (order >= 3) d[3] = (x * x * x - 4 * x) * ph;
        return;
    }
    case NL_KACT_SIN: {
        double s = sin(x), c = order >= 1 ? cos(x) : 0;
        d[0] = s;
        if (order >= 1) d[1] = c;
        if (order >= 2) d[2] = -s;
        if (order >= 3) d[3] = -c;
        return;
    }
    default:
        user_eval(&p->user, x, order, d);
        return;
    }
}

/* ======================================================================================================
 * Scalar activation maps with partial derivatives.
 * o[0] = F = E[phi(u) phi(v)], o[1] = G = E[phi'(u) phi'(v)], and with `grad`:
 * o[2] = dF/dk11, o[3] = dF/dk12 (= G), o[4] = dF/dk22, o[5] = dG/dk11, o[6] = dG/dk12, o[7] = dG/dk22,
 * for (u, v) ~ N(0, [[k11, k12], [k12, k22]]). coinc: the two points coincide (x = x').
 * ====================================================================================================== */
void nl_kabrelu_map(const kplan *p, double k12, double k11, double k22, int coinc, int grad, double *o) {
    double prod = k11 * k22, s2 = prod - k12 * k12;
    double s = (!coinc && s2 > 0) ? sqrt(s2) : 0.0;
    double th = (s == 0 && k12 == 0) ? PI_2 : atan2(s, k12);
    double G = p->h - p->beta * th;
    o[0] = p->beta * s + G * k12;
    o[1] = G;
    if (!grad) return;
    o[3] = G;
    if (s > 0) {
        double b = p->beta;
        o[2] = b * s / (2 * k11);
        o[4] = b * s / (2 * k22);
        o[6] = b / s;
        o[5] = -b * k12 / (2 * s * k11);
        o[7] = -b * k12 / (2 * s * k22);
    } else {
        o[2] = o[4] = o[5] = o[6] = o[7] = 0.0; /* singular at s = 0: the total derivative along x = x' is 0 */
    }
}

static void erf_map(const kplan *p, double k12, double k11, double k22, int grad, double *o) {
    double b2 = p->eb2, a2 = p->ea2;
    double x12 = b2 * k12, x11 = b2 * k11, x22 = b2 * k22;
    double d1 = 1 + 2 * x11, d2 = 1 + 2 * x22;
    double om = d1 * d2 - 4 * x12 * x12;
    if (om < DBL_MIN) om = DBL_MIN;
    double sq = sqrt(om);
    double Ge = (4 / M_PI) / sq;
    o[0] = a2 * (2 / M_PI) * atan2(2 * x12, sq) + p->ec2;
    o[1] = a2 * b2 * Ge;
    if (!grad) return;
    double ab = a2 * b2, ab2 = a2 * b2 * b2;
    o[3] = o[1];
    o[2] = -ab * x12 * Ge / d1;
    o[4] = -ab * x12 * Ge / d2;
    o[6] = ab2 * Ge * 4 * x12 / om;
    o[5] = -ab2 * Ge * d2 / om;
    o[7] = -ab2 * Ge * d1 / om;
}

/* Gauss-Hermite grid (neural-tangents ElementwiseNumerical): u = sqrt(k11) z1, v = sqrt(k22) (c z1 + sqrt(1 - c^2) z2), c = k12 / sqrt(k11 k22); partials by
 * Price's theorem: dE[g]/dk12 = E[d2g/dudv], dE[g]/dk11 = E[d2g/du2] / 2. */
static void quad_map(const kplan *p, double k12, double k11, double k22, int want_g, int grad, double *o) {
    double c = (k11 > 0 && k22 > 0) ? k12 / sqrt(k11 * k22) : 0.0;
    if (c > 1) c = 1;
    if (c < -1) c = -1;
    double sc = sqrt(1 - c * c > 0 ? 1 - c * c : 0), r1 = sqrt(k11 > 0 ? k11 : 0), r2 = sqrt(k22 > 0 ? k22 : 0);
    int ord = grad ? 3 : (want_g ? 1 : 0);
    double F = 0, G = 0, F11 = 0, F22 = 0, G11 = 0, G12 = 0, G22 = 0;
    const double *t = p->qt, *w = p->qw;
    for (int a = 0; a < p->deg; a++) {
        double du[4], u = r1 * t[a];
        act_eval(p, u, ord, du);
        double f0 = 0, f1 = 0, f2 = 0, g1 = 0, g2 = 0, g3 = 0;
        double base = c * t[a];
        for (int b = 0; b < p->deg; b++) {
            double dv[4], v = r2 * (base + sc * t[b]);
            act_eval(p, v, ord, dv);
            double wb = w[b];
            f0 += wb * dv[0];
            if (ord >= 1) f1 += wb * dv[1];
            if (grad) { f2 += wb * dv[2]; g1 += wb * dv[1]; g2 += wb * dv[2]; g3 += wb * dv[3]; }
        }
        double wa = w[a];
        F += wa * du[0] * f0;
        if (ord >= 1) G += wa * du[1] * f1;
        if (grad) {
            F11 += wa * du[2] * f0;  /* E[phi''(u) phi(v)] */
            F22 += wa * du[0] * f2;  /* E[phi(u) phi''(v)] */
            G12 += wa * du[2] * g2;  /* E[phi''(u) phi''(v)] */
            G11 += wa * du[3] * g1;  /* E[phi'''(u) phi'(v)] */
            G22 += wa * du[1] * g3;  /* E[phi'(u) phi'''(v)] */
        }
    }
    o[0] = F;
    o[1] = G;
    if (!grad) return;
    o[3] = G;
    o[2] = 0.5 * F11; o[4] = 0.5 * F22;
    o[5] = 0.5 * G11; o[6] = G12; o[7] = 0.5 * G22;
}

/* Polar scheme: z = rho (cos a, sin a); u = sqrt(k11) rho cos a, v = sqrt(k22) rho cos(a - psi), psi = acos c.
 * E[g] = 1/(2 pi) int_0^pi da int_0^inf [g(rho) + g(-rho)] e^{-t} dt with t = rho^2 / 2; the angle range is split
 * where cos a = 0 or cos(a - psi) = 0 (the kinks of activations that are non-smooth at 0). */
static void quad_map_polar(const kplan *p, double k12, double k11, double k22, int want_g, int grad, double *o) {
    double c = (k11 > 0 && k22 > 0) ? k12 / sqrt(k11 * k22) : 0.0;
    /* snap (near-)coincident points: the integral is quadratic in the angle there, so |1 - c| < 1e-12 moves it by
     * ~1e-12 relative, while a sliver of an arc would change the rule */
    if (c > 1 - 1e-12) c = 1;
    if (c < -1 + 1e-12) c = -1;
    double psi = acos(c), r1 = sqrt(k11 > 0 ? k11 : 0), r2 = sqrt(k22 > 0 ? k22 : 0);
    double bp[4] = {0.0, PI_2, psi + PI_2 < M_PI ? psi + PI_2 : psi - PI_2, M_PI};
    if (bp[2] < bp[1]) { double tmp = bp[1]; bp[1] = bp[2]; bp[2] = tmp; }
    int ord = grad ? 3 : (want_g ? 1 : 0);
    double F = 0, G = 0, F11 = 0, F22 = 0, G11 = 0, G12 = 0, G22 = 0;
    for (int arc = 0; arc < 3; arc++) {
        double a0 = bp[arc], a1 = bp[arc + 1];
        if (!(a1 - a0 > 1e-15)) continue;
        double mid = 0.5 * (a0 + a1), half = 0.5 * (a1 - a0);
        for (int gi = 0; gi < p->ng; gi++) {
            double al = mid + half * p->gx[gi], W = p->gw[gi] * half / (2 * M_PI);
            double ca = r1 * cos(al), cb = r2 * cos(al - psi);
            for (int m = 0; m < p->deg; m++) {
                double rho = p->lr[m], wm = W * p->lw[m];
                for (int sg = -1; sg <= 1; sg += 2) {
                    double du[4], dv[4];
                    act_eval(p, sg * rho * ca, ord, du);
                    act_eval(p, sg * rho * cb, ord, dv);
                    F += wm * du[0] * dv[0];
                    if (ord >= 1) G += wm * du[1] * dv[1];
                    if (grad) {
                        F11 += wm * du[2] * dv[0];
                        F22 += wm * du[0] * dv[2];
                        G12 += wm * du[2] * dv[2];
                        G11 += wm * du[3] * dv[1];
                        G22 += wm * du[1] * dv[3];
                    }
                }
            }
        }
    }
    o[0] = F;
    o[1] = G;
    if (!grad) return;
    o[3] = G;
    o[2] = 0.5 * F11; o[4] = 0.5 * F22;
    o[5] = 0.5 * G11; o[6] = G12; o[7] = 0.5 * G22;
}

void nl_kact_map(const kplan *p, double k12, double k11, double k22, int coinc, int want_g, int grad, double *o) {
    if (p->kind == K_ABRELU) nl_kabrelu_map(p, k12, k11, k22, coinc, grad, o);
    else if (p->kind == K_ERF) erf_map(p, k12, k11, k22, grad, o);
    else {
        /* quadrature is not exactly symmetric in (u, v): order the variances so that K(x, y) == K(y, x) */
        int sw = k11 > k22;
        double a = sw ? k22 : k11, b = sw ? k11 : k22;
        if (p->scheme == NL_KQUAD_POLAR) quad_map_polar(p, k12, a, b, want_g, grad, o);
        else quad_map(p, k12, a, b, want_g, grad, o);
        if (sw && grad) {
            double t = o[2]; o[2] = o[4]; o[4] = t;
            t = o[5]; o[5] = o[7]; o[7] = t;
        }
    }
}

/* Diagonal map V(q) = E[phi(u)^2], u ~ N(0, q), and V'(q) (if dv). */
double nl_kact_diag(const kplan *p, double q, double *dv) {
    if (p->kind == K_ABRELU) {
        if (dv) *dv = p->h;
        return p->h * q;
    }
    if (p->kind == K_ERF) {
        double x = p->eb2 * q;
        if (dv) *dv = p->ea2 * p->eb2 * (4 / M_PI) / ((1 + 2 * x) * sqrt(1 + 4 * x));
        return p->ea2 * (2 / M_PI) * atan2(2 * x, sqrt(1 + 4 * x)) + p->ec2;
    }
    if (p->scheme == NL_KQUAD_POLAR) { /* the 2-D rule at coincident points, so that V(q) = F(q, q, q) */
        double o[8];
        quad_map_polar(p, q, q, q, 0, dv != NULL, o);
        if (dv) *dv = o[2] + o[3] + o[4]; /* dF/dk11 + dF/dk12 + dF/dk22 = E[phi'^2 + phi phi''] */
        return o[0];
    }
    double r = sqrt(q > 0 ? q : 0), V = 0, D = 0; /* grid scheme: 1-D Gauss-Hermite as neural-tangents */
    for (int a = 0; a < p->deg; a++) {
        double d[4];
        act_eval(p, r * p->qt[a], dv ? 2 : 0, d);
        V += p->qw[a] * d[0] * d[0];
        if (dv) D += p->qw[a] * (d[1] * d[1] + d[0] * d[2]); /* d/dq E[phi^2] = E[phi'^2 + phi phi''] */
    }
    if (dv) *dv = D;
    return V;
}

/* ======================================================================================================
 * Per-point diagonal chains: for hidden layer l (0..L-1), P[l] = variance entering Dense l (P[0] = x.x/d),
 * Q[l] = sw2[l] P[l] + sb2[l] (pre-activation variance), R[l] = auxiliary per-point factor of the vector
 * loops (erf: 1/sqrt(1 + 2 b^2 Q); unused otherwise). Arrays are (L, n) row-major by layer.
 * ====================================================================================================== */
void nl_kdiag_fill(const kplan *p, kdiag *dg, const double *q0, int64_t q0_stride) {
    int L = p->L;
    int64_t n = dg->n;
#pragma omp parallel for schedule(static) if (n * L * elem_cost(p) > PAR_WORK)
    for (int64_t i = 0; i < n; i++) {
        double P = q0[i * q0_stride];
        for (int l = 0; l < L; l++) {
            double Q = NL_MADD(p->sw2[l], P, p->sb2[l]);
            dg->P[l * n + i] = P;
            dg->Q[l * n + i] = Q;
            if (p->kind == K_ERF) dg->R[l * n + i] = 1.0 / sqrt(1 + 2 * p->eb2 * Q);
            else dg->R[l * n + i] = 0.0;
            P = nl_kact_diag(p, Q, NULL);
        }
    }
}

/* ======================================================================================================
 * Row kernels: S (n) holds K0(i, j0 .. j0+n) on entry and the NNGP on exit; T (n) receives the NTK (NULL:
 * not wanted). d1 / i: the row point's chains; d2 / j0: the column points'. jd: index in [0, n) of a column
 * that coincides with the row point (symmetric case, i == j), or -1.
 * ====================================================================================================== */
/* One ABReLU layer on NL_VL lanes. */
static inline void abrelu_vec(double *Sp_, double *Tp_, const double *q2p, nl_vd qi, nl_vd sw2, nl_vd sb2, nl_vd A, nl_vd B, nl_vd h,
                              nl_vd beta) {
    nl_vd So = nl_v_load(Sp_);
    nl_vd S = nl_v_fma(sw2, So, sb2);
    nl_vd prod = nl_v_mul(qi, nl_v_load(q2p));
    nl_vd s2 = nl_v_sub(prod, nl_v_mul(S, S));
    nl_vd s = nl_v_sqrt(nl_v_max(s2, nl_v_set(0.0)));
    nl_vd th = nl_v_atan2_pos(s, S);
    nl_vd G = nl_v_fnma(beta, th, h);
    nl_v_store(Sp_, nl_v_fma(beta, s, nl_v_mul(G, S)));
    if (Tp_) {
        nl_vd T = nl_v_fma(A, So, nl_v_fma(sw2, nl_v_load(Tp_), B));
        nl_v_store(Tp_, nl_v_mul(T, G));
    }
}

static inline void erf_vec(double *Sp_, double *Tp_, const double *r2p, nl_vd ri, nl_vd sw2, nl_vd sb2, nl_vd A, nl_vd B, nl_vd eb2x2,
                           nl_vd fa, nl_vd ga, nl_vd ec2) {
    nl_vd So = nl_v_load(Sp_);
    nl_vd S = nl_v_fma(sw2, So, sb2);
    nl_vd ipp = nl_v_mul(ri, nl_v_load(r2p));
    nl_vd w = nl_v_mul(eb2x2, nl_v_mul(S, ipp)); /* 2 b^2 k12 / sqrt((1+2b^2 k11)(1+2b^2 k22)) */
    w = nl_v_min(nl_v_max(w, nl_v_set(-1.0)), nl_v_set(1.0));
    nl_vd om = nl_v_max(nl_v_fnma(w, w, nl_v_set(1.0)), nl_v_set(DBL_MIN));
    nl_v_store(Sp_, nl_v_fma(fa, nl_v_asin(w), ec2));
    if (Tp_) {
        nl_vd G = nl_v_div(nl_v_mul(ga, ipp), nl_v_sqrt(om));
        nl_vd T = nl_v_fma(A, So, nl_v_fma(sw2, nl_v_load(Tp_), B));
        nl_v_store(Tp_, nl_v_mul(T, G));
    }
}

/* Run one closed-form hidden layer over n columns (vector body + padded tail). */
static void closed_layer(const kplan *p, int l, double *S, double *T, int64_t n, double qi, double ri, const double *q2,
                         const double *r2) {
    klay y = lay_of(p, l);
    nl_vd vsw2 = nl_v_set(y.sw2), vsb2 = nl_v_set(y.sb2), vA = nl_v_set(y.A), vB = nl_v_set(y.B);
    nl_vd vqi = nl_v_set(qi), vri = nl_v_set(ri);
    double bs[NL_VL], bt[NL_VL], bq[NL_VL], br[NL_VL];
    (void)bq;
    int64_t j = 0;
    if (p->kind == K_ABRELU) {
        nl_vd h = nl_v_set(p->h), beta = nl_v_set(p->beta);
        for (; j + NL_VL <= n; j += NL_VL)
            abrelu_vec(S + j, T ? T + j : NULL, q2 + j, vqi, vsw2, vsb2, vA, vB, h, beta);
        if (j < n) {
            int64_t m = n - j;
            for (int k = 0; k < NL_VL; k++) {
                bs[k] = k < m ? S[j + k] : 0.0; bt[k] = (T && k < m) ? T[j + k] : 0.0;
                bq[k] = k < m ? q2[j + k] : 1.0;
            }
            abrelu_vec(bs, T ? bt : NULL, bq, vqi, vsw2, vsb2, vA, vB, h, beta);
            for (int64_t k = 0; k < m; k++) { S[j + k] = bs[k]; if (T) T[j + k] = bt[k]; }
        }
    } else {
        nl_vd eb2x2 = nl_v_set(2 * p->eb2), fa = nl_v_set(p->ea2 * (2 / M_PI)), ga = nl_v_set(p->ea2 * p->eb2 * (4 / M_PI));
        nl_vd ec2 = nl_v_set(p->ec2);
        for (; j + NL_VL <= n; j += NL_VL)
            erf_vec(S + j, T ? T + j : NULL, r2 + j, vri, vsw2, vsb2, vA, vB, eb2x2, fa, ga, ec2);
        if (j < n) {
            int64_t m = n - j;
            for (int k = 0; k < NL_VL; k++) {
                bs[k] = k < m ? S[j + k] : 0.0; bt[k] = (T && k < m) ? T[j + k] : 0.0;
                br[k] = k < m ? r2[j + k] : 1.0;
            }
            erf_vec(bs, T ? bt : NULL, br, vri, vsw2, vsb2, vA, vB, eb2x2, fa, ga, ec2);
            for (int64_t k = 0; k < m; k++) { S[j + k] = bs[k]; if (T) T[j + k] = bt[k]; }
        }
    }
}

/* Readout Dense layer over n columns. */
static void readout_layer(const kplan *p, double *S, double *T, int64_t n) {
    klay y = lay_of(p, p->L);
    for (int64_t j = 0; j < n; j++) {
        double So = S[j];
        S[j] = NL_MADD(y.sw2, So, y.sb2);
        if (T) T[j] = NL_MADD(y.A, So, NL_MADD(y.sw2, T[j], y.B));
    }
}

/* One entry through all layers with the scalar maps (quadrature rows, the reference, coincident fix-ups).
 * q1[l], q2[l]: pre-activation variances of the two points at hidden layer l (stride qs1 / qs2). */
void nl_kelem_forward(const kplan *p, double k0, const double *q1, int64_t qs1, const double *q2, int64_t qs2,
                         int coinc, int wantT, double *S_out, double *T_out) {
    double S = k0, T = 0.0, o[8];
    for (int l = 0; l < p->L; l++) {
        klay y = lay_of(p, l);
        double Sp = NL_MADD(y.sw2, S, y.sb2);
        double Tp = NL_MADD(y.A, S, NL_MADD(y.sw2, T, y.B));
        nl_kact_map(p, Sp, q1[l * qs1], q2[l * qs2], coinc, wantT, 0, o);
        S = o[0];
        T = Tp * o[1];
    }
    klay y = lay_of(p, p->L);
    *S_out = NL_MADD(y.sw2, S, y.sb2);
    *T_out = NL_MADD(y.A, S, NL_MADD(y.sw2, T, y.B));
}

/* The recursion for row i against columns j0 .. j0+n (see above). */
void nl_krow_kernel(const kplan *p, double *S, double *T, int64_t n, const kdiag *d1, int64_t i, const kdiag *d2,
                       int64_t j0, int64_t jd) {
    int L = p->L;
    if (p->kind == K_QUAD) {
        for (int64_t j = 0; j < n; j++) {
            double s, t;
            nl_kelem_forward(p, S[j], d1->Q + i, d1->n, d2->Q + j0 + j, d2->n, j == jd, T != NULL, &s, &t);
            S[j] = s;
            if (T) T[j] = t;
        }
        return;
    }
    if (T) memset(T, 0, sizeof(double) * (size_t)n);
    for (int l = 0; l < L; l++) {
        double qi = d1->Q[l * d1->n + i], ri = d1->R[l * d1->n + i];
        const double *q2 = d2->Q + l * d2->n + j0, *r2 = d2->R + l * d2->n + j0;
        double sd = 0, td = 0;
        if (jd >= 0) { sd = S[jd]; td = T ? T[jd] : 0.0; }
        closed_layer(p, l, S, T, n, qi, ri, q2, r2);
        if (jd >= 0 && p->kind == K_ABRELU) { /* exact update of the coincident entry (s = 0, theta = 0) */
            klay y = lay_of(p, l);
            double o[8], Sp = NL_MADD(y.sw2, sd, y.sb2);
            nl_kabrelu_map(p, Sp, qi, q2[jd], 1, 0, o);
            S[jd] = o[0];
            if (T) T[jd] = NL_MADD(y.A, sd, NL_MADD(y.sw2, td, y.B)) * o[1];
        }
    }
    readout_layer(p, S, T, n);
}
