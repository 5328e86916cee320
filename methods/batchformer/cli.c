/* nnlab batchformer — one seed on long-tailed Fashion-MNIST: plain training and BatchFormer (optionally the
 * identity-attention control) with one base loss; prints overall and many / medium / few-shot test accuracy
 * (methods/batchformer/README.md). */
#include "batchformer/batchformer.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <string.h>

static void help_bf(FILE *f) {
    fprintf(f,
            "usage: nnlab batchformer train [options]\n"
            "\n"
            "BatchFormer (Hou et al., CVPR 2022) on long-tailed Fashion-MNIST: class k keeps n_max * ratio^(-k/9)\n"
            "training images; an MLP backbone (784-hidden-C, ReLU) and a linear classifier, trained plain and with a\n"
            "transformer encoder layer across the batch (4 heads, FFN width C, dropout 0.5, post-norm) whose output\n"
            "goes through the same classifier as the plain features (labels [y; y]); removed at test time. Prints the\n"
            "test accuracy overall and on the many (3) / medium (4) / few (3) classes by training frequency. The\n"
            "ledger entry is `nnlab repro batchformer`.\n"
            "\n"
            "  --loss L           ce | balanced-softmax (default ce)\n"
            "  --imbalance R      n_max / n_min >= 1 (default 100)\n"
            "  --n-max N          images of the most frequent class (default 6000)\n"
            "  --epochs N         default 10\n"
            "  --hidden H         backbone hidden width (default 256)\n"
            "  --dim C            feature dimension (default 64; a multiple of 4)\n"
            "  --batch B          default 128\n"
            "  --lr X             Adam learning rate (default 1e-3, cosine; the BatchFormer at 0.1x)\n"
            "  --test-limit N     first N test images (default all 10000)\n"
            "  --identity         also train the control: attention replaced by the identity\n"
            "  --seed N           default 1\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n"
            "  --quiet            no per-epoch progress\n");
}

static int bf_train(int argc, char **argv) {
    nl_bf_config cfg = nl_bf_defaults();
    int64_t epochs = cfg.epochs, n_max = cfg.n_max, hidden = cfg.hidden, dim = cfg.dim, batch = cfg.batch, test_limit = 0, seed = 1,
            threads = 0;
    double lr = cfg.lr, imbalance = cfg.imbalance;
    const char *loss_s = "ce";
    int identity = 0, quiet = 0;
    nl_cli_opt opts[] = {
        {"--loss", NL_OPT_STR, &loss_s, 0, 0, 0, 0, "L"},
        /* no range here: the library's check gives the clear message for a ratio < 1 */
        {"--imbalance", NL_OPT_DOUBLE, &imbalance, -1e300, 1e300, 0, 0, "R"},
        {"--n-max", NL_OPT_INT, &n_max, 1, 60000, 0, 0, "N"},
        {"--epochs", NL_OPT_INT, &epochs, 1, 10000, 0, 0, "N"},
        {"--hidden", NL_OPT_INT, &hidden, 1, 1 << 16, 0, 0, "H"},
        {"--dim", NL_OPT_INT, &dim, 4, 1 << 14, 0, 0, "C"},
        {"--batch", NL_OPT_INT, &batch, 2, 60000, 0, 0, "B"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--test-limit", NL_OPT_INT, &test_limit, 10, 10000, 0, 0, "N"},
        {"--identity", NL_OPT_FLAG, &identity, 0, 0, 0, 0, NULL},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("batchformer train", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_bf(stdout);
        return NL_CLI_OK;
    }
    nl_bf_loss loss;
    if (!strcmp(loss_s, "ce")) loss = NL_BF_CE;
    else if (!strcmp(loss_s, "balanced-softmax") || !strcmp(loss_s, "bs")) loss = NL_BF_BALANCED;
    else return nl_cli_usage_error("batchformer train", "unknown --loss '%s' (ce or balanced-softmax)", loss_s);
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    cfg.epochs = epochs;
    cfg.n_max = n_max;
    cfg.hidden = hidden;
    cfg.dim = dim;
    cfg.batch = batch;
    cfg.lr = lr;
    cfg.imbalance = imbalance;
    cfg.test_limit = test_limit;
    cfg.seed = (uint64_t)seed;
    cfg.verbose = !quiet;
    nl_dataset tr, te;
    int64_t counts[10];
    nl_bf_eval ev[3];
    double secs[3] = {0};
    int n_models = identity ? 3 : 2;
    nl_status s = nl_bf_load(&cfg, &tr, &te, counts);
    for (int k = 0; k < n_models && !s; k++) s = nl_bf_run(&cfg, (nl_bf_kind)k, loss, &tr, &te, counts, &ev[k], &secs[k]);
    int64_t n_train = tr.n, n_test = te.n;
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    if (s) {
        fprintf(stderr, "nnlab batchformer train: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    printf("batchformer on long-tailed fashion-mnist (imbalance %g): %lld training images (class counts", imbalance, (long long)n_train);
    for (int k = 0; k < 10; k++) printf(" %lld", (long long)counts[k]);
    printf("), %lld test images, loss %s, %lld epoch(s), seed %lld\n", (long long)n_test, nl_bf_loss_name(loss), (long long)epochs,
           (long long)seed);
    printf("%-12s %8s %8s %8s %8s %8s\n", "model", "overall", "many", "medium", "few", "train s");
    for (int k = 0; k < n_models; k++)
        printf("%-12s %7.2f%% %7.2f%% %7.2f%% %7.2f%% %8.1f\n", nl_bf_kind_name((nl_bf_kind)k), 100 * ev[k].overall, 100 * ev[k].many,
               100 * ev[k].medium, 100 * ev[k].few, secs[k]);
    return NL_CLI_OK;
}

int nl_bf_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"train", bf_train}};
    return nl_cli_subcommands("batchformer", argc, argv, help_bf, subs, 1);
}
