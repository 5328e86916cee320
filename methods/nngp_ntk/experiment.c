/* Ledger entry `nngp-ntk`: infinite-width NNGP and NTK kernel classifiers on Fashion-MNIST next to a trained
 * finite-width MLP of the same depth (Lee et al. 2018, "Deep Neural Networks as Gaussian Processes"; Jacot et
 * al. 2018, "Neural Tangent Kernel"). Kernel regression with one-hot targets (0.9 / -0.1, as neural-tangents'
 * examples) and a small relative diagonal regulariser; prediction = argmax of the posterior mean. Inputs are
 * standardised with the training set's pixel mean/std, exactly as the MLP's forward pass does. */
#include "nngp_ntk/nngp_ntk.h"
#include "nnlab/data.h"
#include "gp/gp.h"
#include "kernels/kernels.h"
#include "nnlab/ledger.h"
#include "nnlab/train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct nk_cfg {
    int64_t n_train, n_test;  /* first n_train training images, first n_test test images */
    int depth;                /* hidden layers of the network (kernels and MLP) */
    int64_t width;            /* MLP hidden width */
    int64_t epochs;           /* MLP training epochs on the same n_train images */
    double diag_reg;          /* relative diagonal regulariser of the kernel regression */
    double margin;            /* pass: each kernel's accuracy >= MLP accuracy - margin */
    uint64_t seed;
} nk_cfg;

static const nk_cfg nk_quick = {5000, 2000, 2, 512, 20, 1e-4, 0.02, 1};
static const nk_cfg nk_full = {20000, 10000, 2, 1024, 30, 1e-4, 0.02, 1};

static double accuracy(const int32_t *pred, const int32_t *y, int64_t n) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) k += pred[i] == y[i];
    return n ? (double)k / (double)n : 0.0;
}

/* One kernel (which = NL_KERNEL_NNGP or NL_KERNEL_NTK): fit on (xtr, Y), predict xte. */
static nl_status kernel_classify(const nl_kernel_cfg *kc, int which, const double *xtr, int64_t ntr, const double *xte,
                                 int64_t nte, int64_t d, const double *Y, double diag_reg, int32_t *pred, double *secs) {
    double t0 = nl_time();
    double *K = malloc((size_t)ntr * ntr * sizeof *K), *Ks = malloc((size_t)nte * ntr * sizeof *Ks);
    nl_status s = NL_ENOMEM;
    nl_gp gp;
    memset(&gp, 0, sizeof gp);
    if (!K || !Ks) { nl_set_error(NL_ENOMEM, "nngp-ntk: cannot allocate the %lld x %lld kernel", (long long)ntr, (long long)ntr); goto done; }
    void *nngp_tr = which == NL_KERNEL_NNGP ? K : NULL, *ntk_tr = which == NL_KERNEL_NTK ? K : NULL;
    if ((s = nl_kernel_matrix(kc, xtr, ntr, NULL, ntr, d, which, NL_F64, nngp_tr, ntk_tr, 0))) goto done;
    void *nngp_te = which == NL_KERNEL_NNGP ? Ks : NULL, *ntk_te = which == NL_KERNEL_NTK ? Ks : NULL;
    if ((s = nl_kernel_matrix(kc, xte, nte, xtr, ntr, d, which, NL_F64, nngp_te, ntk_te, 0))) goto done;
    if ((s = nl_gp_fit(&gp, K, ntr, Y, 10, diag_reg, 0.0, NL_GP_OVERWRITE_K))) goto done;
    s = nl_gp_classify(&gp, Ks, nte, pred);
done:
    nl_gp_free(&gp);
    free(K);
    free(Ks);
    *secs = nl_time() - t0;
    return s;
}

