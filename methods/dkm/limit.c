/* Part (a) of the ledger entry: the Bayesian representation learning limit. A one-hidden-layer deep GP of width N1
 * with m = N1 output channels (nu = N1 / m = 1 fixed) is sampled by MALA (Metropolis-adjusted Langevin); the
 * posterior mean of its Gram matrix G1 = F1 F1^T / N1 is compared with the DKM optimum of the same model as the width
 * grows, and with the NNGP value K(G_0) (the control).
 *   prior:      F1 = L0 U, U (N, N1) iid N(0, 1), L0 = chol(K(G_0) + 1e-8 I)   (columns of F1 ~ N(0, K(G_0)))
 *   likelihood: the m = r m0 channels are r copies of Y0 (N, m0), so Y Y^T / m = Y0 Y0^T / m0 stays fixed;
 *               each channel ~ N(0, K(G1) + s2 I) (a = 1, s2 = 0.1 fixed)
 *   DKM optimum: max over G of  r log N(Y0; 0, K(G) + s2 I) - N1 KL(N(0, G) || N(0, K(G_0))), the full objective with
 *               Y0 and nu = N1 / r = m0 (same maximiser), by Adam on G = V V^T / N. */
#include "dkm/dkm.h"
#include "kernels/kernels.h"
#include "nnlab/linalg.h"
#include "nnlab/ops.h"
#include "nnlab/optim.h"
#include "nnlab/rng.h"
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LIM_S2 0.1

/* r * log N(Y0; 0, K(G) + s2 I) for G [n, n] (a var). */
static nl_var *lim_loglik(nl_ctx *c, nl_var *G, nl_var *Y0, double r) {
    int64_t n = G->val.shape[0], m0 = Y0->val.shape[1];
    nl_var *C = nl_kernel_add_diag(c, nl_dkm_kmap(c, G, NULL, NULL), nl_scalar(c, NL_F64, LIM_S2));
    nl_var *LC = nl_cholesky(c, C);
    nl_var *al = nl_trisolve(c, LC, Y0, 1, 0);
    nl_var *q = nl_add(c, nl_sum(c, nl_square(c, al), NL_AXIS_ALL, 0), nl_mul_scalar(c, nl_logdet_chol(c, LC), (double)m0));
    return nl_mul_scalar(c, nl_add_scalar(c, q, (double)(n * m0) * log(2 * M_PI)), -0.5 * r);
}

/* log posterior (up to a constant) of U and its gradient (into *grad, (n, w)) at U (n, w). */
static nl_status lim_logp(const double *L0, const double *Y0, int64_t n, int64_t m0, double *U, int64_t w, double r,
                          double *lp, double *grad) {
    nl_ctx *c = nl_ctx_new(1 << 18, 0);
    if (!c) return nl_set_error(NL_ENOMEM, "dkm limit: out of memory");
    int64_t sl[2] = {n, n}, su[2] = {n, w}, sy[2] = {n, m0};
    nl_var *Lv = nl_input(c, nl_tensor_wrap((void *)L0, NL_F64, 2, sl));
    nl_var *Uv = nl_leaf(c, nl_tensor_wrap(U, NL_F64, 2, su), 1);
    nl_var *Yv = nl_input(c, nl_tensor_wrap((void *)Y0, NL_F64, 2, sy));
    nl_var *F = nl_matmul(c, Lv, Uv);
    nl_var *G = nl_mul_scalar(c, nl_matmul_t(c, F, F, 0, 1), 1.0 / (double)w);
    nl_var *o = nl_sub(c, lim_loglik(c, G, Yv, r), nl_mul_scalar(c, nl_sum(c, nl_square(c, Uv), NL_AXIS_ALL, 0), 0.5));
    nl_status st = o ? nl_backward(c, o) : (nl_last_status() ? nl_last_status() : NL_ELINALG);
    if (!st) {
        *lp = nl_item(o);
        memcpy(grad, Uv->grad.data, (size_t)(n * w) * sizeof *grad);
    }
    nl_ctx_free(c);
    return st;
}

