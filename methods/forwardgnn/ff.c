/* Forward-forward loss of ForwardGNN (forwardgnn.h): logit = sum_j y_j^2 - theta, BCE. */
#include "forwardgnn/forwardgnn.h"
#include <math.h>
#include <string.h>

nl_var *nl_fgnn_ff_loss(nl_ctx *c, nl_var *H, const int8_t *sign, double theta) {
    const int64_t n = H->val.shape[0];
    int64_t cnt = 0;
    nl_var *flip = nl_new(c, H->val.dtype, 1, &n); /* (n) -1 positive, +1 negative, 0 ignored */
    nl_var *mask = nl_new(c, H->val.dtype, 1, &n); /* (n) 1 where sign != 0 */
    if (!flip || !mask) return NULL;
    for (int64_t i = 0; i < n; i++) {
        const double f = sign[i] > 0 ? -1.0 : sign[i] < 0 ? 1.0 : 0.0;
        if (H->val.dtype == NL_F32) ((float *)flip->val.data)[i] = (float)f, ((float *)mask->val.data)[i] = sign[i] != 0;
        else ((double *)flip->val.data)[i] = f, ((double *)mask->val.data)[i] = sign[i] != 0;
        cnt += sign[i] != 0;
    }
    if (!cnt) {
        nl_set_error(NL_EINVAL, "forwardgnn ff loss: no node has a sign");
        return NULL;
    }
    nl_var *v = nl_square(c, H);                 /* [n, D] */
    if (v) v = nl_sum(c, v, 1, 0);               /* [n] goodness */
    if (v) v = nl_add_scalar(c, v, -theta);      /* [n] logit z */
    /* BCE(sigmoid(z), 1) = softplus(-z); BCE(sigmoid(z), 0) = softplus(z) */
    if (v) v = nl_mul(c, v, flip);
    if (v) v = nl_softplus(c, v);
    if (v) v = nl_mul(c, v, mask);
    if (v) v = nl_sum(c, v, 0, 0);
    return v ? nl_mul_scalar(c, v, 1.0 / (double)cnt) : NULL;
}

/* ---- greedy layer-wise FF training with label appending ---- */
#include <stdlib.h>

/* Input rows [feat_i || a_i] row-L2-normalised, a_i the one-hot of lab[i] or (lab[i] < 0) the uniform 1/C. */
static nl_status ff_input(const nl_graph *g, const int32_t *lab, nl_csr *out) {
    const int64_t n = g->n, C = g->num_classes, cap = g->feat.nnz + n * C;
    int64_t *row = malloc((size_t)cap * sizeof *row), *col = malloc((size_t)cap * sizeof *col); /* (cap) COO */
    double *val = malloc((size_t)cap * sizeof *val);                                            /* (cap) */
    nl_status s = NL_OK;
    if (!row || !col || !val) s = nl_set_error(NL_ENOMEM, "forwardgnn ff: out of memory");
    int64_t k = 0;
    for (int64_t i = 0; i < n && !s; i++) {
        const int64_t k0 = k;
        for (int64_t q = g->feat.row_ptr[i]; q < g->feat.row_ptr[i + 1]; q++)
            row[k] = i, col[k] = g->feat.col_idx[q], val[k] = g->feat.values[q], k++;
        if (lab[i] >= 0) row[k] = i, col[k] = g->n_feat + lab[i], val[k] = 1, k++;
        else
            for (int64_t c = 0; c < C; c++) row[k] = i, col[k] = g->n_feat + c, val[k] = 1.0 / (double)C, k++;
        double ss = 0;
        for (int64_t q = k0; q < k; q++) ss += val[q] * val[q];
        for (int64_t q = k0; q < k; q++) val[q] /= sqrt(ss);
    }
    if (!s) s = nl_csr_from_coo(out, n, g->n_feat + C, k, row, col, val);
    free(row), free(col), free(val);
    return s;
}

typedef struct ff_layer_p {
    nl_params ps;
    nl_var *W, *W2, *b;
} ff_layer_p;

static nl_var *ff_forward(nl_ctx *c, nl_graph_kind kind, const nl_csr *adj, ff_layer_p *p, const nl_csr *xs, float *h, int64_t n, int64_t D) {
    const int64_t sh[2] = {n, D};
    nl_var *hv = xs ? NULL : nl_input(c, nl_tensor_wrap(h, NL_F32, 2, sh));
    nl_var *o = kind == NL_GRAPH_GCN ? nl_graph_gcn(c, adj, xs, hv, p->W, p->b) : nl_graph_sage(c, adj, xs, hv, p->W, p->W2, p->b);
    return o ? nl_relu(c, o) : NULL;
}

