/* LM-Infinite attention (Han et al. 2023): Lambda-shaped mask + distance limit on RoPE attention.
 *
 * Rule (include/lm_infinite/lm_infinite.h): query at position i, key at position j <= i:
 *   i - j < n_local -> (R_i q).(R_j k) * scale;  else j < n_global -> (R_L q).k * scale;  else excluded.
 * Both ops first build, in double, the rotated queries qr = R_i q, the "stationary" queries qs = R_L q, the
 * rotated keys kr = R_j k and keep the unrotated keys (used by the global branch), with cos/sin tables computed
 * once per position (rotate_half pairing j <-> j + D/2). Then:
 *   - reference: every (query, key) pair is classified and scored (O(T S D));
 *   - blockwise: query tiles of NL_LAMBDA_TILE rows attend to the key band [tile start - n_local + 1, tile end]
 *     (one GEMM, band mask) and to the global prefix of keys (one GEMM, mask "distance >= n_local"), with one
 *     joint softmax; the tile keeps its per-row logsumexp for the backward, which recomputes the probabilities
 *     (P = exp(S - lse)) tile by tile: dV += P^T dO, dS = P (dO V^T - rowsum(dO O)), dqr += dS_loc kr, dkr +=
 *     dS_loc^T qr, dqs += dS_glob k, dk += dS_glob^T qs; finally dq = R_i^T dqr + R_L^T dqs, dk += R_j^T dkr.
 * Slices (b, h) run in parallel (OpenMP, OpenBLAS single-threaded inside the region), each writing disjoint
 * memory, so results do not depend on the thread count.
 * The decoding cache (nl_lm_infinite_cache_*) keeps n_global + n_local slots (global slots for positions < n_global,
 * a ring for the last n_local positions >= n_global). */
#include "nnlab/extend.h"
#include "lm_infinite/lm_infinite.h"
#include "nnlab/ops.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NL_LAMBDA_TILE 64                 /* query rows per tile of the blockwise op */
#define NL_LAMBDA_BIG ((int64_t)1 << 50)  /* window sizes above this are treated as unlimited */

typedef struct {
    int64_t B, H, T, S, D, Dv, h;         /* h = D / 2 */
    int64_t qpos0, kpos0;                 /* blockwise: first positions (consecutive positions) */
    const int64_t *qpos, *kpos;           /* (T), (S) copies */
    int64_t ng, nl, L;                    /* n_global, n_local (clamped), limit */
    int nolimit;                          /* limit < 0: global keys scored at their true distance (no limit) */
    double scale;
    double *cq, *sq;                      /* (T, h) cos/sin of qpos * theta */
    double *ck, *sk;                      /* (S, h) */
    double *cl, *sl;                      /* (h) cos/sin of L * theta */
    double *qr, *qs;                      /* (B, H, T, D) rotated / stationary queries */
    double *kr, *kd;                      /* (B, H, S, D) rotated / unrotated keys */
    double *vd;                           /* (B, H, S, Dv) */
    double *o;                            /* (B, H, T, Dv) output in double */
    double *lse;                          /* (B, H, T) row logsumexp, -inf for rows without visible key */
    int blockwise;
} lam_geom;

/* rotate x by the angle whose cos/sin are c, s (sign -1: by the opposite angle, i.e. R^T) */
static inline void rot(const double *x, const double *c, const double *s, int64_t h, double sign, double *y) {
    for (int64_t j = 0; j < h; j++) {
        const double a = x[j], b = x[j + h], sn = sign * s[j];
        y[j] = a * c[j] - b * sn;
        y[j + h] = b * c[j] + a * sn;
    }
}

static void trig_table(const double *theta, int64_t h, const int64_t *pos, int64_t n, double *c, double *s) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < h; j++) {
            const double a = (double)pos[i] * theta[j];
            c[i * h + j] = cos(a);
            s[i * h + j] = sin(a);
        }
}

/* classification of a (query position pi, key position pj) pair: 1 local, 2 global, 0 excluded */
static inline int lam_kind(const lam_geom *g, int64_t pi, int64_t pj) {
    if (pj > pi) return 0;
    if (pi - pj < g->nl) return 1;
    if (pj < g->ng) return g->nolimit ? 1 : 2;
    return 0;
}

/* contiguous double copy of a tensor (any strides/dtype) into dst */
static int to_double(nl_ctx *c, const nl_tensor *t, double *dst) {
    nl_tensor ct = nl_contig(c, t);
    if (!ct.data) return 0;
    const int64_t n = nl_tensor_numel(&ct);
    if (ct.dtype == NL_F64) memcpy(dst, ct.data, (size_t)n * sizeof(double));
    else {
        const float *f = ct.data;
        for (int64_t i = 0; i < n; i++) dst[i] = f[i];
    }
    return 1;
}

