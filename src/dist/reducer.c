/* Bucketed, non-blocking gradient all-reduce overlapped with the backward pass (nnlab/dist.h, docs/distributed.md).
 * Without NL_MPI (or on one rank) the reducer only counts passes. */
#include "nnlab/dist.h"
#include "internal/grad_scale.h"
#include <stdlib.h>
#include <string.h>

#ifdef NL_MPI
#include <mpi.h>
#endif

typedef struct {
    int64_t lo, hi;   /* flat element range [lo, hi) of the gradient array */
    int n_params;     /* parameters that take a gradient (set at begin): all reported, it starts */
    int n_ready;
    int state;        /* 0 waiting, 1 alltoall in flight, 2 allgather in flight, 3 done */
    int64_t mine;     /* elements of this rank's chunk */
    int *cnt;         /* (4 P) send counts, send displacements, receive counts, receive displacements */
    void *rb;         /* (P, mine) chunk `me` of every rank, rank order */
#ifdef NL_MPI
    MPI_Request req;
#endif
} bucket;

struct nl_dist_reducer {
    nl_params *ps;
    int P, me;
    int nb;
    bucket *b;             /* (nb) in launch order: the last parameters first */
    int *bucket_of;        /* (ps->n) bucket of parameter i */
    unsigned char *hooked; /* (ps->n) reported in this pass */
    nl_var **vars;         /* (ps->n) parameter vars sorted by address, for the lookup */
    int *var_param;        /* (ps->n) parameter index of vars[k] */
    int next_launch, next_gather, active;
    double w;
    nl_status err;
    nl_dist_reducer_stats st;
#ifdef NL_MPI
    MPI_Comm ca, cg;       /* alltoall phase, allgather phase */
#endif
};

nl_dist_reducer_stats nl_dist_reducer_get_stats(const nl_dist_reducer *r) { return r->st; }

void nl_dist_reducer_free(nl_dist_reducer *r) {
    if (!r) return;
    for (int i = 0; i < r->nb; i++) {
        free(r->b[i].cnt);
        free(r->b[i].rb);
    }
#ifdef NL_MPI
    int fin = 0;
    MPI_Finalized(&fin);
    if (r->P > 1 && !fin) {
        MPI_Comm_free(&r->ca);
        MPI_Comm_free(&r->cg);
    }
#endif
    free(r->b);
    free(r->bucket_of);
    free(r->hooked);
    free(r->vars);
    free(r->var_param);
    free(r);
}

static nl_dist_reducer *g_sort_r; /* qsort context (single-threaded setup) */
static int var_cmp(const void *a, const void *b) {
    const nl_var *x = g_sort_r->vars[*(const int *)a], *y = g_sort_r->vars[*(const int *)b];
    return (x > y) - (x < y);
}

