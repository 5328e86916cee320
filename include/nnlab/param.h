/* nnlab/param.h — width parametrisations (standard, NTK, muP) for every model nnlab builds, the abc-
 * parametrisation classifier of Yang & Hu (2020, "Feature Learning in Infinite-Width Neural Networks", TP4),
 * the muP coordinate check and the learning-rate transfer sweep (ledger entry `mup`). docs/mup.md has the tables.
 *
 * ---- how a parametrisation is applied ----
 * A parametrisation is a model hook (model.h): after the default PyTorch init every tensor is passed to
 * nl_param_model_hook, which rescales its values (init), sets its forward multiplier (fwd_mult: the layer computes
 * fwd_mult * (x W^T) + bias), its learning-rate multiplier (lr_mult), its weight-decay multiplier (wd_mult) and,
 * optionally, its optimizer group (NL_PARAM_GROUP_*). The optimizer then uses lr * lr_mult per tensor
 * (optim.h), so any optimizer built on the model's store follows the rule; nothing else needs to know.
 *
 *     nl_parametrization p = nl_param_defaults();
 *     p.kind = NL_PARAM_MUP; p.base_width = 128; p.optim = NL_OPT_ADAM;   // the LR rule depends on the optimizer
 *     nl_model_config cfg = nl_mlp_config(4, (int64_t[]){784, 1024, 1024, 10}, NL_ACT_RELU, 0);
 *     nl_param_apply(&cfg, &p);            // cfg.hook = nl_param_model_hook, cfg.hook_ud = &p (p must outlive the model's
 *     nl_model_init(&m, &cfg, seed);       //  init and every nl_model_reinit)
 *     ... nl_optim_init(&o, &m.ps, &oc) with oc.kind matching p.optim ...
 *
 * ---- width multiplier ----
 * All hidden dimensions scale together. The model's width is its largest hidden dimension (MLP: the largest hidden
 * size; CNN: the largest of its conv channels and its hidden fc width); width_mult = width / base_width (or
 * p.width_mult when set). At width_mult = 1 every kind is exactly the PyTorch default (SP), except for the optional
 * zero readout. A dimension is "infinite" (scales with width) unless it is the input features or the classes.
 *
 * ---- the rules (wm = width_mult; "default" = PyTorch's U(+-1/sqrt(fan_in)) init) ----
 * kind  tensor                      init (x default)   fwd_mult            SGD lr_mult   Adam lr_mult
 * sp    every tensor                1                  1                   1             1
 * mup   input weight  [n, d]        1                  1                   wm            1
 *       hidden weight [n, n]        1                  1                   1             1/wm
 *       readout weight [k, n]       sqrt(wm) (or 0)    output_mult/wm      wm            1
 *       bias of a width-out layer   sqrt(fan_in mult)  1                   wm            1
 *       readout bias  [k]           sqrt(wm) (or 0)    1                   1             1
 *       norm weight/bias [n]        1                  1                   wm            1
 * ntk   input weight                1                  1                   1             1/sqrt(wm)
 *       hidden weight               sqrt(wm)           1/sqrt(wm)          1             1/wm
 *       readout weight              sqrt(wm) (or 0)    1/sqrt(wm)          1             1/sqrt(wm)
 *       bias of a width-out layer   sqrt(fan_in mult)  1                   1             1/sqrt(wm)
 *       readout bias                sqrt(wm) (or 0)    1                   1             1
 *       norm weight/bias            1                  1                   1             1/sqrt(wm)
 * "fan_in mult" is wm when the layer's input is a width dimension, else 1. wd_mult = 1 / lr_mult throughout (the
 * mup library's convention: lr * wd per step does not depend on width, for L2 and for decoupled decay alike).
 * muP is TP5 Table 8 as the mup library implements it (MuReadout with 1/width_mult, MuSGD: vector-like tensors
 * lr * width_mult, matrix-like lr / (fan_in mult / fan_out mult); MuAdam: matrix-like lr / width_mult; readout and
 * hidden biases rescaled to a width-independent init). NTK: W = w / sqrt(fan_in mult) with a width-independent
 * init of w (Jacot et al.'s NTP relative to the base width); its Adam rule is derived so that Adam's per-entry
 * updates scale like NTP-SGD's (gradients of w: n^-1/2 input/readout/biases, n^-1 hidden), see docs/mup.md. */
#ifndef NNLAB_PARAM_H
#define NNLAB_PARAM_H
#include "nnlab/data.h"
#include "nnlab/model.h"
#include "nnlab/optim.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nl_param_kind { NL_PARAM_SP = 0, NL_PARAM_NTK, NL_PARAM_MUP, NL_PARAM_KIND_COUNT } nl_param_kind;