/* ---------------- forward cores ---------------- */
static void ref_fwd_slice(const lam_geom *g, int64_t bh, double *sc) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv;
    const double *qr = g->qr + bh * T * D, *qs = g->qs + bh * T * D, *kr = g->kr + bh * S * D, *kd = g->kd + bh * S * D;
    const double *v = g->vd + bh * S * Dv;
    double *o = g->o + bh * T * Dv, *lse = g->lse + bh * T;
    for (int64_t t = 0; t < T; t++) {
        double mx = -INFINITY;
        for (int64_t s = 0; s < S; s++) {
            const int kind = lam_kind(g, g->qpos[t], g->kpos[s]);
            double d = -INFINITY;
            if (kind) {
                const double *a = kind == 1 ? qr + t * D : qs + t * D, *b = kind == 1 ? kr + s * D : kd + s * D;
                d = 0;
                for (int64_t j = 0; j < D; j++) d += a[j] * b[j];
                d *= g->scale;
            }
            sc[s] = d;
            if (d > mx) mx = d;
        }
        double *orow = o + t * Dv;
        for (int64_t j = 0; j < Dv; j++) orow[j] = 0;
        if (mx == -INFINITY) { lse[t] = -INFINITY; continue; }
        double z = 0;
        for (int64_t s = 0; s < S; s++) z += (sc[s] = sc[s] == -INFINITY ? 0 : exp(sc[s] - mx));
        for (int64_t s = 0; s < S; s++)
            if (sc[s] != 0)
                for (int64_t j = 0; j < Dv; j++) orow[j] += sc[s] / z * v[s * Dv + j];
        lse[t] = mx + log(z);
    }
}

/* key band [lo, hi] and global prefix [0, gn) of the query tile [t0, t1) */
static void tile_range(const lam_geom *g, int64_t t0, int64_t t1, int64_t *lo, int64_t *hi, int64_t *gn) {
    const int64_t pa = g->qpos0 + t0, pb = g->qpos0 + t1 - 1; /* first / last query position */
    int64_t l = pa - g->nl + 1 - g->kpos0, u = pb - g->kpos0;
    if (l < 0) l = 0;
    if (u > g->S - 1) u = g->S - 1;
    *lo = l;
    *hi = u;
    int64_t G = g->ng - g->kpos0; /* keys with position < n_global form the prefix [0, G) */
    if (G < 0) G = 0;
    if (G > g->S) G = g->S;
    int64_t m = pb - g->nl - g->kpos0 + 1; /* keys the last query sees through the global branch */
    if (m < 0) m = 0;
    *gn = m < G ? m : G;
}

/* scores of a tile: sl [nt, W] (band), sg [nt, gn] (global), masked entries -inf, scaled */
static void tile_scores(const lam_geom *g, int64_t bh, int64_t t0, int64_t nt, int64_t lo, int64_t W, int64_t gn,
                        double *sl, double *sg) {
    const int64_t T = g->T, S = g->S, D = g->D;
    if (W > 0) {
        nl_gemm(NL_F64, 0, 1, nt, W, D, g->scale, g->qr + (bh * T + t0) * D, D, g->kr + (bh * S + lo) * D, D, 0.0, sl, W);
        for (int64_t r = 0; r < nt; r++) {
            const int64_t pi = g->qpos0 + t0 + r;
            for (int64_t c = 0; c < W; c++) {
                const int64_t pj = g->kpos0 + lo + c;
                if (pj > pi || pi - pj >= g->nl) sl[r * W + c] = -INFINITY;
            }
        }
    }
    if (gn > 0) {
        const double *gq = g->nolimit ? g->qr : g->qs, *gk = g->nolimit ? g->kr : g->kd;
        nl_gemm(NL_F64, 0, 1, nt, gn, D, g->scale, gq + (bh * T + t0) * D, D, gk + bh * S * D, D, 0.0, sg, gn);
        for (int64_t r = 0; r < nt; r++) {
            const int64_t pi = g->qpos0 + t0 + r;
            for (int64_t c = 0; c < gn; c++)
                if (pi - (g->kpos0 + c) < g->nl) sg[r * gn + c] = -INFINITY; /* inside the band: local score */
        }
    }
}

static void blk_fwd_slice(const lam_geom *g, int64_t bh, double *scr) {
    const int64_t T = g->T, S = g->S, Dv = g->Dv;
    for (int64_t t0 = 0; t0 < T; t0 += NL_LAMBDA_TILE) {
        const int64_t t1 = t0 + NL_LAMBDA_TILE < T ? t0 + NL_LAMBDA_TILE : T, nt = t1 - t0;
        int64_t lo, hi, gn;
        tile_range(g, t0, t1, &lo, &hi, &gn);
        const int64_t W = hi >= lo ? hi - lo + 1 : 0;
        double *sl = scr, *sg = scr + nt * W;
        tile_scores(g, bh, t0, nt, lo, W, gn, sl, sg);
        double *o = g->o + (bh * T + t0) * Dv, *lse = g->lse + bh * T + t0;
        for (int64_t r = 0; r < nt; r++) {
            /* the row's visible columns are contiguous: band [a, b) (i - n_local < j <= i) and global [0, gb)
             * (distance >= n_local); the masked ones (-inf from tile_scores) get probability 0 without an exp */
            const int64_t pi = g->qpos0 + t0 + r, base = g->kpos0 + lo;
            int64_t a = pi - g->nl + 1 - base, b = pi - base + 1, gb = pi - g->nl - g->kpos0 + 1;
            a = a < 0 ? 0 : a > W ? W : a;
            b = b < a ? a : b > W ? W : b;
            gb = gb < 0 ? 0 : gb > gn ? gn : gb;
            double *rl = sl + r * W, *rg = sg + r * gn;
            double mx = -INFINITY;
            for (int64_t c = a; c < b; c++) mx = rl[c] > mx ? rl[c] : mx;
            for (int64_t c = 0; c < gb; c++) mx = rg[c] > mx ? rg[c] : mx;
            for (int64_t c = 0; c < a; c++) rl[c] = 0;
            for (int64_t c = b; c < W; c++) rl[c] = 0;
            for (int64_t c = gb; c < gn; c++) rg[c] = 0;
            if (mx == -INFINITY) {
                lse[r] = -INFINITY;
                for (int64_t c = a; c < b; c++) rl[c] = 0;
                for (int64_t c = 0; c < gb; c++) rg[c] = 0;
                continue;
            }
            double z = 0;
            for (int64_t c = a; c < b; c++) z += (rl[c] = exp(rl[c] - mx));
            for (int64_t c = 0; c < gb; c++) z += (rg[c] = exp(rg[c] - mx));
            const double iz = 1.0 / z;
            for (int64_t c = a; c < b; c++) rl[c] *= iz;
            for (int64_t c = 0; c < gb; c++) rg[c] *= iz;
            lse[r] = mx + log(z);
        }
        if (W > 0) nl_gemm(NL_F64, 0, 0, nt, Dv, W, 1.0, sl, W, g->vd + (bh * S + lo) * Dv, Dv, 0.0, o, Dv);
        else for (int64_t i = 0; i < nt * Dv; i++) o[i] = 0;
        if (gn > 0) nl_gemm(NL_F64, 0, 0, nt, Dv, gn, 1.0, sg, gn, g->vd + bh * S * Dv, Dv, 1.0, o, Dv);
    }
}

