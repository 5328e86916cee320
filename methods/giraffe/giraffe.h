/* giraffe/giraffe.h — Giraffe (Pal et al. 2023): RoPE context extension (linear / power / truncated / xPos /
 * randomised positions) on a small general language model, ledger entry `giraffe`.
 * Per seed: a base LM (plain RoPE) is pretrained at length L on English text (KJV, fortunes, GCIDE definitions; byte
 * tokens) mixed with LongChat-Lines rows (haystack as shipped, or dense; word tokens after the bytes,
 * lib/transformer nl_lm_mix_batch); each arm is a copy fine-tuned at 2L on text only with the same token budget;
 * every arm is evaluated zero-shot on Lines prompts and on text perplexity at lengths 1x .. 32x L, at one or several
 * eval scales. Reach = the longest evaluated length whose accuracy's one-sided 95% Wilson lower bound is above a
 * floor fixed before running.
 * Files: study.c (text corpus, pretraining, fine-tuning), eval.c (batched retrieval, perplexity), stats.c (Wilson
 * bound, reach, truncation cutoff, xPos annealing, the evaluation table), experiment.c (configurations, metrics, the
 * three-part judge), cli.c (`nnlab giraffe freqs`). methods/giraffe/README.md. */
#ifndef NNLAB_GIRAFFE_H
#define NNLAB_GIRAFFE_H
#include "nnlab/ledger.h"
#include "transformer/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_GIRAFFE_MAX_LEN 8     /* evaluation lengths */
#define NL_GIRAFFE_MAX_SEEDS 8
#define NL_GIRAFFE_LINES_OFFSET 256   /* Lines token ids start after the 256 bytes */

/* The models: the base and the fine-tuned arms. */
typedef enum {
    NL_GIRAFFE_M_BASE = 0,   /* plain RoPE at L, no fine-tuning */
    NL_GIRAFFE_M_LIN4,       /* linear scale 4, fine-tuned at 2L */
    NL_GIRAFFE_M_LIN16,      /* linear scale 16 */
    NL_GIRAFFE_M_TRUNC,      /* truncated basis (cutoff: a LLaMA-like zeroed fraction of the pairs) */
    NL_GIRAFFE_M_POWER,      /* power basis k */
    NL_GIRAFFE_M_XPOS,       /* xPos, gamma annealed as the reference (8192 -> 128) */
    NL_GIRAFFE_M_RAND,       /* linear scale 4 with randomised training positions */
    NL_GIRAFFE_N_MODELS
} nl_giraffe_model;

/* One evaluated configuration: a model, its eval scale (linear models; 0 = the model's own), scrambled positions. */
typedef struct nl_giraffe_eval_def {
    const char *name;
    nl_giraffe_model model;
    double scale;            /* eval scale; for the base > 1 means zero-shot linear interpolation */
    int scrambled;           /* 1: positions a random permutation of 0..T-1 per batch (control) */
    int ppl;                 /* 1: also measure text perplexity */
} nl_giraffe_eval_def;
#define NL_GIRAFFE_MAX_EVALS 24
/* The evaluation table (index -> definition); *n receives its size. */
const nl_giraffe_eval_def *nl_giraffe_evals(int *n);
int nl_giraffe_eval_find(const char *name);   /* index or -1 */

typedef struct nl_giraffe_config {
    int d_model, layers, heads;
    int L;                       /* pretraining length (tokens) */
    int pre_steps, pre_batch;
    double pre_lr, pre_min_ratio;
    double lines_frac;           /* share of Lines rows in pretraining */
    int haystack;                /* 0: dense Lines (the paper's form); 1: one line at a random depth in filler */
    int ft_mult;                 /* fine-tuning length = ft_mult * L (text only) */
    int ft_steps, ft_batch;      /* the same for every arm: the same token budget */
    double ft_lr;
    double power;                /* power-basis k */
    double trunc_frac;           /* target zeroed fraction of the rotary pairs (LLaMA: 9/64 at T = 2048) */
    int n_len;
    int len_mult[NL_GIRAFFE_MAX_LEN];   /* evaluation lengths in units of L (ascending) */
    int samples;                 /* Lines prompts per (eval, length, seed) */
    int eval_batch;              /* prompts per forward pass */
    int ppl_windows;             /* text windows per perplexity point */
    int seeds;                   /* >= 3 */
    int shared_base;             /* 1: one base (seed `seed`) for every seed; the seeds then differ in fine-tuning
                                    data and prompts (quick); 0: a base per seed (full) */
    uint64_t seed;
    double floor;                /* reach floor on the Wilson lower bound of the accuracy */
    int64_t text_cap;            /* bytes of text loaded (KJV, fortunes, GCIDE share it; 0 = all) */
} nl_giraffe_config;

