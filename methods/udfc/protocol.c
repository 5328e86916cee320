/* The UDFC protocol on Fashion-MNIST: train a net (LeNet-300-100 with BatchNorm, or a small BatchNorm CNN), then
 * compress it by every variant (prune only, Neuron Merging, UDFC, random-coefficient control; 4 / 6-bit weights)
 * without data or fine-tuning, and evaluate each on the test images. */
#include "udfc/udfc.h"
#include "compress/compress.h"
#include "nnlab/train.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const double nl_udfc_ratios[NL_UDFC_RATIOS] = {0.5, 0.6, 0.7, 0.8};

nl_udfc_config nl_udfc_defaults(void) {
    nl_udfc_config c;
    memset(&c, 0, sizeof c);
    c.epochs_mlp = 10;
    c.epochs_cnn = 5;
    c.cnn_c1 = 16;
    c.cnn_c2 = 32;
    c.seed = 1;
    return c;
}

nl_status nl_udfc_load(const nl_udfc_config *cfg, nl_dataset *tr, nl_dataset *te) {
    nl_dataset ftr, fte;
    memset(tr, 0, sizeof *tr);
    memset(te, 0, sizeof *te);
    nl_status s = nl_dataset_load(&ftr, "fashion-mnist", "train", NULL);
    if (s) return s;
    if ((s = nl_dataset_load(&fte, "fashion-mnist", "test", NULL))) {
        nl_dataset_free(&ftr);
        return s;
    }
    s = nl_dataset_head(&ftr, cfg->limit, tr);
    if (!s) s = nl_dataset_head(&fte, cfg->test_limit, te);
    nl_dataset_free(&ftr);
    nl_dataset_free(&fte);
    if (s) nl_dataset_free(tr), nl_dataset_free(te);
    return s;
}

static nl_status train_net(const nl_udfc_config *cfg, nl_udfc_net net, const nl_dataset *tr, nl_model *m, double *secs) {
    double mean = 0, var = 0;
    int64_t n = tr->n * tr->d;
    for (int64_t i = 0; i < n; i++) mean += tr->x[i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) var += (tr->x[i] - mean) * (tr->x[i] - mean);
    nl_model_config mc;
    if (net == NL_UDFC_MLP) {
        int64_t sizes[4] = {784, 300, 100, 10};
        mc = nl_mlp_config(4, sizes, NL_ACT_RELU, 0.0);
        mc.batchnorm = 1;
    } else {
        int ch[2] = {cfg->cnn_c1, cfg->cnn_c2};
        mc = nl_cnn_config(1, 28, 28, 2, ch, 0, 10);
    }
    mc.input_mean = mean;
    mc.input_std = sqrt(var / (double)n);
    nl_status s = nl_model_init(m, &mc, cfg->seed);
    if (s) return s;
    nl_train_config tc = nl_train_defaults();
    tc.epochs = net == NL_UDFC_MLP ? cfg->epochs_mlp : cfg->epochs_cnn;
    tc.batch = 128;
    tc.seed = cfg->seed;
    tc.verbose = 0;
    nl_train_result res;
    s = nl_train_run(m, tr, NULL, &tc, NULL, &res);
    *secs = res.train_seconds;
    nl_train_result_free(&res);
    if (s) nl_model_free(m);
    return s;
}

/* accuracy of src compressed with (ratio, bits, kind, quant_comp) */
static nl_status variant(const nl_model *src, const nl_dataset *te, double ratio, int bits, nl_comp_kind kind, int qc,
                         uint64_t seed, double *acc, nl_model *keep) {
    nl_compensate_opts o = nl_compensate_defaults();
    o.ratio = ratio;
    o.bits = bits;
    o.prune_comp = kind;
    o.quant_comp = qc;
    o.seed = seed;
    nl_model m;
    nl_status s = nl_compensate(src, &o, &m);
    if (s) return s;
    s = nl_evaluate(&m, te, acc, NULL);
    if (keep && !s) *keep = m;
    else nl_model_free(&m);
    return s;
}

nl_status nl_udfc_seed_run(const nl_udfc_config *cfg, nl_udfc_net net, const nl_dataset *tr, const nl_dataset *te,
                           nl_udfc_seed_result *r) {
    memset(r, 0, sizeof *r);
    nl_model m;
    nl_status s = train_net(cfg, net, tr, &m, &r->train_seconds);
    if (s) return s;
    uint64_t cs = cfg->seed * 1000 + (uint64_t)net; /* the random control's stream */
    nl_compress_counts k;
    s = nl_evaluate(&m, te, &r->base, NULL);
    if (!s) s = nl_compress_count(&m, &k);
    if (!s) r->params = (double)k.params, r->macs = (double)k.macs;
    if (!s) s = variant(&m, te, 0, 4, NL_COMP_NONE, 0, cs, &r->naive4, NULL);
    if (!s) s = variant(&m, te, 0, 4, NL_COMP_UDFC, 1, cs, &r->comp4, NULL);
    if (!s) s = variant(&m, te, 0, 4, NL_COMP_RANDOM, 1, cs, &r->rand4, NULL);
    if (!s) s = variant(&m, te, 0, 6, NL_COMP_NONE, 0, cs, &r->naive6, NULL);
    if (!s) s = variant(&m, te, 0, 6, NL_COMP_UDFC, 1, cs, &r->comp6, NULL);
    for (int i = 0; i < NL_UDFC_RATIOS && !s; i++) {
        double q = nl_udfc_ratios[i];
        nl_model p80;
        s = variant(&m, te, q, 0, NL_COMP_NONE, 0, cs, &r->prune_fp[i], i == NL_UDFC_RATIOS - 1 ? &p80 : NULL);
        if (!s && i == NL_UDFC_RATIOS - 1) {
            s = nl_compress_count(&p80, &k);
            r->params_r80 = (double)k.params, r->macs_r80 = (double)k.macs;
            nl_model_free(&p80);
        }
        if (!s) s = variant(&m, te, q, 0, NL_COMP_NM, 0, cs, &r->nm_fp[i], NULL);
        if (!s) s = variant(&m, te, q, 0, NL_COMP_UDFC, 1, cs, &r->udfc_fp[i], NULL);
        if (!s) s = variant(&m, te, q, 0, NL_COMP_RANDOM, 1, cs, &r->rand_fp[i], NULL);
        if (!s) s = variant(&m, te, q, 6, NL_COMP_NONE, 0, cs, &r->prune6[i], NULL);
        if (!s) s = variant(&m, te, q, 6, NL_COMP_UDFC, 1, cs, &r->udfc6[i], NULL);
        if (!s) s = variant(&m, te, q, 6, NL_COMP_RANDOM, 1, cs, &r->rand6[i], NULL);
        if (!s) s = variant(&m, te, q, 4, NL_COMP_NONE, 0, cs, &r->prune4[i], NULL);
        if (!s) s = variant(&m, te, q, 4, NL_COMP_UDFC, 1, cs, &r->udfc4[i], NULL);
    }
    nl_model_free(&m);
    return s;
}
