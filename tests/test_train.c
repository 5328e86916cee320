/* Training loop: learning on a real Fashion-MNIST subset, determinism, steps mode, early stopping,
 * checkpoints, NaN/Inf detection (loss, gradients) that keeps the last good checkpoint, the recipe. */
#include "nltest.h"
#include "nnlab/model.h"
#include "nnlab/safetensors.h"
#include "nnlab/train.h"
#include <sys/stat.h>
#include <unistd.h>

static nl_dataset g_train, g_test; /* 6000 training / 2000 test images */
static char g_dir[64];

static void first_rows(const nl_dataset *src, int64_t n, nl_dataset *out) {
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    NLT_OK(nl_dataset_subset(src, idx, n, out));
    free(idx);
}

static nl_model small_mlp(uint64_t seed) {
    int64_t s[3] = {784, 64, 10};
    nl_model_config cfg = nl_mlp_config(3, s, NL_ACT_RELU, 0.0);
    cfg.input_mean = 0.286;
    cfg.input_std = 0.353;
    nl_model m;
    NLT_OK(nl_model_init(&m, &cfg, seed));
    return m;
}

static nl_train_config quiet_cfg(void) {
    nl_train_config tc = nl_train_defaults();
    tc.verbose = 0;
    tc.epochs = 2;
    tc.batch = 64;
    tc.optim.lr = 2e-3;
    tc.seed = 3;
    return tc;
}

static void test_learns(void) {
    nl_model m = small_mlp(1);
    nl_train_config tc = quiet_cfg();
    tc.epochs = 3;
    nl_train_result r;
    double acc0;
    NLT_OK(nl_evaluate(&m, &g_test, &acc0, NULL));
    NLT_OK(nl_train_run(&m, &g_train, &g_test, &tc, NULL, &r));
    NLT_CHECK(r.n_epochs == 3 && r.steps == 3 * 94 && r.samples == 3 * 6000, "epochs %d steps %lld", r.n_epochs, (long long)r.steps);
    NLT_CHECK(r.valid_accuracy >= 0.80, "test accuracy %.4f after 3 epochs on 6000 images (was %.4f untrained)", r.valid_accuracy, acc0);
    NLT_CHECK(r.epoch[2].train_loss < r.epoch[0].train_loss, "loss went from %g to %g", r.epoch[0].train_loss, r.epoch[2].train_loss);
    for (int e = 0; e < r.n_epochs; e++) {
        NLT_CHECK(r.epoch[e].seconds > 0 && r.epoch[e].samples_per_sec > 0, "epoch %d timing", e);
        NLT_CHECK(r.epoch[e].valid_accuracy > 0.5 && isfinite(r.epoch[e].valid_loss), "epoch %d evaluated", e);
    }
    NLT_CHECK(r.samples_per_sec > 0 && r.train_seconds > 0, "throughput");
    NLT_CHECK(r.n_curve >= 20 && r.curve_step[r.n_curve - 1] == (double)r.steps, "loss curve of %d points", r.n_curve);
    NLT_CHECK(r.steps_per_epoch == 94, "steps per epoch %lld", (long long)r.steps_per_epoch);
    /* nl_evaluate agrees with the last evaluation of the loop */
    double acc, loss;
    NLT_OK(nl_evaluate(&m, &g_test, &acc, &loss));
    NLT_NEAR(acc, r.valid_accuracy, 1e-12);
    NLT_NEAR(loss, r.valid_loss, 1e-9);
    nl_train_result_free(&r);
    nl_model_free(&m);
}

static void test_deterministic_and_steps(void) {
    nl_train_config tc = quiet_cfg();
    tc.epochs = 1;
    nl_train_result r1, r2;
    nl_model a = small_mlp(4), b = small_mlp(4);
    NLT_OK(nl_train_run(&a, &g_train, NULL, &tc, NULL, &r1));
    NLT_OK(nl_train_run(&b, &g_train, NULL, &tc, NULL, &r2));
    NLT_CHECK(!memcmp(a.ps.data, b.ps.data, (size_t)a.ps.total * 4), "same seeds, different weights");
    NLT_CHECK(r1.final_loss == r2.final_loss, "same seeds, different loss");
    NLT_CHECK(isnan(r1.valid_accuracy), "no validation set -> NaN accuracy");
    nl_train_result_free(&r1);
    nl_train_result_free(&r2);
    nl_model_free(&b);
    /* steps mode: crosses an epoch boundary */
    tc.steps = 100;
    tc.optim.sched = NL_SCHED_COSINE;
    NLT_OK(nl_train_run(&a, &g_train, &g_test, &tc, NULL, &r1));
    NLT_CHECK(r1.steps == 100 && r1.n_epochs == 2 && r1.epoch[1].steps == 6, "steps %lld epochs %d", (long long)r1.steps, r1.n_epochs);
    NLT_CHECK(isnan(r1.epoch[0].valid_accuracy) == 0 && isfinite(r1.valid_accuracy), "evaluated");
    nl_train_result_free(&r1);
    nl_model_free(&a);
}

