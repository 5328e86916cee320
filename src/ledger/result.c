/* Experiment results: metrics (name -> double) and curves (named (x, y) series). */
#include "nnlab/ledger.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nl_exp_result_init(nl_exp_result *r) { memset(r, 0, sizeof *r); }

void nl_exp_result_free(nl_exp_result *r) {
    if (!r) return;
    free(r->metrics);
    free(r->parts);
    for (int i = 0; i < r->n_controls; i++) {
        nl_exp_result_free(r->controls[i].r);
        free(r->controls[i].r);
    }
    free(r->controls);
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

nl_status nl_exp_set_mean_se(nl_exp_result *r, const char *name, const double *x, int n) {
    double m, se;
    nl_stats_mean_se(x, n, &m, &se);
    char b[sizeof r->metrics[0].name + 4];
    snprintf(b, sizeof b, "%s_mean", name);
    nl_status s = nl_exp_set(r, b, m);
    if (s) return s;
    snprintf(b, sizeof b, "%s_se", name);
    return nl_exp_set(r, b, se);
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

/* ---- schema v2: parts and controls ---- */
nl_status nl_exp_part_set(nl_exp_result *r, const char *name, const char *rule, int pass, const char *fmt, ...) {
    nl_exp_part *p = NULL;
    for (int i = 0; i < r->n_parts; i++)
        if (!strcmp(r->parts[i].name, name)) p = &r->parts[i];
    if (!p) {
        if (strlen(name) >= sizeof p->name) return nl_set_error(NL_EINVAL, "part name '%s' is too long", name);
        if (r->n_parts == r->cap_parts) {
            int nc = r->cap_parts ? 2 * r->cap_parts : 4;
            nl_exp_part *np = realloc(r->parts, (size_t)nc * sizeof *np);
            if (!np) return nl_set_error(NL_ENOMEM, "parts: out of memory");
            r->parts = np;
            r->cap_parts = nc;
        }
        p = &r->parts[r->n_parts++];
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", name);
    }
    snprintf(p->rule, sizeof p->rule, "%s", rule ? rule : "");
    p->pass = pass ? 1 : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->measured, sizeof p->measured, fmt ? fmt : "", ap);
    va_end(ap);
    return NL_OK;
}

int nl_exp_parts_pass(const nl_exp_result *r) {
    if (r->n_parts == 0) return 0;
    for (int i = 0; i < r->n_parts; i++)
        if (!r->parts[i].pass) return 0;
    return 1;
}

nl_exp_result *nl_exp_control_add(nl_exp_result *r, const char *name, const char *kind, const char *what) {
    for (int i = 0; i < r->n_controls; i++)
        if (!strcmp(r->controls[i].name, name)) return r->controls[i].r;
    if (strlen(name) >= sizeof r->controls[0].name) {
        nl_set_error(NL_EINVAL, "control name '%s' is too long", name);
        return NULL;
    }
    if (r->n_controls == r->cap_controls) {
        int nc = r->cap_controls ? 2 * r->cap_controls : 4;
        nl_exp_control *c = realloc(r->controls, (size_t)nc * sizeof *c);
        if (!c) { nl_set_error(NL_ENOMEM, "controls: out of memory"); return NULL; }
        r->controls = c;
        r->cap_controls = nc;
    }
    nl_exp_control *c = &r->controls[r->n_controls];
    memset(c, 0, sizeof *c);
    c->r = calloc(1, sizeof *c->r);
    if (!c->r) { nl_set_error(NL_ENOMEM, "controls: out of memory"); return NULL; }
    r->n_controls++;
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->kind, sizeof c->kind, "%s", kind ? kind : "broken");
    snprintf(c->what, sizeof c->what, "%s", what ? what : "");
    return c->r;
}

