/* fprior/wmap.c — the Wasserstein-1 fit of the BNN prior hyperparameters to a (hierarchical) GP prior: GP function
 * draws, the measurement set, the critic (MLP M -> Hc -> Hc -> 1, softplus; Adagrad; gradient penalty through a hand-written
 * double backward, or weight clipping) re-initialised
 * every outer step, and the RMSprop step on psi through the reparametrised prior draws (fprior.h). */
#include "fprior/fprior.h"
#include "nnlab/linalg.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_status nl_fp_gp_functions(const nl_fp_gp *gp, nl_rng *r, const double *x, int64_t m, int n_fn, double *F) {
    if (gp->dim < 1 || gp->dim > NL_FP_MAX_DIM || !(gp->ls0 > 0) || !(gp->var0 > 0))
        return nl_set_error(NL_EINVAL, "fprior gp: need 1 <= dim <= %d, lengthscale > 0, variance > 0", NL_FP_MAX_DIM);
    double *K = malloc(sizeof(double) * (size_t)m * m), *z = malloc(sizeof(double) * (size_t)m); /* K [m, m], z [m] */
    if (!K || !z) return free(K), free(z), nl_set_error(NL_ENOMEM, "fprior gp: out of memory");
    nl_status s = NL_OK;
    const int d = gp->dim;
    for (int k = 0; k < n_fn && !s; k++) {
        if (k == 0 || gp->hierarchical) {
            double ils[NL_FP_MAX_DIM], var = gp->var0;
            for (int i = 0; i < d; i++) ils[i] = 1 / (gp->hierarchical ? exp(log(gp->ls0) + gp->s_ls * nl_rng_normal(r)) : gp->ls0);
            if (gp->hierarchical) var = exp(gp->mu_v + gp->s_v * nl_rng_normal(r));
            for (double jit = 1e-6;; jit *= 10) {
                for (int64_t a = 0; a < m; a++)
                    for (int64_t b = 0; b <= a; b++) {
                        double r2 = 0;
                        for (int i = 0; i < d; i++) {
                            double e = (x[a * d + i] - x[b * d + i]) * ils[i];
                            r2 += e * e;
                        }
                        K[a * m + b] = var * exp(-0.5 * r2) + (a == b ? jit * var : 0);
                    }
                if (!nl_cholesky_inplace(K, m)) break;
                if (jit > 1e-2) {
                    s = nl_set_error(NL_ELINALG, "fprior gp: kernel matrix not positive definite");
                    break;
                }
            }
        }
        for (int64_t a = 0; a < m; a++) z[a] = nl_rng_normal(r);
        for (int64_t a = 0; a < m; a++) {
            double v = 0;
            for (int64_t b = 0; b <= a; b++) v += K[a * m + b] * z[b];
            F[(int64_t)k * m + a] = v;
        }
    }
    free(K), free(z);
    return s;
}

void nl_fp_measure_set(nl_rng *r, const double *xtr, int64_t ntr, int d, const double *lo, const double *hi, int n_meas,
                       double frac, double *xm) {
    int nt = (int)lround(frac * n_meas);
    if (nt > ntr) nt = (int)ntr;
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)(ntr > 0 ? ntr : 1));
    if (!perm) nt = 0;
    else if (nt > 0) nl_rng_permutation(r, perm, ntr);
    for (int k = 0; k < n_meas; k++)
        for (int i = 0; i < d; i++)
            xm[k * d + i] = k < nt ? xtr[perm[k] * d + i] : lo[i] + (hi[i] - lo[i]) * nl_rng_uniform(r);
    free(perm);
}

/* ---- the critic ---- */
typedef struct critic {
    int M, H;
    double *p, *g, *acc; /* [P] each: W1 [M, H], b1 [H], W2 [H, H], b2 [H], w3 [H], b3 [1] */
    int64_t P;
} critic;