static void test_bad_arguments(void) {
    nl_model m = small_mlp(1);
    nl_train_config tc = quiet_cfg();
    nl_train_result r;
    tc.batch = 0;
    NLT_CHECK(nl_train_run(&m, &g_train, NULL, &tc, NULL, &r) == NL_EINVAL && strstr(r.message, "batch"), "%s", r.message);
    nl_train_result_free(&r);
    tc = quiet_cfg();
    tc.patience = 2;
    NLT_CHECK(nl_train_run(&m, &g_train, NULL, &tc, NULL, &r) == NL_EINVAL && strstr(r.message, "validation"), "%s", r.message);
    nl_train_result_free(&r);
    int64_t s[2] = {100, 10};
    nl_model_config cfg = nl_mlp_config(2, s, NL_ACT_RELU, 0);
    nl_model w;
    NLT_OK(nl_model_init(&w, &cfg, 0));
    tc = quiet_cfg();
    NLT_CHECK(nl_train_run(&w, &g_train, NULL, &tc, NULL, &r) == NL_ESHAPE && strstr(r.message, "784"), "%s", r.message);
    nl_train_result_free(&r);
    nl_model_free(&w);
    nl_model_free(&m);
}

/* ---- early stopping ---- */
static void test_early_stopping(void) {
    nl_model m = small_mlp(2);
    nl_train_config tc = quiet_cfg();
    tc.epochs = 10;
    tc.optim = nl_optim_defaults(NL_OPT_SGD);
    tc.optim.lr = 1e-30; /* nothing changes, so the validation accuracy never improves after epoch 1 */
    tc.patience = 2;
    nl_train_result r;
    NLT_OK(nl_train_run(&m, &g_train, &g_test, &tc, NULL, &r));
    NLT_CHECK(r.stopped_early && r.n_epochs == 3 && r.best_epoch == 1, "stopped %d after %d epochs, best %lld", r.stopped_early, r.n_epochs,
              (long long)r.best_epoch);
    nl_train_result_free(&r);
    nl_model_free(&m);
}

/* ---- NaN / Inf ---- */
typedef struct {
    int64_t at_step;
} blowup;

static nl_status blow_up(void *ud, nl_model *m, nl_optim *o, int64_t step) {
    blowup *b = ud;
    if (step >= b->at_step) {
        o->cfg.kind = NL_OPT_SGD;
        o->cfg.lr = 1e30;
    }
    return NL_OK;
}

static void test_nan_keeps_last_good_checkpoint(void) {
    char ck[128];
    snprintf(ck, sizeof ck, "%s/run.safetensors", g_dir);
    nl_model m = small_mlp(5);
    nl_train_config tc = quiet_cfg();
    tc.epochs = 3;
    tc.checkpoint_path = ck;
    blowup b = {94 + 10}; /* 10 steps into epoch 2 */
    nl_train_callbacks cb = {0};
    cb.ud = &b;
    cb.before_step = blow_up;
    nl_train_result r;
    nl_status s = nl_train_run(&m, &g_train, &g_test, &tc, &cb, &r);
    NLT_CHECK(s == NL_ENONFINITE && r.nonfinite, "status %s: %s", nl_status_name(s), r.message);
    NLT_CHECK(r.bad_step > 104 && r.bad_step <= 2 * 94, "bad step %lld", (long long)r.bad_step);
    char want[64];
    snprintf(want, sizeof want, "step %lld: ", (long long)r.bad_step);
    NLT_CHECK(strstr(r.message, want) && (strstr(r.message, "loss is") || strstr(r.message, "gradient of") || strstr(r.message, "not finite")),
              "message: %s", r.message);
    NLT_CHECK(strstr(r.message, "last good checkpoint") != NULL, "message mentions the checkpoint: %s", r.message);
    NLT_CHECK(!strcmp(nl_last_error(), r.message), "nl_last_error: %s", nl_last_error());
    NLT_CHECK(r.checkpoints == 1 && r.n_epochs == 1, "checkpoints %d epochs %d", r.checkpoints, r.n_epochs);
    /* the checkpoint is the finite model of epoch 1 */
    nl_model l;
    NLT_OK(nl_model_load(&l, ck));
    NLT_CHECK(nl_model_params_finite(&l, NULL), "checkpoint weights finite");
    double acc;
    NLT_OK(nl_evaluate(&l, &g_test, &acc, NULL));
    NLT_NEAR(acc, r.epoch[0].valid_accuracy, 1e-12);
    NLT_CHECK(acc > 0.7, "checkpoint accuracy %.3f", acc);
    nl_st_file f;
    NLT_OK(nl_safetensors_open(ck, &f));
    const char *ep = nl_safetensors_get_metadata(&f, "nnlab.epoch");
    NLT_CHECK(ep && !strcmp(ep, "1"), "checkpoint epoch %s", ep ? ep : "(none)");
    nl_safetensors_close(&f);
    /* no temporary files are left next to it */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp", g_dir);
    FILE *p = popen(cmd, "r");
    int ntmp = -1;
    if (p) {
        if (fscanf(p, "%d", &ntmp) != 1) ntmp = -1;
        pclose(p);
    }
    NLT_CHECK(ntmp == 0, "%d temp files left", ntmp);
    nl_model_free(&l);
    nl_train_result_free(&r);
    nl_model_free(&m);
    unlink(ck);
}

