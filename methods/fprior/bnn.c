/* fprior/bnn.c — the tanh MLP (forward, hand-written backward), prior function draws, adaptive SGHMC with several
 * chains, R-hat, and the marginal-match measurement (fprior.h). */
#include "fprior/fprior.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double nl_fp_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double nl_fp_softplus(double x) { return x > 30 ? x : log1p(exp(x)); }

nl_fp_fit_cfg nl_fp_fit_defaults(void) {
    /* the reference's UCI notebook: 200 outer steps, 200 critic steps (stop at grad norm 0.1), 128 functions,
     * 100 measurement points (70% training inputs), critic 200-200, Adagrad 0.02, RMSprop 0.05, gradient penalty 10
     * (clip 0.1 when the penalty is 0) */
    nl_fp_fit_cfg c = {200, 200, 128, 100, 200, 0.05, 0.02, 0.1, 0.1, 0.7, 10.0};
    return c;
}

nl_fp_sghmc_cfg nl_fp_sghmc_defaults(void) {
    nl_fp_sghmc_cfg c = {4, 2000, 2000, 30, 32, 0.01, 0.01, 0.1};
    return c;
}

nl_fp_prior nl_fp_prior_init(const nl_fp_arch *a, double raw) {
    nl_fp_prior p;
    memset(&p, 0, sizeof p);
    for (int l = 0; l <= a->depth && l < NL_FP_MAX_LAYERS; l++) p.rw[l] = p.rb[l] = raw;
    return p;
}

nl_fp_prior nl_fp_prior_fixed(double std0) {
    nl_fp_prior p;
    memset(&p, 0, sizeof p);
    p.kind = 1, p.std0 = std0;
    return p;
}

nl_status nl_fp_arch_check(const nl_fp_arch *a) {
    if (a->d_in < 1 || a->d_in > NL_FP_MAX_DIM) return nl_set_error(NL_EINVAL, "fprior: input dimension %d outside 1..%d", a->d_in, NL_FP_MAX_DIM);
    if (a->width < 1 || a->width > 4096) return nl_set_error(NL_EINVAL, "fprior: width %d outside 1..4096", a->width);
    if (a->depth < 1 || a->depth > NL_FP_MAX_LAYERS - 1) return nl_set_error(NL_EINVAL, "fprior: depth %d outside 1..%d", a->depth, NL_FP_MAX_LAYERS - 1);
    return NL_OK;
}

static int n_in(const nl_fp_arch *a, int l) { return l == 0 ? a->d_in : a->width; }
static int n_out(const nl_fp_arch *a, int l) { return l == a->depth ? 1 : a->width; }

int64_t nl_fp_nparams(const nl_fp_arch *a) {
    int64_t P = 0;
    for (int l = 0; l <= a->depth; l++) P += (int64_t)n_in(a, l) * n_out(a, l) + n_out(a, l);
    return P;
}

void nl_fp_prior_sd(const nl_fp_arch *a, const nl_fp_prior *p, double *sd) {
    int64_t o = 0;
    for (int l = 0; l <= a->depth; l++) {
        int ni = n_in(a, l), no = n_out(a, l);
        double sw = p->kind ? p->std0 : nl_fp_softplus(p->rw[l]) / sqrt((double)ni), sb = p->kind ? p->std0 : nl_fp_softplus(p->rb[l]);
        for (int i = 0; i < ni * no; i++) sd[o++] = sw;
        for (int j = 0; j < no; j++) sd[o++] = sb;
    }
}

size_t nl_fp_work(const nl_fp_arch *a, int64_t n) { return (size_t)n * (size_t)a->width * (size_t)(a->depth + 2); }

