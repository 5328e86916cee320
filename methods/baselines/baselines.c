/* Ledger entries `mlp` and `cnn`: the standard baselines on Fashion-MNIST (the references every method's
 * experiment is compared against). */
#include "baselines/baselines.h"
#include "nnlab/ledger.h"
#include "nnlab/train.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct baseline_cfg {
    nl_model_kind kind;
    int64_t limit;          /* training examples (0 = all 60000) */
    int64_t epochs, batch;
    double lr;
    nl_sched_kind sched;
    double dropout;
    int channels[2];        /* CNN */
    int64_t hidden;         /* CNN hidden fc (0 = none) */
    double threshold;       /* pass: test accuracy >= threshold */
    uint64_t seed;
} baseline_cfg;

static nl_status baseline_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const baseline_cfg *bc = config;
    nl_recipe rc;
    memset(&rc, 0, sizeof rc);
    rc.dataset = "fashion-mnist";
    rc.limit = bc->limit;
    rc.standardize = 1;
    if (bc->kind == NL_MODEL_MLP) {
        int64_t sizes[4] = {784, 256, 256, 10};
        rc.model = nl_mlp_config(4, sizes, NL_ACT_RELU, bc->dropout);
    } else {
        rc.model = nl_cnn_config(1, 28, 28, 2, bc->channels, bc->hidden, 10);
        rc.model.dropout = bc->dropout;
    }
    rc.model_seed = bc->seed;
    rc.train = nl_train_defaults();
    rc.train.epochs = bc->epochs;
    rc.train.batch = bc->batch;
    rc.train.optim.lr = bc->lr;
    rc.train.optim.sched = bc->sched;
    rc.train.seed = bc->seed;
    rc.train.verbose = opt->verbose;
    nl_model m;
    nl_recipe_result rr;
    nl_status s = nl_recipe_run(&rc, &m, &rr);
    if (s) {
        nl_recipe_result_free(&rr);
        nl_model_free(&m);
        return s;
    }
    const nl_train_result *tr = &rr.train;
    nl_exp_set(out, "test_accuracy", rr.test_accuracy);
    nl_exp_set(out, "test_loss", rr.test_loss);
    nl_exp_set(out, "threshold", bc->threshold);
    nl_exp_set(out, "final_train_loss", tr->final_loss);
    nl_exp_set(out, "train_seconds", tr->train_seconds);
    nl_exp_set(out, "samples_per_sec", tr->samples_per_sec);
    nl_exp_set(out, "epochs", (double)tr->n_epochs);
    nl_exp_set(out, "steps", (double)tr->steps);
    nl_exp_set(out, "n_train", (double)rr.n_train);
    nl_exp_set(out, "params", (double)nl_model_num_params(&m, 1));
    nl_exp_set(out, "threads", (double)opt->threads);
    /* accuracy against epochs: the training accuracy of the batches (window means, free to record) and the
     * test accuracy at the end of every epoch */
    const double spe = (double)(tr->steps_per_epoch > 0 ? tr->steps_per_epoch : 1);
    nl_curve *tra = nl_exp_curve(out, "Accuracy", "train (batches, window mean)", "epoch", "accuracy (%)");
    nl_curve *ta = nl_exp_curve(out, "Accuracy", "test (end of epoch)", "epoch", "accuracy (%)");
    for (int i = 0; i < tr->n_curve; i++) nl_curve_add(tra, tr->curve_step[i] / spe, 100 * tr->curve_acc[i]);
    for (int i = 0; i < tr->n_epochs; i++) nl_curve_add(ta, (double)tr->epoch[i].steps / spe + (i ? ta->x[i - 1] : 0), 100 * tr->epoch[i].valid_accuracy);
    nl_curve *tl = nl_exp_curve(out, "Training loss", "cross-entropy (window mean)", "step", "loss");
    for (int i = 0; i < tr->n_curve; i++) nl_curve_add(tl, tr->curve_step[i], tr->curve_loss[i]);
    snprintf(out->note, sizeof out->note, "%s, %lld parameters, %lld training examples, %d threads", e->name,
             (long long)nl_model_num_params(&m, 1), (long long)rr.n_train, opt->threads);
    nl_recipe_result_free(&rr);
    nl_model_free(&m);
    return NL_OK;
}

