/* methods/deeponet/grf.c — Gaussian random fields on a grid, not-a-knot cubic splines, and the operator data
 * (deeponet.h). All in float64; the data handed to training are rounded to float32 at the end. */
#include "deeponet/deeponet.h"
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_status nl_grf_init(nl_grf *g, int64_t n, double length_scale, double jitter) {
    memset(g, 0, sizeof *g);
    if (n < 4 || n > 20000) return nl_set_error(NL_EINVAL, "GRF: %lld grid points (expected 4..20000)", (long long)n);
    if (!(length_scale > 0) || !isfinite(length_scale))
        return nl_set_error(NL_EINVAL, "GRF: length scale %g (expected > 0)", length_scale);
    if (!(jitter > 0)) return nl_set_error(NL_EINVAL, "GRF: jitter %g (expected > 0)", jitter);
    double *L = malloc((size_t)(n * n) * sizeof *L); /* (n, n) */
    if (!L) return nl_set_error(NL_ENOMEM, "GRF: out of memory for a %lld x %lld kernel", (long long)n, (long long)n);
    const double h = 1.0 / (double)(n - 1), c = -0.5 / (length_scale * length_scale);
    for (; jitter <= 1e-4; jitter *= 10) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j <= i; j++) {
                double d = (double)(i - j) * h;
                L[i * n + j] = exp(c * d * d) + (i == j ? jitter : 0);
            }
        lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, L, (lapack_int)n);
        if (info == 0) break;
        if (info < 0) {
            free(L);
            return nl_set_error(NL_ELINALG, "GRF: dpotrf argument %d invalid", (int)-info);
        }
    }
    if (jitter > 1e-4) {
        free(L);
        return nl_set_error(NL_ELINALG, "GRF: K + jitter I not positive definite up to jitter 1e-4 (n %lld, l %g)",
                            (long long)n, length_scale);
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) L[i * n + j] = 0;
    g->n = n;
    g->length_scale = length_scale;
    g->jitter = jitter;
    g->L = L;
    return NL_OK;
}

void nl_grf_free(nl_grf *g) {
    if (!g) return;
    free(g->L);
    memset(g, 0, sizeof *g);
}

nl_status nl_grf_sample(const nl_grf *g, nl_rng *r, int64_t count, double *out) {
    if (!g || !g->L || count < 0 || (count && !out)) return nl_set_error(NL_EINVAL, "GRF sample: bad arguments");
    if (count == 0) return NL_OK;
    const int64_t n = g->n;
    /* Box-Muller, both outputs of each pair used (nl_rng_normal keeps one: half the log and trig calls here) */
    const int64_t tot = count * n;
    for (int64_t i = 0; i < tot; i += 2) {
        double u1 = nl_rng_uniform(r), u2 = nl_rng_uniform(r);
        double rad = sqrt(-2.0 * log(1.0 - u1)), th = 6.283185307179586 * u2; /* 1 - u1 in (0, 1] */
        out[i] = rad * cos(th);
        if (i + 1 < tot) out[i + 1] = rad * sin(th);
    }
    /* out (count, n) := Z L^T, i.e. each row z -> L z */
    cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)count, (int)n, 1.0, g->L, (int)n,
                out, (int)n);
    return NL_OK;
}

/* Not-a-knot: the third derivative is continuous at x_1 and x_{n-2}, so M_0 = 2 M_1 - M_2 and rows 1 and n-2 of
 * M_{i-1} + 4 M_i + M_{i+1} = 6 (y_{i+1} - 2 y_i + y_{i-1}) / h^2 become 6 M_1 = r_1 and 6 M_{n-2} = r_{n-2}; the
 * rows 2..n-3 are tridiagonal (1, 4, 1) in the rest (Thomas algorithm). */
