/* Embedding lookup (rows of a table at int32 ids, scatter-add backward) and concatenation along an axis.
 * Both are pure data movement and work for f32 and f64 alike (element size only). */
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include <stdio.h>
#include <string.h>

#define EMB_PAR_MIN 32768 /* elements below which loops stay serial */
#define EMB_COLS 64        /* columns per task in the wide-row embedding backward */

/* ---------------- embedding ---------------- */
typedef struct {
    int32_t *ids;  /* (n) copy of the ids */
    int64_t n, V, D;
} emb_saved;

#define DEF_EMB_BWD(T)                                                                                  \
    /* gt[id] += g[p] for every position p. Each table element receives its terms in position order on  \
     * all three paths, so the result does not depend on the thread count (nor on the path). */         \
    static void emb_bwd_##T(nl_ctx *c, const emb_saved *s, const T *g, T *gt) {                         \
        const int64_t n = s->n, V = s->V, D = s->D;                                                     \
        if (n * D <= EMB_PAR_MIN) { /* small: serial, positions in order */                            \
            for (int64_t p = 0; p < n; p++) {                                                           \
                T *dst = gt + (int64_t)s->ids[p] * D;                                                   \
                const T *src = g + p * D;                                                               \
                for (int64_t k = 0; k < D; k++) dst[k] += src[k];                                       \
            }                                                                                           \
            return;                                                                                     \
        }                                                                                               \
        if (D >= 2 * EMB_COLS) { /* wide rows: one task per block of columns, positions in order */     \
            const int64_t nb = (D + EMB_COLS - 1) / EMB_COLS;                                           \
            _Pragma("omp parallel for schedule(static)")                                                \
            for (int64_t cb = 0; cb < nb; cb++) {                                                       \
                const int64_t k0 = cb * EMB_COLS, k1 = k0 + EMB_COLS < D ? k0 + EMB_COLS : D;           \
                for (int64_t p = 0; p < n; p++) {                                                       \
                    T *dst = gt + (int64_t)s->ids[p] * D;                                               \
                    const T *src = g + p * D;                                                           \
                    _Pragma("omp simd")                                                                 \
                    for (int64_t k = k0; k < k1; k++) dst[k] += src[k];                                 \
                }                                                                                       \
            }                                                                                           \
            return;                                                                                     \
        }                                                                                               \
        /* narrow rows: stable counting sort of positions by id, then one task per id */                \
        int64_t *start = nl_scratch(c, (size_t)(V + 1) * sizeof *start);                                \
        int64_t *order = nl_scratch(c, (size_t)n * sizeof *order);                                      \
        if (!start || !order) return; /* NL_ENOMEM is set; backward reports it */                       \
        memset(start, 0, (size_t)(V + 1) * sizeof *start);                                              \
        for (int64_t p = 0; p < n; p++) start[s->ids[p] + 1]++;                                         \
        for (int64_t v = 0; v < V; v++) start[v + 1] += start[v];                                       \
        for (int64_t p = 0; p < n; p++) order[start[s->ids[p]]++] = p;                                  \
        for (int64_t v = V; v > 0; v--) start[v] = start[v - 1]; /* restore bucket starts */            \
        start[0] = 0;                                                                                   \
        _Pragma("omp parallel for schedule(dynamic, 16)")                                               \
        for (int64_t v = 0; v < V; v++) {                                                               \
            T *dst = gt + v * D;                                                                        \
            for (int64_t q = start[v]; q < start[v + 1]; q++) {                                         \
                const T *src = g + order[q] * D;                                                        \
                for (int64_t k = 0; k < D; k++) dst[k] += src[k];                                       \
            }                                                                                           \
        }                                                                                               \
    }
DEF_EMB_BWD(float)
DEF_EMB_BWD(double)

static void emb_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *gt = nl_grad(c, n->in[0]);
    if (!gt) return;
    const emb_saved *s = n->saved;
    const nl_tensor *g = nl_node_grad_out(n);
    if (g->dtype == NL_F32) emb_bwd_float(c, s, g->data, gt->data);
    else emb_bwd_double(c, s, g->data, gt->data);
}

