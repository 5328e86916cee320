/* DDPM: noise schedules, the epsilon-prediction loss, DDIM and ancestral sampling, EMA, a training loop. */
#include "diffusion/diffusion.h"
#include "nnlab/extend.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/optim.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nl_status nl_diff_schedule_parse(const char *s, nl_diff_schedule *out) {
    if (s && !strcmp(s, "linear")) *out = NL_DIFF_LINEAR;
    else if (s && !strcmp(s, "cosine")) *out = NL_DIFF_COSINE;
    else return nl_set_error(NL_EINVAL, "diffusion: unknown schedule '%s' (linear or cosine)", s ? s : "(null)");
    return NL_OK;
}

nl_status nl_diffusion_init(nl_diffusion *d, int T, nl_diff_schedule kind) {
    memset(d, 0, sizeof *d);
    if (T < 2 || T > 100000) return nl_set_error(NL_EINVAL, "diffusion: T must be in 2..100000 (got %d)", T);
    if (kind != NL_DIFF_LINEAR && kind != NL_DIFF_COSINE) return nl_set_error(NL_EINVAL, "diffusion: bad schedule %d", (int)kind);
    d->T = T;
    d->kind = kind;
    d->beta = malloc((size_t)T * sizeof *d->beta);
    d->abar = malloc((size_t)T * sizeof *d->abar);
    if (!d->beta || !d->abar) {
        nl_diffusion_free(d);
        return nl_set_error(NL_ENOMEM, "diffusion: out of memory");
    }
    if (kind == NL_DIFF_LINEAR) {
        const double sc = 1000.0 / T, b0 = sc * 1e-4, b1 = fmin(sc * 0.02, 0.999);
        for (int t = 0; t < T; t++) d->beta[t] = b0 + (b1 - b0) * (T > 1 ? (double)t / (T - 1) : 0.0);
    } else {
        const double s = 0.008;
        for (int t = 0; t < T; t++) {
            const double f0 = cos(((double)t / T + s) / (1 + s) * M_PI / 2), f1 = cos(((double)(t + 1) / T + s) / (1 + s) * M_PI / 2);
            d->beta[t] = fmin(1.0 - (f1 * f1) / (f0 * f0), 0.999);
        }
    }
    double a = 1.0;
    for (int t = 0; t < T; t++) {
        a *= 1.0 - d->beta[t];
        d->abar[t] = a;
    }
    return NL_OK;
}

void nl_diffusion_free(nl_diffusion *d) {
    if (!d) return;
    free(d->beta);
    free(d->abar);
    memset(d, 0, sizeof *d);
}

nl_var *nl_diffusion_loss(nl_ctx *c, const nl_diffusion *d, nl_unet *u, const float *x0, int64_t B, nl_rng *rng) {
    const int64_t D = (int64_t)u->cfg.in_channels * u->cfg.image_size * u->cfg.image_size;
    int64_t sh[4] = {B, u->cfg.in_channels, u->cfg.image_size, u->cfg.image_size};
    if (B < 1) {
        nl_set_error(NL_EINVAL, "diffusion loss: batch must be >= 1 (got %lld)", (long long)B);
        return NULL;
    }
    nl_var *xt = nl_new(c, NL_F32, 4, sh), *eps = nl_new(c, NL_F32, 4, sh);
    float *tt = nl_scratch(c, (size_t)B * sizeof(float));
    if (!xt || !eps || !tt) return NULL;
    float *xv = xt->val.data, *ev = eps->val.data;
    for (int64_t i = 0; i < B; i++) {
        const int t = (int)nl_rng_below(rng, d->T);
        tt[i] = (float)t;
        const float sa = (float)sqrt(d->abar[t]), sb = (float)sqrt(1.0 - d->abar[t]);
        for (int64_t k = 0; k < D; k++) {
            const float e = (float)nl_rng_normal(rng);
            ev[i * D + k] = e;
            xv[i * D + k] = sa * x0[i * D + k] + sb * e;
        }
    }
    return nl_mse(c, nl_unet_forward(c, u, xt, tt), eps);
}

/* ---- sampling ---- */
#define SAMPLE_BATCH 256

/* eps_hat for x [m, C, S, S] at timestep t (no gradients) into e. */
static nl_status predict(nl_ctx *c, nl_unet *u, float *x, int64_t m, int t, float *e) {
    int64_t sh[4] = {m, u->cfg.in_channels, u->cfg.image_size, u->cfg.image_size};
    const int64_t n = m * sh[1] * sh[2] * sh[3];
    float *tt = nl_scratch(c, (size_t)m * sizeof(float));
    if (!tt) return nl_last_status();
    for (int64_t i = 0; i < m; i++) tt[i] = (float)t;
    nl_var *out = nl_unet_forward(c, u, nl_input(c, nl_tensor_wrap(x, NL_F32, 4, sh)), tt);
    if (!out) return nl_last_status();
    memcpy(e, out->val.data, (size_t)n * sizeof(float));
    nl_ctx_reset(c);
    return NL_OK;
}