nl_status nl_dist_reducer_new(nl_dist_reducer **out, nl_params *ps, double bucket_mb) {
    *out = NULL;
    if (!(bucket_mb > 0)) return nl_set_error(NL_EINVAL, "dist reducer: bucket size must be > 0 MiB (got %g)", bucket_mb);
    if (ps->n < 1 || !ps->grad) return nl_set_error(NL_EINVAL, "dist reducer: the parameter store is empty");
    nl_dist_reducer *r = calloc(1, sizeof *r);
    if (!r) return nl_set_error(NL_ENOMEM, "dist reducer: out of memory");
    r->ps = ps;
    r->P = nl_dist_size();
    r->me = nl_dist_rank();
    const int n = ps->n;
    r->b = calloc((size_t)n, sizeof *r->b);
    r->bucket_of = malloc(sizeof(int) * (size_t)n);
    r->hooked = calloc((size_t)n, 1);
    r->vars = malloc(sizeof(nl_var *) * (size_t)n);
    r->var_param = malloc(sizeof(int) * (size_t)n);
    if (!r->b || !r->bucket_of || !r->hooked || !r->vars || !r->var_param) goto oom;
    /* buckets: parameters from the last to the first, closed when they reach the size; bucket i spans from its
     * lowest parameter's offset to the previous bucket's start (the alignment padding included) */
    const double cap = bucket_mb * 1048576.0 / (double)nl_dtype_size(ps->dtype);
    int64_t hi = ps->total;
    double acc = 0;
    for (int i = n - 1; i >= 0; i--) {
        bucket *bk = &r->b[r->nb];
        bk->n_params++;
        r->bucket_of[i] = r->nb;
        acc += (double)ps->p[i]->numel;
        if (acc >= cap || i == 0) {
            bk->lo = i == 0 ? 0 : ps->p[i]->offset;
            bk->hi = hi;
            hi = bk->lo;
            acc = 0;
            if (bk->hi - bk->lo > ((int64_t)1 << 30)) {
                nl_dist_reducer_free(r);
                return nl_set_error(NL_EINVAL, "dist reducer: a bucket of %lld elements exceeds 2^30 (parameter '%s')",
                                    (long long)(bk->hi - bk->lo), ps->p[i]->name);
            }
            r->nb++;
        }
    }
    for (int i = 0; i < n; i++) {
        r->vars[i] = &ps->p[i]->var;
        r->var_param[i] = i;
    }
    g_sort_r = r;
    qsort(r->var_param, (size_t)n, sizeof(int), var_cmp);
    for (int k = 0; k < n; k++) r->vars[k] = &ps->p[r->var_param[k]]->var;
    r->st.n_buckets = r->nb;
#ifdef NL_MPI
    if (r->P > 1) {
        const size_t es = nl_dtype_size(ps->dtype);
        for (int i = 0; i < r->nb; i++) {
            bucket *bk = &r->b[i];
            const int64_t m = bk->hi - bk->lo, P = r->P;
            bk->cnt = malloc(sizeof(int) * 4 * (size_t)P);
            if (!bk->cnt) goto oom;
            int *sdisp = bk->cnt + P, *rcnt = bk->cnt + 2 * P, *rdisp = bk->cnt + 3 * P;
            for (int k = 0; k < P; k++) {
                const int64_t o0 = m / P * k + (k < m % P ? k : m % P), o1 = m / P * (k + 1) + (k + 1 < m % P ? k + 1 : m % P);
                bk->cnt[k] = (int)(o1 - o0);
                sdisp[k] = (int)o0;
                if (k == r->me) bk->mine = o1 - o0;
            }
            for (int k = 0; k < P; k++) {
                rcnt[k] = (int)bk->mine;
                rdisp[k] = (int)(bk->mine * k);
            }
            bk->rb = malloc(es * (size_t)(bk->mine * P + 1));
            if (!bk->rb) goto oom;
        }
        if (MPI_Comm_dup(MPI_COMM_WORLD, &r->ca) != MPI_SUCCESS || MPI_Comm_dup(MPI_COMM_WORLD, &r->cg) != MPI_SUCCESS) {
            r->P = 1; /* no communicator to free */
            nl_dist_reducer_free(r);
            return nl_set_error(NL_EIO, "dist reducer: MPI_Comm_dup failed");
        }
    }
#endif
    *out = r;
    return NL_OK;
oom:
    r->P = 1; /* no communicator yet */
    nl_dist_reducer_free(r);
    return nl_set_error(NL_ENOMEM, "dist reducer: out of memory");
}

#ifdef NL_MPI
static int find_param(const nl_dist_reducer *r, const nl_var *v) {
    int lo = 0, hi = r->ps->n - 1;
    while (lo <= hi) {
        const int mid = (lo + hi) / 2;
        if (r->vars[mid] == v) return r->var_param[mid];
        if (r->vars[mid] < v) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static void set_err(nl_dist_reducer *r, int rc, const char *what) {
    if (rc != MPI_SUCCESS && !r->err) r->err = nl_set_error(NL_EIO, "dist reducer: %s failed (MPI error %d)", what, rc);
}

/* scale the bucket by w and send chunk k to rank k */
static void launch(nl_dist_reducer *r, bucket *bk) {
    const int P = r->P;
    const MPI_Datatype ty = r->ps->dtype == NL_F64 ? MPI_DOUBLE : MPI_FLOAT;
    void *g = (char *)r->ps->grad + (size_t)bk->lo * nl_dtype_size(r->ps->dtype); /* (hi - lo) */
    nl__grad_scale(r->ps->dtype, g, bk->hi - bk->lo, r->w);
    set_err(r, MPI_Ialltoallv(g, bk->cnt, bk->cnt + P, ty, bk->rb, bk->cnt + 2 * P, bk->cnt + 3 * P, ty, r->ca, &bk->req),
            "MPI_Ialltoallv");
    bk->state = 1;
}

/* the chunk arrived: sum it in rank order 0..P-1 into place, then gather every rank's sums */
static void sum_and_gather(nl_dist_reducer *r, bucket *bk) {
    const int P = r->P, f64 = r->ps->dtype == NL_F64;
    const int64_t mine = bk->mine, off = bk->cnt[P + r->me];
    if (f64) {
        double *s = (double *)r->ps->grad + bk->lo + off, *rb = bk->rb;
        for (int64_t i = 0; i < mine; i++) {
            double acc = rb[i];
            for (int k = 1; k < P; k++) acc += rb[(size_t)k * (size_t)mine + (size_t)i];
            s[i] = acc;
        }
        set_err(r, MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DOUBLE, (double *)r->ps->grad + bk->lo, bk->cnt, bk->cnt + P, MPI_DOUBLE,
                                   r->cg, &bk->req), "MPI_Iallgatherv");
    } else {
        float *s = (float *)r->ps->grad + bk->lo + off, *rb = bk->rb;
        for (int64_t i = 0; i < mine; i++) {
            float acc = rb[i];
            for (int k = 1; k < P; k++) acc += rb[(size_t)k * (size_t)mine + (size_t)i];
            s[i] = acc;
        }
        set_err(r, MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, (float *)r->ps->grad + bk->lo, bk->cnt, bk->cnt + P, MPI_FLOAT,
                                   r->cg, &bk->req), "MPI_Iallgatherv");
    }
    bk->state = 2;
}

