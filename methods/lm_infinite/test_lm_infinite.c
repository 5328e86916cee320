/* LM-Infinite attention: vanilla equivalence for n <= n_local, blockwise == brute-force reference (values and
 * gradients), the index example of the notes, the global logit == the local logit at distance L, finite-difference
 * gradients, ring-buffer decoding == blockwise prefill, constant cache memory over 10k steps, thread determinism,
 * errors, and the passkey generator/scorer. */
#include "nltest.h"
#include "lm_infinite/test_util.h"
#include "lm_infinite/lm_infinite.h"
#include "transformer/transformer.h"

/* independent rotate_half rotation: out = x cos + rotate_half(x) sin, rotate_half(x) = [-x2, x1] */
static void rope(const double *x, int64_t D, double pos, const double *th, double *out) {
    const int64_t h = D / 2;
    for (int64_t j = 0; j < D; j++) {
        const double a = pos * th[j % h];
        const double rh = j < h ? -x[j + h] : x[j - h];
        out[j] = x[j] * cos(a) + rh * sin(a);
    }
}

/* dst <- src elementwise across dtypes (same shape; any strides) */
static void conv(nl_tensor *dst, const nl_tensor *src) {
    const int64_t n = nl_tensor_numel(src);
    for (int64_t i = 0; i < n; i++) nl_tensor_set(dst, i, nl_tensor_get(src, i));
}

static void seq(int64_t *p, int64_t n, int64_t p0) {
    for (int64_t i = 0; i < n; i++) p[i] = p0 + i;
}

/* (1) n <= n_local: LM-Infinite == causal RoPE attention (rotations done here by hand, then nl_attention). */
static void test_vanilla_equivalence(void) {
    const int64_t B = 2, H = 3, D = 8;
    double th[4];
    mk_theta(th, D, 10000);
    const int64_t ns[3] = {1, 17, 70};
    for (int i = 0; i < 3; i++) {
        const int64_t n = ns[i];
        nl_tensor q = rnd(NL_F64, B, H, n, D, 1 + i), k = rnd(NL_F64, B, H, n, D, 11 + i), v = rnd(NL_F64, B, H, n, 5, 21 + i);
        nl_tensor qr = rnd(NL_F64, B, H, n, D, 0), kr = rnd(NL_F64, B, H, n, D, 0);
        for (int64_t bh = 0; bh < B * H; bh++)
            for (int64_t t = 0; t < n; t++) {
                rope((double *)q.data + (bh * n + t) * D, D, (double)t, th, (double *)qr.data + (bh * n + t) * D);
                rope((double *)k.data + (bh * n + t) * D, D, (double)t, th, (double *)kr.data + (bh * n + t) * D);
            }
        int64_t pos[70];
        seq(pos, n, 0);
        nl_ctx *c = nl_ctx_new(0, 0);
        const nl_lm_infinite_cfg cfgs[2] = {{2, n, n}, {0, n + 5, 3}};
        nl_var *ref = nl_attention(c, nl_input(c, qr), nl_input(c, kr), nl_input(c, v), NULL, 1, 0);
        for (int j = 0; j < 2; j++) {
            nl_var *y = nl_lm_infinite_attention(c, nl_input(c, q), nl_input(c, k), nl_input(c, v), pos, pos, th, cfgs[j]);
            NLT_CHECK(y && ref, "%s", nl_last_error());
            if (y && ref) NLT_CHECK(maxdiff(&y->val, &ref->val) < 1e-12, "n %lld cfg %d: %g", (long long)n, j, maxdiff(&y->val, &ref->val));
        }
        nl_ctx_free(c);
        free(q.data); free(k.data); free(v.data); free(qr.data); free(kr.data);
    }
}

/* (2) blockwise == brute-force reference, values and gradients, over a grid of (n, n_global, n_local, L), chunked
 * queries (T < S, queries at the end, keys starting at a position > 0) and f32. */
