/* Checking an open safetensors file against a parameter store (a real one or a layout-only one) before anything is
 * allocated for it, and copying the checked tensors in. Same rules and messages as nl_safetensors_load_params. */
#include "nnlab/safetensors.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static void shape_txt(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++) k += (size_t)snprintf(buf + k, n - k, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

nl_status nl_safetensors_check_params(const nl_st_file *f, const nl_params *ps, int strict) {
    if (!f || !ps) return nl_set_error(NL_EINVAL, "safetensors_check_params: NULL argument");
    const char *path = f->path ? f->path : "checkpoint";
    nl_st_dtype want = nl_st_dtype_of(ps->dtype);
    for (int i = 0; i < f->n; i++) {
        const nl_st_tensor *t = &f->t[i];
        if (!strncmp(t->name, "train.", 6)) continue; /* training state of a resumable checkpoint (train.h) */
        const nl_param *p = nl_params_find(ps, t->name);
        if (!p) {
            if (strict)
                return nl_set_error(NL_EFORMAT, "load %s: tensor '%s' has no matching parameter (strict load)", path, t->name);
            continue;
        }
        if (t->dtype != want)
            return nl_set_error(NL_EDTYPE, "load %s: tensor '%s' has dtype %s but the parameter store holds %s", path, t->name,
                                nl_st_dtype_name(t->dtype), nl_st_dtype_name(want));
        const nl_tensor *v = &p->var.val;
        int same = t->ndim == v->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == v->shape[d];
        if (!same || t->end - t->begin != (uint64_t)p->numel * nl_dtype_size(ps->dtype)) {
            char a[160], b[160];
            shape_txt(a, sizeof a, t->ndim, t->shape);
            shape_txt(b, sizeof b, v->ndim, v->shape);
            return nl_set_error(NL_ESHAPE, "load %s: tensor '%s' has shape %s but the parameter has shape %s", path, t->name, a, b);
        }
    }
    if (strict)
        for (int j = 0; j < ps->n; j++)
            if (!nl_safetensors_find(f, ps->p[j]->name))
                return nl_set_error(NL_EFORMAT, "load %s: parameter '%s' is missing from the file (strict load)", path, ps->p[j]->name);
    return NL_OK;
}

nl_status nl_safetensors_copy_params(const nl_st_file *f, nl_params *ps, int strict, int *n_loaded) {
    if (n_loaded) *n_loaded = 0;
    nl_status st = nl_safetensors_check_params(f, ps, strict);
    if (st) return st;
    if (!ps->data) return nl_set_error(NL_ESTATE, "load %s: the parameter store is layout-only (no values)", f->path);
    int cnt = 0;
    for (int i = 0; i < f->n; i++) {
        const nl_param *p = nl_params_find(ps, f->t[i].name);
        if (!p) continue;
        memcpy((char *)ps->data + (size_t)p->offset * nl_dtype_size(ps->dtype), f->t[i].data, (size_t)(f->t[i].end - f->t[i].begin));
        cnt++;
    }
    if (n_loaded) *n_loaded = cnt;
    return NL_OK;
}

nl_status nl_safetensors_check_finite(const nl_st_file *f) {
    for (int i = 0; i < f->n; i++) {
        const nl_st_tensor *t = &f->t[i];
        if (t->dtype != NL_ST_F32 && t->dtype != NL_ST_F64) continue;
        const unsigned char *b = t->data;
        const size_t es = t->dtype == NL_ST_F64 ? 8 : 4;
        for (int64_t k = 0; k < t->numel; k++) {
            double v;
            if (es == 8) {
                memcpy(&v, b + (size_t)k * 8, 8); /* the data may be unaligned */
            } else {
                float x;
                memcpy(&x, b + (size_t)k * 4, 4);
                v = x;
            }
            if (!isfinite(v))
                return nl_set_error(NL_EFORMAT, "%s: tensor '%s' holds a non-finite value (%g at element %lld); refused (pass "
                                                "--allow-nonfinite / NL_LOAD_ALLOW_NONFINITE to load it anyway)",
                                    f->path ? f->path : "checkpoint", t->name, v, (long long)k);
        }
    }
    return NL_OK;
}
