/* Decoder-only transformer LM: configuration, parameters, forward (full and KV-cached), loss, sampling,
 * evaluation (the AdamW training loop: lm_train.c). See include/transformer/transformer.h. */
#include "transformer/transformer.h"
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Implementations of the plug-in attention kinds (NULL until provided; see transformer.h nl_lm_attn_provide). */
static struct { nl_lm_attn_fn fn; void *ud; int any_length; } g_attn_impl[NL_LM_ATTN_KIND_COUNT];

nl_status nl_lm_attn_provide(nl_lm_attn_kind kind, nl_lm_attn_fn fn, void *ud, int any_length) {
    if (kind == NL_LM_ATTN_VANILLA || kind == NL_LM_ATTN_CUSTOM || kind < 0 || kind >= NL_LM_ATTN_KIND_COUNT)
        return nl_set_error(NL_EINVAL, "nl_lm_attn_provide: attention kind %d is not a plug-in kind", (int)kind);
    g_attn_impl[kind].fn = fn;
    g_attn_impl[kind].ud = ud;
    g_attn_impl[kind].any_length = any_length;
    return NL_OK;
}

nl_status nl_lm_config_check(const nl_lm_config *c) {
    if (!c) return nl_set_error(NL_EINVAL, "lm config is NULL");
    if (c->vocab < 2 || c->vocab > NL_LM_MAX_VOCAB)
        return nl_set_error(NL_EINVAL, "lm config: vocab must be in 2..%d (got %d)", NL_LM_MAX_VOCAB, c->vocab);
    if (c->context < 1 || c->context > NL_LM_MAX_CONTEXT)
        return nl_set_error(NL_EINVAL, "lm config: context must be in 1..%d (got %d)", NL_LM_MAX_CONTEXT, c->context);
    if (c->n_layers < 1 || c->n_layers > NL_LM_MAX_LAYERS)
        return nl_set_error(NL_EINVAL, "lm config: layers must be in 1..%d (got %d)", NL_LM_MAX_LAYERS, c->n_layers);
    if (c->d_model < 2 || c->d_model > NL_LM_MAX_D_MODEL)
        return nl_set_error(NL_EINVAL, "lm config: d_model must be in 2..%d (got %d)", NL_LM_MAX_D_MODEL, c->d_model);
    if (c->n_heads < 1 || c->d_model % c->n_heads)
        return nl_set_error(NL_EINVAL, "lm config: heads (%d) must divide d_model (%d)", c->n_heads, c->d_model);
    if ((c->d_model / c->n_heads) % 2)
        return nl_set_error(NL_EINVAL, "lm config: head dim d_model/heads = %d must be even (RoPE pairs)",
                            c->d_model / c->n_heads);
    if (c->d_ff < 0 || c->d_ff > NL_LM_MAX_D_FF)
        return nl_set_error(NL_EINVAL, "lm config: d_ff must be in 0..%d (got %d)", NL_LM_MAX_D_FF, c->d_ff);
    if (c->tie_weights < 0 || c->tie_weights > 1) return nl_set_error(NL_EINVAL, "lm config: tie must be 0 or 1 (got %d)", c->tie_weights);
    if (c->pn_warmup < 0) return nl_set_error(NL_EINVAL, "lm config: pn_warmup must be >= 0");
    if (c->norm < 0 || c->norm >= NL_LM_NORM_KIND_COUNT) return nl_set_error(NL_EINVAL, "lm config: bad norm kind %d", (int)c->norm);
    if (!(c->norm_eps > 0)) return nl_set_error(NL_EINVAL, "lm config: norm_eps must be > 0 (got %g)", c->norm_eps);
    if (c->attn < 0 || c->attn >= NL_LM_ATTN_KIND_COUNT) return nl_set_error(NL_EINVAL, "lm config: bad attention kind %d", (int)c->attn);
    if (c->attn == NL_LM_ATTN_CUSTOM && !c->attn_fn)
        return nl_set_error(NL_EINVAL, "lm config: attention 'custom' needs attn_fn");
    if (c->attn == NL_LM_ATTN_LMINF) {
        if (!g_attn_impl[c->attn].fn)
            return nl_set_error(NL_EINVAL, "lm config: attention 'lminf' has no implementation in this program: it is "
                                           "provided by the lm-infinite method (call nl_lm_infinite_register())");
        if (c->lminf_global < 0 || c->lminf_local < 0 || c->lminf_global > NL_LM_MAX_CONTEXT || c->lminf_local > NL_LM_MAX_CONTEXT)
            return nl_set_error(NL_EINVAL, "lm config: lminf_global / lminf_local must be in 0..%d", NL_LM_MAX_CONTEXT);
    }
    if (c->dtype != NL_F32 && c->dtype != NL_F64) return nl_set_error(NL_EINVAL, "lm config: dtype must be f32 or f64");
    return nl_rope_config_check(&c->rope);
}

/* ---- parameters ---- */

static nl_var *addp(nl_lm *m, const char *name, int nd, int64_t a, int64_t b, int buffer) {
    int64_t sh[2] = {a, b};
    nl_var *v = nl_params_add(&m->ps, name, nd, sh);
    if (v && buffer) v->requires_grad = 0;
    return v;
}

