/* nnlab nngp-ntk — NNGP / NTK matrices of infinitely wide fully connected networks between the rows of CSV
 * files (methods/nngp_ntk/README.md). Entry point: nl_nngp_ntk_cli(argc, argv) with the arguments after "nngp-ntk" (or its alias "kernel"). */
#include "nngp_ntk/nngp_ntk.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nnlab/cli.h"
#include "nnlab/base.h"
#include "nnlab/data.h"
#include "nnlab/dist.h"
#include "kernels/kernels.h"

int nl_nngp_ntk_cli(int argc, char **argv);

static void help_kernel(FILE *f) {
    fprintf(f,
            "usage: nnlab nngp-ntk nngp|ntk --x A.csv [--y B.csv] [options]\n"
            "\n"
            "The infinite-width NNGP or NTK of a fully connected network (neural-tangents conventions) between the rows\n"
            "of A and the rows of B (or of A against itself), printed as CSV: row i, column j = K(a_i, b_j), \"%%.17g\".\n"
            "The network is Dense -> act -> ... -> Dense with --depth hidden layers (depth 1 = Dense-act-Dense); the input\n"
            "kernel is x.x'/d. CSV input: numbers separated by commas, one point per row, an optional header line,\n"
            "'#' comments (docs/data.md).\n"
            "\n"
            "  --x FILE           points A (n x d)\n"
            "  --y FILE           points B (m x d; default: A)\n"
            "  --depth L          hidden layers (default 1)\n"
            "  --act NAME         relu (default), leaky:SLOPE, abs, identity, erf, erf:A,B,C (A*erf(B*x)+C), tanh, gelu,\n"
            "                     sin (relu, leaky, abs, identity and erf in closed form; tanh, gelu, sin by quadrature)\n"
            "  --sw X             weight standard deviation (default 1)\n"
            "  --sb X             bias standard deviation (default 0)\n"
            "  --sw-out X         readout layer weight std (default: --sw)\n"
            "  --sb-out X         readout layer bias std (default: --sb)\n"
            "  --param P          ntk (default) or sp (standard parametrisation: same NNGP, width-dependent NTK)\n"
            "  --width N          sp only: the finite hidden width\n"
            "  --deg N            quadrature degree for tanh / gelu / sin (default 25)\n"
            "  --quad S           polar (default) or grid (neural-tangents' Gauss-Hermite grid)\n"
            "  --out FILE         write the matrix to FILE (default: stdout)\n"
            "  --format F         csv (default) or npy (float64, C order; the default when FILE ends in .npy)\n"
            "  --threads T        threads (default: NL_NUM_THREADS or all cores)\n"
            "\n"
            "Under mpirun (an -DNL_MPI=ON build, docs/distributed.md) each rank computes and holds a block of rows and\n"
            "writes it into the one --out FILE (required) with MPI-IO; the file is byte for byte the 1-process one.\n"
            "  --split S          rows (default: ~N/P rows, N^2/P memory per rank) or work (equal compute for a\n"
            "                     symmetric matrix; the last rank then holds ~N/sqrt(P) rows)\n"
            "  --timing           print each rank's CPU and wall seconds of reading, computing (with the exchange\n"
            "                     between ranks) and writing on stderr\n"
            "\n"
            "Exit status: 0 success, 1 bad input file or computation error, 2 bad command line.\n"
            "\n"
            "example: nnlab nngp-ntk ntk --depth 2 --act erf --sb 0.1 --x train.csv --y test.csv > K.csv\n");
}

