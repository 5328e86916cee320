/* Kernel matrices (tiled: GEMM for the input Gram, then the recursion row by row, in parallel) and the naive
 * per-pair reference. */
#include "kernels/kernels_internal.h"
#include "nnlab/dist.h"
#include "nnlab/ops.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================================================
 * Kernel matrices
 * ====================================================================================================== */
static inline void store_row(void *out, nl_dtype dt, int64_t off, const double *src, int64_t n) {
    if (dt == NL_F64) memcpy((double *)out + off, src, sizeof(double) * (size_t)n);
    else {
        float *o = (float *)out + off;
        for (int64_t j = 0; j < n; j++) o[j] = (float)src[j];
    }
}

static inline void store_one(void *out, nl_dtype dt, int64_t off, double v) {
    if (dt == NL_F64) ((double *)out)[off] = v;
    else ((float *)out)[off] = (float)v;
}

static nl_status diag_alloc(kdiag *dg, int L, int64_t n) {
    dg->n = n;
    size_t m = (size_t)(L > 0 ? L : 1) * (size_t)(n > 0 ? n : 1);
    dg->P = malloc(3 * m * sizeof(double));
    if (!dg->P) return nl_set_error(NL_ENOMEM, "kernel: out of memory for the diagonal chains (%d layers x %lld points)", L, (long long)n);
    dg->Q = dg->P + m;
    dg->R = dg->Q + m;
    return NL_OK;
}

static void row_norms(const double *x, int64_t n, int64_t d, double *q0) {
#pragma omp parallel for schedule(static) if (n * d > PAR_WORK)
    for (int64_t i = 0; i < n; i++) {
        const double *r = x + i * d;
        double s = 0;
        for (int64_t k = 0; k < d; k++) s += r[k] * r[k];
        q0[i] = s / (double)d;
    }
}

/* Everything one tile needs. */
typedef struct kjob {
    const kplan *p;
    const kdiag *d1, *d2;
    const double *x1, *x2, *q01;
    int64_t n1, n2, d, R, C, ld;
    int sym, want_s, want_t;
    int64_t r0, r1, cmin; /* only entries (i, j) with r0 <= i < r1, j >= cmin are written, at (i - r0) * ld + j */
    nl_dtype dt;
    void *nngp, *ntk;
} kjob;

/* Tile (i0, j0): GEMM for the input Gram, the recursion row by row, and the writes (symmetric case: entries
 * on and above the diagonal directly, the strictly upper ones mirrored). `par`: use OpenMP inside the tile
 * (called outside any parallel region, multithreaded BLAS); otherwise the tile runs on the calling thread. */
static void kernel_tile(const kjob *jb, int64_t i0, int64_t j0, double *Sb, double *Tb, int par) {
    const kplan *p = jb->p;
    int64_t R = jb->R, C = jb->C, ld = jb->ld, r0 = jb->r0, r1 = jb->r1;
    int64_t rn = jb->n1 - i0 < R ? jb->n1 - i0 : R, cn = jb->n2 - j0 < C ? jb->n2 - j0 : C;
    int sym = jb->sym;
    nl_gemm(NL_F64, 0, 1, rn, cn, jb->d, 1.0 / (double)jb->d, jb->x1 + i0 * jb->d, jb->d, jb->x2 + j0 * jb->d, jb->d,
            0.0, Sb, C);
    if (sym)
        for (int64_t i = 0; i < rn; i++) {
            int64_t gi = i0 + i;
            if (gi >= j0 && gi < j0 + cn) Sb[i * C + gi - j0] = jb->q01[gi]; /* diagonal = the chains' start */
        }
    /* A tile of a panel above the row block (sym) reaches the block only through its mirrored entries: the recursion
     * runs on the columns that are rows of the block only (it is elementwise, so the bits do not change; the GEMM
     * above stays the whole tile's, whose bits could depend on its shape). */
    int64_t cl = 0, ch = cn;
    if (i0 + rn <= r0) {
        cl = r0 > j0 ? r0 - j0 : 0;
        ch = r1 - j0 < cn ? r1 - j0 : cn;
        if (ch < cl) ch = cl;
    }
    par = par && rn * (ch - cl) * (p->L + 1) * elem_cost(p) > PAR_WORK;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < rn; i++) {
        int64_t gi = i0 + i;
        int64_t jd = (sym && gi >= j0 + cl && gi < j0 + ch) ? gi - j0 - cl : -1;
        double *S = Sb + i * C + cl, *T = Tb ? Tb + i * C + cl : NULL;
        nl_krow_kernel(p, S, T, ch - cl, jb->d1, gi, jb->d2, j0 + cl, jd);
        if (gi < r0 || gi >= r1) continue;
        S -= cl;
        T = T ? T - cl : NULL;
        int64_t js = sym ? (gi > j0 ? gi - j0 : 0) : 0;
        if (js < cn) {
            if (jb->want_s) store_row(jb->nngp, jb->dt, (gi - r0) * ld + j0 + js, S + js, cn - js);
            if (jb->want_t) store_row(jb->ntk, jb->dt, (gi - r0) * ld + j0 + js, T + js, cn - js);
        }
    }
    if (!sym) return;
    /* mirror the strictly upper entries of the tile, in 32 x 32 blocks */
