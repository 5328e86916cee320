/* Top-down single-forward ForwardGNN (forwardgnn.h): Top2Loss and Top2Input, every layer trained at every time step
 * on the previous time step's states, no gradient between layers. */
#include "forwardgnn/forwardgnn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void nl_fgnn_td_free(nl_fgnn_td *m) {
    nl_fgnn_sf_free(&m->sf);
    for (int k = 0; k < NL_FGNN_MAX_LAYERS + 2; k++) free(m->st[k]), free(m->ns[k]), free(m->e1[k]), free(m->e2[k]);
    free(m->Y), free(m->sa), free(m->sb), free(m->sm);
    memset(m, 0, sizeof *m);
}

nl_status nl_fgnn_td_init(nl_fgnn_td *m, const nl_graph *g, const nl_forwardgnn_config *cfg, int input) {
    memset(m, 0, sizeof *m);
    nl_status s = nl_fgnn_sf_init(&m->sf, g, cfg);
    if (s) return s;
    m->input = input != 0;
    const int L = cfg->layers;
    const int64_t N = m->sf.N, n = m->sf.n, C = m->sf.C, D = cfg->hidden, W = D > C ? D : C;
    for (int k = 1; k <= L && !s; k++) {
        m->st[k] = malloc((size_t)(N * D) * sizeof(float)), m->ns[k] = malloc((size_t)(N * D) * sizeof(float));
        m->e1[k] = malloc((size_t)(N * D) * sizeof(float)), m->e2[k] = malloc((size_t)(N * D) * sizeof(float));
        if (!m->st[k] || !m->ns[k] || !m->e1[k] || !m->e2[k]) s = nl_set_error(NL_ENOMEM, "forwardgnn td: out of memory");
    }
    m->sa = malloc((size_t)(N * D) * sizeof(float)), m->sb = malloc((size_t)(N * W) * sizeof(float));
    m->sm = malloc((size_t)(N * D) * sizeof(float));
    if (!s && (!m->sa || !m->sb || !m->sm)) s = nl_set_error(NL_ENOMEM, "forwardgnn td: out of memory");
    if (!s && m->input) {
        /* Y: training nodes one-hot, other real nodes uniform, virtual node c one-hot c */
        if (!(m->Y = malloc((size_t)(N * C) * sizeof(float)))) s = nl_set_error(NL_ENOMEM, "forwardgnn td: out of memory");
        for (int64_t i = 0; i < N && !s; i++)
            for (int64_t k = 0; k < C; k++)
                m->Y[i * C + k] = i >= n ? (float)(k == i - n) : g->train[i] ? (float)(k == g->y[i]) : (float)(1.0 / (double)C);
        /* the weights on the state above, and the whole layer initialised for fan-in in + in_top (PyG's on the concat) */
        nl_rng r;
        nl_rng_init(&r, cfg->seed, 0x7d2);
        char nm[32];
        for (int j = 0; j < L && !s; j++) {
            m->in_top[j] = j == L - 1 ? C : D;
            const int64_t sh[2] = {m->in_top[j], D}, in = j ? D : g->n_feat;
            snprintf(nm, sizeof nm, "l%d.W_top", j);
            m->Wt[j] = nl_params_add(&m->sf.ps[j], nm, 2, sh);
            if (cfg->kind == NL_GRAPH_SAGE) {
                snprintf(nm, sizeof nm, "l%d.W_top_neigh", j);
                m->Wt2[j] = nl_params_add(&m->sf.ps[j], nm, 2, sh);
            }
            if (!m->Wt[j] || (cfg->kind == NL_GRAPH_SAGE && !m->Wt2[j])) {
                s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
                break;
            }
            nl_fgnn_init_layer(cfg->kind, m->sf.W[j], m->sf.W2[j], m->sf.b[j], in + m->in_top[j], D, &r);
            nl_fgnn_init_layer(cfg->kind, m->Wt[j], m->Wt2[j], NULL, in + m->in_top[j], D, &r);
        }
    }
    if (s) nl_fgnn_td_free(m);
    return s;
}

static nl_var *dense_in(nl_ctx *c, float *x, int64_t rows, int64_t cols) {
    const int64_t sh[2] = {rows, cols};
    return nl_input(c, nl_tensor_wrap(x, NL_F32, 2, sh));
}

