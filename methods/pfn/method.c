/* The pfn method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "pfn/pfn.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_pfn, NULL};

const nl_method nl_method_pfn = {
    .id = "pfn",
    .summary = "prior-data fitted networks: train on a GP prior, posterior predictive, NLL vs GP (methods/pfn)",
    .cli = nl_pfn_cli,
    .experiments = g_experiments,
};
