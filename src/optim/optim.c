/* Optimizers (SGD with momentum/Nesterov, Adam, AdamW), LR schedules, global-norm clipping.
 * Update formulas follow PyTorch (torch.optim.SGD / Adam / AdamW, dampening 0, amsgrad off); see optim.h. */
#include "nnlab/optim.h"
#include <math.h>
#include <omp.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Parallelise a per-parameter loop above this many elements. */
#define PAR_MIN ((int64_t)1 << 15)
/* Chunk of the global-norm sum: partial sums per chunk, combined in order (thread-count independent). */
#define NORM_CHUNK ((int64_t)8192)

static inline double ld(const void *a, int f64, int64_t i) {
    return f64 ? ((const double *)a)[i] : (double)((const float *)a)[i];
}
static inline void st(void *a, int f64, int64_t i, double x) {
    if (f64) ((double *)a)[i] = x;
    else ((float *)a)[i] = (float)x;
}

/* ---------------- configuration ---------------- */
nl_optim_config nl_optim_defaults(nl_optim_kind kind) {
    nl_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.lr = kind == NL_OPT_SGD ? 1e-2 : 1e-3;
    c.momentum = 0.0;
    c.nesterov = 0;
    c.weight_decay = kind == NL_OPT_ADAMW ? 1e-2 : 0.0;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.clip_norm = 0.0;
    c.sched = NL_SCHED_CONSTANT;
    c.warmup_steps = 0;
    c.total_steps = 0;
    c.min_ratio = 0.0;
    return c;
}

nl_status nl_optim_parse_kind(const char *s, nl_optim_kind *out) {
    if (!s) return nl_set_error(NL_EINVAL, "optim: optimizer name is NULL (expected sgd, adam or adamw)");
    if (!strcasecmp(s, "sgd")) *out = NL_OPT_SGD;
    else if (!strcasecmp(s, "adam")) *out = NL_OPT_ADAM;
    else if (!strcasecmp(s, "adamw")) *out = NL_OPT_ADAMW;
    else return nl_set_error(NL_EINVAL, "optim: unknown optimizer '%s' (expected sgd, adam or adamw)", s);
    return NL_OK;
}

static nl_status check_config(const nl_optim_config *c) {
    if (c->kind != NL_OPT_SGD && c->kind != NL_OPT_ADAM && c->kind != NL_OPT_ADAMW)
        return nl_set_error(NL_EINVAL, "optim: unknown optimizer kind %d", (int)c->kind);
    if (!(c->lr >= 0) || !isfinite(c->lr)) return nl_set_error(NL_EINVAL, "optim: lr = %g must be finite and >= 0", c->lr);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return nl_set_error(NL_EINVAL, "optim: weight_decay = %g must be finite and >= 0", c->weight_decay);
    if (!(c->clip_norm >= 0) || !isfinite(c->clip_norm))
        return nl_set_error(NL_EINVAL, "optim: clip_norm = %g must be finite and >= 0 (0 = off)", c->clip_norm);
    if (c->kind == NL_OPT_SGD) {
        if (!(c->momentum >= 0 && c->momentum < 1))
            return nl_set_error(NL_EINVAL, "optim: momentum = %g must be in [0, 1)", c->momentum);
        if (c->nesterov && !(c->momentum > 0))
            return nl_set_error(NL_EINVAL, "optim: nesterov needs momentum > 0");
    } else {
        if (!(c->beta1 >= 0 && c->beta1 < 1)) return nl_set_error(NL_EINVAL, "optim: beta1 = %g must be in [0, 1)", c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1)) return nl_set_error(NL_EINVAL, "optim: beta2 = %g must be in [0, 1)", c->beta2);
        if (!(c->eps > 0) || !isfinite(c->eps)) return nl_set_error(NL_EINVAL, "optim: eps = %g must be finite and > 0", c->eps);
    }
    if (c->sched < NL_SCHED_CONSTANT || c->sched > NL_SCHED_LINEAR)
        return nl_set_error(NL_EINVAL, "optim: unknown schedule %d", (int)c->sched);
    if (c->warmup_steps < 0) return nl_set_error(NL_EINVAL, "optim: warmup_steps = %lld must be >= 0", (long long)c->warmup_steps);
    if (c->total_steps < 0) return nl_set_error(NL_EINVAL, "optim: total_steps = %lld must be >= 0", (long long)c->total_steps);
    if ((c->sched == NL_SCHED_COSINE || c->sched == NL_SCHED_LINEAR) && c->total_steps <= c->warmup_steps)
        return nl_set_error(NL_EINVAL, "optim: cosine/linear schedules need total_steps (%lld) > warmup_steps (%lld)",
                            (long long)c->total_steps, (long long)c->warmup_steps);
    if (!(c->min_ratio >= 0) || !isfinite(c->min_ratio))
        return nl_set_error(NL_EINVAL, "optim: min_ratio = %g must be finite and >= 0", c->min_ratio);
    return NL_OK;
}

