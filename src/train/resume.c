/* Resumable training: the training state ("train.*" tensors and metadata keys) written into and read back from
 * a checkpoint (format in nnlab/train.h). */
#include "nnlab/train.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void nl_train_state_init(nl_train_state *s) { memset(s, 0, sizeof *s); }

static void put(nl_train_state *s, const char *key, const char *val) {
    if (s->status) return;
    if (s->n >= NL_TRAIN_STATE_MAX || strlen(key) >= sizeof s->key[0] || strlen(val) >= sizeof s->val[0]) {
        s->status = nl_set_error(NL_EINVAL, "train state: too many keys or key \"%s\" too long", key);
        return;
    }
    snprintf(s->key[s->n], sizeof s->key[0], "%s", key);
    snprintf(s->val[s->n], sizeof s->val[0], "%s", val);
    s->keyp[s->n] = s->key[s->n];
    s->valp[s->n] = s->val[s->n];
    s->n++;
}

void nl_train_state_put_int(nl_train_state *s, const char *key, long long v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    put(s, key, b);
}

void nl_train_state_put_u64(nl_train_state *s, const char *key, uint64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    put(s, key, b);
}

void nl_train_state_put_num(nl_train_state *s, const char *key, double v) {
    if (!isfinite(v)) return;
    char b[40];
    snprintf(b, sizeof b, "%.17g", v);
    put(s, key, b);
}

void nl_train_state_put_rng(nl_train_state *s, const char *key, const nl_rng *r) {
    char b[80];
    snprintf(b, sizeof b, "%llu,%llu,%llu", (unsigned long long)r->seed, (unsigned long long)r->stream,
             (unsigned long long)r->counter);
    put(s, key, b);
}

static const char *const kind_names[] = {"sgd", "adam", "adamw"};

void nl_train_state_put_optim(nl_train_state *s, const nl_optim *o) {
    const nl_optim_config *c = &o->cfg;
    put(s, "train.optim.kind", kind_names[c->kind]);
    nl_train_state_put_num(s, "train.optim.lr", c->lr);
    nl_train_state_put_num(s, "train.optim.momentum", c->momentum);
    nl_train_state_put_int(s, "train.optim.nesterov", c->nesterov);
    nl_train_state_put_num(s, "train.optim.weight_decay", c->weight_decay);
    nl_train_state_put_num(s, "train.optim.beta1", c->beta1);
    nl_train_state_put_num(s, "train.optim.beta2", c->beta2);
    nl_train_state_put_num(s, "train.optim.eps", c->eps);
    nl_train_state_put_num(s, "train.optim.clip_norm", c->clip_norm);
    nl_train_state_put_int(s, "train.optim.sched", (long long)c->sched);
    nl_train_state_put_int(s, "train.optim.warmup_steps", (long long)c->warmup_steps);
    nl_train_state_put_int(s, "train.optim.total_steps", (long long)c->total_steps);
    nl_train_state_put_num(s, "train.optim.min_ratio", c->min_ratio);
    nl_train_state_put_int(s, "train.optim.step", (long long)o->step);
    s->opt = o;
}

nl_status nl_train_state_write(const char *path, const nl_params *ps, const nl_train_state *s, const char *metadata_json) {
    if (s->status) return s->status;
    const int extra = s->opt ? (s->opt->v ? 2 : 1) : 0;
    nl_st_entry *e = calloc((size_t)ps->n + 2, sizeof *e);
    if (!e) return nl_set_error(NL_ENOMEM, "save %s: out of memory", path);
    const size_t es = nl_dtype_size(ps->dtype);
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        e[i].name = p->name;
        e[i].dtype = nl_st_dtype_of(ps->dtype);
        e[i].ndim = p->var.val.ndim;
        e[i].shape = p->var.val.shape;
        e[i].data = (const char *)ps->data + (size_t)p->offset * es;
    }
    int64_t shape[1] = {s->opt ? s->opt->n_state : 0};
    const char *names[2] = {"train.optim.m", "train.optim.v"};
    const void *data[2] = {s->opt ? s->opt->m : NULL, s->opt ? s->opt->v : NULL};
    for (int k = 0; k < extra; k++) {
        nl_st_entry *x = &e[ps->n + k];
        x->name = names[k];
        x->dtype = nl_st_dtype_of(ps->dtype);
        x->ndim = 1;
        x->shape = shape;
        x->data = data[k];
    }
    nl_status st = nl_safetensors_write(path, e, ps->n + extra, metadata_json);
    free(e);
    return st;
}

