/* RoPE frequencies (plain, linear, power, truncated, xPos), randomised positions, and the differentiable
 * rotation ops nl_rope / nl_rope_xpos (rotate_half pairing). See include/transformer/rope.h. */
#include "transformer/rope.h"
#include "nnlab/extend.h"
#include <math.h>
#include <string.h>

static const char *const rope_names[NL_ROPE_VARIANT_COUNT] = {"plain", "linear", "power", "truncated", "xpos"};

const char *nl_rope_variant_name(nl_rope_variant v) {
    return (v >= 0 && v < NL_ROPE_VARIANT_COUNT) ? rope_names[v] : "?";
}

nl_status nl_rope_variant_parse(const char *s, nl_rope_variant *out) {
    for (int i = 0; s && i < NL_ROPE_VARIANT_COUNT; i++)
        if (!strcmp(s, rope_names[i])) {
            *out = (nl_rope_variant)i;
            return NL_OK;
        }
    return nl_set_error(NL_EINVAL, "unknown RoPE variant '%s' (choose plain|linear|power|truncated|xpos)",
                        s ? s : "(null)");
}

nl_rope_config nl_rope_config_default(void) {
    nl_rope_config c;
    memset(&c, 0, sizeof c);
    c.variant = NL_ROPE_PLAIN;
    c.base = 10000.0;
    c.scale_train = 1.0;
    c.scale_eval = 1.0;
    c.power = 0.5;
    c.truncate = 2048.0;
    c.xpos_gamma = 512.0;
    c.randomized = 0;
    return c;
}

nl_status nl_rope_config_check(const nl_rope_config *cfg) {
    if (!cfg) return nl_set_error(NL_EINVAL, "rope: config is NULL");
    if (cfg->variant < 0 || cfg->variant >= NL_ROPE_VARIANT_COUNT)
        return nl_set_error(NL_EINVAL, "rope: variant %d out of range", (int)cfg->variant);
    if (!(cfg->base > 1.0) || !isfinite(cfg->base))
        return nl_set_error(NL_EINVAL, "rope: base must be > 1 (got %g)", cfg->base);
    if (!(cfg->scale_train > 0) || !isfinite(cfg->scale_train))
        return nl_set_error(NL_EINVAL, "rope: scale_train must be > 0 (got %g)", cfg->scale_train);
    if (!(cfg->scale_eval > 0) || !isfinite(cfg->scale_eval))
        return nl_set_error(NL_EINVAL, "rope: scale_eval must be > 0 (got %g)", cfg->scale_eval);
    if (cfg->variant == NL_ROPE_PLAIN && (cfg->scale_train != 1.0 || cfg->scale_eval != 1.0))
        return nl_set_error(NL_EINVAL, "rope: variant plain takes no scale (got train %g, eval %g); use linear",
                            cfg->scale_train, cfg->scale_eval);
    if (cfg->variant == NL_ROPE_POWER && (!(cfg->power > 0) || !isfinite(cfg->power)))
        return nl_set_error(NL_EINVAL, "rope: power k must be > 0 (got %g)", cfg->power);
    if (cfg->variant == NL_ROPE_TRUNCATED && (!(cfg->truncate > 0) || !isfinite(cfg->truncate)))
        return nl_set_error(NL_EINVAL, "rope: truncate T must be > 0 (got %g)", cfg->truncate);
    if (cfg->variant == NL_ROPE_XPOS && (!(cfg->xpos_gamma > 0) || !isfinite(cfg->xpos_gamma)))
        return nl_set_error(NL_EINVAL, "rope: xpos gamma must be > 0 (got %g)", cfg->xpos_gamma);
    return NL_OK;
}

