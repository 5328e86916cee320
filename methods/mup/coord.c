/* muP coordinate check (as mup/coord_check.py): mean |x| of every layer's output over a few training steps on a
 * fixed batch, for a range of widths. */
#include "mup/mup.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nl_mup_coord_result_free(nl_mup_coord_result *res) {
    if (!res) return;
    free(res->l1);
    memset(res, 0, sizeof *res);
}

double nl_mup_coord_l1(const nl_mup_coord_result *r, int wi, int t, int rec) {
    if (!r->l1 || wi < 0 || wi >= r->n_widths || t < 1 || t > r->steps || rec < 0 || rec >= r->n_rec) return NAN;
    return r->l1[((size_t)wi * r->steps + (t - 1)) * r->n_rec + rec];
}

static double mean_abs(const nl_tensor *t) {
    int64_t n = nl_tensor_numel(t);
    double s = 0;
    if (nl_tensor_is_contiguous(t)) {
        if (t->dtype == NL_F32) {
            const float *d = t->data;
            for (int64_t i = 0; i < n; i++) s += fabs((double)d[i]);
        } else {
            const double *d = t->data;
            for (int64_t i = 0; i < n; i++) s += fabs(d[i]);
        }
    } else {
        for (int64_t i = 0; i < n; i++) s += fabs(nl_tensor_get(t, i));
    }
    return n ? s / (double)n : 0.0;
}

/* The value a parameter contributes to the forward pass, exactly as nl_model_forward computes it. */
static nl_var *eff(nl_ctx *c, nl_var *v) {
    if (!v) return NULL;
    const nl_param *p = (const nl_param *)((const char *)v - offsetof(nl_param, var));
    return p->fwd_mult == 1.0f ? v : nl_mul_scalar(c, v, (double)p->fwd_mult);
}

static nl_var *activate(nl_ctx *c, nl_var *x, nl_activation a) {
    switch (a) {
    case NL_ACT_TANH: return nl_tanh(c, x);
    case NL_ACT_GELU: return nl_gelu(c, x);
    case NL_ACT_SIGMOID: return nl_sigmoid(c, x);
    default: return nl_relu(c, x);
    }
}

/* Forward pass of an MLP without dropout or input normalisation, writing mean|x| of each layer output (and
 * hidden activation) into rec[]. Same ops in the same order as nl_model_forward, so the logits agree bit for bit. */
static nl_var *forward_record(nl_model *m, nl_ctx *c, nl_var *x, double *rec) {
    nl_var *h = x;
    int k = 0;
    for (int l = 0; l < m->n_layers; l++) {
        nl_model_layer *L = &m->layer[l];
        h = nl_linear(c, h, eff(c, L->w), eff(c, L->b));
        if (!h) return NULL;
        rec[k++] = mean_abs(&h->val);
        if (l < m->n_layers - 1) {
            h = activate(c, h, m->cfg.act);
            if (!h) return NULL;
            rec[k++] = mean_abs(&h->val);
        }
    }
    return h;
}

nl_status nl_mup_coord_check(const nl_mup_coord_config *cfg, nl_mup_coord_result *res) {
    memset(res, 0, sizeof *res);
    nl_status s = nl_param_check(&cfg->param);
    if (s) return s;
    if (cfg->n_widths < 1 || cfg->n_widths > NL_MUP_COORD_MAX_WIDTHS)
        return nl_set_error(NL_EINVAL, "coord check: %d widths (need 1 .. %d)", cfg->n_widths, NL_MUP_COORD_MAX_WIDTHS);
    if (cfg->steps < 1 || cfg->steps > 1000) return nl_set_error(NL_EINVAL, "coord check: steps %d must be in [1, 1000]", cfg->steps);
    if (cfg->seeds < 1) return nl_set_error(NL_EINVAL, "coord check: seeds %d must be >= 1", cfg->seeds);
    if (cfg->hidden_layers < 1 || cfg->hidden_layers > NL_MODEL_MAX_LAYERS - 1)
        return nl_set_error(NL_EINVAL, "coord check: hidden_layers %d must be in [1, %d]", cfg->hidden_layers, NL_MODEL_MAX_LAYERS - 1);
    if (!cfg->x || !cfg->y || cfg->batch < 1 || cfg->d < 1 || cfg->k < 2)
        return nl_set_error(NL_EINVAL, "coord check: need a batch (x, y, batch >= 1, d >= 1, k >= 2)");
    if (!(cfg->lr > 0) || !isfinite(cfg->lr)) return nl_set_error(NL_EINVAL, "coord check: lr %g must be > 0", cfg->lr);
    for (int i = 0; i < cfg->n_widths; i++)
        if (cfg->widths[i] < 1 || cfg->widths[i] > (1 << 20)) return nl_set_error(NL_EINVAL, "coord check: width %lld out of range", (long long)cfg->widths[i]);
    for (int64_t i = 0; i < cfg->batch; i++)
        if (cfg->y[i] < 0 || cfg->y[i] >= cfg->k) return nl_set_error(NL_EINVAL, "coord check: label %d of row %lld not in [0, %d)", cfg->y[i], (long long)i, cfg->k);

    const int L = cfg->hidden_layers;
    res->n_widths = cfg->n_widths;
    res->steps = cfg->steps;
    res->n_rec = 2 * L + 1;
    for (int i = 0; i < cfg->n_widths; i++) res->widths[i] = cfg->widths[i];
    for (int l = 0, k = 0; l <= L; l++) {
        snprintf(res->rec_name[k], sizeof res->rec_name[k], "fc%d", l + 1);
        res->rec_is_output[k++] = l == L;
        if (l < L) snprintf(res->rec_name[k++], sizeof res->rec_name[0], "act%d", l + 1);
    }
    size_t total = (size_t)res->n_widths * res->steps * res->n_rec;
    res->l1 = calloc(total, sizeof *res->l1);
    double *rec = calloc((size_t)res->n_rec, sizeof *rec);
    nl_ctx *ctx = nl_ctx_new(0, 0);
    if (!res->l1 || !rec || !ctx) {
        free(rec);
        nl_ctx_free(ctx);
        nl_mup_coord_result_free(res);
        return nl_set_error(NL_ENOMEM, "coord check: out of memory");
    }
    int64_t sizes[NL_MODEL_MAX_LAYERS + 1];
    for (int wi = 0; wi < cfg->n_widths && !s; wi++) {
        sizes[0] = cfg->d;
        for (int l = 1; l <= L; l++) sizes[l] = cfg->widths[wi];
        sizes[L + 1] = cfg->k;
        nl_model_config mc = nl_mlp_config(L + 2, sizes, cfg->act, 0.0);
        nl_param_apply(&mc, &cfg->param);
        for (int seed = 0; seed < cfg->seeds && !s; seed++) {
            nl_model m;
            if ((s = nl_model_init(&m, &mc, (uint64_t)seed))) break;
            nl_optim_config oc = nl_optim_defaults(cfg->param.optim);
            oc.lr = cfg->lr;
            oc.momentum = 0;
            oc.weight_decay = 0;
            nl_optim opt;
            if ((s = nl_optim_init(&opt, &m.ps, &oc))) {
                nl_model_free(&m);
                break;
            }
            for (int t = 1; t <= cfg->steps && !s; t++) {
                nl_ctx_reset(ctx);
                nl_var *x = nl_model_input(&m, ctx, cfg->x, cfg->batch);
                nl_var *logits = forward_record(&m, ctx, x, rec);
                nl_var *loss = nl_cross_entropy(ctx, logits, cfg->y, 0.0, -1);
                if (!loss) { s = nl_last_status() ? nl_last_status() : NL_EINVAL; break; }
                double *dst = res->l1 + ((size_t)wi * res->steps + (t - 1)) * res->n_rec;
                for (int k = 0; k < res->n_rec; k++) dst[k] += rec[k] / cfg->seeds;
                if (t == cfg->steps) break; /* the last record needs no update after it */
                nl_params_zero_grad(&m.ps);
                if ((s = nl_backward(ctx, loss))) break;
                if ((s = nl_optim_step(&opt))) break;
            }
            nl_optim_free(&opt);
            nl_model_free(&m);
        }
    }
    free(rec);
    nl_ctx_free(ctx);
    if (s) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", nl_last_error());
        nl_mup_coord_result_free(res);
        return nl_set_error(s, "coord check: %s", msg);
    }
    return NL_OK;
}

