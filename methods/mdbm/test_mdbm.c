/* Tests of the mdbm method: the prox against brute-force minimisation, the unique fixed point from random starts
 * (and that it satisfies q = softmax(A q + b) with clamping), the monotone bound, and the implicit gradient against
 * central finite differences on a tiny model with the projection active. */
#include "mdbm/mdbm.h"
#include "nnlab/rng.h"
#include "nltest.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double prox_obj(const double *x, const double *y, int k, double a) {
    double s = 0;
    for (int i = 0; i < k; i++) s += 0.5 * (x[i] - y[i]) * (x[i] - y[i]) + a * (x[i] > 0 ? x[i] * log(x[i]) : 0) - a * 0.5 * x[i] * x[i];
    return s;
}

static void test_prox_brute(void) {
    nl_rng rng;
    nl_rng_init(&rng, 7, 0);
    for (int trial = 0; trial < 40; trial++) {
        const int k = trial % 2 ? 3 : 2;
        const double a = trial < 20 ? 0.125 : 0.5 + 0.4 * nl_rng_uniform(&rng);
        double y[3], x[3], best[3] = {0}, bo = INFINITY;
        for (int i = 0; i < k; i++) y[i] = 2 * nl_rng_normal(&rng);
        nl_mdbm_prox(y, k, a, x);
        const int N = k == 2 ? 200000 : 1000;
        for (int i = 0; i <= N; i++)
            for (int j = 0; j <= (k == 2 ? 0 : N - i); j++) {
                double t[3] = {(double)i / N, k == 2 ? 1 - (double)i / N : (double)j / N, 0};
                if (k == 3) t[2] = 1 - t[0] - t[1];
                if (k == 3 && t[2] < 0) t[2] = 0;
                const double ob = prox_obj(t, y, k, a);
                if (ob < bo) bo = ob, memcpy(best, t, sizeof best);
            }
        double sum = 0;
        for (int i = 0; i < k; i++) sum += x[i];
        NLT_NEAR(sum, 1.0, 1e-12);
        NLT_CHECK(prox_obj(x, y, k, a) <= bo + 1e-12, "trial %d: prox objective %.15g > grid %.15g", trial, prox_obj(x, y, k, a), bo);
        for (int i = 0; i < k; i++) NLT_NEAR(x[i], best[i], k == 2 ? 1e-4 : 3e-3);
    }
}

/* groups: 8 binary, 3 of size 3, one of size 4 */
static void tiny(nl_mdbm *m, double wscale, uint64_t seed) {
    int gs[12];
    for (int i = 0; i < 8; i++) gs[i] = 2;
    gs[8] = gs[9] = gs[10] = 3, gs[11] = 4;
    NLT_OK(nl_mdbm_init(m, gs, 12, 6, 0.01, seed));
    nl_rng rng;
    nl_rng_init(&rng, seed, 9);
    for (int64_t i = 0; i < m->r * m->n; i++) m->w[i] *= (float)wscale;
    for (int64_t i = 0; i < m->n; i++) m->b[i] = (float)nl_rng_normal(&rng);
    NLT_OK(nl_mdbm_refresh(m));
}

static void random_start(const nl_mdbm *m, int64_t B, const uint8_t *clamp, float *q, nl_rng *rng) {
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t g = 0; g < m->n_groups; g++) {
            const int64_t o = bi * m->n + m->goff[g];
            double s = 0;
            if (clamp[bi * m->n_groups + g]) continue;
            for (int i = 0; i < m->gsize[g]; i++) q[o + i] = (float)nl_rng_uniform(rng) + 1e-3f, s += q[o + i];
            for (int i = 0; i < m->gsize[g]; i++) q[o + i] /= (float)s;
        }
}

static void clamp_setup(const nl_mdbm *m, int64_t B, uint8_t *clamp, float *q) {
    memset(clamp, 0, (size_t)(B * m->n_groups));
    for (int64_t bi = 0; bi < B; bi++)
        for (int g = 0; g < 3; g++) { /* clamp binary groups 0..2 of each sample to a pattern */
            const int on = (int)((bi + g) % 2);
            clamp[bi * m->n_groups + g] = 1;
            q[bi * m->n + m->goff[g]] = (float)(1 - on), q[bi * m->n + m->goff[g] + 1] = (float)on;
        }
}

