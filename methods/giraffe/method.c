/* The giraffe method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "giraffe/giraffe.h"

static const nl_method_alias g_aliases[] = {{"rope", nl_giraffe_cli}, {NULL, NULL}};
static const nl_experiment *const g_experiments[] = {&nl_exp_giraffe, NULL};

const nl_method nl_method_giraffe = {
    .id = "giraffe",
    .summary = "Giraffe RoPE context extension: frequency tables of the variants (methods/giraffe)",
    .cli = nl_giraffe_cli,
    .aliases = g_aliases,
    .experiments = g_experiments,
};
