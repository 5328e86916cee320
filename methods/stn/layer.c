/* The STN hyper-layer (forward, backward, per-example L2 penalty), the hyperparameter transforms and the tuner's
 * Adam steps on the unconstrained hyperparameters t and the perturbation scales q (stn/stn.h). */
#include "stn/stn.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_status nl_stn_linear_init(nl_stn_linear *l, int64_t in, int64_t out, int64_t nh, nl_rng *r) {
    memset(l, 0, sizeof *l);
    if (in < 1 || out < 1 || nh < 0) return nl_set_error(NL_EINVAL, "stn: bad layer shape (%lld, %lld, %lld)", (long long)in, (long long)out, (long long)nh);
    l->in = in, l->out = out, l->nh = nh;
    int64_t rows = nh ? 2 * out : out;
    l->W = calloc((size_t)(rows * in), sizeof(float));
    l->dW = calloc((size_t)(rows * in), sizeof(float));
    l->vW = calloc((size_t)(rows * in), sizeof(float));
    l->be = calloc((size_t)out, sizeof(float));
    l->dbe = calloc((size_t)out, sizeof(float));
    l->vbe = calloc((size_t)out, sizeof(float));
    if (nh) {
        l->bh = calloc((size_t)out, sizeof(float));
        l->dbh = calloc((size_t)out, sizeof(float));
        l->vbh = calloc((size_t)out, sizeof(float));
        l->U = calloc((size_t)(2 * out * nh), sizeof(float));
        l->dU = calloc((size_t)(2 * out * nh), sizeof(float));
        l->vU = calloc((size_t)(2 * out * nh), sizeof(float));
    }
    if (!l->W || !l->dW || !l->vW || !l->be || !l->dbe || !l->vbe ||
        (nh && (!l->bh || !l->dbh || !l->vbh || !l->U || !l->dU || !l->vU))) {
        nl_stn_linear_free(l);
        return nl_set_error(NL_ENOMEM, "stn: out of memory");
    }
    double sd = 1.0 / sqrt((double)in);
    for (int64_t i = 0; i < rows * in; i++) l->W[i] = (float)(sd * (2 * nl_rng_uniform(r) - 1));
    for (int64_t i = 0; i < out; i++) l->be[i] = (float)(sd * (2 * nl_rng_uniform(r) - 1));
    if (nh) {
        for (int64_t i = 0; i < out; i++) l->bh[i] = (float)(sd * (2 * nl_rng_uniform(r) - 1));
        for (int64_t i = 0; i < 2 * out * nh; i++) l->U[i] = (float)(0.01 * nl_rng_normal(r));
    }
    l->s = 1.0f;
    return NL_OK;
}

void nl_stn_linear_free(nl_stn_linear *l) {
    free(l->W), free(l->dW), free(l->vW), free(l->be), free(l->dbe), free(l->vbe);
    free(l->bh), free(l->dbh), free(l->vbh), free(l->U), free(l->dU), free(l->vU);
    memset(l, 0, sizeof *l);
}

void nl_stn_linear_zero_grad(nl_stn_linear *l) {
    int64_t rows = l->nh ? 2 * l->out : l->out;
    memset(l->dW, 0, (size_t)(rows * l->in) * sizeof(float));
    memset(l->dbe, 0, (size_t)l->out * sizeof(float));
    if (l->nh) {
        memset(l->dbh, 0, (size_t)l->out * sizeof(float));
        memset(l->dU, 0, (size_t)(2 * l->out * l->nh) * sizeof(float));
    }
    l->ds = 0;
}

void nl_stn_linear_forward(const nl_stn_linear *l, int64_t B, const float *x, const float *h, float *y, float *ag, float *zc) {
    const int64_t out = l->out, rows = l->nh ? 2 * out : out;
    /* ag [B, rows] = x W^T (a without bias | g) */
    nl_gemm(NL_F32, 0, 1, B, rows, l->in, 1.0, x, l->in, l->W, l->in, 0.0, ag, rows);
    if (l->nh) nl_gemm(NL_F32, 0, 1, B, 2 * out, l->nh, 1.0, h, l->nh, l->U, l->nh, 0.0, zc, 2 * out); /* zc [B, 2 out] */
    for (int64_t b = 0; b < B; b++) {
        float *a = ag + b * rows, *yb = y + b * out;
        for (int64_t o = 0; o < out; o++) {
            a[o] += l->be[o];
            float v = l->s * a[o];
            if (l->nh) {
                const float *z = zc + b * 2 * out;
                v += z[o] * a[out + o] + z[out + o] * l->bh[o];
            }
            yb[o] = v;
        }
    }
}