static void test_unique_fixed_point(void) {
    nl_mdbm m;
    tiny(&m, 30.0, 3);
    int scaled = 0;
    for (int64_t g = 0; g < m.n_groups; g++) scaled += m.s[g] < 1;
    NLT_CHECK(scaled > 0, "the projection should be active at this scale");
    const int64_t B = 4, n = m.n;
    uint8_t clamp[4 * 12], conv[4];
    float q[5][4 * 40], z[4 * 40];
    nl_rng rng;
    nl_rng_init(&rng, 11, 0);
    nl_mdbm_solve_opts o = nl_mdbm_solve_defaults();
    o.tol = 1e-6, o.max_iter = 500;
    for (int st = 0; st < 5; st++) {
        clamp_setup(&m, B, clamp, q[st]);
        random_start(&m, B, clamp, q[st], &rng);
        NLT_OK(nl_mdbm_forward(&m, B, clamp, q[st], &o, conv, NULL, NULL));
        for (int bi = 0; bi < B; bi++) NLT_CHECK(conv[bi], "start %d sample %d did not converge", st, bi);
        for (int64_t i = 0; i < B * n; i++) NLT_NEAR(q[st][i], q[0][i], 1e-3);
    }
    nl_mdbm_field(&m, B, q[0], z);
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t g = 0; g < m.n_groups; g++) {
            if (clamp[bi * m.n_groups + g]) continue;
            const int64_t o0 = bi * n + m.goff[g];
            double mx = -1e30, s = 0;
            for (int i = 0; i < m.gsize[g]; i++) mx = z[o0 + i] > mx ? z[o0 + i] : mx;
            for (int i = 0; i < m.gsize[g]; i++) s += exp(z[o0 + i] - mx);
            for (int i = 0; i < m.gsize[g]; i++) NLT_NEAR(q[0][o0 + i], exp(z[o0 + i] - mx) / s, 1e-4);
        }
    nl_mdbm_free(&m);
}

static double loss_at(const nl_mdbm *m, const uint8_t *clamp, const float *q0, const float *c, float *q) {
    nl_mdbm_solve_opts o = nl_mdbm_solve_defaults();
    o.tol = 1e-7, o.max_iter = 2000;
    uint8_t conv[2];
    memcpy(q, q0, sizeof(float) * (size_t)(2 * m->n));
    nl_mdbm_forward(m, 2, clamp, q, &o, conv, NULL, NULL);
    double L = 0;
    for (int64_t i = 0; i < 2 * m->n; i++) L += (double)c[i] * q[i];
    return L;
}

static void test_implicit_gradient(void) {
    nl_mdbm m;
    tiny(&m, 15.0, 5);
    const int64_t n = m.n, B = 2;
    uint8_t clamp[2 * 12], conv[2];
    float q0[2 * 40], q[2 * 40], c[2 * 40];
    float *gw = calloc((size_t)(m.r * n), sizeof(float)), gb[40] = {0};
    nl_rng rng;
    nl_rng_init(&rng, 13, 0);
    clamp_setup(&m, B, clamp, q0);
    random_start(&m, B, clamp, q0, &rng);
    for (int64_t i = 0; i < B * n; i++) c[i] = (float)nl_rng_normal(&rng);
    loss_at(&m, clamp, q0, c, q);
    nl_mdbm_solve_opts o = nl_mdbm_solve_defaults();
    o.tol = 1e-7, o.max_iter = 2000;
    NLT_OK(nl_mdbm_backward(&m, B, clamp, q, c, o.alpha, &o, gw, gb, conv));
    NLT_CHECK(conv[0] && conv[1], "adjoint did not converge");
    double worst = 0;
    for (int t = 0; t < 24; t++) {
        const int onb = t % 3 == 0;
        const int64_t idx = onb ? nl_rng_below(&rng, n) : nl_rng_below(&rng, m.r * n);
        float *p = onb ? &m.b[idx] : &m.w[idx];
        const float keep = *p, h = 2e-3f;
        *p = keep + h;
        nl_mdbm_refresh(&m);
        const double lp = loss_at(&m, clamp, q0, c, q);
        *p = keep - h;
        nl_mdbm_refresh(&m);
        const double lm = loss_at(&m, clamp, q0, c, q);
        *p = keep;
        nl_mdbm_refresh(&m);
        const double fd = (lp - lm) / (2 * h), an = onb ? gb[idx] : gw[idx];
        const double err = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-2);
        if (err > worst) worst = err;
        NLT_CHECK(err < 2e-2, "%s[%lld]: implicit %.6g vs finite difference %.6g", onb ? "b" : "W", (long long)idx, an, fd);
    }
    int scaled = 0;
    for (int64_t g = 0; g < m.n_groups; g++) scaled += m.s[g] < 1;
    NLT_CHECK(scaled > 0, "the gradient check should cover the scaled groups");
    free(gw);
    nl_mdbm_free(&m);
}

