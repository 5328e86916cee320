/* Single-forward ForwardGNN (forwardgnn.h): virtual class nodes, per-layer node-vs-virtual-node cross-entropy,
 * greedy layer-wise training. */
#include "forwardgnn/forwardgnn.h"
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_forwardgnn_config nl_forwardgnn_defaults(nl_graph_kind kind) {
    nl_forwardgnn_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.layers = 4;
    c.hidden = 128;
    c.lr = 1e-3;
    c.weight_decay = 5e-4;
    c.val_every = 2;
    c.max_epochs = 1000;
    c.patience = 100;
    c.tau = 1.0;
    c.grad_clip = 1.0;
    c.test_steps = 10;
    c.alternating = 1;
    c.theta = 2.0;
    c.label_edges = 1;
    c.seed = 1;
    return c;
}

void nl_fgnn_row_normalise(float *x, int64_t rows, int64_t D) {
    for (int64_t i = 0; i < rows; i++) {
        double s = 0;
        for (int64_t j = 0; j < D; j++) s += (double)x[i * D + j] * x[i * D + j];
        if (s > 0) {
            const float inv = (float)(1.0 / sqrt(s));
            for (int64_t j = 0; j < D; j++) x[i * D + j] *= inv;
        }
    }
}

void nl_fgnn_sf_free(nl_fgnn_sf *m) {
    for (int l = 0; l < NL_FGNN_MAX_LAYERS; l++)
        if (m->ps[l].p) nl_params_free(&m->ps[l]);
    nl_csr_free(&m->ahat);
    nl_csr_free(&m->x0);
    free(m->tgt);
    memset(m, 0, sizeof *m);
}

static nl_status check_cfg(const nl_graph *g, const nl_forwardgnn_config *cfg, const char *who) {
    if (cfg->layers < 1 || cfg->layers > NL_FGNN_MAX_LAYERS)
        return nl_set_error(NL_EINVAL, "%s: layers %d outside 1..%d", who, cfg->layers, NL_FGNN_MAX_LAYERS);
    if (cfg->kind != NL_GRAPH_GCN && cfg->kind != NL_GRAPH_SAGE)
        return nl_set_error(NL_EINVAL, "%s: model %s is not supported (gcn or sage)", who, nl_graph_kind_name(cfg->kind));
    if (cfg->hidden < 1 || cfg->max_epochs < 1 || cfg->patience < 1 || cfg->val_every < 1 || !(cfg->lr > 0) || !(cfg->tau > 0) ||
        !(cfg->weight_decay >= 0))
        return nl_set_error(NL_EINVAL, "%s: hidden, max_epochs, patience, val_every, lr and tau must be positive, weight_decay >= 0", who);
    if (!g->y || !g->train || !g->val || !g->test) return nl_set_error(NL_ESTATE, "%s: the graph has no labels or no split", who);
    return NL_OK;
}

/* Adjacency of the graph plus (label_edges) the edges virtual node n + y_i -- training node i. */
static nl_status augmented_adj(const nl_graph *g, int label_edges, nl_csr *out, int norm_gcn) {
    const int64_t n = g->n, C = g->num_classes;
    int64_t m = 0, cap = g->adj.nnz / 2 + n + 1;
    int64_t *e = malloc((size_t)(2 * cap) * sizeof *e); /* (2 cap) edge list */
    if (!e) return nl_set_error(NL_ENOMEM, "forwardgnn: out of memory");
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = g->adj.row_ptr[i]; k < g->adj.row_ptr[i + 1]; k++)
            if (g->adj.col_idx[k] > i) e[2 * m] = i, e[2 * m + 1] = g->adj.col_idx[k], m++;
    if (label_edges)
        for (int64_t i = 0; i < n; i++)
            if (g->train[i]) e[2 * m] = n + g->y[i], e[2 * m + 1] = i, m++;
    nl_graph a;
    nl_status s = nl_graph_from_edges(&a, "augmented", n + C, m, e);
    free(e);
    if (s) return s;
    s = norm_gcn ? nl_graph_norm_adj(&a.adj, out) : nl_graph_mean_adj(&a.adj, out);
    nl_graph_free(&a);
    return s;
}

