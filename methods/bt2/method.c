/* The bt2 method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "bt2/bt2.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_bt2, NULL};

const nl_method nl_method_bt2 = {
    .id = "bt2",
    .summary = "BT^2: backward-compatible embeddings with extra dimensions and an orthogonal basis transformation (methods/bt2)",
    .cli = nl_bt2_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
