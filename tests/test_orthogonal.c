/* The orthogonal parametrisation Q = exp(tril(X,-1) - tril(X,-1)^T) (src/linalg/orthogonal.c): values against closed
 * forms (2x2 rotation, block rotations) and a Taylor series, Q^T Q = I and ||Q x|| = ||x|| over every Pade degree
 * and with squarings, the Frechet derivative against finite differences of nl_expm, finite-difference gradient checks
 * of the op (f64), the f32 path, and the error paths. */
#include "nltest.h"
#include "nnlab/extend.h"

static double *D(nl_var *v) { return (double *)v->val.data; }

/* a random X (n, n) in [-s, s] */
static nl_tensor rand_x(int64_t n, double s, uint64_t seed, nl_dtype dt) {
    int64_t sh[2] = {n, n};
    nl_tensor t = nl_tensor_wrap(calloc((size_t)(n * n), dt == NL_F64 ? 8 : 4), dt, 2, sh);
    nl_rng r;
    nl_rng_init(&r, seed, 3);
    nl_rng_fill_uniform(&r, &t, -s, s);
    return t;
}

/* max |Q^T Q - I| and max over random x of | ||Qx|| - ||x|| | / ||x|| */
static void orth_err(const double *Q, int64_t n, double *e_orth, double *e_norm, uint64_t seed) {
    double eo = 0, en = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) s += Q[k * n + i] * Q[k * n + j];
            eo = fmax(eo, fabs(s - (i == j)));
        }
    nl_rng r;
    nl_rng_init(&r, seed, 9);
    double *x = malloc((size_t)n * sizeof *x);
    for (int t = 0; t < 5; t++) {
        double nx = 0, nq = 0;
        for (int64_t i = 0; i < n; i++) {
            x[i] = nl_rng_normal(&r);
            nx += x[i] * x[i];
        }
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) s += Q[i * n + k] * x[k];
            nq += s * s;
        }
        en = fmax(en, fabs(sqrt(nq) - sqrt(nx)) / sqrt(nx));
    }
    free(x);
    *e_orth = eo;
    *e_norm = en;
}

static void test_rotation_2x2(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    /* X = [[0, 0], [t, 0]]: A = [[0, -t], [t, 0]], exp(A) = [[cos t, -sin t], [sin t, cos t]]; t spans every degree */
    const double ts[] = {0.0, 0.01, 0.2, 0.9, 2.0, 5.0, 40.0};
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
        double t = ts[k], x[4] = {7, -3, t, 11}; /* diagonal and upper entries are ignored */
        nl_var *Q = nl_orthogonal_expm(c, nl_input(c, nl_tensor_wrap(x, NL_F64, 2, (int64_t[]){2, 2})));
        NLT_CHECK(Q != NULL, "%s", nl_last_error());
        if (!Q) continue;
        NLT_NEAR(D(Q)[0], cos(t), 1e-13);
        NLT_NEAR(D(Q)[1], -sin(t), 1e-13);
        NLT_NEAR(D(Q)[2], sin(t), 1e-13);
        NLT_NEAR(D(Q)[3], cos(t), 1e-13);
    }
    nl_ctx_free(c);
}

/* exp of a small random (non-skew) A against its Taylor series, and exp(0) = I */
static void test_expm_taylor(void) {
    int64_t n = 6;
    nl_tensor X = rand_x(n, 0.4, 5, NL_F64);
    double *A = X.data, E[36], T[36], P[36], P2[36];
    NLT_OK(nl_expm(A, n, E));
    memset(T, 0, sizeof T);
    memset(P, 0, sizeof P);
    for (int i = 0; i < n; i++) T[i * n + i] = P[i * n + i] = 1;
    for (int k = 1; k < 30; k++) { /* P = A^k / k! */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int l = 0; l < n; l++) s += P[i * n + l] * A[l * n + j];
                P2[i * n + j] = s / k;
            }
        memcpy(P, P2, sizeof P);
        for (int i = 0; i < 36; i++) T[i] += P[i];
    }
    double md = 0;
    for (int i = 0; i < 36; i++) md = fmax(md, fabs(E[i] - T[i]));
    NLT_NEAR(md, 0, 1e-13);
    double Z[36] = {0}, I[36];
    NLT_OK(nl_expm(Z, n, I));
    for (int i = 0; i < 36; i++) NLT_NEAR(I[i], (i % 7) == 0, 0);
    free(X.data);
}