static nl_status add_norm(nl_lm *m, const char *prefix, int site, nl_var **w, nl_var **b, nl_var **rm, nl_var **rv) {
    char nm[96];
    const int64_t d = m->cfg.d_model;
    *w = *b = *rm = *rv = NULL;
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    if (!(*w = addp(m, nm, 1, d, 1, 0))) return nl_last_status();
    if (m->cfg.norm != NL_LM_NORM_RMS) {
        snprintf(nm, sizeof nm, "%s.bias", prefix);
        if (!(*b = addp(m, nm, 1, d, 1, 0))) return nl_last_status();
    }
    if (m->cfg.norm == NL_LM_NORM_BATCH) {
        snprintf(nm, sizeof nm, "%s.running_mean", prefix);
        if (!(*rm = addp(m, nm, 1, d, 1, 1))) return nl_last_status();
        snprintf(nm, sizeof nm, "%s.running_var", prefix);
        if (!(*rv = addp(m, nm, 1, d, 1, 1))) return nl_last_status();
    } else if (m->cfg.norm == NL_LM_NORM_POWER) {
        nl_powernorm_state *pn = (nl_powernorm_state *)m->norm_state + site;
        nl_status st = nl_powernorm_init(pn, d, m->cfg.n_heads, m->cfg.pn_warmup, &m->ps, prefix);
        if (st) return st;
        pn->alpha_f = pn->alpha_b = m->cfg.pn_alpha;
        pn->eps = m->cfg.norm_eps;
        *rm = (nl_var *)pn; /* the state travels in the running-mean slot */
    }
    return NL_OK;
}

/* Re-resolve the var pointers after all parameters are added (adding may move the flat arrays; the nl_param
 * entries are stable pointers, their var views are fixed up by the store). */
static nl_status lm_build(nl_lm *m) {
    const nl_lm_config *c = &m->cfg;
    const int64_t d = c->d_model, V = c->vocab, ff = c->d_ff;
    char nm[96], pre[64];
    nl_status st;
    if (!(m->tok_emb = addp(m, "tok_emb.weight", 2, V, d, 0))) return nl_last_status();
    for (int l = 0; l < c->n_layers; l++) {
        nl_lm_layer *L = &m->layer[l];
        snprintf(pre, sizeof pre, "layers.%d.norm1", l);
        if ((st = add_norm(m, pre, 2 * l, &L->n1_w, &L->n1_b, &L->n1_rm, &L->n1_rv))) return st;
        snprintf(nm, sizeof nm, "layers.%d.attn.qkv.weight", l);
        if (!(L->wqkv = addp(m, nm, 2, 3 * d, d, 0))) return nl_last_status();
        snprintf(nm, sizeof nm, "layers.%d.attn.out.weight", l);
        if (!(L->wo = addp(m, nm, 2, d, d, 0))) return nl_last_status();
        snprintf(pre, sizeof pre, "layers.%d.norm2", l);
        if ((st = add_norm(m, pre, 2 * l + 1, &L->n2_w, &L->n2_b, &L->n2_rm, &L->n2_rv))) return st;
        snprintf(nm, sizeof nm, "layers.%d.mlp.fc1.weight", l);
        if (!(L->fc1_w = addp(m, nm, 2, ff, d, 0))) return nl_last_status();
        snprintf(nm, sizeof nm, "layers.%d.mlp.fc1.bias", l);
        if (!(L->fc1_b = addp(m, nm, 1, ff, 1, 0))) return nl_last_status();
        snprintf(nm, sizeof nm, "layers.%d.mlp.fc2.weight", l);
        if (!(L->fc2_w = addp(m, nm, 2, d, ff, 0))) return nl_last_status();
        snprintf(nm, sizeof nm, "layers.%d.mlp.fc2.bias", l);
        if (!(L->fc2_b = addp(m, nm, 1, d, 1, 0))) return nl_last_status();
    }
    if ((st = add_norm(m, "norm_f", 2 * c->n_layers, &m->nf_w, &m->nf_b, &m->nf_rm, &m->nf_rv))) return st;
    if (c->tie_weights) m->head = m->tok_emb;
    else if (!(m->head = addp(m, "lm_head.weight", 2, V, d, 0))) return nl_last_status();
    return NL_OK;
}

static void lm_init_values(nl_lm *m, uint64_t seed) {
    nl_rng r;
    nl_rng_init(&r, seed, NL_STREAM_INIT);
    const double std = 0.02, proj = 0.02 / sqrt(2.0 * m->cfg.n_layers);
    for (int i = 0; i < m->ps.n; i++) {
        nl_param *p = m->ps.p[i];
        const char *n = p->name;
        size_t len = strlen(n);
        int is_bias = len > 5 && !strcmp(n + len - 5, ".bias");
        if (!p->var.requires_grad) nl_tensor_fill(&p->var.val, strstr(n, "running_var") ? 1.0 : 0.0);
        else if (strstr(n, "norm") && !is_bias) nl_tensor_fill(&p->var.val, 1.0);
        else if (is_bias) nl_tensor_fill(&p->var.val, 0.0);
        else if (strstr(n, "attn.out") || strstr(n, "fc2.weight")) nl_rng_fill_normal(&r, &p->var.val, 0, proj);
        else nl_rng_fill_normal(&r, &p->var.val, 0, std);
    }
    if (m->norm_state)
        for (int i = 0; i < 2 * m->cfg.n_layers + 1; i++) nl_powernorm_reset((nl_powernorm_state *)m->norm_state + i);
}

