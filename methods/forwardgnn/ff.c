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

/* ---- greedy layer-wise FF training with label appending (forwardgnn.h) ---- */
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

nl_status nl_fgnn_ff_negatives(const nl_graph *g, nl_rng *r, int32_t *neg) {
    const int64_t n = g->n, C = g->num_classes;
    if (C < 2) return nl_set_error(NL_EINVAL, "forwardgnn ff: needs at least 2 classes");
    int32_t perm[64]; /* (C - 1) the wrong classes of one node */
    if (C > 64) return nl_set_error(NL_EINVAL, "forwardgnn ff: at most 64 classes");
    for (int64_t i = 0; i < n; i++) {
        if (!g->train[i]) {
            for (int64_t k = 0; k + 1 < C; k++) neg[k * n + i] = -1;
            continue;
        }
        int64_t m = 0;
        for (int32_t c = 0; c < C; c++)
            if (c != g->y[i]) perm[m++] = c;
        for (int64_t k = m - 1; k > 0; k--) { /* Fisher-Yates */
            const int64_t j = (int64_t)(nl_rng_uniform(r) * (double)(k + 1));
            const int32_t t = perm[k];
            perm[k] = perm[j < k ? j : k], perm[j < k ? j : k] = t;
        }
        for (int64_t k = 0; k < m; k++) neg[k * n + i] = perm[k];
    }
    return NL_OK;
}

