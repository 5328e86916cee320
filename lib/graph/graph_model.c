/* Graph layers (GCN, GraphSAGE-mean, GAT), the node-classification models built from them (and the MLP
 * baseline) and full-graph training with early stopping (lib/graph/graph.h). */
#include "graph/graph.h"
#include "nnlab/extend.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================= layers ======================================= */
nl_var *nl_graph_xw(nl_ctx *c, const nl_csr *xs, nl_var *h, nl_var *W) {
    NL_REQUIRE(W);
    if ((xs != NULL) == (h != NULL)) {
        nl_set_error(NL_EINVAL, "graph layer: give exactly one input, the sparse features or a dense h");
        return NULL;
    }
    return xs ? nl_spmm(c, xs, NULL, W) : nl_matmul(c, h, W);
}

/* x [n, D] + b [D] broadcast over rows. Its own op because the backward's column sums over ~10^5 rows are the
 * hot spot of the generic broadcasting add's reduction (measured with perf on WordNet: a fifth of an MLP epoch). */
static void bias_backward(nl_ctx *c, nl_node *n) {
    const nl_tensor *g = nl_node_grad_out(n);
    const int64_t rows = g->shape[0], D = g->shape[1];
    nl_tensor *gx = nl_grad(c, n->in[0]), *gb = nl_grad(c, n->in[1]);
    if (gx) nl_tensor_add_into(gx, g);
    if (!gb) return;
    if (g->dtype == NL_F32) {
        const float *gp = g->data;
        float *bp = gb->data;
        for (int64_t r = 0; r < rows; r++)
#pragma omp simd
            for (int64_t k = 0; k < D; k++) bp[k] += gp[r * D + k];
    } else {
        const double *gp = g->data;
        double *bp = gb->data;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < D; k++) bp[k] += gp[r * D + k];
    }
}

static nl_var *add_bias(nl_ctx *c, nl_var *x, nl_var *b) {
    if (!b || !x) return x;
    if (x->val.ndim != 2 || b->val.ndim != 1 || b->val.shape[0] != x->val.shape[1] || b->val.dtype != x->val.dtype)
        return nl_add(c, x, b); /* the generic op reports the mismatch */
    nl_tensor X = nl_contig(c, &x->val);
    nl_var *out = X.data ? nl_op_out(c, X.dtype, 2, X.shape) : NULL;
    if (!out) return NULL;
    const int64_t rows = X.shape[0], D = X.shape[1];
    nl_tensor B = nl_contig(c, &b->val);
    if (!B.data) return NULL;
    if (X.dtype == NL_F32) {
        const float *xp = X.data, *bp = B.data;
        float *yp = out->val.data;
        for (int64_t r = 0; r < rows; r++)
#pragma omp simd
            for (int64_t k = 0; k < D; k++) yp[r * D + k] = xp[r * D + k] + bp[k];
    } else {
        const double *xp = X.data, *bp = B.data;
        double *yp = out->val.data;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < D; k++) yp[r * D + k] = xp[r * D + k] + bp[k];
    }
    nl_var *in[2] = {x, b};
    nl_op_record(c, "graph_bias", out, bias_backward, 2, in);
    return out;
}

nl_var *nl_graph_gcn(nl_ctx *c, const nl_csr *ahat, const nl_csr *xs, nl_var *h, nl_var *W, nl_var *b) {
    return add_bias(c, nl_spmm(c, ahat, NULL, nl_graph_xw(c, xs, h, W)), b);
}

nl_var *nl_graph_sage(nl_ctx *c, const nl_csr *mean_adj, const nl_csr *xs, nl_var *h, nl_var *W_self, nl_var *W_neigh,
                      nl_var *b) {
    nl_var *self = nl_graph_xw(c, xs, h, W_self);
    nl_var *neigh = nl_spmm(c, mean_adj, NULL, nl_graph_xw(c, xs, h, W_neigh));
    return add_bias(c, nl_add(c, self, neigh), b);
}

