/* nnlab lm-infinite — evaluate or sample a saved transformer LM with the LM-Infinite Lambda attention (methods/lm_infinite/README.md). Entry point: nl_lm_infinite_cli(argc, argv) with the arguments after
 * "lm-infinite". The commands run the transformer library's `nnlab lm` (lib/transformer/cli_lm.c) with `--attn lminf`
 * set, so every `nnlab lm` option works here too. */
#include "lm_infinite/lm_infinite.h"
#include "nnlab/cli.h"
#include "transformer/transformer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help_lminf(FILE *f) {
    fprintf(f,
            "usage: nnlab lm-infinite eval --load FILE [--n-global N] [--n-local N] [nnlab lm eval options]\n"
            "       nnlab lm-infinite generate --load FILE --prompt TEXT [--n-global N] [--n-local N] [options]\n"
            "\n"
            "Run a saved RoPE language model (nnlab lm train) with LM-Infinite attention, without any parameter update:\n"
            "n_global starting tokens always visible, a local window of n_local tokens, relative distances clamped at\n"
            "n_local (Han et al. 2023). Lengths beyond the training context need no --extrapolate flag.\n"
            "  --n-global N         always-visible starting tokens (default 4)\n"
            "  --n-local N          local window and distance limit (default: the training context)\n"
            "Same as `nnlab lm eval|generate --attn lminf`; see `nnlab lm eval --help` for the other options. The\n"
            "ledger entry (perplexity to 32x the training length, passkey retrieval) is `nnlab repro lm-infinite`.\n");
}

int nl_lm_infinite_cli(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        help_lminf(argc < 1 ? stderr : stdout);
        return argc < 1 ? NL_CLI_USAGE : NL_CLI_OK;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "eval") && strcmp(sub, "generate"))
        return nl_cli_usage_error("lm-infinite", "unknown subcommand '%s' (eval|generate)", sub);
    /* argv for `nnlab lm SUB `--attn lminf` ARGS...` */
    char **av = calloc((size_t)argc + 3, sizeof *av);
    if (!av) {
        fprintf(stderr, "nnlab lm-infinite: out of memory\n");
        return NL_CLI_FAIL;
    }
    int n = 0;
    av[n++] = argv[0];
    if (!strcmp(sub, "eval") || !strcmp(sub, "generate")) {
        av[n++] = "--attn";
        av[n++] = "lminf";
    }
    for (int i = 1; i < argc; i++) av[n++] = argv[i];
    int rc = nl_lm_cli(n, av);
    free(av);
    return rc;
}