nl_status nl_optim_init(nl_optim *o, nl_params *ps, const nl_optim_config *cfg) {
    if (!o || !ps || !cfg) return nl_set_error(NL_EINVAL, "optim_init: NULL argument");
    memset(o, 0, sizeof *o);
    nl_status s = check_config(cfg);
    if (s) return s;
    if (ps->dtype != NL_F32 && ps->dtype != NL_F64) return nl_set_error(NL_EDTYPE, "optim_init: unsupported store dtype");
    o->cfg = *cfg;
    o->ps = ps;
    o->n_state = ps->total;
    for (int g = 0; g < NL_MAX_GROUPS; g++) o->group_lr[g] = o->group_wd[g] = 1.0;
    size_t es = nl_dtype_size(ps->dtype), n = (size_t)(ps->total > 0 ? ps->total : 1);
    int need_m = cfg->kind != NL_OPT_SGD || cfg->momentum != 0;
    if (need_m && !(o->m = calloc(n, es))) return nl_set_error(NL_ENOMEM, "optim_init: out of memory (%zu bytes of state)", n * es);
    if (cfg->kind != NL_OPT_SGD && !(o->v = calloc(n, es))) {
        free(o->m);
        o->m = NULL;
        return nl_set_error(NL_ENOMEM, "optim_init: out of memory (%zu bytes of state)", n * es);
    }
    return NL_OK;
}

void nl_optim_free(nl_optim *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

/* ---------------- schedules ---------------- */
double nl_sched_lr(const nl_optim_config *cfg, int64_t step) {
    const double lr = cfg->lr;
    const int64_t W = cfg->warmup_steps > 0 ? cfg->warmup_steps : 0;
    if (step < 0) step = 0;
    if (step < W) return lr * (double)(step + 1) / (double)W;
    const double r = cfg->min_ratio;
    double p = 1.0;
    if (cfg->total_steps > W) {
        p = (double)(step - W) / (double)(cfg->total_steps - W);
        if (p > 1) p = 1;
    }
    switch (cfg->sched) {
    case NL_SCHED_CONSTANT: return lr;
    case NL_SCHED_COSINE: return lr * (r + (1.0 - r) * 0.5 * (1.0 + cos(M_PI * p)));
    case NL_SCHED_LINEAR: return lr * (1.0 - (1.0 - r) * p);
    case NL_SCHED_INVSQRT:
        if (W > 0) return lr * sqrt((double)W / (double)step); /* step >= W >= 1 here */
        return lr / sqrt((double)(step + 1));
    }
    return lr;
}

double nl_optim_lr(const nl_optim *o) { return nl_sched_lr(&o->cfg, o->step); }

/* ---------------- gradient norm ---------------- */
/* Sum of (scale*a_i)^2 for i in [lo, hi), in double, with 8 interleaved partial sums combined in a fixed order:
 * the compiler vectorises it (no fast-math needed) and the result depends on the chunking only, not on threads. */
#define SUMSQ_LANES 8
static double sumsq_range(const void *g, int f64, int64_t lo, int64_t hi, double scale) {
    double acc[SUMSQ_LANES] = {0};
    int64_t i = lo;
    if (f64) {
        const double *a = g;
        for (; i + SUMSQ_LANES <= hi; i += SUMSQ_LANES)
            for (int j = 0; j < SUMSQ_LANES; j++) {
                double x = a[i + j] * scale;
                acc[j] += x * x;
            }
        for (; i < hi; i++) {
            double x = a[i] * scale;
            acc[0] += x * x;
        }
    } else {
        const float *a = g;
        for (; i + SUMSQ_LANES <= hi; i += SUMSQ_LANES)
            for (int j = 0; j < SUMSQ_LANES; j++) {
                double x = (double)a[i + j] * scale;
                acc[j] += x * x;
            }
        for (; i < hi; i++) {
            double x = (double)a[i] * scale;
            acc[0] += x * x;
        }
    }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* Sum of (scale*g)^2 over one parameter's gradient, by fixed chunks combined in order. */
static double param_sumsq(const nl_params *ps, const nl_param *p, double scale) {
    const int f64 = ps->dtype == NL_F64;
    const void *g = p->var.grad.data;
    const int64_t n = p->numel;
    if (n <= NORM_CHUNK) return sumsq_range(g, f64, 0, n, scale);
    const int64_t nc = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double stackbuf[64];
    double *part = nc <= 64 ? stackbuf : malloc((size_t)nc * sizeof *part);
    if (!part) { /* same chunking, serially */
        double s = 0;
        for (int64_t c = 0; c < nc; c++) {
            int64_t hi = (c + 1) * NORM_CHUNK < n ? (c + 1) * NORM_CHUNK : n;
            s += sumsq_range(g, f64, c * NORM_CHUNK, hi, scale);
        }
        return s;
    }
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t c = 0; c < nc; c++) {
        int64_t hi = (c + 1) * NORM_CHUNK < n ? (c + 1) * NORM_CHUNK : n;
        part[c] = sumsq_range(g, f64, c * NORM_CHUNK, hi, scale);
    }
    double s = 0;
    for (int64_t c = 0; c < nc; c++) s += part[c];
    if (part != stackbuf) free(part);
    return s;
}

static int64_t first_nonfinite(const nl_params *ps, const nl_param *p) {
    const int f64 = ps->dtype == NL_F64;
    for (int64_t i = 0; i < p->numel; i++)
        if (!isfinite(ld(p->var.grad.data, f64, i))) return i;
    return -1;
}

/* Global norm of trainable gradients. On a non-finite element: *bad = index of the parameter and *bad_at the
 * element, and the result is NaN or Inf. Overflow of the plain sum of squares (f64 values > ~1e154) is handled
 * by rescaling with the largest magnitude. */
static double global_norm(const nl_params *ps, int *bad, int64_t *bad_at) {
    const int f64 = ps->dtype == NL_F64;
    *bad = -1;
    *bad_at = -1;
    double s = 0;
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        if (!p->var.requires_grad) continue;
        double sp = param_sumsq(ps, p, 1.0);
        if (!isfinite(sp)) {
            int64_t k = first_nonfinite(ps, p);
            if (k >= 0) {
                *bad = i;
                *bad_at = k;
                return isnan(ld(p->var.grad.data, f64, k)) ? NAN : INFINITY;
            }
        }
        s += sp;
    }
    if (isfinite(s)) return sqrt(s);
    /* every element is finite but the squares overflow: rescale */
    double amax = 0;
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        if (!p->var.requires_grad) continue;
        for (int64_t k = 0; k < p->numel; k++) {
            double a = fabs(ld(p->var.grad.data, f64, k));
            if (a > amax) amax = a;
        }
    }
    double s2 = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i]->var.requires_grad) s2 += param_sumsq(ps, ps->p[i], 1.0 / amax);
    return amax * sqrt(s2);
}

