/* Tape, variables, backward pass, parameter stores. */
#include "nnlab/extend.h"
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nl_ctx *nl_ctx_new(size_t arena_bytes, size_t arena_cap) {
    nl_ctx *c = calloc(1, sizeof *c);
    if (!c) { nl_set_error(NL_ENOMEM, "ctx: out of memory"); return NULL; }
    c->arena = nl_arena_new(arena_bytes ? arena_bytes : ((size_t)16 << 20), arena_cap);
    if (!c->arena) { free(c); return NULL; }
    c->grad_enabled = 1;
    return c;
}

void nl_ctx_free(nl_ctx *c) {
    if (!c) return;
    nl_arena_free(c->arena);
    free(c->tape);
    free(c);
}

void nl_ctx_reset(nl_ctx *c) {
    nl_arena_reset(c->arena);
    c->n_tape = 0;
}

int nl_set_grad_enabled(nl_ctx *c, int on) {
    int old = c->grad_enabled;
    c->grad_enabled = on ? 1 : 0;
    return old;
}

void *nl_scratch(nl_ctx *c, size_t bytes) { return nl_arena_alloc(c->arena, bytes); }

static nl_var *var_alloc(nl_ctx *c) {
    nl_var *v = nl_arena_calloc(c->arena, sizeof *v);
    return v;
}

nl_var *nl_leaf(nl_ctx *c, nl_tensor t, int requires_grad) {
    if (!t.data) return NULL;
    nl_var *v = var_alloc(c);
    if (!v) return NULL;
    v->val = t;
    v->grad = t;
    v->grad.data = NULL;
    v->requires_grad = requires_grad ? 1 : 0;
    return v;
}

nl_var *nl_input(nl_ctx *c, nl_tensor t) { return nl_leaf(c, t, 0); }

nl_var *nl_op_view(nl_ctx *c, nl_tensor t) { return nl_leaf(c, t, 0); }

nl_var *nl_op_out(nl_ctx *c, nl_dtype dt, int ndim, const int64_t *shape) {
    nl_tensor t = nl_arena_tensor(c->arena, dt, ndim, shape);
    if (!t.data) return NULL;
    return nl_leaf(c, t, 0);
}

nl_var *nl_new(nl_ctx *c, nl_dtype dt, int ndim, const int64_t *shape) { return nl_op_out(c, dt, ndim, shape); }

nl_var *nl_zeros(nl_ctx *c, nl_dtype dt, int ndim, const int64_t *shape) {
    nl_var *v = nl_op_out(c, dt, ndim, shape);
    if (v) memset(v->val.data, 0, (size_t)nl_tensor_numel(&v->val) * nl_dtype_size(dt));
    return v;
}

nl_var *nl_scalar(nl_ctx *c, nl_dtype dt, double x) {
    nl_var *v = nl_op_out(c, dt, 0, NULL);
    if (v) nl_tensor_set(&v->val, 0, x);
    return v;
}

nl_var *nl_detach(nl_ctx *c, nl_var *v) {
    if (!v) return NULL;
    return nl_leaf(c, v->val, 0);
}

double nl_item(const nl_var *v) { return nl_tensor_get(&v->val, 0); }

nl_node *nl_op_record(nl_ctx *c, const char *op, nl_var *out, nl_backward_fn bw, int n_in, nl_var *const *in) {
    assert(n_in <= NL_MAXIN);
    if (!c->grad_enabled || !out) return NULL;
    int any = 0;
    for (int k = 0; k < n_in; k++)
        if (in[k] && in[k]->requires_grad) any = 1;
    if (!any) return NULL;
    nl_node *n = nl_arena_calloc(c->arena, sizeof *n);
    if (!n) return NULL;
    if (c->n_tape == c->cap_tape) {
        int nc = c->cap_tape ? 2 * c->cap_tape : 256;
        nl_node **t = realloc(c->tape, (size_t)nc * sizeof *t);
        if (!t) { nl_set_error(NL_ENOMEM, "tape: out of memory"); return NULL; }
        c->tape = t;
        c->cap_tape = nc;
    }
    n->op = op;
    n->out = out;
    n->backward = bw;
    n->n_in = n_in;
    for (int k = 0; k < n_in; k++) n->in[k] = in[k];
    out->node = n;
    out->requires_grad = 1;
    c->tape[c->n_tape++] = n;
    return n;
}

nl_tensor *nl_grad(nl_ctx *c, nl_var *v) {
    if (!v || !v->requires_grad) return NULL;
    if (!v->grad.data) {
        nl_tensor g = nl_arena_tensor0(c->arena, v->val.dtype, v->val.ndim, v->val.shape);
        if (!g.data) return NULL;
        v->grad = g;
    }
    return &v->grad;
}

