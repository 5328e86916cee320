/* nnlab fprior — one 1-D gap toy run or one Boston split: fit the BNN prior to the GP by the Wasserstein-1 map, then
 * SGHMC under the fitted, N(0,1) and unfitted priors (methods/fprior/README.md). */
#include "fprior/fprior_internal.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <string.h>

static void help_fp(FILE *f) {
    fprintf(f,
            "usage: nnlab fprior toy|boston [options]\n"
            "\n"
            "Functional priors for Bayesian neural networks (Tran et al., JMLR 2022). The per-layer prior stds of a tanh MLP are\n"
            "fitted by minimising the Wasserstein-1 distance between its function values and a GP's on measurement points\n"
            "(70%% training inputs, 30%% uniform in the inputs' box); a critic MLP (softplus, Adagrad) is\n"
            "re-initialised every outer step (Lipschitz by a gradient penalty, or weight clipping). Then adaptive SGHMC\n"
            "(several chains) under the fitted, N(0,1) and unfitted priors.\n"
            "  toy     1-D data with a 40%% gap, target GP RBF l = 0.6: marginal match and posterior band widths\n"
            "  boston  Boston housing (python3-sklearn), a fixed 90/10 split, target the hierarchical GP: test NLL, RMSE, R-hat\n"
            "The ledger entry is `nnlab repro fprior`.\n"
            "\n"
            "  --seed N          toy seed / Boston split number (default 1)\n"
            "  --width H         hidden units (default 50)\n"
            "  --depth L         toy hidden layers (default 2; Boston uses 1)\n"
            "  --outer N         outer (prior) steps (default 40)\n"
            "  --critic-steps N  critic steps per outer step (default 30)\n"
            "  --functions N     functions per outer step (default 64)\n"
            "  --points N        measurement points (default 50)\n"
            "  --chains N        SGHMC chains (default 4)\n"
            "  --samples N       kept samples per chain (default 10)\n"
            "  --burn-in N       default 1000\n"
            "  --keep-every N    default 100\n"
            "  --penalty X       gradient-penalty weight X (||grad c|| - 1)^2 (default 10); 0: weight clipping at +-0.1\n"
            "  --threads T       accepted for uniformity (the method is single-threaded)\n");
}

/* `nnlab fprior toy|boston` (toy = 1: toy); argv: the arguments after the subcommand. */
static int fp_run_cli(int toy, int argc, char **argv) {
    int64_t seed = 1, width = 50, depth = 2, outer = 40, cs = 30, nf = 64, np = 50, chains = 4, samples = 10, burn = 1000,
            keep = 100, threads = 0;
    double pen = 10;
    nl_cli_opt opts[] = {
        {"--seed", NL_OPT_INT, &seed, 1, 1000000, 0, 0, "N"},
        {"--width", NL_OPT_INT, &width, 1, 4096, 0, 0, "H"},
        {"--depth", NL_OPT_INT, &depth, 1, NL_FP_MAX_LAYERS - 1, 0, 0, "L"},
        {"--outer", NL_OPT_INT, &outer, 1, 100000, 0, 0, "N"},
        {"--critic-steps", NL_OPT_INT, &cs, 1, 100000, 0, 0, "N"},
        {"--functions", NL_OPT_INT, &nf, 2, 100000, 0, 0, "N"},
        {"--points", NL_OPT_INT, &np, 1, 4096, 0, 0, "N"},
        {"--chains", NL_OPT_INT, &chains, 2, 64, 0, 0, "N"},
        {"--samples", NL_OPT_INT, &samples, 2, 100000, 0, 0, "N"},
        {"--burn-in", NL_OPT_INT, &burn, 0, 100000000, 0, 0, "N"},
        {"--keep-every", NL_OPT_INT, &keep, 1, 100000000, 0, 0, "N"},
        {"--penalty", NL_OPT_DOUBLE, &pen, 0, 1e6, 0, 0, "X"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse(toy ? "fprior toy" : "fprior boston", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_fp(stdout);
        return NL_CLI_OK;
    }
    fp_cfg c;
    memset(&c, 0, sizeof c);
    c.seeds = c.splits = 1, c.toy_width = c.width = (int)width, c.toy_depth = (int)depth, c.marg_fn = 1000;
    c.fit = nl_fp_fit_defaults();
    c.fit.outer = (int)outer, c.fit.critic_steps = (int)cs, c.fit.n_fn = (int)nf, c.fit.n_meas = (int)np, c.fit.critic_hidden = 64, c.fit.penalty = pen;
    c.sghmc = nl_fp_sghmc_defaults();
    c.sghmc.chains = (int)chains, c.sghmc.samples = (int)samples, c.sghmc.burn_in = (int)burn, c.sghmc.keep_every = (int)keep;
    c.toy_sghmc = c.sghmc;
    nl_status s;
    if (toy) {
        fp_toy_out o;
        if ((s = fp_toy_run(&c, (uint64_t)seed, &o, NULL))) goto fail;
        printf("fprior toy seed %lld (1-%lldx%lld-1 tanh, %.1f CPU s, fit %.1f):\n", (long long)seed, (long long)width, (long long)depth,
               o.seconds, o.fit_seconds);
        static const char *const nm[3] = {"fitted", "N(0,1)", "unfitted"};
        for (int k = 0; k < 3; k++)
            printf("  %-8s prior: mean |sd/sd_gp - 1| %.3f, mean W1/sd_gp %.3f, mean sd %.3f (GP %.3f)\n", nm[k], o.sd_err[k], o.w1[k],
                   o.sd_bnn[k], o.sd_gp);
        for (int k = 0; k < 2; k++)
            printf("  %-8s posterior f sd: in the gap %.3f, outside %.3f; R-hat %.3f\n", nm[k], o.band_gap[k], o.band_out[k], o.rhat[k]);
    } else {
        fp_boston_out o;
        if ((s = fp_boston_run(&c, (int)seed, &o))) goto fail;
        printf("fprior boston split %lld: %lld train / %lld test, d %lld, 1x%lld tanh (%.1f CPU s); fitted stds W %.3f b %.3f\n",
               (long long)seed, (long long)o.ntr, (long long)o.nte, (long long)o.d, (long long)width, o.seconds, o.rw, o.rb);
        printf("  fitted vs hierarchical GP: mean |sd/sd_gp - 1| %.3f, mean W1/sd_gp %.3f\n", o.sd_err, o.w1);
        static const char *const nm[3] = {"fitted", "N(0,1)", "unfitted"};
        for (int k = 0; k < 3; k++) printf("  %-8s prior: test NLL %.3f, RMSE %.3f, R-hat %.3f\n", nm[k], o.nll[k], o.rmse[k], o.rhat[k]);
    }
    return NL_CLI_OK;
fail:
    fprintf(stderr, "nnlab fprior: error: %s\n", nl_last_error());
    return NL_CLI_FAIL;
}

static int fp_toy_cli(int argc, char **argv) { return fp_run_cli(1, argc, argv); }
static int fp_boston_cli(int argc, char **argv) { return fp_run_cli(0, argc, argv); }

int nl_fp_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"toy", fp_toy_cli}, {"boston", fp_boston_cli}};
    return nl_cli_subcommands("fprior", argc, argv, help_fp, subs, 2);
}
