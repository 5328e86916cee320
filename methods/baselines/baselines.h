/* baselines/baselines.h — the reference classifiers every method is compared against: an MLP and a CNN on
 * Fashion-MNIST (ledger entries `mlp` and `cnn`). They are trained by the engine (include/nnlab/train.h) and from the
 * command line by `nnlab train mlp|cnn`; methods/baselines/README.md has the recipes and the numbers. */
#ifndef NNLAB_BASELINES_H
#define NNLAB_BASELINES_H
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- registration (methods/baselines/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_mlp;
extern const nl_experiment nl_exp_cnn;
extern const nl_method nl_method_baselines;

#ifdef __cplusplus
}
#endif
#endif