void nl_spline_fit(int64_t n, const double *y, double *m, double *work) {
    const double h = 1.0 / (double)(n - 1), s = 6.0 / (h * h);
    for (int64_t i = 1; i < n - 1; i++) m[i] = s * (y[i + 1] - 2 * y[i] + y[i - 1]); /* r_i */
    m[1] /= 6;
    m[n - 2] /= 6;
    if (n > 4) {
        int64_t a = 2, b = n - 3; /* unknowns M_a..M_b */
        m[a] -= m[1];
        m[b] -= m[n - 2];
        if (a == b) {
            m[a] /= 4;
        } else {
            double *cp = work; /* (n) modified super-diagonal */
            cp[a] = 1.0 / 4;
            m[a] /= 4;
            for (int64_t i = a + 1; i <= b; i++) {
                double den = 4 - cp[i - 1];
                cp[i] = 1.0 / den;
                m[i] = (m[i] - m[i - 1]) / den;
            }
            for (int64_t i = b - 1; i >= a; i--) m[i] -= cp[i] * m[i + 1];
        }
    }
    m[0] = 2 * m[1] - m[2];
    m[n - 1] = 2 * m[n - 2] - m[n - 3];
}

double nl_spline_eval(int64_t n, const double *y, const double *m, double t) {
    const double h = 1.0 / (double)(n - 1);
    double q = t / h;
    int64_t i = (int64_t)floor(q);
    if (i < 0) i = 0;
    if (i > n - 2) i = n - 2;
    double a = (double)(i + 1) - q, b = q - (double)i; /* (x_{i+1} - t) / h, (t - x_i) / h */
    double h2 = h * h / 6;
    return a * y[i] + b * y[i + 1] + h2 * ((a * a * a - a) * m[i] + (b * b * b - b) * m[i + 1]);
}

const char *nl_deeponet_op_name(nl_deeponet_op op) { return op == NL_DON_ODE ? "ode" : "antiderivative"; }

nl_status nl_deeponet_op_parse(const char *s, nl_deeponet_op *op) {
    if (s && (!strcmp(s, "antiderivative") || !strcmp(s, "anti"))) *op = NL_DON_ANTIDERIV;
    else if (s && (!strcmp(s, "ode") || !strcmp(s, "nonlinear-ode"))) *op = NL_DON_ODE;
    else return nl_set_error(NL_EINVAL, "operator '%s' (expected antiderivative or ode)", s ? s : "(null)");
    return NL_OK;
}

typedef struct ode_ud {
    int64_t n;        /* grid points */
    const double *y;  /* (n) the function on the grid */
    const double *m;  /* (n) its spline's second derivatives */
    int nonlinear;    /* 0: ds/dx = u; 1: ds/dx = -s^2 + u */
} ode_ud;

static void ode_rhs(double t, const double *s, double *ds, void *p) {
    const ode_ud *d = p;
    double u = nl_spline_eval(d->n, d->y, d->m, t);
    ds[0] = d->nonlinear ? -s[0] * s[0] + u : u;
}

nl_status nl_deeponet_solve(nl_deeponet_op op, int64_t n, const double *u, const double *m, double y, const nl_ode_opts *ode,
                            double *s, int64_t *steps) {
    if (n < 4 || !u || !m || !s || !(y >= 0)) return nl_set_error(NL_EINVAL, "deeponet solve: bad arguments (n %lld, y %g)", (long long)n, y);
    ode_ud ud = {n, u, m, op == NL_DON_ODE};
    nl_ode_stats os;
    *s = 0;
    nl_status st = nl_ode_solve(ode_rhs, &ud, 1, 0, y, s, ode, &os);
    if (steps) *steps = os.steps;
    return st;
}

void nl_deeponet_data_free(nl_deeponet_data *d) {
    if (!d) return;
    free(d->u);
    free(d->y);
    for (int k = 0; k < NL_DON_OP_COUNT; k++) free(d->s[k]);
    memset(d, 0, sizeof *d);
}

#define DON_CHUNK 512

