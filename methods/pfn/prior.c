/* PFN priors: GP priors with fixed hyperparameters or the BoTorch Gamma hyperpriors, on top of gpreg.h
 * (include/pfn/pfn.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gp/gp.h"
#include "pfn/pfn.h"

typedef struct gp_prior {
    int hyper;                 /* 0: fixed h, 1: draw from hp per dataset */
    nl_gpr_hyper h;
    nl_gpr_hyperprior hp;
} gp_prior;

static nl_status gp_sample(const nl_pfn_prior *p, nl_rng *rng, int64_t B, int64_t T, double *x, double *y, void *hyper_out) {
    const gp_prior *g = p->ud;
    int64_t d = p->dim;
    nl_gpr_hyper *ho = hyper_out;
    for (int64_t b = 0; b < B; b++) {
        nl_gpr_hyper h = g->h;
        nl_status st;
        if (g->hyper && (st = nl_gpr_hyper_sample(&g->hp, rng, &h))) return st;
        if ((st = nl_gpr_prior_sample(&h, rng, T, x + b * T * d, y + b * T))) return st;
        if (ho) ho[b] = h;
    }
    return NL_OK;
}

static nl_status gp_new(nl_pfn_prior *p, int dim, gp_prior **out) {
    memset(p, 0, sizeof *p);
    if (dim < 1 || dim > NL_PFN_MAX_DIM || dim > NL_GPR_MAX_DIM)
        return nl_set_error(NL_EINVAL, "pfn prior: dim %d outside [1, %d]", dim, NL_PFN_MAX_DIM);
    gp_prior *g = calloc(1, sizeof *g);
    if (!g) return nl_set_error(NL_ENOMEM, "pfn prior: out of memory");
    p->dim = dim;
    p->sample = gp_sample;
    p->ud = g;
    p->owns_ud = 1;
    *out = g;
    return NL_OK;
}

nl_status nl_pfn_prior_gp(nl_pfn_prior *p, const char *kernel, int dim, double ls, double os, double noise) {
    nl_gpr_kernel k;
    nl_status st = nl_gpr_parse_kernel(kernel, &k);
    if (st) {
        memset(p, 0, sizeof *p);
        return st;
    }
    gp_prior *g;
    if ((st = gp_new(p, dim, &g))) return st;
    g->h = nl_gpr_hyper_default(k, dim, ls, os, noise);
    if ((st = nl_gpr_hyper_check(&g->h, "pfn prior"))) {
        nl_pfn_prior_free(p);
        return st;
    }
    snprintf(p->name, sizeof p->name, "%s", k == NL_GPR_RBF ? "gp-rbf" : "gp-matern");
    snprintf(p->desc, sizeof p->desc, "GP %s, x ~ U[0,1]^%d, lengthscale %g, outputscale %g, noise %g", nl_gpr_kernel_name(k), dim,
             ls, os, noise);
    return NL_OK;
}

nl_status nl_pfn_prior_gp_hyper(nl_pfn_prior *p, int dim) {
    gp_prior *g;
    nl_status st = gp_new(p, dim, &g);
    if (st) return st;
    g->hyper = 1;
    g->hp = nl_gpr_hyperprior_botorch(dim);
    if ((st = nl_gpr_hyperprior_check(&g->hp, "pfn prior"))) {
        nl_pfn_prior_free(p);
        return st;
    }
    snprintf(p->name, sizeof p->name, "gp-hyper");
    snprintf(p->desc, sizeof p->desc,
             "GP %s ARD, x ~ U[0,1]^%d, lengthscale ~ Gamma(%g, %g), outputscale ~ Gamma(%g, %g), noise ~ Gamma(%g, %g) >= %g",
             nl_gpr_kernel_name(g->hp.kernel), dim, g->hp.ls_a, g->hp.ls_b, g->hp.os_a, g->hp.os_b, g->hp.noise_a,
             g->hp.noise_b, g->hp.noise_min);
    return NL_OK;
}

nl_status nl_pfn_prior_by_name(nl_pfn_prior *p, const char *name, int dim, double ls, double os, double noise) {
    if (!strcmp(name, "gp-rbf")) return nl_pfn_prior_gp(p, "rbf", dim, ls, os, noise);
    if (!strcmp(name, "gp-matern")) return nl_pfn_prior_gp(p, "matern52", dim, ls, os, noise);
    if (!strcmp(name, "gp-hyper")) return nl_pfn_prior_gp_hyper(p, dim);
    memset(p, 0, sizeof *p);
    return nl_set_error(NL_EINVAL, "pfn prior: unknown prior '%s' (expected gp-rbf, gp-matern or gp-hyper)", name);
}

void nl_pfn_prior_free(nl_pfn_prior *p) {
    if (p->owns_ud) free(p->ud);
    memset(p, 0, sizeof *p);
}

const void *nl_pfn_prior_gp_hyper_of(const nl_pfn_prior *p) {
    if (p->sample != gp_sample) return NULL;
    const gp_prior *g = p->ud;
    return g->hyper ? NULL : &g->h;
}

/* The hyperprior of a gp-hyper prior (NULL otherwise); used by the experiment and the benchmark. */
const void *nl_pfn_prior_gp_hyperprior_of(const nl_pfn_prior *p) {
    if (p->sample != gp_sample) return NULL;
    const gp_prior *g = p->ud;
    return g->hyper ? &g->hp : NULL;
}
