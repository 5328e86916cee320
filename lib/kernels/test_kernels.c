/* NNGP / NTK kernels: the reference table, matrix vs per-pair reference, tiling, quadrature vs closed forms,
 * Monte Carlo finite-width networks (NTK and standard parametrisations), gradients of the kernel op, the
 * differentiable marginal likelihood, kernel ridge regression / GP posterior, and error paths. */
#include "nltest.h"
#include "nnlab/extend.h"
#include "gp/gp.h"
#include "kernels/kernels.h"

static double relerr(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-300); }

/* ---------------------------------------------------------------------------------------------------- */
static void test_reference_table(void) {
    /* notes §2: x=(1,2,0,-1), y=(0.5,-1,2,1), sw=1, sb=0; depth = hidden layers (Dense-act pairs) + readout Dense */
    double x[4] = {1, 2, 0, -1}, y[4] = {0.5, -1, 2, 1}, X[8] = {1, 2, 0, -1, 0.5, -1, 2, 1};
    struct { const char *act; int depth; double v[4]; } t[3] = {
        {"relu", 1, {0.108007, -0.006412, 0.75, 1.5}},
        {"relu", 2, {0.150044, 0.148297, 0.375, 1.125}},
        {"erf", 1, {-0.199138, -0.405035, 0.539893, 1.261752}},
    };
    for (int k = 0; k < 3; k++) {
        nl_kernel_cfg c;
        nl_kernel_cfg_default(&c);
        c.depth = t[k].depth;
        NLT_OK(nl_kernel_act_parse(&c, t[k].act));
        double xy[2], xx[2], K[4], T[4];
        NLT_OK(nl_kernel_pair(&c, x, y, 4, xy));
        NLT_OK(nl_kernel_pair(&c, x, x, 4, xx));
        NLT_NEAR(xy[0], t[k].v[0], 1e-5);
        NLT_NEAR(xy[1], t[k].v[1], 1e-5);
        NLT_NEAR(xx[0], t[k].v[2], 1e-5);
        NLT_NEAR(xx[1], t[k].v[3], 1e-5);
        NLT_OK(nl_kernel_matrix(&c, X, 2, NULL, 2, 4, NL_KERNEL_NNGP | NL_KERNEL_NTK, NL_F64, K, T, 0));
        NLT_NEAR(K[1], t[k].v[0], 1e-5);
        NLT_NEAR(T[1], t[k].v[1], 1e-5);
        NLT_NEAR(K[0], t[k].v[2], 1e-5);
        NLT_NEAR(T[0], t[k].v[3], 1e-5);
        NLT_CHECK(K[1] == K[2] && T[1] == T[2], "symmetric output");
        c.force_quad = 1; /* the polar quadrature is exact for ReLU and accurate for erf */
        NLT_OK(nl_kernel_pair(&c, x, y, 4, xy));
        NLT_NEAR(xy[0], t[k].v[0], 1e-5);
        NLT_NEAR(xy[1], t[k].v[1], 1e-5);
    }
}

/* ---------------------------------------------------------------------------------------------------- */
static void test_parse_and_check(void) {
    nl_kernel_cfg c;
    nl_kernel_cfg_default(&c);
    NLT_OK(nl_kernel_act_parse(&c, "leaky:0.1"));
    NLT_CHECK(c.act == NL_KACT_LEAKY_RELU && c.act_param == 0.1, "leaky parsed");
    NLT_OK(nl_kernel_act_parse(&c, "erf:2,0.5,-1"));
    NLT_CHECK(c.act == NL_KACT_ERF && c.erf_a == 2 && c.erf_b == 0.5 && c.erf_c == -1, "erf:a,b,c parsed");
    const char *good[] = {"relu", "abs", "identity", "linear", "tanh", "gelu", "sin", "erf", "leaky_relu:-0.3"};
    for (int k = 0; k < 9; k++) NLT_OK(nl_kernel_act_parse(&c, good[k]));
    const char *bad[] = {"swish", "", "leaky", "leaky:", "leaky:abc", "leaky:0.1x", "erf:1,2", "erf:1,2,3,4", "relu:3",
                         "leaky:nan", "leaky:inf", "RELU"};
    for (int k = 0; k < 12; k++) {
        nl_status s = nl_kernel_act_parse(&c, bad[k]);
        NLT_CHECK(s == NL_EINVAL, "'%s' -> %s", bad[k], nl_status_name(s));
    }
    NLT_CHECK(strstr(nl_last_error(), "unknown activation") != NULL || strstr(nl_last_error(), "RELU"), "message: %s", nl_last_error());
    nl_kernel_cfg_default(&c);
    c.depth = -1;
    NLT_CHECK(nl_kernel_cfg_check(&c) == NL_EINVAL, "negative depth");
    nl_kernel_cfg_default(&c);
    c.sw = -1;
    NLT_CHECK(nl_kernel_cfg_check(&c) == NL_EINVAL, "negative sw");
    nl_kernel_cfg_default(&c);
    c.param = NL_KPARAM_SP;
    NLT_CHECK(nl_kernel_cfg_check(&c) == NL_EINVAL && strstr(nl_last_error(), "sp_width"), "SP without width");
    nl_kernel_cfg_default(&c);
    c.act = NL_KACT_USER;
    NLT_CHECK(nl_kernel_cfg_check(&c) == NL_EINVAL, "user act without f");
    nl_kernel_cfg_default(&c);
    c.quad_deg = 500;
    NLT_CHECK(nl_kernel_cfg_check(&c) == NL_EINVAL, "quad_deg too large");
    /* bad matrix arguments */
    nl_kernel_cfg_default(&c);
    double X[6] = {1, 2, 3, 4, 5, 6}, K[4];
    NLT_CHECK(nl_kernel_matrix(&c, X, 2, NULL, 2, 3, 0, NL_F64, K, NULL, 0) == NL_EINVAL, "which = 0");
    NLT_CHECK(nl_kernel_matrix(&c, X, 2, NULL, 2, 3, NL_KERNEL_NTK, NL_F64, K, NULL, 0) == NL_EINVAL, "ntk buffer NULL");
    NLT_CHECK(nl_kernel_matrix(&c, X, 2, X, 2, 3, NL_KERNEL_NNGP, NL_F64, K, NULL, 1) == NL_EINVAL, "ld < n2");
    NLT_CHECK(nl_kernel_matrix(&c, X, 2, NULL, 3, 3, NL_KERNEL_NNGP, NL_F64, K, NULL, 0) == NL_EINVAL, "sym n2 != n1");
    NLT_CHECK(nl_kernel_matrix(&c, X, 2, NULL, 2, 0, NL_KERNEL_NNGP, NL_F64, K, NULL, 0) == NL_EINVAL, "d = 0");
}

