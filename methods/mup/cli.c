/* nnlab mup coord-check | lr-transfer | abc | show — muP tools (methods/mup/README.md). Entry point:
 * nl_mup_cli(argc, argv) with the arguments after "mup". */
#include "nnlab/cli.h"
#include "nnlab/ledger.h"
#include "mup/mup.h"
#include "nnlab/safetensors.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int nl_mup_cli(int argc, char **argv);

static void help_mup(FILE *f) {
    fprintf(f,
            "usage: nnlab mup coord-check [options]   coordinate check of SP / muP / NTK on an MLP\n"
            "       nnlab mup lr-transfer [--full] [--out DIR] [--threads T] [sweep options]\n"
            "                                          the ledger entry `mup`: training loss vs LR per width, SP vs muP\n"
            "       nnlab mup abc [--preset sp|sp-c0|ntp|mf|mup] [--L N] [--a LIST --b LIST --c X] [--param NAME]\n"
            "                                          classify an abc-parametrisation (Yang & Hu 2020, Theorem 3.3 ff.)\n"
            "       nnlab mup show [--hidden LIST] [--optim sgd|adam|adamw] [parametrisation flags]\n"
            "                                          per-tensor init scale, multiplier, LR multiplier of an MLP\n"
            "\n"
            "coord-check options:\n"
            "  --param sp|mup|ntk|both   both = sp and mup (default both)\n"
            "  --widths LIST        hidden widths (default 128,256,512,1024,2048,4096)\n"
            "  --steps N            steps recorded, t = 1 is the initial model (default 3)\n"
            "  --seeds N            seeds averaged (default 5)\n"
            "  --optim sgd|adam     optimizer and LR rule (default sgd)\n"
            "  --lr X               learning rate (default 0.1 for sgd, 1e-3 for adam)\n"
            "  --batch B            rows of the fixed Fashion-MNIST batch (default 64)\n"
            "  --base-width N       muP/NTK base width (default 256)\n"
            "  --hidden-layers L    hidden layers (default 2: 784-n-n-10)\n"
            "  --zero-readout 0|1   muP/NTK readout starts at 0 (default 1 for mup, 0 otherwise; sp never)\n"
            "  --broken             muP without the readout's 1/width_mult multiplier (a check that must fail)\n"
            "  --tol X              ratio tolerance of the pass criterion (default 1.2)\n"
            "  --data-dir DIR       Fashion-MNIST directory (default: the standard search)\n"
            "  --out DIR            write DIR/coord_<param>.csv and DIR/coord_<param>_t<t>.svg\n"
            "  --threads T          threads\n"
            "The criterion (mup's test): l1(widest) / l1(1024, or the narrowest) within [1/tol, tol] for every layer and\n"
            "step; with a zero readout the logits must be exactly 0 at t = 1.\n"
            "\n"
            "\n"
            "lr-transfer sweep options (default: the ledger entry's quick or --full configuration):\n"
            "  --optim sgd|adam --widths LIST --steps N --batch B --train N --avg-last N --lr-lo LOG2 --n-lr N\n"
            "  --base-width N --zero-readout 0|1 --broken 0|1 --pool P (P x P average pooling) --seeds S\n"
            "--out DIR writes DIR/ledger.json and DIR/report.html (the curves) as nnlab repro does.\n"
            "\n"
            "examples: nnlab mup coord-check --widths 256,1024,4096 --seeds 3 --out coord\n"
            "          nnlab mup lr-transfer --out mup-out\n");
}

/* ---------------- coord-check ---------------- */
static nl_status write_text(const char *path, const char *text) {
    nl_atomic_file af;
    nl_status s = nl_atomic_open(&af, path);
    if (s) return s;
    if ((s = nl_atomic_write(&af, text, strlen(text)))) {
        nl_atomic_abort(&af);
        return s;
    }
    return nl_atomic_commit(&af);
}

