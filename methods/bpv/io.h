/* methods/bpv/io.h — the `nnlab bpv` model file (io.c). */
#ifndef NL_BPV_IO_H
#define NL_BPV_IO_H
#include "bpv/bpv.h"

typedef struct nl_bpv_file {
    nl_bpv_model model;
    nl_text_vocab vocab; /* the model's vocabulary with training counts */
    int64_t n_db;
    uint64_t *codes;     /* [n_db, (bits + 63) / 64] */
    char **text;         /* [n_db] the documents' tokens, space-separated (at most 300 bytes) */
} nl_bpv_file;

nl_status nl_bpv_file_save(const char *path, const nl_bpv_file *b);
nl_status nl_bpv_file_load(const char *path, nl_bpv_file *b);
void nl_bpv_file_free(nl_bpv_file *b);

#endif
