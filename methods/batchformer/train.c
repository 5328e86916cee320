/* BatchFormer: the long-tailed data, the training loop (Adam, cosine schedule, the BatchFormer at 0.1x LR) and the
 * test evaluation with many / medium / few-shot groups (batchformer.h). */
#include "batchformer/batchformer.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/optim.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BF_STREAM_DATA ((uint64_t)0x6266443dULL << 24)
#define BF_STREAM_ORDER ((uint64_t)0x62664f34ULL << 24)
#define BF_MAX_CLASSES 16

nl_status nl_bf_longtail(const nl_dataset *src, double ratio, int64_t n_max, uint64_t data_seed, nl_dataset *out, int64_t *counts) {
    memset(out, 0, sizeof *out);
    if (!(ratio >= 1) || !isfinite(ratio))
        return nl_set_error(NL_EINVAL, "batchformer: imbalance ratio %g must be >= 1 (n_max / n_min of the long-tailed training set)", ratio);
    int K = src->n_classes;
    if (K < 2 || K > BF_MAX_CLASSES) return nl_set_error(NL_EINVAL, "batchformer: %d classes (2..%d supported)", K, BF_MAX_CLASSES);
    if (n_max < 1) return nl_set_error(NL_EINVAL, "batchformer: n_max %lld must be >= 1", (long long)n_max);
    int64_t have[BF_MAX_CLASSES] = {0}, want[BF_MAX_CLASSES], total = 0;
    for (int64_t i = 0; i < src->n; i++) {
        if (src->y[i] < 0 || src->y[i] >= K) return nl_set_error(NL_EINVAL, "batchformer: label %d at row %lld", src->y[i], (long long)i);
        have[src->y[i]]++;
    }
    for (int k = 0; k < K; k++) {
        want[k] = (int64_t)floor((double)n_max * pow(ratio, -(double)k / (double)(K - 1)) + 1e-9);
        if (want[k] < 1) want[k] = 1;
        if (want[k] > have[k])
            return nl_set_error(NL_EINVAL, "batchformer: class %d has %lld rows, the long-tailed profile asks for %lld (n_max %lld)", k,
                                (long long)have[k], (long long)want[k], (long long)n_max);
        total += want[k];
        if (counts) counts[k] = want[k];
    }
    int64_t *rows = malloc((size_t)src->n * sizeof *rows);  /* (n) rows grouped by class */
    int64_t *perm = malloc((size_t)src->n * sizeof *perm);  /* (max class size) draw order */
    unsigned char *keep = calloc((size_t)src->n, 1);        /* (n) kept flags */
    int64_t *idx = malloc((size_t)total * sizeof *idx);     /* (total) kept rows in original order */
    nl_status s = NL_OK;
    if (!rows || !perm || !keep || !idx) s = nl_set_error(NL_ENOMEM, "batchformer: out of memory");
    nl_rng r;
    nl_rng_init(&r, data_seed, BF_STREAM_DATA);
    for (int k = 0; k < K && !s; k++) {
        int64_t m = 0;
        for (int64_t i = 0; i < src->n; i++)
            if (src->y[i] == k) rows[m++] = i;
        nl_rng_permutation(&r, perm, m);
        for (int64_t j = 0; j < want[k]; j++) keep[rows[perm[j]]] = 1;
    }
    if (!s) {
        int64_t t = 0;
        for (int64_t i = 0; i < src->n; i++)
            if (keep[i]) idx[t++] = i;
        s = nl_dataset_subset(src, idx, total, out);
    }
    free(rows);
    free(perm);
    free(keep);
    free(idx);
    return s;
}

