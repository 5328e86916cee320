/* Transformer LM checkpoints: safetensors tensors + the architecture (and RoPE/attention settings) in
 * __metadata__. */
#include "transformer/transformer.h"
#include "nnlab/safetensors.h"
#include "nnlab/train.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the architecture keys of nl_lm_save into o */
static void lm_meta(const nl_lm *m, nl_st_meta *o) {
    const nl_lm_config *c = &m->cfg;
    nl_st_meta_put_str(o, "nnlab.model", "transformer_lm");
    nl_st_meta_put_str(o, "nnlab.format", "1");
    nl_st_meta_put_str(o, "nnlab.dtype", nl_dtype_name(c->dtype));
    nl_st_meta_put_int(o, "nnlab.vocab", c->vocab);
    nl_st_meta_put_int(o, "nnlab.context", c->context);
    nl_st_meta_put_int(o, "nnlab.layers", c->n_layers);
    nl_st_meta_put_int(o, "nnlab.d_model", c->d_model);
    nl_st_meta_put_int(o, "nnlab.heads", c->n_heads);
    nl_st_meta_put_int(o, "nnlab.d_ff", c->d_ff);
    nl_st_meta_put_str(o, "nnlab.norm", nl_lm_norm_name(c->norm));
    nl_st_meta_put_num(o, "nnlab.norm_eps", c->norm_eps);
    nl_st_meta_put_num(o, "nnlab.bn_momentum", c->bn_momentum);
    nl_st_meta_put_num(o, "nnlab.pn_alpha", c->pn_alpha);
    nl_st_meta_put_int(o, "nnlab.pn_warmup", (long long)c->pn_warmup);
    nl_st_meta_put_int(o, "nnlab.tie", c->tie_weights);
    nl_st_meta_put_str(o, "nnlab.attn", nl_lm_attn_name(c->attn == NL_LM_ATTN_CUSTOM ? NL_LM_ATTN_VANILLA : c->attn));
    nl_st_meta_put_int(o, "nnlab.lminf_global", c->lminf_global);
    nl_st_meta_put_int(o, "nnlab.lminf_local", c->lminf_local);
    nl_st_meta_put_str(o, "nnlab.rope.variant", nl_rope_variant_name(c->rope.variant));
    nl_st_meta_put_num(o, "nnlab.rope.base", c->rope.base);
    nl_st_meta_put_num(o, "nnlab.rope.scale_train", c->rope.scale_train);
    nl_st_meta_put_num(o, "nnlab.rope.scale_eval", c->rope.scale_eval);
    nl_st_meta_put_num(o, "nnlab.rope.power", c->rope.power);
    nl_st_meta_put_num(o, "nnlab.rope.truncate", c->rope.truncate);
    nl_st_meta_put_num(o, "nnlab.rope.xpos_gamma", c->rope.xpos_gamma);
    nl_st_meta_put_int(o, "nnlab.rope.randomized", c->rope.randomized);
    nl_st_meta_put_int(o, "nnlab.norm_step", (long long)m->norm_step);
}

nl_status nl_lm_save(const nl_lm *m, const char *path) {
    nl_st_meta meta;
    nl_st_meta *o = &meta;
    nl_status st = nl_st_meta_init(o);
    if (st) return st;
    lm_meta(m, o);
    char *js = nl_st_meta_json(o);
    nl_st_meta_free(o);
    if (!js) return o->status;
    st = nl_safetensors_save(path, &m->ps, js);
    free(js);
    return st;
}

static nl_status load_into_f(nl_lm *m, const nl_st_file *f, const nl_lm_config *pfc, int64_t ns, const char *path);

static nl_status get_int(const nl_st_file *f, const char *key, int *v) {
    long long x;
    nl_status st = nl_safetensors_metadata_int(f, key, INT_MIN, INT_MAX, &x);
    if (!st) *v = (int)x;
    return st;
}

