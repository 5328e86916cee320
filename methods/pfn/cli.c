/* nnlab pfn train|predict|eval — prior-data fitted networks (methods/pfn/README.md). Entry point: nl_pfn_cli(argc, argv)
 * with the arguments after "pfn". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nnlab/cli.h"
#include "nnlab/base.h"
#include "pfn/pfn.h"

int nl_pfn_cli(int argc, char **argv);

static void help_pfn(FILE *f) {
    fprintf(f,
            "usage: nnlab pfn train|predict|eval [options]\n"
            "\n"
            "Prior-data fitted networks (Mueller et al., \"Transformers Can Do Bayesian Inference\", ICLR 2022): a transformer\n"
            "trained on datasets drawn from a prior (here GP priors) outputs the posterior predictive distribution of y at\n"
            "query points given a context set, in one forward pass. methods/pfn/README.md.\n"
            "\n"
            "  train      train a PFN on a GP prior and save it (--out FILE)\n"
            "  predict    posterior predictive (mean, median, 5%%/95%% quantiles, NLL) for query points given context points\n"
            "  eval       mean NLL vs context size on fresh prior datasets, against the exact GP (and MLE-II / MCMC)\n"
            "\n"
            "Run `nnlab pfn COMMAND --help` for the options of each.\n");
}

static void help_pfn_train(FILE *f) {
    fprintf(f,
            "usage: nnlab pfn train [options] --out FILE\n"
            "\n"
            "Train a PFN on datasets of SEQ points drawn from a GP prior (x ~ U[0,1]^D): per step a split n ~ P(n) ~ 1/(SEQ-n),\n"
            "the first n points are context (x and y), the rest are queries (x only); loss = NLL of the query targets under the\n"
            "Riemann (bar) output distribution with half-normal tails, bucket borders at equal-mass quantiles of prior samples.\n"
            "Adam, linear warmup + cosine decay, gradient clipping. The checkpoint (safetensors) records the model and prior.\n"
            "\n"
            "prior:\n"
            "  --prior NAME       gp-rbf (default) | gp-matern (Matern-5/2) | gp-hyper (Matern-5/2 ARD with the BoTorch Gamma\n"
            "                     hyperpriors, drawn per dataset)\n"
            "  --dim D            input dimension (default 1)\n"
            "  --ls L             lengthscale, all dimensions (gp-rbf/gp-matern; default 0.6)\n"
            "  --os S             outputscale (default 1)\n"
            "  --noise V          noise variance (default 0.05)\n"
            "  --seq N            points per training dataset, context + queries (default 50)\n"
            "model:\n"
            "  --emsize E         width (default 64)\n"
            "  --layers L         encoder layers (default 4)\n"
            "  --heads H          attention heads (default 4)\n"
            "  --ffn F            encoder FFN width (default 2 E)\n"
            "  --dec F            decoder hidden width (default 2 E)\n"
            "  --buckets K        output buckets (default 1000)\n"
            "  --pre-norm         pre-LN layers (default: post-LN, as the paper)\n"
            "training:\n"
            "  --steps S          optimizer steps (default 3000)\n"
            "  --batch B          datasets per step (default 32)\n"
            "  --lr X             peak learning rate (default 1e-3)\n"
            "  --warmup F         warmup fraction of the steps (default 0.1)\n"
            "  --clip C           gradient-norm clip, 0 = off (default 1)\n"
            "  --max-seconds T    stop after T seconds of training (default: no limit)\n"
            "  --seed S           seed of init, data and borders (default 1)\n"
            "  --threads T        threads (default: NL_NUM_THREADS or all cores)\n"
            "  --quiet            no progress on stderr\n"
            "  --out FILE         checkpoint to write (required)\n"
            "\n"
            "example: nnlab pfn train --prior gp-rbf --dim 1 --seq 50 --steps 3000 --out pfn.safetensors\n");
}

static void help_pfn_predict(FILE *f) {
    fprintf(f,
            "usage: nnlab pfn predict --load FILE --context CTX.csv --query Q.csv [--threads T]\n"
            "\n"
            "Posterior predictive of a trained PFN. CTX.csv: one row per context point (at least one), D x columns then y (an\n"
            "optional header line is skipped). Q.csv: one row per query, D x columns, optionally followed by a y column.\n"
            "Prints CSV on stdout, one row per query: mean,median,q05,q95 and, when Q.csv has y, nll (= -log density of y).\n"
            "The mean NLL over the queries goes to stderr. NaN/Inf values, a wrong number of columns, or a checkpoint that is\n"
            "not a PFN are errors (exit 1).\n"
            "\n"
            "example: nnlab pfn predict --load pfn.safetensors --context ctx.csv --query q.csv > pred.csv\n");
}

static void help_pfn_eval(FILE *f) {
    fprintf(f,
            "usage: nnlab pfn eval --load FILE [options]\n"
            "\n"
            "Mean NLL per held-out point vs the number of context points n, on fresh datasets of the prior the model was\n"
            "trained on: the PFN against the exact GP with each dataset's true hyperparameters and, optionally, MLE-II (MAP\n"
            "under the hyperprior for gp-hyper) and slice-sampling MCMC over the hyperparameters (gp-hyper only).\n"
            "\n"
            "  --ns LIST          context sizes (default 0,1,2,3,5,8,12,16,20,25,30,35,40,49)\n"
            "  --datasets N       held-out datasets per n (default 256)\n"
            "  --queries Q        held-out queries per dataset (default 1)\n"
            "  --mle              also MLE-II / MAP (3 restarts, 100 L-BFGS iterations)\n"
            "  --mcmc             also MCMC (gp-hyper; 100 warm-up + 100 samples)\n"
            "  --mcmc-datasets N  datasets per n for MCMC (default 50)\n"
            "  --seed S           data seed (default 1001)\n"
            "  --threads T        threads\n"
            "  --quiet            no per-n lines on stderr\n");
}

static int pfn_train(int argc, char **argv) {
    const char *cmd = "pfn train";
    const char *prior = "gp-rbf", *out = NULL;
    int64_t dim = 1, seq = 50, emsize = 64, layers = 4, heads = 4, ffn = 0, dec = 0, buckets = 1000, steps = 3000, batch = 32;
    int64_t seed = 1, threads = 0;
    double ls = 0.6, os = 1.0, noise = 0.05, lr = 1e-3, warmup = 0.1, clip = 1.0, maxs = 0;
    int pre = 0, quiet = 0;
    nl_cli_opt opts[] = {
        {"--prior", NL_OPT_STR, &prior, 0, 0, 0, 0, "NAME"},
        {"--dim", NL_OPT_INT, &dim, 1, NL_PFN_MAX_DIM, 0, 0, "D"},
        {"--ls", NL_OPT_DOUBLE, &ls, 0, 1e6, 1, 0, "L"},
        {"--os", NL_OPT_DOUBLE, &os, 0, 1e6, 1, 0, "S"},
        {"--noise", NL_OPT_DOUBLE, &noise, 0, 1e6, 1, 0, "V"},
        {"--seq", NL_OPT_INT, &seq, 2, 100000, 0, 0, "N"},
        {"--emsize", NL_OPT_INT, &emsize, 1, 4096, 0, 0, "E"},
        {"--layers", NL_OPT_INT, &layers, 1, NL_PFN_MAX_LAYERS, 0, 0, "L"},
        {"--heads", NL_OPT_INT, &heads, 1, 4096, 0, 0, "H"},
        {"--ffn", NL_OPT_INT, &ffn, 1, 65536, 0, 0, "F"},
        {"--dec", NL_OPT_INT, &dec, 1, 65536, 0, 0, "F"},
        {"--buckets", NL_OPT_INT, &buckets, 2, 100000, 0, 0, "K"},
        {"--pre-norm", NL_OPT_FLAG, &pre, 0, 0, 0, 0, NULL},
        {"--steps", NL_OPT_INT, &steps, 0, 1e9, 0, 0, "S"},
        {"--batch", NL_OPT_INT, &batch, 1, 1e6, 0, 0, "B"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--warmup", NL_OPT_DOUBLE, &warmup, 0, 1, 0, 0, "F"},
        {"--clip", NL_OPT_DOUBLE, &clip, 0, 1e9, 0, 0, "C"},
        {"--max-seconds", NL_OPT_DOUBLE, &maxs, 0, 1e9, 0, 0, "T"},
        {"--seed", NL_OPT_INT, &seed, 0, 1e15, 0, 0, "S"},
        {"--threads", NL_OPT_INT, &threads, 1, 4096, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
        {"--out", NL_OPT_STR, &out, 0, 0, 0, 0, "FILE"},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0, help = 0;
    int rc = nl_cli_parse(cmd, argc, argv, opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_pfn_train(stdout);
        return NL_CLI_OK;
    }
    if (!out) return nl_cli_usage_error(cmd, "--out FILE is required");
    if (emsize % heads) return nl_cli_usage_error(cmd, "--emsize %lld is not divisible by --heads %lld", (long long)emsize, (long long)heads);
    if (nl_cli_check_output_file(cmd, "--out", out)) return NL_CLI_FAIL;
    nl_cli_threads(threads, opts[20].seen);
    nl_pfn_prior p;
    if (nl_pfn_prior_by_name(&p, prior, (int)dim, ls, os, noise)) {
        if (nl_last_status() == NL_EINVAL && strstr(nl_last_error(), "unknown prior"))
            return nl_cli_usage_error(cmd, "--prior: %s", nl_last_error());
        fprintf(stderr, "nnlab pfn train: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    nl_pfn_config mc = nl_pfn_config_default();
    mc.dim = (int)dim, mc.emsize = (int)emsize, mc.n_layers = (int)layers, mc.n_heads = (int)heads;
    mc.d_ff = (int)ffn, mc.d_dec = (int)dec, mc.n_buckets = (int)buckets, mc.pre_norm = pre, mc.seq = (int)seq;
    nl_pfn_train_config tc = nl_pfn_train_defaults();
    tc.steps = steps, tc.batch = batch, tc.lr = lr, tc.warmup_frac = warmup, tc.clip = clip, tc.seed = (uint64_t)seed;
    tc.verbose = !quiet, tc.max_seconds = maxs;
    if (!quiet) fprintf(stderr, "prior: %s\n", p.desc);
    nl_pfn m;
    nl_pfn_train_stats ts;
    if (nl_pfn_fit(&m, &mc, &p, &tc, &ts)) {
        fprintf(stderr, "nnlab pfn train: %s\n", nl_last_error());
        nl_pfn_prior_free(&p);
        return NL_CLI_FAIL;
    }
    int status = NL_CLI_OK;
    if (nl_pfn_save(&m, out)) {
        fprintf(stderr, "nnlab pfn train: %s\n", nl_last_error());
        status = NL_CLI_FAIL;
    } else {
        printf("trained %lld steps in %.1f s: loss %.4f -> %.4f (means of the first/last 50 steps); %lld parameters; saved %s\n",
               (long long)ts.steps, ts.seconds, ts.first_loss, ts.last_loss, (long long)nl_pfn_num_params(&m), out);
    }
    if (!isfinite(ts.last_loss)) status = NL_CLI_FAIL;
    nl_pfn_train_stats_free(&ts);
    nl_pfn_free(&m);
    nl_pfn_prior_free(&p);
    return status;
}

static int pfn_predict(int argc, char **argv) {
    const char *cmd = "pfn predict";
    const char *load = NULL, *ctx = NULL, *qry = NULL;
    int64_t threads = 0;
    nl_cli_opt opts[] = {
        {"--load", NL_OPT_STR, &load, 0, 0, 0, 0, "FILE"},
        {"--context", NL_OPT_STR, &ctx, 0, 0, 0, 0, "FILE"},
        {"--query", NL_OPT_STR, &qry, 0, 0, 0, 0, "FILE"},
        {"--threads", NL_OPT_INT, &threads, 1, 4096, 0, 0, "T"},
    };
    const char *pos[1];
    int n_pos = 0, help = 0;
    int rc = nl_cli_parse(cmd, argc, argv, opts, 4, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_pfn_predict(stdout);
        return NL_CLI_OK;
    }
    if (!load || !ctx || !qry) return nl_cli_usage_error(cmd, "--load, --context and --query are required");
    nl_cli_threads(threads, opts[3].seen);
    nl_pfn m;
    if (nl_pfn_load(&m, load)) {
        fprintf(stderr, "nnlab pfn predict: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    int d = m.cfg.dim, K = m.cfg.n_buckets, hc, hq, status = NL_CLI_OK;
    int64_t n = 0, nq = 0;
    double *xc = NULL, *yc = NULL, *xq = NULL, *yq = NULL, *probs = NULL;
    if (nl_pfn_read_points(ctx, d, 1, &n, &xc, &yc, &hc) || nl_pfn_read_points(qry, d, 0, &nq, &xq, &yq, &hq)) {
        fprintf(stderr, "nnlab pfn predict: %s\n", nl_last_error());
        status = NL_CLI_FAIL;
        goto done;
    }
    probs = malloc((size_t)(nq * K) * sizeof *probs);
    if (!probs) {
        fprintf(stderr, "nnlab pfn predict: out of memory\n");
        status = NL_CLI_FAIL;
        goto done;
    }
    if (nl_pfn_predict(&m, xc, yc, n, xq, nq, probs)) {
        fprintf(stderr, "nnlab pfn predict: %s\n", nl_last_error());
        status = NL_CLI_FAIL;
        goto done;
    }
    printf(hq ? "mean,median,q05,q95,nll\n" : "mean,median,q05,q95\n");
    double tot = 0;
    for (int64_t j = 0; j < nq; j++) {
        nl_pfn_summary s;
        nl_pfn_summarize(&m, probs + j * K, &s);
        printf("%.9g,%.9g,%.9g,%.9g", s.mean, s.median, s.q05, s.q95);
        if (hq) {
            double l = nl_pfn_nll(&m, probs + j * K, yq[j]);
            tot += l;
            printf(",%.9g", l);
        }
        printf("\n");
    }
    if (hq && nq) fprintf(stderr, "mean NLL over %lld queries: %.6f (context %lld points)\n", (long long)nq, tot / (double)nq, (long long)n);
done:
    free(xc), free(yc), free(xq), free(yq), free(probs);
    nl_pfn_free(&m);
    return status;
}

static int pfn_eval_cmd(int argc, char **argv) {
    const char *cmd = "pfn eval";
    const char *load = NULL, *ns = "0,1,2,3,5,8,12,16,20,25,30,35,40,49";
    int64_t datasets = 256, queries = 1, mcd = 50, seed = 1001, threads = 0;
    int mle = 0, mcmc = 0, quiet = 0;
    nl_cli_opt opts[] = {
        {"--load", NL_OPT_STR, &load, 0, 0, 0, 0, "FILE"},
        {"--ns", NL_OPT_STR, &ns, 0, 0, 0, 0, "LIST"},
        {"--datasets", NL_OPT_INT, &datasets, 2, 1e7, 0, 0, "N"},
        {"--queries", NL_OPT_INT, &queries, 1, 1e5, 0, 0, "Q"},
        {"--mle", NL_OPT_FLAG, &mle, 0, 0, 0, 0, NULL},
        {"--mcmc", NL_OPT_FLAG, &mcmc, 0, 0, 0, 0, NULL},
        {"--mcmc-datasets", NL_OPT_INT, &mcd, 1, 1e7, 0, 0, "N"},
        {"--seed", NL_OPT_INT, &seed, 0, 1e15, 0, 0, "S"},
        {"--threads", NL_OPT_INT, &threads, 1, 4096, 0, 0, "T"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    const char *pos[1];
    int n_pos = 0, help = 0;
    int rc = nl_cli_parse(cmd, argc, argv, opts, 10, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_pfn_eval(stdout);
        return NL_CLI_OK;
    }
    if (!load) return nl_cli_usage_error(cmd, "--load FILE is required");
    nl_pfn_eval_config ec;
    memset(&ec, 0, sizeof ec);
    char err[160], item[32];
    for (const char *q = ns; *q;) {
        const char *e = strchr(q, ',');
        size_t len = e ? (size_t)(e - q) : strlen(q);
        if (len == 0 || len >= sizeof item) return nl_cli_usage_error(cmd, "--ns: bad list '%s'", ns);
        memcpy(item, q, len);
        item[len] = 0;
        int64_t v;
        if (nl_cli_parse_int(item, 0, 100000, &v, err, sizeof err)) return nl_cli_usage_error(cmd, "--ns: %s", err);
        if (ec.n_ns >= NL_PFN_EVAL_MAX_NS) return nl_cli_usage_error(cmd, "--ns: at most %d sizes", NL_PFN_EVAL_MAX_NS);
        ec.ns[ec.n_ns++] = (int)v;
        q += len + (e ? 1 : 0);
        if (e && !*q) return nl_cli_usage_error(cmd, "--ns: bad list '%s'", ns);
    }
    if (!ec.n_ns) return nl_cli_usage_error(cmd, "--ns: empty list");
    nl_cli_threads(threads, opts[8].seen);
    nl_pfn m;
    if (nl_pfn_load(&m, load)) {
        fprintf(stderr, "nnlab pfn eval: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    nl_pfn_prior p;
    if (nl_pfn_prior_of_model(&m, &p)) {
        fprintf(stderr, "nnlab pfn eval: %s\n", nl_last_error());
        nl_pfn_free(&m);
        return NL_CLI_FAIL;
    }
    ec.datasets = (int)datasets, ec.queries = (int)queries, ec.seed = (uint64_t)seed;
    ec.baselines = NL_PFN_BASE_EXACT | (mle ? NL_PFN_BASE_MLE : 0) | (mcmc ? NL_PFN_BASE_MCMC : 0);
    ec.mle_restarts = 3, ec.mle_iters = 100, ec.mcmc_warmup = 100, ec.mcmc_samples = 100, ec.mcmc_datasets = (int)mcd;
    ec.verbose = !quiet;
    nl_pfn_eval_result r;
    int status = NL_CLI_OK;
    if (nl_pfn_eval(&m, &p, &ec, &r)) {
        fprintf(stderr, "nnlab pfn eval: %s\n", nl_last_error());
        status = NL_CLI_FAIL;
    } else {
        printf("prior: %s\n", p.desc);
        printf("n,pfn_nll,exact_gp_nll,diff,diff_se%s%s\n", mle ? ",mle_nll" : "", mcmc ? ",mcmc_nll,pfn_nll_mcmc_subset,diff_mcmc_se" : "");
        double gap = 0;
        for (int i = 0; i < r.n_ns; i++) {
            printf("%d,%.5f,%.5f,%+.5f,%.5f", r.ns[i], r.pfn[i], r.exact[i], r.pfn[i] - r.exact[i], r.diff_se[i]);
            if (mle) printf(",%.5f", r.mle[i]);
            if (mcmc) printf(",%.5f,%.5f,%.5f", r.mcmc[i], r.pfn_on_mcmc[i], r.mcmc_diff_se[i]);
            printf("\n");
            gap += (r.pfn[i] - r.exact[i]) / r.n_ns;
        }
        printf("mean gap PFN - exact GP over n: %+.4f nats; CPU seconds: PFN %.3f, exact %.3f, MLE %.3f, MCMC %.3f\n", gap, r.pfn_seconds,
               r.exact_seconds, r.mle_seconds, r.mcmc_seconds);
    }
    nl_pfn_prior_free(&p);
    nl_pfn_free(&m);
    return status;
}

int nl_pfn_cli(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        help_pfn(argc < 1 ? stderr : stdout);
        return argc < 1 ? NL_CLI_USAGE : NL_CLI_OK;
    }
    if (!strcmp(argv[0], "train")) return pfn_train(argc - 1, argv + 1);
    if (!strcmp(argv[0], "predict")) return pfn_predict(argc - 1, argv + 1);
    if (!strcmp(argv[0], "eval")) return pfn_eval_cmd(argc - 1, argv + 1);
    return nl_cli_usage_error("pfn", "unknown subcommand '%s' (train|predict|eval)", argv[0]);
}
