/* LSTM: a fused cell op (one GEMM pair for the four gates, the gate nonlinearities and the state update in one
 * pass, an exact hand-written backward) and sequence helpers built on it (one direction, bidirectional).
 *
 * Cell (PyTorch nn.LSTMCell, gate order i, f, g, o):
 *   z = x Wx^T + h Wh^T + b            z [B, 4H]
 *   i = s(z_i), f = s(z_f), g = tanh(z_g), o = s(z_o)
 *   c' = f c + i g,  h' = o tanh(c')
 * Output [B, 2H] = [h' | c']. Saved for backward: the activated gates a [B, 4H] and tanh(c') [B, H].
 * Backward from (dh', dc'_in):
 *   dc = dc'_in + dh' o (1 - tanh(c')^2);  dz_o = dh' tanh(c') o (1 - o);  dz_i = dc g i (1 - i);
 *   dz_g = dc i (1 - g^2);  dz_f = dc c f (1 - f);  dc_prev = dc f;
 *   dx = dz Wx, dh = dz Wh, dWx += dz^T x, dWh += dz^T h, db += sum_rows dz. */
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct lstm_saved {
    nl_tensor X, Hp, Cp;  /* contiguous inputs: x [B, I], h [B, H], c [B, H] */
    void *act;            /* [B, 4H] activated gates i, f, g, o */
    void *tc;             /* [B, H] tanh(c') */
} lstm_saved;

#define DEF_LSTM(T, EXP, TANH)                                                                             \
    static void lstm_gates_##T(T *z, const T *bias, const T *cp, T *out, T *tc, int64_t B, int64_t H) {      \
        for (int64_t r = 0; r < B; r++) {                                                                  \
            T *zr = z + r * 4 * H;                                                                         \
            if (bias)                                                                                      \
                for (int64_t k = 0; k < 4 * H; k++) zr[k] += bias[k];                                      \
            for (int64_t k = 0; k < H; k++) {                                                              \
                T i = (T)1 / ((T)1 + EXP(-zr[k])), f = (T)1 / ((T)1 + EXP(-zr[H + k]));                   \
                T g = TANH(zr[2 * H + k]), o = (T)1 / ((T)1 + EXP(-zr[3 * H + k]));                        \
                T cn = f * cp[r * H + k] + i * g, t = TANH(cn);                                            \
                zr[k] = i, zr[H + k] = f, zr[2 * H + k] = g, zr[3 * H + k] = o;                            \
                out[r * 2 * H + k] = o * t;                                                                \
                out[r * 2 * H + H + k] = cn;                                                               \
                tc[r * H + k] = t;                                                                         \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
    /* dz [B, 4H] from the output gradient g [B, 2H]; dcp [B, H] (accumulated) when non-NULL */           \
    static void lstm_dz_##T(const T *a, const T *tc, const T *cp, const T *g, T *dz, T *dcp, int64_t B,       \
                            int64_t H) {                                                                   \
        for (int64_t r = 0; r < B; r++)                                                                    \
            for (int64_t k = 0; k < H; k++) {                                                              \
                const T *ar = a + r * 4 * H;                                                               \
                T i = ar[k], f = ar[H + k], gg = ar[2 * H + k], o = ar[3 * H + k], t = tc[r * H + k];      \
                T dh = g[r * 2 * H + k], dc = g[r * 2 * H + H + k] + dh * o * ((T)1 - t * t);              \
                T *dr = dz + r * 4 * H;                                                                    \
                dr[k] = dc * gg * i * ((T)1 - i);                                                          \
                dr[H + k] = dc * cp[r * H + k] * f * ((T)1 - f);                                           \
                dr[2 * H + k] = dc * i * ((T)1 - gg * gg);                                                 \
                dr[3 * H + k] = dh * t * o * ((T)1 - o);                                                   \
                if (dcp) dcp[r * H + k] += dc * f;                                                         \
            }                                                                                              \
    }                                                                                                      \
    static void lstm_colsum_##T(const T *dz, T *db, int64_t B, int64_t n) {                                \
        for (int64_t r = 0; r < B; r++)                                                                    \
            for (int64_t k = 0; k < n; k++) db[k] += dz[r * n + k];                                        \
    }
DEF_LSTM(float, expf, tanhf)
DEF_LSTM(double, exp, tanh)

