/* Internal declarations of the nnlab command-line tool. */
#ifndef NL_CLI_H
#define NL_CLI_H
#include <stdint.h>
#include <stdio.h>

/* Exit statuses. */
#define CLI_OK 0
#define CLI_FAIL 1    /* the command ran and failed (error, NaN, failed experiment, missing dataset) */
#define CLI_USAGE 2   /* bad command line */

/* ---- table-driven option parsing ---- */
typedef enum { OPT_FLAG, OPT_INT, OPT_DOUBLE, OPT_STR } cli_opt_type;

typedef struct cli_opt {
    const char *name;        /* "--epochs" */
    cli_opt_type type;
    void *dst;               /* int* (FLAG), int64_t* (INT), double* (DOUBLE), const char** (STR) */
    double lo, hi;           /* inclusive range of INT / DOUBLE values */
    int lo_open;             /* DOUBLE: the lower bound itself is excluded (e.g. lr > 0) */
    int seen;                /* set by the parser */
    const char *metavar;     /* for messages ("N", "X") */
} cli_opt;

/* Parse argv[0..argc) (the arguments after the subcommand). Options may be "--name value" or "--name=value";
 * other arguments are positional and collected into pos (at most max_pos; more is an error). "-h"/"--help"
 * sets *help. On a usage error prints "nnlab CMD: message" and a hint to stderr and returns CLI_USAGE. */
int cli_parse(const char *cmd, int argc, char **argv, cli_opt *opts, int n_opts, const char **pos, int max_pos, int *n_pos,
              int *help);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Strict numbers: the whole string must be a number in range. Return 0 on success, else write a message. */
int cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out, char *err, size_t n);
int cli_parse_double(const char *s, double lo, double hi, int lo_open, double *out, char *err, size_t n);
/* Comma-separated positive integers ("256,256"), at most max. */
int cli_parse_list(const char *s, int64_t lo, int64_t hi, int max, int64_t *out, int *n, char *err, size_t errn);
/* Apply --threads (if given) or NL_NUM_THREADS. */
void cli_threads(int64_t threads, int seen);

/* Method subcommands (src/cli/commands.c), terminated by a NULL name. */
typedef struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} cli_command;
extern const cli_command cli_method_commands[];

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_repro(int argc, char **argv);

void help_main(FILE *f);
void help_train(FILE *f);
void help_eval(FILE *f);
void help_list(FILE *f);
void help_repro(FILE *f);
#endif
