/* Monotone DBM on binarised Fashion-MNIST with a random 40% of pixels observed (clamped): training by implicit
 * differentiation with Adam, evaluation of convergence, classification and completion, the per-pixel marginal
 * baseline, and the unprojected control (methods/mdbm/README.md). */
#include "mdbm/mdbm.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NPIX 784
#define NCLS 10

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

nl_mdbm_config nl_mdbm_defaults(void) {
    nl_mdbm_config c = {2000, 1000, 200, 16, 4, 64, 3, 50, 5e-3, 0.4, 1, 0};
    return c;
}

/* one batch: q (B, n) filled with the clamped one-hots and uniform starts; clamp (B, n_groups); the mask drawn */
static void fill_batch(const nl_mdbm *m, const nl_dataset *ds, const int64_t *idx, int64_t B, double obs, nl_rng *rng,
                       uint8_t *clamp, float *q) {
    const int64_t n = m->n, G = m->n_groups;
    for (int64_t bi = 0; bi < B; bi++) {
        const float *x = ds->x + idx[bi] * ds->d;
        for (int64_t g = 0; g < G; g++) {
            const int64_t o = bi * n + m->goff[g];
            const int k = m->gsize[g];
            int c = g < NPIX && nl_rng_uniform(rng) < obs;
            clamp[bi * G + g] = (uint8_t)c;
            if (c) {
                const int on = x[g] > 0.5f;
                q[o] = (float)(1 - on), q[o + 1] = (float)on;
            } else
                for (int i = 0; i < k; i++) q[o + i] = 1.0f / (float)k;
        }
    }
}

typedef struct eval_acc {
    int64_t seen, conv, correct, pix, pix_ok, marg_ok, iters;
} eval_acc;

static nl_status evaluate(const nl_mdbm *m, const nl_dataset *te, int64_t n_eval, double obs, uint64_t seed,
                          const uint8_t *majority, eval_acc *ea) {
    const int64_t n = m->n, G = m->n_groups, B = 100;
    memset(ea, 0, sizeof *ea);
    float *q = malloc(sizeof(float) * (size_t)(B * n)); /* (B, n) */
    uint8_t *clamp = malloc((size_t)(B * G));           /* (B, G) */
    uint8_t *conv = malloc((size_t)B);                  /* (B) */
    int64_t idx[100];
    nl_status s = q && clamp && conv ? NL_OK : nl_set_error(NL_ENOMEM, "mdbm: out of memory");
    nl_rng rng;
    nl_rng_init(&rng, seed, 0x7E57ULL); /* the test masks: fixed by the seed, the same for every model */
    nl_mdbm_solve_opts o = nl_mdbm_solve_defaults();
    for (int64_t s0 = 0; s0 < n_eval && !s; s0 += B) {
        const int64_t nb = n_eval - s0 < B ? n_eval - s0 : B;
        for (int64_t i = 0; i < nb; i++) idx[i] = s0 + i;
        fill_batch(m, te, idx, nb, obs, &rng, clamp, q);
        int64_t it = 0;
        if ((s = nl_mdbm_forward(m, nb, clamp, q, &o, conv, &it, NULL))) break;
        ea->iters += it * nb;
        for (int64_t bi = 0; bi < nb; bi++) {
            const float *x = te->x + idx[bi] * te->d, *qb = q + bi * n;
            ea->seen++, ea->conv += conv[bi];
            const float *qc = qb + m->goff[G - 1];
            int best = 0;
            for (int c = 1; c < NCLS; c++) best = qc[c] > qc[best] ? c : best;
            ea->correct += best == te->y[idx[bi]];
            for (int64_t g = 0; g < NPIX; g++) {
                if (clamp[bi * G + g]) continue;
                const int on = x[g] > 0.5f;
                ea->pix++;
                ea->pix_ok += (qb[m->goff[g] + 1] > qb[m->goff[g]]) == on;
                ea->marg_ok += majority[g] == on;
            }
        }
    }
    free(q), free(clamp), free(conv);
    return s;
}