typedef struct { int64_t n, ng, nl, L, T, kpos0; } cfg_case;
static void test_blockwise_vs_reference(void) {
    const cfg_case cs[] = {
        {10, 2, 3, 3, 10, 0},   {64, 1, 64, 64, 64, 0},  {65, 4, 16, 16, 65, 0},  {130, 4, 16, 16, 130, 0},
        {257, 3, 32, 32, 257, 0}, {200, 0, 7, 7, 200, 0}, {150, 10, 1, 1, 150, 0}, {150, 5, 20, 8, 150, 0},
        {150, 5, 20, 40, 150, 0}, {150, 5, 20, 0, 150, 0}, {300, 4, 100, 100, 300, 0}, {129, 200, 5, 5, 129, 0},
        {160, 4, 16, 16, 40, 0}, {160, 4, 16, 16, 1, 0},  {160, 4, 16, 16, 70, 10}, {100, 4, 200, 50, 100, 0},
    };
    const int64_t B = 2, H = 2, D = 8, Dv = 6;
    double th[4];
    mk_theta(th, D, 10000);
    double worst = 0, worst_g = 0;
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        const cfg_case *cc = &cs[ci];
        const int64_t S = cc->n, T = cc->T;
        int64_t kpos[300], qpos[300];
        seq(kpos, S, cc->kpos0);
        seq(qpos, T, cc->kpos0 + S - T);
        nl_lm_infinite_cfg cfg = {cc->ng, cc->nl, cc->L};
        nl_tensor q = rnd(NL_F64, B, H, T, D, 100 + ci), k = rnd(NL_F64, B, H, S, D, 200 + ci), v = rnd(NL_F64, B, H, S, Dv, 300 + ci);
        nl_tensor go = rnd(NL_F64, B, H, T, Dv, 400 + ci);
        nl_ctx *cc2[2] = {nl_ctx_new(0, 0), nl_ctx_new(0, 0)}, *c = cc2[0];
        nl_var *in[2][3];
        nl_var *y[2];
        for (int m = 0; m < 2; m++) { /* one context per op so each backward sees only its own graph */
            c = cc2[m];
            for (int j = 0; j < 3; j++) in[m][j] = nl_leaf(c, j == 0 ? q : j == 1 ? k : v, 1);
            y[m] = m ? nl_lm_infinite_attention(c, in[m][0], in[m][1], in[m][2], qpos, kpos, th, cfg)
                     : nl_lm_infinite_attention_ref(c, in[m][0], in[m][1], in[m][2], qpos, kpos, th, cfg);
            NLT_CHECK(y[m] != NULL, "case %zu: %s", ci, nl_last_error());
            if (y[m]) NLT_OK(nl_backward_seed(c, y[m], &go));
        }
        if (y[0] && y[1]) {
            double d = maxdiff(&y[0]->val, &y[1]->val);
            worst = fmax(worst, d);
            NLT_CHECK(d < 1e-10, "case %zu (n=%lld ng=%lld nl=%lld L=%lld T=%lld): max |blockwise - ref| = %g", ci,
                      (long long)S, (long long)cc->ng, (long long)cc->nl, (long long)cc->L, (long long)T, d);
            for (int j = 0; j < 3; j++) {
                double dg = maxdiff(&in[0][j]->grad, &in[1][j]->grad);
                worst_g = fmax(worst_g, dg);
                NLT_CHECK(dg < 1e-10, "case %zu grad of input %d: %g", ci, j, dg);
            }
        }
        /* f32 inputs: same op computed in double internally, outputs rounded to f32 */
        nl_tensor q32 = nl_arena_tensor(c->arena, NL_F32, 4, q.shape), k32 = nl_arena_tensor(c->arena, NL_F32, 4, k.shape),
                  v32 = nl_arena_tensor(c->arena, NL_F32, 4, v.shape);
        conv(&q32, &q); conv(&k32, &k); conv(&v32, &v);
        nl_var *y32 = nl_lm_infinite_attention(c, nl_input(c, q32), nl_input(c, k32), nl_input(c, v32), qpos, kpos, th, cfg);
        NLT_CHECK(y32 && y[0] && maxdiff(&y32->val, &y[0]->val) < 1e-5, "case %zu f32", ci);
        nl_ctx_free(cc2[0]);
        nl_ctx_free(cc2[1]);
        free(q.data); free(k.data); free(v.data); free(go.data);
    }
    printf("  blockwise vs reference: max |out diff| %.3g, max |grad diff| %.3g\n", worst, worst_g);
}

/* (3) the index example: n = 10, n_global = 2, n_local = 3 (L = 3): query 9 attends to keys {0, 1} through the
 * global branch at distance 3 and to {7, 8, 9} through the local branch; nothing else. With v = identity the
 * output row is the attention distribution, compared with a softmax computed here from the rule:
 *   s_j = (R_3 q).k_j / sqrt(D) for j in {0,1};  s_j = (R_9 q).(R_j k_j) / sqrt(D) for j in {7,8,9}. */
