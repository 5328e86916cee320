/* Learning-rate transfer across widths under SP and muP (mup examples/MLP, TP5 Figure 1 style): the sweep of one
 * seed and the interpolated optimum of a loss-vs-LR curve. The ledger entry `mup` is transfer_entry.c. */
#include "mup/mup.h"
#include "nnlab/train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tail_loss {
    int64_t from;      /* first step (1-based) counted */
    double sum;
    int64_t n;
} tail_loss;

static int on_step(void *ud, nl_model *m, const nl_train_progress *p) {
    (void)m;
    tail_loss *t = ud;
    if (p->step >= t->from) {
        t->sum += p->loss;
        t->n++;
    }
    return 0;
}

static const char *const g_pnames[3] = {"sp", "mup", "broken"};

static nl_status check_cfg(const nl_mup_transfer_config *c, const nl_dataset *train) {
    if (c->n_widths < 2 || c->n_widths > NL_MUP_TRANSFER_MAX_WIDTHS)
        return nl_set_error(NL_EINVAL, "lr transfer: %d widths (need 2 .. %d)", c->n_widths, NL_MUP_TRANSFER_MAX_WIDTHS);
    for (int i = 0; i < c->n_widths; i++)
        if (c->widths[i] < 1 || c->widths[i] > (1 << 16) || (i && c->widths[i] <= c->widths[i - 1]))
            return nl_set_error(NL_EINVAL, "lr transfer: widths must be increasing and in [1, 65536]");
    if (c->n_lr < 3 || c->n_lr > NL_MUP_TRANSFER_MAX_LR) return nl_set_error(NL_EINVAL, "lr transfer: %d learning rates (need 3 .. %d)", c->n_lr, NL_MUP_TRANSFER_MAX_LR);
    if (!(c->log2_lr_step > 0) || !isfinite(c->log2_lr_lo)) return nl_set_error(NL_EINVAL, "lr transfer: bad LR grid");
    if (c->steps < 1 || c->batch < 1 || c->avg_last < 1 || c->avg_last > c->steps)
        return nl_set_error(NL_EINVAL, "lr transfer: need steps >= 1, batch >= 1, 1 <= avg_last <= steps");
    if (!(c->base_width > 0)) return nl_set_error(NL_EINVAL, "lr transfer: base_width must be > 0");
    if (c->optim != NL_OPT_SGD && c->optim != NL_OPT_ADAM) return nl_set_error(NL_EINVAL, "lr transfer: optimizer must be sgd or adam");
    if (!train || train->n < c->batch) return nl_set_error(NL_EINVAL, "lr transfer: training set smaller than a batch");
    return NL_OK;
}

void nl_mup_transfer_summary(const nl_mup_transfer_result *r, int pi, int *shift, int *widest_best) {
    int lo = INT32_MAX, hi = -1, missing = 0;
    for (int w = 0; w < r->n_widths; w++) {
        int b = r->best[pi][w];
        if (b < 0) { missing = 1; continue; }
        if (b < lo) lo = b;
        if (b > hi) hi = b;
    }
    *shift = missing || hi < 0 ? r->n_lr : hi - lo;
    *widest_best = 0;
    int W = r->n_widths - 1, k = r->best[pi][W];
    if (k >= 0) {
        double lw = r->loss[pi][W][k];
        int ok = isfinite(lw);
        for (int w = 0; w < W; w++)
            if (isfinite(r->loss[pi][w][k]) && r->loss[pi][w][k] <= lw) ok = 0;
        *widest_best = ok;
    }
}

