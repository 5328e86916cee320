/* The fprior method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "fprior/fprior.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_fprior, NULL};

const nl_method nl_method_fprior = {
    .id = "fprior",
    .summary = "Functional priors for BNNs: Wasserstein-1 fit of the prior to a GP, SGHMC posteriors (methods/fprior)",
    .cli = nl_fp_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