nl_var *nl_fgnn_td_layer(nl_ctx *c, nl_fgnn_td *m, int j, const float *below, const float *above) {
    const int64_t N = m->sf.N, D = m->sf.cfg.hidden;
    if (!m->input) return nl_fgnn_sf_layer(c, &m->sf, j, below ? dense_in(c, (float *)below, N, D) : NULL);
    /* [norm(below) || norm(above)] W = norm(below) W + norm(above) W_top (the same for W_neigh) */
    const int64_t it = m->in_top[j];
    nl_var *hb = NULL;
    if (below) {
        memcpy(m->sa, below, (size_t)(N * D) * sizeof(float));
        nl_fgnn_row_normalise(m->sa, N, D);
        hb = dense_in(c, m->sa, N, D);
    }
    if (above) {
        memcpy(m->sb, above, (size_t)(N * it) * sizeof(float));
        nl_fgnn_row_normalise(m->sb, N, it);
    } else
        memset(m->sb, 0, (size_t)(N * it) * sizeof(float));
    nl_var *ha = dense_in(c, m->sb, N, it);
    const nl_csr *xs = below ? NULL : &m->sf.x0;
    nl_var *z = nl_add(c, nl_graph_xw(c, xs, hb, m->sf.W[j]), nl_graph_xw(c, NULL, ha, m->Wt[j]));
    nl_var *o;
    if (m->sf.cfg.kind == NL_GRAPH_GCN)
        o = nl_spmm(c, &m->sf.ahat, NULL, z);
    else {
        nl_var *zn = nl_add(c, nl_graph_xw(c, xs, hb, m->sf.W2[j]), nl_graph_xw(c, NULL, ha, m->Wt2[j]));
        o = nl_add(c, z, nl_spmm(c, &m->sf.ahat, NULL, zn));
    }
    return nl_relu(c, nl_add(c, o, m->sf.b[j]));
}

nl_var *nl_fgnn_td_scores(nl_ctx *c, nl_fgnn_td *m, int j, nl_var *H, float *const *s, nl_var **loss) {
    const int L = m->sf.cfg.layers;
    const int64_t N = m->sf.N, D = m->sf.cfg.hidden;
    nl_var *e = H;
    if (!m->input && j + 2 <= L && H) { /* mean(H_j, s[j+2], ..., s[L]), the states above constants */
        memcpy(m->sm, s[j + 2], (size_t)(N * D) * sizeof(float));
        for (int k = j + 3; k <= L; k++)
            for (int64_t q = 0; q < N * D; q++) m->sm[q] += s[k][q];
        e = nl_mul_scalar(c, nl_add(c, H, dense_in(c, m->sm, N, D)), 1.0 / (double)(L - j));
    }
    return e ? nl_fgnn_sf_scores(c, e, m->sf.n, m->sf.C, m->sf.cfg.tau, loss ? m->sf.tgt : NULL, loss) : NULL;
}

static nl_status copy_out(float *dst, const nl_var *H, int64_t N, int64_t D, int normalise) {
    nl_tensor t = nl_tensor_wrap(dst, NL_F32, 2, (int64_t[2]){N, D});
    nl_status s = nl_tensor_copy(&t, &H->val);
    if (!s && normalise) nl_fgnn_row_normalise(dst, N, D);
    return s;
}

/* One bottom-up pass into s[1..L] (no gradient). Top2Loss: as the reference, each layer gets the previous one's raw
 * output and s[k] = norm(H_{k-1}); Top2Input: the state above zero, s[k] = H_{k-1}. */
static nl_status bottom_up(nl_ctx *c, nl_fgnn_td *m, float **s) {
    const int L = m->sf.cfg.layers;
    const int64_t N = m->sf.N, D = m->sf.cfg.hidden;
    for (int k = 0; k < L; k++) {
        nl_ctx_reset(c);
        nl_var *H = nl_fgnn_td_layer(c, m, k, k ? (m->input ? s[k] : m->sm) : NULL, NULL);
        if (!H) return nl_last_status() ? nl_last_status() : NL_ENOMEM;
        nl_status st = copy_out(s[k + 1], H, N, D, !m->input);
        if (!st && !m->input) st = copy_out(m->sm, H, N, D, 0); /* the raw output, the next layer's input */
        if (st) return st;
    }
    return NL_OK;
}

