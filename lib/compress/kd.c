/* lib/compress/kd.c — the knowledge-distillation loss and training loop (kd.h). */
#include "compress/kd.h"
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_var *nl_kd_loss(nl_ctx *c, nl_var *student, nl_var *teacher, const int32_t *targets, double T, double alpha) {
    if (!student || !teacher) return NULL;
    if (!(T > 0) || !isfinite(T)) {
        nl_set_error(NL_EINVAL, "kd_loss: temperature %g (expected a finite T > 0)", T);
        return NULL;
    }
    if (!(alpha >= 0 && alpha <= 1)) {
        nl_set_error(NL_EINVAL, "kd_loss: alpha %g outside [0, 1]", alpha);
        return NULL;
    }
    if (student->val.ndim != 2 || !nl_shape_equal(&student->val, &teacher->val) || student->val.dtype != teacher->val.dtype) {
        char a[64], b[64];
        nl_set_error(NL_ESHAPE, "kd_loss: student %s and teacher %s logits must both be [N, C] of one dtype",
                     nl_shape_str(&student->val, a, sizeof a), nl_shape_str(&teacher->val, b, sizeof b));
        return NULL;
    }
    if (alpha < 1 && !targets) {
        nl_set_error(NL_EINVAL, "kd_loss: alpha %g < 1 needs the class targets", alpha);
        return NULL;
    }
    nl_var *loss = NULL;
    if (alpha > 0) {
        nl_var *td = nl_mul_scalar(c, nl_detach(c, teacher), 1.0 / T);         /* [N, C] constant */
        nl_var *pt = nl_softmax(c, td, 1), *lpt = nl_log_softmax(c, td, 1);    /* [N, C] constants */
        nl_var *ls = nl_log_softmax(c, nl_mul_scalar(c, student, 1.0 / T), 1); /* [N, C] */
        nl_var *kl = nl_mean(c, nl_sum(c, nl_mul(c, pt, nl_sub(c, lpt, ls)), 1, 0), NL_AXIS_ALL, 0); /* batchmean */
        loss = nl_mul_scalar(c, kl, alpha * T * T);
        if (!loss) return NULL;
    }
    if (alpha < 1) {
        nl_var *ce = nl_mul_scalar(c, nl_cross_entropy(c, student, targets, 0.0, -1), 1.0 - alpha);
        loss = loss ? nl_add(c, loss, ce) : ce;
    }
    return loss;
}

nl_kd_config nl_kd_defaults(void) {
    nl_kd_config k;
    memset(&k, 0, sizeof k);
    k.T = 4.0;
    k.alpha = 0.9;
    k.epochs = 1;
    k.batch = 64;
    k.optim = nl_optim_defaults(NL_OPT_SGD);
    k.optim.lr = 0.1;
    k.optim.momentum = 0.9;
    k.optim.nesterov = 1;
    k.optim.weight_decay = 5e-4;
    k.optim.sched = NL_SCHED_COSINE;
    k.optim.min_ratio = 0.0;
    k.seed = 1;
    return k;
}

/* Rows idx[0..b) of ds into x (b, d) and y (b). */
static void gather(const nl_dataset *ds, const int64_t *idx, int64_t b, float *x, int32_t *y) {
    for (int64_t i = 0; i < b; i++) {
        memcpy(x + i * ds->d, ds->x + idx[i] * ds->d, (size_t)ds->d * sizeof *x);
        y[i] = ds->y[idx[i]];
    }
}

