/* Internal helpers shared by the GP regression baseline sources (src/gpreg). */
#ifndef NL_GPR_INTERNAL_H
#define NL_GPR_INTERNAL_H
#include "gp/gp.h"
#include "nnlab/base.h"

/* kern(r^2) / outputscale for the kernel, and c(r^2) such that dk/dlog ls_i = os * c * (dx_i / ls_i)^2. */
void nl_gpr__kern_and_dls(nl_gpr_kernel kernel, double r2, double *kv, double *c);
/* 1 if every one of the n values is finite. */
int nl_gpr__all_finite(const double *v, int64_t n);
/* K (n, n) full symmetric kernel of x [n, d] (no noise). */
void nl_gpr__kmat_sym(const nl_gpr_hyper *h, const double *x, int64_t n, double *K);
/* nl_gp_fit of K + noise I (K (n, n) is kept), retried once with jitter 1e-8 * os. `who` names the caller. */
nl_status nl_gpr__factor(const nl_gpr_hyper *h, double *K, int64_t n, const double *y, nl_gp *gp, const char *who);
/* log Gamma(x; a, b) density (rate b). */
double nl_gpr__log_gamma_pdf(double x, double a, double b);
#endif