static void test_nan_input_names_step(void) {
    nl_dataset bad;
    first_rows(&g_train, 6000, &bad);
    const int64_t row = 1234;
    bad.x[row * bad.d + 300] = NAN;
    nl_train_config tc = quiet_cfg();
    /* where row 1234 lands in epoch 1 (the batcher's documented permutation) */
    int64_t *perm = malloc(6000 * sizeof *perm), pos = -1;
    nl_rng rng;
    nl_rng_init(&rng, tc.seed, NL_STREAM_BATCHER + 0);
    nl_rng_permutation(&rng, perm, 6000);
    for (int64_t i = 0; i < 6000; i++)
        if (perm[i] == row) pos = i;
    free(perm);
    const int64_t step = pos / tc.batch + 1;
    /* tanh propagates the NaN to the loss (ReLU would map it to 0 and only the gradient of fc1 would be NaN) */
    int64_t sz[3] = {784, 64, 10};
    nl_model_config cfg = nl_mlp_config(3, sz, NL_ACT_TANH, 0.0);
    nl_model m;
    NLT_OK(nl_model_init(&m, &cfg, 6));
    nl_train_result r;
    nl_status s2, s = nl_train_run(&m, &bad, NULL, &tc, NULL, &r);
    char want[96];
    snprintf(want, sizeof want, "step %lld: loss is NaN", (long long)step);
    NLT_CHECK(s == NL_ENONFINITE && !strncmp(r.message, want, strlen(want)), "expected '%s', got %s: '%s'", want, nl_status_name(s), r.message);
    NLT_CHECK(r.bad_step == step && r.steps == step - 1, "bad step %lld, steps %lld", (long long)r.bad_step, (long long)r.steps);
    NLT_CHECK(nl_model_params_finite(&m, NULL), "weights untouched by the NaN step");
    nl_train_result_free(&r);
    nl_model_free(&m);
    /* with ReLU the NaN input shows up as a non-finite gradient of the first layer, at the same step */
    m = small_mlp(6);
    s2 = nl_train_run(&m, &bad, NULL, &tc, NULL, &r);
    snprintf(want, sizeof want, "step %lld: gradient of fc1.weight is not finite", (long long)step);
    NLT_CHECK(s2 == NL_ENONFINITE && !strcmp(r.message, want), "expected '%s', got '%s'", want, r.message);
    nl_train_result_free(&r);
    nl_model_free(&m);
    nl_dataset_free(&bad);
}

/* A loss whose value is finite but whose gradient w.r.t. fc2.weight is NaN: 0 * d sqrt(x)/dx at x = 0. */
static nl_var *poisoned_loss(void *ud, nl_ctx *c, nl_model *m, nl_var *x, nl_var *logits, const int32_t *y, int64_t bs) {
    int64_t *calls = ud;
    nl_var *ce = nl_cross_entropy(c, logits, y, 0.0, -1);
    if (++*calls < 5) return ce;
    nl_var *w = &nl_params_find(&m->ps, "fc2.weight")->var;
    return nl_add(c, ce, nl_sum(c, nl_sqrt(c, nl_mul_scalar(c, w, 0.0)), NL_AXIS_ALL, 0));
}

static void test_nonfinite_gradient_names_tensor(void) {
    nl_model m = small_mlp(7);
    nl_train_config tc = quiet_cfg();
    int64_t calls = 0;
    nl_train_callbacks cb = {0};
    cb.ud = &calls;
    cb.loss = poisoned_loss;
    nl_train_result r;
    nl_status s = nl_train_run(&m, &g_train, NULL, &tc, &cb, &r);
    NLT_CHECK(s == NL_ENONFINITE && !strcmp(r.message, "step 5: gradient of fc2.weight is not finite"), "%s: '%s'", nl_status_name(s), r.message);
    NLT_CHECK(r.steps == 4 && nl_model_params_finite(&m, NULL), "steps %lld", (long long)r.steps);
    nl_train_result_free(&r);
    nl_model_free(&m);
}

