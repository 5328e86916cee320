/* noprop/noprop.h — NoProp (Li, Teh & Pascanu 2025, "NoProp: Training Neural Networks without Back-propagation or
 * Forward-propagation"): every block learns on its own to denoise a noisy label embedding, so no gradient crosses
 * blocks and no forward pass through the stack is needed in training. methods/noprop/README.md has the formulas,
 * the deviations from the paper and the numbers.
 *
 * ---- notation (discrete time, NoProp-DT) ----
 * Classes C, label embedding W_Embed [C, d] (row u_y for class y), blocks t = 1..T. z_0 is pure noise and z_T is
 * closest to the label, so the signal level abar_t GROWS with t:
 *   abar_t = cos^2(pi/2 (1 - t/T + s) / (1 + s)), s = 0.008, t = 1..T;  abar_0 := 0 exactly (z_0 ~ N(0, I)),
 *   SNR(t) = abar_t / (1 - abar_t)  (SNR(0) = 0), so SNR(t) - SNR(t-1) > 0 and the block weights
 *   w_t = (T/2) eta (SNR(t) - SNR(t-1)) telescope: sum_t w_t = (T/2) eta (SNR(T) - SNR(0)) = (T/2) eta SNR(T).
 *   q(z_t | y) = N(sqrt(abar_t) u_y, (1 - abar_t) I).
 * Block t: u_hat_t = softmax(f_t(z_{t-1}, x)) W_Embed  [B, d]. Its loss (z_{t-1} drawn from q(z_{t-1}|y) directly,
 * nothing from other blocks):  L_t = CE(p(y | z_T)) + KL(q(z_0|y) || N(0, I)) + w_t mean_b ||u_hat_t - u_y||^2,
 *   p(y | z) = softmax(W_out z + b_out), z_T ~ q(z_T | y);  KL = 1/2 [abar_0 ||u||^2 + d (1 - abar_0) - d - d ln(1 - abar_0)]
 *   (0 for abar_0 = 0; kept in the loss for a schedule with abar_0 > 0).
 * Inference: z_0 ~ N(0, I); z_t = a_t u_hat_t(z_{t-1}, x) + b_t z_{t-1} + sqrt(c_t) eps with the DDPM posterior
 *   q(z_t | z_{t-1}, u) coefficients, alpha_{t-1} := abar_{t-1} / abar_t (so alpha_0 = 0):
 *   a_t = sqrt(abar_t)(1 - alpha_{t-1})/(1 - abar_{t-1}), b_t = sqrt(alpha_{t-1})(1 - abar_t)/(1 - abar_{t-1}),
 *   c_t = (1 - abar_t)(1 - alpha_{t-1})/(1 - abar_{t-1});  at t = 1: a = sqrt(abar_1), b = 0, c = 1 - abar_1.
 *   Prediction: argmax p(y | z_T).
 * ---- NoProp-CT ---- one network u_hat(z_t, x, t), t ~ U[0, 1], abar(t) = cos^2(pi/2 (1 - t + s)/(1 + s)) (abar(0)
 *   := 0), loss 1/2 eta SNR'(t) ||u_hat - u_y||^2 + CE + KL; inference: Euler steps of the probability-flow ODE
 *   dz/dt = (d sqrt(abar)/dt) u_hat + (d sqrt(1 - abar)/dt) eps_hat, eps_hat = (z - sqrt(abar) u_hat)/sqrt(1 - abar).
 * ---- NoProp-FM ---- one network v(z_t, x, t), z_t = t u_y + (1 - t) z_0, z_0 ~ N(0, I), loss ||v - (u_y - z_0)||^2
 *   + CE(p(y | u_y)); inference: Euler z += v(z, x, t) / K over K steps from z_0 ~ N(0, I).
 * ---- backprop baseline ---- the T blocks chained as at inference (z_t from the a/b/c update of u_hat_t, t < T),
 *   trained end to end with the CE of block T's logits (= log u_hat_T up to a constant for the one-hot embedding),
 *   predicting their argmax. (A linear classifier on z_T trained jointly stalls near 60% on MNIST: README.)
 *
 * Block architecture: image branch (CNN: conv3x3 c1 - ReLU - maxpool2 - conv3x3 c2 - ReLU - maxpool2 - FC H - BN;
 * MLP: FC H - BN - ReLU) and z branch (FC H - BN - ReLU; CT/FM append t to z), concatenated, FC H - BN - ReLU,
 * FC H/2 - BN - ReLU, FC out (C logits; FM: d values). Every block has its own parameter store and AdamW; the
 * embedding and the classifier are one shared store with its own AdamW, updated after every block's step. */