/* mode 0: DDIM over `steps` timesteps with eta; mode 1: ancestral DDPM over all T. */
static nl_status sample(nl_unet *u, const nl_diffusion *d, int64_t n, int steps, double eta, nl_rng *rng, float *out, int mode) {
    if (n < 0) return nl_set_error(NL_EINVAL, "diffusion sample: n must be >= 0");
    if (mode == 0 && (steps < 1 || steps > d->T))
        return nl_set_error(NL_EINVAL, "diffusion sample: DDIM steps must be in 1..T = %d (got %d)", d->T, steps);
    if (!(eta >= 0 && eta <= 1)) return nl_set_error(NL_EINVAL, "diffusion sample: eta must be in [0, 1] (got %g)", eta);
    const int64_t D = (int64_t)u->cfg.in_channels * u->cfg.image_size * u->cfg.image_size;
    nl_ctx *c = nl_ctx_new((size_t)16 << 20, 0);
    float *e = malloc((size_t)SAMPLE_BATCH * D * sizeof(float));
    int *ts = malloc((size_t)(d->T + 1) * sizeof(int));
    nl_status s = NL_OK;
    if (!c || !e || !ts) {
        s = nl_set_error(NL_ENOMEM, "diffusion sample: out of memory");
        goto done;
    }
    nl_set_grad_enabled(c, 0);
    int K = mode == 0 ? steps : d->T;
    for (int k = 0; k < K; k++) ts[k] = mode == 0 ? (int)((int64_t)k * d->T / steps) : k; /* ascending */
    for (int64_t b0 = 0; b0 < n; b0 += SAMPLE_BATCH) {
        const int64_t m = n - b0 < SAMPLE_BATCH ? n - b0 : SAMPLE_BATCH;
        float *x = out + b0 * D;
        for (int64_t i = 0; i < m * D; i++) x[i] = (float)nl_rng_normal(rng);
        for (int k = K - 1; k >= 0; k--) {
            const int t = ts[k];
            if ((s = predict(c, u, x, m, t, e))) goto done;
            const double ab = d->abar[t], ab_prev = k > 0 ? d->abar[ts[k - 1]] : 1.0;
            if (mode == 0) { /* DDIM */
                const double sig = eta * sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev));
                const double cdir = sqrt(fmax(1 - ab_prev - sig * sig, 0.0));
                for (int64_t i = 0; i < m * D; i++) {
                    double x0 = (x[i] - sqrt(1 - ab) * e[i]) / sqrt(ab);
                    x0 = x0 < -1 ? -1 : x0 > 1 ? 1 : x0;
                    const double eps = (x[i] - sqrt(ab) * x0) / sqrt(1 - ab); /* consistent with the clipped x0 */
                    double v = sqrt(ab_prev) * x0 + cdir * eps;
                    if (sig > 0 && k > 0) v += sig * nl_rng_normal(rng);
                    x[i] = (float)v;
                }
            } else { /* ancestral: mean from the clipped x0 (posterior q(x_{t-1} | x_t, x0)), sigma^2 = beta_t */
                const double bt = d->beta[t], at = 1 - bt;
                const double c0 = sqrt(ab_prev) * bt / (1 - ab), ct = sqrt(at) * (1 - ab_prev) / (1 - ab);
                for (int64_t i = 0; i < m * D; i++) {
                    double x0 = (x[i] - sqrt(1 - ab) * e[i]) / sqrt(ab);
                    x0 = x0 < -1 ? -1 : x0 > 1 ? 1 : x0;
                    double v = c0 * x0 + ct * x[i];
                    if (k > 0) v += sqrt(bt) * nl_rng_normal(rng);
                    x[i] = (float)v;
                }
            }
        }
        for (int64_t i = 0; i < m * D; i++) x[i] = x[i] < -1 ? -1.0f : x[i] > 1 ? 1.0f : x[i];
    }
done:
    nl_ctx_free(c);
    free(e);
    free(ts);
    return s;
}

nl_status nl_diffusion_sample_ddim(nl_unet *u, const nl_diffusion *d, int64_t n, int steps, double eta, nl_rng *rng,
                                   float *out) {
    return sample(u, d, n, steps, eta, rng, out, 0);
}

nl_status nl_diffusion_sample_ddpm(nl_unet *u, const nl_diffusion *d, int64_t n, nl_rng *rng, float *out) {
    return sample(u, d, n, d->T, 0.0, rng, out, 1);
}