nl_tensor *nl_grad_w(nl_ctx *c, nl_var *v, int *fresh) {
    *fresh = 0;
    if (!v || !v->requires_grad) return NULL;
    if (!v->grad.data) {
        nl_tensor g = nl_arena_tensor(c->arena, v->val.dtype, v->val.ndim, v->val.shape); /* uninitialised */
        if (!g.data) return NULL;
        v->grad = g;
        *fresh = 1;
    }
    return &v->grad;
}

nl_tensor nl_contig(nl_ctx *c, const nl_tensor *t) {
    if (nl_tensor_is_contiguous(t)) return *t;
    nl_tensor r = nl_arena_tensor(c->arena, t->dtype, t->ndim, t->shape);
    if (r.data) nl_tensor_copy(&r, t);
    return r;
}

nl_var *nl_op_fail(nl_status s, const char *op, const char *what, const nl_var *a, const nl_var *b) {
    char b1[64] = "", b2[64] = "";
    if (a) nl_shape_str(&a->val, b1, sizeof b1);
    if (b) nl_shape_str(&b->val, b2, sizeof b2);
    if (a && b)
        nl_set_error(s, "%s: %s (shapes %s %s and %s %s)", op, what, b1, nl_dtype_name(a->val.dtype), b2, nl_dtype_name(b->val.dtype));
    else if (a)
        nl_set_error(s, "%s: %s (shape %s %s)", op, what, b1, nl_dtype_name(a->val.dtype));
    else
        nl_set_error(s, "%s: %s", op, what);
    return NULL;
}

nl_var *nl_custom(nl_ctx *c, const char *name, nl_tensor value, int n_in, nl_var *const *in, nl_backward_fn bw, void *saved) {
    for (int k = 0; k < n_in; k++)
        if (!in[k]) return NULL;
    if (!value.data) return nl_op_fail(NL_EINVAL, name, "value has no data", NULL, NULL);
    nl_var *out = nl_leaf(c, value, 0);
    if (!out) return NULL;
    nl_node *n = nl_op_record(c, name, out, bw, n_in, in);
    if (n) n->saved = saved;
    return out;
}

static void st_backward(nl_ctx *c, nl_node *n) {
    nl_tensor *gx = nl_grad(c, n->in[0]);
    if (gx) nl_tensor_add_into(gx, nl_node_grad_out(n));
}

nl_var *nl_straight_through(nl_ctx *c, nl_var *y, nl_var *x) {
    NL_REQUIRE(y, x);
    if (!nl_shape_equal(&y->val, &x->val) || y->val.dtype != x->val.dtype)
        return nl_op_fail(NL_ESHAPE, "straight_through", "y and x must have the same shape and dtype", y, x);
    nl_var *in[1] = {x};
    return nl_custom(c, "straight_through", y->val, 1, in, st_backward, NULL);
}

void nl_ctx_set_grad_hook(nl_ctx *c, nl_grad_hook_fn fn, void *ud) {
    c->grad_hook = fn;
    c->grad_hook_ud = ud;
}

/* For the grad hook: each leaf input that requires a gradient, with the tape index of its earliest consumer (its
 * last one in the backward order). An open-addressing table keyed by the var pointer finds the duplicates; the
 * result is sorted by index, descending, so the backward loop pops from the front. A leaf appearing twice in one
 * node keeps its first slot. */
typedef struct { nl_var *v; int k, j; } leaf_last; /* j: input slot at node k */

/* descending node index; within one node the inputs in reverse (linear's b before W: reverse parameter order) */
static int leaf_last_cmp(const void *a, const void *b) {
    const leaf_last *x = a, *y = b;
    if (x->k != y->k) return (y->k > x->k) - (y->k < x->k);
    return (y->j > x->j) - (y->j < x->j);
}

static nl_status leaf_last_find(const nl_ctx *c, leaf_last **out, int *n_out) {
    int64_t n_in = 0;
    for (int k = 0; k < c->n_tape; k++) n_in += c->tape[k]->n_in;
    size_t cap = 16;
    while ((int64_t)cap < 2 * n_in) cap *= 2;
    leaf_last *tab = calloc(cap, sizeof *tab); /* (cap) hash table of (var, earliest index) */
    if (!tab) return nl_set_error(NL_ENOMEM, "backward: out of memory (grad hook table)");
    int n = 0;
    for (int k = 0; k < c->n_tape; k++) {
        const nl_node *nd = c->tape[k];
        for (int j = 0; j < nd->n_in; j++) {
            nl_var *v = nd->in[j];
            if (!v || v->node || !v->requires_grad) continue;
            size_t h = ((uintptr_t)v >> 4) * 0x9E3779B97F4A7C15ULL & (cap - 1);
            while (tab[h].v && tab[h].v != v) h = (h + 1) & (cap - 1);
            if (!tab[h].v) { tab[h].v = v; tab[h].k = k; tab[h].j = j; n++; } /* first seen = earliest on the tape */
        }
    }
    int m = 0;
    for (size_t h = 0; h < cap; h++)
        if (tab[h].v) tab[m++] = tab[h];
    qsort(tab, (size_t)m, sizeof *tab, leaf_last_cmp);
    *out = tab;
    *n_out = n;
    return NL_OK;
}