#pragma omp parallel for schedule(static) if (par && rn * cn > PAR_WORK)
    for (int64_t jb0 = cl; jb0 < ch; jb0 += 32) {
        int64_t je = jb0 + 32 < ch ? jb0 + 32 : ch;
        for (int64_t ib = 0; ib < rn; ib += 32) {
            int64_t ie = ib + 32 < rn ? ib + 32 : rn;
            for (int64_t j = jb0; j < je; j++) {
                int64_t gj = j0 + j;
                if (gj < r0 || gj >= r1) continue;
                for (int64_t i = ib; i < ie; i++) {
                    int64_t gi = i0 + i;
                    if (gj <= gi || gi < jb->cmin) continue;
                    if (jb->want_s) store_one(jb->nngp, jb->dt, (gj - r0) * ld + gi, Sb[i * C + j]);
                    if (jb->want_t) store_one(jb->ntk, jb->dt, (gj - r0) * ld + gi, Tb[i * C + j]);
                }
            }
        }
    }
}

/* Whether tile (i0, j0) writes an entry (i, j) with r0 <= i < r1, j >= cmin (see kernel_tile). */
static int tile_hits(const kjob *jb, int64_t i0, int64_t j0) {
    int64_t rn = jb->n1 - i0 < jb->R ? jb->n1 - i0 : jb->R, cn = jb->n2 - j0 < jb->C ? jb->n2 - j0 : jb->C;
    int64_t a = i0 > jb->r0 ? i0 : jb->r0, b = i0 + rn < jb->r1 ? i0 + rn : jb->r1;
    if (a < b && (!jb->sym || a < j0 + cn)) return 1; /* direct entries (sym: columns >= the row >= r0 >= cmin) */
    if (!jb->sym) return 0;
    int64_t lo = j0 > jb->r0 ? j0 : jb->r0, hi = j0 + cn < jb->r1 ? j0 + cn : jb->r1; /* mirrored rows */
    int64_t c0 = i0 > jb->cmin ? i0 : jb->cmin, c1 = hi - 1 < i0 + rn ? hi - 1 : i0 + rn;
    return lo < hi && c0 < c1;
}

/* ---- sharding over MPI ranks (nnlab/dist.h, docs/distributed.md) ----
 * Tile t is computed by rank t % P; every entry is written by one tile only, so rank 0 receives, tile by tile in
 * order, exactly the entries the tile wrote (its upper part row by row; in the symmetric case also the mirrored
 * strictly-lower part) and copies them in. The bits are those of one process with the same tiles. */

/* Calls f(row, col0, cols) for every row segment tile (i0, j0) writes. */
static void tile_segments(const kjob *jb, int64_t i0, int64_t j0, void (*f)(void *, int64_t, int64_t, int64_t), void *ud) {
    int64_t rn = jb->n1 - i0 < jb->R ? jb->n1 - i0 : jb->R, cn = jb->n2 - j0 < jb->C ? jb->n2 - j0 : jb->C;
    for (int64_t gi = i0; gi < i0 + rn; gi++) {
        int64_t a = jb->sym && gi > j0 ? gi : j0;
        if (a < j0 + cn) f(ud, gi, a, j0 + cn - a);
    }
    if (!jb->sym) return;
    for (int64_t gj = j0; gj < j0 + cn; gj++) { /* mirrored entries (gj, gi), gi < gj */
        int64_t e = gj < i0 + rn ? gj : i0 + rn;
        if (e > i0) f(ud, gj, i0, e - i0);
    }
}

typedef struct { const kjob *jb; char *buf; size_t pos; int unpack; } kpack;

