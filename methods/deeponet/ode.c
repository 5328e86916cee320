/* methods/deeponet/ode.c — Dormand-Prince 5(4) with error control (ode.h). Tableau: Dormand & Prince, "A family of
 * embedded Runge-Kutta formulae", J. Comp. Appl. Math. 6 (1980); the error row E = b5 - b4. */
#include "deeponet/ode.h"
#include <math.h>
#include <string.h>

static const double C2 = 1.0 / 5, C3 = 3.0 / 10, C4 = 4.0 / 5, C5 = 8.0 / 9;
static const double A21 = 1.0 / 5;
static const double A31 = 3.0 / 40, A32 = 9.0 / 40;
static const double A41 = 44.0 / 45, A42 = -56.0 / 15, A43 = 32.0 / 9;
static const double A51 = 19372.0 / 6561, A52 = -25360.0 / 2187, A53 = 64448.0 / 6561, A54 = -212.0 / 729;
static const double A61 = 9017.0 / 3168, A62 = -355.0 / 33, A63 = 46732.0 / 5247, A64 = 49.0 / 176, A65 = -5103.0 / 18656;
/* 5th-order weights (also the 7th stage's row: FSAL) */
static const double B1 = 35.0 / 384, B3 = 500.0 / 1113, B4 = 125.0 / 192, B5 = -2187.0 / 6784, B6 = 11.0 / 84;
/* b5 - b4 */
static const double E1 = 71.0 / 57600, E3 = -71.0 / 16695, E4 = 71.0 / 1920, E5 = -17253.0 / 339200, E6 = 22.0 / 525,
                    E7 = -1.0 / 40;

nl_ode_opts nl_ode_defaults(void) {
    nl_ode_opts o = {1e-8, 1e-10, 0, 0, 1000000};
    return o;
}

static int all_finite(const double *v, int n) {
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* RMS norm of v / (atol + rtol * max(|a|, |b|)). */
static double scaled_rms(const double *v, const double *a, const double *b, int n, double rtol, double atol) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        double sc = atol + rtol * fmax(fabs(a[i]), fabs(b[i]));
        double q = v[i] / sc;
        s += q * q;
    }
    return sqrt(s / n);
}

/* Hairer-Norsett-Wanner's starting step (order 5: exponent 1/5). f0 = f(t0, y0). */
static double initial_step(nl_ode_fn f, void *ud, int n, double t0, const double *y0, const double *f0, double span,
                           double rtol, double atol, int64_t *evals) {
    double d0 = scaled_rms(y0, y0, y0, n, rtol, atol), d1 = scaled_rms(f0, y0, y0, n, rtol, atol);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    if (h0 > span) h0 = span;
    double y1[NL_ODE_MAX_DIM], f1[NL_ODE_MAX_DIM], df[NL_ODE_MAX_DIM];
    for (int i = 0; i < n; i++) y1[i] = y0[i] + h0 * f0[i];
    f(t0 + h0, y1, f1, ud);
    (*evals)++;
    for (int i = 0; i < n; i++) df[i] = f1[i] - f0[i];
    double d2 = scaled_rms(df, y0, y0, n, rtol, atol) / h0;
    double h1 = (d1 <= 1e-15 && d2 <= 1e-15) ? fmax(1e-6, h0 * 1e-3) : pow(0.01 / fmax(d1, d2), 1.0 / 5);
    double h = fmin(100 * h0, h1);
    return h > span ? span : h;
}

