/* Model checkpoints: safetensors tensors + the architecture in __metadata__. */
#include "nnlab/model.h"
#include "nnlab/safetensors.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *nl_model_metadata_json(const nl_model *m, int n_extra, const char *const *keys, const char *const *vals) {
    const nl_model_config *c = &m->cfg;
    nl_st_meta o;
    if (nl_st_meta_init(&o)) return NULL;
    nl_st_meta_put_str(&o, "nnlab.model", nl_model_kind_name(c->kind));
    nl_st_meta_put_str(&o, "nnlab.format", "1");
    nl_st_meta_put_str(&o, "nnlab.dtype", nl_dtype_name(c->dtype));
    nl_st_meta_put_int(&o, "nnlab.classes", c->n_classes);
    nl_st_meta_put_str(&o, "nnlab.activation", nl_activation_name(c->act));
    nl_st_meta_put_num(&o, "nnlab.dropout", c->dropout);
    nl_st_meta_put_num(&o, "nnlab.input_mean", c->input_mean);
    nl_st_meta_put_num(&o, "nnlab.input_std", c->input_std);
    if (c->kind == NL_MODEL_MLP) {
        nl_st_meta_put_ints(&o, "nnlab.sizes", c->n_sizes, c->sizes);
        if (c->batchnorm) { /* absent in plain MLP checkpoints (older files stay byte-identical) */
            nl_st_meta_put_int(&o, "nnlab.batchnorm", 1);
            nl_st_meta_put_num(&o, "nnlab.bn_momentum", c->bn_momentum);
            nl_st_meta_put_num(&o, "nnlab.bn_eps", c->bn_eps);
        }
    } else {
        int64_t g[3] = {c->in_channels, c->in_height, c->in_width}, ch[NL_MODEL_MAX_BLOCKS];
        for (int i = 0; i < c->n_blocks; i++) ch[i] = c->channels[i];
        nl_st_meta_put_ints(&o, "nnlab.input", 3, g);
        nl_st_meta_put_ints(&o, "nnlab.channels", c->n_blocks, ch);
        nl_st_meta_put_int(&o, "nnlab.kernel", c->kernel);
        nl_st_meta_put_int(&o, "nnlab.pool", c->pool);
        nl_st_meta_put_int(&o, "nnlab.batchnorm", c->batchnorm);
        nl_st_meta_put_int(&o, "nnlab.hidden", (long long)c->hidden);
        nl_st_meta_put_num(&o, "nnlab.bn_momentum", c->bn_momentum);
        nl_st_meta_put_num(&o, "nnlab.bn_eps", c->bn_eps);
        unsigned all = (1u << c->n_blocks) - 1u;
        if ((c->pool_mask & all) != all) nl_st_meta_put_int(&o, "nnlab.pool_mask", (long long)(c->pool_mask & all));
    }
    for (int i = 0; i < n_extra; i++) nl_st_meta_put_str(&o, keys[i], vals[i] ? vals[i] : "");
    char *s = nl_st_meta_json(&o);
    nl_st_meta_free(&o);
    return s;
}

nl_status nl_model_save(const nl_model *m, const char *path, int n_extra, const char *const *keys, const char *const *vals) {
    char *meta = nl_model_metadata_json(m, n_extra, keys, vals);
    if (!meta) return nl_last_status();
    nl_status s = nl_safetensors_save(path, &m->ps, meta);
    free(meta);
    return s;
}

/* ---- reading the metadata back ---- */
typedef struct {
    const nl_st_file *f;
    const char *path;
} meta_src;

/* ms->f was opened from ms->path, so the engine readers name the same file in their errors */
static nl_status get_list(const meta_src *ms, const char *key, int maxn, int64_t *v, int *n) {
    return nl_safetensors_metadata_ints(ms->f, key, 1, 1 << 24, maxn, v, n);
}

