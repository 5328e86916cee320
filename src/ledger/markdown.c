/* Markdown from a ledger file (`nnlab report --markdown ledger.json`): the tables a method's README shows, made
 * by a command from the measured ledger so that docs cannot drift from what was run. */
#include "nnlab/ledger.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* table cells may not contain '|' or newlines */
static void cell(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else if (*s == '\n') fputc(' ', f);
        else fputc(*s, f);
    }
}

static void num(FILE *f, const cJSON *v) {
    if (cJSON_IsNumber(v)) fprintf(f, "%.6g", v->valuedouble);
    else fputs("-", f);
}

static void parts_table(FILE *f, const cJSON *parts) {
    if (cJSON_GetArraySize(parts) <= 0) return;
    fputs("\n| part | rule | measured | verdict |\n|---|---|---|---|\n", f);
    const cJSON *p;
    cJSON_ArrayForEach(p, parts) {
        fputs("| ", f); cell(f, str(p, "name"));
        fputs(" | ", f); cell(f, str(p, "rule"));
        fputs(" | ", f); cell(f, str(p, "measured"));
        fprintf(f, " | %s |\n", str(p, "verdict"));
    }
}

nl_status nl_ledger_markdown(const char *path, FILE *f, const char *const *only, int n_only) {
    FILE *in = fopen(path, "rb");
    if (!in) return nl_set_error(NL_EIO, "cannot open ledger %s", path);
    fseek(in, 0, SEEK_END);
    long len = ftell(in);
    fseek(in, 0, SEEK_SET);
    if (len < 0 || len > (64L << 20)) { fclose(in); return nl_set_error(NL_EFORMAT, "%s: not a ledger (size %ld)", path, len); }
    char *txt = malloc((size_t)len + 1);
    if (!txt) { fclose(in); return nl_set_error(NL_ENOMEM, "out of memory reading %s", path); }
    size_t got = fread(txt, 1, (size_t)len, in);
    fclose(in);
    txt[got] = 0;
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    const cJSON *entries = root ? cJSON_GetObjectItemCaseSensitive(root, "entries") : NULL;
    if (!cJSON_IsArray(entries)) {
        cJSON_Delete(root);
        return nl_set_error(NL_EFORMAT, "%s is not a ledger.json (no \"entries\" array)", path);
    }
    const char *mode = str(root, "mode");
    int shown = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, entries) {
        const char *name = str(e, "method");
        int want = n_only == 0;
        for (int i = 0; i < n_only; i++) want |= !strcmp(only[i], name);
        if (!want) continue;
        shown++;
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(e, "seconds"), *seeds = cJSON_GetObjectItemCaseSensitive(e, "seeds");
        fprintf(f, "#### `%s` (%s): %s\n\n", name, mode[0] ? mode : "?", str(e, "verdict"));
        fprintf(f, "Measured by `nnlab repro %s --%s` at commit `%s` on %s", name, mode[0] ? mode : "quick", str(e, "commit")[0] ? str(e, "commit") : "?",
                str(e, "machine")[0] ? str(e, "machine") : "an unrecorded machine");
        if (cJSON_IsNumber(sec)) fprintf(f, ", %.1f s", sec->valuedouble);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "deterministic"))) fputs(", deterministic", f);
        else if (cJSON_IsNumber(seeds) && seeds->valueint > 0) fprintf(f, ", %d seeds", seeds->valueint);
        fputs(".\n\n", f);
        fputs("Configuration: ", f); cell(f, str(e, "config"));
        fputs("\n\nMeasured: ", f); cell(f, str(e, "measured"));
        fputs("\n", f);
        if (str(e, "error")[0]) { fputs("\nError: ", f); cell(f, str(e, "error")); fputs("\n", f); }
        parts_table(f, cJSON_GetObjectItemCaseSensitive(e, "parts"));
        const cJSON *ctr = cJSON_GetObjectItemCaseSensitive(e, "controls");
        if (cJSON_GetArraySize(ctr) > 0) {
            fputs("\n| control | kind | what | measured | rule says |\n|---|---|---|---|---|\n", f);
            const cJSON *c;
            cJSON_ArrayForEach(c, ctr) {
                fputs("| ", f); cell(f, str(c, "name"));
                fputs(" | ", f); cell(f, str(c, "kind"));
                fputs(" | ", f); cell(f, str(c, "what"));
                fputs(" | ", f); cell(f, str(c, "measured"));
                fprintf(f, " | %s |\n", strcmp(str(c, "verdict"), "pass") ? "rejected" : "ACCEPTED");
            }
        }
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "metrics");
        if (cJSON_GetArraySize(m) > 0) {
            fputs("\n| metric | value |\n|---|---|\n", f);
            const cJSON *v;
            cJSON_ArrayForEach(v, m) {
                fputs("| `", f); cell(f, v->string); fputs("` | ", f);
                num(f, v);
                fputs(" |\n", f);
            }
        }
        fputs("\n", f);
    }
    cJSON_Delete(root);
    if (n_only > 0 && shown < n_only) return nl_set_error(NL_ENOTFOUND, "%s: %d of the %d requested entries are not in the ledger", path, n_only - shown, n_only);
    return NL_OK;
}
