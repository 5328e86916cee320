/* forwardgnn/forwardgnn.h — Forward Learning of Graph Neural Networks (Park et al., ICLR 2024) on lib/graph:
 * GNN layers trained one at a time, greedily, each on a loss of its own, with no gradient between layers.
 *
 * Single-forward (SF): C virtual class nodes with N(0,1) feature vectors are added to the graph, each linked in
 * both directions to the training nodes of its class. Layer l takes its input row-L2-normalised (layer 0: the node
 * features; layer l > 0: the detached output of layer l-1), computes H_l = ReLU(conv_l(x)) over all n + C nodes, and
 * is trained on CE(softmax(H_train H_virtual^T / tau), y). Prediction: argmax of the sum over layers of the
 * per-layer softmaxes of H H_virtual^T / tau. Forward-forward (FF) with label appending: the goodness of a node is
 * sum_j y_j^2 and its logit goodness - theta, with BCE towards 1 for positive and 0 for negative inputs.
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

/* ---- forward-forward ---- */
/* FF loss of activations H [n, D]: logit_i = sum_j H_ij^2 - theta; mean over the nodes with sign[i] != 0 of
 * BCE(sigmoid(logit_i), sign[i] > 0). */
nl_var *nl_fgnn_ff_loss(nl_ctx *c, nl_var *H, const int8_t *sign, double theta);
/* Greedy layer-wise FF training with label appending: the input of a node is [features || a] row-L2-normalised, a
 * the one-hot of its class (positive, training nodes), of a wrong class drawn once per run (negative, training nodes)
 * or the uniform 1/C (every other node); layer l is trained on the FF loss of the positive and negative passes
 * (mean of the two), early-stopped on validation accuracy; prediction: argmax over c of the goodness summed over
 * layers with class c appended to every node. */
nl_status nl_forwardgnn_ff_train(const nl_graph *g, const nl_forwardgnn_config *cfg, nl_forwardgnn_result *res);

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
