/* nnlab report --markdown LEDGER.json [ENTRY...] */
#include "app.h"
#include "nnlab/ledger.h"
#include <stdlib.h>

static void help_report(FILE *f) {
    fprintf(f,
            "usage: nnlab report --markdown LEDGER.json [ENTRY...]\n"
            "\n"
            "Print the measured tables of a ledger written by `nnlab repro` as Markdown: per entry the verdict, the\n"
            "commit and machine it was measured on, seconds and seeds, the configuration, the measured line, and the\n"
            "tables of the claim's parts, the controls and the metrics. The method READMEs' tables of measured numbers\n"
            "are this output, so they say where they came from and cannot drift from a run.\n"
            "\n"
            "  --markdown FILE      the ledger.json to render (required)\n"
            "  ENTRY...             only these entries (default: all)\n");
}

int cmd_report(int argc, char **argv) {
    const char *md = NULL;
    nl_cli_opt opts[] = {{"--markdown", NL_OPT_STR, &md, 0, 0, 0, 0, "FILE"}};
    const char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos) return NL_CLI_FAIL;
    int n_pos, help, rc = nl_cli_parse("report", argc, argv, opts, 1, pos, argc, &n_pos, &help);
    if (!rc && help) help_report(stdout);
    else if (!rc && !md) rc = nl_cli_usage_error("report", "--markdown LEDGER.json is required");
    else if (!rc && nl_ledger_markdown(md, stdout, pos, n_pos)) {
        fprintf(stderr, "nnlab report: %s\n", nl_last_error());
        rc = NL_CLI_FAIL;
    }
    free(pos);
    return rc;
}
