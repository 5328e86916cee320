/* nnlab biper — train a BiPer (or sign+STE) binary CNN on Fashion-MNIST, export it to a bit-packed model, and run
 * packed inference (with --bench: images/s of the packed network against the float network in nnlab). */
#include "biper/biper.h"
#include "bnn/bnn.h"
#include "nnlab/cli.h"
#include "nnlab/safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help_biper(FILE *f) {
    fprintf(f,
            "usage: nnlab biper train  [options] [--save FLOAT.safetensors] [--export PACKED.bnn]\n"
            "       nnlab biper export --model FLOAT.safetensors --out PACKED.bnn [architecture options]\n"
            "       nnlab biper infer  --packed PACKED.bnn [--model FLOAT.safetensors] [--bench] [--test-limit N]\n"
            "\n"
            "BiPer (Vargas et al. CVPR 2024): binary weights sign(sin(omega W)), stage 1 sin(omega W), stage 2 sign(sin)\n"
            "with the cos surrogate; sign activations with the max(0, 2 - 2|a0|) surrogate. The 4-conv binary CNN of\n"
            "methods/biper/README.md. infer compares the packed network's predictions with the float network's when\n"
            "--model is given. The ledger entry is `nnlab repro biper`.\n"
            "\n"
            "  --method NAME      biper (default) or ste (sign + straight-through weights)\n"
            "  --omega X          frequency (default 20)\n"
            "  --channels C1,C    float first conv and binary conv channels (default 16,32; infer: the packed file's)\n"
            "  --epochs E1,E2     epochs of stage 1 and stage 2 (default 1,1)\n"
            "  --batch B          default 64\n"
            "  --lr X1,X2         SGD learning rates per stage (default 0.021,0.0037)\n"
            "  --limit N          first N training images (default all)\n"
            "  --test-limit N     first N test images (default all)\n"
            "  --seed N           default 1\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n"
            "  --bnn-path NAME    lib/bnn kernel path: auto (default), portable, avx2, avx512 (where the CPU has it)\n"
            "  --quiet            no per-epoch progress\n");
}

typedef struct cli_args {
    const char *method, *channels, *epochs, *lrs, *save, *exp, *model, *out, *packed, *path;
    double omega;
    int64_t batch, limit, test_limit, seed, threads;
    int quiet, bench, ch_seen;
} cli_args;

