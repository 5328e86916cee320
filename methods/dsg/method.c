/* The dsg method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "dsg/dsg.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_dsg, NULL};

const nl_method nl_method_dsg = {
    .id = "dsg",
    .summary = "Disambiguated Skip-gram: sense vectors chosen by a context network, pseudoword test (methods/dsg)",
    .cli = nl_dsg_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
