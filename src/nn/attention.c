/* Fused scaled-dot-product attention (f32 and f64).
 *
 * Per (b, h) slice, in blocks of query rows x keys:
 *   forward:  S = scale * Q K^T + mask (causally hidden keys = -inf), P = softmax_rows(S), O = P V (computed as
 *             (E V) / rowsum(E), E = exp(S - rowmax): the division touches [T, Dv], not [T, S]). Only the
 *             per-row logsumexp is saved (lse; -inf for a row without any visible key, whose output is 0).
 *   backward: recompute P = exp(S - lse); dV += P^T dO; dP = dO V^T; dS = P * (dP - rowsum(dO * O));
 *             dQ += scale dS K; dK += scale dS^T Q; dMask += dS summed over the mask's broadcast dims.
 * Memory: one block of scores (plus one of dP in backward) per thread, about NL_ATTN_TILE_ELEMS elements
 * (at least 16 query rows). With causal masking a block only spans keys that some of its rows can see. The
 * [B, H, T, S] score tensor is kept only when it is small (at most NL_ATTN_SAVE_ELEMS elements, training):
 * forward then saves each block of scores (scale Q K^T + mask, before the softmax) and backward blocks of the
 * same geometry (a query tile of the forward, all keys) read it instead of recomputing the Q K^T GEMM (the
 * forward GEMM writes its scores into the saved tensor directly and both softmax passes read them from there,
 * no copies). The saved block is the result of the very same GEMM call, so gradients are bit-identical either way.
 *
 * Parallelism (OpenMP): forward work items are (slice, query tile). Backward items are slices; when there
 * are fewer slices than threads (and no mask gradient), backward runs in two passes instead: dK/dV over
 * (slice, key block) items, then dQ over (slice, query tile) items, which recomputes P and dP once more
 * (about 1.4x the backward FLOPs) but keeps all threads busy. Every item writes disjoint memory, so results
 * do not depend on the schedule. The GEMMs inside the parallel region are OpenBLAS calls with its thread count
 * set to 1 for the duration (restored after), so at most T threads run, never T*T. Measured on 2 cores (f32,
 * D = 64), this beat both a serial loop over slices with multithreaded BLAS (2-40x slower: small GEMMs scale
 * badly, the softmax is serial, and the OpenMP and BLAS thread pools contend) and hand-written loop kernels
 * inside the region (1.5-2x slower, 13x for single-query decode).
 * Tiny problems (< ~2e5 flops) run serially.
 *
 * Attention-weight dropout (nl_attention_ex with train and p > 0): O = (P * M / (1-p)) V with the keep-mask M
 * [B, H, T, S] drawn by nl_dropout's own generator (internal/dropmask.h: the same mask nl_dropout would draw for
 * a [B, H, T, S] tensor from that rng), one byte per score, drawn before the forward and kept for backward. The
 * row sums (and lse) are those of the undropped P; forward zeroes the dropped E entries and folds 1/(1-p) into
 * the row factor. Backward: dV += (P * M/(1-p))^T dO; dS = P * (M/(1-p) * dP - rowsum(dO * O)) with dP = dO V^T
 * (rowsum(P * M/(1-p) * dP) = rowsum(dO * O), O being the dropped output). Without dropout the mask pointer is
 * NULL and the code path is the one above, unchanged (bit-identical results).
 *
 * Mask gradient: the mask receives dS summed over its broadcast dims. If the mask is broadcast over B or H,
 * the slices that share one mask slice form one work item (processed in a fixed order), which keeps the
 * result deterministic; backward parallelism is then limited to the number of distinct mask slices (a [T,S]
 * mask with a gradient gives a serial backward). Excluded (-inf) mask entries get gradient 0. */
#ifndef NL_ATTN_TPL
#include "internal/dropmask.h"
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/vmath.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

/* Target number of elements of one score block. */
#define NL_ATTN_TILE_ELEMS ((int64_t)1 << 16)
/* Most query rows per block with causal masking: blocks of the triangle's diagonal only span the keys their
 * rows see. At T = S = 128, D = 32 (the default LM) blocks of 64 rows do 75% of the full-block score work
 * (the GEMMs alone: 9.4 vs 12.0 ms per step of 2 layers x 64 slices, 1 thread); 32 rows were no faster. */
