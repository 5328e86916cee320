/* nnlab snnk — `kernel`: one universal-random-feature estimate against the closed-form kernel; `train`: the MLP, the
 * SNNK-layer network and the fully bundled closed-form network on Fashion-MNIST (methods/snnk/README.md). */
#include "snnk/snnk.h"
#include "nnlab/cli.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static void help_snnk(FILE *f) {
    fprintf(f,
            "usage: nnlab snnk kernel [options]\n"
            "       nnlab snnk train [options]\n"
            "\n"
            "Scalable Neural Network Kernels (Sehanobish et al., ICLR 2024). Universal random features phi(x), psi(w) with\n"
            "shared Gaussian projections give an unbiased estimate phi(x).psi(w) of a kernel K(x, w): exp(x.w), cos(x.w), the\n"
            "arc-cosine kernel of order 1 (ReLU features) or of order 0 (step features). The ledger entry is `nnlab repro snnk`.\n"
            "\n"
            "kernel: x, w unit vectors in d dimensions with correlation --rho; prints the estimate, its SE and the kernel.\n"
            "  --kind K           exp | cos | relu | arccos0 (default exp)\n"
            "  --m N              random features (default 1000000; must be >= 1)\n"
            "  --dim D            default 8\n"
            "  --rho X            x.w (default 0.5)\n"
            "  --uniform          draw the projections U[0,1) (the broken control: biased)\n"
            "  --seed N           default 1\n"
            "\n"
            "train: MLP 784-H-10 on Fashion-MNIST; its hidden layer replaced by a ReLU-SNNK layer phi([x,1]) Psi (Psi from the\n"
            "trained weights, fine-tuned with the output layer); the fully bundled network phi([x,1]) M by ridge regression.\n"
            "  --limit N          first N training images (default 6000)\n"
            "  --test-limit N     first N test images (default 2000)\n"
            "  --epochs N         Adam epochs of the MLP and of the SNNK fine-tuning (default 10)\n"
            "  --hidden H         default 512\n"
            "  --m-layer N        random features of the SNNK layer (default 128; must be >= 1)\n"
            "  --m-bundle N       random features of the bundled network (default 2048; must be >= 1)\n"
            "  --ridge X          lambda = X trace(Phi^T Phi) / m (default 1e-3)\n"
            "  --seed N           default 1\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n"
            "  --quiet            no progress lines\n");
}

