/* Experiment results: metrics (name -> double) and curves (named (x, y) series). */
#include "nnlab/ledger.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nl_exp_result_init(nl_exp_result *r) { memset(r, 0, sizeof *r); }

void nl_exp_result_free(nl_exp_result *r) {
    if (!r) return;
    free(r->metrics);
    for (int i = 0; i < r->n_curves; i++) {
        free(r->curves[i]->x);
        free(r->curves[i]->y);
        free(r->curves[i]);
    }
    free(r->curves);
    memset(r, 0, sizeof *r);
}

nl_status nl_exp_set(nl_exp_result *r, const char *name, double value) {
    for (int i = 0; i < r->n_metrics; i++)
        if (!strcmp(r->metrics[i].name, name)) {
            r->metrics[i].value = value;
            return NL_OK;
        }
    if (strlen(name) >= sizeof r->metrics[0].name) return nl_set_error(NL_EINVAL, "metric name '%s' is too long", name);
    if (r->n_metrics == r->cap_metrics) {
        int nc = r->cap_metrics ? 2 * r->cap_metrics : 16;
        nl_metric *m = realloc(r->metrics, (size_t)nc * sizeof *m);
        if (!m) return nl_set_error(NL_ENOMEM, "metrics: out of memory");
        r->metrics = m;
        r->cap_metrics = nc;
    }
    nl_metric *m = &r->metrics[r->n_metrics++];
    snprintf(m->name, sizeof m->name, "%s", name);
    m->value = value;
    return NL_OK;
}

double nl_exp_get(const nl_exp_result *r, const char *name, int *found) {
    for (int i = 0; i < r->n_metrics; i++)
        if (!strcmp(r->metrics[i].name, name)) {
            if (found) *found = 1;
            return r->metrics[i].value;
        }
    if (found) *found = 0;
    return NAN;
}

nl_curve *nl_exp_curve(nl_exp_result *r, const char *plot, const char *name, const char *xlabel, const char *ylabel) {
    for (int i = 0; i < r->n_curves; i++)
        if (!strcmp(r->curves[i]->plot, plot) && !strcmp(r->curves[i]->name, name)) return r->curves[i];
    if (r->n_curves == r->cap_curves) {
        int nc = r->cap_curves ? 2 * r->cap_curves : 8;
        nl_curve **c = realloc(r->curves, (size_t)nc * sizeof *c);
        if (!c) { nl_set_error(NL_ENOMEM, "curves: out of memory"); return NULL; }
        r->curves = c;
        r->cap_curves = nc;
    }
    nl_curve *c = calloc(1, sizeof *c);
    if (!c) { nl_set_error(NL_ENOMEM, "curves: out of memory"); return NULL; }
    snprintf(c->plot, sizeof c->plot, "%s", plot);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->xlabel, sizeof c->xlabel, "%s", xlabel ? xlabel : "");
    snprintf(c->ylabel, sizeof c->ylabel, "%s", ylabel ? ylabel : "");
    r->curves[r->n_curves++] = c;
    return c;
}

nl_status nl_curve_add(nl_curve *c, double x, double y) {
    if (!c) return nl_set_error(NL_EINVAL, "curve_add: NULL curve");
    if (c->n == c->cap) {
        int64_t nc = c->cap ? 2 * c->cap : 64;
        double *a = realloc(c->x, (size_t)nc * sizeof *a);
        if (!a) return nl_set_error(NL_ENOMEM, "curve_add: out of memory");
        c->x = a;
        double *b = realloc(c->y, (size_t)nc * sizeof *b);
        if (!b) return nl_set_error(NL_ENOMEM, "curve_add: out of memory");
        c->y = b;
        c->cap = nc;
    }
    c->x[c->n] = x;
    c->y[c->n] = y;
    c->n++;
    return NL_OK;
}

const char *nl_experiment_status(const nl_experiment *e) {
    if (e->status) return e->status;
    return e->run ? "ready" : "planned";
}
