/* The biper method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "biper/biper.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_biper, NULL};

const nl_method nl_method_biper = {
    .id = "biper",
    .summary = "BiPer: binary networks with periodic (sin) weight binarisation, sign+STE baseline, bit-packed export (methods/biper)",
    .cli = nl_biper_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
