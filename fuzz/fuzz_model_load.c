/* fuzz/fuzz_model_load.c — the engine's checkpoint loader (nl_model_load: metadata -> architecture -> model ->
 * tensors, MLP and CNN) on the fuzz input as a file, plus nl_model_config_from_file. A loaded model is freed. */
#include "fuzz_common.h"
#include "nnlab/model.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    nl_fuzz_init("model_load");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = nl_fuzz_write(data, size);
    if (!path) return 0;
    nl_model_config cfg;
    (void)nl_model_config_from_file(path, &cfg);
    nl_model m;
    if (nl_model_load(&m, path) != NL_OK) return 0;
    if (m.ps.n < 1) abort();
    (void)nl_model_params_finite(&m, NULL);
    (void)nl_model_num_params(&m, 0);
    nl_model_free(&m);
    return 0;
}
