/* Student-t process regression over NNGP kernels: the multivariate-t likelihood from engine ops, Adam fitting
 * of the hyperparameters through the differentiable NNGP kernel op, and the Student-t predictive
 * (include/student_t_process/student_t_process.h, methods/student_t_process/README.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nnlab/extend.h"
#include "nnlab/linalg.h"
#include "nnlab/ops.h"
#include "nnlab/optim.h"
#include "student_t_process/student_t_process.h"

double nl_student_t_process_digamma(double x) {
    if (!(x > 0)) return NAN;
    double r = 0;
    while (x < 10) { /* psi(x) = psi(x + 1) - 1/x */
        r -= 1 / x;
        x += 1;
    }
    double f = 1 / (x * x);
    /* asymptotic series: log x - 1/(2x) - sum B_2k / (2k x^2k) */
    double t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132 + f * (691.0 / 32760 - f / 12))))));
    return r + log(x) - 0.5 / x + t;
}

double nl_student_t_process_student_t_logpdf(double y, double nu, double mu, double s2) {
    double z = (y - mu) * (y - mu) / s2;
    return lgamma(0.5 * (nu + 1)) - lgamma(0.5 * nu) - 0.5 * log(nu * M_PI * s2) - 0.5 * (nu + 1) * log1p(z / nu);
}

double nl_student_t_process_normal_logpdf(double y, double mu, double var) {
    return -0.5 * log(2 * M_PI * var) - 0.5 * (y - mu) * (y - mu) / var;
}

/* ---- lgamma(a + k) - lgamma(a) ---- */
static void lgd_backward(nl_ctx *c, nl_node *nd) {
    nl_tensor *ga = nl_grad(c, nd->in[0]);
    if (!ga) return;
    nl_tensor a = nl_contig(c, &nd->in[0]->val);
    if (!a.data) return;
    const double *go = nl_node_grad_out(nd)->data, *av = a.data;
    double *g = ga->data, k = nd->f[0];
    int64_t m = nl_tensor_numel(&a);
    for (int64_t i = 0; i < m; i++) g[i] += go[i] * (nl_student_t_process_digamma(av[i] + k) - nl_student_t_process_digamma(av[i]));
}

nl_var *nl_student_t_process_lgamma_diff(nl_ctx *c, nl_var *a, double k) {
    NL_REQUIRE(a);
    if (a->val.dtype != NL_F64) return nl_op_fail(NL_EDTYPE, "lgamma_diff", "needs f64", a, NULL);
    nl_var *out = nl_op_out(c, NL_F64, a->val.ndim, a->val.shape);
    if (!out) return NULL;
    nl_tensor av = nl_contig(c, &a->val);
    if (!av.data) return NULL;
    int64_t m = nl_tensor_numel(&av);
    const double *x = av.data;
    double *o = out->val.data;
    for (int64_t i = 0; i < m; i++) {
        if (!(x[i] > 0)) return nl_op_fail(NL_EINVAL, "lgamma_diff", "needs a > 0", a, NULL);
        o[i] = lgamma(x[i] + k) - lgamma(x[i]);
    }
    nl_node *nd = nl_op_record(c, "lgamma_diff", out, lgd_backward, 1, &a);
    if (nd) nd->f[0] = k;
    return out;
}

/* q = y^T A^{-1} y and log det A from the Cholesky factor */
static nl_var *quad_form(nl_ctx *c, nl_var *L, nl_var *y) {
    nl_var *al = nl_cho_solve(c, L, y);
    return nl_sum(c, nl_mul(c, y, al), NL_AXIS_ALL, 0);
}

nl_var *nl_student_t_process_mvt_nll(nl_ctx *c, nl_var *L, nl_var *y, nl_var *alpha, nl_var *beta) {
    NL_REQUIRE(L, y, alpha, beta);
    if (L->val.ndim != 2) return nl_op_fail(NL_ESHAPE, "mvt_nll", "L must be [n, n]", L, y);
    double n = (double)L->val.shape[0];
    nl_var *q = quad_form(c, L, y);
    nl_var *ld = nl_logdet_chol(c, L);
    nl_var *a = nl_sum(c, alpha, NL_AXIS_ALL, 0), *b = nl_sum(c, beta, NL_AXIS_ALL, 0);
    nl_var *lg = nl_student_t_process_lgamma_diff(c, a, 0.5 * n);
    /* (alpha + n/2) log(1 + q / (2 beta)) */
    nl_var *lt = nl_mul(c, nl_add_scalar(c, a, 0.5 * n), nl_log(c, nl_add_scalar(c, nl_div(c, nl_mul_scalar(c, q, 0.5), b), 1.0)));
    nl_var *r = nl_add(c, nl_neg(c, lg), nl_mul_scalar(c, nl_log(c, b), 0.5 * n));
    r = nl_add(c, r, nl_mul_scalar(c, ld, 0.5));
    r = nl_add(c, r, lt);
    return nl_add_scalar(c, r, 0.5 * n * log(2 * M_PI));
}

