/* N2N search: data, teacher, student distillation, the two REINFORCE stages, the final students. */
#include "compress/kd.h"
#include "n2n/n2n.h"
#include "nnlab/ops.h"
#include "nnlab/optim.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_n2n_config nl_n2n_defaults(void) {
    nl_n2n_config c;
    memset(&c, 0, sizeof c);
    /* VGG-style teacher on 14x14 images: 8 conv blocks, pooling after blocks 3 and 6, a hidden fc layer */
    nl_n2n_arch t = {8, {8, 8, 8, 16, 16, 16, 32, 32}, {0, 0, 1, 0, 0, 1, 0, 0}, 32, 1, 14, 14, 10};
    c.teacher = t;
    c.n_train = 10000;
    c.n_distil = 2000;
    c.n_val = 1000;
    c.n_test = 10000;
    c.teacher_epochs = 4;
    c.distil_epochs = 1;
    c.final_epochs = 4;
    c.batch = 64;
    c.lr = 2e-3;
    c.removal_epochs = 30;
    c.shrink_epochs = 20;
    c.rollouts = 5;
    c.lr_removal = 0.003;
    c.lr_shrink = 0.1;
    c.policy_hidden = 30;
    c.downsample = 2;
    c.seed = 1;
    return c;
}

/* ---------------------------------------- data ---------------------------------------- */
static nl_status rows(const nl_dataset *src, int64_t lo, int64_t n, int ds, nl_dataset *out) {
    if (lo < 0 || n < 1 || lo + n > src->n)
        return nl_set_error(NL_EINVAL, "n2n: rows [%lld, %lld) outside the %lld available", (long long)lo, (long long)(lo + n),
                            (long long)src->n);
    int64_t side = 28 / ds, d = side * side;
    nl_status s = nl_dataset_alloc(out, n, d, src->n_classes);
    if (s) return s;
    for (int64_t i = 0; i < n; i++) {
        const float *x = src->x + (lo + i) * src->d; /* (28, 28) */
        float *y = out->x + i * d;                    /* (side, side) */
        for (int64_t r = 0; r < side; r++)
            for (int64_t q = 0; q < side; q++) {
                double acc = 0;
                for (int a = 0; a < ds; a++)
                    for (int b = 0; b < ds; b++) acc += x[(r * ds + a) * 28 + q * ds + b];
                y[r * side + q] = (float)(acc / (ds * ds));
            }
        out->y[i] = src->y[lo + i];
    }
    return NL_OK;
}

nl_status nl_n2n_data_load(const nl_n2n_config *cfg, nl_n2n_data *d) {
    memset(d, 0, sizeof *d);
    if (cfg->downsample != 1 && cfg->downsample != 2)
        return nl_set_error(NL_EINVAL, "n2n: downsample %d must be 1 or 2", cfg->downsample);
    nl_dataset ftr, fte;
    nl_status s = nl_dataset_load(&ftr, "fashion-mnist", "train", NULL);
    if (s) return s;
    if ((s = nl_dataset_load(&fte, "fashion-mnist", "test", NULL))) {
        nl_dataset_free(&ftr);
        return s;
    }
    if (!(s = rows(&ftr, 0, cfg->n_train, cfg->downsample, &d->train)) &&
        !(s = rows(&ftr, cfg->n_train, cfg->n_val, cfg->downsample, &d->val)) &&
        !(s = rows(&fte, 0, cfg->n_test, cfg->downsample, &d->test))) {
        nl_dataset *others[2] = {&d->val, &d->test};
        s = nl_dataset_standardize(&d->train, others, 2, 0, NULL, NULL);
    }
    nl_dataset_free(&ftr);
    nl_dataset_free(&fte);
    if (s) nl_n2n_data_free(d);
    return s;
}

void nl_n2n_data_free(nl_n2n_data *d) {
    nl_dataset_free(&d->train);
    nl_dataset_free(&d->val);
    nl_dataset_free(&d->test);
}

/* ---------------------------------------- students ---------------------------------------- */
static nl_var *model_fwd(nl_ctx *c, void *ud, nl_var *x, int train) { return nl_model_forward(ud, c, x, train); }

/* Build a (re-initialised) model of a and train it on ds: distillation from logits (n, C) when given, else plain
 * cross-entropy. Its test accuracy on ev into *acc. */
