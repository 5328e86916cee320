/* nnlab sara — the SaRA protocol from the command line: pretrain (or load) a tiny UNet on Fashion-MNIST classes 0-4,
 * fine-tune it to classes 5-9 with SaRA, LoRA and full fine-tuning, print FD and optimiser memory per method and seed
 * (methods/sara/README.md). */
#include "sara/protocol.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <string.h>

static void help_sara(FILE *f) {
    fprintf(f,
            "usage: nnlab sara train [options]\n"
            "\n"
            "SaRA (Hu et al., ICLR 2025) on a tiny DDPM: a UNet (16x16) pretrained on Fashion-MNIST classes 0-4 is fine-tuned to\n"
            "classes 5-9 with SaRA (the smallest fraction of |theta| trained by a sparse AdamW with a nuclear-norm penalty and\n"
            "progressive re-selection), LoRA (the rank whose trainable count is closest to SaRA's) and full fine-tuning.\n"
            "Prints the FD (classifier-feature Frechet distance) of samples on the new domain, the old-domain retention FD, the\n"
            "effect of zeroing the smallest vs a random fraction, and each optimiser's memory. The ledger entry is\n"
            "`nnlab repro sara`.\n"
            "\n"
            "  --fraction P        the zeroed fraction and the least trainable fraction, in (0, 1) (default 0.1): LoRA's rank is\n"
            "                      the smallest whose count reaches P N, and SaRA trains that many smallest-|theta| entries\n"
            "  --lora-rank R       LoRA rank instead (SaRA matches its count; above a matrix's min(out, in) is an error)\n"
            "  --lambda X          nuclear-norm weight (default 5e-4; 0 = off)\n"
            "  --no-progressive    no re-selection at half the fine-tuning steps\n"
            "  --checkpoint FILE   start from this pretrained UNet (safetensors from `nnlab diffusion train`; must have the\n"
            "                      architecture below) instead of pretraining\n"
            "  --channels C        UNet base channels (default 8); --levels L (default 2); --attn 0|1 (default 0)\n"
            "  --T N               diffusion steps (default 200)\n"
            "  --images N          training images per domain (default 2000)\n"
            "  --pretrain-steps N  default 600;  --batch B its batch (default 32)\n"
            "  --steps N           fine-tuning steps (default 100);  --ft-batch B its batch (default 16)\n"
            "  --lr X              fine-tuning learning rate (default 1e-3)\n"
            "  --eval N            images per FD set (default 200);  --ddim N sampling steps (default 8)\n"
            "  --seeds N           fine-tuning seeds 1..N (default 1)\n"
            "  --cache DIR         cache the pretrained UNet there (keyed by its configuration and seed) and write the\n"
            "                      sample grids of seed 1 there (sara-samples-*.png)\n"
            "  --threads T         threads (default NL_NUM_THREADS or all cores)\n"
            "  --quiet             no progress lines\n");
}