/* ---------------- backward cores (accumulate into double buffers) ---------------- */
typedef struct {
    const lam_geom *g;
    const double *go;          /* (B,H,T,Dv) upstream gradient in double */
    double *dqr, *dqs;         /* (B,H,T,D) */
    double *dkr, *dkd;         /* (B,H,S,D) */
    double *dv;                /* (B,H,S,Dv) */
} lam_bwd;

static void ref_bwd_slice(const lam_bwd *a, int64_t bh, double *p) {
    const lam_geom *g = a->g;
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv;
    const double *qr = g->qr + bh * T * D, *qs = g->qs + bh * T * D, *kr = g->kr + bh * S * D, *kd = g->kd + bh * S * D;
    const double *v = g->vd + bh * S * Dv, *o = g->o + bh * T * Dv, *lse = g->lse + bh * T, *go = a->go + bh * T * Dv;
    double *dqr = a->dqr + bh * T * D, *dqs = a->dqs + bh * T * D, *dkr = a->dkr + bh * S * D, *dkd = a->dkd + bh * S * D;
    double *dv = a->dv + bh * S * Dv;
    for (int64_t t = 0; t < T; t++) {
        if (lse[t] == -INFINITY) continue;
        double Dt = 0;
        for (int64_t j = 0; j < Dv; j++) Dt += go[t * Dv + j] * o[t * Dv + j];
        for (int64_t s = 0; s < S; s++) {
            const int kind = lam_kind(g, g->qpos[t], g->kpos[s]);
            if (!kind) continue;
            const double *qa = kind == 1 ? qr + t * D : qs + t * D, *kb = kind == 1 ? kr + s * D : kd + s * D;
            double d = 0, dp = 0;
            for (int64_t j = 0; j < D; j++) d += qa[j] * kb[j];
            const double pr = exp(d * g->scale - lse[t]);
            for (int64_t j = 0; j < Dv; j++) {
                dp += go[t * Dv + j] * v[s * Dv + j];
                dv[s * Dv + j] += pr * go[t * Dv + j];
            }
            const double ds = pr * (dp - Dt) * g->scale;
            double *dqa = kind == 1 ? dqr + t * D : dqs + t * D, *dkb = kind == 1 ? dkr + s * D : dkd + s * D;
            for (int64_t j = 0; j < D; j++) {
                dqa[j] += ds * kb[j];
                dkb[j] += ds * qa[j];
            }
        }
    }
    (void)p;
}

