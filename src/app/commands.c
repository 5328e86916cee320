/* Commands of the shared libraries (lib/): the methods' commands come from the registry (methods/methods.def). */
#include "app.h"
#include <stddef.h>

#include "transformer/transformer.h"

const app_command app_library_commands[] = {
    {"lm", nl_lm_cli, "transformer language model (RoPE variants, norms, attention kinds): train, eval, generate "
                      "(lib/transformer)"},
    {NULL, NULL, NULL}};
