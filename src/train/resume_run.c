/* The classifier loop's resumable checkpoints: nl_train_run's training state written and restored. */
#include "internal/train_resume.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the data position to continue from: the current epoch, or the next one when this one is used up */
static void data_pos(const nl_batcher *bt, int64_t *epoch0, int64_t *pos) {
    const int64_t left = bt->ds->n - bt->pos, m = left < bt->batch ? left : bt->batch;
    if (m <= 0 || (bt->drop_last && m < bt->batch)) {
        *epoch0 = bt->epoch + 1;
        *pos = 0;
    } else {
        *epoch0 = bt->epoch;
        *pos = bt->pos;
    }
}

nl_status nl_train__checkpoint(const char *path, const nl_model *m, const nl_optim *o, const nl_batcher *bt, const nl_train__pos *p) {
    nl_train_state s;
    nl_train_state_init(&s);
    int64_t e0, pos;
    data_pos(bt, &e0, &pos);
    nl_train_state_put_int(&s, "nnlab.epoch", (long long)p->epoch);
    nl_train_state_put_int(&s, "nnlab.step", (long long)p->step);
    nl_train_state_put_int(&s, "train.step", (long long)p->step);
    nl_train_state_put_int(&s, "train.epoch", (long long)e0);
    nl_train_state_put_int(&s, "train.pos", (long long)pos);
    nl_train_state_put_u64(&s, "train.seed", bt->seed);
    nl_train_state_put_int(&s, "train.batch", (long long)bt->batch);
    nl_train_state_put_int(&s, "train.drop_last", bt->drop_last);
    nl_train_state_put_int(&s, "train.n", (long long)bt->ds->n);
    nl_train_state_put_rng(&s, "train.dropout_rng", &m->dropout_rng);
    nl_train_state_put_num(&s, "train.best_valid_accuracy", p->best_valid_accuracy);
    nl_train_state_put_int(&s, "train.best_epoch", (long long)p->best_epoch);
    nl_train_state_put_int(&s, "train.since_best", p->since_best);
    nl_train_state_put_optim(&s, o);
    if (s.status) return s.status;
    char *meta = nl_model_metadata_json(m, s.n, s.keyp, s.valp);
    if (!meta) return nl_last_status();
    nl_status st = nl_train_state_write(path, &m->ps, &s, meta);
    free(meta);
    return st;
}

nl_status nl_train__resume(const char *path, nl_model *m, nl_optim *o, nl_batcher *bt, nl_train__pos *p, int64_t *resume_epoch) {
    nl_model_config fc;
    nl_status st = nl_model_config_from_file(path, &fc);
    if (st) return st;
    if (fc.kind != m->cfg.kind)
        return nl_set_error(NL_EINVAL, "resume %s: checkpoint of a %s, this run trains a %s (the architecture must match)", path,
                            nl_model_kind_name(fc.kind), nl_model_kind_name(m->cfg.kind));
    nl_st_file f;
    if ((st = nl_train_state_open(path, &f))) return st;
    long long v, e0, pos, step, batch, n, dl;
    uint64_t seed;
    nl_rng drng;
    const char *what = NULL;
    if ((st = nl_safetensors_metadata_int(&f, "train.step", 0, INT64_MAX, &step)) ||
        (st = nl_safetensors_metadata_int(&f, "train.epoch", 0, INT64_MAX - 1, &e0)) ||
        (st = nl_safetensors_metadata_int(&f, "train.pos", 0, INT64_MAX, &pos)) ||
        (st = nl_safetensors_metadata_int(&f, "train.batch", 1, INT64_MAX, &batch)) ||
        (st = nl_safetensors_metadata_int(&f, "train.n", 0, INT64_MAX, &n)) ||
        (st = nl_safetensors_metadata_int(&f, "train.drop_last", 0, 1, &dl)) ||
        (st = nl_train_state_get_u64(&f, "train.seed", &seed)) || (st = nl_train_state_get_rng(&f, "train.dropout_rng", &drng)))
        goto out;
    if ((st = nl_safetensors_load_params(path, &m->ps, 1, NULL))) { /* the architecture first */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", nl_last_error());
        st = nl_set_error(st, "resume: %s (the checkpoint's architecture differs from this run's)", msg);
        goto out;
    }
    if (n != bt->ds->n) what = "training examples";
    else if (batch != bt->batch) what = "batch size";
    else if (dl != bt->drop_last) what = "drop_last";
    if (what) {
        long long had = what[0] == 't' ? n : what[0] == 'b' ? batch : dl;
        long long has = what[0] == 't' ? (long long)bt->ds->n : what[0] == 'b' ? (long long)bt->batch : (long long)bt->drop_last;
        st = nl_set_error(NL_EINVAL, "resume %s: %s %lld in the saved run, %lld in this one (they must match to continue the data order)",
                          path, what, had, has);
        goto out;
    }
    if (pos > n) {
        st = nl_set_error(NL_EFORMAT, "%s: metadata \"train.pos\" = %lld is past the %lld examples", path, pos, n);
        goto out;
    }
    p->best_valid_accuracy = NAN;
    if (nl_safetensors_get_metadata(&f, "train.best_valid_accuracy") &&
        (st = nl_safetensors_metadata_num(&f, "train.best_valid_accuracy", &p->best_valid_accuracy)))
        goto out;
    if ((st = nl_safetensors_metadata_int(&f, "train.best_epoch", 0, INT64_MAX, &v))) goto out;
    p->best_epoch = v;
    if ((st = nl_safetensors_metadata_int(&f, "train.since_best", 0, 1 << 30, &v))) goto out;
    p->since_best = (int)v;
    if ((st = nl_train_state_get_optim(&f, o))) goto out;
    m->dropout_rng = drng;
    bt->seed = seed;
    nl_batcher_set_epoch(bt, e0);
    bt->pos = pos;
    p->step = step;
    p->epoch = e0 + 1;
    *resume_epoch = e0 + 1;
out:
    nl_safetensors_close(&f);
    return st;
}