/* Inputs of layer j in a time step from the states now (s) and those already updated in this step (t, fresh). */
static void td_inputs(const nl_fgnn_td *m, int j, float **s, float **t, const int *fresh, const float **below, const float **above) {
    const int L = m->sf.cfg.layers, alt = m->input && m->sf.cfg.alternating;
    *below = j == 0 ? NULL : alt && fresh[j] ? t[j] : s[j];
    *above = !m->input ? NULL : j + 2 == L + 1 ? m->Y : alt && fresh[j + 2] ? t[j + 2] : s[j + 2];
}

/* The layers in update order: Top2Input with alternating: even, then odd; else 0..L-1. */
static int td_order(const nl_fgnn_td *m, int *ord) {
    const int L = m->sf.cfg.layers;
    int k = 0;
    if (m->input && m->sf.cfg.alternating) {
        for (int j = 0; j < L; j += 2) ord[k++] = j;
        for (int j = 1; j < L; j += 2) ord[k++] = j;
    } else
        for (int j = 0; j < L; j++) ord[k++] = j;
    return k;
}

/* The prediction (summed softmaxes) for the n real nodes into psum [n, C]. */
static nl_status td_predict(nl_ctx *c, nl_fgnn_td *m, double *psum) {
    const int64_t n = m->sf.n, C = m->sf.C, N = m->sf.N, D = m->sf.cfg.hidden;
    memset(psum, 0, (size_t)(n * C) * sizeof *psum);
    nl_set_grad_enabled(c, 0);
    nl_status s = bottom_up(c, m, m->e1);
    int ord[NL_FGNN_MAX_LAYERS], fresh[NL_FGNN_MAX_LAYERS + 2];
    const int T = m->input ? m->sf.cfg.test_steps : 1;
    float **a = m->e1, **b = m->e2;
    for (int t = 0; t < T && !s; t++) {
        memset(fresh, 0, sizeof fresh);
        const int no = td_order(m, ord);
        for (int q = 0; q < no && !s; q++) {
            const int j = ord[q];
            const float *below, *above;
            td_inputs(m, j, a, b, fresh, &below, &above);
            nl_ctx_reset(c);
            nl_var *H = nl_fgnn_td_layer(c, m, j, below, above);
            nl_var *S = H ? nl_fgnn_td_scores(c, m, j, H, a, NULL) : NULL;
            if (!S) {
                s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
                break;
            }
            if (!m->input || t >= 2) nl_fgnn_softmax_add(S, n, C, psum); /* Top2Input: the reference's steps 2..T-1 */
            if (m->input) s = copy_out(b[j + 1], H, N, D, 0), fresh[j + 1] = 1;
        }
        float **x = a;
        a = b, b = x;
    }
    nl_set_grad_enabled(c, 1);
    return s;
}

