/* Fused attention against a naive reference built from the engine's own ops (matmul_t, add, softmax,
 * matmul) in values and gradients, for: no mask, causal T == S, causal T < S (KV cache), causal T > S (rows
 * without keys), additive masks [T,S], [B,1,T,S], [B,1,1,S], [1,H,T,S] (with mask gradients), a fully masked
 * row, strided (permuted) inputs, the tiled / parallel and serial paths; finite-difference gradient checks
 * (f64 tight, f32); error messages; causal query blocks at odd lengths; the [B,T,H,Dv] output layout
 * (nl_attention_bthd) bit for bit against nl_attention; run-to-run determinism at fixed thread counts. */
#include "nltest.h"
#include "nnlab/extend.h"

typedef struct {
    const char *name;
    int64_t B, H, T, S, D, Dv;
    int causal;
    int mnd;              /* mask dims (0 = no mask) */
    int64_t mshape[4];
    int ninf;             /* mask: put -inf at some entries (1) / fully mask query row 1 (2) */
    int mask_grad;        /* mask requires a gradient */
    int strided;          /* q, k, v given as permuted views of [B,T,H,D] storage */
    double scale;
} attn_case;

/* additive causal mask [T,S]: -inf where s > t + S - T */
static nl_var *causal_mask(nl_ctx *c, nl_dtype dt, int64_t T, int64_t S) {
    int64_t sh[2] = {T, S};
    nl_var *m = nl_zeros(c, dt, 2, sh);
    for (int64_t t = 0; t < T; t++)
        for (int64_t s = 0; s < S; s++)
            if (s > t + S - T && t + S - T >= 0) nl_tensor_set(&m->val, t * S + s, -INFINITY);
    return m; /* rows without any visible key stay finite here: the tests zero their output seed instead */
}

/* softmax(scale q k^T + mask (+ causal)) v with the engine's ops */
static nl_var *attn_ref(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, nl_var *mask, int causal, double scale) {
    if (scale <= 0) scale = 1.0 / sqrt((double)q->val.shape[3]);
    nl_var *s = nl_mul_scalar(c, nl_matmul_t(c, q, k, 0, 1), scale);
    if (mask) s = nl_add(c, s, mask);
    if (causal) s = nl_add(c, s, causal_mask(c, q->val.dtype, q->val.shape[2], k->val.shape[2]));
    return nl_matmul(c, nl_softmax(c, s, -1), v);
}

/* inputs: q, k, v storage ([B,T,H,D] when strided) and mask */
typedef struct { nl_tensor q, k, v, m; } attn_inputs;

static attn_inputs make_inputs(const attn_case *a, nl_dtype dt, uint64_t seed) {
    attn_inputs in;
    int64_t sq[4] = {a->B, a->strided ? a->T : a->H, a->strided ? a->H : a->T, a->D};
    int64_t sk[4] = {a->B, a->strided ? a->S : a->H, a->strided ? a->H : a->S, a->D};
    int64_t sv[4] = {a->B, a->strided ? a->S : a->H, a->strided ? a->H : a->S, a->Dv};
    in.q = nlt_tensor_calloc(dt, 4, sq); in.k = nlt_tensor_calloc(dt, 4, sk); in.v = nlt_tensor_calloc(dt, 4, sv);
    nlt_fill_uniform(&in.q, seed, -1, 1); nlt_fill_uniform(&in.k, seed + 1, -1, 1); nlt_fill_uniform(&in.v, seed + 2, -1, 1);
    memset(&in.m, 0, sizeof in.m);
    if (a->mnd) {
        in.m = nlt_tensor_calloc(dt, a->mnd, a->mshape);
        nlt_fill_uniform(&in.m, seed + 3, -1.5, 1.5);
        int64_t n = nl_tensor_numel(&in.m), S = a->mshape[a->mnd - 1];
        if (a->ninf == 1) /* a few excluded keys, never a whole row */
            for (int64_t i = 0; i < n; i++)
                if (i % 3 == 1 && i % S != 0) nl_tensor_set(&in.m, i, -INFINITY);
        if (a->ninf == 2) { /* query row 1 sees nothing (mask [T,S]) */
            for (int64_t s = 0; s < S; s++) nl_tensor_set(&in.m, 1 * S + s, -INFINITY);
        }
    }
    return in;
}

