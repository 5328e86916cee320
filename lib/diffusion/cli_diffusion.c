/* `nnlab diffusion train|sample` (lib/diffusion/diffusion.h). */
#include "diffusion/diffusion.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help_diffusion(FILE *f) {
    fprintf(f,
            "usage: nnlab diffusion train --save CKPT [options]\n"
            "       nnlab diffusion sample --load CKPT --out GRID.png [options]\n"
            "  train: DDPM (epsilon prediction) of a small UNet on Fashion-MNIST / MNIST images; saves the EMA weights\n"
            "  --data fashion-mnist|mnist  (default fashion-mnist)   --classes LIST  e.g. 0,1,2,3,4 (default all)\n"
            "  --size 16|28|32         image size (default 16; 28 = native, others bilinear)  --n-train N (default 10000)\n"
            "  --ch N                  base channels (default 16 at size 16, else 32)  --groups N  GroupNorm groups\n"
            "  --levels N              resolutions (default 3)    --no-attn   no attention block\n"
            "  --T N                   diffusion steps (1000)     --schedule linear|cosine (default cosine)\n"
            "  --steps N               optimiser steps (2000)     --batch N (64)   --lr X (2e-3, AdamW, cosine decay)\n"
            "  --ema X                 EMA decay (0.995; 0 = save the raw weights)  --seed S (1)\n"
            "  --png FILE              also write a grid of 64 DDIM samples   --verbose N  loss every N steps\n"
            "  sample: --n N (64)  --sampler ddim|ddpm (ddim)  --ddim-steps N (50)  --eta X (0)  --cols N (8)  --seed S\n"
            "  --threads T             threads (default NL_NUM_THREADS)\n"
            "Exit status: 0 ok, 1 failure (missing data, a checkpoint of another kind, error), 2 bad command line.\n");
}

static int fail(const char *cmd) {
    fprintf(stderr, "nnlab %s: %s\n", cmd, nl_last_error());
    return NL_CLI_FAIL;
}

