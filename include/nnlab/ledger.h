/* nnlab/ledger.h — the claims ledger: a registry of experiments, each reproducing one claim of one paper.
 *
 * An experiment (nl_experiment) names its method and paper, states the claim in one sentence, carries a quick
 * and a full configuration (a method-specific struct plus a one-line description), lists the metrics it
 * measures, and provides two functions: run (trains/measures, filling metrics name -> double and curves, i.e.
 * named series of (x, y) points for plots) and judge (the pass rule: compares the metrics with the claim and
 * writes a one-line "measured" summary).
 *
 * Registering a method: its folder's method.c lists its experiments in its nl_method (below), and one line of
 * methods/methods.def registers the method (docs/architecture.md, "Adding a method").
 *
 * nl_repro_run runs a selection, prints the table (method, claim, measured, verdict, seconds), and writes
 * DIR/ledger.json and DIR/report.html (a self-contained page: the table and an inline SVG line plot per plot
 * group of every experiment's curves), atomically, after every experiment. An experiment whose run returns an
 * error is recorded as "fail" with the message; the others still run. */
#ifndef NNLAB_LEDGER_H
#define NNLAB_LEDGER_H
#include <stdio.h>
#include "nnlab/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- results of one run ---- */
typedef struct nl_metric {
    char name[64];
    double value;
} nl_metric;

typedef struct nl_curve {
    char plot[64];         /* plot group: curves with the same plot share one chart (and its axes) */
    char name[64];         /* legend entry */
    char xlabel[48], ylabel[48];
    int64_t n, cap;
    double *x, *y;         /* (n) points; non-finite y values are skipped when drawing */
} nl_curve;

/* Schema v2 (docs/repro.md). A claim is judged as parts — its statements, each with its own rule and verdict —
 * and the entry also runs controls: variants that a correct rule must reject (a broken implementation, a generic
 * substitute, the baseline the paper beats). A control is a child result that the entry's run fills with the same
 * metric names as the main result; nl_repro_run applies the entry's judge to it, and the entry passes only when
 * the main result passes and every control fails. */
typedef struct nl_exp_part {
    char name[64];         /* short id of the statement ("robust", "eval-scale") */
    char rule[256];        /* the rule in words, with its margin ("mean acc(linear) - best other > 0.05") */
    char measured[256];    /* what was measured against it */
    int pass;
} nl_exp_part;

typedef struct nl_exp_result nl_exp_result;
typedef struct nl_exp_control {
    char name[64];         /* "no-global-tokens" */
    char kind[16];         /* "broken", "generic" or "baseline" */
    char what[256];        /* one line: what the variant is */
    nl_exp_result *r;      /* its metrics (same names as the main result), parts filled by the judge */
    int verdict;           /* the rule's verdict on it (1 = the rule accepted it: the entry fails) */
    char measured[256];
} nl_exp_control;

struct nl_exp_result {
    int n_metrics, cap_metrics;
    nl_metric *metrics;    /* (n_metrics) in insertion order */
    int n_curves, cap_curves;
    nl_curve **curves;     /* (n_curves) */
    char note[256];        /* optional free text shown in the report */
    int n_parts, cap_parts;
    nl_exp_part *parts;    /* (n_parts) set by the judge (nl_exp_part_set) */
    int n_controls, cap_controls;
    nl_exp_control *controls; /* (n_controls) created by the run (nl_exp_control_add) */
    int seeds;             /* seeds the judged quantities are averaged over (0 = not stated) */
    int deterministic;     /* 1: nothing random (no seeds needed) */
};

void nl_exp_result_init(nl_exp_result *r);
void nl_exp_result_free(nl_exp_result *r);
/* Set (or overwrite) a metric. */
nl_status nl_exp_set(nl_exp_result *r, const char *name, double value);
/* Set the metrics NAME_mean and NAME_se from values x (n, one per seed or data set): their mean and standard error
 * (nl_stats_mean_se). */
nl_status nl_exp_set_mean_se(nl_exp_result *r, const char *name, const double *x, int n);
/* Metric value, or NAN when absent (found, may be NULL, tells which). */
double nl_exp_get(const nl_exp_result *r, const char *name, int *found);
/* The metric `name` read as a count in [0, max] (a judge's "seeds" or "splits"): its value truncated to an int, 0 when
 * it is absent, NaN or negative, max when it is above max. */