#define NL_ATTN_CAUSAL_TILE 64
/* Largest score tensor B*H*T*S (elements) that forward keeps for backward. */
#define NL_ATTN_SAVE_ELEMS ((int64_t)1 << 20)
/* Below this many flops in total an op runs serially (thread start-up would dominate). */
#define NL_ATTN_PAR_FLOPS 2e5

typedef struct {
    int64_t B, H, T, S, D, Dv;
    double scale;
    int causal;
    const void *q, *k, *v;   /* contiguous [B,H,T,D], [B,H,S,D], [B,H,S,Dv] */
    const void *m;           /* mask data or NULL */
    int64_t ms[4];           /* mask element strides broadcast to [B,H,T,S] (0 on broadcast dims) */
    int64_t gms[4];          /* strides of the (contiguous) mask gradient, 0 on broadcast dims */
    int64_t tile;            /* query rows per block */
    int64_t obs, ohs, old;   /* output (and its gradient) element strides: batch, head, query row */
    const uint8_t *dm;       /* [B,H,T,S] dropout keep-mask (1 = keep) or NULL (no dropout) */
    double dscale;           /* 1 / (1 - p) with dropout */
} attn_geom;

typedef struct {
    const attn_geom *g;
    void *out, *lse;         /* forward outputs: [B,H,T,Dv], [B*H*T] (lse may be NULL) */
    const void *o, *go;      /* backward: forward output and its gradient */
    void *gq, *gk, *gv, *gm; /* gradients to accumulate (NULL = not wanted) */
    int64_t gB, gH;          /* backward grid of slice groups (B, H without mask gradient) */
    int64_t nblk, blk;       /* items per slice and their size (query rows or keys) */
    void *scs;               /* [B*H, T, S] saved scores (forward writes, backward reads) or NULL */
} attn_args;

#define NL_ATTN_TPL 1
#define TY float
#define SFX f32
#define EXPT nl_vexpf
#define LOGT logf
#include __FILE__
#undef TY
#undef SFX
#undef EXPT
#undef LOGT
#define TY double
#define SFX f64
#define EXPT exp
#define LOGT log
#include __FILE__
#undef TY
#undef SFX
#undef EXPT
#undef LOGT
#undef NL_ATTN_TPL

typedef struct {
    attn_geom g;
    nl_tensor q, k, v;  /* contiguous values used in forward */
    void *lse;          /* [B*H*T] logsumexp per query row */
    void *scs;          /* [B*H, T, S] scores saved by forward, or NULL (backward recomputes them) */
} attn_saved;

typedef void (*attn_item_fn)(const attn_args *a, int64_t it, void *scr);

/* Run items [0, n) in parallel (single-threaded BLAS inside; one scratch block of `per` bytes per thread) or
 * serially. */
static void attn_run(const attn_args *a, attn_item_fn fn, int64_t n, int par, int nth, char *scr, size_t per) {
    if (!par) {
        for (int64_t it = 0; it < n; it++) fn(a, it, scr);
        return;
    }
    const int blas_saved = nl_blas_serial_begin();
#pragma omp parallel num_threads(nth)
    {
        char *my = scr + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < n; it++) fn(a, it, my);
    }
    nl_blas_serial_end(blas_saved);
}

static int attn_par(int64_t items, double total_flops, int nth) {
    return nth > 1 && items > 1 && total_flops >= NL_ATTN_PAR_FLOPS;
}

static int64_t pick_tile(int64_t nt, int64_t S, int causal) {
    int64_t tile = S > 0 ? NL_ATTN_TILE_ELEMS / S : nt;
    if (causal && nt >= 32) { /* at least two query blocks, so that the masked triangle is skipped */
        const int64_t half = (nt + 1) / 2;
        if (tile > half) tile = half;
        if (tile > NL_ATTN_CAUSAL_TILE) tile = NL_ATTN_CAUSAL_TILE;
    }
    if (tile < 16) tile = 16;
    if (tile > nt) tile = nt;
    if (tile < 1) tile = 1;
    return tile;
}

