/* nnlab n2n — one seed of N2N on Fashion-MNIST: the teacher, the layer-removal and layer-shrinkage REINFORCE stages,
 * the best child and a random-removal child of the same size distilled from the teacher (methods/n2n/README.md). */
#include "n2n/n2n.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <string.h>

static void help_n2n(FILE *f) {
    fprintf(f,
            "usage: nnlab n2n search [options]\n"
            "\n"
            "N2N (Ashok et al., ICLR 2018) on Fashion-MNIST (14x14): a VGG-style teacher (8 conv blocks, pooling after\n"
            "blocks 3 and 6, fc 32), then REINFORCE over a bidirectional-LSTM layer-removal policy and an autoregressive\n"
            "LSTM layer-shrinkage policy; every child is re-initialised and distilled from the teacher and scored with\n"
            "R = (A_s/A_t) C (2 - C), C = 1 - P_s/P_t (-1 when not smaller). Prints the teacher, the best child and a\n"
            "random-removal child with the same parameter count. The ledger entry is `nnlab repro n2n`.\n"
            "\n"
            "  --removal-epochs N   policy epochs of the removal stage (default 30)\n"
            "  --shrink-epochs N    policy epochs of the shrinkage stage (default 20)\n"
            "  --rollouts N         children per policy epoch (default 5)\n"
            "  --train N            teacher training images (default 10000)\n"
            "  --distil N           distillation images of every rollout child (default 2000, <= --train)\n"
            "  --val N              validation images scoring the children (default 1000)\n"
            "  --test N             test images (default 10000)\n"
            "  --teacher-epochs N   default 4\n"
            "  --final-epochs N     distillation epochs of the best and random children (default 4)\n"
            "  --lr X               Adam learning rate of teacher and students (default 2e-3)\n"
            "  --seed N             default 1\n"
            "  --threads T          threads (default NL_NUM_THREADS or all cores)\n"
            "  --quiet              no per-epoch progress\n");
}

static int n2n_search(int argc, char **argv) {
    nl_n2n_config cfg = nl_n2n_defaults();
    int64_t re = cfg.removal_epochs, se = cfg.shrink_epochs, ro = cfg.rollouts, ntr = cfg.n_train, nd = cfg.n_distil;
    int64_t nv = cfg.n_val, nt = cfg.n_test, te = cfg.teacher_epochs, fe = cfg.final_epochs, seed = 1, threads = 0;
    double lr = cfg.lr;
    int quiet = 0;
    nl_cli_opt opts[] = {
        {"--removal-epochs", NL_OPT_INT, &re, 1, 100, 0, 0, "N"},
        {"--shrink-epochs", NL_OPT_INT, &se, 0, 28, 0, 0, "N"},
        {"--rollouts", NL_OPT_INT, &ro, 1, 64, 0, 0, "N"},
        {"--train", NL_OPT_INT, &ntr, 100, 55000, 0, 0, "N"},
        {"--distil", NL_OPT_INT, &nd, 10, 55000, 0, 0, "N"},
        {"--val", NL_OPT_INT, &nv, 10, 5000, 0, 0, "N"},
        {"--test", NL_OPT_INT, &nt, 10, 10000, 0, 0, "N"},
        {"--teacher-epochs", NL_OPT_INT, &te, 1, 1000, 0, 0, "N"},
        {"--final-epochs", NL_OPT_INT, &fe, 1, 1000, 0, 0, "N"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("n2n search", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_n2n(stdout);
        return NL_CLI_OK;
    }
    if (nd > ntr) return nl_cli_usage_error("n2n search", "--distil %lld is larger than --train %lld", (long long)nd, (long long)ntr);
    if (re + se > 128) return nl_cli_usage_error("n2n search", "at most 128 policy epochs in all");
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    cfg.removal_epochs = (int)re, cfg.shrink_epochs = (int)se, cfg.rollouts = (int)ro;
    cfg.n_train = ntr, cfg.n_distil = nd, cfg.n_val = nv, cfg.n_test = nt;
    cfg.teacher_epochs = te, cfg.final_epochs = fe, cfg.lr = lr, cfg.seed = (uint64_t)seed, cfg.verbose = !quiet;
    nl_n2n_data d;
    nl_n2n_result r;
    nl_status s = nl_n2n_data_load(&cfg, &d);
    if (!s) s = nl_n2n_run(&cfg, &d, 0, &r);
    nl_n2n_data_free(&d);
    if (s) {
        fprintf(stderr, "nnlab n2n search: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    printf("n2n on fashion-mnist 14x14, seed %lld, %.1f s\n", (long long)seed, r.seconds);
    printf("teacher: %lld parameters, test accuracy %.2f%%\n", (long long)r.teacher_params, 100 * r.teacher_acc);
    printf("best child (reward %.4f): %lld parameters (%.2fx), test accuracy %.2f%%; conv", r.best_reward, (long long)r.best_params,
           (double)r.teacher_params / (double)r.best_params, 100 * r.best_acc);
    for (int l = 0; l < r.best.n_conv; l++) printf(" %d%s", r.best.channels[l], r.best.pooled[l] ? "p" : "");
    printf(", fc %lld\n", (long long)r.best.hidden);
    printf("random removal, same size: %lld parameters, test accuracy %.2f%%\n", (long long)r.random_params, 100 * r.random_acc);
    printf("mean reward per policy epoch:");
    for (int e = 0; e < r.n_epochs; e++) printf(" %.3f", r.mean_reward[e]);
    printf("\n");
    return NL_CLI_OK;
}

int nl_n2n_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"search", n2n_search}};
    return nl_cli_subcommands("n2n", argc, argv, help_n2n, subs, 1);
}