/* One training run at log2 LR log2lr: *loss = mean minibatch loss of the last avg_last steps, NaN when it diverged. */
static nl_status train_one(const nl_mup_transfer_config *cfg, const nl_dataset *train, const nl_model_config *mc,
                           double log2lr, double *loss) {
    nl_model m;
    nl_status s = nl_model_init(&m, mc, cfg->seed);
    if (s) return s;
    nl_train_config tc = nl_train_defaults();
    tc.steps = cfg->steps;
    tc.epochs = 1;
    tc.batch = cfg->batch;
    tc.seed = cfg->seed;
    tc.verbose = 0;
    tc.eval_every = 0;
    tc.optim = nl_optim_defaults(cfg->optim);
    tc.optim.lr = exp2(log2lr);
    tc.optim.weight_decay = 0;
    if (cfg->optim == NL_OPT_SGD) tc.optim.momentum = cfg->momentum;
    tail_loss tl = {cfg->steps - cfg->avg_last + 1, 0, 0};
    nl_train_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.ud = &tl;
    cb.on_step = on_step;
    nl_train_result tr;
    nl_status ts = nl_train_run(&m, train, NULL, &tc, &cb, &tr);
    *loss = NAN;
    if (ts == NL_OK && tl.n > 0) *loss = tl.sum / (double)tl.n;
    else if (ts != NL_ENONFINITE) s = nl_set_error(ts, "%s", tr.message);
    nl_train_result_free(&tr);
    nl_model_free(&m);
    return s;
}

double nl_mup_transfer_optimum(const double *loss, int n_lr, double lo, double step, int *edge, double *min_loss) {
    int k = -1;
    for (int i = 0; i < n_lr; i++)
        if (isfinite(loss[i]) && (k < 0 || loss[i] < loss[k])) k = i;
    *edge = 1;
    *min_loss = NAN;
    if (k < 0) return NAN;
    *min_loss = loss[k];
    if (k == 0 || k == n_lr - 1) return lo + k * step;
    *edge = 0;
    const double l0 = loss[k - 1], l1 = loss[k], l2 = loss[k + 1];
    if (!isfinite(l0) || !isfinite(l2)) return lo + k * step;
    const double curv = l0 - 2 * l1 + l2; /* >= 0: l1 is the minimum of the three */
    if (!(curv > 0)) return lo + k * step;
    const double delta = (l0 - l2) / (2 * curv); /* in [-1/2, 1/2] */
    *min_loss = l1 - (l0 - l2) * (l0 - l2) / (8 * curv);
    return lo + (k + delta) * step;
}

/* p x p average pooling of image rows (n, h*w) -> (n, (h/p)*(w/p)), in place of ds (single-channel images) */
static nl_status pool_images(nl_dataset *ds, int p) {
    if (p <= 1) return NL_OK;
    if (ds->channels != 1 || ds->height % p || ds->width % p || (int64_t)ds->height * ds->width != ds->d)
        return nl_set_error(NL_EINVAL, "lr transfer: pooling %d needs single-channel images with sides divisible by it", p);
    const int h = ds->height / p, w = ds->width / p;
    const int64_t d2 = (int64_t)h * w;
    float *x = malloc((size_t)(ds->n * d2) * sizeof *x); /* (n, h*w) pooled images */
    if (!x) return nl_set_error(NL_ENOMEM, "lr transfer: out of memory");
    for (int64_t i = 0; i < ds->n; i++)
        for (int r = 0; r < h; r++)
            for (int q = 0; q < w; q++) {
                double a = 0;
                for (int u = 0; u < p; u++)
                    for (int v = 0; v < p; v++) a += ds->x[i * ds->d + (int64_t)(r * p + u) * ds->width + q * p + v];
                x[i * d2 + r * w + q] = (float)(a / (p * p));
            }
    free(ds->x);
    ds->x = x;
    ds->d = d2;
    ds->height = h;
    ds->width = w;
    return NL_OK;
}

