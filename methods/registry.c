/* The method registry: the table of methods/methods.def and the lookups of methods/methods.h. */
#include "methods.h"
#include <string.h>

#define NL_METHOD(folder) &nl_method_##folder,
static const nl_method *const g_methods[] = {
#include "methods.def"
    NULL};
#undef NL_METHOD

int nl_method_count(void) { return (int)(sizeof g_methods / sizeof g_methods[0]) - 1; }

const nl_method *nl_method_at(int i) { return i >= 0 && i < nl_method_count() ? g_methods[i] : NULL; }

const nl_method *nl_method_find(const char *name, const nl_method_alias **alias) {
    if (alias) *alias = NULL;
    if (!name) return NULL;
    for (int i = 0; i < nl_method_count(); i++) {
        const nl_method *m = g_methods[i];
        if (!strcmp(m->id, name)) return m;
        for (const nl_method_alias *a = m->aliases; a && a->name; a++)
            if (!strcmp(a->name, name)) {
                if (alias) *alias = a;
                return m;
            }
    }
    return NULL;
}

void nl_methods_init(void) {
    static int done;
    if (done) return;
    done = 1;
    for (int i = 0; i < nl_method_count(); i++)
        if (g_methods[i]->init) g_methods[i]->init();
}

int nl_experiment_count(void) {
    int n = 0;
    for (int i = 0; i < nl_method_count(); i++)
        for (const nl_experiment *const *e = g_methods[i]->experiments; e && *e; e++) n++;
    return n;
}

const nl_experiment *nl_experiment_at(int k) {
    if (k < 0) return NULL;
    for (int i = 0; i < nl_method_count(); i++)
        for (const nl_experiment *const *e = g_methods[i]->experiments; e && *e; e++)
            if (k-- == 0) return *e;
    return NULL;
}

const nl_experiment *nl_experiment_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < nl_method_count(); i++)
        for (const nl_experiment *const *e = g_methods[i]->experiments; e && *e; e++)
            if (!strcmp((*e)->name, name)) return *e;
    return NULL;
}

const nl_method *nl_experiment_method(const nl_experiment *x) {
    for (int i = 0; i < nl_method_count(); i++)
        for (const nl_experiment *const *e = g_methods[i]->experiments; e && *e; e++)
            if (*e == x) return g_methods[i];
    return NULL;
}