static void attn_backward(nl_ctx *c, nl_node *n) {
    attn_saved *s = n->saved;
    attn_geom *g = &s->g;
    nl_tensor *gq = nl_grad(c, n->in[0]), *gk = nl_grad(c, n->in[1]), *gv = nl_grad(c, n->in[2]);
    nl_tensor *gm = n->n_in > 3 ? nl_grad(c, n->in[3]) : NULL;
    if ((!gq && !gk && !gv && !gm) || g->T == 0 || g->S == 0) return;
    const nl_tensor *go = nl_node_grad_out(n);
    int f32 = go->dtype == NL_F32;
    size_t es = nl_dtype_size(go->dtype);
    int nth = nl_get_num_threads();
    int64_t BH = g->B * g->H;
    double flops = 4.0 * (double)BH * (double)g->T * (double)g->S * (double)(g->D + g->Dv);
    size_t per = ((size_t)(2 * g->tile * g->S + g->tile)) * es + 64;
    attn_args a;
    memset(&a, 0, sizeof a);
    a.g = g; a.o = n->out->val.data; a.go = go->data; a.lse = s->lse; a.scs = s->scs;
    a.gq = gq ? gq->data : NULL; a.gk = gk ? gk->data : NULL; a.gv = gv ? gv->data : NULL; a.gm = gm ? gm->data : NULL;
    a.gB = g->B; a.gH = g->H;
    if (gm) { /* slices sharing a mask-gradient slice go to one item */
        a.gB = g->gms[0] ? g->B : 1;
        a.gH = g->gms[1] ? g->H : 1;
    }
    int64_t items = a.gB * a.gH;
    int two_pass = !gm && items < nth && attn_par(2, flops, nth);
    char *scr = nl_scratch(c, (size_t)(two_pass || attn_par(items, flops, nth) ? nth : 1) * per);
    if (!scr) return;
    if (!two_pass) {
        attn_run(&a, f32 ? attn_bwd_group_f32 : attn_bwd_group_f64, items,
                 attn_par(items, flops, nth), nth, scr, per);
        return;
    }
    if (gk || gv) { /* pass 1: dK, dV per (slice, key block) */
        attn_args a1 = a;
        a1.gq = NULL;
        int64_t want = (2 * nth + BH - 1) / BH; /* key blocks per slice */
        a1.blk = (g->S + want - 1) / want;
        if (a1.blk < 64) a1.blk = 64 < g->S ? 64 : g->S;
        a1.nblk = (g->S + a1.blk - 1) / a1.blk;
        attn_run(&a1, f32 ? attn_bwd_keys_f32 : attn_bwd_keys_f64, BH * a1.nblk,
                 attn_par(BH * a1.nblk, flops, nth), nth, scr, per);
    }
    if (gq) { /* pass 2: dQ per (slice, query tile) */
        attn_args a2 = a;
        a2.gk = a2.gv = NULL;
        a2.blk = g->tile;
        a2.nblk = (g->T + g->tile - 1) / g->tile;
        attn_run(&a2, f32 ? attn_bwd_rows_f32 : attn_bwd_rows_f64, BH * a2.nblk,
                 attn_par(BH * a2.nblk, flops, nth), nth, scr, per);
    }
}

