/* nnlab/gradcheck.h — finite-difference gradient checks for ops and models.
 *
 * f builds a graph from n leaf vars (created from the given tensors with requires_grad = 1) and returns any
 * var; the check uses the scalar L = sum(out * R) with R a fixed random tensor, so every output component is
 * tested. Each input element is perturbed by +-eps (central differences) and compared with the analytic
 * gradient: |num - ana| <= atol + rtol * max(|num|, |ana|). Inputs are restored afterwards. */
#ifndef NNLAB_GRADCHECK_H
#define NNLAB_GRADCHECK_H
#include "nnlab/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef nl_var *(*nl_gc_fn)(nl_ctx *c, nl_var **in, void *ud);

typedef struct nl_gc_result {
    double max_abs_err;      /* largest |num - ana| */
    double max_rel_err;      /* largest |num - ana| / max(|num|, |ana|, 1e-12) */
    int64_t checked;         /* elements compared */
    int64_t failed;          /* elements outside tolerance */
    char first_failure[256]; /* description of the first failing element */
} nl_gc_result;

/* Returns NL_OK if every element passes (NL_EINVAL otherwise, message = first failure). wrt: which inputs to
 * differentiate (NULL = all). */
nl_status nl_gradcheck(nl_gc_fn f, void *ud, int n, nl_tensor *inputs, const int *wrt, double eps, double atol,
                       double rtol, nl_gc_result *res);

#ifdef __cplusplus
}
#endif
#endif
