/* biper/biper.h — BiPer (Vargas et al., "Binary Neural Networks using a Periodic Function", CVPR 2024; official
 * code edmav4/BiPer): weights binarised through a square wave of frequency omega, a sign+straight-through baseline,
 * a 4-conv binary CNN for 28x28 images, its export to a bit-packed model and packed inference.
 * methods/biper/README.md has the formulas, the deviations and the numbers.
 *
 * ---- weight binarisers (W real, omega > 0; binary layers only) ----
 *   BiPer stage 1:  Wb = sin(omega W)                     dWb/dW = omega cos(omega W) (exact)
 *   BiPer stage 2:  Wb = sign(sin(omega W))               dWb/dW = omega cos(omega W): identity straight-through
 *                   through sign (the official BinaryQuantize), then the exact derivative of sin(omega W)
 *   STE baseline:   Wb = sign(W)                          dWb/dW = 1 (identity straight-through, both stages)
 *   sign(0) = +1 everywhere (forward, export and packed inference).
 * ---- activations (input of every binary conv) ----
 *   forward ab = sign(a) (= sign(a0), a0 = a / sqrt(Var(a) + 1e-5) in training); backward through the surrogate
 *   d ab / d a0 = max(0, 2 - 2|a0|), and through a0, whose Var is per sample over (C, H, W), unbiased, and
 *   differentiated (the official code's a.var([1,2,3]) inside autograd). In eval mode a0 = a (the window is not used).
 * ---- network (x [N, 1, 28, 28]) ----
 *   L1 float:  conv3x3(1->c1, pad 1) -> BN -> maxpool2                        [N, c1, 14, 14]
 *   L2 binary: sign -> conv3x3(Wb, pad 1, zero padding) -> *alpha -> BN        [N, c, 14, 14]
 *   L3 binary: sign -> conv3x3 -> *alpha -> BN -> maxpool2                     [N, c, 7, 7]
 *   L4 binary: sign -> conv3x3 -> *alpha -> BN -> maxpool2                     [N, c, 3, 3]
 *   head:      flatten -> linear(9c -> 10)
 *   alpha [c] per output channel, init U(0, 1); convs without bias; BN affine with running statistics.
 *   Inference of a binary layer is an integer s = <sign(x), Wb> in [-9 C_in, 9 C_in] per output, then the
 *   per-channel float function f_o(s) = BN(alpha_o s); sign(maxpool(f)) = OR over the window of [f(s) >= 0].
 * ---- loss ----  CE + tau * sum over binary layers of mean(sin^2(omega W)) (BiPer only; tau 0.037 stage 1,
 *   0.0468 stage 2).  QE (the official compute_QE): sum over binary layers of mean |sin(omega W) - sign(sin(omega W))|. */
#ifndef NNLAB_BIPER_H
#define NNLAB_BIPER_H
#include "nnlab/autograd.h"
#include "nnlab/data.h"
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nl_biper_wmode { NL_BIPER_SIN = 0, NL_BIPER_SIGN_SIN, NL_BIPER_STE } nl_biper_wmode;

/* ---- ops ---- */
/* Binarised weights of w (any shape) for mode; omega unused by NL_BIPER_STE. */
nl_var *nl_biper_weight(nl_ctx *c, nl_var *w, double omega, nl_biper_wmode mode);
/* Binary activation of a [N, ...]: value sign(a) (+1 at 0); train: surrogate on a0 = a / sqrt(Var_row(a) + 1e-5)
 * with the variance's own gradient; eval (train 0): surrogate on a itself. */
nl_var *nl_biper_act(nl_ctx *c, nl_var *a, int train);
/* tau * mean(sin^2(omega w)) (scalar var). */
nl_var *nl_biper_reg(nl_ctx *c, nl_var *w, double omega, double tau);
/* mean |sin(omega w_i) - sign(sin(omega w_i))| over n weights (0 when n = 0). */
double nl_biper_qe(const float *w, int64_t n, double omega);
/* Closed form of the QE for w ~ N(0, s^2): 1 - E|sin(omega w)| = 1 - 2/pi + 4/pi sum_k exp(-2 k^2 omega^2 s^2)/(4k^2-1). */
double nl_biper_qe_normal(double omega, double s);

/* ---- model ---- */
#define NL_BIPER_NBIN 3 /* binary layers L2..L4 */
typedef struct nl_biper_bn { nl_var *g, *b, *rm, *rv; } nl_biper_bn; /* [C] each */