static void critic_init(critic *c, nl_rng *r) {
    const int M = c->M, H = c->H;
    double *W1 = c->p, *b1 = W1 + (int64_t)M * H, *W2 = b1 + H, *b2 = W2 + (int64_t)H * H, *w3 = b2 + H, *b3 = w3 + H;
    /* the reference: xavier-normal weights, N(0, 1) biases */
    double s1 = sqrt(2.0 / (M + H)), s2 = sqrt(2.0 / (H + H)), s3 = sqrt(2.0 / (H + 1));
    for (int64_t i = 0; i < (int64_t)M * H; i++) W1[i] = s1 * nl_rng_normal(r);
    for (int64_t i = 0; i < (int64_t)H * H; i++) W2[i] = s2 * nl_rng_normal(r);
    for (int i = 0; i < H; i++) w3[i] = s3 * nl_rng_normal(r), b1[i] = nl_rng_normal(r), b2[i] = nl_rng_normal(r);
    b3[0] = nl_rng_normal(r);
    memset(c->acc, 0, sizeof(double) * (size_t)c->P);
}

static double sigm(double x) { return 1 / (1 + exp(-x)); }
/* sigmoid(x) from sp = softplus(x): 1 - exp(-sp) */
static double sig_sp(double sp) { return -expm1(-sp); }

/* Rows X [n, M] with output weights w [n]: returns sum_k w_k c(X_k); adds d/dparams into c->g when grad; dX [n, M]
 * (may be NULL) receives w_k dc/dX_k. work [n, 4H]. */
static double critic_pass(critic *c, const double *X, int n, const double *w, int grad, double *dX, double *work) {
    const int M = c->M, H = c->H;
    const double *W1 = c->p, *b1 = W1 + (int64_t)M * H, *W2 = b1 + H, *b2 = W2 + (int64_t)H * H, *w3 = b2 + H, *b3 = w3 + H;
    double *gW1 = c->g, *gb1 = gW1 + (int64_t)M * H, *gW2 = gb1 + H, *gb2 = gW2 + (int64_t)H * H, *gw3 = gb2 + H, *gb3 = gw3 + H;
    double *a1 = work, *a2 = a1 + H, *d1 = a2 + H, *d2 = d1 + H; /* [H] each, per row */
    double tot = 0;
    for (int k = 0; k < n; k++) {
        const double *xk = X + (int64_t)k * M;
        for (int j = 0; j < H; j++) a1[j] = b1[j];
        for (int i = 0; i < M; i++) {
            const double v = xk[i], *Wi = W1 + (int64_t)i * H;
            for (int j = 0; j < H; j++) a1[j] += v * Wi[j];
        }
        for (int j = 0; j < H; j++) a2[j] = b2[j], a1[j] = nl_fp_softplus(a1[j]); /* a1 now holds softplus(a1) */
        for (int i = 0; i < H; i++) {
            const double v = a1[i], *Wi = W2 + (int64_t)i * H;
            for (int j = 0; j < H; j++) a2[j] += v * Wi[j];
        }
        double out = b3[0];
        for (int j = 0; j < H; j++) a2[j] = nl_fp_softplus(a2[j]), out += a2[j] * w3[j]; /* a2 holds softplus(a2) */
        tot += w[k] * out;
        if (!grad && !dX) continue;
        for (int j = 0; j < H; j++) d2[j] = w[k] * w3[j] * sig_sp(a2[j]);
        for (int i = 0; i < H; i++) {
            const double *Wi = W2 + (int64_t)i * H;
            double s = 0;
            for (int j = 0; j < H; j++) s += Wi[j] * d2[j];
            d1[i] = s * sig_sp(a1[i]);
        }
        if (grad) {
            gb3[0] += w[k];
            for (int j = 0; j < H; j++) gw3[j] += w[k] * a2[j], gb2[j] += d2[j], gb1[j] += d1[j];
            for (int i = 0; i < H; i++) {
                const double v = a1[i];
                double *gi = gW2 + (int64_t)i * H;
                for (int j = 0; j < H; j++) gi[j] += v * d2[j];
            }
            for (int i = 0; i < M; i++) {
                const double v = xk[i];
                double *gi = gW1 + (int64_t)i * H;
                for (int j = 0; j < H; j++) gi[j] += v * d1[j];
            }
        }
        if (dX)
            for (int i = 0; i < M; i++) {
                const double *Wi = W1 + (int64_t)i * H;
                double s = 0;
                for (int j = 0; j < H; j++) s += Wi[j] * d1[j];
                dX[(int64_t)k * M + i] = s;
            }
    }
    return tot;
}

