/* Attention-weight dropout (nl_attention_ex with train and p > 0):
 *   - values against a reference computed by hand in this file (plain double loops: scores, softmax, the keep-mask
 *     drawn with nl_philox following the documented layout, weights * mask / (1 - p), times v), f64 and f32, with
 *     a mask, causal, several 1024-score tiles and the parallel mask generator, and the rng counter advance;
 *   - values and gradients against the composition matmul(nl_dropout(softmax(scores)), v) with the same rng state
 *     (same mask by construction), on the serial, parallel, two-pass-backward and recomputed-scores paths;
 *   - finite-difference gradient checks (the mask fixed by restarting the rng each evaluation), f64 and f32;
 *   - p = 0 or eval mode: bit-identical values and gradients to nl_attention / nl_attention_bthd, rng untouched;
 *   - errors (p outside [0, 1), training without an rng). */
#include "nltest.h"
#include "nnlab/extend.h"

typedef struct {
    const char *name;
    int64_t B, H, T, S, D, Dv;
    int causal;
    int mask;        /* 1: additive mask [T, S] with some -inf entries (never a whole row); 2: same, requires grad
                      * and finite (no -inf) */
    int bthd;
    double p;
} dcase;

typedef struct { nl_tensor q, k, v, m; } dinputs;

static dinputs make_inputs(const dcase *a, nl_dtype dt, uint64_t seed) {
    dinputs in;
    int64_t sq[4] = {a->B, a->H, a->T, a->D}, sk[4] = {a->B, a->H, a->S, a->D}, sv[4] = {a->B, a->H, a->S, a->Dv};
    in.q = nlt_tensor_calloc(dt, 4, sq); in.k = nlt_tensor_calloc(dt, 4, sk); in.v = nlt_tensor_calloc(dt, 4, sv);
    nlt_fill_uniform(&in.q, seed, -1, 1); nlt_fill_uniform(&in.k, seed + 1, -1, 1); nlt_fill_uniform(&in.v, seed + 2, -1, 1);
    memset(&in.m, 0, sizeof in.m);
    if (a->mask) {
        int64_t sm[2] = {a->T, a->S};
        in.m = nlt_tensor_calloc(dt, 2, sm); /* [T, S] */
        nlt_fill_uniform(&in.m, seed + 3, -1.5, 1.5);
        if (a->mask == 1)
            for (int64_t i = 0; i < a->T * a->S; i++)
                if (i % 3 == 1 && i % a->S != 0) nl_tensor_set(&in.m, i, -INFINITY);
    }
    return in;
}

static void free_inputs(dinputs *in) { free(in->q.data); free(in->k.data); free(in->v.data); free(in->m.data); }

/* The keep decision of score element k (flat [B,H,T,S] index) as documented in nn.h / internal/dropmask.h,
 * straight from nl_philox: tile k/1024, block base + 256 (k/1024) + k%256, word (k%1024)/256, kept when the word
 * is below round((1-p) 2^32). */
static int keep_by_hand(const nl_rng *r, int64_t k, double p) {
    uint32_t w[4];
    nl_philox(r->seed, r->stream, r->counter + 256 * (uint64_t)(k / 1024) + (uint64_t)(k % 256), w);
    double thr = nearbyint(ldexp(1.0 - p, 32));
    return (double)w[(k % 1024) / 256] < thr;
}

/* out[b,h,t,:] (layout [B,H,T,Dv]) by hand in double; kept counts the kept visible weights */
static double *attn_by_hand(const dcase *a, const dinputs *in, const nl_rng *r, int64_t *kept, int64_t *visible) {
    const int64_t B = a->B, H = a->H, T = a->T, S = a->S, D = a->D, Dv = a->Dv;
    double *out = calloc((size_t)(B * H * T * Dv), sizeof(double)), *sc = malloc((size_t)S * sizeof(double));
    const double scale = 1.0 / sqrt((double)D);
    *kept = *visible = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t s = 0; s < S; s++) {
                    double d = 0;
                    for (int64_t j = 0; j < D; j++)
                        d += nl_tensor_get(&in->q, ((b * H + h) * T + t) * D + j) * nl_tensor_get(&in->k, ((b * H + h) * S + s) * D + j);
                    d *= scale;
                    if (a->mask) d += nl_tensor_get(&in->m, t * S + s);
                    if (a->causal && s > t + S - T) d = -INFINITY;
                    sc[s] = d;
                    if (d > mx) mx = d;
                }
                for (int64_t s = 0; s < S; s++) sum += sc[s] == -INFINITY ? 0 : exp(sc[s] - mx);
                for (int64_t s = 0; s < S; s++) {
                    if (sc[s] == -INFINITY) continue;
                    const int64_t k = ((b * H + h) * T + t) * S + s;
                    int keep = keep_by_hand(r, k, a->p);
                    (*visible)++;
                    *kept += keep;
                    if (!keep) continue;
                    double wgt = exp(sc[s] - mx) / sum / (1.0 - a->p);
                    for (int64_t j = 0; j < Dv; j++)
                        out[((b * H + h) * T + t) * Dv + j] += wgt * nl_tensor_get(&in->v, ((b * H + h) * S + s) * Dv + j);
                }
            }
    free(sc);
    return out;
}

