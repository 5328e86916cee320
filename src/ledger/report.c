/* report.html: the ledger table and inline SVG line charts of every experiment's curves (no JavaScript). */
#include "nnlab/ledger.h"
#include "nnlab/safetensors.h"
#include "sbuf.h"
#include <math.h>
#include <string.h>
#include <time.h>

static const char *const g_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
#define N_COLORS ((int)(sizeof g_colors / sizeof g_colors[0]))

/* 1, 2 or 5 times a power of ten, close to x. */
static double nice_step(double range, int ticks) {
    double raw = range / ticks;
    double p = pow(10.0, floor(log10(raw)));
    double f = raw / p;
    double m = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
    return m * p;
}

static void fmt_tick(char *b, size_t n, double v, double step) {
    if (fabs(v) < step * 1e-9) v = 0;
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    if (fabs(v) >= 1e6 || (fabs(v) > 0 && fabs(v) < 1e-4)) snprintf(b, n, "%.2g", v);
    else snprintf(b, n, "%.*f", dec, v);
}

char *nl_ledger_svg(const nl_exp_result *r, const char *plot, int W, int H) {
    nl_sbuf b = {0};
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    const nl_curve *first = NULL;
    int ncur = 0;
    for (int i = 0; i < r->n_curves; i++) {
        const nl_curve *c = r->curves[i];
        if (strcmp(c->plot, plot)) continue;
        if (!first) first = c;
        ncur++;
        for (int64_t k = 0; k < c->n; k++) {
            if (!isfinite(c->x[k]) || !isfinite(c->y[k])) continue;
            if (c->x[k] < x0) x0 = c->x[k];
            if (c->x[k] > x1) x1 = c->x[k];
            if (c->y[k] < y0) y0 = c->y[k];
            if (c->y[k] > y1) y1 = c->y[k];
        }
    }
    const int ml = 64, mr = 16, mt = 30, mb = 46;
    const int pw = W - ml - mr, ph = H - mt - mb;
    const int HT = H + (ncur > 0 ? 8 + 16 * ncur : 0); /* the legend goes below the chart */
    int all_int = 1;
    for (int i = 0; i < r->n_curves; i++)
        if (!strcmp(r->curves[i]->plot, plot))
            for (int64_t k = 0; k < r->curves[i]->n; k++)
                if (isfinite(r->curves[i]->x[k]) && r->curves[i]->x[k] != floor(r->curves[i]->x[k])) all_int = 0;
    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">", W, HT, W, HT);
    sb_puts(&b, "<title>");
    sb_esc(&b, plot);
    sb_puts(&b, "</title>");
    sb_printf(&b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>", W, HT);
    sb_printf(&b, "<text x=\"%d\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">", W / 2);
    sb_esc(&b, plot);
    sb_puts(&b, "</text>");
    if (!first || !isfinite(x0)) {
        sb_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\" fill=\"#888\">no data</text></svg>", W / 2, H / 2);
        if (b.oom) { free(b.s); return NULL; }
        return b.s;
    }
    if (x1 - x0 < 1e-12 * (fabs(x0) + 1)) { x0 -= 0.5; x1 += 0.5; }
    if (y1 - y0 < 1e-12 * (fabs(y0) + 1)) { double d = fabs(y0) > 0 ? 0.05 * fabs(y0) : 0.5; y0 -= d; y1 += d; }
    double xs = nice_step(x1 - x0, 6), ys = nice_step(y1 - y0, 5);
    if (all_int && xs < 1) xs = 1;
    double xa = floor(x0 / xs) * xs, xb = ceil(x1 / xs) * xs;
    double ya = floor(y0 / ys) * ys, yb = ceil(y1 / ys) * ys;
#define PX(v) (ml + (double)pw * ((v) - xa) / (xb - xa))
#define PY(v) (mt + (double)ph * (1.0 - ((v) - ya) / (yb - ya)))
    /* grid and ticks */
    sb_puts(&b, "<g class=\"grid\" stroke=\"#e5e5e5\" stroke-width=\"1\">");
    for (double v = xa; v <= xb + xs * 1e-9; v += xs) sb_printf(&b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", PX(v), mt, PX(v), mt + ph);
    for (double v = ya; v <= yb + ys * 1e-9; v += ys) sb_printf(&b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", ml, PY(v), ml + pw, PY(v));
    sb_puts(&b, "</g>");
    sb_printf(&b, "<g class=\"axes\" stroke=\"#333\" stroke-width=\"1\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/></g>",
              ml, mt + ph, ml + pw, mt + ph, ml, mt, ml, mt + ph);
    sb_puts(&b, "<g class=\"ticks\" font-size=\"11\" fill=\"#333\">");
    char t[64];
    for (double v = xa; v <= xb + xs * 1e-9; v += xs) {
        fmt_tick(t, sizeof t, v, xs);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>", PX(v),
                  mt + ph, PX(v), mt + ph + 4, PX(v), mt + ph + 16, t);
    }
    for (double v = ya; v <= yb + ys * 1e-9; v += ys) {
        fmt_tick(t, sizeof t, v, ys);
        sb_printf(&b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>", ml - 4,
                  PY(v), ml, PY(v), ml - 6, PY(v) + 4, t);
    }
    sb_puts(&b, "</g>");
    /* axis labels */
    sb_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">", ml + pw / 2, H - 8);
    sb_esc(&b, first->xlabel);
    sb_printf(&b, "</text><text x=\"14\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 14 %d)\">", mt + ph / 2, mt + ph / 2);
    sb_esc(&b, first->ylabel);
    sb_puts(&b, "</text>");
    /* series */
    int ci = 0;
    for (int i = 0; i < r->n_curves; i++) {
        const nl_curve *c = r->curves[i];
        if (strcmp(c->plot, plot)) continue;
        const char *col = g_colors[ci % N_COLORS];
        sb_printf(&b, "<g class=\"series\"><polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        int64_t shown = 0;
        for (int64_t k = 0; k < c->n; k++) {
            if (!isfinite(c->x[k]) || !isfinite(c->y[k])) continue;
            sb_printf(&b, "%s%.1f,%.1f", shown++ ? " " : "", PX(c->x[k]), PY(c->y[k]));
        }
        sb_puts(&b, "\"/>");
        if (shown <= 40)
            for (int64_t k = 0; k < c->n; k++)
                if (isfinite(c->x[k]) && isfinite(c->y[k])) sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", PX(c->x[k]), PY(c->y[k]), col);
        sb_puts(&b, "</g>");
        ci++;
    }
    /* legend: one row per series below the x-axis label */
    sb_puts(&b, "<g class=\"legend\" font-size=\"11\">");
    ci = 0;
    for (int i = 0; i < r->n_curves; i++) {
        const nl_curve *c = r->curves[i];
        if (strcmp(c->plot, plot)) continue;
        int yy = H + 4 + 16 * ci;
        sb_printf(&b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">", ml, yy - 4, ml + 18,
                  yy - 4, g_colors[ci % N_COLORS], ml + 24, yy);
        sb_esc(&b, c->name);
        sb_puts(&b, "</text>");
        ci++;
    }
    sb_puts(&b, "</g></svg>");
#undef PX
#undef PY
    if (b.oom) { free(b.s); nl_set_error(NL_ENOMEM, "svg: out of memory"); return NULL; }
    return b.s;
}

static void fmt_metric(char *b, size_t n, double v) {
    if (!isfinite(v)) snprintf(b, n, "%s", isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf");
    else snprintf(b, n, "%.6g", v);
}

/* the claim's parts and the controls, as two small tables */
static void html_parts_controls(nl_sbuf *b, const nl_repro_entry *x) {
    if (x->r.n_parts) {
        sb_puts(b, "<table class=\"parts\"><thead><tr><th>part</th><th>rule</th><th>measured</th><th>verdict</th></tr></thead><tbody>\n");
        for (int k = 0; k < x->r.n_parts; k++) {
            const nl_exp_part *p = &x->r.parts[k];
            sb_puts(b, "<tr><td>");
            sb_esc(b, p->name);
            sb_puts(b, "</td><td>");
            sb_esc(b, p->rule);
            sb_puts(b, "</td><td>");
            sb_esc(b, p->measured);
            sb_printf(b, "</td><td class=\"%s\">%s</td></tr>\n", p->pass ? "pass" : "fail", p->pass ? "pass" : "fail");
        }
        sb_puts(b, "</tbody></table>\n");
    }
    if (x->r.n_controls) {
        sb_puts(b, "<table class=\"controls\"><thead><tr><th>control</th><th>kind</th><th>what</th><th>measured</th><th>rule says</th></tr></thead><tbody>\n");
        for (int k = 0; k < x->r.n_controls; k++) {
            const nl_exp_control *c = &x->r.controls[k];
            sb_puts(b, "<tr><td>");
            sb_esc(b, c->name);
            sb_puts(b, "</td><td>");
            sb_esc(b, c->kind);
            sb_puts(b, "</td><td>");
            sb_esc(b, c->what);
            sb_puts(b, "</td><td>");
            sb_esc(b, c->measured);
            /* a control is supposed to fail: "rejected" is the good outcome */
            sb_printf(b, "</td><td class=\"%s\">%s</td></tr>\n", c->verdict ? "fail" : "pass", c->verdict ? "ACCEPTED" : "rejected");
        }
        sb_puts(b, "</tbody></table>\n");
    }
}

nl_status nl_ledger_write_html(const char *path, const nl_repro_entry *en, int n, const char *mode) {
    nl_sbuf b = {0};
    int passed = 0;
    for (int i = 0; i < n; i++) passed += en[i].pass;
    char when[64];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tmv);
    sb_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>nnlab claims ledger</title>\n<style>\n"
                "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\n"
                "table{border-collapse:collapse;width:100%;margin:1em 0}th,td{border:1px solid #ccc;padding:6px 8px;text-align:left;vertical-align:top}\n"
                "th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
                ".pass{color:#176f2c;font-weight:bold}.fail{color:#b00020;font-weight:bold}\n"
                ".plots{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #ddd}\n"
                "dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}dd{margin:0}\n"
                "code{background:#f6f6f6;padding:0 3px}\n</style>\n</head>\n<body>\n");
    sb_printf(&b, "<h1>nnlab claims ledger</h1>\n<p>Mode <b>%s</b>: %d of %d experiments passed. Generated %s by <code>nnlab repro</code>.</p>\n",
              mode ? mode : "quick", passed, n, when);
    sb_puts(&b, "<table id=\"ledger\">\n<thead><tr><th>method</th><th>paper</th><th>claim</th><th>measured</th><th>verdict</th><th>seconds</th></tr></thead>\n<tbody>\n");
    for (int i = 0; i < n; i++) {
        const nl_repro_entry *x = &en[i];
        sb_puts(&b, "<tr><td><a href=\"#exp-");
        sb_esc(&b, x->e->name);
        sb_puts(&b, "\">");
        sb_esc(&b, x->e->name);
        sb_puts(&b, "</a></td><td>");
        sb_esc(&b, x->e->paper);
        sb_puts(&b, "</td><td>");
        sb_esc(&b, x->e->claim);
        sb_puts(&b, "</td><td>");
        sb_esc(&b, x->measured);
        sb_printf(&b, "</td><td class=\"%s\">%s</td><td class=\"num\">%.1f</td></tr>\n", x->pass ? "pass" : "fail", x->pass ? "pass" : "fail", x->seconds);
    }
    sb_puts(&b, "</tbody>\n</table>\n");
    const int mcode = mode && !strcmp(mode, "full") ? NL_MODE_FULL : mode && !strcmp(mode, "smoke") ? NL_MODE_SMOKE : NL_MODE_QUICK;
    for (int i = 0; i < n; i++) {
        const nl_repro_entry *x = &en[i];
        sb_puts(&b, "<section>\n<h2 id=\"exp-");
        sb_esc(&b, x->e->name);
        sb_puts(&b, "\">");
        sb_esc(&b, x->e->name);
        sb_printf(&b, " <span class=\"%s\">%s</span></h2>\n<dl>", x->pass ? "pass" : "fail", x->pass ? "pass" : "fail");
        sb_puts(&b, "<dt>paper</dt><dd>");
        sb_esc(&b, x->e->paper);
        sb_puts(&b, "</dd><dt>claim</dt><dd>");
        sb_esc(&b, x->e->claim);
        sb_puts(&b, "</dd><dt>configuration</dt><dd>");
        sb_esc(&b, nl_experiment_desc(x->e, mcode) ? nl_experiment_desc(x->e, mcode) : "");
        sb_puts(&b, "</dd><dt>measured</dt><dd>");
        sb_esc(&b, x->measured);
        sb_puts(&b, "</dd>");
        if (x->r.note[0]) {
            sb_puts(&b, "<dt>note</dt><dd>");
            sb_esc(&b, x->r.note);
            sb_puts(&b, "</dd>");
        }
        sb_puts(&b, "<dt>metrics</dt><dd>");
        for (int k = 0; k < x->r.n_metrics; k++) {
            char v[48];
            fmt_metric(v, sizeof v, x->r.metrics[k].value);
            sb_printf(&b, "%s<code>", k ? ", " : "");
            sb_esc(&b, x->r.metrics[k].name);
            sb_printf(&b, "</code> = %s", v);
        }
        if (!x->r.n_metrics) sb_puts(&b, "(none)");
        sb_printf(&b, "</dd><dt>seeds</dt><dd>%s", x->r.deterministic ? "deterministic" : "");
        if (!x->r.deterministic) sb_printf(&b, "%d", x->r.seeds);
        sb_puts(&b, "</dd><dt>machine, commit</dt><dd>");
        sb_esc(&b, x->machine);
        sb_puts(&b, ", ");
        sb_esc(&b, nl_build_commit());
        sb_puts(&b, "</dd></dl>\n");
        html_parts_controls(&b, x);
        sb_puts(&b, "<div class=\"plots\">\n");
        /* one chart per distinct plot group, in order of first appearance */
        for (int k = 0; k < x->r.n_curves; k++) {
            int seen = 0;
            for (int j = 0; j < k; j++) seen |= !strcmp(x->r.curves[j]->plot, x->r.curves[k]->plot);
            if (seen) continue;
            char *svg = nl_ledger_svg(&x->r, x->r.curves[k]->plot, 520, 320);
            if (svg) {
                sb_puts(&b, svg);
                sb_puts(&b, "\n");
                free(svg);
            }
        }
        sb_puts(&b, "</div>\n</section>\n");
    }
    sb_puts(&b, "</body>\n</html>\n");
    if (b.oom) {
        free(b.s);
        return nl_set_error(NL_ENOMEM, "report.html: out of memory");
    }
    nl_atomic_file af;
    nl_status s = nl_atomic_open(&af, path);
    if (!s && (s = nl_atomic_write(&af, b.s, b.len))) nl_atomic_abort(&af);
    else if (!s) s = nl_atomic_commit(&af);
    free(b.s);
    return s;
}