double nl_fp_critic_penalty(int M, int H, const double *params, const double *X, int n, double lambda, double *grad,
                            double *work) {
    const double *W1 = params, *b1 = W1 + (int64_t)M * H, *W2 = b1 + H, *b2 = W2 + (int64_t)H * H, *w3 = b2 + H;
    double *gW1 = grad, *gb1 = gW1 + (int64_t)M * H, *gW2 = gb1 + H, *gb2 = gW2 + (int64_t)H * H, *gw3 = gb2 + H;
    double *s1 = work, *g1 = s1 + H, *g2 = g1 + H, *u = g2 + H, *q = u + H, *v = q + H, *dz1 = v + H, *dz2 = dz1 + H; /* [H] */
    double *gx = dz2 + H, *gam = gx + M;                                                                           /* [M] */
    double tot = 0;
    for (int k = 0; k < n; k++) {
        const double *x = X + (int64_t)k * M;
        for (int j = 0; j < H; j++) s1[j] = b1[j];
        for (int i = 0; i < M; i++) {
            const double xi = x[i], *Wi = W1 + (int64_t)i * H;
            for (int j = 0; j < H; j++) s1[j] += xi * Wi[j];
        }
        for (int j = 0; j < H; j++) g1[j] = sigm(s1[j]), s1[j] = nl_fp_softplus(s1[j]), g2[j] = b2[j];
        for (int i = 0; i < H; i++) {
            const double si = s1[i], *Wi = W2 + (int64_t)i * H;
            for (int j = 0; j < H; j++) g2[j] += si * Wi[j];
        }
        for (int j = 0; j < H; j++) g2[j] = sigm(g2[j]), u[j] = g2[j] * w3[j];
        for (int i = 0; i < H; i++) { /* v = W2 u, q = sigma1 . v */
            const double *Wi = W2 + (int64_t)i * H;
            double sv = 0;
            for (int j = 0; j < H; j++) sv += Wi[j] * u[j];
            v[i] = sv, q[i] = g1[i] * sv;
        }
        double nrm = 0;
        for (int m = 0; m < M; m++) { /* grad_x c = W1 q */
            const double *Wm = W1 + (int64_t)m * H;
            double sg = 0;
            for (int j = 0; j < H; j++) sg += Wm[j] * q[j];
            gx[m] = sg, nrm += sg * sg;
        }
        nrm = sqrt(nrm);
        tot += (nrm - 1) * (nrm - 1);
        const double coef = nrm > 0 ? lambda / n * 2 * (nrm - 1) / nrm : 0;
        for (int m = 0; m < M; m++) gam[m] = coef * gx[m];
        for (int j = 0; j < H; j++) dz1[j] = 0;
        for (int m = 0; m < M; m++) { /* dq = W1^T gam (into dz1 for now) */
            const double *Wm = W1 + (int64_t)m * H, gm = gam[m];
            for (int j = 0; j < H; j++) dz1[j] += Wm[j] * gm;
        }
        for (int i = 0; i < H; i++) { /* dv = dq . sigma1 (in q's slot after use), dz1 = dq . v . sigma1' */
            double dq = dz1[i];
            dz1[i] = dq * v[i] * g1[i] * (1 - g1[i]);
            v[i] = dq * g1[i]; /* v now holds dv */
        }
        for (int j = 0; j < H; j++) { /* du = W2^T dv; dw3, dz2 */
            double du = 0;
            for (int i = 0; i < H; i++) du += W2[(int64_t)i * H + j] * v[i];
            gw3[j] += du * g2[j];
            dz2[j] = du * w3[j] * g2[j] * (1 - g2[j]);
            gb2[j] += dz2[j];
        }
        for (int i = 0; i < H; i++) { /* dW2 += dv u^T + s1 dz2^T; ds1 = W2 dz2 -> dz1 */
            const double *Wi = W2 + (int64_t)i * H;
            double *gi = gW2 + (int64_t)i * H, dvi = v[i], si = s1[i], ds = 0;
            for (int j = 0; j < H; j++) gi[j] += dvi * u[j] + si * dz2[j], ds += Wi[j] * dz2[j];
            dz1[i] += ds * g1[i];
        }
        for (int j = 0; j < H; j++) gb1[j] += dz1[j];
        for (int m = 0; m < M; m++) { /* dW1 += gam q^T + x dz1^T */
            double *gm = gW1 + (int64_t)m * H, a = gam[m], xm = x[m];
            for (int j = 0; j < H; j++) gm[j] += a * q[j] + xm * dz1[j];
        }
    }
    return lambda / n * tot;
}

