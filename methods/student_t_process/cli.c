/* nnlab student-t-process — Student-t process vs GP regression over NNGP kernels on the syn-t data (methods/student_t_process/README.md).
 * Entry point: nl_student_t_process_cli(argc, argv) with the arguments after "student-t-process" (or its alias "stp"). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "nnlab/cli.h"
#include "nnlab/base.h"
#include "student_t_process/student_t_process.h"

int nl_student_t_process_cli(int argc, char **argv);

static void help_stp(FILE *f) {
    fprintf(f,
            "usage: nnlab student-t-process [options]\n"
            "\n"
            "Scale mixture of NNGPs (Lee et al., ICLR 2022): an inverse-gamma prior on the last-layer variance makes the NNGP\n"
            "a Student-t process, y ~ MVT_{2 alpha}(0, (beta/alpha)(K + noise I)). Runs syn-t: y = GP(RBF, l=1) sample on\n"
            "x = linspace(-150, 150, N) + 0.8 Cauchy noise, 20%% held out; fits the Student-t process and a GP with the same\n"
            "depth-2 ReLU NNGP kernel (inputs x/150) by type-II ML with Adam, and compares the mean test NLL per point.\n"
            "Without options: the quick configuration of the ledger entry `student-t-process`.\n"
            "\n"
            "  --n N          total points (default 300)\n"
            "  --steps S      Adam steps per fit (default 150; --full 500)\n"
            "  --lr X         Adam learning rate (default 0.05; --full 0.02)\n"
            "  --splits K     independent data sets averaged (default 3; --full 10)\n"
            "  --seed S       data seed of the first data set (default 1)\n"
            "  --depth L      hidden layers of the NNGP kernel (default 2)\n"
            "  --full         start from the full configuration\n"
            "  --threads T    threads (default: NL_NUM_THREADS or all cores)\n"
            "  --json         print the results as one JSON object on stdout\n"
            "  --quiet        no progress on stderr\n"
            "\n"
            "Exit status: 0 ran and the STP test NLL is lower than the GP's, 1 error or the pass rule failed, 2 bad\n"
            "command line.\n"
            "\n"
            "example: nnlab student-t-process --n 200 --steps 100 --seed 3 --json\n");
}

static cJSON *jnum(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static void add_hyp(cJSON *o, const char *name, const nl_student_t_process_hyp *h) {
    cJSON *j = cJSON_AddObjectToObject(o, name);
    cJSON_AddItemToObject(j, "sw2", jnum(h->sw2));
    cJSON_AddItemToObject(j, "sb2", jnum(h->sb2));
    cJSON_AddItemToObject(j, "noise", jnum(h->noise));
    cJSON_AddItemToObject(j, "alpha", jnum(h->alpha));
    cJSON_AddItemToObject(j, "beta", jnum(h->beta));
}

int nl_student_t_process_cli(int argc, char **argv) {
    const char *cmd = "student-t-process";
    int64_t n = 300, steps = 150, splits = 3, seed = 1, depth = 2, threads = 0;
    double lr = 0.05;
    int full = 0, json = 0, quiet = 0;
    nl_cli_opt opts[] = {
        {"--n", NL_OPT_INT, &n, 10, 5000, 0, 0, "N"},
        {"--steps", NL_OPT_INT, &steps, 0, 1000000, 0, 0, "S"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--splits", NL_OPT_INT, &splits, 1, 1000, 0, 0, "K"},
        {"--seed", NL_OPT_INT, &seed, 0, 1e15, 0, 0, "S"},
        {"--depth", NL_OPT_INT, &depth, 0, 100, 0, 0, "L"},
        {"--full", NL_OPT_FLAG, &full, 0, 0, 0, 0, NULL},
        {"--threads", NL_OPT_INT, &threads, 1, 4096, 0, 0, "T"},
        {"--json", NL_OPT_FLAG, &json, 0, 0, 0, 0, NULL},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0, help = 0;
    int rc = nl_cli_parse(cmd, argc, argv, opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_stp(stdout);
        return NL_CLI_OK;
    }
    if (n_pos) return nl_cli_usage_error(cmd, "unexpected argument '%s'", pos[0]);
    nl_student_t_process_synt_config c;
    if (full) nl_student_t_process_synt_config_full(&c);
    else nl_student_t_process_synt_config_quick(&c);
    if (opts[0].seen) c.n = n;
    if (opts[1].seen) c.fit.steps = steps;
    if (opts[2].seen) c.fit.lr = lr;
    if (opts[3].seen) c.n_splits = (int)splits;
    if (opts[4].seen) c.seed = (uint64_t)seed;
    if (opts[5].seen) c.fit.kcfg.depth = (int)depth;
    c.verbose = !quiet;
    nl_cli_threads(threads, opts[7].seen);
    nl_student_t_process_synt_result r;
    if (nl_student_t_process_synt_run(&c, &r)) {
        fprintf(stderr, "nnlab student-t-process: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    int pass = isfinite(r.stp_nll) && isfinite(r.gp_nll) && r.stp_nll < r.gp_nll;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "n", (double)c.n);
        cJSON_AddNumberToObject(o, "n_train", (double)r.n_train);
        cJSON_AddNumberToObject(o, "n_test", (double)r.n_test);
        cJSON_AddNumberToObject(o, "splits", c.n_splits);
        cJSON_AddNumberToObject(o, "seed", (double)c.seed);
        cJSON_AddNumberToObject(o, "steps", (double)c.fit.steps);
        cJSON_AddNumberToObject(o, "lr", c.fit.lr);
        cJSON_AddNumberToObject(o, "depth", c.fit.kcfg.depth);
        cJSON_AddItemToObject(o, "stp_test_nll", jnum(r.stp_nll));
        cJSON_AddItemToObject(o, "gp_test_nll", jnum(r.gp_nll));
        cJSON_AddItemToObject(o, "stp_test_rmse", jnum(r.stp_rmse));
        cJSON_AddItemToObject(o, "gp_test_rmse", jnum(r.gp_rmse));
        cJSON_AddNumberToObject(o, "stp_wins", r.stp_wins);
        add_hyp(o, "stp_hyp", &r.stp_hyp);
        add_hyp(o, "gp_hyp", &r.gp_hyp);
        cJSON *a = cJSON_AddArrayToObject(o, "stp_train_nll"), *b = cJSON_AddArrayToObject(o, "gp_train_nll");
        for (int64_t s = 0; s <= r.steps; s++) {
            cJSON_AddItemToArray(a, jnum(r.stp_curve[s]));
            cJSON_AddItemToArray(b, jnum(r.gp_curve[s]));
        }
        cJSON_AddBoolToObject(o, "pass", pass);
        cJSON_AddNumberToObject(o, "seconds", r.seconds);
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        printf("syn-t: %lld points (%lld train / %lld test), %d data set(s) from seed %llu, %lld Adam steps\n", (long long)c.n,
               (long long)r.n_train, (long long)r.n_test, c.n_splits, (unsigned long long)c.seed, (long long)c.fit.steps);
        printf("test NLL/point: Student-t process %.4f   GP %.4f   (STP lower on %d/%d)\n", r.stp_nll, r.gp_nll, r.stp_wins,
               c.n_splits);
        printf("test RMSE:      Student-t process %.4f   GP %.4f\n", r.stp_rmse, r.gp_rmse);
        printf("%s (%.1f s)\n", pass ? "PASS: STP test NLL lower" : "FAIL: STP test NLL not lower", r.seconds);
    }
    nl_student_t_process_synt_result_free(&r);
    return pass ? NL_CLI_OK : NL_CLI_FAIL;
}
