/* Row-block kernel matrices over MPI ranks (kernels.h: nl_kernel_row_split, nl_kernel_matrix_dist;
 * docs/distributed.md "Sharded kernel matrices"). Every rank holds its rows only: memory ~ N^2 / P per rank. */
#include "kernels/kernels_internal.h"
#include "nnlab/dist.h"
#include <stdlib.h>
#include <string.h>

static int64_t panel_rows(const nl_kernel_cfg *cfg, int64_t n1) {
    int64_t R = cfg->tile_rows ? cfg->tile_rows : 256;
    return R > n1 ? (n1 > 0 ? n1 : 1) : R;
}

void nl_kernel_row_split(const nl_kernel_cfg *cfg, int64_t n1, int64_t n2, int sym, int by_work, int P, int rank,
                         int64_t *r0, int64_t *r1) {
    *r0 = *r1 = 0;
    if (n1 <= 0 || P < 1 || rank < 0 || rank >= P) return;
    const int64_t R = panel_rows(cfg, n1), np = (n1 + R - 1) / R;
    /* weight of panel k: its rows (by_work: times the columns its tiles span; sym: from the panel's first row on) */
#define PANEL_W(k) ((double)(((k) + 1) * R < n1 ? R : n1 - (k) * R) * (by_work ? (double)(sym ? n1 - (k) * R : n2) : 1.0))
    double W = 0;
    for (int64_t k = 0; k < np; k++) W += PANEL_W(k);
    int64_t bound[2];
    for (int e = 0; e < 2; e++) {
        const int q = rank + e;
        if (q == 0 || q == P) { bound[e] = q == 0 ? 0 : np; continue; }
        const double target = W * (double)q / (double)P;
        double cum = 0, prev = 0;
        int64_t k = 0;
        for (; k < np && cum < target; k++) {
            prev = cum;
            cum += PANEL_W(k);
        }
        if (k > 0 && target - prev < cum - target) k--; /* the nearer panel boundary */
        bound[e] = k;
    }
#undef PANEL_W
    *r0 = bound[0] * R < n1 ? bound[0] * R : n1;
    *r1 = bound[1] * R < n1 ? bound[1] * R : n1;
    if (*r1 < *r0) *r1 = *r0;
}

/* Transpose-copy: dst[i * ldd + k] = src[k * lds + i] for k < kc, i < nr (es-byte elements), 64 x 64 blocks. */
static void tcopy(char *dst, int64_t ldd, const char *src, int64_t lds, int64_t kc, int64_t nr, size_t es) {
    for (int64_t i0 = 0; i0 < nr; i0 += 64)
        for (int64_t k0 = 0; k0 < kc; k0 += 64) {
            int64_t ie = i0 + 64 < nr ? i0 + 64 : nr, ke = k0 + 64 < kc ? k0 + 64 : kc;
            for (int64_t i = i0; i < ie; i++)
                for (int64_t k = k0; k < ke; k++)
                    memcpy(dst + es * (size_t)(i * ldd + k), src + es * (size_t)(k * lds + i), es);
        }
}

/* Symmetric case: entry (i, j), j < r0, is the mirrored tile entry (j, i) that the rank owning row j computed and
 * holds in its block (row j, column i >= its r1 > j). Rank s sends to every later rank t its block's columns
 * [r0_t, r1_t) in chunks of rows; t transposes them into its columns [r0_s, r1_s). Order: each rank first receives
 * from ranks 0, 1, ..., me - 1, then sends to me + 1, ..., P - 1 (blocking; deadlock-free). */
