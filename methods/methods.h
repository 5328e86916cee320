/* methods/methods.h — the method registry, generated from methods/methods.def (one line per method).
 *
 * The registry sits above every method: the nnlab program, `nnlab list` and `nnlab repro` use it; a method never
 * includes it (methods depend on the libraries and the engine only, never on each other). Lookups are by id
 * ("wide-deep"), by alias ("widedeep") or, for experiments, by ledger name ("mlp"). */
#ifndef NNLAB_METHODS_H
#define NNLAB_METHODS_H
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_METHOD(folder) extern const nl_method nl_method_##folder;
#include "methods.def"
#undef NL_METHOD

int nl_method_count(void);
const nl_method *nl_method_at(int i);                 /* NULL out of range */
/* The method whose id or alias is name (alias: *alias gets it, else NULL); NULL when none. */
const nl_method *nl_method_find(const char *name, const nl_method_alias **alias);
/* Every registered method's init hook, once (idempotent, thread-unsafe: call it at program start). */
void nl_methods_init(void);
/* Experiments of every method in registry order (a method's entries in its own order). */
int nl_experiment_count(void);
const nl_experiment *nl_experiment_at(int i);
const nl_experiment *nl_experiment_find(const char *name);
/* The method an experiment belongs to (NULL when it is not registered). */
const nl_method *nl_experiment_method(const nl_experiment *e);

#ifdef __cplusplus
}
#endif
#endif