static void pack_seg(void *ud, int64_t row, int64_t c0, int64_t n) {
    kpack *k = ud;
    const size_t es = nl_dtype_size(k->jb->dt), len = es * (size_t)n;
    void *outs[2] = {k->jb->want_s ? k->jb->nngp : NULL, k->jb->want_t ? k->jb->ntk : NULL};
    for (int o = 0; o < 2; o++) {
        if (!outs[o]) continue;
        char *at = (char *)outs[o] + es * (size_t)(row * k->jb->ld + c0);
        if (k->buf) {
            if (k->unpack) memcpy(at, k->buf + k->pos, len);
            else memcpy(k->buf + k->pos, at, len);
        }
        k->pos += len;
    }
}

/* Bring every tile computed on ranks > 0 into rank 0's output. */
static nl_status kernel_collect(const kjob *jb, const int64_t *tl, int64_t ntiles) {
    const int P = nl_dist_size(), me = nl_dist_rank();
    nl_status st = NL_OK;
    char *buf = NULL;
    size_t cap = 0;
    for (int64_t t = 0; t < ntiles && !st; t++) {
        int owner = (int)(t % P);
        if (owner == 0 || (me != 0 && me != owner)) continue;
        kpack k = {jb, NULL, 0, me == 0};
        tile_segments(jb, tl[2 * t], tl[2 * t + 1], pack_seg, &k); /* size */
        if (k.pos > cap) {
            free(buf);
            cap = k.pos;
            if (!(buf = malloc(cap))) return nl_set_error(NL_ENOMEM, "kernel_matrix: out of memory for a tile message");
        }
        size_t n = k.pos;
        k.buf = buf;
        k.pos = 0;
        if (me == 0) {
            if (!(st = nl_dist_recv(buf, n, owner, 7))) tile_segments(jb, tl[2 * t], tl[2 * t + 1], pack_seg, &k);
        } else {
            tile_segments(jb, tl[2 * t], tl[2 * t + 1], pack_seg, &k);
            st = nl_dist_send(buf, n, 0, 7);
        }
    }
    free(buf);
    return st;
}

/* Rows [r0, r1) of the matrix (entries with j >= cmin) into outputs of (r1 - r0, ld); shard: the round-robin tiles
 * of nl_dist_set_kernel_shard, gathered on rank 0 (r0 = 0, r1 = n1, cmin = 0 only). */
