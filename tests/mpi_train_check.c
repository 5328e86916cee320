/* tests/mpi_train_check.c — data-parallel training check (docs/distributed.md; built with -DNL_MPI=ON only, run by
 * tests/test_mpi.sh):
 *   mpi_train_check run PREFIX [MB]   train a small MLP on a synthetic task for 50 steps (global batch 64); rank 0
 *                                     writes PREFIX.loss (one loss per step) and the checkpoint PREFIX.st; MB: the
 *                                     gradient bucket size (nl_train_config.dist_bucket_mb; 0 = blocking all-reduce
 *                                     after backward; default 1)
 *   mpi_train_check same A B          the two runs' loss curves and checkpoints are bitwise equal (overlapped vs
 *                                     blocking all-reduce)
 *   mpi_train_check compare A B       the two runs' loss curves agree within 1e-5 relative at every step and their
 *                                     checkpoints within 1e-5 (relative to each tensor's largest magnitude)
 *   mpi_train_check cmpckpt A.st B.st the checkpoints only (`nnlab train --save` under 1 and 2 ranks)
 *   mpi_train_check bad               a batch the rank count does not divide is refused with NL_EINVAL
 *   mpi_train_check bench N REPS      time of one all-reduce of N floats (docs/distributed.md) */
#include "nnlab/dist.h"
#include "nnlab/nnlab.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEPS 50
#define TOL 1e-5

typedef struct { double loss[STEPS]; int n; } curve;

static int on_step(void *ud, nl_model *m, const nl_train_progress *p) {
    curve *c = ud;
    if (c->n < STEPS) c->loss[c->n++] = p->loss;
    return 0;
}

/* 1024 points in 32 dimensions, 4 classes from a random linear teacher (the same on every rank). */
static void make_data(nl_dataset *ds) {
    memset(ds, 0, sizeof *ds);
    ds->n = 1024;
    ds->d = 32;
    ds->n_classes = 4;
    ds->x = malloc(sizeof(float) * 1024 * 32); /* (n, d) */
    ds->y = malloc(sizeof(int32_t) * 1024);    /* (n) */
    snprintf(ds->name, sizeof ds->name, "synthetic");
    nl_rng r;
    nl_rng_init(&r, 7, 1);
    float w[32 * 4]; /* (d, classes) */
    for (int i = 0; i < 32 * 4; i++) w[i] = (float)nl_rng_normal(&r);
    for (int i = 0; i < 1024; i++) {
        float *x = ds->x + i * 32;
        for (int k = 0; k < 32; k++) x[k] = (float)nl_rng_normal(&r);
        int best = 0;
        double bv = -1e300;
        for (int c = 0; c < 4; c++) {
            double v = 0;
            for (int k = 0; k < 32; k++) v += x[k] * w[k * 4 + c];
            if (v > bv) { bv = v; best = c; }
        }
        ds->y[i] = best;
    }
}

static nl_status train(int64_t batch, const char *ckpt, curve *cv, nl_train_result *res, double bucket_mb) {
    nl_dataset ds;
    make_data(&ds);
    int64_t sizes[4] = {32, 64, 64, 4};
    nl_model_config mc = nl_mlp_config(4, sizes, NL_ACT_RELU, 0.0);
    nl_model m;
    nl_status s = nl_model_init(&m, &mc, 3);
    if (s) return s;
    nl_train_config tc = nl_train_defaults();
    tc.steps = STEPS;
    tc.batch = batch;
    tc.seed = 11;
    tc.threads = 1;
    tc.verbose = 0;
    tc.optim.lr = 3e-3;
    tc.checkpoint_path = ckpt;
    tc.dist_bucket_mb = bucket_mb;
    nl_train_callbacks cb = {0};
    cb.ud = cv;
    cb.on_step = on_step;
    s = nl_train_run(&m, &ds, NULL, &tc, &cb, res);
    nl_model_free(&m);
    free(ds.x);
    free(ds.y);
    return s;
}