/* ---------------------------------------------------------------------------------------------------- */
static void test_gauss_rules(void) {
    for (int deg = 1; deg <= 60; deg += 7) {
        double t[64], w[64], s0 = 0, s2 = 0, s4 = 0, s6 = 0;
        NLT_OK(nl_gauss_hermite(deg, t, w));
        for (int k = 0; k < deg; k++) { s0 += w[k]; s2 += w[k] * t[k] * t[k]; s4 += w[k] * pow(t[k], 4); s6 += w[k] * pow(t[k], 6); }
        double sp = sqrt(M_PI);
        NLT_NEAR(s0, sp, 1e-13);
        if (deg >= 2) NLT_NEAR(s2, sp / 2, 1e-13);
        if (deg >= 3) NLT_NEAR(s4, 3 * sp / 4, 1e-12);
        if (deg >= 4) NLT_NEAR(s6, 15 * sp / 8, 1e-11);
        for (int k = 1; k < deg; k++) NLT_CHECK(t[k] > t[k - 1], "ascending nodes");
    }
    double t[200], w[200];
    NLT_OK(nl_gauss_hermite(200, t, w));
    double s = 0;
    for (int k = 0; k < 200; k++) s += w[k];
    NLT_NEAR(s, sqrt(M_PI), 1e-12);
    NLT_CHECK(nl_gauss_hermite(0, t, w) == NL_EINVAL, "degree 0 rejected");
}

/* ---------------------------------------------------------------------------------------------------- */
typedef struct { const char *act; int depth; double sw, sb, sw_out, sb_out; int sp; } netspec;

static const netspec g_nets[] = {
    {"relu", 0, 1.3, 0.2, -1, -1, 0},   {"relu", 1, 1.0, 0.0, -1, -1, 0},   {"relu", 3, 1.4, 0.3, 0.7, 0.5, 0},
    {"leaky:0.2", 2, 1.2, 0.1, -1, -1, 0}, {"abs", 2, 0.9, 0.4, -1, -1, 0}, {"identity", 2, 1.1, 0.2, -1, -1, 0},
    {"erf:0.8,1.3,0.2", 2, 1.5, 0.3, -1, -1, 0}, {"tanh", 2, 1.2, 0.1, -1, -1, 0}, {"gelu", 1, 1.0, 0.2, -1, -1, 0},
    {"sin", 1, 1.0, 0.1, -1, -1, 0},   {"relu", 2, 1.4, 0.3, -1, -1, 1},   {"erf", 1, 1.2, 0.2, -1, -1, 1},
};
#define NNETS ((int)(sizeof g_nets / sizeof g_nets[0]))

static void cfg_of(const netspec *s, nl_kernel_cfg *c) {
    nl_kernel_cfg_default(c);
    nl_kernel_act_parse(c, s->act);
    c->depth = s->depth;
    c->sw = s->sw; c->sb = s->sb; c->sw_out = s->sw_out; c->sb_out = s->sb_out;
    if (s->sp) { c->param = NL_KPARAM_SP; c->sp_width = 300; }
}

/* the fast tiled matrix against the naive scalar reference, entry by entry */
static void test_matrix_vs_pair(void) {
    int64_t n = 11, m = 9, d = 5;
    double *X = nlt_randn_f64(1, n * d, 1.0), *Y = nlt_randn_f64(2, m * d, 1.0);
    for (int k = 0; k < d; k++) Y[3 * d + k] = X[4 * d + k]; /* a duplicate point across the sets */
    double *K = malloc(sizeof(double) * (size_t)(n * n)), *T = malloc(sizeof(double) * (size_t)(n * n));
    double *K2 = malloc(sizeof(double) * (size_t)(n * m)), *T2 = malloc(sizeof(double) * (size_t)(n * m));
    for (int s = 0; s < NNETS; s++) {
        nl_kernel_cfg c;
        cfg_of(&g_nets[s], &c);
        NLT_OK(nl_kernel_matrix(&c, X, n, NULL, n, d, NL_KERNEL_NNGP | NL_KERNEL_NTK, NL_F64, K, T, 0));
        NLT_OK(nl_kernel_matrix(&c, X, n, Y, m, d, NL_KERNEL_NNGP | NL_KERNEL_NTK, NL_F64, K2, T2, 0));
        double worst = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n + m; j++) {
                const double *yj = j < n ? X + j * d : Y + (j - n) * d;
                double r[2];
                nl_kernel_pair(&c, X + i * d, yj, d, r);
                double a = j < n ? K[i * n + j] : K2[i * m + j - n], b = j < n ? T[i * n + j] : T2[i * m + j - n];
                double e = fmax(fabs(a - r[0]) / fmax(fabs(r[0]), 1e-3), fabs(b - r[1]) / fmax(fabs(r[1]), 1e-3));
                if (e > worst) worst = e;
            }
        NLT_CHECK(worst < 1e-11, "%s depth %d sp %d: matrix vs pair rel err %.3g", g_nets[s].act, g_nets[s].depth, g_nets[s].sp, worst);
        int symok = 1;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) symok &= K[i * n + j] == K[j * n + i] && T[i * n + j] == T[j * n + i];
        NLT_CHECK(symok, "%s: symmetric matrix exactly symmetric", g_nets[s].act);
    }
    free(X); free(Y); free(K); free(T); free(K2); free(T2);
}

