/* The nngp-ntk method: registration and its command; the finite networks (finite_net.c): the empirical NTK from the
 * engine's autograd against the closed-form Jacobian of a one-hidden-layer net and against finite differences of a
 * two-hidden-layer one, one gradient-descent step against the linearised dynamics of the empirical NTK; and the
 * ledger rule on hand-made results (a passing one; each control-like result — a flat error slope, a seed mean many
 * standard errors away, a gap that does not shrink, a slope too uncertain, NaN — fails). The analytic kernels are
 * tested against closed forms in lib/kernels/test_kernels.c. */
#include "nltest.h"
#include "nngp_ntk/nngp_ntk.h"
#include "nnlab/ops.h"
#include "nnlab/data.h"
#include <stdio.h>
#include <stdlib.h>

static void test_registration(void) {
    NLT_CHECK(!strcmp(nl_method_nngp_ntk.id, "nngp-ntk"), "id");
    NLT_CHECK(!strcmp(nl_exp_nngp_ntk.name, "nngp-ntk"), "ledger name = id");
    NLT_CHECK(nl_method_nngp_ntk.cli == nl_nngp_ntk_cli, "command");
    NLT_CHECK(nl_method_nngp_ntk.aliases && !strcmp(nl_method_nngp_ntk.aliases[0].name, "kernel"), "alias kernel");
    NLT_CHECK(nl_exp_nngp_ntk.smoke && nl_exp_nngp_ntk.smoke_desc, "has a smoke configuration");
    char *help[] = {"--help", NULL}, *bad[] = {"nngp", "--depth", "x", NULL};
    NLT_CHECK(nl_nngp_ntk_cli(1, help) == 0, "--help exits 0");
    NLT_CHECK(nl_nngp_ntk_cli(3, bad) == 2, "a bad value is a usage error");
}

/* depth 1: f(x) = sw/sqrt(n) sum_k v_k relu(z_k) + sb c, z_k = sw/sqrt(d) w_k.x + sb b_k; the Jacobian in closed form. */
static void closed_form_grad(const nl_nngp_ntk_net *m, const double *x, double *g) {
    const int64_t n = m->width, d = m->d;
    const double *w = m->W[0]->val.data, *b = m->b[0]->val.data, *v = m->W[1]->val.data;
    const double a1 = m->sw / sqrt((double)d), a2 = m->sw / sqrt((double)n);
    double *gw = g + nl_params_of(&m->ps, m->W[0])->offset, *gb = g + nl_params_of(&m->ps, m->b[0])->offset;
    double *gv = g + nl_params_of(&m->ps, m->W[1])->offset, *gc = g + nl_params_of(&m->ps, m->b[1])->offset;
    memset(g, 0, (size_t)m->ps.total * sizeof *g); /* the store may pad between tensors */
    for (int64_t k = 0; k < n; k++) {
        double z = m->sb * b[k];
        for (int64_t j = 0; j < d; j++) z += a1 * w[k * d + j] * x[j];
        const double on = z > 0;
        for (int64_t j = 0; j < d; j++) gw[k * d + j] = a2 * v[k] * on * a1 * x[j];
        gb[k] = a2 * v[k] * on * m->sb;
        gv[k] = a2 * (z > 0 ? z : 0);
    }
    gc[0] = m->sb;
}

static void test_empirical_ntk_closed_form(void) {
    nl_nngp_ntk_net m;
    NLT_OK(nl_nngp_ntk_net_init(&m, 1, 3, 5, 1.3, 0.4, 7));
    int64_t numel = 0;
    for (int i = 0; i < m.ps.n; i++) numel += m.ps.p[i]->numel;
    NLT_CHECK(m.ps.n == 4 && numel == 5 * 3 + 5 + 5 + 1 && m.ps.total <= 64, "parameters %lld", (long long)numel);
    const double x[4 * 3] = {1.0, -0.5, 0.3, 0.2, 0.9, -1.1, -0.7, 0.4, 0.8, 1.5, 1.0, -0.2};
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    double th[16], th2[16], g[4][64];
    NLT_OK(nl_nngp_ntk_empirical_ntk(&m, c, x, 4, th, 1 << 20));
    NLT_OK(nl_nngp_ntk_empirical_ntk(&m, c, x, 4, th2, 3 * 4 * sizeof(double))); /* 3 parameters per chunk */
    for (int i = 0; i < 4; i++) closed_form_grad(&m, x + 3 * i, g[i]);
    double worst = 0, worst2 = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double e = 0;
            for (int64_t p = 0; p < m.ps.total; p++) e += g[i][p] * g[j][p];
            worst = fmax(worst, fabs(th[i * 4 + j] - e) / (fabs(e) + 1e-12));
            worst2 = fmax(worst2, fabs(th2[i * 4 + j] - th[i * 4 + j]));
        }
    NLT_CHECK(worst < 1e-12, "empirical NTK = closed-form J J^T (worst relative difference %g)", worst);
    NLT_CHECK(worst2 < 1e-12, "chunked Jacobian gives the same NTK (%g)", worst2);
    nl_ctx_free(c);
    nl_nngp_ntk_net_free(&m);
}

