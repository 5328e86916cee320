/* giraffe/giraffe.h — Giraffe (Pal et al. 2023): RoPE context extension by linear / power / truncated scaling and
 * xPos, ledger entry `giraffe` (LongChat-Lines retrieval and byte-level perplexity beyond the training length).
 * The RoPE variants are the transformer library's (lib/transformer/rope.h); this method holds the experiment and
 * the `nnlab giraffe` command (alias `nnlab rope`). methods/giraffe/README.md. */
#ifndef NNLAB_GIRAFFE_H
#define NNLAB_GIRAFFE_H
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- registration (methods/giraffe/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_giraffe;
extern const nl_method nl_method_giraffe;
int nl_giraffe_cli(int argc, char **argv);   /* `nnlab ...` with the arguments after the command name */

#ifdef __cplusplus
}
#endif
#endif
