/* LSTM cell (src/nn/lstm.c): values against a direct loop reference (f32 and f64), finite-difference gradients of
 * the cell (every input) and of a bidirectional LSTM over a sequence, shape errors. */
#include "nltest_nn.h"

/* reference cell in double: out [B, 2H] = [h' | c'] */
static void cell_ref(const nl_tensor *x, const nl_tensor *h, const nl_tensor *cs, const nl_tensor *Wx, const nl_tensor *Wh,
                     const nl_tensor *b, int64_t B, int64_t I, int64_t H, double *out) {
    for (int64_t r = 0; r < B; r++) {
        double z[4 * 8];
        for (int64_t k = 0; k < 4 * H; k++) {
            double a = b ? nl_tensor_get(b, k) : 0;
            for (int64_t j = 0; j < I; j++) a += nl_tensor_get(x, r * I + j) * nl_tensor_get(Wx, k * I + j);
            for (int64_t j = 0; j < H; j++) a += nl_tensor_get(h, r * H + j) * nl_tensor_get(Wh, k * H + j);
            z[k] = a;
        }
        for (int64_t k = 0; k < H; k++) {
            double i = 1 / (1 + exp(-z[k])), f = 1 / (1 + exp(-z[H + k])), g = tanh(z[2 * H + k]), o = 1 / (1 + exp(-z[3 * H + k]));
            double cn = f * nl_tensor_get(cs, r * H + k) + i * g;
            out[r * 2 * H + k] = o * tanh(cn);
            out[r * 2 * H + H + k] = cn;
        }
    }
}

static void test_cell_values(void) {
    const int64_t B = 3, I = 5, H = 4;
    for (int f64 = 0; f64 < 2; f64++) {
        nl_dtype dt = f64 ? NL_F64 : NL_F32;
        nl_tensor x = mk(dt, 2, B, I, 0, 0), h = mk(dt, 2, B, H, 0, 0), cs = mk(dt, 2, B, H, 0, 0);
        nl_tensor Wx = mk(dt, 2, 4 * H, I, 0, 0), Wh = mk(dt, 2, 4 * H, H, 0, 0), b = mk(dt, 1, 4 * H, 0, 0, 0);
        fill(&x, 1, -1, 1), fill(&h, 2, -1, 1), fill(&cs, 3, -2, 2), fill(&Wx, 4, -0.8, 0.8), fill(&Wh, 5, -0.8, 0.8), fill(&b, 6, -0.5, 0.5);
        for (int withb = 0; withb < 2; withb++) {
            nl_ctx *c = nl_ctx_new(0, 0);
            nl_var *y = nl_lstm_cell(c, nl_input(c, x), nl_input(c, h), nl_input(c, cs), nl_input(c, Wx), nl_input(c, Wh),
                                     withb ? nl_input(c, b) : NULL);
            NLT_CHECK(y && y->val.ndim == 2 && y->val.shape[0] == B && y->val.shape[1] == 2 * H, "shape");
            double ref[3 * 8];
            cell_ref(&x, &h, &cs, &Wx, &Wh, withb ? &b : NULL, B, I, H, ref);
            double md = 0;
            for (int64_t k = 0; y && k < B * 2 * H; k++) md = fmax(md, fabs(nl_tensor_get(&y->val, k) - ref[k]));
            NLT_CHECK(md < (f64 ? 1e-12 : 2e-6), "%s bias %d: max diff %.3g", nl_dtype_name(dt), withb, md);
            nl_ctx_free(c);
        }
        /* hand value: all-zero weights -> i = f = o = 1/2, g = 0: c' = c/2, h' = tanh(c/2)/2 */
        nl_tensor_fill(&Wx, 0), nl_tensor_fill(&Wh, 0);
        nl_ctx *c = nl_ctx_new(0, 0);
        nl_var *y = nl_lstm_cell(c, nl_input(c, x), nl_input(c, h), nl_input(c, cs), nl_input(c, Wx), nl_input(c, Wh), NULL);
        double md = 0;
        for (int64_t r = 0; y && r < B; r++)
            for (int64_t k = 0; k < H; k++) {
                double cv = nl_tensor_get(&cs, r * H + k);
                md = fmax(md, fabs(nl_tensor_get(&y->val, r * 2 * H + k) - 0.5 * tanh(cv / 2)));
                md = fmax(md, fabs(nl_tensor_get(&y->val, r * 2 * H + H + k) - cv / 2));
            }
        NLT_CHECK(y && md < 1e-6, "zero weights: max diff %.3g", md);
        nl_ctx_free(c);
        free(x.data), free(h.data), free(cs.data), free(Wx.data), free(Wh.data), free(b.data);
    }
}

static nl_var *f_cell(nl_ctx *c, nl_var **in, void *ud) {
    (void)ud;
    return nl_lstm_cell(c, in[0], in[1], in[2], in[3], in[4], in[5]);
}

