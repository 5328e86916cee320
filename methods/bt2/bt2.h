/* bt2/bt2.h — BT^2: Backward-compatible Training with Basis Transformation (Zhou et al., ICCV 2023; official code
 * YifeiZhou02/BT-2). A new embedding model must stay comparable with an old model's gallery (new/old retrieval) while
 * gaining from its extra capacity (new/new). methods/bt2/README.md has the protocol, deviations and numbers.
 *
 * ---- the models (every embedding is L2-normalised before use) ----
 * Backbone: x [B, 784] -> FC(hidden) -> ReLU -> FC(d_back) -> ReLU (an MLP where the reference has a ResNet-50 whose
 *   output is also after a ReLU, last_nonlin = True).
 *   old / independent / BCT: d_back = d_old (128), feature f = normalise(backbone(x)), logits = f W^T (no bias).
 *   old: classes 0..old_classes-1 only; independent and BCT: all classes.
 *   BCT (reference trainers/bct_trainer.py): loss = CE_ls(f W^T, y) + alpha CE_ls(f P^T, y), P [C, d_old] the
 *   per-class means of the old model's features of the training images (all classes), alpha = 10.
 * BT^2 (reference models/resnet.py ResNet_ortho, trainers/transfer_trainer.py), d_back = 2 d_old (256):
 *   f2 = backbone(x); feat = normalise(f2[:, :d_old]); o = normalise(fc3(ReLU(f2))[:, :d_add]) (fc3 with bias; only its
 *   first d_add outputs are ever used, so fc3 has d_add outputs here);
 *   n = [o, (C feat) O_p^T]  [B, d_add + d_old];  bct = n[:, :d_old] O_2^T  [B, d_old];  extra = n[:, d_old:]  [B, d_add];
 *   embedding = [bct, extra]  [B, d_old + d_add] (160); logits = feat W_out^T (no bias).
 *   O_p, O_2 (d_old, d_old) orthogonal: torch.nn.utils.parametrizations.orthogonal on a square nn.Linear, i.e.
 *   O = B exp(A), B a fixed random orthogonal base (the QR factor of the initial weight), A = tril(X,-1) - tril(X,-1)^T
 *   trained from X = 0 (nl_orthogonal_expm, include/nnlab/linalg.h).
 *   loss = CE(logits, y) + w_old (1 - cos(phi_old, bct)) + w_new (1 - cos(phi_new, feat)) + w_infl CE(nbct P^T, y),
 *   phi_old / phi_new the frozen old and independent new models' features of the image, nbct = normalise(bct);
 *   weights 10, 1, 10 as hard-coded in the reference trainer; C = 2.
 *   Control (frozen): O_p = O_2 = I, not trained.
 * ---- retrieval (reference utils/eval_utils.py) ----
 * Query and gallery embeddings are truncated to the smaller dimension, L2-normalised and compared by cosine
 * similarity. top-1 (CMC rank 1): the fraction of queries whose most similar gallery item has the query's class;
 * mAP: the mean over queries of the average precision of the ranking (ties broken by gallery index). With same_set
 * (query set = gallery set, the reference's protocol on the test set) an item is never matched with itself. */
#ifndef NNLAB_BT2_H
#define NNLAB_BT2_H
#include "nnlab/autograd.h"
#include "nnlab/data.h"
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- retrieval metrics ---- */
typedef struct nl_bt2_retrieval {
    double top1;     /* [0, 1] */
    double map;      /* [0, 1] */
    int64_t queries;
} nl_bt2_retrieval;

/* q (nq, dq) query and g (ng, dg) gallery embeddings (row-major), labels qy (nq), gy (ng). same_set: q and g are the
 * same images in the same order (nq == ng required); item i is then left out of query i's ranking. A query whose class
 * has no (other) gallery item: NL_EINVAL naming the query and the class. Zero-length rows are an error too. */
nl_status nl_bt2_retrieve(const float *q, int64_t nq, int64_t dq, const int32_t *qy, const float *g, int64_t ng, int64_t dg,
                          const int32_t *gy, int same_set, nl_bt2_retrieval *out);

/* ---- models ---- */
typedef enum nl_bt2_kind {
    NL_BT2_OLD = 0,     /* old model: classes 0..old_classes-1 */
    NL_BT2_INDEP,       /* new model trained alone */
    NL_BT2_BCT,         /* new model with BCT's influence loss */
    NL_BT2_BT2,         /* BT^2 */
    NL_BT2_FROZEN       /* control: BT^2 with both transformations frozen at the identity */
} nl_bt2_kind;

