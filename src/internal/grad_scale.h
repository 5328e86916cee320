/* Internal: g[0 .. n) *= w on a flat gradient array of dtype dt (f32 scaled by (float)w), before the data-parallel
 * sums of src/dist (dist.c nl_dist_allreduce_grads, reducer.c buckets). Not installed. */
#ifndef NL_INTERNAL_GRAD_SCALE_H
#define NL_INTERNAL_GRAD_SCALE_H
#include "nnlab/tensor.h"

static inline void nl__grad_scale(nl_dtype dt, void *g, int64_t n, double w) {
    if (dt == NL_F32) {
        float *x = g; /* (n) */
        const float wf = (float)w;
        for (int64_t i = 0; i < n; i++) x[i] *= wf;
    } else {
        double *x = g; /* (n) */
        for (int64_t i = 0; i < n; i++) x[i] *= w;
    }
}
#endif
