/* Transformer LM configuration: the names of the norm and attention kinds, and the defaults (transformer.h). */
#include "transformer/transformer.h"
#include <string.h>

static const char *const norm_names[NL_LM_NORM_KIND_COUNT] = {"layernorm", "rmsnorm", "batchnorm", "powernorm"};
static const char *const attn_names[NL_LM_ATTN_KIND_COUNT] = {"vanilla", "lminf", "custom"};

const char *nl_lm_norm_name(nl_lm_norm_kind k) { return (k >= 0 && k < NL_LM_NORM_KIND_COUNT) ? norm_names[k] : "?"; }
const char *nl_lm_attn_name(nl_lm_attn_kind k) { return (k >= 0 && k < NL_LM_ATTN_KIND_COUNT) ? attn_names[k] : "?"; }

nl_status nl_lm_norm_parse(const char *s, nl_lm_norm_kind *out) {
    for (int i = 0; s && i < NL_LM_NORM_KIND_COUNT; i++)
        if (!strcmp(s, norm_names[i])) { *out = (nl_lm_norm_kind)i; return NL_OK; }
    return nl_set_error(NL_EINVAL, "unknown norm kind '%s' (choose layernorm|rmsnorm|batchnorm|powernorm)", s ? s : "(null)");
}

nl_status nl_lm_attn_parse(const char *s, nl_lm_attn_kind *out) {
    for (int i = 0; s && i < NL_LM_ATTN_KIND_COUNT; i++)
        if (!strcmp(s, attn_names[i])) { *out = (nl_lm_attn_kind)i; return NL_OK; }
    return nl_set_error(NL_EINVAL, "unknown attention kind '%s' (choose vanilla|lminf|custom)", s ? s : "(null)");
}

nl_lm_config nl_lm_config_default(void) {
    nl_lm_config c;
    memset(&c, 0, sizeof c);
    c.vocab = 256;
    c.context = 128;
    c.n_layers = 2;
    c.d_model = 128;
    c.n_heads = 4;
    c.d_ff = 512;
    c.norm = NL_LM_NORM_LAYER;
    c.norm_eps = 1e-5;
    c.bn_momentum = 0.1;
    c.pn_alpha = 0.9;
    c.pn_warmup = 100;
    c.tie_weights = 1;
    c.rope = nl_rope_config_default();
    c.attn = NL_LM_ATTN_VANILLA;
    c.lminf_global = 4;
    c.lminf_local = 0;
    c.dtype = NL_F32;
    return c;
}
