/* Claims ledger: results API, registry, the repro runner with passing / failing / erroring experiments,
 * ledger.json (valid JSON with every field), report.html (table, SVG), the printed table. */
#include "nltest.h"
#include <signal.h>
#include "nnlab/ledger.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- three fake experiments ---- */
typedef struct {
    double acc;
} fake_cfg;

static nl_status fake_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const fake_cfg *c = config;
    nl_exp_set(out, "accuracy", c->acc);
    nl_exp_set(out, "weird", NAN);
    nl_curve *a = nl_exp_curve(out, "Accuracy", "test <b>", "epoch", "accuracy (%)");
    nl_curve *b = nl_exp_curve(out, "Accuracy", "train", "epoch", "accuracy (%)");
    nl_curve *l = nl_exp_curve(out, "Loss & co", "loss", "step", "loss");
    for (int i = 1; i <= 5; i++) {
        nl_curve_add(a, i, 100 * c->acc - 5.0 / i);
        nl_curve_add(b, i, 100 * c->acc - 2.0 / i);
        nl_curve_add(l, 10 * i, 1.0 / i);
    }
    nl_curve_add(l, 60, NAN); /* skipped when drawing, null in JSON */
    snprintf(out->note, sizeof out->note, "mode %s", opt->full ? "full" : "quick");
    return NL_OK;
}

static int fake_judge(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t n) {
    double acc = nl_exp_get(r, "accuracy", NULL);
    snprintf(measured, n, "accuracy %.1f%% (need >= 50%%)", 100 * acc);
    return acc >= 0.5;
}

static nl_status broken_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    nl_exp_set(out, "partial", 1.0);
    return nl_set_error(NL_ENOTFOUND, "dataset xyz not found: install package xyz-data");
}

static const fake_cfg good = {0.9}, bad = {0.2};
static const nl_experiment e_pass = {"good", "A. Author: Good paper (2020)", "Accuracy is >= 50% when a < b & c > d.", "quick good", "full good",
                                     &good, &good, "accuracy,weird", NULL, fake_run, fake_judge, NULL, NULL};
static const nl_experiment e_fail = {"bad", "B. Author: Bad paper (2021)", "Accuracy is >= 50%.", "quick bad", "full bad", &bad, &bad,
                                     "accuracy", NULL, fake_run, fake_judge, NULL, NULL};
static const nl_experiment e_err = {"broken", "C. Author: Broken paper", "It runs.", "quick", "full", NULL, NULL, "", NULL, broken_run, fake_judge, NULL, NULL};
static const nl_experiment e_planned = {"planned", "D. Author", "Later.", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};

static void test_result_api(void) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    NLT_OK(nl_exp_set(&r, "a", 1));
    NLT_OK(nl_exp_set(&r, "b", 2));
    NLT_OK(nl_exp_set(&r, "a", 3));
    int found;
    NLT_CHECK(r.n_metrics == 2 && nl_exp_get(&r, "a", &found) == 3 && found, "overwrite");
    NLT_CHECK(isnan(nl_exp_get(&r, "zz", &found)) && !found, "absent metric");
    nl_curve *c = nl_exp_curve(&r, "p", "x", "xl", "yl");
    NLT_CHECK(c == nl_exp_curve(&r, "p", "x", NULL, NULL) && c != nl_exp_curve(&r, "q", "x", NULL, NULL), "curve lookup by (plot, name)");
    for (int i = 0; i < 1000; i++) NLT_OK(nl_curve_add(c, i, i * i));
    NLT_CHECK(c->n == 1000 && c->y[999] == 999.0 * 999.0 && !strcmp(c->xlabel, "xl"), "curve points");
    char *svg = nl_ledger_svg(&r, "p", 400, 300);
    NLT_CHECK(svg && strstr(svg, "<svg") && strstr(svg, "<polyline") && strstr(svg, "</svg>"), "svg of a curve");
    free(svg);
    svg = nl_ledger_svg(&r, "q", 400, 300); /* a curve without points */
    NLT_CHECK(svg && strstr(svg, "no data"), "empty plot");
    free(svg);
    nl_exp_result_free(&r);
}