static nl_var *attention_impl(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, nl_var *mask, int causal, double scale,
                              int bthd, double p_drop, int train, nl_rng *rng) {
    NL_REQUIRE(q, k, v);
    if (!(p_drop >= 0 && p_drop < 1)) {
        nl_set_error(NL_EINVAL, "attention: dropout p = %g outside [0, 1)", p_drop);
        return NULL;
    }
    const int drop = train && p_drop > 0;
    if (drop && !rng) return nl_op_fail(NL_EINVAL, "attention", "dropout in training mode needs an rng", q, NULL);
    char what[320], b1[64], b2[64], b3[64], b4[64];
    nl_dtype dt = q->val.dtype;
    if (k->val.dtype != dt || v->val.dtype != dt || (mask && mask->val.dtype != dt)) {
        snprintf(what, sizeof what, "mixed dtypes (q %s, k %s, v %s%s%s)", nl_dtype_name(dt), nl_dtype_name(k->val.dtype),
                 nl_dtype_name(v->val.dtype), mask ? ", mask " : "", mask ? nl_dtype_name(mask->val.dtype) : "");
        return nl_op_fail(NL_EDTYPE, "attention", what, NULL, NULL);
    }
    const nl_tensor *Q = &q->val, *K = &k->val, *V = &v->val;
    nl_shape_str(Q, b1, sizeof b1);
    nl_shape_str(K, b2, sizeof b2);
    nl_shape_str(V, b3, sizeof b3);
    if (Q->ndim != 4 || K->ndim != 4 || V->ndim != 4 || Q->shape[0] != K->shape[0] || Q->shape[0] != V->shape[0] ||
        Q->shape[1] != K->shape[1] || Q->shape[1] != V->shape[1] || Q->shape[3] != K->shape[3] ||
        K->shape[2] != V->shape[2] || Q->shape[3] < 1) {
        snprintf(what, sizeof what, "need q [B,H,T,D], k [B,H,S,D], v [B,H,S,Dv] with D >= 1 (got q %s, k %s, v %s)", b1, b2, b3);
        return nl_op_fail(NL_ESHAPE, "attention", what, NULL, NULL);
    }
    attn_geom g;
    memset(&g, 0, sizeof g);
    g.B = Q->shape[0]; g.H = Q->shape[1]; g.T = Q->shape[2]; g.S = K->shape[2]; g.D = Q->shape[3]; g.Dv = V->shape[3];
    g.causal = causal ? 1 : 0;
    g.scale = scale > 0 ? scale : 1.0 / sqrt((double)g.D);
    if (mask) {
        const nl_tensor *M = &mask->val;
        int64_t full[4] = {g.B, g.H, g.T, g.S};
        int ok = M->ndim <= 4;
        int64_t gs = 1;
        for (int i = 3; ok && i >= 0; i--) {
            int j = i - (4 - M->ndim);
            int64_t sz = j >= 0 ? M->shape[j] : 1;
            if (sz != 1 && sz != full[i]) { ok = 0; break; }
            int bc = sz == 1 && full[i] != 1;
            g.ms[i] = (j >= 0 && !bc) ? M->stride[j] : 0;
            g.gms[i] = (j >= 0 && !bc) ? gs : 0;
            gs *= sz;
        }
        if (!ok) {
            nl_shape_str(M, b4, sizeof b4);
            snprintf(what, sizeof what, "mask %s is not broadcastable to [B,H,T,S] = [%lld,%lld,%lld,%lld] (q %s, k %s)", b4,
                     (long long)g.B, (long long)g.H, (long long)g.T, (long long)g.S, b1, b2);
            return nl_op_fail(NL_ESHAPE, "attention", what, NULL, NULL);
        }
        g.m = M->data;
    }
    g.tile = pick_tile(g.T, g.S, g.causal);
    if (drop) { /* keep-mask [B,H,T,S], drawn as nl_dropout draws it; rng advances as nl_dropout advances it */
        const int64_t nm = g.B * g.H * g.T * g.S;
        uint8_t *dm = nl_scratch(c, (size_t)(nm ? nm : 1));
        if (!dm) return NULL;
        nl__dropout_mask(dm, nm, p_drop, rng);
        g.dm = dm;
        g.dscale = 1.0 / (1.0 - p_drop);
    }
    if (bthd) { g.obs = g.T * g.H * g.Dv; g.ohs = g.Dv; g.old = g.H * g.Dv; }
    else { g.obs = g.H * g.T * g.Dv; g.ohs = g.T * g.Dv; g.old = g.Dv; }
    nl_tensor Qc = nl_contig(c, Q), Kc = nl_contig(c, K), Vc = nl_contig(c, V);
    if (!Qc.data || !Kc.data || !Vc.data) return NULL;
    g.q = Qc.data; g.k = Kc.data; g.v = Vc.data;
    int64_t oshape[4] = {g.B, bthd ? g.T : g.H, bthd ? g.H : g.T, g.Dv};
    nl_var *out = nl_op_out(c, dt, 4, oshape);
    if (!out) return NULL;
    size_t es = nl_dtype_size(dt);
    int need = c->grad_enabled && (q->requires_grad || k->requires_grad || v->requires_grad || (mask && mask->requires_grad));
    attn_args a;
    memset(&a, 0, sizeof a);
    a.g = &g;
    a.out = out->val.data;
    if (need) {
        a.lse = nl_scratch(c, (size_t)(g.B * g.H * g.T) * es + 8);
        if (!a.lse) return NULL;
        const int64_t nsc = g.B * g.H * g.T * g.S;
        if (nsc > 0 && nsc <= NL_ATTN_SAVE_ELEMS && !(a.scs = nl_scratch(c, (size_t)nsc * es)))
            nl_clear_error(); /* no room: backward recomputes the scores */
    }
    a.blk = g.tile;
    a.nblk = g.T > 0 ? (g.T + g.tile - 1) / g.tile : 0;
    int64_t items = g.B * g.H * a.nblk;
    int nth = nl_get_num_threads();
    int par = attn_par(items, 2.0 * (double)(g.B * g.H) * (double)g.T * (double)g.S * (double)(g.D + g.Dv), nth);
    size_t per = (size_t)(g.tile * (g.S + 1)) * es + 64; /* score block [tile, S] + row factors [tile] */
    char *scr = nl_scratch(c, (size_t)(par ? nth : 1) * per);
    if (!scr) return NULL;
    attn_run(&a, dt == NL_F32 ? attn_fwd_item_f32 : attn_fwd_item_f64, items, par, nth, scr, per);
    nl_var *in[4] = {q, k, v, mask};
    nl_node *n = nl_op_record(c, "attention", out, attn_backward, mask ? 4 : 3, in);
    if (n) {
        attn_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->g = g;
        s->q = Qc; s->k = Kc; s->v = Vc;
        s->lse = a.lse;
        s->scs = a.scs;
        n->saved = s;
    }
    return out;
}