static nl_status kernel_compute(const nl_kernel_cfg *cfg, const double *x1, int64_t n1, const double *x2, int64_t n2,
                                int64_t d, int which, nl_dtype out_dtype, void *nngp, void *ntk, int64_t ld, int64_t r0,
                                int64_t r1, int64_t cmin, int shard_ok) {
    nl_status st = nl_kernel_cfg_check(cfg);
    if (st) return st;
    int sym = x2 == NULL;
    if (sym) {
        if (n2 != n1 && n2 != 0)
            return nl_set_error(NL_EINVAL, "kernel_matrix: x2 == NULL (symmetric) but n2 = %lld != n1 = %lld", (long long)n2, (long long)n1);
        x2 = x1;
        n2 = n1;
    }
    if (n1 < 0 || n2 < 0 || d < 1) return nl_set_error(NL_EINVAL, "kernel_matrix: bad sizes n1 = %lld, n2 = %lld, d = %lld", (long long)n1, (long long)n2, (long long)d);
    if (d > INT32_MAX || n1 > INT32_MAX || n2 > INT32_MAX) return nl_set_error(NL_EINVAL, "kernel_matrix: sizes exceed the BLAS int range");
    if ((which & ~(NL_KERNEL_NNGP | NL_KERNEL_NTK)) || !which)
        return nl_set_error(NL_EINVAL, "kernel_matrix: which = %d must be NL_KERNEL_NNGP, NL_KERNEL_NTK or both", which);
    if (out_dtype != NL_F64 && out_dtype != NL_F32) return nl_set_error(NL_EDTYPE, "kernel_matrix: output dtype must be f32 or f64");
    int want_s = which & NL_KERNEL_NNGP, want_t = (which & NL_KERNEL_NTK) != 0;
    if ((want_s && !nngp) || (want_t && !ntk)) return nl_set_error(NL_EINVAL, "kernel_matrix: an output buffer asked for is NULL");
    if (n1 > 0 && !x1) return nl_set_error(NL_EINVAL, "kernel_matrix: x1 is NULL");
    if (ld == 0) ld = n2;
    if (ld < n2) return nl_set_error(NL_EINVAL, "kernel_matrix: ld = %lld < n2 = %lld", (long long)ld, (long long)n2);
    if (r0 < 0 || r1 < r0 || r1 > n1)
        return nl_set_error(NL_EINVAL, "kernel_matrix_rows: rows [%lld, %lld) outside [0, %lld)", (long long)r0, (long long)r1, (long long)n1);
    if (n1 == 0 || n2 == 0 || r0 == r1) return NL_OK;

    kplan p;
    void *pmem = malloc(nl_kplan_bytes(cfg));
    if (!pmem) return nl_set_error(NL_ENOMEM, "kernel_matrix: out of memory");
    st = nl_kplan_init(&p, cfg, NULL, 0, d, pmem);
    if (st) { free(pmem); return st; }
    int L = p.L;
    kdiag d1 = {0}, d2 = {0};
    int64_t R = cfg->tile_rows ? cfg->tile_rows : 256, C = cfg->tile_cols ? cfg->tile_cols : 1024;
    if (R > n1) R = n1;
    if (C > n2) C = n2;
    /* tiles: row panels of R rows; columns from the panel's first row on in the symmetric case */
    int64_t ntiles = 0;
    for (int64_t i0 = 0; i0 < n1; i0 += R) ntiles += (n2 - (sym ? i0 : 0) + C - 1) / C;
    const int nth = nl_get_num_threads();
    /* Many tiles: one OpenMP loop over tiles, each thread with its own buffers and single-threaded BLAS (alternating
     * multithreaded BLAS and OpenMP loops tile after tile lets one pool's threads spin while the other needs the
     * cores). Few tiles: tiles in turn, multithreaded BLAS, OpenMP inside each tile. */
    int outer = nth > 1 && ntiles >= 2 * nth;
    const char *mode = getenv("NL_KERNEL_TILE_MODE"); /* "inner" / "outer": override, for benchmarks */
    if (mode && !strcmp(mode, "inner")) outer = 0;
    if (mode && !strcmp(mode, "outer")) outer = nth > 1;
    int nbuf = outer ? nth : 1;
    double *q01 = malloc(sizeof(double) * (size_t)n1), *q02 = sym ? q01 : malloc(sizeof(double) * (size_t)n2);
    double *Sb = malloc(sizeof(double) * (size_t)(R * C) * (size_t)nbuf);
    double *Tb = want_t ? malloc(sizeof(double) * (size_t)(R * C) * (size_t)nbuf) : NULL;
    int64_t *tl = malloc(sizeof(int64_t) * 2 * (size_t)ntiles);
    if (!q01 || !q02 || !Sb || (want_t && !Tb) || !tl) {
        st = nl_set_error(NL_ENOMEM, "kernel_matrix: out of memory for %d tile buffers of %lld x %lld", nbuf, (long long)R, (long long)C);
        goto done;
    }
    if ((st = diag_alloc(&d1, L, n1))) goto done;
    if (sym) d2 = d1;
    else if ((st = diag_alloc(&d2, L, n2))) goto done;
    row_norms(x1, n1, d, q01);
    if (!sym) row_norms(x2, n2, d, q02);
    nl_kdiag_fill(&p, &d1, q01, 1);
    if (!sym) nl_kdiag_fill(&p, &d2, q02, 1);
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < n1; i0 += R)
        for (int64_t j0 = sym ? i0 : 0; j0 < n2; j0 += C) { tl[2 * k] = i0; tl[2 * k + 1] = j0; k++; }
    kjob jb = {&p, &d1, &d2, x1, x2, q01, n1, n2, d, R, C, ld, sym, want_s, want_t, r0, r1, cmin, out_dtype, nngp, ntk};
    if (r0 > 0 || r1 < n1 || cmin > 0) { /* a row block: the tiles that write into it, whole (same bits) */
        int64_t m = 0;
        for (int64_t t = 0; t < ntiles; t++)
            if (tile_hits(&jb, tl[2 * t], tl[2 * t + 1])) { tl[2 * m] = tl[2 * t]; tl[2 * m + 1] = tl[2 * t + 1]; m++; }
        ntiles = m; /* `outer` stays the whole matrix's choice (same BLAS threading, same bits) */
    }
    const int shard = shard_ok && nl_dist_kernel_shard(), np_ = shard ? nl_dist_size() : 1, me = shard ? nl_dist_rank() : 0;
    if (shard) { /* this rank's tiles only: t % P == rank (round robin balances the shorter symmetric panels) */
        int64_t m = 0;
        for (int64_t t = me; t < ntiles; t += np_) { tl[2 * m] = tl[2 * t]; tl[2 * m + 1] = tl[2 * t + 1]; m++; }
        ntiles = m; /* `outer` stays the one-process choice: the same BLAS threading, so the same bits */
    }
    if (outer) {
        const int blas_saved = nl_blas_serial_begin();
#pragma omp parallel num_threads(nth)
        {
            size_t off = (size_t)omp_get_thread_num() * (size_t)(R * C);
            double *S = Sb + off, *T = Tb ? Tb + off : NULL;
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < ntiles; t++) kernel_tile(&jb, tl[2 * t], tl[2 * t + 1], S, T, 0);
        }
        nl_blas_serial_end(blas_saved);
    } else {
        for (int64_t t = 0; t < ntiles; t++) kernel_tile(&jb, tl[2 * t], tl[2 * t + 1], Sb, Tb, 1);
    }
    if (shard) { /* the full tile list again, then the tiles of ranks > 0 to rank 0 */
        int64_t all = 0;
        for (int64_t i0 = 0; i0 < n1; i0 += R)
            for (int64_t j0 = sym ? i0 : 0; j0 < n2; j0 += C) { tl[2 * all] = i0; tl[2 * all + 1] = j0; all++; }
        st = kernel_collect(&jb, tl, all);
    }
