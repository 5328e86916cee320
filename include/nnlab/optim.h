/* nnlab/optim.h — SGD (momentum, Nesterov, weight decay), Adam, AdamW; parameter groups; LR schedules;
 * clipping by global norm. State (momentum / first and second moments) lives in flat arrays the size of the
 * parameter store, so an update is one loop over each parameter's slice.
 *
 * Effective learning rate of parameter p at step t: lr * sched(t) * group_lr[p.group] * p.lr_mult.
 * Effective weight decay: weight_decay * group_wd[p.group] * p.wd_mult (L2 added to the gradient for SGD/Adam,
 * decoupled for AdamW). A parameter with a mask updates only where mask != 0. */
#ifndef NNLAB_OPTIM_H
#define NNLAB_OPTIM_H
#include "nnlab/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nl_optim_kind { NL_OPT_SGD = 0, NL_OPT_ADAM, NL_OPT_ADAMW } nl_optim_kind;
typedef enum nl_sched_kind {
    NL_SCHED_CONSTANT = 0, /* lr (after optional linear warmup) */
    NL_SCHED_COSINE,       /* warmup, then cosine from lr to lr*min_ratio at total_steps */
    NL_SCHED_INVSQRT,      /* warmup, then lr * sqrt(warmup / t) */
    NL_SCHED_LINEAR        /* warmup, then linear decay to lr*min_ratio at total_steps */
} nl_sched_kind;

#define NL_MAX_GROUPS 16

typedef struct nl_optim_config {
    nl_optim_kind kind;
    double lr;
    double momentum;        /* SGD */
    int nesterov;           /* SGD */
    double weight_decay;
    double beta1, beta2, eps; /* Adam/AdamW */
    double clip_norm;       /* clip gradients to this global L2 norm before the update; 0 = off */
    nl_sched_kind sched;
    int64_t warmup_steps;   /* linear warmup from 0 over this many steps (0 = none) */
    int64_t total_steps;    /* horizon of cosine/linear schedules */
    double min_ratio;       /* final lr / lr for cosine/linear */
} nl_optim_config;

typedef struct nl_optim {
    nl_optim_config cfg;
    nl_params *ps;
    void *m;                /* (ps->total) momentum / first moment, dtype of the store */
    void *v;                /* (ps->total) second moment (Adam/AdamW), NULL for SGD */
    int64_t step;           /* updates done */
    double group_lr[NL_MAX_GROUPS]; /* per-group LR multipliers, 1 by default */
    double group_wd[NL_MAX_GROUPS]; /* per-group weight-decay multipliers, 1 by default */
    double last_grad_norm;  /* global grad norm before clipping at the last step */
    int64_t n_state;        /* elements in m and v (ps->total at init; the store must not grow afterwards) */
} nl_optim;

/* lr 1e-3 (adam/adamw) / 1e-2 (sgd), betas 0.9/0.999, eps 1e-8, momentum 0, weight_decay 0 (0.01 for AdamW,
 * as PyTorch), no clipping, constant schedule without warmup. */
nl_optim_config nl_optim_defaults(nl_optim_kind kind);
/* Checks cfg (NL_EINVAL naming the bad field) and allocates zeroed state for the whole store. */
nl_status nl_optim_init(nl_optim *o, nl_params *ps, const nl_optim_config *cfg);
void nl_optim_free(nl_optim *o);
/* One update from the gradients in ps. Non-finite gradients: returns NL_ENONFINITE naming the first bad
 * parameter, and changes nothing (the parameters and state stay as they were).
 * Update rules (PyTorch semantics; g = grad * clip_scale; lr, wd the effective values above; t = step + 1):
 *   SGD:   g += wd*p; if momentum: buf = momentum*buf + g (buf starts at 0, so the first buf = g);
 *          d = nesterov ? g + momentum*buf : buf (d = g without momentum); p -= lr*d
 *   Adam:  g += wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 *          p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
 *   AdamW: p *= 1 - lr*wd, then Adam without the L2 term.
 * Frozen parameters (var.requires_grad == 0) are skipped entirely (not in the norm, not checked, not updated);
 * masked-out elements keep their value and state. Clipping (clip_norm > 0) multiplies the gradients used by
 * clip_norm / (norm + 1e-6) when norm > clip_norm, without writing to ps->grad. The norm and the finiteness
 * check cover every element of every trainable parameter (masked ones included). Math is done in double for
 * both f32 and f64 stores. */
nl_status nl_optim_step(nl_optim *o);
double nl_optim_lr(const nl_optim *o);             /* scheduled LR for the next step */
/* LR at step (0-based; W = warmup_steps, T = total_steps, r = min_ratio):
 *   step < W:  lr * (step + 1) / W            (the first update already moves; step W-1 reaches lr)
 *   else, with p = min(1, (step - W) / (T - W)) (p = 1 when T <= W):
 *     CONSTANT: lr;  COSINE: lr * (r + (1 - r) * (1 + cos(pi p)) / 2);  LINEAR: lr * (1 - (1 - r) p);
 *     INVSQRT:  lr * sqrt(W / step) (W = 0: lr / sqrt(step + 1)). */
double nl_sched_lr(const nl_optim_config *cfg, int64_t step);
/* Global L2 norm of all trainable gradients; clip to max_norm (scale in place by max_norm / (norm + 1e-6) when
 * norm > max_norm; nothing is scaled when the norm is not finite). Returns the norm before. The sum is taken in
 * fixed chunks and combined in order, so the result does not depend on the thread count. */
double nl_grad_global_norm(const nl_params *ps);
double nl_grad_clip(nl_params *ps, double max_norm);
nl_status nl_optim_parse_kind(const char *s, nl_optim_kind *out); /* "sgd" | "adam" | "adamw" */

#ifdef __cplusplus
}
#endif
#endif
