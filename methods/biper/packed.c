/* BiPer export and packed inference on lib/bnn. The packed network (layer order in the file):
 *   0 INT   "biper"   [3]  (format version NL_BIPER_PACKED_VERSION, c1, c)
 *   1 FLOAT "conv1.w" [c1, 1, 3, 3]     2 FLOAT "bn1" [4, c1] (gamma, beta, running mean, running var)
 *   3 CONV  "bconv2"  bits [c, 3, 3, c1] 4 THRESH "th2" [c, 2]
 *   5 CONV  "bconv3"  bits [c, 3, 3, c]  6 THRESH "th3" [c, 2]   7 POOL "pool3" (2, 2, 0)
 *   8 CONV  "bconv4"  bits [c, 3, 3, c]  9 FLOAT "f4" [c, 2K + 1] (K = 9c: the float value f_o(s) at s = -K..K)
 *  10 FLOAT "fc.w" [10, 9c]             11 FLOAT "fc.b" [10]
 * L1 (float conv, BN, max-pool) and the classifier run on the engine's own ops, L2-L4 on bits. Every float that
 * decides a bit or feeds the classifier is the value the engine computes for the trained network (thresholds
 * folded from nl_biper_layer_fn, "f4" its table), so predictions are the float network's exactly. */
#include "biper/biper.h"
#include "bnn/bnn.h"
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <stdlib.h>
#include <string.h>

#define NL_BIPER_PACKED_VERSION 1
#define BP_CHUNK 500 /* images per engine call: the same chunking as nl_biper_predict */

struct nl_biper_packed {
    nl_bnn_model bm;
    int c1, c;
    nl_params ps;              /* float layers for the engine: conv1.w, bn1.{g,b,rm,rv}, fc.w, fc.b */
    nl_var *w1, *g1, *b1, *rm1, *rv1, *fc_w, *fc_b;
};

/* fold callback: ctx is the table [c, 2K + 1] of f_o(s), K in the first int64 before it */
typedef struct fold_ctx { const float *tab; int64_t K; } fold_ctx;
static float fold_fn(int64_t o, int32_t s, void *ctx) {
    const fold_ctx *f = ctx;
    return f->tab[o * (2 * f->K + 1) + (s + f->K)];
}

/* the table of binary layer l: [c, 2K + 1], K = 9 c_in */
static float *layer_table(nl_biper_net *m, int l, int64_t *K_out) {
    const int64_t K = 9 * (int64_t)(l ? m->c : m->c1), n = 2 * K + 1;
    float *s = malloc((size_t)n * sizeof *s), *tab = malloc((size_t)(n * m->c) * sizeof *tab);
    if (!s || !tab) {
        free(s), free(tab);
        nl_set_error(NL_ENOMEM, "biper export: out of memory");
        return NULL;
    }
    for (int64_t j = 0; j < n; j++) s[j] = (float)(j - K);
    if (nl_biper_layer_fn(m, l, s, n, tab)) free(tab), tab = NULL;
    free(s);
    *K_out = K;
    return tab;
}

static nl_status packed_bind(nl_biper_packed *p); /* the engine store from the file's float layers */

