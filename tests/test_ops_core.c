/* Core ops: value tests against hand-computed numbers and finite-difference gradient checks (f64 and f32). */
#include "nltest.h"
#include <stdlib.h>
#include <math.h>
#include "nnlab/extend.h"

/* deterministic pseudo-random fill in [lo, hi) */
static void fill(nl_tensor *t, uint64_t seed, double lo, double hi) {
    nl_rng r;
    nl_rng_init(&r, seed, 99);
    nl_rng_fill_uniform(&r, t, lo, hi);
}

static nl_tensor mk(nl_dtype dt, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t s[4] = {a, b, c, d};
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= s[i];
    return nl_tensor_wrap(calloc((size_t)n, nl_dtype_size(dt)), dt, nd, s);
}

typedef struct { int op; double a; int axis; int keep; } opargs;

static nl_var *f_binary(nl_ctx *c, nl_var **in, void *ud) {
    opargs *o = ud;
    switch (o->op) {
    case 0: return nl_add(c, in[0], in[1]);
    case 1: return nl_sub(c, in[0], in[1]);
    case 2: return nl_mul(c, in[0], in[1]);
    default: return nl_div(c, in[0], in[1]);
    }
}
static nl_var *f_unary(nl_ctx *c, nl_var **in, void *ud) { opargs *o = ud; return nl_unary(c, in[0], (nl_unary_op)o->op, o->a); }
static nl_var *f_scalar(nl_ctx *c, nl_var **in, void *ud) {
    opargs *o = ud;
    switch (o->op) {
    case 0: return nl_add_scalar(c, in[0], o->a);
    case 1: return nl_mul_scalar(c, in[0], o->a);
    case 2: return nl_pow_scalar(c, in[0], o->a);
    default: return nl_rsub_scalar(c, in[0], o->a);
    }
}
static nl_var *f_reduce(nl_ctx *c, nl_var **in, void *ud) {
    opargs *o = ud;
    switch (o->op) {
    case 0: return nl_sum(c, in[0], o->axis, o->keep);
    case 1: return nl_mean(c, in[0], o->axis, o->keep);
    default: return nl_max(c, in[0], o->axis, o->keep);
    }
}
static nl_var *f_matmul(nl_ctx *c, nl_var **in, void *ud) { opargs *o = ud; return nl_matmul_t(c, in[0], in[1], o->op & 1, (o->op >> 1) & 1); }
static nl_var *f_linear(nl_ctx *c, nl_var **in, void *ud) { return nl_linear(c, in[0], in[1], ud ? in[2] : NULL); }
static nl_var *f_views(nl_ctx *c, nl_var **in, void *ud) {
    /* permute -> slice -> reshape(copy) -> mul to make the gradient non-trivial */
    int perm[3] = {2, 0, 1};
    nl_var *p = nl_permute(c, in[0], perm);                 /* [4,2,3] */
    nl_var *s = nl_slice(c, p, 0, 1, 4, 2);                 /* [2,2,3] */
    int64_t sh[2] = {2, 6};
    nl_var *r = nl_reshape(c, s, 2, sh);                    /* [2,6] copy since strided */
    nl_var *t = nl_transpose(c, r, 0, 1);                   /* [6,2] */
    return nl_mul(c, t, t);
}

static void gc(const char *what, nl_gc_fn f, void *ud, int n, nl_tensor *in, double eps, double atol, double rtol) {
    nl_gc_result r;
    nl_status s = nl_gradcheck(f, ud, n, in, NULL, eps, atol, rtol, &r);
    NLT_CHECK(s == NL_OK && r.checked > 0, "%s: %s (checked %lld, max abs err %.3g)", what, nl_last_error(), (long long)r.checked, r.max_abs_err);
}