static void test_index_example(void) {
    const int64_t n = 10, D = 8;
    double th[4];
    mk_theta(th, D, 10000);
    nl_tensor q = rnd(NL_F64, 1, 1, n, D, 5), k = rnd(NL_F64, 1, 1, n, D, 6);
    int64_t sv[4] = {1, 1, n, n};
    double eye[100] = {0};
    for (int i = 0; i < n; i++) eye[i * n + i] = 1;
    nl_tensor v = nl_tensor_wrap(eye, NL_F64, 4, sv);
    int64_t pos[10];
    seq(pos, n, 0);
    nl_lm_infinite_cfg cfg = {2, 3, 3};
    nl_ctx *c = nl_ctx_new(0, 0);
    for (int m = 0; m < 2; m++) {
        nl_var *y = m ? nl_lm_infinite_attention(c, nl_input(c, q), nl_input(c, k), nl_input(c, v), pos, pos, th, cfg)
                      : nl_lm_infinite_attention_ref(c, nl_input(c, q), nl_input(c, k), nl_input(c, v), pos, pos, th, cfg);
        NLT_CHECK(y != NULL, "%s", nl_last_error());
        if (!y) continue;
        const double *q9 = (double *)q.data + 9 * D, *K = k.data;
        double qL[8], qi[8], kj[8], s[10], mx = -INFINITY, z = 0;
        rope(q9, D, 3, th, qL);
        rope(q9, D, 9, th, qi);
        for (int j = 0; j < n; j++) {
            s[j] = -INFINITY;
            if (j < 2 || j >= 7) {
                double d = 0;
                if (j < 2) for (int e = 0; e < D; e++) d += qL[e] * K[j * D + e];
                else {
                    rope(K + j * D, D, j, th, kj);
                    for (int e = 0; e < D; e++) d += qi[e] * kj[e];
                }
                s[j] = d / sqrt((double)D);
                mx = fmax(mx, s[j]);
            }
        }
        for (int j = 0; j < n; j++) z += s[j] == -INFINITY ? 0 : exp(s[j] - mx);
        int support_ok = 1;
        for (int j = 0; j < n; j++) {
            const double p = nl_tensor_get(&y->val, 9 * n + j), e = s[j] == -INFINITY ? 0 : exp(s[j] - mx) / z;
            NLT_NEAR(p, e, 1e-12);
            support_ok &= (p > 0) == (j < 2 || j >= 7);
        }
        NLT_CHECK(support_ok, "%s: query 9 must see exactly {0,1,7,8,9}", m ? "blockwise" : "reference");
        /* query 4: local {2,3,4}, global {0,1} (4-1 = 3 >= n_local); query 2: local {0,1,2} only */
        for (int j = 0; j < n; j++) {
            NLT_CHECK((nl_tensor_get(&y->val, 4 * n + j) > 0) == (j <= 4), "query 4 key %d", j);
            NLT_CHECK((nl_tensor_get(&y->val, 2 * n + j) > 0) == (j <= 2), "query 2 key %d", j);
        }
    }
    nl_ctx_free(c);
    free(q.data); free(k.data);
}

/* (4) the global logit equals the local logit of the same key placed at distance L (RoPE is relative:
 * (R_L q).k = (R_i q).(R_{i-L} k)). Sequence of 21 tokens, n_global = 1, n_local = 6, L = 4: key 0 and key 16
 * carry the same vector; query 20 sees key 0 through the global branch and key 16 (distance 4 < 6) through the
 * local one, so their attention probabilities must be equal (v = identity reads them off). */