nl_status nl_train_state_open(const char *path, nl_st_file *f) {
    nl_status st = nl_safetensors_open(path, f);
    if (st) return st;
    if (!nl_safetensors_get_metadata(f, "train.step")) {
        nl_safetensors_close(f);
        return nl_set_error(NL_EFORMAT, "%s holds no training state (no \"train.step\" in its __metadata__: a weights-only "
                                        "checkpoint), so a run cannot be resumed from it", path);
    }
    return NL_OK;
}

nl_status nl_train_state_get_u64(const nl_st_file *f, const char *key, uint64_t *v) {
    const char *s;
    nl_status st = nl_safetensors_metadata_str(f, key, &s);
    if (st) return st;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (!*s || *s == '-' || *end || errno) return nl_set_error(NL_EFORMAT, "%s: metadata \"%s\" = \"%s\" is not an unsigned integer", f->path, key, s);
    *v = (uint64_t)x;
    return NL_OK;
}

nl_status nl_train_state_get_rng(const nl_st_file *f, const char *key, nl_rng *r) {
    const char *s;
    nl_status st = nl_safetensors_metadata_str(f, key, &s);
    if (st) return st;
    unsigned long long v[3];
    const char *q = s;
    for (int i = 0; i < 3; i++) {
        char *end;
        errno = 0;
        if (*q < '0' || *q > '9') goto bad;
        v[i] = strtoull(q, &end, 10);
        if (errno || *end != (i < 2 ? ',' : '\0')) goto bad;
        q = end + 1;
    }
    r->seed = v[0];
    r->stream = v[1];
    r->counter = v[2];
    return NL_OK;
bad:
    return nl_set_error(NL_EFORMAT, "%s: metadata \"%s\" = \"%s\" is not \"seed,stream,counter\"", f->path, key, s);
}

static nl_status get_moment(const nl_st_file *f, const char *name, void *dst, const nl_optim *o) {
    const nl_st_tensor *t = nl_safetensors_find(f, name);
    if (!t) return nl_set_error(NL_EFORMAT, "%s: tensor \"%s\" (optimizer state) is missing", f->path, name);
    if (t->ndim != 1 || t->numel != o->n_state || t->dtype != nl_st_dtype_of(o->ps->dtype))
        return nl_set_error(NL_EFORMAT, "%s: tensor \"%s\" has %lld elements of %s, the optimizer needs %lld of %s (another architecture?)",
                            f->path, name, (long long)t->numel, nl_st_dtype_name(t->dtype), (long long)o->n_state,
                            nl_st_dtype_name(nl_st_dtype_of(o->ps->dtype)));
    return nl_st_tensor_convert(t, dst, o->ps->dtype);
}