static void lstm_backward(nl_ctx *c, nl_node *n) {
    const lstm_saved *s = n->saved;
    const int64_t B = n->i[0], I = n->i[1], H = n->i[2];
    const nl_dtype dt = s->X.dtype;
    const size_t es = nl_dtype_size(dt);
    const nl_tensor *g = nl_node_grad_out(n);
    nl_tensor *gx = nl_grad(c, n->in[0]), *gh = nl_grad(c, n->in[1]), *gc = nl_grad(c, n->in[2]);
    nl_tensor *gwx = nl_grad(c, n->in[3]), *gwh = nl_grad(c, n->in[4]);
    nl_tensor *gb = n->n_in > 5 ? nl_grad(c, n->in[5]) : NULL;
    void *dz = nl_scratch(c, (size_t)(B * 4 * H) * es); /* [B, 4H] */
    if (!dz) return;
    if (dt == NL_F32) lstm_dz_float(s->act, s->tc, s->Cp.data, g->data, dz, gc ? gc->data : NULL, B, H);
    else lstm_dz_double(s->act, s->tc, s->Cp.data, g->data, dz, gc ? gc->data : NULL, B, H);
    nl_tensor Wx = nl_contig(c, &n->in[3]->val), Wh = nl_contig(c, &n->in[4]->val);
    if (!Wx.data || !Wh.data) return;
    if (gx) nl_gemm(dt, 0, 0, B, I, 4 * H, 1.0, dz, 4 * H, Wx.data, I, 1.0, gx->data, I);
    if (gh) nl_gemm(dt, 0, 0, B, H, 4 * H, 1.0, dz, 4 * H, Wh.data, H, 1.0, gh->data, H);
    if (gwx) nl_gemm(dt, 1, 0, 4 * H, I, B, 1.0, dz, 4 * H, s->X.data, I, 1.0, gwx->data, I);
    if (gwh) nl_gemm(dt, 1, 0, 4 * H, H, B, 1.0, dz, 4 * H, s->Hp.data, H, 1.0, gwh->data, H);
    if (gb) {
        if (dt == NL_F32) lstm_colsum_float(dz, gb->data, B, 4 * H);
        else lstm_colsum_double(dz, gb->data, B, 4 * H);
    }
}

nl_var *nl_lstm_cell(nl_ctx *c, nl_var *x, nl_var *h, nl_var *cs, nl_var *Wx, nl_var *Wh, nl_var *b) {
    NL_REQUIRE(x, h, cs, Wx, Wh);
    const nl_dtype dt = x->val.dtype;
    if (h->val.dtype != dt || cs->val.dtype != dt || Wx->val.dtype != dt || Wh->val.dtype != dt || (b && b->val.dtype != dt))
        return nl_op_fail(NL_EDTYPE, "lstm_cell", "mixed dtypes", x, Wx);
    if (x->val.ndim != 2 || h->val.ndim != 2 || cs->val.ndim != 2 || Wx->val.ndim != 2 || Wh->val.ndim != 2)
        return nl_op_fail(NL_ESHAPE, "lstm_cell", "x, h, c, Wx and Wh must be 2-D", x, Wx);
    const int64_t B = x->val.shape[0], I = x->val.shape[1], H = h->val.shape[1];
    if (H < 1 || h->val.shape[0] != B || !nl_shape_equal(&h->val, &cs->val))
        return nl_op_fail(NL_ESHAPE, "lstm_cell", "h and c must both be [B, H] with x [B, I]", x, h);
    if (Wx->val.shape[0] != 4 * H || Wx->val.shape[1] != I)
        return nl_op_fail(NL_ESHAPE, "lstm_cell", "Wx must be [4H, I]", Wx, x);
    if (Wh->val.shape[0] != 4 * H || Wh->val.shape[1] != H)
        return nl_op_fail(NL_ESHAPE, "lstm_cell", "Wh must be [4H, H]", Wh, h);
    if (b && (b->val.ndim != 1 || b->val.shape[0] != 4 * H)) return nl_op_fail(NL_ESHAPE, "lstm_cell", "b must be [4H]", b, NULL);
    const size_t es = nl_dtype_size(dt);
    lstm_saved *s = nl_scratch(c, sizeof *s);
    if (!s) return NULL;
    s->X = nl_contig(c, &x->val);
    s->Hp = nl_contig(c, &h->val);
    s->Cp = nl_contig(c, &cs->val);
    nl_tensor Wxc = nl_contig(c, &Wx->val), Whc = nl_contig(c, &Wh->val), bc = {0};
    if (b) bc = nl_contig(c, &b->val);
    if (!s->X.data || !s->Hp.data || !s->Cp.data || !Wxc.data || !Whc.data || (b && !bc.data)) return NULL;
    s->act = nl_scratch(c, (size_t)(B * 4 * H) * es); /* [B, 4H] pre-activations, then gates */
    s->tc = nl_scratch(c, (size_t)(B * H) * es);      /* [B, H] */
    if (!s->act || !s->tc) return NULL;
    int64_t oshape[2] = {B, 2 * H};
    nl_var *out = nl_op_out(c, dt, 2, oshape); /* [B, 2H] = [h' | c'] */
    if (!out) return NULL;
    nl_gemm(dt, 0, 1, B, 4 * H, I, 1.0, s->X.data, I, Wxc.data, I, 0.0, s->act, 4 * H);
    nl_gemm(dt, 0, 1, B, 4 * H, H, 1.0, s->Hp.data, H, Whc.data, H, 1.0, s->act, 4 * H);
    if (dt == NL_F32) lstm_gates_float(s->act, b ? bc.data : NULL, s->Cp.data, out->val.data, s->tc, B, H);
    else lstm_gates_double(s->act, b ? bc.data : NULL, s->Cp.data, out->val.data, s->tc, B, H);
    nl_var *in[6] = {x, h, cs, Wx, Wh, b};
    nl_node *node = nl_op_record(c, "lstm_cell", out, lstm_backward, b ? 6 : 5, in);
    if (node) {
        node->saved = s;
        node->i[0] = B, node->i[1] = I, node->i[2] = H;
    }
    return out;
}

