/* n2n/n2n.h — N2N learning: network-to-network compression via policy-gradient reinforcement learning (Ashok, Rhinehart,
 * Beainy, Kitani, ICLR 2018; official code anubhavashok/N2N). methods/n2n/README.md has the protocol, the deviations and
 * the numbers.
 *
 * A teacher CNN is described to a policy as a sequence of layer descriptors. Stage 1 (layer removal): a 2-layer
 * bidirectional LSTM reads the sequence and a linear + softmax head gives keep/remove per layer. Stage 2 (layer
 * shrinkage, on the best stage-1 child): a 2-layer autoregressive stack of LSTM cells visits the layers in order, its
 * input the layer's descriptor and the previous action's shrink factor, and samples a factor per layer from
 * NL_N2N_FACTORS. Each child (a student) is re-initialised, distilled from the teacher, and scored with the reward
 *   C = 1 - P_s / P_t,   R = (A_s / A_t) C (2 - C),     R = -1 for an invalid child or one not smaller than the teacher.
 * The policies are trained by REINFORCE with a moving-average baseline b: loss = -(1/N) sum_i (R_i - b) log pi(a_i),
 * b <- 0.8 b + 0.2 mean_i R_i after each policy epoch (b starts at the first epoch's mean reward).
 * Constraints: the first layer is always kept, downsampling (pooled) conv layers and the output layer are never
 * removed; the output layer is never shrunk. Layers whose action is fixed are not part of log pi. */
#ifndef NNLAB_N2N_H
#define NNLAB_N2N_H
#include "nnlab/autograd.h"
#include "nnlab/data.h"
#include "nnlab/ledger.h"
#include "nnlab/model.h"
#include "nnlab/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_N2N_MAX_LAYERS 16  /* conv blocks + fc layers of a teacher */
#define NL_N2N_FEAT 5         /* descriptor features per layer */
#define NL_N2N_NFACT 11       /* shrink factors */
extern const double NL_N2N_FACTORS[NL_N2N_NFACT]; /* 0.25, 0.5 x5, 0.6, 0.7, 0.8, 0.9, 1.0 (the official lookup) */

/* ---- the architecture the policies act on: conv blocks (conv 3x3 -> BN -> ReLU [-> maxpool 2]), then [fc hidden
 * -> ReLU ->] fc n_classes ---- */
typedef struct nl_n2n_arch {
    int n_conv;
    int channels[NL_N2N_MAX_LAYERS];  /* out channels of each conv block */
    int pooled[NL_N2N_MAX_LAYERS];    /* 1: the block ends with 2x2 max pooling (the network's downsampling) */
    int64_t hidden;                   /* hidden fc width, 0 = none */
    int in_c, in_h, in_w, n_classes;
} nl_n2n_arch;

/* Policy layers: conv blocks 0..n_conv-1, then the hidden fc (if any), then the output fc. */
int nl_n2n_arch_layers(const nl_n2n_arch *a);
/* Descriptor of layer l (NL_N2N_FEAT floats): [is_conv, kernel / 3, pooled, out / 64, in / 64] (fc: kernel 0). */
void nl_n2n_arch_describe(const nl_n2n_arch *a, int l, float *feat);
/* Whether layer l may be removed (not the first, not pooled, not the output) / shrunk (not the output). */
int nl_n2n_removable(const nl_n2n_arch *a, int l);
int nl_n2n_shrinkable(const nl_n2n_arch *a, int l);
/* Child of a with the layers where remove[l] != 0 dropped (fixed layers ignore their action). */
void nl_n2n_arch_remove(const nl_n2n_arch *a, const int *remove, nl_n2n_arch *child);
/* Child with out width max(floor(w * NL_N2N_FACTORS[fact[l]]), 2) at every shrinkable layer. */
void nl_n2n_arch_shrink(const nl_n2n_arch *a, const int *fact, nl_n2n_arch *child);
/* The engine's CNN configuration of a (NL_EINVAL when a is not a valid network). */
nl_status nl_n2n_arch_config(const nl_n2n_arch *a, nl_model_config *cfg);
/* Trainable parameters of a (-1 when invalid). */
int64_t nl_n2n_arch_params(const nl_n2n_arch *a);

/* ---- reward ---- */
/* (A_s / A_t) C (2 - C), C = 1 - P_s / P_t; -1 when P_s <= 0 (invalid child) or P_s >= P_t (not smaller). */
double nl_n2n_reward(double acc_s, double acc_t, double params_s, double params_t);