static void test_binary_values(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    float av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {10, 20, 30}, cv[2] = {2, 4};
    int64_t sa[2] = {2, 3}, sb[1] = {3}, sc[2] = {2, 1};
    nl_var *a = nl_input(c, nl_tensor_wrap(av, NL_F32, 2, sa));
    nl_var *b = nl_input(c, nl_tensor_wrap(bv, NL_F32, 1, sb));
    nl_var *cc = nl_input(c, nl_tensor_wrap(cv, NL_F32, 2, sc));
    nl_var *y = nl_add(c, a, b);
    const float e1[6] = {11, 22, 33, 14, 25, 36};
    for (int i = 0; i < 6; i++) NLT_NEAR(((float *)y->val.data)[i], e1[i], 0);
    y = nl_div(c, a, cc); /* column broadcast */
    const float e2[6] = {0.5f, 1, 1.5f, 1, 1.25f, 1.5f};
    for (int i = 0; i < 6; i++) NLT_NEAR(((float *)y->val.data)[i], e2[i], 1e-7);
    y = nl_sub(c, b, a);
    NLT_CHECK(y->val.ndim == 2 && y->val.shape[0] == 2, "sub shape");
    NLT_NEAR(((float *)y->val.data)[5], 24, 0);
    /* error path: incompatible shapes name the op and the shapes */
    float dv[4] = {0};
    int64_t sd[1] = {4};
    nl_var *d = nl_input(c, nl_tensor_wrap(dv, NL_F32, 1, sd));
    nl_clear_error();
    NLT_CHECK(nl_mul(c, a, d) == NULL, "mismatched shapes must fail");
    NLT_CHECK(strstr(nl_last_error(), "mul") && strstr(nl_last_error(), "[2,3]") && strstr(nl_last_error(), "[4]"), "message: %s", nl_last_error());
    NLT_CHECK(nl_add(c, NULL, a) == NULL, "NULL propagates");
    double ddv[3] = {1, 2, 3};
    nl_var *dd = nl_input(c, nl_tensor_wrap(ddv, NL_F64, 1, sb));
    NLT_CHECK(nl_add(c, a, dd) == NULL && nl_last_status() == NL_EDTYPE, "mixed dtype: %s", nl_last_error());
    nl_ctx_free(c);
}

static void test_binary_grads(void) {
    const int64_t shapes[][2][4] = {
        {{2, 3, 0, 0}, {2, 3, 0, 0}}, {{2, 3, 0, 0}, {3, 0, 0, 0}}, {{2, 1, 0, 0}, {1, 3, 0, 0}}, {{2, 3, 4, 0}, {3, 1, 0, 0}}};
    const int nds[][2] = {{2, 2}, {2, 1}, {2, 2}, {3, 2}};
    for (int dt = 0; dt < 2; dt++)
        for (int op = 0; op < 4; op++)
            for (int s = 0; s < 4; s++) {
                nl_dtype t = dt ? NL_F64 : NL_F32;
                const int64_t *A = shapes[s][0], *B = shapes[s][1];
                nl_tensor in[2] = {mk(t, nds[s][0], A[0], A[1], A[2], A[3]), mk(t, nds[s][1], B[0], B[1], B[2], B[3])};
                fill(&in[0], 1 + s, -1, 1);
                fill(&in[1], 7 + s, 0.5, 2); /* away from 0 for div */
                opargs o = {op, 0, 0, 0};
                char what[64];
                snprintf(what, sizeof what, "binary op %d shapes %d %s", op, s, dt ? "f64" : "f32");
                gc(what, f_binary, &o, 2, in, dt ? 1e-6 : 1e-2, dt ? 1e-8 : 1e-3, dt ? 1e-6 : 1e-2);
                free(in[0].data); free(in[1].data);
            }
}

