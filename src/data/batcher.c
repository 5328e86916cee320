/* Mini-batch iterator: per-epoch permutation from (seed, epoch), rows gathered into a contiguous buffer. */
#include "nnlab/data.h"
#include "nnlab/rng.h"
#include <stdlib.h>
#include <string.h>

static void make_perm(nl_batcher *b) {
    int64_t n = b->ds->n;
    if (b->shuffle) {
        nl_rng r;
        nl_rng_init(&r, b->seed, NL_STREAM_BATCHER + (uint64_t)b->epoch);
        nl_rng_permutation(&r, b->perm, n);
    } else {
        for (int64_t i = 0; i < n; i++) b->perm[i] = i;
    }
    b->pos = 0;
}

nl_status nl_batcher_init(nl_batcher *b, const nl_dataset *ds, int64_t batch, int shuffle, uint64_t seed) {
    memset(b, 0, sizeof *b);
    if (!ds || !ds->x || !ds->y || ds->d < 1) return nl_set_error(NL_EINVAL, "batcher_init: empty or invalid dataset");
    if (batch < 1) return nl_set_error(NL_EINVAL, "batcher_init: batch size %lld must be >= 1", (long long)batch);
    if (batch > ds->n && ds->n > 0) batch = ds->n;
    b->ds = ds;
    b->batch = batch;
    b->shuffle = shuffle != 0;
    b->seed = seed;
    b->perm = malloc((size_t)(ds->n ? ds->n : 1) * sizeof *b->perm);
    b->xbuf = malloc((size_t)batch * (size_t)ds->d * sizeof *b->xbuf);
    b->ybuf = malloc((size_t)batch * sizeof *b->ybuf);
    if (!b->perm || !b->xbuf || !b->ybuf) {
        nl_batcher_free(b);
        return nl_set_error(NL_ENOMEM, "batcher_init: out of memory (batch %lld x %lld)", (long long)batch,
                            (long long)ds->d);
    }
    make_perm(b);
    return NL_OK;
}

void nl_batcher_set_drop_last(nl_batcher *b, int on) { b->drop_last = on != 0; }

int64_t nl_batcher_num_batches(const nl_batcher *b) {
    int64_t n = b->ds->n;
    return b->drop_last ? n / b->batch : (n + b->batch - 1) / b->batch;
}

int nl_batcher_next(nl_batcher *b, float **x_out, int32_t **y_out, int64_t *bs) {
    int64_t n = b->ds->n, left = n - b->pos;
    int64_t m = left < b->batch ? left : b->batch;
    if (m <= 0 || (b->drop_last && m < b->batch)) {
        if (bs) *bs = 0;
        return 0;
    }
    int64_t d = b->ds->d;
    for (int64_t i = 0; i < m; i++) {
        int64_t j = b->perm[b->pos + i];
        memcpy(b->xbuf + (size_t)i * (size_t)d, b->ds->x + (size_t)j * (size_t)d, (size_t)d * sizeof(float));
        b->ybuf[i] = b->ds->y[j];
    }
    b->pos += m;
    if (x_out) *x_out = b->xbuf;
    if (y_out) *y_out = b->ybuf;
    if (bs) *bs = m;
    return 1;
}

void nl_batcher_set_epoch(nl_batcher *b, int64_t epoch) {
    b->epoch = epoch;
    make_perm(b);
}

void nl_batcher_reset(nl_batcher *b) { nl_batcher_set_epoch(b, b->epoch + 1); }

void nl_batcher_free(nl_batcher *b) {
    if (!b) return;
    free(b->perm);
    free(b->xbuf);
    free(b->ybuf);
    memset(b, 0, sizeof *b);
}
