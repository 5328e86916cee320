/* The small UNet of lib/diffusion (architecture in diffusion.h). Parameters are looked up by name at each forward
 * (about 100 entries: negligible next to the convolutions). */
#include "diffusion/diffusion.h"
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nl_unet_config nl_unet_defaults(int image_size) {
    nl_unet_config c;
    memset(&c, 0, sizeof c);
    c.image_size = image_size;
    c.in_channels = 1;
    c.base_channels = image_size <= 16 ? 16 : 32;
    c.levels = 3;
    c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.ch_mult[2] = 2, c.ch_mult[3] = 2;
    c.groups = image_size <= 16 ? 4 : 8;
    c.attn = 1;
    return c;
}

nl_status nl_unet_config_check(const nl_unet_config *c) {
    if (c->levels < 1 || c->levels > NL_UNET_MAX_LEVELS)
        return nl_set_error(NL_EINVAL, "unet: levels must be in 1..%d (got %d)", NL_UNET_MAX_LEVELS, c->levels);
    if (c->in_channels < 1 || c->in_channels > 16)
        return nl_set_error(NL_EINVAL, "unet: in_channels must be in 1..16 (got %d)", c->in_channels);
    if (c->base_channels < 2 || c->base_channels > 1024 || c->base_channels % 2)
        return nl_set_error(NL_EINVAL, "unet: base_channels must be even, in 2..1024 (got %d)", c->base_channels);
    if (c->groups < 1 || c->base_channels % c->groups)
        return nl_set_error(NL_EINVAL, "unet: groups %d must divide base_channels %d", c->groups, c->base_channels);
    for (int l = 0; l < c->levels; l++)
        if (c->ch_mult[l] < 1 || c->ch_mult[l] > 16)
            return nl_set_error(NL_EINVAL, "unet: ch_mult[%d] must be in 1..16 (got %d)", l, c->ch_mult[l]);
    const int div = 1 << (c->levels - 1);
    if (c->image_size < 4 || c->image_size > 256 || c->image_size % div || c->image_size / div < 2)
        return nl_set_error(NL_EINVAL, "unet: image_size %d must be in 4..256, divisible by 2^(levels-1) = %d with at "
                            "least 2 pixels left at the lowest resolution", c->image_size, div);
    if (c->attn != 0 && c->attn != 1) return nl_set_error(NL_EINVAL, "unet: attn must be 0 or 1 (got %d)", c->attn);
    return NL_OK;
}

static int ch_of(const nl_unet_config *c, int l) { return c->base_channels * c->ch_mult[l]; }

/* ---- building ---- */
static nl_status add(nl_params *ps, const char *name, int nd, int64_t a, int64_t b, int64_t cc, int64_t d) {
    int64_t s[4] = {a, b, cc, d};
    return nl_params_add(ps, name, nd, s) ? NL_OK : nl_last_status();
}

static nl_status add_conv(nl_params *ps, const char *pre, int64_t out, int64_t in, int k) {
    char n[96];
    nl_status s;
    snprintf(n, sizeof n, "%s.w", pre);
    if ((s = add(ps, n, 4, out, in, k, k))) return s;
    snprintf(n, sizeof n, "%s.b", pre);
    return add(ps, n, 1, out, 1, 1, 1);
}

static nl_status add_lin(nl_params *ps, const char *pre, int64_t out, int64_t in) {
    char n[96];
    nl_status s;
    snprintf(n, sizeof n, "%s.w", pre);
    if ((s = add(ps, n, 2, out, in, 1, 1))) return s;
    snprintf(n, sizeof n, "%s.b", pre);
    return add(ps, n, 1, out, 1, 1, 1);
}

static nl_status add_norm(nl_params *ps, const char *pre, int64_t C) {
    char n[96];
    nl_status s;
    snprintf(n, sizeof n, "%s.w", pre);
    if ((s = add(ps, n, 1, C, 1, 1, 1))) return s;
    snprintf(n, sizeof n, "%s.b", pre);
    return add(ps, n, 1, C, 1, 1, 1);
}