static void test_status(void) {
    NLT_CHECK(!strcmp(nl_experiment_status(&e_planned), "planned"), "planned status");
    nl_experiment ready = e_planned;
    ready.run = fake_run;
    NLT_CHECK(!strcmp(nl_experiment_status(&ready), "ready"), "ready status");
    ready.status = "blocked";
    NLT_CHECK(!strcmp(nl_experiment_status(&ready), "blocked"), "explicit status");
}

/* ---- schema v2: a two-part rule, controls judged by the same rule, seeds ---- */
typedef struct { double acc, gap; int control_ok; } v2_cfg;

static void v2_fill(nl_exp_result *r, double acc, double gap) {
    nl_exp_set(r, "accuracy", acc);
    nl_exp_set(r, "gap", gap);
}

static nl_status v2_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const v2_cfg *c = config;
    v2_fill(out, c->acc, c->gap);
    out->seeds = 3;
    /* a broken variant (fails part "gap") and a generic substitute that fails (or, to test, passes) everything */
    nl_exp_result *b = nl_exp_control_add(out, "no-gap", "broken", "the variant without the mechanism");
    nl_exp_result *g = nl_exp_control_add(out, "generic", "generic", "a generic substitute");
    if (!b || !g) return NL_ENOMEM;
    NLT_CHECK(nl_exp_control_add(out, "no-gap", "broken", "again") == b, "control found by name");
    v2_fill(b, c->acc, 0.0);
    v2_fill(g, c->control_ok ? c->acc : 0.3, c->control_ok ? c->gap : 0.0);
    return NL_OK;
}

static int v2_judge(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t n) {
    double acc = nl_exp_get(r, "accuracy", NULL), gap = nl_exp_get(r, "gap", NULL);
    nl_exp_part_set(r, "accuracy", "accuracy >= 0.5", acc >= 0.5, "%.2f", acc);
    nl_exp_part_set(r, "gap", "gap > 0.1 (margin)", gap > 0.1, "%.2f", gap);
    snprintf(measured, n, "accuracy %.2f, gap %.2f", acc, gap);
    return nl_exp_parts_pass(r);
}

static const v2_cfg v2_ok = {0.9, 0.3, 0}, v2_leaky = {0.9, 0.3, 1};
static const nl_experiment e_v2 = {"v2", "E. Author", "Accuracy >= 50% and a gap.", "q", "f", &v2_ok, &v2_ok, "accuracy,gap", NULL, v2_run, v2_judge, NULL, NULL};
static const nl_experiment e_v2_leaky = {"v2-leaky", "E. Author", "Same, but a control passes.", "q", "f", &v2_leaky, &v2_leaky, "accuracy,gap",
                                         NULL, v2_run, v2_judge, NULL, NULL};

