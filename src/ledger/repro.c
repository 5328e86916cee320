/* Reproduction runs: run the selected experiments, judge them, print the table, write ledger.json. */
#include "nnlab/ledger.h"
#include "nnlab/safetensors.h"
#include "sbuf.h"
#include "ledger_internal.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#ifndef NL_VERSION_STRING
#define NL_VERSION_STRING "0.1.0"
#endif

void nl_repro_free(nl_repro_entry *entries, int n) {
    if (!entries) return;
    for (int i = 0; i < n; i++) nl_exp_result_free(&entries[i].r);
    free(entries);
}

/* ---- table ---- */
static void clip(char *dst, size_t n, const char *src, size_t maxw) {
    size_t len = strlen(src);
    if (len <= maxw) snprintf(dst, n, "%s", src);
    else snprintf(dst, n, "%.*s...", (int)(maxw - 3), src);
}

void nl_ledger_print_table(FILE *f, const nl_repro_entry *en, int n) {
    if (!f) return;
    const size_t CLAIM_W = 60, MEAS_W = 70;
    int wm = 6, wc = 5, wmeas = 8;
    char buf[512];
    for (int i = 0; i < n; i++) {
        int l = (int)strlen(en[i].e->name);
        if (l > wm) wm = l;
        clip(buf, sizeof buf, en[i].e->claim ? en[i].e->claim : "", CLAIM_W);
        if ((int)strlen(buf) > wc) wc = (int)strlen(buf);
        clip(buf, sizeof buf, en[i].measured, MEAS_W);
        if ((int)strlen(buf) > wmeas) wmeas = (int)strlen(buf);
    }
    fprintf(f, "%-*s  %-*s  %-*s  %-7s  %8s\n", wm, "method", wc, "claim", wmeas, "measured", "verdict", "seconds");
    int total = wm + wc + wmeas + 7 + 8 + 8;
    for (int i = 0; i < total; i++) fputc('-', f);
    fputc('\n', f);
    int passed = 0;
    double secs = 0;
    for (int i = 0; i < n; i++) {
        char cl[128], me[128];
        clip(cl, sizeof cl, en[i].e->claim ? en[i].e->claim : "", CLAIM_W);
        clip(me, sizeof me, en[i].measured, MEAS_W);
        fprintf(f, "%-*s  %-*s  %-*s  %-7s  %8.1f\n", wm, en[i].e->name, wc, cl, wmeas, me, en[i].pass ? "pass" : "FAIL", en[i].seconds);
        passed += en[i].pass;
        secs += en[i].seconds;
    }
    fprintf(f, "%d/%d passed in %.1f s\n", passed, n, secs);
    fflush(f);
}

/* ---- JSON ---- */
static cJSON *num(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static nl_status write_file_atomic(const char *path, const char *data, size_t len) {
    nl_atomic_file af;
    nl_status s = nl_atomic_open(&af, path);
    if (s) return s;
    if ((s = nl_atomic_write(&af, data, len))) {
        nl_atomic_abort(&af);
        return s;
    }
    return nl_atomic_commit(&af);
}

static cJSON *parts_json(const nl_exp_result *r) {
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; k < r->n_parts; k++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", r->parts[k].name);
        cJSON_AddStringToObject(p, "rule", r->parts[k].rule);
        cJSON_AddStringToObject(p, "measured", r->parts[k].measured);
        cJSON_AddStringToObject(p, "verdict", r->parts[k].pass ? "pass" : "fail");
        cJSON_AddItemToArray(a, p);
    }
    return a;
}

/* schema v2 fields of one entry: parts, controls (with their metrics and parts), seeds, machine, commit */
static void add_v2(cJSON *o, const nl_repro_entry *x) {
    cJSON_AddItemToObject(o, "parts", parts_json(&x->r));
    cJSON *cs = cJSON_AddArrayToObject(o, "controls");
    for (int k = 0; k < x->r.n_controls; k++) {
        const nl_exp_control *c = &x->r.controls[k];
        cJSON *co = cJSON_CreateObject();
        cJSON_AddStringToObject(co, "name", c->name);
        cJSON_AddStringToObject(co, "kind", c->kind);
        cJSON_AddStringToObject(co, "what", c->what);
        cJSON_AddStringToObject(co, "verdict", c->verdict ? "pass" : "fail");
        cJSON_AddStringToObject(co, "measured", c->measured);
        cJSON *m = cJSON_AddObjectToObject(co, "metrics");
        for (int j = 0; j < c->r->n_metrics; j++) cJSON_AddItemToObject(m, c->r->metrics[j].name, num(c->r->metrics[j].value));
        cJSON_AddItemToObject(co, "parts", parts_json(c->r));
        cJSON_AddItemToArray(cs, co);
    }
    cJSON_AddNumberToObject(o, "seeds", x->r.seeds);
    if (x->r.deterministic) cJSON_AddTrueToObject(o, "deterministic");
    cJSON_AddStringToObject(o, "machine", x->machine);
    cJSON_AddStringToObject(o, "commit", nl_build_commit());
}