/* ---- statistics ---- */
void nl_stats_mean_se(const double *x, int n, double *mean, double *se) {
    double m = 0, ss = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m = n > 0 ? m / n : NAN;
    for (int i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    if (mean) *mean = m;
    if (se) *se = n >= 2 ? sqrt(ss / (n - 1) / n) : NAN;
}

double nl_stats_paired_t(const double *a, const double *b, int n, double *mean_diff, double *se_diff) {
    double m = 0, ss = 0;
    for (int i = 0; i < n; i++) m += a[i] - b[i];
    m = n > 0 ? m / n : NAN;
    for (int i = 0; i < n; i++) ss += (a[i] - b[i] - m) * (a[i] - b[i] - m);
    const double se = n >= 2 ? sqrt(ss / (n - 1) / n) : NAN;
    if (mean_diff) *mean_diff = m;
    if (se_diff) *se_diff = se;
    if (n < 2) return NAN;
    if (se == 0) return m > 0 ? INFINITY : (m < 0 ? -INFINITY : NAN);
    return m / se;
}

double nl_stats_t95(int df) {
    /* one-sided 95% quantiles of Student's t (standard tables) */
    static const double t[30] = {6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812,
                                 1.796, 1.782, 1.771, 1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725,
                                 1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697};
    if (df < 1) return NAN;
    if (df <= 30) return t[df - 1];
    if (df <= 40) return 1.697 + (1.684 - 1.697) * (df - 30) / 10.0;
    if (df <= 60) return 1.684 + (1.671 - 1.684) * (df - 40) / 20.0;
    if (df <= 120) return 1.671 + (1.658 - 1.671) * (df - 60) / 60.0;
    return 1.645;
}

/* ---- provenance ---- */
char *openblas_get_corename(void); /* OpenBLAS extension */

void nl_machine_describe(char *buf, size_t n) {
    char model[160] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                const char *c = strchr(line, ':');
                if (c) {
                    c++;
                    while (*c == ' ' || *c == '\t') c++;
                    snprintf(model, sizeof model, "%s", c);
                    model[strcspn(model, "\n")] = 0;
                }
                break;
            }
        fclose(f);
    }
    const char *core = openblas_get_corename();
    snprintf(buf, n, "%s; BLAS core %s; threads %d", model, core ? core : "?", nl_get_num_threads());
}

const char *nl_mode_name(int mode) { return mode == NL_MODE_FULL ? "full" : mode == NL_MODE_SMOKE ? "smoke" : "quick"; }

const void *nl_experiment_config(const nl_experiment *e, int mode) {
    return mode == NL_MODE_FULL ? e->full : mode == NL_MODE_SMOKE ? e->smoke : e->quick;
}

const char *nl_experiment_desc(const nl_experiment *e, int mode) {
    return mode == NL_MODE_FULL ? e->full_desc : mode == NL_MODE_SMOKE ? e->smoke_desc : e->quick_desc;
}

int nl_exp_get_count(const nl_exp_result *r, const char *name, int max) {
    const double v = nl_exp_get(r, name, NULL);
    if (!(v >= 0) || max <= 0) return 0; /* NaN (absent) too */
    return v >= max ? max : (int)v;
}

nl_status nl_exp_set_seed(nl_exp_result *r, const char *key, int seed, double value) {
    char name[160];
    if (snprintf(name, sizeof name, "%s_seed%d", key, seed) >= (int)sizeof name)
        return nl_set_error(NL_EINVAL, "metric name %s_seed%d is too long", key, seed);
    return nl_exp_set(r, name, value);
}

void nl_exp_get_seeds(const nl_exp_result *r, const char *key, int n, double *x) {
    char name[160];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s_seed%d", key, i + 1);
        int found = 0;
        const double v = nl_exp_get(r, name, &found);
        x[i] = found ? v : NAN;
    }
}

nl_status nl_exp_set_seed_mean_se(nl_exp_result *r, const char *key, int n) {
    double x[64]; /* [n] */
    if (n < 0 || n > 64) return nl_set_error(NL_EINVAL, "nl_exp_set_seed_mean_se: %d seeds (0..64)", n);
    nl_exp_get_seeds(r, key, n, x);
    return nl_exp_set_mean_se(r, key, x, n);
}

double nl_exp_paired_lower(const nl_exp_result *r, const char *a, const char *b, int n, double *mean, double *se) {
    double x[64], y[64], m = NAN, s = NAN; /* x, y: [n] per-seed values */
    if (n >= 2 && n <= 64) {
        nl_exp_get_seeds(r, a, n, x);
        nl_exp_get_seeds(r, b, n, y);
        nl_stats_paired_t(x, y, n, &m, &s);
    }
    if (mean) *mean = m;
    if (se) *se = s;
    return n >= 2 && n <= 64 ? m - nl_stats_t95(n - 1) * s : NAN;
}
