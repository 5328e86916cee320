/* graph/graph.h — graph learning on the engine: graphs with sparse features and labels, the normalised
 * adjacencies, GCN / GraphSAGE-mean / GAT layers, full-graph node-classification training with early stopping,
 * and two data sets (Zachary's karate club, the WordNet noun-synset graph). lib/graph/README.md has the numbers.
 *
 * Conventions: a graph's adjacency is a symmetric 0/1 nl_csr without self loops (entry (i, j): j is a neighbour of
 * i; a message flows from j to i). Node features are a sparse nl_csr [n, F] (bag of words) so the first layer is
 * nl_spmm(feat, W) and never densifies them. Graph layers store their weights as [in, out] (the GCN paper's H W),
 * unlike nl_linear's [out, in]. A layer's input is either sparse (xs, the features) or dense (h [n, in]); exactly
 * one of them is given. */
#ifndef NL_GRAPH_H
#define NL_GRAPH_H
#include "nnlab/nnlab.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================= graphs ======================================= */
typedef struct nl_graph {
    char name[32];
    int64_t n;             /* nodes */
    int64_t n_edges;       /* undirected edges; adj stores each in both directions (adj.nnz = 2 n_edges) */
    nl_csr adj;            /* (n x n) symmetric 0/1 adjacency, no self loops */
    nl_csr feat;           /* (n x n_feat) sparse node features */
    int64_t n_feat;
    int32_t *y;            /* (n) labels in [0, num_classes) */
    int num_classes;
    uint8_t *train, *val, *test; /* (n) split masks (0/1; a node is in at most one) */
} nl_graph;

/* Undirected graph on n nodes from m edges e[2k], e[2k+1] (any order, either direction; duplicates and the two
 * directions of one edge merge; self loops are dropped: the normalisations add their own). Node ids outside
 * [0, n) are NL_EINVAL naming the edge. Features and labels are left empty (feat n x 0, y NULL). */
nl_status nl_graph_from_edges(nl_graph *g, const char *name, int64_t n, int64_t m, const int64_t *e);
/* Labels y[0..n) in [0, C): copied; NL_EINVAL for a label out of range or a class with no node ("class 3 of 5 is
 * empty"). */
nl_status nl_graph_set_labels(nl_graph *g, const int32_t *y, int num_classes);
/* Fixed seeded split: a random permutation (nl_rng seed, stream 0x5b1) puts its first 64% in train, 64-80% in
 * val and 80-100% in test; train_pct < 64 keeps only the first train_pct% as train (the same val and test):
 * train_pct = 64 is the 64/16/20 split, 5 the 5%-labelled one. train_pct in [1, 64]. */
nl_status nl_graph_split(nl_graph *g, uint64_t seed, int train_pct);
void nl_graph_free(nl_graph *g);

typedef struct nl_graph_stats {
    int64_t class_size[64]; /* nodes per class (first min(C, 64)) */
    int64_t n_train, n_val, n_test;
    double homophily;       /* fraction of edges joining two nodes of the same class */
    double mean_degree;
    int64_t isolated;       /* nodes without an edge */
    double feat_nnz_mean;   /* stored feature entries per node */
} nl_graph_stats;
void nl_graph_get_stats(const nl_graph *g, nl_graph_stats *s);

/* Zachary's karate club: 34 members, 78 edges, label = the faction after the split (0: Mr. Hi, 1: Officer, as in
 * networkx's `club` attribute); identity features (F = 34). No split set. */
nl_status nl_graph_karate(nl_graph *g);

/* The WordNet 3.0 noun graph from Debian's wordnet-base (path NULL: /usr/share/wordnet/data.noun): one node per
 * synset (82,115), label = lexicographer file number - 3 (26 classes noun.Tops .. noun.time), edges = noun-to-noun
 * hypernym (@, @i) and hyponym (~, ~i) pointers, undirected and deduplicated; features = bag of words of the gloss
 * over the `vocab` most frequent gloss words (maximal runs of ASCII letters, lowercased, two letters or more;
 * ties alphabetical), binary and row-normalised to sum 1 (a gloss without a vocabulary word: zero row).
 * Missing file: NL_ENOTFOUND naming the package wordnet-base. A corrupt or truncated line: NL_EFORMAT
 * "PATH:LINE: what". No split set. */
#define NL_GRAPH_WORDNET_PATH "/usr/share/wordnet/data.noun"
nl_status nl_graph_wordnet(nl_graph *g, const char *path, int vocab);

/* ================================ adjacency normalisations ================================ */
/* D^-1/2 (A + I) D^-1/2 with D the degrees of A + I (GCN). */
nl_status nl_graph_norm_adj(const nl_csr *adj, nl_csr *out);
/* D^-1 A: the mean over neighbours (a row without neighbours stays zero) (GraphSAGE-mean). */
nl_status nl_graph_mean_adj(const nl_csr *adj, nl_csr *out);
/* A + I with unit values (GAT attends over the neighbours and the node itself). */
nl_status nl_graph_self_loops(const nl_csr *adj, nl_csr *out);

