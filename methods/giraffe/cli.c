/* nnlab giraffe — the Giraffe method's command (methods/giraffe/README.md): `freqs` prints the RoPE frequency table
 * of a context-extension variant (plain / linear / power / truncated / xPos; lib/transformer/rope.h). Entry point:
 * nl_giraffe_cli(argc, argv) with the arguments after "giraffe" (or its alias "rope"). */
#include "giraffe/giraffe.h"
#include "nnlab/cli.h"
#include "transformer/rope.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help_freqs(FILE *f) {
    fprintf(f,
            "usage: nnlab giraffe freqs --dim D [--base B] [--variant V] [--scale S] [--power K] [--truncate T]\n"
            "\n"
            "Print the RoPE frequencies theta_j (j = 0 .. D/2-1), one per line as \"j theta_j\", of a variant:\n"
            "  plain      base^(-2j/D)                    (default)\n"
            "  linear     theta_j / S                     (position interpolation)\n"
            "  power      theta_j / S * (1 - 2j/D)^K\n"
            "  truncated  theta_j / S, then kept if >= 2pi/T, 2pi/(16T) if >= 2pi/(8T), else 0\n"
            "  xpos       theta_j / S (the rotation; the decay bases zeta_j are printed as a third column)\n"
            "defaults: --base 10000 --scale 1 --power 0.5 --truncate 2048. methods/giraffe/README.md.\n");
}

static void help_giraffe(FILE *f) {
    fprintf(f,
            "usage: nnlab giraffe freqs [options]   RoPE frequency tables of the Giraffe context-extension variants\n"
            "\n"
            "The variants themselves live in the transformer library (lib/transformer/rope.h) and are used by\n"
            "`nnlab lm train|eval --rope VARIANT`; the ledger entry is `nnlab repro giraffe`. `nnlab rope` is an alias\n"
            "of `nnlab giraffe`. methods/giraffe/README.md has the protocol and the numbers.\n");
}

int nl_giraffe_cli(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        help_giraffe(argc < 1 ? stderr : stdout);
        return argc < 1 ? NL_CLI_USAGE : NL_CLI_OK;
    }
    if (strcmp(argv[0], "freqs")) return nl_cli_usage_error("giraffe", "unknown subcommand '%s' (freqs)", argv[0]);
    const char *cmd = "giraffe freqs", *variant = "plain";
    int64_t dim = 0;
    double base = 10000, scale = 1, power = 0.5, truncate = 2048;
    nl_cli_opt opts[] = {
        {"--dim", NL_OPT_INT, &dim, 2, 1 << 20, 0, 0, "D"},
        {"--base", NL_OPT_DOUBLE, &base, 1, 1e300, 1, 0, "B"},
        {"--variant", NL_OPT_STR, &variant, 0, 0, 0, 0, "V"},
        {"--scale", NL_OPT_DOUBLE, &scale, 0, 1e300, 1, 0, "S"},
        {"--power", NL_OPT_DOUBLE, &power, 0, 1e300, 1, 0, "K"},
        {"--truncate", NL_OPT_DOUBLE, &truncate, 0, 1e300, 1, 0, "T"},
    };
    enum { N = sizeof opts / sizeof opts[0] };
    const char *pos[1];
    int n_pos, help;
    int rc = nl_cli_parse(cmd, argc - 1, argv + 1, opts, N, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) { help_freqs(stdout); return NL_CLI_OK; }
    if (!nl_cli_seen(opts, N, "--dim")) return nl_cli_usage_error(cmd, "--dim D is required");
    if (dim % 2) return nl_cli_usage_error(cmd, "--dim must be even (got %lld)", (long long)dim);
    nl_rope_config c = nl_rope_config_default();
    if (nl_rope_variant_parse(variant, &c.variant)) return nl_cli_usage_error(cmd, "--variant: %s", nl_last_error());
    if (c.variant == NL_ROPE_PLAIN && scale != 1)
        return nl_cli_usage_error(cmd, "--scale needs a scaled variant (linear|power|truncated|xpos), not plain");
    c.base = base;
    c.scale_train = c.scale_eval = scale;
    c.power = power;
    c.truncate = truncate;
    double *th = malloc(sizeof(double) * (size_t)(dim / 2)), *z = malloc(sizeof(double) * (size_t)(dim / 2));
    if (!th || !z) { free(th); free(z); fprintf(stderr, "nnlab giraffe freqs: out of memory\n"); return NL_CLI_FAIL; }
    if (nl_rope_freqs(&c, (int)dim, th) || nl_rope_xpos_zeta((int)dim, z)) {
        free(th); free(z);
        fprintf(stderr, "nnlab giraffe freqs: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    for (int64_t j = 0; j < dim / 2; j++) {
        if (c.variant == NL_ROPE_XPOS) printf("%lld %.9g %.9g\n", (long long)j, th[j], z[j]);
        else printf("%lld %.9g\n", (long long)j, th[j]);
    }
    free(th);
    free(z);
    return NL_CLI_OK;
}
