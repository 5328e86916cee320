/* nnlab udfc — one seed of the UDFC protocol on Fashion-MNIST: train the net, compress it every way (no data, no
 * fine-tuning) and print the test accuracies (methods/udfc/README.md). */
#include "udfc/udfc.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <string.h>

static void help_udfc(FILE *f) {
    fprintf(f,
            "usage: nnlab udfc run [options]\n"
            "\n"
            "UDFC (Bai et al., ICCV 2023) on Fashion-MNIST: train LeNet-300-100 with BatchNorm (--net mlp) or a small\n"
            "BatchNorm CNN (--net cnn), then prune 50/60/70/80%% of every hidden layer's channels (L1) and/or quantise the\n"
            "weights to 4 / 6 bits without data or fine-tuning: prune only, Neuron Merging, UDFC, and the random-coefficient\n"
            "control; prints the test accuracies. The ledger entry is `nnlab repro udfc`; compressing a saved checkpoint is\n"
            "`nnlab compress compensate`.\n"
            "\n"
            "  --net mlp|cnn      default mlp\n"
            "  --epochs N         training epochs (default 10 for mlp, 5 for cnn)\n"
            "  --limit N          first N training images (default all 60000)\n"
            "  --test-limit N     first N test images (default all 10000)\n"
            "  --seed N           default 1\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n");
}

static int udfc_run(int argc, char **argv) {
    nl_udfc_config cfg = nl_udfc_defaults();
    int64_t epochs = 0, limit = 0, test_limit = 0, seed = 1, threads = 0;
    const char *net = "mlp";
    nl_cli_opt opts[] = {
        {"--net", NL_OPT_STR, &net, 0, 0, 0, 0, "mlp|cnn"},
        {"--epochs", NL_OPT_INT, &epochs, 1, 10000, 0, 0, "N"},
        {"--limit", NL_OPT_INT, &limit, 20, 60000, 0, 0, "N"},
        {"--test-limit", NL_OPT_INT, &test_limit, 20, 10000, 0, 0, "N"},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("udfc run", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_udfc(stdout);
        return NL_CLI_OK;
    }
    nl_udfc_net kind;
    if (!strcmp(net, "mlp")) kind = NL_UDFC_MLP;
    else if (!strcmp(net, "cnn")) kind = NL_UDFC_CNN;
    else return nl_cli_usage_error("udfc", "--net: unknown net '%s' (mlp or cnn)", net);
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    if (epochs) cfg.epochs_mlp = cfg.epochs_cnn = epochs;
    cfg.limit = limit;
    cfg.test_limit = test_limit;
    cfg.seed = (uint64_t)seed;
    nl_dataset tr, te;
    nl_udfc_seed_result r;
    nl_status s = nl_udfc_load(&cfg, &tr, &te);
    if (!s) s = nl_udfc_seed_run(&cfg, kind, &tr, &te, &r);
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    if (s) {
        fprintf(stderr, "nnlab udfc run: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    printf("udfc %s, seed %lld: base %.2f%%; 4-bit naive %.2f%% compensated %.2f%% random %.2f%%; 6-bit naive %.2f%% compensated %.2f%%\n",
           net, (long long)seed, 100 * r.base, 100 * r.naive4, 100 * r.comp4, 100 * r.rand4, 100 * r.naive6, 100 * r.comp6);
    printf("%-6s %9s %9s %9s %9s | %9s %9s %9s | %9s %9s\n", "ratio", "prune", "NM", "UDFC", "random", "prune6", "UDFC6",
           "random6", "prune4", "UDFC4");
    for (int i = 0; i < NL_UDFC_RATIOS; i++)
        printf("%5.0f%% %8.2f%% %8.2f%% %8.2f%% %8.2f%% | %8.2f%% %8.2f%% %8.2f%% | %8.2f%% %8.2f%%\n", 100 * nl_udfc_ratios[i],
               100 * r.prune_fp[i], 100 * r.nm_fp[i], 100 * r.udfc_fp[i], 100 * r.rand_fp[i], 100 * r.prune6[i], 100 * r.udfc6[i],
               100 * r.rand6[i], 100 * r.prune4[i], 100 * r.udfc4[i]);
    return NL_CLI_OK;
}

int nl_udfc_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"run", udfc_run}};
    return nl_cli_subcommands("udfc", argc, argv, help_udfc, subs, 1);
}