/* work: h_l [n, width] for l = 0..depth-1 (post-tanh), then two [n, width] scratch rows for the backward */
void nl_fp_forward(const nl_fp_arch *a, const double *th, const double *x, int64_t n, double *f, double *work) {
    const double *in = x;
    int64_t o = 0;
    for (int l = 0; l <= a->depth; l++) {
        int ni = n_in(a, l), no = n_out(a, l);
        const double *W = th + o, *b = th + o + (int64_t)ni * no; /* W [ni, no], b [no] */
        double *out = l == a->depth ? f : work + (size_t)l * n * a->width; /* [n, no] */
        for (int64_t k = 0; k < n; k++) {
            double *ok = out + k * no;
            const double *ik = in + k * ni;
            for (int j = 0; j < no; j++) ok[j] = b[j];
            for (int i = 0; i < ni; i++) {
                const double v = ik[i], *Wi = W + (int64_t)i * no;
                for (int j = 0; j < no; j++) ok[j] += v * Wi[j];
            }
            if (l < a->depth)
                for (int j = 0; j < no; j++) ok[j] = tanh(ok[j]);
        }
        in = out;
        o += (int64_t)ni * no + no;
    }
}

void nl_fp_backward(const nl_fp_arch *a, const double *th, const double *x, int64_t n, const double *df, double *work,
                    double *g) {
    int64_t off[NL_FP_MAX_LAYERS];
    int64_t o = 0;
    for (int l = 0; l <= a->depth; l++) off[l] = o, o += (int64_t)n_in(a, l) * n_out(a, l) + n_out(a, l);
    double *d0 = work + (size_t)a->depth * n * a->width, *d1 = d0 + (size_t)n * a->width; /* [n, width] each */
    const double *delta = df; /* [n, no] */
    for (int l = a->depth; l >= 0; l--) {
        int ni = n_in(a, l), no = n_out(a, l);
        const double *W = th + off[l];
        double *gW = g + off[l], *gb = gW + (int64_t)ni * no;
        const double *in = l == 0 ? x : work + (size_t)(l - 1) * n * a->width; /* [n, ni] */
        double *dprev = l > 0 ? (delta == d0 ? d1 : d0) : NULL;               /* [n, ni] */
        for (int64_t k = 0; k < n; k++) {
            const double *dk = delta + k * no, *ik = in + k * ni;
            for (int j = 0; j < no; j++) gb[j] += dk[j];
            for (int i = 0; i < ni; i++) {
                const double v = ik[i];
                const double *Wi = W + (int64_t)i * no;
                double *gWi = gW + (int64_t)i * no, s = 0;
                for (int j = 0; j < no; j++) gWi[j] += v * dk[j], s += Wi[j] * dk[j];
                if (dprev) dprev[k * ni + i] = s * (1 - v * v); /* in = tanh output for l > 0 */
            }
        }
        delta = dprev;
    }
}

