/* Width parametrisations (SP / NTK / muP) as a model hook, the flag parser and the checkpoint keys. Rules and
 * references: include/nnlab/param.h; the muP method and its experiments: methods/mup. */
#include "nnlab/param.h"
#include "nnlab/safetensors.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_kind_names[NL_PARAM_KIND_COUNT] = {"sp", "ntk", "mup"};

nl_parametrization nl_param_defaults(void) {
    nl_parametrization p;
    memset(&p, 0, sizeof p);
    p.kind = NL_PARAM_SP;
    p.optim = NL_OPT_SGD;
    p.output_mult = 1.0;
    p.set_groups = 1;
    return p;
}

const char *nl_param_kind_name(nl_param_kind k) { return (k >= 0 && k < NL_PARAM_KIND_COUNT) ? g_kind_names[k] : "?"; }

nl_status nl_param_kind_parse(const char *s, nl_param_kind *out) {
    if (s) {
        if (!strcmp(s, "sp") || !strcmp(s, "standard")) { *out = NL_PARAM_SP; return NL_OK; }
        if (!strcmp(s, "ntk") || !strcmp(s, "ntp")) { *out = NL_PARAM_NTK; return NL_OK; }
        if (!strcmp(s, "mup") || !strcmp(s, "\xce\xbcP") || !strcmp(s, "mu-p")) { *out = NL_PARAM_MUP; return NL_OK; }
    }
    return nl_set_error(NL_EINVAL, "unknown parametrisation '%s' (expected sp, ntk or mup)", s ? s : "(null)");
}

nl_status nl_param_check(const nl_parametrization *p) {
    if (!p) return nl_set_error(NL_EINVAL, "parametrisation: NULL");
    if (p->kind < 0 || p->kind >= NL_PARAM_KIND_COUNT) return nl_set_error(NL_EINVAL, "parametrisation: unknown kind %d", (int)p->kind);
    if (!(p->base_width >= 0) || !isfinite(p->base_width)) return nl_set_error(NL_EINVAL, "parametrisation: base_width %g must be >= 0", p->base_width);
    if (!(p->width_mult >= 0) || !isfinite(p->width_mult)) return nl_set_error(NL_EINVAL, "parametrisation: width_mult %g must be >= 0", p->width_mult);
    if (!(p->output_mult > 0) || !isfinite(p->output_mult)) return nl_set_error(NL_EINVAL, "parametrisation: output_mult %g must be > 0", p->output_mult);
    if (p->optim != NL_OPT_SGD && p->optim != NL_OPT_ADAM && p->optim != NL_OPT_ADAMW)
        return nl_set_error(NL_EINVAL, "parametrisation: unknown optimizer kind %d", (int)p->optim);
    return NL_OK;
}

/* ---------------- the per-tensor rule ---------------- */
/* Which dimensions of a tensor scale with width: a weight [out, in] of an input layer has a width output, a
 * hidden one both, a readout a width input. */
static void role_dims(nl_param_role r, int *in_inf, int *out_inf) {
    *in_inf = (r == NL_ROLE_WEIGHT_HIDDEN || r == NL_ROLE_WEIGHT_OUT);
    *out_inf = (r == NL_ROLE_WEIGHT_IN || r == NL_ROLE_WEIGHT_HIDDEN);
}

