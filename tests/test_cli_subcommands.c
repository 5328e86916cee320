/* nl_cli_subcommands (src/cli/args.c): the dispatch of `nnlab CMD SUB ...` every method command made of
 * subcommands uses: help and its stream, exit statuses, the arguments a subcommand receives, the usage error's text. */
#include "nltest.h"
#include "nnlab/cli.h"
#include <unistd.h>

static FILE *g_help_stream; /* the stream help was last given (NULL: not called) */
static int g_help_calls;
static int g_ran;           /* 1 + index of the subcommand that ran (0: none) */
static int g_argc;
static char **g_argv;

static void help_fn(FILE *f) {
    g_help_stream = f;
    g_help_calls++;
}
static int run_fit(int argc, char **argv) {
    g_ran = 1, g_argc = argc, g_argv = argv;
    return 7; /* any status: passed through */
}
static int run_limit(int argc, char **argv) {
    g_ran = 2, g_argc = argc, g_argv = argv;
    return NL_CLI_OK;
}

static const nl_cli_sub g_subs[2] = {{"fit", run_fit}, {"limit", run_limit}};

static void reset(void) { g_help_stream = NULL, g_help_calls = 0, g_ran = 0, g_argc = -1, g_argv = NULL; }

/* Runs the dispatcher over subs[0..n_subs) with stderr sent to a temporary file; msg (n) receives what it wrote there. */
static int dispatch_capture(const char *cmd, const nl_cli_sub *subs, int n_subs, int argc, char **argv, char *msg, size_t n) {
    FILE *tmp = tmpfile();
    msg[0] = 0;
    if (!tmp) return -1;
    fflush(stderr);
    int saved = dup(fileno(stderr));
    dup2(fileno(tmp), fileno(stderr));
    int rc = nl_cli_subcommands(cmd, argc, argv, help_fn, subs, n_subs);
    fflush(stderr);
    dup2(saved, fileno(stderr));
    close(saved);
    rewind(tmp);
    size_t got = fread(msg, 1, n - 1, tmp);
    msg[got] = 0;
    fclose(tmp);
    return rc;
}

static void test_help(void) {
    char *none[] = {NULL};
    reset();
    NLT_CHECK(nl_cli_subcommands("dkm", 0, none, help_fn, g_subs, 2) == NL_CLI_USAGE, "no argument: usage status");
    NLT_CHECK(g_help_stream == stderr && g_help_calls == 1 && !g_ran, "no argument: help once, to stderr, nothing run");
    const char *const forms[3] = {"--help", "-h", "help"};
    for (int k = 0; k < 3; k++) {
        char *argv[] = {(char *)forms[k], (char *)"fit", NULL};
        reset();
        NLT_CHECK(nl_cli_subcommands("dkm", 2, argv, help_fn, g_subs, 2) == NL_CLI_OK, "%s: exit 0", forms[k]);
        NLT_CHECK(g_help_stream == stdout && g_help_calls == 1 && !g_ran, "%s: help once, to stdout, nothing run", forms[k]);
    }
}

static void test_dispatch(void) {
    char *argv[] = {(char *)"fit", (char *)"--steps", (char *)"3", NULL};
    reset();
    NLT_CHECK(nl_cli_subcommands("dkm", 3, argv, help_fn, g_subs, 2) == 7, "the subcommand's status is returned");
    NLT_CHECK(g_ran == 1 && g_argc == 2 && g_argv == argv + 1 && !g_help_calls, "fit ran with the 2 arguments after it");
    char *argv2[] = {(char *)"limit", NULL};
    reset();
    NLT_CHECK(nl_cli_subcommands("dkm", 1, argv2, help_fn, g_subs, 2) == NL_CLI_OK, "limit: exit 0");
    NLT_CHECK(g_ran == 2 && g_argc == 0 && g_argv == argv2 + 1, "limit ran with no arguments");
    /* a subcommand's own --help is its business: it receives it */
    char *argv3[] = {(char *)"limit", (char *)"--help", NULL};
    reset();
    nl_cli_subcommands("dkm", 2, argv3, help_fn, g_subs, 2);
    NLT_CHECK(g_ran == 2 && g_argc == 1 && !strcmp(g_argv[0], "--help") && !g_help_calls, "SUB --help goes to SUB");
}

static void test_unknown(void) {
    char msg[512];
    char *argv[] = {(char *)"train", (char *)"fit", NULL};
    reset();
    int rc = dispatch_capture("dkm", g_subs, 2, 2, argv, msg, sizeof msg);
    NLT_CHECK(rc == NL_CLI_USAGE && !g_ran && !g_help_calls, "unknown subcommand: usage status, nothing run (rc %d)", rc);
    NLT_CHECK(strstr(msg, "nnlab dkm: unknown subcommand 'train' (fit, limit)") != NULL, "message names it and the list: '%s'", msg);
    NLT_CHECK(strstr(msg, "(see 'nnlab dkm --help')") != NULL, "message ends with the help hint: '%s'", msg);
    /* prefixes and case are not subcommands */
    char *argv2[] = {(char *)"fi", NULL};
    char *argv3[] = {(char *)"FIT", NULL};
    reset();
    NLT_CHECK(dispatch_capture("dkm", g_subs, 2, 1, argv2, msg, sizeof msg) == NL_CLI_USAGE && !g_ran, "a prefix is not a subcommand");
    NLT_CHECK(dispatch_capture("dkm", g_subs, 2, 1, argv3, msg, sizeof msg) == NL_CLI_USAGE && !g_ran, "matching is case-sensitive");
    /* one subcommand: the list is just its name */
    reset();
    int rc1 = dispatch_capture("stn", g_subs + 1, 1, 1, argv, msg, sizeof msg);
    NLT_CHECK(rc1 == NL_CLI_USAGE && strstr(msg, "nnlab stn: unknown subcommand 'train' (limit)") != NULL, "one subcommand: '%s'", msg);
}

int main(void) {
    NLT_RUN(test_help);
    NLT_RUN(test_dispatch);
    NLT_RUN(test_unknown);
    return nlt_finish();
}
