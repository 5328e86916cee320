/* Ledger entry `nngp-ntk` (schema v2, docs/repro.md): finite fully connected ReLU networks in the NTK parametrisation
 * converge to the infinite-width kernels of lib/kernels (Jacot et al. 2018, "Neural Tangent Kernel"; Lee et al. 2019,
 * "Wide Neural Networks of Any Depth Evolve as Linear Models Under Gradient Descent"). Two parts, on Fashion-MNIST
 * images (2x2 average-pooled, standardised, scaled onto the sphere |x|^2 = d so the input kernel x.x'/d is 1 on the
 * diagonal):
 *   ntk-init    the empirical NTK of width-n networks at initialisation (per-example Jacobians by the engine's
 *               autograd, finite_net.c) approaches the analytic NTK: the relative Frobenius error falls with width
 *               (log-log slope, theory -1/2), and at the widest width the seed-mean empirical NTK is within
 *               Monte-Carlo error of the analytic one;
 *   train-gap   networks trained by full-batch gradient descent on the mean squared error predict what gradient
 *               descent on the model linearised with the analytic NTK predicts (same f0, same steps): the relative
 *               gap at held-out images, over five points of the trajectory, shrinks with width (log-log slope,
 *               theory -1/2).
 * Controls: the same measurements against the analytic NTK of the wrong depth (one hidden layer more, one less) or
 * of the wrong activation (abs with the same diagonal, erf); the judge must reject each. */
#include "nngp_ntk/nngp_ntk.h"
#include "kernels/kernels.h"
#include "nnlab/data.h"
#include "nnlab/ledger.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NK_MAX_W 8
#define NK_MAX_S 16
#define NK_NK 5 /* kernels: the right one and four controls */
#define NK_CK 5 /* checkpoints of the training trajectory */
#define NK_JAC_BYTES ((size_t)256 << 20)

typedef struct nk_cfg {
    int64_t n_ntk;              /* ntk-init: images at which the NTK is compared (the first n_ntk) */
    int64_t n_train, n_test;    /* train-gap: the first n_train images train, the next n_test are held out */
    int depth;                  /* hidden layers */
    int n_widths;
    int64_t widths[NK_MAX_W];   /* ascending */
    int seeds_ntk, seeds_train; /* independent initialisations per width */
    int64_t steps;              /* gradient-descent steps */
    double lr;
    double sw, sb;              /* NTK parametrisation: z = sw/sqrt(fan_in) W h + sb b */
    int pool;                   /* average pooling of the 28 x 28 images */
    double slope_max;           /* rule: upper one-sided 95% bound of each log-log slope < slope_max */
    double z_max;               /* rule: seed-mean empirical NTK within z_max standard errors of the analytic one */
} nk_cfg;

static const nk_cfg nk_quick = {24, 24, 16, 2, 5, {64, 128, 256, 512, 1024}, 6, 4, 100, 0.5, 1.4142135623730951, 0.1,
                                2, -0.25, 3.5};
static const nk_cfg nk_full = {64, 64, 64, 2, 6, {64, 128, 256, 512, 1024, 2048}, 16, 8, 1000, 0.5,
                               1.4142135623730951, 0.1, 2, -0.25, 3.5};
static const nk_cfg nk_smoke = {8, 8, 8, 2, 4, {32, 64, 128, 256}, 4, 4, 40, 0.5, 1.4142135623730951, 0.1, 4, -0.25, 3.5};

static const char *const nk_kname[NK_NK] = {"relu", "depth+1", "depth-1", "abs", "erf"};

/* The analytic kernel k: 0 the network's own (ReLU, depth L), 1..4 the controls. */
static nl_status nk_kernel_cfg(const nk_cfg *cf, int k, nl_kernel_cfg *kc) {
    nl_kernel_cfg_default(kc);
    kc->depth = cf->depth + (k == 1) - (k == 2);
    kc->sw = cf->sw;
    kc->sb = cf->sb;
    nl_status s = nl_kernel_act_parse(kc, k == 3 ? "abs" : k == 4 ? "erf" : "relu");
    if (k == 3) kc->sw = cf->sw / sqrt(2.0); /* abs with sw^2/2: the same NNGP and NTK diagonal as the ReLU net's */
    return s;
}