static int diffusion_train(int argc, char **argv) {
    const char *cmd = "diffusion train", *data = "fashion-mnist", *classes = NULL, *save = NULL, *png = NULL,
               *schedule = "cosine";
    int64_t size = 16, ch = 0, groups = 0, levels = 3, T = 1000, steps = 2000, batch = 64, n_train = 10000, seed = 1,
            threads = 0, verbose = 0;
    double lr = 2e-3, ema_decay = 0.995;
    int no_attn = 0;
    nl_cli_opt opts[] = {
        {"--data", NL_OPT_STR, &data, 0, 0, 0, 0, "NAME"},
        {"--classes", NL_OPT_STR, &classes, 0, 0, 0, 0, "LIST"},
        {"--save", NL_OPT_STR, &save, 0, 0, 0, 0, "FILE"},
        {"--png", NL_OPT_STR, &png, 0, 0, 0, 0, "FILE"},
        {"--schedule", NL_OPT_STR, &schedule, 0, 0, 0, 0, "NAME"},
        {"--size", NL_OPT_INT, &size, 4, 256, 0, 0, "S"},
        {"--ch", NL_OPT_INT, &ch, 2, 1024, 0, 0, "N"},
        {"--groups", NL_OPT_INT, &groups, 1, 1024, 0, 0, "N"},
        {"--levels", NL_OPT_INT, &levels, 1, NL_UNET_MAX_LEVELS, 0, 0, "N"},
        {"--T", NL_OPT_INT, &T, 2, 100000, 0, 0, "N"},
        {"--steps", NL_OPT_INT, &steps, 1, 1e9, 0, 0, "N"},
        {"--batch", NL_OPT_INT, &batch, 1, 1 << 16, 0, 0, "N"},
        {"--n-train", NL_OPT_INT, &n_train, 1, 1e8, 0, 0, "N"},
        {"--seed", NL_OPT_INT, &seed, 0, 9.2e18, 0, 0, "S"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--verbose", NL_OPT_INT, &verbose, 0, 1e9, 0, 0, "N"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--ema", NL_OPT_DOUBLE, &ema_decay, 0, 0.999999, 0, 0, "X"},
        {"--no-attn", NL_OPT_FLAG, &no_attn, 0, 0, 0, 0, NULL},
    };
    enum { N = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse(cmd, argc, argv, opts, N, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_diffusion(stdout);
        return NL_CLI_OK;
    }
    if (!save) return nl_cli_usage_error(cmd, "--save FILE is required");
    nl_diff_schedule kind;
    if (nl_diff_schedule_parse(schedule, &kind)) return nl_cli_usage_error(cmd, "unknown --schedule '%s' (linear or cosine)", schedule);
    if (strcmp(data, "fashion-mnist") && strcmp(data, "mnist"))
        return nl_cli_usage_error(cmd, "unknown --data '%s' (fashion-mnist or mnist)", data);
    unsigned mask = 0;
    if (classes) {
        int64_t cl[10];
        int nc = 0;
        char err[160];
        if (nl_cli_parse_list(classes, 0, 9, 10, cl, &nc, err, sizeof err))
            return nl_cli_usage_error(cmd, "--classes: %s", err);
        for (int k = 0; k < nc; k++) mask |= 1u << cl[k];
    }
    nl_unet_config cfg = nl_unet_defaults((int)size);
    if (ch) cfg.base_channels = (int)ch;
    if (groups) cfg.groups = (int)groups;
    cfg.levels = (int)levels;
    cfg.attn = !no_attn;
    if (nl_unet_config_check(&cfg)) return nl_cli_usage_error(cmd, "%s", nl_last_error());
    if ((rc = nl_cli_check_output_file(cmd, "--save", save))) return rc;
    if (png && (rc = nl_cli_check_output_file(cmd, "--png", png))) return rc;
    nl_cli_threads(threads, nl_cli_seen(opts, N, "--threads"));
    float *x = NULL;
    int64_t n = 0;
    if (nl_diffusion_load_images(data, "train", mask, (int)size, n_train, &x, NULL, &n)) return fail(cmd);
    nl_unet u;
    nl_diffusion d;
    nl_ema ema;
    memset(&ema, 0, sizeof ema);
    if (nl_unet_init(&u, &cfg, (uint64_t)seed)) {
        free(x);
        return fail(cmd);
    }
    int status = NL_CLI_OK;
    nl_diffusion_train_config tc = nl_diffusion_train_defaults();
    tc.steps = steps, tc.batch = batch, tc.lr = lr, tc.ema_decay = ema_decay, tc.seed = (uint64_t)seed;
    tc.verbose = (int)verbose;
    double loss = 0, t0 = nl_time();
    if (nl_diffusion_init(&d, (int)T, kind) || (ema_decay > 0 && nl_ema_init(&ema, &u.ps, ema_decay)) ||
        nl_diffusion_train(&u, &d, &tc, x, n, ema_decay > 0 ? &ema : NULL, &loss)) {
        status = fail(cmd);
        goto done;
    }
    if (ema_decay > 0) nl_ema_swap(&ema, &u.ps); /* the EMA weights are what is saved and sampled */
    printf("trained UNet (%lld parameters) on %lld %s images %lldx%lld for %lld steps: final loss %.5f (%.1f s)\n",
           (long long)nl_unet_param_count(&u), (long long)n, data, (long long)size, (long long)size, (long long)steps, loss,
           nl_time() - t0);
    if (nl_unet_save_ex(&u, &d, save)) {
        status = fail(cmd);
        goto done;
    }
    printf("saved %s\n", save);
    if (png) {
        float *s = malloc((size_t)64 * size * size * sizeof(float));
        nl_rng r;
        nl_rng_init(&r, (uint64_t)seed, 0x5A3ULL << 32);
        if (!s || nl_diffusion_sample_ddim(&u, &d, 64, d.T < 50 ? d.T : 50, 0.0, &r, s) ||
            nl_png_write_grid(png, s, 64, (int)size, 8))
            status = fail(cmd);
        else printf("wrote %s\n", png);
        free(s);
    }
done:
    free(x);
    nl_ema_free(&ema);
    nl_diffusion_free(&d);
    nl_unet_free(&u);
    return status;
}

static int diffusion_sample(int argc, char **argv) {
    const char *cmd = "diffusion sample", *load = NULL, *out = NULL, *sampler = "ddim";
    int64_t n = 64, ddim_steps = 50, cols = 8, seed = 1, threads = 0;
    double eta = 0;
    nl_cli_opt opts[] = {
        {"--load", NL_OPT_STR, &load, 0, 0, 0, 0, "FILE"},
        {"--out", NL_OPT_STR, &out, 0, 0, 0, 0, "FILE"},
        {"--sampler", NL_OPT_STR, &sampler, 0, 0, 0, 0, "NAME"},
        {"--n", NL_OPT_INT, &n, 1, 100000, 0, 0, "N"},
        {"--ddim-steps", NL_OPT_INT, &ddim_steps, 1, 100000, 0, 0, "N"},
        {"--cols", NL_OPT_INT, &cols, 1, 1000, 0, 0, "N"},
        {"--seed", NL_OPT_INT, &seed, 0, 9.2e18, 0, 0, "S"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--eta", NL_OPT_DOUBLE, &eta, 0, 1, 0, 0, "X"},
    };
    enum { N = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse(cmd, argc, argv, opts, N, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_diffusion(stdout);
        return NL_CLI_OK;
    }
    if (!load || !out) return nl_cli_usage_error(cmd, "--load FILE and --out FILE.png are required");
    if (strcmp(sampler, "ddim") && strcmp(sampler, "ddpm")) return nl_cli_usage_error(cmd, "unknown --sampler '%s' (ddim or ddpm)", sampler);
    if ((rc = nl_cli_check_output_file(cmd, "--out", out))) return rc;
    nl_cli_threads(threads, nl_cli_seen(opts, N, "--threads"));
    nl_unet u;
    nl_diffusion d;
    if (nl_unet_load_new(&u, load)) return fail(cmd);
    if (nl_diffusion_from_file(&d, load)) {
        nl_unet_free(&u);
        return fail(cmd);
    }
    int status = NL_CLI_OK;
    const int S = u.cfg.image_size;
    float *x = malloc((size_t)n * S * S * u.cfg.in_channels * sizeof(float));
    nl_rng r;
    nl_rng_init(&r, (uint64_t)seed, 0x5A3ULL << 32);
    double t0 = nl_time();
    nl_status s = !x ? nl_set_error(NL_ENOMEM, "out of memory")
                  : !strcmp(sampler, "ddim") ? nl_diffusion_sample_ddim(&u, &d, n, (int)(ddim_steps < d.T ? ddim_steps : d.T), eta, &r, x)
                                             : nl_diffusion_sample_ddpm(&u, &d, n, &r, x);
    if (s || nl_png_write_grid(out, x, n, S, (int)cols)) status = fail(cmd);
    else printf("wrote %lld %s samples (%dx%d) to %s (%.1f s)\n", (long long)n, sampler, S, S, out, nl_time() - t0);
    free(x);
    nl_diffusion_free(&d);
    nl_unet_free(&u);
    return status;
}

int nl_diffusion_cli(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        help_diffusion(argc < 1 ? stderr : stdout);
        return argc < 1 ? NL_CLI_USAGE : NL_CLI_OK;
    }
    if (!strcmp(argv[0], "train")) return diffusion_train(argc - 1, argv + 1);
    if (!strcmp(argv[0], "sample")) return diffusion_sample(argc - 1, argv + 1);
    return nl_cli_usage_error("diffusion", "unknown subcommand '%s' (train or sample)", argv[0]);
}
