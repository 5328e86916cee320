/* The STN MLP on Fashion-MNIST (784-H-H-10, ReLU, hyper-layers) with input dropout, two hidden dropouts and an L2
 * coefficient tuned online; the same trainer, with plain layers and fixed hyperparameters, is the grid baseline
 * (stn/stn.h). Manual forward / backward; the weights take SGD steps, the hyperparameters Adam steps. */
#include "stn/stn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const nl_stn_hkind g_kinds[NL_STN_NH] = {NL_STN_HK_INDROP, NL_STN_HK_DROP, NL_STN_HK_DROP, NL_STN_HK_LOGL2};

nl_stn_config nl_stn_defaults(void) {
    nl_stn_config c = {.hidden = 256, .epochs = 20, .warmup_epochs = 2, .batch = 128, .train_steps = 2, .valid_steps = 1,
                       .lr_w = 0.01, .momentum = 0.9, .lr_t = 0.03, .lr_q = 0.03, .tau = 1e-5, .start_drop = 0.05,
                       .start_indrop = 0.05, .start_l2 = 1e-5, .scale0 = 0.5, .tune = 1, .fixed = 0, .fixed_drop = 0,
                       .fixed_l2 = 0, .seed = 1, .verbose = 0};
    return c;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct stn_net {
    nl_stn_linear L[3];
    int64_t B, H, D, C, nh;
    /* activations [B, .] */
    float *x0, *m0, *ag[3], *zc[3], *y1, *a1, *m1, *y2, *a2, *m2, *lg;
    /* gradients */
    float *dlg, *da1, *da2, *sc, *dz, *dh, *dht, *lam, *h, *eps;
} stn_net;

static void net_free(stn_net *n) {
    for (int k = 0; k < 3; k++) nl_stn_linear_free(&n->L[k]), free(n->ag[k]), free(n->zc[k]);
    free(n->x0), free(n->m0), free(n->y1), free(n->a1), free(n->m1), free(n->y2), free(n->a2), free(n->m2), free(n->lg);
    free(n->dlg), free(n->da1), free(n->da2), free(n->sc), free(n->dz), free(n->dh), free(n->dht), free(n->lam), free(n->h),
        free(n->eps);
    memset(n, 0, sizeof *n);
}

static nl_status net_init(stn_net *n, int64_t D, int64_t H, int64_t C, int64_t B, int64_t nh, nl_rng *r) {
    memset(n, 0, sizeof *n);
    n->B = B, n->H = H, n->D = D, n->C = C, n->nh = nh;
    int64_t dims[4] = {D, H, H, C};
    nl_status s = NL_OK;
    for (int k = 0; k < 3 && !s; k++) s = nl_stn_linear_init(&n->L[k], dims[k], dims[k + 1], nh, r);
    if (s) {
        net_free(n);
        return s;
    }
    int ok = 1;
#define A(p, cnt) ok &= ((p) = malloc((size_t)(cnt) * sizeof(float))) != NULL
    A(n->x0, B * D); A(n->m0, B * D);                  /* [B, D] */
    for (int k = 0; k < 3; k++) { A(n->ag[k], B * 2 * dims[k + 1]); A(n->zc[k], B * 2 * dims[k + 1]); } /* [B, 2 out] */
    A(n->y1, B * H); A(n->a1, B * H); A(n->m1, B * H); /* [B, H] */
    A(n->y2, B * H); A(n->a2, B * H); A(n->m2, B * H); /* [B, H] */
    A(n->lg, B * C); A(n->dlg, B * C);                 /* [B, C] */
    A(n->da1, B * H); A(n->da2, B * H);                /* [B, H] */
    A(n->sc, B * 2 * (H > C ? H : C)); A(n->dz, B * 2 * (H > C ? H : C)); /* [B, 2 max(H, C)] */
    A(n->dh, B * 4); A(n->dht, B * 4); A(n->h, B * 4); A(n->eps, B * 4); /* [B, NL_STN_NH] */
    A(n->lam, B);                                      /* [B] */
#undef A
    if (!ok) {
        net_free(n);
        return nl_set_error(NL_ENOMEM, "stn: out of memory");
    }
    return NL_OK;
}

/* per-row dropout: out = in * mask, mask 0 or 1 / (1 - p_b) with p_b the row's rate */
static void dropout(const float *in, float *out, float *mask, int64_t B, int64_t W, const float *p, nl_rng *r) {
    for (int64_t b = 0; b < B; b++) {
        float keep = 1.0f - p[b], sc = keep > 0 ? 1.0f / keep : 0.0f;
        for (int64_t j = 0; j < W; j++) {
            float m = nl_rng_uniform(r) < keep ? sc : 0.0f;
            mask[b * W + j] = m;
            out[b * W + j] = in[b * W + j] * m;
        }
    }
}

/* Forward of B rows of xb [B, D]; train: dropout at the per-row rates (from h or the fixed rates); eval: none. */
static void net_forward(stn_net *n, const nl_stn_config *cfg, int64_t B, const float *xb, int train, nl_rng *r) {
    const int64_t H = n->H, D = n->D;
    float p[3][512];
    for (int64_t b = 0; b < B; b++)
        for (int k = 0; k < 3; k++) {
            if (cfg->fixed) p[k][b] = (float)(k ? cfg->fixed_drop : 0.0);
            else p[k][b] = (float)nl_stn_hparam(g_kinds[k], n->h[b * NL_STN_NH + k]);
        }
    const float *h = n->nh ? n->h : NULL;
    if (train) dropout(xb, n->x0, n->m0, B, D, p[0], r);
    else memcpy(n->x0, xb, (size_t)(B * D) * sizeof(float));
    if (!train) /* eval mode: masks of ones for a backward pass (the hyper step) */
        for (int64_t i = 0; i < B * H; i++) n->m1[i] = n->m2[i] = 1.0f;
    nl_stn_linear_forward(&n->L[0], B, n->x0, h, n->y1, n->ag[0], n->zc[0]);
    for (int64_t i = 0; i < B * H; i++) n->a1[i] = n->y1[i] > 0 ? n->y1[i] : 0;
    if (train) dropout(n->a1, n->a1, n->m1, B, H, p[1], r);
    nl_stn_linear_forward(&n->L[1], B, n->a1, h, n->y2, n->ag[1], n->zc[1]);
    for (int64_t i = 0; i < B * H; i++) n->a2[i] = n->y2[i] > 0 ? n->y2[i] : 0;
    if (train) dropout(n->a2, n->a2, n->m2, B, H, p[2], r);
    nl_stn_linear_forward(&n->L[2], B, n->a2, h, n->lg, n->ag[2], n->zc[2]);
}

/* mean cross-entropy of the logits; dlg = its gradient when d; *correct counts argmax hits */
static double xent(stn_net *n, int64_t B, const int32_t *y, int d, int64_t *correct) {
    const int64_t C = n->C;
    double L = 0;
    for (int64_t b = 0; b < B; b++) {
        const float *z = n->lg + b * C;
        float mx = z[0];
        int64_t am = 0;
        for (int64_t c = 1; c < C; c++)
            if (z[c] > mx) mx = z[c], am = c;
        double se = 0;
        for (int64_t c = 0; c < C; c++) se += exp((double)z[c] - mx);
        L += log(se) + mx - z[y[b]];
        if (correct) *correct += am == y[b];
        if (d)
            for (int64_t c = 0; c < C; c++) n->dlg[b * C + c] = (float)((exp((double)z[c] - mx) / se - (c == y[b])) / (double)B);
    }
    return L / (double)B;
}

/* Backward from dlg; with_l2: adds the per-row L2 penalty at rates lam; dh [B, nh] gets dL/dh (nh > 0). */
static void net_backward(stn_net *n, int64_t B, int with_l2) {
    const int64_t H = n->H;
    const float *xin[3] = {n->x0, n->a1, n->a2};
    float *gout[3] = {n->da1, n->da2, n->dlg}, *gin[3] = {NULL, n->da1, n->da2}; /* d(output), d(input) of layer k */
    const float *h = n->nh ? n->h : NULL;
    if (n->nh) memset(n->dh, 0, (size_t)(B * n->nh) * sizeof(float));
    for (int k = 2; k >= 0; k--) {
        nl_stn_linear *l = &n->L[k];
        float *dzadd = NULL;
        if (with_l2) {
            if (n->nh) {
                dzadd = n->dz;
                memset(dzadd, 0, (size_t)(B * 2 * l->out) * sizeof(float));
            }
            nl_stn_linear_l2(l, B, n->lam, n->zc[k], 1.0, dzadd);
        }
        nl_stn_linear_backward(l, B, xin[k], h, n->ag[k], n->zc[k], gout[k], dzadd, gin[k], n->nh ? n->dht : NULL, n->sc);
        if (n->nh)
            for (int64_t i = 0; i < B * n->nh; i++) n->dh[i] += n->dht[i];
        if (k == 2) /* da2 -> through dropout mask m2 (train) and ReLU */
            for (int64_t i = 0; i < B * H; i++) n->da2[i] = n->y2[i] > 0 ? n->da2[i] * n->m2[i] : 0;
        if (k == 1)
            for (int64_t i = 0; i < B * H; i++) n->da1[i] = n->y1[i] > 0 ? n->da1[i] * n->m1[i] : 0;
    }
}

static void net_zero_grad(stn_net *n) {
    for (int k = 0; k < 3; k++) nl_stn_linear_zero_grad(&n->L[k]);
}

static void gather(const nl_dataset *ds, const int64_t *idx, int64_t B, float *xb, int32_t *yb) {
    for (int64_t b = 0; b < B; b++) {
        memcpy(xb + b * ds->d, ds->x + idx[b] * ds->d, (size_t)ds->d * sizeof(float));
        yb[b] = ds->y[idx[b]];
    }
}

/* mean CE and accuracy over ds in eval mode (no dropout, unperturbed t) */
static void net_eval(stn_net *n, const nl_stn_config *cfg, const nl_stn_tuner *tu, const nl_dataset *ds, float *xb, int32_t *yb,
                     int64_t *idx, double *loss, double *acc) {
    double L = 0;
    int64_t correct = 0;
    for (int64_t i0 = 0; i0 < ds->n; i0 += n->B) {
        int64_t B = ds->n - i0 < n->B ? ds->n - i0 : n->B;
        for (int64_t b = 0; b < B; b++) idx[b] = i0 + b;
        gather(ds, idx, B, xb, yb);
        nl_stn_tuner_sample(tu, B, 0, NULL, n->h, NULL);
        net_forward(n, cfg, B, xb, 0, NULL);
        L += xent(n, B, yb, 0, &correct) * (double)B;
    }
    *loss = L / (double)ds->n;
    *acc = (double)correct / (double)ds->n;
}

nl_status nl_stn_run(const nl_stn_config *cfg, const nl_dataset *tr, const nl_dataset *va, const nl_dataset *te,
                     nl_stn_result *out) {
    memset(out, 0, sizeof *out);
    if (cfg->batch < 1 || cfg->batch > 512) return nl_set_error(NL_EINVAL, "stn: batch must be in [1, 512]");
    if (cfg->epochs < 1 || cfg->train_steps < 1 || cfg->valid_steps < 0 || cfg->hidden < 1)
        return nl_set_error(NL_EINVAL, "stn: epochs, hidden and train steps must be >= 1");
    if (tr->n < cfg->batch || va->n < 1 || te->n < 1) return nl_set_error(NL_EINVAL, "stn: need >= batch training rows and a validation set");
    double t0c = cpu_now();
    nl_rng r;
    nl_rng_init(&r, cfg->seed, 0x57a);
    stn_net n;
    const int64_t B = cfg->batch, D = tr->d;
    nl_status s = net_init(&n, D, cfg->hidden, tr->n_classes, B, cfg->fixed ? 0 : NL_STN_NH, &r);
    if (s) return s;
    double t0[NL_STN_NH] = {nl_stn_hparam_inv(NL_STN_HK_INDROP, cfg->start_indrop), nl_stn_hparam_inv(NL_STN_HK_DROP, cfg->start_drop),
                            nl_stn_hparam_inv(NL_STN_HK_DROP, cfg->start_drop), nl_stn_hparam_inv(NL_STN_HK_LOGL2, cfg->start_l2)};
    nl_stn_tuner tu;
    nl_stn_tuner_init(&tu, NL_STN_NH, t0, cfg->scale0, cfg->lr_t, cfg->lr_q, cfg->tau);
    float *xb = malloc((size_t)(B * D) * sizeof(float)); /* [B, D] */
    int32_t *yb = malloc((size_t)B * sizeof(int32_t));   /* [B] */
    int64_t *idx = malloc((size_t)B * sizeof(int64_t));  /* [B] */
    int64_t *ptr = malloc((size_t)tr->n * sizeof(int64_t)); /* [n_train] permutation */
    int64_t *pva = malloc((size_t)va->n * sizeof(int64_t)); /* [n_valid] permutation */
    if (!xb || !yb || !idx || !ptr || !pva) {
        s = nl_set_error(NL_ENOMEM, "stn: out of memory");
        goto done;
    }
    int64_t nb = tr->n / B, vpos = va->n; /* full training batches per epoch; validation cursor */
    double best_val = INFINITY;
    int64_t cycle = 0;
    for (int64_t ep = 0; ep < cfg->epochs; ep++) {
        nl_rng_permutation(&r, ptr, tr->n);
        int tuning = !cfg->fixed && ep >= cfg->warmup_epochs;
        for (int64_t bi = 0; bi < nb;) {
            int hyper = tuning && cfg->valid_steps > 0 && cycle % (cfg->train_steps + cfg->valid_steps) >= cfg->train_steps;
            if (tuning) cycle++;
            if (!hyper) { /* weight step */
                memcpy(idx, ptr + bi * B, (size_t)B * sizeof(int64_t));
                bi++;
                gather(tr, idx, B, xb, yb);
                if (!cfg->fixed) {
                    nl_stn_tuner_sample(&tu, B, 1, &r, n.h, n.eps);
                    for (int64_t b = 0; b < B; b++) n.lam[b] = (float)nl_stn_hparam(NL_STN_HK_LOGL2, n.h[b * NL_STN_NH + 3]);
                } else {
                    for (int64_t b = 0; b < B; b++) n.lam[b] = (float)cfg->fixed_l2;
                }
                net_zero_grad(&n);
                net_forward(&n, cfg, B, xb, 1, &r);
                xent(&n, B, yb, 1, NULL);
                net_backward(&n, B, cfg->fixed ? cfg->fixed_l2 > 0 : 1);
                for (int k = 0; k < 3; k++) nl_stn_linear_sgd(&n.L[k], cfg->lr_w, cfg->momentum, 1);
                continue;
            }
            /* hyper step on a validation batch: dropout off, perturbation off, Adam on t; then the scale step */
            if (!cfg->tune) continue; /* the control: no hyperparameter updates (and no compute spent on them) */
            int64_t Bv = va->n < B ? va->n : B;
            if (vpos + Bv > va->n) nl_rng_permutation(&r, pva, va->n), vpos = 0;
            memcpy(idx, pva + vpos, (size_t)Bv * sizeof(int64_t));
            vpos += Bv;
            gather(va, idx, Bv, xb, yb);
            nl_stn_tuner_sample(&tu, Bv, 0, &r, n.h, NULL);
            net_zero_grad(&n);
            net_forward(&n, cfg, Bv, xb, 0, &r);
            xent(&n, Bv, yb, 1, NULL);
            net_backward(&n, Bv, 0);
            nl_stn_tuner_step_t(&tu, Bv, n.dh);
            nl_stn_tuner_sample(&tu, Bv, 1, &r, n.h, n.eps);
            net_zero_grad(&n);
            net_forward(&n, cfg, Bv, xb, 0, &r);
            xent(&n, Bv, yb, 1, NULL);
            net_backward(&n, Bv, 0);
            nl_stn_tuner_step_q(&tu, Bv, n.dh, n.eps);
        }
        double vl, vacc, tl, tacc;
        net_eval(&n, cfg, &tu, va, xb, yb, idx, &vl, &vacc);
        net_eval(&n, cfg, &tu, te, xb, yb, idx, &tl, &tacc);
        if (!isfinite(vl)) {
            s = nl_set_error(NL_ENONFINITE, "stn: validation loss not finite at epoch %lld", (long long)ep + 1);
            goto done;
        }
        if (vl < best_val) best_val = vl, out->val_loss = vl, out->test_loss = tl, out->test_acc = tacc, out->best_epoch = (double)ep + 1;
        out->final_test_loss = tl;
        if (cfg->verbose)
            nl_progress("stn epoch %lld: val loss %.4f test loss %.4f acc %.2f%%; indrop %.3f drop %.3f %.3f l2 %.2e scale %.3f",
                        (long long)ep + 1, vl, tl, 100 * tacc, nl_stn_hparam(g_kinds[0], tu.t[0]), nl_stn_hparam(g_kinds[1], tu.t[1]),
                        nl_stn_hparam(g_kinds[2], tu.t[2]), nl_stn_hparam(g_kinds[3], tu.t[3]), nl_stn_softplus(tu.q[0]));
    }
    for (int k = 0; k < NL_STN_NH; k++) out->hp[k] = cfg->fixed ? (k == 0 ? 0 : k < 3 ? cfg->fixed_drop : cfg->fixed_l2) : nl_stn_hparam(g_kinds[k], tu.t[k]);
    out->seconds = cpu_now() - t0c;
done:
    free(xb), free(yb), free(idx), free(ptr), free(pva);
    net_free(&n);
    return s;
}

nl_status nl_stn_load(int64_t n_total, int64_t n_test, uint64_t seed, nl_dataset *tr, nl_dataset *va, nl_dataset *te) {
    nl_dataset ftr, fte, first;
    memset(tr, 0, sizeof *tr), memset(va, 0, sizeof *va), memset(te, 0, sizeof *te);
    if (n_total < 10 || n_total > 60000 || n_test < 1 || n_test > 10000) return nl_set_error(NL_EINVAL, "stn: bad data sizes");
    nl_status s = nl_dataset_load(&ftr, "fashion-mnist", "train", NULL);
    if (s) return s;
    if ((s = nl_dataset_load(&fte, "fashion-mnist", "test", NULL))) {
        nl_dataset_free(&ftr);
        return s;
    }
    int64_t *idx = malloc((size_t)n_total * sizeof(int64_t)); /* [n_total] */
    if (!idx) s = nl_set_error(NL_ENOMEM, "stn: out of memory");
    for (int64_t i = 0; !s && i < n_total; i++) idx[i] = i;
    if (!s) s = nl_dataset_subset(&ftr, idx, n_total, &first);
    for (int64_t i = 0; !s && i < n_test; i++) idx[i] = i;
    if (!s) s = nl_dataset_subset(&fte, idx, n_test, te);
    if (!s) {
        s = nl_dataset_split(&first, n_total / 5, seed, tr, va);
        nl_dataset_free(&first);
    }
    if (!s) {
        nl_dataset *others[2] = {va, te};
        s = nl_dataset_standardize(tr, others, 2, 0, NULL, NULL);
    }
    free(idx);
    nl_dataset_free(&ftr);
    nl_dataset_free(&fte);
    if (s) nl_dataset_free(tr), nl_dataset_free(va), nl_dataset_free(te);
    return s;
}