done:
    free(Sb); free(Tb); free(q01); free(tl);
    if (!sym) { free(q02); free(d2.P); }
    free(d1.P);
    free(pmem);
    return st;
}

nl_status nl_kernel_matrix(const nl_kernel_cfg *cfg, const double *x1, int64_t n1, const double *x2, int64_t n2,
                           int64_t d, int which, nl_dtype out_dtype, void *nngp, void *ntk, int64_t ld) {
    return kernel_compute(cfg, x1, n1, x2, n2, d, which, out_dtype, nngp, ntk, ld, 0, n1 > 0 ? n1 : 0, 0, 1);
}

nl_status nl_kernel_matrix_rows(const nl_kernel_cfg *cfg, const double *x1, int64_t n1, const double *x2, int64_t n2,
                                int64_t d, int64_t r0, int64_t r1, int which, nl_dtype out_dtype, void *nngp, void *ntk,
                                int64_t ld, int upper_only) {
    return kernel_compute(cfg, x1, n1, x2, n2, d, which, out_dtype, nngp, ntk, ld, r0, r1, upper_only && !x2 ? r0 : 0, 0);
}

/* ======================================================================================================
 * Reference for one pair
 * ====================================================================================================== */
nl_status nl_kernel_pair(const nl_kernel_cfg *cfg, const double *x, const double *y, int64_t d, double out[2]) {
    nl_status st = nl_kernel_cfg_check(cfg);
    if (st) return st;
    if (!x || !y || !out || d < 1) return nl_set_error(NL_EINVAL, "kernel_pair: NULL argument or d < 1");
    kplan p;
    int L = cfg->depth;
    void *pmem = malloc(nl_kplan_bytes(cfg));
    double *q = malloc(sizeof(double) * (size_t)(2 * (L > 0 ? L : 1)));
    if (!pmem || !q) { free(pmem); free(q); return nl_set_error(NL_ENOMEM, "kernel_pair: out of memory"); }
    st = nl_kplan_init(&p, cfg, NULL, 0, d, pmem);
    if (!st) {
        double xx = 0, yy = 0, xy = 0;
        for (int64_t k = 0; k < d; k++) { xx += x[k] * x[k]; yy += y[k] * y[k]; xy += x[k] * y[k]; }
        double Px = xx / (double)d, Py = yy / (double)d;
        for (int l = 0; l < L; l++) {
            q[l] = NL_MADD(p.sw2[l], Px, p.sb2[l]);
            q[L + l] = NL_MADD(p.sw2[l], Py, p.sb2[l]);
            Px = nl_kact_diag(&p, q[l], NULL);
            Py = nl_kact_diag(&p, q[L + l], NULL);
        }
        int coinc = memcmp(x, y, sizeof(double) * (size_t)d) == 0;
        nl_kelem_forward(&p, xy / (double)d, q, 1, q + L, 1, coinc, 1, &out[0], &out[1]);
    }
    free(pmem);
    free(q);
    return st;
}