static void test_unary(void) {
    /* values at x = 0.5 */
    const double x = 0.5;
    const double expect[NL_U_COUNT] = {-0.5, exp(0.5), log(0.5), sqrt(0.5), 0.5, tanh(0.5), 1 / (1 + exp(-0.5)), 0.5, 0.5,
                                       0.5 * 0.5 * (1 + erf(0.5 / sqrt(2))), erf(0.5), sin(0.5), cos(0.5), 1, 0.25, log1p(exp(0.5))};
    nl_ctx *c = nl_ctx_new(0, 0);
    for (int op = 0; op < NL_U_COUNT; op++) {
        double xv = x;
        nl_var *v = nl_input(c, nl_tensor_wrap(&xv, NL_F64, 0, NULL));
        nl_var *y = nl_unary(c, v, (nl_unary_op)op, 0.1);
        NLT_CHECK(y != NULL, "unary %s", nl_unary_name(op));
        if (y) NLT_NEAR(nl_item(y), expect[op], 1e-15);
        xv = -2.0;
        v = nl_input(c, nl_tensor_wrap(&xv, NL_F64, 0, NULL));
        y = nl_unary(c, v, (nl_unary_op)op, 0.1);
        if (op == NL_U_RELU) NLT_NEAR(nl_item(y), 0, 0);
        if (op == NL_U_LEAKY_RELU) NLT_NEAR(nl_item(y), -0.2, 1e-15);
        if (op == NL_U_ABS) NLT_NEAR(nl_item(y), 2, 0);
        if (op == NL_U_SIGN) NLT_NEAR(nl_item(y), -1, 0);
    }
    nl_ctx_free(c);
    for (int dt = 0; dt < 2; dt++)
        for (int op = 0; op < NL_U_COUNT; op++) {
            if (op == NL_U_SIGN) continue; /* gradient 0 everywhere it exists; checked below */
            nl_dtype t = dt ? NL_F64 : NL_F32;
            nl_tensor in = mk(t, 2, 3, 4, 0, 0);
            int positive = op == NL_U_LOG || op == NL_U_SQRT;
            fill(&in, 3 + op, positive ? 0.3 : -2, positive ? 2 : 2);
            /* keep away from the kinks of abs/relu/leaky at 0 */
            for (int64_t i = 0; i < 12; i++) {
                double v = nl_tensor_get(&in, i);
                if (fabs(v) < 0.1) nl_tensor_set(&in, i, v < 0 ? -0.3 : 0.3);
            }
            opargs o = {op, 0.1, 0, 0};
            char what[64];
            snprintf(what, sizeof what, "unary %s %s", nl_unary_name(op), dt ? "f64" : "f32");
            gc(what, f_unary, &o, 1, &in, dt ? 1e-6 : 1e-2, dt ? 1e-8 : 2e-3, dt ? 1e-6 : 1e-2);
            free(in.data);
        }
    /* sign: gradient 0 (finite differences agree away from 0) */
    nl_tensor in = mk(NL_F64, 1, 5, 0, 0, 0);
    fill(&in, 5, 0.2, 1);
    opargs o = {NL_U_SIGN, 0, 0, 0};
    gc("unary sign", f_unary, &o, 1, &in, 1e-6, 1e-9, 0);
    free(in.data);
}

static void test_scalar(void) {
    for (int op = 0; op < 4; op++) {
        nl_tensor in = mk(NL_F64, 2, 2, 3, 0, 0);
        fill(&in, 11 + op, 0.5, 2);
        opargs o = {op, op == 2 ? 2.5 : -1.7, 0, 0};
        gc("scalar op", f_scalar, &o, 1, &in, 1e-6, 1e-8, 1e-6);
        nl_ctx *c = nl_ctx_new(0, 0);
        nl_var *v = nl_input(c, in);
        nl_var *y = f_scalar(c, &v, &o);
        double x0 = nl_tensor_get(&in, 0);
        double e = op == 0 ? x0 - 1.7 : op == 1 ? x0 * -1.7 : op == 2 ? pow(x0, 2.5) : -1.7 - x0;
        NLT_NEAR(nl_item(y), e, 1e-14);
        nl_ctx_free(c);
        free(in.data);
    }
}

