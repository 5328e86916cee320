/* Train a small MLP on a subset of Fashion-MNIST through the public API, print the test accuracy and save a
 * checkpoint.   usage: example_train_mlp CHECKPOINT.safetensors [TRAIN_EXAMPLES] */
#include <nnlab/nnlab.h>
#include <nnlab/data.h>
#include <nnlab/model.h>
#include <nnlab/train.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s CHECKPOINT [TRAIN_EXAMPLES]\n", argv[0]); return 2; }
    int64_t n_train = argc > 2 ? atoll(argv[2]) : 10000;
    nl_threads_init();                                    /* NL_NUM_THREADS or all cores */
    nl_dataset full, train, test;
    if (nl_dataset_load(&full, "fashion-mnist", "train", NULL) || nl_dataset_load(&test, "fashion-mnist", "test", NULL)) {
        fprintf(stderr, "error: %s\n", nl_last_error());  /* names the package to install */
        return 1;
    }
    int64_t *idx = malloc((size_t)n_train * sizeof *idx); /* the first n_train training images */
    for (int64_t i = 0; i < n_train; i++) idx[i] = i;
    if (nl_dataset_subset(&full, idx, n_train, &train)) { fprintf(stderr, "error: %s\n", nl_last_error()); return 1; }

    int64_t sizes[] = {784, 256, 10};                     /* 784 -> 256 -> 10, ReLU, no dropout */
    nl_model_config mc = nl_mlp_config(3, sizes, NL_ACT_RELU, 0.0);
    nl_model model;
    if (nl_model_init(&model, &mc, 42)) { fprintf(stderr, "error: %s\n", nl_last_error()); return 1; }

    nl_train_config tc = nl_train_defaults();             /* Adam lr 1e-3, batch 128 */
    tc.epochs = 3;
    tc.seed = 42;
    tc.verbose = 0;                                       /* 1: progress bar on stderr */
    nl_train_result res;
    if (nl_train_run(&model, &train, NULL, &tc, NULL, &res)) { fprintf(stderr, "error: %s\n", nl_last_error()); return 1; }

    double acc, loss;
    nl_evaluate(&model, &test, &acc, &loss);
    printf("test accuracy: %.2f%% (loss %.4f) after %lld steps, %.0f samples/s\n", 100 * acc, loss, (long long)res.steps, res.samples_per_sec);
    if (nl_model_save(&model, argv[1], 0, NULL, NULL)) { fprintf(stderr, "error: %s\n", nl_last_error()); return 1; }
    printf("saved %s\n", argv[1]);

    nl_train_result_free(&res);
    nl_model_free(&model);
    nl_dataset_free(&full); nl_dataset_free(&train); nl_dataset_free(&test);
    free(idx);
    return 0;
}