nl_status nl_kd_train(const nl_kd_config *cfg, const nl_kd_teacher *teacher, nl_kd_forward student, void *ud, nl_params *ps,
                      const nl_dataset *train, double *last_loss) {
    if (!cfg || !student || !ps || !train) return nl_set_error(NL_EINVAL, "kd_train: NULL argument");
    if (!(cfg->T > 0) || !(cfg->alpha >= 0 && cfg->alpha <= 1))
        return nl_set_error(NL_EINVAL, "kd_train: T %g must be > 0 and alpha %g in [0, 1]", cfg->T, cfg->alpha);
    if (cfg->epochs < 0 || cfg->batch < 2) return nl_set_error(NL_EINVAL, "kd_train: epochs %lld, batch %lld (>= 2)",
                                                               (long long)cfg->epochs, (long long)cfg->batch);
    int has_t = teacher && (teacher->logits || teacher->forward);
    if (cfg->alpha > 0 && !has_t) return nl_set_error(NL_EINVAL, "kd_train: alpha %g > 0 needs a teacher", cfg->alpha);
    const int64_t n = train->n, d = train->d, C = train->n_classes, B = cfg->batch < n ? cfg->batch : n;
    if (n < 2) return nl_set_error(NL_EINVAL, "kd_train: %lld training rows (>= 2)", (long long)n);
    const int64_t nb = n / B + (n % B >= 2 ? 1 : 0); /* batches per epoch */
    nl_optim_config oc = cfg->optim;
    if (oc.total_steps <= 0) oc.total_steps = nb * cfg->epochs > 0 ? nb * cfg->epochs : 1;
    nl_optim opt;
    nl_status s = nl_optim_init(&opt, ps, &oc);
    if (s) return s;
    int64_t *perm = malloc((size_t)n * sizeof *perm);  /* (n) order of the epoch */
    float *xb = malloc((size_t)(B * d) * sizeof *xb);  /* (B, d) batch rows */
    float *tb = malloc((size_t)(B * C) * sizeof *tb);  /* (B, C) teacher logits */
    int32_t *yb = malloc((size_t)B * sizeof *yb);      /* (B) labels */
    nl_ctx *c = nl_ctx_new((size_t)1 << 22, 0);
    if (!perm || !xb || !tb || !yb || !c) s = nl_set_error(NL_ENOMEM, "kd_train: out of memory");
    double mean_loss = NAN;
    for (int64_t ep = 0; ep < cfg->epochs && !s; ep++) {
        nl_rng r;
        nl_rng_init(&r, cfg->seed, NL_KD_STREAM + (uint64_t)ep);
        nl_rng_permutation(&r, perm, n);
        double tot = 0;
        int64_t seen = 0;
        for (int64_t b0 = 0; b0 < n && !s; b0 += B) {
            const int64_t bs = b0 + B <= n ? B : n - b0;
            if (bs < 2) break;
            gather(train, perm + b0, bs, xb, yb);
            nl_ctx_reset(c);
            nl_var *tv = NULL;
            if (cfg->alpha > 0) {
                if (teacher->logits) {
                    for (int64_t i = 0; i < bs; i++)
                        memcpy(tb + i * C, teacher->logits + perm[b0 + i] * C, (size_t)C * sizeof *tb);
                    tv = nl_input(c, nl_tensor_wrap(tb, NL_F32, 2, (int64_t[]){bs, C}));
                } else {
                    int g = nl_set_grad_enabled(c, 0);
                    tv = teacher->forward(c, teacher->ud, nl_input(c, nl_tensor_wrap(xb, NL_F32, 2, (int64_t[]){bs, d})), 0);
                    nl_set_grad_enabled(c, g);
                    if (!tv) {
                        s = nl_last_status() ? nl_last_status() : NL_EINVAL;
                        break;
                    }
                }
            }
            nl_var *x = nl_input(c, nl_tensor_wrap(xb, NL_F32, 2, (int64_t[]){bs, d}));
            nl_var *z = student(c, ud, x, 1);
            nl_var *loss = tv ? nl_kd_loss(c, z, tv, yb, cfg->T, cfg->alpha) : nl_cross_entropy(c, z, yb, 0.0, -1);
            if (!loss) {
                s = nl_last_status() ? nl_last_status() : NL_EINVAL;
                break;
            }
            double lv = nl_item(loss);
            if (!isfinite(lv)) {
                s = nl_set_error(NL_ENONFINITE, "kd_train: loss %g at epoch %lld, row %lld", lv, (long long)ep, (long long)b0);
                break;
            }
            nl_params_zero_grad(ps);
            if ((s = nl_backward(c, loss))) break;
            if ((s = nl_optim_step(&opt))) break;
            tot += lv * (double)bs;
            seen += bs;
        }
        if (!s) {
            mean_loss = seen ? tot / (double)seen : NAN;
            if (cfg->verbose) nl_progress("kd epoch %lld/%lld: loss %.4f", (long long)ep + 1, (long long)cfg->epochs, mean_loss);
        }
    }
    if (last_loss) *last_loss = mean_loss;
    nl_ctx_free(c);
    free(perm);
    free(xb);
    free(tb);
    free(yb);
    nl_optim_free(&opt);
    return s;
}

