/* fprior/fprior_internal.h — the ledger entry's configuration and the per-seed / per-split units (toy.c, boston.c). */
#ifndef NNLAB_FPRIOR_INTERNAL_H
#define NNLAB_FPRIOR_INTERNAL_H
#include "fprior/fprior.h"
#include <stdio.h>

#define FP_TOY_N 64
#define FP_TOY_GRID 60
#define FP_MAX_SEEDS 10

typedef struct fp_cfg {
    int seeds, splits;                 /* toy seeds, Boston splits (>= 3 each) */
    int toy_width, toy_depth, width;   /* toy net 1 -> toy_width x toy_depth -> 1; Boston d -> width -> 1 */
    int marg_fn;                       /* functions per marginal-match measurement */
    nl_fp_fit_cfg fit;
    nl_fp_sghmc_cfg toy_sghmc, sghmc;
} fp_cfg;

/* priors in order: 0 fitted, 1 N(0,1), 2 unfitted (softplus(1) = 1.313 every layer) */
typedef struct fp_toy_out {
    double sd_err[3], w1[3], sd_bnn[3], sd_gp; /* marginal match on the grid */
    double band_gap[2], band_out[2], rhat[2];  /* posterior f sd inside / outside the gap (fitted, N(0,1)) */
    double fit_seconds, seconds;
} fp_toy_out;

typedef struct fp_boston_out {
    double nll[3], rmse[3], rhat[3];           /* test NLL and RMSE (original units), mean R-hat over test points */
    double sd_err, w1;                         /* fitted prior vs the hierarchical GP on a fresh measurement set */
    double rw, rb;                             /* fitted first-layer stds (softplus) */
    double seconds;
    int64_t ntr, nte, d;
} fp_boston_out;

nl_status fp_toy_run(const fp_cfg *c, uint64_t seed, fp_toy_out *o, nl_exp_result *curves);
nl_status fp_boston_run(const fp_cfg *c, int split, fp_boston_out *o);

#endif
