/* Deep kernel machines: the kernel map of a Gram matrix, the full and the sparse (inducing-point) objectives,
 * fitting by Adam and prediction (methods/dkm/dkm.h has the formulas). */
#include "dkm/dkm.h"
#include "kernels/kernels.h"
#include "nnlab/linalg.h"
#include "nnlab/ops.h"
#include "nnlab/optim.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DKM_STREAM_INDUCING ((uint64_t)0xD6A1ULL << 32)
#define DKM_GJIT 1e-10 /* added to every V V^T / P */

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

nl_var *nl_dkm_kmap(nl_ctx *c, nl_var *G, nl_var *d1, nl_var *d2) {
    static const double hyp_v[4] = {1.0, 0.0, 2.0, 0.0}; /* Dense(sw^2 1) -> ReLU -> Dense(sw^2 2): K_ii = G_ii */
    nl_kernel_cfg kc;
    nl_kernel_cfg_default(&kc);
    kc.depth = 1;
    kc.act = NL_KACT_RELU;
    int64_t four = 4;
    nl_var *hyp = nl_input(c, nl_tensor_wrap((void *)hyp_v, NL_F64, 1, &four));
    return nl_kernel_fc(c, &kc, NL_KERNEL_NNGP, G, d1, d2, hyp);
}

static nl_var *scalar_c(nl_ctx *c, double v) { return nl_scalar(c, NL_F64, v); }

/* KL(N(0, G) || N(0, K)) given chol(K) = LK, G [n, n] (needs its own Cholesky: G + tiny jitter). */
static nl_var *kl_gauss(nl_ctx *c, nl_var *LK, nl_var *G, double jitter) {
    if (!LK || !G) return NULL;
    double n = (double)G->val.shape[0];
    if (jitter > 0) G = nl_kernel_add_diag(c, G, scalar_c(c, jitter));
    nl_var *LG = nl_cholesky(c, G);
    nl_var *tr = nl_trace(c, nl_cho_solve(c, LK, G));
    nl_var *ld = nl_sub(c, nl_logdet_chol(c, LK), nl_logdet_chol(c, LG));
    return nl_mul_scalar(c, nl_add_scalar(c, nl_add(c, tr, ld), -n), 0.5);
}

nl_var *nl_dkm_full_objective(nl_ctx *c, nl_var *X, nl_var *Y, nl_var *const *G, int L, double nu, int linear_readout,
                              nl_var *log_a, nl_var *log_s2) {
    if (!X || !Y || !log_a || !log_s2) return NULL;
    int64_t n = X->val.shape[0], dd = X->val.shape[1], m = Y->val.ndim == 2 ? Y->val.shape[1] : 1;
    const double jit = 1e-8;
    nl_var *Gprev = nl_mul_scalar(c, nl_matmul_t(c, X, X, 0, 1), 1.0 / (double)dd); /* [n, n] G_0 */
    nl_var *kl = scalar_c(c, 0.0);
    for (int l = 0; l < L; l++) {
        nl_var *K = nl_kernel_add_diag(c, nl_dkm_kmap(c, Gprev, NULL, NULL), scalar_c(c, jit)); /* [n, n] */
        kl = nl_add(c, kl, kl_gauss(c, nl_cholesky(c, K), G[l], jit));
        Gprev = G[l];
    }
    nl_var *Kout = linear_readout ? Gprev : nl_mul(c, nl_exp(c, log_a), nl_dkm_kmap(c, Gprev, NULL, NULL));
    nl_var *C = nl_kernel_add_diag(c, Kout, nl_exp(c, log_s2)); /* [n, n] */
    nl_var *LC = nl_cholesky(c, C);
    nl_var *alpha = nl_trisolve(c, LC, Y, 1, 0);                 /* [n, m] */
    nl_var *quad = nl_sum(c, nl_square(c, alpha), NL_AXIS_ALL, 0);
    nl_var *lml = nl_mul_scalar(c, nl_add(c, quad, nl_mul_scalar(c, nl_logdet_chol(c, LC), (double)m)), -0.5);
    lml = nl_add_scalar(c, lml, -0.5 * (double)(n * m) * log(2 * M_PI));
    return nl_sub(c, lml, nl_mul_scalar(c, kl, nu));
}

nl_dkm_config nl_dkm_defaults(void) {
    nl_dkm_config c = {.layers = 2, .inducing = 100, .nu = 1.0, .nngp = 0, .steps = 300, .lr = 1e-2, .jitter = 1e-6,
                       .seed = 1, .verbose = 0};
    return c;
}