static void test_global_logit_is_local_at_L(void) {
    const int64_t n = 21, D = 8;
    double th[4];
    mk_theta(th, D, 500);
    nl_tensor q = rnd(NL_F64, 1, 1, n, D, 8), k = rnd(NL_F64, 1, 1, n, D, 9);
    memcpy((double *)k.data + 16 * D, k.data, (size_t)D * sizeof(double));
    int64_t sv[4] = {1, 1, n, n};
    double *eye = calloc((size_t)(n * n), sizeof(double));
    for (int i = 0; i < n; i++) eye[i * n + i] = 1;
    nl_tensor v = nl_tensor_wrap(eye, NL_F64, 4, sv);
    int64_t pos[21];
    seq(pos, n, 0);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *y = nl_lm_infinite_attention(c, nl_input(c, q), nl_input(c, k), nl_input(c, v), pos, pos, th, (nl_lm_infinite_cfg){1, 6, 4});
    NLT_CHECK(y != NULL, "%s", nl_last_error());
    if (y) {
        const double p0 = nl_tensor_get(&y->val, 20 * n + 0), p16 = nl_tensor_get(&y->val, 20 * n + 16);
        NLT_CHECK(p0 > 1e-6, "key 0 visible (%g)", p0);
        NLT_NEAR(p0 / p16, 1.0, 1e-12);
        /* and with a different limit (L = 5) the two differ */
        nl_var *y5 = nl_lm_infinite_attention(c, nl_input(c, q), nl_input(c, k), nl_input(c, v), pos, pos, th, (nl_lm_infinite_cfg){1, 6, 5});
        NLT_CHECK(y5 && fabs(nl_tensor_get(&y5->val, 20 * n) / nl_tensor_get(&y5->val, 20 * n + 16) - 1) > 1e-6, "L = 5 differs");
    }
    /* the same through the reference op with arbitrary positions: keys at positions {0, 19} vs {20 - L, 19} */
    nl_tensor q1 = nl_tensor_wrap((double *)q.data + 20 * D, NL_F64, 4, (int64_t[]){1, 1, 1, D});
    double k2[16];
    memcpy(k2, k.data, sizeof(double) * D);
    memcpy(k2 + D, (double *)k.data + 19 * D, sizeof(double) * D);
    nl_tensor kk = nl_tensor_wrap(k2, NL_F64, 4, (int64_t[]){1, 1, 2, D});
    double e2[4] = {1, 0, 0, 1};
    nl_tensor vv = nl_tensor_wrap(e2, NL_F64, 4, (int64_t[]){1, 1, 2, 2});
    int64_t qp[1] = {20}, kpA[2] = {0, 19}, kpB[2] = {16, 19};
    nl_var *ya = nl_lm_infinite_attention_ref(c, nl_input(c, q1), nl_input(c, kk), nl_input(c, vv), qp, kpA, th, (nl_lm_infinite_cfg){1, 6, 4});
    nl_var *yb = nl_lm_infinite_attention_ref(c, nl_input(c, q1), nl_input(c, kk), nl_input(c, vv), qp, kpB, th, (nl_lm_infinite_cfg){1, 6, 4});
    NLT_CHECK(ya && yb, "%s", nl_last_error());
    if (ya && yb) NLT_NEAR(nl_tensor_get(&ya->val, 0), nl_tensor_get(&yb->val, 0), 1e-13);
    nl_ctx_free(c);
    free(q.data); free(k.data); free(eye);
}

/* (5) finite differences through the blockwise op (global and local branches active, chunked queries) */
typedef struct { const int64_t *qpos, *kpos; const double *th; nl_lm_infinite_cfg cfg; int ref; } gc_lam;
static nl_var *f_lam(nl_ctx *c, nl_var **in, void *ud) {
    gc_lam *a = ud;
    return a->ref ? nl_lm_infinite_attention_ref(c, in[0], in[1], in[2], a->qpos, a->kpos, a->th, a->cfg)
                  : nl_lm_infinite_attention(c, in[0], in[1], in[2], a->qpos, a->kpos, a->th, a->cfg);
}
static void test_gradcheck(void) {
    double th[2];
    mk_theta(th, 4, 100);
    int64_t kpos[40], qpos[40];
    const struct { int64_t S, T, ng, nl, L; } cs[3] = {{20, 20, 2, 5, 5}, {24, 10, 3, 6, 2}, {9, 9, 1, 2, 7}};
    for (int i = 0; i < 3; i++)
        for (int ref = 0; ref < 2; ref++) {
            seq(kpos, cs[i].S, 0);
            seq(qpos, cs[i].T, cs[i].S - cs[i].T);
            gc_lam a = {qpos, kpos, th, {cs[i].ng, cs[i].nl, cs[i].L}, ref};
            nl_tensor in[3] = {rnd(NL_F64, 1, 2, cs[i].T, 4, 31 + i), rnd(NL_F64, 1, 2, cs[i].S, 4, 41 + i), rnd(NL_F64, 1, 2, cs[i].S, 3, 51 + i)};
            nl_gc_result res;
            nl_status st = nl_gradcheck(f_lam, &a, 3, in, NULL, 1e-6, 1e-8, 1e-6, &res);
            NLT_CHECK(st == NL_OK, "case %d %s: %s (max abs err %g)", i, ref ? "ref" : "blockwise", res.first_failure, res.max_abs_err);
            for (int j = 0; j < 3; j++) free(in[j].data);
        }
}