nl_var *nl_graph_gat(nl_ctx *c, const nl_csr *A, const nl_csr *xs, nl_var *h, nl_var *W, nl_var *a_src, nl_var *a_dst,
                     nl_var *b, int heads, int concat) {
    NL_REQUIRE(W, a_src, a_dst);
    const int64_t HF = W->val.ndim == 2 ? W->val.shape[1] : -1;
    if (heads < 1 || HF < 1 || HF % heads) {
        nl_set_error(NL_ESHAPE, "gat: W's %lld output columns do not split into %d heads", (long long)HF, heads);
        return NULL;
    }
    const int64_t F = HF / heads, n = A->rows;
    if (a_src->val.ndim != 2 || a_src->val.shape[0] != heads || a_src->val.shape[1] != F || !nl_shape_equal(&a_src->val, &a_dst->val)) {
        nl_set_error(NL_ESHAPE, "gat: a_src and a_dst must be [%d, %lld]", heads, (long long)F);
        return NULL;
    }
    nl_var *z = nl_graph_xw(c, xs, h, W); /* [n, H*F] */
    const int64_t s3[3] = {n, heads, F}, se[1] = {A->nnz};
    nl_var *z3 = nl_reshape(c, z, 3, s3);
    nl_var *sd = nl_sum(c, nl_mul(c, z3, a_dst), -1, 0); /* [n, H] */
    nl_var *ss = nl_sum(c, nl_mul(c, z3, a_src), -1, 0);
    nl_var *e = nl_add(c, nl_embedding(c, sd, A->row_idx, 1, se), nl_embedding(c, ss, A->col_idx, 1, se)); /* [nnz, H] */
    nl_var *alpha = nl_csr_softmax(c, A, nl_leaky_relu(c, e, 0.2));
    nl_var *out = nl_spmm(c, A, alpha, z); /* [n, H*F] */
    if (!concat && heads > 1) out = nl_mean(c, nl_reshape(c, out, 3, s3), 1, 0);
    return add_bias(c, out, b);
}

/* =================================== models =================================== */
static const char *const KIND_NAMES[] = {"mlp", "gcn", "sage", "gat"};
const char *nl_graph_kind_name(nl_graph_kind k) { return k >= 0 && k <= NL_GRAPH_GAT ? KIND_NAMES[k] : "?"; }
nl_status nl_graph_parse_kind(const char *s, nl_graph_kind *out) {
    for (int k = 0; k <= NL_GRAPH_GAT; k++)
        if (s && !strcmp(s, KIND_NAMES[k])) {
            *out = (nl_graph_kind)k;
            return NL_OK;
        }
    return nl_set_error(NL_EINVAL, "graph: unknown model '%s' (mlp, gcn, sage or gat)", s ? s : "(null)");
}

nl_graph_config nl_graph_defaults(nl_graph_kind kind) {
    nl_graph_config c = {.kind = kind, .layers = 2, .hidden = 64, .heads = 8, .dropout = 0.5, .lr = 0.01, .weight_decay = 5e-4,
                         .max_epochs = 200, .patience = 50, .seed = 1, .verbose = 0};
    return c;
}

static void glorot(nl_var *v, int64_t fan_in, int64_t fan_out, nl_rng *r) {
    const double a = sqrt(6.0 / (double)(fan_in + fan_out));
    nl_rng_fill_uniform(r, &v->val, -a, a);
}

void nl_graph_model_free(nl_graph_model *m) {
    nl_params_free(&m->ps);
    nl_csr_free(&m->ahat);
    memset(m, 0, sizeof *m);
}

