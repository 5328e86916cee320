/* nnlab wide-deep — the infinitely wide and deep network classifiers on Dirichlet data on the sphere
 * (methods/wide_deep/README.md). Entry point: nl_wide_deep_cli(argc, argv) with the arguments after "wide-deep" (or its alias "widedeep"). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nnlab/cli.h"
#include "nnlab/base.h"
#include "wide_deep/wide_deep.h"

int nl_wide_deep_cli(int argc, char **argv);

static void help_widedeep(FILE *f) {
    fprintf(f,
            "usage: nnlab wide-deep [options]\n"
            "\n"
            "Infinitely wide and deep networks as kernel classifiers (Radhakrishnan, Belkin & Uhler 2022): the NNGP and\n"
            "NTK of normalised dual activations iterated to depth L, classifier sign(y^T K_train^-1 k(x)) without ridge,\n"
            "on Dirichlet samples mapped to the unit sphere, against the Bayes-optimal classifier, 1-NN, the Devroye\n"
            "(Hilbert kernel) estimate and majority vote. Without options: the quick configuration of the ledger entry\n"
            "`wide-deep` (d=2, 1500 training / 5000 test points).\n"
            "\n"
            "  --dim D             2 (default), 3, 5 or 9: the class Dirichlet parameters of the official code\n"
            "  --n N               training points (default 1500; --full: 10000)\n"
            "  --n-test M          test points (default 5000; --full: 10000)\n"
            "  --dual LIST         comma-separated duals: relu, erf, sine_<a>, hermite_<k>, 2d_opt, 3d_opt, 5d_opt, 9d_opt\n"
            "                      (default relu,erf,hermite_2,hermite_3,2d_opt,3d_opt)\n"
            "  --depth LIST        comma-separated increasing depths (default 10,20,50,100,200)\n"
            "  --kernel K          nngp, ntk or both (default both)\n"
            "  --seed S            data seed (default 1)\n"
            "  --prior P           probability of class +1 (default 0.4)\n"
            "  --relu-n N          ReLU majority-vote check on the first N training points (default 51; 0 = skip)\n"
            "  --relu-test M       ... tested on the first M test points (default 300)\n"
            "  --relu-depth L      ... at depth L (default 0: the closed-form depth L* of methods/wide_deep/README.md)\n"
            "  --relu-eps E        target disagreement of L* (default 0.01)\n"
            "  --margin X          pass rule: |err(<d>d_opt NNGP) - err(Bayes)| <= X (default 0.045; --full 0.035)\n"
            "  --full              start from the full configuration (10000/10000, duals relu,erf,hermite_2,2d_opt,\n"
            "                      3d_opt, depths 20,50,100,200, ReLU check 101/2000) instead of the quick one\n"
            "  --swap SPEC         from=to[,from=to]: run dual `to` under the label `from` (checks that the rule can fail)\n"
            "  --threads T         threads (default: NL_NUM_THREADS or all cores)\n"
            "  --json              print the results as one JSON object on stdout\n"
            "  --quiet             no progress on stderr\n"
            "\n"
            "Exit status: 0 ran (and the pass rule passed, or could not be evaluated for this selection), 1 error or\n"
            "the pass rule failed, 2 bad command line.\n"
            "\n"
            "example: nnlab wide-deep --n 2000 --dual hermite_2,2d_opt --depth 50,100\n");
}

static int wd_parse_duals(const char *s, nl_wide_deep_config *c) {
    c->n_duals = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= sizeof c->duals[0]) return nl_cli_usage_error("wide-deep", "--dual: bad list '%s'", s);
        if (c->n_duals >= NL_WIDE_DEEP_MAX_DUALS) return nl_cli_usage_error("wide-deep", "--dual: at most %d duals", NL_WIDE_DEEP_MAX_DUALS);
        memcpy(c->duals[c->n_duals], p, len);
        c->duals[c->n_duals][len] = 0;
        nl_wide_deep_dual d;
        if (nl_wide_deep_dual_parse(c->duals[c->n_duals], &d)) return nl_cli_usage_error("wide-deep", "--dual: %s", nl_last_error());
        c->n_duals++;
        if (!comma) return NL_CLI_OK;
        p = comma + 1;
    }
}

static cJSON *jnum(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static void print_json(const nl_wide_deep_config *c, const nl_wide_deep_result *r, int pass, int evaluable, const char *msg) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "dim", c->dim);
    cJSON_AddNumberToObject(o, "n_train", (double)c->n_train);
    cJSON_AddNumberToObject(o, "n_test", (double)c->n_test);
    cJSON_AddNumberToObject(o, "seed", (double)c->seed);
    cJSON_AddItemToObject(o, "bayes_err", jnum(r->err_bayes));
    cJSON_AddItemToObject(o, "nn1_err", jnum(r->err_1nn));
    cJSON_AddItemToObject(o, "devroye_err", jnum(r->err_devroye));
    cJSON_AddItemToObject(o, "majority_err", jnum(r->err_majority));
    cJSON *dep = cJSON_AddArrayToObject(o, "depths");
    for (int l = 0; l < c->n_depths; l++) cJSON_AddItemToArray(dep, cJSON_CreateNumber((double)c->depths[l]));
    cJSON *ds = cJSON_AddArrayToObject(o, "duals");
    static const char *const kn[2] = {"nngp", "ntk"};
    for (int i = 0; i < r->n_duals; i++) {
        const nl_wide_deep_dual_result *R = &r->duals[i];
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "dual", R->dual);
        cJSON_AddStringToObject(d, "class", nl_wide_deep_class_name(R->cls));
        cJSON_AddItemToObject(d, "singular_exponent", jnum(R->r));
        for (int k = 0; k < 2; k++) {
            cJSON *kk = cJSON_AddObjectToObject(d, kn[k]);
            cJSON *e = cJSON_AddArrayToObject(kk, "err"), *a1 = cJSON_AddArrayToObject(kk, "agree_1nn"),
                  *am = cJSON_AddArrayToObject(kk, "agree_majority"), *ad = cJSON_AddArrayToObject(kk, "agree_devroye"),
                  *ab = cJSON_AddArrayToObject(kk, "agree_bayes"), *rc = cJSON_AddArrayToObject(kk, "rcond");
            for (int l = 0; l < c->n_depths; l++) {
                cJSON_AddItemToArray(e, jnum(R->err[k][l]));
                cJSON_AddItemToArray(a1, jnum(R->agree_1nn[k][l]));
                cJSON_AddItemToArray(am, jnum(R->agree_maj[k][l]));
                cJSON_AddItemToArray(ad, jnum(R->agree_dev[k][l]));
                cJSON_AddItemToArray(ab, jnum(R->agree_bayes[k][l]));
                cJSON_AddItemToArray(rc, jnum(R->rcond[k][l]));
            }
        }
        cJSON_AddItemToArray(ds, d);
    }
    if (r->relu_ran) {
        cJSON *rl = cJSON_AddObjectToObject(o, "relu_check");
        cJSON_AddNumberToObject(rl, "n_train", (double)r->relu_n_train);
        cJSON_AddNumberToObject(rl, "n_test", (double)r->relu_n_test);
        cJSON_AddItemToObject(rl, "ybar", jnum(r->relu_ybar));
        cJSON_AddItemToObject(rl, "kappa", jnum(r->relu_kappa));
        cJSON_AddNumberToObject(rl, "depth", (double)r->relu_depth);
        cJSON_AddBoolToObject(rl, "capped", r->relu_capped);
        cJSON_AddItemToObject(rl, "majority_err", jnum(r->relu_maj_err));
        cJSON *d = cJSON_AddArrayToObject(rl, "depths"), *a = cJSON_AddArrayToObject(rl, "agree_majority"),
              *e = cJSON_AddArrayToObject(rl, "err"), *n1 = cJSON_AddArrayToObject(rl, "agree_1nn");
        for (int i = 0; i < r->relu_n_depths; i++) {
            cJSON_AddItemToArray(d, cJSON_CreateNumber((double)r->relu_depths[i]));
            cJSON_AddItemToArray(a, jnum(r->relu_agree_maj[i]));
            cJSON_AddItemToArray(e, jnum(r->relu_err[i]));
            cJSON_AddItemToArray(n1, jnum(r->relu_agree_1nn[i]));
        }
    }
    cJSON *pr = cJSON_AddObjectToObject(o, "pass_rule");
    cJSON_AddItemToObject(pr, "hermite_agree_1nn_min", jnum(r->hermite_agree_1nn_min));
    cJSON_AddItemToObject(pr, "relu_agree_majority", jnum(r->relu_agree_maj_final));
    cJSON_AddItemToObject(pr, "opt_nngp_excess_absmax", jnum(r->opt_nngp_excess_absmax));
    cJSON_AddItemToObject(pr, "opt_ntk_excess_absmax", jnum(r->opt_ntk_excess_absmax));
    cJSON_AddItemToObject(pr, "opt_nngp_agree_devroye_min", jnum(r->opt_nngp_agree_dev_min));
    cJSON_AddItemToObject(pr, "bayes_margin", jnum(r->bayes_margin));
    if (evaluable) cJSON_AddStringToObject(pr, "verdict", pass ? "pass" : "fail");
    else cJSON_AddNullToObject(pr, "verdict");
    cJSON_AddStringToObject(pr, "measured", msg);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    char *s = cJSON_PrintUnformatted(o);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

static void print_text(const nl_wide_deep_config *c, const nl_wide_deep_result *r, int pass, int evaluable, const char *msg) {
    printf("wide-deep: d=%d Dirichlet data, %lld train / %lld test, class +1 prior %.2f, seed %llu\n", c->dim,
           (long long)c->n_train, (long long)c->n_test, c->prior1, (unsigned long long)c->seed);
    printf("baselines (test error %%): Bayes-optimal %.2f  1-NN %.2f  Devroye %.2f  majority vote %.2f\n", 100 * r->err_bayes,
           100 * r->err_1nn, 100 * r->err_devroye, 100 * r->err_majority);
    printf("\ntest error %% by depth (NNGP / NTK; '-' = K_train singular in floating point or not run)\n");
    printf("%-13s %-16s %6s", "dual", "class", "r");
    for (int l = 0; l < c->n_depths; l++) {
        char h[24];
        snprintf(h, sizeof h, "L=%lld", (long long)c->depths[l]);
        printf("  %13s", h);
    }
    printf("\n");
    for (int i = 0; i < r->n_duals; i++) {
        const nl_wide_deep_dual_result *R = &r->duals[i];
        char rs[16] = "-";
        if (isfinite(R->r)) snprintf(rs, sizeof rs, "%.3f", R->r);
        printf("%-13s %-16s %6s", R->dual, nl_wide_deep_class_name(R->cls), rs);
        for (int l = 0; l < c->n_depths; l++) {
            char a[8] = "-", b[8] = "-", cell[24];
            if (isfinite(R->err[0][l])) snprintf(a, sizeof a, "%.2f", 100 * R->err[0][l]);
            if (isfinite(R->err[1][l])) snprintf(b, sizeof b, "%.2f", 100 * R->err[1][l]);
            snprintf(cell, sizeof cell, "%s / %s", a, b);
            printf("  %13s", cell);
        }
        printf("\n");
    }
    if (r->relu_ran) {
        printf("\nReLU NTK on the first %lld training points (mean label %+.3f, kappa %.3f), %lld test points; majority vote "
               "error %.2f%%\n",
               (long long)r->relu_n_train, r->relu_ybar, r->relu_kappa, (long long)r->relu_n_test, 100 * r->relu_maj_err);
        for (int i = 0; i < r->relu_n_depths; i++)
            printf("  L=%-8lld agreement with majority %.2f%%, with 1-NN %.2f%%, test error %.2f%%%s\n", (long long)r->relu_depths[i],
                   100 * r->relu_agree_maj[i], 100 * r->relu_agree_1nn[i], 100 * r->relu_err[i],
                   i == r->relu_n_depths - 1 ? (c->relu_depth ? "  (given depth)" : (r->relu_capped ? "  (L*, capped)" : "  (L*)")) : "");
    }
    printf("\npass rule: %s\n  %s\n", evaluable ? (pass ? "PASS" : "FAIL") : "not evaluated (needs hermite_k, the <d>d_opt dual "
                                                                              "at depths in [50, 200] and the ReLU check)", msg);
    printf("%.1f s\n", r->seconds);
}

int nl_wide_deep_cli(int argc, char **argv) {
    int64_t dim = 2, n = -1, n_test = -1, seed = 1, relu_n = -1, relu_test = -1, relu_depth = 0, threads = 0;
    double prior = 0.4, relu_eps = 0.01, margin = -1;
    const char *duals = NULL, *depths = NULL, *kernel = "both", *swap = NULL;
    int full = 0, json = 0, quiet = 0;
    nl_cli_opt opts[] = {
        {"--dim", NL_OPT_INT, &dim, 2, 9, 0, 0, "D"},
        {"--n", NL_OPT_INT, &n, 2, 1000000, 0, 0, "N"},
        {"--n-test", NL_OPT_INT, &n_test, 1, 100000000, 0, 0, "M"},
        {"--dual", NL_OPT_STR, &duals, 0, 0, 0, 0, "LIST"},
        {"--depth", NL_OPT_STR, &depths, 0, 0, 0, 0, "LIST"},
        {"--kernel", NL_OPT_STR, &kernel, 0, 0, 0, 0, "K"},
        {"--seed", NL_OPT_INT, &seed, 0, 9.0e18, 0, 0, "S"},
        {"--prior", NL_OPT_DOUBLE, &prior, 0, 1, 1, 0, "P"},
        {"--relu-n", NL_OPT_INT, &relu_n, 0, 100000, 0, 0, "N"},
        {"--relu-test", NL_OPT_INT, &relu_test, 1, 100000000, 0, 0, "M"},
        {"--relu-depth", NL_OPT_INT, &relu_depth, 0, 100000000, 0, 0, "L"},
        {"--relu-eps", NL_OPT_DOUBLE, &relu_eps, 0, 1, 1, 0, "E"},
        {"--margin", NL_OPT_DOUBLE, &margin, 0, 1, 0, 0, "X"},
        {"--full", NL_OPT_FLAG, &full, 0, 0, 0, 0, NULL},
        {"--swap", NL_OPT_STR, &swap, 0, 0, 0, 0, "SPEC"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--json", NL_OPT_FLAG, &json, 0, 0, 0, 0, NULL},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int help = 0, n_pos = 0;
    int rc = nl_cli_parse("wide-deep", argc, argv, opts, n_opts, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_widedeep(stdout);
        return NL_CLI_OK;
    }
    nl_wide_deep_config c;
    if (full) nl_wide_deep_config_full(&c);
    else nl_wide_deep_config_quick(&c); /* no options: exactly the ledger's quick run */
    double a1[64], a2[64];
    if (nl_wide_deep_alphas((int)dim, a1, a2)) return nl_cli_usage_error("wide-deep", "--dim: %s", nl_last_error());
    c.dim = (int)dim;
    if (n > 0) c.n_train = n;
    if (n_test > 0) c.n_test = n_test;
    c.seed = (uint64_t)seed;
    c.prior1 = prior;
    if (prior >= 1) return nl_cli_usage_error("wide-deep", "--prior: %g must be in (0, 1)", prior);
    if (duals && (rc = wd_parse_duals(duals, &c))) return rc;
    if (depths) {
        char err[256];
        int nd = 0;
        if (nl_cli_parse_list(depths, 0, 100000000, NL_WIDE_DEEP_MAX_DEPTHS, c.depths, &nd, err, sizeof err))
            return nl_cli_usage_error("wide-deep", "--depth: %s", err);
        for (int i = 1; i < nd; i++)
            if (c.depths[i] <= c.depths[i - 1]) return nl_cli_usage_error("wide-deep", "--depth: depths must increase ('%s')", depths);
        c.n_depths = nd;
    }
    if (!strcmp(kernel, "nngp")) c.kernels = NL_WIDE_DEEP_NNGP;
    else if (!strcmp(kernel, "ntk")) c.kernels = NL_WIDE_DEEP_NTK;
    else if (!strcmp(kernel, "both")) c.kernels = NL_WIDE_DEEP_NNGP | NL_WIDE_DEEP_NTK;
    else return nl_cli_usage_error("wide-deep", "--kernel: '%s' is not nngp, ntk or both", kernel);
    if (relu_n >= 0) c.relu_n_train = relu_n;
    if (c.relu_n_train > c.n_train) c.relu_n_train = c.n_train;
    if (relu_test > 0) c.relu_n_test = relu_test;
    if (c.relu_n_test > c.n_test) c.relu_n_test = c.n_test;
    if (c.relu_n_train > 0 && c.relu_n_train < 2) return nl_cli_usage_error("wide-deep", "--relu-n: need 0 (skip) or >= 2");
    c.relu_depth = relu_depth;
    c.relu_eps = relu_eps;
    if (margin >= 0) c.bayes_margin = margin;
    c.verbose = !quiet;
    int threads_seen = 0;
    for (int i = 0; i < n_opts; i++)
        if (!strcmp(opts[i].name, "--threads")) threads_seen = opts[i].seen;
    nl_cli_threads(threads, threads_seen);

    nl_wide_deep_result r;
    if (nl_wide_deep_run(&c, swap, &r)) {
        fprintf(stderr, "nnlab wide-deep: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    char msg[512];
    int pass = nl_wide_deep_judge(&r, msg, sizeof msg);
    int evaluable = !isnan(r.hermite_agree_1nn_min) && !isnan(r.relu_agree_maj_final) && r.relu_ran && c.relu_depth == 0;
    int has_opt = 0, has_range = 0;
    for (int i = 0; i < c.n_duals; i++) has_opt |= !strcmp(r.duals[i].dual, r.opt_dual);
    for (int l = 0; l < c.n_depths; l++) has_range |= c.depths[l] >= 50 && c.depths[l] <= 200;
    evaluable = evaluable && has_opt && has_range && (c.kernels & NL_WIDE_DEEP_NNGP);
    if (json) print_json(&c, &r, pass, evaluable, msg);
    else print_text(&c, &r, pass, evaluable, msg);
    return evaluable && !pass ? NL_CLI_FAIL : NL_CLI_OK;
}