/* Ordinary least squares y = a + b x: slope b, its standard error; df = n - 2. */
static void nk_ols(const double *x, const double *y, int n, double *slope, double *se) {
    double mx = 0, my = 0, sxx = 0, sxy = 0, rss = 0;
    for (int i = 0; i < n; i++) mx += x[i] / n, my += y[i] / n;
    for (int i = 0; i < n; i++) sxx += (x[i] - mx) * (x[i] - mx), sxy += (x[i] - mx) * (y[i] - my);
    *slope = sxy / sxx;
    for (int i = 0; i < n; i++) {
        double e = y[i] - my - *slope * (x[i] - mx);
        rss += e * e;
    }
    *se = n > 2 ? sqrt(rss / (n - 2) / sxx) : NAN;
}

static double nk_fro(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += b ? (a[i] - b[i]) * (a[i] - b[i]) : a[i] * a[i];
    return sqrt(s);
}

static uint64_t nk_seed(int part, int s, int64_t w) {
    return 0x9E3779B97F4A7C15ULL * (uint64_t)(s + 1) ^ ((uint64_t)w << 20) ^ (uint64_t)part;
}

/* The first n images of the training split, pooled, standardised with their own pixel mean / std, |x|^2 = d. */
static nl_status nk_images(const nk_cfg *cf, int64_t n, double **xo, int32_t **yo, int64_t *dout) {
    nl_dataset tr;
    memset(&tr, 0, sizeof tr);
    nl_status s = nl_dataset_load(&tr, "fashion-mnist", "train", NULL);
    if (s) return s;
    const int p = cf->pool, side = 28 / p;
    const int64_t d = (int64_t)side * side;
    double *x = malloc((size_t)(n * d) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    if (!x || !y || tr.n < n || tr.d != 784) {
        free(x); free(y); nl_dataset_free(&tr);
        return nl_set_error(NL_ENOMEM, "nngp-ntk: cannot prepare %lld images", (long long)n);
    }
    double mean = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
        y[i] = tr.y[i];
        for (int r = 0; r < side; r++)
            for (int q = 0; q < side; q++) {
                double a = 0;
                for (int u = 0; u < p; u++)
                    for (int v = 0; v < p; v++) a += tr.x[i * 784 + (r * p + u) * 28 + q * p + v];
                x[i * d + r * side + q] = a / (p * p);
            }
    }
    for (int64_t k = 0; k < n * d; k++) mean += x[k] / (double)(n * d);
    for (int64_t k = 0; k < n * d; k++) sq += (x[k] - mean) * (x[k] - mean) / (double)(n * d);
    for (int64_t i = 0; i < n; i++) {
        double nn = 0;
        for (int64_t j = 0; j < d; j++) x[i * d + j] = (x[i * d + j] - mean) / sqrt(sq), nn += x[i * d + j] * x[i * d + j];
        for (int64_t j = 0; j < d; j++) x[i * d + j] *= sqrt((double)d / nn);
    }
    nl_dataset_free(&tr);
    *xo = x; *yo = y; *dout = d;
    return NL_OK;
}

typedef struct nk_acc {         /* per kernel: the judged quantities, (width, seed) */
    double err[NK_MAX_W][NK_MAX_S];
    double gap[NK_MAX_W][NK_MAX_S];
    double z;
} nk_acc;

static void nk_fill(const nk_cfg *cf, const nk_acc *a, nl_exp_result *r) {
    char nm[64];
    double lx[NK_MAX_W * NK_MAX_S], ly[NK_MAX_W * NK_MAX_S], slope, se, m, sem;
    for (int part = 0; part < 2; part++) {
        const char *pre = part ? "gap" : "ntk_err";
        const int S = part ? cf->seeds_train : cf->seeds_ntk;
        int n = 0;
        for (int w = 0; w < cf->n_widths; w++) {
            const double *v = part ? a->gap[w] : a->err[w];
            nl_stats_mean_se(v, S, &m, &sem);
            snprintf(nm, sizeof nm, "%s_w%lld", pre, (long long)cf->widths[w]);
            nl_exp_set(r, nm, m);
            snprintf(nm, sizeof nm, "%s_w%lld_se", pre, (long long)cf->widths[w]);
            nl_exp_set(r, nm, sem);
            for (int s = 0; s < S; s++) lx[n] = log((double)cf->widths[w]), ly[n++] = log(v[s]);
        }
        nk_ols(lx, ly, n, &slope, &se);
        snprintf(nm, sizeof nm, "%s_slope", pre);
        nl_exp_set(r, nm, slope);
        snprintf(nm, sizeof nm, "%s_slope_se", pre);
        nl_exp_set(r, nm, se);
        snprintf(nm, sizeof nm, "%s_slope_df", pre);
        nl_exp_set(r, nm, n - 2);
    }
    nl_exp_set(r, "ntk_z_widest", a->z);
    nl_exp_set(r, "slope_max", cf->slope_max);
    nl_exp_set(r, "z_max", cf->z_max);
    nl_exp_set(r, "widest", (double)cf->widths[cf->n_widths - 1]);
    r->seeds = cf->seeds_ntk < cf->seeds_train ? cf->seeds_ntk : cf->seeds_train;
}

