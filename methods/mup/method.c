/* The mup method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "mup/mup.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_mup, &nl_exp_mup_features, NULL};

const nl_method nl_method_mup = {
    .id = "mup",
    .summary = "muP / SP / NTK parametrisations: coord-check, lr-transfer, abc classifier (methods/mup)",
    .cli = nl_mup_cli,
    .experiments = g_experiments,
};