static int cmp_ckpt(const char *a, const char *b) {
    nl_model ma, mb;
    if (nl_model_load(&ma, a) || nl_model_load(&mb, b)) {
        fprintf(stderr, "FAIL loading checkpoints: %s\n", nl_last_error());
        return 1;
    }
    int bad = 0;
    double worst = 0;
    if (ma.ps.n != mb.ps.n || ma.ps.total != mb.ps.total) bad = 1;
    for (int i = 0; !bad && i < ma.ps.n; i++) {
        const nl_param *p = ma.ps.p[i];
        double mx = 0, dmax = 0;
        for (int64_t k = 0; k < p->numel; k++) {
            double u = nl_tensor_get(&p->var.val, k), v = nl_tensor_get(&mb.ps.p[i]->var.val, k);
            if (fabs(u) > mx) mx = fabs(u);
            if (fabs(u - v) > dmax) dmax = fabs(u - v);
        }
        double rel = mx > 0 ? dmax / mx : dmax;
        if (rel > worst) worst = rel;
        if (!(rel <= TOL)) {
            fprintf(stderr, "FAIL %s: max |a - b| / max |a| = %.3g > %g\n", p->name, rel, TOL);
            bad = 1;
        }
    }
    printf("checkpoints %s %s: %d tensors, worst relative difference %.3g (tol %g)%s\n", a, b, ma.ps.n, worst, TOL, bad ? " FAIL" : "");
    nl_model_free(&ma);
    nl_model_free(&mb);
    return bad;
}

/* bitwise: every tensor's bytes */
static int same_ckpt(const char *a, const char *b) {
    nl_model ma, mb;
    if (nl_model_load(&ma, a) || nl_model_load(&mb, b)) {
        fprintf(stderr, "FAIL loading checkpoints: %s\n", nl_last_error());
        return 1;
    }
    int bad = ma.ps.n != mb.ps.n || ma.ps.total != mb.ps.total, ndiff = 0;
    for (int i = 0; !bad && i < ma.ps.n; i++) {
        const nl_param *p = ma.ps.p[i];
        if (memcmp(p->var.val.data, mb.ps.p[i]->var.val.data, (size_t)p->numel * nl_dtype_size(ma.ps.dtype))) ndiff++;
    }
    printf("checkpoints %s %s: %d tensors, %d differ bitwise\n", a, b, ma.ps.n, ndiff);
    nl_model_free(&ma);
    nl_model_free(&mb);
    return bad || ndiff;
}