/* Q^T Q = I to 1e-12 (f64) and 1e-5 (f32), ||Qx|| = ||x||, for norms that use every Pade degree and squarings */
static void test_orthogonality(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    const double scales[] = {1e-4, 1e-2, 0.05, 0.15, 0.4, 1.5, 6.0};
    const int64_t ns[] = {3, 17, 128};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof scales / sizeof scales[0]; b++)
            for (int f32 = 0; f32 < 2; f32++) {
                int64_t n = ns[a];
                nl_tensor X = rand_x(n, scales[b], 11 + a * 7 + b, f32 ? NL_F32 : NL_F64);
                nl_var *Q = nl_orthogonal_expm(c, nl_input(c, X));
                NLT_CHECK(Q != NULL, "n %lld scale %g: %s", (long long)n, scales[b], nl_last_error());
                if (Q) {
                    double *q = malloc((size_t)(n * n) * sizeof *q), eo, en;
                    for (int64_t k = 0; k < n * n; k++) q[k] = f32 ? ((float *)Q->val.data)[k] : D(Q)[k];
                    orth_err(q, n, &eo, &en, 3 + b);
                    double tol = f32 ? 1e-5 : 1e-12;
                    NLT_CHECK(eo <= tol && en <= tol, "n %lld scale %g %s: |Q^T Q - I| %.3g, norm error %.3g", (long long)n,
                              scales[b], f32 ? "f32" : "f64", eo, en);
                    free(q);
                }
                free(X.data);
                nl_ctx_reset(c);
            }
    nl_ctx_free(c);
}

/* L_exp(A, G) against central differences of nl_expm, for norms below and above theta_13 */
static void test_frechet(void) {
    int64_t n = 5;
    const double scales[] = {0.003, 0.1, 0.5, 3.0};
    for (size_t b = 0; b < sizeof scales / sizeof scales[0]; b++) {
        nl_tensor X = rand_x(n, scales[b], 21 + b, NL_F64), Gt = rand_x(n, 1.0, 31 + b, NL_F64);
        double *A = X.data, *G = Gt.data, E[25], L[25], Ap[25], Am[25], Ep[25], Em[25], h = 1e-6;
        NLT_OK(nl_expm_frechet(A, G, n, E, L));
        for (int i = 0; i < 25; i++) {
            Ap[i] = A[i] + h * G[i];
            Am[i] = A[i] - h * G[i];
        }
        NLT_OK(nl_expm(Ap, n, Ep));
        NLT_OK(nl_expm(Am, n, Em));
        double md = 0, mx = 0, E0[25];
        NLT_OK(nl_expm(A, n, E0));
        for (int i = 0; i < 25; i++) {
            md = fmax(md, fabs((Ep[i] - Em[i]) / (2 * h) - L[i]));
            mx = fmax(mx, fabs(L[i]));
            NLT_NEAR(E[i], E0[i], 1e-12 * (1 + fabs(E0[i])));
        }
        NLT_CHECK(md <= 1e-7 * (1 + mx), "scale %g: max |fd - L| %.3g (max |L| %.3g)", scales[b], md, mx);
        free(X.data);
        free(Gt.data);
    }
}

static nl_var *f_orth(nl_ctx *c, nl_var **in, void *ud) {
    (void)ud;
    return nl_orthogonal_expm(c, in[0]);
}

/* the op's product with a fixed matrix, so the loss mixes rows and columns */
static nl_var *f_orth_mm(nl_ctx *c, nl_var **in, void *ud) {
    (void)ud;
    return nl_matmul(c, in[1], nl_orthogonal_expm(c, in[0]));
}