static nl_status cfg_from_st(const nl_st_file *f, nl_lm_config *c, int64_t *norm_step) {
    const char *model = nl_safetensors_get_metadata(f, "nnlab.model");
    if (!model)
        return nl_set_error(NL_EFORMAT, "%s: not an nnlab model checkpoint (no \"nnlab.model\" in __metadata__)", f->path);
    if (strcmp(model, "transformer_lm"))
        return nl_set_error(NL_EFORMAT, "%s: checkpoint of a different architecture (\"%s\"), not a transformer_lm",
                            f->path, model);
    *c = nl_lm_config_default();
    const char *s;
    nl_status st;
    int iv;
    double dv;
    if ((st = nl_safetensors_metadata_str(f, "nnlab.dtype", &s))) return st;
    if (!strcmp(s, "f32")) c->dtype = NL_F32;
    else if (!strcmp(s, "f64")) c->dtype = NL_F64;
    else return nl_set_error(NL_EFORMAT, "%s: unknown dtype \"%s\"", f->path, s);
    if ((st = get_int(f, "nnlab.vocab", &c->vocab)) || (st = get_int(f, "nnlab.context", &c->context)) ||
        (st = get_int(f, "nnlab.layers", &c->n_layers)) || (st = get_int(f, "nnlab.d_model", &c->d_model)) ||
        (st = get_int(f, "nnlab.heads", &c->n_heads)) || (st = get_int(f, "nnlab.d_ff", &c->d_ff)) ||
        (st = get_int(f, "nnlab.tie", &c->tie_weights)) || (st = nl_safetensors_metadata_num(f, "nnlab.norm_eps", &c->norm_eps)) ||
        (st = get_int(f, "nnlab.lminf_global", &c->lminf_global)) || (st = get_int(f, "nnlab.lminf_local", &c->lminf_local)))
        return st;
    if (!nl_safetensors_metadata_num(f, "nnlab.bn_momentum", &dv)) c->bn_momentum = dv;
    if (!nl_safetensors_metadata_num(f, "nnlab.pn_alpha", &dv)) c->pn_alpha = dv;
    if (!get_int(f, "nnlab.pn_warmup", &iv)) c->pn_warmup = iv;
    if ((st = nl_safetensors_metadata_str(f, "nnlab.norm", &s)) || (st = nl_lm_norm_parse(s, &c->norm))) return st;
    if ((st = nl_safetensors_metadata_str(f, "nnlab.attn", &s)) || (st = nl_lm_attn_parse(s, &c->attn))) return st;
    if ((st = nl_safetensors_metadata_str(f, "nnlab.rope.variant", &s)) || (st = nl_rope_variant_parse(s, &c->rope.variant))) return st;
    if ((st = nl_safetensors_metadata_num(f, "nnlab.rope.base", &c->rope.base)) || (st = nl_safetensors_metadata_num(f, "nnlab.rope.scale_train", &c->rope.scale_train)) ||
        (st = nl_safetensors_metadata_num(f, "nnlab.rope.scale_eval", &c->rope.scale_eval)) || (st = nl_safetensors_metadata_num(f, "nnlab.rope.power", &c->rope.power)) ||
        (st = nl_safetensors_metadata_num(f, "nnlab.rope.truncate", &c->rope.truncate)) ||
        (st = nl_safetensors_metadata_num(f, "nnlab.rope.xpos_gamma", &c->rope.xpos_gamma)) ||
        (st = get_int(f, "nnlab.rope.randomized", &c->rope.randomized)))
        return st;
    if (norm_step) {
        *norm_step = 0;
        long long ns;
        if (!nl_safetensors_metadata_int(f, "nnlab.norm_step", 0, INT64_MAX, &ns)) *norm_step = (int64_t)ns;
    }
    nl_clear_error();
    return NL_OK;
}

nl_status nl_lm_config_from_file(const char *path, nl_lm_config *cfg) {
    nl_st_file f;
    nl_status st = nl_safetensors_open(path, &f);
    if (st) return st;
    st = cfg_from_st(&f, cfg, NULL);
    nl_safetensors_close(&f);
    return st;
}

nl_status nl_lm_load_opt(nl_lm *m, const char *path, unsigned flags) {
    memset(m, 0, sizeof *m);
    nl_st_file f;
    nl_status st = nl_safetensors_open(path, &f);
    if (st) return st;
    nl_lm_config cfg;
    nl_params lay;
    int64_t ns = 0;
    if ((st = cfg_from_st(&f, &cfg, &ns))) goto done;
    /* the architecture's names and shapes against the header before anything of its size is allocated */
    if ((st = nl_lm_layout(&cfg, &lay))) {
        st = nl_set_error(NL_EFORMAT, "%s: the architecture in the metadata is invalid: %s", path, nl_last_error());
        goto done;
    }
    st = nl_safetensors_check_params(&f, &lay, 1);
    nl_params_free(&lay);
    if (st || (!(flags & NL_LOAD_ALLOW_NONFINITE) && (st = nl_safetensors_check_finite(&f)))) goto done;
    if ((st = nl_lm_init(m, &cfg, 0))) goto done;
    if ((st = nl_safetensors_copy_params(&f, &m->ps, 1, NULL))) {
        nl_lm_free(m);
        goto done;
    }
    m->norm_step = ns;
done:
    nl_safetensors_close(&f);
    return st;
}

nl_status nl_lm_load(nl_lm *m, const char *path) { return nl_lm_load_opt(m, path, 0); }

nl_status nl_lm_load_into(nl_lm *m, const char *path) {
    nl_lm_config fc;
    nl_st_file f;
    nl_status st = nl_safetensors_open(path, &f);
    if (st) return st;
    int64_t ns = 0;
    st = cfg_from_st(&f, &fc, &ns);
    if (!st) st = load_into_f(m, &f, &fc, ns, path);
    nl_safetensors_close(&f);
    return st;
}

