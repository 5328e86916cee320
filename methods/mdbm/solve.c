/* Monotone DBM: the Anderson-accelerated fixed-point solver shared by the forward pass (the mean-field fixed point)
 * and the backward pass (the adjoint), and the implicit gradient (methods/mdbm/README.md). */
#include "mdbm/mdbm.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct op_ctx {
    const nl_mdbm *m;
    const uint8_t *clamp; /* (B, n_groups) */
    const float *q;       /* (B, n) fixed point (backward only) */
    const float *g;       /* (B, n) dL/dq (backward only) */
    double alpha;
    float *tmp;           /* (B, r) */
    float *u;             /* (B, n) scratch */
} op_ctx;

/* forward operator f = prox((1 - a) x + a (A x + b)) on free groups, clamped groups copied */
static void op_forward(op_ctx *c, int64_t B, const float *x, float *f, const uint8_t *active) {
    const nl_mdbm *m = c->m;
    const int64_t n = m->n;
    const double a = c->alpha;
    nl_mdbm_apply_a(m, B, x, f, c->tmp);
    double y[NL_MDBM_MAX_GROUP], p[NL_MDBM_MAX_GROUP];
    for (int64_t bi = 0; bi < B; bi++) {
        if (!active[bi]) continue;
        for (int64_t g = 0; g < m->n_groups; g++) {
            const int64_t o = bi * n + m->goff[g];
            const int k = m->gsize[g];
            if (c->clamp[bi * m->n_groups + g]) {
                for (int i = 0; i < k; i++) f[o + i] = x[o + i];
                continue;
            }
            for (int i = 0; i < k; i++) y[i] = (1 - a) * x[o + i] + a * ((double)f[o + i] + m->b[m->goff[g] + i]), p[i] = x[o + i];
            nl_mdbm_prox_warm(y, k, a, p);
            for (int i = 0; i < k; i++) f[o + i] = (float)p[i];
        }
    }
}

/* u = J_P w per free group (J_P = diag(c) - c c^T / sum c, c_i = q_i / ((1 - a) q_i + a)), 0 on clamped groups */
static void jprox(const op_ctx *c, int64_t B, const float *w, float *u) {
    const nl_mdbm *m = c->m;
    const int64_t n = m->n;
    const double a = c->alpha;
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t g = 0; g < m->n_groups; g++) {
            const int64_t o = bi * n + m->goff[g];
            const int k = m->gsize[g];
            if (c->clamp[bi * m->n_groups + g]) {
                for (int i = 0; i < k; i++) u[o + i] = 0;
                continue;
            }
            double cs[NL_MDBM_MAX_GROUP], S = 0, cw = 0;
            for (int i = 0; i < k; i++) {
                cs[i] = c->q[o + i] / ((1 - a) * c->q[o + i] + a);
                S += cs[i], cw += cs[i] * w[o + i];
            }
            for (int i = 0; i < k; i++) u[o + i] = (float)(cs[i] * w[o + i] - cs[i] * cw / S);
        }
}

/* adjoint operator f = ((1 - a) I + a A) J_P w + g */
static void op_adjoint(op_ctx *c, int64_t B, const float *w, float *f, const uint8_t *active) {
    (void)active;
    const int64_t n = c->m->n;
    const double a = c->alpha;
    jprox(c, B, w, c->u);
    nl_mdbm_apply_a(c->m, B, c->u, f, c->tmp);
    for (int64_t i = 0; i < B * n; i++) f[i] = (float)((1 - a) * c->u[i] + a * f[i] + c->g[i]);
}

typedef void (*op_fn)(op_ctx *, int64_t, const float *, float *, const uint8_t *);

/* Anderson acceleration (type II, history m, ridge lambda), per sample, over rounds of halved alpha. x (B, n) in/out.
 * adjoint: the operator does not depend on alpha's rounds the same way, but it is re-run the same. */
