/* Optional MPI layer (nnlab/dist.h). Without NL_MPI every function is a single-process no-op, so the default build
 * carries no MPI symbol. */
#include "nnlab/dist.h"
#include "internal/grad_scale.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_kernel_shard;
void nl_dist_set_kernel_shard(int on) { g_kernel_shard = on != 0; }
int nl_dist_kernel_shard(void) { return g_kernel_shard && nl_dist_size() > 1; }

static nl_status file_names(nl_dist_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    size_t n = path ? strlen(path) : 0;
    if (!n) return nl_set_error(NL_EINVAL, "dist file: empty path");
    f->path = malloc(n + 1);
    f->tmp = malloc(n + 12);
    if (!f->path || !f->tmp) {
        free(f->path); free(f->tmp); f->path = f->tmp = NULL;
        return nl_set_error(NL_ENOMEM, "dist file: out of memory");
    }
    memcpy(f->path, path, n + 1);
    memcpy(f->tmp, path, n);
    memcpy(f->tmp + n, ".mpiio.tmp", 11);
    return NL_OK;
}

static void file_names_free(nl_dist_file *f) {
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
}

/* The one-process nl_dist_file (also used by an MPI build before MPI_Init). */
static nl_status posix_open(nl_dist_file *f, const char *path) {
    nl_status st = file_names(f, path);
    if (st) return st;
    int fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        st = nl_set_error(NL_EIO, "dist file: cannot create %s: %s", f->tmp, strerror(errno));
        file_names_free(f);
        return st;
    }
    f->fh = (void *)(intptr_t)(fd + 1);
    return NL_OK;
}

static nl_status posix_write(nl_dist_file *f, int64_t off, const void *buf, size_t n) {
    if (!f->fh || off < 0) return nl_set_error(NL_EINVAL, "dist file: not open or negative offset");
    const int fd = (int)(intptr_t)f->fh - 1;
    const char *p = buf;
    while (n > 0 && !f->failed) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w <= 0) { f->failed = 1; return nl_set_error(NL_EIO, "dist file: writing %s failed: %s", f->tmp, strerror(errno)); }
        p += w; off += w; n -= (size_t)w;
    }
    return f->failed ? nl_set_error(NL_EIO, "dist file: an earlier write to %s failed", f->tmp) : NL_OK;
}

static nl_status posix_close(nl_dist_file *f) {
    if (!f->fh) return nl_set_error(NL_EINVAL, "dist file: not open");
    nl_status st = NL_OK;
    if (close((int)(intptr_t)f->fh - 1) != 0 && !f->failed) { f->failed = 1; st = nl_set_error(NL_EIO, "dist file: closing %s: %s", f->tmp, strerror(errno)); }
    if (f->failed) {
        if (!st) st = nl_set_error(NL_EIO, "dist file: a write to %s failed", f->tmp);
        unlink(f->tmp);
    } else if (rename(f->tmp, f->path) != 0) {
        st = nl_set_error(NL_EIO, "dist file: cannot rename %s to %s: %s", f->tmp, f->path, strerror(errno));
        unlink(f->tmp);
    }
    f->fh = NULL;
    file_names_free(f);
    return st;
}

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
nl_status nl_dist_agree(nl_status st) { return st; }
nl_status nl_dist_max_i64(int64_t *v) { return NL_OK; }
nl_status nl_dist_exscan_i64(int64_t v, int64_t *before, int64_t *total) {
    if (before) *before = 0;
    if (total) *total = v;
    return NL_OK;
}