nl_var *nl_attention(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, nl_var *mask, int causal, double scale) {
    return attention_impl(c, q, k, v, mask, causal, scale, 0, 0.0, 0, NULL);
}

/* Same op with the output laid out as [B, T, H, Dv] (= permute(0, 2, 1, 3) of nl_attention's output, made
 * contiguous), written straight by the P V products: a transformer reshapes it to [B, T, H*Dv] for the output
 * projection without a copy (forward) or a permuted gradient (backward). Same values and gradients, bit for bit. */
nl_var *nl_attention_bthd(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, nl_var *mask, int causal, double scale) {
    return attention_impl(c, q, k, v, mask, causal, scale, 1, 0.0, 0, NULL);
}

/* Both layouts, with optional dropout on the attention weights (identity when !train or p_drop == 0: then
 * exactly nl_attention / nl_attention_bthd, rng untouched). */
nl_var *nl_attention_ex(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, const nl_attention_opts *o) {
    static const nl_attention_opts none;
    if (!o) o = &none;
    return attention_impl(c, q, k, v, o->mask, o->causal, o->scale, o->bthd, o->p_drop, o->train, o->rng);
}

#else /* ---------------- typed kernels (TY = float / double) ---------------- */

#define ATTN_CAT2(a, b) a##_##b
#define ATTN_CAT(a, b) ATTN_CAT2(a, b)
#define FN(name) ATTN_CAT(name, SFX)
#define DT (sizeof(TY) == 4 ? NL_F32 : NL_F64)

/* Row t sees keys [0, row_limit(t)). */
static inline int64_t FN(row_limit)(const attn_geom *g, int64_t t) {
    if (!g->causal) return g->S;
    int64_t l = t + (g->S - g->T) + 1;
    return l < 0 ? 0 : l > g->S ? g->S : l;
}

/* sc [tb, w] (row stride ld) = scale * Q[t0:t0+tb] K[s0:s0+w]^T + mask for one slice; keys hidden by
 * causality = -inf. */
