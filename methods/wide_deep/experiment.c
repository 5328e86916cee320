/* The Dirichlet-on-the-sphere experiment of the wide-and-deep paper: baselines, the deep NNGP/NTK classifiers of
 * each dual at several depths, the ReLU majority-vote check at the closed-form depth, and the pass rule. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "wd_internal.h"

static void cfg_set_duals(nl_wide_deep_config *c, const char *const *names, int n) {
    c->n_duals = n;
    for (int i = 0; i < n; i++) snprintf(c->duals[i], sizeof c->duals[i], "%s", names[i]);
}

void nl_wide_deep_config_quick(nl_wide_deep_config *c) {
    memset(c, 0, sizeof *c);
    c->dim = 2;
    c->n_train = 1500;
    c->n_test = 5000; /* the test set's noise on |err - Bayes err| matters more than n_train here (methods/wide_deep/README.md) */
    c->prior1 = 0.4;
    c->seed = 1;
    static const char *const duals[] = {"relu", "erf", "hermite_2", "hermite_3", "2d_opt", "3d_opt"};
    cfg_set_duals(c, duals, 6);
    static const int64_t depths[] = {10, 20, 50, 100, 200};
    c->n_depths = 5;
    memcpy(c->depths, depths, sizeof depths);
    c->kernels = NL_WIDE_DEEP_NNGP | NL_WIDE_DEEP_NTK;
    c->relu_n_train = 51;
    c->relu_n_test = 300;
    c->relu_depth = 0;
    c->relu_depth_cap = 400000;
    c->relu_eps = 0.01;
    c->bayes_margin = 0.045;
}

void nl_wide_deep_config_full(nl_wide_deep_config *c) {
    nl_wide_deep_config_quick(c);
    c->n_train = c->n_test = 10000;
    static const char *const duals[] = {"relu", "erf", "hermite_2", "2d_opt", "3d_opt"};
    cfg_set_duals(c, duals, 5);
    static const int64_t depths[] = {20, 50, 100, 200};
    c->n_depths = 4;
    memset(c->depths, 0, sizeof c->depths);
    memcpy(c->depths, depths, sizeof depths);
    c->relu_n_train = 101;
    c->relu_n_test = 2000;
    c->relu_depth_cap = 1000000;
    c->bayes_margin = 0.035;
}

/* Beta(a, b) density at s in (0, 1). */
static double wd_beta_pdf(double s, double a, double b) {
    return exp(lgamma(a + b) - lgamma(a) - lgamma(b) + (a - 1) * log(s) + (b - 1) * log1p(-s));
}

double nl_wide_deep_relu_kappa(const double *alpha1, const double *alpha2, int dim, double prior1, int majority) {
    if (dim != 2) return NAN;
    /* x = (s, 1 - s) / r on the circle, angle psi: |ds/dpsi| = s^2 + (1 - s)^2. Density per unit angle
     * q = p(s) |ds/dpsi|, so kappa = 2 pi int q(psi)^2 eta_min dpsi = 2 pi int p(s) pi_min p_min(s) |ds/dpsi| ds. */
    const int N = 200000;
    double acc = 0;
    for (int i = 0; i < N; i++) {
        double s = (i + 0.5) / N;
        double p1 = prior1 * wd_beta_pdf(s, alpha1[0], alpha1[1]), p2 = (1 - prior1) * wd_beta_pdf(s, alpha2[0], alpha2[1]);
        double pmin = majority > 0 ? p2 : p1;
        acc += (p1 + p2) * pmin * (s * s + (1 - s) * (1 - s));
    }
    return 2 * M_PI * acc / N;
}

/* "from=to,..." -> the dual to run under label `name` (the name itself when not swapped). */
static const char *wd_swapped(const char *swap, const char *name, char *buf, size_t n) {
    if (!swap) return name;
    const char *p = swap;
    while (*p) {
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if (eq && eq < end && (size_t)(eq - p) == strlen(name) && !strncmp(p, name, (size_t)(eq - p))) {
            size_t len = (size_t)(end - eq - 1);
            if (len >= n) len = n - 1;
            memcpy(buf, eq + 1, len);
            buf[len] = 0;
            return buf;
        }
        p = *end ? end + 1 : end;
    }
    return name;
}