nl_status nl_ledger_write_json(const char *path, const nl_repro_entry *en, int n, const char *mode) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "nnlab_version", NL_VERSION_STRING);
    cJSON_AddStringToObject(root, "mode", mode ? mode : "quick");
    cJSON *arr = cJSON_AddArrayToObject(root, "entries");
    const int mcode = mode && !strcmp(mode, "full") ? NL_MODE_FULL : mode && !strcmp(mode, "smoke") ? NL_MODE_SMOKE : NL_MODE_QUICK;
    for (int i = 0; i < n; i++) {
        const nl_repro_entry *x = &en[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "method", x->e->name);
        cJSON_AddStringToObject(o, "paper", x->e->paper ? x->e->paper : "");
        cJSON_AddStringToObject(o, "claim", x->e->claim ? x->e->claim : "");
        const char *cfg = nl_experiment_desc(x->e, mcode);
        cJSON_AddStringToObject(o, "config", cfg ? cfg : "");
        cJSON *m = cJSON_AddObjectToObject(o, "metrics");
        for (int k = 0; k < x->r.n_metrics; k++) cJSON_AddItemToObject(m, x->r.metrics[k].name, num(x->r.metrics[k].value));
        cJSON_AddStringToObject(o, "measured", x->measured);
        cJSON_AddStringToObject(o, "verdict", x->pass ? "pass" : "fail");
        cJSON_AddItemToObject(o, "seconds", num(x->seconds));
        if (x->errored) cJSON_AddStringToObject(o, "error", x->error);
        if (x->r.note[0]) cJSON_AddStringToObject(o, "note", x->r.note);
        add_v2(o, x);
        cJSON *cs = cJSON_AddArrayToObject(o, "curves");
        for (int k = 0; k < x->r.n_curves; k++) {
            const nl_curve *c = x->r.curves[k];
            cJSON *co = cJSON_CreateObject();
            cJSON_AddStringToObject(co, "plot", c->plot);
            cJSON_AddStringToObject(co, "name", c->name);
            cJSON_AddStringToObject(co, "xlabel", c->xlabel);
            cJSON_AddStringToObject(co, "ylabel", c->ylabel);
            cJSON *xs = cJSON_AddArrayToObject(co, "x"), *ys = cJSON_AddArrayToObject(co, "y");
            for (int64_t j = 0; j < c->n; j++) {
                cJSON_AddItemToArray(xs, num(c->x[j]));
                cJSON_AddItemToArray(ys, num(c->y[j]));
            }
            cJSON_AddItemToArray(cs, co);
        }
        cJSON_AddItemToArray(arr, o);
    }
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) return nl_set_error(NL_ENOMEM, "ledger.json: out of memory");
    nl_sbuf b = {0};
    sb_printf(&b, "%s\n", txt);
    cJSON_free(txt);
    if (b.oom) { free(b.s); return nl_set_error(NL_ENOMEM, "ledger.json: out of memory"); }
    nl_status s = write_file_atomic(path, b.s, b.len);
    free(b.s);
    return s;
}

/* ---- the run ---- */
/* Judge the main result, then every control with the same rule: the entry passes when the main result passes and
 * the rule rejects every control (a control the rule accepts is reported in the measured line). */
static int judge_entry(nl_repro_entry *x, int full) {
    int pass = x->e->judge(x->e, &x->r, full, x->measured, sizeof x->measured) ? 1 : 0;
    if (x->r.n_parts > 0 && !nl_exp_parts_pass(&x->r)) pass = 0;
    int accepted = 0;
    for (int k = 0; k < x->r.n_controls; k++) {
        nl_exp_control *c = &x->r.controls[k];
        c->verdict = x->e->judge(x->e, c->r, full, c->measured, sizeof c->measured) ? 1 : 0;
        accepted += c->verdict;
    }
    if (x->r.n_controls > 0) {
        size_t len = strlen(x->measured);
        snprintf(x->measured + len, sizeof x->measured - len, "; controls rejected %d/%d", x->r.n_controls - accepted,
                 x->r.n_controls);
    }
    return pass && !accepted;
}