static void test_empirical_ntk_finite_differences(void) {
    nl_nngp_ntk_net m;
    NLT_OK(nl_nngp_ntk_net_init(&m, 2, 3, 4, 1.4142135623730951, 0.1, 3));
    const double x[3 * 3] = {0.9, -0.4, 1.2, -0.3, 0.8, 0.5, 1.1, 0.2, -0.6};
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    double th[9], f1[3], f2[3];
    NLT_OK(nl_nngp_ntk_empirical_ntk(&m, c, x, 3, th, 1 << 20));
    const int64_t P = m.ps.total;
    double *J = calloc((size_t)(3 * P), sizeof *J), *w = m.ps.data;
    const double h = 1e-6;
    for (int64_t p = 0; p < P; p++) {
        const double keep = w[p];
        w[p] = keep + h;
        NLT_OK(nl_nngp_ntk_net_predict(&m, c, x, 3, f1));
        w[p] = keep - h;
        NLT_OK(nl_nngp_ntk_net_predict(&m, c, x, 3, f2));
        w[p] = keep;
        for (int i = 0; i < 3; i++) J[i * P + p] = (f1[i] - f2[i]) / (2 * h);
    }
    double worst = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double e = 0;
            for (int64_t p = 0; p < P; p++) e += J[i * P + p] * J[j * P + p];
            worst = fmax(worst, fabs(th[i * 3 + j] - e) / (fabs(e) + 1e-9));
        }
    NLT_CHECK(worst < 1e-6, "depth 2: empirical NTK = finite-difference J J^T (worst relative difference %g)", worst);
    free(J);
    nl_ctx_free(c);
    nl_nngp_ntk_net_free(&m);
}

/* One small gradient-descent step moves f by -lr/n theta_emp (f - y) to first order: the trained network and the
 * linearised dynamics of its own empirical NTK agree up to O(lr^2). */
static void test_train_step_is_linear(void) {
    nl_nngp_ntk_net m;
    NLT_OK(nl_nngp_ntk_net_init(&m, 2, 3, 16, 1.4142135623730951, 0.1, 11));
    const double x[5 * 3] = {0.9, -0.4, 1.2, -0.3, 0.8, 0.5, 1.1, 0.2, -0.6, 0.1, -1.0, 0.7, -0.8, -0.2, 0.9};
    const double y[3] = {1, -1, 1};
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    double th[25], Kxx[9], Ksx[6], f0[5], f1[5], fx[3], fs[2];
    NLT_OK(nl_nngp_ntk_empirical_ntk(&m, c, x, 5, th, 1 << 20));
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) Kxx[i * 3 + j] = th[i * 5 + j];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) Ksx[i * 3 + j] = th[(3 + i) * 5 + j];
    NLT_OK(nl_nngp_ntk_net_predict(&m, c, x, 5, f0));
    const double lr = 1e-3;
    double l0, l1;
    NLT_OK(nl_nngp_ntk_net_train(&m, c, x, y, 3, lr, 1, &l0, &l1));
    NLT_CHECK(l1 < l0, "one step lowers the loss (%g -> %g)", l0, l1);
    NLT_OK(nl_nngp_ntk_net_predict(&m, c, x, 5, f1));
    NLT_OK(nl_nngp_ntk_linear_gd(Kxx, Ksx, f0, f0 + 3, y, 3, 2, lr, 1, fx, fs));
    double worst = 0, moved = 0;
    for (int i = 0; i < 5; i++) {
        const double lin = i < 3 ? fx[i] : fs[i - 3];
        worst = fmax(worst, fabs(f1[i] - lin));
        moved = fmax(moved, fabs(f1[i] - f0[i]));
    }
    NLT_CHECK(moved > 1e-5 && worst < 1e-3 * moved, "network step = linearised step (diff %g, moved %g)", worst, moved);
    /* the linearised dynamics converge to the targets on the training points */
    NLT_OK(nl_nngp_ntk_linear_gd(Kxx, Ksx, f0, f0 + 3, y, 3, 2, 0.5, 20000, fx, fs));
    for (int i = 0; i < 3; i++) NLT_NEAR(fx[i], y[i], 1e-6);
    nl_ctx_free(c);
    nl_nngp_ntk_net_free(&m);
}

