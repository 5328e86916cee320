/* The standard recipe: dataset -> model -> train -> test. */
#include "nnlab/train.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nl_recipe_result_free(nl_recipe_result *res) {
    if (res) nl_train_result_free(&res->train);
}

static nl_status keep_first(nl_dataset *ds, int64_t limit) {
    if (limit <= 0 || limit >= ds->n) return NL_OK;
    int64_t *idx = malloc((size_t)limit * sizeof *idx);
    if (!idx) return nl_set_error(NL_ENOMEM, "recipe: out of memory");
    for (int64_t i = 0; i < limit; i++) idx[i] = i;
    nl_dataset sub;
    nl_status s = nl_dataset_subset(ds, idx, limit, &sub);
    free(idx);
    if (s) return s;
    nl_dataset_free(ds);
    *ds = sub;
    return NL_OK;
}

nl_status nl_recipe_run(const nl_recipe *r, nl_model *m, nl_recipe_result *res) {
    memset(res, 0, sizeof *res);
    memset(m, 0, sizeof *m);
    res->test_accuracy = res->test_loss = NAN;
    res->train.valid_accuracy = res->train.valid_loss = res->train.best_valid_accuracy = NAN;
    nl_dataset full = {0}, train = {0}, valid = {0}, test = {0};
    nl_status s;
    double t0 = nl_time();
    if ((s = nl_dataset_load(&full, r->dataset, "train", r->data_dir))) return s;
    if ((s = nl_dataset_load(&test, r->dataset, "test", r->data_dir))) goto out;
    res->load_seconds = nl_time() - t0;
    if (r->n_valid < 0 || r->n_valid >= full.n) {
        s = nl_set_error(NL_EINVAL, "recipe: the validation split (%lld) must be in [0, %lld)", (long long)r->n_valid, (long long)full.n);
        goto out;
    }
    if (r->n_valid == 0 && (r->train.patience > 0 || r->train.restore_best)) {
        s = nl_set_error(NL_EINVAL, "recipe: early stopping and restore_best need a validation split (n_valid > 0); the test set is never used for model selection");
        goto out;
    }
    if (r->limit < 0) {
        s = nl_set_error(NL_EINVAL, "recipe: limit %lld must be >= 0", (long long)r->limit);
        goto out;
    }
    if (r->n_valid > 0) {
        if ((s = nl_dataset_split(&full, r->n_valid, r->train.seed, &train, &valid))) goto out;
        nl_dataset_free(&full);
    } else {
        train = full;
        memset(&full, 0, sizeof full);
    }
    if ((s = keep_first(&train, r->limit))) goto out;
    if (r->test_limit > 0 && (s = keep_first(&test, r->test_limit))) goto out;
    if (r->shuffle_labels && train.n > 1) {
        int64_t *perm = malloc((size_t)train.n * sizeof *perm);
        int32_t *y = malloc((size_t)train.n * sizeof *y);
        if (!perm || !y) {
            free(perm);
            free(y);
            s = nl_set_error(NL_ENOMEM, "recipe: out of memory");
            goto out;
        }
        nl_rng g;
        nl_rng_init(&g, r->train.seed, NL_STREAM_LABELS);
        nl_rng_permutation(&g, perm, train.n);
        for (int64_t i = 0; i < train.n; i++) y[i] = train.y[perm[i]];
        memcpy(train.y, y, (size_t)train.n * sizeof *y);
        free(perm);
        free(y);
    }
    res->n_train = train.n;
    res->n_valid = valid.n;
    res->n_test = test.n;

    nl_model_config mc = r->model;
    if (mc.kind == NL_MODEL_MLP && mc.n_sizes >= 1 && mc.sizes[0] != train.d) {
        s = nl_set_error(NL_ESHAPE, "recipe: the MLP's input size %lld differs from the %lld features of %s", (long long)mc.sizes[0], (long long)train.d, r->dataset);
        goto out;
    }
    if (mc.kind == NL_MODEL_CNN && (int64_t)mc.in_channels * mc.in_height * mc.in_width != train.d) {
        s = nl_set_error(NL_ESHAPE, "recipe: the CNN's input %dx%dx%d does not match %s (%dx%dx%d)", mc.in_channels, mc.in_height, mc.in_width,
                         r->dataset, train.channels, train.height, train.width);
        goto out;
    }
    if (r->standardize) {
        double sum = 0, sq = 0;
        const int64_t n = train.n * train.d;
        for (int64_t i = 0; i < n; i++) {
            sum += train.x[i];
            sq += (double)train.x[i] * train.x[i];
        }
        double mean = sum / (double)n, var = sq / (double)n - mean * mean;
        mc.input_mean = mean;
        mc.input_std = var > 1e-12 ? sqrt(var) : 1.0;
    }
    if ((s = nl_model_init(m, &mc, r->model_seed))) goto out;
    nl_train_config tc = r->train;
    if (!tc.valid_name) tc.valid_name = valid.n ? "valid" : "test";
    s = nl_train_run(m, &train, valid.n ? &valid : &test, &tc, NULL, &res->train);
    if (s) goto out;
    if (valid.n) {
        if ((s = nl_evaluate(m, &test, &res->test_accuracy, &res->test_loss))) goto out;
    } else {
        res->test_accuracy = res->train.valid_accuracy;
        res->test_loss = res->train.valid_loss;
    }
out:
    if (s && s != NL_ENONFINITE) nl_model_free(m);
    nl_dataset_free(&full);
    nl_dataset_free(&train);
    nl_dataset_free(&valid);
    nl_dataset_free(&test);
    return s;
}
