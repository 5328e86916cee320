/* `nnlab forwardgnn train`: single-forward ForwardGNN or the backprop baseline on karate or WordNet. */
#include "forwardgnn/forwardgnn.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help_fg(FILE *f) {
    fprintf(f,
            "usage: nnlab forwardgnn train [options]\n"
            "  Node classification with GNN layers trained greedily (single-forward, virtual class nodes) or end to end.\n"
            "  --data karate|wordnet   data set (default wordnet; needs the Debian package wordnet-base)\n"
            "  --classes LIST          WordNet classes to keep, e.g. 5,14,10,11,6 (default: all 26)\n"
            "  --model gcn|sage        layer type (default gcn)\n"
            "  --algo sf|ff|bp|sf-top2loss|sf-top2input\n"
            "                          single-forward (default), forward-forward with label appending, end-to-end backprop,\n"
            "                          or the top-down single-forward variants (all layers trained together)\n"
            "  --layers N              layers, 1..16 (default 4)\n"
            "  --split 64|5            training percentage (default 5)   --seed S (default 1)\n"
            "  --hidden N (128)  --epochs N per layer (1000)  --patience N (100)  --lr X (1e-3)\n"
            "  --no-label-edges        SF control: virtual nodes without edges\n"
            "  --threads T  --verbose\n"
            "Exit status: 0 ok, 1 failure (missing data, error), 2 bad command line.\n");
}