nl_status nl_lm_init(nl_lm *m, const nl_lm_config *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    nl_status st = nl_lm_config_check(cfg);
    if (st) return st;
    m->cfg = *cfg;
    if (m->cfg.d_ff == 0) m->cfg.d_ff = 4 * m->cfg.d_model;
    if (m->cfg.lminf_local == 0) m->cfg.lminf_local = m->cfg.context;
    m->head_dim = m->cfg.d_model / m->cfg.n_heads;
    if ((st = nl_params_init(&m->ps, m->cfg.dtype))) { memset(m, 0, sizeof *m); return st; }
    if (m->cfg.norm == NL_LM_NORM_POWER) {
        m->norm_state = calloc((size_t)(2 * m->cfg.n_layers + 1), sizeof(nl_powernorm_state));
        if (!m->norm_state) { nl_params_free(&m->ps); memset(m, 0, sizeof *m); return nl_set_error(NL_ENOMEM, "lm init: out of memory"); }
    }
    if ((st = lm_build(m))) {
        nl_lm_free(m);
        return st;
    }
    /* var pointers returned by nl_params_add stay valid (stable nl_param entries); refresh them anyway */
    lm_init_values(m, seed);
    nl_rng_init(&m->pos_rng, seed, NL_STREAM_INIT + 77);
    return NL_OK;
}

nl_status nl_lm_layout(const nl_lm_config *cfg, nl_params *ps) {
    memset(ps, 0, sizeof *ps);
    nl_status st = nl_lm_config_check(cfg);
    if (st) return st;
    nl_lm *m = calloc(1, sizeof *m);
    if (!m) return nl_set_error(NL_ENOMEM, "lm layout: out of memory");
    m->cfg = *cfg;
    if (m->cfg.d_ff == 0) m->cfg.d_ff = 4 * m->cfg.d_model;
    m->head_dim = m->cfg.d_model / m->cfg.n_heads;
    nl_params_init_layout(&m->ps, m->cfg.dtype);
    if (m->cfg.norm == NL_LM_NORM_POWER && !(m->norm_state = calloc((size_t)(2 * m->cfg.n_layers + 1), sizeof(nl_powernorm_state))))
        st = nl_set_error(NL_ENOMEM, "lm layout: out of memory");
    if (!st) st = lm_build(m);
    if (!st) {
        *ps = m->ps;
        memset(&m->ps, 0, sizeof m->ps);
    }
    nl_lm_free(m);
    free(m);
    return st;
}

void nl_lm_free(nl_lm *m) {
    if (!m) return;
    if (m->norm_state) {
        for (int i = 0; i < 2 * m->cfg.n_layers + 1; i++) nl_powernorm_free((nl_powernorm_state *)m->norm_state + i);
        free(m->norm_state);
    }
    nl_params_free(&m->ps);
    memset(m, 0, sizeof *m);
}

int64_t nl_lm_num_params(const nl_lm *m) {
    int64_t n = 0;
    for (int i = 0; i < m->ps.n; i++)
        if (m->ps.p[i]->var.requires_grad) n += m->ps.p[i]->numel;
    return n;
}

nl_status nl_lm_check_length(const nl_lm *m, int64_t T, int allow) {
    if (T <= m->cfg.context || allow || g_attn_impl[m->cfg.attn].any_length) return NL_OK;
    return nl_set_error(NL_EINVAL,
                        "sequence of %lld tokens exceeds the training context %d of this model; evaluating longer "
                        "sequences extrapolates RoPE (allow it explicitly, e.g. --extrapolate) or use the lminf attention",
                        (long long)T, m->cfg.context);
}

/* ---- head split: qkv [B, T, 3d] -> part `which` as [B, H, T, Dh] (contiguous copy) ---- */

typedef struct { int64_t B, T, H, Dh, which; } split_saved;

#define SPLIT_COPY(TY)                                                                                   \
    static void split_copy_##TY(const split_saved *s, TY *qkv, TY *o, int back) {                        \
        const int64_t d = s->H * s->Dh;                                                                   \
        for (int64_t b = 0; b < s->B; b++)                                                                \
            for (int64_t h = 0; h < s->H; h++)                                                            \
                for (int64_t t = 0; t < s->T; t++) {                                                      \
                    TY *src = qkv + (b * s->T + t) * 3 * d + s->which * d + h * s->Dh;                    \
                    TY *dst = o + ((b * s->H + h) * s->T + t) * s->Dh;                                    \
                    if (back)                                                                             \
                        for (int64_t e = 0; e < s->Dh; e++) src[e] += dst[e];                             \
                    else                                                                                  \
                        memcpy(dst, src, sizeof(TY) * (size_t)s->Dh);                                     \
                }                                                                                         \
    }
SPLIT_COPY(float)
SPLIT_COPY(double)