static void free_inputs(attn_inputs *in) { free(in->q.data); free(in->k.data); free(in->v.data); free(in->m.data); }

static nl_var *view_bhtd(nl_ctx *c, nl_var *x, int strided) {
    if (!strided) return x;
    int perm[4] = {0, 2, 1, 3};
    return nl_permute(c, x, perm);
}

typedef struct { const attn_case *a; int ref; } gc_ud;
static nl_var *f_attn(nl_ctx *c, nl_var **in, void *ud) {
    gc_ud *u = ud;
    const attn_case *a = u->a;
    nl_var *q = view_bhtd(c, in[0], a->strided), *k = view_bhtd(c, in[1], a->strided), *v = view_bhtd(c, in[2], a->strided);
    nl_var *m = a->mnd ? in[3] : NULL;
    return u->ref ? attn_ref(c, q, k, v, m, a->causal, a->scale) : nl_attention(c, q, k, v, m, a->causal, a->scale);
}

static int row_blind(const attn_case *a, int64_t t) { /* query row t has no visible key */
    if (a->causal && t + a->S - a->T < 0) return 1;
    return a->ninf == 2 && t == 1;
}

/* fused vs reference: values and gradients (q, k, v, mask) under one random output seed */
static void compare_ref(const attn_case *a, nl_dtype dt, uint64_t seed, double tol) {
    attn_inputs in = make_inputs(a, dt, seed);
    /* the reference cannot express a row without keys (softmax of -inf gives NaN): it gets a finite mask row
     * and a zero output seed there, which is exactly what the fused op must reproduce */
    nl_tensor mref = in.m;
    if (a->ninf == 2) {
        mref = nlt_tensor_calloc(dt, a->mnd, a->mshape);
        nl_tensor_copy(&mref, &in.m);
        for (int64_t s = 0; s < a->S; s++) nl_tensor_set(&mref, a->S + s, 0.0);
    }
    double worst[5] = {0};
    double *vals[2][5];
    int64_t nvals[5];
    int64_t nb = a->B * a->H;
    for (int pass = 0; pass < 2; pass++) {
        nl_ctx *c = nl_ctx_new(0, 0);
        nl_var *lv[4];
        lv[0] = nl_leaf(c, in.q, 1); lv[1] = nl_leaf(c, in.k, 1); lv[2] = nl_leaf(c, in.v, 1);
        lv[3] = a->mnd ? nl_leaf(c, pass ? mref : in.m, a->mask_grad) : NULL;
        gc_ud u = {a, pass};
        nl_var *o = f_attn(c, lv, &u);
        NLT_CHECK(o != NULL, "%s: %s", a->name, nl_last_error());
        if (!o) { nl_ctx_free(c); goto out; }
        nl_tensor seed_t = nl_arena_tensor(c->arena, dt, 4, o->val.shape);
        nlt_fill_uniform(&seed_t, seed + 9, -1, 1);
        for (int64_t bh = 0; bh < nb; bh++)
            for (int64_t t = 0; t < a->T; t++)
                if (row_blind(a, t))
                    for (int64_t j = 0; j < a->Dv; j++) nl_tensor_set(&seed_t, (bh * a->T + t) * a->Dv + j, 0.0);
        NLT_OK(nl_backward_seed(c, o, &seed_t));
        const nl_tensor *ts[5] = {&o->val, &lv[0]->grad, &lv[1]->grad, &lv[2]->grad, lv[3] ? &lv[3]->grad : NULL};
        for (int i = 0; i < 5; i++) {
            if (!ts[i] || !ts[i]->data) { vals[pass][i] = NULL; nvals[i] = 0; continue; }
            nvals[i] = nl_tensor_numel(ts[i]);
            vals[pass][i] = malloc((size_t)nvals[i] * sizeof(double));
            for (int64_t e = 0; e < nvals[i]; e++) vals[pass][i][e] = nl_tensor_get(ts[i], e);
        }
        if (pass == 0) { /* rows without keys: zero output, zero dq, no NaN anywhere */
            int bad = 0;
            for (int i = 0; i < 5; i++)
                for (int64_t e = 0; e < nvals[i]; e++) bad |= !isfinite(vals[0][i][e]);
            NLT_CHECK(!bad, "%s: non-finite values in output or gradients", a->name);
            double z = 0;
            for (int64_t bh = 0; bh < nb; bh++)
                for (int64_t t = 0; t < a->T; t++)
                    if (row_blind(a, t)) {
                        for (int64_t j = 0; j < a->Dv; j++) z = fmax(z, fabs(nl_tensor_get(&o->val, (bh * a->T + t) * a->Dv + j)));
                        const nl_tensor *gq = &lv[0]->grad;
                        for (int64_t d = 0; d < a->D; d++) {
                            int64_t e = a->strided ? (((bh / a->H) * a->T + t) * a->H + bh % a->H) * a->D + d : (bh * a->T + t) * a->D + d;
                            z = fmax(z, fabs(nl_tensor_get(gq, e)));
                        }
                    }
            NLT_CHECK(z == 0, "%s: rows without keys must give zero output and zero dq (max %g)", a->name, z);
        }
        nl_ctx_free(c);
    }
    static const char *what[5] = {"out", "dq", "dk", "dv", "dmask"};
    for (int i = 0; i < 5; i++) {
        NLT_CHECK((vals[0][i] == NULL) == (vals[1][i] == NULL), "%s: %s presence differs", a->name, what[i]);
        if (!vals[0][i] || !vals[1][i]) continue;
        double sc = 0;
        for (int64_t e = 0; e < nvals[i]; e++) {
            double r = vals[1][i][e], f = vals[0][i][e];
            if (i == 0 && row_blind(a, (e / a->Dv) % a->T)) continue; /* checked to be 0 above */
            worst[i] = fmax(worst[i], fabs(f - r));
            sc = fmax(sc, fabs(r));
        }
        NLT_CHECK(worst[i] <= tol * (1 + sc), "%s %s: %s max err %.3g (scale %.3g)", a->name, nl_dtype_name(dt), what[i], worst[i], sc);
    }
    for (int i = 0; i < 5; i++) { free(vals[0][i]); free(vals[1][i]); }
out:
    if (a->ninf == 2) free(mref.data);
    free_inputs(&in);
}