static nl_status train_eval(const nl_n2n_config *cfg, const nl_n2n_arch *a, uint64_t seed, const nl_dataset *ds, const float *logits,
                            int64_t epochs, const nl_dataset *ev, double *acc, nl_model *keep) {
    nl_model_config mc;
    nl_status s = nl_n2n_arch_config(a, &mc);
    if (s) return s;
    nl_model m;
    if ((s = nl_model_init(&m, &mc, seed))) return s;
    nl_kd_config kc = nl_kd_defaults();
    kc.T = 4.0;
    kc.alpha = logits ? 1.0 : 0.0; /* pure distillation, no labels (the official students); the teacher: labels only */
    kc.epochs = epochs;
    kc.batch = cfg->batch;
    kc.optim = nl_optim_defaults(NL_OPT_ADAM);
    kc.optim.lr = cfg->lr;
    kc.optim.sched = NL_SCHED_COSINE;
    kc.optim.min_ratio = 0.0;
    kc.seed = seed;
    nl_kd_teacher t = {logits, NULL, NULL};
    s = nl_kd_train(&kc, logits ? &t : NULL, model_fwd, &m, &m.ps, ds, NULL);
    if (!s) s = nl_kd_accuracy(model_fwd, &m, ev, 500, acc);
    if (!s && keep) *keep = m;
    else nl_model_free(&m);
    return s;
}

/* ---------------------------------------- REINFORCE ---------------------------------------- */
typedef struct child_cache {
    int n;
    nl_n2n_arch a[512];
    double r[512];
} child_cache;

static int arch_equal(const nl_n2n_arch *x, const nl_n2n_arch *y) {
    if (x->n_conv != y->n_conv || x->hidden != y->hidden) return 0;
    for (int l = 0; l < x->n_conv; l++)
        if (x->channels[l] != y->channels[l] || x->pooled[l] != y->pooled[l]) return 0;
    return 1;
}

typedef struct search_state {
    const nl_n2n_config *cfg;
    const nl_n2n_data *d;
    nl_dataset distil;       /* the distillation rows */
    float *distil_logits;    /* (n_distil, C) teacher logits */
    double acc_t;            /* teacher accuracy on the validation rows */
    int64_t params_t;
    child_cache *cache;
    uint64_t student_seed;
    nl_n2n_arch best;
    double best_r;
} search_state;

/* reward of a child (cached by architecture, as the official previousModels) */
static nl_status child_reward(search_state *st, const nl_n2n_arch *a, double *R) {
    int64_t P = nl_n2n_arch_params(a);
    if (P <= 0 || P >= st->params_t) {
        *R = nl_n2n_reward(0, st->acc_t, (double)P, (double)st->params_t);
        return NL_OK;
    }
    for (int i = 0; i < st->cache->n; i++)
        if (arch_equal(&st->cache->a[i], a)) {
            *R = st->cache->r[i];
            return NL_OK;
        }
    double acc;
    nl_status s = train_eval(st->cfg, a, st->student_seed++, &st->distil, st->distil_logits, st->cfg->distil_epochs, &st->d->val, &acc, NULL);
    if (s) return s;
    *R = nl_n2n_reward(acc, st->acc_t, (double)P, (double)st->params_t);
    if (st->cache->n < 512) st->cache->a[st->cache->n] = *a, st->cache->r[st->cache->n++] = *R;
    if (*R > st->best_r) st->best_r = *R, st->best = *a;
    return NL_OK;
}

