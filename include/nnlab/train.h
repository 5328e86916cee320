/* nnlab/train.h — the supervised training loop shared by the CLI, the baselines and the methods.
 *
 * One step: nl_ctx_reset, forward (nl_model_forward, train = 1), loss (mean cross-entropy by default, or the
 * callbacks' loss), a finiteness check of the loss, zero_grad + backward, optional before_step callback,
 * nl_optim_step. Epochs visit the training set once in a seeded shuffled order (data.h batcher with the
 * config's seed). After every eval_every-th epoch the validation set (if any) is evaluated (no-grad, batched),
 * early stopping watches its accuracy, and a checkpoint is written.
 *
 * Non-finite numbers: a NaN/Inf loss, or a non-finite gradient refused by the optimizer, stops the run with
 * NL_ENONFINITE and a message naming the step and the tensor ("step 57: loss is NaN", "step 57: gradient of
 * fc2.weight is not finite"). Checkpoints are written atomically (temp file + rename) and only from finite
 * weights, so the last good checkpoint on disk survives. The model in memory is left as it was at the failing
 * step (the optimizer changes nothing on a non-finite gradient).
 *
 * Progress (the convention of base.h): lines go through nl_progress, so to this thread's sink. Only when no sink is
 * set (the default, stderr) and stderr is a TTY is a one-line bar "epoch e/E step s/S loss samples/s ETA" redrawn
 * in place with \r on stderr (a bar cannot be redrawn through a line sink); otherwise plain lines are sent every
 * log_every steps (default: ~5 per epoch). One summary line per epoch. verbose 0 prints nothing. */
#ifndef NNLAB_TRAIN_H
#define NNLAB_TRAIN_H
#include "nnlab/data.h"
#include "nnlab/model.h"
#include "nnlab/optim.h"
#include "nnlab/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nl_train_config {
    int64_t epochs;          /* passes over the training set (used when steps == 0) */
    int64_t steps;           /* if > 0: train exactly this many steps (epochs then only mark evaluations) */
    int64_t batch;           /* mini-batch size */
    int drop_last;           /* drop the last incomplete batch of every epoch */
    nl_optim_config optim;   /* optimizer; a cosine/linear schedule with total_steps 0 gets the run's steps */
    uint64_t seed;           /* shuffling (the model's init and dropout seeds are the model's business) */
    int threads;             /* > 0: nl_set_num_threads(threads) at the start; 0: leave as is */
    int eval_every;          /* evaluate the validation set every this many epochs (and at the end); 0 = only at the end */
    int patience;            /* early stopping: stop after this many evaluations without a better validation
                              * accuracy (0 = off; needs a validation set) */
    int restore_best;        /* with a validation set: put the weights of the best evaluation back at the end */
    const char *checkpoint_path; /* written after every evaluation and at the end (NULL = none) */
    int64_t eval_batch;      /* batch of evaluations (default 256) */
    double label_smoothing;  /* of the default cross-entropy loss */
    int verbose;             /* 0 silent, 1 progress + epoch lines (nl_progress) */
    int64_t log_every;       /* non-TTY progress lines every this many steps (0 = about 5 per epoch) */
    int64_t curve_every;     /* training-loss curve: mean loss over this many steps per point (0 = ~20 per epoch) */
    const char *valid_name;  /* how the validation set is called in messages ("valid" by default, e.g. "test") */
    int64_t save_every;      /* > 0 (needs checkpoint_path): also write a checkpoint after every this many steps */
    const char *resume_path; /* continue the run saved in this checkpoint (see "resumable training" below) */
    double dist_bucket_mb;   /* data-parallel runs (MPI, > 1 rank): > 0 reduce the gradient in buckets of this many
                              * MiB overlapped with backward (nl_dist_reducer, dist.h); <= 0 one blocking all-reduce
                              * after backward. Bitwise the same gradient either way. Default 1 */
} nl_train_config;

/* 10 epochs, batch 128, Adam (optim.h defaults), seed 0, eval_every 1, no early stopping, verbose 1. */
nl_train_config nl_train_defaults(void);

