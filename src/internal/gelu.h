/* Internal: the vectorised f32 GELU op (src/ops/gelu.c) behind nl_gelu. Not installed. */
#ifndef NL_INTERNAL_GELU_H
#define NL_INTERNAL_GELU_H
#include "nnlab/autograd.h"
/* GELU of x (f32 through the 8-wide erf/exp polynomials, |error| ~3e-7; f64 through libm). */
nl_var *nl__gelu_fast(nl_ctx *c, nl_var *x);
#endif
