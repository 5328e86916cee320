/* nnlab/model.h — ready-made classifiers on the engine's ops: an MLP and a small CNN.
 *
 * A model owns a parameter store (nl_params) whose entries are named like PyTorch modules: "fc1.weight",
 * "fc1.bias", "conv1.weight", "bn1.weight", "bn1.running_mean", ... BatchNorm running statistics are store
 * entries made non-trainable (requires_grad = 0), so checkpoints carry them and optimizers skip them.
 *
 * Initialisation follows PyTorch's defaults for nn.Linear / nn.Conv2d: weights kaiming_uniform(a = sqrt(5)),
 * which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); BatchNorm weight 1,
 * bias 0, running mean 0, running var 1. Values are drawn from nl_rng(seed, NL_STREAM_INIT) tensor by tensor
 * in store order, so a (config, seed) pair always gives the same model.
 *
 * Parametrisations (standard / NTK / muP): after the default init every tensor is passed to an optional hook
 * (nl_model_config.hook) with its role and fans. The hook may rescale or redraw the values and set the
 * tensor's lr_mult / wd_mult / fwd_mult / group (autograd.h). The forward pass honours fwd_mult: a layer with
 * weight multiplier a and bias multiplier b computes y = a * (x W^T) + b * bias (convolutions likewise), and
 * skips the extra ops when both are 1. */
#ifndef NNLAB_MODEL_H
#define NNLAB_MODEL_H
#include "nnlab/autograd.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_MODEL_MAX_LAYERS 16     /* linear layers of an MLP (sizes has one more entry) */
#define NL_MODEL_MAX_BLOCKS 16     /* conv blocks of a CNN */
#define NL_MODEL_POOL_ALL 0xFFFFu  /* pool_mask default: every block is followed by max-pooling */
#define NL_MODEL_MAX_DIM (1 << 24) /* largest layer width, class count, input / flattened feature count */
#define NL_MODEL_MAX_CHANNELS 65536 /* conv channels; kernel and pool are at most 99 */
#define NL_STREAM_INIT ((uint64_t)0x1A17ULL << 32)     /* rng stream of parameter init */
#define NL_STREAM_DROPOUT ((uint64_t)0xD209ULL << 32)  /* rng stream of dropout masks */

typedef enum nl_model_kind { NL_MODEL_MLP = 0, NL_MODEL_CNN } nl_model_kind;
typedef enum nl_activation { NL_ACT_RELU = 0, NL_ACT_TANH, NL_ACT_GELU, NL_ACT_SIGMOID, NL_ACT_COUNT } nl_activation;

const char *nl_model_kind_name(nl_model_kind k);              /* "mlp" | "cnn" */
nl_status nl_model_kind_parse(const char *s, nl_model_kind *out);
const char *nl_activation_name(nl_activation a);              /* "relu" | "tanh" | "gelu" | "sigmoid" */
nl_status nl_activation_parse(const char *s, nl_activation *out);

/* ---- parametrisation hook ---- */
typedef enum nl_param_role {
    NL_ROLE_WEIGHT_IN = 0,  /* first layer's weight (input -> hidden): fc1 of an MLP, conv1 of a CNN */
    NL_ROLE_WEIGHT_HIDDEN,  /* hidden -> hidden weights (later conv layers, hidden fc layers) */
    NL_ROLE_WEIGHT_OUT,     /* the readout (last linear layer -> logits) */
    NL_ROLE_BIAS,           /* bias of any linear / conv layer */
    NL_ROLE_NORM,           /* BatchNorm weight and bias */
    NL_ROLE_BUFFER          /* BatchNorm running statistics (not trainable) */
} nl_param_role;

typedef struct nl_model nl_model;

typedef struct nl_param_info {
    nl_param *p;            /* the store entry */
    nl_param_role role;
    int layer;              /* index of the layer (linear, conv or batchnorm) in forward order, from 0 */
    int64_t fan_in;         /* inputs per output unit (in features, or C*KH*KW); 0 for norms/buffers */
    int64_t fan_out;        /* outputs (out features, or O*KH*KW); 0 for norms/buffers */
} nl_param_info;