static void test_v2(void) {
    char dir[] = "/tmp/nltest_ledger2_XXXXXX";
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    const nl_experiment *list[2] = {&e_v2, &e_v2_leaky};
    nl_repro_options ro = {0, 1, 0, dir, NULL, 0};
    nl_repro_entry *en = NULL;
    int n_failed = -1;
    NLT_OK(nl_repro_run(list, 2, &ro, &en, &n_failed));
    NLT_CHECK(n_failed == 1, "failed %d", n_failed);
    NLT_CHECK(en[0].pass && en[0].r.n_parts == 2 && en[0].r.n_controls == 2, "v2 passes with its controls rejected");
    NLT_CHECK(!en[0].r.controls[0].verdict && !en[0].r.controls[1].verdict, "both controls rejected");
    NLT_CHECK(en[0].r.controls[0].r->n_parts == 2 && en[0].r.controls[0].r->parts[0].pass && !en[0].r.controls[0].r->parts[1].pass,
              "the broken control fails exactly the gap part");
    NLT_CHECK(strstr(en[0].measured, "controls rejected 2/2") != NULL, "measured: %s", en[0].measured);
    NLT_CHECK(!en[1].pass && en[1].r.controls[1].verdict && strstr(en[1].measured, "controls rejected 1/2"),
              "a control the rule accepts fails the entry: %s", en[1].measured);
    char json[300];
    snprintf(json, sizeof json, "%s/ledger.json", dir);
    char *txt = nlt_slurp(json, NULL);
    cJSON *root = txt ? cJSON_Parse(txt) : NULL;
    cJSON *e0 = root ? cJSON_GetArrayItem(cJSON_GetObjectItem(root, "entries"), 0) : NULL;
    NLT_CHECK(e0 != NULL, "ledger.json parses");
    if (e0) {
        cJSON *parts = cJSON_GetObjectItem(e0, "parts"), *ctr = cJSON_GetObjectItem(e0, "controls");
        NLT_CHECK(cJSON_GetArraySize(parts) == 2 && !strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(parts, 1), "rule")->valuestring, "gap > 0.1 (margin)"),
                  "parts in JSON");
        cJSON *c0 = cJSON_GetArrayItem(ctr, 0);
        NLT_CHECK(cJSON_GetArraySize(ctr) == 2 && !strcmp(cJSON_GetObjectItem(c0, "verdict")->valuestring, "fail") &&
                      !strcmp(cJSON_GetObjectItem(c0, "kind")->valuestring, "broken") &&
                      cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "metrics"), "gap") != NULL,
                  "controls in JSON");
        NLT_CHECK(cJSON_GetObjectItem(e0, "seeds")->valueint == 3, "seeds");
        const char *mach = cJSON_GetObjectItem(e0, "machine")->valuestring, *commit = cJSON_GetObjectItem(e0, "commit")->valuestring;
        NLT_CHECK(mach && strstr(mach, "BLAS core") && strstr(mach, "threads 1"), "machine: %s", mach);
        NLT_CHECK(commit && strlen(commit) >= 7, "commit: %s", commit);
    }
    cJSON_Delete(root);
    free(txt);
    nl_repro_free(en, 2);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    NLT_CHECK(system(cmd) == 0, "cleanup");
}