nl_status nl_biper_export(nl_biper_net *m, const nl_biper_config *cfg, nl_biper_packed **out) {
    *out = NULL;
    nl_biper_packed *p = calloc(1, sizeof *p);
    if (!p) return nl_set_error(NL_ENOMEM, "biper export: out of memory");
    nl_bnn_model_init(&p->bm);
    p->c1 = m->c1, p->c = m->c;
    const int64_t c1 = m->c1, c = m->c;
    const nl_biper_wmode mode = nl_biper_stage_mode(cfg, cfg->epochs2 > 0 ? 2 : 1);
    nl_status s = NL_OK;
    const int32_t meta[3] = {NL_BIPER_PACKED_VERSION, (int32_t)c1, (int32_t)c};
    const int32_t conv_par[8] = {1, 1, 1, 1}, pool_par[8] = {2, 2, 0};
    float *bn = malloc((size_t)(4 * c1) * sizeof *bn), *wbuf = NULL;
    uint64_t *bits = NULL;
    if (!bn) s = nl_set_error(NL_ENOMEM, "biper export: out of memory");
    if (!s) s = nl_bnn_model_add(&p->bm, NL_BNN_L_INT, "biper", NL_BNN_I32, 1, (int64_t[]){3}, NULL, meta, NULL);
    if (!s) s = nl_bnn_model_add(&p->bm, NL_BNN_L_FLOAT, "conv1.w", NL_BNN_F32, 4, (int64_t[]){c1, 1, 3, 3}, NULL, m->w1->val.data, NULL);
    if (!s) {
        memcpy(bn, m->bn1.g->val.data, (size_t)c1 * 4), memcpy(bn + c1, m->bn1.b->val.data, (size_t)c1 * 4);
        memcpy(bn + 2 * c1, m->bn1.rm->val.data, (size_t)c1 * 4), memcpy(bn + 3 * c1, m->bn1.rv->val.data, (size_t)c1 * 4);
        s = nl_bnn_model_add(&p->bm, NL_BNN_L_FLOAT, "bn1", NL_BNN_F32, 2, (int64_t[]){4, c1}, NULL, bn, NULL);
    }
    nl_ctx *cx = s ? NULL : nl_ctx_new((size_t)1 << 20, 0);
    if (!s && !cx) s = nl_set_error(NL_ENOMEM, "biper export: out of memory");
    if (cx) nl_set_grad_enabled(cx, 0);
    for (int l = 0; l < NL_BIPER_NBIN && !s; l++) {
        const int64_t ci = l ? c : c1;
        char name[32];
        /* the binary weights the trained network uses in eval mode, packed [c, 3, 3, ci] */
        nl_ctx_reset(cx);
        nl_var *wb = nl_biper_weight(cx, m->wb[l], cfg->omega, mode == NL_BIPER_SIN ? NL_BIPER_SIGN_SIN : mode);
        bits = calloc((size_t)(c * 9 * nl_bnn_words(ci)), sizeof *bits);
        if (!wb || !bits) {
            s = wb ? nl_set_error(NL_ENOMEM, "biper export: out of memory") : nl_last_status();
            break;
        }
        if ((s = nl_bnn_pack_conv_weights(wb->val.data, c, ci, 3, 3, bits))) break;
        snprintf(name, sizeof name, "bconv%d", l + 2);
        if ((s = nl_bnn_model_add(&p->bm, NL_BNN_L_CONV, name, NL_BNN_BITS, 4, (int64_t[]){c, 3, 3, ci}, conv_par, bits, NULL))) break;
        free(bits), bits = NULL;
        int64_t K;
        float *tab = layer_table(m, l, &K);
        if (!tab) {
            s = nl_last_status();
            break;
        }
        if (l < NL_BIPER_NBIN - 1) {
            nl_bnn_thresh th;
            fold_ctx fc = {tab, K};
            if (!(s = nl_bnn_thresh_init(&th, c)) && !(s = nl_bnn_fold_thresholds(&th, K, fold_fn, &fc))) {
                int32_t *rows = malloc((size_t)(2 * c) * sizeof *rows); /* [c, 2] (t, flip) */
                if (!rows) s = nl_set_error(NL_ENOMEM, "biper export: out of memory");
                for (int64_t o = 0; !s && o < c; o++) rows[2 * o] = th.t[o], rows[2 * o + 1] = th.flip[o];
                snprintf(name, sizeof name, "th%d", l + 2);
                if (!s) s = nl_bnn_model_add(&p->bm, NL_BNN_L_THRESH, name, NL_BNN_I32, 2, (int64_t[]){c, 2}, NULL, rows, NULL);
                free(rows);
            }
            nl_bnn_thresh_free(&th);
            if (!s && l == 1) s = nl_bnn_model_add(&p->bm, NL_BNN_L_POOL, "pool3", NL_BNN_I32, 1, (int64_t[]){0}, pool_par, NULL, NULL);
        } else {
            s = nl_bnn_model_add(&p->bm, NL_BNN_L_FLOAT, "f4", NL_BNN_F32, 2, (int64_t[]){c, 2 * K + 1}, NULL, tab, NULL);
        }
        free(tab);
    }
    if (!s) s = nl_bnn_model_add(&p->bm, NL_BNN_L_FLOAT, "fc.w", NL_BNN_F32, 2, (int64_t[]){10, 9 * c}, NULL, m->fc_w->val.data, NULL);
    if (!s) s = nl_bnn_model_add(&p->bm, NL_BNN_L_FLOAT, "fc.b", NL_BNN_F32, 1, (int64_t[]){10}, NULL, m->fc_b->val.data, NULL);
    if (cx) nl_ctx_free(cx);
    free(bn), free(wbuf), free(bits);
    if (!s) s = packed_bind(p);
    if (s) {
        nl_biper_packed_free(p);
        return s;
    }
    *out = p;
    return NL_OK;
}

