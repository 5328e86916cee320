/* The LM's AdamW training loop (transformer.h nl_lm_train), data-parallel over MPI ranks when nl_dist_size() > 1
 * (docs/distributed.md "Data-parallel nnlab lm train"). */
#include "transformer/transformer.h"
#include "nnlab/dist.h"
#include "nnlab/extend.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nl_lm_train_config nl_lm_train_defaults(void) {
    nl_lm_train_config t;
    memset(&t, 0, sizeof t);
    t.steps = 200;
    t.batch = 16;
    t.lr = 3e-3;
    t.min_ratio = 0.1;
    t.weight_decay = 0.01;
    t.clip = 1.0;
    t.beta2 = 0.99;
    t.warmup = 20;
    t.log_every = 50;
    t.dist_bucket_mb = 1;
    return t;
}

static nl_status default_batch(const nl_lm_train_config *tc, nl_rng *r, int64_t B, int64_t T, int32_t *ids, int32_t *tg) {
    if (!tc->tokens || tc->n_tokens < T + 2)
        return nl_set_error(NL_EINVAL, "lm train: the training data has %lld tokens, fewer than one window of %lld + 1",
                            (long long)tc->n_tokens, (long long)T);
    for (int64_t b = 0; b < B; b++) {
        int64_t s = nl_rng_below(r, tc->n_tokens - T);
        memcpy(ids + b * T, tc->tokens + s, sizeof(int32_t) * (size_t)T);
        memcpy(tg + b * T, tc->tokens + s + 1, sizeof(int32_t) * (size_t)T);
    }
    return NL_OK;
}

