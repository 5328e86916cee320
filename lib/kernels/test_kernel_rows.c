/* Row blocks of kernel matrices (kernels.h: nl_kernel_matrix_rows, nl_kernel_row_split, nl_kernel_matrix_dist on one
 * process): every block is bit for bit the same rows of nl_kernel_matrix's result, for symmetric and cross
 * matrices, closed-form and quadrature activations, f64 and f32, 1 and 2 threads, aligned and unaligned blocks;
 * upper_only leaves the columns left of the block untouched; the split covers the rows in whole, balanced panels. */
#include "nltest.h"
#include "nnlab/extend.h"
#include "kernels/kernels.h"
#include <string.h>

static void test_blocks_bitwise(void) {
    const int64_t n = 100, m = 41, d = 7;
    double *X = nlt_randn_f64(11, n * d, 1.0), *Y = nlt_randn_f64(12, m * d, 1.0);
    const char *acts[3] = {"relu", "erf", "tanh"};
    const int64_t blocks[8][2] = {{0, 100}, {0, 37}, {37, 61}, {61, 100}, {5, 6}, {99, 100}, {48, 48}, {16, 64}};
    const size_t sentinel = 0xA5;
    for (int a = 0; a < 3; a++)
        for (int th = 1; th <= 2; th++)
            for (int sym = 0; sym < 2; sym++)
                for (int f32 = 0; f32 < (a == 2 ? 1 : 2); f32++) { /* quadrature (slow): f64 only */
                    nl_set_num_threads(th);
                    nl_kernel_cfg c;
                    nl_kernel_cfg_default(&c);
                    NLT_OK(nl_kernel_act_parse(&c, acts[a]));
                    c.depth = 3; c.sw = 1.3; c.sb = 0.2;
                    c.tile_rows = 16; c.tile_cols = 24;
                    if (a == 2) c.quad_deg = 4;
                    const int64_t n2 = sym ? n : m;
                    const nl_dtype dt = f32 ? NL_F32 : NL_F64;
                    const size_t es = f32 ? 4 : 8;
                    char *F = malloc(es * (size_t)(n * n2)), *G = malloc(es * (size_t)(n * n2)); /* (n, n2) */
                    NLT_OK(nl_kernel_matrix(&c, X, n, sym ? NULL : Y, n2, d, NL_KERNEL_NNGP | NL_KERNEL_NTK, dt, F, G, 0));
                    for (int b = 0; b < 8; b++)
                        for (int up = 0; up < 2; up++) {
                            int64_t r0 = blocks[b][0], r1 = blocks[b][1], ld = n2 + 3, nr = r1 - r0;
                            char *B = malloc(es * (size_t)(nr * ld + 1)), *T = malloc(es * (size_t)(nr * ld + 1)); /* (nr, ld) */
                            memset(B, (int)sentinel, es * (size_t)(nr * ld + 1));
                            memset(T, (int)sentinel, es * (size_t)(nr * ld + 1));
                            NLT_OK(nl_kernel_matrix_rows(&c, X, n, sym ? NULL : Y, n2, d, r0, r1, NL_KERNEL_NNGP | NL_KERNEL_NTK,
                                                         dt, B, T, ld, up));
                            int64_t bad = -1, untouched_bad = -1;
                            const int64_t c0 = up && sym ? r0 : 0; /* first column the call must write */
                            for (int64_t i = 0; i < nr && bad < 0; i++) {
                                if (memcmp(B + es * (size_t)(i * ld + c0), F + es * (size_t)((r0 + i) * n2 + c0), es * (size_t)(n2 - c0)) ||
                                    memcmp(T + es * (size_t)(i * ld + c0), G + es * (size_t)((r0 + i) * n2 + c0), es * (size_t)(n2 - c0)))
                                    bad = i;
                                for (size_t k = 0; k < es * (size_t)c0; k++) /* left of the block: untouched */
                                    if ((unsigned char)B[es * (size_t)(i * ld) + k] != sentinel) untouched_bad = i;
                                for (size_t k = es * (size_t)n2; k < es * (size_t)ld; k++) /* the ld padding: untouched */
                                    if ((unsigned char)B[es * (size_t)(i * ld) + k] != sentinel) untouched_bad = i;
                            }
                            NLT_CHECK(bad < 0, "%s th %d %s %s rows [%lld, %lld) upper_only %d: row %lld differs from the full matrix",
                                      acts[a], th, sym ? "sym" : "cross", f32 ? "f32" : "f64", (long long)r0, (long long)r1, up,
                                      (long long)(r0 + bad));
                            NLT_CHECK(untouched_bad < 0, "%s rows [%lld, %lld) upper_only %d: row %lld written outside its columns",
                                      acts[a], (long long)r0, (long long)r1, up, (long long)(r0 + untouched_bad));
                            free(B); free(T);
                        }
                    free(F); free(G);
                }
    nl_set_num_threads(2);
    free(X); free(Y);
}

