/* BiPer: the weight binarisers, the binary activation with its normalised surrogate, the regulariser, the QE
 * metric, and the 4-conv binary CNN (formulas in biper.h). */
#include "biper/biper.h"
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define BP_EPS 1e-5
#define BP_STREAM_INIT ((uint64_t)0x62697065ULL << 24)

static inline float sgn1(float v) { return v >= 0 ? 1.0f : -1.0f; } /* sign with sign(0) = +1 */

/* ---- weights ---- */
nl_var *nl_biper_weight(nl_ctx *c, nl_var *w, double omega, nl_biper_wmode mode) {
    NL_REQUIRE(w);
    if (w->val.dtype != NL_F32) return nl_op_fail(NL_EINVAL, "biper_weight", "f32 weights only", w, NULL);
    if (mode != NL_BIPER_STE && !(omega > 0)) return nl_op_fail(NL_EINVAL, "biper_weight", "omega must be > 0", w, NULL);
    nl_var *src = w;
    if (mode != NL_BIPER_STE) {
        src = nl_sin(c, nl_mul_scalar(c, w, omega)); /* sin(omega W); its backward is omega cos(omega W) */
        if (!src || mode == NL_BIPER_SIN) return src;
    }
    nl_tensor t = nl_contig(c, &src->val);
    nl_var *y = nl_new(c, NL_F32, src->val.ndim, src->val.shape); /* same shape: sign(src) */
    if (!t.data || !y) return NULL;
    const float *sp = t.data;
    float *yp = y->val.data;
    const int64_t n = nl_tensor_numel(&y->val);
    for (int64_t i = 0; i < n; i++) yp[i] = sgn1(sp[i]);
    return nl_straight_through(c, y, src); /* identity through sign */
}

/* ---- activation: saved row statistics ---- */
typedef struct act_saved {
    int64_t N, D;
    int train;
    float *s, *m; /* (N) sqrt(Var + eps) and the row mean (train); s = 1, m = 0 in eval */
} act_saved;

static void act_backward(nl_ctx *c, nl_node *n) {
    const act_saved *sv = n->saved;
    nl_var *a = n->in[0];
    nl_tensor *ga = nl_grad(c, a);
    if (!ga) return;
    nl_tensor at = nl_contig(c, &a->val);
    if (!at.data) return;
    const float *x = at.data, *g = nl_node_grad_out(n)->data;
    float *gx = ga->data;
    const int64_t D = sv->D;
    for (int64_t r = 0; r < sv->N; r++) {
        const float *xr = x + r * D, *gr = g + r * D;
        float *out = gx + r * D;
        const double s = sv->s[r], m = sv->m[r];
        double hx = 0; /* sum_i h_i a_i, h_i = g_i max(0, 2 - 2|a0_i|) */
        for (int64_t i = 0; i < D; i++) {
            double a0 = xr[i] / s, h = gr[i] * fmax(0.0, 2.0 - 2.0 * fabs(a0));
            hx += h * xr[i];
            out[i] += (float)(h / s);
        }
        /* d a0_i / d a_j through s = sqrt(v + eps), v = sum_j (a_j - m)^2 / (D - 1):
         * dL/da_j += -(sum_i h_i a_i) / s^3 * (a_j - m) / (D - 1) */
        if (sv->train && D > 1) {
            const double k = -hx / (s * s * s) / (double)(D - 1);
            for (int64_t i = 0; i < D; i++) out[i] += (float)(k * (xr[i] - m));
        }
    }
}

nl_var *nl_biper_act(nl_ctx *c, nl_var *a, int train) {
    NL_REQUIRE(a);
    if (a->val.dtype != NL_F32 || a->val.ndim < 2) return nl_op_fail(NL_EINVAL, "biper_act", "f32 [N, ...] input expected", a, NULL);
    nl_tensor at = nl_contig(c, &a->val);
    nl_tensor y = nl_arena_tensor(c->arena, NL_F32, a->val.ndim, a->val.shape); /* same shape: sign(a) */
    act_saved *sv = nl_scratch(c, sizeof *sv);
    const int64_t N = a->val.shape[0], D = N ? nl_tensor_numel(&a->val) / N : 0;
    float *st = nl_scratch(c, (size_t)(2 * (N ? N : 1)) * sizeof(float)); /* (2, N) */
    if (!at.data || !y.data || !sv || !st) return NULL;
    sv->N = N, sv->D = D, sv->train = train, sv->s = st, sv->m = st + N;
    const float *x = at.data;
    float *yp = y.data;
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * D;
        double m = 0, v = 0;
        if (train && D > 1) {
            for (int64_t i = 0; i < D; i++) m += xr[i];
            m /= (double)D;
            for (int64_t i = 0; i < D; i++) v += (xr[i] - m) * (xr[i] - m);
            v /= (double)(D - 1); /* unbiased, as torch.var */
        }
        sv->m[r] = (float)m;
        sv->s[r] = train ? (float)sqrt(v + BP_EPS) : 1.0f;
        for (int64_t i = 0; i < D; i++) yp[r * D + i] = sgn1(xr[i]);
    }
    nl_var *in[1] = {a};
    return nl_custom(c, "biper_act", y, 1, in, act_backward, sv);
}

