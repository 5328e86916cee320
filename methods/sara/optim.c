/* SaRA's sparse AdamW with the nuclear-norm penalty and the progressive re-selection (sara.h). */
#include "sara/sara.h"
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_sara_config nl_sara_defaults(void) {
    nl_sara_config c;
    memset(&c, 0, sizeof c);
    c.fraction = 0.1;
    c.lr = 1e-3;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.weight_decay = 1e-2;
    c.lambda_rank = 5e-4;
    c.min_rank_dim = 8;
    c.progressive_step = 0;
    c.seed = 1;
    return c;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int64_t entries(const nl_params *ps) {
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++) n += ps->p[i]->numel;
    return n;
}

double nl_sara_threshold(const nl_params *ps, double fraction) {
    int64_t n = entries(ps), j = 0;
    if (n == 0) return 0;
    float *a = malloc((size_t)n * sizeof(float)); /* (n) |theta| of every entry */
    if (!a) return NAN;
    for (int i = 0; i < ps->n; i++) {
        const float *x = ps->p[i]->var.val.data;
        for (int64_t k = 0; k < ps->p[i]->numel; k++) a[j++] = fabsf(x[k]);
    }
    qsort(a, (size_t)n, sizeof(float), cmp_float);
    int64_t k = (int64_t)floor(fraction * (double)n + 1e-9);
    if (k >= n) k = n - 1;
    double t = a[k];
    free(a);
    return t;
}

/* (re)build idx and seg from `keep(offset)`: the entries of the current list (or all, first time) with |theta| < tau */
static nl_status select_entries(nl_sara *o, int first) {
    nl_params *ps = o->ps;
    const float *x = ps->data;
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        int64_t begin = n;
        if (first) {
            for (int64_t k = 0; k < p->numel; k++)
                if (fabsf(x[p->offset + k]) < o->tau) o->idx[n++] = (int32_t)(p->offset + k);
        } else {
            for (int64_t j = o->seg[i]; j < o->seg[i + 1]; j++)
                if (fabsf(x[o->idx[j]]) < o->tau) o->idx[n++] = o->idx[j];
        }
        o->seg[i] = begin;
    }
    o->seg[ps->n] = n;
    o->n_sel = n;
    memset(o->m, 0, (size_t)n * sizeof(float));
    memset(o->v, 0, (size_t)n * sizeof(float));
    o->step = 0;
    return NL_OK;
}

nl_status nl_sara_init(nl_sara *o, nl_params *ps, const nl_sara_config *cfg) {
    memset(o, 0, sizeof *o);
    if (!(cfg->fraction > 0 && cfg->fraction < 1))
        return nl_set_error(NL_EINVAL, "sara: threshold fraction %g outside (0, 1)", cfg->fraction);
    if (!ps || ps->dtype != NL_F32 || !ps->data) return nl_set_error(NL_EINVAL, "sara: an allocated f32 parameter store is required");
    if (ps->total > INT32_MAX) return nl_set_error(NL_EINVAL, "sara: store of %lld entries exceeds int32 offsets", (long long)ps->total);
    if (!(cfg->lr >= 0) || !(cfg->lambda_rank >= 0) || !(cfg->weight_decay >= 0) || !(cfg->beta1 >= 0 && cfg->beta1 < 1) ||
        !(cfg->beta2 >= 0 && cfg->beta2 < 1) || !(cfg->eps >= 0))
        return nl_set_error(NL_EINVAL, "sara: lr, lambda_rank, weight_decay, eps must be >= 0 and betas in [0, 1)");
    o->cfg = *cfg;
    o->ps = ps;
    o->tau = nl_sara_threshold(ps, cfg->fraction);
    if (!(o->tau == o->tau)) return nl_set_error(NL_ENOMEM, "sara: out of memory");
    int64_t cap = (int64_t)floor(cfg->fraction * (double)entries(ps)) + 1;
    o->idx = malloc((size_t)cap * sizeof(int32_t));
    o->m = malloc((size_t)cap * sizeof(float));
    o->v = malloc((size_t)cap * sizeof(float));
    o->seg = calloc((size_t)ps->n + 1, sizeof(int64_t));
    o->rank_ids = calloc((size_t)ps->n + 1, sizeof(int));
    if (!o->idx || !o->m || !o->v || !o->seg || !o->rank_ids) {
        nl_sara_free(o);
        return nl_set_error(NL_ENOMEM, "sara: out of memory");
    }
    select_entries(o, 1);
    if (o->n_sel == 0) {
        nl_sara_free(o);
        return nl_set_error(NL_EINVAL, "sara: no entry has |theta| below the threshold %g (fraction %g)", o->tau, cfg->fraction);
    }
    /* shrink to the selection (the allocation is what nl_sara_state_bytes reports) */
    int32_t *i2 = realloc(o->idx, (size_t)o->n_sel * sizeof(int32_t));
    float *m2 = realloc(o->m, (size_t)o->n_sel * sizeof(float)), *v2 = realloc(o->v, (size_t)o->n_sel * sizeof(float));
    if (i2) o->idx = i2;
    if (m2) o->m = m2;
    if (v2) o->v = v2;
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        if (p->var.val.ndim < 2) continue;
        int64_t rows = p->var.val.shape[0], cols = p->numel / rows;
        if ((rows < cols ? rows : cols) >= cfg->min_rank_dim) o->rank_ids[o->n_rank++] = i;
    }
    nl_rng_init(&o->rng, cfg->seed, 0x5a7a);
    return NL_OK;
}