/* checks the layer list against the architecture it declares, then builds the engine store */
static nl_status packed_bind(nl_biper_packed *p) {
    const nl_bnn_model *bm = &p->bm;
    if (bm->n_layers != 12) return nl_set_error(NL_ESHAPE, "biper packed model: %d layers, expected 12", bm->n_layers);
    nl_status s = nl_bnn_model_expect(bm, 0, NL_BNN_L_INT, NL_BNN_I32, 1, (int64_t[]){3});
    if (s) return s;
    const int32_t *meta = bm->layers[0].data;
    if (meta[0] != NL_BIPER_PACKED_VERSION)
        return nl_set_error(NL_EFORMAT, "biper packed model: format version %d, this build reads version %d", meta[0], NL_BIPER_PACKED_VERSION);
    if (meta[1] < 1 || meta[1] > 4096 || meta[2] < 1 || meta[2] > 4096)
        return nl_set_error(NL_EFORMAT, "biper packed model: channels %d, %d outside 1..4096", meta[1], meta[2]);
    const int64_t c1 = meta[1], c = meta[2], K4 = 9 * c;
    p->c1 = (int)c1, p->c = (int)c;
    if ((s = nl_bnn_model_expect(bm, 1, NL_BNN_L_FLOAT, NL_BNN_F32, 4, (int64_t[]){c1, 1, 3, 3})) ||
        (s = nl_bnn_model_expect(bm, 2, NL_BNN_L_FLOAT, NL_BNN_F32, 2, (int64_t[]){4, c1})) ||
        (s = nl_bnn_model_expect(bm, 3, NL_BNN_L_CONV, NL_BNN_BITS, 4, (int64_t[]){c, 3, 3, c1})) ||
        (s = nl_bnn_model_expect(bm, 4, NL_BNN_L_THRESH, NL_BNN_I32, 2, (int64_t[]){c, 2})) ||
        (s = nl_bnn_model_expect(bm, 5, NL_BNN_L_CONV, NL_BNN_BITS, 4, (int64_t[]){c, 3, 3, c})) ||
        (s = nl_bnn_model_expect(bm, 6, NL_BNN_L_THRESH, NL_BNN_I32, 2, (int64_t[]){c, 2})) ||
        (s = nl_bnn_model_expect(bm, 7, NL_BNN_L_POOL, NL_BNN_I32, 1, (int64_t[]){0})) ||
        (s = nl_bnn_model_expect(bm, 8, NL_BNN_L_CONV, NL_BNN_BITS, 4, (int64_t[]){c, 3, 3, c})) ||
        (s = nl_bnn_model_expect(bm, 9, NL_BNN_L_FLOAT, NL_BNN_F32, 2, (int64_t[]){c, 2 * K4 + 1})) ||
        (s = nl_bnn_model_expect(bm, 10, NL_BNN_L_FLOAT, NL_BNN_F32, 2, (int64_t[]){10, 9 * c})) ||
        (s = nl_bnn_model_expect(bm, 11, NL_BNN_L_FLOAT, NL_BNN_F32, 1, (int64_t[]){10})))
        return s;
    if ((s = nl_params_init(&p->ps, NL_F32))) return s;
    if (!(p->w1 = nl_params_add(&p->ps, "conv1.w", 4, (int64_t[]){c1, 1, 3, 3})) || !(p->g1 = nl_params_add(&p->ps, "g1", 1, &c1)) ||
        !(p->b1 = nl_params_add(&p->ps, "b1", 1, &c1)) || !(p->rm1 = nl_params_add(&p->ps, "rm1", 1, &c1)) ||
        !(p->rv1 = nl_params_add(&p->ps, "rv1", 1, &c1)) || !(p->fc_w = nl_params_add(&p->ps, "fc.w", 2, (int64_t[]){10, 9 * c})) ||
        !(p->fc_b = nl_params_add(&p->ps, "fc.b", 1, (int64_t[]){10})))
        return nl_last_status();
    nl_params_set_trainable(&p->ps, "", 0);
    const float *bn = bm->layers[2].data;
    memcpy(p->w1->val.data, bm->layers[1].data, (size_t)(c1 * 9) * 4);
    memcpy(p->g1->val.data, bn, (size_t)c1 * 4), memcpy(p->b1->val.data, bn + c1, (size_t)c1 * 4);
    memcpy(p->rm1->val.data, bn + 2 * c1, (size_t)c1 * 4), memcpy(p->rv1->val.data, bn + 3 * c1, (size_t)c1 * 4);
    memcpy(p->fc_w->val.data, bm->layers[10].data, (size_t)(90 * c) * 4);
    memcpy(p->fc_b->val.data, bm->layers[11].data, 40);
    return NL_OK;
}

