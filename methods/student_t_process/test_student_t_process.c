/* Student-t process over NNGP kernels (include/student_t_process/student_t_process.h): the alpha -> inf limit, the multivariate-t density
 * against closed forms, gradients, the predictive mean, and a quick syn-t run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nltest.h"
#include "nnlab/gradcheck.h"
#include "nnlab/linalg.h"
#include "nnlab/ops.h"
#include "nnlab/rng.h"
#include "student_t_process/student_t_process.h"

static double *randn(uint64_t seed, int64_t n, double s) {
    nl_rng r;
    nl_rng_init(&r, seed, 0);
    double *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = s * nl_rng_normal(&r);
    return v;
}

/* SPD A = B B^T / m + 0.5 I (n, n) */
static double *spd(uint64_t seed, int64_t n) {
    double *B = randn(seed, n * n, 1.0), *A = malloc((size_t)(n * n) * sizeof *A);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) s += B[i * n + k] * B[j * n + k];
            A[i * n + j] = s / (double)n + (i == j ? 0.5 : 0.0);
        }
    free(B);
    return A;
}

static double mvt_nll_value(const double *A, int64_t n, const double *y, double alpha, double beta) {
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    int64_t s[2] = {n, n};
    nl_var *L = nl_cholesky(c, nl_input(c, nl_tensor_wrap((void *)A, NL_F64, 2, s)));
    nl_var *v = nl_student_t_process_mvt_nll(c, L, nl_input(c, nl_tensor_wrap((void *)y, NL_F64, 1, &n)), nl_scalar(c, NL_F64, alpha),
                           nl_scalar(c, NL_F64, beta));
    double r = v ? nl_item(v) : NAN;
    NLT_CHECK(v != NULL, "mvt_nll: %s", nl_last_error());
    nl_ctx_free(c);
    return r;
}

static void test_digamma(void) {
    NLT_NEAR(nl_student_t_process_digamma(1.0), -0.57721566490153286, 1e-12);
    NLT_NEAR(nl_student_t_process_digamma(0.5), -1.96351002602142348, 1e-12);
    NLT_NEAR(nl_student_t_process_digamma(10.0), 2.25175258906672111, 1e-12);
    /* psi(x + 1) = psi(x) + 1/x */
    NLT_NEAR(nl_student_t_process_digamma(3.7) - nl_student_t_process_digamma(2.7), 1 / 2.7, 1e-13);
}

/* alpha -> inf with beta / alpha = cst fixed: MVT_{2 alpha}(0, cst A) -> N(0, cst A) */
static void test_gp_limit(void) {
    int64_t n = 7;
    double *A = spd(3, n), *y = randn(4, n, 1.3), cst = 0.7;
    double *cA = malloc((size_t)(n * n) * sizeof *cA);
    for (int64_t i = 0; i < n * n; i++) cA[i] = cst * A[i];
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    int64_t s[2] = {n, n};
    nl_var *g = nl_student_t_process_gauss_nll(c, nl_cholesky(c, nl_input(c, nl_tensor_wrap(cA, NL_F64, 2, s))),
                             nl_input(c, nl_tensor_wrap(y, NL_F64, 1, &n)));
    NLT_CHECK(g != NULL, "gauss_nll: %s", nl_last_error());
    double gv = g ? nl_item(g) : NAN;
    /* reference Gaussian NLL via nl_gp_fit */
    nl_gp gp;
    double *K = malloc((size_t)(n * n) * sizeof *K);
    memcpy(K, cA, (size_t)(n * n) * sizeof *K);
    NLT_OK(nl_gp_fit(&gp, K, n, y, 1, 0.0, 0.0, 0));
    NLT_NEAR(gv, gp.nll, 1e-10 * fabs(gp.nll));
    nl_gp_free(&gp);
    double a = 1e8, mv = mvt_nll_value(A, n, y, a, cst * a);
    NLT_NEAR(mv, gv, 1e-6 * fabs(gv) + 1e-6);
    /* and far from the limit it differs (the test can fail) */
    double m2 = mvt_nll_value(A, n, y, 1.5, cst * 1.5);
    NLT_CHECK(fabs(m2 - gv) > 1e-2, "alpha = 1.5 should differ from the GP: %g vs %g", m2, gv);
    nl_ctx_free(c);
    free(A), free(y), free(cA), free(K);
}

/* closed form -log MVT_nu(y; 0, Sigma) for diagonal Sigma = (beta/alpha) diag(a), nu = 2 alpha, with lgamma */
static double mvt_diag_closed(const double *a, const double *y, int64_t n, double alpha, double beta) {
    double nu = 2 * alpha, sc = beta / alpha, ld = 0, q = 0;
    for (int64_t i = 0; i < n; i++) ld += log(sc * a[i]), q += y[i] * y[i] / (sc * a[i]);
    double lp = lgamma(0.5 * (nu + n)) - lgamma(0.5 * nu) - 0.5 * n * log(nu * M_PI) - 0.5 * ld - 0.5 * (nu + n) * log1p(q / nu);
    return -lp;
}

