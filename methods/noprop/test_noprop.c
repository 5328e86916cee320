/* NoProp tests: the schedule (abar grows, abar_0 = 0, the block weights are positive and telescope to
 * (T/2) eta (SNR(T) - SNR(0)), SNR(0) = 0), the inference coefficients against the Gaussian posterior computed
 * independently (Bayes on z_{t-1} | z_t ~ N(sqrt(alpha) z_t, 1 - alpha) and z_t ~ q(z_t | u)), the KL term against the
 * generic Gaussian KL and by finite differences, CT's SNR'(t) by finite differences; that block t's parameters get
 * exactly zero gradient from block s's loss (s != t) while the shared embedding and classifier get gradient from every
 * block; that a DT step leaves the other blocks bit-identical; tiny training runs of all four variants on synthetic
 * data (DT above chance, DT's peak step memory below backprop's); the entry's judge on hand-made results; the CLI's
 * usage errors (exit 2). */
#include "nltest.h"
#include "noprop/noprop.h"
#include "nnlab/gradcheck.h"
#include "nnlab/ops.h"

static void test_schedule(void) {
    const int Ts[3] = {1, 3, 10};
    for (int i = 0; i < 3; i++) {
        int T = Ts[i];
        NLT_CHECK(nl_noprop_abar(0, T) == 0.0, "abar_0 = 0 exactly (T %d)", T);
        double sum = 0;
        for (int t = 1; t <= T; t++) {
            NLT_CHECK(nl_noprop_abar(t, T) > nl_noprop_abar(t - 1, T), "abar grows with t (t %d, T %d)", t, T);
            double w = nl_noprop_weight(t, T, 0.1);
            NLT_CHECK(w > 0 && isfinite(w), "weight w_%d = %g > 0 (T %d)", t, w, T);
            sum += w;
        }
        double snrT = nl_noprop_snr(nl_noprop_abar(T, T)), want = 0.5 * T * 0.1 * (snrT - 0.0);
        NLT_NEAR(sum / want, 1.0, 1e-12);
        NLT_CHECK(nl_noprop_abar(T, T) < 1.0, "abar_T < 1 (SNR finite)");
    }
    /* cosine values: abar_T = cos^2(pi/2 s/(1+s)); the middle of the schedule is 1/2 */
    NLT_NEAR(nl_noprop_abar(10, 10), pow(cos(0.5 * M_PI * 0.008 / 1.008), 2), 1e-15);
    NLT_NEAR(nl_noprop_abar(5, 10), pow(cos(0.5 * M_PI * 0.508 / 1.008), 2), 1e-15);
    /* continuous time: abar(0) = 0, abar(1) = the discrete abar_T, SNR' by central differences */
    NLT_CHECK(nl_noprop_abar_ct(0.0) == 0.0, "abar_ct(0) = 0");
    NLT_NEAR(nl_noprop_abar_ct(1.0), nl_noprop_abar(10, 10), 1e-15);
    const double ts[4] = {0.05, 0.3, 0.7, 0.95};
    for (int i = 0; i < 4; i++) {
        double h = 1e-6, t = ts[i];
        double fd = (nl_noprop_snr(nl_noprop_abar_ct(t + h)) - nl_noprop_snr(nl_noprop_abar_ct(t - h))) / (2 * h);
        NLT_NEAR(nl_noprop_dsnr_ct(t) / fd, 1.0, 1e-5);
    }
    /* CT weights: the paper's eta/2 SNR'(t), and the uniform one equal to its mean over t ~ U[0, 1] (midpoint rule on a
     * substitution-free grid: int_0^1 SNR'(t) dt = SNR(1) - SNR(0); SNR' is steep near 1, so a fine grid) */
    double mean = 0;
    const int n = 2000000;
    for (int i = 0; i < n; i++) mean += nl_noprop_ct_weight((i + 0.5) / n, 0.1, 1) / n;
    NLT_NEAR(mean / nl_noprop_ct_weight(0.3, 0.1, 0), 1.0, 1e-3);
    NLT_NEAR(nl_noprop_ct_weight(0.7, 0.1, 1), 0.05 * nl_noprop_dsnr_ct(0.7), 1e-12);
    NLT_NEAR(nl_noprop_ct_weight(0.1, 0.1, 0), nl_noprop_ct_weight(0.9, 0.1, 0), 0.0);
}

