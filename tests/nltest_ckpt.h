/* Hostile checkpoints for the loader tests: copy a real checkpoint with one __metadata__ value replaced (or
 * dropped) and/or one element of a tensor poisoned, so every test makes its own input in a temp dir. */
#ifndef NLTEST_CKPT_H
#define NLTEST_CKPT_H
#include "nnlab/safetensors.h"
#include <stdlib.h>
#include <string.h>

/* src -> dst with metadata key = val (val NULL: key dropped; key NULL: metadata unchanged), and element 0 of
 * tensor `poison` (F32/F64, may be NULL) set to pv. Returns the nl_status of the write. */
static inline nl_status nlt_ckpt_rewrite(const char *src, const char *dst, const char *key, const char *val, const char *poison,
                                         double pv) {
    nl_st_file f;
    nl_status st = nl_safetensors_open(src, &f);
    if (st) return st;
    nl_st_meta m;
    nl_st_meta_init(&m);
    for (int i = 0; i < f.n_meta; i++)
        if (!key || strcmp(f.meta_key[i], key)) nl_st_meta_put_str(&m, f.meta_key[i], f.meta_val[i]);
    if (key && val) nl_st_meta_put_str(&m, key, val);
    char *js = nl_st_meta_json(&m);
    nl_st_meta_free(&m);
    nl_st_entry *e = calloc((size_t)f.n, sizeof *e);
    void **copies = calloc((size_t)f.n, sizeof *copies);
    for (int i = 0; i < f.n; i++) {
        const nl_st_tensor *t = &f.t[i];
        e[i].name = t->name;
        e[i].dtype = t->dtype;
        e[i].ndim = t->ndim;
        e[i].shape = t->shape;
        e[i].data = t->data;
        if (poison && !strcmp(poison, t->name) && t->numel > 0) {
            size_t nb = (size_t)(t->end - t->begin);
            copies[i] = malloc(nb);
            memcpy(copies[i], t->data, nb);
            if (t->dtype == NL_ST_F32) {
                float x = (float)pv;
                memcpy(copies[i], &x, 4);
            } else if (t->dtype == NL_ST_F64) {
                memcpy(copies[i], &pv, 8);
            }
            e[i].data = copies[i];
        }
    }
    st = js ? nl_safetensors_write(dst, e, f.n, js) : NL_ENOMEM;
    for (int i = 0; i < f.n; i++) free(copies[i]);
    free(copies);
    free(e);
    free(js);
    nl_safetensors_close(&f);
    return st;
}
#endif
