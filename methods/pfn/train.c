/* PFN training on prior datasets: borders from prior samples, weighted split sampler, Adam + warmup + cosine,
 * gradient clipping (include/pfn/pfn.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gp/gp.h"
#include "pfn/pfn.h"

nl_pfn_train_config nl_pfn_train_defaults(void) {
    nl_pfn_train_config t;
    memset(&t, 0, sizeof t);
    t.steps = 2000;
    t.batch = 32;
    t.lr = 1e-3;
    t.warmup_frac = 0.1;
    t.min_ratio = 0.01;
    t.clip = 1.0;
    t.border_datasets = 2000;
    t.seed = 1;
    return t;
}

void nl_pfn_train_stats_free(nl_pfn_train_stats *s) {
    free(s->loss);
    s->loss = NULL;
}

nl_status nl_pfn_borders_from_prior(const nl_pfn_prior *p, int K, int64_t datasets, int64_t T, uint64_t seed,
                                    double *borders) {
    if (datasets < 1 || T < 1) return nl_set_error(NL_EINVAL, "pfn borders: need datasets >= 1 and T >= 1");
    if (datasets * T < K + 1)
        return nl_set_error(NL_EINVAL, "pfn borders: %lld samples are too few for %d buckets", (long long)(datasets * T), K);
    double *x = malloc((size_t)(datasets * T * p->dim) * sizeof *x), *y = malloc((size_t)(datasets * T) * sizeof *y);
    nl_status st = NL_OK;
    if (!x || !y) st = nl_set_error(NL_ENOMEM, "pfn borders: out of memory");
    nl_rng r;
    nl_rng_init(&r, seed, NL_PFN_STREAM_BORDERS);
    if (!st) st = p->sample(p, &r, datasets, T, x, y, NULL);
    nl_pfn_bar bar;
    if (!st && !(st = nl_pfn_bar_from_samples(&bar, K, y, datasets * T, 1))) {
        memcpy(borders, bar.borders, (size_t)(K + 1) * sizeof *borders);
        nl_pfn_bar_free(&bar);
    }
    free(x);
    free(y);
    return st;
}

nl_status nl_pfn_fit(nl_pfn *m, const nl_pfn_config *cfg, const nl_pfn_prior *p, const nl_pfn_train_config *tc,
                     nl_pfn_train_stats *stats) {
    memset(m, 0, sizeof *m);
    if (stats) memset(stats, 0, sizeof *stats);
    nl_status st = nl_pfn_config_check(cfg);
    if (st) return st;
    if (cfg->dim != p->dim)
        return nl_set_error(NL_EINVAL, "pfn fit: model dim %d differs from the prior's dim %d", cfg->dim, p->dim);
    double *bd = malloc((size_t)(cfg->n_buckets + 1) * sizeof *bd);
    if (!bd) return nl_set_error(NL_ENOMEM, "pfn fit: out of memory");
    st = nl_pfn_borders_from_prior(p, cfg->n_buckets, tc->border_datasets, cfg->seq, tc->seed, bd);
    if (!st) st = nl_pfn_init(m, cfg, bd, tc->seed);
    free(bd);
    if (st) return st;
    snprintf(m->prior_name, sizeof m->prior_name, "%s", p->name);
    snprintf(m->prior_desc, sizeof m->prior_desc, "%s", p->desc);
    const nl_gpr_hyper *h = nl_pfn_prior_gp_hyper_of(p);
    if (h) m->prior_ls = h->lengthscale[0], m->prior_os = h->outputscale, m->prior_noise = h->noise;
    if ((st = nl_pfn_train(m, p, tc, stats))) nl_pfn_free(m);
    return st;
}

nl_status nl_pfn_train(nl_pfn *m, const nl_pfn_prior *p, const nl_pfn_train_config *tc, nl_pfn_train_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (p->dim != m->cfg.dim)
        return nl_set_error(NL_EINVAL, "pfn train: model dim %d differs from the prior's dim %d", m->cfg.dim, p->dim);
    if (tc->steps < 0 || tc->batch < 1 || !(tc->lr > 0) || !(tc->warmup_frac >= 0 && tc->warmup_frac <= 1) || !(tc->clip >= 0))
        return nl_set_error(NL_EINVAL, "pfn train: bad training configuration (steps %lld, batch %lld, lr %g)", (long long)tc->steps,
                            (long long)tc->batch, tc->lr);
    int64_t B = tc->batch, T = m->cfg.seq, d = m->cfg.dim;
    double *x = malloc((size_t)(B * T * d) * sizeof *x), *y = malloc((size_t)(B * T) * sizeof *y);
    double *curve = malloc((size_t)(tc->steps > 0 ? tc->steps : 1) * sizeof *curve);
    nl_ctx *c = nl_ctx_new((size_t)8 << 20, 0);
    nl_optim opt;
    memset(&opt, 0, sizeof opt);
    nl_status st = NL_OK;
    if (!x || !y || !curve || !c) {
        st = nl_set_error(NL_ENOMEM, "pfn train: out of memory");
        goto done;
    }
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
    oc.lr = tc->lr;
    oc.clip_norm = tc->clip;
    oc.sched = NL_SCHED_COSINE;
    oc.warmup_steps = (int64_t)llround(tc->warmup_frac * (double)tc->steps);
    oc.total_steps = tc->steps > 0 ? tc->steps : 1;
    oc.min_ratio = tc->min_ratio;
    if ((st = nl_optim_init(&opt, &m->ps, &oc))) goto done;
    nl_rng r;
    nl_rng_init(&r, tc->seed, NL_PFN_STREAM_DATA);
    double t0 = nl_time();
    int64_t s;
    for (s = 0; s < tc->steps; s++) {
        if (tc->max_seconds > 0 && nl_time() - t0 > tc->max_seconds) break;
        int64_t n = nl_pfn_sample_split(&r, T);
        if ((st = p->sample(p, &r, B, T, x, y, NULL))) goto done;
        nl_ctx_reset(c);
        nl_var *loss = nl_pfn_loss(m, c, x, y, B, T, n);
        if (!loss) {
            st = nl_last_status();
            goto done;
        }
        double lv = nl_item(loss);
        curve[s] = lv;
        nl_params_zero_grad(&m->ps);
        if ((st = nl_backward(c, loss))) goto done;
        if ((st = nl_optim_step(&opt))) goto done;
        m->steps_trained++;
        if (tc->verbose && (s % 100 == 0 || s == tc->steps - 1)) {
            double avg = 0;
            int64_t k0 = s >= 99 ? s - 99 : 0;
            for (int64_t k = k0; k <= s; k++) avg += curve[k] / (double)(s - k0 + 1);
            nl_progress("pfn step %lld/%lld  loss %.4f (mean of last %lld %.4f)  lr %.2e  |g| %.3g  %.1fs", (long long)s,
                    (long long)tc->steps, lv, (long long)(s - k0 + 1), avg, nl_optim_lr(&opt), opt.last_grad_norm, nl_time() - t0);
        }
    }
    if (stats) {
        stats->steps = s;
        stats->seconds = nl_time() - t0;
        int64_t w = s < 50 ? s : 50;
        for (int64_t k = 0; k < w; k++) stats->first_loss += curve[k] / (double)w;
        for (int64_t k = s - w; k < s; k++) stats->last_loss += curve[k] / (double)w;
        stats->loss = curve;
        curve = NULL;
    }
done:
    nl_optim_free(&opt);
    if (c) nl_ctx_free(c);
    free(x);
    free(y);
    free(curve);
    return st;
}