static nl_status exchange(int64_t n1, const int64_t *bd, nl_dtype dt, void *outs[2], int64_t ld) {
    const int P = nl_dist_size(), me = nl_dist_rank();
    const size_t es = nl_dtype_size(dt);
    int64_t a, b, maxr = 0;
    for (int q = 0; q < P; q++)
        if (bd[q + 1] - bd[q] > maxr) maxr = bd[q + 1] - bd[q];
    const int64_t r0 = bd[me], r1 = bd[me + 1], nr = r1 - r0;
    if (maxr == 0) return NL_OK;
    int64_t c = ((int64_t)1 << 20) / maxr; /* chunk: at most 1M elements (8 MB in f64) */
    if (c < 1) c = 1;
    char *buf = malloc(es * (size_t)(c * maxr)); /* (c, maxr) elements: one chunk of rows of a block */
    nl_status st = nl_dist_agree(buf ? NL_OK : nl_set_error(NL_ENOMEM, "kernel_matrix_dist: out of memory for a %lld x %lld exchange buffer", (long long)c, (long long)maxr));
    if (st) { free(buf); return st; }
    for (int s = 0; s < me && !st; s++) {
        a = bd[s]; b = bd[s + 1];
        if (a == b || nr == 0) continue;
        for (int o = 0; o < 2 && !st; o++) {
            if (!outs[o]) continue;
            for (int64_t k0 = a; k0 < b && !st; k0 += c) {
                int64_t kc = b - k0 < c ? b - k0 : c;
                if (!(st = nl_dist_recv(buf, es * (size_t)(kc * nr), s, 11)))
                    tcopy((char *)outs[o] + es * (size_t)k0, ld, buf, nr, kc, nr, es);
            }
        }
    }
    for (int t = me + 1; t < P && !st; t++) {
        a = bd[t]; b = bd[t + 1];
        const int64_t nt = b - a;
        if (nt == 0 || nr == 0) continue;
        for (int o = 0; o < 2 && !st; o++) {
            if (!outs[o]) continue;
            for (int64_t k0 = 0; k0 < nr && !st; k0 += c) {
                int64_t kc = nr - k0 < c ? nr - k0 : c;
                for (int64_t k = 0; k < kc; k++)
                    memcpy(buf + es * (size_t)(k * nt), (char *)outs[o] + es * (size_t)((k0 + k) * ld + a), es * (size_t)nt);
                st = nl_dist_send(buf, es * (size_t)(kc * nt), t, 11);
            }
        }
    }
    free(buf);
    return st;
}

nl_status nl_kernel_matrix_dist(const nl_kernel_cfg *cfg, const double *x1, int64_t n1, const double *x2, int64_t n2,
                                int64_t d, int64_t r0, int64_t r1, int which, nl_dtype out_dtype, void *nngp, void *ntk,
                                int64_t ld) {
    const int P = nl_dist_size(), me = nl_dist_rank(), sym = x2 == NULL;
    /* every rank's block (exact: integers below 2^53 summed with zeros), checked to cover [0, n1) in rank order */
    double *bdd = calloc((size_t)P + 1, sizeof(double));
    int64_t *bd = calloc((size_t)P + 1, sizeof(int64_t)); /* (P + 1) block bounds */
    nl_status st = nl_dist_agree(bdd && bd ? NL_OK : nl_set_error(NL_ENOMEM, "kernel_matrix_dist: out of memory"));
    if (!st) {
        bdd[me + 1] = (double)r1;
        if (me == 0) bdd[0] = (double)r0;
        st = nl_dist_allreduce_f64(bdd, P + 1);
    }
    for (int q = 0; q <= P && !st; q++) {
        bd[q] = (int64_t)bdd[q];
        if ((q == 0 && bd[0] != 0) || (q > 0 && bd[q] < bd[q - 1]) || (q == P && bd[P] != n1))
            st = nl_set_error(NL_EINVAL, "kernel_matrix_dist: the ranks' row blocks do not cover rows [0, %lld) in rank order (rank %d ends at %lld)",
                              (long long)n1, q - 1, (long long)bd[q]);
    }
    if (!st && r0 != bd[me]) /* contiguous: my block starts where the previous rank's ends */
        st = nl_set_error(NL_EINVAL, "kernel_matrix_dist: rank %d starts at row %lld, rank %d ends at %lld", me, (long long)r0,
                          me - 1, (long long)bd[me]);
    if (!st) st = nl_kernel_matrix_rows(cfg, x1, n1, x2, n2, d, r0, r1, which, out_dtype, nngp, ntk, ld, sym && P > 1);
    if (!(st = nl_dist_agree(st)) && sym && P > 1) {
        void *outs[2] = {(which & NL_KERNEL_NNGP) ? nngp : NULL, (which & NL_KERNEL_NTK) ? ntk : NULL};
        st = nl_dist_agree(exchange(n1, bd, out_dtype, outs, ld ? ld : n1));
    }
    free(bdd);
    free(bd);
    return st;
}