static int cli_kernel(int argc, char **argv) {
    int64_t m = 1000000, dim = 8, seed = 1;
    double rho = 0.5;
    int uni = 0;
    const char *kind = "exp";
    nl_cli_opt opts[] = {
        {"--kind", NL_OPT_STR, &kind, 0, 0, 0, 0, "K"},
        {"--m", NL_OPT_INT, &m, 0, 1e9, 0, 0, "N"},
        {"--dim", NL_OPT_INT, &dim, 2, 4096, 0, 0, "D"},
        {"--rho", NL_OPT_DOUBLE, &rho, -1, 1, 0, 0, "X"},
        {"--uniform", NL_OPT_FLAG, &uni, 0, 0, 0, 0, NULL},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("snnk kernel", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_snnk(stdout);
        return NL_CLI_OK;
    }
    int k = nl_snnk_kind_parse(kind);
    if (k < 0) return nl_cli_usage_error("snnk kernel", "unknown --kind '%s' (exp, cos, relu, arccos0)", kind);
    double xw[2 * 4096];
    memset(xw, 0, sizeof xw);
    xw[0] = 1, xw[dim] = rho, xw[dim + 1] = sqrt(1 - rho * rho); /* unit x = e1, w = rho e1 + sqrt(1 - rho^2) e2 */
    double est, se;
    nl_status s = nl_snnk_estimate((nl_snnk_kind)k, uni ? NL_SNNK_UNIFORM : NL_SNNK_GAUSS, xw, xw + dim, dim, m, (uint64_t)seed, &est, &se);
    if (s) {
        fprintf(stderr, "nnlab snnk kernel: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    double K = nl_snnk_kernel((nl_snnk_kind)k, xw, xw + dim, dim);
    printf("snnk kernel %s (%s projections), d %lld, m %lld, x.w %.3f: estimate %.6f +- %.6f, closed form %.6f, z %.2f\n",
           nl_snnk_kind_name(k), uni ? "uniform" : "gaussian", (long long)dim, (long long)m, rho, est, se, K, se > 0 ? (est - K) / se : 0.0);
    return NL_CLI_OK;
}

static int cli_train(int argc, char **argv) {
    nl_snnk_config cfg = nl_snnk_defaults();
    int64_t limit = 6000, test_limit = 2000, epochs = cfg.epochs, hidden = cfg.hidden, ml = cfg.m_layer, mb = cfg.m_bundle, seed = 1,
            threads = 0;
    double ridge = cfg.ridge;
    int quiet = 0;
    nl_cli_opt opts[] = {
        {"--limit", NL_OPT_INT, &limit, 10, 60000, 0, 0, "N"},
        {"--test-limit", NL_OPT_INT, &test_limit, 1, 10000, 0, 0, "N"},
        {"--epochs", NL_OPT_INT, &epochs, 0, 10000, 0, 0, "N"},
        {"--hidden", NL_OPT_INT, &hidden, 1, 1 << 14, 0, 0, "H"},
        {"--m-layer", NL_OPT_INT, &ml, 0, 1 << 16, 0, 0, "N"},
        {"--m-bundle", NL_OPT_INT, &mb, 0, 1 << 15, 0, 0, "N"},
        {"--ridge", NL_OPT_DOUBLE, &ridge, 0, 1e6, 1, 0, "X"},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("snnk train", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_snnk(stdout);
        return NL_CLI_OK;
    }
    if (ml < 1 || mb < 1) { /* checked before the data are read */
        fprintf(stderr, "nnlab snnk train: error: the number of random features m must be >= 1 (got --m-layer %lld, --m-bundle %lld)\n",
                (long long)ml, (long long)mb);
        return NL_CLI_FAIL;
    }
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    cfg.epochs = epochs, cfg.hidden = hidden, cfg.m_layer = ml, cfg.m_bundle = mb, cfg.ridge = ridge, cfg.seed = (uint64_t)seed;
    cfg.verbose = !quiet;
    nl_dataset tr, te;
    nl_snnk_result res;
    nl_status s = nl_snnk_load(limit, test_limit, &tr, &te);
    if (!s) s = nl_snnk_run(&cfg, &tr, &te, &res);
    int64_t ntr = tr.n, nte = te.n;
    nl_dataset_free(&tr), nl_dataset_free(&te);
    if (s) {
        fprintf(stderr, "nnlab snnk train: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    printf("snnk on fashion-mnist: %lld train / %lld test images, %lld epochs, seed %lld\n", (long long)ntr, (long long)nte,
           (long long)epochs, (long long)seed);
    printf("MLP 784-%lld-10:        test accuracy %.2f%%, %.0f trainable parameters, %.1f CPU s\n", (long long)hidden,
           100 * res.mlp_acc, res.mlp_params, res.mlp_seconds);
    printf("SNNK layer (m %lld):   test accuracy %.2f%%, %.0f trainable parameters, %.1f CPU s\n", (long long)ml, 100 * res.snnk_acc,
           res.snnk_params, res.snnk_seconds);
    printf("bundled (m %lld):      test accuracy %.2f%%, %.0f parameters (closed form), %.1f CPU s\n", (long long)mb,
           100 * res.bundle_acc, res.bundle_params, res.bundle_seconds);
    return NL_CLI_OK;
}

int nl_snnk_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"kernel", cli_kernel}, {"train", cli_train}};
    return nl_cli_subcommands("snnk", argc, argv, help_snnk, subs, 2);
}
