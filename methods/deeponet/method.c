/* The deeponet method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "deeponet/deeponet.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_deeponet, NULL};

const nl_method nl_method_deeponet = {
    .id = "deeponet",
    .summary = "DeepONet: branch and trunk nets learn the antiderivative and a nonlinear ODE operator (methods/deeponet)",
    .cli = nl_deeponet_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
