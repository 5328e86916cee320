/* Linear algebra: values against hand-computed cases, error paths, finite-difference gradient checks of every
 * differentiable op, and an end-to-end GP negative log marginal likelihood (value and hyperparameter gradients). */
#include "nltest.h"
#include "nnlab/extend.h"

static void fill(nl_tensor *t, uint64_t seed, double lo, double hi) {
    nl_rng r;
    nl_rng_init(&r, seed, 7);
    nl_rng_fill_uniform(&r, t, lo, hi);
}

static nl_tensor mk(int nd, int64_t a, int64_t b) {
    int64_t s[2] = {a, b};
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= s[i];
    return nl_tensor_wrap(calloc((size_t)(n > 0 ? n : 1), sizeof(double)), NL_F64, nd, s);
}

static double *D(nl_var *v) { return (double *)v->val.data; }

static void gc(const char *what, nl_gc_fn f, void *ud, int n, nl_tensor *in, const int *wrt) {
    nl_gc_result r;
    nl_status s = nl_gradcheck(f, ud, n, in, wrt, 1e-6, 1e-8, 1e-6, &r);
    NLT_CHECK(s == NL_OK && r.checked > 0, "%s: %s (checked %lld, max abs err %.3g)", what, nl_last_error(),
              (long long)r.checked, r.max_abs_err);
}

/* diagonally boosted random square matrix (well conditioned, positive diagonal) */
static nl_tensor rand_tri(int64_t n, uint64_t seed) {
    nl_tensor t = mk(2, n, n);
    fill(&t, seed, -0.5, 0.5);
    for (int64_t i = 0; i < n; i++) ((double *)t.data)[i * n + i] = 1.5 + 0.25 * (double)i;
    return t;
}

/* ---------------- Cholesky ---------------- */

static void test_cholesky_values(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    double a[4] = {4, 2, 2, 3};
    int64_t s2[2] = {2, 2};
    nl_var *A = nl_input(c, nl_tensor_wrap(a, NL_F64, 2, s2));
    nl_var *L = nl_cholesky(c, A);
    NLT_CHECK(L != NULL, "cholesky: %s", nl_last_error());
    if (L) {
        NLT_NEAR(D(L)[0], 2, 1e-15);
        NLT_NEAR(D(L)[1], 0, 0);
        NLT_NEAR(D(L)[2], 1, 1e-15);
        NLT_NEAR(D(L)[3], sqrt(2.0), 1e-15);
    }
    /* only the lower triangle is read: garbage above the diagonal changes nothing */
    double ag[4] = {4, 99, 2, 3};
    L = nl_cholesky(c, nl_input(c, nl_tensor_wrap(ag, NL_F64, 2, s2)));
    NLT_CHECK(L && fabs(D(L)[3] - sqrt(2.0)) < 1e-15 && D(L)[1] == 0, "upper triangle ignored");
    /* 4x4 random SPD, strided (transposed view) input: L L^T = A */
    nl_tensor X = mk(2, 4, 4);
    fill(&X, 3, -1, 1);
    double Am[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double s = 0;
            for (int k = 0; k < 4; k++) s += ((double *)X.data)[i * 4 + k] * ((double *)X.data)[j * 4 + k];
            Am[i * 4 + j] = s + (i == j ? 0.5 : 0);
        }
    int64_t s4[2] = {4, 4};
    nl_var *At = nl_transpose(c, nl_input(c, nl_tensor_wrap(Am, NL_F64, 2, s4)), 0, 1);
    L = nl_cholesky(c, At);
    double md = 0;
    for (int i = 0; i < 4 && L; i++)
        for (int j = 0; j < 4; j++) {
            double s = 0;
            for (int k = 0; k < 4; k++) s += D(L)[i * 4 + k] * D(L)[j * 4 + k];
            md = fmax(md, fabs(s - Am[i * 4 + j]));
            if (j > i) NLT_NEAR(D(L)[i * 4 + j], 0, 0);
            if (j == i) NLT_CHECK(D(L)[i * 4 + j] > 0, "positive diagonal");
        }
    NLT_CHECK(L != NULL, "strided cholesky");
    NLT_NEAR(md, 0, 1e-13);
    /* in-place helper agrees */
    double Ai[16];
    memcpy(Ai, Am, sizeof Ai);
    NLT_OK(nl_cholesky_inplace(Ai, 4));
    md = 0;
    for (int i = 0; i < 16 && L; i++) md = fmax(md, fabs(Ai[i] - D(L)[i]));
    NLT_NEAR(md, 0, 1e-15);
    NLT_OK(nl_cholesky_inplace(Ai, 0));
    /* only the lower triangle is read: garbage (NaN) in the strict upper triangle is ignored and zeroed (the GP prior
     * sampler fills the lower triangle only; its scratch once held NaN bits there, a spurious NL_ENONFINITE) */
    memcpy(Ai, Am, sizeof Ai);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++) Ai[i * 4 + j] = NAN;
    NLT_OK(nl_cholesky_inplace(Ai, 4));
    md = 0;
    for (int i = 0; i < 16 && L; i++) md = fmax(md, fabs(Ai[i] - D(L)[i]));
    NLT_NEAR(md, 0, 1e-15);
    Ai[1 * 4 + 0] = NAN; /* ... while a NaN in the lower triangle is refused */
    NLT_CHECK(nl_cholesky_inplace(Ai, 4) == NL_ENONFINITE, "NaN in the lower triangle: %s", nl_last_error());
    free(X.data);
    nl_ctx_free(c);
}

