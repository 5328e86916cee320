/* nnlab/tensor.h — strided tensor descriptors and the per-step arena.
 *
 * Conventions: row-major; up to 4 dimensions; strides are in elements (not bytes); `data` points at the first
 * logical element (views carry no separate offset). A tensor descriptor does not own its memory: storage
 * belongs to an arena (temporaries of a step), a parameter store (flat arrays) or the caller. */
#ifndef NNLAB_TENSOR_H
#define NNLAB_TENSOR_H
#include "nnlab/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_MAXDIM 4

typedef enum nl_dtype { NL_F32 = 0, NL_F64 = 1 } nl_dtype;

typedef struct nl_tensor {
    void *data;                  /* first logical element */
    nl_dtype dtype;
    int ndim;                    /* 0 (scalar) .. NL_MAXDIM */
    int64_t shape[NL_MAXDIM];    /* shape[i] for i < ndim; unused entries are 1 */
    int64_t stride[NL_MAXDIM];   /* element strides; unused entries are 0 */
} nl_tensor;

size_t nl_dtype_size(nl_dtype t);
const char *nl_dtype_name(nl_dtype t);
int64_t nl_tensor_numel(const nl_tensor *t);
/* Elements and bytes of a contiguous tensor of shape[0..ndim) with elements of elem_size bytes, overflow-checked:
 * NL_ESHAPE (message naming `what`) for ndim outside 0..8 or a negative size, NL_ENOMEM when the element count
 * overflows int64 or the byte count exceeds PTRDIFF_MAX. numel / bytes may be NULL. The one helper for every
 * shape -> size computation on untrusted shapes (parameter stores, arena tensors, checkpoint loaders). */
nl_status nl_shape_numel(int ndim, const int64_t *shape, size_t elem_size, const char *what, int64_t *numel, size_t *bytes);
int nl_tensor_is_contiguous(const nl_tensor *t);
/* Descriptor of a contiguous tensor over `data` (not owned). */
nl_tensor nl_tensor_wrap(void *data, nl_dtype dt, int ndim, const int64_t *shape);
/* "[2,3,4]" into buf (for messages). */
const char *nl_shape_str(const nl_tensor *t, char *buf, size_t n);
int nl_shape_equal(const nl_tensor *a, const nl_tensor *b);

/* Zero-copy views (descriptor only). Return NL_ESHAPE with a message on bad arguments. */
nl_status nl_tensor_reshape(const nl_tensor *t, int ndim, const int64_t *shape, nl_tensor *out); /* t contiguous; one -1 allowed */
nl_status nl_tensor_permute(const nl_tensor *t, const int *perm, nl_tensor *out);
nl_status nl_tensor_slice(const nl_tensor *t, int dim, int64_t start, int64_t stop, int64_t step, nl_tensor *out);
/* dst (any strides) <- src (any strides), same shape and dtype. */
nl_status nl_tensor_copy(nl_tensor *dst, const nl_tensor *src);
/* dst += src elementwise (same shape, any strides). */
nl_status nl_tensor_add_into(nl_tensor *dst, const nl_tensor *src);
void nl_tensor_fill(nl_tensor *t, double v);
/* Element access by flat logical index (slow; for tests and small code). */
double nl_tensor_get(const nl_tensor *t, int64_t flat);
void nl_tensor_set(nl_tensor *t, int64_t flat, double v);

/* ---- arena: bump allocator for the temporaries of one step ----
 * Allocations are 64-byte aligned. When a block is full a new one is chained (earlier pointers stay valid);
 * nl_arena_reset() frees everything and, if several blocks were used, replaces them by one block of the
 * total size, so after the first (measuring) step a training loop runs in one block. If `cap` (bytes, 0 =
 * unlimited) would be exceeded, nl_arena_alloc returns NULL with NL_ENOMEM and a message giving the sizes. */
typedef struct nl_arena nl_arena;
nl_arena *nl_arena_new(size_t initial_bytes, size_t cap_bytes);
void nl_arena_free(nl_arena *a);
void *nl_arena_alloc(nl_arena *a, size_t bytes);
void *nl_arena_calloc(nl_arena *a, size_t bytes);
void nl_arena_reset(nl_arena *a);
size_t nl_arena_used(const nl_arena *a);     /* bytes in use now */
size_t nl_arena_peak(const nl_arena *a);     /* most bytes in use since creation */
/* A new contiguous tensor in the arena (uninitialised / zeroed). NULL data on failure (error set). */
nl_tensor nl_arena_tensor(nl_arena *a, nl_dtype dt, int ndim, const int64_t *shape);
nl_tensor nl_arena_tensor0(nl_arena *a, nl_dtype dt, int ndim, const int64_t *shape);

#ifdef __cplusplus
}
#endif
#endif
