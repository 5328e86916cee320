/* forwardgnn/forwardgnn.h — Forward Learning of Graph Neural Networks (Park et al., ICLR 2024) on lib/graph:
 * GNN layers trained one at a time, greedily, each on a loss of its own, with no gradient between layers.
 *
 * Single-forward (SF): C virtual class nodes with N(0,1) feature vectors are added to the graph, each linked in
 * both directions to the training nodes of its class. Layer l takes its input row-L2-normalised (layer 0: the node
 * features; layer l > 0: the detached output of layer l-1), computes H_l = ReLU(conv_l(x)) over all n + C nodes, and
 * is trained on CE(softmax(H_train H_virtual^T / tau), y). Prediction: argmax of the sum over layers of the
 * per-layer softmaxes of H H_virtual^T / tau. Forward-forward (FF) with label appending: the goodness of a node is
 * sum_j y_j^2 and its logit goodness - theta, with BCE towards 1 for positive and 0 for negative inputs (ff.c).
 * Backprop baseline: lib/graph's end-to-end training (nl_graph_train). methods/forwardgnn/README.md. */
#ifndef NL_FORWARDGNN_H
#define NL_FORWARDGNN_H
#include "graph/graph.h"
#include "nnlab/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_FGNN_MAX_LAYERS 16

typedef struct nl_forwardgnn_config {
    nl_graph_kind kind;   /* NL_GRAPH_GCN or NL_GRAPH_SAGE */
    int layers;           /* 1..16 layers trained greedily */
    int hidden;           /* every layer's width (128) */
    double lr;            /* Adam (1e-3) */
    double weight_decay;  /* Adam L2 weight decay on every tensor, PyTorch semantics (5e-4, the reference code's) */
    int max_epochs;       /* optimiser steps per layer (paper 1000) */
    int val_every;        /* validate after step t when t % val_every == 0 and t >= 2 (2, the reference script's) */
    int patience;         /* per layer: stop after this many validations without a better validation accuracy (100) */
    double tau;           /* SF score temperature (1) */
    double grad_clip;     /* Top2Loss: clip each layer's gradients to this global L2 norm (1, the reference's default) */
    int test_steps;       /* Top2Input: time steps of the prediction (10); softmaxes summed from step 2 on */
    int alternating;      /* Top2Input: update the even layers, then the odd ones with the even ones' new states (1) */
    double theta;         /* FF goodness threshold (2) */
    int label_edges;      /* 1: virtual nodes linked to their class's training nodes; 0: no label edges (control) */
    uint64_t seed;
    int verbose;
} nl_forwardgnn_config;
nl_forwardgnn_config nl_forwardgnn_defaults(nl_graph_kind kind);

typedef struct nl_forwardgnn_result {
    int layers;
    double test_acc[NL_FGNN_MAX_LAYERS]; /* prediction from layers 0..l (the first l+1 layers) */
    double val_acc[NL_FGNN_MAX_LAYERS];
    int epochs[NL_FGNN_MAX_LAYERS], best_epoch[NL_FGNN_MAX_LAYERS]; /* per layer, 1-based */
    size_t peak_bytes[NL_FGNN_MAX_LAYERS]; /* training peak while training layer l: step arena + held layer input */
    double seconds;                        /* wall seconds of the whole training */
} nl_forwardgnn_result;

/* ---- single-forward model (exposed for the tests) ---- */
typedef struct nl_fgnn_sf {
    nl_forwardgnn_config cfg;
    int64_t n, C, N;      /* graph nodes, classes, N = n + C (virtual class node c is node n + c) */
    nl_csr ahat;          /* (N x N) GCN: D^-1/2 (A'+I) D^-1/2, SAGE: D^-1 A', A' = A + label edges */
    nl_csr x0;            /* (N x F) row-L2-normalised features; virtual rows N(0,1) (dense rows) */
    int32_t *tgt;         /* (N) y on training nodes, C (ignored) elsewhere */
    nl_params ps[NL_FGNN_MAX_LAYERS]; /* one store per layer */
    nl_var *W[NL_FGNN_MAX_LAYERS], *W2[NL_FGNN_MAX_LAYERS], *b[NL_FGNN_MAX_LAYERS]; /* W [in, out] (SAGE W_self), W2 SAGE W_neigh, b [out] */
} nl_fgnn_sf;
nl_status nl_fgnn_sf_init(nl_fgnn_sf *m, const nl_graph *g, const nl_forwardgnn_config *cfg);
void nl_fgnn_sf_free(nl_fgnn_sf *m);
/* H_l = ReLU(conv_l(x)) [N, hidden]; h NULL: x = x0 (layer 0), else h [N, in] already row-normalised. */
nl_var *nl_fgnn_sf_layer(nl_ctx *c, nl_fgnn_sf *m, int l, nl_var *h);
/* Scores S = H H_v^T / tau [N, C] (H_v = rows n..n+C-1 of H [n + C, D]); *loss (if non-NULL) = mean over nodes with
 * tgt[i] < C of the cross-entropy of softmax(S_i) with tgt[i]. */