/* Called once per tensor, in store order, after the default init (and again by nl_model_reinit).
 * A non-OK status aborts nl_model_init. */
typedef nl_status (*nl_param_hook)(nl_model *m, const nl_param_info *info, void *ud);

/* ---- configuration ---- */
typedef struct nl_model_config {
    nl_model_kind kind;
    nl_dtype dtype;          /* NL_F32 (default) or NL_F64 (gradient checks) */
    int n_classes;           /* outputs */
    nl_activation act;       /* hidden activation of the MLP and of the CNN's hidden fc layer (CNN blocks: ReLU) */
    double dropout;          /* MLP: after every hidden activation; CNN: before each fc layer; 0 = none */
    /* Input normalisation applied by the forward pass: x' = (x - input_mean) / input_std (0 and 1 = none), so a
     * checkpoint carries its preprocessing. */
    double input_mean, input_std;
    /* MLP: sizes[0] = input features, sizes[n_sizes-1] = n_classes, hidden widths between. With batchnorm = 1
     * (nl_mlp_config sets 0) each hidden layer is linear(no bias) -> BatchNorm1d -> act [-> dropout]. */
    int n_sizes;
    int64_t sizes[NL_MODEL_MAX_LAYERS + 1];
    /* CNN: input geometry, then n_blocks blocks of conv(kernel, stride 1, pad kernel/2) -> BatchNorm (if
     * batchnorm) -> ReLU -> maxpool(pool, pool) (only if bit b of pool_mask is set; default NL_MODEL_POOL_ALL),
     * then flatten -> [fc(hidden) -> act ->] fc(n_classes). */
    int in_channels, in_height, in_width;
    int n_blocks;
    int channels[NL_MODEL_MAX_BLOCKS];
    int kernel, pool;
    unsigned pool_mask;      /* CNN: bit b set = block b is followed by max-pooling (NL_MODEL_POOL_ALL by default) */
    int batchnorm;           /* 1: conv/linear without bias followed by BatchNorm; 0: with bias (MLP default 0) */
    int64_t hidden;          /* width of the CNN's hidden fc layer; 0 = linear head only */
    double bn_momentum, bn_eps;  /* 0.1, 1e-5 (PyTorch) */
    /* optional parametrisation hook (see above); not stored in checkpoints */
    nl_param_hook hook;
    void *hook_ud;
} nl_model_config;

/* MLP with sizes[0..n_sizes) (2 <= n_sizes <= NL_MODEL_MAX_LAYERS + 1), e.g. {784, 256, 256, 10}. */
nl_model_config nl_mlp_config(int n_sizes, const int64_t *sizes, nl_activation act, double dropout);
/* CNN on c x h x w images with n_blocks conv blocks of channels[i] each (3x3 kernels, 2x2 max pooling,
 * BatchNorm), an optional hidden fc layer and n_classes outputs. */
nl_model_config nl_cnn_config(int c, int h, int w, int n_blocks, const int *channels, int64_t hidden, int n_classes);
/* Whether CNN block b (0-based) is followed by max-pooling (pool > 1 and bit b of pool_mask). */
int nl_model_block_pools(const nl_model_config *cfg, int b);
/* Spatial size (*h, *w) of the feature map after CNN block b (0-based; pooling included). */
void nl_model_block_hw(const nl_model_config *cfg, int b, int *h, int *w);
/* Check a configuration (NL_EINVAL naming the bad field). */
nl_status nl_model_config_check(const nl_model_config *cfg);

/* ---- the model ---- */
typedef struct nl_model_layer {
    int type;                /* internal: linear / conv / batchnorm */
    nl_var *w, *b;           /* weight (or BN gamma), bias (or BN beta); b may be NULL */
    nl_var *rm, *rv;         /* BN running mean / var, else NULL */
} nl_model_layer;