nl_status nl_param_rule_for(const nl_parametrization *p, nl_param_role role, nl_param_role layer_role, double wm,
                            nl_param_rule *out) {
    nl_status s = nl_param_check(p);
    if (s) return s;
    if (!(wm > 0) || !isfinite(wm)) return nl_set_error(NL_EINVAL, "parametrisation: width multiplier %g must be > 0", wm);
    nl_param_rule r = {1.0, 1.0, 1.0, 1.0, NL_PARAM_GROUP_OTHER};
    const int adam = p->optim != NL_OPT_SGD;
    const double sq = sqrt(wm);
    int in_inf = 0, out_inf = 0, readout = 0;
    switch (role) {
    case NL_ROLE_WEIGHT_IN:
    case NL_ROLE_WEIGHT_HIDDEN:
    case NL_ROLE_WEIGHT_OUT:
        role_dims(role, &in_inf, &out_inf);
        readout = role == NL_ROLE_WEIGHT_OUT;
        r.group = role == NL_ROLE_WEIGHT_IN ? NL_PARAM_GROUP_INPUT : role == NL_ROLE_WEIGHT_HIDDEN ? NL_PARAM_GROUP_HIDDEN : NL_PARAM_GROUP_OUTPUT;
        break;
    case NL_ROLE_BIAS: {
        int lin, lout;
        role_dims(layer_role, &lin, &lout);
        in_inf = lin;        /* the default bias init is U(+-1/sqrt(fan_in)) of the layer */
        out_inf = lout;      /* the bias itself is a vector of the layer's outputs */
        readout = layer_role == NL_ROLE_WEIGHT_OUT;
        r.group = NL_PARAM_GROUP_BIAS;
        break;
    }
    case NL_ROLE_NORM: out_inf = 1; break;
    case NL_ROLE_BUFFER:
    default: *out = r; return NL_OK;
    }
    const int is_weight = role == NL_ROLE_WEIGHT_IN || role == NL_ROLE_WEIGHT_HIDDEN || role == NL_ROLE_WEIGHT_OUT;
    const int ninf = in_inf * is_weight + out_inf; /* infinite dimensions of the tensor itself */
    switch (p->kind) {
    case NL_PARAM_SP: break;
    case NL_PARAM_MUP:
        if (is_weight) {
            if (role == NL_ROLE_WEIGHT_OUT) {
                r.init_scale = sq;   /* constant-variance readout init (MuReadout._rescale_parameters) */
                r.fwd_mult = (p->ablate & NL_PARAM_ABLATE_OUTPUT_MULT) ? p->output_mult : p->output_mult / wm;
            }
        } else if (role == NL_ROLE_BIAS && in_inf) {
            r.init_scale = sq;       /* width-independent bias init (rescale_linear_bias) */
        }
        if (!adam) {
            /* MuSGD: vector-like (one width dim) lr * wm; matrix-like lr / (fan_in mult / fan_out mult) = 1 here */
            if (ninf == 1) r.lr_mult = wm;
        } else {
            /* MuAdam: matrix-like lr / width_mult (of fan_in) */
            if (ninf == 2) r.lr_mult = 1.0 / wm;
        }
        break;
    case NL_PARAM_NTK:
        if (is_weight && in_inf) {
            r.init_scale = sq;       /* raw w has a width-independent init ... */
            r.fwd_mult = 1.0 / sq;   /* ... and W = w / sqrt(fan_in mult) */
        } else if (role == NL_ROLE_BIAS && in_inf) {
            r.init_scale = sq;
        }
        if (adam) {
            if (ninf == 2) r.lr_mult = 1.0 / wm;
            else if (ninf == 1) r.lr_mult = 1.0 / sq;
        }
        break;
    default: break;
    }
    if (readout && p->zero_readout) r.init_scale = 0.0;
    if (p->ablate & NL_PARAM_ABLATE_LR) r.lr_mult = 1.0;
    r.wd_mult = 1.0 / r.lr_mult;
    *out = r;
    return NL_OK;
}

double nl_param_model_width(const nl_model_config *cfg) {
    double w = 0;
    if (cfg->kind == NL_MODEL_MLP) {
        for (int i = 1; i + 1 < cfg->n_sizes; i++)
            if ((double)cfg->sizes[i] > w) w = (double)cfg->sizes[i];
    } else {
        for (int b = 0; b < cfg->n_blocks && b < NL_MODEL_MAX_BLOCKS; b++)
            if (cfg->channels[b] > w) w = cfg->channels[b];
        if ((double)cfg->hidden > w) w = (double)cfg->hidden;
    }
    return w;
}

double nl_param_width_mult(const nl_parametrization *p, const nl_model_config *cfg) {
    if (p->width_mult > 0) return p->width_mult;
    double w = nl_param_model_width(cfg);
    if (p->base_width > 0 && w > 0) return w / p->base_width;
    return 1.0;
}

static nl_param_role layer_role_of(const nl_model *m, const nl_param_info *info);

