/* The stn method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "stn/stn.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_stn, NULL};

const nl_method nl_method_stn = {
    .id = "stn",
    .summary = "Self-Tuning Networks: hyper-layers with a structured best response tune dropout rates and L2 online (methods/stn)",
    .cli = nl_stn_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