static void test_mvt_diag(void) {
    /* one dimension: exactly the univariate Student-t density */
    double a1 = 2.3, y1 = -1.7, al = 1.8, be = 0.9;
    double nu = 2 * al, s2 = be / al * a1;
    double uni = lgamma(0.5 * (nu + 1)) - lgamma(0.5 * nu) - 0.5 * log(nu * M_PI * s2) - 0.5 * (nu + 1) * log(1 + y1 * y1 / (nu * s2));
    NLT_NEAR(nl_student_t_process_student_t_logpdf(y1, nu, 0.0, s2), uni, 1e-13);
    NLT_NEAR(-mvt_nll_value(&a1, 1, &y1, al, be), uni, 1e-12);
    /* diagonal n = 5: against the closed form; and the sum of univariate t log-densities with the same nu differs
     * (uncorrelated but dependent components: one shared scale), except in the Gaussian limit */
    int64_t n = 5;
    double a[5] = {0.5, 1.0, 2.0, 0.3, 1.7}, y[5] = {0.3, -1.2, 2.5, 0.1, -0.8}, A[25] = {0};
    for (int i = 0; i < 5; i++) A[i * 5 + i] = a[i];
    double mv = mvt_nll_value(A, n, y, al, be);
    NLT_NEAR(mv, mvt_diag_closed(a, y, n, al, be), 1e-11);
    double sum_t = 0;
    for (int i = 0; i < 5; i++) sum_t -= nl_student_t_process_student_t_logpdf(y[i], nu, 0.0, be / al * a[i]);
    NLT_CHECK(fabs(mv - sum_t) > 1e-3, "joint MVT should not factorise: %g vs %g", mv, sum_t);
    double big = 1e7, mvb = mvt_nll_value(A, n, y, big, be / al * big), sum_b = 0;
    for (int i = 0; i < 5; i++) sum_b -= nl_student_t_process_student_t_logpdf(y[i], 2 * big, 0.0, be / al * a[i]);
    NLT_NEAR(mvb, sum_b, 1e-5);
}

/* gradients of the full NLL graph w.r.t. (log sw2, log sb2, log noise, log alpha, log beta) through the kernel op */
typedef struct { nl_kernel_cfg cfg; int student; } gud;
static nl_var *f_graph(nl_ctx *c, nl_var **in, void *ud) {
    gud *u = ud;
    return nl_student_t_process_nll_graph(c, &u->cfg, u->student, in[0], in[1], in[2]);
}
static nl_var *f_lgd(nl_ctx *c, nl_var **in, void *ud) { (void)ud; return nl_student_t_process_lgamma_diff(c, in[0], 3.5); }
static nl_var *f_mvt(nl_ctx *c, nl_var **in, void *ud) {
    (void)ud;
    return nl_student_t_process_mvt_nll(c, nl_cholesky(c, in[0]), in[1], in[2], in[3]);
}

static void test_gradcheck(void) {
    double av[3] = {0.3, 1.7, 25.0};
    int64_t three = 3;
    nl_tensor t0 = nl_tensor_wrap(av, NL_F64, 1, &three);
    nl_gc_result r;
    NLT_OK(nl_gradcheck(f_lgd, NULL, 1, &t0, NULL, 1e-6, 1e-8, 1e-6, &r));
    int64_t n = 6, d = 3;
    double *X = randn(11, n * d, 1.0), *y = randn(12, n, 1.0), K0[36];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t k = 0; k < d; k++) s += X[i * d + k] * X[j * d + k];
            K0[i * n + j] = s / (double)d;
        }
    /* direct MVT NLL w.r.t. A, y, alpha, beta */
    double *A = spd(13, n), al[1] = {1.3}, be[1] = {0.8};
    int64_t sn[2] = {n, n}, one = 1, five = 5;
    nl_tensor tm[4] = {nl_tensor_wrap(A, NL_F64, 2, sn), nl_tensor_wrap(y, NL_F64, 1, &n), nl_tensor_wrap(al, NL_F64, 1, &one),
                       nl_tensor_wrap(be, NL_F64, 1, &one)};
    int wm[4] = {0, 1, 1, 1};
    NLT_OK(nl_gradcheck(f_mvt, NULL, 4, tm, wm, 1e-6, 1e-8, 1e-6, &r));
    gud u;
    nl_kernel_cfg_default(&u.cfg);
    u.cfg.depth = 2;
    double lp[5] = {log(1.4), log(0.2), log(0.1), log(1.6), log(0.9)};
    nl_tensor tin[3] = {nl_tensor_wrap(K0, NL_F64, 2, sn), nl_tensor_wrap(y, NL_F64, 1, &n), nl_tensor_wrap(lp, NL_F64, 1, &five)};
    int wrt[3] = {0, 0, 1};
    for (u.student = 1; u.student >= 0; u.student--) {
        NLT_OK(nl_gradcheck(f_graph, &u, 3, tin, wrt, 1e-6, 1e-8, 1e-6, &r));
        NLT_CHECK(r.checked == 5, "checked %lld", (long long)r.checked);
    }
    free(X), free(y), free(A);
}