nl_var *nl_student_t_process_gauss_nll(nl_ctx *c, nl_var *L, nl_var *y) {
    NL_REQUIRE(L, y);
    if (L->val.ndim != 2) return nl_op_fail(NL_ESHAPE, "gauss_nll", "L must be [n, n]", L, y);
    double n = (double)L->val.shape[0];
    nl_var *q = quad_form(c, L, y), *ld = nl_logdet_chol(c, L);
    return nl_add_scalar(c, nl_add(c, nl_mul_scalar(c, q, 0.5), nl_mul_scalar(c, ld, 0.5)), 0.5 * n * log(2 * M_PI));
}

nl_var *nl_student_t_process_nll_graph(nl_ctx *c, const nl_kernel_cfg *kcfg, int student, nl_var *K0, nl_var *y, nl_var *logp) {
    NL_REQUIRE(K0, y, logp);
    if (nl_tensor_numel(&logp->val) != 5) return nl_op_fail(NL_ESHAPE, "stp_nll", "logp must have 5 entries", logp, NULL);
    nl_var *hyp = nl_exp(c, nl_slice(c, logp, 0, 0, 2, 1));
    nl_var *noise = nl_exp(c, nl_slice(c, logp, 0, 2, 3, 1));
    nl_var *K = nl_kernel_fc(c, kcfg, NL_KERNEL_NNGP, K0, NULL, NULL, hyp);
    nl_var *L = nl_cholesky(c, nl_kernel_add_diag(c, K, noise));
    if (!student) return nl_student_t_process_gauss_nll(c, L, y);
    nl_var *al = nl_exp(c, nl_slice(c, logp, 0, 3, 4, 1)), *be = nl_exp(c, nl_slice(c, logp, 0, 4, 5, 1));
    return nl_student_t_process_mvt_nll(c, L, y, al, be);
}

void nl_student_t_process_fit_cfg_default(nl_student_t_process_fit_cfg *cfg) {
    memset(cfg, 0, sizeof *cfg);
    nl_kernel_cfg_default(&cfg->kcfg);
    cfg->kcfg.depth = 2;
    cfg->student = 1;
    cfg->steps = 300;
    cfg->lr = 0.05;
    cfg->init = (nl_student_t_process_hyp){1.0, 0.1, 0.1, 2.0, 2.0};
}

static void gram_over_d(const double *X, int64_t n, const double *Y, int64_t m, int64_t d, double *K) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            double s = 0;
            for (int64_t k = 0; k < d; k++) s += X[i * d + k] * Y[j * d + k];
            K[i * m + j] = s / (double)d;
        }
}