static void split_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *g = nl_grad(c, n->in[0]);
    if (!g) return;
    const split_saved *s = n->saved;
    const nl_tensor *go = nl_node_grad_out(n);
    if (g->dtype == NL_F32) split_copy_float(s, g->data, go->data, 1);
    else split_copy_double(s, g->data, go->data, 1);
}

static nl_var *heads_split(nl_ctx *c, nl_var *qkv, int which, int64_t H) {
    NL_REQUIRE(qkv);
    if (qkv->val.ndim != 3 || qkv->val.shape[2] % (3 * H))
        return nl_op_fail(NL_ESHAPE, "heads_split", "qkv must be [B, T, 3*H*Dh]", qkv, NULL);
    nl_tensor X = nl_contig(c, &qkv->val);
    if (!X.data) return NULL;
    split_saved *s = nl_scratch(c, sizeof *s);
    if (!s) return NULL;
    s->B = X.shape[0]; s->T = X.shape[1]; s->H = H; s->Dh = X.shape[2] / (3 * H); s->which = which;
    int64_t sh[4] = {s->B, H, s->T, s->Dh};
    nl_var *o = nl_op_out(c, X.dtype, 4, sh);
    if (!o) return NULL;
    if (X.dtype == NL_F32) split_copy_float(s, X.data, o->val.data, 0);
    else split_copy_double(s, X.data, o->val.data, 0);
    nl_node *nd = nl_op_record(c, "heads_split", o, split_backward, 1, &qkv);
    if (nd) nd->saved = s;
    return o;
}

/* ---- fused head split + RoPE for q and k: qkv [B, T, 3d] -> [2B, H, T, Dh] (rows 0..B-1 rotated q, B..2B-1
 * rotated k), optionally with the xPos factors (zeta^(p/gamma) on q, zeta^(-p/gamma) on k). Same values as
 * heads_split followed by nl_rope / nl_rope_xpos, in one pass. ---- */

typedef struct {
    int64_t B, T, H, Dh;
    double *cs, *sn;     /* (T, Dh/2) */
    double *fq, *fk;     /* (T, Dh/2) xPos factors or NULL */
} qkr_saved;

/* One row of h pairs: dst = f * R(c, s) src (forward) or src += f * R^T dst (backward), f = 1 without xPos (the
 * product with 1.0 is exact, so the factor-free loops give the same values). Branch-free inner loops so that GCC
 * vectorises them. */
#define QKR(TY)                                                                                            \
    static void qkr_row_##TY(TY *restrict src, TY *restrict dst, const double *restrict cs,                \
                             const double *restrict sn, const double *restrict f, int64_t h, int back) {    \
        if (!back && !f)                                                                                   \
            for (int64_t j = 0; j < h; j++) {                                                              \
                const double x0 = src[j], x1 = src[j + h];                                                 \
                dst[j] = (TY)(x0 * cs[j] - x1 * sn[j]);                                                    \
                dst[j + h] = (TY)(x1 * cs[j] + x0 * sn[j]);                                                \
            }                                                                                              \
        else if (!back)                                                                                    \
            for (int64_t j = 0; j < h; j++) {                                                              \
                const double x0 = src[j], x1 = src[j + h];                                                 \
                dst[j] = (TY)(f[j] * (x0 * cs[j] - x1 * sn[j]));                                           \
                dst[j + h] = (TY)(f[j] * (x1 * cs[j] + x0 * sn[j]));                                       \
            }                                                                                              \
        else if (!f)                                                                                       \
            for (int64_t j = 0; j < h; j++) {                                                              \
                const double g0 = dst[j], g1 = dst[j + h];                                                 \
                src[j] += (TY)(g0 * cs[j] + g1 * sn[j]);                                                   \
                src[j + h] += (TY)(g1 * cs[j] - g0 * sn[j]);                                               \
            }                                                                                              \
        else                                                                                               \
            for (int64_t j = 0; j < h; j++) {                                                              \
                const double g0 = dst[j], g1 = dst[j + h];                                                 \
                src[j] += (TY)(f[j] * (g0 * cs[j] + g1 * sn[j]));                                          \
                src[j + h] += (TY)(f[j] * (g1 * cs[j] - g0 * sn[j]));                                      \
            }                                                                                              \
    }                                                                                                      \
    static void qkr_##TY(const qkr_saved *s, TY *qkv, TY *o, int back) {                                   \
        const int64_t d = s->H * s->Dh, h = s->Dh / 2, items = 2 * s->B * s->H;                            \
        _Pragma("omp parallel for schedule(static) if (items * s->T * s->Dh > 65536)")                      \
        for (int64_t it = 0; it < items; it++) {                                                           \
            const int64_t which = it / (s->B * s->H), b = (it / s->H) % s->B, hh = it % s->H;               \
            const double *fac = which ? s->fk : s->fq;                                                     \
            for (int64_t t = 0; t < s->T; t++)                                                             \
                qkr_row_##TY(qkv + (b * s->T + t) * 3 * d + which * d + hh * s->Dh,                        \
                             o + ((it / s->H * s->H + hh) * s->T + t) * s->Dh, s->cs + t * h, s->sn + t * h, \
                             fac ? fac + t * h : NULL, h, back);                                           \
        }                                                                                                  \
    }
QKR(float)
QKR(double)