double nl_grad_global_norm(const nl_params *ps) {
    int bad;
    int64_t at;
    return global_norm(ps, &bad, &at);
}

static void scale_grads(nl_params *ps, double f) {
    const int f64 = ps->dtype == NL_F64;
    for (int i = 0; i < ps->n; i++) {
        nl_param *p = ps->p[i];
        if (!p->var.requires_grad) continue;
        void *g = p->var.grad.data;
        const int64_t n = p->numel;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (int64_t k = 0; k < n; k++) st(g, f64, k, ld(g, f64, k) * f);
    }
}

double nl_grad_clip(nl_params *ps, double max_norm) {
    double norm = nl_grad_global_norm(ps);
    if (max_norm > 0 && isfinite(norm) && norm > max_norm) scale_grads(ps, max_norm / (norm + 1e-6));
    return norm;
}

/* ---------------- updates ---------------- */
/* f32, no mask: the common case, written so that it vectorises (same arithmetic as the generic loop). */
static void update_sgd_f32(float *restrict pv, const float *restrict gv, float *restrict buf, int64_t n, double lr,
                           double wd, double mu, int nesterov, double gs) {
    if (!buf) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            double p = pv[i];
            pv[i] = (float)(p - lr * (gs * (double)gv[i] + wd * p));
        }
    } else if (!nesterov) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            double p = pv[i];
            double b = mu * (double)buf[i] + (gs * (double)gv[i] + wd * p);
            buf[i] = (float)b;
            pv[i] = (float)(p - lr * b);
        }
    } else {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            double p = pv[i];
            double g = gs * (double)gv[i] + wd * p;
            double b = mu * (double)buf[i] + g;
            buf[i] = (float)b;
            pv[i] = (float)(p - lr * (g + mu * b));
        }
    }
}