void nl_sara_free(nl_sara *o) {
    if (!o) return;
    free(o->idx);
    free(o->m);
    free(o->v);
    free(o->seg);
    free(o->rank_ids);
    memset(o, 0, sizeof *o);
}

int64_t nl_sara_state_bytes(const nl_sara *o) {
    return o->n_sel * (int64_t)(sizeof(int32_t) + 2 * sizeof(float)) + (int64_t)(o->ps ? o->ps->n + 1 : 0) * (int64_t)(sizeof(int64_t) + sizeof(int));
}

nl_status nl_sara_nuclear(const float *w, const float *mask, int64_t rows, int64_t cols, double *nuc, double *grad) {
    int64_t k = rows < cols ? rows : cols;
    double *a = malloc((size_t)(rows * cols) * sizeof(double));   /* (rows, cols) w (.) mask, destroyed by dgesdd */
    double *s = malloc((size_t)k * sizeof(double));               /* (k) singular values */
    double *u = malloc((size_t)(rows * k) * sizeof(double));      /* (rows, k) */
    double *vt = malloc((size_t)(k * cols) * sizeof(double));     /* (k, cols) */
    nl_status st = NL_OK;
    if (!a || !s || !u || !vt) st = nl_set_error(NL_ENOMEM, "sara: out of memory (nuclear norm of %lldx%lld)", (long long)rows, (long long)cols);
    if (!st) {
        for (int64_t j = 0; j < rows * cols; j++) a[j] = mask ? (double)w[j] * mask[j] : (double)w[j];
        lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)rows, (lapack_int)cols, a, (lapack_int)cols, s, u,
                                         (lapack_int)k, vt, (lapack_int)cols);
        if (info != 0) st = nl_set_error(NL_ELINALG, "sara: SVD of the masked %lldx%lld matrix failed (dgesdd info %d)", (long long)rows,
                                         (long long)cols, (int)info);
    }
    if (!st) {
        double sum = 0, cut = 1e-12 * (k ? s[0] : 0);
        for (int64_t j = 0; j < k; j++) sum += s[j];
        *nuc = sum;
        if (grad) {
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols; c++) {
                    double g = 0;
                    for (int64_t j = 0; j < k && s[j] > cut; j++) g += u[r * k + j] * vt[j * cols + c];
                    grad[r * cols + c] = mask ? g * mask[r * cols + c] : g;
                }
        }
    }
    free(a);
    free(s);
    free(u);
    free(vt);
    return st;
}

