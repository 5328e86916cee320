/* fuzz/fuzz_safetensors.c — the safetensors reader from memory (nl_safetensors_parse: 8-byte length, JSON header,
 * tensor table, metadata, data section), then everything a loader does with an accepted file: look up each
 * tensor, read each metadata value through the strict getters, convert each tensor to f32 and f64. */
#include "fuzz_common.h"
#include "nnlab/safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    nl_fuzz_init("safetensors");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nl_st_file f;
    if (nl_safetensors_parse(data, size, "fuzz", &f) != NL_OK) return 0;
    for (int i = 0; i < f.n; i++) {
        const nl_st_tensor *t = &f.t[i];
        if (nl_safetensors_find(&f, t->name) == NULL) abort();   /* every listed tensor must be found by name */
        if (t->numel < 0 || t->end < t->begin || t->end > f.data_len) abort();
        /* the data section bounds the element count (zero-size shapes aside), so this stays small */
        void *dst = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(double));
        if (!dst) continue;
        (void)nl_st_tensor_convert(t, dst, NL_F32);
        (void)nl_st_tensor_convert(t, dst, NL_F64);
        free(dst);
    }
    for (int i = 0; i < f.n_meta; i++) {
        const char *k = f.meta_key[i], *v = NULL;
        long long iv;
        double dv;
        int64_t list[16];
        int nl;
        if (nl_safetensors_get_metadata(&f, k) == NULL) abort();
        (void)nl_safetensors_metadata_str(&f, k, &v);
        (void)nl_safetensors_metadata_int(&f, k, -1000000, 1000000, &iv);
        (void)nl_safetensors_metadata_num(&f, k, &dv);
        (void)nl_safetensors_metadata_ints(&f, k, 0, 1 << 20, 16, list, &nl);
    }
    nl_safetensors_close(&f);
    return 0;
}