nl_status nl_deeponet_data_make(nl_deeponet_data *d, const nl_grf *g, int64_t n, int64_t m, uint64_t seed,
                                uint64_t stream, const nl_ode_opts *ode) {
    memset(d, 0, sizeof *d);
    if (m < 1) return nl_set_error(NL_EINVAL, "deeponet: sensor count %lld (expected >= 1)", (long long)m);
    if (n < 1) return nl_set_error(NL_EINVAL, "deeponet: %lld triples (expected >= 1)", (long long)n);
    if (!g || !g->L) return nl_set_error(NL_EINVAL, "deeponet: no GRF");
    const int64_t N = g->n;
    nl_ode_opts oo = ode ? *ode : nl_ode_defaults();
    d->n = n;
    d->m = m;
    d->u = malloc((size_t)(n * m) * sizeof *d->u);
    d->y = malloc((size_t)n * sizeof *d->y);
    for (int k = 0; k < NL_DON_OP_COUNT; k++) d->s[k] = malloc((size_t)n * sizeof *d->s[k]);
    double *f = malloc((size_t)(DON_CHUNK * N) * sizeof *f); /* (chunk, N) GRF samples */
    double *mm = malloc((size_t)(2 * N) * sizeof *mm);       /* (N) spline second derivatives, (N) scratch */
    int ok = d->u && d->y && f && mm;
    for (int k = 0; k < NL_DON_OP_COUNT; k++) ok = ok && d->s[k];
    nl_status st = ok ? NL_OK : nl_set_error(NL_ENOMEM, "deeponet: out of memory for %lld triples", (long long)n);
    nl_rng r;
    nl_rng_init(&r, seed, stream);
    for (int64_t c0 = 0; c0 < n && !st; c0 += DON_CHUNK) {
        int64_t cn = n - c0 < DON_CHUNK ? n - c0 : DON_CHUNK;
        if ((st = nl_grf_sample(g, &r, cn, f))) break;
        for (int64_t i = 0; i < cn && !st; i++) {
            double *fi = f + i * N;
            float *ui = d->u + (c0 + i) * m;
            double sk[NL_DON_OP_COUNT], yq = 0;
            int64_t steps = 0;
            for (int tries = 0;; tries++) {
                /* the nonlinear ODE blows up in finite x for some strongly negative u (s -> -inf before y): such a
                 * function is replaced by a fresh draw (counted in d->rejected) */
                nl_spline_fit(N, fi, mm, mm + N);
                yq = nl_rng_uniform(&r);
                st = NL_OK;
                steps = 0;
                for (int k = 0; k < NL_DON_OP_COUNT && !st; k++) {
                    int64_t ns = 0;
                    st = nl_deeponet_solve((nl_deeponet_op)k, N, fi, mm, yq, &oo, &sk[k], &ns);
                    steps += ns;
                    if (!st && !(fabs(sk[k]) < 1e6)) st = nl_set_error(NL_ENONFINITE, "deeponet: |s| >= 1e6");
                }
                if (!st) break;
                if (st == NL_EINVAL || tries >= 100) break;
                nl_clear_error();
                d->rejected++;
                if ((st = nl_grf_sample(g, &r, 1, fi))) break;
            }
            if (st) break;
            for (int64_t j = 0; j < m; j++) ui[j] = (float)nl_spline_eval(N, fi, mm, m > 1 ? (double)j / (double)(m - 1) : 0);
            d->y[c0 + i] = (float)yq;
            for (int k = 0; k < NL_DON_OP_COUNT; k++) d->s[k][c0 + i] = (float)sk[k];
            d->ode_steps += steps;
        }
    }
    free(f);
    free(mm);
    if (st) nl_deeponet_data_free(d);
    return st;
}

nl_status nl_deeponet_data_shuffle_u(nl_deeponet_data *d, uint64_t seed) {
    int64_t *perm = malloc((size_t)d->n * sizeof *perm);   /* (n) */
    float *u = malloc((size_t)(d->n * d->m) * sizeof *u); /* (n, m) */
    if (!perm || !u) {
        free(perm);
        free(u);
        return nl_set_error(NL_ENOMEM, "deeponet: out of memory shuffling %lld rows", (long long)d->n);
    }
    nl_rng r;
    nl_rng_init(&r, seed, 77);
    nl_rng_permutation(&r, perm, d->n);
    for (int64_t i = 0; i < d->n; i++) memcpy(u + i * d->m, d->u + perm[i] * d->m, (size_t)d->m * sizeof *u);
    free(d->u);
    d->u = u;
    free(perm);
    return NL_OK;
}
