/* Folding each BatchNorm (eval mode) into the preceding conv / linear layer. */
#include "compress/compress.h"
#include <math.h>
#include <string.h>

nl_status nl_compress_bn_fold(const nl_model *src, nl_model *dst) {
    memset(dst, 0, sizeof *dst);
    if (!src->cfg.batchnorm) return nl_compress_clone(src, dst);
    nl_model_config cfg = src->cfg;
    cfg.batchnorm = 0;
    nl_status s = nl_model_init(dst, &cfg, 0);
    if (s) return s;
    int d = 0;
    for (int l = 0; l < src->n_layers; l++, d++) {
        const nl_model_layer *S = &src->layer[l];
        nl_model_layer *D = &dst->layer[d];
        if (d >= dst->n_layers || !D->w || !D->b || D->rm) {
            nl_model_free(dst);
            return nl_set_error(NL_ESTATE, "bn fold: layer %d has no counterpart in the folded model", l);
        }
        const nl_model_layer *B = (l + 1 < src->n_layers && src->layer[l + 1].rm) ? &src->layer[l + 1] : NULL;
        int64_t rows = S->w->val.shape[0], row = nl_tensor_numel(&S->w->val) / rows;
        for (int64_t o = 0; o < rows; o++) {
            double a = 1, b0 = S->b ? nl_compress_get(src, S->b, o) : 0, b = b0;
            if (B) {
                double g = nl_compress_get(src, B->w, o), be = nl_compress_get(src, B->b, o);
                double mu = nl_compress_get(src, B->rm, o), var = nl_compress_get(src, B->rv, o);
                a = g / sqrt(var + src->cfg.bn_eps);
                b = be + (b0 - mu) * a;
            }
            for (int64_t k = 0; k < row; k++) nl_compress_put(dst, D->w, o * row + k, a * nl_compress_get(src, S->w, o * row + k));
            nl_compress_put(dst, D->b, o, b);
        }
        if (B) l++;
    }
    return NL_OK;
}