/* Optimizer groups assigned by the hook when set_groups is on (optim.h group_lr / group_wd then tune per role). */
enum {
    NL_PARAM_GROUP_OTHER = 0,   /* norms, buffers */
    NL_PARAM_GROUP_INPUT = 1,   /* input weights */
    NL_PARAM_GROUP_HIDDEN = 2,  /* hidden weights */
    NL_PARAM_GROUP_OUTPUT = 3,  /* readout weight */
    NL_PARAM_GROUP_BIAS = 4     /* biases (readout bias included) */
};

/* Deliberately broken variants (for showing that the checks can fail). */
#define NL_PARAM_ABLATE_OUTPUT_MULT 1u  /* muP without the readout's 1/width_mult multiplier (fwd_mult = output_mult) */
#define NL_PARAM_ABLATE_LR 2u           /* no per-tensor LR scaling (every lr_mult and wd_mult = 1) */

typedef struct nl_parametrization {
    nl_param_kind kind;
    double base_width;      /* width at which the kind equals SP; 0 = the model's own width (width_mult 1) */
    double width_mult;      /* > 0: use this instead of width / base_width */
    nl_optim_kind optim;    /* NL_OPT_SGD: SGD-like LR rule; NL_OPT_ADAM / NL_OPT_ADAMW: Adam-like rule */
    int zero_readout;       /* readout weight and bias start at 0 (mup's readout_zero_init; any kind) */
    double output_mult;     /* muP readout multiplier is output_mult / width_mult (default 1) */
    int set_groups;         /* 1: the hook sets each tensor's group (NL_PARAM_GROUP_*); 0: groups untouched */
    unsigned ablate;        /* NL_PARAM_ABLATE_* bits (0 = the correct rule) */
} nl_parametrization;

/* SP, base_width 0, width_mult 0, SGD rule, no zero readout, output_mult 1, set_groups 1, no ablation. */
nl_parametrization nl_param_defaults(void);
const char *nl_param_kind_name(nl_param_kind k);                   /* "sp" | "ntk" | "mup" */
nl_status nl_param_kind_parse(const char *s, nl_param_kind *out);   /* also accepts "ntp", "standard", "mup" */
/* Check the fields (NL_EINVAL naming the bad one). */
nl_status nl_param_check(const nl_parametrization *p);

/* ---- per-tensor rule ---- */
typedef struct nl_param_rule {
    double init_scale;      /* multiplier applied to the default init values (0: zero init) */
    double fwd_mult;
    double lr_mult;
    double wd_mult;
    int group;              /* NL_PARAM_GROUP_* */
} nl_param_rule;

/* The rule for a tensor of role `role` in a layer whose weight has role `layer_role` (for weights both are the
 * same; for a bias the layer's weight role tells whether its input and output are width dimensions; norms:
 * layer_role is ignored), at width multiplier wm > 0. Buffers get the identity rule. */
nl_status nl_param_rule_for(const nl_parametrization *p, nl_param_role role, nl_param_role layer_role, double wm,
                            nl_param_rule *out);
/* The model's width (largest hidden dimension; 0 when it has none) and the width multiplier p gives it. */
double nl_param_model_width(const nl_model_config *cfg);
double nl_param_width_mult(const nl_parametrization *p, const nl_model_config *cfg);

/* The hook (model.h signature); ud is a const nl_parametrization *. Applies nl_param_rule_for to the tensor. */
nl_status nl_param_model_hook(nl_model *m, const nl_param_info *info, void *ud);
/* cfg->hook = nl_param_model_hook, cfg->hook_ud = p (p is not copied: keep it alive while the model may be
 * (re)initialised). */
void nl_param_apply(nl_model_config *cfg, const nl_parametrization *p);

/* ---- command-line flags (for `nnlab train` and `nnlab mup`) ----
 * nl_param_parse_flag handles one option of the parametrisation:
 *   --param sp|ntk|mup   --base-width N (> 0)   --width-mult X (> 0)   --output-mult X (> 0)
 *   --zero-readout 0|1   --param-groups 0|1
 * flag is the option name with its dashes ("--param"); value its value. Returns NL_OK when the flag was one of
 * these and its value was valid (p updated), NL_EINVAL with a message for a bad value, and NL_ENOTFOUND (no
 * message, p untouched) when the flag is not a parametrisation flag, so a caller can try its own table next.
 * The LR rule follows the optimizer: call nl_param_set_optim(p, kind) once the training optimizer is known. */
