/* Monotone DBM: parametrisation, prox of the softmax-entropy activation, Anderson-accelerated forward-backward
 * splitting with clamping, implicit backward (methods/mdbm/README.md). */
#include "mdbm/mdbm.h"
#include "nnlab/ops.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void nl_mdbm_free(nl_mdbm *m) {
    if (!m) return;
    free(m->goff), free(m->gsize), free(m->w), free(m->b), free(m->v), free(m->s), free(m->lam), free(m->evec);
    free(m->bd), free(m->bdoff);
    memset(m, 0, sizeof *m);
}

nl_status nl_mdbm_init(nl_mdbm *m, const int *gsizes, int64_t n_groups, int64_t r, double margin, uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (n_groups < 1 || r < 1 || !(margin > 0 && margin < 1))
        return nl_set_error(NL_EINVAL, "mdbm: need >= 1 group, rank >= 1 and margin in (0, 1)");
    int64_t n = 0, nb = 0;
    for (int64_t g = 0; g < n_groups; g++) {
        if (gsizes[g] < 2 || gsizes[g] > NL_MDBM_MAX_GROUP)
            return nl_set_error(NL_EINVAL, "mdbm: group size %d outside [2, %d]", gsizes[g], NL_MDBM_MAX_GROUP);
        n += gsizes[g], nb += (int64_t)gsizes[g] * gsizes[g];
    }
    m->n = n, m->n_groups = n_groups, m->r = r, m->margin = margin, m->project = 1;
    m->goff = malloc(sizeof(int64_t) * (size_t)(n_groups + 1));
    m->gsize = malloc(sizeof(int) * (size_t)n_groups);
    m->w = malloc(sizeof(float) * (size_t)(r * n));
    m->v = malloc(sizeof(float) * (size_t)(r * n));
    m->b = calloc((size_t)n, sizeof(float));
    m->s = malloc(sizeof(double) * (size_t)n_groups);
    m->lam = malloc(sizeof(double) * (size_t)n_groups);
    m->evec = malloc(sizeof(double) * (size_t)n);
    m->bd = malloc(sizeof(float) * (size_t)nb);
    m->bdoff = malloc(sizeof(int64_t) * (size_t)n_groups);
    if (!m->goff || !m->gsize || !m->w || !m->v || !m->b || !m->s || !m->lam || !m->evec || !m->bd || !m->bdoff) {
        nl_mdbm_free(m);
        return nl_set_error(NL_ENOMEM, "mdbm: out of memory");
    }
    m->goff[0] = 0, nb = 0;
    for (int64_t g = 0; g < n_groups; g++) {
        m->gsize[g] = gsizes[g], m->goff[g + 1] = m->goff[g] + gsizes[g];
        m->bdoff[g] = nb, nb += (int64_t)gsizes[g] * gsizes[g];
    }
    nl_rng rng;
    nl_rng_init(&rng, seed, 0x4DB3ULL);
    const double sd = 1.0 / sqrt((double)r); /* blocks W_g^T W_g of norm about 1: the scaling is active from the start */ /* small: the model starts near the independent (bias-only) one */
    for (int64_t i = 0; i < r * n; i++) m->w[i] = (float)(sd * nl_rng_normal(&rng));
    return nl_mdbm_refresh(m);
}

nl_status nl_mdbm_refresh(nl_mdbm *m) {
    const int64_t r = m->r, n = m->n;
    for (int64_t g = 0; g < m->n_groups; g++) {
        const int k = m->gsize[g];
        const int64_t o = m->goff[g];
        double G[NL_MDBM_MAX_GROUP * NL_MDBM_MAX_GROUP] = {0}, e[NL_MDBM_MAX_GROUP], t[NL_MDBM_MAX_GROUP];
        for (int64_t row = 0; row < r; row++) {
            const float *wr = m->w + row * n + o;
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) G[i * k + j] += (double)wr[i] * wr[j];
        }
        /* top eigenpair of the k x k Gram block W_g^T W_g by power iteration */
        for (int i = 0; i < k; i++) e[i] = 1.0 + 0.1 * i;
        double lam = 0;
        for (int it = 0; it < 300; it++) {
            double nn = 0;
            for (int i = 0; i < k; i++) {
                t[i] = 0;
                for (int j = 0; j < k; j++) t[i] += G[i * k + j] * e[j];
                nn += t[i] * t[i];
            }
            nn = sqrt(nn);
            if (!(nn > 0)) break;
            lam = nn;
            for (int i = 0; i < k; i++) e[i] = t[i] / nn;
        }
        m->lam[g] = lam;
        for (int i = 0; i < k; i++) m->evec[o + i] = e[i];
        const double s = m->project && lam > 1 - m->margin ? (1 - m->margin) / lam : 1.0;
        m->s[g] = s;
        const float sq = (float)sqrt(s);
        for (int64_t row = 0; row < r; row++)
            for (int i = 0; i < k; i++) m->v[row * n + o + i] = sq * m->w[row * n + o + i];
        float *bd = m->bd + m->bdoff[g];
        for (int i = 0; i < k * k; i++) bd[i] = (float)(s * G[i]);
    }
    return NL_OK;
}