static void gc_case(const attn_case *a, nl_dtype dt, uint64_t seed) {
    attn_inputs in = make_inputs(a, dt, seed);
    nl_tensor ts[4] = {in.q, in.k, in.v, in.m};
    /* masks with -inf entries cannot be perturbed: differentiate wrt q, k, v only */
    int wrt[4] = {1, 1, 1, a->mnd && a->mask_grad && !a->ninf};
    gc_ud u = {a, 0};
    nl_gc_result r;
    int f64 = dt == NL_F64;
    nl_status s = nl_gradcheck(f_attn, &u, a->mnd ? 4 : 3, ts, wrt, f64 ? 1e-6 : 1e-2, f64 ? 1e-9 : 2e-3, f64 ? 1e-6 : 2e-2, &r);
    NLT_CHECK(s == NL_OK && r.checked > 0, "gradcheck %s %s: %s (checked %lld, max abs err %.3g)", a->name, nl_dtype_name(dt),
              nl_last_error(), (long long)r.checked, r.max_abs_err);
    free_inputs(&in);
}

static const attn_case cases[] = {
    /* name            B  H  T  S  D  Dv causal mnd mshape          ninf mgrad strided scale */
    {"no mask",        2, 3, 5, 6, 4, 3, 0, 0, {0},                0, 0, 0, 0},
    {"causal T==S",    2, 2, 6, 6, 4, 5, 1, 0, {0},                0, 0, 0, 0.7},
    {"causal T<S",     2, 2, 3, 7, 4, 3, 1, 0, {0},                0, 0, 0, 0},
    {"causal T>S",     1, 2, 6, 4, 3, 2, 1, 0, {0},                0, 0, 0, 0},
    {"mask [T,S]",     2, 2, 4, 5, 3, 3, 0, 2, {4, 5},             1, 0, 0, 0},
    {"mask [B,1,T,S]", 2, 3, 4, 5, 3, 2, 0, 4, {2, 1, 4, 5},       1, 0, 0, 0},
    {"full row masked",2, 2, 4, 5, 3, 3, 0, 2, {4, 5},             2, 0, 0, 0},
    {"mask+causal",    2, 2, 4, 6, 3, 3, 1, 2, {4, 6},             1, 0, 1, 0},
    {"strided",        2, 3, 5, 4, 4, 3, 0, 0, {0},                0, 0, 1, 0.3},
    {"mask grad [T,S]",2, 2, 4, 5, 3, 3, 0, 2, {4, 5},             0, 1, 0, 0},
    {"mask grad [B,1,T,S]", 2, 3, 4, 5, 3, 2, 1, 4, {2, 1, 4, 5},  0, 1, 0, 0},
    {"mask grad [1,H,T,S]", 2, 3, 4, 4, 3, 2, 0, 4, {1, 3, 4, 4},  0, 1, 1, 0},
    {"mask grad [B,1,1,S]", 2, 2, 3, 5, 3, 3, 0, 4, {2, 1, 1, 5},  0, 1, 0, 0},
    {"mask grad [B,H,T,S] + -inf", 2, 2, 3, 4, 2, 3, 0, 4, {2, 2, 3, 4}, 1, 1, 0, 0},
    {"mask grad [B,1,T,1]", 2, 2, 3, 4, 2, 3, 1, 4, {2, 1, 3, 1},  0, 1, 0, 0}, /* per-row shift: gradient 0 */
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static void test_reference_f64(void) {
    for (int i = 0; i < NCASES; i++) compare_ref(&cases[i], NL_F64, 1000 + 17 * i, 1e-12);
}

static void test_reference_f32(void) {
    for (int i = 0; i < NCASES; i++) compare_ref(&cases[i], NL_F32, 2000 + 17 * i, 2e-5);
}

static void test_gradcheck_f64(void) {
    for (int i = 0; i < NCASES; i++) gc_case(&cases[i], NL_F64, 3000 + 17 * i);
}

static void test_gradcheck_f32(void) {
    gc_case(&cases[1], NL_F32, 4000);  /* causal */
    gc_case(&cases[9], NL_F32, 4001);  /* mask gradient */
}

/* larger shapes: several query tiles per slice, parallel work items, the serial path, the two-pass backward
 * (fewer slices than threads), causal block skipping, mask-gradient groups */
static void test_tiled_paths(void) {
    const attn_case big[] = {
        {"tiled causal",          2, 2, 300, 300, 16, 8, 1, 0, {0},             0, 0, 0, 0},
        {"tiled causal T<S",      1, 3, 200, 520, 8, 8, 1, 0, {0},              0, 0, 1, 0},
        {"serial one item",       1, 1, 90, 100, 8, 12, 0, 2, {90, 100},        1, 0, 0, 0},
        {"serial causal tiles",   1, 1, 400, 400, 8, 4, 1, 0, {0},              0, 0, 0, 0},
        {"causal T>S blind tiles",1, 2, 600, 300, 4, 4, 1, 0, {0},              0, 0, 0, 0},
        {"mask grad groups",      2, 2, 170, 400, 8, 8, 1, 4, {2, 1, 170, 400}, 0, 1, 0, 0},
        {"mask grad serial [T,S]",2, 2, 64, 64, 8, 8, 0, 2, {64, 64},           0, 1, 0, 0},
    };
    /* thread counts select the paths: 1 = serial; 2 = parallel items; 4 = two-pass backward when B*H < 4 */
    const int threads[3] = {1, 2, 4};
    for (int ti = 0; ti < 3; ti++) {
        nl_set_num_threads(threads[ti]);
        for (int i = 0; i < (int)(sizeof big / sizeof big[0]); i++) {
            compare_ref(&big[i], NL_F64, 5000 + 17 * i, 1e-11);
            if (ti == 2) compare_ref(&big[i], NL_F32, 6000 + 17 * i, 1e-4);
        }
    }
    nl_threads_init();
}

static void test_values_small(void) {
    /* one query, two keys, D = 1, scale 1: weights softmax([q k0, q k1]) */
    nl_ctx *c = nl_ctx_new(0, 0);
    int64_t s1[4] = {1, 1, 1, 1}, s2[4] = {1, 1, 2, 1};
    double qd[1] = {2}, kd[2] = {0.5, -1}, vd[2] = {3, 7};
    nl_var *q = nl_input(c, nl_tensor_wrap(qd, NL_F64, 4, s1));
    nl_var *k = nl_input(c, nl_tensor_wrap(kd, NL_F64, 4, s2));
    nl_var *v = nl_input(c, nl_tensor_wrap(vd, NL_F64, 4, s2));
    nl_var *o = nl_attention(c, q, k, v, NULL, 0, 1.0);
    double w0 = exp(1.0) / (exp(1.0) + exp(-2.0));
    NLT_NEAR(nl_item(o), 3 * w0 + 7 * (1 - w0), 1e-14);
    /* scale <= 0 means 1/sqrt(D) = 1 here */
    NLT_NEAR(nl_item(nl_attention(c, q, k, v, NULL, 0, 0)), 3 * w0 + 7 * (1 - w0), 1e-14);
    /* mask -inf on key 1: output = v0 */
    int64_t ms[2] = {1, 2};
    double md[2] = {0, -INFINITY};
    nl_var *m = nl_input(c, nl_tensor_wrap(md, NL_F64, 2, ms));
    NLT_NEAR(nl_item(nl_attention(c, q, k, v, m, 0, 1.0)), 3, 0);
    /* causal with T=1, S=2 (KV cache): the query sees both keys */
    NLT_NEAR(nl_item(nl_attention(c, q, k, v, NULL, 1, 1.0)), 3 * w0 + 7 * (1 - w0), 1e-14);
    /* both keys masked: zero */
    md[0] = -INFINITY;
    NLT_NEAR(nl_item(nl_attention(c, q, k, v, m, 0, 1.0)), 0, 0);
    /* large scores stay finite (stable softmax) */
    qd[0] = 1000;
    md[0] = 0; md[1] = 0;
    o = nl_attention(c, q, k, v, m, 0, 1.0);
    NLT_NEAR(nl_item(o), 3, 1e-12);
    /* D = 4 with scale 0 -> 1/2 */
    int64_t sq[4] = {1, 1, 1, 4}, sk[4] = {1, 1, 2, 4};
    double q4[4] = {1, 0, 0, 0}, k4[8] = {2, 0, 0, 0, 0, 0, 0, 0};
    nl_var *Q = nl_input(c, nl_tensor_wrap(q4, NL_F64, 4, sq)), *K = nl_input(c, nl_tensor_wrap(k4, NL_F64, 4, sk));
    double w = exp(1.0) / (exp(1.0) + 1.0);
    NLT_NEAR(nl_item(nl_attention(c, Q, K, v, NULL, 0, 0)), 3 * w + 7 * (1 - w), 1e-14);
    nl_ctx_free(c);
}

static void test_errors(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    int64_t sq[4] = {2, 3, 4, 8}, sk[4] = {2, 3, 5, 8}, sv[4] = {2, 3, 5, 6}, sbad[4] = {2, 3, 5, 7}, s3[3] = {3, 4, 8};
    int64_t sm_bad[2] = {4, 4}, sm_ok[4] = {2, 1, 1, 5};
    nl_tensor tq = nlt_tensor_calloc(NL_F32, 4, sq), tk = nlt_tensor_calloc(NL_F32, 4, sk), tv = nlt_tensor_calloc(NL_F32, 4, sv), tb = nlt_tensor_calloc(NL_F32, 4, sbad);
    nl_tensor t3 = nlt_tensor_calloc(NL_F32, 3, s3), tmb = nlt_tensor_calloc(NL_F32, 2, sm_bad), tmo = nlt_tensor_calloc(NL_F32, 4, sm_ok), tkd = nlt_tensor_calloc(NL_F64, 4, sk);
    nl_var *q = nl_input(c, tq), *k = nl_input(c, tk), *v = nl_input(c, tv);
    nl_clear_error();
    NLT_CHECK(nl_attention(c, q, nl_input(c, tb), v, NULL, 0, 0) == NULL && strstr(nl_last_error(), "attention") &&
              strstr(nl_last_error(), "[2,3,4,8]") && strstr(nl_last_error(), "[2,3,5,7]"), "D mismatch: %s", nl_last_error());
    NLT_CHECK(nl_attention(c, q, k, nl_input(c, tq), NULL, 0, 0) == NULL && strstr(nl_last_error(), "[2,3,5,8]"), "S mismatch: %s", nl_last_error());
    NLT_CHECK(nl_attention(c, nl_input(c, t3), k, v, NULL, 0, 0) == NULL && strstr(nl_last_error(), "[3,4,8]"), "3-d q: %s", nl_last_error());
    NLT_CHECK(nl_attention(c, q, k, v, nl_input(c, tmb), 0, 0) == NULL && nl_last_status() == NL_ESHAPE &&
              strstr(nl_last_error(), "mask [4,4]") && strstr(nl_last_error(), "[2,3,4,5]"), "bad mask: %s", nl_last_error());
    NLT_CHECK(nl_attention(c, q, nl_input(c, tkd), v, NULL, 0, 0) == NULL && nl_last_status() == NL_EDTYPE, "mixed dtypes: %s", nl_last_error());
    int64_t smd[2] = {4, 5};
    nl_tensor tmd = nlt_tensor_calloc(NL_F64, 2, smd);
    NLT_CHECK(nl_attention(c, q, k, v, nl_input(c, tmd), 0, 0) == NULL && nl_last_status() == NL_EDTYPE &&
              strstr(nl_last_error(), "mask f64"), "mask dtype: %s", nl_last_error());
    free(tmd.data);
    NLT_CHECK(nl_attention(c, NULL, k, v, NULL, 0, 0) == NULL, "NULL propagates");
    nl_var *o = nl_attention(c, q, k, v, nl_input(c, tmo), 1, 0);
    NLT_CHECK(o && o->val.shape[2] == 4 && o->val.shape[3] == 6, "valid call after errors: %s", nl_last_error());
    nl_ctx_free(c);
    free(tq.data); free(tk.data); free(tv.data); free(tb.data); free(t3.data); free(tmb.data); free(tmo.data); free(tkd.data);
}

/* a strided mask (transposed view) and broadcast mask views give the same result as contiguous copies */
static void test_mask_views(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    int64_t sq[4] = {2, 2, 5, 4}, sk[4] = {2, 2, 6, 4}, sm[2] = {6, 5};
    nl_tensor tq = nlt_tensor_calloc(NL_F64, 4, sq), tk = nlt_tensor_calloc(NL_F64, 4, sk), tm = nlt_tensor_calloc(NL_F64, 2, sm);
    nlt_fill_uniform(&tq, 1, -1, 1); nlt_fill_uniform(&tk, 2, -1, 1); nlt_fill_uniform(&tm, 3, -2, 1);
    nl_var *q = nl_leaf(c, tq, 1), *k = nl_leaf(c, tk, 1), *ms = nl_leaf(c, tm, 1);
    nl_var *mt = nl_transpose(c, ms, 0, 1);          /* [5,6] view, strides (1, 5) */
    nl_var *mc = nl_contiguous(c, mt);
    nl_var *o1 = nl_attention(c, q, k, k, mt, 1, 0), *o2 = nl_attention(c, q, k, k, mc, 1, 0);
    NLT_CHECK(o1 && o2, "%s", nl_last_error());
    double d = 0;
    for (int64_t i = 0; i < nl_tensor_numel(&o1->val); i++) d = fmax(d, fabs(nl_tensor_get(&o1->val, i) - nl_tensor_get(&o2->val, i)));
    NLT_NEAR(d, 0, 0);
    /* the mask gradient through the strided view equals the one through the contiguous copy (and is not 0) */
    double g1[30], g2[30], d2 = 0, gmax = 0;
    for (int pass = 0; pass < 2; pass++) {
        nl_ctx_reset(c);
        q = nl_leaf(c, tq, 0); k = nl_leaf(c, tk, 0); ms = nl_leaf(c, tm, 1);
        mt = nl_transpose(c, ms, 0, 1);
        nl_var *o = nl_attention(c, q, k, k, pass ? nl_contiguous(c, mt) : mt, 1, 0);
        NLT_OK(nl_backward(c, nl_sum(c, nl_square(c, o), NL_AXIS_ALL, 0)));
        for (int i = 0; i < 30; i++) (pass ? g2 : g1)[i] = nl_tensor_get(&ms->grad, i);
    }
    for (int i = 0; i < 30; i++) { d2 = fmax(d2, fabs(g1[i] - g2[i])); gmax = fmax(gmax, fabs(g1[i])); }
    NLT_CHECK(d2 <= 1e-14 && gmax > 1e-3, "mask grad via view: diff %g, max %g", d2, gmax);
    nl_ctx_free(c);
    free(tq.data); free(tk.data); free(tm.data);
}

/* no-grad: nothing recorded, same values */
static void test_nograd(void) {
    const attn_case *a = &cases[1];
    attn_inputs in = make_inputs(a, NL_F32, 77);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *q = nl_leaf(c, in.q, 1), *k = nl_leaf(c, in.k, 1), *v = nl_leaf(c, in.v, 1);
    nl_var *o1 = nl_attention(c, q, k, v, NULL, 1, 0.7);
    nl_set_grad_enabled(c, 0);
    int nt = c->n_tape;
    nl_var *o2 = nl_attention(c, q, k, v, NULL, 1, 0.7);
    NLT_CHECK(o1 && o2 && c->n_tape == nt, "no-grad records nothing");
    double d = 0;
    for (int64_t i = 0; i < nl_tensor_numel(&o1->val); i++) d = fmax(d, fabs(nl_tensor_get(&o1->val, i) - nl_tensor_get(&o2->val, i)));
    NLT_NEAR(d, 0, 0);
    nl_ctx_free(c);
    free_inputs(&in);
}

/* ---- causal query blocks, the [B,T,H,Dv] output layout, determinism ---- */

/* causal attention runs in blocks of at most 64 query rows (at least two blocks from T = 32 on) that only span
 * the keys their rows see: odd lengths, T < S, T = 128 (the LM's shape), with and without a mask */
static const attn_case blocks[] = {
    /* name                  B  H  T    S    D   Dv causal mnd mshape     ninf mgrad strided scale */
    {"causal blocks odd",    1, 2, 37,  37,  8,  6, 1, 0, {0},           0, 0, 0, 0},
    {"causal blocks 77",     2, 1, 77,  77,  16, 16, 1, 0, {0},          0, 0, 1, 0},
    {"causal blocks T<S",    1, 2, 45,  70,  8,  8, 1, 0, {0},           0, 0, 0, 0.4},
    {"causal blocks T>S",    1, 1, 70,  33,  4,  4, 1, 0, {0},           0, 0, 0, 0},
    {"causal blocks 128",    1, 2, 128, 128, 32, 32, 1, 0, {0},          0, 0, 0, 0},
    {"causal blocks + mask", 1, 2, 40,  40,  4,  4, 1, 2, {40, 40},      1, 0, 0, 0},
};

static void test_causal_blocks(void) {
    for (int th = 1; th <= 2; th++) {
        nl_set_num_threads(th);
        for (int i = 0; i < (int)(sizeof blocks / sizeof blocks[0]); i++) {
            compare_ref(&blocks[i], NL_F64, 7000 + 17 * i, 1e-11);
            compare_ref(&blocks[i], NL_F32, 7100 + 17 * i, 1e-4);
        }
    }
    nl_threads_init();
    const attn_case gc[] = {
        {"causal blocks gc",     1, 1, 33, 33, 2, 1, 1, 0, {0},           0, 0, 0, 0},
        {"causal blocks gc T<S", 1, 1, 33, 41, 2, 1, 1, 0, {0},           0, 0, 1, 0},
    };
    for (int i = 0; i < 2; i++) {
        gc_case(&gc[i], NL_F64, 7300 + i);
        gc_case(&gc[i], NL_F32, 7400 + i);
    }
}

/* out, dq, dk, dv (as doubles) of nl_attention or of nl_attention_bthd permuted back to [B,H,T,Dv], under the
 * loss sum(o * w) with a fixed random w */
static double *attn_run_flat(const attn_case *a, nl_dtype dt, const attn_inputs *in, int bthd, int64_t *n_out) {
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *lv[3] = {nl_leaf(c, in->q, 1), nl_leaf(c, in->k, 1), nl_leaf(c, in->v, 1)};
    nl_var *q = view_bhtd(c, lv[0], a->strided), *k = view_bhtd(c, lv[1], a->strided), *v = view_bhtd(c, lv[2], a->strided);
    int perm[4] = {0, 2, 1, 3};
    nl_var *o = bthd ? nl_permute(c, nl_attention_bthd(c, q, k, v, NULL, a->causal, a->scale), perm)
                     : nl_attention(c, q, k, v, NULL, a->causal, a->scale);
    NLT_CHECK(o != NULL, "%s: %s", a->name, nl_last_error());
    if (!o) { nl_ctx_free(c); *n_out = 0; return NULL; }
    nl_tensor wt = nl_arena_tensor(c->arena, dt, 4, o->val.shape);
    nlt_fill_uniform(&wt, 99, -1, 1);
    nl_var *loss = nl_sum(c, nl_mul(c, o, nl_input(c, wt)), NL_AXIS_ALL, 0);
    NLT_OK(nl_backward(c, loss));
    const nl_tensor *ts[4] = {&o->val, &lv[0]->grad, &lv[1]->grad, &lv[2]->grad};
    int64_t n = 0;
    for (int i = 0; i < 4; i++) n += nl_tensor_numel(ts[i]);
    double *r = malloc(sizeof(double) * (size_t)n);
    int64_t j = 0;
    for (int i = 0; i < 4; i++)
        for (int64_t e = 0; e < nl_tensor_numel(ts[i]); e++) r[j++] = nl_tensor_get(ts[i], e);
    *n_out = n;
    nl_ctx_free(c);
    return r;
}

/* nl_attention_bthd = permute(nl_attention) bit for bit (values and gradients), and both are bitwise
 * deterministic from run to run at a fixed thread count (1, 2 and 4 threads: serial, parallel, two-pass) */
static void test_bthd_determinism(void) {
    const attn_case cs[] = {
        {"bthd causal",     2, 3, 77, 77, 8, 8, 1, 0, {0},  0, 0, 0, 0},
        {"bthd no mask",    1, 2, 9, 13, 4, 6, 0, 0, {0},   0, 0, 1, 0.5},
        {"bthd cache T<S",  1, 2, 1, 40, 8, 8, 1, 0, {0},   0, 0, 0, 0},
        {"bthd long",       1, 1, 300, 300, 16, 16, 1, 0, {0}, 0, 0, 0, 0},
    };
    const int threads[3] = {1, 2, 4};
    for (int ti = 0; ti < 3; ti++) {
        nl_set_num_threads(threads[ti]);
        for (int i = 0; i < (int)(sizeof cs / sizeof cs[0]); i++)
            for (int f = 0; f < 2; f++) {
                nl_dtype dt = f ? NL_F32 : NL_F64;
                attn_inputs in = make_inputs(&cs[i], dt, 8000 + 17 * i);
                int64_t n0, n1, n2;
                double *r0 = attn_run_flat(&cs[i], dt, &in, 0, &n0);
                double *r1 = attn_run_flat(&cs[i], dt, &in, 1, &n1);
                double *r2 = attn_run_flat(&cs[i], dt, &in, 0, &n2);
                int64_t bad01 = n0 != n1, bad02 = n0 != n2;
                for (int64_t e = 0; r0 && r1 && r2 && !bad01 && !bad02 && e < n0; e++) {
                    bad01 += memcmp(&r0[e], &r1[e], sizeof(double)) != 0;
                    bad02 += memcmp(&r0[e], &r2[e], sizeof(double)) != 0;
                }
                NLT_CHECK(bad01 == 0, "%s %s T=%d: bthd differs from permuted nl_attention in %lld values", cs[i].name,
                          nl_dtype_name(dt), threads[ti], (long long)bad01);
                NLT_CHECK(bad02 == 0, "%s %s T=%d: two runs differ in %lld values", cs[i].name, nl_dtype_name(dt),
                          threads[ti], (long long)bad02);
                free(r0); free(r1); free(r2);
                free_inputs(&in);
            }
    }
    nl_threads_init();
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_values_small);
    NLT_RUN(test_reference_f64);
    NLT_RUN(test_reference_f32);
    NLT_RUN(test_gradcheck_f64);
    NLT_RUN(test_gradcheck_f32);
    NLT_RUN(test_tiled_paths);
    NLT_RUN(test_mask_views);
    NLT_RUN(test_errors);
    NLT_RUN(test_nograd);
    NLT_RUN(test_causal_blocks);
    NLT_RUN(test_bthd_determinism);
    return nlt_finish();
}