static void blk_bwd_slice(const lam_bwd *a, int64_t bh, double *scr) {
    const lam_geom *g = a->g;
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv;
    for (int64_t t0 = 0; t0 < T; t0 += NL_LAMBDA_TILE) {
        const int64_t t1 = t0 + NL_LAMBDA_TILE < T ? t0 + NL_LAMBDA_TILE : T, nt = t1 - t0;
        int64_t lo, hi, gn;
        tile_range(g, t0, t1, &lo, &hi, &gn);
        const int64_t W = hi >= lo ? hi - lo + 1 : 0, ncol = W + gn;
        if (!ncol) continue;
        double *sl = scr, *sg = scr + nt * W, *dpl = scr + nt * ncol, *dpg = dpl + nt * W, *Dr = scr + 2 * nt * ncol;
        tile_scores(g, bh, t0, nt, lo, W, gn, sl, sg);
        const double *go = a->go + (bh * T + t0) * Dv, *o = g->o + (bh * T + t0) * Dv, *lse = g->lse + bh * T + t0;
        for (int64_t r = 0; r < nt; r++) {
            double s = 0;
            for (int64_t j = 0; j < Dv; j++) s += go[r * Dv + j] * o[r * Dv + j];
            Dr[r] = s;
            const double l = lse[r];
            for (int64_t c = 0; c < W; c++) sl[r * W + c] = l == -INFINITY ? 0 : exp(sl[r * W + c] - l);
            for (int64_t c = 0; c < gn; c++) sg[r * gn + c] = l == -INFINITY ? 0 : exp(sg[r * gn + c] - l);
        }
        /* dV += P^T dO ; dP = dO V^T */
        if (W > 0) {
            nl_gemm(NL_F64, 1, 0, W, Dv, nt, 1.0, sl, W, go, Dv, 1.0, a->dv + (bh * S + lo) * Dv, Dv);
            nl_gemm(NL_F64, 0, 1, nt, W, Dv, 1.0, go, Dv, g->vd + (bh * S + lo) * Dv, Dv, 0.0, dpl, W);
        }
        if (gn > 0) {
            nl_gemm(NL_F64, 1, 0, gn, Dv, nt, 1.0, sg, gn, go, Dv, 1.0, a->dv + bh * S * Dv, Dv);
            nl_gemm(NL_F64, 0, 1, nt, gn, Dv, 1.0, go, Dv, g->vd + bh * S * Dv, Dv, 0.0, dpg, gn);
        }
        /* dS = P (dP - D) (stored over dP) */
        for (int64_t r = 0; r < nt; r++) {
            for (int64_t c = 0; c < W; c++) dpl[r * W + c] = sl[r * W + c] * (dpl[r * W + c] - Dr[r]);
            for (int64_t c = 0; c < gn; c++) dpg[r * gn + c] = sg[r * gn + c] * (dpg[r * gn + c] - Dr[r]);
        }
        if (W > 0) {
            nl_gemm(NL_F64, 0, 0, nt, D, W, g->scale, dpl, W, g->kr + (bh * S + lo) * D, D, 1.0, a->dqr + (bh * T + t0) * D, D);
            nl_gemm(NL_F64, 1, 0, W, D, nt, g->scale, dpl, W, g->qr + (bh * T + t0) * D, D, 1.0, a->dkr + (bh * S + lo) * D, D);
        }
        if (gn > 0) { /* the global branch: stationary queries x unrotated keys, or rotated ones without a limit */
            const double *gq = g->nolimit ? g->qr : g->qs, *gk = g->nolimit ? g->kr : g->kd;
            double *dgq = g->nolimit ? a->dqr : a->dqs, *dgk = g->nolimit ? a->dkr : a->dkd;
            nl_gemm(NL_F64, 0, 0, nt, D, gn, g->scale, dpg, gn, gk + bh * S * D, D, 1.0, dgq + (bh * T + t0) * D, D);
            nl_gemm(NL_F64, 1, 0, gn, D, nt, g->scale, dpg, gn, gq + (bh * T + t0) * D, D, 1.0, dgk + bh * S * D, D);
        }
    }
}

/* scratch doubles per thread */
static int64_t scratch_elems(const lam_geom *g) {
    if (!g->blockwise) return g->S > 0 ? g->S : 1;
    int64_t G = g->ng - g->kpos0;
    if (G < 0) G = 0;
    if (G > g->S) G = g->S;
    int64_t W = NL_LAMBDA_TILE + g->nl - 1;
    if (W > g->S) W = g->S;
    return 2 * NL_LAMBDA_TILE * (W + G) + NL_LAMBDA_TILE + 1;
}

/* run fn over the B*H slices in parallel with per-thread scratch (BLAS single-threaded inside) */
typedef void (*slice_fn)(const void *arg, int64_t bh, double *scr);
static int run_slices(nl_ctx *c, int64_t nbh, int64_t per, slice_fn fn, const void *arg) {
    int nth = nl_get_num_threads();
    if (nth > nbh) nth = (int)nbh;
    if (nth < 1) nth = 1;
    double *scr = nl_scratch(c, (size_t)nth * (size_t)per * sizeof(double));
    if (!scr) return 0;
    if (nth == 1) {
        for (int64_t bh = 0; bh < nbh; bh++) fn(arg, bh, scr);
        return 1;
    }
    const int blas_saved = nl_blas_serial_begin();
#pragma omp parallel num_threads(nth)
    {
        double *my = scr + (size_t)omp_get_thread_num() * (size_t)per;
#pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < nbh; bh++) fn(arg, bh, my);
    }
    nl_blas_serial_end(blas_saved);
    return 1;
}
static void fwd_ref_w(const void *a, int64_t bh, double *s) { ref_fwd_slice(a, bh, s); }
static void fwd_blk_w(const void *a, int64_t bh, double *s) { blk_fwd_slice(a, bh, s); }
static void bwd_ref_w(const void *a, int64_t bh, double *s) { ref_bwd_slice(a, bh, s); }
static void bwd_blk_w(const void *a, int64_t bh, double *s) { blk_bwd_slice(a, bh, s); }