static nl_status nk_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    (void)e;
    const nk_cfg *cf = config;
    const int64_t n1 = cf->n_ntk, ntr = cf->n_train, nte = cf->n_test, nmax = n1 > ntr + nte ? n1 : ntr + nte;
    const int W = cf->n_widths;
    double *x = NULL, *K1 = NULL, *Ktr = NULL, *Kte = NULL, *th = NULL, *thsum = NULL, *thsq = NULL, *buf = NULL, *fck = NULL;
    int32_t *lab = NULL;
    nk_acc *acc = calloc(NK_NK, sizeof *acc);
    nl_nngp_ntk_net net;
    memset(&net, 0, sizeof net);
    nl_ctx *c = nl_ctx_new((size_t)8 << 20, 0);
    int64_t d = 0;
    nl_status s = NL_OK;
    if (!acc || !c) { s = nl_set_error(NL_ENOMEM, "nngp-ntk: out of memory"); goto out; }
    if (W < 3 || W > NK_MAX_W || cf->seeds_ntk < 2 || cf->seeds_ntk > NK_MAX_S || cf->seeds_train < 2 ||
        cf->seeds_train > NK_MAX_S) { s = nl_set_error(NL_EINVAL, "nngp-ntk: bad configuration"); goto out; }
    if ((s = nk_images(cf, nmax, &x, &lab, &d))) goto out;
    const double *xtr = x, *xte = x + ntr * d;
    double *y = malloc((size_t)ntr * sizeof *y);
    K1 = malloc((size_t)(NK_NK * n1 * n1) * sizeof *K1);
    Ktr = malloc((size_t)(NK_NK * ntr * ntr) * sizeof *Ktr);
    Kte = malloc((size_t)(NK_NK * nte * ntr) * sizeof *Kte);
    th = malloc((size_t)(n1 * n1) * sizeof *th);
    thsum = calloc((size_t)(n1 * n1), sizeof *thsum);
    thsq = calloc((size_t)(n1 * n1), sizeof *thsq);
    buf = malloc((size_t)(3 * (ntr + nte)) * sizeof *buf);
    fck = malloc((size_t)(NK_CK * nte) * sizeof *fck);
    if (!y || !fck || !K1 || !Ktr || !Kte || !th || !thsum || !thsq || !buf) {
        free(y);
        s = nl_set_error(NL_ENOMEM, "nngp-ntk: out of memory");
        goto out;
    }
    for (int64_t i = 0; i < ntr; i++) y[i] = lab[i] < 5 ? 1.0 : -1.0; /* tops/trousers/... (0-4) vs the rest */
    /* the analytic NTKs: the network's own and the controls' */
    for (int k = 0; k < NK_NK && !s; k++) {
        nl_kernel_cfg kc;
        if ((s = nk_kernel_cfg(cf, k, &kc))) break;
        if ((s = nl_kernel_matrix(&kc, x, n1, NULL, n1, d, NL_KERNEL_NTK, NL_F64, NULL, K1 + k * n1 * n1, 0))) break;
        if ((s = nl_kernel_matrix(&kc, xtr, ntr, NULL, ntr, d, NL_KERNEL_NTK, NL_F64, NULL, Ktr + k * ntr * ntr, 0))) break;
        s = nl_kernel_matrix(&kc, xte, nte, xtr, ntr, d, NL_KERNEL_NTK, NL_F64, NULL, Kte + k * nte * ntr, 0);
    }
    if (s) { free(y); goto out; }
    /* part 1: the empirical NTK at initialisation */
    double t0 = nl_time();
    for (int w = 0; w < W && !s; w++) {
        for (int sd = 0; sd < cf->seeds_ntk && !s; sd++) {
            if ((s = nl_nngp_ntk_net_init(&net, cf->depth, d, cf->widths[w], cf->sw, cf->sb, nk_seed(1, sd, cf->widths[w])))) break;
            s = nl_nngp_ntk_empirical_ntk(&net, c, x, n1, th, NK_JAC_BYTES);
            nl_nngp_ntk_net_free(&net);
            if (s) break;
            for (int k = 0; k < NK_NK; k++)
                acc[k].err[w][sd] = nk_fro(th, K1 + k * n1 * n1, n1 * n1) / nk_fro(K1 + k * n1 * n1, NULL, n1 * n1);
            if (w == W - 1)
                for (int64_t q = 0; q < n1 * n1; q++) thsum[q] += th[q], thsq[q] += th[q] * th[q];
        }
        if (opt->verbose) nl_progress("nngp-ntk: empirical NTK width %lld: rel. error %.4f (seed 0)", (long long)cf->widths[w], acc[0].err[w][0]);
    }
    const double secs1 = nl_time() - t0;
    if (!s) { /* z: |mean_s theta_s - theta|_F over sqrt(sum of the entries' squared standard errors) */
        const double S = cf->seeds_ntk;
        double var = 0;
        for (int64_t q = 0; q < n1 * n1; q++) {
            double m = thsum[q] / S;
            var += (thsq[q] - S * m * m) / (S - 1) / S;
            thsum[q] = m;
        }
        for (int k = 0; k < NK_NK; k++) acc[k].z = nk_fro(thsum, K1 + k * n1 * n1, n1 * n1) / sqrt(var);
    }
    /* part 2: trained networks against gradient descent on the linearised model of each analytic NTK */
    t0 = nl_time();
    double loss_ratio[NK_MAX_W * NK_MAX_S];
    int nl = 0;
    /* the gap is taken over the trajectory: the mean of the relative gaps at steps/16, /8, /4, /2 and steps (early on
     * the kernel's scale matters, at convergence only its shape) */
    double *f0 = buf, *fnet = buf + (ntr + nte), *flin = buf + 2 * (ntr + nte);
    for (int w = 0; w < W && !s; w++) {
        for (int sd = 0; sd < cf->seeds_train && !s; sd++) {
            double l0 = NAN, l1 = NAN, la;
            if ((s = nl_nngp_ntk_net_init(&net, cf->depth, d, cf->widths[w], cf->sw, cf->sb, nk_seed(2, sd, cf->widths[w])))) break;
            s = nl_nngp_ntk_net_predict(&net, c, x, ntr + nte, f0);
            int64_t done = 0;
            for (int j = 0; j < NK_CK && !s; j++) {
                const int64_t t = cf->steps >> (NK_CK - 1 - j);
                if ((s = nl_nngp_ntk_net_train(&net, c, xtr, y, ntr, cf->lr, t - done, j ? &la : &l0, &l1))) break;
                done = t;
                if ((s = nl_nngp_ntk_net_predict(&net, c, x, ntr + nte, fnet))) break;
                memcpy(fck + j * nte, fnet + ntr, (size_t)nte * sizeof *fck);
            }
            nl_nngp_ntk_net_free(&net);
            if (s) break;
            loss_ratio[nl++] = l1 / l0;
            double moved[NK_CK];
            for (int j = 0; j < NK_CK; j++) moved[j] = nk_fro(fck + j * nte, f0 + ntr, nte);
            for (int k = 0; k < NK_NK && !s; k++) {
                double num = 0;
                memcpy(flin, f0, (size_t)(ntr + nte) * sizeof *flin);
                done = 0;
                for (int j = 0; j < NK_CK && !s; j++) {
                    const int64_t t = cf->steps >> (NK_CK - 1 - j);
                    s = nl_nngp_ntk_linear_gd(Ktr + k * ntr * ntr, Kte + k * nte * ntr, flin, flin + ntr, y, ntr, nte,
                                              cf->lr, t - done, flin, flin + ntr);
                    done = t;
                    num += nk_fro(fck + j * nte, flin + ntr, nte) / moved[j] / NK_CK;
                }
                acc[k].gap[w][sd] = num;
            }
        }
        if (opt->verbose && !s) nl_progress("nngp-ntk: trained width %lld: relative gap to NTK regression %.4f (seed 0)", (long long)cf->widths[w], acc[0].gap[w][0]);
    }
    free(y);
    if (s) goto out;
    const double secs2 = nl_time() - t0;
    nk_fill(cf, &acc[0], out);
    double lr_m, lr_se;
    nl_stats_mean_se(loss_ratio, nl, &lr_m, &lr_se);
    nl_exp_set(out, "train_loss_ratio", lr_m);
    nl_exp_set(out, "ntk_seconds", secs1);
    nl_exp_set(out, "train_seconds", secs2);
    nl_exp_set(out, "n_ntk", (double)n1);
    nl_exp_set(out, "n_train", (double)ntr);
    nl_exp_set(out, "n_test", (double)nte);
    nl_exp_set(out, "depth", (double)cf->depth);
    static const char *const what[NK_NK] = {
        NULL,
        "the analytic ReLU NTK of one hidden layer more than the networks have",
        "the analytic ReLU NTK of one hidden layer less than the networks have",
        "the analytic NTK of abs activations with sw^2/2 (the same diagonal as the ReLU NTK, other off-diagonal)",
        "the analytic NTK of erf activations (same depth, sw, sb)"};
    static const char *const kind[NK_NK] = {NULL, "broken", "broken", "broken", "broken"};
    for (int k = 1; k < NK_NK; k++) {
        nl_exp_result *cr = nl_exp_control_add(out, nk_kname[k], kind[k], what[k]);
        if (!cr) { s = nl_set_error(NL_ENOMEM, "nngp-ntk: out of memory"); goto out; }
        nk_fill(cf, &acc[k], cr);
    }
    for (int k = 0; k < NK_NK; k++) {
        char nm[64];
        snprintf(nm, sizeof nm, "vs the %s NTK%s", nk_kname[k], k ? " (control)" : "");
        nl_curve *c1 = nl_exp_curve(out, "Empirical NTK at init: relative Frobenius error", nm, "log2 width", "log10 error");
        nl_curve *c2 = nl_exp_curve(out, "Trained network vs linearised NTK dynamics: relative gap", nm, "log2 width", "log10 gap");
        for (int w = 0; w < W; w++) {
            double m, se;
            nl_stats_mean_se(acc[k].err[w], cf->seeds_ntk, &m, &se);
            nl_curve_add(c1, log2((double)cf->widths[w]), log10(m));
            nl_stats_mean_se(acc[k].gap[w], cf->seeds_train, &m, &se);
            nl_curve_add(c2, log2((double)cf->widths[w]), log10(m));
        }
    }
    snprintf(out->note, sizeof out->note,
             "%lld / %lld+%lld Fashion-MNIST images (%dx%d pooled, on the sphere), %d hidden ReLU layers, NTK "
             "parametrisation sw^2 = %.2g, sb^2 = %.2g; GD lr %.2g, %lld steps; %d / %d seeds per width",
             (long long)n1, (long long)ntr, (long long)nte, cf->pool, cf->pool, cf->depth, cf->sw * cf->sw,
             cf->sb * cf->sb, cf->lr, (long long)cf->steps, cf->seeds_ntk, cf->seeds_train);