nl_status nl_mdbm_run(const nl_mdbm_config *c, const nl_dataset *tr, const nl_dataset *te, nl_mdbm_result *r) {
    memset(r, 0, sizeof *r);
    if (tr->d != NPIX || te->d != NPIX || tr->n_classes != NCLS)
        return nl_set_error(NL_EINVAL, "mdbm: expects 28x28 images with 10 classes");
    if (c->n_train < 1 || c->n_train > tr->n || c->n_test < 1 || c->n_test > te->n || c->n_ctrl < 0 || c->n_ctrl > te->n)
        return nl_set_error(NL_EINVAL, "mdbm: n_train/n_test/n_ctrl outside the data (%lld/%lld images)",
                            (long long)tr->n, (long long)te->n);
    if (c->hidden_groups < 0 || c->hidden_k < 2 || c->hidden_k > NL_MDBM_MAX_GROUP || c->rank < 1 || c->batch < 1 ||
        c->epochs < 0 || !(c->observed >= 0 && c->observed <= 1) || !(c->lr > 0))
        return nl_set_error(NL_EINVAL, "mdbm: bad configuration (hidden size in [2, %d], rank, batch >= 1, observed in [0, 1])",
                            NL_MDBM_MAX_GROUP);
    const int64_t G = NPIX + c->hidden_groups + 1;
    int *gs = malloc(sizeof(int) * (size_t)G);
    if (!gs) return nl_set_error(NL_ENOMEM, "mdbm: out of memory");
    for (int64_t g = 0; g < G; g++) gs[g] = g < NPIX ? 2 : g < G - 1 ? c->hidden_k : NCLS;
    nl_mdbm m;
    nl_status s = nl_mdbm_init(&m, gs, G, c->rank, 0.01, c->seed);
    free(gs);
    if (s) return s;
    const int64_t n = m.n, rn = m.r * n, B = c->batch;
    uint8_t majority[NPIX];
    for (int64_t p = 0; p < NPIX; p++) { /* the per-pixel marginal, from the training images used */
        int64_t on = 0;
        for (int64_t i = 0; i < c->n_train; i++) on += tr->x[i * NPIX + p] > 0.5f;
        double pr = ((double)on + 1) / ((double)c->n_train + 2);
        majority[p] = pr > 0.5;
        m.b[2 * p + 1] = (float)log(pr), m.b[2 * p] = (float)log(1 - pr);
    }
    float *am = calloc((size_t)(rn + n), sizeof(float)), *av = calloc((size_t)(rn + n), sizeof(float)); /* (rn + n) Adam */
    float *gw = malloc(sizeof(float) * (size_t)(rn + n));  /* (rn + n): dL/dW then dL/db */
    float *q = malloc(sizeof(float) * (size_t)(B * n)), *dq = malloc(sizeof(float) * (size_t)(B * n)); /* (B, n) */
    uint8_t *clamp = malloc((size_t)(B * G)), *conv = malloc((size_t)B); /* (B, G), (B) */
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)c->n_train);       /* (n_train) */
    float *z = malloc(sizeof(float) * (size_t)(B * n)), *gz = malloc(sizeof(float) * (size_t)(B * n)); /* (B, n) */
    float *tmp = malloc(sizeof(float) * (size_t)(B * m.r));              /* (B, r) */
    double *tau = malloc(sizeof(double) * (size_t)(4 * G)), *gtau = tau + G, *tm = tau + 2 * G, *tv = tau + 3 * G; /* (G) each */
    if (tau)
        for (int64_t g = 0; g < G; g++) tau[g] = 1, gtau[g] = tm[g] = tv[g] = 0;
    if (!am || !av || !gw || !q || !dq || !clamp || !conv || !perm || !z || !gz || !tmp || !tau) s = nl_set_error(NL_ENOMEM, "mdbm: out of memory");
    nl_rng rng;
    nl_rng_init(&rng, c->seed, 0x7A1ULL);
    nl_mdbm_solve_opts otr = nl_mdbm_solve_defaults();
    otr.tol = 1e-2; /* the reference's training tolerance */
    double t0 = cpu_now();
    int64_t step = 0, solves = 0, solved = 0;
    for (int ep = 0; ep < c->epochs && !s; ep++) {
        for (int64_t i = 0; i < c->n_train; i++) perm[i] = i;
        for (int64_t i = c->n_train - 1; i > 0; i--) {
            int64_t j = nl_rng_below(&rng, i + 1), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        double lsum = 0, lpix = 0;
        int64_t lcount = 0;
        for (int64_t s0 = 0; s0 + B <= c->n_train && !s; s0 += B) {
            fill_batch(&m, tr, perm + s0, B, c->observed, &rng, clamp, q);
            double alpha = otr.alpha;
            if ((s = nl_mdbm_forward(&m, B, clamp, q, &otr, conv, NULL, &alpha))) break;
            for (int64_t bi = 0; bi < B; bi++) solved += conv[bi], solves++;
            /* readout (the reference's extra linear pass): logits tau_g z_g, z = A q* + b, tau learnable per group */
            nl_mdbm_field(&m, B, q, z);
            memset(gz, 0, sizeof(float) * (size_t)(B * n));
            for (int64_t bi = 0; bi < B; bi++) {
                const float *x = tr->x + perm[s0 + bi] * NPIX;
                int64_t nu = 0;
                for (int64_t g = 0; g < NPIX; g++) nu += !clamp[bi * G + g];
                for (int64_t g = 0; g < G; g++) {
                    if (clamp[bi * G + g] || (g >= NPIX && g < G - 1)) continue;
                    const int k = m.gsize[g], t = g < NPIX ? (x[g] > 0.5f) : tr->y[perm[s0 + bi]];
                    const double wt = g < NPIX ? 0.5 / (double)nu : 0.5;
                    const float *zb = z + bi * n + m.goff[g];
                    float *gb_ = gz + bi * n + m.goff[g];
                    double mx = -1e300, p[NL_MDBM_MAX_GROUP], S = 0;
                    for (int i = 0; i < k; i++) p[i] = tau[g] * zb[i], mx = p[i] > mx ? p[i] : mx;
                    for (int i = 0; i < k; i++) p[i] = exp(p[i] - mx), S += p[i];
                    double gt = 0;
                    for (int i = 0; i < k; i++) {
                        p[i] /= S;
                        const double d = p[i] - (i == t);
                        gb_[i] = (float)(wt * tau[g] * d / (double)B), gt += wt * d * zb[i] / (double)B;
                    }
                    gtau[g] += gt;
                    const double l = -wt * log(p[t] > 1e-300 ? p[t] : 1e-300);
                    lsum += l;
                    if (g < NPIX) lpix += 2 * l;
                }
                lcount++;
            }
            memset(gw, 0, sizeof(float) * (size_t)(rn + n));
            nl_mdbm_apply_a(&m, B, gz, dq, tmp); /* dL/dq* through z = A q* + b */
            if ((s = nl_mdbm_accum_grad(&m, B, q, gz, gw, gw + rn))) break;
            if ((s = nl_mdbm_backward(&m, B, clamp, q, dq, alpha, &otr, gw, gw + rn, conv))) break;
            for (int64_t g = 0; g < G; g++) { /* Adam on tau, kept >= 0.01 */
                const double st = (double)step + 1, g1 = gtau[g];
                tm[g] = 0.9 * tm[g] + 0.1 * g1, tv[g] = 0.999 * tv[g] + 0.001 * g1 * g1;
                tau[g] -= c->lr * (tm[g] / (1 - pow(0.9, st))) / (sqrt(tv[g] / (1 - pow(0.999, st))) + 1e-8);
                if (tau[g] < 0.01) tau[g] = 0.01;
                gtau[g] = 0;
            }
            step++;
            const double b1 = 0.9, b2 = 0.999, bc1 = 1 - pow(b1, (double)step), bc2 = 1 - pow(b2, (double)step);
            for (int64_t i = 0; i < rn + n; i++) {
                float *p = i < rn ? &m.w[i] : &m.b[i - rn];
                const float g = isfinite(gw[i]) ? gw[i] : 0.0f;
                am[i] = (float)(b1 * am[i] + (1 - b1) * g), av[i] = (float)(b2 * av[i] + (1 - b2) * g * g);
                *p -= (float)(c->lr * (am[i] / bc1) / (sqrt(av[i] / bc2) + 1e-8));
            }
            nl_mdbm_refresh(&m);
        }
        if (c->verbose && !s) nl_progress("mdbm epoch %d: loss %.4f, pixel cross-entropy %.4f (%lld steps)", ep + 1, lsum / (double)(lcount ? lcount : 1), lpix / (double)(lcount ? lcount : 1), (long long)step);
    }
    r->train_seconds = cpu_now() - t0;
    r->train_conv = solves ? (double)solved / (double)solves : 1;
    double smin = 1, ssum = 0;
    for (int64_t g = 0; g < m.n_groups; g++) smin = m.s[g] < smin ? m.s[g] : smin, ssum += m.s[g];
    r->min_s = smin, r->mean_s = ssum / (double)m.n_groups;
    t0 = cpu_now();
    eval_acc ea, ec;
    if (!s) s = evaluate(&m, te, c->n_test, c->observed, c->seed, majority, &ea);
    if (!s) {
        r->converged = (double)ea.conv / (double)ea.seen, r->acc = (double)ea.correct / (double)ea.seen;
        r->completion = (double)ea.pix_ok / (double)ea.pix, r->marginal = (double)ea.marg_ok / (double)ea.pix;
        r->mean_iters = (double)ea.iters / (double)ea.seen;
    }
    if (!s && c->n_ctrl > 0) { /* control: the same W without the monotone scaling */
        m.project = 0;
        nl_mdbm_refresh(&m);
        s = evaluate(&m, te, c->n_ctrl, c->observed, c->seed, majority, &ec);
        if (!s) {
            r->ctrl_converged = (double)ec.conv / (double)ec.seen, r->ctrl_acc = (double)ec.correct / (double)ec.seen;
            r->ctrl_completion = (double)ec.pix_ok / (double)ec.pix, r->ctrl_mean_iters = (double)ec.iters / (double)ec.seen;
        }
    }
    r->eval_seconds = cpu_now() - t0;
    free(am), free(av), free(gw), free(q), free(dq), free(clamp), free(conv), free(perm), free(z), free(gz), free(tmp), free(tau);
    nl_mdbm_free(&m);
    return s;
}