nl_status nl_param_parse_flag(const char *flag, const char *value, nl_parametrization *p);
void nl_param_set_optim(nl_parametrization *p, nl_optim_kind kind);
/* One line describing p, e.g. "mup (base width 128, width_mult 4, adam rule, zero readout)". */
void nl_param_describe(const nl_parametrization *p, const nl_model_config *cfg, char *buf, size_t n);

/* ---- checkpoints ----
 * nl_model_save / nl_model_load (model.h) store tensor values only, and the hook is not stored, so a loaded ntk/mup
 * model would run with fwd_mult 1 (wrong logits). Save the parametrisation in the metadata and restore the
 * multipliers after loading:
 *     const char *k[NL_PARAM_META_N]; char v[NL_PARAM_META_N][32];
 *     int nk = nl_param_metadata(&p, &m.cfg, k, v);      // pass k and (const char *)v[i] to nl_model_save extras
 *     ... nl_model_load(&m, path); nl_param_from_checkpoint(path, &p, &found); if (found) nl_param_set_multipliers(&m, &p);
 * Keys: "nnlab.param" (sp|ntk|mup), "nnlab.param_width_mult", "nnlab.param_output_mult", "nnlab.param_optim". */
#define NL_PARAM_META_N 4
int nl_param_metadata(const nl_parametrization *p, const nl_model_config *cfg, const char *keys[NL_PARAM_META_N],
                      char vals[NL_PARAM_META_N][32]);
/* *found = 0 (p set to the SP defaults) when the file has no "nnlab.param" key. */
nl_status nl_param_from_checkpoint(const char *path, nl_parametrization *p, int *found);
/* Set every tensor's fwd_mult / lr_mult / wd_mult (and group if p->set_groups) from p, values untouched. */
nl_status nl_param_set_multipliers(nl_model *m, const nl_parametrization *p);

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
 * Condition (3) is part of Theorem 3.3 but missing from the summary in shared/methods/infinite-width.md: without
 * it SP with LR ~ n^-1/2 (c = 1/2) would pass as "stable, feature learning" although its logits grow like sqrt(n). */
#define NL_ABC_MAX_HIDDEN 16

typedef struct nl_abc {
    int L;                                 /* hidden layers, 1 .. NL_ABC_MAX_HIDDEN */
    double a[NL_ABC_MAX_HIDDEN + 1];       /* a[l-1] for layer l = 1 .. L+1 */
    double b[NL_ABC_MAX_HIDDEN + 1];       /* b[l-1] */
    double c;
} nl_abc;

typedef struct nl_abc_class {
    double r;
    int init_stable;        /* condition (1) */
    int features_stable;    /* condition (2): r >= 0 */
    int logits_stable;      /* condition (3) */
    int stable, nontrivial;
    int feature_learning;   /* stable and r = 0 */
    int kernel_regime;      /* stable, nontrivial and r > 0 */
    char summary[160];      /* e.g. "stable, nontrivial, feature learning (r = 0)" */
} nl_abc_class;

/* Presets: "sp" (a = 0, b_1 = 0, b_l = 1/2, c = 1: the stable SP), "sp-c0" (same with c = 0: a width-independent
 * LR), "ntp" (a_1 = 0, a_l = 1/2, b = 0, c = 0), "mf" (L = 1 only: a = (0, 1), b = 0, c = -1), "mup" (a_1 = -1/2,
 * a_l = 0, a_{L+1} = 1/2, b = 1/2, c = 0). */
nl_status nl_abc_preset(const char *name, int L, nl_abc *out);
/* Classify (exact comparisons up to 1e-9). */
nl_status nl_abc_classify(const nl_abc *p, nl_abc_class *out);
/* The abc exponents that nnlab's rule for p realises on an MLP with L hidden layers under SGD, measured from
 * nl_param_rule_for at width multipliers 1 and 4 and brought to the representative with c = 0 by the SGD symmetry
 * (a_l, b_l, c_l) -> (a_l + t, b_l - t, c_l - 2t) applied per layer. A zero readout init is treated as the
 * non-zero one (b is a variance exponent). NL_EINVAL for an Adam rule (TP4 classifies SGD only). */
nl_status nl_param_to_abc(const nl_parametrization *p, int L, nl_abc *out);

/* ---- coordinate check (mup/coord_check.py) ----
 * For each width and seed, build an MLP d -> n -> ... -> n -> k under p (width multiplier from p.base_width) and
 * train it for `steps` steps on one fixed batch with the optimizer p.optim (lr, momentum 0), recording before each
 * update (t = 1 is the initial model) mean|x| of every layer's output: for each linear layer its output
 * ("fc1", "fc2", ..., the last is the logits) and for each hidden layer its activation ("act1", ...). The l1
 * values are averaged over seeds 0 .. seeds-1. */
