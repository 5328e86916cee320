/* batchformer/batchformer.h — BatchFormer: Learning to Explore Sample Relationships for Robust Representation
 * Learning (Hou, Yu, Tao, CVPR 2022; official code zhihou7/BatchFormer, long-tailed_recognition/BalancedSoftmax).
 * methods/batchformer/README.md has the protocol, the deviations and the numbers.
 *
 * ---- the model ----
 * Backbone: x [N, 784] -> FC(hidden) -> ReLU -> FC(C) -> ReLU = f [N, C] (an MLP where the reference has a ResNet whose
 *   pooled feature is also after a ReLU). Classifier: logits = f W^T + b  [N, K].
 * BatchFormer (reference encoder_network.py, add_bt = 1: torch.nn.TransformerEncoderLayer(C, 4, C, 0.5), post-norm,
 *   ReLU) applied across the batch: the N features are the N tokens of ONE sequence (f.unsqueeze(1) in the reference):
 *     q, k, v = f Wq^T + bq, f Wk^T + bk, f Wv^T + bv   [N, C] each, split into H heads of C/H
 *     P = dropout(softmax(q k^T / sqrt(C/H)))          [H, N, N]  (torch's attention dropout, p = 0.5; the engine's
 *                                                      fused nl_attention_ex with its attention-weight dropout)
 *     a = (P v) Wo^T + bo                              [N, C]
 *     g = LN1(f + dropout(a));  BF(f) = LN2(g + dropout(W2 dropout(ReLU(W1 g + b1)) + b2))   (FFN width C)
 *   Training logits: classifier([BF(f); f]) [2N, K] against labels [y; y] — the SAME classifier for both halves
 *   (rows 0..N-1 the BatchFormer half, rows N..2N-1 the plain half, as the reference's torch.cat order).
 *   Test time: BatchFormer removed, logits = classifier(f): the prediction of a sample does not depend on the batch.
 *   The BatchFormer's parameters train at 0.1x the learning rate (the reference's optimizer group).
 *   Control (identity): P replaced by the identity matrix (each sample attends only to itself; dropout on it as on P:
 *   the same attention call with an additive mask, 0 on the diagonal and -inf elsewhere),
 *   everything else unchanged: the same extra layer, losses and doubled batch, but no sample relationships.
 * ---- the losses ----
 *   CE: mean cross-entropy. Balanced Softmax (Ren et al. 2020, reference loss/BalancedSoftmaxLoss.py): the
 *   cross-entropy of logits + log(prior), prior_k = n_k / n the training class frequencies; plain logits at test.
 * ---- the data ----
 *   Long-tailed Fashion-MNIST as CIFAR-LT (reference data/ImbalanceCIFAR.py, exponential profile): class k keeps
 *   floor(n_max * ratio^(-k/(K-1))) images (a fixed random subset of its training images), ratio = n_max / n_min >= 1.
 *   Groups by training frequency: the classes sorted by count (ties by index), many = the top 3, medium = the next 4,
 *   few = the last 3 (K = 10). Test: the balanced 10000 test images. */
#ifndef NNLAB_BATCHFORMER_H
#define NNLAB_BATCHFORMER_H
#include "nnlab/autograd.h"
#include "nnlab/data.h"
#include "nnlab/ledger.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nl_bf_loss { NL_BF_CE = 0, NL_BF_BALANCED = 1 } nl_bf_loss;
typedef enum nl_bf_kind {
    NL_BF_NONE = 0,     /* plain training (no BatchFormer) */
    NL_BF_ATTN = 1,     /* BatchFormer */
    NL_BF_IDENTITY = 2  /* control: BatchFormer with the attention matrix replaced by the identity */
} nl_bf_kind;

typedef struct nl_bf_config {
    int64_t hidden;      /* backbone hidden width (256) */
    int64_t dim;         /* feature dimension C (64) */
    int heads;           /* 4 */
    double dropout;      /* 0.5 */
    double bf_lr_mult;   /* 0.1 */
    double lr, wd;       /* Adam 1e-3 (cosine), L2 weight decay 5e-4 */
    int64_t batch;       /* 128 */
    int64_t epochs;
    double imbalance;    /* n_max / n_min (100) */
    int64_t n_max;       /* images of the most frequent class (6000 = all) */
    int64_t test_limit;  /* first test images (0 = all 10000) */
    uint64_t data_seed;  /* which images the long-tailed subset keeps (0) */
    uint64_t seed;       /* initialisation, batch order, dropout */
    int verbose;
} nl_bf_config;

nl_bf_config nl_bf_defaults(void);
const char *nl_bf_loss_name(nl_bf_loss l); /* "ce" | "balanced-softmax" */
const char *nl_bf_kind_name(nl_bf_kind k); /* "plain" | "batchformer" | "identity" */

