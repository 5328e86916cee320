/* The ledger rule of the `pfn` entry (ledger_entry.c) on hand-made results: a result close to the reference at every
 * context size and 10x faster than both baselines passes; each control-like result fails: one context size far off
 * while the mean over n is fine (what a mean-only rule hid), a barely trained PFN (large gaps everywhere), a PFN
 * trained on a wrong prior (gap growing with n), a predictor below the Bayes-optimal reference (a leak), a gap whose
 * upper 95% bound crosses the margin, a mean over seeds too uncertain, a PFN not 10x faster than MLE-II or MCMC, NaN.
 * Also: the smoke configuration runs end to end (plumbing, parts, controls, seeds). */
#include <math.h>
#include "nltest.h"
#include "pfn/pfn.h"

#define NS 6
static const int g_ns[NS] = {0, 1, 2, 5, 12, 31};

typedef struct hand {
    double gap[NS], se[NS];
    double mean, mean_se, df;
    double pfn_s, mle_s, mcmc_s;
} hand;

static hand good(void) {
    hand h = {.gap = {0.01, 0.05, 0.04, 0.03, 0.02, 0.02}, .se = {0.005, 0.01, 0.01, 0.008, 0.006, 0.006},
              .mean = 0.028, .mean_se = 0.004, .df = 2, .pfn_s = 1e-4, .mle_s = 2e-3, .mcmc_s = 3e-2};
    return h;
}

static int judge(const hand *h, int *n_parts) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    char nm[64];
    for (int i = 0; i < NS; i++) {
        snprintf(nm, sizeof nm, "nll_n%d", g_ns[i]), nl_exp_set(&r, nm, 1.0 + h->gap[i]);
        snprintf(nm, sizeof nm, "ref_nll_n%d", g_ns[i]), nl_exp_set(&r, nm, 1.0);
        snprintf(nm, sizeof nm, "gap_n%d", g_ns[i]), nl_exp_set(&r, nm, h->gap[i]);
        snprintf(nm, sizeof nm, "gap_se_n%d", g_ns[i]), nl_exp_set(&r, nm, h->se[i]);
        snprintf(nm, sizeof nm, "datasets_n%d", g_ns[i]), nl_exp_set(&r, nm, 128);
    }
    nl_exp_set(&r, "gap_mean", h->mean);
    nl_exp_set(&r, "gap_mean_se", h->mean_se);
    nl_exp_set(&r, "gap_mean_df", h->df);
    nl_exp_set(&r, "tol_n", 0.10);
    nl_exp_set(&r, "tol_mean", 0.05);
    nl_exp_set(&r, "leak_margin", 0.02);
    nl_exp_set(&r, "seconds_per_dataset", h->pfn_s);
    nl_exp_set(&r, "mle_seconds_per_dataset", h->mle_s);
    nl_exp_set(&r, "mcmc_seconds_per_dataset", h->mcmc_s);
    nl_exp_set(&r, "speed_factor", 10);
    char m[600];
    int pass = nl_exp_pfn.judge(&nl_exp_pfn, &r, NL_MODE_QUICK, m, sizeof m);
    *n_parts = r.n_parts;
    NLT_CHECK(pass == nl_exp_parts_pass(&r), "the verdict is the parts' (%s)", m);
    nl_exp_result_free(&r);
    return pass;
}

static void test_judge(void) {
    int np = 0;
    hand h = good();
    NLT_CHECK(judge(&h, &np) == 1, "a PFN within the margin at every n and 10x faster passes");
    NLT_CHECK(np == 5, "five parts (%d)", np);
    h = good(), h.gap[1] = 0.15;  /* the mean over n stays 0.045: a mean-only rule passed this */
    NLT_CHECK(judge(&h, &np) == 0, "one context size 0.15 nats off fails although the mean is fine");
    h = good();
    for (int i = 1; i < NS; i++) h.gap[i] = 0.5 + 0.1 * i, h.se[i] = 0.05;
    h.mean = 0.6, h.mean_se = 0.1;
    NLT_CHECK(judge(&h, &np) == 0, "a barely trained PFN (gaps 0.6-1.0 nats) fails");
    h = good(), h.gap[3] = 0.09, h.gap[4] = 0.14, h.gap[5] = 0.2, h.mean = 0.07;
    NLT_CHECK(judge(&h, &np) == 0, "a PFN of a wrong prior (gap growing with n) fails");
    h = good(), h.gap[3] = -0.12;
    NLT_CHECK(judge(&h, &np) == 0, "a predictor 0.12 nats below the exact GP (a leak) fails");
    h = good(), h.gap[3] = 0.085, h.se[3] = 0.02;
    NLT_CHECK(judge(&h, &np) == 0, "a gap of 0.085 whose 95%% upper bound (0.118) crosses 0.10 fails");
    h = good(), h.mean = 0.04, h.mean_se = 0.01;
    NLT_CHECK(judge(&h, &np) == 0, "a mean gap 0.04 +- 0.01 over 3 seeds (bound 0.069) fails");
    h = good(), h.pfn_s = 5e-4;
    NLT_CHECK(judge(&h, &np) == 0, "a PFN only 4x faster than MLE-II fails");
    h = good(), h.mcmc_s = 5e-4;
    NLT_CHECK(judge(&h, &np) == 0, "a PFN only 5x faster than MCMC fails");
    h = good(), h.gap[2] = NAN;
    NLT_CHECK(judge(&h, &np) == 0, "a NaN gap fails");
    h = good(), h.mle_s = NAN;
    NLT_CHECK(judge(&h, &np) == 0, "a missing MLE-II time fails");
}

static void test_smoke_run(void) {
    NLT_CHECK(nl_exp_pfn.smoke && nl_exp_pfn.smoke_desc, "has a smoke configuration");
    nl_exp_options o = {.full = NL_MODE_SMOKE, .threads = 1};
    nl_exp_result r;
    nl_exp_result_init(&r);
    nl_status st = nl_exp_pfn.run(&nl_exp_pfn, nl_exp_pfn.smoke, &o, &r);
    NLT_CHECK(st == NL_OK, "smoke run: %s", st ? nl_last_error() : "ok");
    NLT_CHECK(r.seeds == 3, "3 seeds (%d)", r.seeds);
    NLT_CHECK(r.n_controls == 4, "4 controls (%d)", r.n_controls);
    char m[600];
    for (int c = 0; c < r.n_controls; c++) {
        NLT_CHECK(isfinite(nl_exp_get(r.controls[c].r, "gap_n2", NULL)), "control %s has the judged metrics", r.controls[c].name);
        NLT_CHECK(nl_exp_pfn.judge(&nl_exp_pfn, r.controls[c].r, NL_MODE_SMOKE, m, sizeof m) == 0, "control %s rejected: %s",
                  r.controls[c].name, m);
    }
    nl_exp_pfn.judge(&nl_exp_pfn, &r, NL_MODE_SMOKE, m, sizeof m);
    NLT_CHECK(r.n_parts == 5, "five parts on the main result (%d)", r.n_parts);
    nl_exp_result_free(&r);
}

int main(void) {
    NLT_RUN(test_judge);
    NLT_RUN(test_smoke_run);
    return nlt_finish();
}
