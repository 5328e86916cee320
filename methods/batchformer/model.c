/* BatchFormer: the network (MLP backbone, linear classifier, the BatchFormer layer and its identity-attention control),
 * the training and test logits and the two losses (batchformer.h). */
#include "batchformer/batchformer.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BF_STREAM_INIT ((uint64_t)0x62664931ULL << 24)
#define BF_STREAM_DROP ((uint64_t)0x62664432ULL << 24)

nl_bf_config nl_bf_defaults(void) {
    nl_bf_config c;
    memset(&c, 0, sizeof c);
    c.hidden = 256;
    c.dim = 64;
    c.heads = 4;
    c.dropout = 0.5;
    c.bf_lr_mult = 0.1;
    c.lr = 1e-3;
    c.wd = 5e-4;
    c.batch = 128;
    c.epochs = 10;
    c.imbalance = 100;
    c.n_max = 6000;
    c.seed = 1;
    return c;
}

const char *nl_bf_loss_name(nl_bf_loss l) { return l == NL_BF_CE ? "ce" : l == NL_BF_BALANCED ? "balanced-softmax" : "?"; }
const char *nl_bf_kind_name(nl_bf_kind k) {
    return k == NL_BF_NONE ? "plain" : k == NL_BF_ATTN ? "batchformer" : k == NL_BF_IDENTITY ? "identity" : "?";
}

/* PyTorch's nn.Linear default: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) */
static void init_linear(nl_var *W, nl_var *b, int64_t in, nl_rng *r) {
    double k = 1.0 / sqrt((double)in);
    nl_rng_fill_uniform(r, &W->val, -k, k);
    if (b) nl_rng_fill_uniform(r, &b->val, -k, k);
}

static void fill(nl_var *v, float x) {
    float *p = v->val.data;
    for (int64_t i = 0, n = nl_tensor_numel(&v->val); i < n; i++) p[i] = x;
}

