/* Internal helper shared by the GP regression baseline sources (lib/gp/gpr_core.c, lib/gp/gpr_fit.c). */
#ifndef NL_GPR_INTERNAL_H
#define NL_GPR_INTERNAL_H
#include "gp/gp.h"
#include "nnlab/base.h"

/* 1 if every one of the n values is finite. */
int nl_gpr__all_finite(const double *v, int64_t n);
#endif
