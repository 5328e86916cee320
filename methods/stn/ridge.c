/* Ridge regression with an STN: the one case where the best response w*(lambda) = (X^T X + n lambda I)^{-1} X^T y has a
 * closed form, so the tuned log lambda can be compared with a grid of exact validation losses (stn/stn.h). */
#include "stn/stn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_stn_ridge_cfg nl_stn_ridge_defaults(void) {
    nl_stn_ridge_cfg c = {.steps = 4000, .train_steps = 2, .valid_steps = 1, .lr_w = 0.02, .momentum = 0.9,
                          .lr_t = 0.01, .lr_q = 0.01, .tau = 1e-3, .t0 = 0.0, .scale0 = 0.5, .seed = 1};
    return c;
}

/* MSE loss of f [n] against y [n]; d [n] = its gradient dL/df */
static double mse(const float *f, const float *y, int64_t n, float *d) {
    double L = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)f[i] - y[i];
        L += e * e;
        if (d) d[i] = (float)(2 * e / (double)n);
    }
    return L / (double)n;
}

nl_status nl_stn_ridge_tune(const nl_stn_ridge_cfg *cfg, const float *X, const float *y, int64_t n, const float *Xv,
                            const float *yv, int64_t nv, int64_t d, double *log_lambda) {
    if (n < 1 || nv < 1 || d < 1 || cfg->train_steps < 1 || cfg->valid_steps < 0)
        return nl_set_error(NL_EINVAL, "stn ridge: bad sizes or step counts");
    nl_rng r;
    nl_rng_init(&r, cfg->seed, 0x5717);
    nl_stn_linear l;
    nl_status s = nl_stn_linear_init(&l, d, 1, 1, &r);
    if (s) return s;
    l.be[0] = l.bh[0] = 0; /* no bias: f = w(h)^T x */
    int64_t m = n > nv ? n : nv;
    float *h = malloc((size_t)m * sizeof(float));       /* [m, 1] */
    float *eps = malloc((size_t)m * sizeof(float));     /* [m, 1] */
    float *lam = malloc((size_t)m * sizeof(float));     /* [m] */
    float *f = malloc((size_t)m * sizeof(float));       /* [m, 1] */
    float *df = malloc((size_t)m * sizeof(float));      /* [m, 1] */
    float *ag = malloc((size_t)m * 2 * sizeof(float));  /* [m, 2] */
    float *zc = malloc((size_t)m * 2 * sizeof(float));  /* [m, 2] */
    float *dz = malloc((size_t)m * 2 * sizeof(float));  /* [m, 2] */
    float *sc = malloc((size_t)m * 2 * sizeof(float));  /* [m, 2] */
    float *dh = malloc((size_t)m * sizeof(float));      /* [m, 1] */
    if (!h || !eps || !lam || !f || !df || !ag || !zc || !dz || !sc || !dh) {
        s = nl_set_error(NL_ENOMEM, "stn ridge: out of memory");
        goto done;
    }
    nl_stn_tuner tu;
    nl_stn_tuner_init(&tu, 1, &cfg->t0, cfg->scale0, cfg->lr_t, cfg->lr_q, cfg->tau);
    for (int64_t c = 0; c < cfg->steps; c++) {
        for (int k = 0; k < cfg->train_steps; k++) { /* weight step: perturbed, training loss + L2 */
            nl_stn_tuner_sample(&tu, n, 1, &r, h, eps);
            for (int64_t i = 0; i < n; i++) lam[i] = (float)exp(h[i]);
            nl_stn_linear_zero_grad(&l);
            nl_stn_linear_forward(&l, n, X, h, f, ag, zc);
            mse(f, y, n, df);
            memset(dz, 0, (size_t)n * 2 * sizeof(float));
            nl_stn_linear_l2(&l, n, lam, zc, 1.0, dz);
            nl_stn_linear_backward(&l, n, X, h, ag, zc, df, dz, NULL, NULL, sc);
            nl_stn_linear_sgd(&l, cfg->lr_w, cfg->momentum, 0);
        }
        for (int k = 0; k < cfg->valid_steps; k++) {
            /* hyper step: unperturbed t, validation MSE, Adam on t */
            nl_stn_tuner_sample(&tu, nv, 0, &r, h, NULL);
            nl_stn_linear_zero_grad(&l);
            nl_stn_linear_forward(&l, nv, Xv, h, f, ag, zc);
            mse(f, yv, nv, df);
            nl_stn_linear_backward(&l, nv, Xv, h, ag, zc, df, NULL, NULL, dh, sc);
            nl_stn_tuner_step_t(&tu, nv, dh);
            /* scale step: perturbed t, validation MSE - tau H, Adam on q */
            nl_stn_tuner_sample(&tu, nv, 1, &r, h, eps);
            nl_stn_linear_zero_grad(&l);
            nl_stn_linear_forward(&l, nv, Xv, h, f, ag, zc);
            mse(f, yv, nv, df);
            nl_stn_linear_backward(&l, nv, Xv, h, ag, zc, df, NULL, NULL, dh, sc);
            nl_stn_tuner_step_q(&tu, nv, dh, eps);
        }
        if (!isfinite(tu.t[0])) {
            s = nl_set_error(NL_ENONFINITE, "stn ridge: log lambda diverged at cycle %lld", (long long)c);
            goto done;
        }
    }
    *log_lambda = tu.t[0];
done:
    free(h), free(eps), free(lam), free(f), free(df), free(ag), free(zc), free(dz), free(sc), free(dh);
    nl_stn_linear_free(&l);
    return s;
}

nl_status nl_stn_ridge_val_loss(const float *X, const float *y, int64_t n, const float *Xv, const float *yv, int64_t nv,
                                int64_t d, double log_lambda, double *loss) {
    double *A = calloc((size_t)(d * (d + 1)), sizeof(double)); /* [d, d+1] augmented system */
    if (!A) return nl_set_error(NL_ENOMEM, "stn ridge: out of memory");
    double lam = exp(log_lambda);
    for (int64_t i = 0; i < n; i++)
        for (int64_t a = 0; a < d; a++) {
            double xa = X[i * d + a];
            for (int64_t b = 0; b < d; b++) A[a * (d + 1) + b] += xa * X[i * d + b];
            A[a * (d + 1) + d] += xa * y[i];
        }
    for (int64_t a = 0; a < d; a++) A[a * (d + 1) + a] += (double)n * lam;
    for (int64_t c = 0; c < d; c++) { /* Gaussian elimination, SPD so no pivoting needed */
        double p = A[c * (d + 1) + c];
        if (!(p > 0)) {
            free(A);
            return nl_set_error(NL_ELINALG, "stn ridge: singular system");
        }
        for (int64_t r2 = c + 1; r2 < d; r2++) {
            double f = A[r2 * (d + 1) + c] / p;
            for (int64_t k = c; k <= d; k++) A[r2 * (d + 1) + k] -= f * A[c * (d + 1) + k];
        }
    }
    for (int64_t c = d - 1; c >= 0; c--) {
        double v = A[c * (d + 1) + d];
        for (int64_t k = c + 1; k < d; k++) v -= A[c * (d + 1) + k] * A[k * (d + 1) + d];
        A[c * (d + 1) + d] = v / A[c * (d + 1) + c];
    }
    double L = 0;
    for (int64_t i = 0; i < nv; i++) {
        double f = 0;
        for (int64_t a = 0; a < d; a++) f += A[a * (d + 1) + d] * Xv[i * d + a];
        L += (f - yv[i]) * (f - yv[i]);
    }
    *loss = L / (double)nv;
    free(A);
    return NL_OK;
}
