/* The experiment registry: one line per method.
 *
 * To register a method, define `const nl_experiment nl_exp_<name> = {...};` in its own source file and add
 * `X(nl_exp_<name>)` below. The order here is the order of `nnlab list` and of a full `nnlab repro`. */
#include "nnlab/ledger.h"
#include <string.h>

#define NL_EXPERIMENTS(X) \
    X(nl_exp_mlp)         \
    X(nl_exp_cnn)         \
    X(nl_exp_mup)         \
    X(nl_exp_nngp_ntk)    \
    X(nl_exp_wide_deep)   \
    X(nl_exp_student_t_process) \
    X(nl_exp_giraffe)     \
    X(nl_exp_lm_infinite) \
    X(nl_exp_powernorm)   \
    X(nl_exp_pfn)

#define NL_DECLARE(v) extern const nl_experiment v;
#define NL_ADDRESS(v) &v,
NL_EXPERIMENTS(NL_DECLARE)
static const nl_experiment *const g_experiments[] = {NL_EXPERIMENTS(NL_ADDRESS) NULL};

int nl_experiment_count(void) { return (int)(sizeof g_experiments / sizeof g_experiments[0]) - 1; }

const nl_experiment *nl_experiment_at(int i) { return i >= 0 && i < nl_experiment_count() ? g_experiments[i] : NULL; }

const nl_experiment *nl_experiment_find(const char *name) {
    for (int i = 0; i < nl_experiment_count(); i++)
        if (!strcmp(g_experiments[i]->name, name)) return g_experiments[i];
    return NULL;
}

const char *nl_experiment_status(const nl_experiment *e) {
    if (e->status) return e->status;
    return e->run ? "ready" : "planned";
}