static nl_status anderson(op_ctx *c, op_fn T, int64_t B, float *x, const nl_mdbm_solve_opts *o, uint8_t *conv,
                          int64_t *iters, int halve) {
    const int64_t n = c->m->n;
    const int M = o->anderson_m > 0 ? o->anderson_m : 1;
    float *X = malloc(sizeof(float) * (size_t)(M * B * n));  /* (M, B, n) iterate history */
    float *F = malloc(sizeof(float) * (size_t)(M * B * n));  /* (M, B, n) T(iterate) history */
    float *fx = malloc(sizeof(float) * (size_t)(B * n));     /* (B, n) */
    uint8_t *act = malloc((size_t)B);                        /* (B) still iterating */
    int64_t *hist = calloc((size_t)B, sizeof(int64_t));      /* (B) history length */
    if (!X || !F || !fx || !act || !hist) {
        free(X), free(F), free(fx), free(act), free(hist);
        return nl_set_error(NL_ENOMEM, "mdbm: out of memory");
    }
    for (int64_t bi = 0; bi < B; bi++) conv[bi] = 0;
    int64_t total = 0;
    const double a0 = c->alpha;
    for (int round = 0; round <= (halve ? o->halvings : 0); round++) {
        int64_t left = 0;
        if (halve && round > 0) {
            for (int64_t bi = 0; bi < B; bi++) left += !conv[bi];
            if (!left) break;
            c->alpha = a0 / (double)(1 << round);
            left = 0;
        }
        for (int64_t bi = 0; bi < B; bi++) act[bi] = !conv[bi], left += act[bi], hist[bi] = 0;
        if (!left) break;
        for (int it = 0; it < o->max_iter; it++) {
            T(c, B, x, fx, act);
            total++;
            left = 0;
            for (int64_t bi = 0; bi < B; bi++) {
                if (!act[bi]) continue;
                float *xb = x + bi * n, *fb = fx + bi * n;
                double rr = 0, ff = 0;
                for (int64_t i = 0; i < n; i++) rr += (double)(fb[i] - xb[i]) * (fb[i] - xb[i]), ff += (double)fb[i] * fb[i];
                if (sqrt(rr) / (sqrt(ff) + 1e-5) < o->tol) {
                    memcpy(xb, fb, sizeof(float) * (size_t)n);
                    act[bi] = 0, conv[bi] = 1;
                    continue;
                }
                left++;
                const int64_t slot = hist[bi] % M;
                memcpy(X + (slot * B + bi) * n, xb, sizeof(float) * (size_t)n);
                memcpy(F + (slot * B + bi) * n, fb, sizeof(float) * (size_t)n);
                hist[bi]++;
                const int h = (int)(hist[bi] < M ? hist[bi] : M);
                if (o->anderson_m <= 0 || h < 2) {
                    memcpy(xb, fb, sizeof(float) * (size_t)n);
                    continue;
                }
                /* min || sum a_i G_i ||^2 + lambda ||a||^2, sum a_i = 1, G_i = F_i - X_i: (GG^T + lambda I) a ∝ 1 */
                double H[NL_MDBM_MAX_GROUP * NL_MDBM_MAX_GROUP], al[NL_MDBM_MAX_GROUP];
                for (int i = 0; i < h; i++)
                    for (int j = 0; j <= i; j++) {
                        const float *Fi = F + ((int64_t)i * B + bi) * n, *Xi = X + ((int64_t)i * B + bi) * n;
                        const float *Fj = F + ((int64_t)j * B + bi) * n, *Xj = X + ((int64_t)j * B + bi) * n;
                        double s = 0;
                        for (int64_t t = 0; t < n; t++) s += (double)(Fi[t] - Xi[t]) * (Fj[t] - Xj[t]);
                        H[i * h + j] = H[j * h + i] = s;
                    }
                double tr = 0;
                for (int i = 0; i < h; i++) tr += H[i * h + i];
                for (int i = 0; i < h; i++) H[i * h + i] += o->lambda * (tr / h + 1e-20), al[i] = 1;
                /* Cholesky-free: Gaussian elimination with partial pivoting on the small system */
                int ok = 1;
                for (int col = 0; col < h && ok; col++) {
                    int piv = col;
                    for (int i = col + 1; i < h; i++) if (fabs(H[i * h + col]) > fabs(H[piv * h + col])) piv = i;
                    if (!(fabs(H[piv * h + col]) > 0)) { ok = 0; break; }
                    if (piv != col) {
                        for (int j = 0; j < h; j++) { double t = H[col * h + j]; H[col * h + j] = H[piv * h + j]; H[piv * h + j] = t; }
                        double t = al[col]; al[col] = al[piv]; al[piv] = t;
                    }
                    for (int i = col + 1; i < h; i++) {
                        const double f = H[i * h + col] / H[col * h + col];
                        for (int j = col; j < h; j++) H[i * h + j] -= f * H[col * h + j];
                        al[i] -= f * al[col];
                    }
                }
                for (int i = h - 1; i >= 0 && ok; i--) {
                    for (int j = i + 1; j < h; j++) al[i] -= H[i * h + j] * al[j];
                    al[i] /= H[i * h + i];
                }
                double sa = 0;
                for (int i = 0; i < h; i++) sa += al[i];
                if (!ok || !isfinite(sa) || fabs(sa) < 1e-30) {
                    memcpy(xb, fb, sizeof(float) * (size_t)n);
                    continue;
                }
                for (int64_t t = 0; t < n; t++) {
                    double v = 0;
                    for (int i = 0; i < h; i++) v += al[i] / sa * F[((int64_t)i * B + bi) * n + t];
                    xb[t] = (float)v;
                }
            }
            if (!left) break;
        }
    }
    if (iters) *iters = total;
    free(X), free(F), free(fx), free(act), free(hist);
    return NL_OK;
}