/* (6) ring-buffer decoding step by step == blockwise prefill output, f64 and f32 */
static void test_cache_matches_prefill(void) {
    const int64_t B = 2, H = 2, D = 8, Dv = 4, n = 300;
    double th[4];
    mk_theta(th, D, 10000);
    const nl_lm_infinite_cfg cfgs[3] = {{3, 32, 32}, {0, 17, 17}, {5, 64, 20}};
    for (int ci = 0; ci < 3; ci++)
        for (int f32 = 0; f32 < 2; f32++) {
            nl_tensor q = rnd(NL_F64, B, H, n, D, 61), k = rnd(NL_F64, B, H, n, D, 62), v = rnd(NL_F64, B, H, n, Dv, 63);
            int64_t pos[300];
            seq(pos, n, 0);
            nl_ctx *c = nl_ctx_new(0, 0);
            nl_var *y = nl_lm_infinite_attention(c, nl_input(c, q), nl_input(c, k), nl_input(c, v), pos, pos, th, cfgs[ci]);
            NLT_CHECK(y != NULL, "%s", nl_last_error());
            nl_lm_infinite_cache kc;
            NLT_OK(nl_lm_infinite_cache_init(&kc, B, H, D, Dv, th, cfgs[ci]));
            double md = 0;
            const nl_dtype dt = f32 ? NL_F32 : NL_F64;
            for (int64_t t = 0; y && t < n; t++) {
                /* per-step tensors [B, H, 1, D] as strided views of the [B, H, n, D] inputs */
                nl_tensor qt, kt, vt;
                nl_tensor_slice(&q, 2, t, t + 1, 1, &qt);
                nl_tensor_slice(&k, 2, t, t + 1, 1, &kt);
                nl_tensor_slice(&v, 2, t, t + 1, 1, &vt);
                nl_tensor q2 = nl_arena_tensor(c->arena, dt, 4, qt.shape), k2 = nl_arena_tensor(c->arena, dt, 4, kt.shape),
                          v2 = nl_arena_tensor(c->arena, dt, 4, vt.shape), o = nl_arena_tensor(c->arena, dt, 3, (int64_t[]){B, H, Dv});
                conv(&q2, &qt); conv(&k2, &kt); conv(&v2, &vt);
                NLT_OK(nl_lm_infinite_cache_append(&kc, &k2, &v2, t));
                NLT_OK(nl_lm_infinite_cache_attend(&kc, &q2, t, &o));
                for (int64_t bh = 0; bh < B * H; bh++)
                    for (int64_t j = 0; j < Dv; j++)
                        md = fmax(md, fabs(nl_tensor_get(&o, bh * Dv + j) - nl_tensor_get(&y->val, (bh * n + t) * Dv + j)));
            }
            NLT_CHECK(md < (f32 ? 2e-6 : 1e-12), "cfg %d %s: max |decode - prefill| = %g", ci, f32 ? "f32" : "f64", md);
            nl_lm_infinite_cache_free(&kc);
            nl_ctx_free(c);
            free(q.data); free(k.data); free(v.data);
        }
}

/* (7) memory of the cache is constant over 10k decoding steps, and the step outputs still equal the prefill */
static void test_cache_memory_10k(void) {
    const int64_t D = 8, Dv = 4, n = 10000;
    double th[4];
    mk_theta(th, D, 10000);
    nl_lm_infinite_cfg cfg = {4, 64, 64};
    nl_tensor q = rnd(NL_F64, 1, 1, n, D, 71), k = rnd(NL_F64, 1, 1, n, D, 72), v = rnd(NL_F64, 1, 1, n, Dv, 73);
    int64_t *pos = malloc(sizeof(int64_t) * n);
    seq(pos, n, 0);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *y = nl_lm_infinite_attention(c, nl_input(c, q), nl_input(c, k), nl_input(c, v), pos, pos, th, cfg);
    NLT_CHECK(y != NULL, "%s", nl_last_error());
    nl_lm_infinite_cache kc;
    NLT_OK(nl_lm_infinite_cache_init(&kc, 1, 1, D, Dv, th, cfg));
    const size_t b0 = nl_lm_infinite_cache_bytes(&kc);
    double *kp = kc.k, *vp = kc.v;
    double md = 0;
    int same = 1;
    for (int64_t t = 0; y && t < n; t++) {
        nl_tensor qt = nl_tensor_wrap((double *)q.data + t * D, NL_F64, 3, (int64_t[]){1, 1, D});
        nl_tensor kt = nl_tensor_wrap((double *)k.data + t * D, NL_F64, 3, (int64_t[]){1, 1, D});
        nl_tensor vt = nl_tensor_wrap((double *)v.data + t * Dv, NL_F64, 3, (int64_t[]){1, 1, Dv});
        double ob[4];
        nl_tensor o = nl_tensor_wrap(ob, NL_F64, 3, (int64_t[]){1, 1, Dv});
        if (nl_lm_infinite_cache_append(&kc, &kt, &vt, t) || nl_lm_infinite_cache_attend(&kc, &qt, t, &o)) { same = 0; break; }
        for (int j = 0; j < Dv; j++) md = fmax(md, fabs(ob[j] - nl_tensor_get(&y->val, t * Dv + j)));
        same &= nl_lm_infinite_cache_bytes(&kc) == b0 && kc.k == kp && kc.v == vp;
    }
    NLT_CHECK(same, "cache bytes/storage changed during decoding");
    NLT_CHECK(kc.n_seen == n, "n_seen %lld", (long long)kc.n_seen);
    NLT_CHECK(md < 1e-12, "10k steps: max |decode - prefill| = %g", md);
    printf("  cache bytes: %zu (n_global 4 + n_local 64 slots, D 8, Dv 4), constant over %lld steps\n", b0, (long long)n);
    nl_lm_infinite_cache_free(&kc);
    nl_ctx_free(c);
    free(q.data); free(k.data); free(v.data); free(pos);
}

