/* nnlab list */
#include "app.h"
#include "methods.h"
#include "nnlab/ledger.h"
#include <cjson/cJSON.h>
#include <string.h>

static void help_list(FILE *f) {
    fprintf(f,
            "usage: nnlab list [--json]\n"
            "\n"
            "List every registered experiment of the claims ledger: name, method (methods/<folder>), status, paper, claim.\n"
            "\n"
            "  --json               one JSON document with the same fields and the quick/full configurations\n");
}

int cmd_list(int argc, char **argv) {
    int json = 0;
    nl_cli_opt opts[] = {{"--json", NL_OPT_FLAG, &json, 0, 0, 0, 0, NULL}};
    int n_pos, help;
    int rc = nl_cli_parse("list", argc, argv, opts, 1, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_list(stdout);
        return NL_CLI_OK;
    }
    const int n = nl_experiment_count();
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(root, "experiments");
        for (int i = 0; i < n; i++) {
            const nl_experiment *e = nl_experiment_at(i);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "method", e->name);
            const nl_method *m = nl_experiment_method(e);
            cJSON_AddStringToObject(o, "method_id", m ? m->id : "");
            cJSON_AddStringToObject(o, "status", nl_experiment_status(e));
            cJSON_AddStringToObject(o, "paper", e->paper ? e->paper : "");
            cJSON_AddStringToObject(o, "claim", e->claim ? e->claim : "");
            cJSON_AddStringToObject(o, "quick", e->quick_desc ? e->quick_desc : "");
            cJSON_AddStringToObject(o, "full", e->full_desc ? e->full_desc : "");
            if (e->smoke) cJSON_AddStringToObject(o, "smoke", e->smoke_desc ? e->smoke_desc : "");
            else cJSON_AddNullToObject(o, "smoke");
            cJSON_AddStringToObject(o, "metrics", e->metrics ? e->metrics : "");
            cJSON_AddItemToArray(arr, o);
        }
        char *txt = cJSON_Print(root);
        printf("%s\n", txt);
        cJSON_free(txt);
        cJSON_Delete(root);
        return NL_CLI_OK;
    }
    int wm = 6, ws = 6;
    for (int i = 0; i < n; i++) {
        const nl_experiment *e = nl_experiment_at(i);
        if ((int)strlen(e->name) > wm) wm = (int)strlen(e->name);
        if ((int)strlen(nl_experiment_status(e)) > ws) ws = (int)strlen(nl_experiment_status(e));
    }
    printf("%d registered experiments (run them with: nnlab repro [METHOD...] --quick|--full)\n\n", n);
    for (int i = 0; i < n; i++) {
        const nl_experiment *e = nl_experiment_at(i);
        printf("%-*s  %-*s  %s\n", wm, e->name, ws, nl_experiment_status(e), e->paper ? e->paper : "");
        printf("%-*s  %-*s  claim: %s\n", wm, "", ws, "", e->claim ? e->claim : "");
        const nl_method *m = nl_experiment_method(e);
        if (m && strcmp(m->id, e->name)) printf("%-*s  %-*s  method: %s\n", wm, "", ws, "", m->id);
        if (i + 1 < n) printf("\n");
    }
    return NL_CLI_OK;
}
