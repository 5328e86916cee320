/* fuzz/fuzz_lm_load.c — the transformer library's checkpoint loader (nl_lm_load: metadata -> nl_lm_config ->
 * model -> tensors) on the fuzz input as a file. The lminf attention kind is provided (as the nnlab program does)
 * so its checkpoints load too. A loaded model is freed. */
#include "fuzz_common.h"
#include "transformer/transformer.h"
#include "lm_infinite/lm_infinite.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    nl_fuzz_init("lm_load");
    nl_lm_infinite_register();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = nl_fuzz_write(data, size);
    if (!path) return 0;
    nl_lm m;
    if (nl_lm_load(&m, path) != NL_OK) return 0;
    (void)nl_lm_num_params(&m);
    nl_lm_free(&m);
    return 0;
}