/* (8) 1 vs 2 threads bit-identical (forward and backward) */
static void test_threads(void) {
    const int64_t B = 2, H = 3, n = 200, D = 8;
    double th[4];
    mk_theta(th, D, 10000);
    int64_t pos[200];
    seq(pos, n, 0);
    nl_tensor q = rnd(NL_F32, B, H, n, D, 81), k = rnd(NL_F32, B, H, n, D, 82), v = rnd(NL_F32, B, H, n, D, 83);
    nl_tensor out[2], gq[2];
    for (int th_n = 1; th_n <= 2; th_n++) {
        nl_set_num_threads(th_n);
        nl_ctx *c = nl_ctx_new(0, 0);
        nl_var *ql = nl_leaf(c, q, 1);
        nl_var *y = nl_lm_infinite_attention(c, ql, nl_input(c, k), nl_input(c, v), pos, pos, th, (nl_lm_infinite_cfg){4, 32, 32});
        NLT_CHECK(y != NULL, "%s", nl_last_error());
        NLT_OK(nl_backward(c, nl_sum(c, nl_square(c, y), NL_AXIS_ALL, 0)));
        size_t nb = (size_t)nl_tensor_numel(&y->val) * sizeof(float);
        out[th_n - 1] = y->val;
        out[th_n - 1].data = malloc(nb);
        memcpy(out[th_n - 1].data, y->val.data, nb);
        gq[th_n - 1] = ql->grad;
        gq[th_n - 1].data = malloc(nb);
        memcpy(gq[th_n - 1].data, ql->grad.data, nb);
        nl_ctx_free(c);
    }
    nl_set_num_threads(2);
    const size_t nb = (size_t)nl_tensor_numel(&out[0]) * sizeof(float);
    NLT_CHECK(!memcmp(out[0].data, out[1].data, nb), "forward differs between 1 and 2 threads");
    NLT_CHECK(!memcmp(gq[0].data, gq[1].data, nb), "backward differs between 1 and 2 threads");
    for (int i = 0; i < 2; i++) { free(out[i].data); free(gq[i].data); }
    free(q.data); free(k.data); free(v.data);
}

static void test_errors(void) {
    double th[4];
    mk_theta(th, 8, 10000);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_tensor q = rnd(NL_F64, 1, 1, 4, 8, 1), k = rnd(NL_F64, 1, 1, 4, 8, 2), v = rnd(NL_F64, 1, 1, 4, 8, 3);
    int64_t pos[4] = {0, 1, 2, 3}, bad[4] = {0, 2, 3, 4};
    nl_clear_error();
    NLT_CHECK(!nl_lm_infinite_attention(c, nl_input(c, q), nl_input(c, k), nl_input(c, v), pos, bad, th, (nl_lm_infinite_cfg){1, 2, 2}), "non-consecutive keys");
    NLT_CHECK(strstr(nl_last_error(), "consecutive") != NULL, "%s", nl_last_error());
    NLT_CHECK(nl_lm_infinite_attention_ref(c, nl_input(c, q), nl_input(c, k), nl_input(c, v), pos, bad, th, (nl_lm_infinite_cfg){1, 2, 2}) != NULL,
              "reference accepts any positions");
    NLT_CHECK(!nl_lm_infinite_attention(c, nl_input(c, q), nl_input(c, k), nl_input(c, v), pos, pos, th, (nl_lm_infinite_cfg){1, 0, 2}), "n_local 0");
    nl_tensor q7 = rnd(NL_F64, 1, 1, 4, 7, 4);
    NLT_CHECK(!nl_lm_infinite_attention(c, nl_input(c, q7), nl_input(c, q7), nl_input(c, v), pos, pos, th, (nl_lm_infinite_cfg){1, 2, 2}), "odd D");
    nl_lm_infinite_cache kc;
    NLT_OK(nl_lm_infinite_cache_init(&kc, 1, 1, 8, 8, th, (nl_lm_infinite_cfg){1, 2, 2}));
    nl_tensor k1 = nl_tensor_wrap(k.data, NL_F64, 3, (int64_t[]){1, 1, 8});
    NLT_CHECK(nl_lm_infinite_cache_append(&kc, &k1, &k1, 1) == NL_EINVAL, "append must start at position 0");
    NLT_OK(nl_lm_infinite_cache_append(&kc, &k1, &k1, 0));
    nl_tensor k2 = nl_tensor_wrap(k.data, NL_F64, 3, (int64_t[]){1, 2, 4});
    NLT_CHECK(nl_lm_infinite_cache_append(&kc, &k2, &k1, 1) == NL_ESHAPE, "shape");
    nl_lm_infinite_cache_free(&kc);
    nl_ctx_free(c);
    free(q.data); free(k.data); free(v.data); free(q7.data);
}