/* the readout's composition (train.c): L = sum c . z with z = A q* + b: direct part (nl_mdbm_accum_grad with v = c)
 * plus the implicit part (nl_mdbm_backward with dL/dq* = A c) */
static double field_loss(const nl_mdbm *m, const uint8_t *clamp, const float *q0, const float *c, float *q) {
    float z[2 * 40];
    loss_at(m, clamp, q0, c, q);
    nl_mdbm_field(m, 2, q, z);
    double L = 0;
    for (int64_t i = 0; i < 2 * m->n; i++) L += (double)c[i] * z[i];
    return L;
}

static void test_readout_gradient(void) {
    nl_mdbm m;
    tiny(&m, 15.0, 8);
    const int64_t n = m.n, B = 2;
    uint8_t clamp[2 * 12], conv[2];
    float q0[2 * 40], q[2 * 40], c[2 * 40], ac[2 * 40], tmp[2 * 8];
    float *gw = calloc((size_t)(m.r * n), sizeof(float)), gb[40] = {0};
    nl_rng rng;
    nl_rng_init(&rng, 17, 0);
    clamp_setup(&m, B, clamp, q0);
    random_start(&m, B, clamp, q0, &rng);
    for (int64_t i = 0; i < B * n; i++) c[i] = (float)nl_rng_normal(&rng);
    field_loss(&m, clamp, q0, c, q);
    nl_mdbm_solve_opts o = nl_mdbm_solve_defaults();
    o.tol = 1e-7, o.max_iter = 2000;
    nl_mdbm_apply_a(&m, B, c, ac, tmp);
    NLT_OK(nl_mdbm_accum_grad(&m, B, q, c, gw, gb));
    NLT_OK(nl_mdbm_backward(&m, B, clamp, q, ac, o.alpha, &o, gw, gb, conv));
    for (int t = 0; t < 16; t++) {
        const int onb = t % 3 == 0;
        const int64_t idx = onb ? nl_rng_below(&rng, n) : nl_rng_below(&rng, m.r * n);
        float *p = onb ? &m.b[idx] : &m.w[idx];
        const float keep = *p, h = 2e-3f;
        *p = keep + h;
        nl_mdbm_refresh(&m);
        const double lp = field_loss(&m, clamp, q0, c, q);
        *p = keep - h;
        nl_mdbm_refresh(&m);
        const double lm = field_loss(&m, clamp, q0, c, q);
        *p = keep;
        nl_mdbm_refresh(&m);
        const double fd = (lp - lm) / (2 * h), an = onb ? gb[idx] : gw[idx];
        NLT_CHECK(fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-2) < 2e-2, "%s[%lld]: %.6g vs finite difference %.6g",
                  onb ? "b" : "W", (long long)idx, an, fd);
    }
    free(gw);
    nl_mdbm_free(&m);
}

static void test_bad_input(void) {
    nl_mdbm m;
    int gs[2] = {2, 1};
    NLT_CHECK(nl_mdbm_init(&m, gs, 2, 4, 0.01, 1) != NL_OK, "a group of size 1 must be refused");
    int gs2[2] = {2, 2};
    NLT_CHECK(nl_mdbm_init(&m, gs2, 2, 4, 0.0, 1) != NL_OK, "margin 0 must be refused");
}

int main(void) {
    nl_set_num_threads(1);
    NLT_RUN(test_prox_brute);
    NLT_RUN(test_unique_fixed_point);
    NLT_RUN(test_implicit_gradient);
    NLT_RUN(test_readout_gradient);
    NLT_RUN(test_bad_input);
    return nlt_finish();
}