static void test_cholesky_errors(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    int64_t s2[2] = {2, 2};
    double np[4] = {1, 2, 2, 1}; /* eigenvalues 3, -1 */
    nl_clear_error();
    NLT_CHECK(nl_cholesky(c, nl_input(c, nl_tensor_wrap(np, NL_F64, 2, s2))) == NULL, "non-PD must fail");
    NLT_CHECK(nl_last_status() == NL_ELINALG, "status %s", nl_status_name(nl_last_status()));
    NLT_CHECK(strcmp(nl_last_error(), "cholesky: matrix [2,2] is not positive definite (leading minor 2); add jitter / a "
                                      "diagonal regulariser") == 0,
              "message: %s", nl_last_error());
    double neg[4] = {-1, 0, 0, 1};
    NLT_CHECK(nl_cholesky(c, nl_input(c, nl_tensor_wrap(neg, NL_F64, 2, s2))) == NULL, "negative pivot");
    NLT_CHECK(strstr(nl_last_error(), "(leading minor 1)") != NULL, "message: %s", nl_last_error());
    double np2[4] = {1, 2, 2, 1};
    NLT_CHECK(nl_cholesky_inplace(np2, 2) == NL_ELINALG && strstr(nl_last_error(), "not positive definite"),
              "inplace non-PD: %s", nl_last_error());
    double nan[4] = {4, 0, NAN, 3};
    NLT_CHECK(nl_cholesky(c, nl_input(c, nl_tensor_wrap(nan, NL_F64, 2, s2))) == NULL && nl_last_status() == NL_ENONFINITE,
              "NaN input: %s", nl_last_error());
    NLT_CHECK(strstr(nl_last_error(), "cholesky") && strstr(nl_last_error(), "non-finite"), "message: %s", nl_last_error());
    float f[4] = {4, 2, 2, 3};
    NLT_CHECK(nl_cholesky(c, nl_input(c, nl_tensor_wrap(f, NL_F32, 2, s2))) == NULL && nl_last_status() == NL_EDTYPE,
              "f32 refused");
    NLT_CHECK(strstr(nl_last_error(), "cholesky") && strstr(nl_last_error(), "f32"), "message: %s", nl_last_error());
    double r[6] = {0};
    int64_t s23[2] = {2, 3};
    NLT_CHECK(nl_cholesky(c, nl_input(c, nl_tensor_wrap(r, NL_F64, 2, s23))) == NULL && nl_last_status() == NL_ESHAPE,
              "non-square refused");
    NLT_CHECK(strstr(nl_last_error(), "cholesky") && strstr(nl_last_error(), "[2,3]"), "message: %s", nl_last_error());
    NLT_CHECK(nl_cholesky(c, NULL) == NULL, "NULL propagates");
    nl_ctx_free(c);
}

/* A = (X + X^T)/2 + n I keeps every perturbation of X symmetric and positive definite */
static nl_var *sym_pd(nl_ctx *c, nl_var *X) {
    int64_t n = X->val.shape[0];
    nl_var *S = nl_mul_scalar(c, nl_add(c, X, nl_transpose(c, X, 0, 1)), 0.5);
    nl_var *d = nl_zeros(c, NL_F64, 1, &n);
    if (!d) return NULL;
    nl_tensor_fill(&d->val, (double)n);
    return nl_add(c, S, nl_diag_embed(c, d));
}

static nl_var *f_chol(nl_ctx *c, nl_var **in, void *ud) { return nl_cholesky(c, sym_pd(c, in[0])); }
static nl_var *f_chol_logdet(nl_ctx *c, nl_var **in, void *ud) { return nl_logdet_chol(c, nl_cholesky(c, sym_pd(c, in[0]))); }
static nl_var *f_chol_solve(nl_ctx *c, nl_var **in, void *ud) { return nl_cho_solve(c, nl_cholesky(c, sym_pd(c, in[0])), in[1]); }

