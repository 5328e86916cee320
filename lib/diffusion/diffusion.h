/* lib/diffusion — denoising diffusion (DDPM, Ho et al. 2020) on small grey images: a small UNet, DDPM training with
 * epsilon prediction, linear and cosine noise schedules, DDIM and ancestral DDPM sampling, EMA weights, UNet
 * checkpoints, PNG sample grids, and "FD", a Frechet distance on the penultimate features of a Fashion-MNIST CNN
 * trained in nnlab (not FID: no Inception network). docs/diffusion.md.
 *
 * Images are float [N, C, S, S] (row-major, NCHW) with values in [-1, 1]; S = cfg.image_size.
 * API stability: names below are only ever added to (helpers build on them: methods/sara). */
#ifndef NNLAB_DIFFUSION_H
#define NNLAB_DIFFUSION_H
#include "nnlab/autograd.h"
#include "nnlab/model.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================ UNet ================================ *
 * conv_in (3x3, C -> ch) -> for each level l < L: ResBlock(ch_l) [, Downsample (3x3 stride-2 conv) if l < L-1]
 * -> mid: ResBlock, attention block (if attn), ResBlock at the lowest resolution
 * -> for each level l = L-1 .. 0: 2 x ResBlock(concat(h, skip) -> ch_l) [, Upsample (nearest 2x + 3x3 conv) if l > 0]
 * -> GroupNorm -> SiLU -> conv_out (3x3, ch -> C). ch_l = base_channels * ch_mult[l].
 * ResBlock(in -> out): h = conv3x3(SiLU(GN(x))); h += Linear(SiLU(temb))[:, :, None, None];
 *                      h = conv3x3(SiLU(GN(h))); return skip(x) + h, skip = 1x1 conv when in != out.
 * Time embedding: sinusoidal (dim base_channels, sin half then cos half, frequencies 10000^(-k/(half-1)))
 * -> Linear(ch, 4ch) -> SiLU -> Linear(4ch, 4ch) = temb.
 * Attention block: x + proj(softmax(q k^T / sqrt(C)) v), q, k, v = 1x1 projections of GN(x), one head.
 * Init: PyTorch's defaults (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and biases; GroupNorm 1 / 0).
 * Parameter names (store order): "conv_in.w", "temb.fc1.w", "down0.res.conv1.w", "mid.attn.q.w", ... */
#define NL_UNET_MAX_LEVELS 4

typedef struct nl_unet_config {
    int image_size;            /* S: 16, 28 or 32 (any S divisible by 2^(levels-1) with S >= 4 works) */
    int in_channels;           /* C (1 for grey images) */
    int base_channels;         /* ch (e.g. 16, 32); even, divisible by groups */
    int levels;                /* L, 1..NL_UNET_MAX_LEVELS */
    int ch_mult[NL_UNET_MAX_LEVELS];
    int groups;                /* GroupNorm groups (divides every channel count) */
    int attn;                  /* 1: attention block in the middle (lowest resolution) */
} nl_unet_config;

/* Optional transform of every conv / linear weight before use (LoRA: return w + B A reshaped); p is the store
 * entry, w its var. Return w itself for no change, NULL on error. */
typedef nl_var *(*nl_unet_weight_hook)(nl_ctx *c, nl_param *p, nl_var *w, void *ud);

typedef struct nl_unet {
    nl_unet_config cfg;
    nl_params ps;              /* all parameters (f32) */
    nl_unet_weight_hook hook;  /* NULL = none */
    void *hook_ud;
    void *internal;            /* layer table (owned) */
} nl_unet;

