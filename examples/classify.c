/* Load a checkpoint written by example_train_mlp (or `nnlab train --save`) and classify one Fashion-MNIST test
 * image.   usage: example_classify CHECKPOINT.safetensors [TEST_INDEX] */
#include <nnlab/nnlab.h>
#include <nnlab/data.h>
#include <nnlab/model.h>
#include <nnlab/train.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s CHECKPOINT [TEST_INDEX]\n", argv[0]); return 2; }
    long idx = argc > 2 ? atol(argv[2]) : 0;
    nl_model model;
    if (nl_model_load(&model, argv[1])) { fprintf(stderr, "error: %s\n", nl_last_error()); return 1; }
    nl_dataset test;
    if (nl_dataset_load(&test, "fashion-mnist", "test", NULL)) { fprintf(stderr, "error: %s\n", nl_last_error()); return 1; }
    if (idx < 0 || idx >= test.n) {
        fprintf(stderr, "error: TEST_INDEX must be in [0, %lld)\n", (long long)test.n);
        nl_dataset_free(&test);
        nl_model_free(&model);
        return 2;
    }

    int32_t pred;
    if (nl_model_predict(&model, test.x + idx * test.d, 1, &pred)) { fprintf(stderr, "error: %s\n", nl_last_error()); return 1; }
    int32_t truth = test.y[idx];
    printf("image %ld: predicted %d (%s), true %d (%s)%s\n", idx, pred, fashion_names[pred % 10], truth,
           fashion_names[truth % 10], pred == truth ? "" : "  [wrong]");
    nl_dataset_free(&test);
    nl_model_free(&model);
    return 0;
}