nl_status nl_fp_fit(const nl_fp_arch *a, nl_fp_prior *p, const nl_fp_gp *gp, const nl_fp_fit_cfg *cfg, const double *xtr,
                    int64_t ntr, const double *lo, const double *hi, uint64_t seed, double *hist) {
    nl_status s = nl_fp_arch_check(a);
    if (s) return s;
    if (p->kind != 0) return nl_set_error(NL_EINVAL, "fprior fit: only the per-layer Gaussian prior has hyperparameters");
    if (cfg->outer < 1 || cfg->critic_steps < 1 || cfg->n_fn < 2 || cfg->n_meas < 1 || cfg->critic_hidden < 1)
        return nl_set_error(NL_EINVAL, "fprior fit: outer, critic steps, critic width, measurement points >= 1, functions >= 2");
    const int M = cfg->n_meas, H = cfg->critic_hidden, n = cfg->n_fn, d = a->d_in, L = a->depth + 1;
    const int64_t P = nl_fp_nparams(a);
    critic c = {M, H, NULL, NULL, NULL, (int64_t)M * H + (int64_t)H * H + 3 * H + 1};
    /* critic p, g, acc [cP] each; xm [M, d]; Fb, Fg [n, M]; eps [n, P]; sd, th, gth [P]; dF [n, M]; w [2n]; work */
    size_t tot = (size_t)c.P * 3 + (size_t)M * d + (size_t)n * M * 3 + (size_t)n * P + (size_t)P * 3 + 2 * (size_t)n +
                 8 * (size_t)H + 3 * (size_t)M + (size_t)n * M + nl_fp_work(a, M);
    double *buf = malloc(sizeof(double) * tot);
    if (!buf) return nl_set_error(NL_ENOMEM, "fprior fit: out of memory");
    c.p = buf, c.g = c.p + c.P, c.acc = c.g + c.P;
    double *xm = c.acc + c.P, *Fb = xm + (size_t)M * d, *Fg = Fb + (size_t)n * M, *eps = Fg + (size_t)n * M;
    double *sd = eps + (size_t)n * P, *th = sd + P, *gth = th + P, *dF = gth + P, *w = dF + (size_t)n * M;
    double *cw = w + 2 * n, *xh = cw + 8 * H + 2 * M, *work = xh + (size_t)n * M; /* cw [8H + 2M], xh [n, M] */
    double sqw[NL_FP_MAX_LAYERS] = {0}, sqb[NL_FP_MAX_LAYERS] = {0}; /* RMSprop state */
    nl_rng r;
    nl_rng_init(&r, seed, 31);
    for (int it = 0; it < cfg->outer && !s; it++) {
        nl_fp_measure_set(&r, xtr, ntr, d, lo, hi, M, cfg->frac_train, xm);
        if ((s = nl_fp_gp_functions(gp, &r, xm, M, n, Fg))) break;
        nl_fp_prior_sd(a, p, sd);
        for (int k = 0; k < n; k++) {
            double *ek = eps + (int64_t)k * P;
            for (int64_t i = 0; i < P; i++) ek[i] = nl_rng_normal(&r), th[i] = sd[i] * ek[i];
            nl_fp_forward(a, th, xm, M, Fb + (int64_t)k * M, work);
        }
        /* critic: maximise mean c(Fb) - mean c(Fg), from a fresh start */
        critic_init(&c, &r);
        for (int k = 0; k < n; k++) w[k] = -1.0 / n, w[n + k] = 1.0 / n; /* minimise -J */
        for (int st = 0; st < cfg->critic_steps; st++) {
            memset(c.g, 0, sizeof(double) * (size_t)c.P);
            critic_pass(&c, Fb, n, w, 1, NULL, cw);
            critic_pass(&c, Fg, n, w + n, 1, NULL, cw);
            if (cfg->penalty > 0) { /* interpolates eps F_bnn + (1 - eps) F_gp, one eps per pair */
                for (int k = 0; k < n; k++) {
                    double e = nl_rng_uniform(&r);
                    for (int j = 0; j < M; j++) xh[(int64_t)k * M + j] = e * Fb[(int64_t)k * M + j] + (1 - e) * Fg[(int64_t)k * M + j];
                }
                nl_fp_critic_penalty(M, H, c.p, xh, n, cfg->penalty, c.g, cw);
            }
            double gn = 0;
            for (int64_t i = 0; i < c.P; i++) {
                gn += c.g[i] * c.g[i];
                c.acc[i] += c.g[i] * c.g[i];
                c.p[i] -= cfg->lr_critic * c.g[i] / (sqrt(c.acc[i]) + 1e-10);
                if (cfg->penalty > 0) continue;
                if (c.p[i] > cfg->clip) c.p[i] = cfg->clip;
                if (c.p[i] < -cfg->clip) c.p[i] = -cfg->clip;
            }
            if (sqrt(gn) < cfg->grad_stop) break;
        }
        /* the W1 estimate and its gradient w.r.t. the BNN function values */
        for (int k = 0; k < n; k++) w[k] = 1.0 / n, w[n + k] = -1.0 / n;
        double wd = critic_pass(&c, Fb, n, w, 0, dF, cw) + critic_pass(&c, Fg, n, w + n, 0, NULL, cw);
        if (hist) hist[it] = wd;
        if (!isfinite(wd)) {
            s = nl_set_error(NL_ENONFINITE, "fprior fit: non-finite Wasserstein estimate at step %d", it);
            break;
        }
        double grw[NL_FP_MAX_LAYERS] = {0}, grb[NL_FP_MAX_LAYERS] = {0};
        for (int k = 0; k < n; k++) {
            const double *ek = eps + (int64_t)k * P;
            for (int64_t i = 0; i < P; i++) th[i] = sd[i] * ek[i], gth[i] = 0;
            nl_fp_forward(a, th, xm, M, Fb + (int64_t)k * M, work);
            nl_fp_backward(a, th, xm, M, dF + (int64_t)k * M, work, gth);
            int64_t o = 0;
            for (int l = 0; l < L; l++) {
                int ni = l == 0 ? d : a->width, no = l == a->depth ? 1 : a->width;
                double sw = 0, sb = 0;
                for (int i = 0; i < ni * no; i++, o++) sw += gth[o] * ek[o];
                for (int j = 0; j < no; j++, o++) sb += gth[o] * ek[o];
                grw[l] += sw / sqrt((double)ni) * sigm(p->rw[l]), grb[l] += sb * sigm(p->rb[l]);
            }
        }
        for (int l = 0; l < L; l++) { /* RMSprop (alpha 0.99, eps 1e-8), minimising the W1 estimate */
            sqw[l] = 0.99 * sqw[l] + 0.01 * grw[l] * grw[l], sqb[l] = 0.99 * sqb[l] + 0.01 * grb[l] * grb[l];
            p->rw[l] -= cfg->lr_psi * grw[l] / (sqrt(sqw[l]) + 1e-8);
            p->rb[l] -= cfg->lr_psi * grb[l] / (sqrt(sqb[l]) + 1e-8);
        }
    }
    free(buf);
    return s;
}
