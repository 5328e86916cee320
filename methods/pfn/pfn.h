/* pfn/pfn.h — Prior-data fitted networks (Müller, Hollmann, Pineda Arango, Grabocka & Hutter, "Transformers Can
 * Do Bayesian Inference", ICLR 2022): a transformer trained on datasets drawn from a prior learns to output the
 * posterior predictive distribution p(y | x, D) in one forward pass (methods/pfn/README.md).
 *
 * Priors. A prior is a struct with a callback that fills a batch of B datasets of T points each:
 * x [B, T, dim] and y [B, T] (doubles, row-major). GP priors (gpreg.h does the GP work): RBF or Matérn-5/2 with
 * ARD lengthscales, fixed hyperparameters or Gamma hyperpriors (one draw per dataset), x ~ U[0,1]^dim,
 * y ~ N(0, K + noise I). Any other prior (BNN functions, ...) plugs in by filling nl_pfn_prior.sample.
 *
 * Model (x [B, T, d]; the first n tokens of each dataset are training points with targets, the other T - n are
 * test points; E = emsize, H heads):
 *   h_i = W_x x_i + b_x + W_y y_i + b_y   (i < n)      h_j = W_x x_j + b_x   (j >= n)      no positional encoding
 *   per layer (post-LN, as the paper's PyTorch TransformerEncoderLayer; pre_norm = 1 moves the norms in front):
 *     h = LN1(h + MHA(h, mask)),  h = LN2(h + W2 gelu(W1 h + b1) + b2)
 *   mask[q, k] = 0 if k < n or k == q, else -inf  (training tokens see the training tokens; each test token sees
 *   the training tokens and itself), so a test output depends only on the training set and its own x.
 *   logits_j = D2 gelu(D1 h_j + c1) + c2  (K buckets)  for the test tokens j >= n
 * Init: linear weights and biases U(-1/sqrt(in), 1/sqrt(in)) (PyTorch), q/k/v Xavier-uniform with zero bias,
 * the attention output projection and the FFN's second linear zero (official code), LN weight 1 bias 0; drawn
 * from nl_rng(seed, NL_PFN_STREAM_INIT) in store order.
 * Parameter names: "enc_x.weight" [E, d], "enc_x.bias" [E], "enc_y.weight" [E, 1], "enc_y.bias" [E],
 * "layers.<l>.attn.{q,k,v,out}.{weight,bias}" ([E, E], [E]), "layers.<l>.norm{1,2}.{weight,bias}" [E],
 * "layers.<l>.ff.fc1.weight" [F, E], ".fc1.bias" [F], ".fc2.weight" [E, F], ".fc2.bias" [E],
 * "norm_f.{weight,bias}" [E] (pre-LN only), "dec.fc1.weight" [Dd, E], "dec.fc1.bias" [Dd], "dec.fc2.weight"
 * [K, Dd], "dec.fc2.bias" [K].
 *
 * Riemann ("bar") distribution: borders b_0 < ... < b_K, bucket k = [b_k, b_{k+1}) of width w_k, probabilities
 * p = softmax(logits). Plain: density p_k / w_k inside [b_0, b_K], 0 outside. Full support (what the model
 * uses): the two edge buckets are replaced by half-normal tails, p_0 HN_{s_0}(b_1 - y) for y < b_1 and
 * p_{K-1} HN_{s_{K-1}}(y - b_{K-1}) for y >= b_{K-1}, s = w / Phi^-1(0.75) (half of a tail's mass lies within
 * its nominal bucket), so every real y has a positive density. NLL(y) = -log p_k + log w_k (middle buckets)
 * or -log p_edge - log HN(...) (tails): the cross-entropy of the bucket index plus a term that does not depend
 * on the logits. Borders for a prior: b_k = the k/K quantiles of a large sample of prior y values.
 *
 * Training: per step a split n ~ P(n) ∝ 1/(T - n), n in [0, T - 1] (the official weighted sampler: every n then
 * contributes the same expected number of loss terms, T - n test tokens); B datasets of T points from the prior;
 * loss = mean bar NLL of the T - n test tokens; Adam, linear warmup + cosine decay, global-norm clipping.
 *
 * Checkpoints: safetensors, __metadata__ "nnlab.model" = "pfn" and "pfn.*" keys for the configuration and the
 * prior it was trained on; tensor "bar.borders" (F64, [K + 1]) besides the parameters (F32). */