nl_status nl_graph_model_init(nl_graph_model *m, const nl_graph *g, const nl_graph_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    const int L = cfg->layers, C = g->num_classes;
    if (L < 1 || L > 16) return nl_set_error(NL_EINVAL, "graph model: layers %d outside [1, 16]", L);
    if (cfg->hidden < 1 || cfg->kind < 0 || cfg->kind > NL_GRAPH_GAT) return nl_set_error(NL_EINVAL, "graph model: bad hidden width or kind");
    if (cfg->kind == NL_GRAPH_GAT && (cfg->heads < 1 || cfg->hidden % cfg->heads))
        return nl_set_error(NL_EINVAL, "graph model: GAT hidden width %d is not a multiple of its %d heads", cfg->hidden, cfg->heads);
    if (cfg->dropout < 0 || cfg->dropout >= 1) return nl_set_error(NL_EINVAL, "graph model: dropout %g outside [0, 1)", cfg->dropout);
    if (C < 1 || g->n_feat < 1) return nl_set_error(NL_EINVAL, "graph model: the graph has no labels or no features");
    nl_status s = NL_OK;
    if (cfg->kind == NL_GRAPH_GCN) s = nl_graph_norm_adj(&g->adj, &m->ahat);
    else if (cfg->kind == NL_GRAPH_SAGE) s = nl_graph_mean_adj(&g->adj, &m->ahat);
    else if (cfg->kind == NL_GRAPH_GAT) s = nl_graph_self_loops(&g->adj, &m->ahat);
    if (s || (s = nl_params_init(&m->ps, NL_F32))) {
        nl_graph_model_free(m);
        return s;
    }
    nl_rng r;
    nl_rng_init(&r, cfg->seed, 0x171);
    int64_t in = g->n_feat;
    char nm[64];
    for (int l = 0; l < L; l++) {
        const int last = l == L - 1;
        const int heads = cfg->kind == NL_GRAPH_GAT && !last ? cfg->heads : 1;
        const int64_t out = last ? C : cfg->hidden, F = out / heads;
        int64_t sw[2] = {in, out}, sb[1] = {out}, sa[2] = {heads, F};
        snprintf(nm, sizeof nm, "l%d.W", l);
        m->W[l] = nl_params_add(&m->ps, nm, 2, sw);
        snprintf(nm, sizeof nm, "l%d.b", l);
        m->b[l] = nl_params_add(&m->ps, nm, 1, sb);
        if (cfg->kind == NL_GRAPH_SAGE) {
            snprintf(nm, sizeof nm, "l%d.W_neigh", l);
            m->W2[l] = nl_params_add(&m->ps, nm, 2, sw);
        } else if (cfg->kind == NL_GRAPH_GAT) {
            snprintf(nm, sizeof nm, "l%d.a_src", l);
            m->W2[l] = nl_params_add(&m->ps, nm, 2, sa);
            snprintf(nm, sizeof nm, "l%d.a_dst", l);
            m->A2[l] = nl_params_add(&m->ps, nm, 2, sa);
        }
        if (!m->W[l] || !m->b[l] || (cfg->kind >= NL_GRAPH_SAGE && !m->W2[l]) || (cfg->kind == NL_GRAPH_GAT && !m->A2[l])) {
            s = nl_last_status();
            nl_graph_model_free(m);
            return s ? s : NL_ENOMEM;
        }
        in = out;
    }
    /* initialise after all adds (adding moves the flat arrays; the vars are stable views) */
    in = g->n_feat;
    for (int l = 0; l < L; l++) {
        const int64_t out = m->W[l]->val.shape[1];
        glorot(m->W[l], in, out, &r);
        if (cfg->kind == NL_GRAPH_SAGE) glorot(m->W2[l], in, out, &r);
        if (cfg->kind == NL_GRAPH_GAT) {
            glorot(m->W2[l], m->W2[l]->val.shape[1], 1, &r);
            glorot(m->A2[l], m->A2[l]->val.shape[1], 1, &r);
        }
        nl_params_of(&m->ps, m->b[l])->wd_mult = 0;
        in = out;
    }
    return NL_OK;
}

nl_var *nl_graph_model_forward(nl_ctx *c, nl_graph_model *m, const nl_graph *g, int train, nl_rng *rng) {
    const nl_graph_config *cfg = &m->cfg;
    nl_var *h = NULL;
    for (int l = 0; l < cfg->layers; l++) {
        const int last = l == cfg->layers - 1;
        const nl_csr *xs = l == 0 ? &g->feat : NULL;
        if (l > 0) h = nl_dropout(c, h, cfg->dropout, train, rng);
        if (l > 0 && !h) return NULL;
        nl_var *o = NULL;
        switch (cfg->kind) {
        case NL_GRAPH_MLP: o = add_bias(c, nl_graph_xw(c, xs, h, m->W[l]), m->b[l]); break;
        case NL_GRAPH_GCN: o = nl_graph_gcn(c, &m->ahat, xs, h, m->W[l], m->b[l]); break;
        case NL_GRAPH_SAGE: o = nl_graph_sage(c, &m->ahat, xs, h, m->W[l], m->W2[l], m->b[l]); break;
        case NL_GRAPH_GAT:
            o = nl_graph_gat(c, &m->ahat, xs, h, m->W[l], m->W2[l], m->A2[l], m->b[l], last ? 1 : cfg->heads, !last);
            break;
        }
        h = last ? o : nl_relu(c, o);
        if (!h) return NULL;
    }
    return h;
}

