/* The forwardgnn method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "forwardgnn/forwardgnn.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_forwardgnn, NULL};

const nl_method nl_method_forwardgnn = {
    .id = "forwardgnn",
    .summary = "ForwardGNN: GNN layers trained greedily without end-to-end backprop (single-forward, forward-forward) (methods/forwardgnn)",
    .cli = nl_forwardgnn_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