nl_status nl_rope_freqs_scaled(const nl_rope_config *cfg, int dim, double scale, double *theta) {
    nl_status st = nl_rope_config_check(cfg);
    if (st) return st;
    if (dim < 2 || dim % 2)
        return nl_set_error(NL_EINVAL, "rope: dim must be even and >= 2 (got %d)", dim);
    if (!(scale > 0) || !isfinite(scale)) return nl_set_error(NL_EINVAL, "rope: scale must be > 0 (got %g)", scale);
    if (!theta) return nl_set_error(NL_EINVAL, "rope: theta is NULL");
    const int h = dim / 2;
    const double s = cfg->variant == NL_ROPE_PLAIN ? 1.0 : scale;
    const double b = 2.0 * M_PI / cfg->truncate, a = b / 8.0, rho = 2.0 * M_PI / (16.0 * cfg->truncate);
    for (int j = 0; j < h; j++) {
        double t = pow(cfg->base, -2.0 * j / dim) / s;
        switch (cfg->variant) {
        case NL_ROPE_POWER: t *= pow(1.0 - (double)j / h, cfg->power); break;
        case NL_ROPE_TRUNCATED: t = t >= b ? t : (t >= a ? rho : 0.0); break;
        default: break;
        }
        theta[j] = t;
    }
    return NL_OK;
}

nl_status nl_rope_freqs(const nl_rope_config *cfg, int dim, double *theta) {
    if (!cfg) return nl_set_error(NL_EINVAL, "rope: config is NULL");
    return nl_rope_freqs_scaled(cfg, dim, cfg->scale_train, theta);
}

nl_status nl_rope_xpos_zeta(int dim, double *zeta) {
    if (dim < 2 || dim % 2) return nl_set_error(NL_EINVAL, "rope: dim must be even and >= 2 (got %d)", dim);
    for (int j = 0; j < dim / 2; j++) zeta[j] = (2.0 * j + 0.4 * dim) / (1.4 * dim);
    return NL_OK;
}

void nl_rope_random_positions(nl_rng *rng, int64_t T, double L, double *pos) {
    double t = 0;
    for (int64_t i = 0; i < T; i++) {
        t += 2.0 * nl_rng_uniform(rng);
        pos[i] = t;
    }
    if (T <= 0) return;
    double last = pos[T - 1], f = L / (last > L ? last : L);
    for (int64_t i = 0; i < T; i++) pos[i] *= f;
}

/* ---- kernels ---- */

void nl_rope_rotate_row(nl_dtype dt, void *dst, const void *src, int64_t D, double pos, const double *theta,
                        int inverse) {
    const int64_t h = D / 2;
    const double sg = inverse ? -1.0 : 1.0;
    if (dt == NL_F32) {
        const float *x = src;
        float *y = dst;
        for (int64_t j = 0; j < h; j++) {
            double a = pos * theta[j], cs = cos(a), sn = sg * sin(a);
            double x0 = x[j], x1 = x[j + h];
            y[j] = (float)(x0 * cs - x1 * sn);
            y[j + h] = (float)(x1 * cs + x0 * sn);
        }
    } else {
        const double *x = src;
        double *y = dst;
        for (int64_t j = 0; j < h; j++) {
            double a = pos * theta[j], cs = cos(a), sn = sg * sin(a);
            double x0 = x[j], x1 = x[j + h];
            y[j] = x0 * cs - x1 * sn;
            y[j + h] = x1 * cs + x0 * sn;
        }
    }
}

typedef struct {
    int64_t B, H, T, D;
    double *cs, *sn;   /* (T, D/2) cos / sin of the angles */
    double *fac;       /* (T, D/2) xPos factors or NULL */
} rope_saved;