/* tiles of any size give the same matrix; f32 output; a block written into a larger buffer */
static void test_tiling(void) {
    int64_t n = 37, m = 23, d = 6;
    double *X = nlt_randn_f64(3, n * d, 1.0), *Y = nlt_randn_f64(4, m * d, 1.0);
    const char *acts[3] = {"relu", "erf", "tanh"};
    for (int a = 0; a < 3; a++) {
        nl_kernel_cfg c;
        nl_kernel_cfg_default(&c);
        nl_kernel_act_parse(&c, acts[a]);
        c.depth = 3; c.sw = 1.3; c.sb = 0.2;
        if (a == 2) c.quad_deg = 10;
        int64_t tiles[4][2] = {{0, 0}, {5, 7}, {64, 64}, {1, 1}};
        double *ref = NULL, *reft = NULL;
        for (int t = 0; t < (a == 2 ? 3 : 4); t++) { /* 1 x 1 tiles only for the fast closed forms */
            c.tile_rows = tiles[t][0];
            c.tile_cols = tiles[t][1];
            double *K = malloc(sizeof(double) * (size_t)(n * m)), *T = malloc(sizeof(double) * (size_t)(n * m));
            NLT_OK(nl_kernel_matrix(&c, X, n, Y, m, d, NL_KERNEL_NNGP | NL_KERNEL_NTK, NL_F64, K, T, 0));
            if (!ref) { ref = K; reft = T; continue; }
            double e = 0;
            for (int64_t i = 0; i < n * m; i++) e = fmax(e, fmax(relerr(K[i], ref[i]), relerr(T[i], reft[i])));
            NLT_CHECK(e < 1e-12, "%s tile %lldx%lld vs default: %.3g", acts[a], (long long)tiles[t][0], (long long)tiles[t][1], e);
            free(K); free(T);
        }
        free(ref); free(reft);
        /* symmetric: full vs block computed into an offset of a larger buffer, tiles 5x7 vs default, f32 */
        c.tile_rows = 5; c.tile_cols = 7;
        double *F = malloc(sizeof(double) * (size_t)(n * n)), *G = malloc(sizeof(double) * (size_t)(n * n));
        NLT_OK(nl_kernel_matrix(&c, X, n, NULL, n, d, NL_KERNEL_NNGP | NL_KERNEL_NTK, NL_F64, F, G, 0));
        c.tile_rows = c.tile_cols = 0;
        double *F2 = malloc(sizeof(double) * (size_t)(n * n)), *G2 = malloc(sizeof(double) * (size_t)(n * n));
        NLT_OK(nl_kernel_matrix(&c, X, n, NULL, n, d, NL_KERNEL_NNGP | NL_KERNEL_NTK, NL_F64, F2, G2, 0));
        double e = 0;
        for (int64_t i = 0; i < n * n; i++) e = fmax(e, fmax(relerr(F[i], F2[i]), relerr(G[i], G2[i])));
        NLT_CHECK(e < 1e-12, "%s: symmetric tiled vs untiled %.3g", acts[a], e);
        /* general path with x2 = x1 agrees with the symmetric path. Off the diagonal to rounding; on it (exact
         * duplicates computed through the general path, where the Gram diagonal and the norms differ in the last
         * bit) the NTK's Sigma_dot = h - beta*theta moves by theta ~ sqrt(ulp) ~ 1e-8: inherent to the formula */
        NLT_OK(nl_kernel_matrix(&c, X, n, X, n, d, NL_KERNEL_NNGP | NL_KERNEL_NTK, NL_F64, F2, G2, 0));
        double eo = 0, ed = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double v = fmax(relerr(F[i * n + j], F2[i * n + j]), relerr(G[i * n + j], G2[i * n + j]));
                if (i == j) ed = fmax(ed, v); else eo = fmax(eo, v);
            }
        NLT_CHECK(eo < 1e-12 && ed < 1e-7, "%s: symmetric vs general: off-diagonal %.3g, diagonal %.3g", acts[a], eo, ed);
        /* rows 5..20 x columns 3..17 written in place into a buffer of stride n */
        double *B = calloc((size_t)(n * n), sizeof(double));
        NLT_OK(nl_kernel_matrix(&c, X + 5 * d, 15, X + 3 * d, 14, d, NL_KERNEL_NTK, NL_F64, NULL, B + 5 * n + 3, n));
        e = 0;
        int untouched = 1;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                if (i >= 5 && i < 20 && j >= 3 && j < 17) e = fmax(e, relerr(B[i * n + j], G[i * n + j]) * (i == j ? 1e-5 : 1.0));
                else untouched &= B[i * n + j] == 0.0;
            }
        NLT_CHECK(e < 1e-12 && untouched, "%s: block in place err %.3g, outside untouched %d", acts[a], e, untouched);
        float *Kf = malloc(sizeof(float) * (size_t)(n * n));
        NLT_OK(nl_kernel_matrix(&c, X, n, NULL, n, d, NL_KERNEL_NNGP, NL_F32, Kf, NULL, 0));
        e = 0;
        for (int64_t i = 0; i < n * n; i++) e = fmax(e, relerr(Kf[i], F[i]));
        NLT_CHECK(e < 1e-6, "%s: f32 output err %.3g", acts[a], e);
        free(F); free(G); free(F2); free(G2); free(B); free(Kf);
    }
    free(X); free(Y);
}

/* ---------------------------------------------------------------------------------------------------- */
/* closed forms from neural-tangents (stax.Gelu, stax.Sin with a=b=1, c=0) as independent references */
static void gelu_closed(double k12, double k11, double k22, double *F, double *G) {
    double prod = k11 * k22, pp1 = (k11 + 1) * (k22 + 1);
    double ds = pp1 - k12 * k12, dl = sqrt(ds), ang = atan2(k12, dl);
    *F = ((k12 * k12 + prod * ds) / (pp1 * dl) + k12 * ang) / (2 * M_PI) + 0.25 * k12;
    double first = (1 / ds + (1 - prod) / pp1 + 1) * k12 / dl / (2 * M_PI);
    *G = first + 0.25 + ang / (2 * M_PI);
}
static void sin_closed(double k12, double k11, double k22, double *F, double *G) {
    double s1 = exp(-0.5 * (k11 + k22) + k12), s2 = exp(-0.5 * (k11 + k22) - k12);
    *F = 0.5 * (s1 - s2);
    *G = 0.5 * (s1 + s2);
}
static void relu_closed(double k12, double k11, double k22, double *F, double *G) {
    double s = sqrt(fmax(k11 * k22 - k12 * k12, 0)), th = atan2(s, k12);
    *F = (s + (M_PI - th) * k12) / (2 * M_PI);
    *G = (M_PI - th) / (2 * M_PI);
}
static void erf_closed(double k12, double k11, double k22, double *F, double *G) {
    double D = (1 + 2 * k11) * (1 + 2 * k22), om = D - 4 * k12 * k12;
    *F = 2 / M_PI * atan2(2 * k12, sqrt(om));
    *G = 4 / M_PI / sqrt(om);
}

/* NNGP / NTK of Dense(sw, sb) - act - Dense(1, 0) with an activation map given as a function */
static void one_layer_ref(void (*map)(double, double, double, double *, double *), const double *x, const double *y,
                          int64_t d, double sw, double sb, double out[2]) {
    double xx = 0, yy = 0, xy = 0;
    for (int64_t k = 0; k < d; k++) { xx += x[k] * x[k]; yy += y[k] * y[k]; xy += x[k] * y[k]; }
    double k11 = sw * sw * xx / d + sb * sb, k22 = sw * sw * yy / d + sb * sb, k12 = sw * sw * xy / d + sb * sb;
    double F, G;
    map(k12, k11, k22, &F, &G);
    out[0] = F;
    out[1] = F + k12 * G; /* Theta after act = k12 * G, readout: Sigma + 1 * Theta */
}

