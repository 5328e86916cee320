/* Uniform k-bit weight quantisation (per output channel), symmetric and asymmetric. */
#include "compress/compress.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

nl_status nl_compress_check_bits(int bits) {
    if (bits < 1 || bits > 32) return nl_set_error(NL_EINVAL, "bit width %d is outside [1, 32]", bits);
    return NL_OK;
}

void nl_compress_quant_row(double *x, int64_t n, int bits, int symmetric, double *sq) {
    if (n < 1) return;
    double e = 0;
    if (symmetric && bits == 1) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += fabs(x[i]);
        s /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            double q = x[i] >= 0 ? s : -s;
            e += (x[i] - q) * (x[i] - q);
            x[i] = q;
        }
    } else if (symmetric) {
        double qmax = ldexp(1.0, bits - 1) - 1.0, amax = 0;
        for (int64_t i = 0; i < n; i++) amax = fmax(amax, fabs(x[i]));
        if (amax > 0) {
            double scale = amax / qmax;
            for (int64_t i = 0; i < n; i++) {
                double q = fmin(fmax(nearbyint(x[i] / scale), -qmax), qmax) * scale;
                e += (x[i] - q) * (x[i] - q);
                x[i] = q;
            }
        }
    } else {
        double L = ldexp(1.0, bits) - 1.0, mn = 0, mx = 0;
        for (int64_t i = 0; i < n; i++) mn = fmin(mn, x[i]), mx = fmax(mx, x[i]);
        if (mx > mn) {
            double scale = (mx - mn) / L, zp = nearbyint(-mn / scale);
            for (int64_t i = 0; i < n; i++) {
                double q = (fmin(fmax(nearbyint(x[i] / scale) + zp, 0.0), L) - zp) * scale;
                e += (x[i] - q) * (x[i] - q);
                x[i] = q;
            }
        }
    }
    if (sq) *sq += e;
}

nl_status nl_compress_quantise(nl_model *m, int bits, int symmetric, nl_quant_report *rep) {
    nl_status s = nl_compress_check_bits(bits);
    if (s) return s;
    nl_quant_report r;
    memset(&r, 0, sizeof r);
    double norm = 0;
    for (int l = 0; l < m->n_layers; l++) {
        nl_var *w = m->layer[l].w;
        if (m->layer[l].rm || !w) continue; /* BatchNorm gamma stays full precision */
        int64_t rows = w->val.shape[0], row = nl_tensor_numel(&w->val) / rows;
        double *buf = malloc((size_t)row * sizeof *buf); /* [row] */
        if (!buf) return nl_set_error(NL_ENOMEM, "quantise: out of memory");
        for (int64_t o = 0; o < rows; o++) {
            for (int64_t k = 0; k < row; k++) buf[k] = nl_compress_get(m, w, o * row + k);
            for (int64_t k = 0; k < row; k++) norm += buf[k] * buf[k];
            double *orig = malloc((size_t)row * sizeof *orig); /* [row] */
            if (!orig) {
                free(buf);
                return nl_set_error(NL_ENOMEM, "quantise: out of memory");
            }
            memcpy(orig, buf, (size_t)row * sizeof *orig);
            nl_compress_quant_row(buf, row, bits, symmetric, &r.sq_err);
            for (int64_t k = 0; k < row; k++) {
                r.max_abs_err = fmax(r.max_abs_err, fabs(orig[k] - buf[k]));
                nl_compress_put(m, w, o * row + k, buf[k]);
            }
            free(orig);
        }
        r.n_weights += rows * row;
        free(buf);
    }
    r.rel_err = norm > 0 ? sqrt(r.sq_err / norm) : 0;
    if (rep) *rep = r;
    return NL_OK;
}