static void lam_backward(nl_ctx *c, nl_node *n) {
    lam_geom *g = n->saved;
    nl_tensor *gq = nl_grad(c, n->in[0]), *gk = nl_grad(c, n->in[1]), *gv = nl_grad(c, n->in[2]);
    if (!gq && !gk && !gv) return;
    const int64_t BH = g->B * g->H, T = g->T, S = g->S, D = g->D, Dv = g->Dv, h = g->h;
    lam_bwd a = {g, NULL, NULL, NULL, NULL, NULL, NULL};
    double *go = nl_scratch(c, (size_t)(BH * T * Dv + 1) * sizeof(double));
    a.dqr = nl_scratch(c, (size_t)(2 * BH * T * D + 1) * sizeof(double));
    a.dkr = nl_scratch(c, (size_t)(2 * BH * S * D + 1) * sizeof(double));
    a.dv = nl_scratch(c, (size_t)(BH * S * Dv + 1) * sizeof(double));
    if (!go || !a.dqr || !a.dkr || !a.dv) return;
    if (!to_double(c, nl_node_grad_out(n), go)) return;
    a.go = go;
    a.dqs = a.dqr + BH * T * D;
    a.dkd = a.dkr + BH * S * D;
    memset(a.dqr, 0, (size_t)(2 * BH * T * D) * sizeof(double));
    memset(a.dkr, 0, (size_t)(2 * BH * S * D) * sizeof(double));
    memset(a.dv, 0, (size_t)(BH * S * Dv) * sizeof(double));
    if (!run_slices(c, BH, scratch_elems(g) + g->T, g->blockwise ? bwd_blk_w : bwd_ref_w, &a)) return;
    /* un-rotate and accumulate into the gradients (contiguous, same shapes as the inputs) */
    double *tmp = nl_scratch(c, (size_t)(2 * D) * sizeof(double));
    if (!tmp) return;
    if (gq) {
        for (int64_t bh = 0; bh < BH; bh++)
            for (int64_t t = 0; t < T; t++) {
                const int64_t i = (bh * T + t) * D;
                rot(a.dqr + i, g->cq + t * h, g->sq + t * h, h, -1.0, tmp);
                rot(a.dqs + i, g->cl, g->sl, h, -1.0, tmp + D);
                if (gq->dtype == NL_F64) for (int64_t j = 0; j < D; j++) ((double *)gq->data)[i + j] += tmp[j] + tmp[D + j];
                else for (int64_t j = 0; j < D; j++) ((float *)gq->data)[i + j] += (float)(tmp[j] + tmp[D + j]);
            }
    }
    if (gk) {
        for (int64_t bh = 0; bh < BH; bh++)
            for (int64_t s = 0; s < S; s++) {
                const int64_t i = (bh * S + s) * D;
                rot(a.dkr + i, g->ck + s * h, g->sk + s * h, h, -1.0, tmp);
                if (gk->dtype == NL_F64) for (int64_t j = 0; j < D; j++) ((double *)gk->data)[i + j] += tmp[j] + a.dkd[i + j];
                else for (int64_t j = 0; j < D; j++) ((float *)gk->data)[i + j] += (float)(tmp[j] + a.dkd[i + j]);
            }
    }
    if (gv) {
        const int64_t nv = BH * S * Dv;
        if (gv->dtype == NL_F64) for (int64_t i = 0; i < nv; i++) ((double *)gv->data)[i] += a.dv[i];
        else for (int64_t i = 0; i < nv; i++) ((float *)gv->data)[i] += (float)a.dv[i];
    }
}

