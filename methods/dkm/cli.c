/* nnlab dkm — fit one sparse deep kernel machine (or its NNGP limit) on a UCI table split and print the test
 * log-likelihood (methods/dkm/README.md). */
#include "dkm/dkm.h"
#include "nnlab/cli.h"
#include "nnlab/data.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help_dkm(FILE *f) {
    fprintf(f,
            "usage: nnlab dkm fit [options]\n"
            "       nnlab dkm limit [--n N] [--seeds S] [--burn B] [--samples T]\n"
            "\n"
            "Deep kernel machine (Yang et al., ICML 2023), sparse version: L layers of Gram matrices G_ii = V V^T / P on P\n"
            "learned inducing points, ReLU arc-cosine kernel between layers, the KL terms (weight nu) on the inducing\n"
            "blocks, a collapsed sparse-GP output. Fits on a seeded 90/10 split of a UCI table (python3-sklearn's copies)\n"
            "and prints the test log-likelihood per point in the target's original units. The ledger entry is\n"
            "`nnlab repro dkm`.\n"
            "\n"
            "  --data NAME        boston (B column dropped) or diabetes (default boston)\n"
            "  --split S          seed of the 90/10 split (default 1)\n"
            "  --layers L         default 2\n"
            "  --inducing P       inducing points, at most the training rows (default 100)\n"
            "  --nu X             KL weight, > 0 (default 1)\n"
            "  --steps N          Adam steps (default 300)\n"
            "  --lr X             Adam learning rate (default 0.01)\n"
            "  --nngp             the NNGP limit: every G fixed at the NNGP value (no V, no KL)\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n"
            "  --quiet            no progress lines\n"
            "\n"
            "dkm limit: MALA samples of a one-hidden-layer deep GP of widths 2, 8, 32, 128 (= output channels, nu = 1) on N\n"
            "synthetic points (default 12); prints the relative distance of the posterior mean Gram from the DKM optimum and\n"
            "from the NNGP value (defaults: 3 seeds, 500 burn-in, 1500 samples).\n");
}

static int dkm_limit_cli(int argc, char **argv) {
    int64_t n = 12, seeds = 3, burn = 500, samples = 1500, threads = 0;
    nl_cli_opt opts[] = {
        {"--n", NL_OPT_INT, &n, 2, 200, 0, 0, "N"},
        {"--seeds", NL_OPT_INT, &seeds, 1, 16, 0, 0, "S"},
        {"--burn", NL_OPT_INT, &burn, 0, 1000000, 0, 0, "B"},
        {"--samples", NL_OPT_INT, &samples, 1, 1000000, 0, 0, "T"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("dkm limit", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_dkm(stdout);
        return NL_CLI_OK;
    }
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    const int64_t widths[4] = {2, 8, 32, 128};
    double ed[4 * 16], en[4 * 16], ac[4 * 16];
    nl_status s = nl_dkm_limit_run(n, 2, widths, 4, (int)seeds, burn, samples, ed, en, ac);
    if (s) {
        fprintf(stderr, "nnlab dkm limit: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    for (int w = 0; w < 4; w++) {
        double a = 0, b = 0, c = 0;
        for (int k = 0; k < seeds; k++) a += ed[w * seeds + k] / seeds, b += en[w * seeds + k] / seeds, c += ac[w * seeds + k] / seeds;
        printf("width %4lld: |E G1 - G_dkm| / |G_dkm| = %.4f, |E G1 - K(G0)| / |G_dkm| = %.4f (acceptance %.2f)\n",
               (long long)widths[w], a, b, c);
    }
    return NL_CLI_OK;
}

static int dkm_fit_cli(int argc, char **argv) {
    nl_dkm_config cfg = nl_dkm_defaults();
    int64_t split = 1, layers = cfg.layers, P = cfg.inducing, steps = cfg.steps, threads = 0;
    double nu = cfg.nu, lr = cfg.lr;
    int nngp = 0, quiet = 0;
    const char *data = "boston";
    nl_cli_opt opts[] = {
        {"--data", NL_OPT_STR, &data, 0, 0, 0, 0, "NAME"},
        {"--split", NL_OPT_INT, &split, 0, 9007199254740992.0, 0, 0, "S"},
        {"--layers", NL_OPT_INT, &layers, 1, 16, 0, 0, "L"},
        {"--inducing", NL_OPT_INT, &P, 1, 100000, 0, 0, "P"},
        {"--nu", NL_OPT_DOUBLE, &nu, -1e300, 1e300, 0, 0, "X"},
        {"--steps", NL_OPT_INT, &steps, 0, 1000000, 0, 0, "N"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--nngp", NL_OPT_FLAG, &nngp, 0, 0, 0, 0, NULL},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("dkm fit", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_dkm(stdout);
        return NL_CLI_OK;
    }
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));
    cfg.layers = (int)layers, cfg.inducing = P, cfg.nu = nu, cfg.steps = steps, cfg.lr = lr, cfg.nngp = nngp;
    cfg.seed = (uint64_t)split, cfg.verbose = !quiet;
    nl_uci full, tr, te;
    double ym, ys;
    nl_status s = nl_uci_load(&full, data, NULL);
    if (!s) {
        s = nl_uci_split(&full, 0.1, (uint64_t)split, &tr, &te, &ym, &ys);
        nl_uci_free(&full);
    }
    if (s) {
        fprintf(stderr, "nnlab dkm fit: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    nl_dkm_model m;
    double *mu = malloc((size_t)te.n * sizeof *mu), *var = malloc((size_t)te.n * sizeof *var); /* (t) each */
    s = mu && var ? NL_OK : nl_set_error(NL_ENOMEM, "out of memory");
    if (!s) s = nl_dkm_fit(&cfg, tr.x, tr.y, tr.n, tr.d, &m);
    if (!s) {
        s = nl_dkm_predict(&m, te.x, te.n, mu, var);
        if (!s) {
            double ll = nl_dkm_loglik(te.y, mu, var, te.n) - log(ys), se = 0;
            for (int64_t i = 0; i < te.n; i++) se += (mu[i] - te.y[i]) * (mu[i] - te.y[i]) / (double)te.n;
            printf("dkm %s on %s split %lld: %lld train / %lld test rows, L=%d, P=%lld, nu=%g, %lld steps, %.1f CPU s\n",
                   nngp ? "(NNGP limit)" : "", data, (long long)split, (long long)tr.n, (long long)te.n, cfg.layers,
                   (long long)P, nu, (long long)steps, m.seconds);
            printf("test log-likelihood per point %.4f, RMSE %.4f (original units); final objective/N %.5f\n", ll,
                   sqrt(se) * ys, m.objective);
        }
        nl_dkm_free(&m);
    }
    free(mu), free(var);
    nl_uci_free(&tr), nl_uci_free(&te);
    if (s) {
        fprintf(stderr, "nnlab dkm fit: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    return NL_CLI_OK;
}

int nl_dkm_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"fit", dkm_fit_cli}, {"limit", dkm_limit_cli}};
    return nl_cli_subcommands("dkm", argc, argv, help_dkm, subs, 2);
}