/* Defaults for an image size: 16 -> ch 16, mult {1,2,2}, groups 4; 28/32 -> ch 32, mult {1,2,2}, groups 8; attn 1. */
nl_unet_config nl_unet_defaults(int image_size);
/* NL_EINVAL naming the bad field. */
nl_status nl_unet_config_check(const nl_unet_config *cfg);
/* Build and initialise (seeded); on error *u is zeroed. */
nl_status nl_unet_init(nl_unet *u, const nl_unet_config *cfg, uint64_t seed);
void nl_unet_free(nl_unet *u);
/* eps_hat [N, C, S, S] = UNet(x [N, C, S, S], t (N) timesteps, given as floats (0 .. T-1)). */
nl_var *nl_unet_forward(nl_ctx *c, nl_unet *u, nl_var *x, const float *t);
/* Number of trainable parameters. */
int64_t nl_unet_param_count(const nl_unet *u);
/* True (1) when the store entry is a conv or linear weight (ndim 2 or 4: what LoRA and SaRA's matrices act on). */
int nl_unet_is_matrix(const nl_param *p);

/* Checkpoint (safetensors; metadata "nnlab.model" = "unet" and the architecture fields). Loading into u (already
 * built with some config) checks the file's architecture against u's: another architecture is NL_EFORMAT naming the
 * field. nl_unet_load_new builds u (overwritten, not freed: pass an unused or freed nl_unet) from the file's
 * architecture; on error u is zeroed. */
nl_status nl_unet_save(const nl_unet *u, const char *path);
nl_status nl_unet_load(nl_unet *u, const char *path);
nl_status nl_unet_load_new(nl_unet *u, const char *path);

/* ================================ DDPM ================================ */
typedef enum nl_diff_schedule { NL_DIFF_LINEAR = 0, NL_DIFF_COSINE = 1 } nl_diff_schedule;

typedef struct nl_diffusion {
    int T;                     /* diffusion steps */
    nl_diff_schedule kind;
    double *beta;              /* (T) */
    double *abar;              /* (T) prod_{s <= t} (1 - beta_s) */
} nl_diffusion;

/* linear: beta from 1e-4 to 0.02 (scaled by 1000/T, Ho et al.); cosine: Nichol & Dhariwal (s = 0.008, beta <= 0.999).
 * T in 2..100000. */
nl_status nl_diffusion_init(nl_diffusion *d, int T, nl_diff_schedule kind);
void nl_diffusion_free(nl_diffusion *d);
nl_status nl_diff_schedule_parse(const char *s, nl_diff_schedule *out); /* "linear" | "cosine" */

/* The DDPM training loss (Ho et al. "simple" loss): for each of the B images x0 [B, C, S, S] draw t ~ U{0..T-1} and
 * eps ~ N(0, I) from rng, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, and return mean((UNet(x_t, t) - eps)^2)
 * (a scalar var; call nl_backward on it). */
nl_var *nl_diffusion_loss(nl_ctx *c, const nl_diffusion *d, nl_unet *u, const float *x0, int64_t B, nl_rng *rng);

/* Sampling into out [n, C, S, S] (clipped to [-1, 1]), batches of at most 256, no gradients.
 * DDIM (Song et al. 2021): `steps` evenly spaced timesteps, eta = 0 deterministic, 1 = DDPM-like noise.
 * Ancestral DDPM: all T steps, sigma_t^2 = beta_t. */
nl_status nl_diffusion_sample_ddim(nl_unet *u, const nl_diffusion *d, int64_t n, int steps, double eta, nl_rng *rng,
                                   float *out);
nl_status nl_diffusion_sample_ddpm(nl_unet *u, const nl_diffusion *d, int64_t n, nl_rng *rng, float *out);

/* Checkpoint with the noise schedule as well ("diffusion.T", "diffusion.schedule" in the metadata; d may be NULL = as
 * nl_unet_save), and the schedule back from such a file (NL_EFORMAT naming the file when it holds none). */
nl_status nl_unet_save_ex(const nl_unet *u, const nl_diffusion *d, const char *path);
nl_status nl_diffusion_from_file(nl_diffusion *d, const char *path);

/* ---- EMA of the parameters: shadow = decay shadow + (1 - decay) theta ---- */
typedef struct nl_ema {
    float *shadow;             /* (ps->total) */
    int64_t total;
    double decay;
} nl_ema;
nl_status nl_ema_init(nl_ema *e, const nl_params *ps, double decay);
void nl_ema_update(nl_ema *e, const nl_params *ps);
/* Exchange the store's values with the shadow (call twice to restore). */
void nl_ema_swap(nl_ema *e, nl_params *ps);
void nl_ema_free(nl_ema *e);

