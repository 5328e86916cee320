/* PFN transformer: parameters, forward pass, loss, posterior predictive (include/pfn/pfn.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nnlab/data.h"
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "pfn/pfn.h"

nl_pfn_config nl_pfn_config_default(void) {
    nl_pfn_config c;
    memset(&c, 0, sizeof c);
    c.dim = 1;
    c.emsize = 64;
    c.n_layers = 4;
    c.n_heads = 4;
    c.d_ff = 128;
    c.d_dec = 128;
    c.n_buckets = 1000;
    c.pre_norm = 0;
    c.seq = 50;
    return c;
}

nl_status nl_pfn_config_check(const nl_pfn_config *c) {
    if (c->dim < 1 || c->dim > NL_PFN_MAX_DIM) return nl_set_error(NL_EINVAL, "pfn config: dim %d outside [1, %d]", c->dim, NL_PFN_MAX_DIM);
    if (c->emsize < 1 || c->emsize > 4096) return nl_set_error(NL_EINVAL, "pfn config: emsize %d outside [1, 4096]", c->emsize);
    if (c->n_layers < 1 || c->n_layers > NL_PFN_MAX_LAYERS)
        return nl_set_error(NL_EINVAL, "pfn config: layers %d outside [1, %d]", c->n_layers, NL_PFN_MAX_LAYERS);
    if (c->n_heads < 1 || c->emsize % c->n_heads)
        return nl_set_error(NL_EINVAL, "pfn config: emsize %d is not divisible by heads %d", c->emsize, c->n_heads);
    if (c->d_ff < 0 || c->d_ff > 65536 || c->d_dec < 0 || c->d_dec > 65536)
        return nl_set_error(NL_EINVAL, "pfn config: FFN/decoder width out of range");
    if (c->n_buckets < 2 || c->n_buckets > 100000) return nl_set_error(NL_EINVAL, "pfn config: buckets %d outside [2, 100000]", c->n_buckets);
    if (c->seq < 2 || c->seq > 100000) return nl_set_error(NL_EINVAL, "pfn config: seq %d outside [2, 100000]", c->seq);
    return NL_OK;
}

static nl_var *addp(nl_pfn *m, const char *name, int ndim, int64_t a, int64_t b) {
    int64_t sh[2] = {a, b};
    return nl_params_add(&m->ps, name, ndim, sh);
}

#define ADD(dst, ndim, a, b, ...)                               \
    do {                                                        \
        snprintf(nm, sizeof nm, __VA_ARGS__);                   \
        if (!((dst) = addp(m, nm, ndim, a, b))) goto fail;      \
    } while (0)

static void fill_uniform(nl_rng *r, nl_var *v, double a) {
    if (a == 0) return; /* zero-initialised by the store */
    nl_rng_fill_uniform(r, &v->val, -a, a);
}

/* The parameters of m->cfg (defaults filled in) into m->ps, which the caller has initialised (values or layout). */
static nl_status pfn_build(nl_pfn *m) {
    nl_pfn_config *c = &m->cfg;
    int64_t E = c->emsize, F = c->d_ff, D = c->d_dec, K = c->n_buckets;
    char nm[96];
    ADD(m->ex_w, 2, E, c->dim, "enc_x.weight");
    ADD(m->ex_b, 1, E, 1, "enc_x.bias");
    ADD(m->ey_w, 2, E, 1, "enc_y.weight");
    ADD(m->ey_b, 1, E, 1, "enc_y.bias");
    for (int l = 0; l < c->n_layers; l++) {
        nl_pfn_layer *L = &m->layer[l];
        ADD(L->wq, 2, E, E, "layers.%d.attn.q.weight", l);
        ADD(L->bq, 1, E, 1, "layers.%d.attn.q.bias", l);
        ADD(L->wk, 2, E, E, "layers.%d.attn.k.weight", l);
        ADD(L->bk, 1, E, 1, "layers.%d.attn.k.bias", l);
        ADD(L->wv, 2, E, E, "layers.%d.attn.v.weight", l);
        ADD(L->bv, 1, E, 1, "layers.%d.attn.v.bias", l);
        ADD(L->wo, 2, E, E, "layers.%d.attn.out.weight", l);
        ADD(L->bo, 1, E, 1, "layers.%d.attn.out.bias", l);
        ADD(L->n1_w, 1, E, 1, "layers.%d.norm1.weight", l);
        ADD(L->n1_b, 1, E, 1, "layers.%d.norm1.bias", l);
        ADD(L->n2_w, 1, E, 1, "layers.%d.norm2.weight", l);
        ADD(L->n2_b, 1, E, 1, "layers.%d.norm2.bias", l);
        ADD(L->fc1_w, 2, F, E, "layers.%d.ff.fc1.weight", l);
        ADD(L->fc1_b, 1, F, 1, "layers.%d.ff.fc1.bias", l);
        ADD(L->fc2_w, 2, E, F, "layers.%d.ff.fc2.weight", l);
        ADD(L->fc2_b, 1, E, 1, "layers.%d.ff.fc2.bias", l);
    }
    if (c->pre_norm) {
        ADD(m->nf_w, 1, E, 1, "norm_f.weight");
        ADD(m->nf_b, 1, E, 1, "norm_f.bias");
    }
    ADD(m->d1_w, 2, D, E, "dec.fc1.weight");
    ADD(m->d1_b, 1, D, 1, "dec.fc1.bias");
    ADD(m->d2_w, 2, K, D, "dec.fc2.weight");
    ADD(m->d2_b, 1, K, 1, "dec.fc2.bias");
    return NL_OK;
fail:
    return nl_last_status() ? nl_last_status() : NL_ENOMEM;
}