struct nl_model {
    nl_model_config cfg;
    nl_params ps;            /* all tensors (trainable and buffers) */
    int64_t in_dim;          /* input features per example (sizes[0], or c*h*w) */
    int n_classes;
    int n_layers;
    nl_model_layer layer[2 * NL_MODEL_MAX_LAYERS + 2 * NL_MODEL_MAX_BLOCKS];
    int n_info;
    nl_param_info *info;     /* (n_info == ps.n) role and fans of every tensor, in store order */
    nl_rng dropout_rng;      /* advanced by each training forward pass that uses dropout */
};

/* Build the parameters for cfg and initialise them from seed (then the hook). On error *m is zeroed. */
nl_status nl_model_init(nl_model *m, const nl_model_config *cfg, uint64_t seed);
void nl_model_free(nl_model *m);
/* Redraw every tensor as nl_model_init would (default init, then the hook) and reset the dropout stream. */
nl_status nl_model_reinit(nl_model *m, uint64_t seed);
/* Elements in all tensors (trainable_only: only those with requires_grad). */
int64_t nl_model_num_params(const nl_model *m, int trainable_only);
/* Info of a tensor by name, or NULL. */
const nl_param_info *nl_model_param_info(const nl_model *m, const char *name);

/* Logits [N, n_classes] for x [N, in_dim] (a CNN also accepts [N, C, H, W]). train: dropout active and
 * BatchNorm uses (and updates) batch statistics. Returns NULL with an error message on failure. */
nl_var *nl_model_forward(nl_model *m, nl_ctx *c, nl_var *x, int train);
/* Wrap n rows of float features (n, in_dim) as an input var of the model's dtype (copied only for f64). */
nl_var *nl_model_input(nl_model *m, nl_ctx *c, const float *x, int64_t n);

/* ---- checkpoints (safetensors) ----
 * The architecture is stored in __metadata__ as strings: "nnlab.model" ("mlp" | "cnn"), "nnlab.format" ("1"),
 * "nnlab.dtype", "nnlab.classes", "nnlab.activation", "nnlab.dropout", "nnlab.input_mean", "nnlab.input_std",
 * MLP: "nnlab.sizes" ("784,256,256,10"); CNN: "nnlab.input" ("1,28,28"), "nnlab.channels" ("16,32"),
 * "nnlab.kernel", "nnlab.pool", "nnlab.batchnorm", "nnlab.hidden", "nnlab.bn_momentum", "nnlab.bn_eps", and
 * "nnlab.pool_mask" only when some block does not pool. An MLP with BatchNorm adds "nnlab.batchnorm" ("1"),
 * "nnlab.bn_momentum", "nnlab.bn_eps" (absent = no BatchNorm, as in older checkpoints). */
/* Metadata JSON object of the model (malloc'd string) with extra string pairs keys[i] = vals[i] appended. */
char *nl_model_metadata_json(const nl_model *m, int n_extra, const char *const *keys, const char *const *vals);
/* Save all tensors and the metadata (atomic replace). */
nl_status nl_model_save(const nl_model *m, const char *path, int n_extra, const char *const *keys,
                        const char *const *vals);
/* Architecture of a checkpoint from its metadata. A file without "nnlab.model" gives NL_EFORMAT with a message
 * saying it is not an nnlab model checkpoint. */
nl_status nl_model_config_from_file(const char *path, nl_model_config *cfg);
/* Build the model stored in path and load its tensors (strict: same names, shapes and dtype). The header's tensors
 * are compared with the architecture in the metadata before any parameter is allocated, so a small file naming a
 * huge architecture is refused at once; a NaN or Inf value is refused (NL_EFORMAT naming the tensor). */
nl_status nl_model_load(nl_model *m, const char *path);
/* The same with options: flags NL_LOAD_ALLOW_NONFINITE (safetensors.h) or 0. */
nl_status nl_model_load_opt(nl_model *m, const char *path, unsigned flags);
/* The parameter names and shapes cfg would have, in a layout-only store (nl_params_init_layout; free with
 * nl_params_free): nothing is allocated for the values. */
nl_status nl_model_layout(const nl_model_config *cfg, nl_params *ps);
/* Whether every tensor value is finite (1) or not (0); *bad (may be NULL) receives the first bad tensor. */
int nl_model_params_finite(const nl_model *m, const nl_param **bad);

#ifdef __cplusplus
}
#endif
#endif