static void test_coeffs(void) {
    const int T = 10;
    for (int t = 1; t <= T; t++) {
        double a, b, c;
        nl_noprop_coeffs(t, T, &a, &b, &c);
        double ab = nl_noprop_abar(t, T), ap = nl_noprop_abar(t - 1, T), al = ap / ab;
        /* independent: prior z_t ~ N(sqrt(ab) u, 1 - ab); likelihood z_{t-1} | z_t ~ N(sqrt(al) z_t, 1 - al) */
        double prec = 1.0 / (1.0 - ab) + (t == 1 ? 0.0 : al / (1.0 - al)), var = 1.0 / prec;
        double a_ref = var * sqrt(ab) / (1.0 - ab), b_ref = t == 1 ? 0.0 : var * sqrt(al) / (1.0 - al);
        NLT_NEAR(a, a_ref, 1e-12);
        NLT_NEAR(b, b_ref, 1e-12);
        NLT_NEAR(c, var, 1e-12);
        /* the update keeps the marginals: z_{t-1} ~ q(z_{t-1}|u) -> z_t ~ q(z_t|u) */
        NLT_NEAR(a + b * sqrt(ap), sqrt(ab), 1e-12);
        NLT_NEAR(b * b * (1.0 - ap) + c, 1.0 - ab, 1e-12);
    }
    double a, b, c;
    nl_noprop_coeffs(1, T, &a, &b, &c);
    NLT_CHECK(b == 0.0 && fabs(a - sqrt(nl_noprop_abar(1, T))) < 1e-15, "t = 1: z_1 = sqrt(abar_1) u_hat + sqrt(1 - abar_1) eps");
}

static nl_var *kl_fn(nl_ctx *c, nl_var **in, void *ud) { return nl_noprop_kl(c, in[0], *(double *)ud); }

static void test_kl(void) {
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    double u[12];
    nl_rng r;
    nl_rng_init(&r, 7, 1);
    for (int i = 0; i < 12; i++) u[i] = nl_rng_normal(&r);
    const double abars[3] = {0.0, 0.3, 0.9};
    for (int k = 0; k < 3; k++) {
        double ab = abars[k];
        nl_ctx_reset(c);
        nl_var *uv = nl_input(c, nl_tensor_wrap(u, NL_F64, 2, (int64_t[]){3, 4}));
        double kl = nl_item(nl_noprop_kl(c, uv, ab)), ref = 0, generic = 0;
        for (int i = 0; i < 3; i++) {
            double u2 = 0;
            for (int j = 0; j < 4; j++) u2 += u[i * 4 + j] * u[i * 4 + j];
            ref += 0.5 * (ab * u2 + 4 * (1 - ab) - 4 - 4 * log(1 - ab)) / 3; /* the notes' closed form */
            double m2 = ab * u2, s2 = 1 - ab;                                  /* generic KL(N(m, s2 I) || N(0, I)) */
            generic += 0.5 * (m2 + 4 * s2 - 4 - 4 * log(s2)) / 3;
        }
        NLT_NEAR(kl, ref, 1e-12);
        NLT_NEAR(kl, generic, 1e-12);
        nl_tensor in = nl_tensor_wrap(u, NL_F64, 2, (int64_t[]){3, 4});
        nl_gc_result gr;
        NLT_OK(nl_gradcheck(kl_fn, &ab, 1, &in, NULL, 1e-6, 1e-8, 1e-6, &gr));
    }
    nl_ctx_reset(c);
    NLT_CHECK(nl_noprop_kl(c, nl_input(c, nl_tensor_wrap(u, NL_F64, 2, (int64_t[]){3, 4})), 1.0) == NULL, "abar = 1 is an error");
    nl_ctx_free(c);
}

