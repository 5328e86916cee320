/* methods/bpv/bpv.h — Binary Paragraph Vectors (Grzegorczyk & Kurdziel 2017; Grzegorczyk 2019, "Vector
 * representations of text data in deep learning", arXiv 1901.01695), on the shared text stack (lib/text).
 *
 * Binary PV-DBOW: document d has a real vector e_d [B]; its code is b_d = round(sigmoid(e_d)) in {0,1}^B; the code
 * (with a constant 1 for the bias) predicts every word of d through negative sampling (unigram^0.75, k negatives).
 * The rounding is trained with the sigmoid-adjusted straight-through estimator (forward: round; backward: the
 * sigmoid's derivative) or, with noise > 0, as sigmoid(e + N(0, noise^2)) in training and rounded at test.
 * Binary PV-DM: the code concatenated with the mean of the context words' embeddings (window +-w) predicts the
 * centre word. Real-Binary PV-DBOW: d has a real vector r_d [R] that predicts its words directly, and its code
 * b_d = round(sigmoid(P r_d)) (P [B, R] shared) predicts them too; retrieval ranks by the code's Hamming distance
 * and re-ranks a shortlist by the cosine of r. Unseen documents: their vectors are fitted with every shared weight
 * frozen (inference). */
#ifndef NL_BPV_H
#define NL_BPV_H
#include "nnlab/ledger.h"
#include "nnlab/nnlab.h"
#include "text/text.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_BPV_MAX_BITS 1024

typedef enum nl_bpv_kind { NL_BPV_DBOW = 0, NL_BPV_DM = 1, NL_BPV_REAL_BINARY = 2 } nl_bpv_kind;

typedef struct nl_bpv_config {
    nl_bpv_kind kind;
    int bits;         /* code length, 1..1024 */
    int real_dim;     /* Real-Binary: real vector length */
    int word_dim;     /* PV-DM: word embedding length */
    int window;       /* PV-DM: context half-width */
    int epochs;       /* passes over the training documents */
    int infer_epochs; /* passes over an unseen document */
    int negatives;    /* k */
    float lr;         /* SGD start (linear decay to lr / 1000) */
    float noise;      /* 0: straight-through rounding; > 0: sd of the Gaussian noise before the sigmoid */
    double subsample; /* word2vec subsampling threshold (0 = none) */
    uint64_t seed;
} nl_bpv_config;
nl_bpv_config nl_bpv_defaults(void);
/* NL_EINVAL naming the field (bits 0 or > 1024 included). */
nl_status nl_bpv_config_check(const nl_bpv_config *c);

typedef struct nl_bpv_model {
    nl_bpv_config cfg;
    int32_t V;
    nl_text_emb out;      /* [V, bits + 1] output vectors of the code (+ bias column) */
    nl_text_emb out_real; /* Real-Binary: [V, real_dim + 1] */
    nl_text_emb out_dm;   /* PV-DM: [V, bits + word_dim + 1] */
    nl_text_emb word;     /* PV-DM: [V, word_dim] */
    float *proj;          /* Real-Binary: [bits, real_dim] */
    nl_text_unigram uni;
    float *keep;          /* [V] subsampling keep probabilities */
} nl_bpv_model;

/* Document vectors: [n_docs, bits] (DBOW, DM) or [n_docs, real_dim] (Real-Binary). */
typedef nl_text_emb nl_bpv_docvec;

/* Train on d (ids in a vocabulary of V words; counts: that vocabulary with counts over d). Fills dv (allocated). */
nl_status nl_bpv_train(nl_bpv_model *m, const nl_bpv_config *c, const nl_text_vocab *counts, const nl_text_docs *d,
                       nl_bpv_docvec *dv, double *loss);
/* The untrained model and document vectors (the control): initialisation only. */
nl_status nl_bpv_init(nl_bpv_model *m, const nl_bpv_config *c, const nl_text_vocab *counts, int64_t n_docs,
                      nl_bpv_docvec *dv);
/* Fit vectors of unseen documents with the model frozen (epochs = cfg.infer_epochs; 0 = leave the init). */
nl_status nl_bpv_infer(const nl_bpv_model *m, const nl_text_docs *d, uint64_t seed, nl_bpv_docvec *dv);
void nl_bpv_free(nl_bpv_model *m);
/* Codes [n_docs, words] (words = (bits + 63) / 64, bit j of document i in codes[i * words + j / 64]). */
nl_status nl_bpv_codes(const nl_bpv_model *m, const nl_bpv_docvec *dv, uint64_t **codes);

/* ---- retrieval (retrieval.c) ---- */
typedef struct nl_bpv_eval {
    double map;     /* mean average precision over the queries (relevant = same label), full ranking */
    double p100;    /* precision at 100 */
    int64_t queries;
} nl_bpv_eval;
/* Rank the database by Hamming distance to every query (ties: a fixed permutation of the database, seed 12345);
 * when qreal/dbreal are given (dim rdim), re-rank the first `shortlist` by cosine similarity. */
nl_status nl_bpv_evaluate(const uint64_t *qcodes, const int32_t *qlab, int64_t nq, const uint64_t *dbcodes,
                          const int32_t *dblab, int64_t ndb, int bits, const float *qreal, const float *dbreal,
                          int rdim, int64_t shortlist, nl_bpv_eval *ev);
/* The k nearest database documents of one query code (ascending distance, ties by index): idx[k], dist[k]. */
void nl_bpv_search(const uint64_t *q, const uint64_t *db, int64_t ndb, int bits, int64_t k, int64_t *idx, int *dist);

/* Baselines at the same code length. LSH: sign of Gaussian random projections of the TF-IDF vectors (idf from
 * `fit`). Binary autoencoder (semantic-hashing style): code = round(sigmoid(W x + c)), x the document's word
 * distribution over the ae_vocab most frequent words, decoded by negative sampling to those words; the rounding
 * trained like Binary PV (straight-through), SGD. */
nl_status nl_bpv_lsh(const nl_text_docs *fit, int32_t V, int bits, uint64_t seed, const nl_text_docs *const *sets,
                     uint64_t **const *codes, int n_sets);
nl_status nl_bpv_ae(const nl_text_docs *train, const nl_text_vocab *counts, int ae_vocab, const nl_bpv_config *c,
                    const nl_text_docs *const *sets, uint64_t **const *codes, int n_sets);

int nl_bpv_cli(int argc, char **argv);
extern const nl_experiment nl_exp_bpv;

#ifdef __cplusplus
}
#endif
#endif