nl_status nl_lm_train(nl_lm *m, const nl_lm_train_config *tc, nl_lm_train_result *res) {
    memset(res, 0, sizeof *res);
    res->first_loss = res->final_loss = NAN;
    const int64_t T = tc->context > 0 ? tc->context : m->cfg.context, B = tc->batch;
    if (T > m->cfg.context)
        return nl_set_error(NL_EINVAL, "lm train: context %lld exceeds the model context %d", (long long)T, m->cfg.context);
    if (B < 1 || tc->steps < 0) return nl_set_error(NL_EINVAL, "lm train: batch must be >= 1 and steps >= 0");
    /* data-parallel: every rank draws the same global batch (same data stream) and takes rows [lo, lo + lb) */
    const int P = nl_dist_size(), me = nl_dist_rank(), root = me == 0;
    if (B % P)
        return nl_set_error(NL_EINVAL, "lm train: batch %lld is not divisible by the %d MPI ranks (data-parallel training "
                            "splits every batch evenly; use a multiple of %d)", (long long)B, P, P);
    const int64_t lb = B / P, lo = lb * me;
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAMW);
    oc.lr = tc->lr;
    oc.weight_decay = tc->weight_decay;
    oc.clip_norm = tc->clip;
    oc.beta2 = tc->beta2 > 0 ? tc->beta2 : 0.999;
    oc.sched = NL_SCHED_COSINE;
    oc.warmup_steps = tc->warmup < tc->steps ? tc->warmup : (tc->steps > 1 ? tc->steps - 1 : 0);
    oc.total_steps = tc->steps;
    oc.min_ratio = tc->min_ratio;
    /* no weight decay on norms and biases */
    for (int i = 0; i < m->ps.n; i++) {
        nl_param *p = m->ps.p[i];
        if (p->var.val.ndim < 2) p->wd_mult = 0;
    }
    nl_optim opt;
    nl_status st = nl_optim_init(&opt, &m->ps, &oc);
    if (st) return st;
    nl_dist_reducer *red = NULL; /* P > 1 with dist_bucket_mb > 0: gradient buckets reduced during backward */
    nl_ctx *c = nl_ctx_new(0, 0);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(B * T)), *tg = malloc(sizeof(int32_t) * (size_t)(B * T)); /* (B, T) */
    if (!c || !ids || !tg) { st = nl_set_error(NL_ENOMEM, "lm train: out of memory"); goto done; }
    if (P > 1 && tc->dist_bucket_mb > 0 && (st = nl_dist_reducer_new(&red, &m->ps, tc->dist_bucket_mb))) goto done;
    nl_rng r;
    nl_rng_init(&r, tc->seed, (uint64_t)0xDA7AULL << 32);
    int64_t s0 = 0; /* first step: 0, or where the resumed run stopped */
    if (tc->save_every < 0 || (tc->save_every > 0 && !tc->save_path)) {
        st = nl_set_error(NL_EINVAL, "lm train: save_every %lld needs a save path (and must be >= 0)", (long long)tc->save_every);
        goto done;
    }
    if (tc->resume_path && (st = nl_lm_resume_train(m, tc->resume_path, &opt, &r, B, T, &s0))) goto done;
    res->steps = s0;
    const int64_t s_end = tc->stop_after > 0 && tc->stop_after < tc->steps ? tc->stop_after : tc->steps;
    double t0 = nl_time(), tail = 0;
    int64_t ntail = 0, tail_from = tc->steps - (tc->steps / 10 > 0 ? tc->steps / 10 : 1);
    for (int64_t s = s0; s < s_end; s++) {
        st = tc->batch_fn ? tc->batch_fn(tc->batch_ud, s, B, T, ids, tg) : default_batch(tc, &r, B, T, ids, tg);
        if (st) goto done; /* the same on every rank (the same global batch) */
        nl_ctx_reset(c);
        nl_var *loss = nl_lm_loss(m, c, ids + lo * T, tg + lo * T, lb, T, 1);
        if (!loss) {
            st = nl_last_status();
            if (P > 1) nl_dist_abort(1); /* the other ranks would wait in the all-reduce forever */
            goto done;
        }
        double lv = nl_item(loss);
        if (P > 1) { /* the global batch's mean loss, the same bits on every rank */
            lv *= (double)lb / (double)B;
            if ((st = nl_dist_allreduce_f64(&lv, 1))) goto done;
        }
        if (!isfinite(lv)) {
            st = nl_set_error(NL_ENONFINITE, "lm train: step %lld: loss is %s", (long long)s + 1, isnan(lv) ? "NaN" : lv > 0 ? "+Inf" : "-Inf");
            goto done;
        }
        nl_params_zero_grad(&m->ps);
        if (red) nl_dist_reducer_begin(red, c, (double)lb / (double)B);
        /* the step, then what failed (a non-finite gradient names its parameter) */
        if ((st = nl_backward(c, loss))) {
            st = nl_set_error(st, "lm train: step %lld: backward: %s", (long long)s + 1, nl_last_error());
            if (P > 1) nl_dist_abort(1);
            goto done;
        }
        if (P > 1 && (st = red ? nl_dist_reducer_finish(red, c) : nl_dist_allreduce_grads(&m->ps, (double)lb / (double)B))) {
            st = nl_set_error(st, "lm train: step %lld: gradient all-reduce: %s", (long long)s + 1, nl_last_error());
            goto done;
        }
        if ((st = nl_optim_step(&opt))) { st = nl_set_error(st, "lm train: step %lld: %s", (long long)s + 1, nl_last_error()); goto done; }
        if (tc->loss_out) tc->loss_out[s] = lv;
        if (s == s0) res->first_loss = lv;
        if (s >= tail_from) { tail += lv; ntail++; }
        res->steps = s + 1;
        if (root && tc->save_every > 0 && (s + 1) % tc->save_every == 0 && (st = nl_lm_save_train(m, tc->save_path, &opt, &r, B, T, s + 1))) {
            if (P > 1) nl_dist_abort(1); /* rank 0 alone writes; the others cannot know */
            goto done;
        }
        if (root && tc->verbose && tc->log_every > 0 && ((s + 1) % tc->log_every == 0 || s == 0))
            nl_progress("  step %lld/%lld loss %.4f lr %.2e (%.1fs)", (long long)s + 1, (long long)tc->steps, lv,
                    nl_sched_lr(&opt.cfg, s), nl_time() - t0);
        if (tc->time_limit > 0) {
            double over = nl_time() - t0 > tc->time_limit ? 1 : 0; /* any rank over: all stop at this step */
            if (P > 1 && (st = nl_dist_allreduce_f64(&over, 1))) goto done;
            if (over > 0) {
                if (!ntail) { tail = lv; ntail = 1; }
                break;
            }
        }
    }
    if (root && tc->save_path && (st = nl_lm_save_train(m, tc->save_path, &opt, &r, B, T, res->steps))) {
        if (P > 1) nl_dist_abort(1);
        goto done;
    }
    res->final_loss = ntail ? tail / (double)ntail : res->first_loss;
    res->seconds = nl_time() - t0;
    res->tokens_per_sec = res->seconds > 0 ? (double)(res->steps * B * T) / res->seconds : 0;
done:
    nl_dist_reducer_free(red);
    free(ids);
    free(tg);
    nl_ctx_free(c);
    nl_optim_free(&opt);
    return st;
}
