/* nnlab/param.h — width parametrisations (standard, NTK, muP) for every model nnlab builds, the abc-
 * parametrisation classifier of Yang & Hu (2020, "Feature Learning in Infinite-Width Neural Networks", TP4),
 * the muP coordinate check and the learning-rate transfer sweep (ledger entry `mup`). methods/mup/README.md has the tables.
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
 * updates scale like NTP-SGD's (gradients of w: n^-1/2 input/readout/biases, n^-1 hidden), see methods/mup/README.md. */
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

#ifdef __cplusplus
}
#endif
#endif