static int read_curve(const char *prefix, double *l) {
    char path[1024];
    snprintf(path, sizeof path, "%s.loss", prefix);
    FILE *f = fopen(path, "r");
    int n = 0;
    if (!f) return -1;
    while (n < STEPS && fscanf(f, "%lf", &l[n]) == 1) n++;
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (nl_dist_init(&argc, &argv)) return 1;
    int rc = 2;
    if ((argc == 3 || argc == 4) && !strcmp(argv[1], "run")) {
        char ck[1024], lp[1024];
        snprintf(ck, sizeof ck, "%s.st", argv[2]);
        snprintf(lp, sizeof lp, "%s.loss", argv[2]);
        curve cv = {{0}, 0};
        nl_train_result res;
        nl_status s = train(64, ck, &cv, &res, argc == 4 ? atof(argv[3]) : 1.0);
        rc = s != NL_OK || cv.n != STEPS;
        if (rc) fprintf(stderr, "FAIL rank %d: %s (%d steps)\n", nl_dist_rank(), nl_last_error(), cv.n);
        if (!rc && nl_dist_rank() == 0) {
            FILE *f = fopen(lp, "w");
            for (int i = 0; f && i < STEPS; i++) fprintf(f, "%.17g\n", cv.loss[i]);
            rc = !f || fclose(f) != 0;
            printf("%d ranks: loss %.6f -> %.6f, %lld checkpoints; backward %.3f s, of which hooks %.3f s; reduction after "
                   "backward %.3f s\n", nl_dist_size(), cv.loss[0], cv.loss[STEPS - 1], (long long)res.checkpoints,
                   res.dist_backward_seconds, res.dist_hook_seconds, res.dist_comm_seconds);
        }
        nl_train_result_free(&res);
    } else if (argc == 4 && !strcmp(argv[1], "compare")) {
        double a[STEPS], b[STEPS], worst = 0;
        int na = read_curve(argv[2], a), nb = read_curve(argv[3], b);
        rc = na != STEPS || nb != STEPS;
        if (rc) fprintf(stderr, "FAIL: curves of %d and %d steps (want %d)\n", na, nb, STEPS);
        for (int i = 0; !rc && i < STEPS; i++) {
            double rel = fabs(a[i] - b[i]) / fabs(a[i]);
            if (rel > worst) worst = rel;
            if (!(rel <= TOL)) {
                fprintf(stderr, "FAIL step %d: loss %.9g vs %.9g (relative %.3g > %g)\n", i + 1, a[i], b[i], rel, TOL);
                rc = 1;
            }
        }
        printf("loss curves: %d steps, worst relative difference %.3g (tol %g)\n", STEPS, worst, TOL);
        char ca[1024], cb[1024];
        snprintf(ca, sizeof ca, "%s.st", argv[2]);
        snprintf(cb, sizeof cb, "%s.st", argv[3]);
        rc |= cmp_ckpt(ca, cb);
    } else if (argc == 4 && !strcmp(argv[1], "same")) {
        double a[STEPS], b[STEPS];
        int na = read_curve(argv[2], a), nb = read_curve(argv[3], b), nd = 0;
        rc = na != STEPS || nb != STEPS;
        for (int i = 0; !rc && i < STEPS; i++) nd += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
        printf("loss curves: %d of %d steps differ bitwise\n", nd, na);
        char ca[1024], cb[1024];
        snprintf(ca, sizeof ca, "%s.st", argv[2]);
        snprintf(cb, sizeof cb, "%s.st", argv[3]);
        rc |= nd != 0;
        rc |= same_ckpt(ca, cb);
    } else if (argc == 4 && !strcmp(argv[1], "cmpckpt")) {
        rc = cmp_ckpt(argv[2], argv[3]);
    } else if (argc == 2 && !strcmp(argv[1], "bad")) {
        curve cv = {{0}, 0};
        nl_train_result res;
        int64_t batch = 64 * nl_dist_size() + 1; /* never divisible by 2 or more ranks */
        nl_status s = train(batch, NULL, &cv, &res, 1.0);
        if (nl_dist_size() < 2) rc = s != NL_OK; /* one process: any batch is fine */
        else rc = !(s == NL_EINVAL && strstr(res.message, "not divisible") && cv.n == 0);
        if (nl_dist_rank() == 0) printf("batch %lld on %d ranks: %s: %s\n", (long long)batch, nl_dist_size(), nl_status_name(s), res.message);
        nl_train_result_free(&res);
    } else if (argc == 4 && !strcmp(argv[1], "bench")) { /* time REPS fixed-order all-reduces of N floats */
        int64_t n = atoll(argv[2]);
        int reps = atoi(argv[3]);
        float *g = calloc((size_t)(n > 0 ? n : 1), sizeof(float)); /* (n) */
        rc = !g || n < 1 || reps < 1;
        if (!rc) {
            nl_dist_allreduce_f32(g, n); /* warm-up */
            nl_dist_barrier();
            double t0 = nl_time();
            for (int i = 0; i < reps && !rc; i++) rc = nl_dist_allreduce_f32(g, n) != NL_OK;
            double dt = (nl_time() - t0) / reps;
            if (nl_dist_rank() == 0) printf("allreduce of %lld floats on %d ranks: %.3f ms\n", (long long)n, nl_dist_size(), 1e3 * dt);
        }
        free(g);
    } else {
        fprintf(stderr, "usage: mpi_train_check run PREFIX [MB] | compare A B | same A B | cmpckpt A.st B.st | bad | bench N REPS\n");
    }
    nl_dist_finalize();
    return rc;
}