int nl_mup_coord_judge(const nl_mup_coord_result *r, int lo, int hi, double tol, int zero_readout, double *worst, char *where,
                   size_t n) {
    int pass = 1;
    double wlog = -1, wv = 1;
    if (where && n) where[0] = 0;
    if (!r->l1 || lo < 0 || hi < 0 || lo >= r->n_widths || hi >= r->n_widths || !(tol > 1)) {
        if (worst) *worst = NAN;
        if (where && n) snprintf(where, n, "invalid arguments");
        return 0;
    }
    for (int t = 1; t <= r->steps; t++)
        for (int k = 0; k < r->n_rec; k++) {
            double a = nl_mup_coord_l1(r, lo, t, k), b = nl_mup_coord_l1(r, hi, t, k);
            if (zero_readout && t == 1 && r->rec_is_output[k]) {
                if (!(a == 0.0 && b == 0.0)) {
                    pass = 0;
                    if (where && n && wlog < INFINITY) snprintf(where, n, "%s at t=1 is not exactly 0 with a zero readout (%g, %g)", r->rec_name[k], a, b);
                    wlog = INFINITY;
                    wv = NAN;
                }
                continue;
            }
            double ratio = b / a;
            double lg = (a > 0 && b > 0 && isfinite(ratio)) ? fabs(log(ratio)) : INFINITY;
            int ok = ratio >= 1.0 / tol && ratio <= tol;
            if (!ok) pass = 0;
            if (lg > wlog) {
                wlog = lg;
                wv = ratio;
                if (where && n) snprintf(where, n, "%s at t=%d: l1 %.4g (width %lld) vs %.4g (width %lld), ratio %.3f", r->rec_name[k], t, b,
                                         (long long)r->widths[hi], a, (long long)r->widths[lo], ratio);
            }
        }
    if (worst) *worst = wv;
    return pass;
}

nl_status nl_mup_coord_batch(const nl_dataset *ds, int64_t batch, float **xo, int32_t **yo) {
    *xo = NULL;
    *yo = NULL;
    if (!ds || batch < 1 || batch > ds->n) return nl_set_error(NL_EINVAL, "coord batch: %lld rows requested from a dataset of %lld", (long long)batch, ds ? (long long)ds->n : 0LL);
    size_t nx = (size_t)batch * (size_t)ds->d;
    float *x = malloc(nx * sizeof *x);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return nl_set_error(NL_ENOMEM, "coord batch: out of memory");
    }
    double s = 0, s2 = 0;
    for (size_t i = 0; i < nx; i++) {
        s += ds->x[i];
        s2 += (double)ds->x[i] * ds->x[i];
    }
    double mean = s / nx, var = s2 / nx - mean * mean, sd = var > 1e-16 ? sqrt(var) : 1.0;
    for (size_t i = 0; i < nx; i++) x[i] = (float)((ds->x[i] - mean) / sd);
    memcpy(y, ds->y, (size_t)batch * sizeof *y);
    *xo = x;
    *yo = y;
    return NL_OK;
}
