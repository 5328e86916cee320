/* sara/sara.h — SaRA: progressive sparse low-rank adaptation of a pretrained diffusion model (Hu et al., ICLR 2025;
 * official code sjtuplayer/SaRA). methods/sara/README.md has the protocol, the deviations and the numbers.
 *
 * ---- the optimiser (nl_sara) ----
 * Selection: tau = the fraction-quantile of |theta| over every entry of every parameter of the store (fraction p in
 *   (0, 1)); the mask M = |theta_0| < tau, so |M| <= floor(p N) (ties at tau are left out). The selected entries are
 *   kept as a compact ascending list of flat offsets into the store (int32 each) with their Adam moments m, v (two
 *   floats each): 12 bytes per trainable entry; nothing else is stored per entry.
 * Step t (AdamW, PyTorch semantics, on the selected entries only; unselected entries are never written):
 *   g_j = grad[idx_j] + lambda (U V^T)_j   (the second term only for the entries of the penalised matrix, below)
 *   theta_j *= 1 - lr wd;  m_j = b1 m_j + (1-b1) g_j;  v_j = b2 v_j + (1-b2) g_j^2;
 *   theta_j -= lr / (1-b1^t) * m_j / (sqrt(v_j) / sqrt(1-b2^t) + eps)
 *   The gradient is gathered from the store's dense gradient (the engine's per-layer dW, the scratch the official
 *   code also has), so the optimiser's own memory is the 12 bytes per entry above.
 * Nuclear-norm penalty (the paper's low-rank constraint): each step one weight matrix W (a parameter of >= 2 dims
 *   viewed as (out, numel / out), min(out, in) >= min_rank_dim) is drawn at random and lambda ||W (.) M||_* is added to
 *   the loss; its subgradient lambda (U V^T) (.) M (thin SVD of W (.) M, LAPACKE dgesdd; singular values below
 *   1e-12 s_max dropped) is added to the masked entries' gradients. The official memory-efficient optimiser
 *   (optim/adamw.py) calls backward on the penalty of the original Parameter objects, whose .grad its update never
 *   reads, so there the penalty does nothing; this implementation applies it, as the paper describes.
 * Progressive re-selection: after step progressive_step the mask is narrowed to M and (|theta_t| < tau) (tau the
 *   original threshold) and the Adam state and step count are reset.
 *
 * ---- the experiment (nl_sara_protocol) ----
 * A tiny UNet (lib/diffusion) is pretrained as a DDPM on Fashion-MNIST classes 0-4 (16x16) and fine-tuned on classes
 * 5-9 with SaRA, with LoRA (lib/peft) of the same trainable-parameter count and with full fine-tuning; images are
 * scored by the Frechet distance (FD) on the features of a small Fashion-MNIST classifier. */
#ifndef NNLAB_SARA_H
#define NNLAB_SARA_H
#include "nnlab/autograd.h"
#include "nnlab/ledger.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nl_sara_config {
    double fraction;          /* p in (0, 1): the smallest fraction of |theta| is trainable (0.1) */
    double lr;                /* 1e-3 */
    double beta1, beta2, eps; /* 0.9, 0.999, 1e-8 */
    double weight_decay;      /* decoupled, 1e-2 (the official default) */
    double lambda_rank;       /* nuclear-norm weight (the official 5e-4); 0 = off */
    int64_t min_rank_dim;     /* smallest min(out, in) of a penalised matrix (official: > 64; here 8) */
    int64_t progressive_step; /* re-select after this many steps (<= 0: never) */
    uint64_t seed;            /* the draw of the penalised matrix */
} nl_sara_config;

nl_sara_config nl_sara_defaults(void);

typedef struct nl_sara {
    nl_sara_config cfg;
    nl_params *ps;        /* the model's store (not owned) */
    double tau;           /* the threshold on |theta| */
    int64_t n_sel;        /* selected entries |M| */
    int32_t *idx;         /* (n_sel) flat offsets into ps->data, ascending */
    float *m, *v;         /* (n_sel) Adam moments */
    int64_t *seg;         /* (ps->n + 1) the entries of parameter i are idx[seg[i] .. seg[i+1]) */
    int *rank_ids;        /* (n_rank) parameters eligible for the nuclear-norm penalty */
    int n_rank;
    int64_t step;         /* updates since the last reset (Adam's t - 1) */
    int64_t total_steps;  /* updates since init */
    int reselected;       /* 1 once the progressive re-selection has happened */
    nl_rng rng;
    double last_nuclear;  /* ||W (.) M||_* of the matrix penalised at the last step (0 when off) */
} nl_sara;

/* Select and allocate. Errors: fraction outside (0, 1) ("sara: threshold fraction 1.5 outside (0, 1)"), a store that
 * is not f32 or holds more than 2^31 entries, no entry below the threshold (all |theta| equal). */
nl_status nl_sara_init(nl_sara *o, nl_params *ps, const nl_sara_config *cfg);
void nl_sara_free(nl_sara *o);
/* One update from the gradients in ps (see above). Non-finite gradient: NL_ENONFINITE, nothing changed. */
nl_status nl_sara_step(nl_sara *o);
/* Narrow the mask to the entries still below tau and reset the Adam state (nl_sara_step calls it after step
 * progressive_step; exposed for tests). */
nl_status nl_sara_reselect(nl_sara *o);
/* The optimiser's own bytes: idx, m, v (12 per selected entry) plus seg and rank_ids. */
int64_t nl_sara_state_bytes(const nl_sara *o);

/* The penalty on one matrix: w (rows, cols) values, mask (rows, cols) 0/1 (NULL = all). *nuc = ||w (.) mask||_*;
 * grad (rows, cols), if not NULL, receives (U V^T) (.) mask (singular values below 1e-12 s_max dropped). Errors:
 * NL_ELINALG when the SVD does not converge, NL_ENOMEM. */
nl_status nl_sara_nuclear(const float *w, const float *mask, int64_t rows, int64_t cols, double *nuc, double *grad);

/* The |theta| quantile: the k-th smallest |x| (0-based, k = floor(p n + 1e-9)) over the entries of every parameter; the
 * selection is |x| < that value. */
double nl_sara_threshold(const nl_params *ps, double fraction);

/* ---- registration ---- */
extern const nl_experiment nl_exp_sara;
extern const nl_method nl_method_sara;
int nl_sara_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
