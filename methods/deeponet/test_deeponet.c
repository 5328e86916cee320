/* Tests of the deeponet method: the RK45 integrator against closed forms (and its error shrinking at tighter
 * tolerance), the not-a-knot spline, the GRF covariance, the operator targets, the model's gradients, a short
 * training run, and bad input (a sensor count of 0). */
#include "deeponet/deeponet.h"
#include "nnlab/gradcheck.h"
#include "nltest.h"

static void f_decay(double t, const double *y, double *d, void *ud) {
    (void)t, (void)ud;
    d[0] = -y[0];
}
static void f_cos(double t, const double *y, double *d, void *ud) {
    (void)y, (void)ud;
    d[0] = cos(t);
}
static void f_osc(double t, const double *y, double *d, void *ud) { /* y0' = y1, y1' = -y0: (cos t, -sin t) */
    (void)t, (void)ud;
    d[0] = y[1];
    d[1] = -y[0];
}
static void f_riccati(double t, const double *y, double *d, void *ud) { /* y' = 1 + y^2, y(0) = 0: tan t */
    (void)t, (void)ud;
    d[0] = 1 + y[0] * y[0];
}

static void test_ode_closed_forms(void) {
    nl_ode_opts o = nl_ode_defaults();
    nl_ode_stats st;
    double y[2] = {1, 0};
    NLT_OK(nl_ode_solve(f_decay, NULL, 1, 0, 5, y, &o, &st));
    NLT_NEAR(y[0], exp(-5.0), 1e-9);
    NLT_CHECK(st.steps > 5 && st.evals >= 6 * st.steps, "steps %lld, evals %lld", (long long)st.steps, (long long)st.evals);
    y[0] = 0;
    NLT_OK(nl_ode_solve(f_cos, NULL, 1, 0, 2, y, &o, NULL));
    NLT_NEAR(y[0], sin(2.0), 1e-8);
    y[0] = 1, y[1] = 0;
    NLT_OK(nl_ode_solve(f_osc, NULL, 2, 0, 10, y, &o, NULL));
    NLT_NEAR(y[0], cos(10.0), 1e-7);
    NLT_NEAR(y[1], -sin(10.0), 1e-7);
    y[0] = 0;
    NLT_OK(nl_ode_solve(f_riccati, NULL, 1, 0, 1.4, y, &o, NULL));
    NLT_NEAR(y[0] / tan(1.4), 1.0, 1e-7);
    /* t1 == t0: unchanged */
    y[0] = 3;
    NLT_OK(nl_ode_solve(f_decay, NULL, 1, 2, 2, y, &o, NULL));
    NLT_CHECK(y[0] == 3, "zero-length interval changed y to %g", y[0]);
    /* bad input */
    NLT_CHECK(nl_ode_solve(f_decay, NULL, 0, 0, 1, y, &o, NULL) == NL_EINVAL, "n = 0 accepted");
    NLT_CHECK(nl_ode_solve(f_decay, NULL, 1, 1, 0, y, &o, NULL) == NL_EINVAL, "t1 < t0 accepted");
    o.rtol = 0;
    NLT_CHECK(nl_ode_solve(f_decay, NULL, 1, 0, 1, y, &o, NULL) == NL_EINVAL, "rtol 0 accepted");
    /* blow-up (y' = 1 + y^2 past pi/2) is reported, not looped on */
    o = nl_ode_defaults();
    y[0] = 0;
    NLT_CHECK(nl_ode_solve(f_riccati, NULL, 1, 0, 2, y, &o, NULL) != NL_OK, "integrating tan past pi/2 succeeded (%g)", y[0]);
}

/* The step control works: a tighter tolerance takes more steps and lands much closer. */
static void test_ode_adaptive(void) {
    double prev_err = INFINITY;
    int64_t prev_steps = 0;
    const double tols[3] = {1e-3, 1e-6, 1e-9};
    for (int k = 0; k < 3; k++) {
        nl_ode_opts o = nl_ode_defaults();
        o.rtol = tols[k];
        o.atol = tols[k] * 1e-3;
        nl_ode_stats st;
        double y[2] = {1, 0};
        NLT_OK(nl_ode_solve(f_osc, NULL, 2, 0, 20, y, &o, &st));
        double err = hypot(y[0] - cos(20.0), y[1] + sin(20.0));
        NLT_CHECK(err < prev_err / 30, "rtol %g: error %.3e not well below %.3e", tols[k], err, prev_err);
        NLT_CHECK(st.steps > prev_steps, "rtol %g: %lld steps <= %lld", tols[k], (long long)st.steps, (long long)prev_steps);
        NLT_CHECK(err < 100 * tols[k], "rtol %g: error %.3e", tols[k], err);
        prev_err = err;
        prev_steps = st.steps;
    }
}