double nl_graph_accuracy(const nl_var *logits, const int32_t *y, const uint8_t *mask) {
    const int64_t n = logits->val.shape[0], C = logits->val.shape[1];
    int64_t hit = 0, tot = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!mask[i]) continue;
        int64_t best = 0;
        double bv = nl_tensor_get(&logits->val, i * C);
        for (int64_t k = 1; k < C; k++) {
            double v = nl_tensor_get(&logits->val, i * C + k);
            if (v > bv) bv = v, best = k;
        }
        hit += best == y[i];
        tot++;
    }
    return tot ? (double)hit / (double)tot : 0;
}

/* =================================== training =================================== */
nl_status nl_graph_train(const nl_graph *g, const nl_graph_config *cfg, nl_graph_result *res) {
    memset(res, 0, sizeof *res);
    if (!g->train || !g->val || !g->test || !g->y) return nl_set_error(NL_ESTATE, "graph train: the graph has no labels or no split (nl_graph_split)");
    if (cfg->max_epochs < 1 || cfg->patience < 1) return nl_set_error(NL_EINVAL, "graph train: max_epochs and patience must be >= 1");
    int64_t n_tr = 0, n_va = 0;
    for (int64_t i = 0; i < g->n; i++) n_tr += g->train[i], n_va += g->val[i];
    if (!n_tr || !n_va) return nl_set_error(NL_EINVAL, "graph train: the split has %lld training and %lld validation nodes (need both)", (long long)n_tr, (long long)n_va);
    nl_graph_model m;
    nl_status s = nl_graph_model_init(&m, g, cfg);
    if (s) return s;
    int32_t *tgt = malloc((size_t)g->n * sizeof *tgt); /* (n) label on training nodes, C (ignored) elsewhere */
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    nl_optim opt;
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
    oc.lr = cfg->lr;
    oc.weight_decay = cfg->weight_decay;
    if (!tgt || !c) {
        s = nl_set_error(NL_ENOMEM, "graph train: out of memory");
        goto out_model;
    }
    if ((s = nl_optim_init(&opt, &m.ps, &oc))) goto out_model;
    for (int64_t i = 0; i < g->n; i++) tgt[i] = g->train[i] ? g->y[i] : g->num_classes;
    nl_rng rng;
    nl_rng_init(&rng, cfg->seed, 0xd70);
    double best = -1, t_train = 0;
    int bad = 0;
    for (int ep = 1; ep <= cfg->max_epochs; ep++) {
        double t0 = nl_time();
        nl_ctx_reset(c);
        nl_var *logits = nl_graph_model_forward(c, &m, g, 1, &rng);
        nl_var *loss = nl_cross_entropy(c, logits, tgt, 0.0, g->num_classes);
        if (!loss) {
            s = nl_last_status();
            break;
        }
        nl_params_zero_grad(&m.ps);
        if ((s = nl_backward(c, loss)) || (s = nl_optim_step(&opt))) break;
        t_train += nl_time() - t0;
        const double lv = nl_item(loss);
        nl_ctx_reset(c);
        int prev = nl_set_grad_enabled(c, 0);
        logits = nl_graph_model_forward(c, &m, g, 0, NULL);
        nl_set_grad_enabled(c, prev);
        if (!logits) {
            s = nl_last_status();
            break;
        }
        const double va = nl_graph_accuracy(logits, g->y, g->val);
        res->epochs = ep;
        res->last_train_acc = nl_graph_accuracy(logits, g->y, g->train);
        if (va > best) {
            best = va;
            bad = 0;
            res->val_acc = va;
            res->test_acc = nl_graph_accuracy(logits, g->y, g->test);
            res->train_acc = nl_graph_accuracy(logits, g->y, g->train);
            res->best_epoch = ep;
        } else bad++;
        if (cfg->verbose && (ep % 10 == 0 || ep == 1))
            nl_progress("graph %s %s epoch %d: loss %.4f val %.4f (best %.4f at %d)", g->name, nl_graph_kind_name(cfg->kind), ep, lv, va,
                        best, res->best_epoch);
        if (bad >= cfg->patience) break;
    }
    res->epoch_s = res->epochs ? t_train / res->epochs : 0;
    res->arena_peak = nl_arena_peak(c->arena);
    nl_optim_free(&opt);
out_model:
    free(tgt);
    if (c) nl_ctx_free(c);
    nl_graph_model_free(&m);
    return s;
}
