/* The bpv method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "bpv/bpv.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_bpv, NULL};

const nl_method nl_method_bpv = {
    .id = "bpv",
    .summary = "Binary Paragraph Vectors: short binary document codes for Hamming retrieval on GCIDE and fortunes "
               "(methods/bpv)",
    .cli = nl_bpv_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
