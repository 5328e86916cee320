/* The batchformer method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "batchformer/batchformer.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_batchformer, NULL};

const nl_method nl_method_batchformer = {
    .id = "batchformer",
    .summary = "BatchFormer: a transformer layer across the batch in training, removed at test (long-tailed Fashion-MNIST; methods/batchformer)",
    .cli = nl_bf_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