nl_var *nl_embedding(nl_ctx *c, nl_var *table, const int32_t *ids, int ids_ndim, const int64_t *ids_shape) {
    NL_REQUIRE(table);
    const char *name = "embedding";
    if (table->val.ndim != 2) return nl_op_fail(NL_ESHAPE, name, "table must be [V, D]", table, NULL);
    if (ids_ndim < 0 || ids_ndim > NL_MAXDIM - 1) {
        nl_set_error(NL_ESHAPE, "embedding: ids must have 0..%d dims, got %d", NL_MAXDIM - 1, ids_ndim);
        return NULL;
    }
    if (ids_ndim > 0 && !ids_shape) return nl_op_fail(NL_EINVAL, name, "ids_shape is NULL", table, NULL);
    const int64_t V = table->val.shape[0], D = table->val.shape[1];
    int64_t n = 1, oshape[NL_MAXDIM];
    for (int i = 0; i < ids_ndim; i++) {
        if (ids_shape[i] < 0) {
            nl_set_error(NL_ESHAPE, "embedding: negative ids dimension %lld", (long long)ids_shape[i]);
            return NULL;
        }
        n *= ids_shape[i];
        oshape[i] = ids_shape[i];
    }
    oshape[ids_ndim] = D;
    if (n > 0 && !ids) return nl_op_fail(NL_EINVAL, name, "ids is NULL", table, NULL);
    for (int64_t p = 0; p < n; p++)
        if (ids[p] < 0 || ids[p] >= V) {
            nl_set_error(NL_EINVAL, "embedding: id %d at position %lld out of range [0, %lld)", (int)ids[p], (long long)p, (long long)V);
            return NULL;
        }
    nl_tensor T = nl_contig(c, &table->val);
    if (!T.data) return NULL;
    nl_var *out = nl_op_out(c, T.dtype, ids_ndim + 1, oshape);
    if (!out) return NULL;
    const size_t row = (size_t)D * nl_dtype_size(T.dtype);
    const char *src = T.data;
    char *dst = out->val.data;
    const int par = n * D > EMB_PAR_MIN;
#pragma omp parallel for if (par) schedule(static)
    for (int64_t p = 0; p < n; p++) memcpy(dst + (size_t)p * row, src + (size_t)ids[p] * row, row);
    nl_var *in[1] = {table};
    nl_node *node = nl_op_record(c, name, out, emb_backward, 1, in);
    if (node) {
        emb_saved *s = nl_scratch(c, sizeof *s);
        int32_t *cp = n > 0 ? nl_scratch(c, (size_t)n * sizeof *cp) : NULL;
        if (!s || (n > 0 && !cp)) return NULL;
        if (n > 0) memcpy(cp, ids, (size_t)n * sizeof *cp);
        s->ids = cp;
        s->n = n;
        s->V = V;
        s->D = D;
        node->saved = s;
    }
    return out;
}

/* ---------------- concat ----------------
 * Output viewed as [outer, L] with L = sum of the inputs' row lengths len_k = shape_k[axis] * (product of
 * later dims); input k occupies columns [off_k, off_k + len_k). The node lists at most NL_MAXIN inputs
 * (preferring those that need a gradient); the full list is kept in `saved` and backward uses it, so any
 * number of inputs works. */
typedef struct {
    int n;
    nl_var **xs;       /* (n) inputs */
    int64_t *off, *len; /* (n) */
    int64_t outer, L;
} cat_saved;

static void cat_backward(nl_ctx *c, nl_node *nd) {
    const cat_saved *s = nd->saved;
    const nl_tensor *g = nl_node_grad_out(nd);
    const int f32 = g->dtype == NL_F32;
    const int par = s->outer * s->L > EMB_PAR_MIN;
    for (int k = 0; k < s->n; k++) {
        nl_tensor *gk = nl_grad(c, s->xs[k]);
        if (!gk) continue;
        const int64_t len = s->len[k], off = s->off[k], L = s->L, O = s->outer;
        if (f32) {
            float *d = gk->data;
            const float *src = g->data;
            src += off;
            if (O == 1) {
#pragma omp parallel for simd if (parallel: par) schedule(static)
                for (int64_t j = 0; j < len; j++) d[j] += src[j];
            } else {
#pragma omp parallel for if (par) schedule(static)
                for (int64_t o = 0; o < O; o++)
                    for (int64_t j = 0; j < len; j++) d[o * len + j] += src[o * L + j];
            }
        } else {
            double *d = gk->data;
            const double *src = g->data;
            src += off;
            if (O == 1) {
#pragma omp parallel for simd if (parallel: par) schedule(static)
                for (int64_t j = 0; j < len; j++) d[j] += src[j];
            } else {
#pragma omp parallel for if (par) schedule(static)
                for (int64_t o = 0; o < O; o++)
                    for (int64_t j = 0; j < len; j++) d[o * len + j] += src[o * L + j];
            }
        }
    }
}

