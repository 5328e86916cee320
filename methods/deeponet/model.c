/* methods/deeponet/model.c — the unstacked DeepONet and the FNN baseline on the engine (nl_linear: one GEMM per
 * layer over the whole batch), and the training loop (deeponet.h). */
#include "deeponet/deeponet.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* TF1 glorot_normal: truncated normal (|z| <= 2) with sd = sqrt(2 / (fan_in + fan_out)) / 0.87962566103423978. */
static void glorot_normal(nl_rng *r, nl_var *w) {
    const int64_t out = w->val.shape[0], in = w->val.shape[1], n = out * in;
    const double sd = sqrt(2.0 / (double)(in + out)) / 0.87962566103423978;
    for (int64_t i = 0; i < n; i++) {
        double z;
        do z = nl_rng_normal(r); while (fabs(z) > 2);
        if (w->val.dtype == NL_F64) ((double *)w->val.data)[i] = sd * z;
        else ((float *)w->val.data)[i] = (float)(sd * z);
    }
}

static nl_status add_layer(nl_deeponet_model *md, const char *net, int i, int64_t in, int64_t out, nl_var **w, nl_var **b) {
    char name[64];
    int64_t ws[2] = {out, in}, bs[1] = {out};
    snprintf(name, sizeof name, "%s.%d.weight", net, i);
    if (!(*w = nl_params_add(&md->ps, name, 2, ws))) return nl_last_status();
    snprintf(name, sizeof name, "%s.%d.bias", net, i);
    if (!(*b = nl_params_add(&md->ps, name, 1, bs))) return nl_last_status();
    return NL_OK;
}

nl_status nl_deeponet_model_init(nl_deeponet_model *md, nl_deeponet_arch arch, int64_t m, int64_t width, int depth,
                                 nl_dtype dt, uint64_t seed) {
    memset(md, 0, sizeof *md);
    if (m < 1) return nl_set_error(NL_EINVAL, "deeponet: sensor count %lld (expected >= 1)", (long long)m);
    if (width < 1 || depth < 1 || depth >= NL_DON_MAX_LAYERS)
        return nl_set_error(NL_EINVAL, "deeponet: width %lld, depth %d (expected >= 1, 1..%d)", (long long)width, depth,
                            NL_DON_MAX_LAYERS - 1);
    md->arch = arch;
    nl_status s = nl_params_init(&md->ps, dt);
    if (s) return s;
    if (arch == NL_DON_DEEPONET) {
        md->nb = md->nt = depth;
        for (int i = 0; i < depth && !s; i++) s = add_layer(md, "branch", i, i ? width : m, width, &md->bw[i], &md->bb[i]);
        for (int i = 0; i < depth && !s; i++) s = add_layer(md, "trunk", i, i ? width : 1, width, &md->tw[i], &md->tb[i]);
        int64_t one[1] = {1};
        if (!s && !(md->b0 = nl_params_add(&md->ps, "b0", 1, one))) s = nl_last_status();
    } else {
        md->nb = depth + 1;
        for (int i = 0; i <= depth && !s; i++)
            s = add_layer(md, "fnn", i, i ? width : m + 1, i == depth ? 1 : width, &md->bw[i], &md->bb[i]);
    }
    if (s) {
        nl_params_free(&md->ps);
        return s;
    }
    /* biases (and b0) start at 0: the store is zeroed; weights Glorot normal in layer order */
    memset(md->ps.data, 0, (size_t)md->ps.total * (dt == NL_F64 ? sizeof(double) : sizeof(float)));
    nl_rng r;
    nl_rng_init(&r, seed, 3);
    for (int i = 0; i < md->nb; i++) glorot_normal(&r, md->bw[i]);
    for (int i = 0; i < md->nt; i++) glorot_normal(&r, md->tw[i]);
    return NL_OK;
}

void nl_deeponet_model_free(nl_deeponet_model *md) {
    if (!md) return;
    nl_params_free(&md->ps);
    memset(md, 0, sizeof *md);
}

/* x through layers 0..n-1; ReLU after each layer except the last unless relu_last. */
static nl_var *mlp(nl_ctx *c, nl_var *x, int n, nl_var *const *w, nl_var *const *b, int relu_last) {
    for (int i = 0; i < n && x; i++) {
        x = nl_linear(c, x, w[i], b[i]);
        if (x && (i < n - 1 || relu_last)) x = nl_relu(c, x);
    }
    return x;
}