/* x_i = exp(g_i) with (1 - a) e^g + a g = c, by Newton from the right (the function is convex and increasing) */
static double prox_elem(double c, double a) {
    double g = c / a;
    if (c >= 1 - a) {
        double g2 = log(c / (1 - a));
        if (g2 < g) g = g2;
    }
    for (int it = 0; it < 100; it++) {
        const double e = exp(g), f = (1 - a) * e + a * g - c, step = f / ((1 - a) * e + a);
        g -= step;
        if (fabs(step) < 1e-13 * (1 + fabs(g))) break;
    }
    return exp(g);
}

/* binary group: u = logit x_1 solves (1-a)(2 sigma(u) - 1) + a u = d, safeguarded Newton from u0 */
static double prox2(double d, double a, double u0) {
    double lo = (d - (1 - a)) / a, hi = (d + (1 - a)) / a, u = u0;
    if (!(u > lo && u < hi)) u = d / (1 - a + 2 * a);
    if (!(u > lo && u < hi)) u = 0.5 * (lo + hi);
    for (int it = 0; it < 100; it++) {
        const double sg = 1 / (1 + exp(-u)), h = (1 - a) * (2 * sg - 1) + a * u - d;
        if (h > 0) hi = u; else lo = u;
        double un = u - h / (2 * (1 - a) * sg * (1 - sg) + a);
        if (!(un > lo && un < hi)) un = 0.5 * (lo + hi);
        const double du = fabs(un - u);
        u = un;
        if (du < 1e-10 * (1 + fabs(u)) || hi - lo < 1e-12 * (1 + fabs(u))) break;
    }
    return u;
}

void nl_mdbm_prox_warm(const double *y, int k, double a, double *x) {
    if (k == 2) {
        double u0 = NAN;
        if (x[1] > 1e-12 && x[1] < 1 - 1e-12) u0 = log(x[1] / (1 - x[1]));
        const double u = prox2(y[1] - y[0], a, u0);
        x[1] = 1 / (1 + exp(-u)), x[0] = 1 - x[1];
        return;
    }
    nl_mdbm_prox(y, k, a, x);
}

void nl_mdbm_prox(const double *y, int k, double a, double *x) {
    if (k == 2) {
        const double u = prox2(y[1] - y[0], a, NAN);
        x[1] = 1 / (1 + exp(-u)), x[0] = 1 / (1 + exp(u));
        return;
    }
    double ym = y[0];
    for (int i = 1; i < k; i++) ym = y[i] > ym ? y[i] : ym;
    /* sum_i x_i(nu) is increasing in nu; bracket: nu_hi gives x_max = 1, nu_lo gives x_max = 1/k */
    double hi = 1 - ym, lo = (1 - a) / k - a * log((double)k) - ym + a, nu = 0.5 * (lo + hi);
    for (int it = 0; it < 200; it++) {
        double S = 0, dS = 0;
        for (int i = 0; i < k; i++) {
            x[i] = prox_elem(y[i] + nu - a, a);
            S += x[i], dS += x[i] / ((1 - a) * x[i] + a);
        }
        if (S > 1) hi = nu; else lo = nu;
        if (fabs(S - 1) < 1e-13) break;
        double nn = nu - (S - 1) / dS;
        if (!(nn > lo && nn < hi)) nn = 0.5 * (lo + hi);
        if (hi - lo < 1e-15) break;
        nu = nn;
    }
    double S = 0;
    for (int i = 0; i < k; i++) S += x[i];
    for (int i = 0; i < k; i++) x[i] /= S;
}

/* A q without the bias: -(q V^T) V + blkdiag(V_g^T V_g) q_g; z (B, n); tmp (B, r) */
void nl_mdbm_apply_a(const nl_mdbm *m, int64_t B, const float *q, float *z, float *tmp) {
    const int64_t n = m->n, r = m->r;
    nl_gemm(NL_F32, 0, 1, B, r, n, 1.0, q, n, m->v, n, 0.0, tmp, r);
    nl_gemm(NL_F32, 0, 0, B, n, r, -1.0, tmp, r, m->v, n, 0.0, z, n);
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t g = 0; g < m->n_groups; g++) {
            const int k = m->gsize[g];
            const int64_t o = bi * n + m->goff[g];
            const float *bd = m->bd + m->bdoff[g];
            for (int i = 0; i < k; i++) {
                float acc = 0;
                for (int j = 0; j < k; j++) acc += bd[i * k + j] * q[o + j];
                z[o + i] += acc;
            }
        }
}

void nl_mdbm_field(const nl_mdbm *m, int64_t B, const float *q, float *z) {
    float *tmp = malloc(sizeof(float) * (size_t)(B * m->r));
    if (!tmp) return;
    nl_mdbm_apply_a(m, B, q, z, tmp);
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t i = 0; i < m->n; i++) z[bi * m->n + i] += m->b[i];
    free(tmp);
}

nl_mdbm_solve_opts nl_mdbm_solve_defaults(void) {
    nl_mdbm_solve_opts o = {0.125, 3, 50, 1e-3, 5, 1e-4};
    return o;
}