/* Synthetic data: C Gaussian blobs in d dimensions, n rows. */
static void blobs(nl_dataset *ds, int64_t n, int64_t d, int C, uint64_t seed) {
    NLT_OK(nl_dataset_alloc(ds, n, d, C));
    nl_rng r;
    nl_rng_init(&r, seed, 3);
    for (int64_t i = 0; i < n; i++) {
        int y = (int)(i % C);
        ds->y[i] = y;
        for (int64_t j = 0; j < d; j++) ds->x[i * d + j] = (float)(nl_rng_normal(&r) + (j % C == y ? 2.0 : 0.0));
    }
}

static int all_zero(const nl_params *ps, int trainable_only) {
    const float *g = ps->grad;
    for (int i = 0; i < ps->n; i++) {
        if (trainable_only && !ps->p[i]->var.requires_grad) continue;
        for (int64_t k = 0; k < ps->p[i]->numel; k++)
            if (g[ps->p[i]->offset + k] != 0.0f) return 0;
    }
    return 1;
}

static double grad_norm_of(const nl_params *ps, const char *name) {
    nl_param *p = nl_params_find(ps, name);
    double s = 0;
    for (int64_t k = 0; p && k < p->numel; k++) s += pow(((const float *)ps->grad)[p->offset + k], 2);
    return sqrt(s);
}

static void test_zero_cross_gradient(void) {
    nl_dataset ds;
    blobs(&ds, 32, 12, 3, 1);
    nl_noprop_config cfg = nl_noprop_defaults();
    cfg.T = 4;
    cfg.cnn = 0;
    cfg.hidden = 8;
    cfg.embed = NL_NOPROP_EMB_LEARNED; /* the shared embedding then takes gradients too */
    cfg.embed_dim = 5;
    nl_noprop_model m;
    NLT_OK(nl_noprop_model_init(&m, &cfg, &ds));
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    nl_rng r;
    nl_rng_init(&r, 1, 2);
    for (int s = 1; s <= cfg.T; s++) {
        for (int t = 0; t < cfg.T; t++) nl_params_zero_grad(&m.blocks[t].ps);
        nl_params_zero_grad(&m.shared);
        nl_ctx_reset(c);
        nl_var *loss = nl_noprop_loss(c, &m, s, ds.x, ds.y, ds.n, &r);
        NLT_CHECK(loss != NULL, "loss of block %d: %s", s, nl_last_error());
        if (!loss) break;
        NLT_OK(nl_backward(c, loss));
        for (int t = 1; t <= cfg.T; t++)
            if (t != s) NLT_CHECK(all_zero(&m.blocks[t - 1].ps, 0), "block %d's parameters get exactly 0 from block %d's loss", t, s);
        NLT_CHECK(!all_zero(&m.blocks[s - 1].ps, 1), "block %d gets a gradient from its own loss", s);
        /* shared by design (the paper's): the embedding and the classifier take gradient from every block's loss */
        NLT_CHECK(grad_norm_of(&m.shared, "embed") > 0, "the embedding gets a gradient from block %d", s);
        NLT_CHECK(grad_norm_of(&m.shared, "cls.W") > 0, "the classifier gets a gradient from block %d", s);
    }
    /* the classifier's gradient comes only from the CE term: the same for every block given the same draws */
    nl_ctx_free(c);
    nl_noprop_model_free(&m);
    nl_dataset_free(&ds);
}

/* CT and FM losses against their formulas, recomputed from the same draws (a copy of the rng): eps [B, d] (FM: z_0),
 * then t_i ~ U[0, 1), then (CT) the z_1 noise. CT: z_t = sqrt(abar(t)) u + sqrt(1 - abar(t)) eps, input [z_t, t],
 * u_hat = softmax(f) E, loss mean_i w(t_i) ||u_hat_i - u_i||^2; FM: z_t = t u + (1 - t) z_0, target u - z_0, v = f.
 * The classifier starts at zero, so its CE is ln C exactly, and the KL is 0 (abar_0 = 0). */