nl_var *nl_deeponet_forward(nl_ctx *c, const nl_deeponet_model *md, nl_var *u, nl_var *y) {
    if (!u || !y) return NULL;
    if (u->val.ndim != 2 || y->val.ndim != 2 || y->val.shape[1] != 1 || u->val.shape[0] != y->val.shape[0]) {
        nl_set_error(NL_ESHAPE, "deeponet forward: u [%lld, %lld] and y [%lld, %lld] (expected [B, m] and [B, 1])",
                     (long long)u->val.shape[0], (long long)u->val.shape[1], (long long)y->val.shape[0],
                     (long long)(y->val.ndim > 1 ? y->val.shape[1] : 0));
        return NULL;
    }
    if (md->arch == NL_DON_FNN) {
        nl_var *xs[2] = {u, y};
        return mlp(c, nl_concat(c, 2, xs, 1), md->nb, md->bw, md->bb, 0); /* [B, m + 1] -> [B, 1] */
    }
    nl_var *b = mlp(c, u, md->nb, md->bw, md->bb, 0); /* [B, p] branch, linear last layer */
    nl_var *t = mlp(c, y, md->nt, md->tw, md->tb, 1); /* [B, p] trunk, ReLU after every layer */
    nl_var *g = nl_sum(c, nl_mul(c, b, t), 1, 1);      /* [B, 1] sum_k b_k t_k */
    return nl_add(c, g, md->b0);                       /* + b0 (broadcast [1]) */
}

nl_deeponet_config nl_deeponet_defaults(void) {
    nl_deeponet_config c;
    memset(&c, 0, sizeof c);
    c.arch = NL_DON_DEEPONET;
    c.op = NL_DON_ANTIDERIV;
    c.sensors = 100;
    c.width = 40;
    c.fnn_width = 50;
    c.depth = 2;
    c.grid = 1000;
    c.length_scale = 0.2;
    c.n_train = 10000;
    c.n_test = 100000;
    c.iters = 50000;
    c.batch = 256;
    c.lr = 1e-3;
    c.ckpt_every = 1000;
    c.seed = 1;
    return c;
}

