/* Tensor descriptors, views and the arena. */
#include "nnlab/tensor.h"
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t nl_dtype_size(nl_dtype t) { return t == NL_F64 ? 8 : 4; }
const char *nl_dtype_name(nl_dtype t) { return t == NL_F64 ? "f64" : "f32"; }

int64_t nl_tensor_numel(const nl_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

nl_status nl_shape_numel(int ndim, const int64_t *shape, size_t elem_size, const char *what, int64_t *numel, size_t *bytes) {
    if (!what) what = "tensor";
    if (ndim < 0 || ndim > 8) return nl_set_error(NL_ESHAPE, "%s: %d dimensions (at most 8)", what, ndim);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return nl_set_error(NL_ESHAPE, "%s: dimension %d has negative size %lld", what, i, (long long)shape[i]);
        if (nl_i64_mul(&n, n, shape[i])) return nl_set_error(NL_ENOMEM, "%s: element count overflows (dimension %d = %lld)", what, i, (long long)shape[i]);
    }
    size_t b;
    if ((uint64_t)n > SIZE_MAX || nl_size_mul(&b, (size_t)n, elem_size) || b > (size_t)PTRDIFF_MAX)
        return nl_set_error(NL_ENOMEM, "%s: %lld elements of %zu bytes exceed the address space", what, (long long)n, elem_size);
    if (numel) *numel = n;
    if (bytes) *bytes = b;
    return NL_OK;
}