static nl_status coord_outputs(const char *dir, const char *pname, const nl_mup_coord_result *r) {
    char path[1100];
    nl_status s;
    /* CSV: width, t, layer, l1 */
    size_t cap = 64 + (size_t)r->n_widths * r->steps * r->n_rec * 64, len = 0;
    char *csv = malloc(cap);
    if (!csv) return nl_set_error(NL_ENOMEM, "out of memory");
    len += (size_t)snprintf(csv + len, cap - len, "width,t,layer,l1\n");
    for (int w = 0; w < r->n_widths; w++)
        for (int t = 1; t <= r->steps; t++)
            for (int k = 0; k < r->n_rec; k++)
                len += (size_t)snprintf(csv + len, cap - len, "%lld,%d,%s,%.9g\n", (long long)r->widths[w], t, r->rec_name[k], nl_mup_coord_l1(r, w, t, k));
    snprintf(path, sizeof path, "%s/coord_%s.csv", dir, pname);
    s = write_text(path, csv);
    free(csv);
    if (s) return s;
    /* one chart per step (as mup's plots): one curve per layer, x = log2 width, y = log10 mean|x| */
    for (int t = 1; t <= r->steps; t++) {
        nl_exp_result er;
        nl_exp_result_init(&er);
        char plot[64];
        snprintf(plot, sizeof plot, "%s coordinate check, t = %d", pname, t);
        for (int k = 0; k < r->n_rec; k++) {
            nl_curve *c = nl_exp_curve(&er, plot, r->rec_name[k], "log2 width", "log10 mean |x|");
            if (!c) { nl_exp_result_free(&er); return nl_set_error(NL_ENOMEM, "out of memory"); }
            for (int w = 0; w < r->n_widths; w++) {
                double v = nl_mup_coord_l1(r, w, t, k);
                nl_curve_add(c, log2((double)r->widths[w]), v > 0 ? log10(v) : NAN);
            }
        }
        char *svg = nl_ledger_svg(&er, plot, 560, 360);
        nl_exp_result_free(&er);
        if (!svg) return nl_set_error(NL_ENOMEM, "svg: out of memory");
        snprintf(path, sizeof path, "%s/coord_%s_t%d.svg", dir, pname, t);
        s = write_text(path, svg);
        free(svg);
        if (s) return s;
    }
    return NL_OK;
}

