/* The noprop method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "noprop/noprop.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_noprop, NULL};

const nl_method nl_method_noprop = {
    .id = "noprop",
    .summary = "NoProp: blocks trained without back-propagation by denoising label embeddings (methods/noprop)",
    .cli = nl_noprop_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
