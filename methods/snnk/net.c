/* The Fashion-MNIST networks: the MLP 784-H-10, the same MLP with its hidden layer replaced by a ReLU-SNNK layer
 * (fine-tuned by backpropagation), and the fully bundled network phi(x~) M fitted in closed form (snnk/snnk.h). */
#include "snnk/snnk.h"
#include "nnlab/linalg.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

nl_snnk_config nl_snnk_defaults(void) {
    nl_snnk_config c = {.hidden = 512, .epochs = 10, .batch = 128, .lr = 1e-3, .m_layer = 128, .m_bundle = 2048,
                        .ridge = 1e-3, .seed = 1, .verbose = 0};
    return c;
}

nl_status nl_snnk_load(int64_t n_train, int64_t n_test, nl_dataset *tr, nl_dataset *te) {
    nl_dataset ftr, fte;
    memset(tr, 0, sizeof *tr), memset(te, 0, sizeof *te);
    if (n_train < 10 || n_train > 60000 || n_test < 1 || n_test > 10000) return nl_set_error(NL_EINVAL, "snnk: bad data sizes");
    nl_status s = nl_dataset_load(&ftr, "fashion-mnist", "train", NULL);
    if (s) return s;
    if ((s = nl_dataset_load(&fte, "fashion-mnist", "test", NULL))) {
        nl_dataset_free(&ftr);
        return s;
    }
    int64_t *idx = malloc((size_t)n_train * sizeof(int64_t)); /* [n_train] */
    if (!idx) s = nl_set_error(NL_ENOMEM, "snnk: out of memory");
    for (int64_t i = 0; !s && i < n_train; i++) idx[i] = i;
    if (!s) s = nl_dataset_subset(&ftr, idx, n_train, tr);
    if (!s) s = nl_dataset_subset(&fte, idx, n_test, te);
    if (!s) {
        nl_dataset *others[1] = {te};
        s = nl_dataset_standardize(tr, others, 1, 0, NULL, NULL);
    }
    free(idx), nl_dataset_free(&ftr), nl_dataset_free(&fte);
    if (s) nl_dataset_free(tr), nl_dataset_free(te);
    return s;
}

/* ---- a two-layer network z = W2 a(W1 x + b1) + b2, a = ReLU or identity, trained with Adam on softmax CE ---- */
typedef nl_snnk_net net2;

nl_status nl_snnk_net_init(nl_snnk_net *n, int64_t in, int64_t hid, int64_t out, int relu) {
    memset(n, 0, sizeof *n);
    n->in = in, n->hid = hid, n->out = out, n->relu = relu;
    n->np = hid * in + hid + out * hid + out;
    n->p = calloc((size_t)n->np, sizeof(float)), n->g = calloc((size_t)n->np, sizeof(float));
    n->m1 = calloc((size_t)n->np, sizeof(float)), n->m2 = calloc((size_t)n->np, sizeof(float));
    if (!n->p || !n->g || !n->m1 || !n->m2) return nl_set_error(NL_ENOMEM, "snnk: out of memory");
    return NL_OK;
}
void nl_snnk_net_free(nl_snnk_net *n) { free(n->p), free(n->g), free(n->m1), free(n->m2); }
#define W1(n) ((n)->p)
#define B1(n) ((n)->p + (n)->hid * (n)->in)
#define W2(n) ((n)->p + (n)->hid * (n)->in + (n)->hid)
#define B2(n) ((n)->p + (n)->hid * (n)->in + (n)->hid + (n)->out * (n)->hid)

/* forward of B rows: H [B, hid] (post-activation), Z [B, out] */
static void net2_forward(const net2 *n, int64_t B, const float *X, float *H, float *Z) {
    for (int64_t i = 0; i < B; i++) memcpy(H + i * n->hid, B1(n), (size_t)n->hid * sizeof(float));
    nl_gemm(NL_F32, 0, 1, B, n->hid, n->in, 1.0, X, n->in, W1(n), n->in, 1.0, H, n->hid);
    if (n->relu)
        for (int64_t i = 0; i < B * n->hid; i++) H[i] = H[i] > 0 ? H[i] : 0;
    for (int64_t i = 0; i < B; i++) memcpy(Z + i * n->out, B2(n), (size_t)n->out * sizeof(float));
    nl_gemm(NL_F32, 0, 1, B, n->out, n->hid, 1.0, H, n->hid, W2(n), n->hid, 1.0, Z, n->out);
}