nl_status nl_lstm_init(nl_lstm *l, nl_params *ps, const char *prefix, int64_t in, int64_t hidden) {
    memset(l, 0, sizeof *l);
    if (in < 1 || hidden < 1) return nl_set_error(NL_EINVAL, "lstm '%s': input %lld and hidden %lld must be positive", prefix, (long long)in, (long long)hidden);
    char name[96];
    int64_t sx[2] = {4 * hidden, in}, sh[2] = {4 * hidden, hidden}, sb[1] = {4 * hidden};
    snprintf(name, sizeof name, "%s.weight_ih", prefix);
    l->Wx = nl_params_add(ps, name, 2, sx);
    snprintf(name, sizeof name, "%s.weight_hh", prefix);
    l->Wh = nl_params_add(ps, name, 2, sh);
    snprintf(name, sizeof name, "%s.bias", prefix);
    l->b = nl_params_add(ps, name, 1, sb);
    if (!l->Wx || !l->Wh || !l->b) return nl_last_status();
    l->in = in;
    l->hidden = hidden;
    return NL_OK;
}

void nl_lstm_reset(nl_lstm *l, nl_rng *r) {
    double a = 1.0 / sqrt((double)l->hidden);
    nl_rng_fill_uniform(r, &l->Wx->val, -a, a);
    nl_rng_fill_uniform(r, &l->Wh->val, -a, a);
    nl_rng_fill_uniform(r, &l->b->val, -a, a);
}

nl_status nl_lstm_run(nl_ctx *c, const nl_lstm *l, int T, nl_var *const *xs, int reverse, nl_var **hs) {
    if (T < 1 || !xs[0]) return nl_set_error(NL_EINVAL, "lstm: need T >= 1 inputs (T = %d)", T);
    const int64_t B = xs[0]->val.shape[0], H = l->hidden;
    int64_t shp[2] = {B, H};
    nl_var *h = nl_zeros(c, xs[0]->val.dtype, 2, shp), *cs = h; /* [B, H] zero initial state */
    for (int k = 0; k < T; k++) {
        int t = reverse ? T - 1 - k : k;
        nl_var *hc = nl_lstm_cell(c, xs[t], h, cs, l->Wx, l->Wh, l->b); /* [B, 2H] */
        h = nl_slice(c, hc, 1, 0, H, 1);
        cs = nl_slice(c, hc, 1, H, 2 * H, 1);
        if (!h || !cs) return nl_last_status();
        hs[t] = h;
    }
    return NL_OK;
}

nl_status nl_bilstm_run(nl_ctx *c, const nl_lstm *fw, const nl_lstm *bw, int T, nl_var *const *xs, nl_var **out) {
    if (T < 1 || T > 4096) return nl_set_error(NL_EINVAL, "bilstm: sequence length %d outside [1, 4096]", T);
    nl_var **hf = nl_scratch(c, 2 * (size_t)T * sizeof *hf);
    if (!hf) return nl_last_status();
    nl_var **hb = hf + T;
    nl_status s = nl_lstm_run(c, fw, T, xs, 0, hf);
    if (!s) s = nl_lstm_run(c, bw, T, xs, 1, hb);
    for (int t = 0; t < T && !s; t++) {
        nl_var *pair[2] = {hf[t], hb[t]};
        out[t] = nl_concat(c, 2, pair, 1); /* [B, 2H] */
        if (!out[t]) s = nl_last_status();
    }
    return s;
}