int nl_nngp_ntk_cli(int argc, char **argv) {
    const char *cmd = "nngp-ntk";
    const char *xpath = NULL, *ypath = NULL, *act = "relu", *param = "ntk", *quad = "polar", *out = "-", *format = NULL, *split = "rows";
    int64_t depth = 1, width = 0, deg = 25, threads = 0;
    int timing = 0;
    double sw = 1.0, sb = 0.0, sw_out = -1.0, sb_out = -1.0;
    nl_cli_opt opts[] = {
        {"--x", NL_OPT_STR, &xpath, 0, 0, 0, 0, "FILE"},
        {"--y", NL_OPT_STR, &ypath, 0, 0, 0, 0, "FILE"},
        {"--depth", NL_OPT_INT, &depth, 0, 100000, 0, 0, "L"},
        {"--act", NL_OPT_STR, &act, 0, 0, 0, 0, "NAME"},
        {"--sw", NL_OPT_DOUBLE, &sw, 0, 1e6, 0, 0, "X"},
        {"--sb", NL_OPT_DOUBLE, &sb, 0, 1e6, 0, 0, "X"},
        {"--sw-out", NL_OPT_DOUBLE, &sw_out, 0, 1e6, 0, 0, "X"},
        {"--sb-out", NL_OPT_DOUBLE, &sb_out, 0, 1e6, 0, 0, "X"},
        {"--param", NL_OPT_STR, &param, 0, 0, 0, 0, "ntk|sp"},
        {"--width", NL_OPT_INT, &width, 1, 1e12, 0, 0, "N"},
        {"--deg", NL_OPT_INT, &deg, 1, 200, 0, 0, "N"},
        {"--quad", NL_OPT_STR, &quad, 0, 0, 0, 0, "polar|grid"},
        {"--out", NL_OPT_STR, &out, 0, 0, 0, 0, "FILE"},
        {"--threads", NL_OPT_INT, &threads, 1, 4096, 0, 0, "T"},
        {"--format", NL_OPT_STR, &format, 0, 0, 0, 0, "csv|npy"},
        {"--split", NL_OPT_STR, &split, 0, 0, 0, 0, "rows|work"},
        {"--timing", NL_OPT_FLAG, &timing, 0, 0, 0, 0, NULL},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0, help = 0;
    int rc = nl_cli_parse(cmd, argc, argv, opts, n_opts, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_kernel(stdout);
        return NL_CLI_OK;
    }
    if (n_pos != 1) return nl_cli_usage_error(cmd, "say which kernel: nngp or ntk");
    int which;
    if (!strcmp(pos[0], "nngp")) which = NL_KERNEL_NNGP;
    else if (!strcmp(pos[0], "ntk")) which = NL_KERNEL_NTK;
    else return nl_cli_usage_error(cmd, "unknown kernel '%s' (nngp or ntk)", pos[0]);
    if (!xpath) return nl_cli_usage_error(cmd, "--x FILE is required");

    nl_kernel_cfg cfg;
    nl_kernel_cfg_default(&cfg);
    if (nl_kernel_act_parse(&cfg, act)) return nl_cli_usage_error(cmd, "--act: %s", nl_last_error());
    cfg.depth = (int)depth;
    cfg.sw = sw;
    cfg.sb = sb;
    cfg.sw_out = opts[6].seen ? sw_out : -1.0;
    cfg.sb_out = opts[7].seen ? sb_out : -1.0;
    cfg.quad_deg = (int)deg;
    if (!strcmp(param, "ntk")) cfg.param = NL_KPARAM_NTK;
    else if (!strcmp(param, "sp")) cfg.param = NL_KPARAM_SP;
    else return nl_cli_usage_error(cmd, "--param: '%s' is not ntk or sp", param);
    if (opts[9].seen && cfg.param != NL_KPARAM_SP) return nl_cli_usage_error(cmd, "--width is only used with --param sp");
    if (cfg.param == NL_KPARAM_SP && depth > 0 && !opts[9].seen)
        return nl_cli_usage_error(cmd, "--param sp needs --width N (the finite hidden width; the SP NTK grows with it)");
    cfg.sp_width = width;
    if (!strcmp(quad, "polar")) cfg.quad_scheme = NL_KQUAD_POLAR;
    else if (!strcmp(quad, "grid")) cfg.quad_scheme = NL_KQUAD_GRID;
    else return nl_cli_usage_error(cmd, "--quad: '%s' is not polar or grid", quad);
    if (nl_kernel_cfg_check(&cfg)) return nl_cli_usage_error(cmd, "%s", nl_last_error());
    nl_cli_threads(threads, opts[13].seen);
    size_t ol = strlen(out);
    if (!format) format = ol >= 4 && !strcmp(out + ol - 4, ".npy") ? "npy" : "csv";
    if (strcmp(format, "csv") && strcmp(format, "npy")) return nl_cli_usage_error(cmd, "--format: '%s' is not csv or npy", format);
    if (strcmp(split, "rows") && strcmp(split, "work")) return nl_cli_usage_error(cmd, "--split: '%s' is not rows or work", split);
    const int npy = !strcmp(format, "npy"), P = nl_dist_size();
    if (P > 1 && !strcmp(out, "-"))
        return nl_cli_usage_error(cmd, "--out FILE is required on %d MPI ranks (each rank writes its rows into it)", P);

    double tw[4], tc[4]; /* wall / CPU at: start, inputs read, matrix computed, file written */
    tw[0] = nl_time(); tc[0] = (double)clock() / CLOCKS_PER_SEC;
    nl_csv a = {0}, b = {0};
    /* on several ranks every rank reads the files; a failure on one (a node without the file) ends all of them
     * (nl_dist_agree), instead of leaving the others in the first collective */
    nl_status rs = nl_csv_read(xpath, &a, 0);
    if (rs) fprintf(stderr, "nnlab nngp-ntk: --x: %s\n", nl_last_error());
    if (!rs && ypath && (rs = nl_csv_read(ypath, &b, 0))) fprintf(stderr, "nnlab nngp-ntk: --y: %s\n", nl_last_error());
    if (!rs && ypath && b.cols != a.cols) {
        fprintf(stderr, "nnlab nngp-ntk: %s has %lld columns but %s has %lld: the points must have the same dimension\n",
                xpath, (long long)a.cols, ypath, (long long)b.cols);
        rs = NL_ESHAPE;
    }
    rc = NL_CLI_FAIL;
    double *K = NULL;
    if (P > 1) rs = nl_dist_agree(rs);
    if (rs) goto done;
    tw[1] = nl_time(); tc[1] = (double)clock() / CLOCKS_PER_SEC;
    int64_t n = a.rows, m = ypath ? b.rows : a.rows, r0 = 0, r1 = n; /* this rank's rows [r0, r1) */
    if (P > 1) nl_kernel_row_split(&cfg, n, m, !ypath, !strcmp(split, "work"), P, nl_dist_rank(), &r0, &r1);
    K = malloc(sizeof(double) * (size_t)((r1 - r0) * m + 1)); /* (r1 - r0, m) */
    nl_status s = K ? NL_OK : nl_set_error(NL_ENOMEM, "out of memory for a %lld x %lld block", (long long)(r1 - r0), (long long)m);
    if (P > 1) {
        if (!(s = nl_dist_agree(s)))
            s = nl_kernel_matrix_dist(&cfg, a.data, n, ypath ? b.data : NULL, m, a.cols, r0, r1, which, NL_F64,
                                      which == NL_KERNEL_NNGP ? K : NULL, which == NL_KERNEL_NTK ? K : NULL, 0);
    } else if (!s)
        s = nl_kernel_matrix(&cfg, a.data, n, ypath ? b.data : NULL, m, a.cols, which, NL_F64,
                             which == NL_KERNEL_NNGP ? K : NULL, which == NL_KERNEL_NTK ? K : NULL, 0);
    tw[2] = nl_time(); tc[2] = (double)clock() / CLOCKS_PER_SEC;
    for (int64_t k = 0; !s && k < (r1 - r0) * m; k++)
        if (!isfinite(K[k]))
            s = nl_set_error(NL_ENONFINITE, "entry (%lld, %lld) is not finite (%g): inputs or hyperparameters too large",
                             (long long)(r0 + k / m), (long long)(k % m), K[k]);
    if (P > 1) {
        nl_status own = s;
        if (!s) s = nl_dist_agree(s); /* a rank's non-finite entry stops all */
        else nl_dist_agree(s);
        if (own && !strstr(nl_last_error(), "dist: rank")) fprintf(stderr, "nnlab nngp-ntk: %s\n", nl_last_error());
        if (s) goto done;
        s = nl_nngp_ntk_write_rows(out, npy, n, m, r0, r1, K);
        if (s) {
            if (nl_dist_rank() == 0 || !strstr(nl_last_error(), "dist: rank")) fprintf(stderr, "nnlab nngp-ntk: %s\n", nl_last_error());
            goto done;
        }
    } else {
        if (!s) s = npy ? nl_nngp_ntk_write_npy(out, n, m, K) : nl_csv_write(out, n, m, K, NULL);
        if (s) {
            fprintf(stderr, "nnlab nngp-ntk: %s\n", nl_last_error());
            goto done;
        }
    }
    tw[3] = nl_time(); tc[3] = (double)clock() / CLOCKS_PER_SEC;
    if (timing)
        fprintf(stderr, "nnlab nngp-ntk: rank %d of %d, rows [%lld, %lld): CPU s read %.3f compute %.3f write %.3f; wall s %.3f %.3f %.3f\n",
                nl_dist_rank(), P, (long long)r0, (long long)r1, tc[1] - tc[0], tc[2] - tc[1], tc[3] - tc[2], tw[1] - tw[0],
                tw[2] - tw[1], tw[3] - tw[2]);
    rc = NL_CLI_OK;
done:
    free(K);
    nl_csv_free(&a);
    nl_csv_free(&b);
    return rc;
}