/* One stage: epochs x rollouts children of `parent`; mean reward per epoch into mr. */
static nl_status stage(search_state *st, nl_n2n_policy_kind kind, const nl_n2n_arch *parent, int epochs, double lr, uint64_t seed,
                       double *mr) {
    const nl_n2n_config *cfg = st->cfg;
    nl_n2n_policy pol;
    nl_status s = nl_n2n_policy_init(&pol, kind, cfg->policy_hidden, NL_F32, seed);
    if (s) return s;
    nl_optim opt;
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
    oc.lr = lr;
    if ((s = nl_optim_init(&opt, &pol.ps, &oc))) {
        nl_n2n_policy_free(&pol);
        return s;
    }
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    nl_rng rng;
    nl_rng_init(&rng, seed, 0x5A3FULL);
    const int L = nl_n2n_arch_layers(parent), N = cfg->rollouts;
    float feat[NL_N2N_MAX_LAYERS * NL_N2N_FEAT];
    int mask[NL_N2N_MAX_LAYERS];
    for (int l = 0; l < L; l++) {
        nl_n2n_arch_describe(parent, l, feat + l * NL_N2N_FEAT);
        mask[l] = kind == NL_N2N_REMOVAL ? nl_n2n_removable(parent, l) : nl_n2n_shrinkable(parent, l);
    }
    double b = 0;
    for (int e = 0; e < epochs && !s && c; e++) {
        nl_ctx_reset(c);
        nl_var *lp[64];
        double R[64], mean = 0;
        for (int i = 0; i < N && !s; i++) {
            int act[NL_N2N_MAX_LAYERS];
            lp[i] = nl_n2n_policy_logprob(c, &pol, L, feat, mask, &rng, act, NULL);
            if (!lp[i]) {
                s = nl_last_status();
                break;
            }
            nl_n2n_arch child;
            if (kind == NL_N2N_REMOVAL) nl_n2n_arch_remove(parent, act, &child);
            else nl_n2n_arch_shrink(parent, act, &child);
            s = child_reward(st, &child, &R[i]);
            mean += R[i] / N;
        }
        if (s) break;
        if (e == 0) b = mean;
        /* loss = -(1/N) sum_i (R_i - b) log pi(a_i) */
        nl_var *loss = NULL;
        for (int i = 0; i < N; i++) {
            nl_var *t = nl_mul_scalar(c, lp[i], -(R[i] - b) / N);
            loss = loss ? nl_add(c, loss, t) : t;
        }
        nl_params_zero_grad(&pol.ps);
        if (!loss || (s = nl_backward(c, loss)) || (!cfg->frozen && (s = nl_optim_step(&opt)))) {
            if (!s) s = nl_last_status();
            break;
        }
        b = 0.9 * b + 0.1 * mean;
        mr[e] = mean;
        if (cfg->verbose)
            nl_progress("n2n %s epoch %d: mean reward %.4f, baseline %.4f, best %.4f", kind == NL_N2N_REMOVAL ? "removal" : "shrink", e + 1,
                        mean, b, st->best_r);
    }
    if (!c) s = nl_set_error(NL_ENOMEM, "n2n: out of memory");
    nl_ctx_free(c);
    nl_optim_free(&opt);
    nl_n2n_policy_free(&pol);
    return s;
}

/* A random-removal child with about P parameters: each removable layer dropped with probability 1/2, then every width
 * scaled by one factor m in (0, 1] chosen by bisection so that the parameter count is the closest to P. */
static void random_matched(const nl_n2n_arch *t, int64_t P, nl_rng *r, nl_n2n_arch *out) {
    int L = nl_n2n_arch_layers(t), rem[NL_N2N_MAX_LAYERS];
    nl_n2n_arch a;
    for (int tries = 0; tries < 50; tries++) {
        for (int l = 0; l < L; l++) rem[l] = nl_rng_uniform(r) < 0.5;
        nl_n2n_arch_remove(t, rem, &a);
        if (nl_n2n_arch_params(&a) >= P) break; /* reachable by narrowing */
    }
    double lo = 0.01, hi = 1.0;
    nl_n2n_arch best = a;
    int64_t bestd = INT64_MAX;
    for (int it = 0; it < 40; it++) {
        double m = 0.5 * (lo + hi);
        nl_n2n_arch s = a;
        for (int l = 0; l < a.n_conv; l++) s.channels[l] = (int)fmax(2, floor(a.channels[l] * m));
        if (a.hidden) s.hidden = (int64_t)fmax(2, floor((double)a.hidden * m));
        int64_t p = nl_n2n_arch_params(&s), dd = llabs(p - P);
        if (dd < bestd) bestd = dd, best = s;
        if (p > P) hi = m;
        else lo = m;
    }
    *out = best;
}