#ifndef NNLAB_PFN_H
#define NNLAB_PFN_H
#include "nnlab/ledger.h"
#include "nnlab/autograd.h"
#include "nnlab/optim.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_PFN_MAX_LAYERS 16
#define NL_PFN_MAX_DIM 16
#define NL_PFN_STREAM_INIT ((uint64_t)0xF1A17ULL << 32)   /* parameter init */
#define NL_PFN_STREAM_DATA ((uint64_t)0xF1DA7ULL << 32)   /* training datasets and splits */
#define NL_PFN_STREAM_BORDERS ((uint64_t)0xF1B0DULL << 32) /* samples for the bucket borders */
#define NL_PFN_STREAM_EVAL ((uint64_t)0xF1E7A1ULL << 32)  /* held-out datasets of nl_pfn_eval (+ n) */

/* ---- priors ---- */
typedef struct nl_pfn_prior nl_pfn_prior;
/* Fill x [B, T, dim] and y [B, T] with B independent datasets of T points. hyper_out: NULL, or (B) per-dataset
 * hyperparameters written by GP priors (nl_gpr_hyper of gpreg.h; other priors leave it alone). */
typedef nl_status (*nl_pfn_prior_fn)(const nl_pfn_prior *p, nl_rng *rng, int64_t B, int64_t T, double *x, double *y,
                                     void *hyper_out);
struct nl_pfn_prior {
    char name[32];          /* "gp-rbf", "gp-matern", "gp-hyper", or a custom name */
    char desc[192];         /* one line with the hyperparameters (stored in checkpoints) */
    int dim;                /* input dimension */
    nl_pfn_prior_fn sample;
    void *ud;               /* prior-specific data (GP priors: owned, freed by nl_pfn_prior_free) */
    int owns_ud;
};

/* GP prior with fixed hyperparameters: kernel "rbf" or "matern" (Matérn-5/2), isotropic lengthscale ls (the
 * same for every dimension), outputscale os, noise variance noise. */
nl_status nl_pfn_prior_gp(nl_pfn_prior *p, const char *kernel, int dim, double ls, double os, double noise);
/* GP prior with the BoTorch SingleTaskGP Gamma hyperpriors of gpreg.h (Matérn-5/2, ARD): each dataset draws its
 * own lengthscales, outputscale and noise. */
nl_status nl_pfn_prior_gp_hyper(nl_pfn_prior *p, int dim);
/* By name: "gp-rbf" | "gp-matern" (ls/os/noise used) | "gp-hyper" (ls/os/noise ignored). */
nl_status nl_pfn_prior_by_name(nl_pfn_prior *p, const char *name, int dim, double ls, double os, double noise);
void nl_pfn_prior_free(nl_pfn_prior *p);
/* The hyperparameters of a fixed-hyperparameter GP prior (an nl_gpr_hyper; NULL for other priors). */
const void *nl_pfn_prior_gp_hyper_of(const nl_pfn_prior *p);
/* The hyperprior of a gp-hyper prior (an nl_gpr_hyperprior; NULL for other priors). */
const void *nl_pfn_prior_gp_hyperprior_of(const nl_pfn_prior *p);

/* ---- bar distribution ---- */
typedef struct nl_pfn_bar {
    int K;                  /* buckets */
    int full_support;       /* 1: half-normal tails on the edge buckets */
    double *borders;        /* (K + 1) strictly increasing, owned */
} nl_pfn_bar;

nl_status nl_pfn_bar_init(nl_pfn_bar *b, int K, const double *borders, int full_support);
/* Borders at the k/K quantiles of ys (n values, n >= K + 1, sorted internally in a copy); ties are refused. */
nl_status nl_pfn_bar_from_samples(nl_pfn_bar *b, int K, const double *ys, int64_t n, int full_support);
void nl_pfn_bar_free(nl_pfn_bar *b);
/* Bucket of y: the k with b_k <= y < b_{k+1} (b_K itself belongs to K-1); values outside [b_0, b_K] go to the
 * nearest edge bucket. */
int nl_pfn_bar_bucket(const nl_pfn_bar *b, double y);
/* Distribution functions for bucket probabilities p (K, summing to 1). logpdf is -inf where the density is 0. */
double nl_pfn_bar_logpdf(const nl_pfn_bar *b, const double *p, double y);
/* -log density of y from the log bucket probabilities logp [K] (f32, e.g. nl_log_softmax of the decoder's logits):
 * -nl_pfn_bar_logpdf of their exp up to rounding, without a probability vector (the evaluation's hot path). */