static nl_var *run_ex(nl_ctx *c, const dcase *a, nl_var **lv, double p, int train, nl_rng *r) {
    nl_attention_opts o = {.mask = a->mask ? lv[3] : NULL, .causal = a->causal, .bthd = a->bthd, .p_drop = p,
                           .train = train, .rng = r};
    return nl_attention_ex(c, lv[0], lv[1], lv[2], &o);
}

/* element index of out[b,h,t,j] in the op's layout */
static int64_t out_index(const dcase *a, int64_t b, int64_t h, int64_t t, int64_t j) {
    return a->bthd ? ((b * a->T + t) * a->H + h) * a->Dv + j : ((b * a->H + h) * a->T + t) * a->Dv + j;
}

static void check_by_hand(const dcase *a, nl_dtype dt, uint64_t seed, double tol) {
    dinputs in = make_inputs(a, dt, seed);
    nl_rng r, r0;
    nl_rng_init(&r, seed + 77, 5);
    r.counter = 1000 + seed; /* a generator that has been used before */
    r0 = r;
    int64_t kept, visible;
    double *ref = attn_by_hand(a, &in, &r0, &kept, &visible);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *lv[4] = {nl_leaf(c, in.q, 1), nl_leaf(c, in.k, 1), nl_leaf(c, in.v, 1), a->mask ? nl_leaf(c, in.m, 0) : NULL};
    nl_var *o = run_ex(c, a, lv, a->p, 1, &r);
    NLT_CHECK(o != NULL, "%s: %s", a->name, nl_last_error());
    if (o) {
        double err = 0, mag = 0;
        for (int64_t b = 0; b < a->B; b++)
            for (int64_t h = 0; h < a->H; h++)
                for (int64_t t = 0; t < a->T; t++)
                    for (int64_t j = 0; j < a->Dv; j++) {
                        double x = ref[((b * a->H + h) * a->T + t) * a->Dv + j];
                        err = fmax(err, fabs(nl_tensor_get(&o->val, out_index(a, b, h, t, j)) - x));
                        mag = fmax(mag, fabs(x));
                    }
        NLT_CHECK(err <= tol * (1 + mag), "%s %s: max |out - by hand| %.3g (scale %.3g)", a->name, nl_dtype_name(dt), err, mag);
        const int64_t n = a->B * a->H * a->T * a->S;
        NLT_CHECK(r.counter == r0.counter + 256 * (uint64_t)((n + 1023) / 1024), "%s: counter advanced by %llu for %lld scores",
                  a->name, (unsigned long long)(r.counter - r0.counter), (long long)n);
        /* the mask really drops about p of the weights (a by-hand mask that kept everything would also agree) */
        double frac = 1.0 - (double)kept / (double)visible, se = sqrt(a->p * (1 - a->p) / (double)visible);
        NLT_CHECK(fabs(frac - a->p) < 5 * se + 1e-9, "%s: dropped fraction %.4f, p %.2f (%lld weights)", a->name, frac, a->p,
                  (long long)visible);
    }
    nl_ctx_free(c);
    free(ref);
    free_inputs(&in);
}

static void test_values_by_hand(void) {
    const dcase cs[] = {
        {"small",           2, 2, 3, 5, 4, 3, 0, 0, 0, 0.3},
        {"mask + causal",   2, 2, 4, 6, 3, 3, 1, 1, 0, 0.5},
        {"bthd, tiles",     2, 3, 20, 30, 4, 5, 0, 1, 1, 0.25},  /* 3600 scores: 4 tiles of 1024 */
        {"parallel mask",   2, 2, 70, 80, 8, 4, 1, 0, 0, 0.1},   /* 22400 > 16384: parallel generator */
    };
    const int threads[2] = {1, 2};
    for (int ti = 0; ti < 2; ti++) {
        nl_set_num_threads(threads[ti]);
        for (int i = 0; i < 4; i++) {
            check_by_hand(&cs[i], NL_F64, 100 + 13 * i, 1e-12);
            check_by_hand(&cs[i], NL_F32, 200 + 13 * i, 2e-5);
        }
    }
    nl_threads_init();
}