static void scale_tensor(nl_tensor *t, double s) {
    int64_t n = nl_tensor_numel(t);
    if (t->dtype == NL_F32) {
        float *d = t->data;
        for (int64_t i = 0; i < n; i++) d[i] = (float)(d[i] * s);
    } else {
        double *d = t->data;
        for (int64_t i = 0; i < n; i++) d[i] *= s;
    }
}

nl_status nl_param_model_hook(nl_model *m, const nl_param_info *info, void *ud) {
    const nl_parametrization *p = ud;
    if (!p) return nl_set_error(NL_EINVAL, "nl_param_model_hook: hook_ud must point at an nl_parametrization");
    if (info->role == NL_ROLE_BUFFER) return NL_OK;
    nl_param_rule r;
    nl_status s = nl_param_rule_for(p, info->role, layer_role_of(m, info), nl_param_width_mult(p, &m->cfg), &r);
    if (s) return s;
    nl_param *t = info->p;
    if (r.init_scale != 1.0) scale_tensor(&t->var.val, r.init_scale);
    t->fwd_mult = (float)r.fwd_mult;
    t->lr_mult = (float)r.lr_mult;
    t->wd_mult = (float)r.wd_mult;
    if (p->set_groups) t->group = r.group;
    return NL_OK;
}

void nl_param_apply(nl_model_config *cfg, const nl_parametrization *p) {
    cfg->hook = nl_param_model_hook;
    cfg->hook_ud = (void *)p;
}

/* Layer weight role of a tensor (biases: the weight of the same layer). */
static nl_param_role layer_role_of(const nl_model *m, const nl_param_info *info) {
    if (info->role != NL_ROLE_BIAS) return info->role;
    nl_param_role lr = NL_ROLE_WEIGHT_HIDDEN;
    for (int i = 0; i < m->n_info; i++)
        if (m->info[i].layer == info->layer && m->info[i].role <= NL_ROLE_WEIGHT_OUT) lr = m->info[i].role;
    return lr;
}

nl_status nl_param_set_multipliers(nl_model *m, const nl_parametrization *p) {
    nl_status s = nl_param_check(p);
    if (s) return s;
    const double wm = nl_param_width_mult(p, &m->cfg);
    for (int i = 0; i < m->n_info; i++) {
        const nl_param_info *in = &m->info[i];
        if (in->role == NL_ROLE_BUFFER) continue;
        nl_param_rule r;
        if ((s = nl_param_rule_for(p, in->role, layer_role_of(m, in), wm, &r))) return s;
        in->p->fwd_mult = (float)r.fwd_mult;
        in->p->lr_mult = (float)r.lr_mult;
        in->p->wd_mult = (float)r.wd_mult;
        if (p->set_groups) in->p->group = r.group;
    }
    return NL_OK;
}

int nl_param_metadata(const nl_parametrization *p, const nl_model_config *cfg, const char *keys[NL_PARAM_META_N],
                      char vals[NL_PARAM_META_N][32]) {
    keys[0] = "nnlab.param";
    keys[1] = "nnlab.param_width_mult";
    keys[2] = "nnlab.param_output_mult";
    keys[3] = "nnlab.param_optim";
    snprintf(vals[0], 32, "%s", nl_param_kind_name(p->kind));
    snprintf(vals[1], 32, "%.17g", cfg ? nl_param_width_mult(p, cfg) : (p->width_mult > 0 ? p->width_mult : 1.0));
    snprintf(vals[2], 32, "%.17g", p->output_mult);
    snprintf(vals[3], 32, "%s", p->optim == NL_OPT_SGD ? "sgd" : p->optim == NL_OPT_ADAM ? "adam" : "adamw");
    return NL_PARAM_META_N;
}

nl_status nl_param_from_checkpoint(const char *path, nl_parametrization *p, int *found) {
    *found = 0;
    *p = nl_param_defaults();
    nl_st_file f;
    nl_status s = nl_safetensors_open(path, &f);
    if (s) return s;
    const char *kind = nl_safetensors_get_metadata(&f, "nnlab.param");
    if (kind) {
        nl_parametrization q = nl_param_defaults();
        const char *wm = nl_safetensors_get_metadata(&f, "nnlab.param_width_mult");
        const char *om = nl_safetensors_get_metadata(&f, "nnlab.param_output_mult");
        const char *op = nl_safetensors_get_metadata(&f, "nnlab.param_optim");
        if ((s = nl_param_kind_parse(kind, &q.kind))) goto out;
        if (wm && (s = nl_param_parse_flag("--width-mult", wm, &q))) goto out;
        if (om && (s = nl_param_parse_flag("--output-mult", om, &q))) goto out;
        if (op && (s = nl_optim_parse_kind(op, &q.optim))) goto out;
        *p = q;
        *found = 1;
    }
out:
    if (s) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", nl_last_error());
        nl_set_error(s, "%s: bad parametrisation metadata: %s", path, msg);
    }
    nl_safetensors_close(&f);
    return s;
}