nl_status nl_student_t_process_fit(const nl_student_t_process_fit_cfg *cfg, const double *X, int64_t n, int64_t d, const double *y, nl_student_t_process_hyp *out,
                     double *curve) {
    if (!cfg || !X || !y || !out || n < 2 || d < 1 || cfg->steps < 0 || !(cfg->lr > 0))
        return nl_set_error(NL_EINVAL, "stp_fit: bad arguments (n=%lld, d=%lld)", (long long)n, (long long)d);
    const nl_student_t_process_hyp *h0 = &cfg->init;
    if (!(h0->sw2 > 0 && h0->sb2 > 0 && h0->noise > 0 && h0->alpha > 0 && h0->beta > 0))
        return nl_set_error(NL_EINVAL, "stp_fit: initial hyperparameters must be positive");
    double *K0 = malloc((size_t)(n * n) * sizeof *K0);
    if (!K0) return nl_set_error(NL_ENOMEM, "stp_fit: out of memory");
    gram_over_d(X, n, X, n, d, K0);
    nl_params ps;
    nl_status st = nl_params_init(&ps, NL_F64);
    if (st) { free(K0); return st; }
    int64_t five = 5;
    nl_var *lp = nl_params_add(&ps, "logp", 1, &five);
    nl_ctx *c = nl_ctx_new(1 << 22, 0);
    nl_optim opt;
    int have_opt = 0;
    if (!lp || !c) { st = nl_set_error(NL_ENOMEM, "stp_fit: out of memory"); goto done; }
    double *p = ps.data;
    p[0] = log(h0->sw2), p[1] = log(h0->sb2), p[2] = log(h0->noise), p[3] = log(h0->alpha), p[4] = log(h0->beta);
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
    oc.lr = cfg->lr;
    if ((st = nl_optim_init(&opt, &ps, &oc))) goto done;
    have_opt = 1;
    int64_t sn[2] = {n, n};
    for (int64_t s = 0; s <= cfg->steps; s++) {
        nl_ctx_reset(c);
        nl_params_zero_grad(&ps);
        nl_var *K0v = nl_input(c, nl_tensor_wrap(K0, NL_F64, 2, sn));
        nl_var *yv = nl_input(c, nl_tensor_wrap((void *)y, NL_F64, 1, &n));
        nl_var *nll = nl_student_t_process_nll_graph(c, &cfg->kcfg, cfg->student, K0v, yv, lp);
        if (!nll) { st = nl_last_status() ? nl_last_status() : NL_EINVAL; goto done; }
        double v = nl_item(nll);
        if (curve) curve[s] = v / (double)n;
        if (!isfinite(v)) { st = nl_set_error(NL_ENONFINITE, "stp_fit: non-finite NLL at step %lld", (long long)s); goto done; }
        if (s == cfg->steps) break;
        if ((st = nl_backward(c, nll))) goto done;
        if ((st = nl_optim_step(&opt))) goto done;
    }
    out->sw2 = exp(p[0]), out->sb2 = exp(p[1]), out->noise = exp(p[2]);
    out->alpha = cfg->student ? exp(p[3]) : INFINITY;
    out->beta = cfg->student ? exp(p[4]) : INFINITY;
done:
    if (have_opt) nl_optim_free(&opt);
    if (c) nl_ctx_free(c);
    nl_params_free(&ps);
    free(K0);
    return st;
}

nl_status nl_student_t_process_predict(const nl_kernel_cfg *kcfg, int student, const nl_student_t_process_hyp *h, const double *X, int64_t n,
                         int64_t d, const double *y, const double *Xs, int64_t t, double *mean, double *scale2, double *nu) {
    if (!kcfg || !h || !X || !y || !Xs || !mean || !scale2 || n < 1 || t < 1 || d < 1)
        return nl_set_error(NL_EINVAL, "stp_predict: bad arguments");
    nl_kernel_cfg kc = *kcfg;
    kc.sw = sqrt(h->sw2), kc.sb = sqrt(h->sb2), kc.sw_out = -1, kc.sb_out = -1;
    double *K = malloc((size_t)(n * n + t * n + t * t + t) * sizeof *K);
    if (!K) return nl_set_error(NL_ENOMEM, "stp_predict: out of memory");
    double *Ks = K + n * n, *Kss = Ks + t * n, *var = Kss + t * t;
    nl_gp gp;
    nl_status st = nl_kernel_matrix(&kc, X, n, NULL, n, d, NL_KERNEL_NNGP, NL_F64, K, NULL, 0);
    if (!st) st = nl_kernel_matrix(&kc, Xs, t, X, n, d, NL_KERNEL_NNGP, NL_F64, Ks, NULL, 0);
    if (!st) st = nl_kernel_matrix(&kc, Xs, t, NULL, t, d, NL_KERNEL_NNGP, NL_F64, Kss, NULL, 0);
    if (st) { free(K); return st; }
    for (int64_t i = 0; i < t; i++) Kss[i] = Kss[i * t + i]; /* diagonal into the first t slots */
    if ((st = nl_gp_fit(&gp, K, n, y, 1, 0.0, h->noise, 0))) { free(K); return st; }
    if (!(st = nl_gp_predict(&gp, Ks, t, mean))) st = nl_gp_variance(&gp, Ks, Kss, t, var);
    if (!st) {
        double f = student ? (2 * h->beta + gp.quad) / (2 * h->alpha + (double)n) : 1.0;
        for (int64_t i = 0; i < t; i++) scale2[i] = f * (fmax(var[i], 0.0) + h->noise);
        if (nu) *nu = student ? 2 * h->alpha + (double)n : INFINITY;
    }
    nl_gp_free(&gp);
    free(K);
    return st;
}

double nl_student_t_process_test_nll(const double *ys, const double *mean, const double *scale2, double nu, int64_t t) {
    double s = 0;
    for (int64_t i = 0; i < t; i++)
        s -= isfinite(nu) ? nl_student_t_process_student_t_logpdf(ys[i], nu, mean[i], scale2[i]) : nl_student_t_process_normal_logpdf(ys[i], mean[i], scale2[i]);
    return s / (double)t;
}
