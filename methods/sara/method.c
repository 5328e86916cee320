/* The sara method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "sara/sara.h"

static const nl_experiment *const g_experiments[] = {&nl_exp_sara, NULL};

const nl_method nl_method_sara = {
    .id = "sara",
    .summary = "SaRA: fine-tune the smallest-|theta| entries of a pretrained DDPM (sparse AdamW, nuclear norm, progressive) vs LoRA and full fine-tuning (methods/sara)",
    .cli = nl_sara_cli,
    .aliases = NULL,
    .experiments = g_experiments,
    .init = NULL,
};
