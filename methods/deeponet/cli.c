/* nnlab deeponet — generate GRF operator data, train a DeepONet (or the FNN baseline) and print its test MSE
 * (methods/deeponet/README.md). */
#include "deeponet/deeponet.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <string.h>

static void help_deeponet(FILE *f) {
    fprintf(f,
            "usage: nnlab deeponet train [--operator antiderivative|ode] [--arch deeponet|fnn] [options]\n"
            "\n"
            "DeepONet (Lu, Jin & Karniadakis 2019/2021): a branch net reads the input function u at m sensors, a trunk\n"
            "net reads the query point y, and G(u)(y) = sum_k b_k t_k + b0. Input functions: a Gaussian random field\n"
            "(RBF kernel) on [0, 1]; targets from an adaptive Dormand-Prince integrator: antiderivative ds/dx = u(x) or\n"
            "the nonlinear ODE ds/dx = -s^2 + u(x), s(0) = 0. The ledger entry is `nnlab repro deeponet`.\n"
            "\n"
            "  --operator NAME    antiderivative (default) or ode\n"
            "  --arch NAME        deeponet (default) or fnn (the baseline: [u(sensors), y] -> s)\n"
            "  --sensors M        sensors (default 100; >= 1)\n"
            "  --width W          DeepONet branch/trunk width (default 40)\n"
            "  --fnn-width H      FNN hidden width (default 50)\n"
            "  --depth D          hidden layers per net (default 2)\n"
            "  --length-scale L   GRF RBF length scale (default 0.2)\n"
            "  --grid N           GRF grid points (default 1000)\n"
            "  --train N          training triples (default 10000)\n"
            "  --test N           test triples (default 100000)\n"
            "  --iters N          Adam iterations (default 50000)\n"
            "  --batch B          minibatch (default 256; 0: full batch, as the reference)\n"
            "  --lr X             Adam learning rate (default 1e-3)\n"
            "  --eval-every N     print the test MSE every N iterations (default 0: at the end)\n"
            "  --ckpt-every N     checkpoint on the training-set MSE every N iterations and restore the best at the\n"
            "                     end, as the reference (default 1000; 0: keep the last iterate)\n"
            "  --shuffle-branch   control: the branch sees another function's sensors\n"
            "  --seed N           default 1\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n"
            "  --quiet            no progress lines\n");
}

static int deeponet_train(int argc, char **argv) {
    nl_deeponet_config cfg = nl_deeponet_defaults();
    const char *op = "antiderivative", *arch = "deeponet";
    int64_t sensors = cfg.sensors, width = cfg.width, fw = cfg.fnn_width, depth = cfg.depth, grid = cfg.grid,
            ntr = cfg.n_train, nte = cfg.n_test, iters = cfg.iters, batch = cfg.batch, every = 0, ckpt = cfg.ckpt_every, seed = 1, threads = 0;
    double ls = cfg.length_scale, lr = cfg.lr;
    int shuf = 0, quiet = 0;
    /* --sensors takes any integer here so that 0 reaches the library's own check (a clear message, exit 1) */
    nl_cli_opt opts[] = {
        {"--operator", NL_OPT_STR, &op, 0, 0, 0, 0, "NAME"},
        {"--arch", NL_OPT_STR, &arch, 0, 0, 0, 0, "NAME"},
        {"--sensors", NL_OPT_INT, &sensors, -1e9, 1e9, 0, 0, "M"},
        {"--width", NL_OPT_INT, &width, 1, 1 << 16, 0, 0, "W"},
        {"--fnn-width", NL_OPT_INT, &fw, 1, 1 << 16, 0, 0, "H"},
        {"--depth", NL_OPT_INT, &depth, 1, NL_DON_MAX_LAYERS - 1, 0, 0, "D"},
        {"--length-scale", NL_OPT_DOUBLE, &ls, 0, 100, 1, 0, "L"},
        {"--grid", NL_OPT_INT, &grid, 4, 20000, 0, 0, "N"},
        {"--train", NL_OPT_INT, &ntr, 1, 1e8, 0, 0, "N"},
        {"--test", NL_OPT_INT, &nte, 1, 1e8, 0, 0, "N"},
        {"--iters", NL_OPT_INT, &iters, 0, 1e9, 0, 0, "N"},
        {"--batch", NL_OPT_INT, &batch, 0, 1e8, 0, 0, "B"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--eval-every", NL_OPT_INT, &every, 0, 1e9, 0, 0, "N"},
        {"--ckpt-every", NL_OPT_INT, &ckpt, 0, 1e9, 0, 0, "N"},
        {"--shuffle-branch", NL_OPT_FLAG, &shuf, 0, 0, 0, 0, NULL},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("deeponet train", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_deeponet(stdout);
        return NL_CLI_OK;
    }
    if (nl_deeponet_op_parse(op, &cfg.op)) return nl_cli_usage_error("deeponet train", "--operator: %s", nl_last_error());
    if (strcmp(arch, "deeponet") && strcmp(arch, "fnn"))
        return nl_cli_usage_error("deeponet train", "--arch: '%s' (expected deeponet or fnn)", arch);
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    cfg.arch = strcmp(arch, "fnn") ? NL_DON_DEEPONET : NL_DON_FNN;
    cfg.sensors = sensors;
    cfg.width = width;
    cfg.fnn_width = fw;
    cfg.depth = (int)depth;
    cfg.grid = grid;
    cfg.length_scale = ls;
    cfg.n_train = ntr;
    cfg.n_test = nte;
    cfg.iters = iters;
    cfg.batch = batch;
    cfg.lr = lr;
    cfg.eval_every = every;
    cfg.ckpt_every = ckpt;
    cfg.shuffle_branch = shuf;
    cfg.seed = (uint64_t)seed;
    cfg.verbose = !quiet;
    nl_deeponet_result r;
    nl_status s = nl_deeponet_run(&cfg, &r);
    if (s) {
        fprintf(stderr, "nnlab deeponet train: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    printf("deeponet %s (%s, %lld parameters): test MSE %.4e (%.4e without the worst 0.1%%), train MSE %.4e (%lld train / %lld test triples, %lld "
           "iterations, checkpoint of step %lld; last iterate: test MSE %.4e), %.2f s data, %.2f s training\n",
           cfg.arch == NL_DON_FNN ? "fnn" : "deeponet", nl_deeponet_op_name(cfg.op), (long long)r.params, r.test_mse, r.test_mse_trim,
           r.train_mse, (long long)cfg.n_train, (long long)cfg.n_test, (long long)cfg.iters, (long long)r.best_step, r.test_mse_last,
           r.data_seconds, r.train_seconds);
    return NL_CLI_OK;
}

int nl_deeponet_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"train", deeponet_train}};
    return nl_cli_subcommands("deeponet", argc, argv, help_deeponet, subs, 1);
}