typedef struct nl_bt2_config {
    int64_t hidden;          /* backbone hidden width (256) */
    int64_t d_old;           /* old (and independent / BCT) embedding dimension (128) */
    int64_t d_add;           /* BT^2's extra dimensions (32) */
    int old_classes;         /* the old model's classes 0..old_classes-1 (5) */
    double lr, wd;           /* Adam 1e-3, L2 weight decay 3.0517578125e-5 (the reference's) */
    double label_smoothing;  /* 0.1 for old / independent / BCT (the reference's backbone trainer) */
    double bct_alpha;        /* 10 */
    double C;                /* 2 */
    double w_old, w_new, w_infl; /* 10, 1, 10 */
    int64_t batch;           /* 128 */
    int64_t epochs;          /* epochs of every training (old, independent, BCT, BT^2) */
    int64_t limit;           /* first `limit` training images (0 = all 60000) */
    int64_t test_limit;      /* first `test_limit` test images: query and gallery set (0 = all 10000) */
    uint64_t seed;
    int verbose;
} nl_bt2_config;

nl_bt2_config nl_bt2_defaults(void);
const char *nl_bt2_kind_name(nl_bt2_kind k); /* "old" | "independent" | "bct" | "bt2" | "bt2-frozen" */
nl_status nl_bt2_kind_parse(const char *s, nl_bt2_kind *out);

typedef struct nl_bt2_net {
    nl_bt2_kind kind;
    nl_params ps;
    int64_t d_in, hidden, d_back, d_emb, n_classes, d_old, d_add;
    double C;
    nl_var *W1, *b1, *W2, *b2; /* (hidden, d_in), (hidden), (d_back, hidden), (d_back) */
    nl_var *fc;                /* (n_classes, d_old) classifier on the normalised feature, no bias */
    nl_var *fc3_W, *fc3_b;     /* BT^2: (d_add, d_back), (d_add) */
    nl_var *Xp, *X2;           /* BT^2: (d_old, d_old) free parameters of O_p and O_2 (NULL when frozen) */
    float *base_p, *base_2;    /* BT^2: (d_old, d_old) fixed random orthogonal bases (NULL when frozen) */
} nl_bt2_net;

nl_status nl_bt2_net_init(nl_bt2_net *m, nl_bt2_kind kind, const nl_bt2_config *cfg, int64_t d_in, int64_t n_classes,
                          uint64_t seed);
void nl_bt2_net_free(nl_bt2_net *m);
/* Forward on x [B, d_in]: *emb the retrieval embedding [B, d_emb] (normalised feature; BT^2: [bct, extra]), *logits
 * [B, n_classes]; BT^2 also *feat [B, d_old] (normalised) and *bct [B, d_old] (not normalised). Unused outputs may be
 * NULL pointers. Returns the status. */
nl_status nl_bt2_forward(nl_ctx *c, nl_bt2_net *m, nl_var *x, nl_var **emb, nl_var **logits, nl_var **feat, nl_var **bct);
/* The orthogonal matrices O_p, O_2 (d_old, d_old) of a BT^2 net into op, o2 (for tests; identity when frozen). */
nl_status nl_bt2_orthogonals(nl_bt2_net *m, float *op, float *o2);

/* ---- training and evaluation ---- */
/* Teachers a training run needs: the old model's features phi_old (n, d_old) of the training rows and their class means
 * P (n_classes, d_old) (BCT, BT^2), and the independent model's features phi_new (n, d_old) (BT^2). */
typedef struct nl_bt2_teach {
    const float *phi_old, *phi_new, *P;
} nl_bt2_teach;

/* Train m (kind set at init) on the rows of tr (the old model: only rows with y < old_classes); te gives the
 * per-epoch classification accuracy when verbose. */
nl_status nl_bt2_train(nl_bt2_net *m, const nl_bt2_config *cfg, const nl_dataset *tr, const nl_bt2_teach *teach,
                       double *seconds);
/* Embeddings (n, d_emb) of the rows of x (n, d_in), in chunks, without gradient. */
nl_status nl_bt2_embed(nl_bt2_net *m, const float *x, int64_t n, float *emb);
/* Per-class means P (n_classes, d) of the rows of f (n, d) with labels y; a class without rows gives a zero row. */
nl_status nl_bt2_class_means(const float *f, const int32_t *y, int64_t n, int64_t d, int n_classes, float *P);

/* One seed of the whole protocol on prepared data: old model, independent, BCT, BT^2 and (if frozen_too) the frozen
 * control; retrieval on te (query = gallery = te, self excluded). */
typedef struct nl_bt2_protocol {
    nl_bt2_retrieval old_old;
    nl_bt2_retrieval new_old[4], new_new[4]; /* independent, BCT, BT^2, frozen (index kind - NL_BT2_INDEP) */
    double old_acc, new_acc[4];              /* test classification accuracy (old: on its classes) */
    double seconds;
    int64_t n_train;
} nl_bt2_protocol;
nl_status nl_bt2_protocol_run(const nl_bt2_config *cfg, const nl_dataset *tr, const nl_dataset *te, int frozen_too,
                              nl_bt2_protocol *out);
/* Load Fashion-MNIST, standardise, take the first limit / test_limit rows (copies in tr, te; free with
 * nl_dataset_free). */
nl_status nl_bt2_load(const nl_bt2_config *cfg, nl_dataset *tr, nl_dataset *te);

/* ---- registration ---- */
extern const nl_experiment nl_exp_bt2;
extern const nl_method nl_method_bt2;
int nl_bt2_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
