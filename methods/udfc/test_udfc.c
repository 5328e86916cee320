/* UDFC: the ridge closed form against a numerical minimiser, the scalar quantisation correction against a 1-d
 * search, an exactly representable pruned channel compensated with zero error (UDFC at rho = 0 and Neuron Merging),
 * the BatchNorm requirement, and the smoke configuration of the ledger entry. */
#include "nltest.h"
#include "udfc/udfc.h"

static void test_ridge_vs_minimiser(void) {
    enum { N = 5, D = 9, M = 2 };
    double A[N * D], T[M * D], lam[N], S[M * N];
    nl_rng r;
    nl_rng_init(&r, 3, 0);
    for (int i = 0; i < N * D; i++) A[i] = nl_rng_normal(&r);
    for (int i = 0; i < M * D; i++) T[i] = nl_rng_normal(&r);
    for (int i = 0; i < N; i++) lam[i] = 0.3 + nl_rng_uniform(&r);
    NLT_OK(nl_compensate_ridge(A, N, D, T, M, lam, S));
    for (int t = 0; t < M; t++) {
        /* gradient descent on f(s) = |t - A^T s|^2 + sum lam_i s_i^2 */
        double s[N] = {0};
        for (int it = 0; it < 20000; it++) {
            double res[D], g[N];
            for (int k = 0; k < D; k++) {
                res[k] = T[t * D + k];
                for (int i = 0; i < N; i++) res[k] -= A[i * D + k] * s[i];
            }
            for (int i = 0; i < N; i++) {
                g[i] = 2 * lam[i] * s[i];
                for (int k = 0; k < D; k++) g[i] -= 2 * A[i * D + k] * res[k];
            }
            for (int i = 0; i < N; i++) s[i] -= 0.005 * g[i];
        }
        for (int i = 0; i < N; i++) NLT_NEAR(S[t * N + i], s[i], 1e-8);
    }
}

/* v = (1 + s') vq minimised over s' by golden-section search equals <v - vq, vq> / |vq|^2 */
static void test_quant_scalar(void) {
    double v[7] = {0.31, -0.82, 0.44, 1.3, -0.05, 0.6, 0.2}, q[7];
    memcpy(q, v, sizeof v);
    nl_compress_quant_row(q, 6, 3, 1, NULL); /* the last entry is the BN shift: not quantised */
    double nq = 0, dp = 0;
    for (int k = 0; k < 7; k++) nq += q[k] * q[k], dp += (v[k] - q[k]) * q[k];
    double closed = dp / nq, lo = -1, hi = 1;
    for (int it = 0; it < 200; it++) {
        double m1 = lo + (hi - lo) * 0.382, m2 = lo + (hi - lo) * 0.618, f1 = 0, f2 = 0;
        for (int k = 0; k < 7; k++) f1 += pow(v[k] - (1 + m1) * q[k], 2), f2 += pow(v[k] - (1 + m2) * q[k], 2);
        if (f1 < f2) hi = m2;
        else lo = m1;
    }
    NLT_NEAR(closed, 0.5 * (lo + hi), 1e-9);
    NLT_CHECK(fabs(closed) > 1e-4, "the correction is not trivially 0: %g", closed);
}

static void set(nl_model *m, nl_var *v, int64_t i, double x) { nl_compress_put(m, v, i, x); }

/* BN-MLP 6-5-3 (f64) whose hidden channel 2 is exactly 0.5 x channel 0 after BatchNorm; pruning 1 of 5 channels
 * removes channel 2 (smallest L1), and the compensation restores the outputs exactly */
static void test_exact_channel(void) {
    int64_t sz[3] = {6, 5, 3};
    nl_model_config c = nl_mlp_config(3, sz, NL_ACT_RELU, 0.0);
    c.batchnorm = 1;
    c.dtype = NL_F64;
    nl_model m;
    NLT_OK(nl_model_init(&m, &c, 7));
    nl_model_layer *P = &m.layer[0], *B = &m.layer[1];
    double g[5] = {1.2, 0.8, 0.9, 1.1, 0.7}, be[5] = {0.1, -0.2, 0, 0.3, 0.05}, mu[5] = {0.2, 0.1, 0, -0.1, 0.3},
           var[5] = {1.5, 0.7, 0, 1.2, 0.9};
    for (int64_t k = 0; k < 6; k++) {
        set(&m, P->w, 2 * 6 + k, 0.5 * nl_compress_get(&m, P->w, k)); /* w_2 = 0.5 w_0 */
        for (int ch = 0; ch < 5; ch++)
            if (ch != 2 && ch != 0) set(&m, P->w, ch * 6 + k, 3 * nl_compress_get(&m, P->w, ch * 6 + k)); /* larger L1 */
    }
    /* same BN slope: gamma_2 / sigma_2 = gamma_0 / sigma_0, and shift_2 = 0.5 shift_0 */
    var[2] = var[0];
    g[2] = g[0];
    double sig = sqrt(var[0] + c.bn_eps), sh0 = be[0] - g[0] * mu[0] / sig;
    mu[2] = 0.4;
    be[2] = 0.5 * sh0 + g[2] * mu[2] / sig;
    for (int ch = 0; ch < 5; ch++) set(&m, B->w, ch, g[ch]), set(&m, B->b, ch, be[ch]), set(&m, B->rm, ch, mu[ch]), set(&m, B->rv, ch, var[ch]);
    float x[4 * 6];
    for (int i = 0; i < 24; i++) x[i] = (float)sin(1.3 * i);
    nl_ctx *ctx = nl_ctx_new(0, 0);
    nl_var *y0 = nl_model_forward(&m, ctx, nl_model_input(&m, ctx, x, 4), 0);
    double ref[12];
    for (int i = 0; i < 12; i++) ref[i] = ((double *)y0->val.data)[i];
    static const nl_comp_kind kinds[3] = {NL_COMP_UDFC, NL_COMP_NM, NL_COMP_NONE};
    for (int k = 0; k < 3; k++) {
        nl_compensate_opts o = nl_compensate_defaults();
        o.ratio = 0.2;
        o.rho = 0;
        o.prune_comp = kinds[k];
        nl_model p;
        NLT_OK(nl_compensate(&m, &o, &p));
        NLT_CHECK(p.cfg.sizes[1] == 4, "one channel pruned");
        nl_ctx_reset(ctx);
        nl_var *y = nl_model_forward(&p, ctx, nl_model_input(&p, ctx, x, 4), 0);
        double err = 0;
        for (int i = 0; i < 12; i++) err = fmax(err, fabs(((double *)y->val.data)[i] - ref[i]));
        if (k < 2) NLT_CHECK(err < 1e-9, "kind %d: compensated output error %g", k, err);
        else NLT_CHECK(err > 1e-3, "prune only changes the outputs (%g)", err);
        nl_model_free(&p);
    }
    nl_ctx_free(ctx);
    nl_model_free(&m);
    /* no BatchNorm: UDFC refuses */
    c.batchnorm = 0;
    NLT_OK(nl_model_init(&m, &c, 7));
    nl_compensate_opts o = nl_compensate_defaults();
    o.ratio = 0.5;
    nl_model p;
    NLT_CHECK(nl_compensate(&m, &o, &p) == NL_EINVAL && strstr(nl_last_error(), "BatchNorm"), "no BN: %s", nl_last_error());
    o.bits = 33;
    c.batchnorm = 1;
    nl_model_free(&m);
    NLT_OK(nl_model_init(&m, &c, 7));
    NLT_CHECK(nl_compensate(&m, &o, &p) == NL_EINVAL, "33 bits");
    nl_model_free(&m);
}

