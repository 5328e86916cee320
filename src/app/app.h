/* The nnlab program's own commands (src/app): the generic ones below, the libraries' commands (commands.c) and the
 * methods' commands from the registry (methods/methods.h). Each command answers --help itself; its help text
 * lives in its own file. */
#ifndef NL_APP_H
#define NL_APP_H
#include "nnlab/cli.h"

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_repro(int argc, char **argv);
int cmd_report(int argc, char **argv);

/* Commands of the libraries (not methods): name, function, one-line summary; terminated by a NULL name. */
typedef struct app_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} app_command;
extern const app_command app_library_commands[];
#endif