/* advance the buckets in flight without blocking (block = 1: wait for each in turn) */
static void progress(nl_dist_reducer *r, int block) {
    for (int i = r->next_gather; i < r->next_launch && !r->err; i++) {
        bucket *bk = &r->b[i];
        int done = 0;
        if (bk->state == 1) {
            if (block) { set_err(r, MPI_Wait(&bk->req, MPI_STATUS_IGNORE), "MPI_Wait"); done = 1; }
            else set_err(r, MPI_Test(&bk->req, &done, MPI_STATUS_IGNORE), "MPI_Test");
            if (!done) return; /* gathers start in bucket order */
            sum_and_gather(r, bk);
            r->next_gather = i + 1;
        }
    }
    for (int i = 0; i < r->next_gather && !r->err; i++) {
        bucket *bk = &r->b[i];
        if (bk->state != 2) continue;
        int done = 0;
        if (block) { set_err(r, MPI_Wait(&bk->req, MPI_STATUS_IGNORE), "MPI_Wait"); done = 1; }
        else set_err(r, MPI_Test(&bk->req, &done, MPI_STATUS_IGNORE), "MPI_Test");
        if (!done) return;
        bk->state = 3;
    }
}

static void on_grad_ready(void *ud, nl_var *leaf) {
    nl_dist_reducer *r = ud;
    const double t0 = nl_time();
    const int i = find_param(r, leaf);
    if (i >= 0 && !r->hooked[i]) {
        r->hooked[i] = 1;
        r->b[r->bucket_of[i]].n_ready++;
        while (r->next_launch < r->nb && r->b[r->next_launch].n_ready == r->b[r->next_launch].n_params && !r->err)
            launch(r, &r->b[r->next_launch++]);
        progress(r, 0);
    }
    r->st.hook_seconds += nl_time() - t0;
}
#endif

void nl_dist_reducer_begin(nl_dist_reducer *r, nl_ctx *c, double w) {
    r->active = 1;
    r->w = w;
#ifdef NL_MPI
    if (r->P <= 1) return;
    r->next_launch = r->next_gather = 0;
    r->err = NL_OK;
    memset(r->hooked, 0, (size_t)r->ps->n);
    for (int i = 0; i < r->nb; i++) r->b[i].n_ready = r->b[i].n_params = r->b[i].state = 0;
    /* a bucket waits for its parameters that take a gradient now (not for frozen ones or buffers such as batch
     * norm's running statistics, which no hook reports) */
    for (int i = 0; i < r->ps->n; i++)
        if (r->ps->p[i]->var.requires_grad) r->b[r->bucket_of[i]].n_params++;
    nl_ctx_set_grad_hook(c, on_grad_ready, r);
#endif
}

nl_status nl_dist_reducer_finish(nl_dist_reducer *r, nl_ctx *c) {
    if (!r->active) return nl_set_error(NL_ESTATE, "dist reducer: finish without begin");
    r->active = 0;
    r->st.passes++;
#ifdef NL_MPI
    if (r->P <= 1) return NL_OK;
    const double t0 = nl_time();
    nl_ctx_set_grad_hook(c, NULL, NULL);
    while (r->next_launch < r->nb && !r->err) launch(r, &r->b[r->next_launch++]); /* backward is over: all final */
    progress(r, 1);
    r->st.wait_seconds += nl_time() - t0;
    return r->err;
#else
    return NL_OK;
#endif
}