static void test_reduce(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    double v[6] = {1, 5, 3, 4, 2, 6};
    int64_t s[2] = {2, 3};
    nl_var *x = nl_input(c, nl_tensor_wrap(v, NL_F64, 2, s));
    nl_var *y = nl_sum(c, x, 0, 0);
    NLT_CHECK(y->val.ndim == 1 && y->val.shape[0] == 3, "sum axis 0 shape");
    NLT_NEAR(nl_tensor_get(&y->val, 1), 7, 0);
    y = nl_mean(c, x, -1, 1);
    NLT_CHECK(y->val.ndim == 2 && y->val.shape[1] == 1, "mean keepdim shape");
    NLT_NEAR(nl_tensor_get(&y->val, 1), 4, 1e-15);
    y = nl_max(c, x, 1, 0);
    NLT_NEAR(nl_tensor_get(&y->val, 0), 5, 0);
    NLT_NEAR(nl_tensor_get(&y->val, 1), 6, 0);
    y = nl_sum(c, x, NL_AXIS_ALL, 0);
    NLT_NEAR(nl_item(y), 21, 0);
    NLT_CHECK(nl_sum(c, x, 2, 0) == NULL, "bad axis must fail");
    nl_ctx_free(c);
    for (int dt = 0; dt < 2; dt++)
        for (int op = 0; op < 3; op++)
            for (int axis = -1; axis < 3; axis++) {
                nl_dtype t = dt ? NL_F64 : NL_F32;
                nl_tensor in = mk(t, 3, 2, 3, 4, 0);
                fill(&in, 21 + op * 7 + axis, -1, 1); /* distinct values: max has a unique argmax */
                opargs o = {op, 0, axis == 2 ? NL_AXIS_ALL : axis, axis == 0};
                gc("reduce", f_reduce, &o, 1, &in, dt ? 1e-6 : 1e-3, dt ? 1e-8 : 2e-3, dt ? 1e-6 : 1e-2);
                free(in.data);
            }
}

static void test_matmul(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12};
    int64_t sa[2] = {2, 3}, sb[2] = {3, 2};
    nl_var *A = nl_input(c, nl_tensor_wrap(a, NL_F32, 2, sa)), *B = nl_input(c, nl_tensor_wrap(b, NL_F32, 2, sb));
    nl_var *C = nl_matmul(c, A, B);
    const float e[4] = {58, 64, 139, 154};
    for (int i = 0; i < 4; i++) NLT_NEAR(((float *)C->val.data)[i], e[i], 0);
    /* transposed view == transpose flag */
    nl_var *Bt = nl_transpose(c, B, 0, 1); /* [2,3] view */
    nl_var *C2 = nl_matmul_t(c, A, Bt, 0, 1);
    for (int i = 0; i < 4; i++) NLT_NEAR(((float *)C2->val.data)[i], e[i], 0);
    nl_clear_error();
    NLT_CHECK(nl_matmul(c, A, A) == NULL, "inner dims differ must fail");
    NLT_CHECK(strstr(nl_last_error(), "matmul") && strstr(nl_last_error(), "[2,3]"), "message: %s", nl_last_error());
    nl_ctx_free(c);
    for (int dt = 0; dt < 2; dt++)
        for (int tt = 0; tt < 4; tt++) {
            nl_dtype t = dt ? NL_F64 : NL_F32;
            int ta = tt & 1, tb = tt >> 1;
            nl_tensor in[2] = {ta ? mk(t, 2, 4, 3, 0, 0) : mk(t, 2, 3, 4, 0, 0), tb ? mk(t, 2, 5, 4, 0, 0) : mk(t, 2, 4, 5, 0, 0)};
            fill(&in[0], 31 + tt, -1, 1); fill(&in[1], 41 + tt, -1, 1);
            opargs o = {tt, 0, 0, 0};
            gc("matmul 2d", f_matmul, &o, 2, in, dt ? 1e-6 : 1e-2, dt ? 1e-8 : 2e-3, dt ? 1e-6 : 1e-2);
            free(in[0].data); free(in[1].data);
            /* batched [2,3,4] @ [2,4,5] and [2,3,4] @ [4,5] */
            nl_tensor bi[2] = {ta ? mk(t, 3, 2, 4, 3, 0) : mk(t, 3, 2, 3, 4, 0), tb ? mk(t, 3, 2, 5, 4, 0) : mk(t, 3, 2, 4, 5, 0)};
            fill(&bi[0], 51 + tt, -1, 1); fill(&bi[1], 61 + tt, -1, 1);
            gc("matmul batched", f_matmul, &o, 2, bi, dt ? 1e-6 : 1e-2, dt ? 1e-8 : 2e-3, dt ? 1e-6 : 1e-2);
            free(bi[0].data); free(bi[1].data);
            nl_tensor bf[2] = {ta ? mk(t, 3, 2, 4, 3, 0) : mk(t, 3, 2, 3, 4, 0), tb ? mk(t, 2, 5, 4, 0, 0) : mk(t, 2, 4, 5, 0, 0)};
            fill(&bf[0], 71 + tt, -1, 1); fill(&bf[1], 81 + tt, -1, 1);
            gc("matmul batched x 2d", f_matmul, &o, 2, bf, dt ? 1e-6 : 1e-2, dt ? 1e-8 : 2e-3, dt ? 1e-6 : 1e-2);
            free(bf[0].data); free(bf[1].data);
        }
}