static void test_ct_fm_loss(void) {
    nl_dataset ds;
    blobs(&ds, 16, 12, 3, 5);
    const int64_t B = 16, d = 3;
    for (int v = 0; v < 3; v++) { /* CT with the uniform weight, CT with the paper's SNR'(t), FM */
        nl_noprop_config cfg = nl_noprop_defaults();
        cfg.variant = v < 2 ? NL_NOPROP_CT : NL_NOPROP_FM;
        cfg.ct_snr_weight = v == 1;
        cfg.cnn = 0;
        cfg.hidden = 8;
        nl_noprop_model m;
        NLT_OK(nl_noprop_model_init(&m, &cfg, &ds));
        nl_ctx *c = nl_ctx_new((size_t)1 << 20, 0);
        nl_rng r, rr;
        nl_rng_init(&r, 7, 9);
        rr = r;
        nl_var *loss = nl_noprop_loss(c, &m, 0, ds.x, ds.y, B, &r);
        NLT_CHECK(loss != NULL, "loss");
        double got = nl_item(loss);
        nl_ctx_reset(c);
        nl_var *eps = nl_new(c, NL_F32, 2, (int64_t[]){B, d});     /* [B, d] */
        nl_var *zin = nl_new(c, NL_F32, 2, (int64_t[]){B, d + 1}); /* [B, d + 1]: z_t, t */
        nl_rng_fill_normal(&rr, &eps->val, 0.0, 1.0);
        double t[16], w[16];
        const float *e = eps->val.data;
        float *zp = zin->val.data;
        for (int64_t i = 0; i < B; i++) {
            t[i] = nl_rng_uniform(&rr);
            double ab = nl_noprop_abar_ct(t[i]);
            double cu = v < 2 ? sqrt(ab) : t[i], ce = v < 2 ? sqrt(1.0 - ab) : 1.0 - t[i];
            w[i] = v < 2 ? nl_noprop_ct_weight(t[i], cfg.eta, v == 1) : 1.0;
            if (v == 1) NLT_NEAR(w[i], 0.5 * cfg.eta * nl_noprop_dsnr_ct(t[i]), 1e-12 * w[i]);
            for (int64_t j = 0; j < d; j++) zp[i * (d + 1) + j] = (float)(cu * (ds.y[i] == j) + ce * e[i * d + j]);
            zp[i * (d + 1) + d] = (float)t[i];
        }
        nl_var *xv = nl_input(c, nl_tensor_wrap(ds.x, NL_F32, 2, (int64_t[]){B, 12}));
        nl_var *out = nl_noprop_block_forward(c, &m.blocks[0], xv, zin, 1); /* [B, 3] */
        NLT_CHECK(out != NULL, "forward");
        const float *o = out->val.data;
        double den = 0;
        for (int64_t i = 0; i < B; i++) {
            double mx = o[i * d], z = 0, sq = 0;
            for (int64_t j = 1; j < d; j++) mx = fmax(mx, o[i * d + j]);
            for (int64_t j = 0; j < d; j++) z += exp(o[i * d + j] - mx);
            for (int64_t j = 0; j < d; j++) {
                double u = ds.y[i] == j;
                double pred = v < 2 ? exp(o[i * d + j] - mx) / z : o[i * d + j], target = v < 2 ? u : u - e[i * d + j];
                sq += (pred - target) * (pred - target);
            }
            den += w[i] * sq / B;
        }
        double want = log(3.0) + den;
        printf("  %s: loss %.6f, formula %.6f\n", v == 0 ? "ct (uniform)" : v == 1 ? "ct (SNR')" : "fm", got, want);
        NLT_NEAR(got / want, 1.0, 2e-5);
        nl_ctx_free(c);
        nl_noprop_model_free(&m);
    }
    nl_dataset_free(&ds);
}