static int baseline_judge(const nl_experiment *e, nl_exp_result *r, int full, char *measured, size_t n) {
    double acc = nl_exp_get(r, "test_accuracy", NULL), thr = nl_exp_get(r, "threshold", NULL);
    double secs = nl_exp_get(r, "train_seconds", NULL);
    int pass = acc >= thr;
    snprintf(measured, n, "test accuracy %.2f%% (%s %.0f%%), %.1f s training", 100 * acc, pass ? ">=" : "<", 100 * thr, secs);
    return pass;
}

/* MLP quick: the full 60k training set for 2 epochs (about 4 s on 2 cores); full: 15 epochs.
 * CNN quick: 45k images for 1 epoch (about 15 s on 2 cores); full: wider, 10 epochs on 60k. */
static const baseline_cfg mlp_quick = {NL_MODEL_MLP, 0, 2, 128, 2e-3, NL_SCHED_COSINE, 0.0, {0, 0}, 0, 0.86, 1};
static const baseline_cfg mlp_full = {NL_MODEL_MLP, 0, 15, 128, 1e-3, NL_SCHED_COSINE, 0.0, {0, 0}, 0, 0.89, 1};
static const baseline_cfg cnn_quick = {NL_MODEL_CNN, 45000, 1, 64, 2e-3, NL_SCHED_COSINE, 0.0, {16, 32}, 128, 0.88, 1};
static const baseline_cfg cnn_full = {NL_MODEL_CNN, 0, 10, 128, 1e-3, NL_SCHED_COSINE, 0.0, {32, 64}, 128, 0.91, 1};

const nl_experiment nl_exp_mlp = {
    .name = "mlp",
    .paper = "Baseline: multilayer perceptron (Rumelhart, Hinton & Williams 1986) on Fashion-MNIST (Xiao, Rasul & Vollgraf 2017)",
    .claim = "An MLP 784-256-256-10 trained with Adam reaches >= 86% test accuracy on Fashion-MNIST in 2 epochs (>= 89% in 15).",
    .quick_desc = "MLP 784-256-256-10 ReLU, all 60000 training images, 2 epochs, batch 128, Adam lr 2e-3 cosine, seed 1",
    .full_desc = "MLP 784-256-256-10 ReLU, all 60000 training images, 15 epochs, batch 128, Adam lr 1e-3 cosine, seed 1",
    .quick = &mlp_quick,
    .full = &mlp_full,
    .metrics = "test_accuracy,test_loss,threshold,final_train_loss,train_seconds,samples_per_sec,epochs,steps,n_train,params,threads",
    .run = baseline_run,
    .judge = baseline_judge,
};

const nl_experiment nl_exp_cnn = {
    .name = "cnn",
    .paper = "Baseline: convolutional network (LeCun et al. 1998) with batch normalization (Ioffe & Szegedy 2015) on Fashion-MNIST",
    .claim = "A 2-block conv-BN-ReLU-pool CNN reaches >= 88% test accuracy on Fashion-MNIST after 1 epoch on 45k images (>= 91% after 10 epochs).",
    .quick_desc = "CNN conv16-conv32 (3x3, BN, ReLU, 2x2 max pool), fc128, fc10, first 45000 training images, 1 epoch, batch 64, Adam lr 2e-3 cosine, seed 1",
    .full_desc = "CNN conv32-conv64 (3x3, BN, ReLU, 2x2 max pool), fc128, fc10, all 60000 training images, 10 epochs, batch 128, Adam lr 1e-3 cosine, seed 1",
    .quick = &cnn_quick,
    .full = &cnn_full,
    .metrics = "test_accuracy,test_loss,threshold,final_train_loss,train_seconds,samples_per_sec,epochs,steps,n_train,params,threads",
    .run = baseline_run,
    .judge = baseline_judge,
};
