/* nnlab mdbm — train a monotone deep Boltzmann machine on binarised Fashion-MNIST with a random fraction of pixels
 * observed, and print convergence, classification and completion (methods/mdbm/README.md). */
#include "mdbm/mdbm.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <string.h>

static void help_mdbm(FILE *f) {
    fprintf(f,
            "usage: nnlab mdbm train [options]\n"
            "\n"
            "Monotone deep Boltzmann machine (Feng, Winston & Kolter, TMLR 2023): one-hot groups (784 binary pixels,\n"
            "hidden groups, a 10-way class group), pairwise weights A = blkdiag(V^T V) - V^T V with V = W diag(sqrt s_g)\n"
            "and s_g = min(1, 0.99 / ||W_g||^2), so that I - A >= 0.01 I and mean field has a unique fixed point, found\n"
            "by damped forward-backward splitting with the softmax-entropy prox and Anderson acceleration, observed\n"
            "pixels clamped; trained by implicit differentiation. Data: binarised Fashion-MNIST (dataset-fashion-mnist).\n"
            "The ledger entry is `nnlab repro mdbm`.\n"
            "\n"
            "  --train N          training images (default 2000)\n"
            "  --test N           test images (default 1000)\n"
            "  --control N        test images for the unprojected control (default 200; 0: none)\n"
            "  --hidden G         hidden groups (default 16)\n"
            "  --hidden-k K       units per hidden group (default 4; 2..16)\n"
            "  --rank R           rows of W (default 64)\n"
            "  --epochs E         default 3\n"
            "  --batch B          default 50\n"
            "  --lr X             Adam learning rate (default 5e-3)\n"
            "  --observed P       fraction of pixels observed (default 0.4)\n"
            "  --seed N           default 1\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n"
            "  --quiet            no progress lines\n");
}

static int mdbm_train(int argc, char **argv) {
    nl_mdbm_config c = nl_mdbm_defaults();
    int64_t ntr = c.n_train, nte = c.n_test, nct = c.n_ctrl, hg = c.hidden_groups, hk = c.hidden_k, rank = c.rank,
            ep = c.epochs, batch = c.batch, seed = 1, threads = 0;
    double lr = c.lr, obs = c.observed;
    int quiet = 0;
    nl_cli_opt opts[] = {
        {"--train", NL_OPT_INT, &ntr, 1, 60000, 0, 0, "N"},
        {"--test", NL_OPT_INT, &nte, 1, 10000, 0, 0, "N"},
        {"--control", NL_OPT_INT, &nct, 0, 10000, 0, 0, "N"},
        {"--hidden", NL_OPT_INT, &hg, 0, 4096, 0, 0, "G"},
        {"--hidden-k", NL_OPT_INT, &hk, 2, NL_MDBM_MAX_GROUP, 0, 0, "K"},
        {"--rank", NL_OPT_INT, &rank, 1, 8192, 0, 0, "R"},
        {"--epochs", NL_OPT_INT, &ep, 0, 1000, 0, 0, "E"},
        {"--batch", NL_OPT_INT, &batch, 1, 10000, 0, 0, "B"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--observed", NL_OPT_DOUBLE, &obs, 0, 1, 0, 0, "P"},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("mdbm train", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_mdbm(stdout);
        return NL_CLI_OK;
    }
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    c.n_train = ntr, c.n_test = nte, c.n_ctrl = nct, c.hidden_groups = (int)hg, c.hidden_k = (int)hk, c.rank = rank;
    c.epochs = (int)ep, c.batch = (int)batch, c.lr = lr, c.observed = obs, c.seed = (uint64_t)seed, c.verbose = !quiet;
    nl_dataset tr, te;
    nl_status s = nl_dataset_load(&tr, "fashion-mnist", "train", NULL);
    if (!s && (s = nl_dataset_load(&te, "fashion-mnist", "test", NULL))) nl_dataset_free(&tr);
    nl_mdbm_result r;
    if (!s) {
        s = nl_mdbm_run(&c, &tr, &te, &r);
        nl_dataset_free(&tr);
        nl_dataset_free(&te);
    }
    if (s) {
        fprintf(stderr, "nnlab mdbm train: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    printf("mdbm: converged %.4f of %lld test inputs (%.1f batch iterations), accuracy %.4f, unobserved-pixel accuracy %.4f "
           "vs per-pixel marginal %.4f; min s_g %.3g, mean s_g %.3g; training solves converged %.4f; %.2f s training, "
           "%.2f s evaluation\n",
           r.converged, (long long)c.n_test, r.mean_iters, r.acc, r.completion, r.marginal, r.min_s, r.mean_s, r.train_conv,
           r.train_seconds, r.eval_seconds);
    if (c.n_ctrl > 0)
        printf("unprojected control (same W, s_g = 1) on %lld test inputs: converged %.4f (%.1f batch iterations), accuracy "
               "%.4f, unobserved-pixel accuracy %.4f\n",
               (long long)c.n_ctrl, r.ctrl_converged, r.ctrl_mean_iters, r.ctrl_acc, r.ctrl_completion);
    return NL_CLI_OK;
}

int nl_mdbm_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"train", mdbm_train}};
    return nl_cli_subcommands("mdbm", argc, argv, help_mdbm, subs, 1);
}