static int cmd_coord(int argc, char **argv) {
    const char *param = "both", *widths_s = "128,256,512,1024,2048,4096", *optim = "sgd", *data_dir = NULL, *out = NULL;
    int64_t steps = 3, seeds = 5, batch = 64, base = 256, layers = 2, threads = 0, zero = -1;
    double lr = 0, tol = 1.2;
    int broken = 0;
    nl_cli_opt opts[] = {
        {"--param", NL_OPT_STR, &param, 0, 0, 0, 0, "NAME"},
        {"--widths", NL_OPT_STR, &widths_s, 0, 0, 0, 0, "LIST"},
        {"--steps", NL_OPT_INT, &steps, 1, 100, 0, 0, "N"},
        {"--seeds", NL_OPT_INT, &seeds, 1, 1000, 0, 0, "N"},
        {"--optim", NL_OPT_STR, &optim, 0, 0, 0, 0, "NAME"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 1e6, 1, 0, "X"},
        {"--batch", NL_OPT_INT, &batch, 1, 60000, 0, 0, "B"},
        {"--base-width", NL_OPT_INT, &base, 1, 1 << 20, 0, 0, "N"},
        {"--hidden-layers", NL_OPT_INT, &layers, 1, NL_MODEL_MAX_LAYERS - 1, 0, 0, "L"},
        {"--zero-readout", NL_OPT_INT, &zero, 0, 1, 0, 0, "0|1"},
        {"--broken", NL_OPT_FLAG, &broken, 0, 0, 0, 0, NULL},
        {"--tol", NL_OPT_DOUBLE, &tol, 1, 100, 1, 0, "X"},
        {"--data-dir", NL_OPT_STR, &data_dir, 0, 0, 0, 0, "DIR"},
        {"--out", NL_OPT_STR, &out, 0, 0, 0, 0, "DIR"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("mup coord-check", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) { help_mup(stdout); return NL_CLI_OK; }
    int seen_threads = 0, seen_lr = 0;
    for (int i = 0; i < N_OPTS; i++) {
        seen_threads |= opts[i].seen && !strcmp(opts[i].name, "--threads");
        seen_lr |= opts[i].seen && !strcmp(opts[i].name, "--lr");
    }
    nl_param_kind kinds[2];
    int n_kinds = 0;
    if (!strcmp(param, "both")) {
        kinds[0] = NL_PARAM_SP;
        kinds[1] = NL_PARAM_MUP;
        n_kinds = 2;
    } else if (nl_param_kind_parse(param, &kinds[0])) {
        return nl_cli_usage_error("mup coord-check", "--param: '%s' (expected sp, mup, ntk or both)", param);
    } else {
        n_kinds = 1;
    }
    nl_optim_kind ok;
    if (nl_optim_parse_kind(optim, &ok) || ok == NL_OPT_ADAMW)
        return nl_cli_usage_error("mup coord-check", "--optim: '%s' (expected sgd or adam)", optim);
    if (!seen_lr) lr = ok == NL_OPT_SGD ? 0.1 : 1e-3;
    nl_mup_coord_config cc;
    memset(&cc, 0, sizeof cc);
    char err[256];
    if (nl_cli_parse_list(widths_s, 1, 1 << 16, NL_MUP_COORD_MAX_WIDTHS, cc.widths, &cc.n_widths, err, sizeof err))
        return nl_cli_usage_error("mup coord-check", "--widths: %s", err);
    if (cc.n_widths < 2) return nl_cli_usage_error("mup coord-check", "--widths: give at least two widths");
    nl_cli_threads(threads, seen_threads);

    nl_dataset ds;
    nl_status s = nl_dataset_load(&ds, "fashion-mnist", "train", data_dir);
    if (s) {
        fprintf(stderr, "nnlab mup coord-check: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    float *x;
    int32_t *y;
    s = nl_mup_coord_batch(&ds, batch, &x, &y);
    nl_dataset_free(&ds);
    if (s) {
        fprintf(stderr, "nnlab mup coord-check: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    if (out && (s = nl_mkdir_p(out))) {
        fprintf(stderr, "nnlab mup coord-check: error: %s\n", nl_last_error());
        free(x);
        free(y);
        return NL_CLI_FAIL;
    }
    cc.steps = (int)steps;
    cc.seeds = (int)seeds;
    cc.hidden_layers = (int)layers;
    cc.act = NL_ACT_RELU;
    cc.lr = lr;
    cc.x = x;
    cc.y = y;
    cc.batch = batch;
    cc.d = 784;
    cc.k = 10;
    /* reference width of the criterion: 1024 if present (mup's test uses 1000 vs 4000), else the narrowest */
    int lo = 0, hi = cc.n_widths - 1;
    for (int i = 0; i < cc.n_widths; i++)
        if (cc.widths[i] == 1024) lo = i;
    if (lo == hi) lo = 0;
    int failures = 0;
    for (int ki = 0; ki < n_kinds && !s; ki++) {
        cc.param = nl_param_defaults();
        cc.param.kind = kinds[ki];
        cc.param.base_width = (double)base;
        cc.param.optim = ok;
        cc.param.zero_readout = kinds[ki] == NL_PARAM_SP ? 0 : zero >= 0 ? (int)zero : kinds[ki] == NL_PARAM_MUP;
        if (broken && kinds[ki] == NL_PARAM_MUP) cc.param.ablate = NL_PARAM_ABLATE_OUTPUT_MULT;
        const char *pname = broken && kinds[ki] == NL_PARAM_MUP ? "mup-broken" : nl_param_kind_name(kinds[ki]);
        nl_mup_coord_result r;
        double t0 = nl_time();
        if ((s = nl_mup_coord_check(&cc, &r))) break;
        char desc[256];
        nl_param_describe(&cc.param, NULL, desc, sizeof desc);
        printf("== %s: %s, %s lr %g, %d seeds, batch %lld, %.1f s\n", pname, desc, optim, lr, cc.seeds, (long long)batch, nl_time() - t0);
        printf("%-4s %-6s", "t", "layer");
        for (int w = 0; w < r.n_widths; w++) printf(" %10lld", (long long)r.widths[w]);
        printf("   ratio %lld/%lld\n", (long long)r.widths[hi], (long long)r.widths[lo]);
        for (int t = 1; t <= r.steps; t++)
            for (int k = 0; k < r.n_rec; k++) {
                printf("%-4d %-6s", t, r.rec_name[k]);
                for (int w = 0; w < r.n_widths; w++) printf(" %10.4g", nl_mup_coord_l1(&r, w, t, k));
                double a = nl_mup_coord_l1(&r, lo, t, k), b = nl_mup_coord_l1(&r, hi, t, k);
                if (a == 0 && b == 0) printf("   (both 0)\n");
                else printf("   %.3f\n", b / a);
            }
        double worst;
        char where[256];
        int pass = nl_mup_coord_judge(&r, lo, hi, tol, cc.param.zero_readout, &worst, where, sizeof where);
        printf("criterion l1(%lld)/l1(%lld) in [1/%g, %g]: %s (worst: %s)\n\n", (long long)r.widths[hi], (long long)r.widths[lo], tol, tol,
               pass ? "PASS" : "FAIL", where);
        failures += !pass;
        if (out) {
            s = coord_outputs(out, pname, &r);
            if (!s) printf("wrote %s/coord_%s.csv and %s/coord_%s_t1..%d.svg\n\n", out, pname, out, pname, r.steps);
        }
        nl_mup_coord_result_free(&r);
    }
    free(x);
    free(y);
    if (s) {
        fprintf(stderr, "nnlab mup coord-check: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    (void)failures; /* a failing criterion is a measurement (SP is expected to fail), not a command failure */
    return NL_CLI_OK;
}

/* ---------------- lr-transfer: the ledger entry ---------------- */
extern const nl_experiment nl_exp_mup;

static int cmd_transfer(int argc, char **argv) {
    int full = 0;
    int64_t threads = 0, steps = 0, batch = 0, ntrain = 0, n_lr = 0, base = 0, zero = -1, broken = -1, avg = 0, pool = 0, seeds = 0;
    double lr_lo = NAN;
    const char *out = NULL, *optim = NULL, *widths_s = NULL;
    nl_cli_opt opts[] = {
        {"--full", NL_OPT_FLAG, &full, 0, 0, 0, 0, NULL},
        {"--out", NL_OPT_STR, &out, 0, 0, 0, 0, "DIR"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--optim", NL_OPT_STR, &optim, 0, 0, 0, 0, "NAME"},
        {"--widths", NL_OPT_STR, &widths_s, 0, 0, 0, 0, "LIST"},
        {"--steps", NL_OPT_INT, &steps, 1, 1e9, 0, 0, "N"},
        {"--batch", NL_OPT_INT, &batch, 1, 60000, 0, 0, "B"},
        {"--train", NL_OPT_INT, &ntrain, 1, 60000, 0, 0, "N"},
        {"--avg-last", NL_OPT_INT, &avg, 1, 1e9, 0, 0, "N"},
        {"--lr-lo", NL_OPT_DOUBLE, &lr_lo, -60, 20, 0, 0, "LOG2"},
        {"--n-lr", NL_OPT_INT, &n_lr, 3, NL_MUP_TRANSFER_MAX_LR, 0, 0, "N"},
        {"--base-width", NL_OPT_INT, &base, 1, 1 << 20, 0, 0, "N"},
        {"--zero-readout", NL_OPT_INT, &zero, 0, 1, 0, 0, "0|1"},
        {"--broken", NL_OPT_INT, &broken, 0, 1, 0, 0, "0|1"},
        {"--pool", NL_OPT_INT, &pool, 1, 7, 0, 0, "P"},
        {"--seeds", NL_OPT_INT, &seeds, 1, 8, 0, 0, "S"},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("mup lr-transfer", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) { help_mup(stdout); return NL_CLI_OK; }
    nl_cli_threads(threads, opts[2].seen);
    /* start from the ledger entry's quick or full configuration; any sweep option makes a custom run */
    nl_experiment e = nl_exp_mup;
    nl_mup_transfer_config cfg = *(const nl_mup_transfer_config *)(full ? e.full : e.quick);
    int custom = 0;
    for (int i = 3; i < N_OPTS; i++) custom |= opts[i].seen;
    char err[256];
    if (optim) {
        nl_optim_kind ok;
        if (nl_optim_parse_kind(optim, &ok) || ok == NL_OPT_ADAMW) return nl_cli_usage_error("mup lr-transfer", "--optim: '%s' (expected sgd or adam)", optim);
        cfg.optim = ok;
        cfg.momentum = ok == NL_OPT_SGD ? 0.9 : 0;
    }
    if (widths_s) {
        int n;
        if (nl_cli_parse_list(widths_s, 1, 1 << 16, NL_MUP_TRANSFER_MAX_WIDTHS, cfg.widths, &n, err, sizeof err))
            return nl_cli_usage_error("mup lr-transfer", "--widths: %s", err);
        cfg.n_widths = n;
    }
    if (steps) cfg.steps = steps;
    if (batch) cfg.batch = batch;
    if (ntrain) cfg.n_train = ntrain;
    if (avg) cfg.avg_last = avg;
    else if (steps) cfg.avg_last = steps >= 4 ? steps / 4 : 1;
    if (isfinite(lr_lo)) cfg.log2_lr_lo = lr_lo;
    if (n_lr) cfg.n_lr = (int)n_lr;
    if (base) cfg.base_width = (double)base;
    if (zero >= 0) cfg.zero_readout = (int)zero;
    if (broken >= 0) cfg.broken = (int)broken;
    if (pool) cfg.pool = (int)pool;
    if (seeds) cfg.seeds = (int)seeds;
    if (custom) {
        e.quick = e.full = &cfg;
        snprintf(err, sizeof err, "custom sweep: %d widths from %lld, %s, %lld steps of batch %lld, LR 2^%g .. 2^%g", cfg.n_widths,
                 (long long)cfg.widths[0], cfg.optim == NL_OPT_SGD ? "SGD momentum 0.9" : "Adam", (long long)cfg.steps, (long long)cfg.batch,
                 cfg.log2_lr_lo, cfg.log2_lr_lo + (cfg.n_lr - 1) * cfg.log2_lr_step);
        e.quick_desc = e.full_desc = err;
    }
    const nl_experiment *list[1] = {&e};
    nl_repro_options ro;
    memset(&ro, 0, sizeof ro);
    ro.full = full;
    ro.threads = nl_get_num_threads();
    ro.verbose = 1;
    ro.out_dir = out;
    ro.table = stdout;
    nl_repro_entry *en = NULL;
    int n_failed = 0;
    printf("%s\n%s\n\n", e.claim, full ? e.full_desc : e.quick_desc);
    fflush(stdout);
    nl_status s = nl_repro_run(list, 1, &ro, &en, &n_failed);
    if (en && !en[0].errored) {
        /* the loss table behind the verdict */
        const nl_exp_result *r = &en[0].r;
        for (int i = 0; i < r->n_curves; i++) {
            const nl_curve *c = r->curves[i];
            if (i == 0 || strcmp(c->plot, r->curves[i - 1]->plot)) {
                printf("\n%s\n%-12s", c->plot, "log2 lr");
                for (int64_t k = 0; k < c->n; k++) printf(" %7g", c->x[k]);
                printf("\n");
            }
            printf("%-12s", c->name);
            for (int64_t k = 0; k < c->n; k++) {
                if (isfinite(c->y[k])) printf(" %7.4f", c->y[k]);
                else printf(" %7s", c->y[k] == INFINITY ? "-" : "diverge");
            }
            printf("\n");
        }
    }
    if (s) fprintf(stderr, "nnlab mup lr-transfer: error: %s\n", nl_last_error());
    nl_repro_free(en, 1);
    return s ? NL_CLI_FAIL : n_failed ? NL_CLI_FAIL : NL_CLI_OK;
}

/* ---------------- abc ---------------- */
static int parse_dlist(const char *s, double *out, int max, int *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v) || *n >= max) return -1;
        out[(*n)++] = v;
        if (*end == ',') p = end + 1;
        else if (*end == 0) p = end;
        else return -1;
    }
    return *n ? 0 : -1;
}

static int cmd_abc(int argc, char **argv) {
    const char *preset = NULL, *as = NULL, *bs = NULL, *param = NULL;
    int64_t L = 2;
    double c = 0;
    nl_cli_opt opts[] = {
        {"--preset", NL_OPT_STR, &preset, 0, 0, 0, 0, "NAME"},
        {"--L", NL_OPT_INT, &L, 1, NL_MUP_ABC_MAX_HIDDEN, 0, 0, "N"},
        {"--a", NL_OPT_STR, &as, 0, 0, 0, 0, "LIST"},
        {"--b", NL_OPT_STR, &bs, 0, 0, 0, 0, "LIST"},
        {"--c", NL_OPT_DOUBLE, &c, -100, 100, 0, 0, "X"},
        {"--param", NL_OPT_STR, &param, 0, 0, 0, 0, "NAME"},
    };
    int n_pos, help;
    int rc = nl_cli_parse("mup abc", argc, argv, opts, 6, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) { help_mup(stdout); return NL_CLI_OK; }
    nl_mup_abc p;
    memset(&p, 0, sizeof p);
    p.L = (int)L;
    if (param) {
        nl_parametrization q = nl_param_defaults();
        if (nl_param_kind_parse(param, &q.kind) || nl_mup_param_to_abc(&q, (int)L, &p)) return nl_cli_usage_error("mup abc", "%s", nl_last_error());
        printf("nnlab --param %s (SGD), as abc exponents with c = 0:\n", param);
    } else if (preset) {
        if (nl_mup_abc_preset(preset, (int)L, &p)) return nl_cli_usage_error("mup abc", "%s", nl_last_error());
    } else if (as && bs) {
        int na, nb;
        if (parse_dlist(as, p.a, NL_MUP_ABC_MAX_HIDDEN + 1, &na) || parse_dlist(bs, p.b, NL_MUP_ABC_MAX_HIDDEN + 1, &nb) || na != nb || na < 2)
            return nl_cli_usage_error("mup abc", "--a and --b need the same number (L + 1 >= 2) of comma-separated numbers");
        p.L = na - 1;
    } else {
        /* the table of the paper's parametrisations */
        static const char *const names[] = {"sp", "sp-c0", "ntp", "mup", "mf"};
        printf("%-6s %3s  %s\n", "preset", "L", "class");
        for (int i = 0; i < 5; i++)
            for (int l = 1; l <= 3; l++) {
                nl_mup_abc_class k;
                if (nl_mup_abc_preset(names[i], l, &p) || nl_mup_abc_classify(&p, &k)) continue;
                printf("%-6s %3d  %s\n", names[i], l, k.summary);
            }
        return NL_CLI_OK;
    }
    if (opts[4].seen) p.c = c;
    nl_mup_abc_class k;
    if (nl_mup_abc_classify(&p, &k)) return nl_cli_usage_error("mup abc", "%s", nl_last_error());
    printf("%-6s", "layer");
    for (int l = 1; l <= p.L + 1; l++) printf(" %6d", l);
    printf("\n%-6s", "a");
    for (int l = 0; l <= p.L; l++) printf(" %6g", p.a[l]);
    printf("\n%-6s", "b");
    for (int l = 0; l <= p.L; l++) printf(" %6g", p.b[l]);
    printf("\nc = %g, L = %d\n%s\n", p.c, p.L, k.summary);
    printf("conditions: init Theta(1) %s, r >= 0 %s, logits bounded (2a_{L+1}+c >= 1, a_{L+1}+b_{L+1}+r >= 1) %s\n",
           k.init_stable ? "yes" : "no", k.features_stable ? "yes" : "no", k.logits_stable ? "yes" : "no");
    return NL_CLI_OK;
}

/* ---------------- show ---------------- */
static int cmd_show(int argc, char **argv) {
    nl_parametrization p = nl_param_defaults();
    p.kind = NL_PARAM_MUP;
    int rc = nl_cli_param_extract("mup show", &argc, argv, &p);
    if (rc) return rc;
    const char *hidden = "1024,1024", *optim = "sgd";
    nl_cli_opt opts[] = {
        {"--hidden", NL_OPT_STR, &hidden, 0, 0, 0, 0, "LIST"},
        {"--optim", NL_OPT_STR, &optim, 0, 0, 0, 0, "NAME"},
    };
    int n_pos, help;
    if ((rc = nl_cli_parse("mup show", argc, argv, opts, 2, NULL, 0, &n_pos, &help))) return rc;
    if (help) { help_mup(stdout); nl_cli_param_help(stdout); return NL_CLI_OK; }
    nl_optim_kind ok;
    if (nl_optim_parse_kind(optim, &ok)) return nl_cli_usage_error("mup show", "--optim: '%s' (expected sgd, adam or adamw)", optim);
    nl_param_set_optim(&p, ok);
    int64_t list[NL_MODEL_MAX_LAYERS + 1];
    int n;
    char err[256];
    if (nl_cli_parse_list(hidden, 1, 1 << 16, NL_MODEL_MAX_LAYERS - 1, list + 1, &n, err, sizeof err)) return nl_cli_usage_error("mup show", "--hidden: %s", err);
    list[0] = 784;
    list[n + 1] = 10;
    nl_model_config cfg = nl_mlp_config(n + 2, list, NL_ACT_RELU, 0);
    nl_param_apply(&cfg, &p);
    nl_model m;
    if (nl_model_init(&m, &cfg, 0)) {
        fprintf(stderr, "nnlab mup show: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    char desc[256];
    nl_param_describe(&p, &cfg, desc, sizeof desc);
    printf("%s\n%-12s %-14s %10s %10s %10s %10s %5s\n", desc, "tensor", "shape", "init std", "fwd_mult", "lr_mult", "wd_mult", "group");
    for (int i = 0; i < m.ps.n; i++) {
        const nl_param *q = m.ps.p[i];
        double s = 0, s2 = 0;
        const float *v = q->var.val.data;
        for (int64_t k = 0; k < q->numel; k++) { s += v[k]; s2 += (double)v[k] * v[k]; }
        double sd = sqrt(fmax(0.0, s2 / q->numel - (s / q->numel) * (s / q->numel)));
        char shape[32];
        if (q->var.val.ndim == 2) snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)q->var.val.shape[0], (long long)q->var.val.shape[1]);
        else snprintf(shape, sizeof shape, "[%lld]", (long long)q->var.val.shape[0]);
        printf("%-12s %-14s %10.4g %10.4g %10.4g %10.4g %5d\n", q->name, shape, sd, q->fwd_mult, q->lr_mult, q->wd_mult, q->group);
    }
    nl_model_free(&m);
    return NL_CLI_OK;
}

int nl_mup_cli(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help") || !strcmp(argv[0], "help")) {
        help_mup(argc < 1 ? stderr : stdout);
        return argc < 1 ? NL_CLI_USAGE : NL_CLI_OK;
    }
    if (!strcmp(argv[0], "coord-check")) return cmd_coord(argc - 1, argv + 1);
    if (!strcmp(argv[0], "lr-transfer")) return cmd_transfer(argc - 1, argv + 1);
    if (!strcmp(argv[0], "abc")) return cmd_abc(argc - 1, argv + 1);
    if (!strcmp(argv[0], "show")) return cmd_show(argc - 1, argv + 1);
    return nl_cli_usage_error("mup", "unknown subcommand '%s' (coord-check, lr-transfer, abc or show)", argv[0]);
}