nl_status nl_pfn_layout(const nl_pfn_config *cfg, nl_params *ps) {
    memset(ps, 0, sizeof *ps);
    nl_status st = nl_pfn_config_check(cfg);
    if (st) return st;
    nl_pfn *m = calloc(1, sizeof *m);
    if (!m) return nl_set_error(NL_ENOMEM, "pfn layout: out of memory");
    m->cfg = *cfg;
    if (!m->cfg.d_ff) m->cfg.d_ff = 2 * m->cfg.emsize;
    if (!m->cfg.d_dec) m->cfg.d_dec = 2 * m->cfg.emsize;
    nl_params_init_layout(&m->ps, NL_F32);
    if ((st = pfn_build(m))) nl_params_free(&m->ps);
    else *ps = m->ps;
    free(m);
    return st;
}

nl_status nl_pfn_init(nl_pfn *m, const nl_pfn_config *cfg, const double *borders, uint64_t seed) {
    memset(m, 0, sizeof *m);
    nl_status st = nl_pfn_config_check(cfg);
    if (st) return st;
    m->cfg = *cfg;
    nl_pfn_config *c = &m->cfg;
    if (!c->d_ff) c->d_ff = 2 * c->emsize;
    if (!c->d_dec) c->d_dec = 2 * c->emsize;
    if ((st = nl_pfn_bar_init(&m->bar, c->n_buckets, borders, 1))) return st;
    if ((st = nl_params_init(&m->ps, NL_F32))) {
        nl_pfn_bar_free(&m->bar);
        return st;
    }
    if ((st = pfn_build(m))) goto fail;
    int64_t E = c->emsize, D = c->d_dec;
    /* init, in store order */
    nl_rng r;
    nl_rng_init(&r, seed, NL_PFN_STREAM_INIT);
    double xav = sqrt(6.0 / (double)(E + E));
    fill_uniform(&r, m->ex_w, 1 / sqrt((double)c->dim));
    fill_uniform(&r, m->ex_b, 1 / sqrt((double)c->dim));
    fill_uniform(&r, m->ey_w, 1.0);
    fill_uniform(&r, m->ey_b, 1.0);
    for (int l = 0; l < c->n_layers; l++) {
        nl_pfn_layer *L = &m->layer[l];
        fill_uniform(&r, L->wq, xav);
        fill_uniform(&r, L->wk, xav);
        fill_uniform(&r, L->wv, xav);
        /* wo, bo, fc2 zero (official code zero-initialises out_proj and linear2) */
        nl_tensor_fill(&L->n1_w->val, 1.0);
        nl_tensor_fill(&L->n2_w->val, 1.0);
        fill_uniform(&r, L->fc1_w, 1 / sqrt((double)E));
        fill_uniform(&r, L->fc1_b, 1 / sqrt((double)E));
    }
    if (c->pre_norm) nl_tensor_fill(&m->nf_w->val, 1.0);
    fill_uniform(&r, m->d1_w, 1 / sqrt((double)E));
    fill_uniform(&r, m->d1_b, 1 / sqrt((double)E));
    fill_uniform(&r, m->d2_w, 1 / sqrt((double)D));
    fill_uniform(&r, m->d2_b, 1 / sqrt((double)D));
    snprintf(m->prior_name, sizeof m->prior_name, "unknown");
    return NL_OK;
fail:
    st = nl_last_status();
    nl_pfn_free(m);
    return st ? st : NL_ENOMEM;
}

