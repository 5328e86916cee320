/* The method registry (methods/methods.def, methods/methods.h): one id everywhere, every entry complete, lookups by
 * id, alias and ledger name, and the plug-ins that methods register at start. */
#include "nltest.h"
#include "methods.h"
#include "transformer/transformer.h"
#include <ctype.h>

/* the folder of an id: '-' written '_' (the one rule of docs/architecture.md) */
static void folder_of(const char *id, char *out, size_t n) {
    snprintf(out, n, "%s", id);
    for (char *p = out; *p; p++)
        if (*p == '-') *p = '_';
}

static void test_methods(void) {
    const int n = nl_method_count();
    NLT_CHECK(n >= 9, "%d methods", n);
    NLT_CHECK(nl_method_at(-1) == NULL && nl_method_at(n) == NULL, "out of range");
    const char *src = getenv("NL_SOURCE_DIR");
    for (int i = 0; i < n; i++) {
        const nl_method *m = nl_method_at(i);
        NLT_CHECK(m->id && m->id[0], "method %d has an id", i);
        for (const char *p = m->id; *p; p++)
            NLT_CHECK(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-', "id %s: [a-z0-9-] only", m->id);
        NLT_CHECK(nl_method_find(m->id, NULL) == m, "find %s", m->id);
        for (int k = 0; k < i; k++) NLT_CHECK(strcmp(m->id, nl_method_at(k)->id), "duplicate id %s", m->id);
        NLT_CHECK(m->experiments && m->experiments[0], "%s has at least one ledger entry", m->id);
        NLT_CHECK(!m->cli || (m->summary && m->summary[0]), "%s: a command needs a summary", m->id);
        /* a method with one entry names it after itself; the entries of several are looked up by their own names */
        if (!m->experiments[1]) NLT_CHECK(!strcmp(m->experiments[0]->name, m->id), "%s: ledger name = id", m->id);
        for (const nl_experiment *const *e = m->experiments; *e; e++) {
            NLT_CHECK(nl_experiment_find((*e)->name) == *e, "find entry %s", (*e)->name);
            NLT_CHECK(nl_experiment_method(*e) == m, "entry %s belongs to %s", (*e)->name, m->id);
            NLT_CHECK((*e)->paper && (*e)->claim && (*e)->quick_desc && (*e)->full_desc && (*e)->quick && (*e)->full &&
                          (*e)->metrics && (*e)->run && (*e)->judge,
                      "entry %s complete", (*e)->name);
        }
        for (const nl_method_alias *a = m->aliases; a && a->name; a++) {
            const nl_method_alias *got;
            NLT_CHECK(nl_method_find(a->name, &got) == m && got == a && a->cli, "alias %s -> %s", a->name, m->id);
            NLT_CHECK(nl_experiment_find(a->name) == NULL || !strcmp(a->name, m->id), "alias %s shadows no entry", a->name);
        }
        if (src) { /* the folder, its README and a test exist */
            char folder[64], path[1024];
            folder_of(m->id, folder, sizeof folder);
            snprintf(path, sizeof path, "%s/methods/%s/README.md", src, folder);
            FILE *f = fopen(path, "r");
            NLT_CHECK(f != NULL, "%s exists", path);
            if (f) fclose(f);
            snprintf(path, sizeof path, "%s/methods/%s/method.c", src, folder);
            f = fopen(path, "r");
            NLT_CHECK(f != NULL, "%s exists", path);
            if (f) fclose(f);
        }
    }
    int total = 0;
    for (int i = 0; i < n; i++)
        for (const nl_experiment *const *e = nl_method_at(i)->experiments; *e; e++) NLT_CHECK(nl_experiment_at(total++) == *e, "order");
    NLT_CHECK(total == nl_experiment_count() && nl_experiment_at(total) == NULL, "%d entries", total);
    NLT_CHECK(nl_method_find("no-such-method", NULL) == NULL && nl_experiment_find("no-such") == NULL, "unknown names");
    const nl_method *b = nl_method_find("baselines", NULL);
    NLT_CHECK(b && nl_experiment_method(nl_experiment_find("mlp")) == b && nl_experiment_method(nl_experiment_find("cnn")) == b,
              "mlp and cnn are the baselines");
}

static void test_init(void) {
    /* before init the lminf attention kind has no implementation; after it, the lm-infinite method provides it */
    nl_lm_config c = nl_lm_config_default();
    c.vocab = 16; c.context = 8; c.n_layers = 1; c.d_model = 16; c.n_heads = 2; c.d_ff = 32;
    c.attn = NL_LM_ATTN_LMINF;
    NLT_CHECK(nl_lm_config_check(&c) == NL_EINVAL, "lminf unavailable before nl_methods_init");
    nl_methods_init();
    nl_methods_init();   /* idempotent */
    NLT_OK(nl_lm_config_check(&c));
}

int main(void) {
    NLT_RUN(test_methods);
    NLT_RUN(test_init);
    return nlt_finish();
}