/* DKM optimum G* (n, n) of the full objective (1 layer, kernel readout, a = 1, s2 fixed), nu = m0. */
static nl_status lim_dkm_opt(const double *x, int64_t n, int64_t d, const double *Y0, int64_t m0, const double *K0,
                             double *Gs) {
    nl_params ps;
    nl_status st = nl_params_init(&ps, NL_F64);
    if (st) return st;
    int64_t sv[2] = {n, n}, one = 1;
    nl_var *V = nl_params_add(&ps, "V", 2, sv);
    if (!V) {
        nl_params_free(&ps);
        return nl_last_status();
    }
    memcpy(V->val.data, K0, (size_t)(n * n) * sizeof *K0);
    double *v = V->val.data;
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (int)n, v, (int)n)) st = nl_set_error(NL_ELINALG, "dkm limit: K0 not PD");
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) v[i * n + j] = j > i ? 0 : v[i * n + j] * sqrt((double)n);
    nl_optim opt;
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
    oc.lr = 1e-2, oc.sched = NL_SCHED_COSINE, oc.total_steps = 3000, oc.min_ratio = 1e-3;
    if (!st) st = nl_optim_init(&opt, &ps, &oc);
    double la = 0, ls = log(LIM_S2);
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    for (int64_t it = 0; !st && it <= oc.total_steps; it++) {
        nl_ctx_reset(c);
        nl_params_zero_grad(&ps);
        int64_t sx[2] = {n, d}, sy[2] = {n, m0};
        nl_var *X = nl_input(c, nl_tensor_wrap((void *)x, NL_F64, 2, sx));
        nl_var *Y = nl_input(c, nl_tensor_wrap((void *)Y0, NL_F64, 2, sy));
        nl_var *G = nl_mul_scalar(c, nl_matmul_t(c, V, V, 0, 1), 1.0 / (double)n);
        if (it == oc.total_steps) {
            memcpy(Gs, G->val.data, (size_t)(n * n) * sizeof *Gs);
            break;
        }
        nl_var *o = nl_dkm_full_objective(c, X, Y, &G, 1, (double)m0, 0, nl_input(c, nl_tensor_wrap(&la, NL_F64, 1, &one)),
                                          nl_input(c, nl_tensor_wrap(&ls, NL_F64, 1, &one)));
        st = o ? nl_backward(c, nl_mul_scalar(c, o, -1.0)) : (nl_last_status() ? nl_last_status() : NL_ELINALG);
        if (!st) st = nl_optim_step(&opt);
    }
    nl_ctx_free(c);
    nl_optim_free(&opt);
    nl_params_free(&ps);
    return st;
}

/* |A - B|_F / |D|_F */
static double rel_fro(const double *A, const double *B, const double *D, int64_t n) {
    double s = 0, t = 0;
    for (int64_t i = 0; i < n * n; i++) s += (A[i] - B[i]) * (A[i] - B[i]), t += D[i] * D[i];
    return sqrt(s / t);
}