static nl_var *lam_op(nl_ctx *c, const char *name, int blockwise, nl_var *q, nl_var *k, nl_var *v, const int64_t *qpos,
                      const int64_t *kpos, const double *theta, nl_lm_infinite_cfg cfg) {
    NL_REQUIRE(q, k, v);
    if (q->val.ndim != 4 || k->val.ndim != 4 || v->val.ndim != 4)
        return nl_op_fail(NL_ESHAPE, name, "q, k, v must be [B,H,T,D], [B,H,S,D], [B,H,S,Dv]", q, k);
    const nl_dtype dt = q->val.dtype;
    if (k->val.dtype != dt || v->val.dtype != dt) return nl_op_fail(NL_EDTYPE, name, "q, k, v must share a dtype", q, v);
    const int64_t B = q->val.shape[0], H = q->val.shape[1], T = q->val.shape[2], D = q->val.shape[3];
    const int64_t S = k->val.shape[2], Dv = v->val.shape[3];
    if (k->val.shape[0] != B || k->val.shape[1] != H || k->val.shape[3] != D)
        return nl_op_fail(NL_ESHAPE, name, "k must be [B,H,S,D] with q's B, H, D", q, k);
    if (v->val.shape[0] != B || v->val.shape[1] != H || v->val.shape[2] != S)
        return nl_op_fail(NL_ESHAPE, name, "v must be [B,H,S,Dv] with k's B, H, S", k, v);
    if (D % 2) return nl_op_fail(NL_ESHAPE, name, "head dim D must be even (rotate_half pairing)", q, NULL);
    if (!qpos || !kpos || !theta) return nl_op_fail(NL_EINVAL, name, "qpos, kpos and theta are required", q, NULL);
    if (cfg.n_local < 1 || cfg.n_global < 0 || (cfg.limit < 0 && cfg.limit != NL_LM_INFINITE_NO_LIMIT)) {
        nl_set_error(NL_EINVAL, "%s: need n_local >= 1, n_global >= 0, limit >= 0 or NL_LM_INFINITE_NO_LIMIT (got %lld, %lld, %lld)", name,
                     (long long)cfg.n_local, (long long)cfg.n_global, (long long)cfg.limit);
        return NULL;
    }
    for (int64_t t = 0; t < T; t++)
        if (qpos[t] < 0 || (blockwise && qpos[t] != qpos[0] + t)) {
            nl_set_error(NL_EINVAL, "%s: query positions must be >= 0%s (qpos[%lld] = %lld)", name,
                         blockwise ? " and consecutive" : "", (long long)t, (long long)qpos[t]);
            return NULL;
        }
    for (int64_t s = 0; s < S; s++)
        if (kpos[s] < 0 || (blockwise && kpos[s] != kpos[0] + s)) {
            nl_set_error(NL_EINVAL, "%s: key positions must be >= 0%s (kpos[%lld] = %lld)", name,
                         blockwise ? " and consecutive" : "", (long long)s, (long long)kpos[s]);
            return NULL;
        }
    nl_var *out = nl_op_out(c, dt, 4, (int64_t[]){B, H, T, Dv});
    if (!out) return NULL;
    const int64_t BH = B * H, h = D / 2;
    lam_geom *g = nl_scratch(c, sizeof *g);
    if (!g) return NULL;
    memset(g, 0, sizeof *g);
    g->B = B; g->H = H; g->T = T; g->S = S; g->D = D; g->Dv = Dv; g->h = h;
    g->qpos0 = T ? qpos[0] : 0;
    g->kpos0 = S ? kpos[0] : 0;
    g->ng = cfg.n_global;
    g->nl = cfg.n_local > NL_LAMBDA_BIG ? NL_LAMBDA_BIG : cfg.n_local;
    g->L = cfg.limit < 0 ? 0 : cfg.limit;
    g->nolimit = cfg.limit < 0;
    g->scale = D ? 1.0 / sqrt((double)D) : 1.0;
    g->blockwise = blockwise;
    int64_t *qp = nl_scratch(c, (size_t)(T + S + 1) * sizeof *qp);
    g->cq = nl_scratch(c, (size_t)(2 * (T + S + 1) * h + 2) * sizeof(double));
    g->qr = nl_scratch(c, (size_t)(2 * BH * T * D + 1) * sizeof(double));
    g->kr = nl_scratch(c, (size_t)(2 * BH * S * D + 1) * sizeof(double));
    g->vd = nl_scratch(c, (size_t)(BH * S * Dv + 1) * sizeof(double));
    g->o = nl_scratch(c, (size_t)(BH * T * Dv + 1) * sizeof(double));
    g->lse = nl_scratch(c, (size_t)(BH * T + 1) * sizeof(double));
    if (!qp || !g->cq || !g->qr || !g->kr || !g->vd || !g->o || !g->lse) return NULL;
    memcpy(qp, qpos, (size_t)T * sizeof *qp);
    memcpy(qp + T, kpos, (size_t)S * sizeof *qp);
    g->qpos = qp;
    g->kpos = qp + T;
    g->sq = g->cq + T * h;
    g->ck = g->sq + T * h;
    g->sk = g->ck + S * h;
    g->cl = g->sk + S * h;
    g->sl = g->cl + h;
    g->qs = g->qr + BH * T * D;
    g->kd = g->kr + BH * S * D;
    trig_table(theta, h, g->qpos, T, g->cq, g->sq);
    trig_table(theta, h, g->kpos, S, g->ck, g->sk);
    trig_table(theta, h, &g->L, 1, g->cl, g->sl);
    double *qd = g->qs; /* unrotated q goes through qs's storage first */
    if (!to_double(c, &q->val, qd) || !to_double(c, &k->val, g->kd) || !to_double(c, &v->val, g->vd)) return NULL;
    double *tmp = nl_scratch(c, (size_t)(D + 1) * sizeof(double));
    if (!tmp) return NULL;
    for (int64_t bh = 0; bh < BH; bh++) {
        for (int64_t t = 0; t < T; t++) {
            const int64_t i = (bh * T + t) * D;
            rot(qd + i, g->cq + t * h, g->sq + t * h, h, 1.0, g->qr + i);
            rot(qd + i, g->cl, g->sl, h, 1.0, tmp);
            memcpy(qd + i, tmp, (size_t)D * sizeof(double)); /* qs = R_L q in place */
        }
        for (int64_t s = 0; s < S; s++) {
            const int64_t i = (bh * S + s) * D;
            rot(g->kd + i, g->ck + s * h, g->sk + s * h, h, 1.0, g->kr + i);
        }
    }
    if (!run_slices(c, BH, scratch_elems(g), blockwise ? fwd_blk_w : fwd_ref_w, g)) return NULL;
    const int64_t no = BH * T * Dv;
    if (dt == NL_F64) memcpy(out->val.data, g->o, (size_t)no * sizeof(double));
    else for (int64_t i = 0; i < no; i++) ((float *)out->val.data)[i] = (float)g->o[i];
    nl_var *in[3] = {q, k, v};
    nl_node *n = nl_op_record(c, name, out, lam_backward, 3, in);
    if (n) n->saved = g;
    return out;
}

nl_var *nl_lm_infinite_attention_ref(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, const int64_t *qpos, const int64_t *kpos,
                                const double *theta, nl_lm_infinite_cfg cfg) {
    return lam_op(c, "lambda_attention_ref", 0, q, k, v, qpos, kpos, theta, cfg);
}

nl_var *nl_lm_infinite_attention(nl_ctx *c, nl_var *q, nl_var *k, nl_var *v, const int64_t *qpos, const int64_t *kpos,
                            const double *theta, nl_lm_infinite_cfg cfg) {
    return lam_op(c, "lambda_attention", 1, q, k, v, qpos, kpos, theta, cfg);
}