/* goodness (row sums of squares) of H [n, D] added into g (n) */
static void add_goodness(const nl_var *H, double *g) {
    const int64_t n = H->val.shape[0], D = H->val.shape[1];
    const float *x = H->val.data;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < D; j++) s += (double)x[i * D + j] * x[i * D + j];
        g[i] += s;
    }
}

static double ff_acc(const double *gs, int64_t n, int64_t C, const int32_t *y, const uint8_t *mask) {
    int64_t hit = 0, tot = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!mask[i]) continue;
        int64_t b = 0;
        for (int64_t c = 1; c < C; c++)
            if (gs[c * n + i] > gs[b * n + i]) b = c;
        hit += b == y[i], tot++;
    }
    return tot ? (double)hit / (double)tot : 0;
}

nl_status nl_forwardgnn_ff_train(const nl_graph *g, const nl_forwardgnn_config *cfg, nl_forwardgnn_result *res) {
    memset(res, 0, sizeof *res);
    if (cfg->layers < 1 || cfg->layers > NL_FGNN_MAX_LAYERS) return nl_set_error(NL_EINVAL, "forwardgnn ff: layers %d outside 1..%d", cfg->layers, NL_FGNN_MAX_LAYERS);
    if (cfg->kind != NL_GRAPH_GCN && cfg->kind != NL_GRAPH_SAGE) return nl_set_error(NL_EINVAL, "forwardgnn ff: gcn or sage only");
    if (!g->y || !g->train || !g->val || !g->test) return nl_set_error(NL_ESTATE, "forwardgnn ff: the graph has no labels or no split");
    if (cfg->hidden < 1 || cfg->max_epochs < 1 || cfg->patience < 1 || !(cfg->lr > 0)) return nl_set_error(NL_EINVAL, "forwardgnn ff: bad configuration");
    const int64_t n = g->n, C = g->num_classes, D = cfg->hidden, V = 2 + C; /* variants: pos, neg, class 0..C-1 */
    const double t0 = nl_time();
    nl_csr adj, x0[2 + 64];
    memset(x0, 0, sizeof x0);
    if (C > 64) return nl_set_error(NL_EINVAL, "forwardgnn ff: at most 64 classes");
    nl_status s = cfg->kind == NL_GRAPH_GCN ? nl_graph_norm_adj(&g->adj, &adj) : nl_graph_mean_adj(&g->adj, &adj);
    if (s) return s;
    int32_t *lab = malloc((size_t)n * sizeof *lab);            /* (n) appended label of a variant */
    int8_t *spos = malloc((size_t)n), *sneg = malloc((size_t)n); /* (n) FF signs */
    float *h = calloc((size_t)(V * n * D), sizeof *h);          /* (V, n, D) layer inputs (l > 0) */
    double *gs = calloc((size_t)(C * n), sizeof *gs);            /* (C, n) goodness summed over layers */
    ff_layer_p p;
    memset(&p, 0, sizeof p);
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    float *best = NULL;
    if (!lab || !spos || !sneg || !h || !gs || !c) s = nl_set_error(NL_ENOMEM, "forwardgnn ff: out of memory");
    nl_rng r;
    nl_rng_init(&r, cfg->seed, 0xff1);
    for (int64_t v = 0; v < V && !s; v++) {
        for (int64_t i = 0; i < n; i++) {
            if (v >= 2) lab[i] = (int32_t)(v - 2);
            else if (!g->train[i]) lab[i] = -1;
            else if (v == 0) lab[i] = g->y[i];
            else lab[i] = (int32_t)((g->y[i] + 1 + (int64_t)(nl_rng_uniform(&r) * (double)(C - 1))) % C); /* a wrong class */
        }
        s = ff_input(g, lab, &x0[v]);
    }
    for (int64_t i = 0; i < n; i++) spos[i] = g->train[i] ? 1 : 0, sneg[i] = g->train[i] ? -1 : 0;
    res->layers = cfg->layers;
    int64_t in = g->n_feat + C;
    for (int l = 0; l < cfg->layers && !s; l++) {
        int64_t sw[2] = {in, D}, sb[1] = {D};
        if ((s = nl_params_init(&p.ps, NL_F32))) break;
        p.W = nl_params_add(&p.ps, "W", 2, sw), p.b = nl_params_add(&p.ps, "b", 1, sb);
        p.W2 = cfg->kind == NL_GRAPH_SAGE ? nl_params_add(&p.ps, "W_neigh", 2, sw) : NULL;
        if (!p.W || !p.b || (cfg->kind == NL_GRAPH_SAGE && !p.W2) || !(best = malloc((size_t)p.ps.total * sizeof *best))) {
            s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
            break;
        }
        const double a = sqrt(6.0 / (double)(in + D));
        nl_rng_fill_uniform(&r, &p.W->val, -a, a);
        if (p.W2) nl_rng_fill_uniform(&r, &p.W2->val, -a, a);
        nl_optim opt;
        nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
        oc.lr = cfg->lr, oc.weight_decay = 0;
        if ((s = nl_optim_init(&opt, &p.ps, &oc))) break;
        double bv = -1, *gcur = malloc((size_t)(C * n) * sizeof *gcur); /* (C, n) */
        int bad = 0;
        if (!gcur) s = nl_set_error(NL_ENOMEM, "forwardgnn ff: out of memory");
        for (int ep = 1; ep <= cfg->max_epochs && !s; ep++) {
            /* validation accuracy of the current parameters (goodness of the earlier layers plus this one's) */
            nl_ctx_reset(c);
            int prev = nl_set_grad_enabled(c, 0);
            memcpy(gcur, gs, (size_t)(C * n) * sizeof *gcur);
            for (int64_t k = 0; k < C && !s; k++) {
                nl_var *H = ff_forward(c, cfg->kind, &adj, &p, l ? NULL : &x0[2 + k], h + (2 + k) * n * D, n, D);
                if (!H) s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
                else add_goodness(H, gcur + k * n);
            }
            nl_set_grad_enabled(c, prev);
            if (s) break;
            const double va = ff_acc(gcur, n, C, g->y, g->val);
            res->epochs[l] = ep;
            if (va > bv) {
                bv = va, bad = 0, res->best_epoch[l] = ep;
                memcpy(best, p.ps.data, (size_t)p.ps.total * sizeof *best);
            } else if (++bad >= cfg->patience)
                break;
            nl_ctx_reset(c);
            nl_var *Hp = ff_forward(c, cfg->kind, &adj, &p, l ? NULL : &x0[0], h, n, D);
            nl_var *Hn = ff_forward(c, cfg->kind, &adj, &p, l ? NULL : &x0[1], h + n * D, n, D);
            nl_var *lp = Hp ? nl_fgnn_ff_loss(c, Hp, spos, cfg->theta) : NULL, *ln = Hn ? nl_fgnn_ff_loss(c, Hn, sneg, cfg->theta) : NULL;
            nl_var *loss = lp && ln ? nl_mul_scalar(c, nl_add(c, lp, ln), 0.5) : NULL;
            if (!loss) {
                s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
                break;
            }
            nl_params_zero_grad(&p.ps);
            if ((s = nl_backward(c, loss)) || (s = nl_optim_step(&opt))) break;
            if (cfg->verbose && (ep % 20 == 0 || ep == 1))
                nl_progress("forwardgnn ff %s layer %d epoch %d: loss %.4f val %.4f", nl_graph_kind_name(cfg->kind), l + 1, ep, nl_item(loss), va);
        }
        nl_optim_free(&opt);
        free(gcur);
        if (s) break;
        res->peak_bytes[l] = nl_arena_peak(c->arena) + (l ? (size_t)(V * n * D) * sizeof(float) : 0);
        memcpy(p.ps.data, best, (size_t)p.ps.total * sizeof *best);
        /* outputs of the best layer for every variant: next inputs (normalised) and the goodness */
        for (int64_t v = 0; v < V && !s; v++) {
            nl_ctx_reset(c);
            int prev = nl_set_grad_enabled(c, 0);
            nl_var *H = ff_forward(c, cfg->kind, &adj, &p, l ? NULL : &x0[v], h + v * n * D, n, D);
            nl_set_grad_enabled(c, prev);
            if (!H) {
                s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
                break;
            }
            if (v >= 2) add_goodness(H, gs + (v - 2) * n);
            memcpy(h + v * n * D, H->val.data, (size_t)(n * D) * sizeof(float));
            nl_fgnn_row_normalise(h + v * n * D, n, D);
        }
        res->val_acc[l] = ff_acc(gs, n, C, g->y, g->val);
        res->test_acc[l] = ff_acc(gs, n, C, g->y, g->test);
        nl_params_free(&p.ps);
        memset(&p, 0, sizeof p);
        free(best);
        best = NULL;
        in = D;
    }
    if (p.ps.p) nl_params_free(&p.ps);
    free(best), free(lab), free(spos), free(sneg), free(h), free(gs);
    for (int64_t v = 0; v < V; v++) nl_csr_free(&x0[v]);
    nl_csr_free(&adj);
    if (c) nl_ctx_free(c);
    res->seconds = nl_time() - t0;
    return s;
}