void nl_fgnn_init_layer(nl_graph_kind kind, nl_var *W, nl_var *W2, nl_var *b, int64_t fan_in, int64_t fan_out, nl_rng *r) {
    if (kind == NL_GRAPH_SAGE) { /* PyG Linear default: kaiming-uniform(a = sqrt 5) = U(+-1/sqrt(in)); bias U(+-1/sqrt(in)) */
        const double a = 1.0 / sqrt((double)fan_in);
        nl_rng_fill_uniform(r, &W->val, -a, a);
        if (W2) nl_rng_fill_uniform(r, &W2->val, -a, a);
        if (b) nl_rng_fill_uniform(r, &b->val, -a, a);
    } else { /* PyG GCNConv: glorot weight, zero bias */
        const double a = sqrt(6.0 / (double)(fan_in + fan_out));
        nl_rng_fill_uniform(r, &W->val, -a, a);
        if (b) nl_tensor_fill(&b->val, 0);
    }
}

nl_status nl_fgnn_sf_init(nl_fgnn_sf *m, const nl_graph *g, const nl_forwardgnn_config *cfg) {
    memset(m, 0, sizeof *m);
    nl_status s = check_cfg(g, cfg, "forwardgnn sf");
    if (s) return s;
    m->cfg = *cfg;
    m->n = g->n, m->C = g->num_classes, m->N = g->n + g->num_classes;
    const int64_t n = m->n, C = m->C, N = m->N, F = g->n_feat, fnnz = g->feat.nnz;
    if ((s = augmented_adj(g, cfg->label_edges, &m->ahat, cfg->kind == NL_GRAPH_GCN))) return s;
    /* x0: the features and C dense N(0,1) rows, each row L2-normalised */
    const int64_t nnz = fnnz + C * F;
    int64_t *row = malloc((size_t)nnz * sizeof *row), *col = malloc((size_t)nnz * sizeof *col); /* (nnz) COO */
    double *val = malloc((size_t)nnz * sizeof *val);                                            /* (nnz) */
    m->tgt = malloc((size_t)N * sizeof *m->tgt);
    if (!row || !col || !val || !m->tgt) {
        free(row), free(col), free(val);
        nl_fgnn_sf_free(m);
        return nl_set_error(NL_ENOMEM, "forwardgnn: out of memory");
    }
    nl_rng r;
    nl_rng_init(&r, cfg->seed, 0xf9d);
    int64_t k = 0;
    for (int64_t i = 0; i < N; i++) {
        const int64_t k0 = k;
        if (i < n) {
            for (int64_t q = g->feat.row_ptr[i]; q < g->feat.row_ptr[i + 1]; q++)
                row[k] = i, col[k] = g->feat.col_idx[q], val[k] = g->feat.values[q], k++;
        } else {
            for (int64_t j = 0; j < F; j++) row[k] = i, col[k] = j, val[k] = nl_rng_normal(&r), k++;
        }
        double ss = 0;
        for (int64_t q = k0; q < k; q++) ss += val[q] * val[q];
        if (ss > 0)
            for (int64_t q = k0; q < k; q++) val[q] /= sqrt(ss);
    }
    s = nl_csr_from_coo(&m->x0, N, F, k, row, col, val);
    free(row), free(col), free(val);
    if (s) {
        nl_fgnn_sf_free(m);
        return s;
    }
    for (int64_t i = 0; i < N; i++) m->tgt[i] = i < n && g->train[i] ? g->y[i] : (int32_t)C;
    /* parameters: one store per layer */
    int64_t in = F;
    char nm[32];
    for (int l = 0; l < cfg->layers; l++) {
        const int64_t out = cfg->hidden;
        int64_t sw[2] = {in, out}, sb[1] = {out};
        if ((s = nl_params_init(&m->ps[l], NL_F32))) break;
        snprintf(nm, sizeof nm, "l%d.W", l);
        m->W[l] = nl_params_add(&m->ps[l], nm, 2, sw);
        snprintf(nm, sizeof nm, "l%d.b", l);
        m->b[l] = nl_params_add(&m->ps[l], nm, 1, sb);
        if (cfg->kind == NL_GRAPH_SAGE) {
            snprintf(nm, sizeof nm, "l%d.W_neigh", l);
            m->W2[l] = nl_params_add(&m->ps[l], nm, 2, sw);
        }
        if (!m->W[l] || !m->b[l] || (cfg->kind == NL_GRAPH_SAGE && !m->W2[l])) {
            s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
            break;
        }
        nl_fgnn_init_layer(cfg->kind, m->W[l], m->W2[l], m->b[l], in, out, &r);
        in = out;
    }
    if (s) nl_fgnn_sf_free(m);
    return s;
}