nl_var *nl_biper_reg(nl_ctx *c, nl_var *w, double omega, double tau) {
    nl_var *s = nl_sin(c, nl_mul_scalar(c, w, omega));
    return nl_mul_scalar(c, nl_mean(c, nl_square(c, s), NL_AXIS_ALL, 0), tau);
}

double nl_biper_qe(const float *w, int64_t n, double omega) {
    double acc = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = sin(omega * w[i]);
        acc += fabs(s - (s >= 0 ? 1.0 : -1.0));
    }
    return n > 0 ? acc / (double)n : 0.0;
}

double nl_biper_qe_normal(double omega, double s) {
    /* |sin x| = 2/pi - 4/pi sum_k cos(2kx)/(4k^2-1); E cos(2k omega w) = exp(-2 k^2 omega^2 s^2) */
    double sum = 0, a = 2.0 * omega * omega * s * s;
    for (int k = 1; k < 100000; k++) {
        double t = exp(-a * k * k) / (4.0 * k * k - 1.0);
        sum += t;
        if (t < 1e-17) break;
    }
    return 1.0 - (2.0 / M_PI - 4.0 / M_PI * sum);
}

/* ---- network ---- */
static nl_status bn_add(nl_params *ps, nl_biper_bn *bn, const char *name, int64_t C) {
    char n[64];
    snprintf(n, sizeof n, "%s.g", name);
    if (!(bn->g = nl_params_add(ps, n, 1, &C))) return nl_last_status();
    snprintf(n, sizeof n, "%s.b", name);
    if (!(bn->b = nl_params_add(ps, n, 1, &C))) return nl_last_status();
    snprintf(n, sizeof n, "buf.%s.rm", name);
    if (!(bn->rm = nl_params_add(ps, n, 1, &C))) return nl_last_status();
    snprintf(n, sizeof n, "buf.%s.rv", name);
    if (!(bn->rv = nl_params_add(ps, n, 1, &C))) return nl_last_status();
    return NL_OK;
}

nl_status nl_biper_net_init(nl_biper_net *m, int c1, int c, uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (c1 < 1 || c < 1 || c1 > 4096 || c > 4096) return nl_set_error(NL_EINVAL, "biper net: channels %d, %d outside 1..4096", c1, c);
    nl_status s = nl_params_init(&m->ps, NL_F32);
    if (s) return s;
    m->c1 = c1, m->c = c;
    const int64_t C = c, K = 10, F = 9 * (int64_t)c;
    char n[64];
    if (!(m->w1 = nl_params_add(&m->ps, "conv1.w", 4, (int64_t[]){c1, 1, 3, 3})) || (s = bn_add(&m->ps, &m->bn1, "bn1", c1))) goto fail;
    for (int l = 0; l < NL_BIPER_NBIN; l++) {
        snprintf(n, sizeof n, "bconv%d.w", l + 2);
        if (!(m->wb[l] = nl_params_add(&m->ps, n, 4, (int64_t[]){c, l ? c : c1, 3, 3}))) goto fail;
        snprintf(n, sizeof n, "bconv%d.alpha", l + 2);
        if (!(m->alpha[l] = nl_params_add(&m->ps, n, 1, &C))) goto fail;
        snprintf(n, sizeof n, "bn%d", l + 2);
        if ((s = bn_add(&m->ps, &m->bn[l], n, C))) goto fail;
    }
    if (!(m->fc_w = nl_params_add(&m->ps, "fc.w", 2, (int64_t[]){K, F})) || !(m->fc_b = nl_params_add(&m->ps, "fc.b", 1, &K))) goto fail;
    nl_params_set_trainable(&m->ps, "buf.", 0);
    /* as the official models (`self.apply(_weights_init)`): every conv, the float first one and the binary ones,
     * kaiming_normal_ = N(0, 2 / fan_in); the linear layer keeps the PyTorch default U(+-1/sqrt(fan_in)); BN gamma 1
     * beta 0 running var 1; alpha U(0, 1) */
    nl_rng r;
    nl_rng_init(&r, seed, BP_STREAM_INIT);
    nl_rng_fill_normal(&r, &m->w1->val, 0.0, sqrt(2.0 / 9.0));
    nl_biper_bn *bns[NL_BIPER_NBIN + 1] = {&m->bn1, &m->bn[0], &m->bn[1], &m->bn[2]};
    for (int l = 0; l < NL_BIPER_NBIN; l++) {
        nl_rng_fill_normal(&r, &m->wb[l]->val, 0.0, sqrt(2.0 / (9.0 * (l ? c : c1))));
        nl_rng_fill_uniform(&r, &m->alpha[l]->val, 0.0, 1.0);
    }
    for (int l = 0; l <= NL_BIPER_NBIN; l++) nl_tensor_fill(&bns[l]->g->val, 1.0), nl_tensor_fill(&bns[l]->rv->val, 1.0);
    nl_rng_fill_uniform(&r, &m->fc_w->val, -1.0 / sqrt((double)F), 1.0 / sqrt((double)F));
    nl_rng_fill_uniform(&r, &m->fc_b->val, -1.0 / sqrt((double)F), 1.0 / sqrt((double)F));
    return NL_OK;
fail:
    s = nl_last_status() ? nl_last_status() : NL_ENOMEM;
    nl_params_free(&m->ps);
    memset(m, 0, sizeof *m);
    return s;
}

