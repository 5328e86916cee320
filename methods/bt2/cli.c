/* nnlab bt2 — one seed of the BT^2 protocol on Fashion-MNIST: the old model (classes 0-4), then the independent, BCT
 * and BT^2 new models (all classes), optionally BT^2 with the transformation frozen at the identity; prints the test
 * accuracy and the retrieval top-1 / mAP old/old, new/old and new/new (methods/bt2/README.md). */
#include "bt2/bt2.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <string.h>

static void help_bt2(FILE *f) {
    fprintf(f,
            "usage: nnlab bt2 train [options]\n"
            "\n"
            "BT^2 (Zhou et al., ICCV 2023) on Fashion-MNIST: an old model on classes 0-4 (128-d embedding), then new\n"
            "models on all 10 classes: independent (128-d), BCT (influence loss through the old class means, 128-d) and\n"
            "BT^2 (a 128-d backward-compatible part and 32 extra dimensions, two learned orthogonal maps, 160-d).\n"
            "Retrieval on the test images (query = gallery, self excluded, cosine): top-1 and mAP old/old, new/old,\n"
            "new/new. The ledger entry is `nnlab repro bt2`.\n"
            "\n"
            "  --epochs N         epochs of every training (default 5)\n"
            "  --limit N          first N training images (default all 60000)\n"
            "  --test-limit N     first N test images: the query and gallery set (default all 10000)\n"
            "  --hidden H         backbone hidden width (default 256)\n"
            "  --batch B          default 128\n"
            "  --lr X             Adam learning rate (default 1e-3; cosine schedule, 5%% warm-up)\n"
            "  --C X              BT^2's scale of the new feature before O_p (default 2)\n"
            "  --frozen           also train the control: BT^2 with both orthogonal maps frozen at the identity\n"
            "  --seed N           default 1\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n"
            "  --quiet            no per-epoch progress\n");
}

static int bt2_train(int argc, char **argv) {
    nl_bt2_config cfg = nl_bt2_defaults();
    int64_t epochs = cfg.epochs, limit = 0, test_limit = 0, hidden = cfg.hidden, batch = cfg.batch, seed = 1, threads = 0;
    double lr = cfg.lr, C = cfg.C;
    int frozen = 0, quiet = 0;
    nl_cli_opt opts[] = {
        {"--epochs", NL_OPT_INT, &epochs, 1, 10000, 0, 0, "N"},
        {"--limit", NL_OPT_INT, &limit, 20, 60000, 0, 0, "N"},
        {"--test-limit", NL_OPT_INT, &test_limit, 20, 10000, 0, 0, "N"},
        {"--hidden", NL_OPT_INT, &hidden, 1, 1 << 16, 0, 0, "H"},
        {"--batch", NL_OPT_INT, &batch, 2, 60000, 0, 0, "B"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--C", NL_OPT_DOUBLE, &C, 0, 1e6, 1, 0, "X"},
        {"--frozen", NL_OPT_FLAG, &frozen, 0, 0, 0, 0, NULL},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("bt2 train", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_bt2(stdout);
        return NL_CLI_OK;
    }
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    cfg.epochs = epochs;
    cfg.limit = limit;
    cfg.test_limit = test_limit;
    cfg.hidden = hidden;
    cfg.batch = batch;
    cfg.lr = lr;
    cfg.C = C;
    cfg.seed = (uint64_t)seed;
    cfg.verbose = !quiet;
    nl_dataset tr, te;
    nl_bt2_protocol p;
    nl_status s = nl_bt2_load(&cfg, &tr, &te);
    if (!s) s = nl_bt2_protocol_run(&cfg, &tr, &te, frozen, &p);
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    if (s) {
        fprintf(stderr, "nnlab bt2 train: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    printf("bt2 on fashion-mnist: %lld training images, %lld test images (query = gallery), %lld epoch(s), seed %lld, %.1f s\n",
           (long long)p.n_train, (long long)p.old_old.queries, (long long)epochs, (long long)seed, p.seconds);
    printf("%-12s %9s %14s %14s\n", "model", "accuracy", "new/old top1/mAP", "new/new top1/mAP");
    printf("%-12s %8.2f%% %6.2f / %5.2f\n", "old", 100 * p.old_acc, 100 * p.old_old.top1, 100 * p.old_old.map);
    for (int k = 0; k < (frozen ? 4 : 3); k++)
        printf("%-12s %8.2f%% %6.2f / %5.2f  %6.2f / %5.2f\n", nl_bt2_kind_name((nl_bt2_kind)(k + NL_BT2_INDEP)), 100 * p.new_acc[k],
               100 * p.new_old[k].top1, 100 * p.new_old[k].map, 100 * p.new_new[k].top1, 100 * p.new_new[k].map);
    printf("(old row: old/old on the old model's classes for accuracy; retrieval over all test images)\n");
    return NL_CLI_OK;
}

int nl_bt2_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"train", bt2_train}};
    return nl_cli_subcommands("bt2", argc, argv, help_bt2, subs, 1);
}