static void qkr_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *g = nl_grad(c, n->in[0]);
    if (!g) return;
    const nl_tensor *go = nl_node_grad_out(n);
    if (g->dtype == NL_F32) qkr_float(n->saved, g->data, go->data, 1);
    else qkr_double(n->saved, g->data, go->data, 1);
}

static nl_var *qk_rope_split(nl_ctx *c, nl_var *qkv, int64_t H, const double *pos, const double *theta, const double *zeta,
                             double gamma) {
    NL_REQUIRE(qkv);
    if (qkv->val.ndim != 3 || qkv->val.shape[2] % (3 * H) || (qkv->val.shape[2] / (3 * H)) % 2)
        return nl_op_fail(NL_ESHAPE, "qk_rope_split", "qkv must be [B, T, 3*H*Dh] with Dh even", qkv, NULL);
    nl_tensor X = nl_contig(c, &qkv->val);
    if (!X.data) return NULL;
    qkr_saved *s = nl_scratch(c, sizeof *s);
    if (!s) return NULL;
    s->B = X.shape[0]; s->T = X.shape[1]; s->H = H; s->Dh = X.shape[2] / (3 * H);
    const int64_t h = s->Dh / 2, T = s->T;
    s->cs = nl_scratch(c, sizeof(double) * (size_t)(T * h));
    s->sn = nl_scratch(c, sizeof(double) * (size_t)(T * h));
    s->fq = zeta ? nl_scratch(c, sizeof(double) * (size_t)(T * h)) : NULL;
    s->fk = zeta ? nl_scratch(c, sizeof(double) * (size_t)(T * h)) : NULL;
    if (!s->cs || !s->sn || (zeta && (!s->fq || !s->fk))) return NULL;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < h; j++) {
            const double a = pos[t] * theta[j];
            s->cs[t * h + j] = cos(a);
            s->sn[t * h + j] = sin(a);
            if (zeta) {
                s->fq[t * h + j] = pow(zeta[j], pos[t] / gamma);
                s->fk[t * h + j] = pow(zeta[j], -pos[t] / gamma);
            }
        }
    int64_t sh[4] = {2 * s->B, H, T, s->Dh};
    nl_var *o = nl_op_out(c, X.dtype, 4, sh);
    if (!o) return NULL;
    if (X.dtype == NL_F32) qkr_float(s, X.data, o->val.data, 0);
    else qkr_double(s, X.data, o->val.data, 0);
    nl_node *nd = nl_op_record(c, "qk_rope_split", o, qkr_backward, 1, &qkv);
    if (nd) nd->saved = s;
    return o;
}

/* ---- norms ---- */

static nl_var *apply_norm(nl_lm *m, nl_ctx *c, nl_var *x, nl_var *w, nl_var *b, nl_var *rm, nl_var *rv, int train) {
    const nl_lm_config *cf = &m->cfg;
    switch (cf->norm) {
    case NL_LM_NORM_LAYER: return nl_layernorm(c, x, w, b, cf->norm_eps);
    case NL_LM_NORM_RMS: return nl_rmsnorm(c, x, w, cf->norm_eps);
    case NL_LM_NORM_BATCH:
    case NL_LM_NORM_POWER: {
        NL_REQUIRE(x);
        int64_t sh2[2] = {-1, cf->d_model};
        nl_var *x2 = nl_reshape(c, x, 2, sh2);
        nl_var *y;
        if (cf->norm == NL_LM_NORM_BATCH) {
            y = nl_batchnorm(c, x2, w, b, rm, rv, cf->bn_momentum, cf->norm_eps, train);
        } else {
            y = nl_powernorm(c, (nl_powernorm_state *)rm, x2, w, b, NULL, train);
        }
        NL_REQUIRE(y);
        return nl_reshape(c, y, x->val.ndim, x->val.shape);
    }
    default: nl_set_error(NL_EINVAL, "lm: bad norm kind"); return NULL;
    }
}

/* ---- KV cache ---- */

nl_status nl_lm_cache_init(nl_lm_cache *kc, const nl_lm *m, int64_t B) {
    memset(kc, 0, sizeof *kc);
    if (B < 1) return nl_set_error(NL_EINVAL, "lm cache: batch must be >= 1");
    kc->n_layers = m->cfg.n_layers;
    kc->B = B;
    kc->H = m->cfg.n_heads;
    kc->Dh = m->head_dim;
    return NL_OK;
}

void nl_lm_cache_reset(nl_lm_cache *kc) {
    kc->len = 0;
    for (int l = 0; l < kc->n_layers; l++)
        if (kc->ext[l] && kc->ext_free) { kc->ext_free(kc->ext[l]); kc->ext[l] = NULL; }
}

void nl_lm_cache_free(nl_lm_cache *kc) {
    if (!kc) return;
    for (int l = 0; l < kc->n_layers; l++) {
        free(kc->k[l]);
        free(kc->v[l]);
        if (kc->ext[l] && kc->ext_free) kc->ext_free(kc->ext[l]);
    }
    memset(kc, 0, sizeof *kc);
}

