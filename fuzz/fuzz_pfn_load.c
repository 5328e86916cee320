/* fuzz/fuzz_pfn_load.c — the PFN method's checkpoint loader (nl_pfn_load: "pfn.*" metadata, bucket borders,
 * prior description, tensors) on the fuzz input as a file. A loaded model is freed. */
#include "fuzz_common.h"
#include "pfn/pfn.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    nl_fuzz_init("pfn_load");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = nl_fuzz_write(data, size);
    if (!path) return 0;
    nl_pfn m;
    if (nl_pfn_load(&m, path) != NL_OK) return 0;
    (void)nl_pfn_num_params(&m);
    nl_pfn_free(&m);
    return 0;
}