static void test_quadrature_vs_closed(void) {
    /* neural-tangents' ElementwiseNumerical test: x1 (3, 7), x2 (5, 7) ~ N(0,1), W_std 1, b_std 0.01, deg 25,
     * one hidden layer; rtol 2e-3 (NNGP), 4e-3 (NTK) for the grid; much tighter for the polar scheme */
    int64_t n1 = 3, n2 = 5, d = 7;
    double *X1 = nlt_randn_f64(11, n1 * d, 1.0), *X2 = nlt_randn_f64(12, n2 * d, 1.0);
    struct { const char *name; void (*map)(double, double, double, double *, double *); double tol_polar; } acts[4] = {
        {"erf", erf_closed, 1e-6}, {"gelu", gelu_closed, 1e-6}, {"sin", sin_closed, 1e-7}, {"relu", relu_closed, 1e-12}};
    for (int a = 0; a < 4; a++)
        for (int scheme = 0; scheme < 2; scheme++) {
            if (a == 3 && scheme == NL_KQUAD_GRID) continue; /* the grid is not accurate at kinks (docs) */
            nl_kernel_cfg c;
            nl_kernel_cfg_default(&c);
            nl_kernel_act_parse(&c, acts[a].name);
            c.sb = 0.01;
            c.sb_out = 0.0; /* readout Dense(1) without bias as in the neural-tangents test */
            c.force_quad = 1;
            c.quad_scheme = scheme;
            double K[15], T[15];
            NLT_OK(nl_kernel_matrix(&c, X1, n1, X2, n2, d, NL_KERNEL_NNGP | NL_KERNEL_NTK, NL_F64, K, T, 0));
            double ek = 0, et = 0;
            for (int64_t i = 0; i < n1; i++)
                for (int64_t j = 0; j < n2; j++) {
                    double r[2];
                    one_layer_ref(acts[a].map, X1 + i * d, X2 + j * d, d, 1.0, 0.01, r);
                    ek = fmax(ek, relerr(K[i * n2 + j], r[0]));
                    et = fmax(et, relerr(T[i * n2 + j], r[1]));
                }
            double tk = scheme == NL_KQUAD_GRID ? 2e-3 : acts[a].tol_polar, tt = scheme == NL_KQUAD_GRID ? 4e-3 : acts[a].tol_polar;
            NLT_CHECK(ek < tk && et < tt, "%s %s: quadrature vs closed form rel err nngp %.3g ntk %.3g", acts[a].name,
                      scheme ? "grid" : "polar", ek, et);
            printf("    %-5s %-5s deg 25: max rel err nngp %.2g ntk %.2g\n", acts[a].name, scheme ? "grid" : "polar", ek, et);
        }
    /* deeper: quadrature ReLU / leaky / erf(a,b,c) against the closed forms through 3 layers (rtol 2e-3 asked;
     * polar is far better) */
    const char *deep[3] = {"relu", "leaky:0.1", "erf:0.7,1.4,0.3"};
    for (int a = 0; a < 3; a++) {
        nl_kernel_cfg c;
        nl_kernel_cfg_default(&c);
        nl_kernel_act_parse(&c, deep[a]);
        c.depth = 3; c.sw = 1.4; c.sb = 0.3;
        double K[15], T[15], Kq[15], Tq[15];
        NLT_OK(nl_kernel_matrix(&c, X1, n1, X2, n2, d, NL_KERNEL_NNGP | NL_KERNEL_NTK, NL_F64, K, T, 0));
        c.force_quad = 1;
        NLT_OK(nl_kernel_matrix(&c, X1, n1, X2, n2, d, NL_KERNEL_NNGP | NL_KERNEL_NTK, NL_F64, Kq, Tq, 0));
        double e = 0;
        for (int k = 0; k < 15; k++) e = fmax(e, fmax(relerr(Kq[k], K[k]), relerr(Tq[k], T[k])));
        NLT_CHECK(e < 2e-3, "%s depth 3: polar quadrature vs closed form %.3g", deep[a], e);
        printf("    %-16s depth 3 polar quadrature (deg 25) vs closed form: max rel err %.2g\n", deep[a], e);
    }
    free(X1); free(X2);
}

