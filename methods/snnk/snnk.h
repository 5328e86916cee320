/* snnk/snnk.h — Scalable Neural Network Kernels and universal random features (Sehanobish, Choromanski, Zhao,
 * Dubey & Likhosherstov, ICLR 2024; official code arijitthegame/neural-network-kernels, src/nnk/nnk.py).
 * methods/snnk/README.md has the protocol, deviations and numbers.
 *
 * ---- universal random features (URFs) ----
 * Shared projections g_1..g_m ~ N(0, I_d) (rows of G [m, d]). Input side phi(x) [m], weight side psi(w) [m], with
 * E_G[phi(x) . psi(w)] = K(x, w) exactly (an unbiased estimate; variance O(1/m)):
 *   EXP:     phi(x)_j = m^-1/2 exp(g_j.x - |x|^2/2),  psi(w)_j = m^-1/2 exp(g_j.w - |w|^2/2)   K = exp(x.w)
 *   COS:     phi(x)_j = m^-1/2 exp(g_j.x - |x|^2/2),  psi(w)_j = m^-1/2 exp(|w|^2/2) cos(g_j.w)  K = cos(x.w)
 *            (the URF with a = 1, b = 2 pi i xi, xi = +-1/(2 pi) equally likely, A B = 1; the real part, since
 *            Re E[exp(g.(x + i w))] = exp((|x|^2 - |w|^2)/2) cos(x.w); the imaginary parts of +-xi cancel)
 *   RELU:    phi(x)_j = psi(x)_j = m^-1/2 max(g_j.x, 0)            K = |x||w| (sin t + (pi - t) cos t) / (2 pi)
 *            (the arc-cosine kernel of order 1, t the angle between x and w: the paper's ReLU-SNNK)
 *   ARCCOS0: phi(x)_j = psi(x)_j = m^-1/2 [g_j.x > 0]              K = (pi - t) / (2 pi)  (arc-cosine, order 0)
 * Feature maps go through nl_gemm (X G^T) then an elementwise map.
 *
 * ---- SNNK layer, bundling ----
 * A feed-forward layer x -> f(W x + b) (W [out, in]) is replaced by y = phi(x~) Psi, x~ = [x, 1], Psi [m, out] with
 * column i initialised to psi(w~_i), w~_i = [w_i, b_i]; Psi (and the layers after it) trainable, G fixed. Its
 * trainable parameters are m out (+ out for its bias) instead of in out + out. Bundling: phi(x) Psi V = phi(x) M; the
 * fully bundled network phi(x~) M is linear in M, and with a squared loss on one-hot targets M has the closed form
 * (Phi^T Phi + lambda I)^-1 Phi^T Y (no backpropagation). */
#ifndef NNLAB_SNNK_H
#define NNLAB_SNNK_H
#include "nnlab/base.h"
#include "nnlab/data.h"
#include "nnlab/ledger.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nl_snnk_kind { NL_SNNK_EXP = 0, NL_SNNK_COS, NL_SNNK_RELU, NL_SNNK_ARCCOS0, NL_SNNK_NKINDS } nl_snnk_kind;
typedef enum nl_snnk_dist { NL_SNNK_GAUSS = 0, NL_SNNK_UNIFORM } nl_snnk_dist; /* UNIFORM: U[0,1), the broken control */

const char *nl_snnk_kind_name(nl_snnk_kind k);
int nl_snnk_kind_parse(const char *s); /* -1 if unknown */
/* Projections G [m, d]: N(0, 1) entries (GAUSS) or U[0, 1) (UNIFORM). m < 1 or d < 1: NL_EINVAL. */
nl_status nl_snnk_proj(nl_snnk_dist dist, int64_t m, int64_t d, nl_rng *r, float *G);
/* Feature maps: X [n, d] -> F [n, m] (row i = phi(x_i), or psi(x_i) when weight = 1), G [m, d]. */
nl_status nl_snnk_features(nl_snnk_kind k, int weight, const float *G, int64_t m, int64_t d, const float *X, int64_t n, float *F);
/* The closed-form kernel K(x, w), x, w [d]. */
double nl_snnk_kernel(nl_snnk_kind k, const double *x, const double *w, int64_t d);
/* Streaming estimate with m features drawn from (dist, seed), in blocks (any m, e.g. 1e6): *est = phi(x).psi(w),
 * *se = sd of the m per-feature terms / sqrt(m). x, w [d]. m < 1: NL_EINVAL. */