static int parse(const char *cmd, int argc, char **argv, cli_args *a, nl_biper_config *cfg) {
    memset(a, 0, sizeof *a);
    a->method = "biper", a->channels = "16,32", a->epochs = "1,1", a->lrs = "0.021,0.0037";
    a->omega = 20, a->batch = 64, a->seed = 1;
    nl_cli_opt opts[] = {
        {"--method", NL_OPT_STR, &a->method, 0, 0, 0, 0, "NAME"},
        {"--omega", NL_OPT_DOUBLE, &a->omega, 0, 1e6, 1, 0, "X"},
        {"--channels", NL_OPT_STR, &a->channels, 0, 0, 0, 0, "C1,C"},
        {"--epochs", NL_OPT_STR, &a->epochs, 0, 0, 0, 0, "E1,E2"},
        {"--lr", NL_OPT_STR, &a->lrs, 0, 0, 0, 0, "X1,X2"},
        {"--batch", NL_OPT_INT, &a->batch, 2, 60000, 0, 0, "B"},
        {"--limit", NL_OPT_INT, &a->limit, 2, 60000, 0, 0, "N"},
        {"--test-limit", NL_OPT_INT, &a->test_limit, 1, 10000, 0, 0, "N"},
        {"--seed", NL_OPT_INT, &a->seed, 0, 9007199254740992.0, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &a->threads, 1, 1024, 0, 0, "T"},
        {"--save", NL_OPT_STR, &a->save, 0, 0, 0, 0, "PATH"},
        {"--export", NL_OPT_STR, &a->exp, 0, 0, 0, 0, "PATH"},
        {"--model", NL_OPT_STR, &a->model, 0, 0, 0, 0, "PATH"},
        {"--out", NL_OPT_STR, &a->out, 0, 0, 0, 0, "PATH"},
        {"--packed", NL_OPT_STR, &a->packed, 0, 0, 0, 0, "PATH"},
        {"--bench", NL_OPT_FLAG, &a->bench, 0, 0, 0, 0, NULL},
        {"--bnn-path", NL_OPT_STR, &a->path, 0, 0, 0, 0, "NAME"},
        {"--quiet", NL_OPT_FLAG, &a->quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse(cmd, argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_biper(stdout);
        return -1;
    }
    *cfg = nl_biper_defaults();
    if (!strcmp(a->method, "biper")) cfg->method = NL_BIPER_SIN;
    else if (!strcmp(a->method, "ste")) cfg->method = NL_BIPER_STE;
    else return nl_cli_usage_error(cmd, "--method: '%s' (expected biper or ste)", a->method);
    int64_t v[2];
    int n = 0;
    char err[256] = "";
    if (nl_cli_parse_list(a->channels, 1, 4096, 2, v, &n, err, sizeof err) || n != 2)
        return nl_cli_usage_error(cmd, "--channels: %s", err[0] ? err : "give two numbers C1,C");
    cfg->c1 = (int)v[0], cfg->c = (int)v[1];
    if (nl_cli_parse_list(a->epochs, 0, 10000, 2, v, &n, err, sizeof err) || n != 2 || v[0] + v[1] < 1)
        return nl_cli_usage_error(cmd, "--epochs: %s", err[0] ? err : "give two numbers E1,E2 (sum >= 1)");
    cfg->epochs1 = v[0], cfg->epochs2 = v[1];
    char *end;
    cfg->lr1 = strtod(a->lrs, &end);
    if (*end != ',' || !(cfg->lr1 > 0) || !((cfg->lr2 = strtod(end + 1, &end)) > 0) || *end)
        return nl_cli_usage_error(cmd, "--lr: '%s' (expected two positive numbers X1,X2)", a->lrs);
    cfg->omega = a->omega, cfg->batch = a->batch, cfg->limit = a->limit, cfg->test_limit = a->test_limit;
    cfg->seed = (uint64_t)a->seed, cfg->verbose = !a->quiet;
    nl_cli_threads(a->threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    a->ch_seen = nl_cli_seen(opts, N_OPTS, "--channels");
    if (a->path) {
        nl_bnn_path bp = NL_BNN_AUTO;
        for (int k = NL_BNN_AUTO; k <= NL_BNN_AVX512; k++)
            if (!strcmp(a->path, nl_bnn_path_name((nl_bnn_path)k)) || (k == NL_BNN_AVX512 && !strcmp(a->path, "avx512"))) bp = (nl_bnn_path)k;
        if (bp == NL_BNN_AUTO && strcmp(a->path, "auto")) return nl_cli_usage_error(cmd, "--bnn-path: '%s' (auto, portable, avx2, avx512)", a->path);
        if (nl_bnn_set_path(bp)) return nl_cli_usage_error(cmd, "--bnn-path: %s", nl_last_error());
    }
    return 0;
}

static int fail(const char *cmd) {
    fprintf(stderr, "nnlab biper %s: error: %s\n", cmd, nl_last_error());
    return NL_CLI_FAIL;
}

static int cmd_train(int argc, char **argv) {
    cli_args a;
    nl_biper_config cfg;
    int rc = parse("biper train", argc, argv, &a, &cfg);
    if (rc) return rc < 0 ? NL_CLI_OK : rc;
    nl_dataset tr, te;
    if (nl_biper_data(cfg.limit, cfg.test_limit, &tr, &te)) return fail("train");
    nl_biper_net m;
    nl_biper_result r;
    nl_status s = nl_biper_net_init(&m, cfg.c1, cfg.c, cfg.seed);
    if (!s) s = nl_biper_train(&m, &cfg, &tr, &te, &r);
    if (!s) printf("biper %s (omega %g) on fashion-mnist: test accuracy %.2f%% (%lld training images, %lld steps), QE %.4f, %.1f s training\n",
                   a.method, cfg.omega, 100 * r.test_accuracy, (long long)r.n_train, (long long)r.steps, r.qe, r.train_seconds);
    if (!s && a.save) {
        nl_st_meta md;
        nl_st_meta_init(&md);
        nl_st_meta_put_str(&md, "nnlab.model", "biper");
        nl_st_meta_put_int(&md, "biper.c1", cfg.c1), nl_st_meta_put_int(&md, "biper.c", cfg.c);
        nl_st_meta_put_num(&md, "biper.omega", cfg.omega), nl_st_meta_put_str(&md, "biper.method", a.method);
        char *js = nl_st_meta_json(&md);
        s = js ? nl_safetensors_save(a.save, &m.ps, js) : md.status;
        free(js);
        nl_st_meta_free(&md);
        if (!s) printf("saved the float network to %s\n", a.save);
    }
    if (!s && a.exp) {
        nl_biper_packed *p;
        if (!(s = nl_biper_export(&m, &cfg, &p))) {
            s = nl_biper_packed_save(p, a.exp);
            nl_biper_packed_free(p);
        }
        if (!s) printf("exported the packed network to %s\n", a.exp);
    }
    nl_biper_net_free(&m);
    nl_dataset_free(&tr), nl_dataset_free(&te);
    return s ? fail("train") : NL_CLI_OK;
}

static int cmd_export(int argc, char **argv) {
    cli_args a;
    nl_biper_config cfg;
    int rc = parse("biper export", argc, argv, &a, &cfg);
    if (rc) return rc < 0 ? NL_CLI_OK : rc;
    if (!a.model || !a.out) return nl_cli_usage_error("biper export", "--model and --out are required");
    nl_biper_net m;
    nl_status s = nl_biper_net_init(&m, cfg.c1, cfg.c, cfg.seed);
    if (!s) s = nl_safetensors_load_params(a.model, &m.ps, 1, NULL);
    nl_biper_packed *p = NULL;
    if (!s) s = nl_biper_export(&m, &cfg, &p);
    if (!s) s = nl_biper_packed_save(p, a.out);
    if (!s) printf("exported %s (%s, omega %g) to %s\n", a.model, a.method, cfg.omega, a.out);
    nl_biper_packed_free(p);
    if (m.ps.p) nl_biper_net_free(&m);
    return s ? fail("export") : NL_CLI_OK;
}

static int cmd_infer(int argc, char **argv) {
    cli_args a;
    nl_biper_config cfg;
    int rc = parse("biper infer", argc, argv, &a, &cfg);
    if (rc) return rc < 0 ? NL_CLI_OK : rc;
    if (!a.packed) return nl_cli_usage_error("biper infer", "--packed is required");
    nl_biper_packed *p = NULL;
    nl_status s = nl_biper_packed_load(a.packed, &p);
    if (s) return fail("infer");
    if (!a.ch_seen) nl_biper_packed_channels(p, &cfg.c1, &cfg.c); /* the float network's channels: the file's unless given */
    nl_dataset tr, te;
    if ((s = nl_biper_data(0, cfg.test_limit, &tr, &te))) {
        nl_biper_packed_free(p);
        return fail("infer");
    }
    int32_t *pp = malloc((size_t)te.n * sizeof *pp), *pf = malloc((size_t)te.n * sizeof *pf);
    nl_biper_net m;
    memset(&m, 0, sizeof m);
    int have_m = 0;
    if (!pp || !pf) s = nl_set_error(NL_ENOMEM, "out of memory");
    double t0 = nl_time(), tp = 0, tf = 0;
    if (!s) s = nl_biper_packed_predict(p, te.x, te.n, pp);
    tp = nl_time() - t0;
    int64_t ok = 0, same = 0;
    for (int64_t i = 0; !s && i < te.n; i++) ok += pp[i] == te.y[i];
    if (!s) printf("packed network: test accuracy %.2f%% on %lld images, %.0f images/s\n", 100.0 * ok / te.n, (long long)te.n, te.n / tp);
    if (!s && a.model) {
        if (!(s = nl_biper_net_init(&m, cfg.c1, cfg.c, cfg.seed))) have_m = 1;
        if (!s) s = nl_safetensors_load_params(a.model, &m.ps, 1, NULL);
        t0 = nl_time();
        if (!s) s = nl_biper_predict(&m, &cfg, te.x, te.n, pf);
        tf = nl_time() - t0;
        for (int64_t i = 0; !s && i < te.n; i++) same += pp[i] == pf[i];
        if (!s) printf("float network: %.0f images/s; packed predictions equal the float network's on %lld of %lld images\n", te.n / tf,
                       (long long)same, (long long)te.n);
        if (!s && same != te.n) s = nl_set_error(NL_EINVAL, "packed and float predictions differ on %lld images", (long long)(te.n - same));
    }
    if (!s && a.bench) {
        double best_p = 1e30, best_f = 1e30;
        for (int k = 0; k < 3 && !s; k++) {
            t0 = nl_time();
            s = nl_biper_packed_predict(p, te.x, te.n, pp);
            best_p = nl_time() - t0 < best_p ? nl_time() - t0 : best_p;
            if (have_m && !s) {
                t0 = nl_time();
                s = nl_biper_predict(&m, &cfg, te.x, te.n, pf);
                best_f = nl_time() - t0 < best_f ? nl_time() - t0 : best_f;
            }
        }
        if (!s) printf("bench (best of 3, %d threads, bnn path %s): packed %.0f images/s%s", nl_get_num_threads(),
                       nl_bnn_path_name(nl_bnn_get_path()), te.n / best_p, have_m ? "" : "\n");
        if (!s && have_m) printf(", float %.0f images/s, ratio %.2fx\n", te.n / best_f, best_f / best_p);
    }
    free(pp), free(pf);
    if (have_m) nl_biper_net_free(&m);
    nl_biper_packed_free(p);
    nl_dataset_free(&tr), nl_dataset_free(&te);
    return s ? fail("infer") : NL_CLI_OK;
}

int nl_biper_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"train", cmd_train}, {"export", cmd_export}, {"infer", cmd_infer}};
    return nl_cli_subcommands("biper", argc, argv, help_biper, subs, 3);
}