static void test_gradcheck(void) {
    const double scales[] = {0.002, 0.1, 0.6, 2.5};
    for (size_t b = 0; b < sizeof scales / sizeof scales[0]; b++) {
        int64_t n = 6;
        nl_tensor in[2] = {rand_x(n, scales[b], 41 + b, NL_F64), rand_x(n, 1.0, 51 + b, NL_F64)};
        nl_gc_result r;
        nl_status s = nl_gradcheck(f_orth, NULL, 1, in, NULL, 1e-6, 1e-8, 1e-6, &r);
        NLT_CHECK(s == NL_OK && r.checked > 0, "scale %g: %s (max abs err %.3g)", scales[b], nl_last_error(), r.max_abs_err);
        s = nl_gradcheck(f_orth_mm, NULL, 2, in, NULL, 1e-6, 1e-8, 1e-6, &r);
        NLT_CHECK(s == NL_OK && r.checked > 0, "scale %g (product): %s (max abs err %.3g)", scales[b], nl_last_error(),
                  r.max_abs_err);
        free(in[0].data);
        free(in[1].data);
    }
}

/* f32 parameter: gradient reaches the strict lower triangle only, close to the f64 gradient */
static void test_f32_grad(void) {
    int64_t n = 4;
    nl_tensor X = rand_x(n, 0.7, 61, NL_F64);
    double gd[16];
    float gf[16];
    for (int pass = 0; pass < 2; pass++) {
        nl_ctx *c = nl_ctx_new(0, 0);
        nl_tensor t = X;
        float xf[16];
        if (pass) {
            for (int i = 0; i < 16; i++) xf[i] = (float)((double *)X.data)[i];
            t = nl_tensor_wrap(xf, NL_F32, 2, (int64_t[]){4, 4});
        }
        nl_var *x = nl_leaf(c, t, 1);
        nl_var *Q = nl_orthogonal_expm(c, x);
        /* loss = sum_ij w_ij Q_ij with w_ij = i + 2 j */
        nl_var *w = nl_new(c, t.dtype, 2, (int64_t[]){4, 4});
        for (int i = 0; i < 16; i++) {
            if (pass) ((float *)w->val.data)[i] = (float)(i / 4 + 2 * (i % 4));
            else ((double *)w->val.data)[i] = i / 4 + 2 * (i % 4);
        }
        nl_var *loss = nl_sum(c, nl_mul(c, Q, w), NL_AXIS_ALL, 0);
        NLT_OK(nl_backward(c, loss));
        for (int i = 0; i < 16; i++) {
            if (pass) gf[i] = ((float *)x->grad.data)[i];
            else gd[i] = ((double *)x->grad.data)[i];
        }
        nl_ctx_free(c);
    }
    for (int i = 0; i < 16; i++) {
        NLT_NEAR(gf[i], gd[i], 1e-4 * (1 + fabs(gd[i])));
        if (i / 4 <= i % 4) NLT_CHECK(gd[i] == 0 && gf[i] == 0, "entry %d (not strictly lower) has gradient %g", i, gd[i]);
    }
    free(X.data);
}

static void test_qr_and_errors(void) {
    int64_t n = 9;
    nl_tensor W = rand_x(n, 1.0, 71, NL_F64);
    NLT_OK(nl_orthogonal_qr(W.data, n));
    double eo, en;
    orth_err(W.data, n, &eo, &en, 5);
    NLT_NEAR(eo, 0, 1e-13);
    NLT_NEAR(en, 0, 1e-13);
    free(W.data);
    nl_ctx *c = nl_ctx_new(0, 0);
    double bad[4] = {0, 0, NAN, 0}, rect[6] = {0};
    NLT_CHECK(!nl_orthogonal_expm(c, nl_input(c, nl_tensor_wrap(bad, NL_F64, 2, (int64_t[]){2, 2}))) &&
                  nl_last_status() == NL_ENONFINITE,
              "NaN -> NL_ENONFINITE (%s)", nl_last_error());
    NLT_CHECK(!nl_orthogonal_expm(c, nl_input(c, nl_tensor_wrap(rect, NL_F64, 2, (int64_t[]){2, 3}))) &&
                  nl_last_status() == NL_ESHAPE && strstr(nl_last_error(), "orthogonal_expm"),
              "non-square -> NL_ESHAPE naming the op (%s)", nl_last_error());
    nl_ctx_free(c);
}

int main(void) {
    NLT_RUN(test_rotation_2x2);
    NLT_RUN(test_expm_taylor);
    NLT_RUN(test_orthogonality);
    NLT_RUN(test_frechet);
    NLT_RUN(test_gradcheck);
    NLT_RUN(test_f32_grad);
    NLT_RUN(test_qr_and_errors);
    return nlt_finish();
}