/* ================================ decoding cache ================================ */
nl_status nl_lm_infinite_cache_init(nl_lm_infinite_cache *kc, int64_t B, int64_t H, int64_t D, int64_t Dv, const double *theta,
                               nl_lm_infinite_cfg cfg) {
    if (!kc) return nl_set_error(NL_EINVAL, "lambda_cache_init: kc is NULL");
    memset(kc, 0, sizeof *kc);
    if (B < 1 || H < 1 || D < 2 || D % 2 || Dv < 1)
        return nl_set_error(NL_ESHAPE, "lambda_cache_init: need B, H, Dv >= 1 and even D >= 2 (got B=%lld H=%lld D=%lld Dv=%lld)",
                            (long long)B, (long long)H, (long long)D, (long long)Dv);
    if (!theta) return nl_set_error(NL_EINVAL, "lambda_cache_init: theta is NULL");
    if (cfg.n_local < 1 || cfg.n_global < 0 || (cfg.limit < 0 && cfg.limit != NL_LM_INFINITE_NO_LIMIT) ||
        cfg.n_local > ((int64_t)1 << 32) || cfg.n_global > ((int64_t)1 << 32))
        return nl_set_error(NL_EINVAL, "lambda_cache_init: need 1 <= n_local <= 2^32, 0 <= n_global <= 2^32, limit >= 0 (got %lld, %lld, %lld)",
                            (long long)cfg.n_local, (long long)cfg.n_global, (long long)cfg.limit);
    kc->B = B; kc->H = H; kc->D = D; kc->Dv = Dv;
    kc->cfg = cfg;
    kc->n_slots = cfg.n_global + cfg.n_local;
    const size_t ns = (size_t)kc->n_slots, bh = (size_t)(B * H);
    kc->theta = malloc((size_t)(D / 2) * sizeof(double));
    kc->k = malloc(bh * ns * (size_t)D * sizeof(double));
    kc->kr = malloc(bh * ns * (size_t)D * sizeof(double));
    kc->v = malloc(bh * ns * (size_t)Dv * sizeof(double));
    kc->pos = malloc(ns * sizeof(int64_t));
    kc->scratch = malloc((ns + 5 * (size_t)D + (size_t)Dv + 4) * sizeof(double));
    if (!kc->theta || !kc->k || !kc->kr || !kc->v || !kc->pos || !kc->scratch) {
        nl_lm_infinite_cache_free(kc);
        return nl_set_error(NL_ENOMEM, "lambda_cache_init: out of memory (%lld slots x %lld heads)", (long long)ns, (long long)bh);
    }
    memcpy(kc->theta, theta, (size_t)(D / 2) * sizeof(double));
    nl_lm_infinite_cache_clear(kc);
    return NL_OK;
}

void nl_lm_infinite_cache_free(nl_lm_infinite_cache *kc) {
    if (!kc) return;
    free(kc->theta); free(kc->k); free(kc->kr); free(kc->v); free(kc->pos); free(kc->scratch);
    memset(kc, 0, sizeof *kc);
}

void nl_lm_infinite_cache_clear(nl_lm_infinite_cache *kc) {
    if (!kc || !kc->pos) return;
    for (int64_t i = 0; i < kc->n_slots; i++) kc->pos[i] = -1;
    kc->n_seen = 0;
    kc->next_pos = 0;
}

size_t nl_lm_infinite_cache_bytes(const nl_lm_infinite_cache *kc) {
    if (!kc || !kc->pos) return 0;
    const size_t ns = (size_t)kc->n_slots, bh = (size_t)(kc->B * kc->H);
    return sizeof *kc + (size_t)(kc->D / 2) * sizeof(double) + bh * ns * (size_t)(2 * kc->D + kc->Dv) * sizeof(double) +
           ns * sizeof(int64_t) + (ns + 5 * (size_t)kc->D + (size_t)kc->Dv + 4) * sizeof(double);
}

/* element (b, h, j) of a [B,H,n] or [B,H,1,n] tensor */
static int bh_view(const nl_tensor *t, int64_t B, int64_t H, int64_t n, int64_t st[3]) {
    if (t->ndim == 3 && t->shape[0] == B && t->shape[1] == H && t->shape[2] == n) {
        st[0] = t->stride[0]; st[1] = t->stride[1]; st[2] = t->stride[2];
        return 1;
    }
    if (t->ndim == 4 && t->shape[0] == B && t->shape[1] == H && t->shape[2] == 1 && t->shape[3] == n) {
        st[0] = t->stride[0]; st[1] = t->stride[1]; st[2] = t->stride[3];
        return 1;
    }
    return 0;
}
static inline double tget(const nl_tensor *t, int64_t off) {
    return t->dtype == NL_F64 ? ((const double *)t->data)[off] : (double)((const float *)t->data)[off];
}

nl_status nl_lm_infinite_cache_append(nl_lm_infinite_cache *kc, const nl_tensor *k, const nl_tensor *v, int64_t pos) {
    if (!kc || !kc->pos) return nl_set_error(NL_ESTATE, "lambda_cache_append: cache not initialised");
    int64_t sk[3], sv[3];
    char b1[64], b2[64];
    if (!k || !v || !bh_view(k, kc->B, kc->H, kc->D, sk) || !bh_view(v, kc->B, kc->H, kc->Dv, sv))
        return nl_set_error(NL_ESHAPE, "lambda_cache_append: k must be [B,H,D] = [%lld,%lld,%lld] and v [B,H,Dv] (Dv = %lld), got %s and %s",
                            (long long)kc->B, (long long)kc->H, (long long)kc->D, (long long)kc->Dv,
                            k ? nl_shape_str(k, b1, sizeof b1) : "NULL", v ? nl_shape_str(v, b2, sizeof b2) : "NULL");
    if (pos != kc->next_pos)
        return nl_set_error(NL_EINVAL, "lambda_cache_append: position %lld, expected %lld (positions must be consecutive from 0)",
                            (long long)pos, (long long)kc->next_pos);
    const int64_t ng = kc->cfg.n_global, nl = kc->cfg.n_local, D = kc->D, Dv = kc->Dv, h = D / 2, ns = kc->n_slots;
    const int64_t slot = pos < ng ? pos : ng + (pos - ng) % nl;
    double *c = kc->scratch + ns, *s = c + h;
    for (int64_t j = 0; j < h; j++) {
        c[j] = cos((double)pos * kc->theta[j]);
        s[j] = sin((double)pos * kc->theta[j]);
    }
    for (int64_t b = 0; b < kc->B; b++)
        for (int64_t hh = 0; hh < kc->H; hh++) {
            const int64_t bh = b * kc->H + hh;
            double *kk = kc->k + (bh * ns + slot) * D, *vv = kc->v + (bh * ns + slot) * Dv;
            for (int64_t j = 0; j < D; j++) kk[j] = tget(k, b * sk[0] + hh * sk[1] + j * sk[2]);
            for (int64_t j = 0; j < Dv; j++) vv[j] = tget(v, b * sv[0] + hh * sv[1] + j * sv[2]);
            rot(kk, c, s, h, 1.0, kc->kr + (bh * ns + slot) * D);
        }
    kc->pos[slot] = pos;
    kc->n_seen++;
    kc->next_pos = pos + 1;
    return NL_OK;
}