static void test_linear(void) {
    for (int withb = 0; withb < 2; withb++) {
        nl_tensor in[3] = {mk(NL_F64, 3, 2, 3, 4, 0), mk(NL_F64, 2, 5, 4, 0, 0), mk(NL_F64, 1, 5, 0, 0, 0)};
        for (int k = 0; k < 3; k++) fill(&in[k], 90 + k, -1, 1);
        gc("linear", f_linear, withb ? (void *)1 : NULL, withb ? 3 : 2, in, 1e-6, 1e-8, 1e-6);
        /* value: equals matmul with W^T plus b */
        nl_ctx *c = nl_ctx_new(0, 0);
        nl_var *x = nl_input(c, in[0]), *W = nl_input(c, in[1]), *b = nl_input(c, in[2]);
        nl_var *y = nl_linear(c, x, W, withb ? b : NULL);
        nl_var *z = nl_matmul_t(c, x, W, 0, 1);
        if (withb) z = nl_add(c, z, b);
        double md = 0;
        for (int64_t i = 0; i < nl_tensor_numel(&y->val); i++) md = fmax(md, fabs(nl_tensor_get(&y->val, i) - nl_tensor_get(&z->val, i)));
        NLT_NEAR(md, 0, 1e-14);
        nl_ctx_free(c);
        for (int k = 0; k < 3; k++) free(in[k].data);
    }
}

static void test_views(void) {
    nl_tensor in = mk(NL_F64, 3, 2, 3, 4, 0);
    fill(&in, 123, -1, 1);
    gc("views", f_views, NULL, 1, &in, 1e-6, 1e-8, 1e-6);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *x = nl_input(c, in);
    int perm[3] = {2, 0, 1};
    nl_var *p = nl_permute(c, x, perm);
    NLT_CHECK(p->val.data == x->val.data && !nl_tensor_is_contiguous(&p->val), "permute is a view");
    NLT_NEAR(nl_tensor_get(&p->val, 1 * 6 + 0 * 3 + 2), nl_tensor_get(&in, 0 * 12 + 2 * 4 + 1), 0); /* p[1,0,2] = x[0,2,1] */
    nl_var *s = nl_slice(c, x, 2, 1, 3, 1);
    NLT_CHECK(s->val.shape[2] == 2 && s->val.data == (double *)x->val.data + 1, "slice is a view");
    int64_t sh[2] = {6, -1};
    nl_var *r = nl_reshape(c, x, 2, sh);
    NLT_CHECK(r && r->val.shape[1] == 4 && r->val.data == x->val.data, "reshape of contiguous is a view");
    int64_t bad[2] = {5, 5};
    NLT_CHECK(nl_reshape(c, x, 2, bad) == NULL, "bad reshape fails: %s", nl_last_error());
    NLT_CHECK(nl_slice(c, x, 1, 2, 9, 1) == NULL, "bad slice fails");
    nl_ctx_free(c);
    free(in.data);
}