static void update_sgd(void *pv, const void *gv, void *buf, const float *mask, int f64, int64_t n, double lr,
                       double wd, double mu, int nesterov, double gs) {
    if (!f64 && !mask) {
        update_sgd_f32(pv, gv, buf, n, lr, wd, mu, nesterov, gs);
        return;
    }
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        if (mask && mask[i] == 0) continue;
        double p = ld(pv, f64, i);
        double g = gs * ld(gv, f64, i) + wd * p;
        if (buf) {
            double b = mu * ld(buf, f64, i) + g;
            st(buf, f64, i, b);
            g = nesterov ? g + mu * b : b;
        }
        st(pv, f64, i, p - lr * g);
    }
}

/* Elements [lo, hi) of the f32 Adam/AdamW update. GCC keeps the omp simd loop below scalar (two double divides
 * and a sqrt per element, ~6% of a small transformer's training step), so on AVX2 the body runs on 4 doubles per
 * instruction with the same operations in the same order (no FMA: the project compiles in ISO C mode, where the
 * scalar code is not contracted either); IEEE +, *, /, sqrt and the conversions round identically per lane, so the
 * result is bit-identical to the scalar loop. */
static void adam_f32_range(float *restrict pv, const float *restrict gv, float *restrict mv, float *restrict vv,
                           int64_t lo, int64_t hi, double step_size, double sqrt_bc2, double eps, double b1, double b2,
                           double l2, double decay, double gs) {
    int64_t i = lo;
#if defined(__AVX2__)
    const __m256d vgs = _mm256_set1_pd(gs), vl2 = _mm256_set1_pd(l2), vdec = _mm256_set1_pd(decay);
    const __m256d vb1 = _mm256_set1_pd(b1), vb2 = _mm256_set1_pd(b2), v1b1 = _mm256_set1_pd(1.0 - b1);
    const __m256d v1b2 = _mm256_set1_pd(1.0 - b2), vbc2 = _mm256_set1_pd(sqrt_bc2), veps = _mm256_set1_pd(eps);
    const __m256d vss = _mm256_set1_pd(step_size);
    for (; i + 4 <= hi; i += 4) {
        __m256d p = _mm256_cvtps_pd(_mm_loadu_ps(pv + i));
        __m256d g = _mm256_add_pd(_mm256_mul_pd(vgs, _mm256_cvtps_pd(_mm_loadu_ps(gv + i))), _mm256_mul_pd(vl2, p));
        p = _mm256_mul_pd(p, vdec);
        __m128 mf = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_mul_pd(vb1, _mm256_cvtps_pd(_mm_loadu_ps(mv + i))),
                                                  _mm256_mul_pd(v1b1, g)));
        __m128 vf = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_mul_pd(vb2, _mm256_cvtps_pd(_mm_loadu_ps(vv + i))),
                                                  _mm256_mul_pd(_mm256_mul_pd(v1b2, g), g)));
        _mm_storeu_ps(mv + i, mf);
        _mm_storeu_ps(vv + i, vf);
        __m256d denom = _mm256_add_pd(_mm256_div_pd(_mm256_sqrt_pd(_mm256_cvtps_pd(vf)), vbc2), veps);
        __m256d upd = _mm256_div_pd(_mm256_mul_pd(vss, _mm256_cvtps_pd(mf)), denom);
        _mm_storeu_ps(pv + i, _mm256_cvtpd_ps(_mm256_sub_pd(p, upd)));
    }
#endif
    for (; i < hi; i++) {
        double p = pv[i];
        double g = gs * (double)gv[i] + l2 * p;
        p *= decay;
        float mf = (float)(b1 * (double)mv[i] + (1.0 - b1) * g);
        float vf = (float)(b2 * (double)vv[i] + (1.0 - b2) * g * g);
        mv[i] = mf;
        vv[i] = vf;
        double denom = sqrt((double)vf) / sqrt_bc2 + eps;
        pv[i] = (float)(p - step_size * (double)mf / denom);
    }
}

#define ADAM_CHUNK ((int64_t)4096)
static void update_adam_f32(float *restrict pv, const float *restrict gv, float *restrict mv, float *restrict vv,
                            int64_t n, double step_size, double sqrt_bc2, double eps, double b1, double b2, double l2,
                            double decay, double gs) {
    if (n <= PAR_MIN) {
        adam_f32_range(pv, gv, mv, vv, 0, n, step_size, sqrt_bc2, eps, b1, b2, l2, decay, gs);
        return;
    }
    const int64_t nc = (n + ADAM_CHUNK - 1) / ADAM_CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nc; c++)
        adam_f32_range(pv, gv, mv, vv, c * ADAM_CHUNK, (c + 1) * ADAM_CHUNK < n ? (c + 1) * ADAM_CHUNK : n, step_size,
                       sqrt_bc2, eps, b1, b2, l2, decay, gs);
}