nl_status nl_dkm_config_check(const nl_dkm_config *cfg, int64_t n_train) {
    if (!(cfg->nu > 0) || !isfinite(cfg->nu))
        return nl_set_error(NL_EINVAL, "dkm: nu must be > 0 and finite (got %g)", cfg->nu);
    if (cfg->layers < 1 || cfg->layers > 16) return nl_set_error(NL_EINVAL, "dkm: layers must be in 1..16 (got %d)", cfg->layers);
    if (cfg->inducing < 1) return nl_set_error(NL_EINVAL, "dkm: inducing points must be >= 1");
    if (cfg->inducing > n_train)
        return nl_set_error(NL_EINVAL, "dkm: %lld inducing points but only %lld training points (need P <= N)",
                            (long long)cfg->inducing, (long long)n_train);
    if (!(cfg->lr > 0) || cfg->steps < 0 || !(cfg->jitter >= 0))
        return nl_set_error(NL_EINVAL, "dkm: bad lr / steps / jitter");
    return NL_OK;
}

/* The layers for rows xt [t, d]: fills the top layer's K_ii (jittered, scaled by a) chol LK [P, P], K_ti [t, P] and
 * k_t [t]; returns the summed KL (scalar) or NULL on error. */
static nl_var *sparse_layers(nl_ctx *c, nl_dkm_model *m, nl_var *Xt, nl_var **LK_out, nl_var **Kti_out, nl_var **kt_out) {
    const nl_dkm_config *cfg = &m->cfg;
    int64_t P = cfg->inducing;
    double invd = 1.0 / (double)m->d;
    nl_var *Z = &nl_params_find(&m->ps, "Z")->var;
    nl_var *Gii = nl_mul_scalar(c, nl_matmul_t(c, Z, Z, 0, 1), invd);              /* [P, P] */
    nl_var *Gti = nl_mul_scalar(c, nl_matmul_t(c, Xt, Z, 0, 1), invd);             /* [t, P] */
    nl_var *gt = nl_mul_scalar(c, nl_sum(c, nl_square(c, Xt), 1, 0), invd);        /* [t] */
    nl_var *kl = scalar_c(c, 0.0);
    nl_var *jit = scalar_c(c, cfg->jitter);
    for (int l = 0; l < cfg->layers; l++) {
        nl_var *Kii = nl_kernel_add_diag(c, nl_dkm_kmap(c, Gii, NULL, NULL), jit); /* [P, P] */
        nl_var *Kti = nl_dkm_kmap(c, Gti, gt, nl_diag(c, Gii));                    /* [t, P] */
        nl_var *LK = nl_cholesky(c, Kii);
        if (cfg->nngp) {
            Gii = Kii, Gti = Kti; /* g_t = k_t = g_t */
            continue;
        }
        char nm[16];
        snprintf(nm, sizeof nm, "V%d", l + 1);
        nl_var *V = &nl_params_find(&m->ps, nm)->var;
        nl_var *Gn = nl_kernel_add_diag(c, nl_mul_scalar(c, nl_matmul_t(c, V, V, 0, 1), 1.0 / (double)P),
                                        scalar_c(c, DKM_GJIT)); /* [P, P] */
        nl_var *At = nl_cho_solve(c, LK, nl_transpose(c, Kti, 0, 1));                /* [P, t] = K_ii^-1 K_it */
        nl_var *Gtn = nl_matmul_t(c, At, Gn, 1, 0);                                  /* [t, P] */
        nl_var *q = nl_sum(c, nl_mul(c, nl_transpose(c, At, 0, 1), Kti), 1, 0);      /* [t] diag(K_ti K_ii^-1 K_it) */
        nl_var *r = nl_sum(c, nl_mul(c, nl_transpose(c, At, 0, 1), Gtn), 1, 0);      /* [t] diag(A G A^T) */
        gt = nl_add(c, nl_sub(c, gt, q), r);
        kl = nl_add(c, kl, kl_gauss(c, LK, Gn, 0.0));
        Gii = Gn, Gti = Gtn;
    }
    nl_var *a = nl_exp(c, &nl_params_find(&m->ps, "log_a")->var);
    nl_var *Kii = nl_kernel_add_diag(c, nl_mul(c, a, nl_dkm_kmap(c, Gii, NULL, NULL)), jit);
    *Kti_out = nl_mul(c, a, nl_dkm_kmap(c, Gti, gt, nl_diag(c, Gii)));
    *kt_out = nl_mul(c, a, gt);
    *LK_out = nl_cholesky(c, Kii);
    return kl;
}

