/* giraffe/giraffe.h — Giraffe (Pal et al. 2023): RoPE context extension by linear / power / truncated scaling and
 * xPos, ledger entry `giraffe` (LongChat-Lines haystack retrieval beyond the fine-tuning length, over seeds).
 * The RoPE variants are the transformer library's (lib/transformer/rope.h); this method holds the experiment
 * (experiment.c: configurations, pass rule, registration; study.c: pretraining, fine-tuning and the batched
 * retrieval evaluation) and the `nnlab giraffe` command (alias `nnlab rope`). methods/giraffe/README.md. */
#ifndef NNLAB_GIRAFFE_H
#define NNLAB_GIRAFFE_H
#include "nnlab/ledger.h"
#include "transformer/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_GIRAFFE_MAX_LEN 8     /* evaluation lengths */
#define NL_GIRAFFE_MAX_SEEDS 8

/* The schemes fine-tuned from the pretrained base. LINEAR is the claim; the others are the controls: plain RoPE
 * (the baseline the paper beats), power / truncated / xPos (the other schemes, generic substitutes), and two
 * broken linear scalings: INVERTED (the scale applied in the wrong direction, frequencies times s) and the linear
 * model evaluated without its scale (NOEVAL, no fine-tuning of its own: it shares LINEAR's weights). */
typedef enum {
    NL_GIRAFFE_LINEAR = 0,
    NL_GIRAFFE_POWER,
    NL_GIRAFFE_TRUNCATED,
    NL_GIRAFFE_XPOS,
    NL_GIRAFFE_PLAIN,
    NL_GIRAFFE_INVERTED,
    NL_GIRAFFE_NOEVAL,
    NL_GIRAFFE_N_SCHEMES
} nl_giraffe_scheme;
/* The first NL_GIRAFFE_N_RIVAL_POOL schemes are the context-extension schemes compared in part (a). */
#define NL_GIRAFFE_N_RIVAL_POOL 5

typedef struct nl_giraffe_config {
    int d_model, layers, heads;
    int L;                       /* pretraining length (tokens) */
    int pre_steps, pre_batch;
    double pre_lr, pre_min_ratio;   /* peak lr; final lr / peak of the cosine schedule (1: constant after warmup) */
    int ft_mult;                 /* fine-tuning length = ft_mult * L */
    int ft_steps, ft_batch;
    double ft_lr;
    double scale;                /* linear fine-tuning scale s */
    double power;                /* power-basis k */
    double xpos_gamma;
    int n_len;
    int len_mult[NL_GIRAFFE_MAX_LEN];   /* evaluation lengths in units of L (ascending) */
    int samples;                 /* Lines prompts per (scheme, length, seed) */
    int eval_batch;              /* prompts per forward pass */
    int seeds;                   /* >= 3 */
    int shared_base;             /* 1: one pretrained base for all seeds (seeds vary fine-tuning data and prompts) */
    uint64_t seed;
    double margin;               /* accuracy margin of both parts */
} nl_giraffe_config;

/* Measured accuracies: acc[scheme][seed][length] at the scheme's own eval scale, big[scheme][seed][length] at twice
 * it (only lengths > scale * L are measured for big; others NAN), base_acc[seed] of the base at L. */
typedef struct nl_giraffe_study {
    int seeds, n_len;
    double acc[NL_GIRAFFE_N_SCHEMES][NL_GIRAFFE_MAX_SEEDS][NL_GIRAFFE_MAX_LEN];
    double big[NL_GIRAFFE_N_SCHEMES][NL_GIRAFFE_MAX_SEEDS][NL_GIRAFFE_MAX_LEN];
    double base_acc[NL_GIRAFFE_MAX_SEEDS];
    double base_loss[NL_GIRAFFE_MAX_SEEDS];
    double ft_loss[NL_GIRAFFE_N_SCHEMES][NL_GIRAFFE_MAX_SEEDS];
    double cpu_pretrain, cpu_finetune, cpu_eval;   /* process CPU seconds (clock()) of the three phases */
} nl_giraffe_study;

const char *nl_giraffe_scheme_name(nl_giraffe_scheme s);
/* The RoPE configuration a scheme is fine-tuned with (its eval scale = its training scale). */
nl_rope_config nl_giraffe_rope(const nl_giraffe_config *g, nl_giraffe_scheme s);
/* Greedy exact-answer accuracy on n haystack prompts (one register line) of exactly P tokens, drawn with
 * nl_lines_haystack_sample from rng (seed, NL_GIRAFFE_EVAL_STREAM), in batched teacher-forced forward passes (eval
 * scale of m): greedy decoding emits exactly "< d d d d d >" iff at every answer position the argmax given the true
 * prefix is the true next token. ctx: an arena to reuse (reset on return), or NULL for a private one. */
#define NL_GIRAFFE_EVAL_STREAM ((uint64_t)0x61AFULL << 32)
nl_status nl_giraffe_lines_accuracy(nl_lm *m, nl_ctx *ctx, int64_t P, int n, int batch, uint64_t seed, double *acc);
/* Pretrain, fine-tune every scheme and evaluate, for every seed (verbose: progress lines). */
nl_status nl_giraffe_study_run(const nl_giraffe_config *g, int verbose, nl_giraffe_study *out);

/* ---- registration (methods/giraffe/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_giraffe;
extern const nl_method nl_method_giraffe;
int nl_giraffe_cli(int argc, char **argv);   /* `nnlab ...` with the arguments after the command name */

#ifdef __cplusplus
}
#endif
#endif