/* State handed to callbacks. */
typedef struct nl_train_progress {
    int64_t epoch;           /* current epoch (1-based) */
    int64_t epochs;          /* planned epochs (estimated from steps when training by steps) */
    int64_t step;            /* optimizer steps done */
    int64_t total_steps;     /* planned steps */
    double loss;             /* loss of the last step */
    double epoch_loss;       /* mean training loss of the current epoch so far */
    double epoch_accuracy;   /* training accuracy of the current epoch so far (on the training-mode logits) */
    double valid_accuracy, valid_loss;  /* last evaluation (NAN before the first) */
    double epoch_seconds;    /* training seconds of the current epoch so far */
    double samples_per_sec;  /* of the current epoch */
    double lr;               /* learning rate of the last step */
} nl_train_progress;

typedef struct nl_train_callbacks {
    void *ud;
    /* Loss of a batch (a scalar var). Default: nl_cross_entropy(logits, y, label_smoothing, -1). */
    nl_var *(*loss)(void *ud, nl_ctx *c, nl_model *m, nl_var *x, nl_var *logits, const int32_t *y, int64_t bs);
    /* After backward, before the optimizer step (gradient surgery, masks, schedules). Non-OK stops the run and
     * is returned. */
    nl_status (*before_step)(void *ud, nl_model *m, nl_optim *o, int64_t step);
    /* After every optimizer step / after every epoch (after its evaluation). Return nonzero to stop (not an
     * error: result.stopped_by_callback is set). */
    int (*on_step)(void *ud, nl_model *m, const nl_train_progress *p);
    int (*on_epoch)(void *ud, nl_model *m, const nl_train_progress *p);
} nl_train_callbacks;

typedef struct nl_epoch_record {
    int64_t epoch;           /* 1-based */
    int64_t steps;           /* steps in this epoch */
    double train_loss;       /* mean over the epoch's steps */
    double train_accuracy;   /* on the training-mode logits of the epoch's batches */
    double valid_accuracy;   /* NAN when not evaluated this epoch */
    double valid_loss;
    double seconds;          /* training time of the epoch (evaluation and checkpointing excluded) */
    double eval_seconds;
    double samples_per_sec;  /* training samples / seconds */
} nl_epoch_record;

typedef struct nl_train_result {
    int64_t steps;                 /* optimizer steps done */
    int64_t samples;               /* training examples seen */
    int n_epochs;                  /* epochs run (the last may be partial when training by steps) */
    nl_epoch_record *epoch;        /* (n_epochs), owned */
    int n_curve;                   /* training curves: (step, mean loss / accuracy over the preceding window) */
    double *curve_step, *curve_loss, *curve_acc; /* (n_curve), owned */
    int64_t steps_per_epoch;       /* batches in a full epoch */
    double final_loss;             /* mean training loss of the last epoch */
    double valid_accuracy, valid_loss;  /* last evaluation (NAN if none) */
    double best_valid_accuracy;    /* NAN if none */
    int64_t best_epoch;            /* epoch of the best validation accuracy (0 if none) */
    double train_seconds;          /* sum of epoch seconds */
    double total_seconds;          /* wall time of nl_train_run */
    double samples_per_sec;        /* samples / train_seconds */
    int stopped_early;             /* patience ran out */
    int stopped_by_callback;
    int nonfinite;                 /* stopped on a NaN/Inf */
    int64_t bad_step;              /* 1-based step of the NaN/Inf (0 if none) */
    int checkpoints;               /* checkpoints written */
    char message[512];             /* the error message (nonfinite or other failure), "" on success */
    /* data-parallel runs (nl_dist_size() > 1), wall seconds of this rank summed over the steps: */
    double dist_backward_seconds;  /* in nl_backward (with overlap: the hooks' communication included) */
    double dist_hook_seconds;      /* of which inside the reducer's hooks (overlap only) */
    double dist_comm_seconds;      /* gradient reduction after backward: the blocking all-reduce, or the wait for the
                                    * buckets still in flight (the communication not hidden) */
} nl_train_result;