typedef struct nl_biper_net {
    nl_params ps;
    int c1, c;                       /* channels of L1 and of the binary layers */
    nl_var *w1;                      /* (c1, 1, 3, 3) float conv */
    nl_biper_bn bn1;
    nl_var *wb[NL_BIPER_NBIN];       /* (c, c_in, 3, 3) real weights of the binary convs (c_in = c1 for L2) */
    nl_var *alpha[NL_BIPER_NBIN];    /* (c) per-channel scales */
    nl_biper_bn bn[NL_BIPER_NBIN];
    nl_var *fc_w, *fc_b;             /* (10, 9c), (10) */
} nl_biper_net;

nl_status nl_biper_net_init(nl_biper_net *m, int c1, int c, uint64_t seed);
void nl_biper_net_free(nl_biper_net *m);
/* logits [N, 10] of x [N, 784]; binary weights by mode and omega; train selects BN batch statistics. */
nl_var *nl_biper_forward(nl_ctx *c, nl_biper_net *m, nl_var *x, double omega, nl_biper_wmode mode, int train);
/* The QE of the net's binary layers at omega (official: the sum over layers). */
double nl_biper_net_qe(const nl_biper_net *m, double omega);
/* The float per-channel function of binary layer l (0..2) at integers s (eval mode): out[o * n_s + j] = f_o(s_j),
 * evaluated by the same engine ops as nl_biper_forward's eval path (so it is bit-identical to it). */
nl_status nl_biper_layer_fn(nl_biper_net *m, int l, const float *s, int64_t n_s, float *out);

/* ---- training ---- */
typedef struct nl_biper_config {
    nl_biper_wmode method;     /* NL_BIPER_SIN = BiPer (stage 1 sin, stage 2 sign(sin)); NL_BIPER_STE = baseline */
    double omega;              /* 20 */
    int c1, c;                 /* 16, 32 */
    int64_t epochs1, epochs2;  /* per stage */
    int64_t batch;             /* 64 */
    double lr1, lr2, wd1, wd2; /* SGD momentum 0.9, cosine per stage */
    double tau1, tau2;         /* 0.037, 0.0468 (BiPer only) */
    int64_t limit, test_limit; /* first rows (0 = all) */
    uint64_t seed;
    int verbose;
} nl_biper_config;

typedef struct nl_biper_result {
    double test_accuracy, qe, train_seconds;
    int64_t steps, n_train;
} nl_biper_result;

nl_biper_config nl_biper_defaults(void);
/* The effective weight mode of stage (1 or 2). */
nl_biper_wmode nl_biper_stage_mode(const nl_biper_config *cfg, int stage);
/* Train m (initialised by the caller) on tr; test accuracy on te (when te != NULL), QE at cfg->omega. */
nl_status nl_biper_train(nl_biper_net *m, const nl_biper_config *cfg, const nl_dataset *tr, const nl_dataset *te,
                         nl_biper_result *res);
/* Predictions pred [n] of the trained net (eval mode, stage-2 weights of cfg) on x [n, 784]. */
nl_status nl_biper_predict(nl_biper_net *m, const nl_biper_config *cfg, const float *x, int64_t n, int32_t *pred);
/* Fashion-MNIST train/test, standardised on the training rows, first limit / test_limit rows. */
nl_status nl_biper_data(int64_t limit, int64_t test_limit, nl_dataset *tr, nl_dataset *te);

/* ---- export and packed inference (lib/bnn) ---- */
typedef struct nl_biper_packed nl_biper_packed;
nl_status nl_biper_export(nl_biper_net *m, const nl_biper_config *cfg, nl_biper_packed **out);
nl_status nl_biper_packed_save(const nl_biper_packed *p, const char *path);
nl_status nl_biper_packed_load(const char *path, nl_biper_packed **out);
void nl_biper_packed_free(nl_biper_packed *p);
/* The channels (c1, c) the packed network declares. */
void nl_biper_packed_channels(const nl_biper_packed *p, int *c1, int *c);
nl_status nl_biper_packed_predict(const nl_biper_packed *p, const float *x, int64_t n, int32_t *pred);

/* ---- registration ---- */
extern const nl_experiment nl_exp_biper;
extern const nl_method nl_method_biper;
int nl_biper_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