nl_var *nl_fgnn_sf_scores(nl_ctx *c, nl_var *H, int64_t n, int64_t C, double tau, const int32_t *tgt, nl_var **loss);
/* Initialises one layer as PyTorch Geometric does: GCN glorot W [fan_in, fan_out] and zero b; SAGE (W = W_self,
 * W2 = W_neigh) U(+-1/sqrt(fan_in)) for both weights and b. W2, b may be NULL. */
void nl_fgnn_init_layer(nl_graph_kind kind, nl_var *W, nl_var *W2, nl_var *b, int64_t fan_in, int64_t fan_out, nl_rng *r);
/* Row-L2-normalise x [rows, D] in place (a zero row stays zero). */
void nl_fgnn_row_normalise(float *x, int64_t rows, int64_t D);
/* Greedy layer-wise SF training on g (needs a split). */
nl_status nl_forwardgnn_sf_train(const nl_graph *g, const nl_forwardgnn_config *cfg, nl_forwardgnn_result *res);
/* Same as nl_forwardgnn_sf_train with the model kept (after the run, m holds every layer's best parameters);
 * train_hook (may be NULL) is called after layer l finished training. Free m with nl_fgnn_sf_free. */
nl_status nl_fgnn_sf_run(nl_fgnn_sf *m, const nl_graph *g, const nl_forwardgnn_config *cfg, nl_forwardgnn_result *res,
                         void (*train_hook)(nl_fgnn_sf *m, int l, void *u), void *u);

/* ---- top-down single-forward variants (topdown.c) ----
 * All L layers are trained together, one optimiser step per layer per time step, on states kept from the previous
 * time step (no gradient crosses layers). Top2Loss: layer j's input is the row-normalised state j (x0 for j = 0),
 * its loss the SF cross-entropy of mean(H_j, state j+2, ..., state L) (the states above constants); the new state
 * j+1 is row-normalise(H_j); gradients clipped per layer (grad_clip). Prediction: a bottom-up pass, then the sum over
 * j of the softmaxed scores of those means. Top2Input: layer j's input is [norm(state j) || norm(state j+2)], state
 * L+1 the label matrix Y (training nodes one-hot, other real nodes 1/C, virtual node c one-hot c); the loss is SF's
 * on H_j; states are raw outputs; with alternating, even layers update first and odd layers read their new states.
 * Prediction: a bottom-up pass (the state above zero), then test_steps time steps, summing every layer's softmax
 * from step 2 on. Both early-stop on validation accuracy every val_every steps (the best parameters restored). */
typedef struct nl_fgnn_td {
    nl_fgnn_sf sf;        /* graph, x0, targets; sf.W/W2/b: each layer's weights on its input from below */
    int input;            /* 0: Top2Loss, 1: Top2Input */
    int64_t in_top[NL_FGNN_MAX_LAYERS];                    /* Top2Input: width of the state above (hidden, or C) */
    nl_var *Wt[NL_FGNN_MAX_LAYERS], *Wt2[NL_FGNN_MAX_LAYERS]; /* Top2Input: [in_top, hidden] on the state above */
    float *st[NL_FGNN_MAX_LAYERS + 2], *ns[NL_FGNN_MAX_LAYERS + 2]; /* states 1..L [N, hidden]: now, next step */
    float *e1[NL_FGNN_MAX_LAYERS + 2], *e2[NL_FGNN_MAX_LAYERS + 2]; /* the prediction's states [N, hidden] */
    float *Y;             /* (N, C) Top2Input's state L+1 */
    float *sa, *sb, *sm;  /* scratch: (N, hidden) input from below; (N, max(hidden, C)) from above; (N, hidden) sum */
} nl_fgnn_td;
nl_status nl_fgnn_td_init(nl_fgnn_td *m, const nl_graph *g, const nl_forwardgnn_config *cfg, int input);
void nl_fgnn_td_free(nl_fgnn_td *m);
/* H_j [N, hidden]. Top2Loss: conv_j(below) (below already row-normalised; NULL: x0). Top2Input: conv_j([norm(below)
 * || norm(above)]) (below NULL: x0; above [N, in_top[j]], NULL: zeros), the weights split by rows. */