nl_status nl_mup_transfer_run(const nl_mup_transfer_config *cfg, const nl_dataset *full, int verbose, nl_mup_transfer_result *res) {
    memset(res, 0, sizeof *res);
    nl_status s = check_cfg(cfg, full);
    if (s) return s;
    const double t_start = nl_time();
    res->n_param = cfg->broken ? 3 : 2;
    res->n_widths = cfg->n_widths;
    res->n_lr = cfg->n_lr;
    /* the training subset: first n_train rows, standardised on themselves */
    nl_dataset train;
    int64_t n = cfg->n_train > 0 && cfg->n_train < full->n ? cfg->n_train : full->n;
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    if (!idx) return nl_set_error(NL_ENOMEM, "lr transfer: out of memory");
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    s = nl_dataset_subset(full, idx, n, &train);
    free(idx);
    if (s) return s;
    if ((s = pool_images(&train, cfg->pool)) || (s = nl_dataset_standardize(&train, NULL, 0, 0, NULL, NULL))) {
        nl_dataset_free(&train);
        return s;
    }
    for (int pi = 0; pi < res->n_param && !s; pi++) {
        nl_parametrization p = nl_param_defaults();
        p.kind = pi == 0 ? NL_PARAM_SP : NL_PARAM_MUP;
        p.base_width = cfg->base_width;
        p.optim = cfg->optim;
        p.zero_readout = cfg->zero_readout;
        if (pi == 2) p.ablate = NL_PARAM_ABLATE_OUTPUT_MULT;
        for (int wi = 0; wi < cfg->n_widths && !s; wi++) {
            int64_t sizes[4] = {train.d, cfg->widths[wi], cfg->widths[wi], train.n_classes};
            nl_model_config mc = nl_mlp_config(4, sizes, NL_ACT_RELU, 0.0);
            nl_param_apply(&mc, &p);
            int best = -1;
            if (pi > 0 && cfg->share_base && (double)cfg->widths[wi] == cfg->base_width) {
                /* width_mult 1: the same network and rule as SP's (bit for bit) */
                memcpy(res->loss[pi][wi], res->loss[0][wi], sizeof res->loss[pi][wi]);
                res->best[pi][wi] = res->best[0][wi];
                continue;
            }
            /* the LRs to run: the whole grid, or (search) a descent on the grid from the previous width's best (the
             * middle of the grid for the first width) that stops when the best LR's two neighbours have been run */
            for (int k = 0; k < cfg->n_lr; k++) res->loss[pi][wi][k] = INFINITY;
            int next = cfg->search ? (wi > 0 && res->best[pi][wi - 1] >= 0 ? res->best[pi][wi - 1] : cfg->n_lr / 2) : 0;
            while (next >= 0 && !s) {
                const int k = next;
                const double log2lr = cfg->log2_lr_lo + k * cfg->log2_lr_step;
                const double t0 = nl_time();
                double loss = NAN;
                if ((s = train_one(cfg, &train, &mc, log2lr, &loss))) {
                    s = nl_set_error(s, "lr transfer (%s, width %lld, lr 2^%g): %s", g_pnames[pi], (long long)cfg->widths[wi],
                                     log2lr, nl_last_error());
                    break;
                }
                res->loss[pi][wi][k] = loss;
                if (isfinite(loss) && (best < 0 || loss < res->loss[pi][wi][best])) best = k;
                if (verbose)
                    nl_progress("mup lr transfer: %-6s width %5lld  log2 lr %6.2f  loss %s%.4f  (%.1f s)", g_pnames[pi],
                                (long long)cfg->widths[wi], log2lr, isfinite(loss) ? "" : "diverged ", loss, nl_time() - t0);
                next = -1;
                if (!cfg->search) {
                    if (k + 1 < cfg->n_lr) next = k + 1;
                } else {
                    const int c = best >= 0 ? best : k; /* all diverged so far: keep going down */
                    if (c > 0 && res->loss[pi][wi][c - 1] == INFINITY) next = c - 1;
                    else if (best >= 0 && c + 1 < cfg->n_lr && res->loss[pi][wi][c + 1] == INFINITY) next = c + 1;
                }
            }
            res->best[pi][wi] = best;
        }
    }
    nl_dataset_free(&train);
    res->seconds = nl_time() - t_start;
    return s;
}