static nl_status nk_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const nk_cfg *cf = config;
    /* 1. the finite-width MLP of the same depth, trained on the same images */
    nl_recipe rc;
    memset(&rc, 0, sizeof rc);
    rc.dataset = "fashion-mnist";
    rc.limit = cf->n_train;
    rc.standardize = 1;
    int64_t sizes[NL_MODEL_MAX_LAYERS + 1];
    sizes[0] = 784;
    for (int l = 1; l <= cf->depth; l++) sizes[l] = cf->width;
    sizes[cf->depth + 1] = 10;
    rc.model = nl_mlp_config(cf->depth + 2, sizes, NL_ACT_RELU, 0.0);
    rc.model_seed = cf->seed;
    rc.train = nl_train_defaults();
    rc.train.epochs = cf->epochs;
    rc.train.batch = 128;
    rc.train.optim.lr = 1e-3;
    rc.train.optim.sched = NL_SCHED_COSINE;
    rc.train.seed = cf->seed;
    rc.train.verbose = opt->verbose;
    nl_model m;
    nl_recipe_result rr;
    nl_dataset tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    double *xtr = NULL, *xte = NULL, *Y = NULL;
    int32_t *pred = NULL;
    double t0 = nl_time();
    nl_status s = nl_recipe_run(&rc, &m, &rr);
    if (s) { nl_recipe_result_free(&rr); return s; }
    double mlp_secs = nl_time() - t0;
    const double mean = m.cfg.input_mean, sd = m.cfg.input_std > 0 ? m.cfg.input_std : 1.0;
    /* 2. the same images for the kernels (f64, standardised like the MLP's input) */
    if ((s = nl_dataset_load(&tr, "fashion-mnist", "train", NULL))) goto out;
    if ((s = nl_dataset_load(&te, "fashion-mnist", "test", NULL))) goto out;
    const int64_t d = tr.d, ntr = cf->n_train < tr.n ? cf->n_train : tr.n, nte = cf->n_test < te.n ? cf->n_test : te.n;
    xtr = malloc((size_t)(ntr * d) * sizeof *xtr);
    xte = malloc((size_t)(nte * d) * sizeof *xte);
    Y = malloc((size_t)(ntr * 10) * sizeof *Y);
    pred = malloc((size_t)nte * sizeof *pred);
    if (!xtr || !xte || !Y || !pred) { s = nl_set_error(NL_ENOMEM, "nngp-ntk: out of memory"); goto out; }
    for (int64_t i = 0; i < ntr * d; i++) xtr[i] = (tr.x[i] - mean) / sd;
    for (int64_t i = 0; i < nte * d; i++) xte[i] = (te.x[i] - mean) / sd;
    nl_onehot(tr.y, ntr, 10, 0.9, -0.1, Y);
    /* MLP accuracy on the same test subset */
    float *xf = malloc((size_t)(nte * d) * sizeof *xf);
    if (!xf) { s = nl_set_error(NL_ENOMEM, "nngp-ntk: out of memory"); goto out; }
    memcpy(xf, te.x, (size_t)(nte * d) * sizeof *xf);
    s = nl_model_predict(&m, xf, nte, pred);
    free(xf);
    if (s) goto out;
    const double acc_mlp = accuracy(pred, te.y, nte);
    /* 3. NNGP and NTK of the same architecture (ReLU, sw^2 = 2, sb^2 = 0.01: He-style variance preservation) */
    nl_kernel_cfg kc;
    nl_kernel_cfg_default(&kc);
    kc.depth = cf->depth;
    if ((s = nl_kernel_act_parse(&kc, "relu"))) goto out;
    kc.sw = sqrt(2.0);
    kc.sb = 0.1;
    double acc[2], secs[2];
    const int which[2] = {NL_KERNEL_NNGP, NL_KERNEL_NTK};
    for (int k = 0; k < 2; k++) {
        if ((s = kernel_classify(&kc, which[k], xtr, ntr, xte, nte, d, Y, cf->diag_reg, pred, &secs[k]))) goto out;
        acc[k] = accuracy(pred, te.y, nte);
    }
    nl_exp_set(out, "nngp_accuracy", acc[0]);
    nl_exp_set(out, "ntk_accuracy", acc[1]);
    nl_exp_set(out, "mlp_accuracy", acc_mlp);
    nl_exp_set(out, "margin", cf->margin);
    nl_exp_set(out, "nngp_seconds", secs[0]);
    nl_exp_set(out, "ntk_seconds", secs[1]);
    nl_exp_set(out, "mlp_seconds", mlp_secs);
    nl_exp_set(out, "n_train", (double)ntr);
    nl_exp_set(out, "n_test", (double)nte);
    nl_exp_set(out, "depth", (double)cf->depth);
    nl_curve *c = nl_exp_curve(out, "Test accuracy", "MLP (trained, width)", "hidden width (log2; infinite at the right)", "accuracy (%)");
    nl_curve_add(c, log2((double)cf->width), 100 * acc_mlp);
    nl_curve *cg = nl_exp_curve(out, "Test accuracy", "NNGP (infinite width)", NULL, NULL);
    nl_curve_add(cg, log2((double)cf->width) + 2, 100 * acc[0]);
    nl_curve *ct = nl_exp_curve(out, "Test accuracy", "NTK (infinite width)", NULL, NULL);
    nl_curve_add(ct, log2((double)cf->width) + 2, 100 * acc[1]);
    snprintf(out->note, sizeof out->note, "%lld training / %lld test images, %d hidden ReLU layers; MLP width %lld trained %lld epochs with Adam",
             (long long)ntr, (long long)nte, cf->depth, (long long)cf->width, (long long)cf->epochs);
out:
    free(xtr); free(xte); free(Y); free(pred);
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    nl_recipe_result_free(&rr);
    nl_model_free(&m);
    return s;
}

static int nk_judge(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t n) {
    double g = nl_exp_get(r, "nngp_accuracy", NULL), t = nl_exp_get(r, "ntk_accuracy", NULL);
    double mlp = nl_exp_get(r, "mlp_accuracy", NULL), mg = nl_exp_get(r, "margin", NULL);
    int pass = g >= mlp - mg && t >= mlp - mg;
    snprintf(measured, n, "NNGP %.2f%%, NTK %.2f%%, trained MLP %.2f%% (%s within %.0f pp)", 100 * g, 100 * t, 100 * mlp,
             pass ? "kernels" : "NOT", 100 * mg);
    return pass;
}

const nl_experiment nl_exp_nngp_ntk = {
    .name = "nngp-ntk",
    .paper = "Lee et al. 2018, Deep Neural Networks as Gaussian Processes; Jacot et al. 2018, Neural Tangent Kernel",
    .claim = "Infinite-width NNGP and NTK kernel regression classifies as well as (within 2 points of) a trained finite-width network of the same depth.",
    .quick_desc = "Fashion-MNIST, 5000 train / 2000 test, 2 hidden ReLU layers: NNGP and NTK regression vs a 784-512-512-10 MLP (Adam, 20 epochs)",
    .full_desc = "Fashion-MNIST, 20000 train / 10000 test, 2 hidden ReLU layers: NNGP and NTK regression vs a 784-1024-1024-10 MLP (Adam, 30 epochs)",
    .quick = &nk_quick,
    .full = &nk_full,
    .metrics = "nngp_accuracy,ntk_accuracy,mlp_accuracy,margin,nngp_seconds,ntk_seconds,mlp_seconds,n_train,n_test,depth",
    .run = nk_run,
    .judge = nk_judge,
};
