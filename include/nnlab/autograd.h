/* nnlab/autograd.h — variables, the tape (reverse-mode autograd), parameter stores.
 *
 * A step builds a graph by calling ops on nl_var pointers; each op computes its value at once (define-by-run)
 * and, when gradients are enabled and an input requires them, appends a node to the context's tape. All values,
 * gradients and nodes of a step live in the context's arena and die at nl_ctx_reset(). Parameters live in a
 * persistent nl_params store: flat value and gradient arrays with a view (nl_var) per tensor, so optimizers,
 * masks and per-group learning rates are loops over arrays. Gradients accumulate (+=) into parameter gradients
 * across backward calls until nl_params_zero_grad().
 *
 * Error convention: an op returns NULL on error (shape/dtype mismatch, arena exhausted) and sets a message that
 * names the op and the shapes; every op returns NULL when given a NULL input, so a whole forward pass can be
 * written without checks and the final result tested once. */
#ifndef NNLAB_AUTOGRAD_H
#define NNLAB_AUTOGRAD_H
#include "nnlab/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nl_var nl_var;
typedef struct nl_node nl_node;
typedef struct nl_ctx nl_ctx;

struct nl_var {
    nl_tensor val;        /* value (may be a strided view) */
    nl_tensor grad;       /* same shape, contiguous; data == NULL until a gradient reaches it */
    nl_node *node;        /* op that produced it; NULL for leaves */
    int requires_grad;
    const char *name;     /* optional (parameters, messages) */
};

/* Backward function of a node: read nl_node_grad_out(n) and accumulate (+=) into the inputs' gradients via
 * nl_grad(c, n->in[k]) (NULL when that input needs no gradient). */
typedef void (*nl_backward_fn)(nl_ctx *c, nl_node *n);
/* Gradient-ready hook (nl_ctx_set_grad_hook): leaf is a var without a node that requires a gradient (a parameter,
 * or an nl_leaf), called once its gradient of this backward pass is final. */
typedef void (*nl_grad_hook_fn)(void *ud, nl_var *leaf);

#define NL_MAXIN 6
struct nl_node {
    const char *op;            /* op name, for messages and debugging */
    nl_var *out;
    int n_in;
    nl_var *in[NL_MAXIN];
    nl_backward_fn backward;
    void *saved;               /* op-specific data (arena) */
    double f[4];               /* scalar arguments */
    int64_t i[8];              /* integer arguments */
};

struct nl_ctx {
    nl_arena *arena;           /* temporaries of the step */
    nl_node **tape;            /* (n_tape) nodes in creation (= topological) order */
    int n_tape, cap_tape;
    int grad_enabled;          /* 0 inside no-grad regions */
    int in_backward;
    nl_grad_hook_fn grad_hook; /* nl_ctx_set_grad_hook; NULL = none */
    void *grad_hook_ud;
};

/* arena_bytes: initial arena size (grows); arena_cap: 0 = unlimited, else a hard cap in bytes. */
nl_ctx *nl_ctx_new(size_t arena_bytes, size_t arena_cap);
void nl_ctx_free(nl_ctx *c);
/* Drop the step's graph and temporaries (parameters and their gradients are untouched). */
void nl_ctx_reset(nl_ctx *c);
/* Enable/disable recording; returns the previous setting (no-grad mode: nl_set_grad_enabled(c, 0)). */
int nl_set_grad_enabled(nl_ctx *c, int on);

/* Leaves. nl_input wraps caller memory (not copied, no gradient). nl_leaf is the same with requires_grad
 * chosen. nl_new allocates an uninitialised arena tensor; nl_zeros a zeroed one; nl_scalar a 0-d value. */
nl_var *nl_input(nl_ctx *c, nl_tensor t);
nl_var *nl_leaf(nl_ctx *c, nl_tensor t, int requires_grad);
nl_var *nl_new(nl_ctx *c, nl_dtype dt, int ndim, const int64_t *shape);
nl_var *nl_zeros(nl_ctx *c, nl_dtype dt, int ndim, const int64_t *shape);
nl_var *nl_scalar(nl_ctx *c, nl_dtype dt, double v);
/* Stop-gradient: same value (shared), no gradient flows back. */
nl_var *nl_detach(nl_ctx *c, nl_var *v);

