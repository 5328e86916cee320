/* The snnk method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "snnk/snnk.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_snnk, NULL};

const nl_method nl_method_snnk = {
    .id = "snnk",
    .summary = "Scalable Neural Network Kernels: universal random features, SNNK layers and the closed-form bundled network (methods/snnk)",
    .cli = nl_snnk_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