nl_var *nl_fgnn_sf_layer(nl_ctx *c, nl_fgnn_sf *m, int l, nl_var *h) {
    const nl_csr *xs = h ? NULL : &m->x0;
    nl_var *o = m->cfg.kind == NL_GRAPH_GCN ? nl_graph_gcn(c, &m->ahat, xs, h, m->W[l], m->b[l])
                                            : nl_graph_sage(c, &m->ahat, xs, h, m->W[l], m->W2[l], m->b[l]);
    return o ? nl_relu(c, o) : NULL;
}

nl_var *nl_fgnn_sf_scores(nl_ctx *c, nl_var *H, int64_t n, int64_t C, double tau, const int32_t *tgt, nl_var **loss) {
    nl_var *Hv = nl_slice(c, H, 0, n, n + C, 1);                   /* [C, D] */
    nl_var *S = Hv ? nl_matmul_t(c, H, Hv, 0, 1) : NULL;          /* [n + C, C] */
    if (S && tau != 1.0) S = nl_mul_scalar(c, S, 1.0 / tau);
    if (S && loss) *loss = nl_cross_entropy(c, S, tgt, 0.0, (int32_t)C);
    return S;
}

void nl_fgnn_softmax_add(const nl_var *S, int64_t n, int64_t C, double *psum) {
    assert(C <= 64);
    for (int64_t i = 0; i < n; i++) {
        double mx = -INFINITY, z = 0, e[64];
        for (int64_t k = 0; k < C; k++) mx = fmax(mx, nl_tensor_get(&S->val, i * C + k));
        for (int64_t k = 0; k < C; k++) z += e[k] = exp(nl_tensor_get(&S->val, i * C + k) - mx);
        for (int64_t k = 0; k < C; k++) psum[i * C + k] += e[k] / z;
    }
}

double nl_fgnn_accuracy(const double *p, int64_t n, int64_t C, const int32_t *y, const uint8_t *mask) {
    int64_t hit = 0, tot = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!mask[i]) continue;
        int64_t b = 0;
        for (int64_t k = 1; k < C; k++)
            if (p[i * C + k] > p[i * C + b]) b = k;
        hit += b == y[i], tot++;
    }
    return tot ? (double)hit / (double)tot : 0;
}

/* Accuracy over mask of the prediction psum + softmax(S) (the earlier layers' summed softmaxes plus this layer's). */
static double acc_scores(const nl_var *S, const double *psum, int64_t n, int64_t C, const int32_t *y, const uint8_t *mask) {
    int64_t hit = 0, tot = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!mask[i]) continue;
        double p[64], mx = -INFINITY, z = 0;
        for (int64_t k = 0; k < C; k++) mx = fmax(mx, p[k] = nl_tensor_get(&S->val, i * C + k));
        for (int64_t k = 0; k < C; k++) z += p[k] = exp(p[k] - mx);
        int64_t b = 0;
        for (int64_t k = 0; k < C; k++) {
            p[k] = p[k] / z + psum[i * C + k];
            if (p[k] > p[b]) b = k;
        }
        hit += b == y[i], tot++;
    }
    return tot ? (double)hit / (double)tot : 0;
}