double nl_pfn_bar_nll_logp(const nl_pfn_bar *b, const float *logp, double y);
double nl_pfn_bar_cdf(const nl_pfn_bar *b, const double *p, double y);
double nl_pfn_bar_quantile(const nl_pfn_bar *b, const double *p, double q);   /* q in (0, 1) */
double nl_pfn_bar_mean(const nl_pfn_bar *b, const double *p);
/* Mean NLL over N rows: logits [N, K] (f32 or f64), targets y (N). Differentiable w.r.t. the logits (the cross-
 * entropy of the bucket ids plus a constant). Non-finite y is an error; with a plain bar, a y outside
 * [b_0, b_K] gives +inf. */
nl_var *nl_pfn_bar_nll(nl_ctx *c, const nl_pfn_bar *b, nl_var *logits, const double *y);
/* Standard normal quantile (|error| < 1e-12 over (1e-300, 1 - 1e-16)). */
double nl_pfn_norm_ppf(double p);

/* ---- split sampler ---- */
/* Weights w[n] = 1 / (T - n) for n in [0, T) (unnormalised); P(n) ∝ w[n]. */
void nl_pfn_split_weights(int64_t T, double *w);
int64_t nl_pfn_sample_split(nl_rng *r, int64_t T);

/* ---- model ---- */
typedef struct nl_pfn_config {
    int dim;                /* input dimension d (1 .. NL_PFN_MAX_DIM) */
    int emsize;             /* E */
    int n_layers;           /* 1 .. NL_PFN_MAX_LAYERS */
    int n_heads;            /* E % n_heads == 0 */
    int d_ff;               /* encoder FFN width (0 -> 2 E) */
    int d_dec;              /* decoder hidden width (0 -> 2 E) */
    int n_buckets;          /* K >= 2 */
    int pre_norm;           /* 0: post-LN (paper), 1: pre-LN with a final LayerNorm */
    int seq;                /* training sequence length T (recorded; predict accepts any length) */
} nl_pfn_config;

/* dim 1, emsize 64, 4 layers, 4 heads, d_ff 128, d_dec 128, 1000 buckets, post-LN, seq 50. */
nl_pfn_config nl_pfn_config_default(void);
nl_status nl_pfn_config_check(const nl_pfn_config *c);

typedef struct nl_pfn_layer {
    nl_var *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
    nl_var *n1_w, *n1_b, *n2_w, *n2_b;
    nl_var *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} nl_pfn_layer;

typedef struct nl_pfn {
    nl_pfn_config cfg;
    nl_pfn_bar bar;
    nl_params ps;
    char prior_name[32];
    char prior_desc[192];
    double prior_ls, prior_os, prior_noise; /* hyperparameters of a fixed GP prior (0 otherwise) */
    int64_t steps_trained;
    nl_var *ex_w, *ex_b, *ey_w, *ey_b;
    nl_pfn_layer layer[NL_PFN_MAX_LAYERS];
    nl_var *nf_w, *nf_b;    /* pre-LN only */
    nl_var *d1_w, *d1_b, *d2_w, *d2_b;
} nl_pfn;

/* Build and initialise (borders: K + 1 increasing values; the bar is full-support). On error *m is zeroed. */
nl_status nl_pfn_init(nl_pfn *m, const nl_pfn_config *cfg, const double *borders, uint64_t seed);
void nl_pfn_free(nl_pfn *m);
int64_t nl_pfn_num_params(const nl_pfn *m);
/* Logits [B * (T - n), K] (row b * (T - n) + j for test token n + j of dataset b) from x [B, T, d] and the
 * targets of the first n tokens y [B, T] (entries at positions >= n are never read; y may be NULL when n = 0). */
nl_var *nl_pfn_forward(nl_pfn *m, nl_ctx *c, const double *x, const double *y, int64_t B, int64_t T, int64_t n);
/* The argument check both forwards share: B >= 1, 0 <= n < T, targets y present when n > 0 (NL_EINVAL otherwise). */
nl_status nl_pfn_forward_check(const double *y, int64_t B, int64_t T, int64_t n);
/* The same logits for inference only (infer.c): no gradient is recorded, fused q/k/v and an attention that reads
 * only the unmasked keys; equal to nl_pfn_forward up to f32 rounding (tested). Used by nl_pfn_eval and predict. */