static void test_stats(void) {
    const double x[4] = {1, 2, 3, 4}, y[4] = {0.5, 1.5, 2.0, 3.0};
    double m, se;
    nl_stats_mean_se(x, 4, &m, &se);
    NLT_NEAR(m, 2.5, 1e-12);
    NLT_NEAR(se, sqrt(5.0 / 3.0 / 4.0), 1e-12);   /* sd^2 = 5/3 */
    nl_stats_mean_se(x, 1, &m, &se);
    NLT_CHECK(m == 1 && isnan(se), "one sample: no standard error");
    /* nl_exp_set_mean_se: NAME_mean and NAME_se of the values, overwriting on a second call */
    nl_exp_result r;
    nl_exp_result_init(&r);
    NLT_OK(nl_exp_set_mean_se(&r, "gain", x, 4));
    NLT_NEAR(nl_exp_get(&r, "gain_mean", NULL), 2.5, 1e-12);
    NLT_NEAR(nl_exp_get(&r, "gain_se", NULL), sqrt(5.0 / 3.0 / 4.0), 1e-12);
    NLT_OK(nl_exp_set_mean_se(&r, "gain", y, 2));
    NLT_NEAR(nl_exp_get(&r, "gain_mean", NULL), 1.0, 1e-12);
    NLT_CHECK(r.n_metrics == 2, "overwritten, not added: %d metrics", r.n_metrics);
    char longname[80];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    NLT_CHECK(nl_exp_set_mean_se(&r, longname, x, 4) == NL_EINVAL, "too long a name is refused");
    nl_exp_result_free(&r);
    double md, sd;
    double t = nl_stats_paired_t(x, y, 4, &md, &sd);  /* differences 0.5 0.5 1 1: mean 0.75, sd^2 1/12 */
    NLT_NEAR(md, 0.75, 1e-12);
    NLT_NEAR(sd, sqrt(1.0 / 12.0 / 4.0), 1e-12);
    NLT_NEAR(t, 0.75 / sqrt(1.0 / 48.0), 1e-9);
    NLT_CHECK(isinf(nl_stats_paired_t(x, x + 0, 1, NULL, NULL)) == 0, "n = 1 gives NaN");
    const double a[3] = {2, 3, 4}, b[3] = {1, 2, 3};
    NLT_CHECK(nl_stats_paired_t(a, b, 3, NULL, NULL) == INFINITY, "constant positive differences");
    NLT_NEAR(nl_stats_t95(1), 6.314, 1e-9);
    NLT_NEAR(nl_stats_t95(9), 1.833, 1e-9);
    NLT_NEAR(nl_stats_t95(1000), 1.645, 1e-9);
    /* nl_exp_paired_lower: the per-seed metrics a_seed<i>, b_seed<i> paired; bound = mean - t95(n-1) SE */
    nl_exp_result p;
    nl_exp_result_init(&p);
    char nm[32];
    for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "a_seed%d", i + 1);
        NLT_OK(nl_exp_set(&p, nm, x[i]));
        snprintf(nm, sizeof nm, "b_seed%d", i + 1);
        NLT_OK(nl_exp_set(&p, nm, y[i]));
    }
    double pm, ps, lo = nl_exp_paired_lower(&p, "a", "b", 4, &pm, &ps);
    NLT_NEAR(pm, 0.75, 1e-12);
    NLT_NEAR(ps, sqrt(1.0 / 48.0), 1e-12);
    NLT_NEAR(lo, 0.75 - nl_stats_t95(3) * sqrt(1.0 / 48.0), 1e-12);
    NLT_NEAR(nl_exp_paired_lower(&p, "a", "b", 2, NULL, NULL), 0.5 - nl_stats_t95(1) * 0.0, 1e-12); /* diffs 0.5 0.5 */
    NLT_CHECK(isnan(nl_exp_paired_lower(&p, "a", "b", 1, &pm, &ps)) && isnan(pm) && isnan(ps), "n = 1: NaN bound, mean, se");
    NLT_CHECK(isnan(nl_exp_paired_lower(&p, "a", "b", 5, NULL, NULL)), "a missing seed (5) makes the bound NaN");
    NLT_CHECK(isnan(nl_exp_paired_lower(&p, "a", "c", 3, NULL, NULL)), "a missing metric makes the bound NaN");
    /* nl_exp_set_seed / nl_exp_get_seeds / nl_exp_set_seed_mean_se: "<key>_seed<s>", s 1-based */
    NLT_OK(nl_exp_set_seed(&p, "c", 1, 2.0));
    NLT_OK(nl_exp_set_seed(&p, "c", 2, 4.0));
    NLT_NEAR(nl_exp_get(&p, "c_seed2", NULL), 4.0, 0);
    double cv[3];
    nl_exp_get_seeds(&p, "c", 3, cv);
    NLT_CHECK(cv[0] == 2.0 && cv[1] == 4.0 && isnan(cv[2]), "seeds read back, a missing one NaN");
    NLT_OK(nl_exp_set_seed_mean_se(&p, "c", 2));
    NLT_NEAR(nl_exp_get(&p, "c_mean", NULL), 3.0, 1e-12);
    NLT_NEAR(nl_exp_get(&p, "c_se", NULL), 1.0, 1e-12);
    NLT_CHECK(nl_exp_set_seed_mean_se(&p, "c", 65) == NL_EINVAL, "more than 64 seeds refused");
    NLT_CHECK(nl_exp_set_seed(&p, longname, 1, 0.0) == NL_EINVAL, "too long a per-seed name is refused");
    /* nl_exp_get_count: truncated into [0, max]; absent, NaN, negative -> 0 */
    NLT_OK(nl_exp_set(&p, "n3", 3.0));
    NLT_OK(nl_exp_set(&p, "n3.7", 3.7));
    NLT_OK(nl_exp_set(&p, "big", 1e30));
    NLT_OK(nl_exp_set(&p, "neg", -2.0));
    NLT_OK(nl_exp_set(&p, "nan", NAN));
    NLT_CHECK(nl_exp_get_count(&p, "n3", 8) == 3 && nl_exp_get_count(&p, "n3.7", 8) == 3, "3 and 3.7 read as 3");
    NLT_CHECK(nl_exp_get_count(&p, "n3", 2) == 2 && nl_exp_get_count(&p, "n3", 3) == 3, "clamped at max");
    NLT_CHECK(nl_exp_get_count(&p, "big", 8) == 8, "1e30 clamped to max (no int overflow)");
    NLT_CHECK(nl_exp_get_count(&p, "neg", 8) == 0 && nl_exp_get_count(&p, "nan", 8) == 0, "negative and NaN read as 0");
    NLT_CHECK(nl_exp_get_count(&p, "absent", 8) == 0, "absent reads as 0");
    NLT_CHECK(nl_exp_get_count(&p, "n3", 0) == 0, "max 0 gives 0");
    nl_exp_result_free(&p);
}