nl_status nl_fgnn_td_run(nl_fgnn_td *m, const nl_graph *g, const nl_forwardgnn_config *cfg, int input, nl_forwardgnn_result *res) {
    memset(res, 0, sizeof *res);
    if (g->num_classes > 64) return nl_set_error(NL_EINVAL, "forwardgnn td: at most 64 classes");
    if (cfg->test_steps < 3 && input) return nl_set_error(NL_EINVAL, "forwardgnn top2input: test_steps %d < 3", cfg->test_steps);
    if (!(cfg->grad_clip >= 0)) return nl_set_error(NL_EINVAL, "forwardgnn top2loss: grad_clip must be >= 0");
    nl_status s = nl_fgnn_td_init(m, g, cfg, input);
    if (s) return s;
    const int L = cfg->layers;
    const int64_t n = m->sf.n, C = m->sf.C, N = m->sf.N, D = cfg->hidden;
    const double t0 = nl_time();
    nl_optim opt[NL_FGNN_MAX_LAYERS];
    int n_opt = 0;
    float *best[NL_FGNN_MAX_LAYERS] = {0};                      /* (params of layer j) best snapshot */
    double *psum = malloc((size_t)(n * C) * sizeof *psum);      /* (n, C) prediction */
    nl_ctx *c = nl_ctx_new(1 << 20, 0);
    if (!psum || !c) s = nl_set_error(NL_ENOMEM, "forwardgnn td: out of memory");
    for (int j = 0; j < L && !s; j++) {
        nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
        oc.lr = cfg->lr, oc.weight_decay = cfg->weight_decay;
        oc.clip_norm = input ? 0 : cfg->grad_clip; /* the reference clips in Top2Loss only */
        if (!(best[j] = malloc((size_t)m->sf.ps[j].total * sizeof(float)))) s = nl_set_error(NL_ENOMEM, "forwardgnn td: out of memory");
        if (!s && !(s = nl_optim_init(&opt[j], &m->sf.ps[j], &oc))) n_opt++;
    }
    res->layers = L;
    for (int l = 0; l < L; l++) res->test_acc[l] = res->val_acc[l] = NAN;
    if (!s) s = bottom_up(c, m, m->st);
    double bv = -1;
    int bad = 0, ord[NL_FGNN_MAX_LAYERS], fresh[NL_FGNN_MAX_LAYERS + 2];
    for (int t = 1; t <= cfg->max_epochs && !s; t++) {
        memset(fresh, 0, sizeof fresh);
        const int no = td_order(m, ord);
        for (int q = 0; q < no && !s; q++) {
            const int j = ord[q];
            const float *below, *above;
            td_inputs(m, j, m->st, m->ns, fresh, &below, &above);
            nl_ctx_reset(c);
            nl_var *H = nl_fgnn_td_layer(c, m, j, below, above), *loss = NULL;
            nl_var *S = H ? nl_fgnn_td_scores(c, m, j, H, m->st, &loss) : NULL;
            if (!S || !loss) {
                s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
                break;
            }
            if ((s = copy_out(m->ns[j + 1], H, N, D, !m->input))) break;
            fresh[j + 1] = 1;
            nl_params_zero_grad(&m->sf.ps[j]);
            if ((s = nl_backward(c, loss)) || (s = nl_optim_step(&opt[j]))) break;
            const size_t pk = nl_arena_peak(c->arena);
            if (pk > res->peak_bytes[0]) res->peak_bytes[0] = pk;
        }
        if (s) break;
        for (int k = 1; k <= L; k++) {
            float *x = m->st[k];
            m->st[k] = m->ns[k], m->ns[k] = x;
        }
        res->epochs[0] = t;
        if (t >= 2 && t % cfg->val_every == 0) {
            if ((s = td_predict(c, m, psum))) break;
            const double va = nl_fgnn_accuracy(psum, n, C, g->y, g->val);
            if (va > bv) {
                bv = va, bad = 0, res->best_epoch[0] = t;
                for (int j = 0; j < L; j++) memcpy(best[j], m->sf.ps[j].data, (size_t)m->sf.ps[j].total * sizeof(float));
            } else if (++bad >= cfg->patience)
                break;
            if (cfg->verbose && (t % 20 == 0 || t == 2))
                nl_progress("forwardgnn %s %s step %d: val %.4f (best %.4f at %d)", m->input ? "top2input" : "top2loss", nl_graph_kind_name(cfg->kind), t,
                            va, bv, res->best_epoch[0]);
        }
    }
    if (!s && bv >= 0)
        for (int j = 0; j < L; j++) memcpy(m->sf.ps[j].data, best[j], (size_t)m->sf.ps[j].total * sizeof(float));
    if (!s && !(s = td_predict(c, m, psum))) {
        res->val_acc[L - 1] = nl_fgnn_accuracy(psum, n, C, g->y, g->val);
        res->test_acc[L - 1] = nl_fgnn_accuracy(psum, n, C, g->y, g->test);
        res->peak_bytes[0] += (size_t)(2 * L * N * D) * sizeof(float); /* the states now and next */
    }
    for (int j = 0; j < n_opt; j++) nl_optim_free(&opt[j]);
    for (int j = 0; j < L; j++) free(best[j]);
    if (c) nl_ctx_free(c);
    free(psum);
    res->seconds = nl_time() - t0;
    return s;
}

nl_status nl_forwardgnn_td_train(const nl_graph *g, const nl_forwardgnn_config *cfg, int input, nl_forwardgnn_result *res) {
    nl_fgnn_td m;
    nl_status s = nl_fgnn_td_run(&m, g, cfg, input, res);
    nl_fgnn_td_free(&m);
    return s;
}
