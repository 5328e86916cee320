/* The giraffe method's formulas: the Wilson lower bound, reach, the truncation cutoff for a target zeroed fraction,
 * the xPos annealing of the reference, and the RoPE configuration of each model. methods/giraffe/README.md. */
#include "giraffe/giraffe.h"
#include <math.h>
#include <string.h>

double nl_giraffe_wilson_lower(int k, int n, double z) {
    if (n < 1 || k < 0 || k > n) return NAN;
    const double p = (double)k / n, z2 = z * z;
    const double c = p + z2 / (2.0 * n), r = z * sqrt(p * (1 - p) / n + z2 / (4.0 * n * n));
    const double lo = (c - r) / (1 + z2 / n);
    return lo < 0 ? 0 : lo;
}

int nl_giraffe_reach(const int *k, int n, const int *len_mult, int n_len, double floor) {
    int reach = 0;
    for (int i = 0; i < n_len; i++)
        if (nl_giraffe_wilson_lower(k[i], n, 1.645) > floor && len_mult[i] > reach) reach = len_mult[i];
    return reach;
}

double nl_giraffe_reach_level(int reach) { return reach <= 0 ? 0.0 : 1.0 + log2((double)reach); }

double nl_giraffe_zeroed_fraction(int dim, double base, double T) {
    nl_rope_config c = nl_rope_config_default();
    c.variant = NL_ROPE_TRUNCATED;
    c.base = base;
    c.truncate = T;
    double th[512];   /* (dim/2) */
    if (dim < 2 || dim % 2 || dim / 2 > 512 || nl_rope_freqs(&c, dim, th)) return NAN;
    int z = 0;
    for (int j = 0; j < dim / 2; j++) z += th[j] == 0;
    return (double)z / (dim / 2);
}

double nl_giraffe_truncate_for(int dim, double base, double frac) {
    const int h = dim / 2;
    int c = (int)lround(frac * h);
    if (c < 1) c = 1;
    if (c > h - 1) c = h - 1;
    /* pairs j >= h - c zeroed: theta_{h-c} < 2 pi / (8 T) <= theta_{h-c-1} */
    const double t_lo = pow(base, -2.0 * (h - c) / dim), t_hi = pow(base, -2.0 * (h - c - 1) / dim);
    return 2 * M_PI / (8 * sqrt(t_lo * t_hi));
}

double nl_giraffe_xpos_gamma(int64_t step, int64_t steps) {
    if (steps < 1) return 128;
    const double g = 8192 - 8.0 * 1008.0 * (double)step / (double)steps;
    return g > 128 ? g : 128;
}

static const char *const g_model_names[NL_GIRAFFE_N_MODELS] = {"base", "linear4", "linear16", "truncated", "power",
                                                              "xpos", "randomised"};

const char *nl_giraffe_model_name(nl_giraffe_model m) {
    return m >= 0 && m < NL_GIRAFFE_N_MODELS ? g_model_names[m] : "?";
}

nl_rope_config nl_giraffe_rope(const nl_giraffe_config *g, nl_giraffe_model m, double truncate_T) {
    nl_rope_config r = nl_rope_config_default();
    r.power = g->power;
    r.truncate = truncate_T > 0 ? truncate_T : 2048;
    r.xpos_gamma = 8192;   /* annealed during fine-tuning (nl_giraffe_xpos_gamma) */
    switch (m) {
    case NL_GIRAFFE_M_LIN4: r.variant = NL_ROPE_LINEAR; r.scale_train = r.scale_eval = 4; break;
    case NL_GIRAFFE_M_LIN16: r.variant = NL_ROPE_LINEAR; r.scale_train = r.scale_eval = 16; break;
    case NL_GIRAFFE_M_TRUNC: r.variant = NL_ROPE_TRUNCATED; break;
    case NL_GIRAFFE_M_POWER: r.variant = NL_ROPE_POWER; break;
    case NL_GIRAFFE_M_XPOS: r.variant = NL_ROPE_XPOS; r.xpos_gamma = 128; break;
    case NL_GIRAFFE_M_RAND: r.variant = NL_ROPE_LINEAR; r.scale_train = r.scale_eval = 4; r.randomized = 1; break;
    default: break;   /* base: plain */
    }
    return r;
}

/* The evaluation table. Perplexity is measured on the unscrambled configurations. */
static const nl_giraffe_eval_def g_evals[] = {
    {"base", NL_GIRAFFE_M_BASE, 1, 0, 1},
    {"base@2", NL_GIRAFFE_M_BASE, 2, 0, 0},
    {"zs-linear@4", NL_GIRAFFE_M_BASE, 4, 0, 1},
    {"linear4@3", NL_GIRAFFE_M_LIN4, 3, 0, 1},
    {"linear4@4", NL_GIRAFFE_M_LIN4, 4, 0, 1},
    {"linear4@5", NL_GIRAFFE_M_LIN4, 5, 0, 1},
    {"linear4@6", NL_GIRAFFE_M_LIN4, 6, 0, 1},
    {"linear4@8", NL_GIRAFFE_M_LIN4, 8, 0, 1},
    {"linear16@12", NL_GIRAFFE_M_LIN16, 12, 0, 1},
    {"linear16@16", NL_GIRAFFE_M_LIN16, 16, 0, 1},
    {"linear16@24", NL_GIRAFFE_M_LIN16, 24, 0, 1},
    {"linear16@32", NL_GIRAFFE_M_LIN16, 32, 0, 1},
    {"truncated", NL_GIRAFFE_M_TRUNC, 0, 0, 1},
    {"power", NL_GIRAFFE_M_POWER, 0, 0, 1},
    {"xpos", NL_GIRAFFE_M_XPOS, 0, 0, 1},
    {"randomised", NL_GIRAFFE_M_RAND, 4, 0, 1},
    {"linear16@16-scrambled", NL_GIRAFFE_M_LIN16, 16, 1, 0},
    {"linear4@4-scrambled", NL_GIRAFFE_M_LIN4, 4, 1, 0},
    {"linear4@8-scrambled", NL_GIRAFFE_M_LIN4, 8, 1, 0},
    {"truncated-scrambled", NL_GIRAFFE_M_TRUNC, 0, 1, 0},
};
#define N_EVALS ((int)(sizeof g_evals / sizeof g_evals[0]))
_Static_assert(N_EVALS <= NL_GIRAFFE_MAX_EVALS, "evaluation table too long");

const nl_giraffe_eval_def *nl_giraffe_evals(int *n) {
    *n = N_EVALS;
    return g_evals;
}

int nl_giraffe_eval_find(const char *name) {
    for (int i = 0; i < N_EVALS; i++)
        if (!strcmp(g_evals[i].name, name)) return i;
    return -1;
}

double nl_giraffe_nominal_reach(const nl_giraffe_config *g, const nl_giraffe_eval_def *e) {
    if (e->model == NL_GIRAFFE_M_BASE) return e->scale > 1 ? e->scale : 1;
    if (e->model == NL_GIRAFFE_M_LIN4 || e->model == NL_GIRAFFE_M_LIN16 || e->model == NL_GIRAFFE_M_RAND) return e->scale;
    return g->ft_mult;
}