nl_var *nl_fgnn_td_layer(nl_ctx *c, nl_fgnn_td *m, int j, const float *below, const float *above);
/* Layer j's scores [N, C] (and *loss if non-NULL) on states s: Top2Loss on mean(H_j, s[j+2..L]), Top2Input on H_j. */
nl_var *nl_fgnn_td_scores(nl_ctx *c, nl_fgnn_td *m, int j, nl_var *H, float *const *s, nl_var **loss);
/* Trains (input 0: Top2Loss, 1: Top2Input) on g; res->test_acc[L-1] / val_acc[L-1] hold the result (the other
 * depths NAN), epochs[0] / best_epoch[0] the time steps. m keeps the model (free with nl_fgnn_td_free). */
nl_status nl_fgnn_td_run(nl_fgnn_td *m, const nl_graph *g, const nl_forwardgnn_config *cfg, int input, nl_forwardgnn_result *res);
nl_status nl_forwardgnn_td_train(const nl_graph *g, const nl_forwardgnn_config *cfg, int input, nl_forwardgnn_result *res);

/* ---- forward-forward ---- */
/* FF loss of activations H [n, D]: logit_i = sum_j H_ij^2 - theta; mean over the nodes with sign[i] != 0 of
 * BCE(sigmoid(logit_i), sign[i] > 0). */
nl_var *nl_fgnn_ff_loss(nl_ctx *c, nl_var *H, const int8_t *sign, double theta);
/* Greedy layer-wise FF training with label appending, as the reference's GNNLabelAppendingFF: the input of a node is
 * [features || a] row-L2-normalised, a the one-hot of a class or the uniform 1/C. Training: one positive pass
 * (training nodes: their class) and C-1 negative passes (training node i: its k-th wrong class, the order drawn once
 * per run), every other node uniform; layer l takes Adam steps (weight decay) on loss_pos + mean_k loss_neg_k; early
 * stopping as SF's (validation every val_every steps from step 2, patience in validations). Prediction of the mask
 * M: argmax over c of sum over layers of (mean_j H_ij^2 - theta), with class c appended to the nodes of M, the true
 * class to the training nodes (test: training and validation nodes) and uniform to the rest. */
nl_status nl_forwardgnn_ff_train(const nl_graph *g, const nl_forwardgnn_config *cfg, nl_forwardgnn_result *res);
/* neg (C-1, n): neg[k n + i] the k-th of training node i's C-1 wrong classes in a random order (every wrong class
 * once); -1 for the other nodes. 2 to 64 classes. */
nl_status nl_fgnn_ff_negatives(const nl_graph *g, nl_rng *r, int32_t *neg);
/* lab (n) of a prediction with class c: validation (test 0): training nodes y, validation nodes c, others -1
 * (uniform); test (test 1): training and validation nodes y, test nodes c, others -1. */
void nl_fgnn_ff_eval_labels(const nl_graph *g, int32_t c, int test, int32_t *lab);

/* ---- prediction (shared by SF and the top-down variants) ---- */
/* Adds the row softmaxes of S's first n rows (S [>= n, C], C <= 64) into psum [n, C]. */
void nl_fgnn_softmax_add(const nl_var *S, int64_t n, int64_t C, double *psum);
/* Accuracy of argmax p [n, C] against y [n] over the nodes with mask [n] set; 0 when the mask is empty. */
double nl_fgnn_accuracy(const double *p, int64_t n, int64_t C, const int32_t *y, const uint8_t *mask);

/* ---- data ---- */
/* The subgraph induced by the nodes of classes cls[0..k) (labels renumbered 0..k-1 in that order), features copied. */
nl_status nl_fgnn_subgraph(nl_graph *out, const nl_graph *g, const int *cls, int k);
/* The WordNet noun graph (lib/graph, 2000-word gloss vocabulary), or its subgraph of the k classes cls when k > 0. */
nl_status nl_fgnn_wordnet(nl_graph *out, const int *cls, int k);

int nl_forwardgnn_cli(int argc, char **argv);
extern const nl_experiment nl_exp_forwardgnn;
extern const nl_method nl_method_forwardgnn;

#ifdef __cplusplus
}
#endif
#endif
