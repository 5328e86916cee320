/* nnlab nngp-ntk — NNGP / NTK matrices of infinitely wide fully connected networks between the rows of CSV
 * files (methods/nngp_ntk/README.md). Entry point: nl_nngp_ntk_cli(argc, argv) with the arguments after "nngp-ntk" (or its alias "kernel"). */
#include "nngp_ntk/nngp_ntk.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nnlab/cli.h"
#include "nnlab/base.h"
#include "nnlab/data.h"
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
            "  --out FILE         write the CSV to FILE (default: stdout)\n"
            "  --threads T        threads (default: NL_NUM_THREADS or all cores)\n"
            "\n"
            "Exit status: 0 success, 1 bad input file or computation error, 2 bad command line.\n"
            "\n"
            "example: nnlab nngp-ntk ntk --depth 2 --act erf --sb 0.1 --x train.csv --y test.csv > K.csv\n");
}

int nl_nngp_ntk_cli(int argc, char **argv) {
    const char *cmd = "nngp-ntk";
    const char *xpath = NULL, *ypath = NULL, *act = "relu", *param = "ntk", *quad = "polar", *out = "-";
    int64_t depth = 1, width = 0, deg = 25, threads = 0;
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

    nl_csv a = {0}, b = {0};
    if (nl_csv_read(xpath, &a, 0)) {
        fprintf(stderr, "nnlab nngp-ntk: --x: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    if (ypath && nl_csv_read(ypath, &b, 0)) {
        fprintf(stderr, "nnlab nngp-ntk: --y: %s\n", nl_last_error());
        nl_csv_free(&a);
        return NL_CLI_FAIL;
    }
    rc = NL_CLI_FAIL;
    double *K = NULL;
    if (ypath && b.cols != a.cols) {
        fprintf(stderr, "nnlab nngp-ntk: %s has %lld columns but %s has %lld: the points must have the same dimension\n",
                xpath, (long long)a.cols, ypath, (long long)b.cols);
        goto done;
    }
    int64_t n = a.rows, m = ypath ? b.rows : a.rows;
    K = malloc(sizeof(double) * (size_t)n * (size_t)m);
    if (!K) {
        fprintf(stderr, "nnlab nngp-ntk: out of memory for a %lld x %lld matrix\n", (long long)n, (long long)m);
        goto done;
    }
    nl_status s = nl_kernel_matrix(&cfg, a.data, n, ypath ? b.data : NULL, m, a.cols, which, NL_F64,
                                   which == NL_KERNEL_NNGP ? K : NULL, which == NL_KERNEL_NTK ? K : NULL, 0);
    if (s) {
        fprintf(stderr, "nnlab nngp-ntk: %s\n", nl_last_error());
        goto done;
    }
    for (int64_t k = 0; k < n * m; k++)
        if (!isfinite(K[k])) {
            fprintf(stderr, "nnlab nngp-ntk: entry (%lld, %lld) is not finite (%g): inputs or hyperparameters too large\n",
                    (long long)(k / m), (long long)(k % m), K[k]);
            goto done;
        }
    if (nl_csv_write(out, n, m, K, NULL)) {
        fprintf(stderr, "nnlab nngp-ntk: %s\n", nl_last_error());
        goto done;
    }
    rc = NL_CLI_OK;
done:
    free(K);
    nl_csv_free(&a);
    nl_csv_free(&b);
    return rc;
}