nl_status nl_dkm_limit_run(int64_t n, int64_t m0, const int64_t *widths, int nw, int seeds, int64_t burn, int64_t samples,
                           double *err_dkm, double *err_nngp, double *accept) {
    const int64_t d = 4;
    double *x = malloc((size_t)(n * d) * sizeof *x), *Y0 = malloc((size_t)(n * m0) * sizeof *Y0); /* (n, d), (n, m0) */
    double *K0 = malloc((size_t)(n * n) * sizeof *K0), *L0 = malloc((size_t)(n * n) * sizeof *L0);  /* (n, n) */
    double *Gs = malloc((size_t)(n * n) * sizeof *Gs), *Gm = malloc((size_t)(n * n) * sizeof *Gm);  /* (n, n) */
    nl_status st = x && Y0 && K0 && L0 && Gs && Gm ? NL_OK : nl_set_error(NL_ENOMEM, "dkm limit: out of memory");
    nl_rng r;
    nl_rng_init(&r, 1234, (uint64_t)0x1A11ULL << 32);
    for (int64_t i = 0; !st && i < n; i++) {
        for (int64_t j = 0; j < d; j++) x[i * d + j] = nl_rng_normal(&r);
        for (int64_t k = 0; k < m0; k++)
            Y0[i * m0 + k] = (k % 2 ? cos(2 * x[i * d + 1]) : sin(2 * x[i * d])) * 1.5 + 0.1 * nl_rng_normal(&r);
    }
    /* K0 = K(X X^T / d) + 1e-8 I and its Cholesky factor */
    if (!st) {
        nl_ctx *c = nl_ctx_new(1 << 16, 0);
        nl_set_grad_enabled(c, 0);
        int64_t sx[2] = {n, d};
        nl_var *X = nl_input(c, nl_tensor_wrap(x, NL_F64, 2, sx));
        nl_var *K = nl_dkm_kmap(c, nl_mul_scalar(c, nl_matmul_t(c, X, X, 0, 1), 1.0 / (double)d), NULL, NULL);
        if (!K) st = nl_last_status();
        else memcpy(K0, K->val.data, (size_t)(n * n) * sizeof *K0);
        nl_ctx_free(c);
        for (int64_t i = 0; !st && i < n; i++) K0[i * n + i] += 1e-8;
        if (!st) memcpy(L0, K0, (size_t)(n * n) * sizeof *L0);
        if (!st && LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (int)n, L0, (int)n)) st = nl_set_error(NL_ELINALG, "dkm limit: K0");
        for (int64_t i = 0; !st && i < n; i++)
            for (int64_t j = i + 1; j < n; j++) L0[i * n + j] = 0;
    }
    if (!st) st = lim_dkm_opt(x, n, d, Y0, m0, K0, Gs);
    for (int wi = 0; wi < nw && !st; wi++) {
        int64_t w = widths[wi], nu = n * w;
        double rr = (double)w / (double)m0; /* m = w channels = rr copies of Y0 */
        double *U = malloc((size_t)nu * sizeof *U), *Up = malloc((size_t)nu * sizeof *Up);     /* (n, w) */
        double *g = malloc((size_t)nu * sizeof *g), *gp = malloc((size_t)nu * sizeof *gp);     /* (n, w) */
        double *F = malloc((size_t)nu * sizeof *F);                                            /* (n, w) */
        if (!U || !Up || !g || !gp || !F) st = nl_set_error(NL_ENOMEM, "dkm limit: out of memory");
        for (int s = 0; s < seeds && !st; s++) {
            nl_rng_init(&r, (uint64_t)(s + 1), ((uint64_t)0x1A12ULL << 32) + (uint64_t)w);
            for (int64_t i = 0; i < nu; i++) U[i] = nl_rng_normal(&r);
            double lp, lpp, h = 0.5 / pow((double)nu, 1.0 / 3.0);
            int64_t acc = 0, cnt = 0;
            memset(Gm, 0, (size_t)(n * n) * sizeof *Gm);
            st = lim_logp(L0, Y0, n, m0, U, w, rr, &lp, g);
            for (int64_t it = 0; !st && it < burn + samples; it++) {
                for (int64_t i = 0; i < nu; i++) Up[i] = U[i] + 0.5 * h * h * g[i] + h * nl_rng_normal(&r);
                st = lim_logp(L0, Y0, n, m0, Up, w, rr, &lpp, gp);
                if (st) break;
                double qf = 0, qb = 0; /* log q(U'|U), log q(U|U') */
                for (int64_t i = 0; i < nu; i++) {
                    double a = Up[i] - U[i] - 0.5 * h * h * g[i], b = U[i] - Up[i] - 0.5 * h * h * gp[i];
                    qf += a * a, qb += b * b;
                }
                double logr = lpp - lp - (qb - qf) / (2 * h * h);
                int ok = isfinite(logr) && log(nl_rng_uniform(&r)) < logr;
                if (ok) {
                    memcpy(U, Up, (size_t)nu * sizeof *U), memcpy(g, gp, (size_t)nu * sizeof *g);
                    lp = lpp;
                }
                if (it < burn) { /* adapt the step towards ~57% acceptance during burn-in only */
                    h *= ok ? 1.02 : 0.98;
                    continue;
                }
                acc += ok, cnt++;
                /* G1 = L0 U U^T L0^T / w */
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)w, (int)n, 1, L0, (int)n, U, (int)w, 0, F, (int)w);
                cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, (int)n, (int)w, 1.0 / ((double)w * samples), F, (int)w, 1, Gm, (int)n);
            }
            if (st) break;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = i + 1; j < n; j++) Gm[i * n + j] = Gm[j * n + i];
            err_dkm[wi * seeds + s] = rel_fro(Gm, Gs, Gs, n);
            err_nngp[wi * seeds + s] = rel_fro(Gm, K0, Gs, n);
            accept[wi * seeds + s] = cnt ? (double)acc / (double)cnt : 0;
        }
        free(U), free(Up), free(g), free(gp), free(F);
    }
    free(x), free(Y0), free(K0), free(L0), free(Gs), free(Gm);
    return st;
}