nl_status nl_deeponet_check_config(const nl_deeponet_config *c) {
    if (c->sensors < 1)
        return nl_set_error(NL_EINVAL, "deeponet: sensor count %lld (expected >= 1: the branch net reads u at the sensors)",
                            (long long)c->sensors);
    if (c->sensors > 100000) return nl_set_error(NL_EINVAL, "deeponet: sensor count %lld (at most 100000)", (long long)c->sensors);
    if (c->width < 1 || c->fnn_width < 1 || c->depth < 1 || c->depth >= NL_DON_MAX_LAYERS)
        return nl_set_error(NL_EINVAL, "deeponet: width %lld / FNN width %lld / depth %d out of range", (long long)c->width,
                            (long long)c->fnn_width, c->depth);
    if (c->grid < 4) return nl_set_error(NL_EINVAL, "deeponet: GRF grid of %lld points (expected >= 4)", (long long)c->grid);
    if (!(c->length_scale > 0)) return nl_set_error(NL_EINVAL, "deeponet: length scale %g (expected > 0)", c->length_scale);
    if (c->n_train < 1 || c->n_test < 1)
        return nl_set_error(NL_EINVAL, "deeponet: %lld training / %lld test triples (expected >= 1)", (long long)c->n_train,
                            (long long)c->n_test);
    if (c->iters < 0 || c->batch < 0) return nl_set_error(NL_EINVAL, "deeponet: negative iterations or batch");
    if (!(c->lr > 0)) return nl_set_error(NL_EINVAL, "deeponet: learning rate %g (expected > 0)", c->lr);
    if ((int)c->op < 0 || c->op >= NL_DON_OP_COUNT) return nl_set_error(NL_EINVAL, "deeponet: unknown operator");
    return NL_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Mean squared error of md on rows [0, d->n) of d for operator op, in chunks, no gradient; trim (may be NULL): the
 * reference's mean_squared_error_outlier, the mean after dropping the largest n / 1000 squared errors. */
static nl_status eval_mse(nl_ctx *c, const nl_deeponet_model *md, const nl_deeponet_data *d, nl_deeponet_op op, double *mse,
                          double *trim) {
    const int64_t chunk = 8192;
    double se = 0;
    double *e2 = trim ? malloc((size_t)d->n * sizeof *e2) : NULL; /* (n) squared errors */
    if (trim && !e2) return nl_set_error(NL_ENOMEM, "deeponet: out of memory (evaluation)");
    int prev = nl_set_grad_enabled(c, 0);
    nl_status s = NL_OK;
    for (int64_t r0 = 0; r0 < d->n; r0 += chunk) {
        int64_t rn = d->n - r0 < chunk ? d->n - r0 : chunk;
        nl_ctx_reset(c);
        int64_t us[2] = {rn, d->m}, ys[2] = {rn, 1};
        nl_var *u = nl_input(c, nl_tensor_wrap(d->u + r0 * d->m, NL_F32, 2, us));
        nl_var *y = nl_input(c, nl_tensor_wrap(d->y + r0, NL_F32, 2, ys));
        nl_var *p = nl_deeponet_forward(c, md, u, y); /* [rn, 1] */
        if (!p) {
            s = nl_last_status();
            break;
        }
        const float *pv = p->val.data, *t = d->s[op] + r0;
        for (int64_t i = 0; i < rn; i++) {
            double e = (double)pv[i] - (double)t[i];
            se += e * e;
            if (e2) e2[r0 + i] = e * e;
        }
    }
    nl_ctx_reset(c);
    nl_set_grad_enabled(c, prev);
    *mse = se / (double)d->n;
    if (e2 && !s) {
        qsort(e2, (size_t)d->n, sizeof *e2, cmp_double);
        int64_t keep = d->n - d->n / 1000;
        double a = 0;
        for (int64_t i = 0; i < keep; i++) a += e2[i];
        *trim = a / (double)keep;
    }
    free(e2);
    return s;
}

nl_status nl_deeponet_train(const nl_deeponet_config *cfg, const nl_deeponet_data *tr, const nl_deeponet_data *te,
                            nl_deeponet_result *res) {
    memset(res, 0, sizeof *res);
    nl_status s = nl_deeponet_check_config(cfg);
    if (s) return s;
    if (tr->m != cfg->sensors || te->m != cfg->sensors)
        return nl_set_error(NL_ESHAPE, "deeponet: data with %lld / %lld sensors for a model with %lld", (long long)tr->m,
                            (long long)te->m, (long long)cfg->sensors);
    nl_deeponet_model md;
    int64_t width = cfg->arch == NL_DON_FNN ? cfg->fnn_width : cfg->width;
    if ((s = nl_deeponet_model_init(&md, cfg->arch, cfg->sensors, width, cfg->depth, NL_F32, cfg->seed))) return s;
    for (int i = 0; i < md.ps.n; i++) res->params += md.ps.p[i]->numel;
    nl_optim opt;
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
    oc.lr = cfg->lr;
    nl_ctx *c = NULL;
    if ((s = nl_optim_init(&opt, &md.ps, &oc))) {
        nl_deeponet_model_free(&md);
        return s;
    }
    const int64_t B = cfg->batch > 0 && cfg->batch < tr->n ? cfg->batch : tr->n;
    const int full = B == tr->n;
    float *ub = NULL, *yb = NULL, *sb = NULL; /* (B, m), (B, 1), (B, 1) a minibatch */
    int64_t *perm = NULL;                     /* (n) the epoch's order */
    if (!(c = nl_ctx_new((size_t)B * (size_t)(width * 16 + cfg->sensors + 8) * sizeof(float) + (1 << 20), 0)))
        s = nl_set_error(NL_ENOMEM, "deeponet: out of memory (context)");
    if (!s && !full) {
        ub = malloc((size_t)(B * tr->m) * sizeof *ub);
        yb = malloc((size_t)B * sizeof *yb);
        sb = malloc((size_t)B * sizeof *sb);
        perm = malloc((size_t)tr->n * sizeof *perm);
        if (!ub || !yb || !sb || !perm) s = nl_set_error(NL_ENOMEM, "deeponet: out of memory (batch)");
    }
    /* the reference's checkpointing (deeponet_pde.py: ModelCheckpoint(save_better_only=True, period=1000) on the
     * training loss, then model.restore(best_step)): every ckpt_every steps and at the last one, the MSE on the whole
     * training set; the parameters with the lowest are kept and restored at the end */
    const size_t pbytes = (size_t)md.ps.total * sizeof(float);
    void *best = NULL; /* (ps.total) the best checkpoint's flat parameters */
    double best_loss = INFINITY;
    if (!s && cfg->ckpt_every > 0 && !(best = malloc(pbytes))) s = nl_set_error(NL_ENOMEM, "deeponet: out of memory (checkpoint)");
    nl_rng r;
    nl_rng_init(&r, cfg->seed, 4);
    int64_t pos = tr->n;
    double t0 = now_s();
    for (int64_t it = 0; it < cfg->iters && !s; it++) {
        const float *u = tr->u, *y = tr->y, *t = tr->s[cfg->op];
        if (!full) {
            for (int64_t i = 0; i < B; i++) {
                if (pos == tr->n) {
                    nl_rng_permutation(&r, perm, tr->n);
                    pos = 0;
                }
                int64_t k = perm[pos++];
                memcpy(ub + i * tr->m, tr->u + k * tr->m, (size_t)tr->m * sizeof *ub);
                yb[i] = tr->y[k];
                sb[i] = tr->s[cfg->op][k];
            }
            u = ub, y = yb, t = sb;
        }
        nl_ctx_reset(c);
        int64_t us[2] = {B, tr->m}, ys[2] = {B, 1};
        nl_var *uv = nl_input(c, nl_tensor_wrap((void *)u, NL_F32, 2, us));
        nl_var *yv = nl_input(c, nl_tensor_wrap((void *)y, NL_F32, 2, ys));
        nl_var *tv = nl_input(c, nl_tensor_wrap((void *)t, NL_F32, 2, ys));
        nl_var *loss = nl_mse(c, nl_deeponet_forward(c, &md, uv, yv), tv);
        if (!loss) {
            s = nl_last_status();
            break;
        }
        nl_params_zero_grad(&md.ps);
        if ((s = nl_backward(c, loss)) || (s = nl_optim_step(&opt))) break;
        const double lv = nl_item(loss); /* read before eval_mse resets the context */
        if (best && ((it + 1) % cfg->ckpt_every == 0 || it + 1 == cfg->iters)) {
            double trl;
            if ((s = eval_mse(c, &md, tr, cfg->op, &trl, NULL))) break;
            if (trl < best_loss) {
                best_loss = trl;
                memcpy(best, md.ps.data, pbytes);
                res->best_step = it + 1;
            }
        }
        if (cfg->eval_every > 0 && ((it + 1) % cfg->eval_every == 0) && res->n_curve < 64) {
            double tm;
            if ((s = eval_mse(c, &md, te, cfg->op, &tm, NULL))) break;
            res->curve_step[res->n_curve] = (double)(it + 1);
            res->curve_test[res->n_curve++] = tm;
            if (cfg->verbose)
                nl_progress("deeponet %s %s step %lld: train loss %.3e, test MSE %.3e", cfg->arch == NL_DON_FNN ? "fnn" : "deeponet",
                            nl_deeponet_op_name(cfg->op), (long long)(it + 1), lv, tm);
        }
    }
    res->train_seconds = now_s() - t0;
    if (!s) s = eval_mse(c, &md, te, cfg->op, &res->test_mse_last, NULL);
    if (!s && best && res->best_step > 0) memcpy(md.ps.data, best, pbytes);
    else res->best_step = cfg->iters;
    free(best);
    if (!s) s = eval_mse(c, &md, tr, cfg->op, &res->train_mse, NULL);
    if (!s) s = eval_mse(c, &md, te, cfg->op, &res->test_mse, &res->test_mse_trim);
    free(ub);
    free(yb);
    free(sb);
    free(perm);
    nl_ctx_free(c);
    nl_optim_free(&opt);
    nl_deeponet_model_free(&md);
    return s;
}

nl_status nl_deeponet_run(const nl_deeponet_config *cfg, nl_deeponet_result *res) {
    memset(res, 0, sizeof *res);
    nl_status s = nl_deeponet_check_config(cfg);
    if (s) return s;
    nl_grf g;
    nl_deeponet_data tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    double t0 = now_s();
    if ((s = nl_grf_init(&g, cfg->grid, cfg->length_scale, 1e-13))) return s;
    if (!(s = nl_deeponet_data_make(&tr, &g, cfg->n_train, cfg->sensors, cfg->seed, 1, NULL)))
        s = nl_deeponet_data_make(&te, &g, cfg->n_test, cfg->sensors, cfg->seed, 2, NULL);
    if (!s && cfg->shuffle_branch) {
        if (!(s = nl_deeponet_data_shuffle_u(&tr, cfg->seed))) s = nl_deeponet_data_shuffle_u(&te, cfg->seed + 1000);
    }
    double dt = now_s() - t0;
    if (!s) s = nl_deeponet_train(cfg, &tr, &te, res);
    res->data_seconds = dt;
    nl_deeponet_data_free(&tr);
    nl_deeponet_data_free(&te);
    nl_grf_free(&g);
    return s;
}