/* ---- data ---- */
/* Long-tailed subset of src (K = src->n_classes classes): class k keeps floor(n_max ratio^(-k/(K-1))) of its rows, a
 * random subset drawn with data_seed, in their original order. ratio < 1 (or NaN), n_max < 1, or a class with fewer
 * rows than asked: NL_EINVAL naming the value. counts (K) gets the kept counts when not NULL. */
nl_status nl_bf_longtail(const nl_dataset *src, double ratio, int64_t n_max, uint64_t data_seed, nl_dataset *out, int64_t *counts);
/* group (K) of each class from the training counts (K): 0 many, 1 medium, 2 few (the top 3, next K-6, last 3 by count). */
nl_status nl_bf_groups(const int64_t *counts, int K, int *group);
/* Load Fashion-MNIST, build the long-tailed training set, standardise both (training statistics), first test_limit
 * test rows. counts (10) gets the class counts. */
nl_status nl_bf_load(const nl_bf_config *cfg, nl_dataset *tr, nl_dataset *te, int64_t *counts);

/* ---- model ---- */
typedef struct nl_bf_net {
    nl_bf_kind kind;
    nl_params ps;
    int64_t d_in, hidden, dim, n_classes;
    int heads;
    double dropout;
    nl_var *W1, *b1, *W2, *b2;       /* backbone (hidden, d_in), (hidden), (dim, hidden), (dim) */
    nl_var *Wc, *bc;                 /* classifier (K, dim), (K) */
    nl_var *Wqkv, *bqkv, *Wo, *bo;   /* BatchFormer attention (3 dim, dim), (3 dim), (dim, dim), (dim); NULL when none */
    nl_var *F1, *f1, *F2, *f2;       /* FFN (dim, dim), (dim), (dim, dim), (dim) */
    nl_var *g1, *e1, *g2, *e2;       /* LayerNorm 1 and 2 gain and bias (dim) */
    nl_rng drop;                     /* dropout stream */
} nl_bf_net;

nl_status nl_bf_net_init(nl_bf_net *m, nl_bf_kind kind, const nl_bf_config *cfg, int64_t d_in, int64_t n_classes, uint64_t seed);
void nl_bf_net_free(nl_bf_net *m);
/* Backbone features f [N, dim] of x [N, d_in]. */
nl_var *nl_bf_features(nl_ctx *c, nl_bf_net *m, nl_var *x);
/* The BatchFormer layer on f [N, dim] across the batch -> [N, dim]; train: dropout on. NULL (error) for NL_BF_NONE. */
nl_var *nl_bf_layer(nl_ctx *c, nl_bf_net *m, nl_var *f, int train);
/* Classifier logits of features [M, dim] -> [M, K]. */
nl_var *nl_bf_classify(nl_ctx *c, nl_bf_net *m, nl_var *f);
/* Training logits of x [N, d_in]: [classifier(BF(f)); classifier(f)] [2N, K] (kind != NONE), classifier(f) [N, K] for
 * NONE. *rows gets the number of rows (2N or N). */
nl_var *nl_bf_train_logits(nl_ctx *c, nl_bf_net *m, nl_var *x, int64_t *rows);
/* Test-time logits (BatchFormer removed, no dropout): classifier(f) [N, K]. */
nl_var *nl_bf_test_logits(nl_ctx *c, nl_bf_net *m, nl_var *x);
/* The training loss of logits [M, K] against labels y (M): CE, or Balanced Softmax with prior (K) (class frequencies,
 * positive, summing to 1). */
nl_var *nl_bf_loss_fn(nl_ctx *c, nl_var *logits, const int32_t *y, nl_bf_loss loss, const float *prior);

/* ---- training and evaluation ---- */
typedef struct nl_bf_eval {
    double overall, many, medium, few; /* accuracy [0, 1]: all test rows; mean per-class accuracy of each group */
    double per_class[16];
} nl_bf_eval;

/* Train m with the given loss on tr (prior from tr's class counts). */
nl_status nl_bf_train(nl_bf_net *m, const nl_bf_config *cfg, nl_bf_loss loss, const nl_dataset *tr, double *seconds);
/* Test accuracy (batches of 500, BatchFormer removed); groups from the training counts (K). */
nl_status nl_bf_evaluate(nl_bf_net *m, const nl_dataset *te, const int64_t *counts, nl_bf_eval *out);
/* One model: init (seed cfg->seed), train, evaluate. */
nl_status nl_bf_run(const nl_bf_config *cfg, nl_bf_kind kind, nl_bf_loss loss, const nl_dataset *tr, const nl_dataset *te,
                    const int64_t *counts, nl_bf_eval *out, double *seconds);

/* ---- registration ---- */
extern const nl_experiment nl_exp_batchformer;
extern const nl_method nl_method_batchformer;
int nl_bf_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