/* Eval-mode logits of rows [0, n) of ds, in batches; each batch handed to sink(ud2, row0, logits (bs, C)). */
static nl_status eval_rows(nl_kd_forward f, void *ud, const nl_dataset *ds, int64_t batch,
                           void (*sink)(void *, int64_t, int64_t, const float *), void *ud2) {
    if (!f || !ds || batch < 1) return nl_set_error(NL_EINVAL, "kd eval: NULL model or dataset, or batch < 1");
    nl_ctx *c = nl_ctx_new((size_t)1 << 22, 0);
    if (!c) return nl_set_error(NL_ENOMEM, "kd eval: out of memory");
    nl_set_grad_enabled(c, 0);
    nl_status s = NL_OK;
    for (int64_t b0 = 0; b0 < ds->n && !s; b0 += batch) {
        const int64_t bs = b0 + batch <= ds->n ? batch : ds->n - b0;
        nl_ctx_reset(c);
        nl_var *z = f(c, ud, nl_input(c, nl_tensor_wrap(ds->x + b0 * ds->d, NL_F32, 2, (int64_t[]){bs, ds->d})), 0);
        if (!z) {
            s = nl_last_status() ? nl_last_status() : NL_EINVAL;
            break;
        }
        if (z->val.ndim != 2 || z->val.shape[0] != bs || z->val.shape[1] != ds->n_classes || z->val.dtype != NL_F32) {
            s = nl_set_error(NL_ESHAPE, "kd eval: the model returned logits of the wrong shape (expected [%lld, %d] f32)",
                             (long long)bs, ds->n_classes);
            break;
        }
        nl_tensor zc = nl_contig(c, &z->val);
        if (!zc.data) {
            s = nl_last_status();
            break;
        }
        sink(ud2, b0, bs, zc.data);
    }
    nl_ctx_free(c);
    return s;
}

typedef struct logit_sink { float *out; int64_t C; } logit_sink;
static void sink_logits(void *u, int64_t row0, int64_t bs, const float *z) {
    logit_sink *l = u;
    memcpy(l->out + row0 * l->C, z, (size_t)(bs * l->C) * sizeof *z);
}

nl_status nl_kd_logits(nl_kd_forward f, void *ud, const nl_dataset *ds, int64_t batch, float *out) {
    if (!out) return nl_set_error(NL_EINVAL, "kd_logits: NULL output");
    logit_sink l = {out, ds ? ds->n_classes : 0};
    return eval_rows(f, ud, ds, batch, sink_logits, &l);
}

typedef struct acc_sink { const int32_t *y; int64_t C, correct; } acc_sink;
static void sink_acc(void *u, int64_t row0, int64_t bs, const float *z) {
    acc_sink *a = u;
    for (int64_t i = 0; i < bs; i++) {
        const float *r = z + i * a->C;
        int64_t k = 0;
        for (int64_t j = 1; j < a->C; j++)
            if (r[j] > r[k]) k = j;
        a->correct += k == a->y[row0 + i];
    }
}

nl_status nl_kd_accuracy(nl_kd_forward f, void *ud, const nl_dataset *ds, int64_t batch, double *acc) {
    if (!acc) return nl_set_error(NL_EINVAL, "kd_accuracy: NULL output");
    *acc = NAN;
    acc_sink a = {ds ? ds->y : NULL, ds ? ds->n_classes : 0, 0};
    nl_status s = eval_rows(f, ud, ds, batch, sink_acc, &a);
    if (!s) *acc = ds->n ? (double)a.correct / (double)ds->n : NAN;
    return s;
}