nl_status nl_snnk_estimate(nl_snnk_kind k, nl_snnk_dist dist, const double *x, const double *w, int64_t d, int64_t m,
                           uint64_t seed, double *est, double *se);

/* ---- kernel-estimation MSE against m (the ledger's first part) ---- */
#define NL_SNNK_NM 5     /* m = 16, 64, 256, 1024, 4096 */
#define NL_SNNK_PAIRS 8  /* pairs (x, w), |x| = |w| = 1, correlation -0.9 .. 0.9 */
typedef struct nl_snnk_mse_result {
    double m[NL_SNNK_NM], mse[NL_SNNK_NM]; /* mean over pairs and repetitions of (estimate - K)^2 */
    double slope;                          /* least-squares slope of log mse against log m */
    double max_z;                          /* max over pairs of |mean bias| / SE at the largest m */
} nl_snnk_mse_result;
/* d-dimensional pairs drawn from seed; reps independent projections per m. */
nl_status nl_snnk_mse_curve(nl_snnk_kind k, nl_snnk_dist dist, int64_t d, int reps, uint64_t seed, nl_snnk_mse_result *out);

/* ---- networks on Fashion-MNIST ---- */
typedef struct nl_snnk_config {
    int64_t hidden;        /* MLP 784-hidden-10, ReLU */
    int64_t epochs, batch; /* Adam, the MLP and the SNNK fine-tuning alike */
    double lr;
    int64_t m_layer;       /* random features of the SNNK layer */
    int64_t m_bundle;      /* random features of the fully bundled network */
    double ridge;          /* lambda = ridge * trace(Phi^T Phi) / m_bundle */
    uint64_t seed;
    int verbose;
} nl_snnk_config;
nl_snnk_config nl_snnk_defaults(void);

typedef struct nl_snnk_result {
    double mlp_acc, snnk_acc, bundle_acc;          /* test accuracies */
    double mlp_params, snnk_params, bundle_params; /* trainable parameters */
    double mlp_seconds, snnk_seconds, bundle_seconds; /* CPU seconds */
} nl_snnk_result;
/* A two-layer network z = W2 a(W1 x + b1) + b2, a = ReLU (relu = 1) or identity: the MLP, and the SNNK-layer network
 * on phi(x~) (W1 = Psi^T, identity). Trained with Adam on softmax cross-entropy. */
typedef struct nl_snnk_net {
    int64_t in, hid, out;
    int relu;
    float *p;           /* (np) all parameters: W1 (hid, in), b1 (hid), W2 (out, hid), b2 (out) */
    float *g, *m1, *m2; /* (np) gradient and Adam moments, same layout */
    int64_t np;
} nl_snnk_net;
nl_status nl_snnk_net_init(nl_snnk_net *n, int64_t in, int64_t hid, int64_t out, int relu); /* parameters zeroed */
void nl_snnk_net_free(nl_snnk_net *n);
/* Mean softmax cross-entropy of B rows X [B, in], labels y [B]; its gradient into n->g (overwritten).
 * Scratch: H, dH [B, hid], Z [B, out]. */
double nl_snnk_net_grad(nl_snnk_net *n, int64_t B, const float *X, const int32_t *y, float *H, float *dH, float *Z);
/* Train the MLP, replace its hidden layer by a ReLU-SNNK layer and fine-tune (Psi, its bias, the output layer),
 * and fit the fully bundled network in closed form. m_layer or m_bundle < 1: NL_EINVAL. */
nl_status nl_snnk_run(const nl_snnk_config *cfg, const nl_dataset *tr, const nl_dataset *te, nl_snnk_result *out);
/* Fully bundled ridge fit alone: X [n, d] -> M [(m + 1), C] (the last row multiplies a constant feature). */
nl_status nl_snnk_bundle_fit(const float *G, int64_t m, const float *X, const int32_t *y, int64_t n, int64_t d, int C,
                             double ridge, float *M);
/* Accuracy of the bundled network. */
nl_status nl_snnk_bundle_acc(const float *G, int64_t m, const float *M, const float *X, const int32_t *y, int64_t n, int64_t d,
                             int C, double *acc);
/* Fashion-MNIST: the first n_train training and n_test test images, standardised on the training part. */
nl_status nl_snnk_load(int64_t n_train, int64_t n_test, nl_dataset *tr, nl_dataset *te);

/* ---- registration ---- */
extern const nl_experiment nl_exp_snnk;
extern const nl_method nl_method_snnk;
int nl_snnk_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
