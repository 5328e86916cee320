/* nnlab tas — search a pruned ResNet shape with TAS on a Fashion-MNIST subset, then train it with KD from the
 * unpruned network and print its accuracy next to uniform-width pruning at the same FLOPs (methods/tas/README.md). */
#include "tas/tas.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help_tas(FILE *f) {
    fprintf(f,
            "usage: nnlab tas search [options]\n"
            "\n"
            "TAS (Dong & Yang 2019): searches the width of every conv and the depth of every stage of a ResNet-20-style CNN\n"
            "(Gumbel-softmax over width/depth choices, channel-wise interpolation, FLOP loss toward a FLOP target), then\n"
            "trains the searched shape from scratch with knowledge distillation from the unpruned network, and the uniform-\n"
            "width shape of the same FLOPs likewise. The ledger entry is `nnlab repro tas`.\n"
            "\n"
            "  --blocks N         blocks per stage of the unpruned net (default 3; 1..%d)\n"
            "  --width W          stage-1 width (stages: W, 2W, 4W; default 6)\n"
            "  --pool P           input average pooling (1: 28x28, 2: 14x14; default 2)\n"
            "  --ratio R          FLOP target as a fraction of the unpruned FLOPs, in (0, 1] (default 0.5)\n"
            "  --flop-weight X    weight of the FLOP loss (default 2)\n"
            "  --tolerance X      FLOP tolerance, a fraction of the unpruned FLOPs, in [0, 1) (default 0.05)\n"
            "  --train N          training images (default 2000; half for weights, half for the architecture)\n"
            "  --test N           test images (default 2000)\n"
            "  --teacher-epochs N (default 4)   --search-epochs N (default 4)   --kd-epochs N (default 4)\n"
            "  --batch B          minibatch (default 64)\n"
            "  --arch-lr X        Adam learning rate of the architecture (default 1e-3)\n"
            "  --record-every N   a candidate shape every N search steps and at each epoch's end (default 5; 0: per epoch)\n"
            "  --alpha X          KD weight of the soft term, in [0, 1] (default 0.9)\n"
            "  --temperature T    KD temperature, > 0 (default 4)\n"
            "  --seed N           default 1\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n"
            "  --quiet            no progress lines\n",
            NL_RESNET_MAX_BLOCKS);
}