nl_var *nl_concat(nl_ctx *c, int n, nl_var *const *xs, int axis) {
    if (n < 1 || !xs) {
        nl_set_error(NL_EINVAL, "concat: need at least one input (n = %d)", n);
        return NULL;
    }
    for (int k = 0; k < n; k++)
        if (!xs[k]) return NULL; /* an earlier op failed */
    const nl_var *x0 = xs[0];
    const int nd = x0->val.ndim;
    if (nd < 1) return nl_op_fail(NL_ESHAPE, "concat", "inputs must have at least one dimension", x0, NULL);
    const int ax = axis < 0 ? axis + nd : axis;
    if (ax < 0 || ax >= nd) {
        char m[64];
        snprintf(m, sizeof m, "axis %d out of range for %d dims", axis, nd);
        return nl_op_fail(NL_ESHAPE, "concat", m, x0, NULL);
    }
    int64_t oshape[NL_MAXDIM];
    for (int i = 0; i < nd; i++) oshape[i] = x0->val.shape[i];
    oshape[ax] = 0;
    for (int k = 0; k < n; k++) {
        const nl_var *x = xs[k];
        char m[96];
        if (x->val.dtype != x0->val.dtype) {
            snprintf(m, sizeof m, "input %d has a different dtype", k);
            return nl_op_fail(NL_EDTYPE, "concat", m, x0, x);
        }
        int ok = x->val.ndim == nd;
        for (int i = 0; ok && i < nd; i++)
            if (i != ax && x->val.shape[i] != x0->val.shape[i]) ok = 0;
        if (!ok) {
            snprintf(m, sizeof m, "input %d differs from input 0 outside axis %d", k, ax);
            return nl_op_fail(NL_ESHAPE, "concat", m, x0, x);
        }
        oshape[ax] += x->val.shape[ax];
    }
    int64_t outer = 1, post = 1;
    for (int i = 0; i < ax; i++) outer *= oshape[i];
    for (int i = ax + 1; i < nd; i++) post *= oshape[i];
    const int64_t L = oshape[ax] * post;
    int64_t *off = nl_scratch(c, (size_t)n * sizeof *off), *len = nl_scratch(c, (size_t)n * sizeof *len);
    if (!off || !len) return NULL;
    nl_var *out = nl_op_out(c, x0->val.dtype, nd, oshape);
    if (!out) return NULL;
    const size_t es = nl_dtype_size(x0->val.dtype);
    const int par = outer * L > EMB_PAR_MIN && outer > 1;
    int64_t acc = 0;
    for (int k = 0; k < n; k++) {
        off[k] = acc;
        len[k] = xs[k]->val.shape[ax] * post;
        acc += len[k];
        if (len[k] == 0 || outer == 0) continue;
        nl_tensor X = nl_contig(c, &xs[k]->val);
        if (!X.data) return NULL;
        const char *src = X.data;
        char *dst = (char *)out->val.data + (size_t)off[k] * es;
        const size_t bytes = (size_t)len[k] * es, dstride = (size_t)L * es;
#pragma omp parallel for if (par) schedule(static)
        for (int64_t o = 0; o < outer; o++) memcpy(dst + (size_t)o * dstride, src + (size_t)o * bytes, bytes);
    }
    /* inputs listed in the node: all when they fit, else up to NL_MAXIN of those needing a gradient */
    nl_var *in[NL_MAXIN];
    int nin = 0;
    if (n <= NL_MAXIN) {
        for (int k = 0; k < n; k++) in[nin++] = xs[k];
    } else {
        for (int k = 0; k < n && nin < NL_MAXIN; k++)
            if (xs[k]->requires_grad) in[nin++] = xs[k];
    }
    nl_node *node = nl_op_record(c, "concat", out, cat_backward, nin, in);
    if (node) {
        cat_saved *s = nl_scratch(c, sizeof *s);
        nl_var **list = nl_scratch(c, (size_t)n * sizeof *list);
        if (!s || !list) return NULL;
        memcpy(list, xs, (size_t)n * sizeof *list);
        s->n = n;
        s->xs = list;
        s->off = off;
        s->len = len;
        s->outer = outer;
        s->L = L;
        node->saved = s;
    }
    return out;
}