void nl_pfn_free(nl_pfn *m) {
    nl_params_free(&m->ps);
    nl_pfn_bar_free(&m->bar);
    memset(m, 0, sizeof *m);
}

int64_t nl_pfn_num_params(const nl_pfn *m) { return m->ps.total; }

/* [B, T, E] -> [B, H, T, Dh] (strided view) */
static nl_var *heads(nl_ctx *c, nl_var *x, int64_t B, int64_t T, int64_t H, int64_t Dh) {
    int64_t sh[4] = {B, T, H, Dh};
    static const int perm[4] = {0, 2, 1, 3};
    return nl_permute(c, nl_reshape(c, x, 4, sh), perm);
}

/* Multi-head attention of the queries hq [B, Tq, E] over the keys/values of h [B, T, E] (hq == h, or its last Tq
 * tokens), with the additive mask [Tq, T]. */
static nl_var *mha(nl_pfn *m, nl_ctx *c, const nl_pfn_layer *L, nl_var *hq, nl_var *h, nl_var *mask, int64_t B, int64_t Tq, int64_t T) {
    int64_t E = m->cfg.emsize, H = m->cfg.n_heads, Dh = E / H;
    nl_var *q = heads(c, nl_linear(c, hq, L->wq, L->bq), B, Tq, H, Dh);
    nl_var *k = heads(c, nl_linear(c, h, L->wk, L->bk), B, T, H, Dh);
    nl_var *v = heads(c, nl_linear(c, h, L->wv, L->bv), B, T, H, Dh);
    nl_var *o = nl_attention(c, q, k, v, mask, 0, 0.0);
    static const int perm[4] = {0, 2, 1, 3};
    int64_t sh3[3] = {B, Tq, E};
    nl_var *om = nl_reshape(c, nl_permute(c, o, perm), 3, sh3);
    return nl_linear(c, om, L->wo, L->bo);
}

static nl_var *ffn(nl_ctx *c, const nl_pfn_layer *L, nl_var *h) {
    return nl_linear(c, nl_gelu(c, nl_linear(c, h, L->fc1_w, L->fc1_b)), L->fc2_w, L->fc2_b);
}

nl_status nl_pfn_forward_check(const double *y, int64_t B, int64_t T, int64_t n) {
    if (B < 1 || T < 1 || n < 0 || n >= T)
        return nl_set_error(NL_EINVAL, "pfn forward: need B >= 1 and 0 <= n < T (B %lld, T %lld, n %lld)", (long long)B,
                            (long long)T, (long long)n);
    if (n > 0 && !y) return nl_set_error(NL_EINVAL, "pfn forward: targets missing for %lld training tokens", (long long)n);
    return NL_OK;
}