/* a user activation (a scaled tanh) equals the built-in path; derivatives by finite differences are close */
static double my_tanh(double x, void *ud) { return *(double *)ud * tanh(x); }
static double my_dtanh(double x, void *ud) { double t = tanh(x); return *(double *)ud * (1 - t * t); }
static void test_user_activation(void) {
    int64_t n = 4, d = 3;
    double *X = nlt_randn_f64(21, n * d, 1.0), scale = 1.0;
    nl_kernel_cfg c;
    nl_kernel_cfg_default(&c);
    c.depth = 2; c.sb = 0.1;
    nl_kernel_act_parse(&c, "tanh");
    double K[16], T[16], Ku[16], Tu[16];
    NLT_OK(nl_kernel_matrix(&c, X, n, NULL, n, d, 3, NL_F64, K, T, 0));
    c.act = NL_KACT_USER;
    c.user.f = my_tanh; c.user.df = my_dtanh; c.user.ud = &scale;
    NLT_OK(nl_kernel_matrix(&c, X, n, NULL, n, d, 3, NL_F64, Ku, Tu, 0));
    double e = 0;
    for (int k = 0; k < 16; k++) e = fmax(e, fmax(relerr(Ku[k], K[k]), relerr(Tu[k], T[k])));
    NLT_CHECK(e < 1e-13, "user tanh with df vs built-in %.3g", e);
    c.user.df = NULL; /* finite differences */
    NLT_OK(nl_kernel_matrix(&c, X, n, NULL, n, d, 3, NL_F64, Ku, Tu, 0));
    e = 0;
    for (int k = 0; k < 16; k++) e = fmax(e, fmax(relerr(Ku[k], K[k]), relerr(Tu[k], T[k])));
    NLT_CHECK(e < 1e-8, "user tanh without df vs built-in %.3g", e);
    free(X);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Monte Carlo: finite networks built from engine ops. NNGP = E[f(x) f(y)] estimated with the readout
 * integrated out (E[f f' | hidden] = sw_out^2 phi.phi'/n + sb_out^2, averaged over inits); empirical NTK =
 * <df/dtheta(x), df/dtheta(y)> from per-example nl_backward on the one-output network. */
typedef struct {
    int depth, width, sp, act; /* act: 0 relu, 1 erf, 2 tanh */
    double sw, sb;
} mcnet;

static nl_var *mc_act(nl_ctx *c, nl_var *h, int act) {
    return act == 0 ? nl_relu(c, h) : act == 1 ? nl_erf(c, h) : nl_tanh(c, h);
}

/* forward of one batch; *feat (optional) receives the last hidden activations */
static nl_var *mc_forward(nl_ctx *c, const mcnet *m, nl_var *const *W, nl_var *const *b, nl_var *x, nl_var **feat) {
    nl_var *h = x;
    for (int l = 0; l <= m->depth; l++) {
        int64_t fan = W[l]->val.shape[1];
        nl_var *z = nl_linear(c, h, W[l], NULL);
        if (m->sp) z = nl_add(c, z, b[l]);
        else z = nl_add(c, nl_mul_scalar(c, z, m->sw / sqrt((double)fan)), nl_mul_scalar(c, b[l], m->sb));
        if (l < m->depth) h = mc_act(c, z, m->act);
        else h = z;
        if (feat && l == m->depth - 1) *feat = h;
    }
    return h;
}

static void mc_run(const mcnet *m, const double *X, int64_t N, int64_t d, int inits, double *Kmc, double *Tmc) {
    nl_params ps;
    nl_params_init(&ps, NL_F64);
    nl_var *W[8], *b[8];
    for (int l = 0; l <= m->depth; l++) {
        char nm[16];
        int64_t out = l == m->depth ? 1 : m->width, in = l == 0 ? d : m->width;
        int64_t sw[2] = {out, in}, sbs[1] = {out};
        snprintf(nm, sizeof nm, "W%d", l);
        W[l] = nl_params_add(&ps, nm, 2, sw);
        snprintf(nm, sizeof nm, "b%d", l);
        b[l] = nl_params_add(&ps, nm, 1, sbs);
    }
    double *g = malloc(sizeof(double) * (size_t)(N * ps.total));
    nl_ctx *c = nl_ctx_new(1 << 22, 0);
    memset(Kmc, 0, sizeof(double) * (size_t)(N * N));
    memset(Tmc, 0, sizeof(double) * (size_t)(N * N));
    nl_rng r;
    nl_rng_init(&r, 1234, 1);
    for (int it = 0; it < inits; it++) {
        for (int l = 0; l <= m->depth; l++) {
            double wstd = m->sp ? m->sw / sqrt((double)W[l]->val.shape[1]) : 1.0, bstd = m->sp ? m->sb : 1.0;
            nl_rng_fill_normal(&r, &W[l]->val, 0, wstd);
            nl_rng_fill_normal(&r, &b[l]->val, 0, bstd);
        }
        /* NNGP with the readout integrated out */
        nl_ctx_reset(c);
        nl_set_grad_enabled(c, 0);
        int64_t xs[2] = {N, d};
        nl_var *feat = NULL;
        nl_var *xin = nl_input(c, nl_tensor_wrap((void *)X, NL_F64, 2, xs));
        mc_forward(c, m, W, b, xin, &feat);
        int64_t n = m->width;
        const double *F = feat->val.data;
        double a = m->sw * m->sw; /* readout weight variance sw^2 / n per unit in both parametrisations */
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < n; k++) s += F[i * n + k] * F[j * n + k];
                Kmc[i * N + j] += a * s / (double)n + m->sb * m->sb;
            }
        nl_set_grad_enabled(c, 1);
        /* per-example gradients */
        for (int64_t i = 0; i < N; i++) {
            nl_ctx_reset(c);
            nl_params_zero_grad(&ps);
            int64_t x1[2] = {1, d};
            nl_var *xi = nl_input(c, nl_tensor_wrap((void *)(X + i * d), NL_F64, 2, x1));
            nl_var *f = mc_forward(c, m, W, b, xi, NULL);
            nl_backward(c, f);
            memcpy(g + i * ps.total, ps.grad, sizeof(double) * (size_t)ps.total);
        }
        nl_gemm(NL_F64, 0, 1, N, N, ps.total, 1.0, g, ps.total, g, ps.total, 1.0, Tmc, N); /* += J J^T */
    }
    for (int64_t k = 0; k < N * N; k++) { Kmc[k] /= inits; Tmc[k] /= inits; }
    nl_ctx_free(c);
    free(g);
    nl_params_free(&ps);
}

/* neural-tangents' criterion; `scale` divides both kernels first (1 for the NTK parametrisation; the SP NTK is
 * O(width), so its absolute mean|D| is compared after dividing by the mean diagonal) */
static void mc_compare(const char *what, const double *A, const double *K, int64_t N, double scale) {
    double dn = 0, kn = 0, md = 0;
    for (int64_t k = 0; k < N * N; k++) { dn += (A[k] - K[k]) * (A[k] - K[k]); kn += K[k] * K[k]; md += fabs(A[k] - K[k]); }
    md /= (double)(N * N) * scale;
    NLT_CHECK(sqrt(dn / kn) < 0.041 && md < 0.1, "%s: ||D||_F/||K||_F = %.4f (< 0.041), mean|D| = %.4f (< 0.1)", what, sqrt(dn / kn), md);
    printf("    %-34s ||D||/||K|| = %.4f  mean|D| = %.4f\n", what, sqrt(dn / kn), md);
}

static void test_monte_carlo(void) {
    int64_t N = 4, d = 3;
    double X[12] = {1.0, 0.5, -0.3, -0.4, 1.1, 0.2, 0.3, -0.8, 0.9, 0.7, 0.6, 0.5};
    mcnet nets[5] = {
        {1, 512, 0, 0, 1.4, 0.2}, {2, 512, 0, 0, 1.2, 0.3}, {1, 512, 0, 1, 1.3, 0.1}, {1, 512, 0, 2, 1.5, 0.2},
        {1, 512, 1, 0, 1.4, 0.3},
    };
    const char *names[5] = {"NTK-param ReLU depth 1", "NTK-param ReLU depth 2", "NTK-param erf depth 1",
                            "NTK-param tanh depth 1", "standard-param ReLU depth 1"};
    for (int k = 0; k < 5; k++) {
        const mcnet *m = &nets[k];
        double Kmc[16], Tmc[16], K[16], T[16];
        int nth = nl_get_num_threads();
        nl_set_num_threads(1); /* tiny per-example ops: threads would only spin */
        mc_run(m, X, N, d, 100, Kmc, Tmc);
        nl_set_num_threads(nth);
        nl_kernel_cfg c;
        nl_kernel_cfg_default(&c);
        c.depth = m->depth;
        c.act = m->act == 0 ? NL_KACT_RELU : m->act == 1 ? NL_KACT_ERF : NL_KACT_TANH;
        c.sw = m->sw; c.sb = m->sb;
        if (m->sp) { c.param = NL_KPARAM_SP; c.sp_width = m->width; }
        NLT_OK(nl_kernel_matrix(&c, X, N, NULL, N, d, 3, NL_F64, K, T, 0));
        char buf[96];
        double tscale = 1.0;
        if (m->sp) { tscale = 0; for (int i = 0; i < N; i++) tscale += T[i * N + i] / N; }
        snprintf(buf, sizeof buf, "%s NNGP", names[k]);
        mc_compare(buf, Kmc, K, N, 1.0);
        snprintf(buf, sizeof buf, "%s NTK%s", names[k], m->sp ? " (/mean diag)" : "");
        mc_compare(buf, Tmc, T, N, tscale);
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* the op: forward equals nl_kernel_matrix; gradients by finite differences */
typedef struct { nl_kernel_cfg cfg; int which, sym; } opud;

static nl_var *f_op(nl_ctx *c, nl_var **in, void *ud) {
    opud *u = ud;
    if (u->sym) return nl_kernel_fc(c, &u->cfg, u->which, in[0], NULL, NULL, in[1]);
    return nl_kernel_fc(c, &u->cfg, u->which, in[0], in[1], in[2], in[3]);
}

static void gram(const double *A, int64_t n, const double *B, int64_t m, int64_t d, double *K) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            double s = 0;
            for (int64_t k = 0; k < d; k++) s += A[i * d + k] * B[j * d + k];
            K[i * m + j] = s / (double)d;
        }
}