static nl_status backward_run(nl_ctx *c) {
    leaf_last *ll = NULL; /* (n_ll) leaves by their last consumer, descending */
    int n_ll = 0, next = 0;
    if (c->grad_hook && leaf_last_find(c, &ll, &n_ll)) return NL_ENOMEM;
    c->in_backward = 1;
    int save = c->grad_enabled;
    c->grad_enabled = 0; /* backward functions never record */
    for (int k = c->n_tape - 1; k >= 0; k--) {
        nl_node *n = c->tape[k];
        if (n->out->grad.data) { /* else no gradient reached this node */
            n->backward(c, n);
            if (nl_last_status() == NL_ENOMEM) { c->grad_enabled = save; c->in_backward = 0; free(ll); return NL_ENOMEM; }
        }
        for (; next < n_ll && ll[next].k == k; next++) c->grad_hook(c->grad_hook_ud, ll[next].v);
    }
    c->grad_enabled = save;
    c->in_backward = 0;
    free(ll);
    return NL_OK;
}

nl_status nl_backward_seed(nl_ctx *c, nl_var *v, const nl_tensor *seed) {
    if (!v) return nl_set_error(NL_EINVAL, "backward: loss is NULL (an earlier op failed: %s)", nl_last_error());
    if (!v->requires_grad) return nl_set_error(NL_ESTATE, "backward: the loss does not depend on any parameter that requires a gradient");
    nl_clear_error();
    nl_tensor *g = nl_grad(c, v);
    if (!g) return NL_ENOMEM;
    if (seed) {
        nl_status s = nl_tensor_add_into(g, seed);
        if (s) return s;
    } else {
        nl_tensor_fill(g, 1.0);
    }
    return backward_run(c);
}

nl_status nl_backward(nl_ctx *c, nl_var *loss) {
    if (loss && nl_tensor_numel(&loss->val) != 1) {
        char b[64];
        return nl_set_error(NL_ESHAPE, "backward: loss must be a scalar, got shape %s (use nl_backward_seed)", nl_shape_str(&loss->val, b, sizeof b));
    }
    return nl_backward_seed(c, loss, NULL);
}

/* ---------------- parameter store ---------------- */
nl_status nl_params_init(nl_params *ps, nl_dtype dt) {
    memset(ps, 0, sizeof *ps);
    ps->dtype = dt;
    return NL_OK;
}

nl_status nl_params_init_layout(nl_params *ps, nl_dtype dt) {
    nl_params_init(ps, dt);
    ps->layout_only = 1;
    return NL_OK;
}

void nl_params_free(nl_params *ps) {
    for (int i = 0; i < ps->n; i++) free(ps->p[i]);
    free(ps->p);
    free(ps->data);
    free(ps->grad);
    memset(ps, 0, sizeof *ps);
}

static void params_repoint(nl_params *ps) {
    if (ps->layout_only) return;
    size_t es = nl_dtype_size(ps->dtype);
    for (int i = 0; i < ps->n; i++) {
        nl_param *p = ps->p[i];
        p->var.val.data = (char *)ps->data + (size_t)p->offset * es;
        p->var.grad.data = (char *)ps->grad + (size_t)p->offset * es;
    }
}

