/* Method subcommands of nnlab: one line per method.
 *
 * A method's command lives in src/cli/cmd_<name>.c and exposes `int nl_cli_<name>(int argc, char **argv)`
 * (argv: the arguments after the subcommand name). It parses with cli_parse (cli.h), answers --help on stdout
 * with exit 0, and returns CLI_OK, CLI_FAIL or CLI_USAGE. Register it by adding one X(...) line below:
 * the subcommand name, the function, and the one-line summary shown by `nnlab --help`. */
#include "cli.h"
#include <stddef.h>

#define NL_METHOD_COMMANDS(X) \
    X("widedeep", nl_cli_widedeep, "infinitely wide and deep networks as kernel classifiers (docs/wide-deep.md)") \
    X("kernel", nl_cli_kernel, "infinite-width NNGP / NTK kernels of fully connected networks (docs/nngp-ntk.md)") \
    X("lm", nl_cli_lm, "transformer language model with RoPE / Giraffe extensions: train, eval, generate (docs/transformer.md)") \
    X("rope", nl_cli_rope, "RoPE frequency tables of the position-encoding variants") \
    X("stp", nl_cli_stp, "Student-t process vs GP regression over NNGP kernels on syn-t (docs/student-t.md)") \
    X("mup", nl_cli_mup, "muP / SP / NTK parametrisations: coord-check, lr-transfer, abc classifier (docs/mup.md)") \
    X("pfn", nl_cli_pfn, "prior-data fitted networks: train on a GP prior, posterior predictive, NLL vs GP (docs/pfn.md)")

#define NL_CLI_DECLARE(name, fn, summary) int fn(int argc, char **argv);
#define NL_CLI_ENTRY(name, fn, summary) {name, fn, summary},
NL_METHOD_COMMANDS(NL_CLI_DECLARE)

const cli_command cli_method_commands[] = {NL_METHOD_COMMANDS(NL_CLI_ENTRY){NULL, NULL, NULL}};