/* autograd mechanics: no-grad, detach, accumulation, frozen subsets, custom backward (STE) */
static void test_autograd(void) {
    nl_params ps;
    nl_params_init(&ps, NL_F64);
    int64_t s1[1] = {3};
    nl_var *w = nl_params_add(&ps, "layer1.w", 1, s1);
    nl_var *u = nl_params_add(&ps, "layer2.w", 1, s1);
    NLT_CHECK(nl_params_add(&ps, "layer1.w", 1, s1) == NULL, "duplicate name refused");
    for (int i = 0; i < 3; i++) { nl_tensor_set(&w->val, i, i + 1); nl_tensor_set(&u->val, i, 2); }
    nl_ctx *c = nl_ctx_new(0, 0);
    /* L = sum(w*u): dL/dw = u, accumulate twice */
    for (int rep = 0; rep < 2; rep++) {
        nl_ctx_reset(c);
        nl_var *L = nl_sum(c, nl_mul(c, w, u), NL_AXIS_ALL, 0);
        NLT_OK(nl_backward(c, L));
    }
    NLT_NEAR(nl_tensor_get(&w->grad, 0), 4, 0);
    NLT_NEAR(nl_tensor_get(&u->grad, 2), 6, 0);
    nl_params_zero_grad(&ps);
    NLT_NEAR(nl_tensor_get(&w->grad, 0), 0, 0);
    /* frozen: only layer2 trains */
    NLT_CHECK(nl_params_set_trainable(&ps, "layer1", 0) == 1, "prefix match");
    nl_ctx_reset(c);
    NLT_OK(nl_backward(c, nl_sum(c, nl_mul(c, w, u), NL_AXIS_ALL, 0)));
    NLT_NEAR(nl_tensor_get(&w->grad, 0), 0, 0);
    NLT_NEAR(nl_tensor_get(&u->grad, 0), 1, 0);
    nl_params_set_trainable(&ps, "", 1);
    nl_params_zero_grad(&ps);
    /* detach: no gradient through the detached branch */
    nl_ctx_reset(c);
    NLT_OK(nl_backward(c, nl_sum(c, nl_mul(c, nl_detach(c, w), u), NL_AXIS_ALL, 0)));
    NLT_NEAR(nl_tensor_get(&w->grad, 1), 0, 0);
    NLT_NEAR(nl_tensor_get(&u->grad, 1), 2, 0);
    nl_params_zero_grad(&ps);
    /* no-grad: nothing recorded, backward refuses */
    nl_ctx_reset(c);
    nl_set_grad_enabled(c, 0);
    nl_var *L = nl_sum(c, nl_mul(c, w, u), NL_AXIS_ALL, 0);
    NLT_CHECK(c->n_tape == 0 && !L->requires_grad, "no-grad records nothing");
    NLT_CHECK(nl_backward(c, L) == NL_ESTATE, "backward without graph is an error");
    nl_set_grad_enabled(c, 1);
    /* straight-through: forward sign(w), backward identity */
    nl_ctx_reset(c);
    nl_var *q = nl_straight_through(c, nl_sign(c, w), w);
    NLT_NEAR(nl_tensor_get(&q->val, 0), 1, 0);
    NLT_OK(nl_backward(c, nl_sum(c, nl_mul(c, q, u), NL_AXIS_ALL, 0)));
    NLT_NEAR(nl_tensor_get(&w->grad, 0), 2, 0);
    /* non-scalar loss */
    nl_ctx_reset(c);
    NLT_CHECK(nl_backward(c, nl_mul(c, w, u)) == NL_ESHAPE, "non-scalar loss refused");
    nl_ctx_free(c);
    nl_params_free(&ps);
}

static void test_arena(void) {
    nl_arena *a = nl_arena_new(4096, 64 * 1024);
    void *p1 = nl_arena_alloc(a, 1000);
    void *p2 = nl_arena_alloc(a, 10000); /* forces a second block */
    NLT_CHECK(p1 && p2 && ((uintptr_t)p2 % 64) == 0, "aligned allocations");
    memset(p1, 1, 1000);
    memset(p2, 2, 10000);
    NLT_CHECK(((char *)p1)[999] == 1, "earlier block intact");
    nl_clear_error();
    NLT_CHECK(nl_arena_alloc(a, 100000) == NULL && nl_last_status() == NL_ENOMEM, "cap enforced");
    NLT_CHECK(strstr(nl_last_error(), "cap") != NULL, "message: %s", nl_last_error());
    nl_arena_reset(a);
    NLT_CHECK(nl_arena_used(a) == 0, "reset");
    void *p3 = nl_arena_alloc(a, 11000); /* fits the consolidated block */
    NLT_CHECK(p3 != NULL, "after reset");
    nl_arena_free(a);
    /* an op in an exhausted context reports, not crashes */
    nl_ctx *c = nl_ctx_new(4096, 8192);
    int64_t s[2] = {64, 64};
    float *buf = calloc(64 * 64, 4);
    nl_var *x = nl_input(c, nl_tensor_wrap(buf, NL_F32, 2, s));
    nl_var *y = nl_matmul(c, x, x);
    NLT_CHECK(y == NULL && nl_last_status() == NL_ENOMEM, "exhausted arena -> NULL + NL_ENOMEM");
    free(buf);
    nl_ctx_free(c);
}

