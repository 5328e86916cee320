/* Structured channel pruning of an nl_model: units, L1 selection, gathering rows / columns into a smaller model. */
#include "compress/compress.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

double nl_compress_get(const nl_model *m, const nl_var *v, int64_t i) {
    (void)m;
    return v->val.dtype == NL_F32 ? (double)((const float *)v->val.data)[i] : ((const double *)v->val.data)[i];
}

void nl_compress_put(nl_model *m, nl_var *v, int64_t i, double x) {
    (void)m;
    if (v->val.dtype == NL_F32) ((float *)v->val.data)[i] = (float)x;
    else ((double *)v->val.data)[i] = x;
}

static int is_bn(const nl_model_layer *L) { return L->rm != NULL; }

nl_status nl_compress_units(const nl_model *m, nl_compress_unit *u, int *n) {
    *n = 0;
    int last = -1; /* the readout: last weight layer */
    for (int l = 0; l < m->n_layers; l++)
        if (!is_bn(&m->layer[l])) last = l;
    for (int l = 0; l < m->n_layers; l++) {
        const nl_model_layer *L = &m->layer[l];
        if (is_bn(L) || l == last) continue;
        if (*n >= NL_COMPRESS_MAX_UNITS) return nl_set_error(NL_EINVAL, "compress: more than %d prunable layers", NL_COMPRESS_MAX_UNITS);
        nl_compress_unit *x = &u[(*n)++];
        memset(x, 0, sizeof *x);
        x->prod = l;
        x->conv = L->w->val.ndim == 4;
        x->bn = (l + 1 < m->n_layers && is_bn(&m->layer[l + 1])) ? l + 1 : -1;
        x->cons = x->bn >= 0 ? l + 2 : l + 1;
        x->width = L->w->val.shape[0];
        x->fan_in = nl_tensor_numel(&L->w->val) / x->width;
        const nl_tensor *cw = &m->layer[x->cons].w->val;
        x->cons_out = cw->shape[0];
        x->spatial = cw->ndim == 4 ? cw->shape[2] * cw->shape[3] : cw->shape[1] / x->width;
        if (cw->ndim == 2 && cw->shape[1] % x->width)
            return nl_set_error(NL_ESHAPE, "compress: layer %d has %lld inputs, not a multiple of %lld channels", x->cons,
                                (long long)cw->shape[1], (long long)x->width);
    }
    return NL_OK;
}

static nl_param *param_of(nl_var *v) { return (nl_param *)((char *)v - offsetof(nl_param, var)); }

nl_status nl_compress_clone(const nl_model *src, nl_model *dst) {
    nl_status s = nl_model_init(dst, &src->cfg, 0);
    if (s) return s;
    size_t es = src->cfg.dtype == NL_F32 ? sizeof(float) : sizeof(double);
    memcpy(dst->ps.data, src->ps.data, (size_t)src->ps.total * es);
    for (int i = 0; i < src->ps.n; i++) {
        nl_param *a = src->ps.p[i], *b = dst->ps.p[i];
        b->lr_mult = a->lr_mult, b->wd_mult = a->wd_mult, b->fwd_mult = a->fwd_mult, b->group = a->group;
    }
    dst->dropout_rng = src->dropout_rng;
    return NL_OK;
}

nl_status nl_compress_check_ratio(double ratio) {
    if (!(ratio >= 0.0 && ratio < 1.0))
        return nl_set_error(NL_EINVAL, "pruning ratio %g is outside [0, 1) (the fraction of channels removed)", ratio);
    return NL_OK;
}

typedef struct {
    double v;
    int64_t i;
} scored;

static int by_score_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return x->i < y->i ? -1 : x->i > y->i; /* ties: lower index first */
}