#ifndef NNLAB_NOPROP_H
#define NNLAB_NOPROP_H
#include "nnlab/autograd.h"
#include "nnlab/data.h"
#include "nnlab/ledger.h"
#include "nnlab/optim.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_NOPROP_MAX_T 64
#define NL_NOPROP_COSINE_S 0.008

typedef enum nl_noprop_variant { NL_NOPROP_DT = 0, NL_NOPROP_CT, NL_NOPROP_FM, NL_NOPROP_BACKPROP } nl_noprop_variant;
typedef enum nl_noprop_embed { NL_NOPROP_EMB_ONEHOT = 0, NL_NOPROP_EMB_LEARNED, NL_NOPROP_EMB_PROTOTYPE } nl_noprop_embed;

/* ---- schedule (pure functions; tests check them against closed forms) ---- */
double nl_noprop_abar(int t, int T);                 /* t = 0..T; abar_0 = 0 */
double nl_noprop_snr(double abar);                   /* abar / (1 - abar) */
double nl_noprop_weight(int t, int T, double eta);   /* (T/2) eta (SNR(t) - SNR(t-1)), t = 1..T */
void nl_noprop_coeffs(int t, int T, double *a, double *b, double *c); /* inference a_t, b_t, c_t, t = 1..T */
double nl_noprop_abar_ct(double t);                  /* continuous time t in [0, 1]; abar(0) = 0 */
double nl_noprop_dsnr_ct(double t);                  /* d SNR / dt */
/* CT's per-sample weight of ||u_hat - u_y||^2 at time t: paper (snr_weight 1) eta/2 SNR'(t); uniform (0) its mean
 * over t ~ U[0, 1], eta/2 (SNR(1) - SNR(0)): the same expected weight spread evenly (README, deviations). */
double nl_noprop_ct_weight(double t, double eta, int snr_weight);
/* KL(N(sqrt(abar) u, (1 - abar) I) || N(0, I)) averaged over the rows of u [B, d]: a differentiable var (u may
 * require a gradient). abar in [0, 1). */
nl_var *nl_noprop_kl(nl_ctx *c, nl_var *u, double abar);

/* ---- model ---- */
typedef struct nl_noprop_fc {   /* y = x W^T + b, then BN (when g != NULL) */
    nl_var *W, *b;              /* (out, in), (out) */
    nl_var *g, *be, *rm, *rv;   /* (out) BN gamma, beta, running mean, running var; NULL without BN */
} nl_noprop_fc;

typedef struct nl_noprop_block {
    nl_params ps;               /* this block's parameters and BN buffers (buffers non-trainable) */
    int cnn;
    nl_var *cw1, *cb1, *cw2, *cb2; /* (c1, 1, 3, 3), (c1), (c2, c1, 3, 3), (c2) — CNN only */
    nl_noprop_fc img, zb, f1, f2, out; /* image FC(->H)+BN, z FC(->H)+BN, fusion FC(2H->H)+BN, FC(H->H/2)+BN, FC(H/2->out) */
} nl_noprop_block;

typedef struct nl_noprop_config {
    nl_noprop_variant variant;
    int T;                      /* blocks (DT, backprop) or inference steps (CT, FM); paper 10 */
    int cnn;                    /* 1: CNN image branch, 0: MLP image branch */
    int channels[2];            /* CNN channels (paper 32, 64) */
    int64_t hidden;             /* H (paper 256) */
    nl_noprop_embed embed;
    int64_t embed_dim;          /* d for a learned embedding (one-hot: C; prototype: image size) */
    double eta;                 /* 0.1 */
    double lr, wd;              /* AdamW 1e-3, 1e-3 */
    int64_t batch, epochs;      /* 128 */
    int64_t limit;              /* first `limit` training images (0 = all) */
    int64_t test_limit;         /* first `test_limit` test images (0 = all) */
    int ct_snr_weight;          /* CT: 1 the paper's weight eta/2 SNR'(t); 0 (default) its mean, uniform over t */
    int zero_image;             /* control: blocks never see the image (x = 0 in training and at test) */
    int shuffle_labels;         /* control: a seeded permutation of the training labels */
    uint64_t seed;
    int verbose;
} nl_noprop_config;

typedef struct nl_noprop_result {
    double test_accuracy;       /* [0, 1] */
    double train_seconds;
    double peak_bytes;          /* peak bytes of the training step's arena (activations, their gradients, temporaries) */
    int64_t params;             /* trainable parameters */
    int64_t n_train, steps;
} nl_noprop_result;