/* ---------------- flags ---------------- */
static nl_status parse_pos(const char *flag, const char *v, double *out) {
    char *end;
    if (!v || !*v) return nl_set_error(NL_EINVAL, "%s: empty value (expected a positive number)", flag);
    double x = strtod(v, &end);
    if (*end || !isfinite(x) || !(x > 0)) return nl_set_error(NL_EINVAL, "%s: '%s' is not a positive number", flag, v);
    *out = x;
    return NL_OK;
}

static nl_status parse_bool(const char *flag, const char *v, int *out) {
    if (v && (!strcmp(v, "1") || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))) { *out = 1; return NL_OK; }
    if (v && (!strcmp(v, "0") || !strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))) { *out = 0; return NL_OK; }
    return nl_set_error(NL_EINVAL, "%s: '%s' is not 0 or 1", flag, v ? v : "(null)");
}

nl_status nl_param_parse_flag(const char *flag, const char *value, nl_parametrization *p) {
    if (!flag || !p) return NL_ENOTFOUND;
    nl_parametrization q = *p;
    nl_status s;
    if (!strcmp(flag, "--param")) {
        if ((s = nl_param_kind_parse(value, &q.kind))) return s;
    } else if (!strcmp(flag, "--base-width")) {
        double v;
        if ((s = parse_pos(flag, value, &v))) return s;
        if (v != floor(v) || v > 1e9) return nl_set_error(NL_EINVAL, "--base-width: '%s' is not a positive integer", value);
        q.base_width = v;
    } else if (!strcmp(flag, "--width-mult")) {
        if ((s = parse_pos(flag, value, &q.width_mult))) return s;
    } else if (!strcmp(flag, "--output-mult")) {
        if ((s = parse_pos(flag, value, &q.output_mult))) return s;
    } else if (!strcmp(flag, "--zero-readout")) {
        if ((s = parse_bool(flag, value, &q.zero_readout))) return s;
    } else if (!strcmp(flag, "--param-groups")) {
        if ((s = parse_bool(flag, value, &q.set_groups))) return s;
    } else {
        return NL_ENOTFOUND;
    }
    *p = q;
    return NL_OK;
}

void nl_param_set_optim(nl_parametrization *p, nl_optim_kind kind) { p->optim = kind; }

void nl_param_describe(const nl_parametrization *p, const nl_model_config *cfg, char *buf, size_t n) {
    if (!n) return;
    const char *rule = p->optim == NL_OPT_SGD ? "sgd" : p->optim == NL_OPT_ADAM ? "adam" : "adamw";
    char wm[48];
    if (cfg || p->width_mult > 0) snprintf(wm, sizeof wm, "width_mult %g", cfg ? nl_param_width_mult(p, cfg) : p->width_mult);
    else snprintf(wm, sizeof wm, "width_mult = width / base");
    char bw[48] = "own width";
    if (p->width_mult > 0) snprintf(bw, sizeof bw, "width_mult given");
    else if (p->base_width > 0) snprintf(bw, sizeof bw, "base width %g", p->base_width);
    snprintf(buf, n, "%s (%s, %s, %s rule%s%s%s%s)", nl_param_kind_name(p->kind), bw, wm, rule,
             p->zero_readout ? ", zero readout" : "", p->output_mult != 1.0 ? ", output_mult set" : "",
             (p->ablate & NL_PARAM_ABLATE_OUTPUT_MULT) ? ", ABLATED: no readout 1/width_mult" : "",
             (p->ablate & NL_PARAM_ABLATE_LR) ? ", ABLATED: no LR scaling" : "");
}