nl_var *nl_pfn_forward_infer(nl_pfn *m, nl_ctx *c, const double *x, const double *y, int64_t B, int64_t T, int64_t n);
/* Mean bar NLL of the test tokens (positions >= n, targets y [B, T]). */
nl_var *nl_pfn_loss(nl_pfn *m, nl_ctx *c, const double *x, const double *y, int64_t B, int64_t T, int64_t n);

/* Posterior predictive bucket probabilities probs [nq, K] for queries xq [nq, d] given the context
 * xc [n, d], yc [n] (n >= 0). Queries are processed in chunks (a test token's output does not depend on the
 * other test tokens). Non-finite inputs are an error. */
nl_status nl_pfn_predict(nl_pfn *m, const double *xc, const double *yc, int64_t n, const double *xq, int64_t nq,
                         double *probs);
/* Summaries of one predictive (probs (K)). */
typedef struct nl_pfn_summary {
    double mean, median, q05, q95;
} nl_pfn_summary;
void nl_pfn_summarize(const nl_pfn *m, const double *probs, nl_pfn_summary *s);
double nl_pfn_nll(const nl_pfn *m, const double *probs, double y);

/* Read points from a CSV file (nl_csv_read: optional header, NaN/Inf rejected): dim x columns, then a y column
 * (required when y_required, else optional). Column-count mismatch -> NL_EFORMAT naming the file and both
 * counts. *x [n, dim] and *y [n] (NULL when the file has no y column) are malloc'd; *has_y tells. */
nl_status nl_pfn_read_points(const char *path, int dim, int y_required, int64_t *n, double **x, double **y, int *has_y);

/* ---- training ---- */
typedef struct nl_pfn_train_config {
    int64_t steps;          /* optimizer steps */
    int64_t batch;          /* datasets per step */
    double lr;              /* peak Adam learning rate */
    double warmup_frac;     /* fraction of the steps with linear warmup */
    double min_ratio;       /* final lr / lr of the cosine decay */
    double clip;            /* global gradient-norm clip (0 = off) */
    int64_t border_datasets;/* datasets of seq points sampled for the borders */
    uint64_t seed;          /* init (NL_PFN_STREAM_INIT), data (NL_PFN_STREAM_DATA), borders */
    int verbose;            /* progress lines (nl_progress) */
    double max_seconds;     /* stop early after this wall time (0 = no limit) */
} nl_pfn_train_config;

/* 2000 steps, batch 32, lr 1e-3, warmup 10%, min_ratio 0.01, clip 1, 2000 border datasets, seed 1. */
nl_pfn_train_config nl_pfn_train_defaults(void);

typedef struct nl_pfn_train_stats {
    int64_t steps;          /* done */
    double seconds;
    double first_loss;      /* mean loss of the first min(50, steps) steps */
    double last_loss;       /* mean loss of the last min(50, steps) steps */
    double *loss;           /* (steps) loss per step, malloc'd; free with nl_pfn_train_stats_free */
} nl_pfn_train_stats;
void nl_pfn_train_stats_free(nl_pfn_train_stats *s);

/* Borders for K buckets from border_datasets datasets of T points of the prior (full support). */
nl_status nl_pfn_borders_from_prior(const nl_pfn_prior *p, int K, int64_t datasets, int64_t T, uint64_t seed,
                                    double *borders);
/* Fresh model for the prior: borders from the prior, init from tc->seed, then nl_pfn_train. */
nl_status nl_pfn_fit(nl_pfn *m, const nl_pfn_config *cfg, const nl_pfn_prior *p, const nl_pfn_train_config *tc,
                     nl_pfn_train_stats *stats);
/* Train an initialised model on datasets of m->cfg.seq points from the prior. stats may be NULL. */
nl_status nl_pfn_train(nl_pfn *m, const nl_pfn_prior *p, const nl_pfn_train_config *tc, nl_pfn_train_stats *stats);

/* ---- checkpoints ---- */
nl_status nl_pfn_save(const nl_pfn *m, const char *path);
/* Load a checkpoint written by nl_pfn_save (a file of another kind -> NL_EFORMAT naming it). */
nl_status nl_pfn_load(nl_pfn *m, const char *path);
/* The same with flags NL_LOAD_ALLOW_NONFINITE (nnlab/safetensors.h) or 0. The header's tensors are compared with
 * the configuration before anything is allocated; a NaN / Inf value is refused with NL_EFORMAT naming the tensor. */
nl_status nl_pfn_load_opt(nl_pfn *m, const char *path, unsigned flags);
/* The parameter names and shapes of cfg in a layout-only store (nl_params_init_layout): no values allocated. */
nl_status nl_pfn_layout(const nl_pfn_config *cfg, nl_params *ps);