/* lambda (U V^T) (.) M of a random eligible matrix into gr (n_sel, aligned with idx) */
static nl_status rank_penalty(nl_sara *o, float *gr) {
    o->last_nuclear = 0;
    if (o->cfg.lambda_rank == 0 || o->n_rank == 0) return NL_OK;
    int pi = o->rank_ids[nl_rng_below(&o->rng, o->n_rank)];
    const nl_param *p = o->ps->p[pi];
    int64_t rows = p->var.val.shape[0], cols = p->numel / rows, b = o->seg[pi], e = o->seg[pi + 1];
    if (e == b) return NL_OK; /* nothing of it is trainable: W (.) M = 0 */
    float *mask = calloc((size_t)p->numel, sizeof(float)); /* (rows, cols) */
    double *g = malloc((size_t)p->numel * sizeof(double)); /* (rows, cols) */
    if (!mask || !g) {
        free(mask);
        free(g);
        return nl_set_error(NL_ENOMEM, "sara: out of memory");
    }
    for (int64_t j = b; j < e; j++) mask[o->idx[j] - p->offset] = 1;
    nl_status s = nl_sara_nuclear(p->var.val.data, mask, rows, cols, &o->last_nuclear, g);
    if (!s)
        for (int64_t j = b; j < e; j++) gr[j] += (float)(o->cfg.lambda_rank * g[o->idx[j] - p->offset]);
    free(mask);
    free(g);
    return s;
}

nl_status nl_sara_step(nl_sara *o) {
    const float *grad = o->ps->grad; /* (total) the engine's dense gradient */
    float *x = o->ps->data;
    for (int i = 0; i < o->ps->n; i++)
        for (int64_t j = o->seg[i]; j < o->seg[i + 1]; j++)
            if (!isfinite(grad[o->idx[j]]))
                return nl_set_error(NL_ENONFINITE, "sara: non-finite gradient in '%s'", o->ps->p[i]->name);
    float *gr = malloc((size_t)(o->n_sel ? o->n_sel : 1) * sizeof(float)); /* (n_sel) gathered gradient */
    if (!gr) return nl_set_error(NL_ENOMEM, "sara: out of memory");
    for (int64_t j = 0; j < o->n_sel; j++) gr[j] = grad[o->idx[j]];
    nl_status s = rank_penalty(o, gr);
    if (s) {
        free(gr);
        return s;
    }
    double t = (double)(o->step + 1), lr = o->cfg.lr, b1 = o->cfg.beta1, b2 = o->cfg.beta2;
    double step_size = lr / (1 - pow(b1, t)), bc2 = sqrt(1 - pow(b2, t)), decay = 1 - lr * o->cfg.weight_decay;
    for (int64_t j = 0; j < o->n_sel; j++) {
        double g = gr[j], m = b1 * o->m[j] + (1 - b1) * g, v = b2 * o->v[j] + (1 - b2) * g * g;
        double th = (double)x[o->idx[j]] * decay;
        x[o->idx[j]] = (float)(th - step_size * m / (sqrt(v) / bc2 + o->cfg.eps));
        o->m[j] = (float)m;
        o->v[j] = (float)v;
    }
    free(gr);
    o->step++;
    o->total_steps++;
    if (o->cfg.progressive_step > 0 && o->total_steps == o->cfg.progressive_step) return nl_sara_reselect(o);
    return NL_OK;
}

nl_status nl_sara_reselect(nl_sara *o) {
    select_entries(o, 0);
    o->reselected = 1;
    if (o->n_sel > 0) { /* give the dropped entries' state back */
        int32_t *i2 = realloc(o->idx, (size_t)o->n_sel * sizeof(int32_t));
        float *m2 = realloc(o->m, (size_t)o->n_sel * sizeof(float)), *v2 = realloc(o->v, (size_t)o->n_sel * sizeof(float));
        if (i2) o->idx = i2;
        if (m2) o->m = m2;
        if (v2) o->v = v2;
    }
    return NL_OK;
}