static nl_status add_res(nl_params *ps, const char *pre, int64_t in, int64_t out, int64_t temb) {
    char n[96];
    nl_status s;
#define SUB(suffix) (snprintf(n, sizeof n, "%s." suffix, pre), n)
    if ((s = add_norm(ps, SUB("norm1"), in))) return s;
    if ((s = add_conv(ps, SUB("conv1"), out, in, 3))) return s;
    if ((s = add_lin(ps, SUB("temb"), out, temb))) return s;
    if ((s = add_norm(ps, SUB("norm2"), out))) return s;
    if ((s = add_conv(ps, SUB("conv2"), out, out, 3))) return s;
    if (in != out && (s = add_conv(ps, SUB("skip"), out, in, 1))) return s;
#undef SUB
    return NL_OK;
}

/* Adds every parameter of cfg to ps in store order (also used on a layout-only store by the checkpoint loader). */
static nl_status unet_build(nl_params *ps, const nl_unet_config *c) {
    const int L = c->levels, ch = c->base_channels, te = 4 * ch;
    char n[96];
    nl_status s;
    if ((s = add_conv(ps, "conv_in", ch, c->in_channels, 3))) return s;
    if ((s = add_lin(ps, "temb.fc1", te, ch))) return s;
    if ((s = add_lin(ps, "temb.fc2", te, te))) return s;
    int prev = ch;
    for (int l = 0; l < L; l++) {
        snprintf(n, sizeof n, "down%d.res", l);
        if ((s = add_res(ps, n, prev, ch_of(c, l), te))) return s;
        prev = ch_of(c, l);
        if (l < L - 1) {
            snprintf(n, sizeof n, "down%d.down", l);
            if ((s = add_conv(ps, n, prev, prev, 3))) return s;
        }
    }
    if ((s = add_res(ps, "mid.res1", prev, prev, te))) return s;
    if (c->attn) {
        if ((s = add_norm(ps, "mid.attn.norm", prev))) return s;
        const char *qkvp[4] = {"mid.attn.q", "mid.attn.k", "mid.attn.v", "mid.attn.proj"};
        for (int k = 0; k < 4; k++)
            if ((s = add_lin(ps, qkvp[k], prev, prev))) return s;
    }
    if ((s = add_res(ps, "mid.res2", prev, prev, te))) return s;
    for (int l = L - 1; l >= 0; l--) {
        const int skip0 = ch_of(c, l), skip1 = l > 0 ? ch_of(c, l - 1) : ch;
        snprintf(n, sizeof n, "up%d.res0", l);
        if ((s = add_res(ps, n, prev + skip0, ch_of(c, l), te))) return s;
        snprintf(n, sizeof n, "up%d.res1", l);
        if ((s = add_res(ps, n, ch_of(c, l) + skip1, ch_of(c, l), te))) return s;
        prev = ch_of(c, l);
        if (l > 0) {
            snprintf(n, sizeof n, "up%d.up", l);
            if ((s = add_conv(ps, n, prev, prev, 3))) return s;
        }
    }
    if ((s = add_norm(ps, "out.norm", prev))) return s;
    return add_conv(ps, "out.conv", c->in_channels, prev, 3);
}

int nl_unet_is_matrix(const nl_param *p) {
    return (p->var.val.ndim == 2 || p->var.val.ndim == 4) && !strstr(p->name, "norm");
}

static void unet_init_values(nl_unet *u, uint64_t seed) {
    nl_rng r;
    nl_rng_init(&r, seed, NL_STREAM_INIT);
    for (int i = 0; i < u->ps.n; i++) {
        nl_param *p = u->ps.p[i];
        float *v = (float *)u->ps.data + p->offset;
        const size_t len = strlen(p->name);
        const int is_bias = len > 2 && !strcmp(p->name + len - 2, ".b");
        if (strstr(p->name, "norm")) {
            for (int64_t k = 0; k < p->numel; k++) v[k] = is_bias ? 0.0f : 1.0f;
            continue;
        }
        int64_t fan_in;
        if (!is_bias) fan_in = p->numel / p->var.val.shape[0];
        else { /* the weight stored just before */
            const nl_param *w = u->ps.p[i - 1];
            fan_in = w->numel / w->var.val.shape[0];
        }
        const double bound = 1.0 / sqrt((double)fan_in);
        for (int64_t k = 0; k < p->numel; k++) v[k] = (float)((2.0 * nl_rng_uniform(&r) - 1.0) * bound);
    }
}