static nl_status wd_check_config(const nl_wide_deep_config *c) {
    if (c->n_train < 2 || c->n_test < 1)
        return nl_set_error(NL_EINVAL, "wide-deep: need n_train >= 2 and n_test >= 1 (got %lld, %lld)", (long long)c->n_train,
                            (long long)c->n_test);
    if (!(c->prior1 > 0 && c->prior1 < 1)) return nl_set_error(NL_EINVAL, "wide-deep: prior1 %g not in (0, 1)", c->prior1);
    if (c->n_duals < 0 || c->n_duals > NL_WIDE_DEEP_MAX_DUALS || c->n_depths < 1 || c->n_depths > NL_WIDE_DEEP_MAX_DEPTHS)
        return nl_set_error(NL_EINVAL, "wide-deep: %d duals (max %d) and %d depths (1..%d)", c->n_duals, NL_WIDE_DEEP_MAX_DUALS,
                            c->n_depths, NL_WIDE_DEEP_MAX_DEPTHS);
    for (int i = 0; i < c->n_depths; i++)
        if (c->depths[i] < 0 || (i && c->depths[i] <= c->depths[i - 1]))
            return nl_set_error(NL_EINVAL, "wide-deep: depths must be >= 0 and strictly increasing (depth %lld)",
                                (long long)c->depths[i]);
    if (!(c->kernels & (NL_WIDE_DEEP_NNGP | NL_WIDE_DEEP_NTK))) return nl_set_error(NL_EINVAL, "wide-deep: no kernel selected");
    if (c->relu_n_train < 0 || c->relu_n_train > c->n_train || c->relu_n_test < 0 || c->relu_n_test > c->n_test ||
        (c->relu_n_train > 0 && (c->relu_n_train < 2 || c->relu_n_test < 1)) || c->relu_pos < 0 ||
        (c->relu_pos > 0 && c->relu_pos >= c->relu_n_train))
        return nl_set_error(NL_EINVAL, "wide-deep: ReLU check sizes %lld/%lld must be within 2..%lld / 1..%lld",
                            (long long)c->relu_n_train, (long long)c->relu_n_test, (long long)c->n_train, (long long)c->n_test);
    if (c->relu_n_train > 0 && c->relu_depth == 0 && !(c->relu_eps > 0 && c->relu_eps < 1))
        return nl_set_error(NL_EINVAL, "wide-deep: relu_eps %g not in (0, 1)", c->relu_eps);
    return NL_OK;
}