/* -j 2: every experiment in its own process; the same entries (metrics, parts, controls, curves, verdicts) as -j 1,
 * in the selection's order, and a crashing experiment becomes an error entry instead of killing the run */
static nl_status crash_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    abort();   /* a crash (SIGABRT; a sanitizer build may turn a SIGSEGV into exit status 1 instead) */
    return NL_OK;
}
static const nl_experiment e_crash = {"crash", "F. Author", "It crashes.", "q", "f", &good, &good, "", NULL, crash_run, fake_judge, NULL, NULL};

static void test_jobs(void) {
    const nl_experiment *list[4] = {&e_v2, &e_pass, &e_v2_leaky, &e_fail};
    nl_repro_entry *a = NULL, *b = NULL;
    int fa = -1, fb = -1;
    char dir[] = "/tmp/nltest_jobs_XXXXXX";
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    nl_repro_options seq = {0, 1, 0, NULL, NULL, 1}, par = {0, 2, 0, dir, NULL, 2};
    NLT_OK(nl_repro_run(list, 4, &seq, &a, &fa));
    NLT_OK(nl_repro_run(list, 4, &par, &b, &fb));   /* 2 threads / 2 jobs = 1 thread each, as seq */
    NLT_CHECK(fa == fb && fa == 2, "failed %d vs %d", fa, fb);
    for (int i = 0; i < 4; i++) {
        NLT_CHECK(a[i].e == b[i].e && a[i].pass == b[i].pass && !strcmp(a[i].measured, b[i].measured), "entry %d: %s vs %s", i,
                  a[i].measured, b[i].measured);
        NLT_CHECK(a[i].r.n_metrics == b[i].r.n_metrics && a[i].r.n_parts == b[i].r.n_parts && a[i].r.n_controls == b[i].r.n_controls &&
                      a[i].r.n_curves == b[i].r.n_curves && a[i].r.seeds == b[i].r.seeds,
                  "entry %d: same fields", i);
        for (int k = 0; k < a[i].r.n_metrics && k < b[i].r.n_metrics; k++) {
            double x = a[i].r.metrics[k].value, y = b[i].r.metrics[k].value;
            NLT_CHECK((isnan(x) && isnan(y)) || x == y, "entry %d metric %s: %.17g vs %.17g", i, a[i].r.metrics[k].name, x, y);
        }
        for (int k = 0; k < a[i].r.n_controls && k < b[i].r.n_controls; k++)
            NLT_CHECK(a[i].r.controls[k].verdict == b[i].r.controls[k].verdict, "entry %d control %d", i, k);
    }
    char path[400];
    snprintf(path, sizeof path, "%s/logs/good.log", dir);
    FILE *f = fopen(path, "r");
    NLT_CHECK(f != NULL, "per-experiment log %s", path);
    if (f) fclose(f);
    nl_repro_free(a, 4);
    nl_repro_free(b, 4);
    const nl_experiment *l2[3] = {&e_pass, &e_crash, &e_fail};
    NLT_OK(nl_repro_run(l2, 3, &par, &b, &fb));
    NLT_CHECK(fb == 2 && b[0].pass && b[1].errored && (strstr(b[1].error, "signal") || strstr(b[1].error, "exited with status")) &&
                  strstr(b[1].error, "crash.log") && !b[2].pass,
              "crash isolated: %s", b[1].error);
    nl_repro_free(b, 3);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    NLT_CHECK(system(cmd) == 0, "cleanup");
}

static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".tmp")) n++;
    if (d) closedir(d);
    return n;
}

