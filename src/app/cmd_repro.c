/* nnlab repro [METHOD...] [--quick|--full|--smoke] [--out DIR] [--threads T] */
#include "app.h"
#include "nnlab/ledger.h"
#include "methods.h"
#include <stdlib.h>
#include <string.h>

static void help_repro(FILE *f) {
    fprintf(f,
            "usage: nnlab repro [METHOD...] [--quick|--full|--smoke] [--out DIR] [--threads T] [-j N]\n"
            "\n"
            "Run the selected experiments (a ledger entry such as mlp, or a method id such as baselines = mlp cnn; default:\n"
            "all registered, see `nnlab list`), judge each against its claim,\n"
            "print the table (method, claim, measured, verdict, seconds) and write DIR/ledger.json and a\n"
            "self-contained DIR/report.html (table + SVG plots). The files are rewritten after every experiment.\n"
            "Exit status 1 if any experiment fails or errors (the others still run).\n"
            "\n"
            "  --quick              quick configurations (default): minutes on 2 cores\n"
            "  --full               full configurations (the paper-scale numbers)\n"
            "  --smoke              smoke configurations: the same code at tiny sizes, seconds (the test suite's check\n"
            "                       of plumbing, ledger fields and controls; not a verdict on the claim)\n"
            "  --out DIR            output directory (default: out)\n"
            "  --threads T          threads (default: NL_NUM_THREADS or all cores)\n"
            "  -j N, --jobs N       run up to N experiments at once, each in its own process with max(1, T/N) threads and its\n"
            "                       output in DIR/logs/<entry>.log (default: the number of cores, at most the number of\n"
            "                       experiments); the ledger keeps the selection's order and equals `-j 1 --threads T/N`\n"
            "  --quiet              no per-experiment progress on stderr\n");
}

int cmd_repro(int argc, char **argv) {
    int quick = 0, full = 0, smoke = 0, quiet = 0;
    const char *out = "out";
    int64_t threads = 0, jobs = 0;
    /* -j N / -jN are spelled --jobs N for the parser */
    char jbuf[32];
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "-j")) argv[i] = "--jobs";
        else if (!strncmp(argv[i], "-j", 2) && argv[i][2] != '-') {
            snprintf(jbuf, sizeof jbuf, "--jobs=%.20s", argv[i] + 2);
            argv[i] = jbuf;
        }
    nl_cli_opt opts[] = {
        {"--quick", NL_OPT_FLAG, &quick, 0, 0, 0, 0, NULL},
        {"--full", NL_OPT_FLAG, &full, 0, 0, 0, 0, NULL},
        {"--out", NL_OPT_STR, &out, 0, 0, 0, 0, "DIR"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
        {"--jobs", NL_OPT_INT, &jobs, 1, 1024, 0, 0, "N"},
        {"--smoke", NL_OPT_FLAG, &smoke, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    const int n_all = nl_experiment_count();
    const char **pos = calloc((size_t)argc + 1, sizeof *pos);
    const nl_experiment **sel = calloc((size_t)(argc + n_all) + 1, sizeof *sel);
    if (!pos || !sel) {
        free(pos);
        free(sel);
        fprintf(stderr, "nnlab repro: out of memory\n");
        return NL_CLI_FAIL;
    }
    int n_pos, help, rc = nl_cli_parse("repro", argc, argv, opts, N_OPTS, pos, argc, &n_pos, &help);
    if (!rc && help) {
        help_repro(stdout);
        free(pos);
        free(sel);
        return NL_CLI_OK;
    }
    if (!rc && quick + full + smoke > 1) rc = nl_cli_usage_error("repro", "--quick, --full and --smoke exclude each other");
    int n = 0;
    for (int i = 0; !rc && i < n_pos; i++) {
        const nl_experiment *e = nl_experiment_find(pos[i]);
        const nl_method *m = e ? NULL : nl_method_find(pos[i], NULL);
        if (m) { /* a method id: all of its entries ("baselines" = mlp cnn) */
            for (const nl_experiment *const *x = m->experiments; x && *x; x++) {
                int dup = 0;
                for (int k = 0; k < n; k++) dup |= sel[k] == *x;
                if (!dup) sel[n++] = *x;
            }
            continue;
        }
        if (!e) {
            fprintf(stderr, "nnlab repro: unknown method '%s'; registered:", pos[i]);
            for (int k = 0; k < n_all; k++) fprintf(stderr, " %s", nl_experiment_at(k)->name);
            fprintf(stderr, "\n(see 'nnlab list')\n");
            rc = NL_CLI_USAGE;
            break;
        }
        int dup = 0;
        for (int k = 0; k < n; k++) dup |= sel[k] == e;
        if (!dup) sel[n++] = e;
    }
    if (rc) {
        free(pos);
        free(sel);
        return rc;
    }
    if (n_pos == 0)
        for (int k = 0; k < n_all; k++) sel[n++] = nl_experiment_at(k);
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    if (!nl_cli_seen(opts, N_OPTS, "--jobs")) jobs = nl_get_num_threads();   /* default: all cores */
    nl_repro_options ro = {full ? NL_MODE_FULL : smoke ? NL_MODE_SMOKE : NL_MODE_QUICK, nl_get_num_threads(), !quiet, out, stdout, (int)jobs};
    nl_repro_entry *en;
    int n_failed;
    nl_status s = nl_repro_run(sel, n, &ro, &en, &n_failed);
    if (s) fprintf(stderr, "nnlab repro: error: %s\n", nl_last_error());
    else {
        printf("ledger: %s/ledger.json  report: %s/report.html\n", out, out);
        if (n_failed) fprintf(stderr, "nnlab repro: %d of %d experiments failed\n", n_failed, n);
    }
    nl_repro_free(en, n);
    free(pos);
    free(sel);
    return s || n_failed ? NL_CLI_FAIL : NL_CLI_OK;
}