int nl_exp_get_count(const nl_exp_result *r, const char *name, int max);
/* The curve (plot, name), created empty on first use (labels taken from that first call); NULL on OOM. */
nl_curve *nl_exp_curve(nl_exp_result *r, const char *plot, const char *name, const char *xlabel, const char *ylabel);
nl_status nl_curve_add(nl_curve *c, double x, double y);
/* Record (or overwrite, by name) a part of the claim with its rule and verdict; measured is printf-style. */
nl_status nl_exp_part_set(nl_exp_result *r, const char *name, const char *rule, int pass, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* 1 when every part passes (and there is at least one). */
int nl_exp_parts_pass(const nl_exp_result *r);
/* The control `name` (created empty on first use with its kind and one-line description); NULL on OOM. The run
 * fills the returned result's metrics; nl_repro_run judges it. */
nl_exp_result *nl_exp_control_add(nl_exp_result *r, const char *name, const char *kind, const char *what);

/* ---- statistics over seeds ---- */
/* Mean and standard error of the mean (sd / sqrt(n), sd with n - 1) of x[0..n); se = NAN when n < 2. */
void nl_stats_mean_se(const double *x, int n, double *mean, double *se);
/* Paired comparison of a[i] - b[i]: mean difference, its standard error, and the t statistic (mean / se; df = n - 1).
 * Returns t (NAN when n < 2; +-INFINITY when every difference is equal and non-zero). */
double nl_stats_paired_t(const double *a, const double *b, int n, double *mean_diff, double *se_diff);
/* One-sided critical value t_{0.95, df} of Student's t (df >= 1; the normal 1.645 beyond df = 120). */
double nl_stats_t95(int df);
/* Per-seed metrics, named "<key>_seed<s>" with s = 1, 2, ... (the entry's seed index, 1-based). */
nl_status nl_exp_set_seed(nl_exp_result *r, const char *key, int seed, double value);
/* x[i] = the metric "<key>_seed<i+1>" for i < n (NAN where it is missing). */
void nl_exp_get_seeds(const nl_exp_result *r, const char *key, int n, double *x);
/* nl_exp_set_mean_se of the n per-seed metrics of key (key_mean, key_se); n <= 64. */
nl_status nl_exp_set_seed_mean_se(nl_exp_result *r, const char *key, int n);
/* Paired one-sided lower bound over seeds of the metrics "<a>_seed<i>" - "<b>_seed<i>", i = 1..n, of r:
 * mean - t95(n-1) * SE of the differences; *mean, *se receive the mean difference and its SE (either may be
 * NULL). NAN (and NAN mean/se) when n < 2 or n > 64; a missing metric reads as NAN and makes the bound NAN. */
double nl_exp_paired_lower(const nl_exp_result *r, const char *a, const char *b, int n, double *mean, double *se);

/* ---- provenance ---- */
/* "CPU model name; BLAS core <OpenBLAS core type>; threads T" of this machine. */
void nl_machine_describe(char *buf, size_t n);
/* The source commit the library was built from ("unknown" outside a git checkout), "+dirty" when it had
 * uncommitted changes at build time. */
const char *nl_build_commit(void);

/* ---- experiments ---- */
/* Modes of a run: quick (the main job, within 60 s per entry on 2 cores), full (paper-scale, run once, its numbers in
 * the docs), smoke (same code path at tiny sizes, seconds: the test suite's check of the plumbing, the ledger fields
 * and that a control flips the verdict; not a verdict on the claim). */
#define NL_MODE_QUICK 0
#define NL_MODE_FULL 1
#define NL_MODE_SMOKE 2
const char *nl_mode_name(int mode);   /* "quick" | "full" | "smoke" */

typedef struct nl_exp_options {
    int full;              /* the mode: NL_MODE_QUICK (0), NL_MODE_FULL (1) or NL_MODE_SMOKE (2) */
    int threads;           /* > 0: thread count to use (already applied by nl_repro_run) */
    int verbose;           /* 0: quiet; >= 1: progress lines through nl_progress (base.h) */
    const char *out_dir;   /* where the ledger goes; an experiment may write extra files there (may be NULL) */
} nl_exp_options;

typedef struct nl_experiment nl_experiment;
struct nl_experiment {
    const char *name;          /* method id used on the command line ("mlp") */
    const char *paper;         /* paper title, authors, year */
    const char *claim;         /* the claim, one sentence */
    const char *quick_desc;    /* one line: what the quick configuration runs */
    const char *full_desc;     /* one line: what the full configuration runs */
    const void *quick;         /* method-specific configuration handed to run in quick mode */
    const void *full;          /* ... in full mode */
    const char *metrics;       /* comma-separated names of the metrics run fills ("test_accuracy,train_seconds") */
    const char *status;        /* shown by `nnlab list`; NULL = "ready" (or "planned" when run is NULL) */
    /* Run the experiment with config (quick or full) and fill out. Non-OK = error (message in nl_last_error). */
    nl_status (*run)(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out);
    /* Pass rule: 1 pass, 0 fail; writes a one-line summary of what was measured against the claim and records the
     * claim's parts (nl_exp_part_set). Called on the main result and on every control's result. */
    int (*judge)(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t n);
    /* The smoke configuration (NULL: the entry has none yet, and `--smoke` reports an error for it). run and judge
     * receive mode NL_MODE_SMOKE in `full` and this config. */
    const char *smoke_desc;
    const void *smoke;
};
/* The configuration and its one-line description for a mode (NULL when the entry has none). */
const void *nl_experiment_config(const nl_experiment *e, int mode);
const char *nl_experiment_desc(const nl_experiment *e, int mode);

/* "ready" unless e->status says otherwise ("planned" when run is NULL). */
const char *nl_experiment_status(const nl_experiment *e);

/* ---- methods ----
 * A method is one paper's implementation: one id everywhere (the folder methods/<id with '-' as '_'>, its ledger
 * entries, its command `nnlab <id>`, its header and its symbol prefix nl_<id with '-' as '_'>_, its README).
 * Each method defines one `const nl_method nl_method_<folder>` (methods/<folder>/method.c) and is registered by
 * one line of methods/methods.def; the registry (methods/methods.h) lists them for the CLI, `nnlab list`, the
 * ledger and the test suite (docs/architecture.md, "Adding a method"). */
typedef struct nl_method_alias {
    const char *name;                       /* older command spelling kept for scripts ("widedeep") */
    int (*cli)(int argc, char **argv);      /* what it runs (argv: the arguments after the alias) */
} nl_method_alias;

typedef struct nl_method {
    const char *id;                         /* "wide-deep" */
    const char *summary;                    /* one line for `nnlab --help` */
    int (*cli)(int argc, char **argv);      /* `nnlab <id> ...` (argv: the arguments after the id) */
    const nl_method_alias *aliases;         /* terminated by a NULL name, or NULL */
    const nl_experiment *const *experiments;/* this method's ledger entries, NULL-terminated */
    void (*init)(void);                     /* registers plug-ins (e.g. an attention kind) with the libraries; NULL
                                             * if none; called once by nl_methods_init before any command runs */
} nl_method;

/* ---- reproduction runs ---- */
typedef struct nl_repro_entry {
    const nl_experiment *e;
    nl_exp_result r;
    int pass;              /* verdict */
    int errored;           /* run returned an error (then pass = 0) */
    char measured[600];    /* the judge's line (+ controls), or "error: " + error */
    char error[512];
    char machine[256];     /* nl_machine_describe at the start of the run */
    double seconds;
} nl_repro_entry;

typedef struct nl_repro_options {
    int full;              /* the mode (NL_MODE_*) */
    int threads;           /* > 0: nl_set_num_threads before running */
    int verbose;           /* progress through nl_progress (base.h): the "[i/n]" lines and the experiments' own */
    const char *out_dir;   /* created if needed; NULL = write no files */
    FILE *table;           /* where the table goes (NULL = nowhere) */
    int jobs;              /* > 1: run up to `jobs` experiments at once, each in its own process with max(1, threads /
                            * jobs) threads and its output in out_dir/logs/<name>.log; the ledger keeps the selection's
                            * order and equals a sequential run with that thread count (src/ledger/parallel.c) */
} nl_repro_options;

/* Run list[0..n), filling entries (n, allocated, free with nl_repro_free). *n_failed counts fails and errors.
 * Returns NL_OK when every experiment ran and the files were written (verdicts do not affect the status). */
nl_status nl_repro_run(const nl_experiment *const *list, int n, const nl_repro_options *opt, nl_repro_entry **entries,
                       int *n_failed);
void nl_repro_free(nl_repro_entry *entries, int n);

/* Pieces of nl_repro_run, usable on their own (n entries; mode "quick" or "full"). */
void nl_ledger_print_table(FILE *f, const nl_repro_entry *entries, int n);
/* {"mode", "nnlab_version", "entries": [{"method", "paper", "claim", "config", "metrics": {...}, "measured",
 *  "verdict": "pass"|"fail", "seconds", "error" (only when errored), "curves": [{"plot", "name", "xlabel",
 *  "ylabel", "x": [...], "y": [...]}]}]}; non-finite numbers are written as null. Atomic replace. */
nl_status nl_ledger_write_json(const char *path, const nl_repro_entry *entries, int n, const char *mode);
/* Self-contained HTML page (no JavaScript): table + one inline SVG per plot group. Atomic replace. */
nl_status nl_ledger_write_html(const char *path, const nl_repro_entry *entries, int n, const char *mode);
/* The SVG line chart of the curves of r belonging to plot group `plot` (malloc'd string). */
char *nl_ledger_svg(const nl_exp_result *r, const char *plot, int width, int height);

/* Markdown of the entries of a ledger.json (all, or only[0..n_only) by name) to f: per entry a heading with the
 * verdict, the commit, machine, seconds and seeds it was measured with, the configuration, the measured line and
 * tables of the parts, the controls and the metrics (`nnlab report --markdown`; method READMEs paste its output).
 * NL_EIO / NL_EFORMAT for an unreadable or malformed file, NL_ENOTFOUND when a requested entry is missing. */
nl_status nl_ledger_markdown(const char *path, FILE *f, const char *const *only, int n_only);

#ifdef __cplusplus
}
#endif
#endif