nl_var *nl_pfn_forward(nl_pfn *m, nl_ctx *c, const double *x, const double *y, int64_t B, int64_t T, int64_t n) {
    const nl_pfn_config *cf = &m->cfg;
    int64_t d = cf->dim, E = cf->emsize, M = T - n;
    if (nl_pfn_forward_check(y, B, T, n)) return NULL;
    int64_t shx[3] = {B, T, d};
    nl_var *X = nl_new(c, NL_F32, 3, shx);
    if (!X) return NULL;
    float *xf = X->val.data;
    for (int64_t i = 0; i < B * T * d; i++) xf[i] = (float)x[i];
    nl_var *h = nl_linear(c, X, m->ex_w, m->ex_b);
    if (n > 0) {
        int64_t shy[3] = {B, n, 1};
        nl_var *Y = nl_new(c, NL_F32, 3, shy);
        if (!Y) return NULL;
        float *yf = Y->val.data;
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < n; i++) yf[b * n + i] = (float)y[b * T + i];
        nl_var *ey = nl_linear(c, Y, m->ey_w, m->ey_b);
        if (M > 0) {
            int64_t shz[3] = {B, M, E};
            nl_var *parts[2] = {ey, nl_zeros(c, NL_F32, 3, shz)};
            ey = nl_concat(c, 2, parts, 1);
        }
        h = nl_add(c, h, ey);
    }
    /* additive mask [T, T]: key k visible to query q iff k < n or k == q */
    int64_t shm[2] = {T, T};
    nl_var *mask = nl_new(c, NL_F32, 2, shm);
    if (!mask) return NULL;
    float *mk = mask->val.data;
    for (int64_t q = 0; q < T; q++)
        for (int64_t k = 0; k < T; k++) mk[q * T + k] = (k < n || k == q) ? 0.0f : -INFINITY;
    /* The last layer computes the test tokens only: the decoder never reads the context tokens' outputs, so past
     * their keys and values (from all T tokens) nothing of them is needed (exact: the same logits and gradients,
     * a third to a half less work in that layer; the query rows of the mask are the test tokens'). */
    int64_t shl[2] = {M, T};
    nl_var *mask_last = nl_slice(c, mask, 0, n, T, 1); /* [M, T] */
    if (!mask_last) return NULL;
    for (int l = 0; l < cf->n_layers; l++) {
        const nl_pfn_layer *L = &m->layer[l];
        const int last = l == cf->n_layers - 1 && n > 0;
        nl_var *mk_l = last ? nl_reshape(c, mask_last, 2, shl) : mask;
        const int64_t Tq = last ? M : T;
        if (cf->pre_norm) {
            nl_var *z = nl_layernorm(c, h, L->n1_w, L->n1_b, 1e-5);
            nl_var *hq = last ? nl_contiguous(c, nl_slice(c, h, 1, n, T, 1)) : h;
            nl_var *zq = last ? nl_contiguous(c, nl_slice(c, z, 1, n, T, 1)) : z;
            h = nl_add(c, hq, mha(m, c, L, zq, z, mk_l, B, Tq, T));
            h = nl_add(c, h, ffn(c, L, nl_layernorm(c, h, L->n2_w, L->n2_b, 1e-5)));
        } else {
            nl_var *hq = last ? nl_contiguous(c, nl_slice(c, h, 1, n, T, 1)) : h;
            h = nl_layernorm(c, nl_add(c, hq, mha(m, c, L, hq, h, mk_l, B, Tq, T)), L->n1_w, L->n1_b, 1e-5);
            h = nl_layernorm(c, nl_add(c, h, ffn(c, L, h)), L->n2_w, L->n2_b, 1e-5);
        }
    }
    if (cf->pre_norm) h = nl_layernorm(c, h, m->nf_w, m->nf_b, 1e-5);
    nl_var *ht = h; /* [B, M, E]: only the test tokens are left after the last layer */
    int64_t sh2[2] = {B * M, E};
    ht = nl_reshape(c, ht, 2, sh2);
    return nl_linear(c, nl_gelu(c, nl_linear(c, ht, m->d1_w, m->d1_b)), m->d2_w, m->d2_b);
}

nl_var *nl_pfn_loss(nl_pfn *m, nl_ctx *c, const double *x, const double *y, int64_t B, int64_t T, int64_t n) {
    nl_var *logits = nl_pfn_forward(m, c, x, y, B, T, n);
    if (!logits) return NULL;
    int64_t M = T - n;
    double *yt = nl_scratch(c, (size_t)(B * M) * sizeof *yt);
    if (!yt) return NULL;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < M; j++) yt[b * M + j] = y[b * T + n + j];
    return nl_pfn_bar_nll(c, &m->bar, logits, yt);
}

#define PREDICT_CHUNK 128

