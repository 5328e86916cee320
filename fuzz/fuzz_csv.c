/* fuzz/fuzz_csv.c — the CSV reader (nl_csv_read) on the fuzz input as a file, with the flag sets a caller uses:
 * automatic header detection; forced header + non-finite values allowed; no header. An accepted table must have
 * rows x cols finite numbers (unless allowed) and cols header names when it has a header. */
#include <math.h>
#include "fuzz_common.h"
#include "nnlab/data.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    nl_fuzz_init("csv");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = nl_fuzz_write(data, size);
    if (!path) return 0;
    static const int flags[3] = {0, NL_CSV_HEADER | NL_CSV_ALLOW_NONFINITE, NL_CSV_NO_HEADER};
    for (int k = 0; k < 3; k++) {
        nl_csv c;
        if (nl_csv_read(path, &c, flags[k]) != NL_OK) continue;
        if (c.rows < 1 || c.cols < 1) abort();
        for (int64_t i = 0; i < c.rows * c.cols; i++)
            if (!(flags[k] & NL_CSV_ALLOW_NONFINITE) && !isfinite(c.data[i])) abort();
        if (c.header)
            for (int64_t j = 0; j < c.cols; j++)
                if (!c.header[j]) abort();
        if ((flags[k] & NL_CSV_NO_HEADER) && c.header) abort();
        nl_csv_free(&c);
    }
    return 0;
}
