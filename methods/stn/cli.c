/* nnlab stn — one Self-Tuning Network run on Fashion-MNIST (or, with --fixed-drop, the plain MLP at fixed
 * hyperparameters, one point of the grid baseline); prints the test loss at the best-validation epoch and the tuned
 * hyperparameters (methods/stn/README.md). */
#include "stn/stn.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <string.h>

static void help_stn(FILE *f) {
    fprintf(f,
            "usage: nnlab stn train [options]\n"
            "\n"
            "Self-Tuning Networks (MacKay et al., ICLR 2019) on Fashion-MNIST: an MLP 784-H-H-10 of hyper-layers tunes its\n"
            "input dropout, two hidden dropout rates and an L2 coefficient online, alternating 2 weight steps (training\n"
            "batch, per-example perturbed hyperparameters, dropout on) with 1 hyperparameter step (validation batch,\n"
            "dropout and perturbation off). The first N images are split 80/20 into training and validation. Reports the\n"
            "test loss at the epoch of lowest validation loss. The ledger entry is `nnlab repro stn`.\n"
            "\n"
            "  --limit N          first N training images, split 80/20 train/validation (default 20000)\n"
            "  --test-limit N     first N test images (default 10000)\n"
            "  --epochs N         default 20\n"
            "  --warmup N         epochs of weight steps only before tuning (default 2)\n"
            "  --hidden H         default 256\n"
            "  --batch B          default 128 (at most 512)\n"
            "  --lr X             SGD learning rate of the weights (default 0.01, momentum 0.9)\n"
            "  --hyper-lr X       Adam learning rate of the hyperparameters and scales (default 0.03)\n"
            "  --entropy X        entropy weight tau (default 1e-5)\n"
            "  --no-tune          the control: hyperparameter updates off (frozen at their start values)\n"
            "  --fixed-drop P     plain MLP (no hypernet), hidden dropout P, no input dropout (a grid point)\n"
            "  --fixed-l2 X       L2 coefficient with --fixed-drop (default 0)\n"
            "  --seed N           default 1\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n"
            "  --quiet            no per-epoch progress\n");
}

static int stn_train(int argc, char **argv) {
    nl_stn_config cfg = nl_stn_defaults();
    int64_t limit = 20000, test_limit = 10000, epochs = cfg.epochs, warmup = cfg.warmup_epochs, hidden = cfg.hidden,
            batch = cfg.batch, seed = 1, threads = 0;
    double lr = cfg.lr_w, hlr = cfg.lr_t, tau = cfg.tau, fdrop = -1, fl2 = 0;
    int notune = 0, quiet = 0;
    nl_cli_opt opts[] = {
        {"--limit", NL_OPT_INT, &limit, 100, 60000, 0, 0, "N"},
        {"--test-limit", NL_OPT_INT, &test_limit, 1, 10000, 0, 0, "N"},
        {"--epochs", NL_OPT_INT, &epochs, 1, 10000, 0, 0, "N"},
        {"--warmup", NL_OPT_INT, &warmup, 0, 10000, 0, 0, "N"},
        {"--hidden", NL_OPT_INT, &hidden, 1, 1 << 14, 0, 0, "H"},
        {"--batch", NL_OPT_INT, &batch, 1, 512, 0, 0, "B"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--hyper-lr", NL_OPT_DOUBLE, &hlr, 0, 10, 0, 0, "X"},
        {"--entropy", NL_OPT_DOUBLE, &tau, 0, 10, 0, 0, "X"},
        {"--no-tune", NL_OPT_FLAG, &notune, 0, 0, 0, 0, NULL},
        {"--fixed-drop", NL_OPT_DOUBLE, &fdrop, 0, 0.95, 0, 0, "P"},
        {"--fixed-l2", NL_OPT_DOUBLE, &fl2, 0, 10, 0, 0, "X"},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("stn train", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_stn(stdout);
        return NL_CLI_OK;
    }
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    cfg.epochs = epochs, cfg.warmup_epochs = warmup, cfg.hidden = hidden, cfg.batch = batch;
    cfg.lr_w = lr, cfg.lr_t = cfg.lr_q = hlr, cfg.tau = tau, cfg.tune = !notune;
    if (nl_cli_seen(opts, N_OPTS, "--fixed-drop")) cfg.fixed = 1, cfg.fixed_drop = fdrop, cfg.fixed_l2 = fl2;
    cfg.seed = (uint64_t)seed, cfg.verbose = !quiet;
    nl_dataset tr, va, te;
    nl_stn_result res;
    nl_status s = nl_stn_load(limit, test_limit, (uint64_t)seed, &tr, &va, &te);
    if (!s) s = nl_stn_run(&cfg, &tr, &va, &te, &res);
    int64_t ntr = tr.n, nva = va.n, nte = te.n;
    nl_dataset_free(&tr), nl_dataset_free(&va), nl_dataset_free(&te);
    if (s) {
        fprintf(stderr, "nnlab stn train: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    printf("stn on fashion-mnist (%s): %lld train / %lld validation / %lld test images, %lld epochs, seed %lld, %.1f CPU s\n",
           cfg.fixed ? "fixed hyperparameters" : cfg.tune ? "self-tuning" : "hyperparameter updates off", (long long)ntr,
           (long long)nva, (long long)nte, (long long)epochs, (long long)seed, res.seconds);
    printf("test loss %.4f, accuracy %.2f%% (epoch %.0f, lowest validation loss %.4f); final-epoch test loss %.4f\n", res.test_loss,
           100 * res.test_acc, res.best_epoch, res.val_loss, res.final_test_loss);
    printf("hyperparameters: input dropout %.3f, dropout %.3f / %.3f, L2 %.3g\n", res.hp[0], res.hp[1], res.hp[2], res.hp[3]);
    return NL_CLI_OK;
}

int nl_stn_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"train", stn_train}};
    return nl_cli_subcommands("stn", argc, argv, help_stn, subs, 1);
}