static void test_repro_run(void) {
    char dir[] = "/tmp/nltest_ledger_XXXXXX";
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char out[256], json[300], html[300];
    snprintf(out, sizeof out, "%s/sub/out", dir); /* created by the run */
    snprintf(json, sizeof json, "%s/ledger.json", out);
    snprintf(html, sizeof html, "%s/report.html", out);
    const nl_experiment *list[4] = {&e_pass, &e_err, &e_fail, &e_planned};
    FILE *table = tmpfile();
    nl_repro_options ro = {0, 1, 0, out, table, 0};
    nl_repro_entry *en = NULL;
    int n_failed = -1;
    NLT_OK(nl_repro_run(list, 4, &ro, &en, &n_failed));
    NLT_CHECK(n_failed == 3, "failed %d", n_failed);
    NLT_CHECK(en[0].pass && !en[0].errored && !strcmp(en[0].measured, "accuracy 90.0% (need >= 50%)"), "pass entry: %s", en[0].measured);
    NLT_CHECK(!en[1].pass && en[1].errored && strstr(en[1].error, "xyz-data") && strstr(en[1].measured, "error"), "error entry: %s", en[1].error);
    NLT_CHECK(!en[2].pass && !en[2].errored && strstr(en[2].measured, "20.0%"), "fail entry");
    NLT_CHECK(!en[3].pass && en[3].errored && strstr(en[3].error, "no run function"), "planned entry: %s", en[3].error);
    NLT_CHECK(en[0].seconds >= 0 && en[2].seconds >= 0, "seconds");

    /* the table */
    rewind(table);
    char buf[8192];
    size_t got = fread(buf, 1, sizeof buf - 1, table);
    buf[got] = 0;
    fclose(table);
    NLT_CHECK(strstr(buf, "method") && strstr(buf, "claim") && strstr(buf, "measured") && strstr(buf, "verdict") && strstr(buf, "seconds"), "header: %s", buf);
    NLT_CHECK(strstr(buf, "good") && strstr(buf, "pass") && strstr(buf, "FAIL") && strstr(buf, "1/4 passed"), "rows: %s", buf);

    /* ledger.json: valid, every field */
    char *txt = nlt_slurp(json, NULL);
    NLT_CHECK(txt != NULL, "ledger.json written");
    cJSON *root = txt ? cJSON_Parse(txt) : NULL;
    NLT_CHECK(root != NULL, "ledger.json is not valid JSON");
    cJSON *entries = cJSON_GetObjectItemCaseSensitive(root, "entries");
    NLT_CHECK(cJSON_IsArray(entries) && cJSON_GetArraySize(entries) == 4, "entries");
    NLT_CHECK(cJSON_IsString(cJSON_GetObjectItem(root, "mode")) && !strcmp(cJSON_GetObjectItem(root, "mode")->valuestring, "quick"), "mode");
    const char *verdicts[4] = {"pass", "fail", "fail", "fail"}, *names[4] = {"good", "broken", "bad", "planned"};
    for (int i = 0; i < 4 && cJSON_IsArray(entries); i++) {
        cJSON *e = cJSON_GetArrayItem(entries, i);
        const char *fields[] = {"method", "paper", "claim", "config", "measured", "verdict"};
        for (int k = 0; k < 6; k++) NLT_CHECK(cJSON_IsString(cJSON_GetObjectItem(e, fields[k])), "entry %d: %s", i, fields[k]);
        NLT_CHECK(cJSON_IsObject(cJSON_GetObjectItem(e, "metrics")), "entry %d: metrics", i);
        NLT_CHECK(cJSON_IsNumber(cJSON_GetObjectItem(e, "seconds")), "entry %d: seconds", i);
        NLT_CHECK(cJSON_IsArray(cJSON_GetObjectItem(e, "curves")), "entry %d: curves", i);
        NLT_CHECK(!strcmp(cJSON_GetObjectItem(e, "method")->valuestring, names[i]), "entry %d method", i);
        NLT_CHECK(!strcmp(cJSON_GetObjectItem(e, "verdict")->valuestring, verdicts[i]), "entry %d verdict", i);
    }
    cJSON *e0 = cJSON_GetArrayItem(entries, 0), *e1 = cJSON_GetArrayItem(entries, 1);
    cJSON *m0 = cJSON_GetObjectItem(e0, "metrics");
    NLT_CHECK(cJSON_GetObjectItem(m0, "accuracy") && cJSON_GetObjectItem(m0, "accuracy")->valuedouble == 0.9, "metric value");
    NLT_CHECK(cJSON_IsNull(cJSON_GetObjectItem(m0, "weird")), "NaN metric written as null");
    NLT_CHECK(!strcmp(cJSON_GetObjectItem(e0, "claim")->valuestring, e_pass.claim), "claim text");
    NLT_CHECK(cJSON_GetObjectItem(e0, "error") == NULL, "no error field on success");
    NLT_CHECK(cJSON_IsString(cJSON_GetObjectItem(e1, "error")) && strstr(cJSON_GetObjectItem(e1, "error")->valuestring, "xyz-data"), "error message");
    NLT_CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(e1, "metrics"), "partial") != NULL, "metrics of an erroring run are kept");
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(e0, "curves"), 2);
    NLT_CHECK(c0 && !strcmp(cJSON_GetObjectItem(c0, "plot")->valuestring, "Loss & co") && cJSON_GetArraySize(cJSON_GetObjectItem(c0, "x")) == 6 &&
                  cJSON_IsNull(cJSON_GetArrayItem(cJSON_GetObjectItem(c0, "y"), 5)),
              "curve in JSON");
    cJSON_Delete(root);
    free(txt);

    /* report.html: table, one SVG per plot group, escaped text, no script */
    txt = nlt_slurp(html, NULL);
    NLT_CHECK(txt != NULL, "report.html written");
    if (txt) {
        NLT_CHECK(strstr(txt, "<!DOCTYPE html>") && strstr(txt, "<table id=\"ledger\">") && strstr(txt, "</html>"), "html structure");
        int svgs = 0;
        for (const char *p = txt; (p = strstr(p, "<svg")); p++) svgs++;
        NLT_CHECK(svgs == 4, "%d svg charts (2 plot groups x 2 experiments with curves)", svgs);
        NLT_CHECK(strstr(txt, "a &lt; b &amp; c &gt; d") && !strstr(txt, "a < b"), "claim escaped");
        NLT_CHECK(strstr(txt, "test &lt;b&gt;") && strstr(txt, "Loss &amp; co"), "legend and title escaped");
        NLT_CHECK(!strstr(txt, "<script"), "no JavaScript");
        NLT_CHECK(strstr(txt, "class=\"fail\">fail<") && strstr(txt, "class=\"pass\">pass<"), "verdict cells");
        NLT_CHECK(strstr(txt, "xyz-data") != NULL, "error shown");
        free(txt);
    }
    NLT_CHECK(count_tmp_files(out) == 0, "temporary files left in %s", out);
    nl_repro_free(en, 4);

    /* rerun in full mode overwrites atomically */
    const nl_experiment *one[1] = {&e_pass};
    ro.full = 1;
    ro.table = NULL;
    NLT_OK(nl_repro_run(one, 1, &ro, &en, &n_failed));
    NLT_CHECK(n_failed == 0, "failed %d", n_failed);
    txt = nlt_slurp(json, NULL);
    root = txt ? cJSON_Parse(txt) : NULL;
    NLT_CHECK(root && !strcmp(cJSON_GetObjectItem(root, "mode")->valuestring, "full") && cJSON_GetArraySize(cJSON_GetObjectItem(root, "entries")) == 1,
              "full-mode ledger");
    cJSON *cfg = root ? cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "entries"), 0), "config") : NULL;
    NLT_CHECK(cfg && !strcmp(cfg->valuestring, "full good"), "full configuration recorded");
    cJSON_Delete(root);
    free(txt);
    nl_repro_free(en, 1);

    /* an output path that cannot be a directory */
    char blocker[300];
    snprintf(blocker, sizeof blocker, "%s/file", dir);
    FILE *bf = fopen(blocker, "w");
    if (bf) fclose(bf);
    ro.out_dir = blocker;
    NLT_CHECK(nl_repro_run(one, 1, &ro, &en, &n_failed) == NL_EIO, "output dir over a file: %s", nl_last_error());
    nl_repro_free(en, 1);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    NLT_CHECK(system(cmd) == 0, "cleanup");
}

int main(void) {
    NLT_RUN(test_result_api);
    NLT_RUN(test_status);
    NLT_RUN(test_v2);
    NLT_RUN(test_stats);
    NLT_RUN(test_jobs);
    NLT_RUN(test_repro_run);
    return nlt_finish();
}