nl_status nl_bf_groups(const int64_t *counts, int K, int *group) {
    if (K < 7 || K > BF_MAX_CLASSES) return nl_set_error(NL_EINVAL, "batchformer: many/medium/few groups need 7..%d classes (%d)", BF_MAX_CLASSES, K);
    int order[BF_MAX_CLASSES];
    for (int k = 0; k < K; k++) order[k] = k;
    for (int i = 1; i < K; i++) /* insertion sort by count, descending; ties keep index order */
        for (int j = i; j > 0 && counts[order[j]] > counts[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int i = 0; i < K; i++) group[order[i]] = i < 3 ? 0 : i < K - 3 ? 1 : 2;
    return NL_OK;
}

nl_status nl_bf_load(const nl_bf_config *cfg, nl_dataset *tr, nl_dataset *te, int64_t *counts) {
    nl_dataset ftr, fte;
    memset(tr, 0, sizeof *tr);
    memset(te, 0, sizeof *te);
    if (!(cfg->imbalance >= 1) || !isfinite(cfg->imbalance)) /* before any file is read */
        return nl_set_error(NL_EINVAL, "batchformer: imbalance ratio %g must be >= 1 (n_max / n_min of the long-tailed training set)",
                            cfg->imbalance);
    nl_status s = nl_dataset_load(&ftr, "fashion-mnist", "train", NULL);
    if (s) return s;
    if ((s = nl_dataset_load(&fte, "fashion-mnist", "test", NULL))) {
        nl_dataset_free(&ftr);
        return s;
    }
    s = nl_bf_longtail(&ftr, cfg->imbalance, cfg->n_max, cfg->data_seed, tr, counts);
    if (!s) {
        int64_t k = cfg->test_limit > 0 && cfg->test_limit < fte.n ? cfg->test_limit : fte.n;
        int64_t *idx = malloc((size_t)k * sizeof *idx); /* (k) first test rows */
        if (!idx) s = nl_set_error(NL_ENOMEM, "batchformer: out of memory");
        for (int64_t i = 0; i < k && !s; i++) idx[i] = i;
        if (!s) s = nl_dataset_subset(&fte, idx, k, te);
        free(idx);
    }
    if (!s) {
        nl_dataset *others[1] = {te};
        s = nl_dataset_standardize(tr, others, 1, 0, NULL, NULL);
    }
    nl_dataset_free(&ftr);
    nl_dataset_free(&fte);
    if (s) {
        nl_dataset_free(tr);
        nl_dataset_free(te);
    }
    return s;
}

nl_status nl_bf_train(nl_bf_net *m, const nl_bf_config *cfg, nl_bf_loss loss, const nl_dataset *tr, double *seconds) {
    double t0 = nl_time();
    if (tr->d != m->d_in || tr->n_classes != m->n_classes)
        return nl_set_error(NL_EINVAL, "batchformer train: data has %lld features / %d classes, the model %lld / %lld", (long long)tr->d,
                            tr->n_classes, (long long)m->d_in, (long long)m->n_classes);
    if (tr->n < 2 || cfg->batch < 2) return nl_set_error(NL_EINVAL, "batchformer train: need >= 2 rows and a batch >= 2");
    int64_t n = tr->n, B = cfg->batch, d = tr->d, K = m->n_classes;
    float prior[BF_MAX_CLASSES] = {0};
    for (int64_t i = 0; i < n; i++) prior[tr->y[i]] += 1.0f;
    for (int64_t k = 0; k < K; k++) prior[k] /= (float)n;
    int64_t *perm = malloc((size_t)n * sizeof *perm);        /* (n) one epoch's order */
    float *xb = malloc((size_t)(B * d) * sizeof *xb);        /* (B, d) batch images */
    int32_t *yb = malloc((size_t)(2 * B) * sizeof *yb);      /* (2B) labels [y; y] */
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_optim opt;
    memset(&opt, 0, sizeof opt);
    nl_status s = NL_OK;
    if (!perm || !xb || !yb || !c) s = nl_set_error(NL_ENOMEM, "batchformer train: out of memory");
    if (!s) {
        nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
        oc.lr = cfg->lr;
        oc.weight_decay = cfg->wd;
        oc.sched = NL_SCHED_COSINE;
        oc.total_steps = (n / B) * cfg->epochs;
        oc.min_ratio = 0.0;
        s = nl_optim_init(&opt, &m->ps, &oc);
    }
    nl_rng r;
    nl_rng_init(&r, cfg->seed, BF_STREAM_ORDER);
    for (int64_t ep = 0; ep < cfg->epochs && !s; ep++) {
        nl_rng_permutation(&r, perm, n);
        double sum = 0;
        /* full batches only (drop_last): the BatchFormer never sees a one-sample batch */
        for (int64_t b0 = 0; b0 + B <= n && !s; b0 += B) {
            for (int64_t i = 0; i < B; i++) {
                int64_t row = perm[b0 + i];
                yb[i] = yb[B + i] = tr->y[row];
                memcpy(xb + i * d, tr->x + row * d, (size_t)d * sizeof *xb);
            }
            nl_var *x = nl_input(c, nl_tensor_wrap(xb, NL_F32, 2, (int64_t[]){B, d}));
            nl_var *lg = nl_bf_train_logits(c, m, x, NULL);
            nl_var *l = nl_bf_loss_fn(c, lg, yb, loss, prior);
            if (!l) s = nl_last_status();
            if (!s) {
                sum += nl_item(l);
                if (!(s = nl_backward(c, l))) s = nl_optim_step(&opt);
            }
            nl_params_zero_grad(&m->ps);
            nl_ctx_reset(c);
        }
        if (!s && cfg->verbose)
            nl_progress("batchformer %s/%s: epoch %lld/%lld, loss %.4f", nl_bf_kind_name(m->kind), nl_bf_loss_name(loss), (long long)(ep + 1),
                        (long long)cfg->epochs, sum / (double)(n / B > 0 ? n / B : 1));
    }
    nl_optim_free(&opt);
    nl_ctx_free(c);
    free(perm);
    free(xb);
    free(yb);
    if (seconds) *seconds = nl_time() - t0;
    return s;
}

nl_status nl_bf_evaluate(nl_bf_net *m, const nl_dataset *te, const int64_t *counts, nl_bf_eval *out) {
    memset(out, 0, sizeof *out);
    int K = (int)m->n_classes, group[BF_MAX_CLASSES];
    nl_status s = nl_bf_groups(counts, K, group);
    if (s) return s;
    nl_ctx *c = nl_ctx_new(0, 0);
    if (!c) return nl_set_error(NL_ENOMEM, "batchformer: out of memory");
    nl_set_grad_enabled(c, 0);
    int64_t hit[BF_MAX_CLASSES] = {0}, tot[BF_MAX_CLASSES] = {0}, all_hit = 0;
    for (int64_t i0 = 0; i0 < te->n && !s; i0 += 500) {
        int64_t B = te->n - i0 < 500 ? te->n - i0 : 500;
        nl_var *x = nl_input(c, nl_tensor_wrap(te->x + i0 * te->d, NL_F32, 2, (int64_t[]){B, te->d}));
        nl_var *lg = nl_bf_test_logits(c, m, x);
        if (!lg) s = nl_last_status();
        for (int64_t i = 0; i < B && !s; i++) {
            const float *l = (const float *)lg->val.data + i * K; /* [K] */
            int best = 0;
            for (int k = 1; k < K; k++)
                if (l[k] > l[best]) best = k;
            int y = te->y[i0 + i];
            tot[y]++;
            hit[y] += best == y;
            all_hit += best == y;
        }
        nl_ctx_reset(c);
    }
    nl_ctx_free(c);
    if (s) return s;
    double gs[3] = {0}, gn[3] = {0};
    for (int k = 0; k < K; k++) {
        out->per_class[k] = tot[k] ? (double)hit[k] / (double)tot[k] : NAN;
        if (tot[k]) gs[group[k]] += out->per_class[k], gn[group[k]] += 1;
    }
    out->overall = te->n ? (double)all_hit / (double)te->n : NAN;
    out->many = gn[0] ? gs[0] / gn[0] : NAN;
    out->medium = gn[1] ? gs[1] / gn[1] : NAN;
    out->few = gn[2] ? gs[2] / gn[2] : NAN;
    return NL_OK;
}

nl_status nl_bf_run(const nl_bf_config *cfg, nl_bf_kind kind, nl_bf_loss loss, const nl_dataset *tr, const nl_dataset *te,
                    const int64_t *counts, nl_bf_eval *out, double *seconds) {
    nl_bf_net m;
    nl_status s = nl_bf_net_init(&m, kind, cfg, tr->d, tr->n_classes, cfg->seed);
    if (!s) s = nl_bf_train(&m, cfg, loss, tr, seconds);
    if (!s) s = nl_bf_evaluate(&m, te, counts, out);
    nl_bf_net_free(&m);
    return s;
}