static void test_training(void) {
    nl_dataset tr, te;
    blobs(&tr, 600, 12, 3, 1);
    blobs(&te, 300, 12, 3, 2);
    double acc[4], peak[4];
    for (int v = 0; v <= NL_NOPROP_BACKPROP; v++) {
        nl_noprop_config cfg = nl_noprop_defaults();
        cfg.variant = (nl_noprop_variant)v;
        cfg.T = 4;
        cfg.cnn = 0;
        cfg.hidden = 16;
        cfg.epochs = 4;
        cfg.batch = 32;
        nl_noprop_result res;
        NLT_OK(nl_noprop_train(&cfg, &tr, &te, &res));
        acc[v] = res.test_accuracy;
        printf("  %s: %.3f\n", nl_noprop_variant_name(cfg.variant), acc[v]);
        peak[v] = res.peak_bytes;
        NLT_CHECK(isfinite(acc[v]) && res.peak_bytes > 0 && res.params > 0, "%s trains", nl_noprop_variant_name(cfg.variant));
    }
    NLT_CHECK(acc[NL_NOPROP_DT] > 0.8, "DT on separable blobs: %.3f > 0.8 (chance 0.33)", acc[NL_NOPROP_DT]);
    NLT_CHECK(acc[NL_NOPROP_BACKPROP] > 0.8, "backprop on separable blobs: %.3f > 0.8", acc[NL_NOPROP_BACKPROP]);
    NLT_CHECK(peak[NL_NOPROP_DT] < 0.5 * peak[NL_NOPROP_BACKPROP], "DT holds one block's graph: %.0f vs backprop %.0f bytes",
              peak[NL_NOPROP_DT], peak[NL_NOPROP_BACKPROP]);
    /* same seed, same result */
    nl_noprop_config cfg = nl_noprop_defaults();
    cfg.T = 3;
    cfg.cnn = 0;
    cfg.hidden = 8;
    nl_noprop_result r1, r2;
    NLT_OK(nl_noprop_train(&cfg, &tr, &te, &r1));
    NLT_OK(nl_noprop_train(&cfg, &tr, &te, &r2));
    NLT_CHECK(r1.test_accuracy == r2.test_accuracy, "deterministic given the seed");
    /* bad configurations */
    cfg.T = 0;
    NLT_CHECK(nl_noprop_train(&cfg, &tr, &te, &r1) == NL_EINVAL, "T = 0 is an error");
    cfg.T = 3;
    cfg.cnn = 1; /* CNN blocks need 28x28 images */
    NLT_CHECK(nl_noprop_train(&cfg, &tr, &te, &r1) == NL_EINVAL, "CNN on 12-d data is an error: %s", nl_last_error());
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
}

static void test_cnn_block(void) {
    nl_noprop_config cfg = nl_noprop_defaults();
    cfg.channels[0] = 2;
    cfg.channels[1] = 3;
    cfg.hidden = 8;
    nl_noprop_block b;
    NLT_OK(nl_noprop_block_init(&b, &cfg, 784, 10, 10, 1, 1));
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    nl_var *x = nl_zeros(c, NL_F32, 2, (int64_t[]){4, 784}), *z = nl_zeros(c, NL_F32, 2, (int64_t[]){4, 10});
    nl_rng r;
    nl_rng_init(&r, 1, 1);
    nl_rng_fill_normal(&r, &x->val, 0, 1);
    nl_var *out = nl_noprop_block_forward(c, &b, x, z, 1);
    NLT_CHECK(out && out->val.ndim == 2 && out->val.shape[0] == 4 && out->val.shape[1] == 10, "CNN block output [4, 10]");
    nl_ctx_free(c);
    nl_noprop_block_free(&b);
}

/* A result as the entry's run writes it (fractions), judged by the entry's rule. */
static int judge(const double *dt_m, const double *bp_m, const double *dt_f, const double *bp_f, int n) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    char name[64];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "dt_mnist_seed%d", i + 1);
        nl_exp_set(&r, name, dt_m[i]);
        snprintf(name, sizeof name, "bp_mnist_seed%d", i + 1);
        nl_exp_set(&r, name, bp_m[i]);
        snprintf(name, sizeof name, "dt_fashion_seed%d", i + 1);
        nl_exp_set(&r, name, dt_f[i]);
        snprintf(name, sizeof name, "bp_fashion_seed%d", i + 1);
        nl_exp_set(&r, name, bp_f[i]);
    }
    nl_exp_set(&r, "seeds", n);
    char msg[600];
    int pass = nl_exp_noprop.judge(&nl_exp_noprop, &r, NL_MODE_QUICK, msg, sizeof msg);
    NLT_CHECK(r.n_parts == 2 && strlen(msg) > 0, "two parts and a summary");
    nl_exp_result_free(&r);
    return pass;
}