int nl_tensor_is_contiguous(const nl_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

nl_tensor nl_tensor_wrap(void *data, nl_dtype dt, int ndim, const int64_t *shape) {
    nl_tensor t;
    memset(&t, 0, sizeof t);
    assert(ndim >= 0 && ndim <= NL_MAXDIM);
    t.data = data;
    t.dtype = dt;
    t.ndim = ndim;
    for (int i = 0; i < NL_MAXDIM; i++) t.shape[i] = 1;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

const char *nl_shape_str(const nl_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

int nl_shape_equal(const nl_tensor *a, const nl_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

nl_status nl_tensor_reshape(const nl_tensor *t, int ndim, const int64_t *shape, nl_tensor *out) {
    char b1[64];
    if (ndim < 0 || ndim > NL_MAXDIM) return nl_set_error(NL_ESHAPE, "reshape: ndim %d out of range 0..%d", ndim, NL_MAXDIM);
    if (!nl_tensor_is_contiguous(t)) return nl_set_error(NL_ESHAPE, "reshape: input %s is not contiguous (use nl_contiguous first)", nl_shape_str(t, b1, sizeof b1));
    int64_t s[NL_MAXDIM], known = 1;
    int neg = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1) {
            if (neg >= 0) return nl_set_error(NL_ESHAPE, "reshape: more than one -1");
            neg = i;
        } else if (s[i] < 0) {
            return nl_set_error(NL_ESHAPE, "reshape: negative size %lld", (long long)s[i]);
        } else known *= s[i];
    }
    int64_t n = nl_tensor_numel(t);
    if (neg >= 0) {
        if (known == 0 || n % known) return nl_set_error(NL_ESHAPE, "reshape: cannot infer -1 for %s", nl_shape_str(t, b1, sizeof b1));
        s[neg] = n / known;
        known *= s[neg];
    }
    if (known != n) return nl_set_error(NL_ESHAPE, "reshape: %s has %lld elements, target has %lld", nl_shape_str(t, b1, sizeof b1), (long long)n, (long long)known);
    *out = nl_tensor_wrap(t->data, t->dtype, ndim, s);
    return NL_OK;
}

nl_status nl_tensor_permute(const nl_tensor *t, const int *perm, nl_tensor *out) {
    int seen[NL_MAXDIM] = {0};
    nl_tensor r = *t;
    for (int i = 0; i < t->ndim; i++) {
        int p = perm[i];
        if (p < 0 || p >= t->ndim || seen[p]) return nl_set_error(NL_ESHAPE, "permute: invalid permutation for %d dims", t->ndim);
        seen[p] = 1;
        r.shape[i] = t->shape[p];
        r.stride[i] = t->stride[p];
    }
    *out = r;
    return NL_OK;
}

nl_status nl_tensor_slice(const nl_tensor *t, int dim, int64_t start, int64_t stop, int64_t step, nl_tensor *out) {
    char b1[64];
    if (dim < 0) dim += t->ndim;
    if (dim < 0 || dim >= t->ndim) return nl_set_error(NL_ESHAPE, "slice: dim out of range for %s", nl_shape_str(t, b1, sizeof b1));
    int64_t n = t->shape[dim];
    if (start < 0) start += n;
    if (stop < 0) stop += n;
    if (step <= 0 || start < 0 || stop > n || start > stop)
        return nl_set_error(NL_ESHAPE, "slice: [%lld:%lld:%lld] invalid for dim %d of %s", (long long)start, (long long)stop, (long long)step, dim, nl_shape_str(t, b1, sizeof b1));
    nl_tensor r = *t;
    r.data = (char *)t->data + (size_t)(start * t->stride[dim]) * nl_dtype_size(t->dtype);
    r.shape[dim] = (stop - start + step - 1) / step;
    r.stride[dim] = t->stride[dim] * step;
    *out = r;
    return NL_OK;
}

/* Visit all elements of up-to-4D tensors a (and b) with strides; the innermost loop is explicit. */
#define NL_FOR4(t, BODY)                                                                   \
    for (int64_t i0 = 0; i0 < (t)->shape[0]; i0++)                                         \
        for (int64_t i1 = 0; i1 < (t)->shape[1]; i1++)                                     \
            for (int64_t i2 = 0; i2 < (t)->shape[2]; i2++)                                 \
                for (int64_t i3 = 0; i3 < (t)->shape[3]; i3++) { BODY }

static inline int64_t off4(const nl_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return i0 * t->stride[0] + i1 * t->stride[1] + i2 * t->stride[2] + i3 * t->stride[3];
}

/* Normalise to 4 dims so loops are uniform (leading dims of size 1). */
static nl_tensor pad4(const nl_tensor *t) {
    nl_tensor r = *t;
    int k = NL_MAXDIM - t->ndim;
    for (int i = NL_MAXDIM - 1; i >= 0; i--) {
        if (i >= k) {
            r.shape[i] = t->shape[i - k];
            r.stride[i] = t->stride[i - k];
        } else {
            r.shape[i] = 1;
            r.stride[i] = 0;
        }
    }
    r.ndim = NL_MAXDIM;
    return r;
}

nl_status nl_tensor_copy(nl_tensor *dst, const nl_tensor *src) {
    char b1[64], b2[64];
    if (!nl_shape_equal(dst, src) || dst->dtype != src->dtype)
        return nl_set_error(NL_ESHAPE, "copy: dst %s %s vs src %s %s", nl_shape_str(dst, b1, 64), nl_dtype_name(dst->dtype), nl_shape_str(src, b2, 64), nl_dtype_name(src->dtype));
    int64_t n = nl_tensor_numel(src);
    if (nl_tensor_is_contiguous(dst) && nl_tensor_is_contiguous(src)) {
        memmove(dst->data, src->data, (size_t)n * nl_dtype_size(src->dtype));
        return NL_OK;
    }
    nl_tensor d = pad4(dst), s = pad4(src);
    if (src->dtype == NL_F32) {
        float *dp = d.data; const float *sp = s.data;
        NL_FOR4(&d, dp[off4(&d, i0, i1, i2, i3)] = sp[off4(&s, i0, i1, i2, i3)];)
    } else {
        double *dp = d.data; const double *sp = s.data;
        NL_FOR4(&d, dp[off4(&d, i0, i1, i2, i3)] = sp[off4(&s, i0, i1, i2, i3)];)
    }
    return NL_OK;
}

nl_status nl_tensor_add_into(nl_tensor *dst, const nl_tensor *src) {
    char b1[64], b2[64];
    if (!nl_shape_equal(dst, src) || dst->dtype != src->dtype)
        return nl_set_error(NL_ESHAPE, "add_into: dst %s vs src %s", nl_shape_str(dst, b1, 64), nl_shape_str(src, b2, 64));
    int64_t n = nl_tensor_numel(src);
    if (nl_tensor_is_contiguous(dst) && nl_tensor_is_contiguous(src)) {
        if (src->dtype == NL_F32) {
            float *dp = dst->data; const float *sp = src->data;
            #pragma omp parallel for simd if (parallel: n > 65536) schedule(static)
            for (int64_t i = 0; i < n; i++) dp[i] += sp[i];
        } else {
            double *dp = dst->data; const double *sp = src->data;
            #pragma omp parallel for simd if (parallel: n > 65536) schedule(static)
            for (int64_t i = 0; i < n; i++) dp[i] += sp[i];
        }
        return NL_OK;
    }
    nl_tensor d = pad4(dst), s = pad4(src);
    if (src->dtype == NL_F32) {
        float *dp = d.data; const float *sp = s.data;
        NL_FOR4(&d, dp[off4(&d, i0, i1, i2, i3)] += sp[off4(&s, i0, i1, i2, i3)];)
    } else {
        double *dp = d.data; const double *sp = s.data;
        NL_FOR4(&d, dp[off4(&d, i0, i1, i2, i3)] += sp[off4(&s, i0, i1, i2, i3)];)
    }
    return NL_OK;
}

static int64_t flat_off(const nl_tensor *t, int64_t flat) {
    int64_t off = 0;
    for (int i = t->ndim - 1; i >= 0; i--) {
        int64_t idx = flat % t->shape[i];
        flat /= t->shape[i];
        off += idx * t->stride[i];
    }
    return off;
}

double nl_tensor_get(const nl_tensor *t, int64_t flat) {
    int64_t o = flat_off(t, flat);
    return t->dtype == NL_F32 ? (double)((const float *)t->data)[o] : ((const double *)t->data)[o];
}

void nl_tensor_set(nl_tensor *t, int64_t flat, double v) {
    int64_t o = flat_off(t, flat);
    if (t->dtype == NL_F32) ((float *)t->data)[o] = (float)v;
    else ((double *)t->data)[o] = v;
}

void nl_tensor_fill(nl_tensor *t, double v) {
    int64_t n = nl_tensor_numel(t);
    if (nl_tensor_is_contiguous(t)) {
        if (t->dtype == NL_F32) { float *p = t->data; for (int64_t i = 0; i < n; i++) p[i] = (float)v; }
        else { double *p = t->data; for (int64_t i = 0; i < n; i++) p[i] = v; }
        return;
    }
    for (int64_t i = 0; i < n; i++) nl_tensor_set(t, i, v);
}

/* ---------------- arena ---------------- */
typedef struct nl_block {
    struct nl_block *next;
    size_t size, used;
    char *mem;
} nl_block;

struct nl_arena {
    nl_block *head;   /* current block (most recent) */
    size_t cap;       /* 0 = unlimited */
    size_t total;     /* bytes reserved in all blocks */
    size_t used;      /* bytes handed out (incl. alignment) */
    size_t peak;
};

#define NL_ALIGN 64

static nl_block *block_new(size_t size) {
    nl_block *b = malloc(sizeof *b);
    if (!b) return NULL;
    b->mem = aligned_alloc(NL_ALIGN, (size + NL_ALIGN - 1) / NL_ALIGN * NL_ALIGN);
    if (!b->mem) { free(b); return NULL; }
    b->size = size; b->used = 0; b->next = NULL;
    return b;
}

nl_arena *nl_arena_new(size_t initial, size_t cap) {
    nl_arena *a = calloc(1, sizeof *a);
    if (!a) { nl_set_error(NL_ENOMEM, "arena: out of memory"); return NULL; }
    if (initial < 4096) initial = 4096;
    if (cap && initial > cap) initial = cap;
    a->cap = cap;
    a->head = block_new(initial);
    if (!a->head) { free(a); nl_set_error(NL_ENOMEM, "arena: cannot allocate %zu bytes", initial); return NULL; }
    a->total = initial;
    return a;
}

void nl_arena_free(nl_arena *a) {
    if (!a) return;
    nl_block *b = a->head;
    while (b) { nl_block *n = b->next; free(b->mem); free(b); b = n; }
    free(a);
}

void *nl_arena_alloc(nl_arena *a, size_t bytes) {
    if (bytes > (size_t)PTRDIFF_MAX - NL_ALIGN || (a->cap && bytes > a->cap)) {
        nl_set_error(NL_ENOMEM, "arena: request of %zu bytes exceeds %s", bytes, a->cap ? "the arena cap; raise the cap or shrink the batch" : "the address space");
        return NULL;
    }
    size_t need = (bytes + NL_ALIGN - 1) / NL_ALIGN * NL_ALIGN;
    if (need == 0) need = NL_ALIGN;
    nl_block *b = a->head;
    if (b->used + need > b->size) {
        size_t dbl = b->size <= (size_t)PTRDIFF_MAX / 2 ? b->size * 2 : need;
        size_t sz = dbl > need ? dbl : need;
        if (a->cap && (sz > a->cap || a->total > a->cap - sz)) {
            sz = need;
            if (a->total > a->cap - sz) {
                nl_set_error(NL_ENOMEM, "arena: request of %zu bytes exceeds cap (%zu of %zu bytes reserved); raise the arena cap or shrink the batch", bytes, a->total, a->cap);
                return NULL;
            }
        }
        nl_block *nb = block_new(sz);
        if (!nb) { nl_set_error(NL_ENOMEM, "arena: out of memory allocating a %zu-byte block", sz); return NULL; }
        nb->next = b;
        a->head = nb;
        a->total += sz;
        b = nb;
    }
    void *p = b->mem + b->used;
    b->used += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void *nl_arena_calloc(nl_arena *a, size_t bytes) {
    void *p = nl_arena_alloc(a, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void nl_arena_reset(nl_arena *a) {
    if (a->head->next) { /* consolidate into one block of the total size */
        size_t total = a->total;
        nl_block *b = a->head;
        while (b) { nl_block *n = b->next; free(b->mem); free(b); b = n; }
        a->head = block_new(total);
        if (!a->head) { /* fall back to a small block; next alloc grows again */
            a->head = block_new(4096);
            total = 4096;
            assert(a->head);
        }
        a->total = total;
    }
    a->head->used = 0;
    a->used = 0;
}

size_t nl_arena_used(const nl_arena *a) { return a->used; }
size_t nl_arena_peak(const nl_arena *a) { return a->peak; }

nl_tensor nl_arena_tensor(nl_arena *a, nl_dtype dt, int ndim, const int64_t *shape) {
    size_t bytes;
    if (nl_shape_numel(ndim, shape, nl_dtype_size(dt), "arena tensor", NULL, &bytes) || ndim > NL_MAXDIM) {
        nl_tensor t;
        memset(&t, 0, sizeof t);
        if (ndim > NL_MAXDIM) nl_set_error(NL_ESHAPE, "arena tensor: %d dimensions (at most %d)", ndim, NL_MAXDIM);
        return t;
    }
    void *p = nl_arena_alloc(a, bytes);
    return nl_tensor_wrap(p, dt, ndim, shape);
}

nl_tensor nl_arena_tensor0(nl_arena *a, nl_dtype dt, int ndim, const int64_t *shape) {
    nl_tensor t = nl_arena_tensor(a, dt, ndim, shape);
    if (t.data) memset(t.data, 0, (size_t)nl_tensor_numel(&t) * nl_dtype_size(dt));
    return t;
}
