/* The dkm method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "dkm/dkm.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_dkm, NULL};

const nl_method nl_method_dkm = {
    .id = "dkm",
    .summary = "Deep kernel machines: the Bayesian representation learning limit, sparse inducing-point DKM vs its NNGP (methods/dkm)",
    .cli = nl_dkm_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
