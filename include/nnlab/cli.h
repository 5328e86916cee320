/* nnlab/cli.h — the command-line toolkit every command uses (the nnlab program, the libraries' and the methods'
 * commands): table-driven option parsing, strict numbers, exit statuses, --threads, the parametrisation flags. */
#ifndef NNLAB_CLI_H
#define NNLAB_CLI_H
#include "nnlab/param.h"
#include <stdint.h>
#include <stdio.h>

/* Exit statuses. */
#define NL_CLI_OK 0
#define NL_CLI_FAIL 1    /* the command ran and failed (error, NaN, failed experiment, missing dataset) */
#define NL_CLI_USAGE 2   /* bad command line */

/* ---- table-driven option parsing ---- */
typedef enum { NL_OPT_FLAG, NL_OPT_INT, NL_OPT_DOUBLE, NL_OPT_STR } nl_cli_opt_type;

typedef struct nl_cli_opt {
    const char *name;        /* "--epochs" */
    nl_cli_opt_type type;
    void *dst;               /* int* (FLAG), int64_t* (INT), double* (DOUBLE), const char** (STR) */
    double lo, hi;           /* inclusive range of INT / DOUBLE values */
    int lo_open;             /* DOUBLE: the lower bound itself is excluded (e.g. lr > 0) */
    int seen;                /* set by the parser */
    const char *metavar;     /* for messages ("N", "X") */
} nl_cli_opt;

/* Parse argv[0..argc) (the arguments after the subcommand). Options may be "--name value" or "--name=value";
 * other arguments are positional and collected into pos (at most max_pos; more is an error). "-h"/"--help"
 * sets *help. On a usage error prints "nnlab CMD: message" and a hint to stderr and returns NL_CLI_USAGE. */
int nl_cli_parse(const char *cmd, int argc, char **argv, nl_cli_opt *opts, int n_opts, const char **pos, int max_pos, int *n_pos,
              int *help);
int nl_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Strict numbers: the whole string must be a number in range. Return 0 on success, else write a message. */
int nl_cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out, char *err, size_t n);
int nl_cli_parse_double(const char *s, double lo, double hi, int lo_open, double *out, char *err, size_t n);
/* Comma-separated positive integers ("256,256"), at most max. */
int nl_cli_parse_list(const char *s, int64_t lo, int64_t hi, int max, int64_t *out, int *n, char *err, size_t errn);
/* An output file named by FLAG (--save, --out) can be written: its directory exists and is writable and the path is
 * not a directory. Checked before a long run starts, so that a typo does not cost the run. Prints "nnlab CMD: FLAG
 * 'PATH': why" to stderr and returns NL_CLI_FAIL, else NL_CLI_OK. */
int nl_cli_check_output_file(const char *cmd, const char *flag, const char *path);
/* Whether the option `name` of opts[0..n) was given (after nl_cli_parse); 0 for a name not in the table. */
int nl_cli_seen(const nl_cli_opt *opts, int n, const char *name);
/* Apply --threads (if given) or NL_NUM_THREADS. */
void nl_cli_threads(int64_t threads, int seen);

/* ---- commands made of subcommands ---- */
typedef struct nl_cli_sub {
    const char *name;                       /* "train" */
    int (*run)(int argc, char **argv);      /* argv: the arguments after the subcommand */
} nl_cli_sub;
/* `nnlab CMD SUB ...` (argv: the arguments after CMD) for a command whose subcommands are subs[0..n): no argument
 * prints help to stderr and returns NL_CLI_USAGE; "--help", "-h" or "help" prints it to stdout and returns NL_CLI_OK;
 * a listed SUB returns its run's status; anything else is the usage error "unknown subcommand 'X' (a, b)", naming
 * the subcommands in table order. */
int nl_cli_subcommands(const char *cmd, int argc, char **argv, void (*help)(FILE *f), const nl_cli_sub *subs, int n);

/* ---- parametrisation flags (src/cli/param_args.c; include/nnlab/param.h) ----
 * nl_cli_param_extract removes --param/--base-width/--width-mult/--output-mult/--zero-readout/--param-groups (and
 * their values, "--flag value" or "--flag=value") from argv before nl_cli_parse, filling p; NL_CLI_USAGE with a
 * message on a bad value, NL_CLI_OK otherwise (*argc updated). nl_cli_param_help prints their help lines. */
int nl_cli_param_extract(const char *cmd, int *argc, char **argv, nl_parametrization *p);
void nl_cli_param_help(FILE *f);

#endif
