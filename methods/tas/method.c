/* The tas method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "tas/tas.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_tas, NULL};

const nl_method nl_method_tas = {
    .id = "tas",
    .summary = "TAS: width/depth search by Gumbel-softmax with channel-wise interpolation and a FLOP loss, then KD (methods/tas)",
    .cli = nl_tas_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
