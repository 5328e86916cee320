/* powernorm/powernorm.h — PowerNorm (Shen et al. 2020) in a transformer, ledger entry `powernorm`. The
 * normalisation itself is an engine op (include/nnlab/nn.h nl_powernorm, next to LayerNorm and BatchNorm) and a
 * norm kind of the transformer library (lib/transformer/transformer.h); this method holds the experiment and the
 * `nnlab powernorm` command. methods/powernorm/README.md. */
#ifndef NNLAB_POWERNORM_H
#define NNLAB_POWERNORM_H
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- registration (methods/powernorm/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_powernorm;
extern const nl_method nl_method_powernorm;
int nl_powernorm_cli(int argc, char **argv);   /* `nnlab ...` with the arguments after the command name */

#ifdef __cplusplus
}
#endif
#endif
