/* nnlab noprop — train one NoProp variant (or the backprop baseline of the same network) on MNIST or Fashion-MNIST
 * and print its test accuracy, training time and peak training-step memory (methods/noprop/README.md). */
#include "noprop/noprop.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <string.h>

static void help_noprop(FILE *f) {
    fprintf(f,
            "usage: nnlab noprop train [--data mnist|fashion] [--variant dt|ct|fm|backprop] [options]\n"
            "\n"
            "NoProp (Li, Teh & Pascanu 2025): T blocks, each trained on its own to denoise a noisy label embedding\n"
            "(no gradient crosses blocks); CT: one network in continuous time; FM: flow matching; backprop: the same\n"
            "T blocks chained and trained end to end with cross-entropy. The ledger entry is `nnlab repro noprop`.\n"
            "\n"
            "  --data NAME        mnist (default) or fashion\n"
            "  --variant NAME     dt (default), ct, fm or backprop\n"
            "  --blocks T         blocks (dt, backprop) or inference steps (ct, fm); default 10\n"
            "  --arch NAME        cnn (default: conv 3x3 c1 - pool - conv c2 - pool image branch) or mlp\n"
            "  --channels C1,C2   CNN channels (default 16,32; the paper's 32,64)\n"
            "  --hidden H         fusion width (default 256)\n"
            "  --embed NAME       onehot (default), learned or prototype\n"
            "  --embed-dim D      dimension of a learned embedding (default 20)\n"
            "  --epochs N         default 1\n"
            "  --batch B          default 128\n"
            "  --lr X             AdamW learning rate (default 1e-3)\n"
            "  --wd X             AdamW weight decay (default 1e-3)\n"
            "  --eta X            denoising-loss weight (default 0.1)\n"
            "  --ct-snr-weight    CT: weight the denoising loss by eta/2 SNR'(t) (the paper) instead of its mean over t\n"
            "  --limit N          first N training images (default all 60000)\n"
            "  --test-limit N     first N test images (default all 10000)\n"
            "  --zero-image       control: the blocks never see the image\n"
            "  --shuffle-labels   control: a seeded permutation of the training labels\n"
            "  --seed N           default 1\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n"
            "  --quiet            no per-epoch progress\n");
}

static int noprop_train(int argc, char **argv) {
    nl_noprop_config cfg = nl_noprop_defaults();
    const char *data = "mnist", *variant = "dt", *arch = "cnn", *embed = "onehot", *channels = "16,32";
    int64_t T = cfg.T, hidden = cfg.hidden, edim = cfg.embed_dim, epochs = cfg.epochs, batch = cfg.batch, limit = 0,
            test_limit = 0, seed = 1, threads = 0;
    double lr = cfg.lr, wd = cfg.wd, eta = cfg.eta;
    int zero = 0, shuf = 0, quiet = 0, ctw = 0;
    nl_cli_opt opts[] = {
        {"--data", NL_OPT_STR, &data, 0, 0, 0, 0, "NAME"},
        {"--variant", NL_OPT_STR, &variant, 0, 0, 0, 0, "NAME"},
        {"--blocks", NL_OPT_INT, &T, 1, NL_NOPROP_MAX_T, 0, 0, "T"},
        {"--arch", NL_OPT_STR, &arch, 0, 0, 0, 0, "NAME"},
        {"--channels", NL_OPT_STR, &channels, 0, 0, 0, 0, "C1,C2"},
        {"--hidden", NL_OPT_INT, &hidden, 2, 1 << 16, 0, 0, "H"},
        {"--embed", NL_OPT_STR, &embed, 0, 0, 0, 0, "NAME"},
        {"--embed-dim", NL_OPT_INT, &edim, 1, 1 << 16, 0, 0, "D"},
        {"--epochs", NL_OPT_INT, &epochs, 1, 10000, 0, 0, "N"},
        {"--batch", NL_OPT_INT, &batch, 2, 60000, 0, 0, "B"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--wd", NL_OPT_DOUBLE, &wd, 0, 10, 0, 0, "X"},
        {"--eta", NL_OPT_DOUBLE, &eta, 0, 1e6, 1, 0, "X"},
        {"--limit", NL_OPT_INT, &limit, 2, 60000, 0, 0, "N"},
        {"--test-limit", NL_OPT_INT, &test_limit, 1, 10000, 0, 0, "N"},
        {"--zero-image", NL_OPT_FLAG, &zero, 0, 0, 0, 0, NULL},
        {"--shuffle-labels", NL_OPT_FLAG, &shuf, 0, 0, 0, 0, NULL},
        {"--ct-snr-weight", NL_OPT_FLAG, &ctw, 0, 0, 0, 0, NULL},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"}, /* 2^53 ((double)INT64_MAX overflowed) */
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("noprop train", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_noprop(stdout);
        return NL_CLI_OK;
    }
    const char *ds = !strcmp(data, "mnist") ? "mnist" : !strcmp(data, "fashion") || !strcmp(data, "fashion-mnist") ? "fashion-mnist" : NULL;
    if (!ds) return nl_cli_usage_error("noprop train", "--data: '%s' (expected mnist or fashion)", data);
    if (nl_noprop_variant_parse(variant, &cfg.variant)) return nl_cli_usage_error("noprop train", "--variant: %s", nl_last_error());
    if (nl_noprop_embed_parse(embed, &cfg.embed)) return nl_cli_usage_error("noprop train", "--embed: %s", nl_last_error());
    if (strcmp(arch, "cnn") && strcmp(arch, "mlp")) return nl_cli_usage_error("noprop train", "--arch: '%s' (expected cnn or mlp)", arch);
    int64_t ch[2];
    int n_ch = 0;
    char err[256] = "";
    if (nl_cli_parse_list(channels, 1, 4096, 2, ch, &n_ch, err, sizeof err) || n_ch != 2)
        return nl_cli_usage_error("noprop train", "--channels: %s", n_ch != 2 && !err[0] ? "give two numbers C1,C2" : err);
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    cfg.T = (int)T;
    cfg.cnn = !strcmp(arch, "cnn");
    cfg.channels[0] = (int)ch[0];
    cfg.channels[1] = (int)ch[1];
    cfg.hidden = hidden;
    cfg.embed_dim = edim;
    cfg.epochs = epochs;
    cfg.batch = batch;
    cfg.lr = lr;
    cfg.wd = wd;
    cfg.eta = eta;
    cfg.limit = limit;
    cfg.test_limit = test_limit;
    cfg.zero_image = zero;
    cfg.shuffle_labels = shuf;
    cfg.ct_snr_weight = ctw;
    cfg.seed = (uint64_t)seed;
    cfg.verbose = !quiet;
    nl_noprop_result r;
    nl_status s = nl_noprop_run(&cfg, ds, &r);
    if (s) {
        fprintf(stderr, "nnlab noprop train: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    printf("noprop %s on %s: test accuracy %.2f%% (%lld training images, %lld steps, %lld parameters), %.1f s training, "
           "peak training-step memory %.2f MB\n",
           nl_noprop_variant_name(cfg.variant), ds, 100 * r.test_accuracy, (long long)r.n_train, (long long)r.steps,
           (long long)r.params, r.train_seconds, r.peak_bytes / 1e6);
    return NL_CLI_OK;
}

int nl_noprop_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"train", noprop_train}};
    return nl_cli_subcommands("noprop", argc, argv, help_noprop, subs, 1);
}