static void test_spline(void) {
    const int64_t n = 50;
    double y[50], m[50], w[50];
    for (int64_t i = 0; i < n; i++) {
        double x = (double)i / (double)(n - 1);
        y[i] = 2 - x + 3 * x * x - 5 * x * x * x; /* not-a-knot reproduces cubics exactly */
    }
    nl_spline_fit(n, y, m, w);
    double worst = 0;
    for (int k = 0; k <= 997; k++) {
        double x = k / 997.0;
        double e = fabs(nl_spline_eval(n, y, m, x) - (2 - x + 3 * x * x - 5 * x * x * x));
        worst = e > worst ? e : worst;
    }
    NLT_CHECK(worst < 1e-12, "cubic not reproduced: max error %.3e", worst);
    for (int64_t i = 0; i < n; i++) y[i] = sin(7.0 * i / (n - 1));
    nl_spline_fit(n, y, m, w);
    for (int64_t i = 0; i < n; i += 7) NLT_NEAR(nl_spline_eval(n, y, m, (double)i / (n - 1)), y[i], 1e-14);
    NLT_NEAR(nl_spline_eval(n, y, m, 0.3141), sin(7 * 0.3141), 1e-6);
    /* n = 4 and n = 5 (the smallest systems) also reproduce a cubic */
    for (int64_t nn = 4; nn <= 5; nn++) {
        for (int64_t i = 0; i < nn; i++) {
            double x = (double)i / (double)(nn - 1);
            y[i] = x * x * x - x;
        }
        nl_spline_fit(nn, y, m, w);
        NLT_NEAR(nl_spline_eval(nn, y, m, 0.37), 0.37 * 0.37 * 0.37 - 0.37, 1e-12);
    }
}

/* The sample covariance of many GRF draws matches the RBF kernel (and the mean is 0). */
static void test_grf_covariance(void) {
    nl_grf g;
    NLT_OK(nl_grf_init(&g, 1000, 0.2, 1e-13));
    NLT_CHECK(g.jitter >= 1e-13 && g.jitter <= 1e-10, "jitter %g", g.jitter);
    const int64_t S = 8000, n = g.n;
    double *f = malloc((size_t)(S * n) * sizeof *f);
    nl_rng r;
    nl_rng_init(&r, 5, 1);
    NLT_OK(nl_grf_sample(&g, &r, S, f));
    const int64_t pts[6] = {0, 100, 333, 500, 750, 999};
    double worst = 0, worst_mean = 0;
    for (int a = 0; a < 6; a++) {
        double mu = 0;
        for (int64_t s = 0; s < S; s++) mu += f[s * n + pts[a]];
        mu /= (double)S;
        worst_mean = fabs(mu) > worst_mean ? fabs(mu) : worst_mean;
        for (int b = a; b < 6; b++) {
            double c = 0;
            for (int64_t s = 0; s < S; s++) c += f[s * n + pts[a]] * f[s * n + pts[b]];
            c /= (double)S;
            double dx = (double)(pts[a] - pts[b]) / 999.0, k = exp(-dx * dx / (2 * 0.04));
            double se = sqrt((1 + k * k) / (double)S); /* sd of the sample covariance of two unit Gaussians */
            double z = fabs(c - k) / se;
            worst = z > worst ? z : worst;
        }
    }
    NLT_CHECK(worst < 4.5, "sample covariance off the kernel by %.2f SE", worst);
    NLT_CHECK(worst_mean < 4.5 / sqrt((double)S), "sample mean %.4f", worst_mean);
    free(f);
    nl_grf_free(&g);
    NLT_CHECK(nl_grf_init(&g, 3, 0.2, 1e-13) == NL_EINVAL, "3 grid points accepted");
    NLT_CHECK(nl_grf_init(&g, 100, 0, 1e-13) == NL_EINVAL, "length scale 0 accepted");
}