/* (9) passkey generator and scorer */
static nl_status gen_cheat(void *ud, const char *prompt, char *out, size_t cap) {
    const char *p = strstr(prompt, "The pass key is ");
    int found;
    int64_t k = nl_lm_infinite_passkey_first_int(p, &found);
    snprintf(out, cap, " %lld. The grass", (long long)k);
    (*(int *)ud)++;
    return NL_OK;
}
static nl_status gen_zero(void *ud, const char *prompt, char *out, size_t cap) {
    snprintf(out, cap, " unknown, 0");
    return NL_OK;
}
static int64_t words(void *ud, const char *s) { /* a "tokenizer": whitespace-separated words */
    int64_t n = 0;
    for (int in = 0; *s; s++) {
        if (*s != ' ' && !in) n++;
        in = *s != ' ';
    }
    return n;
}
static void test_passkey(void) {
    nl_lm_infinite_passkey_sample s;
    /* exact text in 400 bytes: fixed part = 146 (prefix) + 1 + 62 (needle with K = 1234567) + 1 + 37 (question)
     * = 247 bytes, each distractor 89 + 1 (space) = 90 -> (400 - 247) / 90 = 1 distractor; insert_at 1 puts it
     * before the needle; total 247 + 90 = 337 bytes */
    NLT_OK(nl_lm_infinite_passkey_make(NULL, 400, NULL, NULL, 1, 1234567, NULL, &s));
    const nl_lm_infinite_passkey_text *t = &nl_lm_infinite_passkey_default_text;
    char expect[1024];
    snprintf(expect, sizeof expect, "%s %s The pass key is 1234567. Remember it. 1234567 is the pass key. %s", t->prefix,
             t->distractor, t->question);
    NLT_CHECK(s.prompt && !strcmp(s.prompt, expect), "prompt:\n%s\nexpected:\n%s", s.prompt, expect);
    NLT_CHECK(s.n_distract == 1 && s.insert_at == 1, "n_distract %lld insert %lld", (long long)s.n_distract, (long long)s.insert_at);
    NLT_CHECK(s.len == (int64_t)strlen(expect) && s.len == 337, "len %lld", (long long)s.len);
    nl_lm_infinite_passkey_sample_free(&s);
    /* lengths fit the target and use most of it; random keys are in [1, 1e7) and slots in [0, n_distract) */
    nl_rng r;
    nl_rng_init(&r, 3, 0);
    for (int i = 0; i < 50; i++) {
        const int64_t target = 500 + 200 * i;
        NLT_OK(nl_lm_infinite_passkey_make(NULL, target, NULL, NULL, -1, 0, &r, &s));
        NLT_CHECK(s.len <= target && s.len > target - 91, "target %lld len %lld", (long long)target, (long long)s.len);
        NLT_CHECK(s.key >= 1 && s.key < 10000000, "key %lld", (long long)s.key);
        NLT_CHECK(s.insert_at >= 0 && s.insert_at < s.n_distract, "slot");
        NLT_CHECK(nl_lm_infinite_passkey_correct(strstr(s.prompt, "The pass key is ") + 15, s.key), "needle carries the key");
        nl_lm_infinite_passkey_sample_free(&s);
    }
    /* token-length callback */
    NLT_OK(nl_lm_infinite_passkey_make(NULL, 300, words, NULL, 0, 42, NULL, &s));
    NLT_CHECK(s.len <= 300 && s.len > 300 - 19, "word length %lld", (long long)s.len);
    NLT_CHECK(!strncmp(strstr(s.prompt, "there.") + 7, "The pass key is 42.", 19), "insert_at 0 puts the needle first");
    nl_lm_infinite_passkey_sample_free(&s);
    NLT_CHECK(nl_lm_infinite_passkey_make(NULL, 100, NULL, NULL, -1, 0, &r, &s) == NL_EINVAL, "too short");
    /* scorer: the first integer decides */
    int found;
    NLT_CHECK(nl_lm_infinite_passkey_first_int(" 123. 456", &found) == 123 && found, "first int");
    NLT_CHECK(nl_lm_infinite_passkey_first_int("none", &found) == 0 && !found, "no int");
    NLT_CHECK(nl_lm_infinite_passkey_correct(" 98765 is it", 98765) && !nl_lm_infinite_passkey_correct("9876 5", 98765) && !nl_lm_infinite_passkey_correct("", 1), "correct");
    NLT_CHECK(!nl_lm_infinite_passkey_correct("it is 12 or 98765", 98765), "only the first integer counts");
    int calls = 0;
    double acc = -1;
    NLT_OK(nl_lm_infinite_passkey_eval(NULL, 2000, 20, 7, NULL, NULL, gen_cheat, &calls, &acc));
    NLT_CHECK(acc == 1.0 && calls == 20, "cheating generator: %g", acc);
    NLT_OK(nl_lm_infinite_passkey_eval(NULL, 2000, 20, 7, NULL, NULL, gen_zero, NULL, &acc));
    NLT_CHECK(acc == 0.0, "zero generator: %g", acc);
}