static void FN(scores)(const attn_geom *g, int64_t b, int64_t h, int64_t t0, int64_t tb, int64_t s0, int64_t w,
                       const TY *Q, const TY *K, TY *sc, int64_t ld) {
    /* beta = 1 onto zeros: the same values as beta = 0, whose separate C pass in OpenBLAS (sgemm_beta) is
     * several times slower than memset (8% of a 2048-token evaluation) */
    for (int64_t r = 0; r < tb; r++) memset(sc + r * ld, 0, sizeof(TY) * (size_t)w);
    nl_gemm(DT, 0, 1, tb, w, g->D, g->scale, Q + t0 * g->D, g->D, K + s0 * g->D, g->D, 1.0, sc, ld);
    const TY *m = g->m;
    for (int64_t r = 0; r < tb; r++) {
        const int64_t t = t0 + r;
        int64_t lim = FN(row_limit)(g, t) - s0;
        lim = lim < 0 ? 0 : lim > w ? w : lim;
        TY *row = sc + r * ld;
        if (m) {
            const TY *mr = m + b * g->ms[0] + h * g->ms[1] + t * g->ms[2] + s0 * g->ms[3];
            const int64_t s3 = g->ms[3];
            for (int64_t s = 0; s < lim; s++) row[s] += mr[s * s3];
        }
        for (int64_t s = lim; s < w; s++) row[s] = (TY)-INFINITY;
    }
}

/* Forward of item `it` = (slice, query tile). */
static void FN(attn_fwd_item)(const attn_args *a, int64_t it, void *scr) {
    const attn_geom *g = a->g;
    const int64_t slice = it / a->nblk, t0 = (it % a->nblk) * a->blk;
    const int64_t b = slice / g->H, h = slice % g->H;
    const int64_t tb = t0 + a->blk > g->T ? g->T - t0 : a->blk;
    const TY *Q = (const TY *)g->q + slice * g->T * g->D;
    const TY *K = (const TY *)g->k + slice * g->S * g->D;
    const TY *V = (const TY *)g->v + slice * g->S * g->Dv;
    TY *O = (TY *)a->out + b * g->obs + h * g->ohs + t0 * g->old;
    TY *lse = a->lse ? (TY *)a->lse + slice * g->T + t0 : NULL;
    TY *sc = scr;
    const int64_t se = FN(row_limit)(g, t0 + tb - 1);
    if (se == 0) { /* no row of the tile sees a key */
        for (int64_t r = 0; r < tb; r++) memset(O + r * g->old, 0, (size_t)g->Dv * sizeof(TY));
        if (lse) for (int64_t r = 0; r < tb; r++) lse[r] = (TY)-INFINITY;
        return;
    }
    /* the scores go straight to the saved block when there is one (the softmax then reads them from there) */
    TY *raw = a->scs ? (TY *)a->scs + (slice * g->T + t0) * g->S : sc;
    const int64_t ldr = a->scs ? g->S : se;
    FN(scores)(g, b, h, t0, tb, 0, se, Q, K, raw, ldr);
    TY *inv = sc + g->tile * g->S; /* [tb] 1 / row sums: O = (E V) / sum, one pass over [tb, Dv], not [tb, se] */
    for (int64_t r = 0; r < tb; r++) {
        TY *row = sc + r * se;
        const TY *src = raw + r * ldr;
        TY mx = (TY)-INFINITY;
#pragma omp simd reduction(max : mx)
        for (int64_t s = 0; s < se; s++) mx = src[s] > mx ? src[s] : mx;
        if (mx == (TY)-INFINITY) { /* no visible key: zero output, zero gradient */
            for (int64_t s = 0; s < se; s++) row[s] = 0;
            inv[r] = 0;
            if (lse) lse[r] = (TY)-INFINITY;
            continue;
        }
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t s = 0; s < se; s++) {
            TY e = EXPT(src[s] - mx);
            row[s] = e;
            sum += e;
        }
        if (g->dm) { /* dropout: zero the dropped weights, 1/(1-p) folded into the row factor */
            const uint8_t *mr = g->dm + (slice * g->T + t0 + r) * g->S;
            for (int64_t s = 0; s < se; s++) row[s] = mr[s] ? row[s] : (TY)0;
            inv[r] = (TY)(g->dscale / sum);
        } else {
            inv[r] = (TY)(1.0 / sum);
        }
        if (lse) lse[r] = (TY)((double)mx + log(sum));
    }
    nl_gemm(DT, 0, 0, tb, g->Dv, se, 1.0, sc, se, V, g->Dv, 0.0, O, g->old);
    for (int64_t r = 0; r < tb; r++) {
        TY *orow = O + r * g->old;
        const TY f = inv[r];
#pragma omp simd
        for (int64_t j = 0; j < g->Dv; j++) orow[j] *= f;
    }
}