out:
    nl_nngp_ntk_net_free(&net);
    if (c) nl_ctx_free(c);
    free(acc); free(x); free(lab); free(K1); free(Ktr); free(Kte); free(th); free(thsum); free(thsq); free(buf); free(fck);
    return s;
}

/* The rule, the same for every mode and for the controls (their metrics are the errors against the wrong kernel). */
static int nk_judge(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t n) {
    (void)e; (void)full;
    const double smax = nl_exp_get(r, "slope_max", NULL), zmax = nl_exp_get(r, "z_max", NULL);
    const double wmax = nl_exp_get(r, "widest", NULL), z = nl_exp_get(r, "ntk_z_widest", NULL);
    double ub[2], sl[2], se[2];
    const char *pre[2] = {"ntk_err", "gap"};
    for (int p = 0; p < 2; p++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s_slope", pre[p]);
        sl[p] = nl_exp_get(r, nm, NULL);
        snprintf(nm, sizeof nm, "%s_slope_se", pre[p]);
        se[p] = nl_exp_get(r, nm, NULL);
        snprintf(nm, sizeof nm, "%s_slope_df", pre[p]);
        double df = nl_exp_get(r, nm, NULL);
        ub[p] = df >= 1 ? sl[p] + nl_stats_t95((int)df) * se[p] : NAN;
    }
    char rule[256];
    snprintf(rule, sizeof rule, "log-log slope of the relative Frobenius error |theta_emp - theta|/|theta| vs width: upper 95%% bound < %.2f (theory -0.5)", smax);
    const int p1 = isfinite(ub[0]) && ub[0] < smax;
    nl_exp_part_set(r, "ntk-init-rate", rule, p1, "slope %.3f +- %.3f, upper bound %.3f", sl[0], se[0], ub[0]);
    snprintf(rule, sizeof rule, "at width %.0f the seed-mean empirical NTK is within %.1f standard errors (Frobenius) of the analytic NTK", wmax, zmax);
    const int p2 = isfinite(z) && z < zmax;
    nl_exp_part_set(r, "ntk-init-mc", rule, p2, "|mean theta_emp - theta| = %.2f standard errors", z);
    snprintf(rule, sizeof rule, "log-log slope of the relative gap |f_net - f_lin(NTK)|/|f_net - f0| (held-out images, 5 points of the GD trajectory) vs width: upper 95%% bound < %.2f (theory -0.5)", smax);
    const int p3 = isfinite(ub[1]) && ub[1] < smax;
    nl_exp_part_set(r, "train-gap-rate", rule, p3, "slope %.3f +- %.3f, upper bound %.3f", sl[1], se[1], ub[1]);
    char nm[64];
    snprintf(nm, sizeof nm, "ntk_err_w%.0f", wmax);
    const double ew = nl_exp_get(r, nm, NULL);
    snprintf(nm, sizeof nm, "gap_w%.0f", wmax);
    const double gw = nl_exp_get(r, nm, NULL);
    snprintf(measured, n, "NTK error slope %.2f+-%.2f, %.1f SE at width %.0f (rel. error %.3f); trained-vs-NTK gap slope %.2f+-%.2f (gap %.3f)",
             sl[0], se[0], z, wmax, ew, sl[1], se[1], gw);
    return nl_exp_parts_pass(r);
}