nl_status nl_n2n_run(const nl_n2n_config *cfg, const nl_n2n_data *d, int with_frozen, nl_n2n_result *out) {
    const int nv = with_frozen ? 2 : 1;
    memset(out, 0, (size_t)nv * sizeof *out);
    double t0 = nl_time();
    if (cfg->removal_epochs + cfg->shrink_epochs > 128 || cfg->rollouts < 1 || cfg->rollouts > 64)
        return nl_set_error(NL_EINVAL, "n2n: at most 128 policy epochs and 1..64 rollouts");
    if (cfg->n_distil > d->train.n) return nl_set_error(NL_EINVAL, "n2n: distillation set larger than the training set");
    search_state st;
    memset(&st, 0, sizeof st);
    st.cfg = cfg;
    st.d = d;
    nl_model teacher;
    double teacher_acc = 0;
    nl_status s = train_eval(cfg, &cfg->teacher, cfg->seed, &d->train, NULL, cfg->teacher_epochs, &d->val, &st.acc_t, &teacher);
    if (s) return s;
    st.params_t = nl_n2n_arch_params(&cfg->teacher);
    double t_teacher = nl_time() - t0, t_final = 0;
    float *train_logits = malloc((size_t)d->train.n * (size_t)d->train.n_classes * sizeof(float)); /* (n_train, C) */
    st.cache = calloc(1, sizeof *st.cache);
    int64_t *idx = malloc((size_t)cfg->n_distil * sizeof *idx);
    if (!train_logits || !st.cache || !idx) s = nl_set_error(NL_ENOMEM, "n2n: out of memory");
    if (!s) s = nl_kd_logits(model_fwd, &teacher, &d->train, 500, train_logits);
    if (!s) s = nl_kd_accuracy(model_fwd, &teacher, &d->test, 500, &teacher_acc);
    nl_model_free(&teacher);
    if (!s) {
        for (int64_t i = 0; i < cfg->n_distil; i++) idx[i] = i;
        s = nl_dataset_subset(&d->train, idx, cfg->n_distil, &st.distil);
        st.distil_logits = train_logits; /* the distillation rows are the first n_distil training rows */
    }
    for (int v = 0; v < nv && !s; v++) {
        nl_n2n_config c2 = *cfg;
        c2.frozen = v == 1;
        st.cfg = &c2;
        st.cache->n = 0;
        st.best_r = -2;
        st.student_seed = cfg->seed * 1000003ULL + 17; /* both variants draw the same student seeds */
        nl_n2n_result *o = &out[v];
        o->teacher_acc = teacher_acc;
        o->teacher_params = st.params_t;
        o->n_epochs = cfg->removal_epochs + cfg->shrink_epochs;
        s = stage(&st, NL_N2N_REMOVAL, &cfg->teacher, cfg->removal_epochs, cfg->lr_removal, cfg->seed * 7919 + 1, o->mean_reward);
        nl_n2n_arch stage1 = st.best_r > -1 ? st.best : cfg->teacher;
        if (!s && cfg->shrink_epochs > 0) {
            st.cache->n = 0; /* the shrink stage keeps its own list of children */
            s = stage(&st, NL_N2N_SHRINK, &stage1, cfg->shrink_epochs, cfg->lr_shrink, cfg->seed * 7919 + 2, o->mean_reward + cfg->removal_epochs);
        }
        if (!s && st.best_r <= -1) s = nl_set_error(NL_EINVAL, "n2n: no valid smaller child found");
        if (!s) {
            o->best = st.best;
            o->best_reward = st.best_r;
            o->best_params = nl_n2n_arch_params(&st.best);
            double tf = nl_time();
            t_final -= tf;
            s = train_eval(cfg, &st.best, cfg->seed * 31 + 5, &d->train, train_logits, cfg->final_epochs, &d->test, &o->best_acc, NULL);
            t_final += nl_time();
        }
    }
    if (!s) {
        /* the random-removal child, matched to the learned policy's best child, shared by both variants */
        nl_rng r;
        nl_rng_init(&r, cfg->seed, 0x7A2DULL);
        nl_n2n_arch ra;
        random_matched(&cfg->teacher, out[0].best_params, &r, &ra);
        double acc;
        s = train_eval(cfg, &ra, cfg->seed * 31 + 5, &d->train, train_logits, cfg->final_epochs, &d->test, &acc, NULL);
        for (int v = 0; v < nv; v++) out[v].random_acc = acc, out[v].random_params = nl_n2n_arch_params(&ra);
    }
    if (cfg->verbose)
        nl_progress("n2n seed %llu: teacher %.1f s, final students %.1f s, total %.1f s", (unsigned long long)cfg->seed, t_teacher, t_final,
                    nl_time() - t0);
    nl_dataset_free(&st.distil);
    free(train_logits);
    free(st.cache);
    free(idx);
    for (int v = 0; v < nv; v++) out[v].seconds = nl_time() - t0;
    return s;
}