nl_status nl_wide_deep_run(const nl_wide_deep_config *c, const char *swap, nl_wide_deep_result *res) {
    memset(res, 0, sizeof *res);
    res->hermite_agree_1nn_min = res->relu_agree_maj_final = NAN;
    res->opt_nngp_excess_absmax = res->opt_ntk_excess_absmax = res->opt_nngp_agree_dev_min = NAN;
    res->relu_ybar = res->relu_kappa = res->relu_maj_err = NAN;
    res->bayes_margin = c->bayes_margin;
    double a1[64], a2[64];
    nl_status st = wd_check_config(c);
    if (st || (st = nl_wide_deep_alphas(c->dim, a1, a2))) return st;
    nl_wide_deep_dual duals[NL_WIDE_DEEP_MAX_DUALS], runs[NL_WIDE_DEEP_MAX_DUALS];
    for (int i = 0; i < c->n_duals; i++) {
        char buf[32];
        if ((st = nl_wide_deep_dual_parse(c->duals[i], &duals[i]))) return st;
        if ((st = nl_wide_deep_dual_parse(wd_swapped(swap, duals[i].name, buf, sizeof buf), &runs[i]))) return st;
        if ((st = nl_wide_deep_check_depth(&runs[i], c->depths[c->n_depths - 1]))) return st;
    }
    const double t0 = nl_time();
    const int dim = c->dim;
    const int64_t n = c->n_train, m = c->n_test, nd = c->n_depths;
    double *Xtr = malloc((size_t)n * dim * sizeof *Xtr), *ytr = malloc((size_t)n * sizeof *ytr);
    double *Xte = malloc((size_t)m * dim * sizeof *Xte), *yte = malloc((size_t)m * sizeof *yte);
    int8_t *pb = malloc((size_t)m), *pn = malloc((size_t)m), *pd = malloc((size_t)m), *pm = malloc((size_t)m);
    int8_t *pk[2] = {malloc((size_t)(nd * m)), malloc((size_t)(nd * m))};
    nl_wide_deep_solve_info *inf[2] = {calloc((size_t)nd, sizeof(nl_wide_deep_solve_info)), calloc((size_t)nd, sizeof(nl_wide_deep_solve_info))};
    if (!Xtr || !ytr || !Xte || !yte || !pb || !pn || !pd || !pm || !pk[0] || !pk[1] || !inf[0] || !inf[1]) {
        st = nl_set_error(NL_ENOMEM, "wide-deep: cannot allocate the data (%lld + %lld points)", (long long)n, (long long)m);
        goto done;
    }
    if ((st = nl_wide_deep_dirichlet_data(a1, a2, dim, c->prior1, n, m, c->seed, Xtr, ytr, Xte, yte))) goto done;
    nl_wide_deep_bayes_predict(a1, a2, dim, c->prior1, Xte, m, pb);
    nl_wide_deep_1nn_predict(Xtr, ytr, n, Xte, m, dim, pn);
    nl_wide_deep_devroye_predict(Xtr, ytr, n, Xte, m, dim, pd);
    nl_wide_deep_majority_predict(ytr, n, m, pm);
    res->err_bayes = nl_wide_deep_error(pb, yte, m);
    res->err_1nn = nl_wide_deep_error(pn, yte, m);
    res->err_devroye = nl_wide_deep_error(pd, yte, m);
    res->err_majority = nl_wide_deep_error(pm, yte, m);
    if (c->verbose)
        nl_progress("wide-deep: d=%d n=%lld/%lld  Bayes %.4f  1-NN %.4f  Devroye %.4f  majority %.4f", dim, (long long)n,
                (long long)m, res->err_bayes, res->err_1nn, res->err_devroye, res->err_majority);
    snprintf(res->opt_dual, sizeof res->opt_dual, "%dd_opt", dim);

    res->n_duals = c->n_duals;
    for (int di = 0; di < c->n_duals; di++) {
        nl_wide_deep_dual_result *R = &res->duals[di];
        double tt = nl_time();
        snprintf(R->dual, sizeof R->dual, "%s", duals[di].name);
        R->cls = nl_wide_deep_dual_class(&duals[di], &R->r);
        if ((st = nl_wide_deep_predict(&runs[di], c->kernels, Xtr, ytr, n, Xte, m, dim, c->depths, c->n_depths, pk[0], pk[1], inf[0],
                                inf[1])))
            goto done;
        for (int k = 0; k < 2; k++)
            for (int l = 0; l < NL_WIDE_DEEP_MAX_DEPTHS; l++) {
                R->err[k][l] = R->agree_1nn[k][l] = R->agree_maj[k][l] = R->agree_dev[k][l] = R->agree_bayes[k][l] = NAN;
                R->rcond[k][l] = NAN;
                if (l >= nd || !(c->kernels & (k ? NL_WIDE_DEEP_NTK : NL_WIDE_DEEP_NNGP))) continue;
                R->rcond[k][l] = inf[k][l].rcond;
                if (inf[k][l].status != NL_OK) {
                    R->singular[k][l] = 1;
                    if (c->verbose) nl_progress("wide-deep: %s", inf[k][l].msg);
                    continue;
                }
                const int8_t *p = pk[k] + l * m;
                R->err[k][l] = nl_wide_deep_error(p, yte, m);
                R->agree_1nn[k][l] = nl_wide_deep_agreement(p, pn, m);
                R->agree_maj[k][l] = nl_wide_deep_agreement(p, pm, m);
                R->agree_dev[k][l] = nl_wide_deep_agreement(p, pd, m);
                R->agree_bayes[k][l] = nl_wide_deep_agreement(p, pb, m);
            }
        R->seconds = nl_time() - tt;
        if (c->verbose) {
            char line[64 + 32 * NL_WIDE_DEEP_MAX_DEPTHS];
            int o = snprintf(line, sizeof line, "wide-deep: %-10s (%s) %.1fs  err NNGP/NTK by depth:", R->dual,
                             nl_wide_deep_class_name(R->cls), R->seconds);
            for (int l = 0; l < nd && o > 0 && (size_t)o < sizeof line; l++)
                o += snprintf(line + o, sizeof line - (size_t)o, " L%lld %.3f/%.3f", (long long)c->depths[l], R->err[0][l], R->err[1][l]);
            nl_progress("%s", line);
        }
        /* summaries for the pass rule */
        for (int l = 0; l < nd; l++) {
            const int64_t L = c->depths[l];
            if (duals[di].kind == NL_WIDE_DEEP_HERMITE && duals[di].a >= 2 && L >= 50 && (c->kernels & NL_WIDE_DEEP_NTK)) {
                double a = R->agree_1nn[1][l];
                if (isnan(res->hermite_agree_1nn_min) || !(a >= res->hermite_agree_1nn_min)) res->hermite_agree_1nn_min = a;
            }
            if (!strcmp(duals[di].name, res->opt_dual) && L >= 50 && L <= 200)
                for (int k = 0; k < 2; k++) {
                    if (!(c->kernels & (k ? NL_WIDE_DEEP_NTK : NL_WIDE_DEEP_NNGP))) continue;
                    double ex = fabs(R->err[k][l] - res->err_bayes);
                    double *dst = k ? &res->opt_ntk_excess_absmax : &res->opt_nngp_excess_absmax;
                    if (isnan(*dst) || !(ex <= *dst)) *dst = ex; /* NAN (singular) propagates as a failure */
                    if (k == 0) {
                        double a = R->agree_dev[0][l];
                        if (isnan(res->opt_nngp_agree_dev_min) || !(a >= res->opt_nngp_agree_dev_min))
                            res->opt_nngp_agree_dev_min = a;
                    }
                }
        }
    }

    /* ---- ReLU NTK vs majority vote on a small training subset, at the closed-form depth ---- */
    if (c->relu_n_train > 0) {
        const int64_t rn = c->relu_n_train, rm = c->relu_n_test;
        int64_t pos = 0;
        if (c->relu_pos > 0) {
            /* the first relu_pos +1 and the first rn - relu_pos -1 training points, moved to the front (in order) so
             * that the rest of the check reads Xtr[0..rn), ytr[0..rn) */
            int64_t want[2] = {c->relu_pos, rn - c->relu_pos}, got[2] = {0, 0}, k = 0;
            for (int64_t i = 0; i < n && k < rn; i++) {
                int cls = ytr[i] > 0 ? 0 : 1;
                if (got[cls] >= want[cls]) continue;
                got[cls]++;
                if (i != k) {
                    for (int q = 0; q < dim; q++) {
                        double t = Xtr[k * dim + q];
                        Xtr[k * dim + q] = Xtr[i * dim + q], Xtr[i * dim + q] = t;
                    }
                    double t = ytr[k];
                    ytr[k] = ytr[i], ytr[i] = t;
                }
                k++;
            }
            if (k < rn) {
                st = nl_set_error(NL_EINVAL, "wide-deep: the training set has too few points of a class for a ReLU subset of "
                                             "%lld (+1) and %lld (-1)", (long long)want[0], (long long)want[1]);
                goto done;
            }
        }
        for (int64_t i = 0; i < rn; i++) pos += ytr[i] > 0;
        res->relu_ran = 1;
        res->relu_n_train = rn;
        res->relu_n_test = rm;
        res->relu_ybar = (double)(2 * pos - rn) / (double)rn;
        int maj = 2 * pos > rn ? 1 : -1;
        res->relu_kappa = nl_wide_deep_relu_kappa(a1, a2, dim, c->prior1, maj);
        double kappa = isfinite(res->relu_kappa) ? res->relu_kappa : 3.0; /* d != 2: the d = 2 bound, a heuristic */
        int64_t L = c->relu_depth;
        if (L <= 0) {
            if (res->relu_ybar == 0) {
                st = nl_set_error(NL_EINVAL, "wide-deep: the %lld ReLU-check training labels tie, majority vote is undefined "
                                             "(use an odd relu_n_train)", (long long)rn);
                goto done;
            }
            double Lf = ceil(kappa * (double)(rn + 3) / (c->relu_eps * fabs(res->relu_ybar)));
            L = (int64_t)Lf;
            if (c->relu_depth_cap > 0 && Lf > (double)c->relu_depth_cap) L = c->relu_depth_cap, res->relu_capped = 1;
        }
        res->relu_depth = L;
        int64_t rd[4] = {L / 64, L / 16, L / 4, L};
        int nrd = 0;
        for (int i = 0; i < 4; i++)
            if (rd[i] > 0 && (nrd == 0 || rd[i] > rd[nrd - 1])) rd[nrd++] = rd[i];
        res->relu_n_depths = nrd;
        memcpy(res->relu_depths, rd, sizeof rd);
        nl_wide_deep_dual relu, rrun;
        char buf[32];
        nl_wide_deep_dual_parse("relu", &relu);
        if ((st = nl_wide_deep_dual_parse(wd_swapped(swap, "relu", buf, sizeof buf), &rrun))) goto done;
        if ((st = nl_wide_deep_check_depth(&rrun, L))) goto done;
        int8_t *rp = malloc((size_t)(nrd * rm)), *rmaj = malloc((size_t)rm), *r1nn = malloc((size_t)rm);
        nl_wide_deep_solve_info ri[4];
        if (!rp || !rmaj || !r1nn) {
            free(rp), free(rmaj), free(r1nn);
            st = nl_set_error(NL_ENOMEM, "wide-deep: ReLU check allocation");
            goto done;
        }
        double tt = nl_time();
        nl_wide_deep_majority_predict(ytr, rn, rm, rmaj);
        nl_wide_deep_1nn_predict(Xtr, ytr, rn, Xte, rm, dim, r1nn);
        res->relu_maj_err = nl_wide_deep_error(rmaj, yte, rm);
        st = nl_wide_deep_predict(&rrun, NL_WIDE_DEEP_NTK, Xtr, ytr, rn, Xte, rm, dim, rd, nrd, NULL, rp, NULL, ri);
        if (!st)
            for (int i = 0; i < nrd; i++) {
                res->relu_rcond[i] = ri[i].rcond;
                res->relu_err[i] = ri[i].status ? NAN : nl_wide_deep_error(rp + i * rm, yte, rm);
                res->relu_agree_maj[i] = ri[i].status ? NAN : nl_wide_deep_agreement(rp + i * rm, rmaj, rm);
                res->relu_agree_1nn[i] = ri[i].status ? NAN : nl_wide_deep_agreement(rp + i * rm, r1nn, rm);
            }
        res->relu_agree_maj_final = res->relu_agree_maj[nrd - 1];
        free(rp), free(rmaj), free(r1nn);
        if (st) goto done;
        if (c->verbose)
            nl_progress("wide-deep: ReLU NTK, %lld train (ybar %+.3f, kappa %.3f) / %lld test, L* = %lld%s (%.1fs): agreement with "
                    "majority %.4f (err %.4f, majority err %.4f)",
                    (long long)rn, res->relu_ybar, res->relu_kappa, (long long)rm, (long long)L, res->relu_capped ? " (capped)" : "",
                    nl_time() - tt, res->relu_agree_maj_final, res->relu_err[nrd - 1], res->relu_maj_err);
    }
    res->seconds = nl_time() - t0;
done:
    free(Xtr), free(ytr), free(Xte), free(yte), free(pb), free(pn), free(pd), free(pm);
    free(pk[0]), free(pk[1]), free(inf[0]), free(inf[1]);
    return st;
}