nl_status nl_lm_infinite_cache_attend(nl_lm_infinite_cache *kc, const nl_tensor *q, int64_t pos, nl_tensor *out) {
    if (!kc || !kc->pos) return nl_set_error(NL_ESTATE, "lambda_cache_attend: cache not initialised");
    int64_t sq[3], so[3];
    char b1[64], b2[64];
    if (!q || !out || !bh_view(q, kc->B, kc->H, kc->D, sq) || !bh_view(out, kc->B, kc->H, kc->Dv, so))
        return nl_set_error(NL_ESHAPE, "lambda_cache_attend: q must be [B,H,D] = [%lld,%lld,%lld] and out [B,H,Dv] (Dv = %lld), got %s and %s",
                            (long long)kc->B, (long long)kc->H, (long long)kc->D, (long long)kc->Dv,
                            q ? nl_shape_str(q, b1, sizeof b1) : "NULL", out ? nl_shape_str(out, b2, sizeof b2) : "NULL");
    if (pos < kc->next_pos - 1)
        return nl_set_error(NL_EINVAL, "lambda_cache_attend: query position %lld is before the last cached position %lld",
                            (long long)pos, (long long)(kc->next_pos - 1));
    const int64_t ng = kc->cfg.n_global, nl = kc->cfg.n_local, D = kc->D, Dv = kc->Dv, h = D / 2, ns = kc->n_slots;
    double *sc = kc->scratch, *c = sc + ns, *s = c + h, *cl = s + h, *sl = cl + h;
    double *qr = sl + h, *qs = qr + D, *qd = qs + D, *o = qd + D; /* scratch: ns + 5D + Dv (+4) doubles */
    for (int64_t j = 0; j < h; j++) {
        c[j] = cos((double)pos * kc->theta[j]);
        s[j] = sin((double)pos * kc->theta[j]);
        cl[j] = cos((double)kc->cfg.limit * kc->theta[j]);
        sl[j] = sin((double)kc->cfg.limit * kc->theta[j]);
    }
    const double scale = 1.0 / sqrt((double)D);
    for (int64_t b = 0; b < kc->B; b++)
        for (int64_t hh = 0; hh < kc->H; hh++) {
            const int64_t bh = b * kc->H + hh;
            for (int64_t j = 0; j < D; j++) qd[j] = tget(q, b * sq[0] + hh * sq[1] + j * sq[2]);
            rot(qd, c, s, h, 1.0, qr);
            rot(qd, cl, sl, h, 1.0, qs);
            const double *kr = kc->kr + bh * ns * D, *kk = kc->k + bh * ns * D, *vv = kc->v + bh * ns * Dv;
            double mx = -INFINITY;
            for (int64_t i = 0; i < ns; i++) {
                const int64_t pj = kc->pos[i];
                double d = -INFINITY;
                if (pj >= 0 && pj <= pos) {
                    const double *a = NULL, *kb = NULL;
                    if (pos - pj < nl) { a = qr; kb = kr + i * D; }
                    else if (pj < ng && kc->cfg.limit < 0) { a = qr; kb = kr + i * D; } /* no limit */
                    else if (pj < ng) { a = qs; kb = kk + i * D; }
                    if (a) {
                        d = 0;
                        for (int64_t j = 0; j < D; j++) d += a[j] * kb[j];
                        d *= scale;
                    }
                }
                sc[i] = d;
                if (d > mx) mx = d;
            }
            for (int64_t j = 0; j < Dv; j++) o[j] = 0;
            if (mx > -INFINITY) {
                double z = 0;
                for (int64_t i = 0; i < ns; i++) {
                    if (sc[i] == -INFINITY) continue;
                    const double p = exp(sc[i] - mx);
                    z += p;
                    const double *vr = vv + i * Dv;
                    for (int64_t j = 0; j < Dv; j++) o[j] += p * vr[j];
                }
                for (int64_t j = 0; j < Dv; j++) o[j] /= z;
            }
            for (int64_t j = 0; j < Dv; j++) {
                const int64_t off = b * so[0] + hh * so[1] + j * so[2];
                if (out->dtype == NL_F64) ((double *)out->data)[off] = o[j];
                else ((float *)out->data)[off] = (float)o[j];
            }
        }
    return NL_OK;
}