#define NL_COORD_MAX_WIDTHS 16
#define NL_COORD_MAX_REC (2 * NL_MODEL_MAX_LAYERS)

typedef struct nl_coord_config {
    int n_widths;
    int64_t widths[NL_COORD_MAX_WIDTHS];
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
} nl_coord_config;

typedef struct nl_coord_result {
    int n_widths, steps, n_rec;
    int64_t widths[NL_COORD_MAX_WIDTHS];
    char rec_name[NL_COORD_MAX_REC][16];   /* "fc1", "act1", ..., "fcL+1" in forward order */
    int rec_is_output[NL_COORD_MAX_REC];   /* 1 for the logits */
    double *l1;                            /* (n_widths, steps, n_rec) mean over seeds of mean|x| */
} nl_coord_result;

nl_status nl_coord_check(const nl_coord_config *cfg, nl_coord_result *res);
void nl_coord_result_free(nl_coord_result *res);
/* l1 of record `rec` at width index wi, step t (1-based). */
double nl_coord_l1(const nl_coord_result *res, int wi, int t, int rec);
/* The mup test's criterion between widths[wi_lo] and widths[wi_hi]: for every record and step, ratio =
 * l1(hi) / l1(lo) must lie in [1/tol, tol]; with zero_readout the logits at t = 1 must instead be exactly 0 at both
 * widths. Returns 1 (pass) or 0, writes the worst ratio (farthest from 1 in log scale) and where it occurred. */
int nl_coord_judge(const nl_coord_result *res, int wi_lo, int wi_hi, double tol, int zero_readout, double *worst,
                   char *where, size_t n);
/* Fixed coordinate-check batch: the first `batch` training rows of a dataset, standardised with the mean/std of
 * those rows (x: batch*d floats, y: batch labels, malloc'd). */
nl_status nl_coord_batch(const nl_dataset *ds, int64_t batch, float **x, int32_t **y);

/* ---- learning-rate transfer (mup examples/MLP; ledger entry `mup`) ----
 * For each parametrisation in {SP, muP (, broken muP)} and each width n, an MLP d -> n -> n -> k (ReLU) is
 * trained for `steps` steps (batch `batch`, shuffled subset of `n_train` training images, SGD with momentum or
 * Adam) at every LR of the grid lr_k = 2^(log2_lr_lo + k * log2_lr_step), k = 0 .. n_lr-1, from the same init
 * seed and data order. The recorded training loss is the mean minibatch loss of the last avg_last steps (NaN when
 * the run diverged). */
#define NL_TRANSFER_MAX_WIDTHS 8
#define NL_TRANSFER_MAX_LR 24

typedef struct nl_transfer_config {
    int n_widths;
    int64_t widths[NL_TRANSFER_MAX_WIDTHS];
    int n_lr;
    double log2_lr_lo, log2_lr_step;
    int64_t steps, batch, n_train, avg_last;
    nl_optim_kind optim;
    double momentum;            /* SGD momentum */
    double base_width;          /* muP base width (SP and muP coincide there) */
    int zero_readout;           /* for both SP and muP (as mup's MLP example) */
    int broken;                 /* also sweep muP with NL_PARAM_ABLATE_OUTPUT_MULT */
    uint64_t seed;
} nl_transfer_config;

typedef struct nl_transfer_result {
    int n_param;                /* 2 or 3: SP, muP, broken muP */
    int n_widths, n_lr;
    double loss[3][NL_TRANSFER_MAX_WIDTHS][NL_TRANSFER_MAX_LR];  /* NaN = diverged */
    int best[3][NL_TRANSFER_MAX_WIDTHS];                            /* argmin over the grid (-1: all diverged) */
    double seconds;
} nl_transfer_result;

/* progress: NULL or a stream for one line per run. train: the dataset (the ledger entry uses Fashion-MNIST's
 * training split); its first n_train rows are used, standardised on themselves. */
nl_status nl_transfer_run(const nl_transfer_config *cfg, const nl_dataset *train, FILE *progress,
                          nl_transfer_result *res);
/* The pass rule's ingredients for parametrisation pi (0 SP, 1 muP, 2 broken): shift = max - min over widths of the
 * best grid index (n_lr when some width diverged at every LR); widest_best: at the widest model's best LR the widest
 * model has a strictly lower loss than every narrower width. The ledger entry passes when muP has shift <= 1 and
 * widest_best, SP has shift >= 1, and the broken muP does not pass muP's rule. */
void nl_transfer_summary(const nl_transfer_result *r, int pi, int *shift, int *widest_best);

#ifdef __cplusplus
}
#endif
#endif