static nl_status load_into_f(nl_lm *m, const nl_st_file *f, const nl_lm_config *pfc, int64_t ns, const char *path) {
    const nl_lm_config fc = *pfc;
    nl_status st;
    const nl_lm_config *c = &m->cfg;
#define CMP(field, what)                                                                                       \
    if (fc.field != c->field)                                                                                  \
        return nl_set_error(NL_EINVAL, "%s: checkpoint has %s %lld, model has %lld (architecture mismatch)", path, \
                            what, (long long)fc.field, (long long)c->field);
    CMP(vocab, "vocab")
    CMP(n_layers, "layers")
    CMP(d_model, "d_model")
    CMP(n_heads, "heads")
    CMP(d_ff, "d_ff")
    CMP(tie_weights, "tie")
#undef CMP
    if (fc.norm != c->norm)
        return nl_set_error(NL_EINVAL, "%s: checkpoint has norm %s, model has %s (architecture mismatch)", path,
                            nl_lm_norm_name(fc.norm), nl_lm_norm_name(c->norm));
    if (fc.dtype != c->dtype)
        return nl_set_error(NL_EINVAL, "%s: checkpoint dtype %s, model dtype %s", path, nl_dtype_name(fc.dtype),
                            nl_dtype_name(c->dtype));
    /* nothing is copied unless every tensor matches and is finite */
    if ((st = nl_safetensors_check_params(f, &m->ps, 1)) || (st = nl_safetensors_check_finite(f)) ||
        (st = nl_safetensors_copy_params(f, &m->ps, 1, NULL)))
        return st;
    m->norm_step = ns;
    return NL_OK;
}

/* ---- resumable training (transformer.h) ---- */
nl_status nl_lm_save_train(const nl_lm *m, const char *path, const nl_optim *opt, const nl_rng *data_rng, int64_t batch,
                           int64_t context, int64_t step) {
    nl_train_state ts;
    nl_train_state_init(&ts);
    nl_train_state_put_int(&ts, "train.step", (long long)step);
    nl_train_state_put_int(&ts, "train.batch", (long long)batch);
    nl_train_state_put_int(&ts, "train.context", (long long)context);
    nl_train_state_put_rng(&ts, "train.data_rng", data_rng);
    nl_train_state_put_rng(&ts, "train.pos_rng", &m->pos_rng);
    nl_train_state_put_optim(&ts, opt);
    if (ts.status) return ts.status;
    nl_st_meta meta;
    nl_status st = nl_st_meta_init(&meta);
    if (st) return st;
    lm_meta(m, &meta);
    for (int i = 0; i < ts.n; i++) nl_st_meta_put_str(&meta, ts.keyp[i], ts.valp[i]);
    char *js = nl_st_meta_json(&meta);
    nl_st_meta_free(&meta);
    if (!js) return meta.status;
    st = nl_train_state_write(path, &m->ps, &ts, js);
    free(js);
    return st;
}

nl_status nl_lm_resume_train(nl_lm *m, const char *path, nl_optim *opt, nl_rng *data_rng, int64_t batch, int64_t context,
                             int64_t *step) {
    if (m->cfg.norm == NL_LM_NORM_POWER)
        return nl_set_error(NL_EINVAL, "resume %s: a powernorm model cannot be resumed (its running statistics are not in "
                                       "the checkpoint)", path);
    nl_st_file f;
    nl_status st = nl_train_state_open(path, &f);
    if (st) return st;
    long long s, b, t;
    nl_rng dr, pr;
    if ((st = nl_safetensors_metadata_int(&f, "train.step", 0, INT64_MAX, &s)) ||
        (st = nl_safetensors_metadata_int(&f, "train.batch", 1, INT64_MAX, &b)) ||
        (st = nl_safetensors_metadata_int(&f, "train.context", 1, INT64_MAX, &t)) ||
        (st = nl_train_state_get_rng(&f, "train.data_rng", &dr)) || (st = nl_train_state_get_rng(&f, "train.pos_rng", &pr)))
        goto out;
    if (b != batch || t != context) {
        st = nl_set_error(NL_EINVAL, "resume %s: the run used batch %lld and context %lld, this one %lld and %lld (they must match)",
                          path, b, t, (long long)batch, (long long)context);
        goto out;
    }
    if ((st = nl_lm_load_into(m, path))) goto out; /* architecture check, weights, norm_step */
    if ((st = nl_train_state_get_optim(&f, opt))) goto out;
    *data_rng = dr;
    m->pos_rng = pr;
    *step = s;
out:
    nl_safetensors_close(&f);
    return st;
}