void nl_stn_linear_backward(nl_stn_linear *l, int64_t B, const float *x, const float *h, const float *ag, const float *zc,
                            const float *dy, const float *dzadd, float *dx, float *dh, float *scratch) {
    const int64_t out = l->out, rows = l->nh ? 2 * out : out;
    double ds = 0;
    /* scratch [B, rows] = (d a | d g); for nh > 0 the z gradient goes to a second half computed in place afterwards */
    float *dag = scratch;
    for (int64_t b = 0; b < B; b++) {
        const float *a = ag + b * rows, *d = dy + b * out;
        float *o = dag + b * rows;
        for (int64_t k = 0; k < out; k++) {
            ds += (double)d[k] * a[k];
            o[k] = l->s * d[k];
            l->dbe[k] += o[k];
        }
        if (l->nh) {
            const float *z = zc + b * 2 * out;
            for (int64_t k = 0; k < out; k++) {
                o[out + k] = d[k] * z[k];
                l->dbh[k] += d[k] * z[out + k];
            }
        }
    }
    l->ds += (float)ds;
    nl_gemm(NL_F32, 1, 0, rows, l->in, B, 1.0, dag, rows, x, l->in, 1.0, l->dW, l->in);
    if (dx) nl_gemm(NL_F32, 0, 0, B, l->in, rows, 1.0, dag, rows, l->W, l->in, 0.0, dx, l->in);
    if (l->nh) {
        /* dz [B, 2 out] = (dy * g | dy * bh), reusing scratch */
        float *dz = scratch;
        for (int64_t b = 0; b < B; b++) {
            const float *a = ag + b * rows, *d = dy + b * out;
            float *o = dz + b * 2 * out;
            for (int64_t k = 0; k < out; k++) {
                o[k] = d[k] * a[out + k];
                o[out + k] = d[k] * l->bh[k];
                if (dzadd) o[k] += dzadd[b * 2 * out + k], o[out + k] += dzadd[b * 2 * out + out + k];
            }
        }
        nl_gemm(NL_F32, 1, 0, 2 * out, l->nh, B, 1.0, dz, 2 * out, h, l->nh, 1.0, l->dU, l->nh);
        if (dh) nl_gemm(NL_F32, 0, 0, B, l->nh, 2 * out, 1.0, dz, 2 * out, l->U, l->nh, 0.0, dh, l->nh);
    }
}

double nl_stn_linear_l2(nl_stn_linear *l, int64_t B, const float *lam, const float *zc, double scale, float *dzadd) {
    const int64_t out = l->out, in = l->in;
    double lbar = 0;
    for (int64_t b = 0; b < B; b++) lbar += lam[b];
    lbar /= (double)B;
    const double s = l->s;
    double pen = 0, dsum = 0;
    for (int64_t r = 0; r < out; r++) {
        const float *we = l->W + r * in;
        double A = 0, C = 0, D = 0;
        for (int64_t j = 0; j < in; j++) A += (double)we[j] * we[j];
        if (!l->nh) {
            pen += lbar * s * s * A;
            dsum += lbar * 2 * s * A;
            float c = (float)(scale * 2 * s * s * lbar);
            float *dw = l->dW + r * in;
            for (int64_t j = 0; j < in; j++) dw[j] += c * we[j];
            continue;
        }
        const float *wh = l->W + (out + r) * in;
        for (int64_t j = 0; j < in; j++) C += (double)we[j] * wh[j], D += (double)wh[j] * wh[j];
        double m = 0, q = 0; /* mean_i lam_i z_ir, mean_i lam_i z_ir^2 */
        for (int64_t b = 0; b < B; b++) {
            double z = zc[b * 2 * out + r];
            m += lam[b] * z, q += lam[b] * z * z;
            if (dzadd) dzadd[b * 2 * out + r] += (float)(scale * lam[b] * (2 * s * C + 2 * z * D) / (double)B);
        }
        m /= (double)B, q /= (double)B;
        pen += lbar * s * s * A + 2 * s * m * C + q * D;
        dsum += 2 * s * lbar * A + 2 * m * C;
        float ce = (float)(scale * 2 * s * s * lbar), ch = (float)(scale * 2 * s * m), he = (float)(scale * 2 * s * m),
              hh = (float)(scale * 2 * q);
        float *dwe = l->dW + r * in, *dwh = l->dW + (out + r) * in;
        for (int64_t j = 0; j < in; j++) {
            dwe[j] += ce * we[j] + ch * wh[j];
            dwh[j] += he * we[j] + hh * wh[j];
        }
    }
    l->ds += (float)(scale * dsum);
    return pen;
}