static void test_op_forward(void) {
    int64_t n = 6, m = 5, d = 4;
    double *X = nlt_randn_f64(31, n * d, 1.0), *Y = nlt_randn_f64(32, m * d, 1.0);
    double K0[36], K0c[30], d1[6], d2[5];
    gram(X, n, X, n, d, K0);
    gram(X, n, Y, m, d, K0c);
    for (int64_t i = 0; i < n; i++) d1[i] = K0[i * n + i];
    for (int64_t j = 0; j < m; j++) { double s = 0; for (int k = 0; k < d; k++) s += Y[j * d + k] * Y[j * d + k]; d2[j] = s / d; }
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    for (int s = 0; s < NNETS; s++) {
        nl_kernel_cfg cfg;
        cfg_of(&g_nets[s], &cfg);
        cfg.sp_in_dim = d;
        double sw2o = (cfg.sw_out >= 0 ? cfg.sw_out : cfg.sw), sb2o = (cfg.sb_out >= 0 ? cfg.sb_out : cfg.sb);
        double hv[4] = {cfg.sw * cfg.sw, cfg.sb * cfg.sb, sw2o * sw2o, sb2o * sb2o};
        int64_t s4 = 4, sn[2] = {n, n}, sc[2] = {n, m};
        double Kf[36], Tf[36], Kc[30], Tc[30];
        NLT_OK(nl_kernel_matrix(&cfg, X, n, NULL, n, d, 3, NL_F64, Kf, Tf, 0));
        NLT_OK(nl_kernel_matrix(&cfg, X, n, Y, m, d, 3, NL_F64, Kc, Tc, 0));
        for (int w = 1; w <= 2; w++) {
            nl_ctx_reset(c);
            nl_var *hyp = nl_input(c, nl_tensor_wrap(hv, NL_F64, 1, &s4));
            nl_var *o1 = nl_kernel_fc(c, &cfg, w, nl_input(c, nl_tensor_wrap(K0, NL_F64, 2, sn)), NULL, NULL, hyp);
            nl_var *o2 = nl_kernel_fc(c, &cfg, w, nl_input(c, nl_tensor_wrap(K0c, NL_F64, 2, sc)),
                                      nl_input(c, nl_tensor_wrap(d1, NL_F64, 1, &n)), nl_input(c, nl_tensor_wrap(d2, NL_F64, 1, &m)), hyp);
            NLT_CHECK(o1 && o2, "op forward %s: %s", g_nets[s].act, nl_last_error());
            if (!o1 || !o2) continue;
            double e = 0;
            for (int64_t k = 0; k < n * n; k++) e = fmax(e, relerr(((double *)o1->val.data)[k], w == 1 ? Kf[k] : Tf[k]));
            for (int64_t k = 0; k < n * m; k++) e = fmax(e, relerr(((double *)o2->val.data)[k], w == 1 ? Kc[k] : Tc[k]));
            NLT_CHECK(e < 1e-12, "op vs matrix %s depth %d which %d: %.3g", g_nets[s].act, g_nets[s].depth, w, e);
        }
    }
    /* errors */
    nl_ctx_reset(c);
    int64_t s3 = 3, sn[2] = {n, n};
    double h3[3] = {1, 0, 1};
    nl_kernel_cfg cfg;
    nl_kernel_cfg_default(&cfg);
    nl_var *Kv = nl_input(c, nl_tensor_wrap(K0, NL_F64, 2, sn));
    NLT_CHECK(!nl_kernel_fc(c, &cfg, NL_KERNEL_NTK, Kv, NULL, NULL, nl_input(c, nl_tensor_wrap(h3, NL_F64, 1, &s3))), "hyp of 3");
    double hneg[2] = {-1, 0};
    int64_t s2 = 2;
    NLT_CHECK(!nl_kernel_fc(c, &cfg, NL_KERNEL_NTK, Kv, NULL, NULL, nl_input(c, nl_tensor_wrap(hneg, NL_F64, 1, &s2))) &&
              strstr(nl_last_error(), "variance"), "negative variance: %s", nl_last_error());
    nl_ctx_free(c);
    free(X); free(Y);
}