static int by_index(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

nl_status nl_compress_l1_keep(const nl_model *m, int unit, double ratio, int64_t *keep, int64_t *n_keep) {
    nl_status s = nl_compress_check_ratio(ratio);
    if (s) return s;
    nl_compress_unit u[NL_COMPRESS_MAX_UNITS];
    int n;
    if ((s = nl_compress_units(m, u, &n))) return s;
    if (unit < 0 || unit >= n) return nl_set_error(NL_EINVAL, "compress: unit %d does not exist (the model has %d)", unit, n);
    const nl_compress_unit *x = &u[unit];
    const nl_var *w = m->layer[x->prod].w;
    scored *sc = malloc((size_t)x->width * sizeof *sc); /* [width] */
    if (!sc) return nl_set_error(NL_ENOMEM, "compress: out of memory");
    for (int64_t c = 0; c < x->width; c++) {
        double a = 0;
        for (int64_t k = 0; k < x->fan_in; k++) a += fabs(nl_compress_get(m, w, c * x->fan_in + k));
        sc[c].v = a;
        sc[c].i = c;
    }
    qsort(sc, (size_t)x->width, sizeof *sc, by_score_desc);
    int64_t nk = x->width - (int64_t)floor(ratio * (double)x->width + 1e-9);
    if (nk < 1) nk = 1;
    for (int64_t i = 0; i < nk; i++) keep[i] = sc[i].i;
    qsort(keep, (size_t)nk, sizeof *keep, by_index);
    *n_keep = nk;
    free(sc);
    return NL_OK;
}

static void copy_all(nl_model *dm, nl_var *d, const nl_model *sm, const nl_var *s) {
    for (int64_t i = 0; i < nl_tensor_numel(&d->val); i++) nl_compress_put(dm, d, i, nl_compress_get(sm, s, i));
}

/* d[k * row + t] = s[keep[k] * row + t] */
static void gather_rows(nl_model *dm, nl_var *d, const nl_model *sm, const nl_var *s, const int64_t *keep, int64_t nk, int64_t row) {
    for (int64_t k = 0; k < nk; k++)
        for (int64_t t = 0; t < row; t++) nl_compress_put(dm, d, k * row + t, nl_compress_get(sm, s, keep[k] * row + t));
}

nl_status nl_compress_prune(const nl_model *src, int unit, const int64_t *keep, int64_t n_keep, nl_model *dst) {
    memset(dst, 0, sizeof *dst);
    nl_compress_unit u[NL_COMPRESS_MAX_UNITS];
    int n;
    nl_status s = nl_compress_units(src, u, &n);
    if (s) return s;
    if (unit < 0 || unit >= n) return nl_set_error(NL_EINVAL, "compress: unit %d does not exist (the model has %d)", unit, n);
    const nl_compress_unit *x = &u[unit];
    if (n_keep < 1 || n_keep > x->width) return nl_set_error(NL_EINVAL, "compress: keeping %lld of %lld channels", (long long)n_keep, (long long)x->width);
    for (int64_t i = 0; i < n_keep; i++)
        if (keep[i] < 0 || keep[i] >= x->width || (i > 0 && keep[i] <= keep[i - 1]))
            return nl_set_error(NL_EINVAL, "compress: kept channel list must be strictly ascending in [0, %lld)", (long long)x->width);
    nl_model_config cfg = src->cfg;
    if (cfg.kind == NL_MODEL_MLP) cfg.sizes[unit + 1] = n_keep;
    else if (unit < cfg.n_blocks) cfg.channels[unit] = (int)n_keep;
    else cfg.hidden = n_keep;
    if ((s = nl_model_init(dst, &cfg, 0))) return s;
    if (dst->n_layers != src->n_layers) {
        nl_model_free(dst);
        return nl_set_error(NL_ESTATE, "compress: pruned model has %d layers, expected %d", dst->n_layers, src->n_layers);
    }
    for (int l = 0; l < src->n_layers; l++) {
        const nl_model_layer *S = &src->layer[l];
        nl_model_layer *D = &dst->layer[l];
        const nl_var *sv[4] = {S->w, S->b, S->rm, S->rv};
        nl_var *dv[4] = {D->w, D->b, D->rm, D->rv};
        for (int t = 0; t < 4; t++) {
            if (!dv[t]) continue;
            if (l == x->prod || l == x->bn) gather_rows(dst, dv[t], src, sv[t], keep, n_keep, t == 0 && l == x->prod ? x->fan_in : 1);
            else if (l == x->cons && t == 0) {
                int64_t S_ = x->spatial, wi = x->width * S_, wo = n_keep * S_;
                for (int64_t o = 0; o < x->cons_out; o++)
                    for (int64_t k = 0; k < n_keep; k++)
                        for (int64_t q = 0; q < S_; q++)
                            nl_compress_put(dst, dv[t], o * wo + k * S_ + q, nl_compress_get(src, sv[t], o * wi + keep[k] * S_ + q));
            } else copy_all(dst, dv[t], src, sv[t]);
            nl_param *a = param_of((nl_var *)sv[t]), *b = param_of(dv[t]);
            b->lr_mult = a->lr_mult, b->wd_mult = a->wd_mult, b->fwd_mult = a->fwd_mult, b->group = a->group;
        }
    }
    dst->dropout_rng = src->dropout_rng;
    return NL_OK;
}

nl_status nl_compress_prune_ratio(const nl_model *src, double ratio, nl_model *dst) {
    memset(dst, 0, sizeof *dst);
    nl_status s = nl_compress_check_ratio(ratio);
    if (s) return s;
    nl_compress_unit u[NL_COMPRESS_MAX_UNITS];
    int n;
    if ((s = nl_compress_units(src, u, &n))) return s;
    nl_model cur;
    if ((s = nl_compress_clone(src, &cur))) return s;
    for (int i = 0; i < n && !s; i++) {
        int64_t *keep = malloc((size_t)u[i].width * sizeof *keep); /* [width] */
        int64_t nk;
        nl_model next;
        if (!keep) s = nl_set_error(NL_ENOMEM, "compress: out of memory");
        if (!s) s = nl_compress_l1_keep(&cur, i, ratio, keep, &nk);
        if (!s) s = nl_compress_prune(&cur, i, keep, nk, &next);
        free(keep);
        if (!s) {
            nl_model_free(&cur);
            cur = next;
        }
    }
    if (s) {
        nl_model_free(&cur);
        return s;
    }
    *dst = cur;
    return NL_OK;
}