nl_status nl_pfn_predict(nl_pfn *m, const double *xc, const double *yc, int64_t n, const double *xq, int64_t nq,
                         double *probs) {
    int64_t d = m->cfg.dim, K = m->cfg.n_buckets;
    if (n < 0 || nq < 0) return nl_set_error(NL_EINVAL, "pfn predict: negative sizes");
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(xc[i])) return nl_set_error(NL_ENONFINITE, "pfn predict: context x of point %lld is not finite", (long long)(i / d));
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(yc[i])) return nl_set_error(NL_ENONFINITE, "pfn predict: context y of point %lld is not finite", (long long)i);
    for (int64_t i = 0; i < nq * d; i++)
        if (!isfinite(xq[i])) return nl_set_error(NL_ENONFINITE, "pfn predict: query x of point %lld is not finite", (long long)(i / d));
    if (nq == 0) return NL_OK;
    int64_t cm = nq < PREDICT_CHUNK ? nq : PREDICT_CHUNK, T = n + cm;
    double *x = malloc((size_t)(T * d) * sizeof *x), *y = malloc((size_t)(n > 0 ? n : 1) * sizeof *y);
    nl_ctx *c = nl_ctx_new((size_t)1 << 20, 0);
    nl_status st = NL_OK;
    if (!x || !y || !c) {
        st = nl_set_error(NL_ENOMEM, "pfn predict: out of memory");
        goto done;
    }
    if (n) memcpy(x, xc, (size_t)(n * d) * sizeof *x);
    if (n) memcpy(y, yc, (size_t)n * sizeof *y);
    nl_set_grad_enabled(c, 0);
    for (int64_t q0 = 0; q0 < nq; q0 += cm) {
        int64_t mq = nq - q0 < cm ? nq - q0 : cm;
        memcpy(x + n * d, xq + q0 * d, (size_t)(mq * d) * sizeof *x);
        nl_ctx_reset(c);
        nl_var *lg = nl_pfn_forward_infer(m, c, x, y, 1, n + mq, n);
        if (!lg) {
            st = nl_last_status();
            goto done;
        }
        const float *L = lg->val.data;
        for (int64_t j = 0; j < mq; j++) {
            const float *r = L + j * K;
            double mx = -INFINITY, s = 0;
            for (int64_t k = 0; k < K; k++) mx = r[k] > mx ? r[k] : mx;
            double *p = probs + (q0 + j) * K;
            for (int64_t k = 0; k < K; k++) s += (p[k] = exp((double)r[k] - mx));
            for (int64_t k = 0; k < K; k++) p[k] /= s;
        }
    }
done:
    free(x);
    free(y);
    if (c) nl_ctx_free(c);
    return st;
}

void nl_pfn_summarize(const nl_pfn *m, const double *probs, nl_pfn_summary *s) {
    s->mean = nl_pfn_bar_mean(&m->bar, probs);
    s->median = nl_pfn_bar_quantile(&m->bar, probs, 0.5);
    s->q05 = nl_pfn_bar_quantile(&m->bar, probs, 0.05);
    s->q95 = nl_pfn_bar_quantile(&m->bar, probs, 0.95);
}

double nl_pfn_nll(const nl_pfn *m, const double *probs, double y) { return -nl_pfn_bar_logpdf(&m->bar, probs, y); }

nl_status nl_pfn_read_points(const char *path, int dim, int y_required, int64_t *n, double **x, double **y, int *has_y) {
    *n = 0, *x = NULL, *y = NULL, *has_y = 0;
    nl_csv t;
    nl_status st = nl_csv_read(path, &t, 0);
    if (st) return st;
    if (t.cols != dim + 1 && (y_required || t.cols != dim)) {
        if (y_required)
            st = nl_set_error(NL_EFORMAT, "%s: %lld columns, expected %d (%d x columns of the model, then y)", path, (long long)t.cols,
                              dim + 1, dim);
        else
            st = nl_set_error(NL_EFORMAT, "%s: %lld columns, expected %d (the model's x dimension) or %d (x, then y)", path,
                              (long long)t.cols, dim, dim + 1);
        nl_csv_free(&t);
        return st;
    }
    int hy = t.cols == dim + 1;
    double *xx = malloc((size_t)(t.rows * dim) * sizeof *xx), *yy = hy ? malloc((size_t)t.rows * sizeof *yy) : NULL;
    if (!xx || (hy && !yy)) {
        free(xx), free(yy);
        nl_csv_free(&t);
        return nl_set_error(NL_ENOMEM, "%s: out of memory", path);
    }
    for (int64_t i = 0; i < t.rows; i++) {
        for (int k = 0; k < dim; k++) xx[i * dim + k] = t.data[i * t.cols + k];
        if (hy) yy[i] = t.data[i * t.cols + dim];
    }
    *n = t.rows, *x = xx, *y = yy, *has_y = hy;
    nl_csv_free(&t);
    return NL_OK;
}
