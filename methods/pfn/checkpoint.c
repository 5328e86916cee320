/* PFN checkpoints: safetensors with the configuration and prior in __metadata__ and the bucket borders as an F64
 * tensor (include/pfn/pfn.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pfn/pfn.h"
#include "nnlab/safetensors.h"

nl_status nl_pfn_save(const nl_pfn *m, const char *path) {
    const nl_pfn_config *c = &m->cfg;
    nl_st_meta mb;
    nl_st_meta *o = &mb;
    if (nl_st_meta_init(o)) return o->status;
    nl_st_meta_put_str(o, "nnlab.model", "pfn");
    nl_st_meta_put_int(o, "pfn.dim", c->dim);
    nl_st_meta_put_int(o, "pfn.emsize", c->emsize);
    nl_st_meta_put_int(o, "pfn.layers", c->n_layers);
    nl_st_meta_put_int(o, "pfn.heads", c->n_heads);
    nl_st_meta_put_int(o, "pfn.d_ff", c->d_ff);
    nl_st_meta_put_int(o, "pfn.d_dec", c->d_dec);
    nl_st_meta_put_int(o, "pfn.buckets", c->n_buckets);
    nl_st_meta_put_int(o, "pfn.pre_norm", c->pre_norm);
    nl_st_meta_put_int(o, "pfn.seq", c->seq);
    nl_st_meta_put_int(o, "pfn.steps_trained", m->steps_trained);
    nl_st_meta_put_str(o, "pfn.prior", m->prior_name);
    nl_st_meta_put_str(o, "pfn.prior_desc", m->prior_desc);
    nl_st_meta_put_num(o, "pfn.prior_ls", m->prior_ls);
    nl_st_meta_put_num(o, "pfn.prior_os", m->prior_os);
    nl_st_meta_put_num(o, "pfn.prior_noise", m->prior_noise);
    char *meta = nl_st_meta_json(o);
    nl_st_meta_free(o);
    int n = m->ps.n + 1;
    nl_st_entry *e = NULL;
    int64_t kb = m->bar.K + 1;
    nl_status st;
    if (!meta) {
        st = o->status;
        goto done;
    }
    if (!(e = calloc((size_t)n, sizeof *e))) {
        st = nl_set_error(NL_ENOMEM, "pfn save: out of memory");
        goto done;
    }
    for (int i = 0; i < m->ps.n; i++) {
        const nl_param *p = m->ps.p[i];
        e[i].name = p->name;
        e[i].dtype = NL_ST_F32;
        e[i].ndim = p->var.val.ndim;
        e[i].shape = p->var.val.shape;
        e[i].data = p->var.val.data;
    }
    e[n - 1].name = "bar.borders";
    e[n - 1].dtype = NL_ST_F64;
    e[n - 1].ndim = 1;
    e[n - 1].shape = &kb;
    e[n - 1].data = m->bar.borders;
    st = nl_safetensors_write(path, e, n, meta);
done:
    free(e);
    free(meta);
    return st;
}

static nl_status check_layout(const nl_st_file *f, const nl_params *lay, const char *path) {
    if (f->n != lay->n + 1)
        return nl_set_error(NL_EFORMAT, "%s: PFN checkpoint has %d tensors, the configuration needs %d", path, f->n, lay->n + 1);
    for (int i = 0; i < lay->n; i++) {
        const nl_param *p = lay->p[i];
        const nl_st_tensor *t = nl_safetensors_find(f, p->name);
        if (!t) return nl_set_error(NL_EFORMAT, "%s: PFN checkpoint lacks tensor \"%s\"", path, p->name);
        int ok = t->ndim == p->var.val.ndim && t->numel == p->numel && t->dtype != NL_ST_F8_E4M3 && t->dtype != NL_ST_F8_E5M2;
        for (int k = 0; ok && k < t->ndim; k++) ok = t->shape[k] == p->var.val.shape[k];
        if (!ok) return nl_set_error(NL_ESHAPE, "%s: tensor \"%s\" has the wrong shape or dtype for this configuration", path, p->name);
    }
    return NL_OK;
}

static nl_status meta_int(const nl_st_file *f, const char *key, int lo, int hi, int *out) {
    long long v;
    nl_status st = nl_safetensors_metadata_int(f, key, lo, hi, &v);
    if (!st) *out = (int)v;
    return st;
}

nl_status nl_pfn_load_opt(nl_pfn *m, const char *path, unsigned flags) {
    memset(m, 0, sizeof *m);
    nl_st_file f;
    nl_status st = nl_safetensors_open(path, &f);
    if (st) return st;
    const char *kind = nl_safetensors_get_metadata(&f, "nnlab.model");
    if (!kind || strcmp(kind, "pfn")) {
        st = nl_set_error(NL_EFORMAT, "%s is not a PFN checkpoint (its __metadata__ has %s%s%s, expected \"nnlab.model\" = \"pfn\")",
                          path, kind ? "\"nnlab.model\" = \"" : "no \"nnlab.model\" entry", kind ? kind : "", kind ? "\"" : "");
        goto done;
    }
    nl_pfn_config c = nl_pfn_config_default();
    int steps = 0;
    if ((st = meta_int(&f, "pfn.dim", 1, NL_PFN_MAX_DIM, &c.dim)) || (st = meta_int(&f, "pfn.emsize", 1, 4096, &c.emsize)) ||
        (st = meta_int(&f, "pfn.layers", 1, NL_PFN_MAX_LAYERS, &c.n_layers)) || (st = meta_int(&f, "pfn.heads", 1, 4096, &c.n_heads)) ||
        (st = meta_int(&f, "pfn.d_ff", 1, 65536, &c.d_ff)) || (st = meta_int(&f, "pfn.d_dec", 1, 65536, &c.d_dec)) ||
        (st = meta_int(&f, "pfn.buckets", 2, 100000, &c.n_buckets)) || (st = meta_int(&f, "pfn.pre_norm", 0, 1, &c.pre_norm)) ||
        (st = meta_int(&f, "pfn.seq", 2, 100000, &c.seq)) || (st = meta_int(&f, "pfn.steps_trained", 0, 2147483647, &steps)))
        goto done;
    /* the tensors against the configuration before anything of its size is allocated: the file must hold exactly
     * the configuration's parameters (F32 or any numeric dtype converted to it) plus "bar.borders" */
    nl_params lay;
    if ((st = nl_pfn_layout(&c, &lay))) {
        st = nl_set_error(NL_EFORMAT, "%s: the configuration in the metadata is invalid: %s", path, nl_last_error());
        goto done;
    }
    st = check_layout(&f, &lay, path);
    nl_params_free(&lay);
    if (st) goto done;
    if (!(flags & NL_LOAD_ALLOW_NONFINITE) && (st = nl_safetensors_check_finite(&f))) goto done;
    const nl_st_tensor *bt = nl_safetensors_find(&f, "bar.borders");
    if (!bt || bt->ndim != 1 || bt->shape[0] != c.n_buckets + 1) {
        st = nl_set_error(NL_EFORMAT, "%s: PFN checkpoint lacks tensor \"bar.borders\" of shape [%d]", path, c.n_buckets + 1);
        goto done;
    }
    double *bd = malloc((size_t)(c.n_buckets + 1) * sizeof *bd);
    if (!bd) {
        st = nl_set_error(NL_ENOMEM, "pfn load: out of memory");
        goto done;
    }
    if ((st = nl_st_tensor_convert(bt, bd, NL_F64))) {
        free(bd);
        goto done;
    }
    st = nl_pfn_init(m, &c, bd, 0);
    free(bd);
    if (st) goto done;
    m->steps_trained = steps;
    const char *pn = nl_safetensors_get_metadata(&f, "pfn.prior"), *pd = nl_safetensors_get_metadata(&f, "pfn.prior_desc");
    snprintf(m->prior_name, sizeof m->prior_name, "%s", pn ? pn : "unknown");
    snprintf(m->prior_desc, sizeof m->prior_desc, "%s", pd ? pd : "");
    const char *hk[3] = {"pfn.prior_ls", "pfn.prior_os", "pfn.prior_noise"}; /* optional: 0 when absent */
    double *hd[3] = {&m->prior_ls, &m->prior_os, &m->prior_noise};
    for (int k = 0; k < 3; k++) {
        *hd[k] = 0.0;
        if (nl_safetensors_get_metadata(&f, hk[k]) && (st = nl_safetensors_metadata_num(&f, hk[k], hd[k]))) goto fail;
    }
    for (int i = 0; i < m->ps.n; i++) { /* names and shapes were checked above */
        nl_param *p = m->ps.p[i];
        if ((st = nl_st_tensor_convert(nl_safetensors_find(&f, p->name), p->var.val.data, NL_F32))) goto fail;
    }
    /* a finite F64 / integer value can still overflow F32 */
    if (!(flags & NL_LOAD_ALLOW_NONFINITE) && (st = nl_params_check_finite(&m->ps, path))) goto fail;
    goto done;
fail:
    nl_pfn_free(m);
done:
    nl_safetensors_close(&f);
    return st;
}

nl_status nl_pfn_load(nl_pfn *m, const char *path) { return nl_pfn_load_opt(m, path, 0); }