/* Objective per point (a scalar var). */
static nl_var *sparse_objective(nl_ctx *c, nl_dkm_model *m) {
    int64_t n = m->n, d = m->d, s1[2] = {n, d}, sy[2] = {n, 1};
    nl_var *X = nl_input(c, nl_tensor_wrap(m->xtr, NL_F64, 2, s1));
    nl_var *y = nl_input(c, nl_tensor_wrap(m->ytr, NL_F64, 2, sy));
    nl_var *LK, *Kti, *kt;
    nl_var *kl = sparse_layers(c, m, X, &LK, &Kti, &kt);
    if (!kl || !LK || !Kti || !kt) return NULL;
    int64_t P = m->cfg.inducing;
    nl_var *ls2 = &nl_params_find(&m->ps, "log_s2")->var;
    nl_var *s2 = nl_exp(c, ls2);
    nl_var *B = nl_trisolve(c, LK, nl_transpose(c, Kti, 0, 1), 1, 0);              /* [P, n] */
    nl_var *M = nl_kernel_add_diag(c, nl_div(c, nl_matmul_t(c, B, B, 0, 1), s2), scalar_c(c, 1.0)); /* [P, P] */
    nl_var *LM = nl_cholesky(c, M);
    nl_var *cvec = nl_trisolve(c, LM, nl_matmul(c, B, y), 1, 0);                    /* [P, 1] */
    nl_var *yy = nl_sum(c, nl_square(c, y), NL_AXIS_ALL, 0);
    nl_var *quad = nl_div(c, nl_sub(c, yy, nl_div(c, nl_sum(c, nl_square(c, cvec), NL_AXIS_ALL, 0), s2)), s2);
    nl_var *logdet = nl_add(c, nl_mul_scalar(c, ls2, (double)n), nl_logdet_chol(c, LM));
    nl_var *lml = nl_add_scalar(c, nl_mul_scalar(c, nl_add(c, quad, logdet), -0.5), -0.5 * (double)n * log(2 * M_PI));
    nl_var *trace = nl_sub(c, nl_sum(c, kt, NL_AXIS_ALL, 0), nl_sum(c, nl_square(c, B), NL_AXIS_ALL, 0));
    nl_var *obj = nl_sub(c, lml, nl_mul_scalar(c, nl_div(c, trace, s2), 0.5));
    (void)P;
    obj = nl_sub(c, obj, nl_mul_scalar(c, kl, m->cfg.nu));
    return nl_mul_scalar(c, obj, 1.0 / (double)n);
}

void nl_dkm_free(nl_dkm_model *m) {
    if (!m) return;
    if (m->ctx) nl_ctx_free(m->ctx);
    nl_params_free(&m->ps);
    free(m->xtr);
    free(m->ytr);
    memset(m, 0, sizeof *m);
}