nl_status nl_unet_init(nl_unet *u, const nl_unet_config *cfg, uint64_t seed) {
    memset(u, 0, sizeof *u);
    nl_status s = nl_unet_config_check(cfg);
    if (s) return s;
    u->cfg = *cfg;
    if ((s = nl_params_init(&u->ps, NL_F32))) return s;
    if ((s = unet_build(&u->ps, cfg))) {
        nl_params_free(&u->ps);
        memset(u, 0, sizeof *u);
        return s;
    }
    unet_init_values(u, seed);
    return NL_OK;
}

void nl_unet_free(nl_unet *u) {
    if (!u) return;
    nl_params_free(&u->ps);
    free(u->internal);
    memset(u, 0, sizeof *u);
}

int64_t nl_unet_param_count(const nl_unet *u) {
    int64_t n = 0;
    for (int i = 0; i < u->ps.n; i++)
        if (u->ps.p[i]->var.requires_grad) n += u->ps.p[i]->numel;
    return n;
}

/* ---- forward ---- */
static nl_var *P(nl_ctx *c, nl_unet *u, const char *pre, const char *suf) {
    char n[128];
    snprintf(n, sizeof n, "%s.%s", pre, suf);
    nl_param *p = nl_params_find(&u->ps, n);
    if (!p) {
        nl_set_error(NL_EINVAL, "unet: parameter '%s' missing", n);
        return NULL;
    }
    if (u->hook && suf[0] == 'w' && nl_unet_is_matrix(p)) return u->hook(c, p, &p->var, u->hook_ud);
    return &p->var;
}

static nl_var *conv(nl_ctx *c, nl_unet *u, const char *pre, nl_var *x, int stride, int pad) {
    return nl_conv2d(c, x, P(c, u, pre, "w"), P(c, u, pre, "b"), stride, pad);
}

static nl_var *lin(nl_ctx *c, nl_unet *u, const char *pre, nl_var *x) {
    return nl_linear(c, x, P(c, u, pre, "w"), P(c, u, pre, "b"));
}

static nl_var *norm(nl_ctx *c, nl_unet *u, const char *pre, nl_var *x) {
    return nl_groupnorm(c, x, u->cfg.groups, P(c, u, pre, "w"), P(c, u, pre, "b"), 1e-5);
}

/* temb_act = SiLU(temb) [N, 4ch] (shared by every block). */
static nl_var *resblock(nl_ctx *c, nl_unet *u, const char *pre, nl_var *x, nl_var *temb_act) {
    char n[96];
#define SUB(suffix) (snprintf(n, sizeof n, "%s." suffix, pre), n)
    nl_var *h = conv(c, u, SUB("conv1"), nl_silu(c, norm(c, u, SUB("norm1"), x)), 1, 1);
    nl_var *e = lin(c, u, SUB("temb"), temb_act);
    if (!h || !e) return NULL;
    int64_t es[4] = {e->val.shape[0], e->val.shape[1], 1, 1};
    h = nl_add(c, h, nl_reshape(c, e, 4, es));
    h = conv(c, u, SUB("conv2"), nl_silu(c, norm(c, u, SUB("norm2"), h)), 1, 1);
    nl_var *skip = x;
    if (x->val.shape[1] != (h ? h->val.shape[1] : x->val.shape[1])) skip = conv(c, u, SUB("skip"), x, 1, 0);
#undef SUB
    return nl_add(c, skip, h);
}