nl_status nl_ode_solve(nl_ode_fn f, void *ud, int n, double t0, double t1, double *y, const nl_ode_opts *opts,
                       nl_ode_stats *stats) {
    nl_ode_opts o = opts ? *opts : nl_ode_defaults();
    nl_ode_stats st = {0, 0, 0};
    if (stats) *stats = st;
    if (!f || !y || n < 1 || n > NL_ODE_MAX_DIM)
        return nl_set_error(NL_EINVAL, "nl_ode_solve: n = %d (expected 1..%d) or a NULL argument", n, NL_ODE_MAX_DIM);
    if (!(t1 >= t0) || !isfinite(t0) || !isfinite(t1))
        return nl_set_error(NL_EINVAL, "nl_ode_solve: interval [%g, %g] (expected finite t0 <= t1)", t0, t1);
    if (!(o.rtol > 0) || !(o.atol > 0))
        return nl_set_error(NL_EINVAL, "nl_ode_solve: rtol %g, atol %g (expected > 0)", o.rtol, o.atol);
    if (o.max_steps <= 0) o.max_steps = 1000000;
    double span = t1 - t0;
    if (span == 0) return NL_OK;
    double hmax = o.hmax > 0 && o.hmax < span ? o.hmax : span;
    double k1[NL_ODE_MAX_DIM], k2[NL_ODE_MAX_DIM], k3[NL_ODE_MAX_DIM], k4[NL_ODE_MAX_DIM], k5[NL_ODE_MAX_DIM],
        k6[NL_ODE_MAX_DIM], k7[NL_ODE_MAX_DIM], yt[NL_ODE_MAX_DIM], yn[NL_ODE_MAX_DIM], er[NL_ODE_MAX_DIM];
    f(t0, y, k1, ud);
    st.evals++;
    if (!all_finite(k1, n)) return nl_set_error(NL_ENONFINITE, "nl_ode_solve: f(t0) is not finite");
    double h = o.h0 > 0 ? o.h0 : initial_step(f, ud, n, t0, y, k1, span, o.rtol, o.atol, &st.evals);
    if (h > hmax) h = hmax;
    double t = t0;
    int rejected_last = 0;
    while (t < t1) {
        if (st.steps + st.rejected >= o.max_steps) {
            if (stats) *stats = st;
            return nl_set_error(NL_ESTATE, "nl_ode_solve: %lld steps without reaching t1 = %g (at t = %g)",
                                (long long)o.max_steps, t1, t);
        }
        int last = 0;
        if (t + h >= t1 || t1 - (t + h) < 1e-12 * span) {
            h = t1 - t;
            last = 1;
        }
        if (!(h > 0) || t + h == t) return nl_set_error(NL_ENONFINITE, "nl_ode_solve: step size underflow at t = %g", t);
        for (int i = 0; i < n; i++) yt[i] = y[i] + h * A21 * k1[i];
        f(t + C2 * h, yt, k2, ud);
        for (int i = 0; i < n; i++) yt[i] = y[i] + h * (A31 * k1[i] + A32 * k2[i]);
        f(t + C3 * h, yt, k3, ud);
        for (int i = 0; i < n; i++) yt[i] = y[i] + h * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i]);
        f(t + C4 * h, yt, k4, ud);
        for (int i = 0; i < n; i++) yt[i] = y[i] + h * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i]);
        f(t + C5 * h, yt, k5, ud);
        for (int i = 0; i < n; i++) yt[i] = y[i] + h * (A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i]);
        f(t + h, yt, k6, ud);
        for (int i = 0; i < n; i++) yn[i] = y[i] + h * (B1 * k1[i] + B3 * k3[i] + B4 * k4[i] + B5 * k5[i] + B6 * k6[i]);
        f(t + h, yn, k7, ud);
        st.evals += 6;
        for (int i = 0; i < n; i++) er[i] = h * (E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i]);
        double err = scaled_rms(er, y, yn, n, o.rtol, o.atol);
        if (!isfinite(err) || !all_finite(yn, n) || !all_finite(k7, n)) {
            err = INFINITY; /* shrink and retry; a step that never becomes finite underflows */
        }
        if (err <= 1) {
            t = last ? t1 : t + h;
            memcpy(y, yn, (size_t)n * sizeof *y);
            memcpy(k1, k7, (size_t)n * sizeof *k1);
            st.steps++;
            double fac = err == 0 ? 10 : fmin(10, 0.9 * pow(err, -0.2));
            if (rejected_last && fac > 1) fac = 1;
            h = fmin(h * fac, hmax);
            rejected_last = 0;
        } else {
            st.rejected++;
            double fac = isfinite(err) ? fmax(0.2, 0.9 * pow(err, -0.2)) : 0.2;
            h *= fac;
            rejected_last = 1;
        }
    }
    if (stats) *stats = st;
    return NL_OK;
}