static int fg_train(int argc, char **argv) {
    const char *cmd = "forwardgnn train", *data = "wordnet", *model = "gcn", *algo = "sf", *classes = NULL;
    int64_t layers = 4, split = 5, seed = 1, hidden = 128, epochs = 1000, patience = 100, threads = 0;
    double lr = 1e-3;
    int verbose = 0, no_edges = 0;
    nl_cli_opt opts[] = {
        {"--data", NL_OPT_STR, &data, 0, 0, 0, 0, "NAME"},
        {"--classes", NL_OPT_STR, &classes, 0, 0, 0, 0, "LIST"},
        {"--model", NL_OPT_STR, &model, 0, 0, 0, 0, "NAME"},
        {"--algo", NL_OPT_STR, &algo, 0, 0, 0, 0, "NAME"},
        {"--layers", NL_OPT_INT, &layers, 1, NL_FGNN_MAX_LAYERS, 0, 0, "N"},
        {"--split", NL_OPT_INT, &split, 1, 64, 0, 0, "PCT"},
        {"--seed", NL_OPT_INT, &seed, 0, 9.2e18, 0, 0, "S"},
        {"--hidden", NL_OPT_INT, &hidden, 1, 1 << 16, 0, 0, "N"},
        {"--epochs", NL_OPT_INT, &epochs, 1, 1e6, 0, 0, "N"},
        {"--patience", NL_OPT_INT, &patience, 1, 1e6, 0, 0, "N"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--no-label-edges", NL_OPT_FLAG, &no_edges, 0, 0, 0, 0, NULL},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--verbose", NL_OPT_FLAG, &verbose, 0, 0, 0, 0, NULL},
    };
    enum { N = sizeof opts / sizeof opts[0] };
    const char *pos[1];
    int n_pos, help;
    int rc = nl_cli_parse(cmd, argc, argv, opts, N, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_fg(stdout);
        return NL_CLI_OK;
    }
    nl_graph_kind kind;
    if (nl_graph_parse_kind(model, &kind) || (kind != NL_GRAPH_GCN && kind != NL_GRAPH_SAGE))
        return nl_cli_usage_error(cmd, "unknown --model '%s' (gcn or sage)", model);
    if (strcmp(algo, "sf") && strcmp(algo, "ff") && strcmp(algo, "bp") && strcmp(algo, "sf-top2loss") && strcmp(algo, "sf-top2input"))
        return nl_cli_usage_error(cmd, "unknown --algo '%s' (sf, ff, bp, sf-top2loss or sf-top2input)", algo);
    if (strcmp(data, "karate") && strcmp(data, "wordnet")) return nl_cli_usage_error(cmd, "unknown --data '%s' (karate or wordnet)", data);
    int cls[26], k = 0;
    if (classes) {
        const char *p = classes;
        while (*p) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v > 25 || k >= 26) return nl_cli_usage_error(cmd, "bad --classes '%s' (numbers 0..25, comma-separated)", classes);
            cls[k++] = (int)v;
            p = *end == ',' ? end + 1 : end;
            if (*end && *end != ',') return nl_cli_usage_error(cmd, "bad --classes '%s' (numbers 0..25, comma-separated)", classes);
        }
    }
    nl_cli_threads(threads, nl_cli_seen(opts, N, "--threads"));
    nl_graph g;
    nl_status s = !strcmp(data, "karate") ? nl_graph_karate(&g) : nl_fgnn_wordnet(&g, cls, k);
    if (!s && (s = nl_graph_split(&g, (uint64_t)seed, (int)split))) nl_graph_free(&g);
    if (s) {
        fprintf(stderr, "nnlab %s: %s\n", cmd, nl_last_error());
        return NL_CLI_FAIL;
    }
    if (!strcmp(algo, "bp")) {
        nl_graph_config bc = nl_graph_defaults(kind);
        bc.layers = (int)layers, bc.hidden = (int)hidden, bc.max_epochs = (int)epochs, bc.patience = (int)patience, bc.seed = (uint64_t)seed;
        bc.verbose = verbose;
        if (nl_cli_seen(opts, N, "--lr")) bc.lr = lr;
        nl_graph_result r;
        if ((s = nl_graph_train(&g, &bc, &r))) {
            fprintf(stderr, "nnlab %s: %s\n", cmd, nl_last_error());
            nl_graph_free(&g);
            return NL_CLI_FAIL;
        }
        printf("%s backprop %s %lld layers, %lld nodes, seed %lld: test accuracy %.4f (val %.4f, best epoch %d of %d, peak %.2f MB)\n", g.name,
               model, (long long)layers, (long long)g.n, (long long)seed, r.test_acc, r.val_acc, r.best_epoch, r.epochs, r.arena_peak / 1e6);
        nl_graph_free(&g);
        return NL_CLI_OK;
    }
    nl_forwardgnn_config fc = nl_forwardgnn_defaults(kind);
    fc.layers = (int)layers, fc.hidden = (int)hidden, fc.max_epochs = (int)epochs, fc.patience = (int)patience, fc.lr = lr;
    fc.seed = (uint64_t)seed, fc.label_edges = !no_edges, fc.verbose = verbose;
    nl_forwardgnn_result r;
    const int td = !strncmp(algo, "sf-top2", 7);
    if (td) {
        const int input = !strcmp(algo, "sf-top2input");
        if ((s = nl_forwardgnn_td_train(&g, &fc, input, &r))) {
            fprintf(stderr, "nnlab %s: %s\n", cmd, nl_last_error());
            nl_graph_free(&g);
            return NL_CLI_FAIL;
        }
        printf("%s %s %s %lld layers, %lld nodes, seed %lld: test accuracy %.4f (val %.4f; best step %d of %d, peak %.2f MB)\n", g.name, algo, model,
               (long long)layers, (long long)g.n, (long long)seed, r.test_acc[layers - 1], r.val_acc[layers - 1], r.best_epoch[0], r.epochs[0],
               r.peak_bytes[0] / 1e6);
        printf("training %.2f s\n", r.seconds);
        nl_graph_free(&g);
        return NL_CLI_OK;
    }
    const int ff = !strcmp(algo, "ff");
    if ((s = ff ? nl_forwardgnn_ff_train(&g, &fc, &r) : nl_forwardgnn_sf_train(&g, &fc, &r))) {
        fprintf(stderr, "nnlab %s: %s\n", cmd, nl_last_error());
        nl_graph_free(&g);
        return NL_CLI_FAIL;
    }
    for (int l = 0; l < r.layers; l++)
        printf("%s %s %s layers 1..%d, %lld nodes, seed %lld: test accuracy %.4f (val %.4f; layer %d best epoch %d of %d, peak %.2f MB)\n",
               g.name, ff ? "forward-forward" : "single-forward", model, l + 1, (long long)g.n, (long long)seed, r.test_acc[l], r.val_acc[l], l + 1, r.best_epoch[l], r.epochs[l],
               r.peak_bytes[l] / 1e6);
    printf("training %.2f s\n", r.seconds);
    nl_graph_free(&g);
    return NL_CLI_OK;
}

int nl_forwardgnn_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"train", fg_train}};
    return nl_cli_subcommands("forwardgnn", argc, argv, help_fg, subs, 1);
}