/* Targets through the spline and the integrator: u = cos -> sin; u = x -> x^2 / 2; u = sin(pi x) -> (1 - cos pi x) / pi;
 * nonlinear ODE with u = 1: s' = 1 - s^2 -> tanh. */
static void test_targets(void) {
    const int64_t n = 1000;
    double *u = malloc((size_t)n * sizeof *u), *m = malloc((size_t)(2 * n) * sizeof *m);
    const double ys[4] = {0.05, 0.4, 0.77, 1.0};
    for (int c = 0; c < 4; c++) {
        for (int64_t i = 0; i < n; i++) {
            double x = (double)i / (double)(n - 1);
            u[i] = c == 0 ? cos(x) : c == 1 ? x : c == 2 ? sin(M_PI * x) : 1.0;
        }
        nl_spline_fit(n, u, m, m + n);
        for (int k = 0; k < 4; k++) {
            double y = ys[k], s = NAN;
            nl_deeponet_op op = c == 3 ? NL_DON_ODE : NL_DON_ANTIDERIV;
            NLT_OK(nl_deeponet_solve(op, n, u, m, y, NULL, &s, NULL));
            double want = c == 0 ? sin(y) : c == 1 ? y * y / 2 : c == 2 ? (1 - cos(M_PI * y)) / M_PI : tanh(y);
            NLT_CHECK(fabs(s - want) < 1e-9, "case %d at y = %g: %.12f vs %.12f", c, y, s, want);
        }
    }
    free(u);
    free(m);
}

static void test_data(void) {
    nl_grf g;
    NLT_OK(nl_grf_init(&g, 1000, 0.2, 1e-13));
    nl_deeponet_data d, d2;
    NLT_OK(nl_deeponet_data_make(&d, &g, 300, 100, 3, 1, NULL));
    NLT_CHECK(d.n == 300 && d.m == 100, "shape");
    int ok = 1;
    for (int64_t i = 0; i < d.n; i++) ok = ok && d.y[i] >= 0 && d.y[i] <= 1 && isfinite(d.s[0][i]) && isfinite(d.s[1][i]);
    NLT_CHECK(ok, "points in [0, 1] and finite targets");
    /* deterministic in (seed, stream) */
    NLT_OK(nl_deeponet_data_make(&d2, &g, 300, 100, 3, 1, NULL));
    NLT_CHECK(!memcmp(d.u, d2.u, 300 * 100 * sizeof(float)) && !memcmp(d.s[1], d2.s[1], 300 * sizeof(float)), "not reproducible");
    /* the shuffle control keeps the rows (a permutation) but moves them */
    NLT_OK(nl_deeponet_data_shuffle_u(&d2, 9));
    double sa = 0, sb = 0;
    int moved = 0;
    for (int64_t i = 0; i < 300; i++) {
        sa += d.u[i * 100 + 17];
        sb += d2.u[i * 100 + 17];
        moved += d.u[i * 100] != d2.u[i * 100];
    }
    NLT_NEAR(sa, sb, 1e-3);
    NLT_CHECK(moved > 250, "only %d rows moved", moved);
    nl_deeponet_data_free(&d);
    nl_deeponet_data_free(&d2);
    NLT_CHECK(nl_deeponet_data_make(&d, &g, 10, 0, 3, 1, NULL) == NL_EINVAL, "0 sensors accepted");
    nl_grf_free(&g);
}

typedef struct gc_ud {
    nl_deeponet_model *md;
    int np;
} gc_ud;

/* inputs: u, y, then every parameter in store order; the model's vars are pointed at the leaves */
static nl_var *gc_forward(nl_ctx *c, nl_var **in, void *p) {
    gc_ud *ud = p;
    nl_deeponet_model m = *ud->md;
    nl_var **slots[2 * NL_DON_MAX_LAYERS * 2 + 1];
    int k = 0;
    if (m.arch == NL_DON_DEEPONET) {
        for (int i = 0; i < m.nb; i++) slots[k++] = &m.bw[i], slots[k++] = &m.bb[i];
        for (int i = 0; i < m.nt; i++) slots[k++] = &m.tw[i], slots[k++] = &m.tb[i];
        slots[k++] = &m.b0;
    } else {
        for (int i = 0; i < m.nb; i++) slots[k++] = &m.bw[i], slots[k++] = &m.bb[i];
    }
    for (int i = 0; i < k; i++) *slots[i] = in[2 + i];
    return nl_deeponet_forward(c, &m, in[0], in[1]);
}