nl_status nl_dist_file_open(nl_dist_file *f, const char *path) { return posix_open(f, path); }
nl_status nl_dist_file_write_at_all(nl_dist_file *f, int64_t off, const void *buf, size_t n) { return posix_write(f, off, buf, n); }
nl_status nl_dist_file_close(nl_dist_file *f) { return posix_close(f); }
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
nl_status nl_dist_agree(nl_status st) {
    if (g_size <= 1) return st;
    int first = st ? g_rank : g_size, all = g_size;
    if (MPI_Allreduce(&first, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
        return nl_set_error(NL_EIO, "dist: MPI_Allreduce failed");
    if (st || all == g_size) return st;
    return nl_set_error(NL_ESTATE, "dist: rank %d failed (its message is on its stderr)", all);
}

nl_status nl_dist_max_i64(int64_t *v) {
    if (g_size <= 1) return NL_OK;
    long long in = *v, out = 0;
    if (MPI_Allreduce(&in, &out, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
        return nl_set_error(NL_EIO, "dist: MPI_Allreduce failed");
    *v = out;
    return NL_OK;
}

nl_status nl_dist_exscan_i64(int64_t v, int64_t *before, int64_t *total) {
    long long in = v, pre = 0, tot = v;
    if (g_size > 1) {
        if (MPI_Exscan(&in, &pre, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS ||
            MPI_Allreduce(&in, &tot, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return nl_set_error(NL_EIO, "dist: MPI_Exscan failed");
        if (g_rank == 0) pre = 0; /* MPI_Exscan leaves rank 0's result undefined */
    }
    if (before) *before = pre;
    if (total) *total = tot;
    return NL_OK;
}

nl_status nl_dist_file_open(nl_dist_file *f, const char *path) {
    int init = 0;
    MPI_Initialized(&init);
    if (!init) return posix_open(f, path);
    nl_status st = nl_dist_agree(file_names(f, path));
    if (st) { file_names_free(f); return st; }
    if (g_rank == 0 && unlink(f->tmp) != 0 && errno != ENOENT)
        st = nl_set_error(NL_EIO, "dist file: cannot remove the stale %s: %s", f->tmp, strerror(errno));
    MPI_File *fh = malloc(sizeof *fh);
    if (!fh && !st) st = nl_set_error(NL_ENOMEM, "dist file: out of memory");
    if ((st = nl_dist_agree(st))) { free(fh); file_names_free(f); return st; }
    int rc = MPI_File_open(MPI_COMM_WORLD, f->tmp, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, fh);
    if (rc != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, msg, &len);
        st = nl_set_error(NL_EIO, "dist file: rank %d: MPI_File_open %s: %s", g_rank, f->tmp, msg);
    }
    if ((st = nl_dist_agree(st))) { /* the open may fail on some ranks only (a node that cannot create the file) */
        if (rc == MPI_SUCCESS) MPI_File_close(fh);
        free(fh);
        if (g_rank == 0) unlink(f->tmp);
        file_names_free(f);
        return st;
    }
    f->fh = fh;
    f->mpi = 1;
    return NL_OK;
}

nl_status nl_dist_file_write_at_all(nl_dist_file *f, int64_t off, const void *buf, size_t n) {
    if (!f->mpi) return posix_write(f, off, buf, n);
    nl_status st = f->fh && off >= 0 ? NL_OK : nl_set_error(NL_EINVAL, "dist file: not open or negative offset");
    const size_t piece = (size_t)1 << 30;
    int64_t rounds = (int64_t)((n + piece - 1) / piece);
    if ((st = nl_dist_agree(st)) || (st = nl_dist_max_i64(&rounds))) return st;
    const char *p = buf;
    for (int64_t k = 0; k < rounds; k++) {
        size_t done = (size_t)k * piece, c = n > done ? (n - done < piece ? n - done : piece) : 0;
        MPI_Status ms;
        int got = 0;
        int rc = MPI_File_write_at_all(*(MPI_File *)f->fh, (MPI_Offset)(off + (int64_t)done), c ? p + done : p, (int)c,
                                       MPI_BYTE, &ms);
        if (rc == MPI_SUCCESS) MPI_Get_count(&ms, MPI_BYTE, &got);
        if ((rc != MPI_SUCCESS || (size_t)got != c) && !f->failed) {
            f->failed = 1;
            st = nl_set_error(NL_EIO, "dist file: rank %d: writing %zu bytes at %lld of %s failed", g_rank, c,
                              (long long)(off + (int64_t)done), f->tmp);
        }
    }
    return nl_dist_agree(st);
}

nl_status nl_dist_file_close(nl_dist_file *f) {
    if (!f->mpi) return posix_close(f);
    nl_status st = NL_OK;
    if (!f->fh) return nl_set_error(NL_EINVAL, "dist file: not open");
    if (MPI_File_close((MPI_File *)f->fh) != MPI_SUCCESS) { f->failed = 1; st = nl_set_error(NL_EIO, "dist file: closing %s failed", f->tmp); }
    free(f->fh);
    f->fh = NULL;
    if (f->failed && !st) st = nl_set_error(NL_EIO, "dist file: a write to %s failed", f->tmp);
    st = nl_dist_agree(st);
    nl_status st2 = NL_OK;
    if (g_rank == 0) {
        if (st) unlink(f->tmp);
        else if (rename(f->tmp, f->path) != 0) {
            st2 = nl_set_error(NL_EIO, "dist file: cannot rename %s to %s: %s", f->tmp, f->path, strerror(errno));
            unlink(f->tmp);
        }
    }
    if (!st) st = nl_dist_agree(st2);
    file_names_free(f);
    return st;
}
#endif

nl_status nl_dist_allreduce_grads(nl_params *ps, double w) {
    nl__grad_scale(ps->dtype, ps->grad, ps->total, w);
    return ps->dtype == NL_F32 ? nl_dist_allreduce_f32(ps->grad, ps->total) : nl_dist_allreduce_f64(ps->grad, ps->total);
}
