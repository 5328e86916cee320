/* The baselines method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "baselines/baselines.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_mlp, &nl_exp_cnn, NULL};

const nl_method nl_method_baselines = {
    .id = "baselines",
    .experiments = g_experiments,
};