/* Backward over query rows [t0, t1) x keys [s0, s1) of slice (b, h): accumulates into the gradients of `a`
 * that are not NULL. Scratch: P and dP blocks [tile, S] and Di [tile]. */
static void FN(attn_bwd_block)(const attn_args *a, int64_t b, int64_t h, int64_t t0, int64_t t1, int64_t s0,
                               int64_t s1, void *scr) {
    const attn_geom *g = a->g;
    const int64_t slice = b * g->H + h, D = g->D, Dv = g->Dv;
    const TY *Q = (const TY *)g->q + slice * g->T * D;
    const TY *K = (const TY *)g->k + slice * g->S * D;
    const TY *V = (const TY *)g->v + slice * g->S * Dv;
    const int64_t ld = g->old; /* row stride of O and dO */
    const TY *O = (const TY *)a->o + b * g->obs + h * g->ohs;
    const TY *dO = (const TY *)a->go + b * g->obs + h * g->ohs;
    const TY *lse = (const TY *)a->lse + slice * g->T;
    TY *dQ = a->gq ? (TY *)a->gq + slice * g->T * D : NULL;
    TY *dK = a->gk ? (TY *)a->gk + slice * g->S * D : NULL;
    TY *dV = a->gv ? (TY *)a->gv + slice * g->S * Dv : NULL;
    TY *gm = a->gm ? (TY *)a->gm + b * g->gms[0] + h * g->gms[1] : NULL;
    TY *P = scr, *dP = P + g->tile * g->S, *Di = dP + g->tile * g->S;
    const int need_ds = dQ || dK || gm;
    int64_t r0 = t0;
    if (g->causal && s0 - (g->S - g->T) > r0) r0 = s0 - (g->S - g->T); /* earlier rows see no key >= s0 */
    for (; r0 < t1; r0 += g->tile) {
        const int64_t tb = r0 + g->tile > t1 ? t1 - r0 : g->tile;
        int64_t se = FN(row_limit)(g, r0 + tb - 1);
        if (se > s1) se = s1;
        if (se <= s0) continue;
        const int64_t w = se - s0;
        /* the forward block of these rows (same tile, all keys) was saved: same GEMM, same values */
        const int saved = a->scs && s0 == 0 && s1 == g->S && r0 % g->tile == 0 &&
                          tb == (r0 + g->tile > g->T ? g->T - r0 : g->tile);
        if (!saved) FN(scores)(g, b, h, r0, tb, s0, w, Q, K, P, w);
        for (int64_t r = 0; r < tb; r++) {
            TY *row = P + r * w;
            const TY *src = saved ? (const TY *)a->scs + (slice * g->T + r0 + r) * g->S : row;
            const TY l = lse[r0 + r];
            if (l == (TY)-INFINITY) {
                for (int64_t s = 0; s < w; s++) row[s] = 0;
            } else {
#pragma omp simd
                for (int64_t s = 0; s < w; s++) row[s] = EXPT(src[s] - l);
            }
            if (need_ds) {
                TY d = 0;
                const TY *dor = dO + (r0 + r) * ld, *orow = O + (r0 + r) * ld;
                for (int64_t j = 0; j < Dv; j++) d += dor[j] * orow[j];
                Di[r] = d;
            }
        }
        const uint8_t *dmb = g->dm ? g->dm + (slice * g->T + r0) * g->S + s0 : NULL; /* row stride S */
        const TY dsc = (TY)g->dscale;
        if (dV && dmb) { /* dV += (P * M / (1-p))^T dO, the dropped weights built in the dP block */
            for (int64_t r = 0; r < tb; r++) {
                const TY *pr = P + r * w;
                const uint8_t *mr = dmb + r * g->S;
                TY *dr = dP + r * w;
                for (int64_t s = 0; s < w; s++) dr[s] = mr[s] ? pr[s] * dsc : (TY)0;
            }
            nl_gemm(DT, 1, 0, w, Dv, tb, 1.0, dP, w, dO + r0 * ld, ld, 1.0, dV + s0 * Dv, Dv);
        } else if (dV) {
            nl_gemm(DT, 1, 0, w, Dv, tb, 1.0, P, w, dO + r0 * ld, ld, 1.0, dV + s0 * Dv, Dv);
        }
        if (!need_ds) continue;
        memset(dP, 0, sizeof(TY) * (size_t)(tb * w)); /* beta = 1 onto zeros, as in scores() */
        nl_gemm(DT, 0, 1, tb, w, Dv, 1.0, dO + r0 * ld, ld, V + s0 * Dv, Dv, 1.0, dP, w);
        for (int64_t r = 0; r < tb; r++) {
            TY *dr = dP + r * w;
            const TY *pr = P + r * w;
            const TY di = Di[r];
            if (dmb) { /* d(P * M/(1-p)) = M/(1-p) * dO V^T */
                const uint8_t *mr = dmb + r * g->S;
                for (int64_t s = 0; s < w; s++) dr[s] = pr[s] * ((mr[s] ? dr[s] * dsc : (TY)0) - di);
            } else {
                for (int64_t s = 0; s < w; s++) dr[s] = pr[s] * (dr[s] - di);
            }
        }
        if (gm) {
            const int64_t s3 = g->gms[3];
            for (int64_t r = 0; r < tb; r++) {
                TY *gr = gm + (r0 + r) * g->gms[2] + s0 * s3;
                const TY *dr = dP + r * w;
                if (s3) {
                    for (int64_t s = 0; s < w; s++) gr[s * s3] += dr[s];
                } else {
                    TY acc = 0;
                    for (int64_t s = 0; s < w; s++) acc += dr[s];
                    gr[0] += acc;
                }
            }
        }
        if (dQ) nl_gemm(DT, 0, 0, tb, D, w, g->scale, dP, w, K + s0 * D, D, 1.0, dQ + r0 * D, D);
        if (dK) nl_gemm(DT, 1, 0, w, D, tb, g->scale, dP, w, Q + r0 * D, D, 1.0, dK + s0 * D, D);
    }
}