nl_status nl_train_state_get_optim(const nl_st_file *f, nl_optim *o) {
    const char *ks;
    nl_status st = nl_safetensors_metadata_str(f, "train.optim.kind", &ks);
    if (st) return st;
    nl_optim_config c = o->cfg;
    if (nl_optim_parse_kind(ks, &c.kind)) return nl_set_error(NL_EFORMAT, "%s: metadata \"train.optim.kind\" = \"%s\" is unknown", f->path, ks);
    if (c.kind != o->cfg.kind)
        return nl_set_error(NL_EINVAL, "%s: the run was trained with %s, this one is set up for %s (the optimizer must match)", f->path, ks,
                            kind_names[o->cfg.kind]);
    long long v, step;
    if ((st = nl_safetensors_metadata_num(f, "train.optim.lr", &c.lr)) || (st = nl_safetensors_metadata_num(f, "train.optim.momentum", &c.momentum)) ||
        (st = nl_safetensors_metadata_num(f, "train.optim.weight_decay", &c.weight_decay)) ||
        (st = nl_safetensors_metadata_num(f, "train.optim.beta1", &c.beta1)) || (st = nl_safetensors_metadata_num(f, "train.optim.beta2", &c.beta2)) ||
        (st = nl_safetensors_metadata_num(f, "train.optim.eps", &c.eps)) || (st = nl_safetensors_metadata_num(f, "train.optim.clip_norm", &c.clip_norm)) ||
        (st = nl_safetensors_metadata_num(f, "train.optim.min_ratio", &c.min_ratio)))
        return st;
    if ((st = nl_safetensors_metadata_int(f, "train.optim.nesterov", 0, 1, &v))) return st;
    c.nesterov = (int)v;
    if ((st = nl_safetensors_metadata_int(f, "train.optim.sched", 0, NL_SCHED_LINEAR, &v))) return st;
    c.sched = (nl_sched_kind)v;
    if ((st = nl_safetensors_metadata_int(f, "train.optim.warmup_steps", 0, INT64_MAX, &v))) return st;
    c.warmup_steps = v;
    if ((st = nl_safetensors_metadata_int(f, "train.optim.total_steps", 0, INT64_MAX, &v))) return st;
    c.total_steps = v;
    if ((st = nl_safetensors_metadata_int(f, "train.optim.step", 0, INT64_MAX, &step))) return st;
    if ((st = get_moment(f, "train.optim.m", o->m, o))) return st;
    if (o->v && (st = get_moment(f, "train.optim.v", o->v, o))) return st;
    o->cfg = c;
    o->step = step;
    return NL_OK;
}

nl_status nl_model_save_keep_state(const nl_model *m, const char *path, int n_extra, const char *const *keys,
                                   const char *const *vals) {
    struct stat sb;
    nl_st_file f;
    if (stat(path, &sb) || !S_ISREG(sb.st_mode) || nl_train_state_open(path, &f)) {
        nl_clear_error();
        return nl_model_save(m, path, n_extra, keys, vals);
    }
    /* the file's train.* keys after the caller's, its train.* tensors after the weights */
    int nk = n_extra;
    const char **k = malloc(sizeof *k * (size_t)(n_extra + f.n_meta + 1));
    const char **v = malloc(sizeof *v * (size_t)(n_extra + f.n_meta + 1));
    nl_st_entry *e = calloc((size_t)(m->ps.n + f.n + 1), sizeof *e);
    nl_status st = NL_OK;
    if (!k || !v || !e) {
        st = nl_set_error(NL_ENOMEM, "save %s: out of memory", path);
        goto out;
    }
    for (int i = 0; i < n_extra; i++) k[i] = keys[i], v[i] = vals[i];
    for (int i = 0; i < f.n_meta; i++)
        if (!strncmp(f.meta_key[i], "train.", 6)) k[nk] = f.meta_key[i], v[nk++] = f.meta_val[i];
    int ne = 0;
    const size_t es = nl_dtype_size(m->ps.dtype);
    for (int i = 0; i < m->ps.n; i++, ne++) {
        const nl_param *p = m->ps.p[i];
        e[ne] = (nl_st_entry){p->name, nl_st_dtype_of(m->ps.dtype), p->var.val.ndim, p->var.val.shape,
                              (const char *)m->ps.data + (size_t)p->offset * es};
    }
    for (int i = 0; i < f.n; i++)
        if (!strncmp(f.t[i].name, "train.", 6))
            e[ne++] = (nl_st_entry){f.t[i].name, f.t[i].dtype, f.t[i].ndim, f.t[i].shape, f.t[i].data};
    char *meta = nl_model_metadata_json(m, nk, k, v);
    if (!meta) {
        st = nl_last_status();
        goto out;
    }
    st = nl_safetensors_write(path, e, ne, meta);
    free(meta);
out:
    free(k);
    free(v);
    free(e);
    nl_safetensors_close(&f);
    return st;
}
