/* LM-Infinite attention inside the transformer LM, the "lminf" plug-in attention kind (transformer.h
 * nl_lm_attn_provide): the Lambda-shaped attention op of lm_infinite.h on
 * unrotated q, k (full sequences: blockwise O(n) op; incremental decoding: a ring-buffer cache per layer kept in
 * cache->ext[layer], n_global + n_local slots whatever the length). */
#include "lm_infinite/lm_infinite.h"
#include "nnlab/extend.h"
#include "transformer/transformer.h"
#include <assert.h>
#include <math.h>
#include <stdlib.h>

static void lminf_ext_free(void *p) {
    nl_lm_infinite_cache_free(p);
    free(p);
}

static nl_var *lminf_attend(nl_ctx *c, const nl_lm_attn_args *a, nl_lm_infinite_cfg lc) {
    const nl_lm *m = a->model;
    NL_REQUIRE(a->q, a->k, a->v);
    if (m->cfg.rope.variant == NL_ROPE_XPOS) {
        nl_set_error(NL_EINVAL, "lm: the lminf attention does not support xPos (use plain/linear/power/truncated RoPE)");
        return NULL;
    }
    const int64_t B = a->q->val.shape[0], H = a->q->val.shape[1], T = a->q->val.shape[2], D = a->q->val.shape[3];
    int64_t *pos = nl_scratch(c, sizeof(int64_t) * (size_t)T);
    if (!pos) return NULL;
    for (int64_t t = 0; t < T; t++) {
        if (a->pos[t] != floor(a->pos[t])) {
            nl_set_error(NL_EINVAL, "lm: the lminf attention needs integer positions (randomised positions are not supported)");
            return NULL;
        }
        pos[t] = (int64_t)a->pos[t];
    }
    if (!a->cache) return nl_lm_infinite_attention(c, a->q, a->k, a->v, pos, pos, a->theta, lc);

    nl_lm_cache *kc = a->cache;
    nl_lm_infinite_cache *lk = kc->ext[a->layer];
    if (!lk) {
        lk = calloc(1, sizeof *lk);
        if (!lk) { nl_set_error(NL_ENOMEM, "lm: out of memory (lminf cache)"); return NULL; }
        if (nl_lm_infinite_cache_init(lk, B, H, D, D, a->theta, lc)) { free(lk); return NULL; }
        kc->ext[a->layer] = lk;
        kc->ext_free = lminf_ext_free;
    }
    nl_var *o;
    if (lk->n_seen == 0 && T > 1) {
        o = nl_lm_infinite_attention(c, a->q, a->k, a->v, pos, pos, a->theta, lc);
        if (!o) return NULL;
        for (int64_t t = 0; t < T; t++) {
            nl_tensor kt, vt;
            if (nl_tensor_slice(&a->k->val, 2, t, t + 1, 1, &kt) || nl_tensor_slice(&a->v->val, 2, t, t + 1, 1, &vt) ||
                nl_lm_infinite_cache_append(lk, &kt, &vt, pos[t]))
                return NULL;
        }
        return o;
    }
    int64_t sh[4] = {B, H, T, D};
    o = nl_new(c, a->q->val.dtype, 4, sh);
    if (!o) return NULL;
    for (int64_t t = 0; t < T; t++) {
        nl_tensor kt, vt, qt, ot;
        if (nl_tensor_slice(&a->k->val, 2, t, t + 1, 1, &kt) || nl_tensor_slice(&a->v->val, 2, t, t + 1, 1, &vt) ||
            nl_tensor_slice(&a->q->val, 2, t, t + 1, 1, &qt) || nl_tensor_slice(&o->val, 2, t, t + 1, 1, &ot) ||
            nl_lm_infinite_cache_append(lk, &kt, &vt, pos[t]) || nl_lm_infinite_cache_attend(lk, &qt, pos[t], &ot))
            return NULL;
    }
    return o;
}

/* the registered "lminf" kind: n_global, n_local and limit = n_local from the model's configuration */
static nl_var *lminf_attention(nl_ctx *c, const nl_lm_attn_args *a, void *ud) {
    (void)ud;
    const nl_lm *m = a->model;
    const nl_lm_infinite_cfg lc = {m->cfg.lminf_global, m->cfg.lminf_local, m->cfg.lminf_local};
    return lminf_attend(c, a, lc);
}

nl_var *nl_lm_infinite_attn_custom(nl_ctx *c, const nl_lm_attn_args *a, void *ud) {
    if (!ud) {
        nl_set_error(NL_EINVAL, "lm: the custom lminf attention needs its nl_lm_infinite_cfg as attn_ud");
        return NULL;
    }
    return lminf_attend(c, a, *(const nl_lm_infinite_cfg *)ud);
}

void nl_lm_infinite_register(void) {
    /* any_length = 1: the Lambda mask bounds every distance, so sequences longer than the training context are fine */
    nl_status s = nl_lm_attn_provide(NL_LM_ATTN_LMINF, lminf_attention, NULL, 1);
    (void)s;
    assert(s == NL_OK);
}
