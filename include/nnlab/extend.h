/* nnlab/extend.h — writing ops and custom gradients.
 *
 * An op: check inputs, allocate the output with nl_op_out(), compute the value, then nl_op_record() (which
 * returns NULL when nothing needs a gradient, e.g. in no-grad mode) and store in the node what backward needs.
 * Backward functions accumulate with += into nl_grad(c, input), which allocates a zeroed gradient on first use
 * and returns NULL when the input needs no gradient (nl_grad_w: the same for a backward that writes every
 * element, which then stores into a fresh buffer instead of adding to zeros). Custom (straight-through, surrogate, approximate)
 * gradients are written the same way: the forward value and the backward rule are independent. */
#ifndef NNLAB_EXTEND_H
#define NNLAB_EXTEND_H
#include "nnlab/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Output var with a fresh contiguous arena value of the given shape (NULL + error when the arena is full). */
nl_var *nl_op_out(nl_ctx *c, nl_dtype dt, int ndim, const int64_t *shape);
/* Output var sharing storage with an existing tensor (views). */
nl_var *nl_op_view(nl_ctx *c, nl_tensor t);
/* Record a node for out with inputs in[0..n_in); sets out->requires_grad. NULL if no gradient is needed. */
nl_node *nl_op_record(nl_ctx *c, const char *op, nl_var *out, nl_backward_fn bw, int n_in, nl_var *const *in);
/* Gradient buffer of v (contiguous, zeroed on first use), or NULL if v needs no gradient. */
nl_tensor *nl_grad(nl_ctx *c, nl_var *v);
/* The same for a backward function that STORES every element of the gradient (a full-size elementwise write, a
 * copy): when the buffer does not exist yet it is allocated without the zero fill and *fresh = 1 (the caller must
 * store, g = x, not add); otherwise *fresh = 0 (the caller adds, g += x). Storing x into a fresh buffer gives the
 * same values as adding it to zeros, without the memset pass. */
nl_tensor *nl_grad_w(nl_ctx *c, nl_var *v, int *fresh);
/* The gradient flowing into the node's output (contiguous, same shape as the output). */
static inline const nl_tensor *nl_node_grad_out(const nl_node *n) { return &n->out->grad; }
/* A contiguous version of t: t itself if already contiguous, else a copy in the arena (data NULL on error). */
nl_tensor nl_contig(nl_ctx *c, const nl_tensor *t);
/* Arena allocation of temporaries inside ops and backward functions (error set on failure). */
void *nl_scratch(nl_ctx *c, size_t bytes);

/* Report an op error naming the op and up to two shapes; returns NULL for `return nl_op_fail(...)`. */
nl_var *nl_op_fail(nl_status s, const char *op, const char *what, const nl_var *a, const nl_var *b);

/* Generic custom op: the caller computed `value` (any arena tensor) from inputs in[0..n_in); backward `bw`
 * receives the node with `saved` attached. Used for straight-through and surrogate gradients. */
nl_var *nl_custom(nl_ctx *c, const char *name, nl_tensor value, int n_in, nl_var *const *in,
                  nl_backward_fn bw, void *saved);

/* Straight-through estimator: value of y, gradient passed unchanged to x (same shape). */
nl_var *nl_straight_through(nl_ctx *c, nl_var *y, nl_var *x);

/* Return NULL from the calling op when any input is NULL (an earlier error is already set). */
#define NL_REQUIRE(...)                                                          \
    do {                                                                         \
        const nl_var *nl__in[] = {__VA_ARGS__};                                  \
        for (size_t nl__k = 0; nl__k < sizeof nl__in / sizeof nl__in[0]; nl__k++) \
            if (!nl__in[nl__k]) return NULL;                                     \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