int nl_wide_deep_judge_values(double herm, double relu, double opt_ex, double margin, const char *opt_dual, char *msg, size_t n) {
    int ok_h = herm >= NL_WIDE_DEEP_PASS_AGREE_1NN, ok_r = relu >= NL_WIDE_DEEP_PASS_AGREE_MAJ, ok_o = opt_ex <= margin;
    if (msg && n)
        snprintf(msg, n, "hermite~1NN %.1f%%%s%.0f%%, ReLU~majority %.1f%%%s%.0f%%, %s-Bayes %.1f%s%.1fpp",
                 100 * herm, ok_h ? ">=" : "<", 100 * NL_WIDE_DEEP_PASS_AGREE_1NN, 100 * relu, ok_r ? ">=" : "<",
                 100 * NL_WIDE_DEEP_PASS_AGREE_MAJ, opt_dual ? opt_dual : "opt", 100 * opt_ex, ok_o ? "<=" : ">", 100 * margin);
    return ok_h && ok_r && ok_o;
}

int nl_wide_deep_judge(const nl_wide_deep_result *r, char *msg, size_t n) {
    return nl_wide_deep_judge_values(r->hermite_agree_1nn_min, r->relu_agree_maj_final, r->opt_nngp_excess_absmax, r->bayes_margin,
                              r->opt_dual, msg, n);
}
