/* The mdbm method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "mdbm/mdbm.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_mdbm, NULL};

const nl_method nl_method_mdbm = {
    .id = "mdbm",
    .summary = "Monotone deep Boltzmann machines: unique mean-field fixed point, joint completion and classification (methods/mdbm)",
    .cli = nl_mdbm_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
