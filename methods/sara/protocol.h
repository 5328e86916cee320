/* sara/protocol.h — the SaRA experiment on a tiny DDPM (internal to methods/sara; sara.h has the optimiser).
 *
 * Pretrain a UNet (lib/diffusion) on Fashion-MNIST classes 0-4 at 16x16 ("old domain"), then, per fine-tuning seed,
 * fine-tune it on classes 5-9 ("new domain") with SaRA, LoRA (rank chosen so its trainable count is the closest to
 * SaRA's |M|) and full fine-tuning (AdamW on every entry), same steps, batch and learning rate. Measured per seed:
 *   - FD of samples (DDIM, eta 0) of the pretrained model, of the model with the smallest `fraction` of |theta|
 *     zeroed and with a random `fraction` zeroed, against real old-domain test images;
 *   - new-domain FD: samples of each fine-tuned model against real new-domain test images;
 *   - old-domain retention FD: real old-domain test images noised to t* = probe_t T and denoised back with the model
 *     (DDIM from t*, SDEdit), against the real old-domain test images (a model that forgot the old domain pulls them
 *     towards the new classes);
 *   - the optimiser's own memory (bytes) of each method. */
#ifndef NNLAB_SARA_PROTOCOL_H
#define NNLAB_SARA_PROTOCOL_H
#include "diffusion/diffusion.h"
#include "sara/sara.h"

typedef struct nl_sara_proto_config {
    nl_unet_config unet;
    int T;                    /* diffusion steps (linear schedule) */
    int64_t n_train;          /* training images per domain (first ones of the training split) */
    int64_t pre_steps, ft_steps, batch, ft_batch; /* batch: pretraining; ft_batch: fine-tuning */
    double pre_lr, ft_lr;
    double fraction;          /* the zeroed fraction of part 1, and the least trainable fraction: LoRA's rank is the smallest
                               * whose count reaches fraction N, and SaRA trains that many entries */
    double lambda_rank;       /* SaRA's nuclear-norm weight */
    int progressive;          /* 1: re-select after ft_steps / 2 */
    int64_t n_eval;           /* images per FD set */
    int ddim_steps;           /* sampling steps (probe: steps scaled by probe_t) */
    double probe_t;           /* retention probe noise level t* / T */
    int fd_dim;               /* FD feature dimension */
    int64_t fd_train;         /* FD classifier training images */
    int fd_epochs;
    int seeds;                /* fine-tuning seeds 1..seeds */
    int lora_rank;            /* 0: the rank whose trainable count is closest to SaRA's |M| */
    const char *checkpoint;   /* a pretrained UNet to start from instead of pretraining (NULL: pretrain / cache) */
    uint64_t pre_seed;        /* pretraining seed */
    const char *cache_dir;    /* where the pretrained UNet may be cached (NULL: no cache) */
    int verbose;
} nl_sara_proto_config;

enum { SARA_M_SARA = 0, SARA_M_LORA, SARA_M_FULL, SARA_M_N };
#define SARA_MAX_SEEDS 8

typedef struct nl_sara_proto_result {
    int seeds;
    int64_t n_params;               /* entries of the UNet */
    int64_t trainable[SARA_M_N];    /* SaRA |M| at the start, LoRA r (out + in), full N */
    int64_t sara_after_reselect;    /* |M| after the progressive re-selection */
    int lora_rank;
    double tau;                     /* the |theta| threshold of the zeroing (fraction) */
    double sara_fraction;           /* SaRA's trainable fraction: LoRA's count / N */
    double state_bytes[SARA_M_N];   /* the optimiser's own memory (see README) */
    double dense_masked_bytes;      /* a masked dense Adam (nl_optim with masks): 2 floats per entry of the store */
    double fd_base_old[SARA_MAX_SEEDS], fd_small_old[SARA_MAX_SEEDS], fd_rand_old[SARA_MAX_SEEDS], fd_rand2_old[SARA_MAX_SEEDS];
    double fd_base_new[SARA_MAX_SEEDS];          /* pretrained model's samples vs the new domain */
    double fd_base_probe[SARA_MAX_SEEDS];        /* retention probe of the pretrained model */
    double fd_new[SARA_M_N][SARA_MAX_SEEDS];     /* fine-tuned samples vs the new domain */
    double fd_probe[SARA_M_N][SARA_MAX_SEEDS];   /* retention probe of the fine-tuned model */
    double ft_loss[SARA_M_N][SARA_MAX_SEEDS];    /* mean fine-tuning loss of the last 10% of steps */
    double fd_real_real;            /* FD between two disjoint real old-domain sets (the metric's floor) */
    double pre_loss, fd_net_acc;
    double seconds_pre, seconds_ft, seconds_eval;
    int cache_hit;
} nl_sara_proto_result;

nl_status nl_sara_protocol_run(const nl_sara_proto_config *cfg, nl_sara_proto_result *r);
/* The LoRA targets of the protocol: every conv / linear weight except the single-output conv_out. */
int nl_sara_lora_targets(const nl_params *ps, const char **names, int cap);

#endif
