/* lib/compress/resnet.h — a ResNet-20-style CNN for Fashion-MNIST (He et al. 2016's CIFAR ResNet) with a channel
 * count per convolution, for pruning and architecture search (TAS's InferCifarResNet shape: every conv has its own
 * width, a block's output width is that of its second conv).
 *
 * Layout (d = in_ch * in_h * in_w input rows, reshaped to [B, in_ch, in_h, in_w]):
 *   optional input average pooling by `pool` (2: 28x28 -> 14x14, a cheaper quick mode);
 *   stem: conv3x3(in_ch -> ch[0]) + BN + ReLU;
 *   stage s = 0, 1, 2 with blocks[s] basic blocks; the first block of stages 1 and 2 has stride 2; block j (counted
 *   over all stages, j = 0, 1, ...) maps width w_in to ch[1 + 2j] (conv a) then ch[2 + 2j] (conv b):
 *       y = ReLU(BN(conv3x3_b(ReLU(BN(conv3x3_a(x, stride))))) + shortcut(x)),
 *   shortcut = x when stride 1 and w_in == ch[2 + 2j], else a 1x1 projection conv (stride) + BN;
 *   global average pooling, linear to n_classes.
 * Convs have no bias (BN follows). BN: momentum 0.1, eps 1e-5, running statistics as non-trainable buffers.
 * Init (PyTorch's resnet): conv weights Kaiming normal (fan_out, ReLU gain), BN gamma 1 beta 0, linear U(+-1/sqrt(in)).
 *
 * Cost: FLOPs here are multiply-accumulates of the conv and linear layers (shortcut projections included; BN, ReLU,
 * pooling and additions excluded), per image — the quantity TAS's FLOP target constrains. */
#ifndef NNLAB_COMPRESS_RESNET_H
#define NNLAB_COMPRESS_RESNET_H
#include "compress/kd.h"
#include "nnlab/autograd.h"
#include "nnlab/data.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_RESNET_MAX_BLOCKS 9                                 /* per stage (ResNet-56) */
#define NL_RESNET_MAX_CONVS (1 + 2 * 3 * NL_RESNET_MAX_BLOCKS) /* stem + two per block */

typedef struct nl_resnet_config {
    int in_ch, in_h, in_w;       /* input image geometry (1, 28, 28) */
    int pool;                    /* input average pooling factor (1 = none, 2 = 28 -> 14) */
    int n_classes;               /* 10 */
    int blocks[3];               /* basic blocks per stage (1 .. NL_RESNET_MAX_BLOCKS) */
    int ch[NL_RESNET_MAX_CONVS]; /* output channels: [0] stem, [1 + 2j] conv a and [2 + 2j] conv b of block j */
} nl_resnet_config;

/* Fashion-MNIST geometry, `blocks` blocks per stage, widths (w, 2w, 4w) per stage as in ResNet-20 (w = 16). */
nl_resnet_config nl_resnet_default_config(int blocks, int w, int pool);
/* Number of convs in cfg: 1 + 2 * sum(blocks). */
int nl_resnet_num_convs(const nl_resnet_config *cfg);
/* Check a configuration (NL_EINVAL naming the bad field). */
nl_status nl_resnet_check(const nl_resnet_config *cfg);
/* Every channel count scaled by ratio (floor(c * ratio), at least 1): the uniform-width pruning baseline. */
nl_resnet_config nl_resnet_scale_width(const nl_resnet_config *cfg, double ratio);
/* Spatial side after the input pooling and after stage s (s = 0, 1, 2): hw[0..3]. */
void nl_resnet_sizes(const nl_resnet_config *cfg, int hw[4]);
/* FLOPs (multiply-accumulates per image, see above) and parameter count (trainable: conv, BN affine, linear). */
double nl_resnet_flops(const nl_resnet_config *cfg);
int64_t nl_resnet_param_count(const nl_resnet_config *cfg);
/* One line: "blocks 3/3/3, channels 16 16,16 16,16 ... (N MFLOPs, P params)". */
void nl_resnet_describe(const nl_resnet_config *cfg, char *buf, size_t n);

typedef struct nl_resnet_bn {
    nl_var *gamma, *beta;        /* (C) */
    nl_var *rmean, *rvar;        /* (C) running statistics (buffers) */
} nl_resnet_bn;

typedef struct nl_resnet_conv {
    nl_var *w;                   /* (out, in, k, k); NULL for an identity shortcut */
    nl_resnet_bn bn;
    int in, out, k, stride;
} nl_resnet_conv;

typedef struct nl_resnet {
    nl_resnet_config cfg;
    nl_params ps;                                  /* every tensor; buffers are non-trainable */
    nl_resnet_conv conv[NL_RESNET_MAX_CONVS];      /* as cfg.ch */
    nl_resnet_conv proj[3 * NL_RESNET_MAX_BLOCKS]; /* block j's shortcut (w NULL: identity) */
    nl_var *fc_w;                                  /* (n_classes, ch[last]) */
    nl_var *fc_b;                                  /* (n_classes) */
} nl_resnet;

/* Build and initialise (seeded). */
nl_status nl_resnet_init(nl_resnet *m, const nl_resnet_config *cfg, uint64_t seed);
void nl_resnet_free(nl_resnet *m);
/* Forward: x [B, d] -> logits [B, n_classes] (nl_kd_forward signature; ud is the nl_resnet). */
nl_var *nl_resnet_forward(nl_ctx *c, void *ud, nl_var *x, int train);

/* Plain training (cross-entropy; kd.h's loop with alpha 0) and distillation from a teacher. */
nl_status nl_resnet_fit(nl_resnet *m, const nl_dataset *train, const nl_kd_config *cfg, double *last_loss);
nl_status nl_resnet_distil(nl_resnet *m, const nl_dataset *train, const nl_kd_teacher *teacher, const nl_kd_config *cfg,
                           double *last_loss);
nl_status nl_resnet_accuracy(nl_resnet *m, const nl_dataset *ds, double *acc);

#ifdef __cplusplus
}
#endif
#endif