const nl_experiment nl_exp_nngp_ntk = {
    .name = "nngp-ntk",
    .paper = "Jacot et al. 2018, Neural Tangent Kernel; Lee et al. 2019, Wide Neural Networks of Any Depth Evolve as Linear Models Under Gradient Descent",
    .claim = "Finite networks converge to the analytic kernel: the empirical NTK at init matches the analytic NTK within Monte-Carlo error "
             "(error ~ width^-1/2), and MSE-trained networks' predictions approach NTK (linearised) gradient descent as width grows; "
             "the NTK of the wrong depth or activation fails the same rule.",
    .quick_desc = "Fashion-MNIST 14x14 on the sphere, 2 hidden ReLU layers, NTK param.; widths 64..1024; empirical NTK on 24 images (6 seeds), "
                  "GD lr 0.5 x 100 steps on 24 images, 16 held out (4 seeds); controls: NTK of depth 3 / 1, abs, erf",
    .full_desc = "Fashion-MNIST 14x14 on the sphere, 2 hidden ReLU layers, NTK param.; widths 64..2048; empirical NTK on 64 images (16 seeds), "
                 "GD lr 0.5 x 1000 steps on 64 images, 64 held out (8 seeds); controls: NTK of depth 3 / 1, abs, erf",
    .smoke_desc = "Fashion-MNIST 7x7, widths 32..256, 8 images, 4 seeds, 40 GD steps (plumbing only)",
    .quick = &nk_quick,
    .full = &nk_full,
    .smoke = &nk_smoke,
    .metrics = "ntk_err_slope,ntk_err_slope_se,ntk_z_widest,gap_slope,gap_slope_se,train_loss_ratio,ntk_seconds,train_seconds",
    .run = nk_run,
    .judge = nk_judge,
};