static void test_judge(void) {
    const double bp_m[3] = {0.950, 0.955, 0.948}, bp_f[3] = {0.850, 0.855, 0.852};
    const double dt_m[3] = {0.945, 0.949, 0.944}, dt_f[3] = {0.840, 0.845, 0.842}; /* -0.5 and -1.0 points */
    NLT_CHECK(judge(dt_m, bp_m, dt_f, bp_f, 3) == 1, "DT within the margins passes");
    const double chance[3] = {0.11, 0.10, 0.10};
    NLT_CHECK(judge(chance, bp_m, chance, bp_f, 3) == 0, "a control at chance fails");
    const double dt_m2[3] = {0.933, 0.938, 0.931}; /* -1.7 points on MNIST */
    NLT_CHECK(judge(dt_m2, bp_m, dt_f, bp_f, 3) == 0, "1.7 points behind on MNIST fails");
    const double dt_f2[3] = {0.828, 0.833, 0.830}; /* -2.2 points on Fashion-MNIST */
    NLT_CHECK(judge(dt_m, bp_m, dt_f2, bp_f, 3) == 0, "2.2 points behind on Fashion-MNIST fails");
    const double dt_f3[3] = {0.832, 0.837, 0.834}; /* -1.8 points each: inside 2, outside 1.5 */
    NLT_CHECK(judge(dt_m, bp_m, dt_f3, bp_f, 3) == 1, "Fashion-MNIST's margin is 2 points");
    NLT_CHECK(judge(dt_m, bp_m, dt_f, bp_f, 2) == 0, "2 seeds are not enough");
    const double noisy[3] = {0.96, 0.90, 0.97}; /* mean -0.8 points, wide bound */
    NLT_CHECK(judge(noisy, bp_m, dt_f, bp_f, 3) == 0, "a noisy difference fails");
    const double nan3[3] = {NAN, 0.95, 0.95};
    NLT_CHECK(judge(nan3, bp_m, dt_f, bp_f, 3) == 0, "NaN fails");
}

static void test_cli(void) {
    char *a1[] = {"train", "--variant", "nope"};
    NLT_CHECK(nl_noprop_cli(3, a1) == 2, "unknown variant: exit 2");
    char *a2[] = {"train", "--data", "cifar"};
    NLT_CHECK(nl_noprop_cli(3, a2) == 2, "unknown data set: exit 2");
    char *a3[] = {"train", "--blocks", "0"};
    NLT_CHECK(nl_noprop_cli(3, a3) == 2, "--blocks 0: exit 2");
    char *a4[] = {"train", "--bogus"};
    NLT_CHECK(nl_noprop_cli(2, a4) == 2, "unknown flag: exit 2");
    char *a5[] = {"fly"};
    NLT_CHECK(nl_noprop_cli(1, a5) == 2, "unknown subcommand: exit 2");
    char *a6[] = {"train", "--channels", "16"};
    NLT_CHECK(nl_noprop_cli(3, a6) == 2, "one channel count: exit 2");
}

static void test_registration(void) {
    NLT_CHECK(!strcmp(nl_method_noprop.id, "noprop") && nl_method_noprop.cli == nl_noprop_cli, "id and command");
    NLT_CHECK(nl_method_noprop.experiments[0] == &nl_exp_noprop && !nl_method_noprop.experiments[1], "one entry, noprop");
    NLT_CHECK(nl_exp_noprop.smoke && nl_exp_noprop.quick && nl_exp_noprop.full, "smoke, quick and full configurations");
}

int main(void) {
    nl_set_num_threads(1);
    NLT_RUN(test_schedule);
    NLT_RUN(test_coeffs);
    NLT_RUN(test_kl);
    NLT_RUN(test_zero_cross_gradient);
    NLT_RUN(test_ct_fm_loss);
    NLT_RUN(test_training);
    NLT_RUN(test_cnn_block);
    NLT_RUN(test_judge);
    NLT_RUN(test_cli);
    NLT_RUN(test_registration);
    return nlt_finish();
}