static int sara_train(int argc, char **argv) {
    double fraction = 0.1, lambda = 5e-4, lr = 1e-3;
    int64_t lora_rank = 0, channels = 8, levels = 2, attn = 0, T = 200, images = 2000, pre_steps = 600, steps = 100, batch = 32;
    int64_t ft_batch = 16, n_eval = 200, ddim = 8, seeds = 1, threads = 0;
    int no_prog = 0, quiet = 0;
    const char *checkpoint = NULL, *cache = NULL;
    nl_cli_opt opts[] = {
        {"--fraction", NL_OPT_DOUBLE, &fraction, -1e300, 1e300, 0, 0, "P"},
        {"--lora-rank", NL_OPT_INT, &lora_rank, 1, 1 << 20, 0, 0, "R"},
        {"--lambda", NL_OPT_DOUBLE, &lambda, 0, 1e6, 0, 0, "X"},
        {"--no-progressive", NL_OPT_FLAG, &no_prog, 0, 0, 0, 0, NULL},
        {"--checkpoint", NL_OPT_STR, &checkpoint, 0, 0, 0, 0, "FILE"},
        {"--channels", NL_OPT_INT, &channels, 2, 1024, 0, 0, "C"},
        {"--levels", NL_OPT_INT, &levels, 1, 4, 0, 0, "L"},
        {"--attn", NL_OPT_INT, &attn, 0, 1, 0, 0, "0|1"},
        {"--T", NL_OPT_INT, &T, 2, 100000, 0, 0, "N"},
        {"--images", NL_OPT_INT, &images, 8, 30000, 0, 0, "N"},
        {"--pretrain-steps", NL_OPT_INT, &pre_steps, 1, 10000000, 0, 0, "N"},
        {"--steps", NL_OPT_INT, &steps, 2, 10000000, 0, 0, "N"},
        {"--batch", NL_OPT_INT, &batch, 1, 4096, 0, 0, "B"},
        {"--ft-batch", NL_OPT_INT, &ft_batch, 1, 4096, 0, 0, "B"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--eval", NL_OPT_INT, &n_eval, 4, 5000, 0, 0, "N"},
        {"--ddim", NL_OPT_INT, &ddim, 1, 100000, 0, 0, "N"},
        {"--seeds", NL_OPT_INT, &seeds, 1, SARA_MAX_SEEDS, 0, 0, "N"},
        {"--cache", NL_OPT_STR, &cache, 0, 0, 0, 0, "DIR"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("sara train", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_sara(stdout);
        return NL_CLI_OK;
    }
    if (!(fraction > 0 && fraction < 1)) return nl_cli_usage_error("sara train", "threshold fraction %g outside (0, 1)", fraction);
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    nl_sara_proto_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.unet = nl_unet_defaults(16);
    cfg.unet.base_channels = (int)channels;
    cfg.unet.levels = (int)levels;
    for (int l = 0; l < NL_UNET_MAX_LEVELS; l++) cfg.unet.ch_mult[l] = l == 0 ? 1 : 2;
    cfg.unet.attn = (int)attn;
    cfg.T = (int)T;
    cfg.n_train = images;
    cfg.pre_steps = pre_steps;
    cfg.ft_steps = steps;
    cfg.batch = batch;
    cfg.ft_batch = ft_batch;
    cfg.pre_lr = 2e-3;
    cfg.ft_lr = lr;
    cfg.fraction = fraction;
    cfg.lambda_rank = lambda;
    cfg.progressive = !no_prog;
    cfg.n_eval = n_eval;
    cfg.ddim_steps = (int)ddim;
    cfg.probe_t = 0.5;
    cfg.fd_dim = 32;
    cfg.fd_train = 4000;
    cfg.fd_epochs = 1;
    cfg.seeds = (int)seeds;
    cfg.lora_rank = (int)lora_rank;
    cfg.checkpoint = checkpoint;
    cfg.pre_seed = 1;
    cfg.cache_dir = cache;
    cfg.verbose = !quiet;
    nl_sara_proto_result r;
    nl_status s = nl_sara_protocol_run(&cfg, &r);
    if (s) {
        fprintf(stderr, "nnlab sara train: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    printf("sara: UNet %lld params, SaRA |M| %lld (%.1f%%, %lld after re-selection), LoRA rank %d (%lld), full %lld\n",
           (long long)r.n_params, (long long)r.trainable[0], 100 * r.sara_fraction, (long long)r.sara_after_reselect, r.lora_rank,
           (long long)r.trainable[1], (long long)r.trainable[2]);
    printf("FD floor (two real old-domain sets) %.2f; FD network test accuracy %.2f%%\n", r.fd_real_real, 100 * r.fd_net_acc);
    printf("%-5s %10s %10s %10s %10s %10s %10s\n", "seed", "base-old", "small0", "rand0", "base-new", "base-probe", "");
    for (int i = 0; i < r.seeds; i++)
        printf("%-5d %10.2f %10.2f %10.2f %10.2f %10.2f\n", i + 1, r.fd_base_old[i], r.fd_small_old[i], r.fd_rand_old[i], r.fd_base_new[i],
               r.fd_base_probe[i]);
    static const char *const nm[SARA_M_N] = {"sara", "lora", "full"};
    printf("%-5s %-5s %10s %12s %10s %14s\n", "seed", "model", "new FD", "retention FD", "loss", "optim bytes");
    for (int i = 0; i < r.seeds; i++)
        for (int m = 0; m < SARA_M_N; m++)
            printf("%-5d %-5s %10.2f %12.2f %10.4f %14.0f\n", i + 1, nm[m], r.fd_new[m][i], r.fd_probe[m][i], r.ft_loss[m][i], r.state_bytes[m]);
    return NL_CLI_OK;
}

int nl_sara_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"train", sara_train}};
    return nl_cli_subcommands("sara", argc, argv, help_sara, subs, 1);
}