static void test_cholesky_grad(void) {
    for (int64_t n = 1; n <= 5; n += 2) {
        nl_tensor X = mk(2, n, n);
        fill(&X, 10 + n, -1, 1);
        gc("cholesky", f_chol, NULL, 1, &X, NULL);
        gc("logdet(cholesky)", f_chol_logdet, NULL, 1, &X, NULL);
        nl_tensor in[2] = {X, mk(2, n, 2)};
        fill(&in[1], 20 + n, -1, 1);
        gc("cho_solve(cholesky)", f_chol_solve, NULL, 2, in, NULL);
        free(in[1].data);
        free(X.data);
    }
    /* closed form: d logdet(A) / dA = A^{-1} (symmetric gradient convention) */
    nl_ctx *c = nl_ctx_new(0, 0);
    double a[9] = {4, 1, 0.5, 1, 3, 0.2, 0.5, 0.2, 2};
    int64_t s3[2] = {3, 3};
    nl_var *A = nl_leaf(c, nl_tensor_wrap(a, NL_F64, 2, s3), 1);
    nl_var *ld = nl_logdet_chol(c, nl_cholesky(c, A));
    NLT_OK(nl_backward(c, ld));
    double inv[9];
    double eye[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    nl_var *Ai = nl_solve(c, nl_input(c, nl_tensor_wrap(a, NL_F64, 2, s3)), nl_input(c, nl_tensor_wrap(eye, NL_F64, 2, s3)));
    memcpy(inv, Ai->val.data, sizeof inv);
    double md = 0;
    for (int i = 0; i < 9; i++) md = fmax(md, fabs(((double *)A->grad.data)[i] - inv[i]));
    NLT_NEAR(md, 0, 1e-14);
    /* determinant by hand: 4(6-0.04) - 1(2-0.1) + 0.5(0.2-1.5) */
    NLT_NEAR(nl_item(ld), log(4 * (6 - 0.04) - 1 * (2 - 0.1) + 0.5 * (0.2 - 1.5)), 1e-14);
    /* the gradient w.r.t. A is the symmetric one, also for a non-symmetric upstream gradient */
    nl_ctx_reset(c);
    A = nl_leaf(c, nl_tensor_wrap(a, NL_F64, 2, s3), 1);
    nl_var *W = nl_input(c, nl_tensor_wrap(inv, NL_F64, 2, s3)); /* any fixed weights */
    NLT_OK(nl_backward(c, nl_sum(c, nl_mul(c, nl_cholesky(c, A), W), NL_AXIS_ALL, 0)));
    double asym = 0, gmax = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            asym = fmax(asym, fabs(((double *)A->grad.data)[i * 3 + j] - ((double *)A->grad.data)[j * 3 + i]));
            gmax = fmax(gmax, fabs(((double *)A->grad.data)[i * 3 + j]));
        }
    NLT_CHECK(asym <= 1e-15 && gmax > 1e-3, "symmetric gradient (asymmetry %g, max %g)", asym, gmax);
    nl_ctx_free(c);
}

/* ---------------- triangular / Cholesky / general solves ---------------- */

static void test_trisolve_values(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    int64_t s2[2] = {2, 2}, s1[1] = {2};
    double l[4] = {2, 99, 1, 3}; /* lower [[2,0],[1,3]]; the 99 must never be read */
    double u[4] = {2, 1, -77, 3}; /* upper [[2,1],[0,3]] */
    double b[2] = {4, 7};
    nl_var *L = nl_input(c, nl_tensor_wrap(l, NL_F64, 2, s2)), *U = nl_input(c, nl_tensor_wrap(u, NL_F64, 2, s2));
    nl_var *B = nl_input(c, nl_tensor_wrap(b, NL_F64, 1, s1));
    nl_var *x = nl_trisolve(c, L, B, 1, 0); /* [[2,0],[1,3]] x = [4,7] -> [2, 5/3] */
    NLT_CHECK(x && x->val.ndim == 1 && x->val.shape[0] == 2, "vector rhs keeps shape");
    NLT_NEAR(D(x)[0], 2, 1e-15);
    NLT_NEAR(D(x)[1], 5.0 / 3, 1e-15);
    x = nl_trisolve(c, L, B, 1, 1); /* [[2,1],[0,3]] x = [4,7] -> [5/6, 7/3] */
    NLT_NEAR(D(x)[0], 5.0 / 6, 1e-15);
    NLT_NEAR(D(x)[1], 7.0 / 3, 1e-15);
    x = nl_trisolve(c, U, B, 0, 0);
    NLT_NEAR(D(x)[0], 5.0 / 6, 1e-15);
    NLT_NEAR(D(x)[1], 7.0 / 3, 1e-15);
    x = nl_trisolve(c, U, B, 0, 1); /* [[2,0],[1,3]] */
    NLT_NEAR(D(x)[0], 2, 1e-15);
    NLT_NEAR(D(x)[1], 5.0 / 3, 1e-15);
    /* matrix right-hand side [2,2]: columns [4,7] and [2,-1] */
    double bm[4] = {4, 2, 7, -1};
    x = nl_trisolve(c, L, nl_input(c, nl_tensor_wrap(bm, NL_F64, 2, s2)), 1, 0);
    NLT_CHECK(x && x->val.ndim == 2, "matrix rhs");
    NLT_NEAR(D(x)[0], 2, 1e-15);
    NLT_NEAR(D(x)[2], 5.0 / 3, 1e-15);
    NLT_NEAR(D(x)[1], 1, 1e-15);
    NLT_NEAR(D(x)[3], -2.0 / 3, 1e-15);
    /* cho_solve: A = [[4,2],[2,3]], A^{-1} [1,2] = [3-4, -2+8]/8 */
    double a[4] = {4, 2, 2, 3}, r[2] = {1, 2};
    nl_var *LA = nl_cholesky(c, nl_input(c, nl_tensor_wrap(a, NL_F64, 2, s2)));
    x = nl_cho_solve(c, LA, nl_input(c, nl_tensor_wrap(r, NL_F64, 1, s1)));
    NLT_NEAR(D(x)[0], -0.125, 1e-15);
    NLT_NEAR(D(x)[1], 0.75, 1e-15);
    /* general solve: [[1,2],[3,4]] x = [5,6] -> [-4, 4.5] */
    double g[4] = {1, 2, 3, 4}, gb[2] = {5, 6};
    x = nl_solve(c, nl_input(c, nl_tensor_wrap(g, NL_F64, 2, s2)), nl_input(c, nl_tensor_wrap(gb, NL_F64, 1, s1)));
    NLT_CHECK(x != NULL, "solve: %s", nl_last_error());
    NLT_NEAR(D(x)[0], -4, 1e-14);
    NLT_NEAR(D(x)[1], 4.5, 1e-14);
    /* errors */
    double z[4] = {2, 0, 1, 0};
    nl_clear_error();
    NLT_CHECK(nl_trisolve(c, nl_input(c, nl_tensor_wrap(z, NL_F64, 2, s2)), B, 1, 0) == NULL && nl_last_status() == NL_ELINALG,
              "zero diagonal: %s", nl_last_error());
    NLT_CHECK(strstr(nl_last_error(), "trisolve") && strstr(nl_last_error(), "singular"), "message: %s", nl_last_error());
    double b3[3] = {1, 2, 3};
    int64_t s3[1] = {3};
    nl_var *B3 = nl_input(c, nl_tensor_wrap(b3, NL_F64, 1, s3));
    NLT_CHECK(nl_trisolve(c, L, B3, 1, 0) == NULL && nl_last_status() == NL_ESHAPE, "rhs mismatch");
    NLT_CHECK(strstr(nl_last_error(), "trisolve") && strstr(nl_last_error(), "[2,2]") && strstr(nl_last_error(), "[3]"),
              "message: %s", nl_last_error());
    NLT_CHECK(nl_cho_solve(c, L, B3) == NULL && strstr(nl_last_error(), "cho_solve") && strstr(nl_last_error(), "[3]"),
              "message: %s", nl_last_error());
    NLT_CHECK(nl_solve(c, L, B3) == NULL && strstr(nl_last_error(), "solve") && strstr(nl_last_error(), "[3]"),
              "message: %s", nl_last_error());
    double sg[4] = {1, 2, 2, 4};
    NLT_CHECK(nl_solve(c, nl_input(c, nl_tensor_wrap(sg, NL_F64, 2, s2)), B) == NULL && nl_last_status() == NL_ELINALG,
              "singular solve: %s", nl_last_error());
    NLT_CHECK(strstr(nl_last_error(), "singular"), "message: %s", nl_last_error());
    NLT_CHECK(nl_trisolve(c, L, NULL, 1, 0) == NULL, "NULL propagates");
    nl_ctx_free(c);
}