static nl_var *attnblock(nl_ctx *c, nl_unet *u, nl_var *x) {
    NL_REQUIRE(x);
    const int64_t N = x->val.shape[0], C = x->val.shape[1], H = x->val.shape[2], W = x->val.shape[3], HW = H * W;
    int64_t s3[3] = {N, C, HW}, s4[4] = {N, 1, HW, C}, s3t[3] = {N, HW, C}, so[4] = {N, C, H, W};
    const int perm[3] = {0, 2, 1};
    nl_var *h = nl_permute(c, nl_reshape(c, norm(c, u, "mid.attn.norm", x), 3, s3), perm); /* [N, HW, C] */
    h = nl_contiguous(c, h);
    nl_var *q = nl_reshape(c, lin(c, u, "mid.attn.q", h), 4, s4);
    nl_var *k = nl_reshape(c, lin(c, u, "mid.attn.k", h), 4, s4);
    nl_var *v = nl_reshape(c, lin(c, u, "mid.attn.v", h), 4, s4);
    nl_var *a = nl_reshape(c, nl_attention(c, q, k, v, NULL, 0, 0.0), 3, s3t);
    nl_var *o = nl_permute(c, lin(c, u, "mid.attn.proj", a), perm); /* [N, C, HW] view */
    return nl_add(c, x, nl_reshape(c, o, 4, so));
}

nl_var *nl_unet_forward(nl_ctx *c, nl_unet *u, nl_var *x, const float *t) {
    NL_REQUIRE(x);
    const nl_unet_config *cf = &u->cfg;
    const int S = cf->image_size, L = cf->levels, ch = cf->base_channels;
    if (x->val.dtype != NL_F32 || x->val.ndim != 4 || x->val.shape[1] != cf->in_channels || x->val.shape[2] != S ||
        x->val.shape[3] != S) {
        char what[96];
        snprintf(what, sizeof what, "x must be f32 [N, %d, %d, %d]", cf->in_channels, S, S);
        return nl_op_fail(NL_ESHAPE, "unet", what, x, NULL);
    }
    const int64_t N = x->val.shape[0];
    /* sinusoidal embedding [N, ch] */
    int64_t es[2] = {N, ch};
    nl_var *emb = nl_new(c, NL_F32, 2, es);
    if (!emb) return NULL;
    const int half = ch / 2;
    for (int64_t i = 0; i < N; i++) {
        float *e = (float *)emb->val.data + i * ch;
        for (int k = 0; k < half; k++) {
            const double f = exp(-log(10000.0) * k / (half > 1 ? half - 1 : 1));
            e[k] = (float)sin(t[i] * f);
            e[half + k] = (float)cos(t[i] * f);
        }
    }
    nl_var *temb = lin(c, u, "temb.fc2", nl_silu(c, lin(c, u, "temb.fc1", emb)));
    nl_var *ta = nl_silu(c, temb);
    nl_var *stack[2 * NL_UNET_MAX_LEVELS + 2];
    int sp = 0;
    char n[64];
    nl_var *h = conv(c, u, "conv_in", x, 1, 1);
    stack[sp++] = h;
    for (int l = 0; l < L; l++) {
        snprintf(n, sizeof n, "down%d.res", l);
        h = resblock(c, u, n, h, ta);
        stack[sp++] = h;
        if (l < L - 1) {
            snprintf(n, sizeof n, "down%d.down", l);
            h = conv(c, u, n, h, 2, 1);
            stack[sp++] = h;
        }
    }
    h = resblock(c, u, "mid.res1", h, ta);
    if (cf->attn) h = attnblock(c, u, h);
    h = resblock(c, u, "mid.res2", h, ta);
    for (int l = L - 1; l >= 0; l--) {
        for (int r = 0; r < 2; r++) {
            nl_var *cat[2] = {h, stack[--sp]};
            if (!cat[0] || !cat[1]) return NULL;
            snprintf(n, sizeof n, "up%d.res%d", l, r);
            h = resblock(c, u, n, nl_concat(c, 2, cat, 1), ta);
        }
        if (l > 0) {
            snprintf(n, sizeof n, "up%d.up", l);
            h = conv(c, u, n, nl_upsample_nearest(c, h, 2), 1, 1);
        }
    }
    return conv(c, u, "out.conv", nl_silu(c, norm(c, u, "out.norm", h)), 1, 1);
}

/* The layout of cfg (names and shapes only) into a layout-only store: for the checkpoint loader. */
nl_status nl__unet_layout(const nl_unet_config *cfg, nl_params *ps) {
    nl_status s = nl_params_init_layout(ps, NL_F32);
    if (s) return s;
    if ((s = unet_build(ps, cfg))) nl_params_free(ps);
    return s;
}