/* Mean softmax cross-entropy of B rows and its gradient into n->g (overwritten). Scratch H, dH [B, hid], Z [B, out]. */
double nl_snnk_net_grad(nl_snnk_net *n, int64_t B, const float *Xb, const int32_t *yb, float *H, float *dH, float *Z) {
    const int64_t hid = n->hid, out = n->out, in = n->in;
    double loss = 0;
    net2_forward(n, B, Xb, H, Z);
    for (int64_t i = 0; i < B; i++) { /* dZ = (softmax - onehot) / B */
        float *z = Z + i * out, mx = z[0];
        for (int64_t c = 1; c < out; c++) mx = z[c] > mx ? z[c] : mx;
        double se = 0;
        for (int64_t c = 0; c < out; c++) se += exp((double)z[c] - mx);
        loss += log(se) + mx - z[yb[i]];
        for (int64_t c = 0; c < out; c++) z[c] = (float)((exp((double)z[c] - mx) / se - (c == yb[i])) / (double)B);
    }
    memset(n->g, 0, (size_t)n->np * sizeof(float));
    nl_gemm(NL_F32, 1, 0, out, hid, B, 1.0, Z, out, H, hid, 0.0, W2(n) - n->p + n->g, hid); /* dW2 = dZ^T H */
    float *db2 = B2(n) - n->p + n->g, *db1 = B1(n) - n->p + n->g;
    for (int64_t i = 0; i < B; i++)
        for (int64_t c = 0; c < out; c++) db2[c] += Z[i * out + c];
    nl_gemm(NL_F32, 0, 0, B, hid, out, 1.0, Z, out, W2(n), hid, 0.0, dH, hid); /* dH = dZ W2 */
    if (n->relu)
        for (int64_t i = 0; i < B * hid; i++) dH[i] = H[i] > 0 ? dH[i] : 0;
    for (int64_t i = 0; i < B; i++)
        for (int64_t c = 0; c < hid; c++) db1[c] += dH[i * hid + c];
    nl_gemm(NL_F32, 1, 0, hid, in, B, 1.0, dH, hid, Xb, in, 0.0, n->g, in); /* dW1 = dH^T X */
    return loss / (double)B;
}

static nl_status net2_train(net2 *n, const float *X, const int32_t *y, int64_t N, int64_t epochs, int64_t batch, double lr,
                            uint64_t seed) {
    const int64_t hid = n->hid, out = n->out, in = n->in;
    int64_t *perm = malloc((size_t)N * sizeof(int64_t)); /* [N] */
    float *Xb = malloc((size_t)(batch * in) * sizeof(float)); /* [batch, in] */
    float *H = malloc((size_t)(batch * hid) * sizeof(float)); /* [batch, hid] */
    float *dH = malloc((size_t)(batch * hid) * sizeof(float)); /* [batch, hid] */
    float *Z = malloc((size_t)(batch * out) * sizeof(float)); /* [batch, out] logits, then dL/dZ */
    int32_t *yb = malloc((size_t)batch * sizeof(int32_t));   /* [batch] */
    if (!perm || !Xb || !H || !dH || !Z || !yb) {
        free(perm), free(Xb), free(H), free(dH), free(Z), free(yb);
        return nl_set_error(NL_ENOMEM, "snnk: out of memory");
    }
    nl_rng r;
    nl_rng_init(&r, seed, 0x7472);
    for (int64_t i = 0; i < N; i++) perm[i] = i;
    const double b1c = 0.9, b2c = 0.999, eps = 1e-8;
    int64_t t = 0;
    for (int64_t ep = 0; ep < epochs; ep++) {
        for (int64_t i = N - 1; i > 0; i--) {
            int64_t j = nl_rng_below(&r, i + 1), tmp = perm[i];
            perm[i] = perm[j], perm[j] = tmp;
        }
        for (int64_t s0 = 0; s0 < N; s0 += batch) {
            int64_t B = N - s0 < batch ? N - s0 : batch;
            for (int64_t i = 0; i < B; i++) memcpy(Xb + i * in, X + perm[s0 + i] * in, (size_t)in * sizeof(float)), yb[i] = y[perm[s0 + i]];
            nl_snnk_net_grad(n, B, Xb, yb, H, dH, Z);
            t++;
            double c1 = 1 - pow(b1c, (double)t), c2 = 1 - pow(b2c, (double)t), a = lr * sqrt(c2) / c1;
            for (int64_t i = 0; i < n->np; i++) {
                float g = n->g[i];
                n->m1[i] = (float)(b1c * n->m1[i] + (1 - b1c) * g);
                n->m2[i] = (float)(b2c * n->m2[i] + (1 - b2c) * g * g);
                n->p[i] -= (float)(a * n->m1[i] / (sqrt(n->m2[i]) + eps));
            }
        }
    }
    free(perm), free(Xb), free(H), free(dH), free(Z), free(yb);
    return NL_OK;
}