/* largest |a[ra, :] - b[rb, :]| over V columns of two [rows, V] logit tensors */
static double max_diff_rows(const nl_var *a, int64_t ra, const nl_var *b, int64_t rb, int64_t V) {
    double w = 0;
    for (int64_t v = 0; v < V; v++) {
        double d = fabs(nl_tensor_get(&a->val, ra * V + v) - nl_tensor_get(&b->val, rb * V + v));
        if (d > w) w = d;
    }
    return w;
}

/* the "lminf" attention kind inside the transformer LM (moved from the transformer library's tests) */
static void test_lm_attention(void) {
    nl_lm_infinite_register();
    nl_lm_config c = nl_lm_config_default();
    c.vocab = 20; c.context = 8; c.n_layers = 2; c.d_model = 16; c.n_heads = 2; c.d_ff = 16;
    nl_lm mv, ml;
    NLT_OK(nl_lm_init(&mv, &c, 7));
    c.attn = NL_LM_ATTN_LMINF;
    c.lminf_global = 2;
    NLT_OK(nl_lm_init(&ml, &c, 7));
    NLT_CHECK(ml.cfg.lminf_local == 8, "lminf_local defaults to the context (%d)", ml.cfg.lminf_local);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 5 + 1) % 20;
    nl_ctx *c1 = nl_ctx_new(0, 0), *c2 = nl_ctx_new(0, 0);
    nl_var *a = nl_lm_forward(&mv, c1, ids, 1, 8, 0), *b = nl_lm_forward(&ml, c1, ids, 1, 8, 0);
    double w = 0;
    for (int t = 0; t < 8 && a && b; t++) w = fmax(w, max_diff_rows(a, t, b, t, 20));
    NLT_CHECK(a && b && w < 1e-5, "within the window lminf == vanilla (%g) %s", w, nl_last_error());
    nl_var *full = nl_lm_forward(&ml, c1, ids, 1, 40, 0);
    NLT_CHECK(full != NULL, "lminf accepts 5x the context: %s", nl_last_error());
    NLT_OK(nl_lm_check_length(&ml, 1000, 0));
    nl_lm_cache kc;
    NLT_OK(nl_lm_cache_init(&kc, &ml, 1));
    nl_var *p = nl_lm_forward_cached(&ml, c2, &kc, ids, 1, 5);
    w = 0;
    for (int t = 0; t < 5 && p && full; t++) w = fmax(w, max_diff_rows(full, t, p, t, 20));
    for (int t = 5; t < 40 && full; t++) {
        nl_ctx_reset(c2);
        nl_var *s = nl_lm_forward_cached(&ml, c2, &kc, ids + t, 1, 1);
        if (!s) { NLT_CHECK(0, "%s", nl_last_error()); break; }
        w = fmax(w, max_diff_rows(full, t, s, 0, 20));
    }
    NLT_CHECK(w < 1e-4, "lminf cached decoding equals the full forward (%g)", w);
    NLT_CHECK(kc.bytes == 0, "vanilla cache unused with lminf (%zu bytes)", kc.bytes);
    nl_lm_cache_free(&kc);
    nl_ctx_free(c1);
    nl_ctx_free(c2);
    nl_lm_free(&mv);
    nl_lm_free(&ml);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_vanilla_equivalence);
    NLT_RUN(test_blockwise_vs_reference);
    NLT_RUN(test_index_example);
    NLT_RUN(test_global_logit_is_local_at_L);
    NLT_RUN(test_gradcheck);
    NLT_RUN(test_cache_matches_prefill);
    NLT_RUN(test_cache_memory_10k);
    NLT_RUN(test_threads);
    NLT_RUN(test_errors);
    NLT_RUN(test_passkey);
    NLT_RUN(test_lm_attention);
    return nlt_finish();
}