/* the checker itself must catch a wrong gradient: y = x^2 with backward claiming dy/dx = x */
static void wrong_bw(nl_ctx *c, nl_node *n) {
    nl_tensor *g = nl_grad(c, n->in[0]);
    if (!g) return;
    for (int64_t i = 0; i < nl_tensor_numel(g); i++)
        nl_tensor_set(g, i, nl_tensor_get(g, i) + nl_tensor_get(&n->out->grad, i) * nl_tensor_get(&n->in[0]->val, i));
}
static nl_var *f_wrong(nl_ctx *c, nl_var **in, void *ud) {
    nl_var *sq = nl_square(c, in[0]);
    nl_var *ins[1] = {in[0]};
    return nl_custom(c, "wrong_square", sq->val, 1, ins, wrong_bw, NULL);
}
static void test_gradcheck_catches_errors(void) {
    nl_tensor in = mk(NL_F64, 1, 4, 0, 0, 0);
    fill(&in, 5, 0.5, 1.5);
    nl_gc_result r;
    NLT_CHECK(nl_gradcheck(f_wrong, NULL, 1, &in, NULL, 1e-6, 1e-8, 1e-6, &r) != NL_OK && r.failed == 4, "wrong backward must be caught (failed %lld)", (long long)r.failed);
    free(in.data);
}

/* nl_gelu's vectorised f32 path equals the libm reference nl_unary(NL_U_GELU) (values and gradients) */
static void test_gelu_f32(void) {
    enum { N = 4003 };
    float *x = malloc(sizeof(float) * N), *g = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) {
        x[i] = -12.0f + 24.0f * i / (N - 1);
        g[i] = (float)sin(0.37 * i);
    }
    int64_t sh[1] = {N};
    nl_ctx *c = nl_ctx_new(0, 0), *c2 = nl_ctx_new(0, 0);
    nl_var *a = nl_leaf(c, nl_tensor_wrap(x, NL_F32, 1, sh), 1), *b = nl_leaf(c2, nl_tensor_wrap(x, NL_F32, 1, sh), 1);
    nl_var *ya = nl_gelu(c, a), *yb = nl_unary(c2, b, NL_U_GELU, 0);
    nl_tensor seed = nl_tensor_wrap(g, NL_F32, 1, sh);
    NLT_OK(nl_backward_seed(c, ya, &seed));
    NLT_OK(nl_backward_seed(c2, yb, &seed));
    double wv = 0, wg = 0;
    for (int i = 0; i < N; i++) {
        double s = fmax(1.0, fabs(x[i]));
        wv = fmax(wv, fabs(((float *)ya->val.data)[i] - ((float *)yb->val.data)[i]) / s);
        wg = fmax(wg, fabs(((float *)a->grad.data)[i] - ((float *)b->grad.data)[i]) / s);
    }
    NLT_CHECK(wv < 5e-7 && wg < 1e-6, "gelu values differ by %g, gradients by %g", wv, wg);
    /* the kernel without autograd (nl_gelu_f32, in place) gives nl_gelu's values bit for bit */
    float *y = malloc(sizeof(float) * N);
    memcpy(y, x, sizeof(float) * N);
    nl_gelu_f32(y, y, N);
    NLT_CHECK(!memcmp(y, ya->val.data, sizeof(float) * N), "nl_gelu_f32 differs from nl_gelu");
    /* with gradients off, nl_gelu saves no derivative and records nothing, with the same values */
    nl_ctx *c3 = nl_ctx_new(0, 0);
    nl_set_grad_enabled(c3, 0);
    nl_var *yn = nl_gelu(c3, nl_leaf(c3, nl_tensor_wrap(x, NL_F32, 1, sh), 1));
    NLT_CHECK(yn && !yn->node && !memcmp(yn->val.data, ya->val.data, sizeof(float) * N), "nl_gelu without gradients differs or records");
    nl_ctx_free(c3);
    free(y);
    nl_ctx_free(c);
    nl_ctx_free(c2);
    free(x);
    free(g);
}