/* Train m on train (evaluating on valid, which may be NULL). res is always filled (free it with
 * nl_train_result_free, also on error). Returns NL_OK, NL_ENONFINITE, or the status of the failure. */
nl_status nl_train_run(nl_model *m, const nl_dataset *train, const nl_dataset *valid, const nl_train_config *cfg,
                       const nl_train_callbacks *cb, nl_train_result *res);
void nl_train_result_free(nl_train_result *res);

/* ---- resumable training ----
 * Every checkpoint nl_train_run writes (after evaluations, every save_every steps, at the end) is resumable: it is
 * an ordinary model checkpoint (nl_model_load / `nnlab eval --load` read it as before, parameter loading skips
 * tensors named "train.*") that also holds the training state:
 *   tensors  "train.optim.m" (momentum / Adam first moment) and "train.optim.v" (Adam second moment), flat
 *            (ps->total elements, the store dtype, store order);
 *   metadata "train.step" (optimizer steps done), "train.optim.*" (the whole nl_optim_config: kind, lr, momentum,
 *            nesterov, weight_decay, beta1, beta2, eps, clip_norm, sched, warmup_steps, total_steps, min_ratio;
 *            and the optimizer's step), and, from nl_train_run: "train.epoch" (0-based epoch of the data order
 *            to continue in), "train.pos" (its rows already consumed), "train.seed" (shuffling seed),
 *            "train.batch", "train.drop_last", "train.n" (training examples), "train.dropout_rng"
 *            ("seed,stream,counter" of the model's dropout generator), "train.best_valid_accuracy",
 *            "train.best_epoch", "train.since_best" (early stopping). The LM (transformer.h) adds its own keys.
 * Resuming (cfg->resume_path) loads the weights (the architecture must match: every tensor name and shape),
 * the optimizer state and configuration, the step, the data position and the RNG states, then continues until
 * the run's planned total (cfg->steps, or cfg->epochs epochs). The optimizer settings and the LR schedule,
 * with its horizon total_steps, are the stored ones (so a cosine/linear schedule continues exactly as planned
 * by the run that wrote the file); the shuffling seed too. The batch size and the training set size must
 * match. For a fixed seed and thread count, a run stopped after k steps and resumed gives bit-identical weights
 * and optimizer state to the uninterrupted run. Not carried: the restore_best snapshot (the weights of the best
 * evaluation before the resume) and the result's per-epoch records and curves (they cover the resumed part);
 * the final "best weights" checkpoint of restore_best holds no training state (resuming from it is refused).
 *
 * The builder below is what nl_train_run and the LM use; a library adds keys under its own "train." names. */
#define NL_TRAIN_STATE_MAX 48
typedef struct nl_train_state {
    int n;                                   /* metadata entries */
    char key[NL_TRAIN_STATE_MAX][40];
    char val[NL_TRAIN_STATE_MAX][80];
    const char *keyp[NL_TRAIN_STATE_MAX];    /* key[i] / val[i], for nl_model_save-style (n, keys, vals) */
    const char *valp[NL_TRAIN_STATE_MAX];
    const nl_optim *opt;                     /* its moments are written as tensors (NULL: none) */
    nl_status status;                        /* first failure (too many keys), NL_OK otherwise */
} nl_train_state;

void nl_train_state_init(nl_train_state *s);
void nl_train_state_put_int(nl_train_state *s, const char *key, long long v);
void nl_train_state_put_u64(nl_train_state *s, const char *key, uint64_t v);
void nl_train_state_put_num(nl_train_state *s, const char *key, double v); /* skipped when not finite */
void nl_train_state_put_rng(nl_train_state *s, const char *key, const nl_rng *r); /* "seed,stream,counter" */
/* "train.optim.*" keys (config and step) and the moments of o as tensors. */
void nl_train_state_put_optim(nl_train_state *s, const nl_optim *o);
/* Write the parameters of ps, then the state's tensors, with metadata_json (which must already hold the
 * state's keys: build it with s->n, s->keyp, s->valp as extra keys), atomically. */
