/* Data-free compensation of pruned / quantised channels (UDFC closed form, Neuron Merging, random control). */
#include "compress/compensate.h"
#include "nnlab/linalg.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_compensate_opts nl_compensate_defaults(void) {
    nl_compensate_opts o;
    memset(&o, 0, sizeof o);
    o.symmetric = 1;
    o.prune_comp = NL_COMP_UDFC;
    o.quant_comp = 1;
    o.rho = 1.0 - 2.0 / M_PI;
    o.nm_threshold = 0.45;
    o.require_bn = 1;
    return o;
}

nl_status nl_compensate_ridge(const double *A, int64_t n, int64_t d, const double *T, int64_t m, const double *lam, double *S) {
    if (n < 1 || m < 1) return NL_OK;
    double *K = malloc((size_t)(n * n + n) * sizeof *K); /* [n, n] then rhs [n] */
    if (!K) return nl_set_error(NL_ENOMEM, "compensate: out of memory");
    double tr = 0, lsum = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++) {
            double a = 0;
            for (int64_t k = 0; k < d; k++) a += A[i * d + k] * A[j * d + k];
            K[i * n + j] = K[j * n + i] = a;
            if (i == j) tr += a;
        }
    for (int64_t i = 0; i < n; i++) lsum += lam[i];
    double jitter = lsum > 0 ? 0 : 1e-12 * (tr > 0 ? tr / (double)n : 1.0);
    for (int64_t i = 0; i < n; i++) K[i * n + i] += lam[i] + jitter;
    nl_status s = nl_cholesky_inplace(K, n);
    if (s) {
        free(K);
        return s;
    }
    double *r = K + n * n; /* [n] */
    for (int64_t t = 0; t < m; t++) {
        const double *v = T + t * d;
        for (int64_t i = 0; i < n; i++) {
            double a = 0;
            for (int64_t k = 0; k < d; k++) a += A[i * d + k] * v[k];
            r[i] = a;
        }
        for (int64_t i = 0; i < n; i++) { /* L y = r */
            double a = r[i];
            for (int64_t j = 0; j < i; j++) a -= K[i * n + j] * r[j];
            r[i] = a / K[i * n + i];
        }
        for (int64_t i = n - 1; i >= 0; i--) { /* L^T s = y */
            double a = r[i];
            for (int64_t j = i + 1; j < n; j++) a -= K[j * n + i] * r[j];
            r[i] = a / K[i * n + i];
        }
        memcpy(S + t * n, r, (size_t)n * sizeof *r);
    }
    free(K);
    return NL_OK;
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One unit: fold, quantise the producer, coefficients, consumer update, then prune into *next. */
static nl_status compress_unit(nl_model *cur, int ui, const nl_compensate_opts *o, nl_rng *rng, nl_model *next) {
    nl_compress_unit us[NL_COMPRESS_MAX_UNITS];
    int nu;
    nl_status s = nl_compress_units(cur, us, &nu);
    if (s) return s;
    const nl_compress_unit *u = &us[ui];
    nl_model_layer *P = &cur->layer[u->prod], *B = u->bn >= 0 ? &cur->layer[u->bn] : NULL, *C = &cur->layer[u->cons];
    const int64_t W = u->width, f = u->fan_in, d = f + 1, S_ = u->spatial, CO = u->cons_out;
    int64_t nk = 0, np = 0;
    int64_t *keep = malloc((size_t)W * sizeof *keep);     /* [W] kept channels, ascending */
    int64_t *pruned = malloc((size_t)W * sizeof *pruned); /* [W] pruned channels */
    double *Wf = malloc((size_t)(W * f) * sizeof *Wf);    /* [W, f] full-precision producer rows */
    double *V = malloc((size_t)(W * d) * sizeof *V);      /* [W, d] folded vectors v_k */
    double *Vq = malloc((size_t)(W * d) * sizeof *Vq);    /* [W, d] folded vectors of the quantised rows */
    double *a = malloc((size_t)W * sizeof *a);            /* [W] BN slope gamma / sigma */
    double *self = malloc((size_t)W * sizeof *self);      /* [W] 1 + s'_k */
    double *x = malloc((size_t)W * sizeof *x);            /* [W] one consumer column position over channels */
    double *M = NULL;                                     /* [np, nk] pruning coefficients */
    double *A = malloc((size_t)(W * d) * sizeof *A);      /* [nk, d] kept rows of Vq */
    double *T = malloc((size_t)(W * d) * sizeof *T);      /* [np, d] pruned rows of V */
    double *lam = malloc((size_t)W * sizeof *lam);        /* [nk] */
    if (!keep || !pruned || !Wf || !V || !Vq || !a || !self || !x || !A || !T || !lam) {
        s = nl_set_error(NL_ENOMEM, "compensate: out of memory");
        goto done;
    }
    if ((s = nl_compress_l1_keep(cur, ui, o->ratio, keep, &nk))) goto done;
    for (int64_t c = 0, k = 0; c < W; c++) {
        if (k < nk && keep[k] == c) k++;
        else pruned[np++] = c;
    }
    if (!(M = malloc((size_t)(np * nk + 1) * sizeof *M))) {
        s = nl_set_error(NL_ENOMEM, "compensate: out of memory");
        goto done;
    }
    for (int64_t c = 0; c < W; c++) {
        double sl = 1, sh = P->b ? nl_compress_get(cur, P->b, c) : 0;
        if (B) {
            double g = nl_compress_get(cur, B->w, c), be = nl_compress_get(cur, B->b, c);
            double mu = nl_compress_get(cur, B->rm, c), var = nl_compress_get(cur, B->rv, c);
            sl = g / sqrt(var + cur->cfg.bn_eps);
            sh = be + (sh - mu) * sl;
        }
        a[c] = sl;
        double *w = Wf + c * f;
        for (int64_t k = 0; k < f; k++) w[k] = nl_compress_get(cur, P->w, c * f + k);
        for (int64_t k = 0; k < f; k++) V[c * d + k] = sl * w[k];
        V[c * d + f] = sh;
        memcpy(Vq + c * d, V + c * d, (size_t)d * sizeof *V);
        if (o->bits > 0) { /* quantise the producer's row (w, before the BN slope) and store it */
            double *q = Vq + c * d;
            memcpy(q, w, (size_t)f * sizeof *q);
            nl_compress_quant_row(q, f, o->bits, o->symmetric, NULL);
            for (int64_t k = 0; k < f; k++) {
                nl_compress_put(cur, P->w, c * f + k, q[k]);
                q[k] *= sl;
            }
        }
        self[c] = 1;
        if (o->bits > 0 && o->quant_comp) { /* a_k ~ (1 + s') aq_k: s' = <v - vq, vq> / |vq|^2 */
            double nq = dot(Vq + c * d, Vq + c * d, d), sp = 0;
            if (nq > 0) {
                for (int64_t k = 0; k < d; k++) sp += (V[c * d + k] - Vq[c * d + k]) * Vq[c * d + k];
                sp /= nq;
            }
            if (o->prune_comp == NL_COMP_RANDOM) sp = (nl_rng_uniform(rng) < 0.5 ? -1 : 1) * fabs(sp);
            self[c] = 1 + sp;
        }
    }
    memset(M, 0, (size_t)(np * nk) * sizeof *M);
    if (np > 0 && (o->prune_comp == NL_COMP_UDFC || o->prune_comp == NL_COMP_RANDOM)) {
        for (int64_t k = 0; k < nk; k++) {
            memcpy(A + k * d, Vq + keep[k] * d, (size_t)d * sizeof *A);
            lam[k] = o->rho * dot(A + k * d, A + k * d, d) + o->lambda;
        }
        for (int64_t p = 0; p < np; p++) memcpy(T + p * d, V + pruned[p] * d, (size_t)d * sizeof *T);
        if ((s = nl_compensate_ridge(A, nk, d, T, np, lam, M))) goto done;
        if (o->prune_comp == NL_COMP_RANDOM)
            for (int64_t p = 0; p < np; p++) {
                double *m = M + p * nk, r = sqrt(dot(m, m, nk)), g2 = 0;
                for (int64_t k = 0; k < nk; k++) m[k] = nl_rng_normal(rng), g2 += m[k] * m[k];
                for (int64_t k = 0; k < nk; k++) m[k] *= g2 > 0 ? r / sqrt(g2) : 0;
            }
    } else if (np > 0 && o->prune_comp == NL_COMP_NM) {
        for (int64_t p = 0; p < np; p++) {
            const double *wc = Wf + pruned[p] * f;
            double nc = sqrt(dot(wc, wc, f)), best = -2;
            int64_t bj = -1;
            for (int64_t k = 0; k < nk; k++) {
                const double *wj = Wf + keep[k] * f;
                double nj = sqrt(dot(wj, wj, f)), cs = nc > 0 && nj > 0 ? dot(wc, wj, f) / (nc * nj) : -2;
                if (cs > best) best = cs, bj = k;
            }
            if (bj >= 0 && best >= o->nm_threshold && a[keep[bj]] != 0) {
                const double *wj = Wf + keep[bj] * f;
                M[p * nk + bj] = nc / sqrt(dot(wj, wj, f)) * a[pruned[p]] / a[keep[bj]];
            }
        }
    }
    /* consumer columns: W'_j = (1 + s'_j) W_j + sum_c s^(c)_j W_c, for every output o and spatial position t */
    for (int64_t oo = 0; oo < CO; oo++)
        for (int64_t t = 0; t < S_; t++) {
            int64_t base = oo * W * S_ + t;
            for (int64_t c = 0; c < W; c++) x[c] = nl_compress_get(cur, C->w, base + c * S_);
            for (int64_t k = 0; k < nk; k++) {
                double v = self[keep[k]] * x[keep[k]];
                for (int64_t p = 0; p < np; p++) v += M[p * nk + k] * x[pruned[p]];
                nl_compress_put(cur, C->w, base + keep[k] * S_, v);
            }
        }
    s = nl_compress_prune(cur, ui, keep, nk, next);
done:
    free(keep), free(pruned), free(Wf), free(V), free(Vq), free(a), free(self), free(x), free(M), free(A), free(T), free(lam);
    return s;
}

