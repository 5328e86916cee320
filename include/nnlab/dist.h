/* nnlab/dist.h — optional multi-process execution over MPI (docs/distributed.md).
 *
 * Built with -DNL_MPI=ON (CMake option; needs OpenMPI: libopenmpi-dev), these functions wrap MPI; without it they
 * are single-process no-ops (rank 0 of 1, reductions leave the buffer unchanged) and nnlab has no MPI symbol.
 *
 * Reproducibility: nl_dist_allreduce_* never use MPI_Allreduce (whose summation order the MPI standard leaves to
 * the implementation, and which need not even give the same bits on every rank). The buffer is cut into P chunks;
 * rank k receives chunk k of every rank (MPI_Alltoallv), sums it in rank order 0, 1, ..., P-1 (left to right, in the
 * buffer's precision), and every rank then receives every summed chunk (MPI_Allgatherv). So the result is the
 * same bits on every rank and, for a given P, from run to run. It is bandwidth-optimal (2 (P-1)/P n elements sent
 * per rank), blocking, and not overlapped with computation.
 *
 * Users of the library: nl_train_run turns data-parallel when nl_dist_size() > 1 (train.h); nl_kernel_matrix shards
 * its tiles when nl_dist_set_kernel_shard(1) was called (kernels.h). Every rank must make the same calls in the same
 * order (they are collective). */
#ifndef NNLAB_DIST_H
#define NNLAB_DIST_H
#include "nnlab/autograd.h"
#include "nnlab/base.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when nnlab was built with MPI (NL_MPI), 0 otherwise. */
int nl_dist_built(void);
/* Initialise MPI (MPI_Init_thread, funneled) unless already initialised; without MPI: nothing. A process not
 * started by mpirun is rank 0 of 1. argc/argv may be NULL. */
nl_status nl_dist_init(int *argc, char ***argv);
/* MPI_Finalize when nl_dist_init initialised MPI; safe to call twice and without init. */
void nl_dist_finalize(void);
/* End every rank at once with exit status code (MPI_Abort; without MPI: nothing, returns). For a fatal error on
 * one rank that the others cannot know about (they would wait forever in the next collective). */
void nl_dist_abort(int code);
int nl_dist_rank(void); /* 0 without MPI or before init */
int nl_dist_size(void); /* 1 without MPI or before init */

/* In-place sum over all ranks, fixed order (see above): buf (n) on every rank receives the same sum. */
nl_status nl_dist_allreduce_f32(float *buf, int64_t n);
nl_status nl_dist_allreduce_f64(double *buf, int64_t n);
/* Data-parallel gradient, blocking: the store's gradient (this rank's mean over its rows) times w (its rows / the
 * global batch) summed over the ranks with the fixed-order all-reduce above (f32 or f64 store), so every rank holds
 * the gradient of the global batch's mean loss. Without MPI: only the scaling. */
nl_status nl_dist_allreduce_grads(nl_params *ps, double w);
nl_status nl_dist_barrier(void);
/* Point-to-point bytes (blocking; n may exceed INT_MAX). */
nl_status nl_dist_send(const void *buf, size_t n, int dst, int tag);
nl_status nl_dist_recv(void *buf, size_t n, int src, int tag);

/* Collective agreement on an error: every rank passes its status; all get NL_OK when all passed NL_OK, else an
 * error (a failed rank keeps its own message; the others get "dist: rank R failed"). Use before a collective
 * that a failed rank would skip. Without MPI: returns st. */
nl_status nl_dist_agree(nl_status st);
/* *v <- its maximum over the ranks (exact). */
nl_status nl_dist_max_i64(int64_t *v);
/* *before <- sum of v over the ranks below this one (0 on rank 0), *total <- over all ranks (exact; either may be
 * NULL). */
nl_status nl_dist_exscan_i64(int64_t v, int64_t *before, int64_t *total);

/* One output file written by every rank at its own offsets (MPI-IO; without MPI: pwrite on one process). open and
 * close are collective: open removes a stale PATH.mpiio.tmp and opens it on every rank; close closes it, agrees on
 * errors, and rank 0 renames it to PATH (the file appears whole or not at all; on error the temp file is
 * removed). write_at_all is collective (MPI_File_write_at_all; every rank calls it the same number of times, n may
 * be 0 and exceed INT_MAX). An error on one rank is reported on every rank. */
typedef struct nl_dist_file {
    void *fh;    /* MPI_File (MPI) or the fd + 1 (without) */
    char *path, *tmp;
    int failed, mpi; /* mpi: opened with MPI-IO (else pwrite: no MPI, or MPI not initialised) */
} nl_dist_file;
nl_status nl_dist_file_open(nl_dist_file *f, const char *path);
nl_status nl_dist_file_write_at_all(nl_dist_file *f, int64_t off, const void *buf, size_t n);
nl_status nl_dist_file_close(nl_dist_file *f);

/* Whether nl_kernel_matrix splits its tiles over the ranks (collective call, result complete on rank 0 only).
 * Off by default; `nnlab kernel` turns it on when run under mpirun with more than one rank. */
void nl_dist_set_kernel_shard(int on);
int nl_dist_kernel_shard(void);

/* ---- bucketed all-reduce overlapped with the backward pass (data-parallel gradients, as PyTorch DDP) ----
 * The parameters are cut, in reverse store order, into buckets of about bucket_mb MiB (contiguous ranges of the
 * flat gradient array). nl_dist_reducer_begin installs a gradient-ready hook on the context (autograd.h); during
 * nl_backward, when every parameter of the next bucket in line that takes a gradient (requires_grad at begin:
 * buffers and frozen tensors do not hold a bucket back) has its final gradient, that bucket is scaled by w
 * and its reduction starts non-blocking: MPI_Ialltoallv (chunk k of the bucket to rank k), the sum in rank order
 * 0..P-1 once it arrived, MPI_Iallgatherv, the same fixed order as nl_dist_allreduce_f32/f64, so the gradient is
 * bitwise the one of scaling the whole array by w and calling the blocking all-reduce. Later hooks progress the
 * pending requests; nl_dist_reducer_finish starts the buckets still waiting (a parameter no node read), waits for
 * all of them and removes the hook: call it after nl_backward (also when this rank ran no backward: an empty
 * share of the batch) and before the optimizer step. Buckets start strictly in bucket order on every rank, so the
 * ranks issue the same collectives in the same order (two duplicated communicators, one per phase). One backward
 * pass per begin/finish. Without MPI, or on one rank, begin and finish do nothing (the gradient is unchanged). */
typedef struct nl_dist_reducer nl_dist_reducer;
typedef struct nl_dist_reducer_stats {
    int n_buckets;
    int64_t passes;         /* begin/finish pairs so far */
    double hook_seconds;    /* wall time spent inside the hooks (launching and progressing, during backward) */
    double wait_seconds;    /* wall time in nl_dist_reducer_finish (communication not hidden by backward) */
} nl_dist_reducer_stats;
/* Collective (every rank, same store layout). bucket_mb > 0. */
nl_status nl_dist_reducer_new(nl_dist_reducer **out, nl_params *ps, double bucket_mb);
void nl_dist_reducer_free(nl_dist_reducer *r);
void nl_dist_reducer_begin(nl_dist_reducer *r, nl_ctx *c, double w);
nl_status nl_dist_reducer_finish(nl_dist_reducer *r, nl_ctx *c);
nl_dist_reducer_stats nl_dist_reducer_get_stats(const nl_dist_reducer *r);

#ifdef __cplusplus
}
#endif
#endif