nl_status nl_biper_packed_save(const nl_biper_packed *p, const char *path) { return nl_bnn_model_save(&p->bm, path); }

nl_status nl_biper_packed_load(const char *path, nl_biper_packed **out) {
    *out = NULL;
    nl_biper_packed *p = calloc(1, sizeof *p);
    if (!p) return nl_set_error(NL_ENOMEM, "biper: out of memory");
    nl_bnn_model_init(&p->bm);
    nl_status s = nl_bnn_model_load(&p->bm, path);
    if (!s) s = packed_bind(p);
    if (s) {
        nl_biper_packed_free(p);
        return s;
    }
    *out = p;
    return NL_OK;
}

void nl_biper_packed_free(nl_biper_packed *p) {
    if (!p) return;
    nl_bnn_model_free(&p->bm);
    if (p->ps.p) nl_params_free(&p->ps);
    free(p);
}

void nl_biper_packed_channels(const nl_biper_packed *p, int *c1, int *c) { *c1 = p->c1, *c = p->c; }

/* thresholds of layer index li as an nl_bnn_thresh view */
static nl_bnn_thresh thresh_view(const nl_biper_packed *p, int li, int32_t *t, uint8_t *flip) {
    const int32_t *rows = p->bm.layers[li].data;
    for (int64_t o = 0; o < p->c; o++) t[o] = rows[2 * o], flip[o] = (uint8_t)rows[2 * o + 1];
    nl_bnn_thresh th = {p->c, t, flip};
    return th;
}