/* the same in a BatchNorm CNN (f64): channel 1 of block b is 0.5 x channel 0 (weights and BN), the others have larger
 * L1; the other block has 4 channels, so ratio 0.2 prunes one channel of block b only (conv -> conv for b = 0,
 * conv -> flatten -> fc for b = 1); UDFC at rho = 0 undoes it exactly (ReLU and max-pooling are positively homogeneous) */
static void test_exact_channel_cnn(void) {
    for (int blk = 0; blk < 2; blk++) {
        int ch[2] = {blk == 0 ? 5 : 4, blk == 1 ? 5 : 4};
        nl_model_config c = nl_cnn_config(1, 8, 8, 2, ch, 0, 3);
        c.dtype = NL_F64;
        nl_model m;
        NLT_OK(nl_model_init(&m, &c, 11));
        nl_model_layer *P = &m.layer[2 * blk], *B = &m.layer[2 * blk + 1];
        int64_t f = nl_tensor_numel(&P->w->val) / 5;
        for (int64_t k = 0; k < f; k++) {
            set(&m, P->w, 1 * f + k, 0.5 * nl_compress_get(&m, P->w, k));
            for (int q = 2; q < 5; q++) set(&m, P->w, q * f + k, 3 * nl_compress_get(&m, P->w, q * f + k));
        }
        for (int q = 0; q < 5; q++) set(&m, B->rm, q, 0.1 * q), set(&m, B->rv, q, 0.5 + 0.2 * q), set(&m, B->w, q, 0.9 + 0.1 * q), set(&m, B->b, q, 0.05 * q);
        /* channel 1: same slope as channel 0 (gamma 0.9, var 0.5), shift 0.5 x channel 0's (beta 0, mu 0) */
        double sig = sqrt(0.5 + c.bn_eps);
        set(&m, B->rv, 1, 0.5), set(&m, B->w, 1, 0.9), set(&m, B->rm, 1, 0.3), set(&m, B->b, 1, 0.9 * 0.3 / sig);
        float x[2 * 64];
        for (int i = 0; i < 128; i++) x[i] = (float)cos(0.9 * i);
        nl_ctx *ctx = nl_ctx_new(0, 0);
        nl_var *y0 = nl_model_forward(&m, ctx, nl_model_input(&m, ctx, x, 2), 0);
        double ref[6];
        for (int i = 0; i < 6; i++) ref[i] = ((double *)y0->val.data)[i];
        for (int k = 0; k < 2; k++) {
            nl_compensate_opts o = nl_compensate_defaults();
            o.ratio = 0.2;
            o.rho = 0;
            o.prune_comp = k ? NL_COMP_NONE : NL_COMP_UDFC;
            nl_model p;
            NLT_OK(nl_compensate(&m, &o, &p));
            NLT_CHECK(p.cfg.channels[blk] == 4 && p.cfg.channels[1 - blk] == 4, "block %d pruned to 4", blk);
            nl_ctx_reset(ctx);
            nl_var *y = nl_model_forward(&p, ctx, nl_model_input(&p, ctx, x, 2), 0);
            double err = 0;
            for (int i = 0; y && i < 6; i++) err = fmax(err, fabs(((double *)y->val.data)[i] - ref[i]));
            if (!k) NLT_CHECK(err < 1e-9, "block %d: compensated error %g", blk, err);
            else NLT_CHECK(err > 1e-4, "block %d: prune only changes the outputs (%g)", blk, err);
            nl_model_free(&p);
        }
        nl_ctx_free(ctx);
        nl_model_free(&m);
    }
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_ridge_vs_minimiser);
    NLT_RUN(test_quant_scalar);
    NLT_RUN(test_exact_channel);
    NLT_RUN(test_exact_channel_cnn);
    return nlt_finish();
}
