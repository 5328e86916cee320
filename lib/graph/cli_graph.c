/* `nnlab graph train`: node classification on the karate club or the WordNet noun graph (lib/graph/graph.h). */
#include "graph/graph.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <string.h>

static void help_graph(FILE *f) {
    fprintf(f,
            "usage: nnlab graph train [options]\n"
            "  Full-graph node classification; prints the test accuracy at the best validation epoch.\n"
            "  --data karate|wordnet   data set (default karate; wordnet needs the Debian package wordnet-base)\n"
            "  --model gcn|sage|gat|mlp  model (default gcn; mlp = features only)\n"
            "  --layers N              graph layers, 1..16 (default 2)\n"
            "  --split 64|5            training percentage: 64/16/20 split or 5%% labelled (same val/test) (default 64)\n"
            "  --seed S                split, initialisation and dropout seed (default 1)\n"
            "  --hidden N              hidden width (default 64)      --heads N   GAT heads (default 8)\n"
            "  --epochs N              at most N epochs (default 200) --patience N (default 50)\n"
            "  --lr X                  Adam learning rate (0.01)      --weight-decay X (5e-4)  --dropout X (0.5)\n"
            "  --vocab N               WordNet gloss vocabulary (default 2000)  --path FILE  data.noun to read\n"
            "  --threads T             threads (default NL_NUM_THREADS)  --verbose  progress every 10 epochs\n"
            "Exit status: 0 ok, 1 failure (missing data, error), 2 bad command line.\n");
}

static int graph_train(int argc, char **argv) {
    const char *cmd = "graph train", *data = "karate", *model = "gcn", *path = NULL;
    int64_t layers = 2, split = 64, seed = 1, hidden = 64, heads = 8, epochs = 200, patience = 50, vocab = 2000, threads = 0;
    double lr = 0.01, wd = 5e-4, dropout = 0.5;
    int verbose = 0;
    nl_cli_opt opts[] = {
        {"--data", NL_OPT_STR, &data, 0, 0, 0, 0, "NAME"},
        {"--model", NL_OPT_STR, &model, 0, 0, 0, 0, "NAME"},
        {"--layers", NL_OPT_INT, &layers, 1, 16, 0, 0, "N"},
        {"--split", NL_OPT_INT, &split, 1, 64, 0, 0, "PCT"},
        {"--seed", NL_OPT_INT, &seed, 0, 9.2e18, 0, 0, "S"},
        {"--hidden", NL_OPT_INT, &hidden, 1, 1 << 16, 0, 0, "N"},
        {"--heads", NL_OPT_INT, &heads, 1, 64, 0, 0, "N"},
        {"--epochs", NL_OPT_INT, &epochs, 1, 1e6, 0, 0, "N"},
        {"--patience", NL_OPT_INT, &patience, 1, 1e6, 0, 0, "N"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--weight-decay", NL_OPT_DOUBLE, &wd, 0, 1, 0, 0, "X"},
        {"--dropout", NL_OPT_DOUBLE, &dropout, 0, 0.99, 0, 0, "X"},
        {"--vocab", NL_OPT_INT, &vocab, 1, 1000000, 0, 0, "N"},
        {"--path", NL_OPT_STR, &path, 0, 0, 0, 0, "FILE"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--verbose", NL_OPT_FLAG, &verbose, 0, 0, 0, 0, NULL},
    };
    enum { N = sizeof opts / sizeof opts[0] };
    const char *pos[1];
    int n_pos, help;
    int rc = nl_cli_parse(cmd, argc, argv, opts, N, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_graph(stdout);
        return NL_CLI_OK;
    }
    nl_graph_kind kind;
    if (nl_graph_parse_kind(model, &kind)) return nl_cli_usage_error(cmd, "unknown --model '%s' (gcn, sage, gat or mlp)", model);
    if (strcmp(data, "karate") && strcmp(data, "wordnet")) return nl_cli_usage_error(cmd, "unknown --data '%s' (karate or wordnet)", data);
    if (kind == NL_GRAPH_GAT && hidden % heads)
        return nl_cli_usage_error(cmd, "--hidden %lld is not a multiple of --heads %lld", (long long)hidden, (long long)heads);
    nl_cli_threads(threads, nl_cli_seen(opts, N, "--threads"));
    nl_graph g;
    double t0 = nl_time();
    nl_status s = !strcmp(data, "karate") ? nl_graph_karate(&g) : nl_graph_wordnet(&g, path, (int)vocab);
    if (s) {
        fprintf(stderr, "nnlab %s: %s\n", cmd, nl_last_error());
        return NL_CLI_FAIL;
    }
    const double t_load = nl_time() - t0;
    if ((s = nl_graph_split(&g, (uint64_t)seed, (int)split))) {
        fprintf(stderr, "nnlab %s: %s\n", cmd, nl_last_error());
        nl_graph_free(&g);
        return NL_CLI_FAIL;
    }
    nl_graph_config cfg = nl_graph_defaults(kind);
    cfg.layers = (int)layers, cfg.hidden = (int)hidden, cfg.heads = (int)heads, cfg.max_epochs = (int)epochs;
    cfg.patience = (int)patience, cfg.lr = lr, cfg.weight_decay = wd, cfg.dropout = dropout, cfg.seed = (uint64_t)seed;
    cfg.verbose = verbose;
    nl_graph_result r;
    if ((s = nl_graph_train(&g, &cfg, &r))) {
        fprintf(stderr, "nnlab %s: %s\n", cmd, nl_last_error());
        nl_graph_free(&g);
        return NL_CLI_FAIL;
    }
    printf("data %s (%lld nodes, %lld edges, %d classes, split %lld%%) model %s layers %lld seed %lld: test accuracy %.4f "
           "(val %.4f, train %.4f, best epoch %d of %d; %.4f s/epoch, load %.2f s)\n",
           data, (long long)g.n, (long long)g.n_edges, g.num_classes, (long long)split, model, (long long)layers, (long long)seed,
           r.test_acc, r.val_acc, r.train_acc, r.best_epoch, r.epochs, r.epoch_s, t_load);
    nl_graph_free(&g);
    return NL_CLI_OK;
}

int nl_graph_cli(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        help_graph(argc < 1 ? stderr : stdout);
        return argc < 1 ? NL_CLI_USAGE : NL_CLI_OK;
    }
    if (!strcmp(argv[0], "train")) return graph_train(argc - 1, argv + 1);
    return nl_cli_usage_error("graph", "unknown subcommand '%s' (train)", argv[0]);
}