static void test_op_gradients(void) {
    int64_t n = 5, m = 4, d = 3;
    double *X = nlt_randn_f64(41, n * d, 1.0), *Y = nlt_randn_f64(42, m * d, 1.0);
    double K0[25], K0c[20], d1[5], d2[4];
    gram(X, n, X, n, d, K0);
    gram(X, n, Y, m, d, K0c);
    for (int64_t i = 0; i < n; i++) d1[i] = K0[i * n + i];
    for (int64_t j = 0; j < m; j++) { double s = 0; for (int k = 0; k < d; k++) s += Y[j * d + k] * Y[j * d + k]; d2[j] = s / d; }
    struct { const char *act; int depth, sp, nh; } cases[] = {
        {"relu", 2, 0, 2}, {"relu", 3, 0, 4}, {"leaky:0.2", 2, 0, 4}, {"erf:0.8,1.3,0.2", 2, 0, 4}, {"tanh", 1, 0, 2},
        {"gelu", 1, 0, 4}, {"relu", 2, 1, 4}, {"erf", 1, 1, 2}, {"relu", 0, 0, 4},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    for (int k = 0; k < nc; k++)
        for (int which = 1; which <= 2; which++)
            for (int sym = 0; sym <= 1; sym++) {
                int quad = cases[k].act[0] == 't' || cases[k].act[0] == 'g';
                if (quad && which == NL_KERNEL_NNGP) continue; /* the NTK's backward uses every partial */
                opud u;
                nl_kernel_cfg_default(&u.cfg);
                nl_kernel_act_parse(&u.cfg, cases[k].act);
                u.cfg.depth = cases[k].depth;
                if (quad) u.cfg.quad_deg = 40;
                if (cases[k].sp) { u.cfg.param = NL_KPARAM_SP; u.cfg.sp_width = 50; u.cfg.sp_in_dim = d; }
                u.which = which;
                u.sym = sym;
                double hv[4] = {1.7, 0.15, 0.8, 0.3};
                if (quad) hv[0] = 0.6; /* moderate variances: quadratures of E[phi' phi'''] converge slowly for saturated tanh */
                int64_t nh = cases[k].nh, sn[2] = {n, n}, sc[2] = {n, m};
                double Ks[25], Kc[20], a1[5], a2[4];
                memcpy(Ks, K0, sizeof Ks); memcpy(Kc, K0c, sizeof Kc); memcpy(a1, d1, sizeof a1); memcpy(a2, d2, sizeof a2);
                nl_tensor in[4];
                int nin;
                if (sym) { in[0] = nl_tensor_wrap(Ks, NL_F64, 2, sn); in[1] = nl_tensor_wrap(hv, NL_F64, 1, &nh); nin = 2; }
                else {
                    in[0] = nl_tensor_wrap(Kc, NL_F64, 2, sc); in[1] = nl_tensor_wrap(a1, NL_F64, 1, &n);
                    in[2] = nl_tensor_wrap(a2, NL_F64, 1, &m); in[3] = nl_tensor_wrap(hv, NL_F64, 1, &nh); nin = 4;
                }
                nl_gc_result r;
                double rtol = u.cfg.quad_deg == 40 ? 5e-4 : 1e-5; /* quadrature: Price expectations vs the rule's slope */
                nl_status s = nl_gradcheck(f_op, &u, nin, in, NULL, 1e-6, 1e-7, rtol, &r);
                NLT_CHECK(s == NL_OK, "%s depth %d sp %d hyp %d %s %s: %s (max rel %.3g)", cases[k].act, cases[k].depth,
                          cases[k].sp, (int)nh, which == 1 ? "nngp" : "ntk", sym ? "sym" : "cross", nl_last_error(), r.max_rel_err);
            }
    free(X); free(Y);
}

/* -log N(y; 0, K(theta) + noise I) built from engine ops, against nl_gp_fit, with gradients */
typedef struct { nl_kernel_cfg cfg; const double *y; int64_t n; } mlud;

static nl_var *f_nll(nl_ctx *c, nl_var **in, void *ud) {
    mlud *u = ud;
    nl_var *K = nl_kernel_fc(c, &u->cfg, NL_KERNEL_NTK, in[0], NULL, NULL, in[1]);
    nl_var *A = nl_kernel_add_diag(c, K, in[2]);
    nl_var *L = nl_cholesky(c, A);
    int64_t s[2] = {u->n, 1};
    nl_var *y = nl_input(c, nl_tensor_wrap((void *)u->y, NL_F64, 2, s));
    nl_var *al = nl_cho_solve(c, L, y);
    nl_var *q = nl_sum(c, nl_mul(c, y, al), NL_AXIS_ALL, 0);
    nl_var *ld = nl_logdet_chol(c, L);
    return nl_add_scalar(c, nl_add(c, nl_mul_scalar(c, q, 0.5), nl_mul_scalar(c, ld, 0.5)), 0.5 * (double)u->n * log(2 * M_PI));
}

static void test_marginal_likelihood(void) {
    int64_t n = 6, d = 3;
    double *X = nlt_randn_f64(51, n * d, 1.0), *y = nlt_randn_f64(52, n, 1.0);
    double K0[36];
    gram(X, n, X, n, d, K0);
    mlud u;
    nl_kernel_cfg_default(&u.cfg);
    u.cfg.depth = 2;
    u.y = y;
    u.n = n;
    double hv[2] = {1.5, 0.2}, noise = 0.05;
    int64_t sn[2] = {n, n}, s2 = 2;
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    nl_var *in[3] = {nl_input(c, nl_tensor_wrap(K0, NL_F64, 2, sn)), nl_input(c, nl_tensor_wrap(hv, NL_F64, 1, &s2)),
                     nl_scalar(c, NL_F64, noise)};
    nl_var *nll = f_nll(c, in, &u);
    NLT_CHECK(nll != NULL, "nll graph: %s", nl_last_error());
    nl_kernel_cfg mc = u.cfg;
    mc.sw = sqrt(hv[0]); mc.sb = sqrt(hv[1]);
    double K[36];
    NLT_OK(nl_kernel_matrix(&mc, X, n, NULL, n, d, NL_KERNEL_NTK, NL_F64, NULL, K, 0));
    nl_gp gp;
    NLT_OK(nl_gp_fit(&gp, K, n, y, 1, 0.0, noise, 0));
    if (nll) NLT_NEAR(nl_item(nll), gp.nll, 1e-10 * fabs(gp.nll));
    nl_gp_free(&gp);
    nl_ctx_free(c);
    double nz[1] = {noise};
    int64_t one = 1;
    nl_tensor tin[3] = {nl_tensor_wrap(K0, NL_F64, 2, sn), nl_tensor_wrap(hv, NL_F64, 1, &s2), nl_tensor_wrap(nz, NL_F64, 1, &one)};
    int wrt[3] = {0, 1, 1};
    nl_gc_result r;
    NLT_OK(nl_gradcheck(f_nll, &u, 3, tin, wrt, 1e-6, 1e-7, 1e-5, &r));
    free(X); free(y);
}

/* ---------------------------------------------------------------------------------------------------- */
/* dense solve by Gaussian elimination (reference); returns log det */
static double dense_solve(double *A, int64_t n, double *B, int64_t k) {
    double ld = 0;
    for (int64_t p = 0; p < n; p++) {
        double piv = A[p * n + p];
        ld += log(fabs(piv));
        for (int64_t i = p + 1; i < n; i++) {
            double f = A[i * n + p] / piv;
            for (int64_t j = p; j < n; j++) A[i * n + j] -= f * A[p * n + j];
            for (int64_t j = 0; j < k; j++) B[i * k + j] -= f * B[p * k + j];
        }
    }
    for (int64_t i = n - 1; i >= 0; i--)
        for (int64_t j = 0; j < k; j++) {
            double s = B[i * k + j];
            for (int64_t q = i + 1; q < n; q++) s -= A[i * n + q] * B[q * k + j];
            B[i * k + j] = s / A[i * n + i];
        }
    return ld;
}

static void test_gp_krr(void) {
    int64_t n = 8, t = 5, d = 3, C = 3;
    double *X = nlt_randn_f64(61, n * d, 1.0), *Xs = nlt_randn_f64(62, t * d, 1.0);
    int32_t lab[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    double Y[24];
    nl_onehot(lab, n, (int)C, 1.0, 0.0, Y);
    nl_kernel_cfg c;
    nl_kernel_cfg_default(&c);
    c.depth = 2; c.sb = 0.1;
    double K[64], Ks[40], kss[5], Kd[5 * 5];
    NLT_OK(nl_kernel_matrix(&c, X, n, NULL, n, d, NL_KERNEL_NTK, NL_F64, NULL, K, 0));
    NLT_OK(nl_kernel_matrix(&c, Xs, t, X, n, d, NL_KERNEL_NTK, NL_F64, NULL, Ks, 0));
    NLT_OK(nl_kernel_matrix(&c, Xs, t, NULL, t, d, NL_KERNEL_NTK, NL_F64, NULL, Kd, 0));
    for (int64_t i = 0; i < t; i++) kss[i] = Kd[i * t + i];
    double diag_reg = 0.01, noise = 0.002;
    nl_gp gp;
    NLT_OK(nl_gp_fit(&gp, K, n, Y, C, diag_reg, noise, 0));
    /* reference */
    double tr = 0, A[64], B[24];
    for (int64_t i = 0; i < n; i++) tr += K[i * n + i];
    double reg = diag_reg * tr / n + noise;
    memcpy(A, K, sizeof A);
    memcpy(B, Y, sizeof B);
    for (int64_t i = 0; i < n; i++) A[i * n + i] += reg;
    double ld = dense_solve(A, n, B, C);
    NLT_NEAR(gp.reg, reg, 1e-15);
    NLT_NEAR(gp.logdet, ld, 1e-10);
    double q = 0;
    for (int64_t i = 0; i < n * C; i++) q += Y[i] * B[i];
    NLT_NEAR(gp.nll, 0.5 * q + 0.5 * C * ld + 0.5 * C * n * log(2 * M_PI), 1e-9);
    double mean[15], ref[15];
    NLT_OK(nl_gp_predict(&gp, Ks, t, mean));
    double e = 0;
    for (int64_t i = 0; i < t; i++)
        for (int64_t j = 0; j < C; j++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) s += Ks[i * n + k] * B[k * C + j];
            ref[i * C + j] = s;
            e = fmax(e, fabs(s - mean[i * C + j]));
        }
    NLT_CHECK(e < 1e-10, "KRR mean vs direct solve %.3g", e);
    /* variance: kss - ks^T A^{-1} ks */
    double var[5];
    NLT_OK(nl_gp_variance(&gp, Ks, kss, t, var));
    e = 0;
    for (int64_t i = 0; i < t; i++) {
        double A2[64], b2[8];
        memcpy(A2, K, sizeof A2);
        for (int64_t k = 0; k < n; k++) { A2[k * n + k] += reg; b2[k] = Ks[i * n + k]; }
        dense_solve(A2, n, b2, 1);
        double s = 0;
        for (int64_t k = 0; k < n; k++) s += Ks[i * n + k] * b2[k];
        e = fmax(e, fabs(kss[i] - s - var[i]));
        NLT_CHECK(var[i] > 0, "posterior variance positive");
    }
    NLT_CHECK(e < 1e-10, "GP variance vs direct %.3g", e);
    int32_t pred[5];
    NLT_OK(nl_gp_classify(&gp, Ks, t, pred));
    int agree = 1;
    for (int64_t i = 0; i < t; i++) {
        int best = 0;
        for (int j = 1; j < C; j++) if (ref[i * C + j] > ref[i * C + best]) best = j;
        agree &= pred[i] == best;
    }
    NLT_CHECK(agree, "argmax classification");
    /* training points are fitted almost exactly with a tiny regulariser */
    nl_gp_free(&gp);
    double K2[64];
    memcpy(K2, K, sizeof K2);
    NLT_OK(nl_gp_fit(&gp, K2, n, Y, C, 1e-10, 0.0, NL_GP_OVERWRITE_K));
    NLT_CHECK(gp.L == K2 && !gp.owns_L, "factor in place");
    int32_t ptrain[8];
    NLT_OK(nl_gp_classify(&gp, K, n, ptrain));
    int ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= ptrain[i] == lab[i];
    NLT_CHECK(ok, "training labels recovered");
    nl_gp_free(&gp);
    /* not positive definite */
    double bad[4] = {1, 2, 2, 1}, yb[2] = {1, 0};
    nl_status s = nl_gp_fit(&gp, bad, 2, yb, 1, 0.0, 0.0, 0);
    NLT_CHECK(s == NL_ELINALG && strstr(nl_last_error(), "not positive definite") && strstr(nl_last_error(), "diag_reg"),
              "non-PD -> %s: %s", nl_status_name(s), nl_last_error());
    NLT_CHECK(gp.L == NULL && gp.alpha == NULL, "gp zeroed after failure");
    double nanK[4] = {1, NAN, NAN, 1};
    s = nl_gp_fit(&gp, nanK, 2, yb, 1, 0.0, 0.0, 0);
    NLT_CHECK(s == NL_ENONFINITE, "NaN kernel -> %s", nl_status_name(s));
    NLT_CHECK(nl_gp_fit(&gp, bad, 2, yb, 1, -1.0, 0.0, 0) == NL_EINVAL, "negative diag_reg");
    /* the same singular matrix becomes usable with a regulariser: K + 2 I has eigenvalues 5 and 1 */
    NLT_OK(nl_gp_fit(&gp, bad, 2, yb, 1, 2.0, 0.0, 0));
    nl_gp_free(&gp);
    free(X); free(Xs);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_reference_table);
    NLT_RUN(test_parse_and_check);
    NLT_RUN(test_gauss_rules);
    NLT_RUN(test_matrix_vs_pair);
    NLT_RUN(test_tiling);
    NLT_RUN(test_quadrature_vs_closed);
    NLT_RUN(test_user_activation);
    NLT_RUN(test_monte_carlo);
    NLT_RUN(test_op_forward);
    NLT_RUN(test_op_gradients);
    NLT_RUN(test_marginal_likelihood);
    NLT_RUN(test_gp_krr);
    return nlt_finish();
}