/* the composition with the engine's ops: matmul(dropout(softmax(scale q k^T + mask + causal)), v) */
static nl_var *attn_compose(nl_ctx *c, const dcase *a, nl_var **lv, nl_rng *r) {
    nl_var *q = lv[0], *k = lv[1], *v = lv[2];
    nl_var *s = nl_mul_scalar(c, nl_matmul_t(c, q, k, 0, 1), 1.0 / sqrt((double)a->D));
    if (a->mask) s = nl_add(c, s, lv[3]);
    if (a->causal) {
        int64_t sh[2] = {a->T, a->S};
        nl_var *cm = nl_zeros(c, q->val.dtype, 2, sh);
        for (int64_t t = 0; t < a->T; t++)
            for (int64_t j = 0; j < a->S; j++)
                if (j > t + a->S - a->T) nl_tensor_set(&cm->val, t * a->S + j, -INFINITY);
        s = nl_add(c, s, cm);
    }
    nl_var *o = nl_matmul(c, nl_dropout(c, nl_softmax(c, s, -1), a->p, 1, r), v);
    if (a->bthd) o = nl_contiguous(c, nl_permute(c, o, (int[]){0, 2, 1, 3}));
    return o;
}

/* values and gradients (q, k, v, mask) of the fused op and the composition under one output seed */
static void check_compose(const dcase *a, nl_dtype dt, uint64_t seed, double tol) {
    dinputs in = make_inputs(a, dt, seed);
    double *vals[2][5] = {{0}};
    int64_t nv[5] = {0};
    uint64_t adv[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        nl_ctx *c = nl_ctx_new(0, 0);
        nl_rng r;
        nl_rng_init(&r, seed, 3);
        nl_var *lv[4] = {nl_leaf(c, in.q, 1), nl_leaf(c, in.k, 1), nl_leaf(c, in.v, 1),
                         a->mask ? nl_leaf(c, in.m, a->mask == 2) : NULL};
        nl_var *o = pass ? attn_compose(c, a, lv, &r) : run_ex(c, a, lv, a->p, 1, &r);
        adv[pass] = r.counter;
        NLT_CHECK(o != NULL, "%s: %s", a->name, nl_last_error());
        if (!o) { nl_ctx_free(c); continue; }
        nl_tensor g = nl_arena_tensor(c->arena, dt, 4, o->val.shape);
        nlt_fill_uniform(&g, seed + 9, -1, 1);
        NLT_OK(nl_backward_seed(c, o, &g));
        const nl_tensor *ts[5] = {&o->val, &lv[0]->grad, &lv[1]->grad, &lv[2]->grad, a->mask == 2 ? &lv[3]->grad : NULL};
        for (int i = 0; i < 5; i++) {
            if (!ts[i] || !ts[i]->data) continue;
            nv[i] = nl_tensor_numel(ts[i]);
            vals[pass][i] = malloc((size_t)nv[i] * sizeof(double));
            for (int64_t e = 0; e < nv[i]; e++) vals[pass][i][e] = nl_tensor_get(ts[i], e);
        }
        nl_ctx_free(c);
    }
    NLT_CHECK(adv[0] == adv[1], "%s: rng counter %llu (fused) vs %llu (nl_dropout)", a->name, (unsigned long long)adv[0],
              (unsigned long long)adv[1]);
    static const char *what[5] = {"out", "dq", "dk", "dv", "dmask"};
    for (int i = 0; i < 5; i++) {
        if (!vals[0][i] || !vals[1][i]) {
            NLT_CHECK(!vals[0][i] && !vals[1][i] && (i < 4 ? 0 : 1), "%s: %s missing", a->name, what[i]);
            continue;
        }
        double err = 0, sc = 0;
        int finite = 1;
        for (int64_t e = 0; e < nv[i]; e++) {
            finite &= isfinite(vals[0][i][e]);
            err = fmax(err, fabs(vals[0][i][e] - vals[1][i][e]));
            sc = fmax(sc, fabs(vals[1][i][e]));
        }
        NLT_CHECK(finite && err <= tol * (1 + sc), "%s %s: %s max err %.3g (scale %.3g)", a->name, nl_dtype_name(dt), what[i], err, sc);
        free(vals[0][i]);
        free(vals[1][i]);
    }
    free_inputs(&in);
}

