/* methods/deeponet/ode.h — an adaptive explicit Runge-Kutta integrator: Dormand-Prince 5(4) ("RK45", the method
 * of scipy's solve_ivp default and MATLAB's ode45), float64, with local error control.
 *
 * Solves y' = f(t, y), y(t0) = y0 (n components) up to t1 (t1 >= t0; t1 == t0 returns y0 unchanged). Each step
 * takes the 5th-order solution (local extrapolation) and estimates the error by its difference from the embedded
 * 4th-order one; the step is accepted when the RMS of err_i / (atol + rtol * max(|y_i|, |y_new_i|)) is <= 1, and the
 * next step is h * min(10, max(0.2, 0.9 * err^(-1/5))) (0.2 floor only after a rejection, growth capped at 1 then).
 * The first step is chosen as in Hairer, Norsett & Wanner, "Solving ODEs I", II.4 (the algorithm solve_ivp uses).
 * The last step is shortened to land on t1 exactly. FSAL: the 7th stage of an accepted step is the next step's
 * first, so a step costs 6 evaluations of f. */
#ifndef NNLAB_DEEPONET_ODE_H
#define NNLAB_DEEPONET_ODE_H
#include "nnlab/base.h"
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NL_ODE_MAX_DIM 16

/* dydt[0..n) = f(t, y[0..n)); ud: the caller's data. */
typedef void (*nl_ode_fn)(double t, const double *y, double *dydt, void *ud);

typedef struct nl_ode_opts {
    double rtol, atol;   /* relative and absolute tolerances (> 0); scipy's defaults are 1e-3 and 1e-6 */
    double h0;           /* first step (0: chosen automatically) */
    double hmax;         /* largest step (0: t1 - t0) */
    int64_t max_steps;   /* accepted + rejected steps before giving up (0: 1000000) */
} nl_ode_opts;

typedef struct nl_ode_stats {
    int64_t steps;       /* accepted steps */
    int64_t rejected;    /* rejected steps */
    int64_t evals;       /* evaluations of f */
} nl_ode_stats;

/* rtol 1e-8, atol 1e-10, automatic first step, no step limit beyond t1 - t0, 1000000 steps. */
nl_ode_opts nl_ode_defaults(void);
/* Integrates from t0 to t1 in place (y[0..n): y(t0) in, y(t1) out). stats may be NULL. Errors: NL_EINVAL for
 * n outside 1..NL_ODE_MAX_DIM, t1 < t0, non-positive tolerances; NL_ENONFINITE when f returns a non-finite value
 * or the step underflows; NL_ESTATE after max_steps (y then holds the last accepted state). */
nl_status nl_ode_solve(nl_ode_fn f, void *ud, int n, double t0, double t1, double *y, const nl_ode_opts *opts,
                       nl_ode_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