nl_status nl_fgnn_sf_run(nl_fgnn_sf *m, const nl_graph *g, const nl_forwardgnn_config *cfg, nl_forwardgnn_result *res,
                         void (*train_hook)(nl_fgnn_sf *m, int l, void *u), void *u) {
    memset(res, 0, sizeof *res);
    if (g->num_classes > 64) return nl_set_error(NL_EINVAL, "forwardgnn sf: at most 64 classes");
    nl_status s = nl_fgnn_sf_init(m, g, cfg);
    if (s) return s;
    const int64_t n = m->n, C = m->C, N = m->N, D = cfg->hidden;
    const double t0 = nl_time();
    float *hin = NULL, *best = NULL;                                 /* (N, D) layer input; (params) best snapshot */
    double *psum = calloc((size_t)(n * C), sizeof *psum);            /* (n, C) summed per-layer softmaxes */
    nl_ctx *c = NULL;
    if (!psum) return nl_set_error(NL_ENOMEM, "forwardgnn: out of memory");
    res->layers = cfg->layers;
    for (int l = 0; l < cfg->layers && !s; l++) {
        nl_params *ps = &m->ps[l];
        c = nl_ctx_new(1 << 20, 0);
        best = malloc((size_t)ps->total * sizeof(float));
        nl_optim opt;
        nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
        oc.lr = cfg->lr;
        oc.weight_decay = cfg->weight_decay; /* PyTorch Adam: L2 added to the gradient, every tensor */
        if (!c || !best) {
            s = nl_set_error(NL_ENOMEM, "forwardgnn: out of memory");
            break;
        }
        if ((s = nl_optim_init(&opt, ps, &oc))) break;
        const int64_t in_shape[2] = {N, D};
        double bv = -1;
        int bad = 0;
        /* iteration t sees the parameters after t steps; as the reference, validate after step t when
         * t % val_every == 0 and t >= 2, patience counted in validations, best validated parameters restored */
        for (int t = 0; t <= cfg->max_epochs; t++) {
            const int val_now = t >= 2 && t % cfg->val_every == 0;
            if (t == cfg->max_epochs && !val_now) break;
            nl_ctx_reset(c);
            nl_var *h = hin ? nl_input(c, nl_tensor_wrap(hin, NL_F32, 2, in_shape)) : NULL;
            nl_var *H = nl_fgnn_sf_layer(c, m, l, h), *loss = NULL;
            nl_var *S = H ? nl_fgnn_sf_scores(c, H, n, C, cfg->tau, m->tgt, &loss) : NULL;
            if (!S || !loss) {
                s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
                break;
            }
            res->epochs[l] = t;
            if (val_now) {
                const double va = acc_scores(S, psum, n, C, g->y, g->val); /* layers 0..l, this layer after t steps */
                if (va > bv) {
                    bv = va, bad = 0, res->best_epoch[l] = t;
                    memcpy(best, ps->data, (size_t)ps->total * sizeof(float));
                } else if (++bad >= cfg->patience)
                    break;
                if (cfg->verbose && (t % 20 == 0 || t == 2))
                    nl_progress("forwardgnn sf %s layer %d step %d: loss %.4f val %.4f (best %.4f at %d)", nl_graph_kind_name(cfg->kind), l + 1, t,
                                nl_item(loss), va, bv, res->best_epoch[l]);
            }
            if (t == cfg->max_epochs) break;
            nl_params_zero_grad(ps);
            if ((s = nl_backward(c, loss)) || (s = nl_optim_step(&opt))) break;
        }
        nl_optim_free(&opt);
        if (s) break;
        res->peak_bytes[l] = nl_arena_peak(c->arena) + (hin ? (size_t)(N * D) * sizeof(float) : 0);
        if (bv >= 0) memcpy(ps->data, best, (size_t)ps->total * sizeof(float)); /* no validation ran: the last parameters */
        if (train_hook) train_hook(m, l, u);
        /* the best layer's output: next input (detached, row-normalised) and its softmax into the prediction */
        nl_ctx_reset(c);
        nl_set_grad_enabled(c, 0);
        nl_var *h = hin ? nl_input(c, nl_tensor_wrap(hin, NL_F32, 2, in_shape)) : NULL;
        nl_var *H = nl_fgnn_sf_layer(c, m, l, h);
        nl_var *S = H ? nl_fgnn_sf_scores(c, H, n, C, cfg->tau, NULL, NULL) : NULL;
        if (!S) {
            s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
            break;
        }
        nl_fgnn_softmax_add(S, n, C, psum);
        res->val_acc[l] = nl_fgnn_accuracy(psum, n, C, g->y, g->val);
        res->test_acc[l] = nl_fgnn_accuracy(psum, n, C, g->y, g->test);
        if (l + 1 < cfg->layers) {
            if (!hin && !(hin = malloc((size_t)(N * D) * sizeof *hin))) {
                s = nl_set_error(NL_ENOMEM, "forwardgnn: out of memory");
                break;
            }
            nl_tensor dst = nl_tensor_wrap(hin, NL_F32, 2, in_shape);
            if ((s = nl_tensor_copy(&dst, &H->val))) break;
            nl_fgnn_row_normalise(hin, N, D);
        }
        if (cfg->verbose)
            nl_progress("forwardgnn sf %s layer %d: best epoch %d of %d, val %.4f test %.4f (layers 1..%d summed)", nl_graph_kind_name(cfg->kind),
                        l + 1, res->best_epoch[l], res->epochs[l], res->val_acc[l], res->test_acc[l], l + 1);
        nl_ctx_free(c);
        c = NULL;
        free(best);
        best = NULL;
    }
    if (c) nl_ctx_free(c);
    free(best);
    free(hin);
    free(psum);
    res->seconds = nl_time() - t0;
    return s;
}

