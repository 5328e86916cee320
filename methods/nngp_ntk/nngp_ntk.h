/* nngp_ntk/nngp_ntk.h — finite fully connected networks converge to their infinite-width kernels (Jacot et al. 2018;
 * Lee et al. 2019), ledger entry `nngp-ntk`. The kernels are the kernels library (lib/kernels/kernels.h); this method
 * holds the finite networks (NTK parametrisation, empirical NTK, gradient descent; finite_net.c), the experiment and
 * the `nnlab nngp-ntk` command (alias `nnlab kernel`). methods/nngp_ntk/README.md. */
#ifndef NNLAB_NNGP_NTK_H
#define NNLAB_NNGP_NTK_H
#include "nnlab/autograd.h"
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- registration (methods/nngp_ntk/method.c, one line in methods/methods.def) ---- */
extern const nl_experiment nl_exp_nngp_ntk;
extern const nl_method nl_method_nngp_ntk;
int nl_nngp_ntk_cli(int argc, char **argv);   /* `nnlab ...` with the arguments after the command name */
/* Output of `nnlab kernel` (kernel_out.c). write_npy: K (n, m) as a .npy float64 C-order array ("-": stdout;
 * otherwise atomic, nl_atomic_open). write_rows (collective over the MPI ranks): this rank's rows [r0, r1) of the
 * n x m matrix, K (r1 - r0, m), written at their offsets of one file by MPI-IO (nl_dist_file): .npy (npy = 1:
 * fixed offsets after the header) or CSV byte for byte as nl_csv_write prints it (each rank's byte count, its
 * offset by an exclusive prefix sum, chunks of ~8 MB by MPI_File_write_at_all). */
nl_status nl_nngp_ntk_write_npy(const char *path, int64_t n, int64_t m, const double *K);
nl_status nl_nngp_ntk_write_rows(const char *path, int npy, int64_t n, int64_t m, int64_t r0, int64_t r1,
                                 const double *K);

/* ---- finite networks (finite_net.c) ----
 * Dense -> ReLU -> ... -> Dense -> ReLU -> Dense (depth hidden layers of `width` units, one output) in the NTK
 * parametrisation of lib/kernels: layer l computes z = sw / sqrt(fan_in) W h + sb b with W, b ~ N(0, 1) (fan_in = d for
 * the first layer, width after), every tensor trained; float64 parameters W1, b1, ..., W<depth+1>, b<depth+1> in one
 * engine store, so its infinite-width NTK is the lib/kernels NTK with the same depth, act relu, sw and sb. */
#define NL_NNGP_NTK_MAX_DEPTH 8
typedef struct nl_nngp_ntk_net {
    int depth;
    int64_t d, width;
    double sw, sb;
    nl_params ps;                                 /* float64; ps.data are the weights, ps.grad their gradients */
    nl_var *W[NL_NNGP_NTK_MAX_DEPTH + 1], *b[NL_NNGP_NTK_MAX_DEPTH + 1];
} nl_nngp_ntk_net;

/* Build and draw every parameter from N(0, 1) (rng seed, a fixed stream). */
nl_status nl_nngp_ntk_net_init(nl_nngp_ntk_net *m, int depth, int64_t d, int64_t width, double sw, double sb,
                               uint64_t seed);
void nl_nngp_ntk_net_free(nl_nngp_ntk_net *m);
/* x [B, d] -> f [B, 1] (recorded on c's tape when gradients are on). */
nl_var *nl_nngp_ntk_net_forward(nl_nngp_ntk_net *m, nl_ctx *c, nl_var *x);
/* f (n) = the outputs at the rows of x (n, d), without gradients. Resets c. */
nl_status nl_nngp_ntk_net_predict(nl_nngp_ntk_net *m, nl_ctx *c, const double *x, int64_t n, double *f);
/* Empirical NTK theta (n, n) = J J^T, J (n, P) the per-example Jacobians of f with respect to all P parameters, each
 * row one backward pass of the engine's autograd; J is held in column chunks of at most mem_bytes. Resets c. */
nl_status nl_nngp_ntk_empirical_ntk(nl_nngp_ntk_net *m, nl_ctx *c, const double *x, int64_t n, double *theta,
                                    size_t mem_bytes);
/* `steps` full-batch gradient descent steps w <- w - lr grad L, L = 1/(2n) sum_i (f(x_i) - y_i)^2; loss0 / loss1 (may
 * be NULL): L before and after. Resets c. */
nl_status nl_nngp_ntk_net_train(nl_nngp_ntk_net *m, nl_ctx *c, const double *x, const double *y, int64_t n, double lr,
                                int64_t steps, double *loss0, double *loss1);
/* The same gradient descent on the model linearised with a fixed kernel K (Lee et al. 2019, eq. 8-9, discrete):
 * f(X) <- f(X) - lr/n K(X, X) (f(X) - y), f(X*) <- f(X*) - lr/n K(X*, X) (f(X) - y), from f0x (n) and f0s (ns);
 * Kxx (n, n), Ksx (ns, n); results fx (n), fs (ns) (may be f0x / f0s themselves: continues from there). */
nl_status nl_nngp_ntk_linear_gd(const double *Kxx, const double *Ksx, const double *f0x, const double *f0s,
                                const double *y, int64_t n, int64_t ns, double lr, int64_t steps, double *fx, double *fs);

#ifdef __cplusplus
}
#endif
#endif