static void test_gradients(void) {
    for (int arch = 0; arch < 2; arch++) {
        nl_deeponet_model md;
        NLT_OK(nl_deeponet_model_init(&md, (nl_deeponet_arch)arch, 5, 4, 2, NL_F64, 11));
        const int64_t B = 6;
        double u[6 * 5], y[6];
        nl_rng r;
        nl_rng_init(&r, 2, 0);
        for (int i = 0; i < 30; i++) u[i] = nl_rng_normal(&r);
        for (int i = 0; i < 6; i++) y[i] = nl_rng_uniform(&r);
        /* biases away from 0 so that no ReLU input sits at its kink */
        for (int i = 0; i < md.ps.n; i++)
            if (strstr(md.ps.p[i]->name, "bias") || !strcmp(md.ps.p[i]->name, "b0"))
                for (int64_t j = 0; j < md.ps.p[i]->numel; j++) ((double *)md.ps.p[i]->var.val.data)[j] = 0.1 + 0.05 * (double)j;
        nl_tensor in[2 + 2 * 2 * NL_DON_MAX_LAYERS + 1];
        int64_t us[2] = {B, 5}, ysh[2] = {B, 1};
        in[0] = nl_tensor_wrap(u, NL_F64, 2, us);
        in[1] = nl_tensor_wrap(y, NL_F64, 2, ysh);
        for (int i = 0; i < md.ps.n; i++) in[2 + i] = md.ps.p[i]->var.val;
        gc_ud ud = {&md, md.ps.n};
        nl_gc_result res;
        NLT_OK(nl_gradcheck(gc_forward, &ud, 2 + md.ps.n, in, NULL, 1e-6, 1e-7, 1e-5, &res));
        NLT_CHECK(res.checked > 50, "%s: %lld elements checked", arch ? "fnn" : "deeponet", (long long)res.checked);
        nl_deeponet_model_free(&md);
    }
}

static void test_params_and_forward(void) {
    nl_deeponet_model md;
    NLT_OK(nl_deeponet_model_init(&md, NL_DON_DEEPONET, 100, 40, 2, NL_F32, 1));
    int64_t p = 0;
    for (int i = 0; i < md.ps.n; i++) p += md.ps.p[i]->numel;
    NLT_CHECK(p == 7401, "DeepONet parameters %lld (branch 5680 + trunk 1720 + b0)", (long long)p);
    /* forward = sum_k b_k t_k + b0 against a hand computation with the trunk's ReLU after its last layer */
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    float u[100], y[1] = {0.3f};
    for (int i = 0; i < 100; i++) u[i] = (float)sin(0.1 * i);
    ((float *)md.b0->val.data)[0] = 0.25f;
    int64_t us[2] = {1, 100}, ys[2] = {1, 1};
    nl_var *out = nl_deeponet_forward(c, &md, nl_input(c, nl_tensor_wrap(u, NL_F32, 2, us)), nl_input(c, nl_tensor_wrap(y, NL_F32, 2, ys)));
    NLT_CHECK(out && out->val.shape[0] == 1 && out->val.shape[1] == 1, "output shape");
    double h[40], b[40], t1[40], t[40];
    const float *W0 = md.bw[0]->val.data, *W1 = md.bw[1]->val.data, *T0 = md.tw[0]->val.data, *T1 = md.tw[1]->val.data;
    for (int o = 0; o < 40; o++) {
        double a = 0;
        for (int i = 0; i < 100; i++) a += W0[o * 100 + i] * u[i];
        h[o] = a > 0 ? a : 0;
        t1[o] = T0[o] * 0.3 > 0 ? T0[o] * 0.3 : 0;
    }
    double want = 0.25;
    for (int o = 0; o < 40; o++) {
        double a = 0, q = 0;
        for (int i = 0; i < 40; i++) a += W1[o * 40 + i] * h[i], q += T1[o * 40 + i] * t1[i];
        b[o] = a;
        t[o] = q > 0 ? q : 0;
        want += b[o] * t[o];
    }
    NLT_NEAR(((float *)out->val.data)[0], want, 1e-4);
    nl_ctx_free(c);
    nl_deeponet_model_free(&md);
    NLT_OK(nl_deeponet_model_init(&md, NL_DON_FNN, 100, 50, 2, NL_F32, 1));
    p = 0;
    for (int i = 0; i < md.ps.n; i++) p += md.ps.p[i]->numel;
    NLT_CHECK(p == 7701, "FNN parameters %lld", (long long)p);
    nl_deeponet_model_free(&md);
}