/* With the default tiles and more rows than a panel: the blocks of nl_kernel_row_split, and the 1-process
 * nl_kernel_matrix_dist (all rows), equal the full matrix. */
static void test_split_and_dist(void) {
    const int64_t n = 700, d = 5;
    double *X = nlt_randn_f64(21, n * d, 1.0);
    nl_kernel_cfg c;
    nl_kernel_cfg_default(&c);
    c.depth = 2; c.sb = 0.1;
    double *F = malloc(sizeof(double) * (size_t)(n * n)), *B = malloc(sizeof(double) * (size_t)(n * n)); /* (n, n) */
    NLT_OK(nl_kernel_matrix(&c, X, n, NULL, n, d, NL_KERNEL_NTK, NL_F64, NULL, F, 0));
    memset(B, 0, sizeof(double) * (size_t)(n * n));
    int64_t r0, r1;
    nl_kernel_row_split(&c, n, n, 1, 0, 1, 0, &r0, &r1);
    NLT_CHECK(r0 == 0 && r1 == n, "one rank: rows [%lld, %lld)", (long long)r0, (long long)r1);
    NLT_OK(nl_kernel_matrix_dist(&c, X, n, NULL, n, d, r0, r1, NL_KERNEL_NTK, NL_F64, NULL, B, 0));
    NLT_CHECK(!memcmp(B, F, sizeof(double) * (size_t)(n * n)), "nl_kernel_matrix_dist (1 process) != nl_kernel_matrix");
    NLT_CHECK(nl_kernel_matrix_dist(&c, X, n, NULL, n, d, 0, n - 1, NL_KERNEL_NTK, NL_F64, NULL, B, 0) == NL_EINVAL,
              "blocks that do not cover the rows are refused");
    /* splits: contiguous, whole panels of 256 (3 panels here), balanced, empty ranks when P > panels */
    for (int sym = 0; sym < 4; sym++)
        for (int P = 1; P <= 6; P++) {
            int64_t prev = 0;
            for (int q = 0; q < P; q++) {
                nl_kernel_row_split(&c, n, sym & 1 ? n : 300, sym & 1, sym >> 1, P, q, &r0, &r1);
                NLT_CHECK(r0 == prev && r1 >= r0 && (r0 % 256 == 0 || r0 == n), "P %d rank %d: [%lld, %lld) after %lld", P, q,
                          (long long)r0, (long long)r1, (long long)prev);
                prev = r1;
                NLT_OK(nl_kernel_matrix_rows(&c, X, n, NULL, n, d, r0, r1, NL_KERNEL_NTK, NL_F64, NULL, B, 0, 0));
                NLT_CHECK(!memcmp(B, F + r0 * n, sizeof(double) * (size_t)((r1 - r0) * n)), "P %d rank %d block differs", P, q);
            }
            NLT_CHECK(prev == n, "P %d: the blocks end at %lld, not %lld", P, (long long)prev, (long long)n);
        }
    /* balance, symmetric, 64 panels of 16 rows over 4 ranks: by rows, 256 rows each; by work, each rank's
     * upper-tile work within one panel of W / 4 */
    c.tile_rows = 16;
    const int64_t N = 1024;
    double W = (double)N * (double)(N + 16) / 2, panel = 16.0 * N;
    for (int q = 0; q < 4; q++) {
        nl_kernel_row_split(&c, N, N, 1, 0, 4, q, &r0, &r1);
        NLT_CHECK(r0 == 256 * q && r1 == 256 * (q + 1), "by rows: rank %d of 4 has [%lld, %lld)", q, (long long)r0, (long long)r1);
        nl_kernel_row_split(&c, N, N, 1, 1, 4, q, &r0, &r1);
        double w = 0;
        for (int64_t i = r0; i < r1; i += 16) w += 16.0 * (double)(N - i);
        NLT_CHECK(fabs(w - W / 4) <= panel, "rank %d of 4: work %.0f vs %.0f (panel %.0f)", q, w, W / 4, panel);
    }
    NLT_CHECK(nl_kernel_matrix_rows(&c, X, n, NULL, n, d, 5, 4, NL_KERNEL_NTK, NL_F64, NULL, B, 0, 0) == NL_EINVAL, "r1 < r0");
    NLT_CHECK(nl_kernel_matrix_rows(&c, X, n, NULL, n, d, 0, n + 1, NL_KERNEL_NTK, NL_F64, NULL, B, 0, 0) == NL_EINVAL, "r1 > n");
    free(X); free(F); free(B);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_blocks_bitwise);
    NLT_RUN(test_split_and_dist);
    return nlt_finish();
}
