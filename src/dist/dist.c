/* Optional MPI layer (nnlab/dist.h). Without NL_MPI every function is a single-process no-op, so the default build
 * carries no MPI symbol. */
#include "nnlab/dist.h"
#include <stdlib.h>
#include <string.h>

static int g_kernel_shard;
void nl_dist_set_kernel_shard(int on) { g_kernel_shard = on != 0; }
int nl_dist_kernel_shard(void) { return g_kernel_shard && nl_dist_size() > 1; }

#ifndef NL_MPI
int nl_dist_built(void) { return 0; }
nl_status nl_dist_init(int *argc, char ***argv) { return NL_OK; }
void nl_dist_finalize(void) {}
void nl_dist_abort(int code) {}
int nl_dist_rank(void) { return 0; }
int nl_dist_size(void) { return 1; }
nl_status nl_dist_allreduce_f32(float *buf, int64_t n) { return n >= 0 ? NL_OK : nl_set_error(NL_EINVAL, "allreduce: n < 0"); }
nl_status nl_dist_allreduce_f64(double *buf, int64_t n) { return n >= 0 ? NL_OK : nl_set_error(NL_EINVAL, "allreduce: n < 0"); }
nl_status nl_dist_barrier(void) { return NL_OK; }
nl_status nl_dist_send(const void *buf, size_t n, int dst, int tag) {
    return nl_set_error(NL_ESTATE, "dist: send to rank %d without MPI (build with -DNL_MPI=ON)", dst);
}
nl_status nl_dist_recv(void *buf, size_t n, int src, int tag) {
    return nl_set_error(NL_ESTATE, "dist: receive from rank %d without MPI (build with -DNL_MPI=ON)", src);
}
#else
#include <mpi.h>

static int g_inited_here, g_rank, g_size = 1;

int nl_dist_built(void) { return 1; }

nl_status nl_dist_init(int *argc, char ***argv) {
    int flag = 0;
    MPI_Initialized(&flag);
    if (!flag) {
        int provided;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return nl_set_error(NL_ESTATE, "dist: MPI_Init_thread failed");
        g_inited_here = 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return NL_OK;
}

void nl_dist_finalize(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin && g_inited_here) MPI_Finalize();
    g_inited_here = 0;
}

void nl_dist_abort(int code) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code);
}

int nl_dist_rank(void) { return g_rank; }
int nl_dist_size(void) { return g_size; }

/* Chunk k of n elements over P ranks: [off(k), off(k + 1)). */
static int64_t chunk_off(int64_t n, int P, int k) { return n / P * k + (k < n % P ? k : n % P); }

/* The fixed-order all-reduce of dist.h: alltoallv (chunk k of every rank to rank k), sum in rank order,
 * allgatherv. Counts are ints: buffers of more than INT_MAX elements go in pieces. */
static nl_status allreduce(void *buf, int64_t n, int f64) {
    if (n < 0) return nl_set_error(NL_EINVAL, "allreduce: n < 0");
    const int P = g_size, me = g_rank;
    if (P <= 1 || n == 0) return NL_OK;
    const size_t es = f64 ? sizeof(double) : sizeof(float);
    const MPI_Datatype dt = f64 ? MPI_DOUBLE : MPI_FLOAT;
    const int64_t piece_max = (int64_t)1 << 30;
    for (int64_t base = 0; base < n; base += piece_max) {
        const int64_t m = n - base < piece_max ? n - base : piece_max;
        char *b = (char *)buf + (size_t)base * es;
        const int64_t mine = chunk_off(m, P, me + 1) - chunk_off(m, P, me);
        int *cnt = malloc(sizeof(int) * 4 * (size_t)P);
        void *rb = malloc(es * (size_t)(mine * P + 1)); /* (P, mine): chunk `me` of every rank, rank order */
        if (!cnt || !rb) { free(cnt); free(rb); return nl_set_error(NL_ENOMEM, "allreduce: out of memory"); }
        int *sdisp = cnt + P, *rcnt = cnt + 2 * P, *rdisp = cnt + 3 * P;
        for (int k = 0; k < P; k++) {
            cnt[k] = (int)(chunk_off(m, P, k + 1) - chunk_off(m, P, k));
            sdisp[k] = (int)chunk_off(m, P, k);
            rcnt[k] = (int)mine;
            rdisp[k] = (int)(mine * k);
        }
        int rc = MPI_Alltoallv(b, cnt, sdisp, dt, rb, rcnt, rdisp, dt, MPI_COMM_WORLD);
        if (rc == MPI_SUCCESS) {
            char *dst = b + (size_t)chunk_off(m, P, me) * es;
            if (f64) {
                double *s = (double *)dst, *r = (double *)rb;
                for (int64_t i = 0; i < mine; i++) {
                    double acc = r[i];
                    for (int k = 1; k < P; k++) acc += r[(size_t)k * (size_t)mine + (size_t)i];
                    s[i] = acc;
                }
            } else {
                float *s = (float *)dst, *r = (float *)rb;
                for (int64_t i = 0; i < mine; i++) {
                    float acc = r[i];
                    for (int k = 1; k < P; k++) acc += r[(size_t)k * (size_t)mine + (size_t)i];
                    s[i] = acc;
                }
            }
            rc = MPI_Allgatherv(MPI_IN_PLACE, 0, dt, b, cnt, sdisp, dt, MPI_COMM_WORLD);
        }
        free(cnt);
        free(rb);
        if (rc != MPI_SUCCESS) return nl_set_error(NL_EIO, "allreduce: MPI error %d", rc);
    }
    return NL_OK;
}

nl_status nl_dist_allreduce_f32(float *buf, int64_t n) { return allreduce(buf, n, 0); }
nl_status nl_dist_allreduce_f64(double *buf, int64_t n) { return allreduce(buf, n, 1); }

nl_status nl_dist_barrier(void) {
    if (g_size <= 1) return NL_OK;
    return MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS ? NL_OK : nl_set_error(NL_EIO, "dist: MPI_Barrier failed");
}

nl_status nl_dist_send(const void *buf, size_t n, int dst, int tag) {
    const char *p = buf;
    do {
        int c = n > (size_t)1 << 30 ? 1 << 30 : (int)n;
        if (MPI_Send(p, c, MPI_BYTE, dst, tag, MPI_COMM_WORLD) != MPI_SUCCESS)
            return nl_set_error(NL_EIO, "dist: MPI_Send to rank %d failed", dst);
        p += c;
        n -= (size_t)c;
    } while (n > 0);
    return NL_OK;
}

nl_status nl_dist_recv(void *buf, size_t n, int src, int tag) {
    char *p = buf;
    do {
        int c = n > (size_t)1 << 30 ? 1 << 30 : (int)n;
        if (MPI_Recv(p, c, MPI_BYTE, src, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return nl_set_error(NL_EIO, "dist: MPI_Recv from rank %d failed", src);
        p += c;
        n -= (size_t)c;
    } while (n > 0);
    return NL_OK;
}
#endif