/* ---- callbacks ---- */
static int stop_after_3(void *ud, nl_model *m, const nl_train_progress *p) { return p->step >= 3; }

static void test_callbacks(void) {
    nl_model m = small_mlp(8);
    nl_train_config tc = quiet_cfg();
    nl_train_callbacks cb = {0};
    cb.on_step = stop_after_3;
    nl_train_result r;
    NLT_OK(nl_train_run(&m, &g_train, NULL, &tc, &cb, &r));
    NLT_CHECK(r.steps == 3 && r.stopped_by_callback, "steps %lld", (long long)r.steps);
    nl_train_result_free(&r);
    nl_model_free(&m);
}

/* ---- recipe (dataset -> model -> train -> test) with a validation split, restore_best and a checkpoint ---- */
static void test_recipe(void) {
    char ck[128];
    snprintf(ck, sizeof ck, "%s/recipe.safetensors", g_dir);
    nl_recipe rc;
    memset(&rc, 0, sizeof rc);
    rc.dataset = "fashion-mnist";
    rc.limit = 3000;
    rc.n_valid = 1000;
    rc.standardize = 1;
    int64_t s[3] = {784, 32, 10};
    rc.model = nl_mlp_config(3, s, NL_ACT_RELU, 0);
    rc.model_seed = 1;
    rc.train = quiet_cfg();
    rc.train.restore_best = 1;
    rc.train.checkpoint_path = ck;
    nl_model m;
    nl_recipe_result res;
    NLT_OK(nl_recipe_run(&rc, &m, &res));
    NLT_CHECK(res.n_train == 3000 && res.n_valid == 1000 && res.n_test == 10000, "sizes %lld %lld %lld", (long long)res.n_train,
              (long long)res.n_valid, (long long)res.n_test);
    NLT_CHECK(fabs(m.cfg.input_mean - 0.286) < 0.01 && fabs(m.cfg.input_std - 0.353) < 0.01, "standardisation %g %g", m.cfg.input_mean, m.cfg.input_std);
    NLT_CHECK(res.test_accuracy > 0.7, "test accuracy %.3f", res.test_accuracy);
    nl_model l;
    NLT_OK(nl_model_load(&l, ck));
    double acc;
    NLT_OK(nl_evaluate(&l, &g_test, &acc, NULL));
    double acc_m;
    NLT_OK(nl_evaluate(&m, &g_test, &acc_m, NULL));
    NLT_NEAR(acc, acc_m, 1e-12);
    nl_model_free(&l);
    nl_recipe_result_free(&res);
    nl_model_free(&m);
    /* model selection on the test set is refused */
    rc.n_valid = 0;
    NLT_CHECK(nl_recipe_run(&rc, &m, &res) == NL_EINVAL && strstr(nl_last_error(), "validation split"), "%s", nl_last_error());
    nl_recipe_result_free(&res);
    /* a missing dataset names the package */
    rc.data_dir = "/nonexistent-nnlab-dir";
    rc.train.restore_best = 0;
    NLT_CHECK(nl_recipe_run(&rc, &m, &res) == NL_ENOTFOUND && strstr(nl_last_error(), "dataset-fashion-mnist"), "%s", nl_last_error());
    nl_recipe_result_free(&res);
    unlink(ck);
}

/* OpenMP's default spin-waiting fights OpenBLAS's threads on small machines (training several times slower on
 * 2 cores); the policy is read when libgomp loads, so set it and re-execute once (as the nnlab CLI does). */
static void passive_omp(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("NL_NO_REEXEC")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv("NL_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
    (void)argc;
    passive_omp(argv);
    nl_threads_init();
    nl_dataset full, test;
    if (nl_dataset_load(&full, "fashion-mnist", "train", NULL) != NL_OK) NLT_SKIP_ALL(nl_last_error());
    if (nl_dataset_load(&test, "fashion-mnist", "test", NULL) != NL_OK) NLT_SKIP_ALL(nl_last_error());
    first_rows(&full, 6000, &g_train);
    first_rows(&test, 2000, &g_test);
    nl_dataset_free(&full);
    nl_dataset_free(&test);
    snprintf(g_dir, sizeof g_dir, "/tmp/nltest_train_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    NLT_RUN(test_learns);
    NLT_RUN(test_deterministic_and_steps);
    NLT_RUN(test_bad_arguments);
    NLT_RUN(test_early_stopping);
    NLT_RUN(test_nan_keeps_last_good_checkpoint);
    NLT_RUN(test_nan_input_names_step);
    NLT_RUN(test_nonfinite_gradient_names_tensor);
    NLT_RUN(test_callbacks);
    NLT_RUN(test_recipe);
    rmdir(g_dir);
    nl_dataset_free(&g_train);
    nl_dataset_free(&g_test);
    return nlt_finish();
}