nl_status nl_fp_prior_functions(const nl_fp_arch *a, const nl_fp_prior *p, nl_rng *r, const double *x, int64_t m,
                                int n_fn, double *F) {
    nl_status s = nl_fp_arch_check(a);
    if (s) return s;
    int64_t P = nl_fp_nparams(a);
    double *sd = malloc(sizeof(double) * (size_t)P * 2);                    /* sd [P], th [P] */
    double *work = malloc(sizeof(double) * nl_fp_work(a, m));
    if (!sd || !work) return free(sd), free(work), nl_set_error(NL_ENOMEM, "fprior: out of memory");
    double *th = sd + P;
    nl_fp_prior_sd(a, p, sd);
    for (int k = 0; k < n_fn; k++) {
        for (int64_t i = 0; i < P; i++) th[i] = sd[i] * nl_rng_normal(r);
        nl_fp_forward(a, th, x, m, F + (int64_t)k * m, work);
    }
    free(sd), free(work);
    return NL_OK;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

nl_status nl_fp_marginals(const nl_fp_arch *a, const nl_fp_prior *p, const nl_fp_gp *gp, const double *x, int64_t m,
                          int n_fn, uint64_t seed, double out[4]) {
    double *Fb = malloc(sizeof(double) * (size_t)n_fn * m), *Fg = malloc(sizeof(double) * (size_t)n_fn * m); /* [n_fn, m] */
    double *ca = malloc(sizeof(double) * (size_t)n_fn * 2);                                                  /* [2, n_fn] */
    if (!Fb || !Fg || !ca) return free(Fb), free(Fg), free(ca), nl_set_error(NL_ENOMEM, "fprior: out of memory");
    nl_rng r;
    nl_rng_init(&r, seed, 77);
    nl_status s = nl_fp_prior_functions(a, p, &r, x, m, n_fn, Fb);
    if (!s) s = nl_fp_gp_functions(gp, &r, x, m, n_fn, Fg);
    double sr = 0, w1 = 0, sb_sum = 0, sg_sum = 0;
    for (int64_t j = 0; j < m && !s; j++) {
        double mb = 0, mg = 0, vb = 0, vg = 0;
        for (int k = 0; k < n_fn; k++) ca[k] = Fb[(int64_t)k * m + j], ca[n_fn + k] = Fg[(int64_t)k * m + j];
        for (int k = 0; k < n_fn; k++) mb += ca[k], mg += ca[n_fn + k];
        mb /= n_fn, mg /= n_fn;
        for (int k = 0; k < n_fn; k++) vb += (ca[k] - mb) * (ca[k] - mb), vg += (ca[n_fn + k] - mg) * (ca[n_fn + k] - mg);
        double sb = sqrt(vb / (n_fn - 1)), sg = sqrt(vg / (n_fn - 1));
        qsort(ca, (size_t)n_fn, sizeof(double), cmp_d), qsort(ca + n_fn, (size_t)n_fn, sizeof(double), cmp_d);
        double w = 0;
        for (int k = 0; k < n_fn; k++) w += fabs(ca[k] - ca[n_fn + k]);
        sr += fabs(sb / sg - 1), w1 += w / n_fn / sg, sb_sum += sb, sg_sum += sg;
    }
    out[0] = sr / m, out[1] = w1 / m, out[2] = sb_sum / m, out[3] = sg_sum / m;
    free(Fb), free(Fg), free(ca);
    return s;
}

double nl_fp_rhat(const double *pred, int chains, int samples, int64_t nq, double *mx) {
    double sum = 0, best = 0;
    for (int64_t q = 0; q < nq; q++) {
        double gm = 0, B = 0, W = 0, cm[64];
        int C = chains < 64 ? chains : 64;
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int t = 0; t < samples; t++) s += pred[((int64_t)c * samples + t) * nq + q];
            cm[c] = s / samples, gm += cm[c] / C;
        }
        for (int c = 0; c < C; c++) {
            double v = 0;
            for (int t = 0; t < samples; t++) {
                double e = pred[((int64_t)c * samples + t) * nq + q] - cm[c];
                v += e * e;
            }
            W += v / (samples - 1) / C, B += (cm[c] - gm) * (cm[c] - gm) * samples / (C - 1);
        }
        double vp = (samples - 1.0) / samples * W + B / samples, R = W > 0 ? sqrt(vp / W) : 1.0;
        sum += R;
        if (R > best) best = R;
    }
    if (mx) *mx = best;
    return nq ? sum / nq : NAN;
}

