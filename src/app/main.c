/* nnlab — command-line entry point: dispatch to the generic commands (src/app/cmd_*.c), the libraries' commands
 * (commands.c) and the methods' commands and aliases (the registry, methods/methods.def). */
#include "app.h"
#include "methods.h"
#include "nnlab/base.h"
#include "nnlab/dist.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef NL_VERSION_STRING
#define NL_VERSION_STRING "0.1.0"
#endif

static const app_command g_generic[] = {
    {"train", cmd_train, "train mlp|cnn: a classifier on MNIST / Fashion-MNIST, test accuracy, checkpoint"},
    {"eval", cmd_eval, "evaluate a saved checkpoint on a dataset"},
    {"list", cmd_list, "every registered method and experiment of the claims ledger (paper, claim, status)"},
    {"repro", cmd_repro, "run ledger experiments (quick or full), write DIR/ledger.json and DIR/report.html"},
    {"report", cmd_report, "the measured tables of a ledger.json as Markdown (for the method docs)"},
    {NULL, NULL, NULL}};

static void help_main(FILE *f) {
    fprintf(f,
            "nnlab %s — a deep-learning research library and its command-line tool\n"
            "\n"
            "usage: nnlab <command> [options]\n"
            "\n"
            "commands:\n",
            NL_VERSION_STRING);
    for (const app_command *c = g_generic; c->name; c++) fprintf(f, "  %-18s  %s\n", c->name, c->summary);
    fprintf(f, "  %-18s  %s\n", "help [COMMAND]", "this text, or the help of a command (same as nnlab COMMAND --help)");
    fprintf(f, "\nlibrary commands:\n");
    for (const app_command *c = app_library_commands; c->name; c++) fprintf(f, "  %-18s  %s\n", c->name, c->summary);
    fprintf(f, "\nmethod commands (nnlab <method id> ...; `nnlab list` shows every method's ledger entries):\n");
    for (int i = 0; i < nl_method_count(); i++) {
        const nl_method *m = nl_method_at(i);
        if (m->cli) fprintf(f, "  %-18s  %s\n", m->id, m->summary ? m->summary : "");
    }
    fprintf(f, "older spellings still accepted:");
    for (int i = 0; i < nl_method_count(); i++)
        for (const nl_method_alias *a = nl_method_at(i)->aliases; a && a->name; a++)
            fprintf(f, " %s (= %s)", a->name, nl_method_at(i)->id);
    fprintf(f,
            "\n\n"
            "Every command accepts --help. Threads: --threads T, else the NL_NUM_THREADS environment variable, else\n"
            "all cores. Exit status: 0 success, 1 failure (error, NaN, missing dataset, failed experiment), 2 bad\n"
            "command line. Documentation: docs/cli.md, docs/repro.md, docs/library.md.\n");
}

/* The function behind a command name (generic, library, method id or alias); NULL when unknown. */
static int (*find_command(const char *name))(int, char **) {
    for (const app_command *c = g_generic; c->name; c++)
        if (!strcmp(name, c->name)) return c->fn;
    for (const app_command *c = app_library_commands; c->name; c++)
        if (!strcmp(name, c->name)) return c->fn;
    const nl_method_alias *alias;
    const nl_method *m = nl_method_find(name, &alias);
    if (m) return alias ? alias->cli : m->cli;
    return NULL;
}

/* OpenMP's default spin-waiting fights with OpenBLAS's own threads on small machines (several times slower
 * training on 2 cores). The wait policy is read when libgomp loads, so set it and re-execute once. */
static void fix_omp_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("NL_NO_REEXEC")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv("NL_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
}

/* Every command's output must reach its destination: a full disk or /dev/full turns into exit 1 with a message,
 * never a silent exit 0 with nothing written. Errors are sticky (ferror), so a write that failed mid-way through a
 * long output is caught here too, whatever the command did with the return values of printf. The final close
 * catches errors that only the kernel reports (NFS, quota). A stdout closed from the start (`>&-`) with nothing
 * written is not an error (EBADF from the close only). */
static int finish_output(int rc) {
    const int e0 = errno; /* the errno of a write that failed mid-way (the stream keeps only the flag) */
    int err = 0;
    if (ferror(stdout))
        err = e0 == ENOSPC || e0 == EIO || e0 == EPIPE || e0 == EBADF || e0 == EFBIG || e0 == EDQUOT || e0 == EROFS ? e0 : EIO;
    errno = 0;
    if (fflush(stdout) != 0 && !err) err = errno ? errno : EIO;
    if (ferror(stdout) && !err) err = EIO;
    errno = 0;
    if (fclose(stdout) != 0 && !err && errno != EBADF) err = errno ? errno : EIO;
    if (!err) return rc;
    fprintf(stderr, "nnlab: cannot write output: %s\n", strerror(err));
    return rc ? rc : NL_CLI_FAIL;
}

static int run_command(int argc, char **argv);

/* Under mpirun with more than one rank (an -DNL_MPI=ON build, docs/distributed.md) only the commands that
 * distribute run: `train` and `lm train` (data-parallel) and `kernel` / `nngp-ntk` (a block of rows per rank, all
 * written into the one --out file with MPI-IO). Ranks > 0 print nothing (stdout to /dev/null). */
static int dist_prepare(int argc, char **argv) {
    if (nl_dist_size() <= 1 || argc < 2) return 0;
    const char *cmd = argv[1];
    const int kernel = !strcmp(cmd, "kernel") || !strcmp(cmd, "nngp-ntk");
    const int lm_train = !strcmp(cmd, "lm") && argc > 2 && !strcmp(argv[2], "train"); /* data-parallel too */
    if (strcmp(cmd, "train") && !kernel && !lm_train) {
        if (nl_dist_rank() == 0)
            fprintf(stderr, "nnlab: '%s' does not run on %d MPI ranks (only train, lm train and kernel do; see docs/distributed.md)\n", cmd,
                    nl_dist_size());
        return NL_CLI_USAGE;
    }
    if (nl_dist_rank() > 0 && !freopen("/dev/null", "w", stdout)) return NL_CLI_FAIL;
    return 0;
}

int main(int argc, char **argv) {
    fix_omp_wait_policy(argv);
    if (nl_dist_init(&argc, &argv)) {
        fprintf(stderr, "nnlab: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    int rc = dist_prepare(argc, argv);
    if (!rc) rc = run_command(argc, argv);
    rc = finish_output(rc);
    nl_dist_finalize();
    return rc;
}

static int run_command(int argc, char **argv) {
    nl_methods_init();
    if (argc < 2) {
        help_main(stderr);
        return NL_CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        help_main(stdout);
        return NL_CLI_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("nnlab %s\n", NL_VERSION_STRING);
        return NL_CLI_OK;
    }
    if (!strcmp(cmd, "help")) {
        if (argc < 3) {
            help_main(stdout);
            return NL_CLI_OK;
        }
        int (*fn)(int, char **) = find_command(argv[2]);
        if (!fn) return nl_cli_usage_error(NULL, "no command '%s' (see nnlab --help)", argv[2]);
        char *h[2] = {"--help", NULL};
        return fn(1, h);
    }
    int (*fn)(int, char **) = find_command(cmd);
    if (fn) return fn(argc - 2, argv + 2);
    const nl_method *m = nl_method_find(cmd, NULL);
    if (m && !m->cli)
        return nl_cli_usage_error(NULL, "method '%s' has no command of its own: its experiments run with `nnlab repro %s` "
                                        "(see nnlab --help)", cmd, cmd);
    return nl_cli_usage_error(NULL, "unknown command '%s' (see nnlab --help)", cmd);
}
