/* methods/tas/tas.h — TAS: Network Pruning via Transformable Architecture Search (Dong & Yang, NeurIPS 2019).
 *
 * The width of every conv and the depth of every stage of a ResNet (lib/compress/resnet.h) are searched as
 * distributions: logits alpha_l over width choices floor(C_l r), r in {0.3, 0.4, ..., 1.0} (deduplicated), and beta_s
 * over depth choices (1, 2 for two blocks; 1, 3, 5, ..., n otherwise). Each training step samples, per conv, two width
 * choices without replacement from the Gumbel-softmax p = softmax((log_softmax(alpha) + g) / tau) and mixes their
 * outputs with the renormalised p of the two; the conv runs once at the larger width, each choice uses the first c
 * output channels with its own BatchNorm, and the two maps meet at the larger width by channel-wise interpolation
 * (CWI, nl_tas_cwi). A stage's output is the Gumbel-weighted sum of CWI'd feature maps at each depth choice. The
 * expected FLOPs E[F] (expected widths from softmax(alpha), each block weighted by the probability that the depth
 * reaches it) enter the FLOP loss (nl_tas_flop_loss) toward a target R = ratio * F_full; weights (SGD) and
 * architecture (Adam) are updated alternately on two halves of the training data; tau follows a cosine 5 -> 0.1.
 * The searched shape (argmax widths and depths) is then trained from scratch with KD from the unpruned network. */
#ifndef NNLAB_METHODS_TAS_H
#define NNLAB_METHODS_TAS_H
#include "compress/kd.h"
#include "compress/resnet.h"
#include "nnlab/autograd.h"
#include "nnlab/data.h"
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_TAS_MAX_CHOICES 8

/* Width choices of a conv with C output channels: floor(C r) for r = 0.3 .. 1.0 (step 0.1), deduplicated, zeros
 * dropped, ascending (C = 16: 4 6 8 9 11 12 14 16). Returns the count. */
int nl_tas_width_choices(int C, int out[NL_TAS_MAX_CHOICES]);
/* Depth choices of a stage with n blocks: n = 1: (1); 2: (1, 2); 3: (1, 2, 3); else 1, 3, 5, ... plus n. Count. */
int nl_tas_depth_choices(int n, int out[NL_RESNET_MAX_BLOCKS]);

/* Channel-wise interpolation: x [N, C, H, W] -> [N, Co, H, W], output channel t = mean of input channels
 * [floor(t C / Co), ceil((t + 1) C / Co)) (adaptive average pooling over channels; identity when Co == C).
 * Differentiable; f32 and f64. */
nl_var *nl_tas_cwi(nl_ctx *c, nl_var *x, int64_t Co);
/* a + b for [N, C, H, W] maps of different channel counts: the smaller is zero-padded (added to the first channels). */
nl_var *nl_tas_add_pad(nl_ctx *c, nl_var *a, nl_var *b);

/* y = x * p for an f32 x of any shape and a 1-element f32 var p (the mixing weights; differentiable in both). */
nl_var *nl_tas_scale(nl_ctx *c, nl_var *x, nl_var *p);

/* The FLOP loss of TAS (get_flop_loss): with F_cur the FLOPs of the current argmax shape, target R and tolerance t,
 *     log E[F]   if F_cur > R;      -log E[F]   if F_cur < R - t;      0 otherwise (the zero band [R - t, R]).
 * expected: scalar var E[F] > 0 (any unit). Returns a scalar var (a constant 0 inside the band). */
nl_var *nl_tas_flop_loss(nl_ctx *c, nl_var *expected, double flop_cur, double target, double tol);

typedef struct nl_tas_config {
    nl_resnet_config net;  /* the unpruned network = the supernet's maximal widths and depths */
    double flop_ratio;     /* target FLOPs / full FLOPs (0.5) */
    double flop_weight;    /* weight of the FLOP loss (2) */
    double flop_tol;       /* tolerance as a fraction of the full FLOPs (0.05) */
    double tau_max, tau_min; /* Gumbel temperature, cosine from max to min over the search (5, 0.1) */
    int64_t epochs;        /* passes over the weight half of the search data */
    int64_t batch;         /* minibatch (both halves) */
    double lr;             /* weights: SGD with Nesterov momentum 0.9, weight decay 5e-4, cosine (0.1) */
    double arch_lr;        /* architecture: Adam betas (0.5, 0.999) */
    double arch_wd;        /* architecture weight decay (1e-3) */
    int64_t record_every;  /* record a candidate shape every this many steps and at each epoch's end (0: per epoch) */
    uint64_t seed;
    int verbose;
} nl_tas_config;

nl_tas_config nl_tas_defaults(void);

typedef struct nl_tas_result {
    nl_resnet_config shape;   /* the searched network (argmax widths, argmax depths) of the chosen epoch */
    int64_t step;             /* the step (0-based) after which the chosen candidate was recorded */
    int64_t candidates, candidates_in_band;
    int in_band;              /* 1: its FLOPs are within the tolerance of the target */
    double flops, flops_full; /* FLOPs (MACs per image) of shape and of the unpruned net */
    double expected_flops;    /* E[F] at the end of the search */
    int64_t steps;            /* weight steps (= architecture steps) */
    double seconds;
} nl_tas_result;

/* Search on `train` (weights) and `valid` (architecture), the two halves of the search data. After every epoch (and
 * every record_every steps) the argmax shape (genotype) is recorded with the supernet's accuracy on the architecture
 * half since the previous record (the architecture steps' own predictions); the result is, as in the reference's search-shape.py, the genotype of best
 * accuracy among those with |FLOPs / F_full - ratio| <= tol, or the best overall when none is in the band. */
nl_status nl_tas_search(const nl_tas_config *cfg, const nl_dataset *train, const nl_dataset *valid, nl_tas_result *out);

/* A random shape of the same space (uniform width choice per conv, uniform depth per stage), redrawn until its FLOPs
 * lie within rel of `flops` (at most 100000 draws; NL_EINVAL when none fits). */
nl_status nl_tas_random_shape(const nl_resnet_config *full, double flops, double rel, uint64_t seed, nl_resnet_config *out);
/* The uniform-width shape whose FLOPs are closest to `flops` (same depths, every width floor(C r), r by bisection). */
nl_resnet_config nl_tas_uniform_shape(const nl_resnet_config *full, double flops);

extern const nl_experiment nl_exp_tas;
int nl_tas_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
