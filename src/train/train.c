/* The supervised training loop: steps, metrics, progress display, evaluation, early stopping, checkpoints,
 * NaN/Inf detection. */
#include "nnlab/train.h"
#include "internal/train_resume.h"
#include "nnlab/dist.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Images per evaluation batch: small enough that a CNN's activations stay near the cache (1000 was measured 10%
 * slower in CPU time for the quick CNN, with twice the page faults); nl_evaluate and the training loop's
 * evaluations use the same batch, so they agree exactly. */
#define NL_EVAL_BATCH 256

nl_train_config nl_train_defaults(void) {
    nl_train_config c;
    memset(&c, 0, sizeof c);
    c.epochs = 10;
    c.batch = 128;
    c.optim = nl_optim_defaults(NL_OPT_ADAM);
    c.eval_every = 1;
    c.eval_batch = NL_EVAL_BATCH;
    c.verbose = 1;
    c.dist_bucket_mb = 1;
    return c;
}

void nl_train_result_free(nl_train_result *r) {
    if (!r) return;
    free(r->epoch);
    free(r->curve_step);
    free(r->curve_loss);
    free(r->curve_acc);
    r->epoch = NULL;
    r->curve_step = r->curve_loss = r->curve_acc = NULL;
    r->n_epochs = r->n_curve = 0;
}

/* ---------------- evaluation ---------------- */
static int64_t count_correct(const nl_var *logits, const int32_t *y, int64_t bs) {
    const nl_tensor *t = &logits->val;
    int64_t C = t->shape[t->ndim - 1], ok = 0;
    for (int64_t i = 0; i < bs; i++) {
        int64_t best = 0;
        double bv = nl_tensor_get(t, i * C);
        for (int64_t k = 1; k < C; k++) {
            double v = nl_tensor_get(t, i * C + k);
            if (v > bv) { bv = v; best = k; }
        }
        ok += best == y[i];
    }
    return ok;
}

nl_status nl_evaluate_ex(nl_model *m, nl_ctx *c, const nl_dataset *ds, int64_t batch, double *accuracy, double *loss) {
    if (accuracy) *accuracy = NAN;
    if (loss) *loss = NAN;
    if (!ds || ds->n < 1) return nl_set_error(NL_EINVAL, "evaluate: empty dataset");
    if (ds->d != m->in_dim)
        return nl_set_error(NL_ESHAPE, "evaluate: dataset '%s' has %lld features per example, the model expects %lld", ds->name,
                            (long long)ds->d, (long long)m->in_dim);
    if (batch < 1) batch = 1000;
    int old = nl_set_grad_enabled(c, 0);
    double lsum = 0;
    int64_t ok = 0;
    nl_status s = NL_OK;
    for (int64_t i = 0; i < ds->n; i += batch) {
        int64_t bs = ds->n - i < batch ? ds->n - i : batch;
        const int32_t *y = ds->y + i;
        for (int64_t k = 0; k < bs; k++)
            if (y[k] < 0 || y[k] >= m->n_classes) {
                s = nl_set_error(NL_EINVAL, "evaluate: label %d of row %lld is outside [0, %d)", y[k], (long long)(i + k), m->n_classes);
                goto done;
            }
        nl_ctx_reset(c);
        nl_var *x = nl_model_input(m, c, ds->x + (size_t)i * (size_t)ds->d, bs);
        nl_var *lg = nl_model_forward(m, c, x, 0);
        nl_var *l = lg ? nl_cross_entropy(c, lg, y, 0.0, -1) : NULL;
        if (!l) {
            s = nl_last_status() ? nl_last_status() : NL_EINVAL;
            goto done;
        }
        lsum += nl_item(l) * (double)bs;
        ok += count_correct(lg, y, bs);
    }
    if (accuracy) *accuracy = (double)ok / (double)ds->n;
    if (loss) *loss = lsum / (double)ds->n;
done:
    nl_ctx_reset(c);
    nl_set_grad_enabled(c, old);
    return s;
}

nl_status nl_evaluate(nl_model *m, const nl_dataset *ds, double *accuracy, double *loss) {
    nl_ctx *c = nl_ctx_new(0, 0);
    if (!c) return NL_ENOMEM;
    nl_status s = nl_evaluate_ex(m, c, ds, NL_EVAL_BATCH, accuracy, loss);
    nl_ctx_free(c);
    return s;
}