nl_var *nl_params_add(nl_params *ps, const char *name, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > NL_MAXDIM) { nl_set_error(NL_ESHAPE, "params_add(%s): ndim %d out of range", name, ndim); return NULL; }
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) { nl_set_error(NL_ESHAPE, "params_add(%s): non-positive size", name); return NULL; }
    if (nl_params_find(ps, name)) { nl_set_error(NL_EINVAL, "params_add: duplicate parameter name '%s'", name); return NULL; }
    if (strlen(name) >= sizeof(((nl_param *)0)->name)) { nl_set_error(NL_EINVAL, "params_add: name too long '%s'", name); return NULL; }
    size_t es = nl_dtype_size(ps->dtype), bytes;
    int64_t n, total;
    char what[96];
    snprintf(what, sizeof what, "params_add(%s)", name);
    if (nl_shape_numel(ndim, shape, es, what, &n, NULL)) return NULL;
    /* keep each tensor 16-element aligned within the flat arrays; the whole store must stay addressable */
    int64_t off = (ps->total + 15) / 16 * 16;
    if (nl_i64_add(&total, off, n) || nl_shape_numel(1, &total, es, what, NULL, &bytes)) {
        nl_set_error(NL_ENOMEM, "params_add(%s): the store would hold more than the address space allows (%lld + %lld elements)",
                     name, (long long)off, (long long)n);
        return NULL;
    }
    if (ps->n == ps->cap) {
        int nc = ps->cap ? 2 * ps->cap : 16;
        nl_param **np = realloc(ps->p, (size_t)nc * sizeof *np);
        if (!np) { nl_set_error(NL_ENOMEM, "params_add: out of memory"); return NULL; }
        ps->p = np;
        ps->cap = nc;
    }
    if (!ps->layout_only) {
        void *d = realloc(ps->data, bytes);
        if (!d) { nl_set_error(NL_ENOMEM, "params_add(%s): out of memory (%zu bytes)", name, bytes); return NULL; }
        ps->data = d;
        void *g = realloc(ps->grad, bytes);
        if (!g) { nl_set_error(NL_ENOMEM, "params_add(%s): out of memory (%zu bytes)", name, bytes); return NULL; }
        ps->grad = g;
        memset((char *)ps->data + (size_t)ps->total * es, 0, (size_t)(total - ps->total) * es);
        memset((char *)ps->grad + (size_t)ps->total * es, 0, (size_t)(total - ps->total) * es);
    }
    nl_param *p = calloc(1, sizeof *p);
    if (!p) { nl_set_error(NL_ENOMEM, "params_add: out of memory"); return NULL; }
    snprintf(p->name, sizeof p->name, "%s", name);
    p->offset = off;
    p->numel = n;
    p->lr_mult = p->wd_mult = p->fwd_mult = 1.0f;
    p->var.val = nl_tensor_wrap(NULL, ps->dtype, ndim, shape);
    p->var.grad = p->var.val;
    p->var.requires_grad = 1;
    p->var.name = p->name;
    ps->p[ps->n++] = p;
    ps->total = total;
    params_repoint(ps);
    return &p->var;
}

nl_param *nl_params_find(const nl_params *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i]->name, name)) return ps->p[i];
    return NULL;
}

nl_param *nl_params_of(const nl_params *ps, const nl_var *v) {
    for (int i = 0; i < ps->n; i++)
        if (&ps->p[i]->var == v) return ps->p[i];
    return NULL;
}

nl_status nl_params_check_finite(const nl_params *ps, const char *what) {
    if (!ps->data) return NL_OK;
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        for (int64_t k = 0; k < p->numel; k++) {
            double v = ps->dtype == NL_F64 ? ((const double *)ps->data)[p->offset + k] : (double)((const float *)ps->data)[p->offset + k];
            if (!isfinite(v))
                return nl_set_error(NL_EFORMAT, "%s: tensor '%s' holds a non-finite value (%g at element %lld)", what ? what : "parameters",
                                    p->name, v, (long long)k);
        }
    }
    return NL_OK;
}

void nl_params_zero_grad(nl_params *ps) {
    if (ps->grad) memset(ps->grad, 0, (size_t)ps->total * nl_dtype_size(ps->dtype));
}

int nl_params_set_trainable(nl_params *ps, const char *prefix, int on) {
    int k = 0;
    size_t lp = strlen(prefix);
    for (int i = 0; i < ps->n; i++)
        if (!strncmp(ps->p[i]->name, prefix, lp)) {
            ps->p[i]->var.requires_grad = on ? 1 : 0;
            k++;
        }
    return k;
}

nl_status nl_params_copy(nl_params *dst, const nl_params *src) {
    if (dst->n != src->n || dst->dtype != src->dtype) return nl_set_error(NL_ESHAPE, "params_copy: stores differ (%d vs %d tensors)", dst->n, src->n);
    for (int i = 0; i < src->n; i++) {
        nl_param *a = dst->p[i], *b = src->p[i];
        if (strcmp(a->name, b->name) || !nl_shape_equal(&a->var.val, &b->var.val))
            return nl_set_error(NL_ESHAPE, "params_copy: tensor %d differs ('%s' vs '%s')", i, a->name, b->name);
    }
    if (!dst->data || !src->data) return nl_set_error(NL_ESTATE, "params_copy: a layout-only store holds no values");
    memcpy(dst->data, src->data, (size_t)src->total * nl_dtype_size(src->dtype));
    return NL_OK;
}