nl_status nl_train_state_write(const char *path, const nl_params *ps, const nl_train_state *s, const char *metadata_json);
/* Open a resumable checkpoint: NL_EFORMAT naming the file when it holds no training state ("train.step"). */
nl_status nl_train_state_open(const char *path, nl_st_file *f);
nl_status nl_train_state_get_u64(const nl_st_file *f, const char *key, uint64_t *v);
nl_status nl_train_state_get_rng(const nl_st_file *f, const char *key, nl_rng *r);
/* Restore o (initialised on the same store) from f: the configuration (the kind must equal o's, NL_EINVAL
 * otherwise), the step and the moments (element counts and dtype must match). Group multipliers stay o's. */
nl_status nl_train_state_get_optim(const nl_st_file *f, nl_optim *o);
/* Rewrite the checkpoint at path with m's weights and the extra metadata keys, keeping the training state the
 * file already holds (its "train.*" tensors and keys; none when it has no state or does not exist). Used by
 * `nnlab train` to add the test accuracy to the final checkpoint without losing resumability. */
nl_status nl_model_save_keep_state(const nl_model *m, const char *path, int n_extra, const char *const *keys,
                                   const char *const *vals);

/* Accuracy (fraction in [0, 1]) and mean cross-entropy of m on ds, eval mode, no gradients, batches of 256.
 * Either output may be NULL. */
nl_status nl_evaluate(nl_model *m, const nl_dataset *ds, double *accuracy, double *loss);
/* Same with a given batch size and an existing context (reset before use). */
nl_status nl_evaluate_ex(nl_model *m, nl_ctx *c, const nl_dataset *ds, int64_t batch, double *accuracy, double *loss);
/* Class of the highest logit of every row of x (n, in_dim) into pred (n). */
nl_status nl_model_predict(nl_model *m, const float *x, int64_t n, int32_t *pred);

/* ---- the standard recipe: dataset -> model -> train -> test (used by `nnlab train` and the baselines) ----
 * Loads the dataset's train and test splits, holds out n_valid training examples (seeded split) for validation,
 * keeps the first `limit` of the remaining training examples, sets the model's input normalisation from the
 * training set (standardize), builds the model (model_seed), trains, and evaluates on the test set. Without a
 * validation split, the test set is what gets evaluated after each epoch (reported as "test"), so the epoch
 * records carry the test accuracy curve. */
typedef struct nl_recipe {
    const char *dataset;        /* "fashion-mnist" | "mnist" */
    const char *data_dir;       /* NULL: the default search (data.h) */
    int64_t limit;              /* training examples to use (0 = all) */
    int64_t n_valid;            /* held-out validation examples (0 = none) */
    int standardize;            /* input_mean/input_std of the model from the training set's pixels */
    nl_model_config model;      /* its input size / geometry must match the dataset */
    uint64_t model_seed;
    nl_train_config train;
    int64_t test_limit;         /* > 0: evaluate on the first test_limit test images only (smoke runs) */
    int shuffle_labels;         /* 1: permute the kept training labels (seeded by train.seed, stream
                                 * NL_STREAM_LABELS) before training, test labels untouched: the shuffled-label
                                 * control (a model that cannot learn the task; test accuracy ~ chance) */
} nl_recipe;
#define NL_STREAM_LABELS ((uint64_t)0x1AB3ULL << 32)  /* rng stream of the shuffled-label permutation */

typedef struct nl_recipe_result {
    nl_train_result train;      /* per-epoch records, curves, timing (free with nl_recipe_result_free) */
    double test_accuracy, test_loss;
    int64_t n_train, n_valid, n_test;
    double load_seconds;        /* reading the dataset */
} nl_recipe_result;

/* m receives the trained model (also on NL_ENONFINITE, so the caller can inspect it; zeroed on other errors).
 * res is always filled. */
nl_status nl_recipe_run(const nl_recipe *r, nl_model *m, nl_recipe_result *res);
void nl_recipe_result_free(nl_recipe_result *res);

#ifdef __cplusplus
}
#endif
#endif