static const dcase ccases[] = {
    {"plain",              2, 3, 5, 6, 4, 3, 0, 0, 0, 0.4},
    {"causal T<S",         2, 2, 3, 7, 4, 3, 1, 0, 0, 0.5},
    {"mask -inf bthd",     2, 2, 4, 5, 3, 3, 0, 1, 1, 0.2},
    {"mask grad causal",   2, 2, 4, 6, 3, 2, 1, 2, 0, 0.3},
    {"tiled causal",       2, 2, 150, 160, 8, 8, 1, 0, 0, 0.1},
    {"one slice, 2-pass",  1, 1, 200, 240, 8, 8, 0, 0, 1, 0.5},
};

static void test_compose(void) {
    /* 1 thread: serial; 2: parallel items; 4: two-pass backward when B*H < 4 */
    const int threads[3] = {1, 2, 4};
    for (int ti = 0; ti < 3; ti++) {
        nl_set_num_threads(threads[ti]);
        for (int i = 0; i < (int)(sizeof ccases / sizeof ccases[0]); i++) {
            check_compose(&ccases[i], NL_F64, 300 + 7 * i, 1e-12);
            check_compose(&ccases[i], NL_F32, 400 + 7 * i, 1e-4);
        }
    }
    nl_threads_init();
    /* more than 2^20 scores: forward keeps no score tensor and backward recomputes the scores */
    const dcase big = {"recomputed scores", 1, 1, 1030, 1030, 4, 4, 1, 0, 0, 0.3};
    check_compose(&big, NL_F64, 500, 1e-11);
}

typedef struct { const dcase *a; nl_rng r0; } gc_ud;
static nl_var *f_drop(nl_ctx *c, nl_var **in, void *ud) {
    gc_ud *u = ud;
    nl_rng r = u->r0; /* the same mask at every evaluation */
    return run_ex(c, u->a, in, u->a->p, 1, &r);
}

static void gc_case(const dcase *a, nl_dtype dt, uint64_t seed) {
    dinputs in = make_inputs(a, dt, seed);
    nl_tensor ts[4] = {in.q, in.k, in.v, in.m};
    int wrt[4] = {1, 1, 1, a->mask == 2};
    gc_ud u = {a, {0, 0, 0}};
    nl_rng_init(&u.r0, seed, 9);
    nl_gc_result r;
    int f64 = dt == NL_F64;
    nl_status s = nl_gradcheck(f_drop, &u, a->mask ? 4 : 3, ts, wrt, f64 ? 1e-6 : 1e-2, f64 ? 1e-9 : 2e-3, f64 ? 1e-6 : 2e-2, &r);
    NLT_CHECK(s == NL_OK && r.checked > 0, "gradcheck %s %s: %s (checked %lld, max abs err %.3g)", a->name, nl_dtype_name(dt),
              nl_last_error(), (long long)r.checked, r.max_abs_err);
    free_inputs(&in);
}

static void test_gradcheck(void) {
    for (int i = 0; i < 4; i++) gc_case(&ccases[i], NL_F64, 600 + 11 * i);
    gc_case(&ccases[0], NL_F32, 700);
    gc_case(&ccases[3], NL_F32, 701);
}