static void test_cell_grad(void) {
    const int64_t B = 2, I = 3, H = 3;
    for (int f64 = 1; f64 >= 0; f64--) {
        nl_dtype dt = f64 ? NL_F64 : NL_F32;
        nl_tensor in[6] = {mk(dt, 2, B, I, 0, 0), mk(dt, 2, B, H, 0, 0), mk(dt, 2, B, H, 0, 0),
                           mk(dt, 2, 4 * H, I, 0, 0), mk(dt, 2, 4 * H, H, 0, 0), mk(dt, 1, 4 * H, 0, 0, 0)};
        for (int k = 0; k < 6; k++) fill(&in[k], 10 + (uint64_t)k, -1, 1);
        gc(f64 ? "lstm_cell f64" : "lstm_cell f32", f_cell, NULL, 6, in, f64);
        for (int k = 0; k < 6; k++) free(in[k].data);
    }
}

/* bidirectional LSTM over T = 3 steps, output = the concatenated per-step outputs [B, 3 * 2H] */
typedef struct { int64_t B, I, H; } bi_ud;
static nl_var *f_bilstm(nl_ctx *c, nl_var **in, void *ud) {
    const bi_ud *u = ud;
    nl_lstm fw = {u->I, u->H, in[3], in[4], in[5]}, bw = {u->I, u->H, in[6], in[7], in[8]};
    nl_var *xs[3] = {in[0], in[1], in[2]}, *out[3];
    if (nl_bilstm_run(c, &fw, &bw, 3, xs, out)) return NULL;
    return nl_concat(c, 3, out, 1);
}
static nl_var *f_bilstm9(nl_ctx *c, nl_var **in, void *ud) { return f_bilstm(c, in, ud); }

static void test_bilstm_grad(void) {
    bi_ud u = {2, 3, 2};
    nl_tensor in[9];
    for (int k = 0; k < 3; k++) in[k] = mk(NL_F64, 2, u.B, u.I, 0, 0);
    for (int d = 0; d < 2; d++) {
        in[3 + 3 * d] = mk(NL_F64, 2, 4 * u.H, u.I, 0, 0);
        in[4 + 3 * d] = mk(NL_F64, 2, 4 * u.H, u.H, 0, 0);
        in[5 + 3 * d] = mk(NL_F64, 1, 4 * u.H, 0, 0, 0);
    }
    for (int k = 0; k < 9; k++) fill(&in[k], 40 + (uint64_t)k, -1, 1);
    gc("bilstm f64", f_bilstm9, &u, 9, in, 1);
    /* the two directions really differ: reversing the sequence changes the forward half of step 0 */
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *v[9];
    for (int k = 0; k < 9; k++) v[k] = nl_input(c, in[k]);
    nl_lstm fw = {u.I, u.H, v[3], v[4], v[5]}, bw = {u.I, u.H, v[6], v[7], v[8]};
    nl_var *xs[3] = {v[0], v[1], v[2]}, *out[3], *hf[3];
    NLT_OK(nl_bilstm_run(c, &fw, &bw, 3, xs, out));
    NLT_OK(nl_lstm_run(c, &fw, 3, xs, 0, hf));
    double md = 0;
    for (int t = 0; t < 3; t++)
        for (int64_t r = 0; r < u.B; r++)
            for (int64_t k = 0; k < u.H; k++)
                md = fmax(md, fabs(nl_tensor_get(&out[t]->val, r * 2 * u.H + k) - nl_tensor_get(&hf[t]->val, r * u.H + k)));
    NLT_CHECK(md == 0, "forward half of the bidirectional output = the forward LSTM (diff %.3g)", md);
    nl_ctx_free(c);
    for (int k = 0; k < 9; k++) free(in[k].data);
}

static void test_errors(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_tensor x = mk(NL_F32, 2, 2, 3, 0, 0), h = mk(NL_F32, 2, 2, 4, 0, 0), Wx = mk(NL_F32, 2, 16, 4, 0, 0), Wh = mk(NL_F32, 2, 16, 4, 0, 0);
    nl_var *y = nl_lstm_cell(c, nl_input(c, x), nl_input(c, h), nl_input(c, h), nl_input(c, Wx), nl_input(c, Wh), NULL);
    NLT_CHECK(!y && strstr(nl_last_error(), "lstm_cell") && strstr(nl_last_error(), "Wx"), "message: %s", nl_last_error());
    nl_params ps;
    nl_lstm l;
    NLT_OK(nl_params_init(&ps, NL_F32));
    NLT_CHECK(nl_lstm_init(&l, &ps, "bad", 0, 4) == NL_EINVAL, "zero input size refused");
    NLT_OK(nl_lstm_init(&l, &ps, "ok", 3, 4));
    NLT_CHECK(ps.n == 3 && nl_params_find(&ps, "ok.weight_hh") && ps.total == 16 * 3 + 16 * 4 + 16, "params: %d, %lld", ps.n, (long long)ps.total);
    nl_params_free(&ps);
    nl_ctx_free(c);
    free(x.data), free(h.data), free(Wx.data), free(Wh.data);
}

int main(void) {
    NLT_RUN(test_cell_values);
    NLT_RUN(test_cell_grad);
    NLT_RUN(test_bilstm_grad);
    NLT_RUN(test_errors);
    return nlt_finish();
}