/* ---- evaluation against GP baselines (experiment.c) ---- */
#define NL_PFN_EVAL_MAX_NS 32
enum { NL_PFN_BASE_EXACT = 1, NL_PFN_BASE_MLE = 2, NL_PFN_BASE_MCMC = 4 };
typedef struct nl_pfn_eval_config {
    int n_ns;
    int ns[NL_PFN_EVAL_MAX_NS];   /* context sizes n evaluated */
    int datasets;                 /* held-out prior datasets per n */
    int queries;                  /* held-out query points per dataset */
    uint64_t seed;                /* data stream (distinct from training's) */
    int baselines;                /* NL_PFN_BASE_* bits */
    int mle_restarts, mle_iters;  /* nl_gpr_fit_mle (MAP under the hyperprior when there is one) */
    int mcmc_warmup, mcmc_samples;
    int mcmc_datasets;            /* datasets per n for MCMC (its cost; <= datasets; 0 = all) */
    int mle_datasets;             /* datasets per n for MLE-II (the first ones; <= datasets; 0 = all) */
    const void *hyperprior;       /* the nl_gpr_hyperprior the MLE-II (MAP) and MCMC baselines use; NULL: the prior's
                                   * own (gp-hyper), or for a fixed-hyperparameter prior plain ML-II and no MCMC */
    double *pfn_nll_out;          /* NULL or [n_ns, datasets]: each dataset's mean PFN NLL over its queries */
    double *exact_nll_out;        /* NULL or [n_ns, datasets]: the same for the exact GP (NL_PFN_BASE_EXACT) */
    double *mle_nll_out;          /* NULL or [n_ns, datasets]: MLE-II (its first mle_datasets columns; n >= 1) */
    double *mcmc_nll_out;         /* NULL or [n_ns, datasets]: MCMC (its first mcmc_datasets columns) */
    int verbose;                  /* one progress line per n (nl_progress) */
} nl_pfn_eval_config;
typedef struct nl_pfn_eval_result {
    int n_ns;
    int ns[NL_PFN_EVAL_MAX_NS];
    double pfn[NL_PFN_EVAL_MAX_NS], exact[NL_PFN_EVAL_MAX_NS], mle[NL_PFN_EVAL_MAX_NS], mcmc[NL_PFN_EVAL_MAX_NS];
    double pfn_on_mcmc[NL_PFN_EVAL_MAX_NS]; /* PFN NLL on the MCMC subset */
    double diff_se[NL_PFN_EVAL_MAX_NS];     /* standard error of the per-dataset mean PFN - exact difference */
    double mcmc_diff_se[NL_PFN_EVAL_MAX_NS];/* the same for PFN - MCMC on the MCMC subset */
    /* timings: CPU seconds of the process (all its threads; nl_pfn_cpu_seconds), so that a loaded shared machine
     * does not skew the comparison */
    double pfn_seconds, exact_seconds, mle_seconds, mcmc_seconds;
    double pfn_sec[NL_PFN_EVAL_MAX_NS];     /* PFN seconds per n (all datasets, batched) */
    double mle_sec[NL_PFN_EVAL_MAX_NS], mcmc_sec[NL_PFN_EVAL_MAX_NS]; /* baseline seconds per n (their datasets) */
    int mle_b, mcmc_b;                      /* datasets per n the MLE-II / MCMC baselines ran on */
} nl_pfn_eval_result;
/* Mean NLL per query point vs context size n, on fresh datasets of the prior p (the one the model was trained
 * on): PFN, and the selected baselines. Exact GP uses each dataset's true hyperparameters. n = 0 skips MLE. */
nl_status nl_pfn_eval(nl_pfn *m, const nl_pfn_prior *p, const nl_pfn_eval_config *ec, nl_pfn_eval_result *r);
/* CPU seconds used by this process so far (CLOCK_PROCESS_CPUTIME_ID): the clock of nl_pfn_eval's timings. */
double nl_pfn_cpu_seconds(void);
/* Re-create the prior recorded in a model (gp-rbf / gp-matern / gp-hyper). */
nl_status nl_pfn_prior_of_model(const nl_pfn *m, nl_pfn_prior *p);


/* ---- registration (methods/pfn/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_pfn;
extern const nl_method nl_method_pfn;
int nl_pfn_cli(int argc, char **argv);   /* `nnlab ...` with the arguments after the command name */

#ifdef __cplusplus
}
#endif
#endif