static void test_training_decreases_loss(void) {
    nl_grf g;
    NLT_OK(nl_grf_init(&g, 1000, 0.2, 1e-13));
    nl_deeponet_data tr, te;
    NLT_OK(nl_deeponet_data_make(&tr, &g, 512, 100, 1, 1, NULL));
    NLT_OK(nl_deeponet_data_make(&te, &g, 512, 100, 1, 2, NULL));
    for (int arch = 0; arch < 2; arch++) {
        nl_deeponet_config c = nl_deeponet_defaults();
        c.arch = (nl_deeponet_arch)arch;
        c.n_train = c.n_test = 512;
        c.batch = 64;
        c.iters = 0;
        nl_deeponet_result r0, r1;
        NLT_OK(nl_deeponet_train(&c, &tr, &te, &r0));
        c.iters = 300;
        c.ckpt_every = 100;
        NLT_OK(nl_deeponet_train(&c, &tr, &te, &r1));
        NLT_CHECK(r1.train_mse < r0.train_mse / 5 && r1.test_mse < r0.test_mse / 5, "%s: MSE %.3e -> %.3e (test %.3e -> %.3e)",
                  arch ? "fnn" : "deeponet", r0.train_mse, r1.train_mse, r0.test_mse, r1.test_mse);
        NLT_CHECK(r1.best_step > 0 && r1.best_step <= 300 && (r1.best_step % 100 == 0), "checkpoint step %lld", (long long)r1.best_step);
        c.ckpt_every = 0; /* no checkpoints: the last iterate is the model */
        nl_deeponet_result r2;
        NLT_OK(nl_deeponet_train(&c, &tr, &te, &r2));
        NLT_CHECK(r2.best_step == 300 && r2.test_mse == r2.test_mse_last, "no checkpoints: step %lld, %.6e vs %.6e",
                  (long long)r2.best_step, r2.test_mse, r2.test_mse_last);
        NLT_CHECK(r1.test_mse_last == r2.test_mse_last, "checkpointing changed the training itself");
        NLT_CHECK(r1.test_mse_trim <= r1.test_mse * (1 + 1e-9), "trimmed MSE %.6e above the MSE %.6e", r1.test_mse_trim, r1.test_mse);
    }
    nl_deeponet_data_free(&tr);
    nl_deeponet_data_free(&te);
    nl_grf_free(&g);
}

static void test_bad_input(void) {
    nl_deeponet_config c = nl_deeponet_defaults();
    c.sensors = 0;
    NLT_CHECK(nl_deeponet_check_config(&c) == NL_EINVAL && strstr(nl_last_error(), "sensor count 0"), "message: %s", nl_last_error());
    nl_deeponet_result r;
    NLT_CHECK(nl_deeponet_run(&c, &r) == NL_EINVAL, "run with 0 sensors");
    nl_deeponet_model md;
    NLT_CHECK(nl_deeponet_model_init(&md, NL_DON_DEEPONET, 0, 40, 2, NL_F32, 1) == NL_EINVAL, "model with 0 sensors");
    /* the CLI: a clear error and a non-zero exit */
    char a0[] = "train", a1[] = "--sensors", a2[] = "0", a3[] = "--quiet";
    char *argv[] = {a0, a1, a2, a3};
    int rc = nl_deeponet_cli(4, argv);
    NLT_CHECK(rc != 0, "nnlab deeponet train --sensors 0 exited %d", rc);
    nl_deeponet_op op;
    NLT_CHECK(nl_deeponet_op_parse("heat", &op) == NL_EINVAL, "unknown operator accepted");
}

int main(void) {
    nl_set_num_threads(1);
    NLT_RUN(test_ode_closed_forms);
    NLT_RUN(test_ode_adaptive);
    NLT_RUN(test_spline);
    NLT_RUN(test_grf_covariance);
    NLT_RUN(test_targets);
    NLT_RUN(test_data);
    NLT_RUN(test_params_and_forward);
    NLT_RUN(test_gradients);
    NLT_RUN(test_training_decreases_loss);
    NLT_RUN(test_bad_input);
    return nlt_finish();
}
