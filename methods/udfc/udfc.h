/* methods/udfc — Unified Data-Free Compression (Bai et al., ICCV 2023): pruning and quantisation without data or
 * fine-tuning, compensated in the next layer in closed form (lib/compress/compensate.h; README.md derives it).
 * This folder holds the Fashion-MNIST protocol (pretrained LeNet-300-100 with BatchNorm and a small BatchNorm CNN,
 * compressed by every variant), the ledger entry `udfc` and `nnlab udfc`. */
#ifndef NL_UDFC_H
#define NL_UDFC_H
#include "compress/compensate.h"
#include "nnlab/data.h"
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_UDFC_RATIOS 4 /* 50, 60, 70, 80 % */

typedef enum nl_udfc_net { NL_UDFC_MLP = 0, NL_UDFC_CNN = 1 } nl_udfc_net;

typedef struct nl_udfc_config {
    int64_t limit, test_limit;   /* first training / test images (0 = all) */
    int64_t epochs_mlp, epochs_cnn;
    int cnn_c1, cnn_c2;          /* CNN conv widths */
    uint64_t seed;
    int verbose;
} nl_udfc_config;

/* Accuracies (fractions) of one pretrained net and its compressed variants; [r] indexes the ratios 50..80 %. */
typedef struct nl_udfc_seed_result {
    double base;                                   /* full precision, unpruned */
    double naive4, comp4, rand4;                   /* 4-bit weights, no pruning: plain, compensated, random control */
    double naive6, comp6;                          /* 6-bit weights, no pruning */
    double prune_fp[NL_UDFC_RATIOS], nm_fp[NL_UDFC_RATIOS], udfc_fp[NL_UDFC_RATIOS], rand_fp[NL_UDFC_RATIOS];
    double prune6[NL_UDFC_RATIOS], udfc6[NL_UDFC_RATIOS], rand6[NL_UDFC_RATIOS];
    double prune4[NL_UDFC_RATIOS], udfc4[NL_UDFC_RATIOS];
    double params, macs, params_r80, macs_r80;     /* counts of the full net and at 80 % pruning */
    double train_seconds;
} nl_udfc_seed_result;

extern const double nl_udfc_ratios[NL_UDFC_RATIOS];

nl_udfc_config nl_udfc_defaults(void);
/* Fashion-MNIST, first limit / test_limit images, raw [0, 1] pixels (the nets carry the standardisation). */
nl_status nl_udfc_load(const nl_udfc_config *cfg, nl_dataset *tr, nl_dataset *te);
/* Train the net from cfg->seed, then compress it every way and evaluate on te. */
nl_status nl_udfc_seed_run(const nl_udfc_config *cfg, nl_udfc_net net, const nl_dataset *tr, const nl_dataset *te,
                           nl_udfc_seed_result *out);

int nl_udfc_cli(int argc, char **argv);
extern const nl_experiment nl_exp_udfc;

#ifdef __cplusplus
}
#endif
#endif