/* A hand-made result: the judged metrics (ntk slope, its se, z at the widest width, gap slope, its se). */
static int judge(double ntk_slope, double ntk_se, double z, double gap_slope, double gap_se) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    nl_exp_set(&r, "slope_max", -0.25);
    nl_exp_set(&r, "z_max", 3.5);
    nl_exp_set(&r, "widest", 1024);
    nl_exp_set(&r, "ntk_err_slope", ntk_slope);
    nl_exp_set(&r, "ntk_err_slope_se", ntk_se);
    nl_exp_set(&r, "ntk_err_slope_df", 28);
    nl_exp_set(&r, "ntk_z_widest", z);
    nl_exp_set(&r, "ntk_err_w1024", 0.1);
    nl_exp_set(&r, "gap_slope", gap_slope);
    nl_exp_set(&r, "gap_slope_se", gap_se);
    nl_exp_set(&r, "gap_slope_df", 18);
    nl_exp_set(&r, "gap_w1024", 0.07);
    char m[256];
    int pass = nl_exp_nngp_ntk.judge(&nl_exp_nngp_ntk, &r, NL_MODE_QUICK, m, sizeof m);
    NLT_CHECK(r.n_parts == 3, "three parts recorded (%d)", r.n_parts);
    nl_exp_result_free(&r);
    return pass;
}

static void test_judge(void) {
    NLT_CHECK(judge(-0.49, 0.06, 0.7, -0.46, 0.08) == 1, "the quick run's numbers pass");
    NLT_CHECK(judge(-0.01, 0.05, 8.0, -0.34, 0.09) == 0, "a wrong-depth kernel (flat error, 8 SE away) fails");
    NLT_CHECK(judge(-0.49, 0.06, 10.8, -0.46, 0.08) == 0, "the seed mean 10.8 SE from the kernel fails alone");
    NLT_CHECK(judge(-0.15, 0.04, 0.7, -0.46, 0.08) == 0, "an error that does not fall like width^-1/2 fails alone");
    NLT_CHECK(judge(-0.49, 0.06, 0.7, -0.10, 0.09) == 0, "a trained-vs-kernel gap that does not shrink fails alone");
    NLT_CHECK(judge(-0.35, 0.10, 0.7, -0.46, 0.08) == 0, "a slope whose 95%% bound is above -0.25 fails");
    NLT_CHECK(judge(NAN, 0.06, 0.7, -0.46, 0.08) == 0, "NaN fails");
    NLT_CHECK(judge(-0.49, 0.06, NAN, -0.46, 0.08) == 0, "NaN z fails");
}

/* kernel_out.c on one process (nl_dist_file without MPI): the row writer gives the bytes of nl_csv_write and of
 * the one-process .npy writer, whose header is a valid v1.0 .npy header followed by the matrix. */
static void test_output_writers(void) {
    const int64_t n = 9, m = 5;
    double K[45]; /* (n, m) */
    for (int i = 0; i < n * m; i++) K[i] = (i % 7 - 3) * 0.1 / (1 + i) + (i == 11 ? 1e300 : 0) - (i == 12 ? 1e-300 : 0);
    char dir[] = "/tmp/nl_test_kout_XXXXXX", a[96], b[96]; /* mkdtemp template */
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    size_t na = 0, nb = 0;
    for (int npy = 0; npy < 2; npy++) {
        snprintf(a, sizeof a, "%s/one.%s", dir, npy ? "npy" : "csv");
        snprintf(b, sizeof b, "%s/rows.%s", dir, npy ? "npy" : "csv");
        NLT_OK(npy ? nl_nngp_ntk_write_npy(a, n, m, K) : nl_csv_write(a, n, m, K, NULL));
        NLT_OK(nl_nngp_ntk_write_rows(b, npy, n, m, 0, n, K));
        char *A = nlt_slurp(a, &na), *B = nlt_slurp(b, &nb);
        NLT_CHECK(A && B && na == nb && !memcmp(A, B, na), "%s: the row writer's file differs (%zu vs %zu bytes)", npy ? "npy" : "csv", nb, na);
        if (npy && A) {
            size_t hl = (size_t)(unsigned char)A[8] | (size_t)(unsigned char)A[9] << 8;
            NLT_CHECK(!memcmp(A, "\x93NUMPY\x01\x00", 8) && (10 + hl) % 64 == 0 && A[10 + hl - 1] == '\n', "npy magic / header");
            NLT_CHECK(strstr(A + 10, "'descr': '<f8', 'fortran_order': False, 'shape': (9, 5), }") != NULL, "npy dict");
            NLT_CHECK(na == 10 + hl + sizeof K && !memcmp(A + 10 + hl, K, sizeof K), "npy data");
        }
        free(A); free(B);
        remove(a); remove(b);
    }
    remove(dir);
}

int main(void) {
    NLT_RUN(test_registration);
    NLT_RUN(test_output_writers);
    NLT_RUN(test_empirical_ntk_closed_form);
    NLT_RUN(test_empirical_ntk_finite_differences);
    NLT_RUN(test_train_step_is_linear);
    NLT_RUN(test_judge);
    return nlt_finish();
}