/* ---- EMA ---- */
nl_status nl_ema_init(nl_ema *e, const nl_params *ps, double decay) {
    memset(e, 0, sizeof *e);
    if (!(decay >= 0 && decay < 1)) return nl_set_error(NL_EINVAL, "ema: decay must be in [0, 1) (got %g)", decay);
    if (ps->dtype != NL_F32) return nl_set_error(NL_EDTYPE, "ema: f32 stores only");
    e->shadow = malloc((size_t)(ps->total ? ps->total : 1) * sizeof(float));
    if (!e->shadow) return nl_set_error(NL_ENOMEM, "ema: out of memory");
    memcpy(e->shadow, ps->data, (size_t)ps->total * sizeof(float));
    e->total = ps->total;
    e->decay = decay;
    return NL_OK;
}

void nl_ema_update(nl_ema *e, const nl_params *ps) {
    const float a = (float)e->decay, b = (float)(1 - e->decay);
    const float *p = ps->data;
    for (int64_t i = 0; i < e->total; i++) e->shadow[i] = a * e->shadow[i] + b * p[i];
}

void nl_ema_swap(nl_ema *e, nl_params *ps) {
    float *p = ps->data;
    for (int64_t i = 0; i < e->total; i++) {
        const float t = p[i];
        p[i] = e->shadow[i];
        e->shadow[i] = t;
    }
}

void nl_ema_free(nl_ema *e) {
    if (!e) return;
    free(e->shadow);
    memset(e, 0, sizeof *e);
}

/* ---- training loop ---- */
nl_diffusion_train_config nl_diffusion_train_defaults(void) {
    nl_diffusion_train_config t;
    memset(&t, 0, sizeof t);
    t.steps = 1000;
    t.batch = 64;
    t.lr = 2e-3;
    t.ema_decay = 0.995;
    t.clip_norm = 1.0;
    t.seed = 1;
    return t;
}

nl_status nl_diffusion_train(nl_unet *u, const nl_diffusion *d, const nl_diffusion_train_config *tc, const float *x,
                             int64_t n, nl_ema *ema, double *final_loss) {
    if (tc->steps < 1 || tc->batch < 1 || n < 1 || !(tc->lr > 0))
        return nl_set_error(NL_EINVAL, "diffusion train: steps, batch, n and lr must be positive");
    const int64_t D = (int64_t)u->cfg.in_channels * u->cfg.image_size * u->cfg.image_size, B = tc->batch;
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAMW);
    oc.lr = tc->lr;
    oc.weight_decay = 0;
    oc.clip_norm = tc->clip_norm;
    oc.sched = NL_SCHED_COSINE;
    oc.warmup_steps = tc->steps / 20;
    oc.total_steps = tc->steps;
    oc.min_ratio = 0.1;
    nl_optim o;
    nl_status s = nl_optim_init(&o, &u->ps, &oc);
    if (s) return s;
    nl_ctx *c = nl_ctx_new((size_t)64 << 20, 0);
    float *xb = malloc((size_t)(B * D) * sizeof(float));
    int64_t *perm = malloc((size_t)n * sizeof(int64_t));
    if (!c || !xb || !perm) {
        s = nl_set_error(NL_ENOMEM, "diffusion train: out of memory");
        goto done;
    }
    nl_rng rng;
    nl_rng_init(&rng, tc->seed, 0xD1FFULL << 32);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    int64_t pos = n;
    double tail = 0;
    int64_t ntail = 0;
    for (int64_t step = 0; step < tc->steps; step++) {
        for (int64_t i = 0; i < B; i++) {
            if (pos >= n) { /* reshuffle */
                for (int64_t k = n - 1; k > 0; k--) {
                    int64_t j = nl_rng_below(&rng, k + 1), tmp = perm[k];
                    perm[k] = perm[j], perm[j] = tmp;
                }
                pos = 0;
            }
            memcpy(xb + i * D, x + perm[pos++] * D, (size_t)D * sizeof(float));
        }
        nl_params_zero_grad(&u->ps);
        nl_var *loss = nl_diffusion_loss(c, d, u, xb, B, &rng);
        if (!loss) { s = nl_last_status(); goto done; }
        const double lv = nl_item(loss);
        if ((s = nl_backward(c, loss))) goto done;
        if ((s = nl_optim_step(&o))) goto done;
        if (ema) nl_ema_update(ema, &u->ps);
        nl_ctx_reset(c);
        if (step >= tc->steps - (tc->steps + 9) / 10) tail += lv, ntail++;
        if (tc->verbose > 0 && (step % tc->verbose == 0 || step == tc->steps - 1))
            printf("step %lld loss %.5f lr %.2e\n", (long long)step, lv, nl_sched_lr(&oc, step)), fflush(stdout);
    }
    if (final_loss) *final_loss = ntail ? tail / ntail : NAN;
done:
    nl_optim_free(&o);
    nl_ctx_free(c);
    free(xb);
    free(perm);
    return s;
}