static nl_status net2_acc(const net2 *n, const float *X, const int32_t *y, int64_t N, double *acc) {
    enum { BS = 256 };
    float *H = malloc((size_t)(BS * n->hid) * sizeof(float)); /* [BS, hid] */
    float *Z = malloc((size_t)(BS * n->out) * sizeof(float)); /* [BS, out] */
    if (!H || !Z) {
        free(H), free(Z);
        return nl_set_error(NL_ENOMEM, "snnk: out of memory");
    }
    int64_t ok = 0;
    for (int64_t s0 = 0; s0 < N; s0 += BS) {
        int64_t B = N - s0 < BS ? N - s0 : BS;
        net2_forward(n, B, X + s0 * n->in, H, Z);
        for (int64_t i = 0; i < B; i++) {
            int64_t best = 0;
            for (int64_t c = 1; c < n->out; c++)
                if (Z[i * n->out + c] > Z[i * n->out + best]) best = c;
            ok += best == y[s0 + i];
        }
    }
    free(H), free(Z);
    *acc = N > 0 ? (double)ok / (double)N : NAN;
    return NL_OK;
}

/* X [n, d] -> Xa [n, d + 1] with a trailing 1 */
static float *augment(const float *X, int64_t n, int64_t d) {
    float *Xa = malloc((size_t)(n * (d + 1)) * sizeof(float)); /* [n, d + 1] */
    if (!Xa) return NULL;
    for (int64_t i = 0; i < n; i++) memcpy(Xa + i * (d + 1), X + i * d, (size_t)d * sizeof(float)), Xa[i * (d + 1) + d] = 1;
    return Xa;
}

nl_status nl_snnk_bundle_fit(const float *G, int64_t m, const float *X, const int32_t *y, int64_t n, int64_t d, int C,
                             double ridge, float *M) {
    if (m < 1) return nl_set_error(NL_EINVAL, "snnk: the number of random features m must be >= 1 (got %lld)", (long long)m);
    if (n < 1 || d < 1 || C < 1 || !(ridge > 0)) return nl_set_error(NL_EINVAL, "snnk bundle: bad sizes or ridge");
    enum { BS = 512 };
    const int64_t p = m + 1;
    float *F = malloc((size_t)(BS * p) * sizeof(float));  /* [BS, m + 1] features of a block, then a constant 1 */
    float *Fm = malloc((size_t)(BS * m) * sizeof(float)); /* [BS, m] */
    float *Y = calloc((size_t)(BS * C), sizeof(float));   /* [BS, C] one-hot */
    float *A = calloc((size_t)(p * p), sizeof(float));    /* [p, p] Phi^T Phi */
    float *Bt = calloc((size_t)(p * C), sizeof(float));   /* [p, C] Phi^T Y */
    double *L = malloc((size_t)(p * p) * sizeof(double)); /* [p, p] */
    double *Z = malloc((size_t)(p * C) * sizeof(double)); /* [p, C] */
    nl_status s = (!F || !Fm || !Y || !A || !Bt || !L || !Z) ? nl_set_error(NL_ENOMEM, "snnk bundle: out of memory") : NL_OK;
    for (int64_t s0 = 0; s0 < n && !s; s0 += BS) {
        int64_t B = n - s0 < BS ? n - s0 : BS;
        if ((s = nl_snnk_features(NL_SNNK_RELU, 0, G, m, d, X + s0 * d, B, Fm))) break;
        memset(Y, 0, (size_t)(BS * C) * sizeof(float));
        for (int64_t i = 0; i < B; i++) {
            memcpy(F + i * p, Fm + i * m, (size_t)m * sizeof(float)), F[i * p + m] = 1;
            Y[i * C + y[s0 + i]] = 1;
        }
        nl_gemm(NL_F32, 1, 0, p, p, B, 1.0, F, p, F, p, 1.0, A, p);  /* A += F^T F */
        nl_gemm(NL_F32, 1, 0, p, C, B, 1.0, F, p, Y, C, 1.0, Bt, C); /* Bt += F^T Y */
    }
    if (!s) {
        double tr = 0;
        for (int64_t i = 0; i < p; i++) tr += A[i * p + i];
        double lam = ridge * tr / (double)p;
        for (int64_t i = 0; i < p * p; i++) L[i] = A[i];
        for (int64_t i = 0; i < p; i++) L[i * p + i] += lam;
        s = nl_cholesky_inplace(L, p);
    }
    if (!s) { /* L L^T Z = Bt: forward then backward substitution */
        for (int64_t i = 0; i < p * C; i++) Z[i] = Bt[i];
        for (int64_t i = 0; i < p; i++)
            for (int c = 0; c < C; c++) {
                double v = Z[i * C + c];
                for (int64_t k = 0; k < i; k++) v -= L[i * p + k] * Z[k * C + c];
                Z[i * C + c] = v / L[i * p + i];
            }
        for (int64_t i = p - 1; i >= 0; i--)
            for (int c = 0; c < C; c++) {
                double v = Z[i * C + c];
                for (int64_t k = i + 1; k < p; k++) v -= L[k * p + i] * Z[k * C + c];
                Z[i * C + c] = v / L[i * p + i];
            }
        for (int64_t i = 0; i < p * C; i++) M[i] = (float)Z[i];
    }
    free(F), free(Fm), free(Y), free(A), free(Bt), free(L), free(Z);
    return s;
}

