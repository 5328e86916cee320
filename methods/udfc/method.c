/* The udfc method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "udfc/udfc.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_udfc, NULL};

const nl_method nl_method_udfc = {
    .id = "udfc",
    .summary = "UDFC: data-free pruning + quantisation compensated in closed form, no fine-tuning (methods/udfc)",
    .cli = nl_udfc_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