nl_status nl_dkm_init(const nl_dkm_config *cfg, const double *x, const double *y, int64_t n, int64_t d, nl_dkm_model *m) {
    memset(m, 0, sizeof *m);
    nl_status st = nl_dkm_config_check(cfg, n);
    if (st) return st;
    if (d < 1) return nl_set_error(NL_EINVAL, "dkm: no features");
    m->cfg = *cfg;
    m->n = n, m->d = d;
    int64_t P = cfg->inducing;
    m->xtr = malloc((size_t)(n * d) * sizeof *m->xtr);
    m->ytr = malloc((size_t)n * sizeof *m->ytr);
    if (!m->xtr || !m->ytr) {
        nl_dkm_free(m);
        return nl_set_error(NL_ENOMEM, "dkm: out of memory");
    }
    memcpy(m->xtr, x, (size_t)(n * d) * sizeof *x);
    memcpy(m->ytr, y, (size_t)n * sizeof *y);
    if ((st = nl_params_init(&m->ps, NL_F64))) return st;
    int64_t sz[2] = {P, d}, sv[2] = {P, P}, one = 1;
    nl_params_add(&m->ps, "Z", 2, sz);
    char nm[16];
    for (int l = 0; !cfg->nngp && l < cfg->layers; l++) {
        snprintf(nm, sizeof nm, "V%d", l + 1);
        nl_params_add(&m->ps, nm, 2, sv);
    }
    nl_params_add(&m->ps, "log_a", 1, &one);
    if (!nl_params_add(&m->ps, "log_s2", 1, &one)) {
        st = nl_set_error(NL_ENOMEM, "dkm: %s", nl_last_error());
        nl_dkm_free(m);
        return st;
    }
    /* inducing points: a seeded subset of the training rows; a = 1, s2 = 0.1 */
    int64_t *perm = malloc((size_t)n * sizeof *perm); /* (n) */
    if (!perm) {
        nl_dkm_free(m);
        return nl_set_error(NL_ENOMEM, "dkm: out of memory");
    }
    nl_rng r;
    nl_rng_init(&r, cfg->seed, DKM_STREAM_INDUCING);
    nl_rng_permutation(&r, perm, n);
    double *Z = nl_params_find(&m->ps, "Z")->var.val.data;
    for (int64_t i = 0; i < P; i++) memcpy(Z + i * d, x + perm[i] * d, (size_t)d * sizeof *Z);
    free(perm);
    *(double *)nl_params_find(&m->ps, "log_a")->var.val.data = 0.0;
    *(double *)nl_params_find(&m->ps, "log_s2")->var.val.data = log(0.1);
    if (cfg->nngp) return NL_OK;
    /* V_l = chol(K_ii^l) sqrt(P) along the NNGP chain, so that G_ii^l = K_ii^l exactly */
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    if (!c) {
        nl_dkm_free(m);
        return nl_set_error(NL_ENOMEM, "dkm: out of memory");
    }
    int gprev = nl_set_grad_enabled(c, 0);
    nl_var *Zv = &nl_params_find(&m->ps, "Z")->var;
    nl_var *Gii = nl_mul_scalar(c, nl_matmul_t(c, Zv, Zv, 0, 1), 1.0 / (double)d);
    for (int l = 0; l < cfg->layers && !st; l++) {
        /* chol(K_ii - 1e-10 I): G_ii = V V^T / P + 1e-10 I (the Gram's own jitter) is then exactly K_ii */
        nl_var *LK = nl_cholesky(c, nl_kernel_add_diag(c, nl_dkm_kmap(c, Gii, NULL, NULL), scalar_c(c, cfg->jitter - DKM_GJIT)));
        if (!LK) {
            st = nl_last_status() ? nl_last_status() : NL_ELINALG;
            break;
        }
        snprintf(nm, sizeof nm, "V%d", l + 1);
        nl_var *V = &nl_params_find(&m->ps, nm)->var;
        const double *lk = LK->val.data;
        double *v = V->val.data, sp = sqrt((double)P);
        for (int64_t i = 0; i < P * P; i++) v[i] = lk[i] * sp;
        Gii = nl_kernel_add_diag(c, nl_mul_scalar(c, nl_matmul_t(c, V, V, 0, 1), 1.0 / (double)P), scalar_c(c, DKM_GJIT));
    }
    nl_set_grad_enabled(c, gprev);
    nl_ctx_free(c);
    if (st) nl_dkm_free(m);
    return st;
}

nl_status nl_dkm_eval(nl_dkm_model *m, int grad, double *obj) {
    if (!m->ctx && !(m->ctx = nl_ctx_new(1 << 22, 0))) return nl_set_error(NL_ENOMEM, "dkm: out of memory");
    nl_ctx *c = m->ctx;
    nl_ctx_reset(c);
    int prev = nl_set_grad_enabled(c, grad);
    nl_params_zero_grad(&m->ps);
    nl_var *o = sparse_objective(c, m);
    nl_status st = o ? NL_OK : (nl_last_status() ? nl_last_status() : NL_ELINALG);
    if (!st && grad) st = nl_backward(c, nl_mul_scalar(c, o, -1.0));
    if (!st) *obj = nl_item(o);
    nl_set_grad_enabled(c, prev);
    return st;
}