/* y = fac * R(cos, sin) x per row; inverse uses the transposed rotation (for backward), the same factor. */
#define ROPE_APPLY(TY)                                                                                   \
    static void rope_apply_##TY(const rope_saved *s, const TY *x, const int64_t *xs, TY *y, int inverse, \
                                int accumulate) {                                                        \
        const int64_t h = s->D / 2, BH = s->B * s->H;                                                     \
        _Pragma("omp parallel for schedule(static) if (BH * s->T * s->D > 65536)")                       \
        for (int64_t bh = 0; bh < BH; bh++) {                                                            \
            int64_t b = bh / s->H, hh = bh % s->H;                                                        \
            for (int64_t t = 0; t < s->T; t++) {                                                          \
                const TY *xr = x + b * xs[0] + hh * xs[1] + t * xs[2];                                    \
                TY *yr = y + ((bh * s->T) + t) * s->D;                                                    \
                const double *cs = s->cs + t * h, *sn = s->sn + t * h;                                    \
                const double *fc = s->fac ? s->fac + t * h : NULL;                                        \
                for (int64_t j = 0; j < h; j++) {                                                         \
                    double x0 = xr[j * xs[3]], x1 = xr[(j + h) * xs[3]];                                  \
                    double c = cs[j], sg = inverse ? -sn[j] : sn[j], f = fc ? fc[j] : 1.0;                \
                    double y0 = f * (x0 * c - x1 * sg), y1 = f * (x1 * c + x0 * sg);                      \
                    if (accumulate) {                                                                     \
                        yr[j] += (TY)y0;                                                                  \
                        yr[j + h] += (TY)y1;                                                              \
                    } else {                                                                              \
                        yr[j] = (TY)y0;                                                                   \
                        yr[j + h] = (TY)y1;                                                               \
                    }                                                                                     \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
    }
ROPE_APPLY(float)
ROPE_APPLY(double)

static void rope_backward(nl_ctx *c, nl_node *n) {
    const rope_saved *s = n->saved;
    nl_tensor *gx = nl_grad(c, n->in[0]);
    if (!gx) return;
    const nl_tensor *go = nl_node_grad_out(n);
    /* go is contiguous [B,H,T,D]; gx contiguous too. dx = fac * R^T go. */
    int64_t gs[4] = {s->H * s->T * s->D, s->T * s->D, s->D, 1};
    if (go->dtype == NL_F32) rope_apply_float(s, go->data, gs, gx->data, 1, 1);
    else rope_apply_double(s, go->data, gs, gx->data, 1, 1);
}

static nl_var *rope_common(nl_ctx *c, const char *op, nl_var *x, const double *positions, const double *theta,
                           const double *zeta, double gamma, int is_key) {
    NL_REQUIRE(x);
    if (x->val.ndim != 4) return nl_op_fail(NL_ESHAPE, op, "x must be [B, H, T, D]", x, NULL);
    const int64_t B = x->val.shape[0], H = x->val.shape[1], T = x->val.shape[2], D = x->val.shape[3];
    if (D < 2 || D % 2) return nl_op_fail(NL_ESHAPE, op, "head dim D must be even", x, NULL);
    if (!positions || !theta) return nl_op_fail(NL_EINVAL, op, "positions and theta are required", x, NULL);
    if (zeta && !(gamma > 0)) return nl_op_fail(NL_EINVAL, op, "gamma must be > 0", x, NULL);
    const int64_t h = D / 2;
    rope_saved *s = nl_scratch(c, sizeof *s);
    if (!s) return NULL;
    s->B = B; s->H = H; s->T = T; s->D = D;
    s->cs = nl_scratch(c, sizeof(double) * (size_t)(T * h));
    s->sn = nl_scratch(c, sizeof(double) * (size_t)(T * h));
    s->fac = zeta ? nl_scratch(c, sizeof(double) * (size_t)(T * h)) : NULL;
    if (!s->cs || !s->sn || (zeta && !s->fac)) return NULL;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < h; j++) {
            double a = positions[t] * theta[j];
            s->cs[t * h + j] = cos(a);
            s->sn[t * h + j] = sin(a);
            if (zeta) s->fac[t * h + j] = pow(zeta[j], (is_key ? -positions[t] : positions[t]) / gamma);
        }
    int64_t shape[4] = {B, H, T, D};
    nl_var *y = nl_op_out(c, x->val.dtype, 4, shape);
    if (!y) return NULL;
    if (x->val.dtype == NL_F32) rope_apply_float(s, x->val.data, x->val.stride, y->val.data, 0, 0);
    else rope_apply_double(s, x->val.data, x->val.stride, y->val.data, 0, 0);
    nl_node *nd = nl_op_record(c, op, y, rope_backward, 1, &x);
    if (nd) nd->saved = s;
    return y;
}

nl_var *nl_rope(nl_ctx *c, nl_var *x, const double *positions, const double *theta) {
    return rope_common(c, "rope", x, positions, theta, NULL, 0, 0);
}

nl_var *nl_rope_xpos(nl_ctx *c, nl_var *x, const double *positions, const double *theta, const double *zeta,
                     double gamma, int is_key) {
    if (!zeta) {
        NL_REQUIRE(x);
        return nl_op_fail(NL_EINVAL, "rope_xpos", "zeta is required", x, NULL);
    }
    return rope_common(c, "rope_xpos", x, positions, theta, zeta, gamma, is_key);
}
