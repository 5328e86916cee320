/* The wide-deep method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "wide_deep/wide_deep.h"

static const nl_method_alias g_aliases[] = {{"widedeep", nl_wide_deep_cli}, {NULL, NULL}};
static const nl_experiment *const g_experiments[] = {&nl_exp_wide_deep, NULL};

const nl_method nl_method_wide_deep = {
    .id = "wide-deep",
    .summary = "infinitely wide and deep networks as kernel classifiers (methods/wide_deep)",
    .cli = nl_wide_deep_cli,
    .aliases = g_aliases,
    .experiments = g_experiments,
};
