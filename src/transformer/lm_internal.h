/* Internal glue between the transformer LM (lm.c) and optional attention implementations. */
#ifndef NL_LM_INTERNAL_H
#define NL_LM_INTERNAL_H
#include "nnlab/transformer.h"

/* LM-Infinite attention for one layer (lm_lminf.c, on top of include/nnlab/longctx.h): full sequences through the
 * blockwise op, incremental decoding through a per-layer ring-buffer cache in a->cache->ext[layer]. */
nl_var *nl_lm__lminf_attention(nl_ctx *c, const nl_lm_attn_args *a);

/* Exact-erf GELU with a vectorised f32 kernel (lm_gelu.c); the same function as nl_gelu to ~3e-7. */
nl_var *nl_lm__gelu(nl_ctx *c, nl_var *x);

#endif