/* Defaults: DT, T 10, CNN 16/32, H 256, one-hot, eta 0.1, AdamW 1e-3/1e-3, batch 128, 1 epoch, seed 1. */
nl_noprop_config nl_noprop_defaults(void);
const char *nl_noprop_variant_name(nl_noprop_variant v);  /* "dt" | "ct" | "fm" | "backprop" */
nl_status nl_noprop_variant_parse(const char *s, nl_noprop_variant *out);
nl_status nl_noprop_embed_parse(const char *s, nl_noprop_embed *out); /* "onehot" | "learned" | "prototype" */

/* Build a block: image of geometry (1, 28, 28) if cnn (d_img otherwise), z input z_in, output n_out. Uniform
 * PyTorch-default init from (seed, stream). */
nl_status nl_noprop_block_init(nl_noprop_block *b, const nl_noprop_config *cfg, int64_t d_img, int64_t z_in, int64_t n_out,
                               uint64_t seed, uint64_t stream);
void nl_noprop_block_free(nl_noprop_block *b);
/* logits / outputs [B, n_out] of block b on x [B, d_img] and z [B, z_in]; train selects BN's batch statistics. */
nl_var *nl_noprop_block_forward(nl_ctx *c, nl_noprop_block *b, nl_var *x, nl_var *z, int train);
/* Its two halves: the image branch's features hi [B, H] of x, and the rest on hi and z (CT/FM inference computes hi
 * once for all its steps: in eval mode it does not depend on z or t). */
nl_var *nl_noprop_block_image(nl_ctx *c, nl_noprop_block *b, nl_var *x, int train);
nl_var *nl_noprop_block_head(nl_ctx *c, nl_noprop_block *b, nl_var *hi, nl_var *z, int train);

/* The whole model of one variant: T blocks (DT, backprop) or one (CT, FM), the shared embedding and classifier. */
typedef struct nl_noprop_model {
    nl_noprop_config cfg;
    int n_blocks;
    nl_noprop_block blocks[NL_NOPROP_MAX_T];
    nl_params shared;           /* "embed" (C, d) (frozen when one-hot), "cls.W" (C, d), "cls.b" (C) */
    nl_var *embed, *cls_W, *cls_b;
    int64_t C, d, d_img;
} nl_noprop_model;

/* train: the training set (its first rows are used for prototype embeddings). */
nl_status nl_noprop_model_init(nl_noprop_model *m, const nl_noprop_config *cfg, const nl_dataset *train);
void nl_noprop_model_free(nl_noprop_model *m);
int64_t nl_noprop_model_num_params(const nl_noprop_model *m);

/* The losses of one training step, built in c (no update). DT: block t's loss L_t (t = 1..T) on the batch x [B, d_img],
 * y [B]; rng draws the noise. CT/FM: the one network's loss (t ignored). Backprop: the chain's CE (t ignored). */
nl_var *nl_noprop_loss(nl_ctx *c, nl_noprop_model *m, int t, const float *x, const int32_t *y, int64_t B, nl_rng *rng);
/* Class predictions pred [B] for x [B, d_img] by the variant's inference (no gradient, BN in eval mode). */
nl_status nl_noprop_predict(nl_noprop_model *m, const float *x, int64_t B, nl_rng *rng, int32_t *pred);

/* Train on `train` and measure on `test` (both already standardised as wanted). */
nl_status nl_noprop_train(const nl_noprop_config *cfg, const nl_dataset *train, const nl_dataset *test, nl_noprop_result *res);
/* Load "mnist" / "fashion-mnist" train and test, standardise, apply limit / test_limit / controls, train. */
nl_status nl_noprop_run(const nl_noprop_config *cfg, const char *dataset, nl_noprop_result *res);
/* The training and test sets of one run as nl_noprop_run_data makes them (first rows, standardised on the training
 * rows, then the controls applied): new copies in tr and te (freed by nl_dataset_free; nothing to free on error). */
nl_status nl_noprop_prepare(const nl_noprop_config *cfg, const nl_dataset *train, const nl_dataset *test, nl_dataset *tr,
                            nl_dataset *te);
/* The shuffled-labels control's seeded permutation of y [n] (in place). */
void nl_noprop_shuffle_labels(int32_t *y, int64_t n, uint64_t seed);
/* The same on loaded data sets (copied: train and test are not changed). */
nl_status nl_noprop_run_data(const nl_noprop_config *cfg, const nl_dataset *train, const nl_dataset *test, nl_noprop_result *res);

/* ---- registration (methods/noprop/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_noprop;
extern const nl_method nl_method_noprop;
int nl_noprop_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