nl_status nl_bf_net_init(nl_bf_net *m, nl_bf_kind kind, const nl_bf_config *cfg, int64_t d_in, int64_t n_classes, uint64_t seed) {
    memset(m, 0, sizeof *m);
    if ((unsigned)kind > NL_BF_IDENTITY) return nl_set_error(NL_EINVAL, "batchformer: unknown model kind %d", (int)kind);
    if (d_in < 1 || cfg->hidden < 1 || cfg->dim < 1 || n_classes < 2 || cfg->heads < 1 || cfg->dim % cfg->heads)
        return nl_set_error(NL_EINVAL, "batchformer: bad sizes (d_in %lld, hidden %lld, dim %lld, heads %d, classes %lld; dim must be a "
                            "multiple of heads)", (long long)d_in, (long long)cfg->hidden, (long long)cfg->dim, cfg->heads,
                            (long long)n_classes);
    if (!(cfg->dropout >= 0 && cfg->dropout < 1)) return nl_set_error(NL_EINVAL, "batchformer: dropout %g outside [0, 1)", cfg->dropout);
    m->kind = kind;
    m->d_in = d_in;
    m->hidden = cfg->hidden;
    m->dim = cfg->dim;
    m->n_classes = n_classes;
    m->heads = cfg->heads;
    m->dropout = cfg->dropout;
    nl_status s = nl_params_init(&m->ps, NL_F32);
    if (s) return s;
    int64_t H = cfg->hidden, C = cfg->dim, K = n_classes, C3 = 3 * C;
    nl_params *ps = &m->ps;
    if (!(m->W1 = nl_params_add(ps, "fc1.W", 2, (int64_t[]){H, d_in})) || !(m->b1 = nl_params_add(ps, "fc1.b", 1, &H)) ||
        !(m->W2 = nl_params_add(ps, "fc2.W", 2, (int64_t[]){C, H})) || !(m->b2 = nl_params_add(ps, "fc2.b", 1, &C)) ||
        !(m->Wc = nl_params_add(ps, "cls.W", 2, (int64_t[]){K, C})) || !(m->bc = nl_params_add(ps, "cls.b", 1, &K)))
        goto fail;
    if (kind != NL_BF_NONE &&
        (!(m->Wqkv = nl_params_add(ps, "bf.in_proj.W", 2, (int64_t[]){C3, C})) || !(m->bqkv = nl_params_add(ps, "bf.in_proj.b", 1, &C3)) ||
         !(m->Wo = nl_params_add(ps, "bf.out_proj.W", 2, (int64_t[]){C, C})) || !(m->bo = nl_params_add(ps, "bf.out_proj.b", 1, &C)) ||
         !(m->F1 = nl_params_add(ps, "bf.linear1.W", 2, (int64_t[]){C, C})) || !(m->f1 = nl_params_add(ps, "bf.linear1.b", 1, &C)) ||
         !(m->F2 = nl_params_add(ps, "bf.linear2.W", 2, (int64_t[]){C, C})) || !(m->f2 = nl_params_add(ps, "bf.linear2.b", 1, &C)) ||
         !(m->g1 = nl_params_add(ps, "bf.norm1.g", 1, &C)) || !(m->e1 = nl_params_add(ps, "bf.norm1.b", 1, &C)) ||
         !(m->g2 = nl_params_add(ps, "bf.norm2.g", 1, &C)) || !(m->e2 = nl_params_add(ps, "bf.norm2.b", 1, &C))))
        goto fail;
    nl_rng r;
    nl_rng_init(&r, seed, BF_STREAM_INIT);
    init_linear(m->W1, m->b1, d_in, &r);
    init_linear(m->W2, m->b2, H, &r);
    init_linear(m->Wc, m->bc, C, &r);
    if (kind != NL_BF_NONE) {
        /* torch.nn.MultiheadAttention: in_proj xavier_uniform, biases 0, out_proj the Linear default weight and bias 0 */
        double a = sqrt(6.0 / (double)(C + C3));
        nl_rng_fill_uniform(&r, &m->Wqkv->val, -a, a);
        init_linear(m->Wo, NULL, C, &r);
        init_linear(m->F1, m->f1, C, &r);
        init_linear(m->F2, m->f2, C, &r);
        fill(m->g1, 1);
        fill(m->g2, 1);
        for (int i = 0; i < m->ps.n; i++)
            if (!strncmp(m->ps.p[i]->name, "bf.", 3)) m->ps.p[i]->lr_mult = (float)cfg->bf_lr_mult;
    }
    nl_rng_init(&m->drop, seed, BF_STREAM_DROP);
    return NL_OK;
fail:
    s = nl_last_status();
    nl_bf_net_free(m);
    return s ? s : NL_ENOMEM;
}

void nl_bf_net_free(nl_bf_net *m) {
    nl_params_free(&m->ps);
    memset(m, 0, sizeof *m);
}

nl_var *nl_bf_features(nl_ctx *c, nl_bf_net *m, nl_var *x) {
    return nl_relu(c, nl_linear(c, nl_relu(c, nl_linear(c, x, m->W1, m->b1)), m->W2, m->b2));
}

nl_var *nl_bf_classify(nl_ctx *c, nl_bf_net *m, nl_var *f) { return nl_linear(c, f, m->Wc, m->bc); }

/* [N, C] slice [lo, lo+C) of qkv [N, 3C] -> heads [1, H, N, C/H] (a strided view; the attention op reads it as is) */
static nl_var *heads_of(nl_ctx *c, nl_var *qkv, int64_t lo, int64_t N, int64_t C, int H) {
    nl_var *t = nl_slice(c, qkv, 1, lo, lo + C, 1);
    t = nl_reshape(c, t, 4, (int64_t[]){1, N, H, C / H});
    return nl_permute(c, t, (int[]){0, 2, 1, 3});
}

/* The identity control's additive mask [N, N]: 0 on the diagonal, -inf elsewhere, so that softmax gives exactly the
 * identity matrix (each sample attends only to itself). */
static nl_var *identity_mask(nl_ctx *c, int64_t N) {
    nl_var *M = nl_zeros(c, NL_F32, 2, (int64_t[]){N, N}); /* [N, N] */
    if (!M) return NULL;
    float *e = M->val.data;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) e[i * N + j] = i == j ? 0.0f : -INFINITY;
    return M;
}

