/* BT^2 retrieval metrics: top-1 (CMC rank 1) and mAP of query embeddings against a gallery by cosine similarity,
 * dimensions truncated to the smaller of the two (the reference's cosine_distance_matrix), the query itself left
 * out when query and gallery are the same set (bt2.h). */
#include "bt2/bt2.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct scored {
    float s;
    int32_t i;
} scored;

/* the ranking: descending similarity, then ascending gallery index; before(a, b): a ranks above b */
static inline int before(float sa, int32_t ia, float sb, int32_t ib) { return sa > sb || (sa == sb && ia < ib); }

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    return before(x->s, x->i, y->s, y->i) ? -1 : before(y->s, y->i, x->s, x->i) ? 1 : 0;
}

/* out (n, d): the first d columns of x (n, dx), each row scaled to unit length; a zero row stays zero (similarity 0 to
 * everything, as F.normalize and the reference's 1 - x y^T give: a ReLU embedding can be all zeros); non-finite: error */
static nl_status unit_rows(const float *x, int64_t n, int64_t dx, int64_t d, float *out, const char *what) {
    for (int64_t r = 0; r < n; r++) {
        double s = 0;
        for (int64_t k = 0; k < d; k++) s += (double)x[r * dx + k] * x[r * dx + k];
        if (!isfinite(s))
            return nl_set_error(NL_EINVAL, "bt2 retrieval: %s row %lld is not finite over its first %lld dimensions", what, (long long)r,
                                (long long)d);
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int64_t k = 0; k < d; k++) out[r * d + k] = x[r * dx + k] * inv;
    }
    return NL_OK;
}

nl_status nl_bt2_retrieve(const float *q, int64_t nq, int64_t dq, const int32_t *qy, const float *g, int64_t ng, int64_t dg,
                          const int32_t *gy, int same_set, nl_bt2_retrieval *out) {
    memset(out, 0, sizeof *out);
    if (nq < 1 || ng < 1 || dq < 1 || dg < 1)
        return nl_set_error(NL_EINVAL, "bt2 retrieval: empty query set or gallery (%lld x %lld queries, %lld x %lld gallery)",
                            (long long)nq, (long long)dq, (long long)ng, (long long)dg);
    if (same_set && nq != ng)
        return nl_set_error(NL_EINVAL, "bt2 retrieval: query set and gallery are the same set but have %lld and %lld rows",
                            (long long)nq, (long long)ng);
    if (ng > INT32_MAX) return nl_set_error(NL_EINVAL, "bt2 retrieval: gallery too large");
    int max_c = 0;
    for (int64_t j = 0; j < ng; j++) {
        if (gy[j] < 0) return nl_set_error(NL_EINVAL, "bt2 retrieval: gallery label %d < 0 at %lld", gy[j], (long long)j);
        if (gy[j] > max_c) max_c = gy[j];
    }
    int64_t *count = calloc((size_t)max_c + 1, sizeof *count); /* (max_c + 1) gallery items per class */
    if (!count) return nl_set_error(NL_ENOMEM, "bt2 retrieval: out of memory");
    for (int64_t j = 0; j < ng; j++) count[gy[j]]++;
    for (int64_t i = 0; i < nq; i++) { /* the bad input first: every query must have a match */
        int32_t c = qy[i];
        int64_t have = c >= 0 && c <= max_c ? count[c] - (same_set && gy[i] == c) : 0;
        if (have < 1) {
            free(count);
            return nl_set_error(NL_EINVAL,
                                "bt2 retrieval: query %lld has class %d, which the gallery lacks%s (every query needs at "
                                "least one gallery item of its class)",
                                (long long)i, c, same_set ? " (apart from the query itself)" : "");
        }
    }
    int64_t d = dq < dg ? dq : dg, chunk = 256;
    float *qn = malloc((size_t)(nq * d) * sizeof *qn);        /* (nq, d) unit query rows */
    float *gn = malloc((size_t)(ng * d) * sizeof *gn);        /* (ng, d) unit gallery rows */
    float *sim = malloc((size_t)(chunk * ng) * sizeof *sim);  /* (chunk, ng) similarities */
    scored *rel = malloc((size_t)ng * sizeof *rel);           /* (<= ng) one query's relevant items, ranked */
    int64_t *above = malloc((size_t)(ng + 1) * sizeof *above); /* (R + 1) irrelevant items per gap of that ranking */
    nl_status st = NL_OK;
    if (!qn || !gn || !sim || !rel || !above) st = nl_set_error(NL_ENOMEM, "bt2 retrieval: out of memory");
    if (!st) st = unit_rows(q, nq, dq, d, qn, "query");
    if (!st) st = unit_rows(g, ng, dg, d, gn, "gallery");
    double top1 = 0, map = 0;
    for (int64_t i0 = 0; i0 < nq && !st; i0 += chunk) {
        int64_t m = nq - i0 < chunk ? nq - i0 : chunk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)ng, (int)d, 1.0f, qn + i0 * d, (int)d, gn, (int)d, 0.0f,
                    sim, (int)ng);
        for (int64_t r = 0; r < m; r++) {
            int64_t i = i0 + r, R = 0, best = -1;
            int32_t c = qy[i];
            const float *s = sim + r * ng;
            /* the relevant items, sorted; the best item overall (top-1) */
            for (int64_t j = 0; j < ng; j++) {
                if (same_set && j == i) continue;
                if (best < 0 || s[j] > s[best]) best = j; /* ties: the lower index stays */
                if (gy[j] == c) {
                    rel[R].s = s[j];
                    rel[R].i = (int32_t)j;
                    R++;
                }
            }
            qsort(rel, (size_t)R, sizeof *rel, cmp_scored);
            /* each irrelevant item ranks after `pos` relevant ones (binary search): above[pos] counts them */
            memset(above, 0, (size_t)(R + 1) * sizeof *above);
            for (int64_t j = 0; j < ng; j++) {
                if ((same_set && j == i) || gy[j] == c) continue;
                int64_t lo = 0, hi = R; /* first relevant item ranked after (s[j], j) */
                while (lo < hi) {
                    int64_t mid = (lo + hi) / 2;
                    if (before(rel[mid].s, rel[mid].i, s[j], (int32_t)j)) lo = mid + 1;
                    else hi = mid;
                }
                above[lo]++;
            }
            /* AP = (1/R) sum_t t / rank_t, rank_t = t + (irrelevant items ranked above the t-th relevant one) */
            double ap = 0;
            int64_t irr = 0;
            for (int64_t t = 0; t < R; t++) {
                irr += above[t];
                ap += (double)(t + 1) / (double)(t + 1 + irr);
            }
            top1 += gy[best] == c;
            map += ap / (double)R;
        }
    }
    if (!st) {
        out->top1 = top1 / (double)nq;
        out->map = map / (double)nq;
        out->queries = nq;
    }
    free(count);
    free(qn);
    free(gn);
    free(sim);
    free(rel);
    free(above);
    return st;
}