nl_status nl__repro_write_outputs(const nl_repro_options *opt, const nl_repro_entry *en, int n) {
    if (!opt->out_dir) return NL_OK;
    char path[4200];
    const char *mode = nl_mode_name(opt->full);
    snprintf(path, sizeof path, "%s/ledger.json", opt->out_dir);
    nl_status s = nl_ledger_write_json(path, en, n, mode);
    if (s) return s;
    snprintf(path, sizeof path, "%s/report.html", opt->out_dir);
    return nl_ledger_write_html(path, en, n, mode);
}

/* Run and judge one experiment into x (x zeroed by the caller). Never fails: an error is recorded in the entry. */
void nl__repro_run_one(nl_repro_entry *x, const nl_experiment *e, const nl_repro_options *opt, const nl_exp_options *eo) {
    x->e = e;
    nl_exp_result_init(&x->r);
    nl_clear_error();
    nl_machine_describe(x->machine, sizeof x->machine);
    double t0 = nl_time();
    nl_status s;
    if (!x->e->run) {
        s = nl_set_error(NL_ESTATE, "experiment '%s' has no run function (status: %s)", x->e->name, nl_experiment_status(x->e));
    } else if (opt->full == NL_MODE_SMOKE && !x->e->smoke) {
        s = nl_set_error(NL_ESTATE, "experiment '%s' has no %s configuration", x->e->name, nl_mode_name(opt->full));
    } else {
        s = x->e->run(x->e, nl_experiment_config(x->e, opt->full), eo, &x->r);
    }
    x->seconds = nl_time() - t0;
    if (s) {
        x->errored = 1;
        x->pass = 0;
        snprintf(x->error, sizeof x->error, "%s: %s", nl_status_name(s), nl_last_error()[0] ? nl_last_error() : "(no message)");
        snprintf(x->measured, sizeof x->measured, "error: %s", x->error);
    } else if (x->e->judge) {
        x->pass = judge_entry(x, opt->full);
    } else {
        x->pass = 1;
        snprintf(x->measured, sizeof x->measured, "ran (no pass rule)");
    }
}

nl_status nl_repro_run(const nl_experiment *const *list, int n, const nl_repro_options *opt, nl_repro_entry **entries,
                       int *n_failed) {
    *entries = NULL;
    *n_failed = 0;
    nl_status s;
    if (opt->out_dir && (s = nl_mkdir_p(opt->out_dir))) return s;
    nl_repro_entry *en = calloc((size_t)(n > 0 ? n : 1), sizeof *en);
    if (!en) return nl_set_error(NL_ENOMEM, "repro: out of memory");
    if (opt->threads > 0) nl_set_num_threads(opt->threads);
    nl_exp_options eo = {opt->full, opt->threads > 0 ? opt->threads : nl_get_num_threads(), opt->verbose, opt->out_dir};
    if (opt->jobs > 1 && n > 1) {
        s = nl__repro_run_parallel(list, n, opt, en, n_failed);
        *entries = en;
        if (!s) nl_ledger_print_table(opt->table, en, n);
        return s;
    }
    for (int i = 0; i < n; i++) {
        nl_repro_entry *x = &en[i];
        if (opt->verbose)
            nl_progress("[%d/%d] %s (%s): %s", i + 1, n, list[i]->name, nl_mode_name(opt->full),
                        nl_experiment_desc(list[i], opt->full) ? nl_experiment_desc(list[i], opt->full) : "");
        nl__repro_run_one(x, list[i], opt, &eo);
        if (!x->pass) (*n_failed)++;
        if (opt->verbose)
            nl_progress("[%d/%d] %s: %s, %s (%.1f s)", i + 1, n, x->e->name, x->pass ? "pass" : "FAIL", x->measured, x->seconds);
        if ((s = nl__repro_write_outputs(opt, en, i + 1))) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", nl_last_error());
            *entries = en;
            return nl_set_error(s, "repro: writing the ledger: %s", msg);
        }
    }
    nl_ledger_print_table(opt->table, en, n);
    *entries = en;
    return NL_OK;
}