nl_status nl_fp_sghmc(const nl_fp_arch *a, const nl_fp_prior *p, const nl_fp_sghmc_cfg *cfg, const double *x,
                      const double *y, int64_t n, const double *xq, int64_t nq, uint64_t seed, double *pred) {
    nl_status s = nl_fp_arch_check(a);
    if (s) return s;
    if (cfg->chains < 2 || cfg->samples < 2 || cfg->keep_every < 1 || cfg->burn_in < 0 || cfg->batch < 1 || n < 1)
        return nl_set_error(NL_EINVAL, "fprior sghmc: need chains >= 2, samples >= 2, keep_every >= 1, batch >= 1, data");
    const int64_t P = nl_fp_nparams(a);
    const int B = cfg->batch < n ? cfg->batch : (int)n;
    const int d = a->d_in;
    /* sd, th, mom, g, gavg, vhat, tau [P] each; xb [B, d], yb, fb, df [B]; perm [n] */
    double *buf = malloc(sizeof(double) * ((size_t)P * 7 + (size_t)B * (d + 3)));
    double *work = malloc(sizeof(double) * (nl_fp_work(a, B > nq ? B : nq)));
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n);
    if (!buf || !work || !perm) return free(buf), free(work), free(perm), nl_set_error(NL_ENOMEM, "fprior sghmc: out of memory");
    double *sd = buf, *th = sd + P, *mom = th + P, *g = mom + P, *gavg = g + P, *vhat = gavg + P, *tau = vhat + P;
    double *xb = tau + P, *yb = xb + (size_t)B * d, *fb = yb + B, *df = fb + B;
    nl_fp_prior_sd(a, p, sd);
    const double lr = cfg->lr, lr2 = lr * lr, scale = (double)n / B;
    nl_rng r;
    for (int c = 0; c < cfg->chains; c++) {
        nl_rng_init(&r, seed, 1000 + (uint64_t)c);
        /* start: N(0, 1/n_in) weights, zero biases (the same for every prior) */
        int64_t o = 0;
        for (int l = 0; l <= a->depth; l++) {
            int ni = l == 0 ? a->d_in : a->width, no = l == a->depth ? 1 : a->width;
            for (int i = 0; i < ni * no; i++) th[o++] = nl_rng_normal(&r) / sqrt((double)ni);
            for (int j = 0; j < no; j++) th[o++] = 0;
        }
        for (int64_t i = 0; i < P; i++) mom[i] = 0, gavg[i] = 1, vhat[i] = 1, tau[i] = 1;
        int64_t pos = n;
        const int64_t steps = (int64_t)cfg->burn_in + (int64_t)cfg->keep_every * cfg->samples;
        int kept = 0;
        for (int64_t t = 1; t <= steps; t++) {
            for (int k = 0; k < B; k++) {
                if (pos >= n) nl_rng_permutation(&r, perm, n), pos = 0;
                int64_t row = perm[pos++];
                memcpy(xb + (size_t)k * d, x + row * d, sizeof(double) * d), yb[k] = y[row];
            }
            nl_fp_forward(a, th, xb, B, fb, work);
            for (int k = 0; k < B; k++) df[k] = scale * (fb[k] - yb[k]) / cfg->noise_var;
            for (int64_t i = 0; i < P; i++) g[i] = th[i] / (sd[i] * sd[i]);
            nl_fp_backward(a, th, xb, B, df, work, g);
            const int burn = t <= cfg->burn_in;
            for (int64_t i = 0; i < P; i++) {
                if (burn) {
                    double rt = 1 / (tau[i] + 1);
                    tau[i] = tau[i] - tau[i] * gavg[i] * gavg[i] / vhat[i] + 1;
                    gavg[i] = gavg[i] - gavg[i] * rt + rt * g[i];
                    vhat[i] = vhat[i] - vhat[i] * rt + rt * g[i] * g[i];
                }
                double minv = 1 / (sqrt(vhat[i]) + 1e-16), nv = 2 * lr2 * cfg->mdecay * minv - lr2 * lr2;
                double sig = sqrt(nv > 1e-16 ? nv : 1e-16);
                mom[i] = mom[i] - lr2 * minv * g[i] - cfg->mdecay * mom[i] + sig * nl_rng_normal(&r);
                th[i] += mom[i];
            }
            if (!burn && (t - cfg->burn_in) % cfg->keep_every == 0 && kept < cfg->samples) {
                nl_fp_forward(a, th, xq, nq, pred + ((int64_t)c * cfg->samples + kept) * nq, work);
                kept++;
            }
        }
        for (int64_t i = 0; i < P && !s; i++)
            if (!isfinite(th[i])) s = nl_set_error(NL_ENONFINITE, "fprior sghmc: chain %d diverged (non-finite weights)", c);
    }
    free(buf), free(work), free(perm);
    return s;
}
