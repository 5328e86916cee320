/* fuzz/fuzz_idx.c — the IDX reader (nl_idx_read) on the fuzz input as a file: raw IDX, or gzip when it starts
 * with 1f 8b (inflated with zlib). An accepted file must describe itself consistently. */
#include "fuzz_common.h"
#include "nnlab/data.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    nl_fuzz_init("idx");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = nl_fuzz_write(data, size);
    if (!path) return 0;
    nl_idx m;
    if (nl_idx_read(path, &m) != NL_OK) return 0;
    int64_t n = 1;
    for (int i = 0; i < m.ndim; i++) n *= m.dims[i];
    if (m.ndim < 1 || m.ndim > NL_IDX_MAXDIM || n != m.numel || m.numel > NL_IDX_MAX_ELEMS) abort();
    volatile uint8_t sink = 0;
    sink ^= m.data[0];
    sink ^= m.data[m.numel - 1];   /* the whole buffer is addressable */
    (void)sink;
    nl_idx_free(&m);
    return 0;
}