nl_status nl_forwardgnn_sf_train(const nl_graph *g, const nl_forwardgnn_config *cfg, nl_forwardgnn_result *res) {
    nl_fgnn_sf m;
    nl_status s = nl_fgnn_sf_run(&m, g, cfg, res, NULL, NULL);
    nl_fgnn_sf_free(&m);
    return s;
}

nl_status nl_fgnn_subgraph(nl_graph *out, const nl_graph *g, const int *cls, int k) {
    memset(out, 0, sizeof *out);
    int64_t *map = malloc((size_t)g->n * sizeof *map); /* (n) new id or -1 */
    int map_c[64];
    if (!map) return nl_set_error(NL_ENOMEM, "subgraph: out of memory");
    for (int c = 0; c < 64; c++) map_c[c] = -1;
    for (int j = 0; j < k; j++) {
        if (cls[j] < 0 || cls[j] >= g->num_classes || cls[j] >= 64) {
            free(map);
            return nl_set_error(NL_EINVAL, "subgraph: class %d outside 0..%d", cls[j], g->num_classes - 1);
        }
        map_c[cls[j]] = j;
    }
    int64_t n = 0, m = 0, fn = 0;
    for (int64_t i = 0; i < g->n; i++) map[i] = map_c[g->y[i]] >= 0 ? n++ : -1;
    int64_t *e = malloc((size_t)(g->adj.nnz + 1) * sizeof *e);                 /* (2 m) edges */
    int32_t *y = malloc((size_t)(n + 1) * sizeof *y);                          /* (n) labels */
    int64_t *row = malloc((size_t)(g->feat.nnz + 1) * sizeof *row), *col = malloc((size_t)(g->feat.nnz + 1) * sizeof *col);
    double *val = malloc((size_t)(g->feat.nnz + 1) * sizeof *val);             /* (fnnz) feature COO */
    nl_status s = NL_OK;
    if (!e || !y || !row || !col || !val) s = nl_set_error(NL_ENOMEM, "subgraph: out of memory");
    for (int64_t i = 0; i < g->n && !s; i++) {
        if (map[i] < 0) continue;
        y[map[i]] = map_c[g->y[i]];
        for (int64_t q = g->adj.row_ptr[i]; q < g->adj.row_ptr[i + 1]; q++) {
            const int64_t j = g->adj.col_idx[q];
            if (j > i && map[j] >= 0) e[2 * m] = map[i], e[2 * m + 1] = map[j], m++;
        }
        for (int64_t q = g->feat.row_ptr[i]; q < g->feat.row_ptr[i + 1]; q++)
            row[fn] = map[i], col[fn] = g->feat.col_idx[q], val[fn] = g->feat.values[q], fn++;
    }
    if (!s) s = nl_graph_from_edges(out, "subgraph", n, m, e);
    if (!s) {
        snprintf(out->name, sizeof out->name, "%.20s-%dcls", g->name, k);
        nl_csr_free(&out->feat);
        out->n_feat = g->n_feat;
        s = nl_csr_from_coo(&out->feat, n, g->n_feat, fn, row, col, val);
    }
    if (!s) s = nl_graph_set_labels(out, y, k);
    if (s) nl_graph_free(out);
    free(map), free(e), free(y), free(row), free(col), free(val);
    return s;
}

nl_status nl_fgnn_wordnet(nl_graph *out, const int *cls, int k) {
    nl_graph w;
    nl_status s = nl_graph_wordnet(&w, NULL, 2000);
    if (s || !k) {
        if (!s) *out = w;
        return s;
    }
    s = nl_fgnn_subgraph(out, &w, cls, k);
    nl_graph_free(&w);
    return s;
}