nl_status nl_compensate(const nl_model *src, const nl_compensate_opts *o, nl_model *dst) {
    memset(dst, 0, sizeof *dst);
    nl_status s = nl_compress_check_ratio(o->ratio);
    if (s) return s;
    if (o->bits != 0 && (s = nl_compress_check_bits(o->bits))) return s;
    if (o->require_bn && !src->cfg.batchnorm)
        return nl_set_error(NL_EINVAL, "UDFC compensation needs BatchNorm after the compressed layers (it folds BN into "
                                       "each channel's vector); this %s has none (batchnorm = 0)", nl_model_kind_name(src->cfg.kind));
    if (!(o->rho >= 0) || !(o->lambda >= 0)) return nl_set_error(NL_EINVAL, "compensate: rho and lambda must be >= 0");
    nl_compress_unit us[NL_COMPRESS_MAX_UNITS];
    int nu;
    if ((s = nl_compress_units(src, us, &nu))) return s;
    nl_model cur;
    if ((s = nl_compress_clone(src, &cur))) return s;
    nl_rng rng;
    nl_rng_init(&rng, o->seed, 0xC0FFULL << 32);
    for (int i = 0; i < nu && !s; i++) {
        nl_model next;
        s = compress_unit(&cur, i, o, &rng, &next);
        if (!s) {
            nl_model_free(&cur);
            cur = next;
        }
    }
    if (!s && o->bits > 0) { /* the readout: quantised, nothing after it to compensate in */
        nl_var *w = NULL;
        for (int l = 0; l < cur.n_layers; l++)
            if (!cur.layer[l].rm) w = cur.layer[l].w;
        int64_t rows = w->val.shape[0], row = nl_tensor_numel(&w->val) / rows;
        double *buf = malloc((size_t)row * sizeof *buf); /* [row] */
        if (!buf) s = nl_set_error(NL_ENOMEM, "compensate: out of memory");
        for (int64_t r = 0; !s && r < rows; r++) {
            for (int64_t k = 0; k < row; k++) buf[k] = nl_compress_get(&cur, w, r * row + k);
            nl_compress_quant_row(buf, row, o->bits, o->symmetric, NULL);
            for (int64_t k = 0; k < row; k++) nl_compress_put(&cur, w, r * row + k, buf[k]);
        }
        free(buf);
    }
    if (s) {
        nl_model_free(&cur);
        return s;
    }
    *dst = cur;
    return NL_OK;
}