/* ---- policies ---- */
typedef enum nl_n2n_policy_kind { NL_N2N_REMOVAL = 0, NL_N2N_SHRINK } nl_n2n_policy_kind;
typedef struct nl_n2n_policy {
    nl_n2n_policy_kind kind;
    nl_params ps;
    int64_t hidden;          /* LSTM width (30) */
    nl_lstm l[4];            /* removal: fw0, bw0, fw1, bw1 (2 bidirectional layers); shrink: cells of layers 0, 1 */
    nl_var *W, *b;           /* head: removal (2, 2H), shrink (NL_N2N_NFACT, H) */
} nl_n2n_policy;

nl_status nl_n2n_policy_init(nl_n2n_policy *p, nl_n2n_policy_kind kind, int64_t hidden, nl_dtype dt, uint64_t seed);
void nl_n2n_policy_free(nl_n2n_policy *p);
/* log pi(actions) over the layers where mask[l] != 0, as a scalar var of the policy's dtype. feat: (L, NL_N2N_FEAT).
 * rng != NULL: the actions of masked layers are sampled into act (the others are set to 0: keep / factor index of 1.0
 * for the shrink policy); rng == NULL: act is given (teacher forcing, for gradients and tests). Removal: act[l] 1 =
 * remove; shrink: act[l] = index into NL_N2N_FACTORS. probs (may be NULL): (L, n_actions) the probabilities used. */
nl_var *nl_n2n_policy_logprob(nl_ctx *c, nl_n2n_policy *p, int L, const float *feat, const int *mask, nl_rng *rng, int *act,
                              double *probs);

/* ---- search ---- */
typedef struct nl_n2n_config {
    nl_n2n_arch teacher;
    int64_t n_train;          /* training images of the teacher (first rows of the training set) */
    int64_t n_distil;         /* distillation set of every rollout student (rows of the training set) */
    int64_t n_val;            /* validation images scoring rollout students (held out from the training rows) */
    int64_t n_test;           /* test images for the final numbers */
    int64_t teacher_epochs, distil_epochs, final_epochs; /* teacher; rollout student; final (best and random) students */
    int64_t batch;
    double lr;                /* Adam, teacher and students */
    int removal_epochs, shrink_epochs, rollouts; /* policy epochs per stage, rollouts per epoch (5) */
    double lr_removal, lr_shrink; /* Adam 0.003 / 0.1 (paper) */
    int64_t policy_hidden;    /* 30 */
    int downsample;           /* 2: images are 2x2 average pooled (28 -> 14) before everything */
    int frozen;               /* control: the policies are never updated (set by nl_n2n_run for its second variant) */
    uint64_t seed;
    int verbose;
} nl_n2n_config;

nl_n2n_config nl_n2n_defaults(void);

typedef struct nl_n2n_result {
    double teacher_acc;          /* test */
    int64_t teacher_params;
    nl_n2n_arch best;            /* the highest-reward child of both stages */
    double best_reward;
    double best_acc;             /* test accuracy of `best` after final distillation */
    int64_t best_params;
    double random_acc;           /* test accuracy of the random-removal child matched to best's compression */
    int64_t random_params;
    int n_epochs;                /* removal_epochs + shrink_epochs */
    double mean_reward[128];     /* per policy epoch (removal epochs then shrink epochs) */
    double seconds;
} nl_n2n_result;

/* Load Fashion-MNIST per cfg: training rows [0, n_train) (teacher), distillation rows (a subset of them), validation
 * rows held out after them, test rows; standardised with the training statistics; downsampled if asked. */
typedef struct nl_n2n_data {
    nl_dataset train, val, test;
} nl_n2n_data;
nl_status nl_n2n_data_load(const nl_n2n_config *cfg, nl_n2n_data *d);
void nl_n2n_data_free(nl_n2n_data *d);

/* One seed: the teacher, then the removal and shrink searches and the final distillation of the best child, for the
 * learned policies (out[0]) and, with with_frozen, again with policies that are never updated (out[1], the control;
 * same teacher, same student seeds); then a random-removal child matched to out[0]'s parameter count (shared). The
 * teacher's accuracy in the reward is its validation accuracy; the results' accuracies are test accuracies. */
nl_status nl_n2n_run(const nl_n2n_config *cfg, const nl_n2n_data *d, int with_frozen, nl_n2n_result *out);

/* ---- registration ---- */
extern const nl_experiment nl_exp_n2n;
extern const nl_method nl_method_n2n;
int nl_n2n_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
