/* fuzz/fuzz_common.h — shared by the libFuzzer targets: one thread, and the fuzz input written to a temp file for
 * the loaders that take a path. Each process has its own file (pid in the name), removed at exit. */
#ifndef NL_FUZZ_COMMON_H
#define NL_FUZZ_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "nnlab/base.h"

static char nl_fuzz_path[512];

static inline void nl_fuzz_cleanup(void) {
    if (nl_fuzz_path[0]) unlink(nl_fuzz_path);
}

/* Called from LLVMFuzzerInitialize: one thread (the loaders are single-threaded; OpenMP pools only cost time),
 * the temp file name. */
static inline void nl_fuzz_init(const char *target) {
    nl_set_num_threads(1);
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    snprintf(nl_fuzz_path, sizeof nl_fuzz_path, "%s/nl_fuzz_%s_%ld", dir, target, (long)getpid());
    atexit(nl_fuzz_cleanup);
}

/* Write the input to the temp file; returns its path, or NULL if it could not be written (input skipped). */
static inline const char *nl_fuzz_write(const uint8_t *data, size_t size) {
    FILE *f = fopen(nl_fuzz_path, "wb");
    if (!f) return NULL;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    if (fclose(f) != 0 || w != size) return NULL;
    return nl_fuzz_path;
}
#endif