nl_status nl_snnk_bundle_acc(const float *G, int64_t m, const float *M, const float *X, const int32_t *y, int64_t n, int64_t d,
                             int C, double *acc) {
    enum { BS = 512 };
    float *Fm = malloc((size_t)(BS * m) * sizeof(float)); /* [BS, m] */
    float *Zs = malloc((size_t)(BS * C) * sizeof(float)); /* [BS, C] */
    nl_status s = (!Fm || !Zs) ? nl_set_error(NL_ENOMEM, "snnk bundle: out of memory") : NL_OK;
    int64_t ok = 0;
    for (int64_t s0 = 0; s0 < n && !s; s0 += BS) {
        int64_t B = n - s0 < BS ? n - s0 : BS;
        if ((s = nl_snnk_features(NL_SNNK_RELU, 0, G, m, d, X + s0 * d, B, Fm))) break;
        for (int64_t i = 0; i < B; i++) memcpy(Zs + i * C, M + m * C, (size_t)C * sizeof(float)); /* the constant row */
        nl_gemm(NL_F32, 0, 0, B, C, m, 1.0, Fm, m, M, C, 1.0, Zs, C);
        for (int64_t i = 0; i < B; i++) {
            int best = 0;
            for (int c = 1; c < C; c++)
                if (Zs[i * C + c] > Zs[i * C + best]) best = c;
            ok += best == y[s0 + i];
        }
    }
    free(Fm), free(Zs);
    if (!s) *acc = (double)ok / (double)n;
    return s;
}