/* Item = one group of slices sharing a mask-gradient slice (a single slice without mask gradient). */
static void FN(attn_bwd_group)(const attn_args *a, int64_t it, void *scr) {
    const attn_geom *g = a->g;
    const int64_t ib = it / a->gH, ih = it % a->gH;
    const int64_t b0 = a->gB == g->B ? ib : 0, b1 = a->gB == g->B ? ib + 1 : g->B;
    const int64_t h0 = a->gH == g->H ? ih : 0, h1 = a->gH == g->H ? ih + 1 : g->H;
    for (int64_t b = b0; b < b1; b++)
        for (int64_t h = h0; h < h1; h++) FN(attn_bwd_block)(a, b, h, 0, g->T, 0, g->S, scr);
}

/* Item = (slice, key block): dK, dV of those keys. */
static void FN(attn_bwd_keys)(const attn_args *a, int64_t it, void *scr) {
    const attn_geom *g = a->g;
    const int64_t slice = it / a->nblk, s0 = (it % a->nblk) * a->blk;
    const int64_t s1 = s0 + a->blk > g->S ? g->S : s0 + a->blk;
    FN(attn_bwd_block)(a, slice / g->H, slice % g->H, 0, g->T, s0, s1, scr);
}

/* Item = (slice, query tile): dQ of those rows. */
static void FN(attn_bwd_rows)(const attn_args *a, int64_t it, void *scr) {
    const attn_geom *g = a->g;
    const int64_t slice = it / a->nblk, t0 = (it % a->nblk) * a->blk;
    const int64_t t1 = t0 + a->blk > g->T ? g->T : t0 + a->blk;
    FN(attn_bwd_block)(a, slice / g->H, slice % g->H, t0, t1, 0, g->S, scr);
}

#undef DT
#undef FN
#undef ATTN_CAT
#undef ATTN_CAT2
#endif