static nl_status config_from_meta(const meta_src *ms, nl_model_config *cfg) {
    const char *kind = nl_safetensors_get_metadata(ms->f, "nnlab.model");
    if (!kind)
        return nl_set_error(NL_EFORMAT, "%s is not an nnlab model checkpoint: its __metadata__ has no \"nnlab.model\" entry "
                                        "(a parameter file of another kind or program)", ms->path);
    nl_model_kind k;
    if (nl_model_kind_parse(kind, &k))
        return nl_set_error(NL_EFORMAT, "%s: checkpoint of model kind \"%s\", which this nnlab cannot build (known: mlp, cnn)", ms->path, kind);
    const char *s;
    nl_status st;
    long long v;
    if ((st = nl_safetensors_metadata_str(ms->f, "nnlab.format", &s))) return st;
    if (strcmp(s, "1")) return nl_set_error(NL_EFORMAT, "%s: checkpoint format \"%s\" is not supported (expected 1)", ms->path, s);
    memset(cfg, 0, sizeof *cfg);
    int64_t lst[NL_MODEL_MAX_LAYERS + 1];
    int n;
    if (k == NL_MODEL_MLP) {
        if ((st = get_list(ms, "nnlab.sizes", NL_MODEL_MAX_LAYERS + 1, lst, &n))) return st;
        *cfg = nl_mlp_config(n, lst, NL_ACT_RELU, 0.0);
        if (nl_safetensors_get_metadata(ms->f, "nnlab.batchnorm")) {
            if ((st = nl_safetensors_metadata_int(ms->f, "nnlab.batchnorm", 0, 1, &v))) return st;
            cfg->batchnorm = (int)v;
            if (cfg->batchnorm) {
                if ((st = nl_safetensors_metadata_num(ms->f, "nnlab.bn_momentum", &cfg->bn_momentum))) return st;
                if ((st = nl_safetensors_metadata_num(ms->f, "nnlab.bn_eps", &cfg->bn_eps))) return st;
            }
        }
    } else {
        if ((st = get_list(ms, "nnlab.input", 3, lst, &n))) return st;
        if (n != 3) return nl_set_error(NL_EFORMAT, "%s: metadata \"nnlab.input\" needs 3 numbers (channels,height,width)", ms->path);
        int64_t ch[NL_MODEL_MAX_BLOCKS];
        int nb;
        if ((st = get_list(ms, "nnlab.channels", NL_MODEL_MAX_BLOCKS, ch, &nb))) return st;
        int chi[NL_MODEL_MAX_BLOCKS];
        for (int i = 0; i < nb; i++) chi[i] = (int)ch[i];
        *cfg = nl_cnn_config((int)lst[0], (int)lst[1], (int)lst[2], nb, chi, 0, 1);
        if ((st = nl_safetensors_metadata_int(ms->f, "nnlab.kernel", 1, 99, &v))) return st;
        cfg->kernel = (int)v;
        if ((st = nl_safetensors_metadata_int(ms->f, "nnlab.pool", 1, 99, &v))) return st;
        cfg->pool = (int)v;
        if ((st = nl_safetensors_metadata_int(ms->f, "nnlab.batchnorm", 0, 1, &v))) return st;
        cfg->batchnorm = (int)v;
        if ((st = nl_safetensors_metadata_int(ms->f, "nnlab.hidden", 0, 1 << 24, &v))) return st;
        cfg->hidden = v;
        if ((st = nl_safetensors_metadata_num(ms->f, "nnlab.bn_momentum", &cfg->bn_momentum))) return st;
        if ((st = nl_safetensors_metadata_num(ms->f, "nnlab.bn_eps", &cfg->bn_eps))) return st;
        if (nl_safetensors_get_metadata(ms->f, "nnlab.pool_mask")) { /* absent = every block pools */
            if ((st = nl_safetensors_metadata_int(ms->f, "nnlab.pool_mask", 0, NL_MODEL_POOL_ALL, &v))) return st;
            cfg->pool_mask = (unsigned)v;
        }
    }
    if ((st = nl_safetensors_metadata_int(ms->f, "nnlab.classes", 1, 1 << 24, &v))) return st;
    cfg->n_classes = (int)v;
    if ((st = nl_safetensors_metadata_str(ms->f, "nnlab.dtype", &s))) return st;
    if (!strcmp(s, "f32")) cfg->dtype = NL_F32;
    else if (!strcmp(s, "f64")) cfg->dtype = NL_F64;
    else return nl_set_error(NL_EFORMAT, "%s: metadata \"nnlab.dtype\" = \"%s\" (expected f32 or f64)", ms->path, s);
    if ((st = nl_safetensors_metadata_str(ms->f, "nnlab.activation", &s))) return st;
    if (nl_activation_parse(s, &cfg->act)) return nl_set_error(NL_EFORMAT, "%s: metadata \"nnlab.activation\" = \"%s\" is unknown", ms->path, s);
    if ((st = nl_safetensors_metadata_num(ms->f, "nnlab.dropout", &cfg->dropout))) return st;
    if ((st = nl_safetensors_metadata_num(ms->f, "nnlab.input_mean", &cfg->input_mean))) return st;
    if ((st = nl_safetensors_metadata_num(ms->f, "nnlab.input_std", &cfg->input_std))) return st;
    if (nl_model_config_check(cfg)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", nl_last_error());
        return nl_set_error(NL_EFORMAT, "%s: the architecture in the metadata is invalid: %s", ms->path, msg);
    }
    return NL_OK;
}

nl_status nl_model_config_from_file(const char *path, nl_model_config *cfg) {
    nl_st_file f;
    nl_status s = nl_safetensors_open(path, &f);
    if (s) return s;
    meta_src ms = {&f, path};
    s = config_from_meta(&ms, cfg);
    nl_safetensors_close(&f);
    return s;
}

static nl_status mismatch(nl_status s) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", nl_last_error());
    return nl_set_error(s, "%s (the tensors do not match the architecture in its metadata)", msg);
}

nl_status nl_model_load_opt(nl_model *m, const char *path, unsigned flags) {
    memset(m, 0, sizeof *m);
    nl_st_file f;
    nl_status s = nl_safetensors_open(path, &f);
    if (s) return s;
    meta_src ms = {&f, path};
    nl_model_config cfg;
    nl_params lay;
    if ((s = config_from_meta(&ms, &cfg))) goto done;
    /* names, shapes and dtypes against the header first: nothing of the architecture's size is allocated yet */
    if ((s = nl_model_layout(&cfg, &lay))) goto done;
    s = nl_safetensors_check_params(&f, &lay, 1);
    nl_params_free(&lay);
    if (s) {
        s = mismatch(s);
        goto done;
    }
    if (!(flags & NL_LOAD_ALLOW_NONFINITE) && (s = nl_safetensors_check_finite(&f))) goto done;
    if ((s = nl_model_init(m, &cfg, 0))) goto done;
    if ((s = nl_safetensors_copy_params(&f, &m->ps, 1, NULL))) {
        s = mismatch(s);
        nl_model_free(m);
    }
done:
    nl_safetensors_close(&f);
    return s;
}

nl_status nl_model_load(nl_model *m, const char *path) { return nl_model_load_opt(m, path, 0); }