static nl_status predict_chunk(const nl_biper_packed *p, nl_ctx *cx, const float *x, int64_t b, int32_t *pred, void *work) {
    const int64_t c1 = p->c1, c = p->c, cw1 = nl_bnn_words(c1), cw = nl_bnn_words(c), K4 = 9 * c;
    nl_ctx_reset(cx);
    /* L1 on the engine: [b, c1, 14, 14] float, then packed channels-last [b, 14, 14, cw1] */
    nl_var *h = nl_reshape(cx, nl_input(cx, nl_tensor_wrap((void *)x, NL_F32, 2, (int64_t[]){b, 784})), 4, (int64_t[]){b, 1, 28, 28});
    h = nl_maxpool2d(cx, nl_batchnorm(cx, nl_conv2d(cx, h, p->w1, NULL, 1, 1), p->g1, p->b1, p->rm1, p->rv1, 0.1, 1e-5, 0), 2, 2, 0);
    nl_tensor ht = h ? nl_contig(cx, &h->val) : (nl_tensor){0};
    if (!ht.data) return nl_last_status() ? nl_last_status() : NL_ENOMEM;
    uint64_t *x1 = work;                          /* [b, 14, 14, cw1] */
    uint64_t *x2 = x1 + b * 196 * cw1;            /* [b, 14, 14, cw] L3's input */
    uint64_t *x3 = x2 + b * 196 * cw;             /* [b, 14, 14, cw] L3's bits before pooling */
    uint64_t *x4 = x3 + b * 196 * cw;             /* [b, 7, 7, cw] L4's input */
    int32_t *sv = (int32_t *)(x4 + b * 49 * cw);  /* [b, 14, 14, c] integer outputs */
    int32_t t[4096];
    uint8_t fl[4096];
    nl_status s = nl_bnn_pack_nchw(ht.data, b, c1, 14, 14, x1);
    nl_bnn_conv_geom g = {b, 14, 14, c1, c, 3, 3, 1, 1, 1, 1};
    nl_bnn_thresh th;
    if (!s) s = nl_bnn_conv2d(&g, x1, p->bm.layers[3].data, sv);          /* L2 */
    if (!s) th = thresh_view(p, 4, t, fl), s = nl_bnn_threshold_pack(sv, b * 196, &th, x2);
    g.c = c;
    if (!s) s = nl_bnn_conv2d(&g, x2, p->bm.layers[5].data, sv);          /* L3 */
    if (!s) th = thresh_view(p, 6, t, fl), s = nl_bnn_threshold_pack(sv, b * 196, &th, x3);
    if (!s) s = nl_bnn_maxpool_bits(x3, b, 14, 14, c, 2, 2, 0, x4);
    g.h = g.w = 7;
    if (!s) s = nl_bnn_conv2d(&g, x4, p->bm.layers[8].data, sv);          /* L4: sv [b, 7, 7, c] */
    if (s) return s;
    /* f4 at every output, max-pooled 2x2 to [b, c, 3, 3] (NCHW, the classifier's flatten order) */
    nl_var *feat = nl_new(cx, NL_F32, 2, (int64_t[]){b, 9 * c});
    if (!feat) return nl_last_status();
    const float *f4 = p->bm.layers[9].data;
    float *fp = feat->val.data;
    for (int64_t i = 0; i < b; i++)
        for (int64_t o = 0; o < c; o++)
            for (int64_t y = 0; y < 3; y++)
                for (int64_t z = 0; z < 3; z++) {
                    float mx = 0;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dz = 0; dz < 2; dz++) {
                            int32_t v = sv[((i * 7 + 2 * y + dy) * 7 + 2 * z + dz) * c + o];
                            float f = f4[o * (2 * K4 + 1) + v + K4];
                            if ((dy | dz) == 0 || f > mx) mx = f;
                        }
                    fp[((i * c + o) * 3 + y) * 3 + z] = mx;
                }
    nl_var *lg = nl_linear(cx, feat, p->fc_w, p->fc_b);
    if (!lg) return nl_last_status();
    const float *lp = lg->val.data;
    for (int64_t r = 0; r < b; r++) {
        int best = 0;
        for (int k = 1; k < 10; k++)
            if (lp[r * 10 + k] > lp[r * 10 + best]) best = k;
        pred[r] = best;
    }
    return NL_OK;
}

nl_status nl_biper_packed_predict(const nl_biper_packed *p, const float *x, int64_t n, int32_t *pred) {
    const int64_t c1 = p->c1, c = p->c, B = BP_CHUNK;
    const size_t words = (size_t)(B * 196 * (nl_bnn_words(c1) + 2 * nl_bnn_words(c)) + B * 49 * nl_bnn_words(c));
    void *work = malloc(words * 8 + (size_t)(B * 196 * c) * 4);
    nl_ctx *cx = nl_ctx_new((size_t)1 << 24, 0);
    nl_status s = !work || !cx ? nl_set_error(NL_ENOMEM, "biper packed predict: out of memory") : NL_OK;
    if (cx) nl_set_grad_enabled(cx, 0);
    for (int64_t i = 0; i < n && !s; i += B) s = predict_chunk(p, cx, x + i * 784, n - i < B ? n - i : B, pred + i, work);
    if (cx) nl_ctx_free(cx);
    free(work);
    return s;
}