nl_status nl_mdbm_forward(const nl_mdbm *m, int64_t B, const uint8_t *clamp, float *q, const nl_mdbm_solve_opts *o,
                          uint8_t *conv, int64_t *iters, double *alpha_used) {
    op_ctx c = {m, clamp, NULL, NULL, o->alpha, malloc(sizeof(float) * (size_t)(B * m->r)), NULL};
    if (!c.tmp) return nl_set_error(NL_ENOMEM, "mdbm: out of memory");
    nl_status s = anderson(&c, op_forward, B, q, o, conv, iters, 1);
    if (alpha_used) *alpha_used = c.alpha;
    free(c.tmp);
    return s;
}

nl_status nl_mdbm_accum_grad(const nl_mdbm *m, int64_t B, const float *q, const float *v, float *gw, float *gb) {
    const int64_t n = m->n, r = m->r;
    float *uv = malloc(sizeof(float) * (size_t)(B * r));   /* (B, r) v V^T */
    float *uq = malloc(sizeof(float) * (size_t)(B * r));   /* (B, r) q V^T */
    float *gv = calloc((size_t)(r * n), sizeof(float));    /* (r, n) dL/dV */
    if (!uv || !uq || !gv) {
        free(uv), free(uq), free(gv);
        return nl_set_error(NL_ENOMEM, "mdbm: out of memory");
    }
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t i = 0; i < n; i++) gb[i] += v[bi * n + i];
    nl_gemm(NL_F32, 0, 1, B, r, n, 1.0, v, n, m->v, n, 0.0, uv, r);
    nl_gemm(NL_F32, 0, 1, B, r, n, 1.0, q, n, m->v, n, 0.0, uq, r);
    nl_gemm(NL_F32, 1, 0, r, n, B, -1.0, uv, r, q, n, 1.0, gv, n);
    nl_gemm(NL_F32, 1, 0, r, n, B, -1.0, uq, r, v, n, 1.0, gv, n);
    for (int64_t g = 0; g < m->n_groups; g++) {
        const int k = m->gsize[g];
        const int64_t o0 = m->goff[g];
        double M[NL_MDBM_MAX_GROUP * NL_MDBM_MAX_GROUP] = {0};
        for (int64_t bi = 0; bi < B; bi++) {
            const float *qb = q + bi * n + o0, *vb = v + bi * n + o0;
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) M[i * k + j] += (double)qb[i] * vb[j] + (double)vb[i] * qb[j];
        }
        for (int64_t row = 0; row < r; row++)
            for (int j = 0; j < k; j++) {
                double acc = 0;
                for (int i = 0; i < k; i++) acc += m->v[row * n + o0 + i] * M[i * k + j];
                gv[row * n + o0 + j] += (float)acc;
            }
        /* V_g = sqrt(s_g) W_g, s_g = (1 - margin) / lambda_g when projected and lambda_g > 1 - margin */
        const double s = m->s[g], sq = sqrt(s);
        double dls = 0;
        const int scaled = m->project && m->lam[g] > 1 - m->margin;
        if (scaled)
            for (int64_t row = 0; row < r; row++)
                for (int i = 0; i < k; i++) dls += (double)gv[row * n + o0 + i] * m->w[row * n + o0 + i];
        const double dlam = scaled ? dls / (2 * sq) * (-(1 - m->margin) / (m->lam[g] * m->lam[g])) : 0;
        for (int64_t row = 0; row < r; row++) {
            double we = 0; /* (W_g e)_row */
            for (int i = 0; i < k; i++) we += (double)m->w[row * n + o0 + i] * m->evec[o0 + i];
            for (int i = 0; i < k; i++)
                gw[row * n + o0 + i] += (float)(sq * gv[row * n + o0 + i] + dlam * 2 * we * m->evec[o0 + i]);
        }
    }
    free(uv), free(uq), free(gv);
    return NL_OK;
}

nl_status nl_mdbm_backward(const nl_mdbm *m, int64_t B, const uint8_t *clamp, const float *q, const float *dq,
                           double alpha, const nl_mdbm_solve_opts *o, float *gw, float *gb, uint8_t *conv) {
    const int64_t n = m->n, r = m->r;
    op_ctx c = {m, clamp, q, dq, alpha, malloc(sizeof(float) * (size_t)(B * r)), malloc(sizeof(float) * (size_t)(B * n))};
    float *w = calloc((size_t)(B * n), sizeof(float));     /* (B, n) adjoint */
    nl_status s = NL_OK;
    if (!c.tmp || !c.u || !w) s = nl_set_error(NL_ENOMEM, "mdbm: out of memory");
    if (!s) s = anderson(&c, op_adjoint, B, w, o, conv, NULL, 0);
    if (!s) {
        jprox(&c, B, w, c.u);
        float *v = c.u; /* (B, n) dL/dz = alpha J_P w */
        for (int64_t i = 0; i < B * n; i++) v[i] *= (float)alpha;
        s = nl_mdbm_accum_grad(m, B, q, v, gw, gb);
    }
    free(c.tmp), free(c.u), free(w);
    return s;
}