/* Make room for `need` tokens (capacity doubles; rows are re-laid out since the stride depends on cap). */
static nl_status cache_reserve(nl_lm_cache *kc, int64_t need, size_t es) {
    if (need <= kc->cap) return NL_OK;
    int64_t nc = kc->cap ? kc->cap : 64;
    while (nc < need) nc *= 2;
    const int64_t rows = kc->B * kc->H;
    const size_t row_new = (size_t)(nc * kc->Dh) * es, row_old = (size_t)(kc->cap * kc->Dh) * es;
    for (int l = 0; l < kc->n_layers; l++) {
        for (int kv = 0; kv < 2; kv++) {
            void **pp = kv ? &kc->v[l] : &kc->k[l];
            char *nb = malloc(row_new * (size_t)rows);
            if (!nb) return nl_set_error(NL_ENOMEM, "lm cache: out of memory growing to %lld tokens", (long long)nc);
            if (*pp)
                for (int64_t r = 0; r < rows; r++)
                    memcpy(nb + (size_t)r * row_new, (char *)*pp + (size_t)r * row_old, (size_t)(kc->len * kc->Dh) * es);
            free(*pp);
            *pp = nb;
        }
    }
    kc->cap = nc;
    kc->bytes = 2 * (size_t)kc->n_layers * row_new * (size_t)rows;
    return NL_OK;
}

/* Copy x [B, H, T, Dh] (contiguous) into the cache rows [len, len + T). */
static void cache_put(nl_lm_cache *kc, void *buf, const nl_tensor *x, size_t es) {
    const int64_t T = x->shape[2];
    for (int64_t r = 0; r < kc->B * kc->H; r++)
        memcpy((char *)buf + ((size_t)(r * kc->cap + kc->len) * (size_t)kc->Dh) * es,
               (const char *)x->data + (size_t)(r * T * kc->Dh) * es, (size_t)(T * kc->Dh) * es);
}

/* ---- forward ---- */

static nl_var *lm_run(nl_lm *m, nl_ctx *c, nl_lm_cache *kc, const int32_t *ids, int64_t B, int64_t T, int train) {
    const nl_lm_config *cf = &m->cfg;
    const int64_t d = cf->d_model, H = cf->n_heads, Dh = m->head_dim, h2 = Dh / 2;
    if (B < 1 || T < 1) { nl_set_error(NL_EINVAL, "lm forward: batch and length must be >= 1 (got %lld, %lld)", (long long)B, (long long)T); return NULL; }
    if (train && T > cf->context) {
        nl_set_error(NL_EINVAL, "lm forward: training sequence of %lld tokens exceeds the context %d", (long long)T, cf->context);
        return NULL;
    }
    if (kc && (kc->B != B || kc->n_layers != cf->n_layers || kc->H != H || kc->Dh != Dh)) {
        nl_set_error(NL_EINVAL, "lm forward: KV cache was made for another model or batch (B %lld vs %lld)", (long long)kc->B, (long long)B);
        return NULL;
    }
    const size_t es = nl_dtype_size(cf->dtype);
    double *theta = nl_scratch(c, sizeof(double) * (size_t)h2), *pos = nl_scratch(c, sizeof(double) * (size_t)T);
    double *zeta = cf->rope.variant == NL_ROPE_XPOS ? nl_scratch(c, sizeof(double) * (size_t)h2) : NULL;
    if (!theta || !pos || (cf->rope.variant == NL_ROPE_XPOS && !zeta)) return NULL;
    if (nl_rope_freqs_scaled(&cf->rope, (int)Dh, train ? cf->rope.scale_train : cf->rope.scale_eval, theta)) return NULL;
    if (zeta) nl_rope_xpos_zeta((int)Dh, zeta);
    const int64_t off = kc ? kc->len : 0;
    if (train && cf->rope.randomized) nl_rope_random_positions(&m->pos_rng, T, (double)T, pos);
    else if (!train && !kc && m->eval_pos) {
        if (m->eval_pos_n < T) {
            nl_set_error(NL_EINVAL, "lm forward: %lld evaluation positions set, the input has %lld tokens", (long long)m->eval_pos_n, (long long)T);
            return NULL;
        }
        memcpy(pos, m->eval_pos, sizeof(double) * (size_t)T);
    } else
        for (int64_t t = 0; t < T; t++) pos[t] = (double)(off + t);
    if (kc && cf->attn == NL_LM_ATTN_VANILLA && cache_reserve(kc, off + T, es)) return NULL;

    int64_t ish[2] = {B, T};
    nl_var *x = nl_embedding(c, m->tok_emb, ids, 2, ish);
    int64_t sh3[3] = {B, T, d};
    int perm[4] = {0, 2, 1, 3};
    for (int l = 0; l < cf->n_layers && x; l++) {
        nl_lm_layer *L = &m->layer[l];
        nl_var *h = apply_norm(m, c, x, L->n1_w, L->n1_b, L->n1_rm, L->n1_rv, train);
        nl_var *qkv = nl_lm_linear_residual(c, NULL, h, L->wqkv, NULL); /* [B, T, 3d] */
        nl_var *v = heads_split(c, qkv, 2, H);
        if (!v) return NULL;
        nl_var *o = NULL;
        if (cf->attn == NL_LM_ATTN_VANILLA) {
            const int xp = cf->rope.variant == NL_ROPE_XPOS;
            nl_var *qk = qk_rope_split(c, qkv, H, pos, theta, xp ? zeta : NULL, cf->rope.xpos_gamma);
            nl_var *qr = nl_slice(c, qk, 0, 0, B, 1), *kr = nl_slice(c, qk, 0, B, 2 * B, 1);
            if (!qr || !kr) return NULL;
            if (!kc) {
                o = nl_attention_bthd(c, qr, kr, v, NULL, 1, 0.0); /* [B, T, H, Dh] */
            } else {
                cache_put(kc, kc->k[l], &kr->val, es);
                cache_put(kc, kc->v[l], &v->val, es);
                nl_tensor K, Vt;
                memset(&K, 0, sizeof K);
                K.dtype = cf->dtype;
                K.ndim = 4;
                K.shape[0] = B; K.shape[1] = H; K.shape[2] = off + T; K.shape[3] = Dh;
                K.stride[0] = H * kc->cap * Dh; K.stride[1] = kc->cap * Dh; K.stride[2] = Dh; K.stride[3] = 1;
                Vt = K;
                K.data = kc->k[l];
                Vt.data = kc->v[l];
                o = nl_attention_bthd(c, qr, nl_input(c, K), nl_input(c, Vt), NULL, 1, 0.0);
            }
        } else {
            nl_var *q = heads_split(c, qkv, 0, H), *k = heads_split(c, qkv, 1, H);
            if (!q || !k) return NULL;
            nl_lm_attn_args a;
            a.model = m; a.layer = l; a.train = train; a.q = q; a.k = k; a.v = v; a.pos = pos; a.theta = theta; a.cache = kc;
            if (cf->attn == NL_LM_ATTN_CUSTOM) o = cf->attn_fn(c, &a, cf->attn_ud);
            else {
                o = g_attn_impl[cf->attn].fn(c, &a, g_attn_impl[cf->attn].ud);
            }
        }
        if (!o) return NULL;
        /* vanilla attention wrote [B, T, H, Dh] already: the reshape is a view */
        nl_var *om = cf->attn == NL_LM_ATTN_VANILLA ? nl_reshape(c, o, 3, sh3) : nl_reshape(c, nl_permute(c, o, perm), 3, sh3);
        x = nl_lm_linear_residual(c, x, om, L->wo, NULL); /* x + om Wo^T */
        nl_var *h2v = apply_norm(m, c, x, L->n2_w, L->n2_b, L->n2_rm, L->n2_rv, train);
        x = nl_lm_linear_residual(c, x, nl_gelu(c, nl_linear(c, h2v, L->fc1_w, L->fc1_b)), L->fc2_w, L->fc2_b);
    }
    x = apply_norm(m, c, x, m->nf_w, m->nf_b, m->nf_rm, m->nf_rv, train);
    int64_t sh2[2] = {B * T, d};
    nl_var *logits = nl_lm_linear_residual(c, NULL, nl_reshape(c, x, 2, sh2), m->head, NULL); /* [B*T, V] */
    if (logits && kc) kc->len = off + T;
    if (logits && train) m->norm_step++;
    return logits;
}