nl_status nl_snnk_run(const nl_snnk_config *cfg, const nl_dataset *tr, const nl_dataset *te, nl_snnk_result *out) {
    if (cfg->m_layer < 1 || cfg->m_bundle < 1)
        return nl_set_error(NL_EINVAL, "snnk: the number of random features m must be >= 1 (got %lld for the layer, %lld bundled)",
                            (long long)cfg->m_layer, (long long)cfg->m_bundle);
    if (cfg->hidden < 1 || cfg->epochs < 0 || cfg->batch < 1 || tr->d != te->d) return nl_set_error(NL_EINVAL, "snnk: bad configuration");
    memset(out, 0, sizeof *out);
    const int64_t d = tr->d, H = cfg->hidden, C = tr->n_classes, da = d + 1, ml = cfg->m_layer, mb = cfg->m_bundle;
    nl_rng r;
    nl_rng_init(&r, cfg->seed, 0x736e);
    net2 mlp, sn;
    memset(&sn, 0, sizeof sn);
    nl_status s = nl_snnk_net_init(&mlp, d, H, C, 1);
    float *Xa = NULL, *Xta = NULL, *G = NULL, *Wa = NULL, *Phi = NULL, *Phit = NULL, *M = NULL;
    if (s) goto done;
    /* ---- the MLP (PyTorch-style uniform(+-1/sqrt(fan_in)) initialisation) ---- */
    double t0 = cpu_now();
    for (int64_t i = 0; i < H * d + H; i++) mlp.p[i] = (float)((2 * nl_rng_uniform(&r) - 1) / sqrt((double)d));
    for (int64_t i = H * d + H; i < mlp.np; i++) mlp.p[i] = (float)((2 * nl_rng_uniform(&r) - 1) / sqrt((double)H));
    if ((s = net2_train(&mlp, tr->x, tr->y, tr->n, cfg->epochs, cfg->batch, cfg->lr, cfg->seed))) goto done;
    if ((s = net2_acc(&mlp, te->x, te->y, te->n, &out->mlp_acc))) goto done;
    out->mlp_params = (double)mlp.np, out->mlp_seconds = cpu_now() - t0;
    if (cfg->verbose) nl_progress("snnk seed %llu: MLP test accuracy %.4f", (unsigned long long)cfg->seed, out->mlp_acc);
    /* ---- the SNNK layer: phi(x~) Psi + c replaces ReLU(W1 x + b1); Psi^T [H, ml] = psi(w~_i) rows ---- */
    t0 = cpu_now();
    Xa = augment(tr->x, tr->n, d), Xta = augment(te->x, te->n, d);
    G = malloc((size_t)((ml > mb ? ml : mb) * da) * sizeof(float)); /* [max(ml, mb), d + 1] */
    Wa = malloc((size_t)(H * da) * sizeof(float));                  /* [H, d + 1] rows w~_i = [w_i, b_i] */
    Phi = malloc((size_t)(tr->n * ml) * sizeof(float));             /* [n_train, ml] */
    Phit = malloc((size_t)(te->n * ml) * sizeof(float));            /* [n_test, ml] */
    M = malloc((size_t)((mb + 1) * C) * sizeof(float));             /* [mb + 1, C] */
    if (!Xa || !Xta || !G || !Wa || !Phi || !Phit || !M) {
        s = nl_set_error(NL_ENOMEM, "snnk: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < H; i++) memcpy(Wa + i * da, W1(&mlp) + i * d, (size_t)d * sizeof(float)), Wa[i * da + d] = B1(&mlp)[i];
    if ((s = nl_snnk_proj(NL_SNNK_GAUSS, ml, da, &r, G))) goto done;
    if ((s = nl_snnk_net_init(&sn, ml, H, C, 0))) goto done;
    if ((s = nl_snnk_features(NL_SNNK_RELU, 1, G, ml, da, Wa, H, W1(&sn)))) goto done; /* Psi^T [H, ml] */
    memcpy(W2(&sn), W2(&mlp), (size_t)(C * H) * sizeof(float)), memcpy(B2(&sn), B2(&mlp), (size_t)C * sizeof(float));
    if ((s = nl_snnk_features(NL_SNNK_RELU, 0, G, ml, da, Xa, tr->n, Phi))) goto done;
    if ((s = nl_snnk_features(NL_SNNK_RELU, 0, G, ml, da, Xta, te->n, Phit))) goto done;
    if ((s = net2_train(&sn, Phi, tr->y, tr->n, cfg->epochs, cfg->batch, cfg->lr, cfg->seed + 1000))) goto done;
    if ((s = net2_acc(&sn, Phit, te->y, te->n, &out->snnk_acc))) goto done;
    out->snnk_params = (double)sn.np, out->snnk_seconds = cpu_now() - t0;
    if (cfg->verbose) nl_progress("snnk seed %llu: SNNK-layer test accuracy %.4f", (unsigned long long)cfg->seed, out->snnk_acc);
    /* ---- the fully bundled network, closed form ---- */
    t0 = cpu_now();
    if ((s = nl_snnk_proj(NL_SNNK_GAUSS, mb, da, &r, G))) goto done;
    if ((s = nl_snnk_bundle_fit(G, mb, Xa, tr->y, tr->n, da, (int)C, cfg->ridge, M))) goto done;
    if ((s = nl_snnk_bundle_acc(G, mb, M, Xta, te->y, te->n, da, (int)C, &out->bundle_acc))) goto done;
    out->bundle_params = (double)((mb + 1) * C), out->bundle_seconds = cpu_now() - t0;
    if (cfg->verbose) nl_progress("snnk seed %llu: bundled test accuracy %.4f", (unsigned long long)cfg->seed, out->bundle_acc);
done:
    nl_snnk_net_free(&mlp), nl_snnk_net_free(&sn);
    free(Xa), free(Xta), free(G), free(Wa), free(Phi), free(Phit), free(M);
    return s;
}