typedef struct { int lower, trans, strided; } tri_args;
static nl_var *f_trisolve(nl_ctx *c, nl_var **in, void *ud) {
    tri_args *a = ud;
    if (a->strided) /* solve with the transposed view: lower <-> upper */
        return nl_trisolve(c, nl_transpose(c, in[0], 0, 1), in[1], !a->lower, a->trans);
    return nl_trisolve(c, in[0], in[1], a->lower, a->trans);
}
static nl_var *f_cho_solve(nl_ctx *c, nl_var **in, void *ud) { return nl_cho_solve(c, in[0], in[1]); }
static nl_var *f_solve(nl_ctx *c, nl_var **in, void *ud) { return nl_solve(c, in[0], in[1]); }

static void test_solve_grads(void) {
    const int64_t n = 4;
    for (int rank = 1; rank <= 2; rank++) {
        for (int k = 0; k < 8; k++) {
            tri_args a = {k & 1, (k >> 1) & 1, (k >> 2) & 1};
            /* full random L: the triangle that is not read must get exactly zero gradient (both sides agree) */
            nl_tensor in[2] = {rand_tri(n, 30 + k), rank == 1 ? mk(1, n, 0) : mk(2, n, 3)};
            fill(&in[1], 40 + k, -1, 1);
            char what[80];
            snprintf(what, sizeof what, "trisolve lower=%d trans=%d strided=%d rank=%d", a.lower, a.trans, a.strided, rank);
            gc(what, f_trisolve, &a, 2, in, NULL);
            free(in[1].data);
            free(in[0].data);
        }
        /* masking: the analytic gradient in the unread triangle is exactly 0 */
        {
            nl_ctx *c = nl_ctx_new(0, 0);
            nl_tensor Lt = rand_tri(n, 55), Bt = rank == 1 ? mk(1, n, 0) : mk(2, n, 3);
            fill(&Bt, 56, -1, 1);
            nl_var *L = nl_leaf(c, Lt, 1), *B = nl_leaf(c, Bt, 1);
            NLT_OK(nl_backward(c, nl_sum(c, nl_trisolve(c, L, B, 1, 1), NL_AXIS_ALL, 0)));
            int bad = 0;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = i + 1; j < n; j++) bad += ((double *)L->grad.data)[i * n + j] != 0.0;
            NLT_CHECK(bad == 0, "upper triangle of gL must be zero (%d nonzero)", bad);
            free(Lt.data); free(Bt.data);
            nl_ctx_free(c);
        }
        nl_tensor in[2] = {rand_tri(n, 60 + rank), rank == 1 ? mk(1, n, 0) : mk(2, n, 2)};
        fill(&in[1], 70 + rank, -1, 1);
        gc("cho_solve", f_cho_solve, NULL, 2, in, NULL);
        free(in[0].data);
        /* general solve: full random A, diagonally dominant */
        in[0] = rand_tri(n, 80 + rank);
        fill(&in[0], 81 + rank, -1, 1);
        for (int64_t i = 0; i < n; i++) ((double *)in[0].data)[i * n + i] += 3.0;
        gc("solve", f_solve, NULL, 2, in, NULL);
        free(in[0].data);
        free(in[1].data);
    }
}