nl_var *nl_bf_layer(nl_ctx *c, nl_bf_net *m, nl_var *f, int train) {
    if (m->kind == NL_BF_NONE || !m->Wqkv) {
        nl_set_error(NL_EINVAL, "batchformer: the plain model has no BatchFormer layer");
        return NULL;
    }
    if (!f || f->val.ndim != 2 || f->val.shape[1] != m->dim) {
        nl_set_error(NL_ESHAPE, "batchformer layer: features must be [N, %lld]", (long long)m->dim);
        return NULL;
    }
    int64_t N = f->val.shape[0], C = m->dim;
    int H = m->heads;
    double p = m->dropout;
    nl_var *qkv = nl_linear(c, f, m->Wqkv, m->bqkv); /* [N, 3C] */
    nl_var *q = heads_of(c, qkv, 0, N, C, H), *k = heads_of(c, qkv, C, N, C, H), *v = heads_of(c, qkv, 2 * C, N, C, H);
    /* the engine's fused attention over the batch (one sequence of N tokens), torch's attention dropout on the weights
     * [1, H, N, N]; the control masks every other sample out */
    nl_attention_opts ao = {.mask = NULL, .scale = 1.0 / sqrt((double)(C / H)), .bthd = 1, .p_drop = p, .train = train,
                            .rng = &m->drop};
    if (m->kind == NL_BF_IDENTITY) { /* the weights are constant: no gradient through the scores (exactly 0) */
        if (!(ao.mask = identity_mask(c, N))) return NULL;
        q = nl_detach(c, q);
        k = nl_detach(c, k);
    }
    nl_var *a = nl_attention_ex(c, q, k, v, &ao);      /* [1, N, H, C/H] */
    a = nl_linear(c, nl_reshape(c, a, 2, (int64_t[]){N, C}), m->Wo, m->bo); /* [N, C] */
    nl_var *g = nl_layernorm(c, nl_add(c, f, nl_dropout(c, a, p, train, &m->drop)), m->g1, m->e1, 1e-5); /* [N, C] */
    nl_var *h = nl_linear(c, nl_dropout(c, nl_relu(c, nl_linear(c, g, m->F1, m->f1)), p, train, &m->drop), m->F2, m->f2);
    return nl_layernorm(c, nl_add(c, g, nl_dropout(c, h, p, train, &m->drop)), m->g2, m->e2, 1e-5);
}

nl_var *nl_bf_train_logits(nl_ctx *c, nl_bf_net *m, nl_var *x, int64_t *rows) {
    nl_var *f = nl_bf_features(c, m, x); /* [N, C] */
    if (!f) return NULL;
    int64_t N = f->val.shape[0];
    if (m->kind == NL_BF_NONE) {
        if (rows) *rows = N;
        return nl_bf_classify(c, m, f);
    }
    nl_var *g = nl_bf_layer(c, m, f, 1);
    if (!g) return NULL;
    nl_var *both[2] = {g, f};
    if (rows) *rows = 2 * N;
    return nl_bf_classify(c, m, nl_concat(c, 2, both, 0)); /* [2N, K]: [BF(f); f], one classifier */
}

nl_var *nl_bf_test_logits(nl_ctx *c, nl_bf_net *m, nl_var *x) { return nl_bf_classify(c, m, nl_bf_features(c, m, x)); }

nl_var *nl_bf_loss_fn(nl_ctx *c, nl_var *logits, const int32_t *y, nl_bf_loss loss, const float *prior) {
    if (!logits) return NULL;
    if (loss == NL_BF_CE) return nl_cross_entropy(c, logits, y, 0.0, -1);
    if (loss != NL_BF_BALANCED || !prior) {
        nl_set_error(NL_EINVAL, "batchformer: unknown loss %d or Balanced Softmax without a prior", (int)loss);
        return NULL;
    }
    int64_t K = logits->val.shape[logits->val.ndim - 1];
    nl_var *lp = nl_zeros(c, NL_F32, 1, &K); /* [K] log prior */
    if (!lp) return NULL;
    float *l = lp->val.data;
    for (int64_t k = 0; k < K; k++) {
        if (!(prior[k] > 0)) {
            nl_set_error(NL_EINVAL, "batchformer: Balanced Softmax prior of class %lld is %g (must be > 0)", (long long)k, (double)prior[k]);
            return NULL;
        }
        l[k] = logf(prior[k]);
    }
    return nl_cross_entropy(c, nl_add(c, logits, lp), y, 0.0, -1);
}