/* decay: multiplier applied to p before the step (AdamW: 1 - lr*wd); l2: coefficient added to g (Adam). */
static void update_adam(void *pv, const void *gv, void *mv, void *vv, const float *mask, int f64, int64_t n,
                        double step_size, double sqrt_bc2, double eps, double b1, double b2, double l2,
                        double decay, double gs) {
    if (!f64 && !mask) {
        update_adam_f32(pv, gv, mv, vv, n, step_size, sqrt_bc2, eps, b1, b2, l2, decay, gs);
        return;
    }
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        if (mask && mask[i] == 0) continue;
        double p = ld(pv, f64, i);
        double g = gs * ld(gv, f64, i) + l2 * p;
        p *= decay;
        double m = b1 * ld(mv, f64, i) + (1.0 - b1) * g;
        double v = b2 * ld(vv, f64, i) + (1.0 - b2) * g * g;
        st(mv, f64, i, m);
        st(vv, f64, i, v);
        /* read back the stored values so f32 state behaves like an f32 implementation */
        m = ld(mv, f64, i);
        v = ld(vv, f64, i);
        double denom = sqrt(v) / sqrt_bc2 + eps;
        st(pv, f64, i, p - step_size * m / denom);
    }
}

nl_status nl_optim_step(nl_optim *o) {
    if (!o || !o->ps) return nl_set_error(NL_EINVAL, "optim_step: optimizer not initialised");
    nl_params *ps = o->ps;
    const nl_optim_config *c = &o->cfg;
    if (ps->total != o->n_state)
        return nl_set_error(NL_ESTATE, "optim_step: the parameter store grew from %lld to %lld elements after optim_init",
                            (long long)o->n_state, (long long)ps->total);
    nl_status s = check_config(c);
    if (s) return s;
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        if (p->var.requires_grad && (p->group < 0 || p->group >= NL_MAX_GROUPS))
            return nl_set_error(NL_EINVAL, "optim_step: parameter '%s' has group %d (must be in [0, %d))", p->name,
                                p->group, NL_MAX_GROUPS);
    }
    const int f64 = ps->dtype == NL_F64;
    size_t es = nl_dtype_size(ps->dtype);
    if (c->kind == NL_OPT_SGD && c->momentum != 0 && !o->m) { /* momentum switched on after init */
        if (!(o->m = calloc((size_t)(ps->total > 0 ? ps->total : 1), es)))
            return nl_set_error(NL_ENOMEM, "optim_step: out of memory for the momentum buffer");
    }

    int bad;
    int64_t bad_at;
    double norm = global_norm(ps, &bad, &bad_at);
    if (bad >= 0) {
        double x = ld(ps->p[bad]->var.grad.data, f64, bad_at);
        return nl_set_error(NL_ENONFINITE, "optim_step: non-finite gradient in parameter '%s' (element %lld = %g); nothing updated",
                            ps->p[bad]->name, (long long)bad_at, x);
    }
    o->last_grad_norm = norm;
    double gs = 1.0;
    if (c->clip_norm > 0 && norm > c->clip_norm) gs = c->clip_norm / (norm + 1e-6);

    const double lr_t = nl_sched_lr(c, o->step);
    const int64_t t = o->step + 1;
    for (int i = 0; i < ps->n; i++) {
        nl_param *p = ps->p[i];
        if (!p->var.requires_grad) continue;
        const double lr = lr_t * o->group_lr[p->group] * (double)p->lr_mult;
        const double wd = c->weight_decay * o->group_wd[p->group] * (double)p->wd_mult;
        void *pv = p->var.val.data;
        const void *gv = p->var.grad.data;
        const int64_t off = p->offset, n = p->numel;
        if (c->kind == NL_OPT_SGD) {
            void *buf = c->momentum != 0 ? (char *)o->m + (size_t)off * es : NULL;
            update_sgd(pv, gv, buf, p->mask, f64, n, lr, wd, c->momentum, c->nesterov, gs);
        } else {
            const double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
            const int adamw = c->kind == NL_OPT_ADAMW;
            update_adam(pv, gv, (char *)o->m + (size_t)off * es, (char *)o->v + (size_t)off * es, p->mask, f64, n,
                        lr / bc1, sqrt(bc2), c->eps, c->beta1, c->beta2, adamw ? 0.0 : wd,
                        adamw ? 1.0 - lr * wd : 1.0, gs);
        }
    }
    o->step = t;
    return NL_OK;
}