/* ---------------- logdet, trace, diag, diag_embed ---------------- */

static nl_var *f_logdet(nl_ctx *c, nl_var **in, void *ud) { return nl_logdet_chol(c, in[0]); }
static nl_var *f_trace(nl_ctx *c, nl_var **in, void *ud) { return nl_trace(c, ud ? nl_transpose(c, in[0], 0, 1) : in[0]); }
static nl_var *f_diag(nl_ctx *c, nl_var **in, void *ud) {
    nl_var *d = nl_diag(c, ud ? nl_transpose(c, in[0], 0, 1) : in[0]);
    return nl_mul(c, d, d); /* non-trivial upstream gradient */
}
static nl_var *f_diag_embed(nl_ctx *c, nl_var **in, void *ud) {
    nl_var *d = ud ? nl_slice(c, in[0], 0, 0, 7, 2) : in[0]; /* strided vector */
    nl_var *E = nl_diag_embed(c, d);
    return nl_matmul(c, E, E);
}

static void test_small_ops(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    int64_t s2[2] = {2, 2}, s1[1] = {3};
    double a[4] = {4, 2, 2, 3};
    nl_var *L = nl_cholesky(c, nl_input(c, nl_tensor_wrap(a, NL_F64, 2, s2)));
    nl_var *ld = nl_logdet_chol(c, L);
    NLT_CHECK(ld && ld->val.ndim == 0, "logdet is a scalar");
    NLT_NEAR(nl_item(ld), log(8.0), 1e-15);
    double m[4] = {1, 2, 3, 4};
    nl_var *M = nl_input(c, nl_tensor_wrap(m, NL_F64, 2, s2));
    NLT_NEAR(nl_item(nl_trace(c, M)), 5, 0);
    NLT_NEAR(nl_item(nl_trace(c, nl_transpose(c, M, 0, 1))), 5, 0);
    nl_var *dg = nl_diag(c, M);
    NLT_CHECK(dg && dg->val.ndim == 1 && dg->val.shape[0] == 2 && D(dg)[0] == 1 && D(dg)[1] == 4, "diag");
    double v[3] = {1, -2, 5};
    nl_var *E = nl_diag_embed(c, nl_input(c, nl_tensor_wrap(v, NL_F64, 1, s1)));
    NLT_CHECK(E && E->val.ndim == 2 && E->val.shape[0] == 3 && E->val.shape[1] == 3, "diag_embed shape");
    const double e[9] = {1, 0, 0, 0, -2, 0, 0, 0, 5};
    for (int i = 0; i < 9 && E; i++) NLT_NEAR(D(E)[i], e[i], 0);
    /* errors: logdet of a factor with a non-positive diagonal; shapes; f32 for every op */
    double bad[4] = {1, 0, 0, -1};
    nl_clear_error();
    NLT_CHECK(nl_logdet_chol(c, nl_input(c, nl_tensor_wrap(bad, NL_F64, 2, s2))) == NULL && nl_last_status() == NL_ELINALG,
              "logdet of non-positive diagonal: %s", nl_last_error());
    int64_t s23[2] = {2, 3};
    double r[6] = {0};
    nl_var *R = nl_input(c, nl_tensor_wrap(r, NL_F64, 2, s23));
    NLT_CHECK(nl_trace(c, R) == NULL && strstr(nl_last_error(), "trace") && strstr(nl_last_error(), "[2,3]"), "trace shape: %s", nl_last_error());
    NLT_CHECK(nl_diag(c, R) == NULL && strstr(nl_last_error(), "diag") && strstr(nl_last_error(), "[2,3]"), "diag shape: %s", nl_last_error());
    NLT_CHECK(nl_logdet_chol(c, R) == NULL && nl_last_status() == NL_ESHAPE, "logdet shape");
    NLT_CHECK(nl_diag_embed(c, R) == NULL && strstr(nl_last_error(), "diag_embed") && strstr(nl_last_error(), "[2,3]"), "diag_embed shape: %s", nl_last_error());
    float f[4] = {4, 2, 2, 3};
    nl_var *F = nl_input(c, nl_tensor_wrap(f, NL_F32, 2, s2)), *Fv = nl_input(c, nl_tensor_wrap(f, NL_F32, 1, s2));
    nl_var *Dv = nl_input(c, nl_tensor_wrap(a, NL_F64, 1, s2));
    struct { const char *name; nl_var *res; } cases[] = {
        {"cholesky", nl_cholesky(c, F)},       {"trisolve", nl_trisolve(c, F, Dv, 1, 0)}, {"trisolve", nl_trisolve(c, L, Fv, 1, 0)},
        {"cho_solve", nl_cho_solve(c, F, Dv)}, {"solve", nl_solve(c, F, Dv)},             {"logdet_chol", nl_logdet_chol(c, F)},
        {"trace", nl_trace(c, F)},             {"diag", nl_diag(c, F)},                   {"diag_embed", nl_diag_embed(c, Fv)},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) NLT_CHECK(cases[k].res == NULL, "%s f32 must fail", cases[k].name);
    /* messages (evaluated one at a time) */
    nl_var *(*one[])(nl_ctx *, nl_var *) = {nl_cholesky, nl_logdet_chol, nl_trace, nl_diag};
    const char *nm[] = {"cholesky", "logdet_chol", "trace", "diag"};
    for (int k = 0; k < 4; k++) {
        nl_clear_error();
        NLT_CHECK(one[k](c, F) == NULL && nl_last_status() == NL_EDTYPE && strstr(nl_last_error(), nm[k]) == nl_last_error(),
                  "%s: %s", nm[k], nl_last_error());
    }
    nl_clear_error();
    NLT_CHECK(nl_diag_embed(c, Fv) == NULL && nl_last_status() == NL_EDTYPE && strstr(nl_last_error(), "diag_embed"), "%s", nl_last_error());
    NLT_CHECK(nl_trisolve(c, L, Fv, 1, 0) == NULL && nl_last_status() == NL_EDTYPE && strstr(nl_last_error(), "trisolve"), "%s", nl_last_error());
    NLT_CHECK(nl_cho_solve(c, F, Dv) == NULL && nl_last_status() == NL_EDTYPE && strstr(nl_last_error(), "cho_solve"), "%s", nl_last_error());
    NLT_CHECK(nl_solve(c, F, Dv) == NULL && nl_last_status() == NL_EDTYPE && strstr(nl_last_error(), "solve"), "%s", nl_last_error());
    nl_ctx_free(c);

    /* gradients */
    nl_tensor Lt = rand_tri(4, 90);
    gc("logdet_chol", f_logdet, NULL, 1, &Lt, NULL);
    free(Lt.data);
    for (int strided = 0; strided < 2; strided++) {
        nl_tensor A = mk(2, 4, 4);
        fill(&A, 91 + strided, -1, 1);
        gc("trace", f_trace, strided ? (void *)1 : NULL, 1, &A, NULL);
        gc("diag", f_diag, strided ? (void *)1 : NULL, 1, &A, NULL);
        free(A.data);
        nl_tensor d = mk(1, strided ? 7 : 4, 0);
        fill(&d, 93 + strided, -1, 1);
        gc("diag_embed", f_diag_embed, strided ? (void *)1 : NULL, 1, &d, NULL);
        free(d.data);
    }
}

