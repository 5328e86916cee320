/* The n2n method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "n2n/n2n.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_n2n, NULL};

const nl_method nl_method_n2n = {
    .id = "n2n",
    .summary = "N2N: network-to-network compression by policy-gradient layer removal and shrinkage (methods/n2n)",
    .cli = nl_n2n_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
