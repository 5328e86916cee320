/* nnlab powernorm — train or evaluate a transformer LM normalised by PowerNorm (methods/powernorm/README.md). Entry point: nl_powernorm_cli(argc, argv) with the arguments after
 * "powernorm". The commands run the transformer library's `nnlab lm` (lib/transformer/cli_lm.c) with `--norm powernorm` (train)
 * set, so every `nnlab lm` option works here too. */
#include "powernorm/powernorm.h"
#include "nnlab/cli.h"
#include "transformer/transformer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help_pn(FILE *f) {
    fprintf(f,
            "usage: nnlab powernorm train [nnlab lm train options]\n"
            "       nnlab powernorm eval --load FILE [nnlab lm eval options]\n"
            "\n"
            "Train a transformer LM whose every normalisation is PowerNorm (Shen et al. 2020: running quadratic mean\n"
            "instead of batch statistics, approximate backward, warmup on batch statistics), or evaluate one: the\n"
            "running statistics are stored in the checkpoint and used at evaluation.\n"
            "Same as `nnlab lm train --norm powernorm` / `nnlab lm eval`; see `nnlab lm train --help`. The ledger entry\n"
            "(PowerNorm vs LayerNorm vs BatchNorm) is `nnlab repro powernorm`.\n");
}

int nl_powernorm_cli(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        help_pn(argc < 1 ? stderr : stdout);
        return argc < 1 ? NL_CLI_USAGE : NL_CLI_OK;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "train") && strcmp(sub, "eval"))
        return nl_cli_usage_error("powernorm", "unknown subcommand '%s' (train|eval)", sub);
    /* argv for `nnlab lm SUB `--norm powernorm` (train) ARGS...` */
    char **av = calloc((size_t)argc + 3, sizeof *av);
    if (!av) {
        fprintf(stderr, "nnlab powernorm: out of memory\n");
        return NL_CLI_FAIL;
    }
    int n = 0;
    av[n++] = argv[0];
    if (!strcmp(sub, "train")) {
        av[n++] = "--norm";
        av[n++] = "powernorm";
    }
    for (int i = 1; i < argc; i++) av[n++] = argv[i];
    int rc = nl_lm_cli(n, av);
    free(av);
    return rc;
}