nl_status nl_dkm_fit(const nl_dkm_config *cfg, const double *x, const double *y, int64_t n, int64_t d, nl_dkm_model *m) {
    double t0 = cpu_seconds();
    nl_status st = nl_dkm_init(cfg, x, y, n, d, m);
    if (st) return st;
    nl_optim opt;
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
    oc.lr = cfg->lr;
    if ((st = nl_optim_init(&opt, &m->ps, &oc))) {
        nl_dkm_free(m);
        return st;
    }
    nl_ctx *c = nl_ctx_new(1 << 24, 0);
    if (!c) st = nl_set_error(NL_ENOMEM, "dkm: out of memory");
    for (int64_t it = 0; !st && it < cfg->steps; it++) {
        nl_ctx_reset(c);
        nl_params_zero_grad(&m->ps);
        nl_var *o = sparse_objective(c, m);
        if (!o) {
            st = nl_last_status() ? nl_last_status() : NL_ELINALG;
            break;
        }
        m->objective = nl_item(o);
        if ((st = nl_backward(c, nl_mul_scalar(c, o, -1.0)))) break;
        if ((st = nl_optim_step(&opt))) break;
        if (cfg->verbose && (it % 50 == 0 || it + 1 == cfg->steps))
            nl_progress("dkm step %lld: objective/N %.5f", (long long)it, m->objective);
    }
    if (c) nl_ctx_free(c);
    nl_optim_free(&opt);
    if (st) {
        nl_set_error(st, "dkm fit: %s", nl_last_error());
        nl_dkm_free(m);
        return st;
    }
    m->seconds = cpu_seconds() - t0;
    return NL_OK;
}

nl_status nl_dkm_predict(nl_dkm_model *m, const double *xt, int64_t t, double *mean, double *var) {
    nl_ctx *c = nl_ctx_new(1 << 22, 0);
    if (!c) return nl_set_error(NL_ENOMEM, "dkm: out of memory");
    nl_set_grad_enabled(c, 0);
    int64_t n = m->n, d = m->d, s1[2] = {n, d}, sy[2] = {n, 1}, s3[2] = {t, d};
    nl_var *X = nl_input(c, nl_tensor_wrap(m->xtr, NL_F64, 2, s1));
    nl_var *y = nl_input(c, nl_tensor_wrap(m->ytr, NL_F64, 2, sy));
    nl_var *Xs = nl_input(c, nl_tensor_wrap((void *)xt, NL_F64, 2, s3));
    nl_var *LK, *Kti, *kt, *LK2, *Ksi, *ks;
    nl_var *k1 = sparse_layers(c, m, X, &LK, &Kti, &kt);
    nl_var *k2 = k1 ? sparse_layers(c, m, Xs, &LK2, &Ksi, &ks) : NULL;
    nl_status st = NL_OK;
    if (!k1 || !k2 || !LK || !Ksi) st = nl_last_status() ? nl_last_status() : NL_ELINALG;
    if (!st) {
        nl_var *s2 = nl_exp(c, &nl_params_find(&m->ps, "log_s2")->var);
        nl_var *B = nl_trisolve(c, LK, nl_transpose(c, Kti, 0, 1), 1, 0);          /* [P, n] */
        nl_var *Bs = nl_trisolve(c, LK, nl_transpose(c, Ksi, 0, 1), 1, 0);         /* [P, t] */
        nl_var *M = nl_kernel_add_diag(c, nl_div(c, nl_matmul_t(c, B, B, 0, 1), s2), scalar_c(c, 1.0));
        nl_var *LM = nl_cholesky(c, M);
        nl_var *cv = nl_div(c, nl_trisolve(c, LM, nl_matmul(c, B, y), 1, 0), s2); /* [P, 1] */
        nl_var *Ws = nl_trisolve(c, LM, Bs, 1, 0);                                  /* [P, t] */
        nl_var *mu = nl_matmul_t(c, Ws, cv, 1, 0);                                  /* [t, 1] */
        nl_var *v = nl_add(c, nl_sub(c, ks, nl_sum(c, nl_square(c, Bs), 0, 0)), nl_sum(c, nl_square(c, Ws), 0, 0));
        v = nl_add(c, v, s2);                                                       /* [t] */
        if (!mu || !v) st = nl_last_status() ? nl_last_status() : NL_ELINALG;
        else {
            const double *pm = mu->val.data, *pv = v->val.data;
            for (int64_t i = 0; i < t; i++) mean[i] = pm[i], var[i] = pv[i];
        }
    }
    nl_ctx_free(c);
    return st;
}

double nl_dkm_loglik(const double *y, const double *mean, const double *var, int64_t t) {
    double s = 0;
    for (int64_t i = 0; i < t; i++) {
        double r = y[i] - mean[i];
        s += -0.5 * log(2 * M_PI * var[i]) - 0.5 * r * r / var[i];
    }
    return s / (double)t;
}