nl_status nl_model_predict(nl_model *m, const float *x, int64_t n, int32_t *pred) {
    nl_ctx *c = nl_ctx_new(0, 0);
    if (!c) return NL_ENOMEM;
    nl_set_grad_enabled(c, 0);
    nl_status s = NL_OK;
    for (int64_t i = 0; i < n && !s; i += NL_EVAL_BATCH) {
        int64_t bs = n - i < NL_EVAL_BATCH ? n - i : NL_EVAL_BATCH;
        nl_ctx_reset(c);
        nl_var *lg = nl_model_forward(m, c, nl_model_input(m, c, x + (size_t)i * (size_t)m->in_dim, bs), 0);
        if (!lg) { s = nl_last_status() ? nl_last_status() : NL_EINVAL; break; }
        int64_t C = lg->val.shape[1];
        for (int64_t r = 0; r < bs; r++) {
            int64_t best = 0;
            for (int64_t k = 1; k < C; k++)
                if (nl_tensor_get(&lg->val, r * C + k) > nl_tensor_get(&lg->val, r * C + best)) best = k;
            pred[i + r] = (int32_t)best;
        }
    }
    nl_ctx_free(c);
    return s;
}

/* ---------------- progress display ---------------- */
static void fmt_eta(double sec, char *buf, size_t n) {
    if (!isfinite(sec) || sec < 0) { snprintf(buf, n, "?"); return; }
    long s = (long)(sec + 0.5);
    if (s >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else snprintf(buf, n, "%ld:%02ld", s / 60, s % 60);
}

typedef struct {
    int tty, verbose; /* tty: redraw a bar in place on stderr (default sink and stderr is a terminal) */
    double last_draw;
    int drawn;     /* a bar is on screen (needs a newline before other output) */
} display;

static void bar_clear(display *d) {
    if (d->drawn) {
        fputs("\r\033[K", stderr);
        d->drawn = 0;
    }
}

static void show_progress(display *d, const nl_train_progress *p, double eta, int force) {
    if (d->verbose < 1 || !d->tty) return;
    double now = nl_time();
    if (!force && now - d->last_draw < 0.1) return;
    d->last_draw = now;
    char e[32];
    fmt_eta(eta, e, sizeof e);
    const int W = 20;
    int fill = p->total_steps > 0 ? (int)((double)W * (double)p->step / (double)p->total_steps) : 0;
    char bar[32];
    for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
    bar[W] = 0;
    fprintf(stderr, "\repoch %lld/%lld [%s] step %lld/%lld  loss %.4f  %.0f samples/s  ETA %s\033[K", (long long)p->epoch,
            (long long)p->epochs, bar, (long long)p->step, (long long)p->total_steps, p->loss, p->samples_per_sec, e);
    fflush(stderr);
    d->drawn = 1;
}

static void log_line(display *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(display *d, const char *fmt, ...) {
    if (d->verbose < 1) return;
    bar_clear(d);
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    nl_progress("%s", buf);
}

/* ---------------- the loop ---------------- */
static int push_epoch(nl_train_result *r, const nl_epoch_record *e) {
    nl_epoch_record *ne = realloc(r->epoch, (size_t)(r->n_epochs + 1) * sizeof *ne);
    if (!ne) return -1;
    r->epoch = ne;
    r->epoch[r->n_epochs++] = *e;
    return 0;
}

static int push_curve(nl_train_result *r, double step, double loss, double acc) {
    double *a = realloc(r->curve_step, (size_t)(r->n_curve + 1) * sizeof *a);
    if (!a) return -1;
    r->curve_step = a;
    double *b = realloc(r->curve_loss, (size_t)(r->n_curve + 1) * sizeof *b);
    if (!b) return -1;
    r->curve_loss = b;
    double *c = realloc(r->curve_acc, (size_t)(r->n_curve + 1) * sizeof *c);
    if (!c) return -1;
    r->curve_acc = c;
    r->curve_step[r->n_curve] = step;
    r->curve_loss[r->n_curve] = loss;
    r->curve_acc[r->n_curve] = acc;
    r->n_curve++;
    return 0;
}

/* First trainable parameter whose gradient holds a NaN/Inf (NULL if none). */
static const nl_param *bad_gradient(const nl_params *ps) {
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        if (!p->var.requires_grad) continue;
        for (int64_t k = 0; k < p->numel; k++) {
            double g = ps->dtype == NL_F32 ? (double)((const float *)ps->grad)[p->offset + k] : ((const double *)ps->grad)[p->offset + k];
            if (!isfinite(g)) return p;
        }
    }
    return NULL;
}

static nl_status fail(nl_train_result *r, nl_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static nl_status fail(nl_train_result *r, nl_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    return nl_set_error(s, "%s", r->message);
}

nl_status nl_train_run(nl_model *m, const nl_dataset *train, const nl_dataset *valid, const nl_train_config *cfg,
                       const nl_train_callbacks *cb, nl_train_result *r) {
    memset(r, 0, sizeof *r);
    r->valid_accuracy = r->valid_loss = r->best_valid_accuracy = NAN;
    const double t_start = nl_time();
    static const nl_train_callbacks no_cb;
    if (!cb) cb = &no_cb;
    const char *vname = cfg->valid_name ? cfg->valid_name : "valid";
    /* the redrawn bar only when progress goes to the default sink and that is a terminal; with a sink set
     * (nl_set_progress) everything, the periodic step lines included, goes through nl_progress */
    /* data-parallel under MPI (train.h, docs/distributed.md): P replicas, each global batch split across them */
    const int dp_size = nl_dist_size(), dp_rank = nl_dist_rank();
    const int is_root = dp_rank == 0; /* rank 0 alone logs and writes checkpoints */
    display d = {isatty(2) && !nl_get_progress(NULL), is_root ? cfg->verbose : 0, 0, 0};
    int64_t last_ckpt_epoch = 0;

    /* ---- checks ---- */
    if (!train || train->n < 1 || !train->x || !train->y) return fail(r, NL_EINVAL, "train: the training set is empty");
    if (train->d != m->in_dim)
        return fail(r, NL_ESHAPE, "train: training set '%s' has %lld features per example, the model expects %lld", train->name,
                    (long long)train->d, (long long)m->in_dim);
    if (valid && valid->n > 0 && valid->d != m->in_dim)
        return fail(r, NL_ESHAPE, "train: %s set has %lld features per example, the model expects %lld", vname,
                    (long long)valid->d, (long long)m->in_dim);
    if (valid && valid->n < 1) valid = NULL;
    for (int64_t i = 0; i < train->n; i++)
        if (train->y[i] < 0 || train->y[i] >= m->n_classes)
            return fail(r, NL_EINVAL, "train: label %d of row %lld is outside [0, %d)", train->y[i], (long long)i, m->n_classes);
    if (cfg->batch < 1) return fail(r, NL_EINVAL, "train: batch must be >= 1 (got %lld)", (long long)cfg->batch);
    if (cfg->batch % dp_size)
        return fail(r, NL_EINVAL, "train: batch %lld is not divisible by the %d MPI ranks (data-parallel training splits every "
                    "batch evenly; use a multiple of %d)", (long long)cfg->batch, dp_size, dp_size);
    if (cfg->steps < 0 || (cfg->steps == 0 && cfg->epochs < 1))
        return fail(r, NL_EINVAL, "train: need epochs >= 1 or steps >= 1 (got epochs %lld, steps %lld)", (long long)cfg->epochs,
                    (long long)cfg->steps);
    if (cfg->patience < 0 || cfg->eval_every < 0) return fail(r, NL_EINVAL, "train: patience and eval_every must be >= 0");
    if (cfg->patience > 0 && !valid) return fail(r, NL_EINVAL, "train: early stopping (patience %d) needs a validation set", cfg->patience);
    if (!(cfg->label_smoothing >= 0 && cfg->label_smoothing < 1))
        return fail(r, NL_EINVAL, "train: label_smoothing %g must be in [0, 1)", cfg->label_smoothing);
    if (cfg->threads > 0) nl_set_num_threads(cfg->threads);
    if (cfg->save_every < 0 || (cfg->save_every > 0 && !cfg->checkpoint_path))
        return fail(r, NL_EINVAL, "train: save_every %lld needs a checkpoint path (and must be >= 0)", (long long)cfg->save_every);

    nl_batcher bt;
    nl_status s = nl_batcher_init(&bt, train, cfg->batch, 1, cfg->seed);
    if (s) return fail(r, s, "%s", nl_last_error());
    nl_batcher_set_drop_last(&bt, cfg->drop_last);
    const int64_t nb = nl_batcher_num_batches(&bt);
    if (nb < 1) {
        nl_batcher_free(&bt);
        return fail(r, NL_EINVAL, "train: no complete batch of %lld in %lld examples (drop_last)", (long long)cfg->batch, (long long)train->n);
    }
    const int64_t total = cfg->steps > 0 ? cfg->steps : cfg->epochs * nb;
    const int64_t n_epochs = (total + nb - 1) / nb;
    nl_optim_config oc = cfg->optim;
    if (oc.total_steps == 0) oc.total_steps = total;
    nl_optim opt;
    if ((s = nl_optim_init(&opt, &m->ps, &oc))) {
        nl_batcher_free(&bt);
        return fail(r, s, "%s", nl_last_error());
    }
    nl_ctx *c = nl_ctx_new(0, 0);
    void *best = NULL;
    nl_dist_reducer *red = NULL; /* data-parallel with overlap: buckets reduced during backward */
    if (!c) {
        s = fail(r, NL_ENOMEM, "train: out of memory for the context");
        goto out;
    }
    if (dp_size > 1 && cfg->dist_bucket_mb > 0 && (s = nl_dist_reducer_new(&red, &m->ps, cfg->dist_bucket_mb))) {
        s = fail(r, s, "%s", nl_last_error());
        goto out;
    }
    if (cfg->restore_best && valid) {
        best = malloc((size_t)m->ps.total * nl_dtype_size(m->ps.dtype) + 1);
        if (!best) {
            s = fail(r, NL_ENOMEM, "train: out of memory for the best weights");
            goto out;
        }
    }

    const int64_t log_every = cfg->log_every > 0 ? cfg->log_every : (nb >= 5 ? nb / 5 : 1);
    const int64_t curve_every = cfg->curve_every > 0 ? cfg->curve_every : (nb >= 20 ? nb / 20 : 1);
    const int eval_every = cfg->eval_every;
    int since_best = 0;
    double curve_sum = 0;
    int64_t curve_n = 0, curve_ok = 0, curve_seen = 0;
    r->steps_per_epoch = nb;
    nl_train_progress p;
    memset(&p, 0, sizeof p);
    p.epochs = n_epochs;
    p.total_steps = total;
    p.valid_accuracy = p.valid_loss = NAN;
    int stop = 0;
    int64_t start_ep = 1;
    if (cfg->resume_path) { /* resumable training (train.h): weights, optimizer, data position, RNG, early stopping */
        nl_train__pos rp;
        if ((s = nl_train__resume(cfg->resume_path, m, &opt, &bt, &rp, &start_ep))) {
            s = fail(r, s, "%s", nl_last_error());
            goto out;
        }
        r->steps = rp.step;
        r->best_valid_accuracy = rp.best_valid_accuracy;
        r->best_epoch = rp.best_epoch;
        since_best = rp.since_best;
        log_line(&d, "resumed from %s at step %lld (epoch %lld)", cfg->resume_path, (long long)rp.step, (long long)start_ep);
    }

    /* dropout masks: stream (model seed's dropout stream + rank), so the replicas draw different masks (rank 0 keeps
     * the single-process stream; with dropout a run depends on the rank count) */
    if (dp_size > 1) m->dropout_rng.stream += (uint64_t)dp_rank;
    for (int64_t ep = start_ep; ep <= n_epochs && !stop; ep++) {
        if (ep > start_ep) nl_batcher_reset(&bt);
        p.epoch = ep;
        nl_epoch_record er;
        memset(&er, 0, sizeof er);
        er.epoch = ep;
        er.valid_accuracy = er.valid_loss = NAN;
        double lsum = 0, t_train = 0;
        int64_t ok = 0, seen = 0;
        float *xb;
        int32_t *yb;
        int64_t bs;
        while (r->steps < total && nl_batcher_next(&bt, &xb, &yb, &bs)) {
            const double t0 = nl_time();
            const int64_t step1 = r->steps + 1;
            nl_ctx_reset(c);
            /* this rank's rows of the global batch: [lo, lo + lb) (all of it with one process) */
            const int64_t lo = bs * dp_rank / dp_size, lb = bs * (dp_rank + 1) / dp_size - lo;
            nl_var *x = NULL, *logits = NULL, *loss = NULL;
            if (lb > 0) {
                x = nl_model_input(m, c, xb + (size_t)lo * (size_t)train->d, lb);
                logits = nl_model_forward(m, c, x, 1);
                loss = !logits ? NULL
                       : cb->loss ? cb->loss(cb->ud, c, m, x, logits, yb + lo, lb)
                                  : nl_cross_entropy(c, logits, yb + lo, cfg->label_smoothing, -1);
                if (!loss) {
                    s = fail(r, nl_last_status() ? nl_last_status() : NL_EINVAL, "step %lld: %s", (long long)step1, nl_last_error());
                    if (dp_size > 1) nl_dist_abort(1); /* the other ranks would wait in the all-reduce forever */
                    goto out;
                }
            }
            double lv = lb > 0 ? nl_item(loss) : 0, bok_d = lb > 0 ? (double)count_correct(logits, yb + lo, lb) : 0;
            if (dp_size > 1) { /* the global batch's mean loss and correct count, the same bits on every rank */
                double red[2] = {lv * (double)lb / (double)bs, bok_d}; /* (2) */
                if ((s = nl_dist_allreduce_f64(red, 2))) {
                    s = fail(r, s, "step %lld: %s", (long long)step1, nl_last_error());
                    goto out;
                }
                lv = red[0];
                bok_d = red[1];
            }
            if (!isfinite(lv)) {
                r->nonfinite = 1;
                r->bad_step = step1;
                s = fail(r, NL_ENONFINITE, "step %lld: loss is %s", (long long)step1, isnan(lv) ? "NaN" : lv > 0 ? "+Inf" : "-Inf");
                goto out;
            }
            nl_params_zero_grad(&m->ps);
            if (red) nl_dist_reducer_begin(red, c, (double)lb / (double)bs);
            const double tb0 = nl_time();
            if (lb > 0 && (s = nl_backward(c, loss))) {
                s = fail(r, s, "step %lld: backward: %s", (long long)step1, nl_last_error());
                if (dp_size > 1) nl_dist_abort(1);
                goto out;
            }
            const double tb1 = nl_time();
            if (dp_size > 1 && (s = red ? nl_dist_reducer_finish(red, c) : nl_dist_allreduce_grads(&m->ps, (double)lb / (double)bs))) {
                s = fail(r, s, "step %lld: gradient all-reduce: %s", (long long)step1, nl_last_error());
                goto out;
            }
            if (dp_size > 1) {
                r->dist_backward_seconds += tb1 - tb0;
                r->dist_comm_seconds += nl_time() - tb1;
            }
            if (cb->before_step && (s = cb->before_step(cb->ud, m, &opt, r->steps))) {
                s = fail(r, s, "step %lld: %s", (long long)step1, nl_last_error());
                goto out;
            }
            p.lr = nl_optim_lr(&opt);
            if ((s = nl_optim_step(&opt))) {
                if (s == NL_ENONFINITE) {
                    const nl_param *bp = bad_gradient(&m->ps);
                    r->nonfinite = 1;
                    r->bad_step = step1;
                    if (bp) s = fail(r, s, "step %lld: gradient of %s is not finite", (long long)step1, bp->name);
                    else s = fail(r, s, "step %lld: %s", (long long)step1, nl_last_error());
                } else {
                    s = fail(r, s, "step %lld: %s", (long long)step1, nl_last_error());
                }
                goto out;
            }
            r->steps = step1;
            r->samples += bs;
            const int64_t bok = (int64_t)bok_d;
            ok += bok;
            seen += bs;
            curve_ok += bok;
            curve_seen += bs;
            lsum += lv;
            er.steps++;
            t_train += nl_time() - t0;
            curve_sum += lv;
            if (++curve_n == curve_every) {
                push_curve(r, (double)r->steps, curve_sum / (double)curve_n, (double)curve_ok / (double)curve_seen);
                curve_sum = 0;
                curve_n = curve_ok = curve_seen = 0;
            }
            p.step = r->steps;
            p.loss = lv;
            p.epoch_loss = lsum / (double)er.steps;
            p.epoch_accuracy = (double)ok / (double)seen;
            p.epoch_seconds = t_train;
            p.samples_per_sec = t_train > 0 ? (double)seen / t_train : 0;
            const double eta = (r->train_seconds + t_train) / (double)r->steps * (double)(total - r->steps);
            /* the display shows the run's rate so far (a fresh epoch's first steps alone are noisy) */
            nl_train_progress pd = p;
            pd.samples_per_sec = (double)r->samples / (r->train_seconds + t_train);
            if (d.tty) show_progress(&d, &pd, eta, 0);
            else if (r->steps % log_every == 0 && r->steps < total) {
                char e[32];
                fmt_eta(eta, e, sizeof e);
                log_line(&d, "epoch %lld/%lld step %lld/%lld loss %.4f %.0f samples/s ETA %s", (long long)ep, (long long)n_epochs,
                         (long long)r->steps, (long long)total, lv, pd.samples_per_sec, e);
            }
            if (cfg->save_every > 0 && r->steps % cfg->save_every == 0) {
                const nl_param *bad;
                if (!nl_model_params_finite(m, &bad)) {
                    r->nonfinite = 1;
                    r->bad_step = r->steps;
                    s = fail(r, NL_ENONFINITE, "step %lld: %s is not finite after the update", (long long)r->steps, bad->name);
                    goto out;
                }
                nl_train__pos cp = {r->steps, ep, r->best_valid_accuracy, r->best_epoch, since_best};
                if (is_root && (s = nl_train__checkpoint(cfg->checkpoint_path, m, &opt, &bt, &cp))) {
                    s = fail(r, s, "checkpoint at step %lld: %s", (long long)r->steps, nl_last_error());
                    if (dp_size > 1) nl_dist_abort(1); /* the other ranks cannot know: end the job */
                    goto out;
                }
                r->checkpoints++;
                last_ckpt_epoch = ep;
            }
            if (cb->on_step && cb->on_step(cb->ud, m, &p)) {
                r->stopped_by_callback = 1;
                stop = 1;
                break;
            }
        }
        if (curve_n > 0 && (r->steps == total || stop)) { /* flush the partial window at the very end */
            push_curve(r, (double)r->steps, curve_sum / (double)curve_n, (double)curve_ok / (double)curve_seen);
            curve_sum = 0;
            curve_n = curve_ok = curve_seen = 0;
        }
        er.seconds = t_train;
        er.train_loss = er.steps ? lsum / (double)er.steps : NAN;
        er.train_accuracy = seen ? (double)ok / (double)seen : NAN;
        er.samples_per_sec = t_train > 0 ? (double)seen / t_train : 0;
        r->train_seconds += t_train;
        r->final_loss = er.train_loss;
        const int last = r->steps >= total || stop;
        const int do_eval = last || (eval_every > 0 && ep % eval_every == 0);
        if (do_eval) {
            /* weights must be finite before anything is evaluated or saved */
            const nl_param *bad;
            if (!nl_model_params_finite(m, &bad)) {
                r->nonfinite = 1;
                r->bad_step = r->steps;
                s = fail(r, NL_ENONFINITE, "step %lld: %s is not finite after the update", (long long)r->steps, bad->name);
                goto out;
            }
            if (valid) {
                double t0 = nl_time();
                if ((s = nl_evaluate_ex(m, c, valid, cfg->eval_batch, &er.valid_accuracy, &er.valid_loss))) {
                    s = fail(r, s, "evaluation after epoch %lld: %s", (long long)ep, nl_last_error());
                    goto out;
                }
                er.eval_seconds = nl_time() - t0;
                r->valid_accuracy = p.valid_accuracy = er.valid_accuracy;
                r->valid_loss = p.valid_loss = er.valid_loss;
                if (isnan(r->best_valid_accuracy) || er.valid_accuracy > r->best_valid_accuracy) {
                    r->best_valid_accuracy = er.valid_accuracy;
                    r->best_epoch = ep;
                    since_best = 0;
                    if (best) memcpy(best, m->ps.data, (size_t)m->ps.total * nl_dtype_size(m->ps.dtype));
                } else {
                    since_best++;
                }
            }
            if (cfg->checkpoint_path) {
                nl_train__pos cp = {r->steps, ep, r->best_valid_accuracy, r->best_epoch, since_best};
                if (is_root && (s = nl_train__checkpoint(cfg->checkpoint_path, m, &opt, &bt, &cp))) {
                    s = fail(r, s, "checkpoint after epoch %lld: %s", (long long)ep, nl_last_error());
                    if (dp_size > 1) nl_dist_abort(1);
                    goto out;
                }
                r->checkpoints++;
                last_ckpt_epoch = ep;
            }
        }
        if (push_epoch(r, &er)) {
            s = fail(r, NL_ENOMEM, "train: out of memory");
            goto out;
        }
        if (valid && do_eval)
            log_line(&d, "epoch %lld/%lld: loss %.4f  train acc %.2f%%  %s acc %.2f%%  %s loss %.4f  %.2f s  %.0f samples/s", (long long)ep,
                     (long long)n_epochs, er.train_loss, 100 * er.train_accuracy, vname, 100 * er.valid_accuracy, vname, er.valid_loss,
                     er.seconds, er.samples_per_sec);
        else
            log_line(&d, "epoch %lld/%lld: loss %.4f  train acc %.2f%%  %.2f s  %.0f samples/s", (long long)ep, (long long)n_epochs,
                     er.train_loss, 100 * er.train_accuracy, er.seconds, er.samples_per_sec);
        if (cb->on_epoch && cb->on_epoch(cb->ud, m, &p)) {
            r->stopped_by_callback = 1;
            break;
        }
        if (cfg->patience > 0 && do_eval && since_best >= cfg->patience) {
            r->stopped_early = 1;
            log_line(&d, "early stopping: no better %s accuracy for %d evaluations (best %.2f%% at epoch %lld)", vname, cfg->patience,
                     100 * r->best_valid_accuracy, (long long)r->best_epoch);
            break;
        }
    }
    if (best && r->best_epoch > 0 && r->best_epoch != r->epoch[r->n_epochs - 1].epoch) {
        memcpy(m->ps.data, best, (size_t)m->ps.total * nl_dtype_size(m->ps.dtype));
        r->valid_accuracy = r->best_valid_accuracy;
        if (cfg->checkpoint_path) {
            if (is_root && (s = nl_model_save(m, cfg->checkpoint_path, 0, NULL, NULL))) {
                s = fail(r, s, "checkpoint of the best weights: %s", nl_last_error());
                goto out;
            }
            r->checkpoints++;
        }
    }
    s = NL_OK;
out:
    if (s == NL_ENONFINITE) {
        char extra[200] = "";
        if (cfg->checkpoint_path && last_ckpt_epoch > 0)
            snprintf(extra, sizeof extra, "; the last good checkpoint %s (epoch %lld) is kept", cfg->checkpoint_path, (long long)last_ckpt_epoch);
        else if (cfg->checkpoint_path)
            snprintf(extra, sizeof extra, "; no checkpoint was written");
        size_t len = strlen(r->message);
        snprintf(r->message + len, sizeof r->message - len, "%s", extra);
        nl_set_error(s, "%s", r->message);
    }
    if (s) log_line(&d, "training stopped: %s", r->message);
    else bar_clear(&d);
    r->total_seconds = nl_time() - t_start;
    r->samples_per_sec = r->train_seconds > 0 ? (double)r->samples / r->train_seconds : 0;
    if (red) r->dist_hook_seconds = nl_dist_reducer_get_stats(red).hook_seconds;
    nl_dist_reducer_free(red);
    free(best);
    nl_ctx_free(c);
    nl_optim_free(&opt);
    nl_batcher_free(&bt);
    return s;
}