/* p = 0 (train) and eval mode (p > 0) must be today's nl_attention / nl_attention_bthd bit for bit */
static void test_p0_bit_identical(void) {
    const dcase cs[] = {
        {"plain",            2, 3, 5, 6, 4, 3, 0, 0, 0, 0.5},
        {"mask grad causal", 2, 2, 4, 6, 3, 2, 1, 2, 0, 0.5},
        {"mask -inf bthd",   2, 2, 4, 5, 3, 3, 0, 1, 1, 0.5},
        {"tiled causal",     1, 2, 300, 300, 16, 8, 1, 0, 1, 0.5},
    };
    const int threads[2] = {1, 2};
    for (int ti = 0; ti < 2; ti++) {
        nl_set_num_threads(threads[ti]);
        for (int i = 0; i < 4; i++)
            for (int f = 0; f < 2; f++) {
                const dcase *a = &cs[i];
                nl_dtype dt = f ? NL_F64 : NL_F32;
                dinputs in = make_inputs(a, dt, 800 + 5 * i);
                /* mode 0: nl_attention(_bthd); 1: nl_attention_ex p = 0, train; 2: nl_attention_ex p = 0.5, eval */
                nl_tensor res[3][5];
                int ok = 1;
                for (int mode = 0; mode < 3; mode++) {
                    nl_ctx *c = nl_ctx_new(0, 0);
                    nl_rng r;
                    nl_rng_init(&r, 5, 5);
                    nl_var *lv[4] = {nl_leaf(c, in.q, 1), nl_leaf(c, in.k, 1), nl_leaf(c, in.v, 1),
                                     a->mask ? nl_leaf(c, in.m, a->mask == 2) : NULL};
                    nl_var *m = a->mask ? lv[3] : NULL;
                    nl_var *o = mode == 0 ? (a->bthd ? nl_attention_bthd(c, lv[0], lv[1], lv[2], m, a->causal, 0)
                                                     : nl_attention(c, lv[0], lv[1], lv[2], m, a->causal, 0))
                                          : run_ex(c, a, lv, mode == 1 ? 0.0 : a->p, mode == 1, &r);
                    NLT_CHECK(o != NULL, "%s mode %d: %s", a->name, mode, nl_last_error());
                    NLT_CHECK(r.counter == 0, "%s mode %d: the rng moved", a->name, mode);
                    if (!o) { ok = 0; nl_ctx_free(c); break; }
                    nl_tensor g = nl_arena_tensor(c->arena, dt, 4, o->val.shape);
                    nlt_fill_uniform(&g, 900 + i, -1, 1);
                    NLT_OK(nl_backward_seed(c, o, &g));
                    const nl_tensor *ts[5] = {&o->val, &lv[0]->grad, &lv[1]->grad, &lv[2]->grad, a->mask == 2 ? &lv[3]->grad : NULL};
                    for (int t = 0; t < 5; t++) {
                        memset(&res[mode][t], 0, sizeof res[mode][t]);
                        if (!ts[t]) continue;
                        res[mode][t] = nlt_tensor_calloc(dt, ts[t]->ndim, ts[t]->shape);
                        nl_tensor_copy(&res[mode][t], ts[t]);
                    }
                    nl_ctx_free(c);
                }
                if (ok)
                    for (int mode = 1; mode < 3; mode++)
                        for (int t = 0; t < 5; t++) {
                            if (!res[0][t].data) continue;
                            size_t bytes = (size_t)nl_tensor_numel(&res[0][t]) * nl_dtype_size(dt);
                            NLT_CHECK(memcmp(res[0][t].data, res[mode][t].data, bytes) == 0,
                                      "%s %s mode %d: tensor %d differs from nl_attention", a->name, nl_dtype_name(dt), mode, t);
                        }
                for (int mode = 0; mode < 3 && ok; mode++)
                    for (int t = 0; t < 5; t++) free(res[mode][t].data);
                free_inputs(&in);
            }
    }
    nl_threads_init();
}

static void test_errors(void) {
    const dcase a = {"err", 1, 1, 2, 3, 2, 2, 0, 0, 0, 0.5};
    dinputs in = make_inputs(&a, NL_F32, 1);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *lv[4] = {nl_input(c, in.q), nl_input(c, in.k), nl_input(c, in.v), NULL};
    nl_rng r;
    nl_rng_init(&r, 1, 1);
    NLT_CHECK(run_ex(c, &a, lv, 1.0, 1, &r) == NULL && strstr(nl_last_error(), "outside [0, 1)"), "p = 1: %s", nl_last_error());
    NLT_CHECK(run_ex(c, &a, lv, -0.1, 0, &r) == NULL && strstr(nl_last_error(), "outside [0, 1)"), "p < 0: %s", nl_last_error());
    NLT_CHECK(run_ex(c, &a, lv, 0.5, 1, NULL) == NULL && strstr(nl_last_error(), "rng"), "no rng: %s", nl_last_error());
    nl_clear_error();
    NLT_CHECK(run_ex(c, &a, lv, 0.5, 0, NULL) != NULL, "eval mode needs no rng: %s", nl_last_error());
    NLT_CHECK(nl_attention_ex(c, lv[0], lv[1], lv[2], NULL) != NULL, "NULL options: %s", nl_last_error());
    nl_ctx_free(c);
    free_inputs(&in);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_values_by_hand);
    NLT_RUN(test_compose);
    NLT_RUN(test_gradcheck);
    NLT_RUN(test_p0_bit_identical);
    NLT_RUN(test_errors);
    return nlt_finish();
}
