/* nngp_ntk/nngp_ntk.h — infinite-width NNGP and NTK kernel regression against trained finite networks (Lee et al.
 * 2018; Jacot et al. 2018), ledger entry `nngp-ntk`. The kernels are the kernels library (lib/kernels/kernels.h); this
 * method holds the experiment and the `nnlab nngp-ntk` command (alias `nnlab kernel`). methods/nngp_ntk/README.md. */
#ifndef NNLAB_NNGP_NTK_H
#define NNLAB_NNGP_NTK_H
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- registration (methods/nngp_ntk/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_nngp_ntk;
extern const nl_method nl_method_nngp_ntk;
int nl_nngp_ntk_cli(int argc, char **argv);   /* `nnlab ...` with the arguments after the command name */

#ifdef __cplusplus
}
#endif
#endif
