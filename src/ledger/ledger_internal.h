/* Internal pieces of the repro runner shared by repro.c (sequential) and parallel.c (nnlab repro -j N). */
#ifndef NL_LEDGER_INTERNAL_H
#define NL_LEDGER_INTERNAL_H
#include "nnlab/ledger.h"

/* Run and judge e into x (x zeroed by the caller); an error is recorded in the entry, never returned. */
void nl__repro_run_one(nl_repro_entry *x, const nl_experiment *e, const nl_repro_options *opt, const nl_exp_options *eo);
/* ledger.json and report.html of en[0..n) into opt->out_dir (nothing when it is NULL). */
nl_status nl__repro_write_outputs(const nl_repro_options *opt, const nl_repro_entry *en, int n);
/* The -j N runner: every experiment in its own process (fork), at most opt->jobs at a time. */
nl_status nl__repro_run_parallel(const nl_experiment *const *list, int n, const nl_repro_options *opt, nl_repro_entry *en,
                                 int *n_failed);
/* Read entry 0 of a ledger.json written by nl_ledger_write_json back into x (x->e = e). */
nl_status nl__ledger_read_entry(const char *path, const nl_experiment *e, nl_repro_entry *x);
#endif