/* Measured: correct answers k[eval][seed][len] of n = samples, bits per byte bpb[eval][seed][len] (NAN when not
 * measured), fine-tuning losses, CPU seconds per phase. */
typedef struct nl_giraffe_study {
    int seeds, n_len, n_evals, samples;
    int k[NL_GIRAFFE_MAX_EVALS][NL_GIRAFFE_MAX_SEEDS][NL_GIRAFFE_MAX_LEN];
    double bpb[NL_GIRAFFE_MAX_EVALS][NL_GIRAFFE_MAX_SEEDS][NL_GIRAFFE_MAX_LEN];
    double base_loss[NL_GIRAFFE_MAX_SEEDS];
    double ft_loss[NL_GIRAFFE_N_MODELS][NL_GIRAFFE_MAX_SEEDS];
    double truncate_T;           /* the truncation length used */
    double trunc_zeroed;         /* the zeroed fraction it gives */
    double cpu_data, cpu_pretrain, cpu_finetune, cpu_eval;
} nl_giraffe_study;

/* ---- stats.c ---- */
/* One-sided lower confidence bound of a binomial proportion k/n (Wilson score interval, z; z = 1.645 for 95%). */
double nl_giraffe_wilson_lower(int k, int n, double z);
/* Reach of one accuracy curve: the largest len_mult[i] whose Wilson lower bound (z 1.645) of k[i]/n is > floor,
 * 0 when none. */
int nl_giraffe_reach(const int *k, int n, const int *len_mult, int n_len, double floor);
/* Reach level: 0 for reach 0, else 1 + log2(reach) (lengths are powers of two times L). */
double nl_giraffe_reach_level(int reach);
/* Fraction of the dim/2 rotary pairs that the truncated basis with length T zeroes (scale 1). */
double nl_giraffe_zeroed_fraction(int dim, double base, double T);
/* The truncation length T whose zeroed pair count is round(frac * dim/2) (at least 1): the geometric middle of the
 * interval of T giving that count (theta_j < 2 pi / (8 T) <=> pair j zeroed). */
double nl_giraffe_truncate_for(int dim, double base, double frac);
/* The xPos gamma of the reference's annealing at fine-tuning step `step` of `steps`: 8192 - 8 per reference step
 * down to 128, the reference's 1008 steps of annealing mapped onto this run's steps. */
double nl_giraffe_xpos_gamma(int64_t step, int64_t steps);
/* The RoPE configuration a model is fine-tuned with (truncate_T for the truncated basis). */
nl_rope_config nl_giraffe_rope(const nl_giraffe_config *g, nl_giraffe_model m, double truncate_T);
const char *nl_giraffe_model_name(nl_giraffe_model m);
/* Nominal reach of an evaluation in units of L: the eval scale for linear models (the lengths whose positions map
 * into the pretrained range), the fine-tuning length for the other fine-tuned bases, 1 for the plain base. */
double nl_giraffe_nominal_reach(const nl_giraffe_config *g, const nl_giraffe_eval_def *e);

/* ---- eval.c ---- */
/* Greedy exact-answer accuracy on n Lines prompts of at most P tokens with the answer (dense: as many lines as fit,
 * back to back; haystack: one line at a random depth in filler, exactly P tokens), Lines ids shifted by offset, batched teacher-forced forward passes at the model's eval scale: greedy decoding emits "< d d d d d >"
 * iff at every answer position the argmax given the true prefix is the true token. scrambled: positions a random
 * permutation per batch. *k = correct answers. ctx: an arena to reuse, or NULL. */
#define NL_GIRAFFE_EVAL_STREAM ((uint64_t)0x61AFULL << 32)
nl_status nl_giraffe_lines_correct(nl_lm *m, nl_ctx *ctx, int64_t P, int32_t offset, int haystack, int n, int batch,
                                   uint64_t seed, int scrambled, int *k);
/* Bits per token (byte) of text at window length T (up to `windows` windows, extrapolation allowed). */
nl_status nl_giraffe_bpb(nl_lm *m, const int32_t *text, int64_t n_text, int64_t T, int windows, double *bpb);

/* ---- study.c ---- */
nl_status nl_giraffe_study_run(const nl_giraffe_config *g, int verbose, nl_giraffe_study *out);

/* ---- registration (methods/giraffe/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_giraffe;
extern const nl_method nl_method_giraffe;
int nl_giraffe_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