/* Reverse pass from a scalar loss (seed 1), or from any var with a given seed gradient (same shape).
 * Gradients accumulate into every var on the way that requires them (parameters: their flat grad array). */
nl_status nl_backward(nl_ctx *c, nl_var *loss);
nl_status nl_backward_seed(nl_ctx *c, nl_var *v, const nl_tensor *seed);

/* Gradient-ready hooks (data-parallel overlap: nl_dist_reducer in dist.h, docs/distributed.md). With fn set, each
 * nl_backward / nl_backward_seed first finds, for every leaf that requires a gradient and is an input of a recorded
 * node, its last consumer in the backward order (the earliest such node on the tape), and calls fn(ud, leaf) right
 * after that node's backward ran (or was skipped because no gradient reached it): no later node of this pass
 * touches the leaf's gradient, so fn may read it and start reducing it. Each such leaf is reported exactly once per
 * pass; a leaf that no recorded node reads is not reported. Gradients are unchanged by the hook itself. fn NULL
 * removes it. A backward function that writes some var's gradient without naming it in n->in[] would break the
 * guarantee; no engine or library op does. */
void nl_ctx_set_grad_hook(nl_ctx *c, nl_grad_hook_fn fn, void *ud);

/* Scalar value of a 1-element var (loss reporting). */
double nl_item(const nl_var *v);

/* ---- parameter store ---- */
typedef struct nl_param {
    nl_var var;          /* val and grad are views into the store's flat arrays */
    char name[96];
    int64_t offset;      /* element offset in the flat arrays */
    int64_t numel;
    int group;           /* optimizer parameter group (0 by default) */
    float lr_mult;       /* per-tensor learning-rate multiplier (muP etc.), 1 by default */
    float wd_mult;       /* per-tensor weight-decay multiplier, 1 by default */
    float fwd_mult;      /* forward multiplier used by parametrisations (muP readout); 1 by default */
    const float *mask;   /* optional (numel) 0/1 update mask (pruning, sparse fine-tuning); NULL = all */
} nl_param;

typedef struct nl_params {
    nl_dtype dtype;
    int n, cap;
    nl_param **p;        /* (n) stable pointers */
    void *data;          /* (total) flat values */
    void *grad;          /* (total) flat gradients */
    int64_t total;       /* elements in all parameters */
    int layout_only;     /* 1: names, shapes and offsets only; data and grad stay NULL (nl_params_init_layout) */
} nl_params;

nl_status nl_params_init(nl_params *ps, nl_dtype dt);
/* A store that records what nl_params_add is asked for (names, shapes, offsets, total) without allocating any
 * value memory: data and grad stay NULL. Checkpoint loaders build the architecture into such a store and compare
 * it with the file's header before the real store is allocated (nl_safetensors_check_params). */
nl_status nl_params_init_layout(nl_params *ps, nl_dtype dt);
void nl_params_free(nl_params *ps);
/* Add a zero-initialised parameter; returns its var (stable pointer) or NULL (error set: duplicate name,
 * bad shape, out of memory). Add all parameters before the first step: adding moves the flat arrays. */
nl_var *nl_params_add(nl_params *ps, const char *name, int ndim, const int64_t *shape);
nl_param *nl_params_find(const nl_params *ps, const char *name);
nl_param *nl_params_of(const nl_params *ps, const nl_var *v); /* the entry owning var v, or NULL */
void nl_params_zero_grad(nl_params *ps);
/* NL_OK when every value is finite; else NL_EFORMAT "<what>: tensor '<name>' holds a non-finite value (<v> at
 * element k)" for the first bad tensor. Checkpoint loaders call it on what they loaded. */
nl_status nl_params_check_finite(const nl_params *ps, const char *what);
/* Freeze/unfreeze: parameters whose name starts with prefix ("" = all) get requires_grad = on. Returns how
 * many matched. Frozen parameters receive no gradient (layer-local training, fine-tuning). */
int nl_params_set_trainable(nl_params *ps, const char *prefix, int on);
/* Copy all values from src into ps (same names/shapes required). */
nl_status nl_params_copy(nl_params *dst, const nl_params *src);

#ifdef __cplusplus
}
#endif
#endif