/* Backward functions that store a fresh gradient (nl_grad_w) instead of adding to a zero fill: add / sub (one
 * var as both inputs, a broadcast input), gelu, reshape, permute, contiguous and cross-entropy with ignored rows.
 * f64: finite differences; f32 (the vectorised GELU store path): the same gradient as f64 to float precision. */
static const int32_t fresh_tg[6] = {0, 1, 3, 2, 3, 0}; /* class 3 = ignore_index: rows 2 and 4 are ignored */
static nl_var *f_fresh(nl_ctx *c, nl_var **in, void *ud) {
    (void)ud;
    nl_var *h = nl_gelu(c, in[0]);                          /* [4,6] */
    nl_var *s = nl_sub(c, nl_add(c, h, h), in[1]);          /* 2 gelu(a) - b */
    nl_var *w = nl_add(c, s, in[2]);                        /* + b2 [6] broadcast over rows */
    int64_t sh[3] = {2, 2, 6};
    int perm[3] = {2, 0, 1};
    nl_var *p = nl_contiguous(c, nl_permute(c, nl_reshape(c, w, 3, sh), perm)); /* [6,2,2] */
    int64_t sl[2] = {6, 4};
    return nl_cross_entropy(c, nl_reshape(c, p, 2, sl), fresh_tg, 0.1, 3);
}

static void test_fresh_grads(void) {
    double a[24], b[24], b2[6];
    for (int i = 0; i < 24; i++) { a[i] = 0.37 * i - 4.1 + 0.05 * (i % 5); b[i] = 0.11 * ((i * 7) % 13) - 0.6; }
    for (int i = 0; i < 6; i++) b2[i] = 0.2 * i - 0.5;
    int64_t s2[2] = {4, 6}, s1[1] = {6};
    nl_tensor in[3] = {nl_tensor_wrap(a, NL_F64, 2, s2), nl_tensor_wrap(b, NL_F64, 2, s2), nl_tensor_wrap(b2, NL_F64, 1, s1)};
    gc("fresh-gradient ops", f_fresh, NULL, 3, in, 1e-6, 1e-8, 1e-6);
    /* f32 vs f64 analytic gradients */
    float af[24], bf[24], b2f[6];
    for (int i = 0; i < 24; i++) { af[i] = (float)a[i]; bf[i] = (float)b[i]; }
    for (int i = 0; i < 6; i++) b2f[i] = (float)b2[i];
    nl_tensor inf[3] = {nl_tensor_wrap(af, NL_F32, 2, s2), nl_tensor_wrap(bf, NL_F32, 2, s2), nl_tensor_wrap(b2f, NL_F32, 1, s1)};
    nl_var *g64[3], *g32[3];
    nl_ctx *c = nl_ctx_new(0, 0), *c32 = nl_ctx_new(0, 0); /* one tape each: backward runs a whole tape */
    for (int k = 0; k < 3; k++) { g64[k] = nl_leaf(c, in[k], 1); g32[k] = nl_leaf(c32, inf[k], 1); }
    NLT_OK(nl_backward(c, f_fresh(c, g64, NULL)));
    NLT_OK(nl_backward(c32, f_fresh(c32, g32, NULL)));
    double worst = 0;
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < nl_tensor_numel(&g64[k]->val); i++) {
            double d = fabs(nl_tensor_get(&g64[k]->grad, i) - nl_tensor_get(&g32[k]->grad, i));
            if (d > worst) worst = d;
        }
    NLT_CHECK(worst < 1e-6, "f32 gradients differ from f64 by %.3g", worst);
    nl_ctx_free(c);
    nl_ctx_free(c32);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_arena);
    NLT_RUN(test_gelu_f32);
    NLT_RUN(test_binary_values);
    NLT_RUN(test_binary_grads);
    NLT_RUN(test_unary);
    NLT_RUN(test_scalar);
    NLT_RUN(test_reduce);
    NLT_RUN(test_matmul);
    NLT_RUN(test_linear);
    NLT_RUN(test_views);
    NLT_RUN(test_autograd);
    NLT_RUN(test_fresh_grads);
    NLT_RUN(test_gradcheck_catches_errors);
    return nlt_finish();
}