static int tas_search(int argc, char **argv) {
    int64_t blocks = 3, width = 6, pool = 2, ntr = 2000, nte = 2000, te = 4, se = 4, ke = 4, batch = 64, seed = 1, threads = 0;
    int64_t rec = 5;
    double ratio = 0.5, fw = 2, tol = 0.05, alr = 1e-3, alpha = 0.9, T = 4;
    int quiet = 0;
    nl_cli_opt opts[] = {
        {"--blocks", NL_OPT_INT, &blocks, 1, NL_RESNET_MAX_BLOCKS, 0, 0, "N"},
        {"--width", NL_OPT_INT, &width, 1, 512, 0, 0, "W"},
        {"--pool", NL_OPT_INT, &pool, 1, 7, 0, 0, "P"},
        {"--ratio", NL_OPT_DOUBLE, &ratio, 0, 1, 1, 0, "R"},
        {"--flop-weight", NL_OPT_DOUBLE, &fw, 0, 1e6, 0, 0, "X"},
        {"--tolerance", NL_OPT_DOUBLE, &tol, 0, 0.999999, 0, 0, "X"},
        {"--train", NL_OPT_INT, &ntr, 4, 60000, 0, 0, "N"},
        {"--test", NL_OPT_INT, &nte, 1, 10000, 0, 0, "N"},
        {"--teacher-epochs", NL_OPT_INT, &te, 0, 1e6, 0, 0, "N"},
        {"--search-epochs", NL_OPT_INT, &se, 0, 1e6, 0, 0, "N"},
        {"--kd-epochs", NL_OPT_INT, &ke, 0, 1e6, 0, 0, "N"},
        {"--batch", NL_OPT_INT, &batch, 2, 1e6, 0, 0, "B"},
        {"--arch-lr", NL_OPT_DOUBLE, &alr, 0, 10, 1, 0, "X"},
        {"--record-every", NL_OPT_INT, &rec, 0, 1e9, 0, 0, "N"},
        {"--alpha", NL_OPT_DOUBLE, &alpha, 0, 1, 0, 0, "X"},
        {"--temperature", NL_OPT_DOUBLE, &T, 0, 1e3, 1, 0, "T"},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("tas search", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_tas(stdout);
        return NL_CLI_OK;
    }
    if (2 * batch > ntr) return nl_cli_usage_error("tas search", "--train %lld is less than two batches of %lld", (long long)ntr, (long long)batch);
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    nl_dataset full, tr, rest, wa, wb, tfull, test;
    nl_status s = nl_dataset_load(&full, "fashion-mnist", "train", NULL);
    if (s) {
        fprintf(stderr, "nnlab tas search: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    s = nl_dataset_split(&full, ntr, (uint64_t)seed, &rest, &tr);
    nl_dataset_free(&full);
    if (s) return fprintf(stderr, "nnlab tas search: error: %s\n", nl_last_error()), NL_CLI_FAIL;
    nl_dataset_free(&rest);
    if ((s = nl_dataset_load(&tfull, "fashion-mnist", "test", NULL))) {
        nl_dataset_free(&tr);
        return fprintf(stderr, "nnlab tas search: error: %s\n", nl_last_error()), NL_CLI_FAIL;
    }
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)nte);
    for (int64_t i = 0; idx && i < nte; i++) idx[i] = i;
    s = idx ? nl_dataset_subset(&tfull, idx, nte, &test) : nl_set_error(NL_ENOMEM, "out of memory");
    free(idx);
    nl_dataset_free(&tfull);
    if (!s) s = nl_dataset_split(&tr, tr.n / 2, (uint64_t)seed + 1, &wb, &wa);
    if (s) {
        nl_dataset_free(&tr);
        return fprintf(stderr, "nnlab tas search: error: %s\n", nl_last_error()), NL_CLI_FAIL;
    }
    nl_tas_config tc = nl_tas_defaults();
    tc.net = nl_resnet_default_config((int)blocks, (int)width, (int)pool);
    tc.flop_ratio = ratio, tc.flop_weight = fw, tc.flop_tol = tol, tc.epochs = se, tc.batch = batch, tc.arch_lr = alr;
    tc.seed = (uint64_t)seed, tc.verbose = !quiet, tc.record_every = rec;
    nl_kd_config kd = nl_kd_defaults();
    kd.batch = batch, kd.seed = (uint64_t)seed, kd.verbose = !quiet, kd.alpha = alpha, kd.T = T;
    nl_resnet teacher, st;
    memset(&teacher, 0, sizeof teacher);
    float *logits = NULL;
    nl_tas_result r;
    double acc_t = 0, acc[2] = {0, 0};
    nl_resnet_config shapes[2];
    if (!(s = nl_tas_search(&tc, &wa, &wb, &r)) && !(s = nl_resnet_init(&teacher, &tc.net, (uint64_t)seed))) {
        nl_kd_config kt = kd;
        kt.epochs = te;
        if (!(s = nl_resnet_fit(&teacher, &tr, &kt, NULL)) && !(s = nl_resnet_accuracy(&teacher, &test, &acc_t))) {
            logits = malloc(sizeof(float) * (size_t)(tr.n * tr.n_classes));
            s = logits ? nl_kd_logits(nl_resnet_forward, &teacher, &tr, 256, logits) : nl_set_error(NL_ENOMEM, "out of memory");
        }
    }
    shapes[0] = r.shape;
    shapes[1] = nl_tas_uniform_shape(&tc.net, r.flops);
    nl_kd_teacher t = {logits, NULL, NULL};
    kd.epochs = ke;
    for (int k = 0; k < 2 && !s; k++) {
        if ((s = nl_resnet_init(&st, &shapes[k], (uint64_t)seed + 100u * (uint64_t)k))) break;
        if (!(s = nl_resnet_distil(&st, &tr, &t, &kd, NULL))) s = nl_resnet_accuracy(&st, &test, &acc[k]);
        nl_resnet_free(&st);
    }
    free(logits);
    nl_resnet_free(&teacher);
    nl_dataset_free(&tr);
    nl_dataset_free(&wa);
    nl_dataset_free(&wb);
    nl_dataset_free(&test);
    if (s) {
        fprintf(stderr, "nnlab tas search: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    char d0[512], d1[512], df[512];
    nl_resnet_describe(&tc.net, df, sizeof df);
    nl_resnet_describe(&shapes[0], d0, sizeof d0);
    nl_resnet_describe(&shapes[1], d1, sizeof d1);
    printf("unpruned: %s, teacher accuracy %.4f\n", df, acc_t);
    printf("searched: %s, FLOPs %.3f of the unpruned (target %.3f), KD accuracy %.4f (search %.1f s, %lld steps, %lld of %lld candidates in the band)\n", d0,
           r.flops / r.flops_full, ratio, acc[0], r.seconds, (long long)r.steps, (long long)r.candidates_in_band, (long long)r.candidates);
    printf("uniform:  %s, FLOPs %.3f of the unpruned, KD accuracy %.4f\n", d1, nl_resnet_flops(&shapes[1]) / r.flops_full, acc[1]);
    return NL_CLI_OK;
}

int nl_tas_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"search", tas_search}};
    return nl_cli_subcommands("tas", argc, argv, help_tas, subs, 1);
}