/* larger matrices (blocked LAPACK/BLAS paths): residuals and closed-form gradients */
static void test_larger(void) {
    const int64_t n = 70, m = 5;
    nl_tensor X = mk(2, n, n), Bt = mk(2, n, m);
    fill(&X, 300, -1, 1);
    fill(&Bt, 301, -1, 1);
    double *A = malloc((size_t)(n * n) * sizeof(double)), *eye = calloc((size_t)(n * n), sizeof(double));
    const double *x = X.data;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) s += x[i * n + k] * x[j * n + k];
            A[i * n + j] = s / (double)n + (i == j ? 0.1 : 0.0);
        }
    for (int64_t i = 0; i < n; i++) eye[i * n + i] = 1;
    int64_t sn[2] = {n, n};
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *Av = nl_leaf(c, nl_tensor_wrap(A, NL_F64, 2, sn), 1), *B = nl_input(c, Bt);
    nl_var *L = nl_cholesky(c, Av);
    nl_var *ld = nl_logdet_chol(c, L);
    NLT_CHECK(ld != NULL, "cholesky n=70: %s", nl_last_error());
    if (!ld) { nl_ctx_free(c); return; }
    NLT_OK(nl_backward(c, ld));
    nl_var *Ainv = nl_solve(c, nl_input(c, Av->val), nl_input(c, nl_tensor_wrap(eye, NL_F64, 2, sn)));
    double md = 0, mx = 0;
    for (int64_t i = 0; i < n * n; i++) {
        md = fmax(md, fabs(((double *)Av->grad.data)[i] - D(Ainv)[i]));
        mx = fmax(mx, fabs(D(Ainv)[i]));
    }
    NLT_NEAR(md / mx, 0, 1e-11);
    /* cho_solve agrees with the LU solve, and A X = B */
    nl_var *X1 = nl_cho_solve(c, L, B), *X2 = nl_solve(c, nl_input(c, Av->val), B);
    double d12 = 0, res = 0;
    for (int64_t i = 0; i < n * m; i++) d12 = fmax(d12, fabs(D(X1)[i] - D(X2)[i]));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) s += A[i * n + k] * D(X1)[k * m + j];
            res = fmax(res, fabs(s - ((double *)Bt.data)[i * m + j]));
        }
    NLT_NEAR(d12, 0, 1e-9);
    NLT_NEAR(res, 0, 1e-10);
    nl_ctx_free(c);
    free(A); free(eye); free(X.data); free(Bt.data);
}

/* ---------------- eigh, SVD ---------------- */