void nl_biper_net_free(nl_biper_net *m) {
    nl_params_free(&m->ps);
    memset(m, 0, sizeof *m);
}

static nl_var *bn_apply(nl_ctx *c, nl_var *x, const nl_biper_bn *bn, int train) {
    return nl_batchnorm(c, x, bn->g, bn->b, bn->rm, bn->rv, 0.1, BP_EPS, train);
}

/* x [N, C, H, W] * alpha [C] per channel */
static nl_var *scale_apply(nl_ctx *c, nl_var *x, nl_var *alpha) {
    const int64_t C = alpha->val.shape[0];
    return nl_mul(c, x, nl_reshape(c, alpha, 4, (int64_t[]){1, C, 1, 1}));
}

nl_var *nl_biper_forward(nl_ctx *c, nl_biper_net *m, nl_var *x, double omega, nl_biper_wmode mode, int train) {
    NL_REQUIRE(x);
    const int64_t N = x->val.shape[0];
    nl_var *h = nl_reshape(c, x, 4, (int64_t[]){N, 1, 28, 28});
    h = nl_maxpool2d(c, bn_apply(c, nl_conv2d(c, h, m->w1, NULL, 1, 1), &m->bn1, train), 2, 2, 0); /* [N, c1, 14, 14] */
    for (int l = 0; l < NL_BIPER_NBIN; l++) {
        nl_var *wb = nl_biper_weight(c, m->wb[l], omega, mode);
        h = bn_apply(c, scale_apply(c, nl_conv2d(c, nl_biper_act(c, h, train), wb, NULL, 1, 1), m->alpha[l]), &m->bn[l], train);
        if (l > 0) h = nl_maxpool2d(c, h, 2, 2, 0); /* L3: 7x7, L4: 3x3 */
    }
    if (!h) return NULL;
    return nl_linear(c, nl_reshape(c, h, 2, (int64_t[]){N, 9 * (int64_t)m->c}), m->fc_w, m->fc_b);
}

double nl_biper_net_qe(const nl_biper_net *m, double omega) {
    double q = 0;
    for (int l = 0; l < NL_BIPER_NBIN; l++) q += nl_biper_qe(m->wb[l]->val.data, nl_tensor_numel(&m->wb[l]->val), omega);
    return q;
}

nl_status nl_biper_layer_fn(nl_biper_net *m, int l, const float *s, int64_t n_s, float *out) {
    if (l < 0 || l >= NL_BIPER_NBIN || n_s < 1) return nl_set_error(NL_EINVAL, "biper layer fn: layer %d, %lld values", l, (long long)n_s);
    const int64_t C = m->c;
    nl_ctx *c = nl_ctx_new((size_t)(C * n_s * 16 + 4096), 0);
    if (!c) return nl_set_error(NL_ENOMEM, "biper layer fn: out of memory");
    nl_set_grad_enabled(c, 0);
    nl_var *x = nl_new(c, NL_F32, 4, (int64_t[]){1, C, 1, n_s}); /* [1, C, 1, n_s] every channel sees every s */
    nl_status st = NL_OK;
    if (x) {
        float *xp = x->val.data;
        for (int64_t o = 0; o < C; o++) memcpy(xp + o * n_s, s, (size_t)n_s * sizeof *s);
        nl_var *y = bn_apply(c, scale_apply(c, x, m->alpha[l]), &m->bn[l], 0);
        if (y) {
            nl_tensor t = nl_contig(c, &y->val);
            if (t.data) memcpy(out, t.data, (size_t)(C * n_s) * sizeof *out);
            else st = nl_last_status();
        } else st = nl_last_status();
    } else st = nl_last_status();
    nl_ctx_free(c);
    return st;
}