static void sgd(float *p, float *v, const float *g, int64_t n, float lr, float mom) {
    for (int64_t i = 0; i < n; i++) {
        v[i] = mom * v[i] + g[i];
        p[i] -= lr * v[i];
    }
}

void nl_stn_linear_sgd(nl_stn_linear *l, double lr, double mom, int bias) {
    int64_t rows = l->nh ? 2 * l->out : l->out;
    sgd(l->W, l->vW, l->dW, rows * l->in, (float)lr, (float)mom);
    sgd(&l->s, &l->vs, &l->ds, 1, (float)lr, (float)mom);
    if (bias) sgd(l->be, l->vbe, l->dbe, l->out, (float)lr, (float)mom);
    if (l->nh) {
        sgd(l->U, l->vU, l->dU, 2 * l->out * l->nh, (float)lr, (float)mom);
        if (bias) sgd(l->bh, l->vbh, l->dbh, l->out, (float)lr, (float)mom);
    }
}

/* ---- transforms ---- */
double nl_stn_softplus(double x) { return x > 30 ? x : log1p(exp(x)); }
static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

double nl_stn_hparam(nl_stn_hkind k, double t) {
    switch (k) {
    case NL_STN_HK_INDROP: return sigm(t);
    case NL_STN_HK_DROP: return 0.9 * sigm(t);
    default: return exp(t);
    }
}

double nl_stn_hparam_inv(nl_stn_hkind k, double v) {
    switch (k) {
    case NL_STN_HK_INDROP: return log(v) - log1p(-v);
    case NL_STN_HK_DROP: return log(v / 0.9) - log1p(-v / 0.9);
    default: return log(v);
    }
}

double nl_stn_entropy(const double *q, int nh) {
    double H = 0;
    for (int k = 0; k < nh; k++) H += log(nl_stn_softplus(q[k]) * sqrt(2 * M_PI * M_E));
    return H;
}

/* ---- tuner ---- */
void nl_stn_tuner_init(nl_stn_tuner *tu, int nh, const double *t0, double scale0, double lr_t, double lr_q, double tau) {
    memset(tu, 0, sizeof *tu);
    tu->nh = nh;
    for (int k = 0; k < nh; k++) tu->t[k] = t0[k], tu->q[k] = log(expm1(scale0)); /* inverse softplus */
    tu->lr_t = lr_t, tu->lr_q = lr_q, tu->tau = tau;
}

void nl_stn_tuner_sample(const nl_stn_tuner *tu, int64_t B, int perturb, nl_rng *r, float *h, float *eps) {
    for (int64_t b = 0; b < B; b++)
        for (int k = 0; k < tu->nh; k++) {
            double e = perturb ? nl_rng_normal(r) : 0.0;
            if (eps) eps[b * tu->nh + k] = (float)e;
            h[b * tu->nh + k] = (float)(tu->t[k] + nl_stn_softplus(tu->q[k]) * e);
        }
}

static void adam(double *p, double *m, double *v, int64_t step, const double *g, int n, double lr) {
    const double b1 = 0.9, b2 = 0.999, e = 1e-8;
    double c1 = 1 - pow(b1, (double)step), c2 = 1 - pow(b2, (double)step);
    for (int k = 0; k < n; k++) {
        m[k] = b1 * m[k] + (1 - b1) * g[k];
        v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
        p[k] -= lr * (m[k] / c1) / (sqrt(v[k] / c2) + e);
    }
}

void nl_stn_tuner_step_t(nl_stn_tuner *tu, int64_t B, const float *dh) {
    double g[8] = {0};
    for (int64_t b = 0; b < B; b++)
        for (int k = 0; k < tu->nh; k++) g[k] += dh[b * tu->nh + k];
    adam(tu->t, tu->mt, tu->vt, ++tu->steps_t, g, tu->nh, tu->lr_t);
}

void nl_stn_tuner_step_q(nl_stn_tuner *tu, int64_t B, const float *dh, const float *eps) {
    double g[8] = {0};
    for (int64_t b = 0; b < B; b++)
        for (int k = 0; k < tu->nh; k++) g[k] += (double)dh[b * tu->nh + k] * eps[b * tu->nh + k];
    for (int k = 0; k < tu->nh; k++) {
        double sg = sigm(tu->q[k]);                  /* softplus'(q) */
        g[k] = g[k] * sg - tu->tau * sg / nl_stn_softplus(tu->q[k]); /* d(L - tau H)/dq */
    }
    adam(tu->q, tu->mq, tu->vq, ++tu->steps_q, g, tu->nh, tu->lr_q);
}