static void test_eigh(void) {
    double a[4] = {2, 1, 1, 2}, w[2];
    NLT_OK(nl_eigh(a, 2, w));
    NLT_NEAR(w[0], 1, 1e-14);
    NLT_NEAR(w[1], 3, 1e-14);
    /* columns: +-[1,-1]/sqrt2 for 1, +-[1,1]/sqrt2 for 3 */
    NLT_NEAR(fabs(a[0]), M_SQRT1_2, 1e-14);
    NLT_NEAR(a[0] + a[2], 0, 1e-14);
    NLT_NEAR(a[1] - a[3], 0, 1e-14);
    NLT_NEAR(fabs(a[1]), M_SQRT1_2, 1e-14);
    /* random symmetric 6x6: A V = V diag(w), V^T V = I, ascending */
    enum { N = 6 };
    nl_tensor X = mk(2, N, N);
    fill(&X, 100, -1, 1);
    double A[N * N], V[N * N], ev[N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) A[i * N + j] = ((double *)X.data)[i * N + j] + ((double *)X.data)[j * N + i];
    memcpy(V, A, sizeof A);
    NLT_OK(nl_eigh(V, N, ev));
    double r1 = 0, r2 = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double av = 0, vv = 0;
            for (int k = 0; k < N; k++) { av += A[i * N + k] * V[k * N + j]; vv += V[k * N + i] * V[k * N + j]; }
            r1 = fmax(r1, fabs(av - V[i * N + j] * ev[j]));
            r2 = fmax(r2, fabs(vv - (i == j)));
        }
    NLT_NEAR(r1, 0, 1e-13);
    NLT_NEAR(r2, 0, 1e-13);
    for (int i = 1; i < N; i++) NLT_CHECK(ev[i] >= ev[i - 1], "ascending");
    double tr = 0, sw = 0;
    for (int i = 0; i < N; i++) { tr += A[i * N + i]; sw += ev[i]; }
    NLT_NEAR(tr, sw, 1e-13);
    double nan[4] = {1, NAN, NAN, 1};
    NLT_CHECK(nl_eigh(nan, 2, w) == NL_ENONFINITE && strstr(nl_last_error(), "eigh"), "NaN: %s", nl_last_error());
    free(X.data);
}

static void svd_check(int64_t m, int64_t n, uint64_t seed) {
    int64_t k = m < n ? m : n;
    nl_tensor X = mk(2, m, n);
    fill(&X, seed, -1, 1);
    double *A = malloc((size_t)(m * n) * sizeof(double)), *U = malloc((size_t)(m * k) * sizeof(double));
    double *S = malloc((size_t)k * sizeof(double)), *Vt = malloc((size_t)(k * n) * sizeof(double));
    memcpy(A, X.data, (size_t)(m * n) * sizeof(double));
    NLT_OK(nl_svd(A, m, n, U, S, Vt));
    const double *X0 = X.data;
    double rec = 0, ou = 0, ov = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t q = 0; q < k; q++) s += U[i * k + q] * S[q] * Vt[q * n + j];
            rec = fmax(rec, fabs(s - X0[i * n + j]));
        }
    for (int64_t p = 0; p < k; p++)
        for (int64_t q = 0; q < k; q++) {
            double su = 0, sv = 0;
            for (int64_t i = 0; i < m; i++) su += U[i * k + p] * U[i * k + q];
            for (int64_t j = 0; j < n; j++) sv += Vt[p * n + j] * Vt[q * n + j];
            ou = fmax(ou, fabs(su - (p == q)));
            ov = fmax(ov, fabs(sv - (p == q)));
        }
    NLT_NEAR(rec, 0, 1e-13);
    NLT_NEAR(ou, 0, 1e-13);
    NLT_NEAR(ov, 0, 1e-13);
    for (int64_t q = 0; q < k; q++) NLT_CHECK(S[q] >= 0 && (q == 0 || S[q] <= S[q - 1]), "S descending, non-negative");
    free(A); free(U); free(S); free(Vt); free(X.data);
}

static void test_svd(void) {
    double a[6] = {3, 0, 0, -2, 0, 0}; /* [3,2]: singular values 3, 2 */
    double U[6], S[2], Vt[4];
    NLT_OK(nl_svd(a, 3, 2, U, S, Vt));
    NLT_NEAR(S[0], 3, 1e-14);
    NLT_NEAR(S[1], 2, 1e-14);
    svd_check(5, 3, 110);
    svd_check(3, 5, 111);
    svd_check(4, 4, 112);
    double nan[4] = {1, 0, 0, INFINITY};
    NLT_CHECK(nl_svd(nan, 2, 2, U, S, Vt) == NL_ENONFINITE && strstr(nl_last_error(), "svd"), "Inf: %s", nl_last_error());
}

/* ---------------- GP negative log marginal likelihood ---------------- */

enum { GP_N = 10, GP_D = 2 };
typedef struct { double x[GP_N * GP_D], y[GP_N]; } gp_data;

/* in[0..2] = log s, log l, log noise (0-d). K = s^2 exp(-|x - x'|^2 / (2 l^2)) + noise I, built from engine ops. */
static nl_var *gp_nll(nl_ctx *c, nl_var **in, void *ud) {
    gp_data *g = ud;
    int64_t sx[2] = {GP_N, GP_D}, sa[3] = {GP_N, 1, GP_D}, sb[3] = {1, GP_N, GP_D}, sy[1] = {GP_N};
    nl_var *X = nl_input(c, nl_tensor_wrap(g->x, NL_F64, 2, sx));
    nl_var *y = nl_input(c, nl_tensor_wrap(g->y, NL_F64, 1, sy));
    nl_var *diff = nl_sub(c, nl_reshape(c, X, 3, sa), nl_reshape(c, X, 3, sb)); /* [n,n,d] */
    nl_var *D2 = nl_sum(c, nl_square(c, diff), -1, 0);                          /* [n,n] */
    nl_var *s2 = nl_exp(c, nl_mul_scalar(c, in[0], 2.0));
    nl_var *inv2l2 = nl_mul_scalar(c, nl_exp(c, nl_mul_scalar(c, in[1], -2.0)), -0.5); /* -1/(2 l^2) */
    nl_var *Kf = nl_mul(c, s2, nl_exp(c, nl_mul(c, D2, inv2l2)));
    nl_var *ones = nl_zeros(c, NL_F64, 1, sy);
    if (!ones) return NULL;
    nl_tensor_fill(&ones->val, 1.0);
    nl_var *K = nl_add(c, Kf, nl_mul(c, nl_exp(c, in[2]), nl_diag_embed(c, ones)));
    nl_var *L = nl_cholesky(c, K);
    nl_var *alpha = nl_cho_solve(c, L, y);
    nl_var *quad = nl_sum(c, nl_mul(c, y, alpha), NL_AXIS_ALL, 0);
    nl_var *nll = nl_add(c, nl_mul_scalar(c, quad, 0.5), nl_mul_scalar(c, nl_logdet_chol(c, L), 0.5));
    return nl_add_scalar(c, nll, 0.5 * GP_N * log(2 * M_PI));
}

