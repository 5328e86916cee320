/* Riemann ("bar") distribution of PFNs with optional half-normal tails, the split-point sampler, and the normal
 * quantile function (include/pfn/pfn.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "pfn/pfn.h"

/* Phi^-1(0.75): a half-normal with scale s puts half its mass below 0.6745 s */
#define NL_PFN_Q75 0.6744897501960817

static double norm_cdf(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }

/* Acklam's rational approximation refined by one Halley step on erfc. */
double nl_pfn_norm_ppf(double p) {
    if (!(p > 0)) return -INFINITY;
    if (!(p < 1)) return INFINITY;
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    double x, q, r;
    if (p < 0.02425) {
        q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p > 1 - 0.02425) {
        q = sqrt(-2 * log1p(-p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else {
        q = p - 0.5;
        r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    /* Halley refinement (computes the residual in the tail that is accurate) */
    for (int it = 0; it < 2; it++) {
        double e = (x < 0 ? 0.5 * erfc(-x / sqrt(2.0)) - p : -(0.5 * erfc(x / sqrt(2.0)) - (1 - p)));
        double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
        x = x - u / (1 + x * u / 2);
    }
    return x;
}

nl_status nl_pfn_bar_init(nl_pfn_bar *b, int K, const double *borders, int full_support) {
    memset(b, 0, sizeof *b);
    if (K < 2) return nl_set_error(NL_EINVAL, "pfn bar: need at least 2 buckets, got %d", K);
    for (int k = 0; k <= K; k++)
        if (!isfinite(borders[k])) return nl_set_error(NL_ENONFINITE, "pfn bar: border %d is not finite", k);
    for (int k = 0; k < K; k++)
        if (!(borders[k + 1] > borders[k]))
            return nl_set_error(NL_EINVAL, "pfn bar: borders must increase strictly (b[%d] = %g, b[%d] = %g)", k, borders[k],
                                k + 1, borders[k + 1]);
    b->borders = malloc((size_t)(K + 1) * sizeof *b->borders);
    if (!b->borders) return nl_set_error(NL_ENOMEM, "pfn bar: out of memory");
    memcpy(b->borders, borders, (size_t)(K + 1) * sizeof *borders);
    b->K = K;
    b->full_support = full_support != 0;
    return NL_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

nl_status nl_pfn_bar_from_samples(nl_pfn_bar *b, int K, const double *ys, int64_t n, int full_support) {
    memset(b, 0, sizeof *b);
    if (K < 2 || n < K + 1) return nl_set_error(NL_EINVAL, "pfn bar: %lld samples are too few for %d buckets", (long long)n, K);
    double *s = malloc((size_t)n * sizeof *s), *bd = malloc((size_t)(K + 1) * sizeof *bd);
    if (!s || !bd) {
        free(s), free(bd);
        return nl_set_error(NL_ENOMEM, "pfn bar: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(ys[i])) {
            free(s), free(bd);
            return nl_set_error(NL_ENONFINITE, "pfn bar: sample %lld is not finite", (long long)i);
        }
        s[i] = ys[i];
    }
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    /* b_k = the k/K quantile (linear interpolation between order statistics); b_0 = min, b_K = max */
    for (int k = 0; k <= K; k++) {
        double pos = (double)k / K * (double)(n - 1);
        int64_t i = (int64_t)floor(pos);
        if (i >= n - 1) bd[k] = s[n - 1];
        else bd[k] = s[i] + (pos - (double)i) * (s[i + 1] - s[i]);
    }
    free(s);
    nl_status st = nl_pfn_bar_init(b, K, bd, full_support);
    free(bd);
    return st;
}

void nl_pfn_bar_free(nl_pfn_bar *b) {
    free(b->borders);
    memset(b, 0, sizeof *b);
}

int nl_pfn_bar_bucket(const nl_pfn_bar *b, double y) {
    const double *bd = b->borders;
    int K = b->K;
    if (!(y >= bd[0])) return 0; /* also NaN */
    if (y >= bd[K - 1]) return K - 1;
    int lo = 0, hi = K - 1; /* invariant: bd[lo] <= y < bd[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (y >= bd[mid]) lo = mid;
        else hi = mid;
    }
    return lo;
}

static double width(const nl_pfn_bar *b, int k) { return b->borders[k + 1] - b->borders[k]; }
static double tail_scale(const nl_pfn_bar *b, int k) { return width(b, k) / NL_PFN_Q75; }

/* -log of the density of y inside its bucket, given the bucket (does not include -log p_k). */
static double bucket_term(const nl_pfn_bar *b, int k, double y) {
    int K = b->K;
    if (b->full_support && (k == 0 || k == K - 1)) {
        double s = tail_scale(b, k);
        double z = k == 0 ? b->borders[1] - y : y - b->borders[K - 1];
        if (z < 0) z = 0;
        /* half-normal density 2 phi(z/s) / s */
        return -(log(2.0) - 0.5 * log(2 * M_PI) - log(s) - 0.5 * (z / s) * (z / s));
    }
    if (!b->full_support && (y < b->borders[0] || y > b->borders[K])) return INFINITY;
    return log(width(b, k));
}

double nl_pfn_bar_logpdf(const nl_pfn_bar *b, const double *p, double y) {
    if (isnan(y)) return NAN;
    int k = nl_pfn_bar_bucket(b, y);
    double t = bucket_term(b, k, y);
    if (isinf(t) || !(p[k] > 0)) return -INFINITY;
    return log(p[k]) - t;
}

double nl_pfn_bar_nll_logp(const nl_pfn_bar *b, const float *logp, double y) {
    if (isnan(y)) return NAN;
    int k = nl_pfn_bar_bucket(b, y);
    double t = bucket_term(b, k, y);
    return isinf(t) ? INFINITY : t - (double)logp[k];
}

double nl_pfn_bar_cdf(const nl_pfn_bar *b, const double *p, double y) {
    const double *bd = b->borders;
    int K = b->K;
    if (isnan(y)) return NAN;
    if (b->full_support) {
        if (y < bd[1]) return 2 * p[0] * norm_cdf(-(bd[1] - y) / tail_scale(b, 0));
        if (y >= bd[K - 1]) return 1 - 2 * p[K - 1] * norm_cdf(-(y - bd[K - 1]) / tail_scale(b, K - 1));
    } else {
        if (y <= bd[0]) return 0;
        if (y >= bd[K]) return 1;
    }
    int k = nl_pfn_bar_bucket(b, y);
    double c = 0;
    for (int j = 0; j < k; j++) c += p[j];
    return c + p[k] * (y - bd[k]) / width(b, k);
}

double nl_pfn_bar_quantile(const nl_pfn_bar *b, const double *p, double q) {
    const double *bd = b->borders;
    int K = b->K;
    if (!(q > 0 && q < 1)) return q == 0 ? (b->full_support ? -INFINITY : bd[0]) : q == 1 ? (b->full_support ? INFINITY : bd[K]) : NAN;
    if (b->full_support) {
        if (q < p[0]) return bd[1] + tail_scale(b, 0) * nl_pfn_norm_ppf(q / (2 * p[0]));
        if (q > 1 - p[K - 1]) return bd[K - 1] - tail_scale(b, K - 1) * nl_pfn_norm_ppf((1 - q) / (2 * p[K - 1]));
    }
    double c = 0;
    for (int k = 0; k < K; k++) {
        if (q <= c + p[k] && p[k] > 0) return bd[k] + (q - c) / p[k] * width(b, k);
        c += p[k];
    }
    return bd[b->full_support ? K - 1 : K];
}

double nl_pfn_bar_mean(const nl_pfn_bar *b, const double *p) {
    const double *bd = b->borders;
    int K = b->K;
    double m = 0;
    for (int k = 0; k < K; k++) {
        double mk = 0.5 * (bd[k] + bd[k + 1]);
        if (b->full_support && k == 0) mk = bd[1] - tail_scale(b, 0) * sqrt(2 / M_PI);
        if (b->full_support && k == K - 1) mk = bd[K - 1] + tail_scale(b, K - 1) * sqrt(2 / M_PI);
        m += p[k] * mk;
    }
    return m;
}

nl_var *nl_pfn_bar_nll(nl_ctx *c, const nl_pfn_bar *b, nl_var *logits, const double *y) {
    NL_REQUIRE(logits);
    if (logits->val.ndim != 2 || logits->val.shape[1] != b->K)
        return nl_op_fail(NL_ESHAPE, "pfn_bar_nll", "logits must be [N, K] with K the number of buckets", logits, NULL);
    int64_t N = logits->val.shape[0];
    if (N < 1) return nl_op_fail(NL_ESHAPE, "pfn_bar_nll", "no rows", logits, NULL);
    int32_t *ids = nl_scratch(c, (size_t)N * sizeof *ids);
    if (!ids) return NULL;
    double cst = 0;
    for (int64_t i = 0; i < N; i++) {
        if (!isfinite(y[i])) {
            nl_set_error(NL_ENONFINITE, "pfn_bar_nll: target %lld is not finite", (long long)i);
            return NULL;
        }
        int k = nl_pfn_bar_bucket(b, y[i]);
        ids[i] = k;
        cst += bucket_term(b, k, y[i]);
    }
    nl_var *ce = nl_cross_entropy(c, logits, ids, 0.0, -1);
    return nl_add_scalar(c, ce, cst / (double)N);
}

void nl_pfn_split_weights(int64_t T, double *w) {
    for (int64_t n = 0; n < T; n++) w[n] = 1.0 / (double)(T - n);
}

int64_t nl_pfn_sample_split(nl_rng *r, int64_t T) {
    if (T <= 1) return 0;
    /* inverse transform on the cumulative weights (T is small) */
    double tot = 0;
    for (int64_t n = 0; n < T; n++) tot += 1.0 / (double)(T - n);
    double u = nl_rng_uniform(r) * tot, c = 0;
    for (int64_t n = 0; n < T; n++) {
        c += 1.0 / (double)(T - n);
        if (u < c) return n;
    }
    return T - 1;
}
