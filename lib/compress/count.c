/* Parameter, weight, multiply-accumulate and FLOP counts of an nl_model; storage size at k-bit weights. */
#include "compress/compress.h"
#include <string.h>

nl_status nl_compress_count(const nl_model *m, nl_compress_counts *out) {
    memset(out, 0, sizeof *out);
    const nl_model_config *c = &m->cfg;
    out->params = nl_model_num_params(m, 0);
    int block = 0;
    for (int l = 0; l < m->n_layers; l++) {
        const nl_model_layer *L = &m->layer[l];
        const nl_tensor *w = &L->w->val;
        if (L->rm) { /* BatchNorm: a scale and a shift per output value, counted with the preceding layer */
            continue;
        }
        int64_t positions = 1;
        if (w->ndim == 4) {
            int h = c->in_height, ww = c->in_width;
            if (block > 0) nl_model_block_hw(c, block - 1, &h, &ww);
            positions = (int64_t)h * ww; /* stride 1, same padding: output size = input size */
            block++;
        }
        int64_t outs = w->shape[0] * positions;
        out->weights += nl_tensor_numel(w);
        out->macs += nl_tensor_numel(w) * positions;
        out->flops += 2 * nl_tensor_numel(w) * positions + (L->b ? outs : 0);
        if (l + 1 < m->n_layers && m->layer[l + 1].rm) out->flops += 2 * outs;
    }
    return NL_OK;
}

double nl_compress_size_bytes(const nl_model *m, int bits) {
    double bytes = 0;
    for (int l = 0; l < m->n_layers; l++) {
        const nl_model_layer *L = &m->layer[l];
        const nl_var *v[4] = {L->w, L->b, L->rm, L->rv};
        for (int t = 0; t < 4; t++) {
            if (!v[t]) continue;
            int64_t n = nl_tensor_numel(&v[t]->val);
            if (t == 0 && !L->rm && bits < 32) bytes += (double)n * bits / 8.0 + 8.0 * (double)v[t]->val.shape[0];
            else bytes += 4.0 * (double)n;
        }
    }
    return bytes;
}