static void test_gp_nll(void) {
    gp_data g;
    nl_tensor xt = nl_tensor_wrap(g.x, NL_F64, 1, (int64_t[]){GP_N * GP_D});
    fill(&xt, 200, -2, 2);
    nl_rng r;
    nl_rng_init(&r, 201, 1);
    for (int i = 0; i < GP_N; i++) g.y[i] = sin(g.x[i * GP_D]) + 0.5 * cos(g.x[i * GP_D + 1]) + 0.1 * nl_rng_normal(&r);
    double th[3] = {0.3, -0.2, log(0.05)};
    nl_tensor in[3];
    for (int k = 0; k < 3; k++) in[k] = nl_tensor_wrap(&th[k], NL_F64, 0, NULL);

    /* autograd value and gradient */
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *v[3];
    for (int k = 0; k < 3; k++) v[k] = nl_leaf(c, in[k], 1);
    nl_var *nll = gp_nll(c, v, &g);
    NLT_CHECK(nll != NULL, "gp nll: %s", nl_last_error());
    if (!nll) { nl_ctx_free(c); return; }
    NLT_OK(nl_backward(c, nll));
    double val = nl_item(nll), grad[3];
    for (int k = 0; k < 3; k++) grad[k] = nl_tensor_get(&v[k]->grad, 0);
    nl_ctx_free(c);

    /* direct computation through an eigendecomposition (no Cholesky): K = V diag(w) V^T */
    const int n = GP_N;
    double s2 = exp(2 * th[0]), l2 = exp(2 * th[1]), noise = exp(th[2]);
    double K[GP_N * GP_N], Kf[GP_N * GP_N], D2[GP_N * GP_N], V[GP_N * GP_N], w[GP_N];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double d2 = 0;
            for (int d = 0; d < GP_D; d++) d2 += (g.x[i * GP_D + d] - g.x[j * GP_D + d]) * (g.x[i * GP_D + d] - g.x[j * GP_D + d]);
            D2[i * n + j] = d2;
            Kf[i * n + j] = s2 * exp(-d2 / (2 * l2));
            K[i * n + j] = Kf[i * n + j] + (i == j ? noise : 0);
        }
    memcpy(V, K, sizeof K);
    NLT_OK(nl_eigh(V, n, w));
    double Kinv[GP_N * GP_N], alpha[GP_N], logdet = 0;
    for (int q = 0; q < n; q++) logdet += log(w[q]);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int q = 0; q < n; q++) s += V[i * n + q] * V[j * n + q] / w[q];
            Kinv[i * n + j] = s;
        }
    double quad = 0;
    for (int i = 0; i < n; i++) {
        alpha[i] = 0;
        for (int j = 0; j < n; j++) alpha[i] += Kinv[i * n + j] * g.y[j];
        quad += g.y[i] * alpha[i];
    }
    double direct = 0.5 * quad + 0.5 * logdet + 0.5 * n * log(2 * M_PI);
    NLT_NEAR(val, direct, 1e-10 * fabs(direct) + 1e-12);
    /* closed-form gradient: dNLL/dtheta = 0.5 tr((K^{-1} - alpha alpha^T) dK/dtheta) */
    double ex[3] = {0, 0, 0};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double W = Kinv[i * n + j] - alpha[i] * alpha[j];
            ex[0] += 0.5 * W * 2 * Kf[i * n + j];
            ex[1] += 0.5 * W * Kf[i * n + j] * D2[i * n + j] / l2;
            ex[2] += 0.5 * W * (i == j ? noise : 0);
        }
    for (int k = 0; k < 3; k++) NLT_NEAR(grad[k], ex[k], 1e-9 * (1 + fabs(ex[k])));
    /* and finite differences through the whole graph */
    gc("gp nll wrt log s, log l, log noise", gp_nll, &g, 3, in, NULL);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_cholesky_values);
    NLT_RUN(test_cholesky_errors);
    NLT_RUN(test_cholesky_grad);
    NLT_RUN(test_trisolve_values);
    NLT_RUN(test_solve_grads);
    NLT_RUN(test_small_ops);
    NLT_RUN(test_larger);
    NLT_RUN(test_eigh);
    NLT_RUN(test_svd);
    NLT_RUN(test_gp_nll);
    return nlt_finish();
}
