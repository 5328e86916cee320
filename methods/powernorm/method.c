/* The powernorm method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "powernorm/powernorm.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_powernorm, NULL};

const nl_method nl_method_powernorm = {
    .id = "powernorm",
    .summary = "PowerNorm in a transformer LM: train / evaluate with it (methods/powernorm)",
    .cli = nl_powernorm_cli,
    .experiments = g_experiments,
};