void nl_fgnn_ff_eval_labels(const nl_graph *g, int32_t c, int test, int32_t *lab) {
    for (int64_t i = 0; i < g->n; i++) {
        const int known = g->train[i] || (test && g->val[i]), eval = test ? g->test[i] : g->val[i];
        lab[i] = known ? g->y[i] : eval ? c : -1;
    }
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

/* prediction goodness (mean over units of H [n, D] squared, minus theta) added into g (n) */
static void add_goodness(const nl_var *H, double theta, double *g) {
    const int64_t n = H->val.shape[0], D = H->val.shape[1];
    const float *x = H->val.data;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < D; j++) s += (double)x[i * D + j] * x[i * D + j];
        g[i] += s / (double)D - theta;
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

/* Variants (V = 3C), each with its own layer-0 input x0[v] and held layer input h + v n D: 0 positive; 1..C-1 the
 * negatives; C + c validation prediction with class c; 2C + c test prediction with class c. */
nl_status nl_forwardgnn_ff_train(const nl_graph *g, const nl_forwardgnn_config *cfg, nl_forwardgnn_result *res) {
    memset(res, 0, sizeof *res);
    if (cfg->layers < 1 || cfg->layers > NL_FGNN_MAX_LAYERS) return nl_set_error(NL_EINVAL, "forwardgnn ff: layers %d outside 1..%d", cfg->layers, NL_FGNN_MAX_LAYERS);
    if (cfg->kind != NL_GRAPH_GCN && cfg->kind != NL_GRAPH_SAGE) return nl_set_error(NL_EINVAL, "forwardgnn ff: gcn or sage only");
    if (!g->y || !g->train || !g->val || !g->test) return nl_set_error(NL_ESTATE, "forwardgnn ff: the graph has no labels or no split");
    if (cfg->hidden < 1 || cfg->max_epochs < 1 || cfg->patience < 1 || cfg->val_every < 1 || !(cfg->lr > 0) || !(cfg->weight_decay >= 0))
        return nl_set_error(NL_EINVAL, "forwardgnn ff: hidden, max_epochs, patience, val_every and lr must be positive, weight_decay >= 0");
    const int64_t n = g->n, C = g->num_classes, D = cfg->hidden, V = 3 * C;
    if (C < 2 || C > 64) return nl_set_error(NL_EINVAL, "forwardgnn ff: 2 to 64 classes");
    const double t0 = nl_time();
    nl_csr adj, x0[3 * 64];
    memset(x0, 0, sizeof x0);
    nl_status s = cfg->kind == NL_GRAPH_GCN ? nl_graph_norm_adj(&g->adj, &adj) : nl_graph_mean_adj(&g->adj, &adj);
    if (s) return s;
    int32_t *lab = malloc((size_t)n * sizeof *lab);                /* (n) appended label of a variant */
    int32_t *neg = malloc((size_t)((C - 1) * n) * sizeof *neg);     /* (C-1, n) negative classes */
    int8_t *spos = malloc((size_t)n), *sneg = malloc((size_t)n);    /* (n) FF signs */
    float *h = NULL;                                                /* (V, n, D) layer inputs (l > 0) */
    double *gv = calloc((size_t)(2 * C * n), sizeof *gv), *gt = gv ? gv + C * n : NULL; /* (C, n) each: val / test goodness over layers */
    double *gcur = malloc((size_t)(C * n) * sizeof *gcur);          /* (C, n) validation goodness with this layer */
    ff_layer_p p;
    memset(&p, 0, sizeof p);
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    float *best = NULL;
    if (!lab || !neg || !spos || !sneg || !gv || !gcur || !c) s = nl_set_error(NL_ENOMEM, "forwardgnn ff: out of memory");
    nl_rng r;
    nl_rng_init(&r, cfg->seed, 0xff1);
    if (!s) s = nl_fgnn_ff_negatives(g, &r, neg); /* drawn once per run, as the reference's append_for_train */
    for (int64_t v = 0; v < V && !s; v++) {
        if (v == 0)
            for (int64_t i = 0; i < n; i++) lab[i] = g->train[i] ? g->y[i] : -1;
        else if (v < C) memcpy(lab, neg + (v - 1) * n, (size_t)n * sizeof *lab);
        else nl_fgnn_ff_eval_labels(g, (int32_t)(v % C), v >= 2 * C, lab);
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
        nl_fgnn_init_layer(cfg->kind, p.W, p.W2, p.b, in, D, &r); /* PyG's initialisation */
        nl_optim opt;
        nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
        oc.lr = cfg->lr, oc.weight_decay = cfg->weight_decay; /* PyTorch Adam: L2 added to the gradient */
        if ((s = nl_optim_init(&opt, &p.ps, &oc))) break;
        double bv = -1;
        int bad = 0;
        /* t = steps done; as the reference, validate after step t when t % val_every == 0 and t >= 2, patience in
         * validations, strict improvement, the best validated parameters restored (the last ones if none ran) */
        for (int t = 0; t <= cfg->max_epochs && !s; t++) {
            const int val_now = t >= 2 && t % cfg->val_every == 0;
            if (val_now) { /* prediction from layers 0..l, this one after t steps */
                int prev = nl_set_grad_enabled(c, 0);
                memcpy(gcur, gv, (size_t)(C * n) * sizeof *gcur);
                for (int64_t k = 0; k < C && !s; k++) {
                    nl_ctx_reset(c);
                    nl_var *H = ff_forward(c, cfg->kind, &adj, &p, l ? NULL : &x0[C + k], h ? h + (C + k) * n * D : NULL, n, D);
                    if (!H) s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
                    else add_goodness(H, cfg->theta, gcur + k * n);
                }
                nl_set_grad_enabled(c, prev);
                if (s) break;
                const double va = ff_acc(gcur, n, C, g->y, g->val);
                if (va > bv) {
                    bv = va, bad = 0, res->best_epoch[l] = t;
                    memcpy(best, p.ps.data, (size_t)p.ps.total * sizeof *best);
                } else if (++bad >= cfg->patience) {
                    res->epochs[l] = t;
                    break;
                }
                if (cfg->verbose && (t % 20 == 0 || t == 2))
                    nl_progress("forwardgnn ff %s layer %d step %d: val %.4f (best %.4f at %d)", nl_graph_kind_name(cfg->kind), l + 1, t, va, bv,
                                res->best_epoch[l]);
            }
            res->epochs[l] = t;
            if (t == cfg->max_epochs) break;
            /* one step on loss_pos + mean over the C-1 negative passes of loss_neg (the reference's forward_train) */
            nl_ctx_reset(c);
            nl_var *loss = NULL, *lneg = NULL;
            int ok = 1;
            for (int64_t v = 0; v < C && ok; v++) {
                nl_var *H = ff_forward(c, cfg->kind, &adj, &p, l ? NULL : &x0[v], h ? h + v * n * D : NULL, n, D);
                nl_var *lv = H ? nl_fgnn_ff_loss(c, H, v ? sneg : spos, cfg->theta) : NULL;
                if (!lv) ok = 0;
                else if (!v) loss = lv;
                else if (!(lneg = lneg ? nl_add(c, lneg, lv) : lv)) ok = 0;
            }
            if (ok && (lneg = nl_mul_scalar(c, lneg, 1.0 / (double)(C - 1)))) loss = nl_add(c, loss, lneg);
            else loss = NULL;
            if (!loss) {
                s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
                break;
            }
            nl_params_zero_grad(&p.ps);
            if ((s = nl_backward(c, loss)) || (s = nl_optim_step(&opt))) break;
        }
        nl_optim_free(&opt);
        if (s) break;
        res->peak_bytes[l] = nl_arena_peak(c->arena) + (h ? (size_t)(V * n * D) * sizeof(float) : 0);
        if (bv >= 0) memcpy(p.ps.data, best, (size_t)p.ps.total * sizeof *best);
        if (l + 1 < cfg->layers && !h && !(h = malloc((size_t)(V * n * D) * sizeof *h))) {
            s = nl_set_error(NL_ENOMEM, "forwardgnn ff: out of memory");
            break;
        }
        /* outputs of the best layer for every variant: the prediction goodness and the next inputs (normalised) */
        for (int64_t v = 0; v < V && !s; v++) {
            if (v < C && l + 1 == cfg->layers) continue;
            nl_ctx_reset(c);
            int prev = nl_set_grad_enabled(c, 0);
            nl_var *H = ff_forward(c, cfg->kind, &adj, &p, l ? NULL : &x0[v], h ? h + v * n * D : NULL, n, D);
            nl_set_grad_enabled(c, prev);
            if (!H) {
                s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
                break;
            }
            if (v >= C) add_goodness(H, cfg->theta, (v < 2 * C ? gv : gt) + (v % C) * n);
            if (l + 1 < cfg->layers) {
                memcpy(h + v * n * D, H->val.data, (size_t)(n * D) * sizeof(float));
                nl_fgnn_row_normalise(h + v * n * D, n, D);
            }
        }
        res->val_acc[l] = ff_acc(gv, n, C, g->y, g->val);
        res->test_acc[l] = ff_acc(gt, n, C, g->y, g->test);
        if (cfg->verbose)
            nl_progress("forwardgnn ff %s layer %d: best step %d of %d, val %.4f test %.4f (layers 1..%d summed)", nl_graph_kind_name(cfg->kind), l + 1,
                        res->best_epoch[l], res->epochs[l], res->val_acc[l], res->test_acc[l], l + 1);
        nl_params_free(&p.ps);
        memset(&p, 0, sizeof p);
        free(best);
        best = NULL;
        in = D;
    }
    if (p.ps.p) nl_params_free(&p.ps);
    free(best), free(lab), free(neg), free(spos), free(sneg), free(h), free(gv), free(gcur);
    for (int64_t v = 0; v < V; v++) nl_csr_free(&x0[v]);
    nl_csr_free(&adj);
    if (c) nl_ctx_free(c);
    res->seconds = nl_time() - t0;
    return s;
}