nl_var *nl_lm_forward(nl_lm *m, nl_ctx *c, const int32_t *ids, int64_t B, int64_t T, int train) {
    return lm_run(m, c, NULL, ids, B, T, train);
}

nl_var *nl_lm_forward_cached(nl_lm *m, nl_ctx *c, nl_lm_cache *kc, const int32_t *ids, int64_t B, int64_t T) {
    if (!kc) { nl_set_error(NL_EINVAL, "lm forward_cached: cache is NULL"); return NULL; }
    int g = nl_set_grad_enabled(c, 0);
    nl_var *r = lm_run(m, c, kc, ids, B, T, 0);
    nl_set_grad_enabled(c, g);
    return r;
}

nl_var *nl_lm_loss(nl_lm *m, nl_ctx *c, const int32_t *ids, const int32_t *targets, int64_t B, int64_t T, int train) {
    nl_var *logits = nl_lm_forward(m, c, ids, B, T, train);
    if (!logits) return NULL;
    int32_t *tg = nl_scratch(c, sizeof(int32_t) * (size_t)(B * T));
    if (!tg) return NULL;
    const int32_t V = m->cfg.vocab;
    for (int64_t i = 0; i < B * T; i++) tg[i] = targets[i] < 0 ? V : targets[i];
    return nl_cross_entropy(c, logits, tg, 0.0, V);
}

/* ---- sampling ---- */

static int32_t pick(const nl_tensor *lg, int64_t row, int64_t V, const nl_lm_sample_opts *o, nl_rng *rng, double *buf,
                    int32_t *idx) {
    for (int64_t v = 0; v < V; v++) {
        buf[v] = nl_tensor_get(lg, row * V + v);
        if (!isfinite(buf[v])) return -1; /* NaN / Inf logits: no token can be chosen */
    }
    if (!o || o->temperature <= 0 || !rng) {
        int64_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (buf[v] > buf[best]) best = v;
        return (int32_t)best;
    }
    /* top-k: indices sorted by logit (partial selection) */
    int64_t k = (o->top_k > 0 && o->top_k < V) ? o->top_k : V;
    for (int64_t v = 0; v < V; v++) idx[v] = (int32_t)v;
    for (int64_t i = 0; i < k; i++) {
        int64_t bi = i;
        for (int64_t j = i + 1; j < V; j++)
            if (buf[idx[j]] > buf[idx[bi]]) bi = j;
        int32_t t = idx[i]; idx[i] = idx[bi]; idx[bi] = t;
    }
    double mx = buf[idx[0]];
    double *p = buf + V; /* second half of buf */
    for (int64_t i = 0; i < k; i++) p[i] = exp((buf[idx[i]] - mx) / o->temperature);
    int64_t ch = nl_rng_categorical(rng, p, k);
    return idx[ch < 0 ? 0 : ch];
}

