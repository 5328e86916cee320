/* lib/compress/kd.h — knowledge distillation (Hinton, Vinyals & Dean 2015): the loss as an engine-graph function and
 * a distillation training loop for any student given as a forward callback over an nl_params store.
 *
 * Loss (the form of AutoDL-Projects' loss_KD_fn, used by TAS and N2N's students):
 *     L = (1 - alpha) CE(z_s, y) + alpha T^2 KL(softmax(z_t / T) || softmax(z_s / T))
 * with the KL summed over classes and averaged over the rows ("batchmean"); the T^2 keeps the soft term's gradient
 * on the scale of the hard term's as T grows (Hinton et al., section 2). The teacher's logits are constants (no
 * gradient reaches them). alpha = 0 is plain cross-entropy training (no teacher needed), alpha = 1 pure distillation
 * (no labels needed). */
#ifndef NNLAB_COMPRESS_KD_H
#define NNLAB_COMPRESS_KD_H
#include "nnlab/autograd.h"
#include "nnlab/data.h"
#include "nnlab/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The KD loss (a scalar var). student [N, C] logits (gradient flows); teacher [N, C] logits (detached here);
 * targets (N) class ids in [0, C), needed when alpha < 1 (may be NULL when alpha == 1). T > 0, alpha in [0, 1];
 * anything else returns NULL with an NL_EINVAL message. f32 and f64. */
nl_var *nl_kd_loss(nl_ctx *c, nl_var *student, nl_var *teacher, const int32_t *targets, double T, double alpha);

/* A model's forward pass: x [B, d] (rows of a dataset, d = ds->d) -> logits [B, C]. train = 1: training mode
 * (BatchNorm batch statistics and running-stat updates); 0: eval mode. ud: the model. */
typedef nl_var *(*nl_kd_forward)(nl_ctx *c, void *ud, nl_var *x, int train);

/* Where the teacher's logits come from: precomputed for the training rows (logits (n, C), row i of the dataset),
 * or computed per batch by forward(ud, x, train = 0) without gradient. Both NULL: no teacher (alpha must be 0). */
typedef struct nl_kd_teacher {
    const float *logits;   /* (n, C) or NULL */
    nl_kd_forward forward; /* used when logits == NULL */
    void *ud;
} nl_kd_teacher;

typedef struct nl_kd_config {
    double T;              /* temperature (4) */
    double alpha;          /* weight of the soft term (0.9) */
    int64_t epochs;        /* passes over the training set (1) */
    int64_t batch;         /* minibatch rows (64); the last partial batch is dropped when it has < 2 rows (BatchNorm) */
    nl_optim_config optim; /* SGD 0.1, momentum 0.9, Nesterov, weight decay 5e-4, cosine to 0 over the run (TAS's) */
    uint64_t seed;         /* batch order: epoch e is a permutation from nl_rng(seed, NL_KD_STREAM + e) */
    int verbose;           /* 1: one progress line per epoch */
} nl_kd_config;
#define NL_KD_STREAM ((uint64_t)0x4B0D1571ULL << 32)

nl_kd_config nl_kd_defaults(void);

/* Train the student's parameters ps (all trainable ones) on `train` with the KD loss for cfg->epochs epochs. The
 * optimizer is created here (cfg->optim; total_steps = 0 means the whole run). teacher may be NULL when alpha == 0.
 * *last_loss (may be NULL): mean loss of the last epoch. NL_ENONFINITE when the loss diverges. */
nl_status nl_kd_train(const nl_kd_config *cfg, const nl_kd_teacher *teacher, nl_kd_forward student, void *ud, nl_params *ps,
                      const nl_dataset *train, double *last_loss);

/* Eval-mode logits of every row of ds: out (ds->n, C), C = ds->n_classes (the forward must return that width). */
nl_status nl_kd_logits(nl_kd_forward f, void *ud, const nl_dataset *ds, int64_t batch, float *out);
/* Eval-mode top-1 accuracy in [0, 1] on ds. */
nl_status nl_kd_accuracy(nl_kd_forward f, void *ud, const nl_dataset *ds, int64_t batch, double *acc);

#ifdef __cplusplus
}
#endif
#endif
