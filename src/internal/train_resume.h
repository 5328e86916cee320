/* Internal: the classifier loop's side of resumable training (src/train/resume_run.c, used by src/train/train.c).
 * Not installed. Format and semantics in nnlab/train.h ("resumable training"). */
#ifndef NL_INTERNAL_TRAIN_RESUME_H
#define NL_INTERNAL_TRAIN_RESUME_H
#include "nnlab/train.h"

typedef struct nl_train__pos {
    int64_t step;              /* optimizer steps done */
    int64_t epoch;             /* 1-based epoch the run was in when the checkpoint was written */
    double best_valid_accuracy; /* NAN if none */
    int64_t best_epoch;
    int since_best;
} nl_train__pos;

/* Load the run saved at path into m (weights), o (optimizer), bt (seed, epoch, position; *resume_epoch receives
 * the 1-based epoch to continue in) and p. Errors name the file. */
nl_status nl_train__resume(const char *path, nl_model *m, nl_optim *o, nl_batcher *bt, nl_train__pos *p, int64_t *resume_epoch);
/* Write a resumable checkpoint of the run (weights, optimizer, data position of bt, dropout RNG, p). */
nl_status nl_train__checkpoint(const char *path, const nl_model *m, const nl_optim *o, const nl_batcher *bt, const nl_train__pos *p);
#endif
