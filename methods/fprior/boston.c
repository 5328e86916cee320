/* fprior/boston.c — one Boston housing split (the python3-sklearn table through nl_uci_load, fixed random 90/10 split,
 * standardised): fit the prior to the reference's hierarchical GP, then SGHMC under the fitted, N(0,1) and unfitted
 * priors; test NLL / RMSE in original units and R-hat (fprior_internal.h). */
#include "fprior/fprior_internal.h"
#include "nnlab/data.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_status fp_boston_run(const fp_cfg *c, int split, fp_boston_out *o) {
    nl_uci u, tr, te;
    memset(&u, 0, sizeof u), memset(&tr, 0, sizeof tr), memset(&te, 0, sizeof te);
    double ym = 0, ys = 1;
    nl_status s = nl_uci_load(&u, "boston", NULL);
    if (!s) s = nl_uci_split(&u, 0.1, (uint64_t)split, &tr, &te, &ym, &ys);
    nl_uci_free(&u);
    if (s) return nl_uci_free(&tr), nl_uci_free(&te), s;
    const int d = (int)tr.d;
    o->ntr = tr.n, o->nte = te.n, o->d = d;
    double lo[NL_FP_MAX_DIM], hi[NL_FP_MAX_DIM];
    for (int i = 0; i < d; i++) lo[i] = INFINITY, hi[i] = -INFINITY;
    for (int64_t k = 0; k < tr.n + te.n; k++) { /* the box over training and test inputs, as the reference */
        const double *r = k < tr.n ? tr.x + k * d : te.x + (k - tr.n) * d;
        for (int i = 0; i < d; i++) lo[i] = fmin(lo[i], r[i]), hi[i] = fmax(hi[i], r[i]);
    }
    nl_fp_arch a = {d, c->width, 1};
    nl_fp_gp gp = {d, 1, sqrt(2.0 * d), 1.0, 1.0, 0.1, 1.0};
    nl_fp_prior fit = nl_fp_prior_init(&a, 1.0), n01 = nl_fp_prior_fixed(1.0), unfit = nl_fp_prior_init(&a, 1.0);
    double t0 = nl_fp_cpu_seconds();
    const uint64_t seed = 1000 + (uint64_t)split;
    if (!s) s = nl_fp_fit(&a, &fit, &gp, &c->fit, tr.x, tr.n, lo, hi, seed, NULL);
    o->rw = nl_fp_softplus(fit.rw[0]), o->rb = nl_fp_softplus(fit.rb[0]);
    const nl_fp_sghmc_cfg *sc = &c->sghmc;
    const int S = sc->chains * sc->samples, M = c->fit.n_meas;
    double *pred = malloc(sizeof(double) * (size_t)S * (size_t)te.n); /* [S, nte] */
    double *xm = malloc(sizeof(double) * (size_t)M * d);              /* [M, d] */
    if (!s && (!pred || !xm)) s = nl_set_error(NL_ENOMEM, "fprior boston: out of memory");
    if (!s) {
        nl_rng r;
        nl_rng_init(&r, seed, 9);
        nl_fp_measure_set(&r, tr.x, tr.n, d, lo, hi, M, c->fit.frac_train, xm);
        double m[4];
        if (!(s = nl_fp_marginals(&a, &fit, &gp, xm, M, c->marg_fn, seed + 1, m))) o->sd_err = m[0], o->w1 = m[1];
    }
    const nl_fp_prior *pr[3] = {&fit, &n01, &unfit};
    for (int k = 0; k < 3 && !s; k++) {
        if ((s = nl_fp_sghmc(&a, pr[k], sc, tr.x, tr.y, tr.n, te.x, te.n, seed + 17, pred))) break;
        double nll = 0, se = 0;
        for (int64_t q = 0; q < te.n; q++) {
            double mu = 0, v = 0;
            for (int t = 0; t < S; t++) mu += pred[(int64_t)t * te.n + q] / S;
            for (int t = 0; t < S; t++) v += (pred[(int64_t)t * te.n + q] - mu) * (pred[(int64_t)t * te.n + q] - mu) / S;
            double var = (v + sc->noise_var) * ys * ys, m0 = mu * ys + ym, yt = te.y[q] * ys + ym; /* original units */
            nll += 0.5 * log(2 * M_PI * var) + 0.5 * (yt - m0) * (yt - m0) / var, se += (yt - m0) * (yt - m0);
        }
        o->nll[k] = nll / te.n, o->rmse[k] = sqrt(se / te.n);
        o->rhat[k] = nl_fp_rhat(pred, sc->chains, sc->samples, te.n, NULL);
    }
    o->seconds = nl_fp_cpu_seconds() - t0;
    free(pred), free(xm);
    nl_uci_free(&tr), nl_uci_free(&te);
    return s;
}
