/* Command-line flags of the width parametrisation (include/nnlab/param.h), shared by `nnlab train`, `nnlab eval`
 * and `nnlab mup`: nl_cli_param_extract removes them from argv before nl_cli_parse (include/nnlab/cli.h). */
#include "nnlab/cli.h"
#include "nnlab/param.h"
#include <string.h>

void nl_cli_param_help(FILE *f) {
    fprintf(f,
            "parametrisation (methods/mup/README.md):\n"
            "  --param NAME         sp (default: PyTorch init, one LR), ntk, or mup (TP5 Table 8 / the mup library)\n"
            "  --base-width N       width at which ntk/mup equal sp; the LR tuned there transfers under mup\n"
            "                       (default: the model's own width, i.e. width_mult 1)\n"
            "  --width-mult X       use this width multiplier instead of width / base width\n"
            "  --output-mult X      muP readout multiplier numerator (default 1)\n"
            "  --zero-readout 0|1   start the readout weight and bias at 0 (default 0)\n"
            "  --param-groups 0|1   put input/hidden/output weights and biases in optimizer groups 1..4 (default 1)\n");
}

static int is_param_flag(const char *name) {
    static const char *const f[] = {"--param", "--base-width", "--width-mult", "--output-mult", "--zero-readout", "--param-groups"};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!strcmp(name, f[i])) return 1;
    return 0;
}

int nl_cli_param_extract(const char *cmd, int *argc, char **argv, nl_parametrization *p) {
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        char name[64];
        const char *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (a[0] != '-' || a[1] != '-' || nl >= sizeof name) {
            argv[out++] = argv[i];
            continue;
        }
        memcpy(name, a, nl);
        name[nl] = 0;
        if (!is_param_flag(name)) {
            argv[out++] = argv[i];
            continue;
        }
        const char *val;
        if (eq) val = eq + 1;
        else {
            if (i + 1 >= *argc || (argv[i + 1][0] == '-' && argv[i + 1][1] == '-'))
                return nl_cli_usage_error(cmd, "option %s needs a value", name);
            val = argv[++i];
        }
        nl_status s = nl_param_parse_flag(name, val, p);
        if (s) return nl_cli_usage_error(cmd, "%s", nl_last_error());
    }
    *argc = out;
    return NL_CLI_OK;
}
