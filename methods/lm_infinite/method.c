/* The lm-infinite method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "lm_infinite/lm_infinite.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_lm_infinite, NULL};

const nl_method nl_method_lm_infinite = {
    .id = "lm-infinite",
    .summary = "LM-Infinite Lambda attention: evaluate or sample a saved LM with it, no retraining (methods/lm_infinite)",
    .cli = nl_lm_infinite_cli,
    .experiments = g_experiments,
    .init = nl_lm_infinite_register,
};