/* ======================================= layers ======================================= */
/* x W: dense h [n, in] @ W [in, out], or sparse xs [n, in] times W. */
nl_var *nl_graph_xw(nl_ctx *c, const nl_csr *xs, nl_var *h, nl_var *W);
/* GCN: ahat (x W) + b; ahat from nl_graph_norm_adj, W [in, out], b [out] or NULL. */
nl_var *nl_graph_gcn(nl_ctx *c, const nl_csr *ahat, const nl_csr *xs, nl_var *h, nl_var *W, nl_var *b);
/* GraphSAGE-mean: x W_self + mean_adj (x W_neigh) + b; both W [in, out]. */
nl_var *nl_graph_sage(nl_ctx *c, const nl_csr *mean_adj, const nl_csr *xs, nl_var *h, nl_var *W_self, nl_var *W_neigh,
                      nl_var *b);
/* GAT (Velickovic et al. 2018) with H heads of F features: z = x W (W [in, H*F]); for edge (i, j) of adj_loops
 * (nl_graph_self_loops) and head k, e_ijk = LeakyReLU_0.2(a_dst[k] . z_ik + a_src[k] . z_jk); alpha = softmax of
 * e over i's entries (its neighbours and itself); out_ik = sum_j alpha_ijk z_jk. a_src, a_dst [H, F]. concat: the
 * heads side by side [n, H*F]; else their mean [n, F]. Then + b (b [H*F] or [F], or NULL). */
nl_var *nl_graph_gat(nl_ctx *c, const nl_csr *adj_loops, const nl_csr *xs, nl_var *h, nl_var *W, nl_var *a_src,
                     nl_var *a_dst, nl_var *b, int heads, int concat);

/* =================================== models and training =================================== */
typedef enum nl_graph_kind { NL_GRAPH_MLP = 0, NL_GRAPH_GCN, NL_GRAPH_SAGE, NL_GRAPH_GAT } nl_graph_kind;
const char *nl_graph_kind_name(nl_graph_kind k);
nl_status nl_graph_parse_kind(const char *s, nl_graph_kind *out); /* "mlp" | "gcn" | "sage" | "gat" */

typedef struct nl_graph_config {
    nl_graph_kind kind;
    int layers;            /* >= 1 graph layers (the last one outputs the class logits); MLP: linear layers */
    int hidden;            /* hidden width (64); GAT: heads x hidden/heads */
    int heads;             /* GAT hidden-layer heads (8; the output layer has 1) */
    double dropout;        /* on every hidden layer's input (0.5); the sparse input features are not dropped */
    double lr;             /* Adam (0.01) */
    double weight_decay;   /* L2 on the weights, not the biases (5e-4) */
    int max_epochs;        /* 200 */
    int patience;          /* stop after this many epochs without a better validation accuracy (50) */
    uint64_t seed;         /* initialisation and dropout */
    int verbose;           /* progress lines every 10 epochs */
} nl_graph_config;
nl_graph_config nl_graph_defaults(nl_graph_kind kind);

/* A model's parameters (the store) and the adjacencies it needs, built for one graph. */
typedef struct nl_graph_model {
    nl_graph_config cfg;
    nl_params ps;
    nl_var *W[16], *W2[16], *b[16]; /* per layer: W (SAGE: W_self), W2 (SAGE: W_neigh; GAT: a_src), b */
    nl_var *A2[16];                 /* GAT: a_dst */
    nl_csr ahat;                    /* the layers' adjacency (GCN: norm, SAGE: mean, GAT: with self loops) */
} nl_graph_model;
nl_status nl_graph_model_init(nl_graph_model *m, const nl_graph *g, const nl_graph_config *cfg);
void nl_graph_model_free(nl_graph_model *m);
/* Logits [n, C] for every node; train: dropout from rng. */
nl_var *nl_graph_model_forward(nl_ctx *c, nl_graph_model *m, const nl_graph *g, int train, nl_rng *rng);

typedef struct nl_graph_result {
    double test_acc, val_acc, train_acc; /* at the epoch of the best validation accuracy */
    double last_train_acc;               /* training accuracy at the last epoch run (no dropout) */
    int best_epoch, epochs;              /* 1-based; epochs run */
    double epoch_s;                      /* mean wall seconds of a training epoch (forward, backward, update) */
    size_t arena_peak;                   /* bytes of the step arena at its peak */
} nl_graph_result;
/* Full-graph training: each epoch one Adam step on the cross-entropy of the training nodes, then an evaluation
 * (no dropout); early stopping on validation accuracy (strictly better resets the patience); the result is the
 * accuracy at the best validation epoch. Needs a split (nl_graph_split) with train and val nodes. */
nl_status nl_graph_train(const nl_graph *g, const nl_graph_config *cfg, nl_graph_result *res);
/* Accuracy of logits [n, C] over the nodes with mask[i] != 0 (0 when the mask is empty). */
double nl_graph_accuracy(const nl_var *logits, const int32_t *y, const uint8_t *mask);

/* `nnlab graph train ...` (lib/graph/cli_graph.c). */
int nl_graph_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