/* ---- training loop (AdamW, EMA, the CLI and simple callers) ---- */
typedef struct nl_diffusion_train_config {
    int64_t steps;             /* optimiser steps */
    int64_t batch;
    double lr;                 /* AdamW, weight decay 0, cosine decay to 0.1 lr after 5% warmup */
    double ema_decay;          /* 0 = no EMA */
    double clip_norm;          /* 1.0 */
    uint64_t seed;
    int verbose;               /* print the loss every `verbose` steps (0 = never) */
} nl_diffusion_train_config;
nl_diffusion_train_config nl_diffusion_train_defaults(void);
/* Train u on images x [n, C, S, S]; ema may be NULL (else it must be initialised on u->ps). *final_loss (may be
 * NULL): mean loss of the last 10% of steps. */
nl_status nl_diffusion_train(nl_unet *u, const nl_diffusion *d, const nl_diffusion_train_config *tc, const float *x,
                             int64_t n, nl_ema *ema, double *final_loss);

/* ================================ data, images ================================ */
/* Fashion-MNIST ("fashion-mnist") or MNIST ("mnist") images of the classes with class_mask bit k set (0 = all),
 * resized to size x size (bilinear, align_corners = false; 28 = no resize) and scaled to [-1, 1]:
 * *x = malloc'd [n, 1, size, size], *y = malloc'd labels (may be NULL). at_most > 0 keeps the first at_most rows. */
nl_status nl_diffusion_load_images(const char *name, const char *split, unsigned class_mask, int size, int64_t at_most,
                                   float **x, int32_t **y, int64_t *n);
/* Bilinear resize of n single-channel images (align_corners = false): src [n, hs, ws] -> dst [n, hd, wd]. */
void nl_image_resize(const float *src, int64_t n, int hs, int ws, float *dst, int hd, int wd);
/* Grey PNG of a rows x cols grid of images [n, 1, S, S] in [-1, 1] (1-pixel gaps); zlib, no other dependency. */
nl_status nl_png_write_grid(const char *path, const float *x, int64_t n, int S, int cols);
/* Grey 8-bit PNG of w x h pixels. */
nl_status nl_png_write_gray(const char *path, const uint8_t *pix, int w, int h);

/* ================================ FD ================================ *
 * Frechet distance ||mu_a - mu_b||^2 + tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2) between Gaussians fitted to the
 * penultimate-layer features (the hidden fc layer, after ReLU) of a CNN classifier trained on Fashion-MNIST at the
 * model's image size. Matrix square roots by symmetric eigendecomposition (LAPACKE). */
typedef struct nl_fd_net {
    nl_model m;                /* engine CNN: 2 conv blocks (16, 32), hidden fc `dim`, 10 classes */
    int size;                  /* input image size */
    int dim;                   /* feature dimension */
    double test_acc;           /* accuracy on the test split at training time */
} nl_fd_net;
/* Train the feature network on Fashion-MNIST (all classes) at size x size; epochs over n_train images. */
nl_status nl_fd_net_train(nl_fd_net *f, int size, int dim, int64_t n_train, int epochs, uint64_t seed);
void nl_fd_net_free(nl_fd_net *f);
nl_status nl_fd_net_save(const nl_fd_net *f, const char *path);
nl_status nl_fd_net_load(nl_fd_net *f, const char *path);
/* feats [n, dim] (malloc'd, double) of images x [n, 1, S, S] in [-1, 1]. */
nl_status nl_fd_features(nl_fd_net *f, const float *x, int64_t n, double **feats);
/* Frechet distance between two feature sets a [na, D], b [nb, D] (na, nb >= 2). */
nl_status nl_frechet_distance(const double *a, int64_t na, const double *b, int64_t nb, int D, double *fd);
/* Both steps on images. */
nl_status nl_fd_images(nl_fd_net *f, const float *xa, int64_t na, const float *xb, int64_t nb, double *fd);

/* `nnlab diffusion train|sample` */
int nl_diffusion_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