nl_status nl_lm_generate(nl_lm *m, const int32_t *prompt, int64_t n_prompt, int64_t n_new, const nl_lm_sample_opts *o,
                         nl_rng *rng, int32_t *out, int64_t *n_out) {
    if (n_out) *n_out = 0;
    if (n_prompt < 1 || !prompt) return nl_set_error(NL_EINVAL, "lm generate: the prompt must have at least one token");
    if (n_new < 0) return nl_set_error(NL_EINVAL, "lm generate: n_new must be >= 0");
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= m->cfg.vocab)
            return nl_set_error(NL_EINVAL, "lm generate: prompt token %d at %lld out of range [0, %d)", prompt[i], (long long)i, m->cfg.vocab);
    nl_status st = nl_lm_check_length(m, n_prompt + n_new, o ? o->allow_extrapolation : 0);
    if (st) return st;
    if (o && o->temperature > 0 && !rng) return nl_set_error(NL_EINVAL, "lm generate: sampling needs an rng");
    nl_lm_cache kc;
    if ((st = nl_lm_cache_init(&kc, m, 1))) return st;
    nl_ctx *c = nl_ctx_new(0, 0);
    const int64_t V = m->cfg.vocab;
    double *buf = malloc(sizeof(double) * (size_t)(2 * V));
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)V);
    if (!c || !buf || !idx) { st = nl_set_error(NL_ENOMEM, "lm generate: out of memory"); goto done; }
    nl_var *lg = nl_lm_forward_cached(m, c, &kc, prompt, 1, n_prompt);
    if (!lg) { st = nl_last_status(); goto done; }
    int64_t row = n_prompt - 1;
    for (int64_t i = 0; i < n_new; i++) {
        int32_t t = pick(&lg->val, row, V, o, rng, buf, idx);
        if (t < 0) {
            st = nl_set_error(NL_ENONFINITE, "lm generate: the logits for new token %lld are not finite (NaN or Inf): the "
                              "model's weights or activations have diverged", (long long)i + 1);
            goto done;
        }
        out[i] = t;
        if (n_out) *n_out = i + 1;
        if ((o && o->stop >= 0 && t == o->stop) || i == n_new - 1) break;
        nl_ctx_reset(c);
        lg = nl_lm_forward_cached(m, c, &kc, &t, 1, 1);
        if (!lg) { st = nl_last_status(); goto done; }
        row = 0;
    }
done:
    free(buf);
    free(idx);
    nl_ctx_free(c);
    nl_lm_cache_free(&kc);
    return st;
}

/* ---- evaluation ---- */

nl_status nl_lm_eval_nll(nl_lm *m, const int32_t *tokens, int64_t n, int64_t T, int64_t batch, int64_t max_windows,
                         int allow, double *nll, int64_t *count) {
    *nll = NAN;
    *count = 0;
    if (T < 1) return nl_set_error(NL_EINVAL, "lm eval: context must be >= 1");
    nl_status st = nl_lm_check_length(m, T, allow);
    if (st) return st;
    int64_t nw = n / (T + 1);
    if (max_windows > 0 && nw > max_windows) nw = max_windows;
    if (nw < 1)
        return nl_set_error(NL_EINVAL, "lm eval: %lld tokens are fewer than one window of %lld + 1", (long long)n, (long long)T);
    if (batch < 1) batch = 1;
    nl_ctx *c = nl_ctx_new(0, 0);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(batch * T)), *tg = malloc(sizeof(int32_t) * (size_t)(batch * T));
    if (!c || !ids || !tg) { st = nl_set_error(NL_ENOMEM, "lm eval: out of memory"); goto done; }
    nl_set_grad_enabled(c, 0);
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t w0 = 0; w0 < nw; w0 += batch) {
        int64_t bs = nw - w0 < batch ? nw - w0 : batch;
        for (int64_t b = 0; b < bs; b++) {
            const int32_t *src = tokens + (w0 + b) * (T + 1);
            memcpy(ids + b * T, src, sizeof(int32_t) * (size_t)T);
            memcpy(tg + b * T, src + 1, sizeof(int32_t) * (size_t)T);
        }
        nl_ctx_reset(c);
        nl_var *l = nl_lm_loss(m, c, ids, tg, bs, T, 0);
        if (!l) { st = nl_last_status(); goto done; }
        sum += nl_item(l) * (double)(bs * T);
        cnt += bs * T;
    }
    *nll = sum / (double)cnt;
    *count = cnt;
done:
    free(ids);
    free(tg);
    nl_ctx_free(c);
    return st;
}