/* the Student-t predictive mean is the GP mean; its scale is the GP variance times (2 beta + q)/(2 alpha + n) */
static void test_predictive(void) {
    int64_t n = 20, t = 7, d = 2;
    double *X = randn(21, n * d, 1.0), *Xs = randn(22, t * d, 1.0), *y = randn(23, n, 1.0);
    nl_kernel_cfg cfg;
    nl_kernel_cfg_default(&cfg);
    cfg.depth = 2;
    nl_student_t_process_hyp h = {1.2, 0.3, 0.05, 2.5, 1.5};
    double m1[7], m2[7], s1[7], s2[7], nu1, nu2;
    NLT_OK(nl_student_t_process_predict(&cfg, 1, &h, X, n, d, y, Xs, t, m1, s1, &nu1));
    NLT_OK(nl_student_t_process_predict(&cfg, 0, &h, X, n, d, y, Xs, t, m2, s2, &nu2));
    NLT_NEAR(nu1, 2 * 2.5 + 20, 1e-12);
    NLT_CHECK(isinf(nu2), "GP nu should be infinite");
    /* reference GP mean and variance from nl_gp_* directly */
    nl_kernel_cfg kc = cfg;
    kc.sw = sqrt(h.sw2), kc.sb = sqrt(h.sb2);
    double K[400], Ks[140], kss[7], ref[7], var[7], Kt[49];
    NLT_OK(nl_kernel_matrix(&kc, X, n, NULL, n, d, NL_KERNEL_NNGP, NL_F64, K, NULL, 0));
    NLT_OK(nl_kernel_matrix(&kc, Xs, t, X, n, d, NL_KERNEL_NNGP, NL_F64, Ks, NULL, 0));
    NLT_OK(nl_kernel_matrix(&kc, Xs, t, NULL, t, d, NL_KERNEL_NNGP, NL_F64, Kt, NULL, 0));
    for (int i = 0; i < t; i++) kss[i] = Kt[i * t + i];
    nl_gp gp;
    NLT_OK(nl_gp_fit(&gp, K, n, y, 1, 0.0, h.noise, 0));
    NLT_OK(nl_gp_predict(&gp, Ks, t, ref));
    NLT_OK(nl_gp_variance(&gp, Ks, kss, t, var));
    double f = (2 * h.beta + gp.quad) / (2 * h.alpha + (double)n);
    for (int i = 0; i < t; i++) {
        NLT_NEAR(m1[i], ref[i], 1e-12 * (1 + fabs(ref[i])));
        NLT_NEAR(m2[i], ref[i], 1e-12 * (1 + fabs(ref[i])));
        NLT_NEAR(s2[i], var[i] + h.noise, 1e-12);
        NLT_NEAR(s1[i], f * (var[i] + h.noise), 1e-12);
    }
    nl_gp_free(&gp);
    free(X), free(Xs), free(y);
}

/* fitting lowers the training NLL, and a quick syn-t run with a fixed seed: STP test NLL < GP test NLL */
static void test_synt_quick(void) {
    nl_student_t_process_synt_config c;
    nl_student_t_process_synt_config_quick(&c);
    c.n = 120;
    c.n_splits = 1;
    c.seed = 1;
    c.fit.steps = 80;
    nl_student_t_process_synt_result r;
    NLT_OK(nl_student_t_process_synt_run(&c, &r));
    if (!r.stp_curve) return;
    NLT_CHECK(r.n_train == 96 && r.n_test == 24, "split %lld/%lld", (long long)r.n_train, (long long)r.n_test);
    NLT_CHECK(r.stp_curve[80] < r.stp_curve[0] && r.gp_curve[80] < r.gp_curve[0], "training NLL should drop: STP %g -> %g, GP %g -> %g",
              r.stp_curve[0], r.stp_curve[80], r.gp_curve[0], r.gp_curve[80]);
    NLT_CHECK(isfinite(r.stp_nll) && isfinite(r.gp_nll) && r.stp_nll < r.gp_nll, "STP test NLL %g should be < GP %g", r.stp_nll,
              r.gp_nll);
    nl_student_t_process_synt_result_free(&r);
    /* bad configurations are rejected */
    c.n = 3;
    NLT_CHECK(nl_student_t_process_synt_run(&c, &r) != NL_OK, "n = 3 accepted");
}

int main(void) {
    NLT_RUN(test_digamma);
    NLT_RUN(test_gp_limit);
    NLT_RUN(test_mvt_diag);
    NLT_RUN(test_gradcheck);
    NLT_RUN(test_predictive);
    NLT_RUN(test_synt_quick);
    return nlt_finish();
}
