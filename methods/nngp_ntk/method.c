/* The nngp-ntk method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "nngp_ntk/nngp_ntk.h"

static const nl_method_alias g_aliases[] = {{"kernel", nl_nngp_ntk_cli}, {NULL, NULL}};
static const nl_experiment *const g_experiments[] = {&nl_exp_nngp_ntk, NULL};

const nl_method nl_method_nngp_ntk = {
    .id = "nngp-ntk",
    .summary = "infinite-width NNGP / NTK kernels of fully connected networks (methods/nngp_ntk)",
    .cli = nl_nngp_ntk_cli,
    .aliases = g_aliases,
    .experiments = g_experiments,
};
